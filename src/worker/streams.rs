//! The stream side of a worker: TCP and TLS clients' frames, RFC 6062
//! ConnectionBind requests handed to the worker that holds their peer
//! connection, and the allocations of connections that closed.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use crossbeam_channel::TrySendError;

use super::{CrossPacket, StreamHandoff, Worker};
use crate::io::stream::{PeerEvent, StreamHandler};
use crate::io::Backend;
use crate::turn::{ClientOutcome, ClientTransport, ClientTuple};

impl Worker {
    /// Accepts and reads stream clients, hands their frames to the server,
    /// and frees the allocations of connections that closed.
    pub(super) fn poll_streams(&mut self, backend: &mut dyn Backend) -> std::io::Result<()> {
        let Some(mut streams) = self.streams.take() else {
            return Ok(());
        };
        let now = Instant::now();
        while let Ok(h) = self.stream_inbox.try_recv() {
            match streams.adopt(h.conn) {
                Ok(tuple) => self.on_stream_frame(backend, now, tuple, &h.frame),
                Err(e) => tracing::debug!(error = %e, "cannot take over a connection"),
            }
        }
        // Only when the stream set fired (or the last look left work behind):
        // under datagram load this saves an epoll_wait per loop turn.
        let result = if backend.take_watch_ready() || streams.was_active() {
            streams.poll(
                now,
                &mut StreamSide {
                    worker: self,
                    backend,
                    now,
                },
            )
        } else {
            Ok(())
        };
        for (id, worker, frame) in std::mem::take(&mut self.handoffs) {
            let (Some(conn), Some(mailbox)) = (streams.detach(id), self.mailboxes.get(worker))
            else {
                continue;
            };
            match mailbox.streams.try_send(StreamHandoff { conn, frame }) {
                Ok(()) => {
                    self.counters.stream_handoffs += 1;
                    mailbox.waker.wake();
                    tracing::debug!(
                        to = worker,
                        "ConnectionBind handed to the worker holding its peer connection"
                    );
                }
                // Its queue is full: the connection closes, as a full backlog would.
                Err(TrySendError::Full(h) | TrySendError::Disconnected(h)) => {
                    streams.discard(h.conn)
                }
            }
        }
        let server = &self.server;
        streams.sweep(now, &|tuple| server.allocation_for_client(tuple).is_some());
        for tuple in streams.take_closed() {
            self.server.handle_client_closed(&tuple);
        }
        for event in streams.take_peer_events() {
            match event {
                PeerEvent::Connected { connection, result } => {
                    self.server.handle_peer_connected(now, connection, result)
                }
                PeerEvent::Closed { connection } => self.server.handle_peer_closed(connection),
            }
        }
        self.streams = Some(streams);
        result
    }

    /// RFC 6062 §5.4: a ConnectionBind for a peer connection another worker
    /// holds (its CONNECTION-ID names the worker): that worker's.
    fn bind_elsewhere(&self, frame: &[u8]) -> Option<usize> {
        // A ConnectionBind request: type 0x000B.
        if frame.get(..2) != Some(&[0x00, 0x0B]) {
            return None;
        }
        let msg = crate::stun::Message::parse(frame).ok()?;
        let crate::stun::ConnectionId(connection) = msg.get()?.ok()?;
        let shard = crate::turn::connection_shard(connection, self.server.config().port_stride);
        (shard != self.index && shard < self.mailboxes.len()).then_some(shard)
    }

    /// One STUN message or ChannelData frame from a stream client.
    fn on_stream_frame(
        &mut self,
        backend: &mut dyn Backend,
        now: Instant,
        tuple: ClientTuple,
        frame: &[u8],
    ) {
        if let (ClientTransport::Stream(id), Some(worker)) =
            (tuple.transport, self.bind_elsewhere(frame))
        {
            self.handoffs.push((id, worker, frame.to_vec()));
            return;
        }
        let ClientOutcome::Forward(f) = self.server.handle_client_datagram(now, tuple, frame)
        else {
            return;
        };
        let Some(data) = frame.get(f.range.clone()) else {
            return;
        };
        let shortcut = self.server.config().relay_shortcut;
        match self.directory.owner(f.to).filter(|_| shortcut) {
            Some((owner, relay)) if owner != self.index => {
                self.post(owner, CrossPacket::new(relay, f.from, data, self.index));
            }
            // A relay of ours: framed later, in a buffer with headroom.
            Some((_, relay)) if self.server.has_relay(relay) => {
                self.counters.same_worker_relayed += 1;
                self.local_inbox
                    .push(CrossPacket::new(relay, f.from, data, self.index));
            }
            _ => {
                if let Some((sock, _)) = self.relays.get(&f.from) {
                    // Into the backend's batch like any other send (sendmmsg / GSO
                    // runs at the end of the loop turn), at the price of one copy.
                    backend.send_owned(sock.as_raw_fd(), f.to, data.to_vec());
                }
            }
        }
    }
}

/// The worker as the stream side sees it during a poll (the stream set
/// itself is taken out of the worker meanwhile).
struct StreamSide<'a> {
    worker: &'a mut Worker,
    backend: &'a mut dyn Backend,
    now: Instant,
}

impl StreamHandler for StreamSide<'_> {
    fn frame(&mut self, tuple: ClientTuple, frame: &[u8]) {
        self.worker
            .on_stream_frame(self.backend, self.now, tuple, frame);
    }

    fn peer_accepted(&mut self, relay: SocketAddr, peer: SocketAddr) -> Option<u32> {
        let connection = self
            .worker
            .server
            .handle_peer_connection(self.now, relay, peer);
        // The ConnectionAttempt indication goes out with this turn's outputs.
        connection
    }
}
