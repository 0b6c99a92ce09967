//! The datagram path of a worker: client and peer datagrams from its
//! backend, sends back to clients (zero copy over UDP, appended to the
//! connection over a stream), and relay-to-relay traffic through the other
//! workers' queues and its own.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use crossbeam_channel::TrySendError;

use super::{CrossPacket, Worker};
use crate::io::{Backend, Received, SendQueue, HEADROOM};
use crate::turn::{ClientOutcome, ClientTransport, ClientTuple, Forward, PeerOutcome};

impl Worker {
    pub(super) fn on_datagram(&mut self, queue: &mut dyn SendQueue, rx: Received<'_>) {
        let now = Instant::now();
        let Received {
            token,
            from,
            buf,
            payload,
            buf_id,
        } = rx;
        if let Some((local, _)) = self.listeners.get(token as usize) {
            let tuple = ClientTuple::udp(from, *local);
            let Some(bytes) = buf.get(payload.clone()) else {
                return;
            };
            match self.server.handle_client_datagram(now, tuple, bytes) {
                ClientOutcome::Forward(f) => {
                    let range = payload.start + f.range.start..payload.start + f.range.end;
                    // In shared relay socket mode this works unchanged: `f.from` is
                    // the sending worker's shared address, and the owner finds the
                    // allocation that claimed it as a peer endpoint, exactly as if the
                    // datagram had come through the kernel. (Two allocations of one
                    // worker share an address, so they cannot reach each other either way.)
                    let shortcut = self.server.config().relay_shortcut;
                    match self.directory.owner(f.to).filter(|_| shortcut) {
                        // Both ends are relays of this server: skip the kernel.
                        // Another worker's: hand it over through its queue.
                        Some((owner, relay)) if owner != self.index => {
                            let data = buf.get(range).unwrap_or(&[]);
                            self.post(owner, CrossPacket::new(relay, f.from, data, self.index));
                        }
                        // Ours: frame it for the other client right in the
                        // receive buffer (the bytes in front of the data are
                        // spent) and send it from there — no copy.
                        Some((_, relay)) if self.server.has_relay(relay) => {
                            self.counters.same_worker_relayed += 1;
                            if let PeerOutcome::Forward(g) = self
                                .server
                                .handle_peer_datagram(now, relay, f.from, buf, range)
                            {
                                self.send_to_client(queue, &g, buf, buf_id);
                            }
                        }
                        // A peer outside (or a relay port no allocation holds here,
                        // e.g. one another shard redeemed): through the kernel.
                        _ => {
                            if let Some((sock, _)) = self.relays.get(&f.from) {
                                queue.send_received(sock.as_raw_fd(), f.to, buf_id, range);
                            }
                        }
                    }
                }
                ClientOutcome::Handled | ClientOutcome::Dropped(_) => {}
            }
        } else if let Some(relay) = self.relay_tokens.get(&token).copied() {
            if let PeerOutcome::Forward(f) = self
                .server
                .handle_peer_datagram(now, relay, from, buf, payload)
            {
                self.send_to_client(queue, &f, buf, buf_id);
            }
        }
    }

    /// Sends framed peer data to its client: zero copy from the receive
    /// buffer over UDP, appended to the connection's output over a stream.
    fn send_to_client(&mut self, queue: &mut dyn SendQueue, f: &Forward, buf: &[u8], buf_id: u32) {
        match f.transport {
            ClientTransport::Udp => {
                if let Some(fd) = self.listener_fd(f.from) {
                    queue.send_received(fd, f.to, buf_id, f.range.clone());
                }
            }
            ClientTransport::Stream(id) => {
                if let (Some(streams), Some(frame)) =
                    (self.streams.as_mut(), buf.get(f.range.clone()))
                {
                    streams.send(id, frame);
                }
            }
        }
    }

    /// Sends bytes the worker owns to a client, by its transport.
    pub(super) fn send_to_client_owned(
        &mut self,
        backend: &mut dyn Backend,
        from: SocketAddr,
        to: ClientTuple,
        data: Vec<u8>,
    ) {
        match to.transport {
            ClientTransport::Udp => {
                if let Some(fd) = self.listener_fd(from) {
                    backend.send_owned(fd, to.client, data);
                }
            }
            ClientTransport::Stream(id) => {
                if let Some(streams) = self.streams.as_mut() {
                    streams.send(id, &data);
                }
            }
        }
    }

    pub(super) fn post(&mut self, worker: usize, packet: CrossPacket) {
        let Some(mailbox) = self.mailboxes.get(worker) else {
            return;
        };
        match mailbox.sender.try_send(packet) {
            Ok(()) => {
                self.counters.cross_worker_sent += 1;
                mailbox.waker.wake();
            }
            // A full queue drops, as a full socket buffer would.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.cross_worker_dropped += 1
            }
        }
    }

    /// Datagrams other workers' relays sent to relays of this one: run through
    /// the owner's permission check as if they had arrived on its socket,
    /// framed in place in the packet's own buffer, and sent on without a copy.
    pub(super) fn drain_inbox(&mut self, backend: &mut dyn Backend) {
        let now = Instant::now();
        let local = std::mem::take(&mut self.local_inbox);
        let mut pending = local.into_iter();
        while let Some(mut p) = pending.next().or_else(|| self.inbox.try_recv().ok()) {
            let payload = HEADROOM..HEADROOM + p.len;
            if p.bounced {
                // Ours is the sending relay: out through the kernel after all.
                if let Some((sock, _)) = self.relays.get(&p.from_peer) {
                    backend.send_owned(sock.as_raw_fd(), p.to_relay, trim(p.data, payload));
                }
            } else if !self.server.has_relay(p.to_relay) {
                // No allocation here holds it (a port another shard redeemed):
                // back to the sender, which sends it through the kernel.
                let back = p.from_worker;
                p.bounced = true;
                self.post(back, p);
            } else if let PeerOutcome::Forward(f) =
                self.server
                    .handle_peer_datagram(now, p.to_relay, p.from_peer, &mut p.data, payload)
            {
                let to = ClientTuple {
                    client: f.to,
                    server: f.from,
                    transport: f.transport,
                };
                self.send_to_client_owned(backend, f.from, to, trim(p.data, f.range));
            }
        }
    }
}

/// Keeps only `range` of `data` (shifting it to the front, no allocation).
fn trim(mut data: Vec<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    data.truncate(range.end);
    data.drain(..range.start.min(range.end));
    data
}
