//! The run record: what a run did, modelled on AppFlow's execution record. It is printed
//! by `tributary run --json`, shown in the app's Run panel and kept in the run's folder.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::Cost;
use crate::node::NodeFigures;
use crate::node::{OutputLocation, Registration};
use crate::paths::Dirs;
use crate::state::{RunRow, StateStore};

/// An instant as the history keeps it: UTC, fixed width, so text order is time order.
pub fn history_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Indexes a finished run in the history.
pub(super) fn index(dirs: &Dirs, record: &RunRecord) {
    if let Err(e) = StateStore::open(dirs).and_then(|s| s.index_run(&record.row())) {
        tracing::warn!("run {} is not in the run history: {e}", record.execution_id);
    }
}

/// Indexes the run records of the data folder that the history lacks: runs from before it
/// was kept, or whose indexing failed. Says how many it added.
pub fn index_missing(dirs: &Dirs) -> Result<usize, String> {
    let state = StateStore::open(dirs)?;
    let known = state.indexed_runs()?;
    let Ok(folders) = std::fs::read_dir(dirs.data.join("runs")) else {
        return Ok(0);
    };
    let mut added = 0;
    for folder in folders.flatten() {
        let id = folder.file_name().to_string_lossy().into_owned();
        if known.contains(&id) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(folder.path().join("run.json")) else {
            continue;
        };
        match serde_json::from_str::<RunRecord>(&text) {
            Ok(record) => {
                state.index_run(&record.row())?;
                added += 1;
            }
            Err(e) => tracing::warn!(
                "{} is not a run record Tributary can read: {e}",
                folder.path().join("run.json").display()
            ),
        }
    }
    Ok(added)
}

/// Runs recorded before the trigger was.
fn manual() -> String {
    "manual".into()
}

/// What [`prune`] removed and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub removed: usize,
    /// The bytes of the run folders removed.
    pub bytes: u64,
    pub kept: usize,
}

/// Removes from the history, with their folders, the runs (of `flow`, or of every flow)
/// started more than `keep_days` ago and those beyond the newest `keep_runs` of their flow.
/// Webhook bodies older than `keep_days` go too.
pub fn prune(
    dirs: &Dirs,
    keep_days: Option<u32>,
    keep_runs: Option<usize>,
    flow: Option<&str>,
) -> Result<Pruned, String> {
    let state = StateStore::open(dirs)?;
    let runs = state.runs(&crate::state::RunFilter {
        flow: flow.map(str::to_string),
        ..Default::default()
    })?;
    let cutoff = keep_days.map(|days| Utc::now() - chrono::Duration::days(days.into()));
    let before = cutoff.map(history_instant);
    // Newest first: the first `keep_runs` of each flow stay.
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let (mut removed, mut bytes) = (0, 0);
    for run in &runs {
        let rank = seen.entry(run.flow.as_str()).or_default();
        *rank += 1;
        let too_old = before.as_ref().is_some_and(|b| run.started_at < *b);
        let too_many = keep_runs.is_some_and(|n| *rank > n);
        if !(too_old || too_many) {
            continue;
        }
        let folder = dirs.run_dir(&run.execution_id);
        // Only a real folder of the runs folder is removed, never what a link points to.
        if std::fs::symlink_metadata(&folder).is_ok_and(|m| m.is_dir()) {
            bytes += crate::paths::size_of(&folder);
            std::fs::remove_dir_all(&folder)
                .map_err(|e| format!("cannot remove {}: {e}", folder.display()))?;
        }
        state.forget_run(&run.execution_id)?;
        removed += 1;
    }
    if let (Some(cutoff), Ok(bodies)) = (cutoff, std::fs::read_dir(dirs.data.join("hooks"))) {
        let cutoff = std::time::SystemTime::from(cutoff);
        for body in bodies.flatten() {
            let old = body
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| at < cutoff);
            if old && body.file_type().is_ok_and(|t| t.is_file()) {
                bytes += body.metadata().map_or(0, |m| m.len());
                let _ = std::fs::remove_file(body.path());
            }
        }
    }
    Ok(Pruned {
        removed,
        bytes,
        kept: runs.len() - removed,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Successful,
    Error,
    Canceled,
    /// The service did not start the run its trigger asked for (the flow was still
    /// running, or the service was down at the time); nothing was read.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub execution_id: String,
    pub flow: String,
    pub status: RunStatus,
    /// What started the run: `manual` (the app, `tributary run`), or `schedule` or
    /// `event`, with its cause after a colon (`schedule: due 2026-12-02T09:00:00+01:00`).
    #[serde(default = "manual")]
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    /// Records that left the sources.
    pub records_processed: u64,
    /// Records in committed output, summed over destinations.
    pub records_written: u64,
    /// Records removed on purpose by transforms.
    pub records_dropped: u64,
    /// Records that could not be read or processed; they are in `error_output`.
    pub records_rejected: u64,
    pub bytes_processed: u64,
    pub bytes_written: u64,
    /// The most batches that were waiting between nodes at one time.
    pub peak_batches_in_flight: usize,
    pub nodes: Vec<NodeFigures>,
    /// Files and objects the run produced; empty unless the run succeeded.
    pub outputs: Vec<OutputLocation>,
    /// Catalog tables the output was registered in, with what the run changed there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registered: Vec<Registration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// What each incremental source read: from where the last run left off to where this
    /// one did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    pub cost: Cost,
}

/// An incremental source's window in one run. `to` is saved for the next run only when the
/// run succeeded; it is absent when nothing new was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub node: String,
    pub from: Option<serde_json::Value>,
    pub to: Option<serde_json::Value>,
}

/// Why a run failed, tied to the node where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub message: String,
    /// The failure may pass by itself (the network, a service's 5xx or 429, a timeout,
    /// another run of the flow still going): the service tries such runs again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

impl RunRecord {
    /// The run as the history indexes it.
    pub fn row(&self) -> RunRow {
        RunRow {
            execution_id: self.execution_id.clone(),
            flow: self.flow.clone(),
            status: format!("{:?}", self.status),
            trigger: self.trigger.clone(),
            started_at: history_instant(self.started_at),
            duration_seconds: self.duration_seconds,
            records_processed: self.records_processed,
            records_written: self.records_written,
            records_rejected: self.records_rejected,
            bytes_written: self.bytes_written,
            cost_usd: self.cost.total_usd,
            error: self.error.as_ref().map(|e| match &e.node {
                Some(node) => format!("in node `{node}`: {}", e.message),
                None => e.message.clone(),
            }),
        }
    }

    /// The plain one-paragraph summary `tributary run` prints.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:?}: flow \"{}\", run {} in {:.2}s\n  {} records read, {} written, {} dropped, {} rejected; {} read, {} written\n  AppFlow-equivalent cost ${:.4}",
            self.status,
            self.flow,
            self.execution_id,
            self.duration_seconds,
            self.records_processed,
            self.records_written,
            self.records_dropped,
            self.records_rejected,
            human_bytes(self.bytes_processed),
            human_bytes(self.bytes_written),
            self.cost.total_usd,
        );
        if let Some(p) = &self.cost.projected_monthly {
            s += &format!(" (about ${:.2} a month on this schedule)", p.total_usd);
        }
        for o in &self.outputs {
            s += &format!("\n  wrote {} ({} records)", o.location, o.records);
        }
        for r in &self.registered {
            s += &format!("\n  registered in {}: {}", r.catalog, r.table);
            if !r.changes.is_empty() {
                s += &format!(" ({})", r.changes.join("; "));
            }
        }
        if let Some(path) = &self.error_output {
            s += &format!("\n  rejected records: {path}");
        }
        if let Some(e) = &self.error {
            match &e.node {
                Some(node) => s += &format!("\n  error in node `{node}`: {}", e.message),
                None => s += &format!("\n  error: {}", e.message),
            }
        }
        s
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
