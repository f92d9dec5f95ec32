//! `destination.salesforce`: inserts, updates, upserts (by an external id field) or
//! deletes records with sObject Collections, 200 records a request, `allOrNone` off so
//! that one refused record does not refuse the other 199. Each refused record goes to the
//! run's error output with Salesforce's status codes and messages; the run record counts
//! them.
//!
//! Records are staged on disk while the run goes and sent when it commits, so a run that
//! fails anywhere sends nothing. From `bulk_from` records on (2,000, Salesforce's advice)
//! they go as Bulk API 2.0 ingest jobs instead, whose failed records come back with their
//! reasons the same way. Sending is not a transaction: if Salesforce stops answering
//! halfway, what was sent stays written; upserts make a run safe to repeat.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use std::io::Write as _;

use super::source::DataTransferApi;
use super::{API_VERSION, Describe, Org, salesforce_words};
use crate::node::ErrorSink;
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, Destination, ErrorRecord, NodeConfig, NodeError,
    NodeKind, OutputLocation, PlanContext, Runtime,
};
use crate::paths::Dirs;

/// Records a sObject Collections request takes at most.
const PER_REQUEST: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceDestination {
    /// A Salesforce connection that has logged in.
    #[schemars(extend("x-connection" = super::CONNECTOR))]
    pub connection: String,
    /// The object to write, e.g. `Contact`.
    pub object: String,
    #[serde(default)]
    pub operation: WriteOperation,
    /// For `upsert`: the external id field that matches records, e.g. `External_Id__c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id_field: Option<String>,
    /// Which Salesforce API writes the records.
    #[serde(default, skip_serializing_if = "is_automatic")]
    pub api: DataTransferApi,
    /// With `automatic`, Bulk API 2.0 writes runs of at least this many records
    /// (Salesforce's advice: Bulk from 2,000 on).
    #[serde(default = "bulk_from", skip_serializing_if = "is_bulk_from")]
    #[schemars(extend("default" = 2000))]
    pub bulk_from: u64,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "api_version", skip_serializing_if = "is_api_version")]
    #[schemars(extend("default" = "62.0"))]
    pub api_version: String,
}

fn bulk_from() -> u64 {
    2_000
}
fn is_bulk_from(n: &u64) -> bool {
    *n == bulk_from()
}
fn is_automatic(api: &DataTransferApi) -> bool {
    *api == DataTransferApi::Automatic
}

fn api_version() -> String {
    API_VERSION.into()
}
fn is_api_version(v: &String) -> bool {
    v == API_VERSION
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteOperation {
    /// New records.
    #[default]
    Insert,
    /// Existing records, found by their `Id` field.
    Update,
    /// Records matched by the external id field: updated when found, inserted when not.
    Upsert,
    /// Records found by their `Id` field are deleted (to the recycle bin).
    Delete,
}

impl WriteOperation {
    fn verb(self) -> &'static str {
        match self {
            WriteOperation::Insert => "insert",
            WriteOperation::Update => "update",
            WriteOperation::Upsert => "upsert",
            WriteOperation::Delete => "delete",
        }
    }
}

impl NodeKind for SalesforceDestination {
    const TYPE: &'static str = "destination.salesforce";
    const TITLE: &'static str = "Salesforce";
    const ICON: &'static str = "☁";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some(super::CONNECTOR);
    const DESCRIPTION: &'static str =
        "Insert, update, upsert or delete Salesforce records; refused ones go to the error output";
}

impl SalesforceDestination {
    fn org(&self, dirs: &Dirs) -> Result<Org, NodeError> {
        Org::open(dirs, &self.connection, &self.api_version)
    }

    /// Checks the input's fields against the object.
    fn check(&self, input: &SchemaRef, cx: &PlanContext) -> Result<Describe, Vec<ConfigProblem>> {
        let problem = |path: &str, m: String| vec![ConfigProblem::new(path, m)];
        if self.connection.trim().is_empty() {
            return Err(problem(
                "/connection",
                "choose a Salesforce connection".into(),
            ));
        }
        if self.object.trim().is_empty() {
            return Err(problem("/object", "name the object to write".into()));
        }
        let describe =
            super::described(cx, &self.connection, self.object.trim(), &self.api_version).map_err(
                |m| match m.starts_with(super::NO_OBJECT) {
                    true => problem("/object", m),
                    false => vec![ConfigProblem::service("/object", m)],
                },
            )?;
        let has = |name: &str| input.fields().iter().any(|f| f.name() == name);
        match self.operation {
            WriteOperation::Update | WriteOperation::Delete if !has("Id") => {
                return Err(problem(
                    "/operation",
                    format!(
                        "{} needs the records' `Id` field in the input",
                        self.operation.verb()
                    ),
                ));
            }
            WriteOperation::Upsert => match &self.external_id_field {
                None => {
                    return Err(problem(
                        "/external_id_field",
                        "an upsert needs the external id field that matches records".into(),
                    ));
                }
                Some(f) if !has(f) => {
                    return Err(problem(
                        "/external_id_field",
                        format!("the input has no field `{f}` to match records by"),
                    ));
                }
                Some(_) => {}
            },
            _ => {}
        }
        if self.operation != WriteOperation::Delete {
            let unknown: Vec<&str> = input
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| describe.field(n).is_none())
                .collect();
            if !unknown.is_empty() {
                return Err(problem(
                    "/object",
                    format!(
                        "{} has no field{} {}: map the input's fields to the object's first",
                        describe.name,
                        if unknown.len() == 1 { "" } else { "s" },
                        unknown
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(describe)
    }
}

impl NodeConfig for SalesforceDestination {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        self.check(input, cx)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        match (&self.operation, &self.external_id_field) {
            (WriteOperation::Upsert, Some(f)) => format!("{} · upsert by {f}", self.object),
            (op, _) => format!("{} · {}", self.object, op.verb()),
        }
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        let config = self.clone();
        let org = self.org(&cx.dirs);
        Box::pin(async move {
            let describe = org?.describe(config.object.trim()).await?;
            Ok(format!(
                "connected: {} has {} fields",
                describe.name,
                describe.fields.len()
            ))
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx
            .input_schema
            .as_ref()
            .expect("a destination has an input");
        let describe = self
            .check(input, &cx.plan())
            .map_err(|p| NodeError::msg(p[0].message.clone()))?;
        let columns = match self.operation {
            WriteOperation::Delete => vec!["Id".to_string()],
            _ => input.fields().iter().map(|f| f.name().clone()).collect(),
        };
        let staged = tempfile::tempfile()
            .map_err(|e| NodeError::io("cannot stage the records for Salesforce", e))?;
        Ok(Runtime::Destination(Box::new(SalesforceWrite {
            config: self.clone(),
            object: describe.name,
            org: self.org(&cx.dirs)?,
            // Commits run on a blocking thread and wait there for the run's own runtime.
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| NodeError::msg("writing to Salesforce needs the async runtime"))?,
            node: cx.node_id.clone(),
            errors: cx.errors.clone(),
            input: input.clone(),
            columns,
            staged: std::io::BufWriter::new(staged),
            count: 0,
            staged_bytes: 0,
            written: 0,
            bytes: 0,
        })))
    }
}

/// Records are staged on disk as JSON lines while the run goes, and sent to Salesforce
/// only when the run commits: a run that fails anywhere sends nothing.
struct SalesforceWrite {
    config: SalesforceDestination,
    object: String,
    org: Org,
    runtime: tokio::runtime::Handle,
    node: String,
    errors: ErrorSink,
    /// The fields sent: the input's, or only `Id` to delete.
    columns: Vec<String>,
    /// The records' fields, to read refused records back typed from Bulk's CSV.
    input: SchemaRef,
    staged: std::io::BufWriter<std::fs::File>,
    count: u64,
    staged_bytes: u64,
    written: u64,
    bytes: u64,
}

impl SalesforceWrite {
    fn refuse(&self, reason: String, record: String) -> Result<(), NodeError> {
        self.errors.write(ErrorRecord {
            node: self.node.clone(),
            file: Some(format!(
                "salesforce {} {}",
                self.object,
                self.config.operation.verb()
            )),
            line: None,
            reason,
            record,
        })
    }

    /// Sends one sObject Collections request of at most 200 records and sets the refused
    /// ones aside.
    fn send(&mut self, records: Vec<Map<String, Value>>) -> Result<(), NodeError> {
        let op = self.config.operation;
        let object = self.object.clone();
        let body = match op {
            WriteOperation::Delete => Value::Null,
            _ => {
                let records: Vec<Value> = records
                    .iter()
                    .map(|r| {
                        let mut with_type = Map::with_capacity(r.len() + 1);
                        with_type.insert("attributes".into(), serde_json::json!({"type": object}));
                        with_type.extend(r.clone());
                        Value::Object(with_type)
                    })
                    .collect();
                serde_json::json!({"allOrNone": false, "records": records})
            }
        };
        let bytes = body.to_string().len() as u64;
        let url = match (op, &self.config.external_id_field) {
            (WriteOperation::Upsert, Some(field)) => self
                .org
                .url(&format!("/composite/sobjects/{object}/{field}")),
            _ => self.org.url("/composite/sobjects"),
        };
        let ids: Vec<String> = records
            .iter()
            .map(|r| {
                r.get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let what = format!("{} of {} {object} records", op.verb(), records.len());
        let api = self.org.api.clone();
        let answer = self.runtime.block_on(async {
            let response = api
                .send(&what, |c| match op {
                    WriteOperation::Insert => c.post(&url).json(&body),
                    WriteOperation::Update | WriteOperation::Upsert => c.patch(&url).json(&body),
                    WriteOperation::Delete => c
                        .delete(&url)
                        .query(&[("ids", ids.join(",")), ("allOrNone", "false".into())]),
                })
                .await
                .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
            response.json::<Vec<Value>>().await.map_err(|e| {
                NodeError::msg(format!(
                    "{what}: Salesforce's answer is not a list of results: {e}"
                ))
            })
        })?;
        if answer.len() != records.len() {
            return Err(NodeError::msg(format!(
                "{what}: Salesforce answered {} results for {} records",
                answer.len(),
                records.len()
            )));
        }
        self.bytes += bytes;
        for (record, result) in records.into_iter().zip(answer) {
            if result["success"] == Value::Bool(true) {
                self.written += 1;
                continue;
            }
            let reasons: Vec<String> = result["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let fields = e["fields"]
                        .as_array()
                        .filter(|f| !f.is_empty())
                        .map(|f| {
                            format!(
                                " ({})",
                                f.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "{}: {}{fields}",
                        e["statusCode"].as_str().unwrap_or("ERROR"),
                        e["message"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let reason = if reasons.is_empty() {
                "Salesforce refused the record without saying why".into()
            } else {
                reasons.join("; ")
            };
            self.refuse(reason, Value::Object(record).to_string())?;
        }
        Ok(())
    }

    /// The staged records, read back in order.
    fn staged_records(
        &mut self,
    ) -> Result<impl Iterator<Item = Result<Map<String, Value>, NodeError>> + use<>, NodeError>
    {
        use std::io::{BufRead, Seek};
        self.staged
            .flush()
            .map_err(|e| NodeError::io("cannot stage the records for Salesforce", e))?;
        let mut file = self
            .staged
            .get_ref()
            .try_clone()
            .map_err(|e| NodeError::io("cannot read the staged records", e))?;
        file.rewind()
            .map_err(|e| NodeError::io("cannot read the staged records", e))?;
        Ok(std::io::BufReader::new(file).lines().map(|line| {
            let line = line.map_err(|e| NodeError::io("cannot read the staged records", e))?;
            serde_json::from_str(&line)
                .map_err(|e| NodeError::msg(format!("a staged record is not JSON: {e}")))
        }))
    }

    fn send_collections(&mut self) -> Result<(), NodeError> {
        let mut chunk = Vec::with_capacity(PER_REQUEST);
        for record in self.staged_records()? {
            chunk.push(record?);
            if chunk.len() == PER_REQUEST {
                self.send(std::mem::take(&mut chunk))?;
            }
        }
        if !chunk.is_empty() {
            self.send(chunk)?;
        }
        Ok(())
    }

    /// Bulk API 2.0 ingest: the records as CSV in jobs of at most 100 MB, each uploaded,
    /// closed, waited for, and its failed records set aside with Salesforce's reasons.
    fn send_bulk(&mut self) -> Result<(), NodeError> {
        let mut csv = self.csv_writer();
        let mut rows = 0;
        let records: Vec<_> = self.staged_records()?.collect();
        for record in records {
            let record = record?;
            let cells: Vec<String> = self.columns.iter().map(|c| cell(record.get(c))).collect();
            csv.write_record(&cells)
                .map_err(|e| NodeError::msg(format!("cannot write CSV for Bulk API 2.0: {e}")))?;
            rows += 1;
            if csv.get_ref().len() >= BULK_JOB_BYTES {
                let full = std::mem::replace(&mut csv, self.csv_writer());
                self.bulk_job(full, rows)?;
                rows = 0;
            }
        }
        if rows > 0 {
            self.bulk_job(csv, rows)?;
        }
        Ok(())
    }

    fn csv_writer(&self) -> csv::Writer<Vec<u8>> {
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        csv.write_record(&self.columns).expect("writing to memory");
        csv
    }

    fn bulk_job(&mut self, csv: csv::Writer<Vec<u8>>, rows: u64) -> Result<(), NodeError> {
        let body = csv
            .into_inner()
            .map_err(|e| NodeError::msg(format!("cannot write CSV for Bulk API 2.0: {e}")))?;
        self.bytes += body.len() as u64;
        let op = self.config.operation;
        let mut spec = serde_json::json!({
            "object": self.object,
            "operation": op.verb(),
            "contentType": "CSV",
            "lineEnding": "LF",
        });
        if let (WriteOperation::Upsert, Some(field)) = (op, &self.config.external_id_field) {
            spec["externalIdFieldName"] = Value::from(field.clone());
        }
        let jobs = self.org.url("/jobs/ingest");
        let api = self.org.api.clone();
        let what = format!(
            "a Bulk API 2.0 {} of {rows} {} records",
            op.verb(),
            self.object
        );
        let words = |e: crate::connectors::framework::ConnectorError| {
            NodeError::msg(salesforce_words(&e.message))
        };
        let (job, failed_csv) = self.runtime.block_on(async {
            let created = api
                .send(&what, |c| c.post(&jobs).json(&spec))
                .await
                .map_err(words)?;
            let job: Value = created.json().await.map_err(|e| {
                NodeError::msg(format!("{what}: the job's answer is not JSON: {e}"))
            })?;
            let id = job["id"]
                .as_str()
                .ok_or_else(|| {
                    NodeError::msg(format!("{what}: Salesforce made a job without an id"))
                })?
                .to_string();
            let job_url = format!("{jobs}/{id}");
            let batches = format!("{job_url}/batches");
            api.send(&what, |c| {
                c.put(&batches)
                    .header("Content-Type", "text/csv")
                    .body(body.clone())
            })
            .await
            .map_err(words)?;
            let close = serde_json::json!({"state": "UploadComplete"});
            api.send(&what, |c| c.patch(&job_url).json(&close))
                .await
                .map_err(words)?;
            let mut wait = std::time::Duration::from_millis(250);
            let status = loop {
                let (status, _) = api
                    .get_json(&what, |c| c.get(&job_url))
                    .await
                    .map_err(words)?;
                match status["state"].as_str().unwrap_or_default() {
                    "JobComplete" => break status,
                    "Failed" | "Aborted" => {
                        return Err(NodeError::msg(format!(
                            "{what}: the job {id} {}: {}",
                            status["state"].as_str().unwrap_or_default().to_lowercase(),
                            status["errorMessage"].as_str().unwrap_or("no reason given")
                        )));
                    }
                    _ => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(10));
                    }
                }
            };
            let failed = if status["numberRecordsFailed"].as_u64().unwrap_or(0) > 0 {
                let url = format!("{job_url}/failedResults");
                api.send(&what, |c| c.get(&url).header("Accept", "text/csv"))
                    .await
                    .map_err(words)?
                    .bytes()
                    .await
                    .map_err(|e| {
                        NodeError::msg(format!("{what}: the failed results broke off: {e}"))
                    })?
                    .to_vec()
            } else {
                Vec::new()
            };
            Ok::<_, NodeError>((status, failed))
        })?;
        let processed = job["numberRecordsProcessed"].as_u64().unwrap_or(rows);
        let failed = job["numberRecordsFailed"].as_u64().unwrap_or(0);
        self.written += processed.saturating_sub(failed);
        if !failed_csv.is_empty() {
            let mut reader = csv::Reader::from_reader(failed_csv.as_slice());
            let headers = reader
                .headers()
                .map_err(|e| {
                    NodeError::msg(format!("{what}: the failed results are not CSV: {e}"))
                })?
                .clone();
            for row in reader.records() {
                let row = row.map_err(|e| {
                    NodeError::msg(format!("{what}: the failed results are not CSV: {e}"))
                })?;
                let mut reason = String::new();
                let mut record = Map::new();
                for (k, v) in headers.iter().zip(row.iter()) {
                    match k {
                        "sf__Error" => reason = v.trim_end_matches(" --").to_string(),
                        "sf__Id" => {}
                        // Empty is null, left out as sObject Collections' records leave it.
                        _ if v.is_empty() => {}
                        _ => {
                            record.insert(k.to_string(), typed_cell(&self.input, k, v));
                        }
                    }
                }
                self.refuse(reason, Value::Object(record).to_string())?;
            }
        }
        Ok(())
    }

    fn bulk(&self) -> bool {
        match self.config.api {
            DataTransferApi::Rest => false,
            DataTransferApi::Bulk => true,
            DataTransferApi::Automatic => self.count >= self.config.bulk_from,
        }
    }
}

/// Bulk API 2.0 takes uploads of up to 150 MB; jobs stay well below.
const BULK_JOB_BYTES: usize = 100 << 20;

/// A cell of Bulk's failed-results CSV as the value it was sent as, by its field's type in
/// the input: a refused record reaches the error output as the typed record it was,
/// whichever API sent it.
fn typed_cell(input: &SchemaRef, field: &str, text: &str) -> Value {
    let kind = input.field_with_name(field).map(|f| f.data_type().clone());
    let number = || {
        text.parse::<i64>().map(Value::from).ok().or_else(|| {
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        })
    };
    match kind {
        Ok(t) if t.is_numeric() => number().unwrap_or_else(|| Value::from(text)),
        Ok(DataType::Boolean) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(text),
        },
        _ => Value::from(text),
    }
}

/// A CSV cell as Bulk API 2.0 reads it: empty for a missing value.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl Destination for SalesforceWrite {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        let stage = |e| NodeError::io("cannot stage the records for Salesforce", e);
        for mut record in crate::records::rows_json(batch)? {
            if self.config.operation == WriteOperation::Delete {
                record.retain(|k, _| k == "Id");
            }
            let line = serde_json::to_string(&record).expect("JSON values serialize");
            self.staged.write_all(line.as_bytes()).map_err(stage)?;
            self.staged.write_all(b"\n").map_err(stage)?;
            self.staged_bytes += line.len() as u64 + 1;
            self.count += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.staged
            .flush()
            .map_err(|e| NodeError::io("cannot stage the records for Salesforce", e))
    }

    fn commit(mut self: Box<Self>) -> Result<Vec<OutputLocation>, NodeError> {
        if self.count > 0 {
            if self.bulk() {
                self.send_bulk()?;
            } else {
                self.send_collections()?;
            }
        }
        let how = match (&self.config.operation, &self.config.external_id_field) {
            (WriteOperation::Upsert, Some(f)) => format!("upsert by {f}"),
            (op, _) => op.verb().to_string(),
        };
        Ok(vec![OutputLocation {
            location: format!("salesforce:{} ({how})", self.object),
            records: self.written,
            bytes: self.bytes,
        }])
    }

    fn abort(self: Box<Self>) {
        // Nothing was sent: records go out only when the run commits.
    }

    fn bytes_written(&self) -> u64 {
        self.staged_bytes
    }
}
