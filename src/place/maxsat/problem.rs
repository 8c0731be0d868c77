//! One component as a stand-alone problem on local variables `0..num_vars`.
//!
//! Owns [`Problem`] (reused between components to avoid allocations) and the
//! evaluation of local models (feasibility, cost).

use super::clauses::{Clauses, is_neg, var_of};
use super::components::{Component, Split};
use super::simplify::Simplified;

/// A component with its literals renumbered to local variables.
#[derive(Default)]
pub(super) struct Problem {
    /// Number of local variables.
    pub(super) num_vars: usize,
    /// Hard clauses over local literal codes.
    pub(super) hard: Clauses,
    /// Per hard clause: its index in `Simplified::hard`.
    pub(super) hard_id: Vec<usize>,
    /// Soft clauses over local literal codes.
    pub(super) soft: Clauses,
    /// Weight of each soft clause (all positive).
    pub(super) soft_weight: Vec<u64>,
}

impl Problem {
    /// Replaces the contents with component `c` of `s`.
    pub(super) fn load(&mut self, s: &Simplified, split: &Split, c: &Component<'_>) {
        self.num_vars = c.vars.len();
        self.hard.clear();
        self.hard_id.clear();
        self.soft.clear();
        self.soft_weight.clear();
        let mut buf = Vec::new();
        let local = |l: u32| (split.local_of[var_of(l)] << 1) | (l & 1);
        for &h in c.hard {
            buf.clear();
            buf.extend(s.hard.get(h as usize).iter().map(|&l| local(l)));
            self.hard.push(&buf);
            self.hard_id.push(h as usize);
        }
        for &i in c.soft {
            buf.clear();
            buf.extend(s.soft.get(i as usize).iter().map(|&l| local(l)));
            self.soft.push(&buf);
            self.soft_weight
                .push(s.soft_weight.get(i as usize).copied().unwrap_or(0));
        }
    }

    /// True when every hard clause has a true literal under `model`.
    pub(super) fn feasible(&self, model: &[bool]) -> bool {
        self.hard.iter().all(|c| sat(c, model))
    }

    /// Total weight of the soft clauses violated by `model` (saturating).
    pub(super) fn cost(&self, model: &[bool]) -> u64 {
        self.soft
            .iter()
            .zip(&self.soft_weight)
            .filter(|(c, _)| !sat(c, model))
            .fold(0u64, |acc, (_, &w)| acc.saturating_add(w))
    }
}

/// True when some literal of `lits` is true under `model`.
pub(super) fn sat(lits: &[u32], model: &[bool]) -> bool {
    lits.iter()
        .any(|&l| model.get(var_of(l)).copied().unwrap_or(false) != is_neg(l))
}
