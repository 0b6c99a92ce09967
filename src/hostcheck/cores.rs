//! The core checks: worker count and `cpu-affinity` against the cores here,
//! and each NIC's receive queues and interrupt cores against the workers.

use super::{Finding, Level, Nic, Wanted};

/// Core count, worker count and pinning.
pub fn check_cores(cores: usize, online: Option<&[usize]>, w: &Wanted) -> Vec<Finding> {
    let mut out = Vec::new();
    let online_n = online.map_or(cores, <[usize]>::len);
    let summary = format!(
        "cores: {cores} usable ({online_n} online), {} worker{}",
        w.workers,
        if w.workers == 1 { "" } else { "s" }
    );
    if w.workers > cores {
        out.push(Finding::new(
            Level::Fix,
            format!("{summary}: more workers than cores, so they preempt each other"),
            format!("set workers={cores} or fewer, one per core (tuning/README.md, Core pinning)"),
        ));
    } else if w.cpu_affinity.is_empty() && cores > 2 {
        out.push(Finding::new(
            Level::Warn,
            format!("{summary}, not pinned"),
            "pin workers with cpu-affinity, leaving core 0 and the NIC's interrupt cores out (tuning/16-core.conf, tuning/README.md, Core pinning)",
        ));
    } else {
        out.push(Finding::new(Level::Ok, summary, "nothing to change"));
    }
    if let Some(online) = online {
        let missing: Vec<usize> = w
            .cpu_affinity
            .iter()
            .copied()
            .filter(|c| !online.contains(c))
            .collect();
        if !missing.is_empty() {
            out.push(Finding::new(
                Level::Fix,
                format!(
                    "cpu-affinity: cores {} are not online here; those workers run unpinned",
                    cpu_list(&missing)
                ),
                format!(
                    "pin to cores in {} (tuning/README.md, Core pinning)",
                    cpu_list(online)
                ),
            ));
        }
    }
    if cores > 2 && w.cpu_affinity.contains(&0) {
        out.push(Finding::new(
            Level::Warn,
            "cpu-affinity: a worker is pinned to core 0, where the system's own work and many interrupts land",
            "leave core 0 out of cpu-affinity (tuning/README.md, Core pinning)",
        ));
    }
    out
}

/// NIC receive queues against workers, and interrupt cores against pinned workers.
pub fn check_nics(nics: Option<&[Nic]>, w: &Wanted) -> Vec<Finding> {
    let Some(nics) = nics else {
        return vec![Finding::new(
            Level::Warn,
            "NIC queues: /sys/class/net not readable",
            "check with ethtool -l IFACE (tuning/README.md, NIC interrupts and RSS)",
        )];
    };
    if nics.is_empty() {
        return vec![Finding::new(
            Level::Ok,
            "NIC queues: no physical interface visible (container or loopback only)",
            "tune the host's NIC instead (tuning/README.md, NIC interrupts and RSS)",
        )];
    }
    let mut out = Vec::new();
    for nic in nics {
        let name = &nic.name;
        let q = nic.rx_queues;
        if q <= 1 && w.workers > 1 {
            out.push(Finding::new(
                Level::Warn,
                format!("NIC queues: {name} has {q} receive queue: every packet is received on one core"),
                format!("ethtool -L {name} combined N where the NIC allows (a virtio NIC: more queues in the VM's definition), else spread with RPS: echo <mask> > /sys/class/net/{name}/queues/rx-0/rps_cpus (tuning/README.md, NIC interrupts and RSS)"),
            ));
        } else {
            out.push(Finding::new(
                Level::Ok,
                format!("NIC queues: {name} has {q} receive queue{}", if q == 1 { "" } else { "s" }),
                "pin each queue's interrupt to its own core outside cpu-affinity (tuning/README.md, NIC interrupts and RSS)",
            ));
        }
        let overlap: Vec<usize> = nic
            .irq_cores
            .iter()
            .copied()
            .filter(|c| w.cpu_affinity.contains(c))
            .collect();
        if !overlap.is_empty() {
            out.push(Finding::new(
                Level::Warn,
                format!("NIC interrupts: {name}'s interrupts may land on worker cores {}", cpu_list(&overlap)),
                "stop irqbalance and write the NIC's cores to /proc/irq/N/smp_affinity_list, outside cpu-affinity (tuning/README.md, NIC interrupts and RSS)",
            ));
        }
    }
    out
}

/// [0, 1, 2, 5] → `0-2,5`.
pub(super) fn cpu_list(cores: &[usize]) -> String {
    let mut sorted = cores.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::hostcheck::tests::wanted;

    #[test]
    fn core_findings() {
        let online: Vec<usize> = (0..16).collect();
        let w = wanted();
        let f = check_cores(16, Some(&online), &w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Ok);
        assert!(f[0].what.contains("16 usable"), "{}", f[0]);

        let too_many = Wanted {
            workers: 32,
            ..w.clone()
        };
        assert_eq!(
            check_cores(16, Some(&online), &too_many)[0].level,
            Level::Fix
        );

        let unpinned = Wanted {
            cpu_affinity: vec![],
            ..w.clone()
        };
        assert_eq!(
            check_cores(16, Some(&online), &unpinned)[0].level,
            Level::Warn
        );
        // A 2-core VM: not pinning is fine.
        let small = Wanted {
            workers: 2,
            cpu_affinity: vec![],
            ..w.clone()
        };
        assert_eq!(check_cores(2, Some(&[0, 1]), &small)[0].level, Level::Ok);

        let offline = Wanted {
            workers: 2,
            cpu_affinity: vec![1, 40, 41],
            ..w.clone()
        };
        let f = check_cores(16, Some(&online), &offline);
        let missing = f.iter().find(|f| f.what.contains("not online")).unwrap();
        assert_eq!(missing.level, Level::Fix);
        assert!(missing.what.contains("40-41"), "{missing}");

        let core0 = Wanted {
            workers: 4,
            cpu_affinity: vec![0, 1, 2, 3],
            ..w
        };
        let f = check_cores(16, Some(&online), &core0);
        assert!(f
            .iter()
            .any(|f| f.level == Level::Warn && f.what.contains("core 0")));
    }

    #[test]
    fn nic_findings() {
        let w = wanted();
        let nic = |rx_queues, irq_cores: Vec<usize>| Nic {
            name: "eth0".into(),
            rx_queues,
            irq_cores,
        };
        let f = check_nics(Some(&[nic(1, vec![0])]), &w);
        assert_eq!(f[0].level, Level::Warn);
        assert!(f[0].todo.contains("ethtool -L eth0"), "{}", f[0]);
        let f = check_nics(Some(&[nic(8, vec![1, 2, 3])]), &w);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Ok);
        let f = check_nics(Some(&[nic(8, (0..16).collect())]), &w);
        assert_eq!(f[1].level, Level::Warn);
        assert!(f[1].what.contains("4-15"), "{}", f[1]);
        assert!(f[1].todo.contains("smp_affinity_list"), "{}", f[1]);
        assert_eq!(check_nics(Some(&[]), &w)[0].level, Level::Ok);
        assert_eq!(check_nics(None, &w)[0].level, Level::Warn);
    }
}
