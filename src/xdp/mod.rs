//! The kernel fast path (issue 11): an XDP program (`relay.bpf.c`, built by
//! build.rs with clang) that relays ChannelData ⇄ UDP for bound channels in
//! the driver, and the userspace side that loads it (aya), attaches it
//! through BPF links and writes its maps.
//!
//! Who writes what: the workers decide (the sans-IO core says when a channel
//! may take the fast path and when it stops); this module only turns those
//! decisions into map entries:
//!
//! ```text
//!   worker ──insert/remove──▶ C2P  {client → listening, channel} → {relay → peer, until}
//!          ──insert/remove──▶ P2C  {peer → relay}               → {listening → client, channel, until}
//!   run    ──insert─────────▶ EGRESS  ifindex → ifindex (interfaces a frame may be redirected to)
//!   program ──count─────────▶ STATS   per CPU: [client → peer, peer → client] packets and bytes
//!   worker ──create/read/delete─▶ CHANNELS per channel and CPU: the same two, counted by the program
//! ```
//!
//! This is I/O: the only place besides `io` with `unsafe` (the map value
//! types are plain old data for aya, and `BPF_PROG_TEST_RUN` is a raw
//! syscall), each block with its reason.

mod flow;
pub mod test_run;

pub use crate::turn::ChannelRoute;
pub use flow::{Flow, Target};

/// The compiled program, when clang was there at build time.
#[cfg(ringturn_xdp)]
pub static PROGRAM: Option<&[u8]> = Some(aya::include_bytes_aligned!(concat!(
    env!("OUT_DIR"),
    "/relay.bpf.o"
)));
#[cfg(not(ringturn_xdp))]
pub static PROGRAM: Option<&[u8]> = None;

/// The program's entry point (its `SEC("xdp")` function).
pub const PROGRAM_NAME: &str = "ringturn_relay";

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("the XDP fast path was not built (clang and libbpf-dev were missing when ringturn was compiled)")]
    NotBuilt,
    #[error("cannot load the XDP program: {0}")]
    Load(String),
    #[error("cannot attach the XDP program to {interface} in {mode} mode: {reason}")]
    Attach {
        interface: String,
        mode: &'static str,
        reason: String,
    },
    #[error("XDP map {map}: {reason}")]
    Map { map: &'static str, reason: String },
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(std::io::Error),
}

/// `xdp-mode`: where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native, else generic, saying which.
    #[default]
    Auto,
    /// In the driver (XDP_FLAGS_DRV_MODE).
    Native,
    /// In the kernel's generic hook after the driver (XDP_FLAGS_SKB_MODE).
    Generic,
}

impl std::str::FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "generic" => Ok(Self::Generic),
            other => Err(format!("expected auto, native or generic, got {other:?}")),
        }
    }
}

/// Packets and payload bytes the program relayed, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    pub packets_to_peers: u64,
    pub bytes_to_peers: u64,
    pub packets_to_clients: u64,
    pub bytes_to_clients: u64,
}

/// The C2P entry of a channel: ChannelData from the client becomes UDP relay → peer.
pub fn client_to_peer(ch: &ChannelRoute) -> (Flow, Flow) {
    (
        Flow::new(ch.client, ch.listening, ch.channel),
        Flow::new(ch.relay, ch.peer, 0),
    )
}

/// The P2C entry: UDP from the peer becomes ChannelData listening → client.
pub fn peer_to_client(ch: &ChannelRoute) -> (Flow, Flow) {
    (
        Flow::new(ch.peer, ch.relay, 0),
        Flow::new(ch.listening, ch.client, ch.channel),
    )
}

mod loaded;
mod shared;
pub use loaded::{Attachment, FastPath};
pub use shared::SharedFastPath;

/// Run time and run count of loaded BPF program `id` as the kernel counts
/// them (with `kernel.bpf_stats_enabled=1`; zeros otherwise), for benchmarks.
pub fn program_stats(id: u32) -> Option<(std::time::Duration, u64)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .map(|p| (p.run_time(), p.run_count()))
}
