//! The OLL state of one component: the varisat solvers, the soft
//! constraints as weighted assumption literals, the totalizers, the bounds.
//!
//! Owns [`Engine`] and the OLL step itself ([`Engine::process_core`]): a core
//! raises the lower bound by its minimum residual weight, lowers the members'
//! weights by it, and is relaxed by a totalizer whose output "at least 2
//! violated" becomes a new assumption; members that are totalizer outputs
//! `!(sum >= j)` bring in `!(sum >= j+1)`. Also the clause cores found
//! without a SAT call ([`Engine::seed_cores`]) and the bookkeeping of which
//! region each item depends on (spans, see `oll`).

use varisat::{ExtendFormula, Solver};

use super::clauses::{Clauses, var_of};
use super::problem::Problem;
use super::totalizer;

const NO_ENTRY: u32 = u32::MAX;

/// Interval of base regions that an item depends on.
pub(super) type Span = (u32, u32);

/// Smallest span covering both.
pub(super) fn join(a: Span, b: Span) -> Span {
    (a.0.min(b.0), a.1.max(b.1))
}

/// The region of width `width` holding all of `span`, if one does.
pub(super) fn region_at(span: Span, width: u32) -> Option<u32> {
    let width = width.max(1);
    (span.0 / width == span.1 / width).then_some(span.0 / width)
}

/// A soft constraint of the current OLL reformulation.
pub(super) struct Entry {
    /// Solver literal that is true when this soft constraint is satisfied.
    pub(super) lit: u32,
    /// Residual weight; 0 once fully relaxed.
    pub(super) weight: u64,
    /// For totalizer outputs: (totalizer, j) with `lit == !(sum >= j)`.
    pub(super) tot: Option<(usize, usize)>,
    /// Base regions whose clauses define it.
    pub(super) span: Span,
}

/// A totalizer over the violation literals of one core.
pub(super) struct Tot {
    /// Violation literals (negations of the core's assumption literals).
    pub(super) inputs: Vec<u32>,
    /// `outputs[j - 1]` is implied by "at least `j` inputs true".
    pub(super) outputs: Vec<u32>,
    /// Base regions whose clauses define it.
    pub(super) span: Span,
}

/// OLL state of one component.
pub(super) struct Engine<'p> {
    pub(super) p: &'p Problem,
    pub(super) sat: Solver<'static>,
    /// Solver of the region being worked on; gets every clause added meanwhile.
    pub(super) region_sat: Option<Solver<'static>>,
    /// Base region of each problem variable (all 0 without regions).
    pub(super) region_of_var: Vec<u32>,
    /// Every clause given to the solvers, with its span (only kept while
    /// regions are in use).
    pub(super) log: Clauses,
    /// Span of each logged clause.
    pub(super) log_span: Vec<Span>,
    /// Next unused solver variable.
    pub(super) next_var: u32,
    /// The soft constraints (residual weight 0 once relaxed).
    pub(super) entries: Vec<Entry>,
    /// Per solver variable: index of the entry on it, or `NO_ENTRY`.
    pub(super) entry_of_var: Vec<u32>,
    /// Totalizers, one per relaxed core of two or more entries.
    pub(super) tots: Vec<Tot>,
    /// Proven lower bound.
    pub(super) lb: u64,
    /// Cost of the best model found (`u64::MAX` before the first).
    pub(super) best_cost: u64,
    /// Set when new totalizers would leave varisat's variable range; the
    /// search then stops as at a deadline.
    pub(super) exhausted: bool,
    /// Once the search has stopped: cores only raise the lower bound (the
    /// relaxation is not encoded, since no SAT call follows).
    pub(super) bound_only: bool,
    scratch: Vec<varisat::Lit>,
    model_buf: Vec<bool>,
}

impl<'p> Engine<'p> {
    /// Fresh state for `p`; regions are in use when `region_of_var` is non-empty.
    pub(super) fn new(p: &'p Problem, region_of_var: Vec<u32>) -> Engine<'p> {
        Engine {
            p,
            sat: Solver::new(),
            region_sat: None,
            region_of_var,
            log: Clauses::default(),
            log_span: Vec::new(),
            next_var: p.num_vars as u32,
            entries: Vec::new(),
            entry_of_var: Vec::new(),
            tots: Vec::new(),
            lb: 0,
            best_cost: u64::MAX,
            exhausted: false,
            bound_only: false,
            scratch: Vec::new(),
            model_buf: Vec::new(),
        }
    }

    /// A fresh solver variable.
    pub(super) fn new_var(&mut self) -> u32 {
        let v = self.next_var;
        self.next_var += 1;
        v
    }

    /// Adds a clause to the component solver and the current region solver,
    /// and logs it for later region levels.
    pub(super) fn add(&mut self, lits: &[u32], span: Span) {
        self.scratch.clear();
        self.scratch
            .extend(lits.iter().map(|&c| varisat::Lit::from_code(c as usize)));
        self.sat.add_clause(&self.scratch);
        if let Some(r) = self.region_sat.as_mut() {
            r.add_clause(&self.scratch);
        }
        if !self.region_of_var.is_empty() {
            self.log.push(lits);
            self.log_span.push(span);
        }
    }

    /// Span of a clause over problem variables.
    pub(super) fn span_of(&self, lits: &[u32]) -> Span {
        lits.iter()
            .map(|&l| {
                let r = self.region_of_var.get(var_of(l)).copied().unwrap_or(0);
                (r, r)
            })
            .reduce(join)
            .unwrap_or((0, 0))
    }

    /// Adds a soft constraint: assumption `lit` of weight `weight`.
    pub(super) fn push_entry(&mut self, lit: u32, weight: u64, tot: Option<(usize, usize)>, span: Span) {
        let v = var_of(lit);
        if self.entry_of_var.len() <= v {
            self.entry_of_var.resize(v + 1, NO_ENTRY);
        }
        self.entry_of_var[v] = self.entries.len() as u32;
        self.entries.push(Entry { lit, weight, tot, span });
    }

    /// The entry whose assumption literal is exactly `lit`.
    pub(super) fn entry_of(&self, lit: u32) -> Option<usize> {
        let e = *self.entry_of_var.get(var_of(lit))?;
        let entry = self.entries.get(e as usize)?;
        (entry.lit == lit).then_some(e as usize)
    }

    /// One SAT call under `assumptions` on the region solver when there is
    /// one, else on the component solver. `Some((sat, core))`: the answer and,
    /// when unsatisfiable, the failed assumptions; `None` on a varisat error.
    pub(super) fn solve(&mut self, assumptions: &[u32]) -> Option<(bool, Vec<u32>)> {
        self.scratch.clear();
        self.scratch
            .extend(assumptions.iter().map(|&c| varisat::Lit::from_code(c as usize)));
        let solver = self.region_sat.as_mut().unwrap_or(&mut self.sat);
        solver.assume(&self.scratch);
        if solver.solve().ok()? {
            return Some((true, Vec::new()));
        }
        let core = solver.failed_core()?.iter().map(|l| l.code() as u32).collect();
        Some((false, core))
    }

    /// Reads the component solver's model; keeps it in `best` when it is the
    /// cheapest so far.
    pub(super) fn record_model(&mut self, best: &mut Vec<bool>) -> Option<u64> {
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

    /// Hard clauses whose literals all contradict unit soft assumptions are
    /// cores already; relax them without asking the solver (only those inside
    /// base region `region` when given).
    pub(super) fn seed_cores(&mut self, region: Option<u32>) {
        let p = self.p;
        let mut order: Vec<usize> = (0..p.hard.len())
            .filter(|&i| region.is_none_or(|r| region_at(self.span_of(p.hard.get(i)), 1) == Some(r)))
            .collect();
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

    /// Relaxes `core` (assumption literals).
    pub(super) fn process_core(&mut self, core: &[u32]) {
        let ids: Vec<usize> = core.iter().filter_map(|&l| self.entry_of(l)).collect();
        let Some(wmin) = ids.iter().map(|&e| self.entries[e].weight).min() else {
            return;
        };
        if wmin == 0 {
            return;
        }
        self.lb = self.lb.saturating_add(wmin);
        if self.bound_only {
            for &e in &ids {
                self.entries[e].weight -= wmin;
            }
            return;
        }
        for &e in &ids {
            self.entries[e].weight -= wmin;
            if let Some((t, j)) = self.entries[e].tot {
                self.bump(t, j + 1, wmin);
            }
        }
        if let [e] = ids[..] {
            let (lit, span) = (self.entries[e].lit, self.entries[e].span);
            self.add(&[lit ^ 1], span);
        } else {
            let inputs: Vec<u32> = ids.iter().map(|&e| self.entries[e].lit ^ 1).collect();
            let span = ids.iter().map(|&e| self.entries[e].span).reduce(join).unwrap_or((0, 0));
            let t = self.tots.len();
            self.tots.push(Tot {
                inputs,
                outputs: Vec::new(),
                span,
            });
            self.bump(t, 2, wmin);
        }
    }

    /// Adds weight `w` to the assumption `!(sum of totalizer t >= j)`.
    pub(super) fn bump(&mut self, t: usize, j: usize, w: u64) {
        let Some(tot) = self.tots.get(t) else { return };
        let (n, span) = (tot.inputs.len(), tot.span);
        if j > n {
            return;
        }
        if tot.outputs.len() < j {
            let bound = (2 * j).min(n);
            // A totalizer creates fewer than `2 * n * bound` variables.
            let needed = 2usize.saturating_mul(n).saturating_mul(bound);
            if (self.next_var as usize).saturating_add(needed) >= varisat::Var::max_count() {
                self.exhausted = true;
                return;
            }
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
                self.add(c, span);
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
            None => self.push_entry(lit, w, Some((t, j)), span),
        }
    }
}
