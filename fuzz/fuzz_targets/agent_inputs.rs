//! What the node-wide agent parses: its configuration, mountinfo, the
//! /proc files of other processes (which those processes control in part),
//! excluded ports, and the requests its metrics listener reads from anyone
//! who connects.
//! Must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = copperc::ebpf::node::parse_config(&text);
    let _ = copperc::ebpf::cgroup::cgroup2_mounts(&text);
    let _ = copperc::ebpf::cgroup::process_cgroup(&text);
    let _ = copperc::ebpf::node::service_of(data);
    let _ = copperc::ebpf::node::start_time(&text);
    let _ = copperc::ebpf::node::catches_usr1(&text);
    let _ = copperc::ebpf::ports::parse_item(&text);
    let _ = copperc::ebpf::ports::parse_scoped_item(&text);
    let _ = copperc::cli::metrics_server::respond(data, Some(std::time::Duration::ZERO), String::new);
});
