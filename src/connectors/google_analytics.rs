//! Google Analytics 4, through the Data API: an entity is a property
//! (`properties/123456789`, listed by the Admin API's account summaries); its fields are
//! the property's dimensions and metrics (`properties/…/metadata`, custom ones included);
//! a read is a report (`:runReport`) of the chosen dimensions and metrics over a range of
//! days, the node's conditions sent as dimension and metric filters, paged by
//! `limit`/`offset` until `rowCount`.
//!
//! GA4 keeps processing a day's data for up to 72 hours, so an incremental pull reads
//! again the last `lookback_days` before where the last run got to: the report restates
//! those days, and a destination partitioned by `date` with `replace_partitions` keeps
//! each day once, from the latest read.

use arrow::datatypes::DataType;
use chrono::{Duration, NaiveDate};
use serde_json::{Map, Value, json};

use super::framework::catalog::{
    Catalog, Client, EntityDetail, Field, Options, Pages, ReadRequest,
};
use super::framework::service::Capabilities;
use super::framework::{ConnectorError, Service, service};
use super::google;
use crate::auth::ConnectorAuth;
use crate::auth::sign_in::{Setting, setting};
use crate::conditions::{Condition, Operator};
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;

pub struct GoogleAnalytics;

impl Service for GoogleAnalytics {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&GoogleAnalytics)
    }

    /// Lists the properties the sign-in can see.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let client = service::client(self, dirs, name);
        Box::pin(async move {
            let properties = properties(&client?).await?;
            Ok(format!(
                "connected: {} propert{} to report on",
                properties.len(),
                if properties.len() == 1 { "y" } else { "ies" }
            ))
        })
    }

    fn entity_word(&self) -> &'static str {
        "property"
    }

    fn entity_plural(&self) -> Option<&'static str> {
        Some("properties")
    }

    fn icon(&self) -> &'static str {
        "📈"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            entities: true,
            filters: &[
                Operator::EqualTo,
                Operator::NotEqualTo,
                Operator::Contains,
                Operator::LessThan,
                Operator::GreaterThan,
                Operator::LessThanOrEqualTo,
                Operator::GreaterThanOrEqualTo,
                Operator::Between,
            ],
            incremental: true,
            writes: &[],
        }
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "google_analytics",
    label: "Google Analytics 4",
    kinds: google::KINDS,
    settings: &[
        Setting {
            default: Some("https://analyticsdata.googleapis.com"),
            ..setting(
                "instance_url",
                "Data API",
                "The Data API's address; Google's unless told otherwise.",
            )
        },
        Setting {
            default: Some("https://analyticsadmin.googleapis.com"),
            ..setting(
                "admin_url",
                "Admin API",
                "The Admin API's address, which lists the properties; Google's unless told otherwise.",
            )
        },
        google::LOGIN_URL,
        google::TOKEN_URL,
        google::CLIENT_ID,
        google::CALLBACK_PORT,
    ],
    oauth: Some(google::oauth(&[
        "https://www.googleapis.com/auth/analytics.readonly",
    ])),
    secrets: &[],
};

/// The Google Analytics source's `options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "GoogleAnalyticsReadOptions")]
pub struct ReadOptions {
    /// The first day of the report, as GA4 reads dates: `2026-01-01`, `30daysAgo`,
    /// `yesterday`. An incremental pull starts here on its first run only.
    #[serde(default = "start_date")]
    pub start_date: String,
    /// The last day of a report that is not incremental (`today`, `yesterday`, a date);
    /// an incremental pull reads up to the day the run started.
    #[serde(default = "end_date")]
    pub end_date: String,
    /// Days an incremental pull reads again before where the last run got to: GA4 keeps
    /// processing a day's data for up to three days.
    #[serde(default = "lookback_days")]
    pub lookback_days: u32,
    /// Rows asked for per request (`limit`); at most 250,000.
    #[serde(default = "page_size")]
    pub page_size: u64,
}

fn start_date() -> String {
    "30daysAgo".into()
}
fn end_date() -> String {
    "yesterday".into()
}
fn lookback_days() -> u32 {
    3
}
fn page_size() -> u64 {
    10_000
}

impl Catalog for GoogleAnalytics {
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async move { properties(&client).await })
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

    /// A report has at most 9 dimensions and 10 metrics, and at least one metric.
    fn check_fields(&self, entity: &EntityDetail, fields: &[String]) -> Result<(), String> {
        let (metrics, dimensions): (Vec<&String>, Vec<&String>) =
            fields.iter().partition(|f| is_metric(entity, f));
        let mut said = Vec::new();
        if dimensions.len() > MOST_DIMENSIONS {
            said.push(format!(
                "{} dimensions, where a report takes at most {MOST_DIMENSIONS}",
                dimensions.len()
            ));
        }
        if metrics.len() > MOST_METRICS {
            said.push(format!(
                "{} metrics, where a report takes at most {MOST_METRICS}",
                metrics.len()
            ));
        }
        if metrics.is_empty() {
            said.push(
                "no metric, where a report takes at least one (sessions, activeUsers…)".into(),
            );
        }
        match said.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "the report asks for {}: choose the fields to read",
                said.join(" and ")
            )),
        }
    }
}

/// What one GA4 report may ask for.
const MOST_DIMENSIONS: usize = 9;
const MOST_METRICS: usize = 10;

/// The Admin API's address.
fn admin(client: &Client) -> String {
    client
        .setting("admin_url")
        .unwrap_or_else(|| "https://analyticsadmin.googleapis.com".into())
        .trim_end_matches('/')
        .to_string()
}

/// Google's error bodies in words, with what to do about the Data API's.
fn in_words(message: &str) -> String {
    google::in_words(message, |status| match status {
        "RESOURCE_EXHAUSTED" => {
            " (the property's Data API quota is used up; hourly quotas free up within the hour, daily ones the next day)"
        }
        "PERMISSION_DENIED" => " (the signed-in user has no access to this property)",
        "UNAUTHENTICATED" => " (log in again)",
        _ => "",
    })
}

/// Every property the sign-in can see, through the account summaries, page by page.
async fn properties(client: &Client) -> Result<Vec<Entity>, ConnectorError> {
    let url = format!("{}/v1beta/accountSummaries", admin(client));
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (answer, _) = client
            .api
            .get_json("listing the properties", |c| {
                let mut r = c.get(&url).query(&[("pageSize", "200")]);
                if let Some(t) = &token {
                    r = r.query(&[("pageToken", t.as_str())]);
                }
                r
            })
            .await
            .map_err(|e| e.map_message(in_words))?;
        for account in answer["accountSummaries"].as_array().into_iter().flatten() {
            let account_name = account["displayName"].as_str().unwrap_or_default();
            for p in account["propertySummaries"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(name) = p["property"].as_str() else {
                    continue;
                };
                let label = p["displayName"].as_str().unwrap_or(name);
                out.push(Entity {
                    name: name.to_string(),
                    label: match account_name {
                        "" => label.to_string(),
                        account => format!("{label} ({account})"),
                    },
                });
            }
        }
        match answer["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(out),
        }
    }
}

/// A property's name as the API takes it: `properties/` and digits.
fn check_property(entity: &str) -> Result<&str, ConnectorError> {
    match entity.strip_prefix("properties/") {
        Some(id) if !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) => Ok(entity),
        _ => Err(ConnectorError::not_found(format!(
            "`{entity}` is not a GA4 property: write it as properties/123456789"
        ))),
    }
}

/// Operators by kind of field, as the Data API's filters take them.
const TEXT: &[Operator] = &[Operator::EqualTo, Operator::NotEqualTo, Operator::Contains];
const NUMBER: &[Operator] = &[
    Operator::EqualTo,
    Operator::NotEqualTo,
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessThanOrEqualTo,
    Operator::GreaterThanOrEqualTo,
    Operator::Between,
];

/// The property's dimensions and metrics as fields.
async fn describe(client: &Client, entity: &str) -> Result<EntityDetail, ConnectorError> {
    let property = check_property(entity)?;
    let url = client.url(&format!("/v1beta/{property}/metadata"));
    let (answer, _) = client
        .api
        .get_json(&format!("reading the fields of {property}"), |c| {
            c.get(&url)
        })
        .await
        .map_err(|e| match e.status {
            Some(404) => ConnectorError::not_found(format!(
                "there is no property {property}, or the signed-in user cannot see it"
            )),
            _ => e.map_message(in_words),
        })?;
    let mut fields = Vec::new();
    for d in answer["dimensions"].as_array().into_iter().flatten() {
        let Some(name) = d["apiName"].as_str() else {
            continue;
        };
        let date = name == "date";
        fields.push(Field {
            name: name.to_string(),
            label: d["uiName"].as_str().unwrap_or(name).to_string(),
            // The report's days come from its date range, not from a filter.
            filters: if date { Vec::new() } else { TEXT.to_vec() },
            data_type: if date {
                DataType::Date32
            } else {
                DataType::Utf8
            },
            cursor: date,
        });
    }
    for m in answer["metrics"].as_array().into_iter().flatten() {
        let Some(name) = m["apiName"].as_str() else {
            continue;
        };
        fields.push(Field {
            name: name.to_string(),
            label: m["uiName"].as_str().unwrap_or(name).to_string(),
            data_type: metric_type(m["type"].as_str().unwrap_or_default()),
            filters: NUMBER.to_vec(),
            cursor: false,
        });
    }
    if fields.is_empty() {
        return Err(ConnectorError::fatal(format!(
            "Google Analytics lists no dimensions or metrics for {property}"
        )));
    }
    Ok(EntityDetail {
        name: property.to_string(),
        label: property.to_string(),
        default_cursor: fields
            .iter()
            .any(|f| f.name == "date")
            .then(|| "date".to_string()),
        fields,
        id_field: None,
        writes: Vec::new(),
        required: Vec::new(),
        left_out: Vec::new(),
        restated: true,
        change_log: None,
    })
}

/// The Arrow type of a metric type: counts are integers, everything else (ratios,
/// currencies, durations in their unit) a number, as the Data API gives them.
fn metric_type(kind: &str) -> DataType {
    match kind {
        "TYPE_INTEGER" => DataType::Int64,
        _ => DataType::Float64,
    }
}

/// Whether a field is a metric (the rest are dimensions).
fn is_metric(entity: &EntityDetail, name: &str) -> bool {
    entity
        .field(name)
        .is_some_and(|f| f.data_type != DataType::Utf8 && f.data_type != DataType::Date32)
}

/// Runs the report: the chosen dimensions and metrics over the pull's days, page by page.
async fn read(client: &Client, request: ReadRequest, pages: Pages) -> Result<(), ConnectorError> {
    let options: ReadOptions = client.options()?;
    let property = check_property(&request.entity.name)?.to_string();
    let (dimensions, metrics): (Vec<&String>, Vec<&String>) = request
        .fields
        .iter()
        .partition(|f| !is_metric(&request.entity, f));
    let (start, end) = match (&request.cursor, request.since) {
        // Where the last run got to, less the days GA4 may still restate.
        (Some(_), Some(since)) => {
            let from = since.date_naive() - Duration::days(options.lookback_days.into());
            (from.to_string(), through(&request))
        }
        (Some(_), None) => (options.start_date.clone(), through(&request)),
        (None, _) => (options.start_date.clone(), options.end_date.clone()),
    };
    let mut body = json!({
        "dimensions": dimensions.iter().map(|d| json!({"name": d})).collect::<Vec<_>>(),
        "metrics": metrics.iter().map(|m| json!({"name": m})).collect::<Vec<_>>(),
        "dateRanges": [{"startDate": start, "endDate": end}],
        "keepEmptyRows": false,
        "returnPropertyQuota": true,
    });
    let (dimension_filter, metric_filter) = filters(&request)?;
    if let Some(f) = dimension_filter {
        body["dimensionFilter"] = f;
    }
    if let Some(f) = metric_filter {
        body["metricFilter"] = f;
    }
    if dimensions.iter().any(|d| *d == "date") {
        body["orderBys"] = json!([{"dimension": {"dimensionName": "date"}}]);
    }
    let url = client.url(&format!("/v1beta/{property}:runReport"));
    let page_size = options.page_size.clamp(1, 250_000);
    let mut offset: u64 = 0;
    loop {
        let limit = request
            .limit
            .map_or(page_size, |l| (l - offset).min(page_size));
        body["limit"] = json!(limit);
        body["offset"] = json!(offset);
        let what = format!("the report of {property} from row {offset}");
        let (answer, _) = client
            .api
            .get_json(&what, |c| c.post(&url).json(&body))
            .await
            .map_err(|e| e.map_message(in_words))?;
        note_quota(&request, &answer["propertyQuota"]);
        let rows = answer["rows"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = answer["dimensionHeaders"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(answer["metricHeaders"].as_array().into_iter().flatten())
            .filter_map(|h| h["name"].as_str())
            .collect();
        let count = rows.len() as u64;
        let records: Vec<Map<String, Value>> = rows
            .iter()
            .map(|row| {
                let values = row["dimensionValues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(row["metricValues"].as_array().into_iter().flatten());
                names
                    .iter()
                    .zip(values)
                    .map(|(name, v)| (name.to_string(), value(&request, name, &v["value"])))
                    .collect()
            })
            .collect();
        if !records.is_empty() && pages.send(records).await.is_err() {
            return Ok(());
        }
        offset += count;
        let total = answer["rowCount"].as_u64().unwrap_or(0);
        if count == 0 || offset >= total || request.limit.is_some_and(|l| offset >= l) {
            return Ok(());
        }
    }
}

/// The last day an incremental report reads: the day the run started.
fn through(request: &ReadRequest) -> String {
    request
        .until
        .map_or("today".into(), |t| t.date_naive().to_string())
}

/// A value as the Data API gives it (always text), in its field's type: `20261130` as a
/// date, numbers as numbers; `(not set)` stays text.
fn value(request: &ReadRequest, name: &str, value: &Value) -> Value {
    let Some(text) = value.as_str() else {
        return value.clone();
    };
    match request.entity.field(name).map(|f| &f.data_type) {
        Some(DataType::Date32) => NaiveDate::parse_from_str(text, "%Y%m%d")
            .map_or_else(|_| Value::from(text), |d| Value::from(d.to_string())),
        Some(DataType::Int64) => text
            .parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::from),
        Some(DataType::Float64) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::from(text), Value::Number),
        _ => Value::from(text),
    }
}

/// The quota the report used, as the run record keeps it.
fn note_quota(request: &ReadRequest, quota: &Value) {
    for (block, consumed, remaining) in [
        (
            "tokensPerDay",
            "quota_tokens_per_day_consumed",
            "quota_tokens_per_day_remaining",
        ),
        (
            "tokensPerHour",
            "quota_tokens_per_hour_consumed",
            "quota_tokens_per_hour_remaining",
        ),
    ] {
        if let (Some(c), Some(r)) = (
            quota[block]["consumed"].as_u64(),
            quota[block]["remaining"].as_u64(),
        ) {
            request.notes.set(consumed, c);
            request.notes.set(remaining, r);
        }
    }
}

/// The node's conditions as the report's dimension filter and metric filter.
fn filters(request: &ReadRequest) -> Result<(Option<Value>, Option<Value>), ConnectorError> {
    let mut dimensions = Vec::new();
    let mut metrics = Vec::new();
    for c in &request.conditions {
        match is_metric(&request.entity, &c.field) {
            true => metrics.push(metric_filter(c)?),
            false => dimensions.push(dimension_filter(c)?),
        }
    }
    let group = |mut expressions: Vec<Value>| match expressions.len() {
        0 => None,
        1 => expressions.pop(),
        _ => Some(json!({"andGroup": {"expressions": expressions}})),
    };
    Ok((group(dimensions), group(metrics)))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dimension_filter(c: &Condition) -> Result<Value, ConnectorError> {
    let name = &c.field;
    let one = |v: &Value| {
        json!({"filter": {"fieldName": name,
            "stringFilter": {"matchType": "EXACT", "value": text_of(v), "caseSensitive": true}}})
    };
    let any = |v: &Value| match v {
        Value::Array(items) => json!({"filter": {"fieldName": name,
            "inListFilter": {"values": items.iter().map(text_of).collect::<Vec<_>>(), "caseSensitive": true}}}),
        other => one(other),
    };
    Ok(match c.operator {
        Operator::EqualTo => any(&c.value),
        Operator::NotEqualTo => json!({"notExpression": any(&c.value)}),
        Operator::Contains => json!({"filter": {"fieldName": name,
            "stringFilter": {"matchType": "CONTAINS", "value": text_of(&c.value), "caseSensitive": false}}}),
        other => {
            return Err(ConnectorError::fatal(format!(
                "a dimension is not filtered by {}",
                other.in_words()
            )));
        }
    })
}

fn metric_filter(c: &Condition) -> Result<Value, ConnectorError> {
    let name = &c.field;
    let number = |v: &Value| -> Result<Value, ConnectorError> {
        let n: f64 = text_of(v).parse().map_err(|_| {
            ConnectorError::fatal(format!(
                "`{}` is not a number, which {name} holds",
                text_of(v)
            ))
        })?;
        Ok(match n.fract() == 0.0 && n.abs() < 1e15 {
            true => json!({"int64Value": (n as i64).to_string()}),
            false => json!({"doubleValue": n}),
        })
    };
    let numeric = |operation: &str, v: &Value| -> Result<Value, ConnectorError> {
        Ok(json!({"filter": {"fieldName": name,
            "numericFilter": {"operation": operation, "value": number(v)?}}}))
    };
    Ok(match c.operator {
        Operator::EqualTo => numeric("EQUAL", &c.value)?,
        Operator::NotEqualTo => json!({"notExpression": numeric("EQUAL", &c.value)?}),
        Operator::LessThan => numeric("LESS_THAN", &c.value)?,
        Operator::LessThanOrEqualTo => numeric("LESS_THAN_OR_EQUAL", &c.value)?,
        Operator::GreaterThan => numeric("GREATER_THAN", &c.value)?,
        Operator::GreaterThanOrEqualTo => numeric("GREATER_THAN_OR_EQUAL", &c.value)?,
        Operator::Between => match &c.value {
            Value::Array(pair) if pair.len() == 2 => json!({"filter": {"fieldName": name,
                "betweenFilter": {"fromValue": number(&pair[0])?, "toValue": number(&pair[1])?}}}),
            _ => return Err(ConnectorError::fatal("`between` takes [low, high]")),
        },
        Operator::Contains => {
            return Err(ConnectorError::fatal(format!(
                "{name} is a number: it contains nothing"
            )));
        }
    })
}
