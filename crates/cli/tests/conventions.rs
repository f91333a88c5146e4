//! CLI conventions people expect: shell completions that complete, a man page that
//! renders.

mod common;

use common::Lab;

#[test]
fn bash_completion_completes_subcommands() {
    let lab = Lab::new();
    let out = lab.run(&["completions", "bash"]);
    out.expect_code(0, "completions bash");
    let script = lab.path().join("labwright.bash");
    std::fs::write(&script, &out.stdout).expect("write script");
    let probe = format!(
        "source {}; COMP_WORDS=(labwright ch); COMP_CWORD=1; COMP_LINE='labwright ch'; COMP_POINT=12; _labwright labwright ch labwright; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let res = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash runs");
    let words = String::from_utf8_lossy(&res.stdout);
    assert!(
        words.lines().any(|w| w.trim() == "check"),
        "completing `labwright ch` gave {words:?} (stderr {})",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(!words.lines().any(|w| w.trim() == "plan"), "{words:?}");
}

#[test]
fn the_man_page_renders() {
    let lab = Lab::new();
    let out = lab.run(&["man"]);
    out.expect_code(0, "man");
    let page = lab.path().join("labwright.1");
    std::fs::write(&page, &out.stdout).expect("write page");
    let res = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&page)
        .env("MANWIDTH", "80")
        .output()
        .expect("man runs (scripts/test installs man-db)");
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        res.status.success(),
        "man -l failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(text.contains("labwright"), "{text}");
    assert!(text.contains("validate"), "{text}");
    // One page per subcommand for packagers.
    let dir = lab.path().join("man1");
    lab.run(&["man", "--out-dir", &dir.to_string_lossy()])
        .expect_code(0, "man --out-dir");
    assert!(dir.join("labwright-plan.1").exists());
}
