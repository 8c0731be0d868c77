//! tracefs, which the syscall tracepoints need: the agent uses a mounted
//! one, or mounts it at `/sys/kernel/tracing` (in a container, its own
//! mount namespace). Without it the agent falls back to the generic tp_btf
//! hooks, which run for every syscall of the machine (docs/ebpf.md).

use std::path::{Path, PathBuf};

/// Where libbpf looks for tracefs, in its order.
const PLACES: [&str; 2] = ["/sys/kernel/debug/tracing", "/sys/kernel/tracing"];
const MOUNT_POINT: &str = "/sys/kernel/tracing";

/// What the agent found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracefs {
    /// Mounted already, with the syscall events.
    Present(PathBuf),
    /// Mounted by the agent.
    Mounted(PathBuf),
    /// Not available: why.
    Missing(String),
}

fn has_syscall_events(p: &Path) -> bool {
    p.join("events/syscalls/sys_enter_read").is_dir()
}

/// Finds tracefs, or mounts it.
pub fn ensure() -> Tracefs {
    // libbpf takes the debugfs path whenever it exists, so that one decides.
    let debugfs = Path::new(PLACES[0]);
    if debugfs.exists() {
        return if has_syscall_events(debugfs) {
            Tracefs::Present(debugfs.to_path_buf())
        } else {
            Tracefs::Missing(format!("{} has no syscall events", debugfs.display()))
        };
    }
    let place = Path::new(MOUNT_POINT);
    if has_syscall_events(place) {
        return Tracefs::Present(place.to_path_buf());
    }
    if !place.is_dir() {
        return Tracefs::Missing(format!("{MOUNT_POINT} does not exist"));
    }
    match nix::mount::mount(
        Some("tracefs"),
        place,
        Some("tracefs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        Ok(()) if has_syscall_events(place) => Tracefs::Mounted(place.to_path_buf()),
        Ok(()) => Tracefs::Missing(format!(
            "tracefs at {MOUNT_POINT} has no syscall events (a kernel without CONFIG_FTRACE_SYSCALLS)"
        )),
        Err(e) => Tracefs::Missing(format!("cannot mount tracefs at {MOUNT_POINT}: {e}")),
    }
}
