#!/usr/bin/env python3
"""Prints the placement-scale table of docs/evaluation.md.

For each size it generates an Alibaba-shaped instance (`copperc generate`),
runs `copperc place --timings --emit-wcnf` REPEAT times (median wall time of
the whole command: reading, analysis, solving, output), and, when python-sat
is importable, solves the same WCNF with RC2 (median of RC2_REPEAT runs of the
solve alone) and checks that both optima agree.

Usage: benches/scale_table.py [--copperc target/release/copperc] [--sizes 1000:100,...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--copperc", default="target/release/copperc")
parser.add_argument("--sizes", default="100:10,1000:100,1000:1000,5000:100,5000:500,5000:1000,20000:100,20000:500,20000:1000")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--rc2-repeat", type=int, default=1)
parser.add_argument("--no-rc2", action="store_true")
args = parser.parse_args()

try:
    if args.no_rc2:
        raise ImportError
    from pysat.examples.rc2 import RC2
    from pysat.formula import WCNF
except ImportError:
    RC2 = None


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return out


print(f"machine: {os.cpu_count()} cores; copperc: {args.copperc}; seed {args.seed}; "
      f"median of {args.repeat} runs (copperc), {args.rc2_repeat} (RC2)\n")
header = ["services", "calls", "policies", "pairs", "clauses", "vars", "analysis ms", "encode ms", "solve ms",
          "copperc total ms", "cost", "optimal", "istio", "istio++", "RC2 solve ms", "RC2 / copperc"]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for spec in args.sizes.split(","):
    services, policies = (int(x) for x in spec.split(":"))
    with tempfile.TemporaryDirectory() as tmp:
        inst = os.path.join(tmp, "inst")
        run([args.copperc, "generate", "--services", str(services), "--policies", str(policies),
             "--seed", str(args.seed), "--out", inst])
        graph = os.path.join(inst, "graph.json")
        calls = len(json.load(open(graph))["calls"])
        wcnf = os.path.join(tmp, "i.wcnf")
        walls, analysis_ms, solve_ms, encode_ms = [], [], [], []
        doc = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = run([args.copperc, "place", "--timings", "--format", "json", "--graph", graph,
                       "--emit-wcnf", wcnf, os.path.join(inst, "policies.copper")])
            walls.append((time.perf_counter() - t0) * 1e3)
            stages = {line.split("ms", 1)[1].strip(): float(line.split("ms", 1)[0].strip())
                      for line in out.stderr.splitlines() if " ms " in line}
            analysis_ms.append(stages["context analysis"])
            solve_ms.append(stages["of which MaxSAT solve"])
            encode_ms.append(stages["of which encode"])
            doc = json.loads(out.stdout)
        rc2_ms, ratio = "-", "-"
        if RC2 is not None:
            times, cost = [], None
            formula = WCNF(from_file=wcnf)
            for _ in range(args.rc2_repeat):
                t0 = time.perf_counter()
                with RC2(formula) as rc2:
                    rc2.compute()
                    cost = rc2.cost
                times.append((time.perf_counter() - t0) * 1e3)
            if cost != doc["cost"]:
                sys.exit(f"optimum mismatch at {spec}: copperc {doc['cost']}, RC2 {cost}")
            rc2 = statistics.median(times)
            rc2_ms = f"{rc2:.0f}"
            ratio = f"{rc2 / statistics.median(solve_ms):.0f}x"
        b = doc["baselines"]
        st = doc["stats"]
        row = [services, calls, policies, st["matched_pairs"], st["clauses"], st["variables"],
               f"{statistics.median(analysis_ms):.1f}", f"{statistics.median(encode_ms):.1f}",
               f"{statistics.median(solve_ms):.1f}",
               f"{statistics.median(walls):.0f}", doc["cost"], doc["optimal"], b["istio"], b["istio++"], rc2_ms, ratio]
        print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
