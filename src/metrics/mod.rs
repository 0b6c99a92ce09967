//! Live metrics: per-worker counters read without locks, and `/metrics` in
//! the Prometheus text exposition format on a small control-plane thread.
//!
//! Each worker owns one [`WorkerMetrics`] (shared through an `Arc`) and
//! copies its plain counters into it once per loop turn with relaxed stores:
//! no atomic read-modify-write per packet, no lock. A scrape reads every
//! worker's atomics and renders the text; counters of different workers are
//! summed under a `worker` label each.
//!
//! Here: `WorkerMetrics` and how a worker publishes into it. `io_counters`:
//! the worker's own I/O counters; `exposition`: the text `/metrics` serves;
//! `endpoint`: the HTTP thread; `turns`, `xdp`: their metrics' rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::io::{BackendCounters, BackendKind};
use crate::turn::server::{DropReason, Stats, METHOD_SLOTS, RESULT_SLOTS};
use crate::xdp::SharedFastPath;

mod endpoint;
mod exposition;
mod io_counters;
mod turns;
mod xdp;

pub use endpoint::{spawn, MetricsServer};
pub use exposition::render;
pub use io_counters::{IoCounters, TURN_BUCKETS_NS};

const DROP_SLOTS: usize = DropReason::ALL.len();

/// One worker's counters, written by that worker only.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub packets_to_peers: AtomicU64,
    pub packets_to_clients: AtomicU64,
    pub bytes_to_peers: AtomicU64,
    pub bytes_to_clients: AtomicU64,
    pub channel_data_to_peers: AtomicU64,
    pub channel_data_to_clients: AtomicU64,
    /// Gauge: live allocations.
    pub allocations: AtomicU64,
    /// Gauge: peer endpoints claimed on shared relay sockets.
    pub peer_claims: AtomicU64,
    /// Gauge: timers queued (one per live allocation, permission, channel,
    /// reservation, unbound RFC 6062 peer connection).
    pub timers_queued: AtomicU64,
    /// Gauge: answers kept for retransmissions.
    pub cached_transactions: AtomicU64,
    /// Answers not kept because the transaction cache was full.
    pub transaction_cache_full: AtomicU64,
    pub allocations_created: AtomicU64,
    pub allocations_expired: AtomicU64,
    pub permissions_installed: AtomicU64,
    pub channels_bound: AtomicU64,
    pub requests: AtomicU64,
    pub responses: [[AtomicU64; RESULT_SLOTS]; METHOD_SLOTS],
    pub drops: [AtomicU64; DROP_SLOTS],
    pub dropped_sends: AtomicU64,
    pub gso_sends: AtomicU64,
    pub gso_segments: AtomicU64,
    pub gso_fallbacks: AtomicU64,
    pub gro_receives: AtomicU64,
    pub gro_segments: AtomicU64,
    pub gro_fallbacks: AtomicU64,
    pub gro_dropped: AtomicU64,
    pub cross_worker_sent: AtomicU64,
    pub cross_worker_dropped: AtomicU64,
    pub same_worker_relayed: AtomicU64,
    pub relay_open_failures: AtomicU64,
    /// Gauge: TCP/TLS connections open on this worker.
    pub stream_connections: AtomicU64,
    pub stream_accepted: AtomicU64,
    pub stream_refused: AtomicU64,
    /// Closed by: [peer, deadline, malformed, error].
    pub stream_closed: [AtomicU64; 4],
    pub stream_dropped_frames: AtomicU64,
    /// RFC 6062: bytes between peers and data connections; pipes spliced.
    pub tcp_relay_bytes: AtomicU64,
    pub tcp_relay_spliced: AtomicU64,
    /// Busy loop turns by duration bucket (`TURN_BUCKETS_NS`, then +Inf),
    /// all busy time and the longest turn, nanoseconds.
    pub busy_turns: [AtomicU64; TURN_BUCKETS_NS.len() + 1],
    pub busy_ns: AtomicU64,
    pub longest_turn_ns: AtomicU64,
    pub longest_turn_cpu_ns: AtomicU64,
}

fn set(a: &AtomicU64, v: u64) {
    a.store(v, Ordering::Relaxed);
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl WorkerMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies the sizes of the shard's queues in (relaxed stores only).
    pub fn publish_tables(&self, timers: usize, cached_transactions: usize) {
        set(&self.timers_queued, timers as u64);
        set(&self.cached_transactions, cached_transactions as u64);
    }

    /// Copies a worker's plain counters in (relaxed stores only).
    pub fn publish(&self, stats: &Stats, io: &IoCounters, backend: &BackendCounters) {
        set(&self.packets_to_peers, stats.forwarded_to_peers);
        set(&self.packets_to_clients, stats.forwarded_to_clients);
        set(&self.bytes_to_peers, stats.bytes_to_peers);
        set(&self.bytes_to_clients, stats.bytes_to_clients);
        set(&self.channel_data_to_peers, stats.channel_data_to_peers);
        set(&self.channel_data_to_clients, stats.channel_data_to_clients);
        set(&self.allocations, stats.allocations as u64);
        set(&self.peer_claims, stats.peer_claims as u64);
        set(&self.transaction_cache_full, stats.transaction_cache_full);
        set(&self.allocations_created, stats.allocations_created);
        set(&self.allocations_expired, stats.allocations_expired);
        set(&self.permissions_installed, stats.permissions_installed);
        set(&self.channels_bound, stats.channels_bound);
        for (row, counts) in self.responses.iter().zip(stats.responses.iter()) {
            for (a, v) in row.iter().zip(counts.iter()) {
                set(a, *v);
            }
        }
        set(&self.requests, stats.requests);
        for (a, v) in self.drops.iter().zip(stats.drops.iter()) {
            set(a, *v);
        }
        set(&self.dropped_sends, backend.dropped_sends);
        set(&self.gso_sends, backend.gso_sends);
        set(&self.gso_segments, backend.gso_segments);
        set(&self.gso_fallbacks, backend.gso_fallbacks);
        set(&self.gro_receives, backend.gro_receives);
        set(&self.gro_segments, backend.gro_segments);
        set(&self.gro_fallbacks, backend.gro_fallbacks);
        set(&self.gro_dropped, backend.gro_dropped);
        set(&self.cross_worker_sent, io.cross_worker_sent);
        set(&self.cross_worker_dropped, io.cross_worker_dropped);
        set(&self.same_worker_relayed, io.same_worker_relayed);
        set(&self.relay_open_failures, io.relay_open_failures);
        let s = &io.streams;
        set(&self.stream_connections, s.open);
        set(&self.stream_accepted, s.accepted);
        set(&self.stream_refused, s.refused);
        for (a, v) in self.stream_closed.iter().zip([
            s.closed_by_peer,
            s.closed_deadline,
            s.closed_malformed,
            s.closed_error,
        ]) {
            set(a, v);
        }
        set(&self.stream_dropped_frames, s.dropped_frames);
        set(&self.tcp_relay_bytes, s.piped_bytes);
        set(&self.tcp_relay_spliced, s.spliced_pipes);
        for (a, v) in self.busy_turns.iter().zip(io.busy_turns.iter()) {
            set(a, *v);
        }
        set(&self.busy_ns, io.busy_ns);
        set(&self.longest_turn_ns, io.longest_turn_ns);
        set(&self.longest_turn_cpu_ns, io.longest_turn_cpu_ns);
    }
}

/// What `/metrics` reports: every worker's counters and the backend in use.
#[derive(Debug, Clone)]
pub struct MetricsSource {
    pub workers: Vec<Arc<WorkerMetrics>>,
    pub backend: BackendKind,
    /// The kernel fast path, when attached: its traffic counts as relayed.
    pub fast_path: Option<Arc<SharedFastPath>>,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A metric with one sample per worker.
fn per_worker(
    out: &mut String,
    src: &MetricsSource,
    name: &str,
    kind: &str,
    help: &str,
    value: impl Fn(&WorkerMetrics) -> u64,
) {
    header(out, name, kind, help);
    for (i, w) in src.workers.iter().enumerate() {
        let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", value(w));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::stun::Method;
    use crate::turn::server::{method_slot, result_slot};

    #[test]
    fn drop_reasons_index_their_own_slot() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }

    #[test]
    fn render_labels_methods_results_and_reasons() {
        let mut stats = Stats {
            forwarded_to_peers: 7,
            ..Stats::default()
        };
        stats.responses[method_slot(Method::ALLOCATE)][result_slot(Some(401))] = 2;
        stats.responses[method_slot(Method::REFRESH)][result_slot(None)] = 1;
        stats.responses[method_slot(Method::DATA)][result_slot(Some(499))] = 1;
        stats.drops[DropReason::NoPermission.index()] = 3;
        let w = Arc::new(WorkerMetrics::new());
        w.publish(&stats, &IoCounters::default(), &BackendCounters::default());
        w.publish_tables(42, 7);
        let text = render(&MetricsSource {
            fast_path: None,
            workers: vec![w, Arc::new(WorkerMetrics::new())],
            backend: BackendKind::Batch,
        });
        for line in [
            "ringturn_info{backend=\"batch\",workers=\"2\",",
            "ringturn_relayed_packets_client_to_peer_total{worker=\"0\"} 7",
            "ringturn_relayed_packets_client_to_peer_total{worker=\"1\"} 0",
            "ringturn_responses_total{worker=\"0\",method=\"allocate\",result=\"401\"} 2",
            "ringturn_responses_total{worker=\"0\",method=\"refresh\",result=\"success\"} 1",
            "ringturn_responses_total{worker=\"0\",method=\"other\",result=\"other\"} 1",
            "ringturn_dropped_datagrams_total{worker=\"0\",reason=\"no_permission\"} 3",
            "ringturn_timers_queued{worker=\"0\"} 42",
            "ringturn_worker_busy_turn_seconds_bucket{worker=\"1\",le=\"+Inf\"} 0",
            "# TYPE ringturn_worker_longest_turn_microseconds gauge",
            "ringturn_cached_transactions{worker=\"0\"} 7",
            "ringturn_transaction_cache_full_total{worker=\"1\"} 0",
            "# TYPE ringturn_allocations gauge",
            "# TYPE ringturn_shared_relay_peer_claims gauge",
            "# TYPE ringturn_gso_fallbacks_total counter",
            "# TYPE ringturn_gro_fallbacks_total counter",
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}
