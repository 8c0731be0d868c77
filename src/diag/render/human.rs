//! Human output through codespan-reporting: `error[CU0301]: ...`, the source
//! excerpt with labels, then notes and a `help:` line.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel, Severity as CsSeverity};
use codespan_reporting::term::{self, termcolor::Buffer};

use crate::diag::{Diagnostic, Severity};
use crate::source::SourceMap;

pub fn render_human(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let config = term::Config::default();
    let mut buffer = if color { Buffer::ansi() } else { Buffer::no_color() };
    for diag in diags {
        let cs = to_codespan(diag);
        if term::emit_to_write_style(&mut buffer, &config, sources.files(), &cs).is_err() {
            // A span outside its file is a bug in a stage; still say what is wrong.
            let line = format!("{}[{}]: {}\n", diag.severity.as_str(), diag.code.as_str(), diag.message);
            let _ = std::io::Write::write_all(&mut buffer, line.as_bytes());
        }
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

fn to_codespan(diag: &Diagnostic) -> CsDiagnostic<usize> {
    let severity = match diag.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
    };
    let mut labels = Vec::new();
    if let Some(p) = &diag.primary {
        labels.push(CsLabel::primary(p.span.file, p.span.start..p.span.end).with_message(&p.message));
    }
    for l in &diag.secondary {
        labels.push(CsLabel::secondary(l.span.file, l.span.start..l.span.end).with_message(&l.message));
    }
    let mut notes: Vec<String> = diag.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(help) = &diag.help {
        notes.push(format!("help: {help}"));
    }
    CsDiagnostic::new(severity)
        .with_code(diag.code.as_str())
        .with_message(&diag.message)
        .with_labels(labels)
        .with_notes(notes)
}
