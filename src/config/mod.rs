//! coturn's turnserver.conf format plus command-line overrides → one
//! validated [`Config`], and from it each worker's [`ServerConfig`] and the
//! [`Credentials`].
//!
//! * The file: `key=value`, `key value` or a bare `key` per line (a leading
//!   `--` is allowed), `#` comments (whole-line, or after whitespace), blank
//!   lines. Repeatable keys (`user`, `listening-ip`, `relay-ip`,
//!   `external-ip`, `allowed-peer-ip`, `denied-peer-ip`,
//!   `static-auth-secret`, `cpu-affinity`) add up; for other keys the last
//!   one wins.
//! * The command line: `--key=value`, `--key value`, `--key`. A single-valued
//!   key overrides the file; a repeatable key given there replaces all the
//!   file's values for that key.
//! * A coturn option ringturn does not implement is a [`ConfigWarning`]; an
//!   unknown option or a bad value is a [`ConfigError`] naming the file (or
//!   "command line"), the line (or the argument's position) and the key.
//! * With no file and no options: [`Config::embedded`], a demo setup on
//!   127.0.0.1.
//!
//! Here: the `Config` struct, its value types and how it is loaded;
//! `derived`: what the rest of the server takes from it (credentials,
//! workers' `ServerConfig`s, the keys a reload cannot change).

#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod build;
pub mod cli;
mod derived;
mod keys;
mod logging;
mod source;
mod summary;
mod values;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

#[cfg(doc)]
use crate::auth::Credentials;
use crate::auth::UserKeys;
use crate::io::interfaces::up_addresses;
pub use crate::io::interfaces::InterfaceAddress;
use crate::stun::ChannelRange;
use crate::turn::IpRange;
pub use crate::turn::RelaySocketMode;
#[cfg(doc)]
use crate::turn::ServerConfig;

pub use cli::Cli;
pub use logging::{
    dated_log_file_name, LogFormat, LogSettings, SyslogFacility, Verbosity,
    DEFAULT_TIMESTAMP_FORMAT,
};
pub use source::COMMAND_LINE;

/// The source name of [`Config::embedded`].
pub const EMBEDDED: &str = "embedded defaults";

/// `file:line: key: message` (the line is left out when it is 0, for a
/// problem of the whole configuration; for the command line, "line" is the
/// argument's position among the options, from 1).
struct Location<'a>(&'a str, usize);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            0 => write!(f, "{}", self.0),
            n => write!(f, "{}:{n}", self.0),
        }
    }
}

/// A configuration that cannot run: `turnserver.conf:12: listening-port: invalid port "abc"`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}: {key}: {message}", Location(source_name, *line))]
pub struct ConfigError {
    /// The file as named on the command line, [`COMMAND_LINE`] or [`EMBEDDED`].
    pub source_name: String,
    /// 1-based; 0 when the problem is not one line's.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(source_name: &str, line: usize, key: &str, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Something ringturn reads but ignores (most often a coturn option it does
/// not implement), in the same form as [`ConfigError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub source_name: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            Location(&self.source_name, self.line),
            self.key,
            self.message
        )
    }
}

/// Which I/O backend the workers use (`io-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoBackend {
    /// io_uring where the kernel allows it, else `Batch`.
    #[default]
    Auto,
    /// io_uring; failing to set it up is an error.
    Uring,
    /// recvmmsg/sendmmsg + epoll.
    Batch,
}

impl FromStr for IoBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Self::Uring),
            "batch" => Ok(Self::Batch),
            _ => Err(format!("expected auto, uring or batch, got {s:?}")),
        }
    }
}

impl fmt::Display for IoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Uring => "uring",
            Self::Batch => "batch",
        })
    }
}

/// Which sockets ask the kernel for coalesced receives (`udp-gro`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpGro {
    Off,
    /// Relay sockets only (one busy peer each: where bursts of one flow arrive).
    Relays,
    /// Relay and listening sockets: `on`, the default. Measured (BENCHMARKS.md,
    /// "UDP GRO on receive"): on listening sockets it pays as much as on relays
    /// when clients send bursts that arrive coalesced, and costs nothing
    /// measurable when nothing coalesces.
    #[default]
    All,
}

impl UdpGro {
    pub fn policy(self) -> crate::io::GroPolicy {
        crate::io::GroPolicy {
            relays: self != Self::Off,
            listeners: self == Self::All,
        }
    }
}

impl FromStr for UdpGro {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" | "all" => Ok(Self::All),
            "relays" | "relay" => Ok(Self::Relays),
            "off" => Ok(Self::Off),
            _ => Err(format!("expected on, off, relays or all, got {s:?}")),
        }
    }
}

impl fmt::Display for UdpGro {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Relays => "relays",
            Self::All => "all",
        })
    }
}

/// `external-ip=public` or `external-ip=public/private`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalIp {
    /// What clients are told (XOR-RELAYED-ADDRESS).
    pub public: IpAddr,
    /// The relay address it stands for; `None`: every relay address of its family.
    pub private: Option<IpAddr>,
}

/// An `allowed-peer-ip` / `denied-peer-ip` range and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRange {
    pub text: String,
    pub range: IpRange,
}

/// The demo user of [`Config::embedded`], for `main` to print.
#[derive(Clone, PartialEq, Eq)]
pub struct DemoUser {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for DemoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything ringturn runs with, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file as named, [`COMMAND_LINE`] (options only) or [`EMBEDDED`].
    pub source_name: String,
    /// One per `listening-ip` (default 0.0.0.0) on `listening-port`.
    pub listening: Vec<SocketAddr>,
    /// With no `listening-ip`: the interface addresses found at start, which
    /// `listening` (and, without `relay-ip`, the relay addresses) came from.
    pub interfaces: Vec<InterfaceAddress>,
    /// `relay-ip`; if none, the specific listening addresses, else the private
    /// halves of `external-ip`, else 0.0.0.0 / :: advertised as a bare `external-ip`.
    pub relay_ips: Vec<IpAddr>,
    pub external_ips: Vec<ExternalIp>,
    pub min_port: u16,
    pub max_port: u16,
    /// Empty only when no credentials are in use.
    pub realm: String,
    /// `no-auth`: TURN without credentials. Otherwise long-term credentials
    /// are always required (`lt-cred-mech` is implied).
    pub no_auth: bool,
    /// The TURN REST API is on (`use-auth-secret`, or any `static-auth-secret`).
    pub use_auth_secret: bool,
    pub rest_api_separator: char,
    /// `stale-nonce`
    pub nonce_lifetime: Duration,
    pub max_allocate_lifetime: Duration,
    pub channel_lifetime: Duration,
    pub permission_lifetime: Duration,
    /// Live allocations per user and per server (0 = unlimited).
    pub user_quota: u32,
    pub total_quota: u32,
    /// Bytes per second per allocation (0 = unlimited). Not enforced yet:
    /// `ServerConfig` has no field for it.
    pub max_bps: u64,
    /// `bps-capacity`: bytes per second each way, all allocations together.
    pub bps_capacity: u64,
    pub allow_loopback_peers: bool,
    /// `no-relay-shortcut`: relay to relay through the kernel (for measuring).
    pub no_relay_shortcut: bool,
    /// `relay-socket-mode`: a relay socket per allocation (default) or one
    /// per worker and relay IP, shared by its allocations.
    pub relay_socket_mode: RelaySocketMode,
    /// `max-shared-peers`: peer endpoints one allocation may claim in shared mode.
    pub max_shared_peers: usize,
    /// `xdp-interface`: where the kernel fast path attaches (none: no fast path).
    pub xdp_interfaces: Vec<String>,
    /// `xdp-mode`: native, generic, or native else generic.
    pub xdp_mode: crate::xdp::XdpMode,
    pub allowed_peer_ips: Vec<PeerRange>,
    pub denied_peer_ips: Vec<PeerRange>,
    /// `alternate-server`: where Allocates from UDP and TCP clients are
    /// redirected (RFC 8489 §10), round robin.
    pub alternate_servers: Vec<SocketAddr>,
    /// `tls-alternate-server`: the same for TLS clients.
    pub tls_alternate_servers: Vec<SocketAddr>,
    /// `max-allocations-before-redirect`: redirect only from this many
    /// allocations on (0: always).
    pub max_allocations_before_redirect: u32,
    /// `signaling-turn-urls`: the TURN URLs `/api/ice-servers` names instead
    /// of this node's own.
    pub signaling_turn_urls: Vec<String>,
    /// `signaling-redis`: the Redis the signaling nodes share rooms on.
    pub signaling_redis: Option<String>,
    /// Accepted for coturn compatibility; multicast peers are always refused.
    pub no_multicast_peers: bool,
    pub fingerprint: bool,
    /// SOFTWARE on responses (off with `no-software-attribute`).
    pub software_attribute: bool,
    pub no_stun: bool,
    /// `secure-stun`: Binding needs credentials.
    pub secure_stun: bool,
    /// `keep-address-family` / `allocation-default-address-family`.
    pub default_family: crate::turn::DefaultFamily,
    /// `server-name` (coturn's OAuth server name; ringturn has no OAuth):
    /// the realm unless set.
    pub server_name: String,
    pub stun_only: bool,
    pub channel_range: ChannelRange,
    pub log: LogSettings,
    pub pidfile: Option<PathBuf>,
    /// Worker threads (default: the CPUs, or the `cpu-affinity` cores;
    /// never more than there are relay ports).
    pub workers: usize,
    /// Cores to pin workers to, in order (worker i → `cpu_affinity[i % len]`).
    pub cpu_affinity: Vec<usize>,
    pub io_backend: IoBackend,
    /// `udp-gro`: which sockets receive coalesced bursts.
    pub udp_gro: UdpGro,
    pub socket_rcvbuf: Option<usize>,
    pub socket_sndbuf: Option<usize>,
    /// The signaling server's TCP port; `None`: signaling off.
    pub signaling_listening_port: Option<u16>,
    /// `signaling-listening-ip` (default 0.0.0.0).
    pub signaling_listening_ip: IpAddr,
    pub signaling_room_size: usize,
    /// The largest signaling message accepted (default 64 KiB).
    pub signaling_max_message_bytes: usize,
    /// How long the TURN credentials `/api/ice-servers` mints stay valid (default 24 h).
    pub signaling_credential_ttl: Duration,
    /// Signaling connections at once, both transports together.
    pub signaling_max_connections: usize,
    /// Signaling rooms at once.
    pub signaling_max_rooms: usize,
    /// Rooms one connection may be in at once.
    pub signaling_max_rooms_per_connection: usize,
    /// `prometheus`: serve `/metrics` over HTTP.
    pub prometheus: bool,
    /// `prometheus-port` (default 9641, as coturn).
    pub prometheus_port: u16,
    /// `prometheus-address` (default 127.0.0.1).
    pub prometheus_address: IpAddr,
    /// TURN over TCP on the listening addresses.
    pub tcp: bool,
    /// TURN over TLS on `tls_listening_port` (when `cert` is set).
    pub tls: bool,
    pub tls_listening_port: u16,
    pub cert: Option<PathBuf>,
    pub pkey: Option<PathBuf>,
    pub tls12: bool,
    /// `cipher-list`: the TLS 1.2 suites offered (OpenSSL names); `None`: all.
    pub tls12_ciphers: Option<Vec<String>>,
    /// `userdb`: coturn's SQLite user database (issue 13).
    pub userdb: Option<PathBuf>,
    /// `userdb-refresh`: how often it is read again.
    pub userdb_refresh: Duration,
    /// RFC 6062 TCP relaying (`no-tcp-relay` turns it off).
    pub tcp_relay: bool,
    /// SO_REUSEPORT steered by the receiving CPU (`reuseport-cpu-steering`).
    pub reuseport_cpu_steering: bool,
    pub stream_limits: crate::io::stream::StreamLimits,
    /// Set by [`Config::embedded`] only.
    pub demo_user: Option<DemoUser>,
    pub warnings: Vec<ConfigWarning>,
    /// Drawn at load; each worker's `rng_seed` is derived from it.
    pub rng_seed: u64,
    users: Redacted<Vec<(String, UserKeys)>>,
    static_auth_secrets: Redacted<Vec<String>>,
}

/// Keeps keys and secrets out of `{:?}` output (and so out of logs).
#[derive(Clone, Default)]
struct Redacted<T>(T);

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters from [A-Za-z0-9], uniformly (rejection sampling).
fn random_alphanumeric(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut buf)?;
        for b in buf {
            // 248 = 4 × 62: larger bytes would bias the choice.
            if b < 248 && out.len() < len {
                if let Some(c) = ALPHANUMERIC.get(usize::from(b) % ALPHANUMERIC.len()) {
                    out.push(char::from(*c));
                }
            }
        }
    }
    Ok(out)
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::getrandom(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        // Port choice only needs to differ between runs; the clock will do.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64),
    }
}

/// SplitMix64: spreads worker indices into unrelated seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The demo setup; `{password}` and `{secret}` are filled in at start.
/// Loopback peers are allowed: it is reachable from this machine only, and two
/// local browser tabs forced to relay talk to each other at 127.0.0.1.
const EMBEDDED_TEMPLATE: &str = "\
listening-ip=127.0.0.1
listening-port=3478
relay-ip=127.0.0.1
allow-loopback-peers
min-port=49152
max-port=65535
realm=ringturn.local
lt-cred-mech
user=demo:{password}
static-auth-secret={secret}
signaling-listening-ip=127.0.0.1
signaling-listening-port=8080
";

impl Config {
    /// What ringturn runs with when given no file and no options: listening
    /// on 127.0.0.1:3478, relaying on 127.0.0.1 ports 49152–65535, realm
    /// `ringturn.local`, loopback peers allowed, long-term credentials with the
    /// user `demo` and a random 16-character password ([`Config::demo_user`]), a random
    /// `static-auth-secret` (REST API, for the signaling module), and
    /// signaling (the call page) on 127.0.0.1:8080.
    pub fn embedded() -> Result<Self, ConfigError> {
        let random = |len| {
            random_alphanumeric(len).map_err(|e| {
                ConfigError::new(
                    EMBEDDED,
                    0,
                    "user",
                    format!("no randomness for the demo password: {e}"),
                )
            })
        };
        let password = random(16)?;
        let secret = random(32)?;
        let text = EMBEDDED_TEMPLATE
            .replace("{password}", &password)
            .replace("{secret}", &secret);
        let mut config = Self::parse(EMBEDDED, &text, &[])?;
        config.demo_user = Some(DemoUser {
            name: "demo".to_owned(),
            password,
        });
        Ok(config)
    }

    /// A config file's text (named `source_name` in messages) with command-line
    /// overrides applied.
    pub fn parse(source_name: &str, text: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        Self::from_bytes(source_name, text.as_bytes(), overrides)
    }

    /// As [`Config::parse`], on a host whose interfaces have `interfaces`
    /// (what a config without `listening-ip` listens on): for tests.
    pub fn parse_on_host(
        source_name: &str,
        text: &str,
        overrides: &[String],
        interfaces: &[InterfaceAddress],
    ) -> Result<Self, ConfigError> {
        let file = source::parse_file(source_name, text.as_bytes())?;
        let cli = source::parse_args(overrides)?;
        let mut b = build::Builder::new(source_name);
        b.apply_all(source::merge(file, cli))?;
        b.finish(random_seed(), &|| Ok(interfaces.to_vec()))
    }

    fn from_bytes(
        source_name: &str,
        bytes: &[u8],
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let file = source::parse_file(source_name, bytes)?;
        let cli = source::parse_args(overrides)?;
        let mut b = build::Builder::new(source_name);
        b.apply_all(source::merge(file, cli))?;
        b.finish(random_seed(), &up_addresses)
    }

    /// Reads `path` (named as given in messages) and applies the overrides.
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| ConfigError::new(&name, 0, "config", format!("cannot read: {e}")))?;
        Self::from_bytes(&name, &bytes, overrides)
    }

    /// Options only, on coturn's defaults (no file).
    pub fn from_options(options: &[String]) -> Result<Self, ConfigError> {
        let cli = source::parse_args(options)?;
        let mut b = build::Builder::new(COMMAND_LINE);
        b.apply_all(cli)?;
        b.finish(random_seed(), &up_addresses)
    }

    /// `-c FILE` plus overrides; options without a file apply to coturn's
    /// defaults; neither gives [`Config::embedded`].
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let cli = cli.clone().normalized();
        match (&cli.config, cli.options.is_empty()) {
            (Some(path), _) => Self::from_file(path, &cli.options),
            (None, true) => Self::embedded(),
            (None, false) => Self::from_options(&cli.options),
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests;
