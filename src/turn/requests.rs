//! Where a STUN request goes: Binding (RFC 8489) is answered here; TURN
//! requests are authenticated (`authenticate.rs`), matched to their 5-tuple's
//! allocation and run — Allocate in `allocate.rs`, Refresh, CreatePermission
//! and ChannelBind in `permissions.rs`, RFC 6062's in `tcp_relay.rs` — and
//! their answer is signed and kept for retransmissions (RFC 8489 §6.3.4).

use std::net::SocketAddr;
use std::time::Instant;

use super::allocation::{ClientTuple, Owner};
use super::echo::{ReplyIntegrity, RequestEcho};
use super::server::{CachedResponse, Command, Server};
use crate::stun::{
    AlternateServer, AttributeType, ErrorCode, ErrorCodeAttr, Lifetime, MappedAddress, Message,
    Method, UnknownAttributesList, XorMappedAddress,
};

/// A TURN request refused after authentication: the error answer (signed
/// and kept for retransmissions like a success).
pub(crate) type Refusal = (ErrorCode, &'static str);

/// What a TURN method did, when it did not refuse.
pub(crate) enum Answer {
    /// An empty success response.
    Success,
    /// A success response carrying LIFETIME (Refresh).
    Lifetime(u32),
    /// Answered elsewhere: Allocate answers when its relay socket opens.
    Deferred,
    /// RFC 8489 §10: 300 (Try Alternate) with ALTERNATE-SERVER.
    TryAlternate(SocketAddr),
}

/// A request that passed authentication.
pub(crate) struct Authenticated {
    pub owner: Option<Owner>,
    pub integrity: Option<ReplyIntegrity>,
}

/// Attributes this server acts on. RFC 5780's CHANGE-REQUEST and
/// RESPONSE-PORT, and RFC 6062's CONNECTION-ID over UDP, get 420.
fn understood(t: AttributeType) -> bool {
    t.is_known()
        && !matches!(
            t,
            AttributeType::CHANGE_REQUEST
                | AttributeType::RESPONSE_PORT
                | AttributeType::CONNECTION_ID
        )
}

fn is_turn_method(m: Method) -> bool {
    matches!(
        m,
        Method::ALLOCATE
            | Method::REFRESH
            | Method::CREATE_PERMISSION
            | Method::CHANNEL_BIND
            | Method::CONNECT
            | Method::CONNECTION_BIND
    )
}

impl Server {
    pub(crate) fn handle_request(&mut self, now: Instant, from: ClientTuple, msg: &Message<'_>) {
        let echo = RequestEcho::of(msg);
        let method = msg.method();

        // RFC 8489 §6.3.4: a retransmission gets the answer already sent.
        if is_turn_method(method) {
            match self.transactions.get(&(from.client, msg.transaction_id())) {
                Some(CachedResponse::Done(m, bytes)) if m == method => {
                    let bytes = bytes.to_vec();
                    self.queue(from, bytes);
                    return;
                }
                Some(CachedResponse::InProgress) => return,
                Some(CachedResponse::Done(..)) | None => {}
            }
        }

        // RFC 8489 §6.3.1: unknown comprehension-required attributes get 420.
        let mut unknown = [AttributeType(0); 16];
        let mut n = 0;
        for (slot, t) in unknown
            .iter_mut()
            .zip(msg.unknown_comprehension_required(move |t| {
                // RFC 6062 is TCP only: CONNECTION-ID over UDP is not understood.
                understood(t) || (t == AttributeType::CONNECTION_ID && from.is_stream())
            }))
        {
            *slot = t;
            n += 1;
        }
        if n > 0 {
            let list = unknown.get(..n).unwrap_or(&[]);
            self.reply(from, &echo, Some(ErrorCode::UNKNOWN_ATTRIBUTE), None, |w| {
                w.add(&crate::stun::ErrorCodeAttr::new(
                    ErrorCode::UNKNOWN_ATTRIBUTE,
                ))?;
                w.add(&UnknownAttributesList(list))
            });
            return;
        }

        match method {
            Method::BINDING => self.handle_binding(now, from, msg, &echo),
            _ if msg.is_classic() => {}
            m if is_turn_method(m) && self.config.stun_only => {
                self.reply_error(
                    from,
                    &echo,
                    ErrorCode::BAD_REQUEST,
                    "TURN is disabled on this server (stun-only)",
                    None,
                );
            }
            m if is_turn_method(m) => self.handle_turn_request(now, from, msg, &echo),
            _ => {
                self.reply_error(
                    from,
                    &echo,
                    ErrorCode::BAD_REQUEST,
                    "Unsupported method",
                    None,
                );
            }
        }
    }

    /// RFC 8489 §7.3: Binding reflects the client's address; RFC 3489 clients
    /// get MAPPED-ADDRESS, everyone else XOR-MAPPED-ADDRESS.
    /// With `secure-stun` (coturn's), a Binding is authenticated like a TURN
    /// request (RFC 8489 §9.2): 401 with REALM and NONCE first, then an
    /// answer carrying MESSAGE-INTEGRITY; RFC 3489 requests, which cannot
    /// carry long-term credentials, are dropped.
    fn handle_binding(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
    ) {
        if self.config.no_stun {
            return;
        }
        let classic = msg.is_classic();
        let mut integrity = None;
        if self.config.secure_stun && !self.config.no_auth {
            if classic {
                return;
            }
            let Some(auth) = self.authenticate(now, from, msg, echo, None) else {
                return;
            };
            integrity = auth.integrity;
        }
        self.reply(from, echo, None, integrity.as_ref(), |w| {
            if classic {
                w.add(&MappedAddress(from.client))
            } else {
                w.add(&XorMappedAddress(from.client))
            }
        });
    }

    /// Caches the final answer to a TURN request for retransmissions.
    fn remember(
        &mut self,
        now: Instant,
        from: &ClientTuple,
        msg: &Message<'_>,
        bytes: Option<Vec<u8>>,
    ) {
        let Some(bytes) = bytes else { return };
        self.cache_response(
            now,
            from.client,
            msg.transaction_id(),
            CachedResponse::Done(msg.method(), &bytes),
        );
    }

    fn existing_owner(&self, from: &ClientTuple) -> Option<Owner> {
        self.allocation_for_client(from)
            .and_then(|a| a.owner.clone())
    }

    /// Allocate, Refresh, CreatePermission and ChannelBind share their frame:
    /// authenticate (RFC 8489 §9.2.4), find the 5-tuple's allocation (437 when
    /// a method needs one and there is none), run the method, then send its
    /// answer — signed like the request — and keep it for retransmissions.
    fn handle_turn_request(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
    ) {
        let owner = self.existing_owner(&from);
        let Some(auth) = self.authenticate(now, from, msg, echo, owner.as_ref()) else {
            return;
        };
        let integrity = auth.integrity.clone();
        let i = integrity.as_ref();
        let method = msg.method();
        let outcome = if method == Method::ALLOCATE {
            self.allocate(now, from, msg, echo, auth)
        } else if method == Method::CONNECTION_BIND {
            // RFC 6062 §5.4: on a new connection, which has no allocation.
            match self.connection_bind(from, msg, auth.owner.as_ref()) {
                Ok(connection) => {
                    let reply = self.reply(from, echo, None, i, |_| Ok(()));
                    self.remember(now, &from, msg, reply);
                    self.commands.push_back(Command::BindData {
                        connection,
                        data: from,
                    });
                    return;
                }
                Err(refusal) => Err(refusal),
            }
        } else {
            match self.allocation_id_for_client(&from) {
                None => Err((
                    ErrorCode::ALLOCATION_MISMATCH,
                    "No allocation for this 5-tuple",
                )),
                Some(id) => {
                    let outcome = match method {
                        Method::REFRESH => self.refresh(now, id, msg),
                        Method::CREATE_PERMISSION => self.create_permission(now, id, msg),
                        Method::CONNECT => {
                            self.connect(now, id, from, msg, echo, integrity.clone())
                        }
                        _ => self.channel_bind(now, id, msg),
                    };
                    // Issue 11: a channel bound, a permission or the
                    // allocation refreshed moves what the kernel may relay.
                    self.sync_fast_path(id, now);
                    outcome
                }
            }
        };
        let reply = match outcome {
            Ok(Answer::Deferred) => return,
            Ok(Answer::Success) => self.reply(from, echo, None, i, |_| Ok(())),
            Ok(Answer::Lifetime(secs)) => {
                self.reply(from, echo, None, i, |w| w.add(&Lifetime(secs)))
            }
            Ok(Answer::TryAlternate(alternate)) => {
                tracing::debug!(client = %from.client, %alternate, "Allocate redirected (300)");
                let code = ErrorCode::TRY_ALTERNATE;
                self.reply(from, echo, Some(code), i, |w| {
                    w.add(&ErrorCodeAttr::new(code))?;
                    w.add(&AlternateServer(alternate))
                })
            }
            Err((code, reason)) => self.reply_error(from, echo, code, reason, i),
        };
        self.remember(now, &from, msg, reply);
    }
}
