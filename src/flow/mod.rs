//! The flow file: what the user builds on the canvas and what `tributary run` executes.
//!
//! A flow is JSON with a fixed skeleton (see `DESIGN.md`); each node's `config` belongs to its
//! node type and is parsed by the registry. Loading keeps the original bytes' order and
//! saving writes the same layout back, so a flow saved without edits diffs as unchanged.

mod model;
pub mod params;
pub mod validate;

pub use model::{Edge, FORMAT, Flow, Node, Trigger};
pub use validate::Context as ValidateContext;
pub use validate::{Analysis, Plan, PlannedNode, Problem, analyze, validate};

use std::path::Path;

/// Why a flow file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read flow file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problem),
}

impl Flow {
    /// Parses a flow from JSON text. `origin` names the file in messages.
    ///
    /// Syntax errors carry line and column; structural errors carry the JSON path of the
    /// offending value. Node configs are not checked here: that is [`validate`]'s job, which
    /// reports every problem at once.
    pub fn from_json(text: &str, origin: &str) -> Result<Flow, Problem> {
        // Parse to a value first so that syntax errors (line, column) and shape errors
        // (JSON path) are told apart in the message.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Problem {
            node: None,
            path: String::new(),
            message: format!(
                "{origin}: not valid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                strip_position(&e.to_string())
            ),
        })?;
        if let Some(format) = value.get("format").and_then(|f| f.as_str())
            && format != FORMAT
        {
            return Err(Problem {
                node: None,
                path: "/format".into(),
                message: format!(
                    "{origin}: unknown flow format `{format}`; this version of Tributary reads `{FORMAT}`"
                ),
            });
        }
        serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = validate::pointer_from_serde_path(e.path());
            Problem {
                node: validate::node_id_at(&value, &path),
                message: format!("{origin}: {}", e.inner()),
                path,
            }
        })
    }

    /// Reads a flow file.
    pub fn load(path: &Path) -> Result<Flow, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Flow::from_json(&text, &path.display().to_string()).map_err(LoadError::Invalid)
    }

    /// The flow as the file holds it: pretty JSON, keys in a stable order, a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a flow always serializes");
        text.push('\n');
        text
    }

    /// Writes the flow so that a reader never sees a half-written file.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.saving");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// serde_json appends " at line X column Y" to its messages; we say it once, up front.
pub(crate) fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}
