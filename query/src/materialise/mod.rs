//! The materialiser: reads the event log, deduplicates by event id, builds
//! Arrow batches (sealed by size or linger) and flushes them to Parquet with
//! a checkpoint per stream.
//!
//! Delivery guarantee: exactly-once effect in the tables. A stream resumes
//! at its checkpoint's offset with the checkpoint's dedup set, so a record
//! is either in a committed file (and skipped when replayed) or read again.

mod checkpoint;
mod compact;
mod forget;
mod idset;
mod peers;
mod retention;
mod rows;
mod stream;

pub use checkpoint::{FileEntry, Manifest, read_manifest};
pub use forget::{FORGOTTEN_FILE, Forgotten, forget};
pub use rows::{Local, date_of_day};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use footfall_eventlog::{EventLog, Polled, Stream, Subscription, Topic};
use footfall_schemas::Venue;

use crate::config::QueryConfig;
use crate::metrics::QueryMetrics;
use crate::snapshot::{FileRef, SharedSnapshot, Snapshot};
use crate::table_kind::TableKind;
use peers::Peers;
use stream::{Outcome, StreamState};

/// How often the manifests of streams other instances own are re-read.
const PEER_REFRESH: Duration = Duration::from_secs(1);

/// First wait after a failed flush; doubled after each failure up to
/// [`FLUSH_RETRY_MAX`]. A full or read-only disk is fixed by a person, so
/// retrying faster only fills the log with the same line.
const FLUSH_RETRY_FIRST: Duration = Duration::from_millis(250);
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(10);

/// Longest the materialiser keeps reading at shutdown so that its last
/// checkpoint covers every event acknowledged before the HTTP server
/// stopped; what it cannot read by then is replayed at the next start.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Longest the materialiser waits for its subscription to close at
/// shutdown. Kafka's consumer close leaves the group through the group's
/// coordinator and waits for its answer, which a broker that has gone never
/// gives. Everything read is flushed by then, so a close cut short costs
/// only time: the group moves the partitions once this member's session
/// times out.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Closes the subscription on a thread of its own and waits for it at most
/// [`CLOSE_WAIT`]; a close still waiting then ends with the process.
async fn leave(sub: Box<dyn Subscription>) {
    let (closed, on_close) = tokio::sync::oneshot::channel();
    let closing = std::thread::Builder::new()
        .name("log-close".into())
        .spawn(move || {
            drop(sub);
            let _ = closed.send(());
        });
    if let Err(e) = closing {
        // The subscription went with the thread's closure, closed in place.
        tracing::warn!(error = %e, "cannot start a thread to close the event log");
        return;
    }
    if tokio::time::timeout(CLOSE_WAIT, on_close).await.is_err() {
        tracing::warn!(
            waited_s = CLOSE_WAIT.as_secs(),
            "the event log did not close in time (is the broker away?); stopping without waiting for it"
        );
    }
}

/// The materialiser's position, for readiness and lag.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Next offset to read, per owned stream.
    pub positions: BTreeMap<Stream, i64>,
    /// Whether the last poll found nothing left to read.
    pub caught_up: bool,
    /// Why the last flush failed, while flushes fail (a full or read-only
    /// disk, say). Reading the log pauses meanwhile; the events wait there.
    pub flush_error: Option<String>,
}

pub struct Materialiser {
    pub venue: Arc<Venue>,
    pub log: Arc<dyn EventLog>,
    pub data_dir: PathBuf,
    pub group: String,
    pub config: QueryConfig,
    pub snapshot: Arc<SharedSnapshot>,
    pub metrics: QueryMetrics,
    pub progress: watch::Sender<Progress>,
}

impl Materialiser {
    /// Runs until `shutdown` turns true, then flushes and checkpoints every
    /// stream and leaves the log (waiting at most [`CLOSE_WAIT`]). Fails
    /// only when a stream's checkpoint cannot be read, or the last flush at
    /// shutdown fails; log outages are waited out, and a failed flush is
    /// retried with backoff (reading the log pauses meanwhile, so memory
    /// stays bounded and nothing is lost: the unflushed rows stay in memory
    /// and the rest waits in the log).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let data_dir = self.data_dir.clone();
        let start: footfall_eventlog::StartAt = std::sync::Arc::new(move |stream| {
            // An unreadable checkpoint fails the stream's recovery below,
            // with the error; reading from 0 meanwhile skips nothing.
            checkpoint::load(&data_dir, stream)
                .ok()
                .flatten()
                .map_or(0, |m| m.next_offset)
        });
        let mut sub = loop {
            match self.log.subscribe(&self.group, start.clone()).await {
                Ok(sub) => break sub,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to the event log; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            }
        };
        let read = self.read_log(&mut *sub, shutdown).await;
        leave(sub).await;
        read
    }

    /// The body of [`Materialiser::run`] once subscribed.
    async fn read_log(
        &self,
        sub: &mut dyn Subscription,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut streams: BTreeMap<Stream, StreamState> = BTreeMap::new();
        let mut peers = Peers::new(PEER_REFRESH);
        let mut last_flush = Instant::now();
        let linger = Duration::from_millis(self.config.batch_linger_ms);
        let flush_interval = Duration::from_millis(self.config.flush_interval_ms);
        // While flushes fail: when to try again, and the wait after that.
        let mut retry: Option<(Instant, Duration)> = None;
        let retention_every =
            retention::check_interval(Duration::from_secs(self.config.rejected_retention_s));
        let mut last_retention = Instant::now();
        // Files replaced to empty expired raw text, deleted at the next pass.
        let mut expired_files = Vec::new();
        let mut compaction = Compaction::default();

        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Some((at, wait)) = retry {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
                match self.flush_all(&mut streams, &mut *sub) {
                    Ok(()) => {
                        tracing::info!("flushing works again");
                        retry = None;
                        last_flush = Instant::now();
                        self.progress.send_modify(|p| p.flush_error = None);
                        self.publish(&streams, &peers);
                    }
                    Err(e) => retry = Some(self.flush_failed(&e, wait.saturating_mul(2))),
                }
                continue;
            }
            let polled = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                polled = sub.poll(self.config.poll_records, linger) => polled,
            };
            let mut changed = false;
            // Whether this poll found the log read to its end, once known.
            let mut reached_end = None;
            match polled {
                Ok(Polled::Assigned(assigned)) => {
                    for stream in assigned {
                        let state = StreamState::recover(&self.data_dir, stream)?;
                        tracing::info!(%stream, offset = state.next_offset, "materialising stream");
                        streams.insert(stream, state);
                    }
                    changed = true;
                }
                Ok(Polled::Revoked(revoked)) => {
                    for stream in revoked {
                        if let Some(mut state) = streams.remove(&stream) {
                            // Unflushed rows are dropped with the stream: its
                            // new owner reads them again from the checkpoint.
                            match state.flush(&self.data_dir) {
                                Ok(()) => {
                                    tracing::info!(%stream, offset = state.next_offset, "stream handed over")
                                }
                                Err(e) => {
                                    tracing::warn!(%stream, error = %e, "stream handed over unflushed; its new owner replays from the checkpoint")
                                }
                            }
                        }
                    }
                    // Show what was handed over from its manifest at once.
                    peers.expire();
                    changed = true;
                }
                Ok(Polled::Records(records)) => {
                    let mut tally = Tally::default();
                    for record in &records {
                        let Some(state) = streams.get_mut(&record.stream) else {
                            continue;
                        };
                        tally.add(state.add(record, self.venue.time_zone), record.stream);
                    }
                    tally.count(&self.metrics);
                    if records.is_empty() {
                        // Nothing more to gather: what was read becomes
                        // queryable now, before readiness says it is.
                        for state in streams.values_mut() {
                            changed |= state.seal();
                        }
                    }
                    reached_end = Some(records.is_empty());
                }
                // Before the group has given this reader its streams, an
                // empty read says nothing of the log's end: not caught up.
                Ok(Polled::Joining) => reached_end = Some(false),
                Err(e) => {
                    self.metrics.log_errors.inc();
                    tracing::warn!(error = %e, "reading the event log failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }

            for state in streams.values_mut() {
                let due = state.unsealed_since.is_some_and(|t| t.elapsed() >= linger)
                    || state.unsealed_rows() >= self.config.batch_rows;
                if due {
                    changed |= state.seal();
                }
            }
            let held: usize = streams.values().map(StreamState::sealed_rows).sum();
            if held >= self.config.flush_rows
                || (held > 0 && last_flush.elapsed() >= flush_interval)
            {
                match self.flush_all(&mut streams, &mut *sub) {
                    Ok(()) => last_flush = Instant::now(),
                    Err(e) => retry = Some(self.flush_failed(&e, FLUSH_RETRY_FIRST)),
                }
                changed = true;
            }
            if retry.is_none() && last_retention.elapsed() >= retention_every {
                last_retention = Instant::now();
                changed |= self.expire_raw(&mut streams, &mut expired_files).await;
            }
            if retry.is_none() && reached_end == Some(true) {
                changed |= self.compact(&mut streams, &mut compaction);
            }
            changed |= peers.refresh(&self.data_dir, &|s| streams.contains_key(&s));
            if changed {
                self.publish(&streams, &peers);
            }
            // After the publish, so that a caught-up materialiser's rows are
            // all queryable; a failing flush keeps it not caught up.
            if let Some(end) = reached_end {
                self.progress.send_modify(|p| {
                    p.caught_up = end && retry.is_none();
                    p.positions = streams.iter().map(|(s, st)| (*s, st.next_offset)).collect();
                });
            }
        }
        if retry.is_none() {
            self.drain(&mut streams, sub).await;
        }
        self.flush_all(&mut streams, sub)?;
        self.publish(&streams, &peers);
        remove_replaced(&mut expired_files);
        tracing::info!("materialiser flushed and stopped");
        Ok(())
    }

    /// Reads what the log holds now, until a poll finds nothing or
    /// [`SHUTDOWN_DRAIN`] passes.
    async fn drain(&self, streams: &mut BTreeMap<Stream, StreamState>, sub: &mut dyn Subscription) {
        let deadline = Instant::now() + SHUTDOWN_DRAIN;
        let mut read = 0usize;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let polled = tokio::time::timeout(
                left,
                sub.poll(self.config.poll_records, Duration::from_millis(50)),
            )
            .await;
            let Ok(Ok(Polled::Records(records))) = polled else {
                break;
            };
            if records.is_empty() {
                break;
            }
            let mut tally = Tally::default();
            for record in &records {
                if let Some(state) = streams.get_mut(&record.stream) {
                    tally.add(state.add(record, self.venue.time_zone), record.stream);
                    read += 1;
                }
            }
            tally.count(&self.metrics);
        }
        tracing::info!(
            records = read,
            "read the log to its end before the last flush"
        );
    }

    /// Empties the raw text of rejected rows past the retention limit in
    /// the owned streams' files, and has the log drop those records. The
    /// files replaced at the previous pass are deleted first: a query or a
    /// peer that read an older snapshot had a whole interval to finish.
    /// Failures are logged and the next pass tries again. Answers whether
    /// a manifest changed.
    async fn expire_raw(
        &self,
        streams: &mut BTreeMap<Stream, StreamState>,
        replaced: &mut Vec<PathBuf>,
    ) -> bool {
        remove_replaced(replaced);
        let limit_ms = i64::try_from(self.config.rejected_retention_s.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let before_ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(limit_ms);
        let mut changed = false;
        for (stream, state) in streams.iter_mut() {
            match retention::expire_raw(&self.data_dir, *stream, &mut state.manifest, before_ms) {
                Ok(done) if !done.replaced.is_empty() => {
                    let rows = done.rows[crate::table_kind::TableKind::Rejected.index()];
                    tracing::info!(%stream, rows, "emptied the raw text of rejected events past their retention");
                    replaced.extend(done.replaced);
                    changed = true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%stream, error = %e, "cannot empty expired raw text; the next pass tries again")
                }
            }
        }
        match self.log.expire_rejected(before_ms).await {
            Ok(0) => {}
            Ok(records) => {
                tracing::info!(
                    records,
                    "dropped rejected records past their retention from the log"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot drop expired rejected records from the log; the next pass tries again")
            }
        }
        changed
    }

    /// Merges one table-day's small files in the first owned stream that
    /// has some due ([`compact::compact`]), after deleting the files merges
    /// replaced long enough ago that no query, here or on a peer, can still
    /// be reading them (a query ends within `sql_timeout_ms`). A failure is
    /// logged and compaction rests for a while; the stream stays as it was.
    /// Answers whether a manifest changed.
    fn compact(
        &self,
        streams: &mut BTreeMap<Stream, StreamState>,
        compaction: &mut Compaction,
    ) -> bool {
        let grace = Duration::from_millis(self.config.sql_timeout_ms) + PEER_REFRESH * 2;
        let (old, young): (Vec<_>, Vec<_>) = std::mem::take(&mut compaction.replaced)
            .into_iter()
            .partition(|(at, _)| at.elapsed() >= grace);
        compaction.replaced = young;
        remove_replaced(&mut old.into_iter().map(|(_, path)| path).collect());
        if compaction.resting_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let mut changed = false;
        for (stream, state) in streams.iter_mut() {
            if changed || compact::due(&state.manifest) == 0 {
                continue;
            }
            match compact::compact(&self.data_dir, *stream, &mut state.manifest) {
                Ok(Some(done)) => {
                    tracing::debug!(%stream, table = done.table.name(), day = done.local_day, files = done.replaced.len(), rows = done.rows, "merged small files");
                    let now = Instant::now();
                    compaction
                        .replaced
                        .extend(done.replaced.into_iter().map(|path| (now, path)));
                    changed = true;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%stream, error = %e, "cannot merge small files; trying again in a minute");
                    compaction.resting_until = Some(Instant::now() + COMPACTION_REST);
                }
            }
        }
        let due = streams
            .values()
            .map(|s| compact::due(&s.manifest))
            .sum::<usize>();
        self.metrics.compaction_due.set(due as i64);
        changed
    }

    /// Records a failed flush for readiness and the log; returns when to
    /// try again and the wait after that.
    fn flush_failed(&self, error: &std::io::Error, wait: Duration) -> (Instant, Duration) {
        let wait = wait.min(FLUSH_RETRY_MAX);
        tracing::error!(%error, retry_in_ms = wait.as_millis() as u64, "flushing to Parquet failed; reading the log pauses until it works");
        self.progress.send_modify(|p| {
            p.flush_error = Some(error.to_string());
            p.caught_up = false;
        });
        (Instant::now() + wait, wait)
    }

    fn flush_all(
        &self,
        streams: &mut BTreeMap<Stream, StreamState>,
        sub: &mut dyn Subscription,
    ) -> std::io::Result<()> {
        let started = Instant::now();
        for state in streams.values_mut() {
            state.flush(&self.data_dir)?;
        }
        let positions: Vec<(Stream, i64)> =
            streams.iter().map(|(s, st)| (*s, st.next_offset)).collect();
        if let Err(e) = sub.commit(&positions) {
            tracing::debug!(error = %e, "committing positions for lag monitoring failed");
        }
        self.metrics
            .flush_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Publishes the owned streams' files and sealed batches, and the files
    /// of the streams peers own, as the snapshot SQL reads.
    fn publish(&self, streams: &BTreeMap<Stream, StreamState>, peers: &Peers) {
        let mut snapshot = Snapshot::default();
        let peer_manifests = peers
            .manifests()
            .filter(|(s, _)| !streams.contains_key(s))
            .map(|(_, m)| m);
        for manifest in streams
            .values()
            .map(|st| &st.manifest)
            .chain(peer_manifests)
        {
            for file in &manifest.files {
                snapshot.tables[file.table.index()].files.push(FileRef {
                    path: self.data_dir.join(&file.path),
                    bytes: file.bytes,
                    rows: file.rows,
                    local_day: file.local_day.clone(),
                });
            }
        }
        for state in streams.values() {
            for (i, batches) in state.sealed.iter().enumerate() {
                snapshot.tables[i].batches.extend(batches.iter().cloned());
            }
        }
        self.snapshot.set(snapshot);
    }
}

/// Compaction's state across passes of the materialiser's loop.
#[derive(Default)]
struct Compaction {
    /// Files merges replaced, and when. Those left at shutdown go to the
    /// orphan sweep when their stream next opens.
    replaced: Vec<(Instant, PathBuf)>,
    /// Set after a failed merge.
    resting_until: Option<Instant>,
}

/// How long compaction rests after a failed merge.
const COMPACTION_REST: Duration = Duration::from_secs(60);

/// Deletes files no manifest names any more; one that cannot be deleted now
/// is left to the orphan sweep when its stream next opens.
fn remove_replaced(files: &mut Vec<PathBuf>) {
    for path in files.drain(..) {
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete a replaced file");
        }
    }
}

/// The outcomes of one poll, counted into the metrics once per poll: a
/// labelled counter costs a hash and a lock per increment, which per record
/// was a measurable share of a replay.
#[derive(Default)]
struct Tally {
    /// Rows added, by table.
    rows: [u64; 3],
    /// Duplicates and bad records, by topic.
    duplicates: [u64; 3],
    bad_records: [u64; 3],
}

impl Tally {
    fn add(&mut self, outcome: Outcome, stream: Stream) {
        match outcome {
            Outcome::Added(table) => self.rows[table.index()] += 1,
            Outcome::Duplicate => self.duplicates[stream.topic.index()] += 1,
            Outcome::BadRecord => self.bad_records[stream.topic.index()] += 1,
            Outcome::Skipped => {}
        }
    }

    fn count(&self, m: &QueryMetrics) {
        for table in TableKind::ALL {
            let n = self.rows[table.index()];
            if n > 0 {
                m.rows.with_label_values(&[table.name()]).inc_by(n);
            }
        }
        for topic in Topic::ALL {
            let i = topic.index();
            if self.duplicates[i] > 0 {
                m.duplicates
                    .with_label_values(&[topic.short()])
                    .inc_by(self.duplicates[i]);
            }
            if self.bad_records[i] > 0 {
                m.bad_records
                    .with_label_values(&[topic.short()])
                    .inc_by(self.bad_records[i]);
            }
        }
    }
}

/// `batches` of `scans` written under `data_dir` as a flush writes them: a
/// file a local day, laid out by direction and kind of zone. For the tests
/// of what reads the files.
#[cfg(test)]
pub(crate) fn write_scans(
    data_dir: &std::path::Path,
    batches: &[arrow::array::RecordBatch],
) -> std::io::Result<Vec<FileRef>> {
    let stream = Stream {
        topic: Topic::Scans,
        partition: 0,
    };
    stream::layout(TableKind::Scans, batches)?
        .into_iter()
        .map(|(day, day_batches)| {
            let file = checkpoint::write_parquet(
                data_dir,
                TableKind::Scans,
                stream,
                &day,
                "00000001.parquet",
                &day_batches,
            )?;
            Ok(FileRef {
                path: data_dir.join(&file.path),
                bytes: file.bytes,
                rows: file.rows,
                local_day: file.local_day,
            })
        })
        .collect()
}
