//! The socket buffer checks: `socket-rcvbuf` / `socket-sndbuf` against
//! `net.core.rmem_max` / `wmem_max`, and `net.core.netdev_max_backlog`.

use super::{Finding, Level};

const MIB: u64 = 1 << 20;

fn bytes(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Socket buffer `kind` ("receive" / "send") against its sysctl cap.
pub fn check_buffer(
    kind: &str,
    sysctl: &str,
    configured: Option<usize>,
    max: Option<u64>,
    net_admin: bool,
) -> Finding {
    let key = if kind == "receive" {
        "socket-rcvbuf"
    } else {
        "socket-sndbuf"
    };
    let Some(want) = configured.map(|n| n as u64) else {
        return Finding::new(
            Level::Ok,
            format!("{kind} buffers: {key} unset, the kernel default applies"),
            "nothing to change (ringturn's default is 4 MiB; tuning/README.md, Socket buffers)",
        );
    };
    match max {
        None => Finding::new(
            Level::Warn,
            format!("{kind} buffers: {sysctl} not readable"),
            format!(
                "make sure {sysctl} ≥ {} (tuning/sysctl.conf)",
                bytes(want)
            ),
        ),
        Some(max) if max >= want => Finding::new(
            Level::Ok,
            format!("{kind} buffers: {sysctl} = {} ≥ {key} {}", bytes(max), bytes(want)),
            "nothing to change",
        ),
        Some(max) if net_admin => Finding::new(
            Level::Warn,
            format!(
                "{kind} buffers: {sysctl} = {} < {key} {}; as root (CAP_NET_ADMIN) ringturn forces {} anyway",
                bytes(max),
                bytes(want),
                bytes(want)
            ),
            format!(
                "raise {sysctl} to {} (tuning/sysctl.conf) if ringturn runs without CAP_NET_ADMIN",
                want
            ),
        ),
        Some(max) => Finding::new(
            Level::Fix,
            format!(
                "{kind} buffers: {sysctl} = {} caps {key} {} (bursts overflow and drop)",
                bytes(max),
                bytes(want)
            ),
            format!("sysctl -w {sysctl}={want} (tuning/sysctl.conf), or run ringturn with CAP_NET_ADMIN"),
        ),
    }
}

/// Packets queued per core between the NIC and the stack.
pub fn check_backlog(backlog: Option<u64>) -> Finding {
    const WANT: u64 = 16_384;
    match backlog {
        Some(n) if n >= WANT => Finding::new(
            Level::Ok,
            format!("net.core.netdev_max_backlog = {n}"),
            "nothing to change",
        ),
        Some(n) => Finding::new(
            Level::Warn,
            format!("net.core.netdev_max_backlog = {n}: a burst on a busy NIC queue drops before the socket"),
            format!("sysctl -w net.core.netdev_max_backlog={WANT} on hosts with 10G+ NICs (tuning/sysctl.conf)"),
        ),
        None => Finding::new(
            Level::Warn,
            "net.core.netdev_max_backlog not readable",
            format!("make sure it is ≥ {WANT} (tuning/sysctl.conf)"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn buffer_findings() {
        let f = check_buffer(
            "receive",
            "net.core.rmem_max",
            Some(4 << 20),
            Some(212_992),
            false,
        );
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("net.core.rmem_max=4194304"), "{f}");
        assert!(
            f.what.contains("208 KiB") && f.what.contains("4 MiB"),
            "{f}"
        );
        let f = check_buffer(
            "receive",
            "net.core.rmem_max",
            Some(4 << 20),
            Some(212_992),
            true,
        );
        assert_eq!(f.level, Level::Warn);
        assert!(f.what.contains("CAP_NET_ADMIN"), "{f}");
        let f = check_buffer(
            "send",
            "net.core.wmem_max",
            Some(4 << 20),
            Some(4 << 20),
            false,
        );
        assert_eq!(f.level, Level::Ok);
        let f = check_buffer("send", "net.core.wmem_max", None, Some(1), false);
        assert_eq!(f.level, Level::Ok);
        let f = check_buffer("send", "net.core.wmem_max", Some(1 << 20), None, false);
        assert_eq!(f.level, Level::Warn);
    }

    #[test]
    fn backlog_findings() {
        assert_eq!(check_backlog(Some(1000)).level, Level::Warn);
        assert_eq!(check_backlog(Some(16_384)).level, Level::Ok);
        assert_eq!(check_backlog(None).level, Level::Warn);
    }
}
