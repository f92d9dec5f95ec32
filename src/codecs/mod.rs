//! File formats: what sources decode (CSV, JSON lines, JSON arrays, Parquet) and what
//! destinations encode, below every connector that reads or writes records as files or bodies.

mod flat_json;
pub mod read;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::NodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    /// Apache Parquet, zstd-compressed when written.
    Parquet,
}

impl FileFormat {
    /// The format a file name implies.
    pub fn from_path(path: &str) -> Option<FileFormat> {
        let ext = path.rsplit('.').next()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" | "tsv" => FileFormat::Csv,
            "jsonl" | "ndjson" => FileFormat::Jsonl,
            "json" => FileFormat::Json,
            "parquet" | "pq" => FileFormat::Parquet,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::Csv => "text/csv",
            FileFormat::Jsonl => "application/x-ndjson",
            FileFormat::Json => "application/json",
            FileFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Counts what passes through, so destinations know file sizes as they write. The count is
/// shared because some writers do not lend out their sink.
pub struct Counting<W> {
    inner: W,
    bytes: Arc<AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes batches into one file of a format.
pub struct FileWriter<W: Write + Send> {
    kind: Kind<W>,
    bytes: Arc<AtomicU64>,
}

enum Kind<W: Write + Send> {
    Csv(Box<arrow::csv::Writer<Counting<W>>>),
    Jsonl(arrow::json::LineDelimitedWriter<Counting<W>>),
    Json(arrow::json::ArrayWriter<Counting<W>>),
    Parquet(Box<ArrowWriter<Counting<W>>>),
}

/// The most a Parquet file keeps in memory before writing a row group. Every open partition
/// holds one, so this decides much of a partitioned run's memory: at 2 MiB the reference
/// benchmark (seven partitions) peaks about 40 MB lower than at 4 MiB, with no loss of speed
/// measured; a row group still holds thousands of records.
const ROW_GROUP_BYTES: usize = 2 << 20;

/// The most a Parquet data page holds before it is compressed and cut (Parquet's default is
/// 1 MiB). A page is built in a buffer that grows from empty, and buffers past ~128 KiB are
/// ones the allocator hands back to the kernel and faults in again page by page: on the
/// reference benchmark (10M records, 2 cores) 64 KiB pages halve the page faults (313k →
/// 148k), cut system time by a fifth (1.81 → 1.40 s) and the wall time by 6% (10.75 →
/// 10.08 s, medians of 3), with the same output size (±0.5%).
const PAGE_BYTES: usize = 64 << 10;

/// Whether most of a column's first values differ from each other. A dictionary pays off
/// for fields with few distinct values (stages, countries, probabilities) and only costs
/// time for nearly unique ones (ids, e-mail addresses, descriptions, amounts), which Parquet
/// would give up on after a megabyte of dictionary anyway. Numbers are compared by their
/// bytes.
fn mostly_distinct(column: &dyn Array) -> bool {
    let sample = column.len().min(2048);
    let distinct = if let Some(text) = column.as_string_opt::<i32>() {
        let values: HashSet<&str> = text.iter().take(sample).flatten().collect();
        values.len()
    } else if let Some(width) = column.data_type().primitive_width() {
        let data = column.to_data();
        let bytes = &data.buffers()[0].as_slice()[data.offset() * width..];
        let values: HashSet<&[u8]> = (0..sample)
            .filter(|&i| column.is_valid(i))
            .map(|i| &bytes[i * width..(i + 1) * width])
            .collect();
        values.len()
    } else {
        return false;
    };
    distinct * 2 > sample
}

impl<W: Write + Send> FileWriter<W> {
    /// `first` is the first batch the file will hold: Parquet chooses its encodings from it.
    pub fn new(
        format: FileFormat,
        sink: W,
        schema: &SchemaRef,
        first: &RecordBatch,
    ) -> Result<Self, NodeError> {
        let bytes = Arc::new(AtomicU64::new(0));
        let sink = Counting {
            inner: sink,
            bytes: bytes.clone(),
        };
        let kind = match format {
            FileFormat::Csv => Kind::Csv(Box::new(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(sink),
            )),
            FileFormat::Jsonl => Kind::Jsonl(arrow::json::LineDelimitedWriter::new(sink)),
            FileFormat::Json => Kind::Json(arrow::json::ArrayWriter::new(sink)),
            FileFormat::Parquet => {
                let mut props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    // A row group is buffered until it is written: bounding it by bytes
                    // as well as rows keeps wide records and many open partitions from
                    // filling memory.
                    .set_max_row_group_row_count(Some(128 * 1024))
                    .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                    .set_data_page_size_limit(PAGE_BYTES);
                for (field, column) in first.schema().fields().iter().zip(first.columns()) {
                    if mostly_distinct(column) {
                        props = props.set_column_dictionary_enabled(
                            ColumnPath::from(field.name().as_str()),
                            false,
                        );
                    }
                }
                let props = props.build();
                Kind::Parquet(Box::new(ArrowWriter::try_new(
                    sink,
                    schema.clone(),
                    Some(props),
                )?))
            }
        };
        Ok(Self { kind, bytes })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        match &mut self.kind {
            Kind::Csv(w) => w.write(&nested_as_json_text(batch)?)?,
            Kind::Jsonl(w) => w.write(batch)?,
            Kind::Json(w) => w.write(batch)?,
            Kind::Parquet(w) => w.write(batch)?,
        }
        Ok(())
    }

    /// Bytes the file will have so far, counting what a Parquet writer still buffers.
    pub fn size(&self) -> u64 {
        let written = self.bytes.load(Ordering::Relaxed);
        match &self.kind {
            Kind::Parquet(w) => written + w.in_progress_size() as u64,
            _ => written,
        }
    }

    /// Writes the format's ending and returns the sink and the file's size.
    pub fn close(self) -> Result<(W, u64), NodeError> {
        let counting = match self.kind {
            Kind::Csv(w) => w.into_inner(),
            Kind::Jsonl(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Kind::Json(mut w) => {
                w.finish()?;
                w.into_inner()
            }
            Kind::Parquet(w) => w.into_inner()?,
        };
        Ok((counting.inner, self.bytes.load(Ordering::Relaxed)))
    }
}
/// Whether a CSV cell cannot hold a value of this type as it is: objects and lists.
pub fn is_nested(kind: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType::*;
    matches!(
        kind,
        Struct(_) | List(_) | LargeList(_) | FixedSizeList(..) | Map(..) | ListView(_)
    )
}

/// `batch` with its objects and lists as JSON text (`{"email":"a@x.com"}`, `["x","y"]`),
/// which is how a CSV cell holds them; other columns as they are.
fn nested_as_json_text(batch: &RecordBatch) -> Result<RecordBatch, NodeError> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !is_nested(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let one = RecordBatch::try_new(
            Arc::new(Schema::new(vec![field.as_ref().clone()])),
            vec![column.clone()],
        )?;
        let mut text = Vec::new();
        {
            let mut writer = arrow::json::ArrayWriter::new(&mut text);
            writer.write(&one)?;
            writer.finish()?;
        }
        let rows: Vec<serde_json::Value> = if text.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(&text).map_err(|e| {
                NodeError::msg(format!("cannot write `{}` as JSON: {e}", field.name()))
            })?
        };
        let cells: StringArray = rows
            .iter()
            .map(|row| row.get(field.name()).map(|v| v.to_string()))
            .collect();
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(cells));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
