//! The one printer: every command hands its result here as a [`Document`], and this
//! is the only place that writes to stdout. JSON is the document's serde form (one
//! document, always, with a `formatVersion`); text and Markdown are its renderings,
//! kept under `render/`, so a new output (HTML, a graph) is one more renderer over
//! the same values.

use std::io::Write;

use comfy_table::{Table, presets};
use serde::Serialize;

use crate::cli::{GlobalArgs, OutputFormat};

/// Version of the JSON documents that do not carry their own (a plan does).
pub const FORMAT_VERSION: u32 = 1;

/// A command's result, renderable in every output format.
pub trait Document: Serialize {
    /// For a terminal (and for pipes: plain text, no colour).
    fn text(&self) -> String;
    /// For pull requests; the text form unless the document has its own.
    fn markdown(&self) -> String {
        self.text()
    }
}

/// Prints `doc` on stdout in the format the user asked for.
pub fn print<D: Document>(g: &GlobalArgs, doc: &D) -> anyhow::Result<()> {
    let text = match g.output {
        OutputFormat::Json => {
            let mut v = serde_json::to_value(doc)?;
            if let Some(o) = v.as_object_mut()
                && !o.contains_key("formatVersion")
            {
                o.insert("formatVersion".into(), FORMAT_VERSION.into());
            }
            serde_json::to_string_pretty(&v)? + "\n"
        }
        OutputFormat::Markdown => doc.markdown(),
        // Picture formats never get here (`commands::run` refuses them but for graph).
        OutputFormat::Table | OutputFormat::Svg | OutputFormat::Dot | OutputFormat::Mermaid => {
            doc.text()
        }
    };
    raw(&text)
}

/// Writes a document that has one form only (the JSON Schema) as it is.
pub fn raw(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A table in the style of the format (box drawing for the terminal, pipes for
/// Markdown), as wide as the terminal.
pub fn table(markdown: bool) -> Table {
    use std::io::IsTerminal;
    let mut t = Table::new();
    let terminal = std::io::stdout().is_terminal();
    t.load_style(if markdown {
        presets::ASCII_MARKDOWN
    } else if terminal {
        presets::UTF8_FULL_CONDENSED
    } else {
        // Piped: plain ASCII, one row per line, that greps and diffs well.
        presets::ASCII_BORDERS_ONLY_CONDENSED
    });
    if terminal && !markdown {
        // Cells wrap to fit the terminal instead of running off its edge.
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        t.set_width(u16::try_from(crate::ui::width()).unwrap_or(100).max(60));
    }
    t
}
