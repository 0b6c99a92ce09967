//! The error attributes: ERROR-CODE (RFC 8489 §14.8), ADDRESS-ERROR-CODE
//! (RFC 8656 §18.12) with their shared class / number / reason layout, and
//! ICMP (RFC 8656 §18.13).

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::reader::Reader;
use crate::stun::types::{AddressFamily, AttributeType, ErrorCode, TransactionId};

/// RFC 8489 §14.8: the reason phrase is at most 763 bytes.
const MAX_REASON_BYTES: usize = 763;

fn decode_class_number(class: u8, number: u8) -> Result<ErrorCode, DecodeError> {
    let class = u16::from(class & 0x07);
    let number = u16::from(number);
    if !(3..=6).contains(&class) || number > 99 {
        return Err(DecodeError::InvalidValue("error code out of range"));
    }
    Ok(ErrorCode(class * 100 + number))
}

/// RFC 8489 §14.8: class 3–6, number 0–99.
fn encode_class_number(code: ErrorCode, w: &mut ValueWriter<'_>) -> Result<(), EncodeError> {
    if !(300..=699).contains(&code.0) {
        return Err(EncodeError::ValueTooLong("error code outside 300-699"));
    }
    w.u8((code.0 / 100) as u8)?;
    w.u8((code.0 % 100) as u8)
}

fn decode_reason(bytes: &[u8]) -> Result<&str, DecodeError> {
    if bytes.len() > MAX_REASON_BYTES {
        return Err(DecodeError::TooLong("reason phrase"));
    }
    std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8("reason phrase"))
}

/// RFC 8489 §14.8
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCodeAttr<'a> {
    pub code: ErrorCode,
    pub reason: &'a str,
}

impl ErrorCodeAttr<'static> {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            reason: code.default_reason(),
        }
    }
}

impl<'a> DecodeAttribute<'a> for ErrorCodeAttr<'a> {
    const TYPE: AttributeType = AttributeType::ERROR_CODE;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        r.skip(2, "error code reserved")?;
        let class = r.u8("error class")?;
        let number = r.u8("error number")?;
        let code = decode_class_number(class, number)?;
        Ok(Self {
            code,
            reason: decode_reason(r.rest())?,
        })
    }
}

impl EncodeAttribute for ErrorCodeAttr<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::ERROR_CODE
    }
    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        if self.reason.len() > MAX_REASON_BYTES {
            return Err(EncodeError::ValueTooLong("reason phrase"));
        }
        w.u16(0)?;
        encode_class_number(self.code, w)?;
        w.bytes(self.reason.as_bytes())
    }
}

/// RFC 8656 §18.12: an error for one address family of a dual allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressErrorCode<'a> {
    pub family: AddressFamily,
    pub code: ErrorCode,
    pub reason: &'a str,
}

impl<'a> DecodeAttribute<'a> for AddressErrorCode<'a> {
    const TYPE: AttributeType = AttributeType::ADDRESS_ERROR_CODE;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let family_code = r.u8("address error family")?;
        let family =
            AddressFamily::from_code(family_code).ok_or(DecodeError::UnknownFamily(family_code))?;
        r.skip(1, "address error reserved")?;
        let class = r.u8("address error class")?;
        let number = r.u8("address error number")?;
        let code = decode_class_number(class, number)?;
        Ok(Self {
            family,
            code,
            reason: decode_reason(r.rest())?,
        })
    }
}

impl EncodeAttribute for AddressErrorCode<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::ADDRESS_ERROR_CODE
    }
    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        if self.reason.len() > MAX_REASON_BYTES {
            return Err(EncodeError::ValueTooLong("reason phrase"));
        }
        w.u8(self.family.code())?;
        w.u8(0)?;
        encode_class_number(self.code, w)?;
        w.bytes(self.reason.as_bytes())
    }
}

/// RFC 8656 §18.13: an ICMP error the relay received for this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmp {
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub error_data: u32,
}

impl<'a> DecodeAttribute<'a> for Icmp {
    const TYPE: AttributeType = AttributeType::ICMP;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        r.skip(2, "ICMP reserved")?;
        let icmp_type = r.u8("ICMP type")?;
        let icmp_code = r.u8("ICMP code")?;
        let error_data = r.u32("ICMP error data")?;
        if r.any_left() {
            return Err(DecodeError::InvalidValue("ICMP length"));
        }
        Ok(Self {
            icmp_type,
            icmp_code,
            error_data,
        })
    }
}

impl EncodeAttribute for Icmp {
    fn attr_type(&self) -> AttributeType {
        AttributeType::ICMP
    }
    fn value_len(&self) -> usize {
        8
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        w.u16(0)?;
        w.u8(self.icmp_type)?;
        w.u8(self.icmp_code)?;
        w.u32(self.error_data)
    }
}
