//! Context patterns: a pattern that parses prints to a text that parses to
//! the same pattern, and its regex compiles.
#![no_main]
use libfuzzer_sys::fuzz_target;

fn parse(text: &str) -> Option<copperc::syntax::pattern::Pattern> {
    let src = format!("{text:?}");
    let (toks, diags) = copperc::syntax::lexer::lex(0, &src);
    if !diags.is_empty() {
        return None;
    }
    match toks.into_iter().next() {
        Some((_, copperc::syntax::lexer::Tok::Str(lit), _)) => copperc::syntax::pattern::parse_pattern(&lit).ok(),
        _ => None,
    }
}

fuzz_target!(|text: &str| {
    if let Some(p) = parse(text) {
        let printed = p.to_string();
        let again = parse(&printed).expect("printed pattern must parse");
        assert_eq!(again.to_string(), printed);
        regex_automata_check(&p);
    }
});

fn regex_automata_check(p: &copperc::syntax::pattern::Pattern) {
    let _ = copperc::analysis::automaton::ServiceDfa::new(p, &["a", "b", "c"]);
}
