//! SAP through OData (v2, as SAP Gateway serves most S/4HANA and ECC APIs, and v4): a
//! connection is one OData service (`instance_url`, e.g.
//! `https://my-s4.example.com/sap/opu/odata/sap/API_PRODUCT_SRV`); its entity sets, their
//! properties, types and keys come from `$metadata`. Reads select the chosen properties,
//! push the node's conditions into `$filter`, and page with `$top`/`$skip` or by the
//! service's own next links (`__next`, `@odata.nextLink`). Incremental pulls follow the
//! set's delta links where the service tracks its changes (`Prefer: odata.track-changes`,
//! `!deltatoken` / `$deltatoken`: changes and deletions since the last run), otherwise a
//! modified-at property (`LastChangeDateTime`…) with the framework's watermark. Writes
//! fetch a CSRF token first (`X-CSRF-Token: Fetch`), as SAP Gateway requires, and send one
//! record a request; a refused record keeps SAP's message.

mod batch;
mod metadata;
mod odata;

use arrow::datatypes::DataType;
use serde_json::{Map, Value};

use super::framework::catalog::{
    Catalog, ChangeLog, Client, EntityDetail, Field, Operation, Options, Outcome, Pages, REMOVED,
    ReadRequest, Write, WriteRequest,
};
use super::framework::service::{ALL_OPERATORS, Capabilities};
use super::framework::{ConnectorError, Service, service};
use crate::auth::sign_in::{Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth, sign_in::OAuthEndpoints};
use crate::conditions::Operator;
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;
use metadata::{EntitySet, Metadata, Property, Version};

pub struct Sap;

impl Service for Sap {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&Sap)
    }

    /// Reads the service's `$metadata`: the credentials, the address and the service
    /// are all checked by it.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let client = service::client(self, dirs, name);
        Box::pin(async move {
            let client = client?;
            let found = metadata(&client).await?;
            Ok(format!(
                "connected to {}: OData {}, {} entity sets",
                client.base,
                match found.version {
                    Version::V2 => "v2",
                    Version::V4 => "v4",
                },
                found.sets.len()
            ))
        })
    }

    fn entity_word(&self) -> &'static str {
        "entity set"
    }

    fn icon(&self) -> &'static str {
        "🏭"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            entities: true,
            filters: ALL_OPERATORS,
            incremental: true,
            writes: &[Operation::Insert, Operation::Update, Operation::Delete],
        }
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "sap",
    label: "SAP OData",
    kinds: &[AuthKind::Basic, AuthKind::OAuth2ClientCredentials],
    settings: &[
        Setting {
            required: true,
            ..setting(
                "instance_url",
                "Service URL",
                "The OData service's root, e.g. https://my-s4.example.com/sap/opu/odata/sap/API_PRODUCT_SRV.",
            )
        },
        Setting {
            kinds: &[AuthKind::Basic],
            required: true,
            ..setting(
                "username",
                "User name",
                "A communication user allowed to call the service.",
            )
        },
        Setting {
            kinds: &[AuthKind::OAuth2ClientCredentials],
            required: true,
            ..setting(
                "client_id",
                "Client id",
                "The client id of the communication arrangement or service key.",
            )
        },
        Setting {
            kinds: &[AuthKind::OAuth2ClientCredentials],
            required: true,
            ..setting(
                "token_url",
                "Token URL",
                "Where tokens are issued, e.g. https://acme.authentication.eu10.hana.ondemand.com/oauth/token.",
            )
        },
        setting(
            "sap_client",
            "SAP client",
            "The client (Mandant) to log on to, e.g. 100; the system's default when empty.",
        ),
    ],
    oauth: Some(OAuthEndpoints {
        authorize: "{token_url}",
        token: "{token_url}",
        scopes: &[],
        extra: &[],
        identity_url_field: None,
    }),
    secrets: &[],
};

/// The SAP source's `options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SapReadOptions")]
pub struct ReadOptions {
    /// Records asked for per request (`$top`); the service may send them in smaller
    /// pages by its next links. Lower it for services that time out on large pages.
    #[serde(default = "page_size")]
    pub page_size: u64,
}

fn page_size() -> u64 {
    1000
}

/// The SAP destination's `options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SapWriteOptions")]
pub struct WriteOptions {
    /// Changes sent together in one `$batch` request, each in a change set of its own;
    /// 1 sends one request a record, for services without `$batch`.
    #[serde(default = "batch_size")]
    pub batch_size: usize,
}

fn batch_size() -> usize {
    100
}

/// Records one write call takes: each call fetches a fresh CSRF token.
const WRITE_CHUNK: usize = 500;

/// Names SAP's APIs give the instant of a record's last change, most usual first.
const CHANGED: &[&str] = &[
    "LastChangeDateTime",
    "LastChangedDateTime",
    "LastModifiedDateTime",
    "ChangedOn",
    "LastChangeDate",
    "ModifiedAt",
];

impl Catalog for Sap {
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async move {
            Ok(metadata(&client)
                .await?
                .sets
                .into_iter()
                .map(|s| Entity {
                    name: s.name,
                    label: s.label,
                })
                .collect())
        })
    }

    fn describe(
        &self,
        client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        Box::pin(async move {
            let found = metadata(&client).await?;
            Ok(detail(set(&found, &entity)?))
        })
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
        Box::pin(async move { write(&client, &request, records).await })
    }

    fn write_chunk(&self, _client: &Client, _request: &WriteRequest) -> usize {
        WRITE_CHUNK
    }

    fn read_options(&self) -> Option<Options> {
        Some(Options::of::<ReadOptions>())
    }

    fn write_options(&self) -> Option<Options> {
        Some(Options::of::<WriteOptions>())
    }
}

/// Adds the SAP client (`sap-client=100`) to a request when the connection names one.
fn with_client(client: &Client, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match client.setting("sap_client") {
        Some(n) if !n.is_empty() => request.query(&[("sap-client", n)]),
        _ => request,
    }
}

/// The service's `$metadata`.
async fn metadata(client: &Client) -> Result<Metadata, ConnectorError> {
    let url = client.url("/$metadata");
    let response = client
        .api
        .send("reading the service's $metadata", |c| {
            with_client(client, c.get(&url).header("Accept", "application/xml"))
        })
        .await
        .map_err(|e| match e.status {
            Some(404) => ConnectorError::not_found(format!(
                "there is no OData service at {}: check the connection's service URL",
                client.base
            )),
            _ => e.map_message(in_words),
        })?;
    let text = response.text().await.map_err(|e| {
        ConnectorError::transient(format!("reading the service's $metadata broke off: {e}"))
    })?;
    metadata::parse(&text)
        .map_err(|e| ConnectorError::fatal(format!("{}/$metadata: {e}", client.base)))
}

fn set<'m>(found: &'m Metadata, name: &str) -> Result<&'m EntitySet, ConnectorError> {
    found
        .sets
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ConnectorError::not_found(format!("the service has no entity set `{name}`")))
}

/// Operators by kind of property, as `$filter` takes them.
const ORDERED: &[Operator] = &[
    Operator::EqualTo,
    Operator::NotEqualTo,
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessThanOrEqualTo,
    Operator::GreaterThanOrEqualTo,
    Operator::Between,
];

/// An entity set as the framework knows entities.
fn detail(set: &EntitySet) -> EntityDetail {
    let fields: Vec<Field> = set
        .properties
        .iter()
        .map(|p| {
            let data_type = p.arrow_type();
            let filters = match (p.filterable, &data_type) {
                (false, _) => Vec::new(),
                (true, DataType::Utf8) => ALL_OPERATORS.to_vec(),
                (true, DataType::Boolean) => vec![Operator::EqualTo, Operator::NotEqualTo],
                (true, _) => ORDERED.to_vec(),
            };
            Field {
                name: p.name.clone(),
                label: p.label.clone(),
                cursor: matches!(data_type, DataType::Timestamp(..)) && p.filterable,
                data_type,
                filters,
            }
        })
        .collect();
    let cursors: Vec<&str> = (fields.iter().filter(|f| f.cursor))
        .map(|f| f.name.as_str())
        .collect();
    let default_cursor = CHANGED
        .iter()
        .find(|c| cursors.contains(c))
        .copied()
        .or_else(|| {
            let changed = |n: &&str| {
                let n = n.to_ascii_lowercase();
                n.contains("change") || n.contains("modif")
            };
            cursors.iter().copied().find(changed)
        })
        .map(String::from);
    let keyed = |operation| Write {
        operation,
        keys: set.keys.clone(),
        one_key: false,
    };
    let mut writes = Vec::new();
    if set.creatable {
        writes.push(Write {
            operation: Operation::Insert,
            keys: Vec::new(),
            one_key: false,
        });
    }
    if set.updatable && !set.keys.is_empty() {
        writes.push(keyed(Operation::Update));
    }
    if set.deletable && !set.keys.is_empty() {
        writes.push(keyed(Operation::Delete));
    }
    EntityDetail {
        name: set.name.clone(),
        label: set.label.clone(),
        fields,
        id_field: match set.keys.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        default_cursor,
        writes,
        required: Vec::new(),
        left_out: Vec::new(),
        restated: false,
        change_log: set.change_tracking.then(|| set.keys.clone()),
    }
}

/// SAP's error bodies (`{"error": {"code", "message": {"value"}}}` in v2, `{"error":
/// {"code", "message"}}` in v4) said in a sentence.
fn in_words(message: &str) -> String {
    let Some(start) = message.find('{') else {
        return message.to_string();
    };
    match error_text(&message[start..]) {
        Some(text) => format!("{}{text}", &message[..start]),
        None => message.to_string(),
    }
}

/// The code and message of an OData error body.
fn error_text(body: &str) -> Option<String> {
    let body: Value = serde_json::from_str(body).ok()?;
    let error = body.get("error")?;
    let message = match &error["message"] {
        Value::String(s) => s.clone(),
        other => other["value"].as_str()?.to_string(),
    };
    Some(match error["code"].as_str() {
        Some(code) if !code.is_empty() => format!("{code}: {message}"),
        _ => message,
    })
}

/// Reads the records a pull asks for: `$top` at a time, each followed through the
/// service's next links, the next `$top` asked for after the last record read.
async fn read(client: &Client, request: ReadRequest, pages: Pages) -> Result<(), ConnectorError> {
    let found = metadata(client).await?;
    let version = found.version;
    let set = set(&found, &request.entity.name)?;
    let property = |name: &str| {
        set.properties
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ConnectorError::fatal(format!("{} has no property `{name}`", set.name)))
    };
    let mut filter: Vec<String> = Vec::new();
    for c in &request.conditions {
        filter.push(
            odata::condition(c, property(&c.field)?, version).map_err(ConnectorError::fatal)?,
        );
    }
    if let Some(cursor) = &request.cursor {
        let p = property(cursor)?;
        if let Some(since) = request.since {
            filter.push(format!(
                "{cursor} ge {}",
                odata::instant_literal(since, p, version)
            ));
        }
        if let Some(until) = request.until {
            filter.push(format!(
                "{cursor} lt {}",
                odata::instant_literal(until, p, version)
            ));
        }
    }
    // A stable order: by the cursor, then the key.
    let order: Vec<&str> = request
        .cursor
        .iter()
        .map(String::as_str)
        .chain(set.keys.iter().map(String::as_str))
        .collect();
    let chosen: Vec<&Property> = request
        .fields
        .iter()
        .map(|f| property(f))
        .collect::<Result<_, _>>()?;
    // With one key, each `$top` after the first asks for the records after the last one
    // read (by cursor and key), as ServiceNow's pages do: an offset (`$skip`) shifts when
    // a record before it changes or goes while the run reads, and a record slides past
    // unread. Entity sets with a compound key page by offset.
    let key = match set.keys.as_slice() {
        [one] => Some(property(one)?),
        _ => None,
    };
    let cursor = request.cursor.as_deref().map(property).transpose()?;
    let page_size = client.options::<ReadOptions>()?.page_size.max(1);
    if let Some(log) = &request.log {
        let mut query = vec![("$select", request.fields.join(","))];
        if !filter.is_empty() {
            query.push(("$filter", filter.join(" and ")));
        }
        if version == Version::V2 {
            query.push(("$format", "json".into()));
        }
        if let Some(limit) = request.limit {
            query.push(("$top", limit.to_string()));
        }
        return read_log(client, set, version, &chosen, &query, log, pages).await;
    }
    let mut query: Vec<(&str, String)> = vec![("$select", request.fields.join(","))];
    if !order.is_empty() {
        query.push(("$orderby", order.join(",")));
    }
    if version == Version::V2 {
        query.push(("$format", "json".into()));
    }
    let url = client.url(&format!("/{}", set.name));
    let what = format!("reading {}", set.name);
    let mut read: u64 = 0;
    let mut after: Option<String> = None;
    loop {
        let top = request
            .limit
            .map_or(page_size, |l| (l - read).min(page_size));
        let mut asked = query.clone();
        let terms: Vec<&str> = filter.iter().chain(&after).map(String::as_str).collect();
        if !terms.is_empty() {
            asked.insert(1, ("$filter", terms.join(" and ")));
        }
        asked.push(("$top", top.to_string()));
        if key.is_none() && read > 0 {
            asked.push(("$skip", read.to_string()));
        }
        // The records of this `$top`, through the service's next links.
        let mut next: Option<String> = None;
        let mut got: u64 = 0;
        let mut last: Option<Map<String, Value>> = None;
        loop {
            let answer = fetch(client, &what, &url, &asked, next.as_deref(), false).await?;
            let (rows, link) = page_of(&answer, version).ok_or_else(|| {
                ConnectorError::fatal(format!("{what}: the answer holds no records"))
            })?;
            got += rows.len() as u64;
            let records: Vec<Map<String, Value>> = rows
                .iter()
                .filter_map(Value::as_object)
                .map(|row| record(row, &chosen))
                .collect();
            last = records.last().cloned().or(last);
            if !records.is_empty() && pages.send(records).await.is_err() {
                return Ok(());
            }
            match link {
                Some(link) => next = Some(absolute(client, &link)),
                None => break,
            }
        }
        read += got;
        if got < top || request.limit.is_some_and(|l| read >= l) {
            return Ok(());
        }
        if let (Some(key), Some(last)) = (key, &last) {
            after = Some(after_clause(last, key, cursor, version)?);
        }
    }
}

/// One answer of a read: the first request (`url` with `query`), or the service's next
/// or delta `link`; `track` asks the service to track the read's changes.
async fn fetch(
    client: &Client,
    what: &str,
    url: &str,
    query: &[(&str, String)],
    link: Option<&str>,
    track: bool,
) -> Result<Value, ConnectorError> {
    let (answer, _) = client
        .api
        .get_json(what, |c| {
            let r = match link {
                Some(link) => c.get(link),
                None => with_client(client, c.get(url).query(query)),
            };
            let r = r.header("Accept", "application/json");
            match track {
                true => r.header("Prefer", "odata.track-changes"),
                false => r,
            }
        })
        .await
        .map_err(|e| e.map_message(in_words))?;
    Ok(answer)
}

/// A row of an answer as a record of the chosen properties.
fn record(row: &Map<String, Value>, chosen: &[&Property]) -> Map<String, Value> {
    chosen
        .iter()
        .map(|p| {
            let value = row.get(&p.name).cloned().unwrap_or(Value::Null);
            (p.name.clone(), odata::read_value(value, p))
        })
        .collect()
}

/// Reads by the set's change log. The first run asks for every record with
/// `Prefer: odata.track-changes` and is given a delta link on the last page; each later
/// run reads the link it was given, whose pages hold the records changed since (their
/// values now) and the deleted ones, and end with the next delta link. The framework
/// saves that link only once the run's output is committed: a failed run reads the
/// same changes again.
async fn read_log(
    client: &Client,
    set: &EntitySet,
    version: Version,
    chosen: &[&Property],
    query: &[(&str, String)],
    log: &ChangeLog,
    pages: Pages,
) -> Result<(), ConnectorError> {
    let what = format!("reading the changes of {}", set.name);
    let url = client.url(&format!("/{}", set.name));
    let mut next = log.since.clone();
    let mut delta = None;
    loop {
        let answer = fetch(client, &what, &url, query, next.as_deref(), true).await?;
        let (rows, link) = page_of(&answer, version)
            .ok_or_else(|| ConnectorError::fatal(format!("{what}: the answer holds no records")))?;
        let records: Vec<Map<String, Value>> = rows
            .iter()
            .filter_map(Value::as_object)
            .map(|row| {
                removed(row, set).unwrap_or_else(|| {
                    let mut r = record(row, chosen);
                    r.insert(REMOVED.into(), Value::Null);
                    r
                })
            })
            .collect();
        let delta_link = match version {
            Version::V2 => answer["d"]["__delta"].as_str(),
            Version::V4 => answer["@odata.deltaLink"].as_str(),
        };
        delta = delta_link.map(|l| absolute(client, l)).or(delta);
        if !records.is_empty() && pages.send(records).await.is_err() {
            return Ok(());
        }
        match link {
            Some(link) => next = Some(absolute(client, &link)),
            None => break,
        }
    }
    match delta {
        Some(link) => {
            log.reached(link);
            Ok(())
        }
        // A preview's sample has no need of one.
        None if query.iter().any(|(k, _)| *k == "$top") => Ok(()),
        None => Err(ConnectorError::fatal(format!(
            "{what}: SAP gave no delta link, so it does not track this set's changes for this read; set `cursor_field` to a modified-at property (such as LastChangeDateTime) to find changes by it instead"
        ))),
    }
}

/// A deleted entry of a delta answer as a record of its keys and why it went: OData
/// 4.0's `{"@odata.context": "…#A_Product/$deletedEntity", "id": "A_Product('P1')",
/// "reason": "deleted"}` (which v2 services with delta links write too), or 4.01's
/// `{"@removed": {"reason": "deleted"}, "@id": …}`, with the key properties or an id.
/// `None` for a record that is there.
fn removed(row: &Map<String, Value>, set: &EntitySet) -> Option<Map<String, Value>> {
    let text = |names: &[&str]| names.iter().find_map(|n| row.get(*n)?.as_str());
    let marker = row.get("@removed").or_else(|| row.get("@odata.removed"));
    let deleted_entity =
        text(&["@odata.context", "@context"]).is_some_and(|c| c.ends_with("/$deletedEntity"));
    if marker.is_none() && !deleted_entity {
        return None;
    }
    let reason = marker
        .and_then(|m| m["reason"].as_str())
        .or_else(|| text(&["reason"]))
        .unwrap_or("deleted");
    let from_id = text(&["@id", "@odata.id", "id"])
        .map(|id| odata::key_of(id, &set.name))
        .unwrap_or_default();
    let mut out = Map::new();
    for (i, key) in set.keys.iter().enumerate() {
        let value = row.get(key).cloned().or_else(|| {
            let named = from_id
                .iter()
                .find(|(n, _)| n.as_deref() == Some(key.as_str()));
            let (_, text) = named.or_else(|| from_id.get(i).filter(|(n, _)| n.is_none()))?;
            Some(Value::String(text.clone()))
        });
        let p = set.properties.iter().find(|p| &p.name == key)?;
        out.insert(
            key.clone(),
            odata::read_value(value.unwrap_or(Value::Null), p),
        );
    }
    out.insert(REMOVED.into(), Value::String(reason.into()));
    Some(out)
}

/// "After this record" in the pull's order: a later cursor value, or the same and a
/// later key.
fn after_clause(
    last: &Map<String, Value>,
    key: &Property,
    cursor: Option<&Property>,
    version: Version,
) -> Result<String, ConnectorError> {
    let value = |p: &Property| {
        let v = last.get(&p.name).unwrap_or(&Value::Null);
        odata::literal(v, p, version).map_err(ConnectorError::fatal)
    };
    let k = &key.name;
    let by_key = format!("{k} gt {}", value(key)?);
    Ok(match cursor {
        None => by_key,
        Some(c) => {
            let (name, at) = (&c.name, value(c)?);
            format!("({name} gt {at} or ({name} eq {at} and {by_key}))")
        }
    })
}

/// The records of an answer and its next link: v2's `{"d": {"results": […], "__next"}}`
/// (or `{"d": […]}`), v4's `{"value": […], "@odata.nextLink"}`.
fn page_of(answer: &Value, version: Version) -> Option<(&Vec<Value>, Option<String>)> {
    let (rows, link) = match version {
        Version::V2 => match &answer["d"] {
            Value::Array(rows) => (rows, None),
            d => (d["results"].as_array()?, d["__next"].as_str()),
        },
        Version::V4 => (
            answer["value"].as_array()?,
            answer["@odata.nextLink"].as_str(),
        ),
    };
    Some((rows, link.map(String::from)))
}

/// A next link as a URL: services give them absolute or relative to the service root.
fn absolute(client: &Client, link: &str) -> String {
    match link.starts_with("http://") || link.starts_with("https://") {
        true => link.to_string(),
        false => format!("{}/{}", client.base, link.trim_start_matches('/')),
    }
}

/// A CSRF token and the session cookies it belongs to.
struct Csrf {
    token: String,
    cookies: String,
}

/// Fetches a CSRF token: SAP Gateway refuses changes without one, and ties it to the
/// session its cookies name.
async fn csrf(client: &Client) -> Result<Csrf, ConnectorError> {
    let url = client.url("/");
    let response = client
        .api
        .send("fetching a CSRF token", |c| {
            with_client(
                client,
                c.get(&url)
                    .header("X-CSRF-Token", "Fetch")
                    .header("Accept", "application/json"),
            )
        })
        .await
        .map_err(|e| e.map_message(in_words))?;
    let headers = response.headers();
    let token = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let cookies: Vec<&str> = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .collect();
    Ok(Csrf {
        token,
        cookies: cookies.join("; "),
    })
}

/// Sends the records, `options.batch_size` at a time in one `$batch` request (each in a
/// change set of its own, so that one refused record does not refuse the others), or
/// one request each when it is 1; says of each whether SAP took it.
async fn write(
    client: &Client,
    request: &WriteRequest,
    records: Vec<Map<String, Value>>,
) -> Result<Vec<Outcome>, ConnectorError> {
    let batch_size = client.options::<WriteOptions>()?.batch_size.max(1);
    let found = metadata(client).await?;
    let version = found.version;
    let set = set(&found, &request.entity.name)?;
    let mut token = csrf(client).await?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(records.len());
    // Records that cannot be sent are refused here; the others wait for their answer.
    let mut waiting: Vec<(usize, Change)> = Vec::new();
    for (i, record) in records.into_iter().enumerate() {
        outcomes.push(Ok(()));
        match change(set, version, request, record) {
            Ok(change) => waiting.push((i, change)),
            Err(refused) => outcomes[i] = Err(refused),
        }
    }
    let what = format!("{} of {} records", request.operation.name(), set.name);
    for group in waiting.chunks(batch_size) {
        let answers = match batch_size {
            1 => {
                let (_, change) = &group[0];
                let url = client.url(&format!("/{}", change.path));
                let response = guarded(client, &mut token, &what, |c| {
                    let (method, tunnel) = change.http(version);
                    let mut r = c.request(method, &url).header("Accept", "application/json");
                    if let Some(tunnel) = tunnel {
                        r = r.header("X-HTTP-Method", tunnel);
                    }
                    if let Some(body) = &change.body {
                        r = r.json(body);
                    }
                    r
                })
                .await?;
                let status = response.status().as_u16();
                vec![(status, response.text().await.unwrap_or_default())]
            }
            _ => {
                let changes: Vec<&Change> = group.iter().map(|(_, c)| c).collect();
                let boundary = format!("batch_{}", uuid::Uuid::now_v7().simple());
                let body = batch::request(&changes, version, &boundary);
                let url = client.url("/$batch");
                let response = guarded(client, &mut token, &what, |c| {
                    c.post(&url)
                        .header(
                            "Content-Type",
                            format!("multipart/mixed; boundary={boundary}"),
                        )
                        .body(body.clone())
                })
                .await?;
                let status = response.status();
                let kind = (response.headers().get("content-type"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let text = response.text().await.map_err(|e| {
                    ConnectorError::transient(format!("{what}: the $batch answer broke off: {e}"))
                })?;
                if !status.is_success() {
                    return Err(ConnectorError::of_status(
                        status.as_u16(),
                        format!(
                            "{what}: SAP refused the $batch request ({status}): {}",
                            error_text(&text).unwrap_or(text)
                        ),
                    ));
                }
                let answers = batch::answers(&kind, &text)
                    .map_err(|e| ConnectorError::fatal(format!("{what}: {e}")))?;
                if answers.len() != group.len() {
                    return Err(ConnectorError::fatal(format!(
                        "{what}: SAP answered {} of the {} changes sent in one $batch",
                        answers.len(),
                        group.len()
                    )));
                }
                answers
            }
        };
        for ((i, _), (status, body)) in group.iter().zip(answers) {
            if !(200..300).contains(&status) {
                outcomes[*i] = Err(error_text(&body)
                    .unwrap_or_else(|| format!("SAP refused the record ({status})")));
            }
        }
    }
    Ok(outcomes)
}

/// Sends a change with the CSRF token and the session's cookies; a token the system has
/// dropped (`403` with `X-CSRF-Token: Required`) is fetched again and the change sent
/// once more. Refusals come back as answers.
async fn guarded(
    client: &Client,
    token: &mut Csrf,
    what: &str,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, ConnectorError> {
    let mut renewed = false;
    loop {
        let current = &*token;
        let response = client
            .api
            .send_for_answer(what, |c| {
                let mut r = make(c).header("X-CSRF-Token", &current.token);
                if !current.cookies.is_empty() {
                    r = r.header("Cookie", &current.cookies);
                }
                with_client(client, r)
            })
            .await
            .map_err(|e| e.map_message(in_words))?;
        let dropped = response.status().as_u16() == 403
            && (response.headers().get("x-csrf-token"))
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"required"));
        if !dropped || renewed {
            return Ok(response);
        }
        *token = csrf(client).await?;
        renewed = true;
    }
}

/// One record's change: its method, its path below the service root, its body.
struct Change {
    operation: Operation,
    path: String,
    body: Option<Value>,
}

impl Change {
    /// The method a request sends it with, and the method it stands for when v2 tunnels
    /// `MERGE` through `POST` (outside a `$batch`, where `MERGE` is written as it is).
    fn http(&self, version: Version) -> (reqwest::Method, Option<&'static str>) {
        match (self.operation, version) {
            (Operation::Insert, _) => (reqwest::Method::POST, None),
            (Operation::Delete, _) => (reqwest::Method::DELETE, None),
            (_, Version::V2) => (reqwest::Method::POST, Some("MERGE")),
            (_, Version::V4) => (reqwest::Method::PATCH, None),
        }
    }

    /// The method as a `$batch` part writes it.
    fn verb(&self, version: Version) -> &'static str {
        match self.http(version) {
            (_, Some(tunnelled)) => tunnelled,
            (m, None) if m == reqwest::Method::POST => "POST",
            (m, None) if m == reqwest::Method::DELETE => "DELETE",
            _ => "PATCH",
        }
    }
}

/// A record as a change. A record that cannot be sent is refused with why.
fn change(
    set: &EntitySet,
    version: Version,
    request: &WriteRequest,
    record: Map<String, Value>,
) -> Result<Change, String> {
    let body = || {
        let values: Map<String, Value> = record
            .iter()
            .filter_map(|(name, value)| {
                let p = set.properties.iter().find(|p| &p.name == name)?;
                Some((name.clone(), odata::write_value(value.clone(), p, version)))
            })
            .collect();
        Some(Value::Object(values))
    };
    if request.operation == Operation::Insert {
        return Ok(Change {
            operation: Operation::Insert,
            path: set.name.clone(),
            body: body(),
        });
    }
    let keys = match request.keys.is_empty() {
        true => &set.keys,
        false => &request.keys,
    };
    let mut terms = Vec::with_capacity(keys.len());
    for key in keys {
        let p = (set.properties.iter().find(|p| &p.name == key))
            .ok_or_else(|| format!("{} has no key `{key}`", set.name))?;
        let value = record.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
            format!(
                "the record has no `{key}` to find the {} record by",
                set.name
            )
        })?;
        let literal = odata::literal(value, p, version)?;
        terms.push(match keys.len() {
            1 => encode(&literal),
            _ => format!("{key}={}", encode(&literal)),
        });
    }
    Ok(Change {
        operation: request.operation,
        path: format!("{}({})", set.name, terms.join(",")),
        body: match request.operation {
            Operation::Delete => None,
            _ => body(),
        },
    })
}

/// A key literal as a URL carries it: what would end or break the path is escaped.
fn encode(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        match c {
            '%' | '/' | '?' | '#' | ' ' | '&' | '+' | '"' | '\\' => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts() -> EntitySet {
        let property = |name: &str, edm: &str| Property {
            name: name.into(),
            label: name.into(),
            edm: edm.into(),
            precision: None,
            scale: None,
            filterable: true,
        };
        EntitySet {
            name: "Texts".into(),
            label: "Texts".into(),
            properties: vec![
                property("Product", "Edm.String"),
                property("Line", "Edm.Int32"),
                property("Text", "Edm.String"),
            ],
            keys: vec!["Product".into(), "Line".into()],
            creatable: false,
            updatable: false,
            deletable: false,
            change_tracking: true,
        }
    }

    fn row(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn deleted_entries_of_either_format_become_their_keys_and_why() {
        let set = texts();
        let gone = |v: Value| removed(&row(v), &set);
        // OData 4.0 (and v2 services with delta links): the entity id.
        assert_eq!(
            gone(json!({
                "@odata.context": "$metadata#Texts/$deletedEntity",
                "id": "https://s4.example.com/svc/Texts(Product='P1',Line=2)",
                "reason": "changed"
            })),
            Some(row(
                json!({"Product": "P1", "Line": 2, "_removed": "changed"})
            ))
        );
        // OData 4.01: `@removed`, with the key properties themselves.
        assert_eq!(
            gone(json!({"@removed": {"reason": "deleted"}, "Product": "P2", "Line": 7})),
            Some(row(
                json!({"Product": "P2", "Line": 7, "_removed": "deleted"})
            ))
        );
        assert_eq!(
            gone(json!({"@removed": {}, "@id": "Texts(Product='P3',Line=1)"})),
            Some(row(
                json!({"Product": "P3", "Line": 1, "_removed": "deleted"})
            ))
        );
        // A record that is there.
        assert_eq!(gone(json!({"Product": "P4", "Line": 1, "Text": "x"})), None);
    }
}
