//! Which worker owns a relay address. Ports are dealt to workers round-robin
//! (`port_offset`/`port_stride`), so ownership is arithmetic: no shared table,
//! nothing to lock.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone)]
pub struct RelayDirectory {
    relay_ips: Vec<IpAddr>,
    /// `external-ip` public → private, so traffic sent to the advertised address is recognised.
    public_to_private: HashMap<IpAddr, IpAddr>,
    min_port: u16,
    max_port: u16,
    workers: usize,
}

impl RelayDirectory {
    pub fn new(
        relay_ips: Vec<IpAddr>,
        external_ips: &HashMap<IpAddr, IpAddr>,
        min_port: u16,
        max_port: u16,
        workers: usize,
    ) -> Self {
        let public_to_private = external_ips
            .iter()
            .map(|(private, public)| (*public, *private))
            .collect();
        Self {
            relay_ips,
            public_to_private,
            min_port,
            max_port,
            workers: workers.max(1),
        }
    }

    /// The worker owning `addr` and the local relay address it maps to, if
    /// `addr` is one of this server's relay addresses.
    pub fn owner(&self, addr: SocketAddr) -> Option<(usize, SocketAddr)> {
        let ip = self
            .public_to_private
            .get(&addr.ip())
            .copied()
            .unwrap_or(addr.ip());
        if !self.relay_ips.contains(&ip) || !(self.min_port..=self.max_port).contains(&addr.port())
        {
            return None;
        }
        let workers = u16::try_from(self.workers).unwrap_or(u16::MAX);
        let worker = crate::turn::ports::shard_of_port(addr.port(), self.min_port, workers);
        Some((worker, SocketAddr::new(ip, addr.port())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_dealt_round_robin() {
        let d = RelayDirectory::new(
            vec!["10.0.0.1".parse().unwrap()],
            &HashMap::new(),
            50000,
            50010,
            3,
        );
        assert_eq!(
            d.owner("10.0.0.1:50000".parse().unwrap()).map(|o| o.0),
            Some(0)
        );
        assert_eq!(
            d.owner("10.0.0.1:50001".parse().unwrap()).map(|o| o.0),
            Some(0)
        );
        assert_eq!(
            d.owner("10.0.0.1:50002".parse().unwrap()).map(|o| o.0),
            Some(1)
        );
        assert_eq!(
            d.owner("10.0.0.1:50004".parse().unwrap()).map(|o| o.0),
            Some(2)
        );
        assert_eq!(d.owner("10.0.0.1:49999".parse().unwrap()), None);
        assert_eq!(d.owner("10.0.0.2:50000".parse().unwrap()), None);
        let ext = HashMap::from([("10.0.0.1".parse().unwrap(), "203.0.113.1".parse().unwrap())]);
        let d = RelayDirectory::new(vec!["10.0.0.1".parse().unwrap()], &ext, 50000, 50010, 1);
        assert_eq!(
            d.owner("203.0.113.1:50002".parse().unwrap()),
            Some((0, "10.0.0.1:50002".parse().unwrap()))
        );
    }
}
