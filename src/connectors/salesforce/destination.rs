//! `destination.salesforce`: inserts, updates, upserts (by an external id field) or
//! deletes records with sObject Collections, 200 records a request, `allOrNone` off so
//! that one refused record does not refuse the other 199. Each refused record goes to the
//! run's error output with Salesforce's status codes and messages; the run record counts
//! them.
//!
//! Unlike files, a write to Salesforce takes effect as it is sent: a run that fails
//! halfway leaves the records sent so far written (as AppFlow's do). Upserts make a run
//! safe to repeat.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{API_VERSION, Describe, Org, salesforce_words};
use crate::connectors::block_on;
use crate::engine::ErrorSink;
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
    #[schemars(extend("x-connection" = "salesforce"))]
    pub connection: String,
    /// The object to write, e.g. `Contact`.
    pub object: String,
    #[serde(default)]
    pub operation: WriteOperation,
    /// For `upsert`: the external id field that matches records, e.g. `External_Id__c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id_field: Option<String>,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "api_version", skip_serializing_if = "is_api_version")]
    pub api_version: String,
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
    const DESCRIPTION: &'static str =
        "Insert, update, upsert or delete Salesforce records; refused ones go to the error output";
}

impl SalesforceDestination {
    fn org(&self) -> Result<Org, NodeError> {
        Org::open(&Dirs::from_env(), &self.connection, &self.api_version)
    }

    /// Checks the input's fields against the object.
    fn check(&self, input: &SchemaRef) -> Result<Describe, Vec<ConfigProblem>> {
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
        let describe = block_on(async { self.org()?.describe(self.object.trim()).await })
            .map_err(|e| problem("/object", e.to_string()))?;
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
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        self.check(input)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        match (&self.operation, &self.external_id_field) {
            (WriteOperation::Upsert, Some(f)) => format!("{} · upsert by {f}", self.object),
            (op, _) => format!("{} · {}", self.object, op.verb()),
        }
    }

    fn test_connection(&self) -> BoxFuture<Result<String, NodeError>> {
        let config = self.clone();
        Box::pin(async move {
            let describe = config.org()?.describe(config.object.trim()).await?;
            Ok(format!(
                "connected: {} has {} fields",
                describe.name,
                describe.fields.len()
            ))
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let describe = self
            .check(
                cx.input_schema
                    .as_ref()
                    .expect("a destination has an input"),
            )
            .map_err(|p| NodeError::msg(p[0].message.clone()))?;
        Ok(Runtime::Destination(Box::new(SalesforceWrite {
            config: self.clone(),
            object: describe.name,
            org: self.org()?,
            // Writes run on a blocking thread and wait there for the run's own runtime.
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| NodeError::msg("writing to Salesforce needs the async runtime"))?,
            node: cx.node_id.clone(),
            errors: cx.errors.clone(),
            pending: Vec::new(),
            written: 0,
            bytes: 0,
        })))
    }
}

struct SalesforceWrite {
    config: SalesforceDestination,
    object: String,
    org: Org,
    runtime: tokio::runtime::Handle,
    node: String,
    errors: ErrorSink,
    /// Records waiting for a full request.
    pending: Vec<Map<String, Value>>,
    written: u64,
    bytes: u64,
}

impl SalesforceWrite {
    /// Sends one request of at most 200 records and sets the refused ones aside.
    fn send(&mut self, records: Vec<Map<String, Value>>) -> Result<(), NodeError> {
        let op = self.config.operation;
        let object = &self.object;
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
            self.errors.write(ErrorRecord {
                node: self.node.clone(),
                file: Some(format!("salesforce {object} {}", op.verb())),
                line: None,
                reason: if reasons.is_empty() {
                    "Salesforce refused the record without saying why".into()
                } else {
                    reasons.join("; ")
                },
                record: Value::Object(record).to_string(),
            })?;
        }
        Ok(())
    }

    fn flush(&mut self, all: bool) -> Result<(), NodeError> {
        while self.pending.len() >= PER_REQUEST || (all && !self.pending.is_empty()) {
            let take = self.pending.len().min(PER_REQUEST);
            let chunk: Vec<_> = self.pending.drain(..take).collect();
            self.send(chunk)?;
        }
        Ok(())
    }
}

/// A batch's rows as JSON objects; nulls are left out, so an update leaves those fields
/// as they are.
fn rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, NodeError> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut out);
        writer.write(batch)?;
        writer.finish()?;
    }
    if out.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Map<String, Value>> = serde_json::from_slice(&out)
        .map_err(|e| NodeError::msg(format!("cannot turn records into JSON: {e}")))?;
    Ok(values)
}

impl Destination for SalesforceWrite {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        let mut records = rows(batch)?;
        if self.config.operation == WriteOperation::Delete {
            for r in &mut records {
                r.retain(|k, _| k == "Id");
            }
        }
        self.pending.extend(records);
        self.flush(false)
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.flush(true)
    }

    fn commit(self: Box<Self>) -> Result<Vec<OutputLocation>, NodeError> {
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
        if self.written > 0 {
            tracing::warn!(
                written = self.written,
                object = %self.object,
                "the run failed after records were written to Salesforce; they stay written"
            );
        }
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}
