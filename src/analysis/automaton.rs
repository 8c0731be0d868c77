//! A context pattern as a DFA over services.
//!
//! The pattern's regex (see `encoding`) is compiled once with regex-automata
//! into a dense DFA over bytes. Services are then letters: reading service
//! `s` means feeding the bytes of `/s`. Every service that the pattern does
//! not name behaves the same (it matches `.` and every `!(..)`, and no
//! literal), so one representative stands for all of them; the transitions
//! per (state, letter class) are computed once and tabulated. Analysis then
//! costs one table look-up per edge of the product.

use std::collections::{BTreeSet, HashMap};

use regex_automata::Anchored;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense::{self, DFA};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

use super::encoding;
use crate::syntax::pattern::Pattern;

/// Index of a state in `ServiceDfa`'s tables.
pub type State = u32;

/// A DFA whose letters are services, restricted to the states reachable
/// from the start.
pub struct ServiceDfa {
    /// Services the pattern names, sorted, each with its letter class; every
    /// other service is class 0.
    named: Vec<(usize, u32)>,
    /// `next[state * classes + class]`.
    next: Vec<State>,
    classes: usize,
    /// States from which no context can match (never explored).
    dead: Vec<bool>,
    /// States whose context so far matches the whole pattern.
    accepting: Vec<bool>,
    start: State,
}

#[derive(Debug)]
pub struct AutomatonError(pub String);

impl ServiceDfa {
    /// Builds the DFA of `pattern`; `service_id` finds a graph service by name.
    pub fn new(pattern: &Pattern, service_id: &dyn Fn(&str) -> Option<usize>) -> Result<ServiceDfa, AutomatonError> {
        let regex = encoding::pattern_regex(pattern);
        let dfa = dense::Builder::new()
            .configure(
                DFA::config()
                    .start_kind(regex_automata::dfa::StartKind::Anchored)
                    // Membership, not leftmost-first: a higher-priority empty
                    // match must not hide a longer one.
                    .match_kind(regex_automata::MatchKind::All),
            )
            .build(&regex)
            .map_err(|e| AutomatonError(e.to_string()))?;
        let start_id = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| AutomatonError(e.to_string()))?;

        // Letter classes: one per service the pattern names (that the graph
        // has), plus class 0 for every other service.
        let named_names: BTreeSet<&str> = pattern.names().into_iter().map(|(n, _)| n).collect();
        let mut class_names: Vec<String> = vec![representative(&named_names)];
        let mut named: Vec<(usize, u32)> = Vec::new();
        for name in &named_names {
            if let Some(id) = service_id(name) {
                class_names.push((*name).to_string());
                named.push((id, (class_names.len() - 1) as u32));
            }
        }
        named.sort_unstable();
        let classes = class_names.len();

        // Explore the states reachable from the start, letter by letter.
        let mut index: HashMap<StateID, State> = HashMap::new();
        let mut ids: Vec<StateID> = vec![start_id];
        index.insert(start_id, 0);
        let mut next: Vec<State> = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let from = ids[i];
            for name in &class_names {
                let mut s = dfa.next_state(from, b'/');
                for b in name.bytes() {
                    s = dfa.next_state(s, b);
                }
                let k = *index.entry(s).or_insert_with(|| {
                    ids.push(s);
                    (ids.len() - 1) as State
                });
                next.push(k);
            }
            i += 1;
        }
        let dead = ids.iter().map(|&s| dfa.is_dead_state(s)).collect();
        let accepting = ids.iter().map(|&s| dfa.is_match_state(dfa.next_eoi_state(s))).collect();
        Ok(ServiceDfa {
            named,
            next,
            classes,
            dead,
            accepting,
            start: 0,
        })
    }

    pub fn start(&self) -> State {
        self.start
    }

    pub fn states(&self) -> usize {
        self.dead.len()
    }

    /// The state after reading service `service` (an index into the graph).
    #[inline]
    pub fn step(&self, state: State, service: usize) -> State {
        let class = match self.named.as_slice() {
            [] => 0,
            named => named
                .binary_search_by_key(&service, |&(s, _)| s)
                .map(|i| named[i].1)
                .unwrap_or(0) as usize,
        };
        self.next[state as usize * self.classes + class]
    }

    #[inline]
    pub fn is_dead(&self, state: State) -> bool {
        self.dead[state as usize]
    }

    #[inline]
    pub fn is_accepting(&self, state: State) -> bool {
        self.accepting[state as usize]
    }
}

/// A DNS label that the pattern does not name: it stands for every such service.
fn representative(named: &BTreeSet<&str>) -> String {
    let mut candidate = String::from("x");
    while named.contains(candidate.as_str()) {
        candidate.push('x');
    }
    candidate
}
