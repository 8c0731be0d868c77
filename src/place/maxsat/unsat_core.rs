//! Small unsatisfiable cores of hard clauses, in the caller's clause indices.
//!
//! Owns [`minimize_core`]: given original hard clauses known to be
//! unsatisfiable together, it loads them into varisat with one selector
//! variable per clause, takes `failed_core()`, then shrinks the core by
//! deletion (drop a clause, keep the drop when still unsat, and keep only the
//! new failed core) within a call budget and the deadline.

use std::time::Instant;

use varisat::{ExtendFormula, Lit, Solver};

use super::hash::FastMap;
use super::instance::Instance;

/// At most this many SAT calls are spent on deletion-based minimisation.
const DELETION_BUDGET: usize = 256;

/// Returns a sorted subset of `candidates` (original hard clause indices that
/// are unsatisfiable together) that is still unsatisfiable.
pub(super) fn minimize_core(inst: &Instance, candidates: &[usize], deadline: Option<Instant>) -> Vec<usize> {
    let mut fallback: Vec<usize> = candidates.to_vec();
    fallback.sort_unstable();
    fallback.dedup();
    if fallback.len() <= 1 {
        return fallback;
    }
    let mut local: FastMap<u32, usize> = FastMap::default();
    let mut solver = Solver::new();
    let mut lits = Vec::new();
    for &c in &fallback {
        for l in inst.hard().get(c).map(Vec::as_slice).unwrap_or(&[]) {
            let next = local.len();
            local.entry(l.var()).or_insert(next);
        }
    }
    let sel_base = local.len();
    for (k, &c) in fallback.iter().enumerate() {
        lits.clear();
        for l in inst.hard().get(c).map(Vec::as_slice).unwrap_or(&[]) {
            let v = local.get(&l.var()).copied().unwrap_or(0);
            lits.push(Lit::from_index(v, !l.is_negative()));
        }
        lits.push(Lit::from_index(sel_base + k, false));
        solver.add_clause(&lits);
    }
    let selector = |k: usize| Lit::from_index(sel_base + k, true);
    let index_of = |l: Lit| l.index().checked_sub(sel_base);

    let all: Vec<usize> = (0..fallback.len()).collect();
    let Some(mut core) = failed(&mut solver, &all, &selector, &index_of) else {
        return fallback;
    };
    let mut calls = 0;
    let mut i = 0;
    while i < core.len() && calls < DELETION_BUDGET {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        calls += 1;
        let trial: Vec<usize> = core
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &k)| k)
            .collect();
        match failed(&mut solver, &trial, &selector, &index_of) {
            Some(smaller) => core = smaller,
            None => i += 1,
        }
    }
    let mut out: Vec<usize> = core.iter().filter_map(|&k| fallback.get(k).copied()).collect();
    out.sort_unstable();
    out
}

/// Solves with the selectors of `keep` assumed; the failed core (as positions
/// in the candidate list, sorted) when unsatisfiable, `None` otherwise.
fn failed(
    solver: &mut Solver<'_>,
    keep: &[usize],
    selector: &dyn Fn(usize) -> Lit,
    index_of: &dyn Fn(Lit) -> Option<usize>,
) -> Option<Vec<usize>> {
    let assumptions: Vec<Lit> = keep.iter().map(|&k| selector(k)).collect();
    solver.assume(&assumptions);
    match solver.solve() {
        Ok(false) => {}
        _ => return None,
    }
    let mut core: Vec<usize> = solver.failed_core()?.iter().filter_map(|&l| index_of(l)).collect();
    core.sort_unstable();
    core.dedup();
    Some(core)
}
