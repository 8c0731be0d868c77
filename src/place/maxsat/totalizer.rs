//! Totalizer cardinality encoding (one direction) for the OLL relaxations.
//!
//! Owns [`build`]: given input literals and a bound `k`, creates outputs
//! `o_1..o_min(k, n)` with clauses forcing `o_j` true whenever at least `j`
//! inputs are true. Only that direction is needed: the solver assumes outputs
//! false, so it may never set an output true without cause that matters.

/// Builds a totalizer over `inputs` (internal literal codes) with outputs for
/// sums `1..=bound`; `new_var` allocates a fresh solver variable, `add`
/// emits a clause. Returns the output literals, `out[j - 1]` meaning "sum >= j".
pub(super) fn build(
    inputs: &[u32],
    bound: usize,
    new_var: &mut dyn FnMut() -> u32,
    add: &mut dyn FnMut(&[u32]),
) -> Vec<u32> {
    if bound == 0 || inputs.is_empty() {
        return Vec::new();
    }
    node(inputs, bound, new_var, add)
}

fn node(inputs: &[u32], bound: usize, new_var: &mut dyn FnMut() -> u32, add: &mut dyn FnMut(&[u32])) -> Vec<u32> {
    if inputs.len() == 1 {
        return inputs.to_vec();
    }
    let (left, right) = inputs.split_at(inputs.len() / 2);
    let a = node(left, bound, new_var, add);
    let b = node(right, bound, new_var, add);
    let m = (a.len() + b.len()).min(bound);
    let out: Vec<u32> = (0..m).map(|_| 2 * new_var()).collect();
    let mut clause = Vec::with_capacity(3);
    for (s, &o) in (1..=m).zip(&out) {
        let lo = s.saturating_sub(b.len());
        let hi = s.min(a.len());
        for i in lo..=hi {
            let j = s - i;
            clause.clear();
            if i > 0 {
                clause.push(a[i - 1] ^ 1);
            }
            if j > 0 {
                clause.push(b[j - 1] ^ 1);
            }
            clause.push(o);
            add(&clause);
        }
    }
    out
}
