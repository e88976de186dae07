//! footfall's fair simulator: a seeded, deterministic week of visitors,
//! exhibitors, tickets and badge scanners (faults included) for any venue,
//! as the wire-format v1 lines the scanners would send, in send order, with
//! the `footfall_hourly` rows footfall must compute from them (the truth).
//!
//! ```no_run
//! # use footfall_sim::{SimConfig, Simulator};
//! let venue = footfall_schemas::venue::reference();
//! let mut sim = Simulator::new(&venue, SimConfig::default())?;
//! while let Some(chunk) = sim.next_chunk() {
//!     for out in chunk {
//!         println!("{}", out.line);
//!     }
//! }
//! sim.truth().write_ndjson(std::io::stderr())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For large files, [`Simulator::write_chunk`] writes the same lines as NDJSON
//! without allocating per line.
//!
//! Invariants: the same venue, config and seed give the same bytes (with one
//! build, on one platform); memory holds the run's badge plan and one day of
//! compact records (32 bytes an event), whatever the number of days; the
//! truth is computed while generating, from what is sent, never by reading
//! the lines back. Nothing here knows a particular venue.
//!
//! Layout: `config` (knobs), `calendar` (days, arrival curves, local hours),
//! `layout` (the venue as visitors see it), `tickets` (the badge population),
//! `visitor` (behaviour), `faults`, `emit` (events to records), `day`
//! (segments), `wire` (lines), `truth`, `hash` (a fast hasher).

mod calendar;
mod config;
mod day;
mod emit;
mod faults;
mod hash;
mod layout;
mod tickets;
mod truth;
mod visitor;
mod wire;

use chrono::{DateTime, Utc};
use footfall_schemas::Venue;
use footfall_schemas::events::TicketAction;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use config::{Faults, SimConfig, SimError, TicketPrices};
pub use truth::{Level, Truth, TruthRow};

use calendar::{LocalClock, SimDay};
use emit::{Rec, RecKind};
use faults::ScannerTraits;
use layout::Layout;
use wire::LineWriter;

/// What an outgoing line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutKind {
    /// A badge scan, first copy.
    Scan,
    /// A ticket event, first copy.
    Ticket,
    /// A line footfall must reject; not in the truth.
    Malformed,
    /// An identical copy of an earlier line (same `event_id`).
    Retry,
}

/// One line as the sender uploads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// When the line is uploaded: `ts` plus a short delay, later for a scanner
    /// back from an outage or for a retry.
    pub send_at: DateTime<Utc>,
    /// `None` for a malformed line whose id cannot be read (truncated).
    pub event_id: Option<String>,
    /// One JSON object, without a newline.
    pub line: String,
    pub kind: OutKind,
}

/// Counts of what was sent. Line counts cover every chunk handed out;
/// `visits`, `outages` and `days` cover complete segments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    pub lines: u64,
    /// Distinct valid badge scans (retries excluded), of which `in`.
    pub scans: u64,
    pub scans_in: u64,
    pub tickets_issued: u64,
    pub tickets_cancelled: u64,
    /// Extra copies sent.
    pub retries: u64,
    pub malformed: u64,
    /// Scans uploaded late by a scanner back from an outage.
    pub late_uploads: u64,
    /// (badge, day) pairs: people who came.
    pub visits: u64,
    pub outages: u64,
    /// Fair days fully sent.
    pub days: u32,
    /// Planned for the whole run.
    pub badges: u64,
    pub skewed_scanners: u64,
}

/// The simulator. Produces the run a chunk at a time, either as
/// [`Outgoing`] values ([`Simulator::next_chunk`], also an iterator) or as
/// NDJSON bytes ([`Simulator::write_chunk`], the fast path for big files).
pub struct Simulator<'v> {
    run: day::Run<'v>,
    writer: LineWriter,
    chunk_lines: usize,
    next_segment: usize,
    next_id: u64,
    clock: LocalClock,
    /// The segment being sent, in send order, and how much of it is sent.
    pending: Vec<Rec>,
    sent: usize,
    pending_truth: Option<truth::DayTruth>,
    pending_counts: emit::EmitCounts,
    truth: Truth,
    stats: SimStats,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Simulator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("venue", &self.run.venue.id)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'v> Simulator<'v> {
    /// Plans the run: days, badges, tickets, scanner clocks. Fails only for a
    /// config that does not validate ([`SimConfig::validate`]).
    pub fn new(venue: &'v Venue, config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let days = SimDay::plan(venue, config.days);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let layout = Layout::new(venue, &mut rng);
        let traits = ScannerTraits::plan(venue.scanners.len(), &config.faults, &mut rng);
        let visitors = config
            .visitors_per_day
            .unwrap_or_else(|| SimConfig::default_visitors_per_day(venue.capacity));
        let pop = tickets::plan(venue, &days, visitors, &config.tickets, &mut rng);
        let stats = SimStats {
            badges: pop.badges.len() as u64,
            skewed_scanners: traits.skewed() as u64,
            ..SimStats::default()
        };
        let writer = LineWriter::new(
            venue,
            config.seed,
            traits.local_offset.clone(),
            &config.tickets,
            &layout.unknown_scanner_prefix,
        );
        let run = day::Run {
            venue,
            seed: config.seed,
            days,
            layout,
            pop,
            traits,
            faults: config.faults,
        };
        Ok(Self {
            truth: Truth::new(venue),
            run,
            writer,
            chunk_lines: config.chunk_lines,
            next_segment: 0,
            next_id: 0,
            clock: LocalClock::new(venue.time_zone),
            pending: Vec::new(),
            sent: 0,
            pending_truth: None,
            pending_counts: emit::EmitCounts::default(),
            stats,
            buf: Vec::new(),
        })
    }

    /// The next lines in send order: at most `chunk_lines`, never spanning
    /// two segments. `None` when the run is over.
    pub fn next_chunk(&mut self) -> Option<Vec<Outgoing>> {
        let range = self.next_range()?;
        let mut chunk = Vec::with_capacity(range.len());
        for i in range.clone() {
            let rec = self.pending[i];
            self.buf.clear();
            let id = self.writer.write(&self.run.pop.badges, &rec, &mut self.buf);
            let line =
                String::from_utf8(self.buf.clone()).expect("the line writer only writes ASCII");
            chunk.push(Outgoing {
                send_at: DateTime::from_timestamp_millis(rec.send_ms)
                    .expect("send instants come from venue dates, within chrono's range"),
                event_id: id.map(|r| line[r].to_owned()),
                line,
                kind: count(&mut self.stats, &rec),
            });
        }
        self.advance(range.end);
        Some(chunk)
    }

    /// Writes the next chunk (the lines [`Simulator::next_chunk`] would give)
    /// to `out` as NDJSON, one `write_all`. Returns the number of lines, or
    /// `None` when the run is over. Fails when `out` fails; the chunk is then
    /// not counted as sent, and the next call writes it again.
    pub fn write_chunk(&mut self, out: &mut impl std::io::Write) -> std::io::Result<Option<usize>> {
        let Some(range) = self.next_range() else {
            return Ok(None);
        };
        let mut stats = self.stats.clone();
        self.buf.clear();
        for rec in &self.pending[range.clone()] {
            self.writer.write(&self.run.pop.badges, rec, &mut self.buf);
            self.buf.push(b'\n');
            count(&mut stats, rec);
        }
        out.write_all(&self.buf)?;
        self.stats = stats;
        self.advance(range.end);
        Ok(Some(range.len()))
    }

    /// The records of the next chunk, generating segments as needed.
    fn next_range(&mut self) -> Option<std::ops::Range<usize>> {
        while self.sent == self.pending.len() {
            if self.next_segment >= self.run.segments() {
                return None;
            }
            let (recs, truth, counts) =
                self.run
                    .segment(self.next_segment, &mut self.next_id, &mut self.clock);
            self.next_segment += 1;
            self.pending = recs;
            self.sent = 0;
            self.pending_truth = Some(truth);
            self.pending_counts = counts;
            if self.pending.is_empty() {
                self.advance(0);
            }
        }
        Some(self.sent..(self.sent + self.chunk_lines).min(self.pending.len()))
    }

    /// Marks records up to `end` as sent; a segment sent in full goes into
    /// the truth and the stats.
    fn advance(&mut self, end: usize) {
        self.sent = end;
        if self.sent < self.pending.len() {
            return;
        }
        if let Some(truth) = self.pending_truth.take() {
            self.truth.merge(truth);
            self.stats.visits += self.pending_counts.visits;
            self.stats.outages += self.pending_counts.outages;
            if self.next_segment > 1 {
                self.stats.days += 1;
            }
        }
        // Free the segment now rather than when the next one is generated.
        self.pending = Vec::new();
        self.sent = 0;
    }

    /// The expected `footfall_hourly` of every segment sent in full (after
    /// the last chunk: of the whole run).
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The simulated fair days, in order.
    pub fn days(&self) -> Vec<chrono::NaiveDate> {
        self.run.days.iter().map(|d| d.date).collect()
    }
}

impl Iterator for Simulator<'_> {
    type Item = Vec<Outgoing>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk()
    }
}

fn count(stats: &mut SimStats, rec: &Rec) -> OutKind {
    stats.lines += 1;
    if rec.retry {
        stats.retries += 1;
        return OutKind::Retry;
    }
    match rec.kind {
        RecKind::Scan(direction) => {
            stats.scans += 1;
            stats.scans_in += u64::from(direction == footfall_schemas::events::Direction::In);
            stats.late_uploads += u64::from(rec.late);
            OutKind::Scan
        }
        RecKind::Ticket(action) => {
            match action {
                TicketAction::Issued => stats.tickets_issued += 1,
                TicketAction::Cancelled => stats.tickets_cancelled += 1,
            }
            OutKind::Ticket
        }
        RecKind::Malformed(..) => {
            stats.malformed += 1;
            OutKind::Malformed
        }
    }
}
