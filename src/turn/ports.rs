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

/// Which of `shards` owns relay port `port` of a range starting at `min`.
pub fn shard_of_port(port: u16, min: u16, shards: u16) -> usize {
    usize::from((port / 2).wrapping_sub(min / 2) % shards.max(1))
}

#[derive(Debug, Clone)]
pub struct PortPool {
    free: BTreeSet<u16>,
    min: u16,
    max: u16,
    shard: u16,
    shards: u16,
}

impl PortPool {
    /// This shard's share of `min..=max`: ports are dealt to shards in
    /// even/odd pairs (2k, 2k+1), so EVEN-PORT with the R bit can be served
    /// within one shard. `shard_of_port` is the same rule.
    pub fn new(min: u16, max: u16, offset: u16, stride: u16) -> Self {
        let free = (min..=max)
            .filter(|p| shard_of_port(*p, min, stride) == usize::from(offset))
            .collect();
        Self {
            free,
            min,
            max,
            shard: offset,
            shards: stride,
        }
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
        let ok = |p: &u16| {
            p.is_multiple_of(2) && (!with_next || (*p < u16::MAX && self.free.contains(&(p + 1))))
        };
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

    /// Whether `port` belongs to this shard's share of the range.
    pub fn owns(&self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
            && shard_of_port(port, self.min, self.shards) == usize::from(self.shard)
    }

    /// The lowest free even port, else the lowest free port: the shared
    /// relay socket's (predictable, so an operator's firewall rule can name
    /// it; even, so EVEN-PORT without the R bit can be honoured, RFC 8656 §7.2).
    pub fn take_lowest(&mut self) -> Option<u16> {
        let port = self
            .free
            .iter()
            .find(|p| p.is_multiple_of(2))
            .or_else(|| self.free.iter().next())
            .copied()?;
        self.free.remove(&port);
        Some(port)
    }

    /// Takes one given port if it is free.
    pub fn take_specific(&mut self, port: u16) -> bool {
        self.free.remove(&port)
    }

    /// Returns a port; one from another shard's share is not ours to hand out.
    pub fn release(&mut self, port: u16) {
        if self.owns(port) {
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
        assert_eq!(a.available() + b.available(), 10);
        assert!(a.free.iter().all(|p| !b.free.contains(p)));
        // Pairs stay together so EVEN-PORT R=1 works in every shard.
        assert!(a.free.contains(&50000) && a.free.contains(&50001));
        assert!(b.free.contains(&50002) && b.free.contains(&50003));
        for p in 50000..=50009 {
            let owner = shard_of_port(p, 50000, 2);
            assert!(if owner == 0 {
                a.free.contains(&p)
            } else {
                b.free.contains(&p)
            });
        }
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
