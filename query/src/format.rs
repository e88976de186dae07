//! Query results in the formats analysts ask for: JSON (an array of row
//! objects), CSV with a header, Arrow IPC stream, Parquet.

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

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
                let mut writer = ArrowWriter::try_new(&mut out, result.schema.clone(), None)
                    .map_err(|e| internal(&e))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| internal(&e))?;
                }
                writer.close().map_err(|e| internal(&e))?;
            }
        }
        Ok(out)
    }
}
