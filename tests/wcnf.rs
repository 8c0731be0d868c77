//! Cross-check with an independent MaxSAT solver: for the shared benchmark
//! graphs and the generated instances kept in `testdata/instances/`,
//! `copperc place --emit-wcnf` writes the instance, RC2 (python-sat,
//! installed by `make deps` into build/venv) solves the file, and its
//! optimum must equal copperc's proven optimum.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let p = Path::new("build/venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make deps` (it installs python-sat for this test)",
        p.display()
    );
    p.to_path_buf()
}

fn cross_check(name: &str, graph: &Path, policies: &[PathBuf]) {
    let dir = tempfile::tempdir().unwrap();
    let wcnf = dir.path().join(format!("{name}.wcnf"));
    let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["place", "--format", "json", "--graph"])
        .arg(graph)
        .arg("--emit-wcnf")
        .arg(&wcnf)
        .args(policies)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["optimal"], true, "{name}: not proven optimal");
    let ours = doc["cost"].as_u64().unwrap();

    let rc2 = Command::new(python())
        .arg("testdata/tools/rc2_cost.py")
        .arg(&wcnf)
        .output()
        .unwrap();
    assert!(
        rc2.status.success(),
        "{name}: RC2 failed: {}",
        String::from_utf8_lossy(&rc2.stderr)
    );
    let theirs: u64 = String::from_utf8(rc2.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(ours, theirs, "{name}: copperc optimum {ours}, RC2 optimum {theirs}");
}

fn copper_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "copper"))
        .collect();
    v.sort();
    v
}

#[test]
fn shared_graphs_agree_with_rc2() {
    for (graph, dir) in [
        ("bookinfo", "bookinfo"),
        ("online-boutique", "online-boutique"),
        ("deathstarbench-socialnetwork", "socialnetwork"),
        ("deathstarbench-hotelreservation", "hotelreservation"),
    ] {
        let g = PathBuf::from(format!("../shared/graphs/{graph}.json"));
        assert!(
            g.exists(),
            "{} is missing (is ../shared beside the checkout?)",
            g.display()
        );
        cross_check(graph, &g, &copper_files(&format!("testdata/valid/{dir}")));
    }
}

#[test]
fn generated_instances_agree_with_rc2() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("testdata/instances")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no kept instances in testdata/instances");
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        cross_check(&name, &d.join("graph.json"), &copper_files(d.to_str().unwrap()));
    }
}
