//! Timing harness on a generated placement-shaped instance (ignored by default).
//!
//! Run: `cargo test --release -- --ignored --nocapture placement_timing`

use std::time::Instant;

use super::generate::{Shape, placement};
use crate::place::maxsat::{Options, Outcome, solve};

#[test]
#[ignore]
fn placement_timing() {
    let hard = hard_shape();
    let default = Shape::default();
    for (name, shape, seed) in (1..=5)
        .map(|s| ("default", &default, s))
        .chain((1..=3).map(|s| ("hard", &hard, s)))
    {
        let inst = placement(seed, shape);
        let t = Instant::now();
        let out = solve(&inst, &Options::default());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let (kind, cost, lb) = match &out {
            Outcome::Optimal(s) => ("optimal", s.cost, s.lower_bound),
            Outcome::Feasible { solution, lower_bound } => ("feasible", solution.cost, *lower_bound),
            Outcome::Unsatisfiable { core } => ("unsat", core.len() as u64, 0),
        };
        println!(
            "{name} seed {seed}: vars {} hard {} soft {} -> {kind} cost {cost} lb {lb} in {ms:.1} ms",
            inst.num_vars(),
            inst.hard().len(),
            inst.soft().len()
        );
    }
}

/// Writes the timing instances as WCNF for cross-checks with other solvers.
/// Run: `MAXSAT_DUMP=/tmp/dir cargo test --release -- --ignored dump_placement_wcnf`
#[test]
#[ignore]
fn dump_placement_wcnf() {
    let Some(dir) = std::env::var_os("MAXSAT_DUMP") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create dump dir");
    for (name, shape) in [("default", Shape::default()), ("hard", hard_shape())] {
        let inst = placement(1, &shape);
        let mut f = std::fs::File::create(dir.join(format!("placement-{name}.wcnf"))).expect("create");
        crate::place::maxsat::write_wcnf(&inst, &mut f).expect("write");
    }
}

/// Fewer units, more choice, bigger hubs than the default shape.
fn hard_shape() -> Shape {
    Shape {
        hubs: 4,
        hub_services: 2_000,
        two_dp_pct: 70,
        lit_pct: 85,
        outside_pct: 5,
        ..Shape::default()
    }
}
