//! The command line: one subcommand per mode, plus `compare`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Credentials, LoadConfig, Mode, Rate, SizeMix, Transport};
use crate::tls::{TlsSettings, TlsVersion};

#[derive(Debug, Parser)]
#[command(
    name = "ringturn-loadgen",
    version,
    about = "A TURN load generator: relays, relay-to-relay pairs, allocation storms and Binding floods \
             against any TURN server on loopback, with exact loss/duplicate/reorder counts, HDR latency \
             percentiles and the server's CPU cost per packet",
    after_help = "Examples:\n  \
      ringturn-loadgen relay -s 127.0.0.1:3478 -u test -w test -c 200 --size-mix audio -d 10 --server-pid $(pidof turnserver)\n  \
      ringturn-loadgen relay -u test -w test -c 32 --max --size 1200 --json r.json --report r.html\n  \
      ringturn-loadgen pair --secret s3cret -c 100 --pps 50\n  \
      ringturn-loadgen allocate -u test -w test -c 64 -d 5\n  \
      ringturn-loadgen allocate -u test -w test -c 10000 --hold 30 --server-pid PID\n  \
      ringturn-loadgen binding -c 16 --max\n  \
      ringturn-loadgen relay --transport tcp -u test -w test -c 100 --size-mix audio\n  \
      ringturn-loadgen relay -s 127.0.0.1:5349 --transport tls --tls-ca cert.pem -c 100 --max\n  \
      ringturn-loadgen hold -c 100000 --hold 30 --refresh-every 10 --server-pid PID\n  \
      ringturn-loadgen soak -c 200 --size-mix av --churn-clients 10 --churn-pps 200 -d 1200 --server-pid PID --metrics 127.0.0.1:9641 --report soak.html\n  \
      ringturn-loadgen compare --netns --rounds 5\n  \
      ringturn-loadgen compare --netns --transport tls --only coturn\n\n\
      Servers refuse loopback peers by default: start them with --allow-loopback-peers \
      (ringturn and coturn both take it)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Clients allocate, bind a channel to an echo peer (loadgen's own socket) and send
    /// ChannelData (or Send indications); round trips are measured.
    Relay(LoadArgs),
    /// Clients allocate in pairs and send to each other's relayed address (relay to relay);
    /// one-way latency is measured.
    Pair(LoadArgs),
    /// An allocation storm: authenticated Allocate / Refresh(0) cycles; with --hold, allocations
    /// are kept to see how many the server holds and what they cost in memory.
    Allocate(LoadArgs),
    /// STUN Binding requests.
    Binding(LoadArgs),
    /// Make N authenticated allocations a batch of sockets at a time (so N may exceed the
    /// open-files limit), hold and refresh them, and read the server's resident memory.
    Hold(crate::hold::HoldArgs),
    /// Relay traffic and Allocate / Refresh(0) churn at once for a long run, sampling the
    /// server's memory, descriptors and (with --metrics) allocations and timers: does memory
    /// level off, does latency stay flat, is anything lost.
    Soak(crate::soak::SoakArgs),
    /// Starts ringturn and coturn with equivalent settings, pinned to the same core, runs the
    /// same loads against each, interleaved, and prints the ratios.
    Compare(crate::compare::CompareArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizeMixArg {
    /// 100-byte payloads at 50 pps per client.
    Audio,
    /// 1,200-byte payloads in bursts, one per frame at 30 frames/s (150 pps unless --pps).
    Video,
    /// Half the clients audio, half video.
    Av,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The TURN server (loopback only).
    #[arg(short, long, default_value = "127.0.0.1:3478")]
    pub server: SocketAddr,
    /// Client-to-server transport: udp, tcp (one connection per client, RFC 8656 §3.1), or
    /// tls (TLS over TCP, port 5349 on most servers; see --tls-ca). Peers stay UDP.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Long-term credentials: user name.
    #[arg(short, long, default_value = "test")]
    pub user: String,
    /// Long-term credentials: password.
    #[arg(short = 'w', long, default_value = "test", conflicts_with = "secret")]
    pub password: String,
    /// Realm to use instead of the one the server names in its 401.
    #[arg(long)]
    pub realm: Option<String>,
    /// TURN REST API shared secret (coturn's static-auth-secret): each client gets
    /// `<expiry>:<user><n>` and its HMAC password.
    #[arg(long)]
    pub secret: Option<String>,
    /// Lifetime of REST API credentials, seconds.
    #[arg(long, default_value_t = 86_400)]
    pub rest_ttl: u64,
    /// Send no credentials (a server with no-auth).
    #[arg(long, conflicts_with = "secret")]
    pub no_auth: bool,
    /// Clients (each its own socket, 5-tuple and allocation).
    #[arg(short, long, default_value_t = 16)]
    pub clients: usize,
    /// Worker threads (each owns a share of the clients and its own echo peers).
    #[arg(short, long, default_value_t = 1)]
    pub threads: usize,
    /// Pin worker threads to these CPUs, round robin: `1`, `0,2`, `2-5`.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Packets (or requests) per second per client.
    #[arg(long, conflicts_with = "max")]
    pub pps: Option<f64>,
    /// As fast as possible, with at most --window unanswered packets per client.
    #[arg(long)]
    pub max: bool,
    /// Unanswered packets per client in --max mode.
    #[arg(long, default_value_t = 32)]
    pub window: u32,
    /// Payload bytes (at least 28: the stamp).
    #[arg(long, conflicts_with = "size_mix")]
    pub size: Option<usize>,
    /// Payload sizes and burst shape: audio (50 pps × 100 B), video (1,200 B bursts per frame), av.
    #[arg(long, value_enum)]
    pub size_mix: Option<SizeMixArg>,
    /// Send indications instead of ChannelData (no channel is bound).
    #[arg(long)]
    pub indications: bool,
    /// Measured window, seconds.
    #[arg(short, long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up before the window (sent and received then are not counted), seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Stop after this many measured packets / requests / allocations.
    #[arg(short = 'n', long)]
    pub count: Option<u64>,
    /// How long to wait for packets in flight after the window, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,
    /// Source addresses for client sockets (127.0.1.1 upwards).
    #[arg(long, default_value_t = 16)]
    pub client_ips: usize,
    /// The first client source address.
    #[arg(long, default_value = "127.0.1.1")]
    pub client_ip_base: Ipv4Addr,
    /// Echo peers' address.
    #[arg(long, default_value = "127.0.0.2")]
    pub peer_ip: Ipv4Addr,
    /// Echo peer sockets per thread.
    #[arg(long, default_value_t = 8)]
    pub peers: usize,
    /// Allocations being set up at once per thread.
    #[arg(long, default_value_t = 256)]
    pub setup_concurrency: usize,
    /// Give up on clients not set up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub setup_timeout: f64,
    /// First retransmission timeout, milliseconds (doubles; 6 tries).
    #[arg(long, default_value_t = 300)]
    pub rto_ms: u64,
    /// Allocate mode: hold the allocations this many seconds instead of cycling.
    #[arg(long)]
    pub hold: Option<f64>,
    /// LIFETIME asked for in Allocate, seconds.
    #[arg(long, default_value_t = 600)]
    pub lifetime: u32,
    /// The server's PID: its CPU time (utime+stime) and memory are sampled from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write every figure as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML report (or SVG, by extension) with the latency distribution and
    /// throughput over time.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// No progress line.
    #[arg(short, long)]
    pub quiet: bool,
    /// Socket buffer size for client and peer sockets, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub sockbuf: usize,
    /// Clients and echo peers send with UDP GSO (equal-size runs per destination in one send).
    #[arg(long)]
    pub gso: bool,
    /// Time-series resolution, milliseconds.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Name for the server in reports.
    #[arg(long)]
    pub label: Option<String>,
}

/// TLS flags (with `--transport tls`), shared by the load modes and `compare`.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Trust the certificates in this PEM file (a CA, or the server's self-signed certificate).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate without checking it. For benchmarks on loopback only:
    /// never use it where an attacker could sit in between.
    #[arg(long, conflicts_with = "tls_ca")]
    pub tls_insecure: bool,
    /// The name the server's certificate must carry (also sent as SNI); default `localhost`
    /// for a loopback server.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// TLS versions to offer: any (1.3 and 1.2), 1.2 or 1.3.
    #[arg(long, value_enum, default_value_t = TlsVersion::Any)]
    pub tls_version: TlsVersion,
}

impl TlsArgs {
    pub fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca: self.tls_ca.clone(),
            insecure: self.tls_insecure,
            server_name: self.tls_server_name.clone(),
            version: self.tls_version,
        }
    }

    /// Whether any TLS flag was given (they only make sense with --transport tls).
    pub fn any(&self) -> bool {
        self.tls_ca.is_some()
            || self.tls_insecure
            || self.tls_server_name.is_some()
            || self.tls_version != TlsVersion::Any
    }
}

/// `1`, `0,2`, `2-5`, `0,4-6`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a
                .trim()
                .parse()
                .with_context(|| format!("bad CPU list {s:?}"))?;
            let b: usize = b
                .trim()
                .parse()
                .with_context(|| format!("bad CPU list {s:?}"))?;
            if b < a || b - a > 1024 {
                bail!("bad CPU range {part:?}");
            }
            out.extend(a..=b);
        } else {
            out.push(
                part.parse()
                    .with_context(|| format!("bad CPU list {s:?}"))?,
            );
        }
    }
    if out.is_empty() {
        bail!("empty CPU list");
    }
    Ok(out)
}

fn secs(v: f64, what: &str) -> Result<Duration> {
    if !(v.is_finite() && v >= 0.0 && v <= config::MAX_DURATION.as_secs_f64()) {
        bail!(
            "{what} must be between 0 and {} seconds",
            config::MAX_DURATION.as_secs()
        );
    }
    Ok(Duration::from_secs_f64(v))
}

impl LoadArgs {
    pub fn to_config(&self, mode: Mode) -> Result<LoadConfig> {
        let mut c = LoadConfig::new(mode, self.server, &self.user, &self.password);
        if self.tls.any() && self.transport != Transport::Tls {
            bail!("the --tls-* flags need --transport tls");
        }
        c.transport = self.transport;
        c.tls = self.tls.settings();
        c.credentials = if self.no_auth {
            Credentials::None
        } else if let Some(secret) = &self.secret {
            Credentials::Rest {
                secret: secret.clone(),
                user: self.user.clone(),
                ttl_s: self.rest_ttl,
                realm: self.realm.clone(),
            }
        } else {
            Credentials::LongTerm {
                user: self.user.clone(),
                password: self.password.clone(),
                realm: self.realm.clone(),
            }
        };
        c.clients = self.clients;
        c.threads = self.threads;
        if let Some(cpus) = &self.cpus {
            c.cpus = parse_cpus(cpus)?;
        }
        c.rate = if self.max {
            Rate::Max {
                window: self.window,
            }
        } else {
            Rate::Pps(self.pps.unwrap_or(config::AUDIO_PPS))
        };
        c.pps_given = self.pps.is_some();
        c.size = match (self.size, self.size_mix) {
            (Some(n), _) => SizeMix::Fixed(n),
            (None, Some(SizeMixArg::Audio)) => SizeMix::Audio,
            (None, Some(SizeMixArg::Video)) => SizeMix::Video,
            (None, Some(SizeMixArg::Av)) => SizeMix::Av,
            (None, None) => SizeMix::Fixed(config::AUDIO_SIZE),
        };
        if self.indications && !matches!(mode, Mode::Relay | Mode::Pair) {
            bail!("--indications applies to relay and pair modes");
        }
        if self.hold.is_some() && mode != Mode::Allocate {
            bail!("--hold applies to allocate mode");
        }
        c.indications = self.indications;
        c.duration = secs(self.duration, "--duration")?;
        c.warmup = secs(self.warmup, "--warmup")?;
        c.drain = secs(self.drain, "--drain")?;
        c.count = self.count;
        if self.count == Some(0) {
            bail!("--count must be positive");
        }
        let base = u32::from(self.client_ip_base);
        c.client_ips = (0..self.client_ips.clamp(1, 65_000) as u32)
            .map(|k| Ipv4Addr::from(base.wrapping_add(k)))
            .collect();
        c.peer_ip = self.peer_ip;
        c.peers_per_thread = self.peers;
        c.setup_concurrency = if mode == Mode::Pair {
            self.setup_concurrency.max(2)
        } else {
            self.setup_concurrency
        };
        c.setup_timeout = secs(self.setup_timeout, "--setup-timeout")?;
        c.rto = Duration::from_millis(self.rto_ms.clamp(10, 10_000));
        c.hold = self.hold.map(|h| secs(h, "--hold")).transpose()?;
        c.lifetime = self.lifetime;
        c.server_pid = self.server_pid;
        c.progress = !self.quiet;
        c.sockbuf = self.sockbuf.clamp(64 << 10, 256 << 20);
        c.gso = self.gso;
        c.interval = Duration::from_millis(self.interval_ms.clamp(10, 10_000));
        c.label = self
            .label
            .clone()
            .unwrap_or_else(|| self.server.to_string());
        c.validate()?;
        Ok(c)
    }
}

impl Command {
    pub fn load_args(&self) -> Option<&LoadArgs> {
        match self {
            Command::Relay(a) | Command::Pair(a) | Command::Allocate(a) | Command::Binding(a) => {
                Some(a)
            }
            Command::Compare(_) | Command::Hold(_) | Command::Soak(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert_eq!(parse_cpus("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "ringturn-loadgen",
            "relay",
            "-c",
            "8",
            "--max",
            "--size-mix",
            "video",
            "--secret",
            "s",
            "--cpus",
            "1",
            "-d",
            "2.5",
        ])
        .unwrap();
        let Command::Relay(a) = cli.command else {
            panic!("relay")
        };
        let c = a.to_config(Mode::Relay).unwrap();
        assert_eq!(c.clients, 8);
        assert_eq!(c.rate, Rate::Max { window: 32 });
        assert_eq!(c.size, SizeMix::Video);
        assert!(matches!(c.credentials, Credentials::Rest { .. }));
        assert_eq!(c.cpus, vec![1]);
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert!(Cli::try_parse_from(["x", "relay", "--pps", "5", "--max"]).is_err());
        let tls = |extra: &[&str]| {
            let mut argv = vec!["x", "pair", "--transport", "tls"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
                .unwrap()
                .command
                .load_args()
                .unwrap()
                .to_config(Mode::Pair)
        };
        let c = tls(&["--tls-ca", "ca.pem", "--tls-version", "1.2"]).unwrap();
        assert_eq!(c.transport, Transport::Tls);
        assert_eq!(c.tls.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(c.tls.version, TlsVersion::Tls12);
        assert!(tls(&["--tls-insecure"]).unwrap().tls.insecure);
        assert!(tls(&[]).is_err(), "TLS without a trust decision");
        assert!(
            Cli::try_parse_from(["x", "relay", "--tls-ca", "a", "--tls-insecure"]).is_err(),
            "conflicting"
        );
        let s = TlsSettings::default();
        let name = s
            .server_name_for("127.0.0.1:5349".parse().unwrap())
            .unwrap();
        assert_eq!(name.to_str(), "localhost");
        assert!(Cli::try_parse_from(["x", "relay", "-s", "8.8.8.8:3478"])
            .unwrap()
            .command
            .load_args()
            .unwrap()
            .to_config(Mode::Relay)
            .is_err());
    }
}
