//! `footfall_hourly` counted by day (`super::by_day`).
//!
//! As SQL (`views/footfall_hourly.sql`, the specification the tests hold it
//! to) each level was a `count(DISTINCT badge)` grouping of DataFusion's:
//! at 50 million scans the pole level alone kept a set of badge strings per
//! group on each core and shipped 220 MB of them to a final aggregate that
//! asked the pool for 264 MB at once. Here a day (or a part of one by badge
//! hash) is read on its own and its badges numbered in the day; each group
//! (level, local hour, zone) counts its `in` scans and keeps the numbers of
//! its badges, in a small hash set while they are few and as a bit per
//! badge of the day past that. Parts of a day hold disjoint badges, so the
//! view sums the rows of a group over them.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit, TimestampSecondType,
};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::prelude::{SessionContext, col, lit};
use std::sync::{Arc, LazyLock};

use super::by_day::{DayPlan, DayRelation, DayTable, DayWork, Step, text};
use super::share::Split;
use groups::ShareCounts;

mod groups;

/// The levels of `footfall_hourly`: a level's place indexes the plan's
/// levels and a local hour's groups.
const LEVELS: [&str; 4] = ["venue", "pole", "stand", "room"];
const VENUE: usize = 0;
const POLE: usize = 1;
const STAND: usize = 2;
const ROOM: usize = 3;

/// What a read row is reckoned to hold, to decide how many parts a day
/// needs: its badge's share of the day's numbering, and its place in the
/// sets of the two groups a stand scan counts in (with the sets' slack).
const ROW_ESTIMATE: u64 = 48;

/// The relation's columns: `footfall_hourly`'s, a row per share of a day.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("local_day", DataType::Date32, false),
        Field::new(
            "local_hour",
            DataType::Timestamp(TimeUnit::Second, None),
            false,
        ),
        Field::new("level", DataType::Utf8, false),
        Field::new("zone_id", DataType::Utf8, true),
        Field::new("entries", DataType::Int64, false),
        Field::new("visitors", DataType::Int64, false),
    ]))
});

/// Registers `footfall_hourly` over the context's `scans` and `venue`
/// (read once: the venue does not change while the server runs).
pub async fn register(ctx: &SessionContext) -> Result<()> {
    let scans = ctx.table_provider("scans").await?;
    let venue = ctx
        .table("venue")
        .await?
        .select_columns(&["venue_id"])?
        .collect()
        .await?;
    let venue_id = match venue.iter().find(|batch| batch.num_rows() > 0) {
        Some(batch) => Some(text(batch, 0)?).filter(|ids| ids.is_valid(0)),
        None => None,
    }
    .map(|ids| ids.value(0).to_owned());
    let counts = DayTable::new(scans, Arc::new(Hourly { venue_id }));
    // A group's rows from the parts of a split day, summed.
    let view = ctx
        .read_table(Arc::new(counts))?
        .aggregate(
            vec![
                col("local_day"),
                col("local_hour"),
                col("level"),
                col("zone_id"),
            ],
            vec![
                sum(col("entries")).alias("entries"),
                sum(col("visitors")).alias("visitors"),
            ],
        )?
        .into_view();
    ctx.register_table("footfall_hourly", view)?;
    Ok(())
}

#[derive(Debug)]
struct Hourly {
    /// The venue level's `zone_id`.
    venue_id: Option<String>,
}

/// The levels `filter` keeps, if it says (`level = 'x'`, `level IN (...)`,
/// or either of two such: DataFusion writes a short `IN` list as `OR`s).
fn levels_kept(filter: &Expr) -> Option<[bool; 4]> {
    let is_level = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "level");
    let text = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
            Some(s.clone())
        }
        _ => None,
    };
    let names: Vec<String> = match filter {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (left, right) = (levels_kept(left)?, levels_kept(right)?);
            return Some(std::array::from_fn(|i| left[i] || right[i]));
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (is_level(left), is_level(right)) {
            (true, false) => vec![text(right)?],
            (false, true) => vec![text(left)?],
            _ => return None,
        },
        Expr::InList(list) if !list.negated && is_level(&list.expr) => {
            list.list.iter().map(text).collect::<Option<_>>()?
        }
        _ => return None,
    };
    Some(LEVELS.map(|level| names.iter().any(|n| n == level)))
}

impl DayRelation for Hourly {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn filter_pushdown(&self, filter: &Expr) -> TableProviderFilterPushDown {
        match levels_kept(filter) {
            Some(_) => TableProviderFilterPushDown::Inexact,
            None => TableProviderFilterPushDown::Unsupported,
        }
    }

    fn plan(&self, filters: &[Expr]) -> Result<Arc<dyn DayPlan>> {
        let mut levels = [true; 4];
        for kept in filters.iter().filter_map(levels_kept) {
            for (level, kept) in levels.iter_mut().zip(kept) {
                *level &= kept;
            }
        }
        Ok(Arc::new(HourlyPlan {
            levels,
            venue_id: self.venue_id.clone(),
        }))
    }
}

/// The levels a scan counts.
#[derive(Debug)]
struct HourlyPlan {
    levels: [bool; 4],
    venue_id: Option<String>,
}

impl HourlyPlan {
    /// Whether `zone_kind` and `zone_id` are needed.
    fn by_zone(&self) -> bool {
        self.levels[VENUE] || self.levels[STAND] || self.levels[ROOM]
    }
}

impl DayPlan for HourlyPlan {
    fn describe(&self) -> String {
        let levels: Vec<_> = LEVELS
            .iter()
            .zip(self.levels)
            .filter_map(|(name, counted)| counted.then_some(*name))
            .collect();
        format!("FootfallHourlyExec: levels=[{}]", levels.join(", "))
    }

    fn columns(&self) -> Vec<&'static str> {
        let mut columns = vec!["local_day", "local_hour", "badge", "direction"];
        if self.by_zone() {
            columns.extend(["zone_kind", "zone_id"]);
        }
        if self.levels[POLE] {
            columns.push("pole_id");
        }
        columns
    }

    fn row_bytes(&self) -> u64 {
        ROW_ESTIMATE
    }

    /// Entries at the levels counted: the files keep each direction and
    /// kind of zone in row groups of their own, so the exits, and the gates
    /// when the venue is not counted, are not read. A pole counts the
    /// entries that name it, whatever their kind of zone.
    fn rows_used(&self) -> Option<Expr> {
        let kinds = [(VENUE, "gate"), (STAND, "stand"), (ROOM, "room")];
        let by_kind = kinds
            .into_iter()
            .filter(|(level, _)| self.levels[*level])
            .map(|(_, kind)| col("zone_kind").eq(lit(kind)));
        let by_pole = self.levels[POLE].then(|| col("pole_id").is_not_null());
        let counted = by_kind
            .chain(by_pole)
            .reduce(Expr::or)
            .unwrap_or(lit(false));
        Some(col("direction").eq(lit("in")).and(counted))
    }

    fn work(
        &self,
        input: &SchemaRef,
        _batch_size: usize,
        _metrics: &ExecutionPlanMetricsSet,
        _partition: usize,
    ) -> Result<Box<dyn DayWork>> {
        let at = |name: &str| input.index_of(name).ok();
        let need = |name: &str| {
            at(name).ok_or_else(|| {
                DataFusionError::Internal(format!("footfall_hourly reads {name}, not in {input}"))
            })
        };
        Ok(Box::new(Counts {
            levels: self.levels,
            venue_id: self.venue_id.clone(),
            local_day: need("local_day")?,
            local_hour: need("local_hour")?,
            badge: need("badge")?,
            direction: need("direction")?,
            zone_kind: at("zone_kind"),
            zone_id: at("zone_id"),
            pole_id: at("pole_id"),
            share: None,
        }))
    }
}

/// One partition's counting: the share being counted, with where its
/// columns are.
struct Counts {
    levels: [bool; 4],
    venue_id: Option<String>,
    local_day: usize,
    local_hour: usize,
    badge: usize,
    direction: usize,
    zone_kind: Option<usize>,
    zone_id: Option<usize>,
    pole_id: Option<usize>,
    share: Option<ShareCounts>,
}

impl DayWork for Counts {
    fn begin(&mut self, split: Split, _rows: usize) -> Result<()> {
        self.share = Some(ShareCounts::new(split));
        Ok(())
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let share = self.share.as_mut().ok_or_else(|| {
            DataFusionError::Internal("footfall_hourly is given rows outside a share".into())
        })?;
        for i in [self.local_day, self.local_hour, self.badge, self.direction] {
            if batch.column(i).null_count() > 0 {
                return Err(DataFusionError::Internal(format!(
                    "footfall_hourly's input has nulls in {}",
                    batch.schema().field(i).name()
                )));
            }
        }
        let days = batch.column(self.local_day).as_primitive::<Date32Type>();
        let hours = batch
            .column(self.local_hour)
            .as_primitive_opt::<TimestampSecondType>()
            .ok_or_else(|| {
                DataFusionError::Internal("footfall_hourly reads local_hour in seconds".into())
            })?;
        let badges = text(batch, self.badge)?;
        let directions = text(batch, self.direction)?;
        let optional = |i: Option<usize>| i.map(|i| text(batch, i)).transpose();
        let (kinds, zone_ids, poles) = (
            optional(self.zone_kind)?,
            optional(self.zone_id)?,
            optional(self.pole_id)?,
        );
        let by_zone = |level: usize| match (&kinds, &zone_ids) {
            (Some(kinds), Some(zones)) if self.levels[level] => Some((kinds, zones)),
            _ => None,
        };
        let (venue, stand, room) = (by_zone(VENUE), by_zone(STAND), by_zone(ROOM));
        let poles = poles.as_ref().filter(|_| self.levels[POLE]);
        for i in 0..batch.num_rows() {
            if directions.value(i) != "in" {
                continue;
            }
            let badge = badges.value(i);
            if !share.split.holds(badge) {
                continue;
            }
            let kind = kinds.as_ref().filter(|k| k.is_valid(i)).map(|k| k.value(i));
            let counted_by_kind = match kind {
                Some("gate") => venue.map(|_| (VENUE, None)),
                Some("stand") => stand.map(|(_, zones)| (STAND, Some(zones))),
                Some("room") => room.map(|(_, zones)| (ROOM, Some(zones))),
                _ => None,
            };
            let pole = poles.filter(|p| p.is_valid(i)).map(|p| p.value(i));
            if counted_by_kind.is_none() && pole.is_none() {
                continue;
            }
            let slot = share.slot(days.value(i), hours.value(i))?;
            let number = share.badges.number(badge)?;
            if let Some((level, zones)) = counted_by_kind {
                let zone = match zones {
                    Some(zones) if zones.is_valid(i) => {
                        share.zones.code(zones.value(i), "zone_id")?
                    }
                    // `zone_id` is never null in `scans`; the venue's zone is its id.
                    _ => 0,
                };
                share.count(level, slot, zone, number);
            }
            if let Some(pole) = pole {
                let zone = share.pole(pole)?;
                share.count(POLE, slot, zone, number);
            }
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        self.share.as_ref().map_or(0, ShareCounts::bytes)
    }

    fn step(&mut self) -> Result<Step> {
        let Some(share) = self.share.take() else {
            return Ok(Step::Done);
        };
        let rows = share.rows(self.venue_id.as_deref())?;
        Ok(match rows.num_rows() {
            0 => Step::Done,
            _ => Step::Emit(rows),
        })
    }

    fn end(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::stand_visits::tests::{
        in_event_files, in_event_table, rows, scan_partitions, scans,
    };
    use arrow::array::StringArray;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionConfig;

    /// The view as SQL: the specification the operator must match.
    const SPEC: &str = include_str!("views/footfall_hourly.sql");

    /// The questions both must answer alike: every row, each level on its
    /// own (the operator then counts only that level), and a day.
    const QUESTIONS: [&str; 5] = [
        "SELECT * FROM {v} ORDER BY local_day, local_hour, level, zone_id",
        "SELECT local_hour, zone_id, entries, visitors FROM {v} WHERE level = 'pole' ORDER BY 1, 2",
        "SELECT * FROM {v} WHERE level IN ('stand', 'room') ORDER BY local_day, local_hour, level, zone_id",
        "SELECT local_hour, entries, visitors FROM {v} WHERE level = 'venue' AND local_day = DATE '2026-02-17' ORDER BY 1",
        "SELECT level, sum(entries) AS e, sum(visitors) AS v, count(*) AS n FROM {v} GROUP BY level ORDER BY level",
    ];

    fn venue() -> Result<MemTable> {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "venue_id",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["fair"]))],
        )?;
        MemTable::try_new(schema, vec![vec![batch]])
    }

    /// Registers the specification as `footfall_hourly_sql`.
    async fn specification(ctx: &SessionContext) -> Result<()> {
        ctx.sql(&SPEC.replace(
            "CREATE VIEW footfall_hourly AS",
            "CREATE VIEW footfall_hourly_sql AS",
        ))
        .await?;
        Ok(())
    }

    /// `ctx` with `venue` and the operator's `footfall_hourly`.
    async fn with_view(ctx: SessionContext) -> Result<SessionContext> {
        ctx.register_table("venue", Arc::new(venue()?))?;
        register(&ctx).await?;
        Ok(ctx)
    }

    /// Three days of scans of 2,000 badges (`seed`), the configuration the
    /// by-day tests read them with, and a context where
    /// `footfall_hourly_sql` is the specification over them in memory.
    async fn three_days(
        seed: u64,
    ) -> Result<(Vec<Vec<RecordBatch>>, SessionConfig, SessionContext)> {
        let (schema, partitions) = scan_partitions(seed, 60_000, 2000)?;
        let config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(256);
        let spec = SessionContext::new_with_config(config.clone());
        spec.register_table(
            "scans",
            Arc::new(MemTable::try_new(schema, partitions.clone())?),
        )?;
        spec.register_table("venue", Arc::new(venue()?))?;
        specification(&spec).await?;
        Ok((partitions, config, spec))
    }

    async fn fields(ctx: &SessionContext, view: &str) -> Result<Vec<(String, DataType)>> {
        let schema = ctx.table(view).await?.schema().as_arrow().clone();
        Ok(schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect())
    }

    async fn same_answers(ctx: &SessionContext, spec: &SessionContext, case: &str) -> Result<()> {
        for query in QUESTIONS {
            let got = rows(ctx, &query.replace("{v}", "footfall_hourly")).await?;
            let want = rows(spec, &query.replace("{v}", "footfall_hourly_sql")).await?;
            assert_eq!(got, want, "{case}: {query}");
        }
        Ok(())
    }

    /// Over a table read as one share: 12 badges (sets), then 3,000 (a
    /// pole's hour past 512 badges turns to bits); in tiny batches over
    /// three partitions.
    #[tokio::test]
    async fn the_operator_gives_the_rows_of_the_sql_specification() -> Result<()> {
        for (seed, n, badges) in [(1, 1500, 12), (2, 3000, 12), (3, 0, 12), (4, 40_000, 3000)] {
            let config = SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(16);
            let ctx = SessionContext::new_with_config(config);
            let (schema, partitions) = scan_partitions(0xb0b5_1e55 ^ seed, n, badges)?;
            ctx.register_table("scans", Arc::new(MemTable::try_new(schema, partitions)?))?;
            let ctx = with_view(ctx).await?;
            specification(&ctx).await?;

            // Names and types: the operator's sums are nullable, the
            // specification's counts are not.
            assert_eq!(
                fields(&ctx, "footfall_hourly").await?,
                fields(&ctx, "footfall_hourly_sql").await?,
                "schema"
            );
            same_answers(&ctx, &ctx, &format!("seed {seed}")).await?;
            if n > 0 {
                let levels = rows(
                    &ctx,
                    "SELECT DISTINCT level FROM footfall_hourly ORDER BY 1",
                )
                .await?;
                for level in LEVELS {
                    assert!(
                        levels.contains(level),
                        "seed {seed} has no {level}: {levels}"
                    );
                }
            }
        }
        Ok(())
    }

    /// The plan counts only the levels a filter keeps.
    #[tokio::test]
    async fn a_filter_on_level_counts_only_that_level() -> Result<()> {
        let ctx = SessionContext::new();
        ctx.register_table("scans", Arc::new(scans(5, 100)?))?;
        let ctx = with_view(ctx).await?;
        for (filter, shown) in [
            ("level = 'pole'", "levels=[pole]"),
            ("level IN ('room', 'venue')", "levels=[venue, room]"),
            ("'stand' = level AND entries > 1", "levels=[stand]"),
            ("entries > 1", "levels=[venue, pole, stand, room]"),
        ] {
            let plan = rows(
                &ctx,
                &format!("EXPLAIN SELECT * FROM footfall_hourly WHERE {filter}"),
            )
            .await?;
            assert!(plan.contains(shown), "{filter}: {plan}");
        }
        Ok(())
    }

    /// Read from the event table one day at a time, each day in parts by
    /// badge hash (the pool allows 14,563 rows a share, a day has about
    /// 20,000), the view gives the specification's rows: a group's rows
    /// from the parts are summed.
    #[tokio::test]
    async fn counted_by_day_and_in_parts_it_gives_the_rows_of_the_specification() -> Result<()> {
        let (partitions, config, spec) = three_days(0x5eed).await?;
        let ctx = with_view(in_event_table(&partitions, config)?).await?;

        let plan = rows(&ctx, "EXPLAIN SELECT * FROM footfall_hourly").await?;
        assert!(plan.contains("inputs=3, shares=6"), "{plan}");
        same_answers(&ctx, &spec, "by day, in parts").await
    }

    /// Read from Parquet files laid out as a flush writes them, the count
    /// skips the row groups of exits and of the kinds of zone it does not
    /// count, and gives the specification's rows.
    #[tokio::test]
    async fn from_files_it_reads_only_the_entries_it_counts() -> Result<()> {
        let (partitions, config, spec) = three_days(0xf11e).await?;
        let dir = tempfile::tempdir()?;
        let ctx = with_view(in_event_files(dir.path(), &partitions, config)?).await?;
        same_answers(&ctx, &spec, "from files").await?;

        // Row groups read of those in the files, summed over the scans of
        // each day and part.
        let read = async |filter: &str| -> Result<(u64, u64)> {
            let plan = rows(
                &ctx,
                &format!("EXPLAIN ANALYZE SELECT * FROM footfall_hourly {filter}"),
            )
            .await?;
            let mut sums = (0, 0);
            for metric in plan.split("row_groups_pruned_statistics=").skip(1) {
                let numbers: Vec<u64> = metric
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|n| !n.is_empty())
                    .take(2)
                    .map(|n| n.parse().expect("digits"))
                    .collect();
                sums.0 += numbers[1];
                sums.1 += numbers[0];
            }
            assert!(sums.1 > 0, "no row groups in {plan}");
            Ok(sums)
        };
        // Gate entries only; every kind's entries; those naming a pole.
        let (venue, all_groups) = read("WHERE level = 'venue'").await?;
        let (entries, groups) = read("").await?;
        let (poles, _) = read("WHERE level = 'pole'").await?;
        assert_eq!(groups, all_groups);
        assert!(
            venue > 0 && venue < poles && poles < entries && entries < groups,
            "row groups read: venue {venue}, pole {poles}, every level {entries}, of {groups}"
        );
        Ok(())
    }
}
