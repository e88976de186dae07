//! Immutable snapshots of the event tables, swapped in whole by the
//! materialiser and read by SQL. A query sees one snapshot from start to end:
//! the Parquet files committed so far plus the in-memory batches not yet
//! flushed, never a half-written state.

use arrow::record_batch::RecordBatch;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::table_kind::TableKind;

/// A committed Parquet file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub path: PathBuf,
    pub bytes: u64,
    pub rows: u64,
    /// The local day of every row in it, as `YYYY-MM-DD`.
    pub local_day: String,
}

#[derive(Clone, Debug, Default)]
pub struct TableSnapshot {
    pub files: Vec<FileRef>,
    pub batches: Vec<RecordBatch>,
}

impl TableSnapshot {
    pub fn memory_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub tables: [TableSnapshot; 3],
    /// When it became visible to readers (set by [`SharedSnapshot::set`]):
    /// the "queryable" end of the freshness histogram.
    pub published_at: Option<SystemTime>,
}

impl Snapshot {
    pub fn table(&self, kind: TableKind) -> &TableSnapshot {
        &self.tables[kind.index()]
    }
}

/// Where the current snapshot lives. Readers clone the `Arc`; the writer
/// replaces it, and wakes the one task that follows changes (the live state).
#[derive(Debug, Default)]
pub struct SharedSnapshot {
    current: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
    changed: tokio::sync::Notify,
}

impl SharedSnapshot {
    pub fn get(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc,
        // which cannot leave a torn value: keep serving it.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, mut snapshot: Snapshot) {
        snapshot.published_at = Some(SystemTime::now());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
        // A stored permit: a follower busy elsewhere still sees the change.
        self.changed.notify_one();
    }

    /// How many snapshots have been published so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Resolves after the next [`SharedSnapshot::set`] (or at once if one
    /// happened since the last wait). Meant for a single follower.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
