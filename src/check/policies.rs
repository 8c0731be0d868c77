//! Resolves and type-checks policies against the `InterfaceDb`: the ACT, the
//! binder, every call's method, arity and argument types, conditions, and
//! duplicate names. Collects M(p), the policy's method set, for `support`.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{InterfaceDb, Type};
use crate::diag::{Code, Diagnostic, suggest};
use crate::source::Span;
use crate::syntax::ast::{self, BinOp, Expr, Stmt};

/// What type-checking one policy body found.
pub struct BodyFacts {
    /// M(p) with the span of the first call of each method.
    pub methods: BTreeMap<String, Vec<Span>>,
    pub ok: bool,
}

/// Reports policies whose names repeat (across every file of the run).
pub fn check_duplicate_names<'a>(policies: impl IntoIterator<Item = &'a ast::PolicyDecl>) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut diags = Vec::new();
    for p in policies {
        if let Some(first) = seen.get(p.name.name.as_str()) {
            diags.push(
                Diagnostic::new(
                    Code::DuplicatePolicy,
                    format!("policy `{}` is defined twice", p.name.name),
                )
                .at(p.name.span, "defined again here")
                .with_label(*first, "first defined here")
                .with_help("policy names must be unique across every policy file: rename one"),
            );
        } else {
            seen.insert(&p.name.name, p.name.span);
        }
    }
    diags
}

/// Checks the policy's ACT; `false` when it is unknown (the body is then not checked).
pub fn check_act(db: &InterfaceDb, p: &ast::PolicyDecl, diags: &mut Vec<Diagnostic>) -> bool {
    if db.has_act(&p.act.name) {
        return true;
    }
    let known = db.act_names();
    let mut d = Diagnostic::new(Code::UnknownAct, format!("unknown ACT `{}`", p.act.name))
        .at(p.act.span, "no loaded interface declares this type");
    d = match suggest(&p.act.name, known.iter().copied()) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None if known.is_empty() => d.with_help("no interface declares any ACT: check `--interfaces`"),
        None => d.with_help(format!("the loaded interfaces declare {}", backticked(&known))),
    };
    diags.push(d);
    false
}

pub fn check_body(db: &InterfaceDb, p: &ast::PolicyDecl, diags: &mut Vec<Diagnostic>) -> BodyFacts {
    let mut checker = BodyChecker {
        db,
        act: &p.act.name,
        binder: &p.binder,
        facts: BodyFacts {
            methods: BTreeMap::new(),
            ok: true,
        },
        diags,
    };
    checker.block(&p.body);
    checker.facts
}

struct BodyChecker<'a> {
    db: &'a InterfaceDb,
    act: &'a str,
    binder: &'a ast::Ident,
    facts: BodyFacts,
    diags: &'a mut Vec<Diagnostic>,
}

impl BodyChecker<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.facts.ok = false;
        self.diags.push(d);
    }

    fn block(&mut self, b: &ast::Block) {
        for s in &b.stmts {
            match s {
                Stmt::Call(call) => {
                    if let Some(Some(t)) = self.call(call) {
                        self.diags.push(
                            Diagnostic::new(
                                Code::UnusedGetter,
                                format!("the value of `{}.{}` is unused", call.receiver.name, call.method.name),
                            )
                            .at(
                                call.span,
                                format!("this getter returns {} that is dropped", t.with_article()),
                            )
                            .with_help("use it in a condition, e.g. `if ... == ... { }`, or remove the call"),
                        );
                    }
                }
                Stmt::If {
                    branches, otherwise, ..
                } => {
                    for (cond, then) in branches {
                        if let Some(t) = self.expr(cond)
                            && t != Type::Bool
                        {
                            let mut d = Diagnostic::new(
                                Code::ConditionNotBool,
                                format!("condition is {}, not a `bool`", t.with_article()),
                            )
                            .at(cond.span(), format!("this is {}", t.with_article()));
                            if t == Type::String {
                                d = d.with_help("compare it: `... == \"value\"`");
                            }
                            self.error(d);
                        }
                        self.block(then);
                    }
                    if let Some(b) = otherwise {
                        self.block(b);
                    }
                }
            }
        }
    }

    /// Checks a call. `None`: an error was reported. `Some(None)`: an action.
    /// `Some(Some(t))`: a getter returning `t`.
    fn call(&mut self, call: &ast::Call) -> Option<Option<Type>> {
        // Arguments are checked first so that their errors show even when the
        // method is unknown.
        let arg_types: Vec<Option<Type>> = call.args.iter().map(|a| self.expr(a)).collect();
        if call.receiver.name != self.binder.name {
            let d = Diagnostic::new(Code::UnknownName, format!("unknown name `{}`", call.receiver.name))
                .at(call.receiver.span, "not bound by this policy")
                .with_label(self.binder.span, format!("the policy binds `{}`", self.binder.name))
                .with_help(format!(
                    "call methods on `{}`: `{}.{}(...)`",
                    self.binder.name, self.binder.name, call.method.name
                ));
            self.error(d);
            return None;
        }
        let Some(sig) = self.db.signature(self.act, &call.method.name).cloned() else {
            let known = self.db.method_names(self.act);
            let mut d = Diagnostic::new(
                Code::UnknownMethod,
                format!("`{}` has no method `{}`", self.act, call.method.name),
            )
            .at(
                call.method.span,
                format!("not a method of `{}` in any loaded interface", self.act),
            );
            if let Some(s) = suggest(&call.method.name, known.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else {
                let elsewhere: Vec<&str> = self
                    .db
                    .act_names()
                    .into_iter()
                    .filter(|a| self.db.signature(a, &call.method.name).is_some())
                    .collect();
                if !elsewhere.is_empty() {
                    d = d.with_note(format!(
                        "`{}` is a method of {}",
                        call.method.name,
                        backticked(&elsewhere)
                    ));
                }
                if !known.is_empty() {
                    d = d.with_help(format!("`{}` has {}", self.act, backticked(&known)));
                }
            }
            self.error(d);
            return None;
        };
        self.facts
            .methods
            .entry(call.method.name.clone())
            .or_default()
            .push(call.method.span);
        if sig.params.len() != call.args.len() {
            let expected: Vec<String> = sig.params.iter().map(|(n, t)| format!("{n}: {}", t.as_str())).collect();
            let d = Diagnostic::new(
                Code::ArgumentCount,
                format!(
                    "`{}` takes {} argument{} but {} {} given",
                    call.method.name,
                    sig.params.len(),
                    if sig.params.len() == 1 { "" } else { "s" },
                    call.args.len(),
                    if call.args.len() == 1 { "was" } else { "were" }
                ),
            )
            .at(call.method.span, format!("expected `({})`", expected.join(", ")));
            self.error(d);
        } else {
            for ((arg, found), (pname, ptype)) in call.args.iter().zip(&arg_types).zip(&sig.params) {
                if let Some(found) = found
                    && found != ptype
                {
                    let mut d = Diagnostic::new(
                        Code::ArgumentType,
                        format!(
                            "argument `{pname}` of `{}` must be {}, found {}",
                            call.method.name,
                            ptype.with_article(),
                            found.with_article()
                        ),
                    )
                    .at(arg.span(), format!("this is {}", found.with_article()));
                    if let Some(h) = literal_fix(arg, *ptype) {
                        d = d.with_help(h);
                    }
                    self.error(d);
                }
            }
        }
        Some(sig.result)
    }

    /// The expression's type, or `None` when an error was already reported.
    fn expr(&mut self, e: &Expr) -> Option<Type> {
        match e {
            Expr::Str(_) => Some(Type::String),
            Expr::Int(..) => Some(Type::Int),
            Expr::Bool(..) => Some(Type::Bool),
            Expr::Paren(inner, _) => self.expr(inner),
            Expr::Call(call) => match self.call(call)? {
                Some(t) => Some(t),
                None => {
                    let d = Diagnostic::new(
                        Code::ActionAsValue,
                        format!("action `{}` has no value", call.method.name),
                    )
                    .at(call.span, "an action, used here as a value")
                    .with_help(format!(
                        "call it as a statement: `{}.{}(...);`",
                        call.receiver.name, call.method.name
                    ));
                    self.error(d);
                    None
                }
            },
            Expr::Not(inner, _) => {
                let t = self.expr(inner)?;
                if t != Type::Bool {
                    let d = Diagnostic::new(
                        Code::OperandType,
                        format!("`!` needs a `bool`, found {}", t.with_article()),
                    )
                    .at(inner.span(), format!("this is {}", t.with_article()));
                    self.error(d);
                    return None;
                }
                Some(Type::Bool)
            }
            Expr::Binary { op, lhs, rhs, .. } => {
                let lt = self.expr(lhs);
                let rt = self.expr(rhs);
                match op {
                    BinOp::Eq | BinOp::Ne => {
                        if let (Some(l), Some(r)) = (lt, rt)
                            && l != r
                        {
                            let mut d = Diagnostic::new(
                                Code::OperandType,
                                format!("cannot compare {} with {}", l.with_article(), r.with_article()),
                            )
                            .at(rhs.span(), format!("this is {}", r.with_article()))
                            .with_label(lhs.span(), format!("this is {}", l.with_article()));
                            if let Some(h) = literal_fix(rhs, l) {
                                d = d.with_help(h);
                            }
                            self.error(d);
                        }
                    }
                    BinOp::And | BinOp::Or => {
                        for (side, t) in [(lhs, lt), (rhs, rt)] {
                            if let Some(t) = t
                                && t != Type::Bool
                            {
                                let d = Diagnostic::new(
                                    Code::OperandType,
                                    format!("`{}` needs `bool` operands, found {}", op.as_str(), t.with_article()),
                                )
                                .at(side.span(), format!("this is {}", t.with_article()));
                                self.error(d);
                            }
                        }
                    }
                }
                Some(Type::Bool)
            }
        }
    }
}

/// "write `403`, not `\"403\"`" style help for a literal of the wrong type.
fn literal_fix(e: &Expr, want: Type) -> Option<String> {
    match (e, want) {
        (Expr::Str(s), Type::Int) if s.value.trim().parse::<i64>().is_ok() => {
            Some(format!("write the number without quotes: `{}`", s.value.trim()))
        }
        (Expr::Int(n, _), Type::String) => Some(format!("write the string in quotes: `\"{n}\"`")),
        (Expr::Str(s), Type::Bool) if s.value == "true" || s.value == "false" => {
            Some(format!("write `{}` without quotes", s.value))
        }
        _ => None,
    }
}

pub fn backticked(names: &[&str]) -> String {
    let items: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// The method set as a plain set.
pub fn method_set(facts: &BodyFacts) -> BTreeSet<String> {
    facts.methods.keys().cloned().collect()
}
