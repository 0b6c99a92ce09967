//! One validated description of a load run, built from the command line (or
//! by tests and `compare` directly).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Result};
use serde::Serialize;

pub use crate::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Clients relay to loadgen's echo peers (ChannelData or Send indications).
    Relay,
    /// Clients in pairs relay to each other's relayed address (relay to relay).
    Pair,
    /// Allocate / Refresh(0) cycles (an allocation storm), or allocations held.
    Allocate,
    /// STUN Binding requests.
    Binding,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Relay => "relay",
            Mode::Pair => "pair",
            Mode::Allocate => "allocate",
            Mode::Binding => "binding",
        }
    }
}

/// How credentials are obtained.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Credentials {
    /// Long-term credentials (`user=name:password`); `realm` overrides the server's.
    LongTerm {
        user: String,
        #[serde(skip)]
        password: String,
        realm: Option<String>,
    },
    /// TURN REST API: `<expiry>:<user><i>` with HMAC-SHA1(secret) passwords.
    Rest {
        #[serde(skip)]
        secret: String,
        user: String,
        ttl_s: u64,
        realm: Option<String>,
    },
    /// No credentials (a server with `no-auth`).
    None,
}

impl Credentials {
    /// Username and password for client number `i`.
    pub fn for_client(&self, i: usize, unix_now: u64) -> (String, String) {
        match self {
            Credentials::LongTerm { user, password, .. } => (user.clone(), password.clone()),
            Credentials::Rest {
                secret,
                user,
                ttl_s,
                ..
            } => {
                let name = format!("{}:{user}{i}", unix_now + ttl_s);
                let pass = ringturn::auth::RestApi::password(secret.as_bytes(), &name);
                (name, pass)
            }
            Credentials::None => (String::new(), String::new()),
        }
    }

    pub fn realm_override(&self) -> Option<&str> {
        match self {
            Credentials::LongTerm { realm, .. } | Credentials::Rest { realm, .. } => {
                realm.as_deref()
            }
            Credentials::None => None,
        }
    }
}

/// Sending rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rate {
    /// Packets (or requests) per second per client.
    Pps(f64),
    /// As fast as possible, at most `window` unanswered packets per client.
    Max { window: u32 },
}

/// Payload sizes and burst shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeMix {
    /// Every payload this many bytes.
    Fixed(usize),
    /// 100-byte payloads at 50 pps (one every 20 ms): an Opus-like audio flow.
    Audio,
    /// 1,200-byte payloads in bursts, one burst per frame at 30 frames/s.
    Video,
    /// Even clients audio, odd clients video.
    Av,
}

pub const AUDIO_SIZE: usize = 100;
pub const AUDIO_PPS: f64 = 50.0;
pub const VIDEO_SIZE: usize = 1200;
pub const VIDEO_FPS: f64 = 30.0;
/// Packets per video frame when no `--pps` is given (150 pps, ~1.4 Mbit/s).
pub const VIDEO_DEFAULT_PPS: f64 = 150.0;

/// How one client sends: every `interval_ns`, a burst of `burst` payloads of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub interval_ns: u64,
    pub burst: u32,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadConfig {
    pub mode: Mode,
    pub server: SocketAddr,
    /// Client to server: UDP, TCP or TLS.
    pub transport: Transport,
    /// Certificate checks and versions when `transport` is TLS.
    pub tls: crate::tls::TlsSettings,
    pub credentials: Credentials,
    pub clients: usize,
    pub threads: usize,
    /// CPUs to pin worker threads to (round robin); empty = no pinning.
    pub cpus: Vec<usize>,
    pub rate: Rate,
    /// `--pps` given explicitly (size mixes have their own default rate).
    pub pps_given: bool,
    pub size: SizeMix,
    /// Send indications instead of ChannelData (relay and pair modes).
    pub indications: bool,
    #[serde(serialize_with = "ser_secs")]
    pub warmup: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Stop after this many measured packets / requests / allocations in all.
    pub count: Option<u64>,
    /// How long to wait after the last send for packets still in flight.
    #[serde(serialize_with = "ser_secs")]
    pub drain: Duration,
    /// Client sockets are spread over these source addresses.
    pub client_ips: Vec<Ipv4Addr>,
    /// The echo peers' address.
    pub peer_ip: Ipv4Addr,
    /// Echo peer sockets per thread.
    pub peers_per_thread: usize,
    /// Allocations being set up at once, per thread.
    pub setup_concurrency: usize,
    #[serde(serialize_with = "ser_secs")]
    pub setup_timeout: Duration,
    /// First retransmission timeout (doubles, 6 tries).
    #[serde(serialize_with = "ser_secs")]
    pub rto: Duration,
    /// Allocate mode: keep allocations for this long instead of cycling.
    #[serde(serialize_with = "ser_opt_secs")]
    pub hold: Option<Duration>,
    /// LIFETIME asked for in Allocate.
    pub lifetime: u32,
    pub server_pid: Option<u32>,
    pub progress: bool,
    /// Socket buffer size for client and peer sockets.
    pub sockbuf: usize,
    /// Clients and echo peers send with UDP GSO: a batch's equal-size
    /// datagrams to one destination as one UDP_SEGMENT send. On loopback such
    /// a send reaches a socket with UDP_GRO still coalesced, as a busy peer's
    /// packets would after NIC GRO; other sockets get it segmented.
    pub gso: bool,
    /// Time-series bucket width.
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    /// A name for the server in reports ("ringturn", "coturn", an address).
    pub label: String,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Longest measured window loadgen runs (its loops are bounded in time).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_CLIENTS: usize = 200_000;

impl LoadConfig {
    /// Defaults for `mode` against `server` with long-term credentials.
    pub fn new(mode: Mode, server: SocketAddr, user: &str, password: &str) -> Self {
        Self {
            mode,
            server,
            transport: Transport::Udp,
            tls: crate::tls::TlsSettings::default(),
            credentials: Credentials::LongTerm {
                user: user.into(),
                password: password.into(),
                realm: None,
            },
            clients: 16,
            threads: 1,
            cpus: Vec::new(),
            rate: Rate::Pps(50.0),
            pps_given: false,
            size: SizeMix::Fixed(AUDIO_SIZE),
            indications: false,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            count: None,
            drain: Duration::from_secs(1),
            client_ips: default_client_ips(16),
            peer_ip: Ipv4Addr::new(127, 0, 0, 2),
            peers_per_thread: 8,
            setup_concurrency: 256,
            setup_timeout: Duration::from_secs(60),
            rto: Duration::from_millis(300),
            hold: None,
            lifetime: 600,
            server_pid: None,
            progress: false,
            sockbuf: 4 << 20,
            gso: false,
            interval: Duration::from_millis(100),
            label: server.to_string(),
        }
    }

    /// Checks limits and that every address stays on this machine: loopback,
    /// or the documentation ranges 198.51.100.0/24 and 203.0.113.0/24 that
    /// test topologies give their own network namespaces (a veth pair for the
    /// kernel fast path, TESTING.md) and that route nowhere else.
    pub fn validate(&self) -> Result<()> {
        if !contained(self.server.ip()) {
            bail!(
                "server {} is neither on loopback nor in 198.51.100.0/24 or 203.0.113.0/24: \
                 loadgen only sends where nothing leaves the machine",
                self.server
            );
        }
        if !contained(self.peer_ip.into()) {
            bail!(
                "--peer-ip {} is neither a loopback address nor in 198.51.100.0/24 or 203.0.113.0/24",
                self.peer_ip
            );
        }
        if let Some(ip) = self.client_ips.iter().find(|ip| !contained((**ip).into())) {
            bail!("client address {ip} is neither a loopback address nor in 198.51.100.0/24 or 203.0.113.0/24");
        }
        if self.client_ips.is_empty() {
            bail!("no client addresses");
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            bail!("--clients must be 1..={MAX_CLIENTS}");
        }
        if self.mode == Mode::Pair && self.clients < 2 {
            bail!("pair mode needs at least 2 clients");
        }
        if self.threads == 0 || self.threads > 64 {
            bail!("--threads must be 1..=64");
        }
        if self.duration.is_zero() && self.hold.is_none() {
            bail!("--duration must be positive");
        }
        if self.duration > MAX_DURATION || self.warmup > MAX_DURATION {
            bail!(
                "--duration and --warmup are capped at {} s",
                MAX_DURATION.as_secs()
            );
        }
        if self.hold.is_some_and(|h| h > MAX_DURATION) {
            bail!("--hold is capped at {} s", MAX_DURATION.as_secs());
        }
        match self.rate {
            Rate::Pps(p) if !(p > 0.0 && p <= 1_000_000.0) => {
                bail!("--pps must be in (0, 1000000]")
            }
            Rate::Max { window } if window == 0 || window > 4096 => {
                bail!("--window must be 1..=4096")
            }
            _ => {}
        }
        if let SizeMix::Fixed(n) = self.size {
            if !(crate::payload::HEADER_LEN..=1400).contains(&n) {
                bail!(
                    "--size must be {}..=1400 bytes (the payload carries a {}-byte stamp)",
                    crate::payload::HEADER_LEN,
                    crate::payload::HEADER_LEN
                );
            }
        }
        if self.transport == Transport::Tls && self.tls.ca.is_none() && !self.tls.insecure {
            bail!(
                "--transport tls needs --tls-ca FILE (the CA or the server's self-signed \
                 certificate, PEM) or --tls-insecure"
            );
        }
        if self.peers_per_thread == 0 || self.setup_concurrency == 0 {
            bail!("--peers and --setup-concurrency must be positive");
        }
        Ok(())
    }

    /// Allocate storm with an explicit `--pps`: nanoseconds between the
    /// starts of one client's Allocate / Refresh(0) cycles. `None`: cycles
    /// run back to back (no `--pps`, or `--max`).
    pub fn cycle_interval_ns(&self) -> Option<u64> {
        match (self.mode, self.rate, self.hold) {
            (Mode::Allocate, Rate::Pps(p), None) if self.pps_given && p > 0.0 => {
                Some((1e9 / p) as u64)
            }
            _ => None,
        }
    }

    /// How client number `i` sends.
    pub fn shape(&self, i: usize) -> Shape {
        let pps = match self.rate {
            Rate::Pps(p) => Some(p),
            Rate::Max { .. } => None,
        };
        let explicit = if self.pps_given { pps } else { None };
        let audio = || Shape {
            interval_ns: (1e9 / explicit.unwrap_or(AUDIO_PPS)) as u64,
            burst: 1,
            size: AUDIO_SIZE,
        };
        let video = || {
            let per_second = explicit.unwrap_or(VIDEO_DEFAULT_PPS);
            let burst = (per_second / VIDEO_FPS).round().max(1.0);
            Shape {
                interval_ns: (1e9 * burst / per_second) as u64,
                burst: burst as u32,
                size: VIDEO_SIZE,
            }
        };
        match self.size {
            SizeMix::Fixed(size) => Shape {
                interval_ns: (1e9 / pps.unwrap_or(AUDIO_PPS)) as u64,
                burst: 1,
                size,
            },
            SizeMix::Audio => audio(),
            SizeMix::Video => video(),
            SizeMix::Av if i.is_multiple_of(2) => audio(),
            SizeMix::Av => video(),
        }
    }

    /// The offered load in packets per second over all clients (paced runs).
    pub fn offered_pps(&self) -> Option<f64> {
        match self.rate {
            Rate::Max { .. } => None,
            Rate::Pps(_) => Some(
                (0..self.clients)
                    .map(|i| {
                        let s = self.shape(i);
                        f64::from(s.burst) * 1e9 / s.interval_ns.max(1) as f64
                    })
                    .sum(),
            ),
        }
    }
}

/// 127.0.1.1, 127.0.1.2, … (`n` addresses; 127.0.0.1 is left to servers' relays).
/// Loopback, or a documentation range a test namespace uses (RFC 5737
/// TEST-NET-2 and TEST-NET-3; TEST-NET-1 is this machine's own network).
fn contained(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback() || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
        }
        std::net::IpAddr::V6(v6) => v6.is_loopback(),
    }
}

pub fn default_client_ips(n: usize) -> Vec<Ipv4Addr> {
    (0..n.clamp(1, 65_000))
        .map(|k| {
            let v = u32::from(Ipv4Addr::new(127, 0, 1, 1)) + k as u32;
            Ipv4Addr::from(v)
        })
        .collect()
}

pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LoadConfig {
        LoadConfig::new(Mode::Relay, "127.0.0.1:3478".parse().unwrap(), "u", "p")
    }

    #[test]
    fn refuses_targets_off_loopback() {
        let mut c = cfg();
        assert!(c.validate().is_ok());
        c.server = "10.0.0.1:3478".parse().unwrap();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.peer_ip = Ipv4Addr::new(192, 168, 1, 1);
        assert!(c.validate().is_err());
        c.peer_ip = Ipv4Addr::new(192, 0, 2, 7);
        assert!(
            c.validate().is_err(),
            "TEST-NET-1 is the machine's own network here"
        );
        // A veth topology's documentation addresses stay in its namespaces.
        let mut c = cfg();
        c.server = "198.51.100.1:3478".parse().unwrap();
        c.peer_ip = Ipv4Addr::new(198, 51, 100, 3);
        c.client_ips = vec![Ipv4Addr::new(198, 51, 100, 2)];
        assert!(c.validate().is_ok());
        c.client_ips.push(Ipv4Addr::new(10, 0, 0, 2));
        assert!(c.validate().is_err());
    }

    #[test]
    fn shapes_follow_the_mixes() {
        let mut c = cfg();
        c.size = SizeMix::Audio;
        assert_eq!(c.shape(0).interval_ns, 20_000_000);
        c.size = SizeMix::Video;
        let v = c.shape(0);
        assert_eq!((v.burst, v.size), (5, 1200));
        c.size = SizeMix::Av;
        assert_eq!(c.shape(0).size, 100);
        assert_eq!(c.shape(1).size, 1200);
        c.clients = 4;
        let offered = c.offered_pps().unwrap();
        assert!((offered - 400.0).abs() < 1.0, "{offered}");
    }

    #[test]
    fn client_ips_are_on_loopback_and_skip_127_0_0_1() {
        let ips = default_client_ips(300);
        assert_eq!(ips[0], Ipv4Addr::new(127, 0, 1, 1));
        assert_eq!(ips[299], Ipv4Addr::new(127, 0, 2, 44));
        assert!(ips.iter().all(|ip| ip.is_loopback()));
    }
}
