//! Counters a worker keeps about its I/O: plain integers the worker owns
//! and bumps on its own thread, copied into its [`WorkerMetrics`] once per
//! loop turn. They live here, below the worker, so that the worker depends
//! on the metrics and never the other way round (`crate::worker` re-exports
//! them).
//!
//! [`WorkerMetrics`]: super::WorkerMetrics

use std::time::Duration;

/// Counters a worker keeps about its I/O.
#[derive(Debug, Default, Clone)]
pub struct IoCounters {
    pub cross_worker_sent: u64,
    pub cross_worker_dropped: u64,
    pub same_worker_relayed: u64,
    pub relay_open_failures: u64,
    pub streams: crate::io::stream::StreamCounters,
    /// RFC 6062 data connections handed to another worker.
    pub stream_handoffs: u64,
    /// How long loop turns kept the worker busy (from the first datagram
    /// or the end of the wait, to the flush), by `TURN_BUCKETS_NS`; a
    /// stall here is latency for every flow of the worker.
    pub busy_turns: [u64; TURN_BUCKETS_NS.len() + 1],
    /// The longest busy turn so far, and all busy time, nanoseconds.
    pub longest_turn_ns: u64,
    pub busy_ns: u64,
    /// The most CPU time one turn used, nanoseconds: when the longest turn's
    /// wall time is far above this, the worker waited for a CPU, not on work.
    pub longest_turn_cpu_ns: u64,
}

/// Upper bounds of the busy-turn histogram buckets (the last bucket is +Inf).
pub const TURN_BUCKETS_NS: [u64; 6] = [
    250_000, 1_000_000, 5_000_000, 10_000_000, 20_000_000, 50_000_000,
];

impl IoCounters {
    pub(crate) fn record_turn(&mut self, busy: Duration, cpu: Duration) {
        let cpu_ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.longest_turn_cpu_ns = self.longest_turn_cpu_ns.max(cpu_ns);
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
        let slot = TURN_BUCKETS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(TURN_BUCKETS_NS.len());
        if let Some(n) = self.busy_turns.get_mut(slot) {
            *n += 1;
        }
        self.longest_turn_ns = self.longest_turn_ns.max(ns);
        self.busy_ns = self.busy_ns.saturating_add(ns);
    }
}
