//! The number and flag attributes: LIFETIME, FINGERPRINT and CONNECTION-ID
//! (32-bit), CHANNEL-NUMBER and RESPONSE-PORT (16-bit plus reserved bits),
//! REQUESTED-TRANSPORT and the address-family codes (one byte plus reserved),
//! EVEN-PORT, DONT-FRAGMENT and CHANGE-REQUEST (RFC 8656 §18, RFC 8489 §14.7,
//! RFC 5780 §7.2, §7.5, RFC 6062 §6.2.1).

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::reader::Reader;
use crate::stun::types::{AddressFamily, AttributeType, TransactionId, TransportProtocol};

macro_rules! u32_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub u32);

        impl<'a> DecodeAttribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
                <[u8; 4]>::try_from(value)
                    .map(|b| $name(u32::from_be_bytes(b)))
                    .map_err(|_| DecodeError::InvalidValue(stringify!($attr)))
            }
        }

        impl EncodeAttribute for $name {
            fn attr_type(&self) -> AttributeType {
                AttributeType::$attr
            }
            fn value_len(&self) -> usize {
                4
            }
            fn encode_value(&self, w: &mut ValueWriter<'_>, _tid: &TransactionId) -> Result<(), EncodeError> {
                w.u32(self.0)
            }
        }
    };
}

u32_attribute!(
    /// RFC 8656 §18.2: seconds.
    Lifetime, LIFETIME);
u32_attribute!(
    /// RFC 8489 §14.7 (decoded for inspection; the writer computes it).
    Fingerprint, FINGERPRINT);
u32_attribute!(
    /// RFC 6062 §6.2.1
    ConnectionId, CONNECTION_ID);

/// RFC 8656 §18.1: a 16-bit channel number followed by 16 reserved bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelNumberAttr(pub u16);

impl<'a> DecodeAttribute<'a> for ChannelNumberAttr {
    const TYPE: AttributeType = AttributeType::CHANNEL_NUMBER;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let number = r.u16("channel number")?;
        r.skip(2, "channel number RFFU")?;
        if r.any_left() {
            return Err(DecodeError::InvalidValue("CHANNEL-NUMBER length"));
        }
        Ok(Self(number))
    }
}

impl EncodeAttribute for ChannelNumberAttr {
    fn attr_type(&self) -> AttributeType {
        AttributeType::CHANNEL_NUMBER
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.u16(self.0)?;
        w.u16(0)
    }
}

/// RFC 5780 §7.5: a port followed by 16 reserved bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePort(pub u16);

impl<'a> DecodeAttribute<'a> for ResponsePort {
    const TYPE: AttributeType = AttributeType::RESPONSE_PORT;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let port = r.u16("response port")?;
        r.skip(2, "response port reserved")?;
        if r.any_left() {
            return Err(DecodeError::InvalidValue("RESPONSE-PORT length"));
        }
        Ok(Self(port))
    }
}

impl EncodeAttribute for ResponsePort {
    fn attr_type(&self) -> AttributeType {
        AttributeType::RESPONSE_PORT
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.u16(self.0)?;
        w.u16(0)
    }
}

/// A one-byte code followed by three reserved bytes: the layout of
/// REQUESTED-TRANSPORT, REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY.
fn decode_code_byte(value: &[u8], what: &'static str) -> Result<u8, DecodeError> {
    let mut r = Reader::new(value);
    let code = r.u8(what)?;
    r.skip(3, what)?;
    if r.any_left() {
        return Err(DecodeError::InvalidValue(what));
    }
    Ok(code)
}

/// RFC 8656 §18.8
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedTransport(pub TransportProtocol);

impl<'a> DecodeAttribute<'a> for RequestedTransport {
    const TYPE: AttributeType = AttributeType::REQUESTED_TRANSPORT;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        decode_code_byte(value, "REQUESTED-TRANSPORT").map(|p| Self(TransportProtocol(p)))
    }
}

impl EncodeAttribute for RequestedTransport {
    fn attr_type(&self) -> AttributeType {
        AttributeType::REQUESTED_TRANSPORT
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.bytes(&[self.0 .0, 0, 0, 0])
    }
}

macro_rules! family_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub AddressFamily);

        impl<'a> DecodeAttribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
                let code = decode_code_byte(value, stringify!($attr))?;
                AddressFamily::from_code(code).map($name).ok_or(DecodeError::UnknownFamily(code))
            }
        }

        impl EncodeAttribute for $name {
            fn attr_type(&self) -> AttributeType {
                AttributeType::$attr
            }
            fn value_len(&self) -> usize {
                4
            }
            fn encode_value(&self, w: &mut ValueWriter<'_>, _tid: &TransactionId) -> Result<(), EncodeError> {
                w.bytes(&[self.0.code(), 0, 0, 0])
            }
        }
    };
}

family_attribute!(
    /// RFC 8656 §18.6
    RequestedAddressFamily, REQUESTED_ADDRESS_FAMILY);
family_attribute!(
    /// RFC 8656 §18.11 (only IPv6 is meaningful here; the server checks).
    AdditionalAddressFamily, ADDITIONAL_ADDRESS_FAMILY);

/// RFC 8656 §18.7: the R bit asks to reserve the next higher port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvenPort {
    pub reserve_next: bool,
}

impl<'a> DecodeAttribute<'a> for EvenPort {
    const TYPE: AttributeType = AttributeType::EVEN_PORT;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        // One byte; some clients pad the value itself to 4 bytes.
        match value {
            [flags] | [flags, 0, 0, 0] => Ok(Self {
                reserve_next: flags & 0x80 != 0,
            }),
            _ => Err(DecodeError::InvalidValue("EVEN-PORT length")),
        }
    }
}

impl EncodeAttribute for EvenPort {
    fn attr_type(&self) -> AttributeType {
        AttributeType::EVEN_PORT
    }
    fn value_len(&self) -> usize {
        1
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.u8(if self.reserve_next { 0x80 } else { 0 })
    }
}

/// RFC 8656 §18.9: no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DontFragment;

impl<'a> DecodeAttribute<'a> for DontFragment {
    const TYPE: AttributeType = AttributeType::DONT_FRAGMENT;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        if value.is_empty() {
            Ok(Self)
        } else {
            Err(DecodeError::InvalidValue("DONT-FRAGMENT has a value"))
        }
    }
}

impl EncodeAttribute for DontFragment {
    fn attr_type(&self) -> AttributeType {
        AttributeType::DONT_FRAGMENT
    }
    fn value_len(&self) -> usize {
        0
    }
    fn encode_value(
        &self,
        _w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// RFC 5780 §7.2
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRequest {
    pub change_ip: bool,
    pub change_port: bool,
}

impl<'a> DecodeAttribute<'a> for ChangeRequest {
    const TYPE: AttributeType = AttributeType::CHANGE_REQUEST;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let flags = <[u8; 4]>::try_from(value)
            .map(u32::from_be_bytes)
            .map_err(|_| DecodeError::InvalidValue("CHANGE-REQUEST length"))?;
        Ok(Self {
            change_ip: flags & 0x4 != 0,
            change_port: flags & 0x2 != 0,
        })
    }
}

impl EncodeAttribute for ChangeRequest {
    fn attr_type(&self) -> AttributeType {
        AttributeType::CHANGE_REQUEST
    }
    fn value_len(&self) -> usize {
        4
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.u32(u32::from(self.change_ip) << 2 | u32::from(self.change_port) << 1)
    }
}
