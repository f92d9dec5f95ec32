//! The flows opened or saved lately, newest first, kept in the config folder so the File
//! menu and the welcome screen can offer them again.

use std::path::{Path, PathBuf};

use crate::paths::Dirs;

/// How many recent flows are kept.
const KEEP: usize = 8;

fn file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("recent.json")
}

/// The recent flows that still exist. A missing or unreadable list is an empty one: it is
/// a convenience, never a reason to fail.
pub fn load(dirs: &Dirs) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(file(dirs)) else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<PathBuf>>(&text)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.is_file())
        .take(KEEP)
        .collect()
}

/// The names of the flows in `list`, read once (when the app starts), so the menus can
/// say which flow a file is without reading files while drawing.
pub fn names(list: &[PathBuf]) -> std::collections::HashMap<PathBuf, String> {
    list.iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            let flow: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some((path.clone(), flow.get("name")?.as_str()?.to_string()))
        })
        .collect()
}

/// Puts `path` first in `list` and writes the list.
pub fn remember(dirs: &Dirs, list: &mut Vec<PathBuf>, path: &Path) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    list.retain(|p| p != &path);
    list.insert(0, path);
    list.truncate(KEEP);
    let written = std::fs::create_dir_all(&dirs.config).and_then(|()| {
        let json = serde_json::to_string_pretty(list).map_err(std::io::Error::other)?;
        std::fs::write(file(dirs), json)
    });
    if let Err(e) = written {
        tracing::warn!("cannot keep the list of recent flows: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_repeats_and_only_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        std::fs::write(&a, "{}").unwrap();
        std::fs::write(&b, "{}").unwrap();
        let mut list = load(&dirs);
        assert!(list.is_empty());
        remember(&dirs, &mut list, &a);
        remember(&dirs, &mut list, &b);
        remember(&dirs, &mut list, &a);
        let a = std::fs::canonicalize(&a).unwrap();
        let b = std::fs::canonicalize(&b).unwrap();
        assert_eq!(load(&dirs), vec![a.clone(), b.clone()]);
        std::fs::remove_file(&b).unwrap();
        assert_eq!(load(&dirs), vec![a]);
    }
}
