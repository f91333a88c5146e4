//! One module per subcommand.

pub mod apply;
pub mod check;
mod common;
pub mod completions;
pub mod doctor;
pub mod firewall;
pub mod graph;
pub mod import;
pub mod man;
pub mod plan;
pub mod report;
pub mod scan;
pub mod schema;
pub mod sim;
pub mod token;
pub mod validate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    if cli.global.output.is_picture() && !matches!(cli.command, Command::Graph(_)) {
        let err = anyhow::anyhow!(
            "`-o {}` draws a picture, which only `labwright graph` does; use -o table, json or markdown here",
            clap::ValueEnum::to_possible_value(&cli.global.output)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        );
        crate::ui::print_error(&err, &cli.global);
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    match &cli.command {
        Command::Check(a) => check::run(a, &cli.global),
        Command::Schema(a) => schema::run(a, &cli.global),
        Command::Scan(a) => scan::run(a, &cli.global),
        Command::Plan(a) => plan::run(a, &cli.global),
        Command::Apply(a) => apply::run(a, &cli.global),
        Command::Validate(a) => validate::run(a, &cli.global),
        Command::Sim(a) => sim::run(a, &cli.global),
        Command::Doctor(a) => doctor::run(a, &cli.global),
        Command::Token(a) => token::run(a, &cli.global),
        Command::Firewall(a) => firewall::run(a, &cli.global),
        Command::Graph(a) => graph::run(a, &cli.global),
        Command::Report(a) => report::run(a, &cli.global),
        Command::Import(a) => import::run(a, &cli.global),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}
