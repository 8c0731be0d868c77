//! `copperc agent`: loads the eBPF context-propagation add-on for one
//! service and keeps it attached until SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{AgentArgs, EXIT_OK, EXIT_USAGE};
use crate::ebpf::agent::{Agent, AgentConfig};

/// Exit code when the kernel refuses the add-on.
pub const EXIT_KERNEL: u8 = 3;

pub fn run(args: &AgentArgs) -> u8 {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("error: cannot handle signal {signal}: {e}");
            return EXIT_USAGE;
        }
    }
    let object = match &args.object {
        None => None,
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!(
                    "error[CU0901]: cannot read `{}`: {}",
                    path.display(),
                    super::inputs::io_reason(&e)
                );
                return EXIT_USAGE;
            }
        },
    };
    let cfg = AgentConfig {
        service: args.service.clone(),
        cgroup: args.cgroup.clone(),
        entrypoint: args.entrypoint,
        object,
    };
    let agent = match Agent::start(&cfg, args.verbose) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                crate::ebpf::agent::AgentError::Config(_) | crate::ebpf::agent::AgentError::Cgroup(_) => EXIT_USAGE,
                _ => EXIT_KERNEL,
            };
        }
    };
    eprintln!(
        "copperc agent: `{}`{} attached to {} (sockops, sk_msg, tp_btf sched_process_exit, {}); SIGTERM or SIGINT detaches",
        cfg.service,
        if cfg.entrypoint { " (entry point)" } else { "" },
        cfg.cgroup.display(),
        agent.syscall_hooks()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = agent.stats();
    agent.stop();
    let text: Vec<String> = stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("copperc agent: `{}` detached; {}", cfg.service, text.join(" "));
    EXIT_OK
}
