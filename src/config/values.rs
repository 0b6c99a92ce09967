//! Parsers for option values. Each returns the message of a `ConfigError`;
//! the caller adds where the value came from.

use std::net::{IpAddr, SocketAddr};

use super::ExternalIp;

/// coturn's booleans: bare (`None`) is on; `yes/no`, `on/off`, `true/false`, `1/0`.
pub(crate) fn flag(value: Option<&str>) -> Result<bool, String> {
    let Some(v) = value else { return Ok(true) };
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Ok(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Ok(false),
        _ => Err(format!(
            "expected yes/no, on/off, true/false or 1/0, got {v:?}"
        )),
    }
}

/// A UDP/TCP port, 1–65535.
pub(crate) fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u64>() {
        Ok(p) if (1..=65535).contains(&p) => u16::try_from(p).map_err(|_| invalid_port(v)),
        Ok(_) => Err(format!("invalid port {v:?} (expected 1-65535)")),
        Err(_) => Err(invalid_port(v)),
    }
}

fn invalid_port(v: &str) -> String {
    format!("invalid port {v:?}")
}

pub(crate) fn number<T: std::str::FromStr>(v: &str, what: &str) -> Result<T, String> {
    v.parse::<T>()
        .map_err(|_| format!("invalid {what} {v:?} (expected a non-negative integer)"))
}

/// Seconds, at least 1 and at most a year; bare means `default`.
pub(crate) fn seconds(value: Option<&str>, default: u64) -> Result<u64, String> {
    let Some(v) = value else { return Ok(default) };
    let s: u64 = number(v, "number of seconds")?;
    if s == 0 || s > 365 * 24 * 3600 {
        return Err(format!("{s} seconds is out of range (1 to 31536000)"));
    }
    Ok(s)
}

/// An address, IPv6 optionally in brackets.
pub(crate) fn ip(v: &str) -> Result<IpAddr, String> {
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    inner
        .parse()
        .map_err(|_| format!("invalid IP address {v:?}"))
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; `default_port`
/// when there is none (coturn's alternate-server forms).
pub(crate) fn ip_port(v: &str, default_port: u16) -> Result<SocketAddr, String> {
    let v = v.trim();
    if let Ok(a) = v.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(format!("invalid port 0 in {v:?} (expected 1-65535)"));
        }
        return Ok(a);
    }
    if let Ok(ip) = ip(v) {
        return Ok(SocketAddr::new(ip, default_port));
    }
    match v.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => {
            let ip: IpAddr = host
                .parse()
                .map_err(|_| format!("invalid IP address {host:?} in {v:?}"))?;
            Ok(SocketAddr::new(ip, port(p)?))
        }
        _ => Err(format!(
            "invalid address {v:?} (expected IP, IP:PORT or [IPv6]:PORT)"
        )),
    }
}

/// A `turn:` or `turns:` URI (RFC 7065) as a page would put it in `iceServers`.
pub(crate) fn turn_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    let rest = v
        .strip_prefix("turn:")
        .or_else(|| v.strip_prefix("turns:"))
        .ok_or_else(|| format!("{v:?} is not a turn: or turns: URL"))?;
    let host = rest.split(['?', ':']).next().unwrap_or_default();
    if host.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        return Err(format!("invalid TURN URL {v:?}"));
    }
    Ok(v.to_owned())
}

/// `PUBLIC` or `PUBLIC/PRIVATE`.
pub(crate) fn external_ip(v: &str) -> Result<ExternalIp, String> {
    let (public, private) = match v.split_once('/') {
        Some((a, b)) => (ip(a.trim())?, Some(ip(b.trim())?)),
        None => (ip(v)?, None),
    };
    if let Some(p) = private {
        if p.is_ipv4() != public.is_ipv4() {
            return Err(format!(
                "{v:?}: public and private addresses must be of one family"
            ));
        }
    }
    if public.is_unspecified() {
        return Err(format!("{v:?}: the public address cannot be unspecified"));
    }
    Ok(ExternalIp { public, private })
}

/// Bytes with an optional binary suffix: `4194304`, `4M`, `512K`, `1G`
/// (also `4MB`, `4MiB`, lower case). At most `i32::MAX` (what setsockopt takes).
pub(crate) fn size(v: &str) -> Result<usize, String> {
    let bad = || format!("invalid size {v:?} (expected bytes, optionally with K, M or G)");
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, mult) = match body.char_indices().last() {
        Some((i, 'k')) => (body.get(..i), 1u64 << 10),
        Some((i, 'm')) => (body.get(..i), 1u64 << 20),
        Some((i, 'g')) => (body.get(..i), 1u64 << 30),
        Some(_) => (Some(body), 1),
        None => return Err(bad()),
    };
    let n: u64 = digits
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| d.parse().ok())
        .ok_or_else(bad)?;
    let bytes = n.checked_mul(mult).ok_or_else(bad)?;
    if bytes == 0 || bytes > i32::MAX as u64 {
        return Err(format!(
            "size {v:?} is out of range (1 byte to 2147483647 bytes)"
        ));
    }
    usize::try_from(bytes).map_err(|_| bad())
}

/// The highest core number accepted in `cpu-affinity` (Linux's default CPU_SETSIZE).
pub(crate) const MAX_CPU: usize = 1023;

/// `0,1`, `0-3`, `0-3,8,10-11`.
pub(crate) fn cpu_list(v: &str) -> Result<Vec<usize>, String> {
    let bad =
        |item: &str| format!("invalid core {item:?} in {v:?} (expected N or N-M, comma separated)");
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(bad(item));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad(item))?,
                b.trim().parse::<usize>().map_err(|_| bad(item))?,
            ),
            None => {
                let n = item.parse::<usize>().map_err(|_| bad(item))?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("core range {item:?} is backwards"));
        }
        if last > MAX_CPU {
            return Err(format!("core {last} is out of range (0-{MAX_CPU})"));
        }
        out.extend(first..=last);
    }
    Ok(out)
}

/// `rest-api-separator`: exactly one character.
pub(crate) fn separator(v: &str) -> Result<char, String> {
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(format!("expected one character, got {v:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_coturn_booleans() {
        assert_eq!(flag(None), Ok(true));
        assert_eq!(flag(Some("off")), Ok(false));
        assert_eq!(flag(Some("Yes")), Ok(true));
        assert_eq!(flag(Some("0")), Ok(false));
        assert!(flag(Some("maybe")).is_err());
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(port("3478"), Ok(3478));
        assert_eq!(port("abc"), Err("invalid port \"abc\"".to_owned()));
        assert!(port("70000").is_err());
        assert!(port("0").is_err());
        assert!(port("-1").is_err());
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(size("4194304"), Ok(4_194_304));
        assert_eq!(size("4M"), Ok(4 << 20));
        assert_eq!(size("512k"), Ok(512 << 10));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("8MiB"), Ok(8 << 20));
        assert_eq!(size("2MB"), Ok(2 << 20));
        assert!(size("2G").is_err(), "over i32::MAX");
        assert!(size("0").is_err());
        assert!(size("M").is_err());
        assert!(size("").is_err());
        assert!(size("12X").is_err());
        assert!(size("99999999999999999999K").is_err());
    }

    #[test]
    fn cpu_lists_take_ranges() {
        assert_eq!(cpu_list("0,1"), Ok(vec![0, 1]));
        assert_eq!(cpu_list("0-3"), Ok(vec![0, 1, 2, 3]));
        assert_eq!(cpu_list("0-1, 4 ,6-7"), Ok(vec![0, 1, 4, 6, 7]));
        assert!(cpu_list("3-1").is_err());
        assert!(cpu_list("a").is_err());
        assert!(cpu_list("1,,2").is_err());
        assert!(cpu_list("0-100000").is_err());
    }

    #[test]
    fn external_ip_forms() {
        let e = external_ip("203.0.113.5").unwrap();
        assert_eq!(e.public, ip("203.0.113.5").unwrap());
        assert_eq!(e.private, None);
        let e = external_ip("203.0.113.5/10.0.0.5").unwrap();
        assert_eq!(e.private, Some(ip("10.0.0.5").unwrap()));
        assert!(external_ip("203.0.113.5/::1").is_err());
        assert!(external_ip("nope").is_err());
        assert!(external_ip("0.0.0.0").is_err());
    }

    #[test]
    fn seconds_and_separator() {
        assert_eq!(seconds(None, 600), Ok(600));
        assert_eq!(seconds(Some("30"), 600), Ok(30));
        assert!(seconds(Some("0"), 600).is_err());
        assert!(seconds(Some("x"), 600).is_err());
        assert_eq!(separator(":"), Ok(':'));
        assert!(separator("::").is_err());
        assert_eq!(ip("[::1]"), Ok("::1".parse().unwrap()));
    }
}
