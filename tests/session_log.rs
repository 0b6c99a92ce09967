//! coturn-style session lines (issue 12), captured from the tracing output:
//! its own test binary, because tracing caches per call site whether anyone
//! listens, and a test thread without the capture would decide that for all.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{addr, Client, Harness};

fn bound_client(h: &mut Harness, name: &str) -> Client {
    let mut c = Client::new(name, "alice", "secret");
    c.allocate(h).expect("allocated");
    c.channel_bind(h, 0x4000, addr("192.0.2.200:7000"))
        .expect("bound");
    h.drain();
    c
}

fn send(h: &mut Harness, c: &Client, n: u32, size: usize) {
    let frame = Client::channel_data(0x4000, &vec![7u8; size]);
    for _ in 0..n {
        h.now += Duration::from_millis(100);
        h.server.handle_client_datagram(h.now, c.tuple, &frame);
    }
}

/// A tracing writer that keeps what was written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One info line per allocation event, with what operators grep for: realm,
/// username, client address and transport, relayed address, lifetime; on
/// deletion the reason, duration and what was relayed each way. And a line
/// per refused credential (fail2ban).
#[test]
fn session_lines_like_coturns() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut h = Harness::new(common::test_config());
        let c = bound_client(&mut h, "192.0.2.1:5000");
        send(&mut h, &c, 3, 100);
        let relay = c.relayed.unwrap();
        h.peer_sends(relay, addr("192.0.2.200:7000"), &[1u8; 50]);
        let mut c = c;
        c.refresh(&mut h, 300).unwrap();
        h.advance(Duration::from_secs(30));
        c.refresh(&mut h, 0).unwrap();
        let mut wrong = Client::new("192.0.2.9:5000", "mallory", "guess");
        assert_eq!(wrong.allocate(&mut h), Err(401));
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in\n{text}"))
            .to_owned()
    };
    let created = line("allocation created");
    for field in [
        "realm=\"example.org\"",
        "username=\"alice\"",
        "client=192.0.2.1:5000",
        "transport=\"UDP\"",
        "relayed=127.0.0.1:",
        "lifetime=600",
    ] {
        assert!(created.contains(field), "{field} in {created}");
    }
    assert!(line("allocation refreshed").contains("username=\"alice\""));
    let deleted = line("allocation deleted");
    for field in [
        "username=\"alice\"",
        "reason=\"deleted by the client (Refresh 0)\"",
        "duration=30",
        "sent_packets=3",
        "sent_bytes=300",
        "received_packets=1",
        "received_bytes=50",
    ] {
        assert!(deleted.contains(field), "{field} in {deleted}");
    }
    let refused = line("authentication failed");
    assert!(
        refused.contains("client=192.0.2.9:5000") && refused.contains("username=mallory"),
        "{refused}"
    );
}
