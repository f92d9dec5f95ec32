//! `destination.local`: writes a folder of files, laid out with AppFlow's S3 output options
//! and Hive-style partitions.
//!
//! Files are written into a staging folder inside the destination (`.tributary-staging/`)
//! and renamed into place only when the whole run succeeded, so a reader never sees a
//! partial file under a final name. A run killed outright leaves only its staging folder;
//! the next run to the same folder removes it, which it can tell from the lock that a live
//! run holds on its staging folder.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::formats::FileFormat;
use super::layout::TimePrefix;
use super::output::{FileSet, Layout, Store};
use crate::node::{
    BuildContext, ConfigProblem, Destination, NodeConfig, NodeError, NodeKind, OutputLocation,
    PlanContext, Runtime,
};
use crate::transforms::fields::{Problems, any_type};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalDestination {
    /// The folder to write into; relative to the flow file's folder. Created when missing.
    #[schemars(extend("x-path" = "folder"))]
    pub folder: String,
    #[serde(default = "parquet")]
    pub format: FileFormat,
    /// Folders by the run's start time (UTC): year, month, day, hour or minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<TimePrefix>,
    /// A folder per run, named by its execution id, below the time prefix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub execution_id_folder: bool,
    /// A folder named after the records' fields and types (`schema-1a2b3c4d`), below the
    /// execution id: files of a changed schema never mix with older ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_version_folder: bool,
    /// Hive-style folders by these fields' values: `StageName=Closed Won/…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-field" = true))]
    pub partition_by: Vec<String>,
    /// Also keep the partition fields inside the files (Hive leaves them out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_partition_fields: bool,
    /// Start a new file when one reaches about this many MB; one file per run (and per
    /// partition) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_mb: Option<u64>,
}

fn parquet() -> FileFormat {
    FileFormat::Parquet
}

impl NodeKind for LocalDestination {
    const TYPE: &'static str = "destination.local";
    const TITLE: &'static str = "Local folder";
    const ICON: &'static str = "📁";
    const DESCRIPTION: &'static str = "Write CSV, JSON lines, JSON or Parquet files to a folder";
}

impl LocalDestination {
    fn partition_columns(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let columns = problems.fields(input, &self.partition_by, "/partition_by", any_type, "");
        if self.file_size_mb == Some(0) {
            problems.push("/file_size_mb", "a file size must be at least 1 MB");
        }
        if self.folder.trim().is_empty() {
            problems.push("/folder", "choose a folder to write to");
        }
        problems.into_result(columns)
    }
}

impl NodeConfig for LocalDestination {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        self.partition_columns(input)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        let mut s = format!("{} · {}", self.folder, self.format.extension());
        if !self.partition_by.is_empty() {
            s += &format!(" · by {}", self.partition_by.join(", "));
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx
            .input_schema
            .as_ref()
            .expect("a destination has an input");
        let columns = self.partition_columns(input)?;
        let root = cx.base_dir.join(&self.folder);
        let staging = Staging::create(&root, &cx.execution_id)?;
        let layout = Layout {
            format: self.format,
            time_prefix: self.prefix,
            execution_id_folder: self.execution_id_folder,
            schema_version_folder: self.schema_version_folder,
            partition_columns: columns,
            keep_partition_fields: self.keep_partition_fields,
            target_bytes: self.file_size_mb.map(|mb| mb * 1024 * 1024),
            file_per_batch: false,
            all_strings: false,
        };
        Ok(Runtime::Destination(Box::new(LocalRun {
            root,
            files: FileSet::new(staging, layout, input, cx.started, &cx.execution_id),
        })))
    }
}

/// A run's staging folder, locked for as long as the run lives.
struct Staging {
    dir: PathBuf,
    _lock: File,
}

const STAGING: &str = ".tributary-staging";

impl Staging {
    fn create(root: &Path, execution_id: &str) -> Result<Self, NodeError> {
        let parent = root.join(STAGING);
        fs::create_dir_all(&parent).map_err(|e| {
            NodeError::io(format!("cannot create the folder {}", root.display()), e)
        })?;
        remove_abandoned(&parent);
        let dir = parent.join(execution_id);
        fs::create_dir_all(&dir)
            .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
        let lock = File::create(dir.join("lock"))
            .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
        lock.try_lock()
            .map_err(|e| NodeError::msg(format!("cannot lock {}: {e}", dir.display())))?;
        Ok(Self { dir, _lock: lock })
    }
}

impl Staging {
    /// Removes this run's staging folder, and the staging area when no other run uses it.
    fn remove(&self) {
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(parent) = self.dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Removes staging folders of runs that are no longer alive: their lock can be taken.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let abandoned = match File::open(dir.join("lock")) {
            Ok(lock) => lock.try_lock().is_ok(),
            // A folder without a lock file is either being created right now or was left
            // by a run killed in its first instant; only the latter is old.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 600)),
        };
        if abandoned {
            tracing::info!(
                "removing the staging folder of an interrupted run: {}",
                dir.display()
            );
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Files are written below the staging folder and synced before they count as staged.
impl Store for Staging {
    type Sink = BufWriter<File>;
    type Staged = ();

    fn create(&mut self, relative: &str, _: FileFormat) -> Result<Self::Sink, NodeError> {
        let path = self.dir.join(relative);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let file = File::create(&path)
            .map_err(|e| NodeError::io(format!("cannot create {}", path.display()), e))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    }

    fn stage(&mut self, relative: &str, sink: Self::Sink) -> Result<(), NodeError> {
        let io = |e| NodeError::io(format!("cannot finish {relative}"), e);
        let handle = sink.into_inner().map_err(|e| io(e.into_error()))?;
        // On disk before it is renamed into place: a crash after the rename must not leave
        // an empty file under a final name.
        handle.sync_all().map_err(io)
    }
}

struct LocalRun {
    root: PathBuf,
    files: FileSet<Staging>,
}

impl Destination for LocalRun {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        self.files.write(batch)
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.files.finish()
    }

    fn commit(self: Box<Self>) -> Result<Vec<OutputLocation>, NodeError> {
        let files = self.files;
        let mut outputs = Vec::with_capacity(files.staged.len());
        let mut made: HashSet<PathBuf> = HashSet::new();
        for file in &files.staged {
            let target = self.root.join(&file.relative);
            if let Some(dir) = target.parent()
                && made.insert(dir.to_path_buf())
            {
                fs::create_dir_all(dir)
                    .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
            }
            fs::rename(files.store.dir.join(&file.relative), &target).map_err(|e| {
                NodeError::io(format!("cannot move {} into place", target.display()), e)
            })?;
            outputs.push(OutputLocation {
                location: target.display().to_string(),
                records: file.records,
                bytes: file.bytes,
            });
        }
        if let Some(dir) = self.root.join(files.run_folder()).parent() {
            sync_dir(dir);
        }
        files.store.remove();
        Ok(outputs)
    }

    fn abort(self: Box<Self>) {
        self.files.store.remove();
    }

    fn bytes_written(&self) -> u64 {
        self.files.bytes_written()
    }
}

/// Makes renames in a folder durable where the platform allows it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
