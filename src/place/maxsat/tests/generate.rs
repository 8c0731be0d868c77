//! Instance generators for the tests: proptest strategies for tiny random
//! instances and a seeded generator of placement-shaped instances.

use proptest::prelude::*;

use super::super::{Instance, Lit};

fn lit(v: u32, neg: bool) -> Lit {
    Lit::new(v, neg).expect("small variable")
}

/// Tiny random instance: random hard clauses, at-most-one pairs, positive
/// coverage clauses, weighted unit and non-unit soft clauses (weights 0..=20).
pub(super) fn tiny_instance() -> impl Strategy<Value = Instance> {
    (1u32..=8).prop_flat_map(|n| {
        let l = (0..n, any::<bool>());
        let hard = prop::collection::vec(prop::collection::vec(l.clone(), 0..=3), 0..=5);
        let amo = prop::collection::vec((0..n, 0..n), 0..=4);
        let cover = prop::collection::vec(prop::collection::vec(0..n, 1..=4), 0..=4);
        let soft = prop::collection::vec((0u64..=20, prop::collection::vec(l, 0..=3)), 0..=10);
        let unit_neg = prop::collection::vec((0..n, 1u64..=50), 0..=8);
        (Just(n), hard, amo, cover, soft, unit_neg).prop_map(|(n, hard, amo, cover, soft, unit_neg)| {
            let mut inst = Instance::new(n);
            for c in hard {
                // Keep empty hard clauses rare: only the first may be empty.
                if c.is_empty() && !inst.hard().is_empty() {
                    continue;
                }
                inst.add_hard(c.into_iter().map(|(v, s)| lit(v, s)).collect());
            }
            for (a, b) in amo {
                inst.add_hard(vec![lit(a, true), lit(b, true)]);
            }
            for c in cover {
                inst.add_hard(c.into_iter().map(|v| lit(v, false)).collect());
            }
            for (w, c) in soft {
                inst.add_soft(w, c.into_iter().map(|(v, s)| lit(v, s)).collect());
            }
            for (v, w) in unit_neg {
                inst.add_soft(w, vec![lit(v, true)]);
            }
            inst
        })
    })
}

/// Tiny placement-shaped instance: services with 1-2 dataplanes, AMO per
/// service, positive coverage clauses, soft `not x` weighted replicas * cost.
pub(super) fn tiny_placement() -> impl Strategy<Value = Instance> {
    let service = (any::<bool>(), 1u64..=10);
    (
        prop::collection::vec(service, 1..=4),
        prop::collection::vec(prop::collection::vec(0u32..8, 1..=4), 0..=6),
    )
        .prop_map(|(services, cover)| {
            let mut inst = Instance::new(0);
            let mut vars = Vec::new();
            let mut v = 0;
            for (two, replicas) in services {
                let mut mine = Vec::new();
                for cost in if two { vec![100, 30] } else { vec![30] } {
                    inst.add_soft(replicas * cost, vec![lit(v, true)]);
                    mine.push(v);
                    v += 1;
                }
                if let [a, b] = mine[..] {
                    inst.add_hard(vec![lit(a, true), lit(b, true)]);
                }
                vars.extend(mine);
            }
            for c in cover {
                let mut lits: Vec<Lit> = c
                    .into_iter()
                    .map(|i| lit(vars[i as usize % vars.len()], false))
                    .collect();
                lits.dedup();
                inst.add_hard(lits);
            }
            inst
        })
}

/// Xorshift64* generator (deterministic, no external crate).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `p` percent.
    pub(super) fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// Shape parameters of [`placement`].
pub(super) struct Shape {
    pub(super) services: usize,
    pub(super) coverage: usize,
    pub(super) hubs: usize,
    pub(super) hub_services: usize,
    pub(super) max_cluster: u64,
    /// Percent of services that may run either dataplane.
    pub(super) two_dp_pct: u64,
    /// Percent chance that each candidate literal enters a coverage clause.
    pub(super) lit_pct: u64,
    /// Percent of coverage clauses for calls from outside (callee side only).
    pub(super) outside_pct: u64,
    /// Add a gateway service with a coverage clause into every cluster, which
    /// joins all clusters into one component.
    pub(super) gateway: bool,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
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

/// Placement-shaped instance: services with 1-2 dataplanes (costs 100 and
/// 30), at-most-one per service, coverage clauses of 1-4 positive literals
/// inside clusters of 1..=max_cluster services plus a few hub clusters;
/// soft `not x[s,d]` with weight replicas(1..=10) * cost(d). A hidden
/// placement satisfies every clause, so the instance is satisfiable.
pub(super) fn placement(seed: u64, shape: &Shape) -> Instance {
    let mut rng = Rng::new(seed);
    let mut inst = Instance::new(0);
    // Per service: its variables.
    let mut svc_vars: Vec<Vec<u32>> = Vec::with_capacity(shape.services);
    // Hidden solution: per service, the variable set true (if any).
    let mut planted: Vec<Option<u32>> = Vec::with_capacity(shape.services);
    let mut svc_of_var: Vec<usize> = Vec::new();
    let mut next = 0u32;
    for _ in 0..shape.services {
        let replicas = 1 + rng.below(10);
        let dps: Vec<u64> = if rng.pct(shape.two_dp_pct) {
            vec![100, 30]
        } else if rng.pct(50) {
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
        planted.push(if rng.pct(50) {
            Some(mine[rng.below(mine.len() as u64) as usize])
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
        let size = 1 + rng.below(shape.max_cluster) as usize;
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
            let s = a + rng.below((b - a) as u64) as usize;
            let mut lits = vec![lit(g[rng.below(2) as usize], false)];
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
            let callee = a + rng.below(m as u64) as usize;
            let caller = if rng.pct(shape.outside_pct) {
                None
            } else {
                Some(a + rng.below(m as u64) as usize)
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
                    .filter(|_| rng.pct(shape.lit_pct))
                    .map(|&v| lit(v, false))
                    .collect();
            }
            if !lits
                .iter()
                .any(|l| planted[svc_of_var[l.var() as usize]] == Some(l.var()))
            {
                let svc = if rng.pct(50) { caller.unwrap_or(callee) } else { callee };
                let v = match planted[svc] {
                    Some(v) => v,
                    None => {
                        let mine = &svc_vars[svc];
                        let v = mine[rng.below(mine.len() as u64) as usize];
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
