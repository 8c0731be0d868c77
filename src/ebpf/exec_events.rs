//! The node's exec events, from the kernel's process connector (netlink),
//! so that the node-wide agent looks for new pods when a process named
//! `copperc` starts (a pod's waiter), instead of searching `/proc` on a
//! timer. Hands on, at each look: whether such a process started, or
//! whether events were lost (the caller then searches `/proc` anyway).
//!
//! Only kernels that filter the connector's events by type (Linux 6.6 and
//! later) are asked: before that, every fork and exit of the node would
//! arrive too, which on a busy node costs more than the search it saves.

use std::io;
use std::path::Path;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_CONNECTOR};

use super::node::named_as_waiter;

/// The connector's process events (`CN_IDX_PROC`, `CN_VAL_PROC`).
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `PROC_CN_MCAST_LISTEN` of `enum proc_cn_mcast_op`.
const MCAST_LISTEN: u32 = 1;
/// `PROC_EVENT_EXEC` of `enum proc_cn_event`.
const EVENT_EXEC: u32 = 2;
/// `NLMSG_DONE`: the type of every connector message.
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;
const CN_MSG_HDR: usize = 20;
/// `struct proc_event` up to its `event_data`: what, cpu, timestamp_ns.
const EVENT_HDR: usize = 16;

/// What one look at the events found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No `copperc` process started.
    Nothing,
    /// A process named `copperc` started.
    Waiter,
    /// The socket overflowed (`ENOBUFS`): events were lost.
    Lost,
    /// The socket failed otherwise: no more events will come.
    Broken,
}

/// A subscription to the node's exec events.
pub struct ExecEvents {
    socket: Socket,
    buf: Vec<u8>,
}

impl ExecEvents {
    /// Subscribes to exec events; an error when the kernel has no process
    /// connector, the agent may not use it (it needs CAP_NET_ADMIN in the
    /// node's first network namespace), or the kernel cannot filter events
    /// by type (`release`: the running kernel's, as `uname -r` prints it).
    pub fn open(release: &str) -> io::Result<ExecEvents> {
        if !filters_by_type(release) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("Linux {release} cannot filter process events by type (6.6 and later can)"),
            ));
        }
        let mut socket = Socket::new(NETLINK_CONNECTOR)?;
        socket.bind(&SocketAddr::new(0, CN_IDX_PROC))?;
        socket.set_non_blocking(true)?;
        socket.send(&listen_message(), 0)?;
        Ok(ExecEvents {
            socket,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Reads every event that arrived since the last look, and reads the
    /// name of each process that started under `proc_root`.
    pub fn look(&mut self, proc_root: &Path) -> Seen {
        let mut seen = Seen::Nothing;
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => {
                    if exec_tgids(&self.buf)
                        .iter()
                        .any(|tgid| named_as_waiter(&proc_root.join(tgid.to_string())))
                    {
                        seen = Seen::Waiter;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return seen,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => seen = Seen::Lost,
                Err(_) => return Seen::Broken,
            }
        }
    }
}

/// Linux 6.6 and later read a `struct proc_input` (the operation and an
/// event type) where earlier kernels read the operation alone, and ignore
/// a message of any other size.
fn filters_by_type(release: &str) -> bool {
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 6),
        _ => false,
    }
}

/// The subscription: a netlink header, a connector header and a
/// `struct proc_input` that asks for exec events only, in native byte order.
fn listen_message() -> Vec<u8> {
    let payload = 8u16;
    let len = NLMSG_HDR + CN_MSG_HDR + usize::from(payload);
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&std::process::id().to_ne_bytes());
    m.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // ack
    m.extend_from_slice(&payload.to_ne_bytes());
    m.extend_from_slice(&0u16.to_ne_bytes()); // flags
    m.extend_from_slice(&MCAST_LISTEN.to_ne_bytes());
    m.extend_from_slice(&EVENT_EXEC.to_ne_bytes());
    m
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The thread group ids of the exec events in a datagram of netlink
/// messages; anything malformed ends the walk.
fn exec_tgids(datagram: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = u32_at(datagram, at).map(|l| l as usize) {
        if len < NLMSG_HDR || at + len > datagram.len() {
            break;
        }
        let msg = &datagram[at..at + len];
        let event = NLMSG_HDR + CN_MSG_HDR;
        // event_data.exec: process_pid, then process_tgid.
        if u32_at(msg, event) == Some(EVENT_EXEC)
            && let Some(tgid) = u32_at(msg, event + EVENT_HDR + 4)
        {
            out.push(tgid);
        }
        // Netlink messages are 4-byte aligned.
        at += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector datagram with one process event.
    fn event(what: u32, pid: u32, tgid: u32) -> Vec<u8> {
        let mut e = Vec::new();
        let len = NLMSG_HDR + CN_MSG_HDR + EVENT_HDR + 8;
        e.extend_from_slice(&(len as u32).to_ne_bytes());
        e.extend_from_slice(&[0; NLMSG_HDR - 4]);
        e.extend_from_slice(&[0; CN_MSG_HDR]);
        e.extend_from_slice(&what.to_ne_bytes());
        e.extend_from_slice(&[0; EVENT_HDR - 4]);
        e.extend_from_slice(&pid.to_ne_bytes());
        e.extend_from_slice(&tgid.to_ne_bytes());
        e
    }

    #[test]
    fn exec_events_give_their_thread_group() {
        let mut d = event(EVENT_EXEC, 41, 40);
        d.extend(event(0x8000_0000, 7, 7)); // an exit
        d.extend(event(EVENT_EXEC, 9, 9));
        assert_eq!(exec_tgids(&d), vec![40, 9]);
        assert_eq!(exec_tgids(&d[..10]), Vec::<u32>::new());
        let mut bad = event(EVENT_EXEC, 1, 1);
        bad[0] = 3; // shorter than a netlink header
        assert_eq!(exec_tgids(&bad), Vec::<u32>::new());
    }

    #[test]
    fn subscription_asks_for_exec_events_only() {
        let m = listen_message();
        assert_eq!(m.len(), 44);
        assert_eq!(u32_at(&m, 0), Some(44));
        assert_eq!(u32_at(&m, NLMSG_HDR), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&m, NLMSG_HDR + CN_MSG_HDR), Some(MCAST_LISTEN));
        assert_eq!(u32_at(&m, NLMSG_HDR + CN_MSG_HDR + 4), Some(EVENT_EXEC));
    }

    #[test]
    fn only_kernels_that_filter_events_are_asked() {
        assert!(filters_by_type("6.18.44-fc-v657"));
        assert!(filters_by_type("6.6.0"));
        assert!(filters_by_type("7.0-rc1"));
        assert!(!filters_by_type("6.5.13-amd64"));
        assert!(!filters_by_type("5.15.0-91-generic"));
        assert!(!filters_by_type("garbage"));
    }
}
