//! One log stream (topic partition) being materialised: its read position,
//! its dedup set, the rows built but not flushed, and its committed files.

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;
use xxhash_rust::xxh3::xxh3_128;

use footfall_eventlog::{Delivered, Stream, Topic};
use footfall_schemas::events::Price;
use footfall_schemas::record::{RejectedRecord, ScanRecord, TicketRecord, format_ts};
use footfall_schemas::{RejectCode, ZoneKind};

use super::checkpoint::{self, FileEntry, Manifest};
use super::idset::IdSet;
use super::rows::{Local, RejectedRows, ScanRows, TicketRows, date_of_day, parse_ts};
use crate::table_kind::TableKind;

/// What became of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Added(TableKind),
    /// Its event id was materialised before.
    Duplicate,
    /// Not a valid record: kept in `rejected` with code `bad_record`.
    BadRecord,
    /// Before the checkpoint (a replay overlap): already counted; or the
    /// event of a forgotten visitor.
    Skipped,
}

pub struct StreamState {
    pub stream: Stream,
    /// Next offset to read; everything before it is in rows or files.
    pub next_offset: i64,
    /// xxh3-128 of every event id materialised (files and memory).
    seen: IdSet,
    scans: ScanRows,
    tickets: TicketRows,
    rejected: RejectedRows,
    /// Sealed batches per table, queryable, not yet flushed.
    pub sealed: [Vec<RecordBatch>; 3],
    pub manifest: Manifest,
    /// When the oldest unsealed row arrived.
    pub unsealed_since: Option<Instant>,
    /// Pseudonyms erased by `footfall forget`: their scans and tickets are
    /// skipped when the log is read again.
    forgotten: HashSet<String>,
}

impl StreamState {
    /// Opens a stream at its checkpoint: removes uncommitted files and
    /// rebuilds the dedup set from the committed ones. Fails on I/O errors.
    pub fn recover(data_dir: &Path, stream: Stream) -> std::io::Result<Self> {
        let manifest =
            checkpoint::load(data_dir, stream)?.unwrap_or_else(|| Manifest::empty(stream));
        let removed = checkpoint::remove_orphans(data_dir, stream, &manifest)?;
        if removed > 0 {
            tracing::info!(%stream, removed, "removed files of a flush that never committed");
        }
        let forgotten = super::forget::forgotten(data_dir)?;
        let mut ids = Vec::new();
        for file in manifest
            .files
            .iter()
            .filter(|f| f.table != TableKind::Rejected)
        {
            checkpoint::for_each_event_id(&data_dir.join(&file.path), |id| {
                ids.push(xxh3_128(id.as_bytes()));
            })?;
        }
        let seen = IdSet::from_ids(ids);
        Ok(Self {
            stream,
            next_offset: manifest.next_offset,
            seen,
            scans: ScanRows::new(),
            tickets: TicketRows::new(),
            rejected: RejectedRows::new(),
            sealed: Default::default(),
            manifest,
            unsealed_since: None,
            forgotten,
        })
    }

    pub fn unsealed_rows(&self) -> usize {
        self.scans.len() + self.tickets.len() + self.rejected.len()
    }

    pub fn sealed_rows(&self) -> usize {
        self.sealed
            .iter()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }

    pub fn add(&mut self, record: &Delivered, tz: Tz) -> Outcome {
        if record.offset < self.next_offset {
            return Outcome::Skipped;
        }
        self.next_offset = record.offset + 1;
        let pos = (record.stream.partition, record.offset);
        let outcome = match record.stream.topic {
            Topic::Scans => self.add_scan(&record.value, tz, pos),
            Topic::Tickets => self.add_ticket(&record.value, tz, pos),
            Topic::Rejected => self.add_rejected(&record.value, tz, pos),
        };
        let outcome = outcome.unwrap_or_else(|why| {
            self.bad_record(record, &why, tz);
            Outcome::BadRecord
        });
        if !matches!(outcome, Outcome::Duplicate) && self.unsealed_since.is_none() {
            self.unsealed_since = Some(Instant::now());
        }
        outcome
    }

    fn first_seen(&mut self, event_id: &str) -> bool {
        self.seen.insert(xxh3_128(event_id.as_bytes()))
    }

    fn add_scan(&mut self, value: &[u8], tz: Tz, pos: (i32, i64)) -> Result<Outcome, String> {
        let r: ScanRecord =
            serde_json::from_slice(value).map_err(|e| format!("not a scan record: {e}"))?;
        let (ts, received) = times(r.ts, r.received_at)?;
        if self.forgotten.contains(r.badge) {
            return Ok(Outcome::Skipped);
        }
        if !self.first_seen(r.event_id) {
            return Ok(Outcome::Duplicate);
        }
        self.scans.push(&r, ts, received, Local::of(ts, tz), pos);
        Ok(Outcome::Added(TableKind::Scans))
    }

    fn add_ticket(&mut self, value: &[u8], tz: Tz, pos: (i32, i64)) -> Result<Outcome, String> {
        let r: TicketRecord =
            serde_json::from_slice(value).map_err(|e| format!("not a ticket record: {e}"))?;
        let (ts, received) = times(r.ts, r.received_at)?;
        let price =
            Price::parse(r.price).ok_or_else(|| format!("price {:?} is not a decimal", r.price))?;
        if self.forgotten.contains(r.badge) {
            return Ok(Outcome::Skipped);
        }
        if !self.first_seen(r.event_id) {
            return Ok(Outcome::Duplicate);
        }
        self.tickets
            .push(&r, price, ts, received, Local::of(ts, tz), pos);
        Ok(Outcome::Added(TableKind::Tickets))
    }

    fn add_rejected(&mut self, value: &[u8], tz: Tz, pos: (i32, i64)) -> Result<Outcome, String> {
        let r: RejectedRecord =
            serde_json::from_slice(value).map_err(|e| format!("not a rejected record: {e}"))?;
        let received = parse_ts(r.received_at).ok_or("received_at is not an RFC 3339 time")?;
        self.rejected
            .push(&r, received, Local::of(received, tz), pos);
        Ok(Outcome::Added(TableKind::Rejected))
    }

    /// A record that is not ours to read (a poison message): kept as a
    /// rejected row so the stream keeps moving and nothing vanishes.
    fn bad_record(&mut self, record: &Delivered, why: &str, tz: Tz) {
        let now = Utc::now();
        let raw = String::from_utf8_lossy(&record.value);
        let raw = footfall_schemas::events::truncate(&raw, 16 << 10);
        let rejected = RejectedRecord {
            v: footfall_schemas::SCHEMA_VERSION,
            received_at: &format_ts(now),
            code: RejectCode::BadRecord.as_str(),
            message: format!("{} offset {}: {why}", record.stream, record.offset).into(),
            event_id: None,
            raw: raw.into(),
        };
        self.rejected.push(
            &rejected,
            now,
            Local::of(now, tz),
            (record.stream.partition, record.offset),
        );
    }

    /// Turns the unsealed rows into batches that queries can see.
    pub fn seal(&mut self) -> bool {
        let mut sealed = false;
        if self.scans.len() > 0 {
            self.sealed[TableKind::Scans.index()].push(self.scans.finish());
            sealed = true;
        }
        if self.tickets.len() > 0 {
            self.sealed[TableKind::Tickets.index()].push(self.tickets.finish());
            sealed = true;
        }
        if self.rejected.len() > 0 {
            self.sealed[TableKind::Rejected.index()].push(self.rejected.finish());
            sealed = true;
        }
        self.unsealed_since = None;
        sealed
    }

    /// Writes the sealed batches to Parquet by local day and commits a new
    /// manifest at the current offset. On error the manifest is unchanged
    /// and the batches stay in memory for the next try.
    pub fn flush(&mut self, data_dir: &Path) -> std::io::Result<()> {
        self.seal();
        if self.next_offset == self.manifest.next_offset {
            return Ok(());
        }
        let seq = self.manifest.seq + 1;
        let mut new_files: Vec<FileEntry> = Vec::new();
        for table in TableKind::ALL {
            let batches = &self.sealed[table.index()];
            if batches.is_empty() {
                continue;
            }
            for (day, day_batches) in layout(table, batches)? {
                let name = format!("{seq:08}.parquet");
                new_files.push(checkpoint::write_parquet(
                    data_dir,
                    table,
                    self.stream,
                    &day,
                    &name,
                    &day_batches,
                )?);
            }
        }
        let mut manifest = self.manifest.clone();
        manifest.seq = seq;
        manifest.next_offset = self.next_offset;
        manifest.files.extend(new_files);
        checkpoint::save(data_dir, self.stream, &manifest)?;
        self.manifest = manifest;
        self.sealed = Default::default();
        Ok(())
    }
}

fn times(ts: &str, received_at: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let ts = parse_ts(ts).ok_or("ts is not an RFC 3339 time")?;
    let received = parse_ts(received_at).ok_or("received_at is not an RFC 3339 time")?;
    Ok((ts, received))
}

/// Rows per batch handed to the Parquet writer (its row group size).
const WRITE_CHUNK: usize = 128 * 1024;

/// The sealed rows of one table as the contents of its files: grouped by
/// `local_day`, in day order, each day as batches of at most `WRITE_CHUNK`
/// rows. Within a day, scans are laid out by `direction` (`in` first), then
/// by `zone_kind` (gate, pole, stand, room), each group in log order: a
/// question that reads some groups (daily attendance the gate entries,
/// footfall per pole the pole and stand entries) skips the others' pages by
/// their statistics. Other tables keep log order.
pub(super) fn layout(
    table: TableKind,
    batches: &[RecordBatch],
) -> std::io::Result<Vec<(String, Vec<RecordBatch>)>> {
    use arrow::compute::interleave_record_batch;
    let total = batches.iter().map(RecordBatch::num_rows).sum();
    // (local day, group, batch, row)
    let mut rows: Vec<(i32, u8, u32, u32)> = Vec::with_capacity(total);
    for (b, batch) in batches.iter().enumerate() {
        let days = day_column(batch)?;
        let groups = match table {
            TableKind::Scans => scan_groups(batch)?,
            _ => vec![0; batch.num_rows()],
        };
        rows.extend(
            (0..batch.num_rows()).map(|row| (days.value(row), groups[row], b as u32, row as u32)),
        );
    }
    // Stable: log order within a group.
    rows.sort_by_key(|&(day, group, _, _)| (day, group));
    let sources: Vec<&RecordBatch> = batches.iter().collect();
    let mut out = Vec::new();
    for day_rows in rows.chunk_by(|a, b| a.0 == b.0) {
        let day = day_rows[0].0;
        let parts = day_rows
            .chunks(WRITE_CHUNK)
            .map(|chunk| {
                let picks: Vec<(usize, usize)> = chunk
                    .iter()
                    .map(|&(_, _, b, row)| (b as usize, row as usize))
                    .collect();
                interleave_record_batch(&sources, &picks)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        let date = date_of_day(day).map_or_else(|| format!("day{day}"), |d| d.to_string());
        out.push((date, parts));
    }
    Ok(out)
}

/// Each scan row's group in a file: `in` before `out`, then the zone kinds
/// in `ZoneKind::ALL` order (an unknown kind last).
pub(super) fn scan_groups(batch: &RecordBatch) -> std::io::Result<Vec<u8>> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
            .ok_or_else(|| std::io::Error::other(format!("scans has a Utf8 column {name}")))
    };
    let (direction, zone_kind) = (column("direction")?, column("zone_kind")?);
    let kinds = ZoneKind::ALL.len() as u8;
    Ok(direction
        .iter()
        .zip(zone_kind.iter())
        .map(|(direction, kind)| {
            let kind = kind.and_then(ZoneKind::parse).map_or(kinds, |k| k as u8);
            u8::from(direction != Some("in")) * (kinds + 1) + kind
        })
        .collect())
}

fn day_column(batch: &RecordBatch) -> std::io::Result<&arrow::array::Date32Array> {
    batch
        .column_by_name("local_day")
        .and_then(|c| c.as_any().downcast_ref::<arrow::array::Date32Array>())
        .ok_or_else(|| std::io::Error::other("every event table has a local_day Date32 column"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::rows::test_scans as scans;
    use arrow::array::StringArray;

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
        batch
            .column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref()
            .unwrap()
    }

    #[test]
    fn a_day_of_scans_is_written_by_direction_then_zone_kind_in_log_order() {
        let (d1, d2) = ("2026-02-16T10:00:00Z", "2026-02-17T10:00:00Z");
        let batches = [
            scans(&[
                ("a", d1, "stand", "out"),
                ("b", d2, "gate", "in"),
                ("c", d1, "room", "in"),
                ("d", d1, "gate", "in"),
            ]),
            scans(&[
                ("e", d1, "stand", "in"),
                ("f", d1, "gate", "out"),
                ("g", d1, "gate", "in"),
                ("h", d2, "pole", "out"),
                ("i", d1, "pole", "in"),
            ]),
        ];
        let days = layout(TableKind::Scans, &batches).unwrap();
        let written: Vec<(String, Vec<String>)> = days
            .iter()
            .map(|(day, parts)| {
                let ids = parts
                    .iter()
                    .flat_map(|p| column(p, "event_id").iter().flatten().map(str::to_owned))
                    .collect();
                (day.clone(), ids)
            })
            .collect();
        let expect =
            |day: &str, ids: &str| (day.to_owned(), ids.split(' ').map(str::to_owned).collect());
        assert_eq!(
            written,
            vec![
                expect("2026-02-16", "d g i e c f a"),
                expect("2026-02-17", "b h")
            ]
        );
        // Every column moved with its row.
        let first = &days[0].1[0];
        assert_eq!(column(first, "zone_kind").value(2), "pole");
        assert_eq!(column(first, "direction").value(5), "out");
        assert_eq!(first.num_columns(), batches[0].num_columns());
    }

    #[test]
    fn each_layout_group_of_a_day_is_a_row_group_of_its_file() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let d1 = "2026-02-16T10:00:00Z";
        let batch = scans(&[
            ("b", d1, "gate", "in"),
            ("a", d1, "stand", "out"),
            ("c", d1, "stand", "in"),
            ("d", d1, "gate", "in"),
            ("e", d1, "gate", "out"),
            ("f", d1, "stand", "in"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream {
            topic: Topic::Scans,
            partition: 0,
        };
        let write = |name: &str, batches: &[RecordBatch]| {
            let file = checkpoint::write_parquet(
                dir.path(),
                TableKind::Scans,
                stream,
                "2026-02-16",
                name,
                batches,
            )
            .unwrap();
            let file = std::fs::File::open(dir.path().join(file.path)).unwrap();
            let reader = SerializedFileReader::new(file).unwrap();
            let meta = reader.metadata();
            (0..meta.num_row_groups())
                .map(|i| meta.row_group(i).num_rows())
                .collect::<Vec<_>>()
        };
        let (_, laid_out) = layout(TableKind::Scans, &[batch.clone()])
            .unwrap()
            .remove(0);
        // gate in (b d), stand in (c f), gate out (e), stand out (a)
        assert_eq!(write("laid-out.parquet", &laid_out), vec![2, 2, 1, 1]);
        // Out of layout order (groups 0 7 2 0 5 2): a new row group only
        // at a group higher than any in the open one.
        assert_eq!(write("as-logged.parquet", &[batch]), vec![1, 5]);
    }
}
