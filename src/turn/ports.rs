//! The relay port pool of one shard (RFC 8656 §7.2: ports chosen at random,
//! EVEN-PORT asks for an even one, optionally reserving the next).

use std::collections::BTreeSet;

/// A tiny deterministic generator (xorshift64*): the core takes no randomness
/// from the OS, so tests are repeatable; the I/O layer seeds it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Debug, Clone)]
pub struct PortPool {
    free: BTreeSet<u16>,
    min: u16,
    max: u16,
}

impl PortPool {
    /// Every `stride`-th port of `min..=max` starting at `min + offset`: each
    /// shard gets a disjoint share of the range.
    pub fn new(min: u16, max: u16, offset: u16, stride: u16) -> Self {
        let stride = usize::from(stride.max(1));
        let free = (min..=max)
            .skip(usize::from(offset))
            .step_by(stride)
            .collect();
        Self { free, min, max }
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    fn random_start(&self, rng: &mut Rng) -> u16 {
        let span = u64::from(self.max - self.min) + 1;
        self.min + (rng.next_u64() % span) as u16
    }

    /// A random free port.
    pub fn take_any(&mut self, rng: &mut Rng) -> Option<u16> {
        let start = self.random_start(rng);
        let port = self
            .free
            .range(start..)
            .next()
            .or_else(|| self.free.iter().next())
            .copied()?;
        self.free.remove(&port);
        Some(port)
    }

    /// A random free even port; with `with_next`, port+1 must be free too and
    /// is taken as well (RFC 8656 §7.2, EVEN-PORT with the R bit).
    pub fn take_even(&mut self, rng: &mut Rng, with_next: bool) -> Option<u16> {
        let start = self.random_start(rng);
        let ok =
            |p: &u16| p % 2 == 0 && (!with_next || (*p < u16::MAX && self.free.contains(&(p + 1))));
        let port = self
            .free
            .range(start..)
            .find(|p| ok(p))
            .or_else(|| self.free.range(..start).find(|p| ok(p)))
            .copied()?;
        self.free.remove(&port);
        if with_next {
            self.free.remove(&(port + 1));
        }
        Some(port)
    }

    pub fn release(&mut self, port: u16) {
        if (self.min..=self.max).contains(&port) {
            self.free.insert(port);
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn shards_get_disjoint_ports() {
        let a = PortPool::new(50000, 50009, 0, 2);
        let b = PortPool::new(50000, 50009, 1, 2);
        assert_eq!(a.available(), 5);
        assert!(a.free.iter().all(|p| !b.free.contains(p)));
    }

    #[test]
    fn rfc8656_7_2_even_port_with_reservation() {
        let mut pool = PortPool::new(50000, 50003, 0, 1);
        let mut rng = Rng::new(3);
        let p = pool.take_even(&mut rng, true).unwrap_or(0);
        assert_eq!(p % 2, 0);
        assert!(!pool.free.contains(&(p + 1)));
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn pool_runs_dry_and_refills() {
        let mut pool = PortPool::new(50000, 50001, 0, 1);
        let mut rng = Rng::new(1);
        let a = pool.take_any(&mut rng);
        let b = pool.take_any(&mut rng);
        assert!(a.is_some() && b.is_some() && a != b);
        assert_eq!(pool.take_any(&mut rng), None);
        pool.release(50000);
        assert_eq!(pool.take_any(&mut rng), Some(50000));
    }
}
