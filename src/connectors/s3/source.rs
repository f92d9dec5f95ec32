//! `source.s3`: reads the CSV, JSON lines, JSON or Parquet objects under a prefix.
//!
//! Objects are listed page by page (S3 returns at most 1,000 keys a page) and read in key
//! order. Each is downloaded to a temporary file while the one before it is being read, and
//! then read exactly as the file source reads a local file: the same types, the same
//! handling of malformed records, with `s3://bucket/key` named in every error record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{Schema, SchemaRef};
use aws_sdk_s3::Client;
use aws_sdk_s3::types::Object;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{Access, block_on, check_bucket, explain, normalize_prefix};
use crate::connectors::file::{ReadSettings, infer_schema, read_file, with_overrides};
use crate::connectors::formats::FileFormat;
use crate::engine::{Demand, SourceOutput};
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime,
    Source,
};
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// An S3 connection (region, profile, endpoint); the standard AWS environment
    /// (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `~/.aws`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The bucket to read from.
    pub bucket: String,
    /// Read the objects whose keys start with this, e.g. `exports/orders/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The objects' format; from the first object's extension when absent. Objects of
    /// another format under the prefix are left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// Only objects modified after this instant (RFC 3339, e.g. `2026-11-01T00:00:00Z`,
    /// or a `${param}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
    /// Field types to use instead of the ones read from the data, e.g.
    /// `{"CloseDate": "date"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub schema: IndexMap<String, FieldType>,
    /// The CSV field separator.
    #[serde(default = "comma", skip_serializing_if = "is_comma")]
    pub delimiter: char,
    /// Stop the run at the first malformed record instead of setting it aside.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_first_error: bool,
    /// The bucket's region, over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible store's address (MinIO, Ceph, R2…), over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

fn comma() -> char {
    ','
}

fn is_comma(c: &char) -> bool {
    *c == ','
}

impl NodeKind for S3Source {
    const TYPE: &'static str = "source.s3";
    const TITLE: &'static str = "Amazon S3";
    const ICON: &'static str = "☁";
    const TESTS_CONNECTION: bool = true;
    const DESCRIPTION: &'static str =
        "Read CSV, JSON lines, JSON or Parquet objects from an S3 bucket or an S3-compatible store";
}

/// Bytes of a text object read to work out its fields: plenty for 1,000 records.
const SAMPLE_BYTES: u64 = 4 << 20;

/// What was learnt of a prefix's objects, kept a little while: the app plans the flow on
/// every edit, and listing a bucket each time would be slow and cost requests.
type Learnt = Result<(FileFormat, Schema), String>;
static LEARNT: LazyLock<Mutex<HashMap<String, (Instant, Learnt)>>> = LazyLock::new(Mutex::default);

impl S3Source {
    fn access(&self) -> Result<Access, NodeError> {
        Access::resolve(
            self.connection.as_deref(),
            self.region.as_deref(),
            self.endpoint_url.as_deref(),
        )
    }

    fn modified_after(&self) -> Result<Option<DateTime<Utc>>, ConfigProblem> {
        let Some(text) = self
            .modified_after
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                ConfigProblem::new(
                    "/modified_after",
                    format!("`{text}` is not a date and time like 2026-11-01T00:00:00Z: {e}"),
                )
            })
    }

    /// Whether an object belongs to the run.
    fn wanted(&self, object: &Object, format: FileFormat, after: Option<DateTime<Utc>>) -> bool {
        let Some(key) = object.key() else {
            return false;
        };
        if key.ends_with('/') || FileFormat::from_path(key) != Some(format) {
            return false;
        }
        match (after, object.last_modified()) {
            (Some(after), Some(modified)) => {
                modified.secs() > after.timestamp()
                    || (modified.secs() == after.timestamp()
                        && modified.subsec_nanos() > after.timestamp_subsec_nanos())
            }
            _ => true,
        }
    }

    /// The format and the fields of the objects, from the first one.
    async fn learn(&self, access: &Access) -> Learnt {
        let client = access.client().await.map_err(|e| e.to_string())?;
        let prefix = normalize_prefix(&self.prefix);
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| explain(e, access, &self.bucket).to_string())?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let format = match (self.format, FileFormat::from_path(key)) {
                    (Some(wanted), Some(found)) if wanted == found => wanted,
                    (None, Some(found)) => found,
                    _ => continue,
                };
                let schema = self.sample(&client, access, key, format).await?;
                return Ok((format, schema));
            }
        }
        Err(format!(
            "s3://{}/{prefix} holds no {} objects to read",
            self.bucket,
            self.format
                .map_or("CSV, JSON lines, JSON or Parquet".into(), |f| f
                    .extension()
                    .to_string())
        ))
    }

    /// The fields of one object: a Parquet file's footer, or the first records of a text
    /// file.
    async fn sample(
        &self,
        client: &Client,
        access: &Access,
        key: &str,
        format: FileFormat,
    ) -> Result<Schema, String> {
        let name = format!("s3://{}/{key}", self.bucket);
        let range = match format {
            FileFormat::Parquet => parquet_footer_range(client, access, &self.bucket, key).await?,
            _ => format!("bytes=0-{}", SAMPLE_BYTES - 1),
        };
        let mut body = client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(range)
            .send()
            .await
            .map_err(|e| explain(e, access, &self.bucket).to_string())?
            .body
            .collect()
            .await
            .map_err(|e| format!("cannot read {name}: {e}"))?
            .to_vec();
        if format == FileFormat::Parquet {
            return parquet_schema(&body).map_err(|e| format!("{name}: {e}"));
        }
        // A sample cut mid-record would look malformed: keep whole lines only.
        if body.len() as u64 == SAMPLE_BYTES
            && let Some(end) = body.iter().rposition(|&b| b == b'\n')
        {
            body.truncate(end + 1);
        }
        let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        std::fs::write(file.path(), &body).map_err(|e| e.to_string())?;
        infer_schema(format, file.path(), self.delimiter).map_err(|e| format!("{name}: {e}"))
    }

    fn plan(&self) -> Result<(FileFormat, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if let Err(p) = check_bucket(&self.bucket) {
            problems.push(p);
        }
        if let Err(p) = self.modified_after() {
            problems.push(p);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let access = self
            .access()
            .map_err(|e| vec![ConfigProblem::new("/connection", e.to_string())])?;
        let key = format!(
            "{access:?}|{}|{}|{:?}|{}",
            self.bucket, self.prefix, self.format, self.delimiter
        );
        let cached = LEARNT.lock().unwrap().get(&key).and_then(|(at, learnt)| {
            let fresh = match learnt {
                Ok(_) => Duration::from_secs(60),
                Err(_) => Duration::from_secs(5),
            };
            (at.elapsed() < fresh).then(|| learnt.clone())
        });
        let learnt = match cached {
            Some(learnt) => learnt,
            None => {
                let learnt = block_on(self.learn(&access));
                LEARNT
                    .lock()
                    .unwrap()
                    .insert(key, (Instant::now(), learnt.clone()));
                learnt
            }
        };
        let (format, inferred) = learnt.map_err(|m| vec![ConfigProblem::new("/bucket", m)])?;
        let origin = format!("s3://{}/{}", self.bucket, normalize_prefix(&self.prefix));
        let schema = with_overrides(inferred, &self.schema, format, &origin)?;
        Ok((format, schema))
    }
}

/// The byte range that holds a Parquet file's footer: its last 8 bytes say how long the
/// metadata before them is.
async fn parquet_footer_range(
    client: &Client,
    access: &Access,
    bucket: &str,
    key: &str,
) -> Result<String, String> {
    let tail = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range("bytes=-8")
        .send()
        .await
        .map_err(|e| explain(e, access, bucket).to_string())?
        .body
        .collect()
        .await
        .map_err(|e| format!("cannot read s3://{bucket}/{key}: {e}"))?
        .to_vec();
    if tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Err(format!("s3://{bucket}/{key} is not a Parquet file"));
    }
    let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    Ok(format!("bytes=-{}", length + 8))
}

/// The Arrow schema of a Parquet footer (metadata followed by its length and magic).
fn parquet_schema(footer: &[u8]) -> Result<Schema, String> {
    let metadata_bytes = footer
        .len()
        .checked_sub(8)
        .map(|end| &footer[..end])
        .ok_or("the Parquet footer is cut short")?;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(metadata_bytes)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let file = metadata.file_metadata();
    parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| format!("cannot read the Parquet schema: {e}"))
}

impl NodeConfig for S3Source {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan().map(|(_, schema)| schema)
    }

    fn test_connection(&self) -> BoxFuture<Result<String, NodeError>> {
        super::test(self.access(), &self.bucket, &self.prefix)
    }

    fn summary(&self) -> String {
        let mut s = format!("s3://{}/{}", self.bucket, normalize_prefix(&self.prefix));
        if let Some(f) = self.format {
            s += &format!(" · {}", f.extension());
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (format, _) = self.plan()?;
        let after = self
            .modified_after()
            .map_err(|p| NodeError::msg(p.message))?;
        Ok(Runtime::Source(Box::new(S3Read {
            config: self.clone(),
            access: self.access()?,
            after,
            settings: ReadSettings {
                format,
                schema: cx.output_schema.clone(),
                delimiter: self.delimiter as u8,
                fail_on_first_error: self.fail_on_first_error,
            },
        })))
    }
}

struct S3Read {
    config: S3Source,
    access: Access,
    after: Option<DateTime<Utc>>,
    settings: ReadSettings,
}

/// An object on local disk, removed when dropped.
struct Downloaded {
    file: tempfile::TempPath,
    name: String,
}

impl Source for S3Read {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            let S3Read {
                config,
                access,
                after,
                settings,
            } = *self;
            // One object waits on disk while another is read.
            let (tx, mut rx) = mpsc::channel::<Downloaded>(1);
            let format = settings.format;
            let download =
                tokio::spawn(
                    async move { download_all(&config, &access, format, after, tx).await },
                );
            let read = tokio::task::spawn_blocking(move || {
                while let Some(object) = rx.blocking_recv() {
                    let path: PathBuf = object.file.to_path_buf();
                    if read_file(&settings, &mut out, &path, &object.name)? == Demand::Enough {
                        break;
                    }
                }
                Ok::<(), NodeError>(())
            });
            let read = read.await.map_err(|e| {
                NodeError::msg(format!("reading objects stopped unexpectedly: {e}"))
            })?;
            // The reader stops early when a preview has enough records; the download then
            // fails to hand over its next object, which is no error.
            let downloaded = download
                .await
                .map_err(|e| NodeError::msg(format!("downloading stopped unexpectedly: {e}")))?;
            read?;
            downloaded
        })
    }
}

async fn download_all(
    config: &S3Source,
    access: &Access,
    format: FileFormat,
    after: Option<DateTime<Utc>>,
    tx: mpsc::Sender<Downloaded>,
) -> Result<(), NodeError> {
    let bucket = &config.bucket;
    let client = access.client().await?;
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(normalize_prefix(&config.prefix))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| explain(e, access, bucket))?;
        for object in page.contents() {
            if !config.wanted(object, format, after) {
                continue;
            }
            let key = object.key().expect("wanted objects have keys");
            let name = format!("s3://{bucket}/{key}");
            let file = download(&client, access, bucket, key, &name).await?;
            if tx.send(Downloaded { file, name }).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

async fn download(
    client: &Client,
    access: &Access,
    bucket: &str,
    key: &str,
    name: &str,
) -> Result<tempfile::TempPath, NodeError> {
    let failed = |e: std::io::Error| NodeError::io(format!("cannot download {name}"), e);
    let path = tempfile::Builder::new()
        .prefix("tributary-s3-")
        .tempfile()
        .map_err(failed)?
        .into_temp_path();
    let mut body = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| explain(e, access, bucket))?
        .body;
    let mut file = tokio::fs::File::create(&path).await.map_err(failed)?;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| NodeError::msg(format!("cannot download {name}: {e}")))?
    {
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_footers_decode() {
        use arrow::array::{Int64Array, RecordBatch};
        use arrow::datatypes::{DataType, Field};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
                .unwrap();
        let mut bytes = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let length =
            u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
        let footer = &bytes[bytes.len() - 8 - length as usize..];
        let read = parquet_schema(footer).unwrap();
        assert_eq!(read.field(0).name(), "n");
        assert_eq!(read.field(0).data_type(), &DataType::Int64);
        assert!(parquet_schema(b"PAR1").is_err());
    }
}
