//! A bounded, deterministic sweep of `copperc compile` over seeded random
//! programs (the CI version of `testdata/tools/emit_sweep.py`, which runs many more).
//!
//! Each seed gives a small random call graph (cycles, self-calls, entry
//! points that the mesh also calls, versions, sometimes explicit ports) or
//! one of the shared graphs, and one to three policies: random context
//! patterns (names, `.`, `!a`, `!(a | b)`, alternation, every repetition,
//! names the graph lacks) and random bodies with every method of the
//! bundled interfaces (request and response `SetHeader` with adversarial
//! values: quotes, `%`, `{{`, non-ASCII, 5000 characters; `RemoveHeader`,
//! `RouteToVersion`, `Deny` with several statuses, `RateLimit`, and
//! conditions on `GetHeader`, `GetPath`, `GetMethod` and `GetStatus`),
//! and now and then an input that must be refused (an invalid header name,
//! `host`, a line break, a status out of range). Each program is compiled
//! with the bundled interfaces, with istio-proxy.act only and with
//! cilium-proxy.act only, and:
//! - exit 0: compiling again gives the same bytes; every envoy/*.yaml
//!   passes `envoy --mode validate`; every istio/, cilium/ and k8s/ object
//!   passes validate.py --strict (Deployment patches against the relaxed
//!   schema); the EnvoyFilters' patches and every Istio regex pass Envoy
//!   (`common::envoy_check`), and Cilium's path and method regexes pass it
//!   under Envoy's default RE2 limit;
//! - exit 1: every error has a code and a source span;
//! - never a panic or another exit code.
//!
//! Bounded to a few seconds of Envoy and schema validation: the outputs of
//! all seeds are validated together.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{SCHEMAS, compile, envoy, envoy_check, files_under, listener, patch_schemas, tree_text, validate, yaml};

use serde_json::{Value, json};

/// Seeds run in CI; the script explores further.
const SEEDS: std::ops::Range<u64> = 0..60;

const VARIANTS: [(&str, &[&str]); 3] = [
    ("bundled", &[]),
    ("istio", &["--interfaces", "interfaces/istio-proxy.act"]),
    ("cilium", &["--interfaces", "interfaces/cilium-proxy.act"]),
];

/// splitmix64: a small deterministic generator; `cilium_shaped` makes the
/// programs of a seed ones that Cilium can express more often (equality
/// tests, `Deny(403)`, literal header values, request policies).
struct Rng {
    state: u64,
    cilium_shaped: bool,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const NAMES: [&str; 6] = ["a", "b", "ab", "c-1", "d", "e2"];
const VERSIONS: [&str; 3] = ["v2", "1.2.0", "canary"];
const KEYS: [&str; 7] = [
    "x-user",
    "X-Upper",
    "content-type",
    "x-%",
    "a|b",
    "te",
    "x-copper-context",
];
/// Header names that must be refused with CU0601.
const BAD_KEYS: [&str; 4] = ["", "x y", "host", ":path"];
const VALUES: [&str; 12] = [
    "",
    "test",
    "a\"b",
    "100%",
    "%REQ(x)%",
    "{{ x }}",
    "café ☃ 😀",
    "\t",
    "back\\slash",
    ".*[",
    "a: b",
    "%%",
];
const PATHS: [&str; 6] = ["/", "/admin", "/a b", "/é", "", "/.*"];
const METHODS: [&str; 4] = ["GET", "POST", "", "X\"Y"];

/// A string literal of the policy language.
fn lit(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Case {
    graph: Value,
    policies: String,
}

fn random_graph(rng: &mut Rng) -> Value {
    let n = 2 + rng.below(4);
    let mut names: Vec<&str> = NAMES.to_vec();
    let mut chosen = Vec::new();
    for _ in 0..n {
        chosen.push(names.remove(rng.below(names.len())));
    }
    let services: Vec<Value> = chosen
        .iter()
        .map(|s| {
            let mut o = json!({"name": s});
            if rng.chance(0.5) {
                let mut vs = vec!["v1"];
                vs.push(rng.pick(&VERSIONS));
                o["versions"] = json!(vs);
            }
            o
        })
        .collect();
    let mut calls = BTreeSet::new();
    for _ in 0..1 + rng.below(2 * n) {
        let (a, b) = (rng.pick(&chosen), rng.pick(&chosen));
        if a != b || rng.chance(0.3) {
            calls.insert((a, b));
        }
    }
    let mut g = json!({
        "services": services,
        "calls": calls.iter().map(|(a, b)| json!({"from": a, "to": b})).collect::<Vec<_>>(),
    });
    let reached: BTreeSet<&str> = calls.iter().map(|(_, b)| *b).collect();
    if chosen.iter().all(|s| reached.contains(s)) || rng.chance(0.5) {
        // Explicit entry points, often services the mesh also calls.
        let k = 1 + rng.below(chosen.len().min(3));
        g["entrypoints"] = json!(chosen[..k]);
    }
    if rng.chance(0.3) {
        let s = rng.pick(&chosen);
        g["ports"] = json!({s: {"address": "127.0.0.1", "app": 9001, "inbound": 9101, "outbound": 9201}});
    }
    g
}

fn pattern(rng: &mut Rng, names: &[String], depth: usize) -> String {
    let mut items = Vec::new();
    if rng.chance(0.3) {
        items.push(".*".to_string());
    }
    for _ in 0..1 + rng.below(3) {
        let name = |rng: &mut Rng| {
            if rng.chance(0.1) {
                "zz".to_string()
            } else {
                names[rng.below(names.len())].clone()
            }
        };
        let atom = match rng.below(7) {
            0..=2 => name(rng),
            3 => ".".to_string(),
            4 => format!("!{}", name(rng)),
            5 => format!("!({} | {})", name(rng), name(rng)),
            _ if depth < 1 => format!(
                "({} | {})",
                pattern(rng, names, depth + 1),
                pattern(rng, names, depth + 1)
            ),
            _ => name(rng),
        };
        let rep = rng.pick(&["", "", "*", "+", "?"]);
        items.push(format!("{atom}{rep}"));
    }
    items.join(" ")
}

fn condition(rng: &mut Rng, binder: &str, response: bool, depth: usize) -> String {
    if depth < 1 && !rng.cilium_shaped && rng.chance(0.2) {
        let op = rng.pick(&["&&", "||"]);
        return format!(
            "{} {op} !({})",
            condition(rng, binder, response, depth + 1),
            condition(rng, binder, response, depth + 1)
        );
    }
    let op = if rng.cilium_shaped {
        "=="
    } else {
        rng.pick(&["==", "!="])
    };
    if response {
        return format!("{binder}.GetStatus() {op} {}", rng.pick(&[200, 404, 503]));
    }
    match rng.below(3) {
        0 => format!("{binder}.GetHeader({}) {op} {}", lit(key(rng)), lit(rng.pick(&VALUES))),
        1 => format!("{binder}.GetPath() {op} {}", lit(rng.pick(&PATHS))),
        _ => format!("{binder}.GetMethod() {op} {}", lit(rng.pick(&METHODS))),
    }
}

fn key(rng: &mut Rng) -> &'static str {
    if rng.chance(0.03) {
        rng.pick(&BAD_KEYS)
    } else {
        rng.pick(&KEYS)
    }
}

fn action(rng: &mut Rng, binder: &str, methods: &[&str]) -> String {
    match rng.pick(methods) {
        "SetHeader" => {
            let value = if binder == "req" && !rng.cilium_shaped && rng.chance(0.15) {
                format!("req.GetHeader({})", lit(key(rng)))
            } else if rng.chance(0.03) {
                lit("line\nbreak")
            } else if rng.chance(0.05) {
                lit(&"x".repeat(5000))
            } else {
                lit(rng.pick(&VALUES))
            };
            format!("{binder}.SetHeader({}, {value});", lit(key(rng)))
        }
        "RemoveHeader" => format!("{binder}.RemoveHeader({});", lit(key(rng))),
        "RouteToVersion" => format!(
            "{binder}.RouteToVersion({});",
            lit(rng.pick(&["v1", "v1", "v2", "canary"]))
        ),
        "Deny" if rng.cilium_shaped => format!("{binder}.Deny(403);"),
        "Deny" => format!("{binder}.Deny({});", rng.pick(&[403, 403, 404, 503, 200, 599, 600])),
        "RateLimit" => format!("{binder}.RateLimit({});", rng.pick(&[1, 100, 0])),
        m => unreachable!("{m}"),
    }
}

fn block(rng: &mut Rng, binder: &str, methods: &[&str], depth: usize, out: &mut String) {
    let response = binder == "resp";
    for _ in 0..usize::from(depth == 0) + rng.below(3) {
        let pad = "    ".repeat(depth + 1);
        if depth < 2 && rng.chance(0.5) {
            writeln!(out, "{pad}if {} {{", condition(rng, binder, response, 0)).unwrap();
            block(rng, binder, methods, depth + 1, out);
            if !rng.cilium_shaped && rng.chance(0.3) {
                writeln!(out, "{pad}}} else if {} {{", condition(rng, binder, response, 0)).unwrap();
                block(rng, binder, methods, depth + 1, out);
            }
            if !rng.cilium_shaped && rng.chance(0.4) {
                writeln!(out, "{pad}}} else {{").unwrap();
                block(rng, binder, methods, depth + 1, out);
            }
            writeln!(out, "{pad}}}").unwrap();
        } else {
            writeln!(out, "{pad}{}", action(rng, binder, methods)).unwrap();
        }
    }
}

fn random_case(seed: u64) -> Case {
    let mut rng = Rng {
        state: seed,
        cilium_shaped: false,
    };
    rng.cilium_shaped = rng.chance(0.35);
    let shared = ["bookinfo", "online-boutique", "deathstarbench-hotelreservation"];
    let graph = if rng.chance(0.25) {
        let name = rng.pick(&shared);
        serde_json::from_str(&std::fs::read_to_string(format!("../shared/graphs/{name}.json")).unwrap()).unwrap()
    } else {
        random_graph(&mut rng)
    };
    let names: Vec<String> = graph["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let mut policies = String::new();
    for i in 0..rng.pick(&[1, 1, 2, 3]) {
        let (binder, act, methods): (&str, &str, &[&str]) = match rng.below(5) {
            _ if rng.cilium_shaped => ("req", "RPCRequest", &["SetHeader", "RemoveHeader", "Deny"]),
            0 => ("resp", "RPCResponse", &["SetHeader"]),
            1 => ("req", "RPCRequest", &["SetHeader", "RemoveHeader", "Deny"]),
            2 => (
                "req",
                "RPCRequest",
                &["SetHeader", "RemoveHeader", "Deny", "RouteToVersion"],
            ),
            3 => ("req", "RPCRequest", &["SetHeader", "Deny", "RateLimit"]),
            _ => ("req", "RPCRequest", &["Deny"]),
        };
        let ctx = pattern(&mut rng, &names, 0);
        writeln!(policies, "policy p{i}({binder}: {act}) context {} {{", lit(&ctx)).unwrap();
        block(&mut rng, binder, methods, 0, &mut policies);
        policies.push_str("}\n");
    }
    Case { graph, policies }
}

/// Every error of a failed compile has a code and a source span.
fn check_diagnostics(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    // Each diagnostic starts a line with `error[` or `warning[`.
    let mut blocks: Vec<String> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error[") || line.starts_with("warning[") || blocks.is_empty() {
            blocks.push(String::new());
        }
        let b = blocks.last_mut().unwrap();
        b.push_str(line);
        b.push('\n');
    }
    let errors: Vec<&String> = blocks.iter().filter(|b| b.starts_with("error[")).collect();
    assert!(!errors.is_empty(), "{what}: exit 1 without an error:\n{stderr}");
    for b in errors {
        let code = &b["error[".len()..b.find(']').unwrap()];
        assert!(
            code.len() == 6 && code.starts_with("CU"),
            "{what}: an error without a code:\n{b}"
        );
        assert!(b.contains("┌─"), "{what}: an error without a span:\n{b}");
    }
}

fn envoy_validate(file: &Path) {
    let out = Command::new(envoy())
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy rejected {}:\n{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn random_programs_compile_to_valid_output_or_located_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut exits = [[0usize; 2]; 3];
    let (mut istio, mut k8s, mut patches, mut cilium) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bootstraps: Vec<(PathBuf, String)> = Vec::new();
    for seed in SEEDS {
        let case = random_case(seed);
        let dir = tmp.path().join(format!("seed{seed}"));
        std::fs::create_dir_all(&dir).unwrap();
        let graph = dir.join("graph.json");
        std::fs::write(&graph, serde_json::to_string_pretty(&case.graph).unwrap()).unwrap();
        let pfile = dir.join("policies.copper");
        std::fs::write(&pfile, &case.policies).unwrap();
        for (v, (variant, extra)) in VARIANTS.iter().enumerate() {
            let what = format!("seed {seed}, {variant} interfaces, {}", pfile.display());
            let out = dir.join(format!("out-{variant}"));
            let r = compile(&graph, &[&pfile], &out, extra);
            let stderr = String::from_utf8_lossy(&r.stderr);
            match r.status.code() {
                Some(0) => exits[v][0] += 1,
                Some(1) => {
                    exits[v][1] += 1;
                    check_diagnostics(&what, &stderr);
                    continue;
                }
                other => panic!("{what}: exit {other:?}:\n{stderr}\n{}", case.policies),
            }
            let again = dir.join(format!("again-{variant}"));
            assert_eq!(compile(&graph, &[&pfile], &again, extra).status.code(), Some(0));
            assert!(
                tree_text(&out, &[""]) == tree_text(&again, &[""]),
                "{what}: output is not deterministic"
            );
            for f in files_under(&out.join("envoy")) {
                let text = std::fs::read_to_string(&f).unwrap();
                if !bootstraps.iter().any(|(_, t)| *t == text) {
                    bootstraps.push((f, text));
                }
            }
            let listed = |p: &PathBuf| !p.ends_with("kustomization.yaml");
            istio.extend(files_under(&out.join("istio")).into_iter().filter(listed));
            cilium.extend(files_under(&out.join("cilium")));
            for f in files_under(&out.join("k8s")).into_iter().filter(listed) {
                if f.starts_with(out.join("k8s/patches")) {
                    patches.push(f);
                } else {
                    k8s.push(f);
                }
            }
        }
    }
    eprintln!(
        "exits [ok, refused] per interfaces {:?}: {exits:?}; {} bootstraps, {} istio, {} cilium, {} k8s objects, {} patches",
        VARIANTS.map(|v| v.0),
        bootstraps.len(),
        istio.len(),
        cilium.len(),
        k8s.len(),
        patches.len()
    );
    // Some programs of each kind must reach the checks below.
    for (v, (variant, _)) in VARIANTS.iter().enumerate() {
        assert!(exits[v][0] >= 5 && exits[v][1] >= 5, "{variant}: exits {:?}", exits[v]);
    }
    assert!(!istio.is_empty() && !cilium.is_empty() && !bootstraps.is_empty());

    let schemas = Path::new(SCHEMAS);
    let n = validate(&schemas.join("istio"), &istio)
        + validate(&schemas.join("cilium"), &cilium)
        + validate(&schemas.join("k8s"), &k8s)
        + validate(&patch_schemas(tmp.path()), &patches);
    assert_eq!(n, istio.len() + cilium.len() + k8s.len() + patches.len());

    for (f, _) in &bootstraps {
        envoy_validate(f);
    }
    envoy_check(&istio, tmp.path());
    let mut regexes = BTreeSet::new();
    for f in &cilium {
        common::cilium_regexes(&yaml(f)["spec"], &mut regexes);
    }
    let routes: Vec<Value> = regexes
        .iter()
        .map(|r| {
            json!({"match": {"prefix": "/", "headers": [{"name": ":path", "string_match": {"safe_regex": {"regex": r}}}]},
                   "direct_response": {"status": 200}})
        })
        .collect();
    let router = json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    let mut l = listener("cilium", vec![router], routes);
    l["address"]["socket_address"]["port_value"] = json!(10000);
    let file = tmp.path().join("cilium-regexes.json");
    std::fs::write(&file, json!({"static_resources": {"listeners": [l]}}).to_string()).unwrap();
    envoy_validate(&file);
}
