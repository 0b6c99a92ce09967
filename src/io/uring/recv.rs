//! The receive side of a completion: one buffer of a multishot RecvMsg,
//! parsed (io_uring_recvmsg_out, the sender's address, the GRO segment size)
//! and handed to the worker datagram by datagram.

use super::send::{PendingPayload, Queue};
use super::{UringBackend, GRO_RECV_PREFIX, NAME_LEN, RECV_PREFIX};
use crate::io::gro::{deliver_segments, gro_segment_size, GRO_CMSG_LEN};
use crate::io::sockaddr::parse_sockaddr;
use crate::io::{Received, SendQueue, Token};

impl UringBackend {
    /// Parses one received buffer and hands it to the worker: one datagram,
    /// or, from a GRO socket, each segment of a coalesced burst after
    /// spreading them in the buffer (see `gro`).
    pub(super) fn deliver(
        &mut self,
        token: Token,
        bid: u16,
        gro: bool,
        handler: &mut dyn FnMut(&mut dyn SendQueue, Received<'_>),
    ) {
        let (prefix, buf) = if self.plain.holds(bid) {
            let span = self.plain.span(bid);
            (RECV_PREFIX, self.plain.buffers.get_mut(span))
        } else {
            let Some(ring) = self.gro.as_mut().filter(|g| g.holds(bid)) else {
                return;
            };
            let span = ring.span(bid);
            (GRO_RECV_PREFIX, ring.buffers.get_mut(span))
        };
        let Some(buf) = buf else {
            return;
        };
        // io_uring_recvmsg_out: namelen, controllen, payloadlen, flags (u32 each).
        let header = |i: usize| {
            buf.get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let (Some(namelen), Some(controllen), Some(payloadlen), Some(msg_flags)) =
            (header(0), header(1), header(2), header(3))
        else {
            return;
        };
        if msg_flags & libc::MSG_TRUNC as u32 != 0 {
            return; // larger than any datagram we relay
        }
        let name_end = 16 + (namelen as usize).min(NAME_LEN);
        let Some(from) = buf.get(16..name_end).and_then(parse_sockaddr) else {
            return;
        };
        let segment = if gro {
            let control = RECV_PREFIX..RECV_PREFIX + (controllen as usize).min(GRO_CMSG_LEN);
            buf.get(control).and_then(gro_segment_size)
        } else {
            None
        };
        let len = (payloadlen as usize).min(buf.len().saturating_sub(prefix));
        let mut queue = Queue {
            sends: &mut self.pending,
        };
        let before = queue.sends.len();
        let delivered = deliver_segments(
            buf,
            prefix,
            len,
            segment,
            &mut self.ranges,
            &mut self.counters,
            |buf, payload| {
                let received = Received {
                    token,
                    from,
                    buf,
                    payload,
                    buf_id: u32::from(bid),
                };
                handler(&mut queue, received);
            },
        );
        // Plain sockets: a datagram over MAX_DATAGRAM, as a truncated one in batch.
        if !delivered && gro {
            self.counters.gro_dropped += 1;
        }
        // Every in-place send from this buffer holds a reference until it completes.
        let added = self
            .pending
            .iter()
            .skip(before)
            .filter(|s| matches!(s.payload, PendingPayload::Received { bid: b, .. } if b == bid))
            .count();
        if let Some(refs) = self.buffer_refs.get_mut(usize::from(bid)) {
            *refs = refs.saturating_add(added as u16);
        }
    }
}
