//! Behaviour: what one badge does during one fair day. Visitors (and press
//! and guests) enter by a gate, walk from pole to pole following their own
//! interests, stop at stands, sit in the sessions that tempt them, and leave;
//! exhibitors and staff come before opening and leave after closing.
//!
//! Invariant: one badge's scans of a day are in time order per scanner: at a
//! stand or a room, an `out` is always after its `in`. Visitors stop doing
//! things at closing time; their exit scan is at most a few minutes later.

use footfall_schemas::events::{Direction, TicketAction, TicketType};
use rand::Rng;
use rand_distr::{Distribution, Gamma, LogNormal};

use crate::calendar::{MINUTE_MS, SimDay};
use crate::emit::Emitter;
use crate::layout::Layout;

const SEC: i64 = 1000;
const MIN: i64 = MINUTE_MS;

/// Share of stand and room visits that end with an `out` scan: people forget.
const STAND_OUT_SCANNED: f64 = 0.85;
const ROOM_OUT_SCANNED: f64 = 0.9;
/// Share of visitors whose exit is scanned (the rest walk past the lane).
const EXIT_SCANNED: f64 = 0.93;

/// A session of the day, in a room with a scanner.
#[derive(Clone, Debug)]
pub(crate) struct DaySession {
    pub room: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub capacity: u32,
    /// How readily a visitor present goes: seminars draw more than workshops.
    pub appeal: f64,
}

/// The day's shared state: the layout and the seats taken so far.
pub(crate) struct DayPlan<'a> {
    pub day: &'a SimDay,
    pub layout: &'a Layout,
    pub sessions: Vec<DaySession>,
    pub seats: Vec<u32>,
}

fn pick(rng: &mut impl Rng, items: &[u32]) -> Option<u32> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())])
}

/// An index drawn in proportion to `weights`; `None` when they are all zero.
fn pick_weighted(rng: &mut impl Rng, weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        u -= w;
        if u < 0.0 {
            return Some(i);
        }
    }
    weights.iter().rposition(|&w| w > 0.0)
}

/// The main gate takes more people: gate `i` weighs `1 / (i + 1)`.
fn pick_gate(rng: &mut impl Rng, layout: &Layout) -> usize {
    let total: f64 = (0..layout.gates.len())
        .map(|i| 1.0 / (i as f64 + 1.0))
        .sum();
    let mut u = rng.random::<f64>() * total;
    for i in 0..layout.gates.len() {
        u -= 1.0 / (i as f64 + 1.0);
        if u < 0.0 {
            return i;
        }
    }
    layout.gates.len().saturating_sub(1)
}

fn minutes(rng: &mut impl Rng, median_minutes: f64, sigma: f64, min: i64, max: i64) -> i64 {
    let d = LogNormal::new(median_minutes.ln(), sigma)
        .expect("a finite median and positive sigma are valid");
    ((d.sample(rng) * MIN as f64) as i64).clamp(min, max)
}

/// How a visitor comes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    pub at_ms: i64,
    /// The ticket is bought at the gate now.
    pub sells_ticket: bool,
    /// The session (index in [`DayPlan::sessions`]) they came for.
    pub for_session: Option<usize>,
}

/// A visitor's day.
pub(crate) fn visit(
    em: &mut Emitter,
    plan: &mut DayPlan,
    badge: u32,
    kind: TicketType,
    arrival: Arrival,
) {
    let Arrival {
        at_ms: arrival,
        sells_ticket,
        for_session,
    } = arrival;
    let (day, layout) = (plan.day, plan.layout);
    let close = day.closes_ms;
    if layout.gates.is_empty() {
        return;
    }
    if sells_ticket {
        em.ticket(badge, TicketAction::Issued, arrival);
    }
    let gate = pick_gate(&mut em.rng, layout);
    let mut t = arrival
        + if sells_ticket {
            em.rng.random_range(20 * SEC..3 * MIN)
        } else {
            0
        };
    if let Some(s) = pick(&mut em.rng, &layout.gates[gate].entry) {
        em.scan(badge, s, t, Direction::In);
    }
    t += em.rng.random_range(10 * SEC..60 * SEC);

    let median = match kind {
        TicketType::Vip => 70.0,
        TicketType::Press => 90.0,
        _ => 110.0,
    };
    let stay = minutes(&mut em.rng, median, 0.5, 12 * MIN, 8 * 60 * MIN);
    let mut leave = (arrival + stay).min(close - em.rng.random_range(0..10 * MIN));
    let pro = for_session.is_some()
        || em.rng.random_bool(if kind == TicketType::Visitor {
            0.15
        } else {
            0.5
        });
    let sessions = choose_sessions(em, plan, arrival, &mut leave, pro, for_session);

    // Personal taste: a weight per pole, heavy-tailed so that some visitors
    // mostly care about one pole. It fades as they see a pole.
    let taste = Gamma::new(0.6, 1.0).expect("constant parameters are valid");
    let mut interest: Vec<f64> = layout
        .poles
        .iter()
        .map(|p| p.pull * (taste.sample(&mut em.rng) + 0.02))
        .collect();
    let mut seen_in_pole = vec![0usize; layout.poles.len()];
    let mut pole: Option<usize> = None;
    let mut last_stand: Option<usize> = None;
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut next = 0;
    loop {
        let next_go = sessions.get(next).map(|&(_, go)| go);
        if let Some(&(s, go)) = sessions.get(next)
            && t + 3 * MIN >= go
        {
            t = attend(em, plan, badge, s, go.max(t + 30 * SEC), t);
            next += 1;
            pole = None;
            continue;
        }
        if t >= leave || t >= close - 2 * MIN {
            break;
        }
        // Move on by chance, or when most of the pole has been seen.
        let done = |p: usize| 2 * seen_in_pole[p] >= layout.poles[p].stands.len();
        if pole.is_none_or(|p| done(p) || em.rng.random_bool(layout.poles[p].move_on)) {
            if let Some(p) = pole {
                interest[p] *= if done(p) { 0.05 } else { 0.4 };
            }
            let Some(p) = pick_weighted(&mut em.rng, &interest) else {
                break;
            };
            if Some(p) != pole {
                t += em.rng.random_range(40 * SEC..3 * MIN);
                if let Some(s) = pick(&mut em.rng, &layout.poles[p].entrance) {
                    em.scan(badge, s, t, Direction::In);
                    t += em.rng.random_range(5 * SEC..30 * SEC);
                }
                pole = Some(p);
                last_stand = None;
            }
        }
        let Some(p) = pole else { break };
        let spot = &layout.poles[p];
        if spot.stands.is_empty() {
            // A pole with no scanned stand: browse, then move on.
            t += em.rng.random_range(3 * MIN..10 * MIN);
            pole = None;
            continue;
        }
        // Half the time the next stand is a neighbour along the aisle;
        // otherwise a popular one. Revisits happen, but rarely.
        let mut stand = 0;
        for _ in 0..4 {
            stand = match last_stand {
                Some(l) if em.rng.random_bool(0.55) => {
                    let step = em.rng.random_range(1..=3) as usize;
                    if em.rng.random_bool(0.5) {
                        l.saturating_sub(step)
                    } else {
                        (l + step).min(spot.stands.len() - 1)
                    }
                }
                _ => spot.popular_stand(&mut em.rng).unwrap_or(0),
            };
            if !seen.contains(&(p, stand)) {
                break;
            }
        }
        seen.push((p, stand));
        seen_in_pole[p] += 1;
        last_stand = Some(stand);
        t += em.rng.random_range(15 * SEC..2 * MIN);
        if t >= close - 2 * MIN {
            break;
        }
        let mut end = t + minutes(&mut em.rng, 3.5, 0.8, 20 * SEC, 40 * MIN);
        end = end.min(close - em.rng.random_range(0..MIN));
        if let Some(go) = next_go
            && go > t
        {
            end = end.min(go - 30 * SEC);
        }
        let end = end.max(t + 5 * SEC);
        if let Some(s) = pick(&mut em.rng, &spot.stands[stand].scanners) {
            em.scan(badge, s, t, Direction::In);
            if em.rng.random_bool(STAND_OUT_SCANNED) {
                em.scan(badge, s, end, Direction::Out);
            }
        }
        t = end;
        if em.rng.random_bool(0.05) {
            // A pause off the scanners: café, prayer, a phone call.
            t += em.rng.random_range(8 * MIN..25 * MIN);
            pole = None;
        }
    }

    let gate = if em.rng.random_bool(0.7) {
        gate
    } else {
        pick_gate(&mut em.rng, layout)
    };
    let exit = (t + em.rng.random_range(MIN..5 * MIN)).min(close + em.rng.random_range(0..8 * MIN));
    if em.rng.random_bool(EXIT_SCANNED)
        && let Some(s) = pick(&mut em.rng, &layout.gates[gate].exit)
    {
        em.scan(badge, s, exit.max(t), Direction::Out);
    }
}

/// Picks the sessions a visitor will attend (always the one they came for,
/// while seats last), takes their seats and extends the visit to cover
/// them. Returns (session, time they walk in).
fn choose_sessions(
    em: &mut Emitter,
    plan: &mut DayPlan,
    arrival: i64,
    leave: &mut i64,
    pro: bool,
    target: Option<usize>,
) -> Vec<(usize, i64)> {
    let mut chosen = Vec::new();
    let (max, chance) = if pro { (3, 0.5) } else { (1, 0.05) };
    // Professionals stay on for a session that starts after they meant to go.
    let horizon = *leave + if pro { 45 * MIN } else { 0 } - 15 * MIN;
    // Someone arriving just after a start may still slip in.
    let mut free_from = arrival - 10 * MIN;
    let target_start = target
        .and_then(|t| plan.sessions.get(t))
        .map_or(i64::MAX, |s| s.start_ms);
    for (i, s) in plan.sessions.iter().enumerate() {
        if chosen.len() >= max {
            break;
        }
        if s.start_ms > horizon && Some(i) != target {
            continue;
        }
        let wanted = Some(i) == target
            || (s.end_ms <= target_start || s.start_ms > target_start)
                && em.rng.random_bool((chance * s.appeal).min(1.0));
        if s.start_ms < free_from || plan.seats[i] >= s.capacity || !wanted {
            continue;
        }
        plan.seats[i] += 1;
        // Most come in the quarter hour before the start; some are late.
        let go = if em.rng.random_bool(0.15) {
            s.start_ms + em.rng.random_range(MIN..15 * MIN)
        } else {
            s.start_ms - em.rng.random_range(0..15 * MIN)
        };
        chosen.push((i, go));
        free_from = s.end_ms;
        *leave = (*leave)
            .max(s.end_ms + em.rng.random_range(5 * MIN..30 * MIN))
            .min(plan.day.closes_ms);
    }
    chosen
}

/// Sits in session `s` from `walk_in`; returns when the visitor is back on
/// the floor.
fn attend(em: &mut Emitter, plan: &DayPlan, badge: u32, s: usize, walk_in: i64, now: i64) -> i64 {
    let session = &plan.sessions[s];
    let close = plan.day.closes_ms;
    let Some(door) = pick(&mut em.rng, &plan.layout.rooms[session.room as usize]) else {
        return now;
    };
    if walk_in >= session.end_ms - 5 * MIN || walk_in >= close - 2 * MIN {
        return now;
    }
    em.scan(badge, door, walk_in, Direction::In);
    let early_leave = session.end_ms - walk_in > 20 * MIN && em.rng.random_bool(0.12);
    let out = if early_leave {
        em.rng.random_range(walk_in + 10 * MIN..session.end_ms)
    } else {
        session.end_ms + em.rng.random_range(0..4 * MIN)
    };
    let out = out.min(close - MIN).max(walk_in + MIN);
    if em.rng.random_bool(ROOM_OUT_SCANNED) {
        em.scan(badge, door, out, Direction::Out);
    }
    out + em.rng.random_range(30 * SEC..3 * MIN)
}

/// An exhibitor's or staff member's day: in before opening, out after
/// closing, and sometimes out for lunch.
pub(crate) fn work(em: &mut Emitter, plan: &DayPlan, badge: u32, kind: TicketType, arrival: i64) {
    let (day, layout) = (plan.day, plan.layout);
    if layout.gates.is_empty() {
        return;
    }
    let gate = pick_gate(&mut em.rng, layout);
    let lanes = &layout.gates[gate];
    if let Some(s) = pick(&mut em.rng, &lanes.entry) {
        em.scan(badge, s, arrival, Direction::In);
    }
    let open_ms = day.closes_ms - day.opens_ms;
    if em.rng.random_bool(0.3) {
        let out = day.opens_ms + (open_ms as f64 * em.rng.random_range(0.3..0.5)) as i64;
        if em.rng.random_bool(EXIT_SCANNED)
            && let Some(s) = pick(&mut em.rng, &lanes.exit)
        {
            em.scan(badge, s, out, Direction::Out);
        }
        let back = out + em.rng.random_range(30 * MIN..75 * MIN);
        if let Some(s) = pick(&mut em.rng, &lanes.entry) {
            em.scan(badge, s, back, Direction::In);
        }
    }
    let after = if kind == TicketType::Staff {
        15 * MIN..60 * MIN
    } else {
        5 * MIN..40 * MIN
    };
    let leave = day.closes_ms + em.rng.random_range(after);
    if em.rng.random_bool(EXIT_SCANNED)
        && let Some(s) = pick(&mut em.rng, &lanes.exit)
    {
        em.scan(badge, s, leave, Direction::Out);
    }
}
