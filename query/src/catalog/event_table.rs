//! An event table as DataFusion sees it: on each scan, the current snapshot's
//! committed Parquet files (read by DataFusion's Parquet source, with row
//! group pruning) united with its in-memory batches.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, memory::MemorySourceConfig};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use std::sync::Arc;

use crate::snapshot::{SharedSnapshot, TableSnapshot};
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
            inputs.push(parquet_scan(
                state,
                table,
                schema.clone(),
                projection,
                limit,
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

fn parquet_scan(
    state: &dyn Session,
    table: &TableSnapshot,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    // Balance files over as many groups as there are cores, by size.
    let groups_wanted = state
        .config()
        .target_partitions()
        .max(1)
        .min(table.files.len());
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups_wanted];
    let mut files = table.files.clone();
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
    let source = ParquetSource::new(schema)
        .with_table_parquet_options(state.table_options().parquet.clone())
        .with_parquet_file_reader_factory(Arc::new(reader));
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
