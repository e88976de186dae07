//! Relations computed from `scans` one local day at a time.
//!
//! A committed file of `scans` holds one local day, and a day is what a
//! badge's sequence never crosses and what `footfall_hourly` groups by. So
//! a relation that keeps per-day state (the walks of `super::sequence`, the
//! distinct counts of `super::hourly`) reads each day on its own, from one
//! snapshot, with no DataFusion repartition, sort or aggregate holding all
//! of `scans` at once. The days are dealt over the cores beforehand,
//! largest first; a day larger than a core's share of the memory pool is
//! read in parts by badge hash, each part reading the day again.

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
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, reset_plan_states};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
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
use super::share::Split;

/// Column `i` of a share's input as plain strings (a scan may give them
/// dictionary-encoded or as views).
pub(super) fn text(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    Ok(cast(batch.column(i), &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// A relation made of `scans` by day.
pub(super) trait DayRelation: std::fmt::Debug + Send + Sync {
    fn schema(&self) -> SchemaRef;
    /// Whether a scan can use `filter` (it is applied above the scan all
    /// the same).
    fn filter_pushdown(&self, _filter: &Expr) -> TableProviderFilterPushDown {
        TableProviderFilterPushDown::Unsupported
    }
    /// How a scan under these filters is computed.
    fn plan(&self, filters: &[Expr]) -> Result<Arc<dyn DayPlan>>;
}

/// How a scan of a [`DayRelation`] is computed.
pub(super) trait DayPlan: std::fmt::Debug + Send + Sync {
    /// How plans show it.
    fn describe(&self) -> String;
    /// The columns of `scans` it reads, in the order its work is given them.
    fn columns(&self) -> Vec<&'static str>;
    /// What a row read is reckoned to hold, to decide how many parts a day
    /// needs.
    fn row_bytes(&self) -> u64;
    /// What every row the work uses satisfies, over `scans`' columns: the
    /// scan skips the row groups and pages of its files whose statistics
    /// say it holds for none of their rows. Other rows still come (from the
    /// pages kept, and from rows not yet flushed), and the work skips them.
    fn rows_used(&self) -> Option<Expr> {
        None
    }
    /// One partition's work, over input of `input` schema. It may add its
    /// own metrics for `partition` to `metrics`.
    fn work(
        &self,
        input: &SchemaRef,
        batch_size: usize,
        metrics: &ExecutionPlanMetricsSet,
        partition: usize,
    ) -> Result<Box<dyn DayWork>>;
}

/// What [`DayWork::step`] did.
pub(super) enum Step {
    /// Rows of the relation to pass on.
    Emit(RecordBatch),
    /// Some of the share's work, nothing to pass on yet.
    Worked,
    /// The share is done, and what it held is dropped.
    Done,
}

/// One partition's work over the shares dealt to it, one after the other:
/// [`DayWork::begin`], [`DayWork::push`] each batch, [`DayWork::step`]
/// until [`Step::Done`]; then, after the last share, [`DayWork::end`].
pub(super) trait DayWork: Send {
    /// A share begins: the badges of `split` in the input, about `rows` rows.
    fn begin(&mut self, split: Split, rows: usize) -> Result<()>;
    fn push(&mut self, batch: &RecordBatch) -> Result<()>;
    /// The memory the share holds.
    fn bytes(&self) -> usize;
    /// The share is read: a bounded piece of its work (the task yields to
    /// the runtime between steps, so that a cancelled query stops).
    fn step(&mut self) -> Result<Step>;
    /// Every share is done: the rows still held.
    fn end(&mut self) -> Result<Option<RecordBatch>>;
}

/// A [`DayRelation`] of `scans` as a table.
#[derive(Debug)]
pub(super) struct DayTable {
    scans: Arc<dyn TableProvider>,
    relation: Arc<dyn DayRelation>,
}

impl DayTable {
    pub(super) fn new(scans: Arc<dyn TableProvider>, relation: Arc<dyn DayRelation>) -> Self {
        Self { scans, relation }
    }
}

#[async_trait]
impl TableProvider for DayTable {
    fn schema(&self) -> SchemaRef {
        self.relation.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| self.relation.filter_pushdown(f))
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.relation.plan(filters)?;
        let scans_schema = self.scans.schema();
        let rows_used = plan
            .rows_used()
            .map(|used| state.create_physical_expr(used, &scans_schema.clone().try_into()?))
            .transpose()?;
        let columns = plan
            .columns()
            .iter()
            .map(|name| scans_schema.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // `scans` by day; another table (the tests' in memory) as one share.
        let days: Vec<(Arc<dyn ExecutionPlan>, Option<u64>)> =
            match self.scans.downcast_ref::<EventTable>() {
                Some(table) => table
                    .scan_days(state, Some(&columns), rows_used)?
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
                Some((bytes as u64 / workers as u64 / plan.row_bytes().max(1)).max(1))
            }
            MemoryLimit::Infinite | MemoryLimit::Unknown => None,
        };
        Ok(Arc::new(DayExec::try_new(
            days,
            share_rows,
            workers,
            input_schema,
            plan,
            self.relation.schema(),
            projection.cloned(),
        )?))
    }
}

/// A share of the input: which input, which part of it, and the rows
/// expected in it.
#[derive(Clone, Copy, Debug)]
struct ShareOf {
    input: usize,
    split: Split,
    rows: u64,
}

/// Works each of its inputs (a day of `scans` each, or all of another
/// table) share by share, the shares dealt out over its partitions
/// beforehand.
#[derive(Debug)]
struct DayExec {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    /// The shares each partition works, in order.
    dealt: Vec<Vec<ShareOf>>,
    input_schema: SchemaRef,
    plan: Arc<dyn DayPlan>,
    /// The relation's schema, before `projection`.
    relation_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DayExec {
    /// `inputs` with their rows, where known; a share holds at most
    /// `share_rows` rows (by the rows an input says it has).
    fn try_new(
        inputs: Vec<(Arc<dyn ExecutionPlan>, Option<u64>)>,
        share_rows: Option<u64>,
        workers: usize,
        input_schema: SchemaRef,
        plan: Arc<dyn DayPlan>,
        relation_schema: SchemaRef,
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
            plan,
            relation_schema,
            projection,
        )
    }

    fn with_shares(
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        dealt: Vec<Vec<ShareOf>>,
        input_schema: SchemaRef,
        plan: Arc<dyn DayPlan>,
        relation_schema: SchemaRef,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        for input in &inputs {
            if input.schema().fields() != input_schema.fields() {
                return Err(DataFusionError::Internal(format!(
                    "{} reads {input_schema}, not {}",
                    plan.describe(),
                    input.schema()
                )));
            }
        }
        let schema = match &projection {
            Some(p) => Arc::new(relation_schema.project(p)?),
            None => relation_schema.clone(),
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
            plan,
            relation_schema,
            projection,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for DayExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let shares: usize = self.dealt.iter().map(Vec::len).sum();
        write!(
            f,
            "{}, inputs={}, shares={shares}",
            self.plan.describe(),
            self.inputs.len()
        )
    }
}

impl ExecutionPlan for DayExec {
    fn name(&self) -> &str {
        "DayExec"
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
                "DayExec has {} inputs, not {}",
                self.inputs.len(),
                children.len()
            )));
        }
        Ok(Arc::new(Self::with_shares(
            children,
            self.dealt.clone(),
            self.input_schema.clone(),
            self.plan.clone(),
            self.relation_schema.clone(),
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
        let reservation =
            MemoryConsumer::new(format!("DayExec[{partition}]")).register(context.memory_pool());
        let batch_size = context.session_config().batch_size().max(1);
        let job = Job {
            shares,
            work: self
                .plan
                .work(&self.input_schema, batch_size, &self.metrics, partition)?,
            projection: self.projection.clone(),
            reservation,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            read_rows: MetricBuilder::new(&self.metrics).counter("read_rows", partition),
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

/// One partition's work over its shares.
struct Job {
    shares: Vec<(Arc<dyn ExecutionPlan>, ShareOf)>,
    work: Box<dyn DayWork>,
    projection: Option<Vec<usize>>,
    reservation: MemoryReservation,
    baseline: BaselineMetrics,
    read_rows: Count,
    context: Arc<TaskContext>,
}

impl Job {
    /// Reads and works each share in turn; stops early when the stream is
    /// dropped.
    async fn run(mut self, tx: Sender<Result<RecordBatch>>) -> Result<()> {
        for (input, of) in std::mem::take(&mut self.shares) {
            // A fresh copy each share: a Parquet scan keeps, per plan, a
            // queue of the files its partitions have still to read, so the
            // second part of a day read from the same plan read nothing.
            let input = reset_plan_states(input)?;
            self.work
                .begin(of.split, usize::try_from(of.rows).unwrap_or(0))?;
            for partition in 0..input.output_partitioning().partition_count() {
                let mut batches = input.execute(partition, self.context.clone())?;
                while let Some(batch) = batches.next().await {
                    let batch = batch?;
                    let _timer = self.baseline.elapsed_compute().timer();
                    self.read_rows.add(batch.num_rows());
                    self.work.push(&batch)?;
                    self.reservation.try_resize(self.work.bytes())?;
                }
            }
            loop {
                // Yields now and then, so that a cancelled query stops.
                tokio::task::consume_budget().await;
                let start = Instant::now();
                let step = self.work.step()?;
                self.baseline.elapsed_compute().add_elapsed(start);
                match step {
                    Step::Emit(batch) => {
                        let out = self.output(batch);
                        if tx.send(out).await.is_err() {
                            return Ok(());
                        }
                    }
                    Step::Worked => {}
                    Step::Done => break,
                }
            }
            self.reservation.free();
        }
        if let Some(batch) = self.work.end()? {
            let out = self.output(batch);
            let _ = tx.send(out).await;
        }
        Ok(())
    }

    /// `batch` of the relation as the plan's output.
    fn output(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = match &self.projection {
            Some(p) => batch.project(p)?,
            None => batch,
        };
        self.baseline.record_output(batch.num_rows());
        Ok(batch)
    }
}
