//! The front half of every command, as one pure function: parse and check
//! the interfaces and policies, load the call graph, and (with a graph and
//! no errors) run the context analysis. Reads only the `SourceMap`; the CLI
//! and the tests call it with texts they loaded.

use crate::analysis::{self, Analysis};
use crate::check::{self, CheckInput, Program};
use crate::diag::Diagnostic;
use crate::graph::{self, CallGraph};
use crate::source::{FileId, SourceMap};

/// What the front half produced: each stage's result when it succeeded,
/// and every diagnostic, sorted.
pub struct Front {
    pub program: Option<Program>,
    pub graph: Option<CallGraph>,
    pub analysis: Option<Analysis>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Runs the stages in order; `lap` is told when each one ends (for `--timings`).
pub fn run(
    sources: &SourceMap,
    interfaces: &[FileId],
    policies: &[FileId],
    graph: Option<FileId>,
    lap: &mut dyn FnMut(&str),
) -> Front {
    let mut diagnostics = Vec::new();
    let graph = graph.and_then(|f| {
        let (g, ds) = graph::parse_graph(sources, f);
        diagnostics.extend(ds);
        lap("load call graph");
        g
    });
    let names = graph.as_ref().map(CallGraph::names);
    let (program, ds) = check::check(
        sources,
        &CheckInput {
            interface_files: interfaces,
            policy_files: policies,
            graph_services: names.as_ref(),
        },
    );
    diagnostics.extend(ds);
    lap("parse and check policies");
    let analysis = match (&program, &graph) {
        (Some(p), Some(g)) => {
            let (a, ds) = analysis::analyze(p, g);
            diagnostics.extend(ds);
            lap("context analysis");
            a
        }
        _ => None,
    };
    crate::diag::normalize(&mut diagnostics);
    Front {
        program,
        graph,
        analysis,
        diagnostics,
    }
}
