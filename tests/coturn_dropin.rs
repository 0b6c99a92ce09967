//! ringturn as a drop-in for coturn's turnserver.conf (issue 12), driven by
//! coturn's own clients in a network namespace of the test's own (TESTING.md):
//! a dummy interface there carries documentation-range addresses, so "the
//! host's interfaces" are exactly what the test made.

mod common;

use std::time::Duration;

use common::process::{require_tool, run_in_netns, uclient_totals, Run};
use common::published::{BIGBLUEBUTTON, DEBIAN, JITSI, MATRIX, NEXTCLOUD};

/// The namespace's interfaces: lo, and eth0 (one end of a veth pair: the
/// `dummy` module is not in every kernel) with two IPv4 addresses and one
/// IPv6 address for ringturn plus one of each family for the peer.
const HOST: &str = r#"
ip link add eth0 type veth peer name eth1
ip link set eth0 up
ip link set eth1 up
ip addr add 198.51.100.10/24 dev eth0
ip addr add 203.0.113.10/24 dev eth0
ip addr add 198.51.100.20/24 dev eth0
ip -6 addr add 2001:db8::10/64 dev eth0 nodad
ip -6 addr add 2001:db8::20/64 dev eth0 nodad
"#;

fn run_script(script: &str, envs: &[(&str, &str)]) -> Run {
    let mut all = vec![("RINGTURN", env!("CARGO_BIN_EXE_ringturn"))];
    all.extend_from_slice(envs);
    run_in_netns(&format!("{HOST}\n{script}"), &all, Duration::from_secs(120))
}

/// Issue 12: a config without listening-ip or relay-ip (Nextcloud Talk's,
/// Debian's default) starts, listens on every address of every interface
/// that is up — loopback included — and relays from them; uclient reaches
/// ringturn on each address and gets every answer from the address it sent
/// to (uclient's UDP sockets are connected: an answer from another source
/// address would never reach it, and it would report nothing received).
#[test]
fn without_listening_ip_every_interface_address_answers_from_itself() {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let run = run_script(
        r#"
CONF=$(mktemp -d)/turnserver.conf
printf 'listening-port=3478\nrealm=example.org\nuser=test:test\nlt-cred-mech\nallow-loopback-peers\nworkers=2\n' > "$CONF"
"$RINGTURN" -c "$CONF" --check-config
echo "check-config-exit=$?"
"$RINGTURN" -c "$CONF" > "$CONF.log" 2>&1 &
RT=$!
turnutils_peer -L 198.51.100.20 -L 2001:db8::20 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do grep -q started "$CONF.log" && break; sleep 0.1; done
for target in 127.0.0.1 198.51.100.10 203.0.113.10 2001:db8::10; do
  case $target in *:*) peer=2001:db8::20 ;; *) peer=198.51.100.20 ;; esac
  echo "=== target $target"
  timeout 30 turnutils_uclient -p 3478 -u test -w test -n 50 -m 2 -l 120 -z 5 \
    -e $peer -r 23480 $target 2>&1 | grep tot_send_msgs | tail -1
done
kill -TERM $RT $PEER
wait $RT
echo "ringturn-exit=$?"
cat "$CONF.log"
"#,
        &[],
    );
    let out = run.transcript();
    assert!(out.contains("check-config-exit=0"), "{out}");
    for found in [
        "lo 127.0.0.1",
        "eth0 198.51.100.10",
        "eth0 203.0.113.10",
        "eth0 2001:db8::10",
    ] {
        assert!(out.contains(found), "--check-config lists {found}\n{out}");
    }
    assert!(
        !out.contains("fe80:"),
        "IPv6 link-local addresses are left out\n{out}"
    );
    for target in ["127.0.0.1", "198.51.100.10", "203.0.113.10", "2001:db8::10"] {
        let section = run
            .stdout
            .split(&format!("=== target {target}\n"))
            .nth(1)
            .and_then(|s| s.split("===").next())
            .unwrap_or_default();
        let (sent, received) = uclient_totals(section);
        assert_eq!(
            (sent, received),
            (100, 100),
            "uclient via {target}: every message relayed and echoed\n{out}"
        );
    }
    assert!(out.contains("ringturn-exit=0"), "{out}");
}

// ---------------------------------------------------------------- published configurations
//
// The turnserver.conf files the projects' documentation publishes, as they
// publish them (comments included), with what the operator fills in made at
// test time: {SECRET}, {CERT}, {KEY}, {DIR} (logs), {IP} (the host's address)
// and {PEER} (the peer turnutils_peer runs on, where a config must allow it).

/// Writes the config, starts ringturn on it in the namespace, runs uclient
/// (ChannelData, 2 clients × 50 messages) against `target`, then stops
/// ringturn. The script prints ringturn's stderr (warnings) between markers.
const PUBLISHED: &str = r#"
"$RINGTURN" -c "$CONF" > "$DIR/stdout.log" 2> "$DIR/stderr.log" &
RT=$!
turnutils_peer -L "$PEER" -p 23480 > /dev/null 2>&1 &
PEERPID=$!
for i in $(seq 1 50); do grep -q started "$DIR/stdout.log" "$DIR"/*.log 2>/dev/null && break; sleep 0.1; done
sleep 0.5
echo "=== stunclient"
timeout 10 turnutils_stunclient "$TARGET" 2>&1 | tail -3
echo "=== uclient"
timeout 30 turnutils_uclient -p 3478 $CREDS -n 50 -m 2 -l 120 -z 5 -e "$PEER" -r 23480 "$TARGET" 2>&1 | grep tot_send_msgs | tail -1
kill -TERM $RT $PEERPID
wait $RT
echo "ringturn-exit=$?"
echo "=== stderr"
cat "$DIR/stderr.log"
echo "=== end"
"#;

/// Where a test's own syslog socket is (outside the config's directory).
fn syslog_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ringturn-syslog-{name}-{}", std::process::id()))
}

struct Published {
    run: Run,
    dir: std::path::PathBuf,
}

fn run_published(name: &str, template: &str, ip: &str, peer: &str, creds: &str) -> Published {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let dir = std::env::temp_dir().join(format!("ringturn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["turn.example.org".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let text = template
        .replace("{SECRET}", "north-wind")
        .replace("{CERT}", &cert.display().to_string())
        .replace("{KEY}", &key.display().to_string())
        .replace("{DIR}", &dir.display().to_string())
        .replace("{IP}", ip)
        .replace("{PEER}", peer);
    let conf = dir.join("turnserver.conf");
    std::fs::write(&conf, text).unwrap();
    let syslog = syslog_path(name);
    let run = run_script(
        PUBLISHED,
        &[
            ("CONF", &conf.display().to_string()),
            ("DIR", &dir.display().to_string()),
            ("TARGET", ip),
            ("PEER", peer),
            ("CREDS", creds),
            ("RINGTURN_SYSLOG_SOCKET", &syslog.display().to_string()),
        ],
    );
    Published { run, dir }
}

impl Published {
    fn section(&self, name: &str) -> String {
        self.run
            .stdout
            .split(&format!("=== {name}\n"))
            .nth(1)
            .and_then(|s| s.split("\n===").next())
            .unwrap_or_default()
            .to_owned()
    }

    /// Every message relayed and echoed, ringturn exited cleanly, and no
    /// warning about a key ringturn lacks.
    fn assert_relays_without_warnings(&self) {
        let out = self.run.transcript();
        assert_eq!(
            uclient_totals(&self.section("uclient")),
            (100, 100),
            "uclient: every message relayed and echoed\n{out}"
        );
        assert!(out.contains("ringturn-exit=0"), "{out}");
        let stderr = self.section("stderr");
        assert!(
            !stderr.contains("warning"),
            "no warning about a key:\n{stderr}"
        );
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const REST: &str = "-u alice -W north-wind";

#[test]
fn matrix_synapse_config_relays() {
    let p = run_published("matrix", MATRIX, "198.51.100.10", "198.51.100.20", REST);
    p.assert_relays_without_warnings();
    // Sessions are logged to stdout with the REST username.
    let log = p.file("stdout.log");
    assert!(
        log.contains("allocation created") && log.contains(":alice"),
        "{log}"
    );
}

#[test]
fn jitsi_meet_config_relays_and_logs_to_syslog() {
    // A syslog socket of the test's own, named to ringturn by environment
    // (the machine's /dev/log is not the test's to read).
    let path = syslog_path("jitsi");
    let _ = std::fs::remove_file(&path);
    let syslog = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let p = run_published("jitsi", JITSI, "198.51.100.10", "198.51.100.20", REST);
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = syslog.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let _ = std::fs::remove_file(&path);
    p.assert_relays_without_warnings();
    let all = lines.join("\n");
    // LOG_USER (1) × 8 + info (6) = <14>.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<14>ringturn[") && l.contains("allocation created")),
        "session lines reach syslog as user.info:\n{all}"
    );
    assert!(
        p.file("stdout.log").trim().is_empty(),
        "with syslog nothing goes to stdout"
    );
}

#[test]
fn bigbluebutton_config_relays_with_its_own_address_as_the_only_peer() {
    // BBB allows exactly its own address as a peer: the peer runs there.
    let p = run_published("bbb", BIGBLUEBUTTON, "198.51.100.10", "198.51.100.10", REST);
    p.assert_relays_without_warnings();
    // simple-log: the file as named, with the session lines.
    let log = p.file("turnserver.log");
    assert!(log.contains("allocation deleted"), "{log}");
}

#[test]
fn nextcloud_talk_config_relays() {
    let p = run_published(
        "nextcloud",
        NEXTCLOUD,
        "198.51.100.10",
        "198.51.100.20",
        REST,
    );
    p.assert_relays_without_warnings();
}

#[test]
fn debian_shaped_config_relays_logs_dated_and_guards_binding() {
    let p = run_published(
        "debian",
        DEBIAN,
        "198.51.100.10",
        "198.51.100.20",
        "-u test -w test",
    );
    p.assert_relays_without_warnings();
    // No simple-log: coturn's dated name, lines stamped with the format.
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let log = p.file(&format!("turn_{today}.log"));
    assert!(
        log.lines()
            .any(|l| l.starts_with(&today) && l.contains("allocation created")),
        "dated file with stamped session lines:\n{log}"
    );
    // secure-stun: a Binding without credentials gets no mapped address.
    let stun = p.section("stunclient");
    assert!(
        !stun.contains("UDP reflexive addr"),
        "Binding needs credentials:\n{stun}"
    );
}

/// Issue 12: SIGHUP reads the file again while uclient relays. The live
/// allocations keep relaying (nothing lost), a user added to the file can
/// allocate, a user taken out of it cannot, and a key that cannot change
/// while running (the port range) is named in a warning.
#[test]
fn sighup_reloads_users_without_dropping_calls() {
    require_tool("turnutils_uclient");
    require_tool("turnutils_peer");
    let run = run_script(
        r#"
DIR=$(mktemp -d)
CONF=$DIR/turnserver.conf
printf 'listening-ip=198.51.100.10\nrealm=example.org\nuser=test:test\nlt-cred-mech\nmax-port=60000\n' > "$CONF"
"$RINGTURN" -c "$CONF" > "$DIR/log" 2>&1 &
RT=$!
turnutils_peer -L 198.51.100.20 -p 23480 > /dev/null 2>&1 &
PEER=$!
for i in $(seq 1 50); do grep -q started "$DIR/log" && break; sleep 0.1; done
UC="turnutils_uclient -p 3478 -l 120 -e 198.51.100.20 -r 23480"
# A call that lasts through the reload: 2 clients, 300 messages 20 ms apart.
timeout 60 $UC -u test -w test -n 300 -m 2 -z 20 198.51.100.10 > "$DIR/long.out" 2>&1 &
LONG=$!
sleep 2
printf 'listening-ip=198.51.100.10\nrealm=example.org\nuser=newbie:fresh\nlt-cred-mech\nmax-port=61000\n' > "$CONF"
kill -HUP $RT
for i in $(seq 1 50); do grep -q "configuration reloaded" "$DIR/log" && break; sleep 0.1; done
echo "=== added"
timeout 30 $UC -u newbie -w fresh -n 20 -m 1 -z 5 198.51.100.10 2>&1 | grep tot_send_msgs | tail -1
echo "=== removed"
timeout 30 $UC -u test -w test -n 20 -m 1 -z 5 198.51.100.10 2>&1 | tail -3
wait $LONG
echo "=== long"
grep tot_send_msgs "$DIR/long.out" | tail -1
kill -TERM $RT $PEER
wait $RT
echo "=== exit $?"
cat "$DIR/log"
rm -rf "$DIR"
"#,
        &[],
    );
    let out = run.transcript();
    let section = |name: &str| run.section(name);
    assert_eq!(
        uclient_totals(&section("long")),
        (600, 600),
        "the call through the reload lost nothing\n{out}"
    );
    // uclient -m 1 with a peer runs two allocations of 20 messages each.
    assert_eq!(
        uclient_totals(&section("added")),
        (40, 40),
        "the added user allocates and relays\n{out}"
    );
    assert_eq!(
        uclient_totals(&section("removed")).1,
        0,
        "the removed user relays nothing\n{out}"
    );
    assert!(out.contains("=== exit 0"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("cannot change while running") && l.contains("min-port / max-port")),
        "the port range change is named\n{out}"
    );
}

/// `log-format=json` (ringturn's, for log pipelines): every line on stdout
/// is one JSON object, and the session lines carry their fields as keys.
#[test]
fn json_log_lines_carry_the_session_fields() {
    let template = format!("{NEXTCLOUD}log-format=json\n");
    let p = run_published("json", &template, "198.51.100.10", "198.51.100.20", REST);
    p.assert_relays_without_warnings();
    let log = p.file("stdout.log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let deleted = lines
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("allocation deleted"))
        })
        .unwrap_or_else(|| panic!("no deletion line in\n{log}"));
    assert!(
        deleted["username"]
            .as_str()
            .unwrap_or("")
            .ends_with(":alice"),
        "{deleted}"
    );
    assert_eq!(deleted["realm"], "turn.example.org");
    assert!(
        deleted["sent_packets"].as_u64().unwrap_or(0) > 0,
        "{deleted}"
    );
    assert!(
        deleted["received_bytes"].as_u64().unwrap_or(0) > 0,
        "{deleted}"
    );
}
