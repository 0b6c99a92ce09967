//! What a response repeats of its request (type, cookie, transaction id,
//! FINGERPRINT) and the key it is signed with: kept with pending work
//! (an Allocate waiting for its socket, an RFC 6062 Connect) until the
//! answer is written.

use crate::stun::{Message, MessageType, PasswordAlgorithm};

/// The key a response is signed with, mirroring how the request was signed.
#[derive(Debug, Clone)]
pub(crate) struct ReplyIntegrity {
    pub key: Vec<u8>,
    /// The request carried MESSAGE-INTEGRITY-SHA256 (RFC 8489 §9.2.4: answer in kind).
    pub sha256: bool,
}

/// What a response must echo from its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestEcho {
    pub message_type: MessageType,
    pub cookie: [u8; 4],
    pub transaction_id: crate::stun::TransactionId,
    pub fingerprint: bool,
}

impl RequestEcho {
    pub fn of(msg: &Message<'_>) -> Self {
        Self {
            message_type: msg.message_type(),
            cookie: msg.cookie().0,
            transaction_id: msg.transaction_id(),
            fingerprint: msg.has_fingerprint(),
        }
    }
}

/// RFC 8489 §9.2.4: the algorithms we offer, MD5 first for RFC 5389 clients.
pub(crate) const OFFERED_ALGORITHMS: [PasswordAlgorithm<'static>; 2] =
    [PasswordAlgorithm::MD5, PasswordAlgorithm::SHA256];
