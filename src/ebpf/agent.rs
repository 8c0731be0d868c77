//! The loader behind `copperc agent`: loads the embedded object (or a given
//! one) once with libbpf-rs, attaches sk_msg to the sockhash and one set of
//! receive hooks (`hooks`), then follows any number of cgroups, each as
//! one service: `register` stores the service under the cgroup's id in the
//! `services` map and attaches sockops to the cgroup. One loaded object
//! serves every service of a node, so the per-syscall hooks run once, not
//! once per service. Dropping the `Agent` detaches everything: the links
//! close, and with the last reference to the sockhash its sockets leave it
//! and sk_msg stops running on them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libbpf_rs::{Link, MapCore, MapFlags, Object, ObjectBuilder};

pub use super::error::AgentError;
use super::error::{kernel_error, start_capture, take_log, take_log_mentions};
pub use super::hooks::{HookChoice, SyscallHooks};
use super::hooks::{
    NO_CGROUP_STORAGE_ENV, NO_TASK_STORAGE_ENV, SOCKET_PROGS, TP_BTF_PROGS, TRACEPOINT_PROGS, btf_has_name,
    has_cgroup_storage, has_task_storage, kernel_btf,
};

use super::cgroup::cgroup_level;
use super::pins::PinDir;
use super::ports::{Exclusions, NO_PORTS, PortSet};
use super::{CGROUP_STATS, MAX_LEVELS, MAX_SERVICES, OBJECT, ReasonCounts, STATS, ServiceFlags, config_bytes};

/// What the agent is asked to do.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub service: String,
    pub cgroup: PathBuf,
    pub flags: ServiceFlags,
    pub hooks: HookChoice,
    /// The object to load: `None` for the one embedded in copperc, else the
    /// bytes of a file (such as the `ebpf/copper_ctx.bpf.o` that
    /// `copperc compile` writes, which is the same object).
    pub object: Option<Vec<u8>>,
    /// Remote ports whose connections are not followed.
    pub excluded_ports: PortSet,
}

/// How long the object sends after the last `keep_alive` of a pinning
/// agent: an agent that is killed stops renewing it, and the stale values of
/// the threads stop going out within that time.
pub const ALIVE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a pinning agent renews the deadline: a fifth of `ALIVE_FOR`.
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Entries of the map `threads` (where it is used instead of task storage)
/// when the object follows one service (`copperc agent --service`): the
/// object's 65,536 are sized for a node and lock 28 MB. A thread whose
/// entry is evicted sends nothing until it reads its next request.
pub const THREADS_ONE_SERVICE: u32 = 4096;

/// What a loaded object does where kernels differ.
#[derive(Clone, Copy, Debug)]
struct Features {
    /// It caches each cgroup's service (cgroup storage).
    service_cache: bool,
    /// It keeps the threads' state in task storage, not in `threads`.
    task_storage: bool,
    /// The kernel has the socket receive tracepoint (Linux 6.4), so the
    /// socket hook's programs were loaded.
    socket_hook: bool,
}

/// `open_and_load` with the threads' state in task storage where the kernel
/// has it; if that object does not load (a kernel whose sk_msg programs may
/// not use task storage), again with the LRU hash. Pinned maps that do not
/// fit are the caller's to handle (`pins_do_not_fit`), not a reason for the
/// hash.
fn load_object(
    bytes: &[u8],
    pins: Option<&PinDir>,
    threads: Option<u32>,
    excluded: Exclusions<'_>,
    verbose: bool,
) -> Result<(Object, Features), libbpf_rs::Error> {
    let tasks = std::env::var_os(NO_TASK_STORAGE_ENV).is_none() && has_task_storage(&kernel_btf());
    if tasks {
        match open_and_load(bytes, pins, threads, excluded, true, verbose) {
            Ok(o) => return Ok(o),
            Err(e) if pins_do_not_fit(&e) => return Err(e),
            Err(_) => {
                take_log();
            }
        }
    }
    open_and_load(bytes, pins, threads, excluded, false, verbose)
}

/// The load failed because a pinned map of an earlier agent does not fit
/// this object's (another version's maps).
fn pins_do_not_fit(e: &libbpf_rs::Error) -> bool {
    e.to_string().contains("reuse") || take_log_mentions("reuse pinned map")
}

/// The object has the bitmap of excluded ports, of this copperc's size
/// (objects of copperc before `--exclude-outbound-ports` have none).
fn has_port_bitmap(bytes: &[u8]) -> bool {
    let size = super::ports::SKIP_PORT_WORDS * 4;
    ObjectBuilder::default().open_memory(bytes).is_ok_and(|open| {
        open.maps()
            .any(|m| m.name() == PORTS_SECTION && m.initial_value().is_some_and(|v| v.len() == size))
    })
}

/// The read-only section that holds the excluded ports' bitmap.
const PORTS_SECTION: &str = ".rodata.ports";
/// The read-only section whose switch turns services' own lists on, and
/// the map of those lists.
const SERVICE_PORTS_SECTION: &str = ".rodata.svcports";
const SERVICE_PORTS_MAP: &str = "service_ports";
/// Why requests went without a context, per cgroup (`reasons`).
const CGROUP_STATS_MAP: &str = "cgroup_stats";

/// The object can exclude ports for one service only (objects of copperc
/// before services' own lists cannot).
fn has_service_ports(bytes: &[u8]) -> bool {
    ObjectBuilder::default().open_memory(bytes).is_ok_and(|open| {
        open.maps()
            .any(|m| m.name() == SERVICE_PORTS_SECTION && m.initial_value().is_some_and(|v| v.len() == 4))
    })
}

/// Opens the object, pins its maps in `pins` (or reuses the pinned ones) and
/// loads it, with the threads' state in task storage if `tasks`, and the
/// connections to `excluded` ports left out of the sockhash.
fn open_and_load(
    bytes: &[u8],
    pins: Option<&PinDir>,
    threads: Option<u32>,
    excluded: Exclusions<'_>,
    tasks: bool,
    verbose: bool,
) -> Result<(Object, Features), libbpf_rs::Error> {
    let mut open = ObjectBuilder::default().open_memory(bytes)?;
    if verbose {
        // The verifier's statistics (log level 4), which libbpf prints
        // after each program loads: how near a program is to the limit
        // of instructions the verifier walks.
        for mut prog in open.progs_mut() {
            prog.set_log_level(4);
        }
    }
    // One of the two places for the threads' state is not created: the
    // verifier drops the code that would use it (see `.rodata.cache`).
    for mut map in open.maps_mut() {
        match map.name().to_str() {
            Some("threads") if tasks => map.set_autocreate(false)?,
            Some("tasks") if !tasks => map.set_autocreate(false)?,
            Some(".rodata.tasks") if !tasks => {
                if let Some(value) = map.initial_value_mut() {
                    value.fill(0);
                }
            }
            Some(PORTS_SECTION) => {
                let bitmap = excluded.all.bitmap();
                if let Some(value) = map.initial_value_mut().filter(|v| v.len() == bitmap.len()) {
                    value.copy_from_slice(&bitmap);
                }
            }
            // Without lists of services' own, the verifier drops the code
            // that reads the map, which is then not created.
            Some(SERVICE_PORTS_SECTION) if excluded.per_service => {
                if let Some(value) = map.initial_value_mut() {
                    value.copy_from_slice(&1u32.to_ne_bytes()[..value.len().min(4)]);
                }
            }
            Some(SERVICE_PORTS_MAP) if !excluded.per_service => map.set_autocreate(false)?,
            _ => {}
        }
    }
    if let Some(n) = threads {
        for mut map in open.maps_mut() {
            if map.name() == "threads" {
                map.set_max_entries(n)?;
            }
        }
    }
    let btf = kernel_btf();
    // A tp_btf program needs its tracepoint in the kernel's BTF to load at
    // all; without it (before Linux 6.4) the object loads without the
    // socket hook, and the agent falls back to the syscall hooks.
    let socket_hook = btf_has_name(&btf, b"btf_trace_sock_recv_length");
    if !socket_hook {
        for mut prog in open.progs_mut() {
            if SOCKET_PROGS.iter().any(|n| prog.name() == *n) {
                prog.set_autoload(false);
            }
        }
    }
    // Without cgroup storage (before Linux 6.2) the object caches nothing:
    // its switch goes off and the cache's map is not created, which the
    // verifier then finds used only in code it drops.
    let cache = std::env::var_os(NO_CGROUP_STORAGE_ENV).is_none() && has_cgroup_storage(&btf);
    if !cache {
        for mut map in open.maps_mut() {
            match map.name().to_str() {
                Some("cgroup_services") => map.set_autocreate(false)?,
                Some(".rodata.cache") => {
                    if let Some(value) = map.initial_value_mut() {
                        value.fill(0);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(p) = pins {
        for mut map in open.maps_mut() {
            let name = map.name().to_string_lossy().into_owned();
            // Per-CPU working memory, read-only constants and a map not
            // created: nothing to hand on.
            if name != "scratch" && !name.starts_with('.') && map.autocreate() {
                map.set_pin_path(p.map(&name))?;
            }
        }
    }
    open.load().map(|o| {
        (
            o,
            Features {
                service_cache: cache,
                task_storage: tasks,
                socket_hook,
            },
        )
    })
}

/// `struct service_port_key`: the cgroup's id, the bitmap's word, padding.
fn service_port_key(id: u64, word: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.extend_from_slice(&id.to_ne_bytes());
    key.extend_from_slice(&word.to_ne_bytes());
    key.extend_from_slice(&0u32.to_ne_bytes());
    key
}

/// A cgroup whose tasks the loaded object follows as one service.
struct Registered {
    service: String,
    flags: ServiceFlags,
    path: PathBuf,
    level: u32,
    /// The words of its own excluded ports written in `service_ports`.
    port_words: Vec<u32>,
    // The sockops link before the folder it is attached to.
    _link: Link,
    _dir: File,
}

/// The loaded add-on and the cgroups registered with it; dropping it
/// detaches everything.
pub struct Agent {
    // Field order is drop order: the cgroups' sockops links first, then the
    // global links, then the object (programs and maps).
    cgroups: BTreeMap<u64, Registered>,
    links: Vec<Link>,
    object: Object,
    syscall_hooks: SyscallHooks,
    /// See `service_cache` and `task_storage`.
    features: Features,
    pins: Option<PinDir>,
    /// What loading found of an earlier agent's pins, for the first line.
    pub takeover: Option<String>,
    /// This agent's epoch in `control`: thread values written under an
    /// earlier agent's are never sent.
    epoch: u32,
}

/// The first N 64-bit counters of a per-CPU map value, each summed over
/// the CPUs' copies.
fn sum_over_cpus<const N: usize>(cpus: &[Vec<u8>]) -> [u64; N] {
    let mut sums = [0u64; N];
    for cpu in cpus {
        for (i, sum) in sums.iter_mut().enumerate() {
            let n = cpu
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_ne_bytes);
            *sum = sum.wrapping_add(n);
        }
    }
    sums
}

/// The running kernel's release, as `uname -r` prints it, for messages.
fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| format!("Linux {}", u.release().to_string_lossy()))
        .unwrap_or_else(|_| "a kernel whose release is unknown".into())
}

fn check_cgroup(path: &Path) -> Result<File, AgentError> {
    if !path.join("cgroup.controllers").exists() {
        return Err(AgentError::Cgroup(format!(
            "{} is not a cgroup v2 folder (no cgroup.controllers); cgroup v2 is usually mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified",
            path.display()
        )));
    }
    File::open(path).map_err(|e| AgentError::Cgroup(format!("cannot open {}: {e}", path.display())))
}

impl Agent {
    /// Loads the object for one service in `cfg.cgroup` and attaches it.
    /// `verbose` echoes libbpf's messages on stderr.
    pub fn start(cfg: &AgentConfig, verbose: bool) -> Result<Agent, AgentError> {
        config_bytes(&cfg.service, cfg.flags).map_err(AgentError::Config)?;
        check_cgroup(&cfg.cgroup)?;
        let mut agent = Agent::load_sized(
            cfg.object.as_deref(),
            cfg.hooks,
            verbose,
            None,
            Some(THREADS_ONE_SERVICE),
            Exclusions {
                all: &cfg.excluded_ports,
                per_service: false,
            },
        )?;
        agent.register(&cfg.cgroup, &cfg.service, cfg.flags, &NO_PORTS)?;
        Ok(agent)
    }

    /// Loads the object (`None`: the embedded one) with no cgroup
    /// registered yet, and attaches what is not tied to a cgroup: sk_msg to
    /// the sockhash and the tp_btf programs.
    ///
    /// With `pins`, the maps are pinned there, or taken over from an earlier
    /// agent that pinned them (see `pins`): the sockets it followed stay
    /// followed.
    /// Connections to the `excluded` ports never enter the sockhash.
    pub fn load(
        object: Option<&[u8]>,
        hooks: HookChoice,
        verbose: bool,
        pins: Option<&Path>,
        excluded: Exclusions<'_>,
    ) -> Result<Agent, AgentError> {
        Agent::load_sized(object, hooks, verbose, pins, None, excluded)
    }

    /// `load`, with room for `threads` threads in the map `threads` (`None`:
    /// the object's, sized for a node).
    fn load_sized(
        object: Option<&[u8]>,
        hooks: HookChoice,
        verbose: bool,
        pins: Option<&Path>,
        threads: Option<u32>,
        excluded: Exclusions<'_>,
    ) -> Result<Agent, AgentError> {
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(AgentError::NoBtf(
                "/sys/kernel/btf/vmlinux is missing: the kernel was built without BTF (CONFIG_DEBUG_INFO_BTF=y is needed for CO-RE and tp_btf)".into(),
            ));
        }
        start_capture(verbose);

        let bytes = object.unwrap_or(OBJECT);
        // An older object would follow those connections all the same.
        if !excluded.all.is_empty() && !has_port_bitmap(bytes) {
            return Err(AgentError::Config(format!(
                "the eBPF object predates excluded outbound ports (it has no `{PORTS_SECTION}`), so it would follow connections to {}: load the object of this copperc",
                excluded.all
            )));
        }
        if excluded.per_service && !has_service_ports(bytes) {
            return Err(AgentError::Config(format!(
                "the eBPF object predates a service's own excluded outbound ports (it has no `{SERVICE_PORTS_SECTION}`), so it would follow those connections: load the object of this copperc"
            )));
        }
        let pins = pins.map(PinDir::prepare).transpose()?;
        let had_pins = pins.as_ref().is_some_and(|p| p.map("socks").exists());
        let mut takeover = had_pins.then(|| "took over the pinned maps of an earlier agent".to_string());
        let (object, features) = match load_object(bytes, pins.as_ref(), threads, excluded, verbose) {
            Ok(o) => o,
            Err(e) if had_pins && pins_do_not_fit(&e) => {
                // Pins of an object with other maps (another version):
                // start afresh, which loses the connections they followed.
                if let Some(p) = &pins {
                    p.remove_maps()
                        .map_err(|e| AgentError::Config(format!("cannot remove the pinned maps: {e}")))?;
                }
                takeover = Some("replaced the pinned maps of an incompatible earlier object".into());
                load_object(bytes, pins.as_ref(), threads, excluded, verbose)
                    .map_err(|e| kernel_error("load the eBPF programs", &e))?
            }
            Err(e) => return Err(kernel_error("load the eBPF programs", &e)),
        };
        let mut agent = Agent {
            cgroups: BTreeMap::new(),
            links: Vec::new(),
            object,
            syscall_hooks: SyscallHooks::TpBtf { why: String::new() },
            features,
            pins,
            takeover,
            epoch: 0,
        };
        let (threads, unused) = if features.task_storage {
            ("tasks", "threads")
        } else {
            ("threads", "tasks")
        };
        for name in ["services", "levels", "socks", "stats", "control", threads] {
            agent.map(name)?;
        }
        // An earlier agent that kept the threads' state in the other map
        // left its pin: nothing uses it now.
        if let Some(p) = &agent.pins {
            match std::fs::remove_file(p.map(unused)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(AgentError::Config(format!(
                        "cannot remove the unused pinned map `{unused}`: {e}"
                    )));
                }
                _ => {}
            }
        }
        // An earlier agent's thread values are stale: nothing is sent until
        // this agent's receive hooks are attached, and then only values
        // written since (a new epoch).
        agent.epoch = agent.control_epoch()?.wrapping_add(1);
        agent.set_control(true, 0)?;
        agent.attach(hooks)?;
        agent.keep_alive()?;
        take_log();
        Ok(agent)
    }

    /// The epoch in `control`: an earlier agent's, with pinned maps.
    fn control_epoch(&self) -> Result<u32, AgentError> {
        let value = self
            .map("control")?
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| kernel_error("read map `control`", &e))?;
        Ok(value
            .and_then(|v| v.get(4..8).and_then(|b| b.try_into().ok()))
            .map_or(0, u32::from_ne_bytes))
    }

    /// Writes `struct copper_control` (ebpf/copper_ctx.h): paused, epoch,
    /// alive_until.
    fn set_control(&self, paused: bool, alive_until: u64) -> Result<(), AgentError> {
        let mut value = [0u8; 16];
        value[..4].copy_from_slice(&u32::from(paused).to_ne_bytes());
        value[4..8].copy_from_slice(&self.epoch.to_ne_bytes());
        value[8..].copy_from_slice(&alive_until.to_ne_bytes());
        self.map("control")?
            .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|e| kernel_error("write map `control`", &e))
    }

    /// Lets the object send for `ALIVE_FOR` more (with pins; without, the
    /// object goes away with the agent, so no deadline is set). A pinning
    /// agent calls it every `RENEW_EVERY`.
    pub fn keep_alive(&self) -> Result<(), AgentError> {
        let until = if self.pins.is_some() {
            let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                .map_err(|e| AgentError::Config(format!("cannot read CLOCK_MONOTONIC: {e}")))?;
            let now_ns =
                u64::try_from(now.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec()).unwrap_or(0);
            now_ns + u64::try_from(ALIVE_FOR.as_nanos()).unwrap_or(u64::MAX)
        } else {
            0
        };
        self.set_control(false, until)
    }

    /// Detaches the receive hooks and leaves the pinned maps and links for
    /// the next agent, paused (without pins, the same as dropping it).
    pub fn stop_for_takeover(self) {
        if self.pins.is_some() {
            // Best effort: the next agent pauses as well, and moves the epoch on.
            let _ = self.set_control(true, 0);
        }
        drop(self);
    }

    /// Removes the pins of links to cgroups that are not registered (pods
    /// that went away while no agent ran). Returns how many.
    pub fn prune_pins(&mut self) -> usize {
        let Some(pins) = &self.pins else { return 0 };
        let mut n = 0;
        for id in pins.linked_ids() {
            if !self.cgroups.contains_key(&id) && std::fs::remove_file(pins.link(id)).is_ok() {
                n += 1;
            }
        }
        n
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>, AgentError> {
        self.object.maps().find(|m| m.name() == name).ok_or_else(|| {
            AgentError::Config(format!(
                "the eBPF object has no map `{name}`: it does not match this copperc"
            ))
        })
    }

    fn attach(&mut self, hooks: HookChoice) -> Result<(), AgentError> {
        let socks_fd = self.map("socks")?.as_fd().as_raw_fd();
        let mut links = Vec::new();
        // sk_msg first: sockets that sockops adds must find it attached.
        for prog in self.object.progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            match name.as_str() {
                "copper_sk_msg" => prog
                    .attach_sockmap(socks_fd)
                    .map_err(|e| kernel_error("attach sk_msg to the sockhash", &e))?,
                "copper_sockops" => {}
                n if TRACEPOINT_PROGS.contains(&n) || TP_BTF_PROGS.contains(&n) || SOCKET_PROGS.contains(&n) => {}
                other => {
                    return Err(AgentError::Config(format!(
                        "the eBPF object has an unexpected program `{other}`: it does not match this copperc"
                    )));
                }
            }
        }
        // At the socket when the kernel has `sock_recv_length` (6.4 and
        // later): no syscall is traced at all.
        let socket_why = match hooks {
            // Its programs were not loaded: attaching them would fail with
            // libbpf's "no FD", which says nothing of the kernel.
            HookChoice::Socket if !self.features.socket_hook => {
                return Err(AgentError::Kernel {
                    step: "attach the socket receive hook (tp_btf sock_recv_length)".into(),
                    detail: format!(
                        "the kernel's BTF has no `sock_recv_length` tracepoint, which came in Linux 6.4 (this is {}); \
                         `--syscall-hooks auto` falls back to the syscall tracepoints",
                        kernel_release()
                    ),
                    log: Vec::new(),
                });
            }
            HookChoice::Auto if !self.features.socket_hook => "no socket receive tracepoint (Linux 6.4)".to_string(),
            HookChoice::Auto | HookChoice::Socket => match self.attach_all(&SOCKET_PROGS) {
                Ok(l) => {
                    links.extend(l);
                    self.syscall_hooks = SyscallHooks::Socket;
                    self.links = links;
                    return Ok(());
                }
                Err(e) if hooks == HookChoice::Socket => return Err(e),
                Err(e) => {
                    take_log();
                    format!("no socket receive tracepoint ({e})")
                }
            },
            HookChoice::Tracepoints | HookChoice::TpBtf => String::new(),
        };
        let tracefs = match hooks {
            HookChoice::TpBtf => super::tracefs::Tracefs::Missing("chosen with --syscall-hooks tp-btf".into()),
            HookChoice::Auto | HookChoice::Tracepoints | HookChoice::Socket => super::tracefs::ensure(),
        };
        let attempt = match &tracefs {
            super::tracefs::Tracefs::Missing(why) => Err(why.clone()),
            super::tracefs::Tracefs::Present(_) | super::tracefs::Tracefs::Mounted(_) => {
                self.attach_all(&TRACEPOINT_PROGS).map_err(|e| e.to_string())
            }
        };
        match (attempt, hooks) {
            (Ok(l), _) => {
                links.extend(l);
                self.syscall_hooks = SyscallHooks::Tracepoints {
                    mounted: match tracefs {
                        super::tracefs::Tracefs::Mounted(p) => Some(p),
                        _ => None,
                    },
                    why: socket_why,
                };
            }
            (Err(why), HookChoice::Tracepoints) => {
                return Err(AgentError::Kernel {
                    step: "attach the syscall tracepoints".into(),
                    detail: why,
                    log: Vec::new(),
                });
            }
            (Err(why), _) => {
                take_log();
                links.extend(self.attach_all(&TP_BTF_PROGS)?);
                self.syscall_hooks = SyscallHooks::TpBtf {
                    why: if socket_why.is_empty() {
                        why
                    } else {
                        format!("{socket_why}; {why}")
                    },
                };
            }
        }
        self.links = links;
        Ok(())
    }

    /// Attaches the programs `names` at their sections' attach points: all
    /// of them, or none (the links made so far close on error).
    fn attach_all(&mut self, names: &[&str]) -> Result<Vec<Link>, AgentError> {
        let mut links = Vec::new();
        for name in names {
            let prog = self
                .object
                .progs_mut()
                .find(|p| p.name() == *name)
                .ok_or_else(|| AgentError::Config(format!("the eBPF object has no program `{name}`")))?;
            links.push(
                prog.attach()
                    .map_err(|e| kernel_error(&format!("attach `{name}`"), &e))?,
            );
        }
        Ok(links)
    }

    /// Whether the object caches each cgroup's service (not on a kernel
    /// without cgroup storage).
    pub fn service_cache(&self) -> bool {
        self.features.service_cache
    }

    /// Whether the object keeps the threads' state in task storage (not on
    /// a kernel whose sk_msg programs may not use it, nor with
    /// `COPPERC_AGENT_NO_TASK_STORAGE` set).
    pub fn task_storage(&self) -> bool {
        self.features.task_storage
    }

    /// Whether an HTTP/1.x read that brought a context is checked to hold
    /// one request: only the socket receive hook checks (the syscall hooks'
    /// programs, the fallback before Linux 6.4, leave it out, see
    /// `on_exit` in the object).
    pub fn one_request_per_read_check(&self) -> bool {
        matches!(self.syscall_hooks, SyscallHooks::Socket)
    }

    /// Which syscall hooks are attached, and why.
    pub fn syscall_hooks(&self) -> &SyscallHooks {
        &self.syscall_hooks
    }

    /// Follows the tasks of the cgroup v2 folder `cgroup` and of its
    /// descendants as `service`: stores the service under the cgroup's id
    /// and attaches sockops to the cgroup. Registering the same cgroup
    /// again with the same service is a no-op; with another, an error.
    /// Returns the cgroup's id.
    /// Connections that its tasks open to `ports` are not followed (the
    /// object must have been loaded with `Exclusions::per_service`).
    pub fn register(
        &mut self,
        cgroup: &Path,
        service: &str,
        flags: ServiceFlags,
        ports: &PortSet,
    ) -> Result<u64, AgentError> {
        let config = config_bytes(service, flags).map_err(AgentError::Config)?;
        // An object older than the flag has fewer counters, and takes any
        // non-zero flags word for an entry point: it would send `/<service>`.
        if flags.one_request_per_thread && (self.map("stats")?.max_entries() as usize) < STATS.len() {
            return Err(AgentError::Config(
                "the eBPF object predates one-request-per-thread services (it would take them for entry points): load the object of this copperc".into(),
            ));
        }
        let dir = check_cgroup(cgroup)?;
        let meta = dir
            .metadata()
            .map_err(|e| AgentError::Cgroup(format!("cannot read {}: {e}", cgroup.display())))?;
        // The id of a cgroup v2 folder is its inode number.
        let id = meta.ino();
        if let Some(r) = self.cgroups.get(&id) {
            if r.service == service && r.flags == flags {
                return Ok(id);
            }
            return Err(AgentError::Config(format!(
                "cgroup {} is already registered as `{}`{}",
                cgroup.display(),
                r.service,
                r.flags.describe()
            )));
        }
        if self.cgroups.len() >= MAX_SERVICES {
            return Err(AgentError::Config(format!(
                "cannot follow more than {MAX_SERVICES} cgroups with one agent"
            )));
        }
        let level = cgroup_level(cgroup)?;
        // Before the service and its sockops: its first connection already
        // finds its list.
        let port_words = self.write_service_ports(id, ports)?;
        if let Err(e) = self.map("services")?.update(&id.to_ne_bytes(), &config, MapFlags::ANY) {
            self.delete_service_ports(id, &port_words);
            return Err(kernel_error("store the service in map `services`", &e));
        }
        let mut levels: BTreeSet<u32> = self.cgroups.values().map(|r| r.level).collect();
        levels.insert(level);
        if levels.len() > MAX_LEVELS {
            self.forget(id);
            return Err(AgentError::Config(format!(
                "the registered cgroups lie at more than {MAX_LEVELS} different depths of the cgroup tree"
            )));
        }
        if let Err(e) = self.write_levels(&levels) {
            self.forget(id);
            return Err(e);
        }
        let pinned = self.pins.as_ref().map(|p| p.link(id));
        let mut link = None;
        for prog in self.object.progs() {
            if prog.name() != "copper_sockops" {
                continue;
            }
            // An earlier agent's link to this cgroup: swap the program in.
            if let Some(mut old) = pinned.as_ref().filter(|p| p.exists()).and_then(|p| Link::open(p).ok()) {
                if old.update_prog(&prog).is_ok() {
                    link = Some(Ok(old));
                    break;
                }
                let _ = old.unpin();
            }
        }
        if link.is_none() {
            for prog in self.object.progs_mut() {
                if prog.name() == "copper_sockops" {
                    link = Some(prog.attach_cgroup(dir.as_raw_fd()).and_then(|mut l| {
                        if let Some(p) = &pinned {
                            l.pin(p)?;
                        }
                        Ok(l)
                    }));
                }
            }
        }
        let link = match link {
            Some(Ok(l)) => l,
            Some(Err(e)) => {
                let err = kernel_error(&format!("attach sockops to cgroup {}", cgroup.display()), &e);
                self.forget(id);
                return Err(err);
            }
            None => {
                self.forget(id);
                return Err(AgentError::Config(
                    "the eBPF object has no program `copper_sockops`".into(),
                ));
            }
        };
        self.cgroups.insert(
            id,
            Registered {
                service: service.to_string(),
                flags,
                path: cgroup.to_path_buf(),
                level,
                port_words,
                _link: link,
                _dir: dir,
            },
        );
        take_log();
        Ok(id)
    }

    /// Stops following the cgroup `id` (detaches its sockops).
    pub fn unregister(&mut self, id: u64) {
        if let Some(mut r) = self.cgroups.remove(&id) {
            if self.pins.is_some() {
                // Not pinned: nothing to remove.
                let _ = r._link.unpin();
            }
            self.forget(id);
            self.delete_service_ports(id, &r.port_words);
        }
    }

    /// Writes the words of `ports`' bitmap that have a port, keyed by the
    /// cgroup `id`, into `service_ports`; returns their indexes.
    fn write_service_ports(&self, id: u64, ports: &PortSet) -> Result<Vec<u32>, AgentError> {
        if ports.is_empty() {
            return Ok(Vec::new());
        }
        let map = self.map(SERVICE_PORTS_MAP).map_err(|_| {
            AgentError::Config(
                "this agent was loaded without services' own excluded ports (no map `service_ports`)".into(),
            )
        })?;
        let mut written = Vec::new();
        for (word, bits) in ports.bitmap().chunks_exact(4).enumerate() {
            if bits.iter().all(|b| *b == 0) {
                continue;
            }
            let word = u32::try_from(word).unwrap_or(u32::MAX);
            if let Err(e) = map.update(&service_port_key(id, word), bits, MapFlags::ANY) {
                self.delete_service_ports(id, &written);
                return Err(kernel_error("store a service's ports in map `service_ports`", &e));
            }
            written.push(word);
        }
        Ok(written)
    }

    fn delete_service_ports(&self, id: u64, words: &[u32]) {
        if let Ok(map) = self.map(SERVICE_PORTS_MAP) {
            for word in words {
                // Absent already: nothing to undo.
                let _ = map.delete(&service_port_key(id, *word));
            }
        }
    }

    /// The registered cgroups: (id, folder, service).
    pub fn registered(&self) -> impl Iterator<Item = (u64, &Path, &str)> {
        self.cgroups
            .iter()
            .map(|(id, r)| (*id, r.path.as_path(), r.service.as_str()))
    }

    /// Removes `id` from the maps (not from `cgroups`).
    fn forget(&mut self, id: u64) {
        if let Ok(m) = self.map("services") {
            // Absent already: nothing to undo.
            let _ = m.delete(&id.to_ne_bytes());
        }
        let levels: BTreeSet<u32> = self
            .cgroups
            .iter()
            .filter(|(k, _)| **k != id)
            .map(|(_, r)| r.level)
            .collect();
        // Stale depths only cost lookups, never a wrong match.
        let _ = self.write_levels(&levels);
    }

    /// Writes the depths, then moves `services_gen` on: every change to
    /// `services` ends here, and the tasks' cached services are then found
    /// again.
    fn write_levels(&self, levels: &BTreeSet<u32>) -> Result<(), AgentError> {
        let map = self.map("levels")?;
        let deepest_first: Vec<u32> = levels.iter().rev().copied().collect();
        for slot in 0..MAX_LEVELS {
            let value = deepest_first.get(slot).copied().unwrap_or(0);
            let key = u32::try_from(slot).unwrap_or(0).to_ne_bytes();
            map.update(&key, &value.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| kernel_error("store the cgroup depths in map `levels`", &e))?;
        }
        self.next_services_gen()
    }

    /// Moves `services_gen` on, past 0 (which means: nothing is cached).
    /// An object without the map (an older build, loaded with `--object`
    /// to compare) caches nothing.
    fn next_services_gen(&self) -> Result<(), AgentError> {
        let Ok(map) = self.map("services_gen") else {
            return Ok(());
        };
        let key = 0u32.to_ne_bytes();
        let now = map
            .lookup(&key, MapFlags::ANY)
            .map_err(|e| kernel_error("read map `services_gen`", &e))?
            .and_then(|v| v.get(..4).and_then(|b| b.try_into().ok()))
            .map_or(0, u32::from_ne_bytes);
        let next = match now.wrapping_add(1) {
            0 => 1,
            n => n,
        };
        map.update(&key, &next.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| kernel_error("write map `services_gen`", &e))
    }

    /// The `stats` counters: (name, value).
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        let Ok(map) = self.map("stats") else {
            return Vec::new();
        };
        STATS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let key = u32::try_from(i).unwrap_or(0).to_ne_bytes();
                // A per-CPU array: one count per CPU, summed here.
                let value = map
                    .lookup_percpu(&key, MapFlags::ANY)
                    .ok()
                    .flatten()
                    .map_or(0, |cpus| sum_over_cpus::<1>(&cpus)[0]);
                (*name, value)
            })
            .collect()
    }

    /// The `cgroup_stats` counters of each cgroup whose tasks met one,
    /// summed over the CPUs; `None` for an object without the map (an
    /// older build, loaded with `--object` to compare).
    pub fn cgroup_stats(&self) -> Option<BTreeMap<u64, ReasonCounts>> {
        let map = self.map(CGROUP_STATS_MAP).ok()?;
        let mut out = BTreeMap::new();
        for key in map.keys() {
            let Some(id) = key.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes) else {
                continue;
            };
            // Deleted since the keys were listed: nothing to add.
            let Ok(Some(cpus)) = map.lookup_percpu(&key, MapFlags::ANY) else {
                continue;
            };
            out.insert(id, sum_over_cpus::<{ CGROUP_STATS.len() }>(&cpus));
        }
        Some(out)
    }

    /// Removes the counters of cgroup `id` from `cgroup_stats` (a cgroup
    /// that is gone: the map would otherwise fill up).
    pub fn forget_cgroup_stats(&self, id: u64) {
        if let Ok(map) = self.map(CGROUP_STATS_MAP) {
            // Absent already: nothing to undo.
            let _ = map.delete(&id.to_ne_bytes());
        }
    }

    /// Detaches everything (the same as dropping the agent).
    pub fn stop(self) {
        drop(self);
    }
}
