//! `ringturn --check-host`: what on this machine to change before running
//! ringturn on it, in the words of `tuning/README.md`.
//!
//! [`read_host`] reads the machine (procfs, sysfs, one io_uring probe) into
//! plain [`HostFacts`]; [`check`] and the `check_*` functions turn facts and
//! the configuration's wishes ([`Wanted`]) into [`Finding`]s without touching
//! the machine, so every finding is testable with made-up facts. Each finding
//! prints as one line, `ok|warn|fix: <what> — <what to do>`; `fix` means
//! "this should change" (and `--check-host` exits 1), `warn` "worth a look".
//!
//! This file holds the findings, [`Wanted`], the facts and [`check`]; each
//! check lives in its own file (`io_uring`, `buffers`, `open_files`, `cores`,
//! `ports`, `offload`, `xdp`), reading the machine in `host`, all re-exported
//! here.

mod buffers;
mod cores;
mod host;
mod io_uring;
mod offload;
mod open_files;
mod ports;
mod xdp;

pub use buffers::{check_backlog, check_buffer};
pub use cores::{check_cores, check_nics};
pub use host::{
    parse_cap_eff, parse_cpu_list, parse_net_admin, parse_open_files_limit, parse_port_range,
    read_host,
};
pub use io_uring::check_io_uring;
pub use offload::{check_gro, check_gso, parse_kernel_version};
pub use open_files::{check_open_files, open_files_needed};
pub use ports::check_port_range;
pub use xdp::{check_xdp, read_xdp, XdpFacts, XdpInterfaceFacts};

use std::fmt;

use crate::config::{Config, IoBackend};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Worth a look; ringturn runs well enough without a change.
    Warn,
    /// Should change: something will fail, drop packets or run slower.
    Fix,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fix => "fix",
        })
    }
}

/// One line of `--check-host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// What was found: "io_uring: available".
    pub what: String,
    /// What to do about it.
    pub todo: String,
}

impl Finding {
    fn new(level: Level, what: impl Into<String>, todo: impl Into<String>) -> Self {
        Self {
            level,
            what: what.into(),
            todo: todo.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — {}", self.level, self.what, self.todo)
    }
}

/// 0 when nothing must change, 1 when some finding is a `fix`.
pub fn exit_code(findings: &[Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.level == Level::Fix))
}

/// What the configuration asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
    pub min_port: u16,
    pub max_port: u16,
    pub workers: usize,
    pub cpu_affinity: Vec<usize>,
    pub io_backend: IoBackend,
    /// Listening sockets per worker.
    pub listeners: usize,
    /// Signaling connections at once, when signaling is on.
    pub signaling_connections: Option<usize>,
    /// `relay-socket-mode=shared`: the relay sockets in all (workers × relay
    /// IPs) instead of one per relay port. `None`: a socket per allocation.
    pub shared_relay_sockets: Option<u64>,
    /// `xdp-interface`: where the fast path should attach.
    pub xdp_interfaces: Vec<String>,
}

impl Wanted {
    pub fn from_config(c: &Config) -> Self {
        Self {
            rcvbuf: c.socket_rcvbuf,
            sndbuf: c.socket_sndbuf,
            min_port: c.min_port,
            max_port: c.max_port,
            workers: c.workers.max(1),
            cpu_affinity: c.cpu_affinity.clone(),
            io_backend: c.io_backend,
            listeners: c.listening.len(),
            signaling_connections: c
                .signaling_listening_port
                .map(|_| c.signaling_max_connections),
            shared_relay_sockets: (c.relay_socket_mode == crate::turn::RelaySocketMode::Shared)
                .then(|| (c.workers.max(1) * c.relay_ips.len().max(1)) as u64),
            xdp_interfaces: c.xdp_interfaces.clone(),
        }
    }

    fn relay_ports(&self) -> u64 {
        u64::from(self.max_port.saturating_sub(self.min_port)) + 1
    }

    /// Relay sockets ringturn may hold: one per port of the range, or in
    /// shared mode one per worker and relay IP.
    fn relay_sockets(&self) -> u64 {
        self.shared_relay_sockets
            .unwrap_or_else(|| self.relay_ports())
    }
}

/// What io_uring looks like here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoUringFacts {
    /// `kernel.io_uring_disabled` (Linux 6.6+): 0 on, 1 root/group only, 2 off.
    pub sysctl: Option<u32>,
    /// Setting up ringturn's io_uring backend: `Err` says why it failed.
    pub probe: Result<(), String>,
}

/// `Max open files` of a process; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// A network interface backed by a device (not lo, veth, bridges, ifb).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub rx_queues: usize,
    /// Cores its interrupts may be delivered to (empty: not visible).
    pub irq_cores: Vec<usize>,
}

/// Everything `--check-host` reads; `None` where it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub io_uring: IoUringFacts,
    pub rmem_max: Option<u64>,
    pub wmem_max: Option<u64>,
    pub netdev_max_backlog: Option<u64>,
    /// CAP_NET_ADMIN in the effective set: SO_RCVBUFFORCE passes rmem_max.
    pub net_admin: bool,
    pub open_files: Option<FileLimit>,
    pub file_max: Option<u64>,
    /// Cores this process may run on.
    pub cores: usize,
    /// Online cores (`/sys/devices/system/cpu/online`).
    pub online: Option<Vec<usize>>,
    /// `None`: /sys/class/net not readable.
    pub nics: Option<Vec<Nic>>,
    pub local_port_range: Option<(u16, u16)>,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: Option<String>,
    /// The fast path and the configured `xdp-interface`s.
    pub xdp: XdpFacts,
    pub xdp_interfaces: Vec<XdpInterfaceFacts>,
}

/// Every finding for these facts and wishes, in a fixed order: io_uring,
/// buffers, backlog, open files, cores, NIC queues, port range, GSO.
pub fn check(facts: &HostFacts, wanted: &Wanted) -> Vec<Finding> {
    let mut out = vec![check_io_uring(&facts.io_uring, wanted.io_backend)];
    out.push(check_buffer(
        "receive",
        "net.core.rmem_max",
        wanted.rcvbuf,
        facts.rmem_max,
        facts.net_admin,
    ));
    out.push(check_buffer(
        "send",
        "net.core.wmem_max",
        wanted.sndbuf,
        facts.wmem_max,
        facts.net_admin,
    ));
    out.push(check_backlog(facts.netdev_max_backlog));
    out.push(check_open_files(
        facts.open_files,
        facts.file_max,
        open_files_needed(wanted),
        wanted.relay_sockets(),
    ));
    out.extend(check_cores(facts.cores, facts.online.as_deref(), wanted));
    out.extend(check_nics(facts.nics.as_deref(), wanted));
    out.push(check_port_range(
        facts.local_port_range,
        wanted.min_port,
        wanted.max_port,
    ));
    out.push(check_gso(facts.kernel.as_deref()));
    out.push(check_gro(facts.kernel.as_deref()));
    out.extend(check_xdp(facts.xdp, &facts.xdp_interfaces));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    pub(super) fn wanted() -> Wanted {
        Wanted {
            rcvbuf: Some(4 << 20),
            sndbuf: Some(4 << 20),
            min_port: 49152,
            max_port: 65535,
            workers: 12,
            cpu_affinity: (4..16).collect(),
            io_backend: IoBackend::Auto,
            listeners: 1,
            signaling_connections: None,
            shared_relay_sockets: None,
            xdp_interfaces: Vec::new(),
        }
    }

    fn good_host() -> HostFacts {
        HostFacts {
            io_uring: IoUringFacts {
                sysctl: Some(0),
                probe: Ok(()),
            },
            rmem_max: Some(8 << 20),
            wmem_max: Some(8 << 20),
            netdev_max_backlog: Some(16_384),
            net_admin: false,
            open_files: Some(FileLimit {
                soft: Some(1 << 20),
                hard: Some(1 << 20),
            }),
            file_max: Some(u64::MAX >> 1),
            cores: 16,
            online: Some((0..16).collect()),
            nics: Some(vec![Nic {
                name: "eth0".into(),
                rx_queues: 3,
                irq_cores: vec![1, 2, 3],
            }]),
            local_port_range: Some((10000, 19999)),
            kernel: Some("6.8.0-45-generic".into()),
            xdp: XdpFacts {
                built: true,
                privileged: true,
            },
            xdp_interfaces: Vec::new(),
        }
    }

    #[test]
    fn a_tuned_host_is_all_ok_and_exits_0() {
        let findings = check(&good_host(), &wanted());
        for f in &findings {
            assert_eq!(f.level, Level::Ok, "{f}");
        }
        assert_eq!(exit_code(&findings), 0);
        let text: Vec<String> = findings.iter().map(ToString::to_string).collect();
        for word in [
            "io_uring",
            "receive buffers",
            "send buffers",
            "open files",
            "cores",
            "NIC queues",
            "UDP GSO",
            "UDP GRO",
        ] {
            assert!(text.iter().any(|l| l.contains(word)), "no {word} line");
        }
        assert!(text
            .iter()
            .all(|l| l.starts_with("ok: ") && l.contains(" — ")));
    }
}
