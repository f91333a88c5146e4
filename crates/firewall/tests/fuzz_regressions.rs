//! Inputs the `firewall` fuzz target (fuzz/, docs/fuzzing.md) found, each named after
//! its libFuzzer artifact and embedded as minimised by `-minimize_crash`.

use labwright_firewall::Rule;

/// `IN DROP#  -`: the comment `-` went out in the API JSON and was read back as no
/// comment, because `-` (PVE's "unset" for value fields) was also applied to the
/// free-text comment. A rule must survive its own API form.
#[test]
fn crash_624e7db3a4ed2f02bb3c83f2930dc02b5d541148() {
    let rule = Rule::parse("IN DROP#  -").expect("valid rule");
    assert_eq!(rule.comment.as_deref(), Some("-"));
    assert_eq!(rule.to_string(), "IN DROP # -");
    assert_eq!(Rule::from_api_json(&rule.to_api_json()), Ok(rule));
    // Value fields keep PVE's meaning of `-`.
    let v = serde_json::json!({"type": "in", "action": "DROP", "enable": 1, "iface": "-"});
    assert_eq!(Rule::from_api_json(&v).map(|r| r.iface), Ok(None));
}
