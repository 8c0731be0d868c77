//! Context analysis: which calls of the call graph each checked policy can
//! match, each with a shortest witness context (design brief, "Placement
//! semantics"; docs/semantics.md). Hands an `Analysis` to placement.
//!
//! Each pattern becomes a DFA over services (`automaton`), whose product
//! with the call graph is walked once from the entry points (`matched`).
//! Also checks what needs the matched calls: `RouteToVersion(v)` needs v on
//! every matched callee.

pub mod automaton;
pub mod encoding;
pub mod matched;

use std::collections::{BTreeSet, HashMap};

pub use matched::MatchedCall;

use crate::check::Program;
use crate::diag::{Code, Diagnostic};
use crate::graph::CallGraph;
use crate::syntax::ast::{Block, Call, Expr, Stmt};

/// Matched calls of each policy, in the order of `Program::policies`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub matches: Vec<Vec<MatchedCall>>,
}

impl Analysis {
    /// Total number of (policy, matched call) pairs.
    pub fn pairs(&self) -> usize {
        self.matches.iter().map(Vec::len).sum()
    }
}

/// Runs the analysis. `Analysis` is `Some` when no error was found.
pub fn analyze(program: &Program, graph: &CallGraph) -> (Option<Analysis>, Vec<Diagnostic>) {
    let ids: HashMap<&str, usize> = graph
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let service_id = |n: &str| ids.get(n).copied();
    let adj = matched::Adjacency::new(graph);
    // Policies are independent: split them over the available cores.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = program.policies.len().div_ceil(workers).max(1);
    let results: Vec<(Vec<Vec<MatchedCall>>, Vec<Diagnostic>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = program
            .policies
            .chunks(chunk)
            .map(|policies| {
                let adj = &adj;
                let service_id = &service_id;
                scope.spawn(move || analyze_some(policies, graph, adj, service_id))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut diags = Vec::new();
    let mut matches = Vec::with_capacity(program.policies.len());
    for (m, d) in results {
        matches.extend(m);
        diags.extend(d);
    }
    crate::diag::normalize(&mut diags);
    let ok = !diags.iter().any(Diagnostic::is_error) && matches.len() == program.policies.len();
    (ok.then_some(Analysis { matches }), diags)
}

fn analyze_some(
    policies: &[crate::check::model::Policy],
    graph: &CallGraph,
    adj: &matched::Adjacency,
    service_id: &dyn Fn(&str) -> Option<usize>,
) -> (Vec<Vec<MatchedCall>>, Vec<Diagnostic>) {
    let mut scratch = matched::Scratch::default();
    let mut diags = Vec::new();
    let mut matches = Vec::with_capacity(policies.len());
    for p in policies {
        let dfa = match automaton::ServiceDfa::new(&p.pattern, service_id) {
            Ok(d) => d,
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        Code::PatternSyntax,
                        format!("context pattern of `{}` cannot be compiled: {}", p.name, e.0),
                    )
                    .at(p.pattern_span, "this pattern"),
                );
                matches.push(Vec::new());
                continue;
            }
        };
        let calls = matched::matched_calls(graph, adj, &dfa, &mut scratch);
        if calls.is_empty() {
            diags.push(
                Diagnostic::new(
                    Code::MatchesNothing,
                    format!("policy `{}` matches no call of the graph", p.name),
                )
                .at(p.pattern_span, "no context of the graph matches this pattern")
                .with_help("check the service names and the order of calls against the call graph"),
            );
        }
        diags.extend(check_versions(p, &calls, graph));
        matches.push(calls);
    }
    (matches, diags)
}

/// Renders a witness as the pattern language writes contexts: `a b c`.
pub fn witness_text(graph: &CallGraph, witness: &[usize]) -> String {
    let names: Vec<&str> = witness.iter().map(|&s| graph.services[s].name.as_str()).collect();
    names.join(" ")
}

/// `from -> to`, with `(outside)` for a request from outside the mesh.
pub fn call_text(graph: &CallGraph, from: Option<usize>, to: usize) -> String {
    match from {
        Some(f) => format!("{} -> {}", graph.services[f].name, graph.services[to].name),
        None => format!("(outside) -> {}", graph.services[to].name),
    }
}

fn check_versions(p: &crate::check::model::Policy, calls: &[MatchedCall], graph: &CallGraph) -> Vec<Diagnostic> {
    let mut routes = Vec::new();
    collect_routes(&p.body, &mut routes);
    let mut diags = Vec::new();
    for call in routes {
        let Some(Expr::Str(version)) = call.args.first() else {
            continue;
        };
        let mut reported = BTreeSet::new();
        for m in calls {
            let callee = &graph.services[m.to];
            if callee.versions.contains(&version.value) || !reported.insert(m.to) {
                continue;
            }
            diags.push(
                Diagnostic::new(
                    Code::MissingVersion,
                    format!(
                        "policy `{}` routes to version `{}`, which `{}` does not have",
                        p.name, version.value, callee.name
                    ),
                )
                .at(
                    version.span,
                    format!("`{}` has {}", callee.name, callee.versions.join(", ")),
                )
                .with_label(
                    p.pattern_span,
                    format!(
                        "matches {} in context `{}`",
                        call_text(graph, m.from, m.to),
                        witness_text(graph, &m.witness)
                    ),
                )
                .with_help(format!(
                    "narrow the context pattern to end at a service that has `{}`, or add it to the graph's `versions`",
                    version.value
                )),
            );
        }
    }
    diags
}

fn collect_routes<'a>(b: &'a Block, out: &mut Vec<&'a Call>) {
    for s in &b.stmts {
        match s {
            Stmt::Call(c) if c.method.name == "RouteToVersion" => out.push(c),
            Stmt::Call(_) => {}
            Stmt::If {
                branches, otherwise, ..
            } => {
                for (_, blk) in branches {
                    collect_routes(blk, out);
                }
                if let Some(blk) = otherwise {
                    collect_routes(blk, out);
                }
            }
        }
    }
}
