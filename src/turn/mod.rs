//! The sans-IO TURN server logic (RFC 8656): allocations, permissions,
//! channels, lifetimes, nonces, the transaction cache. One `Server` per
//! worker shard; input is `(now, 5-tuple, bytes)`, output is transmits,
//! commands and the next deadline.

mod allocate;
pub mod allocation;
mod authenticate;
pub mod bandwidth;
pub mod config;
mod datapath;
mod echo;
mod fast_map;
pub mod fast_path;
mod peer_connections;
mod permissions;
pub mod policy;
pub mod ports;
mod reconfigure;
pub mod redirect;
mod relay_sockets;
mod reply;
mod requests;
pub mod server;
pub mod session_log;
pub mod shared;
mod stats;
pub mod tcp_relay;
pub mod timers;
mod transactions;

pub use allocation::{AllocationId, ClientTransport, ClientTuple};
pub use config::{DefaultFamily, ServerConfig};
pub use fast_path::ChannelRoute;
pub use policy::{IpRange, PeerPolicy};
pub use redirect::Redirect;
pub use server::{
    ClientOutcome, Command, DropReason, Forward, PeerOutcome, Server, Stats, TableSizes, Transmit,
    PEER_HEADROOM, PEER_TAILROOM,
};
pub use shared::RelaySocketMode;
pub use tcp_relay::{connection_shard, ConnectionNumber, CONNECTION_BIND_TIMEOUT};
