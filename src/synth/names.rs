//! Service names of generated graphs.
//!
//! Owns the naming scheme: entrypoints `fe-000`, stateless services
//! `s00042`, hubs `cache-0003` and `db-0007`. Every name is a DNS label
//! (`[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters) and the four
//! prefixes never collide, so names are unique for any size. The Alibaba
//! trace itself names services by 64-hex hashes; short readable names keep
//! policies and test failures legible.

/// The `i`-th front-end service.
pub(super) fn entry(i: usize) -> String {
    format!("fe-{i:03}")
}

/// The `i`-th stateless service.
pub(super) fn stateless(i: usize) -> String {
    format!("s{i:05}")
}

/// The `i`-th cache hub.
pub(super) fn cache(i: usize) -> String {
    format!("cache-{i:04}")
}

/// The `i`-th database hub.
pub(super) fn database(i: usize) -> String {
    format!("db-{i:04}")
}

/// Whether `s` is a DNS label as context patterns accept it.
#[cfg(test)]
pub(super) fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => b.len() <= 63 && ok(first) && ok(last) && b.iter().all(|c| ok(c) || *c == b'-'),
        _ => false,
    }
}
