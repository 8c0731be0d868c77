//! Unit propagation of the hard unit clauses, with reasons, before search.
//!
//! Owns the variable value encoding used by preprocessing ([`UNSET`], [`TRUE`],
//! [`FALSE`]), the propagation loop, and [`explain`]: turning falsified
//! literals back into the original hard clauses that forced them (used to
//! report unsat cores in terms of the caller's clause indices).

use super::clauses::{Clauses, is_neg, var_of};
use super::instance::Instance;

/// Variable not fixed by preprocessing.
pub(super) const UNSET: u8 = 0;
/// Variable fixed to true.
pub(super) const TRUE: u8 = 1;
/// Variable fixed to false.
pub(super) const FALSE: u8 = 2;
/// `reason` entry of a variable not implied by a hard clause.
pub(super) const NO_REASON: usize = usize::MAX;

/// Value of literal `code` under `value`: `Some(true)`, `Some(false)` or `None`.
pub(super) fn lit_value(value: &[u8], code: u32) -> Option<bool> {
    match value.get(var_of(code)).copied().unwrap_or(UNSET) {
        TRUE => Some(!is_neg(code)),
        FALSE => Some(is_neg(code)),
        _ => None,
    }
}

/// Propagates every unit clause of `hard` to fixpoint, filling `value` and
/// `reason` (the original index of the implying clause, `origin[c]`).
///
/// Returns `Err(c)` with the index in `hard` of a clause falsified by propagation.
pub(super) fn propagate(hard: &Clauses, origin: &[usize], value: &mut [u8], reason: &mut [usize]) -> Result<(), usize> {
    let occ = Occurrences::build(hard, value.len());
    let mut queue: Vec<u32> = Vec::new();
    for (c, lits) in hard.iter().enumerate() {
        if let [l] = lits {
            match lit_value(value, *l) {
                Some(true) => {}
                Some(false) => return Err(c),
                None => assign(value, reason, &mut queue, *l, origin[c]),
            }
        }
    }
    let mut head = 0;
    while let Some(&l) = queue.get(head) {
        head += 1;
        for &c in occ.of(l ^ 1) {
            let c = c as usize;
            let mut unset = None;
            let mut open = 0;
            let mut satisfied = false;
            for &x in hard.get(c) {
                match lit_value(value, x) {
                    Some(true) => {
                        satisfied = true;
                        break;
                    }
                    Some(false) => {}
                    None => {
                        open += 1;
                        unset = Some(x);
                        if open > 1 {
                            break;
                        }
                    }
                }
            }
            if satisfied || open > 1 {
                continue;
            }
            match unset {
                Some(x) => assign(value, reason, &mut queue, x, origin[c]),
                None => return Err(c),
            }
        }
    }
    Ok(())
}

fn assign(value: &mut [u8], reason: &mut [usize], queue: &mut Vec<u32>, l: u32, why: usize) {
    let v = var_of(l);
    if let Some(slot) = value.get_mut(v) {
        *slot = if is_neg(l) { FALSE } else { TRUE };
    }
    if let Some(slot) = reason.get_mut(v) {
        *slot = why;
    }
    queue.push(l);
}

/// Literal occurrence lists (CSR) of a clause list.
pub(super) struct Occurrences {
    start: Vec<usize>,
    items: Vec<u32>,
}

impl Occurrences {
    /// Occurrence lists of `clauses` over `num_vars` variables.
    pub(super) fn build(clauses: &Clauses, num_vars: usize) -> Occurrences {
        Self::build_multi(&[clauses], num_vars)
    }

    /// Occurrence lists of several clause lists numbered consecutively.
    pub(super) fn build_multi(lists: &[&Clauses], num_vars: usize) -> Occurrences {
        let mut start = vec![0usize; 2 * num_vars + 1];
        for cl in lists {
            for lits in cl.iter() {
                for &l in lits {
                    if let Some(s) = start.get_mut(l as usize + 1) {
                        *s += 1;
                    }
                }
            }
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut fill = start.clone();
        let mut items = vec![0u32; start.last().copied().unwrap_or(0)];
        let mut id = 0u32;
        for cl in lists {
            for lits in cl.iter() {
                for &l in lits {
                    if let Some(f) = fill.get_mut(l as usize) {
                        if let Some(slot) = items.get_mut(*f) {
                            *slot = id;
                        }
                        *f += 1;
                    }
                }
                id += 1;
            }
        }
        Occurrences { start, items }
    }

    /// Clauses containing literal `code`.
    pub(super) fn of(&self, code: u32) -> &[u32] {
        let i = code as usize;
        match (self.start.get(i), self.start.get(i + 1)) {
            (Some(&a), Some(&b)) => self.items.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// Original hard clause indices that, by unit propagation, falsify the
/// literals `false_vars` (variables fixed by propagation), transitively.
pub(super) fn explain(inst: &Instance, reason: &[usize], false_vars: &[u32], out: &mut Vec<usize>) {
    let mut seen = vec![false; reason.len()];
    let mut stack: Vec<u32> = false_vars.to_vec();
    while let Some(v) = stack.pop() {
        let v = v as usize;
        match seen.get_mut(v) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        let r = reason.get(v).copied().unwrap_or(NO_REASON);
        if let Some(clause) = inst.hard().get(r) {
            out.push(r);
            stack.extend(clause.iter().map(|l| l.var()).filter(|&u| u as usize != v));
        }
    }
}
