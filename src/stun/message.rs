//! A parsed STUN message that borrows the datagram (RFC 8489 §5, §6).
//!
//! Parsing validates the framing once (length, cookie, attribute bounds and
//! the order of the integrity attributes); reading an attribute afterwards
//! decodes just that attribute's value.

use super::attributes::{Attribute, DecodeAttribute};
use super::error::DecodeError;
use super::integrity::{self, IntegrityError};
use super::reader::{padded_len, Reader};
use super::types::{
    AttributeType, Class, MessageType, Method, TransactionId, HEADER_LEN, MAGIC_COOKIE,
    MESSAGE_INTEGRITY_LEN,
};

/// Where an attribute sits inside the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AttrPos {
    /// Offset of the attribute's 4-byte header from the start of the message.
    offset: usize,
    /// Length of the value (without padding).
    len: usize,
}

/// One attribute as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    pub attr_type: AttributeType,
    pub value: &'a [u8],
}

/// The 32 bits that follow the length: the magic cookie, or for an RFC 3489
/// client the first 4 bytes of its 128-bit transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cookie(pub [u8; 4]);

impl Cookie {
    pub fn is_magic(self) -> bool {
        u32::from_be_bytes(self.0) == MAGIC_COOKIE
    }
}

#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    message_type: MessageType,
    cookie: Cookie,
    transaction_id: TransactionId,
    integrity: Option<AttrPos>,
    integrity_sha256: Option<AttrPos>,
    fingerprint: Option<AttrPos>,
}

/// True if the first byte could start a STUN message (RFC 7983: 0–3).
pub fn looks_like_stun(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(0..=3))
}

impl<'a> Message<'a> {
    /// Parses a whole datagram as one STUN message.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(datagram);
        let raw_type = r.u16("message type")?;
        if raw_type & 0xC000 != 0 {
            return Err(DecodeError::NotStun);
        }
        let length = usize::from(r.u16("message length")?);
        let cookie = Cookie(r.array::<4>("magic cookie")?);
        let transaction_id = TransactionId(r.array::<12>("transaction id")?);
        // RFC 8489 §6.3: the length is a multiple of 4 and matches the datagram.
        if length % 4 != 0 {
            return Err(DecodeError::UnalignedLength);
        }
        if HEADER_LEN + length != datagram.len() {
            return Err(DecodeError::LengthMismatch {
                header: length,
                datagram: datagram.len(),
            });
        }
        let message_type = MessageType::from_u16(raw_type);
        // RFC 8489 §6.3 / Appendix A: a message without the magic cookie is from
        // an RFC 3489 client; only Binding existed then.
        if !cookie.is_magic() && message_type.method != Method::BINDING {
            return Err(DecodeError::WrongMagicCookie);
        }

        let mut msg = Message {
            raw: datagram,
            message_type,
            cookie,
            transaction_id,
            integrity: None,
            integrity_sha256: None,
            fingerprint: None,
        };
        while r.any_left() {
            let offset = r.position();
            let attr_type = AttributeType(r.u16("attribute type")?);
            let len = usize::from(r.u16("attribute length")?);
            if r.remaining() < padded_len(len) {
                return Err(DecodeError::AttributeOverrun);
            }
            r.skip(padded_len(len), "attribute value")?;
            // RFC 8489 §14.7: FINGERPRINT is last.
            if msg.fingerprint.is_some() {
                return Err(DecodeError::FingerprintNotLast);
            }
            let pos = AttrPos { offset, len };
            match attr_type {
                AttributeType::FINGERPRINT => {
                    if len != 4 {
                        return Err(DecodeError::InvalidValue("FINGERPRINT length"));
                    }
                    msg.fingerprint = Some(pos);
                }
                // RFC 8489 §14.6: only FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256.
                _ if msg.integrity_sha256.is_some() => {
                    return Err(DecodeError::AttributeAfterIntegrity(attr_type.0));
                }
                AttributeType::MESSAGE_INTEGRITY_SHA256 => {
                    if !(16..=32).contains(&len) || len % 4 != 0 {
                        return Err(DecodeError::InvalidValue("MESSAGE-INTEGRITY-SHA256 length"));
                    }
                    msg.integrity_sha256 = Some(pos);
                }
                // RFC 8489 §14.5: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT may follow.
                _ if msg.integrity.is_some() => {
                    return Err(DecodeError::AttributeAfterIntegrity(attr_type.0));
                }
                AttributeType::MESSAGE_INTEGRITY => {
                    if len != MESSAGE_INTEGRITY_LEN {
                        return Err(DecodeError::InvalidValue("MESSAGE-INTEGRITY length"));
                    }
                    msg.integrity = Some(pos);
                }
                _ => {}
            }
        }
        Ok(msg)
    }

    pub fn message_type(&self) -> MessageType {
        self.message_type
    }

    pub fn method(&self) -> Method {
        self.message_type.method
    }

    pub fn class(&self) -> Class {
        self.message_type.class
    }

    pub fn transaction_id(&self) -> TransactionId {
        self.transaction_id
    }

    pub fn cookie(&self) -> Cookie {
        self.cookie
    }

    /// An RFC 3489 message (no magic cookie).
    pub fn is_classic(&self) -> bool {
        !self.cookie.is_magic()
    }

    /// The whole message as received.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// All attributes in order.
    pub fn attributes(&self) -> AttributeIter<'a> {
        AttributeIter {
            reader: Reader::new(self.raw.get(HEADER_LEN..).unwrap_or(&[])),
        }
    }

    /// The first attribute of this type (RFC 8489 §14: later duplicates are ignored).
    pub fn raw_attribute(&self, attr_type: AttributeType) -> Option<&'a [u8]> {
        self.attributes()
            .find(|a| a.attr_type == attr_type)
            .map(|a| a.value)
    }

    /// Decodes the first attribute of type `A`, if present.
    pub fn get<A: DecodeAttribute<'a>>(&self) -> Option<Result<A, DecodeError>> {
        self.raw_attribute(A::TYPE)
            .map(|value| A::decode(value, &self.transaction_id))
    }

    pub fn has(&self, attr_type: AttributeType) -> bool {
        self.raw_attribute(attr_type).is_some()
    }

    /// Decodes every attribute.
    pub fn decoded_attributes(
        &self,
    ) -> impl Iterator<Item = Result<Attribute<'a>, DecodeError>> + '_ {
        let tid = self.transaction_id;
        self.attributes()
            .map(move |a| Attribute::decode(a.attr_type, a.value, &tid))
    }

    /// Comprehension-required attributes not known to `understood` (RFC 8489 §6.3.1:
    /// a request carrying any gets 420 with UNKNOWN-ATTRIBUTES).
    pub fn unknown_comprehension_required(
        &self,
        understood: impl Fn(AttributeType) -> bool + 'a,
    ) -> impl Iterator<Item = AttributeType> + 'a {
        self.attributes()
            .map(|a| a.attr_type)
            .filter(move |t| t.is_comprehension_required() && !understood(*t))
    }

    pub fn has_message_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    pub fn has_message_integrity_sha256(&self) -> bool {
        self.integrity_sha256.is_some()
    }

    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint.is_some()
    }

    fn prefix_and_value(&self, pos: AttrPos) -> Option<(&'a [u8], &'a [u8], u16)> {
        let prefix = self.raw.get(..pos.offset)?;
        let value = self.raw.get(pos.offset + 4..pos.offset + 4 + pos.len)?;
        let length_field = u16::try_from(pos.offset + 4 + pos.len - HEADER_LEN).ok()?;
        Some((prefix, value, length_field))
    }

    /// RFC 8489 §14.5: checks MESSAGE-INTEGRITY (HMAC-SHA1) with `key`.
    pub fn verify_message_integrity(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let pos = self.integrity.ok_or(IntegrityError::Missing)?;
        let (prefix, value, length_field) = self
            .prefix_and_value(pos)
            .ok_or(IntegrityError::Malformed)?;
        let expected = integrity::hmac_sha1(prefix, length_field, key);
        if integrity::macs_equal(value, &expected) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch)
        }
    }

    /// RFC 8489 §14.6: checks MESSAGE-INTEGRITY-SHA256 (possibly truncated) with `key`.
    pub fn verify_message_integrity_sha256(&self, key: &[u8]) -> Result<(), IntegrityError> {
        let pos = self.integrity_sha256.ok_or(IntegrityError::Missing)?;
        let (prefix, value, length_field) = self
            .prefix_and_value(pos)
            .ok_or(IntegrityError::Malformed)?;
        let expected = integrity::hmac_sha256(prefix, length_field, key);
        let truncated = expected
            .get(..value.len())
            .ok_or(IntegrityError::Malformed)?;
        if integrity::macs_equal(value, truncated) {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch)
        }
    }

    /// RFC 8489 §9.2.4: the SHA-256 integrity when present, else the SHA-1 one.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), IntegrityError> {
        if self.integrity_sha256.is_some() {
            self.verify_message_integrity_sha256(key)
        } else {
            self.verify_message_integrity(key)
        }
    }

    /// RFC 8489 §14.7: `None` without FINGERPRINT, else whether it matches.
    pub fn verify_fingerprint(&self) -> Option<bool> {
        let pos = self.fingerprint?;
        let (prefix, value, length_field) = self.prefix_and_value(pos)?;
        let expected = integrity::fingerprint(prefix, length_field);
        Some(value == expected.to_be_bytes())
    }
}

/// Iterates attributes of an already validated message.
#[derive(Debug, Clone)]
pub struct AttributeIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for AttributeIter<'a> {
    type Item = RawAttribute<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let attr_type = AttributeType(self.reader.u16("attribute type").ok()?);
        let len = usize::from(self.reader.u16("attribute length").ok()?);
        let value = self.reader.take(len, "attribute value").ok()?;
        let pad = padded_len(len) - len;
        // The final attribute may lack padding only in a message that was never
        // validated; there is no such message here, so ignore a short tail.
        let _ = self.reader.skip(pad, "attribute padding");
        Some(RawAttribute {
            attr_type: AttributeType(attr_type.0),
            value,
        })
    }
}
