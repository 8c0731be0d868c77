/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared definitions of copper_ctx.bpf.c. The layout of `struct copper_config`
 * is also written by the loader (src/ebpf/mod.rs): keep both in sync.
 */
#ifndef COPPER_CTX_H
#define COPPER_CTX_H

/* Longest service name (a DNS label). */
#define NAME_MAX_LEN 63
#define NAME_BUF 64
/* Longest `x-copper-context` value that is sent; longer contexts are not sent. */
#define VAL_MAX 240
/* Buffer of a value: room for its fixed-size copies (255 + NAME_BUF). */
#define VAL_BUF 320
/* Bytes of a read (request head, tail of a HEADERS frame) that are examined. */
#define SCAN 1024
#define SCAN_BUF (2 * SCAN)
/*
 * Longest HTTP/1.x request head whose end is looked for, to tell whether
 * its read holds more than that request (see h1_alone); the receive
 * buffer's size, which holds it and the 8-byte loads past its end.
 */
#define HEAD_MAX 8192
#define HEAD_BUF (2 * HEAD_MAX)
/* Bytes of a chunked body's chunk line read at once. */
#define CHUNK_PEEK 32
#define CHUNK_BUF 64
/* Chunks of a chunked body walked in one read. */
#define MAX_CHUNKS 64
/* Longest inserted byte string: h2 literal 0x00 0x10 name(16) len(2) value. */
#define OUT_MAX 264
#define OUT_BUF 512
/* Longest HTTP/1.x message rebuilt whole with the value's line, and its buffer. */
#define MSG_MAX (SCAN + OUT_MAX)
#define MSG_BUF (4 * SCAN)
/* HTTP/2 frames walked per read or per sent message. */
#define MAX_FRAMES 64
/* SETTINGS_MAX_FRAME_SIZE default: a HEADERS frame never grows past it. */
#define H2_MAX_FRAME 16384
/* Tail of a HEADERS frame searched for the literal (it is the last field). */
#define H2_TAIL 288

/* Words of the excluded remote ports' bitmap: one bit for each of 65,536 ports. */
#define SKIP_PORT_WORDS 2048

/* Services a loaded object follows (entries of the `services` map). */
#define MAX_SERVICES 4096
/* Distinct cgroup depths among them (entries of the `levels` map). */
#define MAX_LEVELS 8

/* A service: the value of `services`, written by the loader. 72 bytes. */
struct copper_config {
	unsigned char name[NAME_BUF]; /* service name, not NUL-terminated */
	unsigned int name_len;        /* 1..=63 */
	unsigned int flags;           /* SVC_* */
};

/* copper_config.flags */
/* An entry point: incoming contexts are ignored, each request starts fresh. */
#define SVC_ENTRYPOINT 1
/*
 * The operator says that each thread of the service handles one request at a
 * time and makes that request's calls itself, even where it reads requests
 * from non-blocking sockets (a single-threaded async runtime per connection
 * that serves the connection's requests one after the other).
 */
#define SVC_ONE_REQUEST_PER_THREAD 2

/* The `control` map's value, written by the loader. 16 bytes. */
struct copper_control {
	unsigned int paused;            /* 1: send nothing */
	unsigned int epoch;             /* moved on by each agent that loads */
	unsigned long long alive_until; /* CLOCK_MONOTONIC ns; 0: no deadline */
};

/* Counters of the `stats` array map, printed by the agent on exit. */
enum copper_stat {
	ST_RX_H1_REQUEST = 0,  /* HTTP/1.x request heads read */
	ST_RX_H2_REQUEST,      /* h2c HEADERS frames read on a server connection */
	ST_RX_CONTEXT,         /* ... of which carried a valid context */
	ST_RX_AMBIGUOUS,       /* reads that could not be tied to one request */
	ST_TX_H1_INSERTED,     /* HTTP/1.x requests sent with a context */
	ST_TX_H2_INSERTED,     /* h2c HEADERS frames sent with a context */
	ST_TX_NO_CONTEXT,      /* requests sent without: the thread had none */
	ST_TX_SKIPPED,         /* requests sent without: frame shape or size */
	ST_TX_DESYNC,          /* h2c connections no longer followed */
	ST_TX_ERROR,           /* helper failures (message left unchanged) */
	ST_RX_NONBLOCKING,     /* requests read from non-blocking sockets: no context */
	ST_TX_EXCLUDED,        /* connections opened to an excluded port: not followed */
	ST_COUNT,
};

/*
 * The counters of `cgroup_stats`, per cgroup: the reasons of `copper_stat`
 * why a request read or sent goes without a context.
 */
enum copper_cgroup_stat {
	CG_RX_AMBIGUOUS = 0,
	CG_RX_NONBLOCKING,
	CG_TX_NO_CONTEXT,
	CG_TX_SKIPPED,
	CG_TX_DESYNC,
	CG_TX_ERROR,
	CG_ST_COUNT,
};

#endif
