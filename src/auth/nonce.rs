//! Stateless nonces (RFC 8489 §9.2): the issue time and an HMAC over it and
//! the client's address under a per-process key. Any shard holding the key can
//! check any nonce; nothing is stored per client.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// RFC 8489 §9.2: a nonce starting with this cookie tells the client the
/// server speaks RFC 8489; the 4 base64 characters after it are the 24-bit
/// security feature set (password algorithms and username anonymity).
pub const NONCE_COOKIE: &str = "obMatJos2";
const FEATURES: &str = "AAAD";
const MAC_LEN: usize = 12;
/// Cookie + features + base64url(8-byte time ‖ 12-byte MAC).
pub const NONCE_LEN: usize = 9 + 4 + 27;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NonceError {
    /// RFC 8489 §9.2.5 / RFC 8656 §7.2: answered 438.
    #[error("stale nonce")]
    Stale,
    /// Not one of ours (or for another client): answered 401 with a fresh one.
    #[error("invalid nonce")]
    Invalid,
}

#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// A nonce in a fixed buffer (no allocation on the 401 path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceText {
    bytes: [u8; NONCE_LEN],
}

impl NonceText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes).unwrap_or("")
    }
}

impl NonceKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// A fresh random key from the operating system.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        // Without OS randomness a zero key still yields working (if guessable) nonces.
        let _ = getrandom::getrandom(&mut key);
        Self { key }
    }

    /// A key derived from a secret the nodes of one service share (their
    /// REST API secret): each accepts the others' nonces and reservation
    /// tokens, so a client redirected by a 300 (RFC 8489 §10) goes on with
    /// the nonce it has — browsers do, and stop at any error (issue 14).
    pub fn derived(secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) {
            mac.update(b"ringturn nonce key v1");
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        Self { key }
    }

    fn mac(&self, issued: u64, client: SocketAddr) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return out;
        };
        mac.update(&issued.to_be_bytes());
        // The client's IP, not its port: RFC 6062 §4.4 clients sign the
        // ConnectionBind on a new connection (a new port) with the nonce of
        // their control connection, and coturn's clients count on it.
        match client.ip() {
            IpAddr::V4(ip) => mac.update(&ip.octets()),
            IpAddr::V6(ip) => mac.update(&ip.octets()),
        }
        let full = mac.finalize().into_bytes();
        for (o, b) in out.iter_mut().zip(full.iter()) {
            *o = *b;
        }
        out
    }

    /// RFC 8656 §7.2 RESERVATION-TOKEN for a held relay address: the port
    /// and a 6-byte MAC, so any shard sharing this key can redeem it.
    pub fn reservation_token(&self, relay: SocketAddr) -> [u8; 8] {
        let mac = self.mac(u64::MAX, relay);
        let port = relay.port().to_be_bytes();
        let mut out = [0u8; 8];
        out.iter_mut()
            .zip(port.iter().chain(mac.iter()))
            .for_each(|(o, b)| *o = *b);
        out
    }

    /// The port a reservation token names (unverified).
    pub fn reservation_port(token: &[u8; 8]) -> Option<u16> {
        Some(u16::from_be_bytes([*token.first()?, *token.get(1)?]))
    }

    pub fn issue(&self, unix_now: u64, client: SocketAddr) -> NonceText {
        let mut payload = [0u8; 8 + MAC_LEN];
        let (time, mac) = payload.split_at_mut(8);
        time.copy_from_slice(&unix_now.to_be_bytes());
        mac.copy_from_slice(&self.mac(unix_now, client));
        let mut bytes = [0u8; NONCE_LEN];
        let (head, tail) = bytes.split_at_mut(13);
        head.copy_from_slice(NONCE_PREFIX.as_bytes());
        // 20 bytes encode to exactly 27 base64url characters without padding.
        let _ = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_slice(payload, tail);
        NonceText { bytes }
    }

    /// Checks a nonce from `client`; valid for `lifetime_secs` after issue.
    pub fn check(
        &self,
        nonce: &str,
        unix_now: u64,
        client: SocketAddr,
        lifetime_secs: u64,
    ) -> Result<(), NonceError> {
        let rest = nonce
            .strip_prefix(NONCE_PREFIX)
            .ok_or(NonceError::Invalid)?;
        let mut payload = [0u8; 8 + MAC_LEN];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(rest, &mut payload)
            .map_err(|_| NonceError::Invalid)?;
        if n != payload.len() {
            return Err(NonceError::Invalid);
        }
        let (time, mac) = payload.split_at(8);
        let issued =
            u64::from_be_bytes(<[u8; 8]>::try_from(time).map_err(|_| NonceError::Invalid)?);
        if !bool::from(mac.ct_eq(&self.mac(issued, client))) {
            return Err(NonceError::Invalid);
        }
        // A nonce from the future is not ours (allow a little clock skew between shards).
        if issued > unix_now.saturating_add(5) {
            return Err(NonceError::Invalid);
        }
        if unix_now.saturating_sub(issued) > lifetime_secs {
            return Err(NonceError::Stale);
        }
        Ok(())
    }
}

/// The fixed start of every nonce: cookie and feature set.
const NONCE_PREFIX: &str = "obMatJos2AAAD";
const _: () = assert!(NONCE_COOKIE.len() + FEATURES.len() == NONCE_PREFIX.len());

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rfc8489_9_2_nonce_round_trips_and_carries_cookie() {
        let k = NonceKey::new([7; 32]);
        let n = k.issue(1000, addr("10.0.0.1:5000"));
        assert!(n.as_str().starts_with("obMatJos2"));
        assert_eq!(n.as_str().len(), NONCE_LEN);
        assert_eq!(
            k.check(n.as_str(), 1000, addr("10.0.0.1:5000"), 600),
            Ok(())
        );
        assert_eq!(
            k.check(n.as_str(), 1600, addr("10.0.0.1:5000"), 600),
            Ok(())
        );
    }

    #[test]
    fn nodes_sharing_a_secret_accept_each_others_nonces_others_do_not() {
        let a = NonceKey::derived(b"north-wind");
        let b = NonceKey::derived(b"north-wind");
        let other = NonceKey::derived(b"south-wind");
        let n = a.issue(1000, addr("10.0.0.1:5000"));
        // Another port of the same client (a redirected TCP client's new connection).
        assert_eq!(
            b.check(n.as_str(), 1001, addr("10.0.0.1:6000"), 600),
            Ok(())
        );
        assert_eq!(
            other.check(n.as_str(), 1001, addr("10.0.0.1:5000"), 600),
            Err(NonceError::Invalid)
        );
    }

    #[test]
    fn rfc8656_7_2_nonce_goes_stale_after_its_lifetime() {
        let k = NonceKey::new([7; 32]);
        let n = k.issue(1000, addr("10.0.0.1:5000"));
        assert_eq!(
            k.check(n.as_str(), 1601, addr("10.0.0.1:5000"), 600),
            Err(NonceError::Stale)
        );
    }

    #[test]
    fn nonce_is_bound_to_client_ip_and_key() {
        let k = NonceKey::new([7; 32]);
        let n = k.issue(1000, addr("10.0.0.1:5000"));
        assert_eq!(
            k.check(n.as_str(), 1000, addr("10.0.0.2:5000"), 600),
            Err(NonceError::Invalid)
        );
        // Another connection from the same host (RFC 6062 data connections).
        assert!(k
            .check(n.as_str(), 1000, addr("10.0.0.1:5001"), 600)
            .is_ok());
        assert_eq!(
            NonceKey::new([8; 32]).check(n.as_str(), 1000, addr("10.0.0.1:5000"), 600),
            Err(NonceError::Invalid)
        );
        assert_eq!(
            k.check("garbage", 1000, addr("10.0.0.1:5000"), 600),
            Err(NonceError::Invalid)
        );
        assert_eq!(
            k.check("obMatJos2AAAD", 1000, addr("10.0.0.1:5000"), 600),
            Err(NonceError::Invalid)
        );
    }
}
