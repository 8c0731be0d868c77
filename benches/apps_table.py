#!/usr/bin/env python3
"""Prints the benchmark-apps table of docs/evaluation.md: `copperc place` on
each shared call graph with the testdata policies of that app, wall time of
the whole command (median of 20 runs).

Usage: benches/apps_table.py [--copperc target/release/copperc]"""
import argparse
import glob
import json
import statistics
import subprocess
import time

parser = argparse.ArgumentParser()
parser.add_argument("--copperc", default="target/release/copperc")
parser.add_argument("--runs", type=int, default=20)
args = parser.parse_args()

cases = [("bookinfo", "bookinfo"), ("online-boutique", "online-boutique"),
         ("deathstarbench-socialnetwork", "socialnetwork"), ("deathstarbench-hotelreservation", "hotelreservation")]
print(f"| app | services | policies | pairs | cost | istio | istio++ | copperc place, median of {args.runs} (ms) |")
print("|---|---|---|---|---|---|---|---|")
for graph, folder in cases:
    cmd = [args.copperc, "place", "--format", "json", "--graph", f"../shared/graphs/{graph}.json", f"testdata/valid/{folder}"]
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        times.append((time.perf_counter() - t0) * 1e3)
    doc = json.loads(out.stdout)
    services = len(json.load(open(f"../shared/graphs/{graph}.json"))["services"])
    policies = sum(open(p).read().count("policy ") - open(p).read().count("// policy ")
                   for p in glob.glob(f"testdata/valid/{folder}/*.copper"))
    b = doc["baselines"]
    print(f"| {graph} | {services} | {policies} | {doc['stats']['matched_pairs']} | {doc['cost']} | "
          f"{b['istio']} | {b['istio++']} | {statistics.median(times):.1f} |")
