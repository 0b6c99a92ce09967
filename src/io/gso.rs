//! Batched UDP sends with generic segmentation offload (UDP_SEGMENT, Linux 4.18+).
//!
//! Within one flush, datagrams for the same socket and destination whose
//! sizes match are sent as one GSO "super-datagram": the kernel's send path
//! runs once and splits it into segments at the end. That path is what costs
//! most per packet here, so fewer trips through it is the win. The rest go out
//! as plain messages, all in as few sendmmsg calls as possible. When the
//! kernel or device refuses GSO (EIO, EINVAL, EOPNOTSUPP) the backend stops
//! trying for good (sticky) and resends that run segment by segment.

use std::hash::BuildHasher;
use std::io;
use std::os::fd::RawFd;

use super::sockaddr::{storage_bytes, RawAddr};

/// Linux `UDP_SEGMENT` (include/uapi/linux/udp.h); not exported by libc for glibc targets.
const UDP_SEGMENT: libc::c_int = 103;
/// Segments per GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or 128).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// A GSO send is one IP datagram before segmentation.
const MAX_GSO_BYTES: usize = 65_000;
/// Messages per sendmmsg call.
const MMSG_BATCH: usize = 64;
/// Room for one cmsghdr carrying a u16, 8-byte aligned (CMSG_SPACE(2) is 24 on 64-bit Linux).
const CMSG_BUF: usize = 32;

/// What a flush did, for counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams that could not be sent (buffer full, unreachable): UDP loss.
    pub dropped: u64,
    /// GSO sends made, and the datagrams they carried.
    pub gso_sends: u64,
    pub gso_segments: u64,
    /// Times the kernel refused GSO (each also turns it off).
    pub gso_fallbacks: u64,
}

/// One datagram to send: where, and where its bytes are. The bytes must stay
/// put until `send_all` returns (they are receive buffers or owned payloads of
/// the caller's queue).
#[derive(Clone, Copy)]
pub struct Datagram {
    pub to: RawAddr,
    pub ptr: *const u8,
    pub len: usize,
}

impl Datagram {
    pub fn new(to: RawAddr, bytes: &[u8]) -> Self {
        Self {
            to,
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// A run of `count` datagrams starting at `first`, all to one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: usize,
    pub count: usize,
    pub segment: usize,
}

/// 8-byte words of a control buffer for one UDP_SEGMENT cmsg.
pub(crate) const CMSG_WORDS: usize = CMSG_BUF / 8;

/// Buffers reused from flush to flush, so sending allocates nothing once warm.
#[derive(Default)]
pub struct Scratch {
    runs: Vec<Run>,
    plan: PlanScratch,
    iovecs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; CMSG_WORDS]>,
    msgs: Vec<libc::mmsghdr>,
}

impl Scratch {
    /// Makes room for flushes of up to `datagrams` datagrams, so that even the
    /// largest flush allocates nothing (called once, when receives may burst).
    pub fn reserve(&mut self, datagrams: usize) {
        self.runs.reserve(datagrams);
        self.iovecs.reserve(datagrams);
        self.cmsgs.reserve(datagrams);
        self.msgs.reserve(datagrams);
        self.plan.keys.reserve(datagrams);
        self.plan.sorted.reserve(datagrams);
    }
}

/// What `plan_flush` reuses from flush to flush.
#[derive(Default)]
pub struct PlanScratch {
    /// (destination key, position), sorted instead of the datagrams themselves.
    keys: Vec<(u64, u32)>,
    sorted: Vec<Datagram>,
}

fn same_destination(a: &RawAddr, b: &RawAddr) -> bool {
    storage_bytes(&a.storage, a.len) == storage_bytes(&b.storage, b.len)
}

/// Splits `count` datagrams (all for one socket, sorted so each destination's
/// are together, in order; `entry(i)` gives the i-th destination and length)
/// into runs: one destination, equal sizes (the last of a run may be
/// shorter), at most MAX_SEGMENTS and MAX_GSO_BYTES. Appends to `runs`.
pub fn plan_runs<'a>(
    count: usize,
    entry: impl Fn(usize) -> (&'a RawAddr, usize),
    gso: bool,
    runs: &mut Vec<Run>,
) {
    let mut i = 0;
    while i < count {
        let (to, segment) = entry(i);
        let mut n = 1;
        let mut total = segment;
        if gso && segment > 0 {
            while i + n < count {
                let (next_to, len) = entry(i + n);
                let fits = n < MAX_SEGMENTS && total + len <= MAX_GSO_BYTES;
                if !fits || !same_destination(to, next_to) || len > segment || len == 0 {
                    break;
                }
                n += 1;
                total += len;
                if len < segment {
                    break; // a shorter segment can only be the last
                }
            }
        }
        runs.push(Run {
            first: i,
            count: n,
            segment,
        });
        i += n;
    }
}

/// The cmsg that asks for segmentation into `segment`-byte datagrams, and its length.
pub(crate) fn segment_cmsg(buf: &mut [u64; CMSG_WORDS], segment: u16) -> usize {
    write_segment_cmsg(buf, segment);
    // SAFETY: CMSG_SPACE only computes a size.
    #[allow(unsafe_code)]
    let space = unsafe { libc::CMSG_SPACE(2) } as usize;
    space
}

/// Whether a failed GSO send means the kernel or device cannot segment.
pub(crate) fn is_gso_refusal(errno: i32) -> bool {
    matches!(errno, libc::EIO | libc::EINVAL | libc::EOPNOTSUPP)
}

/// Sends `datagrams` on `fd`. `gso_enabled` is cleared for good if the kernel refuses GSO.
pub fn send_all(
    fd: RawFd,
    datagrams: &mut [Datagram],
    gso_enabled: &mut bool,
    scratch: &mut Scratch,
) -> SendReport {
    let mut report = SendReport::default();
    let mut runs = std::mem::take(&mut scratch.runs);
    plan_flush(datagrams, *gso_enabled, &mut runs, &mut scratch.plan);
    for chunk in runs.chunks(MMSG_BATCH) {
        send_chunk(fd, datagrams, chunk, gso_enabled, &mut report, scratch);
    }
    scratch.runs = runs;
    report
}

/// Orders one socket's datagrams by destination (each destination keeping
/// its order) and plans its runs into `runs` (cleared first): the pure part
/// of `send_all`, no syscalls.
pub fn plan_flush(
    datagrams: &mut [Datagram],
    gso: bool,
    runs: &mut Vec<Run>,
    plan: &mut PlanScratch,
) {
    group_by_destination(datagrams, plan);
    runs.clear();
    plan_runs(
        datagrams.len(),
        |i| datagrams.get(i).map_or((&EMPTY, 0), |d| (&d.to, d.len)),
        gso,
        runs,
    );
}

/// Brings each destination's datagrams together, each keeping its order.
///
/// A `Datagram` is ~150 bytes (its sockaddr_storage), so sorting the
/// datagrams themselves moves a lot of memory (and a stable `sort_by`
/// allocates a merge buffer). Instead: one destination (the common case: a
/// relay socket's one peer) needs nothing; otherwise sort 12-byte
/// (destination hash, position) keys in place and permute once. Equal hashes
/// of different destinations only interleave them, which `plan_runs` (it
/// compares the addresses) turns into shorter runs, never wrong ones.
fn group_by_destination(datagrams: &mut [Datagram], plan: &mut PlanScratch) {
    let Some(first) = datagrams.first() else {
        return;
    };
    let first = storage_bytes(&first.to.storage, first.to.len);
    if datagrams
        .iter()
        .all(|d| storage_bytes(&d.to.storage, d.to.len) == first)
    {
        return;
    }
    let hasher = foldhash::fast::FixedState::with_seed(0x5eed);
    plan.keys.clear();
    plan.keys.extend(datagrams.iter().enumerate().map(|(i, d)| {
        let key = hasher.hash_one(storage_bytes(&d.to.storage, d.to.len));
        (key, i as u32)
    }));
    plan.keys.sort_unstable();
    plan.sorted.clear();
    plan.sorted.extend(
        plan.keys
            .iter()
            .filter_map(|&(_, i)| datagrams.get(i as usize).copied()),
    );
    if plan.sorted.len() == datagrams.len() {
        datagrams.copy_from_slice(&plan.sorted);
    }
}

/// A placeholder for out-of-range lookups (never sent).
static EMPTY: RawAddr = RawAddr::zeroed();

fn send_chunk(
    fd: RawFd,
    datagrams: &mut [Datagram],
    chunk: &[Run],
    gso_enabled: &mut bool,
    report: &mut SendReport,
    scratch: &mut Scratch,
) {
    let Scratch {
        iovecs,
        cmsgs,
        msgs,
        ..
    } = scratch;
    iovecs.clear();
    cmsgs.clear();
    msgs.clear();
    for m in chunk {
        for d in datagrams.iter().skip(m.first).take(m.count) {
            iovecs.push(libc::iovec {
                iov_base: d.ptr as *mut libc::c_void,
                iov_len: d.len,
            });
        }
        cmsgs.push([0u64; CMSG_WORDS]);
        // SAFETY: mmsghdr is plain old data (null pointers, zero lengths); all-zero is valid.
        #[allow(unsafe_code)]
        msgs.push(unsafe { std::mem::zeroed() });
    }
    // The vectors are complete: pointers into them stay valid until the next clear.
    let mut iov_at = 0;
    for ((m, msg), cmsg) in chunk.iter().zip(msgs.iter_mut()).zip(cmsgs.iter_mut()) {
        let Some(d) = datagrams.get_mut(m.first) else {
            continue;
        };
        msg.msg_hdr.msg_name = (&mut d.to.storage as *mut libc::sockaddr_storage).cast();
        msg.msg_hdr.msg_namelen = d.to.len;
        msg.msg_hdr.msg_iov = iovecs.as_mut_ptr().wrapping_add(iov_at);
        msg.msg_hdr.msg_iovlen = m.count;
        iov_at += m.count;
        if m.count > 1 {
            msg.msg_hdr.msg_controllen = segment_cmsg(cmsg, m.segment as u16);
            msg.msg_hdr.msg_control = cmsg.as_mut_ptr().cast();
        }
    }
    let mut sent = 0;
    while sent < msgs.len() {
        let rest = msgs.get_mut(sent..).unwrap_or(&mut []);
        // SAFETY: every mmsghdr points at iovecs, payloads, addresses and control
        // buffers owned by `scratch` or `datagrams` (whose bytes the caller keeps
        // in place), alive for the whole call; the kernel only reads them.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::sendmmsg(
                fd,
                rest.as_mut_ptr(),
                rest.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            for m in chunk.iter().skip(sent).take(n as usize) {
                if m.count > 1 {
                    report.gso_sends += 1;
                    report.gso_segments += m.count as u64;
                }
            }
            sent += n as usize;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        let Some(m) = chunk.get(sent) else { break };
        if m.count > 1 && e.raw_os_error().is_some_and(is_gso_refusal) {
            // The kernel or device cannot segment: stop using GSO, send this run one by one.
            *gso_enabled = false;
            report.gso_fallbacks += 1;
            for d in datagrams.iter_mut().skip(m.first).take(m.count) {
                if !send_one(fd, d) {
                    report.dropped += 1;
                }
            }
        } else {
            // Buffer full, unreachable peer (ICMP), bad address: this message is lost.
            report.dropped += m.count as u64;
        }
        sent += 1;
    }
}

fn write_segment_cmsg(buf: &mut [u64; CMSG_WORDS], segment: u16) {
    let base = buf.as_mut_ptr().cast::<libc::cmsghdr>();
    // SAFETY: `buf` is 32 bytes, 8-byte aligned: room for a cmsghdr (16 bytes)
    // and its u16 payload at CMSG_DATA; CMSG_LEN only computes a size.
    #[allow(unsafe_code)]
    unsafe {
        (*base).cmsg_level = libc::SOL_UDP;
        (*base).cmsg_type = UDP_SEGMENT;
        (*base).cmsg_len = libc::CMSG_LEN(2) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(base).cast::<u16>(), segment);
    }
}

fn send_one(fd: RawFd, d: &mut Datagram) -> bool {
    // SAFETY: a valid buffer and sockaddr of the stated lengths for the call.
    #[allow(unsafe_code)]
    let n = unsafe {
        libc::sendto(
            fd,
            d.ptr.cast(),
            d.len,
            libc::MSG_DONTWAIT,
            (&d.to.storage as *const libc::sockaddr_storage).cast(),
            d.to.len,
        )
    };
    n >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(to: &str, len: usize) -> (RawAddr, Vec<u8>) {
        (RawAddr::from_std(to.parse().unwrap()), vec![7u8; len])
    }

    #[test]
    fn runs_group_equal_sizes_to_one_destination() {
        let owned = [
            d("127.0.0.1:1", 100),
            d("127.0.0.1:1", 100),
            d("127.0.0.1:1", 60),
            d("127.0.0.1:1", 100),
            d("127.0.0.1:2", 100),
        ];
        let list: Vec<Datagram> = owned.iter().map(|(to, b)| Datagram::new(*to, b)).collect();
        let plan = |gso| {
            let mut runs = Vec::new();
            plan_runs(list.len(), |i| (&list[i].to, list[i].len), gso, &mut runs);
            runs
        };
        let shape: Vec<(usize, usize)> = plan(true).iter().map(|m| (m.count, m.segment)).collect();
        // 100,100,60 (a shorter last segment ends a run), then 100, then the other destination.
        assert_eq!(shape, vec![(3, 100), (1, 100), (1, 100)]);
        assert!(plan(false).iter().all(|m| m.count == 1));
    }

    #[test]
    fn flush_groups_interleaved_destinations_keeping_their_order() {
        // Three destinations, interleaved as flows arrive; byte i marks position i.
        let bytes: Vec<Vec<u8>> = (0..30u8).map(|i| vec![i; 100]).collect();
        let dests = ["127.0.0.1:1", "127.0.0.1:2", "[::1]:3"];
        let mut list: Vec<Datagram> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| Datagram::new(RawAddr::from_std(dests[i % 3].parse().unwrap()), b))
            .collect();
        let (mut runs, mut plan) = (Vec::new(), PlanScratch::default());
        plan_flush(&mut list, true, &mut runs, &mut plan);
        assert_eq!(runs.len(), 3, "one run per destination");
        for run in &runs {
            let firsts: Vec<usize> = list[run.first..run.first + run.count]
                .iter()
                .filter_map(|d| bytes.iter().position(|b| b.as_ptr() == d.ptr))
                .collect();
            assert_eq!(firsts.len(), 10);
            assert!(firsts.windows(2).all(|w| w[0] + 3 == w[1]), "{firsts:?}");
        }
    }
}
