//! The syntax trees of interface files and policy files, as parsed. Every
//! node carries its span; nothing here is resolved or checked.

pub use super::lexer::StrLit;
use crate::source::Span;

/// A name with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

// ---- interface files ----

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceFile {
    pub dataplanes: Vec<DataplaneDecl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneDecl {
    pub name: Ident,
    pub items: Vec<DataplaneItem>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataplaneItem {
    /// `cost N;` with the span of the `cost` keyword and of the number.
    Cost {
        value: i64,
        keyword: Span,
        value_span: Span,
    },
    Act(ActDecl),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActDecl {
    pub name: Ident,
    pub methods: Vec<MethodDecl>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodDecl {
    pub sides: Vec<Ident>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub result: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: Ident,
    pub ty: Ident,
}

// ---- policy files ----

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub policies: Vec<PolicyDecl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDecl {
    pub name: Ident,
    pub binder: Ident,
    pub act: Ident,
    pub context: StrLit,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `recv.Method(args);`
    Call(Call),
    /// `if c1 { } else if c2 { } else { }`: the branches in order, then the
    /// final `else`.
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
        span: Span,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub receiver: Ident,
    pub method: Ident,
    pub args: Vec<Expr>,
    pub span: Span,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "&&",
            BinOp::Or => "||",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    Str(StrLit),
    Int(i64, Span),
    Bool(bool, Span),
    Call(Call),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        span: Span,
    },
    Not(Box<Expr>, Span),
    Paren(Box<Expr>, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Str(s) => s.span,
            Expr::Int(_, s) | Expr::Bool(_, s) | Expr::Not(_, s) | Expr::Paren(_, s) => *s,
            Expr::Call(c) => c.span,
            Expr::Binary { span, .. } => *span,
        }
    }
}

/// The tail of an `else`: a block or another `if` (grammar helper).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElseTail {
    Block(Block),
    If(Stmt),
}
