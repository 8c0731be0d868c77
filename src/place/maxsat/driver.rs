//! The top-level pipeline behind [`super::solve`].
//!
//! Owns the order of the phases: simplify, split into components, solve each
//! component (directly when trivial, else with the OLL engine), assemble the
//! model and the bounds, and turn any unsatisfiability into a minimised core.

use super::components::split;
use super::direct::solve_direct;
use super::instance::Instance;
use super::oll::{CompResult, Tuning, solve_oll};
use super::outcome::{Options, Outcome, Solution};
use super::problem::Problem;
use super::propagate::TRUE;
use super::simplify::simplify;
use super::unsat_core::minimize_core;

/// See [`super::solve`]; `tuning` sets the engine's size thresholds.
pub(super) fn solve(inst: &Instance, opts: &Options, tuning: &Tuning) -> Outcome {
    let simp = match simplify(inst) {
        Ok(s) => s,
        Err(candidates) => {
            return Outcome::Unsatisfiable {
                core: minimize_core(inst, &candidates, opts.deadline),
            };
        }
    };
    let parts = split(&simp);
    let mut model: Vec<bool> = simp.value.iter().map(|&v| v == TRUE).collect();
    let mut cost_sum = simp.constant;
    let mut lb = simp.constant;
    let mut problem = Problem::default();
    let mut local = Vec::new();
    for k in 0..parts.len() {
        let comp = parts.component(k);
        problem.load(&simp, &parts, &comp);
        let (cost, comp_lb) = match solve_direct(&problem, &mut local) {
            Some(c) => (c, c),
            None => match solve_oll(&problem, tuning, opts.deadline, &mut local) {
                CompResult::Solved { cost, lb } => (cost, lb),
                CompResult::Unsat => {
                    let candidates = simp.original_support(inst, &problem.hard_id);
                    return Outcome::Unsatisfiable {
                        core: minimize_core(inst, &candidates, opts.deadline),
                    };
                }
            },
        };
        for (&v, &b) in comp.vars.iter().zip(&local) {
            if let Some(slot) = model.get_mut(v as usize) {
                *slot = b;
            }
        }
        cost_sum = cost_sum.saturating_add(cost);
        lb = lb.saturating_add(comp_lb);
    }
    let cost = inst.cost(&model);
    debug_assert!(inst.is_feasible(&model), "model violates a hard clause");
    debug_assert_eq!(cost, cost_sum, "component costs do not add up");
    let lower_bound = lb.min(cost);
    let solution = Solution {
        model,
        cost,
        lower_bound,
    };
    if lower_bound == cost {
        Outcome::Optimal(solution)
    } else {
        Outcome::Feasible { solution, lower_bound }
    }
}
