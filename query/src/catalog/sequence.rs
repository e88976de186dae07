//! Relations computed by walking each badge's day in order, in one pass.
//!
//! As SQL such relations need window operators, each paying per (badge,
//! day) partition: on the reference week they cost several times the sort.
//! Here `scans` is read one local day at a time (a day larger than the
//! memory allows, in parts by badge hash), each day held compactly and
//! sorted in memory (`super::share`) and walked by a [`Walk`], which keeps
//! only what is open. The days are shared out over the cores beforehand,
//! largest first. `stand_visits` and `pole_moves` are such walks.
//!
//! A day is the unit because a committed file of `scans` holds one day, so
//! that no row is read twice unless a day is split; and because a day is
//! what a sequence never crosses. The sort this replaced (DataFusion's,
//! over all of `scans` hash-partitioned by badge and day) spilled all of
//! its input at 50 million scans.

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties,
};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::Sender;

use super::event_table::EventTable;
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

/// Column `i` of a walk's input as plain strings (a scan may give them
/// dictionary-encoded or as views).
pub(super) fn text(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    Ok(cast(batch.column(i), &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

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

/// The relation a [`Walker`] makes of `scans`.
#[derive(Debug)]
pub(super) struct SequenceTable {
    scans: Arc<dyn TableProvider>,
    walker: Arc<dyn Walker>,
}

impl SequenceTable {
    pub(super) fn new(scans: Arc<dyn TableProvider>, walker: Arc<dyn Walker>) -> Self {
        Self { scans, walker }
    }
}

#[async_trait]
impl TableProvider for SequenceTable {
    fn schema(&self) -> SchemaRef {
        self.walker.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scans_schema = self.scans.schema();
        let columns = SEQUENCE
            .iter()
            .chain(self.walker.columns())
            .map(|name| scans_schema.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // `scans` by day; another table (the tests' in memory) as one share.
        let days: Vec<(Arc<dyn ExecutionPlan>, Option<u64>)> =
            match self.scans.downcast_ref::<EventTable>() {
                Some(table) => table
                    .scan_days(state, Some(&columns))?
                    .into_iter()
                    .map(|day| (day.plan, Some(day.rows)))
                    .collect(),
                None => vec![(
                    self.scans.scan(state, Some(&columns), &[], None).await?,
                    None,
                )],
            };
        let input_schema = Arc::new(scans_schema.project(&columns)?);
        let workers = state.config().target_partitions().max(1);
        let share_rows = match state.runtime_env().memory_pool.memory_limit() {
            MemoryLimit::Finite(bytes) => {
                Some((bytes as u64 / workers as u64 / ROW_ESTIMATE).max(1))
            }
            MemoryLimit::Infinite | MemoryLimit::Unknown => None,
        };
        Ok(Arc::new(SequenceExec::try_new(
            days,
            share_rows,
            workers,
            input_schema,
            self.walker.clone(),
            projection.cloned(),
        )?))
    }
}

/// A share of the walk's input: which input, which part of it, and the
/// rows expected in it.
#[derive(Clone, Copy, Debug)]
struct ShareOf {
    input: usize,
    split: Split,
    rows: u64,
}

/// Walks each of its inputs (a day of `scans` each, or all of another
/// table) share by share, the shares dealt out over its partitions
/// beforehand.
#[derive(Debug)]
struct SequenceExec {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    /// The shares each partition walks, in order.
    dealt: Vec<Vec<ShareOf>>,
    input_schema: SchemaRef,
    walker: Arc<dyn Walker>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SequenceExec {
    /// `inputs` with their rows, where known; a share holds at most
    /// `share_rows` rows (by the rows an input says it has).
    fn try_new(
        inputs: Vec<(Arc<dyn ExecutionPlan>, Option<u64>)>,
        share_rows: Option<u64>,
        workers: usize,
        input_schema: SchemaRef,
        walker: Arc<dyn Walker>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        // Largest first, each to the least loaded partition.
        let mut shares = Vec::new();
        for (input, (_, rows)) in inputs.iter().enumerate() {
            let rows = rows.unwrap_or(0);
            let parts = match share_rows {
                Some(max) => rows.div_ceil(max).max(1),
                None => 1,
            };
            for part in 0..parts {
                let split = Split { parts, part };
                // A part by hash is about its share, seldom exactly.
                let rows = if parts == 1 {
                    rows
                } else {
                    rows / parts * 9 / 8
                };
                shares.push(ShareOf { input, split, rows });
            }
        }
        shares.sort_by_key(|share| std::cmp::Reverse(share.rows));
        let mut dealt = vec![(0, Vec::new()); workers.min(shares.len()).max(1)];
        for share in shares {
            let least = dealt
                .iter_mut()
                .min_by_key(|(load, _)| *load)
                .expect("at least one partition");
            least.0 += share.rows.max(1);
            least.1.push(share);
        }
        // Every other partition takes its shares smallest first, so that
        // the largest are not all held at once.
        let dealt: Vec<_> = dealt
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut shares))| {
                if i % 2 == 1 {
                    shares.reverse();
                }
                shares
            })
            .collect();
        Self::with_shares(
            inputs.into_iter().map(|(plan, _)| plan).collect(),
            dealt,
            input_schema,
            walker,
            projection,
        )
    }

    fn with_shares(
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        dealt: Vec<Vec<ShareOf>>,
        input_schema: SchemaRef,
        walker: Arc<dyn Walker>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        for input in &inputs {
            if input.schema().fields() != input_schema.fields() {
                return Err(DataFusionError::Internal(format!(
                    "a walk reads {input_schema}, not {}",
                    input.schema()
                )));
            }
        }
        let schema = match &projection {
            Some(p) => Arc::new(walker.schema().project(p)?),
            None => walker.schema(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(dealt.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            inputs,
            dealt,
            input_schema,
            walker,
            projection,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for SequenceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let shares: usize = self.dealt.iter().map(Vec::len).sum();
        write!(
            f,
            "{}, inputs={}, shares={shares}",
            self.walker.describe(),
            self.inputs.len()
        )
    }
}

impl ExecutionPlan for SequenceExec {
    fn name(&self) -> &str {
        "SequenceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// Each input is read whole, partition after partition, by the one
    /// partition of this operator its share is dealt to.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::UnspecifiedDistribution; self.inputs.len()]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.inputs.len() {
            return Err(DataFusionError::Internal(format!(
                "SequenceExec has {} inputs, not {}",
                self.inputs.len(),
                children.len()
            )));
        }
        Ok(Arc::new(Self::with_shares(
            children,
            self.dealt.clone(),
            self.input_schema.clone(),
            self.walker.clone(),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let shares = self
            .dealt
            .get(partition)
            .ok_or_else(|| DataFusionError::Internal(format!("no partition {partition}")))?
            .iter()
            .map(|share| (self.inputs[share.input].clone(), *share))
            .collect();
        let reservation = MemoryConsumer::new(format!("SequenceExec[{partition}]"))
            .register(context.memory_pool());
        let job = Job {
            shares,
            input_schema: self.input_schema.clone(),
            walk: self.walker.walk(),
            projection: self.projection.clone(),
            batch_size: context.session_config().batch_size().max(1),
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            read_rows: MetricBuilder::new(&self.metrics).counter("read_rows", partition),
            sort_time: MetricBuilder::new(&self.metrics).subset_time("sort_time", partition),
            context,
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        builder.spawn(job.run(tx));
        Ok(builder.build())
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's walk over its shares.
struct Job {
    shares: Vec<(Arc<dyn ExecutionPlan>, ShareOf)>,
    input_schema: SchemaRef,
    walk: Box<dyn Walk>,
    projection: Option<Vec<usize>>,
    batch_size: usize,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    read_rows: Count,
    sort_time: Time,
    context: Arc<TaskContext>,
}

impl Job {
    /// Reads, sorts and walks each share in turn; stops early when the
    /// stream is dropped.
    async fn run(mut self, tx: Sender<Result<RecordBatch>>) -> Result<()> {
        let walked = Share::walked_schema(&self.input_schema);
        for (input, of) in std::mem::take(&mut self.shares) {
            let rows = usize::try_from(of.rows).unwrap_or(0);
            let mut share = Share::new(&self.input_schema, of.split, rows)?;
            for partition in 0..input.output_partitioning().partition_count() {
                let mut batches = input.execute(partition, self.context.clone())?;
                while let Some(batch) = batches.next().await {
                    let batch = batch?;
                    let _timer = self.baseline.elapsed_compute().timer();
                    self.read_rows.add(batch.num_rows());
                    share.push(&batch)?;
                    self.reservation.try_resize(share.bytes())?;
                }
            }
            {
                let _timer = self.sort_time.timer();
                share.sort();
            }
            for batch in share.batches(&walked, self.batch_size) {
                // Yields now and then, so that a cancelled query stops.
                tokio::task::consume_budget().await;
                let start = Instant::now();
                self.walk.push(&batch?)?;
                let full = (self.walk.len() >= self.batch_size).then(|| self.emit());
                self.baseline.elapsed_compute().add_elapsed(start);
                if let Some(out) = full
                    && tx.send(out).await.is_err()
                {
                    return Ok(());
                }
            }
            drop(share);
            self.reservation.free();
        }
        self.walk.end();
        if self.walk.len() > 0 {
            let out = self.emit();
            let _ = tx.send(out).await;
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<RecordBatch> {
        let batch = self.walk.finish()?;
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        self.baseline.record_output(batch.num_rows());
        Ok(batch)
    }
}
