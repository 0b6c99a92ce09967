//! The `ringturn` binary's signaling as an operator meets it: the embedded
//! defaults serve the call page on 127.0.0.1:8080 and stop within a second of
//! SIGTERM with a WebSocket client connected (closed with 1001); a coturn
//! config file has no signaling unless `signaling-listening-port` is set, and
//! without a `static-auth-secret` the page gets only a `stun:` URL, never the
//! static user's password.
//!
//! Each case runs in its own network namespace (fixed ports cannot clash);
//! `tests/signaling/process_probe.py` (python3, stdlib) is the client. Needs
//! root for `unshare --net`: skipped without it, except under `CI`.

mod common;
#[path = "signaling/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn probe() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/signaling/process_probe.py")
        .display()
        .to_string()
}

fn can_run() -> bool {
    if support::netns_available() {
        return true;
    }
    assert!(!support::ci(), "`unshare --net` must work in CI");
    eprintln!("skipping: `unshare --net` does not work here (needs root)");
    false
}

/// Runs `script` with bash in a fresh network namespace (lo up), bounded.
fn in_netns(script: &str, dir: &Path) -> support::Run {
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "bash", "-c"])
        .arg(format!("set -u\nip link set lo up\n{script}"))
        .env("RINGTURN", env!("CARGO_BIN_EXE_ringturn"))
        .env("PROBE", probe())
        .env("DIR", dir);
    support::run_bounded(cmd, Duration::from_secs(40))
}

fn value<'a>(run: &'a support::Run, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the output\n{}", run.transcript()))
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rt-sig-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn embedded_defaults_serve_the_call_page_on_8080_and_sigterm_stops_within_a_second() {
    if !can_run() {
        return;
    }
    let dir = tempdir("embedded");
    let run = in_netns(
        r#"
"$RINGTURN" > "$DIR/out" 2>&1 &
RT=$!
for i in $(seq 1 100); do grep -q "in two tabs" "$DIR/out" && break; sleep 0.05; done
python3 "$PROBE" 8080 --pid $RT || kill -KILL $RT
wait $RT
echo "exit=$?"
echo "--- ringturn output ---"
cat "$DIR/out"
"#,
        &dir,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let t = run.transcript();
    assert_eq!(value(&run, "page-status"), "200", "{t}");
    assert_eq!(value(&run, "page-has-join"), "True", "{t}");
    let ice: Value = serde_json::from_str(value(&run, "ice")).unwrap();
    assert_eq!(
        ice["iceServers"][0]["urls"][0], "stun:127.0.0.1:3478",
        "{t}"
    );
    assert_eq!(
        ice["iceServers"][1]["urls"][0], "turn:127.0.0.1:3478?transport=udp",
        "{t}"
    );
    // The embedded defaults serve TURN over TCP too: the page offers it for
    // networks that block UDP.
    assert_eq!(
        ice["iceServers"][1]["urls"][1], "turn:127.0.0.1:3478?transport=tcp",
        "{t}"
    );
    assert!(ice["iceServers"][1]["credential"].is_string(), "{t}");
    let joined: Value = serde_json::from_str(value(&run, "joined")).unwrap();
    assert_eq!(joined["type"], "joined", "{t}");
    assert_eq!(joined["room"], "probe", "{t}");
    // RFC 6455 §7.4.1: 1001, the endpoint is going away.
    assert_eq!(value(&run, "ws-close"), "1001", "{t}");
    let ms: u64 = value(&run, "stop-ms").parse().unwrap();
    assert!(ms < 1000, "stopped in {ms} ms\n{t}");
    assert_eq!(value(&run, "exit"), "0", "{t}");
    assert!(
        run.stdout
            .contains("open http://127.0.0.1:8080/ in two tabs"),
        "the demo tells where the page is\n{t}"
    );
}

#[test]
fn a_config_file_has_signaling_only_with_signaling_listening_port_and_never_leaks_passwords() {
    if !can_run() {
        return;
    }
    let dir = tempdir("file");
    std::fs::write(
        dir.join("plain.conf"),
        "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nrealm=example.org\nuser=alice:static-pw\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("signaling.conf"),
        "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nrealm=example.org\nuser=alice:static-pw\n\
         signaling-listening-ip=127.0.0.1\nsignaling-listening-port=9090\n",
    )
    .unwrap();
    let run = in_netns(
        r#"
"$RINGTURN" -c "$DIR/plain.conf" > "$DIR/plain.out" 2>&1 &
RT=$!
for i in $(seq 1 100); do grep -q "started" "$DIR/plain.out" && break; sleep 0.05; done
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then echo "port8080=open"; else echo "port8080=closed"; fi
kill -TERM $RT; wait $RT; echo "plain-exit=$?"
"$RINGTURN" -c "$DIR/signaling.conf" > "$DIR/sig.out" 2>&1 &
RT=$!
for i in $(seq 1 100); do grep -q "call page" "$DIR/sig.out" && break; sleep 0.05; done
python3 "$PROBE" 9090 || echo "probe-failed"
kill -TERM $RT; wait $RT; echo "sig-exit=$?"
cat "$DIR/plain.out" "$DIR/sig.out"
"#,
        &dir,
    );
    let _ = std::fs::remove_dir_all(&dir);
    let t = run.transcript();
    assert_eq!(
        value(&run, "port8080"),
        "closed",
        "no signaling by default\n{t}"
    );
    assert_eq!(value(&run, "plain-exit"), "0", "{t}");
    assert_eq!(value(&run, "page-status"), "200", "{t}");
    let ice: Value = serde_json::from_str(value(&run, "ice")).unwrap();
    assert_eq!(
        ice["iceServers"],
        serde_json::json!([{"urls": ["stun:127.0.0.1:3478"]}]),
        "{t}"
    );
    assert!(ice["turnUnavailable"].is_string(), "{t}");
    assert!(!value(&run, "ice").contains("static-pw"), "{t}");
    assert_eq!(value(&run, "sig-exit"), "0", "{t}");
}
