//! Live metrics: per-worker counters read without locks, and `/metrics` in
//! the Prometheus text exposition format on a small control-plane thread.
//!
//! Each worker owns one [`WorkerMetrics`] (shared through an `Arc`) and
//! copies its plain counters into it once per loop turn with relaxed stores:
//! no atomic read-modify-write per packet, no lock. A scrape reads every
//! worker's atomics and renders the text; counters of different workers are
//! summed under a `worker` label each.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::io::{BackendCounters, BackendKind};
use crate::turn::server::{
    DropReason, Stats, COUNTED_CODES, COUNTED_METHODS, METHOD_SLOTS, RESULT_SLOTS,
};
use crate::worker::{IoCounters, TURN_BUCKETS_NS};
use crate::xdp::SharedFastPath;

mod turns;
mod xdp;

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

fn result_label(slot: usize) -> String {
    match slot {
        0 => "success".to_owned(),
        s => match COUNTED_CODES.get(s - 1) {
            Some(code) => code.to_string(),
            None => "other".to_owned(),
        },
    }
}

/// Renders the Prometheus text exposition format (version 0.0.4).
pub fn render(src: &MetricsSource) -> String {
    let mut out = String::with_capacity(8192);
    header(
        &mut out,
        "ringturn_info",
        "gauge",
        "The running server: I/O backend and worker count.",
    );
    let _ = writeln!(
        out,
        "ringturn_info{{backend=\"{}\",workers=\"{}\",version=\"{}\"}} 1",
        src.backend.name(),
        src.workers.len(),
        env!("CARGO_PKG_VERSION")
    );
    let o = &mut out;
    // The kernel fast path's traffic is relayed traffic too: its row is
    // `worker="xdp"`, so a sum over the label is everything relayed.
    let fast = src
        .fast_path
        .as_ref()
        .map(|f| f.counters().unwrap_or_default());
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_packets_client_to_peer_total",
        "Datagrams relayed from clients to peers (ChannelData and Send indications).",
        |w| get(&w.packets_to_peers),
        |x| x.packets_to_peers,
    );
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_packets_peer_to_client_total",
        "Datagrams relayed from peers to clients (ChannelData and Data indications).",
        |w| get(&w.packets_to_clients),
        |x| x.packets_to_clients,
    );
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_bytes_client_to_peer_total",
        "Payload bytes relayed from clients to peers.",
        |w| get(&w.bytes_to_peers),
        |x| x.bytes_to_peers,
    );
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_bytes_peer_to_client_total",
        "Payload bytes relayed from peers to clients.",
        |w| get(&w.bytes_to_clients),
        |x| x.bytes_to_clients,
    );
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_channel_data_client_to_peer_total",
        "Of the datagrams relayed from clients to peers, those that came as ChannelData.",
        |w| get(&w.channel_data_to_peers),
        |x| x.packets_to_peers,
    );
    xdp::relayed(
        o,
        src,
        fast,
        "ringturn_relayed_channel_data_peer_to_client_total",
        "Of the datagrams relayed from peers to clients, those that left as ChannelData.",
        |w| get(&w.channel_data_to_clients),
        |x| x.packets_to_clients,
    );
    xdp::render(o, src, fast);
    per_worker(
        o,
        src,
        "ringturn_allocations",
        "gauge",
        "Live allocations.",
        |w| get(&w.allocations),
    );
    per_worker(
        o,
        src,
        "ringturn_shared_relay_peer_claims",
        "gauge",
        "Peer endpoints claimed by allocations on shared relay sockets (relay-socket-mode=shared).",
        |w| get(&w.peer_claims),
    );
    per_worker(
        o,
        src,
        "ringturn_timers_queued",
        "gauge",
        "Timers queued: one per live allocation, permission, channel, reservation and unbound RFC 6062 peer connection.",
        |w| get(&w.timers_queued),
    );
    per_worker(
        o,
        src,
        "ringturn_cached_transactions",
        "gauge",
        "Answers kept for retransmitted requests (RFC 8489 section 6.3.4, 40 s).",
        |w| get(&w.cached_transactions),
    );
    per_worker(
        o,
        src,
        "ringturn_transaction_cache_full_total",
        "counter",
        "Answers not kept for retransmissions because the transaction cache was at its cap (100,000 per worker).",
        |w| get(&w.transaction_cache_full),
    );
    per_worker(
        o,
        src,
        "ringturn_allocations_created_total",
        "counter",
        "Allocations created.",
        |w| get(&w.allocations_created),
    );
    per_worker(
        o,
        src,
        "ringturn_allocations_expired_total",
        "counter",
        "Allocations that expired (not refreshed).",
        |w| get(&w.allocations_expired),
    );
    per_worker(
        o,
        src,
        "ringturn_permissions_installed_total",
        "counter",
        "Permissions installed (refreshes not counted).",
        |w| get(&w.permissions_installed),
    );
    per_worker(
        o,
        src,
        "ringturn_channels_bound_total",
        "counter",
        "Channels newly bound (refreshes not counted).",
        |w| get(&w.channels_bound),
    );
    per_worker(
        o,
        src,
        "ringturn_requests_total",
        "counter",
        "STUN/TURN requests received.",
        |w| get(&w.requests),
    );

    header(
        o,
        "ringturn_responses_total",
        "counter",
        "Responses sent, by request method and result (success or error code).",
    );
    for (i, w) in src.workers.iter().enumerate() {
        for (m, row) in w.responses.iter().enumerate() {
            let method = COUNTED_METHODS.get(m).map_or("other", |(_, n)| n);
            for (r, count) in row.iter().enumerate() {
                let n = get(count);
                if n == 0 {
                    continue;
                }
                let _ = writeln!(
                    o,
                    "ringturn_responses_total{{worker=\"{i}\",method=\"{method}\",result=\"{}\"}} {n}",
                    result_label(r)
                );
            }
        }
    }
    header(
        o,
        "ringturn_dropped_datagrams_total",
        "counter",
        "Datagrams from clients or peers that were not relayed nor answered, by reason.",
    );
    for (i, w) in src.workers.iter().enumerate() {
        for (reason, count) in DropReason::ALL.iter().zip(w.drops.iter()) {
            let _ = writeln!(
                o,
                "ringturn_dropped_datagrams_total{{worker=\"{i}\",reason=\"{}\"}} {}",
                reason.name(),
                get(count)
            );
        }
    }
    per_worker(
        o,
        src,
        "ringturn_send_dropped_total",
        "counter",
        "Datagrams lost on send (socket buffer full, unreachable).",
        |w| get(&w.dropped_sends),
    );
    per_worker(
        o,
        src,
        "ringturn_gso_sends_total",
        "counter",
        "UDP GSO sends.",
        |w| get(&w.gso_sends),
    );
    per_worker(
        o,
        src,
        "ringturn_gso_segments_total",
        "counter",
        "Datagrams carried by UDP GSO sends.",
        |w| get(&w.gso_segments),
    );
    per_worker(
        o,
        src,
        "ringturn_gso_fallbacks_total",
        "counter",
        "Times the kernel refused GSO (plain sends from then on).",
        |w| get(&w.gso_fallbacks),
    );
    per_worker(
        o,
        src,
        "ringturn_gro_receives_total",
        "counter",
        "Coalesced receives (UDP GRO), each split into its datagrams.",
        |w| get(&w.gro_receives),
    );
    per_worker(
        o,
        src,
        "ringturn_gro_segments_total",
        "counter",
        "Datagrams carried by coalesced receives.",
        |w| get(&w.gro_segments),
    );
    per_worker(
        o,
        src,
        "ringturn_gro_fallbacks_total",
        "counter",
        "Times the kernel refused UDP_GRO on a socket (not asked again).",
        |w| get(&w.gro_fallbacks),
    );
    per_worker(
        o,
        src,
        "ringturn_gro_dropped_total",
        "counter",
        "Received datagrams dropped because they could not be split (too large).",
        |w| get(&w.gro_dropped),
    );
    per_worker(
        o,
        src,
        "ringturn_cross_worker_forwards_total",
        "counter",
        "Relay-to-relay datagrams handed to another worker's queue.",
        |w| get(&w.cross_worker_sent),
    );
    per_worker(
        o,
        src,
        "ringturn_cross_worker_dropped_total",
        "counter",
        "Relay-to-relay datagrams dropped on a full worker queue.",
        |w| get(&w.cross_worker_dropped),
    );
    per_worker(
        o,
        src,
        "ringturn_same_worker_relay_forwards_total",
        "counter",
        "Relay-to-relay datagrams short-circuited within one worker.",
        |w| get(&w.same_worker_relayed),
    );
    per_worker(
        o,
        src,
        "ringturn_relay_open_failures_total",
        "counter",
        "Relay sockets that could not be opened.",
        |w| get(&w.relay_open_failures),
    );
    per_worker(
        o,
        src,
        "ringturn_stream_connections",
        "gauge",
        "TCP and TLS client connections open.",
        |w| get(&w.stream_connections),
    );
    per_worker(
        o,
        src,
        "ringturn_stream_accepted_total",
        "counter",
        "TCP and TLS client connections accepted.",
        |w| get(&w.stream_accepted),
    );
    per_worker(
        o,
        src,
        "ringturn_stream_refused_total",
        "counter",
        "TCP and TLS connections refused by max-connections or max-connections-per-ip.",
        |w| get(&w.stream_refused),
    );
    header(
        o,
        "ringturn_stream_closed_total",
        "counter",
        "TCP and TLS connections closed, by why: the client, a deadline, bytes that are not STUN, a socket error.",
    );
    for (i, w) in src.workers.iter().enumerate() {
        for (reason, a) in ["peer", "deadline", "malformed", "error"]
            .iter()
            .zip(w.stream_closed.iter())
        {
            let _ = writeln!(
                o,
                "ringturn_stream_closed_total{{worker=\"{i}\",reason=\"{reason}\"}} {}",
                get(a)
            );
        }
    }
    per_worker(
        o,
        src,
        "ringturn_stream_dropped_frames_total",
        "counter",
        "Frames dropped because a connection's output was full (stream-buffer-limit).",
        |w| get(&w.stream_dropped_frames),
    );
    per_worker(
        o,
        src,
        "ringturn_tcp_relay_bytes_total",
        "counter",
        "RFC 6062: bytes passed between peer connections and data connections.",
        |w| get(&w.tcp_relay_bytes),
    );
    per_worker(
        o,
        src,
        "ringturn_tcp_relay_spliced_total",
        "counter",
        "RFC 6062: data connections joined to their peer with splice(2), bytes never copied to user space.",
        |w| get(&w.tcp_relay_spliced),
    );
    turns::render(o, src);
    out
}

/// The `/metrics` endpoint: a blocking HTTP/1.x responder on its own thread.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// A scrape that sends nothing for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);
/// The largest request head read.
const MAX_REQUEST: usize = 8192;

/// Binds `addr` and serves `/metrics` from `source` on a new thread.
pub fn spawn(addr: SocketAddr, source: MetricsSource) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ringturn-metrics".to_owned())
        .spawn(move || serve(&listener, &source, &flag))?;
    Ok(MetricsServer {
        stop,
        thread: Some(thread),
        local_addr,
    })
}

impl MetricsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and joins the thread (within one poll interval or one client timeout).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: &TcpListener, source: &MetricsSource, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, source) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Reads one request head and answers it; the connection then closes.
fn answer(mut stream: TcpStream, source: &MetricsSource) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let started = std::time::Instant::now();
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        // A client trickling bytes gets no more than one timeout in all.
        if head.len() >= MAX_REQUEST || started.elapsed() >= CLIENT_TIMEOUT {
            break;
        }
        let left = CLIENT_TIMEOUT.saturating_sub(started.elapsed());
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(source),
        ),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    stream.flush()
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
