//! Query results in the formats analysts ask for: JSON (an array of row
//! objects), CSV with a header, Arrow IPC stream, Parquet.

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use std::sync::Arc;

use crate::engine::QueryResult;
use crate::error::QueryError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
}

impl Format {
    /// Fails for a name that is not one of the four.
    pub fn parse(name: Option<&str>) -> Result<Self, QueryError> {
        match name.map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Ok(Self::Json),
            Some("csv") => Ok(Self::Csv),
            Some("arrow") => Ok(Self::Arrow),
            Some("parquet") => Ok(Self::Parquet),
            Some(other) => Err(QueryError::UnknownFormat(
                footfall_schemas::events::truncate(other, 40).to_owned(),
            )),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// Encodes a result. Fails only on an encoder bug.
    pub fn encode(self, result: &QueryResult) -> Result<Vec<u8>, QueryError> {
        let batches: Vec<&RecordBatch> = result.batches.iter().collect();
        let internal =
            |e: &dyn std::fmt::Display| QueryError::Internal(format!("encoding {self:?}: {e}"));
        let mut out = Vec::new();
        match self {
            Self::Json => {
                let mut writer = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::JsonArray>(&mut out);
                writer.write_batches(&batches).map_err(|e| internal(&e))?;
                writer.finish().map_err(|e| internal(&e))?;
                drop(writer);
                if out.is_empty() {
                    out.extend_from_slice(b"[]");
                }
            }
            Self::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    // The header alone, so an empty answer still names its columns.
                    writer
                        .write(&RecordBatch::new_empty(result.schema.clone()))
                        .map_err(|e| internal(&e))?;
                }
                for batch in batches {
                    writer.write(batch).map_err(|e| internal(&e))?;
                }
            }
            Self::Arrow => {
                let mut writer =
                    arrow::ipc::writer::StreamWriter::try_new(&mut out, &result.schema)
                        .map_err(|e| internal(&e))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| internal(&e))?;
                }
                writer.finish().map_err(|e| internal(&e))?;
            }
            Self::Parquet => {
                let schema = parquet_schema(&result.schema);
                let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), None)
                    .map_err(|e| internal(&e))?;
                for batch in batches {
                    let batch = parquet_batch(batch, &schema).map_err(|e| internal(&e))?;
                    writer.write(&batch).map_err(|e| internal(&e))?;
                }
                writer.close().map_err(|e| internal(&e))?;
            }
        }
        Ok(out)
    }
}

/// Parquet has no seconds unit for timestamps: arrow-rs writes
/// `Timestamp(Second)` (e.g. `local_hour`) as a bare INT64 that other
/// readers (DuckDB, pandas) take for a count of milliseconds. Such columns
/// are written in milliseconds instead, which every reader understands.
fn parquet_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| is_seconds(f.data_type())) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(TimeUnit::Second, tz) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(TimeUnit::Millisecond, tz.clone())),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn is_seconds(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(TimeUnit::Second, _))
}

fn parquet_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    if Arc::ptr_eq(&batch.schema(), schema) || batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMillisecondArray, TimestampSecondArray};

    #[test]
    fn seconds_timestamps_are_written_as_milliseconds() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("h", DataType::Timestamp(TimeUnit::Second, None), false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampSecondArray::from(vec![1_771_063_200])),
                Arc::new(Int64Array::from(vec![7])),
            ],
        )
        .unwrap();
        let result = QueryResult {
            schema,
            batches: vec![batch],
        };
        let bytes = Format::Parquet.encode(&result).unwrap();
        let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::from(bytes),
            16,
        )
        .unwrap();
        let back = reader.next().unwrap().unwrap();
        let hours = back
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("milliseconds");
        assert_eq!(hours.value(0), 1_771_063_200_000);
    }
}
