//! `labwright man`: man pages generated from the clap model (roff).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::exit;

/// Prints the labwright(1) man page on stdout, or writes a page per subcommand.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright man | man -l -\n  labwright man --out-dir /usr/local/share/man/man1"
)]
pub struct ManArgs {
    /// Write labwright.1 and labwright-<command>.1 into this folder instead.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run(args: &ManArgs) -> anyhow::Result<ExitCode> {
    let cmd = crate::cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("cannot render the man page")?;
            crate::print::raw(&String::from_utf8_lossy(&out))?;
        }
    }
    Ok(ExitCode::from(exit::OK))
}
