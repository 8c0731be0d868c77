#!/usr/bin/env python3
"""`make eval`: the expressiveness and dataplane-cost experiments.

Writes the generated sections of docs/evaluation.md (between
`<!-- eval:NAME -->` and `<!-- /eval:NAME -->`; everything else is kept)
and docs/eval/results.json, from which `copperc-plot` draws docs/eval/*.svg.

    build/venv/bin/python benches/eval.py [--apps A,B] [--reps N] [--seconds S]

Every number is measured in this run. Nothing is installed; Envoy is
build/venv/bin/envoy (`make deps`).
"""

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT.parent / "shared" / "graphs"
POLICIES = ROOT / "benches" / "eval"
COPPERC = ROOT / "target" / "release" / "copperc"
TESTSVC = ROOT / "target" / "release" / "copperc-testsvc"
ENVOY = ROOT / "build" / "venv" / "bin" / "envoy"
DOC = ROOT / "docs" / "evaluation.md"
OUT = ROOT / "docs" / "eval"
APPS = ["bookinfo", "online-boutique", "deathstarbench-hotelreservation"]
# Services that a canary routes to v2 get that version in the graph.
CANARY = {"online-boutique": "paymentservice", "deathstarbench-hotelreservation": "geo"}
TICK = os.sysconf("SC_CLK_TCK")
# Lines of emitted Istio YAML that only copperc needs (which policy made an
# object, who manages it); a hand-written resource has no use for them.
BOOKKEEPING = re.compile(r"^\s*(annotations:|labels:|copperc\.dev/policies:|app\.kubernetes\.io/managed-by:)")


def graph_for(app, ports=None):
    g = json.loads((GRAPHS / f"{app}.json").read_text())
    target = CANARY.get(app)
    g["services"] = [{"name": s} if isinstance(s, str) else s for s in g["services"]]
    for s in g["services"]:
        if s["name"] == target:
            s["versions"] = ["v1", "v2"]
    if ports is not None:
        g["ports"] = ports
    return g


def versions_of(g):
    return {s["name"]: s.get("versions", ["v1"]) for s in g["services"]}


def compile_to(graph, app, out, *extra):
    gf = Path(out).with_suffix(".graph.json")
    gf.write_text(json.dumps(graph))
    r = subprocess.run(
        [str(COPPERC), "compile", "--quiet", "--color", "never", "--interfaces", "interfaces/istio-proxy.act",
         "--graph", str(gf), "--out", str(out), *extra, str(POLICIES / f"{app}.copper")],
        cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"copperc compile failed for {app}:\n{r.stderr}")


def copper_lines(app):
    """Non-empty lines of the policy file that are not comments."""
    lines = (POLICIES / f"{app}.copper").read_text().splitlines()
    return sum(1 for l in lines if l.strip() and not l.strip().startswith("//"))


def expressiveness(tmp):
    rows = []
    for app in APPS:
        out = Path(tmp) / f"istio-{app}"
        compile_to(graph_for(app), app, out, "--target", "istio")
        files = sorted((out / "istio").glob("*.yaml"))
        all_lines = 0
        policy_lines = 0
        kinds = {}
        for f in files:
            if f.name == "kustomization.yaml":
                continue
            text = f.read_text().splitlines()
            nonempty = [l for l in text if l.strip()]
            all_lines += len(nonempty)
            kind = next((l.split(":", 1)[1].strip() for l in text if l.startswith("kind:")), "?")
            if kind == "Sidecar":
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
            policy_lines += sum(1 for l in nonempty if not BOOKKEEPING.match(l))
        c = copper_lines(app)
        rows.append({
            "app": app, "policies": 4, "copper_lines": c, "istio_lines": policy_lines,
            "istio_all_lines": all_lines, "objects": kinds,
            "ratio": policy_lines / c, "ratio_all": all_lines / c,
        })
    return rows


# ---------------------------------------------------------------- dataplane

def free_ports(n):
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def wait_port(port, proc, label, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{label} exited before listening on {port}")
            time.sleep(0.02)
    raise RuntimeError(f"{label} does not listen on {port}")


class Deployment:
    """One app on loopback: services, and Envoy sidecars where placement.json puts them."""

    def __init__(self, app, mode, tmp, work_us):
        self.procs = []
        g0 = graph_for(app)
        names = [s["name"] for s in g0["services"]]
        vers = versions_of(g0)
        n_ports = 3 * len(names) + sum(len(v) - 1 for v in vers.values())
        free = iter(free_ports(n_ports))
        ports, app_ports = {}, {}
        for s in names:
            p = {"address": "127.0.0.1", "app": next(free), "inbound": next(free), "outbound": next(free)}
            app_ports[s] = {"v1": p["app"]}
            if len(vers[s]) > 1:
                p["versions"] = {"v1": {"app": p["app"]}}
                for v in vers[s][1:]:
                    app_ports[s][v] = next(free)
                    p["versions"][v] = {"app": app_ports[s][v]}
            ports[s] = p
        g = graph_for(app, ports)
        self.sidecars = set()
        if mode != "none":
            out = Path(tmp) / f"{app}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            compile_to(g, app, out, "--target", "envoy", "--place", {"istio": "every", "istio++": "istio++", "wire": "wire"}[mode])
            placement = json.loads((out / "placement.json").read_text())
            self.sidecars = {s for s, v in placement["services"].items() if v.get("sidecar")}
        front = lambda s: ports[s]["inbound"] if s in self.sidecars else ports[s]["app"]
        logs = Path(tmp) / "logs"
        logs.mkdir(exist_ok=True)
        waits = []
        try:
            for s in names:
                callees = [f"{c['to']}=127.0.0.1:{front(c['to'])}" for c in g["calls"] if c["from"] == s]
                for v, port in app_ports[s].items():
                    cmd = [str(TESTSVC), "--name", s, "--version", v, "--listen", str(port),
                           "--lifetime", "600", "--work-us", str(work_us)]
                    if callees:
                        cmd += ["--callee", ",".join(callees)]
                    if s in self.sidecars:
                        cmd += ["--via-sidecar", f"127.0.0.1:{ports[s]['outbound']}"]
                    if s in g["entrypoints"]:
                        cmd.append("--entrypoint")
                    self.spawn(f"{s}-{v}", cmd, logs)
                    # One at a time: each calibrates its work alone.
                    wait_port(port, self.procs[-1][1], f"{s}-{v}")
            for s in sorted(self.sidecars):
                cmd = [str(ENVOY), "-c", str(out / "envoy" / f"{s}.yaml"), "--concurrency", "1",
                       "--base-id", str(ports[s]["inbound"]), "--log-level", "error"]
                self.spawn(f"envoy-{s}", cmd, logs)
                waits.append((ports[s]["inbound"], f"envoy-{s}"))
                waits.append((ports[s]["outbound"], f"envoy-{s}"))
            for port, label in waits:
                wait_port(port, dict((l, p) for l, p in self.procs)[label], label)
        except BaseException:
            self.stop()
            raise
        self.entry = front(g["entrypoints"][0])

    def spawn(self, label, cmd, logs):
        f = open(logs / f"{label}.log", "w")
        self.procs.append((label, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=f)))

    def cpu(self):
        return sum(cpu_seconds(p.pid) for _, p in self.procs)

    def stop(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def one_request(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET / HTTP/1.1\r\nhost: eval\r\nconnection: close\r\n\r\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        head = b"".join(chunks[:1])[:16]
        return head.startswith(b"HTTP/1.1 200")
    finally:
        s.close()


def open_loop(port, rate, seconds, workers=64):
    """Requests at fixed intended times start + i/rate; each latency is
    measured from its intended time (no coordinated omission)."""
    n = int(rate * seconds)
    start = time.monotonic() + 0.05
    lat, fails = [], [0]
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            t = start + i / rate
            d = t - time.monotonic()
            if d > 0:
                time.sleep(d)
            try:
                ok = one_request(port)
            except OSError:
                ok = False
            done = time.monotonic()
            with lock:
                if ok:
                    lat.append(done - t)
                else:
                    fails[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.monotonic() - start
    return lat, fails[0], wall


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def dataplane(tmp, apps, rates, reps, seconds, work_us):
    modes = ["none", "istio", "istio++", "wire"]
    results = []
    for app in apps:
        runs = {m: [] for m in modes}
        sidecars = {}
        t0 = time.monotonic()
        for rep in range(reps):
            order = modes[:]
            random.Random(rep).shuffle(order)
            for mode in order:
                d = Deployment(app, mode, tmp, work_us)
                try:
                    sidecars[mode] = len(d.sidecars)
                    open_loop(d.entry, rates[app], 1.0)  # warm-up
                    c0 = d.cpu()
                    lat, fails, wall = open_loop(d.entry, rates[app], seconds)
                    c1 = d.cpu()
                finally:
                    d.stop()
                runs[mode].append({
                    "p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99),
                    "rps": len(lat) / wall, "cpu_s": c1 - c0, "failed": fails,
                })
                print(f"{app} rep {rep} {mode}: {runs[mode][-1]}", file=sys.stderr)
        results.append({"app": app, "rate": rates[app], "seconds": seconds, "reps": reps,
                         "sidecars": sidecars, "runs": runs, "elapsed_s": time.monotonic() - t0})
    return results


# ---------------------------------------------------------------- output

def med(rs, k):
    return statistics.median(r[k] for r in rs)


def spread(rs, k, fmt):
    xs = sorted(r[k] for r in rs)
    return f"{fmt.format(statistics.median(xs))} ({fmt.format(xs[0])}-{fmt.format(xs[-1])})"


def expressiveness_md(rows):
    out = ["| app | policies | Copper lines | Istio lines (policy objects) | ratio | Istio lines (all emitted) | ratio | objects |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        objs = ", ".join(f"{n} {k}" for k, n in sorted(r["objects"].items()))
        out.append(f"| {r['app']} | {r['policies']} | {r['copper_lines']} | {r['istio_lines']} | {r['ratio']:.2f}x "
                   f"| {r['istio_all_lines']} | {r['ratio_all']:.2f}x | {objs} |")
    return "\n".join(out)


def dataplane_md(results):
    out = []
    for res in results:
        runs = res["runs"]
        out.append(f"**{res['app']}**: {res['rate']} requests/s offered for {res['seconds']} s, "
                   f"{res['reps']} repetitions (experiment took {res['elapsed_s']:.0f} s). "
                   "Median (min-max) over repetitions.\n")
        out.append("| placement | sidecars | p50 ms | p99 ms | throughput req/s | CPU s | failed | p99 / istio | CPU / istio |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for mode, label in [("none", "no mesh"), ("istio", "istio"), ("istio++", "istio++"), ("wire", "wire (copperc)")]:
            rs = runs[mode]
            out.append(
                f"| {label} | {res['sidecars'].get(mode, 0)} | {spread(rs, 'p50_ms', '{:.2f}')} | {spread(rs, 'p99_ms', '{:.2f}')} "
                f"| {spread(rs, 'rps', '{:.1f}')} | {spread(rs, 'cpu_s', '{:.2f}')} | {sum(r['failed'] for r in rs)} "
                f"| {med(rs, 'p99_ms') / med(runs['istio'], 'p99_ms'):.2f} | {med(rs, 'cpu_s') / med(runs['istio'], 'cpu_s'):.2f} |")
        out.append("")
    return "\n".join(out)


def machine_md():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    envoy = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True).stdout.strip().split("version:")[-1].strip()
    return (f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores ({cpu}), {mem}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, Envoy {envoy.split('/')[1] if '/' in envoy else envoy}.")


def claims_md(expr, dp, scale):
    out = ["| claim | paper | measured here |", "|---|---|---|"]
    ratios = [r["ratio"] for r in expr]
    out.append(f"| fewer policy lines than Istio | up to 6.75x | {min(ratios):.2f}x to {max(ratios):.2f}x "
               f"(policy objects only; {min(r['ratio_all'] for r in expr):.2f}x to {max(r['ratio_all'] for r in expr):.2f}x counting every emitted line) |")
    if dp:
        lat = {d["app"]: med(d["runs"]["istio"], "p99_ms") / med(d["runs"]["wire"], "p99_ms") for d in dp}
        cpu = {d["app"]: 1 - med(d["runs"]["wire"], "cpu_s") / med(d["runs"]["istio"], "cpu_s") for d in dp}
        out.append("| lower tail latency than Istio (istio p99 / wire p99) | up to 2.6x | "
                   + ", ".join(f"{a} {v:.2f}x" for a, v in lat.items()) + " |")
        out.append("| less CPU than Istio (1 - wire / istio) | up to 39% | "
                   + ", ".join(f"{a} {100 * v:.0f}%" for a, v in cpu.items()) + " |")
    if scale:
        rows = [l.strip("|").split("|") for l in scale.splitlines()]
        head = [h.strip() for h in rows[0]]
        body = [r for r in rows[2:] if len(r) == len(head)]
        if "copper total ms" in head or "copperc total ms" in head:
            i = head.index("copperc total ms")
            big = max(body, key=lambda r: float(r[i]))
            out.append(f"| placement (MaxSAT) on the largest graphs | up to 9.8 s | {float(big[i]) / 1000:.2f} s end to end "
                       f"for {big[0].strip()} services, {big[2].strip()} policies (synthetic; solver alone {big[head.index('solve ms')].strip()} ms) |")
    return "\n".join(out)


def replace_section(doc, name, body):
    start, end = f"<!-- eval:{name} -->", f"<!-- /eval:{name} -->"
    block = f"{start}\n{body}\n{end}"
    if start in doc and end in doc:
        i, j = doc.index(start), doc.index(end) + len(end)
        return doc[:i] + block + doc[j:]
    return doc.rstrip("\n") + f"\n\n{block}\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", default=",".join(APPS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--work-us", type=int, default=200)
    ap.add_argument("--skip-dataplane", action="store_true")
    ap.add_argument("--scale-sizes", default="100:10,1000:100,1000:1000,5000:500,20000:1000",
                    help="services:policies of the placement-scale table (benches/scale_table.py); empty: skip")
    args = ap.parse_args()
    # Stopped by a signal, still stop every process started (`finally`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for f in (COPPERC, TESTSVC, ENVOY):
        if not f.exists():
            sys.exit(f"{f} is missing: run `make build deps`")
    rates = {"bookinfo": 200, "online-boutique": 100, "deathstarbench-hotelreservation": 50}
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        expr = expressiveness(tmp)
        dp = [] if args.skip_dataplane else dataplane(tmp, args.apps.split(","), rates, args.reps, args.seconds, args.work_us)
    scale = None
    if args.scale_sizes:
        r = subprocess.run([sys.executable, str(ROOT / "benches" / "scale_table.py"), "--copperc", str(COPPERC),
                            "--sizes", args.scale_sizes, "--repeat", "3"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"benches/scale_table.py failed:\n{r.stdout}\n{r.stderr}")
        scale = "\n".join(l for l in r.stdout.splitlines() if l.startswith("|"))
    prev = {}
    if (OUT / "results.json").exists():
        prev = json.loads((OUT / "results.json").read_text())
    results = {"machine": machine_md(), "expressiveness": expr, "dataplane": dp or prev.get("dataplane", []),
               "work_us": args.work_us}
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    doc = DOC.read_text()
    doc = replace_section(doc, "machine", results["machine"])
    doc = replace_section(doc, "expressiveness", expressiveness_md(expr))
    if results["dataplane"]:
        doc = replace_section(doc, "dataplane", dataplane_md(results["dataplane"]))
    if scale:
        doc = replace_section(doc, "scale", scale)
    doc = replace_section(doc, "claims", claims_md(expr, results["dataplane"], scale))
    DOC.write_text(doc)
    print(expressiveness_md(expr))
    if results["dataplane"]:
        print(dataplane_md(results["dataplane"]))


if __name__ == "__main__":
    main()
