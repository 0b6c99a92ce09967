//! Both I/O backends, driven directly over loopback: receive with headroom,
//! send back in place (zero copy) and owned, many datagrams per turn, and
//! sockets that come and go.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringturn::io::socket::{bind_listener, bind_relay, BufferSizes};
use ringturn::io::{create_backend, Backend, BackendKind, RecvOptions, HEADROOM, TAILROOM};

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

/// A GSO burst: `n` datagrams of `size` bytes and a shorter tail, each
/// starting with its index, so the receiver can tell them apart.
fn burst(n: usize, size: usize, tail: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut d = vec![(i % 251) as u8 ^ 0x5A; size];
            d[..4].copy_from_slice(&(i as u32).to_be_bytes());
            d
        })
        .collect();
    let mut t = vec![0xEE; tail];
    t[..4].copy_from_slice(&(n as u32).to_be_bytes());
    v.push(t);
    v
}

/// Sends `datagrams` to `to` from `from` in one flush of a batch backend:
/// equal sizes to one destination leave as one UDP_SEGMENT (GSO) send, which
/// loopback delivers coalesced to a socket with UDP_GRO.
fn send_gso(from: &UdpSocket, to: std::net::SocketAddr, datagrams: &[Vec<u8>]) {
    let (mut tx, _) = create_backend(Some(BackendKind::Batch)).unwrap();
    for d in datagrams {
        tx.send_owned(from.as_raw_fd(), to, d.clone());
    }
    tx.flush().unwrap();
    let c = tx.counters();
    assert_eq!(c.gso_sends, 1, "the sender used one GSO send: {c:?}");
}

/// Receives a GSO burst on `receiver` (registered with `options`), checks the
/// handler sees each datagram on its own with HEADROOM free in front (it
/// fills the headroom and tailroom, as TURN framing would), echoes each zero
/// copy with a 4-byte header and checks the echoes arrive intact.
fn burst_round_trip(
    backend: &mut dyn Backend,
    options: RecvOptions,
    expect_coalesced: bool,
) -> ringturn::io::BackendCounters {
    let kind = backend.kind();
    let receiver = bind_relay("127.0.0.1:0".parse().unwrap(), BufferSizes::default()).unwrap();
    let to = receiver.local_addr().unwrap();
    let fd = receiver.as_raw_fd();
    backend.register_with(fd, 9, options).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    const N: usize = 20;
    let expected = burst(N, 1000, 333);
    let before = backend.counters();
    send_gso(&sender, to, &expected);
    let seen = std::cell::RefCell::new(Vec::<Vec<u8>>::new());
    poll_until(
        backend,
        Duration::from_secs(5),
        |q, rx| {
            assert_eq!(rx.token, 9);
            let p = rx.payload.clone();
            assert!(p.start >= HEADROOM, "{kind:?}: headroom in front");
            assert!(rx.buf.len() >= p.end + TAILROOM, "{kind:?}: tailroom after");
            seen.borrow_mut().push(rx.buf[p.clone()].to_vec());
            // Use all the room around the datagram, as framing may.
            rx.buf[p.start - HEADROOM..p.start].fill(0xAA);
            rx.buf[p.end..p.end + TAILROOM].fill(0xBB);
            rx.buf[p.start - 4..p.start].copy_from_slice(b"ECHO");
            q.send_received(fd, rx.from, rx.buf_id, p.start - 4..p.end);
        },
        || seen.borrow().len() > N,
    );
    assert_eq!(
        seen.into_inner(),
        expected,
        "{kind:?}: N+1 datagrams, in order, each whole"
    );
    let mut buf = [0u8; 2048];
    for d in &expected {
        let (n, from) = sender.recv_from(&mut buf).unwrap();
        assert_eq!(from, to);
        assert_eq!(&buf[..4], b"ECHO", "{kind:?}");
        assert_eq!(&buf[4..n], &d[..], "{kind:?}: the echo is intact");
    }
    // Completions (io_uring) arrive on the next poll.
    backend
        .poll(Duration::from_millis(10), &mut |_, _| {})
        .unwrap();
    let after = backend.counters();
    let coalesced = after.gro_receives - before.gro_receives;
    if expect_coalesced {
        assert!(coalesced >= 1, "{kind:?}: GRO coalesced: {after:?}");
        assert_eq!(
            after.gro_segments - before.gro_segments,
            (N + 1) as u64,
            "{kind:?}: {after:?}"
        );
    } else {
        assert_eq!(coalesced, 0, "{kind:?}: no coalescing without GRO");
    }
    assert_eq!(after.dropped_sends, before.dropped_sends, "{kind:?}");
    assert_eq!(after.gro_dropped, 0, "{kind:?}");
    backend.deregister(fd, 9).unwrap();
    after
}

#[test]
fn gro_bursts_split_into_datagrams_with_headroom_and_echo_zero_copy() {
    for mut backend in backends() {
        let c = burst_round_trip(backend.as_mut(), RecvOptions { gro: true }, true);
        assert_eq!(c.gro_fallbacks, 0);
        // A second socket, and the same again: the GRO buffers are reused.
        burst_round_trip(backend.as_mut(), RecvOptions { gro: true }, true);
    }
}

#[test]
fn gro_off_receives_the_burst_one_by_one() {
    for mut backend in backends() {
        burst_round_trip(backend.as_mut(), RecvOptions { gro: false }, false);
    }
}

#[test]
fn gro_refusal_falls_back_for_good_and_still_receives() {
    use std::os::unix::net::UnixDatagram;
    for mut backend in backends() {
        let kind = backend.kind();
        // A socket that is not UDP: the kernel refuses UDP_GRO on it.
        let (unix, _other) = UnixDatagram::pair().unwrap();
        backend
            .register_with(unix.as_raw_fd(), 50, RecvOptions { gro: true })
            .unwrap();
        assert_eq!(backend.counters().gro_fallbacks, 1, "{kind:?}");
        backend.deregister(unix.as_raw_fd(), 50).unwrap();
        // Sticky: a UDP socket that asks for GRO now gets plain receives.
        let c = burst_round_trip(backend.as_mut(), RecvOptions { gro: true }, false);
        assert_eq!(c.gro_fallbacks, 1, "{kind:?}: not asked again");
    }
}
