//! `source.s3`: reads the CSV, JSON lines, JSON or Parquet objects under a prefix.
//!
//! Objects are listed page by page (S3 returns at most 1,000 keys a page) and read in key
//! order. Each is downloaded to a temporary file while the one before it is being read, and
//! then read exactly as the file source reads a local file: the same types, the same
//! handling of malformed records, with `s3://bucket/key` named in every error record.

use std::path::PathBuf;

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
use crate::codecs::FileFormat;
use crate::codecs::read::{self as file, ReadSettings, infer_schema, read_file, with_overrides};
use crate::connectors::framework::Watermark;
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, Partition,
    PlanContext, Runtime, Source,
};
use crate::node::{Demand, SourceOutput};
use crate::paths::Dirs;
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Source {
    /// An S3 connection (region, profile, endpoint); the standard AWS environment
    /// (`AWS_PROFILE`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `~/.aws`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-connection" = super::CONNECTOR))]
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
    /// Read only the objects added or changed since the last successful run (`run --full`
    /// reads them all once more).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// Field types to use instead of the ones read from the data, e.g.
    /// `{"CloseDate": "date"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub schema: IndexMap<String, FieldType>,
    /// The CSV field separator.
    #[serde(default = "file::comma", skip_serializing_if = "file::is_comma")]
    #[schemars(extend("default" = ","))]
    pub delimiter: char,
    /// Stop the run at the first malformed record instead of setting it aside.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_first_error: bool,
    /// What happens to a JSON record holding a field the fields learned from the first
    /// object lack.
    #[serde(default, skip_serializing_if = "file::NewFields::is_default")]
    pub new_fields: file::NewFields,
    /// The bucket's region, over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An S3-compatible store's address (MinIO, Ceph, R2…), over the connection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

impl NodeKind for S3Source {
    const TYPE: &'static str = "source.s3";
    const TITLE: &'static str = "Amazon S3";
    const ICON: &'static str = "☁";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some(super::CONNECTOR);
    const DESCRIPTION: &'static str =
        "Read CSV, JSON lines, JSON or Parquet objects from an S3 bucket or an S3-compatible store";
}

/// Bytes of a text object read to work out its fields: plenty for 1,000 records.
const SAMPLE_BYTES: u64 = 4 << 20;

/// The format and fields learnt of a prefix's objects.
type Learnt = Result<(FileFormat, Schema), String>;

impl S3Source {
    fn access(&self, dirs: &Dirs) -> Result<Access, NodeError> {
        Access::resolve(
            dirs,
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

    /// Which objects this run reads: those after `modified_after`, and with `incremental`
    /// those of the pull `watermark` describes.
    fn window(
        &self,
        watermark: Option<Watermark<DateTime<Utc>>>,
        part: Option<Partition>,
    ) -> Result<Window, NodeError> {
        Ok(Window {
            after: self
                .modified_after()
                .map_err(|p| NodeError::msg(p.message))?,
            watermark: watermark.filter(|_| self.incremental),
            part,
        })
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

    fn plan(&self, cx: &PlanContext) -> Result<(FileFormat, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        if let Err(p) = check_bucket(&self.bucket) {
            problems.push(p);
        }
        if let Err(p) = self.modified_after() {
            problems.push(p);
        }
        problems.extend(self.new_fields.problem_unless_once());
        if !problems.is_empty() {
            return Err(problems);
        }
        let access = self
            .access(&cx.dirs)
            .map_err(|e| vec![ConfigProblem::new("/connection", e.to_string())])?;
        let inputs = (
            &self.connection,
            &self.region,
            &self.endpoint_url,
            &self.bucket,
            &self.prefix,
            self.format,
            self.delimiter,
        );
        let (format, inferred) = cx
            .discovery
            .learn(&inputs, || block_on(self.learn(&access)))
            .map_err(|m| vec![ConfigProblem::service("/bucket", m)])?;
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

/// Which objects a run reads: modified after `modified_after` (not at it), and with
/// `incremental`, new to the pull. S3 keeps times to the second, so objects written in the
/// same second as the last one read are read next time, except those the mark names.
#[derive(Debug)]
struct Window {
    after: Option<DateTime<Utc>>,
    watermark: Option<Watermark<DateTime<Utc>>>,
    /// In a partitioned run, only the objects whose keys hash to this part.
    part: Option<Partition>,
}

impl Window {
    fn includes(&self, key: &str, modified: Option<DateTime<Utc>>) -> bool {
        if self.part.is_some_and(|p| !p.holds(key)) {
            return false;
        }
        let Some(m) = modified else { return true };
        self.after.is_none_or(|after| m > after)
            && self
                .watermark
                .as_ref()
                .is_none_or(|w| w.includes(&m, Some(key)))
    }
}

fn modified(object: &Object) -> Option<DateTime<Utc>> {
    let t = object.last_modified()?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl NodeConfig for S3Source {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(cx).map(|(_, schema)| schema)
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        super::test(self.access(&cx.dirs), &self.bucket, &self.prefix)
    }

    fn summary(&self) -> String {
        let mut s = format!("s3://{}/{}", self.bucket, normalize_prefix(&self.prefix));
        if let Some(f) = self.format {
            s += &format!(" · {}", f.extension());
        }
        s
    }

    /// A part is the objects whose keys hash to it.
    fn reads_in_partitions(&self) -> Result<(), String> {
        Ok(())
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (format, _) = self.plan(&cx.plan())?;
        // Objects written as the run began are the next run's.
        let watermark = match self.incremental {
            true => Some(Watermark::of_run(cx, |at| at, Some(cx.started))?),
            false => None,
        };
        let window = self.window(watermark, cx.partition)?;
        Ok(Runtime::Source(Box::new(S3Read {
            config: self.clone(),
            access: self.access(&cx.dirs)?,
            window,
            settings: ReadSettings {
                format,
                schema: cx.output_schema.clone(),
                delimiter: self.delimiter as u8,
                fail_on_first_error: self.fail_on_first_error,
                strict: self.new_fields.strict(),
                stop_on_new_field: self.new_fields.stops(),
            },
        })))
    }
}

struct S3Read {
    config: S3Source,
    access: Access,
    window: Window,
    settings: ReadSettings,
}

/// An object on local disk, removed when dropped.
struct Downloaded {
    file: tempfile::TempPath,
    name: String,
    key: String,
    modified: Option<DateTime<Utc>>,
}

impl Source for S3Read {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            let S3Read {
                config,
                access,
                window,
                settings,
            } = *self;
            // Moved on as objects are read, not as they are listed.
            let mut watermark = window.watermark.clone();
            // One object waits on disk while another is read.
            let (tx, mut rx) = mpsc::channel::<Downloaded>(1);
            let format = settings.format;
            let download =
                tokio::spawn(
                    async move { download_all(&config, &access, format, &window, tx).await },
                );
            let read = tokio::task::spawn_blocking(move || {
                while let Some(object) = rx.blocking_recv() {
                    let path: PathBuf = object.file.to_path_buf();
                    if read_file(&settings, &mut out, &path, &object.name)? == Demand::Enough {
                        return Ok(());
                    }
                    if let (Some(w), Some(t)) = (&mut watermark, object.modified) {
                        w.advance(&t, Some(&object.key));
                    }
                }
                if let Some(watermark) = watermark {
                    watermark.save(&out);
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
    window: &Window,
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
            let Some(key) = object.key() else { continue };
            let of_format = !key.ends_with('/') && FileFormat::from_path(key) == Some(format);
            if !of_format || !window.includes(key, modified(object)) {
                continue;
            }
            let name = format!("s3://{bucket}/{key}");
            let file = download(&client, access, bucket, key, &name).await?;
            let downloaded = Downloaded {
                file,
                name,
                key: key.to_string(),
                modified: modified(object),
            };
            if tx.send(downloaded).await.is_err() {
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
    use crate::connectors::framework::Mark;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn objects_sharing_the_watermark_second_are_neither_lost_nor_read_twice() {
        let source: S3Source = serde_json::from_value(serde_json::json!({
            "bucket": "b", "incremental": true
        }))
        .unwrap();
        let t = at("2026-11-27T10:00:00Z");
        let mark = || Mark {
            value: t,
            ids: vec!["a".into()],
        };
        let window = source
            .window(Some(Watermark::new(Some(mark()), None)), None)
            .unwrap();
        assert!(!window.includes("a", Some(t)), "read last time");
        assert!(window.includes("b", Some(t)), "same second, not read yet");
        assert!(!window.includes("old", Some(at("2026-11-27T09:59:59Z"))));
        assert!(window.includes("new", Some(at("2026-11-27T10:00:01Z"))));

        // Without `incremental`, or with a later `modified_after`, the watermark is ignored;
        // `modified_after` leaves out its own instant.
        let plain: S3Source = serde_json::from_value(serde_json::json!({
            "bucket": "b", "modified_after": "2026-11-27T11:00:00Z", "incremental": true
        }))
        .unwrap();
        let window = plain
            .window(Some(Watermark::new(Some(mark()), None)), None)
            .unwrap();
        assert!(!window.includes("b", Some(at("2026-11-27T11:00:00Z"))));
        assert!(window.includes("b", Some(at("2026-11-27T11:00:01Z"))));
        let off: S3Source = serde_json::from_value(serde_json::json!({"bucket": "b"})).unwrap();
        let window = off
            .window(Some(Watermark::new(Some(mark()), None)), None)
            .unwrap();
        assert!(window.includes("a", Some(t)));
    }

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
