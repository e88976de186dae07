//! An event table as DataFusion sees it: on each scan, the current snapshot's
//! committed Parquet files (read by DataFusion's Parquet source, with row
//! group pruning) united with its in-memory batches.

use arrow::array::{Array, AsArray, Date32Array, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::eq;
use arrow::datatypes::{Date32Type, SchemaRef};
use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::catalog::Session;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, memory::MemorySourceConfig};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::snapshot::{FileRef, SharedSnapshot};
use crate::table_kind::TableKind;

#[derive(Debug)]
pub struct EventTable {
    kind: TableKind,
    snapshot: Arc<SharedSnapshot>,
}

impl EventTable {
    pub fn new(kind: TableKind, snapshot: Arc<SharedSnapshot>) -> Self {
        Self { kind, snapshot }
    }
}

#[async_trait]
impl TableProvider for EventTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Parquet prunes with them, but rows are still filtered above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.snapshot.get();
        let table = snapshot.table(self.kind);
        let schema = self.kind.schema();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !table.files.is_empty() {
            // Balance files over as many groups as there are cores.
            let groups = state.config().target_partitions().max(1);
            inputs.push(parquet_scan(
                state,
                &table.files,
                groups,
                schema.clone(),
                projection,
                limit,
                None,
            )?);
        }
        if !table.batches.is_empty() {
            // Spread the batches so that both cores work on the tail.
            let partitions = state.config().target_partitions().max(1);
            let mut parts: Vec<Vec<_>> = vec![Vec::new(); partitions.min(table.batches.len())];
            for (i, batch) in table.batches.iter().enumerate() {
                let n = parts.len();
                parts[i % n].push(batch.clone());
            }
            inputs.push(MemorySourceConfig::try_new_exec(
                &parts,
                schema.clone(),
                projection.cloned(),
            )?);
        }
        match inputs.len() {
            0 => Ok(Arc::new(EmptyExec::new(
                datafusion::physical_plan::project_schema(&schema, projection)?,
            ))),
            1 => Ok(inputs.remove(0)),
            _ => UnionExec::try_new(inputs),
        }
    }
}

/// A table's rows of one local day, read on their own.
pub struct DayScan {
    /// How many rows it reads.
    pub rows: u64,
    /// Reads them: the day's files, then its rows in memory.
    pub plan: Arc<dyn ExecutionPlan>,
}

impl EventTable {
    /// The table's rows one local day at a time, in order of day, all from
    /// one snapshot, for operators that take a table's days one by one (the
    /// walks, `super::sequence`). A committed file holds one local day; the
    /// rows in memory are split by day. The files' row groups and pages
    /// where `rows_used` holds for no row are skipped.
    pub fn scan_days(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        rows_used: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Vec<DayScan>> {
        let snapshot = self.snapshot.get();
        let table = snapshot.table(self.kind);
        let schema = self.kind.schema();
        let mut days: BTreeMap<i32, (Vec<FileRef>, Vec<RecordBatch>, u64)> = BTreeMap::new();
        for file in &table.files {
            let day = days_since_epoch(&file.local_day)?;
            let (files, _, rows) = days.entry(day).or_default();
            files.push(file.clone());
            *rows += file.rows;
        }
        let day_column = schema.index_of("local_day")?;
        for batch in &table.batches {
            for (day, rows) in split_by_day(batch, day_column)? {
                let (_, batches, n) = days.entry(day).or_default();
                *n += rows.num_rows() as u64;
                batches.push(rows);
            }
        }
        days.into_iter()
            .map(|(_, (files, batches, rows))| {
                let mut inputs = Vec::new();
                if !files.is_empty() {
                    inputs.push(parquet_scan(
                        state,
                        &files,
                        1,
                        schema.clone(),
                        projection,
                        None,
                        rows_used.clone(),
                    )?);
                }
                if !batches.is_empty() {
                    inputs.push(MemorySourceConfig::try_new_exec(
                        &[batches],
                        schema.clone(),
                        projection.cloned(),
                    )? as Arc<dyn ExecutionPlan>);
                }
                let plan = match inputs.len() {
                    1 => inputs.remove(0),
                    _ => UnionExec::try_new(inputs)?,
                };
                Ok(DayScan { rows, plan })
            })
            .collect()
    }
}

/// `YYYY-MM-DD` as days since the epoch (Arrow's `Date32`).
fn days_since_epoch(day: &str) -> Result<i32> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|date| date.to_epoch_days())
        .map_err(|e| DataFusionError::Internal(format!("local day {day:?}: {e}")))
}

/// The rows of `batch` by their local day (column `day_column`).
fn split_by_day(batch: &RecordBatch, day_column: usize) -> Result<Vec<(i32, RecordBatch)>> {
    let days = batch
        .column(day_column)
        .as_primitive_opt::<Date32Type>()
        .ok_or_else(|| DataFusionError::Internal("local_day is not a Date32".into()))?;
    let distinct: BTreeSet<i32> = days.iter().flatten().collect();
    if distinct.len() == 1 && days.null_count() == 0 {
        return Ok(distinct.into_iter().map(|d| (d, batch.clone())).collect());
    }
    distinct
        .into_iter()
        .map(|day| {
            let mask = eq(days, &Date32Array::new_scalar(day))?;
            Ok((day, filter_record_batch(batch, &mask)?))
        })
        .collect()
}

/// The files as a Parquet scan of at most `groups` partitions, balanced by size.
fn parquet_scan(
    state: &dyn Session,
    files: &[FileRef],
    groups: usize,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    rows_used: Option<Arc<dyn PhysicalExpr>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let groups_wanted = groups.max(1).min(files.len());
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_wanted];
    let mut files = files.to_vec();
    files.sort_by(|a, b| b.bytes.cmp(&a.bytes));
    for file in files {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.bytes;
        lightest.1.push(PartitionedFile::new(
            file.path.to_string_lossy().into_owned(),
            file.bytes,
        ));
    }
    // Committed files never change under their name, so their footers and
    // page indexes are read once per process, not once per query.
    let url = ObjectStoreUrl::local_filesystem();
    let runtime = state.runtime_env();
    let reader = CachedParquetFileReaderFactory::new(
        runtime.object_store(&url)?,
        runtime.cache_manager.get_file_metadata_cache(),
    );
    let mut source = ParquetSource::new(schema)
        .with_table_parquet_options(state.table_options().parquet.clone())
        .with_parquet_file_reader_factory(Arc::new(reader));
    if let Some(rows_used) = rows_used {
        source = source.with_predicate(rows_used);
    }
    let config = FileScanConfigBuilder::new(url, Arc::new(source))
        .with_file_groups(
            groups
                .into_iter()
                .map(|(_, files)| FileGroup::new(files))
                .collect(),
        )
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}
