//! The runner: turns a [`Plan`] into tokio tasks joined by bounded channels of Arrow
//! batches, runs them, and reports progress and a run record.
//!
//! Memory stays bounded whatever the input size: a node can only get ahead of the next one
//! by `channel_capacity` batches, and transforms in a row share one task (see [`chains`]),
//! so a long flow holds no more batches than a short one. Destinations stage their output
//! and make it visible only when every node of the run succeeded, so output is either
//! complete or absent.

mod progress;
mod record;

pub use crate::node::{
    Demand, ErrorSink, InFlight, NodeFigures, NodeMetrics, NodeState, SourceOutput,
    TransformContext,
};
pub use progress::RunEvent;
pub use record::{
    Pruned, RunError, RunRecord, RunStatus, Window, history_instant, human_bytes, index_missing,
    prune,
};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{and, filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cost::{self, Rates};
use crate::flow::Plan;
use crate::node::context::{NodeHandle, Outputs, Reporter};
use crate::node::{
    BuildContext, Destination, ErrorRecord, NodeError, OutputLocation, Partition, Published,
    Registration, Runtime, Transform,
};
use crate::paths::Dirs;
use crate::state::{RunLock, StateStore};

/// How a run is carried out and who watches it.
#[derive(Clone)]
pub struct RunOptions {
    pub dirs: Dirs,
    /// Cancel this to stop the run; every task stops at its next batch.
    pub cancel: CancellationToken,
    pub events: Option<mpsc::UnboundedSender<RunEvent>>,
    /// Batches that may wait between two nodes. Two keep every node busy (one to work on,
    /// one ready) at a third of the memory four took, with no loss of speed measured.
    pub channel_capacity: usize,
    /// Rows per batch that sources aim for.
    pub batch_rows: usize,
    /// Bytes of input per batch that sources stop at, whatever the rows: wide records make
    /// smaller batches, so what waits between nodes stays bounded in bytes.
    pub batch_bytes: usize,
    pub rates: Rates,
    /// Read everything, not just what is new since the last run (`run --full`). The
    /// watermark reached is saved all the same.
    pub full: bool,
    /// What started the run, as its record says it (see [`RunRecord::trigger`]).
    pub trigger: String,
    /// One part of a partitioned run: it reads its part of the sources and keeps its
    /// output staged for `tributary commit` ([`commit_partitions`]).
    pub partition: Option<PartitionRun>,
    /// Batches a chain of transforms works on at once, when each of its transforms works
    /// on one batch alone (see [`run_lanes`]).
    pub chain_lanes: usize,
}

/// A run that is one part of a partitioned run.
#[derive(Debug, Clone)]
pub struct PartitionRun {
    pub part: Partition,
    /// Names the partitioned run all its parts belong to.
    pub run_id: String,
}

impl RunOptions {
    pub fn new(dirs: Dirs) -> Self {
        Self {
            dirs,
            cancel: CancellationToken::new(),
            events: None,
            channel_capacity: 2,
            batch_rows: 8192,
            batch_bytes: 2 << 20,
            rates: Rates::default(),
            full: false,
            trigger: "manual".into(),
            partition: None,
            chain_lanes: chain_lanes(),
        }
    }
}

/// One lane for a chain of transforms per four cores: the transforms are about a tenth of
/// a run's work (README, "Throughput round two"), so a single lane holds a run back only
/// past eight or so cores, and on fewer the lanes would only take cores from decoding and
/// encoding.
fn chain_lanes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 4).max(1))
}

/// Runs the whole flow.
pub async fn run(plan: &Plan, opts: RunOptions) -> RunRecord {
    let execution_id = uuid::Uuid::now_v7().to_string();
    let errors = ErrorSink::to_file(opts.dirs.run_dir(&execution_id).join("errors.jsonl"));
    let started = Utc::now();
    let outcome = execute(plan, &opts, &execution_id, Mode::Run, errors.clone()).await;
    record_run(plan, &opts, execution_id, started, outcome, errors)
}

/// The record of a run that failed before it could start: a service the flow reads could
/// not be reached, or refused, while the run learnt its fields. It is a failed run (kept
/// with the others, exit 1), not an invalid flow.
pub fn failed_to_start(
    flow: &crate::flow::Flow,
    base_dir: &std::path::Path,
    error: RunError,
    opts: RunOptions,
) -> RunRecord {
    let outcome = Outcome::failed(error.node.as_deref(), error.message, &[]);
    let outcome = match error.transient {
        true => outcome.transient(),
        false => outcome,
    };
    not_started(flow, base_dir, outcome, opts)
}

/// The record of a run the service did not start, and why (`reason`): the flow was still
/// running, or the service was down when it was due. It reads nothing and costs nothing,
/// but the history shows that the trigger fired.
pub fn skipped(
    flow: &crate::flow::Flow,
    base_dir: &std::path::Path,
    reason: String,
    opts: RunOptions,
) -> RunRecord {
    let outcome = Outcome {
        status: RunStatus::Skipped,
        ..Outcome::failed(None, reason, &[])
    };
    not_started(flow, base_dir, outcome, opts)
}

/// The record of a run cancelled while it learnt its fields from the services it reads.
pub fn canceled_before_start(
    flow: &crate::flow::Flow,
    base_dir: &std::path::Path,
    opts: RunOptions,
) -> RunRecord {
    let outcome = Outcome {
        status: RunStatus::Canceled,
        error: None,
        ..Outcome::failed(None, String::new(), &[])
    };
    not_started(flow, base_dir, outcome, opts)
}

/// The record of a run that read nothing: it ended with `outcome` before its nodes ran.
fn not_started(
    flow: &crate::flow::Flow,
    base_dir: &std::path::Path,
    outcome: Outcome,
    opts: RunOptions,
) -> RunRecord {
    let plan = Plan {
        flow_name: flow.name.clone(),
        trigger: flow.trigger.clone(),
        error_threshold: flow
            .error_threshold
            .unwrap_or(crate::flow::validate::DEFAULT_ERROR_THRESHOLD),
        context: crate::node::PlanContext {
            base_dir: base_dir.to_path_buf(),
            dirs: opts.dirs.clone(),
            discovery: Default::default(),
        },
        nodes: Vec::new(),
    };
    record_run(
        &plan,
        &opts,
        uuid::Uuid::now_v7().to_string(),
        Utc::now(),
        outcome,
        ErrorSink::in_memory(),
    )
}

/// Makes, keeps and announces the record of a run that ended with `outcome`.
fn record_run(
    plan: &Plan,
    opts: &RunOptions,
    execution_id: String,
    started: chrono::DateTime<Utc>,
    outcome: Outcome,
    errors: ErrorSink,
) -> RunRecord {
    let error_output = match errors.close() {
        Ok(path) => path.map(|p| p.display().to_string()),
        Err(e) => Some(format!(
            "(the error output could not be written completely: {e})"
        )),
    };
    let finished = Utc::now();
    let sum = |role: crate::node::Role, f: fn(&NodeFigures) -> u64| -> u64 {
        plan.nodes
            .iter()
            .zip(&outcome.figures)
            .filter(|(n, _)| n.kind.role == role)
            .map(|(_, fig)| f(fig))
            .sum()
    };
    use crate::node::Role;
    let bytes_processed = sum(Role::Source, |f| f.bytes_in);
    let record = RunRecord {
        execution_id: execution_id.clone(),
        flow: plan.flow_name.clone(),
        status: outcome.status,
        started_at: started,
        finished_at: finished,
        duration_seconds: (finished - started).num_milliseconds() as f64 / 1000.0,
        records_processed: sum(Role::Source, |f| f.records_out),
        records_written: outcome.outputs.iter().map(|o| o.records).sum(),
        records_dropped: outcome.figures.iter().map(|f| f.records_dropped).sum(),
        records_rejected: errors.count(),
        bytes_processed,
        bytes_written: outcome.outputs.iter().map(|o| o.bytes).sum(),
        peak_batches_in_flight: outcome.peak_in_flight,
        nodes: outcome.figures,
        outputs: outcome.outputs,
        registered: outcome.registered,
        error_output,
        error: outcome.error,
        windows: outcome.windows,
        cost: cost::of_run(
            bytes_processed,
            outcome.status == RunStatus::Successful,
            &plan.trigger,
            opts.rates,
        ),
        trigger: opts.trigger.clone(),
    };
    keep_record(opts, &record);
    if let Some(events) = &opts.events {
        let _ = events.send(RunEvent::Finished(Box::new(record.clone())));
    }
    record
}

/// Saves the record in the run's folder and indexes it in the history.
fn keep_record(opts: &RunOptions, record: &RunRecord) {
    let run_dir = opts.dirs.run_dir(&record.execution_id);
    if let Err(e) = save_record(&run_dir, record) {
        tracing::warn!("cannot save the run record in {}: {e}", run_dir.display());
    }
    record::index(&opts.dirs, record);
}

fn save_record(run_dir: &std::path::Path, record: &RunRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(run_dir)?;
    let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(run_dir.join("run.json"), text)
}

/// The records leaving one node, on a sample of the sources' first records.
#[derive(Debug, Clone)]
pub struct Preview {
    pub node: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// What entered the node, for before/after views; empty for a source.
    pub input: Vec<RecordBatch>,
    /// Records the sample could not read or process.
    pub rejected: Vec<ErrorRecord>,
}

impl Preview {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs the part of the flow that feeds `node` on the first `limit` records of each source
/// and returns what leaves `node` (for a destination: what would enter it). Nothing is
/// written anywhere.
pub async fn preview(
    plan: &Plan,
    node: &str,
    limit: u64,
    opts: &RunOptions,
) -> Result<Preview, RunError> {
    let target = plan.index_of(node).ok_or_else(|| RunError {
        node: None,
        message: format!("the flow has no node `{node}`"),
        transient: false,
    })?;
    let errors = ErrorSink::in_memory();
    let mut outcome = execute(
        plan,
        opts,
        "preview",
        Mode::Preview { target, limit },
        errors.clone(),
    )
    .await;
    if let Some(error) = outcome.error {
        return Err(error);
    }
    let planned = &plan.nodes[target];
    let input = planned.inputs.first().copied();
    let (schema, batches, input_batches) = if planned.kind.role == crate::node::Role::Destination {
        let i = input.expect("a destination has an input");
        (
            plan.nodes[i].schema.clone(),
            outcome.collected.remove(&i).unwrap_or_default(),
            Vec::new(),
        )
    } else {
        (
            planned.schema.clone(),
            outcome.collected.remove(&target).unwrap_or_default(),
            input
                .and_then(|i| outcome.collected.remove(&i))
                .unwrap_or_default(),
        )
    };
    Ok(Preview {
        node: node.to_string(),
        schema,
        batches,
        input: input_batches,
        rejected: errors.records(),
    })
}

enum Mode {
    Run,
    Preview { target: usize, limit: u64 },
}

struct Outcome {
    status: RunStatus,
    error: Option<RunError>,
    figures: Vec<NodeFigures>,
    outputs: Vec<OutputLocation>,
    registered: Vec<Registration>,
    collected: HashMap<usize, Vec<RecordBatch>>,
    peak_in_flight: usize,
    windows: Vec<Window>,
}

/// What a task hands back: how it ended, and a destination to commit or abort.
struct TaskEnd {
    /// The node the result is about: the one that failed, when one did.
    node: usize,
    /// Every node the task ran (several for a chain of transforms).
    nodes: Vec<usize>,
    result: Result<(), NodeError>,
    destination: Option<Box<dyn Destination>>,
}

impl TaskEnd {
    fn of(node: usize, result: Result<(), NodeError>) -> Self {
        Self {
            node,
            nodes: vec![node],
            result,
            destination: None,
        }
    }
}

/// For each node, the transform it hands its batches to directly, in the same task, when
/// there is one: a transform whose only consumer is a transform with no other input.
///
/// Chained transforms take a batch through all of them before the next one: no batches
/// wait between them, so a flow of many steps holds as few batches as one of two, and no
/// time goes on handing batches between tasks. Sources and destinations keep their own
/// tasks (they wait on files and networks), and so does a node whose output is collected
/// for a preview or shared by several nodes.
fn chains(plan: &Plan, selected: &[bool], collect: &[usize]) -> Vec<Option<usize>> {
    use crate::node::Role;
    let n = plan.nodes.len();
    let mut consumers = vec![0usize; n];
    for (j, node) in plan.nodes.iter().enumerate() {
        if selected[j] {
            for &i in &node.inputs {
                consumers[i] += 1;
            }
        }
    }
    for &i in collect {
        consumers[i] += 1;
    }
    let mut chained = vec![None; n];
    for (j, node) in plan.nodes.iter().enumerate() {
        // A union is not chained: its batches come through `merge_inputs`, which names
        // their input.
        if let [i] = node.inputs[..]
            && selected[j]
            && node.kind.role == Role::Transform
            && !node.kind.many_inputs
            && plan.nodes[i].kind.role == Role::Transform
            && consumers[i] == 1
        {
            chained[i] = Some(j);
        }
    }
    chained
}

async fn execute(
    plan: &Plan,
    opts: &RunOptions,
    execution_id: &str,
    mode: Mode,
    errors: ErrorSink,
) -> Outcome {
    let n = plan.nodes.len();
    // Which nodes run, and whose output is collected.
    let (selected, collect, limit) = match mode {
        Mode::Run => (vec![true; n], Vec::new(), None),
        Mode::Preview { target, limit } => {
            let mut selected = vec![false; n];
            let mut stack = vec![target];
            while let Some(i) = stack.pop() {
                if !std::mem::replace(&mut selected[i], true) {
                    stack.extend(&plan.nodes[i].inputs);
                }
            }
            let node = &plan.nodes[target];
            let collect = if node.kind.role == crate::node::Role::Destination {
                selected[target] = false;
                node.inputs.clone()
            } else {
                std::iter::once(target)
                    .chain(node.inputs.iter().copied())
                    .collect()
            };
            (selected, collect, Some(limit))
        }
    };

    let cancel = opts.cancel.child_token();
    let in_flight = Arc::new(InFlight::default());
    let reporter = opts.events.clone().map(|events| -> Reporter {
        Arc::new(move |node: &str, figures| {
            let _ = events.send(RunEvent::Node {
                node: node.to_string(),
                figures,
            });
        })
    });
    let handles: Vec<NodeHandle> = plan
        .nodes
        .iter()
        .map(|node| NodeHandle {
            id: node.id.as_str().into(),
            metrics: Arc::new(NodeMetrics::default()),
            reporter: reporter.clone(),
        })
        .collect();

    // Build every runtime before anything runs, so a config the runtime refuses fails the
    // run before it reads a single record.
    let mut started = Utc::now();
    // Where each source left off last time; a source that does not pull incrementally
    // ignores it.
    let mut state = match StateStore::open(&opts.dirs) {
        Ok(state) => state,
        Err(message) => return Outcome::failed(None, message, &handles),
    };
    if matches!(mode, Mode::Run)
        && opts.partition.is_some()
        && let Err((node, message)) = partitionable(plan, &selected)
    {
        return Outcome::failed(node.as_deref(), message, &handles);
    }
    // A run of the flow holds its lock to the end: a second run would read the same
    // window, and finish the same interrupted commit, as this one. The parts of a
    // partitioned run go side by side, each part once at a time.
    let lock_name = match &opts.partition {
        Some(p) => format!(
            "{} (part {} of {} of run {})",
            plan.flow_name,
            p.part.index + 1,
            p.part.count,
            p.run_id
        ),
        None => plan.flow_name.clone(),
    };
    let _lock = match mode {
        Mode::Run => {
            match RunLock::take_for_run(&opts.dirs, state.is_shared(), &lock_name, execution_id) {
                Ok(lock) => Some(lock),
                // The other run ends by itself: trying again later is right.
                Err(message) => return Outcome::failed(None, message, &handles).transient(),
            }
        }
        Mode::Preview { .. } => None,
    };
    if matches!(mode, Mode::Run)
        && opts.partition.is_none()
        && let Err(message) = finish_interrupted_commits(plan, &opts.dirs, &mut state)
    {
        return Outcome::failed(None, message, &handles);
    }
    if matches!(mode, Mode::Run)
        && let Err(message) =
            remove_dead_staging(plan, &opts.dirs, &state, &lock_name, execution_id)
    {
        return Outcome::failed(None, message, &handles);
    }
    let mut from: Vec<Option<serde_json::Value>> = vec![None; n];
    let mut full = opts.full;
    for (i, node) in plan.nodes.iter().enumerate() {
        if selected[i] && node.kind.role == crate::node::Role::Source && !full {
            match state.watermark(&plan.flow_name, &node.id) {
                Ok(mark) => from[i] = mark,
                Err(message) => return Outcome::failed(Some(&node.id), message, &handles),
            }
        }
    }
    if let (Mode::Run, Some(p)) = (&mode, &opts.partition) {
        // Every part reads its share of one window: the first part to start sets where
        // the window starts and ends (the run's start), the others take it.
        let window: serde_json::Map<String, serde_json::Value> = plan
            .nodes
            .iter()
            .zip(&from)
            .filter_map(|(node, mark)| Some((node.id.clone(), mark.clone()?)))
            .collect();
        let proposal =
            serde_json::json!({"started": started.to_rfc3339(), "full": full, "from": window});
        match state.settle(&plan.flow_name, &p.run_id, RUN_WINDOW, &proposal) {
            Ok(agreed) => {
                started = agreed["started"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .map(|t| t.to_utc())
                    .unwrap_or(started);
                full = agreed["full"].as_bool().unwrap_or(full);
                for (i, node) in plan.nodes.iter().enumerate() {
                    from[i] = agreed["from"].get(&node.id).cloned();
                }
            }
            Err(message) => return Outcome::failed(None, message, &handles),
        }
    }
    // A run that reads everything ignores where the first run would start.
    let first_run_from = match plan.trigger.first_run_from() {
        Ok(at) => at.filter(|_| !full),
        Err(e) => return Outcome::failed(None, e.message, &handles),
    };
    let marks: Vec<Arc<Mutex<Option<serde_json::Value>>>> =
        (0..n).map(|_| Arc::default()).collect();
    let mut runtimes: Vec<Option<Runtime>> = Vec::with_capacity(n);
    // More copies of each transform that works on one batch alone, for a chain's lanes.
    let mut copies: Vec<Vec<Box<dyn Transform>>> = (0..n).map(|_| Vec::new()).collect();
    for (i, node) in plan.nodes.iter().enumerate() {
        if !selected[i] {
            runtimes.push(None);
            continue;
        }
        let cx = BuildContext {
            node_id: node.id.clone(),
            flow_name: plan.flow_name.clone(),
            execution_id: execution_id.to_string(),
            started,
            base_dir: plan.context.base_dir.clone(),
            dirs: opts.dirs.clone(),
            discovery: plan.context.discovery.clone(),
            input_schema: node.input_schema.clone(),
            output_schema: node.schema.clone(),
            batch_rows: opts.batch_rows,
            watermark: from[i].clone(),
            first_run_from: first_run_from.filter(|_| from[i].is_none()),
            errors: errors.clone(),
            partition: opts.partition.as_ref().map(|p| p.part),
            staging: (matches!(mode, Mode::Run)
                && node.kind.role == crate::node::Role::Destination)
                .then(|| {
                    let (dirs, lock, run) = (
                        opts.dirs.clone(),
                        lock_name.clone(),
                        execution_id.to_string(),
                    );
                    let (node, kind) = (node.id.clone(), node.kind.name);
                    let store: Mutex<Option<StateStore>> = Mutex::new(None);
                    crate::node::StagingJournal::new(move |plan| {
                        let mut store = store.lock().unwrap();
                        if store.is_none() {
                            *store = Some(StateStore::open(&dirs)?);
                        }
                        let store = store.as_ref().expect("opened above");
                        store.journal_staging(&lock, &run, &node, kind, plan)
                    })
                }),
            agreement: opts.partition.as_ref().map(|p| {
                let (dirs, flow, run_id) =
                    (opts.dirs.clone(), plan.flow_name.clone(), p.run_id.clone());
                let node = node.id.clone();
                crate::node::Agreement::new(move |key, proposal| {
                    StateStore::open(&dirs)?.settle(
                        &flow,
                        &run_id,
                        &format!("node {node}: {key}"),
                        proposal,
                    )
                })
            }),
        };
        if opts.chain_lanes > 1 && node.config.per_batch() {
            for _ in 1..opts.chain_lanes {
                // A copy that does not build (it did once) leaves the chain in one lane.
                let Ok(Runtime::Transform(copy)) = node.config.build(&cx) else {
                    copies[i].clear();
                    break;
                };
                copies[i].push(copy);
            }
        }
        match node.config.build(&cx) {
            Ok(rt) => runtimes.push(Some(rt)),
            Err(e) => {
                // Destinations built so far have staged nothing yet but a place to stage.
                for rt in runtimes.into_iter().flatten() {
                    if let Runtime::Destination(d) = rt {
                        d.abort();
                    }
                }
                handles[i].metrics.set_state(NodeState::Failed);
                *handles[i].metrics.error.lock().unwrap() = Some(e.to_string());
                return Outcome::failed(Some(&node.id), e.to_string(), &handles);
            }
        }
    }
    if let Some(events) = &opts.events {
        let _ = events.send(RunEvent::Started {
            execution_id: execution_id.to_string(),
            nodes: plan.nodes.iter().map(|n| n.id.clone()).collect(),
        });
    }

    let chained = chains(plan, &selected, &collect);
    // One bounded channel per edge that runs between tasks, plus one per collected node.
    let mut senders: Vec<Vec<mpsc::Sender<RecordBatch>>> = vec![Vec::new(); n];
    let mut receivers: Vec<Option<mpsc::Receiver<RecordBatch>>> = (0..n).map(|_| None).collect();
    for (i, node) in plan.nodes.iter().enumerate() {
        if !selected[i] {
            continue;
        }
        let mut inputs = Vec::new();
        for &j in &node.inputs {
            if chained[j] == Some(i) {
                continue;
            }
            let (tx, rx) = mpsc::channel(opts.channel_capacity);
            senders[j].push(tx);
            inputs.push((plan.nodes[j].name.clone(), rx));
        }
        receivers[i] = match inputs.len() {
            0 => None,
            1 if !node.kind.many_inputs => inputs.pop().map(|(_, rx)| rx),
            _ => Some(merge_inputs(inputs, opts.channel_capacity)),
        };
    }
    let mut collectors = JoinSet::new();
    for &i in &collect {
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(opts.channel_capacity);
        senders[i].push(tx);
        let in_flight = in_flight.clone();
        collectors.spawn(async move {
            let mut batches = Vec::new();
            while let Some(b) = rx.recv().await {
                in_flight.remove();
                batches.push(b);
            }
            (i, batches)
        });
    }

    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    let mut in_chain = vec![false; n];
    for &next in chained.iter().flatten() {
        in_chain[next] = true;
    }
    for i in 0..n {
        // A transform fed by a chain runs in the chain's task.
        if in_chain[i] {
            continue;
        }
        let Some(runtime) = runtimes[i].take() else {
            continue;
        };
        let node = handles[i].clone();
        node.set_state(NodeState::Running);
        let mut last = i;
        while let Some(next) = chained[last] {
            last = next;
        }
        let outputs = Outputs {
            senders: std::mem::take(&mut senders[last]),
            in_flight: in_flight.clone(),
            cancel: cancel.clone(),
        };
        match runtime {
            Runtime::Source(source) => {
                let out = SourceOutput {
                    node,
                    outputs,
                    errors: errors.clone(),
                    limit,
                    sent: 0,
                    batch_rows: opts.batch_rows,
                    batch_bytes: opts.batch_bytes,
                    watermark: marks[i].clone(),
                };
                let cancel = cancel.clone();
                tasks.spawn(async move {
                    // A source waiting on a service (a slow answer, a long poll) stops at
                    // once when the run is cancelled: it holds no output, so dropping its
                    // work loses nothing, and a stop does not wait for the service.
                    let result = tokio::select! {
                        result = source.run(out) => result,
                        _ = cancel.cancelled() => Err(NodeError::Cancelled),
                    };
                    TaskEnd::of(i, result)
                });
            }
            Runtime::Transform(transform) => {
                let rx = receivers[i].take().expect("a transform has an input");
                let errors = errors.clone();
                let mut stages = vec![Stage::new(i, node, transform)];
                let mut at = i;
                while let Some(next) = chained[at] {
                    let Some(Runtime::Transform(transform)) = runtimes[next].take() else {
                        unreachable!("only transforms are chained");
                    };
                    let node = handles[next].clone();
                    node.set_state(NodeState::Running);
                    stages.push(Stage::new(next, node, transform));
                    at = next;
                }
                let nodes: Vec<usize> = stages.iter().map(|s| s.node).collect();
                let mut lanes = vec![stages];
                if opts.chain_lanes > 1
                    && nodes
                        .iter()
                        .all(|&j| copies[j].len() + 1 == opts.chain_lanes)
                {
                    for _ in 1..opts.chain_lanes {
                        let lane = nodes.iter().map(|&j| {
                            let copy = copies[j].pop().expect("a copy a lane");
                            Stage::new(j, handles[j].clone(), copy)
                        });
                        lanes.push(lane.collect());
                    }
                }
                tasks.spawn(async move {
                    let result = match lanes.len() {
                        1 => run_chain(&mut lanes[0], rx, outputs, &errors).await,
                        _ => run_lanes(lanes, rx, outputs, &errors).await,
                    };
                    let (node, result) = match result {
                        Ok(()) => (i, Ok(())),
                        Err((node, e)) => (node, Err(e)),
                    };
                    TaskEnd {
                        node,
                        nodes,
                        result,
                        destination: None,
                    }
                });
            }
            Runtime::Destination(mut destination) => {
                let rx = receivers[i].take().expect("a destination has an input");
                let in_flight = in_flight.clone();
                let cancel = cancel.clone();
                tasks.spawn_blocking(move || {
                    let result = run_destination(&mut *destination, rx, &node, &in_flight, &cancel);
                    TaskEnd {
                        destination: Some(destination),
                        ..TaskEnd::of(i, result)
                    }
                });
            }
        }
    }
    drop(senders);

    // Wait for every task. The first real failure cancels the rest; the cancellations it
    // causes are consequences, not causes, and are not reported as errors.
    let mut error: Option<RunError> = None;
    let mut destinations: Vec<(usize, Box<dyn Destination>)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let end = match joined {
            Ok(end) => end,
            Err(e) => {
                // A panic in a node is a bug, but the run still ends cleanly and says so.
                cancel.cancel();
                error.get_or_insert(RunError {
                    node: None,
                    message: format!("a node stopped unexpectedly: {e}"),
                    transient: false,
                });
                continue;
            }
        };
        let handle = &handles[end.node];
        for &other in end.nodes.iter().filter(|&&k| k != end.node) {
            handles[other].set_state(match end.result {
                Ok(()) => NodeState::Done,
                Err(_) => NodeState::Canceled,
            });
        }
        match &end.result {
            Ok(()) => handle.set_state(NodeState::Done),
            Err(NodeError::Cancelled) => handle.set_state(NodeState::Canceled),
            Err(e) => {
                *handle.metrics.error.lock().unwrap() = Some(e.to_string());
                handle.set_state(NodeState::Failed);
                cancel.cancel();
                error.get_or_insert(RunError {
                    node: Some(handle.id.to_string()),
                    message: e.to_string(),
                    transient: e.is_transient(),
                });
            }
        }
        if let Some(d) = end.destination {
            destinations.push((end.node, d));
        }
    }
    let mut collected = HashMap::new();
    while let Some(Ok((i, batches))) = collectors.join_next().await {
        collected.insert(i, batches);
    }

    // A run that set most of its input aside is not a success: it publishes nothing.
    if error.is_none() && matches!(mode, Mode::Run) {
        let rejected = errors.count();
        let read: u64 = plan
            .nodes
            .iter()
            .zip(&handles)
            .filter(|(n, _)| n.kind.role == crate::node::Role::Source)
            .map(|(_, h)| h.metrics.figures(&h.id).records_out)
            .sum::<u64>()
            + rejected;
        if rejected > 0 && rejected * 100 > u64::from(plan.error_threshold) * read {
            error = Some(RunError {
                node: None,
                message: format!(
                    "{rejected} of {read} records were rejected ({:.1}%), more than the flow's error threshold of {}%, so nothing was published; see the error output for why, or raise `error_threshold`",
                    rejected as f64 * 100.0 / read as f64,
                    plan.error_threshold
                ),
                transient: false,
            });
        }
    }
    let status = match (&error, opts.cancel.is_cancelled()) {
        (Some(_), _) => RunStatus::Error,
        (None, true) => RunStatus::Canceled,
        (None, false) => RunStatus::Successful,
    };
    // Every task has ended: the windows the sources read are known.
    let windows: Vec<Window> = (0..n)
        .filter_map(|i| {
            let to = marks[i].lock().unwrap().take();
            (from[i].is_some() || to.is_some()).then(|| Window {
                node: plan.nodes[i].id.clone(),
                from: from[i].take(),
                to,
            })
        })
        .collect();
    let reached: Vec<(String, serde_json::Value)> = windows
        .iter()
        .filter_map(|w| Some((w.node.clone(), w.to.clone()?)))
        .collect();
    let commit = match mode {
        Mode::Run if status == RunStatus::Successful => Some(Commit {
            state,
            flow: plan.flow_name.clone(),
            execution_id: execution_id.to_string(),
            reached,
            lease_lost: _lock.as_ref().and_then(RunLock::lost),
            keep_for: opts.partition.clone(),
            types: plan.nodes.iter().map(|n| n.kind).collect(),
            dirs: opts.dirs.clone(),
        }),
        _ => None,
    };
    let kinds = plan.nodes.iter().map(|n| n.kind.name).collect();
    // In the flow's order, not the order they finished in: what a kill during the commit
    // leaves behind is then the same from run to run.
    destinations.sort_by_key(|(node, _)| *node);
    let (published, commit_error) =
        finish_destinations(destinations, commit, &handles, kinds).await;
    if matches!(mode, Mode::Run) {
        // Published, kept for a commit, or aborted: nothing is left for a later run to
        // remove (a commit cut short is in its commit record).
        if let Err(e) = StateStore::open(&opts.dirs).and_then(|s| s.forget_staging(execution_id)) {
            tracing::warn!("the run's staging journal could not be cleared: {e}");
        }
    }
    let (status, error) = match commit_error {
        Some(e) => (RunStatus::Error, Some(e)),
        None => (status, error),
    };
    Outcome {
        status,
        error,
        figures: figures(&handles),
        outputs: published.outputs,
        registered: published.registered,
        collected,
        peak_in_flight: in_flight.peak(),
        windows,
    }
}

/// Removes what runs under `lock` that died (this run holds the lock now) had begun to
/// stage outside the machine — S3 uploads a killed process could not abort — as their
/// destinations' types remove a plan. What cannot be removed is logged for a person, and
/// does not stop the run: it was never published.
fn remove_dead_staging(
    plan: &Plan,
    dirs: &Dirs,
    state: &StateStore,
    lock: &str,
    execution_id: &str,
) -> Result<(), String> {
    let mut dead = Vec::new();
    for (run, node, kind, staged) in state.staged_by_others(lock, execution_id)? {
        let removed = match plan.nodes.iter().map(|n| n.kind).find(|t| t.name == kind) {
            Some(t) => (t.abort_plan)(&staged, dirs).map_err(|e| e.to_string()),
            None => Err(format!("{kind} is no longer in the flow")),
        };
        match removed {
            Ok(()) => tracing::info!(
                "removed what run {run}, which did not end, had begun to stage in `{node}`"
            ),
            Err(e) => tracing::warn!(
                "what run {run}, which did not end, began to stage in `{node}` could not be removed ({e}): {staged}"
            ),
        }
        if !dead.contains(&run) {
            dead.push(run);
        }
    }
    for run in dead {
        state.forget_staging(&run)?;
    }
    Ok(())
}

/// Finishes the commits of this flow's runs that were killed while they published, oldest
/// first, and saves the watermarks they reached: the run that follows starts where they
/// ended. A commit that cannot be finished whole (a destination rolled back, or one that
/// publishes in a way no other process can finish) is dropped without its watermarks, so
/// its records are read again: possibly twice where part of it was published, never lost.
fn finish_interrupted_commits(
    plan: &Plan,
    dirs: &Dirs,
    state: &mut StateStore,
) -> Result<(), String> {
    for (execution_id, record) in state.pending_commits(&plan.flow_name)? {
        let mut finished = true;
        for d in record["destinations"].as_array().into_iter().flatten() {
            let node = d["node"].as_str().unwrap_or_default();
            let kind = d["type"].as_str().unwrap_or_default();
            if d["plan"].is_null() {
                tracing::warn!(
                    "run {execution_id} was stopped while it published; `{node}` ({kind}) may hold part of its output, and its records are read again"
                );
                finished = false;
                continue;
            }
            let Some(node_type) = plan.nodes.iter().map(|n| n.kind).find(|k| k.name == kind) else {
                return Err(format!(
                    "run {execution_id} was stopped while it published, and its destination `{node}` ({kind}) is no longer in the flow, so its output cannot be finished; put the node back for one run, or remove the run's staging folder by hand"
                ));
            };
            match (node_type.finish_commit)(&d["plan"], dirs) {
                Ok(done) => tracing::info!(
                    "finished publishing {} file(s) of run {execution_id} in node `{node}`",
                    done.outputs.len()
                ),
                Err(e) => {
                    tracing::warn!(
                        "run {execution_id} was stopped while it published, and `{node}` could not finish publishing it ({e}); what it had published is removed, and its records are read again"
                    );
                    finished = false;
                }
            }
        }
        let marks: Vec<(String, serde_json::Value)> =
            serde_json::from_value(record["watermarks"].clone()).unwrap_or_default();
        if let Ok(run) = serde_json::from_value::<crate::state::RunRow>(record["run"].clone()) {
            // A partitioned run's commit: what the parts staged is still theirs to commit
            // or abort, so it is never dropped here.
            if !finished {
                return Err(format!(
                    "the commit of the partitioned run {execution_id} was stopped while it published and cannot be finished now: `tributary commit` or `tributary abort` it with --run-id {execution_id}"
                ));
            }
            state.end_partitioned_commit(&plan.flow_name, &run, &marks)?;
        } else if finished {
            state.end_commit(&plan.flow_name, &execution_id, &marks)?;
        } else {
            state.drop_commit(&execution_id)?;
        }
    }
    Ok(())
}

fn figures(handles: &[NodeHandle]) -> Vec<NodeFigures> {
    handles.iter().map(|h| h.metrics.figures(&h.id)).collect()
}

impl Outcome {
    /// The failure passes by itself: the service may try the run again.
    fn transient(mut self) -> Self {
        if let Some(e) = &mut self.error {
            e.transient = true;
        }
        self
    }

    /// A run that failed before any node started.
    fn failed(node: Option<&str>, message: String, handles: &[NodeHandle]) -> Self {
        Outcome {
            status: RunStatus::Error,
            error: Some(RunError {
                node: node.map(str::to_string),
                message,
                transient: false,
            }),
            figures: figures(handles),
            outputs: Vec::new(),
            registered: Vec::new(),
            collected: HashMap::new(),
            peak_in_flight: 0,
            windows: Vec::new(),
        }
    }
}

/// What a successful run commits: its output, then where its sources left off.
struct Commit {
    state: StateStore,
    flow: String,
    execution_id: String,
    reached: Vec<(String, serde_json::Value)>,
    /// Set when the run's lease on the flow ran out: another worker may run it now.
    lease_lost: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A part of a partitioned run keeps its output staged for `tributary commit`.
    keep_for: Option<PartitionRun>,
    /// The node types of the flow, for removing what an earlier try of the part kept.
    types: Vec<&'static crate::node::NodeType>,
    dirs: Dirs,
}

/// Publishes every destination's staged output when the run succeeded (`commit`), aborts
/// them all otherwise.
///
/// Two phases: the commit record (what each destination needs to finish publishing, and
/// the watermarks reached) is written before anything is published, and deleted together
/// with saving the watermarks once everything is. A kill in between is finished by the
/// next run ([`finish_interrupted_commits`]). A destination that fails to publish leaves
/// the record too, so the next run tries again rather than read the window twice.
async fn finish_destinations(
    destinations: Vec<(usize, Box<dyn Destination>)>,
    commit: Option<Commit>,
    handles: &[NodeHandle],
    kinds: Vec<&'static str>,
) -> (Published, Option<RunError>) {
    let ids: Vec<Arc<str>> = handles.iter().map(|h| h.id.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let Some(mut commit) = commit else {
            for (_, d) in destinations {
                d.abort();
            }
            return (Published::default(), None);
        };
        if commit
            .lease_lost
            .as_ref()
            .is_some_and(|lost| lost.load(std::sync::atomic::Ordering::SeqCst))
        {
            for (_, d) in destinations {
                d.abort();
            }
            let message = "the run's lease on the flow ran out (the state database was out of reach for longer than the lease), so another worker may be running it now: nothing was published".to_string();
            return (
                Published::default(),
                Some(RunError {
                    node: None,
                    message,
                    transient: true,
                }),
            );
        }
        if let Some(part) = commit.keep_for.take() {
            return keep_for_commit(destinations, &commit, &part, &ids, &kinds);
        }
        let record = serde_json::json!({
            "destinations": destinations
                .iter()
                .map(|(i, d)| serde_json::json!({
                    "node": &*ids[*i],
                    "type": kinds[*i],
                    "plan": d.commit_plan(),
                }))
                .collect::<Vec<_>>(),
            "watermarks": commit.reached,
        });
        if let Err(message) = commit
            .state
            .begin_commit(&commit.flow, &commit.execution_id, &record)
        {
            for (_, d) in destinations {
                d.abort();
            }
            return (
                Published::default(),
                Some(RunError {
                    node: None,
                    message,
                                    transient: false,
}),
            );
        }
        let mut published = Published::default();
        let mut error = None;
        for (i, d) in destinations {
            if error.is_some() && d.commit_plan().is_none() {
                // Nothing can finish this one later: it publishes nothing.
                d.abort();
                continue;
            }
            match d.commit() {
                Ok(done) => {
                    published.outputs.extend(done.outputs);
                    published
                        .registered
                        .extend(done.registered.into_iter().map(|r| Registration {
                            node: ids[i].to_string(),
                            ..r
                        }));
                }
                Err(e) => {
                    error.get_or_insert(RunError {
                        node: Some(ids[i].to_string()),
                        message: format!(
                            "cannot finish writing: {e}; the next run of the flow finishes publishing this run's output before it reads anything"
                        ),
                                            transient: false,
});
                }
            }
        }
        if error.is_none()
            && let Err(e) =
                commit
                    .state
                    .end_commit(&commit.flow, &commit.execution_id, &commit.reached)
        {
            error = Some(RunError {
                node: None,
                message: format!(
                    "the output is complete, but where the sources left off could not be saved; the next run saves it before it reads anything: {e}"
                ),
                            transient: false,
});
        }
        (published, error)
    })
    .await
    .unwrap_or_else(|e| {
        (
            Published::default(),
            Some(RunError {
                node: None,
                message: format!("committing the output failed: {e}"),
                            transient: false,
}),
        )
    })
}

/// A part of a partitioned run: every destination keeps its staged output, and the state
/// records what each kept under the run's id and the part's number — replacing what an
/// earlier try of the same part kept, which is removed.
fn keep_for_commit(
    destinations: Vec<(usize, Box<dyn Destination>)>,
    commit: &Commit,
    part: &PartitionRun,
    ids: &[Arc<str>],
    kinds: &[&'static str],
) -> (Published, Option<RunError>) {
    let mut kept = Vec::new();
    let mut failure = None;
    for (i, d) in destinations {
        if failure.is_some() {
            d.abort();
            continue;
        }
        match d.keep() {
            Ok(plan) => kept.push(serde_json::json!({
                "node": &*ids[i], "type": kinds[i], "plan": plan,
            })),
            Err(e) => {
                failure = Some(RunError {
                    node: Some(ids[i].to_string()),
                    message: e.to_string(),
                    transient: false,
                })
            }
        }
    }
    let record = serde_json::json!({ "destinations": kept, "watermarks": commit.reached });
    if failure.is_none() {
        match commit.state.stage_partition(
            &commit.flow,
            &part.run_id,
            part.part,
            &commit.execution_id,
            &record,
        ) {
            Ok(None) => return (Published::default(), None),
            Ok(Some(earlier)) => {
                remove_kept(&earlier, &commit.types, &commit.dirs);
                return (Published::default(), None);
            }
            Err(e) => {
                failure = Some(RunError {
                    node: None,
                    message: format!(
                        "cannot record what part {} staged: {e}",
                        part.part.index + 1
                    ),
                    transient: false,
                })
            }
        }
    }
    remove_kept(&record, &commit.types, &commit.dirs);
    (Published::default(), failure)
}

/// Removes what the destinations of a staged part kept (its record), as far as it can;
/// what it cannot is logged, for a person to remove.
fn remove_kept(record: &serde_json::Value, types: &[&'static crate::node::NodeType], dirs: &Dirs) {
    for d in record["destinations"].as_array().into_iter().flatten() {
        let kind = d["type"].as_str().unwrap_or_default();
        let removed = match types.iter().find(|t| t.name == kind) {
            Some(t) => (t.abort_plan)(&d["plan"], dirs).map_err(|e| e.to_string()),
            None => Err(format!("{kind} is no longer in the flow")),
        };
        if let Err(e) = removed {
            tracing::warn!(
                "what `{}` staged could not be removed ({e}): {}",
                d["node"].as_str().unwrap_or_default(),
                d["plan"]
            );
        }
    }
}

/// The key under which the parts of a partitioned run settle their window: its start and
/// end, and whether it reads everything.
const RUN_WINDOW: &str = "run window";

/// Whether the flow can run in parts: every source reads its part, no node needs all the
/// records together. The node that cannot, and why.
fn partitionable(plan: &Plan, selected: &[bool]) -> Result<(), (Option<String>, String)> {
    for (i, node) in plan.nodes.iter().enumerate() {
        if !selected[i] {
            continue;
        }
        let whole = ["transform.aggregate", "transform.dedupe"];
        if node.kind.role == crate::node::Role::Source
            && let Err(why) = node.config.reads_in_partitions()
        {
            return Err((
                Some(node.id.clone()),
                format!(
                    "`{}` ({}) cannot run in parts: {why}",
                    node.id, node.kind.name
                ),
            ));
        }
        if node.kind.role == crate::node::Role::Destination && !node.kind.keeps_for_commit {
            return Err((
                Some(node.id.clone()),
                format!(
                    "`{}` ({}) publishes as it writes and cannot keep a part's output for one commit of all the parts; write the partitioned run to a local folder or S3",
                    node.id, node.kind.name
                ),
            ));
        }
        if whole.contains(&node.kind.name) {
            return Err((
                Some(node.id.clone()),
                format!(
                    "`{}` ({}) needs all the records together, which no part of a partitioned run has; run the flow whole",
                    node.id, node.kind.name
                ),
            ));
        }
    }
    Ok(())
}

/// What `tributary commit` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub parts: u32,
    pub outputs: Vec<OutputLocation>,
    /// The history's entry for the whole run: its parts' figures added up.
    pub run: crate::state::RunRow,
}

/// Publishes what every part of the partitioned run `run_id` of the flow staged, at once,
/// when every part staged; refuses, naming the missing parts, otherwise. Written as a
/// commit record first (with the watermarks the parts reached together and the whole run's
/// figures), so that an interrupted commit is finished by the next `commit` (or run of the
/// flow) and never half published. Holds the flow's lock: two commits, or a commit and a
/// run of the flow, never publish at once.
pub fn commit_partitions(plan: &Plan, dirs: &Dirs, run_id: &str) -> Result<Committed, String> {
    let mut state = StateStore::open(dirs)?;
    let _lock = RunLock::take_for_run(dirs, state.is_shared(), &plan.flow_name, run_id)?;
    let begun = state
        .pending_commits(&plan.flow_name)?
        .into_iter()
        .find(|(id, _)| id == run_id);
    let record = match begun {
        // Killed while it published: finish what it began.
        Some((_, record)) => record,
        None => {
            let record = partitioned_commit_record(plan, &state, run_id)?;
            state.begin_commit(&plan.flow_name, run_id, &record)?;
            record
        }
    };
    let mut outputs = Vec::new();
    for d in record["destinations"].as_array().into_iter().flatten() {
        let node = d["node"].as_str().unwrap_or_default();
        let kind = d["type"].as_str().unwrap_or_default();
        let Some(t) = plan.nodes.iter().map(|n| n.kind).find(|t| t.name == kind) else {
            return Err(format!(
                "`{node}` ({kind}) staged part of run {run_id} but is no longer in the flow: put it back to commit the run, or abort it"
            ));
        };
        let done = (t.finish_commit)(&d["plan"], dirs).map_err(|e| {
            format!("`{node}` could not publish its part of run {run_id}: {e}; `tributary commit` again finishes it")
        })?;
        outputs.extend(done.outputs);
    }
    let mut run: crate::state::RunRow = serde_json::from_value(record["run"].clone())
        .map_err(|e| format!("the commit record of run {run_id} is damaged: {e}"))?;
    run.records_written = outputs.iter().map(|o| o.records).sum();
    run.bytes_written = outputs.iter().map(|o| o.bytes).sum();
    let marks: Vec<(String, serde_json::Value)> =
        serde_json::from_value(record["watermarks"].clone()).unwrap_or_default();
    state.end_partitioned_commit(&plan.flow_name, &run, &marks)?;
    Ok(Committed {
        parts: record["parts"].as_u64().unwrap_or_default() as u32,
        outputs,
        run,
    })
}

/// What committing the partitioned run `run_id` publishes and saves: every part's staged
/// output, the watermarks they reached together, the whole run's figures. Refused while a
/// part is missing, and when a run of the flow moved its watermarks since the parts began
/// (committing would publish records that run published too).
fn partitioned_commit_record(
    plan: &Plan,
    state: &StateStore,
    run_id: &str,
) -> Result<serde_json::Value, String> {
    let staged = state.staged_partitions(&plan.flow_name, run_id)?;
    let Some(first) = staged.first() else {
        return Err(format!(
            "no part of run {run_id} of \"{}\" is staged: run its parts with `tributary run FLOW --partitions N --partition I --run-id {run_id} --stage-only`",
            plan.flow_name
        ));
    };
    let count = first.count;
    let missing: Vec<String> = (0..count)
        .filter(|i| !staged.iter().any(|s| s.index == *i))
        .map(|i| (i + 1).to_string())
        .collect();
    if !missing.is_empty() || staged.iter().any(|s| s.count != count) {
        return Err(format!(
            "part{} {} of {count} of run {run_id} did not stage, so nothing is published: run {}, or `tributary abort` the run",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
        ));
    }
    let agreed = state.settled(run_id, RUN_WINDOW)?.unwrap_or_default();
    let full = agreed["full"].as_bool().unwrap_or(true);
    let mut marks = Vec::new();
    for node in plan
        .nodes
        .iter()
        .filter(|n| n.kind.role == crate::node::Role::Source)
    {
        let saved = state.watermark(&plan.flow_name, &node.id)?;
        let from = agreed["from"].get(&node.id);
        if !full && saved.as_ref() != from {
            return Err(format!(
                "a run of \"{}\" read `{}` on from where the parts of run {run_id} began, so committing them would publish its records again: `tributary abort` the run and run the parts again",
                plan.flow_name, node.id
            ));
        }
        let reached: Vec<serde_json::Value> = staged
            .iter()
            .filter_map(|s| {
                s.record["watermarks"]
                    .as_array()?
                    .iter()
                    .find(|m| m[0] == node.id.as_str())
                    .map(|m| m[1].clone())
            })
            .collect();
        let together =
            crate::node::mark::combine(&reached).map_err(|e| format!("`{}`: {e}", node.id))?;
        // A backfill never moves a source back behind where a later run got to.
        if let Some(mark) = together
            && saved
                .as_ref()
                .is_none_or(|s| !crate::node::mark::is_newer(s, &mark))
        {
            marks.push((node.id.clone(), mark));
        }
    }
    let mut parts = Vec::new();
    for s in &staged {
        parts.extend(state.run(&s.execution_id)?);
    }
    let started_at = parts
        .iter()
        .map(|r| r.started_at.clone())
        .min()
        .unwrap_or_default();
    let run = crate::state::RunRow {
        execution_id: run_id.to_string(),
        flow: plan.flow_name.clone(),
        status: "Successful".into(),
        trigger: format!("partitioned: {count} parts, committed"),
        started_at: started_at.clone(),
        duration_seconds: chrono::DateTime::parse_from_rfc3339(&started_at)
            .map(|s| (Utc::now() - s.to_utc()).num_milliseconds() as f64 / 1000.0)
            .unwrap_or_default(),
        records_processed: parts.iter().map(|r| r.records_processed).sum(),
        records_written: parts.iter().map(|r| r.records_written).sum(),
        records_rejected: parts.iter().map(|r| r.records_rejected).sum(),
        bytes_written: parts.iter().map(|r| r.bytes_written).sum(),
        cost_usd: parts.iter().map(|r| r.cost_usd).sum(),
        error: None,
    };
    let destinations: Vec<serde_json::Value> = staged
        .iter()
        .flat_map(|s| {
            s.record["destinations"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    Ok(serde_json::json!({
        "destinations": destinations,
        "watermarks": marks,
        "parts": count,
        "run": run,
    }))
}

/// Removes what every part of the partitioned run `run_id` staged, unless its commit has
/// begun (then `tributary commit` finishes it). How many parts were removed.
pub fn abort_partitions(plan: &Plan, dirs: &Dirs, run_id: &str) -> Result<usize, String> {
    let state = StateStore::open(dirs)?;
    let _lock = RunLock::take_for_run(dirs, state.is_shared(), &plan.flow_name, run_id)?;
    if state
        .pending_commits(&plan.flow_name)?
        .iter()
        .any(|(id, _)| id == run_id)
    {
        return Err(format!(
            "the commit of run {run_id} has begun, so it cannot be undone: `tributary commit` finishes it"
        ));
    }
    let staged = state.staged_partitions(&plan.flow_name, run_id)?;
    let types: Vec<&'static crate::node::NodeType> = plan.nodes.iter().map(|n| n.kind).collect();
    for part in &staged {
        remove_kept(&part.record, &types, dirs);
    }
    state.drop_partitions(run_id)?;
    Ok(staged.len())
}

/// One transform of a chain, with what it reports.
struct Stage {
    node: usize,
    handle: NodeHandle,
    transform: Box<dyn Transform>,
    cx: TransformContext,
}

impl Stage {
    fn new(node: usize, handle: NodeHandle, transform: Box<dyn Transform>) -> Self {
        let cx = TransformContext::new(&handle.id);
        Self {
            node,
            handle,
            transform,
            cx,
        }
    }
}

/// Runs a chain of transforms (often just one) as one task. A failure names the node of
/// the chain it happened in.
/// One stream of the batches of several inputs, as they come, each naming in its schema's
/// metadata ([`crate::node::INPUT_KEY`]) the input it came from. The stream ends when every
/// input has; an input whose records nobody reads any more stops being forwarded.
fn merge_inputs(
    inputs: Vec<(String, mpsc::Receiver<RecordBatch>)>,
    capacity: usize,
) -> mpsc::Receiver<RecordBatch> {
    let (tx, merged) = mpsc::channel(capacity);
    for (name, mut rx) in inputs {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                let mut metadata = batch.schema().metadata().clone();
                metadata.insert(crate::node::INPUT_KEY.to_string(), name.clone());
                let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
                // Only metadata is added, which a batch always takes.
                let batch = batch.clone().with_schema(schema).unwrap_or(batch);
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
        });
    }
    merged
}

async fn run_chain(
    stages: &mut [Stage],
    mut rx: mpsc::Receiver<RecordBatch>,
    outputs: Outputs,
    errors: &ErrorSink,
) -> Result<(), (usize, NodeError)> {
    let first = stages[0].node;
    let last = stages[stages.len() - 1].node;
    loop {
        let batch = tokio::select! {
            biased;
            _ = outputs.cancel.cancelled() => return Err((first, NodeError::Cancelled)),
            b = rx.recv() => b,
        };
        let Some(batch) = batch else { break };
        outputs.in_flight.remove();
        if let Some(out) = pass(stages, batch, errors)? {
            outputs.send(&out).await.map_err(|e| (last, e))?;
        }
    }
    finish_chain(stages, &outputs, errors).await
}

/// The end of a chain's input: what a transform holds back to the end (an aggregate, say)
/// goes through the transforms after it before they finish in turn.
async fn finish_chain(
    stages: &mut [Stage],
    outputs: &Outputs,
    errors: &ErrorSink,
) -> Result<(), (usize, NodeError)> {
    let first = stages[0].node;
    let last = stages[stages.len() - 1].node;
    if outputs.cancel.is_cancelled() {
        return Err((first, NodeError::Cancelled));
    }
    for k in 0..stages.len() {
        let (done, rest) = stages.split_at_mut(k + 1);
        let stage = &mut done[k];
        let out = stage
            .transform
            .finish(&mut stage.cx)
            .map_err(|e| (stage.node, e))?;
        settle(&mut stage.cx, &stage.handle, errors).map_err(|e| (stage.node, e))?;
        if let Some(out) = out.filter(|out| out.num_rows() > 0) {
            stage.handle.metrics.add_out(&out);
            if let Some(out) = pass(rest, out, errors)? {
                outputs.send(&out).await.map_err(|e| (last, e))?;
            }
        }
        stage.handle.report();
    }
    Ok(())
}

/// Runs a chain of transforms that each work on one batch alone ([`NodeConfig::per_batch`])
/// on several batches at once: batch *n* goes to lane *n* mod *k*, each lane with its own
/// copy of every transform, and is taken back from that lane in turn. So batches leave in
/// the order they came, what each transform reports (drops, records set aside) is counted
/// and written in that order too, and at most *k* batches are in the lanes at a time.
async fn run_lanes(
    lanes: Vec<Vec<Stage>>,
    mut rx: mpsc::Receiver<RecordBatch>,
    outputs: Outputs,
    errors: &ErrorSink,
) -> Result<(), (usize, NodeError)> {
    let k = lanes.len();
    let nodes: Vec<(usize, NodeHandle)> = lanes[0]
        .iter()
        .map(|s| (s.node, s.handle.clone()))
        .collect();
    let (first, last) = (nodes[0].0, nodes[nodes.len() - 1].0);
    let stopped = || (first, NodeError::msg("a transform stopped unexpectedly"));
    let mut into = Vec::with_capacity(k);
    let mut out_of = Vec::with_capacity(k);
    let mut workers = JoinSet::new();
    for mut stages in lanes {
        let (tx, mut batches) = mpsc::channel::<RecordBatch>(1);
        let (done, worked) = mpsc::channel(1);
        workers.spawn(async move {
            while let Some(batch) = batches.recv().await {
                if done.send(work(&mut stages, batch)).await.is_err() {
                    break;
                }
            }
            stages
        });
        into.push(tx);
        out_of.push(worked);
    }
    let (mut sent, mut taken, mut more) = (0, 0, true);
    while more || taken < sent {
        // The oldest batch back as soon as its lane is done with it; the next one in while
        // a lane is free.
        let lane = taken % k;
        tokio::select! {
            biased;
            _ = outputs.cancel.cancelled() => return Err((first, NodeError::Cancelled)),
            worked = out_of[lane].recv(), if taken < sent => {
                taken += 1;
                let worked = worked.ok_or_else(stopped)?;
                if let Some(out) = count(nodes.iter().map(|(n, h)| (*n, h)), worked, errors)? {
                    outputs.send(&out).await.map_err(|e| (last, e))?;
                }
            }
            batch = rx.recv(), if more && sent - taken < k => match batch {
                Some(batch) => {
                    outputs.in_flight.remove();
                    into[sent % k].send(batch).await.map_err(|_| stopped())?;
                    sent += 1;
                }
                None => more = false,
            },
        }
    }
    // The lanes' inputs end, so their tasks do.
    drop(into);
    while let Some(joined) = workers.join_next().await {
        let mut stages = joined.map_err(|_| stopped())?;
        finish_chain(&mut stages, &outputs, errors).await?;
    }
    Ok(())
}

/// What one transform of a chain did with one batch, kept to be counted in the batch's turn.
struct Tally {
    rows_in: usize,
    rows_out: usize,
    cx: TransformContext,
}

/// What a chain made of one batch, with each transform's tally up to where it ended.
type Worked = (Result<Option<RecordBatch>, (usize, NodeError)>, Vec<Tally>);

/// Takes a batch through `stages` in turn: what comes out of the last one, unless a stage
/// left nothing. Stages in a row that only keep records (see [`Transform::keep`]) share
/// one copy of the records they keep, made when a stage needs them or at the end.
fn pass(
    stages: &mut [Stage],
    batch: RecordBatch,
    errors: &ErrorSink,
) -> Result<Option<RecordBatch>, (usize, NodeError)> {
    let worked = work(stages, batch);
    count(stages.iter().map(|s| (s.node, &s.handle)), worked, errors)
}

/// Counts what `work` did into the nodes' figures and the error output, in stage order;
/// then its output or its error.
fn count<'a>(
    nodes: impl IntoIterator<Item = (usize, &'a NodeHandle)>,
    (result, tallies): Worked,
    errors: &ErrorSink,
) -> Result<Option<RecordBatch>, (usize, NodeError)> {
    for ((node, handle), mut tally) in nodes.into_iter().zip(tallies) {
        handle.metrics.add_in_rows(tally.rows_in);
        settle(&mut tally.cx, handle, errors).map_err(|e| (node, e))?;
        if tally.rows_out > 0 {
            handle.metrics.add_out_rows(tally.rows_out);
        }
        handle.report();
    }
    result
}

/// The work of [`pass`], with what each stage reports kept aside (see [`count`]).
fn work(stages: &mut [Stage], mut batch: RecordBatch) -> Worked {
    let mut tallies = Vec::with_capacity(stages.len());
    // The records of `batch` kept so far and not yet copied out, with the stage that last
    // narrowed them (an error making the copy is that stage's).
    let mut kept: Option<(BooleanArray, usize)> = None;
    for stage in stages {
        let rows_in = kept
            .as_ref()
            .map_or(batch.num_rows(), |(k, _)| k.true_count());
        let rows_out = match keep_or_apply(stage, &mut batch, &mut kept, rows_in) {
            Ok(rows_out) => rows_out,
            Err(e) => return (Err(e), tallies),
        };
        tallies.push(Tally {
            rows_in,
            rows_out,
            cx: stage.cx.take_reports(),
        });
        if rows_out == 0 {
            return (Ok(None), tallies);
        }
    }
    (take_kept(batch, kept).map(Some), tallies)
}

/// One stage's part of [`work`]: narrows `kept` if the stage only keeps records, else
/// applies it to the records kept so far. The records that leave it.
fn keep_or_apply(
    stage: &mut Stage,
    batch: &mut RecordBatch,
    kept: &mut Option<(BooleanArray, usize)>,
    rows_in: usize,
) -> Result<usize, (usize, NodeError)> {
    match stage.transform.keep(batch) {
        Some(keep) => {
            let mut keep = keep.map_err(|e| (stage.node, e))?;
            if keep.null_count() > 0 {
                keep = prep_null_mask_filter(&keep);
            }
            if let Some((k, _)) = kept {
                keep = and(k, &keep).map_err(|e| (stage.node, e.into()))?;
            }
            let rows_out = keep.true_count();
            stage.cx.dropped += (rows_in - rows_out) as u64;
            *kept = Some((keep, stage.node));
            Ok(rows_out)
        }
        None => {
            let input = take_kept(batch.clone(), kept.take())?;
            *batch = stage
                .transform
                .apply(input, &mut stage.cx)
                .map_err(|e| (stage.node, e))?;
            Ok(batch.num_rows())
        }
    }
}

/// The records of `batch` that `kept` marks, copied out (unless that is all of them).
fn take_kept(
    batch: RecordBatch,
    kept: Option<(BooleanArray, usize)>,
) -> Result<RecordBatch, (usize, NodeError)> {
    match kept {
        Some((keep, node)) if keep.true_count() < batch.num_rows() => {
            filter_record_batch(&batch, &keep).map_err(|e| (node, e.into()))
        }
        _ => Ok(batch),
    }
}

/// Moves what a transform reported into the node's counters and the error output.
fn settle(
    cx: &mut TransformContext,
    node: &NodeHandle,
    errors: &ErrorSink,
) -> Result<(), NodeError> {
    node.metrics
        .dropped
        .fetch_add(std::mem::take(&mut cx.dropped), Ordering::Relaxed);
    if !cx.notes.is_empty() {
        let mut notes = node.metrics.notes.lock().unwrap();
        for (k, v) in std::mem::take(&mut cx.notes) {
            *notes.entry(k.to_string()).or_default() += v;
        }
    }
    for record in cx.rejected.drain(..) {
        node.metrics.rejected.fetch_add(1, Ordering::Relaxed);
        errors.write(record)?;
    }
    Ok(())
}

fn run_destination(
    destination: &mut dyn Destination,
    mut rx: mpsc::Receiver<RecordBatch>,
    node: &NodeHandle,
    in_flight: &InFlight,
    cancel: &CancellationToken,
) -> Result<(), NodeError> {
    while let Some(batch) = rx.blocking_recv() {
        in_flight.remove();
        if cancel.is_cancelled() {
            return Err(NodeError::Cancelled);
        }
        node.metrics.add_in(&batch);
        destination.write(&batch)?;
        node.metrics
            .bytes_out
            .store(destination.bytes_written(), Ordering::Relaxed);
        node.report();
    }
    if cancel.is_cancelled() {
        return Err(NodeError::Cancelled);
    }
    destination.finish()?;
    node.metrics
        .bytes_out
        .store(destination.bytes_written(), Ordering::Relaxed);
    node.report();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The plan of demo opportunities through `edges` (ids: src, a–d transforms, out and
    /// out2 destinations).
    fn plan(edges: &[(&str, &str)]) -> Plan {
        let node = |id: &str, kind: &str, config: serde_json::Value| json!({"id": id, "type": kind, "position": [0, 0], "config": config});
        let filter =
            json!({"conditions": [{"field": "Amount", "operator": "greater_than", "value": 0}]});
        let nodes: Vec<serde_json::Value> = [
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 10}),
            ),
            node("a", "transform.filter", filter.clone()),
            node("b", "transform.filter", filter.clone()),
            node("c", "transform.filter", filter.clone()),
            node("d", "transform.filter", filter),
            node("out", "destination.local", json!({"folder": "out"})),
            node("out2", "destination.local", json!({"folder": "out2"})),
        ]
        .into_iter()
        .filter(|n| n["id"] == "src" || edges.iter().any(|(_, to)| n["id"] == *to))
        .collect();
        let edges: Vec<_> = edges
            .iter()
            .map(|(a, b)| json!({"from": a, "to": b}))
            .collect();
        let flow = json!({
            "format": "tributary.flow/1",
            "name": "chains",
            "nodes": nodes,
            "edges": edges,
        });
        let flow = crate::flow::Flow::from_json(&flow.to_string(), "chains").unwrap();
        let dir = tempfile::tempdir().unwrap();
        crate::workspace::plan_flow(
            &flow,
            dir.path(),
            &Default::default(),
            &crate::workspace::Workspace::new(Dirs::under(dir.path())),
        )
        .unwrap_or_else(|p| panic!("{p:#?}"))
    }

    /// The chained edges by node id.
    fn chained(plan: &Plan, collect: &[&str]) -> Vec<(String, String)> {
        let selected = vec![true; plan.nodes.len()];
        let collect: Vec<usize> = collect.iter().map(|c| plan.index_of(c).unwrap()).collect();
        chains(plan, &selected, &collect)
            .iter()
            .enumerate()
            .filter_map(|(i, next)| {
                let next = (*next)?;
                Some((plan.nodes[i].id.clone(), plan.nodes[next].id.clone()))
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// A source, four transforms in a row, a destination.
    const IN_A_ROW: &[(&str, &str)] = &[
        ("src", "a"),
        ("a", "b"),
        ("b", "c"),
        ("c", "d"),
        ("d", "out"),
    ];

    /// A transform with its `keep` hidden, so the chain applies it.
    struct ApplyOnly(Box<dyn Transform>);

    impl Transform for ApplyOnly {
        fn apply(
            &mut self,
            batch: RecordBatch,
            cx: &mut TransformContext,
        ) -> Result<RecordBatch, NodeError> {
            self.0.apply(batch, cx)
        }
    }

    /// Validate, filter, mask, filter, in a chain; with `fused`, the stages that only keep
    /// records share one copy of them.
    fn keeping_chain(input: &RecordBatch, fused: bool) -> Vec<Stage> {
        let configs = [
            json!({"type": "transform.validate", "config": {"rules": [{"field": "Email", "check": "non_null", "action": "drop_record"}]}}),
            json!({"type": "transform.filter", "config": {"conditions": [
                {"field": "StageName", "operator": "not_equal_to", "value": "Closed Lost"},
                {"field": "Amount", "operator": "greater_than", "value": 1000}]}}),
            json!({"type": "transform.mask", "config": {"fields": ["Email"], "mode": "all"}}),
            json!({"type": "transform.filter", "config": {"conditions": [
                {"field": "Amount", "operator": "less_than", "value": 90000}]}}),
            json!({"type": "transform.validate", "config": {"rules": [{"field": "Phone", "check": "non_null", "action": "drop_record"}]}}),
        ];
        let mut schema = input.schema();
        let mut stages = Vec::new();
        for (i, c) in configs.into_iter().enumerate() {
            let config = crate::registry::find(c["type"].as_str().unwrap())
                .unwrap()
                .parse(c["config"].clone())
                .unwrap();
            let (transform, output) = crate::testing::built(config.as_ref(), schema).unwrap();
            schema = output;
            let transform: Box<dyn Transform> = if fused {
                transform
            } else {
                Box::new(ApplyOnly(transform))
            };
            let handle = NodeHandle {
                id: format!("t{i}").into(),
                metrics: Default::default(),
                reporter: None,
            };
            stages.push(Stage::new(i, handle, transform));
        }
        stages
    }

    #[test]
    fn transforms_that_only_keep_records_copy_them_once_and_count_as_each_would() {
        use crate::testing::*;
        let rows = 2000;
        let stages = ["Prospecting", "Closed Lost", "Closed Won"];
        let batch = batch_of(&[
            (
                "Email",
                opt_strs(
                    &(0..rows)
                        .map(|i| (i % 7 != 0).then_some("a@b.example"))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "StageName",
                opt_strs(
                    &(0..rows)
                        .map(|i| (i % 11 != 0).then_some(stages[i % 3]))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "Phone",
                opt_strs(
                    &(0..rows)
                        .map(|i| (i % 5 != 0).then_some("+1 555 0100"))
                        .collect::<Vec<_>>(),
                ),
            ),
            (
                "Amount",
                floats(
                    &(0..rows)
                        .map(|i| (i % 13 != 0).then_some((i * 97 % 100_000) as f64))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]);
        let errors = ErrorSink::in_memory();
        let mut outputs = Vec::new();
        let mut figures = Vec::new();
        for fused in [false, true] {
            let mut chain = keeping_chain(&batch, fused);
            // The whole batch, then slices of it, then one that every stage keeps whole.
            let mut out = Vec::new();
            for part in [batch.clone(), batch.slice(0, 700), batch.slice(701, 1)] {
                out.push(pass(&mut chain, part, &errors).unwrap());
            }
            outputs.push(out);
            figures.push(
                chain
                    .iter()
                    .map(|s| {
                        let f = s.handle.metrics.figures(&s.handle.id);
                        (f.records_in, f.records_out, f.records_dropped, f.batches_in)
                    })
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(outputs[0], outputs[1]);
        assert_eq!(figures[0], figures[1]);
        // Each stage but the mask dropped some; something came through, the last batch whole.
        let dropped: Vec<u64> = figures[1].iter().map(|f| f.2).collect();
        assert_eq!(
            dropped.iter().map(|&d| d > 0).collect::<Vec<_>>(),
            [true, true, false, true, true]
        );
        assert!(outputs[1][0].as_ref().is_some_and(|b| b.num_rows() > 0));
        assert_eq!(outputs[1][2].as_ref().map(RecordBatch::num_rows), Some(1));
    }

    #[test]
    fn transforms_in_a_row_are_chained_but_sources_and_destinations_are_not() {
        let plan = plan(IN_A_ROW);
        assert_eq!(
            chained(&plan, &[]),
            pairs(&[("a", "b"), ("b", "c"), ("c", "d")])
        );
    }

    #[test]
    fn a_transform_feeding_two_nodes_ends_its_chain() {
        let plan = plan(&[
            ("src", "a"),
            ("a", "b"),
            ("b", "c"),
            ("b", "d"),
            ("c", "out"),
            ("d", "out2"),
        ]);
        assert_eq!(chained(&plan, &[]), pairs(&[("a", "b")]));
    }

    #[test]
    fn a_previewed_node_and_its_input_are_not_chained_together() {
        // A preview of `c` collects what leaves `b` (its input) and `c` itself.
        let plan = plan(IN_A_ROW);
        assert_eq!(chained(&plan, &["c", "b"]), pairs(&[("a", "b")]));
    }
}
