//! Cilium output (`src/emit/cilium.rs`): every emitted CiliumNetworkPolicy
//! passes ../shared/schemas/validate.py --strict (the test fails if the
//! validator or build/venv is missing); the Bookinfo `cilium/` tree is
//! snapshot-tested; the context header values are enumerated exactly, and
//! cycles are refused; the emitted HTTP rules, evaluated the way Cilium's
//! proxy evaluates them (in either rule order), allow and rewrite exactly
//! what the policies say; every regex fits Envoy's default RE2 program size;
//! and each limit of Cilium is a CU0601 error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::compile;

use copperc::analysis::automaton::ServiceDfa;
use copperc::analysis::encoding::{CONTEXT_HEADER, encode_context};
use copperc::analysis::{self, Analysis};
use copperc::check::{self, CheckInput, Program};
use copperc::diag::Diagnostic;
use copperc::emit::cilium::{Unlistable, caller_contexts, context_header_values};
use copperc::emit::rules::{self, Action, Subject, Value as HeaderValue};
use copperc::emit::{self, EmitInput, OutFile, Target};
use copperc::graph::{self, CallGraph};
use copperc::place::{self, PlaceOptions, Placement, Side};
use copperc::source::SourceMap;
use serde_json::Value;

// ---- running copperc and the schema validator ----

/// Validates the files with validate.py --strict against the Cilium CRD
/// schemas; returns how many objects were valid.
fn validate(files: &[PathBuf]) -> usize {
    let python = Path::new("build/venv/bin/python");
    let script = Path::new("../shared/schemas/validate.py");
    assert!(
        python.exists(),
        "{} is missing: run `make deps` (jsonschema and pyyaml)",
        python.display()
    );
    assert!(script.exists(), "{} is missing", script.display());
    if files.is_empty() {
        return 0;
    }
    let out = Command::new(python)
        .arg(script)
        .args(["--strict", "../shared/schemas/cilium"])
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "validate.py rejected Cilium output:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = format!("{} valid, 0 invalid", files.len());
    assert!(stdout.contains(&summary), "{stdout}");
    files.len()
}

fn cilium_files(out: &Path) -> Vec<PathBuf> {
    let dir = out.join("cilium");
    if !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn tree_text(dir: &Path) -> String {
    let mut s = String::new();
    for p in cilium_files(dir) {
        s.push_str(&format!("//// {}\n", p.strip_prefix(dir).unwrap().display()));
        s.push_str(&std::fs::read_to_string(&p).unwrap());
    }
    s
}

/// istio-proxy under another name and at a high cost: every policy that
/// Cilium supports goes to cilium-proxy, the rest to this one.
fn fallback_interface(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string("interfaces/istio-proxy.act")
        .unwrap()
        .replace("dataplane istio-proxy", "dataplane fallback-proxy")
        .replace("cost 100;", "cost 1000;");
    let path = dir.join("fallback.act");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bookinfo_cilium_tree_validates_and_matches_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let graph = Path::new("examples/bookinfo/graph.json");
    let policies = Path::new("examples/bookinfo/policies.copper");
    let r = compile(graph, &[policies], &out, &[]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(validate(&cilium_files(&out)), 1, "ratings runs cilium-proxy");
    let first = tree_text(&out);
    let r = compile(graph, &[policies], &out, &["--target", "cilium"]);
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(first, tree_text(&out), "output is not deterministic");
    assert!(!out.join("envoy").exists(), "--target cilium writes no Envoy files");
    insta::assert_snapshot!(first);
}

/// What compiling one policy set of a shared app with cilium-proxy and a
/// costly fallback gives: that many Cilium files, or these policies moved
/// to the fallback because Cilium refused them where they were placed.
enum Expect {
    Files(usize),
    Rejected(&'static [&'static str]),
}

#[test]
fn shared_apps_compile_to_valid_cilium_policies_or_move_off_cilium() {
    use Expect::{Files, Rejected};
    let cases: &[(&str, &str, &str, Expect)] = &[
        ("bookinfo", "bookinfo", "", Files(0)),
        ("bookinfo", "bookinfo", "access", Files(1)),
        // `annotate_ratings_calls` copies a header: placement leaves Cilium out.
        ("bookinfo", "bookinfo", "headers", Files(0)),
        ("online-boutique", "online-boutique", "", Files(1)),
        (
            "online-boutique",
            "online-boutique",
            "access",
            Rejected(&["only_checkout_empties_cart"]),
        ),
        (
            "online-boutique",
            "online-boutique",
            "headers",
            Rejected(&["cart_flow_tag", "frontend_fragment_hint"]),
        ),
        ("deathstarbench-socialnetwork", "socialnetwork", "", Files(0)),
        ("deathstarbench-socialnetwork", "socialnetwork", "access", Files(1)),
        (
            "deathstarbench-socialnetwork",
            "socialnetwork",
            "headers",
            Rejected(&["strip_password"]),
        ),
        // `search_never_books` denies with 404: placement puts it on Envoy.
        ("deathstarbench-hotelreservation", "hotelreservation", "", Files(3)),
        (
            "deathstarbench-hotelreservation",
            "hotelreservation",
            "headers",
            Files(3),
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let fallback = fallback_interface(tmp.path());
    let fallback = fallback.to_str().unwrap();
    let mut validated = 0;
    for (i, (graph, dir, file, expect)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let g = PathBuf::from(format!("../shared/graphs/{graph}.json"));
        let p = if file.is_empty() {
            PathBuf::from(format!("testdata/valid/{dir}"))
        } else {
            PathBuf::from(format!("testdata/valid/{dir}/{file}.copper"))
        };
        let r = compile(
            &g,
            &[&p],
            &out,
            &["--interfaces", "interfaces/cilium-proxy.act", "--interfaces", fallback],
        );
        let stderr = String::from_utf8_lossy(&r.stderr);
        match expect {
            Files(n) => {
                assert_eq!(r.status.code(), Some(0), "{}: {stderr}", p.display());
                let files = cilium_files(&out);
                assert_eq!(files.len(), *n, "{}", p.display());
                validated += validate(&files);
                for f in files {
                    let text = std::fs::read_to_string(&f).unwrap();
                    assert!(text.contains("app.kubernetes.io/managed-by: copperc"), "{text}");
                    assert!(text.contains("copperc.dev/policies: "), "{text}");
                }
            }
            Rejected(policies) => {
                // Cilium refuses these policies where placement first put
                // them; compile then places them on the other dataplane.
                assert_eq!(r.status.code(), Some(0), "{}: {stderr}", p.display());
                validated += validate(&cilium_files(&out));
                let placement: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
                for name in *policies {
                    let entries: Vec<&serde_json::Value> = placement["enforcement"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["policy"] == *name)
                        .collect();
                    assert!(!entries.is_empty(), "{name}");
                    assert!(
                        entries.iter().all(|e| e["dataplane"] == "fallback-proxy"),
                        "{}: {name} still on Cilium",
                        p.display()
                    );
                }
            }
        }
    }
    assert_eq!(validated, 11);
}

#[test]
fn deny_with_another_status_than_403_is_cu0601() {
    let tmp = tempfile::tempdir().unwrap();
    let pfile = tmp.path().join("p.copper");
    std::fs::write(
        &pfile,
        "policy ratings_not_found(req: RPCRequest) context \"productpage reviews ratings\" {\n    if req.GetMethod() != \"GET\" {\n        req.Deny(404);\n    }\n}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[&pfile],
        &out,
        &["--interfaces", "interfaces/cilium-proxy.act"],
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error[CU0601]: `ratings_not_found` denies with status 404, but Cilium answers every denied request with 403"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("policy ratings_not_found(req"), "{stderr}");
    assert!(
        stderr.contains("^^^^^^^^^^^^^^^^^ cilium-proxy cannot express this policy"),
        "{stderr}"
    );
    assert!(stderr.contains("req.Deny(404);"), "{stderr}");
    assert!(stderr.contains("help: deny with `req.Deny(403)`"), "{stderr}");
    assert!(!out.exists());
    // With Deny(403) the same policy compiles.
    std::fs::write(
        &pfile,
        std::fs::read_to_string(&pfile)
            .unwrap()
            .replace("Deny(404)", "Deny(403)"),
    )
    .unwrap();
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[&pfile],
        &out,
        &["--interfaces", "interfaces/cilium-proxy.act"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(validate(&cilium_files(&out)), 1);
}

// ---- header-value enumeration ----

fn graph_of(json: &str) -> CallGraph {
    let mut sm = SourceMap::new();
    let f = sm.add("graph.json", json);
    let (g, diags) = graph::parse_graph(&sm, f);
    g.unwrap_or_else(|| panic!("{diags:?}"))
}

fn id(g: &CallGraph, name: &str) -> usize {
    g.service_id(name).unwrap()
}

#[test]
fn header_values_of_an_acyclic_graph_are_every_path_from_an_entry_point() {
    // Two entry points; b is also called by a; a diamond below.
    let g = graph_of(
        r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"},{"name":"e"},{"name":"lone"}],
            "calls":[{"from":"a","to":"b"},{"from":"a","to":"c"},{"from":"b","to":"c"},
                     {"from":"b","to":"d"},{"from":"c","to":"e"},{"from":"d","to":"e"}],
            "entrypoints":["a","b"]}"#,
    );
    assert_eq!(context_header_values(&g, id(&g, "a"), 64).unwrap(), ["/a"]);
    assert_eq!(context_header_values(&g, id(&g, "b"), 64).unwrap(), ["/a/b", "/b"]);
    assert_eq!(
        context_header_values(&g, id(&g, "e"), 64).unwrap(),
        ["/a/b/c/e", "/a/b/d/e", "/a/c/e", "/b/c/e", "/b/d/e"]
    );
    assert_eq!(
        caller_contexts(&g, id(&g, "d"), 64).unwrap(),
        [vec![0, 1, 3], vec![1, 3]],
        "walks from an entry point, in call order"
    );
    // No entry point reaches it: no context at all.
    assert_eq!(
        context_header_values(&g, id(&g, "lone"), 64).unwrap(),
        Vec::<String>::new()
    );
    // The cap is a limit on the number of values.
    assert_eq!(context_header_values(&g, id(&g, "e"), 5).unwrap().len(), 5);
    assert_eq!(context_header_values(&g, id(&g, "e"), 4), Err(Unlistable::TooMany(4)));
}

#[test]
fn header_values_through_a_cycle_are_refused() {
    let g = graph_of(
        r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"},{"name":"x"},{"name":"y"}],
            "calls":[{"from":"a","to":"b"},{"from":"b","to":"c"},{"from":"c","to":"b"},{"from":"c","to":"d"},
                     {"from":"a","to":"x"},{"from":"x","to":"y"},{"from":"y","to":"y"}],
            "entrypoints":["a"]}"#,
    );
    let (b, c) = (id(&g, "b"), id(&g, "c"));
    for target in ["b", "c", "d"] {
        match context_header_values(&g, id(&g, target), 64) {
            Err(Unlistable::Cycle(cycle)) => {
                assert_eq!(cycle.len(), 2, "{target}");
                assert!(cycle.contains(&b) && cycle.contains(&c), "{target}: {cycle:?}");
            }
            other => panic!("{target}: {other:?}"),
        }
    }
    // A self-call is a cycle too.
    assert_eq!(
        context_header_values(&g, id(&g, "y"), 64),
        Err(Unlistable::Cycle(vec![id(&g, "y")]))
    );
    // A cycle that is not on the way to the caller does not matter.
    assert_eq!(context_header_values(&g, id(&g, "x"), 64).unwrap(), ["/a/x"]);
    assert_eq!(context_header_values(&g, id(&g, "a"), 64).unwrap(), ["/a"]);
}

// ---- in-process pipeline, for the semantic checks ----

struct Inputs {
    program: Program,
    graph: CallGraph,
    analysis: Analysis,
    placement: Placement,
}

fn pipeline(interfaces: &[&str], policies: &[&str], graph_json: &str) -> Inputs {
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
    let (graph, diags) = graph::parse_graph(&sm, gf);
    let graph = graph.unwrap_or_else(|| panic!("{diags:?}"));
    let (program, diags) = check::check(
        &sm,
        &CheckInput {
            interface_files: &ifaces,
            policy_files: &pols,
            graph_services: None,
        },
    );
    let program = program.unwrap_or_else(|| panic!("{diags:?}"));
    let (analysis, diags) = analysis::analyze(&program, &graph);
    let analysis = analysis.unwrap_or_else(|| panic!("{diags:?}"));
    let (placement, _) = place::place(
        &program,
        &graph,
        &analysis,
        &PlaceOptions {
            deadline: None,
            default_dataplane: None,
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    Inputs {
        program,
        graph,
        analysis,
        placement,
    }
}

fn emit_cilium(i: &Inputs) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let input = EmitInput {
        program: &i.program,
        graph: &i.graph,
        analysis: &i.analysis,
        placement: &i.placement,
        cluster: Default::default(),
    };
    emit::emit(&input, Target::Cilium)
        .map(|files| files.into_iter().filter(|f| f.path.starts_with("cilium/")).collect())
}

fn rejected(i: &Inputs) -> Vec<Diagnostic> {
    match emit_cilium(i) {
        Ok(files) => panic!(
            "expected CU0601, got {:?}",
            files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>()
        ),
        Err(diags) => {
            for d in &diags {
                assert_eq!(d.code.as_str(), "CU0601", "{d:?}");
            }
            diags
        }
    }
}

const CILIUM: &str = include_str!("../interfaces/cilium-proxy.act");
const ISTIO: &str = include_str!("../interfaces/istio-proxy.act");

/// cilium-proxy with every method on the caller's side only.
fn cilium_egress_only() -> String {
    CILIUM.replace("[Ingress, Egress]", "[Egress]")
}

/// Two entry points, so that `d` is reached from `c` in two contexts.
const MIXED_GRAPH: &str = r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"},{"name":"e"}],
    "calls":[{"from":"a","to":"c"},{"from":"b","to":"c"},{"from":"c","to":"d"},{"from":"a","to":"d"},{"from":"d","to":"e"}],
    "entrypoints":["a","b"]}"#;

const MIXED_POLICIES: &str = r#"
policy writes_from_a(req: RPCRequest) context "a c d" {
    if req.GetMethod() != "GET" && req.GetPath() != "/login" {
        req.Deny(403);
    }
}
policy qa_canary(req: RPCRequest) context "b c d" {
    if req.GetHeader("x-team") == "qa" {
        req.SetHeader("x-canary", "1");
    }
    req.RemoveHeader("cookie");
}
policy no_debug(req: RPCRequest) context ".* d" {
    req.RemoveHeader("x-debug");
}
policy tag_writes(req: RPCRequest) context "a .* e" {
    if req.GetMethod() == "POST" || req.GetHeader("x-write") == "1" {
        req.SetHeader("x-write", "1");
    } else if req.GetMethod() != "GET" {
        req.Deny(403);
    }
}
"#;

/// A rewrite of a header that a denial tests (on the request as it came).
const MARK_AND_GATE: &str = r#"
policy mark(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-mark", "1"); }
policy gate(req: RPCRequest) context "productpage reviews ratings" { if req.GetHeader("x-mark") != "1" { req.Deny(403); } }
"#;

/// Rewrites within an allow-list.
const REWRITES_AND_READS: &str = r#"
policy qa_marks(req: RPCRequest) context "productpage reviews ratings" {
    if req.GetHeader("x-team") == "qa" { req.SetHeader("x-qa", "1"); req.RemoveHeader("cookie"); }
    req.RemoveHeader("x-debug");
}
policy reads_only(req: RPCRequest) context "productpage .* ratings" {
    if req.GetMethod() != "GET" && req.GetMethod() != "HEAD" { req.Deny(403); }
}
policy odd_literals(req: RPCRequest) context "productpage reviews ratings" {
    if req.GetPath() == "/caf\u{e9}/x(y)[z]{1}|+*^$.\\d" || req.GetMethod() == "M.X" {
        req.SetHeader("x-odd", "\"quoted\" 100% \u{4E2D}");
    }
}
"#;

/// One entry point that no service calls; policies on requests from outside.
const ENTRY_GRAPH: &str =
    r#"{"services":[{"name":"a"},{"name":"b"}],"calls":[{"from":"a","to":"b"}],"entrypoints":["a"]}"#;

const ENTRY_POLICIES: &str = r#"
policy read_only_entry(req: RPCRequest) context "a" {
    if req.GetMethod() != "GET" {
        req.Deny(403);
    } else {
        req.SetHeader("x-entry", "a");
    }
}
policy strip_cookie(req: RPCRequest) context "a b" {
    req.RemoveHeader("cookie");
}
"#;

/// A cycle before `c`: policies that hold on every context need no list.
const CYCLE_GRAPH: &str = r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}],
    "calls":[{"from":"a","to":"b"},{"from":"b","to":"c"},{"from":"c","to":"b"},{"from":"c","to":"d"}],
    "entrypoints":["a"]}"#;

const CYCLE_POLICIES: &str = r#"
policy into_d(req: RPCRequest) context "a .* d" {
    if req.GetMethod() != "GET" && req.GetMethod() != "HEAD" {
        req.Deny(403);
    }
}
policy all_denied(req: RPCRequest) context ".* c" {
    req.Deny(403);
}
"#;

fn hotel_403_policies() -> Vec<String> {
    ["access", "canary", "headers", "ratelimit"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(format!("testdata/valid/hotelreservation/{f}.copper"))
                .unwrap()
                .replace("Deny(404)", "Deny(403)")
        })
        .collect()
}

/// Every scenario of the semantic checks: (name, inputs).
fn scenarios() -> Vec<(&'static str, Inputs)> {
    let fallback = ISTIO
        .replace("dataplane istio-proxy", "dataplane fallback-proxy")
        .replace("cost 100;", "cost 1000;");
    let hotel = hotel_403_policies();
    let hotel: Vec<&str> = hotel.iter().map(String::as_str).collect();
    let egress = cilium_egress_only();
    vec![
        (
            "bookinfo example",
            pipeline(
                &[CILIUM, ISTIO],
                &[include_str!("../examples/bookinfo/policies.copper")],
                include_str!("../examples/bookinfo/graph.json"),
            ),
        ),
        (
            "hotelreservation, Deny(403)",
            pipeline(
                &[CILIUM, &fallback],
                &hotel,
                &std::fs::read_to_string("../shared/graphs/deathstarbench-hotelreservation.json").unwrap(),
            ),
        ),
        ("mixed contexts", pipeline(&[CILIUM], &[MIXED_POLICIES], MIXED_GRAPH)),
        (
            "mixed contexts, egress",
            pipeline(&[&egress], &[MIXED_POLICIES], MIXED_GRAPH),
        ),
        (
            "rewrites within an allow-list",
            pipeline(
                &[CILIUM],
                &[REWRITES_AND_READS],
                include_str!("../examples/bookinfo/graph.json"),
            ),
        ),
        (
            "rewrite and denial on one header",
            pipeline(
                &[CILIUM],
                &[MARK_AND_GATE],
                include_str!("../examples/bookinfo/graph.json"),
            ),
        ),
        ("entry point", pipeline(&[CILIUM], &[ENTRY_POLICIES], ENTRY_GRAPH)),
        ("cycle", pipeline(&[CILIUM], &[CYCLE_POLICIES], CYCLE_GRAPH)),
    ]
}

// ---- Cilium's evaluation of HTTP rules, and the policies' meaning ----

#[derive(Clone, Debug)]
struct Request {
    /// The sender's context (empty from outside) and the callee.
    context: Vec<usize>,
    method: String,
    /// With the query string, as Cilium's `path` regex sees it.
    path: String,
    headers: BTreeMap<String, String>,
}

fn full_match(regex: &str, text: &str) -> bool {
    thread_local! {
        static CACHE: std::cell::RefCell<BTreeMap<String, regex_automata::meta::Regex>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    CACHE.with(|c| {
        c.borrow_mut()
            .entry(regex.to_string())
            .or_insert_with(|| regex_automata::meta::Regex::new(&format!("^(?:{regex})$")).unwrap())
            .is_match(text)
    })
}

/// Cilium's proxy (cilium/proxy `network_policy.cc`): rules are tried in
/// order on the headers as earlier rules left them; each matching rule runs
/// its `headerMatches` actions; the request passes if any rule matched.
fn cilium_eval(rules: &[&Value], req: &Request) -> Option<BTreeMap<String, String>> {
    let mut headers = req.headers.clone();
    let mut allowed = false;
    for rule in rules {
        let obj = rule.as_object().unwrap();
        for key in obj.keys() {
            assert!(["method", "path", "headerMatches"].contains(&key.as_str()), "{key}");
        }
        if let Some(m) = obj.get("method")
            && !full_match(m.as_str().unwrap(), &req.method)
        {
            continue;
        }
        if let Some(p) = obj.get("path")
            && !full_match(p.as_str().unwrap(), &req.path)
        {
            continue;
        }
        let matches = obj
            .get("headerMatches")
            .map(|m| m.as_array().unwrap().clone())
            .unwrap_or_default();
        let pure_ok = matches.iter().filter(|m| m.get("mismatch").is_none()).all(|m| {
            let value = m["value"].as_str().unwrap();
            assert!(!value.is_empty(), "an empty value is a presence match");
            headers.get(m["name"].as_str().unwrap()).map(String::as_str) == Some(value)
        });
        if !pure_ok {
            continue;
        }
        allowed = true;
        for m in matches.iter().filter(|m| m.get("mismatch").is_some()) {
            let name = m["name"].as_str().unwrap().to_string();
            let value = m["value"].as_str().unwrap().to_string();
            if headers.get(&name) == Some(&value) {
                continue;
            }
            match m["mismatch"].as_str().unwrap() {
                "REPLACE" => {
                    headers.insert(name, value);
                }
                "DELETE" => {
                    headers.remove(&name);
                }
                other => panic!("unexpected mismatch action {other}"),
            }
        }
    }
    allowed.then_some(headers)
}

/// What the policies enforced at one sidecar on one call do to a request:
/// `None` when one of them denies it.
fn reference(
    i: &Inputs,
    policies: &[usize],
    callee: usize,
    outside: bool,
    req: &Request,
) -> Option<BTreeMap<String, String>> {
    let mut headers = req.headers.clone();
    if outside {
        headers.remove(CONTEXT_HEADER);
    }
    let get = |k: &str| req.headers.get(k).cloned().unwrap_or_default();
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    for &pi in policies {
        let p = &i.program.policies[pi];
        let dfa = ServiceDfa::new(&p.pattern, &|n| i.graph.service_id(n)).unwrap();
        let mut q = dfa.start();
        for &s in req.context.iter().chain([&callee]) {
            q = dfa.step(q, s);
        }
        if !dfa.is_accepting(q) {
            continue;
        }
        let lowered = rules::lower(&p.body, &p.act).unwrap();
        let Some(rule) = lowered.iter().find(|r| {
            r.tests.iter().all(|t| {
                let actual = match &t.subject {
                    Subject::Header(k) => get(k),
                    Subject::Path => path.clone(),
                    Subject::Method => req.method.clone(),
                    Subject::Status => unreachable!(),
                };
                (actual == t.value) == t.equal
            })
        }) else {
            continue;
        };
        for a in &rule.actions {
            match a {
                Action::Deny(_) => return None,
                Action::SetHeader(k, HeaderValue::Literal(v)) => {
                    headers.insert(k.clone(), v.clone());
                }
                Action::RemoveHeader(k) => {
                    headers.remove(k);
                }
                other => panic!("not a Cilium action: {other:?}"),
            }
        }
    }
    Some(headers)
}

/// Every walk from an entry point to `to`, at most `max_len` services long.
fn walks_to(g: &CallGraph, to: usize, max_len: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut frontier: Vec<Vec<usize>> = g.entrypoints.iter().map(|&e| vec![e]).collect();
    while let Some(w) = frontier.pop() {
        let last = *w.last().unwrap();
        if last == to {
            out.push(w.clone());
        }
        if w.len() < max_len {
            for c in g.calls.iter().filter(|c| c.from == last) {
                let mut n = w.clone();
                n.push(c.to);
                frontier.push(n);
            }
        }
    }
    out.sort();
    out
}

/// Strings the policies compare with or write, per subject.
fn literals(
    i: &Inputs,
    policies: &[usize],
) -> (BTreeSet<String>, BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut methods: BTreeSet<String> = ["GET", "POST", "DELETE"].map(String::from).into();
    let mut paths: BTreeSet<String> = ["/", "/x"].map(String::from).into();
    let mut headers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for &pi in policies {
        let p = &i.program.policies[pi];
        for r in rules::lower(&p.body, &p.act).unwrap() {
            for t in &r.tests {
                match &t.subject {
                    Subject::Header(k) => {
                        headers.entry(k.clone()).or_default().insert(t.value.clone());
                    }
                    Subject::Path => {
                        paths.insert(t.value.clone());
                    }
                    Subject::Method => {
                        methods.insert(t.value.clone());
                    }
                    Subject::Status => {}
                }
            }
            for a in &r.actions {
                match a {
                    Action::SetHeader(k, HeaderValue::Literal(v)) => {
                        headers.entry(k.clone()).or_default().insert(v.clone());
                    }
                    Action::RemoveHeader(k) => {
                        headers.entry(k.clone()).or_default();
                    }
                    _ => {}
                }
            }
        }
    }
    for values in headers.values_mut() {
        values.insert("other".into());
    }
    (methods, paths, headers)
}

/// Requests of one class: every context (up to a length) times methods,
/// paths (with and without a query) and header values (absent included),
/// sampled when there are too many.
fn requests(i: &Inputs, policies: &[usize], sender: Option<usize>) -> Vec<Request> {
    let (methods, paths, headers) = literals(i, policies);
    let contexts: Vec<(Vec<usize>, Option<String>)> = match sender {
        Some(u) => walks_to(&i.graph, u, 6)
            .into_iter()
            .map(|w| {
                let h = encode_context(w.iter().map(|&s| i.graph.services[s].name.as_str()));
                (w, Some(h))
            })
            .collect(),
        // From outside: no header, or one a client made up.
        None => vec![(Vec::new(), None), (Vec::new(), Some("/forged".to_string()))],
    };
    let paths: Vec<String> = paths.iter().flat_map(|p| [p.clone(), format!("{p}?q=1")]).collect();
    let header_choices: Vec<(String, Vec<Option<String>>)> = headers
        .into_iter()
        .map(|(k, vs)| (k, std::iter::once(None).chain(vs.into_iter().map(Some)).collect()))
        .collect();
    let mut total: usize = contexts.len() * methods.len() * paths.len();
    for (_, vs) in &header_choices {
        total *= vs.len();
    }
    let limit = 20_000;
    let step = if total > limit { total / limit } else { 1 };
    let methods: Vec<&String> = methods.iter().collect();
    let mut out = Vec::new();
    let mut n = 0;
    while n < total {
        let mut k = n;
        let (context, header) = &contexts[k % contexts.len()];
        k /= contexts.len();
        let method = methods[k % methods.len()].clone();
        k /= methods.len();
        let path = paths[k % paths.len()].clone();
        k /= paths.len();
        let mut hs = BTreeMap::new();
        if let Some(h) = header {
            hs.insert(CONTEXT_HEADER.to_string(), h.clone());
        }
        for (name, vs) in &header_choices {
            if let Some(v) = &vs[k % vs.len()] {
                hs.insert(name.clone(), v.clone());
            }
            k /= vs.len();
        }
        out.push(Request {
            context: context.clone(),
            method,
            path,
            headers: hs,
        });
        // An odd stride visits every digit position.
        n += if step > 1 { step | 1 } else { 1 };
    }
    out
}

fn yaml_objects(files: &[OutFile]) -> Vec<Value> {
    files
        .iter()
        .map(|f| serde_saphyr::from_str::<Value>(std::str::from_utf8(&f.bytes).unwrap()).unwrap())
        .collect()
}

#[test]
fn emitted_rules_mean_what_the_policies_say() {
    let mut checked = 0;
    for (name, i) in scenarios() {
        let files = emit_cilium(&i).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        assert!(!files.is_empty(), "{name}: no Cilium output");
        for obj in yaml_objects(&files) {
            let spec = &obj["spec"];
            let s = i
                .graph
                .service_id(spec["endpointSelector"]["matchLabels"]["app"].as_str().unwrap())
                .unwrap();
            for (dir, from_key) in [("ingress", "fromEndpoints"), ("egress", "toEndpoints")] {
                let side = if dir == "ingress" { Side::Ingress } else { Side::Egress };
                for rule in spec[dir].as_array().into_iter().flatten() {
                    let Some(http) = rule["toPorts"][0]["rules"]["http"].as_array() else {
                        continue;
                    };
                    // Which requests the class holds.
                    let (sender, callee, outside) = if rule["fromEntities"] == serde_json::json!(["all"]) {
                        (None, s, true)
                    } else {
                        let peer = rule[from_key][0]["matchLabels"]["app"].as_str().unwrap();
                        let peer = i.graph.service_id(peer).unwrap();
                        if side == Side::Ingress {
                            (Some(peer), s, false)
                        } else {
                            (Some(s), peer, false)
                        }
                    };
                    let policies: Vec<usize> = i
                        .placement
                        .enforcement
                        .iter()
                        .filter(|e| {
                            e.at == s && e.side == side && e.to == callee && (side == Side::Egress || e.from == sender)
                        })
                        .map(|e| e.policy)
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    assert!(!policies.is_empty(), "{name}: rules without policies");
                    let forward: Vec<&Value> = http.iter().collect();
                    let backward: Vec<&Value> = http.iter().rev().collect();
                    for req in requests(&i, &policies, sender) {
                        let want = reference(&i, &policies, callee, outside, &req);
                        for order in [&forward, &backward] {
                            let got = cilium_eval(order, &req);
                            assert_eq!(
                                got, want,
                                "{name}: {dir} of {} ({}), request {req:?}",
                                i.graph.services[s].name, i.graph.services[callee].name
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 3_000, "only {checked} requests checked");
}

#[test]
fn scenario_outputs_validate_and_fit_envoys_regex_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut regexes = BTreeSet::new();
    for (k, (name, i)) in scenarios().into_iter().enumerate() {
        let files = emit_cilium(&i).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        for f in &files {
            let p = tmp.path().join(format!("{k}-{}", f.path.replace('/', "_")));
            std::fs::write(&p, &f.bytes).unwrap();
            paths.push(p);
        }
        for obj in yaml_objects(&files) {
            common::cilium_regexes(&obj, &mut regexes);
        }
    }
    assert_eq!(validate(&paths), paths.len());
    assert!(regexes.len() >= 5, "{regexes:?}");
    envoy_accepts_regexes(tmp.path(), &regexes);
}

/// Cilium hands `path` and `method` to Envoy as RE2 header matchers, and
/// Envoy refuses a regex whose RE2 program exceeds 100 instructions unless
/// the runtime says otherwise (cilium/cilium#41314: one such regex drops
/// every policy). The real Envoy, with its defaults, must accept them all.
fn envoy_accepts_regexes(dir: &Path, regexes: &BTreeSet<String>) {
    let envoy = Path::new("build/venv/bin/envoy");
    assert!(envoy.exists(), "{} is missing: run `make deps`", envoy.display());
    let routes: Vec<Value> = regexes
        .iter()
        .map(|r| {
            serde_json::json!({
                "match": {"prefix": "/", "headers": [{"name": ":path", "string_match": {"safe_regex": {"regex": r}}}]},
                "direct_response": {"status": 200},
            })
        })
        .collect();
    let bootstrap = serde_json::json!({"static_resources": {"listeners": [{
        "name": "l",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "l",
                "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": routes}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }]}});
    let file = dir.join("regexes.json");
    std::fs::write(&file, serde_json::to_string(&bootstrap).unwrap()).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy rejected a regex:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the shapes of the output ----

fn http_rules(files: &[OutFile], service: &str) -> Vec<Value> {
    let obj = yaml_objects(files)
        .into_iter()
        .find(|o| o["spec"]["endpointSelector"]["matchLabels"]["app"] == service)
        .unwrap_or_else(|| panic!("no policy for {service}"));
    let mut out = Vec::new();
    for dir in ["ingress", "egress"] {
        for rule in obj["spec"][dir].as_array().into_iter().flatten() {
            if let Some(h) = rule["toPorts"][0]["rules"]["http"].as_array() {
                out.extend(h.iter().cloned());
            }
        }
    }
    out
}

#[test]
fn mixed_contexts_become_exact_header_values() {
    let i = pipeline(&[CILIUM], &[MIXED_POLICIES], MIXED_GRAPH);
    let files = emit_cilium(&i).unwrap();
    let text: String = files
        .iter()
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect();
    // writes_from_a holds for /a/c but not /b/c: both values are listed.
    assert!(text.contains("value: /a/c"), "{text}");
    assert!(text.contains("value: /b/c"), "{text}");
    // no_debug holds on every context: it needs no value.
    let rules = http_rules(&files, "d");
    assert!(
        rules.iter().any(|r| r.get("headerMatches").is_some_and(|m| !m
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == CONTEXT_HEADER))),
        "{rules:?}"
    );
    assert!(text.contains("method: ^GET$"), "{text}");
    assert!(text.contains("path: ^/login(\\?.*)?$"), "{text}");
    assert!(text.contains("mismatch: DELETE"), "{text}");
    assert!(text.contains("value: \"\\r\""), "{text}");
    assert!(text.contains("mismatch: REPLACE"), "{text}");
}

#[test]
fn cycles_need_no_list_when_a_policy_holds_on_every_context() {
    let i = pipeline(&[CILIUM], &[CYCLE_POLICIES], CYCLE_GRAPH);
    let files = emit_cilium(&i).unwrap();
    let text: String = files
        .iter()
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect();
    assert!(!text.contains(CONTEXT_HEADER), "{text}");
    // Every request into c is denied: the one rule no request matches.
    assert!(text.contains("method: ^$"), "{text}");
}

#[test]
fn entry_points_drop_the_context_header_of_requests_from_outside() {
    let i = pipeline(&[CILIUM], &[ENTRY_POLICIES], ENTRY_GRAPH);
    let files = emit_cilium(&i).unwrap();
    let obj = yaml_objects(&files)
        .into_iter()
        .find(|o| o["metadata"]["name"] == "a")
        .unwrap();
    let ingress = obj["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress[0]["fromEntities"], serde_json::json!(["all"]));
    let rules = ingress[0]["toPorts"][0]["rules"]["http"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["method"], "^GET$");
    let matches = rules[0]["headerMatches"].as_array().unwrap();
    assert!(
        matches
            .iter()
            .any(|m| m["name"] == CONTEXT_HEADER && m["mismatch"] == "DELETE")
    );
    assert!(
        matches
            .iter()
            .any(|m| m["name"] == "x-entry" && m["mismatch"] == "REPLACE")
    );
    // No per-caller complement: every peer goes through the rules.
    assert_eq!(ingress.len(), 2);
}

// ---- what Cilium cannot express ----

fn messages(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("{} | {}", d.message, d.notes.join(" | ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn mixed_contexts_through_a_cycle_are_cu0601() {
    let i = pipeline(
        &[CILIUM],
        &[r#"policy only_short(req: RPCRequest) context "a b c d" { if req.GetMethod() != "GET" { req.Deny(403); } }"#],
        CYCLE_GRAPH,
    );
    let diags = rejected(&i);
    let text = messages(&diags);
    assert!(text.contains("cannot be listed as exact header values"), "{text}");
    assert!(text.contains("form a cycle"), "{text}");
    assert!(text.contains("cilium/cilium#43914"), "{text}");
}

#[test]
fn negative_conditions_in_the_allow_list_are_cu0601() {
    let cases = [
        (
            r#"policy no_admin(req: RPCRequest) context "productpage reviews ratings" { if req.GetPath() == "/admin" { req.Deny(403); } }"#,
            "the path is not `/admin`",
        ),
        (
            r#"policy no_test_user(req: RPCRequest) context "productpage reviews ratings" { if req.GetHeader("x-user") == "test" { req.Deny(403); } }"#,
            "header `x-user` is not `test`",
        ),
        (
            r#"policy needs_user(req: RPCRequest) context "productpage reviews ratings" { if req.GetHeader("x-user") != "" { req.SetHeader("x-seen", "1"); } }"#,
            "header `x-user` is not ``",
        ),
        (
            r#"policy blank_user(req: RPCRequest) context "productpage reviews ratings" { if req.GetHeader("x-user") != "" { req.Deny(403); } }"#,
            "header `x-user` is empty or absent",
        ),
        (
            r#"policy copy(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-copy", req.GetHeader("x-user")); }"#,
            "value read from the request",
        ),
        (
            r#"policy empty(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-empty", ""); }"#,
            "to the empty string",
        ),
    ];
    let graph = include_str!("../examples/bookinfo/graph.json");
    for (policy, expect) in cases {
        let i = pipeline(&[CILIUM], &[policy], graph);
        let text = messages(&rejected(&i));
        assert!(text.contains(expect), "{policy}\n{text}");
    }
}

#[test]
fn rewrites_that_depend_on_cilium_rule_order_are_cu0601() {
    let graph = include_str!("../examples/bookinfo/graph.json");
    let conflicting = r#"
policy one(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-tier", "gold"); }
policy two(req: RPCRequest) context "productpage reviews ratings" { if req.GetMethod() == "GET" { req.SetHeader("x-tier", "silver"); } }
"#;
    let text = messages(&rejected(&pipeline(&[CILIUM], &[conflicting], graph)));
    assert!(text.contains("can rewrite header `x-tier` differently"), "{text}");
    // `follow` must see x-mark as it arrived; Cilium may run `mark` first.
    let tested = r#"
policy mark(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-mark", "1"); }
policy follow(req: RPCRequest) context "productpage reviews ratings" { if req.GetHeader("x-mark") == "1" { req.SetHeader("x-seen", "yes"); } }
"#;
    let text = messages(&rejected(&pipeline(&[CILIUM], &[tested], graph)));
    assert!(
        text.contains("rewrites header `x-mark`, which another rewriting Cilium rule tests"),
        "{text}"
    );
    // A denial on the rewritten header is fine: rules that only allow have
    // no effect, and the rewriting rule allows only what is allowed anyway
    // (`emitted_rules_mean_what_the_policies_say` checks it).
    assert!(emit_cilium(&pipeline(&[CILIUM], &[MARK_AND_GATE], graph)).is_ok());
    // The same header set to the same value by two policies is fine.
    let agreeing = r#"
policy one(req: RPCRequest) context "productpage reviews ratings" { req.SetHeader("x-tier", "gold"); }
policy two(req: RPCRequest) context "productpage reviews ratings" { if req.GetMethod() == "GET" { req.SetHeader("x-tier", "gold"); } }
"#;
    assert!(emit_cilium(&pipeline(&[CILIUM], &[agreeing], graph)).is_ok());
}

#[test]
fn requests_from_outside_into_a_service_also_called_inside_are_cu0601() {
    let graph = r#"{"services":[{"name":"a"},{"name":"b"}],"calls":[{"from":"a","to":"b"},{"from":"b","to":"a"}],"entrypoints":["a"]}"#;
    let i = pipeline(
        &[CILIUM],
        &[r#"policy from_outside(req: RPCRequest) context "a" { if req.GetMethod() != "GET" { req.Deny(403); } }"#],
        graph,
    );
    let text = messages(&rejected(&i));
    assert!(
        text.contains("cannot tell requests from outside the mesh into `a` from those of `b`"),
        "{text}"
    );
}
