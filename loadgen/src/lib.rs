//! ringturn-loadgen: a TURN load generator that measures any TURN server
//! (ringturn, coturn, …) on loopback, and the side-by-side comparison.
//!
//! - `config`: one validated description of a run; `cli` builds it from flags.
//! - `engine`: a worker thread (its clients' sockets, its echo peers, one epoll loop).
//! - `run`: phases by the clock, server CPU sampling, progress line, the report.
//! - `report`: table, JSON, HTML/SVG. `compare`: ringturn vs coturn.
//! - `stream`: TURN over TCP/TLS (framing, buffers, one connection); `tls`: rustls setup;
//!   `transport`: UDP, TCP or TLS (used by `config` and `tls`, below both).
//! - `soak`: relay traffic and allocation churn at once, the server's memory sampled.
//! - `hold`: N allocations made a batch of sockets at a time, held, refreshed; the server's RSS.
//! - `net`: the only `unsafe` (epoll, recvmmsg/sendmmsg, clocks, rlimits, signals).

pub mod cli;
pub mod compare;
pub mod config;
pub mod engine;
pub mod hold;
pub mod net;
pub mod payload;
pub mod procstat;
pub mod report;
pub mod run;
pub mod servers;
pub mod soak;
pub mod stream;
pub mod tls;
pub mod track;
pub mod transport;
pub mod veth;

pub use config::{LoadConfig, Mode, Rate, SizeMix};
pub use report::Report;
pub use run::run;
