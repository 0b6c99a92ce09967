//! What the shard asks of its worker after a loop turn: answers to send,
//! relay sockets (UDP and RFC 6062 TCP) to open or close, peer connections,
//! and channels to hand to or take back from the XDP fast path.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::Worker;
use crate::io::socket::bind_relay;
use crate::io::{Backend, RecvOptions};
use crate::turn::{ClientTransport, Command};

impl Worker {
    /// Relay sockets to open or close, responses to send.
    pub(super) fn process_outputs(&mut self, backend: &mut dyn Backend) {
        loop {
            let mut progressed = false;
            // Answers first: a ConnectionBind's success must be on its way
            // before the connection turns into a raw pipe (RFC 6062 §5.4).
            while let Some(t) = self.server.poll_transmit() {
                progressed = true;
                self.send_to_client_owned(backend, t.from, t.to, t.payload);
            }
            while let Some(cmd) = self.server.poll_command() {
                progressed = true;
                match cmd {
                    Command::OpenRelay { relay } => {
                        let result = self.open_relay(backend, relay);
                        if result.is_err() {
                            self.counters.relay_open_failures += 1;
                        }
                        self.server
                            .handle_relay_opened(Instant::now(), relay, result);
                    }
                    Command::CloseRelay { relay } => {
                        if let Some((sock, token)) = self.relays.remove(&relay) {
                            let _ = backend.deregister(sock.as_raw_fd(), token);
                            self.relay_tokens.remove(&token);
                            tracing::debug!(%relay, "relay closed");
                        } else if let Some(streams) = self.streams.as_mut() {
                            streams.close_tcp_relay(relay);
                        }
                    }
                    Command::OpenTcpRelay { relay } => {
                        let result = match self.streams.as_mut() {
                            Some(streams) => streams.open_tcp_relay(relay).map_err(|e| e.kind()),
                            None => Err(std::io::ErrorKind::Unsupported),
                        };
                        if result.is_err() {
                            self.counters.relay_open_failures += 1;
                        }
                        self.server
                            .handle_relay_opened(Instant::now(), relay, result);
                    }
                    Command::ConnectPeer {
                        connection,
                        relay,
                        peer,
                    } => {
                        if let Some(streams) = self.streams.as_mut() {
                            streams.connect_peer(Instant::now(), connection, relay, peer);
                        }
                    }
                    Command::BindData { connection, data } => {
                        if let (Some(streams), ClientTransport::Stream(id)) =
                            (self.streams.as_mut(), data.transport)
                        {
                            streams.bind_data(connection, id);
                        }
                    }
                    Command::ClosePeer { connection } => {
                        if let Some(streams) = self.streams.as_mut() {
                            streams.close_peer(connection);
                        }
                    }
                    Command::OffloadChannel { route, until } => {
                        if let Some(fast) = &self.fast_path {
                            fast.offload(&route, until);
                        }
                    }
                    Command::WithdrawChannel { route } => {
                        if let Some(fast) = &self.fast_path {
                            fast.withdraw(&route);
                        }
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn open_relay(
        &mut self,
        backend: &mut dyn Backend,
        relay: SocketAddr,
    ) -> Result<(), std::io::ErrorKind> {
        let sock = bind_relay(relay, self.buffers).map_err(|e| e.kind())?;
        let token = self.next_token;
        self.next_token += 1;
        let options = RecvOptions {
            gro: self.gro.relays,
        };
        backend
            .register_with(sock.as_raw_fd(), token, options)
            .map_err(|e| e.kind())?;
        self.relays.insert(relay, (sock, token));
        self.relay_tokens.insert(token, relay);
        Ok(())
    }
}
