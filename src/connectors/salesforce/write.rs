//! Writing to an object: inserts, updates, upserts (by an external id field) or deletes
//! with sObject Collections, 200 records a request, `allOrNone` off so that one refused
//! record does not refuse the other 199; from `bulk_from` records a run on (2,000,
//! Salesforce's advice) as Bulk API 2.0 ingest jobs instead. Either way each record's
//! outcome comes back with Salesforce's status codes and messages, and the framework sets
//! the refused ones aside.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value};

use super::{DataTransferApi, Org, WriteOptions, in_words};
use crate::connectors::framework::ConnectorError;
use crate::connectors::framework::catalog::{Client, Operation, Outcome, WriteRequest};

/// Records a sObject Collections request takes at most.
const PER_REQUEST: usize = 200;

/// Records one Bulk API 2.0 ingest job takes from a run: large enough that a run of
/// millions is a few dozen jobs, small enough that a chunk held in memory stays modest.
const PER_JOB: usize = 50_000;

/// Bulk API 2.0 takes uploads of up to 150 MB; a job's upload stays well below.
const JOB_BYTES: usize = 100 << 20;

/// How many records one call of [`write`] takes for this run.
pub fn chunk(client: &Client, request: &WriteRequest) -> usize {
    match client.options::<WriteOptions>() {
        Ok(o) if bulk(&o, request.total) => PER_JOB,
        _ => PER_REQUEST,
    }
}

fn bulk(options: &WriteOptions, total: u64) -> bool {
    match options.api {
        DataTransferApi::Rest => false,
        DataTransferApi::Bulk => true,
        DataTransferApi::Automatic => total >= options.bulk_from,
    }
}

/// Sends records and says of each whether Salesforce took it.
pub async fn write(
    client: Client,
    request: WriteRequest,
    records: Vec<Map<String, Value>>,
) -> Result<Vec<Outcome>, ConnectorError> {
    let options: WriteOptions = client.options()?;
    let org = Org::of(&client)?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    match bulk(&options, request.total) {
        true => ingest(&org, &request, records).await,
        false => {
            let mut outcomes = Vec::with_capacity(records.len());
            let mut records = records.into_iter().peekable();
            while records.peek().is_some() {
                let some: Vec<_> = records.by_ref().take(PER_REQUEST).collect();
                outcomes.extend(collections(&org, &request, some).await?);
            }
            Ok(outcomes)
        }
    }
}

/// The field an upsert finds records by, or the id.
fn key(request: &WriteRequest) -> &str {
    request.keys.first().map_or("Id", String::as_str)
}

/// One sObject Collections request of at most 200 records.
async fn collections(
    org: &Org,
    request: &WriteRequest,
    records: Vec<Map<String, Value>>,
) -> Result<Vec<Outcome>, ConnectorError> {
    let op = request.operation;
    let object = &request.entity.name;
    let url = match op {
        Operation::Upsert => org.url(&format!("/composite/sobjects/{object}/{}", key(request))),
        _ => org.url("/composite/sobjects"),
    };
    let what = format!("{} of {} {object} records", op.name(), records.len());
    let response = match op {
        Operation::Delete => {
            let ids: Vec<String> = records.iter().map(|r| cell(r.get(key(request)))).collect();
            let ids = ids.join(",");
            org.api
                .send(&what, |c| {
                    c.delete(&url)
                        .query(&[("ids", ids.as_str()), ("allOrNone", "false")])
                })
                .await
        }
        _ => {
            let records: Vec<Value> = records
                .into_iter()
                .map(|r| {
                    let mut with_type = Map::with_capacity(r.len() + 1);
                    with_type.insert("attributes".into(), serde_json::json!({"type": object}));
                    with_type.extend(r);
                    Value::Object(with_type)
                })
                .collect();
            let body = serde_json::json!({"allOrNone": false, "records": records});
            org.api
                .send(&what, |c| match op {
                    Operation::Insert => c.post(&url).json(&body),
                    _ => c.patch(&url).json(&body),
                })
                .await
        }
    }
    .map_err(in_words)?;
    let answer: Vec<Value> = response.json().await.map_err(|e| {
        ConnectorError::fatal(format!(
            "{what}: Salesforce's answer is not a list of results: {e}"
        ))
    })?;
    Ok(answer.iter().map(outcome).collect())
}

/// One result of sObject Collections: taken, or refused with Salesforce's codes,
/// messages and the fields they concern.
fn outcome(result: &Value) -> Outcome {
    if result["success"] == Value::Bool(true) {
        return Ok(());
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
                    let names: Vec<_> = f.iter().filter_map(Value::as_str).collect();
                    format!(" ({})", names.join(", "))
                })
                .unwrap_or_default();
            format!(
                "{}: {}{fields}",
                e["statusCode"].as_str().unwrap_or("ERROR"),
                e["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    match reasons.is_empty() {
        true => Err("Salesforce refused the record without saying why".into()),
        false => Err(reasons.join("; ")),
    }
}

/// Bulk API 2.0 ingest: the records as CSV in jobs of at most [`JOB_BYTES`], each
/// uploaded, closed and waited for. Salesforce's failed results echo the cells sent, by
/// which each is matched to its record.
async fn ingest(
    org: &Org,
    request: &WriteRequest,
    records: Vec<Map<String, Value>>,
) -> Result<Vec<Outcome>, ConnectorError> {
    // A delete sends only the ids; otherwise every field any record has, in order.
    let columns: Vec<String> = match request.operation {
        Operation::Delete => vec![key(request).to_string()],
        _ => {
            let mut columns: Vec<String> = Vec::new();
            for record in &records {
                for name in record.keys() {
                    if !columns.contains(name) {
                        columns.push(name.clone());
                    }
                }
            }
            columns
        }
    };
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| columns.iter().map(|c| cell(r.get(c))).collect())
        .collect();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let mut csv = csv_writer(&columns);
        let mut end = start;
        while end < rows.len() && (end == start || csv.get_ref().len() < JOB_BYTES) {
            csv.write_record(&rows[end]).map_err(|e| {
                ConnectorError::fatal(format!("cannot write CSV for Bulk API 2.0: {e}"))
            })?;
            end += 1;
        }
        let body = csv.into_inner().map_err(|e| {
            ConnectorError::fatal(format!("cannot write CSV for Bulk API 2.0: {e}"))
        })?;
        outcomes.extend(job(org, request, &columns, &rows[start..end], body).await?);
        start = end;
    }
    Ok(outcomes)
}

fn csv_writer(columns: &[String]) -> csv::Writer<Vec<u8>> {
    let mut csv = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    csv.write_record(columns).expect("writing to memory");
    csv
}

/// One ingest job: created, its CSV uploaded, closed, waited for; the outcome of each row.
async fn job(
    org: &Org,
    request: &WriteRequest,
    columns: &[String],
    rows: &[Vec<String>],
    body: Vec<u8>,
) -> Result<Vec<Outcome>, ConnectorError> {
    let op = request.operation;
    let object = &request.entity.name;
    let mut spec = serde_json::json!({
        "object": object,
        "operation": op.name(),
        "contentType": "CSV",
        "lineEnding": "LF",
    });
    if op == Operation::Upsert {
        spec["externalIdFieldName"] = Value::from(key(request));
    }
    let jobs = org.url("/jobs/ingest");
    let what = format!(
        "a Bulk API 2.0 {} of {} {object} records",
        op.name(),
        rows.len()
    );
    let (created, _) = org
        .api
        .get_json(&what, |c| c.post(&jobs).json(&spec))
        .await
        .map_err(in_words)?;
    let id = created["id"]
        .as_str()
        .ok_or_else(|| {
            ConnectorError::fatal(format!("{what}: Salesforce made a job without an id"))
        })?
        .to_string();
    let job_url = format!("{jobs}/{id}");
    let batches = format!("{job_url}/batches");
    org.api
        .send(&what, |c| {
            c.put(&batches)
                .header("Content-Type", "text/csv")
                .body(body.clone())
        })
        .await
        .map_err(in_words)?;
    let close = serde_json::json!({"state": "UploadComplete"});
    org.api
        .send(&what, |c| c.patch(&job_url).json(&close))
        .await
        .map_err(in_words)?;
    let status = (org.wait_for_job(&job_url, &what, || false).await?)
        .ok_or_else(|| ConnectorError::fatal(format!("{what}: stopped waiting for the job")))?;
    // Which row is which, by its cells: rows with the same cells are told apart by order.
    let mut by_cells: HashMap<&[String], VecDeque<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        by_cells.entry(row.as_slice()).or_default().push_back(i);
    }
    let mut outcomes: Vec<Outcome> = vec![Ok(()); rows.len()];
    let mut unmatched = 0;
    let processed = status["numberRecordsProcessed"].as_u64().unwrap_or(0);
    let failed = status["numberRecordsFailed"].as_u64().unwrap_or(0);
    let mut results = Vec::new();
    if failed > 0 {
        results.push(("failedResults", None));
    }
    if processed < rows.len() as u64 {
        results.push((
            "unprocessedrecords",
            Some(format!(
                "Salesforce did not process the record: the job {id} ended first"
            )),
        ));
    }
    for (set, reason) in results {
        let url = format!("{job_url}/{set}");
        let csv = org
            .api
            .send(&what, |c| c.get(&url).header("Accept", "text/csv"))
            .await
            .map_err(in_words)?
            .bytes()
            .await
            .map_err(|e| ConnectorError::transient(format!("{what}: the {set} broke off: {e}")))?;
        let not_csv =
            |e: csv::Error| ConnectorError::fatal(format!("{what}: the {set} are not CSV: {e}"));
        let mut reader = csv::Reader::from_reader(csv.as_ref());
        let headers = reader.headers().map_err(not_csv)?.clone();
        let place: Vec<Option<usize>> = columns
            .iter()
            .map(|c| headers.iter().position(|h| h == c))
            .collect();
        let error = headers.iter().position(|h| h == "sf__Error");
        for row in reader.records() {
            let row = row.map_err(not_csv)?;
            let cells: Vec<String> = place
                .iter()
                .map(|p| p.and_then(|p| row.get(p)).unwrap_or_default().to_string())
                .collect();
            let why = match (&reason, error.and_then(|e| row.get(e))) {
                (Some(reason), _) => reason.clone(),
                (None, Some(e)) => e.trim_end_matches(" --").to_string(),
                (None, None) => "Salesforce refused the record without saying why".into(),
            };
            match by_cells
                .get_mut(cells.as_slice())
                .and_then(VecDeque::pop_front)
            {
                Some(i) => outcomes[i] = Err(why),
                None => unmatched += 1,
            }
        }
    }
    if unmatched > 0 {
        return Err(ConnectorError::fatal(format!(
            "{what}: Salesforce's results of job {id} name {unmatched} records that match none sent; the job's failed results in Salesforce say which"
        )));
    }
    Ok(outcomes)
}

/// A CSV cell as Bulk API 2.0 reads it: empty for a missing value.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
