//! Synthetic, Alibaba-shaped call graphs and matching Copper policies, for
//! benchmarks and scale tests; and placement-shaped MaxSAT instances for
//! the solver's own benchmarks and tests (`maxsat`).
//!
//! ```text
//! let g = generate_graph(&GraphSpec::new(20_000, 7));
//! let json = graph_json(&g);                       // call-graph JSON
//! let src = generate_policies(&g, &PolicySpec::new(1000, 7));
//! ```
//!
//! Same spec, same bytes, on every machine: all randomness is one ChaCha8
//! stream keyed from the seed (`rng`), power laws are tabulated with
//! portable `ln`/`exp` (`dist`), and nothing iterates a hash map.
//!
//! # What the graphs look like, and why
//!
//! Published statistics of the Alibaba microservice traces:
//! - Luo et al., "Characterizing Microservice Dependency and Performance:
//!   Alibaba Trace Analysis", SoCC'21 (2021 trace: 20,000+ microservices in
//!   10+ clusters, the `MS_CallGraph` table): call graphs "grow like a
//!   tree", their size is heavy-tailed, and the stateful services
//!   (Memcached, databases) are shared by many online services.
//! - Luo et al., "An In-Depth Study of Microservice Call Graph and Runtime
//!   Performance", IEEE TPDS 33(12), 2022: call graphs "are heavy-tail
//!   distributed, their topology is similar to a tree, and many
//!   microservices are hot-spots".
//! - Winchester et al., "Complexity at Scale: A Quantitative Analysis of an
//!   Alibaba Microservice Deployment", arXiv:2504.13141 (2022 trace):
//!   67,760 microservices, 13% entry, 39% leaf, 48% middle; long-tailed
//!   distributions of dependencies.
//!
//! Measured by us on the 17 complete traces of the 2021 MSCallGraph sample
//! `shared/traces/alibaba-v2021-MSCallGraph-sample-casper.csv` (std-lib
//! Python, `tools/trace_stats.py` next to the scratch crate this module came
//! from; unknown `(?)`/empty names dropped; 131 named services, 188
//! distinct calls): fan-out per calling service mean 4.1, median 2, max 19
//! (histogram 1:14, 2:10, 3:8, 4:4, 5:3, then 7, 10, 12, 13, 19, 19, 19);
//! 35% of services call something; `mc`/`db` callees are 56% of the
//! services and receive 56% of the distinct calls, the busiest cache has 7
//! callers; the longest context of a trace is 2-10 services, median 4
//! (self-calls collapsed; per call: 3 services most often, 84% at most 5);
//! 16 self-calls and one 4-service cycle. A 17-trace window sees only a
//! slice of each service's callees, so its 1.44 distinct calls per service
//! is a floor, not a target.
//!
//! So the generator (`graph`) builds applications under a few front-ends,
//! grown bottom-up by preferential attachment (Price's model) for
//! heavy-tailed in-degree, with power-law fan-out (exponent 1.8), about 37%
//! leaves, shared `cache-*`/`db-*` hubs receiving about 40% of the calls,
//! and 1% back edges. What the defaults give at 20,000 services (seeds 1-3,
//! checked by the tests): 3.8-3.9 calls per service (we aimed at the middle
//! of 2.5-5: with 63% callers that is a mean fan-out of about 6 per caller,
//! above the sample's 4.1, which undercounts for the reason above); fan-out
//! median 2, max about 250 (the front-ends); the top 1% of services receive
//! 45% of the calls, the hottest hub about 2,100 callers; shortest context
//! length 3-4 services for most services, 85% at most 5, tail to 11-12;
//! about 185 self-calls and 430 cycles of 2-4 services, no larger strongly
//! connected component. Generation takes under 10 ms in release builds.
//!
//! # Policies
//!
//! `generate_policies` writes header rewrites, canaries, access control and
//! rate limits against the bundled `istio-proxy` interface, with context
//! patterns built from services that are really connected (`patterns`), so
//! every pattern matches calls; most match tens to a few hundred. At 20,000
//! services, 1000 policies match 125k-138k (policy, call) pairs on about
//! 29k distinct calls (seeds 1-3, counted by the tests' reference matcher).

mod analysis;
mod bodies;
mod dist;
mod graph;
mod json;
mod maxsat;
mod names;
mod patterns;
mod policy;
mod rng;
mod spec;

#[cfg(test)]
mod refmatch;
#[cfg(test)]
mod tests;

pub use self::graph::generate_graph;
pub use self::json::graph_json;
pub use self::maxsat::{PlacementShape, placement_instance};
pub use self::policy::generate_policies;
pub use self::spec::{GraphSpec, PolicySpec, SynthGraph, SynthService};
