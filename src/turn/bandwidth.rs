//! coturn's `max-bps` (per allocation) and `bps-capacity` (the whole server),
//! in bytes per second, each direction on its own as coturn counts them:
//! token buckets on the socket path (issue 12). A datagram that finds too few
//! tokens is dropped, as a congested link would; a bucket holds at most one
//! second of its rate, so a flow may burst that much after a pause.

use std::time::Instant;

/// A token bucket of `rate` bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// Full: one second of `rate`.
    pub fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes `bytes` if the bucket holds them (true), refilled for the time
    /// since the last call first.
    #[inline]
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        let add = elapsed.as_nanos().saturating_mul(u128::from(self.rate)) / 1_000_000_000;
        if add > 0 {
            self.tokens = self
                .tokens
                .saturating_add(u64::try_from(add).unwrap_or(u64::MAX))
                .min(self.rate);
            self.last = now;
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

impl TokenBucket {
    /// Charges `bytes` already sent (by the kernel fast path): true if the
    /// bucket held them; false empties it (the sender is over its rate).
    pub fn charge(&mut self, bytes: u64, now: Instant) -> bool {
        let within = self.take(usize::try_from(bytes).unwrap_or(usize::MAX), now);
        if !within {
            self.tokens = 0;
        }
        within
    }
}

/// One bucket per direction.
#[derive(Debug, Clone, Copy)]
pub struct DuplexLimit {
    pub to_peer: TokenBucket,
    pub to_client: TokenBucket,
}

impl DuplexLimit {
    pub fn new(rate: u64, now: Instant) -> Self {
        Self {
            to_peer: TokenBucket::new(rate, now),
            to_client: TokenBucket::new(rate, now),
        }
    }
}

/// What an allocation relayed on the socket path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client → peer.
    pub sent_packets: u64,
    pub sent_bytes: u64,
    /// Peer → client.
    pub received_packets: u64,
    pub received_bytes: u64,
}

impl Traffic {
    #[inline]
    pub fn to_peer(&mut self, bytes: usize) {
        self.sent_packets += 1;
        self.sent_bytes += bytes as u64;
    }

    #[inline]
    pub fn to_client(&mut self, bytes: usize) {
        self.received_packets += 1;
        self.received_bytes += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Over ten simulated seconds at twice the rate, about half goes through:
    /// the rate plus the one-second burst.
    #[test]
    fn passes_the_rate_and_one_second_of_burst() {
        let t0 = Instant::now();
        let rate = 10_000u64;
        let mut b = TokenBucket::new(rate, t0);
        let mut passed = 0u64;
        // 200 datagrams of 100 bytes a second = 20 kB/s offered.
        for i in 0..2000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 5);
            if b.take(100, now) {
                passed += 100;
            }
        }
        let expected = rate * 10 + rate;
        assert!(
            passed <= expected && passed + 200 >= expected,
            "{passed} bytes passed, {expected} allowed"
        );
    }

    #[test]
    fn refills_after_a_pause_but_not_beyond_one_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.take(1000, t0));
        assert!(!b.take(1, t0));
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(1000, later));
        assert!(!b.take(1, later), "a minute's pause buys one second");
    }
}
