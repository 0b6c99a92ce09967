//! The UTF-8 text attributes (RFC 8489 §14.3, §14.9, §14.10, §14.14, §14.16):
//! USERNAME, REALM, NONCE, SOFTWARE and ALTERNATE-DOMAIN, each with its
//! length limit.

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::types::{AttributeType, TransactionId};

macro_rules! text_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident, max_bytes = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a>(pub &'a str);

        impl<'a> DecodeAttribute<'a> for $name<'a> {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
                if value.len() > $max {
                    return Err(DecodeError::TooLong(stringify!($attr)));
                }
                std::str::from_utf8(value).map($name).map_err(|_| DecodeError::NotUtf8(stringify!($attr)))
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
                if self.0.len() > $max {
                    return Err(EncodeError::ValueTooLong(stringify!($attr)));
                }
                w.bytes(self.0.as_bytes())
            }
        }
    };
}

text_attribute!(
    /// RFC 8489 §14.3: less than 509 bytes (513 in RFC 5389; we accept 513).
    Username, USERNAME, max_bytes = 513);
text_attribute!(
    /// RFC 8489 §14.9: fewer than 128 characters, at most 763 bytes.
    Realm, REALM, max_bytes = 763);
text_attribute!(
    /// RFC 8489 §14.10: fewer than 128 characters, at most 763 bytes.
    Nonce, NONCE, max_bytes = 763);
text_attribute!(
    /// RFC 8489 §14.14: fewer than 128 characters, at most 763 bytes.
    Software, SOFTWARE, max_bytes = 763);
text_attribute!(
    /// RFC 8489 §14.16: a domain name, at most 255 bytes.
    AlternateDomain, ALTERNATE_DOMAIN, max_bytes = 255);
