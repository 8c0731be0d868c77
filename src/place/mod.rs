//! Placement (Wire): the cheapest set of sidecars that enforces every policy
//! on every call it matches, proven optimal by weighted partial MaxSAT on
//! varisat (docs/semantics.md). Hands a `Placement` to the emitters.
//!
//! `encode` builds the instance, `maxsat` solves it, this module decodes the
//! model, assigns each (policy, call) pair to a sidecar, and turns an
//! unsatisfiable core into a CU0503 error naming the conflicting pairs.

pub mod baseline;
pub mod encode;
pub mod explain;
pub mod maxsat;
pub mod model;
pub mod report;
pub mod verify;

use std::time::Instant;

pub use model::{Baselines, Enforcement, Placement, Side, SolveStats};

use crate::analysis::{Analysis, call_text, witness_text};
use crate::check::Program;
use crate::diag::{Code, Diagnostic};
use crate::graph::CallGraph;
use encode::Encoding;

pub struct PlaceOptions {
    /// Return the best placement found by then, with its proven gap.
    pub deadline: Option<Instant>,
    /// The dataplane of the baselines (`--default-dataplane`).
    pub default_dataplane: Option<String>,
}

/// Places sidecars, or says why no placement exists.
pub fn place(
    program: &Program,
    graph: &CallGraph,
    analysis: &Analysis,
    opts: &PlaceOptions,
) -> Result<(Placement, Encoding), Vec<Diagnostic>> {
    let Some(default) = baseline::default_dataplane(program, opts.default_dataplane.as_deref()) else {
        let asked = opts.default_dataplane.clone().unwrap_or_default();
        let known: Vec<&str> = program.interfaces.dataplanes.keys().map(String::as_str).collect();
        return Err(vec![
            Diagnostic::new(Code::UnknownDataplane, format!("unknown dataplane `{asked}`")).with_help(format!(
                "the loaded dataplanes are {}",
                crate::check::policies::backticked(&known)
            )),
        ]);
    };
    let started = Instant::now();
    let enc = encode::encode(program, graph, analysis)?;
    let encoded = Instant::now();
    let outcome = maxsat::solve(
        &enc.instance,
        &maxsat::Options {
            deadline: opts.deadline,
        },
    );
    let solved = Instant::now();
    let (solution, lower_bound) = match outcome {
        maxsat::Outcome::Optimal(s) => {
            let lb = s.cost;
            (s, lb)
        }
        maxsat::Outcome::Feasible { solution, lower_bound } => (solution, lower_bound),
        maxsat::Outcome::Unsatisfiable { core } => return Err(vec![conflict(program, graph, analysis, &enc, &core)]),
    };

    let mut chosen: Vec<Option<usize>> = vec![None; graph.services.len()];
    for (v, c) in enc.vars.iter().enumerate() {
        if solution.model.get(v).copied().unwrap_or(false) && chosen[c.service].is_none() {
            chosen[c.service] = Some(c.dataplane);
        }
    }
    drop_unneeded(&enc, &mut chosen);

    let price = |s: usize, d: usize| {
        graph.services[s]
            .replicas
            .saturating_mul(program.interfaces.dataplanes[&enc.dataplanes[d]].cost)
    };
    let cost = chosen
        .iter()
        .enumerate()
        .filter_map(|(s, d)| d.map(|d| price(s, d)))
        .fold(0u64, u64::saturating_add);
    let lower_bound = lower_bound.min(cost);

    let mut enforcement = Vec::with_capacity(analysis.pairs());
    for (pi, calls) in analysis.matches.iter().enumerate() {
        for (ci, m) in calls.iter().enumerate() {
            let opts = encode::sided_options(program, &enc.dataplanes, pi, m.from, m.to);
            // Prefer the callee's sidecar (Ingress sorts first): it sees the
            // request as delivered.
            let pick = opts.iter().find(|(c, _)| chosen[c.service] == Some(c.dataplane));
            let Some((c, side)) = pick else { continue };
            enforcement.push(Enforcement {
                policy: pi,
                call: ci,
                from: m.from,
                to: m.to,
                at: c.service,
                side: *side,
                dataplane: enc.dataplanes[c.dataplane].clone(),
            });
        }
    }
    let placement = Placement {
        cost,
        lower_bound,
        optimal: lower_bound == cost,
        baselines: baseline::baselines(program, graph, analysis, &default),
        sidecars: chosen.iter().map(|d| d.map(|d| enc.dataplanes[d].clone())).collect(),
        enforcement,
        stats: SolveStats {
            pairs: analysis.pairs(),
            clauses: enc.coverage.len(),
            variables: enc.vars.len(),
            forced: enc.forced,
            encode_time: encoded - started,
            solve_time: solved - encoded,
        },
    };
    Ok((placement, enc))
}

/// Removes sidecars that no coverage clause needs (zero-cost variables may
/// be set either way by the solver); the result stays sound and costs no more.
/// Linear in the size of the clauses: each clause counts its chosen options.
fn drop_unneeded(enc: &Encoding, chosen: &mut [Option<usize>]) {
    let coverage = &enc.instance.hard()[..enc.coverage.len()];
    let mut occurs: Vec<Vec<usize>> = vec![Vec::new(); enc.vars.len()];
    let mut satisfied: Vec<u32> = vec![0; coverage.len()];
    for (i, clause) in coverage.iter().enumerate() {
        for l in clause {
            let v = l.var() as usize;
            occurs[v].push(i);
            let c = enc.vars[v];
            if chosen[c.service] == Some(c.dataplane) {
                satisfied[i] += 1;
            }
        }
    }
    for (v, c) in enc.vars.iter().enumerate() {
        if chosen[c.service] != Some(c.dataplane) {
            continue;
        }
        if occurs[v].iter().all(|&i| satisfied[i] >= 2) {
            chosen[c.service] = None;
            for &i in &occurs[v] {
                satisfied[i] -= 1;
            }
        }
    }
}

fn conflict(program: &Program, graph: &CallGraph, analysis: &Analysis, enc: &Encoding, core: &[usize]) -> Diagnostic {
    let pairs: Vec<(usize, usize)> = core
        .iter()
        .filter_map(|&i| enc.coverage.get(i).and_then(|ps| ps.first().copied()))
        .collect();
    let mut d = Diagnostic::new(
        Code::PlacementConflict,
        "no placement with one sidecar per service enforces every policy",
    );
    for (n, &(pi, ci)) in pairs.iter().enumerate() {
        let p = &program.policies[pi];
        let m = &analysis.matches[pi][ci];
        let text = format!(
            "`{}` on {} (context `{}`)",
            p.name,
            call_text(graph, m.from, m.to),
            witness_text(graph, &m.witness)
        );
        if n == 0 {
            d = d.at(
                p.name_span,
                format!("needs a sidecar that conflicts with the others below: {text}"),
            );
        } else {
            d = d.with_label(p.name_span, format!("conflicts: {text}"));
        }
        let options: Vec<String> = encode::options(program, &enc.dataplanes, pi, m.from, m.to)
            .iter()
            .map(|c| {
                format!(
                    "`{}` at `{}`",
                    enc.dataplanes[c.dataplane], graph.services[c.service].name
                )
            })
            .collect();
        d = d.with_note(format!("{text} can only be enforced by {}", options.join(" or ")));
    }
    d.with_help("each service runs at most one sidecar: let one dataplane serve these calls, or split the policies")
}
