//! `compare`: ringturn and coturn side by side. Each server is started with
//! equivalent settings, pinned with taskset to the same core (loadgen's
//! threads pinned to another), the same loads run against each, rounds
//! interleaved A B A B, and ratios printed with their median and spread.
//!
//! This file holds the arguments, the scenarios and the servers' equivalent
//! command lines; `rounds` runs the comparison, `summary` makes its rows,
//! `render` writes the table, Markdown and HTML.

mod render;
mod rounds;
mod summary;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::{LoadConfig, Mode, Rate, SizeMix, Transport};
use crate::tls::{CertFiles, TlsSettings, TlsVersion};

pub use rounds::{machine, main, run, Comparison, Machine, Runs};
pub use summary::{median, summarize, Row};

/// Set in the re-executed child that runs inside the private network namespace.
pub const NETNS_ENV: &str = "RINGTURN_LOADGEN_IN_NETNS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// relay, 100-byte ChannelData, --max: packets per server CPU-second.
    AudioMax,
    /// relay, 1,200-byte ChannelData, --max.
    VideoMax,
    /// relay, audio flows (50 pps × 100 B) at --offered-pps: loss and p99 at the same load.
    AudioLoad,
    /// relay, video bursts (5 × 1,200 B per frame, 30 fps) at --offered-pps.
    VideoLoad,
    /// pair (relay to relay), 100 B, --max.
    PairMax,
    /// Allocate / Refresh(0) cycles: allocations per second.
    Allocate,
    /// STUN Binding, --max.
    BindingMax,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::AudioMax => "audio-max",
            Scenario::VideoMax => "video-max",
            Scenario::AudioLoad => "audio-load",
            Scenario::VideoLoad => "video-load",
            Scenario::PairMax => "pair-max",
            Scenario::Allocate => "allocate",
            Scenario::BindingMax => "binding-max",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The ringturn binary.
    #[arg(long, default_value = "target/release/ringturn")]
    pub ringturn: PathBuf,
    /// coturn's server binary.
    #[arg(long, default_value = "turnserver")]
    pub turnserver: String,
    /// Rounds; each round runs every scenario against ringturn, then coturn.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The core both servers are pinned to.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// The core loadgen's threads are pinned to.
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,
    /// Measured seconds per scenario and server.
    #[arg(short, long, default_value_t = 5.0)]
    pub duration: f64,
    /// Warm-up seconds per scenario.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "audio-max,video-max,audio-load,pair-max,allocate"
    )]
    pub scenarios: Vec<Scenario>,
    /// Client-to-server transport for every scenario: udp, tcp, or tls (a self-signed
    /// certificate is made for the run and given to both servers as cert=/pkey=, with
    /// tls-listening-port=). Peers stay UDP. A server that does not serve it is reported.
    #[arg(long, value_enum, default_value_t = Transport::Udp)]
    pub transport: Transport,
    /// TLS versions loadgen offers with --transport tls: any (1.3 and 1.2), 1.2 or 1.3.
    #[arg(long, value_enum, default_value_t = TlsVersion::Any)]
    pub tls_version: TlsVersion,
    /// Clients in the --max scenarios.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Unanswered packets per client in the --max scenarios.
    #[arg(long, default_value_t = 16)]
    pub window: u32,
    /// Packets per second the clients send in the *-load scenarios (each is echoed: the
    /// server relays twice as many).
    #[arg(long, default_value_t = 20_000)]
    pub offered_pps: u32,
    /// Concurrent clients in the allocate scenario.
    #[arg(long, default_value_t = 64)]
    pub alloc_clients: usize,
    /// Run inside a private network namespace holding only loopback (re-executes itself
    /// under `unshare --net`; needs root). Fixed ports are then safe.
    #[arg(long)]
    pub netns: bool,
    /// loopback, or veth: the servers in a namespace of their own behind a veth pair
    /// (198.51.100.1; clients .2, peers .3), and ringturn with `xdp-interface` as a
    /// third server, its XDP program's kernel time counted as its CPU. Needs root,
    /// ethtool and the program built.
    #[arg(long, value_enum, default_value = "loopback")]
    pub topology: Topology,
    /// An extra argument for ringturn (repeatable), e.g. --ringturn-arg=--io-backend=batch.
    #[arg(long, allow_hyphen_values = true)]
    pub ringturn_arg: Vec<String>,
    /// An extra argument for coturn (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    pub coturn_arg: Vec<String>,
    /// Clients and echo peers send with UDP GSO (the same for both servers).
    #[arg(long)]
    pub gso: bool,
    /// Only this server (for a quick look at one side).
    #[arg(long, value_enum)]
    pub only: Option<ServerKind>,
    /// Write every run's report and the summary as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an HTML report: the ratio table and each scenario's curves.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the summary as a Markdown table (for BENCHMARKS.md).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// No progress lines.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    Ringturn,
    Coturn,
    /// ringturn with its XDP fast path on the veth pair (`--topology veth`).
    RingturnXdp,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Ringturn => "ringturn",
            ServerKind::Coturn => "coturn",
            ServerKind::RingturnXdp => "ringturn-xdp",
        }
    }
}

/// Where the servers and the clients are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// Everything on loopback.
    Loopback,
    /// Servers in their own network namespace behind a veth pair (implies
    /// --netns; root): ringturn with its XDP fast path runs as a third server.
    Veth,
}

const USER: &str = "test";
const PASSWORD: &str = "test";
const REALM: &str = "example.org";

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ports {
    pub listen: u16,
    /// TURN over TLS (`tls-listening-port`), used with `--transport tls`.
    pub tls: u16,
    pub min: u16,
    pub max: u16,
}

impl Ports {
    /// Where the clients connect for `transport` on `ip`.
    pub fn server(&self, ip: Ipv4Addr, transport: Transport) -> SocketAddr {
        let port = match transport {
            Transport::Tls => self.tls,
            Transport::Udp | Transport::Tcp => self.listen,
        };
        SocketAddr::from((ip, port))
    }
}

/// Equivalent command lines for the two servers (TESTING.md's coturn flags).
/// With `--transport tls` both get the same certificate and key through
/// coturn's option names (`cert`, `pkey`, `tls-listening-port`), which
/// ringturn accepts too. Both serve TCP on the listening port by default.
pub fn server_argv(
    kind: ServerKind,
    args: &CompareArgs,
    ports: Ports,
    cert: Option<&CertFiles>,
) -> Vec<String> {
    let tls: Vec<String> = match (args.transport, cert) {
        (Transport::Tls, Some(c)) => vec![
            format!("--tls-listening-port={}", ports.tls),
            format!("--cert={}", c.cert.display()),
            format!("--pkey={}", c.key.display()),
        ],
        _ => Vec::new(),
    };
    let ip = args.server_ip();
    let common = [
        format!("--listening-ip={ip}"),
        format!("--listening-port={}", ports.listen),
        format!("--relay-ip={ip}"),
        format!("--min-port={}", ports.min),
        format!("--max-port={}", ports.max),
        "--lt-cred-mech".to_string(),
        format!("--user={USER}:{PASSWORD}"),
        format!("--realm={REALM}"),
        "--allow-loopback-peers".to_string(),
    ];
    match kind {
        ServerKind::Ringturn | ServerKind::RingturnXdp => {
            let mut v = vec![args.ringturn.display().to_string()];
            v.extend(common);
            v.push("--workers=1".into());
            v.push(format!("--cpu-affinity={}", args.server_cpu));
            v.extend(tls);
            if kind == ServerKind::RingturnXdp {
                v.push(format!("--xdp-interface={}", crate::veth::SERVER_IF));
            }
            v.extend(args.ringturn_arg.iter().cloned());
            v
        }
        ServerKind::Coturn => {
            let mut v = vec![args.turnserver.clone(), "-n".into()];
            v.extend(common);
            if tls.is_empty() {
                v.push("--no-tls".into());
            }
            v.extend(tls);
            v.extend(
                [
                    "--no-dtls",
                    "--no-cli",
                    "--log-file=stdout",
                    // One relay thread, like ringturn's one worker: both run on one core.
                    "--relay-threads=1",
                ]
                .map(String::from),
            );
            v.extend(args.coturn_arg.iter().cloned());
            v
        }
    }
}

impl CompareArgs {
    /// The servers' address.
    pub fn server_ip(&self) -> Ipv4Addr {
        match self.topology {
            Topology::Loopback => Ipv4Addr::LOCALHOST,
            Topology::Veth => crate::veth::SERVER_IP,
        }
    }

    /// The load for `scenario` against a server at `server`.
    pub fn scenario_config(
        &self,
        scenario: Scenario,
        server: SocketAddr,
        pid: u32,
        label: &str,
        cert: Option<&CertFiles>,
    ) -> Result<LoadConfig> {
        let mode = match scenario {
            Scenario::PairMax => Mode::Pair,
            Scenario::Allocate => Mode::Allocate,
            Scenario::BindingMax => Mode::Binding,
            _ => Mode::Relay,
        };
        let mut c = LoadConfig::new(mode, server, USER, PASSWORD);
        c.threads = 1;
        c.gso = self.gso;
        c.cpus = vec![self.client_cpu];
        c.duration = Duration::from_secs_f64(self.duration.clamp(0.1, 3600.0));
        c.warmup = Duration::from_secs_f64(self.warmup.clamp(0.0, 3600.0));
        c.drain = Duration::from_millis(500);
        c.server_pid = Some(pid);
        c.progress = !self.quiet;
        c.label = match self.transport {
            Transport::Udp => format!("{label} · {}", scenario.name()),
            t => format!("{label} · {} · {}", scenario.name(), t.name()),
        };
        c.transport = self.transport;
        c.tls = self.tls_settings(cert);
        if self.topology == Topology::Veth {
            c.client_ips = vec![crate::veth::CLIENT_IP];
            c.peer_ip = crate::veth::PEER_IP;
        }
        // A server that takes connections but never answers must not hold the run for long.
        c.setup_timeout = Duration::from_secs(20);
        c.clients = self.clients;
        c.rate = Rate::Max {
            window: self.window,
        };
        match scenario {
            Scenario::AudioMax | Scenario::PairMax | Scenario::BindingMax => {
                c.size = SizeMix::Fixed(100)
            }
            Scenario::VideoMax => c.size = SizeMix::Fixed(1200),
            Scenario::AudioLoad => {
                c.size = SizeMix::Audio;
                c.rate = Rate::Pps(crate::config::AUDIO_PPS);
                c.clients = (self.offered_pps as usize).div_ceil(50).max(1);
            }
            Scenario::VideoLoad => {
                c.size = SizeMix::Video;
                c.rate = Rate::Pps(crate::config::VIDEO_DEFAULT_PPS);
                c.clients = (self.offered_pps as usize).div_ceil(150).max(1);
            }
            Scenario::Allocate => {
                c.clients = self.alloc_clients;
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// loadgen trusts exactly the certificate made for the run.
    pub fn tls_settings(&self, cert: Option<&CertFiles>) -> TlsSettings {
        TlsSettings {
            ca: cert.map(|c| c.cert.clone()),
            insecure: false,
            server_name: None,
            version: self.tls_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_servers_get_the_same_settings() {
        let args = CompareArgs {
            ringturn: "rt".into(),
            turnserver: "turnserver".into(),
            rounds: 1,
            server_cpu: 0,
            client_cpu: 1,
            duration: 1.0,
            warmup: 0.0,
            scenarios: vec![Scenario::AudioMax],
            clients: 4,
            window: 4,
            transport: Transport::Tls,
            tls_version: TlsVersion::Any,
            offered_pps: 1000,
            alloc_clients: 4,
            netns: false,
            topology: Topology::Loopback,
            ringturn_arg: vec![],
            coturn_arg: vec![],
            gso: false,
            only: None,
            json: None,
            report: None,
            markdown: None,
            quiet: true,
        };
        let ports = Ports {
            listen: 3478,
            tls: 5349,
            min: 49152,
            max: 65535,
        };
        let cert = CertFiles {
            cert: "/tmp/c.pem".into(),
            key: "/tmp/k.pem".into(),
        };
        let rt = server_argv(ServerKind::Ringturn, &args, ports, Some(&cert));
        let ct = server_argv(ServerKind::Coturn, &args, ports, Some(&cert));
        for flag in [
            "--allow-loopback-peers",
            "--lt-cred-mech",
            "--user=test:test",
            "--min-port=49152",
            "--listening-port=3478",
            "--tls-listening-port=5349",
            "--cert=/tmp/c.pem",
            "--pkey=/tmp/k.pem",
        ] {
            assert!(rt.iter().any(|a| a == flag), "ringturn lacks {flag}");
            assert!(ct.iter().any(|a| a == flag), "coturn lacks {flag}");
        }
        assert!(
            !ct.iter().any(|a| a == "--no-tls"),
            "coturn must serve TLS: {ct:?}"
        );
        assert_eq!(
            ports.server(Ipv4Addr::LOCALHOST, Transport::Tls).port(),
            5349
        );

        // --topology veth: the servers on the veth end's address, the fast
        // path's ringturn with xdp-interface, the clients and peers behind.
        let veth = CompareArgs {
            topology: Topology::Veth,
            transport: Transport::Udp,
            ..args.clone()
        };
        let xdp = server_argv(ServerKind::RingturnXdp, &veth, ports, None);
        let plain = server_argv(ServerKind::Ringturn, &veth, ports, None);
        let co = server_argv(ServerKind::Coturn, &veth, ports, None);
        for argv in [&xdp, &plain, &co] {
            assert!(
                argv.iter().any(|a| a == "--listening-ip=198.51.100.1"),
                "{argv:?}"
            );
            assert!(
                argv.iter().any(|a| a == "--relay-ip=198.51.100.1"),
                "{argv:?}"
            );
        }
        assert!(xdp.iter().any(|a| a == "--xdp-interface=vs"));
        assert!(!plain.iter().any(|a| a.starts_with("--xdp-interface")));
        let c = veth
            .scenario_config(
                Scenario::AudioLoad,
                "198.51.100.1:3478".parse().unwrap(),
                1,
                "x",
                None,
            )
            .unwrap();
        assert_eq!(c.client_ips, vec![crate::veth::CLIENT_IP]);
        assert_eq!(c.peer_ip, crate::veth::PEER_IP);
        let c = args
            .scenario_config(
                Scenario::AudioLoad,
                "127.0.0.1:5349".parse().unwrap(),
                1,
                "x",
                Some(&cert),
            )
            .unwrap();
        assert_eq!(c.clients, 20);
        assert_eq!(c.cpus, vec![1]);
        assert_eq!(c.transport, Transport::Tls);
        assert_eq!(
            c.tls.ca.as_deref(),
            Some(std::path::Path::new("/tmp/c.pem"))
        );
        let udp = CompareArgs {
            transport: Transport::Udp,
            ..args
        };
        let ct = server_argv(ServerKind::Coturn, &udp, ports, None);
        assert!(ct.iter().any(|a| a == "--no-tls"));
        assert!(!ct.iter().any(|a| a.starts_with("--cert")));
    }
}
