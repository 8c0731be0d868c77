//! The command line: argument parsing (clap), input loading, and printing.
//! Maps outcomes to exit codes: 0 clean (warnings allowed), 1 errors in the
//! inputs, 2 usage or I/O errors.

mod agent_cmd;
mod agent_reasons;
mod check_cmd;
mod compile_cmd;
mod generate_cmd;
pub mod inputs;
pub mod metrics_server;
mod pipeline;
mod place_cmd;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::diag::Diagnostic;
use crate::diag::render::{self, Format};
use crate::source::SourceMap;

#[derive(Parser)]
#[command(
    name = "copperc",
    version,
    about = "Compile service-mesh policies written in Copper into sidecar placements and dataplane configuration",
    long_about = "copperc reads dataplane interface files (*.act), Copper policies (*.copper) and an application's call graph (JSON).\n\
It type-checks the policies, works out which calls each policy's context pattern can match, and places the cheapest set of sidecars that enforces every policy.",
    after_help = "Examples:\n  copperc check examples/bookinfo/policies.copper\n  copperc check --graph examples/bookinfo/graph.json --format sarif policies/\n  copperc explain CU0302\n\nExit codes: 0 no errors (warnings allowed), 1 errors in the inputs, 2 usage or I/O errors, 3 the kernel refused the eBPF add-on (`agent`)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check policies against the dataplane interfaces.
    ///
    /// Reports every problem with a code (CUxxxx), the exact place, and a fix where one is obvious.
    Check(CheckArgs),
    /// Place the cheapest sidecars that enforce every policy on every call it matches.
    ///
    /// Analyses which calls of the call graph each policy's context can match, then solves the
    /// placement exactly (weighted partial MaxSAT) and reports cost, proven lower bound and the
    /// `istio` / `istio++` baselines.
    Place(PlaceArgs),
    /// Compile policies into dataplane configuration: placement.json, Envoy bootstraps, and more.
    ///
    /// Writes the output folder atomically: a temporary folder renamed into place, so a failed
    /// compile leaves an existing folder untouched. Output is byte-for-byte deterministic.
    Compile(CompileArgs),
    /// Generate a synthetic Alibaba-shaped call graph and matching policies (for benchmarks and scale tests).
    Generate(GenerateArgs),
    /// Load the eBPF add-on that carries `x-copper-context` (Linux, root).
    ///
    /// For one service (`--service --cgroup`), or node-wide (`--config`, as the DaemonSet of
    /// `k8s/` runs it) for every pod of the node that waits for it (`copperc await-agent`).
    /// Attaches sockops to each followed cgroup (processes must be in it before they open
    /// sockets), sk_msg to the connections they open, and hooks on read/recvfrom/recvmsg (the
    /// syscall tracepoints when tracefs is mounted, else tp_btf sys_enter/sys_exit).
    /// Runs until SIGTERM or SIGINT, then detaches. See docs/ebpf.md.
    Agent(AgentArgs),
    /// Wait until the node's eBPF agent follows this pod (the `copper-ctx-wait` sidecar of `k8s/`).
    ///
    /// Reads the service's name from COPPER_CTX_SERVICE, waits for the agent's signal (SIGUSR1),
    /// then writes the ready file and keeps running (the pod's startup probe runs
    /// `copperc await-agent --probe`), so that an agent that restarts finds the pod again.
    AwaitAgent(AwaitAgentArgs),
    /// Print what a diagnostic code means, e.g. `copperc explain CU0302`.
    Explain {
        /// A code such as CU0302 (the `CU` may be left out).
        code: String,
    },
}

/// Options shared by every command that reads policies.
#[derive(Args)]
pub struct InputArgs {
    /// Interface file or folder of `*.act` files (repeatable). Default: the bundled interfaces.
    #[arg(long = "interfaces", value_name = "PATH")]
    pub interfaces: Vec<PathBuf>,
    /// Policy files, or folders searched for `*.copper`.
    #[arg(value_name = "POLICY_FILE")]
    pub policies: Vec<PathBuf>,
}

#[derive(Args)]
pub struct OutputArgs {
    /// When to color human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Treat warnings as errors (exit code 1).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Call graph (JSON): service names in patterns that it lacks are warnings.
    #[arg(long, value_name = "GRAPH.json")]
    pub graph: Option<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Call graph of the application (JSON).
    #[arg(long, value_name = "GRAPH.json")]
    pub graph: PathBuf,
    /// Dataplane of the baselines. Default: istio-proxy when loaded, else the alphabetically first.
    #[arg(long, value_name = "NAME")]
    pub default_dataplane: Option<String>,
    /// Output: a table for people, or the placement object.
    #[arg(long, value_enum, default_value_t = PlaceFormat::Text)]
    pub format: PlaceFormat,
    /// Say for each sidecar which (policy, call) pairs force it and what else could cover them.
    #[arg(long)]
    pub explain: bool,
    /// Also write the MaxSAT instance as WCNF, to cross-check with another solver.
    #[arg(long, value_name = "FILE")]
    pub emit_wcnf: Option<PathBuf>,
    /// Stop searching after this many seconds; report the best placement and its proven gap.
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,
    /// Print how long each stage took, on standard error.
    #[arg(long)]
    pub timings: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Call graph of the application (JSON).
    #[arg(long, value_name = "GRAPH.json")]
    pub graph: PathBuf,
    /// Output folder (replaced as a whole if it is an earlier copperc output).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Which configuration to write (placement.json and README.md always are).
    #[arg(long, value_enum, default_value_t = crate::emit::Target::All)]
    pub target: crate::emit::Target,
    /// Dataplane of the baselines. Default: istio-proxy when loaded, else the alphabetically first.
    #[arg(long, value_name = "NAME")]
    pub default_dataplane: Option<String>,
    /// Kubernetes namespace of the application: Istio objects and Deployment patches.
    #[arg(long, value_name = "NAME", default_value = crate::emit::k8s::DEFAULT_NAMESPACE, value_parser = namespace_name)]
    pub namespace: String,
    /// Sidecars to deploy: `wire` (the optimal placement), the `istio++`
    /// baseline placement, or that plus pass-through sidecars on `every`
    /// service (for comparisons).
    #[arg(long, value_enum, default_value_t = PlaceMode::Wire)]
    pub place: PlaceMode,
    /// Image of the eBPF context add-on's DaemonSet (it runs `copperc agent`).
    #[arg(long, value_name = "IMAGE", default_value = crate::emit::k8s::DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// Port on each node where the eBPF add-on's agent serves Prometheus metrics (`copperc agent
    /// --metrics 0.0.0.0:PORT`, on the host's network, with `prometheus.io/*` annotations); 0
    /// serves none.
    #[arg(long, value_name = "PORT", default_value_t = crate::emit::k8s::DEFAULT_AGENT_METRICS_PORT)]
    pub agent_metrics_port: u16,
    /// Services whose threads each handle one request at a time, though they read requests from
    /// non-blocking sockets (a single-threaded async runtime per connection): the eBPF add-on
    /// ties their calls to their requests (`copperc agent --one-request-per-thread`). Repeat the
    /// option, or separate names with commas.
    #[arg(long, value_name = "SERVICE", value_delimiter = ',')]
    pub one_request_per_thread: Vec<String>,
    /// Remote ports whose connections the eBPF add-on leaves alone, on every node (the agent's
    /// `excludeOutboundPorts`): databases, caches and other peers that never speak HTTP.
    /// Ports and ranges, e.g. `5432,6379,9000-9099`; for one service only, its name before a
    /// colon: `orders:5432`.
    #[arg(long, value_name = "PORTS", value_delimiter = ',', value_parser = crate::ebpf::ports::parse_scoped_item)]
    pub exclude_outbound_ports: Vec<(Option<String>, (u16, u16))>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Which sidecars `copperc compile` deploys.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlaceMode {
    Wire,
    #[value(name = "istio++")]
    IstioPlus,
    Every,
}

/// A Kubernetes namespace name is a DNS label.
fn namespace_name(s: &str) -> Result<String, String> {
    if crate::syntax::pattern::is_dns_label(s) {
        Ok(s.to_string())
    } else {
        Err("a namespace is a DNS label: lowercase letters, digits and `-`, at most 63".to_string())
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of services.
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Number of policies.
    #[arg(long, default_value_t = 100)]
    pub policies: usize,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to write `graph.json` and `policies.copper` into (created; must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The service's name in the call graph (a DNS label).
    #[arg(long, value_name = "NAME", requires = "cgroup", required_unless_present_any = ["config", "remove_pins", "check_kernel"])]
    pub service: Option<String>,
    /// The service's cgroup v2 folder, e.g. /sys/fs/cgroup/unified/shop/a.
    #[arg(long, value_name = "PATH", requires = "service")]
    pub cgroup: Option<std::path::PathBuf>,
    /// The service is an entry point: contexts arriving from outside are ignored and each
    /// request starts a fresh context.
    #[arg(long, requires = "service")]
    pub entrypoint: bool,
    /// Each thread of the service handles one request at a time and makes that request's calls
    /// itself, even where it reads requests from non-blocking sockets (a single-threaded async
    /// runtime per connection that serves its requests one after the other). Without it, a
    /// request read from a non-blocking socket (an event loop, an async runtime) gives no context
    /// to the calls sent while it is handled: none rather than a wrong one.
    #[arg(long, requires = "service")]
    pub one_request_per_thread: bool,
    /// Remote ports whose connections the service opens are not followed: they never enter the
    /// sockhash, so their sends take the kernel's plain path and carry no context (databases,
    /// caches: peers that never speak HTTP). Ports and ranges, e.g. `5432,6379,9000-9099`.
    /// Node-wide, `excludeOutboundPorts` in the configuration says it.
    #[arg(long, value_name = "PORTS", value_delimiter = ',', value_parser = crate::ebpf::ports::parse_item, requires = "service")]
    pub exclude_outbound_ports: Vec<(u16, u16)>,
    /// Node-wide: the add-on's configuration (`config.json` of `k8s/configmap-copper-ctx-config.yaml`);
    /// follows every pod whose `copperc await-agent` names one of its services.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["service", "cgroup", "entrypoint", "one_request_per_thread", "exclude_outbound_ports"])]
    pub config: Option<std::path::PathBuf>,
    /// Node-wide: where the whole cgroup v2 hierarchy is mounted. Default: found in /proc/self/mountinfo.
    #[arg(long, value_name = "PATH", requires = "config")]
    pub cgroup_root: Option<std::path::PathBuf>,
    /// Node-wide: where the maps and the pods' links are pinned, so that an agent that restarts
    /// takes over the connections the last one followed (a folder on the BPF file system).
    #[arg(long, value_name = "PATH", default_value = crate::ebpf::pins::DEFAULT_DIR)]
    pub pin_dir: std::path::PathBuf,
    /// Node-wide: pin nothing; everything is detached when the agent exits.
    #[arg(long, requires = "config")]
    pub no_pins: bool,
    /// Remove the pins of `--pin-dir` and exit: detaches what a node-wide agent left attached
    /// (to uninstall the add-on from a node).
    #[arg(long, conflicts_with_all = ["service", "cgroup", "config"])]
    pub remove_pins: bool,
    /// Load the add-on into this kernel, say which hooks and maps it would use and why, and
    /// detach it again, following nothing: exit code 0 if the kernel takes it, 3 if not (with
    /// the reason). To check a node before deploying; `--syscall-hooks` and `--object` apply.
    #[arg(long, conflicts_with_all = ["service", "cgroup", "config", "remove_pins", "metrics"])]
    pub check_kernel: bool,
    /// Node-wide: follow only pods whose cgroup lies below this cgroup v2 folder (e.g. the
    /// kubelet's `kubepods.slice`). Default: the whole hierarchy.
    #[arg(long, value_name = "PATH", requires = "config")]
    pub pods_under: Option<std::path::PathBuf>,
    /// Node-wide: how often /proc is searched for new pods, in milliseconds, where the kernel
    /// gives no exec events (before Linux 6.6); with them, /proc is searched when a `copperc`
    /// process starts.
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub scan_interval: u64,
    /// Which hooks capture incoming contexts: `auto` takes the socket receive hook
    /// (tp_btf sock_recv_length, Linux 6.4+), else the syscall tracepoints (mounting tracefs at
    /// /sys/kernel/tracing if needed), else tp_btf sys_enter/sys_exit, which run for every
    /// syscall of the machine.
    #[arg(long, value_enum, default_value_t = SyscallHookArg::Auto)]
    pub syscall_hooks: SyscallHookArg,
    /// Load this object file instead of the embedded one (e.g. the `ebpf/copper_ctx.bpf.o`
    /// that `copperc compile` writes).
    #[arg(long, value_name = "FILE")]
    pub object: Option<std::path::PathBuf>,
    /// Serve the add-on's counters, the followed cgroups of each service and what the agent
    /// attached at `http://ADDR/metrics`, in the Prometheus text format (e.g. `0.0.0.0:9464`;
    /// port 0 picks a free one, which the agent prints).
    #[arg(long, value_name = "ADDR", conflicts_with = "remove_pins")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Echo libbpf's messages on stderr, with the verifier's statistics for each program
    /// (instructions processed, of its limit of one million) and its log when it refuses one.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyscallHookArg {
    Auto,
    Socket,
    Tracepoints,
    TpBtf,
}

#[derive(Args)]
pub struct AwaitAgentArgs {
    /// The file written once the agent follows the pod (and checked by `--probe`).
    #[arg(long, value_name = "FILE", default_value = "/run/copper-ctx/ready")]
    pub ready_file: std::path::PathBuf,
    /// Only check: exit 0 if the ready file exists, 1 otherwise (a startup probe).
    #[arg(long)]
    pub probe: bool,
    /// Give up with exit code 1 after this many seconds without the agent (0: wait forever).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub timeout: u64,
    /// Exit 0 once the agent follows the pod, instead of running until SIGTERM.
    #[arg(long)]
    pub exit_when_attached: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlaceFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check_cmd::run(&args),
        Command::Place(args) => place_cmd::run(&args),
        Command::Compile(args) => compile_cmd::run(&args),
        Command::Generate(args) => generate_cmd::run(&args),
        Command::Agent(args) => agent_cmd::run(&args),
        Command::AwaitAgent(args) => agent_cmd::await_agent(&args),
        Command::Explain { code } => explain(&code),
    };
    ExitCode::from(code)
}

fn explain(code: &str) -> u8 {
    let wanted = code.trim().to_uppercase();
    let digits = wanted.trim_start_matches("CU");
    let wanted = match digits.parse::<u32>() {
        Ok(n) if digits.len() <= 4 => format!("CU{n:04}"),
        _ => wanted.clone(),
    };
    match crate::diag::Code::ALL.iter().find(|c| c.as_str() == wanted) {
        Some(c) => {
            println!(
                "{} ({}): {}\n\n{}",
                c.as_str(),
                c.severity().as_str(),
                c.title(),
                c.explanation()
            );
            EXIT_OK
        }
        None => {
            eprintln!("error: unknown code `{code}`; codes look like CU0302 (see docs/language.md)");
            EXIT_USAGE
        }
    }
}

/// Prints diagnostics in `format` on stdout and returns how many errors and warnings there were.
pub fn print_diagnostics(
    diags: &[Diagnostic],
    sources: &SourceMap,
    format: Format,
    color: ColorChoice,
) -> (usize, usize) {
    let text = render::render(format, diags, sources, color.enabled(std::io::stdout().is_terminal()));
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

/// Reports an I/O or usage problem (no source span) on stderr; exit code 2.
pub fn fail_usage(d: &Diagnostic, sources: &SourceMap, format: Format) -> u8 {
    match format {
        Format::Human => eprintln!("error[{}]: {}", d.code.as_str(), d.message),
        _ => print!("{}", render::render(format, std::slice::from_ref(d), sources, false)),
    }
    EXIT_USAGE
}

/// Writes a file through a temporary file in the same folder and a rename,
/// so that readers never see half of it.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Writes files into a folder that must not exist yet: first into a
/// temporary sibling folder, then one rename, so the folder appears whole
/// or not at all.
pub fn write_new_folder(dir: &std::path::Path, files: &[(&str, String)]) -> std::io::Result<()> {
    if dir.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "it already exists",
        ));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&tmp)?;
        for (file, text) in files {
            std::fs::write(tmp.join(file), text)?;
        }
        std::fs::rename(&tmp, dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

pub fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
