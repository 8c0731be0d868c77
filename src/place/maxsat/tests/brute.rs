//! Brute-force reference answers for tiny instances (tests only).

use super::super::{Instance, Lit};

fn model_of(bits: u64, n: usize) -> Vec<bool> {
    (0..n).map(|v| bits >> v & 1 == 1).collect()
}

/// Minimum cost over all models of the hard clauses; `None` when unsatisfiable.
pub(super) fn optimum(inst: &Instance) -> Option<u64> {
    let n = inst.num_vars() as usize;
    assert!(n <= 16, "brute force is for tiny instances");
    (0..1u64 << n)
        .map(|b| model_of(b, n))
        .filter(|m| inst.is_feasible(m))
        .map(|m| inst.cost(&m))
        .min()
}

/// True when the hard clauses with the given indices have no model.
pub(super) fn is_unsat_subset(inst: &Instance, ids: &[usize]) -> bool {
    let n = inst.num_vars() as usize;
    assert!(n <= 16);
    let clauses: Vec<&Vec<Lit>> = ids.iter().map(|&i| &inst.hard()[i]).collect();
    !(0..1u64 << n).any(|b| {
        let m = model_of(b, n);
        clauses
            .iter()
            .all(|c| c.iter().any(|l| m[l.var() as usize] != l.is_negative()))
    })
}
