//! Renders a placement: the brief's JSON object (`--format json`) and a
//! readable table (`--format text`). Pure functions returning strings;
//! byte-for-byte deterministic (sorted keys, sorted entries).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::model::Placement;
use crate::check::Program;
use crate::graph::CallGraph;

/// Enforcement entries in output order: by policy name, caller, callee.
fn sorted_entries<'a>(p: &'a Placement, program: &Program, graph: &CallGraph) -> Vec<&'a super::Enforcement> {
    // Rank names once, then sort on integers: this runs on 10^5 entries.
    let mut by_name: Vec<usize> = (0..graph.services.len()).collect();
    by_name.sort_by(|a, b| graph.services[*a].name.cmp(&graph.services[*b].name));
    let mut service_rank = vec![0usize; graph.services.len()];
    for (rank, &s) in by_name.iter().enumerate() {
        service_rank[s] = rank;
    }
    let mut policies: Vec<usize> = (0..program.policies.len()).collect();
    policies.sort_by(|a, b| program.policies[*a].name.cmp(&program.policies[*b].name));
    let mut policy_rank = vec![0usize; program.policies.len()];
    for (rank, &pi) in policies.iter().enumerate() {
        policy_rank[pi] = rank;
    }
    let mut entries: Vec<&super::Enforcement> = p.enforcement.iter().collect();
    entries.sort_by_key(|e| {
        (
            policy_rank[e.policy],
            e.from.map(|f| service_rank[f]),
            service_rank[e.to],
        )
    });
    entries
}

// The placement object. Fields are declared in alphabetical order so that
// the output has sorted keys, as every other JSON copperc writes; structs
// rather than `serde_json::Value` keep 10^5 entries cheap to write.

#[derive(Serialize)]
struct PlacementDoc<'a> {
    baselines: BaselinesDoc<'a>,
    cost: u64,
    enforcement: Vec<EnforcementDoc<'a>>,
    lower_bound: u64,
    optimal: bool,
    services: BTreeMap<&'a str, ServiceDoc<'a>>,
    stats: StatsDoc,
}

#[derive(Serialize)]
struct BaselinesDoc<'a> {
    default_dataplane: &'a str,
    istio: u64,
    #[serde(rename = "istio++")]
    istio_plus: Option<u64>,
}

#[derive(Serialize)]
struct EnforcementDoc<'a> {
    at: &'a str,
    dataplane: &'a str,
    from: Option<&'a str>,
    policy: &'a str,
    side: &'static str,
    to: &'a str,
}

#[derive(Serialize)]
struct ServiceDoc<'a> {
    replicas: u64,
    sidecar: Option<&'a str>,
}

#[derive(Serialize)]
struct StatsDoc {
    clauses: usize,
    forced: usize,
    matched_pairs: usize,
    variables: usize,
}

fn document<'a>(p: &'a Placement, program: &'a Program, graph: &'a CallGraph) -> PlacementDoc<'a> {
    let name = |s: usize| graph.services[s].name.as_str();
    PlacementDoc {
        baselines: BaselinesDoc {
            default_dataplane: &p.baselines.default_dataplane,
            istio: p.baselines.istio,
            istio_plus: p.baselines.istio_plus,
        },
        cost: p.cost,
        enforcement: sorted_entries(p, program, graph)
            .into_iter()
            .map(|e| EnforcementDoc {
                at: name(e.at),
                dataplane: &e.dataplane,
                from: e.from.map(name),
                policy: &program.policies[e.policy].name,
                side: e.side.as_str(),
                to: name(e.to),
            })
            .collect(),
        lower_bound: p.lower_bound,
        optimal: p.optimal,
        services: graph
            .services
            .iter()
            .enumerate()
            .map(|(s, svc)| {
                (
                    svc.name.as_str(),
                    ServiceDoc {
                        replicas: svc.replicas,
                        sidecar: p.sidecars[s].as_deref(),
                    },
                )
            })
            .collect(),
        stats: StatsDoc {
            clauses: p.stats.clauses,
            forced: p.stats.forced,
            matched_pairs: p.stats.pairs,
            variables: p.stats.variables,
        },
    }
}

/// The placement object as a JSON value (for tests and other emitters).
pub fn to_json(p: &Placement, program: &Program, graph: &CallGraph) -> Value {
    serde_json::to_value(document(p, program, graph)).unwrap_or(Value::Null)
}

/// The JSON text, with a final newline.
pub fn json_text(p: &Placement, program: &Program, graph: &CallGraph) -> String {
    let mut s = serde_json::to_string_pretty(&document(p, program, graph)).unwrap_or_default();
    s.push('\n');
    s
}

/// Above this many services the table lists only services with a sidecar.
const FULL_TABLE_LIMIT: usize = 60;

pub fn text(p: &Placement, program: &Program, graph: &CallGraph) -> String {
    // service -> policy -> (side -> number of calls)
    let mut enforced: BTreeMap<usize, BTreeMap<&str, BTreeMap<&str, usize>>> = BTreeMap::new();
    for e in &p.enforcement {
        *enforced
            .entry(e.at)
            .or_default()
            .entry(program.policies[e.policy].name.as_str())
            .or_default()
            .entry(e.side.as_str())
            .or_default() += 1;
    }
    let mut rows: Vec<[String; 5]> = vec![[
        "service".into(),
        "replicas".into(),
        "sidecar".into(),
        "cost".into(),
        "enforces".into(),
    ]];
    let mut order: Vec<usize> = (0..graph.services.len()).collect();
    order.sort_by(|a, b| graph.services[*a].name.cmp(&graph.services[*b].name));
    let full = graph.services.len() <= FULL_TABLE_LIMIT;
    let mut hidden = 0;
    for s in order {
        let svc = &graph.services[s];
        let Some(d) = &p.sidecars[s] else {
            if full {
                rows.push([
                    svc.name.clone(),
                    svc.replicas.to_string(),
                    "-".into(),
                    "0".into(),
                    String::new(),
                ]);
            } else {
                hidden += 1;
            }
            continue;
        };
        let cost = program
            .interfaces
            .dataplanes
            .get(d)
            .map(|x| x.cost)
            .unwrap_or(0)
            .saturating_mul(svc.replicas);
        let what: Vec<String> = enforced
            .get(&s)
            .map(|m| {
                m.iter()
                    .map(|(pol, sides)| {
                        let parts: Vec<String> = sides.iter().map(|(side, n)| format!("{side} x{n}")).collect();
                        format!("{pol} ({})", parts.join(", "))
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.push([
            svc.name.clone(),
            svc.replicas.to_string(),
            d.clone(),
            cost.to_string(),
            what.join("; "),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if hidden > 0 {
        out.push_str(&format!("({hidden} services without a sidecar not shown)\n"));
    }
    let placed = p.sidecars.iter().filter(|d| d.is_some()).count();
    out.push('\n');
    out.push_str(&format!(
        "cost {} with {placed} sidecar{} on {} services; {}\n",
        p.cost,
        if placed == 1 { "" } else { "s" },
        graph.services.len(),
        if p.optimal {
            "optimal".to_string()
        } else {
            format!("lower bound {} (gap {})", p.lower_bound, p.cost - p.lower_bound)
        }
    ));
    let ratio = |base: u64| {
        if base == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2}x", p.cost as f64 / base as f64)
        }
    };
    out.push_str(&format!(
        "baselines ({}): istio {} (copperc {}), istio++ {}\n",
        p.baselines.default_dataplane,
        p.baselines.istio,
        ratio(p.baselines.istio),
        match p.baselines.istio_plus {
            Some(c) => format!("{c} (copperc {})", ratio(c)),
            None => "not possible (the default dataplane cannot enforce every matched call)".into(),
        }
    ));
    out.push_str(&format!(
        "{} {}, {} matched (policy, call) pairs, {} distinct clauses, {} variables\n",
        program.policies.len(),
        if program.policies.len() == 1 {
            "policy"
        } else {
            "policies"
        },
        p.stats.pairs,
        p.stats.clauses,
        p.stats.variables
    ));
    out
}
