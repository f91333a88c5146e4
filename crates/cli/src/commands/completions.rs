//! `labwright completions SHELL`: a completion script generated from the same clap
//! model as the parser, so it never goes stale.

use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

use crate::exit;

/// Prints the completion script for SHELL on stdout.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright completions bash > ~/.local/share/bash-completion/completions/labwright\n  labwright completions zsh > \"${fpath[1]}/_labwright\""
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut crate::cli::command(),
        "labwright",
        &mut out,
    );
    crate::print::raw(&String::from_utf8_lossy(&out))?;
    Ok(ExitCode::from(exit::OK))
}
