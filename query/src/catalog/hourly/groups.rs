//! A share's counts for `footfall_hourly`: its groups (level, local hour,
//! zone), each with its entries and the numbers of its badges, as a small
//! hash set or as bits.

use arrow::array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampSecondArray,
};
use datafusion::error::{DataFusionError, Result};
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::{LEVELS, SCHEMA, VENUE};
use crate::catalog::share::{Dictionary, Split};

/// The most (local day, local hour) pairs a share counts: a day has 25 at
/// most; a table read as one share (the tests') has all its days.
const MAX_SLOTS: usize = 1 << 14;

/// A share's counts: for each (level, local hour, zone), its `in` scans
/// and the badges among them.
pub(super) struct ShareCounts {
    pub(super) split: Split,
    pub(super) badges: Dictionary,
    pub(super) zones: Dictionary,
    /// (local_day, local_hour) by their number in the share.
    slots: Vec<(i32, i64)>,
    last_slot: usize,
    /// The groups, and where each is: by slot, then by zone and level
    /// (`zone * 4 + level`), [`NO_GROUP`] where there is none.
    groups: Vec<Group>,
    index: Vec<Vec<u32>>,
    /// The codes of the poles, looked up before `zones`: a venue has a
    /// few, and comparing a scan's to each is quicker than hashing it.
    poles: Vec<(Box<str>, u16)>,
}

const NO_GROUP: u32 = u32::MAX;
/// The most poles looked up in [`ShareCounts::poles`].
const FEW_POLES: usize = 16;

/// A group's entries and distinct badges.
struct Group {
    level: usize,
    slot: u32,
    zone: u16,
    entries: i64,
    visitors: i64,
    badges: BadgeSet,
}

/// Badge numbers, in a hash set while they are few, and as bits past
/// [`BITS_PAST`] of the share's badges (a pole's hour holds a sizeable share
/// of the day's visitors, a stand's hour a few hundred).
enum BadgeSet {
    Few(HashSet<u32, BuildHasherDefault<Mixed>>),
    Bits(Vec<u64>),
}

/// A group's set of badge numbers turns to bits when it holds more than
/// this share of the badges numbered so far (then a bit per badge costs no
/// more than the set's 5 to 9 bytes per entry), and more than [`FEW`].
const BITS_PAST: usize = 64;
/// So that the groups of a share's first hour, when few badges are
/// numbered, do not all turn to bits that grow with the day.
const FEW: usize = 512;

impl Group {
    /// Counts an entry of badge number `badge`, of `numbered` so far.
    fn count(&mut self, badge: u32, numbered: usize) {
        self.entries += 1;
        let new = match &mut self.badges {
            BadgeSet::Few(set) => {
                let new = set.insert(badge);
                if set.len() > (numbered / BITS_PAST).max(FEW) {
                    let mut bits = vec![0; numbered.div_ceil(64)];
                    for &b in set.iter() {
                        bits[b as usize / 64] |= 1 << (b % 64);
                    }
                    self.badges = BadgeSet::Bits(bits);
                }
                new
            }
            BadgeSet::Bits(bits) => {
                let (word, bit) = (badge as usize / 64, 1 << (badge % 64));
                if word >= bits.len() {
                    bits.resize(numbered.div_ceil(64).max(word + 1), 0);
                }
                let new = bits[word] & bit == 0;
                bits[word] |= bit;
                new
            }
        };
        self.visitors += i64::from(new);
    }

    fn bytes(&self) -> usize {
        size_of::<Self>()
            + match &self.badges {
                BadgeSet::Few(set) => set.capacity() * (size_of::<u32>() + 1),
                BadgeSet::Bits(bits) => bits.capacity() * size_of::<u64>(),
            }
    }
}

impl ShareCounts {
    pub(super) fn new(split: Split) -> Self {
        Self {
            split,
            badges: Dictionary::default(),
            zones: Dictionary::default(),
            slots: Vec::new(),
            last_slot: 0,
            groups: Vec::new(),
            index: Vec::new(),
            poles: Vec::new(),
        }
    }

    /// The number of (`day`, `hour`), the last one found looked at first
    /// (a file's rows come by time).
    pub(super) fn slot(&mut self, day: i32, hour: i64) -> Result<u32> {
        if self.slots.get(self.last_slot) == Some(&(day, hour)) {
            return Ok(self.last_slot as u32);
        }
        if let Some(n) = self.slots.iter().position(|s| *s == (day, hour)) {
            self.last_slot = n;
            return Ok(n as u32);
        }
        if self.slots.len() == MAX_SLOTS {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "footfall_hourly counts at most {MAX_SLOTS} local hours in a share of scans"
            )));
        }
        self.slots.push((day, hour));
        self.index.push(Vec::new());
        self.last_slot = self.slots.len() - 1;
        Ok(self.last_slot as u32)
    }

    pub(super) fn count(&mut self, level: usize, slot: u32, zone: u16, badge: u32) {
        let at = usize::from(zone) * LEVELS.len() + level;
        let slot_index = &mut self.index[slot as usize];
        if at >= slot_index.len() {
            slot_index.resize(at + 1, NO_GROUP);
        }
        if slot_index[at] == NO_GROUP {
            slot_index[at] = self.groups.len() as u32;
            self.groups.push(Group {
                level,
                slot,
                zone,
                entries: 0,
                visitors: 0,
                badges: BadgeSet::Few(HashSet::default()),
            });
        }
        let group = slot_index[at] as usize;
        self.groups[group].count(badge, self.badges.len());
    }

    /// The code of pole `pole` in `zones`.
    pub(super) fn pole(&mut self, pole: &str) -> Result<u16> {
        if let Some((_, code)) = self.poles.iter().find(|(p, _)| **p == *pole) {
            return Ok(*code);
        }
        let code = self.zones.code(pole, "pole_id")?;
        if self.poles.len() < FEW_POLES {
            self.poles.push((pole.into(), code));
        }
        Ok(code)
    }

    /// A row per group: its entries and visitors.
    pub(super) fn rows(&self, venue_id: Option<&str>) -> Result<RecordBatch> {
        let n = self.groups.len();
        let mut days = Vec::with_capacity(n);
        let mut hours = Vec::with_capacity(n);
        let mut levels = Vec::with_capacity(n);
        let mut zones = Vec::with_capacity(n);
        for group in &self.groups {
            let (day, hour) = self.slots[group.slot as usize];
            days.push(day);
            hours.push(hour);
            levels.push(LEVELS[group.level]);
            zones.push(match group.level {
                VENUE => venue_id,
                _ => Some(self.zones.name(u32::from(group.zone))),
            });
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from(days)),
            Arc::new(TimestampSecondArray::from(hours)),
            Arc::new(StringArray::from(levels)),
            Arc::new(StringArray::from(zones)),
            Arc::new(Int64Array::from_iter_values(
                self.groups.iter().map(|g| g.entries),
            )),
            Arc::new(Int64Array::from_iter_values(
                self.groups.iter().map(|g| g.visitors),
            )),
        ];
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }

    pub(super) fn bytes(&self) -> usize {
        self.groups.iter().map(Group::bytes).sum::<usize>()
            + self
                .index
                .iter()
                .map(|i| i.capacity() * size_of::<u32>())
                .sum::<usize>()
            + self.badges.bytes()
            + self.zones.bytes()
            + self.slots.capacity() * size_of::<(i32, i64)>()
    }
}

/// Mixes a badge number's bits by a folded multiply, so that a set's bucket
/// and control bits depend on all of them (the numbers are consecutive).
#[derive(Default)]
struct Mixed(u64);

impl Hasher for Mixed {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        let product = u128::from(word ^ self.0) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::hourly::POLE;

    /// A group's set of badges turns to bits past [`FEW`] badges while the
    /// share numbers more, and counts each badge once either way.
    #[test]
    fn a_group_counts_each_badge_once_as_a_set_and_as_bits() {
        let mut group = Group {
            level: POLE,
            slot: 0,
            zone: 0,
            entries: 0,
            visitors: 0,
            badges: BadgeSet::Few(HashSet::default()),
        };
        // Badges numbered as they come, then all of them again twice.
        for badge in 0..3000 {
            group.count(badge, badge as usize + 1);
            if badge as usize == FEW - 1 {
                assert!(matches!(group.badges, BadgeSet::Few(_)), "bits at {badge}");
            }
        }
        assert!(matches!(group.badges, BadgeSet::Bits(_)));
        for badge in (0..3000).rev().chain(0..3000) {
            group.count(badge, 3000);
        }
        assert_eq!((group.entries, group.visitors), (9000, 3000));
    }
}
