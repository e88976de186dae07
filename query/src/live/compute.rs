//! Builds the [`LiveState`] from the tables with a few grouped SQL queries
//! over the current snapshot, restricted to the log partitions this
//! instance owns, so that summing every instance's numbers (as Prometheus
//! does) counts each event once.
//!
//! Why SQL over the snapshot rather than counters kept by the materialiser:
//! the snapshot is rebuilt from the checkpoint after a restart, so the live
//! numbers are too, with no second state to persist; and the occupancy rule
//! is computed from the same rows the `occupancy` view reads.

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::prelude::SessionContext;
use std::collections::{BTreeMap, HashMap};

use footfall_schemas::Venue;

use super::state::{
    Alert, CodeCount, LAG_EVENTS_ALERT, LiveState, NEAR_CAPACITY, SILENT_AFTER_S, ScannerState,
    SessionState, TicketCount, ZoneState, live_clock, zones_of,
};
use crate::materialise::Local;

/// How many stands `busiest_stands` lists.
const BUSIEST_STANDS: usize = 10;
/// Most silent scanners listed on the page (all are in `/metrics`).
const SILENT_LISTED: usize = 50;

/// The log partitions one instance owns, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    pub scans: Vec<i32>,
    pub tickets: Vec<i32>,
    pub rejected: Vec<i32>,
}

/// Computes the live state at `wall`. Fails when a query fails (a bug or a
/// file that vanished under the snapshot; the caller keeps the last state).
pub async fn compute(
    ctx: &SessionContext,
    venue: &Venue,
    owned: &Owned,
    wall: DateTime<Utc>,
    lag_events: i64,
) -> datafusion::error::Result<LiveState> {
    let scans = partition_filter(&owned.scans);
    let newest = if owned.scans.is_empty() {
        None
    } else {
        let rows = run(
            ctx,
            &format!("SELECT max(ts) AS newest FROM scans WHERE {scans}"),
        )
        .await?;
        rows.first()
            .and_then(|b| ints(b, 0).ok())
            .and_then(|a| (a.len() > 0 && a.is_valid(0)).then(|| a.value(0)))
            .and_then(DateTime::from_timestamp_millis)
    };
    let (clock, clock_source) = live_clock(wall, newest);
    let today = Local::of(clock, venue.time_zone).date();
    let open = venue.day(today).is_some_and(|d| {
        let (opens, closes) = venue.opening(d);
        opens <= clock && clock < closes
    });

    // Per scanner and direction: ever, today, the last hour, the last 15 min.
    let mut per_scanner: HashMap<String, [ScannerCounts; 2]> = HashMap::new();
    if !owned.scans.is_empty() {
        let c = lit_ts(clock);
        let h = lit_ts(clock - Duration::hours(1));
        let q = lit_ts(clock - Duration::minutes(15));
        let d = lit_day(today);
        let sql = format!(
            "SELECT scanner_id, direction, count(*) AS total, \
               sum(CASE WHEN local_day = {d} AND ts <= {c} THEN 1 ELSE 0 END) AS today, \
               sum(CASE WHEN ts > {h} AND ts <= {c} THEN 1 ELSE 0 END) AS last_hour, \
               sum(CASE WHEN ts > {q} AND ts <= {c} THEN 1 ELSE 0 END) AS last_15m, \
               max(ts) AS last_seen \
             FROM scans WHERE {scans} GROUP BY scanner_id, direction"
        );
        for batch in run(ctx, &sql).await? {
            let (id, dir) = (strings(&batch, 0)?, strings(&batch, 1)?);
            let cols = [1, 2, 3, 4, 5].map(|i| ints(&batch, i + 1));
            let [total, today_n, hour, quarter, last] = cols;
            let (total, today_n, hour, quarter, last) = (total?, today_n?, hour?, quarter?, last?);
            for i in 0..batch.num_rows() {
                let slot = usize::from(dir.value(i) == "out");
                let e = &mut per_scanner.entry(id.value(i).to_owned()).or_default()[slot];
                e.total += total.value(i).max(0) as u64;
                e.today += today_n.value(i).max(0) as u64;
                e.last_hour += hour.value(i).max(0) as u64;
                e.last_15m += quarter.value(i).max(0) as u64;
                if last.is_valid(i) {
                    e.last_seen = e
                        .last_seen
                        .max(DateTime::from_timestamp_millis(last.value(i)));
                }
            }
        }
    }

    let mut zones = ZoneTable::new(venue);
    for (scanner, [ins, outs]) in &per_scanner {
        for (level, id) in zones_of(venue, scanner) {
            zones.add(level, id, ins, outs);
        }
    }
    let at_stands = if open && !owned.scans.is_empty() {
        at_stands(ctx, &owned.scans, today, clock).await?
    } else {
        HashMap::new()
    };
    let (mut main, mut stands) = zones.finish(venue, open, &at_stands);

    let sessions = sessions(ctx, venue, &owned.scans, clock).await?;
    let scanners = scanners(venue, &per_scanner, clock, today, open);
    let tickets = if owned.tickets.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT action, ticket_type, count(*) AS n FROM tickets WHERE {} \
             GROUP BY action, ticket_type ORDER BY action, ticket_type",
            partition_filter(&owned.tickets)
        );
        let mut out = Vec::new();
        for b in run(ctx, &sql).await? {
            let (a, t, n) = (strings(&b, 0)?, strings(&b, 1)?, ints(&b, 2)?);
            for i in 0..b.num_rows() {
                out.push(TicketCount {
                    action: a.value(i).to_owned(),
                    ticket_type: t.value(i).to_owned(),
                    count: n.value(i).max(0) as u64,
                });
            }
        }
        out
    };
    let rejected = if owned.rejected.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT code, count(*) AS n FROM rejected WHERE {} GROUP BY code ORDER BY code",
            partition_filter(&owned.rejected)
        );
        let mut out = Vec::new();
        for b in run(ctx, &sql).await? {
            let (c, n) = (strings(&b, 0)?, ints(&b, 1)?);
            for i in 0..b.num_rows() {
                out.push(CodeCount {
                    code: c.value(i).to_owned(),
                    count: n.value(i).max(0) as u64,
                });
            }
        }
        out
    };

    let mut alerts = Vec::new();
    for z in main.iter() {
        if let Some(fill) = z.fill().filter(|f| *f >= NEAR_CAPACITY) {
            alerts.push(Alert {
                kind: "zone_near_capacity",
                subject: z.id.clone(),
                value: fill,
            });
        }
    }
    let silent: Vec<ScannerState> = scanners
        .iter()
        .filter(|s| open && s.silent_s.is_some_and(|t| t >= SILENT_AFTER_S))
        .cloned()
        .collect();
    for s in silent.iter().take(SILENT_LISTED) {
        alerts.push(Alert {
            kind: "scanner_silent",
            subject: s.id.clone(),
            value: s.silent_s.unwrap_or_default() as f64,
        });
    }
    if lag_events > LAG_EVENTS_ALERT {
        alerts.push(Alert {
            kind: "materialiser_lag",
            subject: String::new(),
            value: lag_events as f64,
        });
    }
    main.sort_by_key(|z| z.level != "venue");
    stands.sort_by(|a, b| a.id.cmp(&b.id));
    let mut busiest: Vec<ZoneState> = stands
        .iter()
        .filter(|s| s.entries_last_15m > 0 || s.inside > 0)
        .cloned()
        .collect();
    busiest.sort_by(|a, b| {
        (b.entries_last_15m, b.inside, &a.id).cmp(&(a.entries_last_15m, a.inside, &b.id))
    });
    busiest.truncate(BUSIEST_STANDS);

    Ok(LiveState {
        venue_id: venue.id.clone(),
        venue_name: venue.name.clone(),
        clock: Some(clock),
        clock_source,
        local_day: Some(today),
        open,
        partitions: owned.scans.clone(),
        zones: main,
        stands,
        busiest_stands: busiest,
        sessions,
        silent_scanners: silent.into_iter().take(SILENT_LISTED).collect(),
        scanners,
        tickets,
        rejected,
        lag_events,
        alerts,
        computed_at: Some(wall),
    })
}

#[derive(Clone, Copy, Debug, Default)]
struct ScannerCounts {
    total: u64,
    today: u64,
    last_hour: u64,
    last_15m: u64,
    last_seen: Option<DateTime<Utc>>,
}

/// Every zone of the venue, zeroed, so that each appears before its first scan.
struct ZoneTable {
    zones: Vec<ZoneState>,
    /// Today's ins minus outs per zone, before the occupancy rule.
    net: Vec<i64>,
    index: HashMap<(&'static str, String), usize>,
}

impl ZoneTable {
    fn new(venue: &Venue) -> Self {
        let mut zones = vec![zone("venue", &venue.id, &venue.name, Some(venue.capacity))];
        zones.extend(
            venue
                .poles
                .iter()
                .map(|p| zone("pole", &p.id, &p.name, Some(p.capacity))),
        );
        zones.extend(
            venue
                .rooms
                .iter()
                .map(|r| zone("room", &r.id, &r.name, Some(r.capacity))),
        );
        zones.extend(
            venue
                .stands
                .iter()
                .map(|s| zone("stand", &s.id, &s.exhibitor_name, None)),
        );
        let index = zones
            .iter()
            .enumerate()
            .map(|(i, z)| ((z.level, z.id.clone()), i))
            .collect();
        let net = vec![0; zones.len()];
        Self { zones, net, index }
    }

    /// Adds one scanner's counts to a zone it counts for.
    fn add(&mut self, level: &'static str, id: &str, ins: &ScannerCounts, outs: &ScannerCounts) {
        let Some(&i) = self.index.get(&(level, id.to_owned())) else {
            return;
        };
        let z = &mut self.zones[i];
        z.entries_total += ins.total;
        z.entries_today += ins.today;
        z.entries_last_hour += ins.last_hour;
        z.entries_last_15m += ins.last_15m;
        self.net[i] += ins.today as i64 - outs.today as i64;
    }

    /// Applies the occupancy rule and splits the stands off: the venue and
    /// rooms by ins minus outs (never negative), stands by their open visits
    /// (`at_stands`), a pole as the sum of its stands; zero when closed.
    fn finish(
        self,
        venue: &Venue,
        open: bool,
        at_stands: &HashMap<String, u64>,
    ) -> (Vec<ZoneState>, Vec<ZoneState>) {
        let mut poles: HashMap<&str, u64> = HashMap::new();
        for (stand, n) in at_stands {
            if let Some(s) = venue.stand(stand) {
                *poles.entry(s.pole_id.as_str()).or_default() += n;
            }
        }
        let (stands, main): (Vec<_>, Vec<_>) = self
            .zones
            .into_iter()
            .zip(self.net)
            .map(|(mut z, net)| {
                let inside = match z.level {
                    "stand" => at_stands.get(&z.id).copied().unwrap_or(0),
                    "pole" => poles.get(z.id.as_str()).copied().unwrap_or(0),
                    _ => net.max(0) as u64,
                };
                z.inside = if open { inside } else { 0 };
                z
            })
            .partition(|z| z.level == "stand");
        (main, stands)
    }
}

/// Longest a stand visit lasts without a scan closing it (the
/// `stand_visits` view's default dwell cap).
const DWELL_CAP: Duration = Duration::hours(2);

/// People at each stand at the clock, by the `stand_visits` rule: a badge
/// is at a stand while its latest scan of the day is an `in` there, for at
/// most the dwell cap (a visit closes at the badge's next `out` there or
/// its next scan anywhere else).
async fn at_stands(
    ctx: &SessionContext,
    partitions: &[i32],
    today: NaiveDate,
    clock: DateTime<Utc>,
) -> datafusion::error::Result<HashMap<String, u64>> {
    let order = "ORDER BY ts DESC, log_partition DESC, log_offset DESC";
    let sql = format!(
        "SELECT stand, count(*) AS n FROM ( \
           SELECT first_value(zone_kind {order}) AS kind, first_value(stand_id {order}) AS stand, \
                  first_value(direction {order}) AS dir, max(ts) AS last_ts \
           FROM scans WHERE {} AND local_day = {} AND ts <= {} GROUP BY badge \
         ) WHERE kind = 'stand' AND dir = 'in' AND last_ts > {} GROUP BY stand",
        partition_filter(partitions),
        lit_day(today),
        lit_ts(clock),
        lit_ts(clock - DWELL_CAP),
    );
    let mut out = HashMap::new();
    for b in run(ctx, &sql).await? {
        let (stand, n) = (strings(&b, 0)?, ints(&b, 1)?);
        for i in 0..b.num_rows() {
            if stand.is_valid(i) {
                out.insert(stand.value(i).to_owned(), n.value(i).max(0) as u64);
            }
        }
    }
    Ok(out)
}

fn zone(level: &'static str, id: &str, name: &str, capacity: Option<u32>) -> ZoneState {
    ZoneState {
        level,
        id: id.to_owned(),
        name: name.to_owned(),
        capacity,
        ..ZoneState::default()
    }
}

/// Sessions running at the clock, with distinct badges scanned in at their
/// room from 15 minutes before the start up to the clock.
async fn sessions(
    ctx: &SessionContext,
    venue: &Venue,
    partitions: &[i32],
    clock: DateTime<Utc>,
) -> datafusion::error::Result<Vec<SessionState>> {
    let running: Vec<_> = venue
        .sessions
        .iter()
        .filter(|s| s.starts_at <= clock && clock < s.ends_at)
        .collect();
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let mut attendees: BTreeMap<String, u64> = BTreeMap::new();
    if !partitions.is_empty() {
        let arms: Vec<String> = running
            .iter()
            .map(|s| {
                format!(
                    "WHEN room_id = {} AND ts >= {} THEN {}",
                    lit_str(&s.room_id),
                    lit_ts(s.starts_at - Duration::minutes(15)),
                    lit_str(&s.id)
                )
            })
            .collect();
        let sql = format!(
            "SELECT session_id, count(DISTINCT badge) AS n FROM ( \
               SELECT CASE {} END AS session_id, badge FROM scans \
               WHERE {} AND direction = 'in' AND zone_kind = 'room' AND ts <= {} \
             ) WHERE session_id IS NOT NULL GROUP BY session_id",
            arms.join(" "),
            partition_filter(partitions),
            lit_ts(clock)
        );
        for b in run(ctx, &sql).await? {
            let (id, n) = (strings(&b, 0)?, ints(&b, 1)?);
            for i in 0..b.num_rows() {
                attendees.insert(id.value(i).to_owned(), n.value(i).max(0) as u64);
            }
        }
    }
    Ok(running
        .into_iter()
        .map(|s| SessionState {
            id: s.id.clone(),
            room_id: s.room_id.clone(),
            title: s.title.clone(),
            kind: s.kind.clone(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            attendees: attendees.get(&s.id).copied().unwrap_or(0),
            capacity: venue.room(&s.room_id).map_or(0, |r| r.capacity),
        })
        .collect())
}

/// Each scanner with its last scan; silence counts from today's opening for
/// one not yet seen today.
fn scanners(
    venue: &Venue,
    per_scanner: &HashMap<String, [ScannerCounts; 2]>,
    clock: DateTime<Utc>,
    today: NaiveDate,
    open: bool,
) -> Vec<ScannerState> {
    let opened = venue.day(today).map(|d| venue.opening(d).0);
    venue
        .scanners
        .iter()
        .map(|s| {
            let last_seen = per_scanner
                .get(&s.id)
                .and_then(|[a, b]| a.last_seen.max(b.last_seen));
            let since = match (last_seen, opened) {
                (Some(seen), Some(opened)) => Some(seen.max(opened)),
                (seen, opened) => seen.or(opened),
            };
            ScannerState {
                id: s.id.clone(),
                zone_kind: s.zone_kind.as_str(),
                zone_id: s.zone_id.clone(),
                last_seen,
                silent_s: since
                    .filter(|_| open)
                    .map(|t| (clock - t).num_seconds().max(0)),
            }
        })
        .collect()
}

async fn run(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// `log_partition IN (...)`; callers skip the query when nothing is owned.
fn partition_filter(partitions: &[i32]) -> String {
    let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
    format!("log_partition IN ({})", list.join(", "))
}

fn lit_ts(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn lit_day(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

/// A SQL string literal; ids come from the venue file, quoted all the same.
fn lit_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Column `i` as UTF-8, whatever string layout DataFusion chose.
fn strings(batch: &RecordBatch, i: usize) -> datafusion::error::Result<StringArray> {
    let col = cast(batch, i, &DataType::Utf8)?;
    col.as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .ok_or_else(|| internal(i, "strings"))
}

/// Column `i` as 64-bit integers (timestamps as epoch milliseconds).
fn ints(batch: &RecordBatch, i: usize) -> datafusion::error::Result<Int64Array> {
    let col = cast(batch, i, &DataType::Int64)?;
    col.as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| internal(i, "integers"))
}

fn cast(batch: &RecordBatch, i: usize, to: &DataType) -> datafusion::error::Result<ArrayRef> {
    let col = batch
        .columns()
        .get(i)
        .ok_or_else(|| internal(i, "a column"))?;
    Ok(arrow::compute::cast(col, to)?)
}

fn internal(i: usize, what: &str) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Internal(format!("live query: column {i} is not {what}"))
}
