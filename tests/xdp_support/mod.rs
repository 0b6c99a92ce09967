//! What the XDP program's tests and its benchmark share: a private network
//! namespace with a veth pair for the program's route lookups, the channel
//! routes they offload, and frames built with correct lengths and checksums.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use ringturn::xdp::ChannelRoute;

pub const IN_NETNS: &str = "RINGTURN_XDP_TEST_NETNS";
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Runs this test again inside a new network namespace; true when the
/// caller is that inner run (and should do the work).
pub fn in_private_netns(test: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return true;
    }
    if ringturn::xdp::PROGRAM.is_none() {
        assert!(
            !ci(),
            "the XDP program must be built in CI (clang, libbpf-dev)"
        );
        eprintln!("skipping {test}: the XDP program was not built (no clang at build time)");
        return false;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains("1 passed"),
                "{test} did not run in the namespace:\n{text}"
            );
        }
        Ok(o) if String::from_utf8_lossy(&o.stderr).contains("unshare failed") => {
            assert!(!ci(), "`unshare --net` must work in CI");
            eprintln!("skipping {test}: `unshare --net` does not work here (needs root)");
        }
        Ok(o) => panic!(
            "{test} failed in its namespace:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("cannot run unshare: {e}"),
    }
    false
}

pub fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .expect("ip runs")
        .success();
    assert!(ok, "ip {args}");
}

/// The server side `xs` (198.51.100.1, 2001:db8::1) of a veth pair, with
/// permanent neighbour entries for the client (.2 / ::2) and the peer
/// (.3 / ::3). Returns `xs`'s ifindex and MAC.
pub fn topology() -> (u32, [u8; 6]) {
    ip("link set lo up");
    // A rerun in the same namespace (proptest shrinking) starts afresh.
    let _ = Command::new("ip").args(["link", "del", "xs"]).status();
    ip("link add xs type veth peer name xc");
    ip("addr add 198.51.100.1/24 dev xs");
    ip("-6 addr add 2001:db8::1/64 dev xs nodad");
    ip("link set xs up");
    // The program's route lookup needs forwarding on the ingress interface.
    // (/proc/sys/net shows the namespace of the process reading it: ours.)
    for key in [
        "/proc/sys/net/ipv4/conf/xs/forwarding",
        "/proc/sys/net/ipv6/conf/xs/forwarding",
    ] {
        std::fs::write(key, "1").unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    ip("link set xc up");
    for (addr, mac) in [
        ("198.51.100.2", "02:00:00:00:00:02"),
        ("198.51.100.3", "02:00:00:00:00:03"),
        ("2001:db8::2", "02:00:00:00:00:02"),
        ("2001:db8::3", "02:00:00:00:00:03"),
    ] {
        ip(&format!(
            "neigh replace {addr} lladdr {mac} dev xs nud permanent"
        ));
    }
    let index: u32 = std::fs::read_to_string("/sys/class/net/xs/ifindex")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            // /sys shows the namespace the sysfs was mounted in; ask ip instead.
            let out = Command::new("ip")
                .args(["-o", "link", "show", "xs"])
                .output()
                .expect("ip link show");
            String::from_utf8_lossy(&out.stdout)
                .split(':')
                .next()
                .and_then(|s| s.trim().parse().ok())
                .expect("ifindex of xs")
        });
    let out = Command::new("ip")
        .args(["-o", "link", "show", "xs"])
        .output()
        .expect("ip link show");
    let text = String::from_utf8_lossy(&out.stdout);
    let mac_text = text
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("xs has a MAC");
    let mut mac = [0u8; 6];
    for (m, part) in mac.iter_mut().zip(mac_text.split(':')) {
        *m = u8::from_str_radix(part, 16).expect("hex");
    }
    (index, mac)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

pub fn channel(v6: bool) -> ChannelRoute {
    if v6 {
        ChannelRoute {
            client: addr("[2001:db8::2]:5000"),
            listening: addr("[2001:db8::1]:3478"),
            channel: 0x4001,
            relay: addr("[2001:db8::1]:50000"),
            peer: addr("[2001:db8::3]:40000"),
        }
    } else {
        ChannelRoute {
            client: addr("198.51.100.2:5000"),
            listening: addr("198.51.100.1:3478"),
            channel: 0x4001,
            relay: addr("198.51.100.1:50000"),
            peer: addr("198.51.100.3:40000"),
        }
    }
}

// ------------------------------------------------------------ frames

/// The Internet checksum of the pseudo-header and UDP datagram.
pub fn udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            sum += hi | lo;
        }
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            add(&s.octets());
            add(&d.octets());
            add(&[0, 17]);
            add(&(udp.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            add(&s.octets());
            add(&d.octets());
            add(&(udp.len() as u32).to_be_bytes());
            add(&[0, 0, 0, 17]);
        }
        _ => unreachable!("one family"),
    }
    add(udp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|p| (u32::from(p[0]) << 8) | u32::from(p[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame carrying `payload` in UDP from `src` to `dst`, with
/// correct lengths and checksums (`udp_check: false` sends IPv4 without one).
pub fn frame(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
    udp_check: bool,
) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    if udp_check {
        let c = udp_checksum(src.ip(), dst.ip(), &udp);
        udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
    }
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 17, 17, 0, 0];
            h[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = ipv4_header_checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            f.extend_from_slice(&[17, 9]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => unreachable!("one family"),
    }
    f.extend_from_slice(&udp);
    f
}

pub fn channel_data(number: u16, data: &[u8], pad_to_4: bool) -> Vec<u8> {
    let mut v = number.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    if pad_to_4 {
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
    }
    v
}
