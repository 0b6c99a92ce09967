//! The `ringturn` binary as an operator meets it: embedded defaults, a
//! coturn config file, a bad line, `--check-config`, a clean exit on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::run_in_netns;

fn ringturn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringturn"))
}

#[test]
fn embedded_defaults_serve_stun_on_3478_and_stop_within_a_second() {
    // In its own namespace, so the fixed default port cannot clash.
    let script = r#"
"$RINGTURN" > "$TMPDIR_RT/out" 2>&1 &
RT=$!
for i in $(seq 1 50); do grep -q "demo user" "$TMPDIR_RT/out" && break; sleep 0.1; done
# A STUN Binding request by hand: type 0x0001, length 0, magic cookie, transaction id.
python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
req = bytes.fromhex("0001" "0000" "2112a442") + b"ringturntest"
s.sendto(req, ("127.0.0.1", 3478))
data, _ = s.recvfrom(2048)
print("binding-response-type=%02x%02x" % (data[0], data[1]))
PY
START=$(date +%s%N)
kill -TERM $RT
wait $RT
echo "exit=$?"
echo "stop-ms=$(( ($(date +%s%N) - START) / 1000000 ))"
cat "$TMPDIR_RT/out"
"#;
    let dir = std::env::temp_dir().join(format!("rt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = run_in_netns(
        script,
        &[
            ("RINGTURN", env!("CARGO_BIN_EXE_ringturn")),
            ("TMPDIR_RT", dir.to_str().unwrap()),
        ],
        Duration::from_secs(30),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = &out.stdout;
    assert!(
        stdout.contains("binding-response-type=0101"),
        "Binding success on 127.0.0.1:3478\n{stdout}"
    );
    assert!(stdout.contains("exit=0"), "{stdout}");
    let ms: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stop-ms="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(ms < 1000, "stopped in {ms} ms\n{stdout}");
    assert!(
        stdout.contains("username=demo password="),
        "demo credentials printed\n{stdout}"
    );
    assert!(stdout.contains("127.0.0.1:3478"), "{stdout}");
}

#[test]
fn a_bad_config_line_names_file_line_and_key_and_nothing_starts() {
    let dir = std::env::temp_dir().join(format!("rt-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("turnserver.conf");
    std::fs::write(
        &path,
        "# coturn style\nrealm=example.org\nuser=a:b\nlistening-port=abc\n",
    )
    .unwrap();
    let out = ringturn().arg("-c").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("turnserver.conf:4") && stderr.contains("listening-port"),
        "{stderr}"
    );

    // Unimplemented coturn keys are warnings naming the line; --check-config summarises.
    std::fs::write(
        &path,
        "realm=example.org\nuser=a:b\nlistening-ip=127.0.0.1\nno-tls\nmobility\n",
    )
    .unwrap();
    let out = ringturn()
        .arg("-c")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains(":5") && stderr.contains("mobility"),
        "{stderr}"
    );
    assert!(stdout.contains("127.0.0.1:3478"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 11: an `xdp-interface` that cannot take the fast path (here: no
/// such interface; on a build without clang: the program is missing) stops
/// the start with the reason, instead of running without it.
#[test]
fn an_xdp_interface_that_cannot_be_attached_stops_the_start() {
    let out = Command::new("timeout")
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_ringturn"))
        .args([
            "--listening-ip=127.0.0.1",
            // Never bound: the fast path is attached first.
            "--listening-port=34781",
            "--xdp-interface=nosuch0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "must refuse to start, not run: {:?}\n{stderr}",
        out.status
    );
    let why = if ringturn::xdp::PROGRAM.is_some() {
        "nosuch0"
    } else {
        "not built"
    };
    assert!(
        stderr.contains("xdp-interface") && stderr.contains(why),
        "{stderr}"
    );
}
