//! Partition of a large component into regions of nearby variables.
//!
//! Owns [`partition`]: pieces grown breadth-first (neighbours share a
//! clause; variables in very many clauses are not expanded through, so a hub
//! does not pull one variable from everywhere), then small pieces packed
//! together. The OLL engine first finds cores inside each region with a small
//! solver holding only that region's clauses (a core of a subset of the
//! clauses is a core of all of them), so most SAT calls run on a region
//! rather than on the whole component.

use super::clauses::var_of;
use super::problem::Problem;
use super::propagate::Occurrences;

/// Variables in more clauses than this are not expanded through when a
/// region grows (a hub would pull one variable from everywhere).
const HUB_DEGREE: usize = 32;

/// Region id of each local variable of `p`, regions of at most about
/// `size` variables: pieces grown breadth-first from the lowest unassigned
/// variable, small pieces packed together; returns the ids and the number of
/// regions.
pub(super) fn partition(p: &Problem, size: usize) -> (Vec<u32>, u32) {
    let n = p.num_vars;
    let size = size.max(1);
    let occ = Occurrences::build_multi(&[&p.hard, &p.soft], n);
    let nh = p.hard.len();
    let clause = |id: usize| {
        if id < nh { p.hard.get(id) } else { p.soft.get(id - nh) }
    };
    const FREE: u32 = u32::MAX;
    let mut region = vec![FREE; n];
    let mut count = 0u32;
    let mut queue: Vec<u32> = Vec::new();
    for seed in 0..n {
        if region[seed] != FREE {
            continue;
        }
        let id = count;
        count += 1;
        region[seed] = id;
        let mut members = 1;
        queue.clear();
        queue.push(seed as u32);
        let mut head = 0;
        while let Some(&v) = queue.get(head) {
            head += 1;
            if members >= size {
                break;
            }
            let v = v as usize;
            let (pos, neg) = (occ.of(2 * v as u32), occ.of(2 * v as u32 + 1));
            if pos.len() + neg.len() > HUB_DEGREE && v != seed {
                continue;
            }
            for &c in pos.iter().chain(neg) {
                for &l in clause(c as usize) {
                    let u = var_of(l);
                    if region[u] == FREE && members < size {
                        region[u] = id;
                        members += 1;
                        queue.push(u as u32);
                    }
                }
            }
        }
    }
    // Pack consecutive small pieces together so that regions have about
    // `size` variables each.
    let mut piece_size = vec![0usize; count as usize];
    for &r in &region {
        if let Some(c) = piece_size.get_mut(r as usize) {
            *c += 1;
        }
    }
    let mut bin_of_piece = Vec::with_capacity(piece_size.len());
    let (mut bin, mut fill) = (0u32, 0usize);
    for &c in &piece_size {
        if fill > 0 && fill + c > size {
            bin += 1;
            fill = 0;
        }
        bin_of_piece.push(bin);
        fill += c;
    }
    for r in region.iter_mut() {
        *r = bin_of_piece.get(*r as usize).copied().unwrap_or(0);
    }
    (region, if n == 0 { 0 } else { bin + 1 })
}
