//! The simulator's knobs: seed, scale, ticket prices and scanner fault rates.
//!
//! Invariant: a [`SimConfig`] that passed [`SimConfig::validate`] can be
//! simulated; every rate is a probability and every duration is ordered.

use serde::{Deserialize, Serialize};

/// Everything that shapes a run besides the venue. Same venue, same config
/// (seed included) → the same bytes, on the same platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// Simulate the first N days of the venue (in date order); 0 = all of them.
    pub days: u32,
    /// Mean visitor badges per simulated day (exhibitors, staff, press and
    /// guests come on top). `None` = [`SimConfig::default_visitors_per_day`].
    pub visitors_per_day: Option<u32>,
    /// At most this many lines per [`crate::Simulator::next_chunk`]: bounds
    /// what the caller holds at once, whatever the scale.
    pub chunk_lines: usize,
    pub tickets: TicketPrices,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            days: 0,
            visitors_per_day: None,
            // ~10 MB of lines: large enough to amortise the call, small
            // enough to stay far below one day of a large run.
            chunk_lines: 65_536,
            tickets: TicketPrices::default(),
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// One and a half full houses a day: a visit lasts about two hours of a
    /// ten-hour day, so the busiest hour of the busiest day (a weekend
    /// evening) comes near the venue capacity, and weekdays stay well below.
    pub fn default_visitors_per_day(venue_capacity: u32) -> u32 {
        (venue_capacity.saturating_mul(3) / 2).max(10)
    }

    /// Fails when a rate is not a probability, a duration range is reversed,
    /// the clock skew could be refused by ingest, or a price is out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        self.faults.validate()?;
        self.tickets.validate()?;
        if self.chunk_lines == 0 {
            return Err(SimError::Config("chunk_lines must be at least 1".into()));
        }
        Ok(())
    }
}

/// Ticket prices, in hundredths of the currency unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TicketPrices {
    /// ISO 4217 code written in every ticket event.
    pub currency: String,
    /// A full-price visitor ticket, online or on site.
    pub visitor_cents: u32,
    /// The reduced on-site ticket (students, children).
    pub reduced_cents: u32,
}

impl Default for TicketPrices {
    fn default() -> Self {
        // The reference fair's: 20 dirhams, half price reduced.
        Self {
            currency: "MAD".into(),
            visitor_cents: 2000,
            reduced_cents: 1000,
        }
    }
}

impl TicketPrices {
    fn validate(&self) -> Result<(), SimError> {
        if !(self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(SimError::Config(format!(
                "currency {:?} is not a three-letter ISO 4217 code",
                self.currency
            )));
        }
        // The wire format allows at most nine integer digits.
        if self.visitor_cents.max(self.reduced_cents) >= 100_000_000 {
            return Err(SimError::Config(
                "ticket prices must stay below 1,000,000".into(),
            ));
        }
        Ok(())
    }
}

/// How often scanners misbehave. Defaults are small but nonzero so that
/// every run exercises the ingest edge; [`Faults::none`] turns them off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of events sent again, byte for byte (same `event_id`), a few
    /// seconds later: the sender missed the answer. A tenth of them twice.
    pub retry_rate: f64,
    /// Chance that a scanner has one outage on a given day. Its events of the
    /// outage keep their `ts` and are uploaded together when it is back.
    pub offline_rate: f64,
    pub offline_min_minutes: u32,
    pub offline_max_minutes: u32,
    /// Share of scanners whose clock is wrong for the whole fair.
    pub skewed_clock_rate: f64,
    /// The largest clock error either way, in seconds. At most
    /// [`Faults::MAX_SKEW_SECONDS`]: ingest refuses a `ts` more than five
    /// minutes ahead of its arrival, which the truth does not model.
    pub max_skew_seconds: u32,
    /// Malformed lines sent per valid scan: truncated JSON, an unknown field,
    /// a missing `badge_id`, an unknown scanner. They are never in the truth.
    pub malformed_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            retry_rate: 0.01,
            offline_rate: 0.02,
            offline_min_minutes: 60,
            offline_max_minutes: 180,
            skewed_clock_rate: 0.03,
            max_skew_seconds: 240,
            malformed_rate: 0.001,
        }
    }
}

impl Faults {
    /// Kept a margin below ingest's five minutes so that upload delays can
    /// never push an event over.
    pub const MAX_SKEW_SECONDS: u32 = 280;

    /// Perfect scanners: every event sent once, on time, well formed.
    pub fn none() -> Self {
        Self {
            retry_rate: 0.0,
            offline_rate: 0.0,
            skewed_clock_rate: 0.0,
            malformed_rate: 0.0,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        for (name, rate) in [
            ("retry_rate", self.retry_rate),
            ("offline_rate", self.offline_rate),
            ("skewed_clock_rate", self.skewed_clock_rate),
            ("malformed_rate", self.malformed_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::Config(format!(
                    "faults.{name} must be between 0 and 1, got {rate}"
                )));
            }
        }
        if self.offline_min_minutes == 0 || self.offline_min_minutes > self.offline_max_minutes {
            return Err(SimError::Config(
                "faults.offline_min_minutes must be in 1..=offline_max_minutes".into(),
            ));
        }
        if self.max_skew_seconds > Self::MAX_SKEW_SECONDS {
            return Err(SimError::Config(format!(
                "faults.max_skew_seconds is at most {} (ingest refuses clocks five minutes ahead)",
                Self::MAX_SKEW_SECONDS
            )));
        }
        Ok(())
    }
}

/// Why a simulator cannot start. Always the caller's configuration: fix it
/// and retry; the simulator itself has no runtime failures.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// A config value out of its range (user error).
    #[error("invalid simulator config: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_faults_nonzero() {
        let c = SimConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.faults.retry_rate > 0.0 && c.faults.malformed_rate > 0.0);
        assert_eq!(
            SimConfig {
                faults: Faults::none(),
                ..c
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = SimConfig::default();
        c.faults.retry_rate = 1.5;
        assert!(c.validate().is_err());
        let mut c = SimConfig::default();
        c.faults.max_skew_seconds = 301;
        assert!(c.validate().is_err());
        let mut c = SimConfig::default();
        c.tickets.currency = "mad".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<SimConfig>(r#"{"seed":3,"faults":{"retry_rat":0.1}}"#);
        assert!(e.is_err());
        let c: SimConfig =
            serde_json::from_str(r#"{"seed":3,"faults":{"retry_rate":0.1}}"#).expect("valid");
        assert_eq!(c.faults.malformed_rate, Faults::default().malformed_rate);
    }
}
