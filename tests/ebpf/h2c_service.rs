//! An h2c chain service (HTTP/2 with prior knowledge) for the eBPF add-on's
//! end-to-end test and its overhead benchmark (`benches/ebpf_overhead.py
//! --protocol h2c`), built on the `h2` crate: the HTTP/2 of hyper and tonic,
//! so of most Rust gRPC services. Like tests/ebpf/chain_service.py it never
//! copies a header.
//!
//! ```text
//! copperc-h2c-testsvc [--listen PORT] [--next HOST:PORT] [--send-context-if FILE]
//!                     [--streams-at-once] [--multi-thread] [--delay-ms MS]
//!                     [--grpc-headers] [--report-absent]
//! ```
//!
//! Listens on 127.0.0.1 (a free port unless `--listen`) and prints
//! `PORT <n>`. Each accepted connection gets a thread of its own with a
//! single-threaded tokio runtime, and that thread opens one h2c connection to
//! the next hop, with its first request, and keeps it. Each request is handled,
//! and the next hop called, on the thread that read it: what the add-on needs
//! to tie the two (docs/ebpf.md, "Threads"). Its sockets are non-blocking,
//! so its agent must be told so (`--one-request-per-thread`); without it the
//! add-on sends no context, as it does for a multi-threaded runtime, which
//! moves the handler between threads. A service answers with its next hop's body; the last one answers
//! with the JSON list of the `x-copper-context` values it received.
//!
//! With `--send-context-if FILE` it sends `x-copper-context: /a/b` itself
//! while FILE exists, as a field that HPACK never indexes (the add-on's own is
//! a literal without indexing, which decodes the same way): what the header
//! costs the services, without the add-on (benches/ebpf_overhead.py
//! `--services-send-context`).
//!
//! With `--grpc-headers` its calls are shaped as a gRPC client's (tonic's):
//! `POST` with `content-type: application/grpc`, `te: trailers` and a
//! `user-agent`, the fields gRPC sends with every call. Without it a call
//! carries no regular field at all, so that the context header is the first
//! one the callee's `http::HeaderMap` holds and allocates for. With
//! `--report-absent` the last hop reports a missing header as one empty
//! string, so that its answer has the same shape, and costs the same JSON
//! work, with and without the add-on (as `copperc-testsvc --context-only`).
//!
//! Two other shapes are what the add-on cannot tie a call to its request
//! in, and must then send no context: `--streams-at-once` serves the
//! streams of a connection at the same time, a task per stream on the
//! connection thread's runtime (as hyper's server does), and
//! `--multi-thread` runs one multi-threaded runtime for every connection,
//! whose tasks move between its two worker threads. `--delay-ms` makes each
//! request wait before it calls the next hop, so that the next request can
//! be read in between.

use std::error::Error;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use clap::Parser;
use h2::RecvStream;
use h2::client::SendRequest;
use h2::server::SendResponse;

type Failure = Box<dyn Error + Send + Sync>;

#[derive(Parser, Debug)]
#[command(
    name = "copperc-h2c-testsvc",
    about = "h2c chain service for the eBPF add-on's tests"
)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: a free one).
    #[arg(long, default_value_t = 0)]
    listen: u16,
    /// The next hop; without it, the service is the last one.
    #[arg(long)]
    next: Option<SocketAddr>,
    /// Send the context header itself while this file exists.
    #[arg(long)]
    send_context_if: Option<PathBuf>,
    /// Serve the streams of a connection at the same time, a task each.
    #[arg(long)]
    streams_at_once: bool,
    /// One multi-threaded runtime (two workers) for every connection, a
    /// task per connection and per stream.
    #[arg(long)]
    multi_thread: bool,
    /// Wait this long in each request before calling the next hop.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Send each call as a gRPC client does: POST, with content-type, te
    /// and user-agent.
    #[arg(long)]
    grpc_headers: bool,
    /// The last hop reports a missing context header as an empty string.
    #[arg(long)]
    report_absent: bool,
}

/// What every connection's thread needs to know.
struct Service {
    next: Option<SocketAddr>,
    send_context_if: Option<PathBuf>,
    streams_at_once: bool,
    delay: std::time::Duration,
    grpc_headers: bool,
    report_absent: bool,
}

impl Service {
    fn sends_context(&self) -> bool {
        self.send_context_if.as_ref().is_some_and(|f| f.exists())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(("127.0.0.1", args.listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("copperc-h2c-testsvc: cannot listen on port {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.listen);
    let mut out = std::io::stdout();
    if writeln!(out, "PORT {port}").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    let service = Arc::new(Service {
        next: args.next,
        send_context_if: args.send_context_if,
        streams_at_once: args.streams_at_once || args.multi_thread,
        delay: std::time::Duration::from_millis(args.delay_ms),
        grpc_headers: args.grpc_headers,
        report_absent: args.report_absent,
    });
    if args.multi_thread {
        return match serve_on_workers(listener, service) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("copperc-h2c-testsvc: {e}");
                ExitCode::FAILURE
            }
        };
    }
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                let service = Arc::clone(&service);
                thread::spawn(move || {
                    if let Err(e) = serve_connection(conn, service) {
                        eprintln!("copperc-h2c-testsvc: {e}");
                    }
                });
            }
            Err(e) => eprintln!("copperc-h2c-testsvc: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// The timer only with `--delay-ms`: the runtime's time driver reads the
/// clock each time the thread parks, and the benchmark's services ran
/// without it.
fn runtime_clock<'a>(builder: &'a mut tokio::runtime::Builder, service: &Service) -> &'a mut tokio::runtime::Builder {
    if service.delay.is_zero() {
        builder
    } else {
        builder.enable_time()
    }
}

/// Serves one client connection on this thread, request after request
/// (or, with `--streams-at-once`, a task per request).
fn serve_connection(conn: TcpStream, service: Arc<Service>) -> Result<(), Failure> {
    conn.set_nodelay(true)?;
    conn.set_nonblocking(true)?;
    let runtime = runtime_clock(tokio::runtime::Builder::new_current_thread().enable_io(), &service).build()?;
    // A tokio socket needs the runtime's reactor: made inside it.
    runtime.block_on(async move { serve_streams(tokio::net::TcpStream::from_std(conn)?, service).await })
}

/// `--multi-thread`: every connection is a task of one runtime with two
/// worker threads.
fn serve_on_workers(listener: TcpListener, service: Arc<Service>) -> Result<(), Failure> {
    listener.set_nonblocking(true)?;
    let runtime = runtime_clock(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_io(),
        &service,
    )
    .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let (conn, _) = listener.accept().await?;
            conn.set_nodelay(true)?;
            let service = Arc::clone(&service);
            tokio::spawn(async move {
                if let Err(e) = serve_streams(conn, service).await {
                    eprintln!("copperc-h2c-testsvc: {e}");
                }
            });
        }
    })
}

/// Serves the streams of one client connection.
async fn serve_streams(conn: tokio::net::TcpStream, service: Arc<Service>) -> Result<(), Failure> {
    let mut server = h2::server::handshake(conn).await?;
    let mut upstream: Option<SendRequest<Bytes>> = None;
    while let Some(request) = server.accept().await {
        let (request, respond) = request?;
        if let (None, Some(addr)) = (&upstream, service.next) {
            upstream = Some(connect(addr).await?);
        }
        if service.streams_at_once {
            let (service, upstream) = (Arc::clone(&service), upstream.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(&service, request, respond, upstream).await {
                    eprintln!("copperc-h2c-testsvc: {e}");
                }
            });
        } else {
            answer(&service, request, respond, upstream.clone()).await?;
        }
    }
    Ok(())
}

/// Handles one request: the next hop's body, or the contexts received.
async fn answer(
    service: &Service,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    upstream: Option<SendRequest<Bytes>>,
) -> Result<(), Failure> {
    if !service.delay.is_zero() {
        tokio::time::sleep(service.delay).await;
    }
    let body = match (service.next, upstream) {
        (Some(addr), Some(send)) => call(send, addr, service).await?,
        _ => contexts_seen(request.headers(), service.report_absent)?,
    };
    let response = http::Response::builder()
        .status(200)
        .header("content-length", body.len())
        .body(())?;
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(body, true)?;
    Ok(())
}

/// Opens the kept connection to the next hop; its I/O runs as a task of
/// this thread's runtime.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Bytes>, Failure> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("copperc-h2c-testsvc: connection to {addr}: {e}");
        }
    });
    Ok(send)
}

/// One call to the next hop (a GET, or a gRPC-shaped POST), with the
/// context header if the service sends it itself; returns the body.
async fn call(send: SendRequest<Bytes>, addr: SocketAddr, service: &Service) -> Result<Bytes, Failure> {
    let mut send = send.ready().await?;
    let mut request = http::Request::builder().uri(format!("http://{addr}/"));
    request = if service.grpc_headers {
        request
            .method("POST")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "copperc-h2c-testsvc")
    } else {
        request.method("GET")
    };
    let mut request = request.body(())?;
    if service.sends_context() {
        let mut value = http::HeaderValue::from_static("/a/b");
        value.set_sensitive(true);
        request.headers_mut().insert("x-copper-context", value);
    }
    let (response, _) = send.send_request(request, true)?;
    let mut body = response.await?.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// The last hop's answer: every `x-copper-context` value, in order (with
/// `report_absent`, `[""]` when there is none).
fn contexts_seen(headers: &http::HeaderMap, report_absent: bool) -> Result<Bytes, Failure> {
    let mut values = headers
        .get_all("x-copper-context")
        .iter()
        .map(|v| v.to_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()?;
    if values.is_empty() && report_absent {
        values.push(String::new());
    }
    Ok(Bytes::from(serde_json::to_vec(&values)?))
}
