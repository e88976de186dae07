//! Scanner misbehaviour: wrong clocks, outages, retries and malformed lines,
//! drawn from [`Faults`]. This module decides *when* and *what*; the emitter
//! ([`crate::emit`]) applies it to each event.
//!
//! Invariant: a fault never changes what happened, only what is sent: a
//! skewed `ts` is what footfall sees (and what the truth counts), an outage
//! only delays sending, a retry repeats a line byte for byte, and a malformed
//! line is an extra line that counts for nothing.

use rand::Rng;

use crate::calendar::{MINUTE_MS, SimDay};
use crate::config::Faults;

/// How each scanner behaves for the whole run.
#[derive(Debug)]
pub(crate) struct ScannerTraits {
    /// Clock error added to every `ts` of the scanner, in milliseconds.
    pub skew_ms: Vec<i64>,
    /// Writes `ts` with the venue's local offset rather than `Z` (another
    /// vendor's firmware); both are valid RFC 3339.
    pub local_offset: Vec<bool>,
}

impl ScannerTraits {
    pub fn plan(scanners: usize, faults: &Faults, rng: &mut impl Rng) -> Self {
        let max_skew_ms = i64::from(faults.max_skew_seconds) * 1000;
        let mut skew_ms = Vec::with_capacity(scanners);
        let mut local_offset = Vec::with_capacity(scanners);
        for _ in 0..scanners {
            let skewed = rng.random_bool(faults.skewed_clock_rate) && max_skew_ms > 0;
            // At least a fifth of the maximum, so that a skewed clock shows.
            let size = if skewed {
                rng.random_range(max_skew_ms / 5..=max_skew_ms)
            } else {
                0
            };
            skew_ms.push(if rng.random_bool(0.5) { size } else { -size });
            local_offset.push(rng.random_bool(0.15));
        }
        Self {
            skew_ms,
            local_offset,
        }
    }

    pub fn skewed(&self) -> usize {
        self.skew_ms.iter().filter(|&&s| s != 0).count()
    }
}

/// An outage: events that happen in `[from_ms, until_ms)` are held by the
/// scanner and uploaded from `until_ms`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outage {
    pub from_ms: i64,
    pub until_ms: i64,
}

/// The outages of one day, by scanner.
pub(crate) fn plan_outages(
    scanners: usize,
    day: &SimDay,
    faults: &Faults,
    rng: &mut impl Rng,
) -> Vec<Option<Outage>> {
    (0..scanners)
        .map(|_| {
            if !rng.random_bool(faults.offline_rate) {
                return None;
            }
            let minutes = rng.random_range(faults.offline_min_minutes..=faults.offline_max_minutes);
            let from_ms = rng.random_range(day.opens_ms..day.closes_ms.max(day.opens_ms + 1));
            // Staff bring a dead scanner back, or sync it when they close.
            let until_ms =
                (from_ms + i64::from(minutes) * MINUTE_MS).min(day.closes_ms + 15 * MINUTE_MS);
            Some(Outage {
                from_ms,
                until_ms: day.clamp(until_ms),
            })
        })
        .collect()
}

impl Outage {
    /// The send instant of an event that happened at `at_ms`, when the outage
    /// holds it: the backlog goes out in `ts` order, a few per millisecond.
    pub fn held_until(&self, at_ms: i64) -> Option<i64> {
        (self.from_ms..self.until_ms)
            .contains(&at_ms)
            .then(|| self.until_ms + (at_ms - self.from_ms) / 1000)
    }
}

/// How a malformed line is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Cut mid-line (a lost packet): not JSON.
    Truncated,
    /// An extra `"colour"` field (a firmware update): `unknown_field`.
    UnknownField,
    /// No `badge_id` (a misread badge): `schema`.
    MissingBadge,
    /// A scanner the venue does not know (a spare unit): `unknown_scanner`.
    UnknownScanner,
}

impl Malformed {
    pub const ALL: [Malformed; 4] = [
        Self::Truncated,
        Self::UnknownField,
        Self::MissingBadge,
        Self::UnknownScanner,
    ];

    pub fn pick(rng: &mut impl Rng) -> Self {
        Self::ALL[rng.random_range(0..Self::ALL.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rates_and_bounds() {
        let venue = footfall_schemas::venue::reference();
        let days = SimDay::plan(&venue, 0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let faults = Faults {
            skewed_clock_rate: 0.2,
            offline_rate: 0.1,
            ..Faults::default()
        };
        let traits = ScannerTraits::plan(10_000, &faults, &mut rng);
        let share = traits.skewed() as f64 / 10_000.0;
        assert!((share - 0.2).abs() < 0.02, "{share}");
        assert!(traits.skew_ms.iter().all(|s| s.abs() <= 240_000));
        let outages = plan_outages(10_000, &days[0], &faults, &mut rng);
        let held: Vec<Outage> = outages.into_iter().flatten().collect();
        assert!((held.len() as f64 / 10_000.0 - 0.1).abs() < 0.02);
        for o in held {
            assert!(o.until_ms > o.from_ms && o.until_ms <= days[0].closes_ms + 15 * MINUTE_MS);
            assert!(o.until_ms - o.from_ms <= 180 * MINUTE_MS);
            assert_eq!(o.held_until(o.from_ms), Some(o.until_ms));
            assert_eq!(o.held_until(o.until_ms), None);
        }
        assert_eq!(Faults::none().retry_rate, 0.0);
    }
}
