//! Immutable snapshots of the event tables, swapped in whole by the
//! materialiser and read by SQL. A query sees one snapshot from start to end:
//! the Parquet files committed so far plus the in-memory batches not yet
//! flushed, never a half-written state.

use arrow::record_batch::RecordBatch;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::table_kind::TableKind;

/// A committed Parquet file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub path: PathBuf,
    pub bytes: u64,
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
}

impl Snapshot {
    pub fn table(&self, kind: TableKind) -> &TableSnapshot {
        &self.tables[kind.index()]
    }
}

/// Where the current snapshot lives. Readers clone the `Arc`; the writer
/// replaces it.
#[derive(Debug, Default)]
pub struct SharedSnapshot {
    current: RwLock<Arc<Snapshot>>,
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

    pub fn set(&self, snapshot: Snapshot) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
    }
}
