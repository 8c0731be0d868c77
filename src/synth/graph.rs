//! The call-graph generator: `generate_graph`.
//!
//! Owns the topology model. What it follows, and from where:
//!
//! - Requests enter at a few front-end services, each the root of one
//!   application (an "online service"); "most graphs are scattered to grow
//!   like a tree" and "microservice call graphs are heavy-tail distributed,
//!   their topology is similar to a tree and many microservices are
//!   hot-spots" (Luo et al., SoCC'21 and TPDS'22). Applications share the
//!   stateful hubs (Memcached `cache-*`, databases `db-*`: the `mc`/`db`
//!   callees of the MSCallGraph table, which only ever appear as callees).
//! - Fan-out follows a bounded power law (`GraphSpec::fanout_exponent`), and
//!   35% of stateless services are leaves, so about 37% of all services call
//!   nothing (Winchester et al., arXiv:2504.13141, Table 1, 2022 trace: 13%
//!   entry, 39% leaf, 48% middle).
//! - In-degree is heavy-tailed by preferential attachment in Price's model:
//!   services arrive bottom-up (hubs interleaved with stateless services,
//!   front-ends last) and each new service picks its callees among those
//!   already there with probability ∝ in-degree + 1 (for hubs, twice the
//!   in-degree plus one: a heavier tail). Old services become hot-spots; a
//!   pick goes to a hub with probability `hub_call_share`, else to the
//!   caller's own application (5% of the time to any application's shared
//!   services).
//! - Every service is reachable from an entrypoint: a service nobody picked
//!   gets one caller earlier in its application, at a log-uniform position
//!   (mostly near the front-end: shallow, with a long tail). Calls go from
//!   lower to higher index, so this holds by induction.
//! - A few back edges (`cycle_fraction`) close cycles of length 1 to 4.
//!
//! Measured on the 17 complete traces of the casper sample (131 named
//! services, 188 distinct calls, `tools/trace_stats.py`): fan-out per caller
//! mean 4.1, median 2, max 19; longest context per trace median 4 services,
//! max 10; 16 self-calls and one 4-service cycle. With the defaults, 20,000
//! services give 3.8-3.9 calls per service (see the `synth` docs and tests).
//!
//! Everything is integer arithmetic on one seeded ChaCha8 stream plus the
//! portable power-law tables of `dist`, so the graph is identical for the
//! same spec on every machine; 20,000 services take a few milliseconds.

use super::dist::{PowerLaw, det_exp, det_ln};
use super::names;
use super::rng::{PPM, Rand, STREAM_GRAPH, to_ppm};
use super::spec::{GraphSpec, SynthGraph, SynthService};

/// Hubs attract ∝ `HUB_ATTRACT * in-degree + 1` (Price's model with initial
/// attractiveness 1/HUB_ATTRACT: a heavier tail than stateless services).
const HUB_ATTRACT: usize = 2;
/// Front-end services call at least this many services.
const ENTRY_MIN_FANOUT: u64 = 16;
/// Share of stateless picks made among the stateless services of every
/// application (shared "platform" services), still ∝ in-degree + 1.
const CROSS_APP_PPM: u32 = 50_000;
/// Share of hubs that are caches (the rest are databases); the casper
/// sample has 336 `mc` rows to 29 `db` rows, we keep some databases.
const CACHE_PPM: u32 = 700_000;
/// Share of back edges that are a service calling itself.
const SELF_LOOP_PPM: u32 = 250_000;
/// Replicas follow `P(r) ∝ r^-1.5` on `1..=50` (median 1-2, mean ~5).
const REPLICAS_MAX: u64 = 50;
const REPLICAS_ALPHA: f64 = 1.5;

/// Generate the call graph described by `spec`.
pub fn generate_graph(spec: &GraphSpec) -> SynthGraph {
    let n = spec.services;
    if n == 0 {
        return SynthGraph::default();
    }
    let mut rng = Rand::new(spec.seed, STREAM_GRAPH);
    let layout = Layout::new(spec, n, &mut rng);
    let mut calls = price_dag(spec, &layout, &mut rng);
    connect(&layout, &mut calls, &mut rng);
    back_edges(spec, &layout, &mut calls, &mut rng);
    calls.edges.sort_unstable();
    calls.edges.dedup();
    let services = services(spec, &layout, &mut rng);
    SynthGraph {
        services,
        calls: calls.edges,
        entrypoints: (0..layout.entries).collect(),
    }
}

/// Index layout: `[0, entries)` front-ends, `[entries, stateless)` other
/// stateless services, `[stateless, n)` hubs; `app[i]` for `i < stateless`.
struct Layout {
    n: usize,
    entries: usize,
    stateless: usize,
    app: Vec<usize>,
}

impl Layout {
    fn new(spec: &GraphSpec, n: usize, rng: &mut Rand) -> Self {
        let entries = spec.entrypoints.clamp(1, n);
        let hub_ppm = to_ppm(spec.hub_fraction, 50_000);
        let hubs = ((n as u128 * u128::from(hub_ppm) + u128::from(PPM / 2)) / u128::from(PPM)) as usize;
        let stateless = n - hubs.min(n - entries);
        let app = (0..stateless)
            .map(|i| if i < entries { i } else { rng.below(entries) })
            .collect();
        Layout {
            n,
            entries,
            stateless,
            app,
        }
    }

    fn app_of(&self, i: usize) -> usize {
        self.app.get(i).copied().unwrap_or(0)
    }
}

/// Calls under construction, with in-degrees.
struct Calls {
    edges: Vec<(usize, usize)>,
    indeg: Vec<u32>,
    /// Stateless services drawn as leaves (they never get callees).
    leaf: Vec<bool>,
}

/// Price's model with preferential attachment ∝ in-degree + 1, built from
/// the bottom up so that every call goes to a higher index.
fn price_dag(spec: &GraphSpec, l: &Layout, rng: &mut Rand) -> Calls {
    let alpha = if spec.fanout_exponent.is_finite() {
        spec.fanout_exponent
    } else {
        1.8
    };
    let fanout = PowerLaw::new(1, spec.max_fanout.max(1) as u64, alpha);
    let leaf_ppm = to_ppm(spec.leaf_fraction, 350_000);
    let hub_share_ppm = to_ppm(spec.hub_call_share, 550_000);
    let (n, e, s) = (l.n, l.entries, l.stateless);
    let hubs = n - s;

    let mut calls = Calls {
        edges: Vec::with_capacity(n * 4),
        indeg: vec![0; n],
        leaf: vec![false; n],
    };
    // Per application: stateless services already there, and the callee of
    // every call into the application so far (the attachment urn).
    let mut app_arrived: Vec<Vec<usize>> = vec![Vec::new(); e];
    let mut app_urn: Vec<Vec<usize>> = vec![Vec::new(); e];
    let mut hub_urn: Vec<usize> = Vec::new();
    let mut all_urn: Vec<usize> = Vec::new();
    let mut mark = vec![usize::MAX; n];

    for step in 0..s {
        let u = s - 1 - step;
        // Hubs arrive spread over the whole growth, so that their in-degree
        // is power-law (old hubs are the hottest) rather than a Pólya urn.
        let hubs_arrived = (hubs * (step + 1)).div_ceil(s).min(hubs);
        let lo = if u < e { e } else { u + 1 };
        let stateless_arrived = s - lo;
        let want = if u < e {
            fanout.sample(rng).max(ENTRY_MIN_FANOUT)
        } else if rng.chance(leaf_ppm) {
            if let Some(flag) = calls.leaf.get_mut(u) {
                *flag = true;
            }
            0
        } else {
            fanout.sample(rng)
        };
        let want = (want as usize).min(hubs_arrived + stateless_arrived);
        let a = l.app_of(u);
        let mut added = 0;
        let mut attempts = 0;
        while added < want && attempts < 4 * want + 8 {
            attempts += 1;
            let to_hub = hubs_arrived > 0 && (stateless_arrived == 0 || rng.chance(hub_share_ppm));
            let v = if to_hub {
                match attach(rng, hubs_arrived, HUB_ATTRACT, &hub_urn) {
                    Pick::Uniform(i) | Pick::Urn(i) => s + i,
                }
            } else {
                let arrived = app_arrived.get(a).map_or(&[][..], |v| &v[..]);
                let urn = app_urn.get(a).map_or(&[][..], |v| &v[..]);
                if arrived.is_empty() || rng.chance(CROSS_APP_PPM) {
                    match attach(rng, stateless_arrived, 1, &all_urn) {
                        Pick::Uniform(i) => lo + i,
                        Pick::Urn(v) => v,
                    }
                } else {
                    match attach(rng, arrived.len(), 1, urn) {
                        Pick::Uniform(i) => arrived.get(i).copied().unwrap_or(lo),
                        Pick::Urn(v) => v,
                    }
                }
            };
            if v <= u || v >= n || mark.get(v) == Some(&u) {
                continue;
            }
            if let Some(m) = mark.get_mut(v) {
                *m = u;
            }
            if let Some(d) = calls.indeg.get_mut(v) {
                *d += 1;
            }
            calls.edges.push((u, v));
            if v >= s {
                hub_urn.push(v - s);
            } else {
                all_urn.push(v);
                if let Some(urn) = app_urn.get_mut(l.app_of(v)) {
                    urn.push(v);
                }
            }
            added += 1;
        }
        if u >= e
            && let Some(list) = app_arrived.get_mut(a)
        {
            list.push(u);
        }
    }
    calls
}

/// One preferential-attachment draw.
enum Pick {
    /// Index into the list of arrived items.
    Uniform(usize),
    /// An urn entry, as stored.
    Urn(usize),
}

/// Preferential attachment ∝ `weight * in-degree + 1` among `count`
/// arrived items: with probability `count / (count + weight * urn.len())`
/// a uniform item, otherwise the callee of a uniform earlier call (`urn`).
fn attach(rng: &mut Rand, count: usize, weight: usize, urn: &[usize]) -> Pick {
    let uniform = count;
    let r = rng.below(uniform + weight * urn.len());
    if r < uniform {
        Pick::Uniform(r)
    } else {
        match urn.get((r - uniform) / weight.max(1)) {
            Some(&v) => Pick::Urn(v),
            None => Pick::Uniform(0),
        }
    }
}

/// Give every service nobody calls one caller earlier in its application
/// (hubs: any stateless service), never a service drawn as a leaf.
/// Processing in index order keeps the invariant "every service below i is
/// reachable from an entrypoint".
fn connect(l: &Layout, calls: &mut Calls, rng: &mut Rand) {
    let (e, s) = (l.entries, l.stateless);
    // Per application: its front-end, then its non-leaf services so far.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); e];
    let mut all: Vec<usize> = Vec::new();
    for i in 0..l.n {
        let orphan = i >= e && calls.indeg.get(i) == Some(&0);
        let list = if i < s {
            members.get(l.app_of(i)).map_or(&[][..], |v| &v[..])
        } else {
            &all[..]
        };
        if orphan {
            // Log-uniform position, `len^u - 1`: mostly a service near the
            // front of the application (shallow), sometimes a deep one.
            let span = det_ln(list.len() as f64);
            let pos = (det_exp(rng.unit_f64() * span) as usize).saturating_sub(1);
            if let Some(&p) = list.get(pos) {
                calls.edges.push((p, i));
                if let Some(d) = calls.indeg.get_mut(i) {
                    *d += 1;
                }
            }
        }
        if i < s && !calls.leaf.get(i).copied().unwrap_or(false) {
            if let Some(list) = members.get_mut(l.app_of(i)) {
                list.push(i);
            }
            all.push(i);
        }
    }
}

/// Add back edges: a quarter of them self-calls, the others close a cycle
/// `a -> b (-> c (-> d)) -> a` along existing calls. Only services with a
/// single caller are walked and no service is on two cycles, so every
/// strongly connected component is exactly one such cycle of 2 to 4
/// services (the casper sample has one 4-service cycle; a giant component
/// would be unlike the trace's tree-like graphs). Hubs stay leaves and
/// front-ends are never called.
fn back_edges(spec: &GraphSpec, l: &Layout, calls: &mut Calls, rng: &mut Rand) {
    let (e, s) = (l.entries, l.stateless);
    let cycle_ppm = to_ppm(spec.cycle_fraction, 10_000);
    let count = ((calls.edges.len() as u128 * u128::from(cycle_ppm) + u128::from(PPM / 2)) / u128::from(PPM)) as usize;
    if count == 0 || s <= e {
        return;
    }
    let single = |v: usize| calls.indeg.get(v) == Some(&1);
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); s];
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for &(a, b) in &calls.edges {
        if a >= e && b < s && single(b) {
            if let Some(list) = out.get_mut(a) {
                list.push(b);
            }
            starts.push((a, b));
        }
    }
    let mut used = vec![false; s];
    let mut added = Vec::with_capacity(count);
    for _ in 0..count {
        if starts.is_empty() || rng.chance(SELF_LOOP_PPM) {
            let u = e + rng.below(s - e);
            added.push((u, u));
            continue;
        }
        let Some(&(a, b)) = rng.pick(&starts) else {
            continue;
        };
        if used.get(a).copied().unwrap_or(true) || used.get(b).copied().unwrap_or(true) {
            continue;
        }
        let mut cycle = vec![a, b];
        for _ in 0..rng.below(3) {
            let last = cycle.last().copied().unwrap_or(b);
            match out.get(last).and_then(|list| rng.pick(list)) {
                Some(&next) if !used.get(next).copied().unwrap_or(true) => cycle.push(next),
                _ => break,
            }
        }
        for &v in &cycle {
            if let Some(flag) = used.get_mut(v) {
                *flag = true;
            }
        }
        added.push((cycle.last().copied().unwrap_or(b), a));
    }
    calls.edges.extend(added);
}

/// Names, replicas and versions.
fn services(spec: &GraphSpec, l: &Layout, rng: &mut Rand) -> Vec<SynthService> {
    let replicas = PowerLaw::new(1, REPLICAS_MAX, REPLICAS_ALPHA);
    let versioned_ppm = to_ppm(spec.versioned_fraction, 20_000);
    let (mut caches, mut dbs) = (0, 0);
    (0..l.n)
        .map(|i| {
            let name = if i < l.entries {
                names::entry(i)
            } else if i < l.stateless {
                names::stateless(i - l.entries)
            } else if rng.chance(CACHE_PPM) {
                caches += 1;
                names::cache(caches - 1)
            } else {
                dbs += 1;
                names::database(dbs - 1)
            };
            let replicas = replicas.sample(rng);
            let stateless = i >= l.entries && i < l.stateless;
            let k = if stateless && spec.max_versions >= 2 && rng.chance(versioned_ppm) {
                2 + rng.below(spec.max_versions - 1)
            } else {
                1
            };
            let versions = (1..=k).map(|v| format!("v{v}")).collect();
            SynthService {
                name,
                replicas,
                versions,
            }
        })
        .collect()
}
