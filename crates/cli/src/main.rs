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
