//! Splitting the simplified instance into independent components.
//!
//! Owns [`split`]: union-find over variables joined by shared clauses (hard or
//! soft), then a grouping of variables and clauses by component, with each
//! variable's index inside its component (its local variable number).

use super::clauses::{Clauses, var_of};
use super::simplify::Simplified;

/// Variables and clauses grouped by component (ranges into flat lists).
pub(super) struct Split {
    /// Global variables, grouped by component.
    pub(super) vars: Vec<u32>,
    var_start: Vec<usize>,
    /// Indices into `Simplified::hard`, grouped by component.
    pub(super) hard: Vec<u32>,
    hard_start: Vec<usize>,
    /// Indices into `Simplified::soft`, grouped by component.
    pub(super) soft: Vec<u32>,
    soft_start: Vec<usize>,
    /// Per global variable: its index within its component's `vars`.
    pub(super) local_of: Vec<u32>,
}

/// One component: its variables, hard clause ids and soft clause ids.
pub(super) struct Component<'a> {
    pub(super) vars: &'a [u32],
    pub(super) hard: &'a [u32],
    pub(super) soft: &'a [u32],
}

impl Split {
    /// Number of components.
    pub(super) fn len(&self) -> usize {
        self.var_start.len().saturating_sub(1)
    }

    /// Component `k` (empty when out of range).
    pub(super) fn component(&self, k: usize) -> Component<'_> {
        Component {
            vars: range(&self.vars, &self.var_start, k),
            hard: range(&self.hard, &self.hard_start, k),
            soft: range(&self.soft, &self.soft_start, k),
        }
    }
}

fn range<'a>(items: &'a [u32], start: &[usize], k: usize) -> &'a [u32] {
    match (start.get(k), start.get(k + 1)) {
        (Some(&a), Some(&b)) => items.get(a..b).unwrap_or(&[]),
        _ => &[],
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    loop {
        let p = parent[x as usize];
        if p == x {
            return x;
        }
        let gp = parent[p as usize];
        parent[x as usize] = gp;
        x = gp;
    }
}

fn union_clauses(parent: &mut [u32], size: &mut [u32], clauses: &Clauses) {
    for lits in clauses.iter() {
        let Some((&first, rest)) = lits.split_first() else {
            continue;
        };
        let mut a = find(parent, first >> 1);
        for &l in rest {
            let b = find(parent, l >> 1);
            if a != b {
                let (big, small) = if size[a as usize] >= size[b as usize] {
                    (a, b)
                } else {
                    (b, a)
                };
                parent[small as usize] = big;
                size[big as usize] += size[small as usize];
                a = big;
            }
        }
    }
}

/// Groups the clauses of `s` into connected components, in order of first
/// appearance (hard clauses first), so the result is deterministic.
pub(super) fn split(s: &Simplified) -> Split {
    let n = s.value.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut size = vec![1u32; n];
    union_clauses(&mut parent, &mut size, &s.hard);
    union_clauses(&mut parent, &mut size, &s.soft);

    // Component id per root, numbered by first appearance.
    const NONE: u32 = u32::MAX;
    let mut comp_of_root = vec![NONE; n];
    let mut comp_of_var = vec![NONE; n];
    let mut count = 0u32;
    let mut var_count: Vec<usize> = Vec::new();
    for cl in [&s.hard, &s.soft] {
        for lits in cl.iter() {
            for &l in lits {
                let v = var_of(l);
                if comp_of_var[v] != NONE {
                    continue;
                }
                let r = find(&mut parent, v as u32) as usize;
                if comp_of_root[r] == NONE {
                    comp_of_root[r] = count;
                    count += 1;
                    var_count.push(0);
                }
                let c = comp_of_root[r];
                comp_of_var[v] = c;
                var_count[c as usize] += 1;
            }
        }
    }
    let k = count as usize;

    // Variables grouped by component, in first-appearance order.
    let var_start = prefix(&var_count);
    let mut fill = var_start.clone();
    let mut vars = vec![0u32; var_start[k]];
    let mut local_of = vec![0u32; n];
    let mut placed = vec![false; n];
    for cl in [&s.hard, &s.soft] {
        for lits in cl.iter() {
            for &l in lits {
                let v = var_of(l);
                if placed[v] {
                    continue;
                }
                placed[v] = true;
                let c = comp_of_var[v] as usize;
                local_of[v] = (fill[c] - var_start[c]) as u32;
                vars[fill[c]] = v as u32;
                fill[c] += 1;
            }
        }
    }

    let (hard, hard_start) = group(&s.hard, &comp_of_var, k);
    let (soft, soft_start) = group(&s.soft, &comp_of_var, k);
    Split {
        vars,
        var_start,
        hard,
        hard_start,
        soft,
        soft_start,
        local_of,
    }
}

fn prefix(counts: &[usize]) -> Vec<usize> {
    let mut start = Vec::with_capacity(counts.len() + 1);
    let mut acc = 0;
    start.push(0);
    for &c in counts {
        acc += c;
        start.push(acc);
    }
    start
}

fn group(clauses: &Clauses, comp_of_var: &[u32], k: usize) -> (Vec<u32>, Vec<usize>) {
    let comp = |lits: &[u32]| lits.first().map_or(0, |&l| comp_of_var[var_of(l)] as usize);
    let mut counts = vec![0usize; k];
    for lits in clauses.iter() {
        counts[comp(lits)] += 1;
    }
    let start = prefix(&counts);
    let mut fill = start.clone();
    let mut ids = vec![0u32; clauses.len()];
    for (i, lits) in clauses.iter().enumerate() {
        let c = comp(lits);
        ids[fill[c]] = i as u32;
        fill[c] += 1;
    }
    (ids, start)
}
