//! Support and sides (design brief, "Placement semantics"): a dataplane d
//! supports policy p when it implements p's ACT and every method in M(p);
//! side_d(p) is the intersection of those methods' sides. Reports policies
//! that no dataplane supports, and policies whose side set is empty on every
//! dataplane that supports them.

use std::collections::BTreeMap;

use super::model::{InterfaceDb, SideSet};
use super::policies::backticked;
use crate::diag::{Code, Diagnostic};
use crate::source::Span;
use crate::syntax::ast;

/// side_d(p) for every supporting dataplane with a non-empty side set, or an error.
pub fn support(
    db: &InterfaceDb,
    p: &ast::PolicyDecl,
    methods: &BTreeMap<String, Vec<Span>>,
) -> Result<BTreeMap<String, SideSet>, Diagnostic> {
    let act = &p.act.name;
    let mut sides_by_dp: BTreeMap<String, SideSet> = BTreeMap::new();
    let mut lacking: Vec<String> = Vec::new();
    for (name, dp) in &db.dataplanes {
        let Some(impls) = dp.acts.get(act) else {
            lacking.push(format!("`{name}` does not implement `{act}`"));
            continue;
        };
        let missing: Vec<&str> = methods
            .keys()
            .filter(|m| !impls.contains_key(*m))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            lacking.push(format!("`{name}` lacks {}", backticked(&missing)));
            continue;
        }
        let sides = methods
            .keys()
            .filter_map(|m| impls.get(m))
            .fold(SideSet::BOTH, |acc, m| acc.intersect(m.sides));
        sides_by_dp.insert(name.clone(), sides);
    }
    if sides_by_dp.is_empty() {
        let mut d = Diagnostic::new(Code::Unsupported, format!("no loaded dataplane can enforce policy `{}`", p.name.name))
            .at(p.name.span, "supported by no dataplane")
            .with_help("split the policy so that each part uses methods one dataplane implements, or load an interface that implements them all");
        for l in lacking {
            d = d.with_note(l);
        }
        return Err(d);
    }
    let usable: BTreeMap<String, SideSet> = sides_by_dp
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(n, s)| (n.clone(), *s))
        .collect();
    if !usable.is_empty() {
        return Ok(usable);
    }
    let mut d = Diagnostic::new(
        Code::NoSide,
        format!("no single sidecar can enforce policy `{}`", p.name.name),
    )
    .at(p.name.span, "its methods need both sides at once")
    .with_help("split the policy into one policy per side");
    let mut labelled = false;
    for name in sides_by_dp.keys() {
        let Some(impls) = db.dataplanes.get(name).and_then(|dp| dp.acts.get(act)) else {
            continue;
        };
        let mut pulls = Vec::new();
        for (m, spans) in methods {
            let Some(imp) = impls.get(m) else { continue };
            if imp.sides == SideSet::BOTH {
                continue;
            }
            pulls.push(format!("`{m}` runs {}", side_words(imp.sides)));
            if !labelled && let Some(first) = spans.first() {
                d = d.with_label(*first, format!("runs {} on `{name}`", side_words(imp.sides)));
            }
        }
        labelled = true;
        d = d.with_note(format!("on `{name}`: {}", pulls.join(", ")));
    }
    Err(d)
}

fn side_words(s: SideSet) -> &'static str {
    match (s.ingress, s.egress) {
        (true, false) => "only at Ingress (the callee's sidecar)",
        (false, true) => "only at Egress (the caller's sidecar)",
        (true, true) => "at either side",
        (false, false) => "at no side",
    }
}
