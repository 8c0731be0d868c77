//! Timing harness on a generated placement-shaped instance (ignored by default).
//!
//! Run: `cargo test --release -- --ignored --nocapture placement_timing`

use std::time::Instant;

use super::super::{Options, Outcome, solve, write_wcnf};
use super::generate::{Shape, placement};

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
    let gateway = Shape {
        gateway: true,
        ..hard_shape()
    };
    for (name, shape, seed) in [
        ("default", Shape::default(), 1),
        ("hard", hard_shape(), 1),
        ("gateway", gateway, 7),
    ] {
        let inst = placement(seed, &shape);
        let mut f = std::fs::File::create(dir.join(format!("placement-{name}.wcnf"))).expect("create");
        write_wcnf(&inst, &mut f).expect("write");
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

/// One giant component holding every service (stress test).
#[test]
#[ignore]
fn giant_component_timing() {
    let random = |lit_pct, two_dp_pct| Shape {
        hubs: 1,
        hub_services: 20_000,
        lit_pct,
        two_dp_pct,
        outside_pct: 5,
        ..Shape::default()
    };
    let gateway = Shape {
        gateway: true,
        ..hard_shape()
    };
    for (name, shape) in [
        ("giant-random-default", random(60, 34)),
        ("giant-random-hard", random(85, 70)),
        ("gateway-joined-hard", gateway),
    ] {
        let inst = placement(7, &shape);
        let t = Instant::now();
        let out = solve(&inst, &Options::default());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let Outcome::Optimal(best) = out else {
            panic!("{name}: not optimal")
        };
        println!("{name}: optimal cost {} in {ms:.1} ms", best.cost);
        // With a 50 ms deadline: the best solution found and the proven bound.
        let t = Instant::now();
        let deadline = Some(t + std::time::Duration::from_millis(50));
        let out = solve(&inst, &Options { deadline });
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match out {
            Outcome::Optimal(s) => println!("  deadline 50 ms: optimal {} in {ms:.1} ms", s.cost),
            Outcome::Feasible { solution, lower_bound } => {
                assert!(lower_bound <= best.cost && best.cost <= solution.cost);
                println!(
                    "  deadline 50 ms: cost {} (+{:.2}%) lb {} (-{:.2}%) in {ms:.1} ms",
                    solution.cost,
                    100.0 * (solution.cost - best.cost) as f64 / best.cost as f64,
                    lower_bound,
                    100.0 * (best.cost - lower_bound) as f64 / best.cost as f64
                );
            }
            Outcome::Unsatisfiable { .. } => panic!("unsat"),
        }
    }
}
