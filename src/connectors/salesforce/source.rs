//! `source.salesforce`: the records of one object, its fields typed from `describe`, the
//! node's conditions pushed down into the SOQL `WHERE`, through the REST query API
//! (following `nextRecordsUrl`) or a Bulk API 2.0 query job (result sets followed by
//! `Sforce-Locator`), chosen as AppFlow does: Bulk from a million records on.
//!
//! Incremental pulls read a window: from where the last committed run left off (the
//! newest `SystemModstamp` it read, included, with the ids read at that instant skipped)
//! to the instant this run started (excluded, so records changed while it runs come next
//! time). Nothing is lost when records share the boundary instant, nothing read twice.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{API_VERSION, Describe, FieldInfo, Org, salesforce_words, schema_of};
use crate::codecs::read::values_to_batch;
use crate::conditions::{Condition, Operator};
use crate::connectors::framework::Watermark;
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, Entities, Entity, EntityField, ErrorRecord, NodeConfig,
    NodeError, NodeKind, PlanContext, Runtime, Source,
};
use crate::node::{Demand, SourceOutput};
use crate::paths::Dirs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSource {
    /// A Salesforce connection that has logged in.
    #[schemars(extend("x-connection" = super::CONNECTOR))]
    pub connection: String,
    /// The object to read, e.g. `Opportunity` or `Invoice__c`.
    pub object: String,
    /// The fields to read; every field of the object when empty (compound address and
    /// location fields are left out: their parts are fields of their own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Conditions Salesforce applies before sending records (the SOQL `WHERE`), so only
    /// the records wanted travel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Include deleted and archived records (`queryAll`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_deleted: bool,
    /// Read only the records changed since the last successful run, by this datetime
    /// field: `SystemModstamp` (every change, the usual choice) or `LastModifiedDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<String>,
    /// Which Salesforce API reads the records.
    #[serde(default, skip_serializing_if = "is_automatic")]
    pub api: DataTransferApi,
    /// With `automatic`, Bulk API 2.0 reads pulls of at least this many records.
    #[serde(default = "bulk_from", skip_serializing_if = "is_bulk_from")]
    #[schemars(extend("default" = 1000000))]
    pub bulk_from: u64,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "api_version", skip_serializing_if = "is_api_version")]
    #[schemars(extend("default" = "62.0"))]
    pub api_version: String,
}

/// AppFlow's `dataTransferApi`: which Salesforce API moves the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataTransferApi {
    /// REST below `bulk_from` records, Bulk API 2.0 from there on.
    #[default]
    Automatic,
    /// The REST API: queries of 2,000 records a page, writes of 200 records a request.
    Rest,
    /// Bulk API 2.0 jobs: for large pulls and writes; previews always use REST.
    Bulk,
}

fn is_automatic(api: &DataTransferApi) -> bool {
    *api == DataTransferApi::Automatic
}
fn bulk_from() -> u64 {
    1_000_000
}
fn is_bulk_from(n: &u64) -> bool {
    *n == bulk_from()
}
fn api_version() -> String {
    API_VERSION.into()
}
fn is_api_version(v: &String) -> bool {
    v == API_VERSION
}

impl NodeKind for SalesforceSource {
    const TYPE: &'static str = "source.salesforce";
    const TITLE: &'static str = "Salesforce";
    const ICON: &'static str = "☁";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some(super::CONNECTOR);
    const ENTITIES: Option<Entities> = Some(Entities {
        setting: "object",
        word: "object",
    });
    const DESCRIPTION: &'static str =
        "Read an object's records from Salesforce, all or only those changed since the last run";
}

impl SalesforceSource {
    fn org(&self, dirs: &Dirs) -> Result<Org, NodeError> {
        Org::open(dirs, &self.connection, &self.api_version)
    }

    /// The object's description, as the workspace learnt it.
    fn described(&self, cx: &PlanContext) -> Result<Describe, ConfigProblem> {
        if self.connection.trim().is_empty() {
            return Err(ConfigProblem::new(
                "/connection",
                "choose a Salesforce connection",
            ));
        }
        if self.object.trim().is_empty() {
            return Err(ConfigProblem::new("/object", "name the object to read"));
        }
        let learnt = super::described(cx, &self.connection, self.object.trim(), &self.api_version);
        learnt.map_err(|m| {
            if m.starts_with(super::NO_OBJECT) {
                ConfigProblem::new("/object", m)
            } else {
                ConfigProblem::service("/object", m)
            }
        })
    }

    /// The fields to output, checked against the description.
    fn chosen<'d>(&self, describe: &'d Describe) -> Result<Vec<&'d FieldInfo>, Vec<ConfigProblem>> {
        if self.fields.is_empty() {
            return Ok(describe
                .fields
                .iter()
                .filter(|f| !f.is_compound())
                .collect());
        }
        let mut problems = Vec::new();
        let mut chosen = Vec::new();
        for (i, name) in self.fields.iter().enumerate() {
            match describe.field(name) {
                Some(f) if f.is_compound() => problems.push(ConfigProblem::new(
                    format!("/fields/{i}"),
                    format!("`{}` is a compound field; choose its parts instead", f.name),
                )),
                Some(f) => chosen.push(f),
                None => problems.push(ConfigProblem::new(
                    format!("/fields/{i}"),
                    format!("{} has no field `{name}`", describe.name),
                )),
            }
        }
        if problems.is_empty() {
            Ok(chosen)
        } else {
            Err(problems)
        }
    }

    fn check_conditions(&self, describe: &Describe) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for (i, c) in self.conditions.iter().enumerate() {
            let at = format!("/conditions/{i}");
            match describe.field(&c.field) {
                None => problems.push(ConfigProblem::new(
                    format!("{at}/field"),
                    format!("{} has no field `{}`", describe.name, c.field),
                )),
                Some(f) if !f.filterable => problems.push(ConfigProblem::new(
                    format!("{at}/field"),
                    format!("Salesforce cannot filter on `{}`", f.name),
                )),
                Some(f) => {
                    if let Err(m) = condition_soql(c, f) {
                        problems.push(ConfigProblem::new(format!("{at}/value"), m));
                    }
                }
            }
        }
        if let Some(field) = &self.incremental {
            match describe.field(field) {
                Some(f) if f.kind == "datetime" => {}
                Some(f) => problems.push(ConfigProblem::new(
                    "/incremental",
                    format!("`{}` is a {} field; incremental pulls need a datetime field such as SystemModstamp", f.name, f.kind),
                )),
                None => problems.push(ConfigProblem::new(
                    "/incremental",
                    format!("{} has no field `{field}`", describe.name),
                )),
            }
        }
        problems
    }

    fn plan(&self, cx: &PlanContext) -> Result<(Describe, SchemaRef), Vec<ConfigProblem>> {
        let describe = self.described(cx).map_err(|p| vec![p])?;
        let chosen = self.chosen(&describe)?;
        let problems = self.check_conditions(&describe);
        if !problems.is_empty() {
            return Err(problems);
        }
        let schema = std::sync::Arc::new(schema_of(&chosen));
        Ok((describe, schema))
    }

    /// The SOQL of a pull: the fields (with `Id` and the incremental field, which the
    /// watermark needs), the conditions and the window.
    fn soql(
        &self,
        describe: &Describe,
        window: Option<(Option<DateTime<Utc>>, DateTime<Utc>)>,
        limit: Option<u64>,
    ) -> Result<String, NodeError> {
        let chosen = self
            .chosen(describe)
            .map_err(|p| NodeError::msg(p[0].message.clone()))?;
        let mut names: Vec<&str> = chosen.iter().map(|f| f.name.as_str()).collect();
        for extra in ["Id"].into_iter().chain(self.incremental.as_deref()) {
            if let Some(f) = describe.field(extra)
                && !names.iter().any(|n| n.eq_ignore_ascii_case(&f.name))
            {
                names.push(&f.name);
            }
        }
        let mut soql = format!("SELECT {} FROM {}", names.join(", "), describe.name);
        let mut clauses = Vec::new();
        for c in &self.conditions {
            let field = describe
                .field(&c.field)
                .ok_or_else(|| NodeError::msg(format!("no field `{}`", c.field)))?;
            clauses.push(condition_soql(c, field).map_err(NodeError::msg)?);
        }
        if let (Some(field), Some((from, to))) = (&self.incremental, window) {
            if let Some(from) = from {
                clauses.push(format!("{field} >= {}", soql_datetime(from)));
            }
            clauses.push(format!("{field} < {}", soql_datetime(to)));
        }
        if !clauses.is_empty() {
            soql += &format!(" WHERE {}", clauses.join(" AND "));
        }
        if let Some(n) = limit {
            soql += &format!(" LIMIT {n}");
        }
        Ok(soql)
    }
}

fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A literal of a field's type, as SOQL writes it.
fn literal(value: &Value, field: &FieldInfo) -> Result<String, String> {
    let text = || match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("`{other}` is not a value for {}", field.name)),
    };
    Ok(match (field.kind.as_str(), value) {
        (_, Value::Null) => "null".into(),
        ("boolean", Value::Bool(b)) => b.to_string(),
        ("boolean", Value::String(s)) if s == "true" || s == "false" => s.clone(),
        ("int" | "long" | "double" | "currency" | "percent", _) => {
            let t = text()?;
            t.parse::<f64>()
                .map_err(|_| format!("`{t}` is not a number, which {} holds", field.name))?;
            t
        }
        ("date", _) => {
            let t = text()?;
            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                .map_err(|_| format!("`{t}` is not a date like 2026-11-30"))?;
            t
        }
        ("datetime", _) => {
            let t = text()?;
            let parsed = DateTime::parse_from_rfc3339(&t)
                .map_err(|_| format!("`{t}` is not a date and time like 2026-11-30T00:00:00Z"))?;
            soql_datetime(parsed.with_timezone(&Utc))
        }
        _ => format!("'{}'", text()?.replace('\\', "\\\\").replace('\'', "\\'")),
    })
}

/// One condition in SOQL.
fn condition_soql(c: &Condition, field: &FieldInfo) -> Result<String, String> {
    let name = &field.name;
    let one = |v: &Value| literal(v, field);
    let list = |v: &Value| -> Result<Vec<String>, String> {
        match v {
            Value::Array(items) => items.iter().map(one).collect(),
            other => Ok(vec![one(other)?]),
        }
    };
    Ok(match c.operator {
        Operator::LessThan => format!("{name} < {}", one(&c.value)?),
        Operator::GreaterThan => format!("{name} > {}", one(&c.value)?),
        Operator::LessThanOrEqualTo => format!("{name} <= {}", one(&c.value)?),
        Operator::GreaterThanOrEqualTo => format!("{name} >= {}", one(&c.value)?),
        Operator::EqualTo => match list(&c.value)?.as_slice() {
            [single] => format!("{name} = {single}"),
            many => format!("{name} IN ({})", many.join(", ")),
        },
        Operator::NotEqualTo => match list(&c.value)?.as_slice() {
            [single] => format!("{name} != {single}"),
            many => format!("{name} NOT IN ({})", many.join(", ")),
        },
        Operator::Contains => {
            let Value::String(s) = &c.value else {
                return Err("`contains` takes a text".into());
            };
            let escaped = s
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("{name} LIKE '%{escaped}%'")
        }
        Operator::Between => match &c.value {
            Value::Array(pair) if pair.len() == 2 => format!(
                "({name} >= {} AND {name} <= {})",
                one(&pair[0])?,
                one(&pair[1])?
            ),
            _ => return Err("`between` takes [low, high]".into()),
        },
    })
}

impl NodeConfig for SalesforceSource {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(cx).map(|(_, schema)| schema)
    }

    fn summary(&self) -> String {
        let mut s = self.object.clone();
        if self.incremental.is_some() {
            s += " · changes since the last run";
        }
        s
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        let config = self.clone();
        let org = self.org(&cx.dirs);
        Box::pin(async move {
            let org = org?;
            let objects = org.objects().await?;
            if config.object.trim().is_empty() {
                return Ok(format!("connected: {} objects can be read", objects.len()));
            }
            let describe = org.describe(config.object.trim()).await?;
            Ok(format!(
                "connected: {} has {} fields",
                describe.name,
                describe.fields.len()
            ))
        })
    }

    fn entities(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<Entity>, NodeError>> {
        let org = self.org(&cx.dirs);
        Box::pin(async move {
            Ok(org?
                .objects()
                .await?
                .into_iter()
                .map(|(name, label)| Entity { name, label })
                .collect())
        })
    }

    fn entity_fields(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<EntityField>, NodeError>> {
        let config = self.clone();
        let org = self.org(&cx.dirs);
        Box::pin(async move {
            let describe = org?.describe(config.object.trim()).await?;
            Ok(describe
                .fields
                .iter()
                .filter(|f| !f.is_compound())
                .map(|f| EntityField {
                    name: f.name.clone(),
                    label: f.label.clone(),
                    data_type: f.arrow_type(),
                })
                .collect())
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (describe, _) = self
            .plan(&cx.plan())
            .map_err(|p| NodeError::msg(p[0].message.clone()))?;
        // Records changed as the run began are the next run's: SOQL's window ends there.
        let watermark = match self.incremental {
            Some(_) => Some(Watermark::of_run(cx, |at| at, Some(cx.started))?),
            None => None,
        };
        Ok(Runtime::Source(Box::new(SalesforceRead {
            config: self.clone(),
            org: self.org(&cx.dirs)?,
            describe,
            watermark,
            schema: cx.output_schema.clone(),
        })))
    }
}

struct SalesforceRead {
    config: SalesforceSource,
    org: Org,
    describe: Describe,
    /// Set when the pull is incremental.
    watermark: Option<Watermark<DateTime<Utc>>>,
    schema: SchemaRef,
}

/// Hands the records of each page or result set on.
struct Sink<'a> {
    out: &'a mut SourceOutput,
    read: &'a SalesforceRead,
    watermark: Option<Watermark<DateTime<Utc>>>,
    page: u64,
}

impl Sink<'_> {
    /// Takes raw records (REST JSON or CSV rows as text), normalizes them to their
    /// fields' types, keeps those of the window and sends them on.
    async fn take(&mut self, records: Vec<Map<String, Value>>) -> Result<Demand, NodeError> {
        self.page += 1;
        let read = self.read;
        let mut values = Vec::with_capacity(records.len());
        for mut record in records {
            record.remove("attributes");
            let mut clean = Map::with_capacity(record.len());
            for (name, value) in record {
                let value = match read.describe.field(&name) {
                    Some(f) => f.normalize(value),
                    None => value,
                };
                clean.insert(name, value);
            }
            if let (Some(field), Some(watermark)) = (&read.config.incremental, &mut self.watermark)
                && !in_window(watermark, &clean, field)
            {
                continue;
            }
            values.push(Value::Object(clean));
        }
        let node = self.out.node_id().to_string();
        let page = self.page;
        // A value that does not fit its described type (rare: Salesforce checks types) is
        // set aside with its page, never dropped.
        let mut rejected = Vec::new();
        // Only the described fields are asked for: nothing else can come.
        let batch = values_to_batch(
            &read.schema,
            &mut values,
            false,
            &mut |k, reason, record| {
                rejected.push(ErrorRecord {
                    node: node.clone(),
                    file: Some(format!("{} page {page}", read.describe.name)),
                    line: None,
                    reason: format!("record {} of the page: {reason}", k + 1),
                    record,
                });
                Ok(())
            },
        )?;
        for error in rejected {
            self.out.reject(error)?;
        }
        self.out.send(batch).await
    }
}

/// Whether a record is new to this pull, moving the watermark on by it when it is.
fn in_window(
    watermark: &mut Watermark<DateTime<Utc>>,
    record: &Map<String, Value>,
    field: &str,
) -> bool {
    let id = record.get("Id").and_then(Value::as_str);
    let Some(changed) = record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .and_then(|(_, v)| v.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return true;
    };
    watermark.take(&changed, id)
}

impl Source for SalesforceRead {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            let read = &*self;
            let window = read.watermark.as_ref().map(|w| {
                (
                    w.since().copied(),
                    *w.until()
                        .expect("an incremental pull ends at the run's start"),
                )
            });
            let limit = out.remaining();
            let soql = read.config.soql(&read.describe, window, limit)?;
            let bulk = match read.config.api {
                DataTransferApi::Rest => false,
                DataTransferApi::Bulk => limit.is_none(),
                DataTransferApi::Automatic => {
                    limit.is_none() && read.count(&soql).await? >= read.config.bulk_from
                }
            };
            tracing::info!(bulk, %soql, "reading Salesforce");
            let mut sink = Sink {
                out: &mut out,
                read,
                watermark: read.watermark.clone(),
                page: 0,
            };
            if bulk {
                read.bulk(&soql, &mut sink).await?;
            } else {
                read.rest(&soql, &mut sink).await?;
            }
            if let Some(watermark) = sink.watermark.take() {
                watermark.save(&out);
            }
            Ok(())
        })
    }
}

impl SalesforceRead {
    fn query_path(&self) -> &'static str {
        if self.config.include_deleted {
            "/queryAll"
        } else {
            "/query"
        }
    }

    /// How many records a pull would read (`SELECT COUNT()`), to choose the API.
    async fn count(&self, soql: &str) -> Result<u64, NodeError> {
        let from = soql.find(" FROM ").unwrap_or(0);
        let counting = format!("SELECT COUNT(){}", &soql[from..]);
        let url = self.org.url(self.query_path());
        let (answer, _) = self
            .org
            .api
            .get_json("counting the records", |c| {
                c.get(&url).query(&[("q", counting.as_str())])
            })
            .await
            .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
        Ok(answer["totalSize"].as_u64().unwrap_or(0))
    }

    /// The REST query API: the first page, then `nextRecordsUrl` until `done`.
    async fn rest(&self, soql: &str, sink: &mut Sink<'_>) -> Result<(), NodeError> {
        let first = self.org.url(self.query_path());
        let mut next: Option<String> = None;
        loop {
            if sink.out.is_cancelled() {
                return Err(NodeError::Cancelled);
            }
            let what = format!("page {} of the {} query", sink.page + 1, self.describe.name);
            let (answer, headers) = match &next {
                None => {
                    self.org
                        .api
                        .get_json(&what, |c| c.get(&first).query(&[("q", soql)]))
                        .await
                }
                Some(url) => self.org.api.get_json(&what, |c| c.get(url)).await,
            }
            .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
            note_limits(sink.out, &headers);
            let records = records_of(&answer)?;
            if sink.take(records).await? == Demand::Enough {
                return Ok(());
            }
            match answer["nextRecordsUrl"].as_str() {
                Some(path) if answer["done"] != Value::Bool(true) => {
                    next = Some(self.org.absolute(path));
                }
                _ => return Ok(()),
            }
        }
    }

    /// A Bulk API 2.0 query job: create it, wait for `JobComplete`, read the result sets.
    async fn bulk(&self, soql: &str, sink: &mut Sink<'_>) -> Result<(), NodeError> {
        let jobs = self.org.url("/jobs/query");
        let operation = if self.config.include_deleted {
            "queryAll"
        } else {
            "query"
        };
        let body = serde_json::json!({"operation": operation, "query": soql});
        let created = self
            .org
            .api
            .send("creating a Bulk API 2.0 query job", |c| {
                c.post(&jobs).json(&body)
            })
            .await
            .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
        let job: Value = created
            .json()
            .await
            .map_err(|e| NodeError::msg(format!("the query job's answer is not JSON: {e}")))?;
        let id = job["id"]
            .as_str()
            .ok_or_else(|| NodeError::msg("Salesforce created a query job without an id"))?
            .to_string();
        let status_url = format!("{jobs}/{id}");
        let mut wait = Duration::from_millis(250);
        loop {
            if sink.out.is_cancelled() {
                self.abort_job(&status_url).await;
                return Err(NodeError::Cancelled);
            }
            let (status, _) = self
                .org
                .api
                .get_json("checking the query job", |c| c.get(&status_url))
                .await
                .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
            match status["state"].as_str().unwrap_or_default() {
                "JobComplete" => break,
                "Failed" | "Aborted" => {
                    return Err(NodeError::msg(format!(
                        "the Bulk API 2.0 query job {id} {}: {}",
                        status["state"].as_str().unwrap_or_default().to_lowercase(),
                        status["errorMessage"].as_str().unwrap_or("no reason given")
                    )));
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
        let results = format!("{status_url}/results");
        let mut locator: Option<String> = None;
        loop {
            if sink.out.is_cancelled() {
                return Err(NodeError::Cancelled);
            }
            let what = format!("result set {} of query job {id}", sink.page + 1);
            let response = self
                .org
                .api
                .send(&what, |c| {
                    let mut request = c
                        .get(&results)
                        .header("Accept", "text/csv")
                        .query(&[("maxRecords", "50000")]);
                    if let Some(l) = &locator {
                        request = request.query(&[("locator", l.as_str())]);
                    }
                    request
                })
                .await
                .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
            note_limits(sink.out, response.headers());
            let next = response
                .headers()
                .get("sforce-locator")
                .and_then(|v| v.to_str().ok())
                .filter(|l| !l.is_empty() && *l != "null")
                .map(String::from);
            let body = response
                .bytes()
                .await
                .map_err(|e| NodeError::msg(format!("{what} broke off: {e}")))?;
            // A result set holds up to 50,000 records: they go on a batch at a time, so
            // only one batch of them is ever held as JSON values.
            let per_batch = sink.out.batch_rows().max(1);
            let mut rows =
                csv_records(&body).map_err(|e| NodeError::msg(format!("{what}: {e}")))?;
            loop {
                let chunk: Vec<_> = rows
                    .by_ref()
                    .take(per_batch)
                    .collect::<Result<_, _>>()
                    .map_err(|e| NodeError::msg(format!("{what}: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                if sink.take(chunk).await? == Demand::Enough {
                    return Ok(());
                }
            }
            match next {
                Some(l) => locator = Some(l),
                None => return Ok(()),
            }
        }
    }

    async fn abort_job(&self, status_url: &str) {
        let body = serde_json::json!({"state": "Aborted"});
        let _ = self
            .org
            .api
            .send("aborting the query job", |c| {
                c.patch(status_url).json(&body)
            })
            .await;
    }
}

/// The records of a REST query answer.
fn records_of(answer: &Value) -> Result<Vec<Map<String, Value>>, NodeError> {
    let records = answer["records"]
        .as_array()
        .ok_or_else(|| NodeError::msg("Salesforce's query answer has no records"))?;
    Ok(records
        .iter()
        .filter_map(|r| r.as_object().cloned())
        .collect())
}

/// The rows of a Bulk API 2.0 result set (CSV with a header row) as text values.
fn csv_records(
    body: &[u8],
) -> Result<impl Iterator<Item = Result<Map<String, Value>, String>> + Send + '_, String> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| format!("not CSV: {e}"))?
        .clone();
    Ok(reader.into_records().map(move |row| {
        let row = row.map_err(|e| format!("not CSV: {e}"))?;
        Ok(headers
            .iter()
            .zip(row.iter())
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect())
    }))
}

/// `Sforce-Limit-Info: api-usage=18/5000`: how much of the org's daily allowance of API
/// requests is used, kept in the run record as `api_requests_used` and `api_requests_limit`.
fn note_limits(out: &SourceOutput, headers: &reqwest::header::HeaderMap) {
    let Some(info) = headers
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let usage = info
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="));
    if let Some((used, limit)) = usage.and_then(|u| u.split_once('/'))
        && let (Ok(used), Ok(limit)) = (used.trim().parse(), limit.trim().parse())
    {
        out.set_note("api_requests_used", used);
        out.set_note("api_requests_limit", limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, kind: &str) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            kind: kind.into(),
            label: String::new(),
            nillable: true,
            filterable: true,
            compound_field_name: None,
            precision: 18,
            scale: 2,
        }
    }

    fn condition(field: &str, operator: Operator, value: Value) -> Condition {
        Condition {
            field: field.into(),
            operator,
            value,
        }
    }

    #[test]
    fn conditions_become_soql_with_literals_of_the_fields_type() {
        let stage = field("StageName", "picklist");
        let amount = field("Amount", "currency");
        let close = field("CloseDate", "date");
        let cases = [
            (
                condition("StageName", Operator::NotEqualTo, json!("Closed Lost")),
                &stage,
                "StageName != 'Closed Lost'",
            ),
            (
                condition("StageName", Operator::EqualTo, json!(["Won", "O'Brien"])),
                &stage,
                "StageName IN ('Won', 'O\\'Brien')",
            ),
            (
                condition("Amount", Operator::GreaterThan, json!(1000)),
                &amount,
                "Amount > 1000",
            ),
            (
                condition(
                    "CloseDate",
                    Operator::Between,
                    json!(["2026-01-01", "2026-03-31"]),
                ),
                &close,
                "(CloseDate >= 2026-01-01 AND CloseDate <= 2026-03-31)",
            ),
            (
                condition("StageName", Operator::Contains, json!("50%_off")),
                &stage,
                "StageName LIKE '%50\\%\\_off%'",
            ),
        ];
        for (c, f, soql) in cases {
            assert_eq!(condition_soql(&c, f).unwrap(), soql);
        }
        assert!(
            condition_soql(
                &condition("Amount", Operator::EqualTo, json!("lots")),
                &amount
            )
            .unwrap_err()
            .contains("not a number")
        );
        assert!(
            condition_soql(
                &condition("CloseDate", Operator::EqualTo, json!("31/01/2026")),
                &close
            )
            .is_err()
        );
    }

    #[test]
    fn the_schema_shows_the_defaults_a_run_uses() {
        // Settings left out of the flow file are also left out of the schema's defaults
        // unless given by hand; the form shows these.
        let schema = serde_json::to_value(schemars::schema_for!(SalesforceSource)).unwrap();
        assert_eq!(schema["properties"]["api_version"]["default"], API_VERSION);
        assert_eq!(schema["properties"]["bulk_from"]["default"], bulk_from());
        let schema = serde_json::to_value(schemars::schema_for!(
            super::super::destination::SalesforceDestination
        ))
        .unwrap();
        assert_eq!(schema["properties"]["api_version"]["default"], API_VERSION);
        assert_eq!(schema["properties"]["bulk_from"]["default"], 2000);
    }

    #[test]
    fn bulk_csv_rows_become_records() {
        let rows: Vec<_> = csv_records(
            b"\"Id\",\"Amount\",\"Name\"\n\"006A\",\"12.5\",\"Acme, Inc.\"\n\"006B\",\"\",\"\"\n",
        )
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Name"], json!("Acme, Inc."));
        assert_eq!(rows[1]["Amount"], json!(""));
    }
}
