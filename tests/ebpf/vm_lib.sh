# What the inits of the test machines share (tests/ebpf/vm_init.sh and
# tests/ebpf/vm_arm64_chain.sh source it): their reports, and services
# started in cgroups. Every line a test reads starts with `COPPER-VM `.
say() { echo "COPPER-VM $*"; }

# machine_up: the file systems the agent and the services need, and loopback.
machine_up() {
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	mount -t tmpfs tmp /tmp
	mount -t cgroup2 none /sys/fs/cgroup
	mount -t bpf bpf /sys/fs/bpf
	ip link set lo up
}

# in_cgroup CGROUP COMMAND...: runs the command in the background, inside
# the cgroup from its first instruction (before it opens a socket).
in_cgroup() {
	cg="$1"
	shift
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "/sys/fs/cgroup/$cg" "$@" &
}

wait_port() {
	i=0
	while [ "$i" -lt 400 ] && ! netstat -ltn | grep -q "127.0.0.1:$1 "; do
		sleep 0.05
		i=$((i + 1))
	done
}

# start_node_agent PHASE FLAGS...: a node-wide agent with /tmp/config.json
# for the pods under /sys/fs/cgroup/PHASE; returns once it printed its
# first line (or exited).
start_node_agent() {
	phase="$1"
	shift
	mkdir -p "/sys/fs/cgroup/$phase"
	/copperc agent --no-pins --pods-under "/sys/fs/cgroup/$phase" --config /tmp/config.json "$@" 2>"/tmp/$phase-agent.log" &
	node_agent=$!
	i=0
	while [ "$i" -lt 1200 ] && [ ! -s "/tmp/$phase-agent.log" ] && kill -0 "$node_agent" 2>/dev/null; do
		sleep 0.25
		i=$((i + 1))
	done
	say attach "$phase" agent "$(head -n 1 "/tmp/$phase-agent.log")"
}

# stop_node_agent PHASE: SIGTERM to it, its exit code and last line.
stop_node_agent() {
	kill -TERM "$node_agent"
	wait "$node_agent"
	say exit "$1" agent "$?"
	say detach "$1" agent "$(tail -n 1 "/tmp/$1-agent.log")"
}

# node_pod PHASE POD SERVICE PORT COMMAND...: a pod of SERVICE under
# /sys/fs/cgroup/PHASE/POD, as the add-on's Kubernetes patches make it:
# `copperc await-agent` in its `wait` cgroup announces it, and once the
# agent follows it, COMMAND runs in its `app` cgroup and listens on PORT.
node_pod() {
	phase="$1" pod="$2" service="$3" port="$4"
	shift 4
	mkdir -p "/sys/fs/cgroup/$phase/$pod/wait" "/sys/fs/cgroup/$phase/$pod/app"
	sh -c 'echo $$ > "$0/cgroup.procs" && COPPER_CTX_SERVICE="$1" exec /copperc await-agent --exit-when-attached --timeout 120 --ready-file "/tmp/ready-$2"' \
		"/sys/fs/cgroup/$phase/$pod/wait" "$service" "$phase-$pod" >/dev/null 2>"/tmp/$phase-await-$pod.log"
	say await "$phase" "$pod" "$?"
	in_cgroup "$phase/$pod/app" "$@"
	wait_port "$port"
}
