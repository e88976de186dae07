//! Erasure of one visitor from the tables: every committed Parquet file
//! holding their pseudonymous badge (scans, tickets) or their raw badge id
//! (the raw text of rejected events) is rewritten without those rows, and
//! the manifest swapped atomically, as a flush would. Views, reports and
//! exports read these files, so they forget too.
//!
//! Runs with the materialiser stopped (it owns the manifests while it
//! runs). The pseudonym is added to `forgotten.txt` in the data dir, and
//! the materialiser skips scans and tickets of a forgotten pseudonym when
//! it reads the log again (a lost checkpoint, a new query instance). What
//! this cannot do is in `docs/operations.md`: the log keeps its records
//! until its retention ends.

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use footfall_eventlog::Stream;

use super::checkpoint::{self, Manifest};
use crate::table_kind::TableKind;

/// The list of forgotten pseudonyms, one a line, in the data dir.
pub const FORGOTTEN_FILE: &str = "forgotten.txt";

/// Rows removed, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub scans: u64,
    pub tickets: u64,
    pub rejected: u64,
    /// Parquet files rewritten.
    pub files: u64,
}

/// The forgotten pseudonyms of a data dir (empty when none).
/// Fails when the file exists but cannot be read.
pub fn forgotten(data_dir: &Path) -> io::Result<HashSet<String>> {
    match std::fs::read_to_string(data_dir.join(FORGOTTEN_FILE)) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// Removes the visitor whose badge is `badge` (pseudonym `pseudonym`) from
/// every committed file of the data dir. Idempotent: a second run finds
/// nothing. Fails on I/O errors; a failure leaves each stream either as it
/// was or fully rewritten (the manifest is the commit point).
pub fn forget(data_dir: &Path, pseudonym: &str, badge: &str) -> io::Result<Forgotten> {
    // First, so that a replay skips the visitor even if what follows fails.
    let mut list = forgotten(data_dir)?;
    if list.insert(pseudonym.to_owned()) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join(FORGOTTEN_FILE))?;
        writeln!(file, "{pseudonym}")?;
        file.sync_all()?;
    }
    let mut total = Forgotten::default();
    let Ok(dir) = std::fs::read_dir(data_dir.join("checkpoints")) else {
        return Ok(total);
    };
    for entry in dir {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let Some(manifest) = checkpoint::read_manifest(&path)? else {
            continue;
        };
        let stream: Stream = manifest.stream.parse().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: stream {:?}: {e}", path.display(), manifest.stream),
            )
        })?;
        forget_in_stream(data_dir, stream, manifest, pseudonym, badge, &mut total)?;
    }
    Ok(total)
}

fn forget_in_stream(
    data_dir: &Path,
    stream: Stream,
    mut manifest: Manifest,
    pseudonym: &str,
    badge: &str,
    total: &mut Forgotten,
) -> io::Result<()> {
    let done = rewrite_files(data_dir, stream, &mut manifest, None, |table, batch| {
        let keep = keep_mask(table, batch, pseudonym, badge)?;
        let removed = keep.iter().filter(|k| *k == Some(false)).count() as u64;
        let kept = filter_record_batch(batch, &keep).map_err(io::Error::other)?;
        Ok((kept, removed))
    })?;
    total.scans += done.rows[TableKind::Scans.index()];
    total.tickets += done.rows[TableKind::Tickets.index()];
    total.rejected += done.rows[TableKind::Rejected.index()];
    total.files += done.replaced.len() as u64;
    // The materialiser is stopped: no reader can still need the old files.
    for path in done.replaced {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// What [`rewrite_files`] did.
#[derive(Debug, Default)]
pub(super) struct Rewritten {
    /// Rows removed or altered, per table ([`TableKind::index`]).
    pub rows: [u64; 3],
    /// The files the manifest no longer names, for the caller to delete
    /// once no reader can still be reading them.
    pub replaced: Vec<PathBuf>,
}

/// Rewrites the stream's committed files of `table` (every table when
/// `None`) in which `change` alters a row, and commits them as a flush
/// does: the new files are written and fsync'd, then the manifest is
/// swapped atomically, then `manifest` is updated. `change` answers a
/// batch's new rows and how many it removed or altered. Fails on I/O
/// errors and errors of `change`; a failure leaves the stream as it was
/// (files written meanwhile are orphans, removed when the stream opens).
pub(super) fn rewrite_files(
    data_dir: &Path,
    stream: Stream,
    manifest: &mut Manifest,
    table: Option<TableKind>,
    mut change: impl FnMut(TableKind, &RecordBatch) -> io::Result<(RecordBatch, u64)>,
) -> io::Result<Rewritten> {
    let seq = manifest.seq + 1;
    let mut next = manifest.clone();
    next.seq = seq;
    let mut done = Rewritten::default();
    for (i, file) in manifest.files.iter().enumerate() {
        if table.is_some_and(|t| t != file.table) {
            continue;
        }
        let path = data_dir.join(&file.path);
        let batches = read(&path)?;
        let mut kept = Vec::with_capacity(batches.len());
        let mut changed = 0u64;
        for batch in &batches {
            let (part, n) = change(file.table, batch)?;
            changed += n;
            if part.num_rows() > 0 {
                kept.push(part);
            }
        }
        if changed == 0 {
            continue;
        }
        done.rows[file.table.index()] += changed;
        let name = format!("{seq:08}-{i:04}.parquet");
        next.files[i] =
            checkpoint::write_parquet(data_dir, file.table, stream, &file.local_day, &name, &kept)?;
        done.replaced.push(path);
    }
    if done.replaced.is_empty() {
        return Ok(done);
    }
    // Files left empty stay in the manifest: harmless, and the file list
    // keeps one shape.
    checkpoint::save(data_dir, stream, &next)?;
    *manifest = next;
    Ok(done)
}

/// Every row of a Parquet file.
pub(super) fn read(path: &Path) -> io::Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)
        .and_then(|b| b.build())
        .map_err(io::Error::other)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)
}

/// True for the rows to keep.
fn keep_mask(
    table: TableKind,
    batch: &RecordBatch,
    pseudonym: &str,
    badge: &str,
) -> io::Result<BooleanArray> {
    let column = match table {
        TableKind::Scans | TableKind::Tickets => "badge",
        TableKind::Rejected => "raw",
    };
    let values = batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has no string column {column}", table.name()),
            )
        })?;
    Ok((0..values.len())
        .map(|i| {
            let value = values.value(i);
            let theirs = match table {
                TableKind::Scans | TableKind::Tickets => value == pseudonym,
                TableKind::Rejected => raw_holds(value, badge),
            };
            Some(values.is_null(i) || !theirs)
        })
        .collect())
}

/// Whether a rejected event's raw text names the badge: literally, or as
/// the `badge_id` of the JSON it holds (which may spell it with escapes).
fn raw_holds(raw: &str, badge: &str) -> bool {
    raw.contains(badge)
        || serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| {
                v.get("badge_id")
                    .and_then(|b| b.as_str())
                    .map(|b| b == badge)
            })
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_text_is_matched_literally_and_through_json_escapes() {
        assert!(raw_holds(r#"{"badge_id":"V-42","x":1}"#, "V-42"));
        assert!(raw_holds(r#"{"badge_id":"V-\u0034\u0032"}"#, "V-42"));
        assert!(raw_holds("garbage V-42 garbage", "V-42"));
        assert!(!raw_holds(r#"{"badge_id":"V-43"}"#, "V-42"));
    }
}
