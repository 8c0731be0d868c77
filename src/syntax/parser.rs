//! Parser glue: runs the lexer, feeds lalrpop, and turns parse errors into
//! diagnostics ("unexpected `}`, expected `;`").

use lalrpop_util::ParseError;

use super::ast::{InterfaceFile, PolicyFile};
use super::lexer::{LexicalError, Tok, describe_terminal, lex};
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

lalrpop_util::lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        unused
    )]
    grammar,
    "/copper.rs"
);

/// Parses an interface file. Any diagnostic returned is an error.
pub fn parse_interface_file(file: FileId, text: &str) -> Result<InterfaceFile, Vec<Diagnostic>> {
    let (tokens, diags) = lex(file, text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let spans: Vec<(usize, usize)> = tokens.iter().map(|(l, _, r)| (*l, *r)).collect();
    grammar::InterfaceFileParser::new()
        .parse(file, tokens)
        .map_err(|e| vec![syntax_error(file, text, &spans, e)])
}

/// Parses a policy file. Any diagnostic returned is an error.
pub fn parse_policy_file(file: FileId, text: &str) -> Result<PolicyFile, Vec<Diagnostic>> {
    let (tokens, diags) = lex(file, text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let spans: Vec<(usize, usize)> = tokens.iter().map(|(l, _, r)| (*l, *r)).collect();
    grammar::PolicyFileParser::new()
        .parse(file, tokens)
        .map_err(|e| vec![syntax_error(file, text, &spans, e)])
}

fn syntax_error(
    file: FileId,
    text: &str,
    spans: &[(usize, usize)],
    err: ParseError<usize, Tok, LexicalError>,
) -> Diagnostic {
    match err {
        ParseError::UnrecognizedEof { location, expected } => {
            // Point at the last character rather than past the end, so the
            // excerpt shows where the file stops.
            let end = text.trim_end().len();
            let start = text[..end]
                .char_indices()
                .last()
                .map(|(i, _)| i)
                .unwrap_or(location.min(end));
            Diagnostic::new(Code::SyntaxError, "unexpected end of file").at(
                Span::new(file, start, end.max(start)),
                format!("expected {}", expected_list(&expected)),
            )
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } if expected.iter().any(|e| e == "\";\"") => {
            // A missing `;` belongs to the statement before it, as in rustc:
            // point right after the previous token, and at what came instead.
            let found = token_text(&tok, &text[l..r]);
            let prev_end = spans.iter().rev().map(|(_, e)| *e).find(|e| *e <= l).unwrap_or(l);
            Diagnostic::new(Code::SyntaxError, format!("expected `;`, found {found}"))
                .at(
                    Span::new(file, prev_end, prev_end),
                    format!("expected {}", expected_list(&expected)),
                )
                .with_label(Span::new(file, l, r), "unexpected here")
                .with_help("end the statement with `;`")
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let found = token_text(&tok, &text[l..r]);
            let mut d = Diagnostic::new(Code::SyntaxError, format!("unexpected {found}"))
                .at(Span::new(file, l, r), format!("expected {}", expected_list(&expected)));
            if let Some(help) = keyword_help(&tok, &expected) {
                d = d.with_help(help);
            }
            d
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            let found = token_text(&tok, &text[l..r]);
            Diagnostic::new(Code::SyntaxError, format!("unexpected {found}"))
                .at(Span::new(file, l, r), "expected end of file")
        }
        ParseError::InvalidToken { location } => {
            Diagnostic::new(Code::SyntaxError, "invalid token").at(Span::new(file, location, location + 1), "here")
        }
        ParseError::User { error } => match error {},
    }
}

fn token_text(tok: &Tok, slice: &str) -> String {
    match tok {
        Tok::Ident(name) => format!("name `{name}`"),
        Tok::Int(n) => format!("integer `{n}`"),
        Tok::Str(_) => "string literal".into(),
        _ => format!("`{slice}`"),
    }
}

fn expected_list(expected: &[String]) -> String {
    let mut names: Vec<String> = expected.iter().map(|e| describe_terminal(e)).collect();
    names.sort();
    names.dedup();
    match names.len() {
        0 => "something else".into(),
        1 => names.remove(0),
        _ => {
            let last = names.pop().unwrap_or_default();
            format!("one of {} or {last}", names.join(", "))
        }
    }
}

/// A keyword where a name was expected is a common slip: say so.
fn keyword_help(tok: &Tok, expected: &[String]) -> Option<String> {
    let keyword = match tok {
        Tok::Dataplane => "dataplane",
        Tok::Cost => "cost",
        Tok::Act => "act",
        Tok::Policy => "policy",
        Tok::Context => "context",
        Tok::If => "if",
        Tok::Else => "else",
        Tok::True => "true",
        Tok::False => "false",
        _ => return None,
    };
    expected
        .iter()
        .any(|e| e == "Ident")
        .then(|| format!("`{keyword}` is a keyword and cannot be used as a name"))
}
