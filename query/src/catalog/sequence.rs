//! Relations computed by walking each badge's day in order, in one pass.
//!
//! As SQL such relations need window operators, each paying per (badge,
//! day) partition: on the reference week they cost several times the sort.
//! Here the scans are hash-partitioned by (badge, local_day), each badge
//! numbered within its partition (`super::badge_numbers`), sorted by
//! DataFusion's `SortExec` (within the memory limit, spilling past it) and
//! walked once per partition by a [`Walk`], which keeps only what is open.
//! `stand_visits` and `pole_moves` are such walks.

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements,
    Partitioning, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::badge_numbers::{BADGE_NO, BadgeNumberExec};

/// A badge's sequence: (badge, local_day), then `ts`, then `event_id`. A
/// walk's input starts with these columns, then has [`Walker::columns`],
/// then the badge's number in its partition ([`BADGE_NO`]), which the sort
/// reads in the badge's place.
const SEQUENCE: [&str; 4] = ["badge", "local_day", "ts", "event_id"];
pub(super) const BADGE: usize = 0;
pub(super) const LOCAL_DAY: usize = 1;
pub(super) const TS: usize = 2;
/// Where a walk's own columns start in its input.
pub(super) const OWN: usize = SEQUENCE.len();

/// Column `i` of a walk's input as plain strings (a scan may give them
/// dictionary-encoded or as views).
pub(super) fn text(batch: &RecordBatch, i: usize) -> Result<StringArray> {
    Ok(cast(batch.column(i), &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// One partition's walk over its sorted scans.
pub(super) trait Walk: Send {
    /// Walks the next rows: the sequence's columns, then
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
        let input = self.scans.scan(state, Some(&columns), &[], None).await?;
        let schema = input.schema();
        let key = key(&schema)?;
        let partitions = state.config().target_partitions().max(1);
        let hashed = Arc::new(RepartitionExec::try_new(
            input,
            Partitioning::Hash(key.clone(), partitions),
        )?);
        let numbered = Arc::new(BadgeNumberExec::try_new(hashed, BADGE, key)?);
        let sorted = Arc::new(
            SortExec::new(sequence(&numbered.schema())?, numbered).with_preserve_partitioning(true),
        );
        Ok(Arc::new(SequenceExec::try_new(
            sorted,
            self.walker.clone(),
            projection.cloned(),
        )?))
    }
}

fn key(schema: &Schema) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    Ok(vec![col("badge", schema)?, col("local_day", schema)?])
}

/// The walk's order: the badge's number, then the rest of [`SEQUENCE`].
fn sequence(schema: &Schema) -> Result<LexOrdering> {
    let exprs = std::iter::once(BADGE_NO)
        .chain(SEQUENCE[BADGE + 1..].iter().copied())
        .map(|name| Ok(PhysicalSortExpr::new_default(col(name, schema)?)))
        .collect::<Result<Vec<_>>>()?;
    LexOrdering::new(exprs).ok_or_else(|| DataFusionError::Internal("empty sequence".into()))
}

/// The one input given to `with_new_children` of the operator `name`.
pub(super) fn only_child(
    mut children: Vec<Arc<dyn ExecutionPlan>>,
    name: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => Err(DataFusionError::Internal(format!("{name} has one input"))),
    }
}

/// Walks each partition of its input, sorted by (badge number, local_day,
/// ts, event_id) and partitioned by (badge, local_day).
#[derive(Debug)]
struct SequenceExec {
    input: Arc<dyn ExecutionPlan>,
    walker: Arc<dyn Walker>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SequenceExec {
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        walker: Arc<dyn Walker>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(walker.schema().project(p)?),
            None => walker.schema(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        )
        .with_scheduling_type(SchedulingType::Cooperative);
        Ok(Self {
            input,
            walker,
            projection,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for SequenceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}", self.walker.describe())
    }
}

impl ExecutionPlan for SequenceExec {
    fn name(&self) -> &str {
        "SequenceExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        match key(&self.input.schema()) {
            Ok(key) => vec![Distribution::KeyPartitioned(key)],
            Err(_) => vec![Distribution::SinglePartition],
        }
    }

    /// Declared so that the optimizer keeps the sort below (an operator
    /// without an ordering requirement lets it drop the sort).
    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![
            sequence(&self.input.schema())
                .ok()
                .map(|o| OrderingRequirements::new(LexRequirement::from(o))),
        ]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        Ok(Arc::new(Self::try_new(
            only_child(children, self.name())?,
            self.walker.clone(),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        Ok(Box::pin(cooperative(WalkStream {
            input,
            walk: self.walker.walk(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            batch_size: context.session_config().batch_size().max(1),
            done: false,
        })))
    }
}

struct WalkStream {
    input: SendableRecordBatchStream,
    walk: Box<dyn Walk>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    batch_size: usize,
    done: bool,
}

impl WalkStream {
    fn emit(&mut self) -> Result<RecordBatch> {
        let batch = self.walk.finish()?;
        match &self.projection {
            Some(p) => Ok(batch.project(p)?),
            None => Ok(batch),
        }
    }
}

impl Stream for WalkStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match futures::ready!(self.input.poll_next_unpin(cx)) {
                Some(Ok(batch)) => {
                    if let Err(e) = self.walk.push(&batch) {
                        self.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    if self.walk.len() >= self.batch_size {
                        return Poll::Ready(Some(self.emit()));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    self.done = true;
                    self.walk.end();
                    if self.walk.len() > 0 {
                        return Poll::Ready(Some(self.emit()));
                    }
                }
            }
        }
    }
}

impl RecordBatchStream for WalkStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
