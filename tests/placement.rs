//! Analysis and placement, checked against independent models:
//! - matched calls against a brute-force enumeration of contexts matched
//!   with regex-automata's meta engine on the encoded text;
//! - placements against the soundness checker and an exhaustive search
//!   over every assignment of sidecars, on thousands of random tiny
//!   instances and on every shared benchmark graph.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeSet;

use copperc::analysis::{self, Analysis, encoding};
use copperc::check::{self, CheckInput, Program};
use copperc::graph::{self, CallGraph};
use copperc::place::{self, PlaceOptions, Placement};
use copperc::source::SourceMap;
use proptest::prelude::*;

struct Inputs {
    program: Program,
    graph: CallGraph,
    analysis: Analysis,
}

/// Runs check and analysis on in-memory texts; `None` if either reports an error.
fn front(interfaces: &[&str], policies: &[&str], graph_json: &str) -> Option<Inputs> {
    let mut sm = SourceMap::new();
    let ifaces: Vec<usize> = interfaces
        .iter()
        .enumerate()
        .map(|(i, t)| sm.add(format!("i{i}.act"), *t))
        .collect();
    let pols: Vec<usize> = policies
        .iter()
        .enumerate()
        .map(|(i, t)| sm.add(format!("p{i}.copper"), *t))
        .collect();
    let gf = sm.add("graph.json", graph_json);
    let (graph, _) = graph::parse_graph(&sm, gf);
    let graph = graph?;
    let (program, _) = check::check(
        &sm,
        &CheckInput {
            interface_files: &ifaces,
            policy_files: &pols,
            graph_services: None,
        },
    );
    let program = program?;
    let (analysis, _) = analysis::analyze(&program, &graph);
    Some(Inputs {
        program,
        graph,
        analysis: analysis?,
    })
}

fn place_default(i: &Inputs) -> Result<Placement, Vec<copperc::diag::Diagnostic>> {
    place::place(
        &i.program,
        &i.graph,
        &i.analysis,
        &PlaceOptions {
            deadline: None,
            default_dataplane: None,
        },
    )
    .map(|(p, _)| p)
}

/// The options of each (policy, matched call) pair, from the brief's rule,
/// written independently of the encoder: (service, dataplane name).
fn pair_options(i: &Inputs) -> Vec<Vec<(usize, String)>> {
    let mut out = Vec::new();
    for (pi, calls) in i.analysis.matches.iter().enumerate() {
        let p = &i.program.policies[pi];
        for m in calls {
            let mut opts = Vec::new();
            for (d, sides) in &p.support {
                if sides.ingress {
                    opts.push((m.to, d.clone()));
                }
                if sides.egress
                    && let Some(u) = m.from
                {
                    opts.push((u, d.clone()));
                }
            }
            out.push(opts);
        }
    }
    out
}

/// The cheapest cost over every assignment of at most one sidecar per
/// service, or `None` when none enforces every pair.
fn exhaustive_optimum(i: &Inputs) -> Option<u64> {
    let dps: Vec<(&String, u64)> = i
        .program
        .interfaces
        .dataplanes
        .iter()
        .map(|(n, d)| (n, d.cost))
        .collect();
    let pairs = pair_options(i);
    // Only services that appear in some option matter; others stay bare.
    let relevant: Vec<usize> = pairs
        .iter()
        .flatten()
        .map(|(s, _)| *s)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(relevant.len() <= 12, "instance too large for exhaustive search");
    let base = dps.len() + 1;
    let total = base.pow(relevant.len() as u32);
    let mut best: Option<u64> = None;
    let mut choice = vec![0usize; relevant.len()];
    for code in 0..total {
        let mut c = code;
        for slot in choice.iter_mut() {
            *slot = c % base;
            c /= base;
        }
        let at = |s: usize| relevant.iter().position(|&r| r == s).map(|k| choice[k]).unwrap_or(0);
        let ok = pairs
            .iter()
            .all(|opts| opts.iter().any(|(s, d)| at(*s) > 0 && dps[at(*s) - 1].0 == d));
        if !ok {
            continue;
        }
        let cost: u64 = relevant
            .iter()
            .enumerate()
            .filter(|(k, _)| choice[*k] > 0)
            .map(|(k, &s)| i.graph.services[s].replicas * dps[choice[k] - 1].1)
            .sum();
        best = Some(best.map_or(cost, |b: u64| b.min(cost)));
    }
    best
}

/// Every context up to `max_len` services, as service index paths from an entry.
fn contexts(g: &CallGraph, max_len: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut frontier: Vec<Vec<usize>> = g.entrypoints.iter().map(|&e| vec![e]).collect();
    while let Some(path) = frontier.pop() {
        if path.len() < max_len {
            let last = *path.last().unwrap();
            for c in g.calls.iter().filter(|c| c.from == last) {
                let mut next = path.clone();
                next.push(c.to);
                frontier.push(next);
            }
        }
        out.push(path);
    }
    out
}

/// Matched calls by brute force: every context up to `max_len` whose
/// encoding the meta regex accepts, with the length of the shortest.
fn brute_matches(
    i: &Inputs,
    policy: usize,
    max_len: usize,
) -> std::collections::BTreeMap<(Option<usize>, usize), usize> {
    let p = &i.program.policies[policy];
    let re = regex_automata::meta::Regex::new(&encoding::anchored_regex(&p.pattern)).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for ctx in contexts(&i.graph, max_len) {
        let names: Vec<&str> = ctx.iter().map(|&s| i.graph.services[s].name.as_str()).collect();
        if re.is_match(&encoding::encode_context(names)) {
            let from = (ctx.len() >= 2).then(|| ctx[ctx.len() - 2]);
            let to = *ctx.last().unwrap();
            let e = found.entry((from, to)).or_insert(ctx.len());
            *e = (*e).min(ctx.len());
        }
    }
    found
}

fn assert_analysis_agrees(i: &Inputs, max_len: usize) {
    for (pi, calls) in i.analysis.matches.iter().enumerate() {
        let brute = brute_matches(i, pi, max_len);
        let ours: BTreeSet<(Option<usize>, usize)> = calls.iter().map(|m| (m.from, m.to)).collect();
        for (call, len) in &brute {
            assert!(
                ours.contains(call),
                "policy {pi}: brute force matches {call:?} (context length {len}), analysis does not"
            );
        }
        let p = &i.program.policies[pi];
        let re = regex_automata::meta::Regex::new(&encoding::anchored_regex(&p.pattern)).unwrap();
        for m in calls {
            let w = &m.witness;
            assert!(
                i.graph.entrypoints.contains(&w[0]),
                "witness must start at an entry point"
            );
            for pair in w.windows(2) {
                assert!(
                    i.graph.calls.iter().any(|c| c.from == pair[0] && c.to == pair[1]),
                    "witness uses a missing call"
                );
            }
            assert_eq!(*w.last().unwrap(), m.to);
            assert_eq!(m.from, (w.len() >= 2).then(|| w[w.len() - 2]));
            let names: Vec<&str> = w.iter().map(|&s| i.graph.services[s].name.as_str()).collect();
            assert!(
                re.is_match(&encoding::encode_context(names)),
                "witness does not match the pattern"
            );
            if let Some(&shortest) = brute.get(&(m.from, m.to)) {
                assert_eq!(w.len(), shortest, "witness is not a shortest one");
            }
        }
    }
}

// ---- shared benchmark graphs ----

fn read_dir_texts(dir: &str) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

#[test]
fn shared_graphs_place_soundly_and_optimally() {
    let cases = [
        ("bookinfo", "bookinfo"),
        ("online-boutique", "online-boutique"),
        ("deathstarbench-socialnetwork", "socialnetwork"),
        ("deathstarbench-hotelreservation", "hotelreservation"),
    ];
    let ifaces = read_dir_texts("interfaces");
    let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
    for (graph, dir) in cases {
        let path = format!("../shared/graphs/{graph}.json");
        let graph_json = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (is ../shared beside the checkout?)"));
        let policies = read_dir_texts(&format!("testdata/valid/{dir}"));
        let policies: Vec<&str> = policies.iter().map(String::as_str).collect();
        let i = front(&ifaces, &policies, &graph_json).unwrap_or_else(|| panic!("{graph}: front end failed"));
        assert!(i.analysis.pairs() > 0, "{graph}: no matched pairs");
        assert_analysis_agrees(&i, 6);
        let p = place_default(&i).unwrap_or_else(|d| panic!("{graph}: {d:?}"));
        let problems = place::verify::verify(&i.program, &i.graph, &i.analysis, &p);
        assert!(problems.is_empty(), "{graph}: {problems:?}");
        assert!(p.optimal, "{graph}: not proven optimal");
        assert_eq!(
            Some(p.cost),
            exhaustive_optimum(&i),
            "{graph}: cost differs from exhaustive search"
        );
        assert!(p.cost <= p.baselines.istio, "{graph}: dearer than a sidecar everywhere");
        if let Some(pp) = p.baselines.istio_plus {
            assert!(p.cost <= pp, "{graph}: dearer than istio++");
        }
    }
}

#[test]
fn cycles_terminate_and_match() {
    let graph = r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"}],
        "calls":[{"from":"a","to":"b"},{"from":"b","to":"a"},{"from":"b","to":"c"},{"from":"c","to":"c"}],
        "entrypoints":["a"]}"#;
    let ifaces = read_dir_texts("interfaces");
    let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
    let pol = r#"policy loop(req: RPCRequest) context "a (b a)+ b c c+" { req.SetHeader("x", "y"); }"#;
    let i = front(&ifaces, &[pol], graph).unwrap();
    let calls: Vec<(Option<usize>, usize, usize)> = i.analysis.matches[0]
        .iter()
        .map(|m| (m.from, m.to, m.witness.len()))
        .collect();
    // Shortest: a b a b c c (call c -> c, 6 services).
    assert_eq!(calls, vec![(Some(2), 2, 6)]);
    assert_analysis_agrees(&i, 8);
}

// ---- random tiny instances ----

const METHODS: [(&str, &str); 4] = [
    ("SetHeader", "(key: string, value: string)"),
    ("RateLimit", "(per_second: int)"),
    ("RouteToVersion", "(version: string)"),
    ("Deny", "(status: int)"),
];
const CALLS: [&str; 4] = [
    "req.SetHeader(\"k\", \"v\");",
    "req.RateLimit(5);",
    "req.RouteToVersion(\"v1\");",
    "req.Deny(403);",
];
const SIDES: [&str; 3] = ["[Ingress]", "[Egress]", "[Ingress, Egress]"];

#[derive(Debug, Clone)]
struct Tiny {
    services: usize,
    replicas: Vec<u64>,
    calls: Vec<(usize, usize)>,
    entry_all: bool,
    /// Per dataplane: cost, and per method: None (absent) or a side index.
    dataplanes: Vec<(u64, Vec<Option<usize>>)>,
    /// Per policy: methods used, and a pattern built from tokens.
    policies: Vec<(Vec<usize>, String)>,
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        (0usize..4).prop_map(|i| format!("s{i}")),
        Just(".".to_string()),
        (0usize..4).prop_map(|i| format!("!s{i}")),
        (0usize..4, 0usize..4).prop_map(|(a, b)| format!("!(s{a} | s{b})")),
    ];
    let item = (atom, prop_oneof![Just(""), Just("*"), Just("+"), Just("?")]).prop_map(|(a, r)| format!("{a}{r}"));
    prop::collection::vec(item, 1..4).prop_map(|v| v.join(" "))
}

fn tiny_strategy() -> impl Strategy<Value = Tiny> {
    (2usize..5).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(0u64..4, n),
            prop::collection::vec((0..n, 0..n), 1..7),
            any::<bool>(),
            prop::collection::vec(
                (
                    0u64..6,
                    prop::collection::vec(prop::option::weighted(0.85, 0usize..3), 4),
                ),
                1..3,
            ),
            prop::collection::vec((prop::collection::vec(0usize..4, 1..3), pattern_strategy()), 1..4),
        )
            .prop_map(|(services, replicas, calls, entry_all, dataplanes, policies)| Tiny {
                services,
                replicas,
                calls,
                entry_all,
                dataplanes,
                policies,
            })
    })
}

impl Tiny {
    fn graph_json(&self) -> String {
        let services: Vec<String> = (0..self.services)
            .map(|i| format!(r#"{{"name":"s{i}","replicas":{}}}"#, self.replicas[i]))
            .collect();
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|(a, b)| format!(r#"{{"from":"s{a}","to":"s{b}"}}"#))
            .collect();
        let entries = if self.entry_all {
            (0..self.services)
                .map(|i| format!("\"s{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            "\"s0\"".into()
        };
        format!(
            r#"{{"services":[{}],"calls":[{}],"entrypoints":[{entries}]}}"#,
            services.join(","),
            calls.join(",")
        )
    }

    fn interfaces(&self) -> Vec<String> {
        self.dataplanes
            .iter()
            .enumerate()
            .map(|(d, (cost, methods))| {
                let body: String = methods
                    .iter()
                    .zip(METHODS)
                    .filter_map(|(side, (name, sig))| side.map(|s| format!("    {} {name}{sig};\n", SIDES[s])))
                    .collect();
                format!("dataplane dp{d} {{ cost {cost}; act RPCRequest {{\n{body}}} }}")
            })
            .collect()
    }

    fn policies(&self) -> String {
        self.policies
            .iter()
            .enumerate()
            .map(|(k, (methods, pattern))| {
                let body: String = methods.iter().map(|&m| CALLS[m]).collect::<Vec<_>>().join(" ");
                format!("policy p{k}(req: RPCRequest) context \"{pattern}\" {{ {body} }}\n")
            })
            .collect()
    }
}

#[derive(Default)]
struct Tally {
    placed: usize,
    infeasible: usize,
    rejected: usize,
}

fn check_tiny(t: &Tiny, tally: &std::cell::RefCell<Tally>) -> Result<(), TestCaseError> {
    let ifaces = t.interfaces();
    let ifaces: Vec<&str> = ifaces.iter().map(String::as_str).collect();
    let policies = t.policies();
    let Some(i) = front(&ifaces, &[policies.as_str()], &t.graph_json()) else {
        // Unsupported policies (CU0311/CU0312) are the checker's business.
        tally.borrow_mut().rejected += 1;
        return Ok(());
    };
    assert_analysis_agrees(&i, 7);
    let best = exhaustive_optimum(&i);
    let no_option = pair_options(&i).iter().any(Vec::is_empty);
    match place_default(&i) {
        Ok(p) => {
            tally.borrow_mut().placed += 1;
            let problems = place::verify::verify(&i.program, &i.graph, &i.analysis, &p);
            prop_assert!(problems.is_empty(), "{:?}", problems);
            prop_assert!(p.optimal);
            prop_assert_eq!(Some(p.cost), best);
        }
        Err(diags) => {
            tally.borrow_mut().infeasible += 1;
            prop_assert_eq!(best, None, "placement failed but an assignment exists: {:?}", diags);
            let code = diags[0].code.as_str();
            prop_assert_eq!(code, if no_option { "CU0502" } else { "CU0503" });
        }
    }
    Ok(())
}

#[test]
fn random_instances_match_exhaustive_search() {
    let tally = std::cell::RefCell::new(Tally::default());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&tiny_strategy(), |t| check_tiny(&t, &tally)) {
        panic!("{e}");
    }
    let t = tally.into_inner();
    eprintln!(
        "random instances: {} placed, {} proven infeasible, {} rejected by the checker",
        t.placed, t.infeasible, t.rejected
    );
    // The property must exercise placement and both kinds of failure, not only the checker.
    assert!(t.placed >= 1500, "only {} instances reached placement", t.placed);
    assert!(t.infeasible >= 30, "only {} infeasible instances", t.infeasible);
}

#[test]
fn bookinfo_placement_snapshot_and_determinism() {
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_copperc"))
            .args([
                "place",
                "--format",
                "json",
                "--graph",
                "examples/bookinfo/graph.json",
                "examples/bookinfo/policies.copper",
            ])
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run();
    assert_eq!(first.stdout, second.stdout, "placement output is not deterministic");
    let text = String::from_utf8(first.stdout).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["optimal"], true);
    assert!(doc["lower_bound"].as_u64() <= doc["cost"].as_u64());
    insta::assert_snapshot!(text);
}

#[test]
fn time_limit_returns_a_sound_placement_with_its_gap() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args([
            "place",
            "--format",
            "json",
            "--time-limit",
            "0.000001",
            "--graph",
            "testdata/instances/alibaba-2000-200-s13/graph.json",
        ])
        .arg("testdata/instances/alibaba-2000-200-s13/policies.copper")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (cost, lb) = (doc["cost"].as_u64().unwrap(), doc["lower_bound"].as_u64().unwrap());
    assert!(lb <= cost);
    assert_eq!(doc["optimal"], lb == cost);
    // The soundness checker ran inside `copperc place` (exit 101 otherwise).
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["place", "--time-limit", "-1", "--graph", "x.json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
