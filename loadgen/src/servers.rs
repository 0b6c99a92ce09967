//! Server processes that `compare` starts: pinned with taskset, logged to a
//! file, waited for until they answer STUN, and always killed by PID — when
//! stopped, when dropped (errors and panics included), and when loadgen
//! itself dies (parent-death signal).

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use ringturn::stun::{Class, Message, MessageType, MessageWriter, Method, TransactionId};

pub struct ServerProcess {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    pub command: Vec<String>,
}

impl ServerProcess {
    /// Starts `argv` pinned to `cpu` (taskset execs the server, so the PID is
    /// the server's), after `prefix` (e.g. nsenter into the servers' network
    /// namespace, which execs too).
    pub fn start(
        name: &str,
        prefix: &[String],
        argv: &[String],
        cpu: Option<usize>,
        log: &Path,
    ) -> Result<Self> {
        let Some((program, args)) = argv.split_first() else {
            bail!("empty command for {name}");
        };
        let mut full: Vec<String> = prefix.to_vec();
        if let Some(cpu) = cpu {
            full.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        full.push(program.clone());
        full.extend(args.iter().cloned());
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(full.first().map_or("taskset", String::as_str));
        cmd.args(full.iter().skip(1))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        crate::net::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {}", full.join(" ")))?;
        Ok(Self {
            name: name.into(),
            child: Some(child),
            log: log.to_path_buf(),
            command: full,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits until the server answers a STUN Binding on `addr`.
    pub fn wait_ready(&mut self, addr: SocketAddr, limit: Duration) -> Result<()> {
        let sock = UdpSocket::bind(if addr.ip().is_loopback() {
            "127.0.0.1:0"
        } else {
            "0.0.0.0:0"
        })?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let deadline = Instant::now() + limit;
        let tid = TransactionId(*b"loadgenready");
        let mut req = [0u8; 64];
        let n = MessageWriter::new(
            &mut req,
            MessageType::new(Method::BINDING, Class::Request),
            tid,
        )
        .map(MessageWriter::finish)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!(
                        "{} exited ({status}) before it answered; its log {}:\n{}",
                        self.name,
                        self.log.display(),
                        tail(&self.log)
                    );
                }
            }
            let _ = sock.send_to(&req[..n], addr);
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                if Message::parse(&buf[..len]).is_ok_and(|m| m.transaction_id() == tid) {
                    return Ok(());
                }
            }
            if crate::net::interrupted() {
                bail!("interrupted");
            }
        }
        bail!(
            "{} did not answer on {addr} within {} s; its log {}:\n{}",
            self.name,
            limit.as_secs(),
            self.log.display(),
            tail(&self.log)
        )
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; always reaped.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        crate::net::signal_pid(child.id(), false);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::net::signal_pid(child.id(), true);
        let _ = child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_millis(1500));
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Whether `name` is an executable on PATH (or a path that exists).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    })
}
