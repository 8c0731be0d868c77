//! Emitters: turn a placement into the files that dataplanes load. One
//! module per dataplane; each returns `OutFile`s (path and bytes) and never
//! touches the file system. `cli` hands the files to `out`, the one writer.
//!
//! Every emitter works from the same `EmitInput` and the same lowered rules
//! (`rules`), and matches contexts with the regexes of `context_regex`, built
//! from the analysis' encoding.

pub mod context_regex;
pub mod envoy;
pub mod readme;
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
}

/// Which outputs to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    All,
    Envoy,
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
    if matches!(target, Target::All | Target::Ebpf) {
        files.push(OutFile {
            path: crate::ebpf::OBJECT_PATH.into(),
            bytes: crate::ebpf::OBJECT.to_vec(),
        });
    }
    files.push(readme::readme(input, &files));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
