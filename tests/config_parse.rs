//! turnserver.conf + command line → Config: a realistic coturn file, every
//! kind of error naming file, line and key, overrides, embedded defaults, and
//! the per-worker ServerConfig.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ringturn::config::{Cli, Config, ConfigError, IoBackend, Verbosity, COMMAND_LINE, EMBEDDED};
use ringturn::stun::ChannelRange;
use ringturn::turn::ports::PortPool;

/// What a coturn operator's file typically looks like (after coturn's
/// examples/etc/turnserver.conf): numbered lines matter, see the tests.
const COTURN_CONF: &str = r#"# Coturn TURN SERVER configuration file
#
# TURN listener port for UDP and TCP (Default: 3478).
listening-port=3478

# TURN listener port for TLS (Default: 5349).
tls-listening-port=5349

listening-ip=10.0.0.5
relay-ip=10.0.0.5

# For Amazon EC2 users: public/private
external-ip=203.0.113.5/10.0.0.5

min-port=49152
max-port=65535

# Uncomment to run TURN server in 'normal' 'moderate' verbose mode.
verbose

# Use fingerprints in the TURN messages.
fingerprint

# Uncomment to use long-term credential mechanism.
lt-cred-mech

user=alice:wonderland
user=bob:0x7da2270ccfa49786e0115366d3a3d14d

# The default realm to be used for the users when no explicit
# origin/realm relationship is found in the database.
realm=example.org

total-quota=100
stale-nonce=600

cert=/etc/ssl/turn_server_cert.pem
pkey=/etc/ssl/turn_server_pkey.pem

no-tls
no-dtls
no-cli
log-file=/var/log/turnserver/turn.log
simple-log
no-multicast-peers
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=192.168.0.0/16
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn parse(text: &str) -> Config {
    Config::parse("turnserver.conf", text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigError {
    match Config::parse("turnserver.conf", text, &[]) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// An error at `line` about `key`, displayed as `turnserver.conf:LINE: KEY: ...`.
fn assert_err(text: &str, line: usize, key: &str) -> ConfigError {
    let e = parse_err(text);
    assert_eq!(
        (e.source_name.as_str(), e.line, e.key.as_str()),
        ("turnserver.conf", line, key),
        "{e}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("turnserver.conf:{line}: {key}: ")),
        "{shown}"
    );
    e
}

#[test]
fn realistic_coturn_file_parses_with_warnings_for_the_rest() {
    let c = parse(COTURN_CONF);
    assert_eq!(
        c.listening,
        vec!["10.0.0.5:3478".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.relay_ips, vec![ip("10.0.0.5")]);
    assert_eq!(
        c.external_ip_map().get(&ip("10.0.0.5")),
        Some(&ip("203.0.113.5"))
    );
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert_eq!(c.realm, "example.org");
    assert!(!c.no_auth);
    assert!(c.fingerprint);
    assert_eq!(c.log.verbosity, Verbosity::Verbose);
    assert_eq!(
        c.log.file,
        Some(PathBuf::from("/var/log/turnserver/turn.log"))
    );
    assert_eq!(c.total_quota, 100);
    assert_eq!(c.nonce_lifetime, Duration::from_secs(600));
    assert_eq!(c.denied_peer_ips.len(), 2);
    assert!(
        c.signaling_listening_port.is_none(),
        "signaling is off with a file"
    );
    assert!(c.demo_user.is_none());

    let creds = c.credentials();
    assert_eq!(creds.realm, "example.org");
    assert!(creds.users.get("alice").is_some());
    assert!(creds.users.get("bob").is_some());
    assert!(creds.rest_api.is_none());

    let warned: Vec<(usize, &str)> = c
        .warnings
        .iter()
        .map(|w| (w.line, w.key.as_str()))
        .collect();
    // no-cli and simple-log do what coturn does now (issue 12): only no-dtls warns.
    assert_eq!(warned, vec![(41, "no-dtls")]);
    // TLS keys are coturn's: read, and TLS stays off because of no-tls.
    assert!(c.cert.is_some() && c.pkey.is_some());
    assert!(!c.tls, "no-tls");
    for w in &c.warnings {
        assert_eq!(w.source_name, "turnserver.conf");
        assert!(
            w.to_string()
                .starts_with(&format!("turnserver.conf:{}: {}: ", w.line, w.key)),
            "{w}"
        );
    }

    let summary = c.summary();
    for needle in [
        "10.0.0.5:3478",
        "advertised as 203.0.113.5",
        "realm \"example.org\"",
        "2 static users",
        "turnserver.conf:41: no-dtls",
        "TLS:              off (no-tls)",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    assert!(!summary.contains("wonderland"), "summary shows a password");
}

#[test]
fn peer_ranges_apply_to_the_server_config() {
    let c = parse(COTURN_CONF);
    let sc = c.server_config(0, 1);
    let peer = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert!(
        !sc.peer_policy.permits(peer("10.1.2.3:5000")),
        "denied-peer-ip range"
    );
    assert!(
        !sc.peer_policy.permits(peer("192.168.7.7:5000")),
        "denied-peer-ip prefix"
    );
    assert!(sc.peer_policy.permits(peer("198.51.100.7:5000")));
    assert!(
        !sc.peer_policy.permits(peer("10.0.0.5:3478")),
        "own listening socket"
    );
}

#[test]
fn each_bad_value_names_file_line_and_key() {
    let e = assert_err("realm=r\n\nlistening-port=abc\n", 3, "listening-port");
    assert_eq!(
        e.to_string(),
        "turnserver.conf:3: listening-port: invalid port \"abc\""
    );
    assert_err("min-port=70000\n", 1, "min-port");
    assert_err(
        "relay-ip=10.0.0.1\nmin-port=60000\nmax-port=50000\n",
        3,
        "max-port",
    );
    assert_err(
        "relay-ip=10.0.0.1\nmax-port=50000\nmin-port=60000\n",
        3,
        "min-port",
    );
    assert_err("realm=r\nrelay-ip=10.0.0.1\nuser=nocolon\n", 3, "user");
    assert_err("realm=r\nrelay-ip=10.0.0.1\nuser=:pw\n", 3, "user");
    assert_err("realm=r\nrelay-ip=10.0.0.1\nuser=a:0x1234\n", 3, "user");
    assert_err(
        "relay-ip=10.0.0.1\ndenied-peer-ip=10.0.0.300\n",
        2,
        "denied-peer-ip",
    );
    assert_err(
        "relay-ip=10.0.0.1\nallowed-peer-ip=1.2.3.4/33\n",
        2,
        "allowed-peer-ip",
    );
    assert_err("relay-ip=10.0.0.1\nio-backend=foo\n", 2, "io-backend");
    assert_err(
        "realm=r\nrelay-ip=10.0.0.1\nuse-auth-secret\n",
        3,
        "use-auth-secret",
    );
    assert_err(
        "realm=r\nrelay-ip=10.0.0.1\nlt-cred-mech\nno-auth\n",
        4,
        "no-auth",
    );
    assert_err(
        "realm=r\nrelay-ip=10.0.0.1\nno-auth\nlt-cred-mech\n",
        4,
        "lt-cred-mech",
    );
    assert_err("relay-ip=10.0.0.1\nlt-cred-mech\nuser=a:b\n", 2, "realm");
    assert_err("relay-ip=10.0.0.1\nrelay-ip=bad\n", 2, "relay-ip");
    assert_err("listening-ip=::1\nlistening-ip=1.2.3\n", 2, "listening-ip");
    assert_err(
        "relay-ip=10.0.0.1\nexternal-ip=1.2.3.4/::1\n",
        2,
        "external-ip",
    );
    assert_err("relay-ip=10.0.0.1\nfingerprint=maybe\n", 2, "fingerprint");
    assert_err("relay-ip=10.0.0.1\nstale-nonce=soon\n", 2, "stale-nonce");
    assert_err("relay-ip=10.0.0.1\nsocket-rcvbuf=4X\n", 2, "socket-rcvbuf");
    assert_err("relay-ip=10.0.0.1\ncpu-affinity=3-1\n", 2, "cpu-affinity");
    assert_err("relay-ip=10.0.0.1\nworkers=0\n", 2, "workers");
    assert_err(
        "relay-ip=10.0.0.1\nmin-port=50000\nmax-port=50001\nworkers=3\n",
        4,
        "workers",
    );
    assert_err(
        "relay-ip=10.0.0.1\nrest-api-separator=::\n",
        2,
        "rest-api-separator",
    );
    assert_err("relay-ip=10.0.0.1\nlistening-port\n", 2, "listening-port");
    assert_err(
        "relay-ip=10.0.0.1\nsignaling-room-size=1\n",
        2,
        "signaling-room-size",
    );
    assert_err("relay-ip=10.0.0.1\nstun-only\nno-stun\n", 3, "no-stun");
}

#[test]
fn unknown_keys_are_errors_and_coturn_keys_are_warnings() {
    let e = assert_err("relay-ip=10.0.0.1\nlisten-port=3478\n", 2, "listen-port");
    assert!(e.message.contains("did you mean listening-port"), "{e}");
    assert_err("relay-ip=10.0.0.1\nfrobnicate\n", 2, "frobnicate");
    let c = parse(
        "relay-ip=10.0.0.1\nno-auth\nmobility\nserver-name=turn.example.org\n--no-udp-relay\n",
    );
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, vec!["mobility", "no-udp-relay"]);
    assert_eq!(c.server_name, "turn.example.org");
}

#[test]
fn file_syntax_variants() {
    let c = parse(
        "  # indented comment\n\
         --listening-port = 3479   # trailing comment\n\
         listening-ip 127.0.0.1\n\
         relay-ip=\"127.0.0.1\"\n\
         realm=r\n\
         user=carol:pa#ss\n\
         stale-nonce\n\
         max-allocate-lifetime=1800\n\
         permission-lifetime = 120\n\
         channel-lifetime=300\n\
         fingerprint=off\n\
         no-software-attribute\n\
         allow-loopback-peers\n\
         cpu-affinity=0-1\n\
         cpu-affinity=4\n\
         io-backend=batch\n\
         socket-rcvbuf=4M\n\
         socket-sndbuf=512K\n\
         rfc8656-channel-numbers\n\
         signaling-listening-port=9000\n\
         signaling-room-size=4\n\
         pidfile=/run/ringturn.pid\n\
         Verbose\n",
    );
    assert_eq!(
        c.listening,
        vec!["127.0.0.1:3479".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.relay_ips, vec![ip("127.0.0.1")]);
    assert!(c.credentials().users.get("carol").is_some());
    assert_eq!(c.nonce_lifetime, Duration::from_secs(600));
    assert_eq!(c.max_allocate_lifetime, Duration::from_secs(1800));
    assert_eq!(c.permission_lifetime, Duration::from_secs(120));
    assert_eq!(c.channel_lifetime, Duration::from_secs(300));
    assert!(!c.fingerprint);
    assert!(!c.software_attribute);
    assert!(c.allow_loopback_peers);
    assert_eq!(c.cpu_affinity, vec![0, 1, 4]);
    assert_eq!(c.workers, 3, "workers default to the pinned cores");
    assert_eq!(c.io_backend, IoBackend::Batch);
    assert_eq!(c.socket_rcvbuf, Some(4 << 20));
    assert_eq!(c.socket_sndbuf, Some(512 << 10));
    assert_eq!(c.channel_range, ChannelRange::Rfc8656);
    assert_eq!(c.signaling_listening_port, Some(9000));
    assert_eq!(c.signaling_room_size, 4);
    assert_eq!(c.pidfile, Some(PathBuf::from("/run/ringturn.pid")));
    assert_eq!(c.log.verbosity, Verbosity::Extra);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let sc = c.server_config(0, c.workers);
    assert!(sc.software.is_none());
    assert!(!sc.fingerprint);
    assert_eq!(sc.channel_range, ChannelRange::Rfc8656);
    assert_eq!(sc.max_lifetime, Duration::from_secs(1800));
    assert_eq!(sc.default_lifetime, Duration::from_secs(600));
    assert!(sc.peer_policy.allow_loopback);
}

#[test]
fn command_line_overrides_the_file() {
    let file = "listening-port=3478\n\
                listening-ip=10.0.0.5\n\
                relay-ip=10.0.0.5\n\
                relay-ip=10.0.0.6\n\
                realm=example.org\n\
                lt-cred-mech\n\
                user=alice:one\n\
                user=bob:two\n\
                fingerprint\n";
    let c = Config::parse(
        "turnserver.conf",
        file,
        &args(&[
            "--listening-port=3479",
            "--user",
            "carol:three",
            "--relay-ip=10.0.0.7",
            "--fingerprint=no",
            "--realm",
            "other.org",
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.listening,
        vec!["10.0.0.5:3479".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        c.relay_ips,
        vec![ip("10.0.0.7")],
        "repeatable keys are replaced"
    );
    assert_eq!(c.user_names().collect::<Vec<_>>(), vec!["carol"]);
    assert!(!c.fingerprint);
    assert_eq!(c.realm, "other.org");

    // The command line may switch off what the file switched on.
    let c = Config::parse(
        "turnserver.conf",
        file,
        &args(&["--lt-cred-mech=false", "--no-auth"]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.no_auth);

    // ... and conflicts name the command line's argument.
    let e = Config::parse("turnserver.conf", file, &args(&["--no-auth"]))
        .err()
        .unwrap_or_else(|| panic!("lt-cred-mech + no-auth must fail"));
    assert_eq!(
        (e.source_name.as_str(), e.line, e.key.as_str()),
        (COMMAND_LINE, 1, "no-auth")
    );
    let e = Config::parse(
        "turnserver.conf",
        file,
        &args(&["--no-auth", "--listening-port=abc"]),
    )
    .err()
    .unwrap_or_else(|| panic!("bad port must fail"));
    assert_eq!(
        e.to_string(),
        "command line:2: listening-port: invalid port \"abc\""
    );
}

#[test]
fn from_cli_reads_the_file_and_applies_overrides() {
    let path = std::env::temp_dir().join(format!("ringturn-config-{}.conf", std::process::id()));
    std::fs::write(&path, COTURN_CONF).unwrap_or_else(|e| panic!("{e}"));
    let cli = Cli::try_parse_args([
        "ringturn".to_owned(),
        "--listening-port=3479".to_owned(),
        "-c".to_owned(),
        path.display().to_string(),
        "--workers=2".to_owned(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let c = Config::from_cli(&cli);
    std::fs::remove_file(&path).ok();
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source_name, path.display().to_string());
    assert_eq!(c.listening[0].port(), 3479);
    assert_eq!(c.workers, 2);
    assert_eq!(c.warnings[0].source_name, path.display().to_string());

    let missing = Cli::try_parse_args(["ringturn", "-c", "/nonexistent/turnserver.conf"])
        .unwrap_or_else(|e| panic!("{e}"));
    let e = Config::from_cli(&missing)
        .err()
        .unwrap_or_else(|| panic!("missing file"));
    assert_eq!(e.source_name, "/nonexistent/turnserver.conf");
}

#[test]
fn embedded_defaults_are_a_working_demo() {
    let cli = Cli::try_parse_args(["ringturn"]).unwrap_or_else(|e| panic!("{e}"));
    let c = Config::from_cli(&cli).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source_name, EMBEDDED);
    assert_eq!(
        c.listening,
        vec!["127.0.0.1:3478".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.relay_ips, vec![ip("127.0.0.1")]);
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert_eq!(c.realm, "ringturn.local");
    assert!(!c.no_auth);
    assert!(c.allow_loopback_peers, "two local tabs relay to each other");
    assert_eq!(c.signaling_listening_port, Some(8080));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let demo = c
        .demo_user
        .clone()
        .unwrap_or_else(|| panic!("no demo user"));
    assert_eq!(demo.name, "demo");
    assert_eq!(demo.password.len(), 16);
    assert!(demo.password.chars().all(|ch| ch.is_ascii_alphanumeric()));
    assert_eq!(c.static_auth_secrets().len(), 1);

    let creds = c.credentials();
    assert!(creds.users.get("demo").is_some());
    let api = creds
        .rest_api
        .unwrap_or_else(|| panic!("REST API for signaling"));
    assert!(api.mint("x", 2_000_000_000).is_some());

    let again = Config::embedded().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(
        again.demo_user.map(|d| d.password),
        Some(demo.password),
        "the password is drawn at each start"
    );
    assert!(c.summary().contains("demo user"));
}

#[test]
fn options_without_a_file_use_coturn_defaults() {
    let c = Config::from_options(&args(&["--relay-ip=192.0.2.1", "--no-auth"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source_name, COMMAND_LINE);
    // No listening-ip: every address of the host's up interfaces (issue 12).
    let host: Vec<SocketAddr> = ringturn::io::interfaces::up_addresses()
        .unwrap()
        .iter()
        .map(|a| SocketAddr::new(a.ip, 3478))
        .collect();
    assert_eq!(c.listening, host);
    assert!(c.signaling_listening_port.is_none());
    assert!(c.demo_user.is_none());
}

#[test]
fn server_config_splits_ports_across_workers_disjointly() {
    let c = parse(
        "relay-ip=192.0.2.1\nrealm=r\nuser=a:b\nmin-port=50000\nmax-port=50999\n\
         total-quota=10\nuser-quota=3\nworkers=4\n",
    );
    assert_eq!(c.workers, 4);
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut seeds = BTreeSet::new();
    for w in 0..c.workers {
        let sc = c.server_config(w, c.workers);
        assert_eq!((sc.port_offset, sc.port_stride), (w as u16, 4));
        assert_eq!(sc.total_quota, 3, "10 split among 4, rounded up");
        assert_eq!(sc.user_quota, 3);
        seeds.insert(sc.rng_seed);
        let ports: Vec<u16> = (sc.min_port..=sc.max_port)
            .skip(usize::from(sc.port_offset))
            .step_by(usize::from(sc.port_stride))
            .collect();
        let pool = PortPool::new(sc.min_port, sc.max_port, sc.port_offset, sc.port_stride);
        assert_eq!(pool.available(), ports.len());
        for p in ports {
            assert!(seen.insert(p), "port {p} given to two workers");
        }
        total += pool.available();
    }
    assert_eq!(total, 1000, "every port has an owner");
    assert_eq!(seen.len(), 1000);
    assert_eq!(seeds.len(), 4, "each worker gets its own rng seed");
}

#[test]
fn relay_socket_mode_and_its_peer_cap() {
    use ringturn::config::RelaySocketMode;
    let base = "realm=r\nrelay-ip=10.0.0.1\nlistening-ip=10.0.0.1\n";
    let c = parse(base);
    assert_eq!(c.relay_socket_mode, RelaySocketMode::PerAllocation);
    assert_eq!(c.max_shared_peers, 64);
    let c = parse(&format!(
        "{base}relay-socket-mode=shared\nmax-shared-peers=8\n"
    ));
    assert_eq!(c.relay_socket_mode, RelaySocketMode::Shared);
    let sc = c.server_config(1, 4);
    assert_eq!(sc.relay_socket_mode, RelaySocketMode::Shared);
    assert_eq!(sc.max_claimed_peers, 8);
    // The command line overrides the file.
    let c = Config::parse(
        "turnserver.conf",
        &format!("{base}relay-socket-mode=shared\n"),
        &args(&["--relay-socket-mode=per-allocation"]),
    )
    .unwrap();
    assert_eq!(c.relay_socket_mode, RelaySocketMode::PerAllocation);
    assert_err(
        &format!("{base}relay-socket-mode=multiplex\n"),
        4,
        "relay-socket-mode",
    );
    assert_err(
        &format!("{base}max-shared-peers=0\n"),
        4,
        "max-shared-peers",
    );
}

#[test]
fn xdp_interfaces_and_mode() {
    use ringturn::xdp::XdpMode;
    let base = "realm=r\nrelay-ip=10.0.0.1\nlistening-ip=10.0.0.1\n";
    let c = parse(base);
    assert!(c.xdp_interfaces.is_empty(), "no fast path unless asked");
    assert_eq!(c.xdp_mode, XdpMode::Auto);
    let c = parse(&format!(
        "{base}xdp-interface=eth0\nxdp-interface=eth1\nxdp-interface=eth0\nxdp-mode=native\n"
    ));
    assert_eq!(c.xdp_interfaces, vec!["eth0", "eth1"]);
    assert_eq!(c.xdp_mode, XdpMode::Native);
    let c = Config::parse(
        "turnserver.conf",
        base,
        &args(&["--xdp-interface=enp1s0", "--xdp-mode=generic"]),
    )
    .unwrap();
    assert_eq!(c.xdp_interfaces, vec!["enp1s0"]);
    assert_eq!(c.xdp_mode, XdpMode::Generic);
    assert_err(&format!("{base}xdp-mode=fast\n"), 4, "xdp-mode");
    assert_err(
        &format!("{base}xdp-interface=a-name-far-too-long\n"),
        4,
        "xdp-interface",
    );
    assert_err(
        &format!("{base}xdp-interface=../eth0\n"),
        4,
        "xdp-interface",
    );
}
