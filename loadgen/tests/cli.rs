//! The `ringturn-loadgen` binary as a user runs it, against an in-process
//! ringturn: exit status, the table, `--json` and `--report`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringturn-loadgen"))
        .args(args)
        .output()
        .expect("run ringturn-loadgen")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn relay_writes_table_json_and_reports() {
    let s = common::ringturn(1, common::port_base(0));
    let addr = s.addr.to_string();
    let json = tmp("relay.json");
    let html = tmp("relay.html");
    let out = loadgen(&[
        "relay",
        "-s",
        &addr,
        "-u",
        "alice",
        "-w",
        "secret",
        "-c",
        "4",
        "--pps",
        "100",
        "-d",
        "0.6",
        "--warmup",
        "0.2",
        "--json",
        json.to_str().expect("path"),
        "--report",
        html.to_str().expect("path"),
        "-q",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("round-trip latency"), "{stdout}");
    assert!(stdout.contains("lost / duplicated / reordered"), "{stdout}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    let n = |k: &str| v["counts"][k].as_u64().expect(k);
    assert!(n("sent") > 0);
    assert_eq!(n("sent"), n("received") + n("lost"));
    assert_eq!(n("lost"), 0);
    assert_eq!(n("duplicated"), 0);
    assert!(v["latency_us"]["p99"].as_f64().is_some());
    assert!(!v["timeline"].as_array().expect("timeline").is_empty());
    assert_eq!(v["mode"], "relay");

    let page = std::fs::read_to_string(&html).expect("html written");
    assert!(page.starts_with("<!doctype html>"));
    assert_eq!(
        page.matches("<svg").count(),
        2,
        "latency and throughput charts"
    );
    assert!(page.contains("Throughput over time") && page.contains("latency by percentile"));
    assert!(!page.contains("NaN"));

    let svg = tmp("binding.svg");
    let out = loadgen(&[
        "binding",
        "-s",
        &addr,
        "-c",
        "2",
        "--max",
        "--window",
        "2",
        "-d",
        "0.3",
        "--warmup",
        "0.1",
        "--report",
        svg.to_str().expect("path"),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg") && !text.contains("NaN"));
}

#[test]
fn failed_setup_exits_non_zero_and_says_why() {
    let s = common::ringturn(1, common::port_base(1));
    let out = loadgen(&[
        "relay",
        "-s",
        &s.addr.to_string(),
        "-u",
        "alice",
        "-w",
        "wrong",
        "-c",
        "2",
        "-d",
        "0.2",
        "-q",
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("401"), "{stdout}");
}

#[test]
fn refuses_targets_off_loopback() {
    for target in ["10.1.2.3:3478", "192.0.2.1:3478"] {
        let out = loadgen(&["relay", "-s", target, "-d", "0.2", "-q"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback"), "{err}");
    }
    let out = loadgen(&["relay", "--peer-ip", "10.0.0.2", "-q"]);
    assert!(!out.status.success());
}

#[test]
fn help_lists_every_mode() {
    let out = loadgen(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for mode in ["relay", "pair", "allocate", "binding", "compare"] {
        assert!(text.contains(mode), "{mode} missing from --help:\n{text}");
    }
    let out = loadgen(&["relay", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--pps",
        "--max",
        "--size-mix",
        "--indications",
        "--secret",
        "--server-pid",
        "--cpus",
        "--threads",
        "--json",
        "--report",
        "--count",
        "--warmup",
        "--transport",
        "--tls-ca",
        "--tls-insecure",
        "--tls-server-name",
        "--tls-version",
    ] {
        assert!(text.contains(flag), "{flag} missing from relay --help");
    }
    assert!(
        text.contains("benchmarks on loopback only"),
        "--tls-insecure says what it is for:\n{text}"
    );
    let out = loadgen(&["compare", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--transport") && text.contains("--tls-version"));
}

#[test]
fn tls_needs_a_trust_decision_and_tls_flags_need_tls() {
    let out = loadgen(&["relay", "--transport", "tls", "-d", "0.2", "-q"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-ca") && err.contains("--tls-insecure"),
        "{err}"
    );
    let out = loadgen(&["relay", "--tls-insecure", "-d", "0.2", "-q"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--transport tls"), "{err}");
}

#[test]
fn tcp_to_a_server_without_tcp_fails_setup_and_says_why() {
    // Nothing listens on this TCP port: every client's connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = loadgen(&[
        "relay",
        "-s",
        &format!("127.0.0.1:{port}"),
        "--transport",
        "tcp",
        "-c",
        "2",
        "-d",
        "0.2",
        "--setup-timeout",
        "5",
        "-q",
    ]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tcp connection lost"), "{stdout}");
    assert!(stdout.contains("refused"), "{stdout}");
}
