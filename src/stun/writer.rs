//! Encodes a STUN message into a caller-owned buffer (RFC 8489 §5, §14).
//!
//! The header's length field is kept current after every attribute, so
//! MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are computed
//! in place over exactly the bytes already written.

use super::attributes::{EncodeAttribute, ValueWriter};
use super::error::EncodeError;
use super::integrity;
use super::reader::padded_len;
use super::types::{
    AttributeType, MessageType, TransactionId, HEADER_LEN, MAGIC_COOKIE, MESSAGE_INTEGRITY_LEN,
    MESSAGE_INTEGRITY_SHA256_LEN,
};

/// What may still be added (RFC 8489 §14.5–14.7 fix the order of the last three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Attributes,
    AfterIntegrity,
    AfterIntegritySha256,
    AfterFingerprint,
}

pub struct MessageWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    tid: TransactionId,
    padding: u8,
    stage: Stage,
}

impl<'b> MessageWriter<'b> {
    /// Starts a message with the magic cookie.
    pub fn new(
        buf: &'b mut [u8],
        message_type: MessageType,
        tid: TransactionId,
    ) -> Result<Self, EncodeError> {
        Self::with_cookie(buf, message_type, MAGIC_COOKIE.to_be_bytes(), tid)
    }

    /// Starts a message with the given 4 bytes after the length: the magic
    /// cookie, or an RFC 3489 client's first 4 transaction-id bytes echoed back.
    pub fn with_cookie(
        buf: &'b mut [u8],
        message_type: MessageType,
        cookie: [u8; 4],
        tid: TransactionId,
    ) -> Result<Self, EncodeError> {
        let header = buf
            .get_mut(..HEADER_LEN)
            .ok_or(EncodeError::BufferTooSmall)?;
        let mut w = ValueWriter::new(header);
        w.u16(message_type.to_u16())?;
        w.u16(0)?;
        w.bytes(&cookie)?;
        w.bytes(&tid.0)?;
        Ok(Self {
            buf,
            len: HEADER_LEN,
            tid,
            padding: 0,
            stage: Stage::Attributes,
        })
    }

    /// The byte used to pad attribute values to 4 bytes (RFC 8489 §14: any
    /// value; 0 by default). Some test vectors use spaces.
    pub fn with_padding_byte(mut self, byte: u8) -> Self {
        self.padding = byte;
        self
    }

    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn set_length_field(&mut self) -> Result<u16, EncodeError> {
        let body = u16::try_from(self.len - HEADER_LEN).map_err(|_| EncodeError::BufferTooSmall)?;
        self.buf
            .get_mut(2..4)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(&body.to_be_bytes());
        Ok(body)
    }

    /// Appends an attribute header, runs `fill` over its value bytes, pads.
    fn append(
        &mut self,
        attr_type: AttributeType,
        value_len: usize,
        fill: impl FnOnce(&mut ValueWriter<'_>, &TransactionId) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let len16 = u16::try_from(value_len).map_err(|_| EncodeError::ValueTooLong("attribute"))?;
        let total = 4 + padded_len(value_len);
        let end = self
            .len
            .checked_add(total)
            .ok_or(EncodeError::BufferTooSmall)?;
        if end - HEADER_LEN > usize::from(u16::MAX) {
            return Err(EncodeError::BufferTooSmall);
        }
        let tid = self.tid;
        let region = self
            .buf
            .get_mut(self.len..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        let (head, rest) = region.split_at_mut(4);
        head.copy_from_slice(&[
            (attr_type.0 >> 8) as u8,
            attr_type.0 as u8,
            (len16 >> 8) as u8,
            len16 as u8,
        ]);
        let (value, pad) = rest.split_at_mut(value_len);
        let mut w = ValueWriter::new(value);
        fill(&mut w, &tid)?;
        if w.written() != value_len {
            return Err(EncodeError::ValueTooLong(
                "attribute length disagrees with its value",
            ));
        }
        pad.fill(self.padding);
        self.len = end;
        self.set_length_field()?;
        Ok(())
    }

    /// Adds one attribute. Fails after MESSAGE-INTEGRITY or FINGERPRINT.
    pub fn add(&mut self, attr: &dyn EncodeAttribute) -> Result<(), EncodeError> {
        if self.stage != Stage::Attributes {
            return Err(EncodeError::AfterIntegrity);
        }
        self.append(attr.attr_type(), attr.value_len(), |w, tid| {
            attr.encode_value(w, tid)
        })
    }

    /// Appends MESSAGE-INTEGRITY (HMAC-SHA1 with `key`, RFC 8489 §14.5).
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<(), EncodeError> {
        if self.stage >= Stage::AfterIntegrity {
            return Err(EncodeError::AfterIntegrity);
        }
        let offset = self.len;
        let length_field = u16::try_from(offset + 4 + MESSAGE_INTEGRITY_LEN - HEADER_LEN)
            .map_err(|_| EncodeError::BufferTooSmall)?;
        let prefix = self.buf.get(..offset).ok_or(EncodeError::BufferTooSmall)?;
        let mac = integrity::hmac_sha1(prefix, length_field, key);
        self.append(
            AttributeType::MESSAGE_INTEGRITY,
            MESSAGE_INTEGRITY_LEN,
            |w, _| w.bytes(&mac),
        )?;
        self.stage = Stage::AfterIntegrity;
        Ok(())
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (full 32 bytes, RFC 8489 §14.6).
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<(), EncodeError> {
        if self.stage >= Stage::AfterIntegritySha256 {
            return Err(EncodeError::AfterIntegrity);
        }
        let offset = self.len;
        let length_field = u16::try_from(offset + 4 + MESSAGE_INTEGRITY_SHA256_LEN - HEADER_LEN)
            .map_err(|_| EncodeError::BufferTooSmall)?;
        let prefix = self.buf.get(..offset).ok_or(EncodeError::BufferTooSmall)?;
        let mac = integrity::hmac_sha256(prefix, length_field, key);
        self.append(
            AttributeType::MESSAGE_INTEGRITY_SHA256,
            MESSAGE_INTEGRITY_SHA256_LEN,
            |w, _| w.bytes(&mac),
        )?;
        self.stage = Stage::AfterIntegritySha256;
        Ok(())
    }

    /// Appends FINGERPRINT (RFC 8489 §14.7); nothing may follow it.
    pub fn add_fingerprint(&mut self) -> Result<(), EncodeError> {
        if self.stage >= Stage::AfterFingerprint {
            return Err(EncodeError::AfterIntegrity);
        }
        let offset = self.len;
        let length_field =
            u16::try_from(offset + 8 - HEADER_LEN).map_err(|_| EncodeError::BufferTooSmall)?;
        let prefix = self.buf.get(..offset).ok_or(EncodeError::BufferTooSmall)?;
        let crc = integrity::fingerprint(prefix, length_field);
        self.append(AttributeType::FINGERPRINT, 4, |w, _| w.u32(crc))?;
        self.stage = Stage::AfterFingerprint;
        Ok(())
    }

    /// The encoded length; the message is `buf[..len]`.
    pub fn finish(self) -> usize {
        self.len
    }
}
