//! Where a node-wide agent pins its maps and cgroup links (a folder on the
//! BPF file system, `/sys/fs/bpf/copper-ctx` by default), so that an agent
//! that restarts (a DaemonSet rollout) takes over the connections the last
//! one followed: the sockhash, and the sk_msg program attached to it, live
//! on in the pinned map; the sockops links of the pods stay attached and the
//! new agent swaps its program in. Removing the folder releases everything
//! (`copperc agent --remove-pins`).

use std::path::{Path, PathBuf};

use super::agent::AgentError;

/// Default folder of the pins.
pub const DEFAULT_DIR: &str = "/sys/fs/bpf/copper-ctx";

/// The pins' folder, its `maps/` and `links/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    pub root: PathBuf,
}

impl PinDir {
    pub fn map(&self, name: &str) -> PathBuf {
        self.root.join("maps").join(name)
    }

    /// The sockops link of the cgroup with id `id`.
    pub fn link(&self, id: u64) -> PathBuf {
        self.root.join("links").join(format!("sockops-{id}"))
    }

    /// The cgroup ids of the pinned sockops links.
    pub fn linked_ids(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(self.root.join("links")) else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("sockops-")?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Makes the folders, on a BPF file system (mounting one on the parent
    /// folder when it is not).
    pub fn prepare(root: &Path) -> Result<PinDir, AgentError> {
        let parent = root.parent().unwrap_or(Path::new("/"));
        if !on_bpffs(parent) {
            std::fs::create_dir_all(parent)
                .map_err(|e| AgentError::Config(format!("cannot create {}: {e}", parent.display())))?;
            nix::mount::mount(
                Some("bpf"),
                parent,
                Some("bpf"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| {
                AgentError::Config(format!(
                    "{} is not on a BPF file system and mounting one failed ({e}): mount one with `mount -t bpf bpf {}`",
                    parent.display(),
                    parent.display()
                ))
            })?;
        }
        for sub in ["maps", "links"] {
            std::fs::create_dir_all(root.join(sub))
                .map_err(|e| AgentError::Config(format!("cannot create {}: {e}", root.join(sub).display())))?;
        }
        Ok(PinDir {
            root: root.to_path_buf(),
        })
    }

    /// Removes the pinned maps (not the links): for an object whose maps
    /// differ from the pinned ones.
    pub fn remove_maps(&self) -> std::io::Result<()> {
        remove_files(&self.root.join("maps"))
    }

    /// Removes every pin: maps and links are released once nothing else
    /// holds them, which detaches the add-on from every cgroup and socket.
    pub fn remove_all(&self) -> std::io::Result<()> {
        for sub in ["links", "maps"] {
            remove_files(&self.root.join(sub))?;
            let _ = std::fs::remove_dir(self.root.join(sub));
        }
        match std::fs::remove_dir(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn remove_files(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        std::fs::remove_file(e.path())?;
    }
    Ok(())
}

fn on_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}
