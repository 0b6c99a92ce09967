//! `soak`: relay traffic and allocation churn against one server at once for
//! a long run, with the server's resident memory, open descriptors and (from
//! its Prometheus `/metrics`, where it has one) live allocations and queued
//! timers sampled throughout. What an operator runs before putting a TURN
//! server in front of users: does memory level off, does latency stay flat,
//! is anything lost (issue 16).
//!
//! The two halves are ordinary runs (`relay` and `allocate --pps`) on their
//! own threads; this module only starts them, samples the server, and
//! reports both with the samples as a table, JSON, and an SVG/HTML plot.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;

use crate::cli::LoadArgs;
use crate::config::{Mode, Rate};
use crate::procstat;
use crate::report::Report;

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// The relay half: -c, --size-mix, --pps, -d and the credentials apply to it; the churn
    /// half uses the same server, credentials and duration.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Clients cycling Allocate / Refresh(0) beside the relay clients.
    #[arg(long, default_value_t = 10)]
    pub churn_clients: usize,
    /// Cycles per second per churn client (0: back to back, as fast as the server answers).
    #[arg(long, default_value_t = 200.0)]
    pub churn_pps: f64,
    /// The server's Prometheus endpoint (ringturn's `prometheus`, 127.0.0.1:9641): live
    /// allocations, queued timers and cached transactions are sampled from its /metrics.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
    /// Seconds between samples of the server.
    #[arg(long, default_value_t = 5.0)]
    pub sample_every: f64,
}

/// One look at the server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub t: f64,
    pub rss_kib: Option<u64>,
    pub open_fds: Option<u64>,
    /// From /metrics, summed over workers.
    pub allocations: Option<u64>,
    pub timers_queued: Option<u64>,
    pub cached_transactions: Option<u64>,
    /// ringturn: the longest busy loop turn of any worker so far (µs).
    pub longest_turn_us: Option<u64>,
    /// ringturn: the most CPU time one loop turn of any worker used (µs).
    pub longest_turn_cpu_us: Option<u64>,
}

/// What memory did over the run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemorySummary {
    pub rss_kib_start: Option<u64>,
    /// The first sample at or after two minutes.
    pub rss_kib_at_2min: Option<u64>,
    /// The highest sample from two minutes on.
    pub rss_kib_max_after_2min: Option<u64>,
    pub rss_kib_max: Option<u64>,
    pub rss_kib_end: Option<u64>,
    pub open_fds_max: Option<u64>,
    pub allocations_max: Option<u64>,
    pub timers_queued_max: Option<u64>,
    pub longest_turn_us: Option<u64>,
    pub longest_turn_cpu_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub label: String,
    pub server_pid: u32,
    pub sample_every_s: f64,
    pub samples: Vec<Sample>,
    pub memory: MemorySummary,
    pub relay: Report,
    pub churn: Report,
}

/// Runs the soak. The server must be given with `--server-pid`.
pub fn run(args: &SoakArgs) -> Result<SoakReport> {
    let mut relay = args.load.to_config(Mode::Relay)?;
    let Some(pid) = relay.server_pid else {
        bail!("soak samples the server's memory: give --server-pid");
    };
    if !procstat::exists(pid) {
        bail!("--server-pid {pid}: no such process");
    }
    if !(args.sample_every.is_finite() && (0.1..=600.0).contains(&args.sample_every)) {
        bail!("--sample-every must be between 0.1 and 600 seconds");
    }
    if !(args.churn_pps.is_finite() && args.churn_pps >= 0.0) {
        bail!("--churn-pps must be 0 or more");
    }
    relay.progress = false;
    let mut churn = relay.clone();
    churn.mode = Mode::Allocate;
    churn.clients = args.churn_clients.max(1);
    churn.threads = 1;
    churn.indications = false;
    churn.count = None;
    (churn.rate, churn.pps_given) = if args.churn_pps > 0.0 {
        (Rate::Pps(args.churn_pps), true)
    } else {
        (Rate::Max { window: 1 }, false)
    };
    churn.label = format!("{} (churn)", relay.label);
    churn.validate()?;
    let label = relay.label.clone();
    let limit = relay.setup_timeout + relay.warmup + relay.duration + relay.drain;
    let every = Duration::from_secs_f64(args.sample_every);

    let started = Instant::now();
    let relay_thread = std::thread::Builder::new()
        .name("soak-relay".into())
        .spawn(move || crate::run(relay))
        .context("cannot start the relay half")?;
    let churn_thread = std::thread::Builder::new()
        .name("soak-churn".into())
        .spawn(move || crate::run(churn))
        .context("cannot start the churn half")?;

    let mut samples = Vec::new();
    let hard_stop = started + limit + Duration::from_secs(120);
    loop {
        let s = sample(pid, args.metrics, started.elapsed().as_secs_f64());
        eprintln!("{}", sample_line(&s));
        samples.push(s);
        let done = relay_thread.is_finished() && churn_thread.is_finished();
        if done || Instant::now() >= hard_stop {
            break;
        }
        // Sleep in short steps so the end of the run is not missed by a whole interval.
        let next = started + every.mul_f64(samples.len() as f64);
        while Instant::now() < next && !(relay_thread.is_finished() && churn_thread.is_finished()) {
            std::thread::sleep(Duration::from_millis(50).min(every));
        }
    }
    let relay = join(relay_thread, "relay")?;
    let churn = join(churn_thread, "churn")?;
    Ok(SoakReport {
        label,
        server_pid: pid,
        sample_every_s: args.sample_every,
        memory: summarize(&samples),
        samples,
        relay,
        churn,
    })
}

fn join(handle: std::thread::JoinHandle<Result<Report>>, what: &str) -> Result<Report> {
    match handle.join() {
        Ok(r) => r.with_context(|| format!("the {what} half failed")),
        Err(_) => bail!("the {what} half panicked"),
    }
}

fn sample(pid: u32, metrics: Option<SocketAddr>, t: f64) -> Sample {
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64);
    let body = metrics.and_then(scrape);
    let sum = |name: &str| body.as_deref().and_then(|b| sum_metric(b, name));
    Sample {
        t,
        rss_kib: procstat::rss_kib(pid),
        open_fds,
        allocations: sum("ringturn_allocations"),
        timers_queued: sum("ringturn_timers_queued"),
        cached_transactions: sum("ringturn_cached_transactions"),
        longest_turn_us: body
            .as_deref()
            .and_then(|b| max_metric(b, "ringturn_worker_longest_turn_microseconds")),
        longest_turn_cpu_us: body
            .as_deref()
            .and_then(|b| max_metric(b, "ringturn_worker_longest_turn_cpu_microseconds")),
    }
}

/// GET /metrics (plain HTTP/1.1, one second at most).
fn scrape(addr: SocketAddr) -> Option<String> {
    let timeout = Duration::from_secs(1);
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.take(16 << 20).read_to_string(&mut body).ok()?;
    let (head, rest) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| rest.to_owned())
}

/// A metric's samples over its label sets (`name{...} value`).
fn samples<'a>(body: &'a str, name: &'a str) -> impl Iterator<Item = u64> + 'a {
    body.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None; // another metric whose name starts with this one
        }
        rest.rsplit(' ')
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v as u64)
    })
}

/// The sum of a metric's samples (over workers).
pub fn sum_metric(body: &str, name: &str) -> Option<u64> {
    samples(body, name).fold(None, |acc, v| Some(acc.unwrap_or(0u64).saturating_add(v)))
}

/// The largest of a metric's samples.
pub fn max_metric(body: &str, name: &str) -> Option<u64> {
    samples(body, name).max()
}

fn summarize(samples: &[Sample]) -> MemorySummary {
    let rss = |s: &&Sample| s.rss_kib;
    let after = samples.iter().filter(|s| s.t >= 120.0);
    MemorySummary {
        rss_kib_start: samples.first().and_then(|s| s.rss_kib),
        rss_kib_at_2min: samples
            .iter()
            .find(|s| s.t >= 120.0)
            .and_then(|s| s.rss_kib),
        rss_kib_max_after_2min: after.filter_map(|s| rss(&s)).max(),
        rss_kib_max: samples.iter().filter_map(|s| s.rss_kib).max(),
        rss_kib_end: samples.last().and_then(|s| s.rss_kib),
        open_fds_max: samples.iter().filter_map(|s| s.open_fds).max(),
        allocations_max: samples.iter().filter_map(|s| s.allocations).max(),
        timers_queued_max: samples.iter().filter_map(|s| s.timers_queued).max(),
        longest_turn_us: samples.iter().filter_map(|s| s.longest_turn_us).max(),
        longest_turn_cpu_us: samples.iter().filter_map(|s| s.longest_turn_cpu_us).max(),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn mib(v: Option<u64>) -> String {
    v.map_or_else(
        || "-".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn sample_line(s: &Sample) -> String {
    format!(
        "soak t={:>7.1}s rss={} fds={} allocations={} timers={} cached_transactions={} longest_turn_us={} longest_turn_cpu_us={}",
        s.t,
        mib(s.rss_kib),
        opt(s.open_fds),
        opt(s.allocations),
        opt(s.timers_queued),
        opt(s.cached_transactions),
        opt(s.longest_turn_us),
        opt(s.longest_turn_cpu_us)
    )
}

impl SoakReport {
    pub fn table(&self) -> String {
        let mut t = String::new();
        let m = &self.memory;
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<40} {v}");
        };
        row(
            "server",
            format!("{} (pid {})", self.label, self.server_pid),
        );
        row(
            "samples",
            format!("{} every {} s", self.samples.len(), self.sample_every_s),
        );
        row("RSS at start", mib(m.rss_kib_start));
        row("RSS at 2 min", mib(m.rss_kib_at_2min));
        row("RSS max from 2 min on", mib(m.rss_kib_max_after_2min));
        row(
            "RSS max / end",
            format!("{} / {}", mib(m.rss_kib_max), mib(m.rss_kib_end)),
        );
        row("open descriptors max", opt(m.open_fds_max));
        row("allocations max (metrics)", opt(m.allocations_max));
        row("timers queued max (metrics)", opt(m.timers_queued_max));
        row(
            "longest busy worker turn (metrics)",
            m.longest_turn_us
                .map_or_else(|| "-".to_owned(), |us| format!("{us} µs")),
        );
        row(
            "most CPU in one worker turn (metrics)",
            m.longest_turn_cpu_us
                .map_or_else(|| "-".to_owned(), |us| format!("{us} µs")),
        );
        let r = &self.relay;
        row(
            "relay: sent / received / lost",
            format!(
                "{} / {} / {}",
                r.counts.sent, r.counts.received, r.counts.lost
            ),
        );
        row(
            "relay: duplicated / reordered",
            format!("{} / {}", r.counts.duplicated, r.counts.reordered),
        );
        if let Some(l) = &r.latency_us {
            row(
                "relay RTT p50 / p99 / p99.9 / max",
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0} µs",
                    l.p50, l.p99, l.p999, l.max
                ),
            );
        }
        if let Some(a) = &self.churn.allocations {
            row(
                "churn: cycles (per second)",
                format!("{} ({:.0}/s)", a.completed, a.per_second),
            );
            row(
                "churn: requests / retransmissions / timeouts",
                format!("{} / {} / {}", a.requests, a.retransmissions, a.timeouts),
            );
            if !a.errors.is_empty() {
                row("churn: errors", format!("{:?}", a.errors));
            }
        }
        if let Some(l) = &self.churn.latency_us {
            row(
                "churn: Allocate p50 / p99 / max",
                format!("{:.0} / {:.0} / {:.0} µs", l.p50, l.p99, l.max),
            );
        }
        t
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// Resident memory, open descriptors and (with --metrics) allocations
    /// and queued timers over time, one panel each.
    pub fn to_svg(&self) -> String {
        type Series = fn(&Sample) -> Option<f64>;
        let panels: [(&str, Series); 4] = [
            ("server RSS (MiB)", |s| s.rss_kib.map(|k| k as f64 / 1024.0)),
            ("open descriptors", |s| s.open_fds.map(|v| v as f64)),
            ("live allocations", |s| s.allocations.map(|v| v as f64)),
            ("timers queued", |s| s.timers_queued.map(|v| v as f64)),
        ];
        let (w, h, pad) = (720.0, 160.0, 50.0);
        let shown: Vec<_> = panels
            .iter()
            .filter(|(_, f)| self.samples.iter().any(|s| f(s).is_some()))
            .collect();
        let total_h = shown.len() as f64 * (h + 30.0) + 20.0;
        let t_max = self.samples.last().map_or(1.0, |s| s.t).max(1.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{total_h}\" font-family=\"sans-serif\" font-size=\"11\">\n"
        );
        for (i, (title, f)) in shown.iter().enumerate() {
            let top = 20.0 + i as f64 * (h + 30.0);
            let values: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter_map(|s| f(s).map(|v| (s.t, v)))
                .collect();
            let y_max = values.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.1;
            let x = |t: f64| pad + (w - pad - 10.0) * t / t_max;
            let y = |v: f64| top + h - h * v / y_max;
            let _ = writeln!(
                svg,
                "<text x=\"{pad}\" y=\"{}\">{title} — max {:.1}</text>",
                top - 4.0,
                y_max / 1.1
            );
            let _ = writeln!(
                svg,
                "<rect x=\"{pad}\" y=\"{top}\" width=\"{}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>",
                w - pad - 10.0
            );
            let _ = writeln!(
                svg,
                "<text x=\"4\" y=\"{}\">0</text><text x=\"4\" y=\"{}\">{:.0}</text><text x=\"{}\" y=\"{}\">{:.0} s</text>",
                top + h,
                top + 10.0,
                y_max,
                w - 60.0,
                top + h + 14.0,
                t_max
            );
            let points: Vec<String> = values
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"#c33\" stroke-width=\"1.5\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    pub fn to_html(&self) -> String {
        let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
        format!(
            "<!doctype html>\n<meta charset=\"utf-8\">\n<title>ringturn-loadgen soak: {}</title>\n<h1>soak: {}</h1>\n<pre>{}</pre>\n{}",
            esc(&self.label),
            esc(&self.label),
            esc(&self.table()),
            self.to_svg()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_workers_and_not_its_longer_namesakes() {
        let body = "# TYPE ringturn_allocations gauge\n\
                    ringturn_allocations{worker=\"0\"} 3\n\
                    ringturn_allocations{worker=\"1\"} 4\n\
                    ringturn_allocations_created_total{worker=\"0\"} 99\n";
        assert_eq!(sum_metric(body, "ringturn_allocations"), Some(7));
        assert_eq!(sum_metric(body, "ringturn_timers_queued"), None);
        assert_eq!(max_metric(body, "ringturn_allocations"), Some(4));
    }

    #[test]
    fn summary_reads_memory_from_two_minutes_on() {
        let s = |t: f64, kib: u64| Sample {
            t,
            rss_kib: Some(kib),
            open_fds: Some(10),
            allocations: None,
            timers_queued: None,
            cached_transactions: None,
            longest_turn_us: None,
            longest_turn_cpu_us: None,
        };
        let m = summarize(&[s(0.0, 100), s(60.0, 900), s(120.0, 500), s(180.0, 600)]);
        assert_eq!(m.rss_kib_start, Some(100));
        assert_eq!(m.rss_kib_at_2min, Some(500));
        assert_eq!(m.rss_kib_max_after_2min, Some(600));
        assert_eq!(m.rss_kib_max, Some(900));
        assert_eq!(m.rss_kib_end, Some(600));
    }
}
