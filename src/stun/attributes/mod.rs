//! Typed attributes of RFC 8489 §14, RFC 8656 §18, RFC 5780 §7 and RFC 6062.
//!
//! Each attribute is a small type implementing [`DecodeAttribute`] (borrowing
//! its value from the datagram) and [`EncodeAttribute`] (writing into the
//! caller's buffer). [`Attribute`] is the sum of them all, for code that walks
//! every attribute.
//!
//! This file holds the two traits and [`ValueWriter`]; the attributes live
//! per family in `address` (MAPPED-ADDRESS and the XOR addresses), `text`
//! (USERNAME, REALM, NONCE, …), `bytes` (DATA, PADDING, fixed-size values and
//! the MESSAGE-INTEGRITY pair), `numbers` (LIFETIME, FINGERPRINT, CHANNEL-NUMBER,
//! REQUESTED-TRANSPORT, EVEN-PORT and the other numbers and flags),
//! `error_codes` (ERROR-CODE, ADDRESS-ERROR-CODE, ICMP), `lists`
//! (UNKNOWN-ATTRIBUTES, PASSWORD-ALGORITHM(S)) and `sum` ([`Attribute`]), all
//! re-exported here.

use super::error::{DecodeError, EncodeError};
use super::types::{AttributeType, TransactionId};

mod address;
mod bytes;
mod error_codes;
mod lists;
mod numbers;
mod sum;
mod text;

pub use address::{
    AlternateServer, MappedAddress, OtherAddress, ResponseOrigin, XorMappedAddress, XorPeerAddress,
    XorRelayedAddress,
};
pub use bytes::{
    Data, MessageIntegrity, MessageIntegritySha256, Padding, ReservationToken, Userhash,
};
pub use error_codes::{AddressErrorCode, ErrorCodeAttr, Icmp};
pub use lists::{
    PasswordAlgorithm, PasswordAlgorithms, PasswordAlgorithmsList, UnknownAttributes,
    UnknownAttributesList,
};
pub use numbers::{
    AdditionalAddressFamily, ChangeRequest, ChannelNumberAttr, ConnectionId, DontFragment,
    EvenPort, Fingerprint, Lifetime, RequestedAddressFamily, RequestedTransport, ResponsePort,
};
pub use sum::Attribute;
pub use text::{AlternateDomain, Nonce, Realm, Software, Username};

/// Decodes one attribute value. `tid` is needed by the XOR address types.
pub trait DecodeAttribute<'a>: Sized {
    const TYPE: AttributeType;
    fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, DecodeError>;
}

/// Encodes one attribute value (without its 4-byte header or padding).
pub trait EncodeAttribute {
    fn attr_type(&self) -> AttributeType;
    fn value_len(&self) -> usize;
    fn encode_value(&self, w: &mut ValueWriter<'_>, tid: &TransactionId)
        -> Result<(), EncodeError>;
}

/// A bounds-checked cursor over the bytes reserved for one attribute value.
pub struct ValueWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> ValueWriter<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn written(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, data: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    pub fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.bytes(&[v])
    }

    pub fn u16(&mut self, v: u16) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.bytes(&v.to_be_bytes())
    }
}
