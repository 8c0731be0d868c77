//! Envoy: one complete bootstrap per service whose sidecar is Envoy-based
//! (`envoy/<service>.yaml`, usable as `envoy -c`).
//!
//! - `inbound` listener (`0.0.0.0:<inbound port>`): requests into the
//!   service; policies enforced on the callee side; default route to the
//!   application on `127.0.0.1:<service port>`. At an entry point that only
//!   the outside calls, the HTTP connection manager removes the context
//!   header on arrival (`early_header_mutation_extensions`, see
//!   `strip_context`), before route matching and before every HTTP filter:
//!   a `request_headers_to_remove` of the route configuration would act
//!   only when the router forwards, after routes had matched on a forged
//!   value and had copied it with `%REQ(..)%`.
//! - `outbound` listener (`127.0.0.1:<outbound port>`): the application's
//!   requests to its callees, one virtual host per callee (matched on the
//!   `Host`/`:authority`), policies enforced on the caller side, default
//!   route to the callee; `RouteToVersion` routes to `<callee>-<version>`.
//!
//! With an explicit `inbound` port in the graph's `ports` section (services
//! on one host, no traffic capture), callers' sidecars send to the callee's
//! sidecar directly, and the inbound listener binds the service's address
//! when that is an IP address. One sidecar then fronts every version of
//! its service: a caller's `RouteToVersion(v)` route sends to the callee's
//! sidecar with the authority `<callee>-<v>`, and the callee's inbound
//! listener has one virtual host per version, with the same policy routes,
//! that forwards to that version (restoring the authority `<callee>`). So
//! callee-side policies hold for requests routed to a version too.
//!
//! What each sidecar enforces, and the route combinations, come from
//! `routes`; this module writes them as Envoy configuration. `routes` is
//! also used by `istio` for the routes it inserts with an EnvoyFilter.
//!
//! The context guard of a route is a header matcher on the context header:
//! its regex for the requests from services, or the absence of the header
//! for the request from outside, which carries none (an entry point that
//! services call too keeps the header, so its requests from outside are
//! known by its absence). A guard that holds on both gets two routes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::routes::{Combination, Effect, Enforced, combinations, effect, envoy_header_value, sidecar_plan};
use super::rules::{Action, Rule, Subject, Test};
use super::{EmitInput, OutFile, yaml};
use crate::analysis::encoding::CONTEXT_HEADER;
use crate::diag::Diagnostic;
use crate::graph::ServiceId;

/// RE2 program size allowed for context regexes (Envoy's default is 100).
const RE2_MAX_PROGRAM_SIZE: u32 = 20_000;
/// The Envoy-based sidecars: every service whose dataplane is not Cilium's.
pub fn is_envoy_dataplane(name: &str) -> bool {
    !name.starts_with("cilium")
}

pub fn emit(input: &EmitInput, rules: &[Vec<Rule>]) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for (s, dp) in input.placement.sidecars.iter().enumerate() {
        let Some(dp) = dp else { continue };
        if !is_envoy_dataplane(dp) {
            continue;
        }
        let path = format!("envoy/{}.yaml", input.graph.services[s].name);
        match bootstrap(input, rules, s) {
            Ok(doc) => {
                let empty = super::empty_regexes(&doc, &path, input.program);
                if empty.is_empty() {
                    files.push(OutFile::text(path, yaml::to_yaml(&doc)));
                } else {
                    diags.extend(empty);
                }
            }
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() { Ok(files) } else { Err(diags) }
}

fn bootstrap(input: &EmitInput, rules: &[Vec<Rule>], s: ServiceId) -> Result<Value, Vec<Diagnostic>> {
    let g = input.graph;
    let name = &g.services[s].name;
    let mut diags = Vec::new();
    let plan = sidecar_plan(input, rules, s);
    let outside_only = plan.outside_only;
    let inbound_policies = plan.inbound;
    let local_app = |_: Option<&str>| json!({"cluster": "local_app"});
    let mut inbound_routes = match combination_routes(&inbound_policies, &local_app) {
        Ok(r) => r,
        Err(d) => {
            diags.push(d.at(
                input.program.policies[inbound_policies.first().map_or(0, |p| p.index)].name_span,
                format!("enforced on the inbound side of `{name}`"),
            ));
            Vec::new()
        }
    };
    inbound_routes.push(json!({"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "local_app"}}));

    let here = &g.services[s].ports;
    // On one host (explicit inbound port), callers reach the sidecar at the
    // service's address: bind only that when it is an IP address.
    let inbound_address = if here.inbound_explicit && here.address.parse::<std::net::IpAddr>().is_ok() {
        here.address.as_str()
    } else {
        "0.0.0.0"
    };
    let mut clusters = vec![cluster("local_app", "127.0.0.1", here.app, "STATIC")];
    let mut vhosts = Vec::new();
    for &v in &plan.callees {
        let callee = &g.services[v];
        let out_cluster = format!("out|{}", callee.name);
        // With traffic capture (Kubernetes) the callee's sidecar takes
        // requests to its app port; without (one host), address it directly.
        let callee_has_envoy = input.placement.sidecars[v].as_deref().is_some_and(is_envoy_dataplane);
        let to_sidecar = callee_has_envoy && callee.ports.inbound_explicit;
        let port = if to_sidecar {
            callee.ports.inbound
        } else {
            callee.ports.app
        };
        clusters.push(cluster(
            &out_cluster,
            &callee.ports.address,
            port,
            cluster_kind(&callee.ports.address),
        ));
        let policies = plan.outbound.get(&v).cloned().unwrap_or_default();
        // Route action per version that a policy here routes to.
        let mut versions: BTreeMap<String, Value> = BTreeMap::new();
        for p in &policies {
            for r in &p.rules {
                for a in &r.actions {
                    let Action::RouteToVersion(ver) = a else { continue };
                    if versions.contains_key(ver) {
                        continue;
                    }
                    let c = format!("out|{}|{ver}", callee.name);
                    if to_sidecar {
                        // The callee's one sidecar fronts every version and
                        // picks it by the authority (see the module doc).
                        let address = &callee.ports.address;
                        clusters.push(cluster(&c, address, port, cluster_kind(address)));
                        versions.insert(
                            ver.clone(),
                            json!({"cluster": c, "host_rewrite_literal": version_authority(&callee.name, ver)}),
                        );
                    } else {
                        let (addr, port) = callee.ports.version(&callee.name, ver);
                        clusters.push(cluster(&c, &addr, port, cluster_kind(&addr)));
                        versions.insert(ver.clone(), json!({"cluster": c}));
                    }
                }
            }
        }
        let action = |version: Option<&str>| match version.and_then(|v| versions.get(v)) {
            Some(a) => a.clone(),
            None => json!({"cluster": out_cluster}),
        };
        let mut routes = match combination_routes(&policies, &action) {
            Ok(r) => r,
            Err(d) => {
                let pi = policies.first().map_or(0, |p| p.index);
                diags.push(d.at(
                    input.program.policies[pi].name_span,
                    format!("enforced on `{name}`'s calls to `{}`", callee.name),
                ));
                Vec::new()
            }
        };
        routes.push(json!({"name": "default", "match": {"prefix": "/"}, "route": {"cluster": out_cluster}}));
        vhosts.push(json!({
            "name": callee.name,
            "domains": [callee.name, format!("{}:*", callee.name), format!("{}.*", callee.name)],
            "routes": routes,
        }));
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut inbound_vhosts = Vec::new();
    if here.inbound_explicit {
        for ver in &g.services[s].versions {
            let c = format!("local_app|{ver}");
            let (addr, port) = here.version(name, ver);
            clusters.push(cluster(&c, &addr, port, cluster_kind(&addr)));
            let authority = version_authority(name, ver);
            let routes: Vec<Value> = inbound_routes
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.get("route").is_some() {
                        r["route"] = json!({"cluster": c, "host_rewrite_literal": name});
                    }
                    r
                })
                .collect();
            inbound_vhosts.push(json!({
                "name": authority,
                "domains": [authority, format!("{authority}:*")],
                "routes": routes,
            }));
        }
    }
    inbound_vhosts.push(json!({"name": name, "domains": ["*"], "routes": inbound_routes}));
    let inbound_config = json!({"name": "inbound", "virtual_hosts": inbound_vhosts});
    let outbound_config = json!({"name": "outbound", "virtual_hosts": vhosts});
    Ok(json!({
        "node": {"id": format!("{name}-sidecar"), "cluster": name},
        // Context regexes spell out `!(..)` as a complement over DNS labels,
        // which exceeds RE2's default program size limit of 100. The limit
        // guards against costly regexes; ours are linear in the pattern.
        "layered_runtime": {"layers": [{"name": "copperc", "static_layer": {
            "re2.max_program_size.error_level": RE2_MAX_PROGRAM_SIZE,
            "re2.max_program_size.warn_level": RE2_MAX_PROGRAM_SIZE,
        }}]},
        "static_resources": {
            "listeners": [
                listener("inbound", inbound_address, here.inbound, inbound_config, outside_only),
                listener("outbound", "127.0.0.1", here.outbound, outbound_config, false),
            ],
            "clusters": clusters,
        },
    }))
}

/// The HTTP connection manager's early header mutation that removes the
/// context header from every request as it arrives: it runs before the
/// route is picked and before the first HTTP filter (RBAC, Lua, rate
/// limits), so nothing on this listener sees a forged context. (An HTTP
/// filter such as `envoy.filters.http.header_mutation` placed first would
/// be too late for the routes: the connection manager picks the route
/// before it runs the filters, and that filter keeps the route cache.)
pub fn strip_context() -> Value {
    json!({
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [{"remove": CONTEXT_HEADER}],
        },
    })
}

/// A listener with one HTTP connection manager; `strip` removes the
/// context header on arrival (`strip_context`).
fn listener(name: &str, address: &str, port: u16, route_config: Value, strip: bool) -> Value {
    let mut l = json!({
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "codec_type": "AUTO",
                "route_config": route_config,
                "http_filters": [
                    {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                        "stat_prefix": "copper_rate_limit",
                    }},
                    {"name": "envoy.filters.http.lua", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    }},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                    }},
                ],
            },
        }]}],
    });
    if strip {
        l["filter_chains"][0]["filters"][0]["typed_config"]["early_header_mutation_extensions"] =
            json!([strip_context()]);
    }
    l
}

/// The authority that selects version `version` at the sidecar of
/// `service` when it fronts every version (explicit inbound port).
fn version_authority(service: &str, version: &str) -> String {
    format!("{service}-{version}")
}

/// IP addresses need no resolution; names are resolved by DNS.
fn cluster_kind(address: &str) -> &'static str {
    if address.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    }
}

fn cluster(name: &str, host: &str, port: u16, kind: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": port}},
        }}]}]},
    })
}

/// The routes of the combinations of firing policies, most policies first
/// (without the default route).
fn combination_routes(policies: &[Enforced], action: &dyn Fn(Option<&str>) -> Value) -> Result<Vec<Value>, Diagnostic> {
    Ok(combinations(policies)?.iter().flat_map(|c| routes(c, action)).collect())
}

/// The Envoy routes of one combination, next to each other: a route
/// matches one way of meeting the firing policies' context guards. With
/// no guard, one route; otherwise one for the requests from services,
/// whose context header matches every guard's regex, when every guard has
/// one, and one for the request from outside, which has no context
/// header, when every guard holds on it. Routes cannot say "absent or
/// matching", and an empty regex is no way to say "absent" (Envoy rejects
/// it, and it would hold on a present empty header). `action` gives the
/// route action (`route` field) for the version the combination routes
/// to, if any.
pub fn routes(c: &Combination, action: &dyn Fn(Option<&str>) -> Value) -> Vec<Value> {
    let tests: Vec<Value> = c
        .tests
        .iter()
        .filter(|t| t.subject != Subject::Status)
        .map(test_matcher)
        .collect();
    let status_tests: Vec<&Test> = c.tests.iter().filter(|t| t.subject == Subject::Status).collect();
    let mut contexts: Vec<Vec<Value>> = Vec::new();
    if c.contexts.is_empty() {
        contexts.push(Vec::new());
    } else {
        if let Some(regexes) = c.header_regexes() {
            contexts.push(
                regexes
                    .iter()
                    .map(|re| {
                        json!({
                            "name": CONTEXT_HEADER,
                            "string_match": {"safe_regex": {"regex": re}},
                            "treat_missing_header_as_empty": true,
                        })
                    })
                    .collect(),
            );
        }
        if c.from_outside() {
            contexts.push(vec![absent_header()]);
        }
    }
    contexts
        .into_iter()
        .map(|mut headers| {
            headers.extend(tests.iter().cloned());
            let mut route = json!({"name": c.name, "match": {"prefix": "/"}});
            if !headers.is_empty() {
                route["match"]["headers"] = Value::Array(headers);
            }
            apply_actions(&mut route, &effect(&c.actions), action, &status_tests);
            route
        })
        .collect()
}

/// The header matcher of the request from outside: no context header.
pub fn absent_header() -> Value {
    json!({"name": CONTEXT_HEADER, "present_match": true, "invert_match": true})
}

fn test_matcher(t: &Test) -> Value {
    let (name, string_match) = match &t.subject {
        Subject::Header(h) => (h.clone(), json!({"exact": t.value})),
        // The path test ignores the query string, as GetPath() does.
        Subject::Path => (
            ":path".to_string(),
            json!({"safe_regex": {"regex": format!("{}(?:\\?.*)?", regex_syntax::escape(&t.value))}}),
        ),
        Subject::Method => (":method".to_string(), json!({"exact": t.value})),
        // Filtered out before: status tests run in Lua on the response.
        Subject::Status => (":status".to_string(), json!({"exact": t.value})),
    };
    json!({
        "name": name,
        "string_match": string_match,
        "invert_match": !t.equal,
        "treat_missing_header_as_empty": true,
    })
}

fn apply_actions(route: &mut Value, e: &Effect, action: &dyn Fn(Option<&str>) -> Value, status_tests: &[&Test]) {
    let add: BTreeMap<&str, String> = e.set.iter().map(|(k, v)| (*k, envoy_header_value(v))).collect();
    let add_response: BTreeMap<&str, String> = e
        .set_response
        .iter()
        .map(|(k, v)| (*k, envoy_header_value(v)))
        .collect();
    let remove = &e.remove;
    let (deny, rate) = (e.deny, e.rate);
    if let Some(status) = deny {
        route["direct_response"] = json!({"status": status});
    } else {
        route["route"] = action(e.version);
    }
    if !add.is_empty() {
        route["request_headers_to_add"] = Value::Array(
            add.iter()
                .map(|(k, v)| json!({"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}))
                .collect(),
        );
    }
    if !remove.is_empty() {
        route["request_headers_to_remove"] = json!(remove);
    }
    if !add_response.is_empty() && !status_tests.is_empty() {
        // The only fallback: a response header that depends on the status.
        // Route configuration cannot see the response, so a Lua snippet,
        // selected by this route, tests the status and sets the headers.
        route["typed_per_filter_config"]["envoy.filters.http.lua"] = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "source_code": {"inline_string": lua_response(&add_response, status_tests)},
        });
    } else if !add_response.is_empty() {
        route["response_headers_to_add"] = Value::Array(
            add_response
                .iter()
                .map(|(k, v)| json!({"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}))
                .collect(),
        );
    }
    if let (Some((n, policy)), None) = (rate, deny) {
        route["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"] = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": format!("copper_{}", policy.replace('-', "_")),
            "token_bucket": {"max_tokens": n, "tokens_per_fill": n, "fill_interval": "1s"},
            "filter_enabled": {"runtime_key": "copper_rate_limit_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "copper_rate_limit_enforced", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        });
    }
    if route.get("typed_per_filter_config").is_some_and(|v| v.is_null())
        && let Some(o) = route.as_object_mut()
    {
        o.remove("typed_per_filter_config");
    }
}

/// A Lua string literal that stands for `s` byte for byte: every byte that
/// is not a letter, digit or space becomes a decimal escape.
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b' ' || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('"');
    out
}

/// Sets response headers when the status tests hold. Header values from
/// request headers are not available here and are not produced by `rules`
/// for responses with status tests.
fn lua_response(headers: &BTreeMap<&str, String>, tests: &[&Test]) -> String {
    let conds: Vec<String> = tests
        .iter()
        .map(|t| format!("status {} {}", if t.equal { "==" } else { "~=" }, lua_string(&t.value)))
        .collect();
    let mut code =
        String::from("function envoy_on_response(handle)\n  local status = handle:headers():get(\":status\")\n");
    code.push_str(&format!("  if {} then\n", conds.join(" and ")));
    for (k, v) in headers {
        // Values were escaped for Envoy's formatter; Lua writes them raw.
        code.push_str(&format!(
            "    handle:headers():replace({}, {})\n",
            lua_string(k),
            lua_string(&v.replace("%%", "%"))
        ));
    }
    code.push_str("  end\nend\n");
    code
}
