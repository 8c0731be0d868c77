//! Lowers a policy body to guarded rules that route tables can express:
//! each rule is a conjunction of tests on the request (a header, the path,
//! the method equal or not equal to a literal) and the actions taken when it
//! holds. The rules of one body are mutually exclusive: they are the body's
//! execution paths, with `if`/`else if`/`else` conditions put in
//! disjunctive normal form (`!` pushed to the tests, `||` split into rules).
//!
//! A missing header reads as the empty string, so `GetHeader(k) != "x"`
//! holds when `k` is absent; the emitters match headers with
//! `treat_missing_header_as_empty` to keep that meaning.

use crate::diag::{Code, Diagnostic};
use crate::source::Span;
use crate::syntax::ast::{BinOp, Block, Call, Expr, Stmt};

/// What a test reads from the request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A request header (name lowercased: HTTP header names are case-insensitive).
    Header(String),
    Path,
    Method,
    /// The response status (response policies only): not a route match, it
    /// is tested in the Lua fallback when the response arrives.
    Status,
}

/// `subject == value` (or `!=` when `equal` is false).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Test {
    pub subject: Subject,
    pub value: String,
    pub equal: bool,
}

/// A header value: a literal, or the value of a request header.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Literal(String),
    RequestHeader(String),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    SetHeader(String, Value),
    RemoveHeader(String),
    RouteToVersion(String),
    Deny(u32),
    RateLimit(u64),
    SetResponseHeader(String, Value),
}

/// One execution path: when every test holds, the actions run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub tests: Vec<Test>,
    pub actions: Vec<Action>,
}

/// The rules of a body, or why it cannot be expressed natively.
pub fn lower(body: &Block, act: &str) -> Result<Vec<Rule>, Diagnostic> {
    let mut paths = vec![Rule {
        tests: Vec::new(),
        actions: Vec::new(),
    }];
    block(body, act, &mut paths)?;
    // Paths with contradictory tests (`k == "a"` and `k == "b"`) never run.
    paths.retain(|r| consistent(&r.tests));
    Ok(paths)
}

fn block(b: &Block, act: &str, paths: &mut Vec<Rule>) -> Result<(), Diagnostic> {
    for s in &b.stmts {
        match s {
            Stmt::Call(c) => {
                if let Some(a) = action(c, act)? {
                    for p in paths.iter_mut() {
                        p.actions.push(a.clone());
                    }
                }
            }
            Stmt::If {
                branches, otherwise, ..
            } => {
                let mut out = Vec::new();
                // `not_before`: the DNF of "no earlier branch held".
                let mut not_before: Vec<Vec<Test>> = vec![Vec::new()];
                for (cond, then) in branches {
                    let yes = dnf(cond, true)?;
                    let no = dnf(cond, false)?;
                    let guard = and(&not_before, &yes);
                    let mut taken = extend(paths, &guard);
                    block(then, act, &mut taken)?;
                    out.extend(taken);
                    not_before = and(&not_before, &no);
                }
                let mut rest = extend(paths, &not_before);
                if let Some(b) = otherwise {
                    block(b, act, &mut rest)?;
                }
                out.extend(rest);
                *paths = out;
                paths.retain(|r| consistent(&r.tests));
                if paths.len() > MAX_RULES {
                    return Err(too_complex(b.span));
                }
            }
        }
    }
    Ok(())
}

/// More execution paths than this in one body is a sign of a condition that
/// route tables express badly; it is reported rather than emitted.
const MAX_RULES: usize = 64;

fn too_complex(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::NotExpressible,
        format!("this body has more than {MAX_RULES} execution paths"),
    )
    .at(span, "too many combinations of conditions to emit as routes")
    .with_help("split the policy, or simplify its conditions")
}

fn extend(paths: &[Rule], guard: &[Vec<Test>]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in paths {
        for term in guard {
            let mut tests = p.tests.clone();
            tests.extend(term.iter().cloned());
            tests.sort();
            tests.dedup();
            out.push(Rule {
                tests,
                actions: p.actions.clone(),
            });
        }
    }
    out
}

fn and(a: &[Vec<Test>], b: &[Vec<Test>]) -> Vec<Vec<Test>> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let mut t: Vec<Test> = x.iter().chain(y).cloned().collect();
            t.sort();
            t.dedup();
            if consistent(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// No subject is required to equal two values, or to equal and differ from one.
pub fn consistent(tests: &[Test]) -> bool {
    tests.iter().all(|a| {
        tests.iter().all(|b| {
            a.subject != b.subject
                || match (a.equal, b.equal) {
                    (true, true) => a.value == b.value,
                    (true, false) | (false, true) => a.value != b.value,
                    (false, false) => true,
                }
        })
    })
}

/// The condition (or its negation when `positive` is false) in DNF.
fn dnf(e: &Expr, positive: bool) -> Result<Vec<Vec<Test>>, Diagnostic> {
    match e {
        Expr::Paren(inner, _) => dnf(inner, positive),
        Expr::Not(inner, _) => dnf(inner, !positive),
        Expr::Bool(b, _) => Ok(if *b == positive { vec![Vec::new()] } else { Vec::new() }),
        Expr::Binary {
            op: op @ (BinOp::And | BinOp::Or),
            lhs,
            rhs,
            ..
        } => {
            // De Morgan: a negated `&&` is an `||` of negations.
            let conj = (*op == BinOp::And) == positive;
            let l = dnf(lhs, positive)?;
            let r = dnf(rhs, positive)?;
            if conj {
                Ok(and(&l, &r))
            } else {
                Ok(l.into_iter().chain(r).collect())
            }
        }
        Expr::Binary {
            op: op @ (BinOp::Eq | BinOp::Ne),
            lhs,
            rhs,
            span,
        } => {
            let equal = (*op == BinOp::Eq) == positive;
            let (getter, literal) = match (&**lhs, &**rhs) {
                (Expr::Call(c), other) | (other, Expr::Call(c)) if literal_string(other).is_some() => {
                    (c, literal_string(other))
                }
                (Expr::Call(c), Expr::Int(n, _)) | (Expr::Int(n, _), Expr::Call(c)) if c.method.name == "GetStatus" => {
                    (c, Some(n.to_string()))
                }
                _ => {
                    return Err(not_expressible(
                        *span,
                        "only a getter compared with a string literal can become a route match",
                    ));
                }
            };
            let subject = match (getter.method.name.as_str(), getter.args.first()) {
                ("GetPath", _) => Subject::Path,
                ("GetMethod", _) => Subject::Method,
                ("GetStatus", _) => Subject::Status,
                ("GetHeader", Some(Expr::Str(k))) => Subject::Header(read_header_name(&k.value, k.span)?),
                _ => return Err(not_expressible(getter.span, "this getter has no route-match form")),
            };
            Ok(vec![vec![Test {
                subject,
                value: literal.unwrap_or_default(),
                equal,
            }]])
        }
        other => Err(not_expressible(other.span(), "this condition has no route-match form")),
    }
}

fn literal_string(e: &Expr) -> Option<String> {
    match e {
        Expr::Str(s) => Some(s.value.clone()),
        Expr::Paren(inner, _) => literal_string(inner),
        _ => None,
    }
}

fn not_expressible(span: Span, why: &str) -> Diagnostic {
    Diagnostic::new(
        Code::NotExpressible,
        "this condition cannot be emitted as dataplane configuration",
    )
    .at(span, why)
    .with_help(
        "compare `GetHeader(..)`, `GetPath()` or `GetMethod()` with a string literal, combined with `&&`, `||` and `!`",
    )
}

fn string_arg(c: &Call, i: usize) -> Result<Value, Diagnostic> {
    match c.args.get(i) {
        Some(Expr::Str(s)) => Ok(Value::Literal(s.value.clone())),
        Some(Expr::Call(g)) if g.method.name == "GetPath" => Ok(Value::RequestHeader(":path".into())),
        Some(Expr::Call(g)) if g.method.name == "GetMethod" => Ok(Value::RequestHeader(":method".into())),
        Some(Expr::Call(g)) if g.method.name == "GetHeader" => match g.args.first() {
            Some(Expr::Str(k)) => Ok(Value::RequestHeader(read_header_name(&k.value, k.span)?)),
            _ => Err(not_expressible(g.span, "the header name must be a string literal")),
        },
        Some(other) => Err(not_expressible(
            other.span(),
            "only a string literal or `GetHeader(\"name\")` can be emitted here",
        )),
        None => Err(not_expressible(c.span, "missing argument")),
    }
}

fn literal_arg(c: &Call, i: usize) -> Result<String, Diagnostic> {
    match string_arg(c, i)? {
        Value::Literal(s) => Ok(s),
        Value::RequestHeader(_) => Err(not_expressible(c.span, "this argument must be a string literal")),
    }
}

fn int_arg(c: &Call, i: usize, min: i64, max: i64) -> Result<i64, Diagnostic> {
    match c.args.get(i) {
        Some(Expr::Int(n, span)) if (min..=max).contains(n) => {
            let _ = span;
            Ok(*n)
        }
        Some(Expr::Int(n, span)) => Err(Diagnostic::new(
            Code::NotExpressible,
            format!("`{n}` is out of range for `{}`", c.method.name),
        )
        .at(*span, format!("must be between {min} and {max}"))),
        Some(other) => Err(not_expressible(
            other.span(),
            "this argument must be an integer literal",
        )),
        None => Err(not_expressible(c.span, "missing argument")),
    }
}

/// An HTTP header name: a non-empty token. Route matches and `%REQ(..)%`
/// need one (Envoy rejects an empty matcher name, and a name with a space,
/// `(` or `)` breaks the command), and no request ever carries another.
fn token_name(name: &str, span: Span) -> Result<String, Diagnostic> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Diagnostic::new(
            Code::NotExpressible,
            if name.is_empty() {
                "the empty string is not a valid HTTP header name".to_string()
            } else {
                format!("`{}` is not a valid HTTP header name", name.escape_debug())
            },
        )
        .at(
            span,
            "header names are HTTP tokens: letters, digits and !#$%&'*+-.^_`|~",
        )
        .with_help("use a name such as `x-user-group`"));
    }
    Ok(name.to_ascii_lowercase())
}

/// The header that `GetHeader` reads, lowercased.
fn read_header_name(name: &str, span: Span) -> Result<String, Diagnostic> {
    token_name(name, span)
}

/// The header that `SetHeader` or `RemoveHeader` writes, lowercased. Envoy
/// refuses to add or remove `host` (and `:`-prefixed pseudo-headers, which
/// are not tokens) in `request_headers_to_add`, `response_headers_to_add`
/// and their `_to_remove` lists, so such a policy is not expressible; nor
/// is one that writes the context header.
fn header_name(c: &Call, i: usize) -> Result<String, Diagnostic> {
    let span = c.args.get(i).map(Expr::span).unwrap_or(c.span);
    let name = token_name(&literal_arg(c, i)?, span)?;
    if name == "host" {
        return Err(Diagnostic::new(
            Code::NotExpressible,
            format!("`{}` cannot rewrite the `host` header", c.method.name),
        )
        .at(span, "Envoy does not let a sidecar add, set or remove `host`")
        .with_help("to send the request elsewhere use `RouteToVersion`; otherwise use another header"));
    }
    // The run-time context is what placement and every sidecar's matching
    // rely on: a policy that rewrote it could forge the chain of services.
    if name == crate::analysis::encoding::CONTEXT_HEADER {
        return Err(Diagnostic::new(
            Code::NotExpressible,
            format!("`{}` cannot rewrite the context header `{name}`", c.method.name),
        )
        .at(span, "only the context add-on writes this header")
        .with_help("contexts follow the chain of services a request went through; use another header"));
    }
    Ok(name)
}

fn header_value(c: &Call, i: usize) -> Result<Value, Diagnostic> {
    let v = string_arg(c, i)?;
    if let Value::Literal(s) = &v
        && s.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0'))
    {
        let span = c.args.get(i).map(Expr::span).unwrap_or(c.span);
        return Err(Diagnostic::new(
            Code::NotExpressible,
            "a header value cannot contain a line break or NUL",
        )
        .at(span, "HTTP forbids these characters in header values")
        .with_help("encode the value, for example with percent-encoding"));
    }
    Ok(v)
}

fn action(c: &Call, act: &str) -> Result<Option<Action>, Diagnostic> {
    let response = act == "RPCResponse";
    Ok(Some(match c.method.name.as_str() {
        "SetHeader" if response => Action::SetResponseHeader(header_name(c, 0)?, header_value(c, 1)?),
        "SetHeader" => Action::SetHeader(header_name(c, 0)?, header_value(c, 1)?),
        "RemoveHeader" => Action::RemoveHeader(header_name(c, 0)?),
        "RouteToVersion" => Action::RouteToVersion(literal_arg(c, 0)?),
        "Deny" => Action::Deny(int_arg(c, 0, 200, 599)? as u32),
        "RateLimit" => Action::RateLimit(int_arg(c, 0, 1, 1_000_000_000)? as u64),
        // Getters called as statements do nothing.
        _ => return Ok(None),
    }))
}
