//! The add-on on arm64 (aarch64), on Debian 13's arm64 Linux 6.12 under
//! qemu.
//!
//! The object, built from the same source against that kernel's BTF (`make
//! deps` builds it, see the Makefile), is loaded by Debian's arm64 bpftool
//! with its read-only switches set as the agent sets them before it loads
//! (docs/ebpf.md, "Limits"): every program must pass the kernel's verifier,
//! its CO-RE relocations resolved against arm64's own types (its `struct
//! pt_regs`, which holds a syscall's number and arguments differently from
//! x86_64's). On Linux 6.12 sk_msg programs may not use task storage: the
//! object as built (task storage on) must be refused for that reason, and
//! the one the agent then loads (the threads' LRU hash) must load, also
//! with services' own excluded ports, and without the cgroup cache
//! (kernels before 6.2). The x86_64 object must be refused there, for
//! x86_64's registers.
//!
//! Then `copperc` and the test services built for arm64 (`make
//! arm64-bins`, which `make test` runs) follow the chain client -> a -> b
//! -> c in that kernel: a node-wide agent with the hooks it picks, over
//! HTTP/1.1 and h2c, and one with the syscall tracepoints, over HTTP/1.1,
//! loading the object that the arm64 `copperc compile` wrote for the
//! bundled example (byte for byte the one its build made, its DaemonSet
//! bound to arm64 nodes); c must see `/a/b`, and a forged context must
//! stop at a.
//!
//! Needs what `make test` installs and builds: qemu-system-arm, cpio, the
//! arm64 kernel at build/kernels/debian-6.12-arm64/vmlinuz, the arm64
//! programs under build/kernels/debian-13-arm64-userland, the object at
//! build/ebpf/arm64/copper_ctx.bpf.o and the programs under build/arm64/bin.
//! A missing piece fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::vm::{self, assert_h1_answers, copy_in, reports};

fn built(relative: &str, what: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("build").join(relative);
    assert!(path.exists(), "{} is missing: `make deps` {what}", path.display());
    path
}

/// The object with these read-only switches (the sections of one `__u32`
/// that the agent sets before loading) set to these values: the bytes of
/// each section in the ELF file, as libbpf would write them into the map.
fn with_switches(object: &[u8], switches: &[(&str, u32)]) -> Vec<u8> {
    let u16_at = |at: usize| u16::from_le_bytes(object[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(object[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(object[at..at + 8].try_into().unwrap()) as usize;
    // ELF64, little-endian (e_ident[EI_CLASS] = 2, e_ident[EI_DATA] = 1).
    assert_eq!(
        &object[..6],
        b"\x7fELF\x02\x01",
        "not a 64-bit little-endian ELF object"
    );
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| {
        let at = shoff + i * shentsize;
        // sh_name, sh_offset, sh_size
        (u32_at(at), u64_at(at + 0x18), u64_at(at + 0x20))
    };
    let names = section(shstrndx).1;
    let mut out = object.to_vec();
    for (wanted, value) in switches {
        let (offset, size) = (0..shnum)
            .map(section)
            .find(|(name, _, _)| {
                let start = names + name;
                let end = start + object[start..].iter().position(|b| *b == 0).unwrap();
                &object[start..end] == wanted.as_bytes()
            })
            .map(|(_, offset, size)| (offset, size))
            .unwrap_or_else(|| panic!("the object has no section {wanted}"));
        assert_eq!(size, 4, "{wanted} is not one __u32");
        out[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    out
}

/// The object's programs, by name.
fn programs(object: &[u8]) -> BTreeSet<String> {
    let open = libbpf_rs::ObjectBuilder::default().open_memory(object).unwrap();
    open.progs().map(|p| p.name().to_string_lossy().into_owned()).collect()
}

#[test]
fn the_arm64_object_passes_the_verifier_of_debian_13_arm64_linux_6_12() {
    let kernel = built("kernels/debian-6.12-arm64/vmlinuz", "fetches Debian 13's arm64 kernel");
    let userland = userland();
    let object = std::fs::read(built("ebpf/arm64/copper_ctx.bpf.o", "builds the object for arm64")).unwrap();
    // e_machine 247 = EM_BPF; the arm64 build must differ from this
    // machine's (x86_64) in what it reads of `struct pt_regs`.
    assert_eq!(u16::from_le_bytes([object[18], object[19]]), 247);
    assert_ne!(
        object.as_slice(),
        copperc::ebpf::OBJECT,
        "the arm64 object is the x86_64 one"
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    arm64_base(&root, &userland);
    copy_in(&root, &userland.join("usr/sbin/bpftool"), "/usr/sbin/bpftool", false);
    copy_in(
        &root,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ebpf/vm_arm64_init.sh"),
        "/init",
        false,
    );
    let variants: [(&str, Vec<u8>); 5] = [
        ("as-built", object.clone()),
        ("agent", with_switches(&object, &[(".rodata.tasks", 0)])),
        (
            "agent-service-ports",
            with_switches(&object, &[(".rodata.tasks", 0), (".rodata.svcports", 1)]),
        ),
        (
            "agent-no-cache",
            with_switches(&object, &[(".rodata.tasks", 0), (".rodata.cache", 0)]),
        ),
        // The object built into this (x86_64) copperc, as the DaemonSet's
        // ConfigMap ships it: refused, which is why the DaemonSet runs only
        // on nodes of its architecture (emit::k8s).
        ("x86-64", with_switches(copperc::ebpf::OBJECT, &[(".rodata.tasks", 0)])),
    ];
    std::fs::create_dir_all(root.join("objects")).unwrap();
    for (name, bytes) in &variants {
        std::fs::write(root.join("objects").join(format!("{name}.bpf.o")), bytes).unwrap();
    }
    let image = dir.path().join("initramfs.cpio");
    vm::pack(&root, &image);
    let console = vm::boot(&vm::ARM64, &kernel, &image, dir.path(), "");

    let lines: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(vm::MARK))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("kernel 6.12.") && l.ends_with(" aarch64")),
        "not Linux 6.12 on aarch64:\n{console}"
    );
    assert!(lines.contains(&"done"), "the init did not finish:\n{console}");
    let loads: BTreeMap<&str, &str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("load "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let log = |name: &str| -> String {
        let prefix = format!("log {name} ");
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let expected = programs(&object);
    assert_eq!(expected.len(), 10, "{expected:?}");
    for (name, _) in &variants[1..4] {
        let said = loads.get(name).copied().unwrap_or("(nothing)");
        let loaded: BTreeSet<String> = said
            .strip_prefix("ok")
            .unwrap_or_else(|| panic!("{name}: refused on arm64:\n{}", log(name)))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        assert_eq!(loaded, expected, "{name}: {said}");
    }
    // As built, with the threads' state in task storage: the sk_msg
    // program is refused, as on x86_64's Linux 6.12, for the helper.
    assert_eq!(loads.get("as-built").copied(), Some("refused"), "{console}");
    let refused = log("as-built");
    assert!(
        refused.contains("prog 'copper_sk_msg': BPF program load failed")
            && refused.contains("program of this type cannot use helper bpf_task_storage_get"),
        "{refused}"
    );
    assert_eq!(loads.get("x86-64").copied(), Some("refused"), "{console}");
    let refused = log("x86-64");
    assert!(
        refused.contains("failed to resolve CO-RE relocation") && refused.contains("struct pt_regs.di"),
        "{refused}"
    );
}

/// The folder of Debian 13's arm64 programs and libraries.
fn userland() -> PathBuf {
    built(
        "kernels/debian-13-arm64-userland/.unpacked",
        "unpacks Debian 13's arm64 busybox, bpftool and nghttp",
    )
    .parent()
    .unwrap()
    .to_path_buf()
}

/// What every arm64 machine's root holds: busybox, and the libraries of
/// `userland` (files, and links as links) where the arm64 programs' loader
/// looks by default, with the loader at the path their ELF headers name.
fn arm64_base(root: &Path, userland: &Path) {
    copy_in(root, &userland.join("usr/bin/busybox"), "/bin/busybox", false);
    let libs = userland.join("usr/lib/aarch64-linux-gnu");
    let to = root.join("usr/lib/aarch64-linux-gnu");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(&libs).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), dest).unwrap();
        } else if kind.is_file() {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
    copy_in(
        root,
        &libs.join("ld-linux-aarch64.so.1"),
        "/lib/ld-linux-aarch64.so.1",
        false,
    );
}

#[test]
fn chain_carries_contexts_on_debian_13_arm64_linux_6_12() {
    let kernel = built("kernels/debian-6.12-arm64/vmlinuz", "fetches Debian 13's arm64 kernel");
    let userland = userland();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("build/arm64/bin");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for name in ["copperc", "copperc-testsvc", "copperc-h2c-testsvc"] {
        let program = bin.join(name);
        assert!(
            program.is_file(),
            "{} is missing: `make arm64-bins` builds it (make test does)",
            program.display()
        );
        // EM_AARCH64: a program of this machine would not run there.
        let head = std::fs::read(&program).unwrap();
        assert_eq!(
            u16::from_le_bytes([head[18], head[19]]),
            183,
            "{} is not for arm64",
            program.display()
        );
        copy_in(&root, &program, &format!("/{name}"), false);
    }
    arm64_base(&root, &userland);
    copy_in(&root, &userland.join("usr/bin/nghttp"), "/nghttp", false);
    // The object the build embedded, which `copperc compile` must write.
    let embedded = bin.join("copper_ctx.bpf.o");
    assert!(
        embedded.is_file(),
        "{} is missing: `make arm64-bins` copies it (make test does)",
        embedded.display()
    );
    copy_in(&root, &embedded, "/built.bpf.o", false);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo");
    for name in ["graph.json", "policies.copper"] {
        copy_in(&root, &example.join(name), &format!("/bookinfo/{name}"), false);
    }
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ebpf");
    copy_in(&root, &tests.join("vm_arm64_chain.sh"), "/init", false);
    copy_in(&root, &tests.join("vm_lib.sh"), "/vm_lib.sh", false);
    let image = dir.path().join("initramfs.cpio");
    vm::pack(&root, &image);
    let console = vm::boot(&vm::ARM64, &kernel, &image, dir.path(), "");
    // Shown with --nocapture, and by the harness when the test fails.
    println!("{console}");
    let got = reports(&console);
    let show = || format!("{got:#?}\nconsole:\n{console}");
    let get = |key: &str| got.get(key).unwrap_or_else(|| panic!("no `{key}`: {}", show()));

    let uname = get("uname");
    assert!(uname.starts_with("6.12.") && uname.ends_with(" aarch64"), "{}", show());
    assert!(got.contains_key("done"), "{}", show());
    // Compiled on arm64, the DaemonSet goes to arm64 nodes and ships the
    // object the build made; the tracepoints agent below loaded that file.
    assert_eq!(get("compile"), "0", "{}", show());
    assert_eq!(get("nodeselector"), "kubernetes.io/arch: arm64", "{}", show());
    assert_eq!(get("object"), "same", "{}", show());
    for (phase, hooks) in [
        ("node", "socket receive hook (tp_btf sock_recv_length)"),
        ("tracepoints", "syscall tracepoints"),
    ] {
        let attach = get(&format!("attach {phase} agent"));
        assert!(
            attach.contains("node-wide for 3 services")
                && attach.contains(hooks)
                && attach.contains("threads' state in an LRU hash"),
            "{phase}: {}",
            show()
        );
        assert_eq!(get(&format!("exit {phase} agent")), "0", "{}", show());
        assert_h1_answers(&got, phase, &console);
    }
    let pods = [
        ("node", ["a", "b", "c", "h2c-a", "h2c-b", "h2c-c"].as_slice()),
        ("tracepoints", ["a", "b", "c"].as_slice()),
    ];
    for (phase, names) in pods {
        for pod in names {
            assert_eq!(get(&format!("await {phase} {pod}")), "0", "{}", show());
        }
    }
    assert_eq!(get("answer h2c plain"), r#"["/a/b"]"#, "{}", show());
    assert_eq!(get("answer h2c forged"), r#"["/a/b"]"#, "{}", show());
    // a and b gave each of the two requests of each chain its context, b
    // and c read them with it.
    let node = get("detach node agent");
    assert!(
        node.contains("6 cgroups detached")
            && node.contains("tx_h1_inserted=4 ")
            && node.contains("tx_h2_inserted=4 ")
            && node.contains("rx_with_context=8 "),
        "{}",
        show()
    );
    let tracepoints = get("detach tracepoints agent");
    assert!(
        tracepoints.contains("3 cgroups detached")
            && tracepoints.contains("tx_h1_inserted=4 ")
            && tracepoints.contains("rx_with_context=4 "),
        "{}",
        show()
    );
}
