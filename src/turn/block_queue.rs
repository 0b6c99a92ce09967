//! A FIFO queue stored in fixed-size blocks: pushing never moves what is
//! already queued (issue 16).
//!
//! A `VecDeque` that holds a worker's 80,000 cached answers doubles by
//! allocating twice its size and copying everything: megabytes at once, on
//! the data path's thread. A soak showed the worker's longest turns at those
//! doublings (8.7, 12.2 and 20.5 ms of CPU as the cache filled). Here a push
//! touches at most one fresh block, and a block that empties is kept as the
//! one spare or freed, so memory follows the queue down as well.

use std::collections::VecDeque;

/// Entries per block: 1024 entries of the cache's 64 bytes is 64 KiB.
const BLOCK: usize = 1024;

#[derive(Debug)]
pub(crate) struct BlockQueue<T: Copy> {
    /// Full blocks and, last, the one being filled. Each block is allocated
    /// with room for `BLOCK` entries and never grows past it.
    blocks: VecDeque<Vec<T>>,
    /// Entries of the front block already taken.
    head: usize,
    len: usize,
    /// One emptied block kept for the next push (no allocation per block
    /// boundary when the queue holds steady).
    spare: Option<Vec<T>>,
}

impl<T: Copy> Default for BlockQueue<T> {
    fn default() -> Self {
        Self {
            blocks: VecDeque::new(),
            head: 0,
            len: 0,
            spare: None,
        }
    }
}

impl<T: Copy> BlockQueue<T> {
    pub(crate) fn push_back(&mut self, value: T) {
        let need_block = self.blocks.back().is_none_or(|b| b.len() >= BLOCK);
        if need_block {
            let block = self
                .spare
                .take()
                .unwrap_or_else(|| Vec::with_capacity(BLOCK));
            self.blocks.push_back(block);
        }
        if let Some(back) = self.blocks.back_mut() {
            back.push(value);
            self.len += 1;
        }
    }

    pub(crate) fn front(&self) -> Option<&T> {
        self.blocks.front()?.get(self.head)
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let front = self.blocks.front()?;
        let value = *front.get(self.head)?;
        self.head += 1;
        self.len -= 1;
        if self.head == front.len() {
            // The front block is spent: when it is also the block being
            // filled, reuse it in place; otherwise retire it.
            self.head = 0;
            if self.blocks.len() == 1 {
                if let Some(only) = self.blocks.front_mut() {
                    only.clear();
                }
            } else if let Some(mut spent) = self.blocks.pop_front() {
                spent.clear();
                if self.spare.is_none() {
                    self.spare = Some(spent);
                }
            }
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Blocks allocated (queued and spare): memory is this times `BLOCK` entries.
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.blocks.len() + usize::from(self.spare.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any interleaving of pushes and pops gives what a VecDeque gives.
        #[test]
        fn behaves_as_a_fifo(ops in proptest::collection::vec((any::<bool>(), 1usize..3000), 1..40)) {
            let mut q = BlockQueue::default();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            for (push, n) in ops {
                for _ in 0..n {
                    if push {
                        q.push_back(next);
                        model.push_back(next);
                        next += 1;
                    } else {
                        prop_assert_eq!(q.pop_front(), model.pop_front());
                    }
                    prop_assert_eq!(q.front(), model.front());
                    prop_assert_eq!(q.len(), model.len());
                }
            }
        }
    }

    #[test]
    fn memory_follows_the_queue_down() {
        let mut q = BlockQueue::default();
        for i in 0..100_000u32 {
            q.push_back(i);
        }
        assert_eq!(q.blocks(), 100_000usize.div_ceil(BLOCK));
        for i in 0..99_990u32 {
            assert_eq!(q.pop_front(), Some(i));
        }
        assert!(q.blocks() <= 2, "{} blocks for 10 entries", q.blocks());
        // Steady state: a block boundary reuses the spare.
        for i in 0..10 * BLOCK as u32 {
            q.push_back(i);
            q.pop_front();
        }
        assert!(q.blocks() <= 3);
    }
}
