//! Matched calls: the product of the call graph and a pattern's DFA, walked
//! breadth-first from the entry points.
//!
//! A node (u, q) says "some context of a request into u leaves the DFA in
//! state q". The request from outside into entry e starts at (e, step(start,
//! e)). Along call u -> v the state moves to q' = step(q, v); if q' accepts,
//! the call u -> v is matched. Each node is visited once, so the cost is
//! O(calls x states) whatever the cycles; breadth-first order makes the first
//! witness found for each call a shortest one.

use super::automaton::{ServiceDfa, State};
use crate::graph::{CallGraph, ServiceId};

/// A call that a policy's pattern matches, with a shortest context that
/// makes it match (ending with `to`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatchedCall {
    /// `None` for the request from outside into an entry point.
    pub from: Option<ServiceId>,
    pub to: ServiceId,
    pub witness: Vec<ServiceId>,
}

/// Out-edges of each service in compressed form (calls are sorted by caller).
pub struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<ServiceId>,
}

impl Adjacency {
    pub fn new(graph: &CallGraph) -> Adjacency {
        let mut offsets = vec![0; graph.services.len() + 1];
        for c in &graph.calls {
            offsets[c.from + 1] += 1;
        }
        for i in 0..graph.services.len() {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0; graph.calls.len()];
        for c in &graph.calls {
            targets[fill[c.from]] = c.to;
            fill[c.from] += 1;
        }
        Adjacency { offsets, targets }
    }

    #[inline]
    pub fn callees(&self, s: ServiceId) -> &[ServiceId] {
        &self.targets[self.offsets[s]..self.offsets[s + 1]]
    }

    /// Index of the edge s -> k-th callee, in the order of `CallGraph::calls`.
    #[inline]
    fn edge(&self, s: ServiceId, k: usize) -> usize {
        self.offsets[s] + k
    }
}

const UNSEEN: u32 = u32::MAX;
const ROOT: u32 = u32::MAX - 1;

/// Scratch space reused across policies, so that a policy costs what it
/// visits, not the size of the graph.
#[derive(Default)]
pub struct Scratch {
    parent: Vec<u32>,
    touched: Vec<usize>,
    edge_seen: Vec<bool>,
    edges_touched: Vec<usize>,
}

/// Every call that `dfa` matches, sorted by (from, to), each with a
/// shortest witness.
pub fn matched_calls(graph: &CallGraph, adj: &Adjacency, dfa: &ServiceDfa, scratch: &mut Scratch) -> Vec<MatchedCall> {
    let n = graph.services.len();
    let states = dfa.states();
    let nodes = n * states;
    if scratch.parent.len() < nodes {
        scratch.parent.resize(nodes, UNSEEN);
    }
    if scratch.edge_seen.len() < graph.calls.len() {
        scratch.edge_seen.resize(graph.calls.len(), false);
    }
    let node = |s: ServiceId, q: State| s * states + q as usize;

    let mut out: Vec<MatchedCall> = Vec::new();
    let mut queue: std::collections::VecDeque<(ServiceId, State)> = std::collections::VecDeque::new();
    // Matched calls are recorded as (parent node, callee) and their
    // witnesses rebuilt once the search is over.
    let mut found: Vec<(u32, ServiceId)> = Vec::new();

    for &e in &graph.entrypoints {
        let q = dfa.step(dfa.start(), e);
        if dfa.is_accepting(q) {
            found.push((ROOT, e));
        }
        if !dfa.is_dead(q) && scratch.parent[node(e, q)] == UNSEEN {
            scratch.parent[node(e, q)] = ROOT;
            scratch.touched.push(node(e, q));
            queue.push_back((e, q));
        }
    }
    while let Some((u, q)) = queue.pop_front() {
        let from = node(u, q) as u32;
        for (k, &v) in adj.callees(u).iter().enumerate() {
            let q2 = dfa.step(q, v);
            if dfa.is_accepting(q2) {
                let e = adj.edge(u, k);
                if !scratch.edge_seen[e] {
                    scratch.edge_seen[e] = true;
                    scratch.edges_touched.push(e);
                    found.push((from, v));
                }
            }
            if !dfa.is_dead(q2) {
                let m = node(v, q2);
                if scratch.parent[m] == UNSEEN {
                    scratch.parent[m] = from;
                    scratch.touched.push(m);
                    queue.push_back((v, q2));
                }
            }
        }
    }

    for (parent, to) in found {
        let mut witness = vec![to];
        let mut cur = parent;
        while cur != ROOT {
            let s = cur as usize / states;
            witness.push(s);
            cur = scratch.parent[cur as usize];
        }
        witness.reverse();
        let from = (parent != ROOT).then(|| parent as usize / states);
        out.push(MatchedCall { from, to, witness });
    }

    for &t in &scratch.touched {
        scratch.parent[t] = UNSEEN;
    }
    scratch.touched.clear();
    for &e in &scratch.edges_touched {
        scratch.edge_seen[e] = false;
    }
    scratch.edges_touched.clear();
    out.sort();
    out.dedup_by(|a, b| a.from == b.from && a.to == b.to);
    out
}
