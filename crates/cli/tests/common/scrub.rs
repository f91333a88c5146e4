//! Shared by the test helpers (`common`) and the soak harness (`soak_support`).

/// Variables a developer's shell may carry that would change what a test or soak run
/// sees; every spawned `labwright` has them removed.
pub const SCRUB: &[&str] = &[
    "LABWRIGHT_PVE_URL",
    "LABWRIGHT_PVE_TOKEN_ID",
    "LABWRIGHT_PVE_TOKEN_SECRET",
    "LABWRIGHT_PVE_FINGERPRINT",
    "LABWRIGHT_TARGET",
    "LABWRIGHT_SIM_STATE",
    "LABWRIGHT_SIM_SCENARIO",
    "LABWRIGHT_SIM_TIME_SCALE",
    "LABWRIGHT_SSH_TARGET",
    "LABWRIGHT_SSH_IDENTITY",
    "LABWRIGHT_SSH_KNOWN_HOSTS",
    "LABWRIGHT_LOG",
    "TAILSCALE_AUTHKEY",
    "NO_COLOR",
    "CLICOLOR_FORCE",
];
