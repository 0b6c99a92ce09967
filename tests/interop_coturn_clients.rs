//! coturn's own clients against ringturn (Debian package `coturn`):
//! `turnutils_uclient` relaying through ringturn to `turnutils_peer`, in
//! ChannelData, Send-indication and client-to-client modes, with long-term
//! and REST-API credentials, on both I/O backends. Every message must come back.
//! Each run lives in its own network namespace (TESTING.md), so fixed ports
//! cannot clash with anything on the machine.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns, uclient_totals};

const SCRIPT: &str = r#"
"$RINGTURN" --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 \
  --min-port=49152 --max-port=49999 --realm=example.org --allow-loopback-peers \
  --io-backend="$BACKEND" --workers=2 $AUTH $SERVER_EXTRA > "$LOG" 2>&1 &
RT=$!
${PEER_CMD:-turnutils_peer -L 127.0.0.1 -p 23480} > /dev/null 2>&1 &
PEER=$!
# Wait until ringturn answers (uclient has no retry for the first request).
for i in $(seq 1 50); do grep -q started "$LOG" && break; sleep 0.1; done
timeout 60 turnutils_uclient -p "$PORT" $CREDS -n 100 -m "$CLIENTS" -l 120 -z 5 $MODE 127.0.0.1
UC=$?
kill -TERM $RT $PEER
wait $RT
echo "ringturn-exit=$?"
echo "uclient-exit=$UC"
"#;

struct Run {
    sent: u64,
    received: u64,
    output: String,
}

fn run_uclient(backend: &str, mode: &str, auth: &str, creds: &str) -> Run {
    run_uclient_on(backend, mode, auth, creds, "", 3478)
}

fn run_uclient_on(
    backend: &str,
    mode: &str,
    auth: &str,
    creds: &str,
    server_extra: &str,
    port: u16,
) -> Run {
    run_uclient_full(backend, mode, auth, creds, server_extra, port, "", 4)
}

fn run_uclient_clients(backend: &str, mode: &str, auth: &str, creds: &str, clients: u32) -> Run {
    run_uclient_full(backend, mode, auth, creds, "", 3478, "", clients)
}

fn run_uclient_with_peer(
    backend: &str,
    mode: &str,
    auth: &str,
    creds: &str,
    server_extra: &str,
    port: u16,
    peer_cmd: &str,
) -> Run {
    run_uclient_full(backend, mode, auth, creds, server_extra, port, peer_cmd, 4)
}

#[allow(clippy::too_many_arguments)]
fn run_uclient_full(
    backend: &str,
    mode: &str,
    auth: &str,
    creds: &str,
    server_extra: &str,
    port: u16,
    peer_cmd: &str,
    clients: u32,
) -> Run {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let log = tempfile_path(&format!("ringturn-{backend}-{}", mode.replace(' ', "")));
    let out = run_in_netns(
        SCRIPT,
        &[
            ("RINGTURN", env!("CARGO_BIN_EXE_ringturn")),
            ("BACKEND", backend),
            ("MODE", mode),
            ("AUTH", auth),
            ("CREDS", creds),
            ("LOG", &log),
            ("SERVER_EXTRA", server_extra),
            ("PEER_CMD", peer_cmd),
            ("PORT", &port.to_string()),
            ("CLIENTS", &clients.to_string()),
        ],
        Duration::from_secs(90),
    );
    let stdout = out.stdout;
    let stderr = out.stderr;
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let output =
        format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- ringturn log\n{server_log}");
    let summary = uclient_totals(&stdout);
    assert!(
        stdout.contains("ringturn-exit=0"),
        "ringturn must exit 0 on SIGTERM\n{output}"
    );
    Run {
        sent: summary.0,
        received: summary.1,
        output,
    }
}

fn tempfile_path(name: &str) -> String {
    let dir = std::env::temp_dir();
    dir.join(format!("{name}-{}.log", std::process::id()))
        .to_string_lossy()
        .into_owned()
}

const LT_AUTH: &str = "--lt-cred-mech --user=test:test";
const LT_CREDS: &str = "-u test -w test";
const PEER: &str = "-e 127.0.0.1 -r 23480";

fn assert_all_echoed(run: &Run) {
    assert_eq!(
        run.sent, 400,
        "uclient sent 100 messages on each of 4 clients\n{}",
        run.output
    );
    assert_eq!(
        run.received, run.sent,
        "every message came back\n{}",
        run.output
    );
}

#[test]
fn uclient_channel_data_uring() {
    assert_all_echoed(&run_uclient(
        "uring",
        &format!("{PEER} -c"),
        LT_AUTH,
        LT_CREDS,
    ));
}

#[test]
fn uclient_channel_data_batch() {
    assert_all_echoed(&run_uclient(
        "batch",
        &format!("{PEER} -c"),
        LT_AUTH,
        LT_CREDS,
    ));
}

#[test]
fn uclient_send_indications_uring() {
    // -s: Send/Data indications instead of channels; without -c uclient also
    // allocates RTP/RTCP pairs with EVEN-PORT and RESERVATION-TOKEN.
    assert_all_echoed(&run_uclient(
        "uring",
        &format!("{PEER} -s"),
        LT_AUTH,
        LT_CREDS,
    ));
}

#[test]
fn uclient_send_indications_batch() {
    assert_all_echoed(&run_uclient(
        "batch",
        &format!("{PEER} -s"),
        LT_AUTH,
        LT_CREDS,
    ));
}

#[test]
fn uclient_client_to_client_uring() {
    // -y: pairs of allocations relaying to each other (relay to relay).
    assert_all_echoed(&run_uclient("uring", "-y", LT_AUTH, LT_CREDS));
}

#[test]
fn uclient_client_to_client_batch() {
    assert_all_echoed(&run_uclient("batch", "-y", LT_AUTH, LT_CREDS));
}

#[test]
fn uclient_rest_api_credentials_both_backends() {
    // -W: uclient makes a time-limited username and HMAC password from the secret itself.
    for backend in ["uring", "batch"] {
        let run = run_uclient(
            backend,
            &format!("{PEER} -c"),
            "--use-auth-secret --static-auth-secret=north-wind",
            "-u alice -W north-wind",
        );
        assert_all_echoed(&run);
    }
}

#[test]
fn uclient_wrong_password_relays_nothing() {
    let run = run_uclient("uring", &format!("{PEER} -c"), LT_AUTH, "-u test -w wrong");
    assert_eq!(
        run.received, 0,
        "nothing relayed without valid credentials\n{}",
        run.output
    );
    assert!(
        run.output.contains("Cannot complete Allocation"),
        "uclient reports the refusal\n{}",
        run.output
    );
}

/// A self-signed certificate made at test time, in files uclient's server reads.
struct CertFiles {
    cert: String,
    key: String,
}

impl CertFiles {
    fn new(tag: &str) -> Self {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = tempfile_path(&format!("cert-{tag}"));
        let key = tempfile_path(&format!("key-{tag}"));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        Self { cert, key }
    }

    fn server_args(&self) -> String {
        format!(
            "--cert={} --pkey={} --tls-listening-port=5349",
            self.cert, self.key
        )
    }
}

impl Drop for CertFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert);
        let _ = std::fs::remove_file(&self.key);
    }
}

#[test]
fn uclient_over_tcp_channel_data_and_send_indications_both_backends() {
    // -t: TURN over TCP to the listening port (RFC 8656 §3.1); the relay side stays UDP.
    for backend in ["uring", "batch"] {
        for mode in ["-c", "-s"] {
            let run = run_uclient_on(
                backend,
                &format!("-t {PEER} {mode}"),
                LT_AUTH,
                LT_CREDS,
                "",
                3478,
            );
            assert_all_echoed(&run);
        }
    }
}

#[test]
fn uclient_over_tls_channel_data_and_send_indications_both_backends() {
    // -t -S: TURN over TLS to tls-listening-port (uclient's -S alone would be DTLS).
    let cert = CertFiles::new("uclient-tls");
    for backend in ["uring", "batch"] {
        for mode in ["-c", "-s"] {
            let run = run_uclient_on(
                backend,
                &format!("-t -S {PEER} {mode}"),
                LT_AUTH,
                LT_CREDS,
                &cert.server_args(),
                5349,
            );
            assert_all_echoed(&run);
        }
    }
}

/// A TCP echo server for RFC 6062 runs (turnutils_peer speaks UDP only).
const TCP_ECHO_PEER: &str = "python3 -c 'import socket,threading\n\
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind((\"127.0.0.1\",23480));s.listen(64)\n\
def echo(c):\n\
 while True:\n\
  d=c.recv(65536)\n\
  if not d: break\n\
  c.sendall(d)\n\
while True:\n\
 c,_=s.accept();threading.Thread(target=echo,args=(c,),daemon=True).start()'";

#[test]
fn uclient_tcp_relay_rfc6062_over_tcp_and_tls() {
    // -T: REQUESTED-TRANSPORT TCP; uclient Connects to the TCP echo peer and
    // binds data connections (RFC 6062 §4.3, §4.4); several workers, so a
    // ConnectionBind may land on another worker than its peer connection.
    let cert = CertFiles::new("uclient-tcp-relay");
    for (mode, extra, port) in [
        ("-t -T", String::new(), 3478),
        ("-t -S -T", cert.server_args(), 5349),
    ] {
        let run = run_uclient_with_peer(
            "uring",
            &format!("{mode} {PEER}"),
            LT_AUTH,
            LT_CREDS,
            &format!("{extra} --workers=4"),
            port,
            TCP_ECHO_PEER,
        );
        assert_all_echoed(&run);
    }
}
/// relay-socket-mode=shared: one uclient (its `-m` clients would all use the
/// same peer endpoint, which only one allocation per worker may claim), in
/// ChannelData and Send-indication modes, with `-c` (no RTP/RTCP pairs: those
/// need EVEN-PORT R=1 and RESERVATION-TOKEN, refused with 508 in this mode;
/// uclient still sends EVEN-PORT R=0 on every other Allocate, which the even
/// shared port satisfies).
#[test]
fn uclient_shared_relay_socket_mode_both_backends() {
    for backend in ["uring", "batch"] {
        for mode in [format!("{PEER} -c"), format!("{PEER} -c -s")] {
            let run = run_uclient_clients(
                backend,
                &mode,
                &format!("{LT_AUTH} --relay-socket-mode=shared"),
                LT_CREDS,
                1,
            );
            assert_eq!(run.sent, 100, "{backend} {mode}\n{}", run.output);
            assert_eq!(run.received, 100, "{backend} {mode}\n{}", run.output);
        }
    }
}
