//! The HTML/SVG report (`--report`): the page, and its two charts, the
//! latency distribution (HDR percentile curve) and the throughput over time.

use std::fmt::Write as _;

use super::chart::{chart, esc, nice_ticks, nines, trim, ChartSpec, Series, CSS, H, W};
use super::Report;
use crate::config::Mode;

impl Report {
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
