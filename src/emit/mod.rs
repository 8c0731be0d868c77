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
use crate::diag::Diagnostic;
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
