//! `hold`: make N authenticated allocations, keep them alive (refreshing them),
//! and read what they cost the server in resident memory.
//!
//! Unlike `allocate --hold`, which keeps one open socket per client, this
//! opens at most `--open` sockets at a time: each batch allocates (401, then
//! Allocate with credentials), remembers its 5-tuple and nonce, and closes its
//! sockets. The allocation lives on in the server (UDP has no connection);
//! to refresh it, the same local address and port are bound again. So
//! 100,000 allocations need neither 100,000 descriptors nor root's
//! RLIMIT_NOFILE. Requests in a batch are pipelined over non-blocking sockets
//! and retransmitted on a timer, like the other modes.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Args;
use ringturn::auth::keys::md5_key;
use ringturn::stun::{
    Class, EncodeAttribute, ErrorCodeAttr, Lifetime, Message, MessageType, MessageWriter, Method,
    Nonce, Realm, RequestedTransport, TransactionId, TransportProtocol, Username,
    XorRelayedAddress,
};
use serde::Serialize;

use crate::procstat;

#[derive(Debug, Clone, Args)]
pub struct HoldArgs {
    /// The TURN server (loopback only).
    #[arg(short, long, default_value = "127.0.0.1:3478")]
    pub server: SocketAddr,
    /// Long-term credentials: user name.
    #[arg(short, long, default_value = "test")]
    pub user: String,
    /// Long-term credentials: password.
    #[arg(short = 'w', long, default_value = "test")]
    pub password: String,
    /// Allocations to make and hold.
    #[arg(short = 'c', long, default_value_t = 10_000)]
    pub allocations: usize,
    /// Sockets open at once (each batch's); stays under the open-files limit.
    #[arg(long, default_value_t = 4096)]
    pub open: usize,
    /// Source addresses (127.0.1.1 upwards), so ephemeral ports do not run out.
    #[arg(long, default_value_t = 64)]
    pub client_ips: usize,
    /// The first source address.
    #[arg(long, default_value = "127.0.1.1")]
    pub client_ip_base: Ipv4Addr,
    /// The first client port on each source address: ports are bound explicitly, each
    /// (address, port) once, so a closed batch's 5-tuple is never reused by the next one.
    #[arg(long, default_value_t = 10_000)]
    pub first_port: u16,
    /// How long to hold the allocations once made, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Refresh every allocation this often while holding, seconds (0: once, at the end of the hold).
    #[arg(long, default_value_t = 0.0)]
    pub refresh_every: f64,
    /// LIFETIME asked for in Allocate and Refresh, seconds.
    #[arg(long, default_value_t = 600)]
    pub lifetime: u32,
    /// Delete the allocations (Refresh with LIFETIME 0) at the end.
    #[arg(long)]
    pub release: bool,
    /// The server's PID: its VmRSS is read from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// First retransmission timeout, milliseconds (doubles; 6 tries).
    #[arg(long, default_value_t = 300)]
    pub rto_ms: u64,
    /// Write the figures as JSON.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One allocation held: its client address and what signs its requests.
struct Held {
    local: SocketAddr,
    realm: String,
    nonce: String,
}

#[derive(Debug, Default, Serialize)]
pub struct HoldReport {
    pub requested: usize,
    pub allocated: usize,
    pub failed: usize,
    /// Error codes (or "timeout") of failed Allocates, with counts.
    pub failures: Vec<(String, usize)>,
    pub setup_seconds: f64,
    pub allocations_per_second: f64,
    pub distinct_relayed_addresses: usize,
    pub refresh_rounds: usize,
    pub refreshed: usize,
    pub refresh_failed: usize,
    pub released: usize,
    pub rss_kib_before: Option<u64>,
    pub rss_kib_after_setup: Option<u64>,
    pub rss_kib_peak: Option<u64>,
    pub rss_kib_end: Option<u64>,
    /// (peak − before) / allocated.
    pub rss_bytes_per_allocation: Option<f64>,
}

struct Io {
    server: SocketAddr,
    user: String,
    password: String,
    rto: Duration,
    tid: u64,
}

impl Io {
    fn request(
        &mut self,
        method: Method,
        attrs: &[&dyn EncodeAttribute],
        auth: Option<(&str, &str)>,
    ) -> Result<(TransactionId, Vec<u8>)> {
        self.tid += 1;
        let mut t = [0x68u8; 12];
        t[4..].copy_from_slice(&self.tid.to_be_bytes());
        let tid = TransactionId(t);
        let mut buf = vec![0u8; 512];
        let mut w = MessageWriter::new(&mut buf, MessageType::new(method, Class::Request), tid)
            .map_err(|e| anyhow::anyhow!("encode: {e:?}"))?;
        for a in attrs {
            w.add(*a).map_err(|e| anyhow::anyhow!("encode: {e:?}"))?;
        }
        if let Some((realm, nonce)) = auth {
            w.add(&Username(&self.user))
                .and_then(|()| w.add(&Realm(realm)))
                .and_then(|()| w.add(&Nonce(nonce)))
                .and_then(|()| w.add_message_integrity(&md5_key(&self.user, realm, &self.password)))
                .map_err(|e| anyhow::anyhow!("encode: {e:?}"))?;
        }
        let n = w.finish();
        buf.truncate(n);
        Ok((tid, buf))
    }

    /// Sends one request per socket and collects the answers (retransmitting
    /// what is unanswered); `None` for a socket that got none.
    fn transact_all(
        &self,
        sockets: &[UdpSocket],
        requests: &[(TransactionId, Vec<u8>)],
    ) -> Vec<Option<Vec<u8>>> {
        let mut answers: Vec<Option<Vec<u8>>> = vec![None; sockets.len()];
        let mut left = sockets.len();
        let mut buf = [0u8; 2048];
        let mut rto = self.rto;
        for _try in 0..6 {
            for (i, (s, (_, req))) in sockets.iter().zip(requests).enumerate() {
                if answers.get(i).is_some_and(Option::is_none) {
                    let _ = s.send_to(req, self.server);
                }
            }
            let until = Instant::now() + rto;
            while left > 0 && Instant::now() < until {
                let mut got = 0;
                for (i, (s, (tid, _))) in sockets.iter().zip(requests).enumerate() {
                    if !answers.get(i).is_some_and(Option::is_none) {
                        continue;
                    }
                    while let Ok((n, _)) = s.recv_from(&mut buf) {
                        let Some(bytes) = buf.get(..n) else { break };
                        if Message::parse(bytes).is_ok_and(|m| m.transaction_id() == *tid) {
                            if let Some(a) = answers.get_mut(i) {
                                *a = Some(bytes.to_vec());
                            }
                            left -= 1;
                            got += 1;
                            break;
                        }
                    }
                }
                if got == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            if left == 0 {
                break;
            }
            rto *= 2;
        }
        answers
    }
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    m.get::<ErrorCodeAttr>()
        .and_then(Result::ok)
        .map(|e| e.code.0)
}

fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind((ip, port))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn rss(pid: Option<u32>) -> Option<u64> {
    pid.and_then(procstat::rss_kib)
}

pub fn run(args: &HoldArgs) -> Result<HoldReport> {
    if !args.server.ip().is_loopback() {
        bail!("the server must be on loopback");
    }
    if args.open == 0 || args.client_ips == 0 {
        bail!("--open and --client-ips must be at least 1");
    }
    let mut io = Io {
        server: args.server,
        user: args.user.clone(),
        password: args.password.clone(),
        rto: Duration::from_millis(args.rto_ms.max(1)),
        tid: 0,
    };
    let ips: Vec<Ipv4Addr> = (0..args.client_ips)
        .map(|i| Ipv4Addr::from(u32::from(args.client_ip_base).wrapping_add(i as u32)))
        .collect();
    let pid = args.server_pid;
    let mut report = HoldReport {
        requested: args.allocations,
        rss_kib_before: rss(pid),
        ..HoldReport::default()
    };
    let mut peak = report.rss_kib_before;
    let note_rss = |peak: &mut Option<u64>| {
        let now = rss(pid);
        *peak = (*peak).max(now);
        now
    };
    let mut held: Vec<Held> = Vec::with_capacity(args.allocations);
    let mut relayed = std::collections::HashSet::new();
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    let started = Instant::now();
    let lifetime = Lifetime(args.lifetime);
    let transport = RequestedTransport(TransportProtocol::UDP);
    let mut made = 0;
    // The next port to try on each source address.
    let mut next_port: Vec<u16> = vec![args.first_port.max(1); ips.len()];
    while made < args.allocations {
        let n = args.open.min(args.allocations - made);
        let mut sockets: Vec<UdpSocket> = Vec::with_capacity(n);
        for k in 0..n {
            let slot = (made + k) % ips.len();
            let ip = ips.get(slot).copied().unwrap_or(Ipv4Addr::LOCALHOST);
            let port = next_port.get_mut(slot).context("source address")?;
            // A port someone else holds is skipped.
            let sock = loop {
                if *port == u16::MAX {
                    bail!("out of client ports on {ip}: use more --client-ips");
                }
                let p = *port;
                *port += 1;
                if let Ok(s) = bind(ip, p) {
                    break s;
                }
            };
            sockets.push(sock);
        }
        // 1: the 401 with REALM and NONCE (RFC 8489 §9.2).
        let first: Vec<_> = (0..n)
            .map(|_| io.request(Method::ALLOCATE, &[&transport, &lifetime], None))
            .collect::<Result<_>>()?;
        let challenges = io.transact_all(&sockets, &first);
        let mut creds: Vec<Option<(String, String)>> = Vec::with_capacity(n);
        for answer in &challenges {
            let parsed = answer.as_deref().and_then(|b| Message::parse(b).ok());
            let c = parsed.as_ref().and_then(|m| {
                let realm = m.get::<Realm>()?.ok()?.0.to_owned();
                let nonce = m.get::<Nonce>()?.ok()?.0.to_owned();
                Some((realm, nonce))
            });
            if c.is_none() {
                let why = match parsed.as_ref().map(error_code) {
                    None => "timeout".to_owned(),
                    Some(code) => format!("first answer {code:?}"),
                };
                *failures.entry(why).or_default() += 1;
            }
            creds.push(c);
        }
        // 2: Allocate with credentials (only for the sockets that were challenged).
        let keep: Vec<usize> = (0..n)
            .filter(|i| creds.get(*i).is_some_and(Option::is_some))
            .collect();
        let socks: Vec<UdpSocket> = {
            let mut all: Vec<Option<UdpSocket>> = sockets.into_iter().map(Some).collect();
            keep.iter()
                .filter_map(|i| all.get_mut(*i).and_then(Option::take))
                .collect()
        };
        let second: Vec<_> = keep
            .iter()
            .map(|i| {
                let (realm, nonce) = creds.get(*i).cloned().flatten().unwrap_or_default();
                io.request(
                    Method::ALLOCATE,
                    &[&transport, &lifetime],
                    Some((&realm, &nonce)),
                )
            })
            .collect::<Result<_>>()?;
        let answers = io.transact_all(&socks, &second);
        for ((s, i), answer) in socks.iter().zip(&keep).zip(&answers) {
            let parsed = answer.as_deref().and_then(|b| Message::parse(b).ok());
            match parsed
                .as_ref()
                .map(|m| (error_code(m), m.get::<XorRelayedAddress>()))
            {
                Some((None, Some(Ok(XorRelayedAddress(r))))) => {
                    relayed.insert(r);
                    let (realm, nonce) = creds.get(*i).cloned().flatten().unwrap_or_default();
                    held.push(Held {
                        local: s.local_addr()?,
                        realm,
                        nonce,
                    });
                }
                Some((code, _)) => {
                    *failures.entry(format!("Allocate {code:?}")).or_default() += 1;
                }
                None => *failures.entry("timeout".to_owned()).or_default() += 1,
            }
        }
        made += n;
        note_rss(&mut peak);
        // The batch's sockets close here; the allocations stay.
    }
    report.setup_seconds = started.elapsed().as_secs_f64();
    report.allocated = held.len();
    report.failed = args.allocations - held.len();
    report.allocations_per_second = held.len() as f64 / report.setup_seconds.max(1e-9);
    report.distinct_relayed_addresses = relayed.len();
    report.rss_kib_after_setup = note_rss(&mut peak);
    eprintln!(
        "held {} allocations ({} failed) in {:.1} s on {} relayed address(es); server RSS {:?} KiB",
        report.allocated,
        report.failed,
        report.setup_seconds,
        relayed.len(),
        report.rss_kib_after_setup
    );

    // Hold, refreshing every `refresh_every` (or once at the end).
    let hold = Duration::from_secs_f64(args.hold.max(0.0));
    let every = (args.refresh_every > 0.0).then(|| Duration::from_secs_f64(args.refresh_every));
    let hold_start = Instant::now();
    let mut next_refresh = every.map(|e| hold_start + e);
    loop {
        let now = Instant::now();
        if now >= hold_start + hold {
            break;
        }
        if next_refresh.is_some_and(|t| now >= t) {
            refresh_all(&mut io, &mut held, args.lifetime, &mut report, args.open)?;
            next_refresh = every.map(|e| Instant::now() + e);
        }
        note_rss(&mut peak);
        std::thread::sleep(Duration::from_millis(250).min(hold_start + hold - now));
    }
    if every.is_none() && !held.is_empty() {
        refresh_all(&mut io, &mut held, args.lifetime, &mut report, args.open)?;
    }
    note_rss(&mut peak);
    eprintln!(
        "refreshed {} ({} failed) in {} round(s); server RSS peak {:?} KiB",
        report.refreshed, report.refresh_failed, report.refresh_rounds, peak
    );
    if args.release {
        let before = report.refreshed;
        refresh_all(&mut io, &mut held, 0, &mut report, args.open)?;
        report.released = report.refreshed - before;
        report.refresh_rounds -= 1;
        report.refreshed = before;
    }
    report.failures = failures.into_iter().collect();
    report.rss_kib_peak = peak;
    report.rss_kib_end = rss(pid);
    report.rss_bytes_per_allocation = match (report.rss_kib_before, peak) {
        (Some(b), Some(p)) if report.allocated > 0 => {
            Some(p.saturating_sub(b) as f64 * 1024.0 / report.allocated as f64)
        }
        _ => None,
    };
    Ok(report)
}

/// Refresh (LIFETIME `lifetime`; 0 deletes) every held allocation, binding
/// its local address again, a batch of `open` at a time; a 438 gets the
/// fresh nonce and one more try (RFC 8489 §9.2.5).
fn refresh_all(
    io: &mut Io,
    held: &mut [Held],
    lifetime: u32,
    report: &mut HoldReport,
    open: usize,
) -> Result<()> {
    report.refresh_rounds += 1;
    for chunk in held.chunks_mut(open.max(1)) {
        let mut socks = Vec::with_capacity(chunk.len());
        let mut idx = Vec::with_capacity(chunk.len());
        for (i, h) in chunk.iter().enumerate() {
            let SocketAddr::V4(local) = h.local else {
                continue;
            };
            match bind(*local.ip(), local.port()) {
                Ok(s) => {
                    socks.push(s);
                    idx.push(i);
                }
                Err(_) => report.refresh_failed += 1,
            }
        }
        let mut todo: Vec<usize> = (0..socks.len()).collect();
        for _attempt in 0..2 {
            let reqs: Vec<_> = todo
                .iter()
                .map(|k| {
                    let h = idx.get(*k).and_then(|i| chunk.get(*i));
                    let (realm, nonce) = h
                        .map(|h| (h.realm.as_str(), h.nonce.as_str()))
                        .unwrap_or(("", ""));
                    io.request(
                        Method::REFRESH,
                        &[&Lifetime(lifetime)],
                        Some((realm, nonce)),
                    )
                })
                .collect::<Result<_>>()?;
            let these: Vec<UdpSocket> = todo
                .iter()
                .filter_map(|k| socks.get(*k).and_then(|s| s.try_clone().ok()))
                .collect();
            let answers = io.transact_all(&these, &reqs);
            let mut again = Vec::new();
            for (k, answer) in todo.iter().zip(&answers) {
                let parsed = answer.as_deref().and_then(|b| Message::parse(b).ok());
                match parsed.as_ref().map(error_code) {
                    Some(None) => report.refreshed += 1,
                    Some(Some(438)) => {
                        if let (Some(m), Some(h)) =
                            (parsed.as_ref(), idx.get(*k).and_then(|i| chunk.get_mut(*i)))
                        {
                            if let Some(Ok(Nonce(n))) = m.get::<Nonce>() {
                                h.nonce = n.to_owned();
                            }
                        }
                        again.push(*k);
                    }
                    _ => report.refresh_failed += 1,
                }
            }
            if again.is_empty() {
                break;
            }
            todo = again;
        }
    }
    Ok(())
}

impl HoldReport {
    pub fn table(&self) -> String {
        let kib = |v: Option<u64>| {
            v.map_or("-".to_owned(), |k| {
                format!("{k} KiB ({:.1} MiB)", k as f64 / 1024.0)
            })
        };
        let mut s = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(
            s,
            "  allocations held        {} of {} ({} failed: {:?})",
            self.allocated, self.requested, self.failed, self.failures
        );
        let _ = writeln!(
            s,
            "  setup                   {:.1} s ({:.0} allocations/s)",
            self.setup_seconds, self.allocations_per_second
        );
        let _ = writeln!(
            s,
            "  relayed addresses       {}",
            self.distinct_relayed_addresses
        );
        let _ = writeln!(
            s,
            "  refreshes               {} ok, {} failed, {} round(s); released {}",
            self.refreshed, self.refresh_failed, self.refresh_rounds, self.released
        );
        let _ = writeln!(s, "  server RSS before       {}", kib(self.rss_kib_before));
        let _ = writeln!(
            s,
            "  server RSS after setup  {}",
            kib(self.rss_kib_after_setup)
        );
        let _ = writeln!(s, "  server RSS peak         {}", kib(self.rss_kib_peak));
        let _ = writeln!(s, "  server RSS at the end   {}", kib(self.rss_kib_end));
        if let Some(b) = self.rss_bytes_per_allocation {
            let _ = writeln!(s, "  server RSS per allocation (peak − before) {b:.0} B");
        }
        s
    }
}
