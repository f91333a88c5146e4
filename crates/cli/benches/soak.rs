//! The chaos soak (issue 7, part 2): seeded runs in which the simulator injects 5xx
//! errors, dropped connections, failing and slow tasks and latency, and `labwright
//! apply` is SIGKILLed at a random point; then faults go off, apply is re-run until the
//! node converges (at most 3 times) and the invariants are checked. See
//! `crates/cli/tests/soak_support/mod.rs` for what one run does and checks.
//!
//!   LW_SOAK_RUNS=300 LW_SOAK_MAX_SECS=1500 cargo bench -p labwright --bench soak
//!   LW_SOAK_SEED=1234 cargo bench -p labwright --bench soak     # replay one seed
//!
//! Variables: `LW_SOAK_RUNS` (default 300), `LW_SOAK_MAX_SECS` (default 1500: no run
//! starts after that), `LW_SOAK_FIRST_SEED` (default 1; seeds are consecutive),
//! `LW_SOAK_SEED` (one seed only), `LW_SOAK_ONLY` (`phase1`, `phase2`, `drift` or `fresh`: only
//! the seeds of that mode), `LW_SOAK_TIME_SCALE` (simulator time scale, default
//! 0.02), `LW_SOAK_KEEP=1` (keep every run's folder). The folder of a failed run is
//! kept and printed. Exit status 1 when any run
//! violated an invariant.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../tests/soak_support/mod.rs"]
mod soak_support;

use std::time::Duration;

fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn main() -> std::process::ExitCode {
    let mut cfg = soak_support::SoakConfig::default();
    if let Some(ts) = var::<f64>("LW_SOAK_TIME_SCALE") {
        cfg.time_scale = ts;
    }
    cfg.keep_all = var::<u8>("LW_SOAK_KEEP") == Some(1);
    let (first, runs) = match var::<u64>("LW_SOAK_SEED") {
        Some(seed) => (seed, 1),
        None => (
            var("LW_SOAK_FIRST_SEED").unwrap_or(1),
            var("LW_SOAK_RUNS").unwrap_or(300),
        ),
    };
    let max = Duration::from_secs(var("LW_SOAK_MAX_SECS").unwrap_or(1500));
    println!(
        "chaos soak: {runs} run(s) from seed {first}, at most {} s, sim time scale {}",
        max.as_secs(),
        cfg.time_scale
    );
    // `LW_SOAK_ONLY=phase1|phase2|drift|fresh`: only the seeds of that mode (the seeds are
    // the same as in a full soak, the others are skipped).
    let only = std::env::var("LW_SOAK_ONLY").ok();
    let seeds = (first..).filter(move |s| {
        only.as_deref().is_none_or(|m| {
            format!("{:?}", soak_support::Chaos::from_seed(*s).mode).eq_ignore_ascii_case(m)
        })
    });
    let (sum, _) = soak_support::soak(seeds, runs, max, &cfg);
    println!("\n{}", sum.render());
    if sum.violations == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
