//! Reading the machine into [`HostFacts`]: procfs, sysfs and one io_uring
//! probe, with the parsers of what those files hold.

use std::path::Path;

use super::{read_xdp, FileLimit, HostFacts, IoUringFacts, Nic};

/// `0-3,8,10-11` → [0, 1, 2, 3, 8, 10, 11].
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// The `Max open files` line of `/proc/self/limits`.
pub fn parse_open_files_limit(limits: &str) -> Option<FileLimit> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line.trim_start_matches("Max open files").split_whitespace();
    let value = |s: Option<&str>| -> Option<Option<u64>> {
        match s? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some(FileLimit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

/// The effective capability set: the `CapEff:` line of `/proc/self/status`
/// (0 when absent or unreadable).
pub fn parse_cap_eff(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

/// CAP_NET_ADMIN (bit 12) in the effective set.
pub fn parse_net_admin(status: &str) -> bool {
    parse_cap_eff(status) & (1 << 12) != 0
}

/// `32768\t60999` → (32768, 60999).
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace();
    let lo = it.next()?.parse().ok()?;
    let hi = it.next()?.parse().ok()?;
    Some((lo, hi))
}

pub(super) fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_u64(path: &str) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

fn read_nics() -> Option<Vec<Nic>> {
    let mut nics = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net").ok()?.flatten() {
        let dir = entry.path();
        // Only interfaces backed by a device: not lo, veth, bridges, ifb.
        if !dir.join("device").exists() {
            continue;
        }
        let rx_queues = std::fs::read_dir(dir.join("queues"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                    .count()
            })
            .unwrap_or(0);
        // MSI interrupts of the PCI function (virtio: its parent).
        let irqs = std::fs::read_dir(dir.join("device/msi_irqs"))
            .or_else(|_| std::fs::read_dir(dir.join("device/../msi_irqs")));
        let mut irq_cores = Vec::new();
        if let Ok(irqs) = irqs {
            for irq in irqs.flatten() {
                let name = irq.file_name().to_string_lossy().into_owned();
                if let Some(cores) = read(format!("/proc/irq/{name}/smp_affinity_list"))
                    .and_then(|s| parse_cpu_list(&s))
                {
                    irq_cores.extend(cores);
                }
            }
        }
        irq_cores.sort_unstable();
        irq_cores.dedup();
        nics.push(Nic {
            name: entry.file_name().to_string_lossy().into_owned(),
            rx_queues,
            irq_cores,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Some(nics)
}

/// Reads this machine: procfs, sysfs, and one io_uring backend set up and
/// dropped; and each of `xdp_interfaces`.
pub fn read_host(xdp_interfaces: &[String]) -> HostFacts {
    let (xdp, xdp_interfaces) = read_xdp(xdp_interfaces);
    let probe = crate::io::create_backend(Some(crate::io::BackendKind::Uring))
        .map(drop)
        .map_err(|e| e.to_string());
    HostFacts {
        io_uring: IoUringFacts {
            sysctl: read_u64("/proc/sys/kernel/io_uring_disabled").map(|v| v as u32),
            probe,
        },
        rmem_max: read_u64("/proc/sys/net/core/rmem_max"),
        wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
        netdev_max_backlog: read_u64("/proc/sys/net/core/netdev_max_backlog"),
        net_admin: read("/proc/self/status").is_some_and(|s| parse_net_admin(&s)),
        open_files: read("/proc/self/limits").and_then(|s| parse_open_files_limit(&s)),
        file_max: read_u64("/proc/sys/fs/file-max"),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        online: read("/sys/devices/system/cpu/online").and_then(|s| parse_cpu_list(&s)),
        nics: read_nics(),
        local_port_range: read("/proc/sys/net/ipv4/ip_local_port_range")
            .and_then(|s| parse_port_range(&s)),
        kernel: read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_owned()),
        xdp,
        xdp_interfaces,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hostcheck::cores::cpu_list;
    use crate::hostcheck::tests::wanted;
    use crate::hostcheck::{check, parse_kernel_version};

    #[test]
    fn parsers() {
        assert_eq!(parse_kernel_version("6.18.44-fc"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.4"), Some((5, 4)));
        assert_eq!(parse_kernel_version("x"), None);
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(cpu_list(&[5, 0, 1, 2, 7, 8]), "0-2,5,7-8");
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(
            parse_open_files_limit(limits),
            Some(FileLimit {
                soft: Some(1024),
                hard: Some(524_288)
            })
        );
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited unlimited files"),
            Some(FileLimit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(parse_open_files_limit("nothing"), None);
        assert!(parse_net_admin("Name:\tx\nCapEff:\t000001fffeffffff\n"));
        assert!(!parse_net_admin("CapEff:\t0000000000000000\n"));
        assert!(!parse_net_admin(""));
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
    }

    #[test]
    fn read_host_does_not_panic() {
        let facts = read_host(&["nosuch0".to_owned()]);
        assert!(facts.cores >= 1);
        let findings = check(&facts, &wanted());
        assert!(findings.len() >= 8);
    }
}
