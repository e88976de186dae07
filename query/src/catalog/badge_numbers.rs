//! Numbers each badge of a partition, so that a walk's sort compares
//! integers where it compared strings.
//!
//! A walk's input is sorted by badge, day, time and event id. Comparing
//! badges (32-character pseudonyms) was most of the sort: on the reference
//! week `lexsort_to_indices` took a quarter of `stand_visits`' time, mostly
//! in `memcmp`. Each partition of the walk's input holds whole (badge, day)
//! sequences, so a number per badge, given in order of first sight, groups
//! the rows exactly as the badge does (equal badges, equal numbers; never
//! two badges one number) at the cost of one hash lookup per row.

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties,
};
use futures::{Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use super::sequence::only_child;

/// The column added, last.
pub(super) const BADGE_NO: &str = "badge_no";

/// Bytes a badge's entry holds besides its text: the map's slot (a boxed
/// string and its number) and its control byte, with the map's slack.
const ENTRY_OVERHEAD: usize = 48;

/// Adds [`BADGE_NO`] to its input: per partition, the badge's number in
/// order of first sight. Keeps the input's partitioning and order.
///
/// The numbers are unique only within a partition, so the operator
/// requires its input partitioned by `key` (which must hold the badge)
/// itself: declared by the consumer alone, the optimizer would move the
/// repartition above this operator and mix numbers of different partitions.
#[derive(Debug)]
pub(super) struct BadgeNumberExec {
    input: Arc<dyn ExecutionPlan>,
    /// The badge column of the input.
    badge: usize,
    /// What the input is partitioned by.
    key: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl BadgeNumberExec {
    pub(super) fn try_new(
        input: Arc<dyn ExecutionPlan>,
        badge: usize,
        key: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Self> {
        let input_schema = input.schema();
        if input_schema.field(badge).data_type() != &DataType::Utf8 {
            return Err(DataFusionError::Internal(format!(
                "badge numbers read a Utf8 badge, not {}",
                input_schema.field(badge).data_type()
            )));
        }
        let mut fields = input_schema.fields().to_vec();
        fields.push(Arc::new(Field::new(BADGE_NO, DataType::UInt32, false)));
        let schema = Arc::new(Schema::new(fields));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        )
        .with_scheduling_type(SchedulingType::Cooperative);
        Ok(Self {
            input,
            badge,
            key,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for BadgeNumberExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "BadgeNumberExec")
    }
}

impl ExecutionPlan for BadgeNumberExec {
    fn name(&self) -> &str {
        "BadgeNumberExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::KeyPartitioned(self.key.clone())]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
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
            self.badge,
            self.key.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let reservation = MemoryConsumer::new(format!("BadgeNumbers[{partition}]"))
            .register(context.memory_pool());
        Ok(Box::pin(cooperative(NumberStream {
            input,
            numbers: Numbers::new(reservation),
            badge: self.badge,
            schema: self.schema.clone(),
        })))
    }
}

/// One partition's badges and their numbers, counted in the SQL memory pool.
struct Numbers {
    of: HashMap<Box<str>, u32, Xxh3DefaultBuilder>,
    reservation: MemoryReservation,
}

impl Numbers {
    fn new(reservation: MemoryReservation) -> Self {
        Self {
            of: HashMap::default(),
            reservation,
        }
    }

    /// The numbers of a batch's badges, numbering the new ones. A missing
    /// badge (the table forbids it) is numbered as the empty one.
    fn number(&mut self, badges: &arrow::array::StringArray) -> Result<UInt32Array> {
        let mut out = Vec::with_capacity(badges.len());
        for i in 0..badges.len() {
            let badge = if badges.is_valid(i) {
                badges.value(i)
            } else {
                ""
            };
            let no = match self.of.get(badge) {
                Some(&no) => no,
                None => {
                    let no = u32::try_from(self.of.len()).map_err(|_| {
                        DataFusionError::ResourcesExhausted(
                            "more than 2^32 badges in one partition of a walk".into(),
                        )
                    })?;
                    self.reservation.try_grow(badge.len() + ENTRY_OVERHEAD)?;
                    self.of.insert(badge.into(), no);
                    no
                }
            };
            out.push(no);
        }
        Ok(UInt32Array::from(out))
    }
}

struct NumberStream {
    input: SendableRecordBatchStream,
    numbers: Numbers,
    badge: usize,
    schema: SchemaRef,
}

impl NumberStream {
    fn add_numbers(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let numbers = self
            .numbers
            .number(batch.column(self.badge).as_string::<i32>())?;
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(numbers));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Stream for NumberStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = futures::ready!(self.input.poll_next_unpin(cx));
        Poll::Ready(polled.map(|batch| batch.and_then(|b| self.add_numbers(&b))))
    }
}

impl RecordBatchStream for NumberStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};

    fn numbers(pool: Arc<dyn MemoryPool>) -> Numbers {
        Numbers::new(MemoryConsumer::new("test").register(&pool))
    }

    #[test]
    fn equal_badges_share_a_number_and_different_ones_never_do() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let mut n = numbers(pool.clone());
        let first = n
            .number(&StringArray::from(vec!["b", "a", "b", "c"]))
            .unwrap();
        let second = n.number(&StringArray::from(vec!["c", "a", "d"])).unwrap();
        assert_eq!(first.values().to_vec(), [0, 1, 0, 2]);
        assert_eq!(second.values().to_vec(), [2, 1, 3]);
        assert_eq!(pool.reserved(), 4 * (1 + ENTRY_OVERHEAD));
    }

    #[test]
    fn the_numbers_are_held_within_the_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(2 * ENTRY_OVERHEAD + 2));
        let mut n = numbers(pool);
        assert!(n.number(&StringArray::from(vec!["a", "b"])).is_ok());
        let err = n.number(&StringArray::from(vec!["a", "c"])).unwrap_err();
        assert!(
            matches!(err.find_root(), DataFusionError::ResourcesExhausted(_)),
            "{err}"
        );
    }
}
