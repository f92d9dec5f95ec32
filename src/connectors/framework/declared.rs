//! A service declared by a [`Manifest`]: the same [`Service`] and [`Catalog`] as a
//! connector written in Rust, with the plumbing shared with `source.rest` (the page
//! walker, the envelope of errors) and everything else from the framework.

use chrono::{DateTime, TimeZone, Utc};
use oauth2::url::Url;
use serde_json::{Map, Value};

use super::ConnectorError;
use super::catalog::{
    Catalog, Client, EntityDetail, Field, Operation, Outcome, Pages as PageSink, ReadRequest,
    Write, WriteRequest,
};
use super::manifest::{
    BulkDecl, CustomFieldsDecl, EntityDecl, FieldDecl, HttpMethod, Manifest, TimeFormat, WriteDecl,
};
use super::service::{self, Capabilities, Service};
use crate::auth::sign_in::{OAUTH, OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::conditions::{Condition, Operator};
use crate::connectors::pages::{self, PageRequest, Pages, as_text, at_path};
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;
use crate::types::FieldType;

/// A declared service. Its parts live as long as the process: a manifest is read once at
/// start and the registry, like the built-in services, hands out `'static` references.
pub struct Declared {
    catalog: &'static DeclaredCatalog,
    sign_in: &'static ConnectorAuth,
    capabilities: Capabilities,
    entity_word: &'static str,
    icon: &'static str,
}

/// The catalog of a declared service: the manifest itself.
pub struct DeclaredCatalog {
    manifest: Manifest,
}

/// Makes a service of a manifest, for the process's lifetime.
pub fn declare(manifest: Manifest) -> &'static Declared {
    let sign_in = leak(sign_in(&manifest));
    let mut filters: Vec<Operator> = Vec::new();
    let mut writes: Vec<Operation> = Vec::new();
    let mut incremental = false;
    for entity in &manifest.entities {
        if let Some(read) = &entity.read {
            incremental |= read.incremental.is_some();
            for f in &read.filters {
                if !filters.contains(&f.operator) {
                    filters.push(f.operator);
                }
            }
        }
        for w in &entity.writes {
            if !writes.contains(&w.operation) {
                writes.push(w.operation);
            }
        }
    }
    let capabilities = Capabilities {
        entities: true,
        filters: leak(filters).as_slice(),
        incremental,
        writes: leak(writes).as_slice(),
    };
    leak(Declared {
        entity_word: text(&manifest.entity_word),
        icon: text(&manifest.icon),
        catalog: leak(DeclaredCatalog { manifest }),
        sign_in,
        capabilities,
    })
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

fn text(value: &str) -> &'static str {
    Box::leak(value.to_string().into_boxed_str())
}

/// The sign-in of a manifest: the kinds it names, with the settings each needs.
fn sign_in(m: &Manifest) -> ConnectorAuth {
    let mut settings = vec![Setting {
        default: m.base_url.as_deref().map(text),
        required: m.base_url.is_none(),
        ..setting(
            "instance_url",
            "Address",
            text(&match &m.instance_url_example {
                Some(example) => format!("The address of your {} API, e.g. {example}.", m.label),
                None => format!("The address of the {} API.", m.label),
            }),
        )
    }];
    if let Some(key) = &m.sign_in.api_key {
        settings.push(Setting {
            kinds: &[AuthKind::ApiKey],
            default: Some(text(&key.header)),
            ..setting("key_name", "Key header", "The header that carries the key.")
        });
        settings.push(Setting {
            kinds: &[AuthKind::ApiKey],
            default: (!key.prefix.is_empty()).then(|| text(&key.prefix)),
            verbatim: true,
            ..setting("key_prefix", "Key prefix", "Text before the key.")
        });
    }
    if m.sign_in.kinds.contains(&AuthKind::Basic) {
        settings.push(Setting {
            kinds: &[AuthKind::Basic],
            required: true,
            ..setting(
                "username",
                "User name",
                text(m.sign_in.username_help.as_deref().unwrap_or_default()),
            )
        });
    }
    if m.sign_in.oauth.is_some() {
        settings.push(Setting {
            kinds: OAUTH,
            required: true,
            ..setting("client_id", "Client id", "The OAuth client's id.")
        });
        settings.push(Setting {
            kinds: OAUTH,
            ..setting("scopes", "Scopes", "Separated by spaces.")
        });
        settings.push(Setting {
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "callback_port",
                "Callback port",
                "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), for apps registered with an exact redirect URI; empty for any free port.",
            )
        });
    }
    ConnectorAuth {
        connector: text(&m.id),
        label: text(&m.label),
        kinds: leak(m.sign_in.kinds.clone()).as_slice(),
        settings: leak(settings).as_slice(),
        oauth: m.sign_in.oauth.as_ref().map(|o| OAuthEndpoints {
            authorize: text(&o.authorize),
            token: text(&o.token),
            scopes: leak(o.scopes.iter().map(|s| text(s)).collect::<Vec<_>>()).as_slice(),
            extra: &[],
            identity_url_field: None,
        }),
        secrets: &[],
    }
}

impl Service for Declared {
    fn sign_in(&self) -> &'static ConnectorAuth {
        self.sign_in
    }

    /// The manifest's check request, and who it says the credentials belong to.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let catalog: &'static DeclaredCatalog = self.catalog;
        let manifest = &catalog.manifest;
        let client = service::client(self, dirs, name);
        let (dirs, name) = (dirs.clone(), name.to_string());
        Box::pin(async move {
            let client = client?;
            let Some(check) = &manifest.check else {
                let session = service::open(&dirs, &name)?;
                return service::check_sign_in(&dirs, &session, &name).await;
            };
            let url = client.url(&check.path);
            let answer = pages::fetch(
                &client.api,
                &format!("checking the connection `{name}`"),
                Some(&manifest.errors),
                |c| with_headers(c.request(check.method.reqwest(), &url), manifest),
            )
            .await?;
            let json = answer.parsed().unwrap_or(Value::Null);
            Ok(
                match check.identity.as_deref().and_then(|p| at_path(&json, p)) {
                    Some(who) => format!("signed in as {}", as_text(who)),
                    None => format!("{} answered to these credentials", manifest.label),
                },
            )
        })
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(self.catalog)
    }

    fn entity_word(&self) -> &'static str {
        self.entity_word
    }

    fn icon(&self) -> &'static str {
        self.icon
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

fn with_headers(mut request: reqwest::RequestBuilder, m: &Manifest) -> reqwest::RequestBuilder {
    for (name, value) in &m.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.header("Accept", "application/json")
}

impl DeclaredCatalog {
    fn entity(&self, name: &str) -> Result<&EntityDecl, ConnectorError> {
        let m = &self.manifest;
        m.entities.iter().find(|e| e.name == name).ok_or_else(|| {
            let known: Vec<_> = m.entities.iter().map(|e| e.name.as_str()).collect();
            ConnectorError::not_found(format!(
                "{} has no {} `{name}`; it has {}",
                m.label,
                m.entity_word,
                known.join(", ")
            ))
        })
    }

    fn detail(&self, decl: &EntityDecl) -> EntityDetail {
        let read = decl.read.as_ref();
        let cursor = read.and_then(|r| r.incremental.as_ref()).map(|i| &i.field);
        EntityDetail {
            name: decl.name.clone(),
            label: label_of(decl),
            fields: decl
                .fields
                .iter()
                .map(|f| Field {
                    name: f.name.clone(),
                    label: if f.label.is_empty() {
                        f.name.clone()
                    } else {
                        f.label.clone()
                    },
                    data_type: f.field_type.arrow(),
                    filters: read
                        .into_iter()
                        .flat_map(|r| &r.filters)
                        .filter(|x| x.field == f.name)
                        .map(|x| x.operator)
                        .collect(),
                    cursor: cursor == Some(&f.name),
                })
                .collect(),
            id_field: decl.id_field.clone(),
            default_cursor: cursor.cloned(),
            required: read
                .into_iter()
                .flat_map(|r| &r.filters)
                .filter(|f| f.required)
                .map(|f| (f.field.clone(), f.operator))
                .collect(),
            left_out: Vec::new(),
            restated: false,
            change_log: None,
            writes: decl
                .writes
                .iter()
                .map(|w| Write {
                    operation: w.operation,
                    keys: w.keys.clone(),
                    one_key: false,
                })
                .collect(),
        }
    }

    fn headers(&self) -> Vec<(String, String)> {
        self.manifest
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Everything the pages of a read send: the entity's own parameters, the conditions
    /// and the window of an incremental pull, as the manifest maps them.
    fn page_request(
        &self,
        client: &Client,
        decl: &EntityDecl,
        request: &ReadRequest,
    ) -> Result<PageRequest, ConnectorError> {
        let m = &self.manifest;
        let Some(read) = &decl.read else {
            return Err(ConnectorError::fatal(format!(
                "{}'s {} are written, not read",
                m.label, decl.name
            )));
        };
        let url = Url::parse(&client.url(&read.path)).map_err(|e| {
            ConnectorError::fatal(format!("{}: not a URL: {e}", client.url(&read.path)))
        })?;
        let mut query: Vec<(String, String)> = read
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for condition in &request.conditions {
            let filter = read
                .filters
                .iter()
                .find(|f| f.field == condition.field && f.operator == condition.operator)
                .ok_or_else(|| {
                    ConnectorError::fatal(format!(
                        "{} does not filter {} by `{}` {}",
                        m.label,
                        decl.name,
                        condition.field,
                        condition.operator.in_words()
                    ))
                })?;
            let field = decl.field(&condition.field).expect("checked manifest");
            query.push((
                filter.param.clone(),
                param_value(field, filter.format, condition)?,
            ));
        }
        for filter in read.filters.iter().filter(|f| f.required) {
            let given = request
                .conditions
                .iter()
                .any(|c| c.field == filter.field && c.operator == filter.operator);
            if !given {
                return Err(ConnectorError::fatal(format!(
                    "{} reads {} only with a condition: `{}` {} a value",
                    m.label,
                    decl.name,
                    filter.field,
                    filter.operator.in_words()
                )));
            }
        }
        if let Some(inc) = &read.incremental {
            let since = request.cursor.as_ref().and(request.since);
            match since {
                Some(since) => query.push((inc.param.clone(), format_instant(since, inc.format))),
                None => query.extend(inc.first.iter().map(|f| (inc.param.clone(), f.clone()))),
            }
            if since.is_some() || inc.first.is_some() {
                query.extend(inc.query.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        Ok(PageRequest {
            url,
            query,
            method: crate::connectors::pages::Method::Get,
            headers: self.headers(),
            body: None,
            records_path: read.records.clone(),
            pagination: read.pagination.clone(),
            max_pages: read.max_pages,
            envelope: Some(m.errors.clone()),
        })
    }
}

/// The custom fields an account added, as the request that lists them says.
async fn custom_fields(
    client: &Client,
    decl: &CustomFieldsDecl,
    headers: Vec<(String, String)>,
    errors: pages::Envelope,
) -> Result<Vec<Field>, ConnectorError> {
    let address = client.url(&decl.path);
    let request = PageRequest {
        url: Url::parse(&address)
            .map_err(|e| ConnectorError::fatal(format!("{address}: not a URL: {e}")))?,
        query: decl
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        method: pages::Method::Get,
        headers,
        body: None,
        records_path: decl.records.clone(),
        pagination: decl.pagination.clone(),
        max_pages: 1_000,
        envelope: Some(errors),
    };
    let mut pages = Pages::new(&request);
    let mut fields = Vec::new();
    while let (Some(entries), _) = pages.next(&client.api).await? {
        for entry in entries {
            let chosen = decl
                .only
                .as_deref()
                .is_none_or(|only| at_path(&entry, only).and_then(Value::as_bool) == Some(true));
            let Some(id) = at_path(&entry, &decl.id).filter(|v| !v.is_null()) else {
                continue;
            };
            if !chosen {
                continue;
            }
            let id = as_text(id);
            let kind = at_path(&entry, &decl.kind).map(as_text).unwrap_or_default();
            let field_type = decl.types.get(&kind).copied().unwrap_or(FieldType::String);
            fields.push(Field {
                name: format!("{}{id}", decl.prefix),
                label: at_path(&entry, &decl.label).map_or(id, as_text),
                data_type: field_type.arrow(),
                filters: Vec::new(),
                cursor: false,
            });
        }
    }
    Ok(fields)
}

/// The value of a custom field in a record: in its list of `{id, value}` objects; a list
/// of values (a multi-select) as text separated by commas.
fn custom_value(decl: &CustomFieldsDecl, raw: &Value, id: &str) -> Option<Value> {
    let list = at_path(raw, &decl.values)?.as_array()?;
    let entry = list
        .iter()
        .find(|e| e.get("id").map(as_text).as_deref() == Some(id))?;
    Some(match entry.get("value")? {
        Value::Array(items) => {
            Value::String(items.iter().map(as_text).collect::<Vec<_>>().join(","))
        }
        other => other.clone(),
    })
}

/// A record to write with its custom fields gathered into the list the service takes.
fn gather_custom(decl: &CustomFieldsDecl, fields: &mut Map<String, Value>) {
    let names: Vec<String> = fields
        .keys()
        .filter(|k| k.starts_with(&decl.prefix))
        .cloned()
        .collect();
    if names.is_empty() {
        return;
    }
    let mut list = Vec::with_capacity(names.len());
    for name in names {
        let value = fields.remove(&name).unwrap_or(Value::Null);
        let id = &name[decl.prefix.len()..];
        let id = id
            .parse::<i64>()
            .map_or_else(|_| Value::from(id), Value::from);
        list.push(serde_json::json!({"id": id, "value": value}));
    }
    fields.insert(decl.values.clone(), Value::Array(list));
}

fn label_of(decl: &EntityDecl) -> String {
    match decl.label.is_empty() {
        true => decl.name.clone(),
        false => decl.label.clone(),
    }
}

/// A condition's value as the API's parameter takes it: instants in the field's format.
fn param_value(
    field: &FieldDecl,
    format: TimeFormat,
    condition: &Condition,
) -> Result<String, ConnectorError> {
    if condition.value.is_null() || condition.value.is_array() {
        return Err(ConnectorError::fatal(format!(
            "the condition on `{}` takes one value here",
            field.name
        )));
    }
    let text = as_text(&condition.value);
    if field.field_type == FieldType::Timestamp && format == TimeFormat::UnixSeconds {
        let at = DateTime::parse_from_rfc3339(&text).map_err(|e| {
            ConnectorError::fatal(format!(
                "the condition on `{}`: `{text}` is not an instant ({e})",
                field.name
            ))
        })?;
        return Ok(format_instant(
            at.with_timezone(&Utc),
            TimeFormat::UnixSeconds,
        ));
    }
    Ok(text)
}

/// An instant as a parameter. Unix seconds are whole: a pull from the second before
/// reads the records of that second again, and the watermark skips those it has.
fn format_instant(at: DateTime<Utc>, format: TimeFormat) -> String {
    match format {
        TimeFormat::Rfc3339 => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        TimeFormat::UnixSeconds => at.timestamp().to_string(),
    }
}

/// An instant the API wrote, as RFC 3339; `None` when it is not one.
fn parse_instant(value: &Value, format: TimeFormat) -> Option<String> {
    let at = match format {
        TimeFormat::Rfc3339 => return Some(as_text(value)),
        TimeFormat::UnixSeconds => {
            let seconds: f64 = match value {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) => s.trim().parse().ok()?,
                _ => return None,
            };
            // Microseconds are what Slack's `ts` holds and what a timestamp field keeps.
            let micros = (seconds * 1e6).round() as i64;
            Utc.timestamp_micros(micros).single()?
        }
    };
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A record as the entity's fields: each found at its path, instants as RFC 3339. A field
/// the answer leaves out that a condition set equal to a value has that value (the
/// messages of a channel do not repeat the channel).
fn shape(
    decl: &EntityDecl,
    fields: &[String],
    conditions: &[Condition],
    raw: &Value,
) -> Map<String, Value> {
    let mut record = Map::with_capacity(fields.len());
    for name in fields {
        let Some(field) = decl.field(name) else {
            let custom = decl.custom_fields.as_ref().and_then(|c| {
                let id = name.strip_prefix(&c.prefix)?;
                custom_value(c, raw, id)
            });
            record.insert(name.clone(), custom.unwrap_or(Value::Null));
            continue;
        };
        let found = at_path(raw, field.path.as_deref().unwrap_or(&field.name));
        let value = match found {
            Some(v) if !v.is_null() => match field.field_type {
                FieldType::Timestamp if field.format != TimeFormat::Rfc3339 => {
                    parse_instant(v, field.format).map_or_else(|| v.clone(), Value::String)
                }
                _ => v.clone(),
            },
            _ => conditions
                .iter()
                .find(|c| c.field == *name && c.operator == Operator::EqualTo)
                .map(|c| c.value.clone())
                .unwrap_or(Value::Null),
        };
        record.insert(name.clone(), value);
    }
    record
}

impl Catalog for DeclaredCatalog {
    fn entities(&self, _: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        let entities = self
            .manifest
            .entities
            .iter()
            .map(|e| Entity {
                name: e.name.clone(),
                label: label_of(e),
            })
            .collect();
        Box::pin(async move { Ok(entities) })
    }

    fn describe(
        &self,
        client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        let found = self
            .entity(&entity)
            .map(|d| (self.detail(d), d.custom_fields.clone()));
        let (headers, errors) = (self.headers(), self.manifest.errors.clone());
        Box::pin(async move {
            let (mut detail, custom) = found?;
            if let Some(custom) = custom {
                let added = custom_fields(&client, &custom, headers, errors).await?;
                detail.fields.extend(added);
            }
            Ok(detail)
        })
    }

    fn read(
        &self,
        client: Client,
        request: ReadRequest,
        sink: PageSink,
    ) -> BoxFuture<Result<(), ConnectorError>> {
        let prepared = self.entity(&request.entity.name).and_then(|decl| {
            let page_request = self.page_request(&client, decl, &request)?;
            Ok((decl.clone(), page_request))
        });
        Box::pin(async move {
            let (decl, page_request) = prepared?;
            let decl = &decl;
            let mut pages = Pages::new(&page_request);
            let mut left = request.limit;
            while let (Some(records), _) = pages.next(&client.api).await? {
                let mut page: Vec<Map<String, Value>> = records
                    .iter()
                    .map(|r| shape(decl, &request.fields, &request.conditions, r))
                    .collect();
                if let Some(left) = &mut left {
                    page.truncate(*left as usize);
                    *left -= page.len() as u64;
                }
                if sink.send(page).await.is_err() || left == Some(0) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn write(
        &self,
        client: Client,
        request: WriteRequest,
        records: Vec<Map<String, Value>>,
    ) -> BoxFuture<Result<Vec<Outcome>, ConnectorError>> {
        let found = self.entity(&request.entity.name).cloned();
        let m = self.manifest.clone();
        Box::pin(async move {
            let m = &m;
            let decl = found?;
            let write = decl
                .writes
                .iter()
                .find(|w| w.operation == request.operation)
                .ok_or_else(|| {
                    ConnectorError::fatal(format!(
                        "{}'s {} take no {}",
                        m.label,
                        decl.name,
                        request.operation.name()
                    ))
                })?;
            let mut outcomes = Vec::with_capacity(records.len());
            match &write.bulk {
                Some(bulk) if records.len() >= bulk.min => {
                    for chunk in records.chunks(bulk.max) {
                        outcomes.extend(bulk_write(&client, m, &decl, bulk, chunk).await?);
                    }
                }
                _ => {
                    for record in records {
                        outcomes.push(write_one(&client, m, &decl, write, record).await?);
                    }
                }
            }
            Ok(outcomes)
        })
    }
}

/// Sends one record by the write's own path.
async fn write_one(
    client: &Client,
    m: &Manifest,
    decl: &EntityDecl,
    write: &WriteDecl,
    record: Map<String, Value>,
) -> Result<Outcome, ConnectorError> {
    let path = match fill_path(&write.path, &record) {
        Ok(path) => path,
        Err(refused) => return Ok(Err(refused)),
    };
    let mut fields = record.clone();
    for key in &write.keys {
        fields.remove(key);
    }
    if let Some(custom) = &decl.custom_fields {
        gather_custom(custom, &mut fields);
    }
    let body = match &write.body {
        Some(template) => fill_body(template, &record, &fields),
        None => Value::Object(fields),
    };
    let url = client.url(&path);
    let what = format!("{} of a {} record", write.operation.name(), decl.name);
    let answer = pages::fetch_for_answer(&client.api, &what, Some(&m.errors), |c| {
        let r = with_headers(c.request(write.method.reqwest(), &url), m);
        match write.method {
            HttpMethod::Get | HttpMethod::Delete => r,
            _ => r.json(&body),
        }
    })
    .await?;
    Ok(outcome(m, &answer))
}

/// Sends records in one request that starts a job, asks after the job until it has
/// finished, and reads what became of each record from its results. A record the results
/// do not name as taken is refused: nothing is counted as written that the service did
/// not say it took.
async fn bulk_write(
    client: &Client,
    m: &Manifest,
    decl: &EntityDecl,
    bulk: &BulkDecl,
    chunk: &[Map<String, Value>],
) -> Result<Vec<Outcome>, ConnectorError> {
    let job = &bulk.job;
    let list: Vec<Value> = chunk
        .iter()
        .map(|record| {
            let mut fields = record.clone();
            if let Some(custom) = &decl.custom_fields {
                gather_custom(custom, &mut fields);
            }
            Value::Object(fields)
        })
        .collect();
    let body = fill_records(&bulk.body, &list);
    let what = format!("a job writing {} {} records", chunk.len(), decl.name);
    let url = client.url(&bulk.path);
    let started = pages::fetch(&client.api, &what, Some(&m.errors), |c| {
        with_headers(c.request(bulk.method.reqwest(), &url), m).json(&body)
    })
    .await?;
    let started = json_of(&what, &started)?;
    let id = at_path(&started, &job.id)
        .filter(|v| !v.is_null())
        .map(as_text)
        .ok_or_else(|| {
            ConnectorError::fatal(format!("{what}: the answer names no job at `{}`", job.id))
        })?;
    let poll = client.url(
        &fill_path(
            &job.poll,
            &Map::from_iter([("id".to_string(), Value::String(id.clone()))]),
        )
        .map_err(ConnectorError::fatal)?,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(job.timeout);
    let asking = format!("{what}: asking after job {id}");
    let (state, finished) = loop {
        tokio::time::sleep(std::time::Duration::from_secs_f64(job.every)).await;
        let answer = pages::fetch(&client.api, &asking, Some(&m.errors), |c| {
            with_headers(c.get(&poll), m)
        })
        .await?;
        let json = json_of(&asking, &answer)?;
        let state = at_path(&json, &job.status).map(as_text).unwrap_or_default();
        if job.done.contains(&state) || job.failed.contains(&state) {
            break (state, json);
        }
        if std::time::Instant::now() > deadline {
            return Err(ConnectorError::transient(format!(
                "{asking}: still `{state}` after {} s; what it writes may arrive later",
                job.timeout
            )));
        }
    };
    let mut outcomes: Vec<Option<Outcome>> = vec![None; chunk.len()];
    let results = at_path(&finished, &job.results)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (k, result) in results.iter().enumerate() {
        let index = at_path(result, &job.index)
            .and_then(Value::as_u64)
            .map_or(k, |i| i as usize);
        let Some(slot) = outcomes.get_mut(index) else {
            continue;
        };
        *slot = Some(match at_path(result, &job.error).filter(|e| !e.is_null()) {
            None => Ok(()),
            Some(error) => {
                let details = at_path(result, &job.details)
                    .filter(|d| !job.details.is_empty() && !d.is_null())
                    .map(|d| format!(": {}", as_text(d)))
                    .unwrap_or_default();
                Err(format!("{}{details}", as_text(error)))
            }
        });
    }
    let stopped = job.failed.contains(&state);
    let message = at_path(&finished, &job.message)
        .filter(|v| !job.message.is_empty() && !v.is_null())
        .map(as_text);
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(match (stopped, &message) {
                    (true, Some(message)) => format!("the job stopped ({state}): {message}"),
                    (true, None) => format!("the job stopped ({state})"),
                    (false, _) => "the job's results say nothing of this record".into(),
                })
            })
        })
        .collect())
}

fn json_of(what: &str, answer: &pages::Answer) -> Result<Value, ConnectorError> {
    answer
        .parsed()
        .ok_or_else(|| ConnectorError::fatal(format!("{what}: the answer is not JSON")))
}

/// A bulk body: `"{records}"` replaced by the list of records.
fn fill_records(template: &Value, records: &[Value]) -> Value {
    match template {
        Value::String(s) if s == "{records}" => Value::Array(records.to_vec()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill_records(v, records)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_records(v, records)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// What an answer to a write says of its record: taken, or refused with the service's
/// words.
fn outcome(m: &Manifest, answer: &pages::Answer) -> Outcome {
    let json = answer.parsed();
    let refused_by_body = json.as_ref().and_then(|j| m.errors.failure(j));
    if answer.status.is_success() && refused_by_body.is_none() {
        return Ok(());
    }
    let words = match &json {
        Some(json) => m.errors.in_words(json),
        None => crate::connectors::http::preview(&String::from_utf8_lossy(&answer.body)),
    };
    Err(match answer.status.is_success() {
        true => words,
        false => format!("{} ({})", words, answer.status),
    })
}

/// A write's path with the record's values in it; a refusal when the record lacks one.
fn fill_path(template: &str, record: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + len];
        let value = record
            .get(name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| format!("the record has no `{name}` to find it by"))?;
        out.push_str(&rest[..start]);
        for byte in as_text(value).bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(byte as char)
                }
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A body template filled from a record: `"{record}"` is the record's fields but the
/// keys, `"{field}"` the field's value as it is, and `{field}` inside other text that
/// value as text.
fn fill_body(template: &Value, record: &Map<String, Value>, fields: &Map<String, Value>) -> Value {
    match template {
        Value::String(s) if s == "{record}" => Value::Object(fields.clone()),
        Value::String(s)
            if s.starts_with('{') && s.ends_with('}') && !s[1..s.len() - 1].contains('{') =>
        {
            record
                .get(&s[1..s.len() - 1])
                .cloned()
                .unwrap_or(Value::Null)
        }
        Value::String(s) => {
            let mut out = s.clone();
            for (name, value) in record {
                let placeholder = format!("{{{name}}}");
                if out.contains(&placeholder) {
                    let text = if value.is_null() {
                        String::new()
                    } else {
                        as_text(value)
                    };
                    out = out.replace(&placeholder, &text);
                }
            }
            Value::String(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| fill_body(v, record, fields)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_body(v, record, fields)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_and_paths_are_filled_from_the_record() {
        let record = json!({"id": 7, "subject": "Hi", "channel": "C1", "n": null});
        let record = record.as_object().unwrap();
        let mut fields = record.clone();
        fields.remove("id");
        assert_eq!(
            fill_path("/api/v2/tickets/{id}.json", record).unwrap(),
            "/api/v2/tickets/7.json"
        );
        assert!(fill_path("/x/{n}", record).unwrap_err().contains("`n`"));
        let body = fill_body(
            &json!({"ticket": "{record}", "channel": "{channel}", "text": "About {subject}"}),
            record,
            &fields,
        );
        assert_eq!(
            body,
            json!({
                "ticket": {"subject": "Hi", "channel": "C1", "n": null},
                "channel": "C1",
                "text": "About Hi"
            })
        );
    }

    #[test]
    fn unix_seconds_become_instants_with_their_fraction() {
        assert_eq!(
            parse_instant(&json!("1512085950.000216"), TimeFormat::UnixSeconds).unwrap(),
            "2017-11-30T23:52:30.000216Z"
        );
        assert_eq!(
            parse_instant(&json!(1700000000), TimeFormat::UnixSeconds).unwrap(),
            "2023-11-14T22:13:20Z"
        );
        let at = DateTime::parse_from_rfc3339("2023-11-14T22:13:20.9Z").unwrap();
        assert_eq!(
            format_instant(at.with_timezone(&Utc), TimeFormat::UnixSeconds),
            "1700000000"
        );
    }
}
