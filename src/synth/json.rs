//! Writing a generated graph as copperc's call-graph JSON: `graph_json`.
//!
//! Owns the output bytes: the brief's format (`services` with `name`,
//! `replicas` and, when not the default `["v1"]`, `versions`; `calls` with
//! `from`/`to`; `entrypoints`), one service or call per line, keys in a
//! fixed order. Keys are written by hand rather than through a
//! `serde_json::Map`, whose order depends on whether some crate in the
//! build enables `preserve_order`; `serde_json` escapes every string, so a
//! hand-built `SynthGraph` with odd names still gives valid JSON.

use std::fmt::Write as _;

use super::spec::SynthGraph;

fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The graph as call-graph JSON. Same graph, same bytes. Calls whose
/// indices are out of range are skipped.
pub fn graph_json(g: &SynthGraph) -> String {
    let names: Vec<String> = g.services.iter().map(|s| quoted(&s.name)).collect();
    let mut out = String::with_capacity(64 + 48 * g.services.len() + 40 * g.calls.len());
    out.push_str("{\n  \"services\": [");
    for (i, s) in g.services.iter().enumerate() {
        out.push_str(if i == 0 { "\n    " } else { ",\n    " });
        let _ = write!(
            out,
            "{{\"name\": {}, \"replicas\": {}",
            names.get(i).map_or("\"\"", String::as_str),
            s.replicas
        );
        if s.versions.len() != 1 || s.versions.first().map(String::as_str) != Some("v1") {
            out.push_str(", \"versions\": [");
            for (j, v) in s.versions.iter().enumerate() {
                if j > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quoted(v));
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str(if g.services.is_empty() {
        "],\n  \"calls\": ["
    } else {
        "\n  ],\n  \"calls\": ["
    });
    let mut first = true;
    for &(from, to) in &g.calls {
        let (Some(f), Some(t)) = (names.get(from), names.get(to)) else {
            continue;
        };
        out.push_str(if first { "\n    " } else { ",\n    " });
        first = false;
        let _ = write!(out, "{{\"from\": {f}, \"to\": {t}}}");
    }
    out.push_str(if first {
        "],\n  \"entrypoints\": ["
    } else {
        "\n  ],\n  \"entrypoints\": ["
    });
    let mut first = true;
    for &e in &g.entrypoints {
        if let Some(name) = names.get(e) {
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push_str(name);
        }
    }
    out.push_str("]\n}\n");
    out
}
