//! The command line. One subcommand per file under `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

/// Build and keep a Proxmox VE homelab from a desired-state spec:
/// check → plan → apply → validate.
///
/// Exit codes: 0 ok · 1 error or policy violation · 2 changes pending (plan
/// --detailed-exitcode) · 64 usage error · 130 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "labwright",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Output format of the document printed on stdout.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// When to use colour on stderr (NO_COLOR is honoured with `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(flatten)]
    pub target: crate::target::TargetArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable (tables, rendered diagnostics).
    Table,
    /// Machine-readable JSON.
    Json,
    /// Markdown, for pull requests.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a spec and run every policy rule; no node is contacted.
    Check(commands::check::CheckArgs),
    /// Read the node: guests, configs, storage, backup jobs.
    Scan(commands::scan::ScanArgs),
    /// Show what apply would change, with risk, downtime and rollback.
    Plan(commands::plan::PlanArgs),
    /// Apply a spec or a saved plan (dry-run, confirmation, journal, resume).
    Apply(commands::apply::ApplyArgs),
    /// Check that the node matches the spec and the constraints hold.
    Validate(commands::validate::ValidateArgs),
    /// Run the Proxmox VE simulator (for trying labwright and for tests).
    Sim(commands::sim::SimArgs),
    /// Print the JSON Schema of the spec (for editors' YAML language servers).
    Schema(commands::schema::SchemaArgs),
    /// Firewall questions: simulate a flow (decision trail), print the reachability matrix.
    Firewall(commands::firewall::FirewallArgs),
}
