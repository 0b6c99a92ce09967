//! coturn's own clients against ringturn (Debian package `coturn`):
//! `turnutils_uclient` relaying through ringturn to `turnutils_peer`, in
//! ChannelData, Send-indication and client-to-client modes, with long-term
//! and REST-API credentials, on both I/O backends. Every message must come back.
//! Each run lives in its own network namespace (TESTING.md), so fixed ports
//! cannot clash with anything on the machine.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns};

const SCRIPT: &str = r#"
"$RINGTURN" --listening-ip=127.0.0.1 --listening-port=3478 --relay-ip=127.0.0.1 \
  --min-port=49152 --max-port=49999 --realm=example.org --allow-loopback-peers \
  --io-backend="$BACKEND" --workers=2 $AUTH > "$LOG" 2>&1 &
RT=$!
turnutils_peer -L 127.0.0.1 -p 23480 > /dev/null 2>&1 &
PEER=$!
# Wait until ringturn answers (uclient has no retry for the first request).
for i in $(seq 1 50); do grep -q started "$LOG" && break; sleep 0.1; done
timeout 60 turnutils_uclient -p 3478 $CREDS -n 100 -m "$CLIENTS" -l 120 -z 5 $MODE 127.0.0.1
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
    run_uclient_clients(backend, mode, auth, creds, 4)
}

fn run_uclient_clients(backend: &str, mode: &str, auth: &str, creds: &str, clients: u32) -> Run {
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
    // uclient's summary line: "start_mclient: tot_send_msgs=400, tot_recv_msgs=400"
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.split("tot_send_msgs=").nth(1)?;
            let (sent, rest) = rest.split_once(", tot_recv_msgs=")?;
            if rest.contains(',') {
                return None; // the per-interval lines carry byte counts too
            }
            Some((sent.trim().parse().ok()?, rest.trim().parse().ok()?))
        })
        .unwrap_or((0, 0));
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
