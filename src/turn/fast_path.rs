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
use super::bandwidth::DuplexLimit;
use super::server::{Command, Server};

pub use super::allocation::ChannelRoute;

/// How long an allocation that went over its rate on the fast path stays
/// off it (issue 12).
pub const RATE_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

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
        let Some(alloc) = self.allocation(id) else {
            return;
        };
        // Issue 12: an allocation that went over max-bps / bps-capacity on the
        // fast path stays on the socket path, whose buckets drop, for a while.
        let held = alloc.fast_path_hold.is_some_and(|until| now < until);
        let mut changes = Vec::new();
        for (i, c) in alloc.channels.iter().enumerate() {
            let want = if c.is_live(now) && !held {
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
                    if c.offloaded.is_none() {
                        // The kernel's counters start again (a withdrawal deletes them).
                        c.kernel_seen = [0; 4];
                    }
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

    /// Issue 12: `max-bps` and `bps-capacity` for channels the kernel relays.
    /// `read` gives what the kernel relayed on a route since it was offloaded
    /// (packets and bytes to the peer, to the client); the growth since the
    /// last poll is counted in the allocation's session totals and charged to
    /// its buckets. An allocation over its rate leaves the fast path for
    /// `RATE_HOLD` (the socket path's buckets then drop the excess) and goes
    /// back once that has passed. Call about once a second, only with a rate
    /// configured.
    pub fn poll_fast_path_rates(
        &mut self,
        now: Instant,
        read: &mut dyn FnMut(&ChannelRoute) -> Option<[u64; 4]>,
    ) {
        if !self.config.fast_path || (self.config.max_bps == 0 && self.config.bps_capacity == 0) {
            return;
        }
        let capacity_rate = self.config.bps_capacity;
        for id in self.allocation_ids() {
            let capacity = &mut self.capacity;
            let Some(a) = super::server::slot_allocation(&mut self.slots, id) else {
                continue;
            };
            let mut to_peer = 0u64;
            let mut to_client = 0u64;
            for c in a.channels.iter_mut() {
                let Some((route, _)) = &c.offloaded else {
                    continue;
                };
                let Some(total) = read(route) else {
                    continue;
                };
                let delta: Vec<u64> = total
                    .iter()
                    .zip(c.kernel_seen.iter())
                    .map(|(t, s)| t.saturating_sub(*s))
                    .collect();
                c.kernel_seen = total;
                if let [pp, pb, cp, cb] = delta[..] {
                    a.traffic.sent_packets += pp;
                    a.traffic.sent_bytes += pb;
                    a.traffic.received_packets += cp;
                    a.traffic.received_bytes += cb;
                    to_peer += pb;
                    to_client += cb;
                }
            }
            let mut within = true;
            if let Some(limit) = a.limit.as_mut() {
                within &= limit.to_peer.charge(to_peer, now);
                within &= limit.to_client.charge(to_client, now);
            }
            if capacity_rate > 0 {
                let server =
                    capacity.get_or_insert_with(|| Box::new(DuplexLimit::new(capacity_rate, now)));
                within &= server.to_peer.charge(to_peer, now);
                within &= server.to_client.charge(to_client, now);
            }
            let hold_over = a.fast_path_hold.is_some_and(|until| now >= until);
            if !within {
                a.fast_path_hold = Some(now + RATE_HOLD);
            } else if hold_over {
                a.fast_path_hold = None;
            }
            if !within || hold_over {
                self.sync_fast_path(id, now);
            }
        }
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
