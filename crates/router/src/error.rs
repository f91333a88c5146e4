//! Why a spec does not compile into a router rule set. Every error names the spec
//! value at fault (its path) and says what to do.

use labwright_spec::YamlPath;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("{path}: the spec declares no router; add a `router:` section (vm and interfaces)")]
    NoRouter { path: YamlPath },

    #[error(
        "{path}: the router belongs to phase {its_phase} and the lab is compiled at phase {phase}; raise `phase:` or compile at phase {its_phase}"
    )]
    RouterNotInPhase {
        path: YamlPath,
        its_phase: u8,
        phase: u8,
    },

    #[error("{path}: `{name}` is not a VM of this spec; name the router VM declared under `vms:`")]
    UnknownVm { path: YamlPath, name: String },

    #[error("{path}: segment `{name}` is not declared; known segments: {known}")]
    UnknownSegment {
        path: YamlPath,
        name: String,
        known: String,
    },

    #[error(
        "{path}: `{name}` belongs to phase {its_phase}, later than phase {phase}; it does not exist yet"
    )]
    NotInPhase {
        path: YamlPath,
        name: String,
        its_phase: u8,
        phase: u8,
    },

    #[error("{path}: `{name}` cannot name a router link: {reason}")]
    BadInterfaceName {
        path: YamlPath,
        name: String,
        reason: String,
    },

    #[error("{path}: the router VM has no NIC `{nic}`; use one of: {known}")]
    UnknownNic {
        path: YamlPath,
        nic: String,
        known: String,
    },

    #[error(
        "{path}: NIC `{nic}` is on bridge `{nic_bridge}` in phase {phase}, but segment `{segment}` is on `{segment_bridge}`; attach the NIC to `{segment_bridge}` or pick the NIC that is"
    )]
    BridgeMismatch {
        path: YamlPath,
        nic: String,
        nic_bridge: String,
        segment: String,
        segment_bridge: String,
        phase: u8,
    },

    #[error(
        "{path}: address {address} is not inside segment `{segment}` ({cidr}); use an address of {cidr}"
    )]
    AddressOutsideSegment {
        path: YamlPath,
        address: String,
        segment: String,
        cidr: String,
    },

    #[error(
        "{path}: interfaces {names} all lack an address, so all would be upstream (WAN); give every internal interface its gateway address"
    )]
    SeveralUpstream { path: YamlPath, names: String },

    #[error(
        "{path}: `{name}` is not a segment, VM, alias or CIDR, nor `management`, `tailscale` or `node`; known names: {known}"
    )]
    UnknownEndpoint {
        path: YamlPath,
        name: String,
        known: String,
    },

    #[error("{path}: VM `{vm}` has no known address in phase {phase}: {reason}")]
    NoAddress {
        path: YamlPath,
        vm: String,
        phase: u8,
        reason: String,
    },

    #[error(
        "{path}: `management` names no address: `safetyGuards.managementAccessCidrs` is empty; list the admin CIDRs there"
    )]
    NoManagementCidrs { path: YamlPath },

    #[error("{path}: `node` has no address: set `node.address` (the node's management address)")]
    NodeWithoutAddress { path: YamlPath },

    #[error(
        "{path}: `{name}` ({nets}) is on no segment the router has a link on, so the router never sees its traffic; add a router interface for its segment or drop the flow"
    )]
    NotBehindRouter {
        path: YamlPath,
        name: String,
        nets: String,
    },

    #[error("{path}: {detail}")]
    BadPorts { path: YamlPath, detail: String },
}

impl CompileError {
    /// The spec value at fault.
    pub fn path(&self) -> &YamlPath {
        match self {
            CompileError::NoRouter { path }
            | CompileError::RouterNotInPhase { path, .. }
            | CompileError::UnknownVm { path, .. }
            | CompileError::UnknownSegment { path, .. }
            | CompileError::NotInPhase { path, .. }
            | CompileError::BadInterfaceName { path, .. }
            | CompileError::UnknownNic { path, .. }
            | CompileError::BridgeMismatch { path, .. }
            | CompileError::AddressOutsideSegment { path, .. }
            | CompileError::SeveralUpstream { path, .. }
            | CompileError::UnknownEndpoint { path, .. }
            | CompileError::NoAddress { path, .. }
            | CompileError::NoManagementCidrs { path }
            | CompileError::NodeWithoutAddress { path }
            | CompileError::NotBehindRouter { path, .. }
            | CompileError::BadPorts { path, .. } => path,
        }
    }
}

/// Why a rule set cannot be rendered as an OPNsense configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpnsenseError {
    #[error(
        "{path}: OPNsense needs an upstream interface (its `wan`); give one router interface no address"
    )]
    NoWan { path: YamlPath },

    #[error("{path}: NIC slot `{slot}` is not `netN`; name the router VM's NICs net0, net1, …")]
    BadNicSlot { path: YamlPath, slot: String },

    #[error(
        "{path}: segment {cidr} is too small for a DHCP range (OPNsense backend needs /29 or larger); widen the segment or set `dhcp: false`"
    )]
    SegmentTooSmall { path: YamlPath, cidr: String },

    #[error(
        "{path}: the router address {gateway} lies inside the DHCP range {start}–{end} (the upper half of the segment); use an address of the lower half, e.g. the first host"
    )]
    GatewayInRange {
        path: YamlPath,
        gateway: String,
        start: String,
        end: String,
    },

    #[error(
        "{path}: the OPNsense backend serves DHCP on IPv4 segments only; set `dhcp: false` here"
    )]
    DhcpNotIpv4 { path: YamlPath },
}
