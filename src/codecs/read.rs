//! Reading records from CSV, JSON lines, JSON arrays and Parquet into Arrow batches, for
//! every source whose input is a file or a body: local files, S3 objects, REST answers and
//! Salesforce's query results.
//!
//! A malformed record (bad JSON line, wrong column count, a value that does not read as
//! its field's type) goes to the run's error output with its file, line and reason, and
//! the run goes on; `fail_on_first_error` stops the run at the first one instead.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, RecordBatch, StringArray, StringBuilder, new_null_array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use indexmap::IndexMap;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FileFormat;
use super::flat_json::FlatJson;
use crate::node::{ConfigProblem, Demand, ErrorRecord, NodeError, SourceOutput};
use crate::types::{FieldType, describe};

/// Records read to work out field types.
pub(crate) const INFER_RECORDS: usize = 1000;

/// A field that appears only after the records the fields were learned from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewFields {
    /// The record goes to the error output, with the field named: nothing is dropped
    /// unseen. Add the field to `schema` to read it.
    #[default]
    Reject,
    /// The run stops at the first such record, naming the field, and publishes nothing.
    Fail,
    /// The fields are learned from every record of every file, before the run: a field
    /// first seen late is read like the others (null in the records without it). The
    /// input is read twice. JSON files only.
    Add,
    /// The field is left out and the rest of the record read.
    Ignore,
}

impl NewFields {
    pub fn is_default(&self) -> bool {
        *self == NewFields::default()
    }

    /// Whether decoding refuses a record with a field the schema lacks.
    pub fn strict(self) -> bool {
        self != NewFields::Ignore
    }

    /// Whether such a record stops the run.
    pub fn stops(self) -> bool {
        self == NewFields::Fail
    }

    /// The problem of `add` on a source that reads its input once (an API, a bucket).
    pub fn problem_unless_once(self) -> Option<ConfigProblem> {
        (self == NewFields::Add).then(|| {
            ConfigProblem::new(
                "/new_fields",
                "`add` learns the fields from the whole input before the run, which only the File source does; use `reject`, `fail` or `ignore`, or name the late fields in `schema`",
            )
        })
    }
}

/// How the reason for a record holding a field the schema lacks begins.
const NEW_FIELD: &str = "the record has a field `";

/// Whether a rejection's reason is a field the schema lacks.
pub(crate) fn is_new_field(reason: &str) -> bool {
    reason.starts_with(NEW_FIELD)
}

pub(crate) fn comma() -> char {
    ','
}

pub(crate) fn is_comma(c: &char) -> bool {
    *c == ','
}

/// The fields read from the data, with the types the flow sets instead; every field may be
/// missing from a record.
pub(crate) fn with_overrides(
    inferred: Schema,
    overrides: &IndexMap<String, FieldType>,
    format: FileFormat,
    origin: &str,
) -> Result<SchemaRef, Vec<ConfigProblem>> {
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let mut problems = Vec::new();
    for (name, t) in overrides {
        match fields.iter_mut().find(|f| f.name() == name) {
            Some(f) => *f = Field::new(name, t.arrow(), true),
            None if format == FileFormat::Parquet => problems.push(ConfigProblem::new(
                format!("/schema/{name}"),
                format!("{origin} has no field `{name}`"),
            )),
            // A field that the first records never set can still come later.
            None => fields.push(Field::new(name, t.arrow(), true)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Arc::new(Schema::new(fields)))
}

pub(crate) fn infer_schema(
    format: FileFormat,
    path: &Path,
    delimiter: char,
) -> Result<Schema, String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    match format {
        FileFormat::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| format!("not a readable Parquet file: {e}"))?;
            Ok(builder.schema().as_ref().clone())
        }
        FileFormat::Jsonl | FileFormat::Json => {
            // From the first records; what does not parse is passed over here, and set
            // aside by the run.
            let mut values = Vec::new();
            for_each_record(format, path, &mut |v| {
                values.push(v);
                values.len() < INFER_RECORDS
            })?;
            infer_json(&values)
        }
        FileFormat::Csv => {
            // Rows with the wrong number of fields would stop the inference; copy the good
            // ones out first.
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter as u8)
                .flexible(true)
                .from_reader(file);
            let headers = reader
                .headers()
                .map_err(|e| format!("cannot read the header line: {e}"))?
                .clone();
            // Two columns of one name would reach the output as one, the second's values
            // lost.
            for (i, name) in headers.iter().enumerate() {
                if let Some(j) = headers.iter().take(i).position(|n| n == name) {
                    return Err(format!(
                        "columns {} and {} of the header line are both named `{name}`; rename one in the file",
                        j + 1,
                        i + 1
                    ));
                }
            }
            let mut sample = csv::WriterBuilder::new()
                .delimiter(delimiter as u8)
                .from_writer(Vec::new());
            sample.write_record(&headers).map_err(|e| e.to_string())?;
            for record in reader
                .records()
                .filter_map(Result::ok)
                .filter(|r| r.len() == headers.len())
                .take(INFER_RECORDS)
            {
                sample.write_record(&record).map_err(|e| e.to_string())?;
            }
            let sample = sample.into_inner().map_err(|e| e.to_string())?;
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .with_delimiter(delimiter as u8)
                .infer_schema(sample.as_slice(), None)
                .map_err(|e| e.to_string())?;
            // Timestamps read as UTC microseconds, whatever precision the text had.
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Timestamp(..) => {
                        Field::new(f.name(), FieldType::Timestamp.arrow(), true)
                    }
                    _ => f.as_ref().clone(),
                })
                .collect();
            Ok(Schema::new(fields))
        }
    }
}

/// The fields of every record of every file (JSON lines or JSON arrays), learned as the
/// records stream by: the files are read, not held. Kept per file version, so checking the
/// flow again (the app does at every edit) does not read them again.
pub(crate) fn every_records_fields(
    format: FileFormat,
    files: &[PathBuf],
) -> Result<Schema, String> {
    type Versions = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;
    static LEARNED: std::sync::Mutex<Vec<(FileFormat, Versions, Schema)>> =
        std::sync::Mutex::new(Vec::new());
    let versions: Versions = files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            (
                f.clone(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    let learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, schema)) = learned
        .iter()
        .find(|(f, v, _)| *f == format && *v == versions)
    {
        return Ok(schema.clone());
    }
    drop(learned);
    let (records, incoming) = std::sync::mpsc::sync_channel::<serde_json::Value>(1024);
    let schema = std::thread::scope(|scope| {
        let reading = scope.spawn(move || -> Result<(), String> {
            for file in files {
                for_each_record(format, file, &mut |v| records.send(v).is_ok())
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            Ok(())
        });
        let mut values = incoming.iter().peekable();
        let schema = if values.peek().is_none() {
            // No record: the fields are the ones `schema` declares, as for an empty CSV.
            Ok(Schema::empty())
        } else {
            arrow::json::reader::infer_json_schema_from_iterator(values.map(Ok))
                .map_err(|e| format!("cannot work out the fields: {e}"))
        };
        // Whatever was left unread ends the reading thread's sends.
        drop(incoming);
        reading
            .join()
            .map_err(|_| "reading the files stopped unexpectedly".to_string())??;
        schema
    })?;
    let mut learned = LEARNED.lock().unwrap_or_else(|e| e.into_inner());
    if learned.len() >= 16 {
        learned.remove(0);
    }
    learned.push((format, versions, schema.clone()));
    Ok(schema)
}

/// Calls `each` with every JSON object of a JSON lines file or a JSON array, until it
/// says stop; lines that do not parse, and lines longer than a record may be, are passed
/// over (the run sets them aside).
fn for_each_record(
    format: FileFormat,
    path: &Path,
    each: &mut dyn FnMut(serde_json::Value) -> bool,
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut input = BufReader::new(file);
    if format == FileFormat::Json {
        let read = read_json_array(input, &mut |v| {
            Ok(match v.is_object() && !each(v) {
                true => Demand::Enough,
                false => Demand::More,
            })
        });
        return match read {
            Ok(()) | Err(ArrayReadError::Stopped) => Ok(()),
            Err(ArrayReadError::Json(e)) => Err(format!("not a JSON array of records: {e}")),
            Err(ArrayReadError::Node(e)) => Err(e.to_string()),
        };
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_RECORD_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        if n as u64 > MAX_RECORD_BYTES && line.last() != Some(&b'\n') {
            input
                .skip_until(b'\n')
                .map_err(|e| format!("cannot read: {e}"))?;
            continue;
        }
        if let Ok(value @ serde_json::Value::Object(_)) =
            serde_json::from_slice::<serde_json::Value>(line.trim_ascii())
            && !each(value)
        {
            return Ok(());
        }
    }
}

pub(crate) fn infer_json(values: &[serde_json::Value]) -> Result<Schema, String> {
    if values.is_empty() {
        // An empty input is zero records, as an empty CSV is; the fields are the ones the
        // source's `schema` declares.
        return Ok(Schema::empty());
    }
    arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| format!("cannot work out the fields: {e}"))
}

/// How a run reads files, whatever they come from.
pub(crate) struct ReadSettings {
    pub format: FileFormat,
    /// The planned schema; every batch is made to fit it.
    pub schema: SchemaRef,
    pub delimiter: u8,
    pub fail_on_first_error: bool,
    /// A JSON record with a field the schema lacks is refused ([`NewFields::strict`]).
    pub strict: bool,
    /// ... and stops the run ([`NewFields::Fail`]).
    pub stop_on_new_field: bool,
}

/// Reads one file into the run; `name` is what messages and error records call it.
pub(crate) fn read_file(
    settings: &ReadSettings,
    out: &mut SourceOutput,
    path: &Path,
    name: &str,
) -> Result<Demand, NodeError> {
    Reader {
        run: settings,
        out,
        path,
        name,
    }
    .read()
}

/// Reads one file.
struct Reader<'a> {
    run: &'a ReadSettings,
    out: &'a mut SourceOutput,
    path: &'a Path,
    name: &'a str,
}

/// Counts bytes as they are read, for the run's "bytes processed".
/// The count is shared so it can be read while a parser holds the reader.
struct CountingRead<R> {
    inner: R,
    counter: Rc<Cell<u64>>,
    /// Where the record being parsed started, for parsers that bound a record's size.
    record_start: Option<Rc<Cell<u64>>>,
}

/// The longest record a file may hold. In a CSV file a quote that is opened and never
/// closed makes the rest of the file one record: past this size reading stops and says
/// where. A longer JSON line is set aside as a rejected record.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// The reading error of a record longer than [`MAX_RECORD_BYTES`].
#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a record longer than {} MiB", MAX_RECORD_BYTES >> 20)
    }
}

impl std::error::Error for RecordTooLong {}

impl<R> CountingRead<R> {
    fn bytes(&self) -> u64 {
        self.counter.get()
    }
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(start) = &self.record_start
            && self.counter.get().saturating_sub(start.get()) > MAX_RECORD_BYTES
        {
            return Err(std::io::Error::other(RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        self.counter.set(self.counter.get() + n as u64);
        Ok(n)
    }
}

enum ArrayReadError {
    Json(serde_json::Error),
    Node(NodeError),
    Stopped,
}

/// Streams the elements of a JSON array to `each`, never holding the whole array.
fn read_json_array<R: Read>(
    reader: R,
    each: &mut dyn FnMut(serde_json::Value) -> Result<Demand, NodeError>,
) -> Result<(), ArrayReadError> {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    struct Elements<'a> {
        each: &'a mut dyn FnMut(serde_json::Value) -> Result<Demand, NodeError>,
        failure: &'a mut Option<ArrayReadError>,
    }
    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(v) = seq.next_element::<serde_json::Value>()? {
                match (self.each)(v) {
                    Ok(Demand::More) => {}
                    Ok(Demand::Enough) => {
                        *self.failure = Some(ArrayReadError::Stopped);
                        return Err(A::Error::custom("stopped"));
                    }
                    Err(e) => {
                        *self.failure = Some(ArrayReadError::Node(e));
                        return Err(A::Error::custom("stopped"));
                    }
                }
            }
            Ok(())
        }
    }
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = de.deserialize_seq(Elements {
        each,
        failure: &mut failure,
    });
    match (failure, result) {
        (Some(f), _) => Err(f),
        (None, Err(e)) => Err(ArrayReadError::Json(e)),
        (None, Ok(())) => Ok(()),
    }
}

impl Reader<'_> {
    fn name(&self) -> String {
        self.name.to_string()
    }

    fn open(&self) -> Result<CountingRead<File>, NodeError> {
        let file = File::open(self.path)
            .map_err(|e| NodeError::io(format!("cannot open {}", self.name()), e))?;
        Ok(CountingRead {
            inner: file,
            counter: Rc::default(),
            record_start: None,
        })
    }

    fn read(&mut self) -> Result<Demand, NodeError> {
        match self.run.format {
            FileFormat::Jsonl => self.read_jsonl(),
            FileFormat::Json => self.read_json(),
            FileFormat::Csv => self.read_csv(),
            FileFormat::Parquet => self.read_parquet(),
        }
    }

    /// Sets a bad record aside, or fails the run when the flow asks for that.
    fn reject(
        &mut self,
        line: Option<u64>,
        reason: String,
        record: String,
    ) -> Result<(), NodeError> {
        let record = ErrorRecord {
            node: self.out.node_id().to_string(),
            file: Some(self.name()),
            line,
            reason,
            record,
        };
        if self.run.fail_on_first_error
            || (self.run.stop_on_new_field && is_new_field(&record.reason))
        {
            return Err(NodeError::Rejected(record));
        }
        self.out.reject(record)
    }

    fn rows_wanted(&self) -> usize {
        self.out
            .remaining()
            .map_or(self.out.batch_rows(), |r| {
                (r as usize).min(self.out.batch_rows())
            })
            .max(1)
    }

    fn send(
        &mut self,
        batch: RecordBatch,
        read: &mut u64,
        counted: u64,
    ) -> Result<Demand, NodeError> {
        self.out.add_bytes(counted - *read);
        *read = counted;
        self.out.send_blocking(batch)
    }

    fn json_decoder(&self, rows: usize) -> Result<arrow::json::reader::Decoder, NodeError> {
        json_decoder(&self.run.schema, rows, self.run.strict)
    }

    /// Why one record does not decode, or `None` when it does.
    fn json_problem(&self, record: &[u8]) -> Result<Option<String>, NodeError> {
        match serde_json::from_slice::<serde_json::Value>(record) {
            Err(e) => {
                return Ok(Some(format!(
                    "not valid JSON at column {}: {}",
                    e.column(),
                    crate::serde_words::strip_position(&e.to_string())
                )));
            }
            Ok(v) if !v.is_object() => {
                return Ok(Some(format!(
                    "a line must hold one JSON object (a record), not {}",
                    json_kind(&v)
                )));
            }
            Ok(_) => {}
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(record)
            && let Some(reason) = fraction_in_whole_number(&self.run.schema, &v)
        {
            return Ok(Some(reason));
        }
        let mut decoder = self.json_decoder(1)?;
        Ok(decoder
            .decode(record)
            .and_then(|_| decoder.flush())
            .err()
            .map(|e| arrow_message(&e)))
    }

    /// JSON lines are cut into chunks of whole lines here and decoded on other threads,
    /// several at once, then sent on in file order. A bounded number of chunks is in flight,
    /// so memory stays flat whatever the file size.
    fn read_jsonl(&mut self) -> Result<Demand, NodeError> {
        let workers = decode_threads();
        let schema = self.run.schema.clone();
        let strict = self.run.strict;
        let flat = FlatJson::new(&schema, strict);
        std::thread::scope(|scope| {
            let (jobs, job_queue) = std::sync::mpsc::sync_channel::<Chunk>(workers);
            let job_queue = std::sync::Arc::new(std::sync::Mutex::new(job_queue));
            let (done, decoded) = std::sync::mpsc::channel::<(Chunk, Option<RecordBatch>)>();
            for _ in 0..workers {
                let (queue, done, schema) = (job_queue.clone(), done.clone(), schema.clone());
                let flat = flat.as_ref();
                scope.spawn(move || {
                    loop {
                        let job = queue.lock().expect("a decode thread panicked").recv();
                        let Ok(chunk) = job else { break };
                        let rows = chunk.lines.len();
                        let batch = flat
                            .and_then(|flat| flat.decode(&chunk.text, rows))
                            .or_else(|| decode_json(&schema, &chunk.text, rows, strict));
                        if done.send((chunk, batch)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done);
            // Dropping `jobs` on the way out lets the decode threads end.
            self.read_jsonl_chunks(jobs, &decoded, workers)
        })
    }

    fn read_jsonl_chunks(
        &mut self,
        jobs: std::sync::mpsc::SyncSender<Chunk>,
        decoded: &std::sync::mpsc::Receiver<(Chunk, Option<RecordBatch>)>,
        workers: usize,
    ) -> Result<Demand, NodeError> {
        let mut input = BufReader::with_capacity(1 << 20, self.open()?);
        let (mut line_no, mut read) = (0u64, 0u64);
        let mut line = Vec::new();
        let mut chunk = Chunk::default();
        let (mut sent, mut next) = (0u64, 0u64);
        let mut ready = std::collections::BTreeMap::new();
        let mut spare: Vec<Chunk> = Vec::new();
        loop {
            line.clear();
            let io = |e| NodeError::io(format!("cannot read {}", self.name()), e);
            // Almost every line is whole in the reader's buffer: it goes from there into the
            // chunk in one copy. The others are read into `line` first.
            let buffered = input.fill_buf().map_err(io)?;
            let n = match memchr::memchr(b'\n', buffered) {
                Some(end) => {
                    line_no += 1;
                    chunk.push(line_no, &buffered[..end]);
                    input.consume(end + 1);
                    end + 1
                }
                None => {
                    // A line is read up to the longest record allowed, never further into
                    // memory.
                    let n = (&mut input)
                        .take(MAX_RECORD_BYTES + 1)
                        .read_until(b'\n', &mut line)
                        .map_err(io)?;
                    if n as u64 > MAX_RECORD_BYTES && line.last() != Some(&b'\n') {
                        line_no += 1;
                        input.skip_until(b'\n').map_err(io)?;
                        let start = String::from_utf8_lossy(&line[..200]).into_owned();
                        self.reject(
                            Some(line_no),
                            format!(
                                "the record is longer than {} MiB; it starts: {start}…",
                                MAX_RECORD_BYTES >> 20
                            ),
                            String::new(),
                        )?;
                        continue;
                    }
                    if n > 0 {
                        line_no += 1;
                        chunk.push(line_no, &line);
                    }
                    n
                }
            };
            let full = chunk.lines.len() >= self.rows_wanted()
                || chunk.text.len() >= self.out.batch_bytes();
            if full || (n == 0 && !chunk.lines.is_empty()) {
                chunk.seq = next;
                chunk.bytes = input.get_ref().bytes();
                next += 1;
                let fresh = spare.pop().unwrap_or_default();
                let _ = jobs.send(std::mem::replace(&mut chunk, fresh));
            }
            // Take in decoded chunks: to keep the number in flight bounded, and all of them
            // at the end of the file.
            while next - sent > workers as u64 || (n == 0 && sent < next) {
                let Ok((chunk, batch)) = decoded.recv() else {
                    return Err(NodeError::msg("a decode thread ended early"));
                };
                ready.insert(chunk.seq, (chunk, batch));
                while let Some((mut chunk, batch)) = ready.remove(&sent) {
                    sent += 1;
                    let batch = match batch {
                        Some(batch) => batch,
                        None => self.decode_good_lines(&chunk.text, &chunk.lines)?,
                    };
                    if self.send(batch, &mut read, chunk.bytes)? == Demand::Enough {
                        return Ok(Demand::Enough);
                    }
                    // Its buffers hold the next chunk: no growing from empty each time.
                    chunk.text.clear();
                    chunk.lines.clear();
                    spare.push(chunk);
                }
            }
            if n == 0 {
                let counted = input.get_ref().bytes();
                self.out.add_bytes(counted - read);
                return Ok(Demand::More);
            }
        }
    }

    /// The slow path for a chunk with bad lines: find them, set them aside, decode the rest.
    fn decode_good_lines(
        &mut self,
        chunk: &[u8],
        lines: &[(u64, usize, usize)],
    ) -> Result<RecordBatch, NodeError> {
        let mut good = Vec::with_capacity(chunk.len());
        let mut rows = 0;
        for &(line_no, start, end) in lines {
            let record = &chunk[start..end];
            match self.json_problem(record)? {
                Some(reason) => self.reject(
                    Some(line_no),
                    reason,
                    String::from_utf8_lossy(record.trim_ascii()).into_owned(),
                )?,
                None => {
                    good.extend_from_slice(record);
                    rows += 1;
                }
            }
        }
        decode_json(&self.run.schema, &good, rows, self.run.strict).ok_or_else(|| {
            NodeError::msg(format!(
                "{}: records that decode one by one failed to decode together",
                self.name()
            ))
        })
    }

    fn read_json(&mut self) -> Result<Demand, NodeError> {
        let mut input = BufReader::with_capacity(1 << 20, self.open()?);
        let mut values: Vec<serde_json::Value> = Vec::new();
        let (mut index, mut read) = (0u64, 0u64);
        let mut flush = |this: &mut Self,
                         values: &mut Vec<serde_json::Value>,
                         index: u64,
                         counted: u64|
         -> Result<Demand, NodeError> {
            let first = index - values.len() as u64;
            let schema = this.run.schema.clone();
            let strict = this.run.strict;
            let batch = values_to_batch(&schema, values, strict, &mut |k, reason, record| {
                this.reject(
                    None,
                    format!("element {} of the array: {reason}", first + k as u64 + 1),
                    record,
                )
            })?;
            values.clear();
            this.send(batch, &mut read, counted)
        };
        let wanted = self.rows_wanted();
        let counter = input.get_ref().counter.clone();
        let result = read_json_array(&mut input, &mut |v| {
            index += 1;
            values.push(v);
            if values.len() >= wanted {
                return flush(self, &mut values, index, counter.get());
            }
            Ok(Demand::More)
        });
        match result {
            Ok(()) => {}
            Err(ArrayReadError::Stopped) => return Ok(Demand::Enough),
            Err(ArrayReadError::Node(e)) => return Err(e),
            Err(ArrayReadError::Json(e)) => {
                return Err(NodeError::msg(format!(
                    "{}: not a JSON array of records (line {}, column {}): {e}",
                    self.name(),
                    e.line(),
                    e.column()
                )));
            }
        }
        let counted = input.get_ref().bytes();
        if !values.is_empty() {
            return flush(self, &mut values, index, counted);
        }
        Ok(Demand::More)
    }

    fn read_csv(&mut self) -> Result<Demand, NodeError> {
        let mut input = self.open()?;
        let record_start = Rc::new(Cell::new(0));
        input.record_start = Some(record_start.clone());
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(self.run.delimiter)
            .flexible(true)
            .from_reader(input);
        let headers = csv
            .headers()
            .map_err(|e| {
                NodeError::msg(format!("{}: cannot read the header line: {e}", self.name()))
            })?
            .clone();
        // Where each schema field is in this file's rows; files of a glob may order
        // columns differently or lack some.
        let positions: Vec<Option<usize>> = self
            .run
            .schema
            .fields()
            .iter()
            .map(|f| headers.iter().position(|h| h == f.name()))
            .collect();
        let mut columns: Vec<StringBuilder> =
            positions.iter().map(|_| StringBuilder::new()).collect();
        let mut line_numbers: Vec<u64> = Vec::new();
        let mut batch_bytes = 0;
        let mut record = csv::StringRecord::new();
        let mut read = 0u64;
        loop {
            record_start.set(csv.position().byte());
            let starts_on = csv.position().line();
            let more = match csv.read_record(&mut record) {
                Ok(more) => more,
                Err(e)
                    if matches!(e.kind(), csv::ErrorKind::Io(io)
                        if io.get_ref().is_some_and(|inner| inner.is::<RecordTooLong>())) =>
                {
                    // Nothing after it can be read as records: the run stops here.
                    return Err(NodeError::msg(format!(
                        "{}: the record starting on line {starts_on} runs past {} MiB; most likely a quote (\") opened there is never closed",
                        self.name(),
                        MAX_RECORD_BYTES >> 20
                    )));
                }
                Err(e) => {
                    let line = e.position().map(|p| p.line());
                    let reason = match e.kind() {
                        csv::ErrorKind::Utf8 { .. } => {
                            "the line is not valid UTF-8 text".to_string()
                        }
                        _ => e.to_string(),
                    };
                    self.reject(line, reason, String::new())?;
                    continue;
                }
            };
            if more {
                let line = record.position().map_or(0, |p| p.line());
                if record.len() != headers.len() {
                    let raw = record.iter().collect::<Vec<_>>().join(",");
                    self.reject(
                        Some(line),
                        format!("expected {} fields, found {}", headers.len(), record.len()),
                        raw,
                    )?;
                } else {
                    for (column, pos) in columns.iter_mut().zip(&positions) {
                        column.append_option(pos.map(|p| &record[p]));
                    }
                    line_numbers.push(line);
                    batch_bytes += record.as_slice().len();
                }
            }
            let full =
                line_numbers.len() >= self.rows_wanted() || batch_bytes >= self.out.batch_bytes();
            if full || (!more && !line_numbers.is_empty()) {
                batch_bytes = 0;
                let texts: Vec<StringArray> = columns.iter_mut().map(|c| c.finish()).collect();
                let batch = self.typed_batch(&texts, &line_numbers)?;
                line_numbers.clear();
                let counted = csv.get_ref().bytes();
                if self.send(batch, &mut read, counted)? == Demand::Enough {
                    return Ok(Demand::Enough);
                }
            }
            if !more {
                let counted = csv.get_ref().bytes();
                self.out.add_bytes(counted - read);
                return Ok(Demand::More);
            }
        }
    }

    /// Converts CSV text columns to the schema's types; rows with a value that does not
    /// convert go to the error output.
    fn typed_batch(
        &mut self,
        texts: &[StringArray],
        lines: &[u64],
    ) -> Result<RecordBatch, NodeError> {
        let mut bad: Vec<Option<String>> = vec![None; lines.len()];
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(texts.len());
        for (text, field) in texts.iter().zip(self.run.schema.fields()) {
            if field.data_type() == &DataType::Utf8 {
                arrays.push(Arc::new(text.clone()));
                continue;
            }
            // An empty CSV value is a missing one for every type but text.
            let text: StringArray = text
                .iter()
                .map(|v| v.filter(|s| !s.trim().is_empty()))
                .collect();
            let array: ArrayRef = Arc::new(text.clone());
            let type_name = describe(field.data_type());
            arrays.push(crate::records::convert(
                &array,
                field.data_type(),
                &mut bad,
                |row| {
                    format!(
                        "field `{}`: `{}` is not a valid {type_name}",
                        field.name(),
                        text.value(row)
                    )
                },
            )?);
        }
        let batch = RecordBatch::try_new(self.run.schema.clone(), arrays)?;
        if bad.iter().all(Option::is_none) {
            return Ok(batch);
        }
        let mut keep = BooleanBuilder::with_capacity(bad.len());
        for (row, reason) in bad.into_iter().enumerate() {
            keep.append_value(reason.is_none());
            if let Some(reason) = reason {
                let raw: Vec<&str> = texts
                    .iter()
                    .map(|t| if t.is_valid(row) { t.value(row) } else { "" })
                    .collect();
                self.reject(Some(lines[row]), reason, raw.join(","))?;
            }
        }
        Ok(filter_record_batch(&batch, &keep.finish())?)
    }

    fn read_parquet(&mut self) -> Result<Demand, NodeError> {
        let input = self.open()?;
        let size = input.inner.metadata().map(|m| m.len()).unwrap_or(0);
        let not_parquet = |e: parquet::errors::ParquetError| {
            NodeError::msg(format!("{}: not a readable Parquet file: {e}", self.name()))
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(input.inner).map_err(not_parquet)?;
        let rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
        let mut builder = builder.with_batch_size(self.out.batch_rows());
        if let Some(left) = self.out.remaining() {
            builder = builder.with_limit(left as usize);
        }
        let reader = builder.build().map_err(not_parquet)?;
        for batch in reader {
            let batch = batch.map_err(|e| NodeError::msg(format!("{}: {e}", self.name())))?;
            // Bytes in proportion to the rows read: Parquet is read by column chunks.
            self.out.add_bytes(size * batch.num_rows() as u64 / rows);
            let batch = conform(batch, &self.run.schema)?;
            if self.out.send_blocking(batch)? == Demand::Enough {
                return Ok(Demand::Enough);
            }
        }
        Ok(Demand::More)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Null => "null",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Arrow's message without its error-kind prefix, which means nothing to a user.
fn arrow_message(e: &arrow::error::ArrowError) -> String {
    let text = e.to_string();
    // arrow-json's strict mode: "column 'email' missing from schema".
    if let Some(rest) = text.split("column '").nth(1)
        && let Some(field) = rest.strip_suffix("' missing from schema")
    {
        return format!(
            "{NEW_FIELD}{field}` that the source's fields lack (they were learned from the first {INFER_RECORDS} records): add `{field}` to the source's `schema` setting to read it, or set `new_fields` to `add` to learn the fields from every record, or to `ignore` to leave it out"
        );
    }
    // arrow-json's decimals: "\"1234\" does not fit in Decimal128(18, 2)".
    if let Some((value, kind)) = text.split_once(" does not fit in Decimal128(")
        && let Some((precision, scale)) = kind.trim_end_matches(')').split_once(", ")
        && let (Ok(precision), Ok(scale)) = (precision.parse::<u32>(), scale.parse::<u32>())
    {
        let value = value.rsplit(": ").next().unwrap_or(value).trim_matches('"');
        return format!(
            "`{value}` is too large for decimal({precision},{scale}), which holds {} digits before the point",
            precision - scale
        );
    }
    for prefix in [
        "Json error: ",
        "Parser error: ",
        "Cast error: ",
        "Invalid argument error: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}

/// A batch in the planned schema: columns by name, converted, missing ones null.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, NodeError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Whole JSON lines on their way to a decode thread and back.
#[derive(Default)]
struct Chunk {
    /// Where the chunk is in the file, counted in chunks.
    seq: u64,
    /// The lines, each ended by a newline.
    text: Vec<u8>,
    /// (line number, start, end) of each line in `text`.
    lines: Vec<(u64, usize, usize)>,
    /// Bytes of the file read when the chunk was complete.
    bytes: u64,
}

impl Chunk {
    /// Adds a line, without the spaces around it; a blank line adds nothing.
    fn push(&mut self, line_no: u64, line: &[u8]) {
        let text = line.trim_ascii();
        if !text.is_empty() {
            let start = self.text.len();
            self.text.extend_from_slice(text);
            self.text.push(b'\n');
            self.lines.push((line_no, start, self.text.len()));
        }
    }
}

/// Threads that decode JSON lines: one a core, but at most eight. Decoding is a third of a
/// typical run's work, so eight take it off the critical path up to ~24 cores; each holds
/// a chunk of lines (2 MiB) and its batch, so more would only add memory.
fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

fn json_decoder(
    schema: &SchemaRef,
    rows: usize,
    strict: bool,
) -> Result<arrow::json::reader::Decoder, NodeError> {
    Ok(arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.max(1))
        .with_coerce_primitive(true)
        .with_strict_mode(strict)
        .build_decoder()?)
}

/// Records as JSON values into one batch of `schema`. Values that do not fit (a text where a
/// number belongs) go to `reject` with their index, reason and text; the others are kept.
pub(crate) fn values_to_batch(
    schema: &SchemaRef,
    values: &mut Vec<serde_json::Value>,
    strict: bool,
    reject: &mut dyn FnMut(usize, String, String) -> Result<(), NodeError>,
) -> Result<RecordBatch, NodeError> {
    let whole = values
        .iter()
        .all(|v| fraction_in_whole_number(schema, v).is_none());
    let mut decoder = json_decoder(schema, values.len(), strict)?;
    if whole && let Ok(batch) = decoder.serialize(values).and_then(|_| decoder.flush()) {
        values.clear();
        return Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())));
    }
    // The slow path: find the values that do not fit, one by one.
    let mut good = Vec::with_capacity(values.len());
    for (k, v) in values.drain(..).enumerate() {
        if let Some(reason) = fraction_in_whole_number(schema, &v) {
            reject(k, reason, v.to_string())?;
            continue;
        }
        let mut one = json_decoder(schema, 1, strict)?;
        match one
            .serialize(std::slice::from_ref(&v))
            .and_then(|_| one.flush())
        {
            Ok(_) => good.push(v),
            Err(e) => reject(k, arrow_message(&e), v.to_string())?,
        }
    }
    let mut decoder = json_decoder(schema, good.len(), strict)?;
    decoder.serialize(&good)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// Why a record cannot go into `schema` without losing a fraction: a whole-number field
/// (learned from the first records, or declared) holding 3.7. arrow-json would write 3;
/// such a record is refused instead, as CSV refuses it, with the way out in the reason.
fn fraction_in_whole_number(schema: &Schema, record: &serde_json::Value) -> Option<String> {
    let object = record.as_object()?;
    schema.fields().iter().find_map(|field| {
        if !field.data_type().is_integer() {
            return None;
        }
        let number = object.get(field.name())?.as_number()?;
        if number.is_i64() || number.is_u64() {
            return None;
        }
        let value = number.as_f64()?;
        (value.fract() != 0.0).then(|| {
            format!(
                "`{}` is {number}, but the field holds whole numbers; declare it as `number` or `decimal` in the source's schema to keep the fraction",
                field.name()
            )
        })
    })
}

/// Whether a chunk of JSON lines may hold a fraction in a whole-number field; when it
/// cannot (no whole-number field, or no `.`/`e` in the text), no record is parsed twice.
fn may_lose_fractions(schema: &Schema, text: &[u8]) -> bool {
    schema.fields().iter().any(|f| f.data_type().is_integer())
        && text.iter().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// Decodes newline-separated JSON records; `None` when any of them is bad.
fn decode_json(schema: &SchemaRef, text: &[u8], rows: usize, strict: bool) -> Option<RecordBatch> {
    if may_lose_fractions(schema, text)
        && text.split(|b| *b == b'\n').any(|line| {
            serde_json::from_slice::<serde_json::Value>(line)
                .is_ok_and(|v| fraction_in_whole_number(schema, &v).is_some())
        })
    {
        return None;
    }
    let mut decoder = json_decoder(schema, rows, strict).ok()?;
    let decoded = decoder.decode(text).and_then(|_| decoder.flush()).ok()?;
    Some(decoded.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}
