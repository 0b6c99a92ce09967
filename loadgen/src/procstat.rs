//! Another process's CPU time and memory, read from /proc.

use std::fs;

/// utime + stime of process `pid` (all its threads, dead ones included), in
/// nanoseconds; /proc counts in clock ticks (usually 10 ms).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    let hz = crate::net::clock_ticks_per_second();
    Some(ticks.saturating_mul(1_000_000_000) / hz)
}

/// Fields 14 and 15 (utime, stime) of a /proc/PID/stat line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted
/// after the last ')'.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After ')': field 3 (state) is the first; utime is field 14 → index 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of process `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line =
            "1234 (turn server) S 1 1234 1234 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(cpu_ns(me).is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
        assert!(exists(me));
    }
}
