//! UDP generic receive offload (UDP_GRO, Linux 5.0+) on receive.
//!
//! With `UDP_GRO` set on a socket, the kernel may hand over several
//! datagrams of one flow (same source, equal sizes, the last one possibly
//! shorter) as one "super-datagram", with a `UDP_GRO` control message giving
//! the segment size. One receive then carries up to [`GRO_MAX_SEGMENTS`]
//! datagrams: the kernel's per-datagram receive path and our per-datagram
//! completion (a CQE, a recvmmsg slot) run once per burst instead of once per
//! datagram. On a real NIC it coalesces a busy peer's packets in NAPI GRO; on
//! loopback a sender using GSO (UDP_SEGMENT) arrives coalesced.
//!
//! Splitting keeps the worker's contract: every datagram it sees has
//! `HEADROOM` free bytes before it and `TAILROOM` after it, and it may send any
//! of them zero copy (a range of the receive buffer) until the flush at the end
//! of the loop turn. Segments that arrive back to back cannot give that: the
//! TURN framing written in front of segment k would overwrite the end of
//! segment k-1, whose zero-copy send is still queued. So a coalesced receive
//! lands in a larger buffer and is *spread in place* before anything is
//! delivered ([`spread_segments`]): from the last segment down to the second,
//! each moves up by `k × (HEADROOM + TAILROOM)`, leaving a gap of exactly the
//! room the framing needs between neighbours. Segment 0 stays put. The whole
//! burst stays one buffer (one buffer id, one reference count in io_uring,
//! one slot in recvmmsg), so zero-copy sends from any of its segments stay
//! valid until the buffer is recycled after the flush, exactly as for a plain
//! datagram. The cost is one memmove per segment after the first (about
//! 20–40 ns for 1,200 bytes here; see benches/io_grouping.rs), against a
//! kernel receive path of well over a microsecond per datagram that GRO saves.
//! Copying segments 2..n into spare plain buffers would cost the same copy but
//! needs a free buffer per segment (and, in io_uring, buffers outside the
//! provided ring with their own lifetime tracking); spreading needs none.

use std::io;
use std::ops::Range;
use std::os::fd::RawFd;

use super::{HEADROOM, MAX_DATAGRAM, TAILROOM};

/// Linux `UDP_GRO` (include/uapi/linux/udp.h): the socket option and the cmsg type.
pub const UDP_GRO: libc::c_int = 104;
/// The largest coalesced receive: one IP datagram's payload.
pub const GRO_MAX_BYTES: usize = 65_535;
/// The most segments one coalesced receive may carry that we spread; the
/// kernel's GRO stops at 64 (UDP_GRO_CNT_MAX), a loopback GSO send at 128
/// (UDP_MAX_SEGMENTS on recent kernels).
pub const GRO_MAX_SEGMENTS: usize = 128;
/// Room between spread segments: the headroom of the next and the tailroom of this one.
pub const SEGMENT_GAP: usize = HEADROOM + TAILROOM;
/// Bytes a GRO receive buffer needs from the payload's first byte on, for the
/// spread layout of the largest burst (room for the TAILROOM of the last).
pub const GRO_SPREAD_LEN: usize = GRO_MAX_BYTES + GRO_MAX_SEGMENTS * SEGMENT_GAP;
/// A receive buffer for a GRO socket: HEADROOM, then the spread area.
pub const GRO_RECV_BUF_LEN: usize = HEADROOM + GRO_SPREAD_LEN;
/// Datagrams a loop turn may have to send per receive buffer once bursts
/// arrive (64 segments is the kernel's GRO limit): queues are reserved for
/// that many, so a full turn of bursts does not grow them.
pub const GRO_TYPICAL_SEGMENTS: usize = 64;
/// Control buffer for one UDP_GRO cmsg (CMSG_SPACE(4) is 24 on 64-bit Linux), 8-byte words.
pub const GRO_CMSG_WORDS: usize = 4;
pub const GRO_CMSG_LEN: usize = GRO_CMSG_WORDS * 8;

/// Asks the kernel to coalesce receives on `fd`. An error means the kernel
/// (or the socket type) refuses: the caller falls back for good.
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    set_gro(fd, true)
}

/// Turns coalescing off again (when the receive side cannot take bursts after all).
pub fn disable_gro(fd: RawFd) -> io::Result<()> {
    set_gro(fd, false)
}

fn set_gro(fd: RawFd, on: bool) -> io::Result<()> {
    let on = libc::c_int::from(on);
    // SAFETY: setsockopt with a pointer to a live c_int and its exact size.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The segment size from a receive's control messages (`control` is the
/// bytes the kernel wrote), if it coalesced datagrams. A safe walk over the
/// 64-bit Linux cmsghdr layout: `cmsg_len: usize, cmsg_level: i32,
/// cmsg_type: i32`, data at the next 8-byte boundary.
pub fn gro_segment_size(control: &[u8]) -> Option<usize> {
    const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
    const WORD: usize = std::mem::size_of::<usize>();
    let mut at = 0usize;
    while let Some(hdr) = control.get(at..at + HDR) {
        let len = usize::from_ne_bytes(hdr.get(..WORD)?.try_into().ok()?);
        let level = i32::from_ne_bytes(hdr.get(WORD..WORD + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(hdr.get(WORD + 4..WORD + 8)?.try_into().ok()?);
        if len < HDR {
            return None;
        }
        if level == libc::SOL_UDP && kind == UDP_GRO {
            let data = control.get(at + HDR..at + HDR + 4)?;
            let size = i32::from_ne_bytes(data.try_into().ok()?);
            return usize::try_from(size).ok().filter(|s| *s > 0);
        }
        at += len.next_multiple_of(WORD);
    }
    None
}

/// How a received buffer splits into datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// One datagram (no coalescing, or a burst of one).
    Single,
    /// `count` datagrams of `segment` bytes (the last possibly shorter).
    Segments { segment: usize, count: usize },
    /// Not deliverable: a datagram larger than any we relay, or a burst the buffer cannot spread.
    Drop,
}

/// Decides how `len` received bytes with segment size `segment` (from the
/// cmsg) split, for a buffer with `room` bytes from the payload's start.
pub fn plan_split(len: usize, segment: Option<usize>, room: usize) -> Split {
    match segment {
        Some(seg) if seg < len => {
            if seg > MAX_DATAGRAM {
                return Split::Drop;
            }
            let count = len.div_ceil(seg);
            if len + (count - 1) * SEGMENT_GAP + TAILROOM > room {
                return Split::Drop;
            }
            Split::Segments {
                segment: seg,
                count,
            }
        }
        _ if len > MAX_DATAGRAM => Split::Drop,
        _ => Split::Single,
    }
}

/// Spreads a coalesced receive lying at `buf[at..at + len]` (with HEADROOM
/// free before `at`) into segments of `segment` bytes, each followed by
/// `SEGMENT_GAP` bytes, and appends each segment's range in `buf` to `out`.
/// The caller checked the layout fits with [`plan_split`]; a buffer too short
/// makes this stop early (and deliver fewer segments), never panic.
pub fn spread_segments(
    buf: &mut [u8],
    at: usize,
    len: usize,
    segment: usize,
    out: &mut Vec<Range<usize>>,
) {
    if segment == 0 {
        return;
    }
    let count = len.div_ceil(segment);
    let first = out.len();
    // Last to second: each moves up, into room already vacated by the ones after it.
    for k in (1..count).rev() {
        let from = at + k * segment;
        let seg_len = segment.min(len - k * segment);
        let to = at + k * (segment + SEGMENT_GAP);
        if to + seg_len + TAILROOM > buf.len() {
            continue; // cannot happen after plan_split; skip rather than overrun
        }
        buf.copy_within(from..from + seg_len, to);
        out.push(to..to + seg_len);
    }
    out.push(at..at + segment.min(len));
    // Pushed last-to-first: put them in arrival order.
    if let Some(tail) = out.get_mut(first..) {
        tail.reverse();
    }
}

/// Hands one received buffer to `deliver` as the datagrams it holds: whole,
/// or — a coalesced GRO receive — segment by segment once spread apart, each
/// view cut after its segment's tailroom so `deliver` cannot reach the next
/// segment. The one loop both backends share. `false`: dropped (a datagram
/// larger than any we relay, or a malformed burst).
pub fn deliver_segments(
    buf: &mut [u8],
    prefix: usize,
    len: usize,
    segment: Option<usize>,
    ranges: &mut Vec<Range<usize>>,
    counters: &mut super::BackendCounters,
    mut deliver: impl FnMut(&mut [u8], Range<usize>),
) -> bool {
    match plan_split(len, segment, buf.len().saturating_sub(prefix)) {
        Split::Single => deliver(buf, prefix..prefix + len),
        Split::Segments { segment, .. } => {
            ranges.clear();
            spread_segments(buf, prefix, len, segment, ranges);
            counters.gro_receives += 1;
            counters.gro_segments += ranges.len() as u64;
            for payload in ranges.drain(..) {
                let end = (payload.end + TAILROOM).min(buf.len());
                if let Some(view) = buf.get_mut(..end) {
                    deliver(view, payload);
                }
            }
        }
        Split::Drop => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_segments_with_room_between_them() {
        let seg = 100;
        let len = 3 * seg + 37;
        let mut buf = vec![0u8; HEADROOM + GRO_SPREAD_LEN];
        for (i, b) in buf[HEADROOM..HEADROOM + len].iter_mut().enumerate() {
            *b = (i / seg) as u8 + 1;
        }
        assert_eq!(
            plan_split(len, Some(seg), GRO_SPREAD_LEN),
            Split::Segments {
                segment: seg,
                count: 4
            }
        );
        let mut out = Vec::new();
        spread_segments(&mut buf, HEADROOM, len, seg, &mut out);
        assert_eq!(out.len(), 4);
        for (k, r) in out.iter().enumerate() {
            assert!(
                buf[r.clone()].iter().all(|b| *b == k as u8 + 1),
                "segment {k}"
            );
            assert_eq!(r.len(), if k == 3 { 37 } else { seg });
            if let Some(next) = out.get(k + 1) {
                assert!(r.end + TAILROOM + HEADROOM <= next.start);
            }
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan_split(1200, None, GRO_SPREAD_LEN), Split::Single);
        assert_eq!(plan_split(1200, Some(1200), GRO_SPREAD_LEN), Split::Single);
        assert_eq!(plan_split(4000, None, GRO_SPREAD_LEN), Split::Drop);
        assert_eq!(plan_split(6000, Some(3000), GRO_SPREAD_LEN), Split::Drop);
        assert_eq!(plan_split(2400, Some(1200), 2400), Split::Drop);
    }

    #[test]
    fn finds_the_segment_size_in_control_bytes() {
        let mut c = [0u8; 32];
        c[..8].copy_from_slice(&20usize.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::SOL_UDP.to_ne_bytes());
        c[12..16].copy_from_slice(&UDP_GRO.to_ne_bytes());
        c[16..20].copy_from_slice(&1200i32.to_ne_bytes());
        assert_eq!(gro_segment_size(&c[..24]), Some(1200));
        assert_eq!(gro_segment_size(&c[..16]), None);
        assert_eq!(gro_segment_size(&[]), None);
        c[12..16].copy_from_slice(&1i32.to_ne_bytes());
        assert_eq!(gro_segment_size(&c[..24]), None);
    }
}
