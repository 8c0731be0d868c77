//! Unit tests of the MaxSAT module on hand-written instances.

use super::super::{Instance, Lit, Options, Outcome, parse_wcnf, solve, write_wcnf};
use super::brute;

fn p(v: u32) -> Lit {
    Lit::positive(v).unwrap()
}
fn n(v: u32) -> Lit {
    Lit::negative(v).unwrap()
}

fn optimal(inst: &Instance) -> (u64, Vec<bool>) {
    let [stress, out] = super::solve_both(inst, &Options::default());
    let cost = |o: &Outcome| match o {
        Outcome::Optimal(s) => Some(s.cost),
        _ => None,
    };
    assert_eq!(cost(&stress), cost(&out), "tunings disagree");
    match out {
        Outcome::Optimal(s) => {
            assert!(inst.is_feasible(&s.model));
            assert_eq!(inst.cost(&s.model), s.cost);
            assert_eq!(s.lower_bound, s.cost);
            (s.cost, s.model)
        }
        other => panic!("expected optimal, got {other:?}"),
    }
}

fn core(inst: &Instance) -> Vec<usize> {
    match solve(inst, &Options::default()) {
        Outcome::Unsatisfiable { core } => core,
        other => panic!("expected unsat, got {other:?}"),
    }
}

#[test]
fn lit_conversions() {
    assert_eq!(Lit::new(Lit::MAX_VARS, false), None);
    assert!(Lit::new(Lit::MAX_VARS - 1, true).is_some());
    assert_eq!(Lit::from_dimacs(0), None);
    assert_eq!(Lit::from_dimacs(-3), Some(n(2)));
    assert_eq!(Lit::from_dimacs(i64::MIN), None);
    assert_eq!(p(4).to_dimacs(), 5);
    assert_eq!(!p(4), n(4));
    for l in [p(0), n(0), p(7), n(123_456)] {
        let v: varisat::Lit = l.into();
        assert_eq!(v.index(), l.var() as usize);
        assert_eq!(v.is_negative(), l.is_negative());
        assert_eq!(v.code(), l.code() as usize, "codes must agree for the fast path");
    }
}

#[test]
fn empty_instance() {
    assert_eq!(optimal(&Instance::new(0)), (0, vec![]));
    let (cost, model) = optimal(&Instance::new(3));
    assert_eq!((cost, model.len()), (0, 3));
}

#[test]
fn num_vars_grows_and_caps() {
    let mut inst = Instance::new(1);
    inst.add_soft(1, vec![p(9)]);
    assert_eq!(inst.num_vars(), 10);
    assert_eq!(Instance::new(u32::MAX).num_vars(), Lit::MAX_VARS);
}

#[test]
fn soft_only_picks_cheapest() {
    let mut inst = Instance::new(2);
    inst.add_soft(5, vec![p(0)]);
    inst.add_soft(3, vec![n(0)]);
    inst.add_soft(0, vec![p(1)]);
    inst.add_soft(2, vec![n(1)]);
    let (cost, model) = optimal(&inst);
    assert_eq!(cost, 3);
    assert!(model[0] && !model[1]);
}

#[test]
fn empty_soft_clause_is_constant_cost() {
    let mut inst = Instance::new(1);
    inst.add_soft(7, vec![]);
    inst.add_soft(7, vec![p(0), n(0)]);
    assert_eq!(optimal(&inst).0, 7);
}

#[test]
fn single_coverage_clause_picks_cheapest_literal() {
    let mut inst = Instance::new(3);
    inst.add_hard(vec![p(0), p(1), p(2)]);
    inst.add_soft(100, vec![n(0)]);
    inst.add_soft(30, vec![n(1)]);
    inst.add_soft(60, vec![n(2)]);
    let (cost, model) = optimal(&inst);
    assert_eq!(cost, 30);
    assert_eq!(model, vec![false, true, false]);
}

#[test]
fn placement_with_amo() {
    // Services a (vars 0 = d100, 1 = d30) and b (2 = d100, 3 = d30).
    let mut inst = Instance::new(4);
    inst.add_hard(vec![n(0), n(1)]);
    inst.add_hard(vec![n(2), n(3)]);
    inst.add_hard(vec![p(0), p(2)]); // needs dataplane 100 at a or b
    inst.add_hard(vec![p(1), p(3)]); // needs dataplane 30 at a or b
    inst.add_hard(vec![p(0), p(3)]);
    for (v, w) in [(0, 300), (1, 90), (2, 100), (3, 30)] {
        inst.add_soft(w, vec![n(v)]);
    }
    let (cost, model) = optimal(&inst);
    assert_eq!(Some(cost), brute::optimum(&inst));
    assert_eq!(cost, 330);
    assert_eq!(model, vec![true, false, false, true]);
}

#[test]
fn empty_hard_clause_is_its_own_core() {
    let mut inst = Instance::new(2);
    inst.add_hard(vec![p(0), p(1)]);
    inst.add_hard(vec![]);
    assert_eq!(core(&inst), vec![1]);
}

#[test]
fn propagation_conflict_core() {
    let mut inst = Instance::new(5);
    inst.add_hard(vec![p(3), p(4)]); // unrelated
    inst.add_hard(vec![p(0)]);
    inst.add_hard(vec![n(0), p(1)]);
    inst.add_hard(vec![p(2), p(3)]); // unrelated
    inst.add_hard(vec![n(1), p(2), n(0)]);
    inst.add_hard(vec![n(2)]);
    inst.add_soft(4, vec![n(3)]);
    assert_eq!(core(&inst), vec![1, 2, 4, 5]);
}

#[test]
fn component_conflict_core_is_minimal() {
    let mut inst = Instance::new(4);
    inst.add_hard(vec![p(2), p(3)]);
    inst.add_hard(vec![p(0), p(1)]);
    inst.add_hard(vec![p(0), n(1)]);
    inst.add_hard(vec![n(0), p(1), p(2)]);
    inst.add_hard(vec![n(0), p(1)]);
    inst.add_hard(vec![n(0), n(1)]);
    inst.add_soft(1, vec![n(2)]);
    assert_eq!(core(&inst), vec![1, 2, 4, 5]);
}

#[test]
fn propagated_units_are_part_of_component_core() {
    // Unit 0 shortens clauses 1..=4 to the 4 binary clauses over {2, 3}.
    let mut inst = Instance::new(4);
    inst.add_hard(vec![n(0)]);
    inst.add_hard(vec![p(0), p(2), p(3)]);
    inst.add_hard(vec![p(0), p(2), n(3)]);
    inst.add_hard(vec![n(2), p(3)]);
    inst.add_hard(vec![n(2), n(3)]);
    let c = core(&inst);
    assert_eq!(c, vec![0, 1, 2, 3, 4]);
    assert!(brute::is_unsat_subset(&inst, &c));
}

#[test]
fn duplicates_merge() {
    let mut inst = Instance::new(2);
    inst.add_hard(vec![p(0), p(1)]);
    inst.add_hard(vec![p(1), p(0), p(1)]);
    inst.add_soft(2, vec![n(0)]);
    inst.add_soft(2, vec![n(0)]);
    inst.add_soft(3, vec![n(1)]);
    inst.add_soft(9, vec![p(0), p(1)]); // same as a hard clause: always satisfied
    assert_eq!(optimal(&inst).0, 3);
}

#[test]
fn non_unit_soft_clauses() {
    let mut inst = Instance::new(3);
    inst.add_hard(vec![n(0), n(1)]);
    inst.add_soft(5, vec![p(0), p(2)]);
    inst.add_soft(4, vec![p(1), p(2)]);
    inst.add_soft(6, vec![n(2)]);
    inst.add_soft(1, vec![p(0)]);
    let (cost, _) = optimal(&inst);
    assert_eq!(Some(cost), brute::optimum(&inst));
}

#[test]
fn parse_new_format() {
    let text = "c hello\nh 1 -2 0\n5 2 0\n0 -1 0\nh 3\n -1 0\n";
    let inst = parse_wcnf(text).unwrap();
    assert_eq!(inst.num_vars(), 3);
    assert_eq!(inst.hard(), &[vec![p(0), n(1)], vec![p(2), n(0)]]);
    assert_eq!(inst.soft().len(), 2);
    assert_eq!(inst.soft()[0].weight, 5);
    assert_eq!(inst.soft()[1].lits, vec![n(0)]);
}

#[test]
fn parse_old_formats() {
    let inst = parse_wcnf("p wcnf 3 3 10\n10 1 2 0\n3 -1 0\n12 -2 3 0\n").unwrap();
    assert_eq!(inst.num_vars(), 3);
    assert_eq!(inst.hard().len(), 2);
    assert_eq!(inst.soft()[0].weight, 3);
    let inst = parse_wcnf("p wcnf 2 2\n4 1 0\n5 -1 2 0\n").unwrap();
    assert_eq!((inst.hard().len(), inst.soft().len()), (0, 2));
    let inst = parse_wcnf("p cnf 2 2\n1 -2 0\n0\n").unwrap();
    assert_eq!(inst.hard(), &[vec![p(0), n(1)], vec![]]);
}

#[test]
fn parse_errors() {
    for (text, line) in [
        ("h 1 x 0\n", 1),
        ("h 1 2\n", 1),
        ("c\n-3 1 0\n", 2),
        ("p wcnf 2 1 5\np wcnf 2 1 5\n", 2),
        ("h 1 0\np wcnf 2 1 5\n", 2),
        ("p wcnf 2\n", 1),
        ("p maxsat 1 1\n", 1),
        ("h 999999999999 0\n", 1),
        ("p wcnf 99999999999 1\n", 1),
    ] {
        let e = parse_wcnf(text).expect_err(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
    }
}

#[test]
fn write_format() {
    let mut inst = Instance::new(2);
    inst.add_hard(vec![p(0), n(1)]);
    inst.add_soft(7, vec![p(1)]);
    let mut out = Vec::new();
    write_wcnf(&inst, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('c')).collect();
    assert_eq!(body, vec!["h 1 -2 0", "7 2 0"]);
}

#[test]
fn saturating_weights() {
    let mut inst = Instance::new(2);
    inst.add_soft(u64::MAX, vec![p(0)]);
    inst.add_soft(u64::MAX, vec![n(0)]);
    inst.add_soft(5, vec![p(1)]);
    inst.add_soft(5, vec![n(1)]);
    assert_eq!(optimal(&inst).0, u64::MAX);
}

#[test]
fn medium_placement_is_optimal_and_consistent() {
    use crate::synth::{PlacementShape, placement_instance};
    let shape = PlacementShape {
        services: 600,
        coverage: 700,
        hubs: 1,
        hub_services: 150,
        max_cluster: 40,
        ..PlacementShape::default()
    };
    for seed in 1..=3 {
        let inst = placement_instance(seed, &shape);
        let (cost, model) = optimal(&inst);
        assert_eq!(inst.cost(&model), cost);
    }
}

/// A deadline on an instance of 20,000 services in one component (a
/// gateway joins every cluster), which takes a few hundred ms to solve to
/// optimality: the answer by the deadline is a feasible placement whose
/// cost is the model's and is not below the proven bound.
#[test]
fn a_deadline_on_one_large_component_gives_a_feasible_bounded_answer() {
    use crate::synth::{PlacementShape, placement_instance};
    let shape = PlacementShape {
        gateway: true,
        ..PlacementShape::hard()
    };
    let inst = placement_instance(7, &shape);
    let opts = Options {
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(50)),
    };
    let (solution, lower_bound) = match solve(&inst, &opts) {
        Outcome::Optimal(s) => {
            let lb = s.lower_bound;
            (s, lb)
        }
        Outcome::Feasible { solution, lower_bound } => (solution, lower_bound),
        Outcome::Unsatisfiable { .. } => panic!("a planted placement satisfies every clause"),
    };
    assert!(inst.is_feasible(&solution.model));
    assert_eq!(inst.cost(&solution.model), solution.cost);
    assert!(lower_bound <= solution.cost, "{lower_bound} > {}", solution.cost);
}
