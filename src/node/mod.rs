//! What every node type provides: a config that the flow file holds and a runtime built
//! from it. The registry lists node types; everything else (palette, validation, runner,
//! JSON Schema) is derived from it.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use crate::paths::Dirs;

pub(crate) mod context;
mod discovery;
pub mod mark;
mod metrics;

pub use context::{Demand, ErrorSink, InFlight, SourceOutput, TransformContext};
pub use discovery::Discovery;
pub use metrics::{NodeFigures, NodeMetrics, NodeState};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Where a node sits in a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Source,
    Transform,
    Destination,
}

impl Role {
    fn of_type(name: &str) -> Role {
        match name.split('.').next() {
            Some("source") => Role::Source,
            Some("destination") => Role::Destination,
            _ => Role::Transform,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Transform => "transform",
            Role::Destination => "destination",
        })
    }
}

/// A problem in one node's config, at a JSON pointer below `config`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
    /// The service the node reads could not be reached or answered with an error while
    /// the node learnt its fields: a failed run, not a flow the user must fix.
    pub service: bool,
}

impl ConfigProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            service: false,
        }
    }

    /// A problem of the service rather than of the flow (see [`ConfigProblem::service`]).
    pub fn service(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            service: true,
            ..Self::new(path, message)
        }
    }
}

/// What a config needs to know to work out its output before a run, or to reach its
/// service for the inspector.
#[derive(Debug, Clone)]
pub struct PlanContext {
    /// Relative paths in a flow are relative to the flow file's folder.
    pub base_dir: PathBuf,
    /// Where connections, the vault and the data folder are.
    pub dirs: Dirs,
    /// What the workspace has learnt of services.
    pub discovery: Discovery,
}

/// What a runtime is built with.
#[derive(Clone)]
pub struct BuildContext {
    pub node_id: String,
    pub flow_name: String,
    pub execution_id: String,
    pub started: DateTime<Utc>,
    pub base_dir: PathBuf,
    /// Where connections, the vault and the data folder are.
    pub dirs: Dirs,
    /// What the workspace has learnt of services while planning.
    pub discovery: Discovery,
    pub input_schema: Option<SchemaRef>,
    pub output_schema: SchemaRef,
    /// Rows per batch that sources aim for.
    pub batch_rows: usize,
    /// Where this source's last successful run left off (what it gave
    /// [`SourceOutput::advance_watermark`](SourceOutput::advance_watermark));
    /// `None` the first time and on `run --full`.
    pub watermark: Option<serde_json::Value>,
    /// Where an incremental source starts when it has no watermark: the flow's
    /// `first_run_from`, unless the run reads everything (`run --full`).
    pub first_run_from: Option<chrono::DateTime<chrono::Utc>>,
    /// The run's error output, for destinations whose service refuses single records
    /// (Salesforce) and that set those aside as sources do.
    pub errors: ErrorSink,
    /// The part of its records a source reads in a partitioned run; `None`: all of them.
    pub partition: Option<Partition>,
    /// In a partitioned run: settles what every part must read alike (where a source's
    /// windows begin), whichever part asks first.
    pub agreement: Option<Agreement>,
    /// For destinations: where to record what they begin to stage outside the machine
    /// (an S3 upload), so that a run that dies is cleaned up by the next.
    pub staging: Option<StagingJournal>,
}

/// Records what a destination has begun to stage so far, as the plan its type's
/// [`NodeKind::abort_plan`] removes. A process that is killed cannot abort its S3 uploads
/// itself; the next run of the flow finds them here, once it holds the flow, and does.
#[derive(Clone)]
pub struct StagingJournal(Arc<JournalFn>);

type JournalFn = dyn Fn(&serde_json::Value) -> Result<(), String> + Send + Sync;

impl StagingJournal {
    pub fn new(
        record: impl Fn(&serde_json::Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(record))
    }

    /// Records `plan`, replacing what this node recorded before.
    pub fn record(&self, plan: &serde_json::Value) -> Result<(), String> {
        (self.0)(plan)
    }
}

/// Settles a value all the parts of a partitioned run share: the first part to propose one
/// under a key sets it, and every part — on this machine or another — gets that value back.
/// A part that works out its share from what the service says now (the oldest record)
/// would otherwise cut the records differently from a part that asked a minute earlier.
#[derive(Clone)]
pub struct Agreement(Arc<AgreeFn>);

type AgreeFn = dyn Fn(&str, &serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync;

impl Agreement {
    pub fn new(
        settle: impl Fn(&str, &serde_json::Value) -> Result<serde_json::Value, String>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(settle))
    }

    /// The value settled under `key`: `proposal` if no part settled one before.
    pub fn settle(
        &self,
        key: &str,
        proposal: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        (self.0)(key, proposal)
    }
}

/// One part of a partitioned run (`run --partitions N --partition I`): each of the runs
/// reads its own part of every source's records, and `tributary commit` publishes what
/// they all staged at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// From 0.
    pub index: u32,
    pub count: u32,
}

impl Partition {
    /// Whether a record keyed `key` (an object's key, a file's path) falls in this part:
    /// FNV-1a of the key, the same on every machine and in every release.
    pub fn holds(&self, key: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }

    /// This part's run of `0..total`, for sources that number their records: the parts
    /// follow each other and together cover it.
    pub fn range(&self, total: u64) -> std::ops::Range<u64> {
        let at = |i: u32| total * u64::from(i) / u64::from(self.count);
        at(self.index)..at(self.index + 1)
    }
}

impl BuildContext {
    /// The planning context this build was planned in, for configs that learn their
    /// service's answers again when built.
    pub fn plan(&self) -> PlanContext {
        PlanContext {
            base_dir: self.base_dir.clone(),
            dirs: self.dirs.clone(),
            discovery: self.discovery.clone(),
        }
    }

    /// Where this source's last successful run left off, in the shape the source saved it.
    pub fn saved_watermark<T: DeserializeOwned>(&self) -> Result<Option<T>, NodeError> {
        self.watermark.as_ref().map(parse_watermark).transpose()
    }
}

/// A saved watermark read back; one of another shape (the source's settings or version
/// changed) asks for a reset rather than guessing.
pub fn parse_watermark<T: DeserializeOwned>(saved: &serde_json::Value) -> Result<T, NodeError> {
    serde_json::from_value(saved.clone()).map_err(|e| {
        NodeError::msg(format!(
            "the saved watermark is not one this source wrote ({e}); reset it with `tributary state reset`"
        ))
    })
}

/// A node type's settings, as parsed from the flow file.
pub trait NodeConfig: Send + Sync + fmt::Debug + 'static {
    /// The schema of the records this node sends on, given the schema it receives
    /// (`None` for a source). Checks that every field the config names exists.
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        ctx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>>;

    /// One line for the canvas, e.g. "Opportunity · 1,000 records".
    fn summary(&self) -> String;

    /// Whether this source reads only its part of the records when a run is partitioned
    /// ([`BuildContext::partition`]), or why it cannot. A flow with a source that cannot is
    /// refused `--partitions`.
    fn reads_in_partitions(&self) -> Result<(), String> {
        Err("it cannot read a part of its records; run the flow whole".into())
    }

    /// Whether the transform this builds does to a batch what depends on that batch alone:
    /// nothing kept from one batch to the next, nothing done outside the batch but what its
    /// [`TransformContext`] reports. A chain of such transforms may run on several batches at
    /// once, one built copy a batch; the engine keeps the batches, and what the copies
    /// report, in order.
    fn per_batch(&self) -> bool {
        false
    }

    /// The runtime that does the work.
    fn build(&self, ctx: &BuildContext) -> Result<Runtime, NodeError>;

    /// Reaches the service this node talks to with its settings and says what it found,
    /// for the inspector's "Test connection". Node types that talk to no service (and say so
    /// with [`NodeKind::TESTS_CONNECTION`]) keep this default.
    fn test_connection(&self, _cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        Box::pin(async { Err(NodeError::msg("this node does not connect to a service")) })
    }

    /// The objects the node's service offers (AppFlow's entities), for the inspector's
    /// object list; node types that read one of many objects (and say so with
    /// [`NodeKind::BROWSES_ENTITIES`]) give them.
    fn entities(&self, _cx: &PlanContext) -> BoxFuture<Result<Vec<Entity>, NodeError>> {
        Box::pin(async { Err(NodeError::msg("this node has no objects to choose from")) })
    }

    /// Every field of the chosen object with its type, for the inspector's field
    /// checklist and its filter builder, whichever fields the node reads now.
    fn entity_fields(&self, _cx: &PlanContext) -> BoxFuture<Result<Vec<EntityField>, NodeError>> {
        Box::pin(async { Err(NodeError::msg("this node has no object fields")) })
    }
}

/// A field of an object, as the inspector's checklist shows it: by its label where the
/// service has one that says more than the name (`Order number` for `custom_360001`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityField {
    pub name: String,
    pub label: String,
    pub data_type: DataType,
}

/// Which setting of a node names the object it reads or writes, and what its service calls
/// its objects (`object`, `table`), for the inspector's object browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entities {
    pub setting: &'static str,
    pub word: &'static str,
    /// The word for several: `tables`, `properties`.
    pub plural: &'static str,
}

/// One object of a service: its API name and what people call it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub label: String,
}

/// A node type's static description plus how its config is parsed.
pub trait NodeKind: NodeConfig + DeserializeOwned + JsonSchema {
    /// `source.<name>`, `transform.<name>` or `destination.<name>`.
    const TYPE: &'static str;
    /// The palette's name for it.
    const TITLE: &'static str;
    /// One line for the palette and `tributary connectors`.
    const DESCRIPTION: &'static str;
    /// A symbol for the palette and the canvas.
    const ICON: &'static str;
    /// Whether the node reaches a service that "Test connection" can check.
    const TESTS_CONNECTION: bool = false;
    /// The service whose connections the node uses (`salesforce`, `s3`), if any.
    const SERVICE: Option<&'static str> = None;
    /// For nodes that offer their service's objects to choose from
    /// ([`NodeConfig::entities`]): the setting that names the chosen one, and what the
    /// service calls them.
    const ENTITIES: Option<Entities> = None;
    /// Whether the node takes several inputs (a union): it then receives the records of
    /// all of them, each batch in the union of their schemas ([`union_schema`]), and
    /// the batch's schema metadata names the input it came from ([`INPUT_KEY`]).
    const MANY_INPUTS: bool = false;
    /// Whether the destination can keep its output staged past its run for a later
    /// commit ([`Destination::keep`]), as the parts of a partitioned run need.
    const KEEPS_FOR_COMMIT: bool = false;

    /// Finishes publishing what a destination's runtime described in
    /// [`Destination::commit_plan`], for a run that was killed while it committed. Runs in
    /// another process, so it has only the plan; it must be safe to run again after it was
    /// itself interrupted. Says what is now published; an error means nothing of that run
    /// is visible any more (it was rolled back), so the run's records will be read again.
    fn finish_commit(_plan: &serde_json::Value, _dirs: &Dirs) -> Result<Published, NodeError> {
        Err(NodeError::msg(format!(
            "{} cannot finish a commit from a record",
            Self::TYPE
        )))
    }

    /// Removes what a destination's runtime kept for a later commit
    /// ([`Destination::keep`]), from the plan it gave: a partitioned run that is aborted,
    /// or a partition run again. Must be safe to run twice.
    fn abort_plan(_plan: &serde_json::Value, _dirs: &Dirs) -> Result<(), NodeError> {
        Err(NodeError::msg(format!(
            "{} keeps nothing for a later commit",
            Self::TYPE
        )))
    }
}

/// How a node type reads its config from the flow file.
type ParseConfig =
    dyn Fn(serde_json::Value) -> Result<Arc<dyn NodeConfig>, ConfigProblem> + Send + Sync;

/// One entry of the registry.
pub struct NodeType {
    pub name: &'static str,
    pub role: Role,
    pub title: &'static str,
    pub description: &'static str,
    pub icon: &'static str,
    pub tests_connection: bool,
    /// [`NodeKind::MANY_INPUTS`].
    pub many_inputs: bool,
    /// [`NodeKind::KEEPS_FOR_COMMIT`].
    pub keeps_for_commit: bool,
    /// [`NodeKind::ENTITIES`].
    pub entities: Option<Entities>,
    /// [`NodeKind::SERVICE`].
    pub service: Option<&'static str>,
    parse: Box<ParseConfig>,
    /// Turns a config of an older shape of this node type into today's.
    upgrade: Box<dyn Fn(&mut serde_json::Value) + Send + Sync>,
    schema: Box<dyn Fn(&mut SchemaGenerator) -> Schema + Send + Sync>,
    /// [`NodeKind::finish_commit`].
    pub finish_commit: fn(&serde_json::Value, &Dirs) -> Result<Published, NodeError>,
    /// [`NodeKind::abort_plan`].
    pub abort_plan: fn(&serde_json::Value, &Dirs) -> Result<(), NodeError>,
}

impl NodeType {
    pub fn of<K: NodeKind>() -> Self {
        Self {
            name: K::TYPE,
            role: Role::of_type(K::TYPE),
            title: K::TITLE,
            description: K::DESCRIPTION,
            icon: K::ICON,
            tests_connection: K::TESTS_CONNECTION,
            many_inputs: K::MANY_INPUTS,
            keeps_for_commit: K::KEEPS_FOR_COMMIT,
            entities: K::ENTITIES,
            service: K::SERVICE,
            parse: Box::new(parse_config::<K>),
            upgrade: Box::new(|_| {}),
            schema: Box::new(|g| g.subschema_for::<K>()),
            finish_commit: K::finish_commit,
            abort_plan: K::abort_plan,
        }
    }

    /// A node type made at run time rather than from a Rust type: one per service of the
    /// connector framework, whose config is the same for every service. The name and
    /// texts are kept for the life of the process, as the registry's are.
    #[allow(clippy::too_many_arguments)]
    pub fn made(
        service: &'static str,
        name: String,
        title: String,
        description: String,
        icon: &'static str,
        entities: Entities,
        parse: impl Fn(serde_json::Value) -> Result<Arc<dyn NodeConfig>, ConfigProblem>
        + Send
        + Sync
        + 'static,
        schema: impl Fn(&mut SchemaGenerator) -> Schema + Send + Sync + 'static,
    ) -> Self {
        let name: &'static str = Box::leak(name.into_boxed_str());
        Self {
            name,
            role: Role::of_type(name),
            title: Box::leak(title.into_boxed_str()),
            description: Box::leak(description.into_boxed_str()),
            icon,
            tests_connection: true,
            many_inputs: false,
            keeps_for_commit: false,
            entities: Some(entities),
            service: Some(service),
            parse: Box::new(parse),
            upgrade: Box::new(|_| {}),
            schema: Box::new(schema),
            finish_commit: |_, _| {
                Err(NodeError::msg(
                    "this node cannot finish a commit from a record",
                ))
            },
            abort_plan: |_, _| Err(NodeError::msg("this node keeps nothing for a later commit")),
        }
    }

    /// Reads older shapes of this type's config too, through `upgrade`: flows saved
    /// before a node type changed keep opening and running.
    pub fn with_upgrade(
        mut self,
        upgrade: impl Fn(&mut serde_json::Value) + Send + Sync + 'static,
    ) -> Self {
        self.upgrade = Box::new(upgrade);
        self
    }

    /// Turns a config of an older shape into today's; one of today's stays as it is.
    pub fn upgrade(&self, config: &mut serde_json::Value) {
        (self.upgrade)(config)
    }

    /// Parses a config (placeholders already filled); the problem's path is below `config`.
    pub fn parse(
        &self,
        mut config: serde_json::Value,
    ) -> Result<Arc<dyn NodeConfig>, ConfigProblem> {
        (self.upgrade)(&mut config);
        (self.parse)(config)
    }

    /// The JSON Schema of this type's config.
    pub fn config_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }
}

fn parse_config<K: NodeKind>(
    config: serde_json::Value,
) -> Result<Arc<dyn NodeConfig>, ConfigProblem> {
    Ok(Arc::new(deserialize_config::<K>(config)?))
}

/// A config read from its JSON, a problem naming where it is wrong when it is.
pub fn deserialize_config<T: DeserializeOwned>(
    config: serde_json::Value,
) -> Result<T, ConfigProblem> {
    serde_path_to_error::deserialize::<_, T>(config).map_err(|e| {
        ConfigProblem::new(
            crate::serde_words::pointer_from_serde_path(e.path()),
            crate::serde_words::serde_in_words(&e.inner().to_string()),
        )
    })
}

/// A built node, ready to run.
pub enum Runtime {
    Source(Box<dyn Source>),
    Transform(Box<dyn Transform>),
    Destination(Box<dyn Destination>),
}

/// Produces batches. Runs as its own task; a source that blocks (files) moves its work to a
/// blocking thread and uses [`SourceOutput::send_blocking`].
pub trait Source: Send {
    fn run(self: Box<Self>, out: SourceOutput) -> BoxFuture<Result<(), NodeError>>;
}

/// Turns batches into batches. Called on one batch at a time; `finish` lets stateful
/// transforms (aggregate) emit what they hold once the input ends.
pub trait Transform: Send {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError>;

    fn finish(&mut self, _cx: &mut TransformContext) -> Result<Option<RecordBatch>, NodeError> {
        Ok(None)
    }

    /// For a transform that only keeps some records as they are (a filter, say): the
    /// records of `batch` it keeps, true where kept; `None` when it does more than that.
    /// The engine then copies the records out once for several such transforms in a row,
    /// rather than once for each, and counts what each dropped itself. Asked of every row
    /// of `batch`, including rows a transform before it dropped, so the answer must have
    /// no effect of its own (no records set aside, no errors about one record).
    fn keep(&mut self, _batch: &RecordBatch) -> Option<Result<BooleanArray, NodeError>> {
        None
    }
}

/// Writes batches somewhere. Runs on a blocking thread. Nothing it writes is visible under
/// its final name before `commit`, which the engine calls only when every node of the run
/// succeeded; otherwise it calls `abort`, which removes everything staged.
pub trait Destination: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError>;
    /// Flushes and closes staged output; the input has ended.
    fn finish(&mut self) -> Result<(), NodeError>;
    /// What publishing this run's output takes, as a document that outlives the process
    /// (see [`NodeKind::finish_commit`]). The engine keeps it in the run's commit record
    /// before `commit` publishes anything. `None`: the destination publishes in a way that
    /// cannot be finished by another process; a kill while it commits may leave part of
    /// its output visible, and the README says so for each such destination.
    fn commit_plan(&self) -> Option<serde_json::Value> {
        None
    }
    fn commit(self: Box<Self>) -> Result<Published, NodeError>;
    fn abort(self: Box<Self>);
    /// Keeps the staged output, unpublished, past the end of the process, for a commit
    /// that publishes several partitions' output at once (`tributary commit`); gives the
    /// plan that [`NodeKind::finish_commit`] publishes and [`NodeKind::abort_plan`] removes.
    fn keep(self: Box<Self>) -> Result<serde_json::Value, NodeError> {
        self.abort();
        Err(NodeError::msg(
            "this destination cannot keep its output for a later commit, so it cannot take part in a partitioned run",
        ))
    }
    /// Bytes written so far, staged or not.
    fn bytes_written(&self) -> u64;
}

/// What committing one destination made visible.
#[derive(Debug, Default)]
pub struct Published {
    pub outputs: Vec<OutputLocation>,
    /// Tables the output was registered in, so that query engines find it.
    pub registered: Vec<Registration>,
}

impl From<Vec<OutputLocation>> for Published {
    fn from(outputs: Vec<OutputLocation>) -> Self {
        Published {
            outputs,
            registered: Vec::new(),
        }
    }
}

/// A table in a catalog that a run registered its output in, and what it changed there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// The destination node that registered it.
    #[serde(default)]
    pub node: String,
    /// `glue` (the AWS Glue Data Catalog) or `duckdb` (a view file beside the data).
    pub catalog: String,
    /// `database.table` in Glue; the view's file for DuckDB.
    pub table: String,
    /// What the run changed, in words: "created the table", "added 2 partitions: …".
    /// Empty when the table already described everything the run wrote.
    pub changes: Vec<String>,
}

/// One object a run produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputLocation {
    pub location: String,
    pub records: u64,
    pub bytes: u64,
}

/// A record that could not be processed. It is written to the run's error output and
/// counted; it never silently disappears.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRecord {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub reason: String,
    /// The record as it was read, or as JSON when it came from a batch.
    pub record: String,
}

/// Why a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Message(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Rejected(ErrorRecord),
    #[error("the run was cancelled")]
    Cancelled,
    /// A failure that passes by itself: the network, a service's 5xx or 429 after the
    /// client's own retries, a timeout. `tributary serve` tries such a run again later.
    #[error("{0}")]
    Transient(String),
}

impl NodeError {
    pub fn msg(message: impl Into<String>) -> Self {
        NodeError::Message(message.into())
    }

    /// Whether trying the run again later may succeed (see [`NodeError::Transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, NodeError::Transient(_))
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A config that validation accepted but the runtime still refuses (say, a file that has
/// since disappeared) fails the run with the first problem's words.
impl From<Vec<ConfigProblem>> for NodeError {
    fn from(problems: Vec<ConfigProblem>) -> Self {
        let message = problems
            .into_iter()
            .next()
            .map_or_else(|| "the settings are not valid".into(), |p| p.message);
        NodeError::Message(message)
    }
}

impl fmt::Display for ErrorRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}, line {line}: {}", self.reason),
            (Some(file), None) => write!(f, "{file}: {}", self.reason),
            _ => f.write_str(&self.reason),
        }
    }
}

/// The schema metadata key by which a batch sent to a node with several inputs names the
/// input it came from (its label, else its id).
pub const INPUT_KEY: &str = "tributary.input";

/// What a node with several inputs receives: every field of every input, by name, in the
/// order they first appear. A field several inputs have must have one type in all of
/// them; the message names the inputs and types that differ.
pub fn union_schema(inputs: &[(&str, &SchemaRef)]) -> Result<SchemaRef, String> {
    let mut fields: Vec<arrow::datatypes::Field> = Vec::new();
    let mut from: Vec<&str> = Vec::new();
    for (input, schema) in inputs {
        for field in schema.fields() {
            match fields.iter().position(|f| f.name() == field.name()) {
                None => {
                    fields.push(field.as_ref().clone().with_nullable(true));
                    from.push(input);
                }
                Some(i) if fields[i].data_type() == field.data_type() => {}
                Some(i) => {
                    return Err(format!(
                        "`{}` is {} in `{}` but {} in `{input}`: make them one type (a map or a cast) before the union",
                        field.name(),
                        crate::types::describe(fields[i].data_type()),
                        from[i],
                        crate::types::describe(field.data_type()),
                    ));
                }
            }
        }
    }
    Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
}
