//! The in-process server the socket-level tests start: loopback only, the
//! listening port picked by the kernel, relay ports from a range chosen per
//! test, user alice/secret, loopback peers allowed. Tests change the fields
//! they care about on the returned settings.
#![allow(dead_code)]

use ringturn::auth::Credentials;
use ringturn::io::BackendKind;
use ringturn::run::RunSettings;
use ringturn::turn::{PeerPolicy, ServerConfig};

/// Settings for `workers` shards sharing `min_port..min_port + 199`, each
/// from `base` with its own port share and RNG seed.
pub fn settings(
    backend: BackendKind,
    workers: usize,
    min_port: u16,
    base: ServerConfig,
) -> RunSettings {
    let mut credentials = Credentials::new("example.org");
    credentials.add_user("alice", "secret");
    let server_configs = (0..workers)
        .map(|w| ServerConfig {
            min_port,
            max_port: min_port + 199,
            port_offset: w as u16,
            port_stride: workers as u16,
            rng_seed: base.rng_seed.wrapping_add(w as u64 + 1),
            ..base.clone()
        })
        .collect();
    RunSettings {
        backend: Some(backend),
        ..RunSettings::new(
            vec!["127.0.0.1:0".parse().unwrap()],
            server_configs,
            credentials,
        )
    }
}

/// A base config with loopback peers allowed (everything in tests is on loopback).
pub fn loopback_peers() -> ServerConfig {
    ServerConfig {
        peer_policy: PeerPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        ..ServerConfig::default()
    }
}
