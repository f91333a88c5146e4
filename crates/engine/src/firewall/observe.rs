//! The node's firewall as labwright reads it: options, rules, aliases and ipsets at
//! every level the spec declares, and the evaluator's model of them.

use super::*;

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

pub(crate) fn scope_key(s: &FwScope) -> String {
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

pub(crate) fn pve_rule_json(r: &FirewallRule) -> Value {
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

pub(crate) fn read_rules(
    list: &[FirewallRule],
    level: &str,
    unreadable: &mut Vec<String>,
) -> Vec<Rule> {
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

pub(crate) use labwright_firewall::from_spec::canonical;

pub(crate) fn api(what: &str) -> impl FnOnce(labwright_pve::Error) -> EngineError + '_ {
    move |e| EngineError::api(what, e)
}

/// Node addresses for `local_network`: the spec's bridges (then `node.address`).
pub(crate) fn node_addrs(spec: &Spec) -> Vec<IpNet> {
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

pub(crate) fn nics_of(config: Option<&BTreeMap<String, String>>) -> BTreeMap<String, GuestNic> {
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
pub(crate) fn active_fw_vms(spec: &Spec) -> impl Iterator<Item = &labwright_spec::model::Vm> {
    spec.vms
        .iter()
        .filter(move |v| v.firewall.is_some() && v.phase <= spec.phase)
}

/// Reads the firewall when the spec declares one (else `None`, no request made), for
/// plans: a spec without a firewall owns nothing there.
pub async fn scan_firewall(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    client_addr: Option<IpAddr>,
) -> Result<Option<ObservedFirewall>, EngineError> {
    if !spec_declares_firewall(spec) {
        return Ok(None);
    }
    read_firewall(client, spec, observed, client_addr)
        .await
        .map(Some)
}

/// Reads the node's firewall whatever the spec declares (`firewall simulate|matrix
/// --state live` means the node as it is): datacenter options, rules, aliases,
/// ipsets, groups; the node's options and rules; options and rules of declared VMs
/// with a `firewall:` block that exist.
pub async fn read_firewall(
    client: &PveClient,
    spec: &Spec,
    observed: &Observed,
    client_addr: Option<IpAddr>,
) -> Result<ObservedFirewall, EngineError> {
    let before = client.request_count();
    let node = spec.node_name().to_string();
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
        // Names as the API lists them; the evaluator reads their case per backend.
        cfg.cluster.ipsets.insert(s.name.clone(), set);
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
        cfg.cluster.groups.insert(g.group.clone(), group);
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

    Ok(ObservedFirewall {
        node,
        options,
        config: cfg,
        client_addr,
        unreadable,
        requests: client.request_count().saturating_sub(before),
        vm_nodes,
    })
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
