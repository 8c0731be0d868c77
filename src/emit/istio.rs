//! Istio: the resources that realise the policies enforced by `istio-proxy`
//! sidecars, one object per file (`istio/<kind>-<name>.yaml`), and
//! `istio/kustomization.yaml` listing them. Every object carries the label
//! `app.kubernetes.io/managed-by: copperc` and the annotation
//! `copperc.dev/policies` (the policies it realises, sorted).
//!
//! What each sidecar enforces, and the route combinations, come from
//! `routes`, exactly as for `envoy`; only the way they reach the proxy
//! differs. First-class resources where they fit, an EnvoyFilter otherwise:
//!
//! - On a caller's side (Egress), a `VirtualService` per callee host: one
//!   HTTP route per combination, limited to the caller by `sourceLabels`,
//!   the context guard as a regex on the context header (the same regex as
//!   Envoy's), other tests as `headers`, `withoutHeaders`, `uri`, `method`;
//!   `RouteToVersion` routes to a subset of the callee's `DestinationRule`,
//!   `Deny` is a `directResponse`, header changes are `headers`.
//! - On a callee's side (Ingress), where a VirtualService never applies: a
//!   DENY `AuthorizationPolicy` for a policy that only denies with 403 and
//!   whose conditions and context fit its exact-value matchers; anything
//!   else (header changes, other statuses, contexts that need a regex, rate
//!   limits) is an `EnvoyFilter` that inserts the Envoy routes of `envoy`
//!   first into the inbound route configuration, and the local rate limit
//!   and Lua HTTP filters where the routes use them.
//! - A caller's routes that a VirtualService cannot express (a response
//!   header that depends on the status, a rate limit, several different
//!   context guards on one route) are inserted the same way into the
//!   outbound virtual host of that callee.
//! - A `Sidecar` per chosen workload, limiting its egress hosts to its
//!   callees (and `istio-system`).
//! - At an entry point that only the outside calls, the service's
//!   `EnvoyFilter` also removes the context header from every request as it
//!   arrives, so that no client can forge a context: a MERGE into each HTTP
//!   connection manager of the inbound listener adds Envoy's early header
//!   mutation (as `envoy` does; Istio 1.22 or later). It runs before the
//!   route is picked and before every HTTP filter, Istio's RBAC included,
//!   so no route, AuthorizationPolicy or `%REQ(..)%` sees a forged value,
//!   and the application gets none. Neither a `request_headers_to_remove`
//!   of the route configuration (applied when the router forwards) nor an
//!   HTTP filter inserted first (the route is picked before the filters
//!   run) would keep a forged header from the routes. An entry point that
//!   services of the mesh call too keeps the header: the sidecar cannot
//!   tell their requests from the outside's.
//!
//! Workloads are selected by the pod label `app: <service>`, versions by
//! `version: <version>`, and a service's host is the Kubernetes Service
//! `<service>.<namespace>.svc.cluster.local` on the graph's app port.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::context_regex::{Intersection, intersection};
use super::k8s::{self, meta};
use super::routes::{Combination, Enforced, combinations, effect, envoy_header_value, sidecar_plan};
use super::rules::{Action, Rule, Subject};
use super::{EmitInput, OutFile, envoy, yaml};
use crate::analysis::encoding::CONTEXT_HEADER;
use crate::diag::{Code, Diagnostic};
use crate::graph::ServiceId;

/// EnvoyFilter priority of every copperc filter: after Istio's own
/// (priority 0) and most user filters, so that INSERT_FIRST puts ours first.
pub const ENVOY_FILTER_PRIORITY: i64 = 10;

/// Istio's root namespace (its control plane and telemetry services).
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// The sidecars that Istio injects and configures.
pub fn is_istio_dataplane(name: &str) -> bool {
    name.starts_with("istio")
}

/// One object to write, with the policies it realises.
struct Object<'a> {
    kind: &'static str,
    name: String,
    policies: BTreeSet<&'a str>,
    api_version: &'static str,
    spec: Value,
}

impl Object<'_> {
    /// The file of the object; an empty regex in it is an error instead
    /// (`super::empty_regexes`).
    fn file(&self, namespace: &str, program: &crate::check::Program) -> Result<OutFile, Vec<Diagnostic>> {
        let doc = json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": meta(&self.name, namespace, &self.policies),
            "spec": self.spec,
        });
        let path = format!("istio/{}-{}.yaml", self.kind.to_ascii_lowercase(), self.name);
        let empty = super::empty_regexes(&doc, &path, program);
        if !empty.is_empty() {
            return Err(empty);
        }
        Ok(OutFile::text(path, yaml::to_yaml(&doc)))
    }
}

/// The routes of one caller in a callee's VirtualService.
struct CallerRoutes<'a> {
    routes: Vec<Value>,
    policies: BTreeSet<&'a str>,
}

pub fn emit(input: &EmitInput, rules: &[Vec<Rule>]) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let g = input.graph;
    let ns = input.cluster.namespace;
    let mut objects: Vec<Object> = Vec::new();
    let mut diags = Vec::new();
    // Per callee: the routes of each caller whose sidecar enforces policies
    // on its calls to it.
    let mut virtual_services: BTreeMap<ServiceId, Vec<CallerRoutes>> = BTreeMap::new();
    // Per callee: the policies that route to one of its versions.
    let mut subsets: BTreeMap<ServiceId, BTreeSet<&str>> = BTreeMap::new();
    for (s, dp) in input.placement.sidecars.iter().enumerate() {
        if !dp.as_deref().is_some_and(is_istio_dataplane) {
            continue;
        }
        let name = g.services[s].name.as_str();
        let plan = sidecar_plan(input, rules, s);
        let mut enforced: BTreeSet<&str> = plan.inbound.iter().map(|p| p.policy).collect();
        enforced.extend(plan.outbound.values().flatten().map(|p| p.policy));
        objects.push(Object {
            kind: "Sidecar",
            name: name.to_string(),
            policies: enforced,
            api_version: "networking.istio.io/v1",
            spec: sidecar_spec(input, name, &plan.callees),
        });

        // Inbound: an AuthorizationPolicy for what fits, routes for the rest.
        let mut deny_rules = Vec::new();
        let mut deny_policies = BTreeSet::new();
        let mut rest = Vec::new();
        for p in &plan.inbound {
            match authorization_rules(p) {
                Some(r) if !r.is_empty() => {
                    deny_rules.extend(r);
                    deny_policies.insert(p.policy);
                }
                Some(_) => {}
                None => rest.push(p.clone()),
            }
        }
        if !deny_rules.is_empty() {
            objects.push(Object {
                kind: "AuthorizationPolicy",
                name: name.to_string(),
                policies: deny_policies,
                api_version: "security.istio.io/v1",
                spec: json!({
                    "selector": {"matchLabels": {"app": name}},
                    "action": "DENY",
                    "rules": deny_rules,
                }),
            });
        }
        let mut patches = Vec::new();
        let mut patched = BTreeSet::new();
        let port = g.services[s].ports.app;
        match combinations(&rest) {
            Ok(combos) => {
                let cluster = format!("inbound|{port}||");
                let action = |_: Option<&str>| {
                    json!({
                        "cluster": cluster,
                        "timeout": "0s",
                        "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"},
                    })
                };
                let routes: Vec<Value> = combos.iter().flat_map(|c| envoy::routes(c, &action)).collect();
                patched.extend(combos.iter().flat_map(|c| c.policies.iter().map(|&i| rest[i].policy)));
                let vhost = json!({"portNumber": port, "vhost": {"name": format!("inbound|http|{port}")}});
                patches.extend(route_patches("SIDECAR_INBOUND", &vhost, routes));
            }
            Err(d) => diags.push(d.at(
                input.program.policies[rest.first().map_or(0, |p| p.index)].name_span,
                format!("enforced on the inbound side of `{name}`"),
            )),
        }

        // Outbound: a VirtualService per callee where the routes fit.
        for (&v, policies) in &plan.outbound {
            let callee = &g.services[v];
            let combos = match combinations(policies) {
                Ok(c) => c,
                Err(d) => {
                    diags.push(d.at(
                        input.program.policies[policies.first().map_or(0, |p| p.index)].name_span,
                        format!("enforced on `{name}`'s calls to `{}`", callee.name),
                    ));
                    continue;
                }
            };
            let host = host(&callee.name, ns);
            for p in policies {
                if p.rules
                    .iter()
                    .any(|r| r.actions.iter().any(|a| matches!(a, Action::RouteToVersion(_))))
                {
                    subsets.entry(v).or_default().insert(p.policy);
                }
            }
            let fitted: Option<Vec<Value>> = combos
                .iter()
                .map(|c| vs_route(name, c, &host))
                .collect::<Option<Vec<Option<Value>>>>()
                .map(|routes| routes.into_iter().flatten().collect());
            let used: BTreeSet<&str> = combos
                .iter()
                .flat_map(|c| c.policies.iter().map(|&i| policies[i].policy))
                .collect();
            match fitted {
                Some(routes) if !routes.is_empty() => virtual_services
                    .entry(v)
                    .or_default()
                    .push(CallerRoutes { routes, policies: used }),
                Some(_) => {}
                None => {
                    let vport = callee.ports.app;
                    let action = |version: Option<&str>| {
                        json!({
                            "cluster": format!("outbound|{vport}|{}|{host}", version.unwrap_or("")),
                            "timeout": "0s",
                        })
                    };
                    let routes: Vec<Value> = combos.iter().flat_map(|c| envoy::routes(c, &action)).collect();
                    patched.extend(used);
                    let vhost = json!({"portNumber": vport, "vhost": {"name": format!("{host}:{vport}")}});
                    patches.extend(route_patches("SIDECAR_OUTBOUND", &vhost, routes));
                }
            }
        }
        let mut patches = with_http_filters(patches);
        if plan.outside_only {
            patches.insert(0, strip_context_patch());
        }
        if !patches.is_empty() {
            objects.push(Object {
                kind: "EnvoyFilter",
                name: name.to_string(),
                policies: patched,
                api_version: "networking.istio.io/v1alpha3",
                spec: json!({
                    "workloadSelector": {"labels": {"app": name}},
                    "priority": ENVOY_FILTER_PRIORITY,
                    "configPatches": patches,
                }),
            });
        }
    }

    for (v, callers) in virtual_services {
        let callee = &g.services[v].name;
        let host = host(callee, ns);
        let mut http = Vec::new();
        let mut policies = BTreeSet::new();
        for c in callers {
            http.extend(c.routes);
            policies.extend(c.policies);
        }
        http.push(json!({"name": "default", "route": [{"destination": {"host": host}}]}));
        objects.push(Object {
            kind: "VirtualService",
            name: callee.clone(),
            policies,
            api_version: "networking.istio.io/v1",
            spec: json!({"hosts": [host], "http": http}),
        });
    }
    for (v, policies) in subsets {
        let svc = &g.services[v];
        let mut list = Vec::new();
        for ver in &svc.versions {
            if !crate::syntax::pattern::is_dns_label(ver) {
                diags.push(
                    Diagnostic::new(
                        Code::NotExpressible,
                        format!("version `{ver}` of `{}` cannot name an Istio subset", svc.name),
                    )
                    .at(svc.span, "a subset name must be a DNS label")
                    .with_help("use lowercase letters, digits and `-` in version names"),
                );
            }
            list.push(json!({"name": ver, "labels": {"version": ver}}));
        }
        objects.push(Object {
            kind: "DestinationRule",
            name: svc.name.clone(),
            policies,
            api_version: "networking.istio.io/v1",
            spec: json!({"host": host(&svc.name, ns), "subsets": list}),
        });
    }
    let mut files: Vec<OutFile> = Vec::new();
    for o in &objects {
        match o.file(ns, input.program) {
            Ok(f) => files.push(f),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if !files.is_empty() {
        files.push(k8s::kustomization("istio", &files));
    }
    Ok(files)
}

/// The Kubernetes Service of a service.
pub fn host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

fn sidecar_spec(input: &EmitInput, name: &str, callees: &BTreeSet<ServiceId>) -> Value {
    let mut hosts: Vec<String> = callees
        .iter()
        .map(|&v| {
            let ns = input.cluster.namespace;
            format!("{ns}/{}", host(&input.graph.services[v].name, ns))
        })
        .collect();
    // Istio's own services (telemetry, tracing) stay reachable.
    hosts.push(format!("{ISTIO_NAMESPACE}/*"));
    json!({
        "workloadSelector": {"labels": {"app": name}},
        "egress": [{"hosts": hosts}],
    })
}

/// At an entry point that only the outside calls: merges into every HTTP
/// connection manager of the inbound listener the early header mutation of
/// `envoy` that removes the context header on arrival, before the route is
/// picked and before the first HTTP filter (Istio's RBAC for
/// AuthorizationPolicies, copperc's rate limit and Lua). Proto merge
/// appends to the list, so other early mutations stay.
fn strip_context_patch() -> Value {
    json!({
        "applyTo": "NETWORK_FILTER",
        "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": {
            "name": "envoy.filters.network.http_connection_manager",
        }}}},
        "patch": {"operation": "MERGE", "value": {
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "early_header_mutation_extensions": [envoy::strip_context()],
            },
        }},
    })
}

/// INSERT_FIRST patches, one per route: each goes in front of the routes
/// already there, so they are given last route first.
fn route_patches(context: &str, route_configuration: &Value, routes: Vec<Value>) -> Vec<Value> {
    routes
        .into_iter()
        .rev()
        .map(|r| {
            json!({
                "applyTo": "HTTP_ROUTE",
                "match": {"context": context, "routeConfiguration": route_configuration},
                "patch": {"operation": "INSERT_FIRST", "value": r},
            })
        })
        .collect()
}

/// Adds, in front of the route patches, the HTTP filters that the routes'
/// per-route configuration needs (local rate limit, Lua), for each context.
fn with_http_filters(routes: Vec<Value>) -> Vec<Value> {
    let mut needed: BTreeSet<(String, &str)> = BTreeSet::new();
    for p in &routes {
        let context = p["match"]["context"].as_str().unwrap_or_default().to_string();
        if let Some(cfg) = p["patch"]["value"]["typed_per_filter_config"].as_object() {
            for (filter, typ) in [
                (
                    "envoy.filters.http.local_ratelimit",
                    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                ),
                (
                    "envoy.filters.http.lua",
                    "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                ),
            ] {
                if cfg.contains_key(filter) {
                    needed.insert((context.clone(), typ));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (context, typ) in needed {
        let (name, mut config) = if typ.contains("local_ratelimit") {
            (
                "envoy.filters.http.local_ratelimit",
                json!({"stat_prefix": "copper_rate_limit"}),
            )
        } else {
            ("envoy.filters.http.lua", json!({}))
        };
        config["@type"] = json!(typ);
        out.push(json!({
            "applyTo": "HTTP_FILTER",
            "match": {"context": context, "listener": {"filterChain": {"filter": {
                "name": "envoy.filters.network.http_connection_manager",
            }}}},
            // Without per-route configuration both filters pass requests on.
            "patch": {"operation": "INSERT_FIRST", "value": {"name": name, "typed_config": config}},
        }));
    }
    out.extend(routes);
    out
}

/// The tests of one subject: the value it must equal, or those it must not.
#[derive(Default)]
struct Constraint<'a> {
    equal: Option<&'a str>,
    differ: Vec<&'a str>,
}

fn constraints<'a>(c: &'a [super::rules::Test]) -> BTreeMap<&'a Subject, Constraint<'a>> {
    let mut by: BTreeMap<&Subject, Constraint> = BTreeMap::new();
    for t in c {
        let e = by.entry(&t.subject).or_default();
        if t.equal {
            e.equal = Some(&t.value);
        } else {
            e.differ.push(&t.value);
        }
    }
    // An equality implies every (consistent) inequality on the same subject.
    for e in by.values_mut() {
        if e.equal.is_some() {
            e.differ.clear();
        }
    }
    by
}

/// The VirtualService route of one combination on `caller`'s calls to
/// `host`: `None` when a VirtualService cannot express it, `Some(None)`
/// when the combination's context guards never hold together.
fn vs_route(caller: &str, c: &Combination, host: &str) -> Option<Option<Value>> {
    // The request from outside is known by a missing context header; a
    // caller's requests always carry one, so this is the callee's side,
    // which the Envoy routes of an EnvoyFilter handle.
    if c.contexts.iter().any(|m| m.absent) {
        return None;
    }
    let Some(mut contexts) = c.header_regexes() else {
        return Some(None);
    };
    contexts.sort_unstable();
    contexts.dedup();
    // A header matcher per header name: several guards become one regex.
    let context = match contexts.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        _ => match intersection(&c.guards) {
            Intersection::Regex(re) => Some(re),
            Intersection::Empty => return Some(None),
            Intersection::TooLarge => return None,
        },
    };
    let mut m = Map::new();
    m.insert("sourceLabels".into(), json!({"app": caller}));
    let mut headers = Map::new();
    let mut without = Map::new();
    if let Some(re) = context {
        headers.insert(CONTEXT_HEADER.into(), json!({"regex": re}));
    }
    for (subject, k) in constraints(&c.tests) {
        match subject {
            Subject::Status => return None,
            Subject::Path | Subject::Method => {
                let field = if *subject == Subject::Path { "uri" } else { "method" };
                let matcher = match k.equal {
                    Some(v) => json!({"exact": v}),
                    None => json!({"regex": not_in(&k.differ)}),
                };
                m.insert(field.into(), matcher);
            }
            Subject::Header(h) => {
                if h == CONTEXT_HEADER || h.starts_with(':') {
                    return None;
                }
                // `headers` fails on a missing header; `withoutHeaders` reads
                // it as empty, as Copper does.
                match k.equal {
                    Some("") => {
                        without.insert(h.clone(), json!({"regex": "(?s:.+)"}));
                    }
                    Some(v) => {
                        headers.insert(h.clone(), json!({"exact": v}));
                    }
                    None => {
                        let matcher = match k.differ.as_slice() {
                            [one] => json!({"exact": one}),
                            many => json!({"regex": any_of(many)}),
                        };
                        without.insert(h.clone(), matcher);
                    }
                }
            }
        }
    }
    if !headers.is_empty() {
        m.insert("headers".into(), Value::Object(headers));
    }
    if !without.is_empty() {
        m.insert("withoutHeaders".into(), Value::Object(without));
    }
    let e = effect(&c.actions);
    if e.rate.is_some() {
        return None;
    }
    // Istio refuses header values with control characters other than tab.
    let values = e.set.values().chain(e.set_response.values());
    if values
        .map(|v| envoy_header_value(v))
        .any(|v| v.chars().any(|ch| ch.is_control() && ch != '\t'))
    {
        return None;
    }
    let mut route = json!({"name": format!("{caller}/{}", c.name), "match": [m]});
    if let Some(status) = e.deny {
        route["directResponse"] = json!({"status": status});
    } else {
        let mut destination = json!({"host": host});
        if let Some(v) = e.version {
            destination["subset"] = json!(v);
        }
        route["route"] = json!([{"destination": destination}]);
    }
    let mut request = Map::new();
    if !e.set.is_empty() {
        let set: Map<String, Value> = e
            .set
            .iter()
            .map(|(k, v)| (k.to_string(), json!(envoy_header_value(v))))
            .collect();
        request.insert("set".into(), Value::Object(set));
    }
    if !e.remove.is_empty() {
        request.insert("remove".into(), json!(e.remove));
    }
    if !request.is_empty() {
        route["headers"]["request"] = Value::Object(request);
    }
    if !e.set_response.is_empty() {
        let set: Map<String, Value> = e
            .set_response
            .iter()
            .map(|(k, v)| (k.to_string(), json!(envoy_header_value(v))))
            .collect();
        route["headers"]["response"] = json!({"set": set});
    }
    Some(Some(route))
}

/// The DENY rules of an inbound policy when an AuthorizationPolicy
/// expresses it exactly: every rule that acts only denies with 403, tests
/// compare with non-empty values without `*` (Istio's wildcard) or `{`
/// (path templates), and the context guard, if any, is a finite set of
/// non-empty header values, the absence of the header (the request from
/// outside: `notValues: ["*"]`, which Istio turns into a negated presence
/// match), or both (each rule twice: the conditions of a rule are a
/// conjunction, the rules a disjunction). `None` otherwise.
fn authorization_rules(p: &Enforced) -> Option<Vec<Value>> {
    let plain = |v: &str| !v.is_empty() && !v.contains('*') && !v.contains('{');
    let key = format!("request.headers[{CONTEXT_HEADER}]");
    let contexts: Vec<Option<Value>> = match (&p.context, &p.context_values) {
        (None, _) => vec![None],
        (Some(m), values) => {
            let mut out = Vec::new();
            if m.absent {
                out.push(Some(json!({"key": key, "notValues": ["*"]})));
            }
            match (&m.regex, values) {
                (None, _) => {}
                (Some(_), Some(values)) if !values.is_empty() && values.iter().all(|v| plain(v)) => {
                    out.push(Some(json!({"key": key, "values": values})));
                }
                (Some(_), _) => return None,
            }
            out
        }
    };
    let mut out = Vec::new();
    for r in &p.rules {
        if r.actions.is_empty() {
            continue;
        }
        if !r.actions.iter().all(|a| matches!(a, Action::Deny(403))) {
            return None;
        }
        let mut operation = Map::new();
        let mut when: Vec<Value> = Vec::new();
        for (subject, k) in constraints(&r.tests) {
            if !k.equal.into_iter().chain(k.differ.iter().copied()).all(plain) {
                return None;
            }
            let (yes, no) = match subject {
                Subject::Status => return None,
                Subject::Path => ("paths", "notPaths"),
                Subject::Method => ("methods", "notMethods"),
                Subject::Header(h) => {
                    let key = format!("request.headers[{h}]");
                    match k.equal {
                        Some(v) => when.push(json!({"key": key, "values": [v]})),
                        None => when.push(json!({"key": key, "notValues": k.differ})),
                    }
                    continue;
                }
            };
            match k.equal {
                Some(v) => operation.insert(yes.into(), json!([v])),
                None => operation.insert(no.into(), json!(k.differ)),
            };
        }
        for context in &contexts {
            let mut rule = Map::new();
            if !operation.is_empty() {
                rule.insert("to".into(), json!([{"operation": operation}]));
            }
            let when: Vec<Value> = context.iter().cloned().chain(when.iter().cloned()).collect();
            if !when.is_empty() {
                rule.insert("when".into(), Value::Array(when));
            }
            out.push(Value::Object(rule));
        }
    }
    Some(out)
}

/// A regex (whole-value match, RE2 and regex-automata) for exactly the
/// given strings.
fn any_of(values: &[&str]) -> String {
    let arms: Vec<String> = values.iter().map(|v| regex_syntax::escape(v)).collect();
    format!("(?:{})", arms.join("|"))
}

#[derive(Default)]
struct Trie {
    terminal: bool,
    children: BTreeMap<char, Trie>,
}

/// A regex (whole-value match) for every string except the given ones,
/// written out from their trie: RE2 has no negative lookahead.
pub fn not_in(values: &[&str]) -> String {
    let mut root = Trie::default();
    for v in values {
        let mut node = &mut root;
        for c in v.chars() {
            node = node.children.entry(c).or_default();
        }
        node.terminal = true;
    }
    complement(&root)
}

/// The rests w such that (the prefix of `node`) w is not excluded: the
/// empty rest unless the prefix is excluded, a character that leaves the
/// trie followed by anything, or one that stays in it followed by the
/// complement below.
fn complement(node: &Trie) -> String {
    let mut arms = Vec::new();
    if !node.terminal {
        arms.push(String::new());
    }
    if node.children.is_empty() {
        arms.push("(?s:.+)".to_string());
    } else {
        let class: String = node
            .children
            .keys()
            .map(|c| format!("\\x{{{:x}}}", u32::from(*c)))
            .collect();
        arms.push(format!("[^{class}](?s:.*)"));
    }
    for (c, child) in &node.children {
        arms.push(format!("{}{}", regex_syntax::escape(&c.to_string()), complement(child)));
    }
    format!("(?:{})", arms.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;

    fn full(re: &str) -> Regex {
        Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    #[test]
    fn not_in_excludes_exactly_the_values() {
        let values = ["GET", "HEAD", "/admin", "/a", "caf\u{e9}", "x.y"];
        let re = full(&not_in(&values));
        for v in values {
            assert!(!re.is_match(v), "{v}");
        }
        for v in [
            "", "G", "GE", "GETS", "POST", "/", "/ad", "/admin/", "/b", "caf", "cafe", "x-y", "xy", "a\nb",
        ] {
            assert!(re.is_match(v), "{v:?}");
        }
        assert!(full(&not_in(&[])).is_match(""));
        assert!(full(&not_in(&[""])).is_match("a"));
        assert!(!full(&not_in(&[""])).is_match(""));
    }

    #[test]
    fn any_of_is_literal() {
        let re = full(&any_of(&["a.b", "c|d"]));
        assert!(re.is_match("a.b") && re.is_match("c|d"));
        assert!(!re.is_match("axb") && !re.is_match("c"));
    }
}
