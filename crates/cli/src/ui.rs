//! Everything that writes to the terminal: logging, colour, errors. Stdout carries
//! only the requested document; everything else goes to stderr.
#![allow(clippy::print_stderr)]

use std::io::IsTerminal;

use crate::cli::{ColorChoice, GlobalArgs};

/// Whether stderr gets colour: `--color`, then NO_COLOR / CLICOLOR_FORCE, then TTY.
pub fn stderr_color(g: &GlobalArgs) -> bool {
    match g.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
                return false;
            }
            if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
                return true;
            }
            std::io::stderr().is_terminal()
        }
    }
}

/// Terminal width for wrapped output (100 when not a terminal).
pub fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// `--quiet`, for the few places that write to stderr without the global args.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A line on stderr unless `--quiet` was given.
pub fn remark(line: &str) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("{line}");
    }
}

/// Logging on stderr. `sim_command`: `labwright sim -v` logs one line per request;
/// other commands (with the embedded simulator) keep those lines for `-vv`.
pub fn init_logging(g: &GlobalArgs, sim_command: bool) {
    QUIET.store(g.quiet, std::sync::atomic::Ordering::Relaxed);
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    // The platform verifier logs every refused certificate at ERROR (once per retry);
    // the refusal reaches the user once, as labwright's own error.
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LABWRIGHT_LOG").unwrap_or_else(|_| {
            let requests = if sim_command || g.verbose >= 2 {
                ""
            } else {
                ",labwright_sim::request=warn"
            };
            tracing_subscriber::EnvFilter::new(format!(
                "{level},rustls_platform_verifier=off{requests}"
            ))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_color(g))
        .with_target(false)
        .try_init();
}

/// Prints an error and its causes on stderr.
pub fn print_error(err: &anyhow::Error, g: &GlobalArgs) {
    let prefix = if stderr_color(g) {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    eprintln!("{prefix}: {err}");
    // A cause whose text the line above already carries is not repeated.
    let mut shown = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if shown.contains(&text) {
            continue;
        }
        eprintln!("  caused by: {text}");
        shown = text;
    }
    let all: String = err.chain().map(|c| c.to_string()).collect();
    if all.contains("HTTP 401") {
        eprintln!(
            "  hint: the node refused the API token: check its id and secret (LABWRIGHT_PVE_TOKEN_ID / LABWRIGHT_PVE_TOKEN_SECRET, or the profile's token-id and secret)"
        );
    }
}

/// Writes a line to stderr (progress, summaries).
pub fn note(line: &str) {
    eprintln!("{line}");
}

/// A warning on stderr (shown unless --quiet... warnings are always shown).
pub fn warn(line: &str) {
    eprintln!("warning: {line}");
}

/// An informational line on stderr, hidden by --quiet.
pub fn info(g: &GlobalArgs, line: &str) {
    if !g.quiet {
        eprintln!("{line}");
    }
}
