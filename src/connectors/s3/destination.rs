//! `destination.s3`: writes CSV, JSON lines or Parquet objects to a bucket, with AppFlow's
//! S3 output options (file aggregation, prefix by time, execution id and schema version,
//! source types or text) and Hive-style partitions by field values.
//!
//! Every object is a multipart upload that is completed only when the whole run succeeded:
//! until then nothing is visible under its key, and a failed or cancelled run aborts its
//! uploads, so the bucket holds a run's complete output or none of it. A run killed while
//! it completes them is finished by the next run of the flow, from the commit record.

use std::collections::HashMap;

use arrow::datatypes::{Schema, SchemaRef};
use aws_sdk_s3::types::ServerSideEncryption;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::upload::{self, ObjectSettings, StagedObject, Uploads};
use super::{Access, block_on, check_bucket, normalize_prefix};
use crate::codecs::FileFormat;
use crate::connectors::catalog::glue::{GlueCatalog, S3Catalog, TablePlan};
use crate::connectors::layout::TimePrefix;
use crate::connectors::output::{FileSet, Layout};
use crate::fields::{Problems, any_type};
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, Destination, NodeConfig, NodeError, NodeKind,
    OutputLocation, PlanContext, Published, Runtime,
};
use crate::paths::Dirs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Destination {
    /// An S3 connection (region, profile, endpoint); the standard AWS environment
    /// (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `~/.aws`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-connection" = super::CONNECTOR))]
    pub connection: Option<String>,
    /// The bucket to write to.
    pub bucket: String,
    /// Keys start with this, e.g. `crm/opportunities/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default = "parquet")]
    pub format: FileFormat,
    /// Write every field as text instead of keeping the source's types (AppFlow's
    /// "preserve source data typing" turned off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_strings: bool,
    /// One object per run (and per partition), or one per batch of records.
    #[serde(default, skip_serializing_if = "is_default")]
    pub aggregation: Aggregation,
    /// Start a new object when one reaches about this many MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_mb: Option<u64>,
    /// Folders by the run's start time (UTC): year, month, day, hour or minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_prefix: Option<TimePrefix>,
    /// A folder per run, named by its execution id, below the time prefix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub execution_id_folder: bool,
    /// A folder named after the records' fields and types (`schema-1a2b3c4d`), below the
    /// execution id: objects of a changed schema never mix with older ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_version_folder: bool,
    /// Hive-style folders by these fields' values: `StageName=Closed Won/…`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-field" = true))]
    pub partition_by: Vec<String>,
    /// Also keep the partition fields inside the objects (Hive leaves them out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_partition_fields: bool,
    /// Each partition this run writes keeps only this run's objects: the `part-…` objects
    /// earlier runs wrote in it are removed as the run commits. For sources that read some
    /// days again (a lookback), so that a day read again replaces the one before instead
    /// of doubling it. Needs `partition_by`, and neither `time_prefix` nor
    /// `execution_id_folder` (with them, runs never write to the same folder).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_partitions: bool,
    /// Server-side encryption of the objects.
    #[serde(default, skip_serializing_if = "is_default")]
    pub encryption: Encryption,
    /// The KMS key for `sse_kms` (id, ARN or alias); the bucket's default key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The bucket's region, over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible store's address (MinIO, Ceph, R2…), over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Register the objects in a catalog, so that Athena and other engines find them
    /// without a crawler: `{"glue": {"database": "crm_lake"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<S3Catalog>,
}

fn parquet() -> FileFormat {
    FileFormat::Parquet
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// How records are gathered into objects (AppFlow's aggregation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// One object per run and partition (split by `file_size_mb` when set).
    #[default]
    SingleFile,
    /// One object per batch of records, as they arrive.
    PerBatch,
}

/// Server-side encryption, as S3 offers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// The bucket's default.
    #[default]
    BucketDefault,
    /// S3-managed keys (AES256).
    SseS3,
    /// AWS KMS keys.
    SseKms,
}

impl NodeKind for S3Destination {
    const TYPE: &'static str = "destination.s3";
    const TITLE: &'static str = "Amazon S3";
    const ICON: &'static str = "☁";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some(super::CONNECTOR);
    const KEEPS_FOR_COMMIT: bool = true;
    const DESCRIPTION: &'static str =
        "Write CSV, JSON lines or Parquet objects to an S3 bucket or an S3-compatible store";

    fn finish_commit(plan: &serde_json::Value, dirs: &Dirs) -> Result<Published, NodeError> {
        let (plan, access, uploads) = CommitPlan::read(plan, dirs)?;
        let registered = block_on(async {
            let client = access.client().await?;
            upload::finish(&client, &access, &plan.bucket, &uploads).await?;
            upload::remove(&client, &access, &plan.bucket, &plan.replaced).await?;
            match &plan.catalog {
                Some(table) => Ok::<_, NodeError>(vec![table.register(&access).await?]),
                None => Ok(Vec::new()),
            }
        })?;
        Ok(Published {
            outputs: plan.outputs(),
            registered,
        })
    }

    fn abort_plan(plan: &serde_json::Value, dirs: &Dirs) -> Result<(), NodeError> {
        let (plan, access, uploads) = CommitPlan::read(plan, dirs)?;
        block_on(async {
            let client = access.client().await?;
            upload::abandon(&client, &access, &plan.bucket, &uploads).await
        })
    }
}

impl S3Destination {
    fn access(&self, dirs: &Dirs) -> Result<Access, NodeError> {
        Access::resolve(
            dirs,
            self.connection.as_deref(),
            self.region.as_deref(),
            self.endpoint_url.as_deref(),
        )
    }

    fn check(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let columns = problems.fields(input, &self.partition_by, "/partition_by", any_type, "");
        if let Err(p) = check_bucket(&self.bucket) {
            problems.push(&p.path, p.message);
        }
        if self.file_size_mb == Some(0) {
            problems.push("/file_size_mb", "an object size must be at least 1 MB");
        }
        if self.kms_key_id.is_some() && self.encryption != Encryption::SseKms {
            problems.push(
                "/kms_key_id",
                "a KMS key is used only with encryption sse_kms",
            );
        }
        if let Some(catalog) = &self.catalog {
            catalog.glue.check(
                self.format,
                &self.layout_keys(),
                &self.partition_by,
                &mut problems,
            );
        }
        if self.replace_partitions {
            if self.partition_by.is_empty() {
                problems.push(
                    "/replace_partitions",
                    "replacing partitions needs `partition_by`: the fields whose values name them",
                );
            }
            if self.time_prefix.is_some() || self.execution_id_folder {
                problems.push(
                    "/replace_partitions",
                    "with a time prefix or a folder per execution, each run writes to folders of its own: there is nothing to replace",
                );
            }
        }
        problems.into_result(columns)
    }

    /// The partition keys of the folders above the partition fields'.
    fn layout_keys(&self) -> Vec<&'static str> {
        GlueCatalog::layout_keys(
            self.time_prefix,
            self.execution_id_folder,
            self.schema_version_folder,
        )
    }
}

impl NodeConfig for S3Destination {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        self.check(input)?;
        Ok(input.clone())
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        super::test(self.access(&cx.dirs), &self.bucket, &self.prefix)
    }

    fn summary(&self) -> String {
        let mut s = format!(
            "s3://{}/{} · {}",
            self.bucket,
            normalize_prefix(&self.prefix),
            self.format.extension()
        );
        if !self.partition_by.is_empty() {
            s += &format!(" · by {}", self.partition_by.join(", "));
        }
        if let Some(catalog) = &self.catalog {
            s += &format!(" · Glue {}", catalog.glue.database);
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx
            .input_schema
            .as_ref()
            .expect("a destination has an input");
        let columns = self.check(input)?;
        let access = self.access(&cx.dirs)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| NodeError::msg("S3 needs the async runtime"))?;
        let settings = ObjectSettings {
            encryption: match self.encryption {
                Encryption::BucketDefault => None,
                Encryption::SseS3 => Some(ServerSideEncryption::Aes256),
                Encryption::SseKms => Some(ServerSideEncryption::AwsKms),
            },
            kms_key_id: self.kms_key_id.clone(),
            metadata: HashMap::from([
                ("execution-id".to_string(), cx.execution_id.clone()),
                ("flow".to_string(), header_safe(&cx.flow_name)),
                ("node".to_string(), header_safe(&cx.node_id)),
            ]),
        };
        let catalog = self.catalog.as_ref().map(|c| CatalogTarget {
            config: c.glue.clone(),
            flow: cx.flow_name.clone(),
            node: cx.node_id.clone(),
            location: format!("s3://{}/{}", self.bucket, normalize_prefix(&self.prefix)),
            layout_keys: self.layout_keys(),
            access: access.clone(),
            plan: None,
        });
        let reach = Reach {
            connection: self.connection.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        };
        let mut uploads = Uploads::new(
            access,
            self.bucket.clone(),
            normalize_prefix(&self.prefix),
            settings,
            runtime,
        );
        if let Some(journal) = cx.staging.clone() {
            // What the next run aborts if this process dies first: the uploads begun, as a
            // plan `abort_plan` reads.
            let (reach, bucket) = (reach.clone(), self.bucket.clone());
            uploads = uploads.journal(move |started| {
                let plan = CommitPlan {
                    reach: reach.clone(),
                    bucket: bucket.clone(),
                    objects: started
                        .iter()
                        .map(|(key, id)| PlannedObject {
                            upload: StagedObject::begun(key, id),
                            records: 0,
                            bytes: 0,
                        })
                        .collect(),
                    replaced: Vec::new(),
                    catalog: None,
                };
                journal.record(&serde_json::to_value(plan).expect("a plan is plain data"))
            });
        }
        let layout = Layout {
            format: self.format,
            time_prefix: self.time_prefix,
            execution_id_folder: self.execution_id_folder,
            schema_version_folder: self.schema_version_folder,
            partition_columns: columns,
            keep_partition_fields: self.keep_partition_fields,
            target_bytes: self.file_size_mb.map(|mb| mb * 1024 * 1024),
            file_per_batch: self.aggregation == Aggregation::PerBatch,
            all_strings: self.all_strings,
        };
        Ok(Runtime::Destination(Box::new(S3Run {
            files: FileSet::new(uploads, layout, input, cx.started, &cx.execution_id),
            replace: self.replace_partitions.then_some(self.format.extension()),
            replaced: Vec::new(),
            catalog,
            reach,
        })))
    }
}

/// Object metadata travels in HTTP headers, which take ASCII only: anything else is
/// percent-encoded.
fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() && c != '%' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

struct S3Run {
    files: FileSet<Uploads>,
    reach: Reach,
    /// With `replace_partitions`: the extension of the objects to replace.
    replace: Option<&'static str>,
    /// The earlier runs' objects this run's replace, found when it finished writing.
    replaced: Vec<String>,
    catalog: Option<CatalogTarget>,
}

/// The Glue table a run registers its objects in.
struct CatalogTarget {
    config: GlueCatalog,
    flow: String,
    node: String,
    /// `s3://bucket/prefix/`.
    location: String,
    layout_keys: Vec<&'static str>,
    access: Access,
    /// Made once the run's objects are all staged.
    plan: Option<TablePlan>,
}

/// The node's settings that say how to reach the bucket, kept in a commit record so that
/// another process can finish the commit. Never keys: those stay in the vault, under the
/// connection's name.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reach {
    connection: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
}

/// What publishing a run's objects takes: [`Destination::commit_plan`]'s document.
#[derive(Debug, Serialize, Deserialize)]
struct CommitPlan {
    reach: Reach,
    bucket: String,
    objects: Vec<PlannedObject>,
    /// Keys of earlier runs' objects to remove once these are in place.
    #[serde(default)]
    replaced: Vec<String>,
    /// The Glue table to register the objects in once they are in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    catalog: Option<TablePlan>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PlannedObject {
    upload: StagedObject,
    records: u64,
    bytes: u64,
}

impl CommitPlan {
    /// A plan as a commit record keeps it, with the access it was made with and its
    /// uploads.
    fn read(
        plan: &serde_json::Value,
        dirs: &Dirs,
    ) -> Result<(CommitPlan, Access, Vec<StagedObject>), NodeError> {
        let plan: CommitPlan = serde_json::from_value(plan.clone())
            .map_err(|e| NodeError::msg(format!("the commit record cannot be read: {e}")))?;
        let access = Access::resolve(
            dirs,
            plan.reach.connection.as_deref(),
            plan.reach.region.as_deref(),
            plan.reach.endpoint_url.as_deref(),
        )?;
        let uploads = plan.objects.iter().map(|o| o.upload.clone()).collect();
        Ok((plan, access, uploads))
    }

    fn outputs(&self) -> Vec<OutputLocation> {
        self.objects
            .iter()
            .map(|o| OutputLocation {
                location: format!("s3://{}/{}", self.bucket, o.upload.key),
                records: o.records,
                bytes: o.bytes,
            })
            .collect()
    }
}

impl S3Run {
    fn plan(&self) -> CommitPlan {
        CommitPlan {
            reach: self.reach.clone(),
            bucket: self.files.store.bucket().to_string(),
            objects: self
                .files
                .staged
                .iter()
                .map(|f| PlannedObject {
                    upload: f.staged.clone(),
                    records: f.records,
                    bytes: f.bytes,
                })
                .collect(),
            replaced: self.replaced.clone(),
            catalog: self.catalog.as_ref().and_then(|c| c.plan.clone()),
        }
    }
}

impl Destination for S3Run {
    fn write(&mut self, batch: &arrow::array::RecordBatch) -> Result<(), NodeError> {
        self.files.write(batch)
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.files.finish()?;
        if let Some(extension) = self.replace {
            let keys: Vec<String> = (self.files.staged.iter())
                .map(|f| f.staged.key.clone())
                .collect();
            self.replaced = self.files.store.earlier_parts(&keys, extension)?;
        }
        if let Some(catalog) = &mut self.catalog {
            let written = crate::connectors::catalog::partitions_written(
                (self.files.staged.iter()).map(|f| (f.relative.as_str(), f.records, f.bytes)),
            );
            let plan = TablePlan::new(
                &catalog.config,
                &catalog.flow,
                &catalog.node,
                catalog.location.clone(),
                &catalog.layout_keys,
                &self.files.shape(),
                written,
            );
            // Before anything is published: a table that cannot take these objects, or
            // Glue refusing access, fails the run with nothing visible.
            block_on(plan.check(&catalog.access))?;
            catalog.plan = Some(plan);
        }
        Ok(())
    }

    fn commit_plan(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.plan()).ok()
    }

    fn commit(self: Box<Self>) -> Result<Published, NodeError> {
        let plan = self.plan();
        let mut files = self.files;
        let staged: Vec<StagedObject> = std::mem::take(&mut files.staged)
            .into_iter()
            .map(|f| f.staged)
            .collect();
        files.store.publish(&staged)?;
        // Only once this run's objects are in place: a partition is never without one.
        files.store.remove(&plan.replaced)?;
        let registered = match (&plan.catalog, &self.catalog) {
            (Some(table), Some(target)) => vec![block_on(table.register(&target.access))?],
            _ => Vec::new(),
        };
        Ok(Published {
            outputs: plan.outputs(),
            registered,
        })
    }

    fn abort(self: Box<Self>) {
        self.files.into_store().abort();
    }

    /// The uploads stay open, unpublished, until `tributary commit` completes them.
    fn keep(self: Box<Self>) -> Result<serde_json::Value, NodeError> {
        serde_json::to_value(self.plan())
            .map_err(|e| NodeError::msg(format!("cannot write down the staged part: {e}")))
    }

    fn bytes_written(&self) -> u64 {
        self.files.bytes_written()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_ascii() {
        assert_eq!(
            header_safe("Opportunities to the lake"),
            "Opportunities to the lake"
        );
        assert_eq!(header_safe("Zürich 100%"), "Z%C3%BCrich 100%25");
    }
}
