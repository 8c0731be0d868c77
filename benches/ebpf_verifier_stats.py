#!/usr/bin/env python3
"""Prints how much work the kernel's verifier does for each program of the
eBPF add-on: instructions processed (against the kernel's limit of one
million per program), states, and the time the whole object takes to load.

A program that nears the limit fails to load on a kernel whose verifier
prunes less, and the verifier's work is most of the agent's start-up time.
A change that looks small in C (one more value carried across a loop's
iterations) can double it: run this before and after such a change.

    ebpf_verifier_stats.py [--object build/ebpf/copper_ctx.bpf.o] [--baseline OTHER.bpf.o]

The statistics are those that `copperc agent --verbose --object OBJ`
prints as it loads the object (the verifier's log level 4), on a fresh
cgroup v2 folder that nothing runs in; the agent is stopped at once. The
load time is that of `bpftool prog loadall` (pinned in a fresh folder
under /sys/fs/bpf, removed at once; nothing attached), the best of three.
As root, with bpftool on the PATH (the Makefile installs it). With
--baseline, both objects go side by side.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from ebpf_bench import cgroup2_root

LIMIT = 1_000_000
BEGIN = re.compile(r"prog '([A-Za-z0-9_]+)': -- BEGIN PROG LOAD LOG --")
PROCESSED = re.compile(r"^processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) total_states (\d+) "
                       r"peak_states (\d+)")


def load_seconds(obj):
    """The wall time (s) of bpftool's loading and pinning every program of obj (then unpinned)."""
    pins = tempfile.mkdtemp(prefix="copper-verifier-", dir="/sys/fs/bpf")
    os.rmdir(pins)  # bpftool makes the folder itself
    start = time.monotonic()
    try:
        run = subprocess.run(["bpftool", "prog", "loadall", obj, pins], capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("ebpf_verifier_stats.py: bpftool is not on the PATH (make apt-deps)")
    seconds = time.monotonic() - start
    subprocess.run(["rm", "-rf", pins], check=True)
    if run.returncode != 0:
        tail = "\n".join(run.stderr.splitlines()[-20:])
        sys.exit(f"ebpf_verifier_stats.py: the kernel refused {obj}:\n{tail}")
    return seconds


def agent_log(copperc, obj):
    """What `copperc agent --verbose --object obj` prints until it has attached (it is then stopped)."""
    cgroup = os.path.join(cgroup2_root(), f"copper-verifier-{os.getpid()}")
    os.makedirs(cgroup)
    said = []
    try:
        agent = subprocess.Popen([copperc, "agent", "--service", "verifier-stats", "--verbose", "--object", obj,
                                  "--cgroup", cgroup], stderr=subprocess.PIPE, text=True)
        for line in agent.stderr:
            said.append(line.rstrip("\n"))
            if "attached to" in line:
                agent.send_signal(signal.SIGTERM)
                break
        agent.stderr.read()
        if agent.wait() != 0:
            tail = "\n".join(said[-20:])
            sys.exit(f"ebpf_verifier_stats.py: the agent did not load {obj}:\n{tail}")
    except FileNotFoundError:
        sys.exit(f"ebpf_verifier_stats.py: {copperc} does not exist (cargo build --release)")
    finally:
        os.rmdir(cgroup)
    return said


def verifier_stats(copperc, obj):
    """{program: (insns, max states per insn, total states, peak states)} and the load's wall time (s)."""
    if not os.path.exists(obj):
        sys.exit(f"ebpf_verifier_stats.py: {obj} does not exist (make build/ebpf/copper_ctx.bpf.o)")
    said = agent_log(copperc, obj)
    seconds = min(load_seconds(obj) for _ in range(3))
    stats, prog = {}, None
    for line in said:
        begin = BEGIN.search(line)
        if begin:
            prog = begin.group(1)
            continue
        done = PROCESSED.match(line)
        if done and prog:
            stats[prog] = tuple(int(g) for g in done.groups())
            prog = None
    if not stats:
        sys.exit(f"ebpf_verifier_stats.py: the agent printed no verifier statistics for {obj}")
    return stats, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copperc", default="target/release/copperc")
    parser.add_argument("--object", default="build/ebpf/copper_ctx.bpf.o")
    parser.add_argument("--baseline", help="a second object to print beside it (e.g. an earlier commit's)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("ebpf_verifier_stats.py: loading BPF programs needs root")
    objs = ([args.baseline] if args.baseline else []) + [args.object]
    runs = [verifier_stats(args.copperc, o) for o in objs]
    names = sorted(set().union(*(r[0] for r in runs)), key=lambda p: -runs[-1][0].get(p, (0,))[0])
    head = "| program |" + "".join(f" {os.path.basename(o)}: insns (of 1M), states, peak |" for o in objs)
    print(head)
    print("|---|" + "---|" * len(objs))
    for name in names:
        cells = []
        for stats, _ in runs:
            if name in stats:
                insns, _, total, peak = stats[name]
                cells.append(f" {insns:,} ({100 * insns / LIMIT:.1f}%), {total:,}, {peak:,} |")
            else:
                cells.append(" - |")
        print(f"| `{name}` |" + "".join(cells))
    print("| whole object, load time |" + "".join(f" {seconds:.2f} s |" for _, seconds in runs))


if __name__ == "__main__":
    main()
