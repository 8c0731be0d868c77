//! The literal type of the MaxSAT API: a variable index plus a sign.
//!
//! Owns [`Lit`], its range limit ([`Lit::MAX_VARS`], equal to varisat's) and the
//! conversions to DIMACS integers and to `varisat::Lit`.

use std::fmt;
use std::ops::Not;

/// A literal: variable `var` (0-based), positive or negative.
///
/// Variables are limited to indices below [`Lit::MAX_VARS`] (2^28, the range
/// varisat supports), so every `Lit` converts to a `varisat::Lit`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lit(u32);

impl Lit {
    /// Number of usable variable indices (`0..MAX_VARS`).
    pub const MAX_VARS: u32 = 1 << 28;

    /// The literal of `var` with the given sign; `None` when `var >= MAX_VARS`.
    pub fn new(var: u32, negative: bool) -> Option<Lit> {
        (var < Self::MAX_VARS).then_some(Lit((var << 1) | u32::from(negative)))
    }

    /// `x[var]`; `None` when `var >= MAX_VARS`.
    pub fn positive(var: u32) -> Option<Lit> {
        Self::new(var, false)
    }

    /// `not x[var]`; `None` when `var >= MAX_VARS`.
    pub fn negative(var: u32) -> Option<Lit> {
        Self::new(var, true)
    }

    /// The variable index.
    pub fn var(self) -> u32 {
        self.0 >> 1
    }

    /// True for `not x`.
    pub fn is_negative(self) -> bool {
        self.0 & 1 == 1
    }

    /// The DIMACS number: `var + 1`, negated for a negative literal.
    pub fn to_dimacs(self) -> i64 {
        let n = i64::from(self.var()) + 1;
        if self.is_negative() { -n } else { n }
    }

    /// The literal of a non-zero DIMACS number; `None` for 0 or out of range.
    pub fn from_dimacs(n: i64) -> Option<Lit> {
        let var = u32::try_from(n.unsigned_abs().checked_sub(1)?).ok()?;
        Self::new(var, n < 0)
    }

    /// Dense code `2 * var + negative`, used as an index by the solver internals.
    pub(super) fn code(self) -> u32 {
        self.0
    }
}

impl Not for Lit {
    type Output = Lit;
    fn not(self) -> Lit {
        Lit(self.0 ^ 1)
    }
}

impl From<Lit> for varisat::Lit {
    fn from(lit: Lit) -> varisat::Lit {
        // `var < MAX_VARS == varisat::Var::max_count()`, so this is in range.
        varisat::Lit::from_index(lit.var() as usize, !lit.is_negative())
    }
}

impl fmt::Debug for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_dimacs())
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_dimacs())
    }
}
