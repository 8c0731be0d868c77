//! `copperc agent`: loads the eBPF context-propagation add-on, for one
//! service (`--service --cgroup`) or node-wide (`--config`), and keeps it
//! attached until SIGTERM or SIGINT. `copperc await-agent`: the other end of
//! the node-wide mode, run in each pod (see `ebpf::node`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::SyscallHookArg;
use super::agent_reasons::{Followed, ReasonWatch};
use super::metrics_server::{self, SharedSnapshot};
use super::{AgentArgs, AwaitAgentArgs, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::ebpf::ServiceFlags;
use crate::ebpf::agent::{Agent, AgentConfig, AgentError, HookChoice, RENEW_EVERY};
use crate::ebpf::exec_events::{ExecEvents, Seen};
use crate::ebpf::hooks::{NO_CGROUP_STORAGE_ENV, NO_TASK_STORAGE_ENV, SyscallHooks};
use crate::ebpf::metrics::MetricsSnapshot;
use crate::ebpf::node::{self, NO_EXEC_EVENTS_ENV, NodeConfig, SERVICE_ENV};
use crate::ebpf::ports::{Exclusions, NO_PORTS, PortSet};

/// How long a restarted node-wide agent waits before it removes the pinned
/// links of pods it did not find again.
const PRUNE_AFTER: Duration = Duration::from_secs(30);
/// How soon the node-wide loop notices a stop signal, and a waiter's exec.
const TICK: Duration = Duration::from_millis(50);
/// With exec events: how often /proc is searched all the same, for a waiter
/// whose event was missed.
const SEARCH_ANYWAY: Duration = Duration::from_secs(30);
/// With exec events: how soon a waiter found before it listened for the
/// answer is looked at again (it installs its handler just after it starts).
const RETRY_UNANSWERED: Duration = Duration::from_millis(200);

/// Exit code when the kernel refuses the add-on.
pub const EXIT_KERNEL: u8 = 3;

/// What the agent attached, for its first line. A fallback that the
/// environment forced says so, not that the kernel lacks something.
fn hooks(agent: &Agent) -> String {
    let forced = |var: &str| std::env::var_os(var).is_some();
    let cache = match (agent.service_cache(), forced(NO_CGROUP_STORAGE_ENV)) {
        (true, _) => String::new(),
        (false, true) => format!("; no cache of each cgroup's service: {NO_CGROUP_STORAGE_ENV} is set"),
        (false, false) => "; no cache of each cgroup's service: the kernel has no cgroup storage (Linux 6.2)".into(),
    };
    let threads = match (agent.task_storage(), forced(NO_TASK_STORAGE_ENV)) {
        (true, _) => String::new(),
        (false, true) => format!("; threads' state in an LRU hash: {NO_TASK_STORAGE_ENV} is set"),
        (false, false) => {
            "; threads' state in an LRU hash: the kernel has no task storage, or its sk_msg programs may not use it"
                .into()
        }
    };
    let reads = if agent.one_request_per_read_check() {
        ""
    } else {
        "; HTTP/1.x requests pipelined in one read not told apart: only the socket receive hook checks"
    };
    format!("sockops, sk_msg, {}{cache}{threads}{reads}", agent.syscall_hooks())
}

fn stop_flag(signals: &[i32]) -> Result<Arc<AtomicBool>, u8> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in signals {
        if let Err(e) = signal_hook::flag::register(*signal, Arc::clone(&flag)) {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return Err(EXIT_USAGE);
        }
    }
    Ok(flag)
}

fn exit_code(e: &AgentError) -> u8 {
    match e {
        AgentError::Config(_) | AgentError::Cgroup(_) => EXIT_USAGE,
        _ => EXIT_KERNEL,
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, u8> {
    std::fs::read(path).map_err(|e| {
        eprintln!(
            "error[CU0901]: cannot read `{}`: {}",
            path.display(),
            super::inputs::io_reason(&e)
        );
        EXIT_USAGE
    })
}

pub fn run(args: &AgentArgs) -> u8 {
    let stop = match stop_flag(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if args.remove_pins {
        let pins = crate::ebpf::pins::PinDir {
            root: args.pin_dir.clone(),
        };
        return match pins.remove_all() {
            Ok(()) => {
                eprintln!("copperc agent: removed the pins under {}", args.pin_dir.display());
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: cannot remove the pins under {}: {e}", args.pin_dir.display());
                EXIT_USAGE
            }
        };
    }
    let object = match args.object.as_deref().map(read_file).transpose() {
        Ok(o) => o,
        Err(code) => return code,
    };
    if args.check_kernel {
        return check_kernel(args, object.as_deref());
    }
    // Before anything is loaded: a port in use attaches nothing.
    let metrics = match args.metrics.map(metrics_server::start).transpose() {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: cannot serve metrics on {}: {e}",
                args.metrics.map(|a| a.to_string()).unwrap_or_default()
            );
            return EXIT_USAGE;
        }
    };
    let feed = MetricsFeed::new(metrics);
    match (&args.config, &args.service, &args.cgroup) {
        (Some(config), _, _) => run_node(args, config, object, &stop, feed),
        (None, Some(service), Some(cgroup)) => run_one(args, service, cgroup, object, &stop, feed),
        _ => {
            eprintln!("error: give --service and --cgroup, or --config");
            EXIT_USAGE
        }
    }
}

/// `--check-kernel`: loads the object as a node-wide agent would (no pins,
/// no cgroup), says what it attached, and detaches it.
fn check_kernel(args: &AgentArgs, object: Option<&[u8]>) -> u8 {
    let release = kernel_release();
    let none = Exclusions {
        all: &NO_PORTS,
        per_service: false,
    };
    match Agent::load(object, hook_choice(args.syscall_hooks), args.verbose, None, none) {
        Ok(agent) => {
            eprintln!(
                "copperc agent: Linux {release} takes the add-on: {}; detached again, nothing followed",
                hooks(&agent)
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: Linux {release} refuses the add-on: {e}");
            exit_code(&e)
        }
    }
}

/// The running kernel's release, e.g. `6.18.44` (empty if uname fails).
fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hook_choice(arg: SyscallHookArg) -> HookChoice {
    match arg {
        SyscallHookArg::Auto => HookChoice::Auto,
        SyscallHookArg::Socket => HookChoice::Socket,
        SyscallHookArg::Tracepoints => HookChoice::Tracepoints,
        SyscallHookArg::TpBtf => HookChoice::TpBtf,
    }
}

/// The first line's note on excluded ports: `""` when there are none.
fn excluded(ports: &PortSet) -> String {
    if ports.is_empty() {
        String::new()
    } else {
        format!("; connections to ports {ports} not followed")
    }
}

/// The node-wide first line's note on excluded ports, the services' own
/// lists included: `""` when there are none.
fn excluded_on_node(cfg: &NodeConfig) -> String {
    let mut note = excluded(&cfg.excluded_ports);
    for (service, ports) in &cfg.service_ports {
        note.push_str(&format!("; connections of `{service}` to ports {ports} not followed"));
    }
    note
}

/// The node's excluded ports as `copperc compile --exclude-outbound-ports`
/// takes them: the node-wide items, then each service's as `service:item`.
fn node_excluded_items(cfg: &NodeConfig) -> String {
    let mut items = cfg.excluded_ports.items();
    for (service, ports) in &cfg.service_ports {
        items.extend(ports.items().into_iter().map(|i| format!("{service}:{i}")));
    }
    items.join(",")
}

fn print_stats(agent: &Agent, what: &str) {
    let text: Vec<String> = agent.stats().iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("copperc agent: {what} detached; {}", text.join(" "));
}

fn run_one(
    args: &AgentArgs,
    service: &str,
    cgroup: &Path,
    object: Option<Vec<u8>>,
    stop: &AtomicBool,
    mut feed: MetricsFeed,
) -> u8 {
    let cfg = AgentConfig {
        service: service.to_string(),
        cgroup: cgroup.to_path_buf(),
        flags: ServiceFlags {
            entrypoint: args.entrypoint,
            one_request_per_thread: args.one_request_per_thread,
        },
        hooks: hook_choice(args.syscall_hooks),
        object,
        excluded_ports: PortSet::from_ranges(&args.exclude_outbound_ports),
    };
    let agent = match Agent::start(&cfg, args.verbose) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(&e);
        }
    };
    eprintln!(
        "copperc agent: `{}`{} attached to {} ({}{}); SIGTERM or SIGINT detaches",
        cfg.service,
        cfg.flags.describe(),
        cfg.cgroup.display(),
        hooks(&agent),
        excluded(&cfg.excluded_ports)
    );
    let mut reasons = ReasonWatch::new(Followed::Service(&cfg.service));
    feed.announce(&agent, &reasons, cfg.excluded_ports.to_string());
    while !stop.load(Ordering::Relaxed) {
        reasons.look(&agent, false);
        feed.refresh(&agent, &reasons);
        std::thread::sleep(Duration::from_millis(50));
    }
    reasons.look(&agent, true);
    // Before the last line, which is the counters' (scripts read that one).
    if let Some(line) = reasons.summary() {
        eprintln!("{line}");
    }
    print_stats(&agent, &format!("`{}`", cfg.service));
    EXIT_OK
}

/// Hands the agent's state to the metrics listener (`--metrics`): the
/// counters once a second, the followed cgroups as soon as they change. The
/// listener's thread never reads the maps itself: the loaded object stays
/// this loop's.
struct MetricsFeed {
    shared: Option<(std::net::SocketAddr, SharedSnapshot)>,
    /// When the counters were last read, and the followed cgroups then.
    last: Option<(Instant, BTreeMap<String, u64>)>,
    /// The excluded ports, as `copperc compile --exclude-outbound-ports`
    /// takes them.
    excluded_ports: String,
}

impl MetricsFeed {
    const EVERY: Duration = Duration::from_secs(1);

    fn new(shared: Option<(std::net::SocketAddr, SharedSnapshot)>) -> Self {
        MetricsFeed {
            shared,
            last: None,
            excluded_ports: String::new(),
        }
    }

    /// Hands over the first snapshot, then prints where scrapes go (after
    /// the agent's first line).
    fn announce(&mut self, agent: &Agent, reasons: &ReasonWatch<'_>, excluded_ports: String) {
        self.excluded_ports = excluded_ports;
        self.refresh(agent, reasons);
        if let Some((addr, _)) = &self.shared {
            eprintln!("copperc agent: metrics at http://{addr}/metrics");
        }
    }

    /// Called on each turn of the loop: reads the counters only when a
    /// second has passed or a pod was found or is gone.
    fn refresh(&mut self, agent: &Agent, reasons: &ReasonWatch<'_>) {
        let Some((_, shared)) = &self.shared else {
            return;
        };
        let mut followed = BTreeMap::new();
        for (_, _, service) in agent.registered() {
            *followed.entry(service.to_string()).or_insert(0) += 1;
        }
        if self
            .last
            .as_ref()
            .is_some_and(|(at, was)| at.elapsed() < Self::EVERY && *was == followed)
        {
            return;
        }
        self.last = Some((Instant::now(), followed.clone()));
        metrics_server::publish(
            shared,
            MetricsSnapshot {
                counters: agent.stats(),
                followed,
                receive_hooks: match agent.syscall_hooks() {
                    SyscallHooks::Socket => "socket",
                    SyscallHooks::Tracepoints { .. } => "tracepoints",
                    SyscallHooks::TpBtf { .. } => "tp_btf",
                },
                threads_state: if agent.task_storage() {
                    "task_storage"
                } else {
                    "lru_hash"
                },
                service_cache: agent.service_cache(),
                excluded_ports: self.excluded_ports.clone(),
                reasons: reasons.by_service(),
            },
        );
    }
}

/// Which waiters were already answered, and which problems already told,
/// so that each is handled once, not on every scan.
#[derive(Default)]
struct NodeState {
    signalled: BTreeSet<(i32, u64)>,
    warned: BTreeSet<(i32, u64)>,
}

fn run_node(args: &AgentArgs, config: &Path, object: Option<Vec<u8>>, stop: &AtomicBool, mut feed: MetricsFeed) -> u8 {
    let text = match read_file(config) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let cfg = match node::parse_config(&String::from_utf8_lossy(&text)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", config.display());
            return EXIT_USAGE;
        }
    };
    let root = match args
        .cgroup_root
        .clone()
        .map_or_else(crate::ebpf::cgroup::hierarchy_root, Ok)
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(&e);
        }
    };
    let mut agent = match Agent::load(
        object.as_deref(),
        hook_choice(args.syscall_hooks),
        args.verbose,
        (!args.no_pins).then_some(args.pin_dir.as_path()),
        Exclusions {
            all: &cfg.excluded_ports,
            per_service: !cfg.service_ports.is_empty(),
        },
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code(&e);
        }
    };
    let interval = Duration::from_millis(args.scan_interval);
    let mut events = if std::env::var_os(NO_EXEC_EVENTS_ENV).is_some() {
        Err(format!("{NO_EXEC_EVENTS_ENV} is set"))
    } else {
        ExecEvents::open(&kernel_release()).map_err(|e| e.to_string())
    };
    let discovery = match &events {
        Ok(_) => format!(
            "pods found when a `copperc` process starts (the kernel's process connector), and by a search of /proc every {}s",
            SEARCH_ANYWAY.as_secs()
        ),
        Err(why) => format!(
            "pods found by a search of /proc every {} ms (no exec events: {why})",
            interval.as_millis()
        ),
    };
    eprintln!(
        "copperc agent: node-wide for {} services ({}{}), cgroups under {}; waiting for pods that run `copperc await-agent`; {discovery}; SIGTERM or SIGINT detaches",
        cfg.services.len(),
        hooks(&agent),
        excluded_on_node(&cfg),
        root.display()
    );
    if let Some(t) = &agent.takeover {
        eprintln!("copperc agent: {t} ({})", args.pin_dir.display());
    }
    let mut reasons = ReasonWatch::new(Followed::Node);
    feed.announce(&agent, &reasons, node_excluded_items(&cfg));
    let under = args.pods_under.clone().unwrap_or_else(|| root.clone());
    let mut state = NodeState::default();
    let started = Instant::now();
    let mut pruned = false;
    let mut last_renewal = Instant::now();
    let mut last_search: Option<Instant> = None;
    let mut last_gone_check = Instant::now();
    // A waiter found before it listens for the agent's signal: searched for
    // again until it is answered.
    let mut unanswered = false;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let since = last_search.map(|t| now.duration_since(t));
        let due = match (&mut events, since) {
            (_, None) => true,
            (Err(_), Some(d)) => d >= interval,
            (Ok(ev), Some(d)) => match ev.look(Path::new("/proc")) {
                Seen::Waiter | Seen::Lost => true,
                Seen::Broken => {
                    eprintln!(
                        "copperc agent: warning: the kernel's exec events stopped; searching /proc every {} ms",
                        interval.as_millis()
                    );
                    events = Err("they stopped".into());
                    true
                }
                Seen::Nothing => (unanswered && d >= interval.min(RETRY_UNANSWERED)) || d >= SEARCH_ANYWAY,
            },
        };
        if due {
            unanswered = scan(&mut agent, &cfg, &root, &under, &mut state);
            last_search = Some(Instant::now());
            last_gone_check = Instant::now();
        } else if last_gone_check.elapsed() >= interval {
            forget_gone(&mut agent);
            last_gone_check = Instant::now();
        }
        reasons.look(&agent, false);
        feed.refresh(&agent, &reasons);
        // By then every running pod's waiter has been found again: the other
        // pinned links belong to pods that went away while no agent ran.
        if !pruned && started.elapsed() >= PRUNE_AFTER {
            pruned = true;
            let n = agent.prune_pins();
            if n > 0 {
                eprintln!("copperc agent: removed {n} pinned links of pods that are gone");
            }
        }
        // Every RENEW_EVERY (the deadline is ALIVE_FOR ahead), not on every
        // tick: each renewal is a syscall on a node that serves requests.
        if last_renewal.elapsed() >= RENEW_EVERY {
            if let Err(e) = agent.keep_alive() {
                eprintln!("copperc agent: warning: {e}");
            }
            last_renewal = Instant::now();
        }
        std::thread::sleep(TICK.min(interval));
    }
    reasons.look(&agent, true);
    if let Some(line) = reasons.summary() {
        eprintln!("{line}");
    }
    let what = format!("{} cgroups", agent.registered().count());
    let text: Vec<String> = agent.stats().iter().map(|(k, v)| format!("{k}={v}")).collect();
    agent.stop_for_takeover();
    eprintln!(
        "copperc agent: {what} detached{}; {}",
        if args.no_pins {
            String::new()
        } else {
            format!(" (pins kept in {} for the next agent)", args.pin_dir.display())
        },
        text.join(" ")
    );
    EXIT_OK
}

/// One search of /proc: follows the pods of new waiters, answers them, and
/// forgets the pods whose cgroup is gone. Whether a waiter was found that
/// does not listen for the answer yet.
fn scan(agent: &mut Agent, cfg: &NodeConfig, root: &Path, under: &Path, state: &mut NodeState) -> bool {
    let waiters = node::find_waiters(Path::new("/proc"));
    let live: BTreeSet<(i32, u64)> = waiters.iter().map(|w| (w.pid, w.start_time)).collect();
    state.signalled.retain(|k| live.contains(k));
    state.warned.retain(|k| live.contains(k));
    let mut unanswered = false;
    for w in &waiters {
        let key = (w.pid, w.start_time);
        if state.signalled.contains(&key) || state.warned.contains(&key) {
            continue;
        }
        // Not listening yet: the next scan looks again.
        if !w.listening {
            unanswered = true;
            continue;
        }
        // Another part of the tree: not this agent's to follow, nor to warn about.
        if w.pod_cgroup(root).is_some_and(|p| !p.starts_with(under)) {
            continue;
        }
        let Some(&flags) = cfg.services.get(&w.service) else {
            eprintln!(
                "copperc agent: warning: process {} waits as `{}`, which the configuration does not list; not followed",
                w.pid, w.service
            );
            state.warned.insert(key);
            continue;
        };
        let Some(pod) = w.pod_cgroup(root) else {
            eprintln!(
                "copperc agent: warning: process {} (`{}`) is in cgroup `{}`, which has no pod cgroup above it; not followed",
                w.pid, w.service, w.cgroup
            );
            state.warned.insert(key);
            continue;
        };
        let ports = cfg.service_ports.get(&w.service).unwrap_or(&NO_PORTS);
        match agent.register(&pod, &w.service, flags, ports) {
            Ok(_) => {
                if let Err(e) = kill(Pid::from_raw(w.pid), Signal::SIGUSR1) {
                    // It ended in between: the next scan no longer lists it.
                    eprintln!("copperc agent: warning: cannot signal process {}: {e}", w.pid);
                    continue;
                }
                eprintln!(
                    "copperc agent: following {} as `{}`{} (process {} signalled)",
                    pod.display(),
                    w.service,
                    flags.describe(),
                    w.pid
                );
                state.signalled.insert(key);
            }
            Err(e) => {
                eprintln!(
                    "copperc agent: warning: cannot follow {} as `{}`: {e}",
                    pod.display(),
                    w.service
                );
                state.warned.insert(key);
            }
        }
    }
    forget_gone(agent);
    unanswered
}

/// Forgets the pods whose cgroup is gone: a look at each followed folder,
/// cheap enough for every interval, whatever finds new pods.
fn forget_gone(agent: &mut Agent) {
    let gone: Vec<(u64, PathBuf)> = agent
        .registered()
        .filter(|(_, p, _)| !p.exists())
        .map(|(id, p, _)| (id, p.to_path_buf()))
        .collect();
    for (id, path) in gone {
        agent.unregister(id);
        eprintln!("copperc agent: {} is gone; no longer followed", path.display());
    }
}

pub fn await_agent(args: &AwaitAgentArgs) -> u8 {
    if args.probe {
        return if args.ready_file.exists() {
            EXIT_OK
        } else {
            EXIT_FINDINGS
        };
    }
    let service = std::env::var(SERVICE_ENV).unwrap_or_default();
    if !crate::syntax::pattern::is_dns_label(&service) {
        eprintln!("error: {SERVICE_ENV} must name the pod's service (a DNS label), found `{service}`");
        return EXIT_USAGE;
    }
    // Registered before anything else, so that an early signal is not lost.
    let attached = match stop_flag(&[signal_hook::consts::SIGUSR1]) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let stop = match stop_flag(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT]) {
        Ok(f) => f,
        Err(code) => return code,
    };
    eprintln!("copperc await-agent: `{service}` waits for the node's copper-ctx agent");
    let started = Instant::now();
    let mut ready = false;
    let mut told = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !ready && attached.load(Ordering::Relaxed) {
            if let Err(e) = std::fs::write(&args.ready_file, format!("{service}\n")) {
                eprintln!("error: cannot write {}: {e}", args.ready_file.display());
                return EXIT_USAGE;
            }
            ready = true;
            eprintln!("copperc await-agent: the agent follows this pod as `{service}`");
            if args.exit_when_attached {
                return EXIT_OK;
            }
        }
        if !ready {
            let waited = started.elapsed();
            if args.timeout > 0 && waited >= Duration::from_secs(args.timeout) {
                eprintln!(
                    "error: no copper-ctx agent followed this pod within {} s: is the DaemonSet `copper-ctx` running on this node, and does its configuration list `{service}`?",
                    args.timeout
                );
                return EXIT_FINDINGS;
            }
            if told.elapsed() >= Duration::from_secs(10) {
                eprintln!("copperc await-agent: still waiting ({} s)", waited.as_secs());
                told = Instant::now();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    EXIT_OK
}
