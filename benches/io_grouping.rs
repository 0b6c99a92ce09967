//! The batching and grouping code of `src/io`: how long it takes to plan a
//! loop turn's sends into GSO runs (pure, no sockets), to split a coalesced
//! GRO receive (spreading in place vs copying each segment out), and, on
//! loopback, what a flush costs as plain sendmmsg vs GSO-grouped sends.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringturn::io::gro::{plan_split, spread_segments, GRO_RECV_BUF_LEN};
use ringturn::io::gso::{plan_flush, plan_runs, send_all, Datagram, PlanScratch, Run, Scratch};
use ringturn::io::sockaddr::{storage_bytes, RawAddr};
use ringturn::io::{HEADROOM, RECV_BUF_LEN};

/// A loop turn's output: `n` sends over `dests` destinations, round robin
/// (as interleaved flows arrive), of the sizes `size(i)` gives.
fn turn(n: usize, dests: usize, size: impl Fn(usize) -> usize) -> (Vec<RawAddr>, Vec<usize>) {
    let addrs: Vec<RawAddr> = (0..dests)
        .map(|d| RawAddr::from_std(SocketAddr::from(([10, 0, (d >> 8) as u8, d as u8], 40000))))
        .collect();
    let to = (0..n).map(|i| addrs[i % dests]).collect();
    let sizes = (0..n).map(size).collect();
    (to, sizes)
}

/// A mix's name, its destinations and the size of the i-th send.
type Mix = (&'static str, usize, fn(usize) -> usize);

/// The grouping as it was before this bench (commit f6af815): a stable
/// `sort_by` of the datagrams themselves by destination, then the runs.
fn plan_flush_before(datagrams: &mut [Datagram], gso: bool, runs: &mut Vec<Run>) {
    datagrams.sort_by(|a, b| {
        storage_bytes(&a.to.storage, a.to.len).cmp(storage_bytes(&b.to.storage, b.to.len))
    });
    runs.clear();
    plan_runs(
        datagrams.len(),
        |i| (&datagrams[i].to, datagrams[i].len),
        gso,
        runs,
    );
}

fn grouping(c: &mut Criterion) {
    let payload = vec![0u8; 1300];
    let mut g = c.benchmark_group("gso_plan_flush");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // Audio ~100 B, video 1,200 B, and a mix (video bursts ending in a short packet, audio).
    let mixes: [Mix; 3] = [
        ("1dest_1200B", 1, |_| 1200),
        ("16dest_1200B", 16, |_| 1200),
        ("16dest_mixed", 16, |i| match i % 7 {
            0 => 100,
            6 => 700,
            _ => 1200,
        }),
    ];
    for n in [64usize, 256] {
        for (name, dests, size) in mixes {
            let (to, sizes) = turn(n, dests, size);
            g.throughput(Throughput::Elements(n as u64));
            let mut runs: Vec<Run> = Vec::with_capacity(n);
            let mut plan = PlanScratch::default();
            let list = || {
                to.iter()
                    .zip(&sizes)
                    .map(|(t, &s)| Datagram::new(*t, &payload[..s]))
                    .collect::<Vec<_>>()
            };
            // Both plans must agree on the runs (as a multiset of shapes).
            let shapes = |runs: &[Run]| {
                let mut v: Vec<(usize, usize)> =
                    runs.iter().map(|r| (r.count, r.segment)).collect();
                v.sort_unstable();
                v
            };
            let (mut a, mut b) = (list(), list());
            plan_flush_before(&mut a, true, &mut runs);
            let before = shapes(&runs);
            plan_flush(&mut b, true, &mut runs, &mut plan);
            assert_eq!(before, shapes(&runs), "{name}/{n}");
            g.bench_function(format!("before_sort_structs/{name}/{n}"), |bench| {
                bench.iter_batched_ref(
                    list,
                    |l| {
                        plan_flush_before(l, true, &mut runs);
                        black_box(runs.len())
                    },
                    BatchSize::SmallInput,
                )
            });
            g.bench_function(format!("after_sort_keys/{name}/{n}"), |bench| {
                bench.iter_batched_ref(
                    list,
                    |l| {
                        plan_flush(l, true, &mut runs, &mut plan);
                        black_box(runs.len())
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn gro_split(c: &mut Criterion) {
    let mut g = c.benchmark_group("gro_split");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // A 64 KiB video burst (54 × 1,200 + tail) and an audio burst (64 × 100).
    for (name, segment, count) in [("video_1200B", 1200usize, 54usize), ("audio_100B", 100, 64)] {
        let len = segment * count + segment / 3;
        let fresh: Vec<u8> = (0..GRO_RECV_BUF_LEN).map(|i| i as u8).collect();
        let mut buf = fresh.clone();
        let mut ranges = Vec::with_capacity(128);
        g.throughput(Throughput::Elements(len.div_ceil(segment) as u64));
        // What the backends do: spread in place (one memmove per segment after the first).
        g.bench_function(format!("spread_in_place/{name}"), |b| {
            b.iter(|| {
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&fresh[..len]);
                ranges.clear();
                let split = plan_split(len, Some(segment), GRO_RECV_BUF_LEN - HEADROOM);
                spread_segments(&mut buf, HEADROOM, len, segment, &mut ranges);
                black_box((split, ranges.len()))
            })
        });
        // The alternative: copy segments 2..n into spare plain buffers with headroom.
        let mut spares: Vec<Vec<u8>> = (0..count + 1).map(|_| vec![0u8; RECV_BUF_LEN]).collect();
        g.bench_function(format!("copy_to_spare_buffers/{name}"), |b| {
            b.iter(|| {
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&fresh[..len]);
                let mut at = HEADROOM + segment;
                for spare in spares.iter_mut() {
                    if at >= HEADROOM + len {
                        break;
                    }
                    let n = segment.min(HEADROOM + len - at);
                    spare[HEADROOM..HEADROOM + n].copy_from_slice(&buf[at..at + n]);
                    at += n;
                }
                black_box(&spares);
            })
        });
        // The baseline both include: refilling the burst.
        g.bench_function(format!("refill_only/{name}"), |b| {
            b.iter(|| {
                buf[HEADROOM..HEADROOM + len].copy_from_slice(&fresh[..len]);
                black_box(&buf);
            })
        });
    }
    g.finish();
}

/// Drains a non-blocking socket.
fn drain(sock: &UdpSocket, buf: &mut [u8]) {
    while sock.recv(buf).is_ok() {}
}

fn loopback_sends(c: &mut Criterion) {
    let mut g = c.benchmark_group("loopback_flush");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sinks: Vec<UdpSocket> = (0..16)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let payload = vec![0x5Au8; 1200];
    let mut rx = vec![0u8; 2048];
    for (name, n, dests) in [("1dest_1200B", 64usize, 1usize), ("16dest_1200B", 256, 16)] {
        let addrs: Vec<RawAddr> = sinks
            .iter()
            .take(dests)
            .map(|s| RawAddr::from_std(s.local_addr().unwrap()))
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        for (mode, gso) in [("sendmmsg", false), ("gso", true)] {
            let mut scratch = Scratch::default();
            g.bench_function(format!("{mode}/{name}/{n}"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let mut list: Vec<Datagram> = (0..n)
                            .map(|i| Datagram::new(addrs[i % dests], &payload))
                            .collect();
                        let mut enabled = gso;
                        let t = Instant::now();
                        let r = send_all(sender.as_raw_fd(), &mut list, &mut enabled, &mut scratch);
                        spent += t.elapsed();
                        black_box(r);
                        for s in sinks.iter().take(dests) {
                            drain(s, &mut rx);
                        }
                    }
                    spent
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, grouping, gro_split, loopback_sends);
criterion_main!(benches);
