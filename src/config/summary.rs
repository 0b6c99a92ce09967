//! `ringturn --check-config`: what it would run with, in words.

use std::fmt::Write as _;

use crate::stun::ChannelRange;

use super::{Config, Verbosity};

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

fn limit(n: u64) -> String {
    if n == 0 {
        "unlimited".to_owned()
    } else {
        n.to_string()
    }
}

pub(crate) fn render(c: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ringturn configuration from {}", c.source_name);
    let transports = if c.tcp { "UDP, TCP" } else { "UDP" };
    let _ = writeln!(
        s,
        "  listening:        {} ({transports})",
        list(&c.listening)
    );
    if !c.interfaces.is_empty() {
        // No listening-ip: say where the addresses came from (issue 12).
        let found: Vec<String> = c
            .interfaces
            .iter()
            .map(|a| format!("{} {}", a.interface, a.ip))
            .collect();
        let _ = writeln!(
            s,
            "  interfaces:       {} (no listening-ip: every address of every interface that is up)",
            found.join(", ")
        );
    } else if c.listening.iter().any(|a| a.ip().is_unspecified()) {
        let _ = writeln!(
            s,
            "  note:             a wildcard listening-ip answers from the kernel's choice of source \
             address; on a host with several addresses list them (or leave listening-ip out)"
        );
    }
    if c.tls {
        let _ = writeln!(
            s,
            "  TLS:              port {}, certificate {}",
            c.tls_listening_port,
            c.cert
                .as_ref()
                .map_or("?".into(), |p| p.display().to_string())
        );
    } else if c.cert.is_some() {
        let _ = writeln!(s, "  TLS:              off (no-tls)");
    } else {
        let _ = writeln!(s, "  TLS:              off (needs cert= and pkey=)");
    }
    let map = c.external_ip_map();
    let relays = c.relay_ips.iter().map(|ip| match map.get(ip) {
        Some(public) => format!("{ip} (advertised as {public})"),
        None => ip.to_string(),
    });
    let _ = writeln!(s, "  relay addresses:  {}", list(relays));
    let ports = usize::from(c.max_port - c.min_port) + 1;
    match c.relay_socket_mode {
        crate::turn::RelaySocketMode::PerAllocation => {
            let _ = writeln!(
                s,
                "  relay ports:      {}-{} ({ports} ports, about {} per worker; one per allocation)",
                c.min_port,
                c.max_port,
                ports / c.workers.max(1)
            );
        }
        crate::turn::RelaySocketMode::Shared => {
            let _ = writeln!(
                s,
                "  relay ports:      {}-{} (relay-socket-mode=shared: one port per worker and relay IP, \
                 {} peer endpoints per allocation)",
                c.min_port, c.max_port, c.max_shared_peers
            );
        }
    }
    let pinning = if c.cpu_affinity.is_empty() {
        "not pinned".to_owned()
    } else if c.reuseport_cpu_steering {
        format!(
            "pinned to cores {}, datagrams steered to the receiving core's worker",
            list(&c.cpu_affinity)
        )
    } else {
        format!("pinned to cores {}", list(&c.cpu_affinity))
    };
    let _ = writeln!(
        s,
        "  workers:          {} ({pinning}), io backend {}, udp-gro {}",
        c.workers, c.io_backend, c.udp_gro
    );
    let buf = |b: Option<usize>| b.map_or("system default".to_owned(), |n| format!("{n} bytes"));
    let _ = writeln!(
        s,
        "  socket buffers:   receive {}, send {}",
        buf(c.socket_rcvbuf),
        buf(c.socket_sndbuf)
    );

    let auth = if c.no_auth {
        "none (no-auth: anyone may relay)".to_owned()
    } else {
        let users = c.users.0.len();
        let mut a = format!(
            "long-term credentials, realm {:?}, {users} static user{}",
            c.realm,
            if users == 1 { "" } else { "s" }
        );
        if c.use_auth_secret {
            let n = c.static_auth_secrets.0.len();
            let _ = write!(
                a,
                "; REST API with {n} secret{} (separator {:?})",
                if n == 1 { "" } else { "s" },
                c.rest_api_separator
            );
        }
        if let Some(d) = &c.demo_user {
            let _ = write!(
                a,
                "; demo user {:?} with a password generated at start",
                d.name
            );
        }
        a
    };
    let _ = writeln!(s, "  authentication:   {auth}");
    let _ = writeln!(
        s,
        "  lifetimes:        allocation up to {} s, permission {} s, channel {} s, nonce {} s",
        c.max_allocate_lifetime.as_secs(),
        c.permission_lifetime.as_secs(),
        c.channel_lifetime.as_secs(),
        c.nonce_lifetime.as_secs()
    );
    let _ = writeln!(
        s,
        "  quotas:           per user {}, total {} (split among workers); bytes/s each way: max-bps {}, bps-capacity {}{}",
        limit(u64::from(c.user_quota)),
        limit(u64::from(c.total_quota)),
        limit(c.max_bps),
        limit(c.bps_capacity),
        if c.max_bps > 0 || c.bps_capacity > 0 {
            " (kernel-relayed channels are read once a second and withdrawn when over)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "  peers:            loopback {}; multicast, link-local, 0.0.0.0/8 and the listening sockets refused",
        if c.allow_loopback_peers {
            "allowed"
        } else {
            "refused"
        }
    );
    if !c.allowed_peer_ips.is_empty() {
        let _ = writeln!(
            s,
            "  allowed peers:    {}",
            list(c.allowed_peer_ips.iter().map(|r| &r.text))
        );
    }
    if !c.denied_peer_ips.is_empty() {
        let _ = writeln!(
            s,
            "  denied peers:     {}",
            list(c.denied_peer_ips.iter().map(|r| &r.text))
        );
    }
    if !c.alternate_servers.is_empty() || !c.tls_alternate_servers.is_empty() {
        let _ = writeln!(
            s,
            "  redirect:         Allocate answered 300 Try Alternate, round robin, {}; UDP/TCP to {}; TLS to {}",
            if c.max_allocations_before_redirect == 0 {
                "always".to_owned()
            } else {
                format!(
                    "from {} allocations on (split among workers)",
                    c.max_allocations_before_redirect
                )
            },
            list(c.alternate_servers.iter()),
            list(c.tls_alternate_servers.iter())
        );
    }
    if let Some(url) = &c.signaling_redis {
        // The URL may carry a password: only its host part is shown.
        let host = url.rsplit('@').next().unwrap_or(url);
        let _ = writeln!(
            s,
            "  signaling rooms:  shared with the other nodes on Redis {host}"
        );
    }
    if !c.signaling_turn_urls.is_empty() {
        let _ = writeln!(
            s,
            "  page TURN URLs:   {}",
            list(c.signaling_turn_urls.iter())
        );
    }
    let service = match (c.stun_only, c.no_stun) {
        (true, _) => "STUN only",
        (_, true) => "TURN only (no STUN Binding)",
        _ => "STUN and TURN",
    };
    let channels = match c.channel_range {
        ChannelRange::Rfc5766 => "RFC 5766 (0x4000-0x7FFF)",
        ChannelRange::Rfc8656 => "RFC 8656 (0x4000-0x4FFF)",
    };
    let _ = writeln!(
        s,
        "  service:          {service}; channels {channels}; FINGERPRINT {}; SOFTWARE {}",
        if c.fingerprint {
            "always"
        } else {
            "when asked"
        },
        if c.software_attribute { "on" } else { "off" }
    );
    let verbosity = match c.log.verbosity {
        Verbosity::Normal => "normal",
        Verbosity::Verbose => "verbose",
        Verbosity::Extra => "extra verbose",
    };
    let to = if c.log.to_syslog() {
        format!("syslog ({})", c.log.syslog_facility)
    } else {
        match &c.log.file {
            Some(p) if p.as_os_str() != "stdout" && p.as_os_str() != "-" && c.log.simple => {
                p.display().to_string()
            }
            Some(p) if p.as_os_str() != "stdout" && p.as_os_str() != "-" => format!(
                "{} (dated, a new file each day; simple-log: as named)",
                super::dated_log_file_name(&p.to_string_lossy(), "YYYY-MM-DD")
            ),
            _ => "stdout".to_owned(),
        }
    };
    let stamp = match (&c.log.format, &c.log.timestamp_format) {
        (crate::config::LogFormat::Json, _) => "JSON lines".to_owned(),
        (_, Some(f)) => format!("lines stamped {f:?}"),
        (_, None) => "lines stamped with seconds since start".to_owned(),
    };
    let _ = writeln!(s, "  logging:          {verbosity}, to {to}, {stamp}");
    if c.server_name != c.realm {
        let _ = writeln!(
            s,
            "  server-name:      {} (coturn's OAuth name; ringturn has no OAuth)",
            c.server_name
        );
    }
    if c.secure_stun || c.default_family != crate::turn::DefaultFamily::Ipv4 {
        let _ =
            writeln!(
            s,
            "  STUN/family:      Binding {}; relayed family without REQUESTED-ADDRESS-FAMILY: {:?}",
            if c.secure_stun { "needs credentials (secure-stun)" } else { "open" },
            c.default_family
        );
    }
    if let Some(p) = &c.pidfile {
        let _ = writeln!(s, "  pidfile:          {}", p.display());
    }
    match c.signaling_listening_port {
        Some(port) => {
            let _ = writeln!(
                s,
                "  signaling:        http://{} (TCP), rooms of {}, messages up to {} bytes, \
                 TURN credentials valid {} s",
                std::net::SocketAddr::new(c.signaling_listening_ip, port),
                c.signaling_room_size,
                c.signaling_max_message_bytes,
                c.signaling_credential_ttl.as_secs()
            );
            let _ = writeln!(
                s,
                "  signaling limits: {} connections, {} rooms, {} rooms per connection",
                c.signaling_max_connections,
                c.signaling_max_rooms,
                c.signaling_max_rooms_per_connection
            );
        }
        None => {
            let _ = writeln!(s, "  signaling:        off");
        }
    }
    if c.prometheus {
        let _ = writeln!(
            s,
            "  metrics:          http://{}/metrics (Prometheus)",
            std::net::SocketAddr::new(c.prometheus_address, c.prometheus_port)
        );
    } else {
        let _ = writeln!(s, "  metrics:          off");
    }
    if !c.warnings.is_empty() {
        let _ = writeln!(s, "  warnings ({}):", c.warnings.len());
        for w in &c.warnings {
            let _ = writeln!(s, "    {w}");
        }
    }
    s
}
