//! The program loaded into the kernel (aya), its attachments and its maps.

use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{DevMapHash, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues};
use aya::programs::{Xdp, XdpMode as AttachMode};
use aya::Ebpf;

use super::{
    client_to_peer, peer_to_client, ChannelRoute, Flow, Target, XdpCounters, XdpError, XdpMode,
    PROGRAM, PROGRAM_NAME,
};

/// `struct counter` of relay.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    packets: u64,
    bytes: u64,
}

// SAFETY: `repr(C)`, two u64s, no padding: every bit pattern is a valid value.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Counter {}

/// `struct channel_counters` of relay.bpf.c: [client → peer, peer → client].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ChannelCounters {
    dir: [Counter; 2],
}

// SAFETY: `repr(C)`, an array of two `Counter`s (u64s only), no padding.
#[allow(unsafe_code)]
unsafe impl aya::Pod for ChannelCounters {}

/// `BPF_NOEXIST`: create, never overwrite (a refreshed channel keeps its counts).
const BPF_NOEXIST: u64 = 1;

/// Where the program is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    /// "native" or "generic".
    pub mode: &'static str,
}

/// The loaded fast path. Dropping it closes the BPF links, which detaches
/// the program (so does the process dying: nothing stays attached).
pub struct FastPath {
    ebpf: Ebpf,
    c2p: HashMap<MapData, Flow, Target>,
    p2c: HashMap<MapData, Flow, Target>,
    stats: PerCpuArray<MapData, Counter>,
    channels: PerCpuHashMap<MapData, Flow, ChannelCounters>,
    cpus: usize,
    egress: DevMapHash<MapData>,
    ifmac: HashMap<MapData, u32, Mac>,
    attached: Vec<Attachment>,
}

/// `struct mac` of relay.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Mac {
    addr: [u8; 6],
    pad: u16,
}

// SAFETY: `repr(C)`, a byte array and a u16 with no padding: any bits are valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Mac {}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        reason: e.to_string(),
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM_NAME} in the object")))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| XdpError::Load(e.to_string()))
}

impl FastPath {
    /// Loads the program and its maps into the kernel (needs CAP_BPF and
    /// CAP_NET_ADMIN, or root). Nothing is attached yet.
    pub fn load() -> Result<Self, XdpError> {
        let bytes = PROGRAM.ok_or(XdpError::NotBuilt)?;
        let mut ebpf = Ebpf::load(bytes).map_err(|e| XdpError::Load(e.to_string()))?;
        program_mut(&mut ebpf)?
            .load()
            .map_err(|e| XdpError::Load(e.to_string()))?;
        let mut take = |name: &'static str| {
            ebpf.take_map(name).ok_or(XdpError::Map {
                map: name,
                reason: "missing from the object".into(),
            })
        };
        let c2p = HashMap::try_from(take("C2P")?).map_err(map_err("C2P"))?;
        let p2c = HashMap::try_from(take("P2C")?).map_err(map_err("P2C"))?;
        let stats = PerCpuArray::try_from(take("STATS")?).map_err(map_err("STATS"))?;
        let channels = PerCpuHashMap::try_from(take("CHANNELS")?).map_err(map_err("CHANNELS"))?;
        let cpus =
            aya::util::nr_cpus().map_err(|(what, e)| XdpError::Load(format!("{what}: {e}")))?;
        let egress = DevMapHash::try_from(take("EGRESS")?).map_err(map_err("EGRESS"))?;
        let ifmac = HashMap::try_from(take("IFMAC")?).map_err(map_err("IFMAC"))?;
        Ok(Self {
            ebpf,
            c2p,
            p2c,
            stats,
            channels,
            cpus,
            egress,
            ifmac,
            attached: Vec::new(),
        })
    }

    /// Attaches to `interface` through a BPF link. `Auto` tries native
    /// (driver) mode, then generic. The interface becomes a redirect target
    /// for frames that arrive on another attached interface.
    pub fn attach(&mut self, interface: &str, mode: XdpMode) -> Result<&Attachment, XdpError> {
        let ifindex = nix_if_nametoindex(interface).ok_or_else(|| XdpError::Attach {
            interface: interface.into(),
            mode: "any",
            reason: "no such interface".into(),
        })?;
        let tries: &[(AttachMode, &'static str)] = match mode {
            XdpMode::Native => &[(AttachMode::Driver, "native")],
            XdpMode::Generic => &[(AttachMode::Skb, "generic")],
            XdpMode::Auto => &[(AttachMode::Driver, "native"), (AttachMode::Skb, "generic")],
        };
        let mut last = String::new();
        let mut chosen = None;
        for (flags, name) in tries {
            let prog = program_mut(&mut self.ebpf)?;
            match prog.attach_to_if_index(ifindex, *flags) {
                Ok(_link) => {
                    chosen = Some(*name);
                    break;
                }
                Err(e) => last = format!("{e}"),
            }
        }
        let Some(mode_name) = chosen else {
            return Err(XdpError::Attach {
                interface: interface.into(),
                mode: match mode {
                    XdpMode::Native => "native",
                    XdpMode::Generic => "generic",
                    XdpMode::Auto => "native or generic",
                },
                reason: last,
            });
        };
        let mac = interface_mac(interface).ok_or_else(|| XdpError::Attach {
            interface: interface.into(),
            mode: mode_name,
            reason: "no Ethernet address".into(),
        })?;
        self.serve_interface(ifindex, mac)?;
        self.attached.push(Attachment {
            interface: interface.into(),
            ifindex,
            mode: mode_name,
        });
        self.attached
            .last()
            .ok_or_else(|| XdpError::Load("attachment vanished".into()))
    }

    /// Tells the program interface `ifindex` is one it serves: frames to
    /// `mac` arriving there may be relayed, and relayed frames may leave
    /// through it by XDP_REDIRECT. (`attach` does this; tests that only run
    /// the program call it directly.)
    pub fn serve_interface(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), XdpError> {
        self.ifmac
            .insert(ifindex, Mac { addr: mac, pad: 0 }, 0)
            .map_err(map_err("IFMAC"))?;
        self.egress
            .insert(ifindex, ifindex, None, 0)
            .map_err(|e| XdpError::Map {
                map: "EGRESS",
                reason: e.to_string(),
            })
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attached
    }

    /// Puts a channel on the fast path, both directions, until `until_ns`
    /// (CLOCK_MONOTONIC); replaces its earlier entries.
    pub fn offload(&mut self, ch: &ChannelRoute, until_ns: u64) -> Result<(), XdpError> {
        let (k, to) = client_to_peer(ch);
        self.c2p
            .insert(k, Target { to, until_ns }, 0)
            .map_err(map_err("C2P"))?;
        let (k, to) = peer_to_client(ch);
        self.p2c
            .insert(k, Target { to, until_ns }, 0)
            .map_err(map_err("P2C"))?;
        let (k, _) = client_to_peer(ch);
        let zeros =
            PerCpuValues::try_from(vec![ChannelCounters::default(); self.cpus]).map_err(|e| {
                XdpError::Map {
                    map: "CHANNELS",
                    reason: e.to_string(),
                }
            })?;
        match self.channels.insert(k, zeros, BPF_NOEXIST) {
            Ok(()) => Ok(()),
            // Already counting: a refresh moved the deadline, the counts stay.
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            Err(e) => Err(map_err("CHANNELS")(e)),
        }
    }

    /// What the program relayed on this channel since it was offloaded.
    pub fn channel_counters(&self, ch: &ChannelRoute) -> Result<XdpCounters, XdpError> {
        let (k, _) = client_to_peer(ch);
        match self.channels.get(&k, 0) {
            Ok(per_cpu) => Ok(per_cpu
                .iter()
                .fold(XdpCounters::default(), |t, c| XdpCounters {
                    packets_to_peers: t.packets_to_peers + c.dir[0].packets,
                    bytes_to_peers: t.bytes_to_peers + c.dir[0].bytes,
                    packets_to_clients: t.packets_to_clients + c.dir[1].packets,
                    bytes_to_clients: t.bytes_to_clients + c.dir[1].bytes,
                })),
            Err(aya::maps::MapError::KeyNotFound) => Ok(XdpCounters::default()),
            Err(e) => Err(map_err("CHANNELS")(e)),
        }
    }

    /// Takes a channel off the fast path and returns what the program
    /// relayed on it; absent entries are not an error.
    pub fn withdraw(&mut self, ch: &ChannelRoute) -> Result<XdpCounters, XdpError> {
        let (k, _) = client_to_peer(ch);
        let a = self.c2p.remove(&k);
        let (p, _) = peer_to_client(ch);
        let b = self.p2c.remove(&p);
        // Read after the entries are gone: nothing more can be counted.
        let totals = self.channel_counters(ch)?;
        let c = self.channels.remove(&k);
        for r in [a, b, c] {
            match r {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err("C2P/P2C/CHANNELS")(e)),
            }
        }
        Ok(totals)
    }

    /// Entries in the two direction maps.
    pub fn offloaded(&self) -> (usize, usize) {
        (self.c2p.keys().count(), self.p2c.keys().count())
    }

    /// What the program relayed, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let slot = |i: u32| -> Result<(u64, u64), XdpError> {
            let per_cpu = self.stats.get(&i, 0).map_err(map_err("STATS"))?;
            Ok(per_cpu
                .iter()
                .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes)))
        };
        let (packets_to_peers, bytes_to_peers) = slot(0)?;
        let (packets_to_clients, bytes_to_clients) = slot(1)?;
        Ok(XdpCounters {
            packets_to_peers,
            bytes_to_peers,
            packets_to_clients,
            bytes_to_clients,
        })
    }

    /// The program's descriptor (for `test_run`).
    pub fn program_fd(&mut self) -> Result<BorrowedFd<'_>, XdpError> {
        let prog = program_mut(&mut self.ebpf)?;
        prog.fd()
            .map(|fd| fd.as_fd())
            .map_err(|e| XdpError::Load(e.to_string()))
    }
}

/// An interface's Ethernet address (SIOCGIFHWADDR in this thread's network
/// namespace: sysfs may show another namespace's devices).
fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).ok()?;
    // SAFETY: `ifreq` is plain old data; all zeros is a valid value.
    #[allow(unsafe_code)]
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads `ifr_name` (NUL-terminated: the name is
    // shorter than IFNAMSIZ and the rest is zero) and writes the hardware
    // address into `ifr_ifru`; `req` outlives the call and the socket is open.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCGIFHWADDR,
            std::ptr::addr_of_mut!(req),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    #[allow(unsafe_code)]
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *m = *b as u8;
    }
    Some(mac)
}

fn nix_if_nametoindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    #[allow(unsafe_code)]
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}
