//! Connections: named, non-secret settings for reaching a service. Flows name a connection;
//! they never hold its settings or secrets.
//!
//! This is the list validation checks names against. Logging in, secrets and the vault
//! build on it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::paths::Dirs;

/// One connection's non-secret part, as kept in `connections.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The connector it is for, e.g. `salesforce`.
    pub connector: String,
    /// Settings such as an instance URL or a region.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// The connections file in the config folder.
pub fn connections_file(dirs: &Dirs) -> std::path::PathBuf {
    dirs.config.join("connections.json")
}

/// All connections by name; none when the file does not exist yet.
pub fn load(dirs: &Dirs) -> Result<BTreeMap<String, Connection>, String> {
    load_from(&connections_file(dirs))
}

fn load_from(path: &Path) -> Result<BTreeMap<String, Connection>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a valid connections file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The names flows may use.
pub fn names(dirs: &Dirs) -> Result<Vec<String>, String> {
    Ok(load(dirs)?.into_keys().collect())
}
