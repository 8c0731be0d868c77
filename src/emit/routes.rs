//! What one Envoy-based sidecar enforces, shared by every emitter that
//! configures such a sidecar (`envoy`, `istio`): which policies it runs on
//! requests into its service and on its calls to each callee, with the
//! context guard of each, and the first-match route combinations that
//! realise them.
//!
//! A sidecar can enforce several policies on the same requests. Routes are
//! first-match, so each combination of policies that fire together gets one
//! route, most policies first; a request takes the route of exactly the
//! policies whose context and conditions hold. `Effect` merges the actions
//! of one combination, so every emitter resolves conflicts the same way.

use std::collections::{BTreeMap, BTreeSet};

use super::EmitInput;
use super::context_regex::{Guard, HeaderMatch, guard_from, header_match_from, header_values_from};
use super::rules::{Action, Rule, Test, Value as HeaderValue};
use crate::diag::{Code, Diagnostic};
use crate::graph::ServiceId;
use crate::place::Side;

/// Upper bound on routes per virtual host (combinations of policies).
pub const MAX_ROUTES: usize = 256;

/// One policy as enforced on one virtual host: its context guard and rules.
#[derive(Clone, Debug)]
pub struct Enforced<'a> {
    /// Index into `Program::policies`.
    pub index: usize,
    pub policy: &'a str,
    /// `None`: every context (no header match needed). Otherwise whether
    /// the request from outside (no header) is enforced, and the regex of
    /// the header values of the requests from services that are.
    pub context: Option<HeaderMatch>,
    /// The language of `context`, to intersect with other guards.
    pub guard: Option<Guard>,
    /// The header values from services that `context` accepts, when they
    /// are finitely many (a pattern without `.`, `!` or repetition on this
    /// call); the request from outside is `context.absent`.
    pub context_values: Option<Vec<String>>,
    pub rules: Vec<Rule>,
}

/// The policies one sidecar enforces.
pub struct SidecarPlan<'a> {
    /// On requests into the service (Ingress), in policy order.
    pub inbound: Vec<Enforced<'a>>,
    /// The service is an entry point that only the outside calls: the
    /// context header is removed and never trusted, and every request into
    /// it has the context `<service>`.
    pub outside_only: bool,
    /// Per callee: on the service's calls to it (Egress), in policy order.
    pub outbound: BTreeMap<ServiceId, Vec<Enforced<'a>>>,
    /// Every service that the service calls.
    pub callees: BTreeSet<ServiceId>,
}

/// What the sidecar of `s` enforces, from the placement's enforcement list.
pub fn sidecar_plan<'a>(input: &EmitInput<'a>, rules: &[Vec<Rule>], s: ServiceId) -> SidecarPlan<'a> {
    let g = input.graph;
    let name = g.services[s].name.as_str();
    // Ingress: policies enforced here on calls into s, with their callers.
    let mut ingress: BTreeMap<usize, BTreeSet<Option<ServiceId>>> = BTreeMap::new();
    // Egress: per callee, policies enforced here on calls s -> v.
    let mut egress: BTreeMap<ServiceId, BTreeSet<usize>> = BTreeMap::new();
    for e in &input.placement.enforcement {
        if e.at != s {
            continue;
        }
        match e.side {
            Side::Ingress => {
                ingress.entry(e.policy).or_default().insert(e.from);
            }
            Side::Egress => {
                egress.entry(e.to).or_default().insert(e.policy);
            }
        }
    }
    let outside_only = g.entrypoints.contains(&s) && !g.calls.iter().any(|c| c.to == s);
    let program = input.program;
    // One policy on requests into `callee` from `callers`; `trusted` is false
    // at an entry point that only the outside calls, where the header is
    // removed and never trusted: every request has the context `s`.
    let enforced = |pi: usize, callee: &str, callers: &[Option<&str>], trusted: bool| {
        let p = &program.policies[pi];
        // No request matches: placement enforces the policy only on calls
        // it matches, so this is never reached; an always-false guard
        // (neither the absent header nor any value) keeps it exact.
        let never = HeaderMatch {
            absent: false,
            regex: None,
        };
        let context = if trusted {
            Some(header_match_from(&p.pattern, callee, callers).unwrap_or(never))
        } else {
            None
        };
        let context_values = context
            .as_ref()
            .and_then(|_| header_values_from(&p.pattern, callee, callers));
        let guard = context.as_ref().map(|_| guard_from(&p.pattern, callee, callers));
        Enforced {
            index: pi,
            policy: &p.name,
            context,
            guard,
            context_values,
            rules: rules[pi].clone(),
        }
    };
    let mut inbound = Vec::new();
    for (&pi, callers) in &ingress {
        let names: Vec<Option<&str>> = callers.iter().map(|c| c.map(|u| g.services[u].name.as_str())).collect();
        inbound.push(enforced(pi, name, &names, !outside_only));
    }
    let mut outbound = BTreeMap::new();
    for (&v, policies) in &egress {
        let callee = g.services[v].name.as_str();
        let list = policies
            .iter()
            .map(|&pi| enforced(pi, callee, &[Some(name)], true))
            .collect();
        outbound.insert(v, list);
    }
    let callees = g.calls.iter().filter(|c| c.from == s).map(|c| c.to).collect();
    SidecarPlan {
        inbound,
        outside_only,
        outbound,
        callees,
    }
}

/// One route: a combination of policies that fire together.
#[derive(Clone, Debug)]
pub struct Combination<'a> {
    /// The firing policies' names joined by `+`.
    pub name: String,
    /// Indices (into the `Enforced` list) of the firing policies.
    pub policies: Vec<usize>,
    /// The context match of each firing policy that has one, in order.
    pub contexts: Vec<&'a HeaderMatch>,
    /// The guards of those matches, in the same order.
    pub guards: Vec<&'a Guard>,
    /// The tests of the chosen rules: sorted, without duplicates, consistent.
    pub tests: Vec<Test>,
    /// The actions of the chosen rules, with the policy of each.
    pub actions: Vec<(&'a str, &'a Action)>,
}

impl Combination<'_> {
    /// The firing policies' guards all hold on the request from outside
    /// (which has no context header); true when there is no guard.
    pub fn from_outside(&self) -> bool {
        self.contexts.iter().all(|m| m.absent)
    }

    /// The regexes that the context header must match, one per guard, for
    /// requests from services; `None` when some guard holds on no such
    /// request.
    pub fn header_regexes(&self) -> Option<Vec<&str>> {
        self.contexts.iter().map(|m| m.regex.as_deref()).collect()
    }
}

/// One combination per set of firing policies and choice of rule, most
/// policies first; combinations whose tests contradict each other are left
/// out, and so are those in which no policy fires.
pub fn combinations<'a>(policies: &'a [Enforced<'a>]) -> Result<Vec<Combination<'a>>, Diagnostic> {
    // Per policy: the rules that do something (a rule without actions is
    // the same as the policy not firing).
    let options: Vec<Vec<&Rule>> = policies
        .iter()
        .map(|p| p.rules.iter().filter(|r| !r.actions.is_empty()).collect())
        .collect();
    let total: usize = options.iter().map(|o| o.len() + 1).product();
    if total > MAX_ROUTES * 4 {
        return Err(too_many());
    }
    let mut combos: Vec<Vec<Option<usize>>> = vec![Vec::new()];
    for o in &options {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..=o.len()).map(move |k| {
                    let mut c = c.clone();
                    c.push(if k == 0 { None } else { Some(k - 1) });
                    c
                })
            })
            .collect();
    }
    // Most active policies first; ties in a fixed order.
    combos.sort_by_key(|c| (std::cmp::Reverse(c.iter().filter(|x| x.is_some()).count()), c.clone()));
    let mut out = Vec::new();
    for combo in combos {
        if combo.iter().all(Option::is_none) {
            continue;
        }
        let mut names = Vec::new();
        let mut firing = Vec::new();
        let mut contexts = Vec::new();
        let mut guards = Vec::new();
        let mut tests: Vec<Test> = Vec::new();
        let mut actions = Vec::new();
        for (i, pick) in combo.iter().enumerate() {
            let Some(k) = pick else { continue };
            let p = &policies[i];
            names.push(p.policy);
            firing.push(i);
            if let (Some(m), Some(g)) = (&p.context, &p.guard) {
                contexts.push(m);
                guards.push(g);
            }
            let rule = options[i][*k];
            tests.extend(rule.tests.iter().cloned());
            actions.extend(rule.actions.iter().map(|a| (p.policy, a)));
        }
        tests.sort();
        tests.dedup();
        if !super::rules::consistent(&tests) {
            continue;
        }
        // Guards that hold on no request together: neither all on the
        // request from outside nor all on some header values.
        let outside = contexts.iter().all(|m| m.absent);
        let inside = contexts.iter().all(|m| m.regex.is_some());
        if !outside && !inside {
            continue;
        }
        out.push(Combination {
            name: names.join("+"),
            policies: firing,
            contexts,
            guards,
            tests,
            actions,
        });
        if out.len() > MAX_ROUTES {
            return Err(too_many());
        }
    }
    Ok(out)
}

fn too_many() -> Diagnostic {
    Diagnostic::new(
        Code::NotExpressible,
        format!("more than {MAX_ROUTES} combinations of policies on one sidecar"),
    )
    .with_help("fewer policies with overlapping contexts on this service, or simpler conditions")
}

/// The merged actions of one combination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect<'a> {
    /// Request headers to set (overwriting), by name.
    pub set: BTreeMap<&'a str, &'a HeaderValue>,
    /// Request headers to remove.
    pub remove: BTreeSet<&'a str>,
    /// Response headers to set (overwriting), by name.
    pub set_response: BTreeMap<&'a str, &'a HeaderValue>,
    /// The first `Deny`: the request is answered with this status.
    pub deny: Option<u32>,
    /// The first `RouteToVersion`.
    pub version: Option<&'a str>,
    /// The lowest `RateLimit`, with the policy that asked for it.
    pub rate: Option<(u64, &'a str)>,
}

/// Actions apply in order: a later `SetHeader` of a removed header sets it,
/// a later `RemoveHeader` of a set header removes it.
pub fn effect<'a>(actions: &[(&'a str, &'a Action)]) -> Effect<'a> {
    let mut e = Effect::default();
    for (policy, a) in actions {
        match a {
            Action::SetHeader(k, v) => {
                e.remove.remove(k.as_str());
                e.set.insert(k, v);
            }
            Action::RemoveHeader(k) => {
                e.set.remove(k.as_str());
                e.remove.insert(k);
            }
            Action::SetResponseHeader(k, v) => {
                e.set_response.insert(k, v);
            }
            Action::Deny(status) => e.deny = e.deny.or(Some(*status)),
            Action::RouteToVersion(v) => e.version = e.version.or(Some(v)),
            Action::RateLimit(n) => {
                if e.rate.is_none_or(|(m, _)| *n < m) {
                    e.rate = Some((*n, policy));
                }
            }
        }
    }
    e
}

/// A header value for Envoy's header formatter (also what Istio hands to
/// Envoy): `%` starts a command, so a literal one is doubled.
pub fn envoy_header_value(v: &HeaderValue) -> String {
    match v {
        HeaderValue::Literal(s) => s.replace('%', "%%"),
        HeaderValue::RequestHeader(h) => format!("%REQ({h})%"),
    }
}
