//! The generator's inputs and its graph type.
//!
//! Owns `GraphSpec` (with the documented defaults and where each comes
//! from), `PolicySpec`, and the generated `SynthGraph`. Sources of the
//! defaults are listed in the `synth` module docs; in short: Luo et al.,
//! SoCC'21 and TPDS'22 (heavy-tailed, tree-like call graphs with hot-spot
//! stateful services), Winchester et al., arXiv:2504.13141 (13% entry / 39%
//! leaf / 48% middle microservices in the 2022 trace), and our own
//! measurement of the 17-trace casper sample of the 2021 MSCallGraph table.

/// What call graph to generate. Build one with [`GraphSpec::new`] and
/// change the knobs you need; every knob has a documented default.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    /// Number of services (entrypoints, stateless services and hubs).
    pub services: usize,
    /// Seed: the same spec gives the same graph, byte for byte.
    pub seed: u64,
    /// Front-end services that requests enter by (`fe-000`, ...), each the
    /// root of one "online service" (application). Default 8; clamped to
    /// `1..=services`.
    pub entrypoints: usize,
    /// Fraction of services that are stateful hubs (`cache-NNNN`,
    /// `db-NNNN`): leaves called by many services of every application.
    /// Default 0.05.
    pub hub_fraction: f64,
    /// Probability that a callee pick goes to a hub. Default 0.55; repeated
    /// picks and the reachability edges go to stateless services, so about
    /// 40% of all calls end at a hub (the casper sample sends 56% of its
    /// distinct calls to `mc`/`db` callees).
    pub hub_call_share: f64,
    /// Exponent `alpha` of the fan-out law `P(k) ∝ k^-alpha`, `k` in
    /// `1..=max_fanout`, for services that call anything. Default 1.8 (the
    /// casper sample: 14 callers with 1 callee, 10 with 2, 8 with 3, 4 with
    /// 4, ..., 3 with 19; median 2, mean 4.1).
    pub fanout_exponent: f64,
    /// Largest fan-out drawn. Default 200.
    pub max_fanout: usize,
    /// Fraction of stateless non-entry services that call nothing.
    /// Default 0.35 (with the hubs, about 37% of all services are leaves;
    /// Winchester et al., Table 1: 39%).
    pub leaf_fraction: f64,
    /// Back edges (callee reaches caller: cycles, a quarter of them a
    /// service calling itself), as a fraction of the other calls.
    /// Default 0.01.
    pub cycle_fraction: f64,
    /// Fraction of stateless non-entry services deployed in several
    /// versions. Default 0.02.
    pub versioned_fraction: f64,
    /// Versions of a versioned service: `v1..vK`, K uniform in
    /// `2..=max_versions`. Default 2 (so `["v1", "v2"]`); below 2 no service
    /// is versioned.
    pub max_versions: usize,
}

impl GraphSpec {
    /// `services` services from `seed`, every other knob at its default.
    pub fn new(services: usize, seed: u64) -> Self {
        GraphSpec {
            services,
            seed,
            entrypoints: 8,
            hub_fraction: 0.05,
            hub_call_share: 0.55,
            fanout_exponent: 1.8,
            max_fanout: 200,
            leaf_fraction: 0.35,
            cycle_fraction: 0.01,
            versioned_fraction: 0.02,
            max_versions: 2,
        }
    }
}

impl Default for GraphSpec {
    /// 1000 services from seed 0.
    fn default() -> Self {
        GraphSpec::new(1000, 0)
    }
}

/// How many policies to write, from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicySpec {
    /// Number of `policy` declarations (named `p0000`, `p0001`, ...).
    pub policies: usize,
    /// Seed: the same graph and spec give the same text, byte for byte.
    pub seed: u64,
}

impl PolicySpec {
    /// `policies` policies from `seed`.
    pub fn new(policies: usize, seed: u64) -> Self {
        PolicySpec { policies, seed }
    }
}

/// One service of a generated graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthService {
    /// A DNS label, unique in the graph.
    pub name: String,
    /// Replicas (1..=50, heavy-tailed).
    pub replicas: u64,
    /// Deployed versions; `["v1"]` for most services.
    pub versions: Vec<String>,
}

/// A generated call graph. `calls` holds `(caller, callee)` indices into
/// `services`, sorted and without duplicates; `entrypoints` indexes the
/// front-end services.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SynthGraph {
    /// The services, entrypoints first, then stateless services, then hubs.
    pub services: Vec<SynthService>,
    /// Calls `(from, to)`, sorted, unique.
    pub calls: Vec<(usize, usize)>,
    /// Indices of the entry services.
    pub entrypoints: Vec<usize>,
}
