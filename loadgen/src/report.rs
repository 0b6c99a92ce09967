//! What a run measured: the serde report (`--json`), the final table, and
//! the HTML/SVG report (`--report`) with the latency distribution and the
//! throughput over time drawn.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{LoadConfig, Mode};

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

    /// The final table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<40} {v}");
        };
        let c = &self.counts;
        let _ = &c;
        row(
            "mode",
            format!(
                "{} against {} over {} ({})",
                self.mode.name(),
                self.config.server,
                self.config.transport.name(),
                self.label
            ),
        );
        row(
            "clients",
            format!(
                "{} ready of {} (setup {:.2} s), {} thread(s)",
                self.clients_ready, self.clients, self.setup_seconds, self.generator.threads
            ),
        );
        for (why, n) in &self.setup_failures {
            row("  failed", format!("{n} × {why}"));
        }
        row("measured window", format!("{:.2} s", self.window_seconds));
        if let Some(o) = self.offered_pps {
            row("offered load", format!("{} /s", si(o)));
        }
        match self.mode {
            Mode::Allocate => {
                if let Some(a) = &self.allocations {
                    row(
                        "allocations",
                        format!("{} ({} /s)", a.completed, si(a.per_second)),
                    );
                    if let Some(h) = a.held {
                        row("held", format!("{h}, released {}", a.released));
                    }
                    row(
                        "requests / responses",
                        format!(
                            "{} / {} ({} retransmitted, {} timed out, {} stale nonce)",
                            a.requests, a.responses, a.retransmissions, a.timeouts, a.stale_nonce
                        ),
                    );
                    for (code, n) in &a.errors {
                        row("  error responses", format!("{n} × {code}"));
                    }
                    if let Some(b) = a.rss_bytes_per_allocation {
                        row("server memory per allocation", format!("{b:.0} B"));
                    }
                }
            }
            _ => {
                let what = if self.mode == Mode::Binding {
                    "requests"
                } else {
                    "packets"
                };
                row(
                    &format!("sent / received {what}"),
                    format!(
                        "{} / {}  ({} /s out, {} /s in)",
                        c.sent,
                        c.received,
                        si(self.sent_pps),
                        si(self.received_pps)
                    ),
                );
                row(
                    "lost / duplicated / reordered",
                    format!(
                        "{} ({:.4}%) / {} / {}",
                        c.lost,
                        self.loss_ratio * 100.0,
                        c.duplicated,
                        c.reordered
                    ),
                );
                if self.mode != Mode::Binding {
                    row(
                        "payload throughput",
                        format!("{:.2} Mbit/s", self.throughput_mbps),
                    );
                }
                if let Some(e) = &self.binding_errors {
                    for (code, n) in e {
                        row("  error responses", format!("{n} × {code}"));
                    }
                }
            }
        }
        if let Some(l) = &self.latency_us {
            let what = match self.mode {
                Mode::Relay => "round-trip latency (µs)",
                Mode::Pair => "one-way latency (µs)",
                Mode::Binding => "request latency (µs)",
                Mode::Allocate => "Allocate latency (µs)",
            };
            row(
                what,
                format!(
                    "p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  (min {:.0}, n={})",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.min, l.count
                ),
            );
        }
        if let Some(s) = &self.server {
            row(
                "server CPU",
                format!(
                    "{:.3} s ({:.0}% of a core), pid {}",
                    s.cpu_seconds,
                    s.cpu_cores * 100.0,
                    s.pid
                ),
            );
            if let Some(ns) = s.cpu_ns_per_unit {
                row(&format!("server CPU-ns per {}", s.unit), format!("{ns:.0}"));
            }
            if let Some(ns) = s.machine_cpu_ns_per_unit {
                row(
                    &format!("machine busy CPU-ns per {}", s.unit),
                    format!("{ns:.0} (every core: server, loadgen, kernel)"),
                );
            }
            if let Some(u) = s.units_per_cpu_second {
                row(
                    &format!("{}s per server CPU-second", s.unit),
                    si(u).to_string(),
                );
            }
            if let (Some(a), Some(b)) = (s.rss_kib_start, s.rss_kib_peak) {
                row("server RSS", format!("{a} KiB → peak {b} KiB"));
            }
        }
        row(
            "loadgen CPU",
            format!(
                "{:.2} cores, busiest thread {:.0}%{}",
                self.generator.cores_used,
                self.generator.busiest_thread_busy * 100.0,
                if self.generator.saturated {
                    " (SATURATED)"
                } else {
                    ""
                }
            ),
        );
        if c.foreign + c.send_errors + c.recv_errors > 0 {
            row(
                "unexpected",
                format!(
                    "{} foreign datagrams, {} send errors, {} receive errors",
                    c.foreign, c.send_errors, c.recv_errors
                ),
            );
        }
        for w in &self.warnings {
            let _ = writeln!(t, "  warning: {w}");
        }
        t
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// A self-contained HTML page (or, for a .svg path, just the charts).
    pub fn to_html(&self) -> String {
        let title = format!(
            "ringturn-loadgen: {} against {} over {}",
            self.mode.name(),
            self.label,
            self.config.transport.name()
        );
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
            esc(&title),
            CSS
        );
        let _ = write!(h, "<h1>{}</h1>", esc(&title));
        let _ = write!(
            h,
            "<p class=\"sub\">{} · started at unix time {} · {} clients, {} thread(s)</p>",
            esc(&self.tool),
            self.started_unix,
            self.clients,
            self.generator.threads
        );
        let _ = write!(h, "<pre>{}</pre>", esc(&self.table()));
        h.push_str("<div class=\"charts\">");
        h.push_str(&self.latency_svg());
        h.push_str(&self.timeline_svg());
        h.push_str("</div></body></html>");
        h
    }

    /// Both charts side by side in one SVG document.
    pub fn to_svg(&self) -> String {
        let a = self.latency_svg();
        let b = self.timeline_svg();
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\"><g>{}</g><g transform=\"translate({} 0)\">{}</g></svg>",
            2.0 * W + 20.0,
            H,
            a,
            W + 20.0,
            b
        )
    }

    /// The HDR percentile curve: x = percentile on a "nines" scale, y = latency (log).
    pub fn latency_svg(&self) -> String {
        let what = match self.mode {
            Mode::Relay => "Round-trip latency by percentile",
            Mode::Pair => "One-way latency by percentile",
            Mode::Binding => "Binding request latency by percentile",
            Mode::Allocate => "Allocate latency by percentile",
        };
        let pts: Vec<(f64, f64)> = self
            .latency_curve
            .iter()
            .map(|p| (nines(p.percentile), p.us.max(0.001)))
            .collect();
        // No further than the data reaches: n samples resolve about log10(n) nines.
        let n = self.latency_us.map_or(100, |l| l.count).max(100) as f64;
        let x_max = pts
            .iter()
            .map(|p| p.0)
            .fold(2.0f64, f64::max)
            .min(n.log10())
            .ceil()
            .clamp(2.0, 6.0);
        let pts: Vec<(f64, f64)> = pts.into_iter().map(|(x, y)| (x.min(x_max), y)).collect();
        let labels: Vec<(f64, String)> = (0..=x_max as usize)
            .map(|k| {
                let p = 100.0 - 100.0 / 10f64.powi(k as i32);
                (k as f64, format!("{}%", trim(p)))
            })
            .collect();
        let series = vec![Series {
            name: "latency".into(),
            color: "#2a6fdb",
            points: pts,
        }];
        chart(&ChartSpec {
            title: what,
            x_label: "percentile",
            y_label: "µs (log scale)",
            x_range: (0.0, x_max),
            y_log: true,
            x_ticks: labels,
            series: &series,
            shade: None,
            y2: None,
        })
    }

    /// Throughput over time (sent and received per second), warm-up and drain shaded,
    /// the server's CPU on a second axis when sampled.
    pub fn timeline_svg(&self) -> String {
        let sent: Vec<(f64, f64)> = self.timeline.iter().map(|p| (p.t, p.sent_pps)).collect();
        let recv: Vec<(f64, f64)> = self
            .timeline
            .iter()
            .map(|p| (p.t, p.received_pps))
            .collect();
        let cpu: Vec<(f64, f64)> = self
            .timeline
            .iter()
            .filter_map(|p| p.server_cpu.map(|c| (p.t, c * 100.0)))
            .collect();
        let t_max = self
            .clock_end_s
            .max(sent.last().map_or(1.0, |p| p.0))
            .max(0.1);
        let ticks = nice_ticks(0.0, t_max, 8)
            .into_iter()
            .map(|v| (v, trim(v)))
            .collect();
        let series = vec![
            Series {
                name: "sent /s".into(),
                color: "#2a6fdb",
                points: sent,
            },
            Series {
                name: "received /s".into(),
                color: "#1b9e4b",
                points: recv,
            },
        ];
        let y2 = (!cpu.is_empty()).then(|| Series {
            name: "server CPU %".into(),
            color: "#d9822b",
            points: cpu,
        });
        chart(&ChartSpec {
            title: "Throughput over time",
            x_label: "seconds since warm-up began",
            y_label: "packets / s",
            x_range: (0.0, t_max),
            y_log: false,
            x_ticks: ticks,
            series: &series,
            shade: Some((self.warmup_end_s, self.measure_end_s)),
            y2: y2.as_ref(),
        })
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px;margin:0 0 4px}\
.sub{color:#666;margin:0 0 12px;font-size:13px}pre{background:#f6f6f6;padding:10px;font-size:12px;overflow:auto}\
.charts{display:flex;flex-wrap:wrap;gap:16px}svg{background:#fff;border:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}\
td:first-child,th:first-child,td:nth-child(2),th:nth-child(2){text-align:left}";

pub fn css() -> &'static str {
    CSS
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Percentile → "nines": 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
fn nines(p: f64) -> f64 {
    let rest = (100.0 - p).max(1e-6) / 100.0;
    (-rest.log10()).clamp(0.0, 6.0)
}

pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(mag * 10.0);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(v);
        v += step;
    }
    out
}

pub const W: f64 = 560.0;
pub const H: f64 = 340.0;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

pub struct ChartSpec<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_range: (f64, f64),
    pub y_log: bool,
    pub x_ticks: Vec<(f64, String)>,
    pub series: &'a [Series],
    /// The measured window, [from, to] on the x axis (outside it is shaded).
    pub shade: Option<(f64, f64)>,
    /// A second series on a right-hand 0..max axis.
    pub y2: Option<&'a Series>,
}

/// A line chart as inline SVG.
pub fn chart(spec: &ChartSpec<'_>) -> String {
    let (l, r, t, b) = (
        70.0,
        if spec.y2.is_some() { 60.0 } else { 36.0 },
        36.0,
        48.0,
    );
    let pw = W - l - r;
    let ph = H - t - b;
    let (x0, x1) = spec.x_range;
    let xs = |x: f64| l + (x - x0) / (x1 - x0).max(1e-12) * pw;
    let all_y: Vec<f64> = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .collect();
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        l,
        esc(spec.title)
    );
    if all_y.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"#888\">no data</text></svg>",
            l + 20.0,
            t + ph / 2.0
        );
        return s;
    }
    let y_max_raw = all_y.iter().copied().fold(f64::MIN, f64::max);
    let y_min_raw = all_y.iter().copied().fold(f64::MAX, f64::min);
    // y scale
    let (y_lo, y_hi, y_ticks): (f64, f64, Vec<f64>) = if spec.y_log {
        let lo = 10f64.powf(y_min_raw.max(1e-3).log10().floor());
        let hi = 10f64.powf(y_max_raw.max(lo * 10.0).log10().ceil());
        let mut ticks = Vec::new();
        let mut d = lo;
        while d <= hi * 1.0001 && ticks.len() < 40 {
            for m in [1.0, 2.0, 5.0] {
                let v = d * m;
                if v >= lo && v <= hi * 1.0001 {
                    ticks.push(v);
                }
            }
            d *= 10.0;
        }
        (lo, hi, ticks)
    } else {
        let hi = if y_max_raw > 0.0 {
            y_max_raw * 1.08
        } else {
            1.0
        };
        let ticks = nice_ticks(0.0, hi, 6);
        (0.0, ticks.last().copied().unwrap_or(hi).max(hi), ticks)
    };
    let ys = |y: f64| {
        let f = if spec.y_log {
            (y.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()).max(1e-12)
        } else {
            (y - y_lo) / (y_hi - y_lo).max(1e-12)
        };
        t + ph - f.clamp(0.0, 1.05) * ph
    };
    // shading outside the measured window
    if let Some((a, z)) = spec.shade {
        for (from, to) in [(x0, a), (z, x1)] {
            if to > from {
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{t}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#eee\"/>",
                    xs(from),
                    (xs(to) - xs(from)).max(0.0)
                );
            }
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" fill=\"#999\">warm-up</text><text x=\"{:.1}\" y=\"{}\" fill=\"#999\">measured</text>",
            xs(x0) + 3.0,
            t + 12.0,
            xs(a) + 3.0,
            t + 12.0
        );
    }
    // grid + y ticks
    for v in &y_ticks {
        let y = ys(*v);
        let _ = write!(
            s,
            "<line x1=\"{l}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            l + pw,
            l - 6.0,
            y + 4.0,
            si(*v)
        );
    }
    for (v, label) in &spec.x_ticks {
        let x = xs(*v);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{t}\" y2=\"{:.1}\" stroke=\"#f0f0f0\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            t + ph,
            t + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>"
    );
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        H - 10.0,
        esc(spec.x_label)
    );
    let _ = write!(
        s,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        t + ph / 2.0,
        esc(spec.y_label)
    );
    let mut legend_x = l + 8.0;
    let mut draw = |s: &mut String, series: &Series, ymap: &dyn Fn(f64) -> f64| {
        if series.points.is_empty() {
            return;
        }
        let mut d = String::new();
        for (i, (x, y)) in series.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                xs(*x),
                ymap(*y)
            );
        }
        let _ = write!(
            s,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"/>",
            series.color
        );
        let _ = write!(
            s,
            "<rect x=\"{legend_x:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            t + ph - 14.0,
            series.color,
            legend_x + 16.0,
            t + ph - 10.0,
            esc(&series.name)
        );
        legend_x += 24.0 + 6.5 * series.name.len() as f64;
    };
    for series in spec.series {
        draw(&mut s, series, &ys);
    }
    if let Some(y2) = spec.y2 {
        let max = y2.points.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let top = nice_ticks(0.0, (max * 1.1).max(10.0), 5);
        let y2_hi = top.last().copied().unwrap_or(100.0).max(1.0);
        let y2s = |y: f64| t + ph - (y / y2_hi).clamp(0.0, 1.05) * ph;
        for v in &top {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\">{}</text>",
                l + pw + 6.0,
                y2s(*v) + 4.0,
                y2.color,
                trim(*v)
            );
        }
        let _ = write!(
            s,
            "<text transform=\"translate({:.1} {:.1}) rotate(90)\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
            W - 12.0,
            t + ph / 2.0,
            y2.color,
            esc(&y2.name)
        );
        draw(&mut s, y2, &y2s);
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_and_ticks() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(esc("<a&b>"), "&lt;a&amp;b&gt;");
    }

    #[test]
    fn charts_handle_empty_and_flat_data() {
        let empty = chart(&ChartSpec {
            title: "t",
            x_label: "x",
            y_label: "y",
            x_range: (0.0, 1.0),
            y_log: true,
            x_ticks: vec![],
            series: &[],
            shade: None,
            y2: None,
        });
        assert!(empty.contains("no data"));
        let flat = [Series {
            name: "s".into(),
            color: "#000",
            points: vec![(0.0, 0.0), (1.0, 0.0)],
        }];
        let svg = chart(&ChartSpec {
            title: "t",
            x_label: "x",
            y_label: "y",
            x_range: (0.0, 1.0),
            y_log: false,
            x_ticks: vec![(0.0, "0".into())],
            series: &flat,
            shade: Some((0.2, 0.8)),
            y2: None,
        });
        assert!(svg.contains("<path") && !svg.contains("NaN"));
    }
}
