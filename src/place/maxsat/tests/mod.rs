//! Tests of the MaxSAT module: unit tests, property tests against brute
//! force, WCNF round trips. Its timings are criterion benchmarks
//! (`benches/place.rs`, group `maxsat`).

mod brute;
mod generate;
mod prop;
mod unit;

use super::oll::Tuning;
use super::{Instance, Options, Outcome};

/// Thresholds small enough that tiny instances go through local search and
/// the region phase.
const STRESS: Tuning = Tuning {
    local_search_min_vars: 1,
    region_min_vars: 4,
    region_size: 3,
};

/// Solves with the production tuning and with [`STRESS`].
fn solve_both(inst: &Instance, opts: &Options) -> [Outcome; 2] {
    [
        super::driver::solve(inst, opts, &Tuning::DEFAULT),
        super::driver::solve(inst, opts, &STRESS),
    ]
}
