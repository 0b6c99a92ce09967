//! SVG and HTML building blocks shared by the run report and `compare`:
//! the stylesheet, escaping, axis ticks and the line chart.

use std::fmt::Write as _;

use super::si;

pub(super) const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px;margin:0 0 4px}\
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

pub(super) fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Percentile → "nines": 0 → 0, 90 → 1, 99 → 2, 99.9 → 3.
pub(super) fn nines(p: f64) -> f64 {
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
