//! The relay's hot path on one shard: a client's datagram (ChannelData, a
//! Send indication or a STUN request, RFC 8656 §11-12) and a peer's datagram
//! (to the client as ChannelData or a Data indication), each checked against
//! the allocation's channels, permissions and rates and returned as a
//! forwarding decision over the caller's buffer — no copy, no allocation.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use super::allocation::{
    Allocation, AllocationId, AllocationState, ClientTransport, ClientTuple, RelayKey,
};
use super::bandwidth::DuplexLimit;
use super::server::{slot_allocation, ClientOutcome, DropReason, Forward, PeerOutcome, Server};
use crate::stun::channel_data::{write_header, CHANNEL_DATA_HEADER_LEN};
use crate::stun::{
    demultiplex, AttributeType, ChannelData, Class, Data, Message, Method, PacketKind,
    XorPeerAddress, HEADER_LEN,
};

/// The relay address and peer of ChannelData on `channel` (RFC 8656 §12.6).
#[inline]
fn channel_route(
    alloc: &Allocation,
    channel: u16,
    now: Instant,
) -> Result<(SocketAddr, SocketAddr), DropReason> {
    let binding = alloc
        .live_channel(channel, now)
        .ok_or(DropReason::NoChannel)?;
    let peer = binding.peer;
    if !alloc.has_permission(peer.ip(), now) {
        return Err(DropReason::NoPermission);
    }
    let relay = alloc.relay_for(&peer).ok_or(DropReason::NoPermission)?;
    Ok((relay, peer))
}

/// Charges `bytes` to the allocation's `max-bps` bucket and the shard's
/// `bps-capacity` one (false: over a rate, drop), and counts them in the
/// allocation's session totals.
#[inline]
fn charge(
    a: &mut Allocation,
    capacity: &mut Option<Box<DuplexLimit>>,
    capacity_rate: u64,
    bytes: usize,
    now: Instant,
    direction: Direction,
) -> bool {
    if let Some(limit) = a.limit.as_mut() {
        let bucket = match direction {
            Direction::ToPeer => &mut limit.to_peer,
            Direction::ToClient => &mut limit.to_client,
        };
        if !bucket.take(bytes, now) {
            return false;
        }
    }
    if capacity_rate > 0 {
        let server = capacity.get_or_insert_with(|| Box::new(DuplexLimit::new(capacity_rate, now)));
        let bucket = match direction {
            Direction::ToPeer => &mut server.to_peer,
            Direction::ToClient => &mut server.to_client,
        };
        if !bucket.take(bytes, now) {
            return false;
        }
    }
    match direction {
        Direction::ToPeer => a.traffic.to_peer(bytes),
        Direction::ToClient => a.traffic.to_client(bytes),
    }
    true
}

/// Which way a relayed datagram goes, for the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToPeer,
    ToClient,
}

impl Server {
    /// A datagram from a client on a listening address.
    pub fn handle_client_datagram(
        &mut self,
        now: Instant,
        from: ClientTuple,
        buf: &[u8],
    ) -> ClientOutcome {
        match demultiplex(buf, self.config.channel_range) {
            PacketKind::ChannelData => self.handle_client_channel_data(now, &from, buf),
            PacketKind::Stun => match Message::parse(buf) {
                Ok(msg) => self.handle_stun(now, from, &msg, buf),
                Err(_) => {
                    self.stats.malformed += 1;
                    self.drop_reason(DropReason::Malformed)
                }
            },
            PacketKind::Other => self.drop_reason(DropReason::NotStunOrChannelData),
        }
    }

    fn drop_reason(&mut self, reason: DropReason) -> ClientOutcome {
        self.stats.dropped += 1;
        self.count_drop(reason);
        ClientOutcome::Dropped(reason)
    }

    /// RFC 8656 §12.6: ChannelData from the client goes to the bound peer.
    fn handle_client_channel_data(
        &mut self,
        now: Instant,
        from: &ClientTuple,
        buf: &[u8],
    ) -> ClientOutcome {
        let Ok(cd) = ChannelData::parse(buf) else {
            self.stats.malformed += 1;
            return self.drop_reason(DropReason::Malformed);
        };
        // One lookup of the allocation for the checks, the rates and the
        // session counts (issue 12: counting adds no lookup here).
        let shared = self.shared.is_some();
        let len = cd.data.len();
        let capacity_rate = self.config.bps_capacity;
        let routed = match self.by_client.get(from).copied() {
            None => Err(DropReason::NoAllocation),
            Some(id) => match slot_allocation(&mut self.slots, id).filter(|a| now < a.expires) {
                None => Err(DropReason::NoAllocation),
                Some(alloc) => channel_route(alloc, cd.channel.0, now).and_then(|(relay, peer)| {
                    // Shared relay sockets claim the peer first (below).
                    if !shared
                        && !charge(
                            alloc,
                            &mut self.capacity,
                            capacity_rate,
                            len,
                            now,
                            Direction::ToPeer,
                        )
                    {
                        return Err(DropReason::RateLimited);
                    }
                    Ok((id, relay, peer))
                }),
            },
        };
        let (id, relay, peer) = match routed {
            Ok(r) => r,
            Err(reason) => return self.drop_reason(reason),
        };
        if shared {
            if let Err(reason) = self.claim_for_send(id, relay, peer) {
                return self.drop_reason(reason);
            }
            if !self.within_rate(id, len, now, Direction::ToPeer) {
                return self.drop_reason(DropReason::RateLimited);
            }
        }
        self.stats.forwarded_to_peers += 1;
        self.stats.channel_data_to_peers += 1;
        self.stats.bytes_to_peers += cd.data.len() as u64;
        let start = CHANNEL_DATA_HEADER_LEN;
        ClientOutcome::Forward(Forward {
            from: relay,
            to: peer,
            range: start..start + cd.data.len(),
            transport: ClientTransport::Udp,
        })
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        buf: &[u8],
    ) -> ClientOutcome {
        match msg.class() {
            Class::Request => {
                self.stats.requests += 1;
                self.handle_request(now, from, msg);
                ClientOutcome::Handled
            }
            Class::Indication => match msg.method() {
                Method::SEND => self.handle_send_indication(now, &from, msg, buf),
                // RFC 8489 §6.3.2: Binding indications keep NAT bindings alive; nothing to answer.
                Method::BINDING => ClientOutcome::Handled,
                _ => self.drop_reason(DropReason::UnexpectedClass),
            },
            Class::SuccessResponse | Class::ErrorResponse => {
                self.drop_reason(DropReason::UnexpectedClass)
            }
        }
    }

    /// RFC 8656 §10.2: a Send indication relays DATA to XOR-PEER-ADDRESS if a
    /// permission exists; anything wrong means a silent drop.
    fn handle_send_indication(
        &mut self,
        now: Instant,
        from: &ClientTuple,
        msg: &Message<'_>,
        buf: &[u8],
    ) -> ClientOutcome {
        if self.config.stun_only {
            return self.drop_reason(DropReason::Disabled);
        }
        let (Some(Ok(XorPeerAddress(peer))), Some(Ok(Data(data)))) =
            (msg.get::<XorPeerAddress>(), msg.get::<Data>())
        else {
            return self.drop_reason(DropReason::Malformed);
        };
        let Some(alloc) = self.allocation_for_client(from).filter(|a| now < a.expires) else {
            return self.drop_reason(DropReason::NoAllocation);
        };
        let Some(relay) = alloc.relay_for(&peer) else {
            return self.drop_reason(DropReason::NoPermission);
        };
        if !alloc.has_permission(peer.ip(), now) {
            return self.drop_reason(DropReason::NoPermission);
        }
        let id = alloc.id;
        if let Err(reason) = self.claim_for_send(id, relay, peer) {
            return self.drop_reason(reason);
        }
        let start = (data.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        if !self.within_rate(id, data.len(), now, Direction::ToPeer) {
            return self.drop_reason(DropReason::RateLimited);
        }
        self.stats.forwarded_to_peers += 1;
        self.stats.bytes_to_peers += data.len() as u64;
        ClientOutcome::Forward(Forward {
            from: relay,
            to: peer,
            range: start..start + data.len(),
            transport: ClientTransport::Udp,
        })
    }

    /// A datagram from `peer` arrived on the relay socket `relay`. The payload
    /// is `buf[payload]`, with `PEER_HEADROOM` bytes free before it and
    /// `PEER_TAILROOM` after, so the framing is written in place (RFC 8656
    /// §10.3 Data indication, §12.7 ChannelData).
    pub fn handle_peer_datagram(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> PeerOutcome {
        let id = match &self.shared {
            // Shared relay socket: the exact peer endpoint says whose it is.
            Some(shared) => match shared.owner(relay, peer) {
                Some(id) => id,
                None => return self.peer_drop(DropReason::Unclaimed),
            },
            None => match self.by_relay.get(&RelayKey(relay)).copied() {
                Some(id) => id,
                None => return self.peer_drop(DropReason::NoAllocation),
            },
        };
        // One lookup for the checks, the rates and the session counts.
        let len = payload.len();
        let capacity_rate = self.config.bps_capacity;
        let checked = match slot_allocation(&mut self.slots, id) {
            None => Err(DropReason::NoAllocation),
            // A TCP allocation (RFC 6062) has no datagrams to deliver.
            Some(a) if a.state != AllocationState::Active || now >= a.expires || a.relay_tcp => {
                Err(DropReason::NoAllocation)
            }
            // RFC 8656 §10.3: no permission for the peer's IP, no delivery.
            Some(a) if !a.has_permission(peer.ip(), now) => Err(DropReason::NoPermission),
            Some(a) => {
                if charge(
                    a,
                    &mut self.capacity,
                    capacity_rate,
                    len,
                    now,
                    Direction::ToClient,
                ) {
                    Ok((a.client, a.channel_for_peer(peer, now)))
                } else {
                    Err(DropReason::RateLimited)
                }
            }
        };
        let (client, channel) = match checked {
            Ok(c) => c,
            Err(reason) => return self.peer_drop(reason),
        };
        let Ok(len16) = u16::try_from(len) else {
            return self.peer_drop(DropReason::Malformed);
        };
        let framed = match channel {
            Some(number) => {
                let Some(start) = payload.start.checked_sub(CHANNEL_DATA_HEADER_LEN) else {
                    return self.peer_drop(DropReason::NoHeadroom);
                };
                let Some(head) = buf.get_mut(start..payload.start) else {
                    return self.peer_drop(DropReason::NoHeadroom);
                };
                head.copy_from_slice(&write_header(crate::stun::ChannelNumber(number), len16));
                let mut end = payload.end;
                if client.is_stream() {
                    // RFC 8656 §12.5: over streams, pad to a multiple of 4.
                    let padded = start + crate::stun::channel_data::frame_len(len, true);
                    match buf.get_mut(end..padded) {
                        Some(pad) => pad.fill(0),
                        None => return self.peer_drop(DropReason::NoHeadroom),
                    }
                    end = padded;
                }
                self.stats.channel_data_to_clients += 1;
                start..end
            }
            None => match self.write_data_indication(buf, &payload, peer) {
                Some(range) => range,
                None => return self.peer_drop(DropReason::NoHeadroom),
            },
        };
        self.stats.forwarded_to_clients += 1;
        self.stats.bytes_to_clients += len as u64;
        PeerOutcome::Forward(Forward {
            from: client.server,
            to: client.client,
            range: framed,
            transport: client.transport,
        })
    }

    /// Counts `bytes` relayed for allocation `id` (its session totals) if
    /// `max-bps` and `bps-capacity` leave room for them; false: drop them.
    /// Without either limit this is the counting alone.
    #[inline]
    fn within_rate(
        &mut self,
        id: AllocationId,
        bytes: usize,
        now: Instant,
        direction: Direction,
    ) -> bool {
        let capacity_rate = self.config.bps_capacity;
        match slot_allocation(&mut self.slots, id) {
            Some(a) => charge(a, &mut self.capacity, capacity_rate, bytes, now, direction),
            None => true,
        }
    }

    fn peer_drop(&mut self, reason: DropReason) -> PeerOutcome {
        self.stats.dropped += 1;
        self.count_drop(reason);
        PeerOutcome::Dropped(reason)
    }

    /// Writes a Data indication (header, XOR-PEER-ADDRESS, DATA header) in
    /// front of the payload and its padding after it.
    fn write_data_indication(
        &mut self,
        buf: &mut [u8],
        payload: &Range<usize>,
        peer: SocketAddr,
    ) -> Option<Range<usize>> {
        let addr_len = if peer.is_ipv4() { 8 } else { 20 };
        let front = HEADER_LEN + 4 + addr_len + 4;
        let start = payload.start.checked_sub(front)?;
        let len = payload.len();
        let padded = crate::stun::reader::padded_len(len);
        let end = payload.start + padded;
        buf.get_mut(payload.end..end)?.fill(0);
        let mut tid = [0u8; 12];
        let r = self.rng.next_u64().to_be_bytes();
        tid.iter_mut()
            .zip(r.iter().chain(r.iter()))
            .for_each(|(t, b)| *t = *b);
        let head = buf.get_mut(start..payload.start)?;
        let mut w = crate::stun::MessageWriter::new(
            head,
            crate::stun::MessageType::new(Method::DATA, Class::Indication),
            crate::stun::TransactionId(tid),
        )
        .ok()?;
        w.add(&XorPeerAddress(peer)).ok()?;
        // The DATA attribute header; its value is the payload already in place.
        let body_len = u16::try_from(4 + addr_len + 4 + padded).ok()?;
        let len16 = u16::try_from(len).ok()?;
        let data_head = [
            (AttributeType::DATA.0 >> 8) as u8,
            AttributeType::DATA.0 as u8,
            (len16 >> 8) as u8,
            len16 as u8,
        ];
        head.get_mut(HEADER_LEN + 4 + addr_len..)?
            .copy_from_slice(&data_head);
        head.get_mut(2..4)?.copy_from_slice(&body_len.to_be_bytes());
        Some(start..end)
    }
}
