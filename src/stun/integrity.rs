//! MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256
//! (§14.6) and FINGERPRINT (§14.7). All three cover the message up to the
//! attribute itself, with the header's length field counting up to the end of
//! that attribute. They are computed over slices, chunk by chunk, so checking
//! a received message never needs a copy or a mutation of it.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::types::{FINGERPRINT_XOR, HEADER_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum IntegrityError {
    #[error("message has no MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256")]
    Missing,
    #[error("MESSAGE-INTEGRITY does not match")]
    Mismatch,
    #[error("malformed integrity attribute")]
    Malformed,
}

/// Feeds `prefix` (the message from its first byte up to the attribute being
/// computed) into `update`, with the length field replaced by `length_field`.
fn feed_with_length(prefix: &[u8], length_field: u16, mut update: impl FnMut(&[u8])) {
    let type_bytes = prefix.get(0..2).unwrap_or(&[]);
    let after_length = prefix.get(4..HEADER_LEN.min(prefix.len())).unwrap_or(&[]);
    let body = prefix.get(HEADER_LEN..).unwrap_or(&[]);
    update(type_bytes);
    update(&length_field.to_be_bytes());
    update(after_length);
    update(body);
}

/// HMAC-SHA1 over the message prefix (RFC 8489 §14.5).
pub fn hmac_sha1(prefix: &[u8], length_field: u16, key: &[u8]) -> [u8; 20] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 20],
    };
    feed_with_length(prefix, length_field, |chunk| mac.update(chunk));
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 over the message prefix (RFC 8489 §14.6).
pub fn hmac_sha256(prefix: &[u8], length_field: u16, key: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    feed_with_length(prefix, length_field, |chunk| mac.update(chunk));
    mac.finalize().into_bytes().into()
}

/// CRC-32 of the message prefix XOR 0x5354554E (RFC 8489 §14.7).
pub fn fingerprint(prefix: &[u8], length_field: u16) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    feed_with_length(prefix, length_field, |chunk| crc.update(chunk));
    crc.finalize() ^ FINGERPRINT_XOR
}

/// Constant-time comparison of a received MAC with the expected one.
pub fn macs_equal(received: &[u8], expected: &[u8]) -> bool {
    received.len() == expected.len() && bool::from(received.ct_eq(expected))
}
