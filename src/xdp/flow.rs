//! `struct flow` of relay.bpf.c, byte for byte: the key and value of the
//! program's C2P and P2C maps.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Both maps' key and value: source and destination (IPv4 as
/// `::ffff:a.b.c.d`), ports and channel number in network byte order, and
/// the address family (`AF_INET` or `AF_INET6`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flow {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub channel: [u8; 2],
    pub family: u16,
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

fn octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

impl Flow {
    /// `src → dst`; `channel` 0 where the side has none. The family is the source's.
    pub fn new(src: SocketAddr, dst: SocketAddr, channel: u16) -> Self {
        Self {
            src: octets(src.ip()),
            dst: octets(dst.ip()),
            sport: src.port().to_be_bytes(),
            dport: dst.port().to_be_bytes(),
            channel: channel.to_be_bytes(),
            family: if src.is_ipv4() { AF_INET } else { AF_INET6 },
        }
    }

    fn addr(bytes: [u8; 16], port: [u8; 2], family: u16) -> SocketAddr {
        let v6 = Ipv6Addr::from(bytes);
        let ip = match (family, v6.to_ipv4_mapped()) {
            (AF_INET, Some(v4)) => IpAddr::V4(v4),
            _ => IpAddr::V6(v6),
        };
        SocketAddr::new(ip, u16::from_be_bytes(port))
    }

    pub fn source(&self) -> SocketAddr {
        Self::addr(self.src, self.sport, self.family)
    }

    pub fn destination(&self) -> SocketAddr {
        Self::addr(self.dst, self.dport, self.family)
    }

    pub fn channel_number(&self) -> u16 {
        u16::from_be_bytes(self.channel)
    }
}

/// `struct target` of relay.bpf.c: the map value, where a matched packet
/// goes and until when (CLOCK_MONOTONIC nanoseconds, `bpf_ktime_get_ns`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    pub to: Flow,
    pub until_ns: u64,
}

// SAFETY: `repr(C)`: a 40-byte `Flow` (alignment 2) then a u64 at offset 40,
// which is already 8-aligned: no padding, 48 bytes, any bits are valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Target {}

// SAFETY: `Flow` is `repr(C)`, made only of integers and byte arrays with no
// padding (16 + 16 + 2 + 2 + 2 + 2 = 40 bytes, alignment 2), so every bit
// pattern is a valid value and aya may copy it to and from the kernel.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Flow {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_c_layout_and_round_trips() {
        assert_eq!(std::mem::size_of::<Flow>(), 40);
        assert_eq!(std::mem::size_of::<Target>(), 48);
        let a: SocketAddr = "198.51.100.2:5000"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "[2001:db8::1]:3478"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let f = Flow::new(a, a, 0x4001);
        assert_eq!(f.source(), a);
        assert_eq!(f.channel, [0x40, 0x01]);
        assert_eq!(&f.src[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        let g = Flow::new(b, b, 0);
        assert_eq!((g.source(), g.family), (b, AF_INET6));
    }
}
