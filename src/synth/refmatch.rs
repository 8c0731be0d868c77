//! Test-only naive reference matcher for generated policies.
//!
//! Owns an independent reading of the brief's semantics, to check what the
//! generator claims: parse each `context "..."` pattern into a Thompson NFA
//! whose letters are services (`name`, `.`, `!name`, `!(a | b)`), then BFS
//! over (service, set of NFA states) from every entrypoint: a call `u -> v`
//! is matched when some context ending with it reaches an accepting state;
//! the request from outside into entry `e` is matched when the context `e`
//! is accepted. Terminates on cyclic graphs because the pairs are finite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet, VecDeque};

use super::spec::SynthGraph;

/// The caller of the request from outside the mesh.
pub(super) const OUTSIDE: usize = usize::MAX;

#[derive(Debug, Clone)]
enum Letter {
    Any,
    Name(Option<usize>),
    Not(Vec<usize>),
}

impl Letter {
    fn matches(&self, v: usize) -> bool {
        match self {
            Letter::Any => true,
            Letter::Name(n) => *n == Some(v),
            Letter::Not(ns) => !ns.contains(&v),
        }
    }
}

#[derive(Debug)]
enum Node {
    Letter(Letter),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Star(Box<Node>),
    Plus(Box<Node>),
    Opt(Box<Node>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    names: &'a HashMap<&'a str, usize>,
}

impl Parser<'_> {
    fn skip(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) {
        assert_eq!(self.peek(), Some(c), "expected {:?} at {}", c as char, self.i);
        self.i += 1;
    }
    fn name(&mut self) -> Option<usize> {
        self.skip();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_lowercase() || self.s[self.i].is_ascii_digit() || self.s[self.i] == b'-')
        {
            self.i += 1;
        }
        assert!(self.i > start, "expected a name at {start}");
        let n = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        self.names.get(n).copied()
    }
    fn alt(&mut self) -> Node {
        let mut alts = vec![self.seq()];
        while self.peek() == Some(b'|') {
            self.i += 1;
            alts.push(self.seq());
        }
        if alts.len() == 1 {
            alts.pop().unwrap()
        } else {
            Node::Alt(alts)
        }
    }
    fn seq(&mut self) -> Node {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            items.push(self.post());
        }
        Node::Concat(items)
    }
    fn post(&mut self) -> Node {
        let mut n = self.atom();
        loop {
            match self.s.get(self.i) {
                Some(b'*') => n = Node::Star(Box::new(n)),
                Some(b'+') => n = Node::Plus(Box::new(n)),
                Some(b'?') => n = Node::Opt(Box::new(n)),
                _ => return n,
            }
            self.i += 1;
        }
    }
    fn atom(&mut self) -> Node {
        match self.peek() {
            Some(b'.') => {
                self.i += 1;
                Node::Letter(Letter::Any)
            }
            Some(b'!') => {
                self.i += 1;
                if self.peek() == Some(b'(') {
                    self.i += 1;
                    let mut ns: Vec<usize> = self.name().into_iter().collect();
                    while self.peek() == Some(b'|') {
                        self.i += 1;
                        ns.extend(self.name());
                    }
                    self.eat(b')');
                    Node::Letter(Letter::Not(ns))
                } else {
                    Node::Letter(Letter::Not(self.name().into_iter().collect()))
                }
            }
            Some(b'(') => {
                self.i += 1;
                let n = self.alt();
                self.eat(b')');
                n
            }
            _ => Node::Letter(Letter::Name(self.name())),
        }
    }
}

#[derive(Default)]
struct Nfa {
    eps: Vec<Vec<usize>>,
    trans: Vec<Vec<(Letter, usize)>>,
}

impl Nfa {
    fn state(&mut self) -> usize {
        self.eps.push(Vec::new());
        self.trans.push(Vec::new());
        self.eps.len() - 1
    }
    /// Thompson construction: (start, end) of the fragment.
    fn build(&mut self, n: &Node) -> (usize, usize) {
        match n {
            Node::Letter(l) => {
                let (a, b) = (self.state(), self.state());
                self.trans[a].push((l.clone(), b));
                (a, b)
            }
            Node::Concat(items) => {
                let start = self.state();
                let mut end = start;
                for it in items {
                    let (a, b) = self.build(it);
                    self.eps[end].push(a);
                    end = b;
                }
                (start, end)
            }
            Node::Alt(alts) => {
                let (start, end) = (self.state(), self.state());
                for it in alts {
                    let (a, b) = self.build(it);
                    self.eps[start].push(a);
                    self.eps[b].push(end);
                }
                (start, end)
            }
            Node::Star(x) | Node::Plus(x) | Node::Opt(x) => {
                let (start, end) = (self.state(), self.state());
                let (a, b) = self.build(x);
                self.eps[start].push(a);
                self.eps[b].push(end);
                if !matches!(n, Node::Plus(_)) {
                    self.eps[start].push(end);
                }
                if !matches!(n, Node::Opt(_)) {
                    self.eps[b].push(a);
                }
                (start, end)
            }
        }
    }
}

/// A compiled pattern.
pub(super) struct Matcher {
    nfa: Nfa,
    closure: Vec<u128>,
    start: u128,
    accept: u128,
}

impl Matcher {
    pub(super) fn new(pattern: &str, names: &HashMap<&str, usize>) -> Self {
        let mut p = Parser {
            s: pattern.as_bytes(),
            i: 0,
            names,
        };
        let node = p.alt();
        assert_eq!(p.peek(), None, "trailing input in {pattern:?}");
        let mut nfa = Nfa::default();
        let (start, end) = nfa.build(&node);
        assert!(nfa.eps.len() <= 128, "pattern too large for the test matcher");
        let closure: Vec<u128> = (0..nfa.eps.len())
            .map(|q| {
                let mut m = 1u128 << q;
                let mut stack = vec![q];
                while let Some(x) = stack.pop() {
                    for &y in &nfa.eps[x] {
                        if m >> y & 1 == 0 {
                            m |= 1 << y;
                            stack.push(y);
                        }
                    }
                }
                m
            })
            .collect();
        Matcher {
            start: closure[start],
            accept: 1 << end,
            nfa,
            closure,
        }
    }

    fn step(&self, mask: u128, v: usize) -> u128 {
        let mut next = 0;
        let mut m = mask;
        while m != 0 {
            let q = m.trailing_zeros() as usize;
            m &= m - 1;
            for (l, t) in &self.nfa.trans[q] {
                if l.matches(v) {
                    next |= self.closure[*t];
                }
            }
        }
        next
    }

    /// The calls matched in `g` (`(OUTSIDE, e)` for the request into `e`).
    pub(super) fn matched(&self, g: &SynthGraph, out: &[Vec<usize>]) -> HashSet<(usize, usize)> {
        let mut matched = HashSet::new();
        let mut seen: HashSet<(usize, u128)> = HashSet::new();
        let mut queue = VecDeque::new();
        for &e in &g.entrypoints {
            let m = self.step(self.start, e);
            if m == 0 {
                continue;
            }
            if m & self.accept != 0 {
                matched.insert((OUTSIDE, e));
            }
            if seen.insert((e, m)) {
                queue.push_back((e, m));
            }
        }
        while let Some((u, m)) = queue.pop_front() {
            for &v in &out[u] {
                let m2 = self.step(m, v);
                if m2 == 0 {
                    continue;
                }
                if m2 & self.accept != 0 {
                    matched.insert((u, v));
                }
                if seen.insert((v, m2)) {
                    queue.push_back((v, m2));
                }
            }
        }
        matched
    }
}

/// `(name, pattern)` of every policy in generated Copper text.
pub(super) fn policies(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("policy "))
        .map(|rest| {
            let name = rest.split('(').next().unwrap().to_string();
            let pat = rest.split('"').nth(1).unwrap().to_string();
            (name, pat)
        })
        .collect()
}

/// Callees of every service.
pub(super) fn adjacency(g: &SynthGraph) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); g.services.len()];
    for &(u, v) in &g.calls {
        out[u].push(v);
    }
    out
}

/// Name -> index.
pub(super) fn name_map(g: &SynthGraph) -> HashMap<&str, usize> {
    g.services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect()
}
