//! How clients reach the server (UDP, TCP or TLS). Its own module so that
//! `config` (which holds one) and `tls` (which connects over one) both use it
//! without importing each other; `config` re-exports it.

use serde::Serialize;

/// How clients reach the server. The relayed side (peers) is UDP in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One UDP socket per client (the default).
    #[default]
    Udp,
    /// One TCP connection per client (RFC 8656 §3.1, messages framed per RFC 8489 §6.2.2).
    Tcp,
    /// One TLS-over-TCP connection per client (RFC 8656 §3.1; ALPN `stun.turn`, RFC 7443).
    Tls,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }
}
