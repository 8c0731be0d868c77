//! The regex a sidecar matches the context header against.
//!
//! A request `u -> v` carries `enc(c)`, the context of the request that `u`
//! was handling, ending with `u` (docs/semantics.md, "Encoding of contexts");
//! its own context is `c v`. So the sidecar that enforces policy `p` on calls
//! into `v` (the callee's ingress, or a caller's route to `v`) must accept the
//! header values `h` with `h /v` in the language of `p`'s pattern: the right
//! quotient of that language by the letter `v`. It is computed here
//! symbolically, as the right derivative of the pattern by `v`, and written
//! out with the same encoding as the analysis (`analysis::encoding`), so the
//! two agree by construction; `tests/emit.rs` checks it on random contexts.
//!
//! A request from outside carries no header; Envoy treats the missing header
//! as empty (`treat_missing_header_as_empty`), and the empty text is the
//! encoding of the empty prefix, as it should be.

use crate::analysis::encoding::{LABEL_CHAR, label_complement};
use crate::syntax::pattern::Pattern;

/// A regular expression over services, closed under the derivative.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Re {
    /// The empty language.
    Nothing,
    /// The empty word.
    Empty,
    Service(String),
    Any,
    NoneOf(Vec<String>),
    Cat(Vec<Re>),
    Alt(Vec<Re>),
    Star(Box<Re>),
}

fn from_pattern(p: &Pattern) -> Re {
    match p {
        Pattern::Service(n, _) => Re::Service(n.clone()),
        Pattern::Any(_) => Re::Any,
        Pattern::NoneOf(ns, _) => Re::NoneOf(ns.iter().map(|(n, _)| n.clone()).collect()),
        Pattern::Concat(ps) => cat(ps.iter().map(from_pattern).collect()),
        Pattern::Alt(ps) => alt(ps.iter().map(from_pattern).collect()),
        Pattern::Star(p) => star(from_pattern(p)),
        Pattern::Plus(p) => {
            let r = from_pattern(p);
            cat(vec![r.clone(), star(r)])
        }
        Pattern::Opt(p) => alt(vec![Re::Empty, from_pattern(p)]),
    }
}

fn cat(items: Vec<Re>) -> Re {
    let mut out = Vec::new();
    for r in items {
        match r {
            Re::Nothing => return Re::Nothing,
            Re::Empty => {}
            Re::Cat(inner) => out.extend(inner),
            r => out.push(r),
        }
    }
    match out.len() {
        0 => Re::Empty,
        1 => out.remove(0),
        _ => Re::Cat(out),
    }
}

fn alt(items: Vec<Re>) -> Re {
    let mut out: Vec<Re> = Vec::new();
    for r in items {
        let parts = match r {
            Re::Nothing => continue,
            Re::Alt(inner) => inner,
            r => vec![r],
        };
        for p in parts {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    match out.len() {
        0 => Re::Nothing,
        1 => out.remove(0),
        _ => Re::Alt(out),
    }
}

fn star(r: Re) -> Re {
    match r {
        Re::Nothing | Re::Empty => Re::Empty,
        Re::Star(_) => r,
        r => Re::Star(Box::new(r)),
    }
}

fn nullable(r: &Re) -> bool {
    match r {
        Re::Nothing | Re::Service(_) | Re::Any | Re::NoneOf(_) => false,
        Re::Empty | Re::Star(_) => true,
        Re::Cat(rs) => rs.iter().all(nullable),
        Re::Alt(rs) => rs.iter().any(nullable),
    }
}

/// The right derivative: { w | w a ∈ L(r) }.
fn derive(r: &Re, a: &str) -> Re {
    match r {
        Re::Nothing | Re::Empty => Re::Nothing,
        Re::Service(n) => {
            if n == a {
                Re::Empty
            } else {
                Re::Nothing
            }
        }
        Re::Any => Re::Empty,
        Re::NoneOf(ns) => {
            if ns.iter().any(|n| n == a) {
                Re::Nothing
            } else {
                Re::Empty
            }
        }
        Re::Alt(rs) => alt(rs.iter().map(|x| derive(x, a)).collect()),
        Re::Star(inner) => cat(vec![r.clone(), derive(inner, a)]),
        Re::Cat(rs) => {
            let Some((last, init)) = rs.split_last() else {
                return Re::Nothing;
            };
            let init = cat(init.to_vec());
            let mut arms = vec![cat(vec![init.clone(), derive(last, a)])];
            if nullable(last) {
                arms.push(derive(&init, a));
            }
            alt(arms)
        }
    }
}

fn write(r: &Re, out: &mut String) {
    match r {
        // Never written: `quotient` returns `None` for it.
        Re::Nothing => out.push_str("[^\\x00-\\x{10FFFF}]"),
        Re::Empty => {}
        Re::Service(n) => {
            out.push('/');
            out.push_str(&regex_syntax::escape(n));
        }
        Re::Any => {
            out.push('/');
            out.push_str(LABEL_CHAR);
            out.push('+');
        }
        Re::NoneOf(ns) => {
            let names: Vec<&str> = ns.iter().map(String::as_str).collect();
            out.push('/');
            out.push_str(&label_complement(&names));
        }
        Re::Cat(rs) => rs.iter().for_each(|x| write(x, out)),
        Re::Alt(rs) => {
            out.push_str("(?:");
            for (i, x) in rs.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                write(x, out);
            }
            out.push(')');
        }
        Re::Star(inner) => {
            out.push_str("(?:");
            write(inner, out);
            out.push_str(")*");
        }
    }
}

/// The regex (whole-value match) for the context header of requests into
/// `callee` that `pattern` matches; `None` when no such request matches.
pub fn header_regex(pattern: &Pattern, callee: &str) -> Option<String> {
    let d = derive(&from_pattern(pattern), callee);
    if d == Re::Nothing {
        return None;
    }
    let mut out = String::new();
    write(&d, &mut out);
    Some(out)
}

/// Whether every header value matches (so no header match is needed):
/// true when the quotient is `.*`-like, i.e. `(/label)*`.
pub fn matches_everything(regex: &str) -> bool {
    regex == format!("(?:/{LABEL_CHAR}+)*")
}

/// The header regex for requests into `callee` from the given callers
/// (`None`: from outside the mesh) that `pattern` matches: for each caller
/// `u`, the header is `h /u` with `h /u /callee` matched, so the language is
/// the derivative by `callee`, then by `u`, followed by `/u`. `None` when
/// no such request matches.
pub fn header_regex_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Option<String> {
    let re = from_callers(pattern, callee, callers);
    if re == Re::Nothing {
        return None;
    }
    let mut out = String::new();
    write(&re, &mut out);
    Some(out)
}

/// The language of `header_regex_from` as a list of header values, sorted,
/// when it is finite and has at most `MAX_VALUES` words (no `.`, `!` or
/// repetition is left on these calls); `None` otherwise. For matchers that
/// take exact values instead of a regex.
pub fn header_values_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Option<Vec<String>> {
    let mut values = finite(&from_callers(pattern, callee, callers))?;
    values.sort();
    values.dedup();
    Some(values)
}

/// Most exact header values a finite context guard is spelt out into.
pub const MAX_VALUES: usize = 32;

fn from_callers(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Re {
    let into = derive(&from_pattern(pattern), callee);
    let mut arms = Vec::new();
    for caller in callers {
        match caller {
            None if nullable(&into) => arms.push(Re::Empty),
            None => {}
            Some(u) => arms.push(cat(vec![derive(&into, u), Re::Service((*u).to_string())])),
        }
    }
    alt(arms)
}

/// The words of `r` when there are finitely many (at most `MAX_VALUES`).
fn finite(r: &Re) -> Option<Vec<String>> {
    let words = match r {
        Re::Nothing => Vec::new(),
        Re::Empty => vec![String::new()],
        Re::Service(n) => vec![format!("/{n}")],
        Re::Any | Re::NoneOf(_) | Re::Star(_) => return None,
        Re::Cat(rs) => {
            let mut acc = vec![String::new()];
            for x in rs {
                let tails = finite(x)?;
                acc = acc
                    .iter()
                    .flat_map(|a| tails.iter().map(move |t| format!("{a}{t}")))
                    .collect();
                if acc.len() > MAX_VALUES {
                    return None;
                }
            }
            acc
        }
        Re::Alt(rs) => {
            let mut acc = Vec::new();
            for x in rs {
                acc.extend(finite(x)?);
                if acc.len() > MAX_VALUES {
                    return None;
                }
            }
            acc
        }
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::lexer::{Tok, lex};
    use crate::syntax::pattern::parse_pattern;

    fn values(p: &str, callee: &str, callers: &[Option<&str>]) -> Option<Vec<String>> {
        let (toks, _) = lex(0, &format!("{p:?}"));
        let Some((_, Tok::Str(lit), _)) = toks.into_iter().next() else {
            panic!("not a string literal: {p}")
        };
        header_values_from(&parse_pattern(&lit).unwrap(), callee, callers)
    }

    #[test]
    fn finite_guards_are_spelt_out() {
        assert_eq!(values("a b c", "c", &[Some("b")]), Some(vec!["/a/b".to_string()]));
        assert_eq!(
            values("a (b | x b) c", "c", &[Some("b")]),
            Some(vec!["/a/b".to_string(), "/a/x/b".to_string()])
        );
        // From outside: the empty header.
        assert_eq!(values("a", "a", &[None]), Some(vec![String::new()]));
        assert_eq!(values("a .* c", "c", &[Some("b")]), None);
        // `!x` is the caller itself: finite.
        assert_eq!(values("a !x c", "c", &[Some("b")]), Some(vec!["/a/b".to_string()]));
        assert_eq!(values("a !x* b c", "c", &[Some("b")]), None);
        assert_eq!(values("a b c", "c", &[Some("x")]), Some(Vec::new()));
    }
}
