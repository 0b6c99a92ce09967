//! The summary rows: per scenario and metric, both servers' values per
//! round, their medians and the ringturn / coturn ratios, and how a row's
//! figures read.

use serde::Serialize;

use super::rounds::Runs;
use super::{Scenario, ServerKind};
use crate::config::Mode;
use crate::report::{self, Report};

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

pub(super) fn fmt_v(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() < 10.0 && v != 0.0 => format!("{v:.3}"),
        Some(v) => report::si(v),
        None => "—".into(),
    }
}

pub(super) fn fmt_ratio(r: &Row) -> (String, String) {
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
}
