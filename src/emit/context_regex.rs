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
//! A request from outside carries no header at all (the empty prefix has no
//! encoding on the wire), so a guard has two parts (`HeaderMatch`): whether
//! the request from outside is accepted, matched by the *absence* of the
//! header, and a regex for the header values of requests from services of
//! the mesh, which always end with `/caller` and so are never empty. The
//! empty regex never stands for the request from outside: Envoy rejects an
//! empty `safe_regex`, and an empty language is no guard at all.

use crate::analysis::encoding::{LABEL_CHAR, label_complement};
use crate::syntax::pattern::Pattern;

/// A regular expression over services, closed under the derivative.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// How a sidecar recognises the requests into `callee` from the given
/// callers that a pattern matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The request from outside the mesh matches: it carries no context
    /// header, so the header must be absent.
    pub absent: bool,
    /// A regex (whole-value match, never empty) for the header values of
    /// the matching requests from services of the mesh; `None` when none
    /// of them matches.
    pub regex: Option<String>,
}

/// The header match of requests into `callee` from the given callers
/// (`None`: from outside the mesh) that `pattern` matches; `None` when no
/// such request matches.
pub fn header_match_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Option<HeaderMatch> {
    let g = from_callers(pattern, callee, callers);
    let regex = text(&g.inside);
    (g.outside || regex.is_some()).then_some(HeaderMatch {
        absent: g.outside,
        regex,
    })
}

/// The header regex for requests into `callee` from the given callers
/// that `pattern` matches, for the callers that are services (the request
/// from outside has no header: see `header_match_from`): for each caller
/// `u`, the header is `h /u` with `h /u /callee` matched, so the language
/// is the derivative by `callee`, then by `u`, followed by `/u`. `None`
/// when no such request matches.
pub fn header_regex_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Option<String> {
    text(&from_callers(pattern, callee, callers).inside)
}

/// The regex text of a language of header values sent by services; `None`
/// for the empty language. Such a language never holds the empty text
/// (every value ends with `/caller`), and an empty regex would hold only
/// that: it is never returned.
fn text(r: &Re) -> Option<String> {
    if *r == Re::Nothing {
        return None;
    }
    debug_assert!(!nullable(r), "a language of header values holds the empty text: {r:?}");
    let mut out = String::new();
    write(r, &mut out);
    (!out.is_empty()).then_some(out)
}

/// The language of `header_regex_from` as a list of header values, sorted,
/// when it is finite and has at most `MAX_VALUES` words (no `.`, `!` or
/// repetition is left on these calls); `None` otherwise. For matchers that
/// take exact values instead of a regex. The request from outside, which
/// has no header, is not among them.
pub fn header_values_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Option<Vec<String>> {
    let mut values = finite(&from_callers(pattern, callee, callers).inside)?;
    values.sort();
    values.dedup();
    Some(values)
}

/// A context guard: the language of `header_regex_from`, kept symbolic so
/// that the guards of several policies can be intersected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The request from outside (no header) is accepted.
    outside: bool,
    /// The header values from services that are accepted (never the empty
    /// text).
    inside: Re,
}

/// The guard of `header_match_from(pattern, callee, callers)`.
pub fn guard_from(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Guard {
    from_callers(pattern, callee, callers)
}

/// The header values that every guard accepts (the values sent by
/// services: whether every guard accepts the request from outside is the
/// conjunction of their `HeaderMatch::absent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intersection {
    /// No header value: the guards never hold together.
    Empty,
    /// A regex (whole-value match) for exactly those values.
    Regex(String),
    /// The automaton of the intersection has more than `MAX_STATES` states,
    /// or its regex more than `MAX_REGEX_NODES` nodes.
    TooLarge,
}

/// Most automaton states `intersection` builds before giving up.
pub const MAX_STATES: usize = 256;

/// The intersection of the guards' languages, as one regex: RE2 has no
/// `&`, so the product automaton of the guards is built and written back
/// as a regular expression (state elimination).
///
/// Services are letters. The guards name finitely many services; every
/// other service behaves like the empty name `""` (it matches `.` and
/// every `!(..)`, and no name), so the alphabet is those names plus `""`.
/// States are tuples of right derivatives (canonical: alternatives sorted),
/// so the automaton reads a header from its end, and the regex it yields is
/// reversed at the end.
pub fn intersection(guards: &[&Guard]) -> Intersection {
    let mut start: Vec<Re> = guards.iter().map(|g| canonical(&g.inside)).collect();
    if start.contains(&Re::Nothing) {
        return Intersection::Empty;
    }
    // A guard that accepts every header adds nothing to the intersection;
    // one guard left is its own regex, with no automaton to build.
    let everything = star(Re::Any);
    start.retain(|r| *r != everything);
    start.dedup();
    match start.as_slice() {
        [] => return Intersection::Regex(format!("(?:/{LABEL_CHAR}+)*")),
        [only] => {
            return match text(only) {
                Some(re) => Intersection::Regex(re),
                None => Intersection::Empty,
            };
        }
        _ => {}
    }
    let mut named = std::collections::BTreeSet::new();
    for g in guards {
        names(&g.inside, &mut named);
    }
    let mut letters: Vec<&str> = named.iter().map(String::as_str).collect();
    letters.push("");
    let mut states = vec![start.clone()];
    let mut index = std::collections::BTreeMap::from([(start, 0usize)]);
    // Per state, per target: the letters that lead there.
    let mut edges: Vec<std::collections::BTreeMap<usize, Vec<&str>>> = Vec::new();
    let mut i = 0;
    while i < states.len() {
        let mut out: std::collections::BTreeMap<usize, Vec<&str>> = std::collections::BTreeMap::new();
        for &a in &letters {
            let next: Vec<Re> = states[i].iter().map(|r| canonical(&derive(r, a))).collect();
            if next.contains(&Re::Nothing) {
                continue;
            }
            let j = match index.get(&next) {
                Some(&j) => j,
                None => {
                    if states.len() >= MAX_STATES {
                        return Intersection::TooLarge;
                    }
                    index.insert(next.clone(), states.len());
                    states.push(next);
                    states.len() - 1
                }
            };
            out.entry(j).or_default().push(a);
        }
        edges.push(out);
        i += 1;
    }
    // Generalised automaton: states 0..n, a new start n and end n + 1.
    let n = states.len();
    let mut g: std::collections::BTreeMap<(usize, usize), Re> = std::collections::BTreeMap::new();
    for (p, out) in edges.iter().enumerate() {
        for (&q, ls) in out {
            g.insert((p, q), letter_set(ls, &named));
        }
    }
    g.insert((n, 0), Re::Empty);
    for (p, st) in states.iter().enumerate() {
        if st.iter().all(nullable) {
            g.insert((p, n + 1), Re::Empty);
        }
    }
    // Eliminate first the states with the fewest paths through them.
    let mut left: Vec<usize> = (0..n).collect();
    while !left.is_empty() {
        let degree = |k: usize| {
            let ins = g.keys().filter(|(p, q)| *q == k && *p != k).count();
            let outs = g.keys().filter(|(p, q)| *p == k && *q != k).count();
            ins * outs
        };
        let Some(pos) = (0..left.len()).min_by_key(|&i| (degree(left[i]), left[i])) else {
            break;
        };
        let k = left.swap_remove(pos);
        let looped = g.remove(&(k, k)).map(star).unwrap_or(Re::Empty);
        let ins: Vec<(usize, Re)> = g
            .iter()
            .filter(|((_, q), _)| *q == k)
            .map(|((p, _), r)| (*p, r.clone()))
            .collect();
        let outs: Vec<(usize, Re)> = g
            .iter()
            .filter(|((p, _), _)| *p == k)
            .map(|((_, q), r)| (*q, r.clone()))
            .collect();
        g.retain(|(p, q), _| *p != k && *q != k);
        for (p, rin) in &ins {
            for (q, rout) in &outs {
                let through = cat(vec![rin.clone(), looped.clone(), rout.clone()]);
                let e = g.entry((*p, *q)).or_insert(Re::Nothing);
                *e = alt(vec![e.clone(), through]);
            }
        }
        // State elimination can grow the regex exponentially: give up early
        // rather than emit (or spend time on) a regex no proxy should run.
        let mut budget = MAX_REGEX_NODES;
        if g.values().any(|r| !within(r, &mut budget)) {
            return Intersection::TooLarge;
        }
    }
    match g.remove(&(n, n + 1)).and_then(|r| text(&reverse(&r))) {
        None => Intersection::Empty,
        Some(re) => Intersection::Regex(re),
    }
}

/// Most regex nodes the intersection may have, all edges together.
pub const MAX_REGEX_NODES: usize = 2048;

/// Whether `r` has at most `budget` nodes (spending the budget as it counts).
fn within(r: &Re, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match r {
        Re::Nothing | Re::Empty | Re::Any | Re::Service(_) | Re::NoneOf(_) => true,
        Re::Cat(rs) | Re::Alt(rs) => rs.iter().all(|x| within(x, budget)),
        Re::Star(x) => within(x, budget),
    }
}

/// The letters `ls` (names; `""` for every other service) as one atom.
fn letter_set(ls: &[&str], named: &std::collections::BTreeSet<String>) -> Re {
    if ls.contains(&"") {
        let excluded: Vec<String> = named.iter().filter(|n| !ls.contains(&n.as_str())).cloned().collect();
        if excluded.is_empty() {
            Re::Any
        } else {
            Re::NoneOf(excluded)
        }
    } else {
        alt(ls.iter().map(|n| Re::Service((*n).to_string())).collect())
    }
}

fn names(r: &Re, out: &mut std::collections::BTreeSet<String>) {
    match r {
        Re::Nothing | Re::Empty | Re::Any => {}
        Re::Service(n) => {
            out.insert(n.clone());
        }
        Re::NoneOf(ns) => out.extend(ns.iter().cloned()),
        Re::Cat(rs) | Re::Alt(rs) => rs.iter().for_each(|x| names(x, out)),
        Re::Star(x) => names(x, out),
    }
}

/// Alternatives sorted (and so deduplicated by `alt`): equal languages
/// built in different orders get one state.
fn canonical(r: &Re) -> Re {
    match r {
        Re::Cat(rs) => cat(rs.iter().map(canonical).collect()),
        Re::Alt(rs) => {
            let mut arms: Vec<Re> = rs.iter().map(canonical).collect();
            arms.sort();
            alt(arms)
        }
        Re::Star(x) => star(canonical(x)),
        Re::NoneOf(ns) => {
            let mut ns = ns.clone();
            ns.sort();
            ns.dedup();
            Re::NoneOf(ns)
        }
        other => other.clone(),
    }
}

/// The regex of the reversed words.
fn reverse(r: &Re) -> Re {
    match r {
        Re::Cat(rs) => cat(rs.iter().rev().map(reverse).collect()),
        Re::Alt(rs) => alt(rs.iter().map(reverse).collect()),
        Re::Star(x) => star(reverse(x)),
        other => other.clone(),
    }
}

/// Most exact header values a finite context guard is spelt out into.
pub const MAX_VALUES: usize = 32;

fn from_callers(pattern: &Pattern, callee: &str, callers: &[Option<&str>]) -> Guard {
    let into = derive(&from_pattern(pattern), callee);
    let mut outside = false;
    let mut arms = Vec::new();
    for caller in callers {
        match caller {
            None => outside |= nullable(&into),
            Some(u) => arms.push(cat(vec![derive(&into, u), Re::Service((*u).to_string())])),
        }
    }
    Guard {
        outside,
        inside: alt(arms),
    }
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

    fn guard(p: &str, callee: &str, callers: &[Option<&str>]) -> Guard {
        let (toks, _) = lex(0, &format!("{p:?}"));
        let Some((_, Tok::Str(lit), _)) = toks.into_iter().next() else {
            panic!("not a string literal: {p}")
        };
        guard_from(&parse_pattern(&lit).unwrap(), callee, callers)
    }

    #[test]
    fn intersections() {
        let a = guard("f .* c", "c", &[Some("f")]);
        let b = guard("f c", "c", &[Some("f")]);
        let x = guard("x c", "c", &[Some("f")]);
        assert_eq!(intersection(&[&a, &b]), Intersection::Regex("/f".into()));
        assert_eq!(intersection(&[&b, &x]), Intersection::Empty);
        let Intersection::Regex(re) = intersection(&[&a, &guard("(!g)* c", "c", &[Some("f")])]) else {
            panic!()
        };
        let full = regex_automata::meta::Regex::new(&format!("^(?:{re})$")).unwrap();
        assert!(full.is_match("/f") && full.is_match("/f/h/f") && !full.is_match("/f/g/f"));
    }

    fn matched(p: &str, callee: &str, callers: &[Option<&str>]) -> Option<HeaderMatch> {
        let (toks, _) = lex(0, &format!("{p:?}"));
        let Some((_, Tok::Str(lit), _)) = toks.into_iter().next() else {
            panic!("not a string literal: {p}")
        };
        header_match_from(&parse_pattern(&lit).unwrap(), callee, callers)
    }

    /// The request from outside is matched by the absence of the header,
    /// never by an empty regex.
    #[test]
    fn outside_is_the_absent_header() {
        let m = |absent, regex: Option<&str>| {
            Some(HeaderMatch {
                absent,
                regex: regex.map(str::to_string),
            })
        };
        assert_eq!(matched("loop", "loop", &[None]), m(true, None));
        assert_eq!(matched("loop", "loop", &[None, Some("api")]), m(true, None));
        assert_eq!(
            matched("(loop | api loop)", "loop", &[None, Some("api")]),
            m(true, Some("/api"))
        );
        assert_eq!(
            matched("api loop", "loop", &[None, Some("api")]),
            m(false, Some("/api"))
        );
        assert_eq!(matched("api loop", "loop", &[None]), None);
        assert_eq!(matched(".*", "loop", &[None]), m(true, None));
        assert_eq!(matched("loop loop", "loop", &[Some("loop")]), m(false, Some("/loop")));
        // The guards of `loop` alone intersect to nothing from services.
        let (a, b) = (guard("loop", "loop", &[None]), guard(".* loop", "loop", &[None]));
        assert_eq!(intersection(&[&a, &b]), Intersection::Empty);
    }

    #[test]
    fn finite_guards_are_spelt_out() {
        assert_eq!(values("a b c", "c", &[Some("b")]), Some(vec!["/a/b".to_string()]));
        assert_eq!(
            values("a (b | x b) c", "c", &[Some("b")]),
            Some(vec!["/a/b".to_string(), "/a/x/b".to_string()])
        );
        // From outside: no header, so no header value.
        assert_eq!(values("a", "a", &[None]), Some(Vec::new()));
        assert_eq!(values("a .* c", "c", &[Some("b")]), None);
        // `!x` is the caller itself: finite.
        assert_eq!(values("a !x c", "c", &[Some("b")]), Some(vec!["/a/b".to_string()]));
        assert_eq!(values("a !x* b c", "c", &[Some("b")]), None);
        assert_eq!(values("a b c", "c", &[Some("x")]), Some(Vec::new()));
    }
}
