"""A thread-per-request HTTP service for tests/ebpf_e2e.rs that knows nothing
about `x-copper-context`: it never copies a header.

    chain_service.py h1|h1-keepalive|h1-keepalive-in|h1-large|h2|h2-large|h2-fanout|h2-cut-send|h2-padded|h2-on-end|
                     h2-trailers|h2-large-trailers|h1-async|h1-dontwait|h1-poll|h1-poll-close|h1-read-ahead|
                     h1-pipelined
                     [--next HOST:PORT] [--send-context-if FILE]

Listens on 127.0.0.1 on a free port and prints `PORT <n>` on stdout. For each
request, calls the next hop (if any) from the handling thread, over HTTP/1.1
(http.client) or h2c with prior knowledge (python h2), and answers with the
next hop's body. The last hop answers with the JSON list of the
`x-copper-context` values it received. `h1-async` is one asyncio event loop
thread serving every connection (HTTP/1.1), which waits a second before it
calls the next hop, so that requests overlap. `h1-dontwait` is `h1` that
reads each request with `MSG_DONTWAIT` (after select()) from a blocking
socket. `h1-poll` is one thread on blocking sockets that reads a request,
its connection's end, and a second connection's request before it calls
the next hop for either (`h1-poll-close`: and closes the first connection
when it reads its end); `h1-read-ahead` is a thread per connection that
reads two requests of its connection before it handles the first;
`h1-pipelined` is a thread per connection that reads through a buffer
(pipelined requests come in one read) and handles its connection's
requests one after the other, with bodies of a length or chunked.
`h2-fanout` is `h2` that sends
three requests to the next hop in one write on one connection and answers
with the JSON list of their bodies; `h2-cut-send` sends them in three
writes that end inside the first and the third HEADERS frame's frame header. `h2-padded` is `h2` whose HEADERS frames
to the next hop are PADDED. `h1-keepalive` is `h1` that answers HTTP/1.1
with keep-alive and sends every request to the next hop on one connection,
opened with the first and kept; `GET /reconnect` opens a new one (and is
passed on, so the whole chain reconnects); with `--send-context-if FILE`
it sends `x-copper-context: /a/b` itself on that connection while FILE
exists (for benches/ebpf_overhead.py: what the header costs the services,
without the add-on). `h1-keepalive-in` answers with
keep-alive (one thread per client connection) but calls the next hop on a
new connection each time. `h1-large` is `h1` whose request
head to the next hop carries a 1,500-byte `x-pad` header; `h2-large` is
`h2` whose HEADERS frames to the next hop carry it (over 1,024 bytes once
HPACK-coded).

    chain_service.py get-h2 HOST:PORT [NAME: VALUE]

Sends one h2c GET (with an optional extra header) and prints the body.

    chain_service.py get-h2-split HOST:PORT CONTEXT PLAN [PLAN ...]

Sends one h2c GET per PLAN on one connection, each with `x-copper-context:
CONTEXT<i>` (i: the request's index, so that a context left over from the
request before would show) in the add-on's own form (a literal without indexing that ends the
header block), and prints the JSON list of the bodies. A PLAN is `PAD/CUT,...`:
a header `x-pad` of PAD bytes (0: none) and the offsets in the HEADERS frame
(its 9-byte frame header included; negative: from its end) where the frame is
sent in separate writes, 50 ms apart, so that the server reads it in pieces.

    chain_service.py get-h2-at-once HOST:PORT CONTEXT [CONTEXT ...]

Sends one h2c GET per CONTEXT on one connection, each carrying it in the
add-on's form, 50 ms apart and before awaiting any answer (streams in flight
at once), and prints the JSON list of the bodies.

    chain_service.py get-h2-body-overlap HOST:PORT
    chain_service.py get-h2-trailers HOST:PORT
    chain_service.py get-h2-uploads HOST:PORT

The first sends a request with a body (context /x) and, in the write that
ends the body, a second request (/y); the second sends a request (/x) whose
body and trailers come in writes of their own; the third sends two
requests whose bodies come at once (/x, /y), the second's body, a third
request (/z), then the first's body. Each prints the JSON list of the
bodies. `h2-on-end` is `h2` that handles a request once its stream
ends (after its body), as a server that reads the whole request first does;
as the last hop it answers a request that had trailers with
`{"headers": [...], "trailers": [...]}`, the `x-copper-context` values of
each. `h2-trailers` and `h2-large-trailers` are `h2` and `h2-large` whose
request to the next hop has a body and trailers (`x-t: 1`), all three
frames in one write.
"""

import http.client
import json
import os
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

HEADER = "x-copper-context"
# h1-large: the request head to the next hop is longer than what the add-on copies (1024 bytes).
LARGE_PAD = 1500


def h1_get(addr, large=False):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    # http.client sends a request head in one write.
    conn.request("GET", "/", headers={"x-pad": "p" * LARGE_PAD} if large else {})
    body = conn.getresponse().read()
    conn.close()
    return body


def pad_headers(data, pad=5):
    """The same frames, with every HEADERS frame PADDED by `pad` bytes."""
    out = bytearray()
    off = 0
    if data.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        out += data[:24]
        off = 24
    while off + 9 <= len(data):
        length = int.from_bytes(data[off : off + 3], "big")
        ftype, flags = data[off + 3], data[off + 4]
        payload = data[off + 9 : off + 9 + length]
        if ftype == 0x1 and not flags & 0x8:
            payload = bytes([pad]) + payload + b"\0" * pad
            flags |= 0x8
        out += len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + data[off + 5 : off + 9] + payload
        off += 9 + length
    return bytes(out + data[off:])


def headers_at(data):
    """Offsets of the HEADERS frames in client bytes (after the preface)."""
    found, off = [], 24
    while off + 9 <= len(data):
        if data[off + 3] == 0x1:
            found.append(off)
        off += 9 + int.from_bytes(data[off : off + 3], "big")
    return found


def h2_get(addr, extra=(), streams=1, padded=False, cut_send=False, trailers=False):
    import h2.config
    import h2.connection
    import h2.events

    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", addr)]
    # Every request of the connection goes out in one write.
    for i in range(streams):
        conn.send_headers(1 + 2 * i, headers + list(extra), end_stream=not trailers)
        if trailers:
            conn.send_data(1 + 2 * i, b"body")
            conn.send_headers(1 + 2 * i, [("x-t", "1")], end_stream=True)
    out = conn.data_to_send()
    if cut_send:
        # Three writes: the first ends 4 bytes into the first HEADERS frame's
        # header, the second 7 bytes into the third's.
        at = headers_at(out)
        cuts = [at[0] + 4, at[2] + 7]
        for a, b in zip([0] + cuts, cuts + [len(out)]):
            sock.sendall(out[a:b])
    else:
        sock.sendall(pad_headers(out) if padded else out)
    bodies = {}
    ended = 0
    while ended < streams:
        data = sock.recv(65535)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended += 1
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    conn.close_connection()
    try:
        sock.sendall(conn.data_to_send())
    except OSError:
        pass
    sock.close()
    if streams == 1:
        return bodies.get(1, b"")
    return b"[" + b",".join(bodies.get(1 + 2 * i, b"") for i in range(streams)) + b"]"


def hpack_str(b):
    """An HPACK string literal without Huffman coding (length: an integer with a 7-bit prefix)."""
    if len(b) < 127:
        return bytes([len(b)]) + b
    rest, out = len(b) - 127, bytearray([127])
    while rest >= 128:
        out.append(rest % 128 + 128)
        rest //= 128
    return bytes(out + bytes([rest])) + b


def h2_frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


class RawH2:
    """An h2c client connection whose frames are written by hand: requests that carry the
    context in the add-on's own form, sent in the pieces and at the moments a test chooses."""

    def __init__(self, addr):
        self.addr = addr
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(0x4, 0, 0, b""))
        self.buf = b""
        self.bodies = {}
        self.ended = set()

    def request(self, stream, context, pad=0, end=True):
        """The HEADERS frame of a GET on `stream` whose block ends with the add-on's literal;
        without END_STREAM (a body follows) unless `end`."""
        # :method GET, :scheme http, :path /, :authority (name index 1) without indexing.
        block = b"\x82\x86\x84\x01" + hpack_str(self.addr.encode())
        if pad:
            block += b"\x00" + hpack_str(b"x-pad") + hpack_str(b"p" * pad)
        block += b"\x00" + hpack_str(HEADER.encode()) + hpack_str(context.encode())
        return h2_frame(0x1, 0x05 if end else 0x04, stream, block)  # END_HEADERS, END_STREAM if end

    def wait(self, streams):
        """Reads frames until every one of `streams` has ended."""
        while not set(streams) <= self.ended:
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                more = self.sock.recv(65535)
                if not more:
                    raise SystemExit("the server closed the connection")
                self.buf += more
            length, kind, flags = int.from_bytes(self.buf[:3], "big"), self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload, self.buf = self.buf[9 : 9 + length], self.buf[9 + length :]
            if kind == 0x4 and not flags & 0x1:
                self.sock.sendall(h2_frame(0x4, 0x1, 0, b""))
            elif kind == 0x3:
                raise SystemExit(f"stream {sid} was reset")
            elif kind == 0x0:
                self.bodies[sid] = self.bodies.get(sid, b"") + payload
                # The connection's flow-control credit back (each stream has a window of its own).
                self.sock.sendall(h2_frame(0x8, 0, 0, len(payload).to_bytes(4, "big")))
            if kind in (0x0, 0x1) and flags & 0x1:
                self.ended.add(sid)

    def bodies_of(self, streams):
        return b"[" + b",".join(self.bodies.get(s, b"") for s in streams) + b"]"


def h2_get_split(addr, context, plans):
    import time

    conn = RawH2(addr)
    streams = []
    for i, plan in enumerate(plans):
        pad, _, cuts = plan.partition("/")
        stream = 1 + 2 * i
        data = conn.request(stream, f"{context}{i}", int(pad))
        points = sorted(int(c) % len(data) for c in cuts.split(",") if c)
        for a, b in zip([0] + points, points + [len(data)]):
            conn.sock.sendall(data[a:b])
            if b < len(data):
                time.sleep(0.05)
        conn.wait([stream])
        streams.append(stream)
    conn.sock.close()
    return conn.bodies_of(streams)


def h2_get_at_once(addr, contexts):
    """One request per context on one connection, each HEADERS frame 50 ms after the last
    (so that the server reads each alone), before any answer is awaited."""
    import time

    conn = RawH2(addr)
    streams = [1 + 2 * i for i in range(len(contexts))]
    for stream, context in zip(streams, contexts):
        conn.sock.sendall(conn.request(stream, context))
        time.sleep(0.05)
    conn.wait(streams)
    conn.sock.close()
    return conn.bodies_of(streams)


def h2_body_overlap(addr):
    """A request with a body (context /x) and, in the write that ends its body, a second
    request (/y): the server reads both in one read."""
    import time

    conn = RawH2(addr)
    conn.sock.sendall(conn.request(1, "/x", end=False))
    time.sleep(0.05)
    conn.sock.sendall(h2_frame(0x0, 0x1, 1, b"body") + conn.request(3, "/y"))
    conn.wait([1, 3])
    conn.sock.close()
    return conn.bodies_of([1, 3])


def h2_uploads(addr):
    """Two requests whose bodies come at once (contexts /x and /y), and a third (/z) sent while
    the first's body is still coming, each frame in its own write."""
    import time

    conn = RawH2(addr)
    for data in (
        conn.request(1, "/x", end=False),
        conn.request(3, "/y", end=False),
        h2_frame(0x0, 0x1, 3, b"body"),
        conn.request(5, "/z"),
        h2_frame(0x0, 0x1, 1, b"body"),
    ):
        conn.sock.sendall(data)
        time.sleep(0.05)
    conn.wait([1, 3, 5])
    conn.sock.close()
    return conn.bodies_of([1, 3, 5])


def h2_trailers(addr):
    """A request (context /x) with a body and trailers (a HEADERS frame on its stream that
    ends it), each in its own write."""
    import time

    conn = RawH2(addr)
    conn.sock.sendall(conn.request(1, "/x", end=False))
    time.sleep(0.05)
    conn.sock.sendall(h2_frame(0x0, 0x0, 1, b"body"))
    time.sleep(0.05)
    conn.sock.sendall(h2_frame(0x1, 0x5, 1, b"\x00" + hpack_str(b"x-t") + hpack_str(b"1")))
    conn.wait([1])
    conn.sock.close()
    return conn.bodies_of([1])


def contexts_in_head(head):
    """The `x-copper-context` values of an HTTP/1.x request head (bytes), in order."""
    return [
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(HEADER.encode() + b":")
    ]


def serve_threads(handler):
    """Serves `handler` (a socketserver.BaseRequestHandler) with a thread per connection on a
    free port of 127.0.0.1, which it prints as `PORT <n>`."""

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), handler)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


class KeptConnection:
    """One HTTP/1.1 connection to the next hop, opened once and kept: each
    handler thread sends its request on it in turn."""

    def __init__(self, addr, send_context_if=None):
        import threading

        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.lock = threading.Lock()
        self.send_context_if = send_context_if

    def get(self, path="/"):
        with self.lock:
            if path == "/reconnect":
                # A new connection for what follows (it opens with this request).
                self.conn.close()
            own = self.send_context_if and os.path.exists(self.send_context_if)
            self.conn.request("GET", path, headers={HEADER: "/a/b"} if own else {})
            return self.conn.getresponse().read()


def serve_h1(nxt, keep=False, large=False, keep_in=False, serial=False, send_context_if=None):
    kept = KeptConnection(nxt, send_context_if) if keep and nxt else None
    keep = keep or keep_in

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive needs HTTP/1.1 answers (HTTP/1.0 ones close), and
        # TCP_NODELAY: the head and the body are two writes, and Nagle would
        # hold the body back until the peer's delayed ACK.
        protocol_version = "HTTP/1.1" if keep else "HTTP/1.0"
        disable_nagle_algorithm = keep

        def do_GET(self):
            if kept:
                body = kept.get(self.path)
            elif nxt:
                body = h1_get(nxt, large)
            else:
                body = json.dumps(self.headers.get_all(HEADER) or []).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    # serial: one thread serves every connection, one after the other.
    server = (HTTPServer if serial else ThreadingHTTPServer)(("127.0.0.1", 0), Handler)
    print("PORT", server.server_address[1], flush=True)
    server.serve_forever()


def serve_h2(nxt, streams=1, padded=False, large=False, cut_send=False, on_end=False, trailers=False):
    import h2.config
    import h2.connection
    import h2.events

    def values(fields):
        return [
            (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields
            if (k.decode() if isinstance(k, bytes) else k) == HEADER
        ]

    def answer(conn, ev, trailer_fields=None):
        if nxt:
            extra = [("x-pad", "p" * LARGE_PAD)] if large else []
            body = h2_get(nxt, extra, streams=streams, padded=padded, cut_send=cut_send, trailers=trailers)
        elif trailer_fields is None:
            body = json.dumps(values(ev.headers)).encode()
        else:
            body = json.dumps({"headers": values(ev.headers), "trailers": values(trailer_fields)}).encode()
        conn.send_headers(ev.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
        conn.send_data(ev.stream_id, body, end_stream=True)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            heads = {}  # on_end: each request's headers until its stream ends
            tails = {}  # on_end: each request's trailers
            while True:
                data = sock.recv(65535)
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.RequestReceived):
                        if on_end:
                            heads[ev.stream_id] = ev
                        else:
                            answer(conn, ev)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        tails[ev.stream_id] = ev.headers
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in heads:
                        answer(conn, heads.pop(ev.stream_id), tails.pop(ev.stream_id, None))
                out = conn.data_to_send()
                if out:
                    sock.sendall(out)

    serve_threads(Handler)


def read_head(sock):
    """An HTTP/1.x request head from a blocking socket (b"" if it ends first)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65535)
        if not chunk:
            return b""
        head += chunk
    return head


def answer_h1(nxt, head):
    """The answer to the request `head`: the next hop's body, or the contexts it carried."""
    body = h1_get(nxt) if nxt else json.dumps(contexts_in_head(head)).encode()
    return b"HTTP/1.0 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def serve_h1_dontwait(nxt):
    """`h1` whose thread per connection waits for the request with select() and reads it with
    MSG_DONTWAIT, on a blocking socket: a read that does not wait, as event loops make."""
    import select

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            head = b""
            while b"\r\n\r\n" not in head:
                select.select([sock], [], [], 10)
                try:
                    chunk = sock.recv(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                head += chunk
            sock.sendall(answer_h1(nxt, head))

    serve_threads(Handler)


def serve_h1_poll(nxt, close_first=False):
    """One thread on blocking sockets that takes two requests before it handles either: the
    request of a first connection, then that connection's end (its client shut its side
    down), then the request of a second connection; then it calls the next hop for each, in
    that order, and answers both. With `close_first` it closes the first connection when it
    reads its end, and answers only the second."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    print("PORT", srv.getsockname()[1], flush=True)
    while True:
        first, _ = srv.accept()
        first_head = read_head(first)
        first.recv(1)
        if close_first:
            first.close()
        second, _ = srv.accept()
        second_head = read_head(second)
        for sock, head in ((first, first_head), (second, second_head)):
            try:
                sock.sendall(answer_h1(nxt, head))
            except OSError:
                pass
            sock.close()


def serve_h1_read_ahead(nxt):
    """A thread per connection on blocking sockets that reads two requests of its connection
    (sent one after the other, in two writes) before it handles the first, then calls the next
    hop for each and answers both, in order."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            heads = [read_head(sock), read_head(sock)]
            sock.sendall(b"".join(answer_h1(nxt, head) for head in heads))

    serve_threads(Handler)


def read_request(rfile):
    """The head (bytes) of the next HTTP/1.1 request of a buffered reader, after its body is
    read (Content-Length or chunked), or None at the connection's end."""
    head = b""
    while True:
        line = rfile.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if head:
                head += line
                break
            continue  # an empty line before a request line
        head += line
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), value.strip())
    if b"transfer-encoding" in fields:
        while True:
            size = int(rfile.readline().split(b";")[0], 16)
            rfile.read(size + 2)
            if size == 0:
                break
    else:
        rfile.read(int(fields.get(b"content-length", b"0")))
    return head


def serve_h1_pipelined(nxt):
    """A thread per connection that reads its requests through a buffer (several of them in
    one read when the client pipelines them) and handles them one after the other: for each,
    it calls the next hop and answers with HTTP/1.1, keeping the connection."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            rfile = self.request.makefile("rb")
            while (head := read_request(rfile)) is not None:
                self.request.sendall(answer_h1(nxt, head).replace(b"HTTP/1.0", b"HTTP/1.1", 1))

    serve_threads(Handler)


def serve_h1_async(nxt):
    import asyncio

    async def call_next():
        host, port = nxt.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET / HTTP/1.1\r\nHost: {nxt}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        resp = await reader.read()
        writer.close()
        return resp.split(b"\r\n\r\n", 1)[1]

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if nxt:
            await asyncio.sleep(1.0)
            body = await call_next()
        else:
            body = json.dumps(contexts_in_head(head)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    async def run():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(run())


def main():
    mode = sys.argv[1]
    if mode == "get-h2-body-overlap":
        sys.stdout.write(h2_body_overlap(sys.argv[2]).decode())
        return
    if mode == "get-h2-uploads":
        sys.stdout.write(h2_uploads(sys.argv[2]).decode())
        return
    if mode == "get-h2-trailers":
        sys.stdout.write(h2_trailers(sys.argv[2]).decode())
        return
    if mode == "get-h2-at-once":
        sys.stdout.write(h2_get_at_once(sys.argv[2], sys.argv[3:]).decode())
        return
    if mode == "get-h2-split":
        sys.stdout.write(h2_get_split(sys.argv[2], sys.argv[3], sys.argv[4:]).decode())
        return
    if mode == "get-h2":
        extra = []
        if len(sys.argv) > 3:
            name, value = sys.argv[3].split(":", 1)
            extra.append((name.strip(), value.strip()))
        sys.stdout.write(h2_get(sys.argv[2], extra).decode())
        return
    nxt = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--next" else None
    flag = sys.argv.index("--send-context-if") if "--send-context-if" in sys.argv else None
    send_context_if = sys.argv[flag + 1] if flag else None
    serve = {
        "h1": serve_h1,
        "h1-keepalive": lambda n: serve_h1(n, keep=True, send_context_if=send_context_if),
        "h1-keepalive-in": lambda n: serve_h1(n, keep_in=True),
        "h1-large": lambda n: serve_h1(n, large=True),
        "h1-serial": lambda n: serve_h1(n, serial=True),
        "h1-serial-keepalive-in": lambda n: serve_h1(n, keep_in=True, serial=True),
        "h1-async": serve_h1_async,
        "h1-dontwait": serve_h1_dontwait,
        "h1-poll": serve_h1_poll,
        "h1-poll-close": lambda n: serve_h1_poll(n, close_first=True),
        "h1-read-ahead": serve_h1_read_ahead,
        "h1-pipelined": serve_h1_pipelined,
        "h2": serve_h2,
        "h2-fanout": lambda n: serve_h2(n, streams=3),
        "h2-cut-send": lambda n: serve_h2(n, streams=3, cut_send=True),
        "h2-padded": lambda n: serve_h2(n, padded=True),
        "h2-on-end": lambda n: serve_h2(n, on_end=True),
        "h2-large": lambda n: serve_h2(n, large=True),
        "h2-trailers": lambda n: serve_h2(n, trailers=True),
        "h2-large-trailers": lambda n: serve_h2(n, large=True, trailers=True),
    }
    serve[mode](nxt)


if __name__ == "__main__":
    main()
