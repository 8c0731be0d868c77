//! Call graphs: JSON loading with spans. Must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut sm = copperc::source::SourceMap::new();
    let f = sm.add("fuzz.json", text);
    let (_, diags) = copperc::graph::parse_graph(&sm, f);
    let _ = copperc::diag::render::render_human(&diags, &sm, false);
});
