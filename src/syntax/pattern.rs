//! The context-pattern language: a regular expression whose letters are
//! service names (design brief, "Context patterns").
//!
//! ```text
//! alt  := seq ('|' seq)*
//! seq  := rep+                        // white space between atoms is optional
//! rep  := atom ('*' | '+' | '?')*
//! atom := NAME | '.' | '!' NAME | '!' '(' NAME ('|' NAME)* ')' | '(' alt ')'
//! ```
//!
//! The parser reads the decoded string value and maps every position back
//! through the literal's offset table, so an error points at the exact
//! character in the source, escapes included. Names are read as maximal runs
//! of letters, digits, `-` and `_`, then validated as DNS labels, so that a
//! bad name (`Catalog`) gets a naming error (CU0102), not a syntax error.

use super::lexer::StrLit;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;

/// A parsed context pattern. Spans point into the policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// One service, by name.
    Service(String, Span),
    /// `.`: any one service.
    Any(Span),
    /// `!a` or `!(a | b)`: any one service except those named.
    NoneOf(Vec<(String, Span)>, Span),
    Concat(Vec<Pattern>),
    Alt(Vec<Pattern>),
    Star(Box<Pattern>),
    Plus(Box<Pattern>),
    Opt(Box<Pattern>),
}

impl Pattern {
    /// Every service name the pattern mentions, with where.
    pub fn names(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'a>(&'a self, out: &mut Vec<(&'a str, Span)>) {
        match self {
            Pattern::Service(n, s) => out.push((n, *s)),
            Pattern::Any(_) => {}
            Pattern::NoneOf(ns, _) => out.extend(ns.iter().map(|(n, s)| (n.as_str(), *s))),
            Pattern::Concat(ps) | Pattern::Alt(ps) => ps.iter().for_each(|p| p.collect_names(out)),
            Pattern::Star(p) | Pattern::Plus(p) | Pattern::Opt(p) => p.collect_names(out),
        }
    }
}

impl std::fmt::Display for Pattern {
    /// Canonical text of the pattern: names, `.`, `!(..)`, with explicit
    /// grouping. Parsing the output gives the same pattern.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Service(n, _) => write!(f, "{n}"),
            Pattern::Any(_) => write!(f, "."),
            Pattern::NoneOf(ns, _) => {
                let names: Vec<&str> = ns.iter().map(|(n, _)| n.as_str()).collect();
                if names.len() == 1 {
                    write!(f, "!{}", names[0])
                } else {
                    write!(f, "!({})", names.join(" | "))
                }
            }
            Pattern::Concat(ps) => {
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    match p {
                        Pattern::Alt(_) => write!(f, "({p})")?,
                        _ => write!(f, "{p}")?,
                    }
                }
                Ok(())
            }
            Pattern::Alt(ps) => {
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        write!(f, " | ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            Pattern::Star(p) | Pattern::Plus(p) | Pattern::Opt(p) => {
                let op = match self {
                    Pattern::Star(_) => "*",
                    Pattern::Plus(_) => "+",
                    _ => "?",
                };
                match **p {
                    Pattern::Service(..) | Pattern::Any(_) | Pattern::NoneOf(..) => write!(f, "{p}{op}"),
                    _ => write!(f, "({p}){op}"),
                }
            }
        }
    }
}

/// Whether `name` is a DNS label: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63.
pub fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// Parses the pattern in a string literal. Errors: one syntax error (the
/// first), or every invalid name.
pub fn parse_pattern(lit: &StrLit) -> Result<Pattern, Vec<Diagnostic>> {
    if lit.value.trim().is_empty() {
        return Err(vec![
            Diagnostic::new(Code::EmptyPattern, "empty context pattern")
                .at(
                    Span::new(lit.span.file, lit.span.start, lit.span.start + 1),
                    "this pattern matches no request",
                )
                .with_help("write `.+` to match every request"),
        ]);
    }
    let mut p = PatternParser {
        lit,
        text: &lit.value,
        pos: 0,
        bad_names: Vec::new(),
    };
    let result = p.alt().and_then(|pat| match p.peek() {
        None => Ok(pat),
        Some((i, ')')) => Err(p.error(i, 1, "unmatched `)`", "no `(` opens this")),
        Some((i, c)) => Err(p.error(
            i,
            c.len_utf8(),
            format!("unexpected `{c}` in context pattern"),
            "not expected here",
        )),
    });
    match result {
        Err(d) => Err(vec![d]),
        Ok(_) if !p.bad_names.is_empty() => Err(p.bad_names),
        Ok(pat) => Ok(pat),
    }
}

struct PatternParser<'a> {
    lit: &'a StrLit,
    text: &'a str,
    pos: usize,
    bad_names: Vec<Diagnostic>,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_'
}

impl PatternParser<'_> {
    fn span(&self, start: usize, len: usize) -> Span {
        self.lit.sub_span(start, start + len)
    }

    fn error(&self, at: usize, len: usize, message: impl Into<String>, label: &str) -> Diagnostic {
        Diagnostic::new(Code::PatternSyntax, message).at(self.span(at, len), label)
    }

    /// The next non-space character and its position.
    fn peek(&mut self) -> Option<(usize, char)> {
        let rest = &self.text[self.pos..];
        let skipped = rest.len() - rest.trim_start().len();
        self.pos += skipped;
        self.text[self.pos..].chars().next().map(|c| (self.pos, c))
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn alt(&mut self) -> Result<Pattern, Diagnostic> {
        let mut arms = vec![self.seq()?];
        while let Some((_, '|')) = self.peek() {
            self.bump('|');
            arms.push(self.seq()?);
        }
        Ok(if arms.len() == 1 {
            arms.remove(0)
        } else {
            Pattern::Alt(arms)
        })
    }

    fn seq(&mut self) -> Result<Pattern, Diagnostic> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some((_, '|' | ')')) => break,
                _ => items.push(self.rep()?),
            }
        }
        match (items.len(), self.peek()) {
            (0, Some((i, '|'))) => {
                Err(self.error(i, 1, "empty alternative in context pattern", "nothing before this `|`"))
            }
            (0, Some((i, ')'))) => Err(self.error(
                i,
                1,
                "empty group in context pattern",
                "expected a service name, `.`, `!` or `(` before this",
            )),
            (0, None) => {
                // The pattern ends right after a `|` (or is empty, handled above).
                let at = self.text.trim_end().len().saturating_sub(1);
                Err(self.error(at, 1, "empty alternative in context pattern", "nothing after this"))
            }
            (1, _) => Ok(items.remove(0)),
            _ => Ok(Pattern::Concat(items)),
        }
    }

    fn rep(&mut self) -> Result<Pattern, Diagnostic> {
        let mut atom = self.atom()?;
        while let Some((_, c @ ('*' | '+' | '?'))) = self.peek() {
            self.bump(c);
            atom = match c {
                '*' => Pattern::Star(Box::new(atom)),
                '+' => Pattern::Plus(Box::new(atom)),
                _ => Pattern::Opt(Box::new(atom)),
            };
        }
        Ok(atom)
    }

    fn atom(&mut self) -> Result<Pattern, Diagnostic> {
        let Some((i, c)) = self.peek() else {
            let at = self.text.len().saturating_sub(1);
            return Err(self.error(
                at,
                1,
                "context pattern ends too early",
                "expected a service name, `.`, `!` or `(` after this",
            ));
        };
        match c {
            '.' => {
                self.bump(c);
                Ok(Pattern::Any(self.span(i, 1)))
            }
            '(' => {
                self.bump(c);
                let inner = self.alt()?;
                match self.peek() {
                    Some((_, ')')) => {
                        self.bump(')');
                        Ok(inner)
                    }
                    _ => Err(self.error(i, 1, "unclosed `(` in context pattern", "this group is never closed")),
                }
            }
            '!' => {
                self.bump(c);
                self.negation(i)
            }
            '*' | '+' | '?' => Err(self.error(
                i,
                1,
                format!("`{c}` has nothing to repeat"),
                "put a service name, `.` or a group before it",
            )),
            c if is_name_char(c) => {
                let (name, span) = self.name();
                Ok(Pattern::Service(name, span))
            }
            c => Err(self.error(
                i,
                c.len_utf8(),
                format!("unexpected `{}` in context pattern", c.escape_debug()),
                "expected a service name, `.`, `!` or `(`",
            )),
        }
    }

    /// After `!`: one name or a parenthesised `|`-list of names.
    fn negation(&mut self, bang: usize) -> Result<Pattern, Diagnostic> {
        let help = "`!` takes one service name or a parenthesised list such as `!(a | b)`";
        match self.peek() {
            Some((_, c)) if is_name_char(c) => {
                let (name, span) = self.name();
                let whole = self.span(bang, 1).to(span);
                Ok(Pattern::NoneOf(vec![(name, span)], whole))
            }
            Some((_, '(')) => {
                self.bump('(');
                let mut names = Vec::new();
                loop {
                    match self.peek() {
                        Some((_, c)) if is_name_char(c) => names.push(self.name()),
                        Some((j, ')')) if !names.is_empty() => {
                            return Err(self
                                .error(
                                    j,
                                    1,
                                    "expected a service name after `|` in `!( ... )`",
                                    "expected a service name before this",
                                )
                                .with_help(help));
                        }
                        Some((j, c)) if c != ')' => {
                            return Err(self
                                .error(
                                    j,
                                    c.len_utf8(),
                                    format!("unexpected `{}` in `!( ... )`", c.escape_debug()),
                                    "expected a service name",
                                )
                                .with_help(help));
                        }
                        _ => {
                            return Err(self
                                .error(
                                    bang,
                                    1,
                                    "unclosed `!(` in context pattern",
                                    "expected names separated by `|`, then `)`",
                                )
                                .with_help(help));
                        }
                    }
                    match self.peek() {
                        Some((_, '|')) => self.bump('|'),
                        Some((end, ')')) => {
                            self.bump(')');
                            return Ok(Pattern::NoneOf(names, self.span(bang, end + 1 - bang)));
                        }
                        Some((j, c)) => {
                            return Err(self
                                .error(
                                    j,
                                    c.len_utf8(),
                                    format!("unexpected `{}` in `!( ... )`", c.escape_debug()),
                                    "expected `|` or `)`",
                                )
                                .with_help(help));
                        }
                        None => {
                            return Err(self
                                .error(bang, 1, "unclosed `!(` in context pattern", "this `!(` is never closed")
                                .with_help(help));
                        }
                    }
                }
            }
            _ => Err(self
                .error(
                    bang,
                    1,
                    "`!` must be followed by a service name or `(`",
                    "nothing to negate",
                )
                .with_help(help)),
        }
    }

    fn name(&mut self) -> (String, Span) {
        let start = self.pos;
        let len: usize = self.text[start..]
            .chars()
            .take_while(|c| is_name_char(*c))
            .map(char::len_utf8)
            .sum();
        self.pos += len;
        let name = self.text[start..start + len].to_owned();
        let span = self.span(start, len);
        if !is_dns_label(&name) {
            let fixed: String = name.to_lowercase().replace('_', "-");
            let mut d = Diagnostic::new(Code::InvalidServiceName, format!("`{name}` is not a valid service name"))
                .at(span, "not a DNS label")
                .with_note("service names are DNS labels: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters");
            if is_dns_label(&fixed) {
                d = d.with_help(format!("did you mean `{fixed}`?"));
            }
            self.bad_names.push(d);
        }
        (name, span)
    }
}

#[cfg(test)]
mod tests;
