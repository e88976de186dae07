//! `stand_visits` as a walk (`super::sequence`): the view's rules
//! (docs/sql.md) applied in one pass over each badge's sorted day, keeping
//! only the open visit. As SQL (`views/stand_visits.sql`, the specification
//! the test holds it to) the view needed two window operators and a GROUP
//! BY with ordered aggregates: four times the sort on the reference week.

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, Date32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use super::by_day::text;
use super::sequence::{BADGE, LOCAL_DAY, OWN, TS, Walk, Walker, sequence_table};

/// The columns of `scans` the walk reads besides the sequence's.
const COLUMNS: [&str; 4] = ["zone_kind", "stand_id", "pole_id", "direction"];
const ZONE_KIND: usize = OWN;
const STAND_ID: usize = OWN + 1;
const POLE_ID: usize = OWN + 2;
const DIRECTION: usize = OWN + 3;

/// The view's columns, as the SQL definition typed them.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("badge", DataType::Utf8, false),
        Field::new("stand_id", DataType::Utf8, true),
        Field::new("pole_id", DataType::Utf8, true),
        Field::new("local_day", DataType::Date32, false),
        Field::new("entered_at", utc.clone(), true),
        Field::new("left_at", utc, true),
        Field::new("dwell_s", DataType::Int64, true),
        Field::new("closed_by", DataType::Utf8, false),
    ]))
});

/// Registers `stand_visits` over the context's `scans` and `opening_hours`
/// (read once: the venue's hours do not change while the server runs).
pub async fn register(ctx: &SessionContext, dwell_cap_s: u64) -> Result<()> {
    let scans = ctx.table_provider("scans").await?;
    let hours = ctx
        .table("opening_hours")
        .await?
        .select_columns(&["local_day", "closes_at"])?
        .collect()
        .await?;
    let mut closes_at = HashMap::new();
    for batch in hours {
        let days = batch.column(0).as_primitive::<Date32Type>();
        let closes = batch.column(1).as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            if days.is_valid(i) && closes.is_valid(i) {
                closes_at.insert(days.value(i), closes.value(i));
            }
        }
    }
    let walker = StandVisits {
        rules: Arc::new(Rules {
            closes_at,
            cap_ms: i64::try_from(dwell_cap_s)
                .unwrap_or(i64::MAX)
                .saturating_mul(1000),
            cap_s: i64::try_from(dwell_cap_s).unwrap_or(i64::MAX),
        }),
    };
    let table = sequence_table(scans, Arc::new(walker));
    ctx.register_table("stand_visits", Arc::new(table))?;
    Ok(())
}

/// What closes a visit besides the scans: the day's closing time and the cap.
#[derive(Debug)]
struct Rules {
    /// `opening_hours.closes_at` (ms) by `local_day`.
    closes_at: HashMap<i32, i64>,
    cap_ms: i64,
    cap_s: i64,
}

#[derive(Debug)]
struct StandVisits {
    rules: Arc<Rules>,
}

impl Walker for StandVisits {
    fn describe(&self) -> String {
        format!("StandVisitsExec: cap_s={}", self.rules.cap_s)
    }

    fn columns(&self) -> &'static [&'static str] {
        &COLUMNS
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn walk(&self) -> Box<dyn Walk> {
        Box::new(VisitWalk::new(self.rules.clone()))
    }
}

/// The visit a badge is in: opened by an `in` at `stand`, continued by the
/// `in`s there right after it.
struct Open {
    stand: String,
    pole: Option<String>,
    entered_at: i64,
}

#[derive(Clone, Copy)]
enum Closed {
    Out,
    NextScan,
    Closing,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::NextScan => "next_scan",
            Self::Closing => "closing",
        }
    }
}

/// The state of one partition's walk and the visits found but not emitted.
struct VisitWalk {
    rules: Arc<Rules>,
    /// The (badge, local_day) of the sequence being walked.
    sequence: Option<(String, i32)>,
    open: Option<Open>,
    badge: StringBuilder,
    stand_id: StringBuilder,
    pole_id: StringBuilder,
    local_day: Date32Builder,
    entered_at: TimestampMillisecondBuilder,
    left_at: TimestampMillisecondBuilder,
    dwell_s: Int64Builder,
    closed_by: StringBuilder,
}

impl VisitWalk {
    fn new(rules: Arc<Rules>) -> Self {
        Self {
            rules,
            sequence: None,
            open: None,
            badge: StringBuilder::new(),
            stand_id: StringBuilder::new(),
            pole_id: StringBuilder::new(),
            local_day: Date32Builder::new(),
            entered_at: TimestampMillisecondBuilder::new(),
            left_at: TimestampMillisecondBuilder::new(),
            dwell_s: Int64Builder::new(),
            closed_by: StringBuilder::new(),
        }
    }

    /// Closes the open visit, if any: at the next scan `(ts, rule)`, or
    /// (`None`) at the end of the sequence, by the day's closing time.
    fn close_open(&mut self, next: Option<(i64, Closed)>) {
        let (Some(open), Some((badge, day))) = (self.open.take(), &self.sequence) else {
            return;
        };
        let day = *day;
        let (until, rule) = next.unwrap_or_else(|| {
            let until = match self.rules.closes_at.get(&day) {
                Some(&closes) if closes >= open.entered_at => closes,
                _ => open.entered_at,
            };
            (until, Closed::Closing)
        });
        let span_ms = until - open.entered_at;
        let (left_at, dwell_s, closed_by) = if span_ms > self.rules.cap_ms {
            (open.entered_at + self.rules.cap_ms, self.rules.cap_s, "cap")
        } else {
            (until, span_ms / 1000, rule.as_str())
        };
        self.badge.append_value(badge);
        self.stand_id.append_value(&open.stand);
        self.pole_id.append_option(open.pole.as_deref());
        self.local_day.append_value(day);
        self.entered_at.append_value(open.entered_at);
        self.left_at.append_value(left_at);
        self.dwell_s.append_value(dwell_s);
        self.closed_by.append_value(closed_by);
    }
}

impl Walk for VisitWalk {
    /// Walks the next rows of the sorted input.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let badges = text(batch, BADGE)?;
        let kinds = text(batch, ZONE_KIND)?;
        let stands = text(batch, STAND_ID)?;
        let poles = text(batch, POLE_ID)?;
        let directions = text(batch, DIRECTION)?;
        let days = batch.column(LOCAL_DAY).as_primitive::<Date32Type>();
        let ts = batch.column(TS).as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            let (badge, day) = (badges.value(i), days.value(i));
            let same = matches!(&self.sequence, Some((b, d)) if b == badge && *d == day);
            if !same {
                self.close_open(None);
                self.sequence = Some((badge.to_owned(), day));
            }
            let ts = ts.value(i);
            let stand = stands.is_valid(i).then(|| stands.value(i));
            let at_stand = kinds.value(i) == "stand";
            let direction = directions.value(i);
            let in_stand = if at_stand && direction == "in" {
                stand
            } else {
                None
            };
            if let Some(open) = &self.open {
                if in_stand == Some(open.stand.as_str()) {
                    continue;
                }
                let rule = if at_stand && stand == Some(open.stand.as_str()) && direction == "out" {
                    Closed::Out
                } else {
                    Closed::NextScan
                };
                self.close_open(Some((ts, rule)));
            }
            if let Some(stand) = in_stand {
                self.open = Some(Open {
                    stand: stand.to_owned(),
                    pole: poles.is_valid(i).then(|| poles.value(i).to_owned()),
                    entered_at: ts,
                });
            }
        }
        Ok(())
    }

    fn end(&mut self) {
        self.close_open(None);
    }

    fn len(&self) -> usize {
        self.badge.len()
    }

    /// The visits found since the last call, as a batch of the view's schema.
    fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.badge.finish()),
            Arc::new(self.stand_id.finish()),
            Arc::new(self.pole_id.finish()),
            Arc::new(self.local_day.finish()),
            Arc::new(self.entered_at.finish().with_timezone("UTC")),
            Arc::new(self.left_at.finish().with_timezone("UTC")),
            Arc::new(self.dwell_s.finish()),
            Arc::new(self.closed_by.finish()),
        ];
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::catalog::event_table::EventTable;
    use crate::snapshot::{SharedSnapshot, Snapshot, TableSnapshot};
    use crate::table_kind::TableKind;
    use arrow::array::{
        Date32Array, Int64Array, StringArray, TimestampMillisecondArray, TimestampSecondArray,
    };
    use arrow::compute::cast;
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;

    /// The view's rules as SQL: the specification the operator must match.
    const SPEC: &str = include_str!("views/stand_visits.sql");

    /// 2026-02-16, as days since the epoch.
    const DAY: i32 = 20_500;
    const DAY_MS: i64 = 86_400_000;

    /// xorshift64: reproducible scans without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn utc() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    }

    /// `rows` scans of 12 badges over three days, in random order (late
    /// events) and in small batches: ties in `ts`, `out`s without a visit,
    /// stand scans without a stand, scans after closing (day 1 closes 30 min
    /// into the scans, day 2 has no opening hours).
    pub(in crate::catalog) fn scans(seed: u64, rows: usize) -> Result<MemTable> {
        let (schema, partitions) = scan_partitions(seed, rows, 12)?;
        MemTable::try_new(schema, partitions)
    }

    /// The batches of [`scans`] of that many badges, in three partitions.
    pub(in crate::catalog) fn scan_partitions(
        seed: u64,
        rows: usize,
        badge_count: u64,
    ) -> Result<(SchemaRef, Vec<Vec<RecordBatch>>)> {
        let mut rng = Rng(seed);
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("ts", utc(), false),
            Field::new("local_day", DataType::Date32, false),
            Field::new("badge", DataType::Utf8, false),
            Field::new("zone_kind", DataType::Utf8, false),
            Field::new("pole_id", DataType::Utf8, true),
            Field::new("stand_id", DataType::Utf8, true),
            Field::new("direction", DataType::Utf8, false),
            Field::new(
                "local_hour",
                DataType::Timestamp(TimeUnit::Second, None),
                false,
            ),
            Field::new("zone_id", DataType::Utf8, false),
        ]));
        let mut partitions = vec![Vec::new(), Vec::new(), Vec::new()];
        let mut first = 0;
        while first < rows {
            let n = (1 + rng.below(40) as usize).min(rows - first);
            let (mut ids, mut ts, mut days, mut badges) = (vec![], vec![], vec![], vec![]);
            let (mut kinds, mut poles, mut stands, mut dirs) = (vec![], vec![], vec![], vec![]);
            let (mut hours, mut zones) = (vec![], vec![]);
            for i in first..first + n {
                let day = DAY + rng.below(3) as i32;
                ids.push(format!("e{:05}-{i}", rng.below(100_000)));
                let second = if rng.below(3) == 0 {
                    0
                } else {
                    rng.below(60_000)
                };
                ts.push(i64::from(day) * DAY_MS + rng.below(240) as i64 * 60_000 + second as i64);
                days.push(day);
                badges.push(format!("b{}", rng.below(badge_count)));
                let (kind, stand) = match rng.below(10) {
                    0..=6 if rng.below(20) == 0 => ("stand", None),
                    0..=6 => ("stand", Some(format!("s{}", rng.below(3)))),
                    7 => ("pole", None),
                    8 => ("gate", None),
                    _ => ("room", None),
                };
                let pole = match (&stand, kind) {
                    (Some(s), _) if rng.below(10) > 0 => Some(format!("p-{s}")),
                    (_, "pole") => Some("p-1".to_owned()),
                    _ => None,
                };
                // The hour as the venue's clock would show it (here UTC),
                // and a zone for each kind, from what is drawn already.
                hours.push(ts[ts.len() - 1].div_euclid(3_600_000) * 3600);
                zones.push(match (kind, &stand) {
                    ("stand", Some(s)) => s.clone(),
                    ("stand", None) => "s-unknown".to_owned(),
                    ("pole", _) => "p-1".to_owned(),
                    (kind, _) => format!("{kind}-{}", i % 2),
                });
                kinds.push(kind);
                poles.push(pole);
                stands.push(stand);
                dirs.push(if rng.below(10) < 7 { "in" } else { "out" });
            }
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(ids)),
                    Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
                    Arc::new(Date32Array::from(days)),
                    Arc::new(StringArray::from(badges)),
                    Arc::new(StringArray::from(kinds)),
                    Arc::new(StringArray::from(poles)),
                    Arc::new(StringArray::from(stands)),
                    Arc::new(StringArray::from(dirs)),
                    Arc::new(TimestampSecondArray::from(hours)),
                    Arc::new(StringArray::from(zones)),
                ],
            )?;
            partitions[rng.below(3) as usize].push(batch);
            first += n;
        }
        Ok((schema, partitions))
    }

    /// Opening hours for the first two days only; day 1 closes early.
    fn opening_hours() -> Result<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("local_day", DataType::Date32, false),
            Field::new("opens_at", utc(), false),
            Field::new("closes_at", utc(), false),
        ]));
        let base = [i64::from(DAY) * DAY_MS, i64::from(DAY + 1) * DAY_MS];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Date32Array::from(vec![DAY, DAY + 1])),
                Arc::new(TimestampMillisecondArray::from(base.to_vec()).with_timezone("UTC")),
                Arc::new(
                    TimestampMillisecondArray::from(vec![
                        base[0] + 3 * 3_600_000,
                        base[1] + 1_800_000,
                    ])
                    .with_timezone("UTC"),
                ),
            ],
        )?;
        MemTable::try_new(schema, vec![vec![batch]])
    }

    pub(in crate::catalog) async fn rows(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(pretty_format_batches(&batches)?.to_string())
    }

    /// `batch` with every column of `scans`: those it lacks as zeros.
    fn with_scans_columns(batch: &RecordBatch) -> Result<RecordBatch> {
        let scans = TableKind::Scans.schema();
        let zeros = Int64Array::from(vec![0; batch.num_rows()]);
        let columns = scans
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) => Ok(c.clone()),
                None => Ok(cast(&zeros, f.data_type())?),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(scans, columns)?)
    }

    /// A context whose `scans` is an event table holding `partitions` in
    /// memory, in a pool of 2 MB: a day of ~20,000 scans is walked or
    /// counted in parts.
    pub(in crate::catalog) fn in_event_table(
        partitions: &[Vec<RecordBatch>],
        config: SessionConfig,
    ) -> Result<SessionContext> {
        let scans = TableSnapshot {
            files: Vec::new(),
            batches: all_scans_columns(partitions)?,
        };
        event_table_context(scans, config)
    }

    /// The same with `partitions` in Parquet files under `dir`, written as a
    /// flush writes them.
    pub(in crate::catalog) fn in_event_files(
        dir: &std::path::Path,
        partitions: &[Vec<RecordBatch>],
        config: SessionConfig,
    ) -> Result<SessionContext> {
        let scans = TableSnapshot {
            files: crate::materialise::write_scans(dir, &all_scans_columns(partitions)?)?,
            batches: Vec::new(),
        };
        event_table_context(scans, config)
    }

    fn all_scans_columns(partitions: &[Vec<RecordBatch>]) -> Result<Vec<RecordBatch>> {
        partitions
            .iter()
            .flatten()
            .map(with_scans_columns)
            .collect()
    }

    fn event_table_context(scans: TableSnapshot, config: SessionConfig) -> Result<SessionContext> {
        let mut snapshot = Snapshot::default();
        snapshot.tables[TableKind::Scans.index()] = scans;
        let shared = Arc::new(SharedSnapshot::default());
        shared.set(snapshot);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(2 << 20, 1.0)
            .build_arc()?;
        // The answers' sorts are small: no 10 MB kept back for spilling.
        let config = config.with_sort_spill_reservation_bytes(0);
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_table("scans", Arc::new(EventTable::new(TableKind::Scans, shared)))?;
        Ok(ctx)
    }

    /// Read from the event table one day at a time, each day in parts by
    /// badge hash (the pool allows 10,922 rows a share, a day has about
    /// 20,000), the operator gives the specification's rows.
    #[tokio::test]
    async fn walked_by_day_and_in_parts_it_gives_the_rows_of_the_specification() -> Result<()> {
        let (schema, partitions) = scan_partitions(0x5eed, 60_000, 400)?;
        let config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(256);
        let spec = SessionContext::new_with_config(config.clone());
        spec.register_table(
            "scans",
            Arc::new(MemTable::try_new(schema, partitions.clone())?),
        )?;
        spec.register_table("opening_hours", Arc::new(opening_hours()?))?;
        spec.sql(&SPEC.replace("{dwell_cap_s}", "600")).await?;

        // The rows in memory, then in Parquet files (each part of a day
        // reads the day's files again).
        let dir = tempfile::tempdir()?;
        for ctx in [
            in_event_table(&partitions, config.clone())?,
            in_event_files(dir.path(), &partitions, config)?,
        ] {
            ctx.register_table("opening_hours", Arc::new(opening_hours()?))?;
            register(&ctx, 600).await?;

            let plan = rows(&ctx, "EXPLAIN SELECT count(*) FROM stand_visits").await?;
            assert!(plan.contains("inputs=3, shares=6"), "{plan}");
            // Small answers: the operator's own pool is too small for a sort
            // of every visit.
            for query in [
                "SELECT badge, local_day, count(*) AS n, sum(dwell_s) AS s, min(entered_at) AS e, max(left_at) AS l FROM {v} GROUP BY badge, local_day ORDER BY badge, local_day",
                "SELECT closed_by, stand_id, count(*) AS n, sum(dwell_s) AS s FROM {v} GROUP BY closed_by, stand_id ORDER BY closed_by, stand_id",
            ] {
                let got = rows(&ctx, &query.replace("{v}", "stand_visits")).await?;
                let want = rows(&spec, &query.replace("{v}", "stand_visits")).await?;
                assert_eq!(got, want, "{query}");
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_operator_gives_the_rows_of_the_sql_specification() -> Result<()> {
        for (seed, n, cap_s) in [(1, 1500, 600), (2, 3000, 7200), (3, 200, 60), (4, 0, 600)] {
            // Tiny batches and three partitions: sequences and visits cross
            // batch boundaries.
            let config = SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(16);
            let ctx = SessionContext::new_with_config(config);
            ctx.register_table("scans", Arc::new(scans(0x9e37_79b9_7f4a_7c15 ^ seed, n)?))?;
            ctx.register_table("opening_hours", Arc::new(opening_hours()?))?;
            register(&ctx, cap_s).await?;
            let spec = SPEC
                .replace(
                    "CREATE VIEW stand_visits AS",
                    "CREATE VIEW stand_visits_sql AS",
                )
                .replace("{dwell_cap_s}", &cap_s.to_string());
            ctx.sql(&spec).await?;

            let operator = ctx.table("stand_visits").await?.schema().as_arrow().clone();
            let sql = ctx
                .table("stand_visits_sql")
                .await?
                .schema()
                .as_arrow()
                .clone();
            assert_eq!(operator.fields(), sql.fields(), "schema");

            for query in [
                "SELECT * FROM {v} ORDER BY badge, local_day, entered_at, stand_id, pole_id, left_at, dwell_s, closed_by",
                "SELECT closed_by, count(*) AS n, sum(dwell_s) AS s FROM {v} GROUP BY closed_by ORDER BY closed_by",
                "SELECT dwell_s, badge FROM {v} WHERE stand_id = 's1' ORDER BY badge, dwell_s",
                "SELECT count(*) AS n FROM {v}",
            ] {
                let got = rows(&ctx, &query.replace("{v}", "stand_visits")).await?;
                let want = rows(&ctx, &query.replace("{v}", "stand_visits_sql")).await?;
                assert_eq!(got, want, "seed {seed}, cap {cap_s}: {query}");
            }
            if seed == 1 {
                let rules = rows(
                    &ctx,
                    "SELECT DISTINCT closed_by FROM stand_visits ORDER BY 1",
                )
                .await?;
                for rule in ["cap", "closing", "next_scan", "out"] {
                    assert!(rules.contains(rule), "seed {seed} has no {rule}: {rules}");
                }
            }
        }
        Ok(())
    }
}
