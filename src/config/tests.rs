use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn iface(interface: &str, addr: &str) -> InterfaceAddress {
    let ip = ip(addr);
    InterfaceAddress {
        interface: interface.to_owned(),
        ip,
        loopback: ip.is_loopback(),
    }
}

/// The host these tests run "on": loopback and one Ethernet interface with
/// an address of each family.
fn host() -> Vec<InterfaceAddress> {
    vec![
        iface("lo", "127.0.0.1"),
        iface("lo", "::1"),
        iface("eth0", "10.0.0.5"),
        iface("eth0", "2001:db8::5"),
    ]
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_on_host("t.conf", text, &[], &host())
}

fn ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn error_display_names_file_line_and_key() {
    let e = ConfigError::new(
        "turnserver.conf",
        12,
        "listening-port",
        "invalid port \"abc\"",
    );
    assert_eq!(
        e.to_string(),
        "turnserver.conf:12: listening-port: invalid port \"abc\""
    );
    let e = ConfigError::new("t.conf", 0, "relay-ip", "no relay address");
    assert_eq!(e.to_string(), "t.conf: relay-ip: no relay address");
}

#[test]
fn relay_addresses_follow_coturn_fallbacks() {
    // listening-ip stands in for relay-ip.
    let c = ok("no-auth\nlistening-ip=192.0.2.10\n");
    assert_eq!(c.relay_ips, vec![ip("192.0.2.10")]);
    // external-ip's private half, when listening on the wildcard.
    let c = ok("no-auth\nlistening-ip=0.0.0.0\nexternal-ip=203.0.113.5/10.0.0.5\n");
    assert_eq!(c.relay_ips, vec![ip("10.0.0.5")]);
    assert_eq!(c.listening[0].ip(), ip("0.0.0.0"));
    assert!(
        c.interfaces.is_empty(),
        "listening-ip given: nothing scanned"
    );
    // A bare external-ip: relay on the wildcard, advertise the public address.
    let c = ok("no-auth\nlistening-ip=0.0.0.0\nexternal-ip=203.0.113.5\n");
    assert_eq!(c.relay_ips, vec![ip("0.0.0.0")]);
    assert_eq!(
        c.external_ip_map().get(&ip("0.0.0.0")),
        Some(&ip("203.0.113.5"))
    );
    // Nothing to go on: an error naming relay-ip.
    let e = parse("no-auth\nlistening-ip=0.0.0.0\n").err().unwrap();
    assert_eq!((e.line, e.key.as_str()), (0, "relay-ip"));
}

/// Issue 12: no listening-ip listens on every address of every interface
/// that is up (loopback included) and, with no relay-ip, relays from the
/// non-loopback ones, as coturn does; external-ip maps them unchanged.
#[test]
fn no_listening_ip_uses_every_interface_address_like_coturn() {
    let c = ok("no-auth\nlistening-port=3479\n");
    let listening: Vec<String> = c.listening.iter().map(ToString::to_string).collect();
    assert_eq!(
        listening,
        [
            "127.0.0.1:3479",
            "[::1]:3479",
            "10.0.0.5:3479",
            "[2001:db8::5]:3479"
        ]
    );
    assert_eq!(c.relay_ips, vec![ip("10.0.0.5"), ip("2001:db8::5")]);
    assert_eq!(c.interfaces, host());
    let summary = c.summary();
    assert!(
        summary.contains("eth0 10.0.0.5") && summary.contains("no listening-ip"),
        "{summary}"
    );
    // A bare external-ip maps the relay address of its family.
    let c = ok("no-auth\nexternal-ip=203.0.113.5\n");
    assert_eq!(
        c.external_ip_map().get(&ip("10.0.0.5")),
        Some(&ip("203.0.113.5"))
    );
    assert_eq!(c.external_ip_map().get(&ip("2001:db8::5")), None);
    // relay-ip still wins.
    let c = ok("no-auth\nrelay-ip=10.0.0.5\n");
    assert_eq!(c.relay_ips, vec![ip("10.0.0.5")]);
    // A host with loopback only relays from loopback.
    let c = Config::parse_on_host("t.conf", "no-auth\n", &[], &[iface("lo", "127.0.0.1")]).unwrap();
    assert_eq!(c.relay_ips, vec![ip("127.0.0.1")]);
    // No address at all: an error naming listening-ip.
    let e = Config::parse_on_host("t.conf", "no-auth\n", &[], &[])
        .err()
        .unwrap();
    assert_eq!(e.key, "listening-ip");
}

#[test]
fn external_ip_maps_each_relay_address() {
    let c = ok("no-auth\n\
                relay-ip=10.0.0.5\n\
                relay-ip=10.0.0.6\n\
                relay-ip=fd00::5\n\
                external-ip=203.0.113.6/10.0.0.6\n\
                external-ip=203.0.113.9\n\
                external-ip=2001:db8::5/fd00::5\n\
                external-ip=198.51.100.1/10.9.9.9\n");
    let map = c.external_ip_map();
    assert_eq!(
        map.get(&ip("10.0.0.5")),
        Some(&ip("203.0.113.9")),
        "bare one, same family"
    );
    assert_eq!(
        map.get(&ip("10.0.0.6")),
        Some(&ip("203.0.113.6")),
        "explicit wins"
    );
    assert_eq!(map.get(&ip("fd00::5")), Some(&ip("2001:db8::5")));
    let unused: Vec<usize> = c
        .warnings
        .iter()
        .filter(|w| w.key == "external-ip")
        .map(|w| w.line)
        .collect();
    assert_eq!(
        unused,
        vec![8],
        "a mapping for a non-relay address is reported"
    );

    let e = parse("no-auth\nrelay-ip=10.0.0.5\nexternal-ip=1.1.1.1\nexternal-ip=2.2.2.2\n")
        .err()
        .unwrap();
    assert_eq!((e.line, e.key.as_str()), (4, "external-ip"));
    ok("no-auth\nrelay-ip=10.0.0.5\nexternal-ip=1.1.1.1\nexternal-ip=2001:db8::1\n");
}

#[test]
fn static_auth_secret_turns_on_the_rest_api() {
    let c = ok("relay-ip=10.0.0.1\nrealm=r\nstatic-auth-secret=north\nstatic-auth-secret=south\nrest-api-separator=-\n");
    assert!(c.use_auth_secret);
    let creds = c.credentials();
    let api = creds.rest_api.unwrap();
    assert_eq!(api.secrets(), &[b"north".to_vec(), b"south".to_vec()]);
    assert_eq!(api.separator(), '-');
    // Without a realm it is an error naming realm at the secret's line.
    let e = parse("relay-ip=10.0.0.1\nstatic-auth-secret=x\n")
        .err()
        .unwrap();
    assert_eq!((e.line, e.key.as_str()), (2, "realm"));
}

#[test]
fn warns_when_no_one_could_authenticate() {
    let c = ok("relay-ip=10.0.0.1\nrealm=r\n");
    assert!(c
        .warnings
        .iter()
        .any(|w| w.key == "lt-cred-mech" && w.line == 0));
    let c = ok("relay-ip=10.0.0.1\nstun-only\n");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = ok("relay-ip=10.0.0.1\nno-auth\nuser=a:b\n");
    assert!(c.warnings.iter().any(|w| w.key == "user" && w.line == 3));
}

#[test]
fn later_lines_win_and_flags_take_values() {
    let c = ok("no-auth\nrelay-ip=10.0.0.1\nlistening-port=1000\nlistening-port=2000\nfingerprint\nfingerprint=0\nrfc8656-channel-numbers\nrfc5766-channel-numbers\n");
    assert_eq!(c.listening[0].port(), 2000);
    assert!(!c.fingerprint);
    assert_eq!(c.channel_range, ChannelRange::Rfc5766);
}

#[test]
fn io_backend_names() {
    assert_eq!("auto".parse(), Ok(IoBackend::Auto));
    assert_eq!("uring".parse(), Ok(IoBackend::Uring));
    assert_eq!("batch".parse(), Ok(IoBackend::Batch));
    assert!("epoll".parse::<IoBackend>().is_err());
    assert_eq!(IoBackend::Uring.to_string(), "uring");
}

#[test]
fn udp_gro_values() {
    assert_eq!(
        ok("listening-ip=127.0.0.1").udp_gro,
        UdpGro::All,
        "on by default, listening sockets too"
    );
    assert_eq!(
        ok("listening-ip=127.0.0.1\nudp-gro=off").udp_gro,
        UdpGro::Off
    );
    assert_eq!(
        ok("listening-ip=127.0.0.1\nudp-gro=on").udp_gro,
        UdpGro::All
    );
    assert_eq!(
        ok("listening-ip=127.0.0.1\nudp-gro=relays").udp_gro,
        UdpGro::Relays
    );
    assert!(parse("listening-ip=127.0.0.1\nudp-gro=maybe").is_err());
    let p = UdpGro::Relays.policy();
    assert!(p.relays && !p.listeners);
    let p = UdpGro::Off.policy();
    assert!(!p.relays && !p.listeners);
    assert_eq!(UdpGro::All.to_string(), "all");
}

#[test]
fn server_config_carries_every_setting() {
    let c = ok(
        "relay-ip=10.0.0.1\nlistening-ip=10.0.0.1\nrealm=r\nuser=a:b\n\
                max-allocate-lifetime=300\nstale-nonce=120\nuser-quota=2\ntotal-quota=7\n\
                no-stun\nallowed-peer-ip=10.0.0.0/8\n",
    );
    let sc = c.server_config(2, 3);
    assert!(!sc.no_auth);
    assert!(sc.no_stun);
    assert!(!sc.stun_only);
    assert!(sc.software.is_some());
    assert_eq!(sc.max_lifetime, Duration::from_secs(300));
    assert_eq!(
        sc.default_lifetime,
        Duration::from_secs(300),
        "capped by the maximum"
    );
    assert_eq!(sc.nonce_lifetime, Duration::from_secs(120));
    assert_eq!((sc.user_quota, sc.total_quota), (2, 3));
    assert_eq!((sc.port_offset, sc.port_stride), (2, 3));
    assert_eq!(sc.relay_ips, vec![ip("10.0.0.1")]);
    assert_eq!(sc.peer_policy.own_listeners, c.listening);
    assert_eq!(sc.peer_policy.allowed.len(), 1);
    assert_ne!(sc.rng_seed, c.server_config(1, 3).rng_seed);
    // Out-of-range worker indices wrap rather than overlap.
    assert_eq!(c.server_config(5, 3).port_offset, 2);
    assert_eq!(c.server_config(0, 0).port_stride, 1);
}

#[test]
fn random_strings_are_alphanumeric() {
    let a = random_alphanumeric(16).unwrap();
    let b = random_alphanumeric(16).unwrap();
    assert_eq!(a.len(), 16);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn summary_describes_the_setup() {
    let c =
        ok("relay-ip=10.0.0.1\nrealm=r\nuser=a:secretpw\nworkers=2\ncpu-affinity=0,1\nno-dtls\n");
    let s = c.summary();
    for needle in [
        "ringturn configuration from t.conf",
        "127.0.0.1:3478",
        "10.0.0.1",
        "49152-65535",
        "2 (pinned to cores 0, 1)",
        "realm \"r\", 1 static user",
        "signaling:        off",
        "t.conf:6: no-dtls",
        "[2001:db8::5]:3478 (UDP, TCP)",
        "TLS:              off",
    ] {
        assert!(s.contains(needle), "summary lacks {needle:?}:\n{s}");
    }
    assert!(!s.contains("secretpw"));
}

#[test]
fn debug_output_hides_secrets() {
    let c = Config::embedded().unwrap();
    let password = c.demo_user.clone().unwrap().password;
    let secret = c.static_auth_secrets()[0].clone();
    let shown = format!("{c:?}");
    assert!(!shown.contains(&password));
    assert!(!shown.contains(&secret));
}

#[test]
fn signaling_keys_parse_with_defaults_and_ranges() {
    let c = ok("no-auth\nlistening-ip=127.0.0.1\n");
    assert_eq!(c.signaling_listening_port, None);
    assert_eq!(c.signaling_listening_ip, ip("0.0.0.0"));
    assert_eq!(c.signaling_max_message_bytes, 64 * 1024);
    assert_eq!(c.signaling_credential_ttl, Duration::from_secs(86_400));
    assert_eq!(c.signaling_max_connections, 10_000);
    assert_eq!(c.signaling_max_rooms, 10_000);
    assert_eq!(c.signaling_max_rooms_per_connection, 4);

    let c = ok(
        "no-auth\nlistening-ip=127.0.0.1\nsignaling-listening-port=8443\n\
                signaling-listening-ip=[::1]\nsignaling-max-message-bytes=16K\n\
                signaling-credential-ttl=600\nsignaling-max-connections=50\n\
                signaling-max-rooms=20\nsignaling-max-rooms-per-connection=1\n",
    );
    assert_eq!(c.signaling_listening_port, Some(8443));
    assert_eq!(c.signaling_listening_ip, ip("::1"));
    assert_eq!(c.signaling_max_message_bytes, 16 * 1024);
    assert_eq!(c.signaling_credential_ttl, Duration::from_secs(600));
    assert_eq!(
        (
            c.signaling_max_connections,
            c.signaling_max_rooms,
            c.signaling_max_rooms_per_connection
        ),
        (50, 20, 1)
    );
    let s = c.summary();
    assert!(s.contains("http://[::1]:8443"), "{s}");
    assert!(
        s.contains("50 connections, 20 rooms, 1 rooms per connection"),
        "{s}"
    );

    for (line, key) in [
        (
            "signaling-max-message-bytes=100",
            "signaling-max-message-bytes",
        ),
        (
            "signaling-max-message-bytes=1G",
            "signaling-max-message-bytes",
        ),
        ("signaling-credential-ttl=0", "signaling-credential-ttl"),
        ("signaling-max-connections=0", "signaling-max-connections"),
        ("signaling-max-rooms=x", "signaling-max-rooms"),
        ("signaling-listening-ip=nope", "signaling-listening-ip"),
    ] {
        let e = parse(&format!("no-auth\nlistening-ip=127.0.0.1\n{line}\n"))
            .err()
            .unwrap_or_else(|| panic!("{line} accepted"));
        assert_eq!((e.line, e.key.as_str()), (3, key), "{e}");
    }
}

#[test]
fn embedded_defaults_put_signaling_on_loopback() {
    let c = Config::embedded().unwrap();
    assert_eq!(c.signaling_listening_ip, ip("127.0.0.1"));
    assert_eq!(c.signaling_listening_port, Some(8080));
}

#[test]
fn stream_transports_follow_coturn_keys() {
    let c = ok("relay-ip=10.0.0.1\nuser=a:b\nrealm=r\n");
    assert!(c.tcp, "TCP on the listening port by default, as coturn");
    assert!(!c.tls, "no TLS without a certificate");
    assert_eq!(c.tls_listening_port, 5349);
    let c = ok(
        "relay-ip=10.0.0.1\nuser=a:b\nrealm=r\ncert=/etc/t.pem\ntls-listening-port=443\nno-tcp\n",
    );
    assert!(!c.tcp);
    assert!(c.tls);
    assert_eq!(c.tls_listening_port, 443);
    assert_eq!(
        c.pkey.as_deref(),
        Some(std::path::Path::new("/etc/t.pem")),
        "pkey defaults to the cert file (one PEM with both)"
    );
    let c = ok(
        "relay-ip=10.0.0.1\nuser=a:b\nrealm=r\ncert=/etc/t.pem\nno-tls\nno-tcp-relay\nno-tlsv1\n",
    );
    assert!(!c.tls);
    assert!(
        !c.server_config(0, 1).tcp_relay,
        "no-tcp-relay turns RFC 6062 off"
    );
    assert!(
        c.warnings.iter().all(|w| w.key != "no-tlsv1"),
        "ringturn never offers TLS 1.0: accepted without a warning"
    );
    let c = ok("relay-ip=10.0.0.1\nuser=a:b\nrealm=r\ntls-listening-port=5350\n");
    assert!(
        c.warnings.iter().any(|w| w.key == "tls-listening-port"),
        "a TLS port without a certificate is a warning: {:?}",
        c.warnings
    );
}

#[test]
fn stream_limits_are_read_and_checked() {
    let c = ok("relay-ip=10.0.0.1\nuser=a:b\nrealm=r\nmax-connections=10\nmax-connections-per-ip=2\ntls-handshake-timeout=3\nstream-first-message-timeout=4\nstream-idle-timeout=5\nstream-buffer-limit=64K\n");
    let l = c.stream_limits;
    assert_eq!((l.max_connections, l.max_per_ip), (10, 2));
    assert_eq!(l.handshake_timeout, std::time::Duration::from_secs(3));
    assert_eq!(l.first_message_timeout, std::time::Duration::from_secs(4));
    assert_eq!(l.idle_timeout, std::time::Duration::from_secs(5));
    assert_eq!(l.max_buffered, 64 * 1024);
    let e = parse("relay-ip=10.0.0.1\nuser=a:b\nstream-idle-timeout=0\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (3, "stream-idle-timeout"), "{e}");
    let e = parse("stream-buffer-limit=100\n").unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (1, "stream-buffer-limit"), "{e}");
}

#[test]
fn reuseport_cpu_steering_needs_a_core_per_worker() {
    let c = ok("relay-ip=10.0.0.1\nuser=a:b\nrealm=r\nworkers=2\ncpu-affinity=2,3\nreuseport-cpu-steering\n");
    assert!(c.reuseport_cpu_steering);
    assert!(c
        .summary()
        .contains("steered to the receiving core's worker"));
    let e = parse("relay-ip=10.0.0.1\nworkers=4\ncpu-affinity=2,3\nreuseport-cpu-steering\n")
        .unwrap_err();
    assert_eq!(e.key, "reuseport-cpu-steering", "{e}");
}

/// Issue 12: coturn's keys that the published configurations use do what
/// coturn does (behaviour is tested in tests/coturn_keys.rs and
/// tests/coturn_dropin.rs; here, what they set).
#[test]
fn coturn_keys_from_published_configs_set_what_they_say() {
    let c = ok("no-auth\n");
    assert_eq!(c.default_family, crate::turn::DefaultFamily::Ipv4);
    assert!(!c.secure_stun && c.log.timestamp_format.is_none());
    let c = ok(
        "realm=r\nuser=a:b\nkeep-address-family\nsecure-stun\nno-cli\nno-loopback-peers\n\
                server-name=turn.example.org\nsyslog\nsyslog-facility=LOG_LOCAL2\nsimple-log\n\
                new-log-timestamp\nmax-bps=64000\nbps-capacity=1000000\nworkers=4\n\
                dh-file=/etc/dh.pem\nno-tlsv1_1\n",
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.default_family, crate::turn::DefaultFamily::Keep);
    assert!(c.secure_stun && !c.allow_loopback_peers);
    assert_eq!(c.server_name, "turn.example.org");
    assert!(c.log.to_syslog() && c.log.simple);
    assert_eq!(c.log.syslog_facility.0, 18);
    assert_eq!(c.log.timestamp_format.as_deref(), Some("%FT%T%z"));
    let sc = c.server_config(0, 4);
    assert_eq!(
        (sc.max_bps, sc.bps_capacity),
        (64_000, 250_000),
        "capacity split among workers"
    );
    assert!(sc.secure_stun);
    // The server name defaults to the realm.
    assert_eq!(ok("realm=r\nuser=a:b\n").server_name, "r");
    // Order does not matter for the timestamp format.
    let c = ok("no-auth\nnew-log-timestamp-format=%H:%M\nnew-log-timestamp\n");
    assert_eq!(c.log.timestamp_format.as_deref(), Some("%H:%M"));
    let c = ok("no-auth\nnew-log-timestamp\nnew-log-timestamp-format=%H:%M\n");
    assert_eq!(c.log.timestamp_format.as_deref(), Some("%H:%M"));
    assert!(ok("no-auth\nlog-format=json\n").log.format == LogFormat::Json);
    // Bad values name their line and key.
    for (text, key) in [
        ("no-auth\nsyslog-facility=LOG_NOPE\n", "syslog-facility"),
        (
            "no-auth\nallocation-default-address-family=ipv5\n",
            "allocation-default-address-family",
        ),
        ("no-auth\nlog-format=xml\n", "log-format"),
        (
            "no-auth\ncipher-list=AES128-SHA:DHE-RSA-AES256-SHA\n",
            "cipher-list",
        ),
    ] {
        let e = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
        assert_eq!((e.line, e.key.as_str()), (2, key), "{e}");
    }
    let e = parse("no-auth\nallow-loopback-peers\nno-loopback-peers\n")
        .err()
        .unwrap();
    assert_eq!(e.key, "no-loopback-peers");
    // cipher-list: names rustls has are kept, others dropped; OpenSSL
    // keywords keep rustls's whole (strong) set.
    let c = ok("no-auth\ncipher-list=\"ECDHE-ECDSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305\"\n");
    assert_eq!(
        c.tls12_ciphers.unwrap(),
        [
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305"
        ]
    );
    let c = ok("no-auth\ncipher-list=HIGH:!aNULL:!MD5\n");
    assert_eq!(
        c.tls12_ciphers.unwrap().len(),
        crate::tls::TLS12_SUITES.len()
    );
    // mobility keeps its warning (RFC 8016 is not implemented).
    let c = ok("no-auth\nmobility\n");
    assert!(c
        .warnings
        .iter()
        .any(|w| w.key == "mobility" && w.message.contains("RFC 8016")));
}

#[test]
fn alternate_servers_in_coturns_forms_split_their_threshold_among_workers() {
    let c = ok("listening-ip=10.0.0.1\nuser=a:b\nrealm=r\n\
         alternate-server=192.0.2.1\nalternate-server=192.0.2.2:3479\n\
         alternate-server=[2001:db8::1]:3478\ntls-alternate-server=192.0.2.9\n\
         max-allocations-before-redirect=5\n\
         signaling-turn-urls=turn:b.example.org:3478?transport=udp\n");
    let sc = c.server_config(0, 2);
    let r = &sc.redirect;
    assert_eq!(
        r.alternates,
        vec![
            "192.0.2.1:3478".parse().unwrap(),
            "192.0.2.2:3479".parse().unwrap(),
            "[2001:db8::1]:3478".parse().unwrap()
        ]
    );
    assert_eq!(r.tls_alternates, vec!["192.0.2.9:5349".parse().unwrap()]);
    assert_eq!(r.from_allocations, 3, "5 for the node, 3 per worker of 2");
    assert_eq!(
        c.signaling_turn_urls,
        vec!["turn:b.example.org:3478?transport=udp"]
    );
    for (line, why) in [
        ("alternate-server=turn.example.org", "invalid address"),
        ("alternate-server=192.0.2.1:0", "invalid port"),
        (
            "signaling-turn-urls=http://b.example.org",
            "not a turn: or turns: URL",
        ),
    ] {
        let e = parse(&format!(
            "listening-ip=10.0.0.1\nuser=a:b\nrealm=r\n{line}\n"
        ))
        .err()
        .unwrap_or_else(|| panic!("{line} parsed"));
        let text = e.to_string();
        assert!(text.starts_with("t.conf:4: "), "{text}");
        assert!(text.contains(why), "{text}");
    }
}
