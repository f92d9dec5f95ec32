//! `source.file`: reads CSV, JSON lines, JSON arrays and Parquet from a file or a glob.
//! The decoding itself is in [`crate::codecs::read`], shared with S3, REST and Salesforce.

use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::codecs::FileFormat;
use crate::codecs::read::{
    NewFields, ReadSettings, comma, every_records_fields, infer_schema, is_comma, read_file,
    with_overrides,
};
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime,
    Source,
};
use crate::node::{Demand, SourceOutput};
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// A file, or a glob such as `exports/*.csv`; relative to the flow file's folder.
    #[schemars(extend("x-path" = "file"))]
    pub path: String,
    /// The format; from the file extension when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// Field types to use instead of the ones read from the data (the first 1,000
    /// records), e.g. `{"CloseDate": "date"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub schema: IndexMap<String, FieldType>,
    /// The CSV field separator.
    #[serde(default = "comma", skip_serializing_if = "is_comma")]
    #[schemars(extend("default" = ","))]
    pub delimiter: char,
    /// Stop the run at the first malformed record instead of setting it aside.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_first_error: bool,
    /// What happens to a JSON record holding a field the source's fields lack (they are
    /// learned from the first 1,000 records).
    #[serde(default, skip_serializing_if = "NewFields::is_default")]
    pub new_fields: NewFields,
}

/// "; did you mean orders.csv?" when the folder of a missing file holds one of a name
/// close to it (a typo, another case, another extension).
fn did_you_mean(missing: &Path) -> String {
    let (Some(folder), Some(name)) = (missing.parent(), missing.file_name()) else {
        return String::new();
    };
    let name = name.to_string_lossy().to_lowercase();
    let Ok(entries) = std::fs::read_dir(if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    }) else {
        return String::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .map(|candidate| {
            let distance = strsim::levenshtein(&name, &candidate.to_lowercase());
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= 2.max(name.len() / 4))
        .min()
        .map(|(_, candidate)| format!("; did you mean {candidate}?"))
        .unwrap_or_default()
}

impl NodeKind for FileSource {
    const TYPE: &'static str = "source.file";
    const TITLE: &'static str = "File";
    const ICON: &'static str = "📄";
    const DESCRIPTION: &'static str = "Read CSV, JSON lines, JSON or Parquet files";
}

impl FileSource {
    fn format(&self) -> Result<FileFormat, ConfigProblem> {
        if self.path.trim().is_empty() && self.format.is_none() {
            // The path's own problem says what to do; the format follows from it.
            return Ok(FileFormat::Csv);
        }
        self.format
            .or_else(|| FileFormat::from_path(&self.path))
            .ok_or_else(|| ConfigProblem::new("/format", format!("cannot tell the format of `{}` from its name; set format to csv, jsonl, json or parquet", self.path)))
    }

    /// The files the path names, in name order.
    fn files(&self, base: &Path) -> Result<Vec<PathBuf>, ConfigProblem> {
        let problem = |m: String| ConfigProblem::new("/path", m);
        if self.path.trim().is_empty() {
            return Err(problem("choose a file to read".into()));
        }
        let full = base.join(&self.path);
        let pattern = full.to_string_lossy();
        if !self.path.contains(['*', '?', '[']) {
            return if full.is_file() {
                Ok(vec![full])
            } else if full.is_dir() {
                Err(problem(format!(
                    "{} is a folder: name a file in it, or all its files of one kind with a pattern such as {}/*.csv",
                    full.display(),
                    self.path.trim_end_matches('/')
                )))
            } else {
                Err(problem(format!(
                    "there is no file {}{}",
                    full.display(),
                    did_you_mean(&full)
                )))
            };
        }
        let mut files: Vec<PathBuf> = glob::glob(&pattern)
            .map_err(|e| problem(format!("`{}` is not a valid file pattern: {e}", self.path)))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(problem(format!("no file matches {pattern}")));
        }
        Ok(files)
    }

    fn plan(
        &self,
        base: &Path,
    ) -> Result<(FileFormat, Vec<PathBuf>, SchemaRef), Vec<ConfigProblem>> {
        let format = self.format();
        let files = self.files(base);
        let (format, files) = match (format, files) {
            (Ok(f), Ok(files)) => (f, files),
            (a, b) => return Err([a.err(), b.err()].into_iter().flatten().collect()),
        };
        let first = &files[0];
        let inferred = match (self.new_fields, format) {
            (NewFields::Add, FileFormat::Jsonl | FileFormat::Json) => {
                every_records_fields(format, &files)
            }
            (NewFields::Add, _) => {
                return Err(vec![ConfigProblem::new(
                    "/new_fields",
                    format!(
                        "`add` is for JSON files; a {} file has its fields in its {}",
                        format.extension(),
                        if format == FileFormat::Csv {
                            "header line"
                        } else {
                            "footer"
                        }
                    ),
                )]);
            }
            _ => infer_schema(format, first, self.delimiter),
        }
        .map_err(|m| {
            vec![ConfigProblem::new(
                "/path",
                format!("{}: {m}", first.display()),
            )]
        })?;
        let schema = with_overrides(inferred, &self.schema, format, &first.display().to_string())?;
        Ok((format, files, schema))
    }
}

impl NodeConfig for FileSource {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(&cx.base_dir).map(|(_, _, s)| s)
    }

    fn summary(&self) -> String {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        match self.format() {
            Ok(f) => format!("{name} · {}", f.extension()),
            Err(_) => name.to_string(),
        }
    }

    /// A part is the files whose paths hash to it.
    fn reads_in_partitions(&self) -> Result<(), String> {
        Ok(())
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (format, mut files, _) = self.plan(&cx.base_dir)?;
        if let Some(part) = cx.partition {
            // By the file's path under the flow's folder: the same part on every machine.
            files.retain(|f| {
                let key = f.strip_prefix(&cx.base_dir).unwrap_or(f);
                part.holds(&key.to_string_lossy())
            });
        }
        Ok(Runtime::Source(Box::new(FileRun {
            settings: ReadSettings {
                format,
                schema: cx.output_schema.clone(),
                delimiter: self.delimiter as u8,
                fail_on_first_error: self.fail_on_first_error,
                strict: self.new_fields.strict(),
                stop_on_new_field: self.new_fields.stops(),
            },
            files,
        })))
    }
}

struct FileRun {
    settings: ReadSettings,
    files: Vec<PathBuf>,
}

impl Source for FileRun {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                for path in &self.files {
                    let name = path.display().to_string();
                    if read_file(&self.settings, &mut out, path, &name)? == Demand::Enough {
                        break;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| NodeError::msg(format!("reading files stopped unexpectedly: {e}")))?
        })
    }
}
