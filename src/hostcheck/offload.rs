//! The UDP offload checks: GSO (UDP_SEGMENT) and GRO (UDP_GRO) by kernel
//! version.

use super::{Finding, Level};

/// `6.18.44-fc` → (6, 18).
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A UDP offload the kernel has from version `since` on.
struct Offload {
    /// "GSO", "GRO".
    name: &'static str,
    /// The socket option: "UDP_SEGMENT", "UDP_GRO".
    option: &'static str,
    since: (u32, u32),
    /// What an older kernel costs.
    without: &'static str,
    /// Its counters on /metrics.
    counters: &'static str,
}

fn check_offload(kernel: Option<&str>, o: &Offload) -> Finding {
    let (name, option, counters) = (o.name, o.option, o.counters);
    let counters = format!("its use shows in {counters} on /metrics (tuning/README.md, GSO)");
    match kernel.and_then(|k| parse_kernel_version(k).map(|v| (k.trim(), v))) {
        Some((k, v)) if v >= o.since => Finding::new(
            Level::Ok,
            format!("UDP {name}: kernel {k} has {option}"),
            format!("nothing to change; {counters}"),
        ),
        Some((k, _)) => Finding::new(
            Level::Warn,
            format!(
                "UDP {name}: kernel {k} predates {option} ({}.{}); {}",
                o.since.0, o.since.1, o.without
            ),
            "upgrade the kernel (5.10+; io_uring wants 6.0+)",
        ),
        None => Finding::new(
            Level::Warn,
            format!("UDP {name}: kernel version not readable"),
            format!("ringturn tries {name} and falls back for good if refused; {counters}"),
        ),
    }
}

/// UDP GSO (UDP_SEGMENT) came in Linux 4.18.
pub fn check_gso(kernel: Option<&str>) -> Finding {
    check_offload(
        kernel,
        &Offload {
            name: "GSO",
            option: "UDP_SEGMENT",
            since: (4, 18),
            without: "every datagram takes its own trip through the send path",
            counters: "ringturn_gso_sends_total / ringturn_gso_fallbacks_total",
        },
    )
}

/// UDP GRO on receive (UDP_GRO) came in Linux 5.0.
pub fn check_gro(kernel: Option<&str>) -> Finding {
    check_offload(
        kernel,
        &Offload {
            name: "GRO",
            option: "UDP_GRO",
            since: (5, 0),
            without: "a busy peer's bursts arrive one datagram per receive",
            counters: "ringturn_gro_receives_total / ringturn_gro_fallbacks_total",
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn gro_findings() {
        assert_eq!(check_gro(Some("6.18.44-fc-v669")).level, Level::Ok);
        assert_eq!(check_gro(Some("5.0.0")).level, Level::Ok);
        assert_eq!(check_gro(Some("4.19.0-21-amd64")).level, Level::Warn);
        assert_eq!(check_gro(None).level, Level::Warn);
    }

    #[test]
    fn gso_findings() {
        assert_eq!(check_gso(Some("6.18.44-fc-v669")).level, Level::Ok);
        assert_eq!(check_gso(Some("4.18.0-80.el8.x86_64")).level, Level::Ok);
        assert_eq!(check_gso(Some("4.15.0-20-generic")).level, Level::Warn);
        assert_eq!(check_gso(Some("garbage")).level, Level::Warn);
        assert_eq!(check_gso(None).level, Level::Warn);
    }
}
