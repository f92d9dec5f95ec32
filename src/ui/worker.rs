//! The app's background: validation, previews, runs and file dialogs run on a tokio
//! runtime and report back by messages, so the UI thread never waits. Each message asks
//! for a repaint so it is seen at once.

use crate::ui::state::CatalogField;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use super::state::PreviewKey;
use super::table::PreviewTable;
use crate::connectors::framework::connect;
use crate::engine::{self, RunEvent, RunOptions};
use crate::flow::{Analysis, Flow, Problem};
use crate::paths::Dirs;
use crate::workspace::Workspace;
use crate::{auth, workspace};

/// How long the app waits for a browser login.
const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

pub enum Message {
    Analysis {
        revision: u64,
        analysis: Box<Analysis>,
    },
    Preview {
        key: PreviewKey,
        result: Result<Box<PreviewTable>, String>,
    },
    Run(RunEvent),
    RunRefused(Vec<Problem>),
    ConnectionTested {
        node: String,
        /// The settings tested, so a late answer is not shown for changed ones.
        config: serde_json::Value,
        document: u64,
        result: Result<String, String>,
    },
    /// What a node's service offers, for the connection and object in `key`.
    Catalog {
        node: String,
        key: (String, String),
        /// Absent when only the fields were asked for.
        entities: Option<Result<Vec<crate::node::Entity>, String>>,
        fields: Result<Vec<CatalogField>, String>,
    },
    /// A browser login is waiting for the user, at this URL.
    LoginWaiting {
        connection: String,
        url: String,
    },
    /// A login or a test of a connection came back.
    ConnectionChecked {
        connection: String,
        result: Result<String, String>,
    },
    /// A file dialog's answer; `None` when it was cancelled.
    FileChosen {
        request: DialogRequest,
        path: Option<PathBuf>,
    },
    /// The desktop's file dialog could not be shown (no portal or zenity on a minimal
    /// desktop): the app asks for the path itself.
    DialogUnavailable(DialogRequest),
    /// A file or folder for a node's setting; nothing is sent when the dialog is cancelled.
    PathChosen {
        node: String,
        pointer: String,
        path: PathBuf,
    },
}

/// What a file dialog was asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogRequest {
    OpenFlow,
    /// Save the flow; the name offered.
    SaveFlow(String),
    /// An AppFlow flow definition to import.
    ImportAppFlow,
    /// Where to write the flow as an AppFlow flow; the name offered.
    ExportAppFlow(String),
    /// A file or folder for a node's setting.
    NodePath {
        node: String,
        pointer: String,
        folder: bool,
    },
}

/// A dialog answered sooner than this never showed: nobody cancels a dialog that fast.
const DIALOG_FAILED_WITHIN: std::time::Duration = std::time::Duration::from_millis(400);

pub struct Worker {
    runtime: tokio::runtime::Runtime,
    tx: Sender<Message>,
    rx: Receiver<Message>,
    repaint: Arc<dyn Fn() + Send + Sync>,
    workspace: Workspace,
    /// The revision an analysis is running for, so each revision is analysed once.
    analysing: Mutex<Option<u64>>,
    /// How a login URL reaches the browser: the desktop's browser, or in tests nothing
    /// (the test drives a browser itself).
    pub open_browser: fn(&str) -> Result<(), String>,
}

impl Worker {
    /// `repaint` wakes the UI when a message arrives.
    pub fn new(dirs: Dirs, repaint: impl Fn() + Send + Sync + 'static) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("tributary-worker")
            .build()
            .expect("a tokio runtime");
        let (tx, rx) = channel();
        Self {
            runtime,
            tx,
            rx,
            repaint: Arc::new(repaint),
            workspace: Workspace::new(dirs),
            analysing: Mutex::new(None),
            open_browser: crate::auth::oauth::open_browser,
        }
    }

    pub fn try_recv(&self) -> Option<Message> {
        self.rx.try_recv().ok()
    }

    /// Sends a message and wakes the UI.
    fn sender(&self) -> impl Fn(Message) + Clone + Send + Sync + 'static {
        let tx = self.tx.clone();
        let repaint = self.repaint.clone();
        move |m| {
            let _ = tx.send(m);
            repaint();
        }
    }

    pub fn analysis_pending(&self, revision: u64) -> bool {
        *self.analysing.lock().unwrap() == Some(revision)
    }

    pub fn analyze(&self, flow: Flow, base_dir: PathBuf, revision: u64) {
        *self.analysing.lock().unwrap() = Some(revision);
        let send = self.sender();
        let ws = self.workspace.clone();
        self.runtime.spawn_blocking(move || {
            let analysis = workspace::analyze_flow(&flow, &base_dir, &IndexMap::new(), &ws);
            send(Message::Analysis {
                revision,
                analysis: Box::new(analysis),
            });
        });
    }

    /// Reaches the service a node talks to, with the node's settings as they are now.
    pub fn test_connection(
        &self,
        flow: Flow,
        base_dir: PathBuf,
        node: String,
        config: serde_json::Value,
        document: u64,
    ) {
        let send = self.sender();
        let cx = self.workspace.plan_context(&base_dir);
        self.runtime.spawn(async move {
            let result = match workspace::node_config(&flow, &node, &IndexMap::new()) {
                Ok(parsed) => parsed.test_connection(&cx).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            send(Message::ConnectionTested {
                node,
                config,
                document,
                result,
            });
        });
    }

    /// Fetches the objects (when asked) and the chosen object's fields of a node's service.
    pub fn load_catalog(
        &self,
        flow: Flow,
        base_dir: PathBuf,
        node: String,
        key: (String, String),
        entities: bool,
    ) {
        let send = self.sender();
        let cx = self.workspace.plan_context(&base_dir);
        self.runtime.spawn(async move {
            let config = workspace::node_config(&flow, &node, &IndexMap::new());
            let (listed, fields) = match config {
                Ok(config) => {
                    let listed = match entities {
                        true => Some(config.entities(&cx).await.map_err(|e| e.to_string())),
                        false => None,
                    };
                    let fields = if key.1.is_empty() {
                        Ok(Vec::new())
                    } else {
                        config
                            .entity_fields(&cx)
                            .await
                            .map(|fields| {
                                fields
                                    .into_iter()
                                    .map(|f| CatalogField {
                                        kind: crate::types::describe(&f.data_type),
                                        name: f.name,
                                        label: f.label,
                                    })
                                    .collect()
                            })
                            .map_err(|e| e.to_string())
                    };
                    (listed, fields)
                }
                Err(e) => (entities.then(|| Err(e.clone())), Err(e)),
            };
            send(Message::Catalog {
                node,
                key,
                entities: listed,
                fields,
            });
        });
    }

    /// Logs a connection in through the browser, until done, timed out or cancelled.
    pub fn log_in(&self, connection: String, cancel: CancellationToken) {
        let send = self.sender();
        let dirs = self.workspace.dirs.clone();
        let discovery = self.workspace.discovery.clone();
        let open = self.open_browser;
        self.runtime.spawn(async move {
            let name = connection.clone();
            let login = async {
                let found = auth::get(&dirs, &name)?;
                let waiting = send.clone();
                let show = Box::new(move |url: &str| {
                    waiting(Message::LoginWaiting {
                        connection: name.clone(),
                        url: url.to_string(),
                    })
                });
                let mut options = connect::login_options(&found, LOGIN_TIMEOUT, show)?;
                options.open = open;
                let saved = connect::login(&dirs, &connection, options).await?;
                // Signed in anew, the service may show other objects and fields.
                discovery.forget();
                Ok(match saved.status.identity {
                    Some(who) => format!("logged in as {who}"),
                    None => "logged in".to_string(),
                })
            };
            let result = tokio::select! {
                result = login => result,
                _ = cancel.cancelled() => Err("the login was cancelled".to_string()),
            };
            send(Message::ConnectionChecked { connection, result });
        });
    }

    /// Checks that a connection signs in.
    pub fn check_connection(&self, connection: String) {
        let send = self.sender();
        let dirs = self.workspace.dirs.clone();
        self.runtime.spawn(async move {
            let result = connect::test(&dirs, &connection).await;
            send(Message::ConnectionChecked { connection, result });
        });
    }

    pub fn preview(&self, flow: Flow, base_dir: PathBuf, key: PreviewKey) {
        let send = self.sender();
        let ws = self.workspace.clone();
        self.runtime.spawn(async move {
            let result =
                match workspace::plan_preview(&flow, &base_dir, &IndexMap::new(), &ws, &key.node) {
                    Ok(plan) => {
                        engine::preview(&plan, &key.node, key.limit, &RunOptions::new(ws.dirs))
                            .await
                            .map(|p| Box::new(PreviewTable::from_preview(&p)))
                            .map_err(|e| e.message)
                    }
                    Err(problems) => Err(
                        match problems
                            .iter()
                            .find(|p| p.node.as_deref() == Some(&key.node))
                        {
                            Some(p) => format!("This node has a problem: {}", p.message),
                            None => format!(
                                "The flow has {} problem{} to fix first; see Problems",
                                problems.len(),
                                if problems.len() == 1 { "" } else { "s" }
                            ),
                        },
                    ),
                };
            send(Message::Preview { key, result });
        });
    }

    pub fn run(&self, flow: Flow, base_dir: PathBuf, cancel: CancellationToken) {
        let send = self.sender();
        let ws = self.workspace.clone();
        self.runtime.spawn(async move {
            let plan = match workspace::plan_flow(&flow, &base_dir, &IndexMap::new(), &ws) {
                Ok(plan) => plan,
                Err(problems) => return send(Message::RunRefused(problems)),
            };
            let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut options = RunOptions::new(ws.dirs);
            options.cancel = cancel;
            options.events = Some(events);
            let forward = tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    send(Message::Run(e));
                }
            });
            engine::run(&plan, options).await;
            let _ = forward.await;
        });
    }

    /// Shows the system's file dialog without holding up the UI: a flow file to open or
    /// where to save one, an AppFlow definition to import or where to write one.
    pub fn choose_file(&self, request: DialogRequest, start: PathBuf) {
        let send = self.sender();
        self.runtime.spawn(async move {
            let asked = std::time::Instant::now();
            let dialog = rfd::AsyncFileDialog::new().set_directory(&start);
            let path = match &request {
                DialogRequest::ImportAppFlow => {
                    dialog
                        .add_filter(
                            "AppFlow flow or CloudFormation template",
                            &["json", "yaml", "yml", "template"],
                        )
                        .pick_file()
                        .await
                }
                DialogRequest::SaveFlow(name) | DialogRequest::ExportAppFlow(name) => {
                    dialog
                        .add_filter("JSON", &["json"])
                        .set_file_name(name)
                        .save_file()
                        .await
                }
                _ => {
                    dialog
                        .add_filter("Tributary flow", &["json"])
                        .pick_file()
                        .await
                }
            };
            if path.is_none() && asked.elapsed() < DIALOG_FAILED_WITHIN {
                send(Message::DialogUnavailable(request));
                return;
            }
            send(Message::FileChosen {
                request,
                path: path.map(|h| h.path().to_path_buf()),
            });
        });
    }

    /// Asks for a file or folder for a node's setting, starting in the flow's folder.
    pub fn choose_path(&self, node: String, pointer: String, folder: bool, start: PathBuf) {
        let send = self.sender();
        self.runtime.spawn(async move {
            let asked = std::time::Instant::now();
            let dialog = rfd::AsyncFileDialog::new().set_directory(start);
            let chosen = if folder {
                dialog.pick_folder().await
            } else {
                dialog.pick_file().await
            };
            if chosen.is_none() && asked.elapsed() < DIALOG_FAILED_WITHIN {
                send(Message::DialogUnavailable(DialogRequest::NodePath {
                    node,
                    pointer,
                    folder,
                }));
                return;
            }
            if let Some(handle) = chosen {
                send(Message::PathChosen {
                    node,
                    pointer,
                    path: handle.path().to_path_buf(),
                });
            }
        });
    }
}
