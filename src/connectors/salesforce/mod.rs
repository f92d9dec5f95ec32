//! Salesforce: what the Salesforce nodes share. An [`Org`] is a logged-in connection's
//! REST API (`{instance_url}/services/data/vXX.X/…`) through the shared client, so every
//! request carries the connection's token, is sent again after a refresh when Salesforce
//! answers `401 INVALID_SESSION_ID`, and waits out `503` and rate limits.
//!
//! Salesforce field types map to Arrow types once, here, from `describe`: the same types
//! whether records come from the REST query API (JSON) or Bulk API 2.0 (CSV), which AppFlow
//! does not manage (its output changes format with the API it picked).

pub mod destination;
pub mod source;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Deserialize;
use serde_json::Value;

use super::block_on;
use super::framework::catalog::Operation;
use super::framework::service::{ALL_OPERATORS, Capabilities};
use super::framework::{ConnectorError, Service, service};
use super::http::Api;
use crate::auth::sign_in::{OAUTH, OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::node::{BoxFuture, NodeError, PlanContext};
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
};

/// The REST API version requests use unless the node names another.
pub const API_VERSION: &str = "62.0";

/// A logged-in org's REST API.
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
    /// Set on the parts of a compound field (`BillingStreet` → `BillingAddress`).
    #[serde(default)]
    pub compound_field_name: Option<String>,
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
    pub fields: Vec<FieldInfo>,
}

impl Describe {
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
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

    /// A value as the REST API or a Bulk CSV cell gives it, as JSON the Arrow decoder takes
    /// for this field's type: texts of numbers and booleans become numbers and booleans,
    /// Salesforce's `+0000` offsets become `+00:00`, empty cells null.
    pub fn normalize(&self, value: Value) -> Value {
        match (self.arrow_type(), value) {
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
}

/// How [`Org::describe`] starts the message of an object Salesforce does not have.
pub const NO_OBJECT: &str = "Salesforce has no object";

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

/// The Arrow schema of the chosen fields, in the order given.
pub fn schema_of(fields: &[&FieldInfo]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|f| Field::new(&f.name, f.arrow_type(), true))
            .collect::<Vec<_>>(),
    )
}

/// An object's description as the workspace learnt it while planning, kept a minute: the
/// app plans on every edit. A message starting with [`NO_OBJECT`] is the flow's mistake.
pub fn described(
    cx: &PlanContext,
    connection: &str,
    object: &str,
    version: &str,
) -> Result<Describe, String> {
    let inputs = ("salesforce describe", connection, object, version);
    cx.discovery.learn(&inputs, || {
        block_on(async {
            Org::open(&cx.dirs, connection, version)?
                .describe(object)
                .await
        })
        .map_err(|e| e.to_string())
    })
}

impl Org {
    /// The org a connection is logged in to.
    pub fn open(dirs: &Dirs, connection: &str, version: &str) -> Result<Org, NodeError> {
        let session = service::open_as(dirs, connection, CONNECTOR)?;
        let instance = session.connection().setting("instance_url").ok_or_else(|| {
            NodeError::msg(format!(
                "the connection `{connection}` has not logged in yet: log in in the app (Connections) or with `tributary connection login {connection}`"
            ))
        })?;
        crate::auth::http::check_url(&instance).map_err(NodeError::msg)?;
        let version = version.trim().trim_start_matches('v');
        Ok(Org {
            api: Api::new(Some(Arc::clone(&session))),
            base: format!(
                "{}/services/data/v{version}",
                instance.trim_end_matches('/')
            ),
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

    /// What an object's description is, or why there is none. A message starting with
    /// [`NO_OBJECT`] is the flow's mistake (a misspelt object); any other, the service's.
    pub async fn describe(&self, object: &str) -> Result<Describe, NodeError> {
        let url = self.url(&format!("/sobjects/{object}/describe"));
        let (answer, _) = self
            .api
            .get_json(&format!("describing {object}"), |c| c.get(&url))
            .await
            .map_err(|e| match e.status {
                Some(404) => NodeError::msg(format!(
                    "{NO_OBJECT} `{object}` (or the connection may not see it)"
                )),
                _ => NodeError::msg(salesforce_words(&e.message)),
            })?;
        serde_json::from_value(answer).map_err(|e| {
            NodeError::msg(format!(
                "Salesforce's description of {object} is not one Tributary reads: {e}"
            ))
        })
    }

    /// The objects that can be queried, as (name, label).
    pub async fn objects(&self) -> Result<Vec<(String, String)>, NodeError> {
        let url = self.url("/sobjects");
        let (answer, _) = self
            .api
            .get_json("listing the objects", |c| c.get(&url))
            .await
            .map_err(|e| NodeError::msg(salesforce_words(&e.message)))?;
        Ok(answer["sobjects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["queryable"].as_bool().unwrap_or(true))
            .filter_map(|o| {
                Some((
                    o["name"].as_str()?.to_string(),
                    o["label"].as_str().unwrap_or_default().to_string(),
                ))
            })
            .collect())
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
            compound_field_name: None,
            precision: 18,
            scale: 2,
        }
    }

    #[test]
    fn an_empty_bulk_cell_is_null_for_every_type() {
        for kind in [
            "string", "textarea", "picklist", "double", "date", "boolean", "datetime",
        ] {
            assert_eq!(field(kind).normalize(json!("")), Value::Null, "{kind}");
        }
        assert_eq!(field("string").normalize(json!("x")), json!("x"));
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
        assert_eq!(field("boolean").normalize(json!("true")), json!(true));
        // A decimal is read from its text, as the Bulk CSV has it, or from the number.
        assert_eq!(
            field("currency").normalize(json!("1250.5")),
            json!("1250.5")
        );
        assert_eq!(field("currency").normalize(json!(1250.5)), json!(1250.5));
        assert_eq!(field("int").normalize(json!("42")), json!(42));
        assert_eq!(field("double").normalize(json!("")), Value::Null);
        // Salesforce keeps no empty text: through either API it is null.
        assert_eq!(field("string").normalize(json!("")), Value::Null);
        assert_eq!(
            field("datetime").normalize(json!("2026-11-27T10:00:00.000+0000")),
            json!("2026-11-27T10:00:00.000+00:00")
        );
        assert_eq!(
            field("datetime").normalize(json!("2026-11-27T10:00:00.000Z")),
            json!("2026-11-27T10:00:00.000Z")
        );
    }
}
