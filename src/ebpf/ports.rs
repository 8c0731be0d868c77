//! The remote ports whose connections the add-on leaves alone
//! (`copperc agent --exclude-outbound-ports`, `"excludeOutboundPorts"` in
//! the node-wide configuration): a connection a service opens to one of them
//! never enters the sockhash, so it takes the kernel's plain send path and
//! no sk_msg program runs on it. Meant for peers that never speak HTTP
//! (databases, caches, message brokers), whose every send would otherwise
//! pay the sockhash's path for nothing. What it hands on: the bitmap the
//! object reads (`.rodata.ports`) and the list as written in configurations.

use std::fmt;

/// Words of the object's bitmap (`SKIP_PORT_WORDS` in ebpf/copper_ctx.h):
/// one bit for each of the 65,536 ports.
pub const SKIP_PORT_WORDS: usize = 2048;

/// A set of TCP ports, kept as sorted, disjoint, non-adjacent ranges, so
/// that two ways of writing the same set print the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

/// One item: a port (`5432`) or an inclusive range (`9000-9099`), ports
/// 1 to 65535.
pub fn parse_item(text: &str) -> Result<(u16, u16), String> {
    let port = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{}` is not a port (1 to 65535)", s.trim())),
            Ok(p) => Ok(p),
        }
    };
    match text.split_once('-') {
        None => port(text).map(|p| (p, p)),
        Some((lo, hi)) => {
            let (lo, hi) = (port(lo)?, port(hi)?);
            if lo > hi {
                return Err(format!("the range `{}` ends before it starts", text.trim()));
            }
            Ok((lo, hi))
        }
    }
}

/// An item of `copperc compile --exclude-outbound-ports`: a port or range
/// for every service (`5432`, `9000-9099`), or for one service only, named
/// before a colon (`orders:5432`, `orders:9000-9099`).
pub fn parse_scoped_item(text: &str) -> Result<(Option<String>, (u16, u16)), String> {
    match text.split_once(':') {
        None => parse_item(text).map(|r| (None, r)),
        Some((service, ports)) => {
            let service = service.trim();
            if !crate::syntax::pattern::is_dns_label(service) {
                return Err(format!("`{service}` is not a service name (a DNS label)"));
            }
            parse_item(ports).map(|r| (Some(service.to_string()), r))
        }
    }
}

/// What the loaded object leaves out of the sockhash: connections to `all`
/// of these ports, from every followed cgroup; and, if `per_service`,
/// connections to the ports a cgroup's own list names (written when the
/// cgroup is registered).
#[derive(Clone, Copy, Debug)]
pub struct Exclusions<'a> {
    pub all: &'a PortSet,
    pub per_service: bool,
}

/// No port: every connection is followed.
pub static NO_PORTS: PortSet = PortSet { ranges: Vec::new() };

impl PortSet {
    /// The union of the ranges.
    pub fn from_ranges(ranges: &[(u16, u16)]) -> PortSet {
        let mut sorted = ranges.to_vec();
        sorted.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(sorted.len());
        for (lo, hi) in sorted {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        PortSet { ranges: merged }
    }

    /// Items as `parse_item` reads them, e.g. `["5432", "9000-9099"]`.
    pub fn parse_items<S: AsRef<str>>(items: &[S]) -> Result<PortSet, String> {
        let ranges = items
            .iter()
            .map(|s| parse_item(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PortSet::from_ranges(&ranges))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// The items, shortest form: `"5432"`, `"9000-9099"`.
    pub fn items(&self) -> Vec<String> {
        self.ranges
            .iter()
            .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
            .collect()
    }

    /// The object's bitmap: `SKIP_PORT_WORDS` 32-bit words in native byte
    /// order, bit `p % 32` of word `p / 32` set for each port `p`.
    pub fn bitmap(&self) -> Vec<u8> {
        let mut words = vec![0u32; SKIP_PORT_WORDS];
        for &(lo, hi) in &self.ranges {
            for p in lo..=hi {
                words[usize::from(p) / 32] |= 1 << (p % 32);
            }
        }
        words.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }
}

impl fmt::Display for PortSet {
    /// `5432,6379,9000-9099`, as `--exclude-outbound-ports` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.items().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_merged_and_sorted() {
        let set = PortSet::parse_items(&["9000-9099", "5432", "9100", "6379", "5432", "9050-9060"]).unwrap();
        assert_eq!(set.items(), ["5432", "6379", "9000-9100"]);
        assert_eq!(set.to_string(), "5432,6379,9000-9100");
        assert!(set.contains(9100) && set.contains(5432) && !set.contains(9101) && !set.contains(80));
    }

    #[test]
    fn bad_items_are_refused_with_the_reason() {
        assert_eq!(parse_item("0").unwrap_err(), "`0` is not a port (1 to 65535)");
        assert_eq!(parse_item("65536").unwrap_err(), "`65536` is not a port (1 to 65535)");
        assert_eq!(parse_item("http").unwrap_err(), "`http` is not a port (1 to 65535)");
        assert_eq!(
            parse_item("90-80").unwrap_err(),
            "the range `90-80` ends before it starts"
        );
        assert_eq!(parse_item(" 1-65535 ").unwrap(), (1, 65535));
    }

    #[test]
    fn scoped_items_name_their_service() {
        assert_eq!(parse_scoped_item("5432").unwrap(), (None, (5432, 5432)));
        assert_eq!(
            parse_scoped_item("orders:9000-9099").unwrap(),
            (Some("orders".to_string()), (9000, 9099))
        );
        assert_eq!(
            parse_scoped_item("Orders:5432").unwrap_err(),
            "`Orders` is not a service name (a DNS label)"
        );
        assert_eq!(
            parse_scoped_item("orders:").unwrap_err(),
            "`` is not a port (1 to 65535)"
        );
        assert_eq!(
            parse_scoped_item("orders:5432:1").unwrap_err(),
            "`5432:1` is not a port (1 to 65535)"
        );
    }

    proptest::proptest! {
        /// Against a model, the plain set of ports: the same members,
        /// ranges sorted, disjoint and not adjacent, and the printed items
        /// read back to the same set.
        #[test]
        fn port_set_is_the_union_of_its_ranges(
            raw in proptest::collection::vec((1u16..=u16::MAX, 0u16..300), 0..12),
            probes in proptest::collection::vec(0u16..=u16::MAX, 64),
        ) {
            let ranges: Vec<(u16, u16)> = raw.iter().map(|&(lo, len)| (lo, lo.saturating_add(len))).collect();
            let set = PortSet::from_ranges(&ranges);
            let model: std::collections::BTreeSet<u16> = ranges.iter().flat_map(|&(lo, hi)| lo..=hi).collect();
            for (lo, hi) in ranges.iter().copied().chain(probes.iter().map(|&p| (p, p))) {
                for p in [lo, hi, lo.saturating_sub(1), hi.saturating_add(1)] {
                    proptest::prop_assert_eq!(set.contains(p), model.contains(&p), "port {}", p);
                }
            }
            for w in set.ranges.windows(2) {
                proptest::prop_assert!(u32::from(w[0].1) + 1 < u32::from(w[1].0), "{:?}", set.ranges);
            }
            proptest::prop_assert_eq!(PortSet::parse_items(&set.items()).unwrap(), set.clone());
            proptest::prop_assert_eq!(set.is_empty(), model.is_empty());
        }
    }

    #[test]
    fn bitmap_agrees_with_contains() {
        let set = PortSet::parse_items(&["1", "31-33", "65535", "4000-4100"]).unwrap();
        let bytes = set.bitmap();
        assert_eq!(bytes.len(), SKIP_PORT_WORDS * 4);
        for p in 0..=u16::MAX {
            let at = usize::from(p) / 32 * 4;
            let word = u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
            assert_eq!(word >> (p % 32) & 1 == 1, set.contains(p), "port {p}");
        }
    }
}
