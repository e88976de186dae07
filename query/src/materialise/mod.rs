//! The materialiser: reads the event log, deduplicates by event id, builds
//! Arrow batches (sealed by size or linger) and flushes them to Parquet with
//! a checkpoint per stream.
//!
//! Delivery guarantee: exactly-once effect in the tables. A stream resumes
//! at its checkpoint's offset with the checkpoint's dedup set, so a record
//! is either in a committed file (and skipped when replayed) or read again.

mod checkpoint;
mod peers;
mod rows;
mod stream;

pub use checkpoint::{FileEntry, Manifest, read_manifest};
pub use rows::{Local, date_of_day};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use footfall_eventlog::{EventLog, Polled, Stream, Subscription};
use footfall_schemas::Venue;

use crate::config::QueryConfig;
use crate::metrics::QueryMetrics;
use crate::snapshot::{FileRef, SharedSnapshot, Snapshot};
use peers::Peers;
use stream::{Outcome, StreamState};

/// How often the manifests of streams other instances own are re-read.
const PEER_REFRESH: Duration = Duration::from_secs(1);

/// The materialiser's position, for readiness and lag.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Next offset to read, per owned stream.
    pub positions: BTreeMap<Stream, i64>,
    /// Whether the last poll found nothing left to read.
    pub caught_up: bool,
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
    /// stream. Fails only when a stream's checkpoint cannot be read or its
    /// files written; log outages are waited out.
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
        let mut streams: BTreeMap<Stream, StreamState> = BTreeMap::new();
        let mut peers = Peers::new(PEER_REFRESH);
        let mut last_flush = Instant::now();
        let linger = Duration::from_millis(self.config.batch_linger_ms);
        let flush_interval = Duration::from_millis(self.config.flush_interval_ms);

        loop {
            if *shutdown.borrow() {
                break;
            }
            let polled = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                polled = sub.poll(self.config.poll_records, linger) => polled,
            };
            let mut changed = false;
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
                            state.flush(&self.data_dir)?;
                            tracing::info!(%stream, offset = state.next_offset, "stream handed over");
                        }
                    }
                    // Show what was handed over from its manifest at once.
                    peers.expire();
                    changed = true;
                }
                Ok(Polled::Records(records)) => {
                    let caught_up = records.is_empty();
                    for record in &records {
                        let Some(state) = streams.get_mut(&record.stream) else {
                            continue;
                        };
                        let outcome = state.add(record, self.venue.time_zone);
                        self.count(outcome, record.stream);
                    }
                    self.progress.send_modify(|p| {
                        p.caught_up = caught_up;
                        p.positions = streams.iter().map(|(s, st)| (*s, st.next_offset)).collect();
                    });
                }
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
                self.flush_all(&mut streams, &mut *sub)?;
                last_flush = Instant::now();
                changed = true;
            }
            changed |= peers.refresh(&self.data_dir, &|s| streams.contains_key(&s));
            if changed {
                self.publish(&streams, &peers);
            }
        }
        self.flush_all(&mut streams, &mut *sub)?;
        self.publish(&streams, &peers);
        tracing::info!("materialiser flushed and stopped");
        Ok(())
    }

    fn count(&self, outcome: Outcome, stream: Stream) {
        let m = &self.metrics;
        match outcome {
            Outcome::Added(table) => m.rows.with_label_values(&[table.name()]).inc(),
            Outcome::Duplicate => m
                .duplicates
                .with_label_values(&[stream.topic.short()])
                .inc(),
            Outcome::BadRecord => m
                .bad_records
                .with_label_values(&[stream.topic.short()])
                .inc(),
            Outcome::Skipped => {}
        }
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
