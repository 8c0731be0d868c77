//! The core-guided engine (OLL with totalizers and weight stratification) for
//! one component, on top of varisat's assumptions and `failed_core()`.
//!
//! Owns [`solve_oll`]. Every soft clause becomes an assumption literal that is
//! true when the soft clause is satisfied (the literal itself for a unit soft
//! clause, else the negation of a fresh relaxation variable). Each core raises
//! the lower bound by its minimum residual weight, lowers the members' weights
//! by it, and is relaxed by a totalizer whose output "at least 2 violated"
//! becomes a new assumption; outputs of relaxed totalizer assumptions move up
//! one (`>= j+1`). Models found along the way give the upper bound.

use std::time::Instant;

use varisat::{ExtendFormula, Solver};

use super::clauses::var_of;
use super::problem::Problem;
use super::totalizer;

/// Result of solving one component.
pub(super) enum CompResult {
    /// `model` holds the best solution found, of cost `cost`; `lb` is proven.
    Solved {
        /// Cost of the returned model.
        cost: u64,
        /// Proven lower bound.
        lb: u64,
    },
    /// The component's hard clauses are unsatisfiable.
    Unsat,
}

const NONE: u32 = u32::MAX;
/// Components with at most this many soft clauses are not stratified.
const STRATIFY_MIN: usize = 32;

struct Entry {
    /// Solver literal that is true when this soft constraint is satisfied.
    lit: u32,
    /// Residual weight; 0 once fully relaxed.
    weight: u64,
    /// For totalizer outputs: (totalizer, j) with `lit == !(sum >= j)`.
    tot: Option<(usize, usize)>,
}

struct Tot {
    inputs: Vec<u32>,
    outputs: Vec<u32>,
}

struct Oll<'p> {
    p: &'p Problem,
    sat: Solver<'static>,
    next_var: u32,
    entries: Vec<Entry>,
    entry_of_var: Vec<u32>,
    tots: Vec<Tot>,
    lb: u64,
    best_cost: u64,
    scratch: Vec<varisat::Lit>,
    model_buf: Vec<bool>,
}

fn deadline_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Solves component `p` exactly (or until `deadline`), writing the best model
/// into `model` (local variables).
pub(super) fn solve_oll(p: &Problem, deadline: Option<Instant>, model: &mut Vec<bool>) -> CompResult {
    let mut o = Oll {
        p,
        sat: Solver::new(),
        next_var: p.num_vars as u32,
        entries: Vec::new(),
        entry_of_var: Vec::new(),
        tots: Vec::new(),
        lb: 0,
        best_cost: u64::MAX,
        scratch: Vec::new(),
        model_buf: Vec::new(),
    };
    o.run(deadline, model)
}

impl Oll<'_> {
    fn new_var(&mut self) -> u32 {
        let v = self.next_var;
        self.next_var += 1;
        v
    }

    fn add(&mut self, lits: &[u32]) {
        self.scratch.clear();
        self.scratch
            .extend(lits.iter().map(|&c| varisat::Lit::from_code(c as usize)));
        self.sat.add_clause(&self.scratch);
    }

    fn push_entry(&mut self, lit: u32, weight: u64, tot: Option<(usize, usize)>) {
        let v = var_of(lit);
        if self.entry_of_var.len() <= v {
            self.entry_of_var.resize(v + 1, NONE);
        }
        self.entry_of_var[v] = self.entries.len() as u32;
        self.entries.push(Entry { lit, weight, tot });
    }

    fn entry_of(&self, lit: u32) -> Option<usize> {
        let e = *self.entry_of_var.get(var_of(lit))?;
        let entry = self.entries.get(e as usize)?;
        (entry.lit == lit).then_some(e as usize)
    }

    /// One SAT call under `assumptions`; `None` when varisat reports an error.
    fn solve(&mut self, assumptions: &[u32]) -> Option<bool> {
        self.scratch.clear();
        self.scratch
            .extend(assumptions.iter().map(|&c| varisat::Lit::from_code(c as usize)));
        self.sat.assume(&self.scratch);
        self.sat.solve().ok()
    }

    /// Reads the solver's model; keeps it in `best` when it is the cheapest so far.
    fn record_model(&mut self, best: &mut Vec<bool>) -> Option<u64> {
        let n = self.p.num_vars;
        self.model_buf.clear();
        self.model_buf.resize(n, false);
        for l in self.sat.model()? {
            if let Some(slot) = self.model_buf.get_mut(l.index()) {
                *slot = l.is_positive();
            }
        }
        let cost = self.p.cost(&self.model_buf);
        if cost < self.best_cost {
            self.best_cost = cost;
            std::mem::swap(best, &mut self.model_buf);
        }
        Some(cost)
    }

    fn run(&mut self, deadline: Option<Instant>, best: &mut Vec<bool>) -> CompResult {
        let p = self.p;
        for c in p.hard.iter() {
            self.add(c);
        }
        for (c, &w) in p.soft.iter().zip(&p.soft_weight) {
            match c {
                [l] if self.entry_of(*l).is_some() || self.entry_of(l ^ 1).is_some() => {
                    self.relaxed_soft(c, w);
                }
                [l] => self.push_entry(*l, w, None),
                _ => self.relaxed_soft(c, w),
            }
        }
        // Call 0: the hard clauses alone; gives the first upper bound.
        match self.solve(&[]) {
            Some(true) => {}
            _ => return CompResult::Unsat,
        }
        if self.record_model(best).is_none() {
            return CompResult::Unsat;
        }
        self.seed_cores();

        let mut threshold = if self.entries.len() <= STRATIFY_MIN {
            1
        } else {
            self.entries.iter().map(|e| e.weight).max().unwrap_or(1)
        };
        let mut assumptions = Vec::new();
        loop {
            if self.lb >= self.best_cost {
                break;
            }
            if deadline_passed(deadline) {
                break;
            }
            assumptions.clear();
            assumptions.extend(
                self.entries
                    .iter()
                    .filter(|e| e.weight > 0 && e.weight >= threshold)
                    .map(|e| e.lit),
            );
            match self.solve(&assumptions) {
                Some(true) => {
                    let Some(cost) = self.record_model(best) else { break };
                    let next = self
                        .entries
                        .iter()
                        .map(|e| e.weight)
                        .filter(|&w| w > 0 && w < threshold)
                        .max();
                    match next {
                        Some(t) => threshold = t,
                        None => {
                            // All soft constraints assumed and satisfied: optimal.
                            debug_assert_eq!(cost, self.lb);
                            self.lb = self.lb.max(self.best_cost.min(cost));
                            break;
                        }
                    }
                }
                Some(false) => {
                    let core: Vec<u32> = match self.sat.failed_core() {
                        Some(c) => c.iter().map(|l| l.code() as u32).collect(),
                        None => break,
                    };
                    if core.is_empty() {
                        return CompResult::Unsat;
                    }
                    self.process_core(&core);
                }
                None => break,
            }
        }
        CompResult::Solved {
            cost: self.best_cost,
            lb: self.lb.min(self.best_cost),
        }
    }

    /// Soft clause `c` with a relaxation variable `r`: hard `c or r`, assume `!r`.
    fn relaxed_soft(&mut self, c: &[u32], w: u64) {
        let r = 2 * self.new_var();
        let mut lits = c.to_vec();
        lits.push(r);
        self.add(&lits);
        self.push_entry(r ^ 1, w, None);
    }

    /// Hard clauses whose literals all contradict unit soft assumptions are
    /// cores already; relax them without asking the solver.
    fn seed_cores(&mut self) {
        let p = self.p;
        let mut order: Vec<usize> = (0..p.hard.len()).collect();
        order.sort_by_key(|&i| p.hard.get(i).len());
        let mut core = Vec::new();
        for i in order {
            core.clear();
            for &l in p.hard.get(i) {
                match self.entry_of(l ^ 1) {
                    Some(e) if self.entries[e].weight > 0 && self.entries[e].tot.is_none() => {
                        core.push(l ^ 1);
                    }
                    _ => break,
                }
            }
            if core.len() == p.hard.get(i).len() && !core.is_empty() {
                self.process_core(&core);
            }
        }
    }

    fn process_core(&mut self, core: &[u32]) {
        let ids: Vec<usize> = core.iter().filter_map(|&l| self.entry_of(l)).collect();
        let Some(wmin) = ids.iter().map(|&e| self.entries[e].weight).min() else {
            return;
        };
        if wmin == 0 {
            return;
        }
        self.lb = self.lb.saturating_add(wmin);
        for &e in &ids {
            self.entries[e].weight -= wmin;
            if let Some((t, j)) = self.entries[e].tot {
                self.bump(t, j + 1, wmin);
            }
        }
        if let [e] = ids[..] {
            let lit = self.entries[e].lit;
            self.add(&[lit ^ 1]);
        } else {
            let inputs: Vec<u32> = ids.iter().map(|&e| self.entries[e].lit ^ 1).collect();
            let t = self.tots.len();
            self.tots.push(Tot {
                inputs,
                outputs: Vec::new(),
            });
            self.bump(t, 2, wmin);
        }
    }

    /// Adds weight `w` to the assumption `!(sum of totalizer t >= j)`.
    fn bump(&mut self, t: usize, j: usize, w: u64) {
        let Some(tot) = self.tots.get(t) else { return };
        let n = tot.inputs.len();
        if j > n {
            return;
        }
        if tot.outputs.len() < j {
            let bound = (2 * j).min(n);
            let inputs = tot.inputs.clone();
            let mut next_var = self.next_var;
            let mut clauses: Vec<Vec<u32>> = Vec::new();
            let outputs = totalizer::build(
                &inputs,
                bound,
                &mut || {
                    let v = next_var;
                    next_var += 1;
                    v
                },
                &mut |c| clauses.push(c.to_vec()),
            );
            self.next_var = next_var;
            for c in &clauses {
                self.add(c);
            }
            if let Some(tot) = self.tots.get_mut(t) {
                tot.outputs = outputs;
            }
        }
        let Some(&o) = self.tots.get(t).and_then(|tot| tot.outputs.get(j - 1)) else {
            return;
        };
        let lit = o ^ 1;
        match self.entry_of(lit) {
            Some(e) => self.entries[e].weight = self.entries[e].weight.saturating_add(w),
            None => self.push_entry(lit, w, Some((t, j))),
        }
    }
}
