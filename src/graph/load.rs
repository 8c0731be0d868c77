//! Parses call-graph JSON into a `CallGraph`, reporting every problem with
//! its JSON path and the span of the value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Call, CallGraph, Service, ServiceId};
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::pattern::is_dns_label;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph<'a> {
    #[serde(borrow)]
    services: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    calls: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    entrypoints: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    ports: Option<std::collections::BTreeMap<String, &'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPorts<'a> {
    #[serde(borrow, default)]
    address: Option<&'a RawValue>,
    #[serde(borrow, default)]
    app: Option<&'a RawValue>,
    #[serde(borrow, default)]
    inbound: Option<&'a RawValue>,
    #[serde(borrow, default)]
    outbound: Option<&'a RawValue>,
    #[serde(borrow, default)]
    versions: Option<std::collections::BTreeMap<String, &'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersionPorts<'a> {
    #[serde(borrow, default)]
    address: Option<&'a RawValue>,
    #[serde(borrow, default)]
    app: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService<'a> {
    #[serde(borrow)]
    name: &'a RawValue,
    #[serde(borrow, default)]
    replicas: Option<&'a RawValue>,
    #[serde(borrow, default)]
    versions: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall<'a> {
    #[serde(borrow)]
    from: &'a RawValue,
    #[serde(borrow)]
    to: &'a RawValue,
    #[serde(borrow, default)]
    rps: Option<&'a RawValue>,
}

struct Loader<'a> {
    file: FileId,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl<'a> Loader<'a> {
    fn span(&self, raw: &RawValue) -> Span {
        let start = (raw.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        Span::new(self.file, start, start + raw.get().len())
    }

    fn invalid(&mut self, raw: &RawValue, path: &str, what: &str) {
        let span = self.span(raw);
        self.diags.push(
            Diagnostic::new(Code::GraphInvalidValue, format!("`{path}` must be {what}"))
                .at(span, format!("found `{}`", abbreviate(raw.get()))),
        );
    }

    /// Decodes one element of `services` or `calls` as an object of known keys.
    fn object<T: serde::Deserialize<'a>>(&mut self, raw: &'a RawValue, path: &str, keys: &str) -> Option<T> {
        let span = self.span(raw);
        if !raw.get().starts_with('{') {
            self.diags.push(
                Diagnostic::new(Code::GraphInvalidValue, format!("`{path}` must be an object"))
                    .at(span, format!("found `{}`", abbreviate(raw.get())))
                    .with_help(format!("write it as {{{keys}}}")),
            );
            return None;
        }
        match serde_json::from_str::<T>(raw.get()) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string();
                let d = if let Some(field) = quoted_after(&msg, "unknown field `") {
                    let quoted = format!("\"{field}\"");
                    let at = raw.get().find(&quoted).map(|i| span.start + i).unwrap_or(span.start);
                    Diagnostic::new(Code::GraphUnknownKey, format!("unknown key `{field}` in `{path}`"))
                        .at(
                            Span::new(self.file, at, at + quoted.len()),
                            "not a key of the call graph format",
                        )
                        .with_help(format!("the keys are {keys}"))
                } else if let Some(field) = quoted_after(&msg, "missing field `") {
                    Diagnostic::new(Code::GraphInvalidValue, format!("`{path}` has no `{field}`"))
                        .at(span, format!("`{field}` is required"))
                } else {
                    Diagnostic::new(
                        Code::GraphInvalidValue,
                        format!(
                            "`{path}` is not valid: {}",
                            msg.split(" at line ").next().unwrap_or(&msg)
                        ),
                    )
                    .at(span, "here")
                };
                self.diags.push(d);
                None
            }
        }
    }

    fn port(&mut self, raw: &RawValue, path: &str) -> Option<u16> {
        match serde_json::from_str::<u16>(raw.get()) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.invalid(raw, path, "a port number from 1 to 65535");
                None
            }
        }
    }

    /// A host name or IP address: no spaces, slashes or colons (ports go
    /// in their own keys), so it can go into any configuration unquoted.
    fn address(&mut self, raw: &RawValue, path: &str) -> Option<String> {
        let a = self.string(raw, path)?;
        let ok =
            !a.is_empty() && a.len() <= 253 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            self.invalid(raw, path, "a host name or IPv4 address");
            return None;
        }
        Some(a)
    }

    fn string(&mut self, raw: &RawValue, path: &str) -> Option<String> {
        match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => Some(s),
            Err(_) => {
                self.invalid(raw, path, "a string");
                None
            }
        }
    }

    fn service_name(&mut self, raw: &RawValue, path: &str) -> Option<String> {
        let name = self.string(raw, path)?;
        if !is_dns_label(&name) {
            let span = self.span(raw);
            let fixed = name.to_lowercase().replace(['_', '.'], "-");
            let mut d = Diagnostic::new(
                Code::GraphInvalidName,
                format!("`{path}`: `{name}` is not a valid service name"),
            )
            .at(span, "not a DNS label");
            if is_dns_label(&fixed) {
                d = d.with_help(format!("did you mean `{fixed}`?"));
            }
            self.diags.push(d);
            return None;
        }
        Some(name)
    }
}

fn quoted_after<'m>(msg: &'m str, prefix: &str) -> Option<&'m str> {
    msg.split_once(prefix).and_then(|(_, rest)| rest.split('`').next())
}

fn abbreviate(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(37).collect::<String>())
    } else {
        s
    }
}

/// Parses a call graph. The graph is `Some` when there are no errors
/// (warnings may remain).
pub fn parse_graph(sources: &SourceMap, file: FileId) -> (Option<CallGraph>, Vec<Diagnostic>) {
    let text = sources.text(file);
    if !text.trim_start().starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        let start = text.len() - text.trim_start().len();
        return (
            None,
            vec![
                Diagnostic::new(Code::GraphInvalidValue, "the call graph must be a JSON object")
                    .at(Span::new(file, start, (start + 1).min(text.len())), "not an object")
                    .with_help("write {\"services\": [...], \"calls\": [...], \"entrypoints\": [...]}"),
            ],
        );
    }
    let raw: RawGraph = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return (None, vec![serde_error(sources, file, text, &e)]),
    };
    let mut l = Loader {
        file,
        text,
        diags: Vec::new(),
    };

    let mut services: Vec<Service> = Vec::new();
    let mut by_name: BTreeMap<String, ServiceId> = BTreeMap::new();
    for (i, raw_service) in raw.services.iter().enumerate() {
        let path = format!("services[{i}]");
        let Some(s) = l.object::<RawService>(raw_service, &path, "`name`, `replicas`, `versions`") else {
            continue;
        };
        let name = l.service_name(s.name, &format!("{path}.name"));
        let replicas = match s.replicas {
            None => Some(1),
            Some(r) => match serde_json::from_str::<u64>(r.get()) {
                Ok(n) => Some(n),
                Err(_) => {
                    l.invalid(r, &format!("{path}.replicas"), "a non-negative integer");
                    None
                }
            },
        };
        let versions = match s.versions {
            None => Some(vec!["v1".to_string()]),
            Some(v) => match serde_json::from_str::<Vec<String>>(v.get()) {
                Ok(vs)
                    if !vs.is_empty()
                        && vs.iter().collect::<BTreeSet<_>>().len() == vs.len()
                        && vs.iter().all(|x| is_label_value(x)) =>
                {
                    Some(vs)
                }
                _ => {
                    l.invalid(
                        v,
                        &format!("{path}.versions"),
                        "a non-empty list of distinct version names (Kubernetes label values: letters, digits, `-`, `_`, `.`, at most 63, starting and ending with a letter or digit)",
                    );
                    None
                }
            },
        };
        let (Some(name), Some(replicas), Some(versions)) = (name, replicas, versions) else {
            continue;
        };
        let span = l.span(s.name);
        if let Some(&first) = by_name.get(&name) {
            let first_span = services[first].span;
            l.diags.push(
                Diagnostic::new(Code::GraphDuplicateService, format!("service `{name}` is listed twice"))
                    .at(span, "listed again here")
                    .with_label(first_span, "first listed here"),
            );
            continue;
        }
        by_name.insert(name.clone(), services.len());
        services.push(Service {
            ports: super::Ports::defaults(&name),
            name,
            replicas,
            versions,
            span,
        });
    }

    let resolve = |l: &mut Loader, raw: &RawValue, path: String| -> Option<ServiceId> {
        let name = l.string(raw, &path)?;
        match by_name.get(&name) {
            Some(&id) => Some(id),
            None => {
                let span = l.span(raw);
                let mut d = Diagnostic::new(Code::GraphUnknownService, format!("`{path}`: unknown service `{name}`"))
                    .at(span, "not listed in `services`");
                if let Some(s) = crate::diag::suggest(&name, by_name.keys().map(String::as_str)) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                l.diags.push(d);
                None
            }
        }
    };

    let mut calls: BTreeMap<(ServiceId, ServiceId), Call> = BTreeMap::new();
    for (i, raw_call) in raw.calls.iter().enumerate() {
        let Some(c) = l.object::<RawCall>(raw_call, &format!("calls[{i}]"), "`from`, `to`, `rps`") else {
            continue;
        };
        let from = resolve(&mut l, c.from, format!("calls[{i}].from"));
        let to = resolve(&mut l, c.to, format!("calls[{i}].to"));
        let rps = match c.rps {
            None => Some(None),
            Some(r) => match serde_json::from_str::<f64>(r.get()) {
                Ok(x) if x.is_finite() && x >= 0.0 => Some(Some(x)),
                _ => {
                    l.invalid(r, &format!("calls[{i}].rps"), "a non-negative number");
                    None
                }
            },
        };
        let (Some(from), Some(to), Some(rps)) = (from, to, rps) else {
            continue;
        };
        let span = l.span(c.from).to(l.span(c.to));
        calls
            .entry((from, to))
            .and_modify(|existing| {
                // Merged duplicates add their rates.
                existing.rps = match (existing.rps, rps) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
            })
            .or_insert(Call { from, to, rps, span });
    }

    let entrypoints: Vec<ServiceId> = match &raw.entrypoints {
        Some(list) => {
            let mut ids: Vec<ServiceId> = list
                .iter()
                .enumerate()
                .filter_map(|(i, r)| resolve(&mut l, r, format!("entrypoints[{i}]")))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
        None => {
            let reached: BTreeSet<ServiceId> = calls.keys().map(|&(_, to)| to).collect();
            let ids: Vec<ServiceId> = (0..services.len()).filter(|i| !reached.contains(i)).collect();
            if ids.is_empty() && !services.is_empty() {
                let span = Span::new(file, 0, 1);
                l.diags.push(
                    Diagnostic::new(
                        Code::GraphNoEntrypoints,
                        "every service is called by another, so the entry points cannot be inferred",
                    )
                    .at(span, "this graph has no `entrypoints`")
                    .with_help("add `\"entrypoints\": [\"<service that receives outside traffic>\"]`"),
                );
            }
            ids
        }
    };

    if let Some(ports) = &raw.ports {
        for (name, raw_ports) in ports {
            let path = format!("ports.{name}");
            let Some(&id) = by_name.get(name) else {
                let span = l.span(raw_ports);
                l.diags.push(
                    Diagnostic::new(
                        Code::GraphUnknownService,
                        format!("`ports` names unknown service `{name}`"),
                    )
                    .at(span, "not listed in `services`"),
                );
                continue;
            };
            let keys = "`address`, `app`, `inbound`, `outbound`, `versions`";
            let Some(rp) = l.object::<RawPorts>(raw_ports, &path, keys) else {
                continue;
            };
            let mut ports = super::Ports::defaults(name);
            if let Some(a) = rp.address.and_then(|a| l.address(a, &format!("{path}.address"))) {
                ports.address = a;
            }
            if let Some(p) = rp.app.and_then(|p| l.port(p, &format!("{path}.app"))) {
                ports.app = p;
            }
            if let Some(p) = rp.inbound.and_then(|p| l.port(p, &format!("{path}.inbound"))) {
                ports.inbound = p;
                ports.inbound_explicit = true;
            }
            if let Some(p) = rp.outbound.and_then(|p| l.port(p, &format!("{path}.outbound"))) {
                ports.outbound = p;
            }
            for (version, raw_v) in rp.versions.iter().flatten() {
                let vpath = format!("{path}.versions.{version}");
                if !services[id].versions.contains(version) {
                    let span = l.span(raw_v);
                    l.diags.push(
                        Diagnostic::new(
                            Code::GraphInvalidValue,
                            format!("`{vpath}`: `{name}` has no version `{version}`"),
                        )
                        .at(span, format!("`{name}` has {}", services[id].versions.join(", "))),
                    );
                    continue;
                }
                let Some(rv) = l.object::<RawVersionPorts>(raw_v, &vpath, "`address`, `app`") else {
                    continue;
                };
                let mut at = ports.version(name, version);
                if let Some(a) = rv.address.and_then(|a| l.address(a, &format!("{vpath}.address"))) {
                    at.0 = a;
                }
                if let Some(p) = rv.app.and_then(|p| l.port(p, &format!("{vpath}.app"))) {
                    at.1 = p;
                }
                ports.versions.insert(version.clone(), at);
            }
            services[id].ports = ports;
        }
    }

    let has_errors = l.diags.iter().any(Diagnostic::is_error);
    let graph = CallGraph {
        services,
        calls: calls.into_values().collect(),
        entrypoints,
    };
    if !has_errors {
        l.diags.extend(unreachable_warnings(&graph));
    }
    (if has_errors { None } else { Some(graph) }, l.diags)
}

/// A Kubernetes label value: versions become `version` labels of pods.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn unreachable_warnings(g: &CallGraph) -> Vec<Diagnostic> {
    let mut callees: Vec<Vec<ServiceId>> = vec![Vec::new(); g.services.len()];
    for c in &g.calls {
        callees[c.from].push(c.to);
    }
    let mut seen = vec![false; g.services.len()];
    let mut stack: Vec<ServiceId> = g.entrypoints.clone();
    while let Some(s) = stack.pop() {
        if std::mem::replace(&mut seen[s], true) {
            continue;
        }
        stack.extend(callees[s].iter().copied().filter(|&t| !seen[t]));
    }
    g.services
        .iter()
        .enumerate()
        .filter(|(i, _)| !seen[*i])
        .map(|(_, s)| {
            Diagnostic::new(
                Code::GraphUnreachable,
                format!("service `{}` is not reachable from any entry point", s.name),
            )
            .at(s.span, "no chain of calls from an entry point reaches it")
            .with_note("requests it sends have no context, so no policy matches them")
        })
        .collect()
}

fn serde_error(sources: &SourceMap, file: FileId, text: &str, e: &serde_json::Error) -> Diagnostic {
    let mut offset = sources.offset_of(file, e.line(), e.column());
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    if let Some(field) = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        // serde reports the position after the key: point at the key itself.
        let quoted = format!("\"{field}\"");
        let limit = (offset + quoted.len()).min(text.len());
        if let Some(pos) = text.get(..limit).and_then(|t| t.rfind(&quoted)) {
            offset = pos;
        }
        let end = offset + quoted.len();
        return Diagnostic::new(Code::GraphUnknownKey, format!("unknown key `{field}`"))
            .at(
                Span::new(file, offset, end.min(text.len())),
                "not a key of the call graph format",
            )
            .with_help(
                msg.split(", expected ")
                    .nth(1)
                    .map(|e| format!("expected {e}"))
                    .unwrap_or_default(),
            );
    }
    if let Some(field) = quoted_after(&msg, "missing field `") {
        return Diagnostic::new(Code::GraphInvalidValue, format!("the call graph has no `{field}`"))
            .at(Span::new(file, 0, text.len().min(1)), format!("`{field}` is required"));
    }
    let code = if e.is_syntax() || e.is_eof() {
        Code::GraphSyntax
    } else {
        Code::GraphInvalidValue
    };
    let start = offset.saturating_sub(1).min(text.len());
    let end = (start + 1).min(text.len()).max(start);
    Diagnostic::new(code, msg).at(Span::new(file, start, end), "here")
}
