//! Both I/O backends, driven directly over loopback: receive with headroom,
//! send back in place (zero copy) and owned, many datagrams per turn, and
//! sockets that come and go.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringturn::io::socket::{bind_listener, bind_relay, BufferSizes};
use ringturn::io::{create_backend, Backend, BackendKind, HEADROOM};

fn backends() -> Vec<Box<dyn Backend>> {
    let mut v = vec![create_backend(Some(BackendKind::Batch)).unwrap().0];
    match create_backend(Some(BackendKind::Uring)) {
        Ok((b, _)) => v.push(b),
        Err(e) if std::env::var_os("CI").is_some() => panic!("io_uring must work in CI: {e}"),
        Err(e) => eprintln!("io_uring unavailable here: {e}"),
    }
    v
}

fn poll_until(
    backend: &mut dyn Backend,
    deadline: Duration,
    mut f: impl FnMut(&mut dyn ringturn::io::SendQueue, ringturn::io::Received<'_>),
    mut done: impl FnMut() -> bool,
) {
    let end = Instant::now() + deadline;
    while !done() && Instant::now() < end {
        backend.poll(Duration::from_millis(20), &mut f).unwrap();
    }
}

#[test]
fn echoes_in_place_and_owned_on_both_backends() {
    for mut backend in backends() {
        let kind = backend.kind();
        let server = bind_listener("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        let addr = server.local_addr().unwrap();
        backend.register(server.as_raw_fd(), 7).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        const N: usize = 200;
        for i in 0..N {
            client.send_to(format!("msg-{i}").as_bytes(), addr).unwrap();
        }
        let fd = server.as_raw_fd();
        let seen = std::cell::Cell::new(0usize);
        poll_until(
            backend.as_mut(),
            Duration::from_secs(5),
            |q, rx| {
                assert_eq!(rx.token, 7);
                assert!(
                    rx.payload.start >= HEADROOM,
                    "{kind:?}: headroom in front of the payload"
                );
                // Write a 4-byte header in front, in place, and send header+payload back.
                let start = rx.payload.start - 4;
                rx.buf[start..rx.payload.start].copy_from_slice(b"ECHO");
                if seen.get().is_multiple_of(2) {
                    q.send_received(fd, rx.from, rx.buf_id, start..rx.payload.end);
                } else {
                    q.send_owned(fd, rx.from, rx.buf[start..rx.payload.end].to_vec());
                }
                seen.set(seen.get() + 1);
            },
            || seen.get() == N,
        );
        assert_eq!(seen.get(), N, "{kind:?} received every datagram");
        let mut got = std::collections::HashSet::new();
        let mut buf = [0u8; 64];
        for _ in 0..N {
            let (n, _) = client.recv_from(&mut buf).unwrap();
            assert!(
                buf[..n].starts_with(b"ECHOmsg-"),
                "{kind:?}: {:?}",
                &buf[..n]
            );
            got.insert(buf[..n].to_vec());
        }
        assert_eq!(got.len(), N, "{kind:?}: every echo distinct and present");
        backend.deregister(server.as_raw_fd(), 7).unwrap();
    }
}

#[test]
fn sockets_can_be_registered_and_closed_repeatedly() {
    for mut backend in backends() {
        let kind = backend.kind();
        for round in 0..50u64 {
            let relay = bind_relay("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
            let addr = relay.local_addr().unwrap();
            backend.register(relay.as_raw_fd(), 100 + round).unwrap();
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            peer.send_to(b"ping", addr).unwrap();
            let got = std::cell::Cell::new(false);
            poll_until(
                backend.as_mut(),
                Duration::from_secs(2),
                |_, rx| {
                    if rx.token == 100 + round {
                        got.set(true);
                    }
                },
                || got.get(),
            );
            assert!(got.get(), "{kind:?} round {round}");
            backend.deregister(relay.as_raw_fd(), 100 + round).unwrap();
            drop(relay);
            // The port is free again at once (no lingering kernel reference).
            let again = bind_relay(addr, BufferSizes::default());
            let _ = backend.poll(Duration::from_millis(1), &mut |_, _| {});
            assert!(again.is_ok(), "{kind:?}: port {addr} still held");
        }
    }
}

#[test]
fn waker_interrupts_a_long_poll() {
    for mut backend in backends() {
        let waker = backend.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        let start = Instant::now();
        backend
            .poll(Duration::from_secs(5), &mut |_, _| {})
            .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?} was not woken",
            backend.kind()
        );
        t.join().unwrap();
    }
}

#[test]
fn gso_runs_arrive_as_separate_datagrams_with_their_own_bytes() {
    // One flush of same-size datagrams to one destination goes out as GSO
    // sends; the receiver must still see each datagram on its own.
    for mut backend in backends() {
        let kind = backend.kind();
        let sender = bind_relay("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let to = receiver.local_addr().unwrap();
        // 150 datagrams of 100 bytes, then one of 37 (a shorter last segment), then 20 of 1200.
        let mut expected = Vec::new();
        for i in 0..150u32 {
            let mut d = vec![(i % 251) as u8; 100];
            d[..4].copy_from_slice(&i.to_be_bytes());
            expected.push(d);
        }
        expected.push(vec![0xEE; 37]);
        for i in 0..20u32 {
            let mut d = vec![0x5A; 1200];
            d[..4].copy_from_slice(&(1000 + i).to_be_bytes());
            expected.push(d);
        }
        for d in &expected {
            backend.send_owned(sender.as_raw_fd(), to, d.clone());
        }
        backend.flush().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..expected.len() {
            let (n, from) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            got.push(buf[..n].to_vec());
        }
        assert_eq!(
            got, expected,
            "{kind:?}: every datagram arrives whole, in order, with its own boundaries"
        );
        // io_uring reports send completions on the next poll.
        backend
            .poll(Duration::from_millis(10), &mut |_, _| {})
            .unwrap();
        let c = backend.counters();
        assert!(c.gso_sends >= 3, "{kind:?}: GSO was used: {c:?}");
        assert!(
            c.gso_segments >= 150,
            "{kind:?}: the equal-size runs went out segmented: {c:?}"
        );
        assert_eq!(c.dropped_sends, 0, "{kind:?}");
    }
}
