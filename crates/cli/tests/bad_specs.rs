//! The bad-spec catalogue: each `tests/bad-specs/*.yaml` starts with
//! `# expect: RULE [LINE:COL] [--strict]` and sits next to `*.expected`, the
//! diagnostic as a person sees it. Every case must exit 1 with that rule at that
//! position, print exactly the expected text, and never panic.
//!
//! `LABWRIGHT_BLESS=1 cargo test --test bad_specs` rewrites the `.expected` files
//! after an intended change; review the diff before committing.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn catalogue() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-specs")
}

struct Expect {
    rule: String,
    pos: Option<(u64, u64)>,
    strict: bool,
}

fn parse_header(path: &Path, text: &str) -> Expect {
    let first = text.lines().next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} lacks a `# expect:` header", path.display()));
    let mut words = rest.split_whitespace();
    let rule = words.next().unwrap_or_default().to_string();
    let mut pos = None;
    let mut strict = false;
    for w in words {
        if w == "--strict" {
            strict = true;
        } else if let Some((l, c)) = w.split_once(':') {
            pos = Some((l.parse().unwrap_or(0), c.parse().unwrap_or(0)));
        }
    }
    Expect { rule, pos, strict }
}

fn labwright(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("labwright").unwrap_or_else(|e| panic!("binary: {e}"));
    cmd.current_dir(dir)
        .env_remove("LW_TEST_SURELY_UNSET")
        .env_remove("NO_COLOR")
        .env("COLUMNS", "100")
        .env("ADMIN_PC_CIDR", "192.168.1.50/32");
    cmd
}

#[test]
fn every_bad_spec_fails_with_its_rule_at_its_position() {
    let dir = catalogue();
    let bless = std::env::var_os("LABWRIGHT_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 40,
        "catalogue has only {} cases",
        files.len()
    );
    let mut rules_seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let exp = parse_header(path, &text);
        rules_seen.insert(exp.rule.clone());

        // Machine-readable: rule and position.
        let mut cmd = labwright(&dir);
        cmd.arg("check").arg("-o").arg("json").arg(&name);
        if exp.strict {
            cmd.arg("--strict");
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{name}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
        if out.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, want 1", out.status.code()));
            continue;
        }
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: bad JSON: {e}"));
        let diags = report["specs"][0]["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let hit = diags.iter().find(|d| {
            d["rule"] == exp.rule.as_str()
                && match exp.pos {
                    Some((l, c)) => d["line"] == l && d["column"] == c,
                    None => d.get("line").is_none(),
                }
        });
        if hit.is_none() {
            failures.push(format!(
                "{name}: no `{}` at {:?}; got {}",
                exp.rule,
                exp.pos,
                serde_json::to_string(&diags).unwrap_or_default()
            ));
            continue;
        }

        // Human-readable: the rendered diagnostic.
        let mut cmd = labwright(&dir);
        cmd.arg("check").arg("--color").arg("never").arg(&name);
        if exp.strict {
            cmd.arg("--strict");
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{name}: {e}"));
        let rendered = String::from_utf8_lossy(&out.stderr).replace("\r\n", "\n");
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, rendered.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if rendered != expected {
            failures.push(format!(
                "{name}: rendered output differs from {}\n--- expected\n{expected}\n--- got\n{rendered}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The catalogue covers every policy rule except advice-only ones.
    for rule in labwright_policy_rules() {
        assert!(rules_seen.contains(rule), "no bad spec exercises `{rule}`");
    }
}

fn labwright_policy_rules() -> Vec<&'static str> {
    vec![
        "tag-format",
        "source-cidr",
        "mgmt-access",
        "tailscale-allow",
        "doc-range",
        "no-public-exposure",
        "vm-standards",
        "vmid-unique",
        "vmid-stable",
        "phase-gate",
        "inline-secret",
        "ssd-backup-space",
        "ref-unknown",
        "slot-key",
        "no-vlan-trunking",
        "firewall-rule",
        "bootstrap-source",
        "vm-resources",
        "yaml-syntax",
        "duplicate-key",
        "unknown-key",
        "wrong-type",
        "missing-field",
        "invalid-value",
        "env-unset",
    ]
}

#[test]
fn inline_secrets_never_reach_any_output() {
    let dir = catalogue();
    for name in ["inline-secret-tailscale.yaml", "inline-secret-vm.yaml"] {
        for fmt in ["table", "json", "markdown"] {
            let out = labwright(&dir)
                .args(["check", "-vv", "-o", fmt, name])
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                !all.contains("CANARYSECRET"),
                "{name} -o {fmt} leaked:\n{all}"
            );
            assert!(
                all.contains("inline-secret"),
                "{name} -o {fmt}: rule missing"
            );
        }
    }
}
