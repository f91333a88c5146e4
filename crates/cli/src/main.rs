//! `labwright`: builds and keeps a Proxmox VE homelab from a desired-state spec.

mod cli;
mod commands;
mod exit;
mod host;
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
    // The command is the first word that is neither a flag nor a global flag's value;
    // `labwright help check` asks for `check` too.
    const TAKES_VALUE: [&str; 5] = ["-o", "--output", "--color", "--target", "--sim-state"];
    let mut words = Vec::new();
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if TAKES_VALUE.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            words.push(a.as_str());
        }
    }
    let name = match words.as_slice() {
        ["help", name, ..] => *name,
        [name, ..] => *name,
        [] => return None,
    };
    if !cli::OFFLINE.contains(&name) {
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
