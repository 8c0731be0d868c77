//! Exact weighted partial MaxSAT on top of varisat, for sidecar placement.
//!
//! # Problem
//!
//! An [`Instance`] has variables `0..num_vars`, hard clauses (must hold) and
//! weighted soft clauses (violating one costs its weight). [`solve`] returns a
//! model of the hard clauses with minimum total violated weight, a proven
//! lower bound, or a small set of hard clauses that cannot hold together.
//! Weights are `u64` and sums saturate at `u64::MAX`.
//!
//! # Algorithm
//!
//! 1. Preprocessing (`simplify`): clauses are normalised (duplicate literals
//!    removed, tautologies dropped); hard unit clauses are propagated; satisfied
//!    clauses and false literals are removed; identical clauses are merged
//!    (soft weights add up; a soft clause equal to a hard one is dropped);
//!    opposite unit soft clauses cancel into a constant; pure literals
//!    (negation occurring nowhere) are set true, which gives every variable
//!    found only in soft unit clauses its cheapest value.
//! 2. The rest splits into independent components (union-find over variables
//!    sharing a clause, `components`); each is solved alone and the costs and
//!    lower bounds add up.
//! 3. A component is solved without SAT calls when the values preferred by its
//!    unit soft clauses already satisfy everything, or when it is one hard
//!    clause plus unit soft clauses (flip the cheapest variable) (`direct`).
//! 4. Otherwise it is solved by OLL (`oll`, `engine`): a core-guided search
//!    with totalizer relaxations (`totalizer`), using varisat assumptions and
//!    `failed_core()`. A first SAT call without assumptions checks the hard
//!    clauses and gives a first model, which a weight-aware greedy repair and
//!    1-flip descent (`local_search`) try to beat (upper bound). Hard clauses
//!    whose literals all contradict unit soft clauses are relaxed as cores
//!    without asking the solver; each further core raises the lower bound.
//!    Components of 4000+ variables first look for cores region by region
//!    with small solvers (`regions`), merging regions level by level. The
//!    search stops at the first model satisfying all remaining assumptions
//!    (optimal), when the bounds meet, or at the deadline (checked between
//!    SAT calls) with the best model found. No stratification: measured
//!    slower here (see `oll`).
//! 5. Unsatisfiable hard clauses (found by propagation or by a component's
//!    first SAT call) are mapped back to the caller's clause indices, including
//!    the unit clauses whose propagation shortened them, and shrunk by deletion
//!    with one selector variable per clause (`unsat_core`, at most 256 calls).
//!
//! # WCNF
//!
//! [`write_wcnf`] writes the MaxSAT Evaluation 2022 format: `h <lits> 0` for a
//! hard clause, `<weight> <lits> 0` for a soft clause, literals as DIMACS
//! integers (variable `v` is `v + 1`), `c` comment lines, no `p` line.
//! [`parse_wcnf`] reads that format and the older `p wcnf VARS CLAUSES [TOP]`
//! format (weight >= TOP marks a hard clause), plus `p cnf` (all hard).
//!
//! # Panics and limits
//!
//! None on any input. Array indexing is on arrays sized from the same
//! instance; varisat errors (which only occur with proof output or
//! interruption, neither used here) stop the search as a deadline would, and
//! so does running out of varisat's variable range (2^28) with totalizers.
//! A deadline cannot interrupt a SAT call in progress; and every component
//! gets its first SAT call even after the deadline, since a feasible model is
//! always returned.

mod clauses;
mod components;
mod direct;
mod driver;
mod engine;
mod hash;
mod instance;
mod lit;
mod local_search;
mod oll;
mod outcome;
mod problem;
mod propagate;
mod regions;
mod simplify;
mod totalizer;
mod unsat_core;
mod wcnf;

#[cfg(test)]
mod tests;

pub use instance::{Instance, SoftClause};
pub use lit::Lit;
pub use outcome::{Options, Outcome, Solution};
pub use wcnf::{WcnfError, parse_wcnf, write_wcnf};

/// Solves `inst` exactly, or until `opts.deadline` (then returns the best
/// solution found with its proven lower bound).
pub fn solve(inst: &Instance, opts: &Options) -> Outcome {
    driver::solve(inst, opts, &oll::Tuning::DEFAULT)
}
