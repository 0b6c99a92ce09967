//! Checking the whole once every entry is applied: defaults, cross-key
//! rules, relay and listening addresses, credentials, and the final
//! [`Config`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::auth::parse_user;
use crate::io::interfaces::InterfaceAddress;

use crate::config::source::Origin;
use crate::config::{Config, ConfigError, ExternalIp, LogSettings, Redacted};

use super::{
    At, Builder, DEFAULT_CHANNEL_LIFETIME, DEFAULT_LISTENING_PORT, DEFAULT_MAX_ALLOCATE_LIFETIME,
    DEFAULT_MAX_PORT, DEFAULT_MAX_SHARED_PEERS, DEFAULT_MIN_PORT, DEFAULT_PERMISSION_LIFETIME,
    DEFAULT_PROMETHEUS_PORT, DEFAULT_ROOM_SIZE, DEFAULT_SIGNALING_CREDENTIAL_TTL,
    DEFAULT_SIGNALING_MAX_CONNECTIONS, DEFAULT_SIGNALING_MAX_MESSAGE_BYTES,
    DEFAULT_SIGNALING_MAX_ROOMS, DEFAULT_SIGNALING_MAX_ROOMS_PER_CONNECTION, DEFAULT_SOCKET_BUFFER,
    DEFAULT_STALE_NONCE, DEFAULT_TLS_LISTENING_PORT,
};

impl Builder {
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
            signaling_redis: self.signaling_redis,
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
            users: Redacted(users),
            static_auth_secrets: Redacted(static_auth_secrets),
        })
    }
}
