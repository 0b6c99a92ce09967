//! The opaque-bytes attributes: DATA (RFC 8656 §18.4) and PADDING (RFC 5780
//! §7.6) of any length, the fixed-size USERHASH, RESERVATION-TOKEN and
//! MESSAGE-INTEGRITY (RFC 8489 §14.4, §14.5; RFC 8656 §18.10), and
//! MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::types::{AttributeType, TransactionId};

macro_rules! bytes_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a>(pub &'a [u8]);

        impl<'a> DecodeAttribute<'a> for $name<'a> {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
                Ok($name(value))
            }
        }

        impl EncodeAttribute for $name<'_> {
            fn attr_type(&self) -> AttributeType {
                AttributeType::$attr
            }
            fn value_len(&self) -> usize {
                self.0.len()
            }
            fn encode_value(&self, w: &mut ValueWriter<'_>, _tid: &TransactionId) -> Result<(), EncodeError> {
                w.bytes(self.0)
            }
        }
    };
}

bytes_attribute!(
    /// RFC 8656 §18.4
    Data, DATA);
bytes_attribute!(
    /// RFC 5780 §7.6
    Padding, PADDING);

macro_rules! fixed_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub [u8; $len]);

        impl<'a> DecodeAttribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
                <[u8; $len]>::try_from(value)
                    .map($name)
                    .map_err(|_| DecodeError::InvalidValue(stringify!($attr)))
            }
        }

        impl EncodeAttribute for $name {
            fn attr_type(&self) -> AttributeType {
                AttributeType::$attr
            }
            fn value_len(&self) -> usize {
                $len
            }
            fn encode_value(&self, w: &mut ValueWriter<'_>, _tid: &TransactionId) -> Result<(), EncodeError> {
                w.bytes(&self.0)
            }
        }
    };
}

fixed_attribute!(
    /// RFC 8489 §14.4: SHA-256 of username ":" realm.
    Userhash, USERHASH, 32);
fixed_attribute!(
    /// RFC 8656 §18.10
    ReservationToken, RESERVATION_TOKEN, 8);
fixed_attribute!(
    /// RFC 8489 §14.5 (decoded for inspection; the writer computes it).
    MessageIntegrity, MESSAGE_INTEGRITY, 20);

/// RFC 8489 §14.6: 16 to 32 bytes, a multiple of 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageIntegritySha256<'a>(pub &'a [u8]);

impl<'a> DecodeAttribute<'a> for MessageIntegritySha256<'a> {
    const TYPE: AttributeType = AttributeType::MESSAGE_INTEGRITY_SHA256;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        if (16..=32).contains(&value.len()) && value.len().is_multiple_of(4) {
            Ok(Self(value))
        } else {
            Err(DecodeError::InvalidValue("MESSAGE-INTEGRITY-SHA256 length"))
        }
    }
}

impl EncodeAttribute for MessageIntegritySha256<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::MESSAGE_INTEGRITY_SHA256
    }
    fn value_len(&self) -> usize {
        self.0.len()
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.bytes(self.0)
    }
}
