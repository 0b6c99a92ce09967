//! What one `turn::Server` needs to know. The `config` module turns a
//! turnserver.conf into this.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::policy::PeerPolicy;
use crate::stun::ChannelRange;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accept TURN requests without credentials (`no-auth`).
    pub no_auth: bool,
    /// SOFTWARE on responses (`None` with `no-software-attribute`).
    pub software: Option<String>,
    /// FINGERPRINT on every response (`fingerprint`); it is also added whenever the request had one.
    pub fingerprint: bool,
    /// RFC 8656 §7.2: 600 s when the client asks for nothing (or for less).
    pub default_lifetime: Duration,
    /// `max-allocate-lifetime` (default 3600 s).
    pub max_lifetime: Duration,
    /// `permission-lifetime` (RFC 8656 §9: 300 s).
    pub permission_lifetime: Duration,
    /// `channel-lifetime` (RFC 8656 §11: 600 s).
    pub channel_lifetime: Duration,
    /// `stale-nonce` (default 600 s).
    pub nonce_lifetime: Duration,
    /// `user-quota`: live allocations per user (0 = unlimited).
    pub user_quota: u32,
    /// `total-quota`: live allocations on this shard (0 = unlimited).
    pub total_quota: u32,
    pub peer_policy: PeerPolicy,
    pub channel_range: ChannelRange,
    /// Relay addresses this shard allocates on (`relay-ip`); of several in one
    /// family, the first with a free port is used.
    pub relay_ips: Vec<IpAddr>,
    /// `external-ip=public/private`: what XOR-RELAYED-ADDRESS reports for a relay IP.
    pub external_ips: HashMap<IpAddr, IpAddr>,
    pub min_port: u16,
    pub max_port: u16,
    /// This shard's share of the port range: every `port_stride`-th port from `min_port + port_offset`.
    pub port_offset: u16,
    pub port_stride: u16,
    /// `no-stun`: ignore Binding requests.
    pub no_stun: bool,
    /// `stun-only`: answer Binding, refuse TURN.
    pub stun_only: bool,
    /// `max-bps`: bytes per second each way per allocation (0: no limit).
    pub max_bps: u64,
    /// This shard's share of `bps-capacity`: bytes per second each way for
    /// all its allocations together (0: no limit).
    pub bps_capacity: u64,
    /// `secure-stun`: Binding requests need long-term credentials too
    /// (answered 401 with a nonce without them), as coturn does.
    pub secure_stun: bool,
    /// The relayed address family of an Allocate without
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §7.2: IPv4; coturn's
    /// `keep-address-family` / `allocation-default-address-family=keep`: the
    /// family the client reached the server with).
    pub default_family: DefaultFamily,
    /// Caps that keep one client from exhausting memory.
    pub max_permissions_per_allocation: usize,
    pub max_channels_per_allocation: usize,
    /// How long a success response is kept for retransmissions (RFC 8489 §6.3.4: 40 s).
    pub transaction_cache_lifetime: Duration,
    pub max_cached_transactions: usize,
    /// Tries at other ports when the I/O layer cannot open a relay socket.
    pub relay_open_attempts: u8,
    /// RFC 6062 TCP relaying (coturn's `no-tcp-relay` turns it off).
    pub tcp_relay: bool,
    /// Seed for port choice and indication transaction ids.
    pub rng_seed: u64,
    /// Relay to relay on this server skips the kernel (the worker hands the
    /// datagram to the owning shard directly). Off: it goes out and back in
    /// through the kernel like any peer's — for measuring the difference.
    pub relay_shortcut: bool,
    /// `relay-socket-mode`: a socket per allocation, or one per shard and relay IP.
    pub relay_socket_mode: super::shared::RelaySocketMode,
    /// `max-shared-peers`: peer endpoints (IP and port) one allocation may
    /// claim on a shared relay socket (shared mode only).
    pub max_claimed_peers: usize,
    /// Issue 11: an XDP fast path is attached (`xdp-interface`), so say which
    /// channels it may relay (`Command::OffloadChannel`). Off: no such commands.
    pub fast_path: bool,
    /// `alternate-server`, `tls-alternate-server`, `max-allocations-before-redirect`.
    pub redirect: super::redirect::Redirect,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            no_auth: false,
            software: Some(concat!("ringturn ", env!("CARGO_PKG_VERSION")).to_owned()),
            fingerprint: false,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            permission_lifetime: Duration::from_secs(300),
            channel_lifetime: Duration::from_secs(600),
            nonce_lifetime: Duration::from_secs(600),
            user_quota: 0,
            total_quota: 0,
            peer_policy: PeerPolicy::default(),
            channel_range: ChannelRange::Rfc5766,
            relay_ips: vec![IpAddr::from([127, 0, 0, 1])],
            external_ips: HashMap::new(),
            min_port: 49152,
            max_port: 65535,
            port_offset: 0,
            port_stride: 1,
            no_stun: false,
            stun_only: false,
            secure_stun: false,
            max_bps: 0,
            bps_capacity: 0,
            default_family: DefaultFamily::Ipv4,
            max_permissions_per_allocation: 64,
            max_channels_per_allocation: 64,
            transaction_cache_lifetime: Duration::from_secs(40),
            max_cached_transactions: 100_000,
            relay_open_attempts: 8,
            tcp_relay: true,
            redirect: super::redirect::Redirect::default(),
            rng_seed: 0x5eed,
            relay_shortcut: true,
            relay_socket_mode: super::shared::RelaySocketMode::PerAllocation,
            max_claimed_peers: 64,
            fast_path: false,
        }
    }
}

/// What family an Allocate without REQUESTED-ADDRESS-FAMILY gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultFamily {
    /// RFC 8656 §7.2.
    #[default]
    Ipv4,
    Ipv6,
    /// The family of the client's own address (coturn's `keep-address-family`).
    Keep,
}
