//! The flow file: what the user builds on the canvas and what `tributary run` executes.
//!
//! A flow is JSON with a fixed skeleton (see `DESIGN.md`); each node's `config` belongs to its
//! node type and is parsed by the registry. Loading keeps the original bytes' order and
//! saving writes the same layout back, so a flow saved without edits diffs as unchanged.

mod model;
pub mod params;
pub mod schedule;
pub mod validate;

pub use model::{
    Alert, AlertOn, Edge, Event, FORMAT, Flow, Missed, Node, PullMode, ServiceSettings, Trigger,
    WhenRunning,
};
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
        // Editors on Windows start UTF-8 files with a byte order mark; it means nothing here.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Parse to a value first so that syntax errors (line, column) and shape errors
        // (JSON path) are told apart in the message.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Problem::new(
                None,
                "",
                format!(
                    "{origin}: not valid JSON at line {}, column {}: {}",
                    e.line(),
                    e.column(),
                    crate::serde_words::strip_position(&e.to_string())
                ),
            )
        })?;
        // A value given twice would silently be the last one.
        if let Err(e) = serde_json::from_str::<unique::UniqueKeys>(text) {
            return Err(Problem::new(
                None,
                "",
                format!("{origin}: {}", unique::describe(text, &e)),
            ));
        }
        if !value.is_object() {
            return Err(Problem::new(
                None,
                "",
                format!(
                    "{origin}: a flow file holds one JSON object ({{\"format\": …, \"nodes\": […]}}), not {}",
                    match value {
                        serde_json::Value::Array(_) => "a list",
                        serde_json::Value::String(_) => "a text",
                        serde_json::Value::Number(_) => "a number",
                        _ => "a single value",
                    }
                ),
            ));
        }
        if let Some(format) = value.get("format").and_then(|f| f.as_str())
            && format != FORMAT
        {
            return Err(Problem::new(
                None,
                "/format",
                format!(
                    "{origin}: unknown flow format `{format}`; this version of Tributary reads `{FORMAT}`"
                ),
            ));
        }
        serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = crate::serde_words::pointer_from_serde_path(e.path());
            Problem {
                node: validate::node_id_at(&value, &path),
                message: format!(
                    "{origin}: {}",
                    crate::serde_words::serde_in_words(&e.inner().to_string())
                ),
                path,
                service: false,
            }
        })
    }

    /// Reads a flow file. Only a regular file is opened: a FIFO or a device would make
    /// the read wait forever.
    pub fn load(path: &Path) -> Result<Flow, LoadError> {
        let io = |source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            let what = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Err(io(std::io::Error::other(format!(
                "it is {what}; a flow is a .json file"
            ))));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
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

/// The check that no JSON object of a flow file names a key twice.
mod unique {
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    /// Walks any JSON value and fails on an object that names a key twice.
    pub struct UniqueKeys;

    /// The error's marker, then the key.
    const TWICE: &str = "key given twice: ";

    impl<'de> Deserialize<'de> for UniqueKeys {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Walk)
        }
    }

    struct Walk;

    impl<'de> Visitor<'de> for Walk {
        type Value = UniqueKeys;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
            while seq.next_element::<UniqueKeys>()?.is_some() {}
            Ok(UniqueKeys)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!("{TWICE}{key}")));
                }
                map.next_value::<UniqueKeys>()?;
            }
            Ok(UniqueKeys)
        }
    }

    /// The problem in words, with the places of both keys.
    pub fn describe(text: &str, e: &serde_json::Error) -> String {
        let message = e.to_string();
        let Some(key) = message
            .strip_prefix(TWICE)
            .map(|m| crate::serde_words::strip_position(m).to_string())
        else {
            return message;
        };
        // The second key ends where the error was found; the first is the key's previous
        // appearance as a key before it.
        let end = offset_of(text, e.line(), e.column());
        let quoted = serde_json::to_string(&key).unwrap_or_default();
        let places: Vec<usize> = text[..end.min(text.len())]
            .match_indices(&quoted)
            .filter(|(at, q)| text[at + q.len()..].trim_start().starts_with(':'))
            .map(|(at, _)| at)
            .collect();
        let place = |at: usize| {
            let line = text[..at].matches('\n').count() + 1;
            let column = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
            format!("line {line}, column {column}")
        };
        match places[..] {
            [.., first, second] => format!(
                "the key {quoted} is given twice in one object, at {} and at {}; keep one",
                place(first),
                place(second)
            ),
            _ => format!(
                "the key {quoted} is given twice in one object (line {}); keep one",
                e.line()
            ),
        }
    }

    fn offset_of(text: &str, line: usize, column: usize) -> usize {
        let start: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum();
        start + column
    }
}
