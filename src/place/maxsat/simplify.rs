//! Preprocessing before search: everything that shrinks the instance without
//! SAT calls.
//!
//! Owns [`simplify`]: clause normalisation (dedup literals, drop tautologies),
//! unit propagation of hard units, removal of satisfied clauses and falsified
//! literals, merging of identical clauses (soft weights add up), cancelling
//! opposite unit soft clauses, and pure-literal elimination (a literal whose
//! negation occurs in no remaining clause is set true; this gives every
//! variable that occurs only in soft unit clauses its cheapest value).

use super::clauses::{Clauses, normalize, var_of};
use super::hash::{FastMap, FastSet};
use super::instance::Instance;
use super::propagate::{FALSE, NO_REASON, Occurrences, TRUE, UNSET, explain, lit_value, propagate};

/// The simplified instance, on the caller's variable numbering.
pub(super) struct Simplified {
    /// Per variable: [`UNSET`], [`TRUE`] or [`FALSE`] (fixed by preprocessing).
    pub(super) value: Vec<u8>,
    /// Per variable: original hard clause that implied it (empty when no unit
    /// propagation happened).
    pub(super) reason: Vec<usize>,
    /// Cost already certain: soft clauses falsified by preprocessing.
    pub(super) constant: u64,
    /// Remaining hard clauses (each with >= 2 unfixed literals).
    pub(super) hard: Clauses,
    /// Original index of each remaining hard clause.
    pub(super) hard_origin: Vec<usize>,
    /// Remaining soft clauses (non-empty, positive weight, pairwise distinct).
    pub(super) soft: Clauses,
    /// Weight of each remaining soft clause.
    pub(super) soft_weight: Vec<u64>,
}

impl Simplified {
    /// Original hard clauses behind the remaining hard clauses `ids` (their
    /// origins plus the clauses whose propagation removed their literals).
    pub(super) fn original_support(&self, inst: &Instance, ids: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut false_vars = Vec::new();
        for &c in ids {
            let Some(&o) = self.hard_origin.get(c) else {
                continue;
            };
            out.push(o);
            if let Some(orig) = inst.hard().get(o) {
                false_vars.extend(
                    orig.iter()
                        .filter(|l| lit_value(&self.value, l.code()) == Some(false))
                        .map(|l| l.var()),
                );
            }
        }
        explain(inst, &self.reason, &false_vars, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Simplifies `inst`; `Err` carries original hard clause indices that are
/// unsatisfiable together (found by normalisation or unit propagation).
pub(super) fn simplify(inst: &Instance) -> Result<Simplified, Vec<usize>> {
    let n = inst.num_vars() as usize;
    let mut value = vec![UNSET; n];
    let mut constant = 0u64;
    let mut buf = Vec::new();

    let mut hard = Clauses::default();
    let mut origin = Vec::new();
    let mut has_unit = false;
    for (i, c) in inst.hard().iter().enumerate() {
        buf.clear();
        buf.extend(c.iter().map(|l| l.code()));
        if !normalize(&mut buf) {
            continue;
        }
        if buf.is_empty() {
            return Err(vec![i]);
        }
        has_unit |= buf.len() == 1;
        hard.push(&buf);
        origin.push(i);
    }

    let mut reason = Vec::new();
    if has_unit {
        reason = vec![NO_REASON; n];
        if let Err(c) = propagate(&hard, &origin, &mut value, &mut reason) {
            let partial = Simplified {
                value,
                reason,
                constant: 0,
                hard,
                hard_origin: origin,
                soft: Clauses::default(),
                soft_weight: Vec::new(),
            };
            return Err(partial.original_support(inst, &[c]));
        }
    }

    // Remove satisfied hard clauses and falsified literals; dedup.
    let mut kept_hard = Clauses::default();
    let mut kept_origin = Vec::new();
    {
        let mut seen: FastSet<Vec<u32>> = FastSet::default();
        for (c, lits) in hard.iter().enumerate() {
            if has_unit {
                if lits.iter().any(|&l| lit_value(&value, l) == Some(true)) {
                    continue;
                }
                buf.clear();
                buf.extend(lits.iter().copied().filter(|&l| lit_value(&value, l).is_none()));
            } else {
                buf.clear();
                buf.extend_from_slice(lits);
            }
            if !seen.contains(buf.as_slice()) {
                seen.insert(buf.clone());
                kept_hard.push(&buf);
                kept_origin.push(origin.get(c).copied().unwrap_or(0));
            }
        }
    }

    // Soft clauses: normalise, simplify, merge duplicates.
    let mut soft = Clauses::default();
    let mut soft_weight: Vec<u64> = Vec::new();
    {
        let mut index: FastMap<Vec<u32>, usize> = FastMap::default();
        for s in inst.soft() {
            if s.weight == 0 {
                continue;
            }
            buf.clear();
            buf.extend(s.lits.iter().map(|l| l.code()));
            if !normalize(&mut buf) {
                continue;
            }
            if buf.iter().any(|&l| lit_value(&value, l) == Some(true)) {
                continue;
            }
            buf.retain(|&l| lit_value(&value, l).is_none());
            if buf.is_empty() {
                constant = constant.saturating_add(s.weight);
                continue;
            }
            if let Some(&i) = index.get(buf.as_slice()) {
                if let Some(w) = soft_weight.get_mut(i) {
                    *w = w.saturating_add(s.weight);
                }
            } else {
                index.insert(buf.clone(), soft_weight.len());
                soft.push(&buf);
                soft_weight.push(s.weight);
            }
        }
        // A soft clause identical to a hard clause is always satisfied.
        for lits in kept_hard.iter() {
            if let Some(&i) = index.get(lits)
                && let Some(w) = soft_weight.get_mut(i)
            {
                *w = 0;
            }
        }
        // Opposite unit soft clauses: one of them is violated anyway.
        let mut unit_of: FastMap<u32, usize> = FastMap::default();
        for (i, lits) in soft.iter().enumerate() {
            if let [l] = lits {
                unit_of.insert(*l, i);
            }
        }
        for (i, lits) in soft.iter().enumerate() {
            let [l] = lits else { continue };
            if l & 1 == 1 {
                continue;
            }
            let Some(&j) = unit_of.get(&(l ^ 1)) else {
                continue;
            };
            let (a, b) = (soft_weight[i], soft_weight[j]);
            let m = a.min(b);
            constant = constant.saturating_add(m);
            soft_weight[i] = a - m;
            soft_weight[j] = b - m;
        }
    }

    let (hard, hard_origin, soft, soft_weight) = eliminate_pure(&mut value, kept_hard, kept_origin, soft, soft_weight);
    Ok(Simplified {
        value,
        reason,
        constant,
        hard,
        hard_origin,
        soft,
        soft_weight,
    })
}

/// Drops zero-weight soft clauses, then repeatedly sets pure literals true
/// and drops the clauses they satisfy.
fn eliminate_pure(
    value: &mut [u8],
    hard: Clauses,
    hard_origin: Vec<usize>,
    soft: Clauses,
    soft_weight: Vec<u64>,
) -> (Clauses, Vec<usize>, Clauses, Vec<u64>) {
    let n = value.len();
    let nh = hard.len();
    let mut removed = vec![false; nh + soft.len()];
    for (i, &w) in soft_weight.iter().enumerate() {
        if w == 0 {
            removed[nh + i] = true;
        }
    }
    let clause = |id: usize| -> &[u32] { if id < nh { hard.get(id) } else { soft.get(id - nh) } };
    let mut count = vec![0u32; 2 * n];
    for (id, &gone) in removed.iter().enumerate() {
        if !gone {
            for &l in clause(id) {
                count[l as usize] += 1;
            }
        }
    }
    let mut queue: Vec<u32> = Vec::new();
    for v in 0..n {
        let (p, q) = (count[2 * v], count[2 * v + 1]);
        if p > 0 && q == 0 {
            queue.push(2 * v as u32);
        } else if q > 0 && p == 0 {
            queue.push(2 * v as u32 + 1);
        }
    }
    if !queue.is_empty() {
        let occ = Occurrences::build_multi(&[&hard, &soft], n);
        while let Some(l) = queue.pop() {
            let v = var_of(l);
            if value[v] != UNSET || count[(l ^ 1) as usize] != 0 {
                continue;
            }
            value[v] = if l & 1 == 1 { FALSE } else { TRUE };
            for &id in occ.of(l) {
                let id = id as usize;
                if removed[id] {
                    continue;
                }
                removed[id] = true;
                for &x in clause(id) {
                    let c = &mut count[x as usize];
                    *c -= 1;
                    if *c == 0 && count[(x ^ 1) as usize] > 0 && value[var_of(x)] == UNSET {
                        queue.push(x ^ 1);
                    }
                }
            }
        }
    }
    let mut out_hard = Clauses::default();
    let mut out_origin = Vec::new();
    for (id, lits) in hard.iter().enumerate() {
        if !removed[id] {
            out_hard.push(lits);
            out_origin.push(hard_origin[id]);
        }
    }
    let mut out_soft = Clauses::default();
    let mut out_weight = Vec::new();
    for (i, lits) in soft.iter().enumerate() {
        if !removed[nh + i] {
            out_soft.push(lits);
            out_weight.push(soft_weight[i]);
        }
    }
    (out_hard, out_origin, out_soft, out_weight)
}
