//! The port range check: `net.ipv4.ip_local_port_range` against the relay
//! ports min-port..max-port.

use super::{Finding, Level};

/// `net.ipv4.ip_local_port_range` against min-port..max-port.
pub fn check_port_range(local: Option<(u16, u16)>, min: u16, max: u16) -> Finding {
    match local {
        None => Finding::new(
            Level::Warn,
            "local port range: net.ipv4.ip_local_port_range not readable",
            format!("make sure it does not overlap the relay ports {min}-{max} (tuning/sysctl.conf)"),
        ),
        Some((lo, hi)) if lo <= max && min <= hi => Finding::new(
            Level::Warn,
            format!(
                "local port range: net.ipv4.ip_local_port_range {lo}-{hi} overlaps the relay ports {min}-{max}; the host's outgoing connections can take relay ports"
            ),
            format!(
                "sysctl -w net.ipv4.ip_local_port_range=\"10000 19999\" (tuning/sysctl.conf), or net.ipv4.ip_local_reserved_ports={min}-{max}"
            ),
        ),
        Some((lo, hi)) => Finding::new(
            Level::Ok,
            format!("local port range: {lo}-{hi}, apart from the relay ports {min}-{max}"),
            "nothing to change",
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn port_range_findings() {
        let f = check_port_range(Some((32768, 60999)), 49152, 65535);
        assert_eq!(f.level, Level::Warn);
        assert!(f.todo.contains("ip_local_port_range"), "{f}");
        assert_eq!(
            check_port_range(Some((10000, 19999)), 49152, 65535).level,
            Level::Ok
        );
        assert_eq!(
            check_port_range(Some((32768, 49152)), 49152, 65535).level,
            Level::Warn
        );
        assert_eq!(
            check_port_range(Some((32768, 49151)), 49152, 65535).level,
            Level::Ok
        );
        assert_eq!(check_port_range(None, 49152, 65535).level, Level::Warn);
    }
}
