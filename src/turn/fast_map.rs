//! The hash map every per-shard table uses, and the rule that gives a table's
//! memory back after a spike.
//!
//! Keys are addresses and ids chosen by the shard or bounded by live state,
//! so a fast non-cryptographic hasher with a random seed per map suffices.

use std::collections::HashMap;
use std::hash::Hash;

pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(foldhash::fast::RandomState::default())
}

/// Below this capacity a table keeps what it has: shrinking small tables
/// would only make the next burst grow them again.
pub(crate) const KEEP_CAPACITY: usize = 1024;

/// Halves a map's capacity once it is less than a quarter full, so a table's
/// memory follows its live entries down after a spike. Shrinking rehashes
/// the live entries only (at most a quarter of the old capacity), and a map
/// can shrink again only after losing half of what is left: the work is
/// amortised O(1) per removal.
pub(crate) fn shrink_if_sparse<K: Eq + Hash, V>(map: &mut FastMap<K, V>) {
    let capacity = map.capacity();
    if capacity > KEEP_CAPACITY && map.len() < capacity / 4 {
        map.shrink_to((capacity / 2).max(KEEP_CAPACITY));
    }
}

/// The same rule for a vector.
pub(crate) fn shrink_vec_if_sparse<T>(vec: &mut Vec<T>) {
    let capacity = vec.capacity();
    if capacity > KEEP_CAPACITY && vec.len() < capacity / 4 {
        vec.shrink_to((capacity / 2).max(KEEP_CAPACITY));
    }
}
