//! Time at the venue: the simulated days with their opening instants, how
//! busy each day is, when visitors arrive within it, and local hours.
//!
//! Invariant: every instant is UTC milliseconds; local wall-clock time is
//! only ever derived through the venue's IANA time zone, never a fixed offset,
//! so days with a DST switch get their real hours.

use crate::hash::FastMap;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use footfall_schemas::Venue;
use rand::Rng;

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// One simulated fair day.
#[derive(Clone, Debug)]
pub(crate) struct SimDay {
    pub index: usize,
    pub date: NaiveDate,
    pub opens_ms: i64,
    pub closes_ms: i64,
    /// Local midnight starting the day and the next one: every event of the
    /// day, its `ts` and its sending, stays in `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Relative crowd of the day (weekday, weekend, first and last day).
    pub weight: f64,
    curve: ArrivalCurve,
}

impl SimDay {
    /// The first `count` days of the venue in date order (all when 0).
    pub fn plan(venue: &Venue, count: u32) -> Vec<SimDay> {
        let mut days = venue.days.clone();
        days.sort_by_key(|d| d.date);
        if count > 0 {
            days.truncate(count as usize);
        }
        let last = days.len().saturating_sub(1);
        days.iter()
            .enumerate()
            .map(|(index, d)| {
                let (opens, closes) = venue.opening(d);
                let midnight = NaiveTime::MIN;
                let start_ms = venue.local_to_utc(d.date, midnight).timestamp_millis();
                let next = d.date.succ_opt().unwrap_or(d.date);
                let end_ms = venue
                    .local_to_utc(next, midnight)
                    .timestamp_millis()
                    .max(start_ms + HOUR_MS);
                let weight = day_weight(d.date.weekday(), index == 0, index == last && last > 0)
                    * ((closes - opens).num_minutes() as f64 / 600.0)
                        .clamp(0.2, 2.0)
                        .sqrt();
                SimDay {
                    index,
                    date: d.date,
                    opens_ms: opens.timestamp_millis(),
                    closes_ms: closes.timestamp_millis(),
                    start_ms,
                    end_ms,
                    weight,
                    curve: ArrivalCurve::new(venue.time_zone, d.date.weekday(), opens, closes),
                }
            })
            .collect()
    }

    /// A visitor's arrival instant, following the day's curve.
    pub fn arrival(&self, rng: &mut impl Rng) -> i64 {
        self.curve.sample(rng)
    }

    /// Clamps an instant into the day, keeping a margin before midnight so
    /// that upload delays cannot carry an event into the next day.
    pub fn clamp(&self, ms: i64) -> i64 {
        ms.clamp(self.start_ms, self.end_ms - 2 * MINUTE_MS)
    }
}

/// Weekends draw families: the busiest days. Opening and closing days get a
/// bump for the ceremony and the last-chance visitors.
fn day_weight(weekday: Weekday, first: bool, last: bool) -> f64 {
    let base = match weekday {
        Weekday::Sat => 1.5,
        Weekday::Sun => 1.35,
        Weekday::Fri => 0.95,
        _ => 1.0,
    };
    base * if first { 1.15 } else { 1.0 } * if last { 1.1 } else { 1.0 }
}

/// Arrivals per minute over a day's opening hours, as a cumulative table.
#[derive(Clone, Debug)]
struct ArrivalCurve {
    first_minute_ms: i64,
    /// `cdf[i]`: share of arrivals before the end of minute `i`.
    cdf: Vec<f64>,
}

impl ArrivalCurve {
    fn new(tz: Tz, weekday: Weekday, opens: DateTime<Utc>, closes: DateTime<Utc>) -> Self {
        let minutes = (closes - opens).num_minutes().max(1);
        // Few arrive in the last half hour; keep it only for short days.
        let window = if minutes > 90 { minutes - 30 } else { minutes };
        let weekend = matches!(weekday, Weekday::Sat | Weekday::Sun);
        let mut cdf = Vec::with_capacity(window as usize);
        let mut total = 0.0;
        for m in 0..window {
            // Each UTC minute is placed on the local clock, so a DST switch
            // during opening hours moves the peaks with the wall clock.
            let at = opens + chrono::Duration::minutes(m);
            let local = at.with_timezone(&tz);
            let h = local.hour() as f64 + local.minute() as f64 / 60.0;
            total += intensity(h, weekend);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self {
            first_minute_ms: opens.timestamp_millis(),
            cdf,
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> i64 {
        let u: f64 = rng.random();
        let minute = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        self.first_minute_ms + minute as i64 * MINUTE_MS + rng.random_range(0..MINUTE_MS)
    }
}

/// Relative arrival rate at local hour `h`: a late-morning peak, a lunch
/// lull, and a larger late-afternoon peak (after work and school; families
/// at weekends), over a floor so that any opening hours get visitors.
fn intensity(h: f64, weekend: bool) -> f64 {
    let bump = |centre: f64, width: f64| (-0.5 * ((h - centre) / width).powi(2)).exp();
    let morning = 1.0 * bump(11.5, 1.0);
    let afternoon = if weekend { 1.6 } else { 1.2 } * bump(17.25, 1.4);
    let lunch = if (13.0..14.5).contains(&h) { 0.75 } else { 1.0 };
    (0.3 + morning + afternoon) * lunch
}

/// Local hours of instants, with a cache: one time-zone lookup per UTC hour
/// instead of one per event.
#[derive(Debug)]
pub(crate) struct LocalClock {
    tz: Tz,
    /// UTC hour → its offset in seconds, or `None` when the offset changes
    /// within that hour (then each instant is looked up).
    hours: FastMap<i64, Option<i32>>,
}

impl LocalClock {
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            hours: FastMap::default(),
        }
    }

    /// The UTC offset in seconds at `ms`.
    pub fn offset_secs(&mut self, ms: i64) -> i32 {
        let hour = ms.div_euclid(HOUR_MS);
        let tz = self.tz;
        let cached = *self.hours.entry(hour).or_insert_with(|| {
            let a = offset_at(tz, hour * HOUR_MS);
            let b = offset_at(tz, hour * HOUR_MS + HOUR_MS - 1);
            (a == b).then_some(a)
        });
        cached.unwrap_or_else(|| offset_at(tz, ms))
    }

    /// The local wall-clock hour containing `ms`, counted in hours since the
    /// local epoch (so a repeated hour maps to one value).
    pub fn local_hour(&mut self, ms: i64) -> i64 {
        (ms + i64::from(self.offset_secs(ms)) * 1000).div_euclid(HOUR_MS)
    }
}

fn offset_at(tz: Tz, ms: i64) -> i32 {
    let utc = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    tz.offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc()
}

/// A UTC instant from a venue-local date and time (see [`Venue::local_to_utc`]).
pub(crate) fn local_ms(venue: &Venue, date: NaiveDate, minutes_after_midnight: i64) -> i64 {
    let minutes = minutes_after_midnight.clamp(0, 24 * 60 - 1) as u32;
    let time = NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0).unwrap_or(NaiveTime::MIN);
    venue.local_to_utc(date, time).timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .expect("a test instant")
            .timestamp_millis()
    }

    #[test]
    fn casablanca_switch_day_hours() {
        let mut clock = LocalClock::new("Africa/Casablanca".parse().expect("a known zone"));
        let hour = |c: &mut LocalClock, t: &str| {
            let h = c.local_hour(ms(t));
            chrono::DateTime::from_timestamp(h * 3600, 0)
                .expect("in range")
                .naive_utc()
        };
        assert_eq!(
            hour(&mut clock, "2026-02-15T00:30:00Z").to_string(),
            "2026-02-15 01:00:00"
        );
        // 02:00Z is 03:00 at UTC+1, which becomes 02:00 at UTC+0.
        assert_eq!(
            hour(&mut clock, "2026-02-15T01:59:59Z").to_string(),
            "2026-02-15 02:00:00"
        );
        assert_eq!(
            hour(&mut clock, "2026-02-15T02:30:00Z").to_string(),
            "2026-02-15 02:00:00"
        );
        assert_eq!(
            hour(&mut clock, "2026-02-15T10:15:00Z").to_string(),
            "2026-02-15 10:00:00"
        );
    }

    #[test]
    fn half_hour_zones_are_exact() {
        let mut clock = LocalClock::new("Asia/Kolkata".parse().expect("a known zone"));
        // 04:40Z is 10:10 in India.
        let h = clock.local_hour(ms("2026-02-16T04:40:00Z"));
        assert_eq!(h * HOUR_MS, ms("2026-02-16T10:00:00Z"));
    }

    #[test]
    fn arrivals_stay_in_opening_hours_and_peak_twice() {
        let venue = footfall_schemas::venue::reference();
        let days = SimDay::plan(&venue, 0);
        assert_eq!(days.len(), 7);
        let day = &days[1];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut by_hour = [0u32; 24];
        for _ in 0..20_000 {
            let t = day.arrival(&mut rng);
            assert!(t >= day.opens_ms && t < day.closes_ms);
            by_hour[((t - day.start_ms) / HOUR_MS) as usize] += 1;
        }
        // Late morning beats opening time and lunch; late afternoon beats lunch.
        assert!(
            by_hour[11] > by_hour[10] && by_hour[11] > by_hour[13],
            "{by_hour:?}"
        );
        assert!(
            by_hour[17] > by_hour[13] && by_hour[17] > by_hour[19],
            "{by_hour:?}"
        );
        // Saturday is busier than Tuesday.
        assert!(days[6].weight > days[2].weight * 1.3);
    }
}
