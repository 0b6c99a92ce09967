//! Runs one load: plans the threads, moves them through the phases by the
//! clock (setup → warm-up → measured window → drain → stop), samples the
//! server's CPU and memory, draws the progress line, and builds the report.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{LoadConfig, Mode, Rate};
use crate::engine::{
    Plan, Shared, Worker, WorkerResult, PHASE_DRAIN, PHASE_MEASURE, PHASE_SETUP, PHASE_STOP,
    PHASE_WARMUP,
};
use crate::procstat;
use crate::report::{self, Report};
use crate::track::{new_histogram, Counters, Timeline};

/// Splits `clients` over `threads` (pairs never split across threads).
pub fn plan(cfg: &LoadConfig) -> Vec<Plan> {
    let unit = if cfg.mode == Mode::Pair { 2 } else { 1 };
    let units = cfg.clients / unit;
    let threads = cfg.threads.min(units.max(1)).max(1);
    let mut plans = Vec::with_capacity(threads);
    let mut first = 0;
    for t in 0..threads {
        let share = units / threads + usize::from(t < units % threads);
        let clients = share * unit;
        let count_share = cfg.count.map(|c| {
            let c = c / threads as u64 + u64::from((t as u64) < c % threads as u64);
            c.max(1)
        });
        plans.push(Plan {
            index: t,
            first_client: first,
            clients,
            count_share,
            cpu: (!cfg.cpus.is_empty()).then(|| cfg.cpus[t % cfg.cpus.len()]),
        });
        first += clients;
    }
    plans
}

struct Sampler {
    pid: Option<u32>,
    /// (clock ns, server cpu ns)
    cpu: Vec<(u64, u64)>,
    rss_first: Option<u64>,
    rss_peak: Option<u64>,
    rss_last: Option<u64>,
}

impl Sampler {
    fn new(pid: Option<u32>) -> Self {
        Self {
            pid,
            cpu: Vec::new(),
            rss_first: None,
            rss_peak: None,
            rss_last: None,
        }
    }

    fn sample(&mut self, now_ns: u64) -> Option<u64> {
        let pid = self.pid?;
        let cpu = procstat::cpu_ns(pid)?;
        if self.cpu.len() < 1_000_000 {
            self.cpu.push((now_ns, cpu));
        }
        if let Some(rss) = procstat::rss_kib(pid) {
            self.rss_first.get_or_insert(rss);
            self.rss_last = Some(rss);
            self.rss_peak = Some(self.rss_peak.map_or(rss, |p| p.max(rss)));
        }
        Some(cpu)
    }
}

/// Runs the load described by `cfg` and returns what it measured.
pub fn run(cfg: LoadConfig) -> Result<Report> {
    cfg.validate()?;
    let nofile = crate::net::raise_nofile_limit();
    let sockets_needed = cfg.clients + cfg.threads * cfg.peers_per_thread + 64;
    if (sockets_needed as u64) > nofile {
        bail!(
            "{} clients need about {sockets_needed} open files, the limit is {nofile} (raise it with ulimit -n)",
            cfg.clients
        );
    }
    if let Some(pid) = cfg.server_pid {
        if !procstat::exists(pid) {
            bail!("--server-pid {pid}: no such process");
        }
    }
    let cfg = Arc::new(cfg);
    let plans = plan(&cfg);
    let mut shared = Shared::new(plans.len());
    if cfg.transport == crate::config::Transport::Tls {
        shared.tls = Some(cfg.tls.client(cfg.server)?);
    }
    let shared = Arc::new(shared);
    let mut workers = Vec::with_capacity(plans.len());
    for p in &plans {
        workers.push(
            Worker::new(cfg.clone(), shared.clone(), p.clone())
                .with_context(|| format!("setting up worker thread {}", p.index))?,
        );
    }
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let handles: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || w.run())
        })
        .collect::<std::io::Result<_>>()
        .context("cannot start worker threads")?;
    // From here on every path sets PHASE_STOP and joins the threads.
    let outcome = drive(&cfg, &shared);
    shared.phase.store(PHASE_STOP, Ordering::Release);
    let results: Vec<WorkerResult> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let driven = outcome?;
    if results.len() != plans.len() {
        bail!("a worker thread panicked");
    }
    Ok(build_report(&cfg, driven, results, started_unix))
}

/// What the main thread observed while driving the phases.
struct Driven {
    sampler: Sampler,
    clock_warmup_start: u64,
    clock_measure_start: u64,
    clock_drain_start: u64,
    clock_end: u64,
    server_cpu_window: Option<u64>,
    /// All cores' busy time over the measured window and the drain.
    machine_cpu_window: Option<u64>,
    process_cpu_window: u64,
    setup_timed_out: bool,
    interrupted: bool,
    rss_after_setup: Option<u64>,
}

fn all(shared: &Shared, f: impl Fn(&crate::engine::Progress) -> bool) -> bool {
    shared.progress.iter().all(f)
}

fn sum(shared: &Shared, f: impl Fn(&crate::engine::Progress) -> u64) -> u64 {
    shared.progress.iter().map(f).sum()
}

fn drive(cfg: &LoadConfig, shared: &Shared) -> Result<Driven> {
    let clock = shared.clock;
    let bar = if cfg.progress {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let tick = Duration::from_millis(20);
    let mut sampler = Sampler::new(cfg.server_pid);
    let server_cpu_at_start = sampler.sample(clock.now_ns());
    let mut last_sample = clock.now_ns();
    let interval_ns = cfg.interval.as_nanos() as u64;
    let mut rate_window: std::collections::VecDeque<(u64, u64, u64)> = Default::default();
    let mut tick_fn = |phase_name: &str, sampler: &mut Sampler| {
        let now = clock.now_ns();
        if now.saturating_sub(last_sample) >= interval_ns {
            last_sample = now;
            sampler.sample(now);
        }
        let sent = sum(shared, |p| p.sent_all.load(Ordering::Relaxed));
        let recv = sum(shared, |p| p.received_all.load(Ordering::Relaxed));
        rate_window.push_back((now, sent, recv));
        while rate_window.len() > 2
            && rate_window
                .front()
                .is_some_and(|f| now - f.0 > 1_000_000_000)
        {
            rate_window.pop_front();
        }
        let (pps_out, pps_in) = match rate_window.front() {
            Some(&(t0, s0, r0)) if now > t0 => {
                let dt = (now - t0) as f64 / 1e9;
                ((sent - s0) as f64 / dt, (recv - r0) as f64 / dt)
            }
            _ => (0.0, 0.0),
        };
        let m_sent = sum(shared, |p| p.sent.load(Ordering::Relaxed));
        let m_recv = sum(shared, |p| p.received.load(Ordering::Relaxed));
        let ready = sum(shared, |p| p.ready.load(Ordering::Relaxed));
        let failed = sum(shared, |p| p.failed.load(Ordering::Relaxed));
        let allocs = sum(shared, |p| p.allocations.load(Ordering::Relaxed));
        let msg = match cfg.mode {
            Mode::Allocate => {
                format!("{phase_name}: allocations {allocs}, held {ready}, failed {failed}")
            }
            _ => {
                let loss = if m_sent > 0 {
                    100.0 * (m_sent.saturating_sub(m_recv)) as f64 / m_sent as f64
                } else {
                    0.0
                };
                format!(
                    "{phase_name}: ready {ready}/{} failed {failed} | out {} pps in {} pps | sent {m_sent} recv {m_recv} (in flight or lost {loss:.2}%)",
                    cfg.clients,
                    report::si(pps_out),
                    report::si(pps_in)
                )
            }
        };
        bar.set_message(msg);
        bar.tick();
    };

    // Setup: allocations, permissions, channels.
    let setup_deadline = Instant::now() + cfg.setup_timeout;
    let mut setup_timed_out = false;
    let mut interrupted = false;
    loop {
        if crate::net::interrupted() {
            interrupted = true;
            break;
        }
        if all(shared, |p| p.setup_done.load(Ordering::Acquire))
            && shared.workers_started.load(Ordering::Acquire) == shared.progress.len()
        {
            break;
        }
        if Instant::now() >= setup_deadline {
            setup_timed_out = true;
            break;
        }
        tick_fn("setup", &mut sampler);
        std::thread::sleep(tick);
    }
    let clock_setup_end = clock.now_ns();
    let rss_after_setup = cfg.server_pid.and_then(procstat::rss_kib);
    // Held allocations: the work is the setup, so that is the server CPU that counts.
    let server_cpu_setup = match (server_cpu_at_start, sampler.sample(clock_setup_end)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if cfg.mode != Mode::Allocate || cfg.hold.is_none() {
        let ready = sum(shared, |p| p.ready.load(Ordering::Relaxed));
        if ready == 0 && matches!(cfg.mode, Mode::Relay | Mode::Pair) {
            shared.phase.store(PHASE_STOP, Ordering::Release);
            bar.finish_and_clear();
            return Ok(Driven {
                sampler,
                clock_warmup_start: clock_setup_end,
                clock_measure_start: clock_setup_end,
                clock_drain_start: clock_setup_end,
                clock_end: clock_setup_end,
                server_cpu_window: None,
                machine_cpu_window: None,
                process_cpu_window: 0,
                setup_timed_out,
                interrupted,
                rss_after_setup,
            });
        }
    }

    // Warm-up (none when holding allocations).
    let warmup = if cfg.hold.is_some() {
        Duration::ZERO
    } else {
        cfg.warmup
    };
    let clock_warmup_start = clock.now_ns();
    shared
        .warmup_start_ns
        .store(clock_warmup_start, Ordering::Release);
    shared.phase.store(PHASE_WARMUP, Ordering::Release);
    let until = Instant::now() + warmup;
    while Instant::now() < until && !interrupted {
        if crate::net::interrupted() {
            interrupted = true;
        }
        tick_fn("warm-up", &mut sampler);
        std::thread::sleep(tick);
    }

    // The measured window.
    let window = cfg.hold.unwrap_or(cfg.duration);
    let server_cpu_start = sampler.sample(clock.now_ns());
    let machine_cpu_start = crate::procstat::machine_busy_ns();
    let process_cpu_start = crate::net::process_cpu_ns();
    let clock_measure_start = clock.now_ns();
    shared.phase.store(PHASE_MEASURE, Ordering::Release);
    let until = Instant::now() + window;
    while Instant::now() < until && !interrupted {
        if crate::net::interrupted() {
            interrupted = true;
        }
        if cfg.count.is_some() && all(shared, |p| p.count_done.load(Ordering::Acquire)) {
            break;
        }
        tick_fn("measuring", &mut sampler);
        std::thread::sleep(tick);
    }

    // Drain: no more sends; wait for what is in flight.
    let clock_drain_start = clock.now_ns();
    shared.phase.store(PHASE_DRAIN, Ordering::Release);
    let until = Instant::now() + cfg.drain;
    // Workers publish every 20 ms: give them a turn before believing "drained".
    std::thread::sleep(Duration::from_millis(30));
    while Instant::now() < until && !interrupted {
        if all(shared, |p| p.drained.load(Ordering::Acquire)) {
            break;
        }
        tick_fn("draining", &mut sampler);
        std::thread::sleep(Duration::from_millis(5));
    }
    let server_cpu_end = sampler.sample(clock.now_ns());
    let machine_cpu_window = crate::procstat::machine_busy_ns()
        .zip(machine_cpu_start)
        .map(|(b, a)| b.saturating_sub(a));
    let process_cpu_window = crate::net::process_cpu_ns().saturating_sub(process_cpu_start);
    let clock_end = clock.now_ns();
    shared.phase.store(PHASE_STOP, Ordering::Release);
    bar.finish_and_clear();
    Ok(Driven {
        sampler,
        clock_warmup_start,
        clock_measure_start,
        clock_drain_start,
        clock_end,
        server_cpu_window: if cfg.hold.is_some() {
            server_cpu_setup
        } else {
            match (server_cpu_start, server_cpu_end) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            }
        },
        machine_cpu_window,
        process_cpu_window,
        setup_timed_out,
        interrupted,
        rss_after_setup,
    })
}

fn build_report(
    cfg: &LoadConfig,
    d: Driven,
    results: Vec<WorkerResult>,
    started_unix: u64,
) -> Report {
    let mut counters = Counters::default();
    let mut latency = new_histogram();
    let mut timeline = Timeline::default();
    let mut failures = std::collections::BTreeMap::<String, u64>::new();
    let mut alloc = crate::engine::AllocCounters::default();
    let mut ready = 0;
    let mut released = 0;
    let mut busiest = 0.0f64;
    let mut warnings = Vec::new();
    let mut setup_ns = 0u64;
    for r in &results {
        counters.add(&r.counters);
        let _ = latency.add(&r.latency);
        if timeline.interval_ns == 0 {
            timeline = Timeline::new(
                r.timeline.origin_ns,
                r.timeline.interval_ns,
                r.timeline.max_points,
            );
        }
        timeline.merge(&r.timeline);
        for (k, v) in &r.failures {
            *failures.entry(k.clone()).or_default() += v;
        }
        alloc.completed += r.alloc.completed;
        alloc.completed_all += r.alloc.completed_all;
        alloc.requests += r.alloc.requests;
        alloc.responses += r.alloc.responses;
        alloc.retransmissions += r.alloc.retransmissions;
        alloc.timeouts += r.alloc.timeouts;
        alloc.stale_nonce += r.alloc.stale_nonce;
        alloc.refreshes += r.alloc.refreshes;
        for (k, v) in &r.alloc.errors {
            *alloc.errors.entry(*k).or_default() += v;
        }
        ready += r.ready;
        released += r.released;
        setup_ns = setup_ns.max(r.setup_ns);
        if r.measure_wall_ns > 0 {
            busiest = busiest.max(r.busy_ns as f64 / r.measure_wall_ns as f64);
        }
        if let Some(e) = &r.pin_error {
            warnings.push(e.clone());
        }
    }
    if d.setup_timed_out {
        warnings.push(format!(
            "setup did not finish within {} s; the clients not ready were left out",
            cfg.setup_timeout.as_secs()
        ));
    }
    if d.interrupted {
        warnings.push("interrupted: the run stopped early".into());
    }
    let window_s = (d.clock_drain_start.saturating_sub(d.clock_measure_start)) as f64 / 1e9;
    let window_s = window_s.max(1e-9);
    let lost = counters.sent.saturating_sub(counters.received);
    let relay_like = matches!(cfg.mode, Mode::Relay | Mode::Pair);
    // Payloads delivered through the server: an echo crossed it twice.
    let work = match cfg.mode {
        Mode::Relay => 2 * counters.received,
        Mode::Pair | Mode::Binding => counters.received,
        Mode::Allocate => alloc.completed,
    };
    let unit = match cfg.mode {
        Mode::Relay | Mode::Pair => "relayed packet",
        Mode::Binding => "binding request",
        Mode::Allocate => "allocation",
    };
    if cfg.mode == Mode::Allocate && cfg.hold.is_some() {
        // Allocations were made during setup; that is the window that counts for their rate.
    }
    let process_cores = d.process_cpu_window as f64 / 1e9 / window_s;
    let saturated = busiest > 0.9;
    if saturated {
        warnings.push(format!(
            "the generator was saturated (busiest thread {:.0}% busy): the figures may measure loadgen, not the server; add --threads or clients",
            busiest * 100.0
        ));
    }
    if counters.late > 0 {
        warnings.push(format!(
            "{} paced sends fell behind schedule: the generator could not keep the offered rate",
            counters.late
        ));
    }
    if relay_like && counters.send_blocked > 0 {
        warnings.push(format!(
            "{} batched sends stopped at a full socket buffer (loadgen dropped nothing: those packets were never counted as sent)",
            counters.send_blocked
        ));
    }
    let server = cfg.server_pid.map(|pid| {
        let cpu_ns = d.server_cpu_window.unwrap_or(0);
        report::ServerStats {
            pid,
            cpu_seconds: cpu_ns as f64 / 1e9,
            cpu_cores: cpu_ns as f64
                / 1e9
                / if cfg.hold.is_some() {
                    setup_ns.max(1) as f64 / 1e9
                } else {
                    window_s
                },
            unit: unit.into(),
            units: work,
            cpu_ns_per_unit: (work > 0).then(|| cpu_ns as f64 / work as f64),
            units_per_cpu_second: (cpu_ns > 0).then(|| work as f64 / (cpu_ns as f64 / 1e9)),
            rss_kib_start: d.sampler.rss_first,
            rss_kib_after_setup: d.rss_after_setup,
            rss_kib_peak: d.sampler.rss_peak,
            rss_kib_end: d.sampler.rss_last,
            kernel_program_seconds: None,
            machine_cpu_ns_per_unit: d
                .machine_cpu_window
                .filter(|_| work > 0 && cfg.hold.is_none())
                .map(|m| m as f64 / work as f64),
        }
    });
    if let Some(s) = &server {
        if s.cpu_seconds > 0.0 && s.cpu_seconds < 0.5 {
            warnings.push(format!(
                "the server used only {:.2} CPU-seconds: /proc counts in 10 ms ticks, so per-packet cost is ±{:.0}%",
                s.cpu_seconds,
                1.0 / s.cpu_seconds
            ));
        }
    }
    let setup_s = setup_ns as f64 / 1e9;
    let allocations = (cfg.mode == Mode::Allocate).then(|| {
        let held = cfg.hold.is_some();
        let per_second = if held {
            alloc.completed as f64 / setup_s.max(1e-9)
        } else {
            alloc.completed as f64 / window_s
        };
        let rss_per_alloc = match (&server, held) {
            (Some(s), true) => match (s.rss_kib_start, d.rss_after_setup) {
                (Some(a), Some(b)) if alloc.completed > 0 => {
                    Some((b.saturating_sub(a) * 1024) as f64 / alloc.completed as f64)
                }
                _ => None,
            },
            _ => None,
        };
        report::AllocStats {
            completed: alloc.completed,
            per_second,
            held: held.then_some(ready),
            released,
            requests: alloc.requests,
            responses: alloc.responses,
            retransmissions: alloc.retransmissions,
            timeouts: alloc.timeouts,
            stale_nonce: alloc.stale_nonce,
            errors: alloc
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            rss_bytes_per_allocation: rss_per_alloc,
        }
    });
    let mut binding_errors = None;
    if cfg.mode == Mode::Binding && !alloc.errors.is_empty() {
        binding_errors = Some(
            alloc
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        );
    }
    let interval_s = cfg.interval.as_secs_f64();
    let server_cpu_points = cpu_series(&d.sampler, timeline.origin_ns, timeline.interval_ns.max(1));
    let points = timeline.sent.len().max(timeline.received.len());
    let timeline_points = (0..points)
        .map(|i| report::TimePoint {
            t: i as f64 * interval_s,
            sent_pps: timeline.sent.get(i).copied().unwrap_or(0) as f64 / interval_s,
            received_pps: timeline.received.get(i).copied().unwrap_or(0) as f64 / interval_s,
            server_cpu: server_cpu_points.get(i).copied().flatten(),
        })
        .collect();
    let to_s = |ns: u64| ns.saturating_sub(d.clock_warmup_start) as f64 / 1e9;
    Report {
        tool: concat!("ringturn-loadgen ", env!("CARGO_PKG_VERSION")).into(),
        label: cfg.label.clone(),
        mode: cfg.mode,
        started_unix,
        config: cfg.clone(),
        clients: cfg.clients,
        clients_ready: ready,
        setup_seconds: setup_s,
        setup_failures: failures,
        window_seconds: window_s,
        counts: report::Counts {
            sent: counters.sent,
            received: counters.received,
            lost,
            duplicated: counters.duplicated,
            reordered: counters.reordered,
            sent_all: counters.sent_all,
            received_all: counters.received_all,
            foreign: counters.foreign,
            send_blocked: counters.send_blocked,
            send_errors: counters.send_errors,
            recv_errors: counters.recv_errors,
            late: counters.late,
            echoed: counters.echoed,
        },
        loss_ratio: if counters.sent > 0 {
            lost as f64 / counters.sent as f64
        } else {
            0.0
        },
        offered_pps: match cfg.rate {
            Rate::Pps(_) if cfg.mode != Mode::Allocate => cfg.offered_pps(),
            _ => None,
        },
        sent_pps: counters.sent as f64 / window_s,
        received_pps: counters.received as f64 / window_s,
        throughput_mbps: counters.bytes_sent as f64 * 8.0 / window_s / 1e6,
        latency_us: report::Latency::from_histogram(&latency),
        latency_curve: report::curve(&latency),
        timeline: timeline_points,
        warmup_end_s: to_s(d.clock_measure_start),
        measure_end_s: to_s(d.clock_drain_start),
        server,
        allocations,
        binding_errors,
        generator: report::GenStats {
            threads: results.len(),
            cpu_seconds: d.process_cpu_window as f64 / 1e9,
            cores_used: process_cores,
            busiest_thread_busy: busiest,
            saturated,
        },
        warnings,
        clock_end_s: to_s(d.clock_end),
    }
}

/// Server CPU (in cores) per timeline interval, from the sampler's readings.
fn cpu_series(s: &Sampler, origin: u64, interval: u64) -> Vec<Option<f64>> {
    let mut out: Vec<Option<f64>> = Vec::new();
    for w in s.cpu.windows(2) {
        let [(t0, c0), (t1, c1)] = [w[0], w[1]];
        if t1 <= t0 || t1 < origin {
            continue;
        }
        let mid = (t0 / 2 + t1 / 2).saturating_sub(origin);
        let i = (mid / interval) as usize;
        if i > 1_000_000 {
            break;
        }
        if out.len() <= i {
            out.resize(i + 1, None);
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(c1.saturating_sub(c0) as f64 / (t1 - t0) as f64);
        }
    }
    // /proc counts 10 ms ticks: a 100 ms bucket is ±10 %; smooth over five.
    let raw = out.clone();
    for (i, slot) in out.iter_mut().enumerate() {
        let near: Vec<f64> = raw[i.saturating_sub(2)..(i + 3).min(raw.len())]
            .iter()
            .flatten()
            .copied()
            .collect();
        if slot.is_some() && !near.is_empty() {
            *slot = Some(near.iter().sum::<f64>() / near.len() as f64);
        }
    }
    out
}

#[allow(dead_code)]
fn phase_name(p: u8) -> &'static str {
    match p {
        PHASE_SETUP => "setup",
        PHASE_WARMUP => "warm-up",
        PHASE_MEASURE => "measuring",
        PHASE_DRAIN => "draining",
        _ => "stopping",
    }
}
