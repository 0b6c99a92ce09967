//! The open-files check: the descriptors ringturn may hold (relay sockets,
//! listeners, rings, signaling connections) against the process limit and
//! `fs.file-max`.

use super::{FileLimit, Finding, Level, Wanted};

/// Descriptors ringturn may hold at once: a socket per relay port (one per
/// allocation; in shared relay socket mode one per worker and relay IP), each worker's listeners, eventfd, ring or epoll, the
/// signaling connections, and some slack.
pub fn open_files_needed(w: &Wanted) -> u64 {
    let per_worker = w.listeners as u64 + 4;
    let signaling = w.signaling_connections.map_or(0, |n| n as u64 + 16);
    w.relay_sockets() + w.workers as u64 * per_worker + signaling + 64
}

/// The open-file limit against what ringturn may need.
pub fn check_open_files(
    limit: Option<FileLimit>,
    file_max: Option<u64>,
    need: u64,
    relay_sockets: u64,
) -> Finding {
    let suggest = need.next_power_of_two().max(65_536);
    let todo = format!(
        "ulimit -n {suggest} in the shell that starts ringturn, or LimitNOFILE={suggest} in its systemd unit (tuning/README.md, Open files)"
    );
    if let Some(max) = file_max {
        if max < need {
            return Finding::new(
                Level::Fix,
                format!("open files: fs.file-max = {max} < {need} needed"),
                format!("sysctl -w fs.file-max=2097152 (tuning/sysctl.conf), then {todo}"),
            );
        }
    }
    match limit {
        None => Finding::new(
            Level::Warn,
            "open files: limit not readable",
            format!("make sure it is ≥ {need}: {todo}"),
        ),
        Some(FileLimit { soft: None, .. }) => {
            Finding::new(Level::Ok, "open files: unlimited", "nothing to change")
        }
        Some(FileLimit { soft: Some(s), .. }) if s >= need => Finding::new(
            Level::Ok,
            format!(
                "open files: limit {s} ≥ {need} needed ({relay_sockets} relay sockets and the rest)"
            ),
            "nothing to change",
        ),
        Some(FileLimit {
            soft: Some(s),
            hard,
        }) => {
            let hard_note = match hard {
                Some(h) if h < need => format!("; the hard limit {h} is too low as well (LimitNOFILE, or ulimit -n as root, raises both)"),
                _ => String::new(),
            };
            Finding::new(
                Level::Fix,
                format!(
                    "open files: limit {s} < {need} needed ({relay_sockets} relay sockets — one per relay port unless relay-socket-mode=shared — plus listeners, rings and signaling connections){hard_note}; allocations fail once it is reached"
                ),
                todo,
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::wanted;

    #[test]
    fn open_file_findings() {
        let w = wanted();
        let need = open_files_needed(&w);
        // 16384 ports + 12 workers × 5 + 64.
        assert_eq!(need, 16_384 + 60 + 64);
        let with_signaling = Wanted {
            signaling_connections: Some(10_000),
            ..w.clone()
        };
        assert_eq!(open_files_needed(&with_signaling), need + 10_016);
        // Shared relay sockets: 12 workers × 1 relay IP instead of 16384 ports.
        let shared = Wanted {
            shared_relay_sockets: Some(12),
            ..w.clone()
        };
        assert_eq!(open_files_needed(&shared), 12 + 60 + 64);

        let limit = |soft, hard| {
            Some(FileLimit {
                soft: Some(soft),
                hard: Some(hard),
            })
        };
        let f = check_open_files(limit(1024, 4096), None, need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("ulimit -n 65536"), "{f}");
        assert!(f.todo.contains("LimitNOFILE=65536"), "{f}");
        assert!(f.what.contains("hard limit 4096"), "{f}");
        let f = check_open_files(limit(1024, 1 << 20), None, need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(!f.what.contains("hard limit"), "{f}");
        assert_eq!(
            check_open_files(limit(65_536, 65_536), None, need, 16_384).level,
            Level::Ok
        );
        let unlimited = Some(FileLimit {
            soft: None,
            hard: None,
        });
        assert_eq!(
            check_open_files(unlimited, None, need, 16_384).level,
            Level::Ok
        );
        let f = check_open_files(limit(1 << 20, 1 << 20), Some(8192), need, 16_384);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("fs.file-max"), "{f}");
        assert_eq!(
            check_open_files(None, None, need, 16_384).level,
            Level::Warn
        );
        // Over 65536 needed: the next power of two.
        let f = check_open_files(limit(1024, 1024), None, 70_000, 65_536);
        assert!(f.todo.contains("ulimit -n 131072"), "{f}");
    }
}
