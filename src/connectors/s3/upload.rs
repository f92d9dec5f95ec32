//! Objects written as multipart uploads, streamed: a part goes out as soon as it is full,
//! with a bounded number of parts in flight, so memory stays flat whatever the object's
//! size. An upload is completed only when the run commits; until then no object exists
//! under its key, and aborting the run aborts every upload so no parts are left behind.
//!
//! The uploads to complete (ids and parts) are the destination's commit plan: a run killed
//! while it completed them is finished by the next run of the flow ([`finish`]), or, when
//! that cannot be done, rolled back, so the bucket never keeps part of a run.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{Access, explain};
use crate::codecs::FileFormat;
use crate::connectors::output::Store;
use crate::node::NodeError;

/// The first parts' size. S3 wants at least 5 MiB for every part but the last, and allows
/// 10,000 parts: sizes double every 1,000 parts so an object can grow to terabytes.
const FIRST_PART_BYTES: usize = 8 << 20;
/// Parts uploading at once, for the whole destination.
const PARTS_IN_FLIGHT: usize = 4;

fn part_bytes(part_number: i32) -> usize {
    FIRST_PART_BYTES << ((part_number.max(1) - 1) / 1000).min(9)
}

/// What every object of one destination run is written with.
pub struct ObjectSettings {
    pub encryption: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    /// User metadata: the execution id and the flow.
    pub metadata: HashMap<String, String>,
}

struct Shared {
    client: Client,
    runtime: Handle,
    access: Access,
    bucket: String,
    /// Permits for parts in flight; all of them free means nothing is uploading.
    in_flight: Arc<Semaphore>,
}

/// Where a destination's objects go: a bucket and a key prefix.
pub struct Uploads {
    access: Access,
    bucket: String,
    key_prefix: String,
    settings: ObjectSettings,
    runtime: Handle,
    /// Made on the first object, on the writer's thread, so building the node stays quick.
    shared: Option<Arc<Shared>>,
    /// Why the client could not be made: said again rather than tried again (which would
    /// wait on the same unanswering addresses).
    unreachable: Option<String>,
    /// Every upload started (key, upload id), so that abort can remove them all.
    started: Vec<(String, String)>,
    /// Told of every upload as it starts (all of them so far), to record them where the
    /// next run finds them if this process dies before it can abort them.
    journal: Option<Box<StartedFn>>,
}

type StartedFn = dyn Fn(&[(String, String)]) -> Result<(), String> + Send;

impl Uploads {
    pub fn new(
        access: Access,
        bucket: String,
        key_prefix: String,
        settings: ObjectSettings,
        runtime: Handle,
    ) -> Self {
        Self {
            access,
            bucket,
            key_prefix,
            settings,
            runtime,
            shared: None,
            unreachable: None,
            started: Vec::new(),
            journal: None,
        }
    }

    /// Has `record` told of the uploads started so far each time one starts.
    pub fn journal(
        mut self,
        record: impl Fn(&[(String, String)]) -> Result<(), String> + Send + 'static,
    ) -> Self {
        self.journal = Some(Box::new(record));
        self
    }

    pub fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.key_prefix)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn shared(&mut self) -> Result<Arc<Shared>, NodeError> {
        if let Some(shared) = &self.shared {
            return Ok(shared.clone());
        }
        if let Some(why) = &self.unreachable {
            return Err(NodeError::msg(why.clone()));
        }
        let client = self
            .runtime
            .block_on(self.access.client())
            .inspect_err(|e| self.unreachable = Some(e.to_string()))?;
        let shared = Arc::new(Shared {
            client,
            runtime: self.runtime.clone(),
            access: self.access.clone(),
            bucket: self.bucket.clone(),
            in_flight: Arc::new(Semaphore::new(PARTS_IN_FLIGHT)),
        });
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    /// Completes every staged upload: the objects appear. A failure stops here and leaves
    /// the rest pending: the run's commit record holds them, and the next run of the flow
    /// completes them ([`finish`]) or, if it cannot, removes them all.
    pub fn publish(&mut self, objects: &[StagedObject]) -> Result<(), NodeError> {
        let Some(shared) = self.shared.clone() else {
            return Ok(());
        };
        for object in objects {
            shared
                .runtime
                .block_on(complete(&shared.client, &shared.bucket, object))
                .map_err(|e| explain(e, &shared.access, &shared.bucket))?;
        }
        self.started.clear();
        Ok(())
    }

    /// The objects earlier runs wrote in the folders of `keys`: `part-…` objects with this
    /// extension directly in each folder, not among `keys`.
    pub fn earlier_parts(
        &self,
        keys: &[String],
        extension: &str,
    ) -> Result<Vec<String>, NodeError> {
        let Some(shared) = self.shared.clone() else {
            return Ok(Vec::new());
        };
        let folders: std::collections::BTreeSet<&str> = (keys.iter())
            .map(|k| k.rfind('/').map_or("", |i| &k[..=i]))
            .collect();
        let suffix = format!(".{extension}");
        let mut earlier = Vec::new();
        for folder in folders {
            let mut token: Option<String> = None;
            loop {
                let page = shared
                    .runtime
                    .block_on(
                        shared
                            .client
                            .list_objects_v2()
                            .bucket(&shared.bucket)
                            .prefix(folder)
                            .delimiter("/")
                            .set_continuation_token(token.take())
                            .send(),
                    )
                    .map_err(|e| explain(e, &shared.access, &shared.bucket))?;
                for object in page.contents() {
                    let Some(key) = object.key() else { continue };
                    let name = &key[folder.len()..];
                    if name.starts_with("part-")
                        && name.ends_with(&suffix)
                        && !keys.iter().any(|k| k == key)
                    {
                        earlier.push(key.to_string());
                    }
                }
                match page.next_continuation_token() {
                    Some(next) if page.is_truncated() == Some(true) => {
                        token = Some(next.to_string())
                    }
                    _ => break,
                }
            }
        }
        Ok(earlier)
    }

    /// Removes objects (those this run's replace): removing one already gone is no error.
    pub fn remove(&self, keys: &[String]) -> Result<(), NodeError> {
        let Some(shared) = self.shared.clone() else {
            return Ok(());
        };
        shared
            .runtime
            .block_on(remove(&shared.client, &shared.access, &shared.bucket, keys))
    }

    /// Aborts every upload this run started. Parts still uploading are waited for first: an
    /// abort that races a part upload can leave that part behind.
    pub fn abort(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let runtime = shared.runtime.clone();
        let all = PARTS_IN_FLIGHT as u32;
        let _quiet = runtime.block_on(shared.in_flight.acquire_many(all));
        for (key, upload_id) in std::mem::take(&mut self.started) {
            let aborted = runtime.block_on(
                shared
                    .client
                    .abort_multipart_upload()
                    .bucket(&shared.bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send(),
            );
            if let Err(e) = aborted {
                tracing::warn!(
                    "could not abort the upload of s3://{}/{key}: {}",
                    shared.bucket,
                    explain(e, &shared.access, &shared.bucket)
                );
            }
        }
    }
}

impl Store for Uploads {
    type Sink = ObjectSink;
    type Staged = StagedObject;

    fn create(&mut self, relative: &str, format: FileFormat) -> Result<ObjectSink, NodeError> {
        let shared = self.shared()?;
        let key = self.key(relative);
        let created = shared.runtime.block_on(
            shared
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .content_type(format.content_type())
                .set_server_side_encryption(self.settings.encryption.clone())
                .set_ssekms_key_id(self.settings.kms_key_id.clone())
                .set_metadata(Some(self.settings.metadata.clone()))
                .send(),
        );
        let created = created.map_err(|e| explain(e, &self.access, &self.bucket))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| NodeError::msg(format!("S3 started no upload for {key}")))?
            .to_string();
        self.started.push((key.clone(), upload_id.clone()));
        if let Some(record) = &self.journal {
            record(&self.started).map_err(|e| {
                NodeError::msg(format!(
                    "cannot record the upload of s3://{}/{key} in the run state: {e}",
                    self.bucket
                ))
            })?;
        }
        Ok(ObjectSink {
            shared,
            key,
            upload_id,
            buffer: Vec::with_capacity(part_bytes(1)),
            next_part: 1,
            uploading: VecDeque::new(),
            done: Vec::new(),
        })
    }

    fn stage(&mut self, _: &str, mut sink: ObjectSink) -> Result<StagedObject, NodeError> {
        if !sink.buffer.is_empty() || sink.next_part == 1 {
            sink.send_part()
                .map_err(|e| NodeError::io(sink.describe(), e))?;
        }
        sink.wait_all()?;
        sink.done.sort_by_key(|p| p.number);
        Ok(StagedObject {
            key: sink.key,
            upload_id: sink.upload_id,
            parts: sink.done,
        })
    }
}

/// Completes one object's upload.
async fn complete(
    client: &Client,
    bucket: &str,
    object: &StagedObject,
) -> Result<
    (),
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
> {
    let parts = object.parts.iter().map(Part::completed).collect();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(&object.key)
        .upload_id(&object.upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
}

/// Removes objects, one request each; S3 answers a removal of a missing key as done.
pub async fn remove(
    client: &Client,
    access: &Access,
    bucket: &str,
    keys: &[String],
) -> Result<(), NodeError> {
    for key in keys {
        client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                NodeError::msg(format!(
                    "cannot remove s3://{bucket}/{key}, which this run's objects replace: {}",
                    explain(e, access, bucket)
                ))
            })?;
    }
    Ok(())
}

/// Aborts uploads a run kept open for a later commit (a part of a partitioned run that is
/// aborted or staged again); an upload already gone counts as aborted. Safe to run again.
pub async fn abandon(
    client: &Client,
    access: &Access,
    bucket: &str,
    objects: &[StagedObject],
) -> Result<(), NodeError> {
    for object in objects {
        let aborted = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(&object.key)
            .upload_id(&object.upload_id)
            .send()
            .await;
        if let Err(e) = aborted
            && e.code() != Some("NoSuchUpload")
        {
            return Err(NodeError::msg(format!(
                "cannot abort the upload of s3://{bucket}/{}: {}",
                object.key,
                explain(e, access, bucket)
            )));
        }
    }
    Ok(())
}

/// Finishes a commit that a killed run left: completes each upload not completed yet (S3
/// answers `NoSuchUpload` for one that was; its object is then there). Safe to run again.
/// When an upload cannot be completed, every object of the commit is removed and every
/// upload aborted: the run's output is absent, and its records are read again.
pub async fn finish(
    client: &Client,
    access: &Access,
    bucket: &str,
    objects: &[StagedObject],
) -> Result<(), NodeError> {
    let mut failure = None;
    for object in objects {
        let error = match complete(client, bucket, object).await {
            Ok(()) => continue,
            Err(e) => e,
        };
        if error.code() == Some("NoSuchUpload") {
            let there = client
                .head_object()
                .bucket(bucket)
                .key(&object.key)
                .send()
                .await
                .is_ok();
            if there {
                continue;
            }
            failure = Some(NodeError::msg(format!(
                "the upload of s3://{bucket}/{} is gone (aborted, or removed by a lifecycle rule)",
                object.key
            )));
        } else {
            failure = Some(explain(error, access, bucket));
        }
        break;
    }
    let Some(failure) = failure else {
        return Ok(());
    };
    for object in objects {
        let _ = abandon(client, access, bucket, std::slice::from_ref(object)).await;
        if let Err(e) = client
            .delete_object()
            .bucket(bucket)
            .key(&object.key)
            .send()
            .await
        {
            tracing::warn!(
                "could not remove s3://{bucket}/{}: {}",
                object.key,
                explain(e, access, bucket)
            );
        }
    }
    Err(failure)
}

/// An object's bytes on their way up, a part at a time.
pub struct ObjectSink {
    shared: Arc<Shared>,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    next_part: i32,
    uploading: VecDeque<JoinHandle<Result<Part, NodeError>>>,
    done: Vec<Part>,
}

/// A complete multipart upload, waiting for the run to commit; kept in the run's commit
/// record until it is completed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedObject {
    pub key: String,
    upload_id: String,
    parts: Vec<Part>,
}

impl StagedObject {
    /// An upload just begun, no part of it sent: enough to abort it.
    pub fn begun(key: &str, upload_id: &str) -> Self {
        Self {
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            parts: Vec::new(),
        }
    }
}

/// An uploaded part as completing the upload names it: its number, ETag and the checksum
/// S3 computed, if any.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    number: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    /// (algorithm, value): `crc32`, `crc32c`, `crc64nvme`, `sha1` or `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<(String, String)>,
}

impl Part {
    fn of(part: &aws_sdk_s3::operation::upload_part::UploadPartOutput, number: i32) -> Part {
        let checksum = [
            ("crc32", part.checksum_crc32()),
            ("crc32c", part.checksum_crc32_c()),
            ("crc64nvme", part.checksum_crc64_nvme()),
            ("sha1", part.checksum_sha1()),
            ("sha256", part.checksum_sha256()),
        ]
        .into_iter()
        .find_map(|(algorithm, value)| Some((algorithm.to_string(), value?.to_string())));
        Part {
            number,
            etag: part.e_tag().map(String::from),
            checksum,
        }
    }

    fn completed(&self) -> CompletedPart {
        let builder = CompletedPart::builder()
            .part_number(self.number)
            .set_e_tag(self.etag.clone());
        match &self.checksum {
            Some((algorithm, value)) => match algorithm.as_str() {
                "crc32" => builder.checksum_crc32(value),
                "crc32c" => builder.checksum_crc32_c(value),
                "crc64nvme" => builder.checksum_crc64_nvme(value),
                "sha1" => builder.checksum_sha1(value),
                "sha256" => builder.checksum_sha256(value),
                _ => builder,
            },
            None => builder,
        }
        .build()
    }
}

impl ObjectSink {
    fn describe(&self) -> String {
        format!("uploading s3://{}/{}", self.shared.bucket, self.key)
    }

    /// Sends the buffer as the next part; waits while the destination has as many parts in
    /// flight as it allows.
    fn send_part(&mut self) -> io::Result<()> {
        self.collect_finished()?;
        let shared = self.shared.clone();
        let permit = shared
            .runtime
            .block_on(shared.in_flight.clone().acquire_owned())
            .map_err(io::Error::other)?;
        let part_number = self.next_part;
        self.next_part += 1;
        let body = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(part_bytes(self.next_part)),
        );
        let key = self.key.clone();
        let upload_id = self.upload_id.clone();
        let task = shared.runtime.spawn({
            let shared = shared.clone();
            async move {
                let _permit = permit;
                let uploaded = shared
                    .client
                    .upload_part()
                    .bucket(&shared.bucket)
                    .key(&key)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| explain(e, &shared.access, &shared.bucket))?;
                Ok(Part::of(&uploaded, part_number))
            }
        });
        self.uploading.push_back(task);
        Ok(())
    }

    /// Takes in the parts that have finished uploading, so a failed one stops the run at
    /// the next write instead of at the end.
    fn collect_finished(&mut self) -> io::Result<()> {
        while self.uploading.front().is_some_and(JoinHandle::is_finished) {
            let task = self.uploading.pop_front().expect("checked");
            let part = self
                .join(task)
                .map_err(|e| io::Error::other(e.to_string()))?;
            self.done.push(part);
        }
        Ok(())
    }

    fn join(&self, task: JoinHandle<Result<Part, NodeError>>) -> Result<Part, NodeError> {
        self.shared
            .runtime
            .block_on(task)
            .map_err(|e| NodeError::msg(format!("{} stopped unexpectedly: {e}", self.describe())))?
    }

    fn wait_all(&mut self) -> Result<(), NodeError> {
        while let Some(task) = self.uploading.pop_front() {
            let part = self.join(task)?;
            self.done.push(part);
        }
        Ok(())
    }
}

impl Write for ObjectSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= part_bytes(self.next_part) {
            self.send_part()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_ten_thousand_hold_terabytes() {
        assert_eq!(part_bytes(1), 8 << 20);
        assert_eq!(part_bytes(1000), 8 << 20);
        assert_eq!(part_bytes(1001), 16 << 20);
        let total: u64 = (1..=10_000).map(|n| part_bytes(n) as u64).sum();
        assert!(total > 5 << 40, "{total}");
        assert!(part_bytes(10_000) <= 5 << 30);
    }
}
