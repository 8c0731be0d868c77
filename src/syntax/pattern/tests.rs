use super::*;
use crate::diag::Code;
use crate::source::SourceMap;
use crate::syntax::lexer::{Tok, lex};

/// Lexes `"..."` source text into a string literal, as a policy file would.
fn lit(src: &str) -> (SourceMap, StrLit) {
    let mut sm = SourceMap::new();
    let f = sm.add("t.copper", src);
    let (toks, diags) = lex(f, src);
    assert!(diags.is_empty(), "{diags:?}");
    match toks.into_iter().next() {
        Some((_, Tok::Str(s), _)) => (sm, s),
        other => panic!("not a string literal: {other:?}"),
    }
}

fn parse(src: &str) -> Pattern {
    let (_, l) = lit(&format!("{src:?}"));
    match parse_pattern(&l) {
        Ok(p) => p,
        Err(e) => panic!("{src}: {e:?}"),
    }
}

/// (code, 1-based column in the source line `"...pattern..."`) of the first error.
fn error_at(src: &str) -> (Code, usize) {
    let (sm, l) = lit(src);
    let errs = parse_pattern(&l).expect_err("should fail");
    let p = errs[0].primary.as_ref().expect("primary");
    (errs[0].code, sm.line_col(0, p.span.start).column)
}

#[test]
fn canonical_forms() {
    let cases = [
        ("frontend .* catalog", "frontend .* catalog"),
        (".*catalog", ".* catalog"),
        ("a|b c", "a | b c"),
        ("(a|b)c", "(a | b) c"),
        ("!a*", "!a*"),
        ("!(a | b)+", "!(a | b)+"),
        ("  a  ", "a"),
        ("a? b+ (c d)*", "a? b+ (c d)*"),
        ("((a))", "a"),
        ("x-1 y2", "x-1 y2"),
        (". . .", ". . ."),
    ];
    for (src, want) in cases {
        assert_eq!(parse(src).to_string(), want, "{src}");
    }
}

#[test]
fn negation_binds_tighter_than_repetition() {
    assert!(matches!(parse("!a*"), Pattern::Star(inner) if matches!(*inner, Pattern::NoneOf(..))));
}

#[test]
fn display_round_trips() {
    for src in ["a (b | c)* !(d | e) .+ f?", "(a b | c)+", "!x (y z)?"] {
        let once = parse(src).to_string();
        assert_eq!(parse(&once).to_string(), once);
    }
}

#[test]
fn names_are_collected() {
    let names: Vec<String> = parse("a !(b | c) (d | a)*")
        .names()
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c", "d", "a"]);
}

#[test]
fn errors_point_at_the_character() {
    //                  123456789
    assert_eq!(error_at(r#""a (b c""#), (Code::PatternSyntax, 4));
    assert_eq!(error_at(r#""a b)""#), (Code::PatternSyntax, 5));
    assert_eq!(error_at(r#""| a""#), (Code::PatternSyntax, 2));
    assert_eq!(error_at(r#""a |""#), (Code::PatternSyntax, 4));
    assert_eq!(error_at(r#""*a""#), (Code::PatternSyntax, 2));
    assert_eq!(error_at(r#""a !(b c)""#), (Code::PatternSyntax, 8));
    assert_eq!(error_at(r#""a !(b""#), (Code::PatternSyntax, 4));
    assert_eq!(error_at(r#""a !.""#), (Code::PatternSyntax, 4));
    assert_eq!(error_at(r#""a ()""#), (Code::PatternSyntax, 5));
    assert_eq!(error_at(r#""a # b""#), (Code::PatternSyntax, 4));
    assert_eq!(error_at(r#""""#), (Code::EmptyPattern, 1));
    assert_eq!(error_at(r#""   ""#), (Code::EmptyPattern, 1));
}

#[test]
fn errors_after_escapes_point_into_the_source() {
    // `\t` is two source characters but one decoded byte.
    assert_eq!(error_at(r#""a\tb )""#), (Code::PatternSyntax, 7));
    // A `\u{..}` escape spans several source characters.
    assert_eq!(error_at(r#""\u{61} *| ""#), (Code::PatternSyntax, 10));
}

#[test]
fn invalid_names_are_naming_errors() {
    assert_eq!(error_at(r#""frontend Catalog""#), (Code::InvalidServiceName, 11));
    assert_eq!(error_at(r#""a -b""#), (Code::InvalidServiceName, 4));
    assert_eq!(error_at(r#""a_b""#), (Code::InvalidServiceName, 2));
    let long = format!("\"{}\"", "a".repeat(64));
    assert_eq!(error_at(&long), (Code::InvalidServiceName, 2));
    let (_, l) = lit(r#""Foo bar Baz""#);
    assert_eq!(parse_pattern(&l).expect_err("two bad names").len(), 2);
}

#[test]
fn dns_labels() {
    for ok in ["a", "a1", "1a", "a-b", "a--b", &"x".repeat(63)] {
        assert!(is_dns_label(ok), "{ok}");
    }
    for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"x".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
}
