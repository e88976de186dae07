//! A stream's dedup set: 96 bits of the xxh3-128 of every event id it has
//! materialised, in about 16 bytes per id where a hash set of `u128` takes
//! 26 to 34. Unlike a Bloom filter it has no false positives but those of
//! the hash: two of 50 million ids share 96 bits with a chance of about
//! 2 × 10⁻¹⁴ (n² / 2⁹⁷), where keeping all 128 bits cost a third more memory.
//!
//! Most ids live in one sorted array with a bucket index over their top
//! bits (the hashes are uniform, so a bucket holds about 16 ids); the ids
//! added since the last fold live in a small hash set, folded into the
//! array when they reach an eighth of it. A lookup is one hash probe and
//! one short binary search; each id is copied about eight times over a
//! stream's life by the folds.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// Recent ids are folded into the sorted array at this many, or at an eighth
/// of the array, whichever is more.
const MIN_RECENT: usize = 1 << 16;
/// About this many sorted ids per bucket of the index.
const PER_BUCKET: usize = 16;

/// The bits of an id the set keeps.
const KEPT: u128 = (1 << 96) - 1;

/// An id's 96 kept bits, most significant word first (so that the derived
/// order is the numeric one), in 12 bytes where a `u128` takes 16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Key([u32; 3]);

impl Key {
    fn of(id: u128) -> Self {
        Self([(id >> 64) as u32, (id >> 32) as u32, id as u32])
    }
}

#[derive(Default)]
pub struct IdSet {
    /// Kept bits of the ids added since the last fold.
    recent: HashSet<u128, BuildHasherDefault<FoldHasher>>,
    /// Every id not in `recent`, ascending.
    sorted: Vec<Key>,
    /// `sorted[starts[b]..starts[b + 1]]` are the ids whose top `bits` bits
    /// are `b`.
    starts: Vec<u32>,
    bits: u32,
}

impl IdSet {
    /// The set of these ids (in any order, repeats allowed).
    pub fn from_ids(ids: Vec<u128>) -> Self {
        let mut ids: Vec<Key> = ids.into_iter().map(|id| Key::of(id & KEPT)).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut set = Self::default();
        set.index(ids);
        set
    }

    /// Adds the id; false if it was there already.
    pub fn insert(&mut self, id: u128) -> bool {
        let id = id & KEPT;
        if self.in_sorted(Key::of(id)) || !self.recent.insert(id) {
            return false;
        }
        if self.recent.len() >= MIN_RECENT.max(self.sorted.len() / 8) {
            self.fold();
        }
        true
    }

    fn in_sorted(&self, id: Key) -> bool {
        if self.sorted.is_empty() {
            return false;
        }
        let b = self.bucket(id);
        let range = self.starts[b] as usize..self.starts[b + 1] as usize;
        self.sorted[range].binary_search(&id).is_ok()
    }

    fn bucket(&self, id: Key) -> usize {
        // At most 2^28 buckets (`index`), so the top word holds the bits;
        // bits == 0 (one bucket) shifts the word out.
        (u64::from(id.0[0]) >> (32 - self.bits)) as usize
    }

    /// Merges the recent ids into the sorted array (both are duplicate-free
    /// and disjoint) and rebuilds the index.
    fn fold(&mut self) {
        let mut recent: Vec<Key> = self.recent.drain().map(Key::of).collect();
        recent.sort_unstable();
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() + recent.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() && j < recent.len() {
            if old[i] < recent[j] {
                merged.push(old[i]);
                i += 1;
            } else {
                merged.push(recent[j]);
                j += 1;
            }
        }
        merged.extend_from_slice(&old[i..]);
        merged.extend_from_slice(&recent[j..]);
        drop(old);
        self.index(merged);
    }

    fn index(&mut self, sorted: Vec<Key>) {
        assert!(
            sorted.len() < u32::MAX as usize,
            "a stream of 4 billion events"
        );
        let buckets = (sorted.len() / PER_BUCKET).max(1).next_power_of_two();
        self.bits = buckets.trailing_zeros();
        self.sorted = sorted;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < self.sorted.len() && self.bucket(self.sorted[i]) < b {
                i += 1;
            }
            starts.push(i as u32);
        }
        starts.push(self.sorted.len() as u32);
        self.starts = starts;
    }
}

/// The ids are already uniform hashes: the table needs only 64 of their bits.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64) ^ ((id >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_128;

    fn len(set: &IdSet) -> usize {
        set.sorted.len() + set.recent.len()
    }

    fn id(n: u64) -> u128 {
        xxh3_128(&n.to_le_bytes())
    }

    #[test]
    fn agrees_with_a_hash_set_across_folds() {
        let mut set = IdSet::default();
        let mut truth = HashSet::new();
        // 300k inserts of 200k distinct ids: repeats land both in the recent
        // set and in the sorted array, over several folds.
        for n in 0..300_000u64 {
            let k = id((n * 7_919) % 200_000);
            assert_eq!(set.insert(k), truth.insert(k), "insert #{n}");
        }
        assert_eq!(len(&set), truth.len());
        assert!(set.sorted.len() > MIN_RECENT, "folded at least once");
        for n in 0..200_000u64 {
            assert!(!set.insert(id(n)));
        }
        for n in 200_000..210_000u64 {
            assert!(set.insert(id(n)));
        }
    }

    #[test]
    fn built_from_ids_with_repeats() {
        let ids: Vec<u128> = (0..50_000u64).chain(0..1_000).map(id).collect();
        let mut set = IdSet::from_ids(ids);
        assert_eq!(len(&set), 50_000);
        assert!(!set.insert(id(49_999)));
        assert!(set.insert(id(50_000)));
    }

    #[test]
    fn extreme_ids_and_an_empty_set() {
        let mut set = IdSet::from_ids(Vec::new());
        assert!(set.insert(0));
        assert!(set.insert(u128::MAX));
        assert!(!set.insert(0));
        let top = 1 << 95;
        let mut set = IdSet::from_ids(vec![0, KEPT, top]);
        assert!(!set.insert(KEPT));
        assert!(!set.insert(top));
        assert!(set.insert(top - 1));
        // Only the kept bits count.
        assert!(!set.insert(u128::MAX));
        assert!(!set.insert(1 << 127));
    }
}
