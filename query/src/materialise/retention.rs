//! Retention of the raw text of refused events in the `rejected` table.
//!
//! Past `[query] rejected_retention_s` a row keeps its code, message, event
//! id, times and log position, so counts by code and by day stay exact,
//! and its `raw` becomes empty: the raw text may hold a badge id in clear
//! and only serves to debug a vendor's feed while it is fresh. (The message
//! is footfall's own text; it quotes at most 64 characters of a field name
//! or value, never a badge id.)
//!
//! The materialiser owns the manifests while it runs, so it does this, on
//! its committed files, with the file rewrite `footfall forget` uses; rows
//! still in memory wait for their flush.

use arrow::array::{Array, StringArray, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use footfall_eventlog::Stream;

use super::checkpoint::Manifest;
use super::forget::{Rewritten, rewrite_files};
use crate::table_kind::TableKind;

/// How often the materialiser looks for expired raw text: a tenth of the
/// limit, at least every ten minutes (a pass reads the stream's rejected
/// files, which are few), at most every second.
pub fn check_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Empties `raw` in the stream's committed rejected rows received before
/// `before_ms` (Unix time in ms), rewriting the files that hold such rows
/// and swapping the manifest. Fails on I/O errors, leaving the stream as
/// it was.
pub(super) fn expire_raw(
    data_dir: &Path,
    stream: Stream,
    manifest: &mut Manifest,
    before_ms: i64,
) -> io::Result<Rewritten> {
    rewrite_files(
        data_dir,
        stream,
        manifest,
        Some(TableKind::Rejected),
        |_, batch| without_raw(batch, before_ms),
    )
}

/// The batch with `raw` emptied in the rows received before `before_ms`,
/// and how many rows that changed.
fn without_raw(batch: &RecordBatch, before_ms: i64) -> io::Result<(RecordBatch, u64)> {
    let missing = |name: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("rejected has no column {name} of the expected type"),
        )
    };
    let received = batch
        .column_by_name("received_at")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
        .ok_or_else(|| missing("received_at"))?;
    let raw_index = batch.schema().index_of("raw").map_err(|_| missing("raw"))?;
    let raw = batch
        .column(raw_index)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| missing("raw"))?;
    let expired = |i: usize| {
        raw.is_valid(i)
            && !raw.value(i).is_empty()
            && received.is_valid(i)
            && received.value(i) < before_ms
    };
    let changed = (0..batch.num_rows()).filter(|&i| expired(i)).count() as u64;
    if changed == 0 {
        return Ok((batch.clone(), 0));
    }
    let emptied: StringArray = (0..batch.num_rows())
        .map(|i| {
            if expired(i) {
                Some("")
            } else {
                raw.is_valid(i).then(|| raw.value(i))
            }
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[raw_index] = Arc::new(emptied);
    let batch = RecordBatch::try_new(batch.schema(), columns).map_err(io::Error::other)?;
    Ok((batch, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::checkpoint::{self, FileEntry};
    use arrow::array::{Date32Array, Int32Array, Int64Array};
    use footfall_eventlog::Topic;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const HOUR_MS: i64 = 3_600_000;
    /// 2026-02-16T10:00:00Z.
    const T0: i64 = 1_771_236_000_000;

    fn rejected(rows: &[(i64, &str, &str)]) -> RecordBatch {
        let n = rows.len();
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(Date32Array::from(vec![20_500; n])),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["badge_id is required"; n])),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(vec![0; n])),
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
        ];
        RecordBatch::try_new(TableKind::Rejected.schema(), columns).unwrap()
    }

    fn read(data_dir: &Path, file: &FileEntry) -> Vec<(i64, String, String)> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(data_dir.join(&file.path)).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let received = batch
                .column_by_name("received_at")
                .unwrap()
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .clone();
            let (code, raw) = (col("code"), col("raw"));
            for i in 0..batch.num_rows() {
                out.push((
                    received.value(i),
                    code.value(i).to_owned(),
                    raw.value(i).to_owned(),
                ));
            }
        }
        out
    }

    #[test]
    fn old_raw_text_is_emptied_and_the_rest_of_the_row_stays() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let stream = Stream {
            topic: Topic::Rejected,
            partition: 0,
        };
        let batch = rejected(&[
            (T0, "schema", "{\"badge_id\":\"V-1\"}"),
            (T0 + HOUR_MS, "parse", "{not json V-2"),
            (T0 + 3 * HOUR_MS, "schema", "{\"badge_id\":\"V-3\"}"),
        ]);
        let file = checkpoint::write_parquet(
            data,
            TableKind::Rejected,
            stream,
            "2026-02-16",
            "00000001.parquet",
            &[batch],
        )
        .unwrap();
        let old_path = data.join(&file.path);
        let mut manifest = Manifest {
            seq: 1,
            next_offset: 3,
            files: vec![file],
            ..Manifest::empty(stream)
        };
        checkpoint::save(data, stream, &manifest).unwrap();

        let done = expire_raw(data, stream, &mut manifest, T0 + 2 * HOUR_MS).unwrap();
        assert_eq!(done.rows[TableKind::Rejected.index()], 2);
        assert_eq!(done.replaced, vec![old_path.clone()]);
        assert!(old_path.exists(), "the caller deletes the replaced file");
        assert_eq!(manifest.seq, 2);
        assert_eq!(manifest.next_offset, 3);
        assert_eq!(
            checkpoint::load(data, stream).unwrap().as_ref(),
            Some(&manifest),
            "the new manifest is committed"
        );
        assert_eq!(
            read(data, &manifest.files[0]),
            vec![
                (T0, "schema".into(), String::new()),
                (T0 + HOUR_MS, "parse".into(), String::new()),
                (
                    T0 + 3 * HOUR_MS,
                    "schema".into(),
                    "{\"badge_id\":\"V-3\"}".into()
                ),
            ]
        );

        // Nothing more to empty before that instant: no rewrite.
        let again = expire_raw(data, stream, &mut manifest, T0 + 2 * HOUR_MS).unwrap();
        assert!(again.replaced.is_empty());
        assert_eq!(manifest.seq, 2);
    }

    #[test]
    fn other_tables_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream {
            topic: Topic::Scans,
            partition: 0,
        };
        // A scans entry whose file does not exist: reading it would fail.
        let mut manifest = Manifest {
            files: vec![FileEntry {
                table: TableKind::Scans,
                path: "tables/scans/missing.parquet".into(),
                rows: 1,
                bytes: 1,
                local_day: "2026-02-16".into(),
            }],
            ..Manifest::empty(stream)
        };
        let done = expire_raw(dir.path(), stream, &mut manifest, i64::MAX).unwrap();
        assert!(done.replaced.is_empty());
    }

    #[test]
    fn the_check_interval_follows_the_limit_within_bounds() {
        assert_eq!(
            check_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            check_interval(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
        assert_eq!(
            check_interval(Duration::from_secs(30 * 24 * 3600)),
            Duration::from_secs(600)
        );
    }
}
