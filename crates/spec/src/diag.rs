//! Diagnostics shared by the loader and the policy rules: a stable rule id, a
//! severity, a message, where (file:line:col and the spec path) and what to do.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;

use crate::path::YamlPath;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational (deferred phases): never fails a check.
    Advice,
    /// Fails only with `--strict`.
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Advice => "advice",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A position in the spec file: 1-based line and column, plus the byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SrcSpan {
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub offset: usize,
    #[serde(skip)]
    pub len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case rule id (`tag-format`, `unknown-key`, …).
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    /// Spec path of the offending value (`vms[1].tags[0]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub span: Option<SrcSpan>,
    /// Short text under the highlighted value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(rule: &str, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            rule: rule.to_string(),
            severity,
            message: message.into(),
            path: None,
            span: None,
            label: None,
            help: None,
        }
    }
    pub fn error(rule: &str, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Error, message)
    }
    pub fn warning(rule: &str, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Warning, message)
    }
    pub fn advice(rule: &str, message: impl Into<String>) -> Self {
        Self::new(rule, Severity::Advice, message)
    }
    pub fn at(mut self, path: &YamlPath, span: Option<SrcSpan>) -> Self {
        self.path = Some(path.to_string());
        self.span = span;
        self
    }
    pub fn with_span(mut self, span: Option<SrcSpan>) -> Self {
        self.span = span;
        self
    }
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The file a diagnostic refers to.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: Arc<str>,
}

/// Adapter so miette can draw a [`Diagnostic`] with its snippet.
#[derive(Debug)]
struct Rendered<'a> {
    d: &'a Diagnostic,
    src: NamedSource<Arc<str>>,
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}
impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        // Shown in our own header line instead (see `render`).
        None
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Advice => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.d.span.map(|_| &self.src as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.d.span?;
        let label = self.d.label.clone();
        Some(Box::new(std::iter::once(LabeledSpan::new(
            label,
            span.offset,
            span.len,
        ))))
    }
}

/// How to draw diagnostics for a person.
#[derive(Clone, Copy, Debug)]
pub struct RenderOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 100,
        }
    }
}

/// Renders one diagnostic the way rustc does: code, message, `file:line:col`, the
/// snippet with the value underlined, and the help line.
pub fn render(d: &Diagnostic, file: &SourceFile, opts: RenderOptions) -> String {
    let theme = if opts.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(opts.width)
        .with_links(false);
    let r = Rendered {
        d,
        src: NamedSource::new(file.name.clone(), file.text.clone()),
    };
    let mut out = String::new();
    if handler.render_report(&mut out, &r).is_err() {
        return short(d, &file.name);
    }
    // miette shows file:line:col only inside the box; a plain first line keeps it
    // greppable, clickable in terminals, and carries the rule id.
    let head = match d.span {
        Some(s) => format!(
            "{}:{}:{}: {}[{}]",
            file.name, s.line, s.column, d.severity, d.rule
        ),
        None => format!("{}: {}[{}]", file.name, d.severity, d.rule),
    };
    format!("{head}\n{}", out.trim_start_matches('\n'))
}

/// One line: `file:line:col: severity[rule]: message`.
pub fn short(d: &Diagnostic, file: &str) -> String {
    match d.span {
        Some(s) => format!(
            "{file}:{}:{}: {}[{}]: {}",
            s.line, s.column, d.severity, d.rule, d.message
        ),
        None => format!("{file}: {}[{}]: {}", d.severity, d.rule, d.message),
    }
}
