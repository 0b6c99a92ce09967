//! The whole product as a person uses it: `ringturn` with no arguments (the
//! README's promise) serves the call page on http://127.0.0.1:8080/, and two
//! headless Chromium pages — one desktop-sized, one phone-sized — join one
//! room with "relay only" picked in the settings and call each other through
//! ringturn's TURN relay. Then: ICE restart on the live call, a third page
//! gets `full`, hanging up gives the other `bye`, and SIGTERM stops ringturn
//! within a second with a page still connected.
//!
//! `tests/signaling/browser_call.mjs` (playwright-core on Debian's Chromium)
//! runs inside `unshare --net` (only loopback: Chromium cannot gather or send
//! elsewhere, and the fixed ports cannot clash) and prints a `RESULT` line;
//! this test checks it. Screenshots go to `target/artifacts/` (`call.png`,
//! `call-mobile.png` at 390x844, `call-full.png`, `call-bye-mobile.png`).
//!
//! Needs root, Chromium (`/usr/bin/chromium` or `$CHROMIUM`), Node.js and
//! `npm ci --prefix tests/signaling`. Without Chromium or root the test says
//! so and passes, except under `CI`, where it fails; without the Node
//! packages it always fails, naming the command that installs them.

mod common;
#[path = "signaling/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The driver gives up after this long…
const DRIVER_TIMEOUT: Duration = Duration::from_secs(150);
/// …and the test kills its whole process group if it has not by then.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// One browser run at a time: two Chromiums and their servers at once on a
/// 2-core machine slow the calls until ICE prefers a TCP relay.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The embedded defaults' relay ports.
const RELAY_PORTS: std::ops::RangeInclusive<u64> = 49152..=65535;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = |what: String| {
        assert!(!support::ci(), "browser call test cannot run in CI: {what}");
        eprintln!("skipping the browser call test: {what}");
        None
    };
    if !path.exists() {
        return missing(format!("no Chromium at {}", path.display()));
    }
    if !support::netns_available() {
        return missing("`unshare --net` does not work here (needs root)".into());
    }
    Some(path)
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("artifacts")
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 1000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn two_chromium_pages_call_relay_only_through_ringturn_then_full_bye_and_sigterm() {
    // Checked first: a missing npm install fails everywhere, with the command.
    let dir = support::node_modules();
    let Some(chromium) = chromium() else {
        return;
    };
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let artifacts = artifacts();
    let workdir = std::env::temp_dir().join(format!("ringturn-call-{}", std::process::id()));
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "node"])
        .arg(dir.join("browser_call.mjs"))
        .arg("--ringturn")
        .arg(env!("CARGO_BIN_EXE_ringturn"))
        .arg("--chromium")
        .arg(&chromium)
        .arg("--artifacts")
        .arg(&artifacts)
        .arg("--workdir")
        .arg(&workdir)
        .arg("--timeout")
        .arg(DRIVER_TIMEOUT.as_secs().to_string());
    let run = support::run_bounded(cmd, TEST_TIMEOUT);
    let fail = |why: String| -> ! { panic!("{why}\n{}", run.transcript()) };
    if run.status.is_none() {
        fail(format!(
            "driver still running after {TEST_TIMEOUT:?}; killed"
        ));
    }
    let r = support::result(&run);
    if r["ok"] != Value::Bool(true) {
        fail(format!(
            "the call failed: {}",
            r["error"].as_str().unwrap_or("(no error)")
        ));
    }
    let check = |ok: bool, what: &str| {
        if !ok {
            fail(format!("{what}; result: {r:#}"));
        }
    };
    check(
        r["pageErrors"].as_array().is_some_and(Vec::is_empty),
        "the page threw",
    );

    // The ICE servers the page got: stun + turn with REST credentials.
    let ice = &r["iceServers"]["iceServers"];
    check(
        ice[0]["urls"][0] == "stun:127.0.0.1:3478",
        "a stun: URL for the TURN listener",
    );
    check(
        ice[1]["urls"][0] == "turn:127.0.0.1:3478?transport=udp"
            && ice[1]["username"].as_str().is_some_and(|u| u.contains(':'))
            && ice[1]["credential"].is_string(),
        "a turn: URL with time-limited credentials",
    );

    // Relay/relay through ringturn on both sides, mirrored, frames decoded.
    for side in ["a", "b"] {
        let s = &r["call"][side];
        check(s["pairState"] == "succeeded", "selected pair succeeded");
        check(
            s["localType"] == "relay" && s["remoteType"] == "relay",
            "relay/relay selected pair",
        );
        // Allocated over UDP or TCP: the page offers both of ringturn's
        // listeners and ICE nominates the first relay pair to check (on a
        // busy 2-core machine sometimes the TCP one).
        check(
            s["relayProtocol"] == "udp" || s["relayProtocol"] == "tcp",
            "relay allocated over ringturn's UDP or TCP listener",
        );
        check(
            s["localAddress"] == "127.0.0.1" && s["remoteAddress"] == "127.0.0.1",
            "candidates on ringturn's relay address",
        );
        for port in ["localPort", "remotePort"] {
            check(
                s[port].as_u64().is_some_and(|p| RELAY_PORTS.contains(&p)),
                "ports are ringturn relay ports",
            );
        }
        check(
            s["iceConnectionState"] == "connected" || s["iceConnectionState"] == "completed",
            "ICE connected",
        );
    }
    check(
        r["call"]["a"]["localPort"] == r["call"]["b"]["remotePort"]
            && r["call"]["b"]["localPort"] == r["call"]["a"]["remotePort"],
        "the two selected pairs mirror each other",
    );
    let frames = |k: &str, i: usize| r["call"][k][i].as_u64().unwrap_or(0);
    check(
        frames("framesAfter", 0) > frames("framesBefore", 0)
            && frames("framesAfter", 1) > frames("framesBefore", 1)
            && frames("framesBefore", 0) > 0
            && frames("framesBefore", 1) > 0,
        "framesDecoded grows on both sides",
    );
    check(
        r["call"]["aOtherJoin"] == 1 && r["call"]["bJoined"] == 1,
        "A got otherJoin, B got joined",
    );

    // ICE restart renegotiated the live call and media kept flowing.
    check(
        r["iceRestart"]["offersSentByA"].as_u64() >= Some(2)
            && r["iceRestart"]["offersReceivedByB"].as_u64() >= Some(2),
        "ICE restart sent a second offer",
    );
    check(
        r["iceRestart"]["a"]["localType"] == "relay"
            && r["iceRestart"]["b"]["localType"] == "relay",
        "still relayed after ICE restart",
    );

    // The third page got `full`; the members heard nothing of it.
    check(
        r["full"]["cEvents"] == serde_json::json!(["full"]),
        "the third page got exactly `full`",
    );
    check(
        r["full"]["stillConnected"] == true,
        "the call went on while the third page was refused",
    );

    // Hang up: leaved to A, bye to B (who waits in the room again).
    check(r["hangup"]["aPhase"] == "left", "A left after leaved");
    check(
        r["hangup"]["bPhase"] == "waiting",
        "B back to waiting after bye",
    );

    // SIGTERM with a page connected: clean exit within a second.
    check(r["stop"]["code"] == 0, "ringturn exited 0 on SIGTERM");
    check(
        r["stop"]["ms"].as_u64().is_some_and(|ms| ms < 1000),
        "ringturn exited within a second of SIGTERM",
    );
    check(
        r["stop"]["bBadge"]
            .as_str()
            .is_some_and(|b| b.contains("off") || b.contains("closed")),
        "the connected page saw signaling close",
    );

    for shot in [
        "call.png",
        "call-mobile.png",
        "call-full.png",
        "call-bye-mobile.png",
    ] {
        check(is_png(&artifacts.join(shot)), &format!("screenshot {shot}"));
    }
    let _ = std::fs::remove_dir_all(&workdir);
    eprintln!(
        "browser call ok in {:.1?}: A {}:{} <-> B {}:{}, stop in {} ms; screenshots in {}",
        run.elapsed,
        r["call"]["a"]["localAddress"],
        r["call"]["a"]["localPort"],
        r["call"]["b"]["localAddress"],
        r["call"]["b"]["localPort"],
        r["stop"]["ms"],
        artifacts.display()
    );
}

/// Issue 14: two ringturn nodes sharing rooms on one Redis, one page on
/// each, call relay-only (each through its own node's TURN); a third page
/// gets `full`; node 2 SIGKILLed gives page A `bye`; a fresh page on node 1
/// then calls A in the freed room.
#[test]
fn two_nodes_on_redis_one_page_each_call_then_a_killed_node_frees_the_room() {
    let dir = support::node_modules();
    let Some(chromium) = chromium() else {
        return;
    };
    common::process::require_tool("redis-server");
    let _one_browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let workdir = std::env::temp_dir().join(format!("ringturn-two-nodes-{}", std::process::id()));
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "node"])
        .arg(dir.join("browser_call.mjs"))
        .arg("--two-nodes")
        .arg("--ringturn")
        .arg(env!("CARGO_BIN_EXE_ringturn"))
        .arg("--chromium")
        .arg(&chromium)
        .arg("--workdir")
        .arg(&workdir)
        .arg("--timeout")
        .arg(DRIVER_TIMEOUT.as_secs().to_string());
    let run = support::run_bounded(cmd, TEST_TIMEOUT);
    let r = support::result(&run);
    let fail = |why: &str| -> ! { panic!("{why}; result: {r:#}\n{}", run.transcript()) };
    if r["ok"] != Value::Bool(true) {
        fail(r["error"].as_str().unwrap_or("the two-node call failed"));
    }
    let (a, b) = (&r["call"]["a"], &r["call"]["b"]);
    if a["localAddress"] != "127.0.0.1" || b["localAddress"] != "127.0.0.2" {
        fail("each page relays through its own node's TURN");
    }
    if a["remoteAddress"] != "127.0.0.2" || b["remoteAddress"] != "127.0.0.1" {
        fail("the media crosses from one node's relay to the other's");
    }
    if r["call"]["aOtherJoin"] != 1 {
        fail("A heard of B's join on the other node once");
    }
    if !r["full"]["cEvents"]
        .as_array()
        .is_some_and(|e| e.iter().any(|x| x == "full"))
    {
        fail("the third page got full");
    }
    if !r["nodeDeath"]["byeAfterMs"].is_u64() || r["fresh"]["d"]["localType"] != "relay" {
        fail("bye after the SIGKILL, and a fresh call");
    }
    eprintln!(
        "two nodes: bye {} ms after SIGKILL",
        r["nodeDeath"]["byeAfterMs"]
    );
}
