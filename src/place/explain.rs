//! `copperc place --explain`: for each sidecar, the (policy, call) pairs
//! that only it covers in the placement, and what the other ways to cover
//! them would cost. Optimality itself is proven by the solver's lower bound;
//! this says why each sidecar is there.

use std::collections::BTreeMap;

use super::encode::{self, Encoding};
use super::model::Placement;
use crate::analysis::{Analysis, call_text, witness_text};
use crate::check::Program;
use crate::graph::CallGraph;

pub fn explain(p: &Placement, enc: &Encoding, program: &Program, graph: &CallGraph, analysis: &Analysis) -> String {
    let price = |s: usize, d: usize| {
        graph.services[s]
            .replicas
            .saturating_mul(program.interfaces.dataplanes[&enc.dataplanes[d]].cost)
    };
    let chosen = |s: usize| p.sidecars[s].as_deref();
    // service -> lines about the pairs that only its sidecar covers
    let mut reasons: BTreeMap<&str, (String, Vec<String>)> = BTreeMap::new();
    for (pi, calls) in analysis.matches.iter().enumerate() {
        for m in calls {
            let options = encode::options(program, &enc.dataplanes, pi, m.from, m.to);
            let covering: Vec<_> = options
                .iter()
                .filter(|c| chosen(c.service) == Some(enc.dataplanes[c.dataplane].as_str()))
                .collect();
            let [only] = covering.as_slice() else { continue };
            let others: Vec<String> = options
                .iter()
                .filter(|c| *c != *only)
                .map(|c| {
                    format!(
                        "`{}` at {} (cost {})",
                        enc.dataplanes[c.dataplane],
                        graph.services[c.service].name,
                        price(c.service, c.dataplane)
                    )
                })
                .collect();
            let name = graph.services[only.service].name.as_str();
            let entry = reasons.entry(name).or_insert_with(|| {
                (
                    format!(
                        "{} `{}` (cost {})",
                        name,
                        enc.dataplanes[only.dataplane],
                        price(only.service, only.dataplane)
                    ),
                    Vec::new(),
                )
            });
            entry.1.push(format!(
                "  - `{}` on {} (context `{}`): {}",
                program.policies[pi].name,
                call_text(graph, m.from, m.to),
                witness_text(graph, &m.witness),
                if others.is_empty() {
                    "no other sidecar can enforce it".to_string()
                } else {
                    format!("else {}", others.join(" or "))
                }
            ));
        }
    }
    let mut out = String::from("Why each sidecar is there (pairs only it covers):\n");
    for (_, (head, lines)) in reasons {
        out.push_str(&format!("{head}\n"));
        for l in lines.iter().take(20) {
            out.push_str(l);
            out.push('\n');
        }
        if lines.len() > 20 {
            out.push_str(&format!("  ... and {} more\n", lines.len() - 20));
        }
    }
    out.push_str(&format!(
        "Lower bound {} {} cost {}: {}\n",
        p.lower_bound,
        if p.optimal { "equals" } else { "is below" },
        p.cost,
        if p.optimal {
            "no placement is cheaper."
        } else {
            "the search stopped before proving optimality."
        }
    ));
    out
}
