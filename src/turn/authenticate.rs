//! Long-term credentials on TURN requests (RFC 8489 §9.2): the nonce, the
//! user's key (static users, the REST API, the user database), the
//! password algorithm and MESSAGE-INTEGRITY(-SHA256).

use std::sync::Arc;
use std::time::Instant;

use super::allocation::{ClientTuple, Owner};
use super::echo::{ReplyIntegrity, RequestEcho, OFFERED_ALGORITHMS};
use super::requests::Authenticated;
use super::server::Server;
use crate::auth::{LookupError, NonceError, PasswordAlgorithm, UserKeys};
use crate::stun::{
    ErrorCode, Message, Nonce, PasswordAlgorithmId, PasswordAlgorithms, Realm, Userhash, Username,
};

impl Server {
    /// RFC 8489 §9.2.4 server side. `None` means an error was sent.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        from: ClientTuple,
        msg: &Message<'_>,
        echo: &RequestEcho,
        existing: Option<&Owner>,
    ) -> Option<Authenticated> {
        if self.config.no_auth {
            return Some(Authenticated {
                owner: None,
                integrity: None,
            });
        }
        if !msg.has_message_integrity() && !msg.has_message_integrity_sha256() {
            self.reply_challenge(now, from, echo, ErrorCode::UNAUTHORIZED);
            return None;
        }
        let username = msg.get::<Username>();
        let userhash = msg.get::<Userhash>();
        let realm = msg.get::<Realm>();
        let nonce = msg.get::<Nonce>();
        let (Some(Ok(Realm(realm))), Some(Ok(Nonce(nonce)))) = (realm, nonce) else {
            self.reply_error(
                from,
                echo,
                ErrorCode::BAD_REQUEST,
                "REALM and NONCE required",
                None,
            );
            return None;
        };
        if username.is_none() && userhash.is_none() {
            self.reply_error(
                from,
                echo,
                ErrorCode::BAD_REQUEST,
                "USERNAME or USERHASH required",
                None,
            );
            return None;
        }
        let unix_now = self.unix_time(now);
        let lifetime = self.config.nonce_lifetime.as_secs();
        match self.nonce_key.check(nonce, unix_now, from.client, lifetime) {
            Ok(()) => {}
            // §9.2.4: 438 for a nonce no longer valid. One this node cannot
            // vouch for — another node's after a 300 (§10), one from before a
            // restart, a forged one — is answered the same way: 438 with a
            // fresh nonce makes clients retry, where a 401 after they sent
            // credentials makes them give up (WebRTC: "Failed to authenticate
            // with the server after challenge").
            Err(NonceError::Stale | NonceError::Invalid) => {
                self.reply_challenge(now, from, echo, ErrorCode::STALE_NONCE);
                return None;
            }
        }
        // RFC 8489 §9.2.4: both PASSWORD-ALGORITHMS (as we sent it) and
        // PASSWORD-ALGORITHM, or neither (MD5, for RFC 5389 clients).
        let algorithm = match (
            msg.get::<PasswordAlgorithms>(),
            msg.get::<crate::stun::PasswordAlgorithm>(),
        ) {
            (None, None) => PasswordAlgorithm::Md5,
            (Some(Ok(list)), Some(Ok(chosen))) => {
                let offered: Vec<PasswordAlgorithmId> =
                    OFFERED_ALGORITHMS.iter().map(|a| a.algorithm).collect();
                let echoed: Vec<PasswordAlgorithmId> = list.iter().map(|a| a.algorithm).collect();
                match chosen.algorithm {
                    _ if echoed != offered => None,
                    PasswordAlgorithmId::MD5 => Some(PasswordAlgorithm::Md5),
                    PasswordAlgorithmId::SHA256 => Some(PasswordAlgorithm::Sha256),
                    _ => None,
                }
                .or_else(|| {
                    self.reply_error(
                        from,
                        echo,
                        ErrorCode::BAD_REQUEST,
                        "PASSWORD-ALGORITHM not offered",
                        None,
                    );
                    None
                })?
            }
            _ => {
                self.reply_error(
                    from,
                    echo,
                    ErrorCode::BAD_REQUEST,
                    "PASSWORD-ALGORITHMS mismatch",
                    None,
                );
                return None;
            }
        };
        if realm != self.credentials.realm {
            self.reply_challenge(now, from, echo, ErrorCode::UNAUTHORIZED);
            return None;
        }
        let name: Option<Arc<str>> = match (username, userhash) {
            (Some(Ok(Username(name))), _) => Some(Arc::from(name)),
            (_, Some(Ok(Userhash(hash)))) => {
                self.credentials.username_for_hash(&hash).map(Arc::from)
            }
            _ => None,
        };
        let Some(name) = name else {
            self.reply_challenge(now, from, echo, ErrorCode::UNAUTHORIZED);
            return None;
        };
        let candidates: Vec<UserKeys> = match existing {
            // RFC 8656 §5: later requests on an allocation come from its owner,
            // and are checked with the key cached when it was made.
            Some(owner) if owner.username != name => {
                self.reply_error(
                    from,
                    echo,
                    ErrorCode::WRONG_CREDENTIALS,
                    "Wrong Credentials",
                    None,
                );
                return None;
            }
            Some(owner) if owner.algorithm == algorithm => vec![owner.keys.clone()],
            _ => match self.credentials.candidate_keys(&name, unix_now) {
                Ok(keys) => keys,
                Err(e @ (LookupError::UnknownUser | LookupError::Expired)) => {
                    // Issue 12: one info line per refused credential, for fail2ban.
                    tracing::info!(client = %from.client, realm = %self.credentials.realm, username = %name, reason = %e, "authentication failed: 401");
                    self.reply_challenge(now, from, echo, ErrorCode::UNAUTHORIZED);
                    return None;
                }
            },
        };
        let sha256 = msg.has_message_integrity_sha256();
        for keys in candidates {
            let Some(key) = keys.key(algorithm) else {
                continue;
            };
            if msg.verify_integrity(key).is_ok() {
                let integrity = ReplyIntegrity {
                    key: key.to_vec(),
                    sha256,
                };
                return Some(Authenticated {
                    owner: Some(Owner {
                        username: name,
                        keys,
                        algorithm,
                    }),
                    integrity: Some(integrity),
                });
            }
        }
        tracing::info!(client = %from.client, realm = %self.credentials.realm, username = %name, reason = "wrong password (MESSAGE-INTEGRITY does not match)", "authentication failed: 401");
        self.reply_challenge(now, from, echo, ErrorCode::UNAUTHORIZED);
        None
    }
}
