//! Cilium: one CiliumNetworkPolicy (CNP) per service whose sidecar is
//! `cilium-proxy`, written to `cilium/ciliumnetworkpolicy-<service>.yaml` and
//! named after the service, with the label `app.kubernetes.io/managed-by:
//! copperc` and the annotation `copperc.dev/policies` (the policies it
//! enforces, sorted, comma-separated). This module owns the translation of
//! the policies placed on Cilium into L7 HTTP rules, and every check that
//! the translation is exact: what Cilium cannot express is a CU0601 error,
//! never a policy with another meaning.
//!
//! # Cilium's model (CNP schema, cilium/cilium `pkg/envoy`, cilium/proxy
//! `cilium/network_policy.cc`)
//!
//! - An endpoint selected by a policy with `ingress` (`egress`) rules is in
//!   default-deny mode for that direction: only flows some rule allows pass.
//! - `toPorts[].rules.http` is an allow-list for the selected peers on that
//!   port: a request that no rule matches is answered 403. A rule matches
//!   when all its fields match: `method` and `path` are regexes (RE2, whole
//!   value; `path` sees the query string too), `headerMatches` without
//!   `mismatch` are exact header values (there is no regex header match,
//!   cilium/cilium#43914). A `headerMatches` entry with `mismatch: REPLACE`
//!   sets the header when its value differs, with `mismatch: DELETE` removes
//!   it when its value differs; such entries never make a rule fail. When
//!   any rule has such actions, the proxy evaluates every rule in an order
//!   of its own choosing, runs the actions of each one that matches, and
//!   allows the request if any rule matched.
//! - L7 rules of different policies and selectors that cover the same peer
//!   and port are a union. A rule that allows the same peer and port (or
//!   every port) without L7 rules adds an allow-all L7 rule, and with
//!   `enableDefaultDeny: false` Cilium adds an allow-all L7 rule by itself
//!   (`pkg/policy/l4.go`, cilium/cilium#38676): either would let through
//!   every request a policy denies.
//!
//! # The construction
//!
//! Requests are grouped into *classes*, each enforced by one set of HTTP
//! rules under one L3 selector:
//!
//! - ingress, one class per caller `u` of the service `s` with policies
//!   enforced at `s` on `u -> s`: `fromEndpoints` selecting `app: u`, on
//!   `s`'s application port;
//! - ingress from outside the mesh, when `s` is an entry point that no
//!   service of the graph calls: `fromEntities: [all]` (every request to `s`
//!   then comes from outside and has the context `s`); the context header
//!   is removed from these requests, as the Envoy sidecar of an entry point
//!   does. If `s` is also called inside the mesh, Cilium cannot tell the
//!   requests from outside apart (only by the absence of the context
//!   header, which it cannot match): CU0601;
//! - egress, one class per callee `v` with policies enforced at `s` on
//!   `s -> v`: `toEndpoints` selecting `app: v`, on `v`'s application port.
//!
//! The rest of the traffic must keep flowing, because default deny is on
//! (and must be: see above). So the policy also allows, without L7 rules,
//! every other peer on the filtered port (`matchExpressions`: `app NotIn`
//! the filtered services, plus every reserved entity: world, host, ...) and
//! every peer on every other port (`fromEntities`/`toEntities: [all]` with
//! port ranges that leave the filtered ports out, and the filtered port
//! numbers for UDP and SCTP). These selectors never overlap a filtered
//! class, so no allow-all can leak into its rules. Peer selectors name the
//! namespace label key (`k8s:io.kubernetes.pod.namespace Exists`) so that
//! Cilium does not narrow them to the policy's namespace: the per-service
//! selectors and the complement then cover every pod exactly once. ICMP is
//! not re-allowed.
//!
//! Within a class, copperc computes the exact set of requests to allow and
//! the header rewrites:
//!
//! 1. **Context.** Each policy applies to all requests of the class, to
//!    none, or to some: that depends on the context, which arrives in the
//!    `x-copper-context` header. The first two cases need no header match
//!    (found with the policy's DFA over the reachable (service, state)
//!    pairs, so they work on cyclic graphs). In the third, Cilium can only
//!    compare exact values, so copperc lists every context of the caller
//!    (`caller_contexts`): finite only when no cycle of calls lies on a path
//!    from an entry point to the caller, and at most `MAX_CONTEXTS`;
//!    otherwise CU0601. The contexts are then grouped by the set of policies
//!    that apply, and each group's rules carry one exact context value each.
//! 2. **Allowed requests.** A request is denied when some applying policy
//!    takes a path with `Deny(403)` (another status is CU0601: Cilium always
//!    answers 403). The allowed set is the negation of the denying paths'
//!    conditions, in disjunctive normal form; every term must be a
//!    conjunction of positive tests (header equal to a non-empty literal,
//!    path or method equal to a literal), because Cilium cannot say
//!    "header absent or different" nor "path different" in an allow-list.
//!    A term that is not is CU0601. So `if m != "GET" { Deny(403) }` becomes
//!    the rule `method: ^GET$`, and a policy that never denies becomes one
//!    rule that allows everything.
//! 3. **Rewrites.** `SetHeader(k, "v")` is `headerMatches {name: k, value:
//!    v, mismatch: REPLACE}`; `RemoveHeader(k)` is `{name: k, value: "\r",
//!    mismatch: DELETE}`: no HTTP header value contains a carriage return, so
//!    the header is always removed. For each policy, header and outcome,
//!    the rules are the conditions of the paths that lead to the outcome
//!    when they are positive, else the negation of the paths that lead
//!    elsewhere (so an unconditional rewrite after an `if` stays one rule);
//!    neither positive is CU0601. A rule that rewrites also allows what it
//!    matches, so where it could meet a denied request it is intersected
//!    with each allowed term. The proxy runs rules in its own order, and a
//!    rule sees the headers that earlier rules rewrote. The allow decision
//!    does not depend on that order (every rewriting rule lies within the
//!    allowed set, and nothing is rewritten before some rule matched), but
//!    rewrites do: a header that one rewrite changes must not be tested by
//!    the rules of another rewrite, and two outcomes for one header must
//!    never both apply (CU0601 otherwise). Values copied from the request
//!    (`SetHeader(k, req.GetHeader(h))`) have no Cilium form (CU0601).
//!
//! tests/emit_cilium.rs evaluates the emitted rules the way the proxy does,
//! in both rule orders, against the policies' meaning on every request of
//! small scenarios.
//!
//! A class whose every request is denied gets the single rule `method:
//! ^$`, which no request matches (an empty list would allow everything).
//!
//! # Assumptions (see also docs/language.md, "Cilium output")
//!
//! - The pods of each service carry the label `app: <service name>`, and no
//!   other pod of the cluster carries one of these values.
//! - The application port of the graph (`ports.<service>.app`, default 8080)
//!   is the container port the pods listen on; requests are plaintext HTTP.
//! - copperc owns the policies of these pods: a CNP allow-list is a union,
//!   so another policy that allows the same flows without L7 rules voids
//!   the denies, and one that restricts them is widened by the catch-all.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::rules::{Action, Rule, Subject, Test, Value as HeaderValue};
use super::{EmitInput, OutFile, yaml};
use crate::analysis::automaton::{ServiceDfa, State};
use crate::analysis::encoding::{CONTEXT_HEADER, encode_context};
use crate::analysis::matched::Adjacency;
use crate::check::model::Policy;
use crate::diag::{Code, Diagnostic};
use crate::graph::{CallGraph, ServiceId};
use crate::place::Side;
use crate::source::Span;
use crate::syntax::ast::{Block, Call, Expr, Stmt};

/// Most contexts of one caller that copperc spells out as exact header
/// values (each becomes at least one HTTP rule).
pub const MAX_CONTEXTS: usize = 64;
/// Most HTTP rules in one class (one selector and port).
pub const MAX_HTTP_RULES: usize = 256;
/// Most terms of an allowed set while it is put in normal form.
const MAX_TERMS: usize = 256;

/// The only status Cilium's proxy answers a denied request with.
const CILIUM_DENY_STATUS: u32 = 403;
/// The label that identifies a service's pods.
const APP_LABEL: &str = "app";
/// The label key that keeps a peer selector cluster-wide.
const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";
/// Every reserved identity that is not a pod (`cluster` and `all` would
/// overlap the per-service selectors).
const RESERVED_ENTITIES: [&str; 8] = [
    "health",
    "host",
    "ingress",
    "init",
    "kube-apiserver",
    "remote-node",
    "unmanaged",
    "world",
];
/// The `headerMatches` value of `RemoveHeader`: no header value can contain
/// a carriage return (Envoy rejects one), so the `DELETE` mismatch action
/// always fires.
const REMOVE_SENTINEL: &str = "\r";

/// Whether a dataplane's sidecar is Cilium's proxy (the rest are Envoy-based).
pub fn is_cilium_dataplane(name: &str) -> bool {
    !super::envoy::is_envoy_dataplane(name)
}

/// Why the contexts of a caller cannot be listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlistable {
    /// These services call each other in a cycle (in call order) on some
    /// path from an entry point to the caller: infinitely many contexts.
    Cycle(Vec<ServiceId>),
    /// More than this many contexts.
    TooMany(usize),
}

/// Every context of a request that `caller` handles, i.e. every walk of the
/// call graph from an entry point to `caller` (docs/semantics.md,
/// "Contexts"), sorted by its encoding; or why they cannot be listed.
/// Empty when no entry point reaches `caller`.
pub fn caller_contexts(graph: &CallGraph, caller: ServiceId, cap: usize) -> Result<Vec<Vec<ServiceId>>, Unlistable> {
    let n = graph.services.len();
    let mut preds: Vec<Vec<ServiceId>> = vec![Vec::new(); n];
    let mut succs: Vec<Vec<ServiceId>> = vec![Vec::new(); n];
    for c in &graph.calls {
        preds[c.to].push(c.from);
        succs[c.from].push(c.to);
    }
    // Services that some entry point reaches, and of those, the ones that
    // reach `caller`: the services a context of `caller` can pass through.
    let mut reached = vec![false; n];
    let mut stack: Vec<ServiceId> = graph.entrypoints.clone();
    while let Some(s) = stack.pop() {
        if !std::mem::replace(&mut reached[s], true) {
            stack.extend(succs[s].iter().copied());
        }
    }
    if caller >= n || !reached[caller] {
        return Ok(Vec::new());
    }
    let mut relevant = vec![false; n];
    stack.push(caller);
    while let Some(s) = stack.pop() {
        if reached[s] && !std::mem::replace(&mut relevant[s], true) {
            stack.extend(preds[s].iter().copied());
        }
    }
    if let Some(cycle) = find_cycle(&succs, &relevant) {
        return Err(Unlistable::Cycle(cycle));
    }
    // Acyclic: walk backwards from the caller; every entry point on the way
    // starts one context.
    let mut out: Vec<Vec<ServiceId>> = Vec::new();
    let mut path = vec![caller];
    backwards(graph, &preds, &relevant, &mut path, &mut out, cap)?;
    out.sort_by_key(|c| encode_context(c.iter().map(|&s| graph.services[s].name.as_str())));
    Ok(out)
}

fn backwards(
    graph: &CallGraph,
    preds: &[Vec<ServiceId>],
    relevant: &[bool],
    path: &mut Vec<ServiceId>,
    out: &mut Vec<Vec<ServiceId>>,
    cap: usize,
) -> Result<(), Unlistable> {
    let Some(&first) = path.last() else {
        return Ok(());
    };
    if graph.entrypoints.contains(&first) {
        if out.len() == cap {
            return Err(Unlistable::TooMany(cap));
        }
        out.push(path.iter().rev().copied().collect());
    }
    let mut before: Vec<ServiceId> = preds[first].iter().copied().filter(|&p| relevant[p]).collect();
    before.sort_unstable();
    before.dedup();
    for p in before {
        path.push(p);
        backwards(graph, preds, relevant, path, out, cap)?;
        path.pop();
    }
    Ok(())
}

/// A cycle among the `keep` services, in call order, if there is one.
fn find_cycle(succs: &[Vec<ServiceId>], keep: &[bool]) -> Option<Vec<ServiceId>> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut color = vec![0u8; succs.len()];
    for root in 0..succs.len() {
        if !keep[root] || color[root] != 0 {
            continue;
        }
        let mut path: Vec<ServiceId> = vec![root];
        let mut next: Vec<usize> = vec![0];
        color[root] = 1;
        while let (Some(&s), Some(k)) = (path.last(), next.last_mut()) {
            let Some(&t) = succs[s].get(*k) else {
                color[s] = 2;
                path.pop();
                next.pop();
                continue;
            };
            *k += 1;
            if !keep[t] {
                continue;
            }
            match color[t] {
                0 => {
                    color[t] = 1;
                    path.push(t);
                    next.push(0);
                }
                1 => {
                    let start = path.iter().position(|&x| x == t).unwrap_or(0);
                    return Some(path[start..].to_vec());
                }
                _ => {}
            }
        }
    }
    None
}

/// The `x-copper-context` values of requests sent by `caller`: the
/// encodings of `caller_contexts`.
pub fn context_header_values(graph: &CallGraph, caller: ServiceId, cap: usize) -> Result<Vec<String>, Unlistable> {
    Ok(caller_contexts(graph, caller, cap)?
        .iter()
        .map(|c| encode_context(c.iter().map(|&s| graph.services[s].name.as_str())))
        .collect())
}

/// A positive test that a Cilium HTTP rule can make.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cond {
    Method(String),
    Path(String),
    Header(String, String),
}

impl Cond {
    fn clashes(&self, other: &Cond) -> bool {
        match (self, other) {
            (Cond::Method(a), Cond::Method(b)) | (Cond::Path(a), Cond::Path(b)) => a != b,
            (Cond::Header(k, a), Cond::Header(l, b)) => k == l && a != b,
            _ => false,
        }
    }
}

fn consistent(conds: &BTreeSet<Cond>) -> bool {
    conds.iter().all(|a| conds.iter().all(|b| !a.clashes(b)))
}

/// A header rewrite.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Set(String),
    Remove,
}

/// One Cilium HTTP rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct HttpRule {
    /// Exact value of the context header, if the rule tests it.
    context: Option<String>,
    conds: BTreeSet<Cond>,
    ops: BTreeMap<String, Op>,
}

/// Why a set of tests has no positive Cilium form.
enum NotPositive {
    /// A `!=` test (or a negated `==`) with no `==` on the same subject.
    Negative(Test),
    /// `GetHeader(k) == ""` also holds when the header is absent.
    EmptyHeader(String),
    /// A path literal with `?`: `GetPath()` never contains one, but
    /// Cilium's path regex sees the query string.
    QueryInPath(String),
    /// A test on the response status.
    Status,
}

/// The positive conditions equivalent to `tests` (consistent ones): each
/// `!=` implied by an `==` on the same subject is dropped.
fn positive(tests: &[&Test]) -> Result<BTreeSet<Cond>, NotPositive> {
    let mut out = BTreeSet::new();
    for t in tests {
        let pinned = tests.iter().any(|u| u.equal && u.subject == t.subject);
        if !t.equal {
            if pinned {
                continue;
            }
            return Err(match &t.subject {
                Subject::Status => NotPositive::Status,
                _ => NotPositive::Negative((*t).clone()),
            });
        }
        out.insert(match &t.subject {
            Subject::Header(k) if t.value.is_empty() => return Err(NotPositive::EmptyHeader(k.clone())),
            Subject::Header(k) => Cond::Header(k.clone(), t.value.clone()),
            Subject::Path if t.value.contains('?') => return Err(NotPositive::QueryInPath(t.value.clone())),
            Subject::Path => Cond::Path(t.value.clone()),
            Subject::Method => Cond::Method(t.value.clone()),
            Subject::Status => return Err(NotPositive::Status),
        });
    }
    Ok(out)
}

/// `s` as a literal in an RE2 (and Go `regexp`) pattern.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `path` regex of `GetPath() == value`: the query string, which
/// `GetPath()` leaves out and Cilium's path match sees, may follow.
pub fn path_regex(value: &str) -> String {
    format!("^{}(\\?.*)?$", regex_literal(value))
}

/// The `method` regex of `GetMethod() == value`.
pub fn method_regex(value: &str) -> String {
    format!("^{}$", regex_literal(value))
}

/// Who a class's rules apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// Ingress from this service.
    Caller(ServiceId),
    /// Ingress from outside the mesh (an entry point no service calls).
    Outside,
    /// Egress to this service.
    Callee(ServiceId),
}

/// The requests of one selector and port, and the policies enforced on them.
struct Class {
    peer: Peer,
    policies: Vec<usize>,
}

/// A policy's DFA and, per service, the DFA states of the contexts that
/// end there.
type Reach = (ServiceDfa, Vec<BTreeSet<State>>);

/// Everything the classes of all services share.
struct Ctx<'a> {
    input: &'a EmitInput<'a>,
    rules: &'a [Vec<Rule>],
    adj: Adjacency,
    /// Per policy, built on first use.
    dfas: BTreeMap<usize, Option<Reach>>,
}

pub fn emit(input: &EmitInput, rules: &[Vec<Rule>]) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let mut ctx = Ctx {
        input,
        rules,
        adj: Adjacency::new(input.graph),
        dfas: BTreeMap::new(),
    };
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for (s, dp) in input.placement.sidecars.iter().enumerate() {
        if !dp.as_deref().is_some_and(is_cilium_dataplane) {
            continue;
        }
        match policy_for(&mut ctx, s) {
            Ok(Some((name, doc))) => files.push(OutFile::text(
                format!("cilium/ciliumnetworkpolicy-{name}.yaml"),
                yaml::to_yaml(&doc),
            )),
            Ok(None) => {}
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(merge_repeats(diags))
    }
}

/// One diagnostic per problem: the same problem of the same policy found
/// at several sidecars or calls becomes one, whose notes list the others.
fn merge_repeats(diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    const LISTED: usize = 3;
    let mut out: Vec<(Diagnostic, usize)> = Vec::new();
    for d in diags {
        let span = d.primary.as_ref().map(|l| l.span);
        match out
            .iter_mut()
            .find(|(m, _)| m.code == d.code && m.message == d.message && m.primary.as_ref().map(|l| l.span) == span)
        {
            Some((first, more)) => {
                *more += 1;
                if let Some(l) = d.primary.filter(|_| *more <= LISTED) {
                    first.notes.push(format!("also {}", l.message));
                }
            }
            None => out.push((d, 0)),
        }
    }
    let mut diags: Vec<Diagnostic> = out
        .into_iter()
        .map(|(d, more)| {
            if more > LISTED {
                d.with_note(format!("and {} more", more - LISTED))
            } else {
                d
            }
        })
        .collect();
    crate::diag::normalize(&mut diags);
    diags
}

/// The CNP of service `s` (its name and the object), `None` when nothing
/// is enforced there.
fn policy_for(ctx: &mut Ctx, s: ServiceId) -> Result<Option<(String, Value)>, Vec<Diagnostic>> {
    let g = ctx.input.graph;
    let name = &g.services[s].name;
    let mut ingress: BTreeMap<Option<ServiceId>, BTreeSet<usize>> = BTreeMap::new();
    let mut egress: BTreeMap<ServiceId, BTreeSet<usize>> = BTreeMap::new();
    for e in &ctx.input.placement.enforcement {
        if e.at != s {
            continue;
        }
        match e.side {
            Side::Ingress => {
                ingress.entry(e.from).or_default().insert(e.policy);
            }
            Side::Egress => {
                egress.entry(e.to).or_default().insert(e.policy);
            }
        }
    }
    let placed: BTreeSet<usize> = ingress.values().chain(egress.values()).flatten().copied().collect();
    if placed.is_empty() {
        return Ok(None);
    }
    let mut diags = Vec::new();
    for &pi in &placed {
        diags.extend(check_policy(ctx, pi, s));
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let called_inside = g.calls.iter().any(|c| c.to == s);
    let mut classes = Vec::new();
    for (from, ps) in &ingress {
        let peer = match from {
            Some(u) => Peer::Caller(*u),
            None if called_inside => {
                for &pi in ps {
                    let callers: BTreeSet<&str> = g
                        .calls
                        .iter()
                        .filter(|c| c.to == s)
                        .map(|c| g.services[c.from].name.as_str())
                        .collect();
                    diags.push(
                        cu0601(
                            &ctx.input.program.policies[pi],
                            format!(
                                "Cilium cannot tell requests from outside the mesh into `{name}` from those of `{}`",
                                callers.into_iter().collect::<Vec<_>>().join("`, `")
                            ),
                            format!("enforced by the cilium-proxy of `{name}` on requests from outside"),
                        )
                        .with_note(
                            "a request from outside is known only by the absence of the context header, and Cilium's HTTP rules cannot match a missing header",
                        )
                        .with_help(or_without_cilium(
                            "enforce policies on requests from outside at an entry point that no service calls",
                        )),
                    );
                }
                continue;
            }
            None => Peer::Outside,
        };
        classes.push(Class {
            peer,
            policies: ps.iter().copied().collect(),
        });
    }
    for (v, ps) in &egress {
        classes.push(Class {
            peer: Peer::Callee(*v),
            policies: ps.iter().copied().collect(),
        });
    }
    let mut filtered: Vec<(Peer, Vec<HttpRule>)> = Vec::new();
    for class in &classes {
        match class_rules(ctx, s, class) {
            Ok(r) => filtered.push((class.peer, r)),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let mut ingress_rules = Vec::new();
    let mut egress_rules = Vec::new();
    let app_port = g.services[s].ports.app;
    let mut in_filtered: Vec<&str> = Vec::new();
    let mut outside_filtered = false;
    let mut out_filtered: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (peer, rules) in &filtered {
        let http: Vec<Value> = rules.iter().map(rule_json).collect();
        match *peer {
            Peer::Caller(u) => {
                in_filtered.push(&g.services[u].name);
                ingress_rules.push(json!({
                    "fromEndpoints": [service_selector(&g.services[u].name)],
                    "toPorts": [l7_port(app_port, http)],
                }));
            }
            Peer::Outside => {
                outside_filtered = true;
                ingress_rules.push(json!({
                    "fromEntities": ["all"],
                    "toPorts": [l7_port(app_port, http)],
                }));
            }
            Peer::Callee(v) => {
                let port = g.services[v].ports.app;
                out_filtered.entry(port).or_default().push(&g.services[v].name);
                egress_rules.push(json!({
                    "toEndpoints": [service_selector(&g.services[v].name)],
                    "toPorts": [l7_port(port, http)],
                }));
            }
        }
    }
    if !ingress_rules.is_empty() {
        if !outside_filtered {
            ingress_rules.push(json!({
                "fromEndpoints": [complement_selector(&in_filtered)],
                "toPorts": [plain_ports(&[app_port])],
            }));
            ingress_rules.push(json!({
                "fromEntities": RESERVED_ENTITIES,
                "toPorts": [plain_ports(&[app_port])],
            }));
        }
        ingress_rules.push(json!({
            "fromEntities": ["all"],
            "toPorts": [other_ports(&[app_port])],
        }));
    }
    if !egress_rules.is_empty() {
        let ports: Vec<u16> = out_filtered.keys().copied().collect();
        for (port, callees) in &out_filtered {
            egress_rules.push(json!({
                "toEndpoints": [complement_selector(callees)],
                "toPorts": [plain_ports(&[*port])],
            }));
        }
        egress_rules.push(json!({
            "toEntities": RESERVED_ENTITIES,
            "toPorts": [plain_ports(&ports)],
        }));
        egress_rules.push(json!({
            "toEntities": ["all"],
            "toPorts": [other_ports(&ports)],
        }));
    }

    let object_name = name.clone();
    let names: BTreeSet<&str> = placed
        .iter()
        .map(|&pi| ctx.input.program.policies[pi].name.as_str())
        .collect();
    let mut spec = json!({
        "description": format!(
            "Generated by copperc: L7 HTTP rules of the cilium-proxy of {name}, enforcing {}.",
            names.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        "endpointSelector": {"matchLabels": {APP_LABEL: name}},
    });
    if !ingress_rules.is_empty() {
        spec["ingress"] = Value::Array(ingress_rules);
    }
    if !egress_rules.is_empty() {
        spec["egress"] = Value::Array(egress_rules);
    }
    let doc = json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {
            "name": object_name,
            "labels": {"app.kubernetes.io/managed-by": "copperc"},
            "annotations": {"copperc.dev/policies": names.into_iter().collect::<Vec<_>>().join(",")},
        },
        "spec": spec,
    });
    Ok(Some((object_name, doc)))
}

/// Pods of one service, in any namespace.
fn service_selector(service: &str) -> Value {
    json!({
        "matchLabels": {APP_LABEL: service},
        "matchExpressions": [{"key": NAMESPACE_LABEL, "operator": "Exists"}],
    })
}

/// Every pod, in any namespace, that is not one of `services`.
fn complement_selector(services: &[&str]) -> Value {
    let mut values: Vec<&str> = services.to_vec();
    values.sort_unstable();
    values.dedup();
    json!({"matchExpressions": [
        {"key": NAMESPACE_LABEL, "operator": "Exists"},
        {"key": APP_LABEL, "operator": "NotIn", "values": values},
    ]})
}

fn l7_port(port: u16, http: Vec<Value>) -> Value {
    json!({
        "ports": [{"port": port.to_string(), "protocol": "TCP"}],
        "rules": {"http": http},
    })
}

fn plain_ports(ports: &[u16]) -> Value {
    json!({"ports": ports.iter().map(|p| json!({"port": p.to_string(), "protocol": "TCP"})).collect::<Vec<_>>()})
}

/// Every port but `excluded` (which stay open for UDP and SCTP).
fn other_ports(excluded: &[u16]) -> Value {
    let mut ports = Vec::new();
    let mut next: u32 = 1;
    let mut sorted: Vec<u16> = excluded.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for &p in &sorted {
        let p = u32::from(p);
        if p > next {
            ports.push(range(next, p - 1));
        }
        next = next.max(p + 1);
    }
    if next <= 65535 {
        ports.push(range(next, 65535));
    }
    for &p in &sorted {
        for proto in ["UDP", "SCTP"] {
            ports.push(json!({"port": p.to_string(), "protocol": proto}));
        }
    }
    json!({ "ports": ports })
}

fn range(from: u32, to: u32) -> Value {
    if from == to {
        json!({"port": from.to_string(), "protocol": "ANY"})
    } else {
        json!({"port": from.to_string(), "endPort": to, "protocol": "ANY"})
    }
}

fn rule_json(r: &HttpRule) -> Value {
    let mut rule = serde_json::Map::new();
    let mut matches = Vec::new();
    if let Some(h) = &r.context {
        matches.push(json!({"name": CONTEXT_HEADER, "value": h}));
    }
    for c in &r.conds {
        match c {
            Cond::Method(m) => {
                rule.insert("method".into(), Value::String(method_regex(m)));
            }
            Cond::Path(p) => {
                rule.insert("path".into(), Value::String(path_regex(p)));
            }
            Cond::Header(k, v) => matches.push(json!({"name": k, "value": v})),
        }
    }
    for (k, op) in &r.ops {
        matches.push(match op {
            Op::Set(v) => json!({"name": k, "value": v, "mismatch": "REPLACE"}),
            Op::Remove => json!({"name": k, "value": REMOVE_SENTINEL, "mismatch": "DELETE"}),
        });
    }
    if !matches.is_empty() {
        rule.insert("headerMatches".into(), Value::Array(matches));
    }
    Value::Object(rule)
}

/// The rule that no request matches: every HTTP method is a non-empty token.
fn never() -> HttpRule {
    HttpRule {
        context: None,
        conds: BTreeSet::from([Cond::Method(String::new())]),
        ops: BTreeMap::new(),
    }
}

fn cu0601(p: &Policy, message: impl Into<String>, label: impl Into<String>) -> Diagnostic {
    Diagnostic::new(Code::NotExpressible, message)
        .at(p.name_span, label)
        .with_help(WITHOUT_CILIUM)
}

/// The way out that always exists: let placement choose an Envoy sidecar.
const WITHOUT_CILIUM: &str =
    "compile without cilium-proxy (`--interfaces interfaces/istio-proxy.act`) so that an Envoy sidecar enforces it";

fn or_without_cilium(first: &str) -> String {
    format!("{first}, or {WITHOUT_CILIUM}")
}

/// Problems of a placed policy that do not depend on where it is enforced.
fn check_policy(ctx: &Ctx, pi: usize, s: ServiceId) -> Vec<Diagnostic> {
    let p = &ctx.input.program.policies[pi];
    let here = format!("placed on the cilium-proxy of `{}`", ctx.input.graph.services[s].name);
    let mut diags = Vec::new();
    if p.act != "RPCRequest" {
        diags.push(
            cu0601(
                p,
                format!("Cilium's HTTP rules cannot act on `{}`", p.act),
                here.clone(),
            )
            .with_note("a CiliumNetworkPolicy sees and rewrites requests only"),
        );
        return diags;
    }
    let mut seen = BTreeSet::new();
    for rule in &ctx.rules[pi] {
        for a in &rule.actions {
            let problem = action_problem(p, a, &here);
            if let Some(d) = problem
                && seen.insert(d.message.clone())
            {
                diags.push(d);
            }
        }
    }
    diags
}

/// What keeps Cilium from expressing one action of a policy, wherever the
/// policy is placed.
fn action_problem(p: &Policy, a: &Action, here: &str) -> Option<Diagnostic> {
    let here = here.to_string();
    match a {
                Action::Deny(status) if *status != CILIUM_DENY_STATUS => {
                    let mut d = cu0601(
                        p,
                        format!("`{}` denies with status {status}, but Cilium answers every denied request with 403", p.name),
                        here.clone(),
                    )
                    .with_note("a request that no L7 rule of a CiliumNetworkPolicy allows gets 403 \"Access denied\"; the status cannot be configured")
                    .with_help(or_without_cilium("deny with `req.Deny(403)`"));
                    if let Some(span) = find_call(&p.body, &|c| c.method.name == "Deny" && !matches!(c.args.first(), Some(Expr::Int(403, _)))) {
                        d = d.with_label(span, "this status");
                    }
                    Some(d)
                }
                Action::SetHeader(k, HeaderValue::RequestHeader(h)) => {
                    let mut d = cu0601(
                        p,
                        format!("Cilium cannot set header `{k}` to a value read from the request (`{h}`)"),
                        here.clone(),
                    )
                    .with_note("headerMatches can only write a literal value")
                    .with_help(or_without_cilium("set a literal value"));
                    if let Some(span) = find_call(&p.body, &|c| c.method.name == "SetHeader" && matches!(c.args.get(1), Some(Expr::Call(_)))) {
                        d = d.with_label(span, "copies a request value");
                    }
                    Some(d)
                }
                Action::SetHeader(k, HeaderValue::Literal(v)) if v.is_empty() => Some(cu0601(
                    p,
                    format!("Cilium cannot set header `{k}` to the empty string"),
                    here.clone(),
                ).with_note("a headerMatches entry with an empty value only tests that the header is present, so an existing header would keep its value")
                .with_help(or_without_cilium("set a non-empty value, or remove the header with `req.RemoveHeader(..)`"))),
                Action::SetHeader(k, _) | Action::RemoveHeader(k) if k == CONTEXT_HEADER => Some(cu0601(
                    p,
                    format!("a policy enforced by Cilium cannot rewrite `{CONTEXT_HEADER}`"),
                    here.clone(),
                ).with_note("the context header is what Cilium's rules match the context on")
                .with_help(or_without_cilium(&format!("leave `{CONTEXT_HEADER}` alone")))),
                Action::SetHeader(..) | Action::RemoveHeader(_) | Action::Deny(_) => None,
                Action::RouteToVersion(_) | Action::RateLimit(_) | Action::SetResponseHeader(..) => Some(cu0601(
                    p,
                    format!("`{}` uses an action that a CiliumNetworkPolicy cannot express", p.name),
                    here.clone(),
                ).with_note("Cilium's HTTP rules only allow, deny with 403, and set or remove request headers")),
            }
}

/// What keeps Cilium from expressing the policy wherever it is placed
/// (empty when nothing does): placement then leaves cilium-proxy out.
pub fn expression_problems(p: &Policy, rules: &[Rule]) -> Vec<Diagnostic> {
    let here = "cilium-proxy cannot express this policy";
    if p.act != "RPCRequest" {
        return vec![
            cu0601(p, format!("Cilium's HTTP rules cannot act on `{}`", p.act), here)
                .with_note("a CiliumNetworkPolicy sees and rewrites requests only"),
        ];
    }
    let mut out: Vec<Diagnostic> = Vec::new();
    for a in rules.iter().flat_map(|r| &r.actions) {
        if let Some(d) = action_problem(p, a, here)
            && !out.iter().any(|x| x.message == d.message)
        {
            out.push(d);
        }
    }
    out
}

fn find_call(b: &Block, pred: &dyn Fn(&Call) -> bool) -> Option<Span> {
    for s in &b.stmts {
        match s {
            Stmt::Call(c) if pred(c) => return Some(c.span),
            Stmt::Call(_) => {}
            Stmt::If {
                branches, otherwise, ..
            } => {
                for (_, blk) in branches {
                    if let Some(s) = find_call(blk, pred) {
                        return Some(s);
                    }
                }
                if let Some(s) = otherwise.as_ref().and_then(|blk| find_call(blk, pred)) {
                    return Some(s);
                }
            }
        }
    }
    None
}

/// How a policy covers the requests of a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coverage {
    /// Every context of the caller.
    All,
    /// Some contexts of the caller, not all.
    Some,
}

impl Ctx<'_> {
    /// The DFA of policy `pi` and the states reachable at each service.
    fn dfa(&mut self, pi: usize) -> Option<&Reach> {
        let g = self.input.graph;
        let adj = &self.adj;
        let p = &self.input.program.policies[pi];
        self.dfas
            .entry(pi)
            .or_insert_with(|| {
                let dfa = ServiceDfa::new(&p.pattern, &|n| g.service_id(n)).ok()?;
                let mut at: Vec<BTreeSet<State>> = vec![BTreeSet::new(); g.services.len()];
                let mut queue: Vec<(ServiceId, State)> = Vec::new();
                for &e in &g.entrypoints {
                    let q = dfa.step(dfa.start(), e);
                    if at[e].insert(q) {
                        queue.push((e, q));
                    }
                }
                while let Some((u, q)) = queue.pop() {
                    for &v in adj.callees(u) {
                        let q2 = dfa.step(q, v);
                        if at[v].insert(q2) {
                            queue.push((v, q2));
                        }
                    }
                }
                Some((dfa, at))
            })
            .as_ref()
    }

    /// Whether policy `pi` holds on every context of `caller` calling
    /// `callee`; `None` if its pattern has no automaton (analysis, which
    /// builds the same one, would have failed first).
    fn coverage(&mut self, pi: usize, caller: Option<ServiceId>, callee: ServiceId) -> Option<Coverage> {
        let (dfa, at) = self.dfa(pi)?;
        Some(match caller {
            None => Coverage::All,
            Some(u) if at[u].iter().all(|&q| dfa.is_accepting(dfa.step(q, callee))) => Coverage::All,
            Some(_) => Coverage::Some,
        })
    }

    /// Whether policy `pi` holds on the context `context` calling `callee`.
    fn holds(&mut self, pi: usize, context: &[ServiceId], callee: ServiceId) -> bool {
        match self.dfa(pi) {
            Some((dfa, _)) => {
                let mut q = dfa.start();
                for &s in context {
                    q = dfa.step(q, s);
                }
                dfa.is_accepting(dfa.step(q, callee))
            }
            None => false,
        }
    }
}

/// A group of requests of a class on which the same policies apply.
struct Scenario {
    /// The exact context header values; `None`: any request of the class.
    contexts: Option<Vec<String>>,
    policies: Vec<usize>,
}

/// The HTTP rules of one class.
fn class_rules(ctx: &mut Ctx, s: ServiceId, class: &Class) -> Result<Vec<HttpRule>, Vec<Diagnostic>> {
    let g = ctx.input.graph;
    let (caller, callee) = match class.peer {
        Peer::Caller(u) => (Some(u), s),
        Peer::Outside => (None, s),
        Peer::Callee(v) => (Some(s), v),
    };
    let call = crate::analysis::call_text(g, caller, callee);
    let at = &g.services[s].name;
    let side = if matches!(class.peer, Peer::Callee(_)) {
        "egress"
    } else {
        "ingress"
    };
    let where_ = format!("enforced by the cilium-proxy of `{at}` ({side}) on {call}");
    let policies = &ctx.input.program.policies;

    let mut all = Vec::new();
    let mut some = Vec::new();
    for &pi in &class.policies {
        match ctx.coverage(pi, caller, callee) {
            Some(Coverage::All) => all.push(pi),
            Some(Coverage::Some) => some.push(pi),
            None => {
                return Err(vec![cu0601(
                    &policies[pi],
                    "the context pattern cannot be compiled into an automaton",
                    where_.clone(),
                )]);
            }
        }
    }
    let scenarios = if some.is_empty() {
        vec![Scenario {
            contexts: None,
            policies: all.clone(),
        }]
    } else {
        let u = caller.unwrap_or(s);
        let contexts = match caller_contexts(g, u, MAX_CONTEXTS) {
            Ok(c) => c,
            Err(why) => {
                let reason = match why {
                    Unlistable::Cycle(cycle) => {
                        let mut names: Vec<&str> = cycle.iter().map(|&x| g.services[x].name.as_str()).collect();
                        if let Some(first) = names.first().copied() {
                            names.push(first);
                        }
                        format!(
                            "the calls {} form a cycle on the way to `{}`, which therefore has infinitely many contexts",
                            names.join(" -> "),
                            g.services[u].name
                        )
                    }
                    Unlistable::TooMany(cap) => {
                        format!("`{}` has more than {cap} contexts", g.services[u].name)
                    }
                };
                return Err(some
                    .iter()
                    .map(|&pi| {
                        cu0601(
                            &policies[pi],
                            format!(
                                "the contexts in which `{}` applies on {call} cannot be listed as exact header values",
                                policies[pi].name
                            ),
                            where_.clone(),
                        )
                        .with_note(format!(
                            "the policy applies to some contexts of {call} and not to others; Cilium matches the `{CONTEXT_HEADER}` header only by exact value (no regex: cilium/cilium#43914), so every context must be listed, but {reason}"
                        ))
                        .with_help(or_without_cilium(
                            "write the pattern so that it holds on every context of this call or on none (such as `.* caller callee`)",
                        ))
                    })
                    .collect());
            }
        };
        let mut groups: BTreeMap<Vec<usize>, Vec<String>> = BTreeMap::new();
        for c in &contexts {
            let mut active = all.clone();
            for &pi in &some {
                if ctx.holds(pi, c, callee) {
                    active.push(pi);
                }
            }
            active.sort_unstable();
            groups
                .entry(active)
                .or_default()
                .push(encode_context(c.iter().map(|&x| g.services[x].name.as_str())));
        }
        groups
            .into_iter()
            .map(|(policies, contexts)| Scenario {
                contexts: Some(contexts),
                policies,
            })
            .collect()
    };

    // Per scenario: the allowed terms, and the rewrites (one entry per
    // policy, header and outcome), each with the rules that apply it.
    let mut diags = Vec::new();
    let mut allowed: Vec<Vec<BTreeSet<Cond>>> = Vec::new();
    let mut entries: Vec<Vec<Entry>> = Vec::new();
    for sc in &scenarios {
        let denying = denying(ctx.rules, &sc.policies);
        let terms = match negate(&denying).and_then(|t| positive_terms(&t)) {
            Ok(t) => t,
            Err(TermsError::TooComplex) => {
                diags.push(too_complex(
                    &policies[sc.policies.first().copied().unwrap_or(0)],
                    &where_,
                ));
                Vec::new()
            }
            Err(TermsError::Inexpressible(pi, why)) => {
                diags.push(
                    cu0601(
                        &policies[pi],
                        format!(
                            "Cilium cannot allow exactly the requests that `{}` lets through",
                            policies[pi].name
                        ),
                        where_.clone(),
                    )
                    .with_note(format!(
                        "{}; Cilium's HTTP rules are an allow-list (a request no rule allows gets 403) that tests headers, paths and methods only for equality, so it cannot express this",
                        describe(&why, "the allowed requests are those where")
                    ))
                    .with_help(or_without_cilium(
                        "deny under conditions whose negation is an equality (`if req.GetMethod() != \"GET\" { req.Deny(403); }` allows exactly `GET`)",
                    )),
                );
                Vec::new()
            }
        };
        let mut es = Vec::new();
        for &pi in &sc.policies {
            match rewrite_entries(&ctx.rules[pi], pi) {
                Ok(list) => es.extend(list),
                Err(TermsError::TooComplex) => diags.push(too_complex(&policies[pi], &where_)),
                Err(TermsError::Inexpressible(_, why)) => diags.push(
                    cu0601(
                        &policies[pi],
                        format!(
                            "Cilium cannot rewrite headers under the conditions of `{}`",
                            policies[pi].name
                        ),
                        where_.clone(),
                    )
                    .with_note(format!(
                        "{}; a Cilium HTTP rule applies its header rewrites when it matches, and it matches headers, paths and methods only by equality",
                        describe(&why, "a rewrite applies when")
                    ))
                    .with_help(or_without_cilium(
                        "rewrite under equalities only (`if req.GetHeader(\"x\") == \"v\" { ... }`)",
                    )),
                ),
            }
        }
        // A rule that rewrites also allows what it matches: where a rewrite
        // could meet a denied request, its rules are cut down to the
        // allowed terms.
        for e in &mut es {
            if meets(&e.rules, &denying) {
                e.rules = e
                    .rules
                    .iter()
                    .flat_map(|r| {
                        terms
                            .iter()
                            .map(move |t| r.union(t).cloned().collect::<BTreeSet<Cond>>())
                    })
                    .filter(consistent)
                    .collect();
            }
        }
        allowed.push(terms);
        entries.push(es);
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    check_rewrites(policies, &entries, &where_)?;

    // The rules: allowed terms, and rewrites within each allowed term.
    let mut out: BTreeSet<HttpRule> = BTreeSet::new();
    // A term allowed in every scenario needs no context.
    let common: BTreeSet<BTreeSet<Cond>> = match allowed.split_first() {
        Some((first, rest)) if scenarios.len() > 1 => first
            .iter()
            .filter(|t| rest.iter().all(|r| r.contains(t)))
            .cloned()
            .collect(),
        _ => BTreeSet::new(),
    };
    for t in &common {
        out.insert(HttpRule {
            context: None,
            conds: t.clone(),
            ops: BTreeMap::new(),
        });
    }
    for ((sc, terms), es) in scenarios.iter().zip(&allowed).zip(&entries) {
        let contexts: Vec<Option<String>> = match &sc.contexts {
            Some(c) => c.iter().cloned().map(Some).collect(),
            None => vec![None],
        };
        for h in &contexts {
            for t in terms.iter().filter(|t| !common.contains(*t)) {
                out.insert(HttpRule {
                    context: h.clone(),
                    conds: t.clone(),
                    ops: BTreeMap::new(),
                });
            }
            for e in es {
                for conds in &e.rules {
                    out.insert(HttpRule {
                        context: h.clone(),
                        conds: conds.clone(),
                        ops: BTreeMap::from([(e.header.clone(), e.op.clone())]),
                    });
                }
            }
        }
    }
    let mut rules = merge(out);
    if matches!(class.peer, Peer::Outside) {
        // Requests from outside carry no context: a header a client sent
        // is removed, as at every entry point.
        for r in &mut rules {
            r.ops.insert(CONTEXT_HEADER.to_string(), Op::Remove);
        }
    }
    if rules.is_empty() {
        rules.push(never());
    }
    if rules.len() > MAX_HTTP_RULES {
        return Err(class
            .policies
            .iter()
            .map(|&pi| {
                cu0601(
                    &policies[pi],
                    format!("more than {MAX_HTTP_RULES} Cilium HTTP rules for {call}"),
                    where_.clone(),
                )
                .with_note(format!(
                    "{} rules: one per listed context and allowed combination of conditions",
                    rules.len()
                ))
                .with_help(or_without_cilium(
                    "narrow the context pattern or simplify the conditions",
                ))
            })
            .collect());
    }
    Ok(rules)
}

/// Rules with the same tests become one, with the rewrites of all.
fn merge(rules: BTreeSet<HttpRule>) -> Vec<HttpRule> {
    let mut by_tests: BTreeMap<(Option<String>, BTreeSet<Cond>), BTreeMap<String, Op>> = BTreeMap::new();
    for r in rules {
        by_tests.entry((r.context, r.conds)).or_default().extend(r.ops);
    }
    by_tests
        .into_iter()
        .map(|((context, conds), ops)| HttpRule { context, conds, ops })
        .collect()
}

fn too_complex(p: &Policy, where_: &str) -> Diagnostic {
    cu0601(
        p,
        "too many combinations of conditions to write as Cilium HTTP rules",
        where_.to_string(),
    )
    .with_note(format!("more than {MAX_TERMS} terms in normal form"))
    .with_help(or_without_cilium("simplify the conditions"))
}

/// One rewrite of one policy: the header, the outcome, and the rules (sets
/// of positive conditions) under which it applies.
struct Entry {
    policy: usize,
    header: String,
    op: Op,
    rules: Vec<BTreeSet<Cond>>,
}

/// The rewrites of a policy's non-denying paths, per header and outcome.
/// The rules of an outcome are the paths that lead to it when their tests
/// are all positive; else the negation of the paths that lead elsewhere
/// (denying paths left out: their requests are refused anyway).
fn rewrite_entries(rules: &[Rule], pi: usize) -> Result<Vec<Entry>, TermsError> {
    let paths: Vec<(&Rule, BTreeMap<&str, Op>)> = rules
        .iter()
        .filter(|r| !r.actions.iter().any(|a| matches!(a, Action::Deny(_))))
        .map(|r| {
            let mut net = BTreeMap::new();
            for a in &r.actions {
                match a {
                    Action::SetHeader(k, HeaderValue::Literal(v)) => {
                        net.insert(k.as_str(), Op::Set(v.clone()));
                    }
                    Action::RemoveHeader(k) => {
                        net.insert(k.as_str(), Op::Remove);
                    }
                    // Reported by `check_policy`.
                    _ => {}
                }
            }
            (r, net)
        })
        .collect();
    let outcomes: BTreeSet<(&str, &Op)> = paths
        .iter()
        .flat_map(|(_, net)| net.iter().map(|(k, op)| (*k, op)))
        .collect();
    let mut out = Vec::new();
    for (k, op) in outcomes {
        let leading: Result<Vec<BTreeSet<Cond>>, NotPositive> = paths
            .iter()
            .filter(|(_, net)| net.get(k) == Some(op))
            .map(|(r, _)| positive(&r.tests.iter().collect::<Vec<_>>()))
            .collect();
        let rules = match leading {
            Ok(r) => minimal_conds(r),
            Err(why) => {
                let elsewhere: Vec<(Vec<Test>, usize)> = paths
                    .iter()
                    .filter(|(_, net)| net.get(k) != Some(op))
                    .map(|(r, _)| (r.tests.clone(), pi))
                    .collect();
                match negate(&elsewhere).and_then(|t| positive_terms(&t)) {
                    Ok(r) => r,
                    Err(TermsError::TooComplex) => return Err(TermsError::TooComplex),
                    Err(TermsError::Inexpressible(..)) => return Err(TermsError::Inexpressible(pi, why)),
                }
            }
        };
        out.push(Entry {
            policy: pi,
            header: k.to_string(),
            op: op.clone(),
            rules,
        });
    }
    Ok(out)
}

/// Whether some rule could match a request that some denying path takes.
fn meets(rules: &[BTreeSet<Cond>], denying: &[(Vec<Test>, usize)]) -> bool {
    rules.iter().any(|r| {
        let tests: Vec<Test> = r.iter().map(cond_test).collect();
        denying.iter().any(|(d, _)| {
            let both: Vec<Test> = tests.iter().chain(d).cloned().collect();
            super::rules::consistent(&both)
        })
    })
}

fn cond_test(c: &Cond) -> Test {
    let (subject, value) = match c {
        Cond::Method(m) => (Subject::Method, m.clone()),
        Cond::Path(p) => (Subject::Path, p.clone()),
        Cond::Header(k, v) => (Subject::Header(k.clone()), v.clone()),
    };
    Test {
        subject,
        value,
        equal: true,
    }
}

/// Rewrites must not depend on the order in which Cilium evaluates rules:
/// two outcomes for one header must never both apply, and a header that
/// one rewrite changes must not be tested by another rewrite's rules.
/// (Rules that only allow have no effect, and a rewriting rule only matches
/// requests that are allowed anyway, so their order does not matter.)
fn check_rewrites(policies: &[Policy], entries: &[Vec<Entry>], where_: &str) -> Result<(), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    for es in entries {
        for (i, e) in es.iter().enumerate() {
            let name = &policies[e.policy].name;
            let tested_by_other = es.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.rules
                        .iter()
                        .flatten()
                        .any(|c| matches!(c, Cond::Header(h, _) if *h == e.header))
            });
            if tested_by_other {
                diags.push(
                    cu0601(
                        &policies[e.policy],
                        format!(
                            "`{name}` rewrites header `{}`, which another rewriting Cilium rule tests",
                            e.header
                        ),
                        where_.to_string(),
                    )
                    .with_note(
                        "Cilium runs the rewrites of each matching rule while it is still matching the others, in an order of its own, so the other test could see either value",
                    ),
                );
            }
            for o in &es[i + 1..] {
                let overlap = o.header == e.header
                    && o.op != e.op
                    && e.rules.iter().any(|a| {
                        o.rules
                            .iter()
                            .any(|b| consistent(&a.union(b).cloned().collect::<BTreeSet<Cond>>()))
                    });
                if overlap {
                    diags.push(
                        cu0601(
                            &policies[o.policy],
                            format!(
                                "`{name}` and `{}` can rewrite header `{}` differently on the same request",
                                policies[o.policy].name, e.header
                            ),
                            where_.to_string(),
                        )
                        .with_label(policies[e.policy].name_span, "the other rewrite")
                        .with_note(
                            "Cilium applies the rewrites of all matching rules in an order of its own, so the result would be either",
                        ),
                    );
                }
            }
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

enum TermsError {
    TooComplex,
    /// The policy whose condition has no positive form, and why.
    Inexpressible(usize, NotPositive),
}

/// The conditions of the denying paths of `policies`, each with its policy.
fn denying(rules: &[Vec<Rule>], policies: &[usize]) -> Vec<(Vec<Test>, usize)> {
    policies
        .iter()
        .flat_map(|&pi| {
            rules[pi]
                .iter()
                .filter(|r| r.actions.iter().any(|a| matches!(a, Action::Deny(_))))
                .map(move |r| (r.tests.clone(), pi))
        })
        .collect()
}

/// The negation of a union of conjunctions, in disjunctive normal form;
/// each test keeps the policy of the conjunction it negates.
fn negate(conjs: &[(Vec<Test>, usize)]) -> Result<Vec<Vec<(Test, usize)>>, TermsError> {
    let mut terms: Vec<Vec<(Test, usize)>> = vec![Vec::new()];
    for (conj, pi) in conjs {
        let mut next: Vec<Vec<(Test, usize)>> = Vec::new();
        for term in &terms {
            for t in conj {
                let negated = Test {
                    subject: t.subject.clone(),
                    value: t.value.clone(),
                    equal: !t.equal,
                };
                let mut n = term.clone();
                if !n.iter().any(|(x, _)| *x == negated) {
                    n.push((negated, *pi));
                    n.sort();
                }
                let tests: Vec<Test> = n.iter().map(|(t, _)| t.clone()).collect();
                if super::rules::consistent(&tests) {
                    next.push(n);
                }
            }
        }
        terms = minimal(next);
        if terms.len() > MAX_TERMS {
            return Err(TermsError::TooComplex);
        }
    }
    Ok(terms)
}

/// The terms as positive conditions, or the first term that has none.
fn positive_terms(terms: &[Vec<(Test, usize)>]) -> Result<Vec<BTreeSet<Cond>>, TermsError> {
    let mut out: Vec<BTreeSet<Cond>> = Vec::new();
    for term in terms {
        let tests: Vec<&Test> = term.iter().map(|(t, _)| t).collect();
        match positive(&tests) {
            Ok(c) => out.push(c),
            Err(why) => {
                let culprit = match &why {
                    NotPositive::Negative(bad) => term.iter().find(|(t, _)| t == bad).map(|(_, p)| *p),
                    _ => None,
                };
                return Err(TermsError::Inexpressible(
                    culprit.or_else(|| term.first().map(|(_, p)| *p)).unwrap_or(0),
                    why,
                ));
            }
        }
    }
    Ok(minimal_conds(out))
}

/// Without duplicates and without terms that another term covers.
fn minimal_conds(mut terms: Vec<BTreeSet<Cond>>) -> Vec<BTreeSet<Cond>> {
    terms.sort();
    terms.dedup();
    terms
        .iter()
        .filter(|t| !terms.iter().any(|o| o != *t && o.is_subset(t)))
        .cloned()
        .collect()
}

/// Without duplicates and without terms that a smaller term subsumes.
fn minimal(mut terms: Vec<Vec<(Test, usize)>>) -> Vec<Vec<(Test, usize)>> {
    terms.sort();
    terms.dedup_by(|a, b| a.iter().map(|x| &x.0).eq(b.iter().map(|x| &x.0)));
    let sets: Vec<BTreeSet<&Test>> = terms.iter().map(|t| t.iter().map(|x| &x.0).collect()).collect();
    let keep: Vec<bool> = sets
        .iter()
        .enumerate()
        .map(|(i, a)| {
            !sets
                .iter()
                .enumerate()
                .any(|(j, b)| j != i && b.is_subset(a) && (b != a || j < i))
        })
        .collect();
    terms
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(t, _)| t)
        .collect()
}

fn describe(why: &NotPositive, lead: &str) -> String {
    let subject = |s: &Subject| match s {
        Subject::Header(k) => format!("header `{k}`"),
        Subject::Path => "the path".to_string(),
        Subject::Method => "the method".to_string(),
        Subject::Status => "the status".to_string(),
    };
    match why {
        NotPositive::Negative(t) => format!("{lead} {} is not `{}`", subject(&t.subject), t.value.escape_debug()),
        NotPositive::EmptyHeader(k) => {
            format!("{lead} header `{k}` is empty or absent, and Cilium cannot match an absent header")
        }
        NotPositive::QueryInPath(v) => format!(
            "{lead} the path is `{}`, but a path (without its query string) never contains `?`, while Cilium's path regex sees the query string",
            v.escape_debug()
        ),
        NotPositive::Status => format!("{lead} the response status has some value, which Cilium cannot see"),
    }
}
