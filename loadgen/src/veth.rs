//! `compare --topology veth` (issue 11): the servers in one network
//! namespace, loadgen's clients and echo peers in another, joined by a veth
//! pair — the topology where ringturn's XDP fast path can run (TESTING.md).
//! loadgen runs in its own private namespace already (the `--netns`
//! re-exec); this adds the server's namespace (held by a sleeping child)
//! and the pair. Addresses are documentation ranges that route nowhere.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
/// The server's end of the pair (where `xdp-interface` attaches).
pub const SERVER_IF: &str = "vs";
const CLIENT_IF: &str = "vc";

pub struct Veth {
    holder: Child,
    object: PathBuf,
    /// `kernel.bpf_stats_enabled` before we turned it on.
    old_stats: Option<String>,
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !st.success() {
        bail!("{shown} failed: {st}");
    }
    Ok(())
}

fn netns(pid: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

impl Veth {
    /// Builds the topology; needs root, iproute2, ethtool and the XDP
    /// program built into this binary's ringturn library.
    pub fn create() -> Result<Self> {
        let Some(program) = ringturn::xdp::PROGRAM else {
            bail!("--topology veth needs the XDP program (clang and libbpf-dev when building)");
        };
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "sleep", "86400"]);
        crate::net::die_with_parent(&mut cmd);
        let holder = cmd.spawn().context("cannot start unshare --net")?;
        let pid = holder.id().to_string();
        for _ in 0..200 {
            if netns(&pid).is_some_and(|n| Some(n) != netns("self")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let object =
            std::env::temp_dir().join(format!("loadgen-veth-{}.bpf.o", std::process::id()));
        std::fs::write(&object, program)?;
        let mut veth = Self {
            holder,
            object,
            old_stats: std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").ok(),
        };
        veth.setup(&pid)?;
        Ok(veth)
    }

    fn setup(&mut self, pid: &str) -> Result<()> {
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        let server =
            |args: &[&str]| run(Command::new("nsenter").args(["-t", pid, "-n"]).args(args));
        ip(&[
            "link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF,
        ])?;
        ip(&["link", "set", SERVER_IF, "netns", pid])?;
        server(&["ip", "link", "set", "lo", "up"])?;
        server(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            SERVER_IF,
        ])?;
        server(&["ip", "link", "set", SERVER_IF, "up"])?;
        // The program's next-hop lookup answers only where forwarding is on.
        server(&[
            "sh",
            "-c",
            &format!("echo 1 > /proc/sys/net/ipv4/conf/{SERVER_IF}/forwarding"),
        ])?;
        for a in [CLIENT_IP, PEER_IP] {
            ip(&["addr", "add", &format!("{a}/24"), "dev", CLIENT_IF])?;
        }
        ip(&["link", "set", CLIENT_IF, "up"])?;
        // As behind a NIC: full checksums from our senders, and an XDP program
        // on our end so frames the server's XDP sends back are received (the
        // object passes everything here: it serves no interface of ours).
        run(Command::new("ethtool").args(["-K", CLIENT_IF, "tx", "off"]))
            .context("ethtool is needed for --topology veth")?;
        let object = self.object.to_string_lossy().into_owned();
        ip(&[
            "link", "set", "dev", CLIENT_IF, "xdp", "obj", &object, "sec", "xdp",
        ])?;
        std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1")
            .context("cannot enable kernel.bpf_stats_enabled")?;
        Ok(())
    }

    /// The command prefix that runs a server in the server's namespace.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.holder.id().to_string(),
            "-n".into(),
        ]
    }

    /// The kernel's count of nanoseconds spent in the XDP program attached to
    /// the server's end (0 when none is attached).
    pub fn program_ns(&self) -> u64 {
        let out = Command::new("nsenter")
            .args([
                "-t",
                &self.holder.id().to_string(),
                "-n",
                "ip",
                "-d",
                "link",
                "show",
                SERVER_IF,
            ])
            .output();
        let Ok(out) = out else { return 0 };
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .split("prog/xdp id ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u32>().ok());
        id.and_then(ringturn::xdp::program_stats)
            .map_or(0, |(t, _)| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        if let Some(old) = &self.old_stats {
            let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", old.trim());
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_file(&self.object);
    }
}
