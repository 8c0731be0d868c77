//! The top-level pipeline behind [`super::solve`].
//!
//! Owns the order of the phases: simplify, split into components, solve each
//! component (directly when trivial, else with the OLL engine), assemble the
//! model and the bounds, and turn any unsatisfiability into a minimised core.

use super::components::split;
use super::direct::solve_direct;
use super::instance::Instance;
use super::oll::{CompResult, solve_oll};
use super::outcome::{Options, Outcome, Solution};
use super::problem::Problem;
use super::propagate::TRUE;
use super::simplify::simplify;
use super::unsat_core::minimize_core;

/// See [`super::solve`].
pub(super) fn solve(inst: &Instance, opts: &Options) -> Outcome {
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
    let dbg = std::env::var_os("MAXSAT_STATS").is_some();
    let t0 = std::time::Instant::now();
    let (mut n_direct, mut n_oll, mut max_oll, mut oll_time) = (0, 0, 0, 0.0);
    if dbg {
        eprintln!(
            "simplified: hard {} soft {} comps {}",
            simp.hard.len(),
            simp.soft.len(),
            parts.len()
        );
    }
    for k in 0..parts.len() {
        let comp = parts.component(k);
        problem.load(&simp, &parts, &comp);
        let (cost, comp_lb) = match solve_direct(&problem, &mut local) {
            Some(c) => {
                n_direct += 1;
                (c, c)
            }
            None => match {
                n_oll += 1;
                max_oll = max_oll.max(problem.num_vars);
                let t = std::time::Instant::now();
                let r = solve_oll(&problem, opts.deadline, &mut local);
                oll_time += t.elapsed().as_secs_f64();
                r
            } {
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
    if dbg {
        eprintln!(
            "direct {n_direct} oll {n_oll} max_oll_vars {max_oll} oll_time {:.1}ms comps_time {:.1}ms",
            oll_time * 1e3,
            t0.elapsed().as_secs_f64() * 1e3
        );
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
