#!/usr/bin/env python3
"""Prints the eBPF add-on overhead table of docs/evaluation.md.

Starts the chain client -> a -> b -> c of tests/ebpf_e2e.rs: three unmodified
thread-per-request services (tests/ebpf/chain_service.py, HTTP/1.1), each in
its own cgroup v2 folder, which it joins before it opens a socket. Then, for
ROUNDS rounds, it measures the same chain in two configurations, in
alternating order (ABBA): without agents, and with the add-on attached for
that window only and detached after it. With `--mode node` (the default, the
deployment that k8s/ emits) one `copperc agent --config` follows the three
services: each service's folder is a pod with a `wait` cgroup, where
`copperc await-agent` announces the pod, and an `app` cgroup, where the
service runs. With `--mode per-service` each service has its own `copperc
agent --service` (a is the entry point). Every window waits SETTLE seconds
(both configurations: attaching and detaching the add-on set off kernel work
that goes on for a while after the agent says it is attached, and that
would otherwise be counted in the next window), then sends WARMUP unmeasured
requests, then REQUESTS sequential requests from one client on loopback (a
new connection each, as the services open one per hop) and records each
request's latency at the client: end to end, through 3 hops. It checks every
answer: c must see `["/a/b"]` with the add-on and `[]` without, and the
agents' counters must show one inserted header per request at a and at b.

With --interleaved the add-on stays attached for the whole run, and a second
chain of the same services runs beside the first in plain cgroups that no
agent follows. Each round opens new kept connections to both (so that each
round's threads are placed anew), sends WARMUP unmeasured pairs of requests,
then REQUESTS measured pairs: one request to each chain, in an order drawn at
random. Both chains meet the same moments of the machine, so a burst of
kernel work that would land in one configuration's window of the ABBA design
lands on both. The unfollowed chain's reads still pass through the node's
socket receive hook, whose cost (ebpf_hook_cost.py, read outside) is added
back. --aa runs the same with no agent: what the method finds between two
chains that differ in nothing.

Two variants of the ABBA design compare something else than the add-on with
none, in the same service processes: --baseline-object runs the windows
"without agents" with a floor-type object (the floor object, or the one that
spins for a while in each program: the programs' time without their memory
traffic); --services-send-context has the Python services send the context
header themselves in the windows "with agents" (with the floor object in
both: what the header costs the services). --cpus pins it all to some CPUs.

CPU per request: utime+stime (/proc/<pid>/stat) of the services and agents,
and the services' cgroup `cpu.stat` usage_usec (microsecond resolution, the
same processes), read before and after each measured window.

Needs root, cgroup v2, BTF and `make deps`; run after `cargo build --release`.
Stops every process and removes every cgroup it made, also on failure, and
stops by itself after --max-seconds.

Usage: build/venv/bin/python benches/ebpf_overhead.py [--copperc target/release/copperc] [--mode node|per-service] [--keepalive]
       [--services python|native [--echo-headers]] [--bpf-stats] [--object FILE [--floor]] [--rounds 12] [--requests 2000] [--warmup 100] [--settle 1]
       [--interleaved [--aa] [--dump FILE]] [--baseline-object FILE] [--services-send-context] [--cpus 0]
       [--protocol h1|h2c [--h2c-requests bare|grpc]]
"""
import argparse
import bisect
import json
import math
import os
import platform
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from ebpf_bench import cgroup2_root, copper_programs, set_bpf_stats

parser = argparse.ArgumentParser()
parser.add_argument("--copperc", default="target/release/copperc")
parser.add_argument("--python", default=sys.executable)
parser.add_argument("--service", default="tests/ebpf/chain_service.py")
parser.add_argument("--services", choices=["python", "native"], default="python",
                    help="python: the chain of tests/ebpf_e2e.rs (tests/ebpf/chain_service.py); native: "
                         "copperc-testsvc --no-context (Rust, a thread per connection; a new connection per call, or with "
                         "--keepalive one kept connection per callee and thread), "
                         "whose hops take a tenth of the time, so that the add-on's share is larger and its "
                         "noise smaller")
parser.add_argument("--echo-headers", action="store_true",
                    help="native services only: each answer reports every request header (as the e2e tests' "
                         "reports do), not only the context header; each service parses its callee's report and "
                         "writes it into its own, so the context header's bytes then also cost JSON work at every "
                         "service above it, which is the test service's cost, not the add-on's")
parser.add_argument("--testsvc", default="target/release/copperc-testsvc")
parser.add_argument("--protocol", choices=["h1", "h2c"], default="h1",
                    help="h2c: the native chain speaks h2c with prior knowledge, over the `h2` crate "
                         "(copperc-h2c-testsvc: a thread per client connection, each with one kept connection to "
                         "the next hop); needs --services native and --keepalive. The client sends one request a "
                         "stream on its kept connection")
parser.add_argument("--h2c-testsvc", default="target/release/examples/copperc-h2c-testsvc")
parser.add_argument("--h2c-requests", choices=["bare", "grpc"], default="bare",
                    help="--protocol h2c: bare requests carry the pseudo-header fields alone (GET), so that the "
                         "context header is the only regular field a service receives, and its HeaderMap is "
                         "allocated for it; grpc requests are shaped as a gRPC client's (POST with content-type, te "
                         "and user-agent, as tonic sends with every call), at every hop and from the client")
parser.add_argument("--rounds", type=int, default=12)
parser.add_argument("--requests", type=int, default=2000,
                    help="measured requests a window; the p99 of fewer than 1,000 moves by more than the add-on "
                         "costs, and the script then gives no verdict on the target")
parser.add_argument("--warmup", type=int, default=100)
parser.add_argument("--max-seconds", type=int, default=170)
parser.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before each window's warm-up (both configurations), so that what attaching "
                         "or detaching the add-on sets off in the kernel has ended")
parser.add_argument("--keepalive", action="store_true",
                    help="every hop, the client's included, keeps one connection open and sends all requests on it "
                         "(reopened at the start of each window, so that the add-on sees it open); without it, "
                         "a new connection per request and hop")
parser.add_argument("--bpf-stats", action="store_true",
                    help="also turn on the kernel's BPF run-time statistics (kernel.bpf_stats_enabled) and print, "
                         "per program of the add-on, its calls and nanoseconds per measured request; the statistics "
                         "cost two clock reads per call, so the latency figures of such a run are a little higher")
parser.add_argument("--mode", choices=["node", "per-service"], default="node",
                    help="node: one `copperc agent --config` for the three services, as the DaemonSet of k8s/ "
                         "runs it (each service is a pod cgroup with a waiter); per-service: one "
                         "`copperc agent --service` each")
parser.add_argument("--object", help="an eBPF object for the agents to load instead of the one built into copperc "
                                        "(`copperc agent --object`), to compare two versions of the programs")
parser.add_argument("--interleaved", action="store_true",
                    help="keep the add-on attached for the whole run and start a second chain of the same services "
                         "in cgroups that no agent follows; the client sends every other request to it, the order "
                         "within each pair drawn at random, so that both chains meet the same moments of the "
                         "machine (a burst of kernel work lands on both, not on one configuration's window). Per hop "
                         "is (followed - unfollowed) / 3, plus what the unfollowed chain's reads pay for the hook "
                         "that every socket read of the node runs (measured at the end with ebpf_hook_cost.py)")
parser.add_argument("--aa", action="store_true",
                    help="--interleaved without any agent: both chains unfollowed, so that what the method "
                         "finds between two chains that differ in nothing is seen (it should be 0)")
parser.add_argument("--dump", help="--interleaved: also write every measured latency (ns), by round and chain, "
                                      "in the order sent, to this JSON file")
parser.add_argument("--per-round", action="store_true",
                    help="also print each round's p50 and p99 per configuration, in the order they ran")
parser.add_argument("--floor", action="store_true",
                    help="the --object given is the floor object (`make build/ebpf/copper_floor.bpf.o`), whose sk_msg "
                         "and socket receive programs return at once: the run measures what the hooks cost by "
                         "themselves. The answers must then show no context, and the agents' counters no header")
parser.add_argument("--baseline-object",
                    help="ABBA: the windows \"without agents\" run the agent with this object instead of none: a "
                         "floor-type object (`make build/ebpf/copper_floor.bpf.o` or build/ebpf/copper_spin.bpf.o), "
                         "whose answers must show no context and whose counters no header; the run then compares "
                         "--object (or the built-in one) with it, in the same service processes")
parser.add_argument("--services-send-context", action="store_true",
                    help="ABBA, Python services or --protocol h2c, with --keepalive: in the windows \"with agents\" "
                         "the services send "
                         "`x-copper-context: /a/b` themselves on their kept connections to the next hop, in the "
                         "others not; with --floor and --baseline-object of the same floor object, the run measures "
                         "what the header costs the services, without any program doing anything")
parser.add_argument("--cpus", help="run the script and everything it starts on these CPUs only (e.g. 0): the "
                                   "chain's work in one sequence, without the placement of its threads on several "
                                   "CPUs, which moves a Python chain's latency by tens of us between windows")
args = parser.parse_args()
if args.baseline_object and args.interleaved:
    parser.error("--baseline-object goes with the ABBA design, not --interleaved")
if args.services_send_context and (args.interleaved or not args.keepalive or
                                   (args.services != "python" and args.protocol != "h2c")):
    parser.error("--services-send-context goes with the ABBA design, --keepalive, and --services python or "
                 "--protocol h2c")
if args.services_send_context and not args.floor:
    # With the add-on's programs running, the answers would carry the services' header and the add-on's both.
    parser.error("--services-send-context goes with --floor (and --baseline-object of the same floor object): "
                 "it measures what the header costs the services, with no program inserting one")
if args.protocol == "h2c" and (args.services != "native" or not args.keepalive or args.echo_headers):
    parser.error("--protocol h2c goes with --services native and --keepalive, without --echo-headers")
if args.aa and not args.interleaved:
    parser.error("--aa goes with --interleaved")
if args.interleaved and (args.bpf_stats or args.per_round):
    parser.error("--bpf-stats and --per-round go with the ABBA design, not --interleaved")
if args.floor and not args.object:
    parser.error("--floor needs --object (the floor object: make build/ebpf/copper_floor.bpf.o)")
OBJECT = ["--object", args.object] if args.object else []
BASELINE = ["--object", args.baseline_object] if args.baseline_object else None
# Created in the windows "with agents" of --services-send-context: while it exists, the services send the header.
SEND_CONTEXT_FLAG = f"/tmp/copper-ovh-{os.getpid()}.send-context"

NAMES = ["a", "b", "c"]
PROTOCOL = (f"h2c (the h2 crate, {args.h2c_requests} requests)" if args.protocol == "h2c" else "HTTP/1.1")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Abort(Exception):
    pass


def on_signal(signum, _frame):
    raise Abort(f"stopped by signal {signum} (time limit: --max-seconds {args.max_seconds})")


def lines_of(pipe):
    """A queue of the pipe's lines, read on a thread so that waits can time out."""
    q = queue.Queue()

    def pump():
        for line in iter(pipe.readline, ""):
            q.put(line.rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def proc_cpu(pid):
    """utime+stime of a process (all its threads, live and dead), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cgroup_usec(path):
    with open(os.path.join(path, "cpu.stat")) as f:
        for line in f:
            key, value = line.split()
            if key == "usage_usec":
                return int(value)
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(300):
        if proc.poll() is not None:
            raise Abort(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Abort(f"{what} does not listen on {port}")


def seen_by_c(body):
    """What c saw: its list of contexts (python services, h2c), or its context header in the nested report
    (native HTTP/1.1)."""
    if args.services == "python":
        return body
    if args.protocol == "h2c":
        try:
            # --report-absent's empty entry stands for no context.
            return json.dumps([v for v in json.loads(body) if v != ""]).encode()
        except (ValueError, TypeError):
            return b"unparsable: " + body[:200]
    try:
        report = json.loads(body)
        c = report["calls"][0]["body"]["calls"][0]["body"]
    except (ValueError, KeyError, IndexError, TypeError):
        return b"unparsable: " + body[:200]
    ctx = c["headers"].get("x-copper-context")
    return json.dumps([ctx] if ctx else []).encode()


def get(port):
    """One request to a over a new connection; returns (latency ns, body)."""
    t0 = time.perf_counter_ns()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
    s.close()
    t1 = time.perf_counter_ns()
    return t1 - t0, b"".join(chunks).split(b"\r\n\r\n", 1)[-1]


def next_hop_args(nxt):
    """The arguments that point a chain service (chain_service.py or copperc-h2c-testsvc) at the
    next hop, and make it send the context header itself with --services-send-context."""
    if not nxt:
        return ""
    out = f" --next 127.0.0.1:{nxt}"
    if args.services_send_context:
        out += f" --send-context-if '{SEND_CONTEXT_FLAG}'"
    return out


def remove_cgroup(path):
    """Kills what is left in a cgroup folder and removes it (if it exists)."""
    if not os.path.isdir(path):
        return
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        pass
    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.1)


class Kept:
    """One kept HTTP/1.1 connection to a."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path):
        """One request; returns (latency ns, body)."""
        t0 = time.perf_counter_ns()
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        length = next(int(l.split(b":", 1)[1]) for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:"))
        while len(self.buf) < length:
            self.buf += self.sock.recv(65536)
        body, self.buf = self.buf[:length], self.buf[length:]
        return time.perf_counter_ns() - t0, body


class KeptH2c:
    """One kept h2c connection to a (prior knowledge), one stream a request.

    Written out by hand rather than with python-h2, whose state machine costs
    tens of microseconds a request at the client: the same in both chains, but
    noise in the latencies all the same. The request's header block uses the
    static table and literals without indexing only, so no HPACK state is
    kept; the answers' header blocks are skipped, never decoded.
    """

    # :method GET, :scheme http, :path /, then :authority "a" as a literal without indexing (name index 1).
    BLOCK = b"\x82\x86\x84\x01\x01a"
    # --h2c-requests grpc: :method POST, :scheme http, :path /, :authority "a", then content-type (static
    # index 31), te (a new name) and user-agent (static index 58), each a literal without indexing.
    GRPC_BLOCK = (b"\x83\x86\x84\x01\x01a" + b"\x0f\x10\x10application/grpc" + b"\x00\x02te\x08trailers"
                  + b"\x0f\x2b\x13copperc-h2c-testsvc")
    # END_STREAM | END_HEADERS
    FLAGS = 0x05

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.stream = 1
        self.block = self.GRPC_BLOCK if args.h2c_requests == "grpc" else self.BLOCK
        self.unacknowledged = 0  # DATA bytes received since the last connection WINDOW_UPDATE
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(0x4, 0, 0, b""))

    @staticmethod
    def frame(kind, flags, stream, payload):
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def next_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            data = self.sock.recv(65536)
            if not data:
                raise Abort("h2c: a closed the connection")
            self.buf += data
        length = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9 : 9 + length], self.buf[9 + length :]
        return kind, flags, stream, payload

    def get(self, path):
        """One GET / on a new stream; returns (latency ns, body). `path` is ignored: h2c has no /reconnect."""
        del path
        sid = self.stream
        self.stream += 2
        t0 = time.perf_counter_ns()
        self.sock.sendall(self.frame(0x1, self.FLAGS, sid, self.block))
        body = b""
        while True:
            kind, flags, stream, payload = self.next_frame()
            if kind == 0x4 and not flags & 0x1:  # SETTINGS: acknowledge
                self.sock.sendall(self.frame(0x4, 0x1, 0, b""))
            elif kind == 0x6 and not flags & 0x1:  # PING: answer
                self.sock.sendall(self.frame(0x6, 0x1, 0, payload))
            elif kind in (0x3, 0x7):  # RST_STREAM, GOAWAY
                raise Abort(f"h2c: a sent frame type {kind}: {payload.hex()}")
            elif stream == sid and kind == 0x0:  # DATA
                self.unacknowledged += len(payload)  # flow control counts the padding too
                if flags & 0x8:  # PADDED
                    payload = payload[1 : len(payload) - payload[0]]
                body += payload
            if stream == sid and kind in (0x0, 0x1) and flags & 0x1:  # END_STREAM
                break
        if self.unacknowledged >= 32768:
            # The connection's receive window (65,535 bytes) would otherwise run out; each stream has its own.
            self.sock.sendall(self.frame(0x8, 0, 0, self.unacknowledged.to_bytes(4, "big")))
            self.unacknowledged = 0
        return time.perf_counter_ns() - t0, body


def kept_to(port):
    """A kept connection to a, in the run's protocol."""
    return KeptH2c(port) if args.protocol == "h2c" else Kept(port)


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


class Bench:
    def __init__(self):
        self.root = os.path.join(cgroup2_root(), f"copper-ovh-{os.getpid()}")
        self.dirs = {n: os.path.join(self.root, n) for n in NAMES}
        self.services = []  # Popen, c then b then a
        # --interleaved: the same chain in plain cgroups outside self.root, which no agent follows.
        self.twin_root = self.root + "-unfollowed"
        self.twin_dirs = {n: os.path.join(self.twin_root, n) for n in NAMES}
        self.twin_port = None
        self.agents = []  # (Popen, queue)
        self.port = None
        self.hooks = set()  # the syscall hooks the agents said they attached
        self.tmp = f"/tmp/copper-ovh-{os.getpid()}"  # the agent's configuration, the waiters' ready files
        self.config = self.tmp + "-config.json"

    def start_services(self, twin=False):
        """Starts the chain (c, then b, then a) and returns a's port; `twin`: the unfollowed one."""
        root, dirs = (self.twin_root, self.twin_dirs) if twin else (self.root, self.dirs)
        os.makedirs(root)
        nxt = None
        for name in ["c", "b", "a"]:
            os.makedirs(dirs[name])
            where = dirs[name]
            if args.mode == "node":
                # A pod: the waiter's cgroup and the application's, side by side. The unfollowed twin's
                # pods have the same folders (its `wait` stays empty, so that no agent follows it): a
                # service one cgroup level deeper costs more in the kernel's own accounting, which the
                # comparison would charge to the add-on.
                os.makedirs(os.path.join(where, "wait"))
                where = os.path.join(where, "app")
                os.makedirs(where)
            procs = os.path.join(where, "cgroup.procs")
            if args.protocol == "h2c":
                # --report-absent: c answers [""] rather than [] without a context, so that its answer costs
                # the same JSON work in both chains (as --context-only does for copperc-testsvc).
                script = f"echo $$ > '{procs}' && exec '{args.h2c_testsvc}' --report-absent" + next_hop_args(nxt)
                if args.h2c_requests == "grpc":
                    script += " --grpc-headers"
                nxt = self.start_printing_port(script, name)
                continue
            if args.services == "native":
                port = free_port()
                script = (f"echo $$ > '{procs}' && exec '{args.testsvc}' --name {name} --listen {port} "
                          f"--no-context --lifetime {args.max_seconds + 60}")
                if args.keepalive:
                    script += " --keep-alive"
                if not args.echo_headers:
                    script += " --context-only"
                if nxt:
                    script += f" --callee next=127.0.0.1:{nxt}"
                p = subprocess.Popen(["sh", "-c", script])
                self.services.append(p)
                wait_port(port, p, f"service {name}")
                nxt = port
                continue
            kind = "h1-keepalive" if args.keepalive else "h1"
            script = f"echo $$ > '{procs}' && exec '{args.python}' -u '{args.service}' {kind}" + next_hop_args(nxt)
            nxt = self.start_printing_port(script, name)
        return nxt

    def start_printing_port(self, script, name):
        """Starts a service that prints `PORT <n>` once it listens; returns n."""
        p = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)
        self.services.append(p)
        line = lines_of(p.stdout).get(timeout=30)
        if not line or not line.startswith("PORT "):
            raise Abort(f"service {name} did not start: {line!r}")
        return int(line.split()[1])

    def hooks_of(self, line):
        for kind in ("socket receive hook", "syscall tracepoints", "tp_btf sys_enter/sys_exit"):
            if kind in line:
                self.hooks.add(kind)
                return
        raise Abort(f"which hooks the agent attached is not in its first line: {line!r}")

    def start_agents(self, obj=None):
        """Starts the agents with `obj` (`--object FILE` arguments; the run's --object by default)."""
        obj = OBJECT if obj is None else obj
        if args.mode == "node":
            return self.start_node_agent(obj)
        for name in NAMES:
            cmd = [args.copperc, "agent", "--service", name, "--cgroup", self.dirs[name]] + obj
            if name == "a":
                cmd.append("--entrypoint")
            elif args.protocol == "h2c":
                # A tokio runtime per connection thread reads from non-blocking
                # sockets; without this the add-on sends no context (docs/ebpf.md, Threads).
                cmd.append("--one-request-per-thread")
            p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
            q = lines_of(p.stderr)
            self.agents.append((p, q))
            said = []
            while True:
                try:
                    line = q.get(timeout=30)
                except queue.Empty:
                    line = None
                if line is None:
                    raise Abort(f"agent {name} did not attach: {said}")
                if " attached to " in line:
                    self.hooks_of(line)
                    break
                said.append(line)

    def start_node_agent(self, obj):
        """One agent for the node; each pod's waiter returns once it is followed."""
        with open(self.config, "w") as f:
            one = ', "oneRequestPerThread": true' if args.protocol == "h2c" else ""
            f.write(f'{{"services": [{{"name": "a", "entrypoint": true}}, {{"name": "b"{one}}}, {{"name": "c"{one}}}]}}\n')
        p = subprocess.Popen([args.copperc, "agent", "--no-pins", "--pods-under", self.root, "--config", self.config] + obj,
                             stderr=subprocess.PIPE, text=True)
        q = lines_of(p.stderr)
        self.agents.append((p, q))
        try:
            line = q.get(timeout=30)
        except queue.Empty:
            line = None
        if not line or "node-wide" not in line:
            raise Abort(f"the node-wide agent did not start: {line!r}")
        self.hooks_of(line)
        for name in NAMES:
            procs = os.path.join(self.dirs[name], "wait", "cgroup.procs")
            ready = self.tmp + f"-{name}.ready"
            script = (f"echo $$ > '{procs}' && exec env COPPER_CTX_SERVICE={name} '{args.copperc}' "
                      f"await-agent --exit-when-attached --timeout 30 --ready-file '{ready}'")
            r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
            if r.returncode != 0:
                raise Abort(f"the agent did not follow pod {name}: {r.stderr}")
            os.unlink(ready)

    def stop_agents(self):
        """SIGTERM to every agent; returns their last lines (the counters)."""
        reports = []
        for p, q in self.agents:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            rest = []
            while True:
                try:
                    line = q.get(timeout=2)
                except queue.Empty:
                    break
                if line is None:
                    break
                rest.append(line)
            reports.append((p.returncode, rest[-1] if rest else ""))
        self.agents = []
        return reports

    def stop_agents_checked(self, requests, floor=None):
        """Stops the agents and checks that each detached cleanly and that a and b inserted one header per
        request of the followed chain (`requests` of them; none with a floor object: `floor`, by default
        --floor)."""
        reports = self.stop_agents()
        for name, (code, last) in zip(NAMES, reports):
            if code != 0 or "detached" not in last:
                raise Abort(f"agent {name} exited with {code}: {last}")
        total = 0 if (args.floor if floor is None else floor) else requests
        # Node-wide, one agent counts both a's and b's.
        expect = [(n, total) for n in NAMES[:2]] if args.mode == "per-service" else [("node", 2 * total)]
        counter = "tx_h2_inserted" if args.protocol == "h2c" else "tx_h1_inserted"
        for (name, count), (_, last) in zip(expect, reports):
            if f"{counter}={count} " not in last:
                raise Abort(f"agent {name} did not insert {count} headers: {last}")

    def cleanup(self):
        for p, _ in self.agents:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, _ in self.agents:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.agents = []
        for p in self.services:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.services = []
        if os.path.exists(self.config):
            os.unlink(self.config)
        for name in NAMES:
            for pod in (self.dirs[name], self.twin_dirs[name]):
                for leaf in ("wait", "app"):
                    remove_cgroup(os.path.join(pod, leaf))
                remove_cgroup(pod)
        for root in (self.root, self.twin_root):
            if os.path.isdir(root):
                os.rmdir(root)

    def cpu_snapshot(self):
        services = sum(proc_cpu(p.pid) for p in self.services)
        agents = sum(proc_cpu(p.pid) for p, _ in self.agents)
        cg = sum(cgroup_usec(d) for d in self.dirs.values())
        return services, agents, cg

    def window(self, n, want):
        lat = []
        bad = 0
        example = None
        if args.keepalive:
            # New connections all along the chain, opened after the add-on attached.
            self.kept = kept_to(self.port)
            self.kept.get("/reconnect")
        for _ in range(n):
            ns, body = self.kept.get("/") if args.keepalive else get(self.port)
            lat.append(ns)
            seen = seen_by_c(body)
            if seen != want:
                bad += 1
                example = seen
        if bad:
            raise Abort(f"{bad} of {n} answers were not {want!r}, e.g. {example!r}")
        return lat

    def measure(self, with_agents):
        """One window; with_agents False runs no agent, or the --baseline-object one."""
        carried = with_agents and (not args.floor or args.services_send_context)
        want = b'["/a/b"]' if carried else b"[]"
        if args.services_send_context:
            if with_agents:
                open(SEND_CONTEXT_FLAG, "w").close()
            elif os.path.exists(SEND_CONTEXT_FLAG):
                os.unlink(SEND_CONTEXT_FLAG)
        agents = with_agents or BASELINE is not None
        if agents:
            self.start_agents(None if with_agents else BASELINE)
        time.sleep(args.settle)
        self.window(args.warmup, want)
        progs_before = copper_programs() if agents and args.bpf_stats else {}
        before = self.cpu_snapshot()
        lat = self.window(args.requests, want)
        after = self.cpu_snapshot()
        programs = {}
        if agents and args.bpf_stats:
            for key, (cnt, ns) in copper_programs().items():
                c0, n0 = progs_before.get(key, (0, 0))
                name = key[1]
                pc, pn = programs.get(name, (0, 0))
                programs[name] = (pc + cnt - c0, pn + ns - n0)
        if agents:
            # With kept connections each window also sends its /reconnect.
            self.stop_agents_checked(args.warmup + args.requests + (2 if args.keepalive else 0),
                                     floor=args.floor if with_agents else True)
        n = args.requests
        return {
            "lat": lat,
            "svc_cpu": (after[0] - before[0]) / n * 1e6,
            "agent_cpu": (after[1] - before[1]) / n * 1e6,
            "cg_cpu": (after[2] - before[2]) / n,
            "programs": programs,
        }

    def interleaved_round(self, rng, want, n, kept, twin):
        """N pairs of requests, one to each chain in random order, on the kept connections (None: a new
        connection per request); returns the latencies of each chain and each chain's cgroup CPU per request."""
        lat = {True: [], False: []}
        usec = lambda followed: sum(cgroup_usec(d) for d in (self.dirs if followed else self.twin_dirs).values())  # noqa: E731
        cpu = {True: -usec(True), False: -usec(False)}
        for _ in range(n):
            order = (True, False) if rng.random() < 0.5 else (False, True)
            for followed in order:
                if kept:
                    ns, body = (kept if followed else twin).get("/")
                else:
                    ns, body = get(self.port if followed else self.twin_port)
                seen = seen_by_c(body)
                expected = want if followed else b"[]"
                if seen != expected:
                    raise Abort(f"the {'followed' if followed else 'unfollowed'} chain's c saw {seen!r}, "
                                f"not {expected!r}")
                lat[followed].append(ns)
        cpu[True] += usec(True)
        cpu[False] += usec(False)
        return lat, {k: v / max(n, 1) for k, v in cpu.items()}


def bootstrap_median(values, draws=5000):
    """95% interval of the median of `values` (a percentile bootstrap over the rounds; fixed seed)."""
    rng = random.Random(1)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def fmt3(values):
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def print_verdict(met, over, rule, interval, hint):
    """The last line of a run: the verdict on the target. `met` when what `rule` names lies under both bounds;
    `over` when `interval` lies wholly over one; otherwise the run does not tell either way."""
    outcome = ("met" if met else f"not met: {interval} lies over a bound" if over else
               f"not shown either way: {interval} reaches over a bound but does not lie over it, or an estimate is "
               f"over ({hint})")
    if args.requests < 1000 or args.rounds < 8:
        outcome = "no verdict: it takes at least 8 rounds of 1,000 measured requests (or pairs) or more"
    print(f"\ntarget (under 3 us and under 5% at p99 per hop; met when {rule} under both bounds): {outcome}")


def print_programs(rounds, which=""):
    """The kernel's own accounting of the add-on's programs, per measured request (all 3 hops)."""
    names = sorted({name for x in rounds for name in x["programs"]})
    print(f"\nBPF programs{which} (kernel.bpf_stats_enabled; every call on the machine, measured windows only; "
          "median over rounds), per request through the chain:")
    print("| program | calls per request | ns per call | ns per request |")
    print("|---|---|---|---|")
    total = []
    for name in names:
        calls = [x["programs"].get(name, (0, 0))[0] / args.requests for x in rounds]
        per_call = [ns / cnt for cnt, ns in (x["programs"].get(name, (0, 0)) for x in rounds) if cnt]
        per_req = [x["programs"].get(name, (0, 0))[1] / args.requests for x in rounds]
        total.append(per_req)
        print(f"| {name} | {statistics.median(calls):.2f} | "
              f"{statistics.median(per_call) if per_call else 0:.0f} | {statistics.median(per_req):.0f} |")
    sums = [sum(col) for col in zip(*total)] if total else [0]
    print(f"| all, per request | | | {statistics.median(sums):.0f} ({statistics.median(sums) / 3:.0f} per hop) |")


def measure_interleaved(bench):
    """--interleaved: the add-on attached once (none with --aa), then ROUNDS rounds, each on connections of its
    own with --keepalive (so that each round's threads are placed anew): WARMUP unmeasured pairs, then REQUESTS
    measured pairs. Returns each round's figures."""
    want = b"[]" if args.floor or args.aa else b'["/a/b"]'
    rng = random.Random(7)
    if not args.aa:
        bench.start_agents()
    time.sleep(args.settle)
    rounds = []
    for _ in range(args.rounds):
        kept = twin = None
        if args.keepalive:
            kept, twin = kept_to(bench.port), kept_to(bench.twin_port)
            kept.get("/reconnect")
            twin.get("/reconnect")
        # The first requests on new connections (new threads along both chains, and the end of the last
        # round's connections) are slower, on the followed chain more: see docs/evaluation.md.
        bench.interleaved_round(rng, want, args.warmup, kept, twin)
        rounds.append(bench.interleaved_round(rng, want, args.requests, kept, twin))
        if kept:
            kept.sock.close()
            twin.sock.close()
    if not args.aa:
        # Each round's /reconnect included.
        bench.stop_agents_checked(args.rounds * ((1 if args.keepalive else 0) + args.warmup + args.requests))
    return rounds


def outside_read_ns():
    """What one socket read by a task that no agent follows pays for the add-on's hook, in ns, from
    ebpf_hook_cost.py's `read outside` case: the larger of the program's run time per call (which the
    statistics' clock reads make a little longer) and the wall-time difference at the process that reads
    (median of 5 rounds each way; the kernel's path to the program included, but noisier)."""
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "ebpf_hook_cost.py"),
           "--copperc", args.copperc, "--cases", "read-outside", "--wall-rounds", "5", "-n", "50000"]
    if args.object:
        cmd += ["--object", args.object] + (["--floor"] if args.floor else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise Abort(f"ebpf_hook_cost.py failed: {out.stderr.strip() or out.stdout.strip()}")
    # | read outside | operations | program | calls per operation | ns per call |, then
    # | read outside | without | with | added | segments without | segments with |
    cells = [[c.strip() for c in l.split("|")[1:-1]] for l in out.stdout.splitlines()
             if l.startswith("| read outside |")]
    program = [float(c[4]) for c in cells if len(c) == 5]
    wall = [float(c[3]) for c in cells if len(c) == 6]
    if not program or not wall:
        raise Abort(f"no `read outside` rows in ebpf_hook_cost.py's output: {out.stdout}")
    return max(program[-1], wall[-1], 0.0)


def all_latencies(rounds, followed):
    """All measured latencies of one chain over `rounds`, sorted."""
    return sorted(v for lat, _ in rounds for v in lat[followed])


def union_percentile(sorted_rounds, p):
    """percentile() of the values of all the sorted lists together (integer nanoseconds), without merging them:
    the smallest value that has enough values at or under it, found by halving the range. A bootstrap draw of
    64 rounds then costs milliseconds, not the sort of all their requests."""
    n = sum(len(r) for r in sorted_rounds)
    need = max(0, math.ceil(p / 100 * n) - 1) + 1
    lo, hi = min(r[0] for r in sorted_rounds), max(r[-1] for r in sorted_rounds)
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(bisect.bisect_right(r, mid) for r in sorted_rounds) >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def block_bootstrap(rounds, stat, draws=2000):
    """95% interval of stat(rounds) when whole rounds are drawn again (fixed seed): a burst of the machine
    that falls in one round stays in one draw."""
    rng = random.Random(3)
    values = sorted(stat(rng.choices(rounds, k=len(rounds))) for _ in range(draws))
    return values[int(0.025 * draws)], values[int(0.975 * draws) - 1]


def report_interleaved(bench, rounds, elapsed):
    # The unfollowed chain's a, b and c each read a request and a and b a response: 5 reads a request that
    # pass through the hook's first tests. The followed chain pays the same for its client's reads, as the
    # unfollowed one does for its own client's (one client, both chains).
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump([{"followed": lat[True], "unfollowed": lat[False]} for lat, _ in rounds], f)
    outside = 0.0 if args.aa else outside_read_ns()
    bias = 5 * outside / 3e3  # us per hop
    print(f"machine: {os.cpu_count()} cores, Linux {platform.release()}; copperc: {args.copperc}; interleaved: the "
          f"add-on attached for the whole run, {args.rounds} rounds x {args.requests} request pairs (after {args.warmup} "
          f"warm-up pairs{', each round on kept connections of its own' if args.keepalive else ''}), one request of each pair to a followed chain "
          f"and one to an unfollowed chain of the same services, in random order; client -> a -> b -> c over "
          f"{PROTOCOL} on loopback, services: {args.services}, "
          f"{'kept connections' if args.keepalive else 'a new connection per request and hop'}, agents: "
          f"{'one node-wide (--config)' if args.mode == 'node' else 'one per service'}"
          f"{', FLOOR object (programs return at once)' if args.floor else ''}, syscall hooks: "
          f"{', '.join(sorted(bench.hooks))}; {elapsed:.0f} s\n")
    header = ["chain", "p50 us (min / median / max of rounds)", "p99 us (min / median / max of rounds)",
              "p50 us, all requests", "p99 us, all requests", "CPU us/request, service cgroups (cpu.stat)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    per = {}
    # Sorted once: the run's own figures read them many times, and the bootstrap draws count in each round's.
    everything = {followed: all_latencies(rounds, followed) for followed in (False, True)}
    by_round = [{followed: sorted(lat[followed]) for followed in (False, True)} for lat, _ in rounds]
    for followed in (False, True):
        p50s = [percentile(sorted(lat[followed]), 50) / 1e3 for lat, _ in rounds]
        p99s = [percentile(sorted(lat[followed]), 99) / 1e3 for lat, _ in rounds]
        cg = [cpu[followed] for _, cpu in rounds]
        per[followed] = {"p50": p50s, "p99": p99s, "cg": cg}
        name = ("pods, no agent (--aa)" if args.aa else "followed (add-on)") if followed else "unfollowed"
        print(f"| {name} | {fmt3(p50s)} | {fmt3(p99s)} | "
              f"{percentile(everything[followed], 50) / 1e3:.1f} | {percentile(everything[followed], 99) / 1e3:.1f} | "
              f"{fmt3(cg)} |")
    print(f"\nper hop, (followed - unfollowed) / 3, then + {bias:.2f} us: the unfollowed chain's 5 reads a request "
          f"pass through the node's hook, {outside:.0f} ns each (ebpf_hook_cost.py, read outside), which the followed "
          f"chain's figure does not carry against it. Pooled: over all requests, with a 95% interval from drawing "
          f"whole rounds again; paired: the median over rounds of each round's own difference, with its interval:")
    # "met": both p99 estimates and intervals lie under both bounds; "not met": an interval lies wholly over a
    # bound (its lower end is over); otherwise the run does not tell either way, whatever its estimates say.
    met, over = False, False
    at = lambda q: (percentile(everything[True], q) - percentile(everything[False], q)) / 3e3 + bias  # noqa: E731
    base99 = percentile(everything[False], 99) / 3e3
    for label, q in (("p50 latency", 50), ("p99 latency", 99)):
        diff = lambda rs, q=q: (union_percentile([r[True] for r in rs], q)  # noqa: E731
                                - union_percentile([r[False] for r in rs], q)) / 3e3 + bias
        estimate = at(q)
        low, high = block_bootstrap(by_round, diff)
        key = "p50" if q == 50 else "p99"
        paired = sorted((y - x) / 3 + bias for x, y in zip(per[False][key], per[True][key]))
        plow, phigh = bootstrap_median(paired)
        base = percentile(everything[False], q) / 3e3
        print(f"- {label}: pooled {estimate:+.2f} us ({estimate / base * 100:+.1f}%) [{low:+.2f}, {high:+.2f}], "
              f"paired {statistics.median(paired):+.2f} us [{plow:+.2f}, {phigh:+.2f}]; a hop's {key} "
              f"unfollowed: {base:.1f} us")
        if q == 99:
            under = lambda d: d < 3 and d / base99 < 0.05  # noqa: E731
            met = all(under(d) for d in (estimate, high, statistics.median(paired), phigh))
            over = not under(low) or not under(plow)
    cg = sorted((y - x) / 3 for x, y in zip(per[False]["cg"], per[True]["cg"]))
    clow, chigh = bootstrap_median(cg)
    print(f"- CPU per request, cgroup cpu.stat (services): paired {statistics.median(cg):+.2f} us per hop "
          f"[{clow:+.2f}, {chigh:+.2f}] (the unfollowed chain's hook cost not added)")
    print("\nper hop along the distribution of all requests, (followed - unfollowed) / 3 + bias, us: " + ", ".join(
        f"p{q:g} {at(q):+.2f}" for q in (10, 25, 50, 75, 90, 95, 99, 99.9)))
    if args.floor or args.aa:
        print("\n" + ("A/A: no agent ran; the differences are the method's own, between two chains of the same "
                      "services" if args.aa else "floor object: no context was carried, so the target does not "
                      "apply to this run"))
        return
    print_verdict(met, over, "both p99 estimates and intervals lie", "an interval",
                  "run more rounds; 128 rounds of 2,000 pairs gave p99 intervals 0.9 to 1.1 us wide, 64 rounds 1.1 to 3.0")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(args.max_seconds)
    if os.geteuid() != 0:
        sys.exit("run as root: the agents load BPF programs and the script creates cgroups")
    if args.cpus:
        try:
            os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
        except (ValueError, OSError) as e:
            sys.exit(f"--cpus {args.cpus}: {e}")
    if not os.access(args.copperc, os.X_OK):
        sys.exit(f"{args.copperc} is missing: run `cargo build --release`")
    if args.protocol == "h2c":
        if not os.access(args.h2c_testsvc, os.X_OK):
            sys.exit(f"{args.h2c_testsvc} is missing: run `cargo build --release --example copperc-h2c-testsvc`")
    elif args.services == "native":
        if not os.access(args.testsvc, os.X_OK):
            sys.exit(f"{args.testsvc} is missing: run `cargo build --release`")
    if args.bpf_stats:
        stats_before = set_bpf_stats("1")
    bench = Bench()
    results = {False: [], True: []}
    started = time.monotonic()
    try:
        bench.port = bench.start_services()
        if args.interleaved:
            bench.twin_port = bench.start_services(twin=True)
            rounds = measure_interleaved(bench)
        else:
            bench.window(args.warmup, b"[]")  # warm-up of the chain
            for r in range(args.rounds):
                order = [False, True] if r % 2 == 0 else [True, False]
                for with_agents in order:
                    results[with_agents].append(bench.measure(with_agents))
    finally:
        signal.alarm(0)
        bench.cleanup()
        if os.path.exists(SEND_CONTEXT_FLAG):
            os.unlink(SEND_CONTEXT_FLAG)
        if args.bpf_stats:
            set_bpf_stats(stats_before)
    elapsed = time.monotonic() - started
    if args.interleaved:
        return report_interleaved(bench, rounds, elapsed)

    print(f"machine: {os.cpu_count()} cores, Linux {platform.release()}; copperc: {args.copperc}; "
          f"{args.rounds} rounds x 2 configurations x {args.requests} sequential requests "
          f"(+{args.warmup} warm-up each, after {args.settle:g} s to settle), client -> a -> b -> c over {PROTOCOL} on loopback, services: {args.services}"
          f"{' (answers echo every header)' if args.services == 'native' and args.echo_headers else ''}, "
          f"{'kept connections' if args.keepalive else 'a new connection per request and hop'}, "
          f"agents: {'one node-wide (--config)' if args.mode == 'node' else 'one per service'}"
          f"{', FLOOR object (programs return at once)' if args.floor else ''}"
          f"{'; without agents = with --baseline-object ' + args.baseline_object if BASELINE else ''}"
          f"{'; with agents = the services also send the context header themselves' if args.services_send_context else ''}"
          f"{'; on CPUs ' + args.cpus + ' only' if args.cpus else ''}"
          f", syscall hooks: {', '.join(sorted(bench.hooks))}; {elapsed:.0f} s\n")
    header = ["configuration", "p50 us (min / median / max of rounds)", "p99 us (min / median / max of rounds)",
              "p50 us, all requests", "p99 us, all requests", "CPU us/request, services (/proc; min / median / max)",
              "CPU us/request, agents (/proc)", "CPU us/request, service cgroups (cpu.stat)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    stats = {}
    for with_agents in (False, True):
        rounds = results[with_agents]
        p50s = [percentile(sorted(x["lat"]), 50) / 1e3 for x in rounds]
        p99s = [percentile(sorted(x["lat"]), 99) / 1e3 for x in rounds]
        pooled = sorted(v for x in rounds for v in x["lat"])
        cpu = [x["svc_cpu"] + x["agent_cpu"] for x in rounds]
        cg = [x["cg_cpu"] for x in rounds]
        stats[with_agents] = {"p50": p50s, "p99": p99s, "cpu": cpu, "cg": cg, "pooled": pooled}
        row = ["with agents" if with_agents else "without agents", fmt3(p50s), fmt3(p99s),
               f"{percentile(pooled, 50) / 1e3:.1f}", f"{percentile(pooled, 99) / 1e3:.1f}",
               fmt3([x["svc_cpu"] for x in rounds]), fmt3([x["agent_cpu"] for x in rounds]), fmt3(cg)]
        print("| " + " | ".join(row) + " |")
    off, on = stats[False], stats[True]
    print("\nper hop, (with - without) / 3; in parentheses, relative to the same figure without agents.")
    print("quietest = minimum over rounds; median = median over rounds; "
          "paired = min / median / max over rounds of that round's own difference, "
          "and a bootstrap interval of that median over the rounds:")
    # As in the interleaved design: "met" when the three p99 estimates and
    # the paired median's interval lie under both bounds; "not met" when
    # that interval lies wholly over a bound; otherwise not shown either way.
    met, over = False, False
    labels = (("p50 latency", "p50"), ("p99 latency", "p99"),
              ("CPU per request, /proc (services + agents)", "cpu"),
              ("CPU per request, cgroup cpu.stat (services)", "cg"))
    for label, key in labels:
        a, b = off[key], on[key]
        quiet = (min(b) - min(a)) / 3
        med = (statistics.median(b) - statistics.median(a)) / 3
        paired = sorted((y - x) / 3 for x, y in zip(a, b))
        low, high = bootstrap_median(paired)
        print(f"- {label}: quietest {quiet:+.1f} us ({(min(b) - min(a)) / min(a) * 100:+.1f}%), "
              f"median {med:+.1f} us ({(statistics.median(b) - statistics.median(a)) / statistics.median(a) * 100:+.1f}%), "
              f"paired {paired[0]:+.1f} / {statistics.median(paired):+.1f} / {paired[-1]:+.1f} us "
              f"(95% interval of the paired median: {low:+.1f} to {high:+.1f} us)")
        if key == "p99":
            under = lambda d, base: d < 3 and d / base < 0.05  # noqa: E731
            base = statistics.median(a) / 3
            met = all(under(d, b) for d, b in ((quiet, min(a) / 3), (med, base),
                                               (statistics.median(paired), base), (high, base)))
            over = not under(low, base)
    # The shape of the difference along the distribution: whether the add-on
    # costs a fixed amount per request, or more in slower requests.
    print("\nper hop along the distribution of all requests (with - without) / 3, us: " + ", ".join(
        f"p{q:g} {(percentile(on['pooled'], q) - percentile(off['pooled'], q)) / 3e3:+.1f}"
        for q in (10, 25, 50, 75, 90, 95, 99, 99.9)))
    if args.per_round:
        print("\neach round, in the order run: configuration, p50 us, p99 us")
        for r in range(args.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            for with_agents in order:
                x = stats[with_agents]
                print(f"  round {r + 1}: {'with' if with_agents else 'without'} agents: "
                      f"{x['p50'][r]:.1f} {x['p99'][r]:.1f}")
    if args.bpf_stats:
        print_programs(results[True], ", windows \"with agents\"" if BASELINE else "")
        if BASELINE:
            print_programs(results[False], ", windows \"without agents\" (--baseline-object)")
    if BASELINE or args.services_send_context:
        print("\n" + ("--baseline-object: " if BASELINE else "") + ("--services-send-context: " if
              args.services_send_context else "") + "not a comparison with no add-on, so the target does not "
              "apply to this run")
    elif args.floor:
        print("\nfloor object: no context was carried, so the target does not apply to this run")
    else:
        print_verdict(met, over, "the three estimates and the paired interval lie", "the paired interval",
                      "run more rounds, or more requests a window")

if __name__ == "__main__":
    try:
        main()
    except Abort as e:
        sys.exit(f"error: {e}")
