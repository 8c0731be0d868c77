//! Property tests: the solver against brute force on thousands of tiny
//! instances, unsat cores checked by brute force, deadlines, WCNF round trips.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::{Instance, Lit, Options, Outcome, parse_wcnf, solve, write_wcnf};
use super::generate::{tiny_instance, tiny_placement};
use super::{brute, solve_both};

fn check_optimal(inst: &Instance, out: &Outcome) -> Result<(), TestCaseError> {
    let expected = brute::optimum(inst);
    match out {
        Outcome::Optimal(s) => {
            prop_assert_eq!(Some(s.cost), expected, "cost differs from brute force");
            prop_assert_eq!(s.model.len(), inst.num_vars() as usize);
            prop_assert!(inst.is_feasible(&s.model), "model violates a hard clause");
            prop_assert_eq!(inst.cost(&s.model), s.cost, "reported cost is not the model's");
            prop_assert_eq!(s.lower_bound, s.cost);
        }
        Outcome::Feasible { .. } => prop_assert!(false, "no deadline, yet not optimal"),
        Outcome::Unsatisfiable { core } => {
            prop_assert_eq!(expected, None, "reported unsat, brute force found a model");
            check_core(inst, core)?;
        }
    }
    Ok(())
}

fn check_core(inst: &Instance, core: &[usize]) -> Result<(), TestCaseError> {
    prop_assert!(!core.is_empty());
    prop_assert!(core.windows(2).all(|w| w[0] < w[1]), "core not sorted/deduped");
    prop_assert!(core.iter().all(|&i| i < inst.hard().len()));
    prop_assert!(brute::is_unsat_subset(inst, core), "core is satisfiable");
    // Deletion-based minimisation within budget gives a minimal core here.
    for skip in 0..core.len() {
        let rest: Vec<usize> = core
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != skip)
            .map(|(_, &c)| c)
            .collect();
        prop_assert!(!brute::is_unsat_subset(inst, &rest), "core is not minimal");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn optimum_matches_brute_force(inst in prop_oneof![tiny_instance(), tiny_placement()]) {
        for out in solve_both(&inst, &Options::default()) {
            check_optimal(&inst, &out)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn expired_deadline_still_feasible(inst in prop_oneof![tiny_instance(), tiny_placement()]) {
        let opts = Options { deadline: Some(Instant::now() - Duration::from_millis(1)) };
        let expected = brute::optimum(&inst);
        for out in solve_both(&inst, &opts) {
        match out {
            Outcome::Optimal(s) => prop_assert_eq!(Some(s.cost), expected),
            Outcome::Feasible { solution, lower_bound } => {
                let opt = expected.expect("feasible outcome on an unsat instance");
                prop_assert!(inst.is_feasible(&solution.model));
                prop_assert_eq!(inst.cost(&solution.model), solution.cost);
                prop_assert_eq!(lower_bound, solution.lower_bound);
                prop_assert!(lower_bound <= opt && opt <= solution.cost);
                prop_assert!(lower_bound < solution.cost);
            }
            Outcome::Unsatisfiable { core } => {
                prop_assert_eq!(expected, None);
                prop_assert!(brute::is_unsat_subset(&inst, &core));
            }
        }
        }
    }

    #[test]
    fn wcnf_round_trip(inst in tiny_instance()) {
        let mut buf = Vec::new();
        write_wcnf(&inst, &mut buf).expect("write to memory");
        let text = String::from_utf8(buf).expect("ascii");
        let back = parse_wcnf(&text).expect("own output parses");
        prop_assert_eq!(back.hard(), inst.hard());
        prop_assert_eq!(back.soft(), inst.soft());
        prop_assert!(back.num_vars() <= inst.num_vars());
        let a = solve(&inst, &Options::default());
        let b = solve(&back, &Options::default());
        let cost = |o: &Outcome| match o {
            Outcome::Optimal(s) => Some(s.cost),
            _ => None,
        };
        prop_assert_eq!(cost(&a), cost(&b));
    }

    #[test]
    fn old_wcnf_format_parses(inst in tiny_instance()) {
        let top = inst.soft().iter().map(|s| s.weight).sum::<u64>() + 1;
        let mut text = format!(
            "c old format\np wcnf {} {} {}\n",
            inst.num_vars(),
            inst.hard().len() + inst.soft().len(),
            top
        );
        let dimacs = |lits: &[Lit]| {
            lits.iter().map(|l| format!("{} ", l.to_dimacs())).collect::<String>()
        };
        for c in inst.hard() {
            text += &format!("{top} {}0\n", dimacs(c));
        }
        for s in inst.soft() {
            text += &format!("{} {}0\n", s.weight, dimacs(&s.lits));
        }
        let back = parse_wcnf(&text).expect("old format parses");
        prop_assert_eq!(back.num_vars(), inst.num_vars());
        prop_assert_eq!(back.hard(), inst.hard());
        prop_assert_eq!(back.soft(), inst.soft());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Bigger instances (up to 14 variables) built from several tiny ones, so
    /// that components, propagation and the OLL engine all get exercised.
    #[test]
    fn union_of_tiny_instances(parts in prop::collection::vec(tiny_placement(), 1..=3)) {
        let mut inst = Instance::new(0);
        let mut offset = 0;
        for p in &parts {
            let shift = |c: &[Lit]| -> Vec<Lit> {
                c.iter()
                    .map(|l| Lit::new(l.var() + offset, l.is_negative()).unwrap())
                    .collect()
            };
            for c in p.hard() {
                inst.add_hard(shift(c));
            }
            for s in p.soft() {
                inst.add_soft(s.weight, shift(&s.lits));
            }
            offset += p.num_vars();
        }
        prop_assume!(inst.num_vars() <= 14);
        for out in solve_both(&inst, &Options::default()) {
            check_optimal(&inst, &out)?;
        }
    }
}
