//! Typed attributes of RFC 8489 §14, RFC 8656 §18, RFC 5780 §7 and RFC 6062.
//!
//! Each attribute is a small type implementing [`DecodeAttribute`] (borrowing
//! its value from the datagram) and [`EncodeAttribute`] (writing into the
//! caller's buffer). [`Attribute`] is the sum of them all, for code that walks
//! every attribute.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::error::{DecodeError, EncodeError};
use super::reader::Reader;
use super::types::{
    AddressFamily, AttributeType, ErrorCode, PasswordAlgorithmId, TransactionId, TransportProtocol,
    MAGIC_COOKIE,
};

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

// ---------------------------------------------------------------- addresses

/// The 32-bit mask RFC 8489 §14.2 applies to ports and IPv4 addresses, and the
/// 128-bit one (cookie ‖ transaction id) for IPv6.
fn xor_mask_v6(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    let (cookie, rest) = mask.split_at_mut(4);
    cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    rest.copy_from_slice(&tid.0);
    mask
}

fn decode_address(value: &[u8], xor: Option<&TransactionId>) -> Result<SocketAddr, DecodeError> {
    let mut r = Reader::new(value);
    r.skip(1, "address reserved byte")?;
    let family = r.u8("address family")?;
    let mut port = r.u16("port")?;
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match AddressFamily::from_code(family) {
        Some(AddressFamily::V4) => {
            let mut bits = r.u32("IPv4 address")?;
            if xor.is_some() {
                bits ^= MAGIC_COOKIE;
            }
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        Some(AddressFamily::V6) => {
            let mut octets = r.array::<16>("IPv6 address")?;
            if let Some(tid) = xor {
                for (o, m) in octets.iter_mut().zip(xor_mask_v6(tid)) {
                    *o ^= m;
                }
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        None => return Err(DecodeError::UnknownFamily(family)),
    };
    if r.any_left() {
        return Err(DecodeError::InvalidValue("address length"));
    }
    Ok(SocketAddr::new(ip, port))
}

fn address_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        8
    } else {
        20
    }
}

fn encode_address(
    addr: &SocketAddr,
    w: &mut ValueWriter<'_>,
    xor: Option<&TransactionId>,
) -> Result<(), EncodeError> {
    w.u8(0)?;
    w.u8(AddressFamily::of(addr).code())?;
    let port = if xor.is_some() {
        addr.port() ^ (MAGIC_COOKIE >> 16) as u16
    } else {
        addr.port()
    };
    w.u16(port)?;
    match addr.ip() {
        IpAddr::V4(ip) => {
            let bits = u32::from(ip);
            w.u32(if xor.is_some() {
                bits ^ MAGIC_COOKIE
            } else {
                bits
            })
        }
        IpAddr::V6(ip) => {
            let mut octets = ip.octets();
            if let Some(tid) = xor {
                for (o, m) in octets.iter_mut().zip(xor_mask_v6(tid)) {
                    *o ^= m;
                }
            }
            w.bytes(&octets)
        }
    }
}

macro_rules! address_attribute {
    ($(#[$doc:meta])* $name:ident, $attr:ident, xor = $xor:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub SocketAddr);

        impl<'a> DecodeAttribute<'a> for $name {
            const TYPE: AttributeType = AttributeType::$attr;
            fn decode(value: &'a [u8], tid: &TransactionId) -> Result<Self, DecodeError> {
                decode_address(value, if $xor { Some(tid) } else { None }).map($name)
            }
        }

        impl EncodeAttribute for $name {
            fn attr_type(&self) -> AttributeType {
                AttributeType::$attr
            }
            fn value_len(&self) -> usize {
                address_len(&self.0)
            }
            fn encode_value(&self, w: &mut ValueWriter<'_>, tid: &TransactionId) -> Result<(), EncodeError> {
                encode_address(&self.0, w, if $xor { Some(tid) } else { None })
            }
        }
    };
}

address_attribute!(
    /// RFC 8489 §14.1 (also what RFC 3489 clients read).
    MappedAddress, MAPPED_ADDRESS, xor = false);
address_attribute!(
    /// RFC 8489 §14.2
    XorMappedAddress, XOR_MAPPED_ADDRESS, xor = true);
address_attribute!(
    /// RFC 8656 §18.3
    XorPeerAddress, XOR_PEER_ADDRESS, xor = true);
address_attribute!(
    /// RFC 8656 §18.5
    XorRelayedAddress, XOR_RELAYED_ADDRESS, xor = true);
address_attribute!(
    /// RFC 8489 §14.15
    AlternateServer, ALTERNATE_SERVER, xor = false);
address_attribute!(
    /// RFC 5780 §7.3
    ResponseOrigin, RESPONSE_ORIGIN, xor = false);
address_attribute!(
    /// RFC 5780 §7.4
    OtherAddress, OTHER_ADDRESS, xor = false);

// ---------------------------------------------------------------- text

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

// ---------------------------------------------------------------- opaque bytes

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

// ---------------------------------------------------------------- numbers and flags

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

// ---------------------------------------------------------------- errors

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

// ---------------------------------------------------------------- lists

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
    let pad = super::reader::padded_len(len) - len;
    r.skip(pad.min(r.remaining()), "password algorithm padding")?;
    Ok(PasswordAlgorithm { algorithm, params })
}

fn password_algorithm_len(a: &PasswordAlgorithm<'_>) -> usize {
    4 + super::reader::padded_len(a.params.len())
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
    let pad = super::reader::padded_len(a.params.len()) - a.params.len();
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

// ---------------------------------------------------------------- the sum type

/// Any attribute, decoded. Unknown types keep their raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute<'a> {
    MappedAddress(MappedAddress),
    XorMappedAddress(XorMappedAddress),
    XorPeerAddress(XorPeerAddress),
    XorRelayedAddress(XorRelayedAddress),
    AlternateServer(AlternateServer),
    ResponseOrigin(ResponseOrigin),
    OtherAddress(OtherAddress),
    Username(Username<'a>),
    Realm(Realm<'a>),
    Nonce(Nonce<'a>),
    Software(Software<'a>),
    AlternateDomain(AlternateDomain<'a>),
    Data(Data<'a>),
    Padding(Padding<'a>),
    Userhash(Userhash),
    ReservationToken(ReservationToken),
    MessageIntegrity(MessageIntegrity),
    MessageIntegritySha256(MessageIntegritySha256<'a>),
    Fingerprint(Fingerprint),
    Lifetime(Lifetime),
    ConnectionId(ConnectionId),
    ChannelNumber(ChannelNumberAttr),
    ResponsePort(ResponsePort),
    RequestedTransport(RequestedTransport),
    RequestedAddressFamily(RequestedAddressFamily),
    AdditionalAddressFamily(AdditionalAddressFamily),
    EvenPort(EvenPort),
    DontFragment(DontFragment),
    ChangeRequest(ChangeRequest),
    ErrorCode(ErrorCodeAttr<'a>),
    AddressErrorCode(AddressErrorCode<'a>),
    Icmp(Icmp),
    UnknownAttributes(UnknownAttributes<'a>),
    PasswordAlgorithm(PasswordAlgorithm<'a>),
    PasswordAlgorithms(PasswordAlgorithms<'a>),
    Unknown {
        attr_type: AttributeType,
        value: &'a [u8],
    },
}

macro_rules! dispatch_with_aliases {
    () => {
        impl<'a> Attribute<'a> {
            pub fn decode(attr_type: AttributeType, value: &'a [u8], tid: &TransactionId) -> Result<Self, DecodeError> {
                dispatch_arm!(attr_type, value, tid,
                    MappedAddress => MappedAddress,
                    XorMappedAddress => XorMappedAddress,
                    XorPeerAddress => XorPeerAddress,
                    XorRelayedAddress => XorRelayedAddress,
                    AlternateServer => AlternateServer,
                    ResponseOrigin => ResponseOrigin,
                    OtherAddress => OtherAddress,
                    Username => Username<'a>,
                    Realm => Realm<'a>,
                    Nonce => Nonce<'a>,
                    Software => Software<'a>,
                    AlternateDomain => AlternateDomain<'a>,
                    Data => Data<'a>,
                    Padding => Padding<'a>,
                    Userhash => Userhash,
                    ReservationToken => ReservationToken,
                    MessageIntegrity => MessageIntegrity,
                    MessageIntegritySha256 => MessageIntegritySha256<'a>,
                    Fingerprint => Fingerprint,
                    Lifetime => Lifetime,
                    ConnectionId => ConnectionId,
                    ChannelNumber => ChannelNumberAttr,
                    ResponsePort => ResponsePort,
                    RequestedTransport => RequestedTransport,
                    RequestedAddressFamily => RequestedAddressFamily,
                    AdditionalAddressFamily => AdditionalAddressFamily,
                    EvenPort => EvenPort,
                    DontFragment => DontFragment,
                    ChangeRequest => ChangeRequest,
                    ErrorCode => ErrorCodeAttr<'a>,
                    AddressErrorCode => AddressErrorCode<'a>,
                    Icmp => Icmp,
                    UnknownAttributes => UnknownAttributes<'a>,
                    PasswordAlgorithm => PasswordAlgorithm<'a>,
                    PasswordAlgorithms => PasswordAlgorithms<'a>,
                );
                Ok(Attribute::Unknown { attr_type, value })
            }

            fn as_encode(&self) -> &dyn EncodeAttribute {
                match self {
                    Attribute::MappedAddress(a) => a,
                    Attribute::XorMappedAddress(a) => a,
                    Attribute::XorPeerAddress(a) => a,
                    Attribute::XorRelayedAddress(a) => a,
                    Attribute::AlternateServer(a) => a,
                    Attribute::ResponseOrigin(a) => a,
                    Attribute::OtherAddress(a) => a,
                    Attribute::Username(a) => a,
                    Attribute::Realm(a) => a,
                    Attribute::Nonce(a) => a,
                    Attribute::Software(a) => a,
                    Attribute::AlternateDomain(a) => a,
                    Attribute::Data(a) => a,
                    Attribute::Padding(a) => a,
                    Attribute::Userhash(a) => a,
                    Attribute::ReservationToken(a) => a,
                    Attribute::MessageIntegrity(a) => a,
                    Attribute::MessageIntegritySha256(a) => a,
                    Attribute::Fingerprint(a) => a,
                    Attribute::Lifetime(a) => a,
                    Attribute::ConnectionId(a) => a,
                    Attribute::ChannelNumber(a) => a,
                    Attribute::ResponsePort(a) => a,
                    Attribute::RequestedTransport(a) => a,
                    Attribute::RequestedAddressFamily(a) => a,
                    Attribute::AdditionalAddressFamily(a) => a,
                    Attribute::EvenPort(a) => a,
                    Attribute::DontFragment(a) => a,
                    Attribute::ChangeRequest(a) => a,
                    Attribute::ErrorCode(a) => a,
                    Attribute::AddressErrorCode(a) => a,
                    Attribute::Icmp(a) => a,
                    Attribute::UnknownAttributes(a) => a,
                    Attribute::PasswordAlgorithm(a) => a,
                    Attribute::PasswordAlgorithms(a) => a,
                    Attribute::Unknown { .. } => self,
                }
            }
        }
    };
}

macro_rules! dispatch_arm {
    ($t:ident, $v:ident, $tid:ident, $( $variant:ident => $ty:ty ),* $(,)?) => {
        $(
            if $t == <$ty as DecodeAttribute<'a>>::TYPE {
                return <$ty as DecodeAttribute<'a>>::decode($v, $tid).map(Attribute::$variant);
            }
        )*
    };
}

dispatch_with_aliases!();

impl EncodeAttribute for Attribute<'_> {
    fn attr_type(&self) -> AttributeType {
        match self {
            Attribute::Unknown { attr_type, .. } => *attr_type,
            other => other.as_encode().attr_type(),
        }
    }
    fn value_len(&self) -> usize {
        match self {
            Attribute::Unknown { value, .. } => value.len(),
            other => other.as_encode().value_len(),
        }
    }
    fn encode_value(
        &self,
        w: &mut ValueWriter<'_>,
        tid: &TransactionId,
    ) -> Result<(), EncodeError> {
        match self {
            Attribute::Unknown { value, .. } => w.bytes(value),
            other => other.as_encode().encode_value(w, tid),
        }
    }
}
