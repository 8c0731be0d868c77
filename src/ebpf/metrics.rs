//! What `copperc agent --metrics` serves: the add-on's counters (node-wide,
//! and per service those of why requests went without a context), the
//! followed cgroups of each service and what the agent attached, in the
//! Prometheus text format (0.0.4), encoded by `prometheus-client`.
//!
//! Owns the metric names, their help and their order; takes a
//! [`MetricsSnapshot`] the agent's loop fills, and hands on the text. No I/O
//! here: the listener is `cli::metrics_server`.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{CGROUP_STATS, ReasonCounts, STATS};

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric's name starts so.
const PREFIX: &str = "copper_ctx";

/// The help of each counter of `STATS`, in its order. What an operator
/// reads when a context goes missing: which case dropped it.
const COUNTER_HELP: [&str; 12] = [
    "HTTP/1.x request heads read by followed services.",
    "h2c requests (a HEADERS frame that opens a stream) read by followed services.",
    "Requests read that carried a valid context.",
    "Requests read that give their thread no value, since the read cannot be tied to one request (several requests in one read, two connections of one thread, frame boundaries lost).",
    "HTTP/1.x requests sent with the context header inserted.",
    "h2c requests sent with the context field added to their header block.",
    "Requests sent without a context: the sending thread held no value.",
    "Requests sent without a context because the value or the frame would not fit (value over 240 bytes, CONTINUATION, a cut frame header, a frame over 16 KiB).",
    "h2c connections whose sent frame boundaries were lost: their requests carry no context from then on.",
    "Insertions the kernel refused; the request went on unchanged.",
    "Requests read from non-blocking sockets (event loops, async runtimes), which give their thread no value unless the service handles one request per thread.",
    "Connections to excluded outbound ports, never followed.",
];

/// What the agent's loop reads for one scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// The add-on's counters, summed over the CPUs, in the order of `STATS`.
    pub counters: Vec<(&'static str, u64)>,
    /// Service -> the cgroups followed as that service (pods, node-wide).
    pub followed: BTreeMap<String, u64>,
    /// Which receive hooks are attached: `socket`, `tracepoints` or `tp_btf`.
    pub receive_hooks: &'static str,
    /// Where the threads' state is kept: `task_storage` or `lru_hash`.
    pub threads_state: &'static str,
    /// Whether each cgroup's service is cached in cgroup storage.
    pub service_cache: bool,
    /// Excluded outbound ports, as `copperc compile --exclude-outbound-ports`
    /// takes them (a service's own as `service:port`).
    pub excluded_ports: String,
    /// Service -> why its requests went without a context, in the order of
    /// `CGROUP_STATS` (including pods of it that are gone).
    pub reasons: BTreeMap<String, ReasonCounts>,
}

/// Encodes one snapshot in a fixed order (the counters in the order of
/// `STATS`, services by name), so that two scrapes of the same state are
/// the same bytes.
#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let info = vec![
            ("receive_hooks", s.receive_hooks.to_string()),
            ("threads_state", s.threads_state.to_string()),
            ("service_cache", s.service_cache.to_string()),
            ("excluded_outbound_ports", s.excluded_ports.clone()),
        ];
        encoder
            .encode_descriptor(
                &format!("{PREFIX}_agent"),
                "What the agent attached: the receive hooks, where the threads' state is kept, whether each cgroup's service is cached, the excluded outbound ports.",
                None,
                MetricType::Info,
            )?
            .encode_info(&info)?;
        let name = format!("{PREFIX}_followed_cgroups");
        let mut family = encoder.encode_descriptor(
            &name,
            "Cgroups followed as each service (node-wide: its pods).",
            None,
            MetricType::Gauge,
        )?;
        for (service, n) in &s.followed {
            let labels = vec![("service", service.as_str())];
            family.encode_family(&labels)?.encode_gauge(&(*n as i64))?;
        }
        for (name, value) in &s.counters {
            let metric = format!("{PREFIX}_{name}");
            encoder
                .encode_descriptor(&metric, help_of(name), None, MetricType::Counter)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, u64>(value, None)?;
        }
        // Every followed service has its series from the start, at 0, so
        // that a rate is defined before the first event; a service whose
        // pods are all gone keeps its totals.
        let services: std::collections::BTreeSet<&String> = s.followed.keys().chain(s.reasons.keys()).collect();
        for (i, name) in CGROUP_STATS.iter().enumerate() {
            let metric = format!("{PREFIX}_service_{name}");
            let help = format!("{} Per service.", help_of(name));
            let mut family = encoder.encode_descriptor(&metric, &help, None, MetricType::Counter)?;
            for service in &services {
                let value = s.reasons.get(*service).and_then(|c| c.get(i)).copied().unwrap_or(0);
                let labels = vec![("service", service.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_counter::<prometheus_client::encoding::NoLabelSet, u64, u64>(&value, None)?;
            }
        }
        Ok(())
    }
}

fn help_of(name: &str) -> &'static str {
    STATS
        .iter()
        .position(|n| *n == name)
        .and_then(|i| COUNTER_HELP.get(i))
        .copied()
        .unwrap_or("A counter of the add-on.")
}

/// The text of one scrape.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut text = String::new();
    // Writing into a String cannot fail; an encoder error would leave it short.
    if prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MetricsSnapshot {
        MetricsSnapshot {
            counters: STATS.iter().zip(1u64..).map(|(n, v)| (*n, v * 10)).collect(),
            followed: [("orders".to_string(), 2), ("frontend".to_string(), 1)]
                .into_iter()
                .collect(),
            receive_hooks: "socket",
            threads_state: "task_storage",
            service_cache: true,
            excluded_ports: "5432,9000-9099".into(),
            reasons: [("orders".to_string(), [0, 7, 1, 0, 0, 0])].into_iter().collect(),
        }
    }

    #[test]
    fn every_counter_has_its_own_help() {
        assert_eq!(COUNTER_HELP.len(), STATS.len());
        let helps: std::collections::BTreeSet<&str> = COUNTER_HELP.iter().copied().collect();
        assert_eq!(helps.len(), STATS.len());
    }

    #[test]
    fn a_snapshot_renders_in_a_fixed_order() {
        let text = render(&sample());
        insta::assert_snapshot!(text);
        assert_eq!(text, render(&sample()), "two scrapes of one state differ");
    }

    #[test]
    fn each_counter_is_one_sample_line() {
        let text = render(&sample());
        for (i, name) in STATS.iter().enumerate() {
            let line = format!("copper_ctx_{name}_total {}\n", (i as u64 + 1) * 10);
            assert!(text.contains(&line), "no `{line}` in:\n{text}");
        }
        assert!(text.contains("copper_ctx_followed_cgroups{service=\"frontend\"} 1\n"));
        assert!(text.contains("copper_ctx_service_rx_nonblocking_total{service=\"orders\"} 7\n"));
        assert!(text.contains("copper_ctx_service_rx_nonblocking_total{service=\"frontend\"} 0\n"));
        assert!(text.contains("copper_ctx_service_tx_no_context_total{service=\"orders\"} 1\n"));
    }

    #[test]
    fn no_followed_service_still_gives_the_family_and_counters() {
        let snapshot = MetricsSnapshot {
            counters: STATS.iter().map(|n| (*n, 0)).collect(),
            receive_hooks: "tracepoints",
            threads_state: "lru_hash",
            ..MetricsSnapshot::default()
        };
        let text = render(&snapshot);
        assert!(text.contains("# TYPE copper_ctx_followed_cgroups gauge\n"), "{text}");
        assert!(text.contains("copper_ctx_tx_errors_total 0\n"), "{text}");
        assert!(!text.contains("copper_ctx_followed_cgroups{"), "{text}");
    }
}
