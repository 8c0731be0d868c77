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
    /// Where the service and its sidecar listen (the graph's `ports` section).
    pub ports: Ports,
    pub versions: Vec<String>,
    pub span: Span,
}

/// Addresses and ports of one service (graph key `ports.<service>`); every
/// field has a default, documented in docs/language.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Host name or IP of the service (default: its name, as Kubernetes DNS resolves it).
    pub address: String,
    /// Port of the application (default 8080).
    pub app: u16,
    /// Port of the sidecar's inbound listener (default 15006).
    pub inbound: u16,
    /// Whether `inbound` was given: callers' sidecars then send to it
    /// directly (no traffic capture, as on one host); otherwise to `app`,
    /// which the pod's traffic capture redirects to the sidecar.
    pub inbound_explicit: bool,
    /// Port of the sidecar's outbound listener on 127.0.0.1 (default 15001).
    pub outbound: u16,
    /// Per version: address and port (see `version`).
    pub versions: std::collections::BTreeMap<String, (String, u16)>,
}

impl Ports {
    pub fn defaults(name: &str) -> Ports {
        Ports {
            address: name.to_string(),
            app: DEFAULT_APP_PORT,
            inbound: DEFAULT_INBOUND_PORT,
            inbound_explicit: false,
            outbound: DEFAULT_OUTBOUND_PORT,
            versions: std::collections::BTreeMap::new(),
        }
    }

    /// Address and port of one version of the service: as given, else the
    /// per-version Service `<service>-<version>` (or the service's own
    /// address when one was given) on the app port.
    pub fn version(&self, service: &str, version: &str) -> (String, u16) {
        self.versions.get(version).cloned().unwrap_or_else(|| {
            let address = if self.address == service {
                format!("{service}-{version}")
            } else {
                self.address.clone()
            };
            (address, self.app)
        })
    }
}

pub const DEFAULT_APP_PORT: u16 = 8080;
pub const DEFAULT_INBOUND_PORT: u16 = 15006;
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;

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
