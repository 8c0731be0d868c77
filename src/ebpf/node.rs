//! The node-wide mode of the agent (`copperc agent --config FILE`), as the
//! DaemonSet of `k8s/` runs it: one loaded object for every pod of the
//! node. What it owns: reading the add-on's configuration (the `config.json`
//! of the `copper-ctx-config` ConfigMap) and finding the pods that wait for
//! the agent.
//!
//! A pod announces itself with a waiter: the native sidecar (an init
//! container with `restartPolicy: Always`) that `k8s/` adds to every
//! Deployment runs `copperc await-agent` with `COPPER_CTX_SERVICE=<service>`
//! in its environment. The agent, which shares the host's PID and cgroup
//! namespaces, finds such processes in `/proc`, registers the parent of the
//! waiter's cgroup (the pod's cgroup, which holds every container of the
//! pod) as that service, and then signals the waiter (`SIGUSR1`). The waiter
//! only reports ready after that signal, and Kubernetes starts the
//! application's containers only once the sidecar is ready, so every socket
//! the application opens is followed. The waiter keeps running, so an agent
//! that restarts finds the pod again.
//!
//! The agent trusts the service name a pod claims: on a node shared with
//! untrusted workloads, an admission policy must keep them from setting
//! `COPPER_CTX_SERVICE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ServiceFlags;
use super::cgroup::process_cgroup;
use super::ports::PortSet;

/// The environment variable that marks a waiter and names its service.
pub const SERVICE_ENV: &str = "COPPER_CTX_SERVICE";

/// What the node-wide agent knows of the application: its services, which
/// of them are entry points, which handle one request per thread, and the
/// remote ports whose connections it leaves alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// Service name -> how its requests are treated.
    pub services: BTreeMap<String, ServiceFlags>,
    /// `excludeOutboundPorts`: connections any followed pod opens to these
    /// ports are not followed.
    pub excluded_ports: PortSet,
    /// A service's own `excludeOutboundPorts`: connections its pods open
    /// to these ports are not followed (services without one are absent).
    pub service_ports: BTreeMap<String, PortSet>,
}

#[derive(Deserialize)]
struct RawConfig {
    services: Vec<RawService>,
    #[serde(default, rename = "excludeOutboundPorts")]
    exclude_outbound_ports: Vec<RawPorts>,
}

/// An item of `excludeOutboundPorts`: `5432`, `"5432"` or `"9000-9099"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPorts {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct RawService {
    name: String,
    #[serde(default)]
    entrypoint: bool,
    #[serde(default, rename = "oneRequestPerThread")]
    one_request_per_thread: bool,
    #[serde(default, rename = "excludeOutboundPorts")]
    exclude_outbound_ports: Vec<RawPorts>,
}

/// `excludeOutboundPorts` items as text (`parse_item` reads them).
fn port_items(raw: Vec<RawPorts>) -> Vec<String> {
    raw.into_iter()
        .map(|p| match p {
            RawPorts::Number(n) => n.to_string(),
            RawPorts::Text(t) => t,
        })
        .collect()
}

/// Reads the add-on's `config.json` (written by `copperc compile` into
/// `k8s/configmap-copper-ctx-config.yaml`); other keys are ignored.
pub fn parse_config(text: &str) -> Result<NodeConfig, String> {
    let raw: RawConfig = serde_json::from_str(text).map_err(|e| format!("not an agent configuration: {e}"))?;
    let mut services = BTreeMap::new();
    let mut service_ports = BTreeMap::new();
    for s in raw.services {
        if !crate::syntax::pattern::is_dns_label(&s.name) {
            return Err(format!("service name `{}` is not a DNS label", s.name));
        }
        let flags = ServiceFlags {
            entrypoint: s.entrypoint,
            one_request_per_thread: s.one_request_per_thread,
        };
        if services.insert(s.name.clone(), flags).is_some() {
            return Err(format!("service `{}` is listed twice", s.name));
        }
        let ports = PortSet::parse_items(&port_items(s.exclude_outbound_ports))
            .map_err(|e| format!("excludeOutboundPorts of `{}`: {e}", s.name))?;
        if !ports.is_empty() {
            service_ports.insert(s.name, ports);
        }
    }
    if services.is_empty() {
        return Err("the configuration lists no services".into());
    }
    let excluded_ports = PortSet::parse_items(&port_items(raw.exclude_outbound_ports))
        .map_err(|e| format!("excludeOutboundPorts: {e}"))?;
    Ok(NodeConfig {
        services,
        excluded_ports,
        service_ports,
    })
}

/// A process that waits for the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub pid: i32,
    /// Start time (clock ticks after boot): with the pid, names the process
    /// even after its pid is reused.
    pub start_time: u64,
    /// The service it claims (`COPPER_CTX_SERVICE`).
    pub service: String,
    /// Its cgroup v2 path, as in `/proc/<pid>/cgroup`.
    pub cgroup: String,
    /// It handles SIGUSR1 already: signalled earlier, between its exec and
    /// its handler, it would be killed.
    pub listening: bool,
}

impl Waiter {
    /// The pod's cgroup folder under the hierarchy root `root`: the parent
    /// of the waiter's own cgroup. `None` when the waiter sits in the root
    /// or directly below it, which is no pod.
    pub fn pod_cgroup(&self, root: &Path) -> Option<PathBuf> {
        let parent = Path::new(&self.cgroup).parent()?;
        let inner = parent.strip_prefix("/").ok()?;
        (inner.components().count() > 0).then(|| root.join(inner))
    }
}

/// The value of `SERVICE_ENV` in a `/proc/<pid>/environ` text.
pub fn service_of(environ: &[u8]) -> Option<String> {
    let prefix = format!("{SERVICE_ENV}=");
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Whether the `SigCgt` mask of a `/proc/<pid>/status` text holds SIGUSR1.
pub fn catches_usr1(status: &str) -> bool {
    let bit = 1u64 << (nix::sys::signal::Signal::SIGUSR1 as u64 - 1);
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & bit != 0)
}

/// Field 22 of `/proc/<pid>/stat` (after the parenthesised command name,
/// which may hold spaces).
pub fn start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// In the node-wide agent's environment: no exec events, /proc is searched
/// every `--scan-interval` (as on a kernel without them).
pub const NO_EXEC_EVENTS_ENV: &str = "COPPERC_AGENT_NO_EXEC_EVENTS";

/// The name (`comm`) of a waiter's process: the sidecar runs the `copperc`
/// binary.
pub const WAITER_COMM: &str = "copperc";

/// Whether the process of `proc_dir` (`/proc/<pid>`) is named as a waiter;
/// false once it has ended.
pub fn named_as_waiter(proc_dir: &Path) -> bool {
    std::fs::read(proc_dir.join("comm")).is_ok_and(|comm| comm.trim_ascii_end() == WAITER_COMM.as_bytes())
}

/// The waiters among the processes of `proc_root` (normally `/proc`), by
/// pid. Processes that end while they are read are skipped.
///
/// A process's name is read first, and only a `copperc` process's
/// environment: reading the environment takes the process's memory lock and
/// its pages, which every scan would do to every process of the node (about
/// 1.2 ms per scan of 72 processes, against 0.2 ms).
pub fn find_waiters(proc_root: &Path) -> Vec<Waiter> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out: Vec<Waiter> = entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let dir = e.path();
            if !named_as_waiter(&dir) {
                return None;
            }
            let service = service_of(&std::fs::read(dir.join("environ")).ok()?)?;
            let cgroup = process_cgroup(&std::fs::read_to_string(dir.join("cgroup")).ok()?)?.to_string();
            let start_time = start_time(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
            let listening = catches_usr1(&std::fs::read_to_string(dir.join("status")).ok()?);
            Some(Waiter {
                pid,
                start_time,
                service,
                cgroup,
                listening,
            })
        })
        .collect();
    out.sort_by_key(|w| w.pid);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn config_from_compile() {
        let c = parse_config(
            r#"{"header":"x-copper-context","namespace":"shop","services":[
                {"name":"a","entrypoint":true,"podLabels":{"app":"a"}},{"name":"b"},
                {"name":"c","oneRequestPerThread":true}]}"#,
        )
        .unwrap();
        let flags = |entrypoint, one_request_per_thread| ServiceFlags {
            entrypoint,
            one_request_per_thread,
        };
        assert_eq!(c.services.get("a"), Some(&flags(true, false)));
        assert_eq!(c.services.get("b"), Some(&flags(false, false)));
        assert_eq!(c.services.get("c"), Some(&flags(false, true)));
        assert!(parse_config(r#"{"services":[{"name":"B_ad"}]}"#).is_err());
        assert!(parse_config(r#"{"services":[{"name":"a"},{"name":"a"}]}"#).is_err());
        assert!(parse_config(r#"{"services":[]}"#).is_err());
        assert!(parse_config("[]").is_err());
        assert!(c.excluded_ports.is_empty());
    }

    #[test]
    fn excluded_ports_in_config() {
        let c =
            parse_config(r#"{"services":[{"name":"a"}],"excludeOutboundPorts":[6379,"5432","9000-9099"]}"#).unwrap();
        assert_eq!(c.excluded_ports.to_string(), "5432,6379,9000-9099");
        let err = parse_config(r#"{"services":[{"name":"a"}],"excludeOutboundPorts":[70000]}"#).unwrap_err();
        assert_eq!(err, "excludeOutboundPorts: `70000` is not a port (1 to 65535)");
        assert!(c.service_ports.is_empty());
    }

    #[test]
    fn a_services_own_excluded_ports() {
        let c = parse_config(
            r#"{"services":[{"name":"a","excludeOutboundPorts":["9000-9099",5432]},{"name":"b","excludeOutboundPorts":[]},{"name":"c"}],"excludeOutboundPorts":[6379]}"#,
        )
        .unwrap();
        assert_eq!(c.excluded_ports.to_string(), "6379");
        let lists: Vec<(String, String)> = c
            .service_ports
            .iter()
            .map(|(s, p)| (s.clone(), p.to_string()))
            .collect();
        assert_eq!(lists, [("a".to_string(), "5432,9000-9099".to_string())]);
        let err = parse_config(r#"{"services":[{"name":"a","excludeOutboundPorts":["x"]}]}"#).unwrap_err();
        assert_eq!(err, "excludeOutboundPorts of `a`: `x` is not a port (1 to 65535)");
    }

    #[test]
    fn environ_and_stat() {
        assert_eq!(
            service_of(b"PATH=/bin\0COPPER_CTX_SERVICE=reviews\0HOME=/\0"),
            Some("reviews".into())
        );
        assert_eq!(service_of(b"XCOPPER_CTX_SERVICE=a\0"), None);
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_time(stat), Some(98765));
        assert!(catches_usr1("Name:\tcopperc\nSigCgt:\t0000000000004200\n"));
        assert!(!catches_usr1("Name:\tcopperc\nSigCgt:\t0000000000004000\n"));
    }

    /// A fake `/proc`: a waiter, a process with the same environment under
    /// another name (not read further), and a process that is not one.
    #[test]
    fn waiters_are_copperc_processes_with_the_variable() {
        let proc_root = tempfile::tempdir().unwrap();
        let stat = |pid: u32| format!("{pid} (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {pid}00 0 0");
        let status = "Name:\tx\nSigCgt:\t0000000000000200\n";
        for (pid, comm, environ) in [
            (7, "copperc\n", "COPPER_CTX_SERVICE=reviews\0"),
            (8, "python3\n", "COPPER_CTX_SERVICE=ratings\0"),
            (9, "copperc\n", "HOME=/\0"),
        ] {
            let dir = proc_root.path().join(pid.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("comm"), comm).unwrap();
            std::fs::write(dir.join("environ"), environ).unwrap();
            std::fs::write(dir.join("cgroup"), "0::/pods/p1/wait\n").unwrap();
            std::fs::write(dir.join("stat"), stat(pid)).unwrap();
            std::fs::write(dir.join("status"), status).unwrap();
        }
        std::fs::create_dir(proc_root.path().join("self")).unwrap();
        let found = find_waiters(proc_root.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].pid, found[0].service.as_str()), (7, "reviews"));
        assert_eq!(found[0].cgroup, "/pods/p1/wait");
        assert!(found[0].listening);
    }

    #[test]
    fn pod_is_the_parent() {
        let w = Waiter {
            pid: 1,
            start_time: 1,
            service: "a".into(),
            cgroup: "/kubepods.slice/kubepods-pod1.slice/cri-containerd-2.scope".into(),
            listening: true,
        };
        assert_eq!(
            w.pod_cgroup(Path::new("/sys/fs/cgroup")),
            Some(PathBuf::from("/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice"))
        );
        let top = Waiter {
            cgroup: "/init.scope".into(),
            ..w.clone()
        };
        assert_eq!(top.pod_cgroup(Path::new("/sys/fs/cgroup")), None);
        assert_eq!(
            Waiter {
                cgroup: "/".into(),
                ..w
            }
            .pod_cgroup(Path::new("/x")),
            None
        );
    }
}
