//! Context patterns for generated policies.
//!
//! Owns the pattern shapes and how their services are chosen so that every
//! pattern matches real calls of the graph:
//!
//! | shape | text | matches |
//! | --- | --- | --- |
//! | `EntryAny` | `e .* s` | calls into `s` entered at `e` |
//! | `EntryPairAny` | `(a \| b) .* s` | the same, entered at `a` or `b` |
//! | `EntryExcept` | `e .* !(x \| y) s` | the same, not from `x` or `y` |
//! | `EntryPlus` | `a .+ s` | calls into `s` at least two hops from `a` |
//! | `Via` | `.* a .* s` | calls into `s` whose context passes `a` |
//! | `AnyTo` | `.* s` | every call into `s` |
//! | `CallerTo` | `.* a s` | the one call `a -> s` |
//! | `EntryDirect` | `a s` | the one call from entrypoint `a` to `s` |
//!
//! The target `s` is the callee of a uniformly drawn call, so targets are
//! drawn in proportion to in-degree: hot-spot caches and databases carry
//! many policies, as shared services do in the Alibaba trace (Luo et al.,
//! TPDS'22: "many microservices are hot-spots"). Each multi-call pattern
//! aims at a count drawn log-uniformly in 40..1000 and keeps the closest of
//! up to 12 candidates (one above 1200 only when nothing else fits), so a
//! pattern typically matches tens to a few hundred calls, never the whole
//! graph; `.* a s` and `a s` match exactly one call. At 20,000 services
//! the supply limits the aim: `e .* s` averages about 130 calls, `.* s`
//! about 250, `.* a .* s` about 35. The target is never an entrypoint, so
//! no pattern matches a request from outside the mesh and egress-only
//! actions (`RouteToVersion`) are always enforceable.

use super::analysis::Index;
use super::dist::det_ln;
use super::rng::Rand;
use super::spec::SynthGraph;

/// Each multi-call pattern aims at a number of matched calls drawn
/// log-uniformly between these two (mean about 300)...
const MIN_MATCHES: f64 = 40.0;
const MAX_MATCHES: f64 = 1000.0;
/// ... and a candidate above this is kept only when there is no other.
const HARD_MAX: usize = 1200;
/// Candidates drawn per pattern; the closest to the aim is kept.
const TRIES: usize = 12;
/// Fewer for `.* a .* s`, whose count costs a graph search.
const TRIES_VIA: usize = 6;
/// A candidate within this factor of the aim is taken at once.
const CLOSE: f64 = 1.2;

/// The pattern shapes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    EntryAny,
    EntryPairAny,
    EntryExcept,
    EntryPlus,
    Via,
    AnyTo,
    CallerTo,
    EntryDirect,
}

/// A chosen pattern: its text, the service it ends with, and how many calls
/// the generator expects it to match.
pub(super) struct Pattern {
    pub(super) text: String,
    pub(super) target: Option<usize>,
    pub(super) expected: usize,
}

/// Chooses patterns over one graph.
pub(super) struct Chooser<'a> {
    g: &'a SynthGraph,
    ix: &'a Index,
}

impl<'a> Chooser<'a> {
    pub(super) fn new(g: &'a SynthGraph, ix: &'a Index) -> Self {
        Chooser { g, ix }
    }

    fn name(&self, i: usize) -> &'a str {
        self.g.services.get(i).map_or("", |s| s.name.as_str())
    }

    /// A pattern of `shape`; with `versioned`, one that ends with a service
    /// deployed in more than one version. `None` when the graph has no
    /// fitting call.
    pub(super) fn choose(&self, shape: Shape, versioned: bool, rng: &mut Rand) -> Option<Pattern> {
        let pool = if versioned { &self.ix.versioned } else { &self.ix.usable };
        if pool.is_empty() {
            return None;
        }
        let single = matches!(shape, Shape::CallerTo | Shape::EntryDirect);
        let aim = det_ln(MIN_MATCHES) + rng.unit_f64() * det_ln(MAX_MATCHES / MIN_MATCHES);
        let tries = if shape == Shape::Via { TRIES_VIA } else { TRIES };
        let mut best: Option<(f64, Pattern)> = None;
        for _ in 0..tries {
            let Some(p) = self.draw(shape, pool, versioned, rng) else {
                continue;
            };
            if single {
                return Some(p);
            }
            let mut miss = (det_ln(p.expected.max(1) as f64) - aim).abs();
            if p.expected > HARD_MAX {
                miss += 100.0;
            }
            if miss <= det_ln(CLOSE) {
                return Some(p);
            }
            if best.as_ref().is_none_or(|(m, _)| miss < *m) {
                best = Some((miss, p));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The only pattern left when the graph has no usable call: the first
    /// entrypoint alone (the request from outside), else any one service.
    pub(super) fn fallback(&self) -> Pattern {
        let text = match self.ix.entries.first() {
            Some(&e) => self.name(e).to_string(),
            None if self.g.services.is_empty() => ".".to_string(),
            None => format!(".* {}", self.name(0)),
        };
        Pattern {
            text,
            target: None,
            expected: 0,
        }
    }

    fn draw(&self, shape: Shape, pool: &[(usize, usize)], versioned: bool, rng: &mut Rand) -> Option<Pattern> {
        let &(u, s) = rng.pick(pool)?;
        let ix = self.ix;
        let entry_of = |rng: &mut Rand, v: usize| -> Option<usize> { rng.pick(&ix.entries_reaching(v)).copied() };
        let sn = self.name(s);
        let (text, expected) = match shape {
            Shape::EntryAny => {
                let k = entry_of(rng, u)?;
                let e = *ix.entries.get(k)?;
                (format!("{} .* {sn}", self.name(e)), ix.callers_from(k, s).len())
            }
            Shape::EntryPairAny => {
                let k = entry_of(rng, u)?;
                let others: Vec<usize> = (0..ix.entries.len()).filter(|&j| j != k).collect();
                let &j = rng.pick(&others)?;
                let (a, b) = (*ix.entries.get(k)?, *ix.entries.get(j)?);
                let count = ix.callers.get(s).map_or(0, |cs| {
                    cs.iter().filter(|&&c| ix.reaches(k, c) || ix.reaches(j, c)).count()
                });
                (format!("({} | {}) .* {sn}", self.name(a), self.name(b)), count)
            }
            Shape::EntryExcept => {
                let k = entry_of(rng, u)?;
                let e = *ix.entries.get(k)?;
                // The caller must stand after e: e's own call is never matched.
                let mut from = ix.callers_from(k, s);
                from.retain(|&c| c != e);
                if from.len() < 3 {
                    return None;
                }
                let x = from.swap_remove(rng.below(from.len()));
                let y = from.swap_remove(rng.below(from.len()));
                (
                    format!("{} .* !({} | {}) {sn}", self.name(e), self.name(x), self.name(y)),
                    from.len(),
                )
            }
            Shape::EntryPlus => {
                let k = entry_of(rng, u)?;
                let e = *ix.entries.get(k)?;
                let from = ix.callers_from(k, s);
                let count = from.iter().filter(|&&c| c != e).count();
                if count == 0 {
                    return None;
                }
                (format!("{} .+ {sn}", self.name(e)), count)
            }
            Shape::Via => {
                // Any service on a shortest path from an entrypoint to u.
                let &a = rng.pick(&ix.ancestry(u))?;
                let below = ix.descendants(a);
                let count = ix.callers.get(s).map_or(0, |cs| {
                    cs.iter().filter(|&&c| below.get(c).copied().unwrap_or(false)).count()
                });
                (format!(".* {} .* {sn}", self.name(a)), count)
            }
            Shape::AnyTo => {
                let count = ix.callers.get(s).map_or(0, |cs| {
                    cs.iter().filter(|&&c| !ix.entries_reaching(c).is_empty()).count()
                });
                (format!(".* {sn}"), count)
            }
            Shape::CallerTo => (format!(".* {} {sn}", self.name(u)), 1),
            Shape::EntryDirect => {
                // A call from an entrypoint to s, else any entrypoint call.
                let from_entry: Vec<usize> = ix
                    .callers
                    .get(s)
                    .map_or(&[][..], |v| &v[..])
                    .iter()
                    .copied()
                    .filter(|&c| ix.is_entry.get(c).copied().unwrap_or(false))
                    .collect();
                let (e, t) = match rng.pick(&from_entry) {
                    Some(&e) => (e, s),
                    None => {
                        let &e = rng.pick(&ix.entries)?;
                        let &t = rng.pick(ix.out.get(e).map_or(&[][..], |v| &v[..]))?;
                        // A versioned pattern must end with the versioned s.
                        if versioned || ix.is_entry.get(t).copied().unwrap_or(true) {
                            return None;
                        }
                        (e, t)
                    }
                };
                return Some(Pattern {
                    text: format!("{} {}", self.name(e), self.name(t)),
                    target: Some(t),
                    expected: 1,
                });
            }
        };
        Some(Pattern {
            text,
            target: Some(s),
            expected,
        })
    }
}
