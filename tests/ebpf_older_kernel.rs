//! The eBPF add-on on other kernels than the machine's, each booted under
//! qemu (software emulation, so that it runs wherever the tests do) from an
//! initramfs that holds the agent, the test services and nghttp, with
//! tests/ebpf/vm_init.sh as its init. The object is the one built against
//! the machine's BTF, relocated there by CO-RE.
//!
//! Debian 12's Linux 6.1 lacks what the add-on prefers, so the agent must
//! fall back: no socket receive hook (Linux 6.4) gives the syscall
//! tracepoints, no cgroup storage (6.2) no cache of each cgroup's service,
//! and task storage that sk_msg programs cannot use the threads' LRU hash;
//! an agent asked for the socket receive hook by name must refuse, saying
//! why, and the node-wide agent finds new pods by searching /proc (no exec
//! events filtered by type before 6.6). Debian 13's Linux 6.12, a long-term
//! kernel, has all of that but task storage in sk_msg programs.
//!
//! On each, the chain client -> a -> b -> c, one agent per service, must
//! carry `/a/b` to c over HTTP/1.1 and over h2c, and a forged context from
//! the client must not go past a; each agent must detach on SIGTERM. The
//! HTTP/1.1 chain runs again with tp_btf sys_enter/sys_exit, the last set of
//! hooks, and under one node-wide agent (`--config`, the DaemonSet's way).
//!
//! Needs what `make deps` installs: qemu-system-x86, busybox-static, cpio,
//! nghttp, and the kernels at build/kernels/debian-6.1/vmlinuz and
//! build/kernels/debian-6.12/vmlinuz (or the files that
//! `COPPERC_TEST_KERNEL` and `COPPERC_TEST_KERNEL_6_12` name). A missing
//! piece fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::path::{Path, PathBuf};

use common::vm::{self, assert_h1_answers, install, libraries, on_path, reports};

/// A kernel the test boots, and what the agent finds on it.
struct Kernel {
    /// Its folder under build/kernels/, where `make deps` puts it.
    dir: &'static str,
    /// The environment variable that names another file for it.
    env: &'static str,
    /// What it is, for messages.
    what: &'static str,
    /// How `uname -r` starts on it.
    release: &'static str,
    /// It predates the socket receive hook (Linux 6.4), cgroup storage
    /// (6.2) and exec events filtered by type (6.6): the agent falls back
    /// on each.
    old: bool,
    /// Its sk_msg programs may use task storage; if not, the threads'
    /// state goes into the LRU hash (Linux 6.16 allows it, 6.12 does not).
    task_storage: bool,
}

const DEBIAN_12: Kernel = Kernel {
    dir: "debian-6.1",
    env: "COPPERC_TEST_KERNEL",
    what: "Debian 12's Linux 6.1",
    release: "6.1.",
    old: true,
    task_storage: false,
};

const DEBIAN_13: Kernel = Kernel {
    dir: "debian-6.12",
    env: "COPPERC_TEST_KERNEL_6_12",
    what: "Debian 13's Linux 6.12",
    release: "6.12.",
    old: false,
    task_storage: false,
};

fn kernel(k: &Kernel) -> PathBuf {
    let path = std::env::var_os(k.env).map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("build/kernels")
                .join(k.dir)
                .join("vmlinuz")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: `make deps` fetches {}",
        path.display(),
        k.what
    );
    path
}

/// The initramfs (newc cpio, uncompressed) in `dir`.
fn initramfs(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let copperc = Path::new(env!("CARGO_BIN_EXE_copperc"));
    let h2c = common::h2c_testsvc();
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file() && libraries(busybox).is_empty(),
        "a static /bin/busybox is missing: `make deps` installs busybox-static"
    );
    install(&root, busybox, "/bin/busybox", false);
    install(&root, copperc, "/copperc", true);
    install(
        &root,
        Path::new(env!("CARGO_BIN_EXE_copperc-testsvc")),
        "/copperc-testsvc",
        true,
    );
    install(&root, &h2c, "/copperc-h2c-testsvc", true);
    install(&root, &on_path("nghttp", "nghttp2-client"), "/nghttp", false);
    install(
        &root,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ebpf/vm_init.sh"),
        "/init",
        false,
    );
    install(
        &root,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ebpf/vm_lib.sh"),
        "/vm_lib.sh",
        false,
    );
    let image = dir.join("initramfs.cpio");
    vm::pack(&root, &image);
    image
}

#[test]
fn chain_carries_contexts_on_debian_12_linux_6_1() {
    chain_carries_contexts(&DEBIAN_12);
}

/// The long-term kernel of Debian 13 (and of many distributions): every
/// hook the add-on prefers is there, but sk_msg programs may not use task
/// storage, so the threads' state goes into the LRU hash.
#[test]
fn chain_carries_contexts_on_debian_13_linux_6_12() {
    chain_carries_contexts(&DEBIAN_13);
}

fn chain_carries_contexts(k: &Kernel) {
    let kernel = kernel(k);
    let dir = tempfile::tempdir().unwrap();
    let image = initramfs(dir.path());
    let append = if k.old { " copper_socket_hook=absent" } else { "" };
    let console = vm::boot(&vm::X86_64, &kernel, &image, dir.path(), append);
    // Shown with --nocapture, and by the harness when the test fails.
    println!("{console}");
    let got = reports(&console);
    let show = || format!("{got:#?}\nconsole:\n{console}");
    let get = |key: &str| got.get(key).unwrap_or_else(|| panic!("no `{key}`: {}", show()));

    assert!(get("uname").starts_with(k.release), "{}", show());
    assert!(got.contains_key("done"), "{}", show());
    if k.old {
        // Asked for by name, the socket receive hook (Linux 6.4) is
        // refused, with the reason.
        assert_ne!(get("exit refused agent"), "0", "{}", show());
        let refusal = get("refusal");
        assert!(
            refusal.contains("error: cannot attach the socket receive hook")
                && refusal.contains(&format!(
                    "no `sock_recv_length` tracepoint, which came in Linux 6.4 (this is Linux {}",
                    k.release
                )),
            "{}",
            show()
        );
    } else {
        assert!(!got.contains_key("refusal"), "{}", show());
    }

    let picked = if k.old {
        "syscall tracepoints: no socket receive tracepoint (Linux 6.4)"
    } else {
        "socket receive hook (tp_btf sock_recv_length)"
    };
    let fallbacks = [
        ("the kernel has no cgroup storage", k.old),
        ("threads' state in an LRU hash", !k.task_storage),
    ];
    // Only the socket receive hook tells requests pipelined in one read apart.
    let pipelined = "HTTP/1.x requests pipelined in one read not told apart";
    // `--check-kernel` names what the agents below then attach.
    assert_eq!(get("kernelcheckcode"), "0", "{}", show());
    let check = get("kernelcheck");
    assert!(
        check.contains(&format!("Linux {}", k.release))
            && check.contains("takes the add-on: sockops, sk_msg, ")
            && check.contains(picked)
            && check.ends_with("detached again, nothing followed"),
        "{}",
        show()
    );
    for (fallback, expected) in fallbacks {
        assert_eq!(
            check.contains(fallback),
            expected,
            "--check-kernel: `{fallback}`: {}",
            show()
        );
    }
    for (phase, hooks) in [("h1", picked), ("tpbtf", "tp_btf sys_enter/sys_exit"), ("h2c", picked)] {
        for s in ["a", "b", "c"] {
            let attach = get(&format!("attach {phase} {s}"));
            assert!(attach.contains(hooks), "{phase} {s}: no `{hooks}`: {}", show());
            assert_eq!(
                attach.contains(pipelined),
                !hooks.starts_with("socket receive hook"),
                "{phase} {s}: `{pipelined}` on {}: {}",
                k.what,
                show()
            );
            for (fallback, expected) in fallbacks {
                assert_eq!(
                    attach.contains(fallback),
                    expected,
                    "{phase} {s}: `{fallback}` on {}: {}",
                    k.what,
                    show()
                );
            }
            assert_eq!(get(&format!("exit {phase} {s}")), "0", "{}", show());
            assert!(
                get(&format!("detach {phase} {s}")).contains(&format!("`{s}` detached;")),
                "{}",
                show()
            );
        }
    }

    // What each hop of the HTTP/1.1 chains received: a forged context stops
    // at a, the entry point.
    for phase in ["h1", "tpbtf", "node"] {
        assert_h1_answers(&got, phase, &console);
    }
    assert_eq!(get("answer h2c plain"), r#"["/a/b"]"#, "{}", show());
    assert_eq!(get("answer h2c forged"), r#"["/a/b"]"#, "{}", show());

    // The node-wide agent, which finds new pods by searching /proc before
    // Linux 6.6 (no exec events filtered by type) and from exec events
    // after, follows each pod that announces itself, and detaches on SIGTERM.
    let node = get("attach node agent");
    let discovery = if k.old {
        "by a search of /proc every"
    } else {
        "when a `copperc` process starts"
    };
    assert!(
        node.contains("node-wide") && node.contains(picked) && node.contains(discovery),
        "{}",
        show()
    );
    // a's own list (a port no hop uses) loaded the code that finds a
    // socket's service from its cgroup; the chain's answers above show that
    // a's calls were still followed.
    assert!(
        node.contains("; connections of `a` to ports 5432 not followed"),
        "{}",
        show()
    );
    for s in ["a", "b", "c"] {
        assert_eq!(get(&format!("await node {s}")), "0", "{}", show());
    }
    assert_eq!(get("exit node agent"), "0", "{}", show());
    // a and b each gave two requests their context; b and c read them.
    let node = get("detach node agent");
    assert!(
        node.contains("tx_h1_inserted=4 ") && node.contains("rx_with_context=4 "),
        "{}",
        show()
    );

    // Each of the two requests was given its context by the agents of a and
    // b, and read with it by those of b and c.
    for (phase, tx) in [
        ("h1", "tx_h1_inserted=2 "),
        ("tpbtf", "tx_h1_inserted=2 "),
        ("h2c", "tx_h2_inserted=2 "),
    ] {
        for s in ["a", "b"] {
            assert!(get(&format!("detach {phase} {s}")).contains(tx), "{}", show());
        }
        for s in ["b", "c"] {
            assert!(
                get(&format!("detach {phase} {s}")).contains("rx_with_context=2 "),
                "{}",
                show()
            );
        }
    }
}
