//! coturn-style session lines (issue 12): one info line when an allocation
//! is created, refreshed and deleted, with realm, username, client address
//! and transport, relayed addresses and lifetime, and on deletion how long it
//! lived and what it relayed each way — what operators feed to fail2ban and
//! billing. The counts are the allocation's own (`Traffic`, bumped where the
//! socket path already touches the allocation); datagrams the kernel fast
//! path relayed are added when they are read for the rate limits
//! (`poll_fast_path_rates`, only with `max-bps` or `bps-capacity` set).

use std::time::Instant;

use super::allocation::Allocation;

pub use super::bandwidth::Traffic;

/// Why an allocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// RFC 8656 §7.4: Refresh with LIFETIME 0.
    Deleted,
    /// Its lifetime ran out.
    Expired,
    /// Its TCP/TLS connection closed (RFC 8656 §3.1).
    ConnectionClosed,
    /// Its relay socket could not be opened.
    RelayFailed,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted by the client (Refresh 0)",
            Self::Expired => "lifetime expired",
            Self::ConnectionClosed => "client connection closed",
            Self::RelayFailed => "relay socket failed",
        }
    }
}

fn username(a: &Allocation) -> &str {
    a.owner.as_ref().map_or("", |o| &o.username)
}

fn relayed(a: &Allocation) -> String {
    match a.secondary {
        Some(s) => format!("{} {}", a.advertised, s.advertised),
        None => a.advertised.to_string(),
    }
}

/// The client's transport, and the relayed one when it is TCP (RFC 6062).
fn transport(a: &Allocation) -> &'static str {
    use super::allocation::ClientTransport;
    match (a.client.transport, a.relay_tcp) {
        (ClientTransport::Udp, _) => "UDP",
        (ClientTransport::Stream(_), false) => "TCP/TLS",
        (ClientTransport::Stream(_), true) => "TCP/TLS, TCP relay",
    }
}

pub(crate) fn created(a: &Allocation, realm: &str) {
    live_event(a, realm, "created");
}

pub(crate) fn refreshed(a: &Allocation, realm: &str) {
    live_event(a, realm, "refreshed");
}

/// A created or refreshed allocation: one line with its lifetime.
fn live_event(a: &Allocation, realm: &str, event: &str) {
    tracing::info!(
        session = a.session,
        realm,
        username = username(a),
        client = %a.client.client,
        transport = transport(a),
        relayed = %relayed(a),
        lifetime = a.lifetime.as_secs(),
        "session {}: allocation {event}",
        a.session
    );
}

pub(crate) fn deleted(a: &Allocation, realm: &str, reason: EndReason, now: Instant) {
    let t = &a.traffic;
    tracing::info!(
        session = a.session,
        realm,
        username = username(a),
        client = %a.client.client,
        transport = transport(a),
        relayed = %relayed(a),
        reason = reason.as_str(),
        duration = now.saturating_duration_since(a.created).as_secs(),
        sent_packets = t.sent_packets,
        sent_bytes = t.sent_bytes,
        received_packets = t.received_packets,
        received_bytes = t.received_bytes,
        "session {}: allocation deleted",
        a.session
    );
}
