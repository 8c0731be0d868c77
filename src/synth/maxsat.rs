//! Placement-shaped weighted MaxSAT instances, for the solver's benchmarks
//! (`benches/place.rs`) and tests.
//!
//! Owns [`PlacementShape`] and [`placement_instance`]: services with one or
//! two dataplanes, at most one sidecar each, and coverage clauses inside
//! clusters of services, the shape that `place::encode` gives the solver,
//! without going through a call graph and policies. Hands on a
//! [`place::maxsat::Instance`](crate::place::maxsat::Instance).

use super::rng::{PPM, Rand, STREAM_MAXSAT};
use crate::place::maxsat::{Instance, Lit};

#[allow(
    clippy::expect_used,
    reason = "variables are numbered from 0 up, far below Lit's limit"
)]
fn lit(v: u32, neg: bool) -> Lit {
    Lit::new(v, neg).expect("variable below Lit's limit")
}

/// True with probability `p` percent.
fn pct(rng: &mut Rand, p: u64) -> bool {
    rng.chance((p.min(100) as u32) * (PPM / 100))
}

/// Shape parameters of [`placement_instance`].
#[derive(Clone, Debug)]
pub struct PlacementShape {
    pub services: usize,
    pub coverage: usize,
    pub hubs: usize,
    pub hub_services: usize,
    pub max_cluster: u64,
    /// Percent of services that may run either dataplane.
    pub two_dp_pct: u64,
    /// Percent chance that each candidate literal enters a coverage clause.
    pub lit_pct: u64,
    /// Percent of coverage clauses for calls from outside (callee side only).
    pub outside_pct: u64,
    /// Add a gateway service with a coverage clause into every cluster, which
    /// joins all clusters into one component.
    pub gateway: bool,
}

impl Default for PlacementShape {
    /// 20,000 services and 23,000 coverage clauses in clusters of up to
    /// 100 services, three hubs of 1,000.
    fn default() -> PlacementShape {
        PlacementShape {
            services: 20_000,
            coverage: 23_000,
            hubs: 3,
            hub_services: 1_000,
            max_cluster: 100,
            two_dp_pct: 34,
            lit_pct: 60,
            outside_pct: 20,
            gateway: false,
        }
    }
}

impl PlacementShape {
    /// Fewer units, more choice, bigger hubs than the default.
    pub fn hard() -> PlacementShape {
        PlacementShape {
            hubs: 4,
            hub_services: 2_000,
            two_dp_pct: 70,
            lit_pct: 85,
            outside_pct: 5,
            ..PlacementShape::default()
        }
    }
}

/// Placement-shaped instance: services with 1-2 dataplanes (costs 100 and
/// 30), at-most-one per service, coverage clauses of 1-4 positive literals
/// inside clusters of 1..=max_cluster services plus a few hub clusters;
/// soft `not x[s,d]` with weight replicas(1..=10) * cost(d). A hidden
/// placement satisfies every clause, so the instance is satisfiable. The
/// same seed and shape give the same instance on every machine.
pub fn placement_instance(seed: u64, shape: &PlacementShape) -> Instance {
    let mut rng = Rand::new(seed, STREAM_MAXSAT);
    let mut inst = Instance::new(0);
    // Per service: its variables.
    let mut svc_vars: Vec<Vec<u32>> = Vec::with_capacity(shape.services);
    // Hidden solution: per service, the variable set true (if any).
    let mut planted: Vec<Option<u32>> = Vec::with_capacity(shape.services);
    let mut svc_of_var: Vec<usize> = Vec::new();
    let mut next = 0u32;
    for _ in 0..shape.services {
        let replicas = 1 + rng.below_u64(10);
        let dps: Vec<u64> = if pct(&mut rng, shape.two_dp_pct) {
            vec![100, 30]
        } else if pct(&mut rng, 50) {
            vec![100]
        } else {
            vec![30]
        };
        let mut mine = Vec::new();
        for cost in dps {
            inst.add_soft(replicas * cost, vec![lit(next, true)]);
            mine.push(next);
            svc_of_var.push(svc_vars.len());
            next += 1;
        }
        if let [a, b] = mine[..] {
            inst.add_hard(vec![lit(a, true), lit(b, true)]);
        }
        planted.push(if pct(&mut rng, 50) {
            Some(mine[rng.below_u64(mine.len() as u64) as usize])
        } else {
            None
        });
        svc_vars.push(mine);
    }
    // Clusters: hubs first, then random sizes.
    let mut clusters: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for _ in 0..shape.hubs {
        let end = (start + shape.hub_services).min(shape.services);
        clusters.push((start, end));
        start = end;
    }
    while start < shape.services {
        let size = 1 + rng.below_u64(shape.max_cluster) as usize;
        let end = (start + size).min(shape.services);
        clusters.push((start, end));
        start = end;
    }
    if shape.gateway {
        let g = [next, next + 1];
        inst.add_hard(vec![lit(g[0], true), lit(g[1], true)]);
        inst.add_soft(1000, vec![lit(g[0], true)]);
        inst.add_soft(300, vec![lit(g[1], true)]);
        for &(a, b) in &clusters {
            let s = a + rng.below_u64((b - a) as u64) as usize;
            let mut lits = vec![lit(g[rng.below_u64(2) as usize], false)];
            lits.extend(svc_vars[s].iter().map(|&v| lit(v, false)));
            inst.add_hard(lits);
        }
    }
    let per_service = shape.coverage as f64 / shape.services as f64;
    let mut emitted = 0usize;
    for &(a, b) in &clusters {
        let m = b - a;
        let want = ((m as f64) * per_service).round().max(1.0) as usize;
        for _ in 0..want {
            if emitted >= shape.coverage {
                break;
            }
            let callee = a + rng.below_u64(m as u64) as usize;
            let caller = if pct(&mut rng, shape.outside_pct) {
                None
            } else {
                Some(a + rng.below_u64(m as u64) as usize)
            };
            let mut candidates: Vec<u32> = svc_vars[callee].clone();
            if let Some(c) = caller
                && c != callee
            {
                candidates.extend(&svc_vars[c]);
            }
            let mut lits: Vec<Lit> = Vec::new();
            while lits.is_empty() {
                lits = candidates
                    .iter()
                    .filter(|_| pct(&mut rng, shape.lit_pct))
                    .map(|&v| lit(v, false))
                    .collect();
            }
            if !lits
                .iter()
                .any(|l| planted[svc_of_var[l.var() as usize]] == Some(l.var()))
            {
                let svc = if pct(&mut rng, 50) {
                    caller.unwrap_or(callee)
                } else {
                    callee
                };
                let v = match planted[svc] {
                    Some(v) => v,
                    None => {
                        let mine = &svc_vars[svc];
                        let v = mine[rng.below_u64(mine.len() as u64) as usize];
                        planted[svc] = Some(v);
                        v
                    }
                };
                if !lits.contains(&lit(v, false)) {
                    lits.push(lit(v, false));
                }
            }
            inst.add_hard(lits);
            emitted += 1;
        }
    }
    inst
}
