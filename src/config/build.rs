//! Applying entries in order, then checking the whole: defaults, cross-key
//! rules, credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::parse_user;
use crate::io::interfaces::InterfaceAddress;
use crate::stun::ChannelRange;
use crate::turn::{IpRange, RelaySocketMode};

use super::keys::{self, Key, Lookup};
use super::source::{Entry, Origin};
use super::values;
use super::{
    Config, ConfigError, ConfigWarning, ExternalIp, IoBackend, LogSettings, PeerRange, UdpGro,
    Verbosity, DEFAULT_TIMESTAMP_FORMAT,
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

/// A timeout in whole seconds, at least 1.
fn positive_seconds(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{v:?} is not a number of seconds (1 or more)")),
    }
}

fn ck<T>(e: &Entry, r: Result<T, String>) -> Result<T, ConfigError> {
    r.map_err(|m| e.error(m))
}

fn at<T>(e: &Entry, key: &'static str, value: T) -> At<T> {
    At {
        value,
        at: e.origin.clone(),
        key,
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

    pub(crate) fn apply_all(&mut self, entries: Vec<Entry>) -> Result<(), ConfigError> {
        entries.into_iter().try_for_each(|e| self.apply(e))
    }

    fn apply(&mut self, e: Entry) -> Result<(), ConfigError> {
        let spec = match keys::lookup(&e.key) {
            Lookup::Supported(s) => s,
            // coturn options whose effect ringturn always has: nothing to say.
            Lookup::CoturnOnly(_) if keys::already_so(&e.key) => return Ok(()),
            Lookup::CoturnOnly(_) => {
                self.warnings.push(ConfigWarning {
                    source_name: e.origin.source.clone(),
                    line: e.origin.line,
                    key: e.key.clone(),
                    message: keys::why_ignored(&e.key).to_owned(),
                });
                return Ok(());
            }
            Lookup::Unknown if e.key == "help" => {
                return Err(e.error("put --help first: ringturn --help"));
            }
            Lookup::Unknown => {
                let hint = keys::suggest(&e.key)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(e.error(format!(
                    "unknown option: neither a coturn nor a ringturn option{hint}"
                )));
            }
        };
        let name = spec.name;
        let opt = e.value.as_deref();
        let val = || opt.ok_or_else(|| e.error("missing value"));
        match spec.key {
            Key::ListeningPort => {
                self.listening_port = Some(at(&e, name, ck(&e, values::port(val()?))?));
            }
            Key::ListeningIp => {
                let ip = ck(&e, values::ip(val()?))?;
                self.listening_ips.push(at(&e, name, ip));
            }
            Key::ExternalIp => {
                let x = ck(&e, values::external_ip(val()?))?;
                if x.private.is_none() {
                    if let Some(prev) = self.external_ips.iter().find(|p| {
                        p.value.private.is_none() && p.value.public.is_ipv4() == x.public.is_ipv4()
                    }) {
                        return Err(e.error(format!(
                            "a second external-ip without /private for one address family \
                             (the first is {} at {}:{}); map each relay address with \
                             public/private instead",
                            prev.value.public, prev.at.source, prev.at.line
                        )));
                    }
                }
                self.external_ips.push(at(&e, name, x));
            }
            Key::RelayIp => {
                let ip = ck(&e, values::ip(val()?))?;
                if !self.relay_ips.contains(&ip) {
                    self.relay_ips.push(ip);
                }
            }
            Key::MinPort => self.min_port = Some(at(&e, name, ck(&e, values::port(val()?))?)),
            Key::MaxPort => self.max_port = Some(at(&e, name, ck(&e, values::port(val()?))?)),
            Key::User => self.users.push(at(&e, name, val()?.to_owned())),
            Key::Realm => self.realm = Some(val()?.to_owned()),
            Key::LtCredMech => self.lt_cred_mech = Some(at(&e, name, ck(&e, values::flag(opt))?)),
            Key::NoAuth => self.no_auth = Some(at(&e, name, ck(&e, values::flag(opt))?)),
            Key::UseAuthSecret => {
                self.use_auth_secret = Some(at(&e, name, ck(&e, values::flag(opt))?));
            }
            Key::StaticAuthSecret => {
                self.static_auth_secrets
                    .push(at(&e, name, val()?.to_owned()));
            }
            Key::RestApiSeparator => {
                self.rest_api_separator = Some(ck(&e, values::separator(val()?))?);
            }
            Key::StaleNonce => {
                self.stale_nonce = Some(ck(&e, values::seconds(opt, DEFAULT_STALE_NONCE))?);
            }
            Key::MaxAllocateLifetime => {
                self.max_allocate_lifetime =
                    Some(ck(&e, values::seconds(opt, DEFAULT_MAX_ALLOCATE_LIFETIME))?);
            }
            Key::ChannelLifetime => {
                self.channel_lifetime =
                    Some(ck(&e, values::seconds(opt, DEFAULT_CHANNEL_LIFETIME))?);
            }
            Key::PermissionLifetime => {
                self.permission_lifetime =
                    Some(ck(&e, values::seconds(opt, DEFAULT_PERMISSION_LIFETIME))?);
            }
            Key::UserQuota => self.user_quota = ck(&e, values::number(val()?, "quota"))?,
            Key::TotalQuota => self.total_quota = ck(&e, values::number(val()?, "quota"))?,
            Key::MaxBps => self.max_bps = ck(&e, values::number(val()?, "rate"))?,
            Key::CipherList => {
                self.tls12_ciphers = Some(cipher_list(val()?).map_err(|m| e.error(m))?)
            }
            Key::Userdb => self.userdb = Some(PathBuf::from(val()?.trim())),
            Key::UserdbRefresh => {
                let n: u64 = ck(&e, values::number(val()?, "seconds"))?;
                if n == 0 {
                    return Err(e.error("userdb-refresh must be at least 1 second".to_owned()));
                }
                self.userdb_refresh = Some(n);
            }
            Key::BpsCapacity => self.bps_capacity = ck(&e, values::number(val()?, "rate"))?,
            Key::AllowLoopbackPeers => self.allow_loopback_peers = ck(&e, values::flag(opt))?,
            Key::NoRelayShortcut => self.no_relay_shortcut = ck(&e, values::flag(opt))?,
            Key::RelaySocketMode => {
                self.relay_socket_mode = val()?.parse().map_err(|m: String| e.error(m))?;
            }
            Key::XdpInterface => {
                let name = val()?.trim();
                let valid = !name.is_empty()
                    && name.len() < 16
                    && !name.contains(['/', ':'])
                    && !name.chars().any(char::is_whitespace);
                if !valid {
                    return Err(e.error(format!(
                        "{name:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
                    )));
                }
                if !self.xdp_interfaces.iter().any(|i| i == name) {
                    self.xdp_interfaces.push(name.to_owned());
                }
            }
            Key::XdpMode => {
                self.xdp_mode = val()?.parse().map_err(|m: String| e.error(m))?;
            }
            Key::MaxSharedPeers => {
                let n: usize = ck(&e, values::number(val()?, "number of peers"))?;
                if n == 0 {
                    return Err(e.error("max-shared-peers must be at least 1".to_owned()));
                }
                self.max_shared_peers = Some(n);
            }
            Key::AllowedPeerIp | Key::DeniedPeerIp => {
                let text = val()?;
                let range: IpRange = text.parse().map_err(|err| e.error(format!("{err}")))?;
                let list = if spec.key == Key::AllowedPeerIp {
                    &mut self.allowed_peer_ips
                } else {
                    &mut self.denied_peer_ips
                };
                list.push(PeerRange {
                    text: text.trim().to_owned(),
                    range,
                });
            }
            Key::AlternateServer => {
                let a = ck(&e, values::ip_port(val()?, DEFAULT_LISTENING_PORT))?;
                self.alternate_servers.push(a);
            }
            Key::TlsAlternateServer => {
                let a = ck(&e, values::ip_port(val()?, DEFAULT_TLS_LISTENING_PORT))?;
                self.tls_alternate_servers.push(a);
            }
            Key::MaxAllocationsBeforeRedirect => {
                self.max_allocations_before_redirect =
                    ck(&e, values::number(val()?, "number of allocations"))?;
            }
            Key::SignalingTurnUrl => {
                let url = ck(&e, values::turn_url(val()?))?;
                self.signaling_turn_urls.push(url);
            }
            Key::NoMulticastPeers => self.no_multicast_peers = ck(&e, values::flag(opt))?,
            Key::Fingerprint => self.fingerprint = ck(&e, values::flag(opt))?,
            Key::NoSoftwareAttribute => self.no_software_attribute = ck(&e, values::flag(opt))?,
            Key::SoftwareAttribute => self.no_software_attribute = !ck(&e, values::flag(opt))?,
            Key::NoStun => self.no_stun = Some(at(&e, name, ck(&e, values::flag(opt))?)),
            Key::StunOnly => self.stun_only = Some(at(&e, name, ck(&e, values::flag(opt))?)),
            Key::LogFile => self.log_file = Some(PathBuf::from(val()?)),
            Key::Syslog => self.log.syslog = ck(&e, values::flag(opt))?,
            Key::SyslogFacility => {
                self.log.syslog_facility = val()?.parse().map_err(|m: String| e.error(m))?;
            }
            Key::SimpleLog => self.log.simple = ck(&e, values::flag(opt))?,
            Key::NewLogTimestamp => {
                let on = ck(&e, values::flag(opt))?;
                self.log.timestamp_format = match (on, self.log.timestamp_format.take()) {
                    (false, _) => None,
                    (true, kept) => Some(kept.unwrap_or_else(|| DEFAULT_TIMESTAMP_FORMAT.into())),
                };
            }
            Key::NewLogTimestampFormat => {
                let format = val()?.to_owned();
                let bad = chrono::format::StrftimeItems::new(&format)
                    .any(|item| matches!(item, chrono::format::Item::Error));
                if bad {
                    return Err(e.error(format!("{format:?} is not a strftime format")));
                }
                self.new_log_timestamp_format = Some(format);
            }
            Key::LogFormat => self.log.format = val()?.parse().map_err(|m: String| e.error(m))?,
            // ringturn has no telnet CLI: nothing to turn off.
            Key::NoCli => {
                ck(&e, values::flag(opt))?;
            }
            Key::NoLoopbackPeers => self.no_loopback_peers = ck(&e, values::flag(opt))?,
            Key::ServerName => self.server_name = Some(val()?.trim().to_owned()),
            Key::SecureStun => self.secure_stun = ck(&e, values::flag(opt))?,
            Key::KeepAddressFamily => {
                if ck(&e, values::flag(opt))? {
                    self.default_family = DefaultFamily::Keep;
                }
            }
            Key::AllocationDefaultAddressFamily => {
                self.default_family = match val()?.trim().to_ascii_lowercase().as_str() {
                    "ipv4" => DefaultFamily::Ipv4,
                    "ipv6" => DefaultFamily::Ipv6,
                    "keep" => DefaultFamily::Keep,
                    other => return Err(e.error(format!("{other:?}: expected ipv4, ipv6 or keep"))),
                };
            }
            Key::Verbose => {
                self.verbosity = match (ck(&e, values::flag(opt))?, self.verbosity) {
                    (true, Verbosity::Extra) => Verbosity::Extra,
                    (true, _) => Verbosity::Verbose,
                    (false, _) => Verbosity::Normal,
                };
            }
            Key::ExtraVerbose => {
                self.verbosity = match (ck(&e, values::flag(opt))?, self.verbosity) {
                    (true, _) => Verbosity::Extra,
                    (false, Verbosity::Extra) => Verbosity::Verbose,
                    (false, v) => v,
                };
            }
            Key::Pidfile => self.pidfile = Some(PathBuf::from(val()?)),
            Key::Workers => {
                let n: usize = ck(&e, values::number(val()?, "number of workers"))?;
                if n == 0 || n > usize::from(u16::MAX) {
                    return Err(e.error(format!("{n} workers is out of range (1-65535)")));
                }
                self.workers = Some(at(&e, name, n));
            }
            Key::CpuAffinity => {
                for cpu in ck(&e, values::cpu_list(val()?))? {
                    if !self.cpu_affinity.contains(&cpu) {
                        self.cpu_affinity.push(cpu);
                    }
                }
            }
            Key::IoBackend => {
                self.io_backend = val()?.parse().map_err(|m: String| e.error(m))?;
            }
            Key::TlsListeningPort => {
                self.tls_listening_port = Some(at(&e, name, ck(&e, values::port(val()?))?));
            }
            Key::Cert => self.cert = Some(PathBuf::from(val()?)),
            Key::Pkey => self.pkey = Some(PathBuf::from(val()?)),
            Key::NoTcp => self.no_tcp = ck(&e, values::flag(opt))?,
            Key::NoTls => self.no_tls = ck(&e, values::flag(opt))?,
            Key::NoTlsv12 => self.no_tlsv1_2 = ck(&e, values::flag(opt))?,
            Key::NoTcpRelay => self.no_tcp_relay = ck(&e, values::flag(opt))?,
            Key::ReuseportCpuSteering => {
                self.reuseport_cpu_steering = ck(&e, values::flag(opt))?;
            }
            Key::MaxConnections => {
                self.max_connections = Some(ck(&e, values::number(val()?, "a connection count"))?);
            }
            Key::MaxConnectionsPerIp => {
                self.max_connections_per_ip =
                    Some(ck(&e, values::number(val()?, "a connection count"))?);
            }
            Key::TlsHandshakeTimeout => {
                self.tls_handshake_timeout = Some(ck(&e, positive_seconds(val()?))?);
            }
            Key::StreamFirstMessageTimeout => {
                self.stream_first_message_timeout = Some(ck(&e, positive_seconds(val()?))?);
            }
            Key::StreamIdleTimeout => {
                self.stream_idle_timeout = Some(ck(&e, positive_seconds(val()?))?);
            }
            Key::StreamBufferLimit => {
                let n = ck(&e, values::size(val()?))?;
                if n < 4096 {
                    return Err(e.error(format!(
                        "{n} bytes is too small: one relayed frame needs up to 4 KiB"
                    )));
                }
                self.stream_buffer_limit = Some(n);
            }
            Key::UdpGro => {
                self.udp_gro = val()?.parse().map_err(|m: String| e.error(m))?;
            }
            Key::SocketRcvbuf => self.socket_rcvbuf = Some(ck(&e, values::size(val()?))?),
            Key::SocketSndbuf => self.socket_sndbuf = Some(ck(&e, values::size(val()?))?),
            Key::Rfc5766ChannelNumbers => {
                self.channel_range = if ck(&e, values::flag(opt))? {
                    ChannelRange::Rfc5766
                } else {
                    ChannelRange::Rfc8656
                };
            }
            Key::Rfc8656ChannelNumbers => {
                self.channel_range = if ck(&e, values::flag(opt))? {
                    ChannelRange::Rfc8656
                } else {
                    ChannelRange::Rfc5766
                };
            }
            Key::SignalingListeningPort => {
                self.signaling_listening_port = Some(ck(&e, values::port(val()?))?);
            }
            Key::SignalingRoomSize => {
                let n: usize = ck(&e, values::number(val()?, "room size"))?;
                if !(2..=MAX_ROOM_SIZE).contains(&n) {
                    return Err(
                        e.error(format!("room size {n} is out of range (2-{MAX_ROOM_SIZE})"))
                    );
                }
                self.signaling_room_size = Some(n);
            }
            Key::Prometheus => self.prometheus = ck(&e, values::flag(opt))?,
            Key::PrometheusPort => self.prometheus_port = Some(ck(&e, values::port(val()?))?),
            Key::PrometheusAddress => self.prometheus_address = Some(ck(&e, values::ip(val()?))?),
            Key::SignalingListeningIp => {
                self.signaling_listening_ip = Some(ck(&e, values::ip(val()?))?);
            }
            Key::SignalingMaxMessageBytes => {
                let n = ck(&e, values::size(val()?))?;
                if !(MIN_SIGNALING_MAX_MESSAGE_BYTES..=MAX_SIGNALING_MAX_MESSAGE_BYTES).contains(&n)
                {
                    return Err(e.error(format!(
                        "{n} bytes is out of range ({MIN_SIGNALING_MAX_MESSAGE_BYTES}-\
                         {MAX_SIGNALING_MAX_MESSAGE_BYTES})"
                    )));
                }
                self.signaling_max_message_bytes = Some(n);
            }
            Key::SignalingCredentialTtl => {
                self.signaling_credential_ttl = Some(ck(
                    &e,
                    values::seconds(Some(val()?), DEFAULT_SIGNALING_CREDENTIAL_TTL),
                )?);
            }
            Key::SignalingMaxConnections
            | Key::SignalingMaxRooms
            | Key::SignalingMaxRoomsPerConnection => {
                let n: usize = ck(&e, values::number(val()?, "limit"))?;
                if !(1..=MAX_SIGNALING_COUNT).contains(&n) {
                    return Err(e.error(format!("{n} is out of range (1-{MAX_SIGNALING_COUNT})")));
                }
                let slot = match spec.key {
                    Key::SignalingMaxConnections => &mut self.signaling_max_connections,
                    Key::SignalingMaxRooms => &mut self.signaling_max_rooms,
                    _ => &mut self.signaling_max_rooms_per_connection,
                };
                *slot = Some(n);
            }
        }
        Ok(())
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

    /// `host` lists the host's interface addresses; it is asked only when no
    /// `listening-ip` is configured.
    pub(crate) fn finish(
        mut self,
        rng_seed: u64,
        host: &dyn Fn() -> std::io::Result<Vec<InterfaceAddress>>,
    ) -> Result<Config, ConfigError> {
        // Ports.
        let min_port = self.min_port.as_ref().map_or(DEFAULT_MIN_PORT, |a| a.value);
        let max_port = self.max_port.as_ref().map_or(DEFAULT_MAX_PORT, |a| a.value);
        if min_port > max_port {
            let (origin, key) = match (&self.min_port, &self.max_port) {
                (Some(a), Some(b)) => a.later(b),
                (Some(a), None) => (&a.at, a.key),
                (None, Some(b)) => (&b.at, b.key),
                (None, None) => return Err(self.whole("min-port", "min-port > max-port")),
            };
            return Err(ConfigError::new(
                &origin.source,
                origin.line,
                key,
                format!("min-port {min_port} is above max-port {max_port}"),
            ));
        }
        let port_count = usize::from(max_port - min_port) + 1;

        // Listening addresses.
        let listening_port = self
            .listening_port
            .as_ref()
            .map_or(DEFAULT_LISTENING_PORT, |a| a.value);
        let mut listening_ips: Vec<IpAddr> = Vec::new();
        for a in &self.listening_ips {
            if !listening_ips.contains(&a.value) {
                listening_ips.push(a.value);
            }
        }
        // No listening-ip: like coturn, every address of every interface that
        // is up, loopback included, each bound on its own (issue 12). One
        // socket per address rather than the wildcard: an answer then always
        // leaves from the address the client sent to, on a multi-homed host
        // too, without IP_PKTINFO through both I/O backends.
        let mut interfaces = Vec::new();
        if listening_ips.is_empty() {
            interfaces = host().map_err(|e| {
                self.whole(
                    "listening-ip",
                    format!("no listening-ip, and the network interfaces cannot be read: {e}"),
                )
            })?;
            if interfaces.is_empty() {
                return Err(self.whole(
                    "listening-ip",
                    "no listening-ip, and no interface that is up has an address",
                ));
            }
            listening_ips = interfaces.iter().map(|a| a.ip).collect();
        }
        let listening: Vec<SocketAddr> = listening_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, listening_port))
            .collect();
        let tls_port_explicit = self.tls_listening_port.is_some();
        let tls_listening_port = self.tls_listening_port.take().unwrap_or(At {
            value: DEFAULT_TLS_LISTENING_PORT,
            at: Origin {
                source: self.source_name.clone(),
                line: 0,
            },
            key: "tls-listening-port",
        });
        if self.cert.is_none() && !self.no_tls && tls_port_explicit {
            let at = tls_listening_port.at.clone();
            self.warn(
                Some(&at),
                "tls-listening-port",
                "no cert= is configured, so TURN over TLS is off",
            );
        }

        // Relay addresses: relay-ip, else the specific listening addresses,
        // else the private halves of external-ip, else the wildcard of each
        // family that has a bare external-ip (the advertised address is then
        // the external one).
        let external_ips: Vec<ExternalIp> = self.external_ips.iter().map(|a| a.value).collect();
        let mut relay_ips = self.relay_ips.clone();
        if relay_ips.is_empty() && !interfaces.is_empty() {
            // Found on the interfaces: relay from them, but not from loopback
            // when the host has other addresses (a relayed address on
            // 127.0.0.1 is of no use to a remote client), as coturn does.
            relay_ips = interfaces
                .iter()
                .filter(|a| !a.loopback)
                .map(|a| a.ip)
                .collect();
            if relay_ips.is_empty() {
                relay_ips = listening_ips.clone();
            }
        }
        if relay_ips.is_empty() {
            relay_ips = listening_ips
                .iter()
                .copied()
                .filter(|ip| !ip.is_unspecified())
                .collect();
        }
        if relay_ips.is_empty() {
            for x in &external_ips {
                if let Some(p) = x.private {
                    if !relay_ips.contains(&p) {
                        relay_ips.push(p);
                    }
                }
            }
        }
        if relay_ips.is_empty() {
            for x in external_ips.iter().filter(|x| x.private.is_none()) {
                relay_ips.push(if x.public.is_ipv4() {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                });
            }
        }
        if relay_ips.is_empty() {
            return Err(self.whole(
                "relay-ip",
                "no relay address: set relay-ip, listening-ip or external-ip \
                 (ringturn does not scan the network interfaces)",
            ));
        }
        let unmapped: Vec<(Origin, IpAddr)> = self
            .external_ips
            .iter()
            .filter_map(|a| a.value.private.map(|p| (a.at.clone(), p)))
            .filter(|(_, p)| !relay_ips.contains(p))
            .collect();
        for (origin, p) in unmapped {
            self.warn(
                Some(&origin),
                "external-ip",
                format!("{p} is not a relay address; this mapping is unused"),
            );
        }

        // Credentials.
        let flag = |a: &Option<At<bool>>| a.as_ref().is_some_and(|a| a.value);
        let no_auth = flag(&self.no_auth);
        if let (Some(lt), Some(na)) = (&self.lt_cred_mech, &self.no_auth) {
            if lt.value && na.value {
                let (origin, key) = lt.later(na);
                return Err(ConfigError::new(
                    &origin.source,
                    origin.line,
                    key,
                    "lt-cred-mech and no-auth exclude each other",
                ));
            }
        }
        if let (Some(us), Some(na)) = (&self.use_auth_secret, &self.no_auth) {
            if us.value && na.value {
                let (origin, key) = us.later(na);
                return Err(ConfigError::new(
                    &origin.source,
                    origin.line,
                    key,
                    "use-auth-secret and no-auth exclude each other",
                ));
            }
        }
        if let Some(us) = self.use_auth_secret.as_ref().filter(|a| a.value) {
            if self.static_auth_secrets.is_empty() && self.userdb.is_none() {
                return Err(us.error(
                    "use-auth-secret needs at least one static-auth-secret, \
                     or a userdb= whose turn_secret table holds them",
                ));
            }
        }
        // coturn: a static-auth-secret turns the REST API on by itself
        // (unless use-auth-secret=false says otherwise).
        // With a userdb the secrets may all come from its turn_secret table.
        let explicit = self.use_auth_secret.as_ref().map(|a| a.value);
        let use_auth_secret = match explicit {
            Some(on) => on && (!self.static_auth_secrets.is_empty() || self.userdb.is_some()),
            None => !self.static_auth_secrets.is_empty(),
        };
        let realm = self.realm.clone().unwrap_or_default();
        let trigger: Option<(&Origin, &str)> = self
            .lt_cred_mech
            .as_ref()
            .filter(|a| a.value)
            .map(|a| (&a.at, a.key))
            .or_else(|| {
                self.use_auth_secret
                    .as_ref()
                    .filter(|a| a.value)
                    .map(|a| (&a.at, a.key))
            })
            .or_else(|| self.static_auth_secrets.first().map(|a| (&a.at, a.key)))
            .or_else(|| self.users.first().map(|a| (&a.at, a.key)));
        if !no_auth && realm.is_empty() {
            if let Some((origin, key)) = trigger {
                return Err(ConfigError::new(
                    &origin.source,
                    origin.line,
                    "realm",
                    format!("realm is required with {key} (long-term credentials)"),
                ));
            }
        }
        let mut users = Vec::with_capacity(self.users.len());
        for u in &self.users {
            let (name, keys) =
                parse_user(&u.value, &realm).map_err(|err| u.error(format!("{err}")))?;
            users.push((name, keys));
        }
        let stun_only = flag(&self.stun_only);
        let no_stun = flag(&self.no_stun);
        if let (Some(a), Some(b)) = (&self.stun_only, &self.no_stun) {
            if a.value && b.value {
                let (origin, key) = a.later(b);
                return Err(ConfigError::new(
                    &origin.source,
                    origin.line,
                    key,
                    "stun-only and no-stun together leave nothing to serve",
                ));
            }
        }
        if no_auth && !users.is_empty() {
            let origin = self.users.first().map(|a| a.at.clone());
            self.warn(origin.as_ref(), "user", "users have no effect with no-auth");
        }
        if !no_auth && !stun_only && users.is_empty() && !use_auth_secret && self.userdb.is_none() {
            self.warn(
                None,
                "lt-cred-mech",
                "no user= and no static-auth-secret: every TURN request will be refused \
                 (add credentials, or no-auth to relay for anyone)",
            );
        }

        // Workers.
        let workers = match &self.workers {
            Some(w) if w.value > port_count => {
                return Err(w.error(format!(
                    "{} workers cannot share the {port_count} relay ports of {min_port}-{max_port} \
                     (each needs at least one)",
                    w.value
                )));
            }
            Some(w) => w.value,
            None => {
                let n = if self.cpu_affinity.is_empty() {
                    std::thread::available_parallelism().map_or(1, usize::from)
                } else {
                    self.cpu_affinity.len()
                };
                n.min(port_count).min(usize::from(u16::MAX))
            }
        };

        if self.reuseport_cpu_steering && self.cpu_affinity.len() < workers {
            return Err(self.whole(
                "reuseport-cpu-steering",
                format!(
                    "steering by CPU needs cpu-affinity to list a core for each of the {workers} workers"
                ),
            ));
        }
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        let static_auth_secrets: Vec<String> = self
            .static_auth_secrets
            .iter()
            .map(|a| a.value.clone())
            .collect();
        if self.no_loopback_peers && self.allow_loopback_peers {
            return Err(self.whole(
                "no-loopback-peers",
                "contradicts allow-loopback-peers: keep one",
            ));
        }
        let server_name = self.server_name.clone().unwrap_or_else(|| realm.clone());
        Ok(Config {
            source_name: self.source_name,
            listening,
            interfaces,
            relay_ips,
            external_ips,
            min_port,
            max_port,
            realm,
            no_auth,
            use_auth_secret,
            rest_api_separator: self.rest_api_separator.unwrap_or(':'),
            nonce_lifetime: secs(self.stale_nonce, DEFAULT_STALE_NONCE),
            max_allocate_lifetime: secs(self.max_allocate_lifetime, DEFAULT_MAX_ALLOCATE_LIFETIME),
            channel_lifetime: secs(self.channel_lifetime, DEFAULT_CHANNEL_LIFETIME),
            permission_lifetime: secs(self.permission_lifetime, DEFAULT_PERMISSION_LIFETIME),
            user_quota: self.user_quota,
            total_quota: self.total_quota,
            max_bps: self.max_bps,
            bps_capacity: self.bps_capacity,
            allow_loopback_peers: self.allow_loopback_peers,
            no_relay_shortcut: self.no_relay_shortcut,
            relay_socket_mode: self.relay_socket_mode,
            max_shared_peers: self.max_shared_peers.unwrap_or(DEFAULT_MAX_SHARED_PEERS),
            xdp_interfaces: self.xdp_interfaces,
            xdp_mode: self.xdp_mode,
            allowed_peer_ips: self.allowed_peer_ips,
            denied_peer_ips: self.denied_peer_ips,
            alternate_servers: self.alternate_servers,
            tls_alternate_servers: self.tls_alternate_servers,
            max_allocations_before_redirect: self.max_allocations_before_redirect,
            signaling_turn_urls: self.signaling_turn_urls,
            no_multicast_peers: self.no_multicast_peers,
            fingerprint: self.fingerprint,
            software_attribute: !self.no_software_attribute,
            no_stun,
            stun_only,
            channel_range: self.channel_range,
            log: LogSettings {
                file: self.log_file,
                verbosity: self.verbosity,
                timestamp_format: self
                    .log
                    .timestamp_format
                    .map(|default| self.new_log_timestamp_format.unwrap_or(default)),
                ..self.log
            },
            secure_stun: self.secure_stun,
            default_family: self.default_family,
            server_name,
            pidfile: self.pidfile,
            workers,
            cpu_affinity: self.cpu_affinity,
            io_backend: self.io_backend,
            udp_gro: self.udp_gro,
            // Unset: 4 MiB each, so a burst (or a stalled moment) does not
            // overflow the kernel's ~208 KiB default; coturn enlarges its buffers too.
            socket_rcvbuf: self.socket_rcvbuf.or(Some(DEFAULT_SOCKET_BUFFER)),
            socket_sndbuf: self.socket_sndbuf.or(Some(DEFAULT_SOCKET_BUFFER)),
            signaling_listening_port: self.signaling_listening_port,
            signaling_listening_ip: self
                .signaling_listening_ip
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            signaling_room_size: self.signaling_room_size.unwrap_or(DEFAULT_ROOM_SIZE),
            signaling_max_message_bytes: self
                .signaling_max_message_bytes
                .unwrap_or(DEFAULT_SIGNALING_MAX_MESSAGE_BYTES),
            signaling_credential_ttl: secs(
                self.signaling_credential_ttl,
                DEFAULT_SIGNALING_CREDENTIAL_TTL,
            ),
            signaling_max_connections: self
                .signaling_max_connections
                .unwrap_or(DEFAULT_SIGNALING_MAX_CONNECTIONS),
            signaling_max_rooms: self
                .signaling_max_rooms
                .unwrap_or(DEFAULT_SIGNALING_MAX_ROOMS),
            signaling_max_rooms_per_connection: self
                .signaling_max_rooms_per_connection
                .unwrap_or(DEFAULT_SIGNALING_MAX_ROOMS_PER_CONNECTION),
            prometheus: self.prometheus,
            prometheus_port: self.prometheus_port.unwrap_or(DEFAULT_PROMETHEUS_PORT),
            prometheus_address: self
                .prometheus_address
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            tcp: !self.no_tcp,
            tls: !self.no_tls && self.cert.is_some(),
            tls_listening_port: tls_listening_port.value,
            pkey: self.pkey.or_else(|| self.cert.clone()),
            cert: self.cert,
            tls12: !self.no_tlsv1_2,
            tls12_ciphers: self.tls12_ciphers,
            userdb: self.userdb,
            userdb_refresh: Duration::from_secs(self.userdb_refresh.unwrap_or(30)),
            tcp_relay: !self.no_tcp_relay,
            reuseport_cpu_steering: self.reuseport_cpu_steering,
            stream_limits: {
                let d = crate::io::stream::StreamLimits::default();
                let s = |v: Option<u64>, d: std::time::Duration| {
                    v.map_or(d, std::time::Duration::from_secs)
                };
                crate::io::stream::StreamLimits {
                    max_connections: self.max_connections.unwrap_or(d.max_connections),
                    max_per_ip: self.max_connections_per_ip.unwrap_or(d.max_per_ip),
                    handshake_timeout: s(self.tls_handshake_timeout, d.handshake_timeout),
                    first_message_timeout: s(
                        self.stream_first_message_timeout,
                        d.first_message_timeout,
                    ),
                    idle_timeout: s(self.stream_idle_timeout, d.idle_timeout),
                    max_buffered: self.stream_buffer_limit.unwrap_or(d.max_buffered),
                }
            },
            demo_user: None,
            warnings: self.warnings,
            rng_seed,
            users: super::Redacted(users),
            static_auth_secrets: super::Redacted(static_auth_secrets),
        })
    }
}

/// coturn's `cipher-list` (OpenSSL's syntax): the TLS 1.2 suites named in it
/// that rustls offers. OpenSSL's keywords (`HIGH`, `!aNULL`, …) select from
/// OpenSSL's own catalogue, so a list with them keeps every suite rustls has
/// (all of them strong); a list of names only must name at least one.
fn cipher_list(value: &str) -> Result<Vec<String>, String> {
    let value = value.trim().trim_matches('"');
    let names: Vec<&str> = value
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let keyword = |n: &&str| {
        n.starts_with(['!', '+', '-', '@'])
            || n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    if names.iter().any(keyword) {
        return Ok(crate::tls::TLS12_SUITES
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect());
    }
    let kept: Vec<String> = names
        .iter()
        .filter(|n| {
            crate::tls::TLS12_SUITES
                .iter()
                .any(|(known, _)| known == *n)
        })
        .map(|n| (*n).to_owned())
        .collect();
    if kept.is_empty() {
        return Err(format!(
            "names no TLS 1.2 suite ringturn can offer (it has {})",
            crate::tls::TLS12_SUITES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(kept)
}
