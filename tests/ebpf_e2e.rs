//! The eBPF add-on end to end, on the running kernel, as root: three
//! unmodified thread-per-request services (tests/ebpf/chain_service.py, which
//! never copy a header) in their own cgroup v2 folders call each other,
//! client -> a -> b -> c, each with `copperc agent` (a is the entry point).
//! c must receive `x-copper-context: /a/b`, whatever the client forged, over
//! HTTP/1.1 and over h2c; a request that reaches a non-entry service without
//! a context goes on without one. One test runs the chain with the `h2` crate
//! at every hop instead (tests/ebpf/h2c_service.rs).
//!
//! Needs root, cgroup v2, BTF, and what `make deps` installs (build/venv with
//! h2, nghttp). When the kernel refuses the add-on, the test fails with the
//! agent's reason; it is never skipped.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const SERVICE: &str = "tests/ebpf/chain_service.py";
const PYTHON: &str = "build/venv/bin/python";
/// The mode of `spawn_service` that runs the Rust h2c service.
const H2C_RUST: &str = "h2c-rust";

/// Lines of a child's pipe, read on a thread so that waits can time out.
fn lines<R: Read + Send + 'static>(r: R) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The cgroup v2 mount (hybrid machines have it at /sys/fs/cgroup/unified).
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let root = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| PathBuf::from(f[1]));
    root.unwrap_or_else(|| {
        panic!("no cgroup v2 mount in /proc/self/mounts: the add-on attaches sockops to a cgroup v2")
    })
}

fn preconditions() {
    assert_eq!(
        uid(),
        Some(0),
        "the eBPF end-to-end test loads BPF programs and creates cgroups: run it as root"
    );
    assert!(
        Path::new("/sys/kernel/btf/vmlinux").exists(),
        "/sys/kernel/btf/vmlinux is missing: the kernel has no BTF, which the add-on needs"
    );
    let ok = Command::new(PYTHON)
        .args(["-c", "import h2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{PYTHON} with the `h2` package is missing: run `make deps`");
}

struct Agent {
    child: Child,
    stderr: Receiver<String>,
}

/// How one service of a chain is set up beyond its mode.
#[derive(Clone, Copy, Default)]
struct Setup<'a> {
    /// Cgroups below the folder that its agent follows (`n1/n2/...`).
    nest: usize,
    /// More arguments for its agent.
    agent_args: &'a [&'a str],
}

struct Chain {
    root: PathBuf,
    /// Each agent's `attached to` line.
    first_lines: Vec<String>,
    /// What each agent said after it, once stopped.
    said: Vec<Vec<String>>,
    agents: Vec<Agent>,
    services: Vec<Child>,
    ports: Vec<u16>,
}

impl Chain {
    /// Agents a (entry point), b, c, then services c, b, a (each in its
    /// cgroup before it opens a socket), in `modes` (chain_service.py's first
    /// argument) for a, b and c.
    fn start(tag: &str, modes: [&str; 3]) -> Chain {
        Chain::start_named(tag, modes, ["a", "b", "c"], None, "auto", &[])
    }

    /// The same with other service names (the cgroup folders stay a, b, c),
    /// optionally with an Envoy sidecar in front of one service (b or c)
    /// that routes on a context regex (see `start_envoy`), and with
    /// `agent_env` set for the agents.
    fn start_named(
        tag: &str,
        modes: [&str; 3],
        names: [&str; 3],
        envoy: Option<(&str, &str)>,
        syscall_hooks: &str,
        agent_env: &[(&str, &str)],
    ) -> Chain {
        Chain::start_with(
            tag,
            modes,
            names,
            envoy,
            syscall_hooks,
            agent_env,
            [Setup::default(); 3],
        )
    }

    /// The same with each service set up as `setups` says.
    fn start_with(
        tag: &str,
        modes: [&str; 3],
        names: [&str; 3],
        envoy: Option<(&str, &str)>,
        syscall_hooks: &str,
        agent_env: &[(&str, &str)],
        setups: [Setup; 3],
    ) -> Chain {
        preconditions();
        let root = cgroup2_root().join(format!("copper-e2e-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create cgroup {}: {e}", root.display()));
        let mut chain = Chain {
            root,
            first_lines: Vec::new(),
            said: Vec::new(),
            agents: Vec::new(),
            services: Vec::new(),
            ports: Vec::new(),
        };
        for ((name, service), setup) in ["a", "b", "c"].into_iter().zip(names).zip(setups) {
            let dir = chain.root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_copperc"));
            cmd.args([
                "agent",
                "--syscall-hooks",
                syscall_hooks,
                "--service",
                service,
                "--cgroup",
            ])
            .arg(&dir)
            .args(setup.agent_args)
            .envs(agent_env.iter().copied());
            if name == "a" {
                cmd.arg("--entrypoint");
            }
            let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
            let stderr = lines(child.stderr.take().unwrap());
            let mut said = Vec::new();
            loop {
                match stderr.recv_timeout(Duration::from_secs(30)) {
                    Ok(line) if line.contains(" attached to ") => {
                        chain.first_lines.push(line);
                        break;
                    }
                    Ok(line) => said.push(line),
                    Err(_) => {
                        let status = child.try_wait().ok().flatten();
                        panic!(
                            "copperc agent for `{name}` did not attach (exit: {status:?}); the kernel refused it:\n{}",
                            said.join("\n")
                        );
                    }
                }
            }
            chain.agents.push(Agent { child, stderr });
        }
        let mut next: Option<u16> = None;
        for (i, name, mode) in [(2, "c", modes[2]), (1, "b", modes[1]), (0, "a", modes[0])] {
            let mut dir = chain.root.join(name);
            for level in 1..=setups[i].nest {
                dir.push(format!("n{level}"));
            }
            std::fs::create_dir_all(&dir).unwrap();
            let (child, port) = spawn_service(&dir, mode, next);
            chain.services.push(child);
            chain.ports.push(port);
            next = Some(port);
            if let Some((_, regex)) = envoy.filter(|(front_of, _)| *front_of == name) {
                let (child, front) = start_envoy(port, regex);
                chain.services.push(child);
                next = Some(front);
            }
        }
        chain.ports.reverse(); // a, b, c
        chain
    }

    /// Stops the services, then the agents with SIGTERM; returns each
    /// agent's last line (its counters), checking that it detached cleanly.
    fn stop(&mut self) -> Vec<String> {
        for s in &mut self.services {
            let _ = s.kill();
            let _ = s.wait();
        }
        self.services.clear();
        let mut reports = Vec::new();
        for a in &mut self.agents {
            let pid = a.child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            let status = a.child.wait().unwrap();
            let rest: Vec<String> = a.stderr.iter().collect();
            assert!(status.success(), "agent exited with {status} after SIGTERM: {rest:?}");
            let last = rest.last().cloned().unwrap_or_default();
            assert!(last.contains("detached"), "agent did not report detaching: {rest:?}");
            reports.push(last);
            self.said.push(rest);
        }
        self.agents.clear();
        // Nothing stays attached to the cgroups.
        for name in ["a", "b", "c"] {
            let folder = self.root.join(name);
            let out = bpftool(&["cgroup".as_ref(), "show".as_ref(), folder.as_os_str()]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains("sock_ops"),
                "sockops still attached to `{name}` after SIGTERM:\n{text}"
            );
        }
        reports
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        for s in &mut self.services {
            let _ = s.kill();
            let _ = s.wait();
        }
        for a in &mut self.agents {
            let _ = a.child.kill();
            let _ = a.child.wait();
        }
        for name in ["a", "b", "c"] {
            // Deepest first: a cgroup folder goes only once it has no children.
            let mut dirs: Vec<PathBuf> = walk_dirs(&self.root.join(name));
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let _ = std::fs::remove_dir(d);
            }
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}

/// `dir` and every folder below it.
fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                all.extend(walk_dirs(&e.path()));
            }
        }
    }
    all
}

/// chain_service.py in `mode`, calling 127.0.0.1:`next`, in the cgroup
/// `cgroup`, which it joins before it opens a socket; returns it and its port.
/// The mode `h2c-rust`, followed by the service's arguments if any, runs
/// copperc-h2c-testsvc (tests/ebpf/h2c_service.rs) instead.
fn spawn_service(cgroup: &Path, mode: &str, next: Option<u16>) -> (Child, u16) {
    let procs = cgroup.join("cgroup.procs");
    let program = if let Some(args) = mode.strip_prefix(H2C_RUST) {
        let svc = common::h2c_testsvc();
        format!("'{}'{args}", svc.display())
    } else {
        format!("{PYTHON} -u {SERVICE} {mode}")
    };
    let mut script = format!("echo $$ > '{}' && exec {program}", procs.display());
    if let Some(port) = next {
        script.push_str(&format!(" --next 127.0.0.1:{port}"));
    }
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let Ok(line) = out.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("service in {} did not start", cgroup.display());
    };
    let port: u16 = line.strip_prefix("PORT ").unwrap().trim().parse().unwrap();
    (child, port)
}

/// An Envoy sidecar (outside every cgroup) that routes to `upstream` only
/// requests whose `x-copper-context` matches `regex` (Envoy's safe_regex,
/// anchored like the Envoy emitter's), and answers 403 `no match` otherwise.
/// Returns Envoy and its listener port.
fn start_envoy(upstream: u16, regex: &str) -> (Child, u16) {
    let envoy = Path::new("build/venv/bin/envoy");
    assert!(envoy.exists(), "{} is missing: run `make deps`", envoy.display());
    let port = common::listen_ports(1)[0];
    let config = format!(
        r#"{{"static_resources": {{
  "listeners": [{{"name": "c_inbound",
    "address": {{"socket_address": {{"address": "127.0.0.1", "port_value": {port}}}}},
    "filter_chains": [{{"filters": [{{"name": "envoy.filters.network.http_connection_manager",
      "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "c", "http_filters": [{{"name": "envoy.filters.http.router",
          "typed_config": {{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}}}],
        "route_config": {{"virtual_hosts": [{{"name": "c", "domains": ["*"], "routes": [
          {{"match": {{"prefix": "/", "headers": [{{"name": "x-copper-context",
              "string_match": {{"safe_regex": {{"regex": "{regex}"}}}}}}]}},
            "route": {{"cluster": "c"}}}},
          {{"match": {{"prefix": "/"}}, "direct_response": {{"status": 403, "body": {{"inline_string": "no match"}}}}}}]}}]}}}}}}]}}]}}],
  "clusters": [{{"name": "c", "type": "STATIC", "connect_timeout": "2s",
    "load_assignment": {{"cluster_name": "c", "endpoints": [{{"lb_endpoints": [{{"endpoint": {{"address":
      {{"socket_address": {{"address": "127.0.0.1", "port_value": {upstream}}}}}}}}}]}}]}}}}]}}}}"#
    );
    let mut child = Command::new(envoy)
        .args(["--log-level", "error", "--base-id"])
        .arg(port.to_string())
        .args(["--config-yaml", &config])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("Envoy did not listen on {port} within 30 s");
}

/// One HTTP/1.1 GET from outside every cgroup, `extra` header lines first
/// (where the add-on puts its own); returns the body.
fn h1_get(port: u16, extra: &str) -> String {
    h1_get_path(port, "/", extra)
}

/// `h1_get` of `path`.
fn h1_get_path(port: u16, path: &str, extra: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // One write: a request head split over several reads carries no context.
    let head = format!("GET {path} HTTP/1.1\r\n{extra}Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1."), "not an HTTP response: {resp:?}");
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Runs bpftool, which `make deps` installs.
fn bpftool(args: &[&OsStr]) -> std::process::Output {
    Command::new("bpftool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bpftool ({e}): run `make deps`"))
}

/// One h2c GET (prior knowledge) from outside every cgroup with nghttp.
fn h2_get_nghttp(port: u16, extra: &[&str]) -> String {
    let mut cmd = Command::new("nghttp");
    for h in extra {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run nghttp ({e}): run `make deps` (nghttp2-client)"));
    assert!(
        out.status.success(),
        "nghttp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One h2c GET with python-h2 (no extra header).
fn h2_get_python(port: u16) -> String {
    let out = Command::new(PYTHON)
        .args([SERVICE, "get-h2", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn http1_context_reaches_c_and_forged_header_is_ignored() {
    let mut chain = Chain::start("h1", ["h1", "h1", "h1"]);
    let (a, b) = (chain.ports[0], chain.ports[1]);
    // A browser's head: longer than the 128 bytes the add-on first copies.
    let long_head = format!("cookie: {}\r\nx-copper-context: /evil\r\n", "c".repeat(1500));
    let deep_lines: String = (0..16)
        .map(|i| format!("x-h{i}: {}\r\n", "v".repeat(3 * i + 1)))
        .collect();
    let got = [
        // The client forges a context; the entry point a ignores it.
        h1_get(a, "x-copper-context: /evil\r\n"),
        h1_get(a, ""),
        h1_get(a, &long_head),
        // b is not an entry point: a request without a context carries none on.
        h1_get(b, ""),
        // A context further down, after lines of every length modulo 8
        // (the search passes 8 bytes without a line feed in one step).
        h1_get(b, &format!("{deep_lines}x-copper-context: /a\r\n")),
    ];
    let reports = chain.stop();
    assert_eq!(
        got,
        [r#"["/a/b"]"#, r#"["/a/b"]"#, r#"["/a/b"]"#, "[]", r#"["/a/b"]"#],
        "{reports:#?}"
    );
    assert!(
        reports[0].contains("rx_h1_requests=3 ") && reports[0].contains("tx_h1_inserted=3"),
        "{reports:?}"
    );
    assert!(
        reports[1].contains("tx_h1_inserted=4") && reports[1].contains("tx_no_context=1"),
        "{reports:?}"
    );
}

/// `copperc agent --service --metrics` answers scrapes while it runs: its
/// counters as the requests go through, and the one cgroup it follows; a
/// second agent on the same address is refused before it attaches anything.
#[test]
fn a_service_agent_serves_its_counters_as_metrics() {
    let metrics_args: &[&str] = &["--metrics", "127.0.0.1:0"];
    let setups = [
        Setup::default(),
        Setup {
            nest: 0,
            agent_args: metrics_args,
        },
        Setup::default(),
    ];
    let mut chain = Chain::start_with(
        "metrics",
        ["h1", "h1", "h1"],
        ["a", "b", "c"],
        None,
        "auto",
        &[],
        setups,
    );
    let line = chain.agents[1]
        .stderr
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_default();
    let metrics = metrics_url(&line);
    let got = [
        h1_get(chain.ports[0], ""),
        h1_get(chain.ports[0], ""),
        h1_get(chain.ports[1], ""),
    ];
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#, "[]"]);
    std::thread::sleep(Duration::from_millis(1200));
    let text = scrape(&metrics);
    for line in [
        "copper_ctx_followed_cgroups{service=\"b\"} 1",
        "copper_ctx_rx_h1_requests_total 3",
        "copper_ctx_rx_with_context_total 2",
        "copper_ctx_tx_h1_inserted_total 2",
        "copper_ctx_tx_no_context_total 1",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "no `{line}` in:\n{text}");
    }
    // `--check-kernel` beside the running agents loads an object of its
    // own and detaches it: the chain goes on as before.
    let check = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--check-kernel"])
        .output()
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(h1_get(chain.ports[0], ""), r#"["/a/b"]"#);
    let health = http_get_text(&metrics, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"),
        "{health}"
    );
    let busy = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--service", "b", "--cgroup"])
        .arg(chain.root.join("b"))
        .args(["--metrics", &metrics])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&busy.stderr);
    assert_eq!(busy.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot serve metrics on {metrics}: ")), "{err}");
    // Its counters at exit: those the scrape showed, and the request after
    // `--check-kernel`.
    let reports = chain.stop();
    assert!(
        reports[1].contains("rx_h1_requests=4 ") && reports[1].contains("tx_h1_inserted=3 "),
        "{reports:?}"
    );
}

/// `copperc agent --check-kernel` loads the add-on, says what it attached
/// and detaches it, following nothing; forced fallbacks show in its line.
#[test]
fn check_kernel_says_what_the_agent_would_attach() {
    preconditions();
    for (env, hooks, says) in [
        (vec![], "auto", vec!["socket receive hook (tp_btf sock_recv_length)"]),
        (
            vec![("COPPERC_AGENT_NO_TASK_STORAGE", "1")],
            "tracepoints",
            vec![
                "syscall tracepoints",
                "threads' state in an LRU hash: COPPERC_AGENT_NO_TASK_STORAGE is set",
            ],
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
            .args(["agent", "--check-kernel", "--syscall-hooks", hooks])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(err.contains("takes the add-on: sockops, sk_msg, "), "{err}");
        assert!(err.trim_end().ends_with("detached again, nothing followed"), "{err}");
        for s in says {
            assert!(err.contains(s), "no `{s}` in: {err}");
        }
        assert_eq!(err.contains("LRU hash"), !env.is_empty(), "{err}");
    }
    // A refusal is exit code 3, with the reason.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), b"not an ELF object").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--check-kernel", "--object"])
        .arg(bad.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("refuses the add-on: "), "{err}");
}

/// An upstream on 127.0.0.1 that answers every request `[]` and hands on
/// each request head it reads, as received; returns its port.
fn recording_upstream() -> (u16, Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]");
            if tx.send(String::from_utf8_lossy(&head).into_owned()).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// `--exclude-outbound-ports`: a connection the service opens to an
/// excluded port never enters the sockhash, so its requests go out as the
/// service wrote them; one to another port carries the context. The first
/// agent excludes the upstream's port with its bytes swapped (what a
/// remote port read in the wrong byte order would match), the second the
/// port itself; the service opens a connection per call, so each call
/// after the second agent attached is left alone.
#[test]
fn connections_to_excluded_ports_are_not_followed() {
    /// The agent, the service and its cgroup go, even when an assertion fails.
    struct Service {
        root: PathBuf,
        agent: Option<Child>,
        child: Option<(Child, u16)>,
    }
    impl Drop for Service {
        fn drop(&mut self) {
            for child in self.agent.iter_mut().chain(self.child.iter_mut().map(|(c, _)| c)) {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = std::fs::remove_dir(&self.root);
        }
    }
    preconditions();
    let root = cgroup2_root().join(format!("copper-e2e-excl-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut service = Service {
        root: root.clone(),
        agent: None,
        child: None,
    };
    let (port, heads) = recording_upstream();
    let swapped = match port.swap_bytes() {
        0 => 1,
        p if p == port => port.wrapping_add(1).max(1),
        p => p,
    };
    let start_agent = |ports: String| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_copperc"))
            .args([
                "agent",
                "--service",
                "b",
                "--entrypoint",
                "--exclude-outbound-ports",
                &ports,
                "--cgroup",
            ])
            .arg(&root)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = lines(child.stderr.take().unwrap());
        let first = said_until(&stderr, " attached to ").pop().unwrap();
        (child, stderr, first)
    };
    let mut got = Vec::new();
    for (excluded, context) in [(swapped, true), (port, false)] {
        let (agent, stderr, first) = start_agent(excluded.to_string());
        let agent = service.agent.insert(agent);
        assert!(
            first.contains(&format!("; connections to ports {excluded} not followed)")),
            "{first}"
        );
        let b = service
            .child
            .get_or_insert_with(|| spawn_service(&root, "h1", Some(port)))
            .1;
        assert_eq!(h1_get(b, ""), "[]");
        let head = heads.recv_timeout(Duration::from_secs(20)).unwrap();
        let report = terminate(agent, &stderr).pop().unwrap_or_default();
        service.agent = None;
        got.push((context, head.contains("\r\nx-copper-context: /b\r\n"), report.clone()));
        if context {
            assert!(
                report.contains("tx_h1_inserted=1 ") && report.ends_with("tx_excluded_conns=0"),
                "{report}"
            );
        } else {
            assert!(
                !head.to_ascii_lowercase().contains("x-copper-context"),
                "an excluded connection carried a context: {head:?}"
            );
            assert!(
                report.contains("tx_h1_inserted=0 ") && report.ends_with("tx_excluded_conns=1"),
                "{report}"
            );
        }
    }
    drop(service);
    assert!(got.iter().all(|(want, has, _)| want == has), "{got:#?}");
}

/// Node-wide, a service's own `excludeOutboundPorts` leaves only its own
/// pods' connections to those ports alone: a and b (both entry points)
/// call the same recording upstream, whose port only b's list names. a's
/// request carries its context, b's goes out as b wrote it. b's pod lies a
/// level deeper than a's, and each service runs in its pod's `app` cgroup,
/// so the socket's cgroup is walked up to the followed one at two depths.
#[test]
fn a_services_own_excluded_ports_leave_only_its_connections_alone() {
    let mut node = Node::new("svcports");
    let tmp = tempfile::tempdir().unwrap();
    let (port, heads) = recording_upstream();
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"services":[{{"name":"a","entrypoint":true}},{{"name":"b","entrypoint":true,"excludeOutboundPorts":[{port}]}}]}}"#
        ),
    )
    .unwrap();
    let stderr = node.agent_args(&config, false, &["--metrics", "127.0.0.1:0"]);
    let first = said_until(&stderr, "node-wide").pop().unwrap();
    assert!(
        first.contains(&format!("; connections of `b` to ports {port} not followed)")),
        "{first}"
    );
    let mut got = Vec::new();
    for pod in ["a", "b"] {
        let ready = tmp.path().join(format!("{pod}.ready"));
        let (code, err) = await_agent(&node.pod(pod).join("wait"), pod, &ready, 30);
        assert_eq!(code, Some(0), "await-agent for `{pod}`: {err}");
        let (child, service) = spawn_service(&node.pod(pod).join("app"), "h1", Some(port));
        node.children.push(child);
        assert_eq!(h1_get(service, ""), "[]");
        let head = heads.recv_timeout(Duration::from_secs(20)).unwrap();
        let context = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("x-copper-context:"))
            .map(str::to_string);
        got.push((pod, context));
    }
    let info = scrape(&metrics_url(&said_until(&stderr, "metrics at").pop().unwrap()));
    assert!(
        info.contains(&format!("excluded_outbound_ports=\"b:{port}\"}} 1\n")),
        "{info}"
    );
    let mut agent = node.children.remove(0);
    let report = terminate(&mut agent, &stderr).pop().unwrap_or_default();
    assert_eq!(
        got,
        [("a", Some("x-copper-context: /a".to_string())), ("b", None)],
        "{report}"
    );
    assert!(
        report.contains("tx_h1_inserted=1 ") && report.ends_with("tx_excluded_conns=1"),
        "{report}"
    );
}

/// A service whose cgroup is below the one its agent follows: b two levels
/// down, c five (more than the cached walk up the tree takes before it asks
/// the kernel's helper). Their second requests find the service from their
/// cgroups' cached answers, and still send the context on.
#[test]
fn services_below_the_followed_cgroup_are_followed() {
    let mut chain = Chain::start_with(
        "nested",
        ["h1", "h1", "h1"],
        ["a", "b", "c"],
        None,
        "auto",
        &[],
        [0, 2, 5].map(|nest| Setup {
            nest,
            ..Setup::default()
        }),
    );
    let (a, c) = (chain.ports[0], chain.ports[2]);
    let got = [h1_get(a, ""), h1_get(a, ""), h1_get(a, "")];
    // c's own sends: it calls nobody, so its counters show its reads only.
    let direct = h1_get(c, "x-copper-context: /a/b\r\n");
    let reports = chain.stop();
    assert_eq!(got, [r#"["/a/b"]"#; 3], "{reports:#?}");
    assert_eq!(direct, r#"["/a/b"]"#);
    assert!(reports[1].contains("tx_h1_inserted=3"), "{reports:?}");
    assert!(
        reports[2].contains("rx_h1_requests=4 ") && reports[2].contains("rx_with_context=4"),
        "{reports:?}"
    );
}

/// One thread that serves its connections one after the other (b: Python's
/// `HTTPServer`): a connection that ended is no longer the thread's, so the
/// next one does not make it a thread that serves two at once (`mux`), and
/// every request carries its context on. b closes each connection after
/// its answer (HTTP/1.0), or keeps it until a closes it (HTTP/1.1, b reads
/// the end); over each set of receive hooks: at the socket, b's close is
/// seen by `copper_sock_state` and the end read by `copper_sock_recv`; the
/// syscall hooks see close(2).
#[test]
fn a_thread_that_serves_connections_one_after_another_passes_each_context() {
    for hooks in ["socket", "tracepoints"] {
        for (mode, closes) in [("h1-serial", "b closes"), ("h1-serial-keepalive-in", "a closes")] {
            let mut chain = Chain::start_named(
                &format!("serial-{hooks}-{}", mode.len()),
                ["h1", mode, "h1"],
                ["a", "b", "c"],
                None,
                hooks,
                &[],
            );
            let a = chain.ports[0];
            let got: Vec<String> = (0..4).map(|_| h1_get(a, "")).collect();
            let reports = chain.stop();
            assert_eq!(got, vec![r#"["/a/b"]"#; 4], "{hooks}, {closes}: {reports:#?}");
            assert!(
                reports[1].contains("rx_ambiguous=0") && reports[1].contains("tx_h1_inserted=4"),
                "{hooks}, {closes}: {reports:?}"
            );
        }
    }
}

/// A request longer than the part of a message the add-on copies (1024
/// bytes: b's request head to c carries a 1,500-byte header), over HTTP/1.1
/// and h2c: the value is inserted into the message in place instead of the
/// message being rebuilt whole.
#[test]
fn a_request_longer_than_the_copied_part_gets_the_context() {
    let mut chain = Chain::start("large", ["h1", "h1-large", "h1"]);
    let a = chain.ports[0];
    let got = [h1_get(a, ""), h1_get(a, "")];
    let reports = chain.stop();
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#], "{reports:#?}");
    assert!(reports[1].contains("tx_h1_inserted=2"), "{reports:?}");
    // The same for h2c: b's HEADERS frame to c is over 1,024 bytes.
    let mut chain = Chain::start("large-h2", ["h2", "h2-large", "h2"]);
    let a = chain.ports[0];
    let got = [h2_get_python(a), h2_get_python(a)];
    let reports = chain.stop();
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#], "{reports:#?}");
    assert!(reports[1].contains("tx_h2_inserted=2"), "{reports:?}");
}

/// A task's service is cached per cgroup: a thread that read sockets before
/// its pod was followed must be followed once the pod is. b's thread for
/// one kept client connection reads a request before b's pod is followed
/// (it passes no context on), then b's waiter starts, then the same thread
/// reads a request with a context, which must reach c.
#[test]
fn a_thread_is_followed_once_its_pod_is() {
    let mut node = Node::new("late");
    let tmp = tempfile::tempdir().unwrap();
    let config = compiled_agent_config(tmp.path());
    let stderr = node.agent(&config, false);
    let mut said = Vec::new();
    for pod in ["a", "c"] {
        node.sidecar(pod, &tmp.path().join(format!("{pod}.ready")));
    }
    said_following(&stderr, 2, &mut said);
    let (c, c_port) = spawn_service(&node.pod("c").join("app"), "h1", None);
    node.children.push(c);
    let (b, b_port) = spawn_service(&node.pod("b").join("app"), "h1-keepalive-in", Some(c_port));
    node.children.push(b);
    let client = TcpStream::connect(("127.0.0.1", b_port)).unwrap();
    let before = h1_kept_gets_on(&client, b_port, &["x-copper-context: /x\r\n"]);
    node.sidecar("b", &tmp.path().join("b.ready"));
    said_following(&stderr, 3, &mut said);
    let after = h1_kept_gets_on(&client, b_port, &["x-copper-context: /x\r\n"]);
    assert_eq!(before, [r#"[]"#], "b is not followed yet: {said:#?}");
    assert_eq!(
        after,
        [r#"["/x/b"]"#],
        "the same thread of b, once its pod is followed: {said:#?}"
    );
}

/// Several requests on one kept connection: (context header line, body) each.
fn h1_kept_gets(port: u16, extras: &[&str]) -> Vec<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    h1_kept_gets_on(&s, port, extras)
}

/// The same on an open connection `s`.
fn h1_kept_gets_on(s: &TcpStream, port: u16, extras: &[&str]) -> Vec<String> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s.try_clone().unwrap();
    extras
        .iter()
        .map(|extra| {
            let head = format!("GET / HTTP/1.1\r\n{extra}Host: 127.0.0.1:{port}\r\n\r\n");
            w.write_all(head.as_bytes()).unwrap();
            let mut length = None;
            loop {
                let mut line = String::new();
                assert!(r.read_line(&mut line).unwrap() > 0, "the connection closed");
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse::<usize>().ok();
                }
            }
            let mut body = vec![0; length.expect("a kept answer has a content-length")];
            r.read_exact(&mut body).unwrap();
            String::from_utf8(body).unwrap()
        })
        .collect()
}

/// Kept connections at every hop, and a context that changes from request to
/// request: b's connection to c brings responses only, which the add-on
/// passes at once from its second request on, while b's connection from the
/// client keeps bringing requests, each of which sets what b sends next.
#[test]
fn a_long_request_line_carries_the_context() {
    // The request line is found in line within its first 64 bytes, and by a
    // bounded loop after them: a path of 150 bytes takes the loop, at every
    // read (b, c) and every send (a, b). h1-keepalive passes the path on.
    let mut chain = Chain::start("longline", ["h1-keepalive"; 3]);
    let path = format!("/{}", "p".repeat(149));
    let got = h1_get_path(chain.ports[0], &path, "");
    let first_lines = chain.first_lines.clone();
    let reports = chain.stop();
    assert_eq!(got, r#"["/a/b"]"#, "{reports:#?}");
    // On this kernel the threads' state is in task storage.
    assert!(first_lines.iter().all(|l| !l.contains("LRU hash")), "{first_lines:#?}");
}

#[test]
fn kept_connections_carry_each_requests_own_context() {
    let mut chain = Chain::start("kept", ["h1-keepalive", "h1-keepalive", "h1"]);
    let b = chain.ports[1];
    let sent = [
        "x-copper-context: /x\r\n",
        "x-copper-context: /y\r\n",
        "x-copper-context: /x\r\n",
        "",
        "x-copper-context: /y\r\n",
        "x-copper-context: /y/z\r\n",
    ];
    let got = h1_kept_gets(b, &sent);
    let reports = chain.stop();
    assert_eq!(
        got,
        [
            r#"["/x/b"]"#,
            r#"["/y/b"]"#,
            r#"["/x/b"]"#,
            "[]",
            r#"["/y/b"]"#,
            r#"["/y/z/b"]"#
        ],
        "{reports:#?}"
    );
    assert!(
        reports[1].contains("tx_h1_inserted=5") && reports[1].contains("tx_no_context=1"),
        "{reports:?}"
    );
}

/// The same over each set of receive hooks, forced: at the socket, the
/// syscall tracepoints (tracefs is mounted by the agent if needed) and the
/// tp_btf fallback; for HTTP/1.1 and h2c, whose server connections the
/// socket hook follows in socket storage and the syscall hooks by (tgid, fd).
#[test]
fn every_set_of_receive_hooks_carries_the_context() {
    for (hooks, said) in [
        ("socket", "socket receive hook"),
        ("tracepoints", "syscall tracepoints"),
        ("tp-btf", "tp_btf sys_enter/sys_exit"),
    ] {
        let mut chain = Chain::start_named(&format!("hooks-{hooks}"), ["h1"; 3], ["a", "b", "c"], None, hooks, &[]);
        let (a, b) = (chain.ports[0], chain.ports[1]);
        let got = [h1_get(a, "x-copper-context: /evil\r\n"), h1_get(b, "")];
        let first_lines: Vec<String> = chain.first_lines.clone();
        let reports = chain.stop();
        assert_eq!(got, [r#"["/a/b"]"#, "[]"], "{hooks}: {reports:#?}");
        assert!(
            first_lines.iter().all(|l| l.contains(said)),
            "{hooks}: the agents did not attach {said}: {first_lines:#?}"
        );

        let mut chain = Chain::start_named(
            &format!("hooks-h2-{hooks}"),
            ["h2"; 3],
            ["a", "b", "c"],
            None,
            hooks,
            &[],
        );
        let (a, b) = (chain.ports[0], chain.ports[1]);
        let got = [h2_get_nghttp(a, &["x-copper-context: /evil"]), h2_get_python(b)];
        let reports = chain.stop();
        assert_eq!(got, [r#"["/a/b"]"#, "[]"], "h2c, {hooks}: {reports:#?}");
    }
}

/// On a kernel without cgroup storage (before Linux 6.2, where the socket
/// receive hook is missing too) the agent loads the object without its
/// per-cgroup cache of services, and with the syscall tracepoints: forced
/// here by the agent's COPPERC_AGENT_NO_CGROUP_STORAGE.
#[test]
fn as_on_an_older_kernel_the_context_still_flows() {
    // No cgroup storage (Linux 6.2), no task storage for sk_msg, and the
    // syscall tracepoints (no socket receive hook before Linux 6.4).
    let env = [
        ("COPPERC_AGENT_NO_CGROUP_STORAGE", "1"),
        ("COPPERC_AGENT_NO_TASK_STORAGE", "1"),
    ];
    let mut chain = Chain::start_named("nocgs", ["h1"; 3], ["a", "b", "c"], None, "tracepoints", &env);
    let (a, b) = (chain.ports[0], chain.ports[1]);
    let got = [h1_get(a, "x-copper-context: /evil\r\n"), h1_get(a, ""), h1_get(b, "")];
    let first_lines = chain.first_lines.clone();
    let reports = chain.stop();
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#, "[]"], "{reports:#?}");
    assert!(
        first_lines.iter().all(|l| l
            .contains("no cache of each cgroup's service: COPPERC_AGENT_NO_CGROUP_STORAGE is set")
            && l.contains("threads' state in an LRU hash: COPPERC_AGENT_NO_TASK_STORAGE is set")),
        "the agents did not load without the cache and task storage: {first_lines:#?}"
    );
}

#[test]
fn h2c_context_reaches_c_and_forged_header_is_ignored() {
    let mut chain = Chain::start("h2", ["h2", "h2", "h2"]);
    let (a, b) = (chain.ports[0], chain.ports[1]);
    let got = [
        h2_get_nghttp(a, &["x-copper-context: /evil"]),
        h2_get_python(a),
        h2_get_python(b),
    ];
    let reports = chain.stop();
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#, "[]"], "{reports:#?}");
    assert!(reports[0].contains("tx_h2_inserted=2"), "{reports:?}");
    assert!(
        reports[1].contains("tx_h2_inserted=2") && reports[1].contains("tx_no_context=1"),
        "{reports:?}"
    );
}

/// `n` GETs, one after another, on one kept h2c connection of the `h2`
/// crate; every `forge_every`-th request carries a forged context. Returns
/// the bodies.
fn h2c_kept_gets(port: u16, n: usize, forge_every: usize) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut bodies = Vec::new();
        for i in 0..n {
            send = send.ready().await.unwrap();
            let mut request = http::Request::builder().uri(format!("http://127.0.0.1:{port}/"));
            if i % forge_every == 0 {
                request = request.header("x-copper-context", "/evil");
            }
            let (response, _) = send.send_request(request.body(()).unwrap(), true).unwrap();
            let mut body = response.await.unwrap().into_body();
            let mut out = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
                out.extend_from_slice(&chunk);
            }
            bodies.push(String::from_utf8(out).unwrap());
        }
        bodies
    })
}

/// Agents of services declared to handle one request per thread.
const ONE_REQUEST: Setup = Setup {
    nest: 0,
    agent_args: &["--one-request-per-thread"],
};

/// The HTTP/2 of hyper and tonic (the `h2` crate, on a single-threaded tokio
/// runtime per connection) at every hop, the client's included, with kept
/// connections, over each set of receive hooks: every request of the
/// connection carries its context,
/// inserted into a header block that the sender coded with Huffman strings
/// and its dynamic table, and a forged one is dropped at the entry point.
/// The services read from non-blocking sockets, so their agents are told
/// that each thread handles one request at a time.
#[test]
fn h2_crate_services_on_kept_connections_carry_every_context() {
    for hooks in ["socket", "tracepoints", "tp-btf"] {
        let mut chain = Chain::start_with(
            &format!("h2rust-{hooks}"),
            [H2C_RUST; 3],
            ["a", "b", "c"],
            None,
            hooks,
            &[],
            [Setup::default(), ONE_REQUEST, ONE_REQUEST],
        );
        // Enough requests for the readers' buffers (tokio's, 8 KiB) to fill
        // and end reads inside frame headers and header blocks, many times.
        let got = h2c_kept_gets(chain.ports[0], 1500, 3);
        let reports = chain.stop();
        let wrong: Vec<(usize, &String)> = got.iter().enumerate().filter(|(_, b)| *b != r#"["/a/b"]"#).collect();
        assert!(
            got.len() == 1500 && wrong.is_empty(),
            "{hooks}: {wrong:?}\n{reports:#?}"
        );
        for report in &reports[..2] {
            assert!(
                report.contains("tx_h2_inserted=1500 ") && report.contains("rx_ambiguous=0 "),
                "{hooks}: {reports:#?}"
            );
        }
    }
}

/// The same services without `--one-request-per-thread`: a request read
/// from a non-blocking socket gives its thread no context (an async
/// runtime's thread may read the next request before it sends this one's
/// calls, or send another thread's), over each set of receive hooks, which
/// learn it differently (the socket hook from the kernel's flags, the
/// syscall hooks from the file), and their agents say so, with the flag to
/// use. The entry point's value does not depend on the request, so a still
/// sends `/a`.
#[test]
fn h2_crate_services_on_non_blocking_sockets_send_no_context_by_default() {
    for hooks in ["socket", "tracepoints", "tp-btf"] {
        let mut chain = Chain::start_named(
            &format!("h2nb-{hooks}"),
            [H2C_RUST; 3],
            ["a", "b", "c"],
            None,
            hooks,
            &[],
        );
        let got = h2c_kept_gets(chain.ports[0], 20, 3);
        let reports = chain.stop();
        assert_eq!(got, vec!["[]".to_string(); 20], "{hooks}: {reports:#?}");
        assert!(reports[0].contains("tx_h2_inserted=20 "), "{hooks}: {reports:#?}");
        assert!(
            reports[1].contains("rx_h2_requests=20 ")
                && reports[1].contains("tx_h2_inserted=0 ")
                && reports[1].contains("tx_no_context=20 ")
                && reports[1].contains("rx_nonblocking=20"),
            "{hooks}: {reports:#?}"
        );
        // Said once, within a second of the first such request: with the
        // count of that moment.
        let told = |i: usize, name: &str| {
            chain.said[i].iter().any(|l| {
                l.starts_with(&format!("copperc agent: `{name}` read "))
                    && l.contains(" requests from non-blocking sockets")
                    && l.contains("--one-request-per-thread")
            })
        };
        assert!(told(1, "b") && told(2, "c"), "{hooks}: {:#?}", chain.said);
        assert!(
            !chain.said[0].iter().any(|l| l.contains("non-blocking")),
            "{:#?}",
            chain.said
        );
        // On exit, b's agent names the cgroup that met the reasons: its own.
        let summary = |i: usize| {
            chain.said[i]
                .iter()
                .find(|l| l.starts_with("copperc agent: requests without a context, by cgroup: "))
                .cloned()
                .unwrap_or_default()
        };
        assert!(
            summary(1).ends_with(": `b` .: rx_nonblocking=20 tx_no_context=20"),
            "{hooks}: {:#?}",
            chain.said
        );
        assert!(summary(0).is_empty(), "{hooks}: {:#?}", chain.said);
    }
}

/// b serves the streams of one connection at the same time, a task per
/// stream (as hyper's server does), on one thread's runtime or on a
/// multi-threaded one, and waits 300 ms before it calls c: the second
/// stream's HEADERS frame is read before the first stream's call is sent.
/// Neither call may carry a context (the first would otherwise carry the
/// second's). The control: b serving the streams one after the other, and
/// declared so, passes each stream's own.
#[test]
fn h2c_streams_served_at_once_get_no_context_rather_than_a_wrong_one() {
    let at_once = |tag: &str, b: &str, setup: Setup| {
        let mut chain = Chain::start_with(
            tag,
            ["h2", b, "h2"],
            ["a", "b", "c"],
            None,
            "auto",
            &[],
            [Setup::default(), setup, Setup::default()],
        );
        let out = Command::new(PYTHON)
            .args([
                SERVICE,
                "get-h2-at-once",
                &format!("127.0.0.1:{}", chain.ports[1]),
                "/x",
                "/y",
            ])
            .output()
            .unwrap();
        let reports = chain.stop();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
        (got, reports)
    };
    for (tag, b) in [
        ("h2once", "h2c-rust --streams-at-once --delay-ms 300"),
        ("h2workers", "h2c-rust --multi-thread --delay-ms 300"),
    ] {
        let (got, reports) = at_once(tag, b, Setup::default());
        assert_eq!(got, [Vec::<String>::new(), Vec::new()], "{b}: {reports:#?}");
        // Two calls without context, by the non-blocking rule (one count
        // per read that brought a request: 1 if both came in one read).
        assert!(
            reports[1].contains("tx_no_context=2 ")
                && reports[1].contains("tx_h2_inserted=0 ")
                && !reports[1].contains("rx_nonblocking=0"),
            "{b}: {reports:#?}"
        );
    }
    let (got, reports) = at_once("h2serial", "h2c-rust --delay-ms 300", ONE_REQUEST);
    assert_eq!(got, [["/x/b"], ["/y/b"]], "{reports:#?}");
}

/// b, a blocking h2c server that handles a request once its stream ends
/// (after the body), reads in one read the end of one request's body and
/// the next request: the thread then handles the first request after it
/// read the second's context, so neither call may carry one (the first
/// would otherwise carry /y/b). A request whose trailers (a HEADERS frame
/// on its own stream) come in a later read keeps its context: trailers are
/// not a request. A client that sends two requests' bodies at once gets no
/// context on that connection from then on.
#[test]
fn an_h2_request_read_with_the_end_of_another_gives_no_context() {
    let mut chain = Chain::start("h2body", ["h2", "h2-on-end", "h2"]);
    let addr = format!("127.0.0.1:{}", chain.ports[1]);
    let run = |mode: &str| {
        let out = Command::new(PYTHON).args([SERVICE, mode, &addr]).output().unwrap();
        assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<Vec<String>>>(&out.stdout).unwrap()
    };
    let overlap = run("get-h2-body-overlap");
    let trailers = run("get-h2-trailers");
    let uploads = run("get-h2-uploads");
    let reports = chain.stop();
    assert_eq!(overlap, [Vec::<String>::new(), Vec::new()], "{reports:#?}");
    assert_eq!(trailers, [["/x/b"]], "{reports:#?}");
    // Two bodies at once: the connection gives no context from then on, so
    // /z (read while /x's body still came, handled before /x) is not sent
    // with /x's request.
    assert_eq!(uploads, [Vec::<String>::new(), Vec::new(), Vec::new()], "{reports:#?}");
    // b's six calls to c: the trailers' request with its context, the rest
    // without (how many reads the requests took may vary; these may not).
    assert!(
        reports[1].contains("tx_h2_inserted=1 ") && reports[1].contains("tx_no_context=5 "),
        "{reports:#?}"
    );
}

/// A request's HEADERS frame that the server reads in pieces (its frame
/// header cut, its block cut before or inside the add-on's literal, a long
/// block in three reads, many small reads): each request gets its context,
/// and the connection's frames stay in step, with every set of receive
/// hooks. The client talks to b with the context in the add-on's form, as
/// a's add-on would send it.
#[test]
fn h2c_requests_read_in_pieces_keep_their_context() {
    let plans = [
        "0/4",
        "0/9",
        "0/-6",
        "0/-25",
        "0/11,15",
        "600/100,-8",
        "0/3,6,9",
        "0/",
        "0/2,5,8,12,20,30,-3",
    ]
    .map(String::from);
    for hooks in ["socket", "tracepoints", "tp-btf"] {
        split_requests_keep_their_contexts(&format!("h2split-{hooks}"), hooks, &plans);
    }
}

/// The same with 30 plans drawn at random (a fixed seed): 1 to 4 cuts each,
/// counted from the frame's start or its end, in blocks of three sizes.
#[test]
fn h2c_requests_cut_at_random_bytes_keep_their_context() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % bound
    };
    let plans: Vec<String> = (0..30)
        .map(|_| {
            let pad = [0, 0, 300, 700][next(4) as usize];
            let cuts: Vec<String> = (0..=next(4))
                .map(|_| {
                    let at = 1 + next(60) as i64;
                    if next(2) == 0 { at } else { -at }.to_string()
                })
                .collect();
            format!("{pad}/{}", cuts.join(","))
        })
        .collect();
    split_requests_keep_their_contexts("h2random", "socket", &plans);
}

/// Sends `plans` (see chain_service.py get-h2-split) to b of an h2 chain
/// over the receive hooks `hooks`: c must see each request's own context,
/// and b must have read each one's.
fn split_requests_keep_their_contexts(tag: &str, hooks: &str, plans: &[String]) {
    let mut chain = Chain::start_named(tag, ["h2"; 3], ["a", "b", "c"], None, hooks, &[]);
    let out = Command::new(PYTHON)
        .args([SERVICE, "get-h2-split", &format!("127.0.0.1:{}", chain.ports[1]), "/x"])
        .args(plans)
        .output()
        .unwrap();
    let reports = chain.stop();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<Vec<String>> = (0..plans.len()).map(|i| vec![format!("/x{i}/b")]).collect();
    assert_eq!(got, want, "{hooks}: {plans:?}\n{reports:#?}");
    let n = plans.len();
    assert!(
        reports[1].contains(&format!("rx_h2_requests={n} rx_with_context={n} rx_ambiguous=0 "))
            && reports[1].contains(&format!("tx_h2_inserted={n} ")),
        "{hooks}: {reports:#?}"
    );
}

/// A read with `MSG_DONTWAIT` on a blocking socket does not wait either:
/// b (which reads its requests so) sends no context, over each set of
/// receive hooks (the socket hook is given the flag; the syscall hooks read
/// it from recvfrom's fourth argument).
#[test]
fn a_request_read_with_msg_dontwait_gives_no_context() {
    for hooks in ["socket", "tracepoints", "tp-btf"] {
        let mut chain = Chain::start_named(
            &format!("dontwait-{hooks}"),
            ["h1", "h1-dontwait", "h1"],
            ["a", "b", "c"],
            None,
            hooks,
            &[],
        );
        let got = [h1_get(chain.ports[0], ""), h1_get(chain.ports[0], "")];
        let reports = chain.stop();
        assert_eq!(got, ["[]", "[]"], "{hooks}: {reports:#?}");
        assert!(
            reports[1].contains("rx_h1_requests=2 ")
                && reports[1].contains("tx_no_context=2 ")
                && reports[1].contains("rx_nonblocking=2"),
            "{hooks}: {reports:#?}"
        );
    }
}

#[test]
fn event_loop_service_sends_no_context_rather_than_a_wrong_one() {
    // b is one asyncio thread serving every connection and waits a second
    // before calling c, so two requests are in b at once.
    let mut chain = Chain::start("async", ["h1", "h1-async", "h1"]);
    let (a, b) = (chain.ports[0], chain.ports[1]);
    let first = std::thread::spawn(move || h1_get(a, ""));
    std::thread::sleep(Duration::from_millis(300));
    // Straight to b (not an entry point), claiming another context.
    let second = h1_get(b, "x-copper-context: /x\r\n");
    let first = first.join().unwrap();
    // b's thread reads requests on non-blocking sockets (and read one on a
    // second connection while the first was open): its sends cannot be
    // tied to one request, so neither carries a context (the first would
    // otherwise carry /x/b).
    assert_eq!(first, "[]");
    assert_eq!(second, "[]");
    let reports = chain.stop();
    // asyncio reads from non-blocking sockets: the first request gives b's
    // thread no value, before a second connection could mark it `mux`; the
    // second finds it marked.
    assert!(
        reports[1].contains("tx_no_context=2")
            && reports[1].contains("rx_nonblocking=1")
            && reports[1].contains("rx_ambiguous=1 "),
        "{reports:?}"
    );
}

/// A request head with the context `context`.
fn h1_head(port: u16, context: &str) -> String {
    format!("GET / HTTP/1.1\r\nx-copper-context: {context}\r\nHost: 127.0.0.1:{port}\r\n\r\n")
}

/// A connection to `port` that sent one request head (in one write) with
/// the context `context`, its answer still to be read.
fn h1_send(port: u16, context: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(h1_head(port, context).as_bytes()).unwrap();
    s
}

/// The bodies of the `200 OK` responses of `version` (`HTTP/1.0` or
/// `HTTP/1.1`) that follow one another in `answers`.
fn bodies<'a>(answers: &'a str, version: &str) -> Vec<&'a str> {
    answers
        .split(&format!("{version} 200 OK\r\n"))
        .skip(1)
        .filter_map(|r| r.split_once("\r\n\r\n").map(|(_, b)| b))
        .collect()
}

/// The body of the HTTP/1.x response that `s` reads to its end.
fn h1_body_to_end(s: &mut TcpStream) -> String {
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_else(|| panic!("not an HTTP response: {resp:?}"))
}

/// To `port`: a request with the context /x on a connection whose sending
/// side is then shut down, and, once the server could read that end, a
/// request with /y on another connection. Returns the first connection,
/// its answer still to be read, and the second one's answer.
fn ended_then_another(port: u16) -> (TcpStream, String) {
    let first = h1_send(port, "/x");
    first.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    (first, h1_get(port, "x-copper-context: /y\r\n"))
}

#[test]
fn a_thread_that_reads_a_request_before_it_answered_the_one_before_sends_no_context() {
    // b's one thread reads a request, that connection's end (its client
    // shut its side down, as it may), and a second connection's request,
    // and only then calls c for the first (docs/ebpf.md, "Threads"). The
    // end untied the thread from the first connection, so the second did
    // not mark it `mux`; but nothing was written on the first since its
    // request was read, so that request was not answered: the second
    // request gives no value, and the first one's call, which would
    // otherwise carry the second's context (/y/b), carries none.
    let mut chain = Chain::start("poll", ["h1", "h1-poll", "h1"]);
    let (mut first, second) = ended_then_another(chain.ports[1]);
    assert_eq!(h1_body_to_end(&mut first), "[]");
    assert_eq!(second, "[]");
    let reports = chain.stop();
    assert!(
        reports[1].contains("rx_ambiguous=1 ") && reports[1].contains("tx_no_context=2 "),
        "{reports:?}"
    );

    // The same thread, once it answered before it read on: each call
    // carries its own request's context.
    let mut chain = Chain::start("poll-answered", ["h1", "h1-serial", "h1"]);
    let b = chain.ports[1];
    assert_eq!(h1_get(b, "x-copper-context: /x\r\n"), r#"["/x/b"]"#);
    assert_eq!(h1_get(b, "x-copper-context: /y\r\n"), r#"["/y/b"]"#);
    let reports = chain.stop();
    assert!(reports[1].contains("rx_ambiguous=0 "), "{reports:?}");
}

#[test]
fn a_polling_thread_that_closes_an_unanswered_connection_sends_no_context() {
    // As above, but b's thread closes the first connection once it read
    // its end, before it reads the second request: the close unties the
    // thread, at the socket hook (its state change) and at the syscall
    // hooks (close(2), where the connection's write sequence is found from
    // the fd). Nothing was written on it since its request was read, so
    // the second request gives no value, and the first one's call, which
    // would otherwise carry the second's context, carries none.
    for hooks in ["socket", "tracepoints"] {
        let mut chain = Chain::start_named(
            &format!("poll-close-{hooks}"),
            ["h1", "h1-poll-close", "h1"],
            ["a", "b", "c"],
            None,
            hooks,
            &[],
        );
        let (_first, second) = ended_then_another(chain.ports[1]);
        let reports = chain.stop();
        assert_eq!(second, "[]", "{hooks}: {reports:#?}");
        assert!(
            reports[1].contains("rx_ambiguous=1 ")
                && reports[1].contains("tx_no_context=2 ")
                && reports[1].contains("tx_h1_inserted=0 "),
            "{hooks}: {reports:#?}"
        );
    }
}

#[test]
fn a_request_read_before_the_one_before_was_answered_gives_no_context() {
    // b's thread reads two requests of its connection, sent in two writes,
    // before it handles the first: nothing was written on the connection
    // between the two reads, so the second gives no value, and the first
    // one's call, which would otherwise carry the second's context (/y/b),
    // carries none.
    let mut chain = Chain::start("read-ahead", ["h1", "h1-read-ahead", "h1"]);
    let b = chain.ports[1];
    let mut s = h1_send(b, "/x");
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(h1_head(b, "/y").as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answers = String::new();
    s.read_to_string(&mut answers).unwrap();
    assert_eq!(bodies(&answers, "HTTP/1.0"), ["[]", "[]"], "{answers:?}");
    let reports = chain.stop();
    assert!(
        reports[1].contains("rx_ambiguous=1 ") && reports[1].contains("tx_no_context=2 "),
        "{reports:?}"
    );
}

#[test]
fn a_read_that_holds_more_than_one_request_gives_no_context() {
    // b's thread reads its connection through a buffer, so requests that
    // the client pipelines come in one read, and it handles them one after
    // the other with no read in between: the second one's call would carry
    // the first one's context (/x/b). A read that holds more than its first
    // request (after the head, or after a body of a length or chunked)
    // gives no value; one that ends with the request keeps it, a head
    // longer than the add-on's first copy of a read included. Only the
    // socket receive hook checks (docs/ebpf.md, "Pipelining").
    let mut chain = Chain::start_named(
        "pipelined",
        ["h1", "h1-pipelined", "h1"],
        ["a", "b", "c"],
        None,
        "socket",
        &[],
    );
    let b = chain.ports[1];
    let host = format!("Host: 127.0.0.1:{b}\r\n");
    let get = |context: &str| h1_head(b, context);
    let post = |context: &str| {
        format!("POST / HTTP/1.1\r\nx-copper-context: {context}\r\n{host}Content-Length: 5\r\n\r\nhello")
    };
    let chunked = |context: &str| {
        format!(
            "POST / HTTP/1.1\r\nx-copper-context: {context}\r\n{host}Transfer-Encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n3\r\n!!!\r\n0\r\n\r\n"
        )
    };
    // A head of `len` bytes.
    let long = |context: &str, len: usize| {
        let head = |pad: usize| {
            format!(
                "GET / HTTP/1.1\r\nx-copper-context: {context}\r\nx-pad: {}\r\n{host}\r\n",
                "p".repeat(pad)
            )
        };
        head(len - head(0).len())
    };
    let alone = [r#"["/x/b"]"#];
    let several = ["[]", "[]"];
    let mut cases: Vec<(String, String, &[&str])> = vec![
        ("a GET".into(), get("/x"), &alone),
        ("two GETs".into(), get("/x") + &get("/y"), &several),
        ("a body".into(), post("/x"), &alone),
        ("a body, then a GET".into(), post("/x") + &get("/y"), &several),
        ("a chunked body".into(), chunked("/x"), &alone),
        (
            "a chunked body, then a GET".into(),
            chunked("/x") + &get("/y"),
            &several,
        ),
    ];
    // Heads whose blank line lies before, across and after the end of
    // the first 1,024 bytes that the add-on copies, and a longer one.
    for len in [1024, 1025, 1026, 1027, 3000] {
        cases.push((format!("a head of {len} bytes"), long("/x", len), &alone));
        cases.push((
            format!("a head of {len} bytes, then a GET"),
            long("/x", len) + &get("/y"),
            &several,
        ));
    }
    for (case, bytes, want) in cases {
        // One write: b's thread, waiting in its read, takes it whole.
        let mut s = TcpStream::connect(("127.0.0.1", b)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(bytes.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answers = String::new();
        s.read_to_string(&mut answers).unwrap();
        assert_eq!(bodies(&answers, "HTTP/1.1"), want, "{case}: {answers:?}");
    }
    let reports = chain.stop();
    assert!(
        reports[1].contains("rx_ambiguous=8 ")
            && reports[1].contains("tx_no_context=16 ")
            && reports[1].contains("tx_h1_inserted=8 "),
        "{reports:#?}"
    );
}

#[test]
fn agent_says_why_it_cannot_start() {
    preconditions();
    let agent = |cgroup: &Path, wrap: &[&str]| {
        let mut cmd = Command::new(wrap.first().copied().unwrap_or(env!("CARGO_BIN_EXE_copperc")));
        if !wrap.is_empty() {
            cmd.args(&wrap[1..]).arg(env!("CARGO_BIN_EXE_copperc"));
        }
        let out = cmd
            .args(["agent", "--service", "a", "--cgroup"])
            .arg(cgroup)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = agent(Path::new("/tmp"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a cgroup v2 folder"), "{err}");
    // Without privileges the kernel refuses to load: exit code 3 and the fix.
    let root = cgroup2_root();
    let (code, err) = agent(
        &root,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("permission denied") && err.contains("run as root"),
        "{err}"
    );
}

#[test]
fn long_contexts_use_two_byte_lengths() {
    // /<63 chars>/<63 chars> is 128 bytes: the h2 literal's value length
    // needs a second byte (HPACK integer, 7-bit prefix).
    let a = format!("a{}", "x".repeat(62));
    let b = format!("b{}", "y".repeat(62));
    let want = format!(r#"["/{a}/{b}"]"#);
    for mode in ["h1", "h2"] {
        let mut chain = Chain::start_named(&format!("long-{mode}"), [mode; 3], [&a, &b, "c"], None, "auto", &[]);
        let port = chain.ports[0];
        let got = if mode == "h1" {
            h1_get(port, "")
        } else {
            h2_get_python(port)
        };
        assert_eq!(got, want, "{mode}");
        chain.stop();
    }
}

#[test]
fn envoy_sidecar_matches_the_context_header() {
    // client -> a -> Envoy -> b -> c, Envoy being b's sidecar: it routes on
    // the header a's add-on inserted (a regex match, as the Envoy emitter
    // does), and b's add-on still reads the context from the request Envoy
    // re-wrote, so c sees /a/b.
    let mut chain = Chain::start_named("envoy", ["h1"; 3], ["a", "b", "c"], Some(("b", "/a")), "auto", &[]);
    let a = chain.ports[0];
    assert_eq!(h1_get(a, "x-copper-context: /evil\r\n"), r#"["/a/b"]"#);
    let reports = chain.stop();
    assert!(reports[1].contains("rx_with_context=1"), "{reports:?}");
}

#[test]
fn envoy_sidecar_refuses_a_request_without_context() {
    // b called without a context sends none on: Envoy in front of c answers 403.
    let mut chain = Chain::start_named("envoy403", ["h1"; 3], ["a", "b", "c"], Some(("c", "/a/b")), "auto", &[]);
    assert_eq!(h1_get(chain.ports[1], ""), "no match");
    assert_eq!(h1_get(chain.ports[0], ""), r#"["/a/b"]"#);
    chain.stop();
}

#[test]
fn every_h2_request_of_one_write_gets_the_context() {
    // b sends three HEADERS frames to c in one write on one connection.
    let mut chain = Chain::start("fanout", ["h2", "h2-fanout", "h2"]);
    let a = chain.ports[0];
    assert_eq!(h2_get_python(a), r#"[["/a/b"],["/a/b"],["/a/b"]]"#);
    let reports = chain.stop();
    assert!(reports[1].contains("tx_h2_inserted=3"), "{reports:?}");
}

/// b sends three HEADERS frames to c in three writes, which end inside the
/// first and the third frame's frame header (as a short write on a full
/// socket buffer may). Those two go without a context, since their lengths
/// went out before the rest of them was seen; the second gets it, and the
/// connection's frames stay in step.
#[test]
fn h2_frame_headers_cut_between_writes_keep_the_connection_in_step() {
    let mut chain = Chain::start("cutsend", ["h2", "h2-cut-send", "h2"]);
    let got = h2_get_python(chain.ports[0]);
    let reports = chain.stop();
    assert_eq!(got, r#"[[],["/a/b"],[]]"#, "{reports:#?}");
    assert!(
        reports[1].contains("tx_h2_inserted=1 ")
            && reports[1].contains("tx_skipped=2 ")
            && reports[1].contains("tx_desync=0 "),
        "{reports:#?}"
    );
}

/// b sends its request to c with a body and trailers (HEADERS, DATA,
/// HEADERS on the same stream, in one write): the context goes into the
/// request's header block only, not into its trailers. Over the rebuilt
/// message (a short one) and over the message changed in place (b's
/// HEADERS frame carries a 1,500-byte header).
#[test]
fn h2_trailers_that_a_service_sends_get_no_context() {
    for b_mode in ["h2-trailers", "h2-large-trailers"] {
        let mut chain = Chain::start("trailers-out", ["h2", b_mode, "h2-on-end"]);
        let a = chain.ports[0];
        let got = [h2_get_python(a), h2_get_python(a)];
        let reports = chain.stop();
        let want = r#"{"headers": ["/a/b"], "trailers": []}"#;
        assert_eq!(got, [want, want], "{b_mode}: {reports:#?}");
        assert!(
            reports[1].contains("tx_h2_inserted=2 ") && reports[1].contains("tx_skipped=0 "),
            "{b_mode}: {reports:#?}"
        );
    }
}

#[test]
fn padded_h2_headers_frames_carry_the_context() {
    // a pads its HEADERS frames: a's add-on inserts before the padding, b's
    // reads the context from before the padding.
    let mut chain = Chain::start("padded", ["h2-padded", "h2", "h2"]);
    assert_eq!(h2_get_python(chain.ports[0]), r#"["/a/b"]"#);
    let reports = chain.stop();
    assert!(reports[0].contains("tx_h2_inserted=1"), "{reports:?}");
    assert!(reports[1].contains("rx_with_context=1"), "{reports:?}");
}

/// The object that `copperc compile` writes is byte for byte the one the
/// build produced, and the agent loads and attaches it from that file.
#[test]
fn compiled_object_is_the_built_one_and_loads_with_the_agent() {
    preconditions();
    let built: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/copper_ctx.bpf.o"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let r = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["compile", "--graph", "examples/bookinfo/graph.json", "--out"])
        .arg(&out)
        .arg("examples/bookinfo/policies.copper")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let written = std::fs::read(out.join("ebpf/copper_ctx.bpf.o")).unwrap();
    assert!(
        written == built,
        "compile wrote {} bytes that differ from the built object ({} bytes)",
        written.len(),
        built.len()
    );

    let cgroup = cgroup2_root().join(format!("copperc-objtest-{}", std::process::id()));
    std::fs::create_dir_all(&cgroup).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--service", "productpage", "--object"])
        .arg(out.join("ebpf/copper_ctx.bpf.o"))
        .arg("--cgroup")
        .arg(&cgroup)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines(child.stderr.take().unwrap());
    let attached = lines.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir(&cgroup);
    assert!(
        attached.contains("attached to"),
        "the agent did not attach the written object: {attached}"
    );
    assert_eq!(status.code(), Some(0), "the agent did not detach cleanly on SIGTERM");
}

/// No program may come near the verifier's limit of one million processed
/// instructions: one that does fails to load on a kernel whose verifier
/// prunes less. A change that carries one more value through a loop's
/// state can double a program's count (it once took the sk_msg program
/// from 417,885 to 857,100) while every other test still passes. `copperc
/// agent --verbose` prints each program's statistics; every program of the
/// object must be there, under half the limit.
#[test]
fn every_program_stays_under_half_the_verifiers_limit() {
    preconditions();
    let cgroup = cgroup2_root().join(format!("copperc-verifier-{}", std::process::id()));
    std::fs::create_dir_all(&cgroup).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--service", "x", "--verbose", "--cgroup"])
        .arg(&cgroup)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(child.stderr.take().unwrap());
    let said = said_until(&stderr, "attached to");
    terminate(&mut child, &stderr);
    let _ = std::fs::remove_dir(&cgroup);
    let mut processed = BTreeMap::new();
    let mut program = None;
    for line in &said {
        if let Some(rest) = line
            .split("prog '")
            .nth(1)
            .filter(|_| line.contains("BEGIN PROG LOAD LOG"))
        {
            program = rest.split('\'').next().map(str::to_string);
        } else if let (Some(p), Some(rest)) = (&program, line.strip_prefix("processed ")) {
            let insns: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            processed.insert(p.clone(), insns);
            program = None;
        }
    }
    let programs = [
        "copper_enter_close",
        "copper_exit_read",
        "copper_exit_recvfrom",
        "copper_exit_recvmsg",
        "copper_sk_msg",
        "copper_sock_recv",
        "copper_sock_state",
        "copper_sockops",
        "copper_sys_enter",
        "copper_sys_exit",
    ];
    assert_eq!(
        processed.keys().map(String::as_str).collect::<Vec<_>>(),
        programs,
        "the verifier's statistics of every program: {said:#?}"
    );
    for (program, insns) in &processed {
        assert!(
            *insns < 500_000,
            "the verifier walked {insns} instructions of `{program}`, over half its limit of 1,000,000 \
             (make bench-ebpf-verifier compares two objects): {processed:?}"
        );
    }
}

/// Processes and cgroups of the node-wide test, removed on drop (children
/// first) whatever happens.
struct Node {
    root: PathBuf,
    /// The agents' pins (a folder of its own on the BPF file system).
    pins: PathBuf,
    children: Vec<Child>,
    /// More arguments for the next agent that `agent_with` starts.
    extra_args: Vec<String>,
}

impl Node {
    /// Cgroups `<tag>/{a,burstable/b,c,x}/{wait,app}` and a pin folder.
    fn new(tag: &str) -> Node {
        preconditions();
        let id = format!("copper-e2e-{tag}-{}", std::process::id());
        let node = Node {
            root: cgroup2_root().join(&id),
            pins: PathBuf::from("/sys/fs/bpf").join(&id),
            children: Vec::new(),
            extra_args: Vec::new(),
        };
        for pod in ["a", "b", "c", "x"] {
            for leaf in ["wait", "app"] {
                std::fs::create_dir_all(node.pod(pod).join(leaf)).unwrap();
            }
        }
        node
    }

    /// `copperc agent --config` with this node's pins (or none); returns
    /// its stderr lines.
    fn agent(&mut self, config: &Path, pins: bool) -> Receiver<String> {
        self.agent_with(config, pins, "50", &[])
    }

    /// The same with more arguments for the agent.
    fn agent_args(&mut self, config: &Path, pins: bool, args: &[&str]) -> Receiver<String> {
        self.extra_args = args.iter().map(|a| a.to_string()).collect();
        let stderr = self.agent_with(config, pins, "50", &[]);
        self.extra_args.clear();
        stderr
    }

    /// The same with a search of /proc every `scan_interval` ms where it
    /// has no exec events, and `env` set for it.
    fn agent_with(&mut self, config: &Path, pins: bool, scan_interval: &str, env: &[(&str, &str)]) -> Receiver<String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_copperc"));
        // Only this test's pods: tests run side by side on one machine.
        cmd.args(["agent", "--scan-interval", scan_interval, "--pods-under"])
            .arg(&self.root)
            .arg("--config")
            .arg(config)
            .args(&self.extra_args)
            .envs(env.iter().copied());
        if pins {
            cmd.arg("--pin-dir").arg(&self.pins);
        } else {
            cmd.arg("--no-pins");
        }
        let mut agent = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = lines(agent.stderr.take().unwrap());
        self.children.push(agent);
        stderr
    }

    /// A waiter for `pod` that keeps running, as the emitted native sidecar
    /// does; `ready` is its ready file.
    fn sidecar(&mut self, pod: &str, ready: &Path) {
        let script = format!(
            "echo $$ > '{}' && exec env COPPER_CTX_SERVICE={pod} '{}' await-agent --ready-file '{}'",
            self.pod(pod).join("wait").join("cgroup.procs").display(),
            env!("CARGO_BIN_EXE_copperc"),
            ready.display()
        );
        let waiter = Command::new("sh")
            .args(["-c", &script])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(waiter);
    }

    /// Whether a sockops program is attached to `pod`'s cgroup.
    fn sockops_attached(&self, pod: &str) -> bool {
        let out = bpftool(&["cgroup".as_ref(), "show".as_ref(), self.pod(pod).as_os_str()]);
        String::from_utf8_lossy(&out.stdout).contains("sock_ops")
    }

    /// A pod's cgroup; b's lies one level deeper than the others' (as
    /// Kubernetes puts pods of different QoS classes at different depths),
    /// so that the object follows cgroups at two depths.
    fn pod(&self, pod: &str) -> PathBuf {
        if pod == "b" {
            self.root.join("burstable").join(pod)
        } else {
            self.root.join(pod)
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pod in ["a", "b", "c", "x"] {
            for leaf in ["wait", "app"] {
                let _ = std::fs::remove_dir(self.pod(pod).join(leaf));
            }
            let _ = std::fs::remove_dir(self.pod(pod));
        }
        let _ = std::fs::remove_dir(self.root.join("burstable"));
        let _ = std::fs::remove_dir(&self.root);
        let _ = Command::new(env!("CARGO_BIN_EXE_copperc"))
            .args(["agent", "--remove-pins", "--pin-dir"])
            .arg(&self.pins)
            .output();
    }
}

/// The address in the agent's line `metrics at http://ADDR/metrics`.
fn metrics_url(line: &str) -> String {
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in `{line}`"));
    addr.to_string()
}

/// The whole answer to `GET http://ADDR/PATH` (the agent closes after it).
fn http_get_text(addr: &str, path: &str) -> String {
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("cannot connect to the agent at {addr}: {e}"));
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: agent\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

/// One scrape of `http://ADDR/metrics`: the body of a 200 answer in the
/// Prometheus text format.
fn scrape(addr: &str) -> String {
    let answer = http_get_text(addr, "/metrics");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in `{answer}`"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body.to_string()
}

/// Lines of `stderr` until one contains `until` (30 s at most).
fn said_until(stderr: &Receiver<String>, until: &str) -> Vec<String> {
    let mut said = Vec::new();
    while let Ok(line) = stderr.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains(until);
        said.push(line);
        if done {
            return said;
        }
    }
    panic!("no line with `{until}` within 30 s: {said:#?}");
}

/// Reads the agent's lines into `said` until `n` of them say it follows a pod.
fn said_following(stderr: &Receiver<String>, n: usize, said: &mut Vec<String>) {
    while said.iter().filter(|l| l.contains("following")).count() < n {
        said.push(
            stderr
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the agent did not follow {n} pods: {said:#?}")),
        );
    }
}

/// SIGTERM to `child`; checks it exits 0, returns the rest of `stderr`.
fn terminate(child: &mut Child, stderr: &Receiver<String>) -> Vec<String> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let rest: Vec<String> = stderr.iter().collect();
    assert!(status.success(), "agent exited with {status} after SIGTERM: {rest:?}");
    rest
}

/// `copperc await-agent` for `service` in `cgroup` (joined before the exec,
/// so the agent never sees the marker outside it); returns its exit code
/// and what it printed.
fn await_agent(cgroup: &Path, service: &str, ready: &Path, timeout: u32) -> (Option<i32>, String) {
    let script = format!(
        "echo $$ > '{}' && exec env COPPER_CTX_SERVICE={service} '{}' await-agent --exit-when-attached --timeout {timeout} --ready-file '{}'",
        cgroup.join("cgroup.procs").display(),
        env!("CARGO_BIN_EXE_copperc"),
        ready.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The agent's `config.json` as `copperc compile` writes it into
/// `k8s/configmap-copper-ctx-config.yaml`, for the chain a -> b -> c with
/// the entry point a, b declared to handle one request per thread (which
/// changes nothing for a blocking service), and the ports of PostgreSQL and
/// Redis excluded (none of the chain's connections goes there).
fn compiled_agent_config(dir: &Path) -> PathBuf {
    let graph = dir.join("graph.json");
    std::fs::write(
        &graph,
        r#"{"services":[{"name":"a"},{"name":"b"},{"name":"c"}],
            "calls":[{"from":"a","to":"b"},{"from":"b","to":"c"}],"entrypoints":["a"]}"#,
    )
    .unwrap();
    let policy = dir.join("p.copper");
    std::fs::write(
        &policy,
        "policy c_read_only(req: RPCRequest) context \"a b c\" {\n    if req.GetMethod() != \"GET\" {\n        req.Deny(403);\n    }\n}\n",
    )
    .unwrap();
    let out = dir.join("out");
    let r = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args([
            "compile",
            "--target",
            "k8s",
            "--one-request-per-thread",
            "b",
            "--exclude-outbound-ports",
            "6379,5432",
            "--graph",
        ])
        .arg(&graph)
        .arg("--out")
        .arg(&out)
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let cm: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(out.join("k8s/configmap-copper-ctx-config.yaml")).unwrap())
            .unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, cm["data"]["config.json"].as_str().unwrap()).unwrap();
    config
}

/// The node-wide agent learns of a new pod when its waiter (a `copperc`
/// process) starts, from the kernel's exec events (Linux 6.6 and later),
/// not from a search of /proc on a timer: with searches a minute apart, a
/// waiter that starts after the agent is followed within seconds. Without
/// exec events (forced here), the search every interval finds it.
#[test]
fn node_wide_agent_finds_new_pods_by_exec_events_or_by_search() {
    let mut node = Node::new("exec");
    let tmp = tempfile::tempdir().unwrap();
    let config = compiled_agent_config(tmp.path());
    let release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout).unwrap();
    let mut numbers = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    assert!(
        (major, minor) >= (6, 6),
        "this test needs exec events filtered by type (Linux 6.6 or later); the kernel is {release}"
    );
    for (pod, interval, env, said) in [
        (
            "c",
            "60000",
            vec![],
            "when a `copperc` process starts (the kernel's process connector)",
        ),
        (
            "b",
            "100",
            vec![("COPPERC_AGENT_NO_EXEC_EVENTS", "1")],
            "by a search of /proc every 100 ms (no exec events: COPPERC_AGENT_NO_EXEC_EVENTS is set)",
        ),
    ] {
        let stderr = node.agent_with(&config, false, interval, &env);
        let first = stderr.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        assert!(first.contains(said), "{first}");
        // After the agent's first search.
        std::thread::sleep(Duration::from_millis(500));
        let ready = tmp.path().join(format!("{pod}.ready"));
        let (code, err) = await_agent(&node.pod(pod).join("wait"), pod, &ready, 10);
        assert_eq!(code, Some(0), "await-agent for `{pod}` ({said}): {err}");
        let followed = said_until(&stderr, "following").pop().unwrap();
        // compiled_agent_config declares b to handle one request per thread.
        let flags = if pod == "b" { " (one request per thread)" } else { "" };
        assert!(followed.contains(&format!("as `{pod}`{flags} (process")), "{followed}");
        let mut agent = node.children.pop().unwrap();
        let _ = Command::new("kill").arg("-TERM").arg(agent.id().to_string()).status();
        let _ = agent.wait();
    }
}

#[test]
fn node_wide_agent_follows_the_pods_that_wait_for_it() {
    // One agent for the node, configured by the config.json that `copperc
    // compile` writes into k8s/; each "pod" is a cgroup with a `wait` child
    // (the copper-ctx-wait sidecar) and an `app` child (the application).
    let mut node = Node::new("node");
    let tmp = tempfile::tempdir().unwrap();
    let config = compiled_agent_config(tmp.path());
    let stderr = node.agent_args(&config, true, &["--metrics", "127.0.0.1:0"]);
    let next_line = |what: &str| -> String {
        stderr
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the node-wide agent said nothing about {what} within 30 s"))
    };
    let first = next_line("starting");
    assert!(first.contains("node-wide for 3 services"), "{first}");
    assert!(
        first.contains("; connections to ports 5432,6379 not followed)"),
        "{first}"
    );
    let metrics = metrics_url(&said_until(&stderr, "metrics at").pop().unwrap());
    let none = scrape(&metrics);
    assert!(none.contains("\ncopper_ctx_tx_h1_inserted_total 0\n"), "{none}");
    assert!(!none.contains("copper_ctx_followed_cgroups{"), "{none}");

    // A pod waits until the agent follows it, then reports ready.
    for pod in ["c", "b", "a"] {
        let ready = tmp.path().join(format!("{pod}.ready"));
        let (code, err) = await_agent(&node.pod(pod).join("wait"), pod, &ready, 30);
        assert_eq!(code, Some(0), "await-agent for `{pod}`: {err}");
        assert_eq!(std::fs::read_to_string(&ready).unwrap(), format!("{pod}\n"));
        let said = said_until(&stderr, "following").pop().unwrap();
        let pod_dir = node.pod(pod);
        assert!(
            said.contains(&format!("following {} as `{pod}`", pod_dir.display())),
            "{said}"
        );
        assert_eq!(said.contains("(entry point)"), pod == "a", "{said}");
    }
    // A service the configuration does not list is not followed, and its
    // waiter gives up with the reason.
    let (code, err) = await_agent(&node.pod("x").join("wait"), "zzz", &tmp.path().join("x.ready"), 2);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no copper-ctx agent followed this pod"), "{err}");
    let said = said_until(&stderr, "configuration does not list").pop().unwrap();
    assert!(said.contains("`zzz`, which the configuration does not list"), "{said}");

    // The applications start in their pods' `app` cgroups, after the wait;
    // c reads its requests without waiting (MSG_DONTWAIT), as an event loop
    // does, which c, calling nobody, answers alike.
    let mut next = None;
    let mut ports = Vec::new();
    for (pod, mode) in [("c", "h1-dontwait"), ("b", "h1"), ("a", "h1")] {
        let (child, port) = spawn_service(&node.pod(pod).join("app"), mode, next);
        node.children.push(child);
        ports.push(port);
        next = Some(port);
    }
    let (a, b) = (ports[2], ports[1]);
    // The second request through the chain finds each service from its
    // `app` cgroup's cached answer: the pod's cgroup, one step up.
    let got = [h1_get(a, "x-copper-context: /evil\r\n"), h1_get(a, ""), h1_get(b, "")];
    assert_eq!(got, [r#"["/a/b"]"#, r#"["/a/b"]"#, "[]"]);
    // A scrape shows the three pods and the counters of those requests (a
    // and b inserted 4 values; b's own request had none to send; c read 3
    // requests without waiting), within the agent's second between reads.
    std::thread::sleep(Duration::from_millis(1200));
    let text = scrape(&metrics);
    for line in [
        "copper_ctx_followed_cgroups{service=\"a\"} 1",
        "copper_ctx_followed_cgroups{service=\"b\"} 1",
        "copper_ctx_followed_cgroups{service=\"c\"} 1",
        "copper_ctx_tx_h1_inserted_total 4",
        "copper_ctx_tx_no_context_total 1",
        "copper_ctx_rx_nonblocking_total 3",
        // The same reasons, per service: c read its 3 requests without
        // waiting, b sent its own request's call without a context.
        "copper_ctx_service_rx_nonblocking_total{service=\"c\"} 3",
        "copper_ctx_service_rx_nonblocking_total{service=\"b\"} 0",
        "copper_ctx_service_tx_no_context_total{service=\"b\"} 1",
        "copper_ctx_service_tx_no_context_total{service=\"a\"} 0",
        "copper_ctx_agent_info{receive_hooks=\"socket\",threads_state=\"task_storage\",service_cache=\"true\",excluded_outbound_ports=\"5432,6379\"} 1",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "no `{line}` in:\n{text}");
    }
    // The agent tells, once, that c's requests were read without waiting,
    // and in which of the pod's cgroups.
    let said = said_until(&stderr, "from non-blocking sockets").pop().unwrap();
    assert!(
        said.starts_with("copperc agent: pods of `c` read ")
            && said.contains("in cgroups app (")
            && said.contains("oneRequestPerThread")
            && said.contains("--one-request-per-thread c;"),
        "{said}"
    );

    // A pod that goes away is no longer followed, and its link is unpinned.
    for service in node.children.drain(1..) {
        let mut service = service;
        let _ = service.kill();
        let _ = service.wait();
    }
    for leaf in ["wait", "app"] {
        std::fs::remove_dir(node.pod("c").join(leaf)).unwrap();
    }
    std::fs::remove_dir(node.pod("c")).unwrap();
    let said = said_until(&stderr, "is gone").pop().unwrap();
    assert!(said.contains("is gone; no longer followed"), "{said}");
    std::thread::sleep(Duration::from_millis(1200));
    let text = scrape(&metrics);
    assert!(!text.contains("copper_ctx_followed_cgroups{service=\"c\"}"), "{text}");
    // c's reasons stay counted once its pod is gone: a counter that went
    // down would read as a restart.
    assert!(
        text.contains("\ncopper_ctx_service_rx_nonblocking_total{service=\"c\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncopper_ctx_followed_cgroups{service=\"b\"} 1\n"),
        "{text}"
    );
    let links = std::fs::read_dir(node.pins.join("links")).unwrap().count();
    assert_eq!(links, 2, "pinned links of a and b only");

    // A waiter that keeps running, as the emitted native sidecar does.
    let ready = tmp.path().join("a-sidecar.ready");
    node.sidecar("a", &ready);
    let said = said_until(&stderr, "following").pop().unwrap();
    assert!(said.contains("as `a` (entry point)"), "{said}");
    for _ in 0..100 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready.exists(), "the waiting sidecar did not write its ready file");

    let rest = terminate(&mut node.children[0], &stderr);
    let last = rest.last().cloned().unwrap_or_default();
    // One object for every pod: its counters add up over a, b and c.
    assert!(
        last.contains("2 cgroups detached (pins kept in")
            && last.contains("tx_h1_inserted=4")
            && last.contains("tx_no_context=1"),
        "{rest:?}"
    );
    // The pods' links are pinned for the next agent.
    assert!(node.sockops_attached("a") && node.sockops_attached("b"));

    // An agent that restarts takes the pins over and finds the pod again
    // through its running waiter.
    let stderr = node.agent(&config, true);
    let said = said_until(&stderr, "following");
    assert!(
        said.iter()
            .any(|l| l.contains("took over the pinned maps of an earlier agent")),
        "{said:#?}"
    );
    assert!(
        said.last()
            .unwrap()
            .contains(&format!("following {} as `a`", node.pod("a").display())),
        "{said:#?}"
    );
    assert!(node.sockops_attached("a"));
    let n = node.children.len() - 1;
    terminate(&mut node.children[n], &stderr);

    // Removing the pins detaches everything.
    let out = Command::new(env!("CARGO_BIN_EXE_copperc"))
        .args(["agent", "--remove-pins", "--pin-dir"])
        .arg(&node.pins)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!node.pins.exists());
    for pod in ["a", "b"] {
        assert!(!node.sockops_attached(pod), "sockops still attached to pod `{pod}`");
    }
}

/// A connection that a service keeps open across a restart of the
/// node-wide agent still carries contexts after it: the sockhash and the
/// links are pinned. Without pins, the new agent never sees that
/// connection, and what is sent on it carries no context. An agent that is
/// killed (SIGKILL) cannot pause the object, but stops renewing its
/// deadline: after it, the threads' stale values are not sent.
#[test]
fn pinned_maps_of_another_object_are_replaced_and_task_storage_kept() {
    // An earlier object pinned a `tasks` map of another kind: the agent
    // replaces the pins and says so, rather than loading with the LRU hash
    // (which would not reuse that pin) as on a kernel without task storage
    // for sk_msg.
    let mut node = Node::new("pinfit");
    let maps = node.pins.join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    // `socks` as the object has it (so that the hash's object would load
    // with it), `tasks` not.
    for (name, kind, value, entries) in [("socks", "sockhash", "8", "65535"), ("tasks", "hash", "4", "16")] {
        let path = maps.join(name);
        let mut args: Vec<&OsStr> = vec!["map".as_ref(), "create".as_ref(), path.as_os_str()];
        args.extend(
            [
                "type", kind, "key", "8", "value", value, "entries", entries, "name", name,
            ]
            .map(OsStr::new),
        );
        let out = bpftool(&args);
        assert!(
            out.status.success(),
            "bpftool map create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = compiled_agent_config(tmp.path());
    let stderr = node.agent(&config, true);
    let first = stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent's first line");
    let second = stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent's second line");
    let n = node.children.len() - 1;
    terminate(&mut node.children[n], &stderr);
    assert!(first.contains("node-wide") && !first.contains("LRU hash"), "{first}");
    assert!(
        second.contains("replaced the pinned maps of an incompatible earlier object"),
        "{second}"
    );
}

#[test]
fn restarted_node_agent_keeps_following_kept_connections() {
    // keep-hash: the restarted agent keeps the threads' state in the LRU
    // hash, not in task storage (as on a kernel whose sk_msg may not use
    // it), and the pin of the map it does not use goes. A socket keeps the
    // sk_msg program it joined the sockhash with (the kernel copies it into
    // the socket's psock), which looks in the other map: the connections
    // kept across the switch send nothing, and never a stale value.
    for (tag, pins, killed, hash) in [
        ("keep-pins", true, false, false),
        ("keep-nopins", false, false, false),
        ("keep-killed", true, true, false),
        ("keep-hash", true, false, true),
    ] {
        let mut node = Node::new(tag);
        let tmp = tempfile::tempdir().unwrap();
        let config = compiled_agent_config(tmp.path());
        let stderr = node.agent(&config, pins);
        for pod in ["a", "b", "c"] {
            node.sidecar(pod, &tmp.path().join(format!("{pod}.ready")));
        }
        let mut said = Vec::new();
        while said.iter().filter(|l: &&String| l.contains("following")).count() < 3 {
            said.push(
                stderr
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("{tag}: the agent did not follow the 3 pods: {said:#?}")),
            );
        }
        // a and b send every request to the next hop on one kept connection.
        let mut next = None;
        let mut ports = Vec::new();
        for pod in ["c", "b", "a"] {
            let (child, port) = spawn_service(&node.pod(pod).join("app"), "h1-keepalive", next);
            node.children.push(child);
            ports.push(port);
            next = Some(port);
        }
        let a = ports[2];
        assert_eq!(h1_get(a, ""), r#"["/a/b"]"#, "{tag}: before the restart");

        if killed {
            node.children[0].kill().unwrap();
            node.children[0].wait().unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            assert_eq!(h1_get(a, ""), "[]", "{tag}: no stale context once the deadline passed");
        } else {
            terminate(&mut node.children[0], &stderr);
        }
        let maps = node.pins.join("maps");
        if pins {
            assert!(
                maps.join("tasks").exists() && !maps.join("threads").exists(),
                "{tag}: the threads' state is in task storage"
            );
        }
        let env: &[(&str, &str)] = if hash {
            &[("COPPERC_AGENT_NO_TASK_STORAGE", "1")]
        } else {
            &[]
        };
        let stderr = node.agent_with(&config, pins, "50", env);
        let mut said = Vec::new();
        while said.iter().filter(|l: &&String| l.contains("following")).count() < 3 {
            said.push(
                stderr
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| panic!("{tag}: the restarted agent did not follow the 3 pods: {said:#?}")),
            );
        }
        if hash {
            assert!(
                maps.join("threads").exists() && !maps.join("tasks").exists(),
                "{tag}: the unused map's pin is gone"
            );
        }
        let after = h1_get(a, "");
        if hash {
            assert_eq!(after, "[]", "{tag}: the earlier sk_msg program finds no value");
        } else if pins {
            assert_eq!(after, r#"["/a/b"]"#, "{tag}: the kept connections stay followed");
        } else {
            assert_eq!(
                after, "[]",
                "{tag}: a connection opened before the agent is not followed"
            );
        }
        let n = node.children.len() - 1;
        terminate(&mut node.children[n], &stderr);
    }
}
