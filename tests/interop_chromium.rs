//! A real browser relays through ringturn: headless Chromium opens one page
//! with two `RTCPeerConnection`s restricted to relay candidates
//! (`iceTransportPolicy: 'relay'`, TURN over UDP, TCP or TLS with long-term credentials),
//! connects them through ringturn, sends 20 DataChannel messages from pc1 to
//! pc2 and gets each echoed back, then reports `getStats()`' selected
//! candidate pairs.
//!
//! Everything runs in a fresh network namespace holding only loopback
//! (`unshare --net`), so Chromium cannot gather or send on other interfaces
//! and the fixed ports (TURN 3478, HTTP 8000) cannot clash with anything.
//! `tests/interop/chromium_call.py` (python3, stdlib only) starts ringturn,
//! waits for a STUN Binding answer, serves `tests/interop/call.html`, runs
//! Chromium and prints the page's JSON as one `RESULT {...}` line.
//!
//! Needs root (for `unshare --net`), python3 and Chromium (`/usr/bin/chromium`
//! or `$CHROMIUM`). Where one is missing the test says so and passes, except
//! under `CI`, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::process::{run_bounded, Run};

use serde_json::Value;

const DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/chromium_call.py"
);
/// Messages pc1 sends; pc2 echoes each one.
const COUNT: u64 = 20;
/// The driver gives up after this long…
const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);
/// …and the test kills it if it somehow has not by then.
const TEST_TIMEOUT: Duration = Duration::from_secs(75);
/// ringturn's relay port range as the driver configures it.
const RELAY_PORTS: std::ops::RangeInclusive<u64> = 49152..=49999;

/// One browser at a time: two Chromiums at once on a 2-core CI machine only
/// make each other slow.
static BROWSER: Mutex<()> = Mutex::new(());

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Skips (returns `None`) where the machine cannot run the test, or fails
/// under CI.
fn prerequisites() -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = |what: String| {
        if ci() {
            panic!("browser interop test cannot run in CI: {what}");
        }
        eprintln!("skipping the Chromium interop test: {what}");
        None
    };
    if !chromium.exists() {
        return missing(format!("no Chromium at {}", chromium.display()));
    }
    let works = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works(Command::new("python3").arg("--version")) {
        return missing("no python3".into());
    }
    if !works(Command::new("unshare").args(["--net", "true"])) {
        return missing("`unshare --net` does not work here (needs root)".into());
    }
    Some(chromium)
}

fn uring_available() -> bool {
    match ringturn::io::create_backend(Some(ringturn::io::BackendKind::Uring)) {
        Ok(_) => true,
        Err(e) if ci() => panic!("io_uring must work in CI: {e}"),
        Err(e) => {
            eprintln!("skipping the uring run: io_uring unavailable here: {e}");
            false
        }
    }
}

struct DriverRun {
    /// Holds ringturn's and Chromium's logs and the browser profile; removed
    /// after a passing run, kept for a look after a failing one.
    workdir: PathBuf,
    run: Run,
}

impl DriverRun {
    fn transcript(&self) -> String {
        format!(
            "driver status: {:?} after {:.1?}; logs in {}\n--- driver stdout ---\n{}\n--- driver stderr (ringturn's log tail on failure) ---\n{}",
            self.run.status,
            self.run.elapsed,
            self.workdir.display(),
            self.run.stdout,
            self.run.stderr
        )
    }
}

/// How the browser reaches ringturn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A certificate made for this run; Chromium trusts exactly its public key.
struct BrowserCert {
    cert: PathBuf,
    key: PathBuf,
    /// base64(SHA-256(SubjectPublicKeyInfo)), for --ignore-certificate-errors-spki-list.
    spki: String,
}

fn make_cert(dir: &Path) -> BrowserCert {
    use base64::Engine;
    use rcgen::PublicKeyData;
    use sha2::Digest;
    std::fs::create_dir_all(dir).unwrap();
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("turn-cert.pem");
    let key = dir.join("turn-key.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let digest = sha2::Sha256::digest(c.signing_key.subject_public_key_info());
    BrowserCert {
        cert,
        key,
        spki: base64::engine::general_purpose::STANDARD.encode(digest),
    }
}

/// Runs the driver once, inside its own network namespace and process group.
fn run_driver(chromium: &Path, backend: &str, transport: Transport, extra: &[&str]) -> DriverRun {
    run_driver_env(chromium, backend, transport, extra, &[])
}

fn run_driver_env(
    chromium: &Path,
    backend: &str,
    transport: Transport,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> DriverRun {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let workdir = std::env::temp_dir().join(format!(
        "ringturn-chromium-{backend}-{}-{nanos}",
        std::process::id()
    ));
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "python3", DRIVER])
        .arg("--ringturn")
        .arg(env!("CARGO_BIN_EXE_ringturn"))
        .arg("--backend")
        .arg(backend)
        .arg("--chromium")
        .arg(chromium)
        .arg("--count")
        .arg(COUNT.to_string())
        .arg("--timeout")
        .arg(DRIVER_TIMEOUT.as_secs().to_string())
        .arg("--workdir")
        .arg(&workdir)
        .arg("--transport")
        .arg(transport.name())
        // ringturn's allocations in its log, for the tail shown on failure.
        .arg("--verbose")
        .args(extra)
        .envs(envs.iter().copied());
    if transport == Transport::Tls {
        let c = make_cert(&workdir);
        cmd.arg("--cert")
            .arg(&c.cert)
            .arg("--pkey")
            .arg(&c.key)
            .arg("--spki")
            .arg(&c.spki);
    }
    // Its own process group, killed (with everything left in it) when it ends
    // or at the limit.
    let run = run_bounded(cmd, TEST_TIMEOUT);
    DriverRun { workdir, run }
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("<missing>")
}

/// The page's JSON from a driver that exited 0, or a failure with the transcript.
fn page_result(run: &DriverRun, label: &str) -> Value {
    let fail = |why: String| -> ! { panic!("[{label}] {why}\n{}", run.transcript()) };
    match run.run.status {
        None => fail(format!(
            "driver still running after {TEST_TIMEOUT:?}; killed"
        )),
        Some(s) if !s.success() => fail(format!("driver failed: {s}")),
        Some(_) => {}
    }
    let Some(line) = run
        .run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
    else {
        fail("no RESULT line".into())
    };
    serde_json::from_str(line).unwrap_or_else(|e| fail(format!("RESULT is not JSON: {e}")))
}

fn check_result(run: &DriverRun, backend: &str, transport: Transport) -> Value {
    check_result_in(run, backend, transport, RELAY_PORTS)
}

/// As `check_result`, with the relay port range the configuration set.
fn check_result_in(
    run: &DriverRun,
    backend: &str,
    transport: Transport,
    relay_ports: std::ops::RangeInclusive<u64>,
) -> Value {
    let fail = |why: String| -> ! { panic!("[{backend}] {why}\n{}", run.transcript()) };
    let result = page_result(run, backend);
    let has = |ok: bool, what: &str| {
        if !ok {
            fail(format!("{what}; page result: {result:#}"))
        }
    };
    has(result["ok"] == Value::Bool(true), "page did not report ok");
    has(
        matches!(result.get("error"), None | Some(Value::Null)),
        "page reported an error",
    );
    has(
        result["received_by_pc2"].as_u64() == Some(COUNT),
        "pc2 did not receive every message",
    );
    has(
        result["echoed_back_to_pc1"].as_u64() == Some(COUNT),
        "pc1 did not receive every echo",
    );
    has(
        result["ringturn_alive"] == Value::Bool(true),
        "ringturn exited during the call",
    );
    for pc in ["pc1", "pc2"] {
        let p = &result[pc];
        has(
            str_field(p, "state") == "succeeded",
            &format!("{pc}: selected pair not succeeded"),
        );
        has(
            str_field(p, "localType") == "relay",
            &format!("{pc}: local candidate of the selected pair is not relay"),
        );
        has(
            str_field(p, "remoteType") == "relay",
            &format!("{pc}: remote candidate of the selected pair is not relay"),
        );
        // RTCIceCandidateStats.relayProtocol: how the client reached the TURN server.
        has(
            str_field(p, "localRelayProtocol") == transport.name(),
            &format!(
                "{pc}: local relay candidate not allocated over {}",
                transport.name()
            ),
        );
        for side in ["localPort", "remotePort"] {
            has(
                p[side]
                    .as_u64()
                    .is_some_and(|port| relay_ports.contains(&port)),
                &format!("{pc}: {side} is not in ringturn's relay range {relay_ports:?}"),
            );
        }
    }
    // Each side's relayed address is what the other side sends to.
    has(
        result["pc1"]["localPort"] == result["pc2"]["remotePort"]
            && result["pc2"]["localPort"] == result["pc1"]["remotePort"],
        "the two selected pairs do not mirror each other",
    );
    result
}

fn browser_call_relays_through(backend: &str) {
    browser_call_over(backend, Transport::Udp);
}

fn browser_call_over(backend: &str, transport: Transport) {
    let Some(chromium) = prerequisites() else {
        return;
    };
    if backend == "uring" && !uring_available() {
        return;
    }
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let run = run_driver(&chromium, backend, transport, &[]);
    let result = check_result(&run, backend, transport);
    let _ = std::fs::remove_dir_all(&run.workdir);
    eprintln!(
        "[{backend}] relayed call ok in {:.1?} (page: {} ms): pc1 {}:{} <-> pc2 {}:{}",
        run.run.elapsed,
        result["elapsed_ms"],
        str_field(&result["pc1"], "localAddress"),
        result["pc1"]["localPort"],
        str_field(&result["pc2"], "localAddress"),
        result["pc2"]["localPort"],
    );
}

#[test]
fn chromium_data_channel_relays_through_ringturn_uring() {
    browser_call_relays_through("uring");
}

#[test]
fn chromium_data_channel_relays_through_ringturn_batch() {
    browser_call_relays_through("batch");
}

#[test]
fn chromium_data_channel_relays_over_turn_tcp() {
    // turn:127.0.0.1:3478?transport=tcp (RFC 8656 §3.1); the relayed side stays UDP.
    browser_call_over("uring", Transport::Tcp);
}

#[test]
fn chromium_data_channel_relays_over_turns_tls() {
    // turns:localhost:5349?transport=tcp with a certificate made for this run.
    browser_call_over("batch", Transport::Tls);
}

fn metric(lines: &[Value], name: &str) -> u64 {
    lines
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Issue 11: the browser's relay-only connection through ringturn with the
/// kernel fast path on a veth pair (the browser in a second namespace),
/// talking to a peer on its own host address (pc2: relay ⇄ relay would stay
/// inside the server). Every message echoed, the XDP program carried ≥ 99 %
/// of the ChannelData both ways, and after SIGTERM nothing stays attached.
#[test]
fn chromium_relay_only_call_through_the_xdp_fast_path() {
    xdp_call("uring", "per-allocation");
}

#[test]
fn chromium_relay_only_call_through_the_xdp_fast_path_batch_shared() {
    xdp_call("batch", "shared");
}

fn xdp_call(backend: &str, relay_mode: &str) {
    let Some(chromium) = prerequisites() else {
        return;
    };
    let Some(program) = ringturn::xdp::PROGRAM else {
        assert!(!ci(), "the XDP program must be built in CI");
        eprintln!("skipping: the XDP program was not built");
        return;
    };
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let object = std::env::temp_dir().join(format!(
        "ringturn-xdp-{backend}-{relay_mode}-{}.bpf.o",
        std::process::id()
    ));
    std::fs::write(&object, program).unwrap();
    let object_arg = object.to_string_lossy().into_owned();
    let count = "300";
    // One argv word: argparse takes a value starting with "--" only after "=".
    let mode_arg = format!("--ringturn-arg=--relay-socket-mode={relay_mode}");
    let run = run_driver(
        &chromium,
        backend,
        Transport::Udp,
        &[
            "--xdp-veth",
            &object_arg,
            "--pc2",
            "host",
            "--count",
            count,
            &mode_arg,
        ],
    );
    let _ = std::fs::remove_file(&object);
    let fail = |why: String| -> ! { panic!("{why}\n{}", run.transcript()) };
    let result = page_result(&run, &format!("{backend} {relay_mode}"));
    let want: u64 = count.parse().unwrap();
    let check = |ok: bool, what: &str| {
        if !ok {
            fail(format!("{what}; page result: {result:#}"))
        }
    };
    check(result["ok"] == Value::Bool(true), "page did not report ok");
    check(
        result["received_by_pc2"].as_u64() == Some(want),
        "pc2 missed messages",
    );
    check(
        result["echoed_back_to_pc1"].as_u64() == Some(want),
        "pc1 missed echoes",
    );
    check(
        str_field(&result["pc1"], "localType") == "relay",
        "pc1 not on its relay candidate",
    );
    check(
        str_field(&result["pc2"], "localType") == "host",
        "pc2 not on a host candidate",
    );
    check(
        result["ringturn_exit"].as_i64() == Some(0),
        "SIGTERM must stop ringturn cleanly",
    );
    check(
        result["xdp_after_exit"] == Value::Bool(false),
        "an XDP program stayed on vs",
    );
    let lines = result["metrics"].as_array().cloned().unwrap_or_default();
    let fast_up = metric(&lines, "ringturn_xdp_relayed_packets_client_to_peer_total");
    let fast_down = metric(&lines, "ringturn_xdp_relayed_packets_peer_to_client_total");
    let cd_up = metric(&lines, "ringturn_relayed_channel_data_client_to_peer_total");
    let cd_down = metric(&lines, "ringturn_relayed_channel_data_peer_to_client_total");
    check(
        cd_up >= want && cd_down >= want,
        &format!("too little ChannelData relayed: {cd_up} up, {cd_down} down"),
    );
    check(
        fast_up * 100 >= cd_up * 99 && fast_down * 100 >= cd_down * 99,
        &format!(
            "the fast path must carry ≥ 99 % of the ChannelData: up {fast_up}/{cd_up}, down {fast_down}/{cd_down}"
        ),
    );
    eprintln!(
        "[{backend} {relay_mode}] xdp call ok: the fast path carried {fast_up}/{cd_up} ChannelData up, {fast_down}/{cd_down} down"
    );
    let _ = std::fs::remove_dir_all(&run.workdir);
}

/// Issue 12: the turnserver.conf files the Matrix, Jitsi Meet, BigBlueButton
/// and Nextcloud Talk documentation publish, and a Debian-shaped one, with
/// the browser's own WebRTC stack: ringturn on a veth end at 198.51.100.1
/// (no listening-ip in most of them: the address comes from the interface),
/// Chromium relay-only in a second namespace, its two connections relaying
/// to each other through the server's own address (the address those
/// configs allow as a peer).
fn published_config_call(name: &str, template: &str, min_port: u64, creds: &[&str]) {
    published_config_call_via(name, template, min_port, creds, None);
}

/// As above, the page pointed at `turn_host` (added to the server's veth end)
/// when given; returns the page's result (`None`: skipped).
fn published_config_call_via(
    name: &str,
    template: &str,
    min_port: u64,
    creds: &[&str],
    turn_host: Option<&str>,
) -> Option<Value> {
    let chromium = prerequisites()?;
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir =
        std::env::temp_dir().join(format!("ringturn-published-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cert = make_cert(&dir);
    let conf = dir.join("turnserver.conf");
    let text = template
        .replace("{SECRET}", "north-wind")
        .replace("{CERT}", &cert.cert.display().to_string())
        .replace("{KEY}", &cert.key.display().to_string())
        .replace("{DIR}", &dir.display().to_string())
        .replace("{IP}", "198.51.100.1")
        .replace("{PEER}", "198.51.100.1");
    std::fs::write(&conf, text).unwrap();
    let conf = conf.display().to_string();
    let mut args = vec!["--veth", "--config", conf.as_str()];
    args.extend_from_slice(creds);
    if let Some(host) = turn_host {
        args.extend_from_slice(&["--turn-host", host]);
    }
    // Jitsi's logs to syslog: a socket of the test's own stands for /dev/log.
    let syslog = dir.join("devlog");
    let _sink = std::os::unix::net::UnixDatagram::bind(&syslog).unwrap();
    let syslog = syslog.display().to_string();
    let run = run_driver_env(
        &chromium,
        "auto",
        Transport::Udp,
        &args,
        &[("RINGTURN_SYSLOG_SOCKET", syslog.as_str())],
    );
    let result = check_result_in(&run, name, Transport::Udp, min_port..=65535);
    let _ = std::fs::remove_dir_all(&dir);
    Some(result)
}

/// Issue 12: with no listening-ip, ringturn answers on every address of the
/// host; Chromium reaches it on each of two addresses of one interface and
/// allocates through the one it used (Chromium drops TURN answers from any
/// other address than the server's).
#[test]
fn chromium_reaches_ringturn_on_each_interface_address() {
    for host in ["198.51.100.1", "203.0.113.1"] {
        let Some(result) = published_config_call_via(
            "each-address",
            common::published::NEXTCLOUD,
            49152,
            REST,
            Some(host),
        ) else {
            return;
        };
        for pc in ["pc1", "pc2"] {
            assert_eq!(
                str_field(&result[pc], "localUrl"),
                format!("turn:{host}:3478?transport=udp"),
                "{pc} allocated through {host}: {result:#}"
            );
        }
    }
}

const REST: &[&str] = &["--user", "alice", "--rest-secret", "north-wind"];

#[test]
fn chromium_relays_with_matrix_synapse_config() {
    published_config_call("matrix", common::published::MATRIX, 49152, REST);
}

#[test]
fn chromium_relays_with_jitsi_meet_config() {
    published_config_call("jitsi", common::published::JITSI, 49152, REST);
}

#[test]
fn chromium_relays_with_bigbluebutton_config() {
    published_config_call("bbb", common::published::BIGBLUEBUTTON, 32769, REST);
}

#[test]
fn chromium_relays_with_nextcloud_talk_config() {
    published_config_call("nextcloud", common::published::NEXTCLOUD, 49152, REST);
}

#[test]
fn chromium_relays_with_debian_shaped_config() {
    published_config_call(
        "debian",
        common::published::DEBIAN,
        49152,
        &["--user", "test", "--password", "test"],
    );
}

/// Node A on the veth, node B beside it, sharing a REST secret (the page
/// uses REST credentials).
const TWO_NODES: &[&str] = &[
    "--veth",
    "--alternate-node",
    "--rest-secret",
    "north-wind",
    "--ringturn-arg=--use-auth-secret",
    "--ringturn-arg=--static-auth-secret=north-wind",
];

/// Issue 14: node A (198.51.100.1, `alternate-server=198.51.100.4:3478`)
/// answers Chromium's authenticated Allocates 300 Try Alternate; the browser
/// follows to node B and the relay-only call runs through B's relayed
/// addresses. On a veth pair, the browser in a namespace of its own: WebRTC
/// refuses to follow a redirect to a loopback address. The nodes share a REST
/// secret, and with it their nonce key: the browser sends B the nonce A gave
/// it, and any error from B (401 or 438 alike) ends its allocation.
#[test]
fn chromium_follows_a_300_to_the_alternate_node_and_relays_through_it() {
    let Some(chromium) = prerequisites() else {
        return;
    };
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let run = run_driver(&chromium, "auto", Transport::Udp, TWO_NODES);
    let result = check_result(&run, "alternate", Transport::Udp);
    for pc in ["pc1", "pc2"] {
        assert_eq!(
            str_field(&result[pc], "localAddress"),
            "198.51.100.4",
            "{pc} relays through node B\n{}",
            run.transcript()
        );
    }
    let (a, b) = (
        result["allocations"]["a"].as_u64(),
        result["allocations"]["b"].as_u64(),
    );
    assert_eq!(a, Some(0), "node A allocated nothing\n{}", run.transcript());
    assert!(b >= Some(2), "node B holds both\n{}", run.transcript());
    let _ = std::fs::remove_dir_all(&run.workdir);
}

/// `max-allocations-before-redirect=1` on a one-worker node A: the first
/// PeerConnection's allocation stays on A, the next is sent to B, and the
/// call between them relays through both nodes.
#[test]
fn chromium_call_spans_two_nodes_when_the_first_sheds_load() {
    let Some(chromium) = prerequisites() else {
        return;
    };
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let args = [
        TWO_NODES,
        &[
            "--ringturn-arg=--workers=1",
            "--ringturn-arg=--max-allocations-before-redirect=1",
        ],
    ]
    .concat();
    let run = run_driver(&chromium, "auto", Transport::Udp, &args);
    let result = check_result(&run, "shed", Transport::Udp);
    let mut addresses: Vec<&str> = ["pc1", "pc2"]
        .iter()
        .map(|pc| str_field(&result[*pc], "localAddress"))
        .collect();
    addresses.sort_unstable();
    assert_eq!(
        addresses,
        ["198.51.100.1", "198.51.100.4"],
        "one side relays through each node\n{}",
        run.transcript()
    );
    for node in ["a", "b"] {
        assert!(
            result["allocations"][node].as_u64() >= Some(1),
            "node {node} holds an allocation\n{}",
            run.transcript()
        );
    }
    let _ = std::fs::remove_dir_all(&run.workdir);
}
