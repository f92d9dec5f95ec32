//! The app's state, apart from any drawing: the open flow and its history, the selection,
//! what validation, previews and runs reported. [`AppState::apply`] is the one place
//! commands change it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::commands::Command;
use super::connection_state::ConnectionsState;
use super::form;
use super::table::PreviewTable;
use super::worker::{DialogRequest, Message, Worker};
use crate::engine::{NodeFigures, NodeState, RunEvent, RunRecord};
use crate::flow::{Analysis, Edge, Flow, Node, Problem, Trigger};
use crate::node::Role;
use crate::paths::Dirs;
use crate::registry;

/// The flow a new window starts with: the demo flow, which needs no account and no network.
pub const STARTER_FLOW: &str = include_str!("../../flows/demo-opportunities-to-lake.json");

/// Edits of the same thing closer together than this are undone as one.
const COALESCE: Duration = Duration::from_millis(1500);
/// Previews wait until typing pauses this long: long enough that fast typing sends one
/// preview, not one a key; short enough that the preview (about 60 ms five transforms deep
/// over 5 GB: `benches/preview.sh`) is on screen within 200 ms of the edit. A preview asked
/// between two slow keys costs little: its answer is dropped when the flow changed since.
pub const PREVIEW_DEBOUNCE: Duration = Duration::from_millis(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Preview,
    Run,
    History,
    Cost,
    Problems,
}

/// The open flow file.
pub struct Document {
    pub flow: Flow,
    pub path: Option<PathBuf>,
    saved: Flow,
    /// Goes up with every change, so background results can be matched to the flow they
    /// were computed for.
    pub revision: u64,
}

impl Document {
    /// A flow with older shapes of node settings in today's shape (saved so next time):
    /// the inspector shows only today's settings.
    fn new(mut flow: Flow, path: Option<PathBuf>) -> Self {
        crate::registry::upgrade(&mut flow);
        Self {
            saved: flow.clone(),
            flow,
            path,
            revision: 1,
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.flow != self.saved
    }

    /// Relative paths in the flow resolve here: the flow file's folder, or the working
    /// folder for a flow not saved yet.
    pub fn base_dir(&self) -> PathBuf {
        match &self.path {
            Some(p) => crate::workspace::base_dir(p),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    }

    pub fn title(&self) -> String {
        let name = self
            .path
            .as_ref()
            .and_then(|p| p.file_name())
            .map_or("untitled".into(), |n| n.to_string_lossy().into_owned());
        format!(
            "{}{} — Tributary",
            if self.is_dirty() { "* " } else { "" },
            name
        )
    }
}

struct Snapshot {
    flow: Flow,
    key: Option<String>,
    at: Instant,
}

#[derive(Default)]
struct History {
    undo: Vec<Snapshot>,
    redo: Vec<Flow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewKey {
    pub node: String,
    pub revision: u64,
    pub limit: u64,
}

pub struct PreviewState {
    pub limit: u64,
    pub requested: Option<PreviewKey>,
    pub loading: bool,
    pub result: Option<(PreviewKey, Result<PreviewTable, String>)>,
}

/// The open flow's past runs, from the run history; read when the History tab is shown
/// and after each run, never while drawing.
#[derive(Default)]
pub struct PastRuns {
    /// Newest first.
    pub runs: Vec<crate::state::RunRow>,
    /// Why the history could not be read.
    pub error: Option<String>,
    /// Runs recorded before the history was kept have been taken in.
    older_taken_in: bool,
}

/// The open flow as the service sees it: whether it is active, and whether a service is
/// running on this data folder. Read when a scheduled flow is open, every few seconds (the
/// service may deactivate the flow) and right after a switch, never while drawing.
#[derive(Default)]
pub struct ServiceView {
    pub activation: Option<crate::state::Activation>,
    pub running: Option<crate::state::ServiceInfo>,
    pub error: Option<String>,
    read_at: Option<Instant>,
}

/// How often the app looks at the service's state again.
const SERVICE_LOOK: Duration = Duration::from_secs(2);

/// How many past runs the History tab shows.
const PAST_RUNS: usize = 200;

/// A run in progress or the last one.
#[derive(Default)]
pub struct RunState {
    pub cancel: Option<CancellationToken>,
    pub figures: IndexMap<String, NodeFigures>,
    pub started: Option<Instant>,
    /// (seconds since start, records per second) for the throughput chart.
    pub throughput: Vec<[f64; 2]>,
    last_sample: Option<(Instant, u64)>,
    /// Records the sources will produce, when they can say so in advance.
    pub expected: Option<u64>,
    pub record: Option<RunRecord>,
    /// Problems that kept the run from starting.
    pub refused: Vec<Problem>,
}

impl RunState {
    pub fn is_running(&self) -> bool {
        self.cancel.is_some()
    }

    /// Records read by the sources so far.
    pub fn records_read(&self, sources: &[String]) -> u64 {
        sources
            .iter()
            .filter_map(|s| self.figures.get(s))
            .map(|f| f.records_out)
            .sum()
    }
}

/// The status line's message: what the last action did, or why it could not.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// "Test connection" for one node: for which settings, and what came of it (`None` while
/// it runs). A result for other settings than the node has now is out of date.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionTest {
    pub document: u64,
    pub config: Value,
    pub result: Option<Result<String, String>>,
}

/// What a node's service offers, fetched for one connection and object: the objects to
/// choose from and the chosen object's fields (name, type in words). `None` while loading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub key: (String, String),
    pub entities: Option<Result<Vec<crate::node::Entity>, String>>,
    pub fields: Option<Result<Vec<CatalogField>, String>>,
    pub search: String,
}

/// A field of the object a node reads, with its type in words.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogField {
    pub name: String,
    pub label: String,
    pub kind: String,
}

impl CatalogField {
    /// What the checklist shows: the name and type, after the label when the label says
    /// more than the name (`Order number  ·  custom_360001  ·  integer`).
    pub fn shown(&self) -> String {
        let plain = |s: &str| {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        };
        match self.label.is_empty() || plain(&self.label) == plain(&self.name) {
            true => format!("{}  ·  {}", self.name, self.kind),
            false => format!("{}  ·  {}  ·  {}", self.label, self.name, self.kind),
        }
    }
}

impl Catalog {
    /// The connection and object a node's settings name (the object in `setting`): what
    /// a catalog is fetched for.
    pub fn key_of(config: &Value, setting: &str) -> (String, String) {
        let text = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        (text("connection"), text(setting))
    }
}

pub struct AppState {
    pub doc: Document,
    history: History,
    pub selection: Vec<String>,
    clipboard: Vec<(Node, Vec<Edge>)>,
    pub analysis: Analysis,
    pub analysis_revision: u64,
    last_edit: Instant,
    pub preview: PreviewState,
    pub run: RunState,
    pub past_runs: PastRuns,
    pub service: ServiceView,
    pub tab: Tab,
    pub palette_search: String,
    pub status: Option<Status>,
    pub dirs: Dirs,
    /// No flow is open: the welcome screen shows instead of the editor.
    pub welcome: bool,
    /// Flows opened or saved lately, newest first.
    pub recent: Vec<PathBuf>,
    /// Their flows' names, as last read or saved.
    pub recent_names: HashMap<PathBuf, String>,
    /// The example flows the welcome screen offers.
    pub examples: Vec<super::welcome::Example>,
    /// A command that would drop unsaved changes, waiting for the user's answer.
    pub confirm: Option<Command>,
    /// The app's own path box, open when the desktop's file dialog could not be shown.
    pub path_prompt: Option<PathPrompt>,
    /// What an AppFlow import or export cannot carry over, shown before it goes ahead.
    pub appflow: Option<AppFlowReport>,
    /// A command to carry out once the Save As dialog has saved the flow.
    after_save: Option<Command>,
    /// The window may close now.
    pub quit: bool,
    /// Goes up each time another flow is opened or started.
    pub document: u64,
    /// The last "Test connection" of each node.
    pub connection_tests: HashMap<String, ConnectionTest>,
    /// The Connections window, and the connections nodes can pick from.
    pub connections: ConnectionsState,
    /// The `tributary` program, which "Start the service" runs.
    pub binary: PathBuf,
    /// Each node's object list and fields, for nodes that read one of many objects.
    pub catalogs: HashMap<String, Catalog>,
}

impl AppState {
    pub fn new(dirs: Dirs, flow: Flow, path: Option<PathBuf>) -> Self {
        let recent = super::recent::load(&dirs);
        Self {
            doc: Document::new(flow, path),
            history: History::default(),
            past_runs: PastRuns::default(),
            service: ServiceView::default(),
            selection: Vec::new(),
            clipboard: Vec::new(),
            analysis: Analysis::default(),
            analysis_revision: 0,
            last_edit: Instant::now() - PREVIEW_DEBOUNCE,
            preview: PreviewState {
                limit: 100,
                requested: None,
                loading: false,
                result: None,
            },
            run: RunState::default(),
            tab: Tab::Preview,
            palette_search: String::new(),
            status: None,
            recent_names: super::recent::names(&recent),
            recent,
            connections: ConnectionsState::load(&dirs),
            binary: std::env::current_exe().unwrap_or_else(|_| "tributary".into()),
            catalogs: HashMap::new(),
            examples: Vec::new(),
            dirs,
            welcome: false,
            connection_tests: HashMap::new(),
            confirm: None,
            path_prompt: None,
            appflow: None,
            after_save: None,
            quit: false,
            document: 0,
        }
    }

    /// The file given on the command line, or the welcome screen.
    pub fn open_initial(dirs: Dirs, path: Option<&Path>) -> Self {
        let mut state = Self::new(dirs, empty_flow(), None);
        state.welcome = true;
        state.examples = super::welcome::find_examples();
        if let Some(path) = path {
            state.open(path.to_path_buf());
        }
        state
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.status = Some(Status {
            text: text.into(),
            error,
        });
    }

    /// The problems that belong to a node.
    pub fn problems_of(&self, node: &str) -> Vec<&Problem> {
        if self.analysis_revision != self.doc.revision {
            return Vec::new();
        }
        self.analysis
            .problems
            .iter()
            .filter(|p| p.node.as_deref() == Some(node))
            .collect()
    }

    /// Every problem of the flow: the latest check's, and those a refused run found beyond
    /// them (each once). The header, the Problems tab and its count all read this.
    pub fn all_problems(&self) -> Vec<&Problem> {
        let mut all: Vec<&Problem> = self.analysis.problems.iter().collect();
        for p in &self.run.refused {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        all
    }

    /// The node's problems as the latest check found them, even while a newer edit is
    /// being checked: what the inspector shows, so problems do not blink at every key.
    pub fn last_problems_of(&self, node: &str) -> Vec<&Problem> {
        self.analysis
            .problems
            .iter()
            .filter(|p| p.node.as_deref() == Some(node))
            .collect()
    }

    /// The fields a node receives, when its input is known.
    pub fn input_fields(&self, node: &str) -> Option<arrow::datatypes::SchemaRef> {
        let edge = self.doc.flow.edges.iter().find(|e| e.to == node)?;
        self.analysis.schemas.get(&edge.from).cloned()
    }

    pub fn selected_node(&self) -> Option<&Node> {
        match self.selection.as_slice() {
            [id] => self.doc.flow.node(id),
            _ => None,
        }
    }

    /// Changes the flow, keeping what it was for undo. Edits with the same `key` in quick
    /// succession (typing, dragging) are undone together.
    fn edit(&mut self, key: Option<String>, change: impl FnOnce(&mut Flow)) {
        let before = self.doc.flow.clone();
        change(&mut self.doc.flow);
        if self.doc.flow == before {
            return;
        }
        let now = Instant::now();
        let coalesce = key.is_some()
            && self
                .history
                .undo
                .last()
                .is_some_and(|s| s.key == key && now - s.at < COALESCE);
        match self.history.undo.last_mut() {
            Some(last) if coalesce => last.at = now,
            _ => self.history.undo.push(Snapshot {
                flow: before,
                key,
                at: now,
            }),
        }
        self.history.redo.clear();
        self.changed();
    }

    fn changed(&mut self) {
        self.doc.revision += 1;
        self.last_edit = Instant::now();
        // What a refused run found was about the flow as it was.
        self.run.refused.clear();
        let ids: Vec<String> = self.doc.flow.nodes.iter().map(|n| n.id.clone()).collect();
        self.selection.retain(|s| ids.contains(s));
    }

    fn replace_document(&mut self, flow: Flow, path: Option<PathBuf>) {
        let revision = self.doc.revision + 1;
        self.doc = Document::new(flow, path);
        self.doc.revision = revision;
        self.document += 1;
        self.history = History::default();
        self.selection.clear();
        self.preview.result = None;
        self.run = RunState::default();
        self.status = None;
        self.last_edit = Instant::now() - PREVIEW_DEBOUNCE;
        if self.tab == Tab::History {
            self.read_past_runs();
        }
    }

    /// Reads whether the open flow is active and whether the service runs.
    fn look_at_service(&mut self) {
        self.service.read_at = Some(Instant::now());
        self.service.running = crate::state::ServiceLock::holder(&self.dirs);
        match crate::state::StateStore::open(&self.dirs)
            .and_then(|s| s.activation(&self.doc.flow.name))
        {
            Ok(a) => {
                self.service.activation = a;
                self.service.error = None;
            }
            Err(e) => self.service.error = Some(e),
        }
    }

    /// Activates or deactivates the open flow: the same switch as `tributary activate`.
    fn set_active(&mut self, active: bool) {
        let name = self.doc.flow.name.clone();
        let switched = crate::state::StateStore::open(&self.dirs).and_then(|s| match active {
            true => s.activate(&name),
            false => s.deactivate(&name, None),
        });
        match switched {
            Err(e) => self.say(e, true),
            Ok(()) if active && self.doc.is_dirty() => self.say(
                format!("\"{name}\" is active; the service runs the saved file, so save to have it run your changes"),
                false,
            ),
            Ok(()) if active => self.say(format!("\"{name}\" is active"), false),
            Ok(()) => self.say(
                format!("\"{name}\" is inactive: the service starts no more runs of it"),
                false,
            ),
        }
        self.look_at_service();
    }

    /// Starts `tributary serve` on the open flow's folder, as its own process: it goes on
    /// running when the app closes. What it says goes to `service.log` in the data folder.
    fn start_service(&mut self) {
        let Some(path) = &self.doc.path else {
            return;
        };
        let folder = self.doc.base_dir();
        let started = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dirs.data)?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dirs.data.join("service.log"))?;
            let mut service = std::process::Command::new(&self.binary)
                .arg("serve")
                .arg("--flows")
                .arg(&folder)
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            // Reaped when it ends while the app is open, so it leaves no zombie behind.
            std::thread::spawn(move || service.wait());
            Ok(())
        })();
        match started {
            Ok(()) => self.say(
                format!(
                    "The service runs the active flows of {} now; it goes on when the app closes",
                    folder.display()
                ),
                false,
            ),
            Err(e) => self.say(
                format!("Could not start the service for {}: {e}", path.display()),
                true,
            ),
        }
        // It takes its lock in a moment: look again soon.
        self.service.read_at = Some(Instant::now() - SERVICE_LOOK + Duration::from_millis(300));
    }

    /// Reads the open flow's past runs from the run history.
    fn read_past_runs(&mut self) {
        if !self.past_runs.older_taken_in {
            self.past_runs.older_taken_in = true;
            if let Err(e) = crate::engine::index_missing(&self.dirs) {
                tracing::warn!("older runs are not in the run history: {e}");
            }
        }
        let filter = crate::state::RunFilter {
            flow: Some(self.doc.flow.name.clone()),
            limit: Some(PAST_RUNS),
            ..Default::default()
        };
        match crate::state::StateStore::open(&self.dirs).and_then(|s| s.runs(&filter)) {
            Ok(runs) => {
                self.past_runs.runs = runs;
                self.past_runs.error = None;
            }
            Err(e) => self.past_runs.error = Some(e),
        }
    }

    fn open(&mut self, path: PathBuf) {
        match Flow::load(&path) {
            Ok(flow) => {
                self.replace_document(flow, Some(path.clone()));
                self.welcome = false;
                self.remember_recent(&path);
                self.say(format!("Opened {}", path.display()), false);
            }
            Err(e) => {
                self.say(e.to_string(), true);
            }
        }
    }

    fn choose_save_as(&self, worker: &Worker) {
        worker.choose_file(
            DialogRequest::SaveFlow(self.offered_file_name()),
            self.doc.base_dir(),
        )
    }

    /// Reads an AppFlow definition into a flow; one that lacks something, or needs
    /// connections made, waits in the report until the user goes ahead.
    fn import_appflow(&mut self, path: &Path, flow: Option<String>, worker: &Worker) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return self.say(format!("Cannot read {}: {e}", path.display()), true),
        };
        // A template of several flows: the user picks one first.
        if flow.is_none()
            && let Ok(root) = crate::appflow::definition::parse(&text)
        {
            let flows: Vec<(String, String)> = crate::appflow::definition::template_flows(&root)
                .into_iter()
                .map(|id| {
                    let about = crate::appflow::definition::about_template_flow(&root, &id);
                    (id, about)
                })
                .collect();
            if flows.len() > 1 {
                self.appflow = Some(AppFlowReport {
                    title: format!(
                        "{} holds {} flows: which one?",
                        file_name(path),
                        flows.len()
                    ),
                    gaps: Vec::new(),
                    notes: Vec::new(),
                    go_ahead: String::new(),
                    waiting: AppFlowWaiting::Choose {
                        path: path.to_path_buf(),
                        flows,
                    },
                });
                return;
            }
        }
        let connections = crate::auth::load(&self.dirs)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, c)| (name, c.connector))
            .collect();
        let options = crate::appflow::ImportOptions { flow, connections };
        let mut imported = match crate::appflow::import(&text, &options) {
            Ok(imported) => imported,
            Err(problem) => return self.say(format!("{}: {problem}", path.display()), true),
        };
        let gaps: Vec<String> = imported.gaps.iter().map(ToString::to_string).collect();
        crate::appflow::import::note_gaps(&mut imported);
        let waiting = AppFlowWaiting::Open(Box::new(imported.flow));
        if gaps.is_empty() && imported.notes.is_empty() {
            self.appflow = Some(AppFlowReport::silent(waiting));
            return self.apply(Command::AcceptAppFlowReport, worker);
        }
        self.appflow = Some(AppFlowReport {
            title: format!("Importing {}", file_name(path)),
            gaps,
            notes: imported.notes,
            go_ahead: "Open the flow".into(),
            waiting,
        });
    }

    /// Writes the flow as an AppFlow flow; one with settings AppFlow lacks waits in the
    /// report, and one AppFlow cannot run is refused with the node and why.
    fn export_appflow(&mut self, path: PathBuf, worker: &Worker) {
        let exported = match crate::appflow::export(&self.doc.flow, &IndexMap::new()) {
            Ok(exported) => exported,
            Err(refused) => {
                return self.say(format!("AppFlow cannot run this flow: {refused}"), true);
            }
        };
        let mut text = serde_json::to_string_pretty(&exported.request).expect("plain data");
        text.push('\n');
        let waiting = AppFlowWaiting::Write { path, text };
        if exported.gaps.is_empty() {
            self.appflow = Some(AppFlowReport::silent(waiting));
            return self.apply(Command::AcceptAppFlowReport, worker);
        }
        self.appflow = Some(AppFlowReport {
            title: "Exporting as an AppFlow flow".into(),
            gaps: exported.gaps.iter().map(ToString::to_string).collect(),
            notes: Vec::new(),
            go_ahead: "Write it without them".into(),
            waiting,
        });
    }

    /// Whether the report's go-ahead opens a flow in place of the one open.
    fn report_opens_a_flow(&self) -> bool {
        matches!(
            self.appflow.as_ref().map(|r| &r.waiting),
            Some(AppFlowWaiting::Open(_))
        )
    }

    /// Goes ahead with what the report waits on, as its button does.
    fn carry_out_report(&mut self) {
        match self.appflow.take().map(|r| r.waiting) {
            Some(AppFlowWaiting::Open(flow)) => {
                self.replace_document(*flow, None);
                self.welcome = false;
                self.say("Imported the AppFlow flow; save it to keep it", false);
            }
            Some(AppFlowWaiting::Write { path, text }) => self.write_export(&path, &text),
            // Answered by choosing a flow, which imports it.
            Some(AppFlowWaiting::Choose { .. }) | None => {}
        }
    }

    fn write_export(&mut self, path: &Path, text: &str) {
        match std::fs::write(path, text) {
            Ok(()) => self.say(
                format!(
                    "Wrote the AppFlow flow to {}: aws appflow create-flow --cli-input-json file://{}",
                    path.display(),
                    path.display()
                ),
                false,
            ),
            Err(e) => self.say(format!("Cannot write {}: {e}", path.display()), true),
        }
    }

    fn save_to(&mut self, path: PathBuf, worker: &Worker) {
        // Files and folders named relative to where the flow was keep pointing where they
        // pointed from where it goes.
        let from = std::path::absolute(self.doc.base_dir()).unwrap_or_default();
        let to = std::path::absolute(crate::workspace::base_dir(&path)).unwrap_or_default();
        if from != to {
            for node in &mut self.doc.flow.nodes {
                for pointer in form::path_settings(&node.kind) {
                    if let Some(Value::String(p)) = node.config.pointer_mut(&pointer) {
                        *p = moved_path(p, &from, &to);
                    }
                }
            }
        }
        match self.doc.flow.save(&path) {
            Ok(()) => {
                self.doc.saved = self.doc.flow.clone();
                if self.doc.path.as_ref() != Some(&path) {
                    self.doc.path = Some(path.clone());
                    // Relative paths now resolve against another folder.
                    self.changed();
                }
                self.remember_recent(&path);
                self.say(format!("Saved {}", path.display()), false);
                if let Some(next) = self.after_save.take() {
                    self.confirm = None;
                    self.carry_out(next, worker);
                }
            }
            Err(e) => self.say(format!("Cannot save {}: {e}", path.display()), true),
        }
    }

    /// Carries out one command; one that would drop unsaved changes first asks whether to
    /// save them.
    pub fn apply(&mut self, command: Command, worker: &Worker) {
        let drops_the_flow = matches!(
            command,
            Command::NewFlow
                | Command::OpenDemo
                | Command::OpenFlow(_)
                | Command::CloseFlow
                | Command::Quit
        ) || (command == Command::AcceptAppFlowReport
            && self.report_opens_a_flow());
        if drops_the_flow && self.doc.is_dirty() && !self.welcome {
            self.confirm = Some(command);
            return;
        }
        if self.hold_for_vault(&command) {
            return;
        }
        self.carry_out(command, worker);
    }

    fn carry_out(&mut self, command: Command, worker: &Worker) {
        // A message speaks of the last thing done: the next one makes it stale. Looking at
        // another tab changes nothing.
        if !matches!(command, Command::ShowTab(_)) {
            self.status = None;
        }
        match command {
            Command::NewFlow => {
                let mut flow = empty_flow();
                flow.name = "New flow".into();
                self.replace_document(flow, None);
                self.welcome = false;
            }
            Command::OpenDemo => {
                let demo =
                    Flow::from_json(STARTER_FLOW, "the demo flow").expect("the demo flow is valid");
                self.replace_document(demo, None);
                self.welcome = false;
            }
            Command::ChooseFlowToOpen => {
                worker.choose_file(DialogRequest::OpenFlow, self.doc.base_dir())
            }
            Command::OpenFlow(path) => self.open(path),
            Command::Save => match self.doc.path.clone() {
                Some(path) => self.save_to(path, worker),
                None => self.choose_save_as(worker),
            },
            Command::ChooseSaveAs => self.choose_save_as(worker),
            Command::ChooseAppFlowToImport => {
                worker.choose_file(DialogRequest::ImportAppFlow, self.doc.base_dir())
            }
            Command::ImportAppFlow { path, flow } => self.import_appflow(&path, flow, worker),
            Command::ChooseAppFlowExport => {
                let name = self.offered_file_name().replace(".json", ".appflow.json");
                worker.choose_file(DialogRequest::ExportAppFlow(name), self.doc.base_dir())
            }
            Command::ExportAppFlow(path) => self.export_appflow(path, worker),
            Command::AcceptAppFlowReport => self.carry_out_report(),
            Command::DismissAppFlowReport => self.appflow = None,
            Command::EditPathPrompt(text) => {
                if let Some(prompt) = &mut self.path_prompt {
                    prompt.text = text;
                }
            }
            Command::CancelPathPrompt => {
                // As a cancelled dialog: what waited for a save does not happen.
                if matches!(
                    self.path_prompt.take().map(|p| p.request),
                    Some(DialogRequest::SaveFlow(_))
                ) {
                    self.after_save = None;
                }
            }
            Command::SubmitPathPrompt => {
                let Some(prompt) = self.path_prompt.take() else {
                    return;
                };
                let path = PathBuf::from(prompt.text.trim());
                match prompt.request {
                    DialogRequest::OpenFlow => self.carry_out(Command::OpenFlow(path), worker),
                    DialogRequest::SaveFlow(_) => self.carry_out(Command::SaveAs(path), worker),
                    DialogRequest::ImportAppFlow => {
                        self.carry_out(Command::ImportAppFlow { path, flow: None }, worker)
                    }
                    DialogRequest::ExportAppFlow(_) => {
                        self.carry_out(Command::ExportAppFlow(path), worker)
                    }
                    DialogRequest::NodePath { node, pointer, .. } => {
                        self.set_node_path(node, &pointer, path, worker)
                    }
                }
            }
            Command::SaveAs(path) => self.save_to(path, worker),
            Command::CloseFlow => {
                self.replace_document(empty_flow(), None);
                self.welcome = true;
            }
            Command::Quit => self.quit = true,
            Command::SaveThenContinue => {
                let Some(next) = self.confirm.take() else {
                    return;
                };
                match self.doc.path.clone() {
                    Some(path) => {
                        self.save_to(path, worker);
                        if !self.doc.is_dirty() {
                            self.carry_out(next, worker);
                        }
                    }
                    None => {
                        self.after_save = Some(next);
                        self.choose_save_as(worker);
                    }
                }
            }
            Command::DiscardThenContinue => {
                if let Some(next) = self.confirm.take() {
                    self.carry_out(next, worker);
                }
            }
            Command::KeepEditing => self.confirm = None,

            Command::AddNode { kind, position } => {
                let Some(t) = registry::find(&kind) else {
                    return;
                };
                let id = unique_id(&self.doc.flow, t.name.split('.').nth(1).unwrap_or("node"));
                let config = form::default_config(t);
                // Nodes added at one spot one after another step aside, so none hides
                // another.
                let mut position = position;
                let taken = |p: [f32; 2], f: &Flow| {
                    f.nodes.iter().any(|n| {
                        (n.position[0] - p[0]).abs() < 10.0 && (n.position[1] - p[1]).abs() < 10.0
                    })
                };
                while taken(position, &self.doc.flow) {
                    position = [position[0] + 40.0, position[1] + 40.0];
                }
                let node = Node {
                    id: id.clone(),
                    kind: t.name.into(),
                    label: None,
                    position,
                    config,
                };
                self.edit(None, |f| f.nodes.push(node));
                self.selection = vec![id];
            }
            Command::RemoveNodes(ids) => {
                self.edit(None, |f| {
                    f.nodes.retain(|n| !ids.contains(&n.id));
                    f.edges
                        .retain(|e| !ids.contains(&e.from) && !ids.contains(&e.to));
                });
            }
            Command::TidyLayout => {
                let moves = tidy_layout(&self.doc.flow);
                self.edit(None, |f| {
                    for n in &mut f.nodes {
                        if let Some(pos) = moves.get(&n.id) {
                            n.position = *pos;
                        }
                    }
                });
            }
            Command::MoveNodes(moves) => {
                let key = format!(
                    "move:{}",
                    moves
                        .iter()
                        .map(|(id, _)| id.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                self.edit(Some(key), |f| {
                    for (id, pos) in &moves {
                        if let Some(n) = f.nodes.iter_mut().find(|n| &n.id == id) {
                            n.position = *pos;
                        }
                    }
                });
            }
            Command::Connect { from, to } => {
                if let Err(why) = self.can_connect(&from, &to) {
                    self.say(why, true);
                    // The canvas drew the connection already; the next sync removes it.
                    self.doc.revision += 1;
                    return;
                }
                // A transform or destination takes one input: a new one replaces it, and
                // says so. A union takes any number.
                let many = self.takes_many_inputs(&to);
                if many
                    && self
                        .doc
                        .flow
                        .edges
                        .iter()
                        .any(|e| e.from == from && e.to == to)
                {
                    // Already connected: the next sync takes the second wire away.
                    self.doc.revision += 1;
                    return;
                }
                let replaced = self
                    .doc
                    .flow
                    .edges
                    .iter()
                    .find(|e| !many && e.to == to && e.from != from)
                    .map(|e| e.from.clone());
                let said = replaced.map(|old| {
                    format!(
                        "{} now takes its records from {} instead of {} (Ctrl+Z to undo)",
                        self.label_of(&to),
                        self.label_of(&from),
                        self.label_of(&old)
                    )
                });
                self.edit(None, |f| {
                    f.edges.retain(|e| many || e.to != to);
                    f.edges.push(Edge { from, to });
                });
                if let Some(said) = said {
                    self.say(said, false);
                }
            }
            Command::Rewire { old, from, to } => {
                let mut edges = self.doc.flow.edges.clone();
                edges.retain(|e| !(e.from == old.0 && e.to == old.1));
                if let Err(why) = self.can_connect_in(&edges, &from, &to) {
                    self.say(
                        format!(
                            "{why}; the connection from {} to {} is kept",
                            self.label_of(&old.0),
                            self.label_of(&old.1)
                        ),
                        true,
                    );
                    // The canvas moved the wire already; the next sync puts it back.
                    self.doc.revision += 1;
                    return;
                }
                if old == (from.clone(), to.clone()) {
                    // Let go of where it was: the flow is as it was, and the canvas, which
                    // lifted the wire, draws it again.
                    self.doc.revision += 1;
                    return;
                }
                let many = self.takes_many_inputs(&to);
                self.edit(None, |f| {
                    f.edges.retain(|e| {
                        !(e.from == old.0 && e.to == old.1)
                            && (e.to != to || (many && e.from != from))
                    });
                    f.edges.push(Edge { from, to });
                });
            }
            Command::Disconnect { from, to } => self.edit(None, |f| {
                f.edges.retain(|e| !(e.from == from && e.to == to))
            }),
            Command::SetConfig { node, config } => {
                let key = format!("config:{node}");
                self.edit(Some(key), |f| {
                    if let Some(n) = f.nodes.iter_mut().find(|n| n.id == node) {
                        n.config = config;
                    }
                });
            }
            Command::ChoosePath {
                node,
                pointer,
                folder,
            } => worker.choose_path(node, pointer, folder, self.doc.base_dir()),
            Command::TestConnection(node) => {
                let Some(config) = self.doc.flow.node(&node).map(|n| n.config.clone()) else {
                    return;
                };
                self.connection_tests.insert(
                    node.clone(),
                    ConnectionTest {
                        document: self.document,
                        config: config.clone(),
                        result: None,
                    },
                );
                worker.test_connection(
                    self.doc.flow.clone(),
                    self.doc.base_dir(),
                    node,
                    config,
                    self.document,
                );
            }
            Command::LoadCatalog(node) => {
                let Some(found) = self.doc.flow.node(&node) else {
                    return;
                };
                let Some(setting) = crate::registry::find(&found.kind).and_then(|k| k.entities)
                else {
                    return;
                };
                let key = Catalog::key_of(&found.config, setting.setting);
                let catalog = self.catalogs.entry(node.clone()).or_default();
                // Objects depend on the connection only; fields on the object too.
                let want_entities = catalog.key.0 != key.0 || catalog.entities.is_none();
                if want_entities {
                    catalog.entities = None;
                }
                catalog.fields = None;
                catalog.key = key.clone();
                worker.load_catalog(
                    self.doc.flow.clone(),
                    self.doc.base_dir(),
                    node,
                    key,
                    want_entities,
                );
            }
            Command::SearchEntities { node, text } => {
                self.catalogs.entry(node).or_default().search = text;
            }
            Command::InsertMap { before } => self.insert_map(&before),
            Command::SetLabel { node, label } => {
                let key = format!("label:{node}");
                self.edit(Some(key), |f| {
                    if let Some(n) = f.nodes.iter_mut().find(|n| n.id == node) {
                        n.label = Some(label).filter(|l| !l.trim().is_empty());
                    }
                });
            }
            Command::SetFlowName(name) => self.edit(Some("name".into()), |f| f.name = name),
            Command::SetDescription(d) => self.edit(Some("description".into()), |f| {
                f.description = Some(d).filter(|d| !d.is_empty())
            }),
            Command::SetTrigger(t) => self.edit(Some("trigger".into()), |f| f.trigger = t),
            Command::SetActive(active) => self.set_active(active),
            Command::StartService => self.start_service(),
            Command::SetParam { name, value } => {
                let key = format!("param:{name}");
                self.edit(Some(key), |f| {
                    f.params.insert(name, value);
                })
            }
            Command::RemoveParam(name) => self.edit(None, |f| {
                f.params.shift_remove(&name);
            }),
            Command::Select(ids) => self.selection = ids,
            Command::SelectAll => {
                self.selection = self.doc.flow.nodes.iter().map(|n| n.id.clone()).collect()
            }
            Command::Copy => {
                self.clipboard = self
                    .doc
                    .flow
                    .nodes
                    .iter()
                    .filter(|n| self.selection.contains(&n.id))
                    .map(|n| {
                        let edges = self
                            .doc
                            .flow
                            .edges
                            .iter()
                            .filter(|e| e.from == n.id && self.selection.contains(&e.to))
                            .cloned()
                            .collect();
                        (n.clone(), edges)
                    })
                    .collect();
            }
            Command::Paste => self.paste(),
            Command::Duplicate => {
                self.carry_out(Command::Copy, worker);
                self.paste();
            }
            Command::Undo => {
                if let Some(s) = self.history.undo.pop() {
                    let now = std::mem::replace(&mut self.doc.flow, s.flow);
                    self.history.redo.push(now);
                    self.changed();
                }
            }
            Command::Redo => {
                if let Some(flow) = self.history.redo.pop() {
                    let now = std::mem::replace(&mut self.doc.flow, flow);
                    self.history.undo.push(Snapshot {
                        flow: now,
                        key: None,
                        at: Instant::now(),
                    });
                    self.changed();
                }
            }

            Command::Run => {
                if self.run.is_running() {
                    return;
                }
                let cancel = CancellationToken::new();
                self.run = RunState {
                    cancel: Some(cancel.clone()),
                    started: Some(Instant::now()),
                    expected: self.expected_records(),
                    ..Default::default()
                };
                self.tab = Tab::Run;
                worker.run(self.doc.flow.clone(), self.doc.base_dir(), cancel);
            }
            Command::CancelRun => {
                if let Some(c) = &self.run.cancel {
                    c.cancel();
                }
            }
            Command::SetPreviewLimit(limit) => self.preview.limit = limit.clamp(1, 100_000),
            Command::RefreshPreview => self.preview.requested = None,
            Command::Warn(text) => self.say(text, true),
            Command::ShowTab(tab) => {
                self.tab = tab;
                if tab == Tab::History {
                    self.read_past_runs();
                }
            }
            command @ (Command::ShowConnections(_)
            | Command::NewConnection { .. }
            | Command::EditConnectionDraft(_)
            | Command::SaveConnectionDraft
            | Command::CancelConnectionDraft
            | Command::LogIn(_)
            | Command::CancelLogIn(_)
            | Command::CheckConnection(_)
            | Command::AskRemoveConnection(_)
            | Command::RemoveConnection(_)
            | Command::EditVaultPrompt { .. }
            | Command::UnlockVault
            | Command::CancelUnlock
            | Command::EditProxy(_)
            | Command::SaveProxy) => self.apply_connections(command, worker),
            Command::OpenExternally(path) => {
                if let Err(e) = open_externally(&path) {
                    self.say(format!("Cannot open {}: {e}", path.display()), true);
                }
            }
        }
    }

    /// Whether the node takes several inputs (a union).
    fn takes_many_inputs(&self, id: &str) -> bool {
        (self.doc.flow.node(id))
            .and_then(|n| registry::find(&n.kind))
            .is_some_and(|t| t.many_inputs)
    }

    fn can_connect(&self, from: &str, to: &str) -> Result<(), String> {
        self.can_connect_in(&self.doc.flow.edges, from, to)
    }

    /// Whether `from` → `to` may join a flow with these `edges`.
    fn can_connect_in(&self, edges: &[Edge], from: &str, to: &str) -> Result<(), String> {
        let role = |id: &str| {
            self.doc
                .flow
                .node(id)
                .and_then(|n| registry::find(&n.kind))
                .map(|t| t.role)
        };
        if role(from) == Some(Role::Destination) {
            return Err(format!(
                "`{from}` is a destination; records cannot leave it"
            ));
        }
        if role(to) == Some(Role::Source) {
            return Err(format!("`{to}` is a source; it takes no input"));
        }
        // Would `to` reach `from`? Then the edge closes a cycle.
        let mut stack = vec![to.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if n == from {
                return Err("that connection would make a cycle; records must flow one way".into());
            }
            if seen.insert(n.clone()) {
                stack.extend(edges.iter().filter(|e| e.from == n).map(|e| e.to.clone()));
            }
        }
        Ok(())
    }

    /// A node as the user knows it: its label, or its id.
    fn label_of(&self, id: &str) -> String {
        self.doc
            .flow
            .node(id)
            .and_then(|n| n.label.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Puts a Map node between `before` and its input, mapping every incoming field as it
    /// is, and makes room for it by moving `before` to the right.
    fn insert_map(&mut self, before: &str) {
        let flow = &self.doc.flow;
        let (Some(edge), Some(target)) = (
            flow.edges.iter().find(|e| e.to == before).cloned(),
            flow.node(before),
        ) else {
            return;
        };
        let fields: Vec<Value> = self
            .analysis
            .schemas
            .get(&edge.from)
            .map(|s| {
                s.fields()
                    .iter()
                    .map(|f| serde_json::json!({ "source": f.name() }))
                    .collect()
            })
            .unwrap_or_default();
        let map = Node {
            id: unique_id(flow, "map"),
            kind: "transform.map".into(),
            label: Some("Field mapping".into()),
            position: target.position,
            config: serde_json::json!({ "fields": fields }),
        };
        self.edit(None, |f| {
            f.edges.retain(|e| e != &edge);
            f.edges.push(Edge {
                from: edge.from.clone(),
                to: map.id.clone(),
            });
            f.edges.push(Edge {
                from: map.id.clone(),
                to: edge.to.clone(),
            });
            if let Some(n) = f.nodes.iter_mut().find(|n| n.id == edge.to) {
                n.position[0] += 260.0;
            }
            f.nodes.push(map);
        });
    }

    fn paste(&mut self) {
        if self.clipboard.is_empty() {
            return;
        }
        let clipboard = self.clipboard.clone();
        let mut renamed = std::collections::HashMap::new();
        let mut flow = self.doc.flow.clone();
        let mut added = Vec::new();
        for (node, _) in &clipboard {
            let id = unique_id(&flow, &node.id);
            renamed.insert(node.id.clone(), id.clone());
            let mut copy = node.clone();
            copy.id = id.clone();
            copy.position = [node.position[0] + 40.0, node.position[1] + 40.0];
            flow.nodes.push(copy);
            added.push(id);
        }
        for (_, edges) in &clipboard {
            for e in edges {
                if let (Some(from), Some(to)) = (renamed.get(&e.from), renamed.get(&e.to)) {
                    flow.edges.push(Edge {
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
        self.edit(None, |f| *f = flow);
        self.selection = added;
    }

    /// Records the run will read, when every source can say in advance.
    fn expected_records(&self) -> Option<u64> {
        let mut total = 0;
        for n in &self.doc.flow.nodes {
            match registry::find(&n.kind).map(|t| t.role) {
                Some(Role::Source) if n.kind == "source.demo_crm" => {
                    total += n
                        .config
                        .get("records")
                        .and_then(Value::as_u64)
                        .unwrap_or(1000)
                }
                Some(Role::Source) => return None,
                _ => {}
            }
        }
        Some(total)
    }

    /// Ids of the source nodes.
    pub fn sources(&self) -> Vec<String> {
        self.doc
            .flow
            .nodes
            .iter()
            .filter(|n| registry::find(&n.kind).is_some_and(|t| t.role == Role::Source))
            .map(|n| n.id.clone())
            .collect()
    }

    /// Takes in what the background reported and asks for what is out of date. Called once
    /// a frame; never waits. Returns how soon it needs another frame with no input at all
    /// (a preview held back while the user types must still go out when they stop).
    pub fn poll(&mut self, worker: &Worker) -> Option<Duration> {
        while let Some(message) = worker.try_recv() {
            self.receive(message, worker);
        }
        if self.analysis_revision != self.doc.revision
            && !worker.analysis_pending(self.doc.revision)
        {
            worker.analyze(
                self.doc.flow.clone(),
                self.doc.base_dir(),
                self.doc.revision,
            );
        }
        let mut wake = self.request_preview(worker);
        if self.doc.flow.trigger != Trigger::OnDemand && !self.welcome {
            let due = self
                .service
                .read_at
                .is_none_or(|at| at.elapsed() >= SERVICE_LOOK);
            if due {
                self.look_at_service();
            }
            wake = Some(wake.map_or(SERVICE_LOOK, |w| w.min(SERVICE_LOOK)));
        }
        if let (Some(start), true) = (self.run.started, self.run.is_running()) {
            let read = self.run.records_read(&self.sources());
            let now = Instant::now();
            match self.run.last_sample {
                Some((at, before)) if now - at >= Duration::from_millis(250) => {
                    let rate = (read - before) as f64 / (now - at).as_secs_f64();
                    self.run
                        .throughput
                        .push([(now - start).as_secs_f64(), rate]);
                    self.run.last_sample = Some((now, read));
                }
                None => self.run.last_sample = Some((now, read)),
                _ => {}
            }
        }
        wake
    }

    /// Asks for the selected node's preview once edits pause; otherwise says when to ask.
    fn request_preview(&mut self, worker: &Worker) -> Option<Duration> {
        let node = self.selected_node().map(|n| n.id.clone())?;
        let since = self.last_edit.elapsed();
        if since < PREVIEW_DEBOUNCE {
            return Some(PREVIEW_DEBOUNCE - since);
        }
        let key = PreviewKey {
            node,
            revision: self.doc.revision,
            limit: self.preview.limit,
        };
        if self.preview.requested.as_ref() == Some(&key) {
            return None;
        }
        self.preview.loading = true;
        self.preview.requested = Some(key.clone());
        worker.preview(self.doc.flow.clone(), self.doc.base_dir(), key);
        None
    }

    fn receive(&mut self, message: Message, worker: &Worker) {
        match message {
            Message::Analysis { revision, analysis } => {
                if revision == self.doc.revision {
                    self.analysis = *analysis;
                    self.analysis_revision = revision;
                }
            }
            Message::Preview { key, result } => {
                if self.preview.requested.as_ref() == Some(&key) {
                    self.preview.loading = false;
                    self.preview.result = Some((key, result.map(|p| *p)));
                }
            }
            Message::Run(event) => match event {
                RunEvent::Started { .. } => {}
                RunEvent::Node { node, figures } => {
                    self.run.figures.insert(node, figures);
                }
                RunEvent::Finished(record) => {
                    self.run.cancel = None;
                    for f in &record.nodes {
                        self.run.figures.insert(f.node.clone(), f.clone());
                    }
                    // The run is over: a node still waiting or running did not finish.
                    for f in self.run.figures.values_mut() {
                        if matches!(f.state, NodeState::Idle | NodeState::Running) {
                            f.state = NodeState::Canceled;
                        }
                    }
                    let text = match &record.error {
                        Some(e) => format!("The run failed: {}", e.message),
                        None => format!(
                            "{:?}: {} records written",
                            record.status, record.records_written
                        ),
                    };
                    self.say(text, record.error.is_some());
                    self.run.record = Some(*record);
                    self.read_past_runs();
                }
            },
            Message::ConnectionTested {
                node,
                config,
                document,
                result,
            } => {
                let test = ConnectionTest {
                    document,
                    config,
                    result: Some(result),
                };
                // Only the answer to the latest test of these settings counts.
                if let Some(current) = self.connection_tests.get_mut(&node)
                    && current.document == test.document
                    && current.config == test.config
                {
                    *current = test;
                }
            }
            Message::Catalog {
                node,
                key,
                entities,
                fields,
            } => {
                // Only the answer for the settings the node still has counts.
                if let Some(catalog) = self.catalogs.get_mut(&node)
                    && catalog.key == key
                {
                    if entities.is_some() {
                        catalog.entities = entities;
                    }
                    catalog.fields = Some(fields);
                }
            }
            message @ (Message::LoginWaiting { .. } | Message::ConnectionChecked { .. }) => {
                self.receive_connection(message)
            }
            Message::RunRefused(problems) => {
                self.run.cancel = None;
                self.run.refused = problems;
                self.tab = Tab::Problems;
                self.say("The flow has problems; see Problems", true);
            }
            Message::FileChosen { request, path } => match (request, path) {
                (DialogRequest::SaveFlow(_), Some(path)) => {
                    self.apply(Command::SaveAs(path), worker)
                }
                (DialogRequest::OpenFlow, Some(path)) => {
                    self.apply(Command::OpenFlow(path), worker)
                }
                (DialogRequest::ImportAppFlow, Some(path)) => {
                    self.apply(Command::ImportAppFlow { path, flow: None }, worker)
                }
                (DialogRequest::ExportAppFlow(_), Some(path)) => {
                    self.apply(Command::ExportAppFlow(path), worker)
                }
                // Save As was cancelled: what waited for the save does not happen.
                (DialogRequest::SaveFlow(_), None) => self.after_save = None,
                _ => {}
            },
            Message::DialogUnavailable(request) => {
                let text = match &request {
                    DialogRequest::SaveFlow(name) | DialogRequest::ExportAppFlow(name) => {
                        self.doc.base_dir().join(name)
                    }
                    _ => self.doc.base_dir().join(""),
                };
                self.path_prompt = Some(PathPrompt {
                    request,
                    text: text.to_string_lossy().into_owned(),
                });
            }
            Message::PathChosen {
                node,
                pointer,
                path,
            } => self.set_node_path(node, &pointer, path, worker),
        }
    }

    /// Puts the open flow's file first among the recent ones, with its name.
    fn remember_recent(&mut self, path: &Path) {
        super::recent::remember(&self.dirs, &mut self.recent, path);
        if let Some(first) = self.recent.first() {
            self.recent_names
                .insert(first.clone(), self.doc.flow.name.clone());
        }
    }

    /// The recent flow at `path` as menus show it: its name, and the file.
    pub fn recent_label(&self, path: &Path) -> (String, String) {
        let file = path.display().to_string();
        match self.recent_names.get(path) {
            Some(name) if !name.trim().is_empty() => (name.clone(), file),
            _ => (
                path.file_name()
                    .map_or(file.clone(), |n| n.to_string_lossy().into_owned()),
                file,
            ),
        }
    }

    /// What Save As offers as the file name: the flow's name, as a file name.
    fn offered_file_name(&self) -> String {
        let name: String = self
            .doc
            .flow
            .name
            .trim()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let name = name.trim_matches('-');
        if name.is_empty() {
            "flow.json".into()
        } else {
            format!("{name}.json")
        }
    }

    /// Sets a node's file or folder setting to a chosen path.
    fn set_node_path(&mut self, node: String, pointer: &str, path: PathBuf, worker: &Worker) {
        let Some(mut config) = self.doc.flow.node(&node).map(|n| n.config.clone()) else {
            return;
        };
        let base = self.doc.base_dir();
        // Inside a saved flow's folder a relative path keeps the flow portable; a flow not
        // saved yet has no folder of its own, so it keeps the whole path.
        let shown = match &self.doc.path {
            Some(_) => path.strip_prefix(&base).unwrap_or(&path),
            None => &path,
        };
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
        if let Some(Value::Object(o)) = config.pointer_mut(parent) {
            o.insert(key.into(), shown.to_string_lossy().into_owned().into());
            self.apply(Command::SetConfig { node, config }, worker);
        }
    }
}

/// Where each node goes in a left-to-right layout: a column per step from the sources (a
/// node one column after its furthest input), and within a column the order the nodes
/// already had from top to bottom, so a tidy keeps what the user arranged as far as it can.
fn tidy_layout(flow: &Flow) -> HashMap<String, [f32; 2]> {
    const COLUMN: f32 = 260.0;
    const ROW: f32 = 150.0;
    let mut column: HashMap<&str, usize> = HashMap::new();
    // Flows have no cycles (connections that would close one are refused), so this ends;
    // the bound keeps a hand-edited file with one from spinning.
    for _ in 0..=flow.nodes.len() {
        let mut moved = false;
        for n in &flow.nodes {
            let c = flow
                .edges
                .iter()
                .filter(|e| e.to == n.id)
                .filter_map(|e| column.get(e.from.as_str()).map(|c| c + 1))
                .max()
                .unwrap_or(0);
            if column.insert(&n.id, c) != Some(c) {
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut by_column: Vec<Vec<&Node>> = Vec::new();
    for n in &flow.nodes {
        let c = column[n.id.as_str()];
        if by_column.len() <= c {
            by_column.resize(c + 1, Vec::new());
        }
        by_column[c].push(n);
    }
    let mut at = HashMap::new();
    for (c, nodes) in by_column.iter_mut().enumerate() {
        nodes.sort_by(|a, b| a.position[1].total_cmp(&b.position[1]));
        for (r, n) in nodes.iter().enumerate() {
            at.insert(
                n.id.clone(),
                [40.0 + c as f32 * COLUMN, 120.0 + r as f32 * ROW],
            );
        }
    }
    at
}

/// `setting` (a path relative to `from`, or absolute) as the same place seen from `to`:
/// relative when it lies below `to`, absolute otherwise. Placeholders (`${input}`) stay as
/// they are: the parameter decides.
fn moved_path(setting: &str, from: &Path, to: &Path) -> String {
    if setting.is_empty() || setting.contains("${") || Path::new(setting).is_absolute() {
        return setting.to_string();
    }
    // `..` and `.` resolved in the text alone: the place need not exist yet.
    let mut place = PathBuf::new();
    for part in from.join(setting).components() {
        match part {
            std::path::Component::ParentDir => {
                place.pop();
            }
            std::path::Component::CurDir => {}
            other => place.push(other),
        }
    }
    match place.strip_prefix(to) {
        Ok(inside) => inside.to_string_lossy().into_owned(),
        Err(_) => place.to_string_lossy().into_owned(),
    }
}

/// What an AppFlow import or export cannot carry over, and what waits on the user's word.
pub struct AppFlowReport {
    pub title: String,
    /// What is not carried over: `path: reason`.
    pub gaps: Vec<String>,
    /// What to do next (connections to create).
    pub notes: Vec<String>,
    /// The go-ahead button's words.
    pub go_ahead: String,
    pub waiting: AppFlowWaiting,
}

impl AppFlowReport {
    /// A report with nothing to say: it goes ahead at once, unless unsaved changes wait.
    fn silent(waiting: AppFlowWaiting) -> Self {
        AppFlowReport {
            title: String::new(),
            gaps: Vec::new(),
            notes: Vec::new(),
            go_ahead: String::new(),
            waiting,
        }
    }
}

/// What an AppFlow report waits to do.
pub enum AppFlowWaiting {
    /// Open the imported flow.
    Open(Box<Flow>),
    /// Write the exported definition.
    Write { path: PathBuf, text: String },
    /// Import one of a template's flows, once chosen: their logical ids, each with its
    /// name and description.
    Choose {
        path: PathBuf,
        flows: Vec<(String, String)>,
    },
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The app's own path box: what it is for, and what is typed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPrompt {
    pub request: DialogRequest,
    pub text: String,
}

/// A flow with nothing in it yet.
fn empty_flow() -> Flow {
    Flow {
        format: crate::flow::FORMAT.into(),
        name: String::new(),
        description: None,
        trigger: Default::default(),
        params: Default::default(),
        error_threshold: None,
        service: Default::default(),
        alerts: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
    }
}

/// `base`, or `base_2`, `base_3`… whichever the flow does not use yet.
fn unique_id(flow: &Flow, base: &str) -> String {
    let base = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '_');
    let base = if base.is_empty() { "node" } else { base };
    if flow.node(base).is_none() {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}_{i}"))
        .find(|id| flow.node(id).is_none())
        .expect("an unused id")
}

/// Opens a file or folder with the desktop's default program.
fn open_externally(path: &Path) -> std::io::Result<()> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(program)
        .arg(path)
        .spawn()
        .map(|_| ())
}
