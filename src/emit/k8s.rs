//! Kubernetes: what the cluster needs besides the dataplanes' own resources,
//! one object per file under `k8s/`, and `k8s/kustomization.yaml`.
//!
//! - `patches/deployment-<service>-<version>.yaml`: a strategic-merge patch
//!   per Deployment that labels its pod template
//!   `sidecar.istio.io/inject: "true"` where placement chose an Istio
//!   sidecar for the service and `"false"` everywhere else, and adds the
//!   `copper-ctx-wait` native sidecar, which holds the application's
//!   containers back until the node's agent follows the pod. The Deployment
//!   of version v of service s is assumed to be named `<s>-<v>` (the
//!   Bookinfo convention: `reviews-v1`, `reviews-v2`), with pods labelled
//!   `app: <s>` and `version: <v>`.
//! - `daemonset-copper-ctx.yaml`: the eBPF context add-on, one privileged
//!   pod per node in `kube-system` (host PID namespace, the host's cgroup
//!   tree) running `copperc agent --config`, which follows every pod of the
//!   node whose `copper-ctx-wait` sidecar names a service of the
//!   configuration, and pins its maps in the host's BPF file system so that
//!   the next agent takes the followed connections over. It needs no access
//!   to the Kubernetes API.
//! - `configmap-copper-ctx-config.yaml`: what the agent needs to know about
//!   the application: namespace, services with their pod labels, versions,
//!   callees, and entry points.
//! - `configmap-copper-ctx-bpf.yaml`: the prebuilt eBPF object, only when
//!   `Cluster::ebpf_object` is given (mounted into the agent).
//!
//! `kustomization.yaml` is a kustomize `Component`: the patches change the
//! application's own Deployments, so it is included by the application's
//! kustomization (`components: [<out>/k8s]`), and it brings in the other
//! generated folders that have a `kustomization.yaml` (`../istio`).
//!
//! This module also owns the Kubernetes conventions that `istio` shares:
//! object metadata and kustomization files.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{EmitInput, OutFile, yaml};
use crate::analysis::encoding::CONTEXT_HEADER;
use crate::diag::{Code, Diagnostic};

/// Namespace of the generated objects unless `--namespace` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Image of the context add-on unless `--agent-image` says otherwise.
pub const DEFAULT_AGENT_IMAGE: &str = concat!("copperc-agent:", env!("CARGO_PKG_VERSION"));
/// Namespace of the context add-on (it exists in every cluster).
pub const AGENT_NAMESPACE: &str = "kube-system";
/// Name of the add-on's DaemonSet, and prefix of its ConfigMaps.
pub const AGENT_NAME: &str = "copper-ctx";
/// Where the agent finds its configuration and the eBPF object.
const CONFIG_DIR: &str = "/etc/copper";
const BPF_DIR: &str = "/etc/copper/bpf";
/// The native sidecar that holds a pod back until the agent follows it, and
/// where it writes its ready file.
pub const WAIT_CONTAINER: &str = "copper-ctx-wait";
const WAIT_DIR: &str = "/run/copper-ctx";
/// File name of the eBPF object in its ConfigMap.
pub const BPF_OBJECT: &str = "copper.bpf.o";
/// No service excludes ports of its own.
static NO_SERVICE_PORTS: BTreeMap<String, crate::ebpf::ports::PortSet> = BTreeMap::new();
/// Where on each node the agent serves its metrics, unless told otherwise.
pub const DEFAULT_AGENT_METRICS_PORT: u16 = 9464;
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "copperc");
pub const POLICIES_ANNOTATION: &str = "copperc.dev/policies";
pub const INJECT_LABEL: &str = "sidecar.istio.io/inject";

/// The prebuilt eBPF object, and the architecture of the nodes it loads on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentObject<'a> {
    pub bytes: &'a [u8],
    /// As `kubernetes.io/arch` names it (`amd64`, `arm64`): the object
    /// reads a syscall's registers as that architecture lays them out, so
    /// a kernel of another one refuses it.
    pub arch: &'a str,
}

/// Where and how the generated Kubernetes objects run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cluster<'a> {
    /// Namespace of the application and of the Istio objects.
    pub namespace: &'a str,
    /// Image of the context add-on (runs `copperc agent`).
    pub agent_image: &'a str,
    /// The prebuilt eBPF object that the agent loads. `None` until it is
    /// built: the add-on's pods then run without one.
    pub ebpf_object: Option<AgentObject<'a>>,
    /// Services declared to handle one request per thread (the agent's
    /// `oneRequestPerThread`), all of them in the call graph.
    pub one_request_per_thread: &'a [String],
    /// Remote ports whose connections the add-on leaves alone (the
    /// agent's `excludeOutboundPorts`).
    pub excluded_ports: &'a crate::ebpf::ports::PortSet,
    /// Service -> remote ports that only its connections leave alone (a
    /// service's own `excludeOutboundPorts`).
    pub service_ports: &'a BTreeMap<String, crate::ebpf::ports::PortSet>,
    /// Port on each node where the agent serves its metrics
    /// (`copperc agent --metrics`); `None`: none.
    pub agent_metrics_port: Option<u16>,
}

impl Default for Cluster<'_> {
    fn default() -> Self {
        Cluster {
            namespace: DEFAULT_NAMESPACE,
            agent_image: DEFAULT_AGENT_IMAGE,
            ebpf_object: None,
            one_request_per_thread: &[],
            excluded_ports: &crate::ebpf::ports::NO_PORTS,
            service_ports: &NO_SERVICE_PORTS,
            agent_metrics_port: Some(DEFAULT_AGENT_METRICS_PORT),
        }
    }
}

/// `metadata` of a generated object: name, namespace, the managed-by label
/// and the policies it realises (sorted, comma-separated).
pub fn meta(name: &str, namespace: &str, policies: &BTreeSet<&str>) -> Value {
    let list: Vec<&str> = policies.iter().copied().collect();
    json!({
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY.0: MANAGED_BY.1},
        "annotations": {POLICIES_ANNOTATION: list.join(",")},
    })
}

/// `<dir>/kustomization.yaml` listing the files of `files` under `dir`.
pub fn kustomization(dir: &str, files: &[OutFile]) -> OutFile {
    let resources: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix(dir)?.strip_prefix('/'))
        .filter(|p| *p != "kustomization.yaml")
        .collect();
    let doc = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    OutFile::text(format!("{dir}/kustomization.yaml"), yaml::to_yaml(&doc))
}

/// The `k8s/` files. `earlier` are the files of the other emitters: each
/// folder among them with a `kustomization.yaml` becomes a resource.
pub fn emit(input: &EmitInput, earlier: &[OutFile]) -> Result<Vec<OutFile>, Vec<Diagnostic>> {
    let g = input.graph;
    let ns = input.cluster.namespace;
    let mut diags = Vec::new();
    let mut files = Vec::new();
    let mut patches = Vec::new();
    for (s, svc) in g.services.iter().enumerate() {
        let istio = input.placement.sidecars[s]
            .as_deref()
            .is_some_and(super::istio::is_istio_dataplane);
        for ver in &svc.versions {
            let name = format!("{}-{ver}", svc.name);
            if !is_dns_subdomain(&name) {
                diags.push(
                    Diagnostic::new(
                        Code::NotExpressible,
                        format!("version `{ver}` of `{}` cannot name a Deployment", svc.name),
                    )
                    .at(svc.span, format!("`{name}` is not a Kubernetes object name"))
                    .with_help("use lowercase letters, digits, `-` and `.` in version names"),
                );
                continue;
            }
            let doc = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"template": {
                    "metadata": {"labels": {INJECT_LABEL: if istio { "true" } else { "false" }}},
                    "spec": wait_sidecar(input.cluster.agent_image, &svc.name),
                }},
            });
            let path = format!("patches/deployment-{name}.yaml");
            files.push(OutFile::text(format!("k8s/{path}"), yaml::to_yaml(&doc)));
            patches.push(path);
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let all: BTreeSet<&str> = input.program.policies.iter().map(|p| p.name.as_str()).collect();
    let config = agent_config(input);
    let object = input.cluster.ebpf_object;
    let inputs_hash = agent_inputs_hash(&config, object.map(|o| o.bytes));
    files.push(object_file(
        "ConfigMap",
        &format!("{AGENT_NAME}-config"),
        &all,
        json!({"data": {"config.json": config}}),
    ));
    if let Some(object) = object {
        files.push(ebpf_configmap(object.bytes, &all));
    }
    files.push(daemonset(
        &AgentPod {
            image: input.cluster.agent_image,
            object_arch: object.map(|o| o.arch),
            metrics_port: input.cluster.agent_metrics_port,
            inputs_hash: &inputs_hash,
        },
        &all,
    ));
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let mut resources: Vec<String> = earlier
        .iter()
        .filter_map(|f| f.path.strip_suffix("/kustomization.yaml"))
        .filter(|d| *d != "k8s" && !d.contains('/'))
        .map(|d| format!("../{d}"))
        .collect();
    resources.sort();
    resources.extend(
        files
            .iter()
            .filter_map(|f| f.path.strip_prefix("k8s/"))
            .filter(|p| !p.starts_with("patches/"))
            .map(str::to_string),
    );
    patches.sort();
    let patches: Vec<Value> = patches.iter().map(|p| json!({"path": p})).collect();
    let doc = json!({
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "resources": resources,
        "patches": patches,
    });
    files.push(OutFile::text("k8s/kustomization.yaml", yaml::to_yaml(&doc)));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// An object of the add-on in `AGENT_NAMESPACE`: `body` holds the fields
/// besides `apiVersion`, `kind` and `metadata`.
fn object_file(kind: &str, name: &str, policies: &BTreeSet<&str>, body: Value) -> OutFile {
    let mut doc = json!({
        "apiVersion": if kind == "DaemonSet" { "apps/v1" } else { "v1" },
        "kind": kind,
        "metadata": meta(name, AGENT_NAMESPACE, policies),
    });
    if let (Some(d), Value::Object(b)) = (doc.as_object_mut(), body) {
        d.extend(b);
    }
    OutFile::text(
        format!("k8s/{}-{name}.yaml", kind.to_ascii_lowercase()),
        yaml::to_yaml(&doc),
    )
}

/// The agent's configuration (JSON, keys sorted): for each service, the
/// pod labels that find its pods (and so their cgroups), its versions, its
/// callees, and whether it is an entry point that only the outside calls
/// (where a context header that arrives is ignored and every request starts
/// a fresh context).
fn agent_config(input: &EmitInput) -> String {
    let g = input.graph;
    let services: Vec<Value> = g
        .services
        .iter()
        .enumerate()
        .map(|(s, svc)| {
            let callees: BTreeSet<&str> = g
                .calls
                .iter()
                .filter(|c| c.from == s)
                .map(|c| g.services[c.to].name.as_str())
                .collect();
            let mut entry = json!({
                "name": svc.name,
                "podLabels": {"app": svc.name},
                "versions": svc.versions,
                "callees": callees,
                // The add-on cannot tell a caller of the mesh from one
                // outside: only an entry point that no service calls
                // starts fresh contexts (docs/ebpf.md).
                "entrypoint": g.entrypoints.contains(&s) && !g.calls.iter().any(|c| c.to == s),
                "sidecar": input.placement.sidecars[s],
                // Its threads read from non-blocking sockets, yet each
                // handles one request at a time (docs/ebpf.md, Threads).
                "oneRequestPerThread": input.cluster.one_request_per_thread.contains(&svc.name),
            });
            // Ports this service's connections leave alone, beside the
            // node-wide list; the key is absent where there are none.
            if let Some(ports) = input.cluster.service_ports.get(&svc.name).filter(|p| !p.is_empty())
                && let Some(map) = entry.as_object_mut()
            {
                map.insert("excludeOutboundPorts".into(), json!(ports.items()));
            }
            entry
        })
        .collect();
    let mut doc = json!({
        "header": CONTEXT_HEADER,
        "namespace": input.cluster.namespace,
        "services": services,
    });
    let excluded = input.cluster.excluded_ports;
    if !excluded.is_empty()
        && let Some(map) = doc.as_object_mut()
    {
        map.insert("excludeOutboundPorts".into(), json!(excluded.items()));
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The pod spec fields that add the `copper-ctx-wait` native sidecar (an
/// init container with `restartPolicy: Always`): it runs `copperc
/// await-agent` with the service's name in `COPPER_CTX_SERVICE`, and its
/// startup probe holds the application's containers back until the node's
/// agent follows the pod (see `ebpf::node` of copperc). Strategic merge
/// adds the container and the volume by name.
fn wait_sidecar(image: &str, service: &str) -> Value {
    let ready = format!("{WAIT_DIR}/ready");
    json!({
        "initContainers": [{
            "name": WAIT_CONTAINER,
            "image": image,
            "command": ["copperc"],
            "args": ["await-agent", "--ready-file", ready],
            "env": [{"name": crate::ebpf::node::SERVICE_ENV, "value": service}],
            "restartPolicy": "Always",
            "startupProbe": {
                "exec": {"command": ["copperc", "await-agent", "--probe", "--ready-file", ready]},
                "periodSeconds": 1,
                "failureThreshold": 300,
            },
            "resources": {
                "requests": {"cpu": "1m", "memory": "4Mi"},
                "limits": {"memory": "16Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": true,
                "runAsNonRoot": true,
                "runAsUser": 65532,
            },
            "volumeMounts": [{"name": WAIT_CONTAINER, "mountPath": WAIT_DIR}],
        }],
        "volumes": [{"name": WAIT_CONTAINER, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    })
}

/// `k8s/configmap-copper-ctx-bpf.yaml`: the prebuilt eBPF object, which
/// the DaemonSet mounts when `Cluster::ebpf_object` is given.
pub fn ebpf_configmap(object: &[u8], policies: &BTreeSet<&str>) -> OutFile {
    object_file(
        "ConfigMap",
        &format!("{AGENT_NAME}-bpf"),
        policies,
        json!({"binaryData": {BPF_OBJECT: base64(object)}}),
    )
}

/// The annotation of the agent's pods that changes with what the agent
/// reads at start: its configuration and its object.
pub const INPUTS_ANNOTATION: &str = "copperc.dev/agent-inputs";

/// `sha256:<hex>` of the agent's configuration, then its object if the
/// DaemonSet mounts one. The agent reads both once, when it starts: a new
/// value in the pod template makes `kubectl apply` roll the DaemonSet, and
/// each new agent takes the pinned maps over (docs/ebpf.md).
pub fn agent_inputs_hash(config: &str, object: Option<&[u8]>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(config.as_bytes());
    if let Some(o) = object {
        h.update(o);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// How the agent's pods run.
pub struct AgentPod<'a> {
    pub image: &'a str,
    /// Mount the object of `ebpf_configmap` and pass it to the agent
    /// (`--object`), on the nodes of this architecture only; `None`: the
    /// agent loads the object built into its image.
    pub object_arch: Option<&'a str>,
    /// Where on the node the agent serves its metrics.
    pub metrics_port: Option<u16>,
    /// `agent_inputs_hash`.
    pub inputs_hash: &'a str,
}

/// `k8s/daemonset-copper-ctx.yaml`.
pub fn daemonset(pod: &AgentPod, policies: &BTreeSet<&str>) -> OutFile {
    object_file("DaemonSet", AGENT_NAME, policies, daemonset_body(pod))
}

fn daemonset_body(pod: &AgentPod) -> Value {
    let (image, metrics_port) = (pod.image, pod.metrics_port);
    let labels = json!({"app.kubernetes.io/name": AGENT_NAME});
    let mut args = vec![
        "agent".to_string(),
        "--config".into(),
        format!("{CONFIG_DIR}/config.json"),
    ];
    // The host's cgroup tree, whole: pods' cgroups are found from the
    // waiters' /proc/<pid>/cgroup (hostPID) and depths count from its root.
    // The host's BPF file system: the agent pins its maps and the pods'
    // links there, so that the next agent (a rollout) takes over the
    // connections they follow; Bidirectional, so that a bpffs the agent
    // mounts when the host has none is the host's.
    let mut mounts = vec![
        json!({"name": "cgroup", "mountPath": "/sys/fs/cgroup", "readOnly": true}),
        json!({"name": "bpffs", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"}),
        json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}),
    ];
    let mut volumes = vec![
        json!({"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}}),
        json!({"name": "bpffs", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}}),
        json!({"name": "config", "configMap": {"name": format!("{AGENT_NAME}-config")}}),
    ];
    if pod.object_arch.is_some() {
        args.extend(["--object".to_string(), format!("{BPF_DIR}/{BPF_OBJECT}")]);
        mounts.push(json!({"name": "bpf-object", "mountPath": BPF_DIR, "readOnly": true}));
        volumes.push(json!({"name": "bpf-object", "configMap": {"name": format!("{AGENT_NAME}-bpf")}}));
    }
    // On the host's network, as node exporters are: one scrape target per
    // node, found by the usual annotations.
    let mut ports = Vec::new();
    let mut annotations = json!({INPUTS_ANNOTATION: pod.inputs_hash});
    if let Some(port) = metrics_port {
        args.extend(["--metrics".to_string(), format!("0.0.0.0:{port}")]);
        ports.push(json!({"name": "metrics", "containerPort": port, "protocol": "TCP"}));
        annotations["prometheus.io/scrape"] = json!("true");
        annotations["prometheus.io/port"] = json!(port.to_string());
        annotations["prometheus.io/path"] = json!("/metrics");
    }
    let template_meta = json!({"labels": labels, "annotations": annotations});
    let mut container = json!({
        "name": "agent",
        "image": image,
        "command": ["copperc"],
        "args": args,
        "securityContext": {
            "privileged": true,
            "capabilities": {"add": ["BPF", "SYS_ADMIN", "NET_ADMIN"]},
        },
        "volumeMounts": mounts,
    });
    if !ports.is_empty() {
        container["ports"] = json!(ports);
        // /healthz fails until the add-on is loaded and attached, and once
        // the agent's loop stops reporting: a rollout moves to the next node
        // only when this one's agent is ready, and a stuck agent restarts.
        let health = json!({"path": "/healthz", "port": "metrics"});
        container["startupProbe"] = json!({"httpGet": health, "periodSeconds": 2, "failureThreshold": 60});
        container["readinessProbe"] = json!({"httpGet": health, "periodSeconds": 5});
        container["livenessProbe"] = json!({"httpGet": health, "periodSeconds": 10, "failureThreshold": 3});
    }
    let mut spec = json!({
        "hostNetwork": true,
        "hostPID": true,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "containers": [container],
        "volumes": volumes,
    });
    // A node of another architecture would refuse the mounted object: no
    // agent there, rather than one that fails to load on every start.
    if let Some(arch) = pod.object_arch {
        spec["nodeSelector"] = json!({"kubernetes.io/arch": arch});
    }
    json!({
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": template_meta, "spec": spec},
        },
    })
}

/// A DNS-1123 subdomain: what Kubernetes accepts as most object names.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(crate::syntax::pattern::is_dns_label)
}

/// Standard base64 with padding (ConfigMap `binaryData`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_inputs_hash_is_sha256_of_config_then_object() {
        // FIPS 180-2's vector for "abc", split between the two inputs.
        assert_eq!(
            agent_inputs_hash("ab", Some(b"c")),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(agent_inputs_hash("abc", None), agent_inputs_hash("ab", Some(b"c")));
        assert_ne!(agent_inputs_hash("abc", None), agent_inputs_hash("abd", None));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn subdomains() {
        assert!(is_dns_subdomain("reviews-v1"));
        assert!(is_dns_subdomain("reviews-1.0"));
        assert!(!is_dns_subdomain("reviews-V1"));
        assert!(!is_dns_subdomain("reviews-v_1"));
        assert!(!is_dns_subdomain("a..b"));
    }
}
