//! JSON output: an array with one object per diagnostic. Positions are given
//! three ways (line/column, end line/column, byte range) so that editors and
//! scripts can use whichever they hold.

use serde_json::{Value, json};

use crate::diag::{Diagnostic, Label};
use crate::source::SourceMap;

pub fn render_json(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let items: Vec<Value> = diags.iter().map(|d| diagnostic_json(d, sources)).collect();
    let mut out = serde_json::to_string_pretty(&Value::Array(items)).unwrap_or_else(|_| "[]".into());
    out.push('\n');
    out
}

fn diagnostic_json(d: &Diagnostic, sources: &SourceMap) -> Value {
    let mut labels: Vec<Value> = Vec::new();
    if let Some(p) = &d.primary {
        labels.push(label_json(p, true, sources));
    }
    labels.extend(d.secondary.iter().map(|l| label_json(l, false, sources)));
    let (file, line, column, end_line, end_column, range) = match &d.primary {
        Some(p) => {
            let start = sources.line_col(p.span.file, p.span.start);
            let end = sources.line_col(p.span.file, p.span.end);
            (
                json!(sources.name(p.span.file)),
                json!(start.line),
                json!(start.column),
                json!(end.line),
                json!(end.column),
                json!([p.span.start, p.span.end]),
            )
        }
        None => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ),
    };
    json!({
        "code": d.code.as_str(),
        "severity": d.severity.as_str(),
        "message": d.message,
        "file": file,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "byte_range": range,
        "labels": labels,
        "notes": d.notes,
        "help": d.help,
    })
}

fn label_json(l: &Label, primary: bool, sources: &SourceMap) -> Value {
    let start = sources.line_col(l.span.file, l.span.start);
    let end = sources.line_col(l.span.file, l.span.end);
    json!({
        "primary": primary,
        "message": l.message,
        "file": sources.name(l.span.file),
        "line": start.line,
        "column": start.column,
        "end_line": end.line,
        "end_column": end.column,
        "byte_range": [l.span.start, l.span.end],
    })
}
