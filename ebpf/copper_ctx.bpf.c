// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * copper_ctx: carries the run-time context header `x-copper-context` across
 * an unmodified application (see docs/ebpf.md).
 *
 * Receive side (tp_btf/sock_recv_length; or the syscall tracepoints of
 * read/recvfrom/recvmsg/close; or tp_btf/sys_enter + tp_btf/sys_exit): when
 * a thread of the service reads the start of a request (an HTTP/1.x request
 * head, or an h2c HEADERS frame on a connection whose client preface it
 * read), the value it will send is stored for that thread (`threads`):
 * the incoming context followed by `/<own name>`, or `/<own name>` at an
 * entry point. A request without a valid context at a service that is not
 * an entry point clears the thread's value, so nothing is sent.
 *
 * Send side (sockops + sk_msg): sockops adds every connection the service
 * opens to the sockhash `socks`; sk_msg runs in the sending thread and
 * inserts the thread's value: after the request line (HTTP/1.x), or as a
 * literal header field without indexing at the end of a HEADERS block (h2c),
 * with the frame length rewritten. A message leaves in one piece: one of
 * under SCAN bytes is rebuilt whole, a longer one gets the inserted piece
 * and is joined again. From a connection's second message on, its socket
 * storage (`conns`) marks it as the service's own, and the receive side
 * passes the responses read there at once.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "copper_ctx.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Built with -DCOPPER_FLOOR=1 only for a benchmark (`make
 * build/ebpf/copper_floor.bpf.o`, benches/ebpf_overhead.py --floor): the
 * sk_msg and socket receive programs then return at once, which leaves what
 * the hooks cost before the programs do anything.
 */
#ifndef COPPER_FLOOR
#define COPPER_FLOOR 0
#endif

/*
 * Built with -DCOPPER_FLOOR=1 -DCOPPER_SPIN_NS=N only for a benchmark (`make
 * build/ebpf/copper_spin.bpf.o`): the floor object, whose socket receive
 * program (for a read by a followed task) and sk_msg program first wait N ns
 * on the clock. It costs the services the programs' time without their reads
 * and writes of memory, which tells the one from the other.
 */
#ifndef COPPER_SPIN_NS
#define COPPER_SPIN_NS 0
#endif

/* One load or store of the whole value, which the compiler may not split. */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

#define AF_INET 2
#define AF_INET6 10

#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_CLOSE 3
#define NR_RECVFROM 45
#define NR_RECVMSG 47
#define ARG1(r) ((r)->di)
#define ARG2(r) ((r)->si)
#define ARG3(r) ((r)->dx)
#define ARG4(r) ((r)->r10) /* a syscall's fourth argument */
#define SYSNO(r) ((r)->orig_ax)
#define EXIT_ARG1(r) ((r)->di)
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ 63
#define NR_CLOSE 57
#define NR_RECVFROM 207
#define NR_RECVMSG 212
#define ARG1(r) ((r)->regs[0])
#define ARG2(r) ((r)->regs[1])
#define ARG3(r) ((r)->regs[2])
#define ARG4(r) ((r)->regs[3])
#define SYSNO(r) ((r)->syscallno)
#define EXIT_ARG1(r) ((r)->orig_x0) /* x0 holds the return value at exit */
#else
#error "copper_ctx supports x86_64 and aarch64"
#endif

_Static_assert(sizeof(struct copper_config) == 72, "the loader writes 72 bytes");


/* Literals, not arrays: every use is unrolled into constants. */
#define HDR_NAME "x-copper-context"
#define HDR_LEN 16
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
/* Bytes of a read copied first: a request line and the line after it, usually. */
#define HEAD_PEEK 128

/*
 * The services, keyed by the id of the cgroup the loader registered for each
 * (a service's own cgroup, or a Kubernetes pod's): the receive hooks only
 * follow tasks in these cgroups or below them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u64);
	__type(value, struct copper_config);
} services SEC(".maps");

/*
 * The distinct depths of the registered cgroups in the cgroup v2 tree,
 * deepest first, ended by 0 (the root is never registered): a task's nearest
 * registered ancestor is found with one lookup per depth, not per cgroup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_LEVELS);
	__type(key, __u32);
	__type(value, __u32);
} levels SEC(".maps");

/*
 * Moved on by the agent after each change to `services` or `levels`, so
 * that every cgroup's cached answer (`cgroup_services`) is found again. 0:
 * the agent keeps no such count, and nothing is cached.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} services_gen SEC(".maps");

/*
 * A cgroup's service as current_service last found it, for the tasks in
 * that cgroup: a read by a task that no service is followed for (every
 * socket read on the node) then costs no hash look-up at all. Kept per
 * cgroup, not per task, so that a thread started for one connection does
 * not pay for an entry of its own (an allocation, and a free when it ends).
 *
 * One 64-bit word, `services_gen` in the high half and where the service
 * is in the low half (CACHED_*), so that tasks of the cgroup that write it
 * at once on two CPUs leave one of their answers, never a mix of two.
 */
#define CACHED_NONE 0	      /* no service */
#define CACHED_OWN 1	      /* the cgroup itself is registered */
#define CACHED_DEPTH(d) ((d) + 2) /* its ancestor at depth d is */
#define CACHED_DEPTH_OF(w) ((w) - 2)

struct cgroup_service {
	__u64 answer;
};

struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgroup_service);
} cgroup_services SEC(".maps");

/*
 * 0 on a kernel without cgroup storage (before Linux 6.2): the agent then
 * sets this before loading and does not create `cgroup_services`, and the
 * verifier drops the code that uses it, so nothing is cached. In a section
 * of its own, so that it is the first and only value there.
 */
const volatile __u32 cgroup_cache SEC(".rodata.cache") = 1;

/*
 * Remote ports whose connections never enter the sockhash, one bit per port
 * (`copperc agent --exclude-outbound-ports`, set by the agent before loading):
 * a database's or a cache's connections then take the kernel's plain send
 * path, not the sockhash's, and sk_msg never runs on them. Read-only data,
 * not a map, so that an agent that takes over pinned maps brings its own
 * list (with its sockops program) and nothing stale stays behind.
 */
const volatile __u32 skip_ports[SKIP_PORT_WORDS] SEC(".rodata.ports");

/*
 * Remote ports excluded for one service only (node-wide, a service's own
 * `excludeOutboundPorts`): (the followed cgroup's id, a word of the port
 * bitmap) -> its 32 bits, written by the agent for each cgroup it follows
 * as such a service. Read only where `service_ports_on` is set, which the
 * agent does before loading when some service has a list; otherwise the
 * verifier drops the code that reads it and the map is not created. Not
 * preallocated: most nodes have a few entries, if any.
 */
struct service_port_key {
	__u64 cgroup;
	__u32 word;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct service_port_key);
	__type(value, __u32);
} service_ports SEC(".maps");

const volatile __u32 service_ports_on SEC(".rodata.svcports") = 0;

/*
 * Connections opened by the service, keyed by socket cookie; sk_msg is
 * attached to this map.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65535);
	__type(key, __u64);
	__type(value, __u64);
} socks SEC(".maps");

/* What the sending side knows of a connection the service opened. */
enum { P_OPEN = 0, P_H2, P_DESYNC };

/* An h2c server connection (one that read the client preface), as the receive hooks follow it. */
struct h2_rx {
	__u32 skip;   /* bytes of the last frame still to come */
	__u32 desync; /* frame boundaries lost, or requests sent at once: no context */
	/*
	 * A read that ended inside a frame header: its first `have` bytes
	 * (1 to 8), which the next read completes. A buffered reader (tokio's,
	 * under the h2 crate) reads what fits in its buffer, so a read may end
	 * anywhere. part[] is larger than 9 so that a masked offset plus a
	 * masked length stays inside.
	 */
	__u32 have;
	/*
	 * A request's HEADERS frame whose payload goes on in later reads: the
	 * last bytes of its block read so far are in `h2_tails`, and the frame
	 * ends `skip` bytes into the coming reads.
	 */
	__u32 pending;
	/*
	 * The stream of the last request whose client half is still open
	 * (HEADERS without END_STREAM, its body to come); 0: none. A request
	 * that starts while another one is being sent, or in the read that
	 * ends another one, comes while the thread may still handle that
	 * other one: it gives no context (rx_h2).
	 */
	__u32 open_stream;
	__u8 part[32];
};

/*
 * The end of a pending HEADERS frame's block read so far (h2_rx.pending),
 * keyed like h2_rx_fds: where the added literal, which ends the block, may
 * have begun. An entry exists only while such a frame is being read; one
 * left by a connection that closed in the middle of a frame is evicted
 * (LRU), so a few entries are enough: a frame is pending from one read to
 * the next.
 */
struct h2_tail {
	__u32 keep; /* valid bytes at the start of buf: the block's last ones so far */
	__u32 pad;
	__u8 buf[1024]; /* H2_TAIL kept; the rest lets a masked offset plus a masked length stay inside */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 512);
	__type(key, __u64);
	__type(value, struct h2_tail);
} h2_tails SEC(".maps");

/* An h2c server connection's frame state as its client preface leaves it. */
static __always_inline void rx_h2_start(struct h2_rx *st)
{
	__builtin_memset(st, 0, sizeof(*st));
}

/*
 * A connection, in socket storage: found without hashing (most sockets
 * have none, and the look-up that finds nothing costs a pointer read) and
 * freed with the socket. Two kinds have one:
 *
 * - a connection the service opened (sockops put it in `socks`), from its
 *   second message on, or from the h2c client preface: what the service
 *   reads there are responses (`responses`), which the socket receive hook
 *   passes at once; for h2c, where the next sent frame starts. A connection
 *   per call gets none, which saves an allocation per call.
 * - an h2c server connection seen by the socket receive hook (`rx`).
 */
struct conn_state {
	struct h2_rx rx;
	__u32 tx_proto;  /* P_OPEN, P_H2, P_DESYNC */
	__u32 tx_skip;   /* h2c: bytes of the last sent frame still to come */
	__u32 responses; /* the service opened it: it reads responses here */
	__u32 h2_server; /* an h2c server connection: `rx` holds its frame state */
	/*
	 * h2c: the last message ended after tx_have (1 to 8) bytes of a frame
	 * header, which are in tx_part (a short write on a full socket buffer
	 * ends anywhere). Larger than 9 so that masked offsets stay inside.
	 */
	__u32 tx_have;
	__u8 tx_part[24];
	/*
	 * h2c: the highest stream id that a sent HEADERS frame opened. A client
	 * opens each stream with a higher id than all before (RFC 9113, 5.1.1),
	 * so a HEADERS frame on a stream no higher is its trailers.
	 */
	__u32 tx_last_stream;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* No connection: none read yet, or the last one was closed. */
#define NO_CONN 0ULL

/*
 * A thread of a followed service, keyed by pid_tgid: the header value it
 * sends while it handles its current request, and which connection it last
 * read a request from. A thread that reads requests from a second
 * connection while the first is still open serves several connections at
 * once (an event loop, a pool with keep-alive): it is marked `mux` and never
 * sends a context, since its sends cannot be tied to one request.
 *
 * One entry per thread, written in place. Thread ids are reused: `start`
 * (the thread's start time) tells an entry of an earlier thread with the
 * same id, which is ignored, so no hook on thread exit is needed; LRU
 * eviction reclaims such entries. (Task storage would need neither, but
 * sk_msg programs may use it only on recent kernels.)
 */
struct thread_state {
	__u64 start;
	__u64 last_conn; /* see conn_of_fd and copper_sock_recv; NO_CONN */
	__u8 mux;
	/*
	 * `written` is what this end of `last_conn` had written (its TCP write
	 * sequence) when the thread read its request there (`answer_due`: it
	 * could be read), so that a later look
	 * tells whether anything, the answer first of all, was written since;
	 * `left_unanswered` says that `last_conn` ended before that (see
	 * start_request).
	 */
	__u8 answer_due;
	__u8 left_unanswered;
	__u8 pad;
	__u32 epoch; /* control's epoch when `val` was written */
	__u32 len;   /* bytes of `val` to send; 0: nothing */
	__u32 written;
	__u8 val[VAL_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct thread_state);
} threads SEC(".maps");

/*
 * The same state in task storage: found from the task without hashing,
 * allocated only for a thread that reads a request, and freed with the
 * thread (`start` is not used). Where the kernel lets sk_msg programs use
 * task storage (the agent tries), the agent leaves this switch on and does
 * not create `threads`; otherwise it turns it off and does not create
 * `tasks`, and the verifier drops the code that uses the map (see
 * cgroup_cache).
 */
const volatile __u32 task_storage SEC(".rodata.tasks") = 1;



struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} tasks SEC(".maps");

/*
 * A connection a thread reads from: the socket's cookie when the read is
 * seen at the socket (copper_sock_recv), else (tgid, fd) with the top bit
 * set (the syscall hooks, which also see close).
 */
static __always_inline __u64 conn_of_fd(__u64 tid, __u32 fd)
{
	return (1ULL << 63) | ((tid >> 32) << 32) | fd;
}

/* A read that returned data: its buffer and capacity. */
struct pending_read {
	__u64 buf;
	__u64 cap;
};

/*
 * h2c server connections for the syscall hooks, which have no socket (the
 * socket receive hook keeps them in `conns`), keyed as thread_state.last_conn.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct h2_rx);
} h2_rx_fds SEC(".maps");

struct scratch {
	/* A read's first bytes; up to HEAD_MAX of an HTTP/1.x request head (SCAN_BUF masks the rest of the code's indexes). */
	__u8 buf[HEAD_BUF];
	__u8 chunk[CHUNK_BUF]; /* a chunk line of a chunked request body */
	__u8 out[OUT_BUF];
	__u8 msg[MSG_BUF]; /* a whole HTTP/1.x message with the value's line (rebuild) */
	struct thread_state fresh;
	/*
	 * hdr_cb's place in buf. Kept here, not in its context on the stack:
	 * a value loaded from a map is any number to the verifier, so the
	 * callback's states are alike from one step to the next and it is
	 * verified in a few passes, where a cursor on the stack that moves by
	 * varying steps made it explore each position (past a million
	 * instructions).
	 */
	__u32 hdr_at;
	/*
	 * What framing_cb found, and where chunk_cb's walk is: kept here for
	 * the same reason.
	 */
	__u32 cl_at;   /* where the first Content-Length value starts (after the colon) */
	__u32 lengths; /* Content-Length lines */
	__u32 te;      /* Transfer-Encoding lines */
	__u32 chunk_at; /* where the next chunk line starts in the read */
	/* See forget(). */
	__u32 forgotten;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

/* Per CPU: no atomic add, and no cache line moving between CPUs on every request. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * Index 0, written by the agent. A node-wide agent keeps its maps pinned
 * across a restart, so that the connections it follows stay followed;
 * between two agents the receive hooks are detached and the threads' values
 * would be stale, so nothing is sent: while `paused` is set (an agent that
 * stops sets it), and once `alive_until` has passed (an agent that is
 * killed cannot set anything, but stops renewing it). Each agent that loads
 * moves `epoch` on, so values written before it are never sent.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct copper_control);
} control SEC(".maps");

/*
 * The counters of why a request went without a context, again per cgroup
 * of the task that read or sent it, so that the agent can name the service
 * (and the container) at fault: node-wide, `stats` adds up every pod. Only
 * these reasons are counted so, and only where one happens, never for a
 * request that carries its context: that path pays nothing for it. Per CPU,
 * as `stats`; allocated at a cgroup's first such event. The agent deletes
 * the entries of cgroups it no longer follows.
 */
struct cgroup_stat {
	__u64 n[CG_ST_COUNT];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u64);
	__type(value, struct cgroup_stat);
} cgroup_stats SEC(".maps");

/* Where `which` is counted in `struct cgroup_stat`, or CG_ST_COUNT if it is not. */
static __always_inline __u32 cgroup_stat_of(__u32 which)
{
	switch (which) {
	case ST_RX_AMBIGUOUS:
		return CG_RX_AMBIGUOUS;
	case ST_RX_NONBLOCKING:
		return CG_RX_NONBLOCKING;
	case ST_TX_NO_CONTEXT:
		return CG_TX_NO_CONTEXT;
	case ST_TX_SKIPPED:
		return CG_TX_SKIPPED;
	case ST_TX_DESYNC:
		return CG_TX_DESYNC;
	case ST_TX_ERROR:
		return CG_TX_ERROR;
	default:
		return CG_ST_COUNT;
	}
}

static __always_inline void count_cgroup(__u32 at, __u32 n)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct cgroup_stat *v = bpf_map_lookup_elem(&cgroup_stats, &id), zero = {};

	if (!v) {
		/* Full, or another CPU made it first: the look-up tells. */
		bpf_map_update_elem(&cgroup_stats, &id, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&cgroup_stats, &id);
	}
	if (v && at < CG_ST_COUNT)
		v->n[at] += n;
}

static __always_inline void count_n(__u32 which, __u32 n)
{
	__u32 at = cgroup_stat_of(which);
	__u64 *v;

	if (!n)
		return;
	v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += n;
	/* `which` is a constant at every call: the test goes at build time. */
	if (at < CG_ST_COUNT)
		count_cgroup(at, n);
}

static __always_inline void count(__u32 which)
{
	count_n(which, 1);
}

static __always_inline struct copper_control *get_control(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&control, &zero);
}

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&scratch, &zero);
}

/* The current thread's state, created if `create` (a new one is all zeros but `start`: NO_CONN, no value). */
static __always_inline struct thread_state *this_thread(int create)
{
	__u64 tid, start;
	struct thread_state *ts;
	struct scratch *s;

	if (task_storage)
		return bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), 0,
					    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	tid = bpf_get_current_pid_tgid();
	start = bpf_get_current_task_btf()->start_time;
	ts = bpf_map_lookup_elem(&threads, &tid);
	if (ts && ts->start == start)
		return ts;
	if (!create)
		return NULL;
	s = get_scratch();
	if (!s)
		return NULL;
	s->fresh.start = start;
	s->fresh.last_conn = NO_CONN;
	s->fresh.mux = 0;
	s->fresh.answer_due = 0;
	s->fresh.left_unanswered = 0;
	s->fresh.epoch = 0;
	s->fresh.len = 0;
	if (bpf_map_update_elem(&threads, &tid, &s->fresh, BPF_ANY))
		return NULL;
	ts = bpf_map_lookup_elem(&threads, &tid);
	return ts && ts->start == start ? ts : NULL;
}

/* Forgets what the current thread would send. */
static __always_inline void clear_value(void)
{
	struct thread_state *ts = this_thread(0);

	if (ts)
		ts->len = 0;
}

/* The value that the request just read gave its thread goes: the read cannot be tied to one request. */
static __always_inline void drop_value(void)
{
	struct thread_state *ts = this_thread(0);

	if (ts && ts->len) {
		ts->len = 0;
		count(ST_RX_AMBIGUOUS);
	}
}

/*
 * The current thread's value; none while no agent captures contexts (see
 * `control`), or when it was written before the current agent loaded.
 */
static __always_inline struct thread_state *thread_value(void)
{
	struct copper_control *c = get_control();
	struct thread_state *ts;

	/* The coarse clock is enough for a deadline renewed every 20 ms. */
	if (!c || c->paused || (c->alive_until && bpf_ktime_get_coarse_ns() > c->alive_until))
		return NULL;
	ts = this_thread(0);
	if (!ts || !ts->len || ts->epoch != c->epoch)
		return NULL;
	return ts;
}


/*
 * buf[i], masked so that the verifier sees the bound; the barrier keeps clang
 * from dropping a mask that it can prove redundant.
 */
static __always_inline __u8 bget(struct scratch *s, __u32 i)
{
	barrier_var(i);
	i &= SCAN_BUF - 1;
	return s->buf[i];
}

#define B(s, i) bget((s), (i))

/* buf[i] of the whole receive buffer (see bget). */
static __always_inline __u8 hget(struct scratch *s, __u32 i)
{
	barrier_var(i);
	i &= HEAD_BUF - 1;
	return s->buf[i];
}

/* x & m, with the mask kept for the verifier (see bget). */
static __always_inline __u32 masked(__u32 x, __u32 m)
{
	barrier_var(x);
	return x & m;
}

/*
 * Copies `size` bytes (a constant multiple of 8) from src to dst, both in
 * maps, a word a step, in line: for a few words, less than a helper call
 * costs. Word accesses that are not aligned are allowed where the add-on
 * runs (x86-64, arm64). A macro, since clang unrolls the loop only with
 * `size` known; the barrier keeps it from making the loop a memcpy call.
 */
#define COPY_WORDS(dst, src, size)                                                               \
	do {                                                                                     \
		__u32 i_;                                                                        \
		_Pragma("unroll") for (i_ = 0; i_ < (size); i_ += 8)                             \
		{                                                                                \
			*(__u64 *)((__u8 *)(dst) + i_) = *(const __u64 *)((const __u8 *)(src) + i_); \
			barrier();                                                               \
		}                                                                                \
	} while (0)

/*
 * A context value of `len` (<= 255) bytes from src to dst: a short one
 * (most are) as 64 bytes whatever its length, which the caller has room
 * for and writes over or ignores past `len` (a copy that stopped at one of
 * several steps would have what follows verified once for each); a longer
 * one by the helper.
 */
#define COPY_VALUE(dst, src, len)                                          \
	do {                                                               \
		if ((len) <= 64)                                           \
			COPY_WORDS(dst, src, 64);                          \
		else                                                       \
			bpf_probe_read_kernel(dst, masked(len, 255), src); \
	} while (0)

/*
 * x, as a number the verifier knows nothing of: a search that returns from
 * one of several places in line would otherwise have what follows it
 * verified once for each of them (each gives x a range of its own).
 */
static __always_inline __u32 forget(struct scratch *s, __u32 x)
{
	WRITE_ONCE(s->forgotten, x);
	return READ_ONCE(s->forgotten);
}

/*
 * ---- scanning the scratch buffer ----
 *
 * bpf_loop callbacks, verified once whatever the length; each step looks at
 * STEP bytes, and the scratch buffer travels in the context, since a helper
 * call per byte would cost more than the byte.
 */
#define STEP 8

struct find_ctx {
	struct scratch *s;
	__u32 start; /* the first word the callback looks at (a multiple of STEP) */
	__u32 end;
	__u32 word; /* result: the first word (or last bytes) that may hold ch, or ~0 */
	__u8 ch;
};

/* Some byte of `w` is zero: exact as to whether one is, not as to which. */
#define HAS_ZERO_BYTE(w) ((((w) - 0x0101010101010101ULL) & ~(w) & 0x8080808080808080ULL) != 0)

/*
 * One step tests FIND_WORDS words at once for `ch` (a request line is some
 * tens of bytes): several a step, since each step is a call, whose return
 * costs more than a word's test on CPUs with return-stack mitigations. It
 * stops at the first word that holds `ch`, or at the last bytes, fewer than
 * a word (f->word); find_byte then looks at that word's bytes.
 */
#define FIND_WORDS 4

enum { WORD_NEXT, WORD_HERE, WORD_NONE };

/*
 * The word at `at` (a multiple of STEP) of buf[0, end): WORD_NONE past the
 * end, WORD_HERE if it may hold the byte repeated in `pattern` (exactly so,
 * unless it is the last bytes, fewer than a word), else WORD_NEXT.
 */
static __always_inline int word_test(struct scratch *s, __u32 at, __u32 end, __u64 pattern)
{
	__u64 w;

	if (at >= end || at >= SCAN)
		return WORD_NONE;
	if (at + STEP > end)
		return WORD_HERE;
	/* A word of the 8-aligned buffer, indexed as such: clang loads it at once, where a cast of &buf[at] goes byte by byte. */
	w = ((const __u64 *)s->buf)[masked(at / STEP, SCAN / STEP - 1)];
	return HAS_ZERO_BYTE(w ^ pattern) ? WORD_HERE : WORD_NEXT;
}

static long find_word_cb(__u64 i, void *c)
{
	struct find_ctx *f = c;
	struct scratch *s = f->s;
	__u64 pattern = 0x0101010101010101ULL * f->ch;
	__u32 at = f->start + (__u32)i * STEP * FIND_WORDS, j;
	int r;

	if (!s)
		return 1;
#pragma unroll
	for (j = 0; j < FIND_WORDS; j++, at += STEP) {
		r = word_test(s, at, f->end, pattern);
		if (r == WORD_NONE)
			return 1;
		if (r == WORD_HERE) {
			f->word = at;
			return 1;
		}
	}
	return 0;
}

/*
 * Words tested in line before the search goes on in bpf_loop: most request
 * lines are shorter, and a bpf_loop call and its callback's return cost
 * more than these tests.
 */
#define INLINE_WORDS 8

/* First position of `ch` in buf[0, end), or ~0. */
static __always_inline __u32 find_byte(struct scratch *s, __u32 end, __u8 ch)
{
	struct find_ctx f = {.s = s, .start = INLINE_WORDS * STEP, .end = end, .word = ~0U, .ch = ch};
	__u64 pattern = 0x0101010101010101ULL * ch;
	__u32 j, k, at = ~0U;
	int r;

#pragma unroll
	for (j = 0; j < INLINE_WORDS; j++) {
		r = word_test(s, j * STEP, end, pattern);
		if (r == WORD_NONE)
			return ~0U;
		if (r == WORD_HERE) {
			at = j * STEP;
			break;
		}
	}
	if (at == ~0U) {
		bpf_loop(SCAN / (STEP * FIND_WORDS), find_word_cb, &f, 0);
		at = f.word;
	}
	at = forget(s, at);
	if (at >= SCAN)
		return ~0U;
	/* The word's test is exact: `ch` is in it, unless it is the last bytes. */
#pragma unroll
	for (k = 0; k < STEP; k++) {
		if (at + k >= end)
			return ~0U;
		if (B(s, at + k) == ch)
			return at + k;
	}
	return ~0U;
}

/* A byte of a context value: a name's [a-z0-9-], or the `/` before one. */
static __always_inline int value_byte(__u8 ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '/';
}

struct valid_ctx {
	struct scratch *s;
	__u32 start;
	__u32 len;
	__u32 bad;
};

static long valid_cb(__u64 i, void *c)
{
	struct valid_ctx *v = c;
	struct scratch *s = v->s;
	__u32 at = (__u32)i * STEP, k;
	__u8 ch;

	if (!s)
		return 1;
#pragma unroll
	for (k = 0; k < STEP; k++) {
		if (at + k >= v->len)
			return 1;
		ch = B(s, v->start + at + k);
		if (!value_byte(ch)) {
			v->bad = 1;
			return 1;
		}
	}
	return 0;
}

/* A context value: `/name/name...` with names in [a-z0-9-]. */
static __always_inline int valid_value(struct scratch *s, __u32 start, __u32 len)
{
	struct valid_ctx v = {.s = s, .start = start, .len = len, .bad = 0};

	if (len == 0 || len > VAL_MAX || B(s, start) != '/')
		return 0;
	bpf_loop(VAL_MAX / STEP + 1, valid_cb, &v, 0);
	return !v.bad;
}

/* Bytes of a context value (with its carriage return) checked before bpf_loop takes over. */
#define INLINE_VALUE 16

struct value_ctx {
	struct scratch *s;
	__u32 start;
	__u32 end;
	__u32 cr; /* result: the carriage return that ends a valid value, or ~0 */
};

enum { VALUE_NEXT, VALUE_END, VALUE_BAD };

/*
 * Byte `at` of a context value that must end before `end`: VALUE_END (the
 * carriage return that ends it), VALUE_BAD (past the end, or a byte no
 * value has), else VALUE_NEXT.
 */
static __always_inline int value_step(struct scratch *s, __u32 at, __u32 end)
{
	__u8 ch;

	if (at >= end || at >= SCAN)
		return VALUE_BAD;
	ch = B(s, at);
	if (ch == '\r')
		return VALUE_END;
	return value_byte(ch) ? VALUE_NEXT : VALUE_BAD;
}

static long value_end_cb(__u64 i, void *c)
{
	struct value_ctx *v = c;
	struct scratch *s = v->s;
	__u32 at = v->start + (__u32)i * STEP, k;
	int r;

	if (!s)
		return 1;
#pragma unroll
	for (k = 0; k < STEP; k++) {
		r = value_step(s, at + k, v->end);
		if (r == VALUE_END) {
			v->cr = at + k;
			return 1;
		}
		if (r == VALUE_BAD)
			return 1;
	}
	return 0;
}

/*
 * The end (a carriage return) of the context value that starts at
 * buf[start], before `end`, in one pass that also checks its bytes; ~0 if
 * it is not a valid value (see valid_value).
 */
static __always_inline __u32 value_end(struct scratch *s, __u32 start, __u32 end)
{
	struct value_ctx v = {.s = s, .start = start + INLINE_VALUE, .end = end, .cr = ~0U};
	__u32 k;
	int r;

	if (start >= end || B(s, start) != '/')
		return ~0U;
	if (end > start + VAL_MAX + 1)
		v.end = start + VAL_MAX + 1;
	/* A short value (most are) is checked in line: see INLINE_WORDS. */
#pragma unroll
	for (k = 1; k < INLINE_VALUE; k++) {
		r = value_step(s, start + k, v.end);
		if (r == VALUE_END)
			return forget(s, start + k);
		if (r == VALUE_BAD)
			return ~0U;
	}
	bpf_loop(VAL_MAX / STEP + 1, value_end_cb, &v, 0);
	return v.cr;
}

/* Length of an HTTP method token followed by a space at buf[0], or 0. */
static __always_inline __u32 method_len(struct scratch *s, __u32 n)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < 8; i++) {
		__u8 ch = s->buf[i];

		if (i >= n)
			return 0;
		if (ch == ' ')
			return i >= 3 ? i : 0;
		if (ch < 'A' || ch > 'Z')
			return 0;
	}
	return 0;
}

/* buf[0..=nl] is a request line ending in ` HTTP/1.0\r\n` or ` HTTP/1.1\r\n`. */
static __always_inline int is_request_line(struct scratch *s, __u32 n, __u32 nl)
{
	if (nl >= SCAN || nl < 14 || !method_len(s, n))
		return 0;
	return B(s, nl - 1) == '\r' && B(s, nl - 10) == ' ' && B(s, nl - 9) == 'H' &&
	       B(s, nl - 8) == 'T' && B(s, nl - 7) == 'T' && B(s, nl - 6) == 'P' &&
	       B(s, nl - 5) == '/' && B(s, nl - 4) == '1' && B(s, nl - 3) == '.' &&
	       (B(s, nl - 2) == '0' || B(s, nl - 2) == '1');
}

static __always_inline int is_preface(struct scratch *s, __u32 n)
{
	__u32 i;

	if (n < PREFACE_LEN)
		return 0;
#pragma unroll
	for (i = 0; i < PREFACE_LEN; i++)
		if (s->buf[i] != (__u8)H2_PREFACE[i])
			return 0;
	return 1;
}

/* ---- the value a thread sends ---- */

/*
 * What this end of the TCP connection `sk` has written so far, in *seq: its
 * write sequence, which each byte that the application writes moves on.
 * 0 if `sk` is not a TCP socket.
 */
static __always_inline int written_on(struct sock *sk, __u32 *seq)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

	if (!tp)
		return 0;
	*seq = tp->write_seq;
	return 1;
}

/*
 * The current task's open file `fd`, for the syscall hooks, which know a
 * connection by its fd; NULL if there is none. Loads through BTF pointers
 * down to the fd array (no helper call); the array's entry needs a helper,
 * since an index that is not a constant cannot be applied to a BTF
 * pointer. What the file leads to is read by helpers too.
 */
static __always_inline struct file *file_of_fd(__u32 fd)
{
	struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
	struct file **fds;
	struct file *f = NULL;

	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	fds = fdt->fd;
	if (!fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

/*
 * written_on for the syscall hooks: the file `f` (see file_of_fd), its
 * socket (whose file must be `f`: the fd is a socket's) and the socket's
 * sock. Only a request read and a close of the connection a thread's
 * request came from ask. 0 if any step fails.
 */
static __always_inline int written_on_file(struct file *f, __u32 *seq)
{
	struct file *back = NULL;
	struct socket *so = NULL;
	struct sock *sk = NULL;

	if (!f || bpf_core_read(&so, sizeof(so), &f->private_data) || !so ||
	    bpf_core_read(&back, sizeof(back), &so->file) || back != f || bpf_core_read(&sk, sizeof(sk), &so->sk) ||
	    !sk)
		return 0;
	return !bpf_core_read(seq, sizeof(*seq), &((struct tcp_sock *)sk)->write_seq);
}

/*
 * The current thread starts handling a request whose incoming context is
 * buf[v0, v0 + vlen) (`have`: a valid one was found), read from the
 * connection `conn`, from a non-blocking socket if `nonblocking`. Stores
 * what the thread sends from now on, or clears it when nothing valid can be
 * sent.
 *
 * A thread that reads requests from non-blocking sockets is an event loop's
 * (or a worker of an async runtime, whose tasks move between threads): it
 * may read the next request, of any connection or of another stream of the
 * same h2 connection, before it sends the calls of this one, and those calls
 * may be sent by another thread. Its sends cannot be tied to one request,
 * so it sends nothing, unless the service is declared to handle one request
 * at a time per thread. An entry point's value does not depend on the
 * request, so neither this nor `mux` concerns it.
 *
 * A thread on blocking sockets may still have read this request before it
 * was done with the one before. The connection tells (`known`: its write
 * sequence, `written`, could be read): a thread that handles one request
 * at a time answers it before it reads the next one, so if nothing was
 * written on the connection of the
 * request before since the thread read it, that request is still being
 * handled. That is so when this HTTP/1.x request (`h1`) comes on the same
 * connection (read ahead, or pipelined in another read), or any request
 * comes on another connection after the first ended unanswered (a thread
 * that polls several connections read the first one's end, which untied
 * it: see on_conn_end and on_close). Not for two h2 requests of one connection: the h2
 * crate reads the next request before it writes out the answer it queued
 * for the one before, and a header block read in pieces starts its
 * request at each piece (docs/ebpf.md, "Threads"). Then this
 * request gives no value, and the calls still to come for the one before
 * carry none either. One that was never to be answered (its client went
 * away first) costs the next request its context, no more. An HTTP/1.x
 * read that may hold more than one request loses its value afterwards
 * (see h1_alone and drop_value).
 */
static __always_inline void start_request(const struct copper_config *cfg, __u64 conn, int h1, int known,
					  __u32 written, struct scratch *s, __u32 v0, __u32 vlen, int have,
					  int nonblocking)
{
	struct thread_state *ts = this_thread(1);
	struct copper_control *c = get_control();
	__u32 nl = cfg->name_len;
	int entrypoint = cfg->flags & SVC_ENTRYPOINT;
	int ahead = 0;

	if (!ts || !c)
		return;
	if (ts->last_conn != NO_CONN && ts->last_conn != conn)
		ts->mux = 1;
	if (!entrypoint)
		ahead = ts->left_unanswered ||
			(known && h1 && ts->answer_due && ts->last_conn == conn && ts->written == written);
	ts->answer_due = known && !entrypoint;
	ts->written = written;
	ts->left_unanswered = 0;
	ts->last_conn = conn;
	ts->len = 0;
	if (!entrypoint) {
		if (ts->mux || ahead) {
			count(ST_RX_AMBIGUOUS);
			return;
		}
		if (nonblocking && !(cfg->flags & SVC_ONE_REQUEST_PER_THREAD)) {
			count(ST_RX_NONBLOCKING);
			return;
		}
	} else {
		/* Entry point: a context from outside is ignored. */
		have = 1;
		vlen = 0;
	}
	if (!have || nl == 0 || nl > NAME_MAX_LEN || vlen + 1 + nl > VAL_MAX)
		return;
	if (vlen) {
		if (v0 >= SCAN)
			return;
		COPY_VALUE(ts->val, &s->buf[masked(v0, SCAN - 1)], vlen);
	}
	ts->val[masked(vlen, 255)] = '/';
	COPY_WORDS(&ts->val[masked(vlen + 1, 255)], cfg->name, NAME_BUF);
	ts->epoch = c->epoch;
	ts->len = vlen + 1 + nl;
}

/* ---- receive side ---- */

/* The entry in `services` of cgroup `id`, or of its nearest registered ancestor (where it is in *where: CACHED_*); NULL if none. */
static __always_inline const struct copper_config *find_service(__u64 id, __u32 *where)
{
	const struct copper_config *cfg = bpf_map_lookup_elem(&services, &id);
	__u32 i;

	*where = CACHED_NONE;
	if (cfg) {
		*where = CACHED_OWN;
		return cfg;
	}
#pragma unroll
	for (i = 0; i < MAX_LEVELS; i++) {
		__u32 k = i;
		__u32 *lv = bpf_map_lookup_elem(&levels, &k);

		if (!lv || *lv == 0)
			return NULL;
		id = bpf_get_current_ancestor_cgroup_id(*lv);
		cfg = id ? bpf_map_lookup_elem(&services, &id) : NULL;
		if (cfg) {
			*where = CACHED_DEPTH(*lv);
			return cfg;
		}
	}
	return NULL;
}

/*
 * Steps up the cgroup tree that cgroup_id_at takes before it asks the
 * helper: a container's cgroup is a step or two below its pod's.
 */
#define CGROUP_WALK 4

/*
 * The id of cgroup `c`'s ancestor at `depth` (its own at its own depth):
 * bpf_get_current_ancestor_cgroup_id's answer for the current task's `c`,
 * read through the cgroups' parent pointers, which costs less than the
 * helper's call on CPUs whose returns are made safe in software.
 */
static __always_inline __u64 cgroup_id_at(struct cgroup *c, __u32 depth)
{
	__u32 i;

#pragma unroll
	for (i = 0; i < CGROUP_WALK; i++) {
		if ((__u32)c->level <= depth)
			break;
		c = c->self.parent->cgroup;
	}
	if ((__u32)c->level == depth)
		return c->kn->id;
	return bpf_get_current_ancestor_cgroup_id(depth);
}

/* The service of the current task (see find_service), cached per cgroup. */
static __always_inline const struct copper_config *current_service(void)
{
	__u32 zero = 0, *genp = bpf_map_lookup_elem(&services_gen, &zero);
	/* Read before the look-ups: an answer found while the agent changes the maps is stored under the older value. */
	__u64 gen = genp ? *genp : 0, answer, id;
	struct cgroup_service *cs = NULL;
	const struct copper_config *cfg;
	struct cgroup *cg = NULL;
	__u32 where;

	if (gen && cgroup_cache) {
		cg = bpf_get_current_task_btf()->cgroups->dfl_cgrp;
		cs = bpf_cgrp_storage_get(&cgroup_services, cg, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	}
	if (cs && cg) {
		answer = READ_ONCE(cs->answer);
		if (answer >> 32 == gen) {
			where = (__u32)answer;
			if (where == CACHED_NONE)
				return NULL;
			id = where == CACHED_OWN ? cg->kn->id : cgroup_id_at(cg, CACHED_DEPTH_OF(where));
			return bpf_map_lookup_elem(&services, &id);
		}
	}
	cfg = find_service(bpf_get_current_cgroup_id(), &where);
	if (cs)
		WRITE_ONCE(cs->answer, gen << 32 | where);
	return cfg;
}

/*
 * The syscall hooks come in two sets; the agent attaches one of them.
 *
 * - The syscall tracepoints `tracepoint/syscalls/sys_{enter,exit}_*`: the
 *   kernel runs them only for the syscalls below. They need tracefs mounted.
 * - `tp_btf/sys_enter` and `tp_btf/sys_exit` attach without tracefs, but run
 *   for every syscall of every task on the machine, which costs far more
 *   (docs/evaluation.md); they return at once for other syscalls.
 *
 * Both call on_close and on_exit; a read needs no hook on its entry, since
 * its arguments are still in the task's saved user registers at its exit.
 */

/*
 * A close by a task of a followed service: forgets the fd, and unties the
 * thread from it as on_conn_end does (the fd is still open here).
 */
static __always_inline int on_close(__u32 fd)
{
	__u64 k = conn_of_fd(bpf_get_current_pid_tgid(), fd);
	struct thread_state *ts;
	__u32 written;

	if (!current_service())
		return 0;
	bpf_map_delete_elem(&h2_rx_fds, &k);
	ts = this_thread(0);
	if (ts && ts->last_conn == k) {
		if (ts->answer_due && written_on_file(file_of_fd(fd), &written) && written == ts->written)
			ts->left_unanswered = 1;
		ts->last_conn = NO_CONN;
	}
	return 0;
}

/*
 * A step of a walk of a head's lines whose place is s->hdr_at (see
 * hdr_cb): 1 if buf[i] is a line feed; else 0, once s->hdr_at has moved on
 * past the eight bytes from i if they hold no line feed (a word test), or
 * to the first line feed in them.
 */
static __always_inline int at_line_feed(struct scratch *s, __u32 i, __u32 end)
{
	__u32 k;
	__u64 w;

	if (hget(s, i) == '\n')
		return 1;
	barrier_var(i);
	if (i + 8 > end || i > HEAD_BUF - 8) {
		s->hdr_at = i + 1;
		return 0;
	}
	w = *(__u64 *)&s->buf[i];
	if (!HAS_ZERO_BYTE(w ^ 0x0a0a0a0a0a0a0a0aULL)) {
		s->hdr_at = i + 8;
		return 0;
	}
	/* x86 and arm64 load little-endian: byte k is bits 8k..8k+7. */
	for (k = 1; k < 8; k++)
		if (((w >> (8 * k)) & 0xff) == '\n')
			break;
	s->hdr_at = i + k;
	return 0;
}

struct hdr_ctx {
	struct scratch *s;
	__u32 end;  /* bytes of the head in the buffer (the search starts at s->hdr_at) */
	__u32 pos;  /* result: first byte of the header line's name, or ~0 */
};

/* buf[i..] starts with `x-copper-context:` (the name compared without case). */
static __always_inline int hdr_name_at(struct scratch *s, __u32 i, __u32 end)
{
	__u32 k;

	if (i + HDR_LEN >= end)
		return 0;
#pragma unroll
	for (k = 0; k < HDR_LEN; k++)
		if ((B(s, i + k) | 0x20) != (__u8)HDR_NAME[k])
			return 0;
	return B(s, i + HDR_LEN) == ':';
}

/*
 * One step of the search for the context line: from s->hdr_at, eight bytes
 * that hold no line feed at once (a word test), else on to the first line
 * feed in them, and at a line feed, the line after it. A head without the
 * header (a request from a caller the add-on does not follow) is thus
 * searched about eight times faster than one byte a step, and the compare
 * of the name stays at one place, which keeps the verifier's work small.
 */
static long hdr_cb(__u64 idx, void *c)
{
	struct hdr_ctx *h = c;
	struct scratch *s = h->s;
	__u32 i;

	if (!s)
		return 1;
	i = s->hdr_at;
	if (i + 2 >= h->end || i >= SCAN)
		return 1;
	if (!at_line_feed(s, i, h->end))
		return 0;
	if (B(s, i + 1) == '\r')
		return 1; /* the end of the head */
	if (hdr_name_at(s, i + 1, h->end)) {
		h->pos = i + 1;
		return 1;
	}
	s->hdr_at = i + 1;
	return 0;
}

/* What a read held: the start of a request (`seen`), and its context, if `valid`: buf[v0, v0 + vlen). */
struct rx_request {
	__u32 seen;
	__u32 valid;
	__u32 v0;
	__u32 vlen;
	__u32 alone_from; /* HTTP/1.x, with a value: a line feed of the head before its blank line (see h1_alone) */
	__u32 nl;         /* ... and the request line's */
};

/*
 * ---- is the request alone in its read? ----
 *
 * A blocking server reads through a buffer: two HTTP/1.x requests pipelined
 * in one read are handled one after the other with no read in between, so
 * the calls made for the second would carry the first one's context. A
 * request with a context therefore gives its thread a value only when its
 * read ends where the request does: at its head's end, or inside or at the
 * end of its body (Content-Length, or chunked). What follows a body in a
 * later read is not looked at (see docs/ebpf.md, "Pipelining").
 */

/* The bytes of `w` equal to `ch`: 0x80 in each, and only there (a carry-free test, unlike HAS_ZERO_BYTE's). */
static __always_inline __u64 bytes_of(__u64 w, __u8 ch)
{
	__u64 x = w ^ (0x0101010101010101ULL * ch);

	return ~(((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7f7f7f7f7f7f7f7fULL) | x | 0x7f7f7f7f7f7f7f7fULL);
}

/*
 * Where a blank line starts among the 8 bytes at buf[at] that lie before
 * `end`: 0x80 in the byte of each line feed that `\n` or `\r\n` follows at
 * once. Exact, so no byte is looked at one by one.
 */
static __always_inline __u64 blank_bytes(struct scratch *s, __u32 at, __u32 end)
{
	__u64 w, lf, cr;

	barrier_var(at);
	at &= HEAD_BUF - 1;
	if (at > HEAD_BUF - 8 || at >= end)
		return 0;
	/* x86 and arm64 load little-endian: byte k is bits 8k..8k+7. */
	w = *(const __u64 *)&s->buf[at];
	lf = bytes_of(w, '\n');
	cr = bytes_of(w, '\r');
	if (end - at < 8) {
		lf &= ~0ULL >> (8 * (8 - (end - at)));
		cr &= ~0ULL >> (8 * (8 - (end - at)));
	}
	return (lf & (lf >> 8)) | (lf & (cr >> 8) & (lf >> 16));
}

/*
 * The index k of the lowest byte of `m` (bytes of 0x80 or 0; m is not 0)
 * that is set, with no branch (each would double the verifier's paths):
 * 1 << 8k times 0x0001020304050607 has byte 7 - k of the constant, which
 * is k, in its top byte.
 */
static __always_inline __u32 lowest_byte(__u64 m)
{
	m &= -m;
	return ((m >> 7) * 0x0001020304050607ULL) >> 56;
}

/*
 * Words of 8 bytes tested a step. A word with no line feed (most of a long
 * head's words: a token's bytes) is passed at once; in one with a line
 * feed, a blank line may start at any of its 8 bytes, and it is tested as
 * two windows: at its first byte (starts 0 to 5) and 6 bytes on (6 and 7).
 */
#define BLANK_WORDS 8

struct blank_ctx {
	struct scratch *s;
	__u32 start;
	__u32 end;
	__u32 head_end; /* result, or ~0 */
};

static long blank_cb(__u64 i, void *c)
{
	struct blank_ctx *b = c;
	struct scratch *s = b->s;
	__u32 at = b->start + (__u32)i * 8 * BLANK_WORDS, j, k, w;
	__u64 m;

	if (!s)
		return 1;
#pragma unroll
	for (j = 0; j < BLANK_WORDS; j++, at += 8) {
		if (at >= b->end || at >= HEAD_MAX)
			return 1;
		w = masked(at, HEAD_BUF - 1);
		if (w > HEAD_BUF - 8 || !HAS_ZERO_BYTE(*(const __u64 *)&s->buf[w] ^ 0x0a0a0a0a0a0a0a0aULL))
			continue;
		m = blank_bytes(s, at, b->end) | ((blank_bytes(s, at + 6, b->end) & 0xffffULL) << 48);
		if (m) {
			k = lowest_byte(m);
			/* `\n\n` ends the head a byte sooner than `\n\r\n`. */
			b->head_end = at + k + ((hget(s, at + k + 1) == '\n') ? 2 : 3);
			return 1;
		}
	}
	return 0;
}

/* The end of the head whose blank line is the first one at or after buf[from] (a line feed or before it), in buf[0, end); ~0 if none. */
static __always_inline __u32 head_end(struct scratch *s, __u32 from, __u32 end)
{
	struct blank_ctx b = {.s = s, .start = from, .end = end, .head_end = ~0U};

	bpf_loop(HEAD_MAX / (8 * BLANK_WORDS) + 1, blank_cb, &b, 0);
	return b.head_end;
}

/* buf[i..] starts with `name` (lower case, its colon included), compared without case. */
static __always_inline int name_at(struct scratch *s, __u32 i, __u32 end, const char *name, __u32 len)
{
	__u32 k;

	if (i + len >= end)
		return 0;
#pragma unroll
	for (k = 0; k < len; k++)
		if ((hget(s, i + k) | 0x20) != (__u8)name[k])
			return 0;
	return 1;
}

#define CL_NAME "content-length:"
#define CL_LEN 15
#define TE_NAME "transfer-encoding:"
#define TE_LEN 18

struct framing_ctx {
	struct scratch *s;
	__u32 end; /* the head's end; the walk starts at s->hdr_at, its findings go to s->cl_at, lengths, te */
};

/* One step of the walk of the head's lines for its framing headers: see hdr_cb, whose steps these are. */
static long framing_cb(__u64 idx, void *c)
{
	struct framing_ctx *f = c;
	struct scratch *s = f->s;
	__u32 i;

	if (!s)
		return 1;
	i = s->hdr_at;
	if (i + 2 >= f->end || i >= HEAD_MAX)
		return 1;
	if (!at_line_feed(s, i, f->end))
		return 0;
	if (name_at(s, i + 1, f->end, CL_NAME, CL_LEN)) {
		if (!s->lengths)
			s->cl_at = i + 1 + CL_LEN;
		s->lengths++;
	} else if (name_at(s, i + 1, f->end, TE_NAME, TE_LEN)) {
		s->te++;
	}
	s->hdr_at = i + 1;
	return 0;
}

/* Digits of a Content-Length value read; a longer one is more than any read holds. */
#define CL_DIGITS 10

/* The Content-Length value at buf[at] (after optional white space), or ~0 if it is not a number. */
static __always_inline __u64 content_length(struct scratch *s, __u32 at, __u32 end)
{
	__u64 v = 0;
	__u32 k, digits = 0;
	__u8 ch;

	if (at < end && (hget(s, at) == ' ' || hget(s, at) == '\t'))
		at++;
#pragma unroll
	for (k = 0; k < CL_DIGITS; k++) {
		if (at + k >= end)
			break;
		ch = hget(s, at + k);
		if (ch < '0' || ch > '9')
			break;
		v = v * 10 + (ch - '0');
		digits++;
	}
	return digits ? v : ~0ULL;
}

enum { BODY_NEXT, BODY_OPEN, BODY_ENDS_READ, BODY_FOLLOWED };

struct chunk_ctx {
	struct scratch *s;
	__u64 ubuf;
	__u32 total; /* the read's length; the walk is at s->chunk_at */
	__u32 verdict;
};

static __always_inline int hex_value(__u8 ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * One chunk of a chunked body: its line (size, extensions) is read from
 * the application's buffer, and the walk goes on past its data. The body's
 * last chunk must be followed by the blank line at once: trailer fields
 * (seldom sent in requests) count as bytes that follow.
 */
static long chunk_cb(__u64 i, void *c)
{
	struct chunk_ctx *w = c;
	struct scratch *s = w->s;
	__u32 pos, got, k, lf = ~0U, digits = 0, size = 0, next;
	__u64 m;
	int v;

	if (!s)
		return 1;
	pos = s->chunk_at;
	if (pos >= w->total) {
		w->verdict = BODY_OPEN;
		return 1;
	}
	got = w->total - pos;
	if (got > CHUNK_PEEK)
		got = CHUNK_PEEK;
	if (bpf_probe_read_user(s->chunk, masked(got, CHUNK_BUF - 1), (void *)(w->ubuf + pos))) {
		w->verdict = BODY_FOLLOWED;
		return 1;
	}
	/* The first line feed read, a word a step. */
#pragma unroll
	for (k = 0; k < CHUNK_PEEK / 8; k++) {
		m = bytes_of(((const __u64 *)s->chunk)[k], '\n');
		if (got < 8 * k + 8)
			m &= got > 8 * k ? ~0ULL >> (8 * (8 * k + 8 - got)) : 0;
		if (m && lf == ~0U)
			lf = 8 * k + lowest_byte(m);
	}
	/* Any number to the verifier: what follows is walked once, not once for each place of the line feed. */
	lf = forget(s, lf);
	/* The size: up to 7 hex digits (a chunk of 256 MiB or more counts as bytes that follow). */
#pragma unroll
	for (k = 0; k < 8; k++) {
		if (k >= got || k >= lf)
			break;
		v = hex_value(s->chunk[k]);
		if (v < 0)
			break;
		size = (size << 4) | v;
		digits++;
	}
	if (lf == ~0U) {
		/* The line goes on past the read (open), or is longer than any this walk reads. */
		w->verdict = got < CHUNK_PEEK ? BODY_OPEN : BODY_FOLLOWED;
		return 1;
	}
	if (digits == 0 || digits > 7) {
		w->verdict = BODY_FOLLOWED;
		return 1;
	}
	next = pos + lf + 1;
	if (size) {
		s->chunk_at = next + size + 2;
		return 0;
	}
	/*
	 * The last chunk: the blank line that ends the body must come next
	 * (a line this walk did not read whole counts as bytes that follow).
	 */
	w->verdict = BODY_FOLLOWED;
	if (next >= w->total) {
		w->verdict = BODY_OPEN;
	} else if (lf + 1 < got && s->chunk[masked(lf + 1, CHUNK_BUF - 1)] == '\n') {
		w->verdict = next + 1 >= w->total ? BODY_ENDS_READ : BODY_FOLLOWED;
	} else if (lf + 1 < got && s->chunk[masked(lf + 1, CHUNK_BUF - 1)] == '\r') {
		if (next + 1 >= w->total)
			w->verdict = BODY_OPEN;
		else if (lf + 2 < got && s->chunk[masked(lf + 2, CHUNK_BUF - 1)] == '\n')
			w->verdict = next + 2 >= w->total ? BODY_ENDS_READ : BODY_FOLLOWED;
	}
	return 1;
}

/*
 * Whether the read (ubuf, `total` bytes) ends inside or at the end of the
 * body of the request whose head is buf[0, h), the request line's line
 * feed at `nl`: 1, or 0 if bytes follow it or its framing is not plain.
 * A global function (see h1_alone).
 */
__noinline int body_ends_read(__u32 nl, __u32 h, __u64 ubuf, __u32 total)
{
	struct scratch *s = get_scratch();
	struct framing_ctx f = {.s = s, .end = h};
	struct chunk_ctx w = {.s = s, .ubuf = ubuf, .total = total, .verdict = BODY_FOLLOWED};
	__u32 lengths, te;
	__u64 len;

	if (!s || h > HEAD_MAX)
		return 0;
	s->hdr_at = nl;
	s->lengths = 0;
	s->te = 0;
	bpf_loop(HEAD_MAX, framing_cb, &f, 0);
	lengths = s->lengths;
	te = s->te;
	if (te && !lengths) {
		s->chunk_at = h;
		bpf_loop(MAX_CHUNKS, chunk_cb, &w, 0);
		return w.verdict == BODY_OPEN || w.verdict == BODY_ENDS_READ;
	}
	if (te || lengths != 1)
		return 0; /* both, several lengths, or neither (no body: what follows is another request) */
	len = content_length(s, s->cl_at, h);
	return len != ~0ULL && h + len >= total;
}

/*
 * Where the head of the request whose request line ends at buf[nl] ends in
 * its read (ubuf, `total` bytes, the first `n` of them in buf), or ~0 if
 * not in this read: it goes on in a later one, or is longer than
 * HEAD_MAX, and what follows its end is not seen. `from` is a line feed of
 * the head (or before one) that comes before its blank line. A global
 * function: the verifier walks it once, not in each of the program's
 * states that reach it.
 */
__noinline __u32 h1_head_end(__u32 from, __u32 n, __u64 ubuf, __u32 total)
{
	struct scratch *s = get_scratch();
	__u32 h, lim;

	if (!s || n > SCAN)
		return ~0U;
	h = head_end(s, from, n);
	if (h != ~0U || total <= n || n != SCAN)
		return h;
	lim = total < HEAD_MAX ? total : HEAD_MAX;
	if (bpf_probe_read_user(&s->buf[SCAN], masked(lim - SCAN, HEAD_MAX - 1), (void *)(ubuf + SCAN)))
		return ~0U;
	return head_end(s, from + 3 < SCAN ? SCAN - 3 : from, lim);
}

/*
 * 1 if the read (ubuf, `total` bytes, the first `n` of them in buf) holds
 * the request whose request line ends at buf[nl] and nothing after it,
 * unless its body, which may go on in later reads (see h1_head_end for
 * `from`).
 */
static __always_inline int h1_alone(__u32 nl, __u32 from, __u32 n, __u64 ubuf, __u32 total)
{
	__u32 h = h1_head_end(from, n, ubuf, total);

	if (h == ~0U)
		return 0;
	return h >= total || body_ends_read(nl, h, ubuf, total);
}

/* An HTTP/1.x request head: the context is the first `x-copper-context` line. */
static __always_inline void rx_h1(struct scratch *s, __u32 n, __u32 nl, struct rx_request *r)
{
	struct hdr_ctx h = {.s = s, .end = n, .pos = ~0U};
	__u32 v0, cr;

	r->seen = 1;
	count(ST_RX_H1_REQUEST);
	/*
	 * The first `x-copper-context:` line of the head. The add-on puts its
	 * own right after the request line, so that line is tried first; a
	 * proxy in between (a sidecar) may move it further down.
	 */
	if (hdr_name_at(s, nl + 1, n)) {
		h.pos = nl + 1;
	} else {
		s->hdr_at = nl + 1;
		bpf_loop(SCAN, hdr_cb, &h, 0);
	}
	if (h.pos == ~0U)
		return;
	/* Skip the colon and optional white space. */
	v0 = h.pos + HDR_LEN + 1;
	if (v0 < n && (B(s, v0) == ' ' || B(s, v0) == '\t'))
		v0++;
	cr = value_end(s, v0, n);
	if (cr == ~0U || cr <= v0)
		return;
	r->v0 = v0;
	r->vlen = cr - v0;
	r->valid = 1;
	r->alone_from = cr + 1;
	r->nl = nl;
}

/* What a read's frames say of its requests (no pointers: see rx_frame). */
struct rx_frames {
	__u32 open;    /* h2_rx.open_stream as the walk goes */
	__u32 ended;   /* a request's client half ended in this read */
	__u32 overlap; /* a request started while another one was open, or after one ended here */
	__u32 concurrent; /* a second request's body began while the first's was still coming */
	__u32 headers;
	__u32 h_block; /* where the last HEADERS frame's payload starts in the read */
	__u32 h_len;
	__u32 h_flags;
};

struct walk_ctx {
	struct scratch *s; /* the read is in s->buf (from its start): no copy per frame header */
	__u64 ubuf;
	__u32 n;
	__u32 off;
	struct rx_frames f;
	__u32 desync;
	__u32 cut; /* the read ends after `cut` bytes (1 to 8) of a frame header, at `off` */
};

/* The payload length of a frame header's bytes 0 to 2. */
static __always_inline __u32 frame_len(__u8 b0, __u8 b1, __u8 b2)
{
	return ((__u32)b0 << 16) | ((__u32)b1 << 8) | b2;
}

/* The stream id of a frame header's bytes 5 to 8. */
static __always_inline __u32 stream_id(__u8 b5, __u8 b6, __u8 b7, __u8 b8)
{
	return ((__u32)(b5 & 0x7f) << 24) | ((__u32)b6 << 16) | ((__u32)b7 << 8) | b8;
}

/* A frame header: a global function's argument needs a sized type. */
struct frame_head {
	__u8 b[9];
};

/*
 * A frame header `fh` of the client's (its payload at `block`): counts a
 * request's HEADERS frame, and follows which request is still being sent
 * (END_STREAM on its HEADERS, DATA or trailing HEADERS frame; RST_STREAM
 * cancels it). A HEADERS frame on the open stream is its trailers, not a
 * request. A request that opens while another is still being sent overlaps
 * it; when both have bodies to come, the client sends requests at once and
 * the connection gives no context from then on (rx_h2).
 *
 * A global function, verified once: inlined, its branches multiplied the
 * states of every program that reads requests (the object took three times
 * as long to load). The verifier takes the memory it is given as scalars
 * afterwards, so it gets no struct that holds a pointer.
 */
__noinline int rx_frame(struct rx_frames *w, const struct frame_head *fh, __u32 block)
{
	const __u8 *h;
	__u32 sid, end_stream;

	if (!w || !fh)
		return 0;
	h = fh->b;
	sid = stream_id(h[5], h[6], h[7], h[8]);
	end_stream = h[4] & 0x1;

	if (h[3] == 0x1 && sid != w->open) {
		if (w->open || w->ended)
			w->overlap = 1;
		w->headers++;
		w->h_block = block;
		w->h_len = frame_len(h[0], h[1], h[2]);
		w->h_flags = h[4];
		/*
		 * The open stream stays followed until it ends; a second one
		 * that opens meanwhile cannot be followed as well.
		 */
		if (!end_stream) {
			if (w->open)
				w->concurrent = 1;
			else
				w->open = sid;
		}
	} else if (sid && sid == w->open && ((h[3] <= 0x1 && end_stream) || h[3] == 0x3)) {
		/* END_STREAM is DATA's and HEADERS' flag 0x1 (others use the bit otherwise). */
		w->open = 0;
		w->ended = 1;
	}
	return 0;
}

static long rx_walk_cb(__u64 i, void *c)
{
	struct walk_ctx *w = c;
	struct frame_head fh;
	__u8 *h = fh.b;

	if (w->off >= w->n)
		return 1;
	if (w->off + 9 > w->n) {
		w->cut = w->n - w->off;
		return 1;
	}
	if (w->s) {
#pragma unroll
		for (int k = 0; k < 9; k++)
			h[k] = B(w->s, w->off + k);
	} else if (bpf_probe_read_user(h, 9, (void *)(w->ubuf + w->off))) {
		w->desync = 1;
		return 1;
	}
	rx_frame(&w->f, &fh, w->off + 9);
	w->off += 9 + frame_len(h[0], h[1], h[2]);
	return 0;
}

struct lit_ctx {
	struct scratch *s;
	__u32 base; /* the block's bytes are s->buf[base, end) */
	__u32 end;
	__u32 v0;
	__u32 vlen;
	__u32 found;
};

/*
 * Byte `idx` from the end of the block: is it the '/' that starts the value
 * of our literal (0x00 0x10 "x-copper-context" len value), which ends the
 * block? The walk goes backwards from the end and stops at the first match,
 * so it looks at the value's bytes only, not at the whole block. No byte of
 * a value is 0x10, so a '/' inside the value cannot pass the checks.
 */
static long lit_cb(__u64 idx, void *c)
{
	struct lit_ctx *l = c;
	struct scratch *s = l->s;
	__u32 j, vlen, name, k;

	if (!s || (__u32)idx >= l->end - l->base)
		return 1;
	j = l->end - 1 - (__u32)idx;
	if (B(s, j) != '/')
		return 0;
	vlen = l->end - j;
	if (vlen < 127) {
		/* One length byte, no Huffman bit. */
		if (j < l->base + 19 || B(s, j - 1) != vlen)
			return 0;
		name = j - 17;
	} else {
		/* 127 (the prefix's all ones) and the rest. */
		if (j < l->base + 20 || B(s, j - 1) != vlen - 127 || B(s, j - 2) != 0x7f)
			return 0;
		name = j - 18;
	}
	if (B(s, name - 2) != 0x00 || B(s, name - 1) != 0x10)
		return 0;
#pragma unroll
	for (k = 0; k < HDR_LEN; k++)
		if (B(s, name + k) != (__u8)HDR_NAME[k])
			return 0;
	l->found = 1;
	l->v0 = j;
	l->vlen = vlen;
	return 1;
}

/*
 * The last read ended inside a frame header (st->have bytes of it): this
 * read's first bytes complete it, and the walk goes on after its frame.
 * Returns 1 when this read ends inside the header too (what it holds is
 * kept), 0 otherwise.
 */
static __always_inline int rx_complete_header(struct h2_rx *st, struct walk_ctx *w)
{
	__u32 have = st->have & 15, need = 9 - have, avail = w->n - w->off, flen;

	if (have > 8) {
		st->desync = 1;
		return 1;
	}
	if (avail < need) {
		if (avail && bpf_probe_read_user(&st->part[have], masked(avail, 15), (void *)(w->ubuf + w->off)))
			st->desync = 1;
		st->have = have + avail;
		return 1;
	}
	if (bpf_probe_read_user(&st->part[have], masked(need, 15), (void *)(w->ubuf + w->off))) {
		st->desync = 1;
		return 1;
	}
	st->have = 0;
	flen = frame_len(st->part[0], st->part[1], st->part[2]);
	rx_frame(&w->f, (const struct frame_head *)st->part, w->off + need);
	w->off += need + flen;
	return 0;
}

/* Searches s->buf[base, end) for our literal at its very end; fills r. */
static __always_inline void rx_find_literal(struct scratch *s, __u32 base, __u32 end, struct rx_request *r)
{
	struct lit_ctx l = {.s = s, .base = base, .end = end};

	bpf_loop(VAL_MAX + 1, lit_cb, &l, 0);
	if (!l.found || !valid_value(s, l.v0, l.vlen))
		return;
	r->v0 = l.v0;
	r->vlen = l.vlen;
	r->valid = 1;
}

/*
 * A request's HEADERS frame (END_HEADERS, not PADDED) whose block goes on
 * in later reads: keeps the block's last bytes of this read, from
 * `block0`. The request counts as read now, with no context yet (so
 * the thread sends none until the frame is complete). 0 when kept.
 */
static __always_inline int rx_h2_keep(struct scratch *s, struct h2_rx *st, __u64 conn, __u64 ubuf, __u32 n,
				      __u32 block0)
{
	struct h2_tail *t;
	__u32 keep = n - block0;

	if (bpf_map_update_elem(&h2_tails, &conn, s->buf, BPF_ANY))
		return -1;
	t = bpf_map_lookup_elem(&h2_tails, &conn);
	if (!t)
		return -1;
	if (keep > H2_TAIL)
		keep = H2_TAIL;
	if (keep && bpf_probe_read_user(t->buf, masked(keep, 511), (void *)(ubuf + n - keep)))
		return -1;
	t->keep = keep;
	st->pending = 1;
	return 0;
}

/*
 * Of the bytes kept in t (*keep of them), how many of the last stay in
 * front of `incoming` new ones, within H2_TAIL.
 */
static __always_inline __u32 tail_stays(const struct h2_tail *t, __u32 incoming, __u32 *keep)
{
	__u32 room = H2_TAIL - incoming;

	*keep = t->keep > H2_TAIL ? H2_TAIL : t->keep;
	return room > *keep ? *keep : room;
}

/*
 * A read that lies wholly inside a pending HEADERS frame: the kept bytes
 * become the last H2_TAIL of what was kept and what it read.
 */
static __always_inline void rx_h2_middle(struct scratch *s, struct h2_rx *st, __u64 conn, __u64 ubuf, __u32 n)
{
	struct h2_tail *t = bpf_map_lookup_elem(&h2_tails, &conn);
	__u32 keep, m;

	if (!t)
		goto lost;
	if (n >= H2_TAIL) {
		if (bpf_probe_read_user(t->buf, H2_TAIL, (void *)(ubuf + n - H2_TAIL)))
			goto lost;
		t->keep = H2_TAIL;
		return;
	}
	m = tail_stays(t, n, &keep);
	/* The m kept bytes that stay move to the front, through the scratch buffer. */
	if (m && (bpf_probe_read_kernel(s->buf, masked(m, 511), &t->buf[masked(keep - m, 511)]) ||
		  bpf_probe_read_kernel(t->buf, masked(m, 511), s->buf)))
		goto lost;
	if (bpf_probe_read_user(&t->buf[masked(m, 511)], masked(n, 511), (void *)ubuf))
		goto lost;
	t->keep = m + n;
	return;
lost:
	st->pending = 0;
	count(ST_RX_AMBIGUOUS);
	bpf_map_delete_elem(&h2_tails, &conn);
}

/*
 * The read in which a pending HEADERS frame ends, `e` bytes in: the block's
 * last bytes are the kept ones followed by this read's first `e`. Sets the
 * request's context from them.
 */
static __always_inline void rx_h2_finish(struct scratch *s, struct h2_rx *st, __u64 conn, __u64 ubuf, __u32 e,
					 struct rx_request *r)
{
	struct h2_tail *t = bpf_map_lookup_elem(&h2_tails, &conn);
	__u32 k = 0, keep;

	st->pending = 0;
	r->seen = 1;
	if (!t) {
		count(ST_RX_AMBIGUOUS);
		return;
	}
	if (e >= H2_TAIL) {
		if (!bpf_probe_read_user(s->buf, H2_TAIL, (void *)(ubuf + e - H2_TAIL)))
			rx_find_literal(s, 0, H2_TAIL, r);
	} else {
		k = tail_stays(t, e, &keep);
		if ((!k || !bpf_probe_read_kernel(s->buf, masked(k, 511), &t->buf[masked(keep - k, 511)])) &&
		    (!e || !bpf_probe_read_user(&s->buf[masked(k, 511)], masked(e, 511), (void *)ubuf)))
			rx_find_literal(s, 0, k + e, r);
	}
	bpf_map_delete_elem(&h2_tails, &conn);
}

/* h2c frames read on a server connection: requests are HEADERS frames. */
static __always_inline void rx_h2(struct scratch *s, struct h2_rx *st, __u64 conn, int entry, __u64 ubuf,
				  __u32 n, __u32 start, struct rx_request *r)
{
	struct walk_ctx w = {.ubuf = ubuf, .n = n, .off = start, .f = {.open = st->open_stream}};
	__u32 tail, from, block;

	if (st->desync) {
		/* Frame boundaries are lost: whatever this read holds, send nothing. */
		count(ST_RX_AMBIGUOUS);
		clear_value();
		return;
	}
	if (st->pending)
		rx_h2_finish(s, st, conn, ubuf, start, r);
	if (st->have && rx_complete_header(st, &w))
		return;
	/*
	 * A read of under SCAN bytes (a request is usually one HEADERS frame)
	 * is copied once; a copy from user memory costs about 100 ns whatever
	 * its size. Not when rx_h2_finish left a value in s->buf.
	 */
	if (!r->seen && n < SCAN && !bpf_probe_read_user(s->buf, masked(n, SCAN - 1), (void *)ubuf))
		w.s = s;
	bpf_loop(MAX_FRAMES, rx_walk_cb, &w, 0);
	/* Frame boundaries lost, or two requests' bodies at once (the client multiplexes uploads). */
	if (w.desync || (w.off < n && !w.cut) || w.f.concurrent) {
		st->desync = 1;
		count(ST_RX_AMBIGUOUS);
		clear_value();
		return;
	}
	st->skip = 0;
	st->open_stream = w.f.open;
	if (w.cut) {
		/* w.cut is 1 to 8; the mask tells the verifier so. */
		if (bpf_probe_read_user(st->part, masked(w.cut, 15), (void *)(ubuf + w.off))) {
			st->desync = 1;
			return;
		}
		st->have = w.cut;
	} else {
		st->skip = w.off - n;
	}
	if (w.f.headers == 0)
		return;
	count(ST_RX_H2_REQUEST);
	if (w.f.headers > 1 || w.f.overlap || r->seen || !(w.f.h_flags & 0x4)) {
		/* Several requests, one while another was being sent, or CONTINUATION. */
		r->seen = 1;
		r->valid = 0;
		count(ST_RX_AMBIGUOUS);
		return;
	}
	r->seen = 1;
	/* An entry point ignores the context: nothing to look for. */
	if (entry)
		return;
	if (w.f.h_block + w.f.h_len > n) {
		/* The block goes on in the next reads. */
		if ((w.f.h_flags & 0x8) || rx_h2_keep(s, st, conn, ubuf, n, w.f.h_block))
			count(ST_RX_AMBIGUOUS);
		return;
	}
	block = w.f.h_len;
	if (w.f.h_flags & 0x8) {
		/* PADDED: the header block ends before the padding. */
		__u8 pad = 0;

		if (w.s)
			pad = B(s, w.f.h_block);
		else if (bpf_probe_read_user(&pad, 1, (void *)(ubuf + w.f.h_block)))
			return;
		if (block < 1 || (__u32)pad + 1 > block)
			return;
		block -= pad;
	}
	tail = block < H2_TAIL ? block : H2_TAIL;
	from = w.f.h_block + block - tail;
	if (w.s) {
		rx_find_literal(s, from, from + tail, r);
		return;
	}
	if (bpf_probe_read_user(s->buf, masked(tail, SCAN - 1), (void *)(ubuf + from)))
		return;
	rx_find_literal(s, 0, tail, r);
}

/*
 * A socket's cookie: read from the socket, where the kernel keeps it once
 * anything asked for it (a helper call costs more on some CPUs than the
 * rest of a short path), else made by the helper.
 */
static __always_inline __u64 cookie_of(struct sock *sk)
{
	__u64 c = sk->__sk_common.skc_cookie.counter;

	return c ? c : bpf_get_socket_cookie(sk);
}

/*
 * What the socket receive hook knows of a read before it looks at the
 * task's registers: a connection the service opened brings responses,
 * which are passed before the service is looked up, and a read by a task
 * of no followed service goes no further either (most reads of a node are
 * one of the two). A socket that has no state, most of them, costs a
 * pointer read here. 0: pass the read.
 */
static __always_inline int followed_read(struct sock *sk, struct conn_state **cs,
					 const struct copper_config **cfg)
{
	*cs = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (*cs && (*cs)->responses)
		return 0;
	*cfg = current_service();
	return *cfg != NULL;
}

#define COPPER_MSG_DONTWAIT 0x40
#define COPPER_O_NONBLOCK 04000

/*
 * Whether the read `id` (registers `r`) was made without waiting: with
 * MSG_DONTWAIT, or on a file opened or set O_NONBLOCK. The socket receive
 * hook is given this by the kernel (it adds MSG_DONTWAIT to the flags of
 * a read of a non-blocking socket); the syscall hooks look at the flags and
 * at the read's file `f` (see file_of_fd). Only a read that brought a
 * request asks, so the walk to the file is paid per request. A file that
 * cannot be read counts as non-blocking: no context rather than a wrong
 * one.
 */
static __always_inline int read_nonblocking(long id, struct pt_regs *r, struct file *f)
{
	unsigned int f_flags = 0;

	if ((id == NR_RECVFROM && (ARG4(r) & COPPER_MSG_DONTWAIT)) ||
	    (id == NR_RECVMSG && (ARG3(r) & COPPER_MSG_DONTWAIT)))
		return 1;
	if (!f || bpf_core_read(&f_flags, sizeof(f_flags), &f->f_flags))
		return 1;
	return (f_flags & COPPER_O_NONBLOCK) != 0;
}

/*
 * The end of a read (`id` is NR_READ, NR_RECVFROM or NR_RECVMSG) that
 * returned `ret`, by a task of the service `cfg`; its arguments are read
 * from the task's saved user registers `r`. At the socket hook, `sk` and
 * its state `cs` (see followed_read); NULL at the syscall hooks.
 */
static __always_inline int on_exit(long id, long ret, struct pt_regs *r, struct sock *sk, struct conn_state *cs,
				   const struct copper_config *cfg, int nonblocking)
{
	struct pending_read p = {};
	struct scratch *s;
	struct rx_request req = {};
	struct h2_rx *st;
	__u32 n = 0, nl, total, from, first, written = 0;
	struct file *f = NULL;
	int known = 0;
	__u64 conn;

	if (ret <= 0 || !r || !cfg)
		return 0;
	if (sk) {
		st = cs && cs->h2_server ? &cs->rx : NULL;
		conn = cookie_of(sk);
	} else {
		conn = conn_of_fd(bpf_get_current_pid_tgid(), (__u32)EXIT_ARG1(r));
		st = bpf_map_lookup_elem(&h2_rx_fds, &conn);
	}
	if (!conn)
		return 0;
	if (id == NR_RECVMSG) {
		struct user_msghdr mh = {};
		struct iovec iov = {};

		if (bpf_probe_read_user(&mh, sizeof(mh), (void *)ARG2(r)) || !mh.msg_iov ||
		    mh.msg_iovlen < 1)
			return 0;
		if (bpf_probe_read_user(&iov, sizeof(iov), mh.msg_iov))
			return 0;
		p.buf = (__u64)iov.iov_base;
		p.cap = iov.iov_len;
	} else {
		p.buf = ARG2(r);
		p.cap = ARG3(r);
	}
	if (!p.buf)
		return 0;
	if ((__u64)ret < p.cap)
		p.cap = ret;
	s = get_scratch();
	if (!s)
		return 0;
	total = p.cap > 0x7fffffff ? 0x7fffffff : (__u32)p.cap;
	if (st) {
		/*
		 * A new connection on a reused fd whose close went unseen (the
		 * syscall hooks; a socket's storage is its own).
		 */
		if (!sk && total >= PREFACE_LEN && !bpf_probe_read_user(s->buf, PREFACE_LEN, (void *)p.buf) &&
		    is_preface(s, PREFACE_LEN)) {
			rx_h2_start(st);
			from = PREFACE_LEN;
		} else if (st->skip > total || (st->skip == total && !st->pending)) {
			/* Inside one frame (a pending one that ends here is finished below). */
			if (st->pending)
				rx_h2_middle(s, st, conn, p.buf, total);
			st->skip -= total;
			return 0;
		} else {
			from = st->skip;
		}
	} else {
		n = p.cap < SCAN ? (__u32)p.cap : SCAN;
		/*
		 * Its first bytes tell a request (most reads are not) before the
		 * rest is read; a copy from user memory costs about 100 ns
		 * whatever its size, and these usually hold the request line and
		 * the context line too.
		 */
		first = masked(n < HEAD_PEEK ? n : HEAD_PEEK, 2 * HEAD_PEEK - 1);
		if (bpf_probe_read_user(s->buf, first, (void *)p.buf))
			return 0;
		if (is_preface(s, n)) {
			struct h2_rx fresh = {};

			if (sk) {
				cs = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
				if (cs) {
					cs->h2_server = 1;
					rx_h2_start(&cs->rx);
				}
				st = cs ? &cs->rx : NULL;
			} else {
				bpf_map_update_elem(&h2_rx_fds, &conn, &fresh, BPF_ANY);
				st = bpf_map_lookup_elem(&h2_rx_fds, &conn);
			}
			if (!st)
				return 0;
			from = PREFACE_LEN;
		} else {
			if (!method_len(s, n))
				return 0;
			/*
			 * An entry point ignores the context of a request from
			 * outside, so the request line is all it reads: no search of
			 * the head for a header that a client seldom sends (a
			 * browser's head is often longer than a kilobyte).
			 */
			nl = (cfg->flags & SVC_ENTRYPOINT) ? find_byte(s, first, '\n') : ~0U;
			if (nl == ~0U) {
				if (n > first && bpf_probe_read_user(&s->buf[first], masked(n - first, SCAN - 1),
								     (void *)(p.buf + first)))
					return 0;
				nl = find_byte(s, n, '\n');
			}
			if (nl == ~0U || !is_request_line(s, n, nl))
				return 0;
			if (cfg->flags & SVC_ENTRYPOINT) {
				req.seen = 1;
				count(ST_RX_H1_REQUEST);
			} else
				rx_h1(s, n, nl, &req);
		}
	}
	if (st)
		rx_h2(s, st, conn, cfg->flags & SVC_ENTRYPOINT, p.buf, total, from, &req);
	if (!req.seen)
		return 0;
	if (req.valid)
		count(ST_RX_CONTEXT);
	/* The syscall hooks' file, walked to once for both questions below. */
	if (!sk && !(cfg->flags & SVC_ENTRYPOINT))
		f = file_of_fd((__u32)EXIT_ARG1(r));
	if (nonblocking < 0)
		nonblocking = (cfg->flags & (SVC_ENTRYPOINT | SVC_ONE_REQUEST_PER_THREAD)) ? 0 : read_nonblocking(id, r, f);
	if (!(cfg->flags & SVC_ENTRYPOINT))
		known = sk ? written_on(sk, &written) : written_on_file(f, &written);
	start_request(cfg, conn, !st, known, written, s, req.v0, req.vlen, req.valid, nonblocking);
	/*
	 * Only a value can be wrong: a request without one gives its thread
	 * none. Only at the socket hook (`sk`): the syscall hooks' programs,
	 * the fallback for kernels before Linux 6.4, leave the check out, so
	 * that they hold no call of a global function: on Linux 6.1 a receive
	 * program that held these took the verifier about eleven times as far
	 * (610,000 instructions of the million it allows, against 55,000),
	 * even with their call turned off by a read-only switch.
	 */
	if (sk && req.alone_from && !h1_alone(req.nl, req.alone_from, n, p.buf, total))
		drop_value();
	return 0;
}

/* The end of a read seen by a syscall hook: the service first, the registers only for a followed task. */
static __always_inline int exit_traced(long id, long ret)
{
	const struct copper_config *cfg;

	if (ret <= 0)
		return 0;
	cfg = current_service();
	if (!cfg)
		return 0;
	return on_exit(id, ret, (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()), NULL, NULL, cfg, -1);
}

SEC("tracepoint/syscalls/sys_enter_close")
int copper_enter_close(struct trace_event_raw_sys_enter *c)
{
	return on_close(c->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_read")
int copper_exit_read(struct trace_event_raw_sys_exit *c)
{
	return exit_traced(NR_READ, c->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int copper_exit_recvfrom(struct trace_event_raw_sys_exit *c)
{
	return exit_traced(NR_RECVFROM, c->ret);
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int copper_exit_recvmsg(struct trace_event_raw_sys_exit *c)
{
	return exit_traced(NR_RECVMSG, c->ret);
}

/*
 * The current thread is done with the connection `sk` (it closed it, or
 * read its end): it is no longer tied to it, so that its next connection
 * does not mark it `mux`, as a thread of a pool or of a server that serves
 * connections one after the other would otherwise be. If nothing was
 * written on it since the thread read its request there, that request may
 * still be being handled (a thread that polls several connections reads
 * an end whenever it comes): the next request the thread reads then gives
 * no value (see start_request). The syscall hooks see close(2) instead
 * (on_close).
 */
static __always_inline int on_conn_end(const struct sock *sk)
{
	struct thread_state *ts;

	if (!sk || !current_service())
		return 0;
	ts = this_thread(0);
	if (ts && ts->last_conn != NO_CONN && ts->last_conn == cookie_of((struct sock *)sk)) {
		__u32 written;

		if (ts->answer_due && written_on((struct sock *)sk, &written) && written == ts->written)
			ts->left_unanswered = 1;
		ts->last_conn = NO_CONN;
	}
	return 0;
}

/*
 * At the socket: every receive on a socket of the machine, after the data
 * reached the caller's buffer (inside read/recvfrom/recvmsg). The read's
 * arguments are in the task's saved user registers, and the socket's
 * cookie names the connection for its whole life; its end is seen here
 * (a read of the peer's end) and by copper_sock_state (a close by the
 * thread). No syscall is traced: other syscalls cost nothing.
 */
#define COPPER_MSG_PEEK 2
#define COPPER_ECONNRESET 104

#if COPPER_SPIN_NS
static long spin_cb(__u64 i, void *end)
{
	return bpf_ktime_get_ns() >= *(__u64 *)end;
}

static __always_inline void spin(void)
{
	__u64 end = bpf_ktime_get_ns() + COPPER_SPIN_NS;

	bpf_loop(1 << 20, spin_cb, &end, 0);
}
#endif

SEC("tp_btf/sock_recv_length")
int BPF_PROG(copper_sock_recv, struct sock *sk, int ret, int flags)
{
	const struct copper_config *cfg = NULL;
	struct conn_state *cs = NULL;
	struct pt_regs *regs;
	long id;

#if COPPER_SPIN_NS
	if (!(flags & COPPER_MSG_PEEK) && sk && ret > 0 && current_service())
		spin();
#endif
	if (COPPER_FLOOR || (flags & COPPER_MSG_PEEK) || !sk)
		return 0;
	if (ret == 0 || ret == -COPPER_ECONNRESET)
		return on_conn_end(sk);
	if (ret < 0 || !followed_read(sk, &cs, &cfg))
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return 0;
	id = SYSNO(regs);
	if (id != NR_READ && id != NR_RECVFROM && id != NR_RECVMSG)
		return 0;
	return on_exit(id, ret, regs, sk, cs, cfg, !!(flags & COPPER_MSG_DONTWAIT));
}

/*
 * A TCP connection of the machine changes state. One that leaves
 * ESTABLISHED other than for CLOSE_WAIT, or leaves CLOSE_WAIT, was closed
 * (or shut down) at this end, in the task that did it: a thread that closes
 * the connection it read requests from is untied from it here. (ESTABLISHED
 * to CLOSE_WAIT is the peer's close, seen wherever its segment is
 * processed; a thread that goes on reading then reads the end, which
 * unties it in copper_sock_recv.) The tracepoint runs on every state change
 * of every connection, so the states are tested before anything is looked
 * up. fentry on tcp_close would run once per close, but some kernels refuse
 * fentry programs where they load tracepoint ones.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(copper_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (COPPER_FLOOR)
		return 0;
	if (!(oldstate == TCP_ESTABLISHED && newstate != TCP_CLOSE_WAIT) && oldstate != TCP_CLOSE_WAIT)
		return 0;
	return on_conn_end(sk);
}

/* Without tracefs: every syscall; the others return at once. */
SEC("tp_btf/sys_enter")
int BPF_PROG(copper_sys_enter, struct pt_regs *regs, long id)
{
	if (id != NR_CLOSE)
		return 0;
	return on_close(ARG1(regs));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(copper_sys_exit, struct pt_regs *regs, long ret)
{
	long id = SYSNO(regs);

	/* Before any map lookup: this runs for every syscall on the machine. */
	if (id != NR_READ && id != NR_RECVFROM && id != NR_RECVMSG)
		return 0;
	if (ret <= 0)
		return 0;
	return on_exit(id, ret, regs, NULL, NULL, current_service(), -1);
}

/* ---- send side ---- */

/* Steps up the cgroup tree from a socket's cgroup to its followed ancestor's. */
#define SK_CGROUP_WALK 16

/*
 * Whether the service that opened `sk` excludes `port` itself. sockops runs
 * this in softirq, where the current task is not the one that connected,
 * and may not call the helpers that name a socket's cgroup: the socket's
 * own cgroup (set when it was created) is read from the socket, and its
 * ancestors at the depths where cgroups are followed (`levels`, deepest
 * first) are looked up in `services`, as find_service does for a task.
 */
static __always_inline int service_skips(struct bpf_sock *sk, __u32 port)
{
	struct service_port_key key = {.word = port >> 5};
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct cgroup *c;
	__u32 i, j, *bits;

	if (!tp)
		return 0;
	c = tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
	for (i = 0; i < MAX_LEVELS; i++) {
		__u32 k = i;
		__u32 *lv = bpf_map_lookup_elem(&levels, &k);

		if (!lv || *lv == 0 || !c)
			return 0;
		for (j = 0; j < SK_CGROUP_WALK && c && (__u32)c->level > *lv; j++)
			c = c->self.parent ? c->self.parent->cgroup : NULL;
		if (!c || (__u32)c->level != *lv)
			continue;
		key.cgroup = c->kn->id;
		if (!bpf_map_lookup_elem(&services, &key.cgroup))
			continue;
		bits = bpf_map_lookup_elem(&service_ports, &key);
		return bits && (*bits & (1U << (port & 31)));
	}
	return 0;
}

SEC("sockops")
int copper_sockops(struct bpf_sock_ops *skops)
{
	struct conn_state *st;
	struct bpf_sock *sk;
	__u32 port;
	__u64 key;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	/* remote_port: the port in network order, in the field's upper half on a little-endian CPU. */
	port = bpf_ntohl(skops->remote_port) & 0xffff;
	sk = skops->sk;
	if ((skip_ports[masked(port >> 5, SKIP_PORT_WORDS - 1)] & (1U << (port & 31))) ||
	    (service_ports_on && sk && service_skips(sk, port))) {
		/*
		 * What the service reads there are responses, as on a connection
		 * that sk_msg marks: the socket receive hook then passes each read
		 * after one storage look-up, not after the service's look-up and
		 * a copy of the data.
		 */
		if (sk) {
			st = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
			if (st)
				st->responses = 1;
		}
		count(ST_TX_EXCLUDED);
		return 1;
	}
	key = bpf_get_socket_cookie(skops);
	bpf_sock_hash_update(skops, &socks, &key, BPF_ANY);
	return 1;
}

/* Builds the bytes to insert into s->out; returns their length or 0. */
static __always_inline __u32 build_insert(struct scratch *s, struct thread_state *tv, int h2)
{
	__u32 vlen = tv->len, hdr = 0, i;

	if (vlen == 0 || vlen > VAL_MAX)
		return 0;
	if (h2) {
		s->out[0] = 0x00;
		s->out[1] = 0x10;
#pragma unroll
		for (i = 0; i < HDR_LEN; i++)
			s->out[2 + i] = HDR_NAME[i];
		if (vlen < 127) {
			s->out[18] = vlen;
			hdr = 19;
		} else {
			s->out[18] = 127;
			s->out[19] = vlen - 127;
			hdr = 20;
		}
		COPY_VALUE(&s->out[masked(hdr, 31)], tv->val, vlen);
		return hdr + vlen;
	}
#pragma unroll
	for (i = 0; i < HDR_LEN; i++)
		s->out[i] = HDR_NAME[i];
	s->out[16] = ':';
	s->out[17] = ' ';
	COPY_VALUE(&s->out[18], tv->val, vlen);
	s->out[masked(18 + vlen, OUT_BUF - 1)] = '\r';
	s->out[masked(19 + vlen, OUT_BUF - 1)] = '\n';
	return vlen + 20;
}

/*
 * Writes src[0, len) over the message's data (what msg->data points at):
 * 8 bytes per step (few verifier states), then the rest one by one; `max`
 * and `mask` (constants) bound the copy for the verifier. 0 on success.
 */
static __always_inline int write_data(struct sk_msg_md *msg, const __u8 *src, __u32 len, const __u32 max,
				      const __u32 mask)
{
	__u8 *d = (__u8 *)(long)msg->data, *e = (__u8 *)(long)msg->data_end;
	__u32 i, k;

	for (i = 0; i + 8 <= max; i += 8) {
		if (i + 8 > len)
			break;
		if (d + i + 8 > e)
			return -1;
		__builtin_memcpy(d + i, &src[i], 8);
	}
	for (k = 0; k < 7; k++) {
		if (i + k >= len)
			break;
		if (i + k >= max || d + i + k + 1 > e)
			return -1;
		d[i + k] = src[(i + k) & mask];
	}
	return 0;
}

/* Inserts s->out[0, len) at byte `at` of the message; 0 on success. */
static __always_inline int insert(struct sk_msg_md *msg, struct scratch *s, __u32 at, __u32 len)
{
	if (len == 0 || len > OUT_MAX)
		return -1;
	if (bpf_msg_push_data(msg, at, len, 0))
		return -1;
	if (bpf_msg_pull_data(msg, at, at + len, 0) || write_data(msg, s->out, len, OUT_MAX, OUT_BUF - 1))
		goto undo;
	return 0;
undo:
	bpf_msg_pop_data(msg, at, len, 0);
	return -1;
}

/*
 * After an insertion the message is several pieces, which TCP may send as
 * several segments, so that the peer could read the request head in parts.
 * Its first LINEARIZE_MAX bytes are made one piece again.
 */
#define LINEARIZE_MAX 16384

static __always_inline void linearize(struct sk_msg_md *msg)
{
	__u32 size = msg->size;

	if (size > LINEARIZE_MAX)
		size = LINEARIZE_MAX;
	if (size > 0)
		bpf_msg_pull_data(msg, 0, size, 0);
}

__noinline int replace_message(struct sk_msg_md *msg, __u32 n, __u32 total);

/*
 * Writes s->buf[from, from + cnt) (or s->out[0, cnt) if `out`) at byte `pos`
 * of the message's data, 8 bytes a step, and byte by byte only within 8
 * bytes of its end: a step may write up to 7 bytes past pos + cnt, which the
 * copy of what follows there overwrites. 0 on success.
 */
static __always_inline int put_bytes(struct sk_msg_md *msg, struct scratch *s, __u32 pos, __u32 from, __u32 cnt,
				     int out)
{
	const __u8 *src;
	__u8 *d, *e, *p;
	__u32 i, k;

	if (pos > MSG_MAX || from >= SCAN || cnt > SCAN)
		return -1;
	src = out ? s->out : &s->buf[masked(from, SCAN - 1)];
	pos = masked(pos, 2 * SCAN - 1);
	d = (__u8 *)(long)msg->data;
	e = (__u8 *)(long)msg->data_end;
	for (i = 0; i < SCAN; i += 8) {
		if (i >= cnt)
			return 0;
		p = d + pos + i;
		if (p + 8 > e)
			break;
		/* One 8-byte load and store (memcpy would go byte by byte, the alignment being unknown). */
		*(__u64 *)p = *(const __u64 *)&src[i & (SCAN - 1)];
	}
	for (k = 0; k < 7; k++) {
		if (i + k >= cnt)
			return 0;
		p = d + pos + i + k;
		if (p + 1 > e)
			return -1;
		*p = src[(i + k) & (SCAN - 1)];
	}
	return i + k >= cnt ? 0 : -1;
}

/*
 * Writes the rebuilt message into its new piece: s->buf[0, at), the value's
 * line s->out[0, len), then s->buf[at, n), in this order, since each copy
 * overwrites what the one before wrote past its end. 0 on success. A global
 * function: the verifier walks it once (inlined, each of its exits, with a
 * different known packet range, would be a state of its own), and one call
 * costs less than a call per copy.
 */
__noinline int put_message(struct sk_msg_md *msg, __u32 at, __u32 len, __u32 n)
{
	struct scratch *s = get_scratch();

	if (!s || !msg)
		return -1;
	if (put_bytes(msg, s, 0, 0, at, 0) || put_bytes(msg, s, at, 0, len, 1))
		return -1;
	return n > at ? put_bytes(msg, s, at + len, at, n - at, 0) : 0;
}

/*
 * The whole message is s->buf[0, n): it is rebuilt with the value's line
 * (s->out[0, len)) at byte `at`, into one new piece that replaces it. That
 * takes one page allocation, where an insertion in the middle takes two:
 * the inserted piece, then one piece again of the three (see linearize).
 * The new piece is written straight from s->buf and s->out. 0 on success;
 * the message is unchanged otherwise.
 */
static __always_inline int rebuild(struct sk_msg_md *msg, __u32 n, __u32 at, __u32 len)
{
	if (at == 0 || at >= SCAN || at > n || n > SCAN || len == 0 || len > OUT_MAX)
		return -1;
	/* A new first piece: the push at an offset where a piece starts splits nothing. */
	if (bpf_msg_push_data(msg, 0, n + len, 0))
		return -1;
	if (put_message(msg, at, len, n))
		goto undo;
	/* The old piece goes: it starts where the new one ends, so nothing is copied. */
	if (bpf_msg_pop_data(msg, n + len, n, 0))
		goto undo;
	return 0;
undo:
	bpf_msg_pop_data(msg, 0, n + len, 0);
	return -1;
}

/*
 * Replaces the message (n bytes, one or more pieces) by the scratch buffer's
 * msg[0, total): 0 on success; the message is unchanged otherwise. A global
 * function, so that the verifier walks its copy loop once, not at each call.
 */
__noinline int replace_message(struct sk_msg_md *msg, __u32 n, __u32 total)
{
	struct scratch *s = get_scratch();

	if (!s || total > MSG_MAX || total <= n)
		return -1;
	/* A new first piece: the push at an offset where a piece starts splits nothing. */
	if (bpf_msg_push_data(msg, 0, total, 0))
		return -1;
	if (write_data(msg, s->msg, total, MSG_MAX, MSG_BUF - 1))
		goto undo;
	/* The old piece goes: it starts where the new one ends, so nothing is copied. */
	if (bpf_msg_pop_data(msg, total, n, 0))
		goto undo;
	return 0;
undo:
	bpf_msg_pop_data(msg, 0, total, 0);
	return -1;
}

static __always_inline void tx_h1(struct sk_msg_md *msg, struct scratch *s, __u32 n)
{
	struct thread_state *tv;
	__u32 nl, len;

	if (!method_len(s, n))
		return;
	nl = find_byte(s, n, '\n');
	if (nl == ~0U || !is_request_line(s, n, nl))
		return;
	tv = thread_value();
	if (!tv) {
		count(ST_TX_NO_CONTEXT);
		return;
	}
	len = build_insert(s, tv, 0);
	if (!len) {
		count(ST_TX_SKIPPED);
		return;
	}
	if (n == msg->size && !rebuild(msg, n, nl + 1, len)) {
		count(ST_TX_H1_INSERTED);
		return;
	}
	if (insert(msg, s, nl + 1, len)) {
		count(ST_TX_ERROR);
		return;
	}
	count(ST_TX_H1_INSERTED);
	linearize(msg);
}

/* Rewrites the 24-bit length of the frame at `off`; 0 on success. */
static __always_inline int set_frame_len(struct sk_msg_md *msg, __u32 off, __u32 flen)
{
	__u8 *d, *e;

	if (bpf_msg_pull_data(msg, off, off + 3, 0))
		return -1;
	d = (__u8 *)(long)msg->data;
	e = (__u8 *)(long)msg->data_end;
	if (d + 3 > e)
		return -1;
	d[0] = flen >> 16;
	d[1] = flen >> 8;
	d[2] = flen;
	return 0;
}

/*
 * A HEADERS frame at `off` (payload `flen` bytes, ending at `end` <= size):
 * appends s->out[0, len) to its header block, before any padding, and fixes
 * its length. Returns the number of bytes added (0 or len).
 */
static __always_inline __u32 tx_h2_headers(struct sk_msg_md *msg, struct scratch *s, __u32 off,
					   __u32 flen, __u32 flags, __u32 len)
{
	__u32 pad = 0, at;
	__u8 *d, *e;

	/* CONTINUATION follows: the block does not end in this frame. */
	if (!(flags & 0x4) || flen + len > H2_MAX_FRAME) {
		count(ST_TX_SKIPPED);
		return 0;
	}
	if (flags & 0x8) {
		/* PADDED: the first payload byte is the padding length. */
		if (flen < 1 || bpf_msg_pull_data(msg, off + 9, off + 10, 0)) {
			count(ST_TX_SKIPPED);
			return 0;
		}
		d = (__u8 *)(long)msg->data;
		e = (__u8 *)(long)msg->data_end;
		if (d + 1 > e) {
			count(ST_TX_SKIPPED);
			return 0;
		}
		pad = d[0];
		if (pad + 1 > flen) {
			count(ST_TX_SKIPPED);
			return 0;
		}
	}
	at = off + 9 + flen - pad;
	if (insert(msg, s, at, len)) {
		count(ST_TX_ERROR);
		return 0;
	}
	if (set_frame_len(msg, off, flen + len)) {
		bpf_msg_pop_data(msg, at, len, 0);
		count(ST_TX_ERROR);
		return 0;
	}
	count(ST_TX_H2_INSERTED);
	return len;
}

struct tx_walk {
	__u32 off;
	__u32 size;
	__u32 len;    /* bytes to insert, 0: none */
	__u32 has_tv; /* the thread holds a value */
	__u32 desync;
	__u32 last_stream; /* conn_state.tx_last_stream */
	__u32 cut;    /* the message ends after `cut` bytes (1 to 8) of a frame header, */
	__u8 part[8]; /* which are these */
};

/*
 * One frame of tx_h2's walk: 1 when the walk stops. A global function,
 * verified once: as the bpf_loop callback's body the verifier followed
 * every value of the walk's state (three quarters of the sk_msg program's
 * verification, 315,000 of its 417,000 instructions, and twice that once
 * the walk also carried the last stream id).
 */
__noinline int tx_walk_frame(struct sk_msg_md *msg, struct tx_walk *w)
{
	struct scratch *s;
	__u32 off, flen, flags, end, added, sid;
	__u8 *d, *e, type;

	if (!msg || !w)
		return 1;
	off = w->off;
	if (off >= w->size)
		return 1;
	if (off + 9 > w->size) {
		/* A frame header that the next message completes: its first bytes. */
		if (bpf_msg_pull_data(msg, off, w->size, 0)) {
			w->desync = 1;
			return 1;
		}
		d = (__u8 *)(long)msg->data;
		e = (__u8 *)(long)msg->data_end;
		for (flen = 0; flen < 8 && off + flen < w->size; flen++) {
			if (d + flen + 1 > e) {
				w->desync = 1;
				return 1;
			}
			w->part[flen] = d[flen];
		}
		w->cut = w->size - off;
		w->off = w->size;
		return 1;
	}
	if (bpf_msg_pull_data(msg, off, off + 9, 0)) {
		w->desync = 1;
		return 1;
	}
	d = (__u8 *)(long)msg->data;
	e = (__u8 *)(long)msg->data_end;
	if (d + 9 > e) {
		w->desync = 1;
		return 1;
	}
	flen = frame_len(d[0], d[1], d[2]);
	type = d[3];
	flags = d[4];
	end = off + 9 + flen;
	sid = stream_id(d[5], d[6], d[7], d[8]);
	/* A HEADERS frame on a stream opened before is its trailers: as it is. */
	if (type == 0x1 && sid > w->last_stream) {
		w->last_stream = sid;
		s = get_scratch();
		if (!w->has_tv) {
			count(ST_TX_NO_CONTEXT);
		} else if (!s || !w->len || end > w->size) {
			/* No value to send, or the block ends in a later message. */
			count(ST_TX_SKIPPED);
		} else {
			added = tx_h2_headers(msg, s, off, flen, flags, w->len);
			end += added;
			w->size += added;
		}
	}
	w->off = end;
	return 0;
}

struct tx_walk_loop {
	struct sk_msg_md *msg;
	struct tx_walk w;
};

static long tx_walk_cb(__u64 i, void *c)
{
	struct tx_walk_loop *l = c;

	return tx_walk_frame(l->msg, &l->w) ? 1 : 0;
}

/*
 * The h2 frames of a message that is whole in s->buf, copied to s->msg with
 * the literal s->out[0, len) appended to each complete HEADERS block. The
 * counters are kept here and counted only when the rebuilt message goes out.
 */
struct h2_build {
	__u32 in;  /* the next frame header in s->buf */
	__u32 n;   /* bytes of the message */
	__u32 out; /* bytes written to s->msg */
	__u32 len; /* bytes of the literal, 0: none */
	__u32 has_tv;
	__u32 last_stream; /* conn_state.tx_last_stream */
	__u32 fail; /* a frame header cut by the message's end, too many frames, no room */
	__u32 inserted;
	__u32 skipped;
	__u32 no_context;
};

/* s->buf[from, from + cnt) to the end of s->msg; 0 on success. */
static __always_inline int h2_put(struct h2_build *b, struct scratch *s, __u32 from, __u32 cnt)
{
	if (cnt == 0)
		return 0;
	if (from >= SCAN || cnt >= SCAN || b->out + cnt > MSG_MAX)
		return -1;
	if (bpf_probe_read_kernel(&s->msg[masked(b->out, 2 * SCAN - 1)], masked(cnt, SCAN - 1),
				  &s->buf[masked(from, SCAN - 1)]))
		return -1;
	b->out += cnt;
	return 0;
}

/*
 * One frame: 1 when the walk stops. A global function, verified once: as a
 * bpf_loop callback body the verifier would follow every value of the
 * walk's state.
 */
__noinline int h2_frame(struct h2_build *b)
{
	struct scratch *s = get_scratch();
	__u32 at, flen, flags, end, pad = 0, block, o, sid;

	if (!b)
		return 1;
	if (!s) {
		b->fail = 1;
		return 1;
	}
	at = b->in;
	if (at >= b->n)
		return 1;
	if (at + 9 > b->n || at + 9 >= SCAN) {
		b->fail = 1;
		return 1;
	}
	flen = frame_len(B(s, at), B(s, at + 1), B(s, at + 2));
	flags = B(s, at + 4);
	end = at + 9 + flen;
	sid = stream_id(B(s, at + 5), B(s, at + 6), B(s, at + 7), B(s, at + 8));
	/* A HEADERS frame on a stream opened before is its trailers: as it is. */
	if (B(s, at + 3) == 0x1 && sid > b->last_stream) {
		b->last_stream = sid;
		if (!b->has_tv) {
			b->no_context++;
		} else if (!b->len || end > b->n || !(flags & 0x4) || flen + b->len > H2_MAX_FRAME) {
			/* No value, a block that ends in a later message or frame, or no room. */
			b->skipped++;
		} else if ((flags & 0x8) && (flen < 1 || (pad = B(s, at + 9)) + 1 > flen)) {
			/* PADDED: the first payload byte is the padding length. */
			b->skipped++;
		} else {
			/* The frame up to its padding, the literal, then the padding. */
			block = 9 + flen - pad;
			o = b->out;
			if (h2_put(b, s, at, block) || b->out + b->len + pad > MSG_MAX) {
				b->fail = 1;
				return 1;
			}
			s->msg[masked(o, MSG_BUF - 1)] = (flen + b->len) >> 16;
			s->msg[masked(o + 1, MSG_BUF - 1)] = (flen + b->len) >> 8;
			s->msg[masked(o + 2, MSG_BUF - 1)] = flen + b->len;
			bpf_probe_read_kernel(&s->msg[masked(b->out, 2 * SCAN - 1)], masked(b->len, OUT_BUF - 1),
					      s->out);
			b->out += b->len;
			if (h2_put(b, s, at + block, pad)) {
				b->fail = 1;
				return 1;
			}
			b->inserted++;
			b->in = end;
			return 0;
		}
	}
	/* As it is; a frame that runs on into a later message up to the end of this one. */
	if (h2_put(b, s, at, (end < b->n ? end : b->n) - at)) {
		b->fail = 1;
		return 1;
	}
	b->in = end;
	return 0;
}

static long h2_build_cb(__u64 i, void *c)
{
	return h2_frame(c) ? 1 : 0;
}

/* Writes `flen` as the length of the frame header at s->buf[off]. */
static __always_inline void buf_frame_len(struct scratch *s, __u32 off, __u32 flen)
{
	s->buf[masked(off, SCAN - 1)] = flen >> 16;
	s->buf[masked(off + 1, SCAN - 1)] = flen >> 8;
	s->buf[masked(off + 2, SCAN - 1)] = flen;
}

/*
 * The common message of an h2c client: one request's HEADERS frame alone,
 * whole, not PADDED, at the message's end. Its literal goes at the end, so
 * the message is rebuilt straight from s->buf and s->out (see rebuild), its
 * frame length fixed in s->buf first: no walk and no copy through s->msg.
 * 0 when done (st updated); -1 for any other message, unchanged.
 */
static __always_inline int tx_h2_one_request(struct sk_msg_md *msg, struct scratch *s, struct conn_state *st,
					     __u32 size, __u32 off, __u32 len)
{
	__u32 flen, sid;

	if (!len || off + 9 > size || size >= SCAN || B(s, off + 3) != 0x1 || (B(s, off + 4) & 0xc) != 0x4)
		return -1;
	flen = frame_len(B(s, off), B(s, off + 1), B(s, off + 2));
	sid = stream_id(B(s, off + 5), B(s, off + 6), B(s, off + 7), B(s, off + 8));
	if (off + 9 + flen != size || sid <= st->tx_last_stream || flen + len > H2_MAX_FRAME)
		return -1;
	buf_frame_len(s, off, flen + len);
	if (rebuild(msg, size, size, len)) {
		/* s->buf as it was: the walk below may still take the message. */
		buf_frame_len(s, off, flen);
		return -1;
	}
	count(ST_TX_H2_INSERTED);
	st->tx_skip = 0;
	st->tx_last_stream = sid;
	return 0;
}

/*
 * tx_h2 for a message of under SCAN bytes, all in s->buf: rebuilt whole into
 * one new piece (see rebuild). 0 when done (st updated); the message is
 * unchanged otherwise, and tx_h2 takes the message piece by piece.
 */
static __always_inline int tx_h2_whole(struct sk_msg_md *msg, struct scratch *s, struct conn_state *st,
				       __u32 size, __u32 off, __u32 has_tv, __u32 len)
{
	struct h2_build b = {.in = off, .n = size, .len = len, .has_tv = has_tv, .last_stream = st->tx_last_stream};

	if (size >= SCAN || off > size)
		return -1;
	if (!tx_h2_one_request(msg, s, st, size, off, len))
		return 0;
	if (h2_put(&b, s, 0, off))
		return -1;
	bpf_loop(MAX_FRAMES, h2_build_cb, &b, 0);
	if (b.fail || b.in < size)
		return -1;
	if (b.inserted && replace_message(msg, size, b.out))
		return -1;
	count_n(ST_TX_H2_INSERTED, b.inserted);
	count_n(ST_TX_SKIPPED, b.skipped);
	count_n(ST_TX_NO_CONTEXT, b.no_context);
	st->tx_skip = b.in - size;
	st->tx_last_stream = b.last_stream;
	return 0;
}

/*
 * The last message ended inside a frame header: this one's first bytes (in
 * s->buf) complete it. A HEADERS frame so cut gets no literal, since its
 * length went out already. Sets *off after the frame; 1 when nothing of
 * this message is left to walk.
 */
static __always_inline int tx_complete_header(struct scratch *s, struct conn_state *st, __u32 size, __u32 *off)
{
	__u32 have = st->tx_have & 15, need = 9 - have, flen, end, sid;

	if (have > 8) {
		st->tx_proto = P_DESYNC;
		count(ST_TX_DESYNC);
		return 1;
	}
	if (size < need) {
		/* This message ends inside the header too (s->buf holds it all). */
		if (bpf_probe_read_kernel(&st->tx_part[have], masked(size, 7), s->buf))
			goto lost;
		st->tx_have = have + size;
		return 1;
	}
	if (bpf_probe_read_kernel(&st->tx_part[have], masked(need, 15), s->buf))
		goto lost;
	st->tx_have = 0;
	flen = frame_len(st->tx_part[0], st->tx_part[1], st->tx_part[2]);
	sid = stream_id(st->tx_part[5], st->tx_part[6], st->tx_part[7], st->tx_part[8]);
	if (st->tx_part[3] == 0x1 && sid > st->tx_last_stream) {
		st->tx_last_stream = sid;
		count(ST_TX_SKIPPED);
	}
	end = need + flen;
	if (end >= size) {
		st->tx_skip = end - size;
		return 1;
	}
	*off = end;
	return 0;
lost:
	st->tx_proto = P_DESYNC;
	count(ST_TX_DESYNC);
	return 1;
}

/*
 * Walks the h2 frames of a message from `off` (the first frame header) and
 * gives every HEADERS frame the thread's value. Keeps track of a frame that
 * runs on into the next message; gives up on the connection when the frame
 * boundaries are lost.
 */
static __always_inline void tx_h2(struct sk_msg_md *msg, struct scratch *s, struct conn_state *st,
				  __u32 size, __u32 off)
{
	struct thread_state *tv = thread_value();
	struct tx_walk_loop l = {.msg = msg, .w = {.off = off, .size = size, .last_stream = st->tx_last_stream}};
	struct tx_walk *w = &l.w;

	if (st->tx_have) {
		if (tx_complete_header(s, st, size, &off))
			return;
		w->off = off;
	}
	if (tv) {
		w->has_tv = 1;
		w->len = build_insert(s, tv, 1);
	}
	if (!tx_h2_whole(msg, s, st, size, off, w->has_tv, w->len))
		return;
	bpf_loop(MAX_FRAMES, tx_walk_cb, &l, 0);
	st->tx_last_stream = w->last_stream;
	if (w->size != size)
		linearize(msg);
	if (w->desync || w->off < w->size) {
		st->tx_proto = P_DESYNC;
		count(ST_TX_DESYNC);
		return;
	}
	st->tx_skip = w->off - w->size;
	if (w->cut) {
		__builtin_memcpy(st->tx_part, w->part, 8);
		st->tx_have = w->cut;
	}
}

/*
 * A second message on a connection the service opened: from now on the
 * connection has its state, which marks it as one that brings responses.
 */
static __always_inline void second_message(struct bpf_sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct conn_state *st;

	if (!tp || tp->bytes_sent == 0)
		return;
	st = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st)
		st->responses = 1;
}

SEC("sk_msg")
int copper_sk_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct conn_state *st;
	struct scratch *s;
	__u32 size = msg->size, n;
	__u8 *d, *e;

#if COPPER_SPIN_NS
	spin();
#endif
	if (COPPER_FLOOR || !sk || size == 0)
		return SK_PASS;
	st = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (st && st->tx_proto == P_DESYNC)
		return SK_PASS;
	if (st && st->tx_proto == P_H2 && st->tx_skip >= size) {
		st->tx_skip -= size;
		return SK_PASS;
	}
	if (!st || st->tx_proto == P_OPEN) {
		/*
		 * Both a request line and the h2 client preface start with an
		 * upper-case letter: other messages (another protocol, a body) go
		 * on without being made contiguous or copied.
		 */
		d = (__u8 *)(long)msg->data;
		e = (__u8 *)(long)msg->data_end;
		if (d + 1 > e || d[0] < 'A' || d[0] > 'Z')
			return SK_PASS;
	}
	s = get_scratch();
	if (!s)
		return SK_PASS;
	n = size < SCAN ? size : SCAN;
	/* Most messages are one piece already: no helper call then. */
	d = (__u8 *)(long)msg->data;
	e = (__u8 *)(long)msg->data_end;
	if (d + masked(n, 2 * SCAN - 1) > e && bpf_msg_pull_data(msg, 0, n, 0))
		return SK_PASS;
	d = (__u8 *)(long)msg->data;
	e = (__u8 *)(long)msg->data_end;
	if (d + 1 > e)
		return SK_PASS;
	if (bpf_probe_read_kernel(s->buf, masked(n, SCAN_BUF - 1), d))
		return SK_PASS;
	if (!st || st->tx_proto == P_OPEN) {
		/*
		 * Not h2c: every message that starts with an HTTP/1.x request
		 * line gets the value, so HTTP/1.x needs no frame state.
		 */
		if (!is_preface(s, n)) {
			tx_h1(msg, s, n);
			if (!st)
				second_message(sk);
			return SK_PASS;
		}
		if (!st)
			st = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st)
			return SK_PASS;
		st->tx_proto = P_H2;
		st->tx_skip = 0;
		st->tx_have = 0;
		st->tx_last_stream = 0;
		st->responses = 1;
		tx_h2(msg, s, st, size, PREFACE_LEN);
		return SK_PASS;
	}
	if (st->tx_proto == P_H2)
		tx_h2(msg, s, st, size, st->tx_skip);
	return SK_PASS;
}
