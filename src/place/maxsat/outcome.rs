//! What `solve` takes besides the instance and what it returns.
//!
//! Owns [`Options`], [`Outcome`] and [`Solution`].

use std::time::Instant;

/// Solver options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Stop improving after this instant and return the best solution found.
    /// Checked between SAT calls (varisat cannot be interrupted inside a call),
    /// so the overrun is one SAT call per component at most.
    pub deadline: Option<Instant>,
}

/// A feasible assignment with its cost and a proven lower bound on the optimum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution {
    /// `model[v]` is the value of variable `v`; length `Instance::num_vars()`.
    pub model: Vec<bool>,
    /// Sum of the weights of the soft clauses violated by `model` (saturating).
    pub cost: u64,
    /// Proven lower bound on the optimum; `lower_bound <= cost`.
    pub lower_bound: u64,
}

/// Result of [`super::solve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `solution.cost` is the optimum (`solution.lower_bound == solution.cost`).
    Optimal(Solution),
    /// The deadline passed first: the best solution found and the proven bound
    /// (`lower_bound == solution.lower_bound < solution.cost`).
    Feasible {
        /// Best solution found.
        solution: Solution,
        /// Proven lower bound on the optimum.
        lower_bound: u64,
    },
    /// The hard clauses alone are unsatisfiable.
    Unsatisfiable {
        /// Sorted indices of hard clauses that are unsatisfiable together
        /// (minimised by deletion when the deadline allows).
        core: Vec<usize>,
    },
}
