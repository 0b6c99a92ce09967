//! What the rest of the server takes from a [`Config`]: the credentials,
//! the external-address map and the peer policy, each worker's
//! [`ServerConfig`], the keys a reload cannot change, and the summary
//! `--check-config` prints.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{mix, summary, Config, LogSettings, Verbosity};
use crate::auth::{Credentials, RestApi};
use crate::turn::{PeerPolicy, ServerConfig};

impl Config {
    /// Names of the static users (`user=`).
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.0.iter().map(|(n, _)| n.as_str())
    }

    /// The `static-auth-secret`s, first one first (it mints new credentials).
    pub fn static_auth_secrets(&self) -> &[String] {
        &self.static_auth_secrets.0
    }

    /// The static users and, with `use-auth-secret`, the REST API.
    pub fn credentials(&self) -> Credentials {
        let mut c = Credentials::new(self.realm.clone());
        for (name, keys) in &self.users.0 {
            c.users.insert(name.clone(), keys.clone(), &self.realm);
        }
        if self.use_auth_secret && !self.static_auth_secrets.0.is_empty() {
            c.rest_api = Some(RestApi::new(
                self.static_auth_secrets
                    .0
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect(),
                self.rest_api_separator,
            ));
        }
        c
    }

    /// What the advertised (XOR-RELAYED) address of each relay address is:
    /// an explicit `public/private` mapping, else a bare `external-ip` of the
    /// same family.
    pub fn external_ip_map(&self) -> HashMap<IpAddr, IpAddr> {
        let mut map = HashMap::new();
        for relay in &self.relay_ips {
            let explicit = self
                .external_ips
                .iter()
                .find(|x| x.private == Some(*relay))
                .or_else(|| {
                    self.external_ips
                        .iter()
                        .find(|x| x.private.is_none() && x.public.is_ipv4() == relay.is_ipv4())
                });
            if let Some(x) = explicit {
                map.insert(*relay, x.public);
            }
        }
        map
    }

    /// `allow-loopback-peers`, `allowed-peer-ip`, `denied-peer-ip`, and the
    /// listening sockets (refused as peers; relay addresses on the same IPs
    /// stay allowed, for relay to relay).
    pub fn peer_policy(&self) -> PeerPolicy {
        PeerPolicy {
            allow_loopback: self.allow_loopback_peers,
            allowed: self.allowed_peer_ips.iter().map(|r| r.range).collect(),
            denied: self.denied_peer_ips.iter().map(|r| r.range).collect(),
            own_listeners: self.listening.clone(),
        }
    }

    /// A shard's part of `alternate-server`, `tls-alternate-server` and
    /// `max-allocations-before-redirect`: the threshold is for the node, so
    /// each of `workers` shards redirects from its share on (rounded up),
    /// as with `total-quota`.
    fn redirect(&self, workers: usize) -> crate::turn::Redirect {
        crate::turn::Redirect {
            alternates: self.alternate_servers.clone(),
            tls_alternates: self.tls_alternate_servers.clone(),
            tls_port: self.tls.then_some(self.tls_listening_port),
            from_allocations: (self.max_allocations_before_redirect as usize)
                .div_ceil(workers.max(1)),
        }
    }

    /// Worker `worker` of `workers`' share: every `workers`-th relay port from
    /// `min_port + worker`, so the shards' ports are disjoint.
    pub fn server_config(&self, worker: usize, workers: usize) -> ServerConfig {
        let workers = workers.max(1);
        let worker = worker % workers;
        let defaults = ServerConfig::default();
        // `total-quota` is for the whole server; every shard enforces its own
        // count, so each gets total/workers, rounded up (the server as a whole
        // may then hold up to workers-1 more than the quota). `user-quota` is
        // per shard as it is: a user's allocations usually land on several
        // workers, and a share would refuse too early when they are uneven.
        let total_quota = self
            .total_quota
            .div_ceil(u32::try_from(workers).unwrap_or(u32::MAX));
        ServerConfig {
            no_auth: self.no_auth,
            software: if self.software_attribute {
                defaults.software.clone()
            } else {
                None
            },
            fingerprint: self.fingerprint,
            relay_shortcut: !self.no_relay_shortcut,
            tcp_relay: self.tcp_relay,
            relay_socket_mode: self.relay_socket_mode,
            max_claimed_peers: self.max_shared_peers,
            default_lifetime: defaults.default_lifetime.min(self.max_allocate_lifetime),
            max_lifetime: self.max_allocate_lifetime,
            permission_lifetime: self.permission_lifetime,
            channel_lifetime: self.channel_lifetime,
            nonce_lifetime: self.nonce_lifetime,
            user_quota: self.user_quota,
            total_quota,
            peer_policy: self.peer_policy(),
            channel_range: self.channel_range,
            relay_ips: self.relay_ips.clone(),
            external_ips: self.external_ip_map(),
            min_port: self.min_port,
            max_port: self.max_port,
            port_offset: u16::try_from(worker).unwrap_or(u16::MAX),
            port_stride: u16::try_from(workers).unwrap_or(u16::MAX),
            no_stun: self.no_stun,
            max_bps: self.max_bps,
            bps_capacity: self.bps_capacity.div_ceil(workers as u64),
            secure_stun: self.secure_stun,
            default_family: self.default_family,
            stun_only: self.stun_only,
            rng_seed: mix(self.rng_seed ^ mix(worker as u64)),
            redirect: self.redirect(workers),
            ..defaults
        }
    }

    /// The keys whose values differ in `new` but cannot change while the
    /// server runs (sockets, threads, listeners): a reload names them and
    /// leaves them as they are.
    pub fn fixed_differences(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |key: &'static str, differs: bool| {
            if differs {
                keys.push(key);
            }
        };
        check(
            "listening-ip / listening-port",
            self.listening != new.listening,
        );
        check("relay-ip", self.relay_ips != new.relay_ips);
        check("userdb", self.userdb != new.userdb);
        check("external-ip", self.external_ips != new.external_ips);
        check(
            "min-port / max-port",
            (self.min_port, self.max_port) != (new.min_port, new.max_port),
        );
        check("workers", self.workers != new.workers);
        check("cpu-affinity", self.cpu_affinity != new.cpu_affinity);
        check("io-backend", self.io_backend != new.io_backend);
        check("udp-gro", self.udp_gro != new.udp_gro);
        check(
            "socket-rcvbuf / socket-sndbuf",
            (self.socket_rcvbuf, self.socket_sndbuf) != (new.socket_rcvbuf, new.socket_sndbuf),
        );
        check(
            "relay-socket-mode",
            self.relay_socket_mode != new.relay_socket_mode,
        );
        check(
            "xdp-interface / xdp-mode",
            self.xdp_interfaces != new.xdp_interfaces || self.xdp_mode != new.xdp_mode,
        );
        check(
            "no-tcp / no-tls / tls-listening-port",
            (self.tcp, self.tls, self.tls_listening_port)
                != (new.tcp, new.tls, new.tls_listening_port),
        );
        check(
            "cipher-list / no-tlsv1_2",
            (&self.tls12_ciphers, self.tls12) != (&new.tls12_ciphers, new.tls12),
        );
        check(
            "signaling-*",
            (
                self.signaling_listening_port,
                self.signaling_listening_ip,
                &self.signaling_turn_urls,
                &self.signaling_redis,
            ) != (
                new.signaling_listening_port,
                new.signaling_listening_ip,
                &new.signaling_turn_urls,
                &new.signaling_redis,
            ),
        );
        check(
            "prometheus*",
            (
                self.prometheus,
                self.prometheus_port,
                self.prometheus_address,
            ) != (new.prometheus, new.prometheus_port, new.prometheus_address),
        );
        check(
            "log-file / syslog / log-format / new-log-timestamp",
            LogSettings {
                verbosity: Verbosity::Normal,
                ..self.log.clone()
            } != LogSettings {
                verbosity: Verbosity::Normal,
                ..new.log.clone()
            },
        );
        keys
    }

    /// A human-readable description of what ringturn would run with (for
    /// `--check-config`); secrets and passwords are not shown.
    pub fn summary(&self) -> String {
        summary::render(self)
    }
}
