//! The host's interface addresses (`getifaddrs`), for a configuration
//! without `listening-ip` (issue 12): coturn then listens on every address of
//! every interface that is up, and so does ringturn.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of an interface that is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub ip: IpAddr,
    pub loopback: bool,
}

/// Every IPv4 and IPv6 address of every interface that is up, in the
/// kernel's order, without IPv6 link-local addresses (they need a scope id
/// that TURN addresses cannot carry; coturn skips them too) and without
/// duplicates.
#[allow(unsafe_code)]
pub fn up_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head it allocated into `head`; on
    // success we own the list until freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found: Vec<InterfaceAddress> = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not
        // yet freed; its fields are read, never kept past freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        let flags = entry.ifa_flags;
        if flags & libc::IFF_UP as u32 == 0 || entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr whose
        // sa_family says which sockaddr_* it is; we read only that one.
        let ip = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        if is_ipv6_link_local(ip) || found.iter().any(|f| f.ip == ip) {
            continue;
        }
        let interface = if entry.ifa_name.is_null() {
            String::new()
        } else {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            unsafe { CStr::from_ptr(entry.ifa_name) }
                .to_string_lossy()
                .into_owned()
        };
        found.push(InterfaceAddress {
            interface,
            ip,
            loopback: flags & libc::IFF_LOOPBACK as u32 != 0 || ip.is_loopback(),
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}

fn is_ipv6_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// With `lo` up (it is on a host; a fresh namespace has it down),
    /// 127.0.0.1 is found and marked as loopback.
    #[test]
    fn finds_loopback_and_no_link_local() {
        let all = up_addresses().unwrap();
        assert!(all.iter().all(|a| !is_ipv6_link_local(a.ip)));
        let flags = std::fs::read_to_string("/sys/class/net/lo/flags").unwrap();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
        if flags & libc::IFF_UP as u32 == 0 {
            assert!(
                all.iter().all(|a| a.interface != "lo"),
                "lo is down: {all:?}"
            );
            return;
        }
        let lo = all
            .iter()
            .find(|a| a.ip == IpAddr::V4(Ipv4Addr::LOCALHOST))
            .expect("127.0.0.1 on an up interface");
        assert!(lo.loopback && lo.interface == "lo");
    }

    #[test]
    fn link_local_is_fe80_slash_10() {
        assert!(is_ipv6_link_local("fe80::1".parse().unwrap()));
        assert!(is_ipv6_link_local("febf::1".parse().unwrap()));
        assert!(!is_ipv6_link_local("fec0::1".parse().unwrap()));
        assert!(!is_ipv6_link_local("2001:db8::1".parse().unwrap()));
    }
}
