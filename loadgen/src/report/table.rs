//! The final table a run prints: what ran, the load, what was measured
//! (throughput, loss, latency, the server's CPU and memory), the generator's own state.

use std::fmt::Write as _;

use super::{si, Report};
use crate::config::Mode;

impl Report {
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
}
