//! An in-process ringturn for loadgen's tests: loopback only, listening port
//! picked by the kernel, relay ports from a range chosen per test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ringturn::auth::{Credentials, RestApi};
use ringturn::io::socket::BufferSizes;
use ringturn::run::{start, RunSettings, RunningServer};
use ringturn::turn::{PeerPolicy, ServerConfig};
use ringturn_loadgen::config::{LoadConfig, Mode};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
pub const SECRET: &str = "s3cret";

pub struct Server {
    pub running: Option<RunningServer>,
    pub addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.running.take() {
            let _ = s.stop();
        }
    }
}

/// ringturn with `workers` shards, long-term user alice/secret and the REST
/// secret "s3cret", loopback peers allowed, relay ports `min_port..min_port+1999`.
pub fn ringturn(workers: usize, min_port: u16) -> Server {
    let mut creds = Credentials::new("example.org");
    creds.add_user(USER, PASSWORD);
    creds.rest_api = Some(RestApi::new(vec![SECRET.as_bytes().to_vec()], ':'));
    let configs = (0..workers)
        .map(|w| ServerConfig {
            min_port,
            max_port: min_port + 1999,
            port_offset: w as u16,
            port_stride: workers as u16,
            peer_policy: PeerPolicy {
                allow_loopback: true,
                ..Default::default()
            },
            rng_seed: 7 + w as u64,
            ..ServerConfig::default()
        })
        .collect();
    let running = start(RunSettings {
        listen: vec!["127.0.0.1:0".parse().expect("address")],
        workers,
        cpu_affinity: vec![],
        steer_by_cpu: false,
        backend: None,
        buffers: BufferSizes {
            rcvbuf: Some(4 << 20),
            sndbuf: Some(4 << 20),
        },
        gro: Default::default(),
        server_configs: configs,
        credentials: creds,
        streams: ringturn::run::StreamSettings::none(),
    })
    .expect("in-process ringturn starts");
    let addr = running.listening[0];
    Server {
        running: Some(running),
        addr,
    }
}

/// A short run's config: no progress line, sub-second phases.
pub fn quick(mode: Mode, server: SocketAddr) -> LoadConfig {
    let mut c = LoadConfig::new(mode, server, USER, PASSWORD);
    c.progress = false;
    c.clients = 8;
    c.warmup = Duration::from_millis(200);
    c.duration = Duration::from_millis(800);
    c.drain = Duration::from_secs(2);
    c.setup_timeout = Duration::from_secs(10);
    c.label = "in-process ringturn".into();
    c
}

/// A relay port range per test (test binaries run one after another, so a
/// slot per test in a binary is enough; the server skips a busy port anyway).
pub fn port_base(slot: u16) -> u16 {
    20_000 + (slot % 10) * 2_000
}
