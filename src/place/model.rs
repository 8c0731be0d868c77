//! What placement hands on to the emitters and reports: the chosen sidecar
//! of each service, where each (policy, matched call) is enforced, the cost,
//! its proven lower bound and the baselines.

use crate::graph::ServiceId;

/// Which sidecar of a call enforces a policy.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The callee's sidecar, on the way in.
    Ingress,
    /// The caller's sidecar, on the way out.
    Egress,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Ingress => "ingress",
            Side::Egress => "egress",
        }
    }
}

/// Where one (policy, matched call) pair is enforced.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Enforcement {
    /// Index into `Program::policies`.
    pub policy: usize,
    /// Index into the policy's matched calls.
    pub call: usize,
    pub from: Option<ServiceId>,
    pub to: ServiceId,
    /// The service whose sidecar enforces it (`to` for ingress, `from` for egress).
    pub at: ServiceId,
    pub side: Side,
    pub dataplane: String,
}

/// The two reference placements of the brief.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baselines {
    pub default_dataplane: String,
    /// The default dataplane's sidecar on every service.
    pub istio: u64,
    /// The default dataplane's sidecar only where some policy is enforced;
    /// `None` when the default dataplane cannot enforce some matched call.
    pub istio_plus: Option<u64>,
}

/// Size of the MaxSAT instance and what preprocessing did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SolveStats {
    /// (policy, matched call) pairs.
    pub pairs: usize,
    /// Distinct coverage clauses after merging identical ones.
    pub clauses: usize,
    /// Variables x[s,d] (only services that some matched call touches).
    pub variables: usize,
    /// Clauses with a single option (their variable is fixed).
    pub forced: usize,
    /// Wall time of building the instance and of the MaxSAT search (not in
    /// any output that must be deterministic).
    pub encode_time: std::time::Duration,
    pub solve_time: std::time::Duration,
}

/// The result of Wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub cost: u64,
    pub lower_bound: u64,
    pub optimal: bool,
    pub baselines: Baselines,
    /// The sidecar dataplane of each service (index = ServiceId), if any.
    pub sidecars: Vec<Option<String>>,
    /// One entry per (policy, matched call), sorted by policy, then call.
    pub enforcement: Vec<Enforcement>,
    pub stats: SolveStats,
}
