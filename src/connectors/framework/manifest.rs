//! The manifest format, `tributary.connector/1`: a connector declared in a JSON file
//! instead of written in Rust. Most SaaS APIs are JSON over HTTPS, paged, with an
//! updated-at cursor; a manifest says where the entities are, how the API pages, which
//! query parameters filter, which one asks for changes since an instant, and where writes
//! go. [`super::declared`] turns one into a service like any other.
//!
//! These types are the format's reference: their doc comments become the descriptions of
//! the published JSON Schema (`assets/connector.schema.json`).

use std::collections::BTreeSet;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::Operation;
use crate::auth::AuthKind;
use crate::conditions::Operator;
use crate::connectors::pages::{Envelope, Pagination};
use crate::types::FieldType;

/// The format this version of Tributary reads.
pub const FORMAT: &str = "tributary.connector/1";

/// A connector declared in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Tributary connector manifest")]
pub struct Manifest {
    /// Where the schema of this format is, for editors; not read.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The format and its version: `tributary.connector/1`.
    pub format: String,
    /// The service's id: what connections name as their `connector`, and the node types
    /// `source.<id>` and `destination.<id>`. Lower-case letters, digits and `_`.
    pub id: String,
    /// Its name in the palette, the Connections window and messages, e.g. `Zendesk`.
    pub label: String,
    /// The symbol of its nodes: one emoji or letter.
    #[serde(default = "plug")]
    pub icon: String,
    /// What the service calls its entities: `object`, `table`, `conversation`.
    #[serde(default = "object")]
    pub entity_word: String,
    /// The API's address when a connection names none, e.g. `https://slack.com`. Without
    /// one, each connection says its own as its `instance_url` setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// An example instance URL for the connection form, e.g. `https://acme.zendesk.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_url_example: Option<String>,
    /// How connections sign in.
    pub sign_in: SignIn,
    /// A request that needs the credentials, which a connection's Test sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// How the API reports failures, and the words for its error codes.
    #[serde(default)]
    pub errors: Envelope,
    /// Headers every request sends, e.g. an API version. Not for credentials: those come
    /// from the connection.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// What the service holds.
    pub entities: Vec<EntityDecl>,
}

fn plug() -> String {
    "🔌".into()
}

fn object() -> String {
    "object".into()
}

/// How a connection signs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The kinds of sign-in offered, first the usual one: `oauth2`, `api_key`, `basic`,
    /// `oauth2_client_credentials`.
    pub kinds: Vec<AuthKind>,
    /// The OAuth 2.0 endpoints, for `oauth2` and `oauth2_client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthDecl>,
    /// Where an API key or token goes, for `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyDecl>,
    /// What the user name is, for `basic`: e.g. "your email, then /token".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_help: Option<String>,
}

/// OAuth 2.0 endpoints. `{instance_url}` (and any other setting in braces) is filled from
/// the connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthDecl {
    pub authorize: String,
    pub token: String,
    /// Scopes asked for unless the connection says others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Where an API key goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyDecl {
    /// The header that carries it, e.g. `Authorization`.
    pub header: String,
    /// Text before the key, e.g. `Bearer `.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// A request that answers only when signed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Its path below the API's address, e.g. `/api/v2/users/me.json`.
    pub path: String,
    /// `get` or `post`.
    #[serde(default)]
    pub method: HttpMethod,
    /// A dot path to who the credentials belong to in the answer, e.g. `user.email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

/// One entity: an endpoint to read, and the endpoints that write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityDecl {
    /// Its name in flows, e.g. `tickets`.
    pub name: String,
    /// Its name in the object browser, e.g. `Tickets`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// The field that identifies a record, e.g. `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
    /// Its fields with their types: `string`, `integer`, `number`, `boolean`, `date`,
    /// `timestamp`, `decimal(p,s)`.
    pub fields: Vec<FieldDecl>,
    /// Fields each account adds to the entity, listed by a request (Zendesk's custom
    /// ticket fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFieldsDecl>,
    /// How it is read; without it the entity only takes writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<ReadDecl>,
    /// How it is written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<WriteDecl>,
}

/// Fields an account adds to an entity: a request lists them, and each record carries
/// their values in a list of `{id, value}` objects, as Zendesk's `custom_fields`. They are
/// offered as fields named `prefix` + id (`custom_360001`), labelled with their titles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldsDecl {
    /// The path of the request that lists them, e.g. `/api/v2/ticket_fields.json`.
    pub path: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Where the list is in its answer, e.g. `ticket_fields`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub records: String,
    #[serde(default)]
    pub pagination: Pagination,
    /// Only the entries for which this dot path is true, e.g. `removable` (Zendesk lists
    /// its own fields too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    /// Where an entry's id is.
    #[serde(default = "id")]
    pub id: String,
    /// Where its title is.
    pub label: String,
    /// Where its kind is, e.g. `type`.
    pub kind: String,
    /// The field type of each kind, e.g. `{"integer": "integer", "checkbox": "boolean"}`;
    /// other kinds are text.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub types: IndexMap<String, FieldType>,
    /// The start of their field names.
    #[serde(default = "custom_prefix")]
    pub prefix: String,
    /// Where a record's list of values is, e.g. `custom_fields`.
    pub values: String,
}

fn id() -> String {
    "id".into()
}

fn custom_prefix() -> String {
    "custom_".into()
}

/// A field of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Where the value is in a record when not at its name: a dot path such as
    /// `via.channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How the API writes instants of this field: `rfc3339` or `unix_seconds` (a number
    /// or text of seconds, with or without a fraction: `1700000000`, `"1700000000.000200"`).
    #[serde(default, skip_serializing_if = "TimeFormat::is_default")]
    pub format: TimeFormat,
}

/// How an API writes an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    #[default]
    Rfc3339,
    UnixSeconds,
}

impl TimeFormat {
    fn is_default(&self) -> bool {
        *self == TimeFormat::Rfc3339
    }
}

/// How an entity is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadDecl {
    /// The first page's path below the API's address, e.g. `/api/v2/groups.json`.
    pub path: String,
    /// Query parameters of every page, e.g. `{"page[size]": "100"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// Where the records are in an answer: a dot path such as `tickets`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub records: String,
    /// How the API hands out the pages after the first: as `source.rest`'s `pagination`.
    #[serde(default)]
    pub pagination: Pagination,
    /// Conditions the API applies itself, each a query parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterDecl>,
    /// How to ask for the records changed since an instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalDecl>,
    /// More pages than this is an error.
    #[serde(default = "max_pages")]
    pub max_pages: u64,
}

fn max_pages() -> u64 {
    100_000
}

/// A condition the API applies: `field` `operator` value becomes `param=value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterDecl {
    pub field: String,
    pub operator: Operator,
    pub param: String,
    /// How the parameter writes an instant, for a timestamp field: `rfc3339` or
    /// `unix_seconds`.
    #[serde(default, skip_serializing_if = "TimeFormat::is_default")]
    pub format: TimeFormat,
    /// The API reads the entity only with this condition (Slack's history of one
    /// conversation needs its `channel`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// How an incremental pull asks for what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalDecl {
    /// The timestamp field that says when a record last changed, e.g. `updated_at`.
    pub field: String,
    /// The query parameter that takes the instant to read from, e.g. `start_time`.
    pub param: String,
    /// How the parameter writes the instant.
    #[serde(default, skip_serializing_if = "TimeFormat::is_default")]
    pub format: TimeFormat,
    /// What a read with no instant to start from sends (a whole read, or an incremental
    /// one's first run) when the API needs the parameter: Zendesk's exports need a
    /// `start_time`, `0`. Nothing when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Further query parameters that go with `param`, e.g. `{"inclusive": "true"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
}

/// An endpoint that writes records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteDecl {
    pub operation: Operation,
    #[serde(default = "post")]
    pub method: HttpMethod,
    /// The path, with `{field}` filled from the record, e.g. `/api/v2/tickets/{id}.json`.
    pub path: String,
    /// The fields that find the record to change (update, upsert, delete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// The JSON body: `"{record}"` stands for the record's fields (but the keys), and a
    /// text that is exactly `"{field}"` for that field's value; other texts have their
    /// `{field}`s filled in. Without it the body is the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Many records in one request that starts a job on the service's side, for large
    /// writes (Zendesk's `create_many`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkDecl>,
}

/// A write of many records at once: one request starts a job, which is asked after until
/// it is done and then says of each record whether it was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecl {
    #[serde(default = "post")]
    pub method: HttpMethod,
    /// e.g. `/api/v2/tickets/create_many.json`.
    pub path: String,
    /// The body, in which `"{records}"` stands for the list of records (keys included).
    pub body: Value,
    /// The most records one request takes.
    pub max: usize,
    /// Fewer records than this go one by one, by the write's own `path`.
    #[serde(default = "two")]
    pub min: usize,
    pub job: JobDecl,
}

fn two() -> usize {
    2
}

/// How a bulk write's job is followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobDecl {
    /// Where the job's id is in the answer that started it, e.g. `job_status.id`.
    pub id: String,
    /// The path that tells how the job is doing, with `{id}`, e.g.
    /// `/api/v2/job_statuses/{id}.json`.
    pub poll: String,
    /// Where its state is, e.g. `job_status.status`.
    pub status: String,
    /// The states of a job that has finished: its results say what became of each record.
    pub done: Vec<String>,
    /// The states of a job that stopped: records its results do not name as taken are
    /// refused with its `message`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Where its message is, e.g. `job_status.message`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Where the list of results is, e.g. `job_status.results`.
    pub results: String,
    /// In a result: the record's place in the request (else the result's own place).
    #[serde(default = "index")]
    pub index: String,
    /// In a result: the error, present only when the record was refused.
    #[serde(default = "error")]
    pub error: String,
    /// In a result: what is wrong, shown after the error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// Seconds between two asks.
    #[serde(default = "one")]
    pub every: f64,
    /// Seconds after which a job that has not finished fails the write.
    #[serde(default = "hour")]
    pub timeout: f64,
}

fn index() -> String {
    "index".into()
}

fn error() -> String {
    "error".into()
}

fn one() -> f64 {
    1.0
}

fn hour() -> f64 {
    3600.0
}

fn post() -> HttpMethod {
    HttpMethod::Post
}

impl Manifest {
    /// Reads a manifest, with a message naming the line and column of what is wrong.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut reader = serde_json::Deserializer::from_str(text);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let at = crate::serde_words::pointer_from_serde_path(e.path());
            let inner = e.inner();
            format!(
                "line {}, column {}{}: {}",
                inner.line(),
                inner.column(),
                match at.is_empty() {
                    true => String::new(),
                    false => format!(" (at {at})"),
                },
                crate::serde_words::serde_in_words(crate::serde_words::strip_position(
                    &inner.to_string()
                ))
            )
        })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// What serde cannot say: names that must exist, ids in their alphabet.
    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "`format` is `{}`; this version of Tributary reads `{FORMAT}`",
                self.format
            ));
        }
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !id_ok {
            return Err(format!(
                "`id` `{}` may hold only lower-case letters, digits and `_`",
                self.id
            ));
        }
        if self.sign_in.kinds.is_empty() {
            return Err("`sign_in.kinds` names no kind of sign-in".into());
        }
        for kind in &self.sign_in.kinds {
            let ok = match kind {
                AuthKind::OAuth2 | AuthKind::OAuth2ClientCredentials | AuthKind::ServiceAccount => {
                    self.sign_in.oauth.is_some()
                }
                AuthKind::ApiKey => self.sign_in.api_key.is_some(),
                AuthKind::Basic | AuthKind::None => true,
                AuthKind::AccessKeys => false,
            };
            if !ok {
                return Err(format!(
                    "`sign_in.kinds` has `{}` but `sign_in` does not say how it works{}",
                    kind.name(),
                    match kind {
                        AuthKind::ApiKey => " (`api_key`)",
                        AuthKind::AccessKeys => ": it is for AWS only",
                        _ => " (`oauth`)",
                    }
                ));
            }
        }
        if let Some(url) = &self.base_url {
            crate::auth::http::check_url(url).map_err(|m| format!("`base_url`: {m}"))?;
        }
        let mut names = BTreeSet::new();
        for (i, entity) in self.entities.iter().enumerate() {
            let at = format!("entities[{i}] (`{}`)", entity.name);
            if !names.insert(&entity.name) {
                return Err(format!("{at}: a second entity of that name"));
            }
            entity.check().map_err(|m| format!("{at}: {m}"))?;
        }
        Ok(())
    }
}

impl EntityDecl {
    pub fn field(&self, name: &str) -> Option<&FieldDecl> {
        self.fields.iter().find(|f| f.name == name)
    }

    fn check(&self) -> Result<(), String> {
        let has = |name: &str, what: &str| match self.field(name) {
            Some(f) => Ok(f),
            None => Err(format!("{what} `{name}` is not one of its `fields`")),
        };
        if let Some(id) = &self.id_field {
            has(id, "`id_field`")?;
        }
        if let Some(read) = &self.read {
            if !read.path.starts_with('/') {
                return Err(format!("`read.path` `{}` must start with `/`", read.path));
            }
            for filter in &read.filters {
                has(&filter.field, "the filter's field")?;
            }
            if let Some(inc) = &read.incremental {
                let field = has(&inc.field, "`read.incremental.field`")?;
                if field.field_type != FieldType::Timestamp {
                    return Err(format!(
                        "`read.incremental.field` `{}` is a {}, not a timestamp",
                        inc.field, field.field_type
                    ));
                }
            }
        }
        for write in &self.writes {
            if !write.path.starts_with('/') {
                return Err(format!(
                    "a write's path `{}` must start with `/`",
                    write.path
                ));
            }
            for key in &write.keys {
                has(key, "the write's key")?;
            }
            if let Some(bulk) = &write.bulk {
                if !bulk.path.starts_with('/') || !bulk.job.poll.starts_with('/') {
                    return Err("a bulk write's `path` and `job.poll` must start with `/`".into());
                }
                if bulk.max == 0 || bulk.job.every <= 0.0 {
                    return Err("a bulk write's `max` and `job.every` must be more than 0".into());
                }
            }
        }
        if let Some(custom) = &self.custom_fields
            && !custom.path.starts_with('/')
        {
            return Err(format!(
                "`custom_fields.path` `{}` must start with `/`",
                custom.path
            ));
        }
        if self.read.is_none() && self.writes.is_empty() {
            return Err("it has neither `read` nor `writes`".into());
        }
        Ok(())
    }
}

/// The manifest format's JSON Schema, as `tributary schema --connector` prints it and
/// `assets/connector.schema.json` keeps it.
pub fn json_schema_text() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        serde_json::json!({
            "format": FORMAT,
            "id": "desk",
            "label": "Desk",
            "sign_in": {"kinds": ["basic"]},
            "entities": [{
                "name": "items",
                "fields": [{"name": "id", "type": "integer"}, {"name": "at", "type": "timestamp"}],
                "read": {"path": "/items", "incremental": {"field": "at", "param": "since"}}
            }]
        })
    }

    fn problem(change: impl FnOnce(&mut Value)) -> String {
        let mut m = minimal();
        change(&mut m);
        Manifest::parse(&serde_json::to_string_pretty(&m).unwrap()).unwrap_err()
    }

    #[test]
    fn the_built_in_manifests_are_valid() {
        for (file, text) in crate::connectors::BUILT_IN_MANIFESTS {
            Manifest::parse(text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        Manifest::parse(&minimal().to_string()).unwrap();
    }

    #[test]
    fn mistakes_are_named_with_where_they_are() {
        let e = problem(|m| m["entities"][0]["read"]["paginate"] = "x".into());
        assert!(
            e.starts_with("line 29, column 18 (at /entities/0/read/paginate)")
                && e.contains("unknown setting `paginate`"),
            "{e}"
        );
        let e = problem(|m| m["format"] = "tributary.connector/9".into());
        assert!(e.contains("reads `tributary.connector/1`"), "{e}");
        let e = problem(|m| m["id"] = "My Desk".into());
        assert!(e.contains("lower-case letters"), "{e}");
        let e = problem(|m| m["sign_in"]["kinds"] = serde_json::json!(["api_key"]));
        assert!(e.contains("`api_key`"), "{e}");
        let e = problem(|m| m["entities"][0]["read"]["incremental"]["field"] = "id".into());
        assert!(
            e.contains("entities[0] (`items`)") && e.contains("not a timestamp"),
            "{e}"
        );
        let e = problem(|m| m["entities"][0]["id_field"] = "key".into());
        assert!(
            e.contains("`id_field` `key` is not one of its `fields`"),
            "{e}"
        );
        let e = problem(|m| m["base_url"] = "http://api.example.com".into());
        assert!(e.contains("plain HTTP"), "{e}");
    }
}
