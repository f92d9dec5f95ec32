//! Everything the user can do in the app, as values. Menus, shortcuts, the canvas and the
//! panels only create commands; [`super::state::AppState::apply`] carries them out, in one
//! place, which is where undo, dirty tracking and tests come from.

use std::path::PathBuf;

use serde_json::Value;

use crate::auth::Secret;
use crate::flow::Trigger;

pub use super::connection_state::ConnectionDraft;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    NewFlow,
    /// Open the built-in demo flow, which needs no account and no files.
    OpenDemo,
    /// Ask for a flow file to open.
    ChooseFlowToOpen,
    OpenFlow(PathBuf),
    Save,
    /// Ask where to save.
    ChooseSaveAs,
    SaveAs(PathBuf),
    /// Ask for an AppFlow flow definition to import.
    ChooseAppFlowToImport,
    /// Import an AppFlow flow definition: it opens at once, or after the list of what it
    /// lacks is shown. `flow` picks one of a template's flows (its logical id).
    ImportAppFlow {
        path: PathBuf,
        flow: Option<String>,
    },
    /// Ask where to write the flow as an AppFlow flow.
    ChooseAppFlowExport,
    ExportAppFlow(PathBuf),
    /// Go ahead with the import or export the AppFlow report waits on.
    AcceptAppFlowReport,
    DismissAppFlowReport,
    /// Back to the welcome screen.
    CloseFlow,
    /// Close the window.
    Quit,
    /// Answers to "save changes first?": the waiting command goes ahead after saving,
    /// goes ahead without saving, or is dropped.
    SaveThenContinue,
    DiscardThenContinue,
    KeepEditing,

    AddNode {
        kind: String,
        position: [f32; 2],
    },
    RemoveNodes(Vec<String>),
    MoveNodes(Vec<(String, [f32; 2])>),
    /// Lay the flow out left to right: each node a column after its inputs.
    TidyLayout,
    Connect {
        from: String,
        to: String,
    },
    /// A wire dragged off the input it was in (`old`: from, to) and dropped on another
    /// port: one change, and a refused drop keeps the old wire.
    Rewire {
        old: (String, String),
        from: String,
        to: String,
    },
    Disconnect {
        from: String,
        to: String,
    },
    SetConfig {
        node: String,
        config: Value,
    },
    /// Ask for a file or folder for the config setting at `pointer` (a JSON pointer).
    ChoosePath {
        node: String,
        pointer: String,
        folder: bool,
    },
    /// The path typed in the app's own path box, shown when the desktop's file dialog
    /// cannot open.
    EditPathPrompt(String),
    SubmitPathPrompt,
    CancelPathPrompt,
    /// Check that a source or destination reaches its service with its current settings.
    TestConnection(String),
    /// Fetch the objects and the chosen object's fields a node's service offers.
    LoadCatalog(String),
    /// The search text of a node's object list.
    SearchEntities {
        node: String,
        text: String,
    },
    /// Put a Map node with every incoming field just before `node`, so its fields can be
    /// mapped.
    InsertMap {
        before: String,
    },
    SetLabel {
        node: String,
        label: String,
    },
    SetFlowName(String),
    SetDescription(String),
    SetTrigger(Trigger),
    /// Have the service run the open flow on its trigger, or stop it doing so.
    SetActive(bool),
    /// Start `tributary serve` on the open flow's folder.
    StartService,
    SetParam {
        name: String,
        value: String,
    },
    RemoveParam(String),
    Select(Vec<String>),
    SelectAll,
    Copy,
    Paste,
    Duplicate,
    Undo,
    Redo,

    Run,
    CancelRun,
    SetPreviewLimit(u64),
    RefreshPreview,
    ShowTab(super::state::Tab),
    /// Say something that went wrong outside the window, such as a connector manifest
    /// left out at start.
    Warn(String),
    /// Opens a file or folder with the system's handler.
    OpenExternally(PathBuf),

    /// Show or hide the Connections window.
    ShowConnections(bool),
    /// Start the New connection form; `for_node` gets the connection once it is saved.
    NewConnection {
        connector: Option<String>,
        for_node: Option<String>,
    },
    EditConnectionDraft(ConnectionDraft),
    SaveConnectionDraft,
    CancelConnectionDraft,
    /// Log a connection in through the browser.
    LogIn(String),
    CancelLogIn(String),
    /// Check that a connection signs in.
    CheckConnection(String),
    /// Ask before removing a connection and its secrets; `None` takes the question back.
    AskRemoveConnection(Option<String>),
    RemoveConnection(String),
    EditVaultPrompt {
        passphrase: Secret,
        again: Secret,
    },
    UnlockVault,
    CancelUnlock,
    /// The proxy field as typed, and saving it.
    EditProxy(String),
    SaveProxy,
}
