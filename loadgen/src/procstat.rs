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

/// Busy CPU time of the whole machine, all cores (user, nice, system, irq,
/// softirq, steal from the `cpu` line of /proc/stat), in nanoseconds.
pub fn machine_busy_ns() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let ticks = parse_machine_busy_ticks(&stat)?;
    let hz = crate::net::clock_ticks_per_second();
    Some(ticks.saturating_mul(1_000_000_000) / hz)
}

/// user + nice + system + irq + softirq + steal of the first (`cpu`) line.
pub fn parse_machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal …
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

pub fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    #[test]
    fn machine_busy_counts_every_busy_column_but_idle() {
        let stat = "cpu  100 2 30 5000 40 6 7 8 0 0\ncpu0 50 1 15 2500 20 3 3 4 0 0\n";
        assert_eq!(
            parse_machine_busy_ticks(stat),
            Some(100 + 2 + 30 + 6 + 7 + 8)
        );
        assert_eq!(parse_machine_busy_ticks("intr 5\n"), None);
    }

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
