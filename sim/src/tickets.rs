//! Who holds a badge, and their ticket: the whole population of the run is
//! planned up front (badge kinds, channels, prices, which days each badge
//! comes, no-shows and cancellations), with every ticket event that does not
//! depend on an arrival time placed in the send segment it belongs to.
//!
//! Invariant: a badge's visits are in `per_day`, at most once per day; a
//! cancelled ticket's badge never comes; a ticket is issued before any visit
//! (on-site tickets are issued at the gate, by the day simulation).

use chrono::{Days, NaiveDate};
use footfall_schemas::Venue;
use footfall_schemas::events::{Channel, TicketAction, TicketType};
use rand::Rng;
use rand_distr::{Distribution, Exp};

use crate::calendar::{HOUR_MS, MINUTE_MS, SimDay, local_ms};
use crate::config::TicketPrices;

/// Share of each day's visitors who already came on an earlier day.
const RETURNING_SHARE: f64 = 0.12;
/// Channels of new visitor tickets: online, on site, invitation.
const ONLINE_SHARE: f64 = 0.30;
const INVITATION_SHARE: f64 = 0.12;
/// Share of on-site tickets sold at the reduced price.
const REDUCED_SHARE: f64 = 0.15;
/// Of online tickets: never used; cancelled before the visit.
const ONLINE_NO_SHOW: f64 = 0.08;
const ONLINE_CANCELLED: f64 = 0.04;
/// Of invitations: never used.
const INVITATION_NO_SHOW: f64 = 0.30;
/// Online sales open three weeks before the first day.
const PRESALE_DAYS: u64 = 21;

pub(crate) const NO_DAY: u16 = u16::MAX;

/// One badge and its ticket (one ticket per badge).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Badge {
    pub kind: TicketType,
    pub channel: Channel,
    /// Number within its kind: `V-000042` is visitor 42.
    pub num: u32,
    pub price_cents: u32,
    /// Index of the first simulated day it comes, or [`NO_DAY`].
    pub first_day: u16,
    last_day: u16,
}

impl Badge {
    pub fn prefix(&self) -> (&'static str, usize) {
        match self.kind {
            TicketType::Visitor => ("V-", 6),
            TicketType::Exhibitor => ("X-", 4),
            TicketType::Press => ("M-", 4),
            TicketType::Vip => ("VIP-", 4),
            TicketType::Staff => ("S-", 4),
        }
    }
}

/// A ticket event known before the fair simulation runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlannedTicket {
    pub badge: u32,
    pub action: TicketAction,
    pub ts_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Population {
    pub badges: Vec<Badge>,
    /// Badges coming on each simulated day.
    pub per_day: Vec<Vec<u32>>,
    /// Planned ticket events by send segment: 0 is before the first day,
    /// `k` is day `k - 1` up to the next day.
    pub tickets: Vec<Vec<PlannedTicket>>,
}

/// The ticketing system's upload delay, fixed per event so that planning
/// and sending agree on it.
pub(crate) fn ticket_send_ms(badge: u32, action: TicketAction, ts_ms: i64) -> i64 {
    let h = u64::from(badge).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (action as u64);
    ts_ms + 150 + (h >> 40) as i64 % 1850
}

/// The send segment of an instant (see [`Population::tickets`]).
pub(crate) fn segment_of(days: &[SimDay], ms: i64) -> usize {
    days.partition_point(|d| d.start_ms <= ms)
}

struct Planner<'a, R> {
    venue: &'a Venue,
    days: &'a [SimDay],
    prices: &'a TicketPrices,
    rng: &'a mut R,
    pop: Population,
    counters: [u32; 5],
}

/// Plans the population of a run of `days` with a mean of
/// `visitors_per_day` visitor badges a day.
pub(crate) fn plan(
    venue: &Venue,
    days: &[SimDay],
    visitors_per_day: u32,
    prices: &TicketPrices,
    rng: &mut impl Rng,
) -> Population {
    let pop = Population {
        badges: Vec::new(),
        per_day: vec![Vec::new(); days.len()],
        tickets: vec![Vec::new(); days.len() + 1],
    };
    let mut p = Planner {
        venue,
        days,
        prices,
        rng,
        pop,
        counters: [0; 5],
    };
    if days.is_empty() {
        return p.pop;
    }
    let vpd = f64::from(visitors_per_day);
    p.workers(venue, vpd);

    let total_weight: f64 = days.iter().map(|d| d.weight).sum();
    let mut pool: Vec<u32> = Vec::new();
    for day in days {
        let target = (vpd * day.weight * days.len() as f64 / total_weight).round() as usize;
        let d = day.index as u16;
        let mut returning = 0;
        if day.index > 0 && !pool.is_empty() {
            for _ in 0..(target as f64 * RETURNING_SHARE).round() as usize {
                // A few tries: a badge already drawn today is skipped.
                for _ in 0..4 {
                    let b = pool[p.rng.random_range(0..pool.len())];
                    if p.pop.badges[b as usize].last_day != d {
                        p.attend(b, d);
                        returning += 1;
                        break;
                    }
                }
            }
        }
        for _ in returning..target {
            let b = p.new_visitor(day);
            pool.push(b);
        }
    }
    p.pop
}

impl<R: Rng> Planner<'_, R> {
    fn add(&mut self, kind: TicketType, channel: Channel, price_cents: u32) -> u32 {
        let k = TicketType::ALL.iter().position(|&t| t == kind).unwrap_or(0);
        self.counters[k] += 1;
        self.pop.badges.push(Badge {
            kind,
            channel,
            num: self.counters[k],
            price_cents,
            first_day: NO_DAY,
            last_day: NO_DAY,
        });
        (self.pop.badges.len() - 1) as u32
    }

    fn attend(&mut self, b: u32, day: u16) {
        let badge = &mut self.pop.badges[b as usize];
        if badge.first_day == NO_DAY {
            badge.first_day = day;
        }
        badge.last_day = day;
        self.pop.per_day[day as usize].push(b);
    }

    fn ticket(&mut self, badge: u32, action: TicketAction, ts_ms: i64) {
        let ts_ms = ts_ms.div_euclid(1000) * 1000;
        let seg = segment_of(self.days, ticket_send_ms(badge, action, ts_ms));
        self.pop.tickets[seg].push(PlannedTicket {
            badge,
            action,
            ts_ms,
        });
    }

    /// Exhibitors' staff, the organiser's staff, press and guests: invited,
    /// free, and (except guests and press) there most days.
    fn workers(&mut self, venue: &Venue, vpd: f64) {
        let first = self.days[0].date;
        let last = self.days.len() - 1;
        for _ in venue.exhibitors() {
            let n =
                1 + u32::from(self.rng.random_bool(0.6)) + u32::from(self.rng.random_bool(0.25));
            for _ in 0..n {
                let b = self.add(TicketType::Exhibitor, Channel::Invitation, 0);
                let ts = self.office_hours(first, 7..=21);
                self.ticket(b, TicketAction::Issued, ts);
                self.attend_days(b, |_| 0.95);
            }
        }
        let groups: [(TicketType, f64, std::ops::RangeInclusive<u64>); 3] = [
            (
                TicketType::Staff,
                (f64::from(venue.capacity) / 100.0).max(4.0),
                1..=5,
            ),
            (TicketType::Press, (vpd / 500.0).max(3.0), 2..=10),
            (TicketType::Vip, (vpd / 200.0).max(5.0), 7..=14),
        ];
        for (kind, count, before) in groups {
            for _ in 0..count.round() as usize {
                let b = self.add(kind, Channel::Invitation, 0);
                let ts = self.office_hours(first, before.clone());
                self.ticket(b, TicketAction::Issued, ts);
                // Press and guests come for the opening; a few return.
                self.attend_days(b, |d| match kind {
                    TicketType::Staff => 0.9,
                    TicketType::Press if d == 0 => 0.8,
                    TicketType::Press => 0.12,
                    _ if d == 0 => 0.7,
                    _ if d == last => 0.3,
                    _ => 0.05,
                });
            }
        }
    }

    fn attend_days(&mut self, b: u32, chance: impl Fn(usize) -> f64) {
        for d in 0..self.days.len() {
            if self.rng.random_bool(chance(d)) {
                self.attend(b, d as u16);
            }
        }
    }

    /// A new visitor coming on `day`, with the no-shows and cancellations
    /// that go with their channel.
    fn new_visitor(&mut self, day: &SimDay) -> u32 {
        let u: f64 = self.rng.random();
        let b = if u < ONLINE_SHARE {
            let (b, _) = self.online(day);
            if self
                .rng
                .random_bool(ONLINE_NO_SHOW / (1.0 - ONLINE_NO_SHOW))
            {
                self.online(day);
            }
            if self
                .rng
                .random_bool(ONLINE_CANCELLED / (1.0 - ONLINE_CANCELLED))
            {
                let (c, issued) = self.online(day);
                self.cancel(c, issued, day);
            }
            b
        } else if u < ONLINE_SHARE + INVITATION_SHARE {
            let b = self.invitation();
            if self
                .rng
                .random_bool(INVITATION_NO_SHOW / (1.0 - INVITATION_NO_SHOW))
            {
                self.invitation();
            }
            b
        } else {
            let price = if self.rng.random_bool(REDUCED_SHARE) {
                self.prices.reduced_cents
            } else {
                self.prices.visitor_cents
            };
            // Issued at the gate on arrival, by the day simulation.
            self.add(TicketType::Visitor, Channel::Onsite, price)
        };
        self.attend(b, day.index as u16);
        b
    }

    /// An online ticket for `day`: bought from three weeks before the fair,
    /// mostly in the last days, a fifth on the morning of the visit.
    /// Returns the badge and the ticket's issue instant.
    fn online(&mut self, day: &SimDay) -> (u32, i64) {
        let b = self.add(
            TicketType::Visitor,
            Channel::Online,
            self.prices.visitor_cents,
        );
        let ts = if self.rng.random_bool(0.2) {
            (day.opens_ms - self.rng.random_range(10 * MINUTE_MS..4 * HOUR_MS)).max(day.start_ms)
        } else {
            let exp = Exp::new(0.25).expect("a positive rate is valid");
            let k = 1 + (exp.sample(self.rng) as u64).min(PRESALE_DAYS);
            let earliest = self.days[0]
                .date
                .checked_sub_days(Days::new(PRESALE_DAYS))
                .unwrap_or(day.date);
            let date = day
                .date
                .checked_sub_days(Days::new(k))
                .unwrap_or(earliest)
                .max(earliest);
            // Evenings are when people shop online.
            const FROM_8H: [u32; 16] = [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 5, 6, 6, 5, 3];
            let hour = 8 + weighted_index(&FROM_8H, self.rng) as i64;
            local_ms(self.venue, date, hour * 60 + self.rng.random_range(0..60))
        };
        self.ticket(b, TicketAction::Issued, ts);
        (b, ts)
    }

    fn cancel(&mut self, b: u32, issued: i64, day: &SimDay) {
        let latest = day.opens_ms - HOUR_MS;
        let ts = if latest > issued + 30 * MINUTE_MS {
            self.rng.random_range(issued + 30 * MINUTE_MS..latest)
        } else {
            issued + self.rng.random_range(10 * MINUTE_MS..30 * MINUTE_MS)
        };
        self.ticket(b, TicketAction::Cancelled, ts);
    }

    /// A visitor invitation, sent with one of the organiser's mailings
    /// before the fair.
    fn invitation(&mut self) -> u32 {
        let b = self.add(TicketType::Visitor, Channel::Invitation, 0);
        const MAILINGS: [u64; 6] = [18, 14, 10, 7, 4, 2];
        let before = MAILINGS[self.rng.random_range(0..MAILINGS.len())];
        let ts = self.office_hours(self.days[0].date, before..=before);
        self.ticket(b, TicketAction::Issued, ts);
        b
    }

    /// An instant during office hours, some days before `date`.
    fn office_hours(&mut self, date: NaiveDate, days_before: std::ops::RangeInclusive<u64>) -> i64 {
        let k = self.rng.random_range(days_before);
        let date = date.checked_sub_days(Days::new(k)).unwrap_or(date);
        local_ms(self.venue, date, self.rng.random_range(9 * 60..18 * 60))
    }
}

/// An index drawn with the given integer weights (not all zero).
fn weighted_index(weights: &[u32], rng: &mut impl Rng) -> usize {
    let mut pick = rng.random_range(0..weights.iter().sum::<u32>().max(1));
    for (i, &w) in weights.iter().enumerate() {
        if pick < w {
            return i;
        }
        pick -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reference_population() {
        let venue = footfall_schemas::venue::reference();
        let days = SimDay::plan(&venue, 0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let pop = plan(&venue, &days, 5000, &TicketPrices::default(), &mut rng);
        let visitors_per_day: Vec<usize> = pop
            .per_day
            .iter()
            .map(|d| {
                d.iter()
                    .filter(|&&b| pop.badges[b as usize].kind == TicketType::Visitor)
                    .count()
            })
            .collect();
        let mean = visitors_per_day.iter().sum::<usize>() as f64 / 7.0;
        assert!((mean - 5000.0).abs() < 60.0, "{visitors_per_day:?}");
        // Saturday (the last day) is the busiest.
        assert_eq!(visitors_per_day.iter().max(), visitors_per_day.last());
        // No badge twice on one day.
        for d in &pop.per_day {
            let mut v = d.clone();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), d.len());
        }
        // Returning visitors exist.
        let multi = pop.badges.iter().enumerate().filter(|(i, b)| {
            b.kind == TicketType::Visitor
                && pop
                    .per_day
                    .iter()
                    .filter(|d| d.contains(&(*i as u32)))
                    .count()
                    > 1
        });
        assert!(multi.count() > 1000);
        // Online sales start three weeks before, nothing after the last day.
        let first = days[0].start_ms;
        let all: Vec<_> = pop.tickets.iter().flatten().collect();
        assert!(
            all.iter()
                .all(|t| t.ts_ms >= first - 22 * 24 * HOUR_MS && t.ts_ms < days[6].end_ms)
        );
        assert!(all.iter().any(|t| t.action == TicketAction::Cancelled));
        // Cancelled badges never come.
        for t in all.iter().filter(|t| t.action == TicketAction::Cancelled) {
            assert_eq!(pop.badges[t.badge as usize].first_day, NO_DAY);
        }
    }
}
