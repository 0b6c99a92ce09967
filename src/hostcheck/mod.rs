//! `ringturn --check-host`: what on this machine to change before running
//! ringturn on it, in the words of `tuning/README.md`.
//!
//! [`read_host`] reads the machine (procfs, sysfs, one io_uring probe) into
//! plain [`HostFacts`]; [`check`] and the `check_*` functions turn facts and
//! the configuration's wishes ([`Wanted`]) into [`Finding`]s without touching
//! the machine, so every finding is testable with made-up facts. Each finding
//! prints as one line, `ok|warn|fix: <what> — <what to do>`; `fix` means
//! "this should change" (and `--check-host` exits 1), `warn` "worth a look".

mod xdp;
pub use xdp::{check_xdp, read_xdp, XdpFacts, XdpInterfaceFacts};

use std::fmt;
use std::path::Path;

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

pub fn check_io_uring(facts: &IoUringFacts, backend: IoBackend) -> Finding {
    let sysctl_hint = "set kernel.io_uring_disabled=0 (tuning/sysctl.conf)";
    match (&facts.probe, backend) {
        (Ok(()), IoBackend::Batch) => Finding::new(
            Level::Ok,
            "io_uring: available, but io-backend=batch is configured",
            "nothing to change; io-backend=auto would use it (tuning/README.md, io_uring)",
        ),
        (Ok(()), _) => Finding::new(
            Level::Ok,
            "io_uring: available",
            "nothing to change; io-backend=auto uses it",
        ),
        (Err(_), IoBackend::Batch) => Finding::new(
            Level::Ok,
            "io_uring: unavailable, io-backend=batch is configured",
            "nothing to change (recvmmsg/sendmmsg with GSO)",
        ),
        (Err(e), IoBackend::Uring) => Finding::new(
            Level::Fix,
            format!("io_uring: unavailable ({e}) but io-backend=uring is configured, so ringturn will not start"),
            format!("{sysctl_hint}, allow io_uring in the container's seccomp profile, or use io-backend=auto"),
        ),
        (Err(e), IoBackend::Auto) => match facts.sysctl {
            Some(v) if v > 0 => Finding::new(
                Level::Fix,
                format!("io_uring: disabled by kernel.io_uring_disabled={v}; ringturn falls back to the batch backend"),
                sysctl_hint,
            ),
            _ => Finding::new(
                Level::Warn,
                format!("io_uring: unavailable ({e}); ringturn falls back to the batch backend"),
                "allow io_uring (seccomp profile of the container, kernel 6.0+), or set io-backend=batch to say so",
            ),
        },
    }
}

const MIB: u64 = 1 << 20;

fn bytes(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Socket buffer `kind` ("receive" / "send") against its sysctl cap.
pub fn check_buffer(
    kind: &str,
    sysctl: &str,
    configured: Option<usize>,
    max: Option<u64>,
    net_admin: bool,
) -> Finding {
    let key = if kind == "receive" {
        "socket-rcvbuf"
    } else {
        "socket-sndbuf"
    };
    let Some(want) = configured.map(|n| n as u64) else {
        return Finding::new(
            Level::Ok,
            format!("{kind} buffers: {key} unset, the kernel default applies"),
            "nothing to change (ringturn's default is 4 MiB; tuning/README.md, Socket buffers)",
        );
    };
    match max {
        None => Finding::new(
            Level::Warn,
            format!("{kind} buffers: {sysctl} not readable"),
            format!(
                "make sure {sysctl} ≥ {} (tuning/sysctl.conf)",
                bytes(want)
            ),
        ),
        Some(max) if max >= want => Finding::new(
            Level::Ok,
            format!("{kind} buffers: {sysctl} = {} ≥ {key} {}", bytes(max), bytes(want)),
            "nothing to change",
        ),
        Some(max) if net_admin => Finding::new(
            Level::Warn,
            format!(
                "{kind} buffers: {sysctl} = {} < {key} {}; as root (CAP_NET_ADMIN) ringturn forces {} anyway",
                bytes(max),
                bytes(want),
                bytes(want)
            ),
            format!(
                "raise {sysctl} to {} (tuning/sysctl.conf) if ringturn runs without CAP_NET_ADMIN",
                want
            ),
        ),
        Some(max) => Finding::new(
            Level::Fix,
            format!(
                "{kind} buffers: {sysctl} = {} caps {key} {} (bursts overflow and drop)",
                bytes(max),
                bytes(want)
            ),
            format!("sysctl -w {sysctl}={want} (tuning/sysctl.conf), or run ringturn with CAP_NET_ADMIN"),
        ),
    }
}

/// Packets queued per core between the NIC and the stack.
pub fn check_backlog(backlog: Option<u64>) -> Finding {
    const WANT: u64 = 16_384;
    match backlog {
        Some(n) if n >= WANT => Finding::new(
            Level::Ok,
            format!("net.core.netdev_max_backlog = {n}"),
            "nothing to change",
        ),
        Some(n) => Finding::new(
            Level::Warn,
            format!("net.core.netdev_max_backlog = {n}: a burst on a busy NIC queue drops before the socket"),
            format!("sysctl -w net.core.netdev_max_backlog={WANT} on hosts with 10G+ NICs (tuning/sysctl.conf)"),
        ),
        None => Finding::new(
            Level::Warn,
            "net.core.netdev_max_backlog not readable",
            format!("make sure it is ≥ {WANT} (tuning/sysctl.conf)"),
        ),
    }
}

/// Descriptors ringturn may hold at once: a socket per relay port (one per
/// allocation; in shared relay socket mode one per worker and relay IP), each worker's listeners, eventfd, ring or epoll, the
/// signaling connections, and some slack.
pub fn open_files_needed(w: &Wanted) -> u64 {
    let per_worker = w.listeners as u64 + 4;
    let signaling = w.signaling_connections.map_or(0, |n| n as u64 + 16);
    w.relay_sockets() + w.workers as u64 * per_worker + signaling + 64
}

/// The open-file limit against what ringturn may need.
pub fn check_open_files(
    limit: Option<FileLimit>,
    file_max: Option<u64>,
    need: u64,
    relay_sockets: u64,
) -> Finding {
    let suggest = need.next_power_of_two().max(65_536);
    let todo = format!(
        "ulimit -n {suggest} in the shell that starts ringturn, or LimitNOFILE={suggest} in its systemd unit (tuning/README.md, Open files)"
    );
    if let Some(max) = file_max {
        if max < need {
            return Finding::new(
                Level::Fix,
                format!("open files: fs.file-max = {max} < {need} needed"),
                format!("sysctl -w fs.file-max=2097152 (tuning/sysctl.conf), then {todo}"),
            );
        }
    }
    match limit {
        None => Finding::new(
            Level::Warn,
            "open files: limit not readable",
            format!("make sure it is ≥ {need}: {todo}"),
        ),
        Some(FileLimit { soft: None, .. }) => {
            Finding::new(Level::Ok, "open files: unlimited", "nothing to change")
        }
        Some(FileLimit { soft: Some(s), .. }) if s >= need => Finding::new(
            Level::Ok,
            format!(
                "open files: limit {s} ≥ {need} needed ({relay_sockets} relay sockets and the rest)"
            ),
            "nothing to change",
        ),
        Some(FileLimit {
            soft: Some(s),
            hard,
        }) => {
            let hard_note = match hard {
                Some(h) if h < need => format!("; the hard limit {h} is too low as well (LimitNOFILE, or ulimit -n as root, raises both)"),
                _ => String::new(),
            };
            Finding::new(
                Level::Fix,
                format!(
                    "open files: limit {s} < {need} needed ({relay_sockets} relay sockets — one per relay port unless relay-socket-mode=shared — plus listeners, rings and signaling connections){hard_note}; allocations fail once it is reached"
                ),
                todo,
            )
        }
    }
}

/// Core count, worker count and pinning.
pub fn check_cores(cores: usize, online: Option<&[usize]>, w: &Wanted) -> Vec<Finding> {
    let mut out = Vec::new();
    let online_n = online.map_or(cores, <[usize]>::len);
    let summary = format!(
        "cores: {cores} usable ({online_n} online), {} worker{}",
        w.workers,
        if w.workers == 1 { "" } else { "s" }
    );
    if w.workers > cores {
        out.push(Finding::new(
            Level::Fix,
            format!("{summary}: more workers than cores, so they preempt each other"),
            format!("set workers={cores} or fewer, one per core (tuning/README.md, Core pinning)"),
        ));
    } else if w.cpu_affinity.is_empty() && cores > 2 {
        out.push(Finding::new(
            Level::Warn,
            format!("{summary}, not pinned"),
            "pin workers with cpu-affinity, leaving core 0 and the NIC's interrupt cores out (tuning/16-core.conf, tuning/README.md, Core pinning)",
        ));
    } else {
        out.push(Finding::new(Level::Ok, summary, "nothing to change"));
    }
    if let Some(online) = online {
        let missing: Vec<usize> = w
            .cpu_affinity
            .iter()
            .copied()
            .filter(|c| !online.contains(c))
            .collect();
        if !missing.is_empty() {
            out.push(Finding::new(
                Level::Fix,
                format!(
                    "cpu-affinity: cores {} are not online here; those workers run unpinned",
                    cpu_list(&missing)
                ),
                format!(
                    "pin to cores in {} (tuning/README.md, Core pinning)",
                    cpu_list(online)
                ),
            ));
        }
    }
    if cores > 2 && w.cpu_affinity.contains(&0) {
        out.push(Finding::new(
            Level::Warn,
            "cpu-affinity: a worker is pinned to core 0, where the system's own work and many interrupts land",
            "leave core 0 out of cpu-affinity (tuning/README.md, Core pinning)",
        ));
    }
    out
}

/// NIC receive queues against workers, and interrupt cores against pinned workers.
pub fn check_nics(nics: Option<&[Nic]>, w: &Wanted) -> Vec<Finding> {
    let Some(nics) = nics else {
        return vec![Finding::new(
            Level::Warn,
            "NIC queues: /sys/class/net not readable",
            "check with ethtool -l IFACE (tuning/README.md, NIC interrupts and RSS)",
        )];
    };
    if nics.is_empty() {
        return vec![Finding::new(
            Level::Ok,
            "NIC queues: no physical interface visible (container or loopback only)",
            "tune the host's NIC instead (tuning/README.md, NIC interrupts and RSS)",
        )];
    }
    let mut out = Vec::new();
    for nic in nics {
        let name = &nic.name;
        let q = nic.rx_queues;
        if q <= 1 && w.workers > 1 {
            out.push(Finding::new(
                Level::Warn,
                format!("NIC queues: {name} has {q} receive queue: every packet is received on one core"),
                format!("ethtool -L {name} combined N where the NIC allows (a virtio NIC: more queues in the VM's definition), else spread with RPS: echo <mask> > /sys/class/net/{name}/queues/rx-0/rps_cpus (tuning/README.md, NIC interrupts and RSS)"),
            ));
        } else {
            out.push(Finding::new(
                Level::Ok,
                format!("NIC queues: {name} has {q} receive queue{}", if q == 1 { "" } else { "s" }),
                "pin each queue's interrupt to its own core outside cpu-affinity (tuning/README.md, NIC interrupts and RSS)",
            ));
        }
        let overlap: Vec<usize> = nic
            .irq_cores
            .iter()
            .copied()
            .filter(|c| w.cpu_affinity.contains(c))
            .collect();
        if !overlap.is_empty() {
            out.push(Finding::new(
                Level::Warn,
                format!("NIC interrupts: {name}'s interrupts may land on worker cores {}", cpu_list(&overlap)),
                "stop irqbalance and write the NIC's cores to /proc/irq/N/smp_affinity_list, outside cpu-affinity (tuning/README.md, NIC interrupts and RSS)",
            ));
        }
    }
    out
}

/// `net.ipv4.ip_local_port_range` against min-port..max-port.
pub fn check_port_range(local: Option<(u16, u16)>, min: u16, max: u16) -> Finding {
    match local {
        None => Finding::new(
            Level::Warn,
            "local port range: net.ipv4.ip_local_port_range not readable",
            format!("make sure it does not overlap the relay ports {min}-{max} (tuning/sysctl.conf)"),
        ),
        Some((lo, hi)) if lo <= max && min <= hi => Finding::new(
            Level::Warn,
            format!(
                "local port range: net.ipv4.ip_local_port_range {lo}-{hi} overlaps the relay ports {min}-{max}; the host's outgoing connections can take relay ports"
            ),
            format!(
                "sysctl -w net.ipv4.ip_local_port_range=\"10000 19999\" (tuning/sysctl.conf), or net.ipv4.ip_local_reserved_ports={min}-{max}"
            ),
        ),
        Some((lo, hi)) => Finding::new(
            Level::Ok,
            format!("local port range: {lo}-{hi}, apart from the relay ports {min}-{max}"),
            "nothing to change",
        ),
    }
}

/// `6.18.44-fc` → (6, 18).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A UDP offload the kernel has from version `since` on.
struct Offload {
    /// "GSO", "GRO".
    name: &'static str,
    /// The socket option: "UDP_SEGMENT", "UDP_GRO".
    option: &'static str,
    since: (u32, u32),
    /// What an older kernel costs.
    without: &'static str,
    /// Its counters on /metrics.
    counters: &'static str,
}

fn check_offload(kernel: Option<&str>, o: &Offload) -> Finding {
    let (name, option, counters) = (o.name, o.option, o.counters);
    let counters = format!("its use shows in {counters} on /metrics (tuning/README.md, GSO)");
    match kernel.and_then(|k| parse_kernel_version(k).map(|v| (k.trim(), v))) {
        Some((k, v)) if v >= o.since => Finding::new(
            Level::Ok,
            format!("UDP {name}: kernel {k} has {option}"),
            format!("nothing to change; {counters}"),
        ),
        Some((k, _)) => Finding::new(
            Level::Warn,
            format!(
                "UDP {name}: kernel {k} predates {option} ({}.{}); {}",
                o.since.0, o.since.1, o.without
            ),
            "upgrade the kernel (5.10+; io_uring wants 6.0+)",
        ),
        None => Finding::new(
            Level::Warn,
            format!("UDP {name}: kernel version not readable"),
            format!("ringturn tries {name} and falls back for good if refused; {counters}"),
        ),
    }
}

/// UDP GSO (UDP_SEGMENT) came in Linux 4.18.
pub fn check_gso(kernel: Option<&str>) -> Finding {
    check_offload(
        kernel,
        &Offload {
            name: "GSO",
            option: "UDP_SEGMENT",
            since: (4, 18),
            without: "every datagram takes its own trip through the send path",
            counters: "ringturn_gso_sends_total / ringturn_gso_fallbacks_total",
        },
    )
}

/// UDP GRO on receive (UDP_GRO) came in Linux 5.0.
pub fn check_gro(kernel: Option<&str>) -> Finding {
    check_offload(
        kernel,
        &Offload {
            name: "GRO",
            option: "UDP_GRO",
            since: (5, 0),
            without: "a busy peer's bursts arrive one datagram per receive",
            counters: "ringturn_gro_receives_total / ringturn_gro_fallbacks_total",
        },
    )
}

/// `0-3,8,10-11` → [0, 1, 2, 3, 8, 10, 11].
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// [0, 1, 2, 5] → `0-2,5`.
fn cpu_list(cores: &[usize]) -> String {
    let mut sorted = cores.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The `Max open files` line of `/proc/self/limits`.
pub fn parse_open_files_limit(limits: &str) -> Option<FileLimit> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.trim_start_matches("Max open files").split_whitespace();
    let value = |s: Option<&str>| -> Option<Option<u64>> {
        match s? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some(FileLimit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

/// The effective capability set: the `CapEff:` line of `/proc/self/status`
/// (0 when absent or unreadable).
pub fn parse_cap_eff(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// CAP_NET_ADMIN (bit 12) in the effective set.
pub fn parse_net_admin(status: &str) -> bool {
    parse_cap_eff(status) & (1 << 12) != 0
}

/// `32768\t60999` → (32768, 60999).
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace();
    let lo = it.next()?.parse().ok()?;
    let hi = it.next()?.parse().ok()?;
    Some((lo, hi))
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &str) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

fn read_nics() -> Option<Vec<Nic>> {
    let mut nics = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").ok()?.flatten() {
        let dir = entry.path();
        // Only interfaces backed by a device: not lo, veth, bridges, ifb.
        if !dir.join("device").exists() {
            continue;
        }
        let rx_queues = std::fs::read_dir(dir.join("queues"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .unwrap_or(0);
        // MSI interrupts of the PCI function (virtio: its parent).
        let irqs = std::fs::read_dir(dir.join("device/msi_irqs"))
            .or_else(|_| std::fs::read_dir(dir.join("device/../msi_irqs")));
        let mut irq_cores = Vec::new();
        if let Ok(irqs) = irqs {
            for irq in irqs.flatten() {
                let name = irq.file_name().to_string_lossy().into_owned();
                if let Some(cores) = read(format!("/proc/irq/{name}/smp_affinity_list"))
                    .and_then(|s| parse_cpu_list(&s))
                {
                    irq_cores.extend(cores);
                }
            }
        }
        irq_cores.sort_unstable();
        irq_cores.dedup();
        nics.push(Nic {
            name: entry.file_name().to_string_lossy().into_owned(),
            rx_queues,
            irq_cores,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Some(nics)
}

/// Reads this machine: procfs, sysfs, and one io_uring backend set up and
/// dropped; and each of `xdp_interfaces`.
pub fn read_host(xdp_interfaces: &[String]) -> HostFacts {
    let (xdp, xdp_interfaces) = read_xdp(xdp_interfaces);
    let probe = crate::io::create_backend(Some(crate::io::BackendKind::Uring))
        .map(drop)
        .map_err(|e| e.to_string());
    HostFacts {
        io_uring: IoUringFacts {
            sysctl: read_u64("/proc/sys/kernel/io_uring_disabled").map(|v| v as u32),
            probe,
        },
        rmem_max: read_u64("/proc/sys/net/core/rmem_max"),
        wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
        netdev_max_backlog: read_u64("/proc/sys/net/core/netdev_max_backlog"),
        net_admin: read("/proc/self/status").is_some_and(|s| parse_net_admin(&s)),
        open_files: read("/proc/self/limits").and_then(|s| parse_open_files_limit(&s)),
        file_max: read_u64("/proc/sys/fs/file-max"),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        online: read("/sys/devices/system/cpu/online").and_then(|s| parse_cpu_list(&s)),
        nics: read_nics(),
        local_port_range: read("/proc/sys/net/ipv4/ip_local_port_range")
            .and_then(|s| parse_port_range(&s)),
        kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        xdp,
        xdp_interfaces,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn wanted() -> Wanted {
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

    #[test]
    fn io_uring_findings() {
        let works = IoUringFacts {
            sysctl: None,
            probe: Ok(()),
        };
        let fails = |sysctl| IoUringFacts {
            sysctl,
            probe: Err("Operation not permitted".into()),
        };
        assert_eq!(check_io_uring(&works, IoBackend::Auto).level, Level::Ok);
        assert_eq!(check_io_uring(&works, IoBackend::Batch).level, Level::Ok);
        assert_eq!(
            check_io_uring(&fails(None), IoBackend::Batch).level,
            Level::Ok
        );
        let f = check_io_uring(&fails(Some(2)), IoBackend::Auto);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("kernel.io_uring_disabled=0"), "{f}");
        assert_eq!(
            check_io_uring(&fails(None), IoBackend::Auto).level,
            Level::Warn
        );
        let f = check_io_uring(&fails(Some(0)), IoBackend::Uring);
        assert_eq!(f.level, Level::Fix);
        assert!(f.what.contains("will not start"), "{f}");
    }

    #[test]
    fn buffer_findings() {
        let f = check_buffer(
            "receive",
            "net.core.rmem_max",
            Some(4 << 20),
            Some(212_992),
            false,
        );
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("net.core.rmem_max=4194304"), "{f}");
        assert!(
            f.what.contains("208 KiB") && f.what.contains("4 MiB"),
            "{f}"
        );
        let f = check_buffer(
            "receive",
            "net.core.rmem_max",
            Some(4 << 20),
            Some(212_992),
            true,
        );
        assert_eq!(f.level, Level::Warn);
        assert!(f.what.contains("CAP_NET_ADMIN"), "{f}");
        let f = check_buffer(
            "send",
            "net.core.wmem_max",
            Some(4 << 20),
            Some(4 << 20),
            false,
        );
        assert_eq!(f.level, Level::Ok);
        let f = check_buffer("send", "net.core.wmem_max", None, Some(1), false);
        assert_eq!(f.level, Level::Ok);
        let f = check_buffer("send", "net.core.wmem_max", Some(1 << 20), None, false);
        assert_eq!(f.level, Level::Warn);
    }

    #[test]
    fn backlog_findings() {
        assert_eq!(check_backlog(Some(1000)).level, Level::Warn);
        assert_eq!(check_backlog(Some(16_384)).level, Level::Ok);
        assert_eq!(check_backlog(None).level, Level::Warn);
    }

    #[test]
    fn open_file_findings() {
        let w = wanted();
        let need = open_files_needed(&w);
        // 16384 ports + 12 workers × 5 + 64.
        assert_eq!(need, 16_384 + 60 + 64);
        let with_signaling = Wanted {
            signaling_connections: Some(10_000),
            ..w.clone()
        };
        assert_eq!(open_files_needed(&with_signaling), need + 10_016);
        // Shared relay sockets: 12 workers × 1 relay IP instead of 16384 ports.
        let shared = Wanted {
            shared_relay_sockets: Some(12),
            ..w.clone()
        };
        assert_eq!(open_files_needed(&shared), 12 + 60 + 64);

        let limit = |soft, hard| {
            Some(FileLimit {
                soft: Some(soft),
                hard: Some(hard),
            })
        };
        let f = check_open_files(limit(1024, 4096), None, need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("ulimit -n 65536"), "{f}");
        assert!(f.todo.contains("LimitNOFILE=65536"), "{f}");
        assert!(f.what.contains("hard limit 4096"), "{f}");
        let f = check_open_files(limit(1024, 1 << 20), None, need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(!f.what.contains("hard limit"), "{f}");
        assert_eq!(
            check_open_files(limit(65_536, 65_536), None, need, 16_384).level,
            Level::Ok
        );
        let unlimited = Some(FileLimit {
            soft: None,
            hard: None,
        });
        assert_eq!(
            check_open_files(unlimited, None, need, 16_384).level,
            Level::Ok
        );
        let f = check_open_files(limit(1 << 20, 1 << 20), Some(8192), need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("fs.file-max"), "{f}");
        assert_eq!(
            check_open_files(None, None, need, 16_384).level,
            Level::Warn
        );
        // Over 65536 needed: the next power of two.
        let f = check_open_files(limit(1024, 1024), None, 70_000, 65_536);
        assert!(f.todo.contains("ulimit -n 131072"), "{f}");
    }

    #[test]
    fn core_findings() {
        let online: Vec<usize> = (0..16).collect();
        let w = wanted();
        let f = check_cores(16, Some(&online), &w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Ok);
        assert!(f[0].what.contains("16 usable"), "{}", f[0]);

        let too_many = Wanted {
            workers: 32,
            ..w.clone()
        };
        assert_eq!(
            check_cores(16, Some(&online), &too_many)[0].level,
            Level::Fix
        );

        let unpinned = Wanted {
            cpu_affinity: vec![],
            ..w.clone()
        };
        assert_eq!(
            check_cores(16, Some(&online), &unpinned)[0].level,
            Level::Warn
        );
        // A 2-core VM: not pinning is fine.
        let small = Wanted {
            workers: 2,
            cpu_affinity: vec![],
            ..w.clone()
        };
        assert_eq!(check_cores(2, Some(&[0, 1]), &small)[0].level, Level::Ok);

        let offline = Wanted {
            workers: 2,
            cpu_affinity: vec![1, 40, 41],
            ..w.clone()
        };
        let f = check_cores(16, Some(&online), &offline);
        let missing = f.iter().find(|f| f.what.contains("not online")).unwrap();
        assert_eq!(missing.level, Level::Fix);
        assert!(missing.what.contains("40-41"), "{missing}");

        let core0 = Wanted {
            workers: 4,
            cpu_affinity: vec![0, 1, 2, 3],
            ..w
        };
        let f = check_cores(16, Some(&online), &core0);
        assert!(f
            .iter()
            .any(|f| f.level == Level::Warn && f.what.contains("core 0")));
    }

    #[test]
    fn nic_findings() {
        let w = wanted();
        let nic = |rx_queues, irq_cores: Vec<usize>| Nic {
            name: "eth0".into(),
            rx_queues,
            irq_cores,
        };
        let f = check_nics(Some(&[nic(1, vec![0])]), &w);
        assert_eq!(f[0].level, Level::Warn);
        assert!(f[0].todo.contains("ethtool -L eth0"), "{}", f[0]);
        let f = check_nics(Some(&[nic(8, vec![1, 2, 3])]), &w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Ok);
        let f = check_nics(Some(&[nic(8, (0..16).collect())]), &w);
        assert_eq!(f[1].level, Level::Warn);
        assert!(f[1].what.contains("4-15"), "{}", f[1]);
        assert!(f[1].todo.contains("smp_affinity_list"), "{}", f[1]);
        assert_eq!(check_nics(Some(&[]), &w)[0].level, Level::Ok);
        assert_eq!(check_nics(None, &w)[0].level, Level::Warn);
    }

    #[test]
    fn port_range_findings() {
        let f = check_port_range(Some((32768, 60999)), 49152, 65535);
        assert_eq!(f.level, Level::Warn);
        assert!(f.todo.contains("ip_local_port_range"), "{f}");
        assert_eq!(
            check_port_range(Some((10000, 19999)), 49152, 65535).level,
            Level::Ok
        );
        assert_eq!(
            check_port_range(Some((32768, 49152)), 49152, 65535).level,
            Level::Warn
        );
        assert_eq!(
            check_port_range(Some((32768, 49151)), 49152, 65535).level,
            Level::Ok
        );
        assert_eq!(check_port_range(None, 49152, 65535).level, Level::Warn);
    }

    #[test]
    fn gro_findings() {
        assert_eq!(check_gro(Some("6.18.44-fc-v669")).level, Level::Ok);
        assert_eq!(check_gro(Some("5.0.0")).level, Level::Ok);
        assert_eq!(check_gro(Some("4.19.0-21-amd64")).level, Level::Warn);
        assert_eq!(check_gro(None).level, Level::Warn);
    }

    #[test]
    fn gso_findings() {
        assert_eq!(check_gso(Some("6.18.44-fc-v669")).level, Level::Ok);
        assert_eq!(check_gso(Some("4.18.0-80.el8.x86_64")).level, Level::Ok);
        assert_eq!(check_gso(Some("4.15.0-20-generic")).level, Level::Warn);
        assert_eq!(check_gso(Some("garbage")).level, Level::Warn);
        assert_eq!(check_gso(None).level, Level::Warn);
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_kernel_version("6.18.44-fc"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.4"), Some((5, 4)));
        assert_eq!(parse_kernel_version("x"), None);
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(cpu_list(&[5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(
            parse_open_files_limit(limits),
            Some(FileLimit {
                soft: Some(1024),
                hard: Some(524_288)
            })
        );
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            Some(FileLimit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(parse_open_files_limit("nothing"), None);
        assert!(parse_net_admin("Name:\tx\nCapEff:\t000001fffeffffff\n"));
        assert!(!parse_net_admin("CapEff:\t0000000000000000\n"));
        assert!(!parse_net_admin(""));
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
    }

    #[test]
    fn read_host_does_not_panic() {
        let facts = read_host(&["nosuch0".to_owned()]);
        assert!(facts.cores >= 1);
        let findings = check(&facts, &wanted());
        assert!(findings.len() >= 8);
    }
}
