//! The one encoding of contexts as text, shared by compile-time analysis and
//! run-time matching (docs/semantics.md, "Context encoding").
//!
//! A context `s1 s2 ... sk` is the text `/s1/s2/.../sk`: every service name
//! preceded by `/`. Service names are DNS labels, so they never contain `/`
//! and a name always ends where the next `/` (or the text) begins. A pattern
//! becomes a regular expression over that text in the syntax common to
//! regex-automata and RE2 (Envoy's `safe_regex`): literals, `[...]` classes,
//! `(?:...)`, `|`, `*`, `+`, `?`. Analysis compiles exactly this string into
//! a DFA; the emitters hand regexes built by the same functions to Envoy, so
//! compile-time and run-time matching agree by construction.
//!
//! `!(a | b)` has no negative lookahead in either engine: it becomes the
//! complement of the finite set {a, b} within DNS labels, written out from
//! the trie of the excluded names.

use std::collections::BTreeMap;

use crate::syntax::pattern::Pattern;

/// The HTTP header that carries the context of the request's sender.
pub const CONTEXT_HEADER: &str = "x-copper-context";

/// One character of a DNS label, as a regex class.
pub const LABEL_CHAR: &str = "[a-z0-9-]";

/// The characters a DNS label may contain, in class order.
const LABEL_ALPHABET: &str = "-0123456789abcdefghijklmnopqrstuvwxyz";

/// Text of a context: `/s1/s2/.../sk`.
pub fn encode_context<'a>(services: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for s in services {
        out.push('/');
        out.push_str(s);
    }
    out
}

/// The regex (unanchored text; callers anchor it) whose language is exactly
/// the encodings of the contexts that `p` matches.
pub fn pattern_regex(p: &Pattern) -> String {
    match p {
        Pattern::Service(name, _) => format!("/{}", escape_label(name)),
        Pattern::Any(_) => format!("/{LABEL_CHAR}+"),
        Pattern::NoneOf(names, _) => {
            let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
            format!("/{}", label_complement(&names))
        }
        Pattern::Concat(items) => items.iter().map(pattern_regex).collect(),
        Pattern::Alt(arms) => {
            let arms: Vec<String> = arms.iter().map(pattern_regex).collect();
            format!("(?:{})", arms.join("|"))
        }
        Pattern::Star(inner) => format!("(?:{})*", pattern_regex(inner)),
        Pattern::Plus(inner) => format!("(?:{})+", pattern_regex(inner)),
        Pattern::Opt(inner) => format!("(?:{})?", pattern_regex(inner)),
    }
}

/// The anchored form: matches a whole context text.
pub fn anchored_regex(p: &Pattern) -> String {
    format!("^(?:{})$", pattern_regex(p))
}

/// Names are DNS labels, but the regex must stay literal whatever it is given.
fn escape_label(name: &str) -> String {
    regex_syntax::escape(name)
}

#[derive(Default)]
struct Trie {
    terminal: bool,
    children: BTreeMap<char, Trie>,
}

/// A regex for every non-empty DNS label except `names`.
pub fn label_complement(names: &[&str]) -> String {
    let mut root = Trie::default();
    for n in names {
        let mut node = &mut root;
        for c in n.chars() {
            node = node.children.entry(c).or_default();
        }
        node.terminal = true;
    }
    complement(&root, true)
}

/// Labels w with w not in the trie below `node`: the empty rest (unless the
/// node ends an excluded name, or it is the root), a character that leaves
/// the trie followed by anything, or a character that stays in it followed
/// by the complement below that child.
fn complement(node: &Trie, root: bool) -> String {
    let mut arms = Vec::new();
    let leave: String = LABEL_ALPHABET
        .chars()
        .filter(|c| !node.children.contains_key(c))
        .collect();
    if !leave.is_empty() {
        arms.push(format!("{}{LABEL_CHAR}*", char_class(&leave)));
    }
    for (c, child) in &node.children {
        if !LABEL_ALPHABET.contains(*c) {
            continue;
        }
        arms.push(format!("{}{}", escape_label(&c.to_string()), complement(child, false)));
    }
    let body = arms.join("|");
    if !root && !node.terminal {
        format!("(?:{body})?")
    } else {
        format!("(?:{body})")
    }
}

fn char_class(chars: &str) -> String {
    // `-` first in a class is literal in both engines.
    format!("[{chars}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;

    fn full(re: &str) -> Regex {
        Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    #[test]
    fn complement_excludes_exactly_the_names() {
        let names = ["a", "ab", "cart", "cart-v2", "x9"];
        let re = full(&label_complement(&names));
        for n in names {
            assert!(!re.is_match(n), "{n}");
        }
        for n in [
            "b", "aa", "abc", "car", "carts", "cart-", "cart-v", "cart-v20", "x", "x99", "9", "-", "zz",
        ] {
            assert!(re.is_match(n), "{n}");
        }
        assert!(!re.is_match(""));
        assert!(!re.is_match("a/b"));
    }

    #[test]
    fn complement_of_nothing_is_every_label() {
        let re = full(&label_complement(&[]));
        assert!(re.is_match("anything-1"));
        assert!(!re.is_match(""));
    }

    #[test]
    fn contexts_encode_with_leading_slashes() {
        assert_eq!(encode_context(["a", "b", "c"]), "/a/b/c");
    }
}
