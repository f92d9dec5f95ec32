//! Google Ads, through the Google Ads API's REST interface: an entity is a resource
//! (`campaign`, `ad_group`, `keyword_view`), listed with its selectable fields and their
//! types by the field service (`googleAdsFields`); a read is a Google Ads Query Language
//! query built from the node's fields and conditions, streamed by `searchStream` (a
//! preview pages through `search` instead, and reads no more than it shows).
//!
//! Every request carries `login-customer-id` when the account is reached through a manager
//! account, and the developer token when the connection has one (a secret in the vault;
//! Google no longer requires it since September 2026).
//! Reports settle for days (conversions arrive late), so an incremental pull by
//! `segments.date` reads the last `lookback_days` again, as Google Analytics does.

use arrow::datatypes::DataType;
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::framework::catalog::{
    Catalog, Client, EntityDetail, Field, Options, Pages, ReadRequest, option_date,
};
use super::framework::service::Capabilities;
use super::framework::{ConnectorError, Service, service};
use super::google;
use crate::auth::ConnectorAuth;
use crate::auth::sign_in::{ServiceSecret, Setting, setting};
use crate::conditions::{Condition, Operator};
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;

pub struct GoogleAds;

/// The field incremental pulls go by.
const DATE: &str = "segments.date";

impl Service for GoogleAds {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&GoogleAds)
    }

    /// Reads the account's name and currency: the sign-in, the developer token and the
    /// customer id all have to be right for that.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let client = service::client(self, dirs, name);
        Box::pin(async move {
            let client = client?;
            let query = "SELECT customer.descriptive_name, customer.currency_code FROM customer";
            let answer = search(&client, query, None).await?;
            let customer = &answer["results"][0]["customer"];
            Ok(format!(
                "connected to {} ({}, amounts in {})",
                customer["descriptiveName"]
                    .as_str()
                    .unwrap_or("the account"),
                customer_id(&client)?,
                customer["currencyCode"].as_str().unwrap_or("its currency"),
            ))
        })
    }

    fn entity_word(&self) -> &'static str {
        "resource"
    }

    fn icon(&self) -> &'static str {
        "📣"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            entities: true,
            filters: super::framework::service::ALL_OPERATORS,
            incremental: true,
            writes: &[],
        }
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "google_ads",
    label: "Google Ads",
    kinds: google::KINDS,
    settings: &[
        Setting {
            required: true,
            ..setting(
                "customer_id",
                "Customer id",
                "The Google Ads account to read, as Google Ads shows it: 123-456-7890.",
            )
        },
        setting(
            "login_customer_id",
            "Manager account",
            "The customer id of the manager account through which the user reaches that account, if that is how; empty otherwise.",
        ),
        google::CLIENT_ID,
        google::CALLBACK_PORT,
        Setting {
            default: Some("https://googleads.googleapis.com"),
            ..setting(
                "instance_url",
                "API address",
                "The Google Ads API's address; Google's unless told otherwise.",
            )
        },
        Setting {
            default: Some("v26"),
            ..setting(
                "api_version",
                "API version",
                "The Google Ads API version to speak; Google retires each about a year after it comes out.",
            )
        },
        google::LOGIN_URL,
        google::TOKEN_URL,
    ],
    oauth: Some(google::oauth(&["https://www.googleapis.com/auth/adwords"])),
    secrets: &[ServiceSecret {
        key: "developer_token",
        header: "developer-token",
        // Google retired developer tokens in September 2026: access now comes with the
        // Cloud project of the OAuth client, and the header is ignored. Kept for
        // accounts and versions that still read it.
        required: false,
    }],
};

/// The Google Ads source's `options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "GoogleAdsReadOptions")]
pub struct ReadOptions {
    /// The days a report over `segments.date` covers, as Google Ads names ranges:
    /// `LAST_30_DAYS`, `LAST_7_DAYS`, `THIS_MONTH`, `LAST_MONTH`, `YESTERDAY`… Used
    /// unless `start_date` is set.
    #[serde(default = "during")]
    pub during: String,
    /// The first day (`2026-01-01`) of a report over `segments.date`; an incremental pull
    /// starts here on its first run only (30 days back when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// The last day of a report that is not incremental, with `start_date`; today when
    /// empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Days an incremental pull reads again before where the last run got to:
    /// conversions are counted against the day of the click, days later.
    #[serde(default = "lookback_days")]
    pub lookback_days: u32,
}

fn during() -> String {
    "LAST_30_DAYS".into()
}
fn lookback_days() -> u32 {
    7
}

impl Catalog for GoogleAds {
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async move {
            let query = "SELECT name, category WHERE category = 'RESOURCE'";
            let mut names: Vec<String> = search_fields(&client, query)
                .await?
                .iter()
                .filter_map(|f| f["name"].as_str().map(String::from))
                .collect();
            names.sort();
            Ok(names
                .into_iter()
                .map(|name| Entity {
                    label: name.clone(),
                    name,
                })
                .collect())
        })
    }

    fn describe(
        &self,
        client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        Box::pin(async move { describe(&client, &entity).await })
    }

    fn read(
        &self,
        client: Client,
        request: ReadRequest,
        pages: Pages,
    ) -> BoxFuture<Result<(), ConnectorError>> {
        Box::pin(async move { read(&client, request, pages).await })
    }

    fn read_options(&self) -> Option<Options> {
        Some(Options::of::<ReadOptions>())
    }
}

/// Google's error bodies in words, with what to do about Google Ads'.
fn in_words(message: &str) -> String {
    google::in_words(message, |status| match status {
        "RESOURCE_EXHAUSTED" => {
            " (the developer token's daily operations, or the account's requests per minute, are used up; try again later)"
        }
        "PERMISSION_DENIED" => {
            " (the signed-in user or the developer token may not read this account: check customer_id, and set login_customer_id when the account is reached through a manager account)"
        }
        "UNAUTHENTICATED" => " (log in again)",
        _ => "",
    })
    .replace(
        "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION:",
        "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION (the OAuth client's Google Cloud project has Test access, which reads test accounts only: apply for Explorer or Basic access on its Google Ads API Overview page in the Cloud console):",
    )
}

/// The API's versioned address.
fn api(client: &Client) -> String {
    let version = client
        .setting("api_version")
        .unwrap_or_else(|| "v26".into());
    client.url(&format!("/{version}"))
}

/// A customer id as the API takes it: ten digits, without the dashes Google Ads shows.
fn digits(id: &str, setting: &str) -> Result<String, ConnectorError> {
    let digits: String = id.chars().filter(|c| *c != '-').collect();
    match digits.len() == 10 && digits.chars().all(|c| c.is_ascii_digit()) {
        true => Ok(digits),
        false => Err(ConnectorError::fatal(format!(
            "`{id}` is not a Google Ads customer id (`{setting}`): write it as 123-456-7890"
        ))),
    }
}

fn customer_id(client: &Client) -> Result<String, ConnectorError> {
    let id = client.setting("customer_id").unwrap_or_default();
    digits(&id, "customer_id")
}

/// The manager account the account is reached through, if any: every request of the
/// account names it in `login-customer-id`.
fn manager(client: &Client) -> Result<Option<String>, ConnectorError> {
    match client.setting("login_customer_id") {
        Some(id) if !id.trim().is_empty() => digits(id.trim(), "login_customer_id").map(Some),
        _ => Ok(None),
    }
}

/// A POST of a query to the account, with the manager account's header.
fn post_query(
    c: &reqwest::Client,
    url: &str,
    manager: &Option<String>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let request = c.post(url).json(body);
    match manager {
        Some(id) => request.header("login-customer-id", id),
        None => request,
    }
}

/// Every field the field service answers `query` with, page by page.
async fn search_fields(client: &Client, query: &str) -> Result<Vec<Value>, ConnectorError> {
    let url = format!("{}/googleAdsFields:search", api(client));
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"query": query});
        if let Some(t) = &token {
            body["pageToken"] = json!(t);
        }
        let (answer, _) = client
            .api
            .get_json("reading the Google Ads field catalog", |c| {
                c.post(&url).json(&body)
            })
            .await
            .map_err(|e| e.map_message(in_words))?;
        out.extend(answer["results"].as_array().into_iter().flatten().cloned());
        match answer["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The Arrow type of a field service data type; `None` for messages, which are read by
/// their parts.
fn arrow_type(data_type: &str) -> Option<DataType> {
    Some(match data_type {
        "INT32" | "INT64" | "UINT64" => DataType::Int64,
        "DOUBLE" | "FLOAT" => DataType::Float64,
        "BOOLEAN" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "MESSAGE" => return None,
        _ => DataType::Utf8,
    })
}

/// The operators GAQL's `WHERE` takes on a field of a type.
fn operators(data_type: &str) -> Vec<Operator> {
    match data_type {
        "STRING" => vec![Operator::EqualTo, Operator::NotEqualTo, Operator::Contains],
        "ENUM" | "RESOURCE_NAME" | "BOOLEAN" => vec![Operator::EqualTo, Operator::NotEqualTo],
        "MESSAGE" => Vec::new(),
        _ => super::framework::service::ALL_OPERATORS
            .iter()
            .copied()
            .filter(|o| *o != Operator::Contains)
            .collect(),
    }
}

/// A resource's fields: its own attributes, the segments and metrics it can be read with,
/// and the attributes of the resources it is attributed to (an ad group's campaign).
async fn describe(client: &Client, resource: &str) -> Result<EntityDetail, ConnectorError> {
    if let Some((owner, _)) = resource.split_once('.') {
        return Err(ConnectorError::not_found(format!(
            "`{resource}` is a field, not a resource: choose the resource it belongs to ({owner})"
        )));
    }
    if resource.is_empty() || !resource.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(ConnectorError::not_found(format!(
            "`{resource}` is not a Google Ads resource: resources are named like campaign or ad_group"
        )));
    }
    let url = format!("{}/googleAdsFields/{resource}", api(client));
    let (artifact, _) = client
        .api
        .get_json(&format!("reading the resource {resource}"), |c| c.get(&url))
        .await
        .map_err(|e| match e.status {
            Some(404) => {
                ConnectorError::not_found(format!("Google Ads has no resource `{resource}`"))
            }
            _ => e.map_message(in_words),
        })?;
    if artifact["category"] != "RESOURCE" {
        return Err(ConnectorError::not_found(format!(
            "`{resource}` is a field, not a resource: choose the resource it belongs to"
        )));
    }
    let listed = |key: &str| -> Vec<String> {
        (artifact[key].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let (segments, metrics) = (listed("segments"), listed("metrics"));
    let mut owners = vec![resource.to_string()];
    owners.extend(listed("attributeResources"));

    let query = "SELECT name, category, data_type, selectable, filterable, is_repeated \
                 WHERE category IN ('ATTRIBUTE', 'SEGMENT', 'METRIC') AND selectable = true";
    let catalog = search_fields(client, query).await?;
    let rank = |f: &Value| -> Option<usize> {
        let name = f["name"].as_str()?;
        let owner = name.split('.').next()?;
        match f["category"].as_str()? {
            "ATTRIBUTE" if owner == resource => Some(0),
            "SEGMENT" if segments.iter().any(|s| s == name) => Some(1),
            "METRIC" if metrics.iter().any(|m| m == name) => Some(2),
            "ATTRIBUTE" if owners.iter().any(|o| o == owner) => Some(3),
            _ => None,
        }
    };
    let mut chosen: Vec<(usize, &Value)> =
        catalog.iter().filter_map(|f| Some((rank(f)?, f))).collect();
    chosen.sort_by_key(|(rank, f)| (*rank, f["name"].as_str().map(String::from)));

    let mut fields = Vec::new();
    let mut left_out = Vec::new();
    for (_, f) in chosen {
        let name = f["name"].as_str().unwrap_or_default().to_string();
        let kind = f["dataType"].as_str().unwrap_or("STRING");
        if f["isRepeated"] == true {
            left_out.push((name, "holds a list, which Tributary does not read".into()));
            continue;
        }
        let Some(data_type) = arrow_type(kind) else {
            left_out.push((name, "is a message; choose its parts instead".into()));
            continue;
        };
        fields.push(Field {
            label: name.clone(),
            filters: match f["filterable"] == true {
                true => operators(kind),
                false => Vec::new(),
            },
            cursor: name == DATE,
            data_type,
            name,
        });
    }
    Ok(EntityDetail {
        name: resource.to_string(),
        label: resource.to_string(),
        default_cursor: fields.iter().any(|f| f.name == DATE).then(|| DATE.into()),
        fields,
        id_field: None,
        writes: Vec::new(),
        required: Vec::new(),
        left_out,
        restated: true,
        change_log: None,
    })
}

/// Reads the query's rows: streamed, or for a preview page by page up to its limit.
async fn read(client: &Client, request: ReadRequest, pages: Pages) -> Result<(), ConnectorError> {
    let query = query(&request, &client.options()?)?;
    let customer = customer_id(client)?;
    if request.limit.is_some() {
        let mut token = None;
        loop {
            let answer = search(client, &query, token.as_deref()).await?;
            let records = rows(&request, &answer["results"]);
            if !records.is_empty() && pages.send(records).await.is_err() {
                return Ok(());
            }
            match answer["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(()),
            }
        }
    }
    let url = format!(
        "{}/customers/{customer}/googleAds:searchStream",
        api(client)
    );
    let what = format!("the {} query of customer {customer}", request.entity.name);
    let (manager, body) = (manager(client)?, json!({"query": query}));
    let mut response = client
        .api
        .send(&what, |c| post_query(c, &url, &manager, &body))
        .await
        .map_err(|e| e.map_message(in_words))?;
    let mut elements = ArrayElements::default();
    let mut consumed = 0;
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| ConnectorError::transient(format!("{what}: the answer broke off: {e}")))?;
        let Some(chunk) = chunk else { break };
        for element in elements.push(&chunk) {
            let batch: Value = serde_json::from_slice(&element).map_err(|e| {
                ConnectorError::fatal(format!("{what}: a batch of the answer is not JSON: {e}"))
            })?;
            if batch.get("error").is_some() {
                return Err(ConnectorError::fatal(in_words(&format!("{what}: {batch}"))));
            }
            if let Some(n) =
                (batch["queryResourceConsumption"].as_str()).and_then(|n| n.parse::<u64>().ok())
            {
                consumed += n;
                request.notes.set("query_resource_consumption", consumed);
            }
            let records = rows(&request, &batch["results"]);
            if !records.is_empty() && pages.send(records).await.is_err() {
                return Ok(());
            }
        }
    }
    elements
        .finish()
        .map_err(|e| ConnectorError::transient(format!("{what}: {e}")))
}

/// One page of `search`, for previews and the connection check.
async fn search(
    client: &Client,
    query: &str,
    token: Option<&str>,
) -> Result<Value, ConnectorError> {
    let customer = customer_id(client)?;
    let url = format!("{}/customers/{customer}/googleAds:search", api(client));
    let mut body = json!({"query": query});
    if let Some(t) = token {
        body["pageToken"] = json!(t);
    }
    let manager = manager(client)?;
    let (answer, _) = client
        .api
        .get_json(&format!("a query of customer {customer}"), |c| {
            post_query(c, &url, &manager, &body)
        })
        .await
        .map_err(|e| e.map_message(in_words))?;
    Ok(answer)
}

/// The GAQL query of a read: the fields, the node's conditions, the days of the report.
fn query(request: &ReadRequest, options: &ReadOptions) -> Result<String, ConnectorError> {
    let mut clauses: Vec<String> = request
        .conditions
        .iter()
        .map(|c| condition(&request.entity, c))
        .collect::<Result<_, _>>()?;
    if request.fields.iter().any(|f| f == DATE) {
        clauses.push(days(request, options)?);
    }
    let mut query = format!(
        "SELECT {} FROM {}",
        request.fields.join(", "),
        request.entity.name
    );
    if !clauses.is_empty() {
        query += &format!(" WHERE {}", clauses.join(" AND "));
    }
    if let Some(limit) = request.limit {
        query += &format!(" LIMIT {limit}");
    }
    Ok(query)
}

/// The days of a report over `segments.date`, which Google Ads requires to be finite.
fn days(request: &ReadRequest, options: &ReadOptions) -> Result<String, ConnectorError> {
    let start = (options.start_date.as_deref())
        .map(|d| option_date(d, "start_date"))
        .transpose()?;
    let range = |(from, to): (NaiveDate, NaiveDate)| format!("{DATE} BETWEEN '{from}' AND '{to}'");
    if let Some(days) = request.report_days(options.lookback_days, start) {
        return Ok(range(days));
    }
    if let Some(start) = start {
        let end = match &options.end_date {
            Some(end) => option_date(end, "end_date")?,
            None => chrono::Utc::now().date_naive(),
        };
        return Ok(range((start, end)));
    }
    let during = options.during.trim();
    let named = during
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if during.is_empty() || !named {
        return Err(ConnectorError::fatal(format!(
            "the option `during` is `{during}`, not a range such as LAST_30_DAYS"
        )));
    }
    Ok(format!("{DATE} DURING {during}"))
}

/// A condition in GAQL.
fn condition(entity: &EntityDetail, c: &Condition) -> Result<String, ConnectorError> {
    let field = entity.field(&c.field).ok_or_else(|| {
        ConnectorError::fatal(format!("`{}` is not a field of {}", c.field, entity.name))
    })?;
    let literal = |v: &Value| literal(&field.data_type, v);
    let list = |v: &Value| -> Result<String, ConnectorError> {
        let items = v.as_array().map_or_else(|| vec![v.clone()], Clone::clone);
        let items: Vec<String> = items.iter().map(literal).collect::<Result<_, _>>()?;
        Ok(format!("({})", items.join(", ")))
    };
    let name = &field.name;
    Ok(match (c.operator, &c.value) {
        (Operator::EqualTo, Value::Array(_)) => format!("{name} IN {}", list(&c.value)?),
        (Operator::NotEqualTo, Value::Array(_)) => format!("{name} NOT IN {}", list(&c.value)?),
        (Operator::EqualTo, v) => format!("{name} = {}", literal(v)?),
        (Operator::NotEqualTo, v) => format!("{name} != {}", literal(v)?),
        (Operator::LessThan, v) => format!("{name} < {}", literal(v)?),
        (Operator::LessThanOrEqualTo, v) => format!("{name} <= {}", literal(v)?),
        (Operator::GreaterThan, v) => format!("{name} > {}", literal(v)?),
        (Operator::GreaterThanOrEqualTo, v) => format!("{name} >= {}", literal(v)?),
        (Operator::Between, Value::Array(pair)) if pair.len() == 2 => format!(
            "{name} BETWEEN {} AND {}",
            literal(&pair[0])?,
            literal(&pair[1])?
        ),
        (Operator::Between, _) => return Err(ConnectorError::fatal("`between` takes [low, high]")),
        (Operator::Contains, v) => {
            let text = quoted(&like_escaped(&text_of(v)));
            format!("{name} LIKE '%{}%'", &text[1..text.len() - 1])
        }
    })
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value in GAQL: numbers bare (and checked), everything else a quoted string.
fn literal(data_type: &DataType, value: &Value) -> Result<String, ConnectorError> {
    match data_type {
        DataType::Int64 | DataType::Float64 => {
            let text = text_of(value);
            text.parse::<f64>()
                .map(|_| text.clone())
                .map_err(|_| ConnectorError::fatal(format!("`{text}` is not a number")))
        }
        DataType::Boolean => match text_of(value).as_str() {
            "true" | "TRUE" => Ok("TRUE".into()),
            "false" | "FALSE" => Ok("FALSE".into()),
            other => Err(ConnectorError::fatal(format!(
                "`{other}` is not true or false"
            ))),
        },
        _ => Ok(quoted(&text_of(value))),
    }
}

/// A GAQL string literal: in single quotes, with backslashes and quotes escaped.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Text matched literally by `LIKE`: its wildcards in brackets, as GAQL escapes them.
fn like_escaped(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '%' | '_' | '[' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

/// The records of a batch of result rows: each field found by its path, in camel case as
/// the JSON answer spells it (`metrics.cost_micros` is `metrics.costMicros`), in its type.
fn rows(request: &ReadRequest, results: &Value) -> Vec<Map<String, Value>> {
    let paths: Vec<(&String, Vec<String>)> = request
        .fields
        .iter()
        .map(|f| (f, f.split('.').map(camel).collect()))
        .collect();
    (results.as_array().into_iter().flatten())
        .map(|row| {
            paths
                .iter()
                .map(|(name, path)| {
                    let found = path.iter().try_fold(row, |v, key| v.get(key));
                    let value = found.map_or(Value::Null, |v| typed(request, name, v));
                    (name.to_string(), value)
                })
                .collect()
        })
        .collect()
}

fn camel(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut upper = false;
    for c in part.chars() {
        match (c, upper) {
            ('_', _) => upper = true,
            (c, true) => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            (c, false) => out.push(c),
        }
    }
    out
}

/// A value in its field's type: 64-bit integers come as text in JSON.
fn typed(request: &ReadRequest, name: &str, value: &Value) -> Value {
    match (request.entity.field(name).map(|f| &f.data_type), value) {
        (Some(DataType::Int64), Value::String(s)) => {
            s.parse::<i64>().map_or(value.clone(), Value::from)
        }
        (Some(DataType::Float64), Value::String(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(value.clone(), Value::Number),
        _ => value.clone(),
    }
}

/// The elements of a JSON array that arrives in pieces (a `searchStream` answer, one
/// element per batch of up to 10,000 rows), each as soon as it is whole, so that a large
/// report is never held at once.
#[derive(Default)]
struct ArrayElements {
    pending: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Where the element being read starts in `pending`.
    start: Option<usize>,
    seen_array: bool,
}

impl ArrayElements {
    /// Takes the next piece; returns the elements it completed.
    fn push(&mut self, piece: &[u8]) -> Vec<Vec<u8>> {
        let from = self.pending.len();
        self.pending.extend_from_slice(piece);
        let mut done = Vec::new();
        for i in from..self.pending.len() {
            let b = self.pending[i];
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    self.seen_array = true;
                    if self.depth == 2 {
                        self.start = Some(i);
                    }
                }
                b'}' | b']' => {
                    if self.depth == 2
                        && let Some(start) = self.start.take()
                    {
                        done.push(self.pending[start..=i].to_vec());
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                _ => {}
            }
        }
        // Keep only the element being read.
        let keep = self.start.unwrap_or(self.pending.len());
        self.pending.drain(..keep);
        if let Some(start) = &mut self.start {
            *start = 0;
        }
        done
    }

    /// Whether the array was whole.
    fn finish(&self) -> Result<(), String> {
        match self.seen_array && self.depth == 0 {
            true => Ok(()),
            false => Err("the answer ended before its last batch".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_split_into_its_batches_whatever_the_pieces() {
        let text = r#"[{"results":[{"campaign":{"name":"a ]}\" [{"}}],"x":1},
            {"results":[]}]"#;
        for size in [1, 2, 5, 7, 1000] {
            let mut elements = ArrayElements::default();
            let mut found = Vec::new();
            for piece in text.as_bytes().chunks(size) {
                found.extend(elements.push(piece));
            }
            elements.finish().unwrap();
            let found: Vec<Value> = found
                .iter()
                .map(|e| serde_json::from_slice(e).unwrap())
                .collect();
            assert_eq!(found.len(), 2, "pieces of {size}");
            assert_eq!(found[0]["results"][0]["campaign"]["name"], "a ]}\" [{");
        }
        let mut cut = ArrayElements::default();
        cut.push(br#"[{"results":[]},{"res"#);
        assert!(cut.finish().is_err());
    }

    #[test]
    fn names_are_camel_cased_as_the_json_answer_spells_them() {
        assert_eq!(camel("cost_micros"), "costMicros");
        assert_eq!(camel("ad_group_criterion"), "adGroupCriterion");
        assert_eq!(camel("date"), "date");
    }

    #[test]
    fn conditions_become_gaql() {
        let entity = EntityDetail {
            name: "campaign".into(),
            label: "campaign".into(),
            fields: vec![
                Field {
                    name: "campaign.name".into(),
                    label: String::new(),
                    data_type: DataType::Utf8,
                    filters: operators("STRING"),
                    cursor: false,
                },
                Field {
                    name: "metrics.clicks".into(),
                    label: String::new(),
                    data_type: DataType::Int64,
                    filters: operators("INT64"),
                    cursor: false,
                },
            ],
            id_field: None,
            default_cursor: None,
            writes: Vec::new(),
            required: Vec::new(),
            left_out: Vec::new(),
            restated: true,
            change_log: None,
        };
        let gaql = |field: &str, operator, value| {
            condition(&entity, &Condition::new(field, operator, value))
        };
        assert_eq!(
            gaql(
                "campaign.name",
                Operator::EqualTo,
                json!(["Brand", "O'Brien"])
            )
            .unwrap(),
            r"campaign.name IN ('Brand', 'O\'Brien')"
        );
        assert_eq!(
            gaql("campaign.name", Operator::Contains, json!("50%_off")).unwrap(),
            "campaign.name LIKE '%50[%][_]off%'"
        );
        assert_eq!(
            gaql("metrics.clicks", Operator::Between, json!([10, 20])).unwrap(),
            "metrics.clicks BETWEEN 10 AND 20"
        );
        let err = gaql("metrics.clicks", Operator::GreaterThan, json!("ten")).unwrap_err();
        assert!(err.message.contains("`ten` is not a number"), "{err:?}");
    }
}
