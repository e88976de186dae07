//! `pole_moves` as a walk (`super::sequence`): each badge's day in order,
//! remembering only the pole of its last scan that carried one. As SQL
//! (`views/pole_moves.sql`, the specification the test holds it to) it was
//! a LAG window over every (badge, day) partition, which took longer than
//! the sort under it on the reference week.

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, Date32Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;
use std::sync::{Arc, LazyLock};

use super::by_day::text;
use super::sequence::{BADGE, LOCAL_DAY, OWN, TS, Walk, Walker, sequence_table};

/// The column of `scans` the walk reads besides the sequence's.
const COLUMNS: [&str; 1] = ["pole_id"];
const POLE_ID: usize = OWN;

/// The relation's columns, as the SQL definition typed them.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("badge", DataType::Utf8, false),
        Field::new("local_day", DataType::Date32, false),
        Field::new("from_pole", DataType::Utf8, true),
        Field::new("to_pole", DataType::Utf8, true),
        Field::new("moved_at", utc, false),
    ]))
});

/// Registers `pole_moves` over the context's `scans`.
pub async fn register(ctx: &SessionContext) -> Result<()> {
    let scans = ctx.table_provider("scans").await?;
    let table = sequence_table(scans, Arc::new(PoleMoves));
    ctx.register_table("pole_moves", Arc::new(table))?;
    Ok(())
}

#[derive(Debug)]
struct PoleMoves;

impl Walker for PoleMoves {
    fn describe(&self) -> String {
        "PoleMovesExec".into()
    }

    fn columns(&self) -> &'static [&'static str] {
        &COLUMNS
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn walk(&self) -> Box<dyn Walk> {
        Box::new(MoveWalk::default())
    }
}

/// One partition's walk and the moves found but not emitted.
#[derive(Default)]
struct MoveWalk {
    /// The (badge, local_day) of the sequence being walked.
    sequence: Option<(String, i32)>,
    /// The pole of its last scan that carried one.
    pole: Option<String>,
    badge: StringBuilder,
    local_day: Date32Builder,
    from_pole: StringBuilder,
    to_pole: StringBuilder,
    moved_at: TimestampMillisecondBuilder,
}

impl Walk for MoveWalk {
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let badges = text(batch, BADGE)?;
        let poles = text(batch, POLE_ID)?;
        let days = batch.column(LOCAL_DAY).as_primitive::<Date32Type>();
        let ts = batch.column(TS).as_primitive::<TimestampMillisecondType>();
        for i in 0..batch.num_rows() {
            let (badge, day) = (badges.value(i), days.value(i));
            let same = matches!(&self.sequence, Some((b, d)) if b == badge && *d == day);
            if !same {
                self.sequence = Some((badge.to_owned(), day));
                self.pole = None;
            }
            if poles.is_null(i) {
                continue;
            }
            let pole = poles.value(i);
            match &self.pole {
                Some(last) if last == pole => {}
                Some(last) => {
                    self.badge.append_value(badge);
                    self.local_day.append_value(day);
                    self.from_pole.append_value(last);
                    self.to_pole.append_value(pole);
                    self.moved_at.append_value(ts.value(i));
                    self.pole = Some(pole.to_owned());
                }
                None => self.pole = Some(pole.to_owned()),
            }
        }
        Ok(())
    }

    fn end(&mut self) {}

    fn len(&self) -> usize {
        self.badge.len()
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.badge.finish()),
            Arc::new(self.local_day.finish()),
            Arc::new(self.from_pole.finish()),
            Arc::new(self.to_pole.finish()),
            Arc::new(self.moved_at.finish().with_timezone("UTC")),
        ];
        Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::stand_visits::tests::{rows, scans};
    use datafusion::prelude::SessionConfig;

    /// The relation's rule as SQL: the specification the walk must match.
    const SPEC: &str = include_str!("views/pole_moves.sql");

    #[tokio::test]
    async fn the_walk_gives_the_rows_of_the_sql_specification() -> Result<()> {
        for (seed, n) in [(1, 1500), (2, 3000), (3, 200), (4, 0)] {
            // Tiny batches and three partitions: sequences cross batches.
            let config = SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(16);
            let ctx = SessionContext::new_with_config(config);
            ctx.register_table("scans", Arc::new(scans(0x51ed_270b_9e37_79b9 ^ seed, n)?))?;
            register(&ctx).await?;
            ctx.sql(&SPEC.replace("CREATE VIEW pole_moves AS", "CREATE VIEW pole_moves_sql AS"))
                .await?;

            let walk = ctx.table("pole_moves").await?.schema().as_arrow().clone();
            let sql = ctx
                .table("pole_moves_sql")
                .await?
                .schema()
                .as_arrow()
                .clone();
            assert_eq!(walk.fields(), sql.fields(), "schema");

            for query in [
                "SELECT * FROM {v} ORDER BY badge, local_day, moved_at, from_pole, to_pole",
                "SELECT local_day, from_pole, to_pole, count(*) AS moves, count(DISTINCT badge) AS visitors \
                 FROM {v} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                "SELECT count(*) AS n FROM {v}",
            ] {
                let got = rows(&ctx, &query.replace("{v}", "pole_moves")).await?;
                let want = rows(&ctx, &query.replace("{v}", "pole_moves_sql")).await?;
                assert_eq!(got, want, "seed {seed}: {query}");
            }
            if n > 1000 {
                let moves = ctx.table("pole_moves").await?.count().await?;
                assert!(moves > 0, "seed {seed} has no moves");
            }
        }
        Ok(())
    }
}
