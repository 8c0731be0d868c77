//! copperc: a compiler for service-mesh policy.
//!
//! The pipeline, one module per stage: `syntax` (lex, parse) -> `check`
//! (resolve, type-check, sides) -> analysis and placement -> emitters. Stages
//! take in-memory inputs and return values plus `diag::Diagnostic`s; only
//! `cli` reads and writes files.

pub mod analysis;
pub mod check;
pub mod cli;
pub mod diag;
pub mod ebpf;
pub mod emit;
pub mod front;
pub mod graph;
pub mod interfaces;
pub mod out;
pub mod place;
pub mod source;
pub mod syntax;
pub mod synth;
