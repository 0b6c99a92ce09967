//! The option names: ringturn's own, the coturn ones it implements, and the
//! coturn ones it knows but does not implement (a warning, not an error).

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A flag: bare means "on" (or the key's default number); a value is optional.
    Flag,
    /// A value is required.
    Value,
}

/// Every option ringturn implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    ListeningPort,
    ListeningIp,
    ExternalIp,
    RelayIp,
    MinPort,
    MaxPort,
    User,
    Realm,
    LtCredMech,
    NoAuth,
    UseAuthSecret,
    StaticAuthSecret,
    RestApiSeparator,
    StaleNonce,
    MaxAllocateLifetime,
    ChannelLifetime,
    PermissionLifetime,
    UserQuota,
    TotalQuota,
    MaxBps,
    AllowLoopbackPeers,
    AllowedPeerIp,
    DeniedPeerIp,
    NoMulticastPeers,
    Fingerprint,
    NoSoftwareAttribute,
    SoftwareAttribute,
    NoStun,
    NoRelayShortcut,
    RelaySocketMode,
    XdpInterface,
    XdpMode,
    MaxSharedPeers,
    StunOnly,
    LogFile,
    Verbose,
    ExtraVerbose,
    Pidfile,
    Workers,
    CpuAffinity,
    IoBackend,
    UdpGro,
    SocketRcvbuf,
    SocketSndbuf,
    Rfc5766ChannelNumbers,
    Rfc8656ChannelNumbers,
    SignalingListeningPort,
    SignalingListeningIp,
    SignalingRoomSize,
    SignalingMaxMessageBytes,
    SignalingCredentialTtl,
    SignalingMaxConnections,
    SignalingMaxRooms,
    SignalingMaxRoomsPerConnection,
    Prometheus,
    PrometheusPort,
    PrometheusAddress,
    TlsListeningPort,
    Cert,
    Pkey,
    NoTcp,
    NoTls,
    NoTlsv12,
    MaxConnections,
    MaxConnectionsPerIp,
    TlsHandshakeTimeout,
    StreamFirstMessageTimeout,
    StreamIdleTimeout,
    StreamBufferLimit,
    NoTcpRelay,
    ReuseportCpuSteering,
    Syslog,
    SyslogFacility,
    SimpleLog,
    NewLogTimestamp,
    NewLogTimestampFormat,
    LogFormat,
    NoCli,
    NoLoopbackPeers,
    ServerName,
    SecureStun,
    KeepAddressFamily,
    AllocationDefaultAddressFamily,
    BpsCapacity,
    CipherList,
    Userdb,
    UserdbRefresh,
    AlternateServer,
    TlsAlternateServer,
    MaxAllocationsBeforeRedirect,
    SignalingTurnUrl,
    SignalingRedis,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub key: Key,
    pub arg: Arg,
    /// May be given more than once; every occurrence adds to the list.
    pub repeatable: bool,
    /// A ringturn option rather than a coturn one.
    pub own: bool,
    pub help: &'static str,
}

const fn spec(
    name: &'static str,
    key: Key,
    arg: Arg,
    repeatable: bool,
    own: bool,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        key,
        arg,
        repeatable,
        own,
        help,
    }
}

use Arg::{Flag, Value};

#[rustfmt::skip]
pub(crate) const SUPPORTED: &[Spec] = &[
    spec("listening-port", Key::ListeningPort, Value, false, false, "UDP port for STUN/TURN (default 3478)"),
    spec("listening-ip", Key::ListeningIp, Value, true, false, "address to listen on (repeatable; default: every address of every interface that is up)"),
    spec("external-ip", Key::ExternalIp, Value, true, false, "PUBLIC or PUBLIC/PRIVATE: the address advertised for a relay address behind NAT (repeatable)"),
    spec("relay-ip", Key::RelayIp, Value, true, false, "address relay ports are opened on (repeatable; default: the listening or external-ip private addresses)"),
    spec("min-port", Key::MinPort, Value, false, false, "lowest relay port (default 49152)"),
    spec("max-port", Key::MaxPort, Value, false, false, "highest relay port (default 65535)"),
    spec("userdb", Key::Userdb, Value, false, false, "coturn's SQLite user database (turnadmin's; default /var/lib/turn/turndb when it exists): users, REST secrets, peer ranges, realm options"),
    spec("userdb-refresh", Key::UserdbRefresh, Value, false, true, "seconds between reads of the user database (default 30; SIGHUP reads it at once)"),
    spec("user", Key::User, Value, true, false, "NAME:PASSWORD or NAME:0x<md5 key> (repeatable)"),
    spec("realm", Key::Realm, Value, false, false, "realm of the long-term credentials (required with them)"),
    spec("lt-cred-mech", Key::LtCredMech, Flag, false, false, "require long-term credentials (ringturn always does unless no-auth)"),
    spec("no-auth", Key::NoAuth, Flag, false, false, "relay for anyone, without credentials"),
    spec("use-auth-secret", Key::UseAuthSecret, Flag, false, false, "TURN REST API time-limited credentials (needs static-auth-secret)"),
    spec("static-auth-secret", Key::StaticAuthSecret, Value, true, false, "REST API shared secret (repeatable, for rotation; implies use-auth-secret)"),
    spec("rest-api-separator", Key::RestApiSeparator, Value, false, false, "character between expiry and user in REST usernames (default ':')"),
    spec("stale-nonce", Key::StaleNonce, Flag, false, false, "nonce lifetime in seconds (bare: 600)"),
    spec("max-allocate-lifetime", Key::MaxAllocateLifetime, Flag, false, false, "longest allocation lifetime in seconds (default 3600)"),
    spec("channel-lifetime", Key::ChannelLifetime, Flag, false, false, "channel binding lifetime in seconds (default 600)"),
    spec("permission-lifetime", Key::PermissionLifetime, Flag, false, false, "permission lifetime in seconds (default 300)"),
    spec("user-quota", Key::UserQuota, Value, false, false, "live allocations per user (0 = unlimited)"),
    spec("total-quota", Key::TotalQuota, Value, false, false, "live allocations on the server (0 = unlimited)"),
    spec("max-bps", Key::MaxBps, Value, false, false, "bytes per second each way per allocation, dropped above it (0 = unlimited)"),
    spec("bps-capacity", Key::BpsCapacity, Value, false, false, "bytes per second each way for the whole server, split among workers (0 = unlimited)"),
    spec("allow-loopback-peers", Key::AllowLoopbackPeers, Flag, false, false, "allow peers on loopback addresses"),
    spec("allowed-peer-ip", Key::AllowedPeerIp, Value, true, false, "IP, FIRST-LAST or PREFIX/BITS always allowed as peer (repeatable)"),
    spec("denied-peer-ip", Key::DeniedPeerIp, Value, true, false, "IP, FIRST-LAST or PREFIX/BITS refused as peer (repeatable)"),
    spec("no-multicast-peers", Key::NoMulticastPeers, Flag, false, false, "refuse multicast peers (ringturn always does)"),
    spec("fingerprint", Key::Fingerprint, Flag, false, false, "FINGERPRINT on every response"),
    spec("no-software-attribute", Key::NoSoftwareAttribute, Flag, false, false, "no SOFTWARE attribute in responses"),
    spec("software-attribute", Key::SoftwareAttribute, Flag, false, false, "SOFTWARE attribute in responses (ringturn's default)"),
    spec("no-stun", Key::NoStun, Flag, false, false, "ignore STUN Binding requests"),
    spec("stun-only", Key::StunOnly, Flag, false, false, "answer STUN Binding only, refuse TURN"),
    spec("log-file", Key::LogFile, Value, false, false, "log file path (stdout or syslog as coturn spells them)"),
    spec("verbose", Key::Verbose, Flag, false, false, "verbose logging"),
    spec("Verbose", Key::ExtraVerbose, Flag, false, false, "extra verbose logging"),
    spec("syslog", Key::Syslog, Flag, false, false, "log to the local syslog (/dev/log) instead of a file"),
    spec("syslog-facility", Key::SyslogFacility, Value, false, false, "syslog facility: LOG_USER (the default), LOG_DAEMON, LOG_LOCAL0-7, ... as coturn names them"),
    spec("simple-log", Key::SimpleLog, Flag, false, false, "log-file is used as named (without it, as coturn: NAME_YYYY-MM-DD.log, a new file each day)"),
    spec("new-log-timestamp", Key::NewLogTimestamp, Flag, false, false, "start log lines with the local date and time (new-log-timestamp-format) instead of seconds since start, as coturn"),
    spec("new-log-timestamp-format", Key::NewLogTimestampFormat, Value, false, false, "strftime format of new-log-timestamp (default %FT%T%z)"),
    spec("no-cli", Key::NoCli, Flag, false, false, "no telnet CLI (ringturn has none: accepted)"),
    spec("no-loopback-peers", Key::NoLoopbackPeers, Flag, false, false, "refuse peers on loopback addresses (ringturn's default)"),
    spec("server-name", Key::ServerName, Value, false, false, "the server's name (coturn uses it for OAuth; ringturn has no OAuth: shown in --check-config; default the realm)"),
    spec("secure-stun", Key::SecureStun, Flag, false, false, "STUN Binding requests need long-term credentials too"),
    spec("keep-address-family", Key::KeepAddressFamily, Flag, false, false, "an Allocate without REQUESTED-ADDRESS-FAMILY relays in the client's own family (instead of IPv4)"),
    spec("allocation-default-address-family", Key::AllocationDefaultAddressFamily, Value, false, false, "ipv4 (the default), ipv6 or keep: the relayed family of an Allocate without REQUESTED-ADDRESS-FAMILY"),
    spec("pidfile", Key::Pidfile, Value, false, false, "write the process id to this file"),
    spec("workers", Key::Workers, Value, false, true, "worker threads, one per core (default: number of CPUs, or of cpu-affinity cores)"),
    spec("cpu-affinity", Key::CpuAffinity, Value, true, true, "cores to pin workers to: 0,1 or 0-3 (repeatable)"),
    spec("no-relay-shortcut", Key::NoRelayShortcut, Flag, false, true, "relay to relay through the kernel instead of directly between workers (for measuring)"),
    spec("relay-socket-mode", Key::RelaySocketMode, Value, false, true, "per-allocation (a relay port per allocation, the default) or shared (one relay port per worker and relay IP, peers demultiplexed by address; no EVEN-PORT)"),
    spec("max-shared-peers", Key::MaxSharedPeers, Value, false, true, "peer endpoints (IP:port) one allocation may use with relay-socket-mode=shared (default 64)"),
    spec("xdp-interface", Key::XdpInterface, Value, true, true, "attach the XDP fast path to this network interface (repeatable; bound channels are then relayed in the kernel)"),
    spec("xdp-mode", Key::XdpMode, Value, false, true, "auto (native XDP, else generic, the default), native or generic"),
    spec("io-backend", Key::IoBackend, Value, false, true, "auto, uring or batch (recvmmsg/sendmmsg + epoll)"),
    spec("udp-gro", Key::UdpGro, Value, false, true, "UDP GRO on receive: on (relay and listening sockets, the default), off, or relays (relay sockets only)"),
    spec("socket-rcvbuf", Key::SocketRcvbuf, Value, false, true, "SO_RCVBUF in bytes (suffixes K, M, G)"),
    spec("socket-sndbuf", Key::SocketSndbuf, Value, false, true, "SO_SNDBUF in bytes (suffixes K, M, G)"),
    spec("rfc5766-channel-numbers", Key::Rfc5766ChannelNumbers, Flag, false, true, "accept channels 0x4000-0x7FFF (the default)"),
    spec("rfc8656-channel-numbers", Key::Rfc8656ChannelNumbers, Flag, false, true, "accept channels 0x4000-0x4FFF only"),
    spec("signaling-listening-port", Key::SignalingListeningPort, Value, false, true, "TCP port of the signaling server (off unless set)"),
    spec("signaling-listening-ip", Key::SignalingListeningIp, Value, false, true, "address of the signaling server (default 0.0.0.0; 127.0.0.1 in the embedded defaults)"),
    spec("signaling-room-size", Key::SignalingRoomSize, Value, false, true, "participants per signaling room (default 2)"),
    spec("signaling-max-message-bytes", Key::SignalingMaxMessageBytes, Value, false, true, "largest signaling message accepted, bytes with optional K/M suffix (default 64K)"),
    spec("signaling-credential-ttl", Key::SignalingCredentialTtl, Value, false, true, "seconds the TURN credentials handed to pages stay valid (default 86400)"),
    spec("signaling-max-connections", Key::SignalingMaxConnections, Value, false, true, "signaling connections at once, WebSocket and Socket.IO together (default 10000)"),
    spec("signaling-max-rooms", Key::SignalingMaxRooms, Value, false, true, "signaling rooms at once (default 10000)"),
    spec("prometheus", Key::Prometheus, Flag, false, false, "serve Prometheus metrics at /metrics over HTTP"),
    spec("prometheus-port", Key::PrometheusPort, Value, false, false, "TCP port of the metrics endpoint (default 9641)"),
    spec("prometheus-address", Key::PrometheusAddress, Value, false, false, "address of the metrics endpoint (default 127.0.0.1)"),
    spec("tls-listening-port", Key::TlsListeningPort, Value, false, false, "TLS port for TURN over TLS (default 5349; needs cert and pkey)"),
    spec("cert", Key::Cert, Value, false, false, "PEM certificate chain for TLS (reloaded on SIGHUP)"),
    spec("pkey", Key::Pkey, Value, false, false, "PEM private key for TLS (default: the cert file)"),
    spec("no-tcp", Key::NoTcp, Flag, false, false, "no TURN over TCP on the listening port"),
    spec("no-tls", Key::NoTls, Flag, false, false, "no TURN over TLS"),
    spec("cipher-list", Key::CipherList, Value, false, false, "TLS 1.2 suites to offer, OpenSSL names separated by ':' (of rustls's ECDHE AES-GCM and ChaCha20 suites; TLS 1.3 keeps its own, as in OpenSSL)"),
    spec("no-tlsv1_2", Key::NoTlsv12, Flag, false, false, "TLS 1.3 only"),
    spec("log-format", Key::LogFormat, Value, false, true, "text (coturn-like lines, the default) or json (one JSON object per line, for log pipelines)"),
    spec("reuseport-cpu-steering", Key::ReuseportCpuSteering, Flag, false, true, "each datagram or connection goes to the worker pinned to the CPU that received it (SO_ATTACH_REUSEPORT_CBPF; needs cpu-affinity, one core per worker)"),
    spec("no-tcp-relay", Key::NoTcpRelay, Flag, false, false, "no TCP relaying (RFC 6062): Allocate with REQUESTED-TRANSPORT TCP gets 442"),
    spec("max-connections", Key::MaxConnections, Value, false, true, "TCP/TLS connections at once, all workers (default 50000; 0 = no limit)"),
    spec("max-connections-per-ip", Key::MaxConnectionsPerIp, Value, false, true, "TCP/TLS connections at once from one IP address (default 1000; 0 = no limit)"),
    spec("tls-handshake-timeout", Key::TlsHandshakeTimeout, Value, false, true, "seconds a TLS handshake may take (default 10)"),
    spec("stream-first-message-timeout", Key::StreamFirstMessageTimeout, Value, false, true, "seconds from connect to the first complete STUN message (default 10)"),
    spec("stream-idle-timeout", Key::StreamIdleTimeout, Value, false, true, "seconds of silence before a connection without an allocation is closed (default 60)"),
    spec("stream-buffer-limit", Key::StreamBufferLimit, Value, false, true, "bytes waiting to be written to one connection before frames are dropped (default 256K)"),
    spec("alternate-server", Key::AlternateServer, Value, true, false, "IP[:PORT] (port 3478) an Allocate from a UDP or TCP client is redirected to with 300 Try Alternate, round robin (repeatable)"),
    spec("tls-alternate-server", Key::TlsAlternateServer, Value, true, false, "IP[:PORT] (port 5349) an Allocate from a TLS client is redirected to (repeatable)"),
    spec("max-allocations-before-redirect", Key::MaxAllocationsBeforeRedirect, Value, false, true, "redirect to the alternate servers only once this node holds this many allocations (default 0: always)"),
    spec("signaling-redis", Key::SignalingRedis, Value, false, true, "redis://HOST:PORT[/DB]: rooms shared by every signaling node on that Redis (absent: rooms stay in this process)"),
    spec("signaling-turn-urls", Key::SignalingTurnUrl, Value, true, true, "turn:/turns: URL the call page's ICE servers name instead of this node's own (repeatable)"),
    spec("signaling-max-rooms-per-connection", Key::SignalingMaxRoomsPerConnection, Value, false, true, "rooms one signaling connection may be in at once (default 4)"),
];

/// coturn options that only forbid what ringturn never does: old TLS and
/// SSL versions (rustls speaks TLS 1.2 and 1.3 only) and finite-field
/// Diffie-Hellman parameters (rustls offers ECDHE only). Accepted without a
/// warning, as the README says.
pub(crate) fn already_so(key: &str) -> bool {
    matches!(
        key,
        "no-sslv2"
            | "no-sslv3"
            | "no-tlsv1"
            | "no-tlsv1_1"
            | "dh566"
            | "dh1066"
            | "dh2066"
            | "dh-file"
    )
}

/// Why a coturn option is read and ignored, for its warning.
pub(crate) fn why_ignored(key: &str) -> &'static str {
    match key {
        "no-sslv2" | "no-sslv3" | "no-tlsv1" | "no-tlsv1_1" | "dh566" | "dh1066" | "dh2066"
        | "dh-file" => {
            "moot: ringturn's TLS (rustls) offers only TLS 1.2 and 1.3 with ECDHE; ignored"
        }
        "ec-curve-name" => "rustls chooses its own safe curves; ignored",
        "no-dtls" => "ringturn has no DTLS; ignored",
        "mobility" => {
            "RFC 8016 mobility tickets are not implemented: a client whose address changes \
             makes a new allocation (an ICE restart does); ignored"
        }
        _ => "coturn option not implemented by ringturn; ignored",
    }
}

/// coturn options (its `long_options`, plus a few older names) that ringturn
/// reads without acting on them.
pub(crate) const COTURN_ONLY: &[(&str, Arg)] = &[
    ("listening-device", Value),
    ("alt-listening-port", Value),
    ("alt-tls-listening-port", Value),
    ("tcp-proxy-port", Value),
    ("relay-device", Value),
    ("relay-threads", Value),
    ("db", Value),
    ("psql-userdb", Value),
    ("sql-userdb", Value),
    ("mysql-userdb", Value),
    ("mongo-userdb", Value),
    ("redis-userdb", Value),
    ("redis-statsdb", Value),
    ("prometheus-username-labels", Flag),
    ("no-auth-pings", Flag),
    ("no-dynamic-ip-list", Flag),
    ("no-dynamic-realms", Flag),
    ("oauth", Flag),
    ("daemon", Flag),
    ("check-origin-consistency", Flag),
    ("no-udp", Flag),
    ("no-dtls", Flag),
    ("no-udp-relay", Flag),
    ("raw-public-keys", Flag),
    ("pkey-pwd", Value),
    ("no-stdout-log", Flag),
    ("aux-server", Value),
    ("udp-self-balance", Flag),
    ("max-allocate-timeout", Value),
    ("CA-file", Value),
    ("dh-file", Value),
    ("proc-user", Value),
    ("proc-group", Value),
    ("mobility", Flag),
    ("cli-ip", Value),
    ("cli-port", Value),
    ("cli-password", Value),
    ("cli-max-output-sessions", Value),
    ("web-admin", Flag),
    ("web-admin-ip", Value),
    ("web-admin-port", Value),
    ("web-admin-listen-on-workers", Flag),
    ("server-relay", Flag),
    ("ec-curve-name", Value),
    ("dh566", Flag),
    ("dh1066", Flag),
    ("dh2066", Flag),
    ("ne", Value),
    ("no-sslv2", Flag),
    ("no-sslv3", Flag),
    ("no-tlsv1", Flag),
    ("no-tlsv1_1", Flag),
    ("secret-key-file", Value),
    ("acme-redirect", Value),
    ("log-binding", Flag),
    ("no-rfc5780", Flag),
    ("no-stun-backward-compatibility", Flag),
    ("response-origin-only-with-rfc5780", Flag),
    ("respond-http-unsupported", Flag),
    ("version", Flag),
    ("sha256", Flag),
    ("sha384", Flag),
    ("sha512", Flag),
    ("prod", Flag),
];

pub(crate) enum Lookup {
    Supported(&'static Spec),
    CoturnOnly(Arg),
    Unknown,
}

/// Names are case-sensitive, as in coturn (`verbose` and `Verbose` differ).
pub(crate) fn lookup(name: &str) -> Lookup {
    if let Some(s) = SUPPORTED.iter().find(|s| s.name == name) {
        return Lookup::Supported(s);
    }
    match COTURN_ONLY.iter().find(|(n, _)| *n == name) {
        Some((_, arg)) => Lookup::CoturnOnly(*arg),
        None => Lookup::Unknown,
    }
}

pub(crate) fn arg_of(name: &str) -> Option<Arg> {
    match lookup(name) {
        Lookup::Supported(s) => Some(s.arg),
        Lookup::CoturnOnly(a) => Some(a),
        Lookup::Unknown => None,
    }
}

pub(crate) fn is_repeatable(name: &str) -> bool {
    matches!(lookup(name), Lookup::Supported(s) if s.repeatable)
}

/// The closest known name, for "did you mean".
pub(crate) fn suggest(name: &str) -> Option<&'static str> {
    SUPPORTED
        .iter()
        .map(|s| s.name)
        .chain(COTURN_ONLY.iter().map(|(n, _)| *n))
        .map(|n| {
            (
                edit_distance(&name.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                n,
            )
        })
        .filter(|(d, n)| *d <= 2.max(n.len() / 4) && *d < n.len() / 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The key list for `--help`.
pub(crate) fn help_text() -> String {
    let mut out = String::from(
        "OPTIONS (in the config file as `key=value` or a bare `key`; on the command line \
         as `--key=value`, `--key value` or `--key`; command-line values override the \
         file's):\n",
    );
    let width = SUPPORTED.iter().map(|s| s.name.len()).max().unwrap_or(0) + 2;
    for (title, own) in [("coturn options", false), ("ringturn options", true)] {
        out.push_str(&format!("\n  {title}:\n"));
        for s in SUPPORTED.iter().filter(|s| s.own == own) {
            let takes_number = matches!(
                s.key,
                Key::StaleNonce
                    | Key::MaxAllocateLifetime
                    | Key::ChannelLifetime
                    | Key::PermissionLifetime
            );
            let name = match s.arg {
                Arg::Flag if takes_number => format!("{}[=..]", s.name),
                Arg::Flag => s.name.to_owned(),
                Arg::Value => format!("{}=..", s.name),
            };
            out.push_str(&format!("    {name:<w$} {}\n", s.help, w = width + 3));
        }
    }
    out.push_str(
        "\nOther coturn options (alt-listening-port, web-admin, ...) are accepted \
         with a warning and ignored; an unknown option is an error.\n\
         With neither -c nor options, ringturn runs a demo setup on 127.0.0.1:3478 \
         (realm ringturn.local, user `demo` with a password printed at start) and serves \
         the 1-to-1 call page on http://127.0.0.1:8080/.\n",
    );
    out
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_across_tables() {
        let mut all: Vec<&str> = SUPPORTED.iter().map(|s| s.name).collect();
        all.extend(COTURN_ONLY.iter().map(|(n, _)| *n));
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name appears twice");
    }

    #[test]
    fn help_lists_every_supported_key() {
        let help = help_text();
        for s in SUPPORTED {
            assert!(help.contains(s.name), "{} missing from --help", s.name);
        }
    }

    #[test]
    fn suggests_near_names() {
        assert_eq!(suggest("listen-port"), Some("listening-port"));
        assert_eq!(suggest("relay-ips"), Some("relay-ip"));
        assert_eq!(suggest("completely-different"), None);
    }
}
