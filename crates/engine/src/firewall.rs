//! The firewall wave: the node's firewall as observed, the diff into actions, the
//! lockout proof and the executor with its probes.
//!
//! Why it is shaped this way:
//! - **Observed state** is read only when the spec declares a firewall (datacenter,
//!   node or a VM's `firewall:` block), so plans for specs without one cost no extra
//!   requests.
//! - **Rules are keyed by the stable id** kept in their comment (`[lw:<id>] …`), never
//!   by position: PVE renumbers on every insert and always inserts at the top.
//! - **Every firewall action is high risk** and goes to `plan.blocked` unless
//!   `safetyGuards.allowFirewallChanges` is set.
//! - **The lockout proof** evaluates the configuration *after every step* of the plan
//!   (not only the end state), because the order the steps run in is exactly what
//!   locks people out (a DROP policy before the allows exist).
//! - **The executor** creates non-ACCEPT rules disabled, moves them into place, and
//!   only then enables them (a DROP rule never sits at the top, even for a moment);
//!   after each step it opens a *fresh* connection (established connections survive a
//!   DROP policy, so the kept-alive one proves nothing) and reverts the step over the
//!   kept-alive connection when the fresh one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use labwright_firewall::{
    Alias, Backend, DecidedBy, FirewallConfig, GuestFirewall, GuestNic, Ipset, IpsetEntry,
    Protocol, Rule, RuleKind, Target, Verdict, prove_reach,
};
use labwright_pve::api::firewall::{FirewallRule, FirewallScope};
use labwright_pve::{ClientConfig, Params, PveClient, RetryPolicy};
use labwright_spec::Spec;
use labwright_spec::model::{FwPolicy, Proto};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::EngineError;
use crate::canon::Effect;
use crate::observed::Observed;
use crate::plan::{Action, Change, Held, Op, Plan, Risk};

/// Where the console recovery runbook lives (printed when a probe fails and the
/// node no longer answers).
pub const RUNBOOK: &str = "docs/runbooks/firewall-lockout.md";

/// Set to `1` to let a plan whose lockout proof FAILED be applied anyway. Dangerous:
/// it exists so tests can show what the proof prevents. Never set it for a real node.
pub const SKIP_PROOF_ENV: &str = "LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF";

/// The address the node sees labwright connect from, when NAT or a tunnel hides it.
pub const CLIENT_ADDR_ENV: &str = "LABWRIGHT_CLIENT_ADDR";

/// Ports every management source must keep reaching on the node.
pub const MGMT_PORTS: [u16; 2] = [22, 8006];

/// `LABWRIGHT_CLIENT_ADDR`, when set to an address.
pub fn client_addr_from_env() -> Option<IpAddr> {
    std::env::var(CLIENT_ADDR_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// True when the dangerous skip switch is set.
pub fn skip_proof_requested() -> bool {
    std::env::var(SKIP_PROOF_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

// ---------------------------------------------------------------------------
// Scopes, steps and ops (plan data)
// ---------------------------------------------------------------------------

/// Which firewall a step writes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "kebab-case")]
pub enum FwScope {
    /// Datacenter (`cluster.fw`).
    Cluster,
    /// A node's `host.fw`.
    Node { node: String },
    /// A guest's `<vmid>.fw`.
    Vm { node: String, vmid: u32 },
}

impl FwScope {
    fn pve(&self) -> FirewallScope {
        match self {
            FwScope::Cluster => FirewallScope::Cluster,
            FwScope::Node { node } => FirewallScope::Node(node.clone()),
            FwScope::Vm { node, vmid } => FirewallScope::Vm {
                node: node.clone(),
                vmid: *vmid,
            },
        }
    }

    fn base(&self) -> String {
        match self {
            FwScope::Cluster => "/cluster/firewall".into(),
            FwScope::Node { node } => format!("/nodes/{node}/firewall"),
            FwScope::Vm { node, vmid } => format!("/nodes/{node}/qemu/{vmid}/firewall"),
        }
    }

    fn slug(&self) -> String {
        match self {
            FwScope::Cluster => "cluster".into(),
            FwScope::Node { .. } => "node".into(),
            FwScope::Vm { vmid, .. } => format!("vm{vmid}"),
        }
    }

    fn target(&self) -> String {
        match self {
            FwScope::Cluster => "firewall/cluster".into(),
            FwScope::Node { node } => format!("firewall/node {node}"),
            FwScope::Vm { vmid, .. } => format!("firewall/vm {vmid}"),
        }
    }
}

/// One API-level change. Rules are addressed by id, never by a stored position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum FwStep {
    /// `PUT …/options`.
    SetOptions {
        set: Vec<(String, String)>,
        delete: Vec<String>,
    },
    /// `POST /cluster/firewall/aliases`.
    AliasCreate {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    /// `PUT /cluster/firewall/aliases/{name}`.
    AliasUpdate {
        name: String,
        cidr: String,
        comment: Option<String>,
    },
    /// `DELETE /cluster/firewall/aliases/{name}` (only as a revert).
    AliasDelete { name: String },
    /// `POST /cluster/firewall/ipset`.
    IpsetCreate { name: String },
    /// `POST /cluster/firewall/ipset/{name}`.
    IpsetAdd { name: String, cidr: String },
    /// `DELETE /cluster/firewall/ipset/{name}/{cidr}`.
    IpsetRemove { name: String, cidr: String },
    /// `DELETE /cluster/firewall/ipset/{name}` (only as a revert).
    IpsetDelete { name: String },
    /// Create or update the rule carrying `[lw:id]` and move it to `index`.
    RulePut {
        id: String,
        /// The rule as the API takes it (`Rule::to_api_json`).
        rule: Value,
        index: usize,
    },
    /// Delete the rule carrying `[lw:id]`.
    RuleDelete { id: String },
}

/// What one firewall action does, and how to undo it if the probe after it fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FwOp {
    pub scope: FwScope,
    pub steps: Vec<FwStep>,
    /// Steps that restore the state the plan was made from (run over the kept-alive
    /// connection when the fresh-connection probe fails).
    pub revert: Vec<FwStep>,
}

fn kv(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn rule_params_text(rule: &Value) -> String {
    match rule.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    }
}

impl FwOp {
    /// The API calls, as `METHOD path key=value` lines (positions are looked up by id
    /// when the step runs).
    pub fn api_calls(&self) -> Vec<String> {
        let base = self.scope.base();
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                FwStep::SetOptions { set, delete } => {
                    let mut l = format!("PUT {base}/options {}", kv(set));
                    if !delete.is_empty() {
                        l.push_str(&format!(" delete={}", delete.join(",")));
                    }
                    out.push(l.trim_end().to_string());
                }
                FwStep::AliasCreate { name, cidr, .. } => {
                    out.push(format!("POST {base}/aliases name={name} cidr={cidr}"))
                }
                FwStep::AliasUpdate { name, cidr, .. } => {
                    out.push(format!("PUT {base}/aliases/{name} cidr={cidr}"))
                }
                FwStep::AliasDelete { name } => out.push(format!("DELETE {base}/aliases/{name}")),
                FwStep::IpsetCreate { name } => out.push(format!("POST {base}/ipset name={name}")),
                FwStep::IpsetAdd { name, cidr } => {
                    out.push(format!("POST {base}/ipset/{name} cidr={cidr}"))
                }
                FwStep::IpsetRemove { name, cidr } => {
                    out.push(format!("DELETE {base}/ipset/{name}/{cidr}"))
                }
                FwStep::IpsetDelete { name } => {
                    out.push(format!("DELETE {base}/ipset/{name} force=1"))
                }
                FwStep::RulePut { id, rule, index } => {
                    out.push(format!(
                        "POST {base}/rules {} (PUT {base}/rules/<pos of [lw:{id}]> when it exists; a new non-ACCEPT rule is created with enable=0 and enabled after the move)",
                        rule_params_text(rule)
                    ));
                    out.push(format!(
                        "PUT {base}/rules/<pos of [lw:{id}]> moveto={index}"
                    ));
                }
                FwStep::RuleDelete { id } => {
                    out.push(format!("DELETE {base}/rules/<pos of [lw:{id}]>"))
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Observed firewall
// ---------------------------------------------------------------------------

/// The firewall as the node has it: raw options (for the diff) and the evaluator's
/// model (for the proof).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedFirewall {
    pub node: String,
    /// Options per scope, values as PVE returns them (numbers as strings).
    pub options: BTreeMap<String, BTreeMap<String, String>>,
    /// The evaluator's model of everything read.
    pub config: FirewallConfig,
    /// The address the node sees labwright connect from, when known.
    pub client_addr: Option<IpAddr>,
    /// Rules the evaluator could not read (`level #pos: error`): a proof over a
    /// config with unknown rules is refused.
    pub unreadable: Vec<String>,
    /// Requests the firewall scan made.
    pub requests: u64,
    /// The node each scanned VM runs on (VM firewall paths are per node).
    pub vm_nodes: BTreeMap<u32, String>,
}

fn scope_key(s: &FwScope) -> String {
    match s {
        FwScope::Cluster => "cluster".into(),
        FwScope::Node { node } => format!("node/{node}"),
        FwScope::Vm { vmid, .. } => format!("vm/{vmid}"),
    }
}

/// True when the spec declares anything the firewall wave owns.
pub fn spec_declares_firewall(spec: &Spec) -> bool {
    spec.firewall.is_some() || spec.vms.iter().any(|v| v.firewall.is_some())
}

fn pve_rule_json(r: &FirewallRule) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::from(r.rule_type.clone()));
    m.insert("action".into(), Value::from(r.action.clone()));
    if let Some(e) = r.enable {
        m.insert("enable".into(), Value::from(u8::from(e)));
    }
    let opts = [
        ("macro", &r.macro_name),
        ("proto", &r.proto),
        ("dport", &r.dport),
        ("sport", &r.sport),
        ("source", &r.source),
        ("dest", &r.dest),
        ("iface", &r.iface),
        ("log", &r.log),
        ("comment", &r.comment),
        ("icmp-type", &r.icmp_type),
    ];
    for (k, v) in opts {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.clone()));
        }
    }
    Value::Object(m)
}

fn read_rules(list: &[FirewallRule], level: &str, unreadable: &mut Vec<String>) -> Vec<Rule> {
    let mut sorted: Vec<&FirewallRule> = list.iter().collect();
    sorted.sort_by_key(|r| r.pos.unwrap_or(u32::MAX));
    let mut out = Vec::new();
    for (i, r) in sorted.into_iter().enumerate() {
        match Rule::from_api_json(&pve_rule_json(r)) {
            Ok(rule) => out.push(canonical(rule)),
            Err(e) => unreadable.push(format!("{level} rule #{i}: {e}")),
        }
    }
    out
}

/// `log: nolog` and no log are the same rule.
fn canonical(mut r: Rule) -> Rule {
    if r.log == Some(labwright_firewall::LogLevel::Nolog) {
        r.log = None;
    }
    r
}

fn api(what: &str) -> impl FnOnce(labwright_pve::Error) -> EngineError + '_ {
    move |e| EngineError::api(what, e)
}

/// Node addresses for `local_network`: the spec's bridges (then `node.address`).
fn node_addrs(spec: &Spec) -> Vec<IpNet> {
    let mut v: Vec<IpNet> = spec
        .networks
        .bridges
        .values()
        .filter(|b| b.phase <= spec.phase)
        .filter_map(|b| b.address.map(|a| a.0))
        .collect();
    if v.is_empty()
        && let Some(a) = spec.node.address
    {
        v.push(a.0);
    }
    v
}

fn nics_of(config: Option<&BTreeMap<String, String>>) -> BTreeMap<String, GuestNic> {
    let mut out = BTreeMap::new();
    if let Some(cfg) = config {
        for (k, v) in cfg {
            let is_net = k
                .strip_prefix("net")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if is_net {
                let fw = v.split(',').any(|p| p.trim() == "firewall=1");
                out.insert(
                    k.clone(),
                    GuestNic {
                        firewall: fw,
                        addrs: Vec::new(),
                    },
                );
            }
        }
    }
    out
}

/// VMs whose firewall the spec declares and the current phase activates.
fn active_fw_vms(spec: &Spec) -> impl Iterator<Item = &labwright_spec::model::Vm> {
    spec.vms
        .iter()
        .filter(move |v| v.firewall.is_some() && v.phase <= spec.phase)
}

/// Reads the firewall when the spec declares one (else `None`, no request made):
/// datacenter options, rules, aliases, ipsets, groups; the node's options and rules;
/// options and rules of declared VMs with a `firewall:` block that exist.
pub async fn scan_firewall(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    client_addr: Option<IpAddr>,
) -> Result<Option<ObservedFirewall>, EngineError> {
    if !spec_declares_firewall(spec) {
        return Ok(None);
    }
    let before = client.request_count();
    let node = spec.node.name.clone();
    let cl = FirewallScope::Cluster;
    let ns = FirewallScope::Node(node.clone());
    let (c_opts, c_rules, c_aliases, c_ipsets, c_groups, n_opts, n_rules) = tokio::join!(
        client.firewall_options(&cl),
        client.firewall_rules(&cl),
        client.firewall_aliases(&cl),
        client.firewall_ipsets(&cl),
        client.firewall_groups(),
        client.firewall_options(&ns),
        client.firewall_rules(&ns),
    );
    let c_opts = c_opts.map_err(api("read the datacenter firewall options"))?;
    let c_rules = c_rules.map_err(api("read the datacenter firewall rules"))?;
    let c_aliases = c_aliases.map_err(api("read the firewall aliases"))?;
    let c_ipsets = c_ipsets.map_err(api("read the firewall ipsets"))?;
    let c_groups = c_groups.map_err(api("read the security groups"))?;
    let n_opts = n_opts.map_err(api("read the node firewall options"))?;
    let n_rules = n_rules.map_err(api("read the node firewall rules"))?;

    let mut unreadable = Vec::new();
    let mut options = BTreeMap::new();
    let mut cfg = FirewallConfig::default();

    let c_map: BTreeMap<String, String> = c_opts.values.into_iter().collect();
    sync_options(&mut cfg, &FwScope::Cluster, &c_map);
    options.insert(scope_key(&FwScope::Cluster), c_map);
    cfg.cluster.rules = read_rules(&c_rules, "cluster", &mut unreadable);
    for a in c_aliases {
        match Alias::new(&a.name, &a.cidr) {
            Ok(mut al) => {
                al.comment = a.comment;
                cfg.cluster.add_alias(al);
            }
            Err(e) => unreadable.push(format!("alias {}: {e}", a.name)),
        }
    }
    for s in c_ipsets {
        let entries = client
            .firewall_ipset_entries(&cl, &s.name)
            .await
            .map_err(api("read an ipset"))?;
        let mut set = Ipset {
            comment: s.comment,
            entries: Vec::new(),
        };
        for e in entries {
            match IpsetEntry::parse(&e.cidr) {
                Ok(mut en) => {
                    en.nomatch = e.nomatch.unwrap_or(false);
                    en.comment = e.comment;
                    set.entries.push(en);
                }
                Err(err) => unreadable.push(format!("ipset {} entry {}: {err}", s.name, e.cidr)),
            }
        }
        cfg.cluster.ipsets.insert(s.name.to_ascii_lowercase(), set);
    }
    for g in c_groups {
        let rules = client
            .firewall_rules(&FirewallScope::Group(g.group.clone()))
            .await
            .map_err(api("read a security group"))?;
        let group = labwright_firewall::SecurityGroup {
            comment: g.comment,
            rules: read_rules(&rules, &format!("group {}", g.group), &mut unreadable),
        };
        cfg.cluster
            .groups
            .insert(g.group.to_ascii_lowercase(), group);
    }

    let node_scope = FwScope::Node { node: node.clone() };
    let host = labwright_firewall::HostFirewall {
        rules: read_rules(&n_rules, &format!("node {node}"), &mut unreadable),
        network: labwright_firewall::NodeNetwork {
            addrs: node_addrs(spec),
            default_iface: Some("vmbr0".into()),
        },
        ..Default::default()
    };
    cfg.nodes.insert(node.clone(), host);
    let n_map: BTreeMap<String, String> = n_opts.values.into_iter().collect();
    sync_options(&mut cfg, &node_scope, &n_map);
    options.insert(scope_key(&node_scope), n_map);

    let mut vm_nodes = BTreeMap::new();
    for vm in active_fw_vms(spec) {
        let Some(obs) = observed.vms.get(&vm.vmid) else {
            continue;
        };
        let vnode = if obs.node.is_empty() {
            node.clone()
        } else {
            obs.node.clone()
        };
        let vs = FirewallScope::Vm {
            node: vnode.clone(),
            vmid: vm.vmid,
        };
        let (o, r) = tokio::join!(client.firewall_options(&vs), client.firewall_rules(&vs));
        let o = o.map_err(api("read a VM's firewall options"))?;
        let r = r.map_err(api("read a VM's firewall rules"))?;
        let g = GuestFirewall {
            node: Some(node.clone()),
            rules: read_rules(&r, &format!("vm {}", vm.vmid), &mut unreadable),
            nics: nics_of(obs.config.as_ref()),
            ..GuestFirewall::default()
        };
        cfg.vms.insert(vm.vmid, g);
        vm_nodes.insert(vm.vmid, vnode.clone());
        let scope = FwScope::Vm {
            node: vnode,
            vmid: vm.vmid,
        };
        let map: BTreeMap<String, String> = o.values.into_iter().collect();
        sync_options(&mut cfg, &scope, &map);
        options.insert(scope_key(&scope), map);
    }

    Ok(Some(ObservedFirewall {
        node,
        options,
        config: cfg,
        client_addr,
        unreadable,
        requests: client.request_count().saturating_sub(before),
        vm_nodes,
    }))
}

impl ObservedFirewall {
    /// A fingerprint of everything the firewall plan depends on.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.options).unwrap_or_default());
        h.update(serde_json::to_vec(&self.config).unwrap_or_default());
        hex::encode(&h.finalize()[..16])
    }
}

/// The scan fingerprint of a plan that includes the firewall.
pub fn combined_fingerprint(base: &str, fw: Option<&ObservedFirewall>) -> String {
    use sha2::{Digest, Sha256};
    match fw {
        None => base.to_string(),
        Some(f) => {
            let mut h = Sha256::new();
            h.update(base.as_bytes());
            h.update(f.fingerprint().as_bytes());
            hex::encode(&h.finalize()[..16])
        }
    }
}

fn flag(v: Option<&String>) -> Option<bool> {
    v.map(|s| s.trim() == "1" || s.trim().eq_ignore_ascii_case("true"))
}

fn policy(v: Option<&String>) -> Option<Verdict> {
    v.and_then(|s| Verdict::parse(s.trim()).ok())
}

/// Mirrors raw options into the evaluator's model.
fn sync_options(cfg: &mut FirewallConfig, scope: &FwScope, map: &BTreeMap<String, String>) {
    match scope {
        FwScope::Cluster => {
            let o = &mut cfg.cluster.options;
            o.enable = flag(map.get("enable")).unwrap_or(false);
            o.policy_in = policy(map.get("policy_in"));
            o.policy_out = policy(map.get("policy_out"));
        }
        FwScope::Node { node } => {
            let h = cfg.nodes.entry(node.clone()).or_default();
            h.options.enable = flag(map.get("enable")).unwrap_or(true);
            h.options.nftables = flag(map.get("nftables")).unwrap_or(false);
        }
        FwScope::Vm { vmid, .. } => {
            let g = cfg.vms.entry(*vmid).or_default();
            g.options.enable = flag(map.get("enable")).unwrap_or(false);
            g.options.policy_in = policy(map.get("policy_in"));
            g.options.policy_out = policy(map.get("policy_out"));
            g.options.dhcp = flag(map.get("dhcp")).unwrap_or(false);
        }
    }
}

// ---------------------------------------------------------------------------
// Desired firewall
// ---------------------------------------------------------------------------

/// What the spec asks of the firewall.
#[derive(Debug, Default)]
struct DesiredFw {
    /// Declared option keys only (owning only what the spec declares).
    options: Vec<(FwScope, BTreeMap<String, String>)>,
    /// name → (cidr, comment).
    aliases: BTreeMap<String, (String, Option<String>)>,
    ipsets: BTreeMap<String, Vec<String>>,
    /// Managed rules per scope, in order.
    rules: Vec<(FwScope, Vec<(String, Rule)>)>,
    held: Vec<Held>,
    notes: Vec<String>,
}

fn policy_str(p: FwPolicy) -> String {
    match p {
        FwPolicy::Accept => "ACCEPT",
        FwPolicy::Drop => "DROP",
        FwPolicy::Reject => "REJECT",
    }
    .to_string()
}

fn b01(b: bool) -> String {
    if b { "1".into() } else { "0".into() }
}

/// `192.168.1.50` and `192.168.1.50/32` are the same alias value.
fn norm_cidr(s: &str) -> String {
    let t = s.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return n.trunc().to_string();
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return IpNet::from(ip).to_string();
    }
    t.to_string()
}

/// The stable id in a rule comment (`[lw:<id>] …`).
pub fn rule_id(r: &Rule) -> Option<&str> {
    comment_id(r.comment.as_deref()?)
}

fn comment_id(c: &str) -> Option<&str> {
    let rest = c.trim_start().strip_prefix("[lw:")?;
    let end = rest.find(']')?;
    rest.get(..end)
}

fn tailscale_cidr(spec: &Spec) -> String {
    spec.safety_guards
        .tailscale_cidr
        .map(|c| c.to_string())
        .unwrap_or_else(|| labwright_policy_tailscale().to_string())
}

fn labwright_policy_tailscale() -> &'static str {
    "100.64.0.0/10"
}

fn desired_fw(spec: &Spec, observed_vm_node: &dyn Fn(u32) -> String) -> DesiredFw {
    let mut d = DesiredFw::default();
    let node = spec.node.name.clone();
    if let Some(fw) = &spec.firewall {
        for (name, c) in &fw.aliases {
            d.aliases.insert(name.clone(), (c.to_string(), None));
        }
        for (name, set) in &fw.ipsets {
            d.ipsets.insert(
                name.clone(),
                set.iter().map(|c| norm_cidr(&c.to_string())).collect(),
            );
        }
        if !fw.security_groups.is_empty() {
            d.held.push(Held {
                target: "firewall/security-groups".into(),
                reason: "security groups are not managed by this labwright version".into(),
                unblock: "create them in the UI, or use plain rules".into(),
            });
        }
        if let Some(dc) = &fw.datacenter {
            let mut o = BTreeMap::new();
            if let Some(e) = dc.options.enable {
                o.insert("enable".to_string(), b01(e));
            }
            if let Some(p) = dc.options.policy_in {
                o.insert("policy_in".to_string(), policy_str(p));
            }
            if let Some(p) = dc.options.policy_out {
                o.insert("policy_out".to_string(), policy_str(p));
            }
            d.options.push((FwScope::Cluster, o));
            d.rules
                .push((FwScope::Cluster, compile_spec_rules(&dc.rules, &mut d.held)));
        }
        if let Some(n) = &fw.node {
            let mut o = BTreeMap::new();
            if let Some(e) = n.options.enable {
                o.insert("enable".to_string(), b01(e));
            }
            let scope = FwScope::Node { node: node.clone() };
            d.options.push((scope.clone(), o));
            d.rules
                .push((scope, compile_spec_rules(&n.rules, &mut d.held)));
        }
        if fw.matrix.as_ref().is_some_and(|m| m.phase > spec.phase) {
            d.notes.push(
                "firewall matrix: phase 2 intent; `labwright firewall matrix SPEC` checks it against the compiled rules".into(),
            );
        }
    }
    for vm in &spec.vms {
        let Some(vf) = &vm.firewall else { continue };
        if vm.phase > spec.phase {
            continue;
        }
        let scope = FwScope::Vm {
            node: observed_vm_node(vm.vmid),
            vmid: vm.vmid,
        };
        let mut o = BTreeMap::new();
        o.insert("enable".to_string(), b01(vf.enable));
        o.insert("policy_in".to_string(), policy_str(vf.policy_in));
        o.insert("policy_out".to_string(), policy_str(vf.policy_out));
        let mut rules = Vec::new();
        let mut used = BTreeSet::new();
        for entry in &vf.allow {
            let sources = match allow_sources(spec, &entry.from, &mut d) {
                Ok(s) => s,
                Err(why) => {
                    d.notes.push(format!(
                        "VM {} allowlist entry `from: {}` skipped: {why}",
                        vm.vmid, entry.from
                    ));
                    continue;
                }
            };
            for (i, source) in sources.iter().enumerate() {
                let mut id = format!("allow-{}", slug(&entry.from));
                if entry.proto != Proto::Tcp {
                    id.push_str(&format!("-{}", proto_name(entry.proto)));
                }
                if sources.len() > 1 {
                    id.push_str(&format!("-{i}"));
                }
                let mut n = 2;
                let base = id.clone();
                while !used.insert(id.clone()) {
                    id = format!("{base}-{n}");
                    n += 1;
                }
                let mut m = Map::new();
                m.insert("type".into(), Value::from("in"));
                m.insert("action".into(), Value::from("ACCEPT"));
                m.insert("source".into(), Value::from(source.clone()));
                if let Some(p) = entry.proto.as_pve() {
                    m.insert("proto".into(), Value::from(p));
                }
                if !entry.ports.is_empty() && matches!(entry.proto, Proto::Tcp | Proto::Udp) {
                    let ports: Vec<String> = entry
                        .ports
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>();
                    m.insert("dport".into(), Value::from(ports.join(",")));
                }
                m.insert("enable".into(), Value::from(1));
                let comment = match &entry.comment {
                    Some(c) => format!("[lw:{id}] {c}"),
                    None => format!("[lw:{id}]"),
                };
                m.insert("comment".into(), Value::from(comment));
                match Rule::from_api_json(&Value::Object(m)) {
                    Ok(r) => rules.push((id, canonical(r))),
                    Err(e) => d.notes.push(format!(
                        "VM {} allowlist entry `from: {}` does not compile: {e}",
                        vm.vmid, entry.from
                    )),
                }
            }
        }
        d.options.push((scope.clone(), o));
        d.rules.push((scope, rules));
    }
    d
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
        Proto::Any => "any",
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Sources a VM allowlist `from:` stands for: segments and `tailscale` become shared
/// datacenter aliases (so every VM's rules name the same object), `management` the
/// declared management CIDRs.
fn allow_sources(spec: &Spec, from: &str, d: &mut DesiredFw) -> Result<Vec<String>, String> {
    let declared_alias = spec
        .firewall
        .as_ref()
        .is_some_and(|f| f.aliases.keys().any(|k| k.eq_ignore_ascii_case(from)));
    if declared_alias {
        return Ok(vec![format!("dc/{from}")]);
    }
    if let Some(seg) = spec.networks.segments.get(from) {
        if seg.phase > spec.phase {
            return Err(format!("segment `{from}` is phase {}", seg.phase.0));
        }
        d.aliases.entry(from.to_string()).or_insert((
            seg.cidr.to_string(),
            Some(format!("labwright: segment {from}")),
        ));
        return Ok(vec![format!("dc/{from}")]);
    }
    match from {
        "tailscale" => {
            d.aliases.entry("tailscale".into()).or_insert((
                tailscale_cidr(spec),
                Some("labwright: Tailscale range".into()),
            ));
            Ok(vec!["dc/tailscale".into()])
        }
        "management" => {
            let v: Vec<String> = spec
                .safety_guards
                .management_access_cidrs
                .iter()
                .map(ToString::to_string)
                .collect();
            if v.is_empty() {
                Err("no managementAccessCidrs declared".into())
            } else {
                Ok(v)
            }
        }
        other if other.starts_with('+') => Ok(vec![other.to_string()]),
        other => match other.parse::<IpNet>() {
            Ok(n) => Ok(vec![n.to_string()]),
            Err(_) => match other.parse::<IpAddr>() {
                Ok(ip) => Ok(vec![ip.to_string()]),
                Err(_) => Err(format!(
                    "`{other}` is not a segment, alias, `tailscale`, `management` or CIDR"
                )),
            },
        },
    }
}

fn compile_spec_rules(
    rules: &[labwright_spec::model::FwRule],
    held: &mut Vec<Held>,
) -> Vec<(String, Rule)> {
    let mut out = Vec::new();
    for r in rules {
        match Rule::from_api_json(&labwright_policy::rule_to_api(r)) {
            Ok(rule) => out.push((r.id.clone(), canonical(rule))),
            Err(e) => held.push(Held {
                target: format!("firewall rule {}", r.id),
                reason: format!("the rule does not compile: {e}"),
                unblock: "fix the rule (labwright check shows where)".into(),
            }),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Model: applying steps to a configuration (for the diff and the proof)
// ---------------------------------------------------------------------------

/// Options and model together: what a step changes.
#[derive(Clone, Debug)]
pub struct FwState {
    pub options: BTreeMap<String, BTreeMap<String, String>>,
    pub config: FirewallConfig,
}

impl FwState {
    pub fn of(obs: &ObservedFirewall) -> Self {
        FwState {
            options: obs.options.clone(),
            config: obs.config.clone(),
        }
    }
}

fn rules_mut<'a>(cfg: &'a mut FirewallConfig, scope: &FwScope) -> &'a mut Vec<Rule> {
    match scope {
        FwScope::Cluster => &mut cfg.cluster.rules,
        FwScope::Node { node } => &mut cfg.nodes.entry(node.clone()).or_default().rules,
        FwScope::Vm { vmid, .. } => &mut cfg.vms.entry(*vmid).or_default().rules,
    }
}

fn position(rules: &[Rule], id: &str) -> Option<usize> {
    rules.iter().position(|r| rule_id(r) == Some(id))
}

/// Applies one step to the model, as the executor will apply it to the node.
pub fn model_step(st: &mut FwState, scope: &FwScope, step: &FwStep) {
    match step {
        FwStep::SetOptions { set, delete } => {
            let map = st.options.entry(scope_key(scope)).or_default();
            for k in delete {
                map.remove(k);
            }
            for (k, v) in set {
                map.insert(k.clone(), v.clone());
            }
            let map = map.clone();
            sync_options(&mut st.config, scope, &map);
        }
        FwStep::AliasCreate {
            name,
            cidr,
            comment,
        }
        | FwStep::AliasUpdate {
            name,
            cidr,
            comment,
        } => {
            if let Ok(mut a) = Alias::new(name, cidr) {
                a.comment = comment.clone();
                st.config.cluster.add_alias(a);
            }
        }
        FwStep::AliasDelete { name } => {
            st.config.cluster.aliases.remove(&name.to_ascii_lowercase());
        }
        FwStep::IpsetCreate { name } => {
            st.config
                .cluster
                .ipsets
                .entry(name.to_ascii_lowercase())
                .or_default();
        }
        FwStep::IpsetAdd { name, cidr } => {
            if let Ok(e) = IpsetEntry::parse(cidr) {
                st.config
                    .cluster
                    .ipsets
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .entries
                    .push(e);
            }
        }
        FwStep::IpsetRemove { name, cidr } => {
            if let Some(s) = st.config.cluster.ipsets.get_mut(&name.to_ascii_lowercase()) {
                let want = norm_cidr(cidr);
                s.entries
                    .retain(|e| norm_cidr(&e.target.to_string()) != want);
            }
        }
        FwStep::IpsetDelete { name } => {
            st.config.cluster.ipsets.remove(&name.to_ascii_lowercase());
        }
        FwStep::RulePut { id, rule, index } => {
            let rules = rules_mut(&mut st.config, scope);
            if let Some(p) = position(rules, id) {
                rules.remove(p);
            }
            if let Ok(r) = Rule::from_api_json(rule) {
                let at = (*index).min(rules.len());
                rules.insert(at, canonical(r));
            }
        }
        FwStep::RuleDelete { id } => {
            let rules = rules_mut(&mut st.config, scope);
            if let Some(p) = position(rules, id) {
                rules.remove(p);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Proof
// ---------------------------------------------------------------------------

/// One proved (or failed) flow class: a management source to a port on the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofLine {
    /// Who: `managementAccessCidrs`, `tailscale`, `labwright client`.
    pub label: String,
    pub source: String,
    pub port: u16,
    pub ok: bool,
    /// What decided (for the first failing address when not ok).
    pub decided_by: String,
    /// A failing address, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<String>,
    /// The refusal for this flow (flow, deciding rule, fix), when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The lockout proof as the plan shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallReport {
    /// `iptables` or `nftables` (the node's `nftables` option after the plan).
    pub backend: String,
    /// The address labwright connects from, as the node sees it.
    pub client_addr: Option<String>,
    /// What was evaluated: `post-plan (N steps)` or `current`.
    pub evaluated: String,
    pub proof_ok: bool,
    /// The proof failed and `LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF` let the plan through.
    #[serde(default)]
    pub proof_skipped: bool,
    /// Per source and port, for the final state.
    pub lines: Vec<ProofLine>,
    /// Why the plan is refused (flow, deciding rule, fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl FirewallReport {
    /// One line per source, for the plan's notes.
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!(
            "lockout proof ({}, {} backend{}): {}",
            self.evaluated,
            self.backend,
            self.client_addr
                .as_ref()
                .map(|a| format!(", client {a}"))
                .unwrap_or_else(|| {
                    format!(", client address unknown: set {CLIENT_ADDR_ENV} to cover it")
                }),
            if self.proof_ok {
                "PASSED"
            } else if self.proof_skipped {
                "FAILED — SKIPPED BY LABWRIGHT_UNSAFE_SKIP_LOCKOUT_PROOF"
            } else {
                "FAILED"
            }
        )];
        for l in &self.lines {
            out.push(format!(
                "  {} {} → tcp/{}: {} ({})",
                l.label,
                l.source,
                l.port,
                if l.ok { "reaches" } else { "BLOCKED" },
                l.decided_by
            ));
        }
        out
    }
}

/// Sources that must keep reaching 22 and 8006: `managementAccessCidrs`, the
/// Tailscale range when Tailscale management is expected, and labwright's own address.
pub fn proof_sources(spec: &Spec, client_addr: Option<IpAddr>) -> Vec<(String, IpNet)> {
    let mut out: Vec<(String, IpNet)> = labwright_policy::management_sources(spec)
        .into_iter()
        .map(|(c, _, rule)| {
            let label = if rule == "tailscale-allow" {
                "tailscale range"
            } else {
                "managementAccessCidrs"
            };
            (label.to_string(), c.0)
        })
        .collect();
    if let Some(a) = client_addr {
        out.push(("labwright client".into(), IpNet::from(a)));
    }
    out
}

fn fix_for(label: &str, source: &IpNet, port: u16, d: &DecidedBy) -> String {
    let add = format!(
        "add `{{ id: mgmt-{port}-{}, action: ACCEPT, source: {source}, proto: tcp, dport: {port} }}` at the top of firewall.datacenter.rules",
        slug(&source.to_string())
    );
    let extra = match d {
        DecidedBy::Rule { comment, .. } => match comment.as_deref().and_then(comment_id) {
            Some(id) => format!(", or change rule `{id}`, which matches this flow first"),
            None => ", or remove the rule above on the node (it is not labwright's)".into(),
        },
        DecidedBy::Policy { .. } => String::new(),
        DecidedBy::Blacklist { entry } => {
            format!(", and remove {entry} from the `blacklist` ipset")
        }
        _ => String::new(),
    };
    let who = if label == "labwright client" {
        format!(
            " (or, if the node sees you under another address, set {CLIENT_ADDR_ENV} / the target's client-address)"
        )
    } else {
        String::new()
    };
    format!("{add}{extra}{who}")
}

/// Proves every source reaches tcp/22 and tcp/8006 on the node under the backend the
/// node runs. Returns the lines and the first failure, rendered.
pub fn prove_management(
    cfg: &FirewallConfig,
    node: &str,
    sources: &[(String, IpNet)],
) -> (Vec<ProofLine>, Option<String>) {
    let backend = Backend::for_node(cfg, node);
    let target = Target::Node(node.to_string());
    let mut lines = Vec::new();
    let mut failure = None;
    for (label, src) in sources {
        for port in MGMT_PORTS {
            match prove_reach(cfg, *src, &target, Protocol::TCP, Some(port), backend) {
                Ok(p) => {
                    let mut deciders: Vec<String> = p
                        .classes
                        .iter()
                        .map(|c| c.decision.decided_by.to_string())
                        .collect();
                    deciders.dedup();
                    lines.push(ProofLine {
                        label: label.clone(),
                        source: src.to_string(),
                        port,
                        ok: true,
                        decided_by: deciders.join("; "),
                        counterexample: None,
                        failure: None,
                    });
                }
                Err(cx) => {
                    let msg = format!(
                        "{label} {src} would lose tcp/{port} on node {node}: a new connection from {} is {} by {} ({backend} backend). Fix: {}",
                        cx.address,
                        cx.decision.verdict,
                        cx.decision.decided_by,
                        fix_for(label, src, port, &cx.decision.decided_by)
                    );
                    if failure.is_none() {
                        failure = Some(msg.clone());
                    }
                    lines.push(ProofLine {
                        failure: Some(msg),
                        label: label.clone(),
                        source: src.to_string(),
                        port,
                        ok: false,
                        decided_by: cx.decision.decided_by.to_string(),
                        counterexample: Some(format!("{} ({})", cx.address, cx.range)),
                    });
                }
            }
        }
    }
    (lines, failure)
}

// ---------------------------------------------------------------------------
// Diff → actions
// ---------------------------------------------------------------------------

/// What the firewall adds to a plan.
#[derive(Debug, Default)]
pub struct FwPlan {
    pub actions: Vec<Action>,
    pub blocked: Vec<Held>,
    pub notes: Vec<String>,
    pub report: Option<FirewallReport>,
}

struct Pending {
    id: String,
    kind: &'static str,
    op: FwOp,
    changes: Vec<Change>,
    reason: String,
    rollback: String,
    extra_deps: Vec<String>,
    phase: u8,
}

fn change(field: impl Into<String>, before: Option<String>, after: Option<String>) -> Change {
    Change {
        field: field.into(),
        before,
        after,
        effect: Effect::Hotplug,
    }
}

/// Diffs the spec against the observed firewall. `existing` are the plan's other
/// actions (VM firewall actions wait for the VM's creation).
pub fn plan_firewall(spec: &Spec, obs: &ObservedFirewall, existing: &[Action]) -> FwPlan {
    let node = spec.node.name.clone();
    let vm_node = |vmid: u32| -> String {
        obs.vm_nodes
            .get(&vmid)
            .cloned()
            .unwrap_or_else(|| node.clone())
    };
    let want = desired_fw(spec, &vm_node);
    let mut out = FwPlan {
        blocked: want.held.clone(),
        notes: want.notes.clone(),
        ..FwPlan::default()
    };
    let mut st = FwState::of(obs);
    let mut pend: Vec<Pending> = Vec::new();

    // 1. Aliases.
    for (name, (cidr, comment)) in &want.aliases {
        let have = st
            .config
            .cluster
            .aliases
            .get(&name.to_ascii_lowercase())
            .cloned();
        let step_revert = match &have {
            None => Some((
                FwStep::AliasCreate {
                    name: name.clone(),
                    cidr: cidr.clone(),
                    comment: comment.clone(),
                },
                FwStep::AliasDelete { name: name.clone() },
                None,
            )),
            Some(a) if norm_cidr(&a.cidr.to_string()) != norm_cidr(cidr) => Some((
                FwStep::AliasUpdate {
                    name: a.name.clone(),
                    cidr: cidr.clone(),
                    comment: comment.clone().or(a.comment.clone()),
                },
                FwStep::AliasUpdate {
                    name: a.name.clone(),
                    cidr: a.cidr.to_string(),
                    comment: a.comment.clone(),
                },
                Some(a.cidr.to_string()),
            )),
            Some(_) => None,
        };
        if let Some((step, revert, before)) = step_revert {
            model_step(&mut st, &FwScope::Cluster, &step);
            pend.push(Pending {
                id: format!("fw-alias-{}", slug(name)),
                kind: "firewall.alias",
                rollback: match &before {
                    None => {
                        format!("delete the alias: `pvesh delete /cluster/firewall/aliases/{name}`")
                    }
                    Some(b) => format!(
                        "set it back: `pvesh set /cluster/firewall/aliases/{name} --cidr {b}`"
                    ),
                },
                changes: vec![change(format!("alias {name}"), before, Some(cidr.clone()))],
                reason: "declared in the spec".into(),
                op: FwOp {
                    scope: FwScope::Cluster,
                    steps: vec![step],
                    revert: vec![revert],
                },
                extra_deps: Vec::new(),
                phase: 0,
            });
        }
    }

    // 2. IP sets.
    for (name, entries) in &want.ipsets {
        let have = st
            .config
            .cluster
            .ipsets
            .get(&name.to_ascii_lowercase())
            .cloned();
        let have_entries: Vec<String> = have
            .as_ref()
            .map(|s| {
                s.entries
                    .iter()
                    .map(|e| norm_cidr(&e.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut steps = Vec::new();
        let mut revert = Vec::new();
        let mut changes = Vec::new();
        if have.is_none() {
            steps.push(FwStep::IpsetCreate { name: name.clone() });
            revert.push(FwStep::IpsetDelete { name: name.clone() });
            changes.push(change(
                format!("ipset {name}"),
                None,
                Some("created".into()),
            ));
        }
        for e in entries {
            if !have_entries.contains(e) {
                steps.push(FwStep::IpsetAdd {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                if have.is_some() {
                    revert.push(FwStep::IpsetRemove {
                        name: name.clone(),
                        cidr: e.clone(),
                    });
                }
                changes.push(change(format!("ipset {name}"), None, Some(e.clone())));
            }
        }
        for e in &have_entries {
            if !entries.contains(e) {
                steps.push(FwStep::IpsetRemove {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                revert.push(FwStep::IpsetAdd {
                    name: name.clone(),
                    cidr: e.clone(),
                });
                changes.push(change(format!("ipset {name}"), Some(e.clone()), None));
            }
        }
        if steps.is_empty() {
            continue;
        }
        for s in &steps {
            model_step(&mut st, &FwScope::Cluster, s);
        }
        revert.reverse();
        pend.push(Pending {
            id: format!("fw-ipset-{}", slug(name)),
            kind: "firewall.ipset",
            rollback: format!("restore the entries of ipset `{name}` shown under changes"),
            changes,
            reason: "declared in the spec".into(),
            op: FwOp {
                scope: FwScope::Cluster,
                steps,
                revert,
            },
            extra_deps: Vec::new(),
            phase: 0,
        });
    }

    // 3. Rules, per scope: puts in spec order, then deletes of stale managed rules.
    let vm_dep = |scope: &FwScope| -> (Vec<String>, u8, bool) {
        if let FwScope::Vm { vmid, .. } = scope {
            let create = format!("vm-{vmid}-create");
            let phase = spec
                .vms
                .iter()
                .find(|v| v.vmid == *vmid)
                .map_or(0, |v| v.phase.0);
            let exists = obs.config.vms.contains_key(vmid);
            if existing.iter().any(|a| a.id == create) {
                return (vec![create], phase, true);
            }
            return (Vec::new(), phase, exists);
        }
        (Vec::new(), 0, true)
    };
    let mut absent_vms = BTreeSet::new();
    for (scope, rules) in &want.rules {
        let (deps, phase, present) = vm_dep(scope);
        if !present {
            if let FwScope::Vm { vmid, .. } = scope {
                absent_vms.insert(*vmid);
            }
            continue;
        }
        let before_rules = rules_mut(&mut st.config, scope).clone();
        let wanted_ids: BTreeSet<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
        for (i, (id, rule)) in rules.iter().enumerate() {
            let cur = rules_mut(&mut st.config, scope).clone();
            let pos = position(&cur, id);
            let same = pos.and_then(|p| cur.get(p)).is_some_and(|r| r == rule);
            if pos == Some(i) && same {
                continue;
            }
            let step = FwStep::RulePut {
                id: id.clone(),
                rule: rule.to_api_json(),
                index: i,
            };
            let orig =
                position(&before_rules, id).and_then(|p| before_rules.get(p).map(|r| (p, r)));
            let revert = match orig {
                None => FwStep::RuleDelete { id: id.clone() },
                Some((p, r)) => FwStep::RulePut {
                    id: id.clone(),
                    rule: r.to_api_json(),
                    index: p,
                },
            };
            let (changes, reason) = match pos.and_then(|p| cur.get(p)) {
                None => (
                    vec![change(format!("rule {id}"), None, Some(rule.to_string()))],
                    "declared in the spec, absent on the node".to_string(),
                ),
                Some(old) if old != rule => (
                    vec![change(
                        format!("rule {id}"),
                        Some(old.to_string()),
                        Some(rule.to_string()),
                    )],
                    "the rule on the node differs from the spec".to_string(),
                ),
                Some(_) => (
                    vec![change(
                        format!("rule {id} position"),
                        pos.map(|p| p.to_string()),
                        Some(i.to_string()),
                    )],
                    "rule order differs from the spec".to_string(),
                ),
            };
            model_step(&mut st, scope, &step);
            pend.push(Pending {
                id: format!("fw-{}-rule-{}", scope.slug(), slug(id)),
                kind: "firewall.rule",
                rollback: match orig {
                    None => format!(
                        "delete the rule with comment [lw:{id}] ({} rules)",
                        scope.target()
                    ),
                    Some(_) => format!("restore the previous rule [lw:{id}] (see changes)"),
                },
                changes,
                reason,
                op: FwOp {
                    scope: scope.clone(),
                    steps: vec![step],
                    revert: vec![revert],
                },
                extra_deps: deps.clone(),
                phase,
            });
        }
        let stale: Vec<(usize, Rule)> = before_rules
            .iter()
            .enumerate()
            .filter(|(_, r)| rule_id(r).is_some_and(|id| !wanted_ids.contains(id)))
            .map(|(p, r)| (p, r.clone()))
            .collect();
        for (p, r) in stale {
            let Some(id) = rule_id(&r).map(str::to_string) else {
                continue;
            };
            let step = FwStep::RuleDelete { id: id.clone() };
            model_step(&mut st, scope, &step);
            pend.push(Pending {
                id: format!("fw-{}-rule-{}-delete", scope.slug(), slug(&id)),
                kind: "firewall.rule-delete",
                rollback: format!("re-create it: {r}"),
                changes: vec![change(format!("rule {id}"), Some(r.to_string()), None)],
                reason: "managed by labwright ([lw:…] comment) and no longer in the spec".into(),
                op: FwOp {
                    scope: scope.clone(),
                    steps: vec![step],
                    revert: vec![FwStep::RulePut {
                        id,
                        rule: r.to_api_json(),
                        index: p,
                    }],
                },
                extra_deps: deps.clone(),
                phase,
            });
        }
    }
    for vmid in &absent_vms {
        out.notes.push(format!(
            "VM {vmid}'s firewall is planned once the VM exists (it is not on the node and no create is planned)"
        ));
    }

    // 4. Options: everything but the datacenter enable/policy_in first, then the
    // datacenter switch, then the DROP policy last.
    let mut late: Vec<(FwScope, String, String)> = Vec::new();
    for (scope, opts) in &want.options {
        if let FwScope::Vm { vmid, .. } = scope
            && absent_vms.contains(vmid)
        {
            continue;
        }
        let (deps, phase, _) = vm_dep(scope);
        let have = st
            .options
            .get(&scope_key(scope))
            .cloned()
            .unwrap_or_default();
        let mut set = Vec::new();
        let mut rset = Vec::new();
        let mut rdel = Vec::new();
        let mut changes = Vec::new();
        for (k, v) in opts {
            let cur = have.get(k).cloned();
            if cur.as_deref().map(str::trim) == Some(v.as_str()) {
                continue;
            }
            if *scope == FwScope::Cluster && (k == "enable" || k == "policy_in") {
                late.push((scope.clone(), k.clone(), v.clone()));
                continue;
            }
            changes.push(change(k.clone(), cur.clone(), Some(v.clone())));
            set.push((k.clone(), v.clone()));
            match cur {
                Some(c) => rset.push((k.clone(), c)),
                None => rdel.push(k.clone()),
            }
        }
        if set.is_empty() {
            continue;
        }
        let step = FwStep::SetOptions {
            set,
            delete: Vec::new(),
        };
        model_step(&mut st, scope, &step);
        pend.push(Pending {
            id: format!("fw-{}-options", scope.slug()),
            kind: "firewall.options",
            rollback: format!("set the previous values again on {}", scope.target()),
            changes,
            reason: "the options on the node differ from the spec".into(),
            op: FwOp {
                scope: scope.clone(),
                steps: vec![step],
                revert: vec![FwStep::SetOptions {
                    set: rset,
                    delete: rdel,
                }],
            },
            extra_deps: deps,
            phase,
        });
    }
    // Tightening (DROP/REJECT) goes after the switch, last of all; an ACCEPT policy
    // goes before it, so the switch never turns on under PVE's default DROP.
    late.sort_by_key(|(_, k, v)| match (k.as_str(), v.as_str()) {
        ("enable", _) => 1,
        (_, "ACCEPT") => 0,
        _ => 2,
    });
    for (scope, k, v) in late {
        let cur = st
            .options
            .get(&scope_key(&scope))
            .and_then(|m| m.get(&k))
            .cloned();
        let step = FwStep::SetOptions {
            set: vec![(k.clone(), v.clone())],
            delete: Vec::new(),
        };
        let revert = match &cur {
            Some(c) => FwStep::SetOptions {
                set: vec![(k.clone(), c.clone())],
                delete: Vec::new(),
            },
            None => FwStep::SetOptions {
                set: Vec::new(),
                delete: vec![k.clone()],
            },
        };
        model_step(&mut st, &scope, &step);
        let (id, reason) = if k == "enable" {
            (
                "fw-cluster-enable".to_string(),
                "the datacenter firewall switch differs from the spec (switched after rules are in place)",
            )
        } else if v == "ACCEPT" {
            (
                "fw-cluster-policy-in".to_string(),
                "the inbound policy differs from the spec (an ACCEPT policy goes before the switch)",
            )
        } else {
            (
                "fw-cluster-policy-in".to_string(),
                "the inbound policy differs from the spec (applied last, after the allows exist)",
            )
        };
        pend.push(Pending {
            id,
            kind: "firewall.options",
            rollback: match &cur {
                Some(c) => format!("`pvesh set /cluster/firewall/options --{k} {c}`"),
                None => format!("`pvesh set /cluster/firewall/options --delete {k}`"),
            },
            changes: vec![change(k.clone(), cur, Some(v))],
            reason: reason.into(),
            op: FwOp {
                scope,
                steps: vec![step],
                revert: vec![revert],
            },
            extra_deps: Vec::new(),
            phase: 0,
        });
    }

    // Chain: every firewall action waits for the previous one (probe in between).
    let mut prev: Option<String> = None;
    let mut actions = Vec::new();
    for p in pend {
        let mut deps = p.extra_deps;
        if let Some(pr) = &prev {
            deps.push(pr.clone());
        }
        prev = Some(p.id.clone());
        let op = Op::Firewall(p.op);
        actions.push(Action {
            id: p.id,
            kind: p.kind.into(),
            target: match &op {
                Op::Firewall(f) => f.scope.target(),
                _ => String::new(),
            },
            risk: Risk::High,
            phase: p.phase,
            pre_snapshot: None,
            rollback_hint: format!(
                "{}; if the node no longer answers, follow {RUNBOOK} from the console",
                p.rollback
            ),
            expected_downtime:
                "none expected (lockout proof below); a failed probe reverts this step".into(),
            downtime_seconds: 0,
            reason: p.reason,
            changes: p.changes,
            depends_on: deps,
            api_calls: Vec::new(),
            storage_lock: None,
            op,
        });
    }

    // The proof: every intermediate state, not only the last.
    let sources = proof_sources(spec, obs.client_addr);
    let mut proof_state = FwState::of(obs);
    let mut failure = None;
    if !obs.unreadable.is_empty() {
        failure = Some(format!(
            "cannot prove management access: the node has firewall entries labwright cannot read ({}); fix or remove them first",
            obs.unreadable.join("; ")
        ));
    }
    // Access only grows along the way: a step must not take away access the node
    // gives today or that an earlier step gave (access still missing is the end
    // state's business, proved below).
    let (now_lines, _) = prove_management(&proof_state.config, &node, &sources);
    let mut had: BTreeSet<(String, u16)> = now_lines
        .iter()
        .filter(|l| l.ok)
        .map(|l| (l.source.clone(), l.port))
        .collect();
    for a in &actions {
        if let Op::Firewall(f) = &a.op {
            for s in &f.steps {
                model_step(&mut proof_state, &f.scope, s);
            }
            if failure.is_none() {
                let (lines, _) = prove_management(&proof_state.config, &node, &sources);
                if let Some(l) = lines
                    .iter()
                    .find(|l| !l.ok && had.contains(&(l.source.clone(), l.port)))
                {
                    failure = Some(format!(
                        "after step `{}`: {}",
                        a.id,
                        l.failure.as_deref().unwrap_or("access lost")
                    ));
                }
                had.extend(
                    lines
                        .iter()
                        .filter(|l| l.ok)
                        .map(|l| (l.source.clone(), l.port)),
                );
            }
        }
    }
    let (lines, final_fail) = prove_management(&proof_state.config, &node, &sources);
    if failure.is_none()
        && let Some(msg) = final_fail
    {
        failure = Some(msg);
    }
    if active_fw_vms(spec).next().is_some() && !proof_state.config.cluster.options.enable {
        out.notes.push(
            "VM allowlists filter nothing while the datacenter firewall is off: PVE's master switch is `firewall.datacenter.options.enable`".into(),
        );
    }
    let touches = !actions.is_empty();
    let allowed = spec.safety_guards.allow_firewall_changes;
    let report = FirewallReport {
        backend: Backend::for_node(&proof_state.config, &node).to_string(),
        client_addr: obs.client_addr.map(|a| a.to_string()),
        evaluated: if touches && allowed {
            format!("post-plan, every one of {} steps", actions.len())
        } else {
            "current".into()
        },
        proof_ok: failure.is_none(),
        proof_skipped: false,
        lines,
        failure,
    };

    if !allowed && touches {
        for a in actions {
            out.blocked.push(Held {
                target: a.target.clone(),
                reason: format!("{} `{}` held back by the firewall guard", a.kind, a.id),
                unblock:
                    "set `safetyGuards.allowFirewallChanges: true` (the lockout proof runs then)"
                        .into(),
            });
        }
        if !report.proof_ok {
            out.notes
                .push("the node's CURRENT firewall fails the lockout proof (see below)".into());
        }
        out.notes.extend(report.summary());
        out.report = Some(report);
        return out;
    }
    if !touches && !report.proof_ok {
        out.notes.push(
            "the node's CURRENT firewall fails the lockout proof; this plan does not change it"
                .into(),
        );
    }
    out.notes.extend(report.summary());
    out.actions = actions;
    out.report = Some(report);
    out
}

/// The plan may be applied: its proof passed, or the dangerous skip switch is set.
pub fn check_plan_proof(plan: &Plan, skip: bool) -> Result<(), EngineError> {
    let touches = plan.actions.iter().any(|a| matches!(a.op, Op::Firewall(_)));
    if !touches {
        return Ok(());
    }
    match &plan.firewall {
        None => Err(EngineError::Refused(
            "the plan changes the firewall but carries no lockout proof; run `labwright plan` again".into(),
        )),
        Some(r) if !r.proof_ok && !skip => Err(EngineError::Refused(format!(
            "lockout proof failed, refusing to touch the firewall: {}",
            r.failure.as_deref().unwrap_or("(no detail)")
        ))),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------

/// How firewall steps are applied and checked.
#[derive(Clone, Debug, Default)]
pub struct FwApplyOptions {
    /// Build a fresh client from this after each firewall step and `GET /version`.
    /// `None` skips the probe (with a note).
    pub probe: Option<ClientConfig>,
    /// Wait before probing: `pve-firewall` recompiles every 10 s on a real node.
    pub settle: Duration,
    /// Apply even though the lockout proof failed (tests only; see [`SKIP_PROOF_ENV`]).
    pub unsafe_skip_proof: bool,
}

fn to_pve_rule(v: &Value, enable: bool) -> FirewallRule {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    FirewallRule {
        pos: None,
        rule_type: s("type").unwrap_or_else(|| "in".into()),
        action: s("action").unwrap_or_default(),
        enable: Some(enable),
        macro_name: s("macro"),
        proto: s("proto"),
        dport: s("dport"),
        sport: s("sport"),
        source: s("source"),
        dest: s("dest"),
        iface: s("iface"),
        log: s("log"),
        comment: s("comment"),
        icmp_type: s("icmp-type"),
        ipversion: None,
        digest: None,
    }
}

const RULE_FIELDS: [&str; 10] = [
    "macro",
    "proto",
    "dport",
    "sport",
    "source",
    "dest",
    "iface",
    "log",
    "comment",
    "icmp-type",
];

fn find_rule(list: &[FirewallRule], id: &str) -> Option<(u32, Option<String>)> {
    list.iter().find_map(|r| {
        let c = r.comment.as_deref()?;
        (comment_id(c) == Some(id)).then(|| (r.pos.unwrap_or(0), r.digest.clone()))
    })
}

fn list_digest(list: &[FirewallRule]) -> Option<String> {
    list.first().and_then(|r| r.digest.clone())
}

/// The `moveto` that brings the rule at `pos` to `target`. PVE's `update_rule`
/// re-inserts the rule *before the original index* `moveto` (so moving down needs
/// `target + 1`, and anything past the end appends); an implementation that removes
/// first and then inserts at `moveto` lands one further down, which the caller sees on
/// re-listing and corrects with a move up — where both readings agree.
fn moveto_for(pos: u32, target: u32) -> u32 {
    if pos > target {
        target
    } else {
        target.saturating_add(1)
    }
}

async fn move_rule(
    client: &PveClient,
    ps: &FirewallScope,
    id: &str,
    index: usize,
) -> Result<(), String> {
    // Where the rule lands is checked after every move (see `moveto_for`).
    for _ in 0..3u32 {
        let list = client.firewall_rules(ps).await.map_err(|e| e.to_string())?;
        let Some((pos, _)) = find_rule(&list, id) else {
            return Err(format!("rule [lw:{id}] vanished while moving it"));
        };
        let last = list.len().saturating_sub(1);
        let target = u32::try_from(index.min(last)).unwrap_or(u32::MAX);
        if pos == target {
            return Ok(());
        }
        let moveto = moveto_for(pos, target);
        client
            .firewall_rule_move(ps, pos, moveto, list_digest(&list).as_deref())
            .await
            .map_err(|e| format!("move rule [lw:{id}] to {index}: {e}"))?;
    }
    let list = client.firewall_rules(ps).await.map_err(|e| e.to_string())?;
    match find_rule(&list, id) {
        Some((pos, _)) if pos as usize == index.min(list.len().saturating_sub(1)) => Ok(()),
        _ => Err(format!("could not move rule [lw:{id}] to position {index}")),
    }
}

async fn run_step(client: &PveClient, scope: &FwScope, step: &FwStep) -> Result<(), String> {
    let ps = scope.pve();
    let e = |what: String| move |err: labwright_pve::Error| format!("{what}: {err}");
    match step {
        FwStep::SetOptions { set, delete } => {
            let mut p = Params::new();
            for (k, v) in set {
                p.insert(k.clone(), v.as_str());
            }
            let del: Vec<&str> = delete.iter().map(String::as_str).collect();
            client
                .firewall_set_options(&ps, p, &del, None)
                .await
                .map_err(e(format!("set options on {}", scope.target())))
        }
        FwStep::AliasCreate {
            name,
            cidr,
            comment,
        } => {
            let have = client
                .firewall_aliases(&ps)
                .await
                .map_err(e("list aliases".into()))?;
            if have.iter().any(|a| a.name.eq_ignore_ascii_case(name)) {
                client
                    .firewall_alias_update(&ps, name, cidr, comment.as_deref(), None, None)
                    .await
                    .map_err(e(format!("update alias {name}")))
            } else {
                client
                    .firewall_alias_create(&ps, name, cidr, comment.as_deref())
                    .await
                    .map_err(e(format!("create alias {name}")))
            }
        }
        FwStep::AliasUpdate {
            name,
            cidr,
            comment,
        } => client
            .firewall_alias_update(&ps, name, cidr, comment.as_deref(), None, None)
            .await
            .map_err(e(format!("update alias {name}"))),
        FwStep::AliasDelete { name } => client
            .firewall_alias_delete(&ps, name, None)
            .await
            .map_err(e(format!("delete alias {name}"))),
        FwStep::IpsetCreate { name } => {
            let have = client
                .firewall_ipsets(&ps)
                .await
                .map_err(e("list ipsets".into()))?;
            if have.iter().any(|s| s.name.eq_ignore_ascii_case(name)) {
                return Ok(());
            }
            client
                .firewall_ipset_create(&ps, name, Some("labwright"))
                .await
                .map_err(e(format!("create ipset {name}")))
        }
        FwStep::IpsetAdd { name, cidr } => {
            let have = client
                .firewall_ipset_entries(&ps, name)
                .await
                .map_err(e(format!("list ipset {name}")))?;
            if have.iter().any(|x| norm_cidr(&x.cidr) == norm_cidr(cidr)) {
                return Ok(());
            }
            client
                .firewall_ipset_add(&ps, name, cidr, None, false)
                .await
                .map_err(e(format!("add {cidr} to ipset {name}")))
        }
        FwStep::IpsetRemove { name, cidr } => {
            let have = client
                .firewall_ipset_entries(&ps, name)
                .await
                .map_err(e(format!("list ipset {name}")))?;
            let Some(x) = have.iter().find(|x| norm_cidr(&x.cidr) == norm_cidr(cidr)) else {
                return Ok(());
            };
            client
                .firewall_ipset_remove(&ps, name, &x.cidr, None)
                .await
                .map_err(e(format!("remove {cidr} from ipset {name}")))
        }
        FwStep::IpsetDelete { name } => client
            .firewall_ipset_delete(&ps, name, true)
            .await
            .map_err(e(format!("delete ipset {name}"))),
        FwStep::RulePut { id, rule, index } => {
            let want_enable = rule.get("enable").and_then(Value::as_u64) == Some(1);
            let is_accept = rule.get("action").and_then(Value::as_str) == Some("ACCEPT")
                && rule.get("type").and_then(Value::as_str) != Some(RuleKind::Group.as_api());
            let list = client
                .firewall_rules(&ps)
                .await
                .map_err(e("list rules".into()))?;
            let mut enable_after = false;
            match find_rule(&list, id) {
                None => {
                    // New rules land at the top: only an ACCEPT may be live there.
                    let live = want_enable && is_accept;
                    enable_after = want_enable && !live;
                    client
                        .firewall_rule_create(
                            &ps,
                            &to_pve_rule(rule, live),
                            None,
                            list_digest(&list).as_deref(),
                        )
                        .await
                        .map_err(e(format!("create rule [lw:{id}]")))?;
                }
                Some((pos, digest)) => {
                    let delete: Vec<&str> = RULE_FIELDS
                        .iter()
                        .copied()
                        .filter(|k| rule.get(*k).is_none())
                        .collect();
                    client
                        .firewall_rule_update(
                            &ps,
                            pos,
                            &to_pve_rule(rule, want_enable),
                            &delete,
                            digest.as_deref(),
                        )
                        .await
                        .map_err(e(format!("update rule [lw:{id}]")))?;
                }
            }
            move_rule(client, &ps, id, *index).await?;
            if enable_after {
                let list = client
                    .firewall_rules(&ps)
                    .await
                    .map_err(e("list rules".into()))?;
                let Some((pos, digest)) = find_rule(&list, id) else {
                    return Err(format!("rule [lw:{id}] vanished before it was enabled"));
                };
                client
                    .firewall_rule_update(
                        &ps,
                        pos,
                        &to_pve_rule(rule, true),
                        &[],
                        digest.as_deref(),
                    )
                    .await
                    .map_err(e(format!("enable rule [lw:{id}]")))?;
            }
            Ok(())
        }
        FwStep::RuleDelete { id } => {
            let list = client
                .firewall_rules(&ps)
                .await
                .map_err(e("list rules".into()))?;
            let Some((pos, digest)) = find_rule(&list, id) else {
                return Ok(());
            };
            client
                .firewall_rule_delete(&ps, pos, digest.as_deref())
                .await
                .map_err(e(format!("delete rule [lw:{id}]")))
        }
    }
}

/// `GET /version` over a brand-new client (new TCP and TLS connection): what a new
/// SSH or browser session would meet. No retries: a refused connection is the answer.
pub async fn probe_fresh(cfg: &ClientConfig) -> Result<String, String> {
    let mut c = cfg
        .clone()
        .retry(RetryPolicy::none())
        .request_timeout(Duration::from_secs(10));
    c.connect_timeout = Duration::from_secs(5);
    let client = PveClient::new(c).map_err(|e| e.to_string())?;
    client
        .version()
        .await
        .map(|v| v.version)
        .map_err(|e| e.to_string())
}

/// Runs one firewall action: its steps, then the fresh-connection probe; when the
/// probe fails, reverts the step over the kept-alive connection and probes again.
pub async fn run_firewall_op(
    client: &PveClient,
    op: &FwOp,
    opts: &FwApplyOptions,
) -> Result<(), String> {
    for s in &op.steps {
        run_step(client, &op.scope, s).await?;
    }
    let Some(cfg) = &opts.probe else {
        return Ok(());
    };
    if !opts.settle.is_zero() {
        tokio::time::sleep(opts.settle).await;
    }
    let Err(first) = probe_fresh(cfg).await else {
        return Ok(());
    };
    let mut revert_err = None;
    for s in &op.revert {
        if let Err(e) = run_step(client, &op.scope, s).await {
            revert_err = Some(e);
            break;
        }
    }
    if revert_err.is_none() && !opts.settle.is_zero() {
        tokio::time::sleep(opts.settle).await;
    }
    match (revert_err, probe_fresh(cfg).await) {
        (None, Ok(_)) => Err(format!(
            "probe over a fresh connection failed after this step ({first}); the step was reverted and the node answers again. Stopped."
        )),
        (Some(re), _) => Err(format!(
            "probe over a fresh connection failed after this step ({first}) and the revert failed too ({re}). The node may be unreachable: recover from the console with {RUNBOOK}"
        )),
        (None, Err(again)) => Err(format!(
            "probe over a fresh connection failed after this step ({first}); the step was reverted but the node still refuses new connections ({again}). Recover from the console with {RUNBOOK}"
        )),
    }
}

// ---------------------------------------------------------------------------
// Configurations for `firewall simulate` / `firewall matrix`
// ---------------------------------------------------------------------------

/// A node with no firewall configuration at all (a fresh install), with the VMs whose
/// firewall the spec declares present and empty.
pub fn empty_observed(spec: &Spec, client_addr: Option<IpAddr>) -> ObservedFirewall {
    let node = spec.node.name.clone();
    let mut config = FirewallConfig::default();
    let host = labwright_firewall::HostFirewall {
        network: labwright_firewall::NodeNetwork {
            addrs: node_addrs(spec),
            default_iface: Some("vmbr0".into()),
        },
        ..Default::default()
    };
    config.nodes.insert(node.clone(), host);
    let mut options = BTreeMap::new();
    options.insert(scope_key(&FwScope::Cluster), BTreeMap::new());
    options.insert(
        scope_key(&FwScope::Node { node: node.clone() }),
        BTreeMap::new(),
    );
    for vm in active_fw_vms(spec) {
        let nics = vm
            .nics
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    GuestNic {
                        firewall: n.firewall,
                        addrs: n.address.map(|a| vec![a.0.addr()]).unwrap_or_default(),
                    },
                )
            })
            .collect();
        config.vms.insert(
            vm.vmid,
            GuestFirewall {
                node: Some(node.clone()),
                nics,
                ..GuestFirewall::default()
            },
        );
        options.insert(
            scope_key(&FwScope::Vm {
                node: node.clone(),
                vmid: vm.vmid,
            }),
            BTreeMap::new(),
        );
    }
    ObservedFirewall {
        node,
        options,
        config,
        client_addr,
        unreadable: Vec::new(),
        requests: 0,
        vm_nodes: BTreeMap::new(),
    }
}

/// The configuration `obs` would have after applying the spec (guard ignored: this
/// answers "what would it be", it changes nothing).
pub fn post_plan_config(spec: &Spec, obs: &ObservedFirewall) -> FirewallConfig {
    let mut s = spec.clone();
    s.safety_guards.allow_firewall_changes = true;
    let p = plan_firewall(&s, obs, &[]);
    let mut st = FwState::of(obs);
    for a in &p.actions {
        if let Op::Firewall(f) = &a.op {
            for step in &f.steps {
                model_step(&mut st, &f.scope, step);
            }
        }
    }
    st.config
}

/// The configuration the spec declares, compiled onto a fresh node.
pub fn compile_spec(spec: &Spec) -> FirewallConfig {
    post_plan_config(spec, &empty_observed(spec, None))
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Checks on the observed firewall: it matches the spec, and every management source
/// (and labwright's own address, when known) provably reaches 22 and 8006.
pub fn validate_checks(spec: &Spec, obs: &ObservedFirewall) -> Vec<crate::validate::Check> {
    use crate::validate::{Check, CheckStatus};
    let mut out = Vec::new();
    let p = plan_firewall(spec, obs, &[]);
    let allowed = spec.safety_guards.allow_firewall_changes;
    let pending: Vec<String> = if allowed {
        p.actions.iter().map(|a| a.id.clone()).collect()
    } else {
        p.blocked.iter().map(|b| b.reason.clone()).collect()
    };
    out.push(Check {
        name: "firewall matches the spec".into(),
        status: if pending.is_empty() {
            CheckStatus::Pass
        } else if allowed {
            CheckStatus::Fail
        } else {
            // Held back by the guard: the spec does not allow labwright to close the
            // gap, so it is reported, not failed (like other held changes).
            CheckStatus::Skipped
        },
        detail: if pending.is_empty() {
            "options, aliases, ipsets and [lw:] rules as declared".into()
        } else if allowed {
            format!("pending: {}", pending.join(", "))
        } else {
            format!(
                "differs, held back by `allowFirewallChanges: false`: {}",
                pending.join("; ")
            )
        },
    });
    let sources = proof_sources(spec, obs.client_addr);
    let (lines, fail) = prove_management(&obs.config, &obs.node, &sources);
    let ok = fail.is_none() && obs.unreadable.is_empty();
    out.push(Check {
        name: "management access proved on the node's firewall".into(),
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: match fail {
            Some(f) => f,
            None if !obs.unreadable.is_empty() => {
                format!("unreadable entries: {}", obs.unreadable.join("; "))
            }
            None => format!(
                "{} source×port flows accepted ({} backend)",
                lines.len(),
                Backend::for_node(&obs.config, &obs.node)
            ),
        },
    });
    out
}

#[cfg(test)]
#[path = "firewall_tests.rs"]
mod tests;
