//! The lexer shared by interface files (`.act`) and policy files (`.copper`).
//!
//! logos recognises raw tokens; `lex` then decodes string literals and
//! integers and turns every lexical problem into a diagnostic with an exact
//! span. String literals keep a map from each decoded byte back to the source
//! so that errors inside a context pattern can point at the exact character,
//! even after escapes.

use logos::Logos;

use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
enum Raw {
    #[token("dataplane")]
    Dataplane,
    #[token("cost")]
    Cost,
    #[token("act")]
    Act,
    #[token("policy")]
    Policy,
    #[token("context")]
    Context,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[regex(r"[A-Za-z_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")]
    Ident,
    #[regex(r"-?[0-9]+")]
    Int,
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str,
    #[regex(r#""([^"\\\n]|\\[^\n])*"#)]
    UnterminatedStr,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token(",")]
    Comma,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
}

/// A decoded string literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    /// The whole literal, quotes included.
    pub span: Span,
    /// `offsets[i]` is the source offset of the character that produced
    /// decoded byte `i`; the last entry is the closing quote.
    pub offsets: Vec<usize>,
}

impl StrLit {
    /// The source span of decoded bytes `start..end`.
    pub fn sub_span(&self, start: usize, end: usize) -> Span {
        let at = |i: usize| self.offsets.get(i).copied().unwrap_or(self.span.end.saturating_sub(1));
        let s = at(start);
        let e = if end > start { at(end).max(s + 1) } else { s + 1 };
        Span::new(self.span.file, s, e)
    }
}

/// Tokens handed to the lalrpop parser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    Dataplane,
    Cost,
    Act,
    Policy,
    Context,
    If,
    Else,
    True,
    False,
    Ident(String),
    Int(i64),
    Str(StrLit),
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Semi,
    Colon,
    Comma,
    Dot,
    Arrow,
    EqEq,
    NotEq,
    AndAnd,
    OrOr,
    Bang,
}

/// lalrpop needs an error type for its extern token stream; lexical problems
/// are reported before parsing, so this is never produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexicalError {}

pub type Spanned = (usize, Tok, usize);

/// Splits `text` into tokens. Returns every lexical problem; the token list is
/// only meaningful when there are none.
pub fn lex(file: FileId, text: &str) -> (Vec<Spanned>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut diags = Vec::new();
    let mut lexer = Raw::lexer(text);
    while let Some(raw) = lexer.next() {
        let range = lexer.span();
        let slice = lexer.slice();
        let span = Span::new(file, range.start, range.end);
        let tok = match raw {
            Err(()) => {
                let ch = slice.chars().next().unwrap_or(' ');
                let end = range.start + ch.len_utf8();
                diags.push(
                    Diagnostic::new(
                        Code::UnexpectedChar,
                        format!("unexpected character `{}`", ch.escape_debug()),
                    )
                    .at(Span::new(file, range.start, end), "not part of any token"),
                );
                continue;
            }
            Ok(Raw::Dataplane) => Tok::Dataplane,
            Ok(Raw::Cost) => Tok::Cost,
            Ok(Raw::Act) => Tok::Act,
            Ok(Raw::Policy) => Tok::Policy,
            Ok(Raw::Context) => Tok::Context,
            Ok(Raw::If) => Tok::If,
            Ok(Raw::Else) => Tok::Else,
            Ok(Raw::True) => Tok::True,
            Ok(Raw::False) => Tok::False,
            Ok(Raw::Ident) => Tok::Ident(slice.to_owned()),
            Ok(Raw::Int) => match slice.parse::<i64>() {
                Ok(n) => Tok::Int(n),
                Err(_) => {
                    diags.push(
                        Diagnostic::new(
                            Code::IntOutOfRange,
                            format!("integer `{slice}` does not fit in 64 bits"),
                        )
                        .at(span, "out of range")
                        .with_help(format!("integers range from {} to {}", i64::MIN, i64::MAX)),
                    );
                    continue;
                }
            },
            Ok(Raw::Str) => match decode_string(file, range.start, slice) {
                Ok(lit) => Tok::Str(lit),
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            },
            Ok(Raw::UnterminatedStr) => {
                diags.push(
                    Diagnostic::new(Code::UnterminatedString, "unterminated string literal")
                        .at(
                            Span::new(file, range.start, range.start + 1),
                            "this string is never closed",
                        )
                        .with_help("close it with `\"` on the same line; write a line break as `\\n`"),
                );
                continue;
            }
            Ok(Raw::LBrace) => Tok::LBrace,
            Ok(Raw::RBrace) => Tok::RBrace,
            Ok(Raw::LParen) => Tok::LParen,
            Ok(Raw::RParen) => Tok::RParen,
            Ok(Raw::LBracket) => Tok::LBracket,
            Ok(Raw::RBracket) => Tok::RBracket,
            Ok(Raw::Semi) => Tok::Semi,
            Ok(Raw::Colon) => Tok::Colon,
            Ok(Raw::Comma) => Tok::Comma,
            Ok(Raw::Dot) => Tok::Dot,
            Ok(Raw::Arrow) => Tok::Arrow,
            Ok(Raw::EqEq) => Tok::EqEq,
            Ok(Raw::NotEq) => Tok::NotEq,
            Ok(Raw::AndAnd) => Tok::AndAnd,
            Ok(Raw::OrOr) => Tok::OrOr,
            Ok(Raw::Bang) => Tok::Bang,
        };
        tokens.push((range.start, tok, range.end));
    }
    (tokens, diags)
}

/// Decodes a string literal's escapes. `start` is the offset of the opening quote.
fn decode_string(file: FileId, start: usize, slice: &str) -> Result<StrLit, Diagnostic> {
    let inner = &slice[1..slice.len() - 1];
    let base = start + 1;
    let mut value = String::with_capacity(inner.len());
    let mut offsets = Vec::with_capacity(inner.len() + 1);
    let mut chars = inner.char_indices().peekable();
    let push = |value: &mut String, offsets: &mut Vec<usize>, c: char, at: usize| {
        for _ in 0..c.len_utf8() {
            offsets.push(at);
        }
        value.push(c);
    };
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            push(&mut value, &mut offsets, c, base + i);
            continue;
        }
        let bad = |len: usize, what: String| {
            Diagnostic::new(Code::InvalidEscape, what)
                .at(Span::new(file, base + i, base + i + len), "invalid escape")
                .with_help("the escapes are \\\" \\\\ \\n \\t and \\u{HEX}")
        };
        match chars.next() {
            Some((_, '"')) => push(&mut value, &mut offsets, '"', base + i),
            Some((_, '\\')) => push(&mut value, &mut offsets, '\\', base + i),
            Some((_, 'n')) => push(&mut value, &mut offsets, '\n', base + i),
            Some((_, 't')) => push(&mut value, &mut offsets, '\t', base + i),
            Some((_, 'u')) => {
                let rest = &inner[i + 2..];
                let close = rest.find('}');
                let hex = match (rest.strip_prefix('{'), close) {
                    (Some(_), Some(end)) => &rest[1..end],
                    _ => return Err(bad(2, "`\\u` must be followed by `{HEX}`".into())),
                };
                let len = 2 + hex.len() + 2;
                let code = if (1..=6).contains(&hex.len()) && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                } else {
                    None
                };
                match code {
                    Some(ch) => push(&mut value, &mut offsets, ch, base + i),
                    None => {
                        return Err(bad(len, format!("`\\u{{{hex}}}` is not a Unicode scalar value")));
                    }
                }
                for _ in 0..hex.len() + 2 {
                    chars.next();
                }
            }
            Some((_, other)) => {
                return Err(bad(
                    1 + other.len_utf8(),
                    format!("unknown escape `\\{}`", other.escape_debug()),
                ));
            }
            None => return Err(bad(1, "a lone `\\` at the end of a string".into())),
        }
    }
    offsets.push(start + slice.len() - 1);
    Ok(StrLit {
        value,
        span: Span::new(file, start, start + slice.len()),
        offsets,
    })
}

/// How a token is named in "expected ..." messages.
pub fn describe_terminal(name: &str) -> String {
    match name {
        "Ident" => "a name".into(),
        "Int" => "an integer".into(),
        "Str" => "a string".into(),
        other => format!("`{}`", other.trim_matches('"')),
    }
}
