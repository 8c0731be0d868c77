//! The weighted partial MaxSAT instance: variables, hard clauses, soft clauses.
//!
//! Owns [`Instance`] and [`SoftClause`], and the evaluation helpers (is a model
//! feasible, what does it cost) shared by the solver and the tests.

use super::lit::Lit;

/// A soft clause: violating it costs `weight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoftClause {
    /// Cost paid when no literal of `lits` is true. Zero is allowed (harmless).
    pub weight: u64,
    /// The disjunction; an empty clause is always violated.
    pub lits: Vec<Lit>,
}

/// A weighted partial MaxSAT instance.
///
/// `num_vars` grows automatically to cover every literal added, so it is
/// always at least one more than the largest variable index used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    num_vars: u32,
    hard: Vec<Vec<Lit>>,
    soft: Vec<SoftClause>,
}

impl Instance {
    /// An empty instance over `num_vars` variables (capped at [`Lit::MAX_VARS`]).
    pub fn new(num_vars: u32) -> Instance {
        Instance {
            num_vars: num_vars.min(Lit::MAX_VARS),
            hard: Vec::new(),
            soft: Vec::new(),
        }
    }

    /// Adds a hard clause and returns its index (the index used in unsat cores).
    pub fn add_hard(&mut self, lits: Vec<Lit>) -> usize {
        self.cover(&lits);
        self.hard.push(lits);
        self.hard.len() - 1
    }

    /// Adds a soft clause and returns its index.
    pub fn add_soft(&mut self, weight: u64, lits: Vec<Lit>) -> usize {
        self.cover(&lits);
        self.soft.push(SoftClause { weight, lits });
        self.soft.len() - 1
    }

    /// Number of variables; models have exactly this length.
    pub fn num_vars(&self) -> u32 {
        self.num_vars
    }

    /// The hard clauses, in insertion order.
    pub fn hard(&self) -> &[Vec<Lit>] {
        &self.hard
    }

    /// The soft clauses, in insertion order.
    pub fn soft(&self) -> &[SoftClause] {
        &self.soft
    }

    /// True when `model` satisfies every hard clause.
    pub fn is_feasible(&self, model: &[bool]) -> bool {
        self.hard.iter().all(|c| clause_true(c, model))
    }

    /// Sum of the weights of the soft clauses `model` violates (saturating).
    pub fn cost(&self, model: &[bool]) -> u64 {
        self.soft
            .iter()
            .filter(|s| !clause_true(&s.lits, model))
            .fold(0u64, |acc, s| acc.saturating_add(s.weight))
    }

    fn cover(&mut self, lits: &[Lit]) {
        for l in lits {
            // `var < MAX_VARS <= u32::MAX`, so `+ 1` cannot overflow.
            self.num_vars = self.num_vars.max(l.var() + 1);
        }
    }
}

/// True when some literal of `lits` is true in `model` (missing variables are false).
pub(super) fn clause_true(lits: &[Lit], model: &[bool]) -> bool {
    lits.iter().any(|l| {
        let v = model.get(l.var() as usize).copied().unwrap_or(false);
        v != l.is_negative()
    })
}
