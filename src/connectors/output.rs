//! The files one run of a destination writes: a file open per partition, a new file when one
//! reaches its target size (or after every batch), every finished file staged until the run
//! commits. Where the bytes go is the [`Store`]'s business: a staging folder for a local
//! folder, a multipart upload for S3. Every destination that writes files shares this, so
//! their layouts behave the same. The files are encoded on a pool of threads
//! ([`Encoders`]); what they hold and how they are cut does not depend on it.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::encoders::{Done, Encoders, Encoding, Written};
use super::layout::{Partitioner, TimePrefix, file_name};
use crate::codecs::{FileFormat, FileWriter};
use crate::node::NodeError;

/// Where finished files wait for the run to commit.
pub trait Store {
    type Sink: Write + Send + 'static;
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

struct OpenFile {
    encoding: Encoding,
    relative: String,
    records: u64,
    /// With a target size: the last write, whose size decides whether the file is full.
    last: Option<Written>,
}

/// A file on its way from its encoding thread to the store.
struct Closing {
    id: u64,
    relative: String,
    records: u64,
    /// Its size when it was closed, for [`FileSet::bytes_written`] until it is staged.
    bytes: u64,
}

pub struct FileSet<S: Store> {
    /// First, so that it is dropped first: its threads stop before the store goes.
    encoders: Encoders<S::Sink>,
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
    open: IndexMap<String, OpenFile>,
    /// Files closed, staged in this order (the order they were closed in) as their threads
    /// finish them.
    closing: VecDeque<Closing>,
    /// Files their threads finished before those closed earlier.
    finished: HashMap<u64, (S::Sink, u64)>,
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
            encoders: Encoders::new(),
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
            closing: VecDeque::new(),
            finished: HashMap::new(),
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
        let encoding = self.encoders.open(writer);
        self.open.insert(
            partition.to_string(),
            OpenFile {
                encoding,
                relative,
                records: 0,
                last: None,
            },
        );
        Ok(())
    }

    /// Queues the file's closing; [`FileSet::stage_closed`] stages it once encoded.
    fn close(&mut self, file: OpenFile) {
        let bytes = file.encoding.size();
        let id = self.encoders.close(file.encoding);
        self.closing.push_back(Closing {
            id,
            relative: file.relative,
            records: file.records,
            bytes,
        });
    }

    /// Stages the closed files their threads have finished, in the order they were closed;
    /// with `all`, waits until every closed file is staged. A thread's failure ends here.
    fn stage_closed(&mut self, all: bool) -> Result<(), NodeError> {
        loop {
            while let Some(done) = self.encoders.try_done() {
                self.take(done)?;
            }
            while let Some(head) = self.closing.front() {
                let Some((sink, bytes)) = self.finished.remove(&head.id) else {
                    break;
                };
                let file = self.closing.pop_front().expect("looked at above");
                let staged = self.store.stage(&file.relative, sink)?;
                self.staged_bytes += bytes;
                self.staged.push(StagedFile {
                    relative: file.relative,
                    records: file.records,
                    bytes,
                    staged,
                });
            }
            if !all || self.closing.is_empty() {
                return Ok(());
            }
            let done = self.encoders.next_done();
            self.take(done)?;
        }
    }

    fn take(&mut self, done: Done<S::Sink>) -> Result<(), NodeError> {
        match done {
            Done::Closed { id, sink, bytes } => {
                self.finished.insert(id, (sink, bytes));
                Ok(())
            }
            Done::Failed(e) => Err(e),
        }
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
            // A file that reached its target size with its last batch takes no more. Only
            // decided now, when the partition has more, so the partition's other files
            // go on being encoded meanwhile.
            if let Some(file) = self.open.get_mut(&partition)
                && let Some(last) = file.last.take()
            {
                last.wait();
                if self.target_bytes.is_some_and(|t| file.encoding.size() >= t) {
                    let file = self.open.shift_remove(&partition).expect("open");
                    self.close(file);
                }
            }
            if !self.open.contains_key(&partition) {
                self.open_file(&partition, &part)?;
            }
            let file = self.open.get_mut(&partition).expect("opened above");
            file.records += part.num_rows() as u64;
            let wait = self.target_bytes.is_some();
            file.last = self.encoders.write(&file.encoding, part, wait);
            if self.file_per_batch {
                let file = self.open.shift_remove(&partition).expect("open");
                self.close(file);
            }
        }
        self.stage_closed(false)
    }

    /// Closes every open file and stages it; the input has ended.
    pub fn finish(&mut self) -> Result<(), NodeError> {
        for (_, file) in std::mem::take(&mut self.open) {
            self.close(file);
        }
        self.stage_closed(true)
    }

    /// Stops encoding and hands back the store, to remove what it staged: nothing is
    /// written into it once this returns.
    pub fn into_store(self) -> S {
        let Self {
            encoders, store, ..
        } = self;
        drop(encoders);
        store
    }

    /// Bytes written so far, staged or not.
    pub fn bytes_written(&self) -> u64 {
        let open = self.open.values().map(|f| f.encoding.size());
        let closing = self.closing.iter().map(|f| f.bytes);
        self.staged_bytes + open.sum::<u64>() + closing.sum::<u64>()
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
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Mutex;

    /// Staged files: their names and bytes.
    type Files = Vec<(String, Vec<u8>)>;

    /// Keeps files in memory; a file whose name contains `fail_on` cannot be written.
    #[derive(Default)]
    struct Memory {
        files: Arc<Mutex<Files>>,
        fail_on: Option<String>,
    }

    struct Sink {
        bytes: Vec<u8>,
        fails: bool,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.fails {
                return Err(std::io::Error::other("the disk is full"));
            }
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Store for Memory {
        type Sink = Sink;
        type Staged = ();
        fn create(&mut self, relative: &str, _: FileFormat) -> Result<Sink, NodeError> {
            let fails = self.fail_on.as_ref().is_some_and(|f| relative.contains(f));
            Ok(Sink {
                bytes: Vec::new(),
                fails,
            })
        }
        fn stage(&mut self, relative: &str, sink: Sink) -> Result<(), NodeError> {
            let mut files = self.files.lock().unwrap();
            files.push((relative.to_string(), sink.bytes));
            Ok(())
        }
    }

    fn batches() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("stage", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("text", DataType::Utf8, true),
        ]));
        let batches = (0..40i64)
            .map(|b| {
                let rows = 0..1000i64;
                let stage: StringArray = rows
                    .clone()
                    .map(|r| Some(["a", "b", "c", "d", "e"][((r * 7 + b) % 5) as usize]))
                    .collect();
                let n: Int64Array = rows.clone().map(|r| Some(b * 1000 + r)).collect();
                let text: StringArray = rows
                    .map(|r| Some(format!("record {} of batch {b}", r * 31 % 977)))
                    .collect();
                let columns: Vec<arrow::array::ArrayRef> =
                    vec![Arc::new(stage), Arc::new(n), Arc::new(text)];
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect();
        (schema, batches)
    }

    fn write_all(
        format: FileFormat,
        target_bytes: Option<u64>,
        fail_on: Option<&str>,
    ) -> (Result<(), NodeError>, Files, Vec<u64>) {
        let (schema, batches) = batches();
        let store = Memory {
            fail_on: fail_on.map(str::to_string),
            ..Memory::default()
        };
        let files = store.files.clone();
        let layout = Layout {
            format,
            time_prefix: None,
            execution_id_folder: false,
            schema_version_folder: false,
            partition_columns: vec![0],
            keep_partition_fields: false,
            target_bytes,
            file_per_batch: false,
            all_strings: false,
        };
        let mut set = FileSet::new(store, layout, &schema, Utc::now(), "run");
        let result = (batches.iter().try_for_each(|b| set.write(b))).and_then(|()| set.finish());
        let records = set.staged.iter().map(|f| f.records).collect();
        drop(set);
        let files = std::mem::take(&mut *files.lock().unwrap());
        (result, files, records)
    }

    #[test]
    fn files_encoded_on_threads_hold_the_same_bytes_run_after_run() {
        for format in [FileFormat::Parquet, FileFormat::Jsonl] {
            let (result, first, records) = write_all(format, Some(64 << 10), None);
            result.unwrap();
            assert_eq!(records.iter().sum::<u64>(), 40_000);
            assert!(
                first.len() > 10,
                "files cut at their target size: {}",
                first.len()
            );
            for _ in 0..3 {
                let (result, again, _) = write_all(format, Some(64 << 10), None);
                result.unwrap();
                assert!(again == first, "{format:?}: the same files, byte for byte");
            }
            // Every file but a partition's last reached the target size (Parquet's size
            // counts pages before compression, so only text files are checked).
            if format == FileFormat::Parquet {
                continue;
            }
            for partition in ["stage=a/", "stage=e/"] {
                let sizes: Vec<usize> = (first.iter())
                    .filter(|(name, _)| name.starts_with(partition))
                    .map(|(_, bytes)| bytes.len())
                    .collect();
                assert!(sizes.len() > 1, "{sizes:?}");
                assert!(
                    sizes[..sizes.len() - 1].iter().all(|&s| s >= 64 << 10),
                    "{sizes:?}"
                );
            }
        }
    }

    #[test]
    fn a_file_that_cannot_be_written_fails_the_write_and_stages_nothing_of_it() {
        let (result, files, _) = write_all(FileFormat::Jsonl, None, Some("stage=c/"));
        let error = result.unwrap_err().to_string();
        assert!(error.contains("the disk is full"), "{error}");
        assert!(files.iter().all(|(name, _)| !name.starts_with("stage=c/")));
    }

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
