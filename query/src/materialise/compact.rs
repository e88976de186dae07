//! Compaction of a stream's small files.
//!
//! A live fair flushes every minute, so without it a stream's day would end
//! as hundreds of files of a few thousand rows: each read with its own
//! footer, each holding every group of rows in one page, so that no page
//! could be skipped. When the materialiser has caught up with the log, it
//! merges the small files of one table and local day into one, laid out as
//! a flush lays its files out ([`super::stream::layout`]), and commits it
//! as a flush does: the new file is written and fsync'd, then the manifest
//! swapped atomically. The replaced files are deleted later
//! ([`super::Materialiser`]), when no query can still be reading them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use footfall_eventlog::Stream;

use super::checkpoint::{self, Manifest};
use super::forget::read;
use super::stream::layout;
use crate::table_kind::TableKind;

/// Files with fewer rows than this are small.
pub const SMALL_ROWS: u64 = 512 * 1024;
/// A table's day is compacted once it has this many small files.
pub const MIN_FILES: usize = 8;
/// A merge stops adding files at this many rows (about 150 MB of scans
/// held while merging).
pub const MERGE_ROWS: u64 = 1024 * 1024;

/// What one merge did.
#[derive(Debug, PartialEq, Eq)]
pub struct Compacted {
    pub table: TableKind,
    pub local_day: String,
    /// The files merged, for the caller to delete once no reader can still
    /// be reading them.
    pub replaced: Vec<PathBuf>,
    pub rows: u64,
}

/// The small files of each table and day that has at least [`MIN_FILES`]
/// of them, by index in the manifest.
fn due_days(manifest: &Manifest) -> impl Iterator<Item = ((TableKind, &str), Vec<usize>)> {
    let mut small: BTreeMap<(TableKind, &str), Vec<usize>> = BTreeMap::new();
    for (i, file) in manifest.files.iter().enumerate() {
        if file.rows < SMALL_ROWS {
            small
                .entry((file.table, &file.local_day))
                .or_default()
                .push(i);
        }
    }
    small
        .into_iter()
        .filter(|(_, files)| files.len() >= MIN_FILES)
}

/// How many small files wait to be merged.
pub fn due(manifest: &Manifest) -> usize {
    due_days(manifest).map(|(_, files)| files.len()).sum()
}

/// Merges the small files of the first table and day (in manifest order)
/// that has at least [`MIN_FILES`] of them, oldest first, up to
/// [`MERGE_ROWS`]; answers `None` when no day has that many. Fails on I/O
/// errors, leaving the stream as it was (a file written meanwhile is an
/// orphan, removed when the stream opens).
pub fn compact(
    data_dir: &Path,
    stream: Stream,
    manifest: &mut Manifest,
) -> io::Result<Option<Compacted>> {
    let Some(((table, day), files)) = due_days(manifest).next() else {
        return Ok(None);
    };
    let mut picked = Vec::new();
    let mut rows = 0;
    for i in files {
        if picked.len() >= 2 && rows + manifest.files[i].rows > MERGE_ROWS {
            break;
        }
        rows += manifest.files[i].rows;
        picked.push(i);
    }
    let day = day.to_owned();
    let mut batches = Vec::new();
    for &i in &picked {
        batches.extend(read(&data_dir.join(&manifest.files[i].path))?);
    }
    let mut next = manifest.clone();
    next.seq += 1;
    let name = format!("{:08}.parquet", next.seq);
    let parts: Vec<_> = layout(table, &batches)?
        .into_iter()
        .flat_map(|(_, parts)| parts)
        .collect();
    drop(batches);
    let merged = checkpoint::write_parquet(data_dir, table, stream, &day, &name, &parts)?;
    // The merged file takes the place of the first file it replaces.
    let replaced = picked
        .iter()
        .map(|&i| data_dir.join(&manifest.files[i].path))
        .collect();
    next.files[picked[0]] = merged;
    for &i in picked[1..].iter().rev() {
        next.files.remove(i);
    }
    checkpoint::save(data_dir, stream, &next)?;
    *manifest = next;
    Ok(Some(Compacted {
        table,
        local_day: day,
        replaced,
        rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::rows::test_scans;
    use arrow::array::StringArray;
    use footfall_eventlog::Topic;

    #[test]
    fn a_days_small_files_merge_into_one_laid_out_like_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let stream = Stream {
            topic: Topic::Scans,
            partition: 0,
        };
        let mut manifest = Manifest::empty(stream);
        let (d1, d2) = ("2026-02-16T10:00:00Z", "2026-02-17T10:00:00Z");
        for i in 0..MIN_FILES + 1 {
            let (a, b, c) = (format!("{i}a"), format!("{i}b"), format!("{i}c"));
            let batch = test_scans(&[
                (&a, d1, "stand", "out"),
                (&b, d1, "gate", "in"),
                (&c, d1, "pole", "in"),
            ]);
            let name = format!("{i:08}.parquet");
            let file = checkpoint::write_parquet(
                data,
                TableKind::Scans,
                stream,
                "2026-02-16",
                &name,
                &[batch],
            )
            .unwrap();
            manifest.files.push(file);
            manifest.seq = i as u64;
        }
        let other = test_scans(&[("x", d2, "gate", "in")]);
        let other = checkpoint::write_parquet(
            data,
            TableKind::Scans,
            stream,
            "2026-02-17",
            "x.parquet",
            &[other],
        )
        .unwrap();
        manifest.files.push(other.clone());
        checkpoint::save(data, stream, &manifest).unwrap();
        let before: Vec<PathBuf> = manifest.files.iter().map(|f| data.join(&f.path)).collect();
        assert_eq!(due(&manifest), MIN_FILES + 1);

        let done = compact(data, stream, &mut manifest)
            .unwrap()
            .expect("a day is due");
        assert_eq!(
            (done.table, done.local_day.as_str(), done.rows),
            (TableKind::Scans, "2026-02-16", 27)
        );
        assert_eq!(done.replaced, before[..MIN_FILES + 1]);
        assert_eq!(manifest.files.len(), 2);
        assert_eq!(manifest.files[1], other);
        assert_eq!(
            checkpoint::load(data, stream).unwrap(),
            Some(manifest.clone())
        );
        let ids: Vec<String> = read(&data.join(&manifest.files[0].path))
            .unwrap()
            .iter()
            .flat_map(|b| {
                let ids: &StringArray = b
                    .column_by_name("event_id")
                    .unwrap()
                    .as_any()
                    .downcast_ref()
                    .unwrap();
                ids.iter().flatten().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        let group = |suffix: char| (0..MIN_FILES + 1).map(move |i| format!("{i}{suffix}"));
        let expected: Vec<String> = group('b').chain(group('c')).chain(group('a')).collect();
        assert_eq!(
            ids, expected,
            "gate in, pole in, stand out; each in log order"
        );

        assert_eq!(due(&manifest), 0);
        assert_eq!(compact(data, stream, &mut manifest).unwrap(), None);
    }
}
