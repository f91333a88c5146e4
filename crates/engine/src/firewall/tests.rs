//! Unit tests of the firewall wave: action order, the guard, the lockout proof and
//! idempotency of the diff (a second plan over the modelled result is empty).

use super::exec::moveto_for;
use super::*;
use labwright_spec::model::FwPolicy;

fn env(name: &str) -> Option<String> {
    (name == "ADMIN_PC_CIDR").then(|| "192.168.1.50/32".to_string())
}

fn load(text: &str) -> Spec {
    match labwright_spec::load_str("test.yaml", text, &env) {
        Ok(l) => l.spec,
        Err(f) => panic!("spec did not load: {:?}", f.diagnostics),
    }
}

fn preprod() -> Spec {
    let text = include_str!("../../../../specs/preprod.firewall.desired.yaml");
    load(text)
}

fn empty_observed(spec: &Spec, client: Option<&str>) -> ObservedFirewall {
    let mut o = super::empty_observed(spec, client.and_then(|c| c.parse().ok()));
    // The tests add VMs themselves.
    o.config.vms.clear();
    o.options.retain(|k, _| !k.starts_with("vm/"));
    o
}

/// The observed firewall after the plan's steps, as the executor would leave it.
fn after(obs: &ObservedFirewall, plan: &FwPlan) -> ObservedFirewall {
    let mut st = FwState::of(obs);
    for a in &plan.actions {
        if let Op::Firewall(f) = &a.op {
            for s in &f.steps {
                model_step(&mut st, &f.scope, s);
            }
        }
    }
    ObservedFirewall {
        options: st.options,
        config: st.config,
        ..obs.clone()
    }
}

fn ids(p: &FwPlan) -> Vec<String> {
    p.actions.iter().map(|a| a.id.to_string()).collect()
}

#[test]
fn preprod_wave_orders_allows_first_and_drop_policy_last() {
    let spec = preprod();
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    let ids = ids(&p);
    assert_eq!(
        ids,
        vec![
            "fw-alias-admin-pc",
            "fw-alias-tailnet",
            "fw-cluster-rule-mgmt-admin-ssh",
            "fw-cluster-rule-mgmt-admin-webui",
            "fw-cluster-rule-mgmt-tailscale",
            "fw-cluster-rule-ping-lan",
            "fw-cluster-options",
            "fw-node-options",
            "fw-cluster-enable",
            "fw-cluster-policy-in",
        ]
    );
    // One chain: each action waits for the one before it (a probe runs in between).
    for w in p.actions.windows(2) {
        assert_eq!(w[1].depends_on, vec![w[0].id.clone()], "{}", w[1].id);
    }
    assert!(p.actions.iter().all(|a| a.risk == Risk::High));
    let r = p.report.as_ref().expect("a proof report");
    assert!(r.proof_ok, "{:?}", r.failure);
    assert_eq!(r.backend, "iptables");
    // admin /32 + tailscale + client, 2 ports each.
    assert_eq!(r.lines.len(), 6);
    assert!(r.lines.iter().all(|l| l.ok));
    assert!(
        r.lines
            .iter()
            .any(|l| l.label == "labwright client" && l.decided_by.contains("mgmt-admin-ssh")),
        "{:?}",
        r.lines
    );
    assert!(p.notes.iter().any(|n| n.contains("PASSED")));
}

#[test]
fn second_plan_over_the_result_is_empty() {
    let spec = preprod();
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    let done = after(&obs, &p);
    let again = plan_firewall(&spec, &done, &[]);
    assert!(again.actions.is_empty(), "{:?}", ids(&again));
    assert!(again.report.as_ref().is_some_and(|r| r.proof_ok));
    // And validation agrees.
    let checks = validate_checks(&spec, &done);
    assert!(
        checks
            .iter()
            .all(|c| c.status == crate::validate::CheckStatus::Pass),
        "{checks:?}"
    );
}

#[test]
fn guard_holds_every_firewall_action_back() {
    let mut spec = preprod();
    spec.safety_guards.allow_firewall_changes = false;
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    assert!(p.actions.is_empty());
    assert_eq!(p.held.len(), 10);
    assert!(
        p.held
            .iter()
            .all(|h| h.unblock.contains("allowFirewallChanges"))
    );
}

const LOCKOUT: &str = r#"
apiVersion: labwright/v1
kind: Homelab
metadata: { name: lockout, owner: test }
node: { name: proxmox, address: 192.168.1.10 }
safetyGuards:
  executionMode: full
  managementAccessCidrs: [10.0.0.0/24]
  allowFirewallChanges: true
firewall:
  aliases:
    local_network: 192.168.1.10/32
  datacenter:
    options: { enable: true, policyIn: DROP }
    rules:
      - { id: mgmt-vpn, action: ACCEPT, source: 10.0.0.0/24, proto: tcp, dport: "22,8006" }
"#;

#[test]
fn post_plan_proof_refuses_a_client_lockout() {
    let spec = load(LOCKOUT);
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert!(!r.proof_ok);
    let f = r.failure.as_deref().unwrap_or_default();
    assert!(f.contains("labwright client 192.168.1.50/32"), "{f}");
    assert!(f.contains("cluster policy DROP"), "{f}");
    assert!(f.contains("Fix: add"), "{f}");
    // The declared management network itself is fine.
    assert!(
        r.lines
            .iter()
            .filter(|l| l.label == "managementAccessCidrs")
            .all(|l| l.ok)
    );
    // Without knowing the client address, the declared sources pass.
    let blind = plan_firewall(&spec, &empty_observed(&spec, None), &[]);
    assert!(blind.report.as_ref().is_some_and(|r| r.proof_ok));
}

#[test]
fn a_drop_rule_above_the_allows_is_named_in_the_refusal() {
    let text = LOCKOUT.replace(
        "    rules:\n",
        "    rules:\n      - { id: no-lan, action: DROP, source: 192.168.1.0/24 }\n      - { id: mgmt-client, action: ACCEPT, source: 192.168.1.50, proto: tcp, dport: \"22,8006\" }\n",
    );
    let spec = load(&text);
    let p = plan_firewall(&spec, &empty_observed(&spec, Some("192.168.1.50")), &[]);
    let f = p
        .report
        .as_ref()
        .and_then(|r| r.failure.clone())
        .unwrap_or_default();
    assert!(f.contains("[lw:no-lan]"), "{f}");
    assert!(f.contains("change rule `no-lan`"), "{f}");
}

#[test]
fn every_intermediate_state_is_proved() {
    // The node already drops by default and only the old rule lets the admin in; the
    // spec replaces it. The new allow is put first, the old one deleted after, so no
    // step in between locks the admin out.
    let spec = preprod();
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    obs.options.insert(
        "cluster".into(),
        [("enable".to_string(), "1".to_string())].into(),
    );
    sync_options(&mut obs.config, &FwScope::Cluster, &obs.options["cluster"]);
    let old = Rule::parse("IN ACCEPT -source 192.168.1.50 -p tcp -dport 22,8006 # [lw:old-admin]")
        .expect("rule");
    obs.config.cluster.rules.push(old);
    let p = plan_firewall(&spec, &obs, &[]);
    let ids = ids(&p);
    let del = ids
        .iter()
        .position(|i| *i == "fw-cluster-rule-old-admin-delete")
        .expect("stale rule deleted");
    let put = ids
        .iter()
        .position(|i| *i == "fw-cluster-rule-mgmt-admin-ssh")
        .expect("new rule");
    assert!(put < del);
    assert!(p.report.as_ref().is_some_and(|r| r.proof_ok));
}

#[test]
fn rules_are_keyed_by_id_not_position() {
    let spec = preprod();
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    let mut done = after(&obs, &p);
    // Someone swapped two rules in the UI: one move, no delete and re-create.
    done.config.cluster.rules.swap(0, 1);
    let again = plan_firewall(&spec, &done, &[]);
    assert_eq!(ids(&again), vec!["fw-cluster-rule-mgmt-admin-ssh"]);
    let Op::Firewall(f) = &again.actions[0].op else {
        panic!("firewall op")
    };
    assert!(matches!(&f.steps[0], FwStep::RulePut { index: 0, .. }));
    assert!(again.actions[0].changes[0].field.contains("position"));
}

#[test]
fn vm_allowlists_compile_into_shared_aliases_and_rules() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../specs/jarvis-homelab.desired.yaml"
    ))
    .expect("reference spec");
    let mut spec = load(&text);
    spec.safety_guards.allow_firewall_changes = true;
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    for vmid in [100u32, 300, 400] {
        obs.config.vms.insert(vmid, GuestFirewall::default());
        obs.options.insert(format!("vm/{vmid}"), BTreeMap::new());
    }
    let p = plan_firewall(&spec, &obs, &[]);
    let ids = ids(&p);
    assert!(ids.iter().any(|i| i == "fw-alias-lan"), "{ids:?}");
    assert!(ids.iter().any(|i| i == "fw-alias-tailscale"), "{ids:?}");
    assert!(
        ids.iter().any(|i| i == "fw-vm100-rule-allow-lan"),
        "{ids:?}"
    );
    assert!(ids.iter().any(|i| i == "fw-vm400-options"), "{ids:?}");
    // IOT is a phase-2 segment: its allow waits (phase gate), with a note.
    assert!(!ids.iter().any(|i| i.contains("allow-iot")), "{ids:?}");
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("segment `iot` is phase 2"))
    );
    let done = after(&obs, &p);
    let lan = "192.168.1.77".parse().expect("ip");
    let d = labwright_firewall::evaluate(
        &done.config,
        &labwright_firewall::Flow::tcp(lan, Target::Vm(300), 32400),
        Backend::Iptables,
    );
    assert_eq!(d.verdict, Verdict::Accept, "{}", d.render_trail());
    let d = labwright_firewall::evaluate(
        &done.config,
        &labwright_firewall::Flow::tcp(lan, Target::Vm(300), 8080),
        Backend::Iptables,
    );
    assert_eq!(d.verdict, Verdict::Drop, "{}", d.render_trail());
    assert!(plan_firewall(&spec, &done, &[]).actions.is_empty());
}

#[test]
fn ops_round_trip_through_plan_files() {
    let spec = preprod();
    let p = plan_firewall(&spec, &empty_observed(&spec, Some("192.168.1.50")), &[]);
    for a in &p.actions {
        let text = serde_json::to_string(&a.op).expect("serialises");
        let back: Op = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, a.op);
        assert!(!a.op.api_calls().is_empty());
    }
}

#[test]
fn comment_ids() {
    assert_eq!(comment_id("[lw:mgmt-ssh] Admin"), Some("mgmt-ssh"));
    assert_eq!(comment_id("[lw:x]"), Some("x"));
    assert_eq!(comment_id("lw:x"), None);
    assert_eq!(comment_id("[lw:unterminated"), None);
}

#[test]
fn validate_reports_held_differences_without_failing() {
    let mut spec = preprod();
    spec.safety_guards.allow_firewall_changes = false;
    let checks = validate_checks(&spec, &empty_observed(&spec, None));
    let m = checks
        .iter()
        .find(|c| c.name == "firewall matches the spec")
        .expect("check");
    assert_eq!(m.status, crate::validate::CheckStatus::Skipped);
    assert!(m.detail.contains("allowFirewallChanges: false"));
}

#[test]
fn an_accept_policy_is_set_before_the_switch() {
    let mut spec = preprod();
    if let Some(dc) = spec.firewall.as_mut().and_then(|f| f.datacenter.as_mut()) {
        dc.options.policy_in = Some(FwPolicy::Accept);
        dc.rules.clear();
    }
    let p = plan_firewall(&spec, &empty_observed(&spec, Some("192.168.1.50")), &[]);
    let ids = ids(&p);
    let pol = ids.iter().position(|i| *i == "fw-cluster-policy-in");
    let en = ids.iter().position(|i| *i == "fw-cluster-enable");
    assert!(pol < en, "{ids:?}");
    assert!(
        p.report.as_ref().is_some_and(|r| r.proof_ok),
        "{:?}",
        p.report
    );
}

/// PVE's `update_rule` with `moveto`: re-insert before the original index.
fn pve_move(list: &mut Vec<u32>, pos: usize, moveto: usize) {
    if moveto == pos {
        return;
    }
    let rule = list[pos];
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        if i == pos {
            continue;
        }
        if i == moveto {
            out.push(rule);
        }
        out.push(*r);
    }
    if moveto >= list.len() {
        out.push(rule);
    }
    *list = out;
}

/// Remove, then insert at `moveto` (what a simpler implementation does).
fn remove_insert_move(list: &mut Vec<u32>, pos: usize, moveto: usize) {
    let rule = list.remove(pos);
    let at = moveto.min(list.len());
    list.insert(at, rule);
}

#[test]
fn rule_moves_converge_under_either_moveto_reading() {
    type MoveFn = fn(&mut Vec<u32>, usize, usize);
    let readings: [(&str, MoveFn); 2] = [("pve", pve_move), ("remove-insert", remove_insert_move)];
    for (name, mv) in readings {
        for len in 1..7u32 {
            for pos in 0..len {
                for target in 0..len {
                    let mut list: Vec<u32> = (0..len).collect();
                    let id = pos;
                    let mut moves = 0;
                    loop {
                        let at = list.iter().position(|r| *r == id).expect("present");
                        let at = u32::try_from(at).expect("small");
                        if at == target {
                            break;
                        }
                        let to = moveto_for(at, target);
                        mv(&mut list, at as usize, to as usize);
                        moves += 1;
                        assert!(
                            moves <= 2,
                            "{name}: len {len} {pos}→{target} did not converge"
                        );
                    }
                    if name == "pve" {
                        assert!(moves <= 1, "PVE needs one move: len {len} {pos}→{target}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_proof_follows_the_node_backend() {
    let spec = preprod();
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    let key = "node/proxmox".to_string();
    obs.options.insert(
        key.clone(),
        [("nftables".to_string(), "1".to_string())].into(),
    );
    sync_options(
        &mut obs.config,
        &FwScope::Node {
            node: "proxmox".into(),
        },
        &obs.options[&key],
    );
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert_eq!(r.backend, "nftables");
    assert!(r.proof_ok, "{:?}", r.failure);
}

#[test]
fn unreadable_rules_refuse_the_proof() {
    let spec = preprod();
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    obs.unreadable
        .push("cluster rule #3: unknown macro 'Foo'".into());
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert!(!r.proof_ok);
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("cannot read") && f.contains("unknown macro")),
        "{:?}",
        r.failure
    );
}

#[test]
fn a_stale_managed_block_is_deleted_and_the_wave_proves() {
    // The node drops by default and a rule labwright once made blocks the Tailscale
    // range; the spec no longer has it. The allows go in, the stale rule goes, and
    // every step keeps (or grows) the access the node gave before.
    let mut spec = preprod();
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    obs.options.insert(
        "cluster".into(),
        [("enable".to_string(), "1".to_string())].into(),
    );
    sync_options(&mut obs.config, &FwScope::Cluster, &obs.options["cluster"]);
    let old = Rule::parse("IN DROP -source 100.64.0.0/10 # [lw:old-block]").expect("rule");
    obs.config.cluster.rules.push(old);
    if let Some(dc) = spec.firewall.as_mut().and_then(|f| f.datacenter.as_mut()) {
        dc.rules.retain(|r| r.id != "ping-lan");
    }
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert!(r.proof_ok, "{:?}", r.failure);
    let ids = ids(&p);
    assert!(
        ids.iter().any(|i| i == "fw-cluster-rule-old-block-delete"),
        "{ids:?}"
    );
}

/// A node on the nftables backend: the node options say so.
fn on_nftables(spec: &Spec, obs: &mut ObservedFirewall) {
    let key = format!("node/{}", spec.node_name());
    obs.options.insert(
        key.clone(),
        [("nftables".to_string(), "1".to_string())].into(),
    );
    sync_options(
        &mut obs.config,
        &FwScope::Node {
            node: spec.node_name().to_string(),
        },
        &obs.options[&key],
    );
}

#[test]
fn management_ipset_spelled_with_a_capital_is_refused_on_nftables() {
    // Admin access rests on the management ipset alone (no explicit allow rule), and
    // the admin PC is outside the node's LAN (`local_network` does not cover it).
    let text = r#"apiVersion: labwright/v1
kind: Homelab
metadata: { name: mgmt-case, owner: loic }
node: { name: proxmox, address: 172.16.1.2/24 }
phase: 0
safetyGuards:
  managementAccessCidrs: [192.168.1.50/32]
  allowFirewallChanges: true
firewall:
  ipsets:
    Management: [192.168.1.50/32]
  datacenter:
    options: { enable: true, policyIn: DROP }
"#;
    let spec = load(text);
    // iptables (pve-firewall lower-cases `[IPSET Management]`): the set is the
    // management set, its members keep 22 and 8006.
    let obs = empty_observed(&spec, Some("192.168.1.50"));
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert_eq!(r.backend, "iptables");
    assert!(r.proof_ok, "{:?}", r.failure);
    // nftables (proxmox-firewall keeps the case): `Management` is not `management`,
    // and the DROP policy would cut the admin PC off.
    let mut obs = empty_observed(&spec, Some("192.168.1.50"));
    on_nftables(&spec, &mut obs);
    let p = plan_firewall(&spec, &obs, &[]);
    let r = p.report.as_ref().expect("report");
    assert_eq!(r.backend, "nftables");
    assert!(!r.proof_ok, "the proof must refuse: {r:?}");
    let f = r.failure.as_deref().unwrap_or_default();
    assert!(f.contains("192.168.1.50"), "{f}");
}
