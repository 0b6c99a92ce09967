//! What the integration tests share: the sans-IO harness (`harness.rs`,
//! re-exported here), child processes and network namespaces, the
//! in-process server's settings, and the UDP and stream test clients.
#![allow(dead_code)]

mod harness;
pub mod long_term;
pub mod process;
pub mod published;
pub mod server;
pub mod stream_client;
pub mod udp_client;

#[allow(unused_imports)] // Not every test binary uses the harness.
pub use harness::*;
