//! Writing responses: SOFTWARE, integrity and FINGERPRINT are added the same
//! way to every answer, so handlers only fill in their own attributes.

use super::allocation::ClientTuple;
use super::echo::{ReplyIntegrity, RequestEcho, OFFERED_ALGORITHMS};
use super::server::{Server, Transmit};
use crate::auth::NonceText;
use crate::stun::{
    Class, EncodeError, ErrorCode, ErrorCodeAttr, MessageType, MessageWriter, Nonce,
    PasswordAlgorithmsList, Realm, Software,
};

/// Large enough for any response we write.
const RESPONSE_BUF: usize = 1024;

impl Server {
    /// Encodes a response and returns its bytes.
    pub(crate) fn encode_reply(
        &self,
        echo: &RequestEcho,
        class: Class,
        integrity: Option<&ReplyIntegrity>,
        fill: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Option<Vec<u8>> {
        // Encode on the stack and keep only the bytes: a cached response must
        // not pin a whole scratch buffer for its 40 s in the transaction cache.
        let mut buf = [0u8; RESPONSE_BUF];
        let message_type = MessageType::new(echo.message_type.method, class);
        let mut w =
            MessageWriter::with_cookie(&mut buf, message_type, echo.cookie, echo.transaction_id)
                .ok()?;
        fill(&mut w).ok()?;
        if let Some(software) = &self.config.software {
            w.add(&Software(software)).ok()?;
        }
        if let Some(i) = integrity {
            if i.sha256 {
                w.add_message_integrity_sha256(&i.key).ok()?;
            } else {
                w.add_message_integrity(&i.key).ok()?;
            }
        }
        if self.config.fingerprint || echo.fingerprint {
            w.add_fingerprint().ok()?;
        }
        let len = w.finish();
        buf.get(..len).map(<[u8]>::to_vec)
    }

    pub(crate) fn queue(&mut self, to: ClientTuple, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            from: to.server,
            to,
            payload,
        });
    }

    /// Sends a response: a success when `error` is `None`, else an error
    /// response (whose ERROR-CODE `fill` writes). Counted by method and result.
    pub(crate) fn reply(
        &mut self,
        to: ClientTuple,
        echo: &RequestEcho,
        error: Option<ErrorCode>,
        integrity: Option<&ReplyIntegrity>,
        fill: impl FnOnce(&mut MessageWriter<'_>) -> Result<(), EncodeError>,
    ) -> Option<Vec<u8>> {
        let class = if error.is_some() {
            Class::ErrorResponse
        } else {
            Class::SuccessResponse
        };
        let bytes = self.encode_reply(echo, class, integrity, fill)?;
        self.count_response(echo.message_type.method, error);
        self.queue(to, bytes.clone());
        Some(bytes)
    }

    /// An error response with a reason phrase.
    pub(crate) fn reply_error(
        &mut self,
        to: ClientTuple,
        echo: &RequestEcho,
        code: ErrorCode,
        reason: &str,
        integrity: Option<&ReplyIntegrity>,
    ) -> Option<Vec<u8>> {
        tracing::debug!(client = %to.client, method = ?echo.message_type.method, code = code.0, reason, "error response");
        self.reply(to, echo, Some(code), integrity, |w| {
            w.add(&ErrorCodeAttr { code, reason })
        })
    }

    /// RFC 8489 §9.2.4: 401 (or 438) with REALM, a fresh NONCE and PASSWORD-ALGORITHMS.
    pub(crate) fn reply_challenge(
        &mut self,
        now: std::time::Instant,
        to: ClientTuple,
        echo: &RequestEcho,
        code: ErrorCode,
    ) {
        let nonce: NonceText = self.nonce_key.issue(self.unix_time(now), to.client);
        let realm = self.credentials.realm.clone();
        self.reply(to, echo, Some(code), None, |w| {
            w.add(&ErrorCodeAttr::new(code))?;
            w.add(&Realm(&realm))?;
            w.add(&Nonce(nonce.as_str()))?;
            w.add(&PasswordAlgorithmsList(&OFFERED_ALGORITHMS))
        });
    }
}
