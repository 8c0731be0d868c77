//! The loader behind `copperc agent`: opens the embedded object with
//! libbpf-rs, writes the service's configuration into its read-only data,
//! loads it, and attaches sockops to the service's cgroup, sk_msg to the
//! sockhash, and the syscall hooks: the tracepoints of read, recvfrom,
//! recvmsg and close when tracefs is mounted, else the generic tp_btf
//! sys_enter/sys_exit, which run for every syscall. Dropping the `Agent`
//! detaches everything: the links close, and with the last reference to the
//! sockhash its sockets leave it and sk_msg stops running on them.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libbpf_rs::{ErrorKind, Link, MapCore, MapFlags, Object, ObjectBuilder, PrintLevel};

use super::{CONFIG_SIZE, OBJECT, STATS, config_bytes};

/// What the agent is asked to do.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub service: String,
    pub cgroup: PathBuf,
    pub entrypoint: bool,
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

/// A loaded and attached add-on; dropping it detaches everything.
pub struct Agent {
    // Field order is drop order: links first, then the object (programs and
    // maps), then the cgroup folder.
    links: Vec<Link>,
    object: Object,
    _cgroup: File,
    syscall_hooks: SyscallHooks,
}

/// Which of the object's two sets of syscall hooks is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallHooks {
    /// `tracepoint/syscalls/sys_{enter,exit}_*`: run only for the syscalls
    /// the add-on reads (needs tracefs).
    Tracepoints,
    /// `tp_btf/sys_enter` and `tp_btf/sys_exit`: run for every syscall on the
    /// machine, and cost much more (the fallback without tracefs).
    TpBtf,
}

impl fmt::Display for SyscallHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyscallHooks::Tracepoints => "syscall tracepoints",
            SyscallHooks::TpBtf => "tp_btf sys_enter/sys_exit (tracefs is not mounted)",
        })
    }
}

/// The programs on the syscall tracepoints, in attach order (enter first).
const TRACEPOINT_PROGS: [&str; 7] = [
    "copper_enter_read",
    "copper_enter_recvfrom",
    "copper_enter_recvmsg",
    "copper_enter_close",
    "copper_exit_read",
    "copper_exit_recvfrom",
    "copper_exit_recvmsg",
];

/// Their fallback without tracefs.
const TP_BTF_PROGS: [&str; 2] = ["copper_sys_enter", "copper_sys_exit"];

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
    /// Loads the object for `cfg` and attaches it. `verbose` echoes libbpf's
    /// messages on stderr.
    pub fn start(cfg: &AgentConfig, verbose: bool) -> Result<Agent, AgentError> {
        let config = config_bytes(&cfg.service, cfg.entrypoint).map_err(AgentError::Config)?;
        let cgroup = check_cgroup(&cfg.cgroup)?;
        if !Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(AgentError::NoBtf(
                "/sys/kernel/btf/vmlinux is missing: the kernel was built without BTF (CONFIG_DEBUG_INFO_BTF=y is needed for CO-RE and tp_btf)".into(),
            ));
        }
        VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
        take_log();
        libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));

        let mut open = ObjectBuilder::default()
            .open_memory(cfg.object.as_deref().unwrap_or(OBJECT))
            .map_err(|e| kernel_error("open the eBPF object", &e))?;
        let mut written = false;
        for mut map in open.maps_mut() {
            if !map.name().to_string_lossy().ends_with(".rodata.config") {
                continue;
            }
            if let Some(data) = map.initial_value_mut().filter(|d| d.len() == CONFIG_SIZE) {
                data.copy_from_slice(&config);
                written = true;
            }
        }
        if !written {
            return Err(AgentError::Config(format!(
                "the embedded object has no {CONFIG_SIZE}-byte `.rodata.config` section: copperc was built from mismatched sources"
            )));
        }
        let object = open.load().map_err(|e| kernel_error("load the eBPF programs", &e))?;
        let mut agent = Agent {
            links: Vec::new(),
            object,
            _cgroup: cgroup,
            syscall_hooks: SyscallHooks::Tracepoints,
        };
        agent.attach()?;
        take_log();
        Ok(agent)
    }

    fn map(&self, name: &str) -> Result<libbpf_rs::Map<'_>, AgentError> {
        self.object
            .maps()
            .find(|m| m.name() == name)
            .ok_or_else(|| AgentError::Config(format!("the embedded object has no map `{name}`")))
    }

    fn attach(&mut self) -> Result<(), AgentError> {
        let cgroup_fd = self._cgroup.as_raw_fd();
        let filter = self.map("cgroup_filter")?;
        let fd_bytes = u32::try_from(cgroup_fd).unwrap_or(0).to_ne_bytes();
        filter
            .update(&0u32.to_ne_bytes(), &fd_bytes, MapFlags::ANY)
            .map_err(|e| kernel_error("store the cgroup in map `cgroup_filter`", &e))?;
        let socks_fd = self.map("socks")?.as_fd().as_raw_fd();
        let mut links = Vec::new();
        // sk_msg first: sockets that sockops adds must find it attached.
        for prog in self.object.progs_mut() {
            let name = prog.name().to_string_lossy().into_owned();
            match name.as_str() {
                "copper_sk_msg" => prog
                    .attach_sockmap(socks_fd)
                    .map_err(|e| kernel_error("attach sk_msg to the sockhash", &e))?,
                "copper_sockops" | "copper_thread_exit" => {}
                n if TRACEPOINT_PROGS.contains(&n) || TP_BTF_PROGS.contains(&n) => {}
                other => {
                    return Err(AgentError::Config(format!(
                        "the embedded object has an unexpected program `{other}`"
                    )));
                }
            }
        }
        for prog in self.object.progs_mut() {
            if prog.name() == "copper_thread_exit" {
                links.push(
                    prog.attach()
                        .map_err(|e| kernel_error("attach `copper_thread_exit` (tp_btf)", &e))?,
                );
            }
        }
        // The syscall tracepoints when tracefs allows, else tp_btf.
        match self.attach_all(&TRACEPOINT_PROGS) {
            Ok(mut l) => {
                links.append(&mut l);
                self.syscall_hooks = SyscallHooks::Tracepoints;
            }
            Err(_) => {
                take_log();
                let mut l = self.attach_all(&TP_BTF_PROGS)?;
                links.append(&mut l);
                self.syscall_hooks = SyscallHooks::TpBtf;
            }
        }
        for prog in self.object.progs_mut() {
            if prog.name() == "copper_sockops" {
                links.push(
                    prog.attach_cgroup(cgroup_fd)
                        .map_err(|e| kernel_error("attach sockops to the cgroup", &e))?,
                );
            }
        }
        self.links = links;
        Ok(())
    }

    /// Attaches the programs `names` (with their section's attach point), in
    /// that order: all of them, or none.
    fn attach_all(&mut self, names: &[&str]) -> Result<Vec<Link>, AgentError> {
        let mut links = Vec::new();
        for name in names {
            let prog = self
                .object
                .progs_mut()
                .find(|p| p.name() == *name)
                .ok_or_else(|| AgentError::Config(format!("the embedded object has no program `{name}`")))?;
            links.push(
                prog.attach()
                    .map_err(|e| kernel_error(&format!("attach `{name}`"), &e))?,
            );
        }
        Ok(links)
    }

    /// Which syscall hooks are attached.
    pub fn syscall_hooks(&self) -> SyscallHooks {
        self.syscall_hooks
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
