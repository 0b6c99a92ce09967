//! Applying entries in order, one key at a time: each value parsed, checked
//! on its own and stored in the [`Builder`], with the line it came from.

use std::path::PathBuf;

use crate::stun::ChannelRange;
use crate::turn::IpRange;

use crate::config::keys::{self, Key, Lookup};
use crate::config::source::Entry;
use crate::config::values;
use crate::config::{ConfigError, ConfigWarning, PeerRange, Verbosity, DEFAULT_TIMESTAMP_FORMAT};
use crate::turn::DefaultFamily;

use super::{
    At, Builder, DEFAULT_CHANNEL_LIFETIME, DEFAULT_LISTENING_PORT, DEFAULT_MAX_ALLOCATE_LIFETIME,
    DEFAULT_PERMISSION_LIFETIME, DEFAULT_SIGNALING_CREDENTIAL_TTL, DEFAULT_STALE_NONCE,
    DEFAULT_TLS_LISTENING_PORT, MAX_ROOM_SIZE, MAX_SIGNALING_COUNT,
    MAX_SIGNALING_MAX_MESSAGE_BYTES, MIN_SIGNALING_MAX_MESSAGE_BYTES,
};

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

impl Builder {
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
            Key::SignalingRedis => {
                let url = val()?.trim();
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(e.error(format!(
                        "{url:?} is not a Redis URL (redis://HOST:PORT[/DB])"
                    )));
                }
                self.signaling_redis = Some(url.to_owned());
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
