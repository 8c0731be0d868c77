//! The eBPF context-propagation add-on (docs/ebpf.md): the object built from
//! `ebpf/copper_ctx.bpf.c` by `build.rs`, embedded in `copperc`, the layout
//! of a service's entry in its `services` map, the loader (`agent`) with its
//! errors (`error`) and receive hooks (`hooks`), the cgroup v2 tree as the
//! loader sees it (`cgroup`), tracefs (`tracefs`), the pins that let a new
//! agent take over (`pins`), the outbound ports it leaves alone (`ports`),
//! the node-wide mode that finds the pods of a Kubernetes node (`node`),
//! told of new ones by exec events (`exec_events`), and what the agent
//! reports: its counters as metrics (`metrics`), and why requests went
//! without a context, per service (`reasons`).

pub mod agent;
pub mod cgroup;
pub mod error;
pub mod exec_events;
pub mod hooks;
pub mod metrics;
pub mod node;
pub mod pins;
pub mod ports;
pub mod reasons;
pub mod tracefs;

/// The compiled object (BPF ELF with BTF, CO-RE relocations).
pub const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/copper_ctx.bpf.o"));

/// The architecture the object is built for, as Kubernetes names it
/// (`kubernetes.io/arch`): build.rs builds it for the target of this build,
/// and its code reads a syscall's registers as that architecture lays them
/// out.
pub const OBJECT_ARCH: &str = if cfg!(target_arch = "aarch64") {
    "arm64"
} else {
    "amd64"
};

/// Where `copperc compile` writes the object in an output folder.
pub const OBJECT_PATH: &str = "ebpf/copper_ctx.bpf.o";

/// The header that carries the context (docs/semantics.md).
pub const HEADER: &str = "x-copper-context";

/// Size of `struct copper_config` (ebpf/copper_ctx.h), the value of the
/// `services` map: name[64], name_len (u32), flags (u32: `SVC_*`), native
/// byte order.
pub const CONFIG_SIZE: usize = 72;

/// Cgroups one loaded object follows (`MAX_SERVICES` in ebpf/copper_ctx.h).
pub const MAX_SERVICES: usize = 4096;

/// Distinct depths of those cgroups (`MAX_LEVELS` in ebpf/copper_ctx.h).
pub const MAX_LEVELS: usize = 8;

/// Longest header value the object sends (`VAL_MAX` in ebpf/copper_ctx.h).
pub const VALUE_MAX: usize = 240;

/// Names of the `stats` counters, in the order of `enum copper_stat`.
pub const STATS: [&str; 12] = [
    "rx_h1_requests",
    "rx_h2_requests",
    "rx_with_context",
    "rx_ambiguous",
    "tx_h1_inserted",
    "tx_h2_inserted",
    "tx_no_context",
    "tx_skipped",
    "tx_desync",
    "tx_errors",
    "rx_nonblocking",
    "tx_excluded_conns",
];

/// The counters of `cgroup_stats`, in the order of `enum
/// copper_cgroup_stat`: the reasons of `STATS` why a request went without a
/// context, counted again per cgroup of the task that read or sent it.
pub const CGROUP_STATS: [&str; 6] = [
    "rx_ambiguous",
    "rx_nonblocking",
    "tx_no_context",
    "tx_skipped",
    "tx_desync",
    "tx_errors",
];

/// One cgroup's counts, in the order of `CGROUP_STATS`.
pub type ReasonCounts = [u64; CGROUP_STATS.len()];

/// How the add-on treats a service's requests: the `flags` of its
/// `struct copper_config`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceFlags {
    /// Contexts from outside are ignored; each request starts a fresh one
    /// (`SVC_ENTRYPOINT`).
    pub entrypoint: bool,
    /// The operator says that each thread handles one request at a time and
    /// makes that request's calls itself, even where it reads requests from
    /// non-blocking sockets (`SVC_ONE_REQUEST_PER_THREAD`). Without it, a
    /// request read from a non-blocking socket gives its thread no context.
    pub one_request_per_thread: bool,
}

impl ServiceFlags {
    /// The `flags` word of `struct copper_config`.
    pub fn bits(self) -> u32 {
        u32::from(self.entrypoint) | (u32::from(self.one_request_per_thread) << 1)
    }

    /// What the agent says of the service after its name: `""`,
    /// `" (entry point)"`, `" (one request per thread)"` or both.
    pub fn describe(self) -> String {
        match (self.entrypoint, self.one_request_per_thread) {
            (false, false) => String::new(),
            (true, false) => " (entry point)".into(),
            (false, true) => " (one request per thread)".into(),
            (true, true) => " (entry point, one request per thread)".into(),
        }
    }
}

/// The bytes of `struct copper_config` for a service. The name must be a DNS
/// label (the names of the call graph are).
pub fn config_bytes(service: &str, flags: ServiceFlags) -> Result<[u8; CONFIG_SIZE], String> {
    if !crate::syntax::pattern::is_dns_label(service) {
        return Err(format!(
            "service name `{service}` is not a DNS label ([a-z0-9] and inner `-`, at most 63 characters)"
        ));
    }
    let mut out = [0u8; CONFIG_SIZE];
    let name = service.as_bytes();
    out[..name.len()].copy_from_slice(name);
    // INVARIANT: a DNS label has at most 63 bytes, so the length fits a u32.
    let len = u32::try_from(name.len()).unwrap_or(0);
    out[64..68].copy_from_slice(&len.to_ne_bytes());
    out[68..72].copy_from_slice(&flags.bits().to_ne_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn object_is_a_bpf_elf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        // e_machine 247 = EM_BPF
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }

    #[test]
    fn config_layout() {
        let entry = ServiceFlags {
            entrypoint: true,
            one_request_per_thread: false,
        };
        let c = config_bytes("ratings", entry).unwrap();
        assert_eq!(&c[..7], b"ratings");
        assert!(c[7..64].iter().all(|b| *b == 0));
        assert_eq!(u32::from_ne_bytes(c[64..68].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(c[68..72].try_into().unwrap()), 1);
        let one = ServiceFlags {
            entrypoint: false,
            one_request_per_thread: true,
        };
        let c = config_bytes("ratings", one).unwrap();
        assert_eq!(u32::from_ne_bytes(c[68..72].try_into().unwrap()), 2);
        assert!(config_bytes("Bad_Name", ServiceFlags::default()).is_err());
        assert!(config_bytes(&"a".repeat(64), ServiceFlags::default()).is_err());
    }
}
