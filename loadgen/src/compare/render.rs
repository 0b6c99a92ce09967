//! A comparison written out: the plain-text table, Markdown, and the HTML
//! page with its latency and throughput charts.

use std::fmt::Write as _;

use super::rounds::Comparison;
use super::summary::{fmt_ratio, fmt_v};
use super::{Scenario, ServerKind};
use crate::report::{self, Report};

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
