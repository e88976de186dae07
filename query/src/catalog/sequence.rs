//! Relations computed by walking each badge's day in order, in one pass.
//!
//! As SQL such relations need window operators, each paying per (badge,
//! day) partition: on the reference week they cost several times the sort.
//! Here `scans` is read by day (`super::by_day`), each day (or part of one)
//! held compactly and sorted in memory (`super::share`) and walked by a
//! [`Walk`], which keeps only what is open. `stand_visits` and `pole_moves`
//! are such walks. The sort this replaced (DataFusion's, over all of
//! `scans` hash-partitioned by badge and day) spilled all of its input at
//! 50 million scans.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, Time};
use std::sync::Arc;

use super::by_day::{DayPlan, DayRelation, DayTable, DayWork, Step};
use super::share::{Share, Split};

/// A badge's sequence: (badge, local_day), then `ts`, then `event_id`. A
/// walk reads these columns of `scans`, then [`Walker::columns`]; it is
/// given them in order without `event_id`, which only orders.
const SEQUENCE: [&str; 4] = ["badge", "local_day", "ts", "event_id"];
pub(super) const BADGE: usize = 0;
pub(super) const LOCAL_DAY: usize = 1;
pub(super) const TS: usize = 2;
/// Where `event_id` is in what a walk reads; a walk is given the columns
/// after it one place earlier.
pub(super) const EVENT_ID: usize = 3;
/// Where a walk's own columns start in what it is given.
pub(super) const OWN: usize = EVENT_ID;

/// What a row of a share is reckoned to hold, to decide how many parts a
/// day needs (a share's row is 28 bytes, plus its event id and its share
/// of the dictionaries).
const ROW_ESTIMATE: u64 = 64;

/// One partition's walk over its sorted scans.
pub(super) trait Walk: Send {
    /// Walks the next rows: badge, local_day, ts, then
    /// [`Walker::columns`].
    fn push(&mut self, batch: &RecordBatch) -> Result<()>;
    /// The input has ended: closes what is open.
    fn end(&mut self);
    /// Rows found and not yet taken by [`Walk::finish`].
    fn len(&self) -> usize;
    /// The rows found since the last call, in [`Walker::schema`].
    fn finish(&mut self) -> Result<RecordBatch>;
}

/// A relation made by a walk: its columns, what it reads, its walks.
pub(super) trait Walker: std::fmt::Debug + Send + Sync {
    /// How plans show it.
    fn describe(&self) -> String;
    /// The columns of `scans` the walk reads besides the sequence's.
    fn columns(&self) -> &'static [&'static str];
    fn schema(&self) -> SchemaRef;
    fn walk(&self) -> Box<dyn Walk>;
}

/// The relation a [`Walker`] makes of `scans`, as a table.
pub(super) fn sequence_table(scans: Arc<dyn TableProvider>, walker: Arc<dyn Walker>) -> DayTable {
    DayTable::new(scans, Arc::new(Walks(walker)))
}

/// A [`Walker`]'s relation, read by day.
#[derive(Debug)]
struct Walks(Arc<dyn Walker>);

impl DayRelation for Walks {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn plan(&self, _filters: &[Expr]) -> Result<Arc<dyn DayPlan>> {
        Ok(Arc::new(Walks(self.0.clone())))
    }
}

impl DayPlan for Walks {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn columns(&self) -> Vec<&'static str> {
        SEQUENCE.iter().chain(self.0.columns()).copied().collect()
    }

    fn row_bytes(&self) -> u64 {
        ROW_ESTIMATE
    }

    fn work(
        &self,
        input: &SchemaRef,
        batch_size: usize,
        metrics: &ExecutionPlanMetricsSet,
        partition: usize,
    ) -> Result<Box<dyn DayWork>> {
        Ok(Box::new(WalkWork {
            input: input.clone(),
            walked: Share::walked_schema(input),
            walk: self.0.walk(),
            batch_size,
            share: None,
            sort_time: MetricBuilder::new(metrics).subset_time("sort_time", partition),
        }))
    }
}

/// One partition's walk: each share is held, sorted, then walked.
struct WalkWork {
    input: SchemaRef,
    walked: SchemaRef,
    walk: Box<dyn Walk>,
    batch_size: usize,
    /// The share being read or walked, with how many of its rows (once
    /// sorted) have been walked.
    share: Option<(Share, Option<usize>)>,
    sort_time: Time,
}

impl DayWork for WalkWork {
    fn begin(&mut self, split: Split, rows: usize) -> Result<()> {
        self.share = Some((Share::new(&self.input, split, rows)?, None));
        Ok(())
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.share {
            Some((share, None)) => share.push(batch),
            _ => Err(DataFusionError::Internal(
                "a walk is given rows outside a share's reading".into(),
            )),
        }
    }

    fn bytes(&self) -> usize {
        self.share.as_ref().map_or(0, |(share, _)| share.bytes())
    }

    fn step(&mut self) -> Result<Step> {
        let Some((share, walked)) = &mut self.share else {
            return Ok(Step::Done);
        };
        let from = match walked {
            Some(from) => *from,
            None => {
                let _timer = self.sort_time.timer();
                share.sort();
                0
            }
        };
        let Some(batch) = share.batch_at(&self.walked, from, self.batch_size) else {
            self.share = None;
            return Ok(Step::Done);
        };
        let batch = batch?;
        *walked = Some(from + batch.num_rows());
        self.walk.push(&batch)?;
        Ok(if self.walk.len() >= self.batch_size {
            Step::Emit(self.walk.finish()?)
        } else {
            Step::Worked
        })
    }

    fn end(&mut self) -> Result<Option<RecordBatch>> {
        self.walk.end();
        Ok((self.walk.len() > 0)
            .then(|| self.walk.finish())
            .transpose()?)
    }
}
