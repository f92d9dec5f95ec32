//! Everything the user can do in the app, as values. Menus, shortcuts, the canvas and the
//! panels only create commands; [`super::state::AppState::apply`] carries them out, in one
//! place, which is where undo, dirty tracking and tests come from.

use std::path::PathBuf;

use serde_json::Value;

use crate::flow::Trigger;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    NewFlow,
    /// Ask for a flow file to open.
    ChooseFlowToOpen,
    OpenFlow(PathBuf),
    Save,
    /// Ask where to save.
    ChooseSaveAs,
    SaveAs(PathBuf),

    AddNode {
        kind: String,
        position: [f32; 2],
    },
    RemoveNodes(Vec<String>),
    MoveNodes(Vec<(String, [f32; 2])>),
    Connect {
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
    SetLabel {
        node: String,
        label: String,
    },
    SetFlowName(String),
    SetDescription(String),
    SetTrigger(Trigger),
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
    /// Opens a file or folder with the system's handler.
    OpenExternally(PathBuf),
}
