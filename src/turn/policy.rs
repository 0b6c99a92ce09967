//! Which peers an allocation may talk to (RFC 8656 §21.3: a TURN server must
//! not become a way into the networks behind it).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("expected an address, a range a-b, or a prefix a/n: {0:?}")]
pub struct IpRangeError(pub String);

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    first: IpAddr,
    last: IpAddr,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl IpRange {
    pub fn single(ip: IpAddr) -> Self {
        Self {
            first: ip,
            last: ip,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.first.is_ipv4()
            && (to_u128(self.first)..=to_u128(self.last)).contains(&to_u128(ip))
    }
}

impl FromStr for IpRange {
    type Err = IpRangeError;

    /// coturn's forms: `1.2.3.4`, `1.2.3.4-1.2.3.255`, and CIDR `10.0.0.0/8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpRangeError(s.to_owned());
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let first: IpAddr = a.trim().parse().map_err(|_| err())?;
            let last: IpAddr = b.trim().parse().map_err(|_| err())?;
            if first.is_ipv4() != last.is_ipv4() || to_u128(first) > to_u128(last) {
                return Err(err());
            }
            return Ok(Self { first, last });
        }
        if let Some((a, n)) = s.split_once('/') {
            let base: IpAddr = a.trim().parse().map_err(|_| err())?;
            let bits: u32 = n.trim().parse().map_err(|_| err())?;
            return match base {
                IpAddr::V4(v4) if bits <= 32 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    let first = u32::from(v4) & mask;
                    Ok(Self {
                        first: IpAddr::V4(first.into()),
                        last: IpAddr::V4((first | !mask).into()),
                    })
                }
                IpAddr::V6(v6) if bits <= 128 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u128::MAX << (128 - bits)
                    };
                    let first = u128::from(v6) & mask;
                    Ok(Self {
                        first: IpAddr::V6(first.into()),
                        last: IpAddr::V6((first | !mask).into()),
                    })
                }
                _ => Err(err()),
            };
        }
        s.parse().map(Self::single).map_err(|_| err())
    }
}

/// The peer policy of coturn's options, with its secure defaults.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// `allow-loopback-peers`
    pub allow_loopback: bool,
    /// `allowed-peer-ip`: wins over every other rule.
    pub allowed: Vec<IpRange>,
    /// `denied-peer-ip`
    pub denied: Vec<IpRange>,
    /// The server's own listening sockets (refused as peers, so a relay can
    /// never be pointed back at the TURN port). Relay addresses on the same IP
    /// stay allowed: both WebRTC peers behind one TURN server is the common case.
    pub own_listeners: Vec<SocketAddr>,
}

impl PeerPolicy {
    /// RFC 8656 §21.3 and coturn's defaults: loopback (unless allowed),
    /// 0.0.0.0/8 and ::, multicast, link-local, broadcast and our own addresses
    /// are refused; explicit ranges change that.
    pub fn permits(&self, peer: SocketAddr) -> bool {
        let is_listener = self
            .own_listeners
            .iter()
            .any(|l| l.port() == peer.port() && (l.ip() == peer.ip() || l.ip().is_unspecified()));
        !is_listener && self.permits_ip(peer.ip())
    }

    /// The address rules alone (no port), as `allowed-peer-ip`/`denied-peer-ip` state them.
    pub fn permits_ip(&self, ip: IpAddr) -> bool {
        if self.allowed.iter().any(|r| r.contains(ip)) {
            return true;
        }
        if self.denied.iter().any(|r| r.contains(ip)) {
            return false;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if ip.is_loopback() {
            return self.allow_loopback;
        }
        let special = match ip {
            IpAddr::V4(v4) => {
                v4.octets()[0] == 0 || v4.is_multicast() || v4.is_link_local() || v4.is_broadcast()
            }
            IpAddr::V6(v6) => {
                v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        !special
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn range(s: &str) -> IpRange {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_coturn_range_forms() {
        assert!(range("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.0")));
        assert!(range("192.168.1.10-192.168.1.20").contains(ip("192.168.1.15")));
        assert!(!range("192.168.1.10-192.168.1.20").contains(ip("192.168.1.21")));
        assert!(range("::1").contains(ip("::1")));
        assert!(range("fe80::/10").contains(ip("fe80::1")));
        assert!("1.2.3.4-1.2.3.1".parse::<IpRange>().is_err());
        assert!("1.2.3.4/33".parse::<IpRange>().is_err());
        assert!("nonsense".parse::<IpRange>().is_err());
    }

    #[test]
    fn rfc8656_21_3_refuses_internal_peers_by_default() {
        let p = PeerPolicy::default();
        for bad in [
            "127.0.0.1",
            "0.1.2.3",
            "224.0.0.1",
            "169.254.1.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.permits_ip(ip(bad)), "{bad} should be refused");
        }
        assert!(p.permits_ip(ip("203.0.113.7")));
        assert!(p.permits_ip(ip("2001:db8::1")));
    }

    #[test]
    fn options_change_the_defaults() {
        let listener: SocketAddr = "127.0.0.1:3478".parse().unwrap_or_else(|e| panic!("{e}"));
        let p = PeerPolicy {
            allow_loopback: true,
            own_listeners: vec![listener],
            ..Default::default()
        };
        assert!(p.permits(SocketAddr::new(ip("127.0.0.2"), 3478)));
        assert!(
            p.permits(SocketAddr::new(ip("127.0.0.1"), 50000)),
            "a relay port on our IP is a fine peer"
        );
        assert!(!p.permits(listener), "our own TURN port stays refused");
        let any: SocketAddr = "0.0.0.0:3478".parse().unwrap_or_else(|e| panic!("{e}"));
        let p = PeerPolicy {
            own_listeners: vec![any],
            ..Default::default()
        };
        assert!(!p.permits(SocketAddr::new(ip("203.0.113.1"), 3478)));
        assert!(p.permits(SocketAddr::new(ip("203.0.113.1"), 3479)));

        let p = PeerPolicy {
            denied: vec![range("203.0.113.0/24")],
            allowed: vec![range("203.0.113.9")],
            ..Default::default()
        };
        assert!(!p.permits_ip(ip("203.0.113.8")));
        assert!(
            p.permits_ip(ip("203.0.113.9")),
            "allowed-peer-ip wins over denied-peer-ip"
        );

        let p = PeerPolicy {
            allowed: vec![range("127.0.0.0/8")],
            ..Default::default()
        };
        assert!(p.permits_ip(ip("127.0.0.5")));
    }
}
