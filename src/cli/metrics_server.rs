//! `copperc agent --metrics ADDR`: answers Prometheus scrapes of
//! `/metrics` on a thread of its own, from the last snapshot that the
//! agent's loop handed over (`ebpf::metrics` renders it).
//!
//! The agent's loop owns the loaded object; this thread never touches it,
//! so a slow or hostile client delays scrapes, never the agent. One
//! connection at a time, each bounded by a timeout: scrapes are rare.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ebpf::metrics::{self, MetricsSnapshot};

/// How long one client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A request head longer than this is refused (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 8192;

/// The snapshot that the next scrape renders: none until the agent has
/// loaded the add-on (scrapes get 503 until then).
pub type SharedSnapshot = Arc<Mutex<Option<MetricsSnapshot>>>;

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
    *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(snapshot);
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
        if let Some(answer) = respond(&head, || {
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(metrics::render)
        }) {
            break answer;
        }
    };
    conn.write_all(&answer)?;
    conn.flush()
}

/// The whole answer to the request head read so far, or `None` while it is
/// incomplete. `render` is called only for a scrape; it gives `None` while
/// the agent starts.
pub fn respond(head: &[u8], render: impl FnOnce() -> Option<String>) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let (method, path) = match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => (req.method.unwrap_or_default(), req.path.unwrap_or_default()),
        Ok(httparse::Status::Partial) if head.len() <= MAX_HEAD => return None,
        Ok(httparse::Status::Partial) => return Some(plain(431, "Request Header Fields Too Large", "", "")),
        Err(_) => return Some(plain(400, "Bad Request", "", "")),
    };
    let path = path.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Some(plain(404, "Not Found", "", "copperc agent: metrics are at /metrics\n"));
    }
    match method {
        "GET" | "HEAD" => {
            let Some(body) = render() else {
                return Some(plain(
                    503,
                    "Service Unavailable",
                    "retry-after: 1\r\n",
                    "copperc agent: starting\n",
                ));
            };
            let mut answer = header(200, "OK", metrics::CONTENT_TYPE, body.len(), "");
            if method == "GET" {
                answer.extend_from_slice(body.as_bytes());
            }
            Some(answer)
        }
        _ => Some(plain(405, "Method Not Allowed", "allow: GET, HEAD\r\n", "")),
    }
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

    fn text(answer: Option<Vec<u8>>) -> String {
        String::from_utf8(answer.unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn a_scrape_gets_the_rendered_text() {
        let t = text(respond(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n", || {
            Some("a 1\n".into())
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
        let t = text(respond(b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n", || Some("a 1\n".into())));
        assert!(t.starts_with("HTTP/1.1 200 OK\r\n") && t.ends_with("\r\n\r\n"), "{t}");
        assert!(t.contains("content-length: 4\r\n"), "{t}");
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(respond(b"GET /metrics HTTP/1.1\r\nhost:", unreachable_render).is_none());
    }

    #[test]
    fn other_paths_methods_and_garbage_get_errors_without_rendering() {
        let t = text(respond(b"GET / HTTP/1.1\r\n\r\n", unreachable_render));
        assert!(t.starts_with("HTTP/1.1 404 Not Found\r\n"), "{t}");
        let t = text(respond(b"POST /metrics HTTP/1.1\r\n\r\n", unreachable_render));
        assert!(
            t.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && t.contains("allow: GET, HEAD\r\n"),
            "{t}"
        );
        let t = text(respond(b"\x16\x03\x01\x02\x00\x01\r\n\r\n", unreachable_render));
        assert!(t.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{t}");
        let long = format!("GET /metrics HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEAD));
        let t = text(respond(long.as_bytes(), unreachable_render));
        assert!(t.starts_with("HTTP/1.1 431 "), "{t}");
    }

    #[test]
    fn errors_do_not_render() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PUT /metrics HTTP/1.1\r\n\r\n",
            b"\x16\x03\r\n\r\n",
        ] {
            let t = text(respond(head, unreachable_render));
            assert!(!t.is_empty() && !t.contains("rendered although"), "{t}");
        }
    }

    fn unreachable_render() -> Option<String> {
        Some(String::from("rendered although no scrape was asked for"))
    }

    #[test]
    fn a_scrape_before_the_first_snapshot_is_told_to_come_back() {
        let t = text(respond(b"GET /metrics HTTP/1.1\r\n\r\n", || None));
        assert!(
            t.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && t.contains("retry-after: 1\r\n"),
            "{t}"
        );
    }

    #[test]
    fn the_listener_serves_the_published_snapshot() -> std::io::Result<()> {
        let (addr, shared) = start(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        publish(
            &shared,
            MetricsSnapshot {
                counters: vec![("tx_h1_inserted", 7)],
                ..MetricsSnapshot::default()
            },
        );
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        assert!(answer.contains("\r\n\r\n# HELP copper_ctx_agent_info "), "{answer}");
        assert!(answer.contains("\ncopper_ctx_tx_h1_inserted_total 7\n"), "{answer}");
        Ok(())
    }
}
