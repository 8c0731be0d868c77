//! What the kernel and libbpf said when the agent could not start: libbpf's
//! messages are captured while loading, and a failure becomes an
//! `AgentError` that names the cause (missing BTF, privileges, the program
//! the verifier rejected with the end of its log).

use std::fmt;
use std::sync::Mutex;

use libbpf_rs::{ErrorKind, PrintLevel};

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

/// Captures libbpf's messages from now on (and echoes them with `verbose`).
pub(super) fn start_capture(verbose: bool) {
    VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
    take_log();
    libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
}

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

pub(super) fn take_log() -> Vec<String> {
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

pub(super) fn kernel_error(step: &str, err: &libbpf_rs::Error) -> AgentError {
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

/// Whether libbpf's messages so far mention `what`.
pub(super) fn take_log_mentions(what: &str) -> bool {
    LIBBPF_LOG
        .lock()
        .map(|l| l.iter().any(|line| line.contains(what)))
        .unwrap_or(false)
}
