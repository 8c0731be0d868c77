#!/bin/busybox sh
# The init of the virtual machine of tests/ebpf_older_kernel.rs: on the
# kernel under test, the chain client -> a -> b -> c with one
# `copperc agent` per service, over HTTP/1.1 (copperc-testsvc) with the
# hooks the agent picks and with tp_btf sys_enter/sys_exit, over h2c
# (copperc-h2c-testsvc, nghttp as the client), and over HTTP/1.1 under one
# node-wide agent (`--config`, as the DaemonSet runs it) for three pods
# that announce themselves with `copperc await-agent`; each request sent
# once plain and once with a forged context. First, where the kernel lacks
# the socket receive hook (`copper_socket_hook=absent` on the kernel's
# command line), an agent asked for it must refuse. Every line the test
# reads starts with `COPPER-VM `; the machine powers off at the end.
/bin/busybox --install -s /bin
export PATH=/bin
. /vm_lib.sh
machine_up
say uname "$(uname -r)"
# What the agent says of this kernel before anything is followed.
check="$(/copperc agent --check-kernel 2>&1)"
say kernelcheckcode "$?"
say kernelcheck "$check"

# start_agents PHASE FLAGS [FLAGS OF b AND c]: one agent per service, each
# on its own cgroup; returns once all three attached (or one exited).
start_agents() {
	for s in a b c; do
		mkdir -p "/sys/fs/cgroup/$1-$s"
		if [ "$s" = a ]; then extra=--entrypoint; else extra="$3"; fi
		/copperc agent --service "$s" --cgroup "/sys/fs/cgroup/$1-$s" $2 $extra 2>"/tmp/$1-agent-$s.log" &
		echo $! >"/tmp/$1-agent-$s.pid"
	done
	i=0
	while [ "$i" -lt 1200 ]; do
		if [ "$(cat /tmp/$1-agent-*.log | grep -c ' attached to ')" = 3 ]; then break; fi
		for s in a b c; do
			kill -0 "$(cat /tmp/$1-agent-$s.pid)" 2>/dev/null || { say agent-gone "$1" "$s"; i=1200; }
		done
		sleep 0.25
		i=$((i + 1))
	done
	for s in a b c; do say attach "$1" "$s" "$(head -n 1 /tmp/$1-agent-$s.log)"; done
}

# stop_agents PHASE: SIGTERM to each agent, its exit code and last line.
stop_agents() {
	for s in a b c; do kill -TERM "$(cat /tmp/$1-agent-$s.pid)"; done
	for s in a b c; do
		wait "$(cat /tmp/$1-agent-$s.pid)"
		say exit "$1" "$s" "$?"
		say detach "$1" "$s" "$(tail -n 1 /tmp/$1-agent-$s.log)"
	done
}

# h1_chain PHASE PORT: the HTTP/1.1 chain (a thread per connection, a new
# connection per call) on ports PORT+1 to PORT+3, its two requests, and
# the agents' stop.
h1_chain() {
	in_cgroup "$1-c" /copperc-testsvc --name c --listen $(($2 + 3)) --no-context --context-only --lifetime 300
	wait_port $(($2 + 3))
	in_cgroup "$1-b" /copperc-testsvc --name b --listen $(($2 + 2)) --no-context --context-only --lifetime 300 \
		--callee next=127.0.0.1:$(($2 + 3))
	wait_port $(($2 + 2))
	in_cgroup "$1-a" /copperc-testsvc --name a --listen $(($2 + 1)) --no-context --context-only --lifetime 300 \
		--callee next=127.0.0.1:$(($2 + 2))
	wait_port $(($2 + 1))
	say answer "$1" plain "$(wget -q -O - http://127.0.0.1:$(($2 + 1))/)"
	say answer "$1" forged "$(wget -q -O - --header 'x-copper-context: /evil/x' http://127.0.0.1:$(($2 + 1))/)"
	stop_agents "$1"
}

# The socket receive hook, asked for by name, needs Linux 6.4: the agent
# must refuse and say why.
if grep -q copper_socket_hook=absent /proc/cmdline; then
	mkdir -p /sys/fs/cgroup/refused
	/copperc agent --service a --cgroup /sys/fs/cgroup/refused --syscall-hooks socket 2>/tmp/refused.log
	say exit refused agent "$?"
	say refusal "$(tr '\n' ' ' </tmp/refused.log)"
fi

# HTTP/1.1, with the hooks the agent picks (the syscall tracepoints here),
# then with tp_btf sys_enter/sys_exit.
start_agents h1 "" ""
h1_chain h1 18000
start_agents tpbtf "--syscall-hooks tp-btf" ""
h1_chain tpbtf 18030

# h2c: the h2 crate on a tokio runtime per connection, kept connections,
# non-blocking sockets: b and c are declared one request per thread.
start_agents h2c "" --one-request-per-thread
in_cgroup h2c-c /copperc-h2c-testsvc --listen 18013 >/dev/null
wait_port 18013
in_cgroup h2c-b /copperc-h2c-testsvc --listen 18012 --next 127.0.0.1:18013 >/dev/null
wait_port 18012
in_cgroup h2c-a /copperc-h2c-testsvc --listen 18011 --next 127.0.0.1:18012 >/dev/null
wait_port 18011
say answer h2c plain "$(/nghttp http://127.0.0.1:18011/)"
say answer h2c forged "$(/nghttp -H 'x-copper-context: /evil/x' http://127.0.0.1:18011/)"
stop_agents h2c

# Node-wide: each pod announces itself (tests/ebpf/vm_lib.sh, node_pod).
# a's own excluded port (one no hop uses) loads the code that looks a
# socket's service up from its cgroup: a's calls to b are still followed.
echo '{"services": [{"name": "a", "entrypoint": true, "excludeOutboundPorts": [5432]}, {"name": "b"}, {"name": "c"}]}' >/tmp/config.json
start_node_agent node
node_pod node c c 18023 /copperc-testsvc --name c --listen 18023 --no-context --context-only --lifetime 300
node_pod node b b 18022 /copperc-testsvc --name b --listen 18022 --no-context --context-only --lifetime 300 \
	--callee next=127.0.0.1:18023
node_pod node a a 18021 /copperc-testsvc --name a --listen 18021 --no-context --context-only --lifetime 300 \
	--callee next=127.0.0.1:18022
say answer node plain "$(wget -q -O - http://127.0.0.1:18021/)"
say answer node forged "$(wget -q -O - --header 'x-copper-context: /evil/x' http://127.0.0.1:18021/)"
stop_node_agent node

say done
poweroff -f
