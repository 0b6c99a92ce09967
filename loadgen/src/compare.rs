//! `compare`: ringturn and coturn side by side. Each server is started with
//! equivalent settings, pinned with taskset to the same core (loadgen's
//! threads pinned to another), the same loads run against each, rounds
//! interleaved A B A B, and ratios printed with their median and spread.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::{LoadConfig, Mode, Rate, SizeMix, Transport};
use crate::report::{self, Report};
use crate::servers::{find_program, tail, ServerProcess};
use crate::tls::{CertFiles, TlsSettings, TlsVersion};

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

/// One summary row: a metric of a scenario, both servers' per-round values.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub metric: String,
    pub higher_is_better: bool,
    pub ringturn: Vec<f64>,
    pub coturn: Vec<f64>,
    pub ringturn_median: Option<f64>,
    pub coturn_median: Option<f64>,
    /// ringturn / coturn per round (rounds where coturn's value is 0 are left out).
    pub ratios: Vec<f64>,
    pub ratio_median: Option<f64>,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
}

pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

impl Row {
    fn new(scenario: Scenario, metric: &str, higher: bool, rt: Vec<f64>, ct: Vec<f64>) -> Self {
        let ratios: Vec<f64> = rt
            .iter()
            .zip(&ct)
            .filter(|(_, c)| **c > 0.0)
            .map(|(r, c)| r / c)
            .collect();
        Self {
            scenario: scenario.name(),
            metric: metric.into(),
            higher_is_better: higher,
            ringturn_median: median(&rt),
            coturn_median: median(&ct),
            ratio_median: median(&ratios),
            ratio_min: ratios.iter().copied().reduce(f64::min),
            ratio_max: ratios.iter().copied().reduce(f64::max),
            ratios,
            ringturn: rt,
            coturn: ct,
        }
    }
}

/// Every run of one scenario against one server.
#[derive(Debug, Clone, Serialize)]
pub struct Runs {
    pub scenario: Scenario,
    pub server: ServerKind,
    pub reports: Vec<Report>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub command: String,
    pub transport: Transport,
    pub started_unix: u64,
    pub machine: Machine,
    pub server_cpu: usize,
    pub client_cpu: usize,
    pub rounds: usize,
    pub netns: bool,
    pub ringturn_argv: Vec<String>,
    pub coturn_argv: Vec<String>,
    pub rows: Vec<Row>,
    pub runs: Vec<Runs>,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub coturn_version: String,
}

pub fn machine(turnserver: &str) -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let coturn_version = std::process::Command::new(turnserver)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel,
        coturn_version,
    }
}

/// A free UDP+TCP port P on 127.0.0.1 with P+1 free too (coturn's alternate port).
fn free_port_pair() -> Result<u16> {
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let p = s.local_addr()?.port();
        if p >= 65_000 {
            continue;
        }
        let ok = std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok();
        if ok {
            return Ok(p);
        }
    }
    bail!("no free port pair on 127.0.0.1")
}

/// Runs `compare` as the CLI does: re-executes itself inside a network
/// namespace when asked, else runs here.
pub fn main(args: &CompareArgs) -> Result<Comparison> {
    let netns = args.netns || args.topology == Topology::Veth;
    if netns && std::env::var_os(NETNS_ENV).is_none() {
        if !crate::net::is_root() {
            bail!(
                "--netns needs root (unshare --net); run without it to use free ports on loopback"
            );
        }
        let exe = std::env::current_exe().context("cannot find my own executable")?;
        let status = std::process::Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(exe)
            .args(std::env::args_os().skip(1))
            .env(NETNS_ENV, "1")
            .status()
            .context("cannot run unshare --net")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    run(args)
}

/// Runs the comparison in this process (in a namespace already, or on free ports).
pub fn run(args: &CompareArgs) -> Result<Comparison> {
    let in_netns = std::env::var_os(NETNS_ENV).is_some();
    if in_netns {
        crate::net::term_with_parent();
        let st = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .context("cannot run `ip link set lo up` (iproute2)")?;
        if !st.success() {
            bail!("ip link set lo up failed");
        }
    }
    if args.rounds == 0 || args.rounds > 100 {
        bail!("--rounds must be 1..=100");
    }
    if args.scenarios.is_empty() {
        bail!("no scenarios");
    }
    let kinds: Vec<ServerKind> = match (args.only, args.topology) {
        (Some(ServerKind::RingturnXdp), Topology::Loopback) => {
            bail!("ringturn-xdp runs only with --topology veth")
        }
        (Some(k), _) => vec![k],
        (None, Topology::Loopback) => vec![ServerKind::Ringturn, ServerKind::Coturn],
        (None, Topology::Veth) => vec![
            ServerKind::RingturnXdp,
            ServerKind::Ringturn,
            ServerKind::Coturn,
        ],
    };
    let veth = match args.topology {
        Topology::Veth if in_netns => Some(crate::veth::Veth::create()?),
        Topology::Veth => bail!("--topology veth runs inside its own network namespace (root)"),
        Topology::Loopback => None,
    };
    let prefix = veth
        .as_ref()
        .map(crate::veth::Veth::prefix)
        .unwrap_or_default();
    if kinds.contains(&ServerKind::Ringturn) && !args.ringturn.is_file() {
        bail!(
            "ringturn binary {} not found: build it with `cargo build --release` or pass --ringturn PATH",
            args.ringturn.display()
        );
    }
    if kinds.contains(&ServerKind::Coturn) && find_program(&args.turnserver).is_none() {
        bail!(
            "{} not found: install coturn (apt-get install coturn) or pass --turnserver PATH",
            args.turnserver
        );
    }
    let ports = if in_netns {
        Ports {
            listen: 3478,
            tls: 5349,
            min: 49152,
            max: 65535,
        }
    } else {
        let listen = free_port_pair()?;
        let mut tls = free_port_pair()?;
        for _ in 0..50 {
            if tls.abs_diff(listen) > 1 {
                break;
            }
            tls = free_port_pair()?;
        }
        Ports {
            listen,
            tls,
            min: 50000,
            max: 59999,
        }
    };
    let udp_server: SocketAddr = SocketAddr::from((args.server_ip(), ports.listen));
    let server = ports.server(args.server_ip(), args.transport);
    let logdir =
        std::env::temp_dir().join(format!("ringturn-loadgen-compare-{}", std::process::id()));
    std::fs::create_dir_all(&logdir)?;
    let cert = match args.transport {
        Transport::Tls => Some(crate::tls::self_signed(&logdir)?),
        _ => None,
    };
    let tls_client = match args.transport {
        Transport::Tls => Some(args.tls_settings(cert.as_ref()).client(server)?),
        _ => None,
    };
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut runs: Vec<Runs> = Vec::new();
    for &s in &args.scenarios {
        for &k in &kinds {
            runs.push(Runs {
                scenario: s,
                server: k,
                reports: Vec::new(),
                errors: Vec::new(),
            });
        }
    }
    let mut interrupted = false;
    'rounds: for round in 1..=args.rounds {
        for &kind in &kinds {
            if crate::net::interrupted() {
                interrupted = true;
                break 'rounds;
            }
            let argv = server_argv(kind, args, ports, cert.as_ref());
            let log = logdir.join(format!("{}-{round}.log", kind.name()));
            // A server that does not start, or does not serve the transport (ringturn
            // before its TCP/TLS listeners), is reported for every scenario of the round;
            // the other server still runs.
            let started =
                ServerProcess::start(kind.name(), &prefix, &argv, Some(args.server_cpu), &log)
                    .and_then(|mut proc| {
                        proc.wait_ready(udp_server, Duration::from_secs(15))?;
                        if args.transport.is_stream() {
                            crate::tls::probe(
                                server,
                                args.transport,
                                tls_client.as_ref(),
                                Duration::from_secs(5),
                            )
                            .map_err(|e| {
                                anyhow::anyhow!(
                                "{} does not serve TURN over {} on {server}: {e:#} (it answers \
                                 on UDP); its log {}:\n{}",
                                kind.name(),
                                args.transport.name(),
                                log.display(),
                                tail(&log)
                            )
                            })?;
                        }
                        Ok(proc)
                    });
            let mut proc = match started {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("  {}: {e:#}", kind.name());
                    for slot in runs.iter_mut().filter(|r| r.server == kind) {
                        slot.errors.push(format!("round {round}: {e:#}"));
                    }
                    continue;
                }
            };
            let pid = proc.pid();
            for &scenario in &args.scenarios {
                let cfg =
                    args.scenario_config(scenario, server, pid, kind.name(), cert.as_ref())?;
                if !args.quiet {
                    eprintln!(
                        "round {round}/{}: {} · {}",
                        args.rounds,
                        kind.name(),
                        scenario.name()
                    );
                }
                // The fast path's work happens in the kernel: its program's
                // run time is the server's CPU too.
                let program_before = match (&veth, kind) {
                    (Some(v), ServerKind::RingturnXdp) => Some(v.program_ns()),
                    _ => None,
                };
                let mut result = crate::run::run(cfg);
                if let (Some(v), Some(before), Ok(rep)) = (&veth, program_before, result.as_mut()) {
                    if let Some(s) = rep.server.as_mut() {
                        s.add_kernel_program_ns(v.program_ns().saturating_sub(before));
                    }
                }
                let slot = runs
                    .iter_mut()
                    .find(|r| r.scenario == scenario && r.server == kind);
                match (result, slot) {
                    (Ok(rep), Some(slot)) => {
                        if !args.quiet {
                            eprintln!("{}", one_line(&rep));
                        }
                        slot.reports.push(rep);
                    }
                    (Err(e), Some(slot)) => {
                        eprintln!("  {} {}: {e:#}", kind.name(), scenario.name());
                        slot.errors.push(format!("round {round}: {e:#}"));
                    }
                    _ => {}
                }
                if crate::net::interrupted() {
                    interrupted = true;
                    break 'rounds;
                }
            }
            proc.stop(Duration::from_millis(1500));
        }
    }
    let rows = summarize(&runs, &args.scenarios);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let cmp = Comparison {
        command,
        transport: args.transport,
        started_unix,
        machine: machine(&args.turnserver),
        server_cpu: args.server_cpu,
        client_cpu: args.client_cpu,
        rounds: args.rounds,
        netns: in_netns,
        ringturn_argv: server_argv(ServerKind::Ringturn, args, ports, cert.as_ref()),
        coturn_argv: server_argv(ServerKind::Coturn, args, ports, cert.as_ref()),
        rows,
        runs,
        interrupted,
    };
    Ok(cmp)
}

fn one_line(r: &Report) -> String {
    let mut s = format!("  {:<28}", r.label);
    if let Some(a) = &r.allocations {
        let _ = write!(s, " {} allocations/s", report::si(a.per_second));
    } else {
        let _ = write!(
            s,
            " sent {} recv {} lost {:.3}% ({} /s in)",
            r.counts.sent,
            r.counts.received,
            r.loss_ratio * 100.0,
            report::si(r.received_pps)
        );
    }
    if let Some(l) = r.latency_us {
        let _ = write!(s, " p99 {:.0} µs", l.p99);
    }
    if let Some(v) = r.per_cpu_second() {
        let _ = write!(s, " · {} per server CPU-s", report::si(v));
    }
    if r.generator.saturated {
        s.push_str(" · loadgen saturated");
    }
    s
}

fn values(
    runs: &[Runs],
    scenario: Scenario,
    kind: ServerKind,
    f: impl Fn(&Report) -> Option<f64>,
) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.scenario == scenario && r.server == kind)
        .flat_map(|r| r.reports.iter().filter_map(&f))
        .collect()
}

/// The rows of the comparison table.
pub fn summarize(runs: &[Runs], scenarios: &[Scenario]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &s in scenarios {
        // ringturn's rows, and with --topology veth the fast path's rows too,
        // each against coturn.
        let mut add = |metric: &str, higher: bool, f: &dyn Fn(&Report) -> Option<f64>| {
            let ct = values(runs, s, ServerKind::Coturn, f);
            for (kind, suffix) in [
                (ServerKind::RingturnXdp, " (fast path)"),
                (ServerKind::Ringturn, ""),
            ] {
                let rt = values(runs, s, kind, f);
                let present = kind == ServerKind::Ringturn
                    || runs.iter().any(|r| r.scenario == s && r.server == kind);
                if present && (!rt.is_empty() || !ct.is_empty()) {
                    rows.push(Row::new(
                        s,
                        &format!("{metric}{suffix}"),
                        higher,
                        rt,
                        ct.clone(),
                    ));
                }
            }
        };
        match s {
            Scenario::AudioMax | Scenario::VideoMax | Scenario::PairMax => {
                add("relayed packets per server CPU-second", true, &|r| {
                    r.per_cpu_second()
                });
                add("machine busy CPU-ns per relayed packet", false, &|r| {
                    r.server.as_ref().and_then(|s| s.machine_cpu_ns_per_unit)
                });
                add("relayed packets per second (wall)", true, &|r| {
                    Some(r.received_pps * if r.mode == Mode::Relay { 2.0 } else { 1.0 })
                });
                add("p99 latency at max load, µs", false, &|r| r.p99_us());
            }
            Scenario::AudioLoad | Scenario::VideoLoad => {
                add("loss at the same offered load, %", false, &|r| {
                    Some(r.loss_ratio * 100.0)
                });
                add("p99 latency at the same offered load, µs", false, &|r| {
                    r.p99_us()
                });
                add("relayed packets per server CPU-second", true, &|r| {
                    r.per_cpu_second()
                });
                add("machine busy CPU-ns per relayed packet", false, &|r| {
                    r.server.as_ref().and_then(|s| s.machine_cpu_ns_per_unit)
                });
            }
            Scenario::Allocate => {
                add("allocations per second", true, &|r| {
                    r.allocations.as_ref().map(|a| a.per_second)
                });
                add("allocations per server CPU-second", true, &|r| {
                    r.per_cpu_second()
                });
                add("p99 Allocate latency, µs", false, &|r| r.p99_us());
            }
            Scenario::BindingMax => {
                add("Binding requests per server CPU-second", true, &|r| {
                    r.per_cpu_second()
                });
                add("p99 Binding latency, µs", false, &|r| r.p99_us());
            }
        }
    }
    rows
}

fn fmt_v(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() < 10.0 && v != 0.0 => format!("{v:.3}"),
        Some(v) => report::si(v),
        None => "—".into(),
    }
}

fn fmt_ratio(r: &Row) -> (String, String) {
    match (r.ratio_median, r.ratio_min, r.ratio_max) {
        (Some(m), Some(a), Some(b)) => (format!("{m:.2}×"), format!("{a:.2}–{b:.2}")),
        _ => {
            let both_zero = r.ringturn.iter().chain(&r.coturn).all(|v| *v == 0.0);
            if both_zero && !r.ringturn.is_empty() && !r.coturn.is_empty() {
                ("equal (0)".into(), "—".into())
            } else {
                ("—".into(), "—".into())
            }
        }
    }
}

impl Comparison {
    /// The plain-text table printed at the end.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "ringturn vs coturn over {}: {} round(s), servers on CPU {}, loadgen on CPU {}{}",
            self.transport.name(),
            self.rounds,
            self.server_cpu,
            self.client_cpu,
            if self.netns {
                ", private network namespace"
            } else {
                ""
            }
        );
        let _ = writeln!(
            t,
            "{:<12} {:<42} {:>10} {:>10} {:>10} {:>13}",
            "scenario", "metric", "ringturn", "coturn", "ratio", "ratio spread"
        );
        for r in &self.rows {
            let (m, spread) = fmt_ratio(r);
            let _ = writeln!(
                t,
                "{:<12} {:<42} {:>10} {:>10} {:>10} {:>13}",
                r.scenario,
                format!(
                    "{}{}",
                    r.metric,
                    if r.higher_is_better { " ↑" } else { " ↓" }
                ),
                fmt_v(r.ringturn_median),
                fmt_v(r.coturn_median),
                m,
                spread
            );
        }
        let _ = writeln!(
            t,
            "ringturn and coturn columns are medians over rounds; ratio = ringturn / coturn per round, median and min–max; ↑ higher is better, ↓ lower is better"
        );
        for runs in &self.runs {
            for e in &runs.errors {
                let _ = writeln!(
                    t,
                    "error: {} {}: {e}",
                    runs.server.name(),
                    runs.scenario.name()
                );
            }
            for r in &runs.reports {
                for w in &r.warnings {
                    let _ = writeln!(t, "warning: {}: {w}", r.label);
                }
            }
        }
        if self.interrupted {
            let _ = writeln!(t, "interrupted: not every round ran");
        }
        t
    }

    pub fn markdown(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| scenario | metric | ringturn (median) | coturn (median) | ratio ringturn/coturn (median) | ratio spread (min–max) |"
        );
        let _ = writeln!(t, "|---|---|---:|---:|---:|---:|");
        for r in &self.rows {
            let (m, spread) = fmt_ratio(r);
            let _ = writeln!(
                t,
                "| {} | {} {} | {} | {} | {} | {} |",
                r.scenario,
                r.metric,
                if r.higher_is_better { "↑" } else { "↓" },
                fmt_v(r.ringturn_median),
                fmt_v(r.coturn_median),
                m,
                spread
            );
        }
        t
    }

    /// An HTML page: the table, then per scenario the latency curves and throughput of
    /// both servers (each server's median run by the scenario's first metric).
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>ringturn vs coturn</title><style>{}</style></head><body>",
            report::css()
        );
        let _ = write!(
            h,
            "<h1>ringturn vs coturn over {}</h1><p class=\"sub\">{} · {} × {} · kernel {} · {} · {} round(s), both servers pinned to CPU {}, loadgen on CPU {}</p>",
            self.transport.name(),
            report::esc(&self.command),
            self.machine.nproc,
            report::esc(&self.machine.cpu_model),
            report::esc(&self.machine.kernel),
            report::esc(&self.machine.coturn_version),
            self.rounds,
            self.server_cpu,
            self.client_cpu
        );
        h.push_str("<table><tr><th>scenario</th><th>metric</th><th>ringturn</th><th>coturn</th><th>ratio</th><th>spread</th><th>per round (ringturn / coturn)</th></tr>");
        for r in &self.rows {
            let (m, spread) = fmt_ratio(r);
            let rounds: Vec<String> = r
                .ringturn
                .iter()
                .zip(&r.coturn)
                .map(|(a, b)| format!("{} / {}", fmt_v(Some(*a)), fmt_v(Some(*b))))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td></tr>",
                r.scenario,
                report::esc(&r.metric),
                if r.higher_is_better { "↑" } else { "↓" },
                fmt_v(r.ringturn_median),
                fmt_v(r.coturn_median),
                m,
                spread,
                report::esc(&rounds.join(", "))
            );
        }
        h.push_str("</table>");
        let scenarios: Vec<Scenario> = {
            let mut v: Vec<Scenario> = self.runs.iter().map(|r| r.scenario).collect();
            v.dedup();
            v
        };
        for s in scenarios {
            let mut lat = Vec::new();
            let mut thr = Vec::new();
            for runs in self.runs.iter().filter(|r| r.scenario == s) {
                let Some(rep) = median_run(&runs.reports) else {
                    continue;
                };
                let color = match runs.server {
                    ServerKind::Ringturn => "#2a6fdb",
                    ServerKind::Coturn => "#c0392b",
                    ServerKind::RingturnXdp => "#27ae60",
                };
                lat.push(report::Series {
                    name: runs.server.name().into(),
                    color,
                    points: rep
                        .latency_curve
                        .iter()
                        .map(|p| (nines(p.percentile), p.us.max(0.001)))
                        .collect(),
                });
                thr.push(report::Series {
                    name: format!("{} received/s", runs.server.name()),
                    color,
                    points: rep.timeline.iter().map(|p| (p.t, p.received_pps)).collect(),
                });
            }
            let _ = write!(h, "<h2>{}</h2><div class=\"charts\">", s.name());
            // No further than the data reaches: n samples resolve about log10(n) nines.
            let samples = self
                .runs
                .iter()
                .filter(|r| r.scenario == s)
                .filter_map(|r| median_run(&r.reports))
                .filter_map(|r| r.latency_us.map(|l| l.count))
                .min()
                .unwrap_or(100)
                .max(100) as f64;
            let x_max = lat
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .fold(2.0f64, f64::max)
                .min(samples.log10())
                .ceil()
                .clamp(2.0, 6.0);
            for series in &mut lat {
                for p in &mut series.points {
                    p.0 = p.0.min(x_max);
                }
            }
            let ticks = (0..=x_max as usize)
                .map(|k| {
                    let p = 100.0 - 100.0 / 10f64.powi(k as i32);
                    (k as f64, format!("{}%", (p * 1000.0).round() / 1000.0))
                })
                .collect();
            h.push_str(&report::chart(&report::ChartSpec {
                title: "Latency by percentile (median run)",
                x_label: "percentile",
                y_label: "µs (log scale)",
                x_range: (0.0, x_max),
                y_log: true,
                x_ticks: ticks,
                series: &lat,
                shade: None,
                y2: None,
            }));
            let t_max = thr
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .fold(0.1f64, f64::max);
            let ticks = report::nice_ticks(0.0, t_max, 8)
                .into_iter()
                .map(|v| (v, format!("{}", (v * 100.0).round() / 100.0)))
                .collect();
            h.push_str(&report::chart(&report::ChartSpec {
                title: "Received per second (median run)",
                x_label: "seconds since warm-up began",
                y_label: "packets / s",
                x_range: (0.0, t_max),
                y_log: false,
                x_ticks: ticks,
                series: &thr,
                shade: None,
                y2: None,
            }));
            h.push_str("</div>");
        }
        h.push_str("</body></html>");
        h
    }
}

fn nines(p: f64) -> f64 {
    let rest = (100.0 - p).max(1e-6) / 100.0;
    (-rest.log10()).clamp(0.0, 6.0)
}

/// The run whose headline figure is the median of its server's runs.
fn median_run(reports: &[Report]) -> Option<&Report> {
    let key = |r: &Report| {
        r.per_cpu_second()
            .or(r.allocations.as_ref().map(|a| a.per_second))
            .unwrap_or(r.received_pps)
    };
    let mut v: Vec<&Report> = reports.iter().collect();
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let r = Row::new(
            Scenario::AudioMax,
            "m",
            true,
            vec![4.0, 6.0, 9.0],
            vec![2.0, 2.0, 3.0],
        );
        assert_eq!(r.ratio_median, Some(3.0));
        assert_eq!(r.ratio_min, Some(2.0));
        assert_eq!(r.ratio_max, Some(3.0));
        let zero = Row::new(
            Scenario::AudioLoad,
            "loss",
            false,
            vec![0.0, 0.0],
            vec![0.0, 0.0],
        );
        assert_eq!(fmt_ratio(&zero).0, "equal (0)");
    }

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
