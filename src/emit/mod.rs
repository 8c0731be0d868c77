//! Emitters: turn a placement into the files that dataplanes load. One
//! module per dataplane; each returns `OutFile`s (path and bytes) and never
//! touches the file system. `cli` hands the files to `out`, the one writer.
//!
//! Every emitter works from the same `EmitInput` and the same lowered rules
//! (`rules`), and matches contexts with the regexes of `context_regex`, built
//! from the analysis' encoding.

pub mod cilium;
pub mod context_regex;
pub mod envoy;
pub mod istio;
pub mod k8s;
pub mod readme;
pub mod routes;
pub mod rules;
pub mod yaml;

use crate::analysis::Analysis;
use crate::check::Program;
use crate::diag::{Code, Diagnostic};
use crate::graph::CallGraph;
use crate::place::Placement;

/// A file to write, relative to the output folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl OutFile {
    pub fn text(path: impl Into<String>, text: String) -> OutFile {
        OutFile {
            path: path.into(),
            bytes: text.into_bytes(),
        }
    }
}

/// Everything the emitters read.
pub struct EmitInput<'a> {
    pub program: &'a Program,
    pub graph: &'a CallGraph,
    pub analysis: &'a Analysis,
    pub placement: &'a Placement,
    /// Namespace, add-on image and eBPF object of the Kubernetes output.
    pub cluster: k8s::Cluster<'a>,
}

/// Which outputs to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    All,
    Envoy,
    Istio,
    Cilium,
    K8s,
    Ebpf,
}

/// Every output file for `target`, sorted by path. The placement object
/// and a README are always written.
pub fn emit(input: &EmitInput, target: Target) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let mut rules = Vec::with_capacity(input.program.policies.len());
    let mut diags = Vec::new();
    for p in &input.program.policies {
        match rules::lower(&p.body, &p.act) {
            Ok(r) => rules.push(r),
            Err(d) => {
                diags.push(d);
                rules.push(Vec::new());
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut files = vec![OutFile::text(
        "placement.json",
        crate::place::report::json_text(input.placement, input.program, input.graph),
    )];
    if matches!(target, Target::All | Target::Envoy) {
        files.extend(envoy::emit(input, &rules)?);
    }
    if matches!(target, Target::All | Target::Istio) {
        files.extend(istio::emit(input, &rules)?);
    }
    if matches!(target, Target::All | Target::Cilium) {
        files.extend(cilium::emit(input, &rules)?);
    }
    if matches!(target, Target::All | Target::Ebpf) {
        files.push(OutFile {
            path: crate::ebpf::OBJECT_PATH.into(),
            bytes: crate::ebpf::OBJECT.to_vec(),
        });
    }
    // Last: its kustomization includes the other folders that have one.
    if matches!(target, Target::All | Target::K8s) {
        files.extend(k8s::emit(input, &files)?);
    }
    files.push(readme::readme(input, &files));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Removes from each policy's support the dataplanes whose emitter cannot
/// express it wherever it is placed (today: Cilium's limits on actions), so
/// that placement never picks a sidecar that compile would then refuse.
/// A policy left with no dataplane is an error (CU0601) saying why.
pub fn restrict_support(program: &mut crate::check::Program) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    for p in &mut program.policies {
        let Ok(rules) = rules::lower(&p.body, &p.act) else {
            continue;
        };
        let problems = cilium::expression_problems(p, &rules);
        if problems.is_empty() {
            continue;
        }
        p.support.retain(|d, _| !cilium::is_cilium_dataplane(d));
        if p.support.is_empty() {
            diags.extend(problems);
        }
    }
    diags
}

/// The last check on a document before it is written: an empty `regex`
/// (Envoy's `safe_regex`, an Istio `StringMatch`) is a copperc bug, never
/// output. Envoy rejects it, and as a context guard it would stand for the
/// request from outside, which is matched by the absence of the header.
/// Each one becomes an error pointing at the policy of the enclosing route
/// (found by the route's name, `policy+policy` or `caller/policy`).
pub fn empty_regexes(doc: &serde_json::Value, file: &str, program: &Program) -> Vec<Diagnostic> {
    fn walk<'v>(
        v: &'v serde_json::Value,
        name: Option<&'v str>,
        path: &mut Vec<String>,
        found: &mut Vec<(String, Option<&'v str>)>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                let name = m.get("name").and_then(serde_json::Value::as_str).or(name);
                for (k, x) in m {
                    if k == "regex" && x.as_str() == Some("") {
                        found.push((format!("{}/regex", path.join("/")), name));
                        continue;
                    }
                    path.push(k.clone());
                    walk(x, name, path, found);
                    path.pop();
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(i.to_string());
                    walk(x, name, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(doc, None, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .map(|(at, name)| {
            let d = Diagnostic::new(
                Code::NotExpressible,
                format!("internal error: an empty regex at `{at}` of `{file}` (a copperc bug); nothing is written"),
            )
            .with_note("an empty regex matches only the empty text, and Envoy rejects it");
            let policy = name.and_then(|n| {
                let n = n.rsplit('/').next().unwrap_or(n);
                n.split('+')
                    .find_map(|part| program.policies.iter().find(|p| p.name == part))
            });
            match policy {
                Some(p) => d.at(p.name_span, format!("in the configuration of `{}`", p.name)),
                None => d,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn empty_regexes_are_refused() {
        let program = Program::default();
        let doc = json!({"routes": [
            {"name": "p", "match": {"headers": [{"string_match": {"safe_regex": {"regex": ""}}}]}},
            {"name": "q", "match": {"headers": [{"string_match": {"safe_regex": {"regex": "/a"}}}]}},
        ]});
        let d = empty_regexes(&doc, "envoy/x.yaml", &program);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::NotExpressible);
        assert!(
            d[0].message
                .contains("routes/0/match/headers/0/string_match/safe_regex/regex"),
            "{}",
            d[0].message
        );
        assert!(empty_regexes(&doc["routes"][1], "envoy/x.yaml", &program).is_empty());
    }
}
