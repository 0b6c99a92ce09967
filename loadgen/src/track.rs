//! Exact per-flow accounting: every sequence number seen is remembered in a
//! bitmap, so duplicates and reordering are counted exactly, and what was
//! sent but never seen is lost.

use hdrhistogram::Histogram;
use serde::Serialize;

/// What a receiver saw of one flow.
#[derive(Debug, Default, Clone)]
pub struct FlowRx {
    seen: Vec<u64>,
    highest: Option<u64>,
    /// Distinct packets received (warm-up included).
    pub unique_all: u64,
    /// Distinct packets received that were sent in the measured window.
    pub unique_measured: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// What happened to one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    First,
    Duplicate,
}

/// Sequence numbers above this are refused (a corrupt or foreign packet
/// must not make the bitmap huge): 2^34 bits = 2 GiB would be absurd anyway.
pub const MAX_SEQ: u64 = 1 << 32;

impl FlowRx {
    pub fn record(&mut self, seq: u64, measured: bool) -> Option<Seen> {
        if seq >= MAX_SEQ {
            return None;
        }
        let word = usize::try_from(seq / 64).ok()?;
        let bit = 1u64 << (seq % 64);
        if word >= self.seen.len() {
            // Grow geometrically: amortised O(1) per packet.
            let want = (word + 1).max(self.seen.len() * 2).max(16);
            self.seen.resize(want, 0);
        }
        let slot = self.seen.get_mut(word)?;
        if *slot & bit != 0 {
            if measured {
                self.duplicated += 1;
            }
            return Some(Seen::Duplicate);
        }
        *slot |= bit;
        self.unique_all += 1;
        if measured {
            self.unique_measured += 1;
        }
        match self.highest {
            Some(h) if seq < h => {
                if measured {
                    self.reordered += 1;
                }
            }
            _ => self.highest = Some(seq),
        }
        Some(Seen::First)
    }
}

/// Counters one worker thread keeps; summed over threads at the end.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    /// Payloads (or requests) sent inside the measured window.
    pub sent: u64,
    /// Distinct measured payloads (or responses) received.
    pub received: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Everything sent, warm-up included.
    pub sent_all: u64,
    pub received_all: u64,
    /// Datagrams we could not attribute to a flow (not ours, wrong flow, garbage).
    pub foreign: u64,
    /// sendmmsg stopped short (socket buffer full) or failed.
    pub send_blocked: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Paced sends that fell more than three intervals behind (generator overloaded).
    pub late: u64,
    /// Datagrams the echo peers bounced back.
    pub echoed: u64,
    /// Bytes of measured payload sent.
    pub bytes_sent: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.received += o.received;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.sent_all += o.sent_all;
        self.received_all += o.received_all;
        self.foreign += o.foreign;
        self.send_blocked += o.send_blocked;
        self.send_errors += o.send_errors;
        self.recv_errors += o.recv_errors;
        self.late += o.late;
        self.echoed += o.echoed;
        self.bytes_sent += o.bytes_sent;
    }
}

/// Latency in nanoseconds, 1 ns .. 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Fixed, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Per-interval send/receive counts from the start of warm-up.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub interval_ns: u64,
    pub origin_ns: u64,
    pub sent: Vec<u64>,
    pub received: Vec<u64>,
    /// Bounded: a run never records more than this many intervals.
    pub max_points: usize,
}

impl Timeline {
    pub fn new(origin_ns: u64, interval_ns: u64, max_points: usize) -> Self {
        Self {
            interval_ns: interval_ns.max(1),
            origin_ns,
            sent: Vec::new(),
            received: Vec::new(),
            max_points,
        }
    }

    fn slot(&self, now_ns: u64) -> Option<usize> {
        let i =
            usize::try_from(now_ns.checked_sub(self.origin_ns)? / self.interval_ns.max(1)).ok()?;
        (i < self.max_points).then_some(i)
    }

    pub fn add_sent(&mut self, now_ns: u64, n: u64) {
        if let Some(i) = self.slot(now_ns) {
            if self.sent.len() <= i {
                self.sent.resize(i + 1, 0);
            }
            if let Some(s) = self.sent.get_mut(i) {
                *s += n;
            }
        }
    }

    pub fn add_received(&mut self, now_ns: u64, n: u64) {
        if let Some(i) = self.slot(now_ns) {
            if self.received.len() <= i {
                self.received.resize(i + 1, 0);
            }
            if let Some(s) = self.received.get_mut(i) {
                *s += n;
            }
        }
    }

    pub fn merge(&mut self, o: &Timeline) {
        for (series, other) in [(&mut self.sent, &o.sent), (&mut self.received, &o.received)] {
            if series.len() < other.len() {
                series.resize(other.len(), 0);
            }
            for (a, b) in series.iter_mut().zip(other) {
                *a += b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_and_reordering_exactly() {
        let mut f = FlowRx::default();
        for seq in [0, 1, 3, 2, 2, 5, 4, 1000] {
            f.record(seq, true);
        }
        assert_eq!(f.unique_measured, 7);
        assert_eq!(f.duplicated, 1);
        assert_eq!(f.reordered, 2, "2 after 3, 4 after 5");
        assert_eq!(f.record(MAX_SEQ, true), None);
        // Warm-up packets are remembered but not counted.
        let mut w = FlowRx::default();
        w.record(0, false);
        w.record(0, false);
        assert_eq!((w.unique_all, w.unique_measured, w.duplicated), (1, 0, 0));
    }

    #[test]
    fn timeline_buckets_and_bounds() {
        let mut t = Timeline::new(1_000, 100, 3);
        t.add_sent(1_050, 2);
        t.add_sent(1_250, 1);
        t.add_sent(5_000, 1);
        t.add_received(500, 1);
        assert_eq!(t.sent, vec![2, 0, 1]);
        assert!(t.received.is_empty());
    }
}
