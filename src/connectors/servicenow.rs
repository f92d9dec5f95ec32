//! ServiceNow, through its Table API (`{instance_url}/api/now/table/{table}`): tables from
//! `sys_db_object`, their fields with types from `sys_dictionary` (inherited fields
//! included, up the `super_class` chain), and records read with `sysparm_query` built from
//! the node's conditions.
//!
//! Pages are asked for by key, not by offset: `ORDERBYsys_id` (after the cursor when the pull
//! is incremental) and, for the next page, the records after the last one read. Offsets
//! (`sysparm_offset`, the `Link` header's `next`) shift when a record of an earlier page
//! changes or is deleted while the run reads, and the record that slides into the read part
//! would be lost; keys do not move.

use std::collections::HashSet;

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::framework::catalog::{
    Catalog, Client, EntityDetail, Field, Operation, Outcome, Pages, ReadRequest, Write,
    WriteRequest,
};
use super::framework::service::{ALL_OPERATORS, Capabilities};
use super::framework::{ConnectorError, Service, service};
use crate::auth::sign_in::{OAUTH, OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::conditions::{Condition, Operator};
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;

pub struct ServiceNow;

impl Service for ServiceNow {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&ServiceNow)
    }

    /// Asks for one table's name: a request that needs the credentials and the right to
    /// read the catalog the nodes use.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let client = service::client(self, dirs, name);
        Box::pin(async move {
            let client = client?;
            get(
                &client,
                "sys_db_object",
                "name",
                "",
                1,
                "checking the connection",
            )
            .await?;
            Ok(format!(
                "connected to {}: these credentials read its tables",
                client.base
            ))
        })
    }

    fn entity_word(&self) -> &'static str {
        "table"
    }

    fn icon(&self) -> &'static str {
        "🎫"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            entities: true,
            filters: ALL_OPERATORS,
            incremental: true,
            writes: &[Operation::Insert, Operation::Update],
        }
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "servicenow",
    label: "ServiceNow",
    kinds: &[
        AuthKind::Basic,
        AuthKind::OAuth2,
        AuthKind::OAuth2ClientCredentials,
    ],
    settings: &[
        Setting {
            required: true,
            ..setting(
                "instance_url",
                "Instance URL",
                "Your instance's address, e.g. https://acme.service-now.com.",
            )
        },
        Setting {
            kinds: &[AuthKind::Basic],
            required: true,
            ..setting(
                "username",
                "User name",
                "A user with the rest_api_explorer or web service role.",
            )
        },
        Setting {
            kinds: OAUTH,
            required: true,
            ..setting(
                "client_id",
                "Client id",
                "The client id of an OAuth API endpoint (System OAuth, then Application Registry).",
            )
        },
        Setting {
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "callback_port",
                "Callback port",
                "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), as registered in the Application Registry; empty for any free port.",
            )
        },
    ],
    oauth: Some(OAuthEndpoints {
        authorize: "{instance_url}/oauth_auth.do",
        token: "{instance_url}/oauth_token.do",
        scopes: &[],
        extra: &[],
        identity_url_field: None,
    }),
    secrets: &[],
};

/// Records asked for per page (the Table API's own default is 10,000).
const PAGE: u64 = 1000;

/// Operators by kind of field, as encoded queries take them.
const ORDERED: &[Operator] = &[
    Operator::EqualTo,
    Operator::NotEqualTo,
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessThanOrEqualTo,
    Operator::GreaterThanOrEqualTo,
    Operator::Between,
];
const TEXT: &[Operator] = &[Operator::EqualTo, Operator::NotEqualTo, Operator::Contains];
const FLAG: &[Operator] = &[Operator::EqualTo, Operator::NotEqualTo];

/// The Arrow type of a dictionary `internal_type`, the operators it filters by, and
/// whether it can be an incremental cursor.
fn field_type(internal: &str, scale: Option<u32>) -> (DataType, &'static [Operator], bool) {
    match internal {
        "integer" | "longint" => (DataType::Int64, ORDERED, false),
        "float" => (DataType::Float64, ORDERED, false),
        // Decimals and money stay exact.
        "decimal" | "currency" | "price" => (
            crate::types::FieldType::decimal(20, scale.unwrap_or(2))
                .map(|t| t.arrow())
                .unwrap_or(DataType::Float64),
            ORDERED,
            false,
        ),
        "boolean" => (DataType::Boolean, FLAG, false),
        "glide_date_time" | "due_date" => (
            DataType::Timestamp(TimeUnit::Second, Some("+00:00".into())),
            ORDERED,
            true,
        ),
        "glide_date" => (DataType::Date32, ORDERED, false),
        // string, GUID, reference (a sys_id), choice, journal, html, url, email…
        _ => (DataType::Utf8, TEXT, false),
    }
}

impl Catalog for ServiceNow {
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async move {
            let rows = rows(
                &client,
                "sys_db_object",
                "name,label,sys_id",
                "ORDERBYname",
                "listing the tables",
            )
            .await?;
            Ok(rows
                .into_iter()
                .filter_map(|r| {
                    Some(Entity {
                        name: text(&r, "name")?,
                        label: text(&r, "label").unwrap_or_default(),
                    })
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

    fn write(
        &self,
        client: Client,
        request: WriteRequest,
        records: Vec<Map<String, Value>>,
    ) -> BoxFuture<Result<Vec<Outcome>, ConnectorError>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(records.len());
            for record in records {
                outcomes.push(write(&client, &request, record).await?);
            }
            Ok(outcomes)
        })
    }
}

/// Sends one record: `POST /api/now/table/{table}` to insert, `PATCH …/{sys_id}` to
/// update (the Table API takes one record a request). A refusal (400, 403, 404, 409) is
/// the record's; anything else fails the commit.
async fn write(
    client: &Client,
    request: &WriteRequest,
    mut record: Map<String, Value>,
) -> Result<Outcome, ConnectorError> {
    let table = &request.entity.name;
    check_name(table)?;
    let key = request.keys.first().map_or("sys_id", String::as_str);
    let (method, url) = match request.operation {
        Operation::Insert => (
            reqwest::Method::POST,
            client.url(&format!("/api/now/table/{table}")),
        ),
        Operation::Update => {
            let Some(id) = record
                .remove(key)
                .and_then(|v| v.as_str().map(String::from))
            else {
                return Ok(Err(format!(
                    "the record has no `{key}` to find the {table} record by"
                )));
            };
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Ok(Err(format!("`{id}` is not a sys_id")));
            }
            (
                reqwest::Method::PATCH,
                client.url(&format!("/api/now/table/{table}/{id}")),
            )
        }
        other => {
            return Err(ConnectorError::fatal(format!(
                "ServiceNow's Table API takes no {} here",
                other.name()
            )));
        }
    };
    // Instants go in as the Table API writes them, in UTC.
    for (name, value) in record.iter_mut() {
        if let (Some(DataType::Timestamp(..)), Value::String(text)) =
            (request.entity.field(name).map(|f| &f.data_type), &*value)
            && let Ok(t) = DateTime::parse_from_rfc3339(text)
        {
            *value = Value::String(glide(t.with_timezone(&Utc)));
        }
    }
    let body = Value::Object(record);
    let what = format!("{} of a {table} record", request.operation.name());
    let sent = client
        .api
        .send(&what, |c| {
            c.request(method.clone(), &url)
                .header("Accept", "application/json")
                .json(&body)
        })
        .await;
    match sent {
        Ok(_) => Ok(Ok(())),
        Err(e) if matches!(e.status, Some(400 | 403 | 404 | 409 | 422)) => {
            Ok(Err(in_words(&e.message)))
        }
        Err(e) => Err(e.map_message(in_words)),
    }
}

/// The table's fields, its own and those of the tables it extends.
async fn describe(client: &Client, table: &str) -> Result<EntityDetail, ConnectorError> {
    check_name(table)?;
    let what = format!("describing {table}");
    // The table and the tables it extends, nearest first.
    let mut chain: Vec<(String, String)> = Vec::new();
    let mut query = format!("name={table}");
    let mut seen = HashSet::new();
    loop {
        let found = rows(
            client,
            "sys_db_object",
            "name,label,super_class,sys_id",
            &query,
            &what,
        )
        .await?;
        let Some(row) = found.into_iter().next() else {
            if chain.is_empty() {
                return Err(ConnectorError::not_found(format!(
                    "ServiceNow has no table `{table}` (or the connection may not see it)"
                )));
            }
            break;
        };
        let name = text(&row, "name").unwrap_or_default();
        if !seen.insert(name.clone()) {
            break;
        }
        chain.push((name, text(&row, "label").unwrap_or_default()));
        match text(&row, "super_class") {
            Some(parent) if !parent.is_empty() => query = format!("sys_id={parent}"),
            _ => break,
        }
    }
    let names: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).collect();
    let dictionary = rows(
        client,
        "sys_dictionary",
        "name,element,column_label,internal_type,scale",
        &format!("nameIN{}^elementISNOTEMPTY^ORDERBYelement", names.join(",")),
        &what,
    )
    .await?;
    let mut fields: Vec<Field> = Vec::new();
    // A field the table redefines wins over the one it inherits: nearest table first.
    for table in &names {
        for row in dictionary
            .iter()
            .filter(|r| text(r, "name").as_deref() == Some(table))
        {
            let Some(name) = text(row, "element") else {
                continue;
            };
            if fields.iter().any(|f| f.name == name) {
                continue;
            }
            let scale = text(row, "scale").and_then(|s| s.parse().ok());
            let internal = text(row, "internal_type").unwrap_or_default();
            let (data_type, filters, cursor) = field_type(&internal, scale);
            fields.push(Field {
                label: text(row, "column_label").unwrap_or_else(|| name.clone()),
                name,
                data_type,
                filters: filters.to_vec(),
                cursor,
            });
        }
    }
    if fields.is_empty() {
        return Err(ConnectorError::fatal(format!(
            "ServiceNow lists no fields of `{table}`: the connection may not read sys_dictionary"
        )));
    }
    let has = |f: &str| fields.iter().any(|x| x.name == f);
    Ok(EntityDetail {
        name: table.to_string(),
        label: chain[0].1.clone(),
        id_field: has("sys_id").then(|| "sys_id".to_string()),
        default_cursor: has("sys_updated_on").then(|| "sys_updated_on".to_string()),
        required: Vec::new(),
        left_out: Vec::new(),
        restated: false,
        change_log: None,
        writes: vec![
            Write {
                operation: Operation::Insert,
                keys: Vec::new(),
                one_key: false,
            },
            Write {
                operation: Operation::Update,
                keys: vec!["sys_id".into()],
                one_key: false,
            },
        ],
        fields,
    })
}

/// Table names are letters, digits and `_`: anything else would reach into the URL.
fn check_name(table: &str) -> Result<(), ConnectorError> {
    match !table.is_empty() && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        true => Ok(()),
        false => Err(ConnectorError::not_found(format!(
            "`{table}` is not a ServiceNow table name (letters, digits and _)"
        ))),
    }
}

/// Every row a query of a system table gives, page by page by `sys_id`.
async fn rows(
    client: &Client,
    table: &str,
    fields: &str,
    query: &str,
    what: &str,
) -> Result<Vec<Map<String, Value>>, ConnectorError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = query.to_string();
        if let Some(last) = &after {
            q = join(&[&q, &format!("sys_id>{last}")]);
        }
        let page = get(
            client,
            table,
            fields,
            &join(&[&q, "ORDERBYsys_id"]),
            PAGE,
            what,
        )
        .await?;
        let full = page.len() as u64 == PAGE;
        after = page.last().and_then(|r| text(r, "sys_id"));
        all.extend(page);
        if !full || after.is_none() {
            return Ok(all);
        }
    }
}

/// One request of the Table API; the records of its `result`.
async fn get(
    client: &Client,
    table: &str,
    fields: &str,
    query: &str,
    limit: u64,
    what: &str,
) -> Result<Vec<Map<String, Value>>, ConnectorError> {
    let url = client.url(&format!("/api/now/table/{table}"));
    let params = [
        ("sysparm_query", query.to_string()),
        ("sysparm_fields", fields.to_string()),
        ("sysparm_limit", limit.to_string()),
        ("sysparm_display_value", "false".to_string()),
        ("sysparm_exclude_reference_link", "true".to_string()),
    ];
    let (answer, _) = client
        .api
        .get_json(what, |c| {
            c.get(&url)
                .query(&params)
                .header("Accept", "application/json")
        })
        .await
        .map_err(|e| e.map_message(in_words))?;
    match answer.get("result") {
        Some(Value::Array(list)) => {
            Ok(list.iter().filter_map(|r| r.as_object().cloned()).collect())
        }
        _ => Err(ConnectorError::fatal(format!(
            "{what}: ServiceNow's answer has no `result` list"
        ))),
    }
}

/// ServiceNow's error bodies (`{"error": {"message", "detail"}, "status": "failure"}`)
/// said in a sentence.
fn in_words(message: &str) -> String {
    let Some(start) = message.find('{') else {
        return message.to_string();
    };
    let Ok(body) = serde_json::from_str::<Value>(&message[start..]) else {
        return message.to_string();
    };
    let error = &body["error"];
    match (error["message"].as_str(), error["detail"].as_str()) {
        (Some(m), Some(d)) if !d.is_empty() => format!("{}{m}: {d}", &message[..start]),
        (Some(m), _) => format!("{}{m}", &message[..start]),
        _ => message.to_string(),
    }
}

/// Reads the records a pull asks for, in pages by key.
async fn read(client: &Client, request: ReadRequest, pages: Pages) -> Result<(), ConnectorError> {
    let entity = &request.entity;
    check_name(&entity.name)?;
    let mut filter: Vec<String> = Vec::new();
    for c in &request.conditions {
        let field = entity.field(&c.field).ok_or_else(|| {
            ConnectorError::fatal(format!("{} has no field `{}`", entity.name, c.field))
        })?;
        filter.push(encode(c, field).map_err(ConnectorError::fatal)?);
    }
    if let Some(cursor) = &request.cursor {
        if let Some(since) = request.since {
            filter.push(format!("{cursor}>={}", glide(since)));
        }
        if let Some(until) = request.until {
            filter.push(format!("{cursor}<{}", glide(until)));
        }
    }
    let base = filter.join("^");
    let order = match &request.cursor {
        Some(cursor) => format!("ORDERBY{cursor}^ORDERBYsys_id"),
        None => "ORDERBYsys_id".to_string(),
    };
    let fields = request.fields.join(",");
    let what = format!("reading {}", entity.name);
    let mut left = request.limit;
    // The last record read: its cursor value as ServiceNow wrote it, and its sys_id.
    let mut last: Option<(Option<String>, String)> = None;
    loop {
        let query = match (&last, &request.cursor) {
            (None, _) => join(&[&base, &order]),
            (Some((_, id)), None) => join(&[&base, &format!("sys_id>{id}"), &order]),
            // After (value, id): a later value, or the same value and a later id. `^NQ`
            // joins two whole queries with OR.
            (Some((value, id)), Some(cursor)) => {
                let value = value.clone().unwrap_or_default();
                format!(
                    "{}^NQ{}",
                    join(&[&base, &format!("{cursor}>{value}")]),
                    join(&[
                        &base,
                        &format!("{cursor}={value}"),
                        &format!("sys_id>{id}"),
                        &order
                    ])
                )
            }
        };
        let limit = left.map_or(PAGE, |l| l.min(PAGE));
        let page = get(client, &entity.name, &fields, &query, limit, &what).await?;
        last = page.last().and_then(|r| {
            let id = text(r, "sys_id")?;
            Some((request.cursor.as_ref().and_then(|c| text(r, c)), id))
        });
        if let Some(l) = &mut left {
            *l = l.saturating_sub(page.len() as u64);
        }
        let records: Vec<Map<String, Value>> = page.into_iter().map(|r| typed(r, entity)).collect();
        if !records.is_empty() && pages.send(records).await.is_err() {
            return Ok(());
        }
        // The end is an empty page, not a short one (see `rows`).
        if last.is_none() || left == Some(0) {
            return Ok(());
        }
    }
}

/// Two parts of an encoded query joined by AND, leaving out empty ones.
fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("^")
}

/// A record as the Table API gives it (every value a string) in its fields' types:
/// numbers and booleans as such, instants in RFC 3339, empty values null.
fn typed(record: Map<String, Value>, entity: &EntityDetail) -> Map<String, Value> {
    record
        .into_iter()
        .map(|(name, value)| {
            let value = match (entity.field(&name).map(|f| &f.data_type), value) {
                (_, Value::String(s)) if s.is_empty() => Value::Null,
                (Some(DataType::Int64), Value::String(s)) => {
                    s.parse::<i64>().map_or(Value::String(s), Value::from)
                }
                (Some(DataType::Float64), Value::String(s)) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::String(s), Value::Number),
                (Some(DataType::Boolean), Value::String(s)) => match s.as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => Value::String(s),
                },
                (Some(DataType::Timestamp(..)), Value::String(s)) => {
                    match NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S") {
                        Ok(t) => Value::String(t.and_utc().to_rfc3339()),
                        Err(_) => Value::String(s),
                    }
                }
                (_, v) => v,
            };
            (name, value)
        })
        .collect()
}

/// An instant as encoded queries take it: `YYYY-MM-DD HH:MM:SS`, read as UTC.
fn glide(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// One condition as an encoded query term.
fn encode(c: &Condition, field: &Field) -> Result<String, String> {
    let one = |v: &Value| literal(v, field);
    let list = |v: &Value| -> Result<Vec<String>, String> {
        match v {
            Value::Array(items) => items.iter().map(one).collect(),
            other => Ok(vec![one(other)?]),
        }
    };
    let name = &field.name;
    Ok(match c.operator {
        Operator::EqualTo => match list(&c.value)?.as_slice() {
            [single] => format!("{name}={single}"),
            many => format!("{name}IN{}", many.join(",")),
        },
        Operator::NotEqualTo => match list(&c.value)?.as_slice() {
            [single] => format!("{name}!={single}"),
            many => format!("{name}NOT IN{}", many.join(",")),
        },
        Operator::LessThan => format!("{name}<{}", one(&c.value)?),
        Operator::GreaterThan => format!("{name}>{}", one(&c.value)?),
        Operator::LessThanOrEqualTo => format!("{name}<={}", one(&c.value)?),
        Operator::GreaterThanOrEqualTo => format!("{name}>={}", one(&c.value)?),
        Operator::Contains => format!("{name}LIKE{}", one(&c.value)?),
        Operator::Between => match &c.value {
            Value::Array(pair) if pair.len() == 2 => {
                format!("{name}BETWEEN{}@{}", one(&pair[0])?, one(&pair[1])?)
            }
            _ => return Err("`between` takes two values, [low, high]".into()),
        },
    })
}

/// A value as an encoded query writes it for a field's type. `^` separates terms, so a
/// value holding one doubles it, as ServiceNow escapes it.
fn literal(value: &Value, field: &Field) -> Result<String, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => return Err(format!("`{other}` is not a value for {}", field.name)),
    };
    let text = match &field.data_type {
        DataType::Timestamp(..) if !text.is_empty() => {
            let t = DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc())
                })
                .map_err(|_| {
                    format!("`{text}` is not a date and time like 2026-11-30T09:00:00Z")
                })?;
            glide(t)
        }
        DataType::Date32 if !text.is_empty() => {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map_err(|_| format!("`{text}` is not a date like 2026-11-30"))?;
            text
        }
        DataType::Int64 | DataType::Float64 | DataType::Decimal128(..) if !text.is_empty() => {
            text.parse::<f64>()
                .map_err(|_| format!("`{text}` is not a number, which {} holds", field.name))?;
            text
        }
        _ => text,
    };
    Ok(text.replace('^', "^^"))
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        // With sysparm_exclude_reference_link a reference is its sys_id; without it, an
        // object holding it as `value`.
        Value::Object(o) => o.get("value").and_then(Value::as_str).map(String::from),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, internal: &str) -> Field {
        let (data_type, filters, cursor) = field_type(internal, None);
        Field {
            name: name.into(),
            label: name.into(),
            data_type,
            filters: filters.to_vec(),
            cursor,
        }
    }

    #[test]
    fn conditions_become_encoded_query_terms() {
        let priority = field("priority", "integer");
        let state = field("state", "string");
        let opened = field("opened_at", "glide_date_time");
        let cases = [
            (
                Condition::new("priority", Operator::LessThanOrEqualTo, json!(2)),
                &priority,
                "priority<=2",
            ),
            (
                Condition::new("state", Operator::EqualTo, json!(["new", "in progress"])),
                &state,
                "stateINnew,in progress",
            ),
            (
                Condition::new("state", Operator::NotEqualTo, json!("closed")),
                &state,
                "state!=closed",
            ),
            (
                Condition::new("state", Operator::Contains, json!("a^b")),
                &state,
                "stateLIKEa^^b",
            ),
            (
                Condition::new(
                    "opened_at",
                    Operator::Between,
                    json!(["2026-11-01T00:00:00Z", "2026-11-30T12:00:00+01:00"]),
                ),
                &opened,
                "opened_atBETWEEN2026-11-01 00:00:00@2026-11-30 11:00:00",
            ),
        ];
        for (c, f, want) in cases {
            assert_eq!(encode(&c, f).unwrap(), want);
        }
        assert!(
            encode(
                &Condition::new("priority", Operator::GreaterThan, json!("high")),
                &priority
            )
            .is_err()
        );
    }

    #[test]
    fn table_api_strings_take_their_fields_types() {
        let entity = EntityDetail {
            name: "incident".into(),
            label: "Incident".into(),
            fields: vec![
                field("priority", "integer"),
                field("active", "boolean"),
                field("sys_updated_on", "glide_date_time"),
                field("short_description", "string"),
            ],
            id_field: None,
            default_cursor: None,
            required: Vec::new(),
            left_out: Vec::new(),
            restated: false,
            change_log: None,
            writes: vec![],
        };
        let record = json!({
            "priority": "2", "active": "true", "sys_updated_on": "2026-11-27 10:00:00",
            "short_description": ""
        });
        let typed = typed(record.as_object().unwrap().clone(), &entity);
        assert_eq!(
            Value::Object(typed),
            json!({
                "priority": 2, "active": true, "sys_updated_on": "2026-11-27T10:00:00+00:00",
                "short_description": null
            })
        );
    }

    #[test]
    fn error_bodies_read_as_a_sentence() {
        let raw = r#"reading incident: the service answered 400 Bad Request: {"error":{"message":"Invalid table","detail":"incidnt"},"status":"failure"}"#;
        assert_eq!(
            in_words(raw),
            "reading incident: the service answered 400 Bad Request: Invalid table: incidnt"
        );
    }
}
