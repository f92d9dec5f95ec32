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
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::formats::{FileFormat, FileWriter};
use super::layout::{Partitioner, TimePrefix, file_name, run_folder};
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
        Ok(Runtime::Destination(Box::new(LocalRun {
            root,
            staging,
            run_folder: run_folder(
                self.prefix,
                self.execution_id_folder,
                cx.started,
                &cx.execution_id,
            ),
            execution_id: cx.execution_id.clone(),
            format: self.format,
            partitioner: Partitioner::new(input, columns, self.keep_partition_fields),
            target_bytes: self.file_size_mb.map(|mb| mb * 1024 * 1024),
            open: IndexMap::new(),
            done: Vec::new(),
            seq: 0,
            closed_bytes: 0,
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

struct OpenFile {
    writer: FileWriter<BufWriter<File>>,
    relative: String,
    records: u64,
}

struct DoneFile {
    relative: String,
    records: u64,
    bytes: u64,
}

struct LocalRun {
    root: PathBuf,
    staging: Staging,
    run_folder: String,
    execution_id: String,
    format: FileFormat,
    partitioner: Partitioner,
    target_bytes: Option<u64>,
    /// Open files by partition folder.
    open: IndexMap<String, OpenFile>,
    done: Vec<DoneFile>,
    seq: u32,
    closed_bytes: u64,
}

impl LocalRun {
    /// Opens the next file of `partition`; `first` is the first batch it will hold.
    fn open_file(&mut self, partition: &str, first: &RecordBatch) -> Result<OpenFile, NodeError> {
        let name = file_name(&self.execution_id, self.seq, self.format.extension());
        self.seq += 1;
        let relative = [self.run_folder.as_str(), partition, name.as_str()]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        let path = self.staging.dir.join(&relative);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
        }
        let file = File::create(&path)
            .map_err(|e| NodeError::io(format!("cannot create {}", path.display()), e))?;
        let writer = FileWriter::new(
            self.format,
            BufWriter::with_capacity(1 << 20, file),
            self.partitioner.data_schema(),
            first,
        )?;
        Ok(OpenFile {
            writer,
            relative,
            records: 0,
        })
    }

    fn close(&mut self, file: OpenFile) -> Result<(), NodeError> {
        let (buffered, bytes) = file.writer.close()?;
        let io = |e| NodeError::io(format!("cannot finish {}", file.relative), e);
        let handle = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        // On disk before it is renamed into place: a crash after the rename must not leave
        // an empty file under a final name.
        handle.sync_all().map_err(io)?;
        self.closed_bytes += bytes;
        self.done.push(DoneFile {
            relative: file.relative,
            records: file.records,
            bytes,
        });
        Ok(())
    }
}

impl Destination for LocalRun {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        for (partition, part) in self.partitioner.split(batch)? {
            let mut file = match self.open.shift_remove(&partition) {
                Some(f) => f,
                None => self.open_file(&partition, &part)?,
            };
            file.writer.write(&part)?;
            file.records += part.num_rows() as u64;
            if self.target_bytes.is_some_and(|t| file.writer.size() >= t) {
                self.close(file)?;
            } else {
                self.open.insert(partition, file);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        for (_, file) in std::mem::take(&mut self.open) {
            self.close(file)?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<Vec<OutputLocation>, NodeError> {
        let mut outputs = Vec::with_capacity(self.done.len());
        let mut made: HashSet<PathBuf> = HashSet::new();
        for file in &self.done {
            let target = self.root.join(&file.relative);
            if let Some(dir) = target.parent()
                && made.insert(dir.to_path_buf())
            {
                fs::create_dir_all(dir)
                    .map_err(|e| NodeError::io(format!("cannot create {}", dir.display()), e))?;
            }
            fs::rename(self.staging.dir.join(&file.relative), &target).map_err(|e| {
                NodeError::io(format!("cannot move {} into place", target.display()), e)
            })?;
            outputs.push(OutputLocation {
                location: target.display().to_string(),
                records: file.records,
                bytes: file.bytes,
            });
        }
        if let Some(dir) = self.root.join(&self.run_folder).parent() {
            sync_dir(dir);
        }
        self.staging.remove();
        Ok(outputs)
    }

    fn abort(self: Box<Self>) {
        self.staging.remove();
    }

    fn bytes_written(&self) -> u64 {
        self.closed_bytes + self.open.values().map(|f| f.writer.size()).sum::<u64>()
    }
}

/// Makes renames in a folder durable where the platform allows it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
