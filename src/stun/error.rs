//! Codec errors. Small `Copy` values with static context, grouped by who is at
//! fault: a `DecodeError` is the sender's, an `EncodeError` is ours (buffer too small).

use thiserror::Error;

/// The datagram is not a well-formed STUN message (or attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("not a STUN message: top two bits set")]
    NotStun,
    #[error("wrong magic cookie")]
    WrongMagicCookie,
    #[error("message length {header} does not match datagram length {datagram}")]
    LengthMismatch { header: usize, datagram: usize },
    #[error("message length is not a multiple of 4")]
    UnalignedLength,
    #[error("attribute runs past the end of the message")]
    AttributeOverrun,
    #[error("FINGERPRINT is not the last attribute")]
    FingerprintNotLast,
    #[error("attribute {0:#06x} follows MESSAGE-INTEGRITY")]
    AttributeAfterIntegrity(u16),
    #[error("invalid attribute value: {0}")]
    InvalidValue(&'static str),
    #[error("unknown address family {0:#04x}")]
    UnknownFamily(u8),
    #[error("attribute value is not UTF-8: {0}")]
    NotUtf8(&'static str),
    #[error("value too long: {0}")]
    TooLong(&'static str),
    #[error("RFC 3489 message other than Binding")]
    ClassicNonBinding,
}

/// The caller's buffer cannot hold what it asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("output buffer too small")]
    BufferTooSmall,
    #[error("value too long for its attribute: {0}")]
    ValueTooLong(&'static str),
    #[error("attribute added after FINGERPRINT or MESSAGE-INTEGRITY")]
    AfterIntegrity,
}
