//! The loader behind `copperc agent`: loads the embedded object (or a given
//! one) once with libbpf-rs, attaches sk_msg to the sockhash and the
//! syscall tracepoints (tp_btf), then follows any number of cgroups, each as
//! one service: `register` stores the service under the cgroup's id in the
//! `services` map and attaches sockops to the cgroup. One loaded object
//! serves every service of a node, so the per-syscall hooks run once, not
//! once per service. Dropping the `Agent` detaches everything: the links
//! close, and with the last reference to the sockhash its sockets leave it
//! and sk_msg stops running on them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, Object, ObjectBuilder, PrintLevel};

use super::cgroup::cgroup_level;
use super::pins::PinDir;
use super::{MAX_LEVELS, MAX_SERVICES, OBJECT, STATS, config_bytes};

/// What the agent is asked to do.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub service: String,
    pub cgroup: PathBuf,
    pub entrypoint: bool,
    pub hooks: HookChoice,
    /// The object to load: `None` for the one embedded in copperc, else the
    /// bytes of a file (such as the `ebpf/copper_ctx.bpf.o` that
    /// `copperc compile` writes, which is the same object).
    pub object: Option<Vec<u8>>,
}

/// Why the agent could not start. Each says what to do about it.
#[derive(Debug)]
pub enum AgentError {
    Config(String),
    Cgroup(String),
    NoBtf(String),
    Permission {
        step: String,
        detail: String,
    },
    Verifier {
        program: String,
        detail: String,
        log: Vec<String>,
    },
    Kernel {
        step: String,
        detail: String,
        log: Vec<String>,
    },
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Config(m) | AgentError::Cgroup(m) | AgentError::NoBtf(m) => f.write_str(m),
            AgentError::Permission { step, detail } => write!(
                f,
                "the kernel refused to {step}: permission denied ({detail}); run as root, or with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN"
            ),
            AgentError::Verifier { program, detail, log } => {
                write!(f, "the kernel's verifier rejected program `{program}` ({detail})")?;
                if !log.is_empty() {
                    write!(f, "; end of the verifier log:")?;
                    for line in log {
                        write!(f, "\n    {line}")?;
                    }
                }
                Ok(())
            }
            AgentError::Kernel { step, detail, log } => {
                write!(f, "cannot {step}: {detail}")?;
                for line in log {
                    write!(f, "\n    {line}")?;
                }
                Ok(())
            }
        }
    }
}

/// libbpf's messages while loading (the verifier log among them).
static LIBBPF_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn capture(level: PrintLevel, msg: String) {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) || matches!(level, PrintLevel::Warn) {
        if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
            eprint!("{msg}");
        }
        if let Ok(mut log) = LIBBPF_LOG.lock() {
            log.extend(msg.lines().map(str::to_string));
        }
    }
}

fn take_log() -> Vec<String> {
    LIBBPF_LOG
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

/// The last lines of the verifier log that libbpf printed, if any.
fn verifier_excerpt(log: &[String]) -> Vec<String> {
    let start = log.iter().rposition(|l| l.contains("BEGIN PROG LOAD LOG"));
    let end = log.iter().rposition(|l| l.contains("END PROG LOAD LOG"));
    let body: Vec<&String> = match (start, end) {
        (Some(s), Some(e)) if s < e => log[s + 1..e].iter().collect(),
        _ => log.iter().collect(),
    };
    let skip = body.len().saturating_sub(20);
    body.into_iter().skip(skip).map(|l| l.trim_end().to_string()).collect()
}

/// The program named in libbpf's "prog 'NAME': ... failed to load" line.
fn failed_program(log: &[String]) -> Option<String> {
    log.iter().rev().find_map(|l| {
        let rest = l.split("prog '").nth(1)?;
        let name = rest.split('\'').next()?;
        (l.contains("failed to load") || l.contains("BEGIN PROG LOAD LOG")).then(|| name.to_string())
    })
}

fn kernel_error(step: &str, err: &libbpf_rs::Error) -> AgentError {
    let log = take_log();
    // The verifier answers EACCES (or EINVAL) with a log; EPERM without one
    // is a missing capability.
    let program = failed_program(&log);
    if let Some(program) = program.filter(|_| log.iter().any(|l| l.contains("BEGIN PROG LOAD LOG"))) {
        return AgentError::Verifier {
            program,
            detail: err.to_string(),
            log: verifier_excerpt(&log),
        };
    }
    if err.kind() == ErrorKind::PermissionDenied {
        return AgentError::Permission {
            step: step.to_string(),
            detail: err.to_string(),
        };
    }
    AgentError::Kernel {
        step: step.to_string(),
        detail: err.to_string(),
        log: log.iter().rev().take(10).rev().cloned().collect(),
    }
}

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
    /// the add-on reads; `mounted`: the agent mounted tracefs there.
    Tracepoints { mounted: Option<PathBuf> },
    /// `tp_btf/sys_enter` and `tp_btf/sys_exit`: run for every syscall on the
    /// machine and cost much more; `why` the tracepoints were not used.
    TpBtf { why: String },
}

impl fmt::Display for SyscallHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyscallHooks::Socket => f.write_str("socket receive hook (tp_btf sock_recv_length), no syscall traced"),
            SyscallHooks::Tracepoints { mounted: None } => f.write_str("syscall tracepoints"),
            SyscallHooks::Tracepoints { mounted: Some(p) } => {
                write!(f, "syscall tracepoints; mounted tracefs at {}", p.display())
            }
            SyscallHooks::TpBtf { why } => write!(
                f,
                "tp_btf sys_enter/sys_exit, which run for every syscall of the machine: {why}"
            ),
        }
    }
}

/// How long the object sends after the last `keep_alive` of a pinning
/// agent: an agent that is killed stops renewing it, and the stale values of
/// the threads stop going out within that time.
pub const ALIVE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the object, pins its maps in `pins` (or reuses the pinned ones) and
/// loads it.
fn open_and_load(bytes: &[u8], pins: Option<&PinDir>) -> Result<Object, libbpf_rs::Error> {
    let mut open = ObjectBuilder::default().open_memory(bytes)?;
    // A tp_btf program needs its tracepoint in the kernel's BTF to load at
    // all; without it (before Linux 6.4) the object loads without the
    // socket hook, and the agent falls back to the syscall hooks.
    if !kernel_has_btf_name(b"btf_trace_sock_recv_length") {
        for mut prog in open.progs_mut() {
            if SOCKET_PROGS.iter().any(|n| prog.name() == *n) {
                prog.set_autoload(false);
            }
        }
    }
    if let Some(p) = pins {
        for mut map in open.maps_mut() {
            let name = map.name().to_string_lossy().into_owned();
            // Per-CPU working memory and read-only constants: nothing to
            // hand on.
            if name != "scratch" && !name.starts_with('.') {
                map.set_pin_path(p.map(&name))?;
            }
        }
    }
    open.load()
}

/// Whether the running kernel's BTF has a type (or other string) `name`.
fn kernel_has_btf_name(name: &[u8]) -> bool {
    std::fs::read("/sys/kernel/btf/vmlinux").is_ok_and(|btf| {
        btf.windows(name.len() + 2).any(|w| {
            // A whole NUL-terminated string of the string table.
            w[0] == 0 && w[w.len() - 1] == 0 && &w[1..w.len() - 1] == name
        })
    })
}

/// Whether libbpf's messages so far mention `what`.
fn take_log_mentions(what: &str) -> bool {
    LIBBPF_LOG
        .lock()
        .map(|l| l.iter().any(|line| line.contains(what)))
        .unwrap_or(false)
}

/// The programs on the syscall tracepoints, in attach order (enter first).
const TRACEPOINT_PROGS: [&str; 4] = [
    "copper_enter_close",
    "copper_exit_read",
    "copper_exit_recvfrom",
    "copper_exit_recvmsg",
];

/// At the socket: no syscall traced.
const SOCKET_PROGS: [&str; 1] = ["copper_sock_recv"];

/// Their fallback without tracefs.
const TP_BTF_PROGS: [&str; 2] = ["copper_sys_enter", "copper_sys_exit"];

/// A cgroup whose tasks the loaded object follows as one service.
struct Registered {
    service: String,
    entrypoint: bool,
    path: PathBuf,
    level: u32,
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
    pins: Option<PinDir>,
    /// What loading found of an earlier agent's pins, for the first line.
    pub takeover: Option<String>,
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
        config_bytes(&cfg.service, cfg.entrypoint).map_err(AgentError::Config)?;
        check_cgroup(&cfg.cgroup)?;
        let mut agent = Agent::load(cfg.object.as_deref(), cfg.hooks, verbose, None)?;
        agent.register(&cfg.cgroup, &cfg.service, cfg.entrypoint)?;
        Ok(agent)
    }

    /// Loads the object (`None`: the embedded one) with no cgroup
    /// registered yet, and attaches what is not tied to a cgroup: sk_msg to
    /// the sockhash and the tp_btf programs.
    ///
    /// With `pins`, the maps are pinned there, or taken over from an earlier
    /// agent that pinned them (see `pins`): the sockets it followed stay
    /// followed.
    pub fn load(
        object: Option<&[u8]>,
        hooks: HookChoice,
        verbose: bool,
        pins: Option<&Path>,
    ) -> Result<Agent, AgentError> {
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(AgentError::NoBtf(
                "/sys/kernel/btf/vmlinux is missing: the kernel was built without BTF (CONFIG_DEBUG_INFO_BTF=y is needed for CO-RE and tp_btf)".into(),
            ));
        }
        VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
        take_log();
        libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));

        let bytes = object.unwrap_or(OBJECT);
        let pins = pins.map(PinDir::prepare).transpose()?;
        let had_pins = pins.as_ref().is_some_and(|p| p.map("socks").exists());
        let mut takeover = had_pins.then(|| "took over the pinned maps of an earlier agent".to_string());
        let object = match open_and_load(bytes, pins.as_ref()) {
            Ok(o) => o,
            Err(e) if had_pins && (e.to_string().contains("reuse") || take_log_mentions("reuse pinned map")) => {
                // Pins of an object with other maps (another version):
                // start afresh, which loses the connections they followed.
                if let Some(p) = &pins {
                    p.remove_maps()
                        .map_err(|e| AgentError::Config(format!("cannot remove the pinned maps: {e}")))?;
                }
                takeover = Some("replaced the pinned maps of an incompatible earlier object".into());
                open_and_load(bytes, pins.as_ref()).map_err(|e| kernel_error("load the eBPF programs", &e))?
            }
            Err(e) => return Err(kernel_error("load the eBPF programs", &e)),
        };
        let mut agent = Agent {
            cgroups: BTreeMap::new(),
            links: Vec::new(),
            object,
            syscall_hooks: SyscallHooks::TpBtf { why: String::new() },
            pins,
            takeover,
        };
        for name in ["services", "levels", "socks", "stats", "control", "thread_ctx"] {
            agent.map(name)?;
        }
        // An earlier agent's thread values are stale: nothing is sent until
        // this agent's receive hooks are attached.
        agent.set_control(true, 0)?;
        agent.clear_thread_values();
        agent.attach(hooks)?;
        agent.keep_alive()?;
        take_log();
        Ok(agent)
    }

    /// Writes `struct copper_control` (ebpf/copper_ctx.h): paused, pad,
    /// alive_until.
    fn set_control(&self, paused: bool, alive_until: u64) -> Result<(), AgentError> {
        let mut value = [0u8; 16];
        value[..4].copy_from_slice(&u32::from(paused).to_ne_bytes());
        value[8..].copy_from_slice(&alive_until.to_ne_bytes());
        self.map("control")?
            .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|e| kernel_error("write map `control`", &e))
    }

    /// Lets the object send for `ALIVE_FOR` more (with pins; without, the
    /// object goes away with the agent, so no deadline is set). A pinning
    /// agent calls it at least every `ALIVE_FOR / 5`.
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

    fn clear_thread_values(&self) {
        if let Ok(map) = self.map("thread_ctx") {
            let keys: Vec<Vec<u8>> = map.keys().collect();
            for k in keys {
                // Gone already (LRU): nothing to clear.
                let _ = map.delete(&k);
            }
        }
    }

    /// Detaches the receive hooks and leaves the pinned maps and links for
    /// the next agent, paused (without pins, the same as dropping it).
    pub fn stop_for_takeover(self) {
        if self.pins.is_some() {
            // Best effort: the next agent pauses and clears as well.
            let _ = self.set_control(true, 0);
            self.clear_thread_values();
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
                    format!("no socket receive tracepoint ({e}); ")
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
                    why: format!("{socket_why}{why}"),
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

    /// Which syscall hooks are attached, and why.
    pub fn syscall_hooks(&self) -> &SyscallHooks {
        &self.syscall_hooks
    }

    /// Follows the tasks of the cgroup v2 folder `cgroup` and of its
    /// descendants as `service`: stores the service under the cgroup's id
    /// and attaches sockops to the cgroup. Registering the same cgroup
    /// again with the same service is a no-op; with another, an error.
    /// Returns the cgroup's id.
    pub fn register(&mut self, cgroup: &Path, service: &str, entrypoint: bool) -> Result<u64, AgentError> {
        let config = config_bytes(service, entrypoint).map_err(AgentError::Config)?;
        let dir = check_cgroup(cgroup)?;
        let meta = dir
            .metadata()
            .map_err(|e| AgentError::Cgroup(format!("cannot read {}: {e}", cgroup.display())))?;
        // The id of a cgroup v2 folder is its inode number.
        let id = meta.ino();
        if let Some(r) = self.cgroups.get(&id) {
            if r.service == service && r.entrypoint == entrypoint {
                return Ok(id);
            }
            return Err(AgentError::Config(format!(
                "cgroup {} is already registered as `{}`{}",
                cgroup.display(),
                r.service,
                if r.entrypoint { " (entry point)" } else { "" }
            )));
        }
        if self.cgroups.len() >= MAX_SERVICES {
            return Err(AgentError::Config(format!(
                "cannot follow more than {MAX_SERVICES} cgroups with one agent"
            )));
        }
        let level = cgroup_level(cgroup)?;
        self.map("services")?
            .update(&id.to_ne_bytes(), &config, MapFlags::ANY)
            .map_err(|e| kernel_error("store the service in map `services`", &e))?;
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
                entrypoint,
                path: cgroup.to_path_buf(),
                level,
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

    fn write_levels(&self, levels: &BTreeSet<u32>) -> Result<(), AgentError> {
        let map = self.map("levels")?;
        let deepest_first: Vec<u32> = levels.iter().rev().copied().collect();
        for slot in 0..MAX_LEVELS {
            let value = deepest_first.get(slot).copied().unwrap_or(0);
            let key = u32::try_from(slot).unwrap_or(0).to_ne_bytes();
            map.update(&key, &value.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| kernel_error("store the cgroup depths in map `levels`", &e))?;
        }
        Ok(())
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
                let value = map
                    .lookup(&key, MapFlags::ANY)
                    .ok()
                    .flatten()
                    .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
                    .map(u64::from_ne_bytes)
                    .unwrap_or(0);
                (*name, value)
            })
            .collect()
    }

    /// Detaches everything (the same as dropping the agent).
    pub fn stop(self) {
        drop(self);
    }
}
