//! Interface files: lex, parse, build the interface database. Must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut sm = copperc::source::SourceMap::new();
    let f = sm.add("fuzz.act", text);
    let input = copperc::check::CheckInput { interface_files: &[f], policy_files: &[], graph_services: None };
    let (_, diags) = copperc::check::check(&sm, &input);
    let _ = copperc::diag::render::render_human(&diags, &sm, false);
});
