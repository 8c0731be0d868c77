//! The checked program: what `check` hands on to context analysis and
//! placement. Everything here is resolved and well-typed.

use std::collections::BTreeMap;

use crate::source::Span;
use crate::syntax::ast;
use crate::syntax::pattern::Pattern;

/// Value types of the policy language.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    String,
    Int,
    Bool,
}

impl Type {
    pub fn from_name(name: &str) -> Option<Type> {
        match name {
            "string" => Some(Type::String),
            "int" => Some(Type::Int),
            "bool" => Some(Type::Bool),
            _ => None,
        }
    }

    /// "a `string`", "an `int`": for messages.
    pub fn with_article(self) -> &'static str {
        match self {
            Type::String => "a `string`",
            Type::Int => "an `int`",
            Type::Bool => "a `bool`",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Int => "int",
            Type::Bool => "bool",
        }
    }
}

/// Where a sidecar can run a method or a policy: at the callee (Ingress),
/// at the caller (Egress), both, or neither.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SideSet {
    pub ingress: bool,
    pub egress: bool,
}

impl SideSet {
    pub const BOTH: SideSet = SideSet {
        ingress: true,
        egress: true,
    };
    pub const NONE: SideSet = SideSet {
        ingress: false,
        egress: false,
    };

    pub fn intersect(self, other: SideSet) -> SideSet {
        SideSet {
            ingress: self.ingress && other.ingress,
            egress: self.egress && other.egress,
        }
    }

    pub fn is_empty(self) -> bool {
        !self.ingress && !self.egress
    }
}

impl std::fmt::Display for SideSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ingress, self.egress) {
            (true, true) => write!(f, "Ingress and Egress"),
            (true, false) => write!(f, "Ingress only"),
            (false, true) => write!(f, "Egress only"),
            (false, false) => write!(f, "no side"),
        }
    }
}

/// A method's parameter and result types (the same on every dataplane).
#[derive(Clone, Debug, Eq)]
pub struct Signature {
    pub params: Vec<(String, Type)>,
    /// `Some` for a getter, `None` for an action.
    pub result: Option<Type>,
}

/// Signatures agree when their types do; parameter names are documentation.
impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.result == other.result
            && self.params.len() == other.params.len()
            && self.params.iter().zip(&other.params).all(|(a, b)| a.1 == b.1)
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {}", t.as_str()))
            .collect();
        write!(f, "({})", params.join(", "))?;
        if let Some(r) = self.result {
            write!(f, " -> {}", r.as_str())?;
        }
        Ok(())
    }
}

/// One method as one dataplane implements it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodImpl {
    pub signature: Signature,
    pub sides: SideSet,
    pub span: Span,
}

/// A dataplane from an interface file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    pub name: String,
    pub cost: u64,
    pub span: Span,
    /// ACT name -> method name -> implementation.
    pub acts: BTreeMap<String, BTreeMap<String, MethodImpl>>,
}

impl Dataplane {
    pub fn method(&self, act: &str, method: &str) -> Option<&MethodImpl> {
        self.acts.get(act).and_then(|m| m.get(method))
    }
}

/// Every loaded dataplane, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceDb {
    pub dataplanes: BTreeMap<String, Dataplane>,
}

impl InterfaceDb {
    /// The agreed signature of `act.method`, from any dataplane that has it.
    pub fn signature(&self, act: &str, method: &str) -> Option<&Signature> {
        self.dataplanes
            .values()
            .find_map(|d| d.method(act, method))
            .map(|m| &m.signature)
    }

    pub fn has_act(&self, act: &str) -> bool {
        self.dataplanes.values().any(|d| d.acts.contains_key(act))
    }

    pub fn act_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .dataplanes
            .values()
            .flat_map(|d| d.acts.keys().map(String::as_str))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn method_names(&self, act: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .dataplanes
            .values()
            .filter_map(|d| d.acts.get(act))
            .flat_map(|m| m.keys().map(String::as_str))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A policy that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub name_span: Span,
    pub act: String,
    pub binder: String,
    pub pattern: Pattern,
    /// The context string literal.
    pub pattern_span: Span,
    /// M(p): every method the body calls, on any branch.
    pub methods: std::collections::BTreeSet<String>,
    /// Dataplanes that support the policy, with side_d(p) (never empty here).
    pub support: BTreeMap<String, SideSet>,
    pub body: ast::Block,
    pub span: Span,
}

/// The output of `check`: interfaces and policies, ready for analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub interfaces: InterfaceDb,
    pub policies: Vec<Policy>,
}
