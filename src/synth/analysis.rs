//! What the policy generator needs to know about a graph.
//!
//! Owns `Index`: callers and callees of every service, which services each
//! entrypoint reaches (one bitset per entrypoint), and the list of
//! "usable" calls (caller reachable from an entrypoint, callee not an
//! entrypoint) from which policy targets are drawn, so that targets are
//! picked in proportion to their in-degree, like the hot-spots they are.
//! Works on any `SynthGraph`, including hand-built ones: indices out of
//! range are ignored.

use std::collections::VecDeque;

use super::spec::SynthGraph;

/// Adjacency, reachability and target urns of one graph.
pub(super) struct Index {
    /// Distinct callees of each service.
    pub(super) out: Vec<Vec<usize>>,
    /// Distinct callers of each service.
    pub(super) callers: Vec<Vec<usize>>,
    /// Entry services (valid, distinct, in the graph's order).
    pub(super) entries: Vec<usize>,
    pub(super) is_entry: Vec<bool>,
    /// `reach[k]`: bitset of the services some context starting at
    /// `entries[k]` ends at.
    reach: Vec<Vec<u64>>,
    /// Calls `(u, v)` with `u` reachable and `v` not an entrypoint.
    pub(super) usable: Vec<(usize, usize)>,
    /// The usable calls whose callee has a version other than `v1`.
    pub(super) versioned: Vec<(usize, usize)>,
    /// Caller on one shortest path from an entrypoint (`usize::MAX` for
    /// entrypoints and unreached services).
    pub(super) parent: Vec<usize>,
}

impl Index {
    pub(super) fn new(g: &SynthGraph) -> Self {
        let n = g.services.len();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut callers: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut calls: Vec<(usize, usize)> = g.calls.iter().copied().filter(|&(u, v)| u < n && v < n).collect();
        calls.sort_unstable();
        calls.dedup();
        for &(u, v) in &calls {
            if let Some(list) = out.get_mut(u) {
                list.push(v);
            }
            if let Some(list) = callers.get_mut(v) {
                list.push(u);
            }
        }
        let mut is_entry = vec![false; n];
        let mut entries = Vec::new();
        for &e in &g.entrypoints {
            if let Some(flag) = is_entry.get_mut(e)
                && !*flag
            {
                *flag = true;
                entries.push(e);
            }
        }
        let mut ix = Index {
            out,
            callers,
            entries,
            is_entry,
            reach: Vec::new(),
            usable: Vec::new(),
            versioned: Vec::new(),
            parent: vec![usize::MAX; n],
        };
        ix.parent = ix.bfs_parents();
        let words = n.div_ceil(64);
        let mut any = vec![0u64; words];
        for k in 0..ix.entries.len() {
            let seen = ix.descendants(ix.entries.get(k).copied().unwrap_or(0));
            let mut bits = vec![0u64; words];
            for (i, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
                if let Some(w) = bits.get_mut(i / 64) {
                    *w |= 1 << (i % 64);
                }
            }
            for (a, b) in any.iter_mut().zip(&bits) {
                *a |= *b;
            }
            ix.reach.push(bits);
        }
        let bit = |set: &[u64], i: usize| set.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1);
        for &(u, v) in &calls {
            if bit(&any, u) && !ix.is_entry.get(v).copied().unwrap_or(true) {
                ix.usable.push((u, v));
                let versioned = g.services.get(v).is_some_and(|s| s.versions.iter().any(|x| x != "v1"));
                if versioned {
                    ix.versioned.push((u, v));
                }
            }
        }
        ix
    }

    fn bfs_parents(&self) -> Vec<usize> {
        let n = self.out.len();
        let mut parent = vec![usize::MAX; n];
        let mut seen = self.is_entry.clone();
        let mut queue: VecDeque<usize> = self.entries.iter().copied().collect();
        while let Some(u) = queue.pop_front() {
            for &v in self.out.get(u).map_or(&[][..], |v| &v[..]) {
                if let (Some(s), Some(p)) = (seen.get_mut(v), parent.get_mut(v))
                    && !*s
                {
                    *s = true;
                    *p = u;
                    queue.push_back(v);
                }
            }
        }
        parent
    }

    /// `v` and its shortest-path ancestors that are not entrypoints.
    pub(super) fn ancestry(&self, v: usize) -> Vec<usize> {
        let mut path = Vec::new();
        let mut x = v;
        while x < self.out.len() && !self.is_entry.get(x).copied().unwrap_or(true) {
            path.push(x);
            x = self.parent.get(x).copied().unwrap_or(usize::MAX);
        }
        path
    }

    /// Whether a context starting at `entries[k]` ends at `v`.
    pub(super) fn reaches(&self, k: usize, v: usize) -> bool {
        self.reach
            .get(k)
            .and_then(|set| set.get(v / 64))
            .is_some_and(|w| w >> (v % 64) & 1 == 1)
    }

    /// Positions (in `entries`) of the entrypoints that reach `v`.
    pub(super) fn entries_reaching(&self, v: usize) -> Vec<usize> {
        (0..self.entries.len()).filter(|&k| self.reaches(k, v)).collect()
    }

    /// Services at the end of some path from `a` (`a` included).
    pub(super) fn descendants(&self, a: usize) -> Vec<bool> {
        let mut seen = vec![false; self.out.len()];
        let mut queue = VecDeque::new();
        if let Some(s) = seen.get_mut(a) {
            *s = true;
            queue.push_back(a);
        }
        while let Some(u) = queue.pop_front() {
            for &v in self.out.get(u).map_or(&[][..], |v| &v[..]) {
                if let Some(s) = seen.get_mut(v)
                    && !*s
                {
                    *s = true;
                    queue.push_back(v);
                }
            }
        }
        seen
    }

    /// Callers of `s` that a context from `entries[k]` reaches.
    pub(super) fn callers_from(&self, k: usize, s: usize) -> Vec<usize> {
        self.callers
            .get(s)
            .map_or(&[][..], |v| &v[..])
            .iter()
            .copied()
            .filter(|&u| self.reaches(k, u))
            .collect()
    }
}
