//! Conversions between `std::net::SocketAddr` and the kernel's sockaddr.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A sockaddr the kernel can read, with its length.
#[derive(Clone, Copy)]
pub struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    /// An empty address (length 0).
    pub const fn zeroed() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        #[allow(unsafe_code)]
        let storage = unsafe { std::mem::zeroed() };
        Self { storage, len: 0 }
    }

    pub fn from_std(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        #[allow(unsafe_code)]
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                #[allow(unsafe_code)]
                unsafe {
                    std::ptr::write(
                        (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>(),
                        sin,
                    )
                };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                #[allow(unsafe_code)]
                unsafe {
                    std::ptr::write(
                        (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>(),
                        sin6,
                    )
                };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// Reads a sockaddr the kernel wrote into `bytes` (at least `len` long).
pub fn parse_sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    match i32::from(family) {
        libc::AF_INET if bytes.len() >= 8 => {
            let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
            let ip = Ipv4Addr::new(
                *bytes.get(4)?,
                *bytes.get(5)?,
                *bytes.get(6)?,
                *bytes.get(7)?,
            );
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        libc::AF_INET6 if bytes.len() >= 28 => {
            let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
            let flowinfo = u32::from_ne_bytes(bytes.get(4..8)?.try_into().ok()?);
            let octets: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(bytes.get(24..28)?.try_into().ok()?);
            let ip = Ipv6Addr::from(octets);
            // Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d.
            match ip.to_ipv4_mapped() {
                Some(v4) => Some(SocketAddr::V4(SocketAddrV4::new(v4, port))),
                None => Some(SocketAddr::V6(SocketAddrV6::new(ip, port, flowinfo, scope))),
            }
        }
        _ => None,
    }
}

/// Views a sockaddr_storage as bytes.
pub fn storage_bytes(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> &[u8] {
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: the storage is a live, initialised value at least `len` bytes long.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts((storage as *const libc::sockaddr_storage).cast::<u8>(), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        for s in ["127.0.0.1:3478", "[::1]:5349", "[2001:db8::7]:1"] {
            let a: SocketAddr = s.parse().unwrap();
            let raw = RawAddr::from_std(a);
            assert_eq!(
                parse_sockaddr(storage_bytes(&raw.storage, raw.len)),
                Some(a)
            );
        }
        assert_eq!(parse_sockaddr(&[0, 0]), None);
    }
}
