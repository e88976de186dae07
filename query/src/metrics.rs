//! The query service's metrics: materialiser and SQL. Names follow
//! `footfall_<subsystem>_<name>_<unit>[_total]`; labels come from bounded
//! sets (table, topic, outcome code).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

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
    /// SQL queries, by `outcome` (ok or an error code).
    pub sql_queries: IntCounterVec,
    /// SQL query time.
    pub sql_duration: Histogram,
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
        registry.register(Box::new(sql_queries.clone()))?;
        registry.register(Box::new(sql_duration.clone()))?;
        Ok(Self {
            rows,
            duplicates,
            bad_records,
            log_errors,
            flush_duration,
            sql_queries,
            sql_duration,
        })
    }
}
