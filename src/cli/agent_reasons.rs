//! What `copperc agent` says of requests that went without a context: once
//! per service, the first time its requests are read from non-blocking
//! sockets (with the cgroups that read them), and on exit each cgroup's
//! reasons. Owns how often the agent reads them (`ebpf::reasons`), and
//! hands each service's totals on to the metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::ebpf::agent::Agent;
use crate::ebpf::reasons::{CgroupReasons, ReasonTally};
use crate::ebpf::{CGROUP_STATS, ReasonCounts};

/// Whom the agent follows, for the wording of its messages.
#[derive(Clone, Copy, Debug)]
pub enum Followed<'a> {
    /// One service, in its own cgroup (`--service`).
    Service(&'a str),
    /// The pods of a node (`--config`), with their sidecars.
    Node,
}

/// Reads the reasons every second, and tells once per service that its
/// requests were read from non-blocking sockets: without it, an operator
/// sees contexts vanish and not why.
pub struct ReasonWatch<'a> {
    followed: Followed<'a>,
    tally: ReasonTally,
    told: BTreeSet<String>,
    /// An object without the per-cgroup counts (an older build): told once
    /// from the node's counter instead.
    told_node: bool,
    last: Option<Instant>,
}

impl<'a> ReasonWatch<'a> {
    const EVERY: Duration = Duration::from_secs(1);

    pub fn new(followed: Followed<'a>) -> Self {
        ReasonWatch {
            followed,
            tally: ReasonTally::default(),
            told: BTreeSet::new(),
            told_node: false,
            last: None,
        }
    }

    /// Reads the counters every second, or now if `now` (before the agent
    /// exits), and tells what is new.
    pub fn look(&mut self, agent: &Agent, now: bool) {
        if !now && self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        self.tally.read(agent);
        if !self.tally.available() {
            self.tell_from_node_counter(agent);
            return;
        }
        for (service, cgroups) in nonblocking_by_service(self.tally.by_cgroup()) {
            if self.told.insert(service.clone()) {
                eprintln!("{}", nonblocking_message(self.followed, &service, &cgroups));
            }
        }
    }

    /// Each service's totals so far, in the order of `CGROUP_STATS`.
    pub fn by_service(&self) -> BTreeMap<String, ReasonCounts> {
        self.tally.by_service()
    }

    /// The exit line: each cgroup's reasons, or `None` if none was met.
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = self
            .tally
            .by_cgroup()
            .iter()
            .filter(|c| c.counts.iter().any(|n| *n > 0))
            .map(|c| {
                let counts: Vec<String> = CGROUP_STATS
                    .iter()
                    .zip(c.counts)
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect();
                format!("`{}` {}: {}", c.service, c.below(), counts.join(" "))
            })
            .collect();
        (!parts.is_empty()).then(|| {
            format!(
                "copperc agent: requests without a context, by cgroup: {}",
                parts.join("; ")
            )
        })
    }

    fn tell_from_node_counter(&mut self, agent: &Agent) {
        if self.told_node {
            return;
        }
        let n = agent
            .stats()
            .iter()
            .find(|(k, _)| *k == "rx_nonblocking")
            .map_or(0, |(_, v)| *v);
        if n == 0 {
            return;
        }
        self.told_node = true;
        let what = match self.followed {
            Followed::Service(s) => format!("`{s}`"),
            Followed::Node => "followed pods".into(),
        };
        eprintln!(
            "copperc agent: {what} read {n} requests from non-blocking sockets, and the calls sent while they are handled carry no context (docs/ebpf.md, \"Threads\"); this object does not count them per cgroup"
        );
    }
}

/// The services whose cgroups read requests from non-blocking sockets, with
/// those cgroups and their counts.
fn nonblocking_by_service(cgroups: &[CgroupReasons]) -> BTreeMap<String, Vec<(String, u64)>> {
    let mut out: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for c in cgroups {
        let n = c.count("rx_nonblocking");
        if n > 0 {
            out.entry(c.service.clone()).or_default().push((c.below(), n));
        }
    }
    out
}

fn nonblocking_message(followed: Followed<'_>, service: &str, cgroups: &[(String, u64)]) -> String {
    let n: u64 = cgroups.iter().map(|(_, n)| n).sum();
    let which: Vec<String> = cgroups.iter().map(|(c, n)| format!("{c} ({n})")).collect();
    match followed {
        Followed::Service(_) => format!(
            "copperc agent: `{service}` read {n} requests from non-blocking sockets (an event loop or an async runtime), in cgroup {}, and its calls carry no context while it handles them; if each of its threads handles one request at a time, run the agent with --one-request-per-thread (docs/ebpf.md, \"Threads\")",
            which.join(", ")
        ),
        // A pod's sidecar proxy reads so too: it passes on the header the
        // application's own calls carry, so that is no fault there; the
        // cgroup tells the operator which container it was.
        Followed::Node => format!(
            "copperc agent: pods of `{service}` read {n} requests from non-blocking sockets, in cgroups {} (below each pod's), and the calls those threads send carry no context of their own; a sidecar proxy reads so and is no fault, but if it is the application and each of its threads handles one request at a time, declare `{service}` with \"oneRequestPerThread\": true (copperc compile --one-request-per-thread {service}; docs/ebpf.md, \"Threads\")",
            which.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(service: &str, below: &str, nonblocking: u64) -> CgroupReasons {
        CgroupReasons {
            service: service.into(),
            cgroup: format!("/cg/{service}/{below}").into(),
            followed: format!("/cg/{service}").into(),
            counts: [0, nonblocking, 1, 0, 0, 0],
        }
    }

    #[test]
    fn only_cgroups_that_read_without_waiting_are_named() {
        let found = nonblocking_by_service(&[reasons("b", "app", 3), reasons("b", "envoy", 5), reasons("c", "app", 0)]);
        assert_eq!(
            found,
            [("b".to_string(), vec![("app".to_string(), 3), ("envoy".to_string(), 5)])]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn the_message_names_the_service_its_cgroups_and_the_flag() {
        let cgroups = vec![("app".to_string(), 3), ("envoy".to_string(), 5)];
        let node = nonblocking_message(Followed::Node, "b", &cgroups);
        assert!(node.starts_with("copperc agent: pods of `b` read 8 requests"), "{node}");
        assert!(node.contains("in cgroups app (3), envoy (5)"), "{node}");
        assert!(node.contains("--one-request-per-thread b"), "{node}");
        let one = nonblocking_message(Followed::Service("b"), "b", &[(".".to_string(), 2)]);
        assert!(one.starts_with("copperc agent: `b` read 2 requests"), "{one}");
        assert!(one.contains("in cgroup . (2)"), "{one}");
        assert!(one.contains("run the agent with --one-request-per-thread"), "{one}");
    }
}
