//! One module per subcommand.

pub mod check;
pub mod schema;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check(a) => check::run(a, &cli.global),
        Command::Schema(a) => schema::run(a, &cli.global),
    }
}
