//! Spreading allocations over several nodes with the ALTERNATE-SERVER
//! mechanism (RFC 8489 §10, issue 14): an authenticated Allocate is answered
//! 300 (Try Alternate) naming another TURN server — coturn's
//! `alternate-server` / `tls-alternate-server`, round robin as coturn does —
//! and, with ringturn's `max-allocations-before-redirect`, only once this node
//! already holds that many allocations, so it sheds load instead of refusing.

use std::net::SocketAddr;

use super::allocation::{ClientTransport, ClientTuple};

/// Where Allocate requests are sent instead, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redirect {
    /// `alternate-server`: for clients over UDP and TCP.
    pub alternates: Vec<SocketAddr>,
    /// `tls-alternate-server`: for clients over TLS.
    pub tls_alternates: Vec<SocketAddr>,
    /// The TLS listening port: a stream client that reached it is a TLS one.
    pub tls_port: Option<u16>,
    /// Redirect only while this shard holds at least this many allocations
    /// (its share of `max-allocations-before-redirect`); 0: always.
    pub from_allocations: usize,
}

impl Redirect {
    /// Whether any redirect can happen at all.
    pub fn is_configured(&self) -> bool {
        !self.alternates.is_empty() || !self.tls_alternates.is_empty()
    }

    /// The server an Allocate from `client` goes to instead, when this shard
    /// holds `held` allocations; `turn` is the round-robin position, advanced
    /// on every redirect. RFC 8489 §10: the alternate is of the client's
    /// address family (one it can reach with the transport it already uses).
    pub fn pick(&self, turn: &mut usize, client: &ClientTuple, held: usize) -> Option<SocketAddr> {
        if held < self.from_allocations {
            return None;
        }
        let tls = matches!(client.transport, ClientTransport::Stream(_))
            && self.tls_port == Some(client.server.port());
        let list = if tls {
            &self.tls_alternates
        } else {
            &self.alternates
        };
        let v4 = client.client.is_ipv4()
            || matches!(client.client, SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_some());
        let same_family = |a: &&SocketAddr| a.is_ipv4() == v4;
        let count = list.iter().filter(same_family).count();
        if count == 0 {
            return None;
        }
        let chosen = list.iter().filter(same_family).nth(*turn % count).copied();
        *turn = turn.wrapping_add(1);
        chosen
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn tuple(client: &str, server: &str, transport: ClientTransport) -> ClientTuple {
        ClientTuple {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            transport,
        }
    }

    fn redirect() -> Redirect {
        Redirect {
            alternates: vec![
                "192.0.2.1:3478".parse().unwrap(),
                "[2001:db8::1]:3478".parse().unwrap(),
                "192.0.2.2:3478".parse().unwrap(),
            ],
            tls_alternates: vec!["192.0.2.9:5349".parse().unwrap()],
            tls_port: Some(5349),
            from_allocations: 0,
        }
    }

    #[test]
    fn rfc8489_10_round_robin_over_the_clients_family() {
        let r = redirect();
        let udp = tuple(
            "198.51.100.7:5000",
            "203.0.113.1:3478",
            ClientTransport::Udp,
        );
        let mut turn = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| r.pick(&mut turn, &udp, 0).unwrap().to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "192.0.2.1:3478",
                "192.0.2.2:3478",
                "192.0.2.1:3478",
                "192.0.2.2:3478"
            ]
        );
        let v6 = tuple(
            "[2001:db8::7]:5000",
            "[2001:db8::2]:3478",
            ClientTransport::Udp,
        );
        assert_eq!(
            r.pick(&mut turn, &v6, 0).unwrap().to_string(),
            "[2001:db8::1]:3478"
        );
    }

    #[test]
    fn tls_clients_go_to_the_tls_alternates_tcp_clients_to_the_others() {
        let r = redirect();
        let mut turn = 0;
        let tls = tuple(
            "198.51.100.7:5000",
            "203.0.113.1:5349",
            ClientTransport::Stream(1),
        );
        assert_eq!(
            r.pick(&mut turn, &tls, 0).unwrap().to_string(),
            "192.0.2.9:5349"
        );
        let tcp = tuple(
            "198.51.100.7:5000",
            "203.0.113.1:3478",
            ClientTransport::Stream(2),
        );
        assert_eq!(
            r.pick(&mut 0, &tcp, 0).unwrap().to_string(),
            "192.0.2.1:3478"
        );
    }

    #[test]
    fn no_alternate_of_the_family_or_below_the_threshold_means_no_redirect() {
        let mut r = redirect();
        r.tls_alternates.clear();
        let tls = tuple(
            "198.51.100.7:5000",
            "203.0.113.1:5349",
            ClientTransport::Stream(1),
        );
        assert_eq!(r.pick(&mut 0, &tls, 0), None);
        r.from_allocations = 3;
        let udp = tuple(
            "198.51.100.7:5000",
            "203.0.113.1:3478",
            ClientTransport::Udp,
        );
        assert_eq!(r.pick(&mut 0, &udp, 2), None, "sheds load only at 3");
        assert!(r.pick(&mut 0, &udp, 3).is_some());
    }
}
