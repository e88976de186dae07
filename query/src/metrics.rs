//! The query service's metrics: materialiser, SQL, and the live floor
//! (`footfall_floor_*`, from the live state). Names follow
//! `footfall_<subsystem>_<name>_<unit>[_total]`; labels come from bounded
//! sets (table, topic, outcome code, and zone, scanner and ticket ids from
//! the venue file, never from input). Every metric is in `docs/metrics.md`.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::live::LiveState;

#[derive(Clone)]
pub struct QueryMetrics {
    /// Rows materialised, by `table`.
    pub rows: IntCounterVec,
    /// Records dropped as already materialised, by `topic`.
    pub duplicates: IntCounterVec,
    /// Records that were not valid events, by `topic`.
    pub bad_records: IntCounterVec,
    /// Failed reads of the event log.
    pub log_errors: IntCounter,
    /// Time to flush to Parquet and checkpoint.
    pub flush_duration: Histogram,
    /// Small files of the owned streams in table-days due for compaction.
    pub compaction_due: IntGauge,
    /// SQL queries, by `outcome` (ok or an error code).
    pub sql_queries: IntCounterVec,
    /// SQL query time.
    pub sql_duration: Histogram,
    /// Log records not yet materialised, by `topic`.
    pub lag_events: IntGaugeVec,
    /// How far behind the materialiser is, in seconds (0 when caught up).
    pub lag_seconds: Gauge,
    /// Received → queryable, per row, by `table`.
    pub freshness: HistogramVec,
    /// Time to rebuild the live state.
    pub live_refresh_duration: Histogram,
    /// The live floor, set from each new live state.
    pub floor: FloorMetrics,
}

/// The business side: the floor as the live state sees it.
#[derive(Clone)]
pub struct FloorMetrics {
    /// `in` scans ever, by `level` and `zone`.
    pub entries: IntCounterVec,
    /// People inside by the occupancy rule, by `level` and `zone`.
    pub occupancy: IntGaugeVec,
    /// Capacity, by `level` and `zone` (venue, poles, rooms).
    pub capacity: IntGaugeVec,
    /// Tickets, by `action` and `ticket_type`.
    pub tickets: IntCounterVec,
    /// Rows of the `rejected` table, by `code`.
    pub rejected: IntCounterVec,
    /// Newest scan time per `scanner` (scanner clock), Unix seconds.
    pub scanner_last_seen: GaugeVec,
    /// Seconds a `scanner` has been silent while the venue is open (since
    /// its last scan or today's opening, whichever is later); 0 when closed.
    pub scanner_silence: IntGaugeVec,
    /// The live clock, Unix seconds.
    pub clock: Gauge,
    /// 1 while the venue is open at the live clock, else 0.
    pub open: IntGauge,
}

impl QueryMetrics {
    /// Registers the metrics. Fails if they are registered twice.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let rows = IntCounterVec::new(
            Opts::new(
                "footfall_materialiser_rows_total",
                "Rows materialised into the event tables, by table.",
            ),
            &["table"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "footfall_materialiser_duplicates_total",
                "Log records skipped as already materialised.",
            ),
            &["topic"],
        )?;
        let bad_records = IntCounterVec::new(
            Opts::new(
                "footfall_materialiser_bad_records_total",
                "Log records that were not valid events.",
            ),
            &["topic"],
        )?;
        let log_errors = IntCounter::new(
            "footfall_materialiser_log_errors_total",
            "Failed reads of the event log.",
        )?;
        let flush_duration = Histogram::with_opts(
            HistogramOpts::new(
                "footfall_materialiser_flush_duration_seconds",
                "Time to write Parquet and checkpoint.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        let sql_queries = IntCounterVec::new(
            Opts::new(
                "footfall_sql_queries_total",
                "SQL queries answered, by outcome.",
            ),
            &["outcome"],
        )?;
        let sql_duration = Histogram::with_opts(
            HistogramOpts::new("footfall_sql_query_duration_seconds", "SQL query time.").buckets(
                vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
        )?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(bad_records.clone()))?;
        registry.register(Box::new(log_errors.clone()))?;
        registry.register(Box::new(flush_duration.clone()))?;
        let compaction_due = IntGauge::new(
            "footfall_materialiser_compaction_due_files",
            "Small Parquet files of the owned streams waiting to be merged.",
        )?;
        registry.register(Box::new(compaction_due.clone()))?;
        registry.register(Box::new(sql_queries.clone()))?;
        registry.register(Box::new(sql_duration.clone()))?;
        let lag_events = IntGaugeVec::new(
            Opts::new(
                "footfall_materialiser_lag_events",
                "Log records not yet materialised, by topic (owned partitions).",
            ),
            &["topic"],
        )?;
        let lag_seconds = Gauge::new(
            "footfall_materialiser_lag_seconds",
            "Age of the newest materialised record while records wait, else 0.",
        )?;
        let freshness = HistogramVec::new(
            HistogramOpts::new(
                "footfall_materialiser_freshness_seconds",
                "Time from an event's receipt to its row being queryable.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["table"],
        )?;
        let live_refresh_duration = Histogram::with_opts(
            HistogramOpts::new(
                "footfall_live_refresh_duration_seconds",
                "Time to rebuild the live state from the snapshot.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(lag_events.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        registry.register(Box::new(freshness.clone()))?;
        registry.register(Box::new(live_refresh_duration.clone()))?;
        for table in ["scans", "tickets"] {
            freshness.with_label_values(&[table]);
        }
        // Every bounded label value appears from the start, so rates and
        // alerts work before the first occurrence.
        for table in ["scans", "tickets", "rejected"] {
            rows.with_label_values(&[table]);
            duplicates.with_label_values(&[table]);
            bad_records.with_label_values(&[table]);
        }
        sql_queries.with_label_values(&["ok"]);
        let floor = FloorMetrics::register(registry)?;
        Ok(Self {
            rows,
            duplicates,
            bad_records,
            log_errors,
            flush_duration,
            compaction_due,
            sql_queries,
            sql_duration,
            lag_events,
            lag_seconds,
            freshness,
            live_refresh_duration,
            floor,
        })
    }

    /// Sets the floor metrics from a new live state. Stands only with
    /// `stands` (hundreds of series).
    pub fn update_floor(&self, state: &LiveState, stands: bool) {
        let f = &self.floor;
        let zones = state
            .zones
            .iter()
            .chain(stands.then_some(&state.stands).into_iter().flatten());
        for z in zones {
            let labels = [z.level, z.id.as_str()];
            set_counter(&f.entries.with_label_values(&labels), z.entries_total);
            f.occupancy
                .with_label_values(&labels)
                .set(i64::try_from(z.inside).unwrap_or(i64::MAX));
            if let Some(capacity) = z.capacity {
                f.capacity
                    .with_label_values(&labels)
                    .set(i64::from(capacity));
            }
        }
        for t in &state.tickets {
            let c = f
                .tickets
                .with_label_values(&[t.action.as_str(), t.ticket_type.as_str()]);
            set_counter(&c, t.count);
        }
        for r in &state.rejected {
            set_counter(&f.rejected.with_label_values(&[r.code.as_str()]), r.count);
        }
        for s in &state.scanners {
            f.scanner_silence
                .with_label_values(&[s.id.as_str()])
                .set(s.silent_s.unwrap_or(0));
            if let Some(seen) = s.last_seen {
                f.scanner_last_seen
                    .with_label_values(&[s.id.as_str()])
                    .set(seen.timestamp_millis() as f64 / 1000.0);
            }
        }
        if let Some(clock) = state.clock {
            f.clock.set(clock.timestamp_millis() as f64 / 1000.0);
        }
        f.open.set(i64::from(state.open));
    }
}

/// Brings a counter to a total counted elsewhere (the tables). Totals only
/// grow on one instance; if a partition moves to another instance this one's
/// total shrinks, which Prometheus reads as a counter reset.
fn set_counter(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total >= current {
        counter.inc_by(total - current);
    } else {
        counter.reset();
        counter.inc_by(total);
    }
}

impl FloorMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let zone = ["level", "zone"];
        let entries = IntCounterVec::new(
            Opts::new(
                "footfall_floor_entries_total",
                "In-scans per zone (distinct events), as footfall_hourly counts entries.",
            ),
            &zone,
        )?;
        let occupancy = IntGaugeVec::new(
            Opts::new(
                "footfall_floor_occupancy_persons",
                "People inside a zone by the occupancy view's rule, 0 when closed.",
            ),
            &zone,
        )?;
        let capacity = IntGaugeVec::new(
            Opts::new(
                "footfall_floor_capacity_persons",
                "People a zone may hold at once, from the venue file.",
            ),
            &zone,
        )?;
        let tickets = IntCounterVec::new(
            Opts::new(
                "footfall_floor_tickets_total",
                "Ticket events in the tickets table, by action and ticket type.",
            ),
            &["action", "ticket_type"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                "footfall_floor_rejected_events_total",
                "Rows of the rejected table, by code.",
            ),
            &["code"],
        )?;
        let scanner_last_seen = GaugeVec::new(
            Opts::new(
                "footfall_floor_scanner_last_seen_timestamp_seconds",
                "Time of a scanner's newest scan (scanner clock), Unix seconds.",
            ),
            &["scanner"],
        )?;
        let scanner_silence = IntGaugeVec::new(
            Opts::new(
                "footfall_floor_scanner_silence_seconds",
                "Seconds since a scanner's last scan (or today's opening) while open, else 0.",
            ),
            &["scanner"],
        )?;
        let clock = Gauge::new(
            "footfall_floor_clock_timestamp_seconds",
            "The live clock: now during a fair, the newest scan when replaying one.",
        )?;
        let open = IntGauge::new(
            "footfall_floor_open",
            "1 while the venue is open at the live clock, else 0.",
        )?;
        registry.register(Box::new(entries.clone()))?;
        registry.register(Box::new(occupancy.clone()))?;
        registry.register(Box::new(capacity.clone()))?;
        registry.register(Box::new(tickets.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(scanner_last_seen.clone()))?;
        registry.register(Box::new(scanner_silence.clone()))?;
        registry.register(Box::new(clock.clone()))?;
        registry.register(Box::new(open.clone()))?;
        Ok(Self {
            entries,
            occupancy,
            capacity,
            tickets,
            rejected,
            scanner_last_seen,
            scanner_silence,
            clock,
            open,
        })
    }
}
