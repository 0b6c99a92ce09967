//! [`Attribute`], the sum of every typed attribute: decoding by type (unknown
//! types keep their raw value) and encoding through the variant's own type.

use super::*;
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::types::{AttributeType, TransactionId};

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
