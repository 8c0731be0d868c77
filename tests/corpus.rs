//! The testdata corpus, run through the real `copperc` binary:
//! every file in `testdata/valid` checks clean; every file in
//! `testdata/invalid` (and `testdata/warnings`) reports its expected code at
//! its expected line and column in all three formats, with the right exit
//! code; every rendered diagnostic is snapshot-tested.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SHARED_GRAPHS: &str = "../shared/graphs";

/// The `// key: value` header lines at the top of a test file.
struct Header {
    expect: Option<(String, usize, usize)>,
    graph: Option<String>,
    interfaces: Option<String>,
    policies: Option<String>,
}

fn header(path: &Path) -> Header {
    let text = std::fs::read_to_string(path).unwrap();
    let mut h = Header {
        expect: None,
        graph: None,
        interfaces: None,
        policies: None,
    };
    for line in text.lines().take_while(|l| l.starts_with("//")) {
        let Some((key, value)) = line.trim_start_matches('/').trim().split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim() {
            "expect" => {
                let (code, pos) = value.split_once(' ').expect("`expect: CODE L:C`");
                let (l, c) = pos.trim().split_once(':').expect("L:C");
                h.expect = Some((code.to_string(), l.parse().unwrap(), c.parse().unwrap()));
            }
            "graph" => h.graph = Some(value),
            "interfaces" => h.interfaces = Some(value),
            "policies" => h.policies = Some(value),
            _ => {}
        }
    }
    h
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "copper" || x == "act") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `copperc check` arguments for a test file.
fn check_args(path: &Path, h: &Header) -> Vec<String> {
    let dir = path.parent().unwrap();
    let mut args = vec!["check".to_string()];
    if let Some(g) = &h.graph {
        let graph = Path::new(SHARED_GRAPHS).join(format!("{g}.json"));
        assert!(
            graph.exists(),
            "missing shared graph {} (is ../shared beside the checkout?)",
            graph.display()
        );
        args.extend(["--graph".into(), graph.display().to_string()]);
    }
    let is_act = path.extension().is_some_and(|x| x == "act");
    if is_act {
        args.extend(["--interfaces".into(), path.display().to_string()]);
        if let Some(p) = &h.policies {
            args.push(dir.join(p).display().to_string());
        }
    } else {
        if let Some(i) = &h.interfaces {
            args.extend(["--interfaces".into(), dir.join(i).display().to_string()]);
        }
        args.push(path.display().to_string());
    }
    args
}

fn run(args: &[String], format: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(args)
        .args(["--format", format, "--color", "never"])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn valid_files_check_clean() {
    let all = files("testdata/valid");
    assert!(all.len() >= 12, "expected the valid corpus, found {} files", all.len());
    for path in all {
        let h = header(&path);
        let (code, out) = run(&check_args(&path, &h), "json");
        assert_eq!(code, 0, "{}: {out}", path.display());
        let diags: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(diags, Value::Array(vec![]), "{} is not clean", path.display());
    }
}

fn check_expected(dir: &str, want_exit: i32, severity: &str) {
    let all = files(dir);
    assert!(!all.is_empty(), "{dir} is empty");
    for path in all {
        let h = header(&path);
        let Some((code, line, col)) = h.expect.clone() else {
            // Helper files (interfaces or policies named by another test) have no `expect`.
            continue;
        };
        let args = check_args(&path, &h);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let shown = path.display().to_string();

        let (exit, json) = run(&args, "json");
        assert_eq!(exit, want_exit, "{shown}: exit code under --format json\n{json}");
        let diags: Value = serde_json::from_str(&json).unwrap();
        let hit = diags.as_array().unwrap().iter().any(|d| {
            d["code"] == code.as_str() && d["severity"] == severity && d["line"] == line && d["column"] == col
        });
        assert!(hit, "{shown}: no {severity} {code} at {line}:{col} in\n{json}");

        let (exit, sarif) = run(&args, "sarif");
        assert_eq!(exit, want_exit, "{shown}: exit code under --format sarif");
        let doc: Value = serde_json::from_str(&sarif).unwrap();
        assert_eq!(doc["version"], "2.1.0");
        let hit = doc["runs"][0]["results"].as_array().unwrap().iter().any(|r| {
            let region = &r["locations"][0]["physicalLocation"]["region"];
            r["ruleId"] == code.as_str() && region["startLine"] == line && region["startColumn"] == col
        });
        assert!(hit, "{shown}: no SARIF result {code} at {line}:{col}");

        let (exit, human) = run(&args, "human");
        assert_eq!(exit, want_exit, "{shown}: exit code under --format human");
        let header_line = format!("{severity}[{code}]");
        let at = human
            .find(&header_line)
            .unwrap_or_else(|| panic!("{shown}: no `{header_line}` in\n{human}"));
        let located = human[at..].lines().nth(1).unwrap_or("");
        assert!(
            located.ends_with(&format!(":{line}:{col}")),
            "{shown}: `{header_line}` not at {line}:{col}:\n{human}"
        );

        insta::assert_snapshot!(format!("{name}.human"), human);
        insta::assert_snapshot!(format!("{name}.json"), json);
        insta::assert_snapshot!(format!("{name}.sarif"), sarif);
    }
}

#[test]
fn invalid_files_report_their_code() {
    check_expected("testdata/invalid", 1, "error");
}

#[test]
fn warning_files_report_their_code_and_pass() {
    check_expected("testdata/warnings", 0, "warning");
}

#[test]
fn every_error_code_has_an_invalid_file() {
    let mut covered = std::collections::BTreeSet::new();
    for dir in ["testdata/invalid", "testdata/warnings", "testdata/place"] {
        if Path::new(dir).exists() {
            for p in files(dir) {
                if let Some((code, ..)) = header(&p).expect {
                    covered.insert(code);
                }
            }
        }
    }
    // CU04xx: tests/graph.rs; CU0504, CU09xx: usage tests below; CU06xx: tests/emit.rs;
    // CU0506: tests/emit_k8s.rs (flags_and_targets).
    let missing: Vec<&str> = copperc::diag::Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| {
            !covered.contains(*c)
                && !c.starts_with("CU04")
                && !c.starts_with("CU06")
                && !c.starts_with("CU09")
                && *c != "CU0504"
                && *c != "CU0506"
        })
        .collect();
    assert!(missing.is_empty(), "codes with no test file: {missing:?}");
}

#[test]
fn bundled_example_checks_clean() {
    let args: Vec<String> = [
        "check",
        "--graph",
        "examples/bookinfo/graph.json",
        "examples/bookinfo/policies.copper",
    ]
    .map(String::from)
    .to_vec();
    let (code, out) = run(&args, "json");
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "[]");
}

#[test]
fn io_errors_exit_2_in_every_format() {
    for format in ["human", "json", "sarif"] {
        let (code, _) = run(&["check".into(), "no/such/file.copper".into()], format);
        assert_eq!(code, 2, "{format}");
    }
}

/// `testdata/place`: diagnostics that need the call graph (`copperc place`).
#[test]
fn place_files_report_their_code() {
    let mut seen = 0;
    for path in files("testdata/place") {
        let h = header(&path);
        let Some((code, line, col)) = h.expect.clone() else {
            continue;
        };
        seen += 1;
        let graph = h.graph.clone().expect("place tests name a graph");
        let local = Path::new("testdata/place").join(format!("{graph}.json"));
        let graph = if local.exists() {
            local
        } else {
            Path::new(SHARED_GRAPHS).join(format!("{graph}.json"))
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_copperc"));
        cmd.args(["place", "--color", "never", "--graph"]).arg(&graph);
        if let Some(i) = &h.interfaces {
            cmd.arg("--interfaces").arg(path.parent().unwrap().join(i));
        }
        let out = cmd.arg(&path).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (severity, want_exit) = if code == "CU0505" { ("warning", 0) } else { ("error", 1) };
        assert_eq!(out.status.code(), Some(want_exit), "{}: {stderr}", path.display());
        let header_line = format!("{severity}[{code}]");
        let at = stderr
            .find(&header_line)
            .unwrap_or_else(|| panic!("{}: no `{header_line}` in\n{stderr}", path.display()));
        let located = stderr[at..].lines().nth(1).unwrap_or("");
        assert!(
            located.ends_with(&format!(":{line}:{col}")),
            "{}: not at {line}:{col}:\n{stderr}",
            path.display()
        );
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        insta::assert_snapshot!(format!("place-{name}"), stderr);
    }
    assert!(seen >= 4, "place corpus missing");
}

#[test]
fn unknown_default_dataplane_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args([
            "place",
            "--graph",
            "examples/bookinfo/graph.json",
            "--default-dataplane",
            "linkerd",
            "examples/bookinfo/policies.copper",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CU0504"));
}
