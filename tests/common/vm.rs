//! Machines booted under qemu (software emulation, so that they run
//! wherever the tests do) from an initramfs, for the tests of the eBPF
//! add-on on other kernels than the machine's: building the initramfs,
//! booting, and the console the init printed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than a run takes under emulation on two slow cores (about 95 s
/// for the boot, eleven agents' loads and the requests of
/// tests/ebpf_older_kernel.rs; about 190 s when two machines run at once,
/// as the test harness runs them).
const DEADLINE: Duration = Duration::from_secs(600);

/// In the tests' temporary folder (target/tmp): one line per kernel that
/// died at boot and was booted again. `make test` prints it, since a
/// passing test's output is hidden.
const REBOOTS: &str = "ebpf-vm-reboots.txt";

/// What every init prints first, so that a kernel that died before its
/// init ran is told from one whose init failed.
pub const MARK: &str = "COPPER-VM ";

/// A kind of machine qemu emulates.
pub struct Machine {
    /// The emulator, and the Debian package that installs it.
    pub qemu: &'static str,
    pub package: &'static str,
    /// Its own arguments (the board).
    pub args: &'static [&'static str],
    /// The kernel's name for the first serial port.
    pub console: &'static str,
}

pub const X86_64: Machine = Machine {
    qemu: "qemu-system-x86_64",
    package: "qemu-system-x86",
    args: &[],
    console: "ttyS0",
};

pub const ARM64: Machine = Machine {
    qemu: "qemu-system-aarch64",
    package: "qemu-system-arm",
    args: &["-M", "virt"],
    console: "ttyAMA0",
};

/// A program on PATH, or a failure that says what installs it.
pub fn on_path(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is missing: `make deps` installs {package}"))
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The shared libraries that `binary` (of this machine) loads, with its
/// interpreter.
pub fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || !out.status.success() {
        return Vec::new();
    }
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copies `from` to `root` + `at`; binaries lose their debug information on
/// the way (`strip`), so that the initramfs stays small.
pub fn copy_in(root: &Path, from: &Path, at: &str, strip: bool) {
    let to = root.join(at.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    if strip {
        run(Command::new("strip").arg("-o").arg(&to).arg(from));
    } else {
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
    }
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `copy_in`, with the libraries that `from` (of this machine) loads, at
/// their own paths.
pub fn install(root: &Path, from: &Path, at: &str, strip: bool) {
    copy_in(root, from, at, strip);
    for lib in libraries(from) {
        let dest = root.join(lib.strip_prefix("/").unwrap());
        if !dest.exists() {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &dest).unwrap();
        }
    }
}

/// Packs `root` as an initramfs (newc cpio, uncompressed) into `image`,
/// with the folders the inits mount on.
pub fn pack(root: &Path, image: &Path) {
    for d in ["proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let cpio = on_path("cpio", "cpio");
    let list = run(Command::new("find").arg(".").current_dir(root));
    let mut child = Command::new(cpio)
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(image).unwrap())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), list.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "cpio failed");
}

/// Boots `kernel` with the initramfs `image` on `machine`; returns the
/// console's output.
pub fn boot(machine: &Machine, kernel: &Path, image: &Path, dir: &Path, append: &str) -> String {
    let console = boot_once(machine, kernel, image, dir, append);
    if console.contains(MARK) {
        return console;
    }
    // The kernel died before its init ran: no program of the add-on had
    // been loaded yet. Seen once under emulation (an `int3` oops in the
    // kernel's own code patching at 2 s); the second boot decides.
    println!("the kernel died before its init ran; booting again. Its console:\n{console}");
    let note = Path::new(env!("CARGO_TARGET_TMPDIR")).join(REBOOTS);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&note) {
        let last = console
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no console)");
        let _ = writeln!(
            f,
            "{}: the kernel died before its init ran, and was booted again; its console ended with: {last}",
            kernel.display()
        );
    }
    boot_once(machine, kernel, image, dir, append)
}

fn boot_once(machine: &Machine, kernel: &Path, image: &Path, dir: &Path, append: &str) -> String {
    let console = dir.join("console.txt");
    let qemu = on_path(machine.qemu, machine.package);
    // One host thread for both virtual CPUs: with a thread per CPU, the
    // emulator lets one CPU run code that another is patching (the kernel
    // patches its code while it boots), which once killed a kernel at boot.
    let mut child = Command::new(qemu)
        .args(machine.args)
        .args(["-accel", "tcg,thread=single", "-cpu", "max", "-smp", "2", "-m", "1024"])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(image)
        .arg("-append")
        .arg(format!("console={} panic=-1 quiet loglevel=1{append}", machine.console))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "the machine did not power off within {DEADLINE:?}; its console:\n{}",
                std::fs::read_to_string(&console).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).ok();
    assert!(status.success(), "qemu failed: {err}");
    std::fs::read_to_string(&console).unwrap()
}

/// The init's `COPPER-VM` lines, by their first words (the rest is the value).
pub fn reports(console: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in console.lines() {
        let Some(rest) = line.trim_end_matches('\r').strip_prefix(MARK) else {
            continue;
        };
        let words = match rest.split_whitespace().next() {
            Some("attach" | "exit" | "detach" | "answer" | "await") => 3,
            _ => 1,
        };
        let mut parts = rest.splitn(words + 1, ' ');
        let key = (0..words).filter_map(|_| parts.next()).collect::<Vec<_>>().join(" ");
        out.insert(key, parts.next().unwrap_or("").to_string());
    }
    out
}

/// The context header each hop of the HTTP/1.1 chain received, a first.
pub fn h1_contexts(answer: &str) -> Vec<String> {
    let mut hop: serde_json::Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("not copperc-testsvc's answer ({e}): {answer}"));
    let mut seen = Vec::new();
    loop {
        seen.push(
            hop["headers"]["x-copper-context"]
                .as_str()
                .unwrap_or("(none)")
                .to_string(),
        );
        match hop["calls"].get(0) {
            Some(call) => hop = call["body"].clone(),
            None => return seen,
        }
    }
}

/// Asserts that the HTTP/1.1 chain of `phase` gave c the context `/a/b`
/// for its plain request and for the one with a forged context, which
/// stops at a, the entry point (the answers of reports' `answer PHASE
/// plain` and `answer PHASE forged`).
pub fn assert_h1_answers(got: &BTreeMap<String, String>, phase: &str, console: &str) {
    for (request, first) in [("plain", ""), ("forged", "/evil/x")] {
        let key = format!("answer {phase} {request}");
        let answer = got
            .get(&key)
            .unwrap_or_else(|| panic!("no `{key}`: {got:#?}\nconsole:\n{console}"));
        assert_eq!(
            h1_contexts(answer),
            [first, "/a", "/a/b"],
            "{phase} {request}: {got:#?}\nconsole:\n{console}"
        );
    }
}
