//! Clocks the standard library does not expose: the calling thread's own CPU
//! time (a loop turn's wall time minus this is time the worker waited for a
//! CPU, not time it worked), and `Instant`s as CLOCK_MONOTONIC nanoseconds
//! (the clock of BPF's `bpf_ktime_get_ns`).

use std::time::{Duration, Instant};

fn read(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

/// `at` on CLOCK_MONOTONIC, in nanoseconds (an `at` already past maps to now).
pub fn monotonic_ns_at(at: Instant) -> u64 {
    let now = read(libc::CLOCK_MONOTONIC).unwrap_or_default();
    let ahead = at.saturating_duration_since(Instant::now());
    u64::try_from((now + ahead).as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`); zero if
/// the clock cannot be read (then turns read as all-waiting, never as work).
pub fn thread_cpu_time() -> Duration {
    read(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{monotonic_ns_at, read, thread_cpu_time};
    use std::time::{Duration, Instant};

    #[test]
    fn an_instant_lands_on_the_monotonic_clock() {
        let now = read(libc::CLOCK_MONOTONIC).map(|d| d.as_nanos() as u64);
        let Some(now) = now else {
            panic!("CLOCK_MONOTONIC unreadable");
        };
        let later = monotonic_ns_at(Instant::now() + Duration::from_secs(5));
        let ahead = later.saturating_sub(now);
        assert!(
            (4_900_000_000..5_100_000_000).contains(&ahead),
            "5 s ahead read as {ahead} ns"
        );
        let past = monotonic_ns_at(Instant::now() - Duration::from_secs(1));
        assert!(past >= now, "a past instant maps to now, not before");
    }

    #[test]
    fn counts_work_and_not_sleep() {
        let start = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu_time() - start;
        assert!(
            slept < Duration::from_millis(15),
            "sleep counted: {slept:?}"
        );
        // Spin until the clock shows 20 ms of work (bounded: a clock that
        // does not count work fails after ten seconds of wall time).
        let begin = Instant::now();
        let mut x = 0u64;
        while thread_cpu_time() - start < Duration::from_millis(20) {
            assert!(
                begin.elapsed() < Duration::from_secs(10),
                "work not counted"
            );
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }
}
