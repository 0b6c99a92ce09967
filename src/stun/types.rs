//! Wire codes as open newtypes with named constants: an unknown method or
//! attribute stays representable, which is what a 420 answer needs.

use std::fmt;

/// RFC 8489 §5: the fixed value in bytes 4..8 of every RFC 5389+ message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8489 §5: the header is 20 bytes.
pub const HEADER_LEN: usize = 20;
/// RFC 8489 §14.7: FINGERPRINT is CRC-32 XOR this value ("STUN").
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// RFC 8489 §14.5: HMAC-SHA1 output length.
pub const MESSAGE_INTEGRITY_LEN: usize = 20;
/// RFC 8489 §14.6: HMAC-SHA256 output length (may be truncated to 16..=32, multiple of 4).
pub const MESSAGE_INTEGRITY_SHA256_LEN: usize = 32;

/// A STUN method (12 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(pub u16);

impl Method {
    /// RFC 8489 §18.2
    pub const BINDING: Method = Method(0x001);
    /// RFC 8656 §17
    pub const ALLOCATE: Method = Method(0x003);
    pub const REFRESH: Method = Method(0x004);
    pub const SEND: Method = Method(0x006);
    pub const DATA: Method = Method(0x007);
    pub const CREATE_PERMISSION: Method = Method(0x008);
    pub const CHANNEL_BIND: Method = Method(0x009);
    /// RFC 6062 §6.1
    pub const CONNECT: Method = Method(0x00A);
    pub const CONNECTION_BIND: Method = Method(0x00B);
    pub const CONNECTION_ATTEMPT: Method = Method(0x00C);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            Method::CONNECT => "Connect",
            Method::CONNECTION_BIND => "ConnectionBind",
            Method::CONNECTION_ATTEMPT => "ConnectionAttempt",
            _ => return None,
        })
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Method({:#05x})", self.0),
        }
    }
}

/// RFC 8489 §5: the two class bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    SuccessResponse,
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }
}

/// Method and class, interleaved into the 14-bit message type (RFC 8489 §5, Figure 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    pub method: Method,
    pub class: Class,
}

impl MessageType {
    pub const fn new(method: Method, class: Class) -> Self {
        Self { method, class }
    }

    pub fn to_u16(self) -> u16 {
        let m = self.method.0 & 0x0FFF;
        let c = self.class.bits();
        (m & 0x000F)
            | ((m & 0x0070) << 1)
            | ((m & 0x0F80) << 2)
            | ((c & 0b01) << 4)
            | ((c & 0b10) << 7)
    }

    /// The caller has already checked that the top two bits are zero.
    pub fn from_u16(v: u16) -> Self {
        let method = (v & 0x000F) | ((v & 0x00E0) >> 1) | ((v & 0x3E00) >> 2);
        let class = ((v & 0x0010) >> 4) | ((v & 0x0100) >> 7);
        Self {
            method: Method(method),
            class: Class::from_bits(class),
        }
    }

    /// The success response type for this request.
    pub fn success(self) -> Self {
        Self::new(self.method, Class::SuccessResponse)
    }

    /// The error response type for this request.
    pub fn error(self) -> Self {
        Self::new(self.method, Class::ErrorResponse)
    }
}

/// RFC 8489 §5: 96 bits chosen by the client. For RFC 3489 clients the
/// "magic cookie" bytes belong to their 128-bit id and are kept in `ClassicId`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub [u8; 12]);

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactionId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// An attribute type (RFC 8489 §18.3). 0x0000–0x7FFF are comprehension-required.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributeType(pub u16);

macro_rules! attribute_types {
    ($( $(#[$doc:meta])* $name:ident = $value:expr, $text:expr; )*) => {
        impl AttributeType {
            $( $(#[$doc])* pub const $name: AttributeType = AttributeType($value); )*

            /// Every attribute type this codec decodes.
            pub const KNOWN: &'static [AttributeType] = &[$( AttributeType::$name ),*];

            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( AttributeType::$name => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

attribute_types! {
    /// RFC 8489 §14.1
    MAPPED_ADDRESS = 0x0001, "MAPPED-ADDRESS";
    /// RFC 5780 §7.2
    CHANGE_REQUEST = 0x0003, "CHANGE-REQUEST";
    /// RFC 8489 §14.3
    USERNAME = 0x0006, "USERNAME";
    /// RFC 8489 §14.5
    MESSAGE_INTEGRITY = 0x0008, "MESSAGE-INTEGRITY";
    /// RFC 8489 §14.8
    ERROR_CODE = 0x0009, "ERROR-CODE";
    /// RFC 8489 §14.9
    UNKNOWN_ATTRIBUTES = 0x000A, "UNKNOWN-ATTRIBUTES";
    /// RFC 8656 §18.1
    CHANNEL_NUMBER = 0x000C, "CHANNEL-NUMBER";
    /// RFC 8656 §18.2
    LIFETIME = 0x000D, "LIFETIME";
    /// RFC 8656 §18.3
    XOR_PEER_ADDRESS = 0x0012, "XOR-PEER-ADDRESS";
    /// RFC 8656 §18.4
    DATA = 0x0013, "DATA";
    /// RFC 8489 §14.9
    REALM = 0x0014, "REALM";
    /// RFC 8489 §14.10
    NONCE = 0x0015, "NONCE";
    /// RFC 8656 §18.5
    XOR_RELAYED_ADDRESS = 0x0016, "XOR-RELAYED-ADDRESS";
    /// RFC 8656 §18.6
    REQUESTED_ADDRESS_FAMILY = 0x0017, "REQUESTED-ADDRESS-FAMILY";
    /// RFC 8656 §18.7
    EVEN_PORT = 0x0018, "EVEN-PORT";
    /// RFC 8656 §18.8
    REQUESTED_TRANSPORT = 0x0019, "REQUESTED-TRANSPORT";
    /// RFC 8656 §18.9
    DONT_FRAGMENT = 0x001A, "DONT-FRAGMENT";
    /// RFC 8489 §14.6
    MESSAGE_INTEGRITY_SHA256 = 0x001C, "MESSAGE-INTEGRITY-SHA256";
    /// RFC 8489 §14.12
    PASSWORD_ALGORITHM = 0x001D, "PASSWORD-ALGORITHM";
    /// RFC 8489 §14.4
    USERHASH = 0x001E, "USERHASH";
    /// RFC 8489 §14.2
    XOR_MAPPED_ADDRESS = 0x0020, "XOR-MAPPED-ADDRESS";
    /// RFC 8656 §18.10
    RESERVATION_TOKEN = 0x0022, "RESERVATION-TOKEN";
    /// RFC 5780 §7.4
    PADDING = 0x0026, "PADDING";
    /// RFC 5780 §7.5
    RESPONSE_PORT = 0x0027, "RESPONSE-PORT";
    /// RFC 6062 §6.2.1
    CONNECTION_ID = 0x002A, "CONNECTION-ID";
    /// RFC 8656 §18.11
    ADDITIONAL_ADDRESS_FAMILY = 0x8000, "ADDITIONAL-ADDRESS-FAMILY";
    /// RFC 8656 §18.12
    ADDRESS_ERROR_CODE = 0x8001, "ADDRESS-ERROR-CODE";
    /// RFC 8489 §14.11
    PASSWORD_ALGORITHMS = 0x8002, "PASSWORD-ALGORITHMS";
    /// RFC 8489 §14.16
    ALTERNATE_DOMAIN = 0x8003, "ALTERNATE-DOMAIN";
    /// RFC 8656 §18.13
    ICMP = 0x8004, "ICMP";
    /// RFC 8489 §14.14
    SOFTWARE = 0x8022, "SOFTWARE";
    /// RFC 8489 §14.15
    ALTERNATE_SERVER = 0x8023, "ALTERNATE-SERVER";
    /// RFC 8489 §14.7
    FINGERPRINT = 0x8028, "FINGERPRINT";
    /// RFC 5780 §7.3
    RESPONSE_ORIGIN = 0x802B, "RESPONSE-ORIGIN";
    /// RFC 5780 §7.4
    OTHER_ADDRESS = 0x802C, "OTHER-ADDRESS";
}

impl AttributeType {
    /// RFC 8489 §14: types 0x0000–0x7FFF must be understood by the receiver.
    pub fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Debug for AttributeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "AttributeType({:#06x})", self.0),
        }
    }
}

/// An ERROR-CODE value (RFC 8489 §14.8) with the codes STUN and TURN use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// RFC 8489 §14.8
    pub const TRY_ALTERNATE: ErrorCode = ErrorCode(300);
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    pub const UNAUTHORIZED: ErrorCode = ErrorCode(401);
    /// RFC 8656 §19
    pub const FORBIDDEN: ErrorCode = ErrorCode(403);
    pub const UNKNOWN_ATTRIBUTE: ErrorCode = ErrorCode(420);
    pub const ALLOCATION_MISMATCH: ErrorCode = ErrorCode(437);
    pub const STALE_NONCE: ErrorCode = ErrorCode(438);
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: ErrorCode = ErrorCode(440);
    pub const WRONG_CREDENTIALS: ErrorCode = ErrorCode(441);
    pub const UNSUPPORTED_TRANSPORT_PROTOCOL: ErrorCode = ErrorCode(442);
    pub const PEER_ADDRESS_FAMILY_MISMATCH: ErrorCode = ErrorCode(443);
    /// RFC 6062 §6.3
    pub const CONNECTION_ALREADY_EXISTS: ErrorCode = ErrorCode(446);
    pub const CONNECTION_TIMEOUT_OR_FAILURE: ErrorCode = ErrorCode(447);
    pub const ALLOCATION_QUOTA_REACHED: ErrorCode = ErrorCode(486);
    pub const ROLE_CONFLICT: ErrorCode = ErrorCode(487);
    pub const SERVER_ERROR: ErrorCode = ErrorCode(500);
    pub const INSUFFICIENT_CAPACITY: ErrorCode = ErrorCode(508);

    /// The reason phrase the RFCs suggest.
    pub fn default_reason(self) -> &'static str {
        match self.0 {
            300 => "Try Alternate",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            420 => "Unknown Attribute",
            437 => "Allocation Mismatch",
            438 => "Stale Nonce",
            440 => "Address Family not Supported",
            441 => "Wrong Credentials",
            442 => "Unsupported Transport Protocol",
            443 => "Peer Address Family Mismatch",
            446 => "Connection Already Exists",
            447 => "Connection Timeout or Failure",
            486 => "Allocation Quota Reached",
            487 => "Role Conflict",
            500 => "Server Error",
            508 => "Insufficient Capacity",
            _ => "Error",
        }
    }
}

/// RFC 8489 §18.5: password algorithm numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasswordAlgorithmId(pub u16);

impl PasswordAlgorithmId {
    pub const MD5: PasswordAlgorithmId = PasswordAlgorithmId(0x0001);
    pub const SHA256: PasswordAlgorithmId = PasswordAlgorithmId(0x0002);
}

/// IANA protocol numbers for REQUESTED-TRANSPORT (RFC 8656 §18.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportProtocol(pub u8);

impl TransportProtocol {
    pub const TCP: TransportProtocol = TransportProtocol(6);
    pub const UDP: TransportProtocol = TransportProtocol(17);
}

/// Address family codes of RFC 8489 §14.1 and RFC 8656 §18.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn code(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(AddressFamily::V4),
            0x02 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    pub fn of(addr: &std::net::SocketAddr) -> Self {
        if addr.is_ipv4() {
            AddressFamily::V4
        } else {
            AddressFamily::V6
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc8489_5_message_type_interleaves_method_and_class() {
        // Binding request 0x0001, success 0x0101, error 0x0111, Allocate request 0x0003.
        assert_eq!(
            MessageType::new(Method::BINDING, Class::Request).to_u16(),
            0x0001
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::SuccessResponse).to_u16(),
            0x0101
        );
        assert_eq!(
            MessageType::new(Method::BINDING, Class::ErrorResponse).to_u16(),
            0x0111
        );
        assert_eq!(
            MessageType::new(Method::SEND, Class::Indication).to_u16(),
            0x0016
        );
        assert_eq!(
            MessageType::new(Method::DATA, Class::Indication).to_u16(),
            0x0017
        );
        assert_eq!(
            MessageType::new(Method::ALLOCATE, Class::ErrorResponse).to_u16(),
            0x0113
        );
        for raw in 0u16..0x4000 {
            assert_eq!(MessageType::from_u16(raw).to_u16(), raw);
        }
    }

    #[test]
    fn comprehension_required_range() {
        assert!(AttributeType::USERNAME.is_comprehension_required());
        assert!(!AttributeType::SOFTWARE.is_comprehension_required());
        assert!(!AttributeType(0x7FFF).is_known());
    }
}
