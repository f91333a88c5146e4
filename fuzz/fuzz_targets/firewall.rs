//! The PVE firewall parsers (`crates/firewall`): single rule lines (`Rule::parse`),
//! whole `.fw` files (`parse_cluster_fw`, `parse_host_fw`, `parse_guest_fw`) and API
//! rule JSON (`Rule::from_api_json`, `rules_from_api_json`).
//!
//! Properties, for whatever parses:
//! - a rule prints (`Display`, the `.fw` line) and re-parses to an equal rule, and
//!   the printed line is a fixed point; the API JSON form round-trips too;
//! - a file writes (`write_*_fw`) and re-parses to an equal model, and the written
//!   text is a fixed point;
//! - the level checks and `check_config` run without panicking;
//! - nothing panics.

#![no_main]

use labwright_firewall::{
    FirewallConfig, Rule, RuleContext, check_config, parse_cluster_fw, parse_guest_fw,
    parse_host_fw, rules_from_api_json, write_cluster_fw, write_guest_fw, write_host_fw,
};
use libfuzzer_sys::fuzz_target;

fn rule_round_trip(line: &str) {
    let Ok(rule) = Rule::parse(line) else {
        return;
    };
    let text = rule.to_string();
    match Rule::parse(&text) {
        Ok(again) => {
            assert_eq!(rule, again, "rule {line:?} changed through {text:?}");
            assert_eq!(again.to_string(), text, "printed rule is not a fixed point");
        }
        Err(e) => panic!("rule {line:?} printed as {text:?} does not re-parse: {e}"),
    }
    for ctx in [
        RuleContext::Cluster,
        RuleContext::Host,
        RuleContext::Guest,
        RuleContext::SecurityGroup,
    ] {
        let _ = rule.validate_for(ctx);
    }
    let _ = rule.macro_def();
    api_round_trip(&rule);
}

fn api_round_trip(rule: &Rule) {
    let json = rule.to_api_json();
    match Rule::from_api_json(&json) {
        Ok(again) => assert_eq!(rule, &again, "rule changed through its API JSON {json}"),
        Err(e) => panic!("API JSON {json} of {rule} does not read back: {e}"),
    }
}

macro_rules! file_round_trip {
    ($parse:ident, $write:ident, $text:expr) => {{
        let parsed = $parse($text);
        if let Ok(model) = &parsed {
            let written = match $write(model) {
                Ok(w) => w,
                Err(e) => panic!("{} result does not write: {e}", stringify!($parse)),
            };
            match $parse(&written) {
                Ok(again) => {
                    assert_eq!(
                        model,
                        &again,
                        "{} model changed through:\n{written}",
                        stringify!($parse)
                    );
                    assert_eq!(
                        $write(&again).ok().as_deref(),
                        Some(written.as_str()),
                        "written file is not a fixed point"
                    );
                }
                Err(e) => panic!(
                    "{} output does not re-parse: {e}\n{written}",
                    stringify!($write)
                ),
            }
        }
        parsed.ok()
    }};
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // API JSON (a rule object or a rule list).
    if text.trim_start().starts_with(['[', '{'])
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        if let Ok(rule) = Rule::from_api_json(&v) {
            rule_round_trip(&rule.to_string());
            api_round_trip(&rule);
        }
        if let Ok(rules) = rules_from_api_json(&v) {
            for r in &rules {
                api_round_trip(r);
            }
        }
    }

    // Every line as a rule.
    for line in text.lines() {
        rule_round_trip(line);
    }

    // The whole text as each kind of file.
    let cluster = file_round_trip!(parse_cluster_fw, write_cluster_fw, text);
    let host = file_round_trip!(parse_host_fw, write_host_fw, text);
    let guest = file_round_trip!(parse_guest_fw, write_guest_fw, text);

    if cluster.is_some() || host.is_some() || guest.is_some() {
        let mut cfg = FirewallConfig {
            cluster: cluster.unwrap_or_default(),
            ..FirewallConfig::default()
        };
        if let Some(h) = host {
            cfg.nodes.insert("pve".into(), h);
        }
        if let Some(g) = guest {
            cfg.vms.insert(100, g);
        }
        let _ = check_config(&cfg);
    }
});
