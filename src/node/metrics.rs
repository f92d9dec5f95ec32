//! Live figures of a running node, read by the CLI's progress bar and the app's Run panel.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Idle,
    Running,
    Done,
    Failed,
    Canceled,
}

impl NodeState {
    /// The state as the canvas and the Run tab say it.
    pub fn in_words(self) -> &'static str {
        match self {
            NodeState::Idle => "waiting",
            NodeState::Running => "running",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::Canceled => "stopped",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => NodeState::Running,
            2 => NodeState::Done,
            3 => NodeState::Failed,
            4 => NodeState::Canceled,
            _ => NodeState::Idle,
        }
    }
}

/// A node's figures at one moment; the run record holds the final ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    pub node: String,
    pub state: NodeState,
    pub records_in: u64,
    pub records_out: u64,
    /// Removed on purpose: filtered out, deduplicated, dropped by a validation rule.
    pub records_dropped: u64,
    /// Could not be processed; see the run's error output.
    pub records_rejected: u64,
    pub batches_in: u64,
    pub batches_out: u64,
    /// Read from the source's files or API.
    pub bytes_in: u64,
    /// Written by a destination.
    pub bytes_out: u64,
    /// Counters particular to the node type, such as `divide_by_zero`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The counters a node's task updates as it goes.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    state: AtomicU8,
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
    pub batches_in: AtomicU64,
    pub batches_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub notes: Mutex<BTreeMap<String, u64>>,
    pub error: Mutex<Option<String>>,
}

impl NodeMetrics {
    pub fn set_state(&self, state: NodeState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> NodeState {
        NodeState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn add_in(&self, batch: &RecordBatch) {
        self.add_in_rows(batch.num_rows());
    }

    /// A batch of `rows` records came in.
    pub fn add_in_rows(&self, rows: usize) {
        self.records_in.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_out(&self, batch: &RecordBatch) {
        self.add_out_rows(batch.num_rows());
    }

    /// A batch of `rows` records went out.
    pub fn add_out_rows(&self, rows: usize) {
        self.records_out.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self, node: &str) -> NodeFigures {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeFigures {
            node: node.to_string(),
            state: self.state(),
            records_in: get(&self.records_in),
            records_out: get(&self.records_out),
            records_dropped: get(&self.dropped),
            records_rejected: get(&self.rejected),
            batches_in: get(&self.batches_in),
            batches_out: get(&self.batches_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            notes: self.notes.lock().map(|n| n.clone()).unwrap_or_default(),
            error: self.error.lock().ok().and_then(|e| e.clone()),
        }
    }
}
