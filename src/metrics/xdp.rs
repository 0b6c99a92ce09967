//! The kernel fast path's metrics (issue 11): what it relayed, where it is
//! attached, how many channels it holds. Its packets are also rows of the
//! `ringturn_relayed_*` totals (`worker="xdp"`).

use std::fmt::Write as _;

use super::{header, per_worker, MetricsSource, WorkerMetrics};
use crate::xdp::XdpCounters;

/// A per-worker relayed total, plus the fast path's row when it is attached.
pub(super) fn relayed(
    out: &mut String,
    src: &MetricsSource,
    fast: Option<XdpCounters>,
    name: &str,
    help: &str,
    worker: impl Fn(&WorkerMetrics) -> u64,
    kernel: impl Fn(&XdpCounters) -> u64,
) {
    per_worker(out, src, name, "counter", help, worker);
    if let Some(x) = fast {
        let _ = writeln!(out, "{name}{{worker=\"xdp\"}} {}", kernel(&x));
    }
}

pub(super) fn render(out: &mut String, src: &MetricsSource, fast: Option<XdpCounters>) {
    let (Some(shared), Some(x)) = (&src.fast_path, fast) else {
        return;
    };
    for (name, help, value) in [
        (
            "ringturn_xdp_relayed_packets_client_to_peer_total",
            "ChannelData datagrams the XDP program relayed from clients to peers.",
            x.packets_to_peers,
        ),
        (
            "ringturn_xdp_relayed_packets_peer_to_client_total",
            "Datagrams the XDP program relayed from peers to clients as ChannelData.",
            x.packets_to_clients,
        ),
        (
            "ringturn_xdp_relayed_bytes_client_to_peer_total",
            "Payload bytes the XDP program relayed from clients to peers.",
            x.bytes_to_peers,
        ),
        (
            "ringturn_xdp_relayed_bytes_peer_to_client_total",
            "Payload bytes the XDP program relayed from peers to clients.",
            x.bytes_to_clients,
        ),
        (
            "ringturn_xdp_map_errors_total",
            "Writes to the XDP program's maps that failed (those channels stay on the socket path).",
            shared.map_errors(),
        ),
    ] {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let (c2p, _) = shared.offloaded();
    header(
        out,
        "ringturn_xdp_offloaded_channels",
        "gauge",
        "Channels the XDP program relays now.",
    );
    let _ = writeln!(out, "ringturn_xdp_offloaded_channels {c2p}");
    header(
        out,
        "ringturn_xdp_attached",
        "gauge",
        "Interfaces the XDP fast path is attached to, and in which mode.",
    );
    for a in shared.attachments() {
        let _ = writeln!(
            out,
            "ringturn_xdp_attached{{interface=\"{}\",mode=\"{}\"}} 1",
            a.interface, a.mode
        );
    }
}
