//! Checking: builds the interface database, then resolves and type-checks
//! every policy, parses its context pattern, and works out which dataplanes
//! support it on which sides. Hands a `model::Program` to context analysis.
//! Reads nothing itself: every text comes from the `SourceMap`.

pub mod interfaces;
pub mod model;
pub mod policies;
pub mod support;

use std::collections::BTreeSet;

use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, SourceMap};
use crate::syntax::{self, pattern};

pub use model::{InterfaceDb, Program};

/// What to check.
pub struct CheckInput<'a> {
    pub interface_files: &'a [FileId],
    pub policy_files: &'a [FileId],
    /// Service names of the call graph, when one is given: names in patterns
    /// that are not among them get a warning.
    pub graph_services: Option<&'a BTreeSet<String>>,
}

/// Runs every check. The program is `Some` when no error was found
/// (warnings may still be present).
pub fn check(sources: &SourceMap, input: &CheckInput) -> (Option<Program>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut iface_asts = Vec::new();
    for &f in input.interface_files {
        match syntax::parse_interface_file(f, sources.text(f)) {
            Ok(ast) => iface_asts.push(ast),
            Err(ds) => diags.extend(ds),
        }
    }
    let (db, ds) = interfaces::build_interface_db(&iface_asts);
    diags.extend(ds);

    let mut policy_asts = Vec::new();
    for &f in input.policy_files {
        match syntax::parse_policy_file(f, sources.text(f)) {
            Ok(ast) => policy_asts.push(ast),
            Err(ds) => diags.extend(ds),
        }
    }
    let decls: Vec<&syntax::ast::PolicyDecl> = policy_asts.iter().flat_map(|f| &f.policies).collect();
    diags.extend(policies::check_duplicate_names(decls.iter().copied()));

    let mut checked = Vec::new();
    for decl in decls {
        let pattern = match pattern::parse_pattern(&decl.context) {
            Ok(p) => Some(p),
            Err(ds) => {
                diags.extend(ds);
                None
            }
        };
        if let (Some(p), Some(known)) = (&pattern, input.graph_services) {
            diags.extend(unknown_services(p, known));
        }
        if !policies::check_act(&db, decl, &mut diags) {
            continue;
        }
        let facts = policies::check_body(&db, decl, &mut diags);
        if !facts.ok {
            continue;
        }
        let support = match support::support(&db, decl, &facts.methods) {
            Ok(s) => s,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        if let Some(pattern) = pattern {
            checked.push(model::Policy {
                name: decl.name.name.clone(),
                name_span: decl.name.span,
                act: decl.act.name.clone(),
                binder: decl.binder.name.clone(),
                pattern,
                pattern_span: decl.context.span,
                methods: policies::method_set(&facts),
                support,
                body: decl.body.clone(),
                span: decl.span,
            });
        }
    }
    crate::diag::normalize(&mut diags);
    let program = (!diags.iter().any(Diagnostic::is_error)).then_some(Program {
        interfaces: db,
        policies: checked,
    });
    (program, diags)
}

fn unknown_services(p: &pattern::Pattern, known: &BTreeSet<String>) -> Vec<Diagnostic> {
    p.names()
        .into_iter()
        .filter(|(n, _)| !known.contains(*n))
        .map(|(n, span)| {
            let mut d = Diagnostic::new(Code::UnknownService, format!("service `{n}` is not in the call graph"))
                .at(span, "matches no service");
            if let Some(s) = crate::diag::suggest(n, known.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            d
        })
        .collect()
}
