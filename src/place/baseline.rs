//! The baselines of the brief: `istio` (the default dataplane's sidecar on
//! every service) and `istio++` (that sidecar only on services that enforce
//! some policy, choosing the callee side where allowed, else the caller).

use std::collections::BTreeSet;

use super::model::Baselines;
use crate::analysis::Analysis;
use crate::check::Program;
use crate::graph::CallGraph;

/// The default dataplane: the one asked for, else `istio-proxy` when
/// loaded, else the alphabetically first.
pub fn default_dataplane(program: &Program, asked: Option<&str>) -> Option<String> {
    match asked {
        Some(name) => program
            .interfaces
            .dataplanes
            .contains_key(name)
            .then(|| name.to_string()),
        None if program.interfaces.dataplanes.contains_key("istio-proxy") => Some("istio-proxy".into()),
        None => program.interfaces.dataplanes.keys().next().cloned(),
    }
}

pub fn baselines(program: &Program, graph: &CallGraph, analysis: &Analysis, default: &str) -> Baselines {
    let cost = program.interfaces.dataplanes.get(default).map(|d| d.cost).unwrap_or(0);
    let price = |s: usize| graph.services[s].replicas.saturating_mul(cost);
    let istio = (0..graph.services.len()).map(price).fold(0u64, u64::saturating_add);
    let mut chosen = BTreeSet::new();
    let mut possible = true;
    'pairs: for (pi, calls) in analysis.matches.iter().enumerate() {
        let sides = program.policies[pi].support.get(default).copied();
        for m in calls {
            match (sides, m.from) {
                (Some(s), _) if s.ingress => {
                    chosen.insert(m.to);
                }
                (Some(s), Some(u)) if s.egress => {
                    chosen.insert(u);
                }
                _ => {
                    possible = false;
                    break 'pairs;
                }
            }
        }
    }
    Baselines {
        default_dataplane: default.to_string(),
        istio,
        istio_plus: possible.then(|| chosen.into_iter().map(price).fold(0u64, u64::saturating_add)),
    }
}
