//! The add-on's object for arm64 (aarch64), built from the same source
//! against the BTF of Debian 13's arm64 kernel (`make deps` builds it, see
//! the Makefile), loaded into that kernel under qemu: every program must
//! pass the kernel's verifier, its CO-RE relocations resolved against
//! arm64's own types (its `struct pt_regs`, which holds a syscall's number
//! and arguments differently from x86_64's).
//!
//! `copperc` itself is not built for arm64 here (the machines that run the
//! tests have no aarch64 Rust standard library), so the object is loaded
//! by Debian's arm64 bpftool, with the read-only switches set as the agent
//! sets them before it loads (docs/ebpf.md, "Limits"). On Linux 6.12
//! sk_msg programs may not use task storage: the object as built (task
//! storage on) must be refused for that reason, and the one the agent then
//! loads (the threads' LRU hash) must load, also with services' own
//! excluded ports, and without the cgroup cache (kernels before 6.2). The
//! x86_64 object must be refused there, for x86_64's registers.
//!
//! Needs what `make deps` installs: qemu-system-arm, cpio, the arm64
//! kernel at build/kernels/debian-6.12-arm64/vmlinuz, the arm64 programs
//! under build/kernels/debian-13-arm64-userland, and the object at
//! build/ebpf/arm64/copper_ctx.bpf.o. A missing piece fails the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failure report"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::vm::{self, copy_in};

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
    let userland = built(
        "kernels/debian-13-arm64-userland/.unpacked",
        "unpacks Debian 13's arm64 busybox and bpftool",
    )
    .parent()
    .unwrap()
    .to_path_buf();
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
    copy_in(&root, &userland.join("usr/bin/busybox"), "/bin/busybox", false);
    copy_in(&root, &userland.join("usr/sbin/bpftool"), "/usr/sbin/bpftool", false);
    let libs = userland.join("usr/lib/aarch64-linux-gnu");
    for lib in ["libc.so.6", "libelf.so.1", "libz.so.1", "libcap.so.2", "libzstd.so.1"] {
        copy_in(
            &root,
            &libs.join(lib),
            &format!("/usr/lib/aarch64-linux-gnu/{lib}"),
            false,
        );
    }
    // bpftool's interpreter, at the path its ELF header names.
    copy_in(
        &root,
        &libs.join("ld-linux-aarch64.so.1"),
        "/lib/ld-linux-aarch64.so.1",
        false,
    );
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
