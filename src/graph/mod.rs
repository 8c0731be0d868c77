//! The call graph (design brief, "Call graph (JSON)"): loading with precise
//! errors, and the `CallGraph` handed to context analysis and placement.
//!
//! Values are first read as borrowed raw JSON so that each one keeps its
//! byte position; every error then points at the offending value and names
//! its JSON path (`calls[3].to`).

mod load;

pub use load::parse_graph;

use crate::source::Span;

/// Index of a service in `CallGraph::services`.
pub type ServiceId = usize;

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub name: String,
    pub replicas: u64,
    /// The port the application listens on (default 8080).
    pub port: u16,
    pub versions: Vec<String>,
    pub span: Span,
}

/// One caller -> callee edge (duplicates merged).
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub from: ServiceId,
    pub to: ServiceId,
    pub rps: Option<f64>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CallGraph {
    /// In file order.
    pub services: Vec<Service>,
    /// Sorted by (from, to), without duplicates.
    pub calls: Vec<Call>,
    /// Sorted, without duplicates.
    pub entrypoints: Vec<ServiceId>,
}

impl CallGraph {
    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.name == name)
    }

    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.services.iter().map(|s| s.name.clone()).collect()
    }
}
