//! ringturn: a STUN/TURN relay server for WebRTC.
//!
//! `stun`, `auth` and `turn` are the sans-IO core: no sockets, no clock, no
//! threads, and no `unsafe`.

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod stun;

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod auth;

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod turn;

pub mod io;

/// The XDP fast path: I/O like `io` (its `unsafe` is the BPF plumbing).
pub mod xdp;

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod tls;

pub mod worker;

/// `ringturn admin`: turnadmin's work on that database.
pub mod admin;
pub mod config;
/// Log destinations and line formats as coturn's options set them.
pub mod logging;
pub mod metrics;
pub mod run;
/// coturn's SQLite user database, read by the control plane.
pub mod userdb;

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod signaling;

#[forbid(unsafe_code)]
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod hostcheck;
