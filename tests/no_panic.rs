//! Every parser survives arbitrary input: random bytes and mutations of the
//! corpus go through the lexer, both grammars, the pattern parser, the
//! checker and the graph loader without a panic, and every diagnostic's
//! spans lie inside its file. The libFuzzer targets in `fuzz/` do the same
//! with coverage guidance (`make fuzz`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use copperc::check::{self, CheckInput};
use copperc::diag::Diagnostic;
use copperc::source::SourceMap;
use proptest::prelude::*;

fn spans_in_bounds(diags: &[Diagnostic], sm: &SourceMap) {
    for d in diags {
        for l in d.primary.iter().chain(&d.secondary) {
            let len = sm.text(l.span.file).len();
            assert!(
                l.span.start <= l.span.end && l.span.end <= len,
                "{d:?} out of bounds ({len})"
            );
        }
    }
    // Rendering must not fail either.
    let _ = copperc::diag::render::render_human(diags, sm, false);
    let _ = copperc::diag::render::render_sarif(diags, sm);
}

fn run_all(text: &str) {
    let mut sm = SourceMap::new();
    let iface = sm.add("x.act", text);
    let pol = sm.add("x.copper", text);
    let graph = sm.add("x.json", text);
    let bundled: Vec<usize> = copperc::interfaces::BUNDLED
        .iter()
        .map(|(n, t)| sm.add(*n, *t))
        .collect();
    let (_, d1) = check::check(
        &sm,
        &CheckInput {
            interface_files: &[iface],
            policy_files: &[],
            graph_services: None,
        },
    );
    let (_, d2) = check::check(
        &sm,
        &CheckInput {
            interface_files: &bundled,
            policy_files: &[pol],
            graph_services: None,
        },
    );
    let (_, d3) = copperc::graph::parse_graph(&sm, graph);
    for d in [d1, d2, d3] {
        spans_in_bounds(&d, &sm);
    }
}

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "testdata/valid/bookinfo",
        "testdata/invalid",
        "interfaces",
        "examples/bookinfo",
    ] {
        for e in std::fs::read_dir(dir).unwrap() {
            out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        run_all(&s);
    }

    #[test]
    fn agent_inputs_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), s in "\\PC{0,200}") {
        for text in [String::from_utf8_lossy(&bytes).into_owned(), s] {
            let _ = copperc::ebpf::node::parse_config(&text);
            let _ = copperc::ebpf::cgroup::cgroup2_mounts(&text);
            let _ = copperc::ebpf::cgroup::process_cgroup(&text);
            let _ = copperc::ebpf::node::service_of(text.as_bytes());
            let _ = copperc::ebpf::node::start_time(&text);
            let _ = copperc::ebpf::node::catches_usr1(&text);
        }
        let _ = copperc::ebpf::node::service_of(&bytes);
    }

    #[test]
    fn token_soup_never_panics(toks in prop::collection::vec(prop_oneof![
        Just("policy"), Just("dataplane"), Just("act"), Just("cost"), Just("context"), Just("if"), Just("else"),
        Just("{"), Just("}"), Just("("), Just(")"), Just("["), Just("]"), Just(";"), Just(":"), Just(","), Just("."),
        Just("->"), Just("=="), Just("!="), Just("&&"), Just("||"), Just("!"), Just("req"), Just("RPCRequest"),
        Just("GetHeader"), Just("Deny"), Just("\"a (b | !(c|d))* .\""), Just("\"\\u{1F600}\""), Just("42"), Just("-9"),
        Just("Ingress"), Just("Egress"), Just("string"), Just("int"), Just("\""), Just("\\"), Just("\n"), Just("é"),
    ], 0..60)) {
        run_all(&toks.join(" "));
    }

    #[test]
    fn corpus_mutations_never_panic(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), insert in "\\PC{0,8}") {
        let corpus = corpus();
        let text = &corpus[pick.index(corpus.len())];
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        run_all(&format!("{}{}{}", &text[..at], insert, &text[at..]));
        run_all(&text[..at]);
    }

    #[test]
    fn json_like_never_panics(s in "[\\[\\]{}\",:0-9a-z \\-.]{0,120}") {
        run_all(&s);
    }
}
