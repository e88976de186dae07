//! Segments: the run is cut at the venue's local midnights into a pre-fair
//! segment (online sales, invitations) and one segment per fair day (that
//! day's scans, and the tickets sold until the next day). Each segment is
//! generated whole, sorted by send time, then handed out in chunks.
//!
//! Invariant: everything of segment `k` is sent before everything of
//! segment `k + 1`, so concatenating segments keeps the stream in send order,
//! and memory holds one segment at a time. A segment depends only on the run's
//! plan and its own random stream.

use footfall_schemas::Venue;
use footfall_schemas::events::{Channel, TicketType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::calendar::{LocalClock, MINUTE_MS, SimDay};
use crate::config::Faults;
use crate::emit::{EmitCounts, Emitter, Rec};
use crate::faults::{ScannerTraits, plan_outages};
use crate::layout::Layout;
use crate::tickets::Population;
use crate::truth::DayTruth;
use crate::visitor::{self, Arrival, DayPlan, DaySession};

/// Share of visitors who come for one session of the day (and arrive
/// shortly before it): morning sessions fill although the floor is quiet.
const COMES_FOR_A_SESSION: f64 = 0.04;
const NO_SESSION: usize = usize::MAX;

/// What stays fixed for the whole run.
pub(crate) struct Run<'v> {
    pub venue: &'v Venue,
    pub seed: u64,
    pub days: Vec<SimDay>,
    pub layout: Layout,
    pub pop: Population,
    pub traits: ScannerTraits,
    pub faults: Faults,
}

impl Run<'_> {
    /// Segments in the run: the pre-fair one, then one per day.
    pub fn segments(&self) -> usize {
        self.days.len() + 1
    }

    /// Generates segment `seg`, in send order. `next_id` numbers events
    /// across the run.
    pub fn segment(
        &self,
        seg: usize,
        next_id: &mut u64,
        clock: &mut LocalClock,
    ) -> (Vec<Rec>, DayTruth, EmitCounts) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // Stream 0 planned the run; each segment has its own.
        rng.set_stream(seg as u64 + 1);
        let day = seg.checked_sub(1).and_then(|d| self.days.get(d));
        let send_before_ms = match (self.days.get(seg), self.days.last()) {
            (Some(next), _) => next.start_ms,
            (None, Some(last)) => last.end_ms,
            (None, None) => i64::MAX,
        };
        let mut em = Emitter::new(
            rng,
            next_id,
            &self.faults,
            &self.traits,
            &self.layout.zones,
            clock,
            day,
            send_before_ms,
        );
        // About 35 scans a visit: one allocation instead of doubling copies.
        let visits = day.map_or(0, |d| self.pop.per_day[d.index].len());
        em.reserve(self.pop.tickets[seg].len() + visits * 36);
        for t in &self.pop.tickets[seg] {
            em.ticket(t.badge, t.action, t.ts_ms);
        }
        if let Some(day) = day {
            self.simulate_day(day, &mut em);
        }
        em.finish()
    }

    fn simulate_day(&self, day: &SimDay, em: &mut Emitter) {
        let outages = plan_outages(self.venue.scanners.len(), day, &self.faults, &mut em.rng);
        em.set_outages(outages);
        let sessions = day_sessions(self.venue, &self.layout, day);
        let mut plan = DayPlan {
            day,
            layout: &self.layout,
            seats: vec![0; sessions.len()],
            sessions,
        };

        // Sessions draw their own audience, by appeal and seats.
        let mut draw = Vec::with_capacity(plan.sessions.len());
        let mut total = 0.0;
        for s in &plan.sessions {
            total += s.appeal * f64::from(s.capacity);
            draw.push(total);
        }
        let mut arrivals: Vec<(i64, u32, usize)> = self.pop.per_day[day.index]
            .iter()
            .map(|&b| {
                let mut target = NO_SESSION;
                let at = match self.pop.badges[b as usize].kind {
                    TicketType::Exhibitor => {
                        day.opens_ms - em.rng.random_range(15 * MINUTE_MS..75 * MINUTE_MS)
                    }
                    TicketType::Staff => {
                        day.opens_ms - em.rng.random_range(30 * MINUTE_MS..90 * MINUTE_MS)
                    }
                    // Guests come for the opening ceremony.
                    TicketType::Vip if day.index == 0 => {
                        day.opens_ms + em.rng.random_range(0..60 * MINUTE_MS)
                    }
                    _ if total > 0.0 && em.rng.random_bool(COMES_FOR_A_SESSION) => {
                        let u = em.rng.random::<f64>() * total;
                        target = draw.partition_point(|&c| c <= u).min(draw.len() - 1);
                        let start = plan.sessions[target].start_ms;
                        (start - em.rng.random_range(5 * MINUTE_MS..40 * MINUTE_MS))
                            .max(day.opens_ms)
                    }
                    _ => day.arrival(&mut em.rng),
                };
                (day.clamp(at), b, target)
            })
            .collect();
        // First come, first seated.
        arrivals.sort_unstable();
        for (at_ms, b, target) in arrivals {
            let badge = self.pop.badges[b as usize];
            match badge.kind {
                TicketType::Exhibitor | TicketType::Staff => {
                    visitor::work(em, &plan, b, badge.kind, at_ms)
                }
                kind => {
                    let sells_ticket = badge.channel == Channel::Onsite
                        && usize::from(badge.first_day) == day.index;
                    let for_session = (target != NO_SESSION).then_some(target);
                    visitor::visit(
                        em,
                        &mut plan,
                        b,
                        kind,
                        Arrival {
                            at_ms,
                            sells_ticket,
                            for_session,
                        },
                    );
                }
            }
            em.end_visit();
        }
    }
}

/// The day's sessions in rooms that have a scanner, by start time.
fn day_sessions(venue: &Venue, layout: &Layout, day: &SimDay) -> Vec<DaySession> {
    let mut sessions: Vec<DaySession> = venue
        .sessions
        .iter()
        .filter_map(|s| {
            let start_ms = s.starts_at.timestamp_millis();
            if !(day.start_ms..day.end_ms).contains(&start_ms) {
                return None;
            }
            let room = venue.rooms.iter().position(|r| r.id == s.room_id)?;
            if layout.rooms[room].is_empty() {
                return None;
            }
            let appeal = match s.kind.as_str() {
                "seminar" => 1.0,
                "lecture" => 0.8,
                _ => 0.6,
            };
            Some(DaySession {
                room: room as u32,
                start_ms,
                end_ms: s.ends_at.timestamp_millis().min(day.end_ms),
                capacity: venue.rooms[room].capacity,
                appeal,
            })
        })
        .collect();
    sessions.sort_by_key(|s| (s.start_ms, s.room));
    sessions
}
