//! Instance generators for the tests: proptest strategies for tiny random
//! instances. Larger placement-shaped ones come from
//! `crate::synth::placement_instance`.

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
