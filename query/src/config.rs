//! Query-side settings: how the materialiser batches and flushes, and the
//! limits that keep one SQL query from hurting the rest.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Rows gathered before a batch is sealed and queryable. 8,192 is
    /// DataFusion's batch size.
    pub batch_rows: usize,
    /// Longest an accepted event waits before it is queryable. 250 ms keeps
    /// SQL within a second of ingest without making tiny batches.
    pub batch_linger_ms: u64,
    /// Rows held in memory before they are flushed to Parquet.
    pub flush_rows: usize,
    /// Longest rows stay in memory only (they are safe in the log meanwhile;
    /// this bounds replay after a crash).
    pub flush_interval_ms: u64,
    /// Records read from the log per poll.
    pub poll_records: usize,
    /// Memory all running SQL queries may use together before one spills
    /// to disk (sorts, grouping) or fails.
    pub sql_memory_limit_bytes: usize,
    /// Disk all running SQL queries may spill to together, under
    /// `DATA_DIR/spill`, before one fails with `memory_limit`; 0 turns
    /// spilling off. It shares the disk with the event log and the tables,
    /// so it is capped: 8 GiB lets the largest fairs' week (15 million
    /// scans) be sorted by badge, and leaves the log its room on any disk
    /// that holds such a week.
    pub sql_spill_bytes: u64,
    /// How the pool shares memory between operators. `greedy` (the
    /// default) serves whoever asks first: a grouping may take what it
    /// needs (a distinct count grouping all scans by hour and zone asks
    /// for ~100 MB at once at a million events). `fair` gives each operator that can spill an
    /// equal share: the sorts of the badge-ordered views (`stand_visits`,
    /// `pole_flows`) then spill and answer at 15 million scans, where under
    /// `greedy` one partition's sort holds what the other's merge needs
    /// and the query fails; but a grouping bigger than its share fails.
    pub sql_memory_pool: MemoryPoolKind,
    /// Longest a SQL query may run.
    pub sql_timeout_ms: u64,
    /// Threads for SQL execution, apart from ingest's.
    pub sql_threads: usize,
    /// Shortest time between two refreshes of the live state (`/metrics`,
    /// `/v1/live`). 250 ms matches the batch linger: a scan is on the page
    /// about 0.6 s after it is accepted. Each refresh re-reads the tables
    /// (about 0.1 s for a simulated day on two cores; see
    /// `footfall_live_refresh_duration_seconds`), so raise it for long fairs.
    pub live_interval_ms: u64,
    /// Per-stand series in `/metrics` (entries, occupancy): hundreds of
    /// series, so off unless sponsors' dashboards need them.
    pub stand_metrics: bool,
    /// Longest a stand visit may last in `stand_visits` (seconds). A badge
    /// that never scans again would otherwise stay "at the stand" until
    /// closing; 2 hours is longer than any real stand visit.
    pub stand_visit_dwell_cap_s: u64,
    /// How long the raw text of a refused event is kept (seconds after it
    /// was received). It may hold a badge id in clear, and it only serves to
    /// debug a vendor's feed. Past it the `rejected` row keeps its code,
    /// message and times (counts by code stay) with `raw` empty, and the
    /// log drops the record (the embedded log at the same pass; Kafka's
    /// rejected topic is created with this `retention.ms`). 30 days covers
    /// a fair and the weeks of settling accounts with vendors after it.
    pub rejected_retention_s: u64,
}

/// See [`QueryConfig::sql_memory_pool`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryPoolKind {
    #[default]
    Greedy,
    Fair,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            batch_rows: 8_192,
            batch_linger_ms: 250,
            flush_rows: 1_000_000,
            flush_interval_ms: 60_000,
            poll_records: 16_384,
            sql_memory_limit_bytes: 2 << 30,
            sql_spill_bytes: 8 << 30,
            sql_memory_pool: MemoryPoolKind::Greedy,
            sql_timeout_ms: 30_000,
            sql_threads: 2,
            live_interval_ms: 250,
            stand_metrics: false,
            stand_visit_dwell_cap_s: 2 * 3600,
            rejected_retention_s: 30 * 24 * 3600,
        }
    }
}
