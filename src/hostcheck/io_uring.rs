//! The io_uring check: whether the io_uring backend can be set up here
//! (`kernel.io_uring_disabled`, seccomp) against the configured `io-backend`.

use super::{Finding, IoUringFacts, Level};
use crate::config::IoBackend;

pub fn check_io_uring(facts: &IoUringFacts, backend: IoBackend) -> Finding {
    let sysctl_hint = "set kernel.io_uring_disabled=0 (tuning/sysctl.conf)";
    match (&facts.probe, backend) {
        (Ok(()), IoBackend::Batch) => Finding::new(
            Level::Ok,
            "io_uring: available, but io-backend=batch is configured",
            "nothing to change; io-backend=auto would use it (tuning/README.md, io_uring)",
        ),
        (Ok(()), _) => Finding::new(
            Level::Ok,
            "io_uring: available",
            "nothing to change; io-backend=auto uses it",
        ),
        (Err(_), IoBackend::Batch) => Finding::new(
            Level::Ok,
            "io_uring: unavailable, io-backend=batch is configured",
            "nothing to change (recvmmsg/sendmmsg with GSO)",
        ),
        (Err(e), IoBackend::Uring) => Finding::new(
            Level::Fix,
            format!("io_uring: unavailable ({e}) but io-backend=uring is configured, so ringturn will not start"),
            format!("{sysctl_hint}, allow io_uring in the container's seccomp profile, or use io-backend=auto"),
        ),
        (Err(e), IoBackend::Auto) => match facts.sysctl {
            Some(v) if v > 0 => Finding::new(
                Level::Fix,
                format!("io_uring: disabled by kernel.io_uring_disabled={v}; ringturn falls back to the batch backend"),
                sysctl_hint,
            ),
            _ => Finding::new(
                Level::Warn,
                format!("io_uring: unavailable ({e}); ringturn falls back to the batch backend"),
                "allow io_uring (seccomp profile of the container, kernel 6.0+), or set io-backend=batch to say so",
            ),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_findings() {
        let works = IoUringFacts {
            sysctl: None,
            probe: Ok(()),
        };
        let fails = |sysctl| IoUringFacts {
            sysctl,
            probe: Err("Operation not permitted".into()),
        };
        assert_eq!(check_io_uring(&works, IoBackend::Auto).level, Level::Ok);
        assert_eq!(check_io_uring(&works, IoBackend::Batch).level, Level::Ok);
        assert_eq!(
            check_io_uring(&fails(None), IoBackend::Batch).level,
            Level::Ok
        );
        let f = check_io_uring(&fails(Some(2)), IoBackend::Auto);
        assert_eq!(f.level, Level::Fix);
        assert!(f.todo.contains("kernel.io_uring_disabled=0"), "{f}");
        assert_eq!(
            check_io_uring(&fails(None), IoBackend::Auto).level,
            Level::Warn
        );
        let f = check_io_uring(&fails(Some(0)), IoBackend::Uring);
        assert_eq!(f.level, Level::Fix);
        assert!(f.what.contains("will not start"), "{f}");
    }
}
