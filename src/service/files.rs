//! The file trigger: new or changed files in a folder, each taken once it has stopped
//! changing. The folder is listed at every look of the service (the polling that works on
//! every file system, network shares included), and the system's file notifications
//! (inotify, FSEvents, ReadDirectoryChanges, through `notify`) ask for a look at once.
//!
//! What was taken is kept in the state database (size and modification time per file), so
//! a restart neither takes a file twice nor misses one that arrived while it was down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::state::StateStore;

/// A file seen but not taken yet: it may still be being written.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    size: u64,
    modified: i64,
    /// When it last changed, as the service saw it.
    since: Instant,
}

/// One flow's watched folder.
pub struct FileWatch {
    pub folder: PathBuf,
    pattern: Option<glob::Pattern>,
    settle: Duration,
    /// Files in it before the flow was activated are not new to it.
    activated: SystemTime,
    pending: HashMap<PathBuf, Seen>,
    /// Keeps the system's notifications coming; none where they cannot be had.
    _watcher: Option<notify::RecommendedWatcher>,
    /// The folder could not be read at the last look: said once.
    missing: bool,
}

impl FileWatch {
    /// Watches `folder`; a notification sends `flow` (the flow file's path) on `wake`.
    pub fn new(
        folder: PathBuf,
        pattern: Option<&str>,
        settle: Duration,
        activated: SystemTime,
        flow: PathBuf,
        wake: tokio::sync::mpsc::UnboundedSender<PathBuf>,
    ) -> Result<Self, String> {
        let pattern = pattern
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| format!("the pattern `{p}` is not a file name pattern: {e}"))
            })
            .transpose()?;
        let watcher = {
            use notify::Watcher;
            let handler = move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = wake.send(flow.clone());
                }
            };
            match notify::recommended_watcher(handler) {
                Ok(mut w) => match w.watch(&folder, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => Some(w),
                    Err(e) => {
                        tracing::info!(
                            "{}: no file notifications ({e}); the folder is listed every few seconds",
                            folder.display()
                        );
                        None
                    }
                },
                Err(_) => None,
            }
        };
        Ok(Self {
            folder,
            pattern,
            settle,
            activated,
            pending: HashMap::new(),
            _watcher: watcher,
            missing: false,
        })
    }

    /// Lists the folder: files new or changed since they were taken become pending.
    pub fn look(&mut self, flow: &str, store: &StateStore) {
        let entries = match std::fs::read_dir(&self.folder) {
            Ok(entries) => {
                if self.missing {
                    tracing::info!(flow, "the watched folder {} is back", self.folder.display());
                    self.missing = false;
                }
                entries
            }
            Err(e) => {
                if !self.missing {
                    tracing::warn!(
                        flow,
                        "cannot read the watched folder {}: {e}; the flow waits for it",
                        self.folder.display()
                    );
                    self.missing = true;
                }
                return;
            }
        };
        let now = Instant::now();
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !self.matches(&path) {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let (size, stamp) = (meta.len(), nanos(modified));
            let key = path.display().to_string();
            match store.taken_file(flow, &key) {
                Ok(Some(taken)) if taken == (size, stamp) => continue,
                Ok(None) if modified < self.activated => {
                    // There before the flow was active: not new to it.
                    let _ = store.take_file(flow, &key, size, stamp);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(flow, "{e}");
                    continue;
                }
            }
            let seen = self.pending.entry(path).or_insert(Seen {
                size,
                modified: stamp,
                since: now,
            });
            if (seen.size, seen.modified) != (size, stamp) {
                *seen = Seen {
                    size,
                    modified: stamp,
                    since: now,
                };
            }
        }
    }

    fn matches(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy());
        match (&self.pattern, name) {
            (_, Some(name)) if name.starts_with('.') => false,
            (Some(pattern), Some(name)) => pattern.matches(&name),
            (None, Some(_)) => true,
            (_, None) => false,
        }
    }

    /// Files that have not changed for the settle interval, taken now (recorded, so they
    /// are not taken again unless they change).
    pub fn settled(&mut self, flow: &str, store: &StateStore) -> Vec<PathBuf> {
        let now = Instant::now();
        let mut ready = Vec::new();
        self.pending.retain(|path, seen| {
            if now.duration_since(seen.since) < self.settle {
                return true;
            }
            let Ok(meta) = std::fs::metadata(path) else {
                // Gone before it settled.
                return false;
            };
            let stamp = nanos(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if (meta.len(), stamp) != (seen.size, seen.modified) {
                *seen = Seen {
                    size: meta.len(),
                    modified: stamp,
                    since: now,
                };
                return true;
            }
            match store.take_file(flow, &path.display().to_string(), seen.size, stamp) {
                Ok(()) => ready.push(path.clone()),
                Err(e) => tracing::warn!(flow, "{e}"),
            }
            false
        });
        ready.sort();
        ready
    }

    /// When the earliest pending file will have settled.
    pub fn next_settle(&self) -> Option<Instant> {
        self.pending.values().map(|s| s.since + self.settle).min()
    }
}

fn nanos(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
