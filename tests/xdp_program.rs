//! The kernel fast path's XDP program, run by the kernel on crafted frames
//! (`BPF_PROG_TEST_RUN`): the exact output of each direction and family,
//! checksums checked by an independent parser here (a full sum, not the
//! program's incremental update), and everything the program must not touch
//! passed on unchanged. A property test over mutated frames: the program
//! relays exactly the frames a bound channel allows, nothing else.
//!
//! Needs root (a network namespace with a veth pair, so the program's route
//! and neighbour lookups have something to find) and the program built
//! (clang and libbpf-dev at build time). Skipped without them, except under
//! `CI`, where both are installed and a skip is a failure.

mod xdp_support;

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use ringturn::xdp::test_run::{self, XDP_PASS, XDP_TX};
use ringturn::xdp::{ChannelRoute, FastPath};
use xdp_support::*;

/// What a receiver sees in a frame: addresses, TTL, payload, and whether
/// every checksum holds (computed here from scratch).
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    ttl: u8,
    payload: Vec<u8>,
    checksums_ok: bool,
    udp_checksum_present: bool,
}

fn parse(f: &[u8]) -> Parsed {
    let eth_dst: [u8; 6] = f[0..6].try_into().unwrap();
    let eth_src: [u8; 6] = f[6..12].try_into().unwrap();
    let (src_ip, dst_ip, ttl, l4, ip_ok): (IpAddr, IpAddr, u8, &[u8], bool) = match (f[12], f[13]) {
        (0x08, 0x00) => {
            let h = &f[14..34];
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            assert_eq!(total, f.len() - 14, "IPv4 total length");
            let s: [u8; 4] = h[12..16].try_into().unwrap();
            let d: [u8; 4] = h[16..20].try_into().unwrap();
            (
                s.into(),
                d.into(),
                h[8],
                &f[34..],
                ipv4_header_checksum(h) == 0,
            )
        }
        (0x86, 0xdd) => {
            let h = &f[14..54];
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            assert_eq!(plen, f.len() - 54, "IPv6 payload length");
            let s: [u8; 16] = h[8..24].try_into().unwrap();
            let d: [u8; 16] = h[24..40].try_into().unwrap();
            (s.into(), d.into(), h[7], &f[54..], true)
        }
        other => panic!("not IP: {other:?}"),
    };
    let ulen = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
    assert_eq!(ulen, l4.len(), "UDP length");
    let present = l4[6..8] != [0, 0];
    let udp_ok = !present || udp_checksum(src_ip, dst_ip, l4) == 0;
    Parsed {
        eth_dst,
        eth_src,
        src: SocketAddr::new(src_ip, u16::from_be_bytes([l4[0], l4[1]])),
        dst: SocketAddr::new(dst_ip, u16::from_be_bytes([l4[2], l4[3]])),
        ttl,
        payload: l4[8..].to_vec(),
        checksums_ok: ip_ok && udp_ok,
        udp_checksum_present: present,
    }
}

struct Rig {
    fast: FastPath,
    ifindex: u32,
    mac: [u8; 6],
}

impl Rig {
    fn new() -> Self {
        let (ifindex, mac) = topology();
        let mut fast = FastPath::load().expect("the XDP program loads");
        fast.serve_interface(ifindex, mac)
            .expect("interface registered");
        fast.offload(&channel(false), u64::MAX).expect("offload v4");
        fast.offload(&channel(true), u64::MAX).expect("offload v6");
        Rig { fast, ifindex, mac }
    }

    fn run(&mut self, f: &[u8]) -> test_run::TestRun {
        let fd = self.fast.program_fd().expect("program fd");
        test_run::run(fd, f, self.ifindex, 1).expect("BPF_PROG_TEST_RUN")
    }

    fn client_frame(&self, ch: &ChannelRoute, payload: &[u8]) -> Vec<u8> {
        frame(self.mac, CLIENT_MAC, ch.client, ch.listening, payload, true)
    }

    fn peer_frame(&self, ch: &ChannelRoute, payload: &[u8]) -> Vec<u8> {
        frame(self.mac, PEER_MAC, ch.peer, ch.relay, payload, true)
    }
}

fn assert_passed_unchanged(rig: &mut Rig, f: &[u8], what: &str) {
    let r = rig.run(f);
    assert_eq!(r.verdict, XDP_PASS, "{what}: verdict");
    assert_eq!(r.frame, f, "{what}: the frame must pass untouched");
}

#[test]
fn rfc8656_12_channel_data_is_relayed_both_ways_in_the_kernel() {
    if !in_private_netns("rfc8656_12_channel_data_is_relayed_both_ways_in_the_kernel") {
        return;
    }
    let mut rig = Rig::new();
    for v6 in [false, true] {
        let ch = channel(v6);
        for data in [
            &b"hello peer"[..],
            &[7u8; 100][..],
            &[9u8; 1200][..],
            &b"abcde"[..],
        ] {
            // client → peer: header (and padding) stripped, relay → peer.
            for padded in [false, true] {
                let input = rig.client_frame(&ch, &channel_data(0x4001, data, padded));
                let r = rig.run(&input);
                assert_eq!(r.verdict, XDP_TX, "v6={v6} padded={padded}");
                let out = parse(&r.frame);
                assert_eq!(
                    (out.src, out.dst),
                    (ch.relay, ch.peer),
                    "v6={v6}: relayed address → peer"
                );
                assert_eq!(
                    out.payload, data,
                    "v6={v6} padded={padded}: the payload, unframed"
                );
                assert!(
                    out.checksums_ok && out.udp_checksum_present,
                    "v6={v6} {out:?}"
                );
                assert_eq!(out.ttl, 64, "a fresh TTL / hop limit");
                assert_eq!((out.eth_src, out.eth_dst), (rig.mac, PEER_MAC));
            }
            // peer → client: a ChannelData header in front, listening → client.
            let input = rig.peer_frame(&ch, data);
            let r = rig.run(&input);
            assert_eq!(r.verdict, XDP_TX, "v6={v6}");
            let out = parse(&r.frame);
            assert_eq!((out.src, out.dst), (ch.listening, ch.client));
            assert_eq!(out.payload, channel_data(0x4001, data, false));
            assert!(out.checksums_ok, "v6={v6} {out:?}");
            assert_eq!(out.ttl, 64);
            assert_eq!((out.eth_src, out.eth_dst), (rig.mac, CLIENT_MAC));
        }
    }
    // IPv4 without a UDP checksum stays without one.
    let ch = channel(false);
    let input = frame(
        rig.mac,
        CLIENT_MAC,
        ch.client,
        ch.listening,
        &channel_data(0x4001, b"x", false),
        false,
    );
    let r = rig.run(&input);
    assert_eq!(r.verdict, XDP_TX);
    let out = parse(&r.frame);
    assert!(!out.udp_checksum_present && out.checksums_ok);
    let c = rig.fast.counters().expect("counters");
    assert_eq!(c.packets_to_peers, 2 * 4 * 2 + 1);
    assert_eq!(c.packets_to_clients, 2 * 4);
    assert_eq!(c.bytes_to_clients, 2 * (10 + 100 + 1200 + 5));
    // Per channel, too: the IPv4 channel's share, and its totals again on
    // withdrawal (the entry goes with it).
    let v4 = rig.fast.channel_counters(&ch).expect("channel counters");
    assert_eq!((v4.packets_to_peers, v4.packets_to_clients), (4 * 2 + 1, 4));
    assert_eq!(v4.bytes_to_peers, 2 * (10 + 100 + 1200 + 5) + 1);
    assert_eq!(v4.bytes_to_clients, 10 + 100 + 1200 + 5);
    // A refresh (a new deadline) keeps the counts.
    rig.fast.offload(&ch, u64::MAX).expect("refresh");
    assert_eq!(rig.fast.channel_counters(&ch).expect("counters"), v4);
    assert_eq!(rig.fast.withdraw(&ch).expect("withdraw"), v4);
    assert_eq!(
        rig.fast.channel_counters(&ch).expect("counters"),
        ringturn::xdp::XdpCounters::default()
    );
}

#[test]
fn frames_the_fast_path_may_not_vouch_for_pass_untouched() {
    if !in_private_netns("frames_the_fast_path_may_not_vouch_for_pass_untouched") {
        return;
    }
    let mut rig = Rig::new();
    let ch = channel(false);
    let good = rig.client_frame(&ch, &channel_data(0x4001, b"hello", false));
    assert_eq!(rig.run(&good).verdict, XDP_TX, "the baseline relays");

    let unbound = rig.client_frame(&ch, &channel_data(0x4002, b"hello", false));
    assert_passed_unchanged(&mut rig, &unbound, "unbound channel");
    let other_port = frame(
        rig.mac,
        CLIENT_MAC,
        addr("198.51.100.2:5001"),
        ch.listening,
        &channel_data(0x4001, b"hello", false),
        true,
    );
    assert_passed_unchanged(&mut rig, &other_port, "another client port");
    let stranger = frame(
        rig.mac,
        PEER_MAC,
        addr("198.51.100.3:40001"),
        ch.relay,
        b"hi",
        true,
    );
    assert_passed_unchanged(&mut rig, &stranger, "a peer port without a channel");
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[1; 12]);
    let f = rig.client_frame(&ch, &stun);
    assert_passed_unchanged(&mut rig, &f, "a STUN Binding request");
    let mut long = channel_data(0x4001, b"hello", false);
    long[3] = 9; // says 9 bytes, carries 5
    let f = rig.client_frame(&ch, &long);
    assert_passed_unchanged(&mut rig, &f, "length beyond the payload");
    let mut short = channel_data(0x4001, b"hello world", false);
    short[3] = 2; // says 2 bytes, carries 11: more than padding
    let f = rig.client_frame(&ch, &short);
    assert_passed_unchanged(&mut rig, &f, "length far below the payload");
    let truncated = &good[..good.len() - 3];
    assert_passed_unchanged(&mut rig, truncated, "truncated frame");
    let mut fragment = good.clone();
    fragment[14 + 6] |= 0x20; // MF
    assert_passed_unchanged(&mut rig, &fragment, "IPv4 fragment");
    let mut options = good.clone();
    options[14] = 0x46; // IHL 6: options
    assert_passed_unchanged(&mut rig, &options, "IPv4 options");
    let mut tcp = good.clone();
    tcp[14 + 9] = 6;
    assert_passed_unchanged(&mut rig, &tcp, "TCP");
    let mut vlan = good[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    vlan.extend_from_slice(&good[12..]);
    assert_passed_unchanged(&mut rig, &vlan, "VLAN tag");
    let mut bad_header_sum = good.clone();
    bad_header_sum[14 + 10] ^= 0x10;
    assert_passed_unchanged(&mut rig, &bad_header_sum, "IPv4 header checksum wrong");
    let mut not_ours = good.clone();
    not_ours[5] ^= 1;
    assert_passed_unchanged(&mut rig, &not_ours, "addressed to another MAC");
    let mut ipv6_no_check = rig.client_frame(&channel(true), &channel_data(0x4001, b"x", false));
    ipv6_no_check[14 + 40 + 6] = 0;
    ipv6_no_check[14 + 40 + 7] = 0;
    assert_passed_unchanged(&mut rig, &ipv6_no_check, "IPv6 UDP without a checksum");

    // Past its deadline (the channel, its permission or its allocation
    // expired) the entry relays nothing, even before it is withdrawn.
    rig.fast
        .offload(&ch, 1)
        .expect("offload with a past deadline");
    assert_passed_unchanged(&mut rig, &good, "past its deadline, client → peer");
    let f = rig.peer_frame(&ch, b"x");
    assert_passed_unchanged(&mut rig, &f, "past its deadline, peer → client");
    rig.fast.offload(&ch, u64::MAX).expect("offload again");
    assert_ne!(rig.run(&good).verdict, XDP_PASS, "relayed again");

    // Withdrawn: nothing more is relayed by the kernel.
    rig.fast.withdraw(&ch).expect("withdraw");
    assert_passed_unchanged(&mut rig, &good, "after withdraw, client → peer");
    let f = rig.peer_frame(&ch, b"x");
    assert_passed_unchanged(&mut rig, &f, "after withdraw, peer → client");
    assert_eq!(rig.fast.offloaded(), (1, 1), "the IPv6 channel stays");
}

/// The oracle: would the socket path relay this client frame on the bound
/// IPv4 channel? (Ethernet + IPv4 without options or fragments + UDP with
/// consistent lengths, from the client's exact address to the listening
/// address, ChannelData on 0x4001 with at most 3 bytes of padding.)
fn should_relay(f: &[u8], ch: &ChannelRoute, our_mac: [u8; 6]) -> bool {
    let Some(ip) = f.get(14..34) else {
        return false;
    };
    if f[0..6] != our_mac || f[12..14] != [0x08, 0x00] || ip[0] != 0x45 || ip[9] != 17 {
        return false;
    }
    if ipv4_header_checksum(ip) != 0 {
        return false; // the stack drops it
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return false;
    }
    if usize::from(u16::from_be_bytes([ip[2], ip[3]])) != f.len() - 14 {
        return false;
    }
    let Some(udp) = f.get(34..42) else {
        return false;
    };
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen != f.len() - 34 {
        return false;
    }
    let src = SocketAddr::new(
        IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).unwrap()),
        u16::from_be_bytes([udp[0], udp[1]]),
    );
    let dst = SocketAddr::new(
        IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).unwrap()),
        u16::from_be_bytes([udp[2], udp[3]]),
    );
    let Some(cd) = f.get(42..46) else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([cd[2], cd[3]]));
    let room = f.len() - 46;
    (src, dst) == (ch.client, ch.listening)
        && cd[0..2] == ch.channel.to_be_bytes()
        && len <= room
        && room - len <= 3
        && f[46 + len..].iter().all(|b| *b == 0) // padding: zeros only
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1, ..ProptestConfig::default() })]
    #[test]
    fn mutated_frames_are_relayed_only_when_a_bound_channel_allows(seed in any::<u64>()) {
        if !in_private_netns("mutated_frames_are_relayed_only_when_a_bound_channel_allows") {
            return Ok(());
        }
        let mut rig = Rig::new();
        let ch = channel(false);
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut relayed, mut passed) = (0, 0);
        for i in 0..3000u32 {
            let data_len = (next() % 64) as usize;
            let data: Vec<u8> = (0..data_len).map(|_| next() as u8).collect();
            let mut f = rig.client_frame(&ch, &channel_data(0x4001, &data, next() % 2 == 0));
            // Mutate one to three bytes anywhere in the headers or payload, or cut the frame.
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % f.len();
                f[at] = next() as u8;
            }
            if i % 7 == 0 {
                let keep = (next() as usize) % f.len();
                // The kernel runs nothing shorter than an Ethernet header.
                f.truncate(keep.max(14));
            }
            let before = f.clone();
            let r = rig.run(&f);
            let expected = should_relay(&before, &ch, rig.mac);
            if expected {
                prop_assert_eq!(r.verdict, XDP_TX, "a valid frame is relayed: {:02x?}", before);
                let out = parse(&r.frame);
                prop_assert_eq!((out.src, out.dst), (ch.relay, ch.peer));
                // A datagram that arrived with a bad checksum leaves with a
                // bad one (the peer's stack drops it, as ours would have).
                let input_ok = parse(&before).checksums_ok;
                prop_assert_eq!(out.checksums_ok, input_ok, "checksum errors carry over, never get fixed or made");
                relayed += 1;
            } else {
                prop_assert_eq!(r.verdict, XDP_PASS, "relayed a frame the socket path would not: {:02x?}", before);
                prop_assert_eq!(&r.frame, &before, "a passed frame is untouched");
                passed += 1;
            }
        }
        prop_assert!(relayed > 100 && passed > 100, "both outcomes exercised: {} relayed, {} passed", relayed, passed);
    }
}
