//! An independent soundness check of a placement, written straight from the
//! brief's semantics rather than from the encoding: every (policy, matched
//! call) is enforced by a sidecar that exists, of a dataplane that supports
//! the policy on that side; at most one sidecar per service (by
//! construction of `sidecars`); the reported cost is the sum of the placed
//! sidecars' costs. Used by the tests on every placement, and by
//! `copperc place` before it prints anything.

use super::model::{Placement, Side};
use crate::analysis::Analysis;
use crate::check::Program;
use crate::graph::CallGraph;

/// Problems found; empty when the placement is sound.
pub fn verify(program: &Program, graph: &CallGraph, analysis: &Analysis, placement: &Placement) -> Vec<String> {
    let mut problems = Vec::new();
    if placement.sidecars.len() != graph.services.len() {
        problems.push(format!(
            "{} sidecar slots for {} services",
            placement.sidecars.len(),
            graph.services.len()
        ));
        return problems;
    }
    let mut cost: u64 = 0;
    for (s, d) in placement.sidecars.iter().enumerate() {
        if let Some(d) = d {
            match program.interfaces.dataplanes.get(d) {
                Some(dp) => cost = cost.saturating_add(graph.services[s].replicas.saturating_mul(dp.cost)),
                None => problems.push(format!("service {} has unknown dataplane {d}", graph.services[s].name)),
            }
        }
    }
    if cost != placement.cost {
        problems.push(format!("reported cost {} but the sidecars cost {cost}", placement.cost));
    }
    if placement.lower_bound > placement.cost {
        problems.push(format!(
            "lower bound {} exceeds cost {}",
            placement.lower_bound, placement.cost
        ));
    }
    if placement.optimal != (placement.lower_bound == placement.cost) {
        problems.push("`optimal` disagrees with the bound".into());
    }
    let expected: usize = analysis.matches.iter().map(Vec::len).sum();
    if placement.enforcement.len() != expected {
        problems.push(format!(
            "{} enforcement entries for {expected} matched pairs",
            placement.enforcement.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &placement.enforcement {
        let Some(m) = analysis.matches.get(e.policy).and_then(|c| c.get(e.call)) else {
            problems.push(format!("entry for unknown pair ({}, {})", e.policy, e.call));
            continue;
        };
        if !seen.insert((e.policy, e.call)) {
            problems.push(format!("pair ({}, {}) enforced twice", e.policy, e.call));
        }
        let p = &program.policies[e.policy];
        let here = format!("policy {} on call {:?} -> {}", p.name, m.from, m.to);
        if e.from != m.from || e.to != m.to {
            problems.push(format!("{here}: entry names another call"));
        }
        let at_ok = match e.side {
            Side::Ingress => e.at == m.to,
            Side::Egress => Some(e.at) == m.from,
        };
        if !at_ok {
            problems.push(format!("{here}: {} side is not at service {}", e.side.as_str(), e.at));
        }
        if placement.sidecars.get(e.at).and_then(|d| d.as_deref()) != Some(e.dataplane.as_str()) {
            problems.push(format!("{here}: no {} sidecar at service {}", e.dataplane, e.at));
        }
        let supported = p.support.get(&e.dataplane).is_some_and(|s| match e.side {
            Side::Ingress => s.ingress,
            Side::Egress => s.egress,
        });
        if !supported {
            problems.push(format!("{here}: {} cannot run it at {}", e.dataplane, e.side.as_str()));
        }
    }
    problems
}
