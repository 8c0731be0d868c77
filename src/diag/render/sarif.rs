//! SARIF 2.1.0 output for code-scanning tools. `ruleId` is the diagnostic
//! code; columns count Unicode code points (declared with `columnKind`);
//! `partialFingerprints` hash the code, file and message, not the line, so a
//! finding keeps its identity when lines move.

use serde_json::{Value, json};

use crate::diag::{Code, Diagnostic, Label, Severity};
use crate::source::SourceMap;

pub fn render_sarif(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut used: Vec<Code> = diags.iter().map(|d| d.code).collect();
    used.sort();
    used.dedup();
    let rules: Vec<Value> = used
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "name": rule_name(c.title()),
                "shortDescription": {"text": c.title()},
                "fullDescription": {"text": c.explanation()},
                "help": {"text": c.explanation()},
                "defaultConfiguration": {"level": level(c.severity())},
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let rule_index = used.iter().position(|c| *c == d.code).unwrap_or(0);
            let mut text = d.message.clone();
            for n in &d.notes {
                text.push_str("\nnote: ");
                text.push_str(n);
            }
            if let Some(h) = &d.help {
                text.push_str("\nhelp: ");
                text.push_str(h);
            }
            let mut result = json!({
                "ruleId": d.code.as_str(),
                "ruleIndex": rule_index,
                "level": level(d.severity),
                "message": {"text": text},
                "partialFingerprints": {"copperc/v1": fingerprint(d, sources)},
            });
            if let Some(p) = &d.primary {
                result["locations"] = json!([location(p, sources)]);
            }
            if !d.secondary.is_empty() {
                let related: Vec<Value> = d
                    .secondary
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let mut loc = location(l, sources);
                        loc["id"] = json!(i);
                        loc["message"] = json!({"text": l.message});
                        loc
                    })
                    .collect();
                result["relatedLocations"] = json!(related);
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "copperc",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `unknown ACT` -> `UnknownAct`-style names, as SARIF viewers show them.
fn rule_name(title: &str) -> String {
    title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|f| f.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn location(l: &Label, sources: &SourceMap) -> Value {
    let start = sources.line_col(l.span.file, l.span.start);
    let end = sources.line_col(l.span.file, l.span.end);
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri(sources.name(l.span.file))},
            "region": {
                "startLine": start.line,
                "startColumn": start.column,
                "endLine": end.line,
                "endColumn": end.column,
                "byteOffset": l.span.start,
                "byteLength": l.span.end - l.span.start,
            }
        }
    })
}

/// SARIF wants URI references: keep relative paths relative, escape the rest.
fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// FNV-1a over the code, file name and message: stable across runs and
/// platforms, and independent of line numbers.
fn fingerprint(d: &Diagnostic, sources: &SourceMap) -> String {
    let file = d.primary.as_ref().map(|p| sources.name(p.span.file)).unwrap_or("");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in d
        .code
        .as_str()
        .bytes()
        .chain([0])
        .chain(file.bytes())
        .chain([0])
        .chain(d.message.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
