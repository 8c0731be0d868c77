//! Why requests went without a context, per service: the agent's reading
//! of the object's `cgroup_stats` map, which counts each such reason per
//! cgroup of the task that met it (a pod's container, or a service's own
//! cgroup).
//!
//! Owns the attribution of a cgroup id to the followed service whose
//! folder holds it, and the counts of cgroups that are gone, so that a
//! service's totals never go down while the agent runs (Prometheus takes a
//! counter that goes down for a restart). Hands on [`CgroupReasons`] for
//! the agent's messages and totals per service for its metrics.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::agent::Agent;
use super::{CGROUP_STATS, ReasonCounts};

/// How deep below a followed cgroup its cgroups are looked for (a pod's
/// containers are one or two levels down).
const MAX_DEPTH: usize = 4;

/// Cgroups looked at below one followed cgroup, at most.
const MAX_CGROUPS: usize = 256;

/// One cgroup's reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupReasons {
    /// The followed service the cgroup belongs to.
    pub service: String,
    /// The cgroup's folder.
    pub cgroup: PathBuf,
    /// The followed cgroup (the service's own, or its pod's) that holds it.
    pub followed: PathBuf,
    /// In the order of `CGROUP_STATS`.
    pub counts: ReasonCounts,
}

impl CgroupReasons {
    /// The cgroup's folder below the followed one (`.` for itself), as the
    /// agent names it in a message.
    pub fn below(&self) -> String {
        match self.cgroup.strip_prefix(&self.followed) {
            Ok(p) if p.as_os_str().is_empty() => ".".into(),
            Ok(p) => p.display().to_string(),
            Err(_) => self.cgroup.display().to_string(),
        }
    }

    /// The count of the reason `name` (one of `CGROUP_STATS`).
    pub fn count(&self, name: &str) -> u64 {
        reason_count(&self.counts, name)
    }
}

/// The count of the reason `name` in `counts`; 0 for a name that is not
/// one of `CGROUP_STATS`.
pub fn reason_count(counts: &ReasonCounts, name: &str) -> u64 {
    CGROUP_STATS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| counts.get(i))
        .copied()
        .unwrap_or(0)
}

/// What the agent has read of `cgroup_stats` so far.
#[derive(Debug, Default)]
pub struct ReasonTally {
    /// Whether the object has the map (an older one, loaded with
    /// `--object`, does not).
    available: bool,
    /// Cgroup id -> (service, its folder, the followed folder), as found.
    known: BTreeMap<u64, (String, PathBuf, PathBuf)>,
    /// The cgroups of the last read that belong to a followed service.
    live: Vec<CgroupReasons>,
    /// Per service, what cgroups that are gone had counted.
    retired: BTreeMap<String, ReasonCounts>,
}

impl ReasonTally {
    /// Reads the map. A cgroup that is no followed service's (any more) has
    /// its entry deleted, and what it counted stays in its service's totals
    /// if its service was known.
    pub fn read(&mut self, agent: &Agent) {
        let Some(counts) = agent.cgroup_stats() else {
            self.available = false;
            self.live.clear();
            return;
        };
        self.available = true;
        if counts.keys().any(|id| !self.known.contains_key(id)) {
            self.learn(agent, &counts);
        }
        let mut live = Vec::new();
        for (id, c) in counts {
            match self.known.get(&id) {
                Some((service, cgroup, followed)) if cgroup.is_dir() => live.push(CgroupReasons {
                    service: service.clone(),
                    cgroup: cgroup.clone(),
                    followed: followed.clone(),
                    counts: c,
                }),
                found => {
                    if let Some((service, _, _)) = found {
                        add(self.retired.entry(service.clone()).or_default(), &c);
                    }
                    self.known.remove(&id);
                    agent.forget_cgroup_stats(id);
                }
            }
        }
        live.sort_by(|a, b| (&a.service, &a.cgroup).cmp(&(&b.service, &b.cgroup)));
        self.live = live;
    }

    /// Looks for the cgroups below each followed one. What was known of a
    /// cgroup that is gone stays only while the map still counts it (so
    /// that its counts are kept for its service), so that pods that come
    /// and go for days do not make this grow.
    fn learn(&mut self, agent: &Agent, counts: &BTreeMap<u64, ReasonCounts>) {
        let mut known = BTreeMap::new();
        for (_, folder, service) in agent.registered() {
            for (id, cgroup) in cgroups_below(folder) {
                known.insert(id, (service.to_string(), cgroup, folder.to_path_buf()));
            }
        }
        for id in counts.keys() {
            if let (Some(was), false) = (self.known.remove(id), known.contains_key(id)) {
                known.insert(*id, was);
            }
        }
        self.known = known;
    }

    /// Whether the object counts reasons per cgroup.
    pub fn available(&self) -> bool {
        self.available
    }

    /// The cgroups of followed services that met a reason, by service and
    /// folder.
    pub fn by_cgroup(&self) -> &[CgroupReasons] {
        &self.live
    }

    /// Each service's totals: its cgroups', and those of its cgroups that
    /// are gone.
    pub fn by_service(&self) -> BTreeMap<String, ReasonCounts> {
        let mut out = self.retired.clone();
        for c in &self.live {
            add(out.entry(c.service.clone()).or_default(), &c.counts);
        }
        out
    }
}

fn add(to: &mut ReasonCounts, counts: &ReasonCounts) {
    for (t, c) in to.iter_mut().zip(counts) {
        *t = t.wrapping_add(*c);
    }
}

/// `folder` and the cgroups below it (breadth first, at most MAX_DEPTH
/// levels and MAX_CGROUPS folders), with their ids: a cgroup v2 folder's
/// inode number.
fn cgroups_below(folder: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    let mut level = vec![folder.to_path_buf()];
    for _ in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for dir in level {
            if out.len() >= MAX_CGROUPS {
                return out;
            }
            // A cgroup removed meanwhile is simply not found.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            out.push((meta.ino(), dir.clone()));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                next.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        next.sort();
        level = next;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_folder_and_those_below_it_with_their_inodes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/inner")).unwrap();
        std::fs::create_dir_all(dir.path().join("sidecar")).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        let found = cgroups_below(dir.path());
        let names: Vec<String> = found
            .iter()
            .map(|(_, p)| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["", "app", "sidecar", "app/inner"]);
        for (id, p) in &found {
            assert_eq!(*id, std::fs::metadata(p).unwrap().ino());
        }
    }

    #[test]
    fn a_cgroup_is_named_below_its_followed_folder() {
        let r = CgroupReasons {
            service: "b".into(),
            cgroup: "/sys/fs/cgroup/pods/p1/ctr".into(),
            followed: "/sys/fs/cgroup/pods/p1".into(),
            counts: [0, 3, 0, 0, 0, 0],
        };
        assert_eq!(r.below(), "ctr");
        assert_eq!(r.count("rx_nonblocking"), 3);
        assert_eq!(r.count("no_such_reason"), 0);
        let own = CgroupReasons {
            cgroup: r.followed.clone(),
            ..r.clone()
        };
        assert_eq!(own.below(), ".");
    }

    #[test]
    fn each_reason_is_a_counter_of_the_node() {
        for name in CGROUP_STATS {
            assert!(super::super::STATS.contains(&name), "{name}");
        }
    }

    #[test]
    fn totals_add_the_retired_counts() {
        let mut t = ReasonTally::default();
        t.retired.insert("b".into(), [1, 0, 0, 0, 0, 0]);
        t.live.push(CgroupReasons {
            service: "b".into(),
            cgroup: "/x".into(),
            followed: "/x".into(),
            counts: [1, 2, 0, 0, 0, 0],
        });
        assert_eq!(t.by_service().get("b"), Some(&[2, 2, 0, 0, 0, 0]));
    }
}
