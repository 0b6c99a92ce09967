//! The TCP client's data path allocates nothing per packet: composing
//! ChannelData in the send buffer, flushing, reading and deframing the echoes,
//! counted with a counting global allocator (per thread: the echo thread on
//! the far side is not counted).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

#[path = "../../tests/common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::allocations;
use ringturn::stun::ChannelNumber;
use ringturn_loadgen::payload::{self, Stamp};
use ringturn_loadgen::stream::{Fill, StreamConn};

/// Sends `rounds` bursts of 16 ChannelData messages (101-byte payloads: padded)
/// and takes every echo back; returns how many came back.
fn round_trips(conn: &mut StreamConn, rounds: u64, seq: &mut u64) -> u64 {
    let mut back = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..rounds {
        let mut sent = 0u64;
        for _ in 0..16 {
            let stamp = Stamp {
                flow: 1,
                seq: *seq,
                sent_ns: 0,
                measured: true,
            };
            let pushed = conn.tx.push(101 + 64, |out| {
                let (head, body) = out.split_at_mut_checked(4)?;
                let n = payload::write(&stamp, 101, body)?;
                head.copy_from_slice(&ringturn::stun::channel_data::write_header(
                    ChannelNumber(0x4000),
                    u16::try_from(n).ok()?,
                ));
                Some(4 + n)
            });
            assert!(pushed);
            *seq += 1;
            sent += 1;
        }
        conn.flush().expect("flush");
        let mut got = 0;
        while got < sent {
            assert!(Instant::now() < deadline, "echoes stopped");
            conn.flush().expect("flush");
            match conn.fill().expect("fill") {
                Fill::Closed => panic!("closed"),
                Fill::Data(_) => {}
            }
            while let Some(frame) = conn.rx.next_frame().expect("TURN") {
                assert!(payload::read(frame.get(4..).expect("data")).is_some());
                got += 1;
            }
        }
        back += got;
    }
    back
}

#[test]
fn the_tcp_data_path_allocates_nothing_per_packet() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut conn = StreamConn::connect(Ipv4Addr::LOCALHOST, addr, 1 << 20, None).expect("connect");
    let mut seq = 0;
    // Warm-up: the connect completes, buffers reach their working size.
    assert_eq!(round_trips(&mut conn, 20, &mut seq), 320);
    let before = allocations();
    let back = round_trips(&mut conn, 500, &mut seq);
    let allocated = allocations() - before;
    assert_eq!(back, 8000);
    assert_eq!(
        allocated, 0,
        "{allocated} allocations for 8,000 packets out and back"
    );
    drop(conn);
    echo.join().expect("echo thread");
}

#[test]
fn the_counter_counts() {
    let before = allocations();
    std::hint::black_box(vec![1u8; 64]);
    assert_eq!(allocations() - before, 1);
}
