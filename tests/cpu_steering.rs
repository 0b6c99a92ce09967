//! `reuseport-cpu-steering`: with workers pinned to cores, a datagram goes to
//! the worker pinned to the CPU that processed it (SO_ATTACH_REUSEPORT_CBPF).
//! On loopback that CPU is the sender's, so a sender pinned to core c must be
//! answered by the worker on core c alone, whatever its source port.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ringturn::auth::Credentials;
use ringturn::io::BackendKind;
use ringturn::run::{start, RunSettings, RunningServer};
use ringturn::turn::ServerConfig;

fn binding_request(n: u8) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    m.extend_from_slice(&[n; 12]);
    m
}

fn requests(server: &RunningServer) -> Vec<u64> {
    server
        .metrics
        .iter()
        .map(|m| m.requests.load(Ordering::Relaxed))
        .collect()
}

/// From a thread pinned to `cpu`: `count` Binding requests, each from its own
/// socket (so the kernel's hash alone would spread them), each answered.
fn bindings_from_cpu(server: std::net::SocketAddr, cpu: usize, count: u8) {
    std::thread::spawn(move || {
        ringturn::io::affinity::pin_current_thread(cpu).unwrap();
        for n in 0..count {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            sock.send_to(&binding_request(n), server).unwrap();
            let mut buf = [0u8; 512];
            sock.recv_from(&mut buf).expect("answered");
        }
    })
    .join()
    .unwrap();
}

fn wait_for(server: &RunningServer, expect: &[u64]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while requests(server) != expect {
        assert!(
            std::time::Instant::now() < deadline,
            "requests per worker {:?}, expected {expect:?}",
            requests(server)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn datagrams_go_to_the_worker_pinned_to_the_receiving_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        assert!(std::env::var_os("CI").is_none(), "CI machines have 2 cores");
        eprintln!("skipping: one CPU");
        return;
    }
    for backend in [BackendKind::Uring, BackendKind::Batch] {
        let configs = (0..2)
            .map(|w| ServerConfig {
                port_offset: w,
                port_stride: 2,
                min_port: 59000,
                max_port: 59099,
                ..ServerConfig::default()
            })
            .collect();
        let server = start(RunSettings {
            cpu_affinity: vec![0, 1],
            steer_by_cpu: true,
            backend: Some(backend),
            ..RunSettings::new(
                vec!["127.0.0.1:0".parse().unwrap()],
                configs,
                Credentials::new("example.org"),
            )
        })
        .unwrap();
        let addr = server.listening[0];
        bindings_from_cpu(addr, 1, 16);
        wait_for(&server, &[0, 16]);
        bindings_from_cpu(addr, 0, 16);
        wait_for(&server, &[16, 16]);
        server.stop().unwrap();
    }
}
