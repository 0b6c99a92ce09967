//! What every loadgen datagram carries so that counts are exact: a magic
//! number, the flow it belongs to, its sequence number within the flow, the
//! send time, and whether it was sent inside the measured window.
//!
//! Binding requests carry the same facts in their 96-bit transaction id.

use ringturn::stun::TransactionId;

/// "RTLG".
pub const MAGIC: u32 = 0x5254_4c47;
/// magic (4) + flow (4) + seq (8) + sent_ns (8) + flags (1), padded to 28.
pub const HEADER_LEN: usize = 28;
pub const FLAG_MEASURED: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub flow: u32,
    pub seq: u64,
    /// Nanoseconds since the run's clock base (see `Clock`).
    pub sent_ns: u64,
    pub measured: bool,
}

/// Writes the stamp at the start of `out` and fills the rest up to `size`
/// bytes; returns `size`, or None when `out` is too short.
pub fn write(stamp: &Stamp, size: usize, out: &mut [u8]) -> Option<usize> {
    let size = size.max(HEADER_LEN);
    let buf = out.get_mut(..size)?;
    let (head, rest) = buf.split_at_mut(HEADER_LEN);
    head[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    head[4..8].copy_from_slice(&stamp.flow.to_be_bytes());
    head[8..16].copy_from_slice(&stamp.seq.to_be_bytes());
    head[16..24].copy_from_slice(&stamp.sent_ns.to_be_bytes());
    head[24] = if stamp.measured { FLAG_MEASURED } else { 0 };
    head[25..28].fill(0);
    // A cheap, non-constant filler so compression or dedup on the path cannot cheat.
    let mut x = (stamp.seq as u8) ^ 0x5a;
    for b in rest {
        *b = x;
        x = x.wrapping_add(1);
    }
    Some(size)
}

/// Reads a stamp from a received payload; None for anything that is not ours.
pub fn read(data: &[u8]) -> Option<Stamp> {
    let head = data.get(..HEADER_LEN)?;
    let magic = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?);
    if magic != MAGIC {
        return None;
    }
    Some(Stamp {
        flow: u32::from_be_bytes(head.get(4..8)?.try_into().ok()?),
        seq: u64::from_be_bytes(head.get(8..16)?.try_into().ok()?),
        sent_ns: u64::from_be_bytes(head.get(16..24)?.try_into().ok()?),
        measured: head.get(24).is_some_and(|f| f & FLAG_MEASURED != 0),
    })
}

/// A transaction id carrying flow (24 bits), flags (8), seq (32) and the send
/// time in microseconds (low 32 bits; latency is taken modulo 2^32 µs ≈ 71 min).
pub fn binding_tid(stamp: &Stamp) -> TransactionId {
    let mut t = [0u8; 12];
    let flow = stamp.flow.to_be_bytes();
    t[0..3].copy_from_slice(&flow[1..4]);
    t[3] = if stamp.measured { FLAG_MEASURED } else { 0 } | 0x80;
    t[4..8].copy_from_slice(&(stamp.seq as u32).to_be_bytes());
    t[8..12].copy_from_slice(&((stamp.sent_ns / 1_000) as u32).to_be_bytes());
    TransactionId(t)
}

/// Reads a binding transaction id back; `now_ns` resolves the 32-bit time.
/// None when the id is not one of ours.
pub fn read_binding_tid(tid: &TransactionId, now_ns: u64) -> Option<Stamp> {
    let t = &tid.0;
    if t[3] & 0x80 == 0 {
        return None;
    }
    let flow = u32::from_be_bytes([0, t[0], t[1], t[2]]);
    let seq = u64::from(u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
    let sent_us_lo = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let now_us = now_ns / 1_000;
    let elapsed_us = (now_us as u32).wrapping_sub(sent_us_lo);
    let sent_ns = now_us.saturating_sub(u64::from(elapsed_us)) * 1_000;
    Some(Stamp {
        flow,
        seq,
        sent_ns,
        measured: t[3] & FLAG_MEASURED != 0,
    })
}

/// Monotonic nanoseconds since the run began (one clock for every thread).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Self {
            base: std::time::Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let s = Stamp {
            flow: 7,
            seq: 123_456_789,
            sent_ns: 42_000_000_123,
            measured: true,
        };
        let mut buf = [0u8; 200];
        assert_eq!(write(&s, 100, &mut buf), Some(100));
        assert_eq!(read(&buf[..100]), Some(s));
        assert_eq!(read(&buf[..20]), None, "too short");
        buf[0] ^= 1;
        assert_eq!(read(&buf[..100]), None, "not ours");
        assert_eq!(write(&s, 300, &mut buf), None, "does not fit");
    }

    #[test]
    fn binding_tids_round_trip() {
        let s = Stamp {
            flow: 0x00ab_cdef,
            seq: 99,
            sent_ns: 5_000_000_000,
            measured: false,
        };
        let tid = binding_tid(&s);
        let back = read_binding_tid(&tid, 5_000_250_000).unwrap();
        assert_eq!(back.flow, s.flow);
        assert_eq!(back.seq, 99);
        assert!(!back.measured);
        assert_eq!(5_000_250_000 - back.sent_ns, 250_000);
        assert_eq!(read_binding_tid(&TransactionId([0; 12]), 1), None);
    }
}
