//! Checkpoints: per stream, a manifest naming the Parquet files that hold the
//! stream's rows and the log offset up to which they are complete.
//!
//! Invariant: the manifest is the commit point. Files are written and
//! fsync'd first under names no manifest uses yet; then the manifest is
//! replaced atomically (write, fsync, rename, fsync the folder). A crash at
//! any point leaves the previous manifest, whose files all exist; files that
//! no manifest names are leftovers of a flush that never committed, deleted
//! when the stream is next opened. The dedup state is the set of event ids
//! in the manifest's files, so it is committed by the same rename.

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use footfall_eventlog::Stream;

use super::stream::scan_groups;
use crate::table_kind::TableKind;

const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub table: TableKind,
    /// Relative to the data dir.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub local_day: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub stream: String,
    /// The next log offset to read: every record before it is in `files`
    /// (or was a duplicate).
    pub next_offset: i64,
    /// Flush counter, for unique file names.
    pub seq: u64,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    pub fn empty(stream: Stream) -> Self {
        Self {
            version: MANIFEST_VERSION,
            stream: stream.to_string(),
            next_offset: 0,
            seq: 0,
            files: Vec::new(),
        }
    }
}

pub fn manifest_path(data_dir: &Path, stream: Stream) -> PathBuf {
    data_dir.join("checkpoints").join(format!("{stream}.json"))
}

/// Folder of a stream's files for one table.
pub fn stream_dir(data_dir: &Path, table: TableKind, stream: Stream) -> PathBuf {
    data_dir
        .join("tables")
        .join(table.name())
        .join(stream.to_string())
}

/// Reads a stream's manifest; `None` when the stream was never checkpointed.
/// Fails on I/O errors and on a manifest that does not parse.
pub fn load(data_dir: &Path, stream: Stream) -> io::Result<Option<Manifest>> {
    read_manifest(&manifest_path(data_dir, stream))
}

pub fn read_manifest(path: &Path) -> io::Result<Option<Manifest>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the manifest atomically and durably.
pub fn save(data_dir: &Path, stream: Stream, manifest: &Manifest) -> io::Result<()> {
    let path = manifest_path(data_dir, stream);
    let dir = path.parent().expect("a manifest path has a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

/// Writes batches (all of one table and local day) to a new Parquet file,
/// fsync'd, and returns its entry. Fails on I/O errors.
pub fn write_parquet(
    data_dir: &Path,
    table: TableKind,
    stream: Stream,
    local_day: &str,
    name: &str,
    batches: &[RecordBatch],
) -> io::Result<FileEntry> {
    let dir = stream_dir(data_dir, table, stream).join(local_day);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    // Pages of at most 8k rows (the writer's default is 20k): a flush of a
    // live fair holds a few thousand rows a stream and day, and a page is
    // what a question's filter can skip (`stream::layout` groups the rows).
    // Scans also start a row group where their layout group does (below).
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_data_page_row_count_limit(8 * 1024)
        .build();
    let file = File::create(&path)?;
    let mut writer =
        ArrowWriter::try_new(file, table.schema(), Some(props)).map_err(io::Error::other)?;
    let mut rows = 0u64;
    // The highest layout group in the open row group.
    let mut top = None;
    for batch in batches {
        rows += batch.num_rows() as u64;
        if table != TableKind::Scans {
            writer.write(batch).map_err(io::Error::other)?;
            continue;
        }
        // A row group per group of `stream::layout` (direction, then zone
        // kind): a question on gate entries then skips the others by their
        // row group statistics, where a page that straddles two groups
        // matches both (84 of the reference week's 141 pages were read for
        // gate entries). Only a higher group starts one, so rows out of
        // layout order cannot make a row group per row.
        let groups = scan_groups(batch)?;
        let mut start = 0;
        for run in groups.chunk_by(|a, b| a == b) {
            if top.is_some_and(|top| run[0] > top) {
                writer.flush().map_err(io::Error::other)?;
            }
            top = top.max(Some(run[0]));
            writer
                .write(&batch.slice(start, run.len()))
                .map_err(io::Error::other)?;
            start += run.len();
        }
    }
    let file = writer.into_inner().map_err(io::Error::other)?;
    file.sync_all()?;
    File::open(&dir)?.sync_all()?;
    let bytes = file.metadata()?.len();
    let rel = path
        .strip_prefix(data_dir)
        .expect("the file is under the data dir")
        .to_string_lossy()
        .into_owned();
    Ok(FileEntry {
        table,
        path: rel,
        rows,
        bytes,
        local_day: local_day.to_owned(),
    })
}

/// Files no manifest names are never read; they are deleted once they are
/// older than this, so that a flush still under way elsewhere (another
/// materialiser handing the stream over) keeps its files until it commits.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes the stream's files that its manifest does not name and that are
/// older than ten minutes (leftovers of a flush that never committed).
pub fn remove_orphans(data_dir: &Path, stream: Stream, manifest: &Manifest) -> io::Result<usize> {
    let keep: std::collections::HashSet<PathBuf> = manifest
        .files
        .iter()
        .map(|f| data_dir.join(&f.path))
        .collect();
    let mut removed = 0;
    for table in TableKind::ALL {
        let dir = stream_dir(data_dir, table, stream);
        let Ok(days) = std::fs::read_dir(&dir) else {
            continue;
        };
        for day in days {
            let day = day?.path();
            for file in std::fs::read_dir(&day)? {
                let file = file?;
                let path = file.path();
                let age = file.metadata()?.modified()?.elapsed().unwrap_or_default();
                if !keep.contains(&path) && age > ORPHAN_AGE {
                    std::fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Calls `each` with every event id in a file (scans and tickets).
pub fn for_each_event_id(path: &Path, mut each: impl FnMut(&str)) -> io::Result<()> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path)?).map_err(io::Error::other)?;
    let column = builder.schema().index_of("event_id").map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    for batch in builder
        .with_projection(mask)
        .build()
        .map_err(io::Error::other)?
    {
        let batch = batch.map_err(io::Error::other)?;
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "event_id is not a string column",
                )
            })?;
        for i in 0..ids.len() {
            each(ids.value(i));
        }
    }
    Ok(())
}
