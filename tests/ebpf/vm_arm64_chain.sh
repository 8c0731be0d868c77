#!/bin/busybox sh
# The init of tests/ebpf_arm64.rs's chain machine: arm64 builds of
# `copperc` and the test services, on Debian 13's arm64 kernel. One
# node-wide agent (`--config`, as the DaemonSet runs it) with the hooks it
# picks follows the chain client -> a -> b -> c over HTTP/1.1
# (copperc-testsvc) and over h2c (copperc-h2c-testsvc, nghttp as the
# client); a second one, with the syscall tracepoints and the object that
# `copperc compile` wrote, the HTTP/1.1 chain again. Each request is sent
# once plain and once with a forged context.
# Each agent load takes about 30 s under emulation, hence two agents, not
# one per service and set of hooks as on x86_64 (tests/ebpf/vm_init.sh).
/bin/busybox --install -s /bin
export PATH=/bin
. /vm_lib.sh
machine_up
say uname "$(uname -r) $(uname -m)"

# h1_pods PHASE PORT: the HTTP/1.1 chain's pods on ports PORT+1 to PORT+3,
# and its two requests.
h1_pods() {
	node_pod "$1" c c $(($2 + 3)) /copperc-testsvc --name c --listen $(($2 + 3)) --no-context --context-only --lifetime 300
	node_pod "$1" b b $(($2 + 2)) /copperc-testsvc --name b --listen $(($2 + 2)) --no-context --context-only --lifetime 300 \
		--callee next=127.0.0.1:$(($2 + 3))
	node_pod "$1" a a $(($2 + 1)) /copperc-testsvc --name a --listen $(($2 + 1)) --no-context --context-only --lifetime 300 \
		--callee next=127.0.0.1:$(($2 + 2))
	say answer "$1" plain "$(wget -q -O - http://127.0.0.1:$(($2 + 1))/)"
	say answer "$1" forged "$(wget -q -O - --header 'x-copper-context: /evil/x' http://127.0.0.1:$(($2 + 1))/)"
}

# The h2c services read from non-blocking sockets, one request per thread
# (tests/ebpf/h2c_service.rs): b and c are declared so. copperc-testsvc's
# threads read blocking sockets, for which the declaration changes nothing.
echo '{"services": [{"name": "a", "entrypoint": true}, {"name": "b", "oneRequestPerThread": true}, {"name": "c", "oneRequestPerThread": true}]}' >/tmp/config.json
start_node_agent node
h1_pods node 18020
node_pod node h2c-c c 18013 /copperc-h2c-testsvc --listen 18013
node_pod node h2c-b b 18012 /copperc-h2c-testsvc --listen 18012 --next 127.0.0.1:18013
node_pod node h2c-a a 18011 /copperc-h2c-testsvc --listen 18011 --next 127.0.0.1:18012
say answer h2c plain "$(/nghttp http://127.0.0.1:18011/)"
say answer h2c forged "$(/nghttp -H 'x-copper-context: /evil/x' http://127.0.0.1:18011/)"
stop_node_agent node

# What the arm64 copperc compiles for the bundled example: the DaemonSet
# goes to arm64 nodes, and the object it writes is the one its build
# produced (/built.bpf.o), which the second agent then loads.
/copperc compile --graph /bookinfo/graph.json --out /tmp/out /bookinfo/policies.copper >/tmp/compile.log 2>&1
say compile "$?"
say nodeselector "$(grep -A 1 'nodeSelector:' /tmp/out/k8s/daemonset-copper-ctx.yaml | tail -n 1 | sed 's/^ *//')"
if cmp -s /tmp/out/ebpf/copper_ctx.bpf.o /built.bpf.o; then say object same; else say object different; fi

start_node_agent tracepoints --syscall-hooks tracepoints --object /tmp/out/ebpf/copper_ctx.bpf.o
h1_pods tracepoints 18030
stop_node_agent tracepoints

say done
poweroff -f
