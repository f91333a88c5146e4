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

/// Commands that contact no node: the node flags mean nothing there, so their help
/// does not show them (they are still accepted, so scripts that pass them everywhere
/// keep working).
pub const OFFLINE: [&str; 5] = ["check", "schema", "import", "completions", "man"];

/// The node flags, by clap id.
const NODE_FLAGS: [&str; 3] = ["target", "insecure", "sim_state"];

/// The command tree the parser, the completions and the man pages share.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command()
}

/// The help of an offline command, without the node flags. (Hiding propagated
/// globals on the tree the parser uses confuses clap's parsing, so only help is
/// rendered from this copy.)
pub fn offline_help(name: &str, long: bool) -> Option<String> {
    let mut cmd = command();
    cmd.build();
    let sub = cmd.find_subcommand_mut(name)?;
    let mut sub = std::mem::take(sub);
    for id in NODE_FLAGS {
        if sub.get_arguments().any(|a| a.get_id() == id) {
            sub = sub.mut_arg(id, |a| a.hide(true));
        }
    }
    let mut sub = sub.bin_name(format!("labwright {name}"));
    Some(if long {
        sub.render_long_help().to_string()
    } else {
        sub.render_help().to_string()
    })
}

/// Parses the command line.
pub fn parse() -> Result<Cli, clap::Error> {
    use clap::Parser;
    Cli::try_parse()
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
    /// A picture (`graph` only; its default).
    Svg,
    /// Graphviz DOT text (`graph` only).
    Dot,
    /// A Mermaid flowchart (`graph` only).
    Mermaid,
}

impl OutputFormat {
    /// The picture formats, which only `graph` prints.
    pub fn is_picture(self) -> bool {
        matches!(self, Self::Svg | Self::Dot | Self::Mermaid)
    }
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
    ///
    /// When every check passes, validate changes two things on the node: the guests'
    /// seed ISOs are detached and deleted (they hold the Tailscale auth key) and
    /// labwright's pre-change snapshots (`lw-…`) expire. `--no-cleanup` makes it
    /// read-only.
    Validate(commands::validate::ValidateArgs),
    /// Check that labwright can work on the node: endpoint, TLS, clock, version,
    /// the token's privileges, SSH, storage room.
    ///
    /// One line per check (ok, warn, fail, skip) with what to do about it. With SPEC,
    /// the privileges, SSH and storage checks are those of its plan (computed as
    /// `plan` does); without, the token is checked against everything labwright may
    /// need (docs/privileges.md). Exit 0 when nothing fails, 1 otherwise. Writes
    /// nothing.
    Doctor(commands::doctor::DoctorArgs),
    /// labwright's own least-privilege API token (`token create`).
    Token(commands::token::TokenArgs),
    /// Run the Proxmox VE simulator (for trying labwright and for tests).
    Sim(commands::sim::SimArgs),
    /// Print the JSON Schema of the spec (for editors' YAML language servers).
    Schema(commands::schema::SchemaArgs),
    /// Firewall questions: simulate a flow (decision trail), print the reachability matrix.
    Firewall(commands::firewall::FirewallArgs),
    /// Draw the lab: bridges, guests, router, storage, routes and allowed flows.
    Graph(commands::graph::GraphArgs),
    /// Write a one-page, offline HTML report: plan, topology, matrix, checks.
    Report(commands::report::ReportArgs),
    /// Convert another tool's spec (naasctl) into a labwright spec, listing what did not map.
    ///
    /// Every value carries a `# <- PATH` comment naming the naasctl key it came from.
    /// On top, and on stderr: every key not mapped (and whether naasctl itself acted on
    /// it), the decisions left to you as `${VAR}` placeholders, and the secrets found,
    /// which are never copied. Exit code 1 when the input cannot be read.
    Import(commands::import::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page, or write one per subcommand into a folder.
    Man(commands::man::ManArgs),
}

#[cfg(test)]
mod tests {
    /// Every subcommand, at any depth, with its path (`firewall matrix`).
    fn all(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        // clap's own `help` subcommand is not ours to document.
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name()).trim().to_string();
            out.push((p.clone(), sub.clone()));
            all(sub, p, out);
        }
    }

    #[test]
    fn every_subcommand_has_examples_and_every_argument_a_description() {
        let cmd = super::command();
        let mut subs = Vec::new();
        all(&cmd, String::new(), &mut subs);
        assert!(subs.len() >= 12, "{}", subs.len());
        let mut missing = Vec::new();
        for (path, sub) in &subs {
            let after = sub
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !(after.contains("Examples:") && after.contains("labwright ")) {
                missing.push(format!("`labwright {path} --help` has no example"));
            }
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!(
                        "`labwright {path}`: argument `{id}` has no description"
                    ));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn node_flags_are_hidden_where_no_node_is_contacted() {
        for name in super::OFFLINE {
            let h = super::offline_help(name, true).unwrap_or_default();
            assert!(h.contains("Usage: labwright"), "{h}");
            assert!(!h.contains("--target"), "`{name} --help` shows --target");
            assert!(
                !h.contains("--sim-state"),
                "`{name} --help` shows --sim-state"
            );
            assert!(
                h.contains("--output"),
                "`{name} --help` lost the output flag"
            );
        }
    }

    /// The help texts as a person reads them, kept as snapshots: a change to any of
    /// them shows in review.
    #[test]
    fn help_texts() {
        let mut cmd = super::command().term_width(100);
        cmd.build();
        let mut subs = Vec::new();
        all(&cmd, String::new(), &mut subs);
        let mut text = cmd.render_long_help().to_string();
        for (path, mut sub) in subs {
            text.push_str(&format!("\n===== labwright {path} --help\n"));
            // What a person sees: offline commands without the node flags.
            match super::offline_help(&path, true) {
                Some(h) => text.push_str(&h),
                None => text.push_str(&sub.render_long_help().to_string()),
            }
        }
        insta::assert_snapshot!(text);
    }
}
