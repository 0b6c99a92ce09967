//! What a run measured: the serde report (`--json`), the final table, and
//! the HTML/SVG report (`--report`) with the latency distribution and the
//! throughput over time drawn.
//!
//! This file holds the report's data (what serde writes); `table` the final
//! table, `html` the page and its two charts, `chart` the SVG line chart and
//! the HTML helpers `compare` uses too.

mod chart;
mod html;
mod table;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{LoadConfig, Mode};

pub use chart::{chart, css, esc, nice_ticks, ChartSpec, Series, H, W};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub label: String,
    pub mode: Mode,
    pub started_unix: u64,
    pub config: LoadConfig,
    pub clients: usize,
    /// Clients that finished setup (relay, pair), held allocations, or all (storm, binding).
    pub clients_ready: u64,
    pub setup_seconds: f64,
    /// Why clients or transactions failed, with how often.
    pub setup_failures: BTreeMap<String, u64>,
    /// The measured window (warm-up and drain excluded).
    pub window_seconds: f64,
    pub counts: Counts,
    /// lost / sent.
    pub loss_ratio: f64,
    /// The configured offered load (paced runs), packets or requests per second.
    pub offered_pps: Option<f64>,
    pub sent_pps: f64,
    pub received_pps: f64,
    /// Measured payload bits per second sent, in Mbit/s.
    pub throughput_mbps: f64,
    /// Round trip (relay: client → peer → client; binding: request → response), one way
    /// (pair: client → client), or Allocate latency (allocate), in microseconds.
    pub latency_us: Option<Latency>,
    pub latency_curve: Vec<CurvePoint>,
    pub timeline: Vec<TimePoint>,
    /// Seconds from the start of warm-up to the measured window and to its end.
    pub warmup_end_s: f64,
    pub measure_end_s: f64,
    pub clock_end_s: f64,
    pub server: Option<ServerStats>,
    pub allocations: Option<AllocStats>,
    pub binding_errors: Option<BTreeMap<String, u64>>,
    pub generator: GenStats,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Payloads or requests sent inside the measured window.
    pub sent: u64,
    /// Of those, how many came back (distinct).
    pub received: u64,
    /// sent − received, after the drain.
    pub lost: u64,
    pub duplicated: u64,
    /// Arrived after a later sequence number of the same flow.
    pub reordered: u64,
    /// Everything, warm-up included.
    pub sent_all: u64,
    pub received_all: u64,
    /// Datagrams that were not ours or not for that client.
    pub foreign: u64,
    pub send_blocked: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub late: u64,
    /// Datagrams the echo peers sent back (relay mode).
    pub echoed: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Self {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CurvePoint {
    /// 0..100
    pub percentile: f64,
    pub us: f64,
}

/// The percentile curve (HDR style), at most a few hundred points.
pub fn curve(h: &Histogram<u64>) -> Vec<CurvePoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<CurvePoint> = h
        .iter_quantiles(4)
        .map(|v| CurvePoint {
            percentile: v.quantile_iterated_to() * 100.0,
            us: v.value_iterated_to() as f64 / 1e3,
        })
        .take(2000)
        .collect();
    if out.len() > 400 {
        let step = out.len() / 400 + 1;
        let last = out.last().copied();
        out = out.into_iter().step_by(step).collect();
        out.extend(last);
    }
    out
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct TimePoint {
    /// Seconds since warm-up began.
    pub t: f64,
    pub sent_pps: f64,
    pub received_pps: f64,
    /// Server CPU in cores (1.0 = one core busy), when --server-pid was given.
    pub server_cpu: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerStats {
    pub pid: u32,
    /// utime + stime over the measured window and the drain.
    pub cpu_seconds: f64,
    pub cpu_cores: f64,
    /// "relayed packet" (an echo counts two: there and back), "binding request", "allocation".
    pub unit: String,
    pub units: u64,
    pub cpu_ns_per_unit: Option<f64>,
    pub units_per_cpu_second: Option<f64>,
    pub rss_kib_start: Option<u64>,
    pub rss_kib_after_setup: Option<u64>,
    pub rss_kib_peak: Option<u64>,
    pub rss_kib_end: Option<u64>,
    /// CPU the server's XDP program spent in the kernel (`bpf_stats`) over
    /// the whole run — warm-up included, so it is counted against the fast
    /// path generously — already added to `cpu_seconds`: on veth it is
    /// charged to whichever CPU sent the frame, not to the server process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_program_seconds: Option<f64>,
    /// Busy CPU of the whole machine (every core: server, loadgen, the
    /// kernel's softirqs) over the same window, per unit: where work lands
    /// on whichever CPU it happens to, this is the figure that misses none.
    pub machine_cpu_ns_per_unit: Option<f64>,
}

impl ServerStats {
    /// Counts `ns` of kernel program time as the server's.
    pub fn add_kernel_program_ns(&mut self, ns: u64) {
        let s = ns as f64 / 1e9;
        self.kernel_program_seconds = Some(self.kernel_program_seconds.unwrap_or(0.0) + s);
        self.cpu_seconds += s;
        if self.units > 0 && self.cpu_seconds > 0.0 {
            self.cpu_ns_per_unit = Some(self.cpu_seconds * 1e9 / self.units as f64);
            self.units_per_cpu_second = Some(self.units as f64 / self.cpu_seconds);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AllocStats {
    /// Allocations completed in the measured window (storm) or set up (--hold).
    pub completed: u64,
    pub per_second: f64,
    pub held: Option<u64>,
    pub released: u64,
    pub requests: u64,
    pub responses: u64,
    pub retransmissions: u64,
    pub timeouts: u64,
    pub stale_nonce: u64,
    pub errors: BTreeMap<String, u64>,
    pub rss_bytes_per_allocation: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GenStats {
    pub threads: usize,
    /// loadgen's own CPU over the measured window and drain.
    pub cpu_seconds: f64,
    pub cores_used: f64,
    /// The busiest worker thread's CPU time / wall time in the window.
    pub busiest_thread_busy: f64,
    pub saturated: bool,
}

/// 1234567 → "1.23M".
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Report {
    /// Relayed (or answered) units per server CPU-second, when measured.
    pub fn per_cpu_second(&self) -> Option<f64> {
        self.server.as_ref().and_then(|s| s.units_per_cpu_second)
    }

    pub fn p99_us(&self) -> Option<f64> {
        self.latency_us.map(|l| l.p99)
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
}
