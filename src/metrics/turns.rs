//! How long each worker's loop turns kept it busy: a Prometheus histogram
//! per worker and the longest turn. A turn is busy from its first datagram
//! (or the end of its wait) to its flush; every flow of the worker waits
//! that long at worst, so a long turn is added latency for all of them.

use std::fmt::Write as _;

use super::{get, header, per_worker, MetricsSource, TURN_BUCKETS_NS};

pub(super) fn render(out: &mut String, src: &MetricsSource) {
    let name = "ringturn_worker_busy_turn_seconds";
    header(
        out,
        name,
        "histogram",
        "Loop turns by how long they kept the worker busy (first datagram or end of wait to flush).",
    );
    for (i, w) in src.workers.iter().enumerate() {
        let mut cumulative = 0u64;
        for (bound, count) in TURN_BUCKETS_NS.iter().zip(w.busy_turns.iter()) {
            cumulative += get(count);
            let le = *bound as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{i}\",le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += w.busy_turns.last().map_or(0, get);
        let _ = writeln!(
            out,
            "{name}_bucket{{worker=\"{i}\",le=\"+Inf\"}} {cumulative}"
        );
        let sum = get(&w.busy_ns) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{worker=\"{i}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{worker=\"{i}\"}} {cumulative}");
    }
    // A gauge in seconds as a float would need its own writer; microseconds
    // keep the integer helper and are fine-grained enough for a stall.
    per_worker(
        out,
        src,
        "ringturn_worker_longest_turn_microseconds",
        "gauge",
        "The longest busy loop turn of the worker since it started.",
        |w| get(&w.longest_turn_ns) / 1000,
    );
    per_worker(
        out,
        src,
        "ringturn_worker_longest_turn_cpu_microseconds",
        "gauge",
        "The most CPU time one loop turn of the worker used; far below the longest turn means the worker waited for a CPU.",
        |w| get(&w.longest_turn_cpu_ns) / 1000,
    );
}
