//! `--check-host` for the kernel fast path: for each `xdp-interface`, whether
//! the program can be loaded and attached there and whether it will relay
//! (tuning/README.md, "The kernel fast path (XDP)").

use super::host::read;
use super::{Finding, Level};

/// Drivers whose XDP support runs in the driver (native mode), as of Linux 6.x.
const NATIVE_DRIVERS: &[&str] = &[
    "mlx5_core",
    "mlx4_en",
    "mlx4_core",
    "i40e",
    "ice",
    "ixgbe",
    "ixgbevf",
    "igb",
    "igc",
    "bnxt_en",
    "ena",
    "gve",
    "virtio_net",
    "hv_netvsc",
    "veth",
    "tun",
    "nfp",
    "qede",
    "sfc",
    "stmmaceth",
    "atlantic",
    "mvneta",
    "mvpp2",
    "thunderx-nicvf",
    "enetc",
    "fec",
    "cpsw",
    "xsk",
    "netdevsim",
];

/// Above this MTU most drivers refuse a native XDP program (one page per frame).
pub const NATIVE_MTU_LIMIT: u32 = 3498;

/// What the host says about one configured interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpInterfaceFacts {
    pub name: String,
    /// Present in this network namespace.
    pub exists: bool,
    /// The kernel driver's name, when readable.
    pub driver: Option<String>,
    pub mtu: Option<u32>,
    /// `net.ipv4.conf.IF.forwarding` / `net.ipv6.conf.IF.forwarding`.
    pub forwarding_v4: Option<bool>,
    pub forwarding_v6: Option<bool>,
}

/// The fast path as a whole: built in, and allowed to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpFacts {
    pub built: bool,
    /// CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN in the effective set.
    pub privileged: bool,
}

pub fn check_xdp(fast: XdpFacts, interfaces: &[XdpInterfaceFacts]) -> Vec<Finding> {
    if interfaces.is_empty() {
        // Off, as configured: say only whether it could be turned on.
        return vec![if fast.built {
            Finding::new(
                Level::Ok,
                "XDP fast path: built in, off (no xdp-interface)",
                "set xdp-interface=IF to relay bound channels in the kernel (README, The kernel fast path)",
            )
        } else {
            Finding::new(
                Level::Ok,
                "XDP fast path: not built into this ringturn (no clang and libbpf-dev at compile time), off",
                "to use it: apt-get install clang libbpf-dev, rebuild, set xdp-interface=IF",
            )
        }];
    }
    let mut out = Vec::new();
    if !fast.built {
        out.push(Finding::new(
            Level::Fix,
            "XDP fast path: not built into this ringturn (clang and libbpf-dev were missing at compile time); it will not start with xdp-interface",
            "apt-get install clang libbpf-dev and rebuild, or remove xdp-interface",
        ));
    }
    if !fast.privileged {
        out.push(Finding::new(
            Level::Fix,
            "XDP fast path: no CAP_BPF and CAP_NET_ADMIN: the program cannot be loaded and ringturn will not start",
            "run as root or grant CAP_BPF and CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN)",
        ));
    }
    for i in interfaces {
        out.extend(check_interface(i));
    }
    out
}

fn check_interface(i: &XdpInterfaceFacts) -> Vec<Finding> {
    let name = &i.name;
    if !i.exists {
        return vec![Finding::new(
            Level::Fix,
            format!("XDP {name}: no such interface here: ringturn will not start"),
            "set xdp-interface to an interface of this host (ip link)",
        )];
    }
    let mut out = Vec::new();
    match i.driver.as_deref() {
        Some(d) if NATIVE_DRIVERS.contains(&d) => out.push(Finding::new(
            Level::Ok,
            format!("XDP {name}: driver {d} runs XDP natively"),
            "xdp-mode=auto attaches in native mode (tuning/README.md, The kernel fast path)",
        )),
        Some(d) => out.push(Finding::new(
            Level::Warn,
            format!("XDP {name}: driver {d} is not known to run XDP natively: xdp-mode=auto may fall back to generic mode, which saves much less"),
            "check the log line at start (native or generic), or use a NIC whose driver has native XDP (tuning/README.md, The kernel fast path)",
        )),
        None => out.push(Finding::new(
            Level::Warn,
            format!("XDP {name}: driver not readable: native XDP unknown"),
            "the log line at start says which mode it got",
        )),
    }
    if let Some(mtu) = i.mtu.filter(|m| *m > NATIVE_MTU_LIMIT) {
        out.push(Finding::new(
            Level::Warn,
            format!(
                "XDP {name}: MTU {mtu}: most drivers refuse native XDP above {NATIVE_MTU_LIMIT}"
            ),
            format!("ip link set {name} mtu 1500 (relayed media never needs more)"),
        ));
    }
    for (family, key, on) in [
        ("IPv4", "ipv4", i.forwarding_v4),
        ("IPv6", "ipv6", i.forwarding_v6),
    ] {
        if on == Some(false) {
            out.push(Finding::new(
                if family == "IPv4" { Level::Fix } else { Level::Warn },
                format!("XDP {name}: {family} forwarding is off: the kernel gives the program no next hop, so every {family} packet takes the socket path"),
                format!("sysctl -w net.{key}.conf.{name}.forwarding=1 (and in /etc/sysctl.d)"),
            ));
        }
    }
    out
}

/// Reads the facts for the configured interfaces (procfs for what must be
/// this network namespace's view; sysfs for the driver and MTU).
pub fn read_xdp(interfaces: &[String]) -> (XdpFacts, Vec<XdpInterfaceFacts>) {
    let caps = read("/proc/self/status").map_or(0, |s| super::parse_cap_eff(&s));
    const NET_ADMIN: u64 = 1 << 12;
    const SYS_ADMIN: u64 = 1 << 21;
    const BPF: u64 = 1 << 39;
    let fast = XdpFacts {
        built: crate::xdp::PROGRAM.is_some(),
        privileged: caps & NET_ADMIN != 0 && caps & (BPF | SYS_ADMIN) != 0,
    };
    let facts = interfaces
        .iter()
        .map(|name| {
            let flag = |family: &str| {
                read(format!("/proc/sys/net/{family}/conf/{name}/forwarding"))
                    .map(|v| v.trim() == "1")
            };
            let forwarding_v4 = flag("ipv4");
            let sys = format!("/sys/class/net/{name}");
            let driver = std::fs::read_link(format!("{sys}/device/driver"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .or_else(|| {
                    // Virtual devices have no `device`: a veth says so in its uevent-less
                    // sysfs only through its peer link; name the common one.
                    read(format!("{sys}/iflink"))
                        .zip(read(format!("{sys}/ifindex")))
                        .filter(|(a, b)| a.trim() != b.trim())
                        .map(|_| "veth".to_owned())
                });
            XdpInterfaceFacts {
                name: name.clone(),
                exists: forwarding_v4.is_some(),
                driver,
                mtu: read(format!("{sys}/mtu")).and_then(|m| m.trim().parse().ok()),
                forwarding_v4,
                forwarding_v6: flag("ipv6"),
            }
        })
        .collect();
    (fast, facts)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn nic(name: &str) -> XdpInterfaceFacts {
        XdpInterfaceFacts {
            name: name.into(),
            exists: true,
            driver: Some("mlx5_core".into()),
            mtu: Some(1500),
            forwarding_v4: Some(true),
            forwarding_v6: Some(true),
        }
    }

    const READY: XdpFacts = XdpFacts {
        built: true,
        privileged: true,
    };

    fn levels(f: &[Finding]) -> Vec<Level> {
        f.iter().map(|f| f.level).collect()
    }

    #[test]
    fn issue11_without_an_interface_one_line_says_whether_it_is_built() {
        let on = check_xdp(READY, &[]);
        assert_eq!(levels(&on), vec![Level::Ok]);
        assert!(on[0].to_string().contains("built in, off"));
        let missing = check_xdp(
            XdpFacts {
                built: false,
                privileged: true,
            },
            &[],
        );
        assert!(missing[0].to_string().contains("not built"));
    }

    #[test]
    fn issue11_a_ready_interface_is_ok() {
        let f = check_xdp(READY, &[nic("eth0")]);
        assert_eq!(levels(&f), vec![Level::Ok], "{f:?}");
        assert!(f[0].to_string().contains("natively"));
    }

    #[test]
    fn issue11_each_problem_is_named() {
        let f = check_xdp(
            XdpFacts {
                built: false,
                privileged: false,
            },
            &[nic("eth0")],
        );
        assert_eq!(levels(&f), vec![Level::Fix, Level::Fix, Level::Ok]);
        let missing = XdpInterfaceFacts {
            exists: false,
            ..nic("eth9")
        };
        let f = check_xdp(READY, &[missing]);
        assert_eq!(levels(&f), vec![Level::Fix]);
        assert!(f[0].to_string().contains("eth9"));
        let odd = XdpInterfaceFacts {
            driver: Some("r8169".into()),
            mtu: Some(9000),
            forwarding_v4: Some(false),
            forwarding_v6: Some(false),
            ..nic("eth1")
        };
        let f = check_xdp(READY, &[odd]);
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(
            levels(&f),
            vec![Level::Warn, Level::Warn, Level::Fix, Level::Warn],
            "{text:?}"
        );
        assert!(text[0].contains("r8169") && text[1].contains("9000"));
        assert!(text[2].contains("net.ipv4.conf.eth1.forwarding=1"));
    }

    #[test]
    fn reading_a_missing_interface_says_it_is_missing() {
        let (_, facts) = read_xdp(&["nosuch0".to_owned()]);
        assert!(!facts[0].exists);
    }
}
