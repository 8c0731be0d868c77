"""What the eBPF benchmarks (ebpf_overhead.py, ebpf_hook_cost.py) share:
the cgroup v2 mount, the kernel's per-program statistics, and turning
those statistics on and back."""
import json
import subprocess
import sys

BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"


def cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    sys.exit("no cgroup v2 mount in /proc/self/mounts")


def copper_programs():
    """run_cnt and run_time_ns of the loaded programs named copper_*, by (id, name)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True, check=True).stdout
    return {(p["id"], p["name"]): (p.get("run_cnt", 0), p.get("run_time_ns", 0))
            for p in json.loads(out) if p.get("name", "").startswith("copper_")}


def set_bpf_stats(value):
    """Sets kernel.bpf_stats_enabled ("1" or "0"); returns what it was."""
    with open(BPF_STATS) as f:
        before = f.read().strip()
    with open(BPF_STATS, "w") as f:
        f.write(value)
    return before
