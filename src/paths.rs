//! Where Tributary keeps its own files: run records, error outputs, connections.
//!
//! Everything lives under `$TRIBUTARY_HOME` when it is set, so tests and portable installs
//! never touch the user's real home folder; otherwise the platform's usual folders are used.

use std::path::{Path, PathBuf};

/// The folders of one Tributary installation.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// Settings the user edits: connections (without their secrets).
    pub config: PathBuf,
    /// What runs produce about themselves: run records and error outputs.
    pub data: PathBuf,
    /// The flows `tributary serve` runs unless told another folder.
    pub flows: PathBuf,
    /// Connectors declared by manifests of the user's own (`*.json`), read at start.
    pub connectors: PathBuf,
}

impl Dirs {
    /// The folders from `$TRIBUTARY_HOME`, or the platform's folders for `tributary`.
    pub fn from_env() -> Self {
        if let Some(home) = std::env::var_os("TRIBUTARY_HOME").filter(|h| !h.is_empty()) {
            return Self::under(Path::new(&home));
        }
        match directories::ProjectDirs::from("", "", "tributary") {
            Some(dirs) => Self {
                config: dirs.config_dir().to_path_buf(),
                data: dirs.data_dir().to_path_buf(),
                flows: dirs.data_dir().join("flows"),
                connectors: dirs.config_dir().join("connectors"),
            },
            // No home folder at all (a bare container): keep state beside the working folder.
            None => Self::under(Path::new(".tributary")),
        }
    }

    /// All folders below one root, as `$TRIBUTARY_HOME` lays them out.
    pub fn under(root: &Path) -> Self {
        Self {
            config: root.join("config"),
            data: root.join("data"),
            flows: root.join("flows"),
            connectors: root.join("connectors"),
        }
    }

    /// The folder that holds one run's record and error output.
    pub fn run_dir(&self, execution_id: &str) -> PathBuf {
        self.data.join("runs").join(execution_id)
    }
}

/// The bytes of the files below `folder`, links not followed.
pub fn size_of(folder: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
