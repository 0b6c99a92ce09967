//! Running the comparison: the network namespace (or free ports), the
//! servers started and stopped, the rounds interleaved A B A B, a line per
//! run; and what it gathers (`Runs`, `Comparison`, `Machine`).

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use super::summary::{summarize, Row};
use super::{server_argv, CompareArgs, Ports, Scenario, ServerKind, Topology, NETNS_ENV};
use crate::config::Transport;
use crate::report::{self, Report};
use crate::servers::{find_program, tail, ServerProcess};

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
