//! The phase-2 router (VM `firewall-router`): one rule model compiled from the spec
//! ([`compile`] → [`RuleSet`]) and rendered per backend ([`backend::Nftables`],
//! [`backend::Opnsense`]), the router NICs' fixed MACs ([`mac`]), the OPNsense seed
//! ISO ([`seed`]),
//! plus the segment-matrix cells with the router's intent ([`cells`]), which the
//! namespace twin (`tests/twin.rs`) and `validate` probe with real packets.

pub mod backend;
pub mod cells;
mod compile;
mod error;
pub mod mac;
pub mod model;
mod resolve;
pub mod seed;

pub use backend::{Backend, Nftables, Opnsense};
pub use cells::{Cell, Intent, Path, cells};
pub use compile::compile;
pub use error::{CompileError, OpnsenseError};
pub use mac::{Mac, router_nic_mac};
pub use model::{
    Action, AddrSet, Chain, Host, Interface, L4, Masquerade, Origin, ROUTER_MANAGEMENT_PORTS, Role,
    Rule, RuleSet, TAILSCALE_IFACE, Unrouted,
};
pub use resolve::{Endpoint, EndpointKind, Zone};
