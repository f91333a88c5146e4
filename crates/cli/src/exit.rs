//! Exit codes. Scripts depend on them, so they never change meaning.

/// Success; for `plan --detailed-exitcode`, no changes.
pub const OK: u8 = 0;
/// An error or a policy violation.
pub const ERROR: u8 = 1;
/// `plan --detailed-exitcode`: changes are pending.
#[allow(dead_code)]
pub const CHANGES: u8 = 2;
/// The command line was wrong (sysexits' EX_USAGE).
pub const USAGE: u8 = 64;
/// Interrupted by Ctrl-C (128 + SIGINT).
#[allow(dead_code)]
pub const INTERRUPTED: u8 = 130;
