//! `labwright graph`: the lab's topology as a picture (SVG), or as DOT or Mermaid
//! text, from the spec (no node contacted) or, with `--live`, from a scan.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use labwright_engine::firewall::{compile_spec, matrix};
use labwright_spec::Spec;

use super::common;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::render::graph::{self, Graph};
use crate::{exit, target, ui};

/// Draws the node, its bridges and segments, the guests with their NICs, the router,
/// the storage, the Tailscale routes and the flows the firewall allows.
///
/// `-o svg` (the default) is laid out by labwright itself; `-o dot` is for Graphviz,
/// `-o mermaid` pastes into a README or a pull request (`-o markdown` fences it),
/// `-o json` is the graph as data.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  labwright graph specs/jarvis-homelab.desired.yaml > lab.svg\n  labwright graph specs/jarvis-homelab.desired.yaml --phase 2 -o mermaid\n  labwright graph specs/jarvis-homelab.desired.yaml -o dot | dot -Tpng > lab.png\n  labwright graph specs/nas.desired.yaml --live --target sim"
)]
pub struct GraphArgs {
    /// The spec.
    #[arg(value_name = "SPEC")]
    pub spec: PathBuf,
    /// Draw what the node has now (a scan), marking what differs from the spec.
    #[arg(long)]
    pub live: bool,
    /// Draw the lab as in this phase (default: the spec's phase); elements of later
    /// phases are drawn faded.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub phase: Option<u8>,
    /// Write the picture to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The spec at `phase` (or its own), as the matrix and the picture read it.
pub fn at_phase(spec: &Spec, phase: Option<u8>) -> Spec {
    let mut s = spec.clone();
    if let Some(p) = phase {
        s.phase = labwright_spec::model::Phase(p);
    }
    s
}

/// The picture of what the spec declares: shared with `report`.
pub fn spec_graph(spec: &Spec) -> Graph {
    let phase = spec.phase.0;
    let m = matrix::reachability(spec, phase, &compile_spec(spec));
    graph::from_spec(spec, phase, Some(&m))
}

pub fn run(args: &GraphArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let loaded = common::load_checked(&args.spec, g)?;
    let spec = at_phase(&loaded.spec, args.phase);
    let picture = if args.live {
        let rt = common::runtime()?;
        rt.block_on(async {
            let conn = target::connect(&g.target).await?;
            ui::info(g, &format!("target: {}", conn.label));
            let r = scan(&spec, &conn).await;
            conn.close().await;
            r
        })?
    } else {
        spec_graph(&spec)
    };
    let text = match g.output {
        OutputFormat::Table | OutputFormat::Svg => picture.svg(),
        OutputFormat::Dot => picture.dot(),
        OutputFormat::Mermaid => picture.mermaid(),
        OutputFormat::Markdown => format!("```mermaid\n{}```\n", picture.mermaid()),
        OutputFormat::Json => {
            let mut v = serde_json::to_value(&picture)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("formatVersion".into(), crate::print::FORMAT_VERSION.into());
            }
            serde_json::to_string_pretty(&v)? + "\n"
        }
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            ui::info(g, &format!("picture written to {}", path.display()));
        }
        None => crate::print::raw(&text)?,
    }
    Ok(ExitCode::from(exit::OK))
}

async fn scan(spec: &Spec, conn: &target::Connected) -> anyhow::Result<Graph> {
    let host = conn.host(spec)?;
    let scope = labwright_engine::ScanScope::for_spec(spec, 3);
    let observed = labwright_engine::observed::scan_for_spec(
        &conn.client,
        crate::host::as_exec(&host),
        spec,
        spec.node_name(),
        &scope,
    )
    .await
    .context("scan failed")?;
    Ok(graph::live::from_observed(spec, &observed))
}
