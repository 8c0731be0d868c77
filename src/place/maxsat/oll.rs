//! The search strategy for one component on top of the OLL state (`engine`).
//!
//! Owns [`solve_oll`] and its [`Tuning`]: the first SAT call (hard clauses
//! only: feasibility and a first upper bound), the local-search upper bound,
//! the region levels, and the final core-guided loop on the whole component,
//! which ends with the first model satisfying every remaining assumption (it
//! costs exactly the lower bound), when the bounds meet, or at the deadline.
//!
//! Every soft clause is an assumption literal true when it is satisfied (the
//! literal of a unit soft clause, else the negation of a fresh relaxation
//! variable). Hard clauses whose literals all contradict unit soft clauses
//! are relaxed as cores before any search.
//!
//! Large components first collect cores region by region (see `regions`):
//! each region gets a small solver with only the clauses inside it, since a
//! core of a subset of the clauses is a core of the whole component. Regions
//! are then merged four by four while at least four remain. Every item
//! (assumption, clause, totalizer) records the interval of base regions it
//! depends on (its span), so it belongs to a merged region exactly when both
//! ends fall in it.
//!
//! Stratification by weight was measured and dropped: on placement instances
//! varisat's satisfiable answers under partial assumptions cost far more than
//! the cores they save.

use std::time::Instant;

use varisat::{ExtendFormula, Solver};

use super::engine::{Engine, region_at};
use super::local_search::LocalSearch;
use super::problem::Problem;
use super::regions::partition;

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

/// Size thresholds of the engine (fixed in production; tests shrink them so
/// that tiny instances exercise every path).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tuning {
    /// Smaller components skip the local-search upper bound: the exact
    /// search finishes in microseconds there anyway.
    pub(super) local_search_min_vars: usize,
    /// Components with at least this many variables are solved region by
    /// region first.
    pub(super) region_min_vars: usize,
    /// Target number of variables per base region.
    pub(super) region_size: usize,
}

impl Tuning {
    /// The production settings.
    pub(super) const DEFAULT: Tuning = Tuning {
        local_search_min_vars: 64,
        region_min_vars: 4000,
        region_size: 2000,
    };
}

/// Regions merge this many at a time between region levels.
const MERGE: u32 = 4;

/// How a run of the core loop ended.
enum LoopEnd {
    /// The assumptions are satisfiable (or the bounds met).
    Done,
    /// The clauses are unsatisfiable without any assumption.
    Unsat,
    /// Deadline, solver error, or varisat's variable range exhausted.
    Stopped,
}

fn deadline_passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Solves component `p` exactly (or until `deadline`), writing the best model
/// into `model` (local variables).
pub(super) fn solve_oll(p: &Problem, tuning: &Tuning, deadline: Option<Instant>, model: &mut Vec<bool>) -> CompResult {
    let mut regions = 0;
    let mut region_of_var = Vec::new();
    if p.num_vars >= tuning.region_min_vars {
        let (ids, count) = partition(p, tuning.region_size);
        if count > 1 {
            region_of_var = ids;
            regions = count;
        }
    }
    let mut engine = Engine::new(p, region_of_var);
    engine.run(tuning, regions, deadline, model)
}

impl Engine<'_> {
    fn run(&mut self, tuning: &Tuning, regions: u32, deadline: Option<Instant>, best: &mut Vec<bool>) -> CompResult {
        let p = self.p;
        for c in p.hard.iter() {
            self.add(c, self.span_of(c));
        }
        for (c, &w) in p.soft.iter().zip(&p.soft_weight) {
            let span = self.span_of(c);
            match c {
                [l] if self.entry_of(*l).is_none() && self.entry_of(l ^ 1).is_none() => {
                    self.push_entry(*l, w, None, span);
                }
                _ => {
                    let r = 2 * self.new_var();
                    let mut lits = c.to_vec();
                    lits.push(r);
                    self.add(&lits, span);
                    self.push_entry(r ^ 1, w, None, span);
                }
            }
        }
        // Call 0: the hard clauses alone; gives the first upper bound.
        if self.solve(&[]).map(|r| r.0) != Some(true) || self.record_model(best).is_none() {
            return CompResult::Unsat;
        }
        if p.num_vars >= tuning.local_search_min_vars {
            self.local_search(best);
        }
        if regions > 1 {
            match self.region_levels(regions, deadline, best) {
                LoopEnd::Done => {}
                LoopEnd::Unsat => return CompResult::Unsat,
                LoopEnd::Stopped => {
                    // Clause cores still raise the bound without SAT calls.
                    self.bound_only = true;
                    self.seed_cores(None);
                    return CompResult::Solved {
                        cost: self.best_cost,
                        lb: self.lb.min(self.best_cost),
                    };
                }
            }
        }
        self.seed_cores(None);
        if let LoopEnd::Unsat = self.core_loop(None, deadline, best) {
            return CompResult::Unsat;
        }
        CompResult::Solved {
            cost: self.best_cost,
            lb: self.lb.min(self.best_cost),
        }
    }

    /// Core search region by region, merging regions after each level while
    /// there are still at least [`MERGE`] regions.
    fn region_levels(&mut self, regions: u32, deadline: Option<Instant>, best: &mut Vec<bool>) -> LoopEnd {
        let mut width = 1u32;
        loop {
            let count = regions.div_ceil(width);
            if count < MERGE && width > 1 {
                break;
            }
            // Clauses logged so far, by region of this level.
            let mut by_region: Vec<Vec<usize>> = vec![Vec::new(); count as usize];
            for (i, &span) in self.log_span.iter().enumerate() {
                if let Some(list) = region_at(span, width).and_then(|r| by_region.get_mut(r as usize)) {
                    list.push(i);
                }
            }
            for (r, ids) in (0..count).zip(&by_region) {
                self.open_region(ids);
                if width == 1 {
                    self.seed_cores(Some(r));
                }
                let end = self.core_loop(Some((r, width)), deadline, best);
                self.region_sat = None;
                match end {
                    LoopEnd::Done => {}
                    other => return other,
                }
            }
            width = width.saturating_mul(MERGE);
        }
        LoopEnd::Done
    }

    /// Starts a region solver holding the logged clauses `ids`.
    fn open_region(&mut self, ids: &[usize]) {
        let mut solver = Solver::new();
        let mut lits: Vec<varisat::Lit> = Vec::new();
        for &id in ids {
            lits.clear();
            lits.extend(self.log.get(id).iter().map(|&l| varisat::Lit::from_code(l as usize)));
            solver.add_clause(&lits);
        }
        self.region_sat = Some(solver);
    }

    /// Finds and relaxes cores until the assumptions of `region` (region
    /// index and width; all assumptions when `None`) are satisfiable, the
    /// bounds meet, or the deadline passes.
    fn core_loop(&mut self, region: Option<(u32, u32)>, deadline: Option<Instant>, best: &mut Vec<bool>) -> LoopEnd {
        let mut assumptions = Vec::new();
        loop {
            if self.lb >= self.best_cost {
                return LoopEnd::Done;
            }
            if self.exhausted || deadline_passed(deadline) {
                return LoopEnd::Stopped;
            }
            assumptions.clear();
            assumptions.extend(
                self.entries
                    .iter()
                    .filter(|e| e.weight > 0 && region.is_none_or(|(r, width)| region_at(e.span, width) == Some(r)))
                    .map(|e| e.lit),
            );
            match self.solve(&assumptions) {
                Some((true, _)) => {
                    if region.is_none() {
                        // Every soft constraint holds: the model costs exactly lb.
                        let cost = self.record_model(best);
                        debug_assert_eq!(cost, Some(self.lb));
                    }
                    return LoopEnd::Done;
                }
                Some((false, core)) if core.is_empty() => return LoopEnd::Unsat,
                Some((false, core)) => self.process_core(&core),
                None => return LoopEnd::Stopped,
            }
        }
    }

    /// Tries to beat the best model with greedy construction and descent.
    fn local_search(&mut self, best: &mut Vec<bool>) {
        let p = self.p;
        let mut ls = LocalSearch::new(p);
        let mut candidates = Vec::new();
        if let Some(g) = ls.greedy() {
            candidates.push(g);
        }
        let mut improved = best.clone();
        ls.descend(&mut improved);
        candidates.push(improved);
        for m in candidates {
            let cost = p.cost(&m);
            if cost < self.best_cost && p.feasible(&m) {
                self.best_cost = cost;
                *best = m;
            }
        }
    }
}
