//! The process-group guard every interop test relies on: a run past its limit
//! is killed with everything it started, and a finished run reports its exit.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::run_bounded;

#[test]
fn a_run_past_its_limit_is_killed_with_its_whole_group() {
    let pidfile = std::env::temp_dir().join(format!("rt-guard-{}", std::process::id()));
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!(
        "sleep 60 & echo $! > {}; sleep 60",
        pidfile.display()
    ));
    let run = run_bounded(cmd, Duration::from_millis(500));
    assert!(
        run.status.is_none(),
        "still running at the limit: {}",
        run.transcript()
    );
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    let grandchild = std::fs::read_to_string(&pidfile).unwrap();
    let _ = std::fs::remove_file(&pidfile);
    // Killed, and (its parent gone) reaped by init: no live process with that pid and our command.
    std::thread::sleep(Duration::from_millis(200));
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", grandchild.trim())).unwrap_or_default();
    let alive = stat
        .rsplit_once(')')
        .is_some_and(|(head, rest)| head.contains("(sleep") && !rest.trim_start().starts_with('Z'));
    assert!(!alive, "the background sleep survived: {stat}");
}

#[test]
fn a_finished_run_reports_its_exit_and_output() {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg("echo out; echo err >&2; exit 3");
    let run = run_bounded(cmd, Duration::from_secs(10));
    assert_eq!(run.status.and_then(|s| s.code()), Some(3));
    assert_eq!(
        (run.stdout.as_str(), run.stderr.as_str()),
        ("out\n", "err\n")
    );
}
