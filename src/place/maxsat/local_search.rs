//! Weight-aware greedy construction and 1-flip descent for upper bounds.
//!
//! Owns [`LocalSearch`]: starting from the values preferred by the unit soft
//! clauses, it repairs violated hard clauses one at a time by the cheapest
//! flip that breaks no satisfied hard clause (a bounded number of steps), and
//! it improves any feasible model by flipping single variables while that
//! keeps the hard clauses satisfied and lowers the cost. No SAT calls.

use super::clauses::{Clauses, is_neg, var_of};
use super::problem::Problem;
use super::propagate::Occurrences;

/// Steps during which a flipped variable is not flipped back.
const TABU: usize = 3;

/// Occurrence lists and true-literal counts of one problem.
pub(super) struct LocalSearch<'p> {
    p: &'p Problem,
    hard_occ: Occurrences,
    soft_occ: Occurrences,
    hard_true: Vec<u32>,
    soft_true: Vec<u32>,
    model: Vec<bool>,
}

fn lit_true(model: &[bool], l: u32) -> bool {
    model.get(var_of(l)).copied().unwrap_or(false) != is_neg(l)
}

fn count_true(cl: &Clauses, model: &[bool], out: &mut Vec<u32>) {
    out.clear();
    out.extend(
        cl.iter()
            .map(|c| c.iter().filter(|&&l| lit_true(model, l)).count() as u32),
    );
}

impl<'p> LocalSearch<'p> {
    /// Prepares local search on `p`.
    pub(super) fn new(p: &'p Problem) -> LocalSearch<'p> {
        LocalSearch {
            p,
            hard_occ: Occurrences::build(&p.hard, p.num_vars),
            soft_occ: Occurrences::build(&p.soft, p.num_vars),
            hard_true: Vec::new(),
            soft_true: Vec::new(),
            model: Vec::new(),
        }
    }

    fn load(&mut self, model: &[bool]) {
        self.model.clear();
        self.model.extend_from_slice(model);
        self.model.resize(self.p.num_vars, false);
        count_true(&self.p.hard, &self.model, &mut self.hard_true);
        count_true(&self.p.soft, &self.model, &mut self.soft_true);
    }

    /// Hard clauses broken and soft cost change if variable `v` is flipped.
    fn flip_effect(&self, v: usize) -> (usize, i128) {
        let val = self.model.get(v).copied().unwrap_or(false);
        let now_true = 2 * v as u32 + u32::from(!val);
        let now_false = now_true ^ 1;
        let broken = self
            .hard_occ
            .of(now_true)
            .iter()
            .filter(|&&c| self.hard_true.get(c as usize) == Some(&1))
            .count();
        let mut delta: i128 = 0;
        for &c in self.soft_occ.of(now_true) {
            if self.soft_true.get(c as usize) == Some(&1) {
                delta += i128::from(self.p.soft_weight.get(c as usize).copied().unwrap_or(0));
            }
        }
        for &c in self.soft_occ.of(now_false) {
            if self.soft_true.get(c as usize) == Some(&0) {
                delta -= i128::from(self.p.soft_weight.get(c as usize).copied().unwrap_or(0));
            }
        }
        (broken, delta)
    }

    fn flip(&mut self, v: usize) {
        let Some(val) = self.model.get_mut(v) else {
            return;
        };
        let now_true = 2 * v as u32 + u32::from(!*val);
        *val = !*val;
        for &c in self.hard_occ.of(now_true) {
            if let Some(t) = self.hard_true.get_mut(c as usize) {
                *t -= 1;
            }
        }
        for &c in self.hard_occ.of(now_true ^ 1) {
            if let Some(t) = self.hard_true.get_mut(c as usize) {
                *t += 1;
            }
        }
        for &c in self.soft_occ.of(now_true) {
            if let Some(t) = self.soft_true.get_mut(c as usize) {
                *t -= 1;
            }
        }
        for &c in self.soft_occ.of(now_true ^ 1) {
            if let Some(t) = self.soft_true.get_mut(c as usize) {
                *t += 1;
            }
        }
    }

    /// Greedy model: preferred values, then violated hard clauses repaired
    /// one at a time by the flip that breaks the fewest satisfied hard
    /// clauses, then costs the least (recently flipped variables are tabu).
    /// `None` when the step budget runs out first.
    pub(super) fn greedy(&mut self) -> Option<Vec<bool>> {
        let mut start = vec![false; self.p.num_vars];
        for c in self.p.soft.iter() {
            if let [l] = c
                && let Some(m) = start.get_mut(var_of(*l))
            {
                *m = !is_neg(*l);
            }
        }
        self.load(&start);
        let mut queue: Vec<usize> = (0..self.p.hard.len()).rev().collect();
        let mut last_flip = vec![0usize; self.p.num_vars];
        let budget = 4 * self.p.hard.len() + 64;
        let mut step = 0;
        while let Some(c) = queue.pop() {
            if self.hard_true.get(c) != Some(&0) {
                continue;
            }
            step += 1;
            if step > budget {
                return None;
            }
            let mut best: Option<(usize, (bool, usize, i128))> = None;
            for &l in self.p.hard.get(c) {
                let v = var_of(l);
                let (broken, delta) = self.flip_effect(v);
                let tabu = last_flip.get(v).is_some_and(|&s| s > 0 && s + TABU > step);
                let key = (tabu, broken, delta);
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((v, key));
                }
            }
            let (v, (_, broken, _)) = best?;
            let now_true = 2 * v as u32 + u32::from(!self.model.get(v).copied().unwrap_or(false));
            if broken > 0 {
                let hard_true = &self.hard_true;
                queue.extend(
                    self.hard_occ
                        .of(now_true)
                        .iter()
                        .map(|&b| b as usize)
                        .filter(|&b| hard_true.get(b) == Some(&1)),
                );
            }
            self.flip(v);
            if let Some(s) = last_flip.get_mut(v) {
                *s = step;
            }
        }
        self.descend_loaded();
        Some(self.model.clone())
    }

    /// Improves the feasible `model` by cost-lowering single flips that keep
    /// every hard clause satisfied.
    pub(super) fn descend(&mut self, model: &mut Vec<bool>) {
        self.load(model);
        self.descend_loaded();
        model.clone_from(&self.model);
    }

    fn descend_loaded(&mut self) {
        for _pass in 0..8 {
            let mut improved = false;
            for v in 0..self.p.num_vars {
                let (broken, delta) = self.flip_effect(v);
                if broken == 0 && delta < 0 {
                    self.flip(v);
                    improved = true;
                }
            }
            if !improved {
                break;
            }
        }
    }
}
