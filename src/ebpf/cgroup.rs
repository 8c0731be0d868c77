//! The cgroup v2 tree as the agent sees it: where it is mounted
//! (`/proc/self/mountinfo`), the depth of a folder in it (what the BPF side
//! compares with `bpf_get_current_ancestor_cgroup_id`), and the folder of a
//! process (`/proc/<pid>/cgroup`).
//!
//! Depths are counted from the root of the whole hierarchy, so the agent
//! must see that root: a cgroup v2 mount whose root is `/` or a folder
//! below it, and its own cgroup namespace must be the host's (a privileged
//! Kubernetes container gets the host's).

use std::path::{Component, Path, PathBuf};

use super::agent::AgentError;

/// A cgroup v2 mount: where it is, and which folder of the hierarchy it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub root: String,
}

/// The cgroup v2 mounts listed in a `mountinfo` text.
pub fn cgroup2_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split(' ').next()? != "cgroup2" {
                return None;
            }
            let fields: Vec<&str> = left.split(' ').collect();
            Some(Mount {
                root: unescape(fields.get(3)?),
                point: PathBuf::from(unescape(fields.get(4)?)),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_mounts() -> Result<Vec<Mount>, AgentError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| AgentError::Cgroup(format!("cannot read /proc/self/mountinfo: {e}")))?;
    let mounts = cgroup2_mounts(&text);
    if mounts.is_empty() {
        return Err(AgentError::Cgroup(
            "no cgroup v2 file system is mounted (looked in /proc/self/mountinfo); mount one with `mount -t cgroup2 none /sys/fs/cgroup`".into(),
        ));
    }
    Ok(mounts)
}

/// Number of normal components of a path inside the hierarchy, or an error
/// when it climbs (`..`: a view from a cgroup namespace).
fn depth(inner: &str) -> Result<u32, AgentError> {
    let mut n = 0u32;
    for c in Path::new(inner).components() {
        match c {
            Component::Normal(_) => n += 1,
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(AgentError::Cgroup(format!(
                    "the cgroup path `{inner}` lies outside this process's cgroup namespace: run the agent in the host's cgroup namespace (a privileged container)"
                )));
            }
        }
    }
    Ok(n)
}

/// The depth of the cgroup v2 folder `path` below the root of the whole
/// hierarchy (the root is 0 and cannot be registered).
pub fn cgroup_level(path: &Path) -> Result<u32, AgentError> {
    let real = std::fs::canonicalize(path)
        .map_err(|e| AgentError::Cgroup(format!("cannot resolve {}: {e}", path.display())))?;
    let mounts = read_mounts()?;
    let mount = mounts
        .iter()
        .filter(|m| real.starts_with(&m.point))
        .max_by_key(|m| m.point.components().count())
        .ok_or_else(|| {
            AgentError::Cgroup(format!(
                "{} is not inside a cgroup v2 mount (cgroup v2 is mounted at {})",
                path.display(),
                mounts
                    .iter()
                    .map(|m| m.point.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let below = real.strip_prefix(&mount.point).unwrap_or(Path::new(""));
    let level = depth(&mount.root)? + depth(&below.to_string_lossy())?;
    if level == 0 {
        return Err(AgentError::Cgroup(format!(
            "{} is the root cgroup: give the service's own cgroup",
            path.display()
        )));
    }
    Ok(level)
}

/// The folder where the whole cgroup v2 hierarchy is mounted: the first
/// mount whose root is `/`.
pub fn hierarchy_root() -> Result<PathBuf, AgentError> {
    read_mounts()?
        .into_iter()
        .find(|m| m.root == "/")
        .map(|m| m.point)
        .ok_or_else(|| {
            AgentError::Cgroup(
                "no mount shows the whole cgroup v2 hierarchy (every cgroup2 mount has a root other than `/`): mount the host's /sys/fs/cgroup".into(),
            )
        })
}

/// The cgroup v2 path of a process from the text of `/proc/<pid>/cgroup`
/// (the `0::` line), such as `/kubepods.slice/.../cri-containerd-1.scope`.
pub fn process_cgroup(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/cpu rw,nosuid shared:11 - cgroup cgroup rw,cpu
90 30 0:29 /kubepods/pod\\040x /mnt/my\\040pod rw - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_cgroup2_mounts_only() {
        let m = cgroup2_mounts(MOUNTINFO);
        assert_eq!(
            m,
            vec![
                Mount {
                    point: "/sys/fs/cgroup/unified".into(),
                    root: "/".into()
                },
                Mount {
                    point: "/mnt/my pod".into(),
                    root: "/kubepods/pod x".into()
                },
            ]
        );
    }

    #[test]
    fn depths() {
        assert_eq!(depth("/").unwrap(), 0);
        assert_eq!(depth("/kubepods/pod1").unwrap(), 2);
        assert!(depth("/../../x").is_err());
    }

    #[test]
    fn cgroup_line() {
        assert_eq!(process_cgroup("0::/a/b\n"), Some("/a/b"));
        assert_eq!(process_cgroup("12:cpu:/x\n0::/\n"), Some("/"));
        assert_eq!(process_cgroup("12:cpu:/x\n"), None);
    }
}
