//! The short chaos soak of the test suite: a few seeded runs of the long soak
//! (`cargo bench -p labwright --bench soak`, see `soak_support`), each with faults
//! injected by the simulator, apply SIGKILLed at a seeded point, faults off, re-apply
//! until converged, and every invariant checked.

mod soak_support;

use std::time::Duration;

use soak_support::{Mode, SoakConfig, soak};

/// Seeds picked to cover both modes and kills early and late in the apply.
const SEEDS: &[u64] = &[1, 2, 3, 4, 5];

#[test]
fn short_chaos_soak_converges_without_invariant_violations() {
    let cfg = SoakConfig {
        verbose: true,
        ..SoakConfig::default()
    };
    let (sum, outcomes) = soak(
        SEEDS.iter().copied(),
        SEEDS.len(),
        Duration::from_secs(300),
        &cfg,
    );
    println!("{}", sum.render());
    assert_eq!(sum.runs, SEEDS.len(), "every seed ran");
    assert!(
        outcomes.iter().any(|o| o.mode == Mode::Drift)
            && outcomes.iter().any(|o| o.mode == Mode::Fresh),
        "the seeds cover both modes"
    );
    assert!(sum.killed > 0, "no run was killed mid-apply");
    assert_eq!(
        sum.violations, 0,
        "invariant violations (replay with LW_SOAK_SEED=<seed> cargo bench -p labwright --bench soak): {:?}",
        sum.failed_seeds
    );
    assert_eq!(sum.converged, sum.runs);
}
