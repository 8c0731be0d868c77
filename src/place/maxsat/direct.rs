//! Components solved without any SAT call.
//!
//! Owns [`solve_direct`]: the "preferred" assignment (every variable takes the
//! value its unit soft clause asks for) is optimal when it satisfies all hard
//! clauses and all soft clauses; and a component made of a single hard clause
//! plus unit soft clauses is solved by flipping its cheapest variable.

use super::clauses::{is_neg, var_of};
use super::problem::{Problem, sat};

/// Solves `p` when it is trivial, writing an optimal `model` and returning its
/// cost; `None` when `p` needs the SAT-based engine.
pub(super) fn solve_direct(p: &Problem, model: &mut Vec<bool>) -> Option<u64> {
    model.clear();
    model.resize(p.num_vars, false);
    // Weight that a variable's unit soft clause charges when the variable is flipped.
    let mut flip_cost = vec![0u64; p.num_vars];
    let mut all_unit = true;
    for (c, &w) in p.soft.iter().zip(&p.soft_weight) {
        match c {
            [l] => {
                let v = var_of(*l);
                if let (Some(m), Some(f)) = (model.get_mut(v), flip_cost.get_mut(v)) {
                    *m = !is_neg(*l);
                    *f = f.saturating_add(w);
                }
            }
            _ => all_unit = false,
        }
    }
    let unsatisfied: Vec<usize> = (0..p.hard.len()).filter(|&i| !sat(p.hard.get(i), model)).collect();
    if unsatisfied.is_empty() {
        let cost = p.cost(model);
        return (cost == 0).then_some(0);
    }
    if !all_unit || p.hard.len() != 1 {
        return None;
    }
    // One hard clause, every literal false under the preferred values: flip
    // the variable whose unit soft clause is cheapest.
    let clause = p.hard.get(0);
    let (&best, _) = clause
        .iter()
        .map(|l| (l, flip_cost.get(var_of(*l)).copied().unwrap_or(0)))
        .min_by_key(|&(_, c)| c)?;
    let v = var_of(best);
    if let Some(m) = model.get_mut(v) {
        *m = !is_neg(best);
    }
    Some(p.cost(model))
}
