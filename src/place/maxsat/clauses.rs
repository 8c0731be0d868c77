//! Flat clause storage over internal literal codes (`2 * var + negative`).
//!
//! Owns [`Clauses`] (one allocation for all literals of a clause list) and the
//! clause normalisation (sort, dedup, tautology detection) used everywhere.

/// A list of clauses stored back to back in one buffer.
#[derive(Clone, Debug, Default)]
pub(super) struct Clauses {
    lits: Vec<u32>,
    ends: Vec<usize>,
}

impl Clauses {
    /// Appends a clause.
    pub(super) fn push(&mut self, lits: &[u32]) {
        self.lits.extend_from_slice(lits);
        self.ends.push(self.lits.len());
    }

    /// Number of clauses.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Clause `i`; empty when out of range.
    pub(super) fn get(&self, i: usize) -> &[u32] {
        let end = self.ends.get(i).copied().unwrap_or(0);
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        self.lits.get(start..end).unwrap_or(&[])
    }

    /// All clauses in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &[u32]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Removes every clause, keeping the buffers.
    pub(super) fn clear(&mut self) {
        self.lits.clear();
        self.ends.clear();
    }
}

/// Sorts and dedups `buf` in place; returns false when it holds both a
/// literal and its negation (a tautology).
pub(super) fn normalize(buf: &mut Vec<u32>) -> bool {
    buf.sort_unstable();
    buf.dedup();
    // After sorting, `2v` and `2v + 1` are adjacent.
    !buf.windows(2).any(|w| w[0] >> 1 == w[1] >> 1)
}

/// Variable of an internal literal code.
pub(super) fn var_of(code: u32) -> usize {
    (code >> 1) as usize
}

/// True when the internal literal code is negative.
pub(super) fn is_neg(code: u32) -> bool {
    code & 1 == 1
}
