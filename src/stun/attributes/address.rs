//! The address attributes (RFC 8489 §14.1, §14.2, §14.15; RFC 8656 §18.3,
//! §18.5; RFC 5780 §7.3, §7.4): MAPPED-ADDRESS and its XOR'd kin, one shared
//! family / port / IP layout, with the XOR mask of RFC 8489 §14.2.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{DecodeAttribute, EncodeAttribute, ValueWriter};
use crate::stun::error::{DecodeError, EncodeError};
use crate::stun::reader::Reader;
use crate::stun::types::{AddressFamily, AttributeType, TransactionId, MAGIC_COOKIE};

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
