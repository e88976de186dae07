//! The SQL engine: one DataFusion session over the catalog, run on threads
//! of its own so a heavy query cannot starve ingest, with a memory limit, a
//! timeout, a result cap, and nothing that writes or reads host files.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::SchedulingType;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use footfall_schemas::Venue;

use crate::catalog::{dimensions, event_table::EventTable, views};
use crate::config::{MemoryPoolKind, QueryConfig};
use crate::error::QueryError;
use crate::metrics::QueryMetrics;
use crate::snapshot::SharedSnapshot;
use crate::table_kind::TableKind;

/// Largest answer kept in memory for one request.
const MAX_RESULT_BYTES: usize = 256 << 20;

/// What the caller of a query may read, set by the server's access
/// control (absent: everything, as on a loopback-only server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The `rejected` table keeps raw event text, which may hold badge ids
    /// in clear: organizers only.
    pub may_read_rejected: bool,
}

impl Caller {
    pub const ANYONE: Self = Self {
        may_read_rejected: true,
    };
}

/// A query's answer.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

pub struct SqlEngine {
    ctx: SessionContext,
    runtime: tokio::runtime::Handle,
    /// Dropping it stops the SQL runtime's thread.
    _stop: tokio::sync::oneshot::Sender<()>,
    timeout: Duration,
    metrics: QueryMetrics,
    /// Kept for its lock; the spill files live in it.
    _spill: Option<SpillDir>,
}

/// This process's spill directory under `DATA_DIR/spill`, held by a lock
/// on a file inside it: query instances on Kafka share a data dir, so at
/// start each removes only the directories whose lock nobody holds (left
/// by a killed process). Removed when dropped.
struct SpillDir {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl SpillDir {
    fn create(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path();
            let stale =
                std::fs::File::open(path.join("lock")).map_or(true, |f| f.try_lock().is_ok());
            if stale {
                std::fs::remove_dir_all(&path).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })?;
            }
        }
        let dir = tempfile::Builder::new().prefix("sql-").tempdir_in(root)?;
        let lock = std::fs::File::create(dir.path().join("lock"))?;
        lock.lock()?;
        Ok(Self { dir, _lock: lock })
    }
}

/// Where and how much queries may spill: `spill` capped at `max_bytes`, or
/// nowhere when it is `None` (spilling off), so a query that outgrows
/// memory fails instead.
fn disk_manager(spill: Option<&SpillDir>, max_bytes: u64) -> DiskManagerBuilder {
    match spill {
        None => DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        Some(spill) => DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![
                spill.dir.path().to_path_buf(),
            ]))
            .with_max_temp_directory_size(max_bytes),
    }
}

impl SqlEngine {
    /// Builds the session: event tables, dimension tables, views. Fails if a
    /// view does not plan (a bug) or the SQL threads cannot start.
    pub async fn new(
        venue: &Venue,
        spill_dir: &Path,
        snapshot: Arc<SharedSnapshot>,
        config: &QueryConfig,
        metrics: QueryMetrics,
    ) -> Result<Self, QueryError> {
        let spill = match config.sql_spill_bytes {
            0 => None,
            _ => Some(SpillDir::create(spill_dir).map_err(|e| {
                QueryError::Internal(format!("cannot prepare {}: {e}", spill_dir.display()))
            })?),
        };
        let limit = config.sql_memory_limit_bytes;
        let top = NonZeroUsize::new(5).unwrap();
        let pool: Arc<dyn MemoryPool> = match config.sql_memory_pool {
            MemoryPoolKind::Greedy => {
                Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(limit), top))
            }
            MemoryPoolKind::Fair => {
                Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), top))
            }
        };
        let runtime_env = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(disk_manager(spill.as_ref(), config.sql_spill_bytes))
            .build_arc()
            .map_err(internal)?;
        // Filters stay above the Parquet reader (DataFusion's default):
        // evaluated inside it, they made no question faster on the
        // reference week (daily entries: 62 ms before, 72 after) and
        // footfall per pole per hour, which keeps half the scans, slower.
        // The materialiser writes no bloom filters (`write_parquet`), so
        // looking for them only costs: 2 of the 8 ms of a filtered count
        // over the reference week's 42 files (DataFusion 55, in-process).
        let session = SessionConfig::new()
            .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false)
            .with_information_schema(true)
            .with_target_partitions(config.sql_threads.max(1))
            .with_default_catalog_and_schema("footfall", "public");
        let state = SessionStateBuilder::new()
            .with_config(session)
            .with_runtime_env(runtime_env)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldEveryOperator))
            .build();
        let ctx = SessionContext::new_with_state(state);
        for kind in TableKind::ALL {
            ctx.register_table(
                kind.name(),
                Arc::new(EventTable::new(kind, snapshot.clone())),
            )
            .map_err(internal)?;
        }
        for (name, table) in dimensions::tables(venue).map_err(internal)? {
            ctx.register_table(name, Arc::new(table))
                .map_err(internal)?;
        }
        views::register(&ctx, config).await.map_err(internal)?;

        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let threads = config.sql_threads.max(1);
        std::thread::Builder::new()
            .name("footfall-sql".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("footfall-sql-worker")
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = handle_tx.send(Ok(runtime.handle().clone()));
                        let _ = runtime.block_on(stopped);
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })
            .map_err(internal)?;
        let runtime = handle_rx
            .recv()
            .map_err(internal)?
            .map_err(|e| internal(format!("cannot start the SQL runtime: {e}")))?;
        Ok(Self {
            ctx,
            runtime,
            _stop: stop,
            timeout: Duration::from_millis(config.sql_timeout_ms),
            metrics,
            _spill: spill,
        })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Runs one read-only query. Fails with a user error for bad or
    /// forbidden SQL, the memory limit, the timeout or an oversized result.
    /// Dropping the returned future (client gone) stops the query.
    pub async fn query(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.query_as(sql, Caller::ANYONE).await
    }

    /// [`SqlEngine::query`] for a caller who may not read everything;
    /// fails with [`QueryError::Forbidden`] when the query reads what the
    /// caller may not.
    pub async fn query_as(&self, sql: &str, caller: Caller) -> Result<QueryResult, QueryError> {
        let started = Instant::now();
        let ctx = self.ctx.clone();
        let sql = sql.to_owned();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            tokio::time::timeout(timeout, run(&ctx, &sql, caller))
                .await
                .unwrap_or(Err(QueryError::Timeout(timeout.as_millis() as u64)))
        });
        // Aborting on drop: if the HTTP request goes away, so does the work.
        let guard = AbortOnDrop(task.abort_handle());
        let result = match task.await {
            Ok(result) => result,
            Err(e) => Err(internal(format!("the query task failed: {e}"))),
        };
        drop(guard);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.metrics.sql_queries.with_label_values(&[outcome]).inc();
        self.metrics
            .sql_duration
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Makes every operator's output spend the task's Tokio budget, so a query
/// yields to its runtime every few batches and an abort (client gone) or the
/// timeout stops it there.
///
/// DataFusion's own `EnsureCooperative` makes only the sources and
/// exchanges spend budget. An operator that emits many batches per input
/// batch then runs unchecked: a cross join of `generate_series` emits one
/// batch per left row for each right batch, so the task polled on for
/// seconds without yielding, a cancelled query kept its cores and the
/// timeout came late (16.7 s for 8 s). The cost is one budget check per
/// batch per operator.
#[derive(Debug)]
struct YieldEveryOperator;

impl PhysicalOptimizerRule for YieldEveryOperator {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|plan| {
            // CooperativeExec and the exchanges spend budget already;
            // sources are EnsureCooperative's.
            if plan.properties().scheduling_type == SchedulingType::Cooperative
                || plan.children().is_empty()
            {
                return Ok(Transformed::no(plan));
            }
            let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(plan));
            Ok(Transformed::yes(wrapped))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldEveryOperator"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

async fn run(ctx: &SessionContext, sql: &str, caller: Caller) -> Result<QueryResult, QueryError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(QueryError::from_datafusion)?;
    if !caller.may_read_rejected && reads_table(df.logical_plan(), TableKind::Rejected.name())? {
        return Err(QueryError::Forbidden(
            "the rejected table (raw event text) is for organizers only".into(),
        ));
    }
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df
        .execute_stream()
        .await
        .map_err(QueryError::from_datafusion)?;
    let mut batches = Vec::new();
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(QueryError::from_datafusion)?;
        bytes += batch.get_array_memory_size();
        if bytes > MAX_RESULT_BYTES {
            return Err(QueryError::ResultTooLarge(MAX_RESULT_BYTES));
        }
        batches.push(batch);
    }
    Ok(QueryResult { schema, batches })
}

/// Whether the plan, its subqueries included, scans `table`. Views appear
/// as scans of their own name, so a view over `table` must be named too.
fn reads_table(
    plan: &datafusion::logical_expr::LogicalPlan,
    table: &str,
) -> Result<bool, QueryError> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if scan.table_name.table() == table {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(internal)?;
    Ok(found)
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(e.to_string())
}
