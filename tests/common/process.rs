//! Child processes for interop tests: each runs in its own process group,
//! bounded in time, and the whole group is killed on every path (drop
//! included). One implementation for every test that starts processes.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A child leading its own process group: the group is SIGKILLed and the
/// leader reaped on drop, whatever path the test leaves by.
pub struct GroupGuard {
    child: Child,
    reaped: bool,
}

impl GroupGuard {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Self {
            child,
            reaped: false,
        }
    }

    /// The leader's pid (the group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the group (kill(1) with the negated group id), then reaps the
    /// leader. Only while the leader is unreaped is its pid — the group id —
    /// sure to be still ours.
    pub fn kill_and_reap(&mut self) -> std::io::Result<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let status = self.child.wait();
        self.reaped = true;
        status
    }

    /// Whether the leader has exited, without reaping it: an exited, unreaped
    /// child is a zombie (state `Z` in /proc), which keeps its pid ours.
    pub fn leader_exited(&self) -> bool {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The state follows the parenthesised command name.
        stat.rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill_and_reap();
        }
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// How a bounded child run ended.
pub struct Run {
    /// `None`: still running at the limit, killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// What a script printed between its `=== name` line and the next
    /// `===` line (empty when there is no such section).
    pub fn section(&self, name: &str) -> String {
        self.stdout
            .split(&format!("=== {name}\n"))
            .nth(1)
            .and_then(|s| s.split("\n===").next())
            .unwrap_or_default()
            .to_owned()
    }

    pub fn transcript(&self) -> String {
        format!(
            "status {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` in its own process group for at most `limit`; the group is
/// killed afterwards in every case (so nothing it started outlives the test).
pub fn run_bounded(cmd: Command, limit: Duration) -> Run {
    let started = Instant::now();
    let mut guard = GroupGuard::spawn(cmd);
    let out = read_all(guard.child.stdout.take().expect("stdout"));
    let err = read_all(guard.child.stderr.take().expect("stderr"));
    let mut exited = false;
    while started.elapsed() < limit {
        if guard.leader_exited() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = guard.kill_and_reap().expect("reap");
    Run {
        status: exited.then_some(status),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// Runs `script` with bash inside a fresh network namespace holding only
/// loopback (TESTING.md), bounded by `limit`.
pub fn run_in_netns(script: &str, envs: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg("bash")
        .arg("-c")
        .arg(format!("set -u\nip link set lo up\n{script}"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run_bounded(cmd, limit)
}

pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed: the interop tests need it (apt-get install coturn chromium; see .ci/run)");
}

/// turnutils_uclient's totals from its output: the last
/// "start_mclient: tot_send_msgs=400, tot_recv_msgs=400" line (the
/// per-interval lines carry byte counts after it); (0, 0) when absent.
pub fn uclient_totals(stdout: &str) -> (u64, u64) {
    stdout
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.split("tot_send_msgs=").nth(1)?;
            let (sent, rest) = rest.split_once(", tot_recv_msgs=")?;
            if rest.contains(',') {
                return None;
            }
            Some((sent.trim().parse().ok()?, rest.trim().parse().ok()?))
        })
        .unwrap_or((0, 0))
}
