//! The list attributes: UNKNOWN-ATTRIBUTES (RFC 8489 §14.9), PASSWORD-ALGORITHM
//! and PASSWORD-ALGORITHMS (RFC 8489 §14.11, §14.12), each kept in wire form
//! when decoded, and built from a slice when written.

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::reader::{padded_len, Reader};
use crate::stun::types::{AttributeType, PasswordAlgorithmId, TransactionId};

/// RFC 8489 §14.9: a list of 16-bit attribute types, kept in wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributes<'a>(&'a [u8]);

impl<'a> UnknownAttributes<'a> {
    pub fn iter(&self) -> impl Iterator<Item = AttributeType> + 'a {
        self.0.chunks_exact(2).map(|c| {
            AttributeType(u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]))
        })
    }
}

impl<'a> DecodeAttribute<'a> for UnknownAttributes<'a> {
    const TYPE: AttributeType = AttributeType::UNKNOWN_ATTRIBUTES;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        if !value.len().is_multiple_of(2) {
            return Err(DecodeError::InvalidValue("UNKNOWN-ATTRIBUTES length"));
        }
        Ok(Self(value))
    }
}

impl EncodeAttribute for UnknownAttributes<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::UNKNOWN_ATTRIBUTES
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

/// UNKNOWN-ATTRIBUTES built from a list of types, for writing a 420.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAttributesList<'b>(pub &'b [AttributeType]);

impl EncodeAttribute for UnknownAttributesList<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::UNKNOWN_ATTRIBUTES
    }
    fn value_len(&self) -> usize {
        self.0.len() * 2
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        self.0.iter().try_for_each(|t| w.u16(t.0))
    }
}

/// RFC 8489 §14.11 / §14.12: an algorithm with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithm<'a> {
    pub algorithm: PasswordAlgorithmId,
    pub params: &'a [u8],
}

impl PasswordAlgorithm<'static> {
    pub const MD5: Self = Self {
        algorithm: PasswordAlgorithmId::MD5,
        params: &[],
    };
    pub const SHA256: Self = Self {
        algorithm: PasswordAlgorithmId::SHA256,
        params: &[],
    };
}

fn read_password_algorithm<'a>(r: &mut Reader<'a>) -> Result<PasswordAlgorithm<'a>, DecodeError> {
    let algorithm = PasswordAlgorithmId(r.u16("password algorithm")?);
    let len = usize::from(r.u16("password algorithm params length")?);
    let params = r.take(len, "password algorithm params")?;
    // Parameters are padded to 4 bytes inside the attribute value.
    let pad = padded_len(len) - len;
    r.skip(pad.min(r.remaining()), "password algorithm padding")?;
    Ok(PasswordAlgorithm { algorithm, params })
}

fn password_algorithm_len(a: &PasswordAlgorithm<'_>) -> usize {
    4 + padded_len(a.params.len())
}

fn write_password_algorithm(
    a: &PasswordAlgorithm<'_>,
    w: &mut ValueWriter<'_>,
) -> Result<(), EncodeError> {
    let len = u16::try_from(a.params.len())
        .map_err(|_| EncodeError::ValueTooLong("password algorithm params"))?;
    w.u16(a.algorithm.0)?;
    w.u16(len)?;
    w.bytes(a.params)?;
    let pad = padded_len(a.params.len()) - a.params.len();
    w.bytes([0u8; 3].get(..pad).unwrap_or(&[]))
}

impl<'a> DecodeAttribute<'a> for PasswordAlgorithm<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHM;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let out = read_password_algorithm(&mut r)?;
        if r.any_left() {
            return Err(DecodeError::InvalidValue("PASSWORD-ALGORITHM length"));
        }
        Ok(out)
    }
}

impl EncodeAttribute for PasswordAlgorithm<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::PASSWORD_ALGORITHM
    }
    fn value_len(&self) -> usize {
        password_algorithm_len(self)
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        write_password_algorithm(self, w)
    }
}

/// RFC 8489 §14.11: the algorithms a server offers, kept in wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithms<'a>(&'a [u8]);

impl<'a> PasswordAlgorithms<'a> {
    pub fn iter(&self) -> impl Iterator<Item = PasswordAlgorithm<'a>> + 'a {
        let mut r = Reader::new(self.0);
        std::iter::from_fn(move || {
            if r.any_left() {
                read_password_algorithm(&mut r).ok()
            } else {
                None
            }
        })
    }

    pub fn contains(&self, algorithm: PasswordAlgorithmId) -> bool {
        self.iter().any(|a| a.algorithm == algorithm)
    }

    /// The raw value bytes, for comparing with what the server sent (§9.2.4).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl<'a> DecodeAttribute<'a> for PasswordAlgorithms<'a> {
    const TYPE: AttributeType = AttributeType::PASSWORD_ALGORITHMS;
    fn decode(value: &'a [u8], _tid: &TransactionId) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        while r.any_left() {
            read_password_algorithm(&mut r)?;
        }
        Ok(Self(value))
    }
}

impl EncodeAttribute for PasswordAlgorithms<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::PASSWORD_ALGORITHMS
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

/// PASSWORD-ALGORITHMS built from a list, for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordAlgorithmsList<'b>(pub &'b [PasswordAlgorithm<'b>]);

impl EncodeAttribute for PasswordAlgorithmsList<'_> {
    fn attr_type(&self) -> AttributeType {
        AttributeType::PASSWORD_ALGORITHMS
    }
    fn value_len(&self) -> usize {
        self.0.iter().map(password_algorithm_len).sum()
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        _tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        self.0
            .iter()
            .try_for_each(|a| write_password_algorithm(a, w))
    }
}
