//! Salesforce, a service of the connector framework: its sign-in, its catalog (objects
//! and fields from `describe`), reads through the REST query API or Bulk API 2.0 query
//! jobs ([`read`]) and writes through sObject Collections or Bulk API 2.0 ingest jobs
//! ([`write`]). An [`Org`] is a logged-in connection's versioned REST API
//! (`{instance_url}/services/data/vXX.X/…`) through the shared client, so every request
//! carries the connection's token, is sent again after a refresh when Salesforce answers
//! `401 INVALID_SESSION_ID`, and waits out `503` and rate limits.
//!
//! Salesforce field types map to Arrow types once, here, from `describe`: the same types
//! whether records come from the REST query API (JSON) or Bulk API 2.0 (CSV), which AppFlow
//! does not manage (its output changes format with the API it picked).

mod read;
mod write;

use arrow::datatypes::{DataType, TimeUnit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::framework::catalog::{
    Catalog, Client, EntityDetail, Field, Operation, Options, Outcome, Pages, ReadRequest, Write,
    WriteRequest,
};
use super::framework::service::{ALL_OPERATORS, Capabilities};
use super::framework::{ConnectorError, Service, service};
use super::http::Api;
use crate::auth::sign_in::{OAUTH, OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::conditions::Operator;
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;

/// The connector name Salesforce connections carry.
pub const CONNECTOR: &str = "salesforce";

/// The Salesforce service: its sign-in, and a check that asks the org for its API versions
/// with a fresh token.
pub struct Salesforce;

impl Service for Salesforce {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&Salesforce)
    }

    fn icon(&self) -> &'static str {
        "☁"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            entities: true,
            filters: ALL_OPERATORS,
            incremental: true,
            writes: &[
                Operation::Insert,
                Operation::Update,
                Operation::Upsert,
                Operation::Delete,
            ],
        }
    }

    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let (dirs, name) = (dirs.clone(), name.to_string());
        Box::pin(async move {
            let session = service::open_as(&dirs, &name, CONNECTOR)?;
            session.access_token().await.map_err(ConnectorError::auth)?;
            // The token answer gave the instance URL: read the connection as saved since.
            let base = crate::auth::get(&dirs, &name)
                .map_err(ConnectorError::fatal)?
                .setting("instance_url")
                .ok_or_else(|| {
                    ConnectorError::auth(format!(
                        "the connection `{name}` has no instance URL: log in again"
                    ))
                })?;
            crate::auth::http::check_url(&base).map_err(ConnectorError::fatal)?;
            let response = session
                .send(|c| c.get(format!("{base}/services/data/")))
                .await
                .map_err(|e| ConnectorError::transient(format!("the connection `{name}`: {e}")))?;
            if !response.status().is_success() {
                return Err(ConnectorError::of_status(
                    response.status().as_u16(),
                    format!(
                        "the connection `{name}`: Salesforce answered {} to a request with a fresh token",
                        response.status()
                    ),
                ));
            }
            Ok(service::signed_in(&dirs, &name))
        })
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: CONNECTOR,
    label: "Salesforce",
    kinds: OAUTH,
    settings: &[
        Setting {
            default: Some("https://login.salesforce.com"),
            required: true,
            choices: &[
                ("https://login.salesforce.com", "Production"),
                ("https://test.salesforce.com", "Sandbox"),
            ],
            ..setting(
                "login_url",
                "Login URL",
                "Where users log in: production, a sandbox, or your My Domain URL (client credentials need the My Domain URL).",
            )
        },
        Setting {
            required: true,
            ..setting(
                "client_id",
                "Consumer key",
                "The consumer key of your connected app (Setup, then App Manager).",
            )
        },
        Setting {
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "callback_port",
                "Callback port",
                "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), for services that want the exact redirect URI registered; empty for any free port.",
            )
        },
    ],
    oauth: Some(OAuthEndpoints {
        authorize: "{login_url}/services/oauth2/authorize",
        token: "{login_url}/services/oauth2/token",
        scopes: &["api", "id", "refresh_token"],
        extra: &[],
        identity_url_field: Some("id"),
    }),
    secrets: &[],
};

/// The REST API version requests use unless the node names another.
pub const API_VERSION: &str = "62.0";

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

/// The Salesforce source's `options`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SalesforceReadOptions")]
pub struct ReadOptions {
    /// Which Salesforce API reads the records.
    #[serde(default)]
    pub api: DataTransferApi,
    /// With `automatic`, Bulk API 2.0 reads pulls of at least this many records.
    #[serde(default = "read_bulk_from")]
    pub bulk_from: u64,
    /// Include deleted and archived records (`queryAll`).
    #[serde(default)]
    pub include_deleted: bool,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "api_version")]
    pub api_version: String,
}

/// The Salesforce destination's `options`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SalesforceWriteOptions")]
pub struct WriteOptions {
    /// Which Salesforce API writes the records.
    #[serde(default)]
    pub api: DataTransferApi,
    /// With `automatic`, Bulk API 2.0 writes runs of at least this many records
    /// (Salesforce's advice: Bulk from 2,000 on).
    #[serde(default = "write_bulk_from")]
    pub bulk_from: u64,
    /// The REST API version, e.g. `62.0`.
    #[serde(default = "api_version")]
    pub api_version: String,
}

fn read_bulk_from() -> u64 {
    1_000_000
}
fn write_bulk_from() -> u64 {
    2_000
}
fn api_version() -> String {
    API_VERSION.into()
}

/// The settings every Salesforce node had before they were the framework's generic ones,
/// which now live in `options`.
const OLD_OPTIONS: &[&str] = &["api", "bulk_from", "include_deleted", "api_version"];

impl Catalog for Salesforce {
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async move { Org::of(&client)?.objects().await })
    }

    fn describe(
        &self,
        client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        Box::pin(async move { Ok(Org::of(&client)?.describe(&entity).await?.detail()) })
    }

    fn earliest(
        &self,
        client: Client,
        request: &ReadRequest,
    ) -> Option<BoxFuture<Result<Option<chrono::DateTime<chrono::Utc>>, ConnectorError>>> {
        Some(Box::pin(read::earliest(client, request.clone())))
    }

    fn read(
        &self,
        client: Client,
        request: ReadRequest,
        pages: Pages,
    ) -> BoxFuture<Result<(), ConnectorError>> {
        Box::pin(read::read(client, request, pages))
    }

    fn write(
        &self,
        client: Client,
        request: WriteRequest,
        records: Vec<Map<String, Value>>,
    ) -> BoxFuture<Result<Vec<Outcome>, ConnectorError>> {
        Box::pin(write::write(client, request, records))
    }

    fn write_chunk(&self, client: &Client, request: &WriteRequest) -> usize {
        write::chunk(client, request)
    }

    fn read_options(&self) -> Option<Options> {
        Some(Options::of::<ReadOptions>())
    }

    fn write_options(&self) -> Option<Options> {
        Some(Options::of::<WriteOptions>())
    }

    /// Salesforce's nodes named the object `object`, the incremental field in
    /// `incremental`, an upsert's field in `external_id_field`, and held the API choice
    /// beside the standard settings.
    fn upgrade(&self, source: bool, config: &mut Map<String, Value>) {
        if let Some(object) = config.remove("object") {
            config.entry("entity").or_insert(object);
        }
        if source && let Some(Value::String(field)) = config.get("incremental").cloned() {
            config.insert("incremental".into(), Value::Bool(true));
            config.entry("cursor_field").or_insert(Value::String(field));
        }
        if !source && let Some(field) = config.remove("external_id_field") {
            config.entry("keys").or_insert(Value::Array(vec![field]));
        }
        for key in OLD_OPTIONS {
            if let Some(value) = config.remove(*key) {
                let options = config
                    .entry("options")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(options) = options {
                    options.entry(*key).or_insert(value);
                }
            }
        }
    }
}

/// A logged-in org's versioned REST API.
#[derive(Clone)]
pub struct Org {
    pub api: Api,
    base: String,
}

/// One field of an object, as `describe` has it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub label: String,
    #[serde(default = "yes")]
    pub nillable: bool,
    #[serde(default = "yes")]
    pub filterable: bool,
    /// Whether the field is an external id, by which upserts find records.
    #[serde(default)]
    pub external_id: bool,
    /// Digits in all, of a number field.
    #[serde(default)]
    pub precision: u32,
    /// Digits after the point, of a number field.
    #[serde(default)]
    pub scale: u32,
}

fn yes() -> bool {
    true
}

/// What `describe` says of an object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Describe {
    pub name: String,
    #[serde(default)]
    pub label: String,
    pub fields: Vec<FieldInfo>,
}

impl Describe {
    /// The object as the framework knows entities: compound fields left out (their parts
    /// are fields of their own), every field filtered by SOQL's operators where
    /// Salesforce filters it, datetimes as cursors, `SystemModstamp` (every change) the
    /// usual one.
    fn detail(self) -> EntityDetail {
        let has = |name: &str| self.fields.iter().any(|f| f.name == name);
        let default_cursor = ["SystemModstamp", "LastModifiedDate"]
            .into_iter()
            .find(|f| has(f))
            .map(String::from);
        let id_field = has("Id").then(|| "Id".to_string());
        let mut fields = Vec::with_capacity(self.fields.len());
        let mut left_out = Vec::new();
        for f in &self.fields {
            if f.is_compound() {
                left_out.push((
                    f.name.clone(),
                    "is a compound field; choose its parts instead".to_string(),
                ));
                continue;
            }
            let data_type = f.arrow_type();
            let filters = match (f.filterable, &data_type) {
                (false, _) => Vec::new(),
                (true, DataType::Utf8) => ALL_OPERATORS.to_vec(),
                (true, DataType::Boolean) => vec![Operator::EqualTo, Operator::NotEqualTo],
                (true, _) => ALL_OPERATORS
                    .iter()
                    .copied()
                    .filter(|o| *o != Operator::Contains)
                    .collect(),
            };
            fields.push(Field {
                name: f.name.clone(),
                label: f.label.clone(),
                cursor: f.kind == "datetime",
                data_type,
                filters,
            });
        }
        let by_id = |operation| Write {
            operation,
            keys: vec!["Id".into()],
            one_key: false,
        };
        EntityDetail {
            label: if self.label.is_empty() {
                self.name.clone()
            } else {
                self.label.clone()
            },
            name: self.name,
            fields,
            id_field,
            default_cursor,
            writes: vec![
                Write {
                    operation: Operation::Insert,
                    keys: Vec::new(),
                    one_key: false,
                },
                by_id(Operation::Update),
                // By the external id field the node names.
                Write {
                    operation: Operation::Upsert,
                    keys: Vec::new(),
                    one_key: true,
                },
                by_id(Operation::Delete),
            ],
            required: Vec::new(),
            left_out,
            restated: false,
            change_log: None,
        }
    }
}

impl FieldInfo {
    /// Compound fields (addresses, geolocations) come whole in the REST API and not at all
    /// in Bulk API 2.0; their parts are fields of their own, so they are left out.
    pub fn is_compound(&self) -> bool {
        matches!(self.kind.as_str(), "address" | "location")
    }

    /// The Arrow type of a Salesforce field type.
    pub fn arrow_type(&self) -> DataType {
        match self.kind.as_str() {
            "boolean" => DataType::Boolean,
            "int" => DataType::Int32,
            "long" => DataType::Int64,
            // Money and percentages are exact decimals in Salesforce, and stay so: summed
            // as floating point they end up a cent off.
            "currency" | "percent" => {
                match crate::types::FieldType::decimal(self.precision, self.scale) {
                    Ok(t) => t.arrow(),
                    Err(_) => DataType::Float64,
                }
            }
            "double" => DataType::Float64,
            "date" => DataType::Date32,
            "datetime" => DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            // id, reference, string, textarea, picklist, multipicklist, combobox, email,
            // phone, url, encryptedstring, base64 (a URL to the blob), time, anyType…
            _ => DataType::Utf8,
        }
    }
}

/// A value as the REST API or a Bulk CSV cell gives it, as JSON the Arrow decoder takes
/// for a field of this type: texts of numbers and booleans become numbers and booleans,
/// Salesforce's `+0000` offsets become `+00:00`, empty cells null.
pub fn normalize(data_type: &DataType, value: Value) -> Value {
    match (data_type, value) {
        // Salesforce keeps an empty text as null; a Bulk CSV can only show null as an
        // empty cell. So an empty cell is null for every type, as the REST API says.
        (_, Value::String(s)) if s.is_empty() => Value::Null,
        (DataType::Boolean, Value::String(s)) => match s.as_str() {
            "true" | "TRUE" | "True" => Value::Bool(true),
            "false" | "FALSE" | "False" => Value::Bool(false),
            _ => Value::String(s),
        },
        // A decimal is read from its text, exactly.
        (DataType::Decimal128(..), v) => v,
        (DataType::Int32 | DataType::Int64 | DataType::Float64, Value::String(s)) => {
            match s.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::String(s), Value::Number),
            }
        }
        (DataType::Timestamp(..), Value::String(s)) => Value::String(rfc3339(&s)),
        (_, v) => v,
    }
}

/// `2026-11-27T10:00:00.000+0000` → `2026-11-27T10:00:00.000+00:00`.
fn rfc3339(text: &str) -> String {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n > 5 && matches!(bytes[n - 5], b'+' | b'-') && bytes[n - 4..].iter().all(u8::is_ascii_digit)
    {
        format!("{}:{}", &text[..n - 2], &text[n - 2..])
    } else {
        text.to_string()
    }
}

impl Org {
    /// The org a connection is logged in to, at the node's API version.
    pub fn of(client: &Client) -> Result<Org, ConnectorError> {
        let version: String = match client.options.get("api_version") {
            Some(Value::String(v)) => v.clone(),
            _ => API_VERSION.into(),
        };
        let version = version.trim().trim_start_matches('v');
        Ok(Org {
            api: client.api.clone(),
            base: format!("{}/services/data/v{version}", client.base),
        })
    }

    /// A URL of the versioned REST API, e.g. `/sobjects`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL Salesforce gave (`nextRecordsUrl`), which starts at `/services/data/…`.
    pub fn absolute(&self, path: &str) -> String {
        let root = self
            .base
            .split("/services/data/")
            .next()
            .unwrap_or(&self.base);
        format!("{root}{path}")
    }

    /// What an object's description is; [`NotFound`](super::framework::ErrorKind::NotFound) for an object Salesforce
    /// does not have (a misspelt name: the flow's mistake).
    pub async fn describe(&self, object: &str) -> Result<Describe, ConnectorError> {
        let url = self.url(&format!("/sobjects/{object}/describe"));
        let (answer, _) = self
            .api
            .get_json(&format!("describing {object}"), |c| c.get(&url))
            .await
            .map_err(|e| match e.status {
                Some(404) => ConnectorError::not_found(format!(
                    "Salesforce has no object `{object}` (or the connection may not see it)"
                )),
                _ => in_words(e),
            })?;
        serde_json::from_value(answer).map_err(|e| {
            ConnectorError::fatal(format!(
                "Salesforce's description of {object} is not one Tributary reads: {e}"
            ))
        })
    }

    /// Waits for a Bulk API 2.0 job to end, asking with a growing pause: its last status
    /// once `JobComplete`, an error with Salesforce's reason once `Failed` or `Aborted`,
    /// nothing once `abandon` says the answer is no longer wanted.
    pub async fn wait_for_job(
        &self,
        job_url: &str,
        what: &str,
        abandon: impl Fn() -> bool,
    ) -> Result<Option<Value>, ConnectorError> {
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            if abandon() {
                return Ok(None);
            }
            let (status, _) = self
                .api
                .get_json(what, |c| c.get(job_url))
                .await
                .map_err(in_words)?;
            match status["state"].as_str().unwrap_or_default() {
                "JobComplete" => return Ok(Some(status)),
                "Failed" | "Aborted" => {
                    return Err(ConnectorError::fatal(format!(
                        "{what}: the job {}: {}",
                        status["state"].as_str().unwrap_or_default().to_lowercase(),
                        status["errorMessage"].as_str().unwrap_or("no reason given")
                    )));
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    }

    /// The objects that can be queried.
    pub async fn objects(&self) -> Result<Vec<Entity>, ConnectorError> {
        let url = self.url("/sobjects");
        let (answer, _) = self
            .api
            .get_json("listing the objects", |c| c.get(&url))
            .await
            .map_err(in_words)?;
        Ok(answer["sobjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["queryable"].as_bool().unwrap_or(true))
            .filter_map(|o| {
                Some(Entity {
                    name: o["name"].as_str()?.to_string(),
                    label: o["label"].as_str().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }
}

/// A failure with Salesforce's error code explained.
pub fn in_words(e: ConnectorError) -> ConnectorError {
    ConnectorError {
        message: salesforce_words(&e.message),
        ..e
    }
}

/// Salesforce's error bodies (`[{"message": …, "errorCode": …}]`) read as words.
pub fn salesforce_words(message: &str) -> String {
    let hint = if message.contains("REQUEST_LIMIT_EXCEEDED") {
        " (the org's daily API request limit is used up; it frees up over 24 hours)"
    } else if message.contains("INVALID_FIELD") {
        " (a field named in the node does not exist or is not visible to the connection)"
    } else if message.contains("INVALID_TYPE") {
        " (the object does not exist or is not visible to the connection)"
    } else if message.contains("API_DISABLED_FOR_ORG") {
        " (this Salesforce edition does not allow API access)"
    } else {
        ""
    };
    format!("{message}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(kind: &str) -> FieldInfo {
        FieldInfo {
            name: "F".into(),
            kind: kind.into(),
            label: String::new(),
            nillable: true,
            filterable: true,
            external_id: false,
            precision: 18,
            scale: 2,
        }
    }

    #[test]
    fn an_empty_bulk_cell_is_null_for_every_type() {
        for kind in [
            "string", "textarea", "picklist", "double", "date", "boolean", "datetime",
        ] {
            assert_eq!(
                normalize(&field(kind).arrow_type(), json!("")),
                Value::Null,
                "{kind}"
            );
        }
        assert_eq!(
            normalize(&field("string").arrow_type(), json!("x")),
            json!("x")
        );
    }

    #[test]
    fn every_salesforce_type_has_an_arrow_type() {
        let cases = [
            ("id", DataType::Utf8),
            ("reference", DataType::Utf8),
            ("string", DataType::Utf8),
            ("textarea", DataType::Utf8),
            ("picklist", DataType::Utf8),
            ("multipicklist", DataType::Utf8),
            ("combobox", DataType::Utf8),
            ("email", DataType::Utf8),
            ("phone", DataType::Utf8),
            ("url", DataType::Utf8),
            ("encryptedstring", DataType::Utf8),
            ("base64", DataType::Utf8),
            ("time", DataType::Utf8),
            ("anyType", DataType::Utf8),
            ("boolean", DataType::Boolean),
            ("int", DataType::Int32),
            ("long", DataType::Int64),
            ("double", DataType::Float64),
            ("currency", DataType::Decimal128(18, 2)),
            ("percent", DataType::Decimal128(18, 2)),
            ("date", DataType::Date32),
            (
                "datetime",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
            ),
        ];
        for (kind, arrow) in cases {
            assert_eq!(field(kind).arrow_type(), arrow, "{kind}");
        }
        assert!(field("address").is_compound() && field("location").is_compound());
    }

    #[test]
    fn csv_cells_and_rest_values_normalize_alike() {
        assert_eq!(
            normalize(&field("boolean").arrow_type(), json!("true")),
            json!(true)
        );
        // A decimal is read from its text, as the Bulk CSV has it, or from the number.
        assert_eq!(
            normalize(&field("currency").arrow_type(), json!("1250.5")),
            json!("1250.5")
        );
        assert_eq!(
            normalize(&field("currency").arrow_type(), json!(1250.5)),
            json!(1250.5)
        );
        assert_eq!(
            normalize(&field("int").arrow_type(), json!("42")),
            json!(42)
        );
        assert_eq!(
            normalize(&field("double").arrow_type(), json!("")),
            Value::Null
        );
        // Salesforce keeps no empty text: through either API it is null.
        assert_eq!(
            normalize(&field("string").arrow_type(), json!("")),
            Value::Null
        );
        assert_eq!(
            normalize(
                &field("datetime").arrow_type(),
                json!("2026-11-27T10:00:00.000+0000")
            ),
            json!("2026-11-27T10:00:00.000+00:00")
        );
        assert_eq!(
            normalize(
                &field("datetime").arrow_type(),
                json!("2026-11-27T10:00:00.000Z")
            ),
            json!("2026-11-27T10:00:00.000Z")
        );
    }

    #[test]
    fn flows_saved_before_the_framework_read_as_todays() {
        let mut source = json!({"connection": "crm", "object": "Opportunity",
            "incremental": "LastModifiedDate", "api": "bulk", "include_deleted": true});
        Salesforce.upgrade(true, source.as_object_mut().unwrap());
        assert_eq!(
            source,
            json!({"connection": "crm", "entity": "Opportunity", "incremental": true,
                "cursor_field": "LastModifiedDate",
                "options": {"api": "bulk", "include_deleted": true}})
        );
        let mut destination = json!({"connection": "crm", "object": "Contact",
            "operation": "upsert", "external_id_field": "Ext__c", "bulk_from": 10});
        Salesforce.upgrade(false, destination.as_object_mut().unwrap());
        assert_eq!(
            destination,
            json!({"connection": "crm", "entity": "Contact", "operation": "upsert",
                "keys": ["Ext__c"], "options": {"bulk_from": 10}})
        );
        // Today's shape stays as it is.
        let today = json!({"connection": "crm", "entity": "Lead", "incremental": true});
        let mut same = today.clone();
        Salesforce.upgrade(true, same.as_object_mut().unwrap());
        assert_eq!(same, today);
    }

    #[test]
    fn a_description_becomes_an_entity_without_its_compound_fields() {
        let describe = Describe {
            name: "Account".into(),
            label: "Account".into(),
            fields: ["id", "string", "address", "boolean", "datetime", "currency"]
                .iter()
                .zip([
                    "Id",
                    "Name",
                    "BillingAddress",
                    "IsDeleted",
                    "SystemModstamp",
                    "AnnualRevenue",
                ])
                .map(|(kind, name)| FieldInfo {
                    name: name.into(),
                    ..field(kind)
                })
                .collect(),
        };
        let entity = describe.detail();
        let names: Vec<_> = entity.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["Id", "Name", "IsDeleted", "SystemModstamp", "AnnualRevenue"]
        );
        assert_eq!(entity.left_out[0].0, "BillingAddress");
        assert_eq!(entity.default_cursor.as_deref(), Some("SystemModstamp"));
        assert_eq!(entity.id_field.as_deref(), Some("Id"));
        let by_name = |n: &str| entity.field(n).unwrap();
        assert!(by_name("Name").filters.contains(&Operator::Contains));
        assert!(
            !by_name("AnnualRevenue")
                .filters
                .contains(&Operator::Contains)
        );
        assert_eq!(by_name("IsDeleted").filters.len(), 2);
        assert!(by_name("SystemModstamp").cursor && !by_name("Name").cursor);
        // Names are Salesforce's, in any capitals.
        assert_eq!(
            entity.field("systemmodstamp").unwrap().name,
            "SystemModstamp"
        );
    }
}
