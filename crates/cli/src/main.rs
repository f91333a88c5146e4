//! `labwright`: builds and keeps a Proxmox VE homelab from a desired-state spec.

mod cli;
mod commands;
mod exit;
mod print;
mod render;
mod settings;
mod target;
mod ui;

use std::process::ExitCode;

/// `labwright check --help` and the like: the offline command's help without the
/// node flags.
fn offline_command_help() -> Option<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.iter().find(|a| !a.starts_with('-'))?;
    if !cli::OFFLINE.contains(&name.as_str()) {
        return None;
    }
    let long = !args.iter().any(|a| a == "-h");
    cli::offline_help(name, long)
}

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version are successes; everything else is a usage error (64).
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            if e.kind() == clap::error::ErrorKind::DisplayHelp
                && let Some(help) = offline_command_help()
            {
                let _ = print::raw(&help);
                return ExitCode::from(code);
            }
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ui::init_logging(&cli.global, matches!(cli.command, cli::Command::Sim(_)));
    match commands::run(&cli) {
        Ok(code) => code,
        Err(err) => {
            ui::print_error(&err, &cli.global);
            ExitCode::from(exit::ERROR)
        }
    }
}
