//! Applying entries in order, then checking the whole: defaults, cross-key
//! rules, credentials.
//!
//! This file holds the [`Builder`] (every key's value and where it was set),
//! the defaults and limits, and the helpers both halves use; `apply` applies
//! the entries one key at a time, `finish` checks the whole and assembles the
//! [`Config`](super::Config).

mod apply;
mod finish;

use std::net::IpAddr;
use std::path::PathBuf;

use crate::stun::ChannelRange;
use crate::turn::RelaySocketMode;

use super::source::Origin;
use super::{
    ConfigError, ConfigWarning, ExternalIp, IoBackend, LogSettings, PeerRange, UdpGro, Verbosity,
};
use crate::turn::DefaultFamily;

/// Socket buffer size used when `socket-rcvbuf` / `socket-sndbuf` are not set.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// A value and where it was set.
#[derive(Debug, Clone)]
struct At<T> {
    value: T,
    at: Origin,
    key: &'static str,
}

impl<T> At<T> {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.at.source, self.at.line, self.key, message)
    }

    /// Of two settings, the one written later (the command line counts as
    /// later than the file).
    fn later<'a, U>(&'a self, other: &'a At<U>) -> (&'a Origin, &'static str) {
        if (self.at.source == other.at.source && self.at.line < other.at.line)
            || (self.at.source != other.at.source && other.at.source == super::COMMAND_LINE)
        {
            (&other.at, other.key)
        } else {
            (&self.at, self.key)
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Builder {
    source_name: String,
    listening_port: Option<At<u16>>,
    listening_ips: Vec<At<IpAddr>>,
    external_ips: Vec<At<ExternalIp>>,
    relay_ips: Vec<IpAddr>,
    min_port: Option<At<u16>>,
    max_port: Option<At<u16>>,
    users: Vec<At<String>>,
    realm: Option<String>,
    lt_cred_mech: Option<At<bool>>,
    no_auth: Option<At<bool>>,
    use_auth_secret: Option<At<bool>>,
    static_auth_secrets: Vec<At<String>>,
    rest_api_separator: Option<char>,
    stale_nonce: Option<u64>,
    max_allocate_lifetime: Option<u64>,
    channel_lifetime: Option<u64>,
    permission_lifetime: Option<u64>,
    user_quota: u32,
    total_quota: u32,
    max_bps: u64,
    bps_capacity: u64,
    tls12_ciphers: Option<Vec<String>>,
    userdb: Option<PathBuf>,
    userdb_refresh: Option<u64>,
    allow_loopback_peers: bool,
    no_relay_shortcut: bool,
    relay_socket_mode: RelaySocketMode,
    max_shared_peers: Option<usize>,
    xdp_interfaces: Vec<String>,
    xdp_mode: crate::xdp::XdpMode,
    allowed_peer_ips: Vec<PeerRange>,
    denied_peer_ips: Vec<PeerRange>,
    alternate_servers: Vec<std::net::SocketAddr>,
    tls_alternate_servers: Vec<std::net::SocketAddr>,
    max_allocations_before_redirect: u32,
    signaling_turn_urls: Vec<String>,
    signaling_redis: Option<String>,
    no_multicast_peers: bool,
    fingerprint: bool,
    no_software_attribute: bool,
    no_stun: Option<At<bool>>,
    stun_only: Option<At<bool>>,
    log_file: Option<PathBuf>,
    verbosity: Verbosity,
    log: LogSettings,
    /// `new-log-timestamp-format`, used once `new-log-timestamp` is on.
    new_log_timestamp_format: Option<String>,
    no_loopback_peers: bool,
    server_name: Option<String>,
    secure_stun: bool,
    default_family: DefaultFamily,
    pidfile: Option<PathBuf>,
    workers: Option<At<usize>>,
    cpu_affinity: Vec<usize>,
    io_backend: IoBackend,
    udp_gro: UdpGro,
    socket_rcvbuf: Option<usize>,
    socket_sndbuf: Option<usize>,
    channel_range: ChannelRange,
    signaling_listening_port: Option<u16>,
    signaling_listening_ip: Option<IpAddr>,
    signaling_room_size: Option<usize>,
    signaling_max_message_bytes: Option<usize>,
    signaling_credential_ttl: Option<u64>,
    signaling_max_connections: Option<usize>,
    signaling_max_rooms: Option<usize>,
    signaling_max_rooms_per_connection: Option<usize>,
    prometheus: bool,
    prometheus_port: Option<u16>,
    prometheus_address: Option<IpAddr>,
    tls_listening_port: Option<At<u16>>,
    cert: Option<PathBuf>,
    pkey: Option<PathBuf>,
    no_tcp: bool,
    no_tls: bool,
    no_tlsv1_2: bool,
    no_tcp_relay: bool,
    reuseport_cpu_steering: bool,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    tls_handshake_timeout: Option<u64>,
    stream_first_message_timeout: Option<u64>,
    stream_idle_timeout: Option<u64>,
    stream_buffer_limit: Option<usize>,
    warnings: Vec<ConfigWarning>,
}

const DEFAULT_LISTENING_PORT: u16 = 3478;
/// RFC 8656 §3.1 / coturn: TURN over TLS.
const DEFAULT_TLS_LISTENING_PORT: u16 = 5349;
/// coturn's default metrics port.
const DEFAULT_PROMETHEUS_PORT: u16 = 9641;
const DEFAULT_MIN_PORT: u16 = 49152;
const DEFAULT_MAX_PORT: u16 = 65535;
const DEFAULT_STALE_NONCE: u64 = 600;
const DEFAULT_MAX_ALLOCATE_LIFETIME: u64 = 3600;
const DEFAULT_CHANNEL_LIFETIME: u64 = 600;
const DEFAULT_PERMISSION_LIFETIME: u64 = 300;
/// Peer endpoints per allocation in shared relay socket mode (as `max_permissions_per_allocation`).
const DEFAULT_MAX_SHARED_PEERS: usize = 64;
const DEFAULT_ROOM_SIZE: usize = 2;
const MAX_ROOM_SIZE: usize = 1000;
/// An SDP offer with many candidates is a few KiB; 64 KiB leaves room.
const DEFAULT_SIGNALING_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Below this not even an SDP offer fits.
const MIN_SIGNALING_MAX_MESSAGE_BYTES: usize = 1024;
const MAX_SIGNALING_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// The TURN REST API draft's example lifetime: long enough for a call, whose
/// allocation refreshes are checked against the same expiry.
const DEFAULT_SIGNALING_CREDENTIAL_TTL: u64 = 86_400;
const DEFAULT_SIGNALING_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_SIGNALING_MAX_ROOMS: usize = 10_000;
const DEFAULT_SIGNALING_MAX_ROOMS_PER_CONNECTION: usize = 4;
/// Upper bound of the signaling count limits (connections, rooms, rooms per connection).
const MAX_SIGNALING_COUNT: usize = 1_000_000;

impl Builder {
    pub(crate) fn new(source_name: &str) -> Self {
        Self {
            source_name: source_name.to_owned(),
            ..Self::default()
        }
    }

    /// A problem of the whole configuration rather than of one line.
    fn whole(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.source_name, 0, key, message)
    }

    fn warn(&mut self, at: Option<&Origin>, key: &str, message: impl Into<String>) {
        let (source_name, line) = match at {
            Some(o) => (o.source.clone(), o.line),
            None => (self.source_name.clone(), 0),
        };
        self.warnings.push(ConfigWarning {
            source_name,
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }
}
