//! The OPNsense backend on the reference spec: the snapshot of its config.xml, the
//! document read back with an independent XML parser, and the seed ISO read back with
//! `isoinfo` (genisoimage; scripts/test installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use labwright_router::seed::{CONFIG_PATH, seed_iso};
use labwright_router::{Backend, Opnsense, OpnsenseError, RuleSet, compile, router_nic_mac};
use labwright_spec::Spec;
use roxmltree::{Document, Node};

fn reference() -> (Spec, RuleSet, Opnsense) {
    let spec = common::reference();
    let rs = compile(&spec, 2).expect("the reference spec compiles at phase 2");
    let o = Opnsense::for_spec(&spec, &rs).expect("OPNsense carries the reference");
    (spec, rs, o)
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn text<'a>(n: Node<'a, '_>, name: &str) -> &'a str {
    child(n, name).and_then(|c| c.text()).unwrap_or("")
}

fn path<'a, 'i>(n: Node<'a, 'i>, names: &[&str]) -> Node<'a, 'i> {
    names.iter().fold(n, |n, name| {
        child(n, name).unwrap_or_else(|| panic!("no <{name}> under <{}>", n.tag_name().name()))
    })
}

#[derive(Debug, Clone)]
struct R {
    action: String,
    interface: String,
    protocol: String,
    src: String,
    src_not: bool,
    dst: String,
    dst_not: bool,
    port: String,
    sequence: u32,
    descr: String,
}

fn rules(doc: &Document<'_>) -> Vec<R> {
    let root = doc.root_element();
    path(root, &["OPNsense", "Firewall", "Filter", "rules"])
        .children()
        .filter(|c| c.has_tag_name("rule"))
        .map(|r| R {
            action: text(r, "action").into(),
            interface: text(r, "interface").into(),
            protocol: text(r, "protocol").into(),
            src: text(r, "source_net").into(),
            src_not: text(r, "source_not") == "1",
            dst: text(r, "destination_net").into(),
            dst_not: text(r, "destination_not") == "1",
            port: text(r, "destination_port").into(),
            sequence: text(r, "sequence").parse().expect("numeric sequence"),
            descr: text(r, "description").into(),
        })
        .collect()
}

#[test]
fn reference_opnsense_rendering() {
    let (spec, rs, o) = reference();
    let xml = o.render(&rs);
    insta::assert_snapshot!("reference_opnsense", xml);
    let again = Opnsense::for_spec(&spec, &compile(&spec, 2).expect("compiles"))
        .expect("renders")
        .render(&rs);
    assert_eq!(xml, again, "the same spec gives the same config.xml");
}

#[test]
fn config_xml_structure() {
    let (_, rs, o) = reference();
    let xml = o.render(&rs);
    let doc = Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert!(root.has_tag_name("opnsense"));

    // Three interfaces: wan on vtnet0 by DHCP, the two segments with their gateways.
    let ifs: Vec<(String, String, String, String)> = path(root, &["interfaces"])
        .children()
        .filter(Node::is_element)
        .map(|i| {
            (
                i.tag_name().name().to_string(),
                text(i, "if").to_string(),
                text(i, "descr").to_string(),
                format!("{}/{}", text(i, "ipaddr"), text(i, "subnet")),
            )
        })
        .collect();
    let want = |k: &str, d: &str, n: &str, a: &str| (k.into(), d.into(), n.into(), a.into());
    assert_eq!(
        ifs,
        vec![
            want("wan", "vtnet0", "wan", "dhcp/"),
            want("lan", "vtnet1", "services", "10.10.10.1/24"),
            want("opt1", "vtnet2", "iot", "10.10.20.1/24"),
        ]
    );
    assert_eq!(text(path(root, &["interfaces", "wan"]), "blockpriv"), "0");

    // DHCP pools in the upper half of each segment, away from the gateway.
    let ranges: Vec<(String, String, String)> = path(root, &["dnsmasq"])
        .children()
        .filter(|c| c.has_tag_name("dhcp_ranges"))
        .map(|r| {
            (
                text(r, "interface").into(),
                text(r, "start_addr").into(),
                text(r, "end_addr").into(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            ("lan".into(), "10.10.10.128".into(), "10.10.10.254".into()),
            ("opt1".into(), "10.10.20.128".into(), "10.10.20.254".into()),
        ]
    );
    assert_eq!(text(path(root, &["nat", "outbound"]), "mode"), "automatic");
    let system = path(root, &["system"]);
    assert_eq!(text(system, "hostname"), "firewall-router");
    assert_eq!(text(path(system, &["webgui"]), "noantilockout"), "1");
    assert_eq!(text(path(system, &["ssh"]), "enabled"), "enabled");
    // No password hash in the seed.
    assert!(child(path(system, &["user"]), "password").is_none());

    let rules = rules(&doc);
    // Evaluated by sequence: strictly increasing, in document order.
    assert!(rules.windows(2).all(|w| w[0].sequence < w[1].sequence));

    // LAN → home-assistant 8123 crosses the router and passes. (IOT → home-assistant
    // 8123/1883 never reaches the router: both ends are on the IOT bridge; the
    // document says so in a comment.)
    let ha = rules
        .iter()
        .find(|r| r.descr.starts_with("lan → home-assistant"))
        .expect("lan → home-assistant rule");
    assert_eq!(
        (
            ha.action.as_str(),
            ha.interface.as_str(),
            ha.protocol.as_str()
        ),
        ("pass", "wan", "TCP")
    );
    assert_eq!(
        (ha.src.as_str(), ha.dst.as_str()),
        ("192.168.1.0/24", "10.10.20.0/24")
    );
    assert_eq!(ha.port, "8123");
    assert!(xml.contains("not routed: iot → home-assistant (firewall.matrix.allow[0])"));

    // The last rules deny everything else between segments, one per interface: a
    // rule naming several interfaces would be floating in OPNsense and be evaluated
    // before every interface rule, shadowing the passes above it.
    let tail: Vec<(&str, &str, &str, &str)> = rules[rules.len() - 3..]
        .iter()
        .map(|r| {
            assert!(
                r.descr.contains("default deny between segments"),
                "{}",
                r.descr
            );
            (
                r.action.as_str(),
                r.interface.as_str(),
                r.src.as_str(),
                r.dst.as_str(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            ("block", "wan", "any", "any"),
            ("block", "lan", "any", "any"),
            ("block", "opt1", "any", "any")
        ]
    );
    assert!(
        rules.iter().all(|r| !r.interface.contains(',')),
        "no rule names several interfaces (OPNsense would make it floating)"
    );

    // Nothing lets SERVICES or IOT reach the node's 22/8006; both are blocked before
    // any pass rule could match.
    let node = "192.168.1.10/32";
    for (iface, net) in [("lan", "10.10.10.0/24"), ("opt1", "10.10.20.0/24")] {
        let matches = |r: &&R, port: &str| {
            (r.interface.is_empty() || r.interface.split(',').any(|i| i == iface))
                && (r.src == "any" || r.src.split(',').any(|s| s == net))
                && (r.dst == "any" || (!r.dst_not && r.dst.split(',').any(|d| d == node)))
                && (r.port.is_empty() || r.port == port)
        };
        for port in ["22", "8006"] {
            let first = rules
                .iter()
                .find(|r| matches(r, port))
                .unwrap_or_else(|| panic!("no rule decides {iface} → node:{port}"));
            assert_eq!(first.action, "block", "{iface} → node:{port}: {first:?}");
        }
    }

    // The router's GUI and SSH: only the admin CIDRs and Tailscale, before any block.
    let mgmt: Vec<&R> = rules
        .iter()
        .filter(|r| r.dst == "(self)" && r.protocol == "TCP" && (r.port == "22" || r.port == "443"))
        .collect();
    let mut sources: Vec<&str> = mgmt.iter().map(|r| r.src.as_str()).collect();
    sources.sort();
    sources.dedup();
    assert_eq!(sources, vec!["100.64.0.0/10", "192.168.1.50/32"]);
    assert!(mgmt.iter().all(|r| r.action == "pass" && !r.src_not));
    let first_block = rules.iter().position(|r| r.action == "block");
    let last_mgmt = rules
        .iter()
        .rposition(|r| r.dst == "(self)" && (r.port == "22" || r.port == "443"));
    assert!(
        last_mgmt < first_block,
        "management rules come before every block"
    );

    // The outbound rule's negated set is an alias (pf reads `!{a, b}` as "not a or
    // not b"), and the alias lists every declared network.
    let out = rules
        .iter()
        .find(|r| r.descr.starts_with("internal segments → upstream"))
        .expect("outbound rule");
    assert!(out.dst_not && out.dst.starts_with("lw_nets_"), "{out:?}");
    let alias = path(root, &["OPNsense", "Firewall", "Alias", "aliases"])
        .children()
        .find(|a| a.has_tag_name("alias") && text(*a, "name") == out.dst)
        .expect("the alias the outbound rule names");
    let content: Vec<&str> = text(alias, "content").lines().collect();
    assert_eq!(
        content,
        vec![
            "10.10.10.0/24",
            "10.10.20.0/24",
            "100.64.0.0/10",
            "192.168.1.0/24"
        ]
    );

    // Every rule carries where it came from.
    assert!(rules.iter().all(|r| r.descr.ends_with(']')), "{rules:?}");
    // The fixed MACs are named for validate.
    assert!(xml.contains(&router_nic_mac("jarvis", 150, "net2").to_string()));
}

#[test]
fn descriptions_with_markup_are_escaped() {
    let mut spec = common::reference();
    let m = spec
        .firewall
        .as_mut()
        .and_then(|f| f.matrix.as_mut())
        .expect("matrix");
    m.allow[1].comment = Some(r#"<b>"UI" & 'MQTT'</b> -- test"#.into());
    let rs = compile(&spec, 2).expect("compiles");
    let xml = Opnsense::for_spec(&spec, &rs).expect("renders").render(&rs);
    let doc = Document::parse(&xml).expect("still well-formed");
    let r = rules(&doc);
    assert!(
        r.iter()
            .any(|r| r.descr.contains(r#"<b>"UI" & 'MQTT'</b> -- test"#)),
        "the text survives the round trip"
    );
}

#[test]
fn a_gateway_inside_the_dhcp_pool_is_refused_with_its_path() {
    let mut spec = common::reference();
    let router = spec.router.as_mut().expect("router");
    let iot = router.interfaces.get_mut("iot").expect("iot");
    iot.address = Some("10.10.20.200/24".parse().expect("cidr"));
    let rs = compile(&spec, 2).expect("compiles");
    let err = Opnsense::for_spec(&spec, &rs).expect_err("gateway in the pool");
    assert!(matches!(err, OpnsenseError::GatewayInRange { .. }), "{err}");
    assert!(
        err.to_string().starts_with("router.interfaces.iot.dhcp: "),
        "{err}"
    );
    // At the pool's edge it is stepped over instead.
    let iot = spec
        .router
        .as_mut()
        .and_then(|r| r.interfaces.get_mut("iot"))
        .expect("iot");
    iot.address = Some("10.10.20.254/24".parse().expect("cidr"));
    let rs = compile(&spec, 2).expect("compiles");
    let o = Opnsense::for_spec(&spec, &rs).expect("edge gateway is fine");
    let link = o.links.iter().find(|l| l.name == "iot").expect("iot link");
    assert_eq!(
        link.dhcp_range.map(|(a, b)| (a.to_string(), b.to_string())),
        Some(("10.10.20.128".into(), "10.10.20.253".into()))
    );
}

fn require(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path).chain(["/usr/bin", "/bin"].map(PathBuf::from)) {
        let p = d.join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{tool}` is not installed. Run scripts/test, which installs genisoimage, or apt-get install genisoimage."
    );
}

fn isoinfo(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("runs isoinfo");
    assert!(
        out.status.success(),
        "isoinfo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn seed_iso_carries_conf_config_xml() {
    let (_, rs, o) = reference();
    let xml = o.render(&rs);
    let seed = seed_iso(&xml).expect("seed");
    let dir = std::env::temp_dir().join(format!("lw-router-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("seed.iso");
    std::fs::write(&file, &seed.bytes).expect("write seed");
    let f = file.to_string_lossy().to_string();
    let tool = require("isoinfo");
    // Rock Ridge names (what FreeBSD's mount_cd9660 shows): /conf/config.xml.
    let listing = isoinfo(&tool, &["-R", "-f", "-i", &f]);
    assert!(
        listing.lines().any(|l| l == format!("/{CONFIG_PATH}")),
        "{listing}"
    );
    let inside = isoinfo(&tool, &["-R", "-x", &format!("/{CONFIG_PATH}"), "-i", &f]);
    assert_eq!(inside, xml, "the config comes back byte for byte");
    let joliet = isoinfo(&tool, &["-J", "-f", "-i", &f]);
    assert!(joliet.lines().any(|l| l == "/conf/config.xml"), "{joliet}");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(seed.config_sha256.len(), 64);
    assert_eq!(
        seed.file_name(150),
        format!("lw-router-150-{}.iso", &seed.config_sha256[..8])
    );
}
