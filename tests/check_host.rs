//! `ringturn --check-host` as a user runs it: on this machine, with the
//! embedded defaults and with each tuning config. Whatever the machine, it
//! prints the io_uring, buffer, open-file and core lines in the
//! `ok|warn|fix: <what> — <what to do>` form and exits 0 or 1, never crashes.

use std::path::Path;
use std::process::{Command, Output};

fn check_host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringturn"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--check-host")
        .args(args)
        .output()
        .expect("ringturn runs")
}

fn assert_report(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{what}: exit {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for line in &lines {
        let level = line.split(':').next().unwrap_or_default();
        assert!(
            matches!(level, "ok" | "warn" | "fix"),
            "{what}: line without a level: {line}"
        );
        assert!(line.contains(" — "), "{what}: line without advice: {line}");
    }
    for word in [
        "io_uring",
        "receive buffers",
        "send buffers",
        "open files",
        "cores",
        "UDP GSO",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(word)),
            "{what}: no {word} line in\n{stdout}"
        );
    }
    let fixes = lines.iter().any(|l| l.starts_with("fix:"));
    assert_eq!(
        code,
        Some(i32::from(fixes)),
        "{what}: exit code must be 1 exactly when a line says fix\n{stdout}"
    );
}

#[test]
fn check_host_reports_this_machine() {
    let out = check_host(&[]);
    assert_report(&out, "embedded defaults");
}

#[test]
fn check_host_with_each_tuning_config() {
    for name in ["small-vm.conf", "16-core.conf", "64-core.conf"] {
        let path = Path::new("tuning").join(name);
        let out = check_host(&["-c", path.to_str().expect("utf-8 path")]);
        assert_report(&out, name);
    }
}

#[test]
fn check_host_after_an_override_is_still_recognized() {
    // `--check-host` after a `--key` override lands in clap's trailing
    // options; `Cli::normalized` must recover it rather than treat it as a key.
    let out = Command::new(env!("CARGO_BIN_EXE_ringturn"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-c", "tuning/small-vm.conf", "--workers=1", "--check-host"])
        .output()
        .expect("ringturn runs");
    assert_report(&out, "override then --check-host");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 worker"));
}

#[test]
fn check_host_with_a_bad_config_fails_like_check_config() {
    let out = check_host(&["--listening-port=notaport"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listening-port"));
}

/// Issue 11: each `xdp-interface` gets its own lines; one that is not there
/// is a `fix` (ringturn would not start), so the exit code is 1.
#[test]
fn check_host_reports_each_xdp_interface() {
    let out = check_host(&[
        "--listening-ip=127.0.0.1",
        "--xdp-interface=nosuch0",
        "--xdp-interface=lo",
    ]);
    assert_report(&out, "xdp-interface");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("fix: XDP nosuch0: no such interface")),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.contains("XDP lo:")), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}
