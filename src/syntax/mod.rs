//! Syntax: lexer, syntax trees, parser glue, and the context-pattern parser.
//! Hands `ast::InterfaceFile` / `ast::PolicyFile` (and `pattern::Pattern`) to
//! `check`.

pub mod ast;
pub mod lexer;
pub mod parser;
pub mod pattern;

pub use parser::{parse_interface_file, parse_policy_file};
