//! A stand-in service for end-to-end tests of emitted configuration
//! (`tests/e2e_envoy.rs`): an HTTP/1.1 server on 127.0.0.1 that, for each
//! request, calls each of its callees (GET, same path) and answers with a
//! JSON report of what it received and what its callees answered.
//!
//! It forwards the context header as the eBPF add-on does
//! (docs/semantics.md, "Encoding of contexts"): the outgoing
//! `x-copper-context` is the incoming value followed by `/<name>`; an entry
//! point (`--entrypoint`) ignores the incoming value.
//!
//! ```text
//! copperc-testsvc --name S --listen PORT [--version V] [--entrypoint]
//!                 [--callee NAME=HOST:PORT[,...]] [--via-sidecar HOST:PORT]
//!                 [--lifetime SECONDS] [--work-us MICROSECONDS] [--no-context]
//!                 [--keep-alive] [--context-only]
//! ```
//!
//! With `--no-context` it sends no context header at all, like an
//! application under the eBPF add-on (the chain of benches/ebpf_overhead.py
//! `--services native`).
//!
//! Calls go on a fresh connection each (`connection: close`), or, with
//! `--keep-alive`, on one kept connection per callee and serving thread: a
//! thread per client connection, each with connections of its own, as a
//! thread-per-request service with a connection pool per worker.
//!
//! With `--context-only`, an answer reports the incoming context header
//! alone instead of every request header: a service that does not copy its
//! request into its response. Echoed headers make each header byte cost
//! JSON work at every service above (each parses its callee's report and
//! writes it into its own), which benches/ebpf_overhead.py would otherwise
//! count as the add-on's cost. For the same reason the header is reported
//! when absent too, as an empty string: a report entry that exists only with
//! the add-on cost each service above about 1 us of JSON work and
//! allocation (`perf record`, docs/evaluation.md).
//!
//! With `--work-us`, each request first does a fixed amount of arithmetic,
//! as much as took that long when the service started (calibrated once,
//! before it listens, so the work per request stays the same when the
//! machine gets busy).
//!
//! With `--via-sidecar`, every call goes to that address (the sidecar's
//! outbound listener) with `Host: <callee>`; otherwise to the callee's own
//! address. The process exits by itself after `--lifetime` seconds.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{Map, Value, json};

const CONTEXT_HEADER: &str = "x-copper-context";
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Larger request or response heads are refused.
const MAX_HEAD: usize = 64 * 1024;
/// Larger response bodies from callees are refused.
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "copperc-testsvc",
    about = "Test service for end-to-end tests of copperc output"
)]
struct Args {
    /// Service name (appended to the context header of outgoing calls).
    #[arg(long)]
    name: String,
    /// Port to listen on, on 127.0.0.1.
    #[arg(long)]
    listen: u16,
    /// Version reported in answers.
    #[arg(long, default_value = "v1")]
    version: String,
    /// Callees, `NAME=HOST:PORT`, comma-separated or repeated.
    #[arg(long = "callee", value_delimiter = ',')]
    callees: Vec<String>,
    /// Send every call to this address (the sidecar's outbound listener).
    #[arg(long)]
    via_sidecar: Option<SocketAddr>,
    /// Requests come from outside: ignore their context header.
    #[arg(long)]
    entrypoint: bool,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 120)]
    lifetime: u64,
    /// Busy CPU time spent on each request before answering, in microseconds.
    #[arg(long, default_value_t = 0)]
    work_us: u64,
    /// Send no context header: an application that knows nothing of it,
    /// for the eBPF add-on to carry the context (benches/ebpf_overhead.py).
    #[arg(long)]
    no_context: bool,
    /// Keep one connection per callee open in each serving thread, and send
    /// that thread's calls on it (HTTP/1.1 keep-alive).
    #[arg(long)]
    keep_alive: bool,
    /// Report only the incoming context header, not every request header.
    #[arg(long)]
    context_only: bool,
}

struct Service {
    name: String,
    version: String,
    callees: Vec<(String, SocketAddr)>,
    via_sidecar: Option<SocketAddr>,
    entrypoint: bool,
    /// Rounds of `spin` per request.
    work_rounds: u64,
    no_context: bool,
    keep_alive: bool,
    context_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut callees = Vec::new();
    for c in &args.callees {
        let parsed = c
            .split_once('=')
            .and_then(|(n, a)| a.parse::<SocketAddr>().ok().map(|a| (n.to_string(), a)));
        match parsed {
            Some(p) => callees.push(p),
            None => {
                eprintln!("copperc-testsvc: --callee {c}: expected NAME=IP:PORT");
                return ExitCode::from(2);
            }
        }
    }
    // Before listening: a caller that waits for the port waits for this.
    let work_rounds = calibrate(Duration::from_micros(args.work_us));
    let listener = match TcpListener::bind(("127.0.0.1", args.listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("copperc-testsvc: cannot listen on 127.0.0.1:{}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let lifetime = Duration::from_secs(args.lifetime);
    std::thread::spawn(move || {
        std::thread::sleep(lifetime);
        std::process::exit(0);
    });
    let svc = Arc::new(Service {
        name: args.name,
        version: args.version,
        callees,
        via_sidecar: args.via_sidecar,
        entrypoint: args.entrypoint,
        work_rounds,
        no_context: args.no_context,
        keep_alive: args.keep_alive,
        context_only: args.context_only,
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let svc = Arc::clone(&svc);
        std::thread::spawn(move || {
            if let Err(e) = serve(&svc, conn) {
                eprintln!("copperc-testsvc {}: {e}", svc.name);
            }
        });
    }
    ExitCode::SUCCESS
}

/// A parsed request or response head.
struct Head {
    /// Method and path of a request; empty for a response.
    method: String,
    path: String,
    status: u16,
    /// Names lowercased, in arrival order.
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn collect_headers(hs: &[httparse::Header]) -> Vec<(String, String)> {
    hs.iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Reads one head (through the blank line); `None` at a clean end of stream.
fn read_head(r: &mut BufReader<TcpStream>, request: bool) -> std::io::Result<Option<Head>> {
    let mut buf = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(invalid("connection closed inside a message head"))
            };
        }
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
            break;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("message head too large"));
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; 128];
    if request {
        let mut req = httparse::Request::new(&mut hs);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => Ok(Some(Head {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                status: 0,
                headers: collect_headers(req.headers),
            })),
            Ok(httparse::Status::Partial) => Err(invalid("incomplete request head")),
            Err(e) => Err(invalid(&format!("bad request head: {e}"))),
        }
    } else {
        let mut resp = httparse::Response::new(&mut hs);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => Ok(Some(Head {
                method: String::new(),
                path: String::new(),
                status: resp.code.unwrap_or_default(),
                headers: collect_headers(resp.headers),
            })),
            Ok(httparse::Status::Partial) => Err(invalid("incomplete response head")),
            Err(e) => Err(invalid(&format!("bad response head: {e}"))),
        }
    }
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads a message body framed by `content-length` or chunked encoding;
/// `until_eof` reads a response without either to the end of the stream.
fn read_body(r: &mut BufReader<TcpStream>, head: &Head, until_eof: bool) -> std::io::Result<Vec<u8>> {
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if body.len() + size > MAX_BODY {
                return Err(invalid("body too large"));
            }
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    if let Some(len) = head.header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| invalid("bad content-length"))?;
        if len > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if until_eof {
        r.take(MAX_BODY as u64).read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Serves the requests of one connection (keep-alive).
fn serve(svc: &Service, conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(head) = read_head(&mut reader, true)? {
        read_body(&mut reader, &head, false)?;
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let body = answer(svc, &head).to_string();
        // One write per message: several small writes meet Nagle's
        // algorithm and delayed acknowledgements (40 ms stalls).
        let message = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        writer.write_all(message.as_bytes())?;
        if close {
            break;
        }
    }
    Ok(())
}

/// One round of busy arithmetic.
fn spin(x: u64) -> u64 {
    let mut x = x;
    for _ in 0..256 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
    }
    x
}

/// How many rounds of `spin` take `work` on this machine now.
fn calibrate(work: Duration) -> u64 {
    if work.is_zero() {
        return 0;
    }
    let probe = Duration::from_millis(50);
    let start = std::time::Instant::now();
    let (mut rounds, mut x) = (0u64, 1u64);
    while start.elapsed() < probe {
        x = spin(x);
        rounds += 1;
    }
    std::hint::black_box(x);
    let per_us = rounds as f64 / probe.as_micros() as f64;
    (per_us * work.as_micros() as f64).ceil() as u64
}

fn answer(svc: &Service, head: &Head) -> Value {
    let mut x = 1u64;
    for _ in 0..svc.work_rounds {
        x = spin(x);
    }
    std::hint::black_box(x);
    let incoming = if svc.entrypoint {
        ""
    } else {
        head.header(CONTEXT_HEADER).unwrap_or_default()
    };
    let context = format!("{incoming}/{}", svc.name);
    let mut headers = Map::new();
    if svc.context_only {
        // Present when absent too (empty): the report has the same shape with
        // and without the add-on, so that its JSON work is the same.
        let value = head.header(CONTEXT_HEADER).unwrap_or_default();
        headers.insert(CONTEXT_HEADER.to_string(), Value::String(value.to_string()));
    } else {
        for (k, v) in &head.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let calls: Vec<Value> = svc
        .callees
        .iter()
        .map(|(callee, addr)| {
            let to = svc.via_sidecar.unwrap_or(*addr);
            let context = (!svc.no_context).then_some(context.as_str());
            match call(to, callee, &head.path, context, svc.keep_alive) {
                Ok((status, body)) => json!({"callee": callee, "status": status, "body": body}),
                Err(e) => json!({"callee": callee, "status": 0, "error": e.to_string()}),
            }
        })
        .collect();
    json!({
        "name": svc.name,
        "version": svc.version,
        "method": head.method,
        "path": head.path,
        "headers": headers,
        "calls": calls,
    })
}

thread_local! {
    /// The serving thread's kept connections (`--keep-alive`), by callee address.
    static KEPT: RefCell<HashMap<SocketAddr, BufReader<TcpStream>>> = RefCell::new(HashMap::new());
}

/// One GET, with the context header unless `context` is `None`; the body as
/// JSON when it is JSON, else as text. With `keep_alive`, on the thread's
/// kept connection to `to` (opened again once if the callee closed it).
fn call(
    to: SocketAddr,
    host: &str,
    path: &str,
    context: Option<&str>,
    keep_alive: bool,
) -> std::io::Result<(u16, Value)> {
    let context = context
        .map(|c| format!("{CONTEXT_HEADER}: {c}\r\n"))
        .unwrap_or_default();
    let close = if keep_alive { "" } else { "connection: close\r\n" };
    let message = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{context}{close}\r\n");
    let kept = if keep_alive {
        KEPT.with(|k| k.borrow_mut().remove(&to))
    } else {
        None
    };
    let reused = kept.is_some();
    let mut reader = match kept {
        Some(r) => r,
        None => BufReader::new(connect(to)?),
    };
    let (head, body) = match exchange(&mut reader, &message, keep_alive) {
        Ok(answer) => answer,
        // The callee closed the kept connection while it was idle.
        Err(_) if reused => {
            reader = BufReader::new(connect(to)?);
            exchange(&mut reader, &message, keep_alive)?
        }
        Err(e) => return Err(e),
    };
    let callee_closes = head
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if keep_alive && !callee_closes {
        KEPT.with(|k| k.borrow_mut().insert(to, reader));
    }
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    Ok((head.status, body))
}

fn connect(to: SocketAddr) -> std::io::Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Sends one request message and reads its response: head and body.
fn exchange(reader: &mut BufReader<TcpStream>, message: &str, keep_alive: bool) -> std::io::Result<(Head, Vec<u8>)> {
    // One write per message: see `serve`.
    reader.get_ref().write_all(message.as_bytes())?;
    let head = read_head(reader, false)?.ok_or_else(|| invalid("no response"))?;
    // A kept connection's body must be delimited; else it ends at EOF.
    let body = read_body(reader, &head, !keep_alive)?;
    Ok((head, body))
}
