//! The best-effort duplicate filter of Kafka appends: the hashes of the
//! event ids this process appended recently, oldest forgotten first.
//!
//! It only saves a retry's copies from reaching Kafka when the retry comes
//! back to the same process soon enough. Another ingest worker, a restart,
//! or an id older than the window will append again; the materialiser's
//! exact deduplication by `event_id` is what makes counts right.

use std::collections::{HashSet, VecDeque};

/// At most `capacity` id hashes (xxh3-128: collisions are negligible, about
/// 10⁻²⁹ for 100 000 ids), evicted in insertion order.
#[derive(Debug)]
pub(super) struct RecentIds {
    capacity: usize,
    set: HashSet<u128>,
    order: VecDeque<u128>,
}

impl RecentIds {
    pub(super) fn new(capacity: usize) -> Self {
        // Grow on demand: a short-lived test log should not reserve megabytes.
        Self {
            capacity,
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn contains(&self, id: u128) -> bool {
        self.set.contains(&id)
    }

    pub(super) fn insert(&mut self, id: u128) {
        if self.capacity == 0 || !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_most_recent_ids_only() {
        let mut r = RecentIds::new(2);
        r.insert(1);
        r.insert(2);
        r.insert(2);
        assert!(r.contains(1) && r.contains(2));
        r.insert(3);
        assert!(!r.contains(1) && r.contains(2) && r.contains(3));
        assert_eq!(r.order.len(), 2);

        let mut off = RecentIds::new(0);
        off.insert(1);
        assert!(!off.contains(1));
    }
}
