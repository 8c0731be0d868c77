#!/usr/bin/env python3
"""Exploratory sweep of `copperc compile`: seeded random programs over small
random graphs and the shared graphs, compiled with the bundled interfaces,
with istio-proxy.act only and with cilium-proxy.act only.

For each compile:
  exit 0 => every envoy/*.yaml passes `envoy --mode validate`; every istio/,
            cilium/ and k8s/ object passes validate.py --strict (the k8s
            Deployment patches against a Deployment schema without nested
            `required`); every EnvoyFilter's patches, merged into a listener
            as Istio merges them, and every regex of the istio/ and cilium/
            objects pass envoy validate; compiling again gives the same bytes;
  exit 1 => every error has a code and a source span;
  anything else (101, "panicked") is a failure.

usage: build/venv/bin/python testdata/tools/emit_sweep.py [--seeds A:B] [--copperc PATH]
       [--keep DIR] [--no-envoy]
Failures are written to DIR/fail-<seed>-<variant>/ with the inputs and a
`why` file. Not run in CI (tests/emit_sweep.rs runs a bounded version).
"""
import argparse
import concurrent.futures as cf
import copy
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENVOY = os.path.join(ROOT, "build/venv/bin/envoy")
PYTHON = os.path.join(ROOT, "build/venv/bin/python")
SCHEMAS = os.path.join(ROOT, "../shared/schemas")
VALIDATE = os.path.join(SCHEMAS, "validate.py")
SHARED_GRAPHS = os.path.join(ROOT, "../shared/graphs")
VARIANTS = [
    ("bundled", []),
    ("istio", ["--interfaces", os.path.join(ROOT, "interfaces/istio-proxy.act")]),
    ("cilium", ["--interfaces", os.path.join(ROOT, "interfaces/cilium-proxy.act")]),
]
ISTIO_RE2_LIMIT = 32768
HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

# ---- random inputs ----

NAMES = ["a", "b", "ab", "c-1", "d", "e2"]
VERSIONS = ["v1", "v2", "1.2.0", "canary"]
COMMON_KEYS = ["x-user", "x-a", "x-b", "X-Upper", "content-type"]
HEADER_KEYS = ["x-user", "x-a", "X-Upper", "content-type", "x-copper-context",
               "host", ":path", ":authority", "x-\u00e9", "", "x y", "x-%", "te",
               "x-" + "k" * 200]
HEADER_VALUES = ["", "test", "a\"b", "line\nbreak", "100%", "%REQ(x)%", "{{ x }}",
                 "caf\u00e9 \u2603 \U0001F600", "x" * 5000, "\t", "back\\slash",
                 "${x}", ".*[", "'single'", "a: b", "- item", "#c", "null", "true",
                 "0x1", " lead", "trail ", "%%", "%DOWNSTREAM_REMOTE_ADDRESS%",
                 "\r", "\u0000", "\u007f", "\u2028", "a,b", "v1"]
PATHS = ["/", "/admin", "/a b", "/%2e", "/\u00e9", "", "/a\"b", "/x?y=1", "*", "/.*", "/a\nb"]
METHODS = ["GET", "POST", "HEAD", "get", "", "DELETE", "X\"Y", "PATCH"]
STATUSES = [403, 404, 200, 0, -1, 99, 100, 302, 429, 503, 599, 600, 1000, 9223372036854775807, 401]
RATES = [0, 1, 100, -5, 1 << 40, 3]


def lit(s):
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f or ch == "\u2028" or ch == "\r":
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def random_graph(rng):
    n = rng.randint(2, 5)
    names = rng.sample(NAMES, n)
    services = []
    for s in names:
        o = {"name": s}
        if rng.random() < 0.5:
            o["versions"] = rng.sample(VERSIONS, rng.randint(1, 3))
            if rng.random() < 0.8 and "v1" not in o["versions"]:
                o["versions"].insert(0, "v1")
        if rng.random() < 0.3:
            o["replicas"] = rng.choice([0, 1, 3])
        services.append(o)
    calls = set()
    for _ in range(rng.randint(1, n * 2)):
        a, b = rng.choice(names), rng.choice(names)
        if a == b and rng.random() < 0.7:
            continue
        calls.add((a, b))
    g = {"services": services, "calls": [{"from": a, "to": b} for a, b in sorted(calls)]}
    if rng.random() < 0.3:
        ports = {}
        for i, s in enumerate(names):
            if rng.random() < 0.5:
                continue
            o = {}
            if rng.random() < 0.5:
                o["address"] = rng.choice(["127.0.0.%d" % (i + 1), "%s.example.com" % s, "10.0.0.%d" % i])
            if rng.random() < 0.5:
                o["app"] = rng.choice([80, 8080, 9000 + i, 65535])
            if rng.random() < 0.5:
                o["inbound"] = 15006 + 10 * i
            if rng.random() < 0.3:
                o["outbound"] = 15001 + 10 * i
            vs = next(x.get("versions", ["v1"]) for x in services if x["name"] == s)
            if rng.random() < 0.3:
                o["versions"] = {v: {"address": "127.0.1.%d" % j, "app": 7000 + j} for j, v in enumerate(vs)}
            ports[s] = o
        g_ports = ports
    else:
        g_ports = None
    reached = {b for _, b in calls}
    unreached = [s for s in names if s not in reached]
    if not unreached or rng.random() < 0.5:
        # explicit entry points, often ones that the mesh also calls
        k = rng.randint(1, min(3, n))
        g["entrypoints"] = rng.sample(names, k)
    if g_ports:
        g["ports"] = g_ports
    return g


def shared_graph(rng, path):
    with open(path) as f:
        return json.load(f)


def graph_names(g):
    return [s["name"] for s in g["services"]]


def entry_points(g):
    if "entrypoints" in g:
        return list(g["entrypoints"])
    reached = {c["to"] for c in g.get("calls", [])}
    return [s for s in graph_names(g) if s not in reached]


def random_pattern(rng, g, depth=0):
    names = graph_names(g)
    pool = names + ["zz"]
    calls = g.get("calls", [])

    def name():
        return rng.choice(pool)

    def atom():
        r = rng.random()
        if r < 0.35:
            return name()
        if r < 0.5:
            return "."
        if r < 0.6:
            return "!" + name()
        if r < 0.68:
            return "!(%s | %s)" % (name(), name())
        if depth < 2 and r < 0.85:
            alts = [random_pattern(rng, g, depth + 1) for _ in range(rng.randint(1, 3))]
            return "(" + " | ".join(alts) + ")"
        return name()

    r = rng.random()
    if depth == 0 and r < 0.2 and calls:
        # a path-shaped pattern: exact call, or ".* callee"
        c = rng.choice(calls)
        return rng.choice([".* %s" % c["to"], "%s" % rng.choice(entry_points(g) or names),
                           ".* %s %s" % (c["from"], c["to"]), ".*", ".+", "%s .*" % c["from"]])
    items = []
    for _ in range(rng.randint(1, 4)):
        items.append(atom() + rng.choice(["", "", "*", "+", "?"]))
    if rng.random() < 0.3:
        items.insert(0, ".*")
    s = " ".join(items)
    if depth == 0 and rng.random() < 0.15:
        s = s + " | " + random_pattern(rng, g, 1)
    return s


# Half of the programs avoid the inputs that are rejected by design (invalid
# header names, `host`, line breaks, out-of-range statuses), so that most of
# them compile and their output is checked.
CLEAN = [False]
CLEAN_KEYS = ["x-user", "x-a", "X-Upper", "content-type", "x-%", "a|b", "te", "x-" + "k" * 200,
              "x-copper-context"]
CLEAN_VALUES = [v for v in HEADER_VALUES if not any(c in v for c in "\r\n\0")]


def key(rng):
    if CLEAN[0]:
        return rng.choice(CLEAN_KEYS)
    return rng.choice(HEADER_KEYS if rng.random() < 0.25 else COMMON_KEYS)


def value(rng):
    return rng.choice(CLEAN_VALUES if CLEAN[0] else HEADER_VALUES)


def random_expr_bool(rng, binder, act, g, depth=0):
    r = rng.random()
    if depth < 2 and r < 0.15:
        op = rng.choice(["&&", "||"])
        return "%s %s %s" % (random_expr_bool(rng, binder, act, g, depth + 1), op,
                             random_expr_bool(rng, binder, act, g, depth + 1))
    if depth < 2 and r < 0.25:
        return "!(%s)" % random_expr_bool(rng, binder, act, g, depth + 1)
    if r < 0.28:
        return rng.choice(["true", "false"])
    op = rng.choice(["==", "==", "!="])
    if act == "RPCResponse":
        return "%s.GetStatus() %s %d" % (binder, op, rng.choice(STATUSES))
    k = rng.random()
    if k < 0.4:
        return "%s.GetHeader(%s) %s %s" % (binder, lit(key(rng)), op,
                                           lit(value(rng)))
    if k < 0.7:
        return "%s.GetPath() %s %s" % (binder, op, lit(rng.choice(PATHS)))
    if k < 0.9 or CLEAN[0]:
        return "%s.GetMethod() %s %s" % (binder, op, lit(rng.choice(METHODS)))
    return "%s.GetHeader(%s) %s %s.GetPath()" % (binder, lit(key(rng)), op, binder)


def random_action(rng, binder, act, g, allowed):
    versions = sorted({v for s in g["services"] for v in s.get("versions", ["v1"])})
    if rng.random() < 0.1:
        versions = ["v9"]
    elif rng.random() < 0.6:
        versions = ["v1"]
    m = rng.choice(allowed)
    if m == "SetHeader":
        if act == "RPCRequest" and rng.random() < 0.15:
            val = "%s.GetHeader(%s)" % (binder, lit(key(rng)))
        elif act == "RPCRequest" and rng.random() < 0.05:
            val = "%s.GetPath()" % binder
        else:
            val = lit(value(rng))
        return "%s.SetHeader(%s, %s);" % (binder, lit(key(rng)), val)
    if m == "RemoveHeader":
        return "%s.RemoveHeader(%s);" % (binder, lit(key(rng)))
    if m == "RouteToVersion":
        return "%s.RouteToVersion(%s);" % (binder, lit(rng.choice(versions)))
    if m == "Deny":
        return "%s.Deny(%d);" % (binder, rng.choice(STATUSES if rng.random() < 0.3 and not CLEAN[0] else [403, 404, 503]))
    if m == "RateLimit":
        return "%s.RateLimit(%d);" % (binder, rng.choice([1, 100, 1000000000] if CLEAN[0] else RATES))
    raise AssertionError(m)


def random_block(rng, binder, act, g, allowed, depth, indent):
    lines = []
    for _ in range(rng.randint(0, 3) if depth else rng.randint(1, 3)):
        pad = "    " * indent
        if depth < 2 and rng.random() < 0.55:
            lines.append(pad + "if %s {" % random_expr_bool(rng, binder, act, g))
            lines += random_block(rng, binder, act, g, allowed, depth + 1, indent + 1)
            while rng.random() < 0.3:
                lines.append(pad + "} else if %s {" % random_expr_bool(rng, binder, act, g))
                lines += random_block(rng, binder, act, g, allowed, depth + 1, indent + 1)
            if rng.random() < 0.4:
                lines.append(pad + "} else {")
                lines += random_block(rng, binder, act, g, allowed, depth + 1, indent + 1)
            lines.append(pad + "}")
        else:
            lines.append(pad + random_action(rng, binder, act, g, allowed))
    return lines


def random_policy(rng, g, idx):
    if rng.random() < 0.2:
        act, binder = "RPCResponse", "resp"
        allowed = ["SetHeader"]
    else:
        act, binder = "RPCRequest", "req"
        # one side's methods only, most of the time, so that check passes
        flavour = rng.random()
        if flavour < 0.25:
            allowed = ["SetHeader", "RemoveHeader", "Deny"]
        elif flavour < 0.5:
            allowed = ["SetHeader", "RemoveHeader", "Deny", "RouteToVersion"]
        elif flavour < 0.75:
            allowed = ["SetHeader", "RemoveHeader", "Deny", "RateLimit"]
        elif flavour < 0.9:
            allowed = ["Deny"]
        else:
            allowed = ["SetHeader", "RemoveHeader", "Deny", "RouteToVersion", "RateLimit"]
    body = random_block(rng, binder, act, g, allowed, 0, 1)
    pattern = random_pattern(rng, g)
    return "policy p%d(%s: %s) context %s {\n%s\n}\n" % (idx, binder, act, lit(pattern), "\n".join(body))


def random_case(seed):
    rng = random.Random(seed)
    CLEAN[0] = rng.random() < 0.5
    if rng.random() < 0.25:
        shared = sorted(f for f in os.listdir(SHARED_GRAPHS) if f.endswith(".json"))
        gname = rng.choice(shared)
        g = shared_graph(rng, os.path.join(SHARED_GRAPHS, gname))
    else:
        gname = "random"
        g = random_graph(rng)
    policies = "".join(random_policy(rng, g, i) for i in range(rng.choice([1, 1, 2, 3])))
    return gname, g, policies


# ---- checks ----

def tree(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def relax(v):
    if isinstance(v, dict):
        v.pop("required", None)
        for x in v.values():
            relax(x)
    elif isinstance(v, list):
        for x in v:
            relax(x)


def patch_schema_dir(tmp):
    with open(os.path.join(SCHEMAS, "k8s/Deployment.json")) as f:
        s = json.load(f)
    top = s.get("required")
    relax(s)
    s["required"] = top
    d = os.path.join(tmp, "patch-schemas")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "Deployment.json"), "w") as f:
        json.dump(s, f)
    return d


def run_validate(schema_dir, files):
    """{file: None | error text}"""
    if not files:
        return {}
    r = subprocess.run([PYTHON, VALIDATE, "--strict", schema_dir] + files,
                       capture_output=True, text=True)
    res = {f: "no report" for f in files}
    cur = None
    for line in r.stdout.splitlines():
        m = re.match(r"^(.*?)#\d+: (OK|INVALID|UNKNOWN|ERROR)", line)
        if m:
            cur = m.group(1)
            if m.group(2) == "OK":
                if res.get(cur) == "no report":
                    res[cur] = None
            else:
                res[cur] = line
        elif line.startswith("/") and ": ERROR" in line:
            cur = line.split(": ERROR")[0]
            res[cur] = line
        elif cur is not None and res.get(cur) and line.strip() and not re.match(r"^\d+ valid", line):
            res[cur] += "\n" + line
    return res


_envoy_cache = {}


def envoy_validate_text(text, tmp, suffix):
    h = hashlib.sha256(text.encode()).hexdigest()
    if h in _envoy_cache:
        return _envoy_cache[h]
    p = os.path.join(tmp, "ev-%s.%s" % (h[:16], suffix))
    with open(p, "w") as f:
        f.write(text)
    r = subprocess.run([ENVOY, "--mode", "validate", "--log-level", "error", "-c", p],
                       capture_output=True, text=True)
    res = None if r.returncode == 0 else (r.stdout + r.stderr)[-3000:]
    _envoy_cache[h] = res
    return res


def listener(name, filters, routes):
    routes = routes + [{"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 404}}]
    return {"name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": HCM, "typed_config": {
                "@type": HCM_TYPE, "stat_prefix": name,
                "route_config": {"name": name, "virtual_hosts": [
                    {"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": filters}}]}]}


def istio_merge(into, patch):
    if isinstance(into, dict) and isinstance(patch, dict):
        for k, v in patch.items():
            if k in into:
                into[k] = istio_merge(into[k], v)
            else:
                into[k] = copy.deepcopy(v)
        return into
    if isinstance(into, list) and isinstance(patch, list):
        return into + copy.deepcopy(patch)
    return copy.deepcopy(patch)


def collect_regexes(v, out):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "regex" and isinstance(x, str):
                out.append(x)
            else:
                collect_regexes(x, out)
    elif isinstance(v, list):
        for x in v:
            collect_regexes(x, out)


def collect_cilium_regexes(v, out):
    """Cilium hands an HTTP rule's `path` and `method` to Envoy as regexes."""
    if isinstance(v, dict):
        if "headerMatches" in v or "method" in v or "path" in v:
            for k in ["method", "path"]:
                if isinstance(v.get(k), str):
                    out.append(v[k])
        for x in v.values():
            collect_cilium_regexes(x, out)
    elif isinstance(v, list):
        for x in v:
            collect_cilium_regexes(x, out)


def envoy_objects_bootstrap(docs, sub):
    """The Envoy check of tests/emit_k8s.rs: EnvoyFilter patches in
    listeners of their own and every regex in a header matcher (under
    Istio's RE2 limit; Cilium's regexes under Envoy's default one)."""
    listeners, clusters, regexes = [], set(), []
    problems = []
    for path, doc in docs:
        collect_regexes(doc.get("spec"), regexes)
        if sub == "cilium":
            collect_cilium_regexes(doc.get("spec"), regexes)
        if doc.get("kind") != "EnvoyFilter":
            continue
        filters, routes, merges = [], [], []
        for p in doc["spec"]["configPatches"]:
            a = p["applyTo"]
            value = p["patch"]["value"]
            if a == "NETWORK_FILTER":
                merges.append(value["typed_config"])
            elif a == "HTTP_FILTER":
                if not any(x.get("name") == value.get("name") for x in filters):
                    filters.append(value)
            elif a == "HTTP_ROUTE":
                c = value.get("route", {}).get("cluster")
                if c:
                    clusters.add(c)
                routes.append(value)
            else:
                problems.append("%s: unexpected applyTo %s" % (path, a))
        filters.append(ROUTER)
        l = listener("ef%d" % len(listeners), filters, routes)
        for m in merges:
            tc = l["filter_chains"][0]["filters"][0]["typed_config"]
            l["filter_chains"][0]["filters"][0]["typed_config"] = istio_merge(tc, m)
        listeners.append(l)
    probe = [{"name": "re%d" % i, "match": {"prefix": "/", "headers": [
        {"name": "x-probe", "string_match": {"safe_regex": {"regex": re_}}}]},
        "direct_response": {"status": 200}} for i, re_ in enumerate(regexes)]
    listeners.append(listener("regexes", [ROUTER], probe))
    for i, l in enumerate(listeners):
        l["address"]["socket_address"]["port_value"] = 20000 + i
    cl = [{"name": c, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": c, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}
        for c in sorted(clusters)]
    boot = {"node": {"id": "check", "cluster": "check"},
            "static_resources": {"listeners": listeners, "clusters": cl}}
    if sub == "istio":
        boot["layered_runtime"] = {"layers": [{"name": "istio", "static_layer": {
            "re2.max_program_size.error_level": ISTIO_RE2_LIMIT}}]}
    return boot, problems


def load_yaml(p):
    with open(p) as f:
        return yaml.safe_load(f)


def check_diags(stdout, stderr):
    errs = []
    if "panicked" in stderr or "panicked" in stdout:
        errs.append("panic")
    blocks = re.split(r"\n(?=(?:error|warning)\[)", "\n" + stdout + "\n" + stderr)
    nerr = 0
    for b in blocks:
        b = b.strip("\n")
        if not b:
            continue
        if b.startswith("error["):
            nerr += 1
            if not re.match(r"error\[CU\d{4}\]", b):
                errs.append("error without code: " + b[:200])
            if "\u250c\u2500" not in b:
                errs.append("error without span: " + b[:300])
    if nerr == 0 and not errs:
        errs.append("exit 1 with no error diagnostic:\n" + stdout[-1000:] + stderr[-1000:])
    return errs


class Sweep:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="copper-sweep-")
        self.patch_dir = patch_schema_dir(self.tmp)
        self.stats = {}
        self.failures = []

    def stat(self, key, n=1):
        self.stats[key] = self.stats.get(key, 0) + n

    def fail(self, seed, variant, case_dir, why):
        self.failures.append((seed, variant, why))
        keep = os.path.join(self.args.keep, "fail-%d-%s" % (seed, variant))
        if os.path.exists(keep):
            shutil.rmtree(keep)
        shutil.copytree(case_dir, keep, ignore=shutil.ignore_patterns("out*"))
        with open(os.path.join(keep, "why"), "w") as f:
            f.write(why)
        print("FAIL seed=%d variant=%s: %s" % (seed, variant, why[:600].replace("\n", "\n    ")), flush=True)

    def compile(self, case_dir, variant_args, out):
        cmd = [self.args.copperc, "compile", "--color", "never", "--graph",
               os.path.join(case_dir, "graph.json"), "--out", out] + variant_args + [
            os.path.join(case_dir, "policies.copper")]
        return subprocess.run(cmd, capture_output=True, text=True)

    def run_case(self, seed):
        gname, g, policies = random_case(seed)
        case_dir = os.path.join(self.tmp, "case-%d" % seed)
        os.makedirs(case_dir, exist_ok=True)
        with open(os.path.join(case_dir, "graph.json"), "w") as f:
            json.dump(g, f, indent=1)
        with open(os.path.join(case_dir, "policies.copper"), "w") as f:
            f.write(policies)
        pending = []
        for vname, vargs in VARIANTS:
            out = os.path.join(case_dir, "out-" + vname)
            r = self.compile(case_dir, vargs, out)
            self.stat("compiles")
            self.stat("%s:exit%s" % (vname, r.returncode))
            if r.returncode == 0:
                out2 = os.path.join(case_dir, "out2-" + vname)
                r2 = self.compile(case_dir, vargs, out2)
                if r2.returncode != 0 or tree(out) != tree(out2):
                    self.fail(seed, vname, case_dir, "not deterministic")
                shutil.rmtree(out2, ignore_errors=True)
                pending.append((vname, out))
            elif r.returncode == 1:
                errs = check_diags(r.stdout, r.stderr)
                codes = sorted(set(re.findall(r"error\[(CU\d{4})\]", r.stdout + r.stderr)))
                for c in codes:
                    self.stat("%s:%s" % (vname, c))
                for m in set(re.findall(r"error\[CU0601\]: (.*)", r.stdout + r.stderr)):
                    self.stat("CU0601: " + re.sub(r"`[^`]*`", "`_`", m))
                if errs:
                    self.fail(seed, vname, case_dir, "\n".join(errs) + "\n" + (r.stdout + r.stderr)[-2000:])
            else:
                self.fail(seed, vname, case_dir, "exit %s\n%s\n%s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
        return seed, case_dir, gname, pending

    def check_outputs(self, batch):
        """Validates the outputs of a batch of cases together."""
        by_schema = {"istio": [], "k8s": [], "cilium": [], "patch": []}
        owner = {}
        envoy_jobs = []
        for seed, case_dir, gname, pending in batch:
            for vname, out in pending:
                key = (seed, vname, case_dir)
                for sub in ["istio", "k8s", "cilium"]:
                    d = os.path.join(out, sub)
                    for root, _, files in os.walk(d):
                        for f in sorted(files):
                            p = os.path.join(root, f)
                            if f == "kustomization.yaml":
                                continue
                            kind = "patch" if "/k8s/patches/" in p else sub
                            by_schema[kind].append(p)
                            owner[p] = key
                            self.stat("%s:%s-objects" % (vname, kind))
                ed = os.path.join(out, "envoy")
                if os.path.isdir(ed):
                    for f in sorted(os.listdir(ed)):
                        with open(os.path.join(ed, f)) as fh:
                            envoy_jobs.append((key, "envoy/" + f, fh.read(), "yaml"))
                        self.stat("%s:envoy-bootstraps" % vname)
                for sub in ["istio", "cilium"]:
                    docs = []
                    d = os.path.join(out, sub)
                    if os.path.isdir(d):
                        for f in sorted(os.listdir(d)):
                            if f != "kustomization.yaml":
                                try:
                                    docs.append((f, load_yaml(os.path.join(d, f))))
                                except Exception as e:  # noqa: BLE001
                                    self.fail(seed, vname, case_dir, "%s/%s: bad yaml %s" % (sub, f, e))
                    if docs:
                        boot, problems = envoy_objects_bootstrap(docs, sub)
                        for pr in problems:
                            self.fail(seed, vname, case_dir, pr)
                        envoy_jobs.append((key, "%s objects' envoy config" % sub, json.dumps(boot), "json"))
                        self.stat("%s:%s-envoy-checks" % (vname, sub))
        dirs = {"istio": os.path.join(SCHEMAS, "istio"), "k8s": os.path.join(SCHEMAS, "k8s"),
                "cilium": os.path.join(SCHEMAS, "cilium"), "patch": self.patch_dir}
        for kind, files in by_schema.items():
            for i in range(0, len(files), 400):
                res = run_validate(dirs[kind], files[i:i + 400])
                for f, err in res.items():
                    if err:
                        seed, vname, case_dir = owner[f]
                        self.fail(seed, vname, case_dir, "schema %s: %s" % (kind, err[:2000]))
        if self.args.no_envoy:
            return
        with cf.ThreadPoolExecutor(max_workers=self.args.jobs) as ex:
            futs = {ex.submit(envoy_validate_text, text, self.tmp, suf): (key, what)
                    for key, what, text, suf in envoy_jobs}
            for fut in futs:
                key, what = futs[fut]
                err = fut.result()
                self.stat("envoy-validations")
                if err:
                    seed, vname, case_dir = key
                    self.fail(seed, vname, case_dir, "envoy rejected %s:\n%s" % (what, err))

    def run(self):
        a, b = self.args.seeds
        batch = []
        for seed in range(a, b):
            batch.append(self.run_case(seed))
            if len(batch) >= self.args.batch:
                self.check_outputs(batch)
                self.cleanup(batch)
                batch = []
                print("... seed %d, %d failures, stats %s" % (seed, len(self.failures),
                      json.dumps(self.stats, sort_keys=True)), flush=True)
        if batch:
            self.check_outputs(batch)
            self.cleanup(batch)
        print(json.dumps(self.stats, sort_keys=True, indent=1))
        print("%d failures" % len(self.failures))
        return 1 if self.failures else 0

    def cleanup(self, batch):
        for _, case_dir, _, _ in batch:
            shutil.rmtree(case_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0:200",
                    type=lambda s: tuple(int(x) for x in s.split(":")))
    ap.add_argument("--copperc", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release/copperc"))
    ap.add_argument("--keep", default=os.path.join(ROOT, "target/sweep-failures"))
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-envoy", action="store_true")
    ap.add_argument("--print", type=int, help="print the inputs of one seed and exit")
    args = ap.parse_args()
    if args.print is not None:
        gname, g, p = random_case(args.print)
        print(gname)
        print(json.dumps(g, indent=1))
        print(p)
        return 0
    os.makedirs(args.keep, exist_ok=True)
    return Sweep(args).run()


if __name__ == "__main__":
    sys.exit(main())
