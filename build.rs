//! Build steps: generate the parser from `grammar/`, embed the bundled
//! interface files so that an installed `copperc` works without the source
//! tree, and compile the eBPF object `ebpf/copper_ctx.bpf.c` with clang
//! (`-target bpf`, CO-RE) against a `vmlinux.h` that bpftool generates from
//! the running kernel's BTF. Both land in OUT_DIR; nothing generated is
//! committed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=grammar");
    println!("cargo:rerun-if-changed=interfaces");
    println!("cargo:rerun-if-changed=ebpf");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(err) = lalrpop::Configuration::new()
        .set_in_dir("grammar")
        .set_out_dir(&out_dir)
        .emit_rerun_directives(true)
        .process()
    {
        println!("cargo:warning=lalrpop failed: {err}");
        std::process::exit(1);
    }
    embed_interfaces(&out_dir);
    if let Err(msg) = build_ebpf(&out_dir) {
        // A build script's stderr is shown when it fails; say what to do.
        eprintln!("error: {msg}");
        println!("cargo:warning={msg}");
        std::process::exit(1);
    }
}

/// Finds a tool on PATH, or in /usr/sbin and /sbin (where Debian puts bpftool
/// and where a non-root PATH does not look).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>, String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// `vmlinux.h` from /sys/kernel/btf/vmlinux, then `copper_ctx.bpf.o`.
fn build_ebpf(out_dir: &Path) -> Result<(), String> {
    const HINT: &str = "run `make deps` (it installs clang, bpftool and libbpf-dev)";
    let clang = find_tool("clang").ok_or(format!("clang is missing, needed to build the eBPF object: {HINT}"))?;
    let bpftool = find_tool("bpftool").ok_or(format!("bpftool is missing, needed to generate vmlinux.h: {HINT}"))?;
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        return Err(format!(
            "libbpf headers (/usr/include/bpf/bpf_helpers.h) are missing: {HINT}"
        ));
    }
    let btf = std::env::var("COPPERC_VMLINUX_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".into());
    println!("cargo:rerun-if-env-changed=COPPERC_VMLINUX_BTF");
    if !Path::new(&btf).exists() {
        return Err(format!(
            "{btf} is missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF); set COPPERC_VMLINUX_BTF to a vmlinux with BTF"
        ));
    }
    let header = run(
        Command::new(&bpftool).args(["btf", "dump", "file", &btf, "format", "c"]),
        "bpftool btf dump",
    )?;
    let vmlinux = out_dir.join("vmlinux.h");
    // Rewritten only when it changes, so that clang's output stays cached.
    if std::fs::read(&vmlinux).ok().as_deref() != Some(&header[..]) {
        std::fs::write(&vmlinux, &header).map_err(|e| format!("cannot write {}: {e}", vmlinux.display()))?;
    }
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default().as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => return Err(format!("the eBPF object supports x86_64 and aarch64, not `{other}`")),
    };
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let src = root.join("ebpf").join("copper_ctx.bpf.c");
    let unlinked = out_dir.join("copper_ctx.unlinked.o");
    let obj = out_dir.join("copper_ctx.bpf.o");
    run(
        Command::new(&clang)
            .args(["-target", "bpf", "-g", "-O2", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .arg("-I")
            .arg(out_dir)
            .arg("-I")
            .arg(root.join("ebpf"))
            // The object must not depend on where the source tree is.
            .arg(format!("-fdebug-prefix-map={}=.", root.display()))
            .arg(format!("-fdebug-prefix-map={}=.", out_dir.display()))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&unlinked),
        "clang -target bpf (ebpf/copper_ctx.bpf.c)",
    )?;
    // libbpf's static linker keeps BTF and drops DWARF: about 85 KB instead of 750.
    run(
        Command::new(&bpftool).args(["gen", "object"]).arg(&obj).arg(&unlinked),
        "bpftool gen object",
    )?;
    Ok(())
}

fn embed_interfaces(out_dir: &std::path::Path) {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut names: Vec<String> = std::fs::read_dir(root.join("interfaces"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".act"))
                .collect()
        })
        .unwrap_or_default();
    // Sorted so that the embedded order, and every output built from it, is stable.
    names.sort();
    let mut code =
        String::from("/// Bundled interface files: (file name, contents).\npub const BUNDLED: &[(&str, &str)] = &[\n");
    for name in names {
        let path = root.join("interfaces").join(&name);
        let _ = writeln!(code, "    ({name:?}, include_str!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    if let Err(err) = std::fs::write(out_dir.join("bundled_interfaces.rs"), code) {
        println!("cargo:warning=cannot write bundled_interfaces.rs: {err}");
        std::process::exit(1);
    }
}
