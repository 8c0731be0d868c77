//! The receive hooks of the object: the sets the agent can attach (at the
//! socket, the syscall tracepoints, tp_btf on every syscall), which
//! programs make up each, and whether the running kernel has what the
//! preferred one needs.

use std::fmt;
use std::path::PathBuf;

/// Which of the object's sets of receive hooks to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookChoice {
    /// At the socket, else the syscall tracepoints (mounting tracefs if
    /// needed), else tp_btf.
    Auto,
    /// At the socket (`tp_btf/sock_recv_length`), or an error.
    Socket,
    /// The syscall tracepoints, or an error.
    Tracepoints,
    /// tp_btf `sys_enter`/`sys_exit`.
    TpBtf,
}

/// Which set is attached, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyscallHooks {
    /// `tp_btf/sock_recv_length`: runs for socket receives only, and traces
    /// no syscall.
    Socket,
    /// `tracepoint/syscalls/sys_{enter,exit}_*`: run only for the syscalls
    /// the add-on reads; `mounted`: the agent mounted tracefs there; `why`
    /// the socket hook was not used (empty: they were chosen by name).
    Tracepoints { mounted: Option<PathBuf>, why: String },
    /// `tp_btf/sys_enter` and `tp_btf/sys_exit`: run for every syscall on the
    /// machine and cost much more; `why` the tracepoints were not used.
    TpBtf { why: String },
}

impl fmt::Display for SyscallHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyscallHooks::Socket => f.write_str(
                "socket receive hook (tp_btf sock_recv_length) and connection state hook (tp_btf \
                 inet_sock_set_state), no syscall traced",
            ),
            SyscallHooks::Tracepoints { mounted, why } => {
                f.write_str("syscall tracepoints")?;
                if !why.is_empty() {
                    write!(f, ": {why}")?;
                }
                match mounted {
                    Some(p) => write!(f, "; mounted tracefs at {}", p.display()),
                    None => Ok(()),
                }
            }
            SyscallHooks::TpBtf { why } => write!(
                f,
                "tp_btf sys_enter/sys_exit, which run for every syscall of the machine: {why}"
            ),
        }
    }
}

/// The programs on the syscall tracepoints, in attach order (enter first).
pub const TRACEPOINT_PROGS: [&str; 4] = [
    "copper_enter_close",
    "copper_exit_read",
    "copper_exit_recvfrom",
    "copper_exit_recvmsg",
];

/// At the socket: no syscall traced. `copper_sock_state` sees a thread close
/// a connection (the syscall hooks see close(2) instead).
pub const SOCKET_PROGS: [&str; 2] = ["copper_sock_recv", "copper_sock_state"];

/// Their fallback without tracefs.
pub const TP_BTF_PROGS: [&str; 2] = ["copper_sys_enter", "copper_sys_exit"];

/// The running kernel's BTF (empty when it has none): read once per load,
/// then asked for names with `btf_has_name`.
pub fn kernel_btf() -> Vec<u8> {
    std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default()
}

/// Whether `btf` holds `name` (a type or other string) as a whole string of
/// its string table.
pub fn btf_has_name(btf: &[u8], name: &[u8]) -> bool {
    btf.windows(name.len() + 2)
        .any(|w| w[0] == 0 && w[w.len() - 1] == 0 && &w[1..w.len() - 1] == name)
}

/// Whether `btf` (a kernel's BTF) has cgroup storage (Linux 6.2 and
/// later), where the object caches each cgroup's service.
pub fn has_cgroup_storage(btf: &[u8]) -> bool {
    btf_has_name(btf, b"BPF_MAP_TYPE_CGRP_STORAGE")
}

/// Set in the agent's environment, the agent loads the object as on a
/// kernel without cgroup storage, so that the tests can run that path here.
pub const NO_CGROUP_STORAGE_ENV: &str = "COPPERC_AGENT_NO_CGROUP_STORAGE";

/// Whether the kernel has task storage (Linux 5.11 and later); whether its
/// sk_msg programs may use it, only loading tells.
pub fn has_task_storage(btf: &[u8]) -> bool {
    btf_has_name(btf, b"BPF_MAP_TYPE_TASK_STORAGE")
}

/// Set in the agent's environment, the agent keeps the threads' state in
/// the LRU hash `threads`, as on a kernel whose sk_msg programs may not use
/// task storage, so that the tests can run that path here.
pub const NO_TASK_STORAGE_ENV: &str = "COPPERC_AGENT_NO_TASK_STORAGE";

#[cfg(test)]
mod tests {
    use super::*;

    /// A string table as BTF holds it: NUL-separated, NUL first.
    fn strings(names: &[&str]) -> Vec<u8> {
        let mut out = vec![0u8];
        for n in names {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn cgroup_storage_is_found_by_its_map_type_name() {
        let old = strings(&["BPF_MAP_TYPE_TASK_STORAGE", "BPF_MAP_TYPE_CGRP_STORAGE_X"]);
        assert!(!has_cgroup_storage(&old));
        let new = strings(&["BPF_MAP_TYPE_TASK_STORAGE", "BPF_MAP_TYPE_CGRP_STORAGE"]);
        assert!(has_cgroup_storage(&new));
    }

    #[test]
    fn task_storage_is_found_by_its_map_type_name() {
        let old = strings(&["BPF_MAP_TYPE_INODE_STORAGE", "BPF_MAP_TYPE_TASK_STORAGE_X"]);
        assert!(!has_task_storage(&old));
        let new = strings(&["BPF_MAP_TYPE_INODE_STORAGE", "BPF_MAP_TYPE_TASK_STORAGE"]);
        assert!(has_task_storage(&new));
    }

    #[test]
    fn only_whole_strings_count() {
        let btf = strings(&["XBPF_MAP_TYPE_CGRP_STORAGE"]);
        assert!(!btf_has_name(&btf, b"BPF_MAP_TYPE_CGRP_STORAGE"));
    }

    /// The map the agent leaves uncreated without cgroup storage is the
    /// built-in object's.
    #[test]
    fn the_object_has_the_cgroup_storage_map() {
        let object = crate::ebpf::OBJECT;
        assert!(
            object
                .windows(b"cgroup_services".len())
                .any(|w| w == b"cgroup_services")
        );
    }
}
