//! `copperc agent --metrics ADDR`: answers Prometheus scrapes of
//! `/metrics` on a thread of its own, from the last snapshot that the
//! agent's loop handed over (`ebpf::metrics` renders it), and health
//! checks of `/healthz` from how long ago that was.
//!
//! The agent's loop owns the loaded object; this thread never touches it,
//! so a slow or hostile client delays scrapes, never the agent. One
//! connection at a time, each bounded by a timeout: scrapes are rare.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ebpf::metrics::{self, MetricsSnapshot};

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A request head longer than this is refused (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 8192;

/// The snapshot that the next scrape renders, and when the loop handed it
/// over: none until the agent has loaded the add-on (503 until then).
pub type SharedSnapshot = Arc<Mutex<Option<(MetricsSnapshot, Instant)>>>;

/// The loop hands a snapshot over every second; one older than this means
/// the loop is stuck, and `/healthz` says so.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// Listens on `addr` and answers scrapes from then on. Returns the address
/// it listens on (port 0 picks a free port) and the snapshot to update.
pub fn start(addr: SocketAddr) -> std::io::Result<(SocketAddr, SharedSnapshot)> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let shared: SharedSnapshot = Arc::default();
    let served = Arc::clone(&shared);
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            // A client that goes away mid-answer is its own loss.
            let _ = serve(conn, &served);
        }
    })?;
    Ok((bound, shared))
}

/// Replaces the snapshot that scrapes render.
pub fn publish(shared: &SharedSnapshot, snapshot: MetricsSnapshot) {
    *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some((snapshot, Instant::now()));
}

fn serve(mut conn: TcpStream, shared: &SharedSnapshot) -> std::io::Result<()> {
    conn.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    conn.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let answer = loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        let published = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let age = published.as_ref().map(|(_, at)| at.elapsed());
        let render = || published.as_ref().map(|(s, _)| metrics::render(s)).unwrap_or_default();
        if let Some(answer) = respond(&head, age, render) {
            break answer;
        }
    };
    conn.write_all(&answer)?;
    conn.flush()
}

/// The whole answer to the request head read so far, or `None` while it is
/// incomplete. `age`: how long ago the loop handed its last snapshot over
/// (`None` while the agent starts); `render` is called only for a scrape.
pub fn respond(head: &[u8], age: Option<Duration>, render: impl FnOnce() -> String) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let (method, path) = match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => (req.method.unwrap_or_default(), req.path.unwrap_or_default()),
        Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => return None,
        Ok(httparse::Status::Partial) => return Some(plain(431, "Request Header Fields Too Large", "", "")),
        Err(_) => return Some(plain(400, "Bad Request", "", "")),
    };
    let path = path.split('?').next().unwrap_or_default();
    if path != "/metrics" && path != "/healthz" {
        return Some(plain(
            404,
            "Not Found",
            "",
            "copperc agent: metrics are at /metrics, health at /healthz\n",
        ));
    }
    if method != "GET" && method != "HEAD" {
        return Some(plain(405, "Method Not Allowed", "allow: GET, HEAD\r\n", ""));
    }
    let (status, reason, content_type, body) = match age {
        None => {
            let body = "copperc agent: starting\n";
            return Some(head_only(
                method,
                plain(503, "Service Unavailable", "retry-after: 1\r\n", body),
                body,
            ));
        }
        Some(age) if path == "/healthz" && age > STALE_AFTER => (
            503,
            "Service Unavailable",
            "text/plain; charset=utf-8",
            format!("copperc agent: its loop last reported {} s ago\n", age.as_secs()),
        ),
        Some(_) if path == "/healthz" => (200, "OK", "text/plain; charset=utf-8", "ok\n".to_string()),
        Some(_) => (200, "OK", metrics::CONTENT_TYPE, render()),
    };
    let mut answer = header(status, reason, content_type, body.len(), "");
    answer.extend_from_slice(body.as_bytes());
    Some(head_only(method, answer, &body))
}

/// A `HEAD` request's answer: the head of the `GET` answer, without its body.
fn head_only(method: &str, mut answer: Vec<u8>, body: &str) -> Vec<u8> {
    if method == "HEAD" {
        answer.truncate(answer.len() - body.len());
    }
    answer
}

fn header(status: u16, reason: &str, content_type: &str, length: usize, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\n{extra}connection: close\r\n\r\n"
    )
    .into_bytes()
}

fn plain(status: u16, reason: &str, extra: &str, body: &str) -> Vec<u8> {
    let mut answer = header(status, reason, "text/plain; charset=utf-8", body.len(), extra);
    answer.extend_from_slice(body.as_bytes());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Option<Duration> = Some(Duration::ZERO);

    fn text(answer: Option<Vec<u8>>) -> String {
        String::from_utf8(answer.unwrap_or_default()).unwrap_or_default()
    }

    fn never_rendered() -> String {
        String::from("rendered although no scrape was asked for")
    }

    #[test]
    fn a_scrape_gets_the_rendered_text() {
        let t = text(respond(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n", NOW, || {
            "a 1\n".into()
        }));
        assert!(t.starts_with("HTTP/1.1 200 OK\r\n"), "{t}");
        assert!(
            t.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{t}"
        );
        assert!(t.contains("content-length: 4\r\n"), "{t}");
        assert!(t.ends_with("\r\n\r\na 1\n"), "{t}");
    }

    #[test]
    fn a_query_string_is_ignored_and_head_has_no_body() {
        let t = text(respond(b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n", NOW, || "a 1\n".into()));
        assert!(t.starts_with("HTTP/1.1 200 OK\r\n") && t.ends_with("\r\n\r\n"), "{t}");
        assert!(t.contains("content-length: 4\r\n"), "{t}");
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(respond(b"GET /metrics HTTP/1.1\r\nhost:", NOW, never_rendered).is_none());
    }

    #[test]
    fn other_paths_methods_and_garbage_get_errors_without_rendering() {
        let t = text(respond(b"GET / HTTP/1.1\r\n\r\n", NOW, never_rendered));
        assert!(t.starts_with("HTTP/1.1 404 Not Found\r\n"), "{t}");
        let t = text(respond(b"POST /metrics HTTP/1.1\r\n\r\n", NOW, never_rendered));
        assert!(
            t.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && t.contains("allow: GET, HEAD\r\n"),
            "{t}"
        );
        let t = text(respond(b"\x16\x03\x01\x02\x00\x01\r\n\r\n", NOW, never_rendered));
        assert!(t.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{t}");
        let long = format!("GET /metrics HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD));
        let t = text(respond(long.as_bytes(), NOW, never_rendered));
        assert!(t.starts_with("HTTP/1.1 431 "), "{t}");
    }

    #[test]
    fn only_a_scrape_renders() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PUT /metrics HTTP/1.1\r\n\r\n",
            b"\x16\x03\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",
        ] {
            let t = text(respond(head, NOW, never_rendered));
            assert!(!t.is_empty() && !t.contains("rendered although"), "{t}");
        }
    }

    #[test]
    fn before_the_first_snapshot_both_paths_say_the_agent_starts() {
        for path in ["/metrics", "/healthz"] {
            let t = text(respond(
                format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(),
                None,
                never_rendered,
            ));
            assert!(
                t.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
                    && t.contains("retry-after: 1\r\n")
                    && t.ends_with("\r\n\r\ncopperc agent: starting\n"),
                "{t}"
            );
        }
        let t = text(respond(b"HEAD /healthz HTTP/1.1\r\n\r\n", None, never_rendered));
        assert!(t.starts_with("HTTP/1.1 503 ") && t.ends_with("\r\n\r\n"), "{t}");
    }

    #[test]
    fn health_is_ok_while_the_loop_reports_and_fails_once_it_stalls() {
        let ok = text(respond(
            b"GET /healthz HTTP/1.1\r\n\r\n",
            Some(STALE_AFTER),
            never_rendered,
        ));
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nok\n"),
            "{ok}"
        );
        let stalled = Some(STALE_AFTER + Duration::from_secs(3));
        let t = text(respond(b"GET /healthz HTTP/1.1\r\n\r\n", stalled, never_rendered));
        assert!(
            t.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && t.ends_with("its loop last reported 13 s ago\n"),
            "{t}"
        );
        // Scrapes go on: the counters of a stuck loop are still worth reading.
        let t = text(respond(b"GET /metrics HTTP/1.1\r\n\r\n", stalled, || "a 1\n".into()));
        assert!(t.starts_with("HTTP/1.1 200 OK\r\n"), "{t}");
    }

    #[test]
    fn the_listener_serves_the_published_snapshot() -> std::io::Result<()> {
        let (addr, shared) = start(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let get = |path: &str| -> std::io::Result<String> {
            let mut conn = TcpStream::connect(addr)?;
            conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer)
        };
        let starting = get("/healthz")?;
        assert!(starting.starts_with("HTTP/1.1 503 "), "{starting}");
        publish(
            &shared,
            MetricsSnapshot {
                counters: vec![("tx_h1_inserted", 7)],
                ..MetricsSnapshot::default()
            },
        );
        let answer = get("/metrics")?;
        assert!(answer.contains("\r\n\r\n# HELP copper_ctx_agent_info "), "{answer}");
        assert!(answer.contains("\ncopper_ctx_tx_h1_inserted_total 7\n"), "{answer}");
        let health = get("/healthz")?;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"), "{health}");
        Ok(())
    }
}
