//! `labwright schema`: the JSON Schema of the spec.

use std::process::ExitCode;

use clap::Args;

use crate::cli::GlobalArgs;
use crate::exit;

/// Point an editor at it: `labwright schema > labwright.schema.json`, then start the
/// spec with `# yaml-language-server: $schema=./labwright.schema.json`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright schema > homelab.schema.json\n  labwright schema --out .vscode/labwright.schema.json"
)]
pub struct SchemaArgs {
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(args: &SchemaArgs, _g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut schema = labwright_spec::json_schema();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            serde_json::Value::String("https://labwright.dev/schema/v1/homelab.json".into()),
        );
    }
    let text = serde_json::to_string_pretty(&schema)? + "\n";
    match &args.out {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => crate::print::raw(&text)?,
    }
    Ok(ExitCode::from(exit::OK))
}
