//! Policy files: lex, parse, check against the bundled interfaces. Must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut sm = copperc::source::SourceMap::new();
    let ifaces: Vec<usize> = copperc::interfaces::BUNDLED.iter().map(|(n, t)| sm.add(*n, *t)).collect();
    let pol = sm.add("fuzz.copper", text);
    let input = copperc::check::CheckInput { interface_files: &ifaces, policy_files: &[pol], graph_services: None };
    let (_, diags) = copperc::check::check(&sm, &input);
    let _ = copperc::diag::render::render_human(&diags, &sm, false);
});
