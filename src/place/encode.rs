//! The weighted partial MaxSAT encoding of placement (docs/semantics.md).
//!
//! - Variable x[s,d] for each service s and dataplane d that appear in some
//!   coverage clause: services that no matched call touches get none.
//! - Hard coverage clause per (policy, matched call): the x[u,d] with Egress
//!   in side_d(p) (u the caller, absent for a call from outside) and the
//!   x[v,d] with Ingress in side_d(p). Identical clauses are merged; each
//!   keeps the pairs it stands for, to explain and to report conflicts.
//! - Hard at-most-one per service over its variables (pairwise: a service
//!   has one variable per dataplane, a handful).
//! - Soft clause not x[s,d] with weight replicas(s) x cost(d).
//!
//! A pair with no option at all is reported here (CU0502), before solving.

use std::collections::HashMap;

use super::maxsat::{Instance, Lit};
use super::model::Side;
use crate::analysis::{Analysis, call_text, witness_text};
use crate::check::Program;
use crate::diag::{Code, Diagnostic};
use crate::graph::{CallGraph, ServiceId};

/// One option for enforcing a pair: a sidecar of dataplane `dataplane` at `service`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Choice {
    pub service: ServiceId,
    pub dataplane: usize,
}

/// A (policy, matched call) pair: indices into `Program::policies` and into
/// that policy's matched calls.
pub type Pair = (usize, usize);

pub struct Encoding {
    pub instance: Instance,
    /// Dataplane names, by index (sorted).
    pub dataplanes: Vec<String>,
    /// The choice each variable stands for.
    pub vars: Vec<Choice>,
    /// Coverage clauses: hard clause i < `coverage.len()` is `coverage[i]`,
    /// which stands for these pairs. At-most-one clauses come after.
    pub coverage: Vec<Vec<Pair>>,
    pub forced: usize,
}

/// The options of one pair, with the side each one enforces on (sorted).
/// A service that calls itself may offer the same choice on both sides.
pub fn sided_options(
    program: &Program,
    dataplanes: &[String],
    policy: usize,
    from: Option<ServiceId>,
    to: ServiceId,
) -> Vec<(Choice, Side)> {
    let p = &program.policies[policy];
    let mut out = Vec::new();
    for (d, name) in dataplanes.iter().enumerate() {
        let Some(sides) = p.support.get(name) else { continue };
        if sides.ingress {
            out.push((
                Choice {
                    service: to,
                    dataplane: d,
                },
                Side::Ingress,
            ));
        }
        if sides.egress
            && let Some(u) = from
        {
            out.push((
                Choice {
                    service: u,
                    dataplane: d,
                },
                Side::Egress,
            ));
        }
    }
    // Callee side first: it sees the request as delivered.
    out.sort_by_key(|(c, side)| (*side, *c));
    out
}

/// The options of one pair, as choices (sorted, no duplicates).
pub fn options(
    program: &Program,
    dataplanes: &[String],
    policy: usize,
    from: Option<ServiceId>,
    to: ServiceId,
) -> Vec<Choice> {
    let mut out: Vec<Choice> = sided_options(program, dataplanes, policy, from, to)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    out.sort();
    out.dedup();
    out
}

pub fn encode(program: &Program, graph: &CallGraph, analysis: &Analysis) -> Result<Encoding, Vec<Diagnostic>> {
    let dataplanes: Vec<String> = program.interfaces.dataplanes.keys().cloned().collect();
    let mut diags = Vec::new();
    let mut clause_index: HashMap<Vec<Choice>, usize> = HashMap::new();
    let mut clauses: Vec<Vec<Choice>> = Vec::new();
    let mut coverage: Vec<Vec<Pair>> = Vec::new();
    for (pi, calls) in analysis.matches.iter().enumerate() {
        for (ci, m) in calls.iter().enumerate() {
            let opts = options(program, &dataplanes, pi, m.from, m.to);
            if opts.is_empty() {
                diags.push(unenforceable(program, graph, pi, m));
                continue;
            }
            let k = *clause_index.entry(opts.clone()).or_insert_with(|| {
                clauses.push(opts);
                coverage.push(Vec::new());
                clauses.len() - 1
            });
            coverage[k].push((pi, ci));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    // Variables in a fixed order (by service, then dataplane) so that the
    // instance, and so the solution, are the same on every run.
    let mut vars: Vec<Choice> = clauses.iter().flatten().copied().collect();
    vars.sort();
    vars.dedup();
    let var_of: HashMap<Choice, u32> = vars.iter().enumerate().map(|(i, c)| (*c, i as u32)).collect();
    let lit = |c: &Choice, negative: bool| var_of.get(c).and_then(|&v| Lit::new(v, negative));

    let mut instance = Instance::new(vars.len() as u32);
    let mut forced = 0;
    for clause in &clauses {
        if clause.len() == 1 {
            forced += 1;
        }
        instance.add_hard(clause.iter().filter_map(|c| lit(c, false)).collect());
    }
    // At most one sidecar per service.
    for (i, a) in vars.iter().enumerate() {
        for b in vars[i + 1..].iter().take_while(|b| b.service == a.service) {
            instance.add_hard([lit(a, true), lit(b, true)].into_iter().flatten().collect());
        }
    }
    for c in &vars {
        let weight = graph.services[c.service]
            .replicas
            .saturating_mul(program.interfaces.dataplanes[&dataplanes[c.dataplane]].cost);
        instance.add_soft(weight, lit(c, true).into_iter().collect());
    }
    Ok(Encoding {
        instance,
        dataplanes,
        vars,
        coverage,
        forced,
    })
}

fn unenforceable(program: &Program, graph: &CallGraph, pi: usize, m: &crate::analysis::MatchedCall) -> Diagnostic {
    let p = &program.policies[pi];
    let sides: Vec<String> = p.support.iter().map(|(d, s)| format!("`{d}` runs it at {s}")).collect();
    let why = if m.from.is_none() {
        "this request comes from outside the mesh, so it has no caller sidecar"
    } else {
        "no supporting dataplane offers a side this call has"
    };
    Diagnostic::new(
        Code::Unenforceable,
        format!("policy `{}` cannot be enforced on {}", p.name, call_text(graph, m.from, m.to)),
    )
    .at(p.name_span, format!("matches {} in context `{}`", call_text(graph, m.from, m.to), witness_text(graph, &m.witness)))
    .with_label(p.pattern_span, "this pattern matches it")
    .with_note(why)
    .with_note(sides.join("; "))
    .with_help("narrow the context pattern so it does not match this call, or use methods that run on the callee's side (Ingress)")
}
