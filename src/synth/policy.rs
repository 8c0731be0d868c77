//! The policy generator: `generate_policies`.
//!
//! Owns the Copper text: a one-line comment, then `spec.policies`
//! declarations `p0000`, `p0001`, ... (names unique for any count), each
//! `policy pNNNN(req: RPCRequest) context "PATTERN" { ... }` followed by a
//! blank line. Each policy draws a kind (`bodies::KINDS`), a pattern shape
//! for that kind (`bodies::shapes`) and its services (`patterns`), then a
//! body. A canary needs a service with a second version; without one in the
//! graph it becomes a header rewrite. With the defaults, 1000 policies over
//! 20,000 services match 125k-138k (policy, call) pairs on about 29k
//! distinct calls (seeds 1-3); the tests' reference matcher and
//! `copperc place` (its `enforcement` list) gave the same counts.

use std::fmt::Write as _;

use super::analysis::Index;
use super::bodies::{self, Kind};
use super::patterns::{Chooser, Pattern, Shape};
use super::rng::{Rand, STREAM_POLICIES};
use super::spec::{PolicySpec, SynthGraph};

/// Copper source text of `spec.policies` policies over `g`.
pub fn generate_policies(g: &SynthGraph, spec: &PolicySpec) -> String {
    policies_with_counts(g, spec).0
}

/// The text, and how many calls the generator expects each policy to match.
pub(super) fn policies_with_counts(g: &SynthGraph, spec: &PolicySpec) -> (String, Vec<usize>) {
    let mut counts = Vec::with_capacity(spec.policies);
    let mut rng = Rand::new(spec.seed, STREAM_POLICIES);
    let ix = Index::new(g);
    let chooser = Chooser::new(g, &ix);
    let width = spec.policies.saturating_sub(1).to_string().len().max(4);
    let mut out = String::with_capacity(spec.policies * 200 + 128);
    let _ = writeln!(
        out,
        "// Synthetic Copper policies: {} policies over {} services (seed {}).\n",
        spec.policies,
        g.services.len(),
        spec.seed
    );
    let kind_weights: Vec<u32> = bodies::KINDS.iter().map(|&(_, w)| w).collect();
    for i in 0..spec.policies {
        let mut kind = rng
            .weighted(&kind_weights)
            .and_then(|k| bodies::KINDS.get(k))
            .map_or(Kind::Header, |&(k, _)| k);
        if kind == Kind::Canary && ix.versioned.is_empty() {
            kind = Kind::Header;
        }
        let shapes = bodies::shapes(kind);
        let shape_weights: Vec<u32> = shapes.iter().map(|&(_, w)| w).collect();
        let shape = rng
            .weighted(&shape_weights)
            .and_then(|k| shapes.get(k))
            .map_or(Shape::EntryAny, |&(s, _)| s);
        let versioned = kind == Kind::Canary;
        let pattern = chooser
            .choose(shape, versioned, &mut rng)
            .or_else(|| chooser.choose(Shape::EntryAny, versioned, &mut rng))
            .or_else(|| chooser.choose(Shape::CallerTo, versioned, &mut rng));
        let (pattern, kind) = match pattern {
            Some(p) => (p, kind),
            None => (chooser.fallback(), Kind::Header),
        };
        let version = canary_version(g, &pattern, &mut rng);
        let kind = if kind == Kind::Canary && version.is_none() {
            Kind::Header
        } else {
            kind
        };
        let _ = writeln!(
            out,
            "policy p{i:0width$}(req: RPCRequest) context \"{}\" {{",
            pattern.text
        );
        out.push_str(&bodies::body(kind, shape, version.as_deref().unwrap_or("v1"), &mut rng));
        out.push_str("}\n\n");
        counts.push(pattern.expected);
    }
    (out, counts)
}

/// A version of the pattern's target other than `v1`, if it has one.
fn canary_version(g: &SynthGraph, p: &Pattern, rng: &mut Rand) -> Option<String> {
    let s = g.services.get(p.target?)?;
    let others: Vec<&String> = s.versions.iter().filter(|v| *v != "v1").collect();
    rng.pick(&others).map(|v| (*v).clone())
}
