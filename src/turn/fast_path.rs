//! When a channel may take the kernel fast path (issue 11), and when it must
//! leave it. The core decides; the I/O layer only writes what it is told
//! into the XDP program's maps (`Command::OffloadChannel` /
//! `Command::WithdrawChannel`).
//!
//! A channel is offloaded while everything the socket path checks for a
//! ChannelData packet holds, and only until the earlier of its own expiry and
//! its peer's permission's (RFC 8656 §9, §12): the deadline travels with the
//! entry, so the kernel stops on time even before the worker's timer fires.
//! Refreshing either moves the deadline (a new `OffloadChannel`); expiry,
//! Refresh with lifetime 0 and deletion withdraw it.

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{Allocation, AllocationId, AllocationState, ClientTransport};
use super::server::{Command, Server};

/// Both directions of an offloaded channel: ChannelData from `client` to
/// `listening` on `channel` leaves as UDP `relay → peer`; UDP from `peer` to
/// `relay` arrives at the client as ChannelData `listening → client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelRoute {
    pub client: SocketAddr,
    pub listening: SocketAddr,
    pub channel: u16,
    pub relay: SocketAddr,
    pub peer: SocketAddr,
}

/// The route of channel `number` to `peer`, and until when the fast path may
/// relay it (the channel's, its permission's and the allocation's expiry,
/// whichever comes first) — `None` when the socket path must carry it.
fn eligible(
    alloc: &Allocation,
    number: u16,
    peer: SocketAddr,
    channel_expires: Instant,
    shared_relay: bool,
    now: Instant,
) -> Option<(ChannelRoute, Instant)> {
    // UDP clients only (a stream client's ChannelData is framed in TCP), and
    // only once the relay socket is open.
    if alloc.client.transport != ClientTransport::Udp
        || alloc.state != AllocationState::Active
        || alloc.relay_tcp
    {
        return None;
    }
    let relay = alloc.relay_for(&peer)?;
    let listening = alloc.client.server;
    // The program rewrites addresses within one family (RFC 6156 mixed
    // allocations stay on the socket path), and matches exact addresses: a
    // wildcard listener or relay gives it nothing to match.
    if alloc.client.client.is_ipv4() != relay.is_ipv4()
        || listening.ip().is_unspecified()
        || relay.ip().is_unspecified()
    {
        return None;
    }
    // Shared relay sockets: peer datagrams reach this allocation only through
    // its claim on the peer endpoint (`turn::shared`).
    if shared_relay && !alloc.claims.contains(&peer) {
        return None;
    }
    let permission = alloc.permissions.iter().find(|p| p.ip == peer.ip())?;
    let until = channel_expires.min(permission.expires).min(alloc.expires);
    (now < until).then_some((
        ChannelRoute {
            client: alloc.client.client,
            listening,
            channel: number,
            relay,
            peer,
        },
        until,
    ))
}

impl Server {
    /// Brings the fast-path entries of allocation `id` in line with its
    /// channels and permissions: offloads what became eligible or got a new
    /// deadline, withdraws what no longer is. Call after anything that
    /// changes a channel or a permission.
    pub(crate) fn sync_fast_path(&mut self, id: AllocationId, now: Instant) {
        if !self.config.fast_path {
            return;
        }
        let shared_relay = self.shared.is_some();
        // max-bps and bps-capacity are counted on the socket path: with
        // either set, nothing goes to the kernel (issue 12).
        let rate_limited = self.config.max_bps > 0 || self.config.bps_capacity > 0;
        let Some(alloc) = self.allocation(id) else {
            return;
        };
        let mut changes = Vec::new();
        for (i, c) in alloc.channels.iter().enumerate() {
            let want = if c.is_live(now) && !rate_limited {
                eligible(alloc, c.number, c.peer, c.expires, shared_relay, now)
            } else {
                None
            };
            match (want, c.offloaded) {
                (Some((_, until)), Some((_, at))) if at == until => {}
                (Some((route, until)), _) => changes.push((i, Some((route, until)))),
                (None, Some(_)) => changes.push((i, None)),
                (None, None) => {}
            }
        }
        if changes.is_empty() {
            return;
        }
        let Some(alloc) = self.allocation_mut(id) else {
            return;
        };
        let mut commands = Vec::with_capacity(changes.len());
        for (i, change) in changes {
            let Some(c) = alloc.channels.get_mut(i) else {
                continue;
            };
            match change {
                Some((route, until)) => {
                    c.offloaded = Some((route, until));
                    commands.push(Command::OffloadChannel { route, until });
                }
                None => {
                    if let Some((route, _)) = c.offloaded.take() {
                        commands.push(Command::WithdrawChannel { route });
                    }
                }
            }
        }
        self.stats.fast_path_offloads += commands
            .iter()
            .filter(|c| matches!(c, Command::OffloadChannel { .. }))
            .count() as u64;
        self.commands.extend(commands);
    }

    /// Withdraws every offloaded channel of an allocation being freed.
    pub(crate) fn withdraw_fast_path(&mut self, alloc: &Allocation) {
        for c in &alloc.channels {
            if let Some((route, _)) = c.offloaded {
                self.commands.push_back(Command::WithdrawChannel { route });
            }
        }
    }

    /// Channels this shard has on the fast path now.
    pub fn offloaded_channels(&self) -> usize {
        self.live_allocations()
            .flat_map(|a| a.channels.iter())
            .filter(|c| c.offloaded.is_some())
            .count()
    }
}
