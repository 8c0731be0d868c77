//! Call-graph loading: every error names the JSON path and points at the
//! offending value (snapshot of the rendered diagnostic), and valid graphs
//! load with the brief's defaults.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use copperc::diag::render::render_human;
use copperc::graph::parse_graph;
use copperc::source::SourceMap;

fn load(text: &str) -> (Option<copperc::graph::CallGraph>, String, Vec<&'static str>) {
    let mut sm = SourceMap::new();
    let f = sm.add("graph.json", text);
    let (g, diags) = parse_graph(&sm, f);
    let codes = diags.iter().map(|d| d.code.as_str()).collect();
    (g, render_human(&diags, &sm, false), codes)
}

fn error(text: &str, code: &str) -> String {
    let (g, out, codes) = load(text);
    assert!(g.is_none(), "expected an error for {text}");
    assert!(codes.contains(&code), "expected {code}, got {codes:?}\n{out}");
    out
}

#[test]
fn defaults_and_merging() {
    let (g, out, _) = load(
        r#"{"services":[{"name":"a","replicas":2},{"name":"b","versions":["v1","v2"]},{"name":"c","replicas":0}],
            "calls":[{"from":"a","to":"b","rps":1.5},{"from":"a","to":"b","rps":2},{"from":"b","to":"c"},{"from":"c","to":"c"}]}"#,
    );
    let g = g.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(g.services[1].replicas, 1);
    assert_eq!(g.services[0].versions, ["v1"]);
    assert_eq!(g.services[2].replicas, 0);
    assert_eq!(g.calls.len(), 3, "duplicate calls merge");
    assert_eq!(g.calls[0].rps, Some(3.5));
    assert_eq!(
        g.entrypoints,
        vec![0],
        "entry points default to the services no call reaches"
    );
}

#[test]
fn ports_section_with_defaults() {
    let (g, out, _) = load(
        r#"{"services":[{"name":"a"},{"name":"b","versions":["v1","v2"]}],"calls":[{"from":"a","to":"b"}],
            "ports":{"b":{"address":"127.0.0.1","app":9001,"inbound":19001,"versions":{"v2":{"app":9002}}}}}"#,
    );
    let g = g.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(g.services[0].ports, copperc::graph::Ports::defaults("a"));
    let b = &g.services[1].ports;
    assert_eq!(
        (b.address.as_str(), b.app, b.inbound, b.inbound_explicit, b.outbound),
        ("127.0.0.1", 9001, 19001, true, 15001)
    );
    assert_eq!(b.version("b", "v2"), ("127.0.0.1".to_string(), 9002));
    assert_eq!(b.version("b", "v1"), ("127.0.0.1".to_string(), 9001));
    assert_eq!(g.services[0].ports.version("a", "v3"), ("a-v3".to_string(), 8080));
}

#[test]
fn unreachable_services_warn() {
    let (g, out, codes) = load(
        r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"}],"calls":[{"from":"b","to":"c"},{"from":"c","to":"b"}],"entrypoints":["a"]}"#,
    );
    assert!(g.is_some());
    assert_eq!(codes, ["CU0408", "CU0408"]);
    insta::assert_snapshot!(out);
}

#[test]
fn errors_point_at_the_value() {
    let cases = [
        ("syntax", r#"{"services": [{"name": "a"},]}"#, "CU0401"),
        ("unknown_top_key", r#"{"services": [], "call": []}"#, "CU0402"),
        (
            "unknown_service_key",
            "{\"services\": [\n  {\"name\": \"a\", \"replica\": 2}\n]}",
            "CU0402",
        ),
        (
            "negative_replicas",
            "{\"services\": [\n  {\"name\": \"a\", \"replicas\": -1}\n]}",
            "CU0403",
        ),
        (
            "string_replicas",
            r#"{"services": [{"name": "a", "replicas": "3"}]}"#,
            "CU0403",
        ),
        (
            "bad_rps",
            r#"{"services": [{"name": "a"}, {"name": "b"}], "calls": [{"from": "a", "to": "b", "rps": "fast"}]}"#,
            "CU0403",
        ),
        (
            "negative_rps",
            r#"{"services": [{"name": "a"}, {"name": "b"}], "calls": [{"from": "a", "to": "b", "rps": -2.5}]}"#,
            "CU0403",
        ),
        (
            "empty_versions",
            r#"{"services": [{"name": "a", "versions": []}]}"#,
            "CU0403",
        ),
        ("missing_name", r#"{"services": [{"replicas": 1}]}"#, "CU0403"),
        ("invalid_name", r#"{"services": [{"name": "Cart_Service"}]}"#, "CU0404"),
        (
            "duplicate_service",
            "{\"services\": [\n  {\"name\": \"a\"},\n  {\"name\": \"a\"}\n]}",
            "CU0405",
        ),
        (
            "unknown_callee",
            "{\"services\": [{\"name\": \"cart\"}],\n \"calls\": [{\"from\": \"cart\", \"to\": \"carts\"}]}",
            "CU0406",
        ),
        (
            "unknown_entry",
            r#"{"services": [{"name": "a"}], "entrypoints": ["frontend"]}"#,
            "CU0406",
        ),
        (
            "no_entrypoints",
            r#"{"services": [{"name": "a"}, {"name": "b"}], "calls": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}"#,
            "CU0407",
        ),
    ];
    for (name, text, code) in cases {
        let out = error(text, code);
        insta::assert_snapshot!(name, out);
    }
}
