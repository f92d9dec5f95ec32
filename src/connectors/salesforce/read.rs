//! Reading an object: the fields asked for, the node's conditions pushed down into the
//! SOQL `WHERE`, through the REST query API (following `nextRecordsUrl`) or a Bulk API 2.0
//! query job (result sets followed by `Sforce-Locator`), chosen as AppFlow does: Bulk from
//! a million records on. An incremental pull's window (from the watermark, included, to
//! the run's start, excluded) is in the `WHERE` too; the framework skips the records at
//! the boundary that the last run read.

use arrow::datatypes::DataType;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::{DataTransferApi, Org, ReadOptions, in_words, normalize};
use crate::conditions::{Condition, Operator};
use crate::connectors::framework::ConnectorError;
use crate::connectors::framework::catalog::{Client, EntityDetail, Notes, Pages, ReadRequest};
use crate::connectors::pages::csv_rows;

/// Reads what `request` asks into `pages`. A send that fails means the node has what it
/// needs or the run stopped: the read ends there (aborting a running query job).
pub async fn read(
    client: Client,
    request: ReadRequest,
    pages: Pages,
) -> Result<(), ConnectorError> {
    let options: ReadOptions = client.options()?;
    let org = Org::of(&client)?;
    let soql = soql(&request)?;
    let query = Query {
        org,
        path: match options.include_deleted {
            true => "/queryAll",
            false => "/query",
        },
        entity: &request.entity,
        notes: &request.notes,
        page_rows: request.page_rows.max(1),
    };
    let bulk = match options.api {
        DataTransferApi::Rest => false,
        DataTransferApi::Bulk => request.limit.is_none(),
        DataTransferApi::Automatic => {
            request.limit.is_none() && query.count(&soql).await? >= options.bulk_from
        }
    };
    tracing::info!(bulk, %soql, "reading Salesforce");
    match bulk {
        true => query.bulk(&soql, options.include_deleted, &pages).await,
        false => query.rest(&soql, &pages).await,
    }
}

/// The oldest value of the pull's cursor among the records it asks for (its conditions,
/// not its window): `SELECT MIN(cursor) FROM object WHERE conditions`, an aggregate query
/// Salesforce answers with one `AggregateResult` whose `expr0` is the value.
pub async fn earliest(
    client: Client,
    request: ReadRequest,
) -> Result<Option<DateTime<Utc>>, ConnectorError> {
    let options: ReadOptions = client.options()?;
    let org = Org::of(&client)?;
    let cursor = request
        .cursor
        .clone()
        .ok_or_else(|| ConnectorError::fatal("the pull has no cursor field"))?;
    let soql = soql(&ReadRequest {
        fields: vec![format!("MIN({cursor})")],
        since: None,
        until: None,
        limit: None,
        ..request
    })?;
    let url = org.url(match options.include_deleted {
        true => "/queryAll",
        false => "/query",
    });
    let (answer, _) = org
        .api
        .get_json("asking for the oldest record", |c| {
            c.get(&url).query(&[("q", soql.as_str())])
        })
        .await
        .map_err(in_words)?;
    match &answer["records"][0]["expr0"] {
        Value::Null => Ok(None),
        Value::String(text) => DateTime::parse_from_rfc3339(&super::rfc3339(text))
            .map(|t| Some(t.to_utc()))
            .map_err(|e| {
                ConnectorError::fatal(format!(
                    "Salesforce gave `{text}` as the oldest {cursor}, which is not an instant: {e}"
                ))
            }),
        other => Err(ConnectorError::fatal(format!(
            "Salesforce gave {other} as the oldest {cursor}"
        ))),
    }
}

/// The SOQL of a pull: the fields (with the id and the cursor, which the framework
/// added), the conditions and the window.
fn soql(request: &ReadRequest) -> Result<String, ConnectorError> {
    let entity = &request.entity;
    let mut soql = format!("SELECT {} FROM {}", request.fields.join(", "), entity.name);
    let mut clauses = Vec::new();
    for c in &request.conditions {
        let field = entity
            .field(&c.field)
            .ok_or_else(|| ConnectorError::fatal(format!("no field `{}`", c.field)))?;
        clauses
            .push(condition_soql(c, &field.name, &field.data_type).map_err(ConnectorError::fatal)?);
    }
    if let Some(cursor) = &request.cursor {
        if let Some(from) = request.since {
            clauses.push(format!("{cursor} >= {}", soql_datetime(from)));
        }
        if let Some(to) = request.until {
            clauses.push(format!("{cursor} < {}", soql_datetime(to)));
        }
    }
    if !clauses.is_empty() {
        soql += &format!(" WHERE {}", clauses.join(" AND "));
    }
    if let Some(n) = request.limit {
        soql += &format!(" LIMIT {n}");
    }
    Ok(soql)
}

fn soql_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A literal of a field's type, as SOQL writes it.
fn literal(value: &Value, name: &str, data_type: &DataType) -> Result<String, String> {
    let text = || match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("`{other}` is not a value for {name}")),
    };
    Ok(match (data_type, value) {
        (_, Value::Null) => "null".into(),
        (DataType::Boolean, Value::Bool(b)) => b.to_string(),
        (DataType::Boolean, Value::String(s)) if s == "true" || s == "false" => s.clone(),
        (t, _) if t.is_numeric() => {
            let t = text()?;
            t.parse::<f64>()
                .map_err(|_| format!("`{t}` is not a number, which {name} holds"))?;
            t
        }
        (DataType::Date32, _) => {
            let t = text()?;
            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                .map_err(|_| format!("`{t}` is not a date like 2026-11-30"))?;
            t
        }
        (DataType::Timestamp(..), _) => {
            let t = text()?;
            let parsed = DateTime::parse_from_rfc3339(&t)
                .map_err(|_| format!("`{t}` is not a date and time like 2026-11-30T00:00:00Z"))?;
            soql_datetime(parsed.with_timezone(&Utc))
        }
        _ => format!("'{}'", text()?.replace('\\', "\\\\").replace('\'', "\\'")),
    })
}

/// One condition in SOQL.
fn condition_soql(c: &Condition, name: &str, data_type: &DataType) -> Result<String, String> {
    let one = |v: &Value| literal(v, name, data_type);
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

/// One pull's query and where its records go.
struct Query<'a> {
    org: Org,
    /// `/query`, or `/queryAll` with deleted and archived records.
    path: &'static str,
    entity: &'a EntityDetail,
    notes: &'a Notes,
    page_rows: usize,
}

impl Query<'_> {
    /// How many records a pull would read (`SELECT COUNT()`), to choose the API.
    async fn count(&self, soql: &str) -> Result<u64, ConnectorError> {
        let from = soql.find(" FROM ").unwrap_or(0);
        let counting = format!("SELECT COUNT(){}", &soql[from..]);
        let url = self.org.url(self.path);
        let (answer, _) = self
            .org
            .api
            .get_json("counting the records", |c| {
                c.get(&url).query(&[("q", counting.as_str())])
            })
            .await
            .map_err(in_words)?;
        Ok(answer["totalSize"].as_u64().unwrap_or(0))
    }

    /// Records as Salesforce gave them (REST JSON or CSV rows as text), in their fields'
    /// types, sent on. False when the node has what it needs.
    async fn send(&self, records: Vec<Map<String, Value>>, pages: &Pages) -> bool {
        let page = records
            .into_iter()
            .map(|mut record| {
                record.remove("attributes");
                record
                    .into_iter()
                    .map(|(name, value)| {
                        let value = match self.entity.field(&name) {
                            Some(f) => normalize(&f.data_type, value),
                            None => value,
                        };
                        (name, value)
                    })
                    .collect()
            })
            .collect();
        pages.send(page).await.is_ok()
    }

    /// The REST query API: the first page, then `nextRecordsUrl` until `done`.
    async fn rest(&self, soql: &str, pages: &Pages) -> Result<(), ConnectorError> {
        let first = self.org.url(self.path);
        let mut next: Option<String> = None;
        for page in 1.. {
            if pages.is_closed() {
                return Ok(());
            }
            let what = format!("page {page} of the {} query", self.entity.name);
            let (answer, headers) = match &next {
                None => {
                    self.org
                        .api
                        .get_json(&what, |c| c.get(&first).query(&[("q", soql)]))
                        .await
                }
                Some(url) => self.org.api.get_json(&what, |c| c.get(url)).await,
            }
            .map_err(in_words)?;
            note_limits(self.notes, &headers);
            let records = answer["records"].as_array().ok_or_else(|| {
                ConnectorError::fatal(format!("{what}: Salesforce's answer has no records"))
            })?;
            let records = records.iter().filter_map(|r| r.as_object().cloned());
            if !self.send(records.collect(), pages).await {
                return Ok(());
            }
            match answer["nextRecordsUrl"].as_str() {
                Some(path) if answer["done"] != Value::Bool(true) => {
                    next = Some(self.org.absolute(path));
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// A Bulk API 2.0 query job: create it, wait for `JobComplete`, read the result sets.
    async fn bulk(&self, soql: &str, all: bool, pages: &Pages) -> Result<(), ConnectorError> {
        let jobs = self.org.url("/jobs/query");
        let operation = if all { "queryAll" } else { "query" };
        let body = serde_json::json!({"operation": operation, "query": soql});
        let (job, _) = self
            .org
            .api
            .get_json("creating a Bulk API 2.0 query job", |c| {
                c.post(&jobs).json(&body)
            })
            .await
            .map_err(in_words)?;
        let id = job["id"]
            .as_str()
            .ok_or_else(|| ConnectorError::fatal("Salesforce created a query job without an id"))?
            .to_string();
        let status_url = format!("{jobs}/{id}");
        let what = format!("the Bulk API 2.0 query job {id}");
        let done = self
            .org
            .wait_for_job(&status_url, &what, || pages.is_closed())
            .await?;
        if done.is_none() {
            self.abort_job(&status_url).await;
            return Ok(());
        }
        let results = format!("{status_url}/results");
        let mut locator: Option<String> = None;
        for set in 1.. {
            let what = format!("result set {set} of query job {id}");
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
                .map_err(in_words)?;
            note_limits(self.notes, response.headers());
            let next = response
                .headers()
                .get("sforce-locator")
                .and_then(|v| v.to_str().ok())
                .filter(|l| !l.is_empty() && *l != "null")
                .map(String::from);
            let body = response
                .bytes()
                .await
                .map_err(|e| ConnectorError::transient(format!("{what} broke off: {e}")))?;
            // A result set holds up to 50,000 records: they go on a page at a time, so
            // only one page of them is ever held as JSON values.
            let mut rows =
                csv_rows(&body).map_err(|e| ConnectorError::fatal(format!("{what}: {e}")))?;
            loop {
                let chunk: Vec<_> = rows
                    .by_ref()
                    .take(self.page_rows)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ConnectorError::fatal(format!("{what}: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                if !self.send(chunk, pages).await {
                    return Ok(());
                }
            }
            match next {
                Some(l) => locator = Some(l),
                None => break,
            }
        }
        Ok(())
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

/// `Sforce-Limit-Info: api-usage=18/5000`: how much of the org's daily allowance of API
/// requests is used, kept in the run record as `api_requests_used` and `api_requests_limit`.
fn note_limits(notes: &Notes, headers: &reqwest::header::HeaderMap) {
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
        notes.set("api_requests_used", used);
        notes.set("api_requests_limit", limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_become_soql_with_literals_of_the_fields_type() {
        let text = DataType::Utf8;
        let amount = DataType::Decimal128(18, 2);
        let date = DataType::Date32;
        let cases = [
            (
                Condition::new("StageName", Operator::NotEqualTo, json!("Closed Lost")),
                &text,
                "StageName != 'Closed Lost'",
            ),
            (
                Condition::new("StageName", Operator::EqualTo, json!(["Won", "O'Brien"])),
                &text,
                "StageName IN ('Won', 'O\\'Brien')",
            ),
            (
                Condition::new("Amount", Operator::GreaterThan, json!(1000)),
                &amount,
                "Amount > 1000",
            ),
            (
                Condition::new(
                    "CloseDate",
                    Operator::Between,
                    json!(["2026-01-01", "2026-03-31"]),
                ),
                &date,
                "(CloseDate >= 2026-01-01 AND CloseDate <= 2026-03-31)",
            ),
            (
                Condition::new("StageName", Operator::Contains, json!("50%_off")),
                &text,
                "StageName LIKE '%50\\%\\_off%'",
            ),
        ];
        for (c, t, soql) in cases {
            assert_eq!(condition_soql(&c, &c.field, t).unwrap(), soql);
        }
        let lots = Condition::new("Amount", Operator::EqualTo, json!("lots"));
        assert!(
            condition_soql(&lots, "Amount", &amount)
                .unwrap_err()
                .contains("not a number")
        );
        let european = Condition::new("CloseDate", Operator::EqualTo, json!("31/01/2026"));
        assert!(condition_soql(&european, "CloseDate", &date).is_err());
    }
}
