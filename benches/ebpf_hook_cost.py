#!/usr/bin/env python3
"""Prints what each program of the eBPF add-on costs per call, hot, case by case.

The chain benchmark (benches/ebpf_overhead.py) measures the add-on end to end,
where a few microseconds per hop are within its noise. This script measures
the programs themselves: the kernel's own accounting of each program's run
time (kernel.bpf_stats_enabled: run_cnt and run_time_ns, which include the
helpers a program calls), while one process repeats a single kind of
operation in a tight loop, so that the caches are warm and nothing else runs.

One `copperc agent --service bench --cgroup <folder>` follows a fresh cgroup
v2 folder. Each case is a new Python process that joins that folder (or, for
the first case, stays outside it) and repeats one operation N times over
loopback TCP:

- read outside: a task no service is followed for reads from a TCP
  connection (the receive hook runs for every socket read on the machine);
- response read: a followed task reads an HTTP/1.1 response on a kept
  connection it opened, after sending a request there;
- request read, context first: it reads a request head, on a connection it
  accepted, whose context line comes right after the request line (as the
  add-on inserts it);
- request read, context fifth: the context line comes after four others (as
  a proxy in between may forward it);
- request read, no context, 1,000-byte head: a head like a browser's (user
  agent, cookies) without a context line, as from a caller the add-on does
  not follow (searched to its end) or, with `--entrypoint`, from outside
  (only its request line is read);
- request sent, kept connection: it sends a request on one kept TCP
  connection, so the add-on inserts its value (sk_msg);
- request sent, new connection: a new TCP connection per request (sockops
  adds each to the sockhash);
- h2c request read, h2c request sent: the same for HEADERS frames on an h2c
  connection (prior knowledge), the context field at the end of the block.

The per-call figure includes the two clock reads of the statistics
themselves. A second table times the loops themselves at the process that
runs them, in rounds without and with the agent (statistics off, in
alternating order): what the add-on adds to one operation, including what
the kernel does differently for a socket in the sockhash (a send goes
through the sk_msg path: the message is copied into a scatterlist, the
program runs, and the pages are spliced into the TCP stream). The "response
read" loop also sends the request on that connection, through sk_msg.

Needs root, cgroup v2, BTF and `cargo build --release`. Stops the agent and
removes its cgroup, also on failure.

With `--entrypoint` the agent follows the folder as an entry point, which
ignores a context from outside: the request reads then measure that path.
With `--syscall-hooks tracepoints` the agent captures contexts with the
syscall tracepoints instead of the socket receive hook: the read rows then
show `copper_exit_recvfrom` (Python's `recv` is the recvfrom syscall).

Usage: build/venv/bin/python benches/ebpf_hook_cost.py [--copperc target/release/copperc] [--object FILE] [-n 100000]
       [--wall-rounds 2] [--entrypoint] [--syscall-hooks socket|tracepoints] [--exclude-sink-port | --node-own-ports]

With `--exclude-sink-port` the agent excludes the port of the sink that
the send cases talk to, and the port of the response read's connection:
those connections never enter the sockhash, sk_msg must not run on them,
and the tables show what a send to an excluded port, and a response read
there, cost.

With `--node-own-ports` the agent runs node-wide (`copperc agent --config`,
as the DaemonSet runs it), following the folder as a pod (its `wait` cgroup
announces it with `copperc await-agent`, the cases run in its `app`
cgroup), and the service has a list of excluded ports of its own (port 1,
which no case uses). Each new connection then has sockops look its
service up from the socket's cgroup: the "new connection" rows show what
that costs, against a run without the option.
"""
import argparse
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

from ebpf_bench import cgroup2_root, copper_programs, set_bpf_stats

parser = argparse.ArgumentParser()
parser.add_argument("--copperc", default="target/release/copperc")
parser.add_argument("--object", help="an eBPF object for the agent to load instead of the one built into copperc "
                                        "(`copperc agent --object`), to compare two versions of the programs")
parser.add_argument("--floor", action="store_true",
                    help="--object is the floor object (`make build/ebpf/copper_floor.bpf.o`, whose sk_msg and socket "
                         "receive programs return at once): its counters must stay at 0. What the wall-time table "
                         "then adds is what joining the sockhash and the hooks cost, without the programs' work")
parser.add_argument("-n", type=int, default=100000, help="operations per case (a tenth for new connections)")
parser.add_argument("--wall-rounds", type=int, default=2,
                    help="rounds of the loops without and with the agent (statistics off), timed at the process "
                         "that runs them: what the add-on adds to each operation, the kernel's paths included")
parser.add_argument("--entrypoint", action="store_true",
                    help="the agent follows the folder as an entry point (`copperc agent --entrypoint`)")
parser.add_argument("--cases", help="run only these cases, by the names of CASES' second column, comma-separated "
                    "(read-outside, read-response, read-first, read-fifth, read-h2, read-browser, read-body, "
                    "read-long, send-kept, "
                    "send-new, send-h2): to measure one change to one path quickly")
parser.add_argument("--syscall-hooks", choices=["socket", "tracepoints"], default="socket",
                    help="which receive hooks the agent attaches (`copperc agent --syscall-hooks`)")
parser.add_argument("--exclude-sink-port", action="store_true",
                    help="the agent leaves the connections to the script's sink out (`copperc agent "
                         "--exclude-outbound-ports`): the send rows then show what a send costs on a connection "
                         "to an excluded port (sk_msg must not run), against none")
parser.add_argument("--node-own-ports", action="store_true",
                    help="a node-wide agent, whose service has its own excluded ports (one no case uses): what "
                         "sockops' look-up of a new connection's service costs")
parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
parser.add_argument("--pair-port", type=int, default=0, help=argparse.SUPPRESS)  # internal: the response read's port
parser.add_argument("--join", help=argparse.SUPPRESS)  # internal: the cgroup the case's process joins
args = parser.parse_args()
if args.floor and not args.object:
    parser.error("--floor needs --object (the floor object)")
if args.node_own_ports and args.exclude_sink_port:
    parser.error("--node-own-ports and --exclude-sink-port measure different things: give one")

# Seconds between attaching or detaching the agent and the timed loops.
SETTLE = 1.0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
CTX_FIRST = b"GET /items HTTP/1.1\r\nx-copper-context: /a/b\r\nHost: c\r\nUser-Agent: bench\r\n\r\n"
CTX_FIFTH = (b"GET /items HTTP/1.1\r\nHost: c\r\nUser-Agent: bench\r\nAccept: */*\r\n"
             b"x-request-id: 42\r\nx-copper-context: /a/b\r\n\r\n")
REQUEST = b"GET /items HTTP/1.1\r\nHost: c\r\nUser-Agent: bench\r\n\r\n"
BROWSER = (b"GET /items HTTP/1.1\r\nHost: shop\r\nUser-Agent: " + b"m" * 120 + b"\r\nAccept: */*\r\n"
           b"Accept-Language: en\r\ncookie: " + b"c" * 760 + b"\r\nx-request-id: 42\r\n\r\n")
# A body after the head (its end in the same read): the add-on finds its length.
WITH_BODY = (b"POST /items HTTP/1.1\r\nx-copper-context: /a/b\r\nHost: c\r\nUser-Agent: bench\r\n"
             b"Content-Type: application/json\r\nContent-Length: 256\r\n\r\n" + b"7" * 256)
# A head longer than the first 1,024 bytes the add-on copies (a token, say).
LONG_HEAD = (b"GET /items HTTP/1.1\r\nx-copper-context: /a/b\r\nHost: c\r\nauthorization: Bearer "
             + b"t" * (2000 - 96) + b"\r\nUser-Agent: bench\r\n\r\n")
# h2c: the client preface and an empty SETTINGS frame open a connection.
H2_OPEN = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# A GET's header block: :method GET, :scheme http, :path / (indexed), :authority c (literal).
H2_BLOCK = bytes([0x82, 0x86, 0x84, 0x01, 0x01]) + b"c"
# The add-on's field: a literal without indexing, at the end of the block.
H2_CTX = b"\x00\x10x-copper-context\x04/a/b"


def headers_frame(stream, block):
    """A HEADERS frame with END_HEADERS and END_STREAM."""
    return len(block).to_bytes(3, "big") + bytes([0x1, 0x5]) + stream.to_bytes(4, "big") + block

# (name, what the child does, programs whose figures the row shows)
CASES = [
    ("read outside", "read-outside", ["copper_sock_recv"]),
    ("response read", "read-response", ["copper_sock_recv", "copper_sk_msg"]),
    ("request read, context first", "read-first", ["copper_sock_recv"]),
    ("request read, context fifth", "read-fifth", ["copper_sock_recv"]),
    ("h2c request read (HEADERS frame, context last)", "read-h2", ["copper_sock_recv"]),
    ("request read, no context, 1,000-byte head", "read-browser", ["copper_sock_recv"]),
    ("request read, context first, 256-byte body", "read-body", ["copper_sock_recv"]),
    ("request read, context first, 2,000-byte head", "read-long", ["copper_sock_recv"]),
    ("request sent, kept connection", "send-kept", ["copper_sk_msg"]),
    ("request sent, new connection", "send-new", ["copper_sk_msg", "copper_sockops"]),
    ("h2c request sent, kept connection (HEADERS frame)", "send-h2", ["copper_sk_msg"]),
]


def tcp_pair(port=0):
    """A loopback TCP connection: (the end that connected, the end that accepted), to `port` (0: any)."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        c = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
    for end in (c, s):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c, s


def run_case(case, n, port, join):
    """The child: repeats one operation n times, and prints `WALL <ns>`, the loop's time."""
    start = loop_case(case, n, port, join)
    print("WALL", time.perf_counter_ns() - start, flush=True)


def loop_case(case, n, port, join):
    """Sets the case up, repeats its operation n times; returns when the loop started."""
    # Opened before joining the cgroup, like a connection from a client
    # elsewhere: the add-on does not follow its connecting end, which sends.
    a, b = tcp_pair()
    if join:
        with open(os.path.join(join, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    if case.startswith("send"):
        # The thread's value (/a/bench) comes from a request it read.
        a.sendall(CTX_FIRST)
        b.recv(65536)
    payload = {"read-outside": RESPONSE, "read-first": CTX_FIRST, "read-fifth": CTX_FIFTH,
               "read-browser": BROWSER, "read-body": WITH_BODY, "read-long": LONG_HEAD}.get(case)
    if case == "read-response":
        out, peer = tcp_pair(args.pair_port)
    elif case in ("send-kept", "send-h2"):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif case == "read-h2":
        a.sendall(H2_OPEN)
        b.recv(65536)
    if case == "send-h2":
        s.sendall(H2_OPEN)
    start = time.perf_counter_ns()
    if case == "read-response":
        # A kept connection the followed task opened: it sends a request and
        # reads the response. The accepting end answers without reading;
        # it takes the requests in by the thousand.
        for i in range(n):
            out.sendall(REQUEST)
            peer.sendall(RESPONSE)
            out.recv(65536)
            if i % 1000 == 999:
                peer.recv(1 << 20)
    elif payload:
        for _ in range(n):
            a.sendall(payload)
            b.recv(65536)
    elif case == "send-kept":
        for _ in range(n):
            s.sendall(REQUEST)
    elif case == "send-new":
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(REQUEST)
            s.close()
    elif case == "read-h2":
        for i in range(n):
            a.sendall(headers_frame(2 * i + 1, H2_BLOCK + H2_CTX))
            b.recv(65536)
    elif case == "send-h2":
        for i in range(n):
            s.sendall(headers_frame(2 * i + 1, H2_BLOCK))
    return start


def programs():
    """run_cnt and run_time_ns of the loaded programs named copper_*, summed by name."""
    totals = {}
    for (_, name), (c, t) in copper_programs().items():
        c0, t0 = totals.get(name, (0, 0))
        totals[name] = (c0 + c, t0 + t)
    return totals


class Sink:
    """A TCP server outside the followed cgroup that reads and drops what it is sent."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(512)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.drain, args=(c,), daemon=True).start()

    @staticmethod
    def drain(c):
        with c:
            while c.recv(65536):
                pass


def check_counters(lines):
    """The agent's counters must show that every case did what it measures."""
    said = []
    while True:
        try:
            line = lines.get(timeout=5)
        except queue.Empty:
            break
        said.append(line.strip())
    last = next((l for l in reversed(said) if " detached; " in l), "")
    counters = dict(kv.split("=", 1) for kv in last.split("detached; ", 1)[-1].split() if "=" in kv)
    n, new = args.n, args.n // 10
    ran = {c for _, c, _ in selected_cases()}
    runs = lambda *cases: sum(1 for c in cases if c in ran)  # noqa: E731
    sends = runs("send-kept", "send-new", "send-h2")  # each reads a value first, with its context
    want = {
        "rx_h1_requests": runs("read-first", "read-fifth", "read-browser", "read-body", "read-long") * n + sends,
        "rx_h2_requests": runs("read-h2") * n,
        # An entry point looks for no context in a request from outside (HTTP/1.x and h2c).
        "rx_with_context": 0 if args.entrypoint
        else runs("read-first", "read-fifth", "read-h2", "read-body", "read-long") * n + sends,
        "tx_h1_inserted": runs("send-kept") * n + runs("send-new") * new,
        "tx_h2_inserted": runs("send-h2") * n,
    }
    if args.exclude_sink_port:
        sent = {k: counters.get(k) for k in ("tx_h1_inserted", "tx_h2_inserted") if int(counters.get(k, -1)) != 0}
        opened = runs("read-response", "send-kept", "send-h2") + runs("send-new") * new
        if sent or int(counters.get("tx_excluded_conns", -1)) < opened:
            sys.exit(f"error: connections to the excluded port were followed ({sent}) or not counted "
                     f"(tx_excluded_conns, want {opened} or more); it said: {said}")
        want["tx_h1_inserted"] = want["tx_h2_inserted"] = 0
    if args.floor:
        busy = {k: counters.get(k) for k in want if int(counters.get(k, -1)) != 0}
        if busy:
            sys.exit(f"error: the floor object counted requests (it should return at once): {busy}; it said: {said}")
        return
    if args.entrypoint and int(counters.get("rx_with_context", -1)) != 0:
        sys.exit(f"error: an entry point counted contexts from outside; it said: {said}")
    short = {k: (counters.get(k), v) for k, v in want.items() if int(counters.get(k, -1)) < v}
    if short:
        sys.exit(f"error: the agent's counters fall short of the operations (have, want): {short}; it said: {said}")


def free_port():
    """A port that no socket holds now (the response read's connection goes there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The response read's connection: with --exclude-sink-port, its port is
# excluded too, so that the row shows a read on an excluded connection.
PAIR_PORT = free_port() if args.exclude_sink_port and not args.case else 0


# --node-own-ports: the agent's configuration and the waiter's ready file.
SCRATCH = tempfile.mkdtemp(prefix="copper-hook-cost-") if args.node_own_ports and not args.case else ""


def pod_folders(folder):
    """--node-own-ports: the pod's folder, its `wait` and its `app` cgroups."""
    pod = os.path.join(folder, "pod")
    return pod, os.path.join(pod, "wait"), os.path.join(pod, "app")


def spawn_agent(cmd, attached, failure):
    """Starts an agent; returns it and the queue of its stderr lines once its first line says `attached`."""
    agent = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in agent.stderr], daemon=True).start()
    first = lines.get(timeout=60)
    if attached not in first:
        stop_agent(agent)
        sys.exit(f"error: {failure}: {first.strip()}")
    return agent, lines


def start_node_agent(folder):
    """--node-own-ports: the node-wide agent, and the pod announced to it and followed."""
    config = os.path.join(SCRATCH, "config.json")
    with open(config, "w") as f:
        json.dump({"services": [{"name": "bench", "entrypoint": args.entrypoint, "excludeOutboundPorts": [1]}]}, f)
    cmd = [args.copperc, "agent", "--no-pins", "--pods-under", folder, "--config", config,
           "--syscall-hooks", args.syscall_hooks] + (["--object", args.object] if args.object else [])
    agent, lines = spawn_agent(cmd, "connections of `bench` to ports 1 not followed",
                               "the node-wide agent did not start with the service's own ports")
    _, wait, _ = pod_folders(folder)
    waiter = subprocess.run(["sh", "-c", f"echo $$ > '{wait}/cgroup.procs' && COPPER_CTX_SERVICE=bench exec "
                             f"'{args.copperc}' await-agent --exit-when-attached --timeout 30 "
                             f"--ready-file '{SCRATCH}/ready'"], stderr=subprocess.PIPE, text=True)
    if waiter.returncode != 0:
        stop_agent(agent)
        sys.exit(f"error: the pod was not followed: {waiter.stderr.strip()}")
    return agent, lines


def start_agent(folder, sink_port):
    """One agent on the folder; returns it and the queue of its stderr lines."""
    if args.node_own_ports:
        return start_node_agent(folder)
    cmd = [args.copperc, "agent", "--service", "bench", "--cgroup", folder]
    if args.exclude_sink_port:
        cmd += ["--exclude-outbound-ports", f"{sink_port},{PAIR_PORT}"]
    if args.entrypoint:
        cmd.append("--entrypoint")
    cmd += ["--syscall-hooks", args.syscall_hooks]
    if args.object:
        cmd += ["--object", args.object]
    return spawn_agent(cmd, " attached to ", "the agent did not attach")


def stop_agent(agent):
    if agent and agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)


def selected_cases():
    if not args.cases:
        return CASES
    wanted = args.cases.split(",")
    unknown = set(wanted) - {c for _, c, _ in CASES}
    if unknown:
        sys.exit(f"error: no such case: {', '.join(sorted(unknown))}")
    return [row for row in CASES if row[1] in wanted]


def tcp_out_segments():
    """The machine's count of TCP segments sent (/proc/net/snmp, Tcp OutSegs)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def run_cases(folder, port, on_case=None):
    """Runs every case once; returns {case: (loop ns per operation, TCP segments sent per operation)}. With
    on_case, reads the programs' statistics around each run and calls on_case(case, n, before, after)."""
    wall = {}
    for _, case, _ in selected_cases():
        n = args.n // 10 if case == "send-new" else args.n
        join = [] if case == "read-outside" else ["--join", folder]
        before = programs() if on_case else None
        segments = tcp_out_segments()
        r = subprocess.run([sys.executable, __file__, "--case", case, "-n", str(n), "--port", str(port),
                            "--pair-port", str(PAIR_PORT)] + join, stdout=subprocess.PIPE, text=True)
        segments = tcp_out_segments() - segments
        said = r.stdout.split()
        if r.returncode != 0 or len(said) != 2 or said[0] != "WALL":
            sys.exit(f"error: case {case} failed: {r.stdout!r}")
        wall[case] = (int(said[1]) / n, segments / n)
        if on_case:
            on_case(case, n, before, programs())
    return wall


def main():
    if os.geteuid() != 0:
        sys.exit("run as root: the agent loads BPF programs and the script creates a cgroup")
    if not os.access(args.copperc, os.X_OK):
        sys.exit(f"{args.copperc} is missing: run `cargo build --release`")
    folder = os.path.join(cgroup2_root(), f"copper-hook-cost-{os.getpid()}")
    os.makedirs(folder)
    # Node-wide, the cases run in the pod's `app` cgroup; the agent follows the pod.
    cases_folder = folder
    if args.node_own_ports:
        _, wait, cases_folder = pod_folders(folder)
        os.makedirs(wait)
        os.makedirs(cases_folder)
    agent = None
    rows = []
    walls = {False: [], True: []}
    stats_before = set_bpf_stats("1")

    def program_rows(case, n, before, after):
        label, names = next((l, ns) for l, c, ns in CASES if c == case)
        if args.syscall_hooks == "tracepoints":
            names = ["copper_exit_recvfrom" if n == "copper_sock_recv" else n for n in names]
        for name in names:
            c = after.get(name, (0, 0))[0] - before.get(name, (0, 0))[0]
            t = after.get(name, (0, 0))[1] - before.get(name, (0, 0))[1]
            if args.exclude_sink_port and name == "copper_sk_msg":
                if c != 0:
                    sys.exit(f"error: {name} ran {c} times on connections to an excluded port (case {case})")
                rows.append((label, n, name, 0.0, 0.0))
                continue
            if c < n:
                sys.exit(f"error: {name} ran {c} times for {n} operations of case {case}")
            rows.append((label, n, name, c / n, t / c))

    try:
        sink = Sink()
        agent, lines = start_agent(folder, sink.port)
        time.sleep(SETTLE)
        run_cases(cases_folder, sink.port, program_rows)
        stop_agent(agent)
        check_counters(lines)
        # The loops' own time, without the statistics' clock reads: rounds
        # without and with the agent, in alternating order.
        set_bpf_stats(stats_before if stats_before != "1" else "0")
        for r in range(args.wall_rounds):
            for with_agent in ((False, True) if r % 2 == 0 else (True, False)):
                agent = start_agent(folder, sink.port)[0] if with_agent else None
                # As in ebpf_overhead.py: what attaching or detaching sets
                # off in the kernel ends before the loops are timed.
                time.sleep(SETTLE)
                walls[with_agent].append(run_cases(cases_folder, sink.port))
                stop_agent(agent)
                agent = None
    finally:
        stop_agent(agent)
        set_bpf_stats(stats_before)
        pod, wait, app = pod_folders(folder)
        for path in (app, wait, pod, folder):
            try:
                os.rmdir(path)
            except OSError:
                pass
        shutil.rmtree(SCRATCH, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cores, Linux {platform.release()}; copperc: {args.copperc}"
          f"{'; object: ' + args.object if args.object else ''}"
          f"{'; the sink port excluded (--exclude-outbound-ports)' if args.exclude_sink_port else ''}"
          f"{'; node-wide, the service with its own excluded ports (--node-own-ports)' if args.node_own_ports else ''}"
          f"; one process per case, operations in a tight loop\n")
    print("Program time (kernel.bpf_stats_enabled: run time over runs, helpers included, and the statistics' "
          "two clock reads):\n")
    print("| case | operations | program | calls per operation | ns per call |")
    print("|---|---|---|---|---|")
    for label, n, name, calls, ns in rows:
        print(f"| {label} | {n} | {name} | {calls:.2f} | {ns:.0f} |")
    if args.wall_rounds:
        print(f"\nTime of one operation at the process that loops (statistics off; median of {args.wall_rounds} "
              f"rounds of each, alternating): what the add-on adds, the kernel's paths included; and the TCP "
              f"segments the machine sent per operation (/proc/net/snmp OutSegs, ACKs included: in a tight loop "
              f"TCP gathers small sends into one segment, and fewer than one a send means it did):\n")
        print("| case | ns per operation without agent | with agent | added | segments per operation, without | with |")
        print("|---|---|---|---|---|---|")
        for label, case, _ in selected_cases():
            if case == "send-new":
                continue  # the sink's thread per connection, not the add-on, sets that loop's pace
            off = statistics.median(w[case][0] for w in walls[False])
            on = statistics.median(w[case][0] for w in walls[True])
            soff = statistics.median(w[case][1] for w in walls[False])
            son = statistics.median(w[case][1] for w in walls[True])
            print(f"| {label} | {off:.0f} | {on:.0f} | {on - off:+.0f} | {soff:.2f} | {son:.2f} |")


if __name__ == "__main__":
    if args.case:
        run_case(args.case, args.n, args.port, args.join)
    else:
        main()
