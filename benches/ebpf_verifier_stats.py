#!/usr/bin/env python3
"""Prints how much work the kernel's verifier does for each program of the
eBPF add-on: instructions processed (against the kernel's limit of one
million per program), states, and the time the whole object takes to load.

A program that nears the limit fails to load on a kernel whose verifier
prunes less, and the verifier's work is most of the agent's start-up time.
A change that looks small in C (one more value carried across a loop's
iterations) can double it: run this before and after such a change.

    ebpf_verifier_stats.py [--object build/ebpf/copper_ctx.bpf.o] [--baseline OTHER.bpf.o]

Loads the object with `bpftool -d prog loadall` (as root, with bpftool on
the PATH: the Makefile installs it), pins the programs in a fresh folder
under /sys/fs/bpf and removes it at once: nothing is attached. The
statistics come with the verifier's full log, so an object takes about a
minute. With --baseline, both objects go side by side.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

LIMIT = 1_000_000
BEGIN = re.compile(r"prog '([A-Za-z0-9_]+)': -- BEGIN PROG LOAD LOG --")
PROCESSED = re.compile(r"^processed (\d+) insns \(limit \d+\) max_states_per_insn (\d+) total_states (\d+) "
                       r"peak_states (\d+)")


def load(obj, debug):
    """bpftool's run of loading and pinning every program of obj (then unpinned), and its wall time (s)."""
    pins = tempfile.mkdtemp(prefix="copper-verifier-", dir="/sys/fs/bpf")
    os.rmdir(pins)  # bpftool makes the folder itself
    start = time.monotonic()
    try:
        run = subprocess.run(["bpftool"] + (["-d"] if debug else []) + ["prog", "loadall", obj, pins],
                             capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("ebpf_verifier_stats.py: bpftool is not on the PATH (make apt-deps)")
    seconds = time.monotonic() - start
    subprocess.run(["rm", "-rf", pins], check=True)
    if run.returncode != 0:
        tail = "\n".join(run.stderr.splitlines()[-20:])
        sys.exit(f"ebpf_verifier_stats.py: the kernel refused {obj}:\n{tail}")
    return run, seconds


def verifier_stats(obj):
    """{program: (insns, max states per insn, total states, peak states)} and the load's wall time (s)."""
    if not os.path.exists(obj):
        sys.exit(f"ebpf_verifier_stats.py: {obj} does not exist (make build/ebpf/copper_ctx.bpf.o)")
    # The statistics come with the verifier's full log, whose writing takes most of a minute; the load
    # time is that of a load without it, the best of three.
    run, _ = load(obj, debug=True)
    seconds = min(load(obj, debug=False)[1] for _ in range(3))
    stats, prog = {}, None
    for line in run.stderr.splitlines():
        begin = BEGIN.search(line)
        if begin:
            prog = begin.group(1)
            continue
        done = PROCESSED.match(line)
        if done and prog:
            stats[prog] = tuple(int(g) for g in done.groups())
            prog = None
    if not stats:
        sys.exit(f"ebpf_verifier_stats.py: bpftool printed no verifier statistics for {obj}")
    return stats, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object", default="build/ebpf/copper_ctx.bpf.o")
    parser.add_argument("--baseline", help="a second object to print beside it (e.g. an earlier commit's)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("ebpf_verifier_stats.py: loading BPF programs needs root")
    objs = ([args.baseline] if args.baseline else []) + [args.object]
    runs = [verifier_stats(o) for o in objs]
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
