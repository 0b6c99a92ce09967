//! `/metrics` as text: every metric in the Prometheus text exposition
//! format (version 0.0.4), with its HELP and TYPE lines and one sample per
//! worker (and the kernel fast path's row where it counts).

use std::fmt::Write as _;

use super::{get, header, per_worker, turns, xdp, MetricsSource};
use crate::turn::server::{DropReason, COUNTED_CODES, COUNTED_METHODS};

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
