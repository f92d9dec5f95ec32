//! `destination.local`: writes a folder of files, laid out with AppFlow's S3 output options
//! and Hive-style partitions.
//!
//! Files are written into a staging folder inside the destination (`.tributary-staging/`)
//! and renamed into place only when the whole run succeeded, so a reader never sees a
//! partial file under a final name. A run killed outright leaves only its staging folder;
//! the next run to the same folder removes it, which it can tell from the lock that a live
//! run holds on its staging folder.
//!
//! Committing renames the files one by one, so it is made finishable: the run's commit
//! record (kept by the engine) and a `commit.json` in the staging folder list every file
//! before the first rename. A run killed halfway is finished by the next run of the flow
//! ([`NodeKind::finish_commit`]), which moves what is left; until then other runs to the
//! folder leave that staging folder alone.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::catalog::{self, duckdb, duckdb::LocalCatalog, duckdb::TablePlan};
use super::layout::TimePrefix;
use super::output::{FileSet, Layout, Store};
use crate::codecs::FileFormat;
use crate::fields::{Problems, any_type};
use crate::node::{
    BuildContext, ConfigProblem, Destination, NodeConfig, NodeError, NodeKind, OutputLocation,
    PlanContext, Published, Runtime,
};
use serde_json::{Value, json};

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
    /// Each partition this run writes keeps only this run's files: the `part-…` files
    /// earlier runs wrote in it are removed as the run commits. For sources that read
    /// some days again (a lookback), so that a day read again replaces the one before
    /// instead of doubling it. Needs `partition_by`, and neither `prefix` nor
    /// `execution_id_folder` (with them, runs never write to the same folder).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_partitions: bool,
    /// Keep a catalog beside the data: `_tributary_table.json` (columns, partitions and
    /// their figures) and a DuckDB view `<table>.sql` over every file, updated by each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<LocalCatalog>,
}

fn parquet() -> FileFormat {
    FileFormat::Parquet
}

impl NodeKind for LocalDestination {
    const TYPE: &'static str = "destination.local";
    const TITLE: &'static str = "Local folder";
    const ICON: &'static str = "📁";
    const DESCRIPTION: &'static str = "Write CSV, JSON lines, JSON or Parquet files to a folder";
    const KEEPS_FOR_COMMIT: bool = true;

    fn finish_commit(plan: &Value, _: &crate::paths::Dirs) -> Result<Published, NodeError> {
        CommitPlan::from_value(plan)?.publish()
    }

    fn abort_plan(plan: &Value, _: &crate::paths::Dirs) -> Result<(), NodeError> {
        let plan = CommitPlan::from_value(plan)?;
        // Only ever a run's own folder in a staging area, whatever the record says.
        let inside =
            plan.staging.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new(STAGING));
        if !inside {
            return Err(NodeError::msg(format!(
                "{} is not a staging folder; nothing was removed",
                plan.staging.display()
            )));
        }
        match fs::remove_dir_all(&plan.staging) {
            Ok(()) => {
                if let Some(parent) = plan.staging.parent() {
                    let _ = fs::remove_dir(parent);
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(NodeError::io(
                format!("cannot remove {}", plan.staging.display()),
                e,
            )),
        }
    }
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
        if let Some(catalog) = &self.catalog {
            catalog.check(&mut problems);
        }
        if self.replace_partitions {
            if self.partition_by.is_empty() {
                problems.push(
                    "/replace_partitions",
                    "replacing partitions needs `partition_by`: the fields whose values name them",
                );
            }
            if self.prefix.is_some() || self.execution_id_folder {
                problems.push(
                    "/replace_partitions",
                    "with a time prefix or a folder per execution, each run writes to folders of its own: there is nothing to replace",
                );
            }
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
        if self.catalog.is_some() {
            s += " · DuckDB view";
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx
            .input_schema
            .as_ref()
            .expect("a destination has an input");
        let columns = self.partition_columns(input)?;
        // Absolute, so that a commit finished by a later run started elsewhere finds it.
        let root = std::path::absolute(cx.base_dir.join(&self.folder))
            .map_err(|e| NodeError::io(format!("cannot find the folder {}", self.folder), e))?;
        if let Ok(target) = fs::read_link(&root)
            && !root.exists()
        {
            return Err(NodeError::msg(format!(
                "{} is a link to {}, which does not exist: create that folder, or choose another",
                root.display(),
                target.display()
            )));
        }
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
        let catalog = self.catalog.as_ref().map(|c| CatalogTarget {
            table: (c.table.clone()).unwrap_or_else(|| catalog::table_name(&cx.flow_name)),
            flow: cx.flow_name.clone(),
            node: cx.node_id.clone(),
            execution_id: cx.execution_id.clone(),
        });
        Ok(Runtime::Destination(Box::new(LocalRun {
            root,
            files: FileSet::new(staging, layout, input, cx.started, &cx.execution_id),
            replace: self.replace_partitions.then_some(self.format.extension()),
            catalog,
            plan: OnceLock::new(),
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
        // A link in place of the staging folder would have runs stage (and clean up)
        // inside whatever folder it points to.
        let real_folder = fs::symlink_metadata(&parent).is_ok_and(|m| m.file_type().is_dir());
        if !real_folder {
            return Err(NodeError::msg(format!(
                "{} is not a folder (a link or a file is in its place); Tributary stages files only in a real folder: remove it and run again",
                parent.display()
            )));
        }
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
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            // Never followed: a link here is removed itself, whatever it points to.
            let _ = fs::remove_file(&dir);
            continue;
        }
        if dir.join(COMMIT_FILE).exists() {
            // A commit that was decided and interrupted: the next run of its flow finishes
            // it from here.
            continue;
        }
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
    /// With `replace_partitions`: the extension of the files to replace.
    replace: Option<&'static str>,
    catalog: Option<CatalogTarget>,
    /// Made once: the run's commit record and the commit itself name the same files.
    plan: OnceLock<CommitPlan>,
}

/// The table a run registers its files in, with what names the run.
struct CatalogTarget {
    table: String,
    flow: String,
    node: String,
    execution_id: String,
}

impl Destination for LocalRun {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        self.files.write(batch)
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.files.finish()
    }

    fn commit_plan(&self) -> Option<Value> {
        Some(self.plan().to_value())
    }

    fn commit(self: Box<Self>) -> Result<Published, NodeError> {
        // Marked before the first rename, so that other runs to this folder leave the
        // staging folder for the one that finishes the commit.
        self.mark_decided()?.publish()
    }

    fn abort(self: Box<Self>) {
        self.files.into_store().remove();
    }

    fn keep(self: Box<Self>) -> Result<Value, NodeError> {
        // Marked, so that other runs to this folder leave it for `tributary commit`.
        Ok(self.mark_decided()?.to_value())
    }

    fn bytes_written(&self) -> u64 {
        self.files.bytes_written()
    }
}

/// Marks a staging folder whose commit was decided; holds the [`CommitPlan`].
const COMMIT_FILE: &str = "commit.json";

impl LocalRun {
    /// Writes the plan into the staging folder ([`COMMIT_FILE`]): its publication is
    /// decided, and other runs to this folder leave it to the one that finishes it.
    fn mark_decided(&self) -> Result<CommitPlan, NodeError> {
        let plan = self.plan().clone();
        let marker = self.files.store.dir.join(COMMIT_FILE);
        let io = |e| NodeError::io(format!("cannot write {}", marker.display()), e);
        let mut file = File::create(&marker).map_err(io)?;
        std::io::Write::write_all(&mut file, plan.to_value().to_string().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_dir(&self.files.store.dir);
        Ok(plan)
    }

    fn plan(&self) -> &CommitPlan {
        self.plan.get_or_init(|| {
            let files: Vec<(String, u64, u64)> = (self.files.staged.iter())
                .map(|f| (f.relative.clone(), f.records, f.bytes))
                .collect();
            let replaced = match self.replace {
                Some(extension) => earlier_parts(&self.root, &files, extension),
                None => Vec::new(),
            };
            let catalog = self.catalog.as_ref().map(|c| {
                let written =
                    catalog::partitions_written(files.iter().map(|(r, n, b)| (r.as_str(), *n, *b)));
                TablePlan::new(
                    c.table.clone(),
                    &c.flow,
                    &c.node,
                    &c.execution_id,
                    &self.files.shape(),
                    written,
                    self.replace.is_some(),
                )
            });
            CommitPlan {
                root: self.root.clone(),
                staging: self.files.store.dir.clone(),
                files,
                replaced,
                catalog,
            }
        })
    }
}

/// The files earlier runs wrote in the folders this run's files go to: `part-…` files of
/// the same format that are not this run's.
fn earlier_parts(root: &Path, files: &[(String, u64, u64)], extension: &str) -> Vec<String> {
    let ours: HashSet<&str> = files.iter().map(|(r, _, _)| r.as_str()).collect();
    let folders: HashSet<&str> = (files.iter())
        .map(|(r, _, _)| r.rsplit_once('/').map_or("", |(folder, _)| folder))
        .collect();
    let suffix = format!(".{extension}");
    let mut earlier = Vec::new();
    for folder in folders {
        let Ok(entries) = fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = match folder {
                "" => name.clone(),
                _ => format!("{folder}/{name}"),
            };
            let part = name.starts_with("part-") && name.ends_with(&suffix);
            if part
                && entry.file_type().is_ok_and(|t| t.is_file())
                && !ours.contains(relative.as_str())
            {
                earlier.push(relative);
            }
        }
    }
    earlier.sort();
    earlier
}

/// What publishing one run's files takes: move each from the staging folder to its place,
/// then remove the files they replace.
#[derive(Debug, Clone, PartialEq)]
struct CommitPlan {
    root: PathBuf,
    staging: PathBuf,
    /// Relative path ('/'-separated), records, bytes.
    files: Vec<(String, u64, u64)>,
    /// Relative paths of earlier runs' files that this run's replace.
    replaced: Vec<String>,
    /// The catalog table to register the files in once they are in place.
    catalog: Option<TablePlan>,
}

impl CommitPlan {
    fn to_value(&self) -> Value {
        json!({
            "root": self.root,
            "staging": self.staging,
            "files": self.files.iter().map(|(r, n, b)| json!([r, n, b])).collect::<Vec<_>>(),
            "replaced": self.replaced,
            "catalog": self.catalog,
        })
    }

    fn from_value(plan: &Value) -> Result<Self, NodeError> {
        let damaged = || NodeError::msg(format!("the commit record is damaged: {plan}"));
        let path = |key: &str| plan[key].as_str().map(PathBuf::from).ok_or_else(damaged);
        let files = plan["files"]
            .as_array()
            .ok_or_else(damaged)?
            .iter()
            .map(|f| {
                Some((
                    f.get(0)?.as_str()?.to_string(),
                    f.get(1)?.as_u64()?,
                    f.get(2)?.as_u64()?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(damaged)?;
        // Records of commits that replaced nothing may not name `replaced` at all.
        let replaced = match &plan["replaced"] {
            Value::Null => Vec::new(),
            list => (list.as_array().ok_or_else(damaged)?.iter())
                .map(|r| r.as_str().map(String::from))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(damaged)?,
        };
        let catalog = match &plan["catalog"] {
            Value::Null => None,
            table => Some(serde_json::from_value(table.clone()).map_err(|_| damaged())?),
        };
        Ok(Self {
            root: path("root")?,
            staging: path("staging")?,
            files,
            replaced,
            catalog,
        })
    }

    /// Moves every staged file into place, skipping those already there, removes the files
    /// they replace, then the staging folder, and registers the files in the catalog when
    /// the node keeps one. Safe to run again after an interruption
    /// (until it ends, a reader may see a replaced partition twice; the next run of the
    /// flow finishes it). When a file is neither staged nor in place, the commit cannot be
    /// finished: what it published is removed again, so the run's output is absent rather
    /// than partial, and nothing it would replace has been removed yet.
    fn publish(&self) -> Result<Published, NodeError> {
        let mut outputs = Vec::with_capacity(self.files.len());
        let mut made: HashSet<PathBuf> = HashSet::new();
        for (relative, records, bytes) in &self.files {
            let staged = self.staging.join(relative);
            let target = self.root.join(relative);
            if fs::symlink_metadata(&staged).is_ok() {
                if let Some(dir) = target.parent()
                    && made.insert(dir.to_path_buf())
                {
                    fs::create_dir_all(dir).map_err(|e| {
                        NodeError::io(format!("cannot create {}", dir.display()), e)
                    })?;
                }
                fs::rename(&staged, &target).map_err(|e| {
                    NodeError::io(format!("cannot move {} into place", target.display()), e)
                })?;
            } else if fs::symlink_metadata(&target).is_err() {
                self.roll_back();
                return Err(NodeError::msg(format!(
                    "the staged file {} of an interrupted commit is gone, so that run's output was removed; its records will be read again",
                    staged.display()
                )));
            }
            outputs.push(OutputLocation {
                location: target.display().to_string(),
                records: *records,
                bytes: *bytes,
            });
        }
        for dir in &made {
            sync_dir(dir);
        }
        let mut emptied: HashSet<PathBuf> = HashSet::new();
        for relative in &self.replaced {
            let file = self.root.join(relative);
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(NodeError::io(
                        format!(
                            "cannot remove {}, which this run's files replace",
                            file.display()
                        ),
                        e,
                    ));
                }
            }
            if let Some(dir) = file.parent() {
                emptied.insert(dir.to_path_buf());
            }
        }
        for dir in &emptied {
            sync_dir(dir);
        }
        if !self.replaced.is_empty() {
            tracing::info!(files = self.replaced.len(), "replaced earlier runs' files");
        }
        self.remove_staging();
        let registered = match &self.catalog {
            Some(table) => vec![duckdb::register(&self.root, table)?],
            None => Vec::new(),
        };
        Ok(Published {
            outputs,
            registered,
        })
    }

    /// Removes what the commit published so far, and its staging folder.
    fn roll_back(&self) {
        for (relative, _, _) in &self.files {
            let file = self.root.join(relative);
            let _ = fs::remove_file(&file);
            // And the folders the commit made for it (a partition's), once empty.
            for folder in file.ancestors().skip(1) {
                if folder == self.root || fs::remove_dir(folder).is_err() {
                    break;
                }
            }
        }
        self.remove_staging();
    }

    fn remove_staging(&self) {
        let _ = fs::remove_dir_all(&self.staging);
        if let Some(parent) = self.staging.parent() {
            // Only when no other run stages there.
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Makes renames in a folder durable where the platform allows it.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit killed while it removed the files it replaces (one gone, one left) is
    /// finished by publishing again: this run's file stays, the other earlier one goes.
    #[test]
    fn publishing_again_after_a_partial_replacement_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let staging = root.join(STAGING).join("run-2");
        fs::create_dir_all(root.join("day=3")).unwrap();
        fs::create_dir_all(staging.join("day=3")).unwrap();
        for old in ["part-run-1-00001.jsonl", "part-run-1-00002.jsonl"] {
            fs::write(root.join("day=3").join(old), "{\"v\":\"a\"}\n").unwrap();
        }
        fs::write(root.join("day=3/notes.txt"), "the user's own").unwrap();
        fs::write(
            staging.join("day=3/part-run-2-00001.jsonl"),
            "{\"v\":\"b\"}\n",
        )
        .unwrap();
        let files = vec![("day=3/part-run-2-00001.jsonl".to_string(), 1, 10)];
        let replaced = earlier_parts(&root, &files, "jsonl");
        assert_eq!(
            replaced,
            [
                "day=3/part-run-1-00001.jsonl",
                "day=3/part-run-1-00002.jsonl"
            ]
        );
        let plan = CommitPlan {
            root: root.clone(),
            staging,
            files,
            replaced,
            catalog: None,
        };
        let plan = CommitPlan::from_value(&plan.to_value()).unwrap();
        // As the kill left it: the new file in place, one earlier file removed.
        fs::rename(
            plan.staging.join("day=3/part-run-2-00001.jsonl"),
            root.join("day=3/part-run-2-00001.jsonl"),
        )
        .unwrap();
        fs::remove_file(root.join("day=3/part-run-1-00001.jsonl")).unwrap();
        plan.publish().unwrap();
        let mut left: Vec<String> = fs::read_dir(root.join("day=3"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["notes.txt", "part-run-2-00001.jsonl"]);
    }
}
