//! Child processes for interop tests: each runs in its own process group, and
//! the guard kills the whole group on drop (panics included).
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct GroupGuard {
    child: Option<Child>,
}

impl GroupGuard {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Self { child: Some(child) }
    }

    /// Waits up to `limit` for the child to finish; kills the group after that.
    pub fn wait_output(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        let mut child = self.child.take().expect("child");
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    kill_group(child.id());
                    break;
                }
            }
        }
        let out = child.wait_with_output().expect("output");
        // Anything the script left running in its group goes too.
        kill_group_silently(out.status.code());
        out
    }
}

/// Kills our child's whole process group (kill(1) with a negative PID).
fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pid}"))
        .stderr(Stdio::null())
        .status();
}

fn kill_group_silently(_code: Option<i32>) {}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id());
            let _ = child.wait();
        }
    }
}

/// Runs `script` with bash inside a fresh network namespace holding only
/// loopback (TESTING.md), bounded by `limit`.
pub fn run_in_netns(script: &str, envs: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg("bash")
        .arg("-c")
        .arg(format!("set -u\nip link set lo up\n{script}"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    GroupGuard::spawn(cmd).wait_output(limit)
}

pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed: the interop tests need it (apt-get install coturn chromium; see .ci/run)");
}
