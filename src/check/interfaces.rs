//! Builds the `InterfaceDb` from parsed interface files: one entry per
//! dataplane, each method with its signature and sides. Reports duplicates,
//! unknown types and sides, bad costs, and methods that two dataplanes
//! declare with different signatures.

use std::collections::BTreeMap;

use super::model::{Dataplane, InterfaceDb, MethodImpl, SideSet, Signature, Type};
use crate::diag::{Code, Diagnostic, suggest};
use crate::syntax::ast::{self, DataplaneItem};

pub fn build_interface_db(files: &[ast::InterfaceFile]) -> (InterfaceDb, Vec<Diagnostic>) {
    let mut db = InterfaceDb::default();
    let mut diags = Vec::new();
    for decl in files.iter().flat_map(|f| &f.dataplanes) {
        if let Some(first) = db.dataplanes.get(&decl.name.name) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateDataplane,
                    format!("dataplane `{}` is declared twice", decl.name.name),
                )
                .at(decl.name.span, "declared again here")
                .with_label(first.span, "first declared here")
                .with_help("pass each interface file once, or rename one of the dataplanes"),
            );
            continue;
        }
        let dataplane = build_dataplane(decl, &db, &mut diags);
        db.dataplanes.insert(dataplane.name.clone(), dataplane);
    }
    (db, diags)
}

fn build_dataplane(decl: &ast::DataplaneDecl, db: &InterfaceDb, diags: &mut Vec<Diagnostic>) -> Dataplane {
    let mut cost: Option<(u64, ast::Ident)> = None;
    let mut acts: BTreeMap<String, BTreeMap<String, MethodImpl>> = BTreeMap::new();
    let mut act_spans: BTreeMap<String, crate::source::Span> = BTreeMap::new();
    for item in &decl.items {
        match item {
            DataplaneItem::Cost {
                value,
                keyword,
                value_span,
            } => {
                if let Some((_, first)) = &cost {
                    diags.push(
                        Diagnostic::new(
                            Code::InvalidCost,
                            format!("dataplane `{}` states its cost twice", decl.name.name),
                        )
                        .at(*keyword, "second `cost`")
                        .with_label(first.span, "first stated here"),
                    );
                    continue;
                }
                let value = match u64::try_from(*value) {
                    Ok(v) => v,
                    Err(_) => {
                        diags.push(
                            Diagnostic::new(Code::InvalidCost, format!("cost `{value}` is negative"))
                                .at(*value_span, "must be 0 or more"),
                        );
                        0
                    }
                };
                cost = Some((
                    value,
                    ast::Ident {
                        name: "cost".into(),
                        span: *keyword,
                    },
                ));
            }
            DataplaneItem::Act(act) => {
                if let Some(first) = act_spans.get(&act.name.name) {
                    diags.push(
                        Diagnostic::new(
                            Code::DuplicateAct,
                            format!(
                                "act `{}` is declared twice in dataplane `{}`",
                                act.name.name, decl.name.name
                            ),
                        )
                        .at(act.name.span, "declared again here")
                        .with_label(*first, "first declared here")
                        .with_help("merge the two `act` blocks"),
                    );
                    continue;
                }
                act_spans.insert(act.name.name.clone(), act.name.span);
                let methods = build_act(&decl.name.name, act, db, diags);
                acts.insert(act.name.name.clone(), methods);
            }
        }
    }
    if cost.is_none() {
        diags.push(
            Diagnostic::new(Code::InvalidCost, format!("dataplane `{}` has no cost", decl.name.name))
                .at(decl.name.span, "no `cost` in this dataplane")
                .with_help("add `cost N;` with what one sidecar costs on one replica"),
        );
    }
    Dataplane {
        name: decl.name.name.clone(),
        cost: cost.map(|(c, _)| c).unwrap_or(0),
        span: decl.name.span,
        acts,
    }
}

fn build_act(
    dataplane: &str,
    act: &ast::ActDecl,
    db: &InterfaceDb,
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, MethodImpl> {
    let mut methods: BTreeMap<String, MethodImpl> = BTreeMap::new();
    for m in &act.methods {
        if let Some(first) = methods.get(&m.name.name) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateMethod,
                    format!(
                        "method `{}.{}` is declared twice in dataplane `{dataplane}`",
                        act.name.name, m.name.name
                    ),
                )
                .at(m.name.span, "declared again here")
                .with_label(first.span, "first declared here")
                .with_help("keep one declaration and list every side it supports"),
            );
            continue;
        }
        let Some(signature) = build_signature(m, diags) else {
            continue;
        };
        let Some(sides) = build_sides(m, diags) else { continue };
        // Signatures must agree across dataplanes: a policy is typed once.
        if let Some((other, other_impl)) = db
            .dataplanes
            .values()
            .find_map(|d| d.method(&act.name.name, &m.name.name).map(|i| (d, i)))
            && other_impl.signature != signature
        {
            diags.push(
                Diagnostic::new(
                    Code::ConflictingSignature,
                    format!(
                        "`{}.{}` has a different signature here than in dataplane `{}`",
                        act.name.name, m.name.name, other.name
                    ),
                )
                .at(m.name.span, format!("declared here as `{}{}`", m.name.name, signature))
                .with_label(
                    other_impl.span,
                    format!(
                        "declared by `{}` as `{}{}`",
                        other.name, m.name.name, other_impl.signature
                    ),
                )
                .with_help(
                    "dataplanes may differ in sides and cost, but a method's parameter and result types must agree",
                ),
            );
            continue;
        }
        methods.insert(
            m.name.name.clone(),
            MethodImpl {
                signature,
                sides,
                span: m.name.span,
            },
        );
    }
    methods
}

fn build_signature(m: &ast::MethodDecl, diags: &mut Vec<Diagnostic>) -> Option<Signature> {
    let mut ok = true;
    let mut params = Vec::new();
    for (i, p) in m.params.iter().enumerate() {
        if let Some(first) = m.params[..i].iter().find(|q| q.name.name == p.name.name) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicateParam,
                    format!("parameter `{}` is declared twice in `{}`", p.name.name, m.name.name),
                )
                .at(p.name.span, "declared again here")
                .with_label(first.name.span, "first declared here"),
            );
            ok = false;
        }
        match resolve_type(&p.ty, diags) {
            Some(t) => params.push((p.name.name.clone(), t)),
            None => ok = false,
        }
    }
    let result = match &m.result {
        None => None,
        Some(t) => match resolve_type(t, diags) {
            Some(t) => Some(t),
            None => {
                ok = false;
                None
            }
        },
    };
    ok.then_some(Signature { params, result })
}

fn resolve_type(ty: &ast::Ident, diags: &mut Vec<Diagnostic>) -> Option<Type> {
    let t = Type::from_name(&ty.name);
    if t.is_none() {
        let mut d = Diagnostic::new(Code::UnknownType, format!("unknown type `{}`", ty.name)).at(ty.span, "not a type");
        d = match suggest(&ty.name, ["string", "int", "bool"]) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help("the types are `string`, `int` and `bool`"),
        };
        diags.push(d);
    }
    t
}

fn build_sides(m: &ast::MethodDecl, diags: &mut Vec<Diagnostic>) -> Option<SideSet> {
    let mut sides = SideSet::NONE;
    let mut ok = true;
    for s in &m.sides {
        match s.name.as_str() {
            "Ingress" => sides.ingress = true,
            "Egress" => sides.egress = true,
            other => {
                let mut d =
                    Diagnostic::new(Code::UnknownSide, format!("unknown side `{other}`")).at(s.span, "not a side");
                d = match suggest(other, ["Ingress", "Egress"]) {
                    Some(x) => d.with_help(format!("did you mean `{x}`?")),
                    None => d.with_help("the sides are `Ingress` (callee's sidecar) and `Egress` (caller's sidecar)"),
                };
                diags.push(d);
                ok = false;
            }
        }
    }
    if ok && sides.is_empty() {
        diags.push(
            Diagnostic::new(Code::UnknownSide, format!("method `{}` lists no side", m.name.name))
                .at(m.name.span, "no sidecar could run this method")
                .with_help("list `[Ingress]`, `[Egress]` or `[Ingress, Egress]`"),
        );
        ok = false;
    }
    ok.then_some(sides)
}
