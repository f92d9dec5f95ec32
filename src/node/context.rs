//! What running nodes see of the engine: where to send batches, where rejected records
//! go, and the counters the progress panel reads.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::{NodeFigures, NodeMetrics, NodeState};
use super::{ErrorRecord, NodeError};

/// Counts batches sitting in channels across the whole run, and the most ever seen: the
/// figure that shows memory stays bounded whatever the input size.
#[derive(Debug, Default)]
pub struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    fn add(&self) {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn remove(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

/// A node's identity, counters and event channel, shared by its task and the engine.
#[derive(Clone)]
pub(crate) struct NodeHandle {
    pub id: Arc<str>,
    pub metrics: Arc<NodeMetrics>,
    /// Where the figures go when they change; the engine turns them into run events.
    pub reporter: Option<Reporter>,
}

/// How a node's figures reach whoever watches the run.
pub type Reporter = Arc<dyn Fn(&str, NodeFigures) + Send + Sync>;

impl NodeHandle {
    pub fn report(&self) {
        if let Some(reporter) = &self.reporter {
            reporter(&self.id, self.metrics.figures(&self.id));
        }
    }

    pub fn set_state(&self, state: NodeState) {
        self.metrics.set_state(state);
        self.report();
    }
}

/// The senders to every node that takes this node's output (fan-out).
pub(crate) struct Outputs {
    pub senders: Vec<mpsc::Sender<RecordBatch>>,
    pub in_flight: Arc<InFlight>,
    pub cancel: CancellationToken,
}

impl Outputs {
    pub async fn send(&self, batch: &RecordBatch) -> Result<(), NodeError> {
        for tx in &self.senders {
            self.in_flight.add();
            let sent = tokio::select! {
                _ = self.cancel.cancelled() => Err(NodeError::Cancelled),
                r = tx.send(batch.clone()) => r.map_err(|_| NodeError::Cancelled),
            };
            if sent.is_err() {
                self.in_flight.remove();
                return sent;
            }
        }
        Ok(())
    }

    pub fn send_blocking(&self, batch: &RecordBatch) -> Result<(), NodeError> {
        for tx in &self.senders {
            if self.cancel.is_cancelled() {
                return Err(NodeError::Cancelled);
            }
            self.in_flight.add();
            if tx.blocking_send(batch.clone()).is_err() {
                self.in_flight.remove();
                return Err(NodeError::Cancelled);
            }
        }
        Ok(())
    }
}

/// Whether a source should go on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    More,
    /// The preview has its sample: stop reading.
    Enough,
}

/// A source's way out: batches go downstream, bad records to the error output.
pub struct SourceOutput {
    pub(crate) node: NodeHandle,
    pub(crate) outputs: Outputs,
    pub(crate) errors: ErrorSink,
    pub(crate) limit: Option<u64>,
    pub(crate) sent: u64,
    pub(crate) batch_rows: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) watermark: Arc<Mutex<Option<serde_json::Value>>>,
}

impl SourceOutput {
    /// Sets a figure of the node's own in the run record (`nodes[].notes`), such as how
    /// much of a service's daily allowance is used.
    pub fn set_note(&self, name: &str, value: u64) {
        self.node
            .metrics
            .notes
            .lock()
            .unwrap()
            .insert(name.to_string(), value);
    }

    /// Where the next run should start, for a source that pulls incrementally. Saved only
    /// once the run's output is committed; until then the last run's watermark stands.
    pub fn advance_watermark(&self, mark: serde_json::Value) {
        *self.watermark.lock().unwrap() = Some(mark);
    }

    /// Sends a batch on, cut to the preview's sample size.
    pub async fn send(&mut self, batch: RecordBatch) -> Result<Demand, NodeError> {
        let (batch, demand) = self.take(batch);
        if batch.num_rows() > 0 {
            self.outputs.send(&batch).await?;
            self.count(&batch);
        }
        Ok(demand)
    }

    /// [`send`](Self::send) for sources that run on a blocking thread.
    pub fn send_blocking(&mut self, batch: RecordBatch) -> Result<Demand, NodeError> {
        let (batch, demand) = self.take(batch);
        if batch.num_rows() > 0 {
            self.outputs.send_blocking(&batch)?;
            self.count(&batch);
        }
        Ok(demand)
    }

    fn take(&self, batch: RecordBatch) -> (RecordBatch, Demand) {
        match self.limit {
            Some(limit) => {
                let left = limit.saturating_sub(self.sent) as usize;
                if batch.num_rows() >= left {
                    (batch.slice(0, left), Demand::Enough)
                } else {
                    (batch, Demand::More)
                }
            }
            None => (batch, Demand::More),
        }
    }

    fn count(&mut self, batch: &RecordBatch) {
        self.sent += batch.num_rows() as u64;
        self.node.metrics.add_out(batch);
        self.node.report();
    }

    /// Counts bytes read from the source (files, HTTP bodies).
    pub fn add_bytes(&self, bytes: u64) {
        self.node
            .metrics
            .bytes_in
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// A record that could not be read: it goes to the error output and is counted.
    pub fn reject(&self, record: ErrorRecord) -> Result<(), NodeError> {
        self.node.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        self.errors.write(record)
    }

    pub fn is_cancelled(&self) -> bool {
        self.outputs.cancel.is_cancelled()
    }

    /// Rows per batch to aim for.
    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Input bytes after which a batch is cut short of its rows.
    pub fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// How many more records the preview wants; `None` for a full run.
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.sent))
    }

    pub fn node_id(&self) -> &str {
        &self.node.id
    }
}

/// What a transform reports besides its output batch.
#[derive(Debug, Default)]
pub struct TransformContext {
    pub(crate) node: String,
    /// Records removed on purpose (filter, dedupe, a validation rule that drops).
    pub dropped: u64,
    /// Records that could not be processed; they go to the error output.
    pub rejected: Vec<ErrorRecord>,
    /// Named counters shown with the node's figures, e.g. `divide_by_zero`.
    pub notes: BTreeMap<&'static str, u64>,
}

impl TransformContext {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            ..Self::default()
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn note(&mut self, name: &'static str, count: u64) {
        if count > 0 {
            *self.notes.entry(name).or_default() += count;
        }
    }

    /// What was reported since last taken, leaving the context empty for the next batch
    /// (the records set aside already name the node).
    pub(crate) fn take_reports(&mut self) -> Self {
        Self {
            node: String::new(),
            dropped: std::mem::take(&mut self.dropped),
            rejected: std::mem::take(&mut self.rejected),
            notes: std::mem::take(&mut self.notes),
        }
    }

    pub fn reject(&mut self, reason: String, record: String) {
        self.rejected.push(ErrorRecord {
            node: self.node.clone(),
            file: None,
            line: None,
            reason,
            record,
        });
    }
}

/// The run's error output: one JSON line per rejected record, in the run's folder. A
/// preview keeps them in memory instead.
#[derive(Clone)]
pub struct ErrorSink {
    inner: Arc<Mutex<ErrorSinkInner>>,
    count: Arc<AtomicU64>,
}

enum ErrorSinkInner {
    File {
        path: PathBuf,
        writer: Option<BufWriter<File>>,
    },
    Memory(Vec<ErrorRecord>),
}

/// A preview keeps this many rejected records to show; it counts them all.
const MEMORY_ERRORS: usize = 1000;

impl ErrorSink {
    pub fn to_file(path: PathBuf) -> Self {
        Self::new(ErrorSinkInner::File { path, writer: None })
    }

    pub fn in_memory() -> Self {
        Self::new(ErrorSinkInner::Memory(Vec::new()))
    }

    fn new(inner: ErrorSinkInner) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
            count: Arc::default(),
        }
    }

    pub fn write(&self, record: ErrorRecord) -> Result<(), NodeError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *inner {
            ErrorSinkInner::Memory(list) => {
                if list.len() < MEMORY_ERRORS {
                    list.push(record);
                }
                Ok(())
            }
            ErrorSinkInner::File { path, writer } => {
                let io = |e| {
                    NodeError::io(
                        format!("cannot write the error output {}", path.display()),
                        e,
                    )
                };
                if writer.is_none() {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(io)?;
                    }
                    *writer = Some(BufWriter::new(File::create(&*path).map_err(io)?));
                }
                let w = writer.as_mut().expect("opened above");
                serde_json::to_writer(&mut *w, &record).map_err(|e| io(e.into()))?;
                w.write_all(b"\n").map_err(io)
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Flushes the file; returns its path when anything was written.
    pub fn close(&self) -> std::io::Result<Option<PathBuf>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *inner {
            ErrorSinkInner::File { path, writer } => match writer.take() {
                Some(mut w) => {
                    w.flush()?;
                    Ok(Some(path.clone()))
                }
                None => Ok(None),
            },
            ErrorSinkInner::Memory(_) => Ok(None),
        }
    }

    /// The records kept in memory (previews).
    pub fn records(&self) -> Vec<ErrorRecord> {
        match &*self.inner.lock().unwrap_or_else(|e| e.into_inner()) {
            ErrorSinkInner::Memory(list) => list.clone(),
            ErrorSinkInner::File { .. } => Vec::new(),
        }
    }
}
