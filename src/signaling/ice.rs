//! `GET /api/ice-servers`: the `iceServers` of an `RTCConfiguration` for this
//! server, with time-limited TURN REST API credentials (username
//! `<expiry><separator><tag>`, password base64(HMAC-SHA1(secret, username)))
//! minted from the first `static-auth-secret`. No static password ever goes
//! out: without a secret, only the `stun:` URL is returned and the
//! `turnUnavailable` field says why.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::auth::RestApi;

/// What the endpoint needs to know about the TURN side.
#[derive(Debug, Clone)]
pub struct IceSettings {
    /// The TURN listening addresses as bound (UDP).
    pub listening: Vec<SocketAddr>,
    /// Public addresses to advertise instead (the `external-ip` public halves).
    pub external_ips: Vec<IpAddr>,
    /// `None`: no REST API secret (or `use-auth-secret` off).
    pub rest_api: Option<RestApi>,
    /// `no-auth`: TURN URLs go out without credentials.
    pub no_auth: bool,
    /// STUN Binding is answered (not `no-stun`).
    pub stun: bool,
    /// TURN is served (not `stun-only`).
    pub turn: bool,
    /// How long minted credentials stay valid.
    pub ttl: Duration,
    /// TURN over TCP on these addresses: `turn:…?transport=tcp` URLs too.
    pub tcp_listening: Vec<SocketAddr>,
    /// TURN over TLS on these addresses: `turns:…?transport=tcp` URLs too.
    pub tls_listening: Vec<SocketAddr>,
    /// `signaling-turn-urls`: the TURN URLs pages get instead of this node's
    /// own (another node's, or a name behind a load balancer); the
    /// credentials are minted the same way, so those nodes must share the
    /// `static-auth-secret`.
    pub turn_urls: Vec<String>,
}

/// One `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The endpoint's JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid (absent without credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Unix time the credentials expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Why there is no `turn:` URL, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_unavailable: Option<String>,
}

/// A host as it may appear in a URL: an IP (IPv6 in brackets) or a DNS name.
fn host_of_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The host part of an HTTP `Host` header, if it is a plain DNS name or IP
/// literal (anything else is not put into a URL).
pub fn host_from_header(host: &str) -> Option<String> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (inner, _) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inner.parse().ok()?;
        return Some(format!("[{ip}]"));
    }
    let name = host.split(':').next()?;
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then(|| name.to_ascii_lowercase())
}

impl IceSettings {
    /// The `host:port`s clients reach the TURN server at: the external
    /// addresses when configured, else each specific listening address,
    /// else (a wildcard listener) the host the page was loaded from.
    pub fn hosts(&self, request_host: Option<&str>) -> Vec<String> {
        Self::hosts_of(&self.listening, &self.external_ips, request_host)
    }

    fn hosts_of(
        listening: &[SocketAddr],
        external_ips: &[IpAddr],
        request_host: Option<&str>,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |s: String| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        for l in listening {
            if !external_ips.is_empty() {
                for ip in external_ips
                    .iter()
                    .filter(|ip| l.ip().is_unspecified() || ip.is_ipv4() == l.is_ipv4())
                {
                    add(format!("{}:{}", host_of_ip(*ip), l.port()));
                }
            } else if !l.ip().is_unspecified() {
                add(format!("{}:{}", host_of_ip(l.ip()), l.port()));
            } else if let Some(h) = request_host.and_then(host_from_header) {
                add(format!("{h}:{}", l.port()));
            }
        }
        out
    }

    /// The response for a page loaded from `request_host` at `unix_now`;
    /// `tag` goes after the expiry in the REST username.
    pub fn respond(&self, request_host: Option<&str>, unix_now: u64, tag: &str) -> IceServers {
        let hosts = self.hosts(request_host);
        let mut out = IceServers {
            ice_servers: Vec::new(),
            ttl: None,
            expires: None,
            turn_unavailable: None,
        };
        if hosts.is_empty() {
            out.turn_unavailable = Some(
                "the TURN server listens on a wildcard address and the page's host is unusable; \
                 set external-ip or listening-ip"
                    .to_owned(),
            );
            return out;
        }
        if self.stun {
            out.ice_servers.push(IceServer {
                urls: hosts.iter().map(|h| format!("stun:{h}")).collect(),
                username: None,
                credential: None,
            });
        }
        if !self.turn {
            out.turn_unavailable = Some("the server runs stun-only".to_owned());
            return out;
        }
        // UDP first; TCP and TLS for networks that block UDP (RFC 8656 §3.1).
        // A certificate names the server, so turns: prefers the page's host.
        let tls_hosts = match request_host.and_then(host_from_header) {
            Some(h) if !self.tls_listening.is_empty() => {
                let mut ports: Vec<u16> = self.tls_listening.iter().map(|a| a.port()).collect();
                ports.dedup();
                ports.into_iter().map(|p| format!("{h}:{p}")).collect()
            }
            _ => Self::hosts_of(&self.tls_listening, &self.external_ips, request_host),
        };
        let own_urls = self.turn_urls.is_empty();
        let turn_urls: Vec<String> = if !own_urls {
            self.turn_urls.clone()
        } else {
            hosts
                .iter()
                .map(|h| format!("turn:{h}?transport=udp"))
                .chain(
                    Self::hosts_of(&self.tcp_listening, &self.external_ips, request_host)
                        .into_iter()
                        .map(|h| format!("turn:{h}?transport=tcp")),
                )
                .chain(
                    tls_hosts
                        .into_iter()
                        .map(|h| format!("turns:{h}?transport=tcp")),
                )
                .collect()
        };
        if self.no_auth {
            out.ice_servers.push(IceServer {
                urls: turn_urls,
                username: None,
                credential: None,
            });
            return out;
        }
        let ttl = self.ttl.as_secs();
        let expiry = unix_now.saturating_add(ttl);
        match self.rest_api.as_ref().and_then(|api| api.mint(tag, expiry)) {
            Some((username, credential)) => {
                out.ice_servers.push(IceServer {
                    urls: turn_urls,
                    username: Some(username),
                    credential: Some(credential),
                });
                out.ttl = Some(ttl);
                out.expires = Some(expiry);
            }
            None => {
                out.turn_unavailable = Some(
                    "no static-auth-secret is configured (or use-auth-secret is off), so no \
                     time-limited TURN credentials can be minted; static passwords are never \
                     handed to pages"
                        .to_owned(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn settings() -> IceSettings {
        IceSettings {
            listening: vec!["127.0.0.1:3478".parse().unwrap()],
            external_ips: vec![],
            rest_api: Some(RestApi::new(vec![b"north".to_vec()], ':')),
            no_auth: false,
            stun: true,
            turn: true,
            ttl: Duration::from_secs(600),
            tcp_listening: vec![],
            tls_listening: vec![],
            turn_urls: vec![],
        }
    }

    #[test]
    fn signaling_turn_urls_replace_this_nodes_turn_urls_with_the_same_credentials() {
        let s = IceSettings {
            turn_urls: vec![
                "turn:turn-b.example.org:3478?transport=udp".to_owned(),
                "turns:turn-b.example.org:5349?transport=tcp".to_owned(),
            ],
            ..settings()
        };
        let r = s.respond(None, 1_000, "t");
        assert_eq!(r.ice_servers[0].urls, vec!["stun:127.0.0.1:3478"]);
        let turn = &r.ice_servers[1];
        assert_eq!(turn.urls, s.turn_urls);
        assert!(turn.username.as_deref().is_some_and(|u| u.ends_with(":t")));
        assert!(turn.credential.is_some());
    }

    #[test]
    fn rfc8656_3_1_tcp_and_tls_urls_follow_udp_when_served() {
        let s = IceSettings {
            tcp_listening: vec!["127.0.0.1:3478".parse().unwrap()],
            tls_listening: vec!["127.0.0.1:5349".parse().unwrap()],
            ..settings()
        };
        let r = s.respond(Some("turn.example.com:8080"), 1_000, "t");
        assert_eq!(
            r.ice_servers[1].urls,
            vec![
                "turn:127.0.0.1:3478?transport=udp",
                "turn:127.0.0.1:3478?transport=tcp",
                "turns:turn.example.com:5349?transport=tcp",
            ],
            "turns: names the page's host, which the certificate names"
        );
        let r = s.respond(None, 1_000, "t");
        assert_eq!(
            r.ice_servers[1].urls[2],
            "turns:127.0.0.1:5349?transport=tcp"
        );
    }

    #[test]
    fn mints_rest_api_credentials_for_the_turn_url() {
        let r = settings().respond(None, 1_000, "tag");
        assert_eq!(r.ice_servers.len(), 2);
        assert_eq!(r.ice_servers[0].urls, vec!["stun:127.0.0.1:3478"]);
        assert_eq!(r.ice_servers[0].username, None);
        let turn = &r.ice_servers[1];
        assert_eq!(turn.urls, vec!["turn:127.0.0.1:3478?transport=udp"]);
        assert_eq!(turn.username.as_deref(), Some("1600:tag"));
        assert_eq!(
            turn.credential.as_deref(),
            Some(RestApi::password(b"north", "1600:tag").as_str())
        );
        assert_eq!((r.ttl, r.expires), (Some(600), Some(1600)));
        assert!(r.turn_unavailable.is_none());
    }

    #[test]
    fn without_a_secret_only_stun_and_a_reason() {
        let s = IceSettings {
            rest_api: None,
            ..settings()
        };
        let r = s.respond(None, 1_000, "t");
        assert_eq!(r.ice_servers.len(), 1);
        assert!(r.ice_servers[0].urls[0].starts_with("stun:"));
        assert!(r.turn_unavailable.unwrap().contains("static-auth-secret"));
        let json = serde_json::to_string(&s.respond(None, 1, "t")).unwrap();
        assert!(!json.contains("\"credential\""), "{json}");
        assert!(!json.contains("\"username\""), "{json}");
    }

    #[test]
    fn external_ip_is_advertised_and_wildcards_use_the_page_host() {
        let s = IceSettings {
            listening: vec!["0.0.0.0:3478".parse().unwrap()],
            external_ips: vec!["203.0.113.5".parse().unwrap()],
            ..settings()
        };
        assert_eq!(s.hosts(Some("example.com")), vec!["203.0.113.5:3478"]);
        let s = IceSettings {
            external_ips: vec![],
            ..s
        };
        assert_eq!(
            s.hosts(Some("Call.Example.com:8080")),
            vec!["call.example.com:3478"]
        );
        assert_eq!(s.hosts(Some("[::1]:8080")), vec!["[::1]:3478"]);
        assert!(s.hosts(Some("evil.com/x?")).is_empty());
        assert!(s.hosts(None).is_empty());
        assert!(s
            .respond(None, 0, "t")
            .turn_unavailable
            .unwrap()
            .contains("wildcard"));
    }

    #[test]
    fn ipv6_listeners_are_bracketed() {
        let s = IceSettings {
            listening: vec!["[2001:db8::1]:3478".parse().unwrap()],
            ..settings()
        };
        assert_eq!(
            s.respond(None, 0, "t").ice_servers[1].urls,
            vec!["turn:[2001:db8::1]:3478?transport=udp"]
        );
    }

    #[test]
    fn no_auth_and_stun_only_and_no_stun() {
        let r = IceSettings {
            no_auth: true,
            rest_api: None,
            ..settings()
        }
        .respond(None, 0, "t");
        assert_eq!(r.ice_servers[1].username, None);
        let r = IceSettings {
            turn: false,
            ..settings()
        }
        .respond(None, 0, "t");
        assert_eq!(r.ice_servers.len(), 1);
        let r = IceSettings {
            stun: false,
            ..settings()
        }
        .respond(None, 0, "t");
        assert_eq!(r.ice_servers.len(), 1);
        assert!(r.ice_servers[0].urls[0].starts_with("turn:"));
    }
}
