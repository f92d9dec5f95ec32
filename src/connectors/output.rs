//! The files one run of a destination writes: a file open per partition, a new file when one
//! reaches its target size (or after every batch), every finished file staged until the run
//! commits. Where the bytes go is the [`Store`]'s business: a staging folder for a local
//! folder, a multipart upload for S3. Every destination that writes files shares this, so
//! their layouts behave the same.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::layout::{Partitioner, TimePrefix, file_name};
use crate::codecs::{FileFormat, FileWriter};
use crate::node::NodeError;

/// Where finished files wait for the run to commit.
pub trait Store {
    type Sink: Write + Send;
    /// What the store needs to publish a staged file at commit.
    type Staged: Send;
    /// Starts the file that will be published at `relative` ('/'-separated, below the
    /// destination).
    fn create(&mut self, relative: &str, format: FileFormat) -> Result<Self::Sink, NodeError>;
    /// Takes a complete file; it stays invisible until the run commits.
    fn stage(&mut self, relative: &str, sink: Self::Sink) -> Result<Self::Staged, NodeError>;
}

/// How a run's files are laid out and cut, as the destination's settings say.
pub struct Layout {
    pub format: FileFormat,
    /// Folders by the run's start time.
    pub time_prefix: Option<TimePrefix>,
    pub execution_id_folder: bool,
    /// A folder named after the records' schema, so files of different shapes never mix.
    pub schema_version_folder: bool,
    /// Column indices of the input to partition by.
    pub partition_columns: Vec<usize>,
    pub keep_partition_fields: bool,
    /// Start a new file when one reaches this size.
    pub target_bytes: Option<u64>,
    /// Close the file after every batch: a file per batch.
    pub file_per_batch: bool,
    /// Write every field as text (AppFlow's `preserveSourceDataTyping: false`).
    pub all_strings: bool,
}

/// The files of one destination as a catalog describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub format: FileFormat,
    /// The fields inside the files.
    pub columns: Vec<FieldRef>,
    /// The fields whose values name the folders (`name=value`), in folder order.
    pub partition_fields: Vec<FieldRef>,
}

/// A finished file, staged.
pub struct StagedFile<T> {
    pub relative: String,
    pub records: u64,
    pub bytes: u64,
    pub staged: T,
}

struct OpenFile<W: Write + Send> {
    writer: FileWriter<W>,
    relative: String,
    records: u64,
}

pub struct FileSet<S: Store> {
    pub store: S,
    format: FileFormat,
    run_folder: String,
    execution_id: String,
    partitioner: Partitioner,
    target_bytes: Option<u64>,
    file_per_batch: bool,
    /// The all-text schema batches are cast to, when the layout asks for text.
    text_schema: Option<SchemaRef>,
    /// Open files by partition folder.
    open: IndexMap<String, OpenFile<S::Sink>>,
    pub staged: Vec<StagedFile<S::Staged>>,
    seq: u32,
    staged_bytes: u64,
}

impl<S: Store> FileSet<S> {
    pub fn new(
        store: S,
        layout: Layout,
        input: &SchemaRef,
        started: DateTime<Utc>,
        execution_id: &str,
    ) -> Self {
        let text_schema = layout.all_strings.then(|| {
            let fields: Vec<Field> = input
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect();
            Arc::new(Schema::new(fields))
        });
        let data_input = text_schema.as_ref().unwrap_or(input);
        let mut run_folder = super::layout::run_folder(
            layout.time_prefix,
            layout.execution_id_folder,
            started,
            execution_id,
        );
        if layout.schema_version_folder {
            if !run_folder.is_empty() {
                run_folder.push('/');
            }
            run_folder.push_str(&schema_version(data_input));
        }
        Self {
            store,
            format: layout.format,
            run_folder,
            execution_id: execution_id.to_string(),
            partitioner: Partitioner::new(
                data_input,
                layout.partition_columns,
                layout.keep_partition_fields,
            ),
            target_bytes: layout.target_bytes,
            file_per_batch: layout.file_per_batch,
            text_schema,
            open: IndexMap::new(),
            staged: Vec::new(),
            seq: 0,
            staged_bytes: 0,
        }
    }

    /// The folder below the destination that this run's files go to.
    pub fn run_folder(&self) -> &str {
        &self.run_folder
    }

    /// What a catalog needs to know of the files: their format, the fields inside them
    /// and the fields that name their folders.
    pub fn shape(&self) -> TableShape {
        let partition_fields = self.partitioner.fields().to_vec();
        // A partition field kept inside the files is still read from the folder's name:
        // a catalog lists a name once.
        let columns = (self.partitioner.data_schema().fields().iter())
            .filter(|f| !partition_fields.iter().any(|p| p.name() == f.name()))
            .cloned()
            .collect();
        TableShape {
            format: self.format,
            columns,
            partition_fields,
        }
    }

    fn open_file(&mut self, partition: &str, first: &RecordBatch) -> Result<(), NodeError> {
        let name = file_name(&self.execution_id, self.seq, self.format.extension());
        self.seq += 1;
        let relative = [self.run_folder.as_str(), partition, name.as_str()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let sink = self.store.create(&relative, self.format)?;
        let writer = FileWriter::new(self.format, sink, self.partitioner.data_schema(), first)?;
        self.open.insert(
            partition.to_string(),
            OpenFile {
                writer,
                relative,
                records: 0,
            },
        );
        Ok(())
    }

    fn close(&mut self, file: OpenFile<S::Sink>) -> Result<(), NodeError> {
        let (sink, bytes) = file.writer.close()?;
        let staged = self.store.stage(&file.relative, sink)?;
        self.staged_bytes += bytes;
        self.staged.push(StagedFile {
            relative: file.relative,
            records: file.records,
            bytes,
            staged,
        });
        Ok(())
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        let text;
        let batch = match &self.text_schema {
            Some(schema) => {
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| cast(c, &DataType::Utf8))
                    .collect::<Result<Vec<_>, _>>()?;
                text = RecordBatch::try_new(schema.clone(), columns)?;
                &text
            }
            None => batch,
        };
        for (partition, part) in self.partitioner.split(batch)? {
            if !self.open.contains_key(&partition) {
                self.open_file(&partition, &part)?;
            }
            let file = self.open.get_mut(&partition).expect("opened above");
            file.writer.write(&part)?;
            file.records += part.num_rows() as u64;
            let full =
                self.file_per_batch || self.target_bytes.is_some_and(|t| file.writer.size() >= t);
            if full {
                let file = self.open.shift_remove(&partition).expect("open");
                self.close(file)?;
            }
        }
        Ok(())
    }

    /// Closes every open file; the input has ended.
    pub fn finish(&mut self) -> Result<(), NodeError> {
        for (_, file) in std::mem::take(&mut self.open) {
            self.close(file)?;
        }
        Ok(())
    }

    /// Bytes written so far, staged or not.
    pub fn bytes_written(&self) -> u64 {
        self.staged_bytes + self.open.values().map(|f| f.writer.size()).sum::<u64>()
    }
}

/// A short, stable name for a schema: the same fields and types give the same folder, any
/// change a new one (AppFlow's schema version in the path).
fn schema_version(schema: &Schema) -> String {
    let mut hash = Sha256::new();
    for field in schema.fields() {
        hash.update(field.name().as_bytes());
        hash.update([0]);
        hash.update(field.data_type().to_string().as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("schema-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions_follow_the_fields() {
        let a = Schema::new(vec![Field::new("Id", DataType::Utf8, true)]);
        let b = Schema::new(vec![Field::new("Id", DataType::Int64, true)]);
        assert_eq!(schema_version(&a), schema_version(&a.clone()));
        assert_ne!(schema_version(&a), schema_version(&b));
        assert!(schema_version(&a).starts_with("schema-"));
        assert_eq!(schema_version(&a).len(), "schema-".len() + 8);
    }
}
