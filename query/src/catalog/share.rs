//! One share of a walk's input (`super::sequence`), held compactly and
//! sorted in memory.
//!
//! At 50 million scans, DataFusion's sort under the walks spilled all of
//! its input, 4.9 GB as Arrow with its strings, and a fifth of the walks'
//! time went to copying it into the page cache and back. A share (a local
//! day of `scans`, or a part of one by badge hash when a day is larger than
//! the memory allows) is held here in 28-byte rows instead: the badge as
//! its number in the share, the day, the time, the event id's place in one
//! buffer of ids, and the walk's own columns as codes of the share's
//! dictionaries. Sorted by (badge number, day, time, event id), where the
//! number groups the rows exactly as the badge does (equal badges, equal
//! numbers; never two badges one number), the rows go to the walk as
//! batches again, without the event id.

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray, StringBuilder,
    TimestampMillisecondArray,
};
use arrow::datatypes::{
    DataType, Date32Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::error::{DataFusionError, Result};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

use super::by_day::text;
use super::sequence::{BADGE, EVENT_ID, LOCAL_DAY, TS};

/// Where a walk's own columns start in what it reads.
const READ_OWN: usize = EVENT_ID + 1;

/// The most columns a walk reads besides the sequence's.
pub(super) const MAX_OWN: usize = 4;
/// The code of a null in a walk's own column.
const NULL: u16 = u16::MAX;
/// Bytes a dictionary entry holds besides its text: the map's slot and
/// control byte with the map's slack, and its offset.
const ENTRY_OVERHEAD: usize = 32;

/// A scan, compactly. 28 bytes.
#[derive(Clone, Copy)]
struct Row {
    /// Milliseconds from the start (UTC) of its local day, which a scan's
    /// time is within hours of.
    ts: i32,
    badge: u32,
    day: i32,
    /// Its event id in [`Ids`].
    id_at: u32,
    id_block: u16,
    id_len: u16,
    own: [u16; MAX_OWN],
}

/// Event ids one after the other, in blocks of [`ID_BLOCK`] bytes: a
/// buffer grown by doubling holds up to twice what it needs.
#[derive(Default)]
struct Ids {
    blocks: Vec<Vec<u8>>,
}

const ID_BLOCK: usize = 64 << 10;

impl Ids {
    /// Keeps `id`; answers (offset, block, length).
    fn push(&mut self, id: &[u8]) -> Result<(u32, u16, u16)> {
        let len = u16::try_from(id.len()).map_err(|_| {
            DataFusionError::ResourcesExhausted(format!(
                "a walk orders by event ids of at most {} bytes, not {}",
                u16::MAX,
                id.len()
            ))
        })?;
        if self
            .blocks
            .last()
            .is_none_or(|b| b.len() + id.len() > b.capacity())
        {
            self.blocks.push(Vec::with_capacity(ID_BLOCK.max(id.len())));
        }
        let block = u16::try_from(self.blocks.len() - 1).map_err(|_| {
            DataFusionError::ResourcesExhausted(format!(
                "a walk holds at most {} MiB of event ids per day",
                (usize::from(u16::MAX) + 1) * ID_BLOCK >> 20
            ))
        })?;
        let last = self.blocks.last_mut().expect("a block");
        let at = last.len() as u32;
        last.extend_from_slice(id);
        Ok((at, block, len))
    }

    fn get(&self, row: &Row) -> &[u8] {
        &self.blocks[usize::from(row.id_block)][row.id_at as usize..][..usize::from(row.id_len)]
    }

    fn bytes(&self) -> usize {
        self.blocks.iter().map(Vec::capacity).sum()
    }
}

/// Strings numbered in order of first sight.
///
/// Looked up by their 64-bit hash, computed in one call (a map of strings
/// hashes them through the streaming hasher, which took as long as the
/// rest of the lookup). The first string of a hash is checked against its
/// text; a later string with the same hash goes to `collided`, by text.
#[derive(Default)]
pub(super) struct Dictionary {
    by_hash: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    collided: HashMap<Box<str>, u32>,
    /// The strings, one after the other; the `n`th ends at `ends[n]`.
    text: String,
    ends: Vec<u32>,
}

impl Dictionary {
    pub(super) fn number(&mut self, name: &str) -> Result<u32> {
        let n = self.ends.len() as u32;
        match self.by_hash.entry(xxh3_64(name.as_bytes())) {
            Entry::Occupied(first) => {
                let first = *first.get();
                if self.name(first) == name {
                    return Ok(first);
                }
                if let Some(&n) = self.collided.get(name) {
                    return Ok(n);
                }
                self.collided.insert(name.into(), n);
            }
            Entry::Vacant(slot) => {
                slot.insert(n);
            }
        }
        self.text.push_str(name);
        let end = u32::try_from(self.text.len()).map_err(|_| {
            DataFusionError::ResourcesExhausted(
                "at most 4 GiB of distinct text is held per day".into(),
            )
        })?;
        self.ends.push(end);
        Ok(n)
    }

    /// How many strings it has numbered.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(super) fn bytes(&self) -> usize {
        self.text.capacity() + self.ends.len() * ENTRY_OVERHEAD
    }

    /// [`Self::number`] as a code of an own column, which has fewer than
    /// [`NULL`] distinct values in a share (they name zones of the venue).
    pub(super) fn code(&mut self, name: &str, column: &str) -> Result<u16> {
        match u16::try_from(self.number(name)?) {
            Ok(code) if code != NULL => Ok(code),
            _ => Err(DataFusionError::ResourcesExhausted(format!(
                "fewer than {NULL} distinct values of {column} are held per day"
            ))),
        }
    }

    pub(super) fn name(&self, n: u32) -> &str {
        let n = n as usize;
        let start = if n == 0 { 0 } else { self.ends[n - 1] as usize };
        &self.text[start..self.ends[n] as usize]
    }
}

/// Passes on a hash computed beforehand.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64(bytes);
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Which part of a day a share holds: the badges whose hash is `part`
/// modulo `parts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Split {
    pub parts: u64,
    pub part: u64,
}

impl Split {
    #[cfg(test)]
    pub(super) const WHOLE: Self = Self { parts: 1, part: 0 };

    pub(super) fn holds(self, badge: &str) -> bool {
        self.parts == 1 || xxh3_64(badge.as_bytes()) % self.parts == self.part
    }
}

/// A share of a walk's input: [`Share::push`] its batches, [`Share::sort`],
/// then read it back with [`Share::batches`].
pub(super) struct Share {
    split: Split,
    /// The names of the walk's own columns, for errors.
    columns: Vec<String>,
    rows: Vec<Row>,
    badges: Dictionary,
    ids: Ids,
    own: Vec<Dictionary>,
}

impl Share {
    /// A share of an input of `schema` (the sequence's columns, then the
    /// walk's own, at most [`MAX_OWN`] of them, as text), expected to hold
    /// `rows` rows.
    pub(super) fn new(schema: &SchemaRef, split: Split, rows: usize) -> Result<Self> {
        let columns: Vec<String> = schema.fields()[READ_OWN..]
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if columns.len() > MAX_OWN {
            return Err(DataFusionError::Internal(format!(
                "a walk reads at most {MAX_OWN} columns of its own, not {}",
                columns.len()
            )));
        }
        if !matches!(
            schema.field(TS).data_type(),
            DataType::Timestamp(TimeUnit::Millisecond, _)
        ) || schema.field(LOCAL_DAY).data_type() != &DataType::Date32
        {
            return Err(DataFusionError::Internal(format!(
                "a walk reads ts in milliseconds and local_day as a date, not {schema}"
            )));
        }
        Ok(Self {
            split,
            own: columns.iter().map(|_| Dictionary::default()).collect(),
            columns,
            rows: Vec::with_capacity(rows),
            badges: Dictionary::default(),
            ids: Ids::default(),
        })
    }

    /// Adds the rows of `batch` that the share holds.
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        for i in [BADGE, LOCAL_DAY, TS, EVENT_ID] {
            if batch.column(i).null_count() > 0 {
                return Err(DataFusionError::Internal(format!(
                    "a walk's input has nulls in {}",
                    batch.schema().field(i).name()
                )));
            }
        }
        let badges = text(batch, BADGE)?;
        let ids = text(batch, EVENT_ID)?;
        let days = batch.column(LOCAL_DAY).as_primitive::<Date32Type>();
        let ts = batch.column(TS).as_primitive::<TimestampMillisecondType>();
        let own = (0..self.own.len())
            .map(|c| text(batch, READ_OWN + c))
            .collect::<Result<Vec<StringArray>>>()?;
        // Past the rows expected, grow by an eighth, not by doubling.
        let (len, capacity) = (self.rows.len(), self.rows.capacity());
        if len + batch.num_rows() > capacity {
            let wanted = (len + batch.num_rows()).max(capacity + capacity / 8);
            self.rows.reserve_exact(wanted - len);
        }
        for i in 0..batch.num_rows() {
            let badge = badges.value(i);
            if !self.split.holds(badge) {
                continue;
            }
            let (id_at, id_block, id_len) = self.ids.push(ids.value(i).as_bytes())?;
            let mut codes = [NULL; MAX_OWN];
            for (c, values) in own.iter().enumerate() {
                if values.is_valid(i) {
                    codes[c] = self.own[c].code(values.value(i), &self.columns[c])?;
                }
            }
            self.rows.push(Row {
                ts: since_day(ts.value(i), days.value(i))?,
                badge: self.badges.number(badge)?,
                day: days.value(i),
                id_at,
                id_block,
                id_len,
                own: codes,
            });
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The memory it holds.
    pub(super) fn bytes(&self) -> usize {
        self.rows.capacity() * size_of::<Row>()
            + self.ids.bytes()
            + self.badges.bytes()
            + self.own.iter().map(Dictionary::bytes).sum::<usize>()
    }

    /// Orders the rows by (badge, local_day, ts, event_id).
    pub(super) fn sort(&mut self) {
        let ids = &self.ids;
        self.rows.sort_unstable_by(|a, b| {
            (a.badge, a.day, a.ts)
                .cmp(&(b.badge, b.day, b.ts))
                .then_with(|| ids.get(a).cmp(ids.get(b)))
        });
    }

    /// What the walk is given: the input's columns without `event_id`.
    pub(super) fn walked_schema(input: &SchemaRef) -> SchemaRef {
        let mut fields = input.fields().to_vec();
        fields.remove(EVENT_ID);
        Arc::new(Schema::new(fields))
    }

    /// The rows in order, as batches of `schema` ([`Self::walked_schema`])
    /// of at most `size` rows.
    #[cfg(test)]
    pub(super) fn batches<'a>(
        &'a self,
        schema: &'a SchemaRef,
        size: usize,
    ) -> impl Iterator<Item = Result<RecordBatch>> + 'a {
        self.rows
            .chunks(size.max(1))
            .map(move |rows| self.batch(schema, rows))
    }

    /// The at most `size` rows in order from row `from`, as one batch of
    /// `schema` ([`Self::walked_schema`]); `None` past the last row.
    pub(super) fn batch_at(
        &self,
        schema: &SchemaRef,
        from: usize,
        size: usize,
    ) -> Option<Result<RecordBatch>> {
        let rows = self.rows.get(from..)?;
        (!rows.is_empty()).then(|| self.batch(schema, &rows[..rows.len().min(size.max(1))]))
    }

    fn batch(&self, schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
        let tz = match schema.field(TS).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        // badge, local_day, ts, then the walk's own columns.
        let mut columns: Vec<ArrayRef> = vec![
            strings(rows.iter().map(|r| Some(self.badges.name(r.badge)))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.day))),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter()
                        .map(|r| i64::from(r.day) * DAY_MS + i64::from(r.ts)),
                )
                .with_timezone_opt(tz),
            ),
        ];
        for (c, values) in self.own.iter().enumerate() {
            columns.push(strings(rows.iter().map(|r| {
                let code = r.own[c];
                (code != NULL).then(|| values.name(u32::from(code)))
            })));
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

const DAY_MS: i64 = 86_400_000;

/// `ts` (ms) as milliseconds from the start of day `day` (days since the
/// epoch); within 24 days of it.
fn since_day(ts: i64, day: i32) -> Result<i32> {
    i32::try_from(ts - i64::from(day) * DAY_MS).map_err(|_| {
        DataFusionError::Execution(format!(
            "a walk reads scans within 24 days of their local day, not {ts} ms on day {day}"
        ))
    })
}

fn strings<'a>(values: impl ExactSizeIterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 8);
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::sequence::OWN;
    use arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("badge", DataType::Utf8, false),
            Field::new("local_day", DataType::Date32, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("event_id", DataType::Utf8, false),
            Field::new("stand_id", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(&str, i32, i64, &str, Option<&str>)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn sorts_by_badge_day_time_and_event_id_and_gives_the_rows_back() -> Result<()> {
        let mut share = Share::new(&schema(), Split::WHOLE, 0)?;
        share.push(&batch(&[
            ("b", 2, 50, "e9", Some("s1")),
            ("a", 1, 70, "e2", None),
            ("b", 1, 50, "e5", Some("s2")),
        ]))?;
        share.push(&batch(&[
            ("a", 1, 70, "e10", Some("s1")),
            ("b", 1, 40, "e1", None),
            ("a", 1, 60, "e3", Some("s2")),
        ]))?;
        share.sort();
        let walked = Share::walked_schema(&schema());
        let out = share.batches(&walked, 4).collect::<Result<Vec<_>>>()?;
        assert_eq!(
            out.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(),
            [4, 2]
        );
        let got: Vec<(String, i32, i64, Option<String>)> = out
            .iter()
            .flat_map(|b| {
                let (badge, stand) = (text(b, BADGE).unwrap(), text(b, OWN).unwrap());
                let day = b.column(LOCAL_DAY).as_primitive::<Date32Type>().clone();
                let ts = b
                    .column(TS)
                    .as_primitive::<TimestampMillisecondType>()
                    .clone();
                (0..b.num_rows())
                    .map(|i| {
                        (
                            badge.value(i).to_owned(),
                            day.value(i),
                            ts.value(i),
                            stand.is_valid(i).then(|| stand.value(i).to_owned()),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let row = |b: &str, d, t, s: Option<&str>| (b.to_owned(), d, t, s.map(str::to_owned));
        // Badges in order of first sight; at equal times, event id "e10"
        // (stand s1) before "e2" (no stand): ordered as text.
        assert_eq!(
            got,
            [
                row("b", 1, 40, None),
                row("b", 1, 50, Some("s2")),
                row("b", 2, 50, Some("s1")),
                row("a", 1, 60, Some("s2")),
                row("a", 1, 70, Some("s1")),
                row("a", 1, 70, None),
            ]
        );
        let names: Vec<_> = out[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["badge", "local_day", "ts", "stand_id"]);
        Ok(())
    }

    #[test]
    fn the_parts_of_a_split_day_hold_each_badge_once() -> Result<()> {
        let rows: Vec<(String, String)> = (0..300)
            .map(|i| (format!("badge-{}", i % 97), format!("e{i}")))
            .collect();
        let input: Vec<_> = rows
            .iter()
            .map(|(b, e)| (b.as_str(), 1, 0, e.as_str(), None))
            .collect();
        let (mut seen, mut held) = (std::collections::HashMap::new(), 0);
        for part in 0..3 {
            let mut share = Share::new(&schema(), Split { parts: 3, part }, 100)?;
            share.push(&batch(&input))?;
            assert!(share.len() < input.len(), "part {part} holds every row");
            held += share.len();
            for b in share.batches(&Share::walked_schema(&schema()), 1000) {
                let b = b?;
                let badges = text(&b, BADGE)?;
                for i in 0..b.num_rows() {
                    let at = *seen.entry(badges.value(i).to_owned()).or_insert(part);
                    assert_eq!(at, part, "{} in two parts", badges.value(i));
                }
            }
        }
        assert_eq!((seen.len(), held), (97, input.len()));
        Ok(())
    }

    #[test]
    fn strings_whose_hashes_collide_keep_their_own_numbers() -> Result<()> {
        let mut d = Dictionary::default();
        assert_eq!(d.number("x")?, 0);
        // As if "y" hashed as "x" does.
        d.by_hash.insert(xxh3_64(b"y"), 0);
        assert_eq!((d.number("y")?, d.number("y")?, d.number("x")?), (1, 1, 0));
        assert_eq!((d.name(0), d.name(1)), ("x", "y"));
        Ok(())
    }

    #[test]
    fn a_null_badge_is_an_error_not_a_panic() {
        let mut share = Share::new(&schema(), Split::WHOLE, 0).unwrap();
        let mut bad = batch(&[("a", 1, 0, "e", None)]).columns().to_vec();
        bad[BADGE] = Arc::new(StringArray::from(vec![None::<&str>]));
        let nullable = Arc::new(Schema::new(
            schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let err = share
            .push(&RecordBatch::try_new(nullable, bad).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("nulls in badge"), "{err}");
    }
}
