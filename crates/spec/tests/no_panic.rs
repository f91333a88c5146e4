//! The loader never panics: random YAML-ish text, random mutations of the canonical
//! specs, and random structures all end in `Ok` or in diagnostics.

use labwright_spec::load_str;
use proptest::prelude::*;

fn env(name: &str) -> Option<String> {
    (name == "ADMIN_PC_CIDR").then(|| "192.168.1.50/32".to_string())
}

const CANONICAL: &[&str] = &[
    include_str!("../../../specs/nas.desired.yaml"),
    include_str!("../../../specs/jarvis-homelab.desired.yaml"),
    include_str!("../../../specs/preprod.firewall.desired.yaml"),
];

/// YAML fragments that stress the parser and the typed layer.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\t".to_string()),
        Just(": ".to_string()),
        Just("- ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a\n".to_string()),
        Just("!!binary ".to_string()),
        Just("${".to_string()),
        Just("${X:-".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("vms:\n  - vmid: ".to_string()),
        Just("tskey-".to_string()),
        "[a-zA-Z0-9_./:=-]{0,12}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, .. ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        let text: String = parts.concat();
        let _ = load_str("fuzz.yaml", &text, &env);
    }

    #[test]
    fn mutated_canonical_specs_never_panic(
        which in 0..CANONICAL.len(),
        at in any::<prop::sample::Index>(),
        cut in 0usize..200,
        insert in fragment(),
    ) {
        let base = CANONICAL[which];
        let mut pos = at.index(base.len().max(1));
        while !base.is_char_boundary(pos) { pos -= 1; }
        let mut end = (pos + cut).min(base.len());
        while !base.is_char_boundary(end) { end -= 1; }
        let text = format!("{}{}{}", &base[..pos], insert, &base[end..]);
        if let Err(f) = load_str("fuzz.yaml", &text, &env) {
            // A failure always says something, with a rule id.
            prop_assert!(!f.diagnostics.is_empty());
            prop_assert!(f.diagnostics.iter().all(|d| !d.rule.is_empty()));
        }
    }
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused_not_fatal() {
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    assert!(load_str("deep.yaml", &deep, &env).is_err());
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("b{}", i - 1)
        };
        bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    assert!(load_str("bomb.yaml", &bomb, &env).is_err());
}
