//! The emitter: turns what happens (a badge at a scanner, a ticket sold) into
//! compact records of what is sent, applying the scanner faults, and feeds the
//! truth with every valid entry as it is emitted.
//!
//! Invariant: records are compact (no strings) so a whole day fits in memory
//! at any scale; lines are only written when a chunk is handed out. Every
//! record of a day segment has its `ts` and its send instant inside that day.

use footfall_schemas::events::{Direction, TicketAction};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{LocalClock, SimDay};
use crate::config::Faults;
use crate::faults::{Malformed, Outage, ScannerTraits};
use crate::layout::ScannerZones;
use crate::tickets::ticket_send_ms;
use crate::truth::DayTruth;

/// What a record sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecKind {
    /// `what` is the scanner index.
    Scan(Direction),
    Ticket(TicketAction),
    /// A broken copy of a would-be scan by scanner `what`.
    Malformed(Malformed, Direction),
}

/// One line to send, before it is written. 32 bytes: a large day holds
/// millions of them, and sorting moves them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec {
    pub send_ms: i64,
    /// The event number in its `event_id`; a retry repeats its original's.
    pub id: u64,
    /// `ts - send_ms`: within a day either way, so it fits.
    ts_delta_ms: i32,
    pub badge: u32,
    pub what: u32,
    pub kind: RecKind,
    pub retry: bool,
    /// Held back by an offline scanner.
    pub late: bool,
}

const _: () = assert!(std::mem::size_of::<Rec>() == 32, "keep records small");

impl Rec {
    /// The `ts` written: the scanner's clock, skew included.
    pub fn ts_ms(&self) -> i64 {
        self.send_ms + i64::from(self.ts_delta_ms)
    }

    /// The same event sent at another instant.
    fn sent_at(self, send_ms: i64) -> Self {
        let ts_ms = self.ts_ms();
        Self {
            send_ms,
            ts_delta_ms: delta(ts_ms, send_ms),
            ..self
        }
    }
}

fn delta(ts_ms: i64, send_ms: i64) -> i32 {
    i32::try_from(ts_ms - send_ms)
        .expect("ts and send instants of a segment are less than 24 days apart")
}

/// Counts the emitter keeps for the stats of a segment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EmitCounts {
    pub visits: u64,
    pub outages: u64,
}

pub(crate) struct Emitter<'a> {
    pub rng: ChaCha8Rng,
    pub recs: Vec<Rec>,
    pub truth: DayTruth,
    pub counts: EmitCounts,
    next_id: &'a mut u64,
    faults: &'a Faults,
    traits: &'a ScannerTraits,
    zones: &'a [ScannerZones],
    clock: &'a mut LocalClock,
    outages: Vec<Option<Outage>>,
    /// The day being simulated; `None` for the pre-fair segment (tickets only).
    day: Option<&'a SimDay>,
    /// Nothing of this segment may be sent at or after this instant.
    send_before_ms: i64,
}

impl<'a> Emitter<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rng: ChaCha8Rng,
        next_id: &'a mut u64,
        faults: &'a Faults,
        traits: &'a ScannerTraits,
        zones: &'a [ScannerZones],
        clock: &'a mut LocalClock,
        day: Option<&'a SimDay>,
        send_before_ms: i64,
    ) -> Self {
        Self {
            rng,
            recs: Vec::new(),
            truth: DayTruth::default(),
            counts: EmitCounts::default(),
            next_id,
            faults,
            traits,
            zones,
            clock,
            outages: Vec::new(),
            day,
            send_before_ms,
        }
    }

    pub fn reserve(&mut self, records: usize) {
        self.recs.reserve(records);
    }

    pub fn set_outages(&mut self, outages: Vec<Option<Outage>>) {
        self.counts.outages = outages.iter().flatten().count() as u64;
        self.outages = outages;
    }

    fn next_id(&mut self) -> u64 {
        *self.next_id += 1;
        *self.next_id
    }

    /// A badge at a scanner at `at_ms` (real time).
    pub fn scan(&mut self, badge: u32, scanner: u32, at_ms: i64, direction: Direction) {
        let Some(day) = self.day else {
            debug_assert!(false, "scans only happen on a fair day");
            return;
        };
        let at_ms = day.clamp(at_ms);
        let ts_ms = day.clamp(at_ms + self.traits.skew_ms[scanner as usize]);
        let held = self
            .outages
            .get(scanner as usize)
            .copied()
            .flatten()
            .and_then(|o| o.held_until(at_ms));
        let send_ms = held
            .unwrap_or_else(|| at_ms + self.rng.random_range(50..2_000))
            .min(self.send_before_ms - 1);
        let id = self.next_id();
        let rec = Rec {
            send_ms,
            id,
            ts_delta_ms: delta(ts_ms, send_ms),
            badge,
            what: scanner,
            kind: RecKind::Scan(direction),
            retry: false,
            late: held.is_some(),
        };
        self.push_with_retries(rec);
        if direction == Direction::In {
            let hour = self.clock.local_hour(ts_ms);
            self.truth.entry(hour, self.zones[scanner as usize]);
        }
        if self.rng.random_bool(self.faults.malformed_rate) {
            let id = self.next_id();
            let send_ms = (send_ms + self.rng.random_range(0..1_500)).min(self.send_before_ms - 1);
            let kind = RecKind::Malformed(Malformed::pick(&mut self.rng), direction);
            self.recs.push(Rec {
                id,
                kind,
                late: false,
                ..rec.sent_at(send_ms)
            });
        }
    }

    /// A ticket event at `ts_ms`, sent by the ticketing system.
    pub fn ticket(&mut self, badge: u32, action: TicketAction, ts_ms: i64) {
        let ts_ms = ts_ms.div_euclid(1000) * 1000;
        let send_ms = ticket_send_ms(badge, action, ts_ms).min(self.send_before_ms - 1);
        let id = self.next_id();
        let rec = Rec {
            send_ms,
            id,
            ts_delta_ms: delta(ts_ms, send_ms),
            badge,
            what: 0,
            kind: RecKind::Ticket(action),
            retry: false,
            late: false,
        };
        self.push_with_retries(rec);
    }

    fn push_with_retries(&mut self, rec: Rec) {
        self.recs.push(rec);
        if self.rng.random_bool(self.faults.retry_rate) {
            let copies = if self.rng.random_bool(0.1) { 2 } else { 1 };
            let mut send_ms = rec.send_ms;
            for _ in 0..copies {
                // The sender's timeout, then its backoff.
                send_ms =
                    (send_ms + self.rng.random_range(2_000..30_000)).min(self.send_before_ms - 1);
                self.recs.push(Rec {
                    retry: true,
                    ..rec.sent_at(send_ms)
                });
            }
        }
    }

    /// Closes one badge's day: its distinct visitors are counted.
    pub fn end_visit(&mut self) {
        self.counts.visits += 1;
        self.truth.end_visit();
    }

    /// The records in send order. Records sent in the same millisecond keep
    /// an order fixed by their generation (the sort is deterministic), a
    /// retry always after its original.
    pub fn finish(mut self) -> (Vec<Rec>, DayTruth, EmitCounts) {
        // One integer key: comparing tuples made this sort a fifth of the run.
        self.recs
            .sort_unstable_by_key(|r| (r.send_ms << 1) | i64::from(r.retry));
        (self.recs, self.truth, self.counts)
    }
}
