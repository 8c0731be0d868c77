//! Renderers: one diagnostic list, several output formats.

mod human;
mod json;
mod sarif;

pub use human::render_human;
pub use json::render_json;
pub use sarif::render_sarif;

use super::Diagnostic;
use crate::source::SourceMap;

/// How diagnostics are printed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source excerpts with labels, for people.
    Human,
    /// A JSON array, one object per diagnostic.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

pub fn render(format: Format, diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    match format {
        Format::Human => render_human(diags, sources, color),
        Format::Json => render_json(diags, sources),
        Format::Sarif => render_sarif(diags, sources),
    }
}
