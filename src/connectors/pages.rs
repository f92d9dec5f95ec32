//! Walking the pages of a JSON (or CSV) API: the five ways APIs hand out pages, the
//! records at a path of each answer, and APIs that report failures in the body of a `200`.
//! `source.rest` and the connectors declared by manifests read through this one walker.

use std::collections::BTreeMap;

use oauth2::url::Url;
use reqwest::header::HeaderMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::bytes::Bytes;

use super::framework::{ConnectorError, ErrorKind};
use super::http::{Api, rate_limit_wait};

/// How pages are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    #[default]
    Get,
    Post,
}

impl Method {
    pub fn is_get(&self) -> bool {
        *self == Method::Get
    }
}

/// How the pages after the first are asked for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One answer holds every record.
    #[default]
    None,
    /// Each answer names the next page's URL: at a dot path of the body (`next`,
    /// `links.next`), or with an empty path in the `Link` header (`rel="next"`), as GitHub
    /// and Zendesk do.
    NextLink {
        #[serde(default)]
        path: String,
        /// A dot path to a boolean that is true on the last page, e.g. `end_of_stream`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        end: String,
        /// A dot path to a boolean that is false on the last page, e.g. `meta.has_more`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        more: String,
    },
    /// Each answer carries a cursor that the next request sends back, as Slack's
    /// `response_metadata.next_cursor` → `cursor`. No cursor, or an empty one, ends it.
    Cursor {
        /// Where the cursor is in the answer.
        path: String,
        /// The query parameter that takes it.
        param: String,
        /// A dot path to a boolean that is true on the last page, e.g. `end_of_stream`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        end: String,
        /// A dot path to a boolean that is false on the last page, e.g. `meta.has_more`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        more: String,
    },
    /// Numbered pages: `page=1`, `page=2`… until a page has fewer records than `size` (or
    /// none).
    PageNumber {
        #[serde(default = "page")]
        param: String,
        #[serde(default = "one")]
        start: u64,
        /// The query parameter for the page size, e.g. `per_page`; empty when the API has
        /// none.
        #[serde(default)]
        size_param: String,
        #[serde(default = "hundred")]
        size: u64,
    },
    /// Offsets: `offset=0&limit=100`, `offset=100&limit=100`… until a page has fewer
    /// records than `limit`.
    Offset {
        #[serde(default = "offset")]
        param: String,
        #[serde(default = "limit")]
        limit_param: String,
        #[serde(default = "hundred")]
        limit: u64,
    },
}

fn page() -> String {
    "page".into()
}
fn offset() -> String {
    "offset".into()
}
fn limit() -> String {
    "limit".into()
}
fn one() -> u64 {
    1
}
fn hundred() -> u64 {
    100
}

impl Pagination {
    pub fn is_none(&self) -> bool {
        *self == Pagination::None
    }
}

/// Whether an answer says it is the last page, for APIs that keep naming a next page or
/// cursor after it (Zendesk's incremental exports keep an `after_cursor` at
/// `end_of_stream`): `end` is true, or `more` is false, on the last page.
fn last_page(answer: &Value, end: &str, more: &str) -> bool {
    let flag = |path: &str| at_path(answer, path).and_then(Value::as_bool);
    (!end.is_empty() && flag(end) == Some(true)) || (!more.is_empty() && flag(more) == Some(false))
}

/// Everything one pull sends, the same for each of its pages but the paging itself.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// The first page's address, without paging parameters.
    pub url: Url,
    /// Query parameters of every page.
    pub query: Vec<(String, String)>,
    pub method: Method,
    pub headers: Vec<(String, String)>,
    /// The JSON body a `post` sends.
    pub body: Option<Value>,
    /// Where the records are in an answer (a dot path; empty for the answer itself).
    pub records_path: String,
    pub pagination: Pagination,
    /// More pages than this is an error: an API that never says it is done.
    pub max_pages: u64,
    /// How the API reports failures in a `200`, if it does.
    pub envelope: Option<Envelope>,
}

/// Walks the pages of one pull.
pub struct Pages<'a> {
    request: &'a PageRequest,
    /// The next request's URL; `None` once the last page was read.
    next: Option<Url>,
    /// Pages read so far.
    pub number: u64,
}

impl<'a> Pages<'a> {
    pub fn new(request: &'a PageRequest) -> Self {
        let mut pages = Pages {
            request,
            next: None,
            number: 0,
        };
        pages.next = Some(pages.url_for(0, None));
        pages
    }

    /// The URL of a page asked for by number, offset or cursor.
    fn url_for(&self, index: u64, cursor: Option<&str>) -> Url {
        let mut url = self.request.url.clone();
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in &self.request.query {
                query.append_pair(k, v);
            }
            match &self.request.pagination {
                Pagination::PageNumber {
                    param,
                    start,
                    size_param,
                    size,
                } => {
                    query.append_pair(param, &(start + index).to_string());
                    if !size_param.is_empty() {
                        query.append_pair(size_param, &size.to_string());
                    }
                }
                Pagination::Offset {
                    param,
                    limit_param,
                    limit,
                } => {
                    query.append_pair(param, &(index * limit).to_string());
                    query.append_pair(limit_param, &limit.to_string());
                }
                Pagination::Cursor { param, .. } => {
                    if let Some(cursor) = cursor {
                        query.append_pair(param, cursor);
                    }
                }
                Pagination::None | Pagination::NextLink { .. } => {}
            }
        }
        // `query_pairs_mut` leaves a bare `?` when it added nothing.
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// The next page's records, and whether there are more pages; `None` after the last.
    pub async fn next(&mut self, api: &Api) -> Result<(Option<Vec<Value>>, bool), ConnectorError> {
        let Some(url) = self.next.take() else {
            return Ok((None, false));
        };
        let request = self.request;
        self.number += 1;
        if self.number > request.max_pages {
            return Err(ConnectorError::fatal(format!(
                "{}: more than {} pages; raise `max_pages` if the API really has that many",
                request.url, request.max_pages
            )));
        }
        let what = format!("page {} of {}", self.number, redact(&url));
        let answer = fetch(api, &what, request.envelope.as_ref(), |c| {
            let mut r = match request.method {
                Method::Get => c.get(url.clone()),
                Method::Post => c.post(url.clone()),
            };
            r = r.header("Accept", "application/json, text/csv;q=0.5");
            for (name, value) in &request.headers {
                r = r.header(name.as_str(), value.as_str());
            }
            match &request.body {
                Some(body) => r.json(body),
                None => r,
            }
        })
        .await?;
        let csv = answer
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("csv"));
        // A CSV answer is its rows, each a record of texts named by the header row.
        let (json, records) = if csv {
            let records = csv_records(&answer.body)
                .map_err(|m| ConnectorError::fatal(format!("{what}: {m}")))?;
            (Value::Null, records)
        } else {
            let json = match answer.json {
                Some(json) => json,
                None => serde_json::from_slice(&answer.body).map_err(|e| {
                    ConnectorError::fatal(format!(
                        "{what}: the answer is neither JSON nor CSV ({e})"
                    ))
                })?,
            };
            let records = records_at(&json, &request.records_path)
                .map_err(|m| ConnectorError::fatal(format!("{what}: {m}")))?;
            (json, records)
        };
        let full = |size: u64| !records.is_empty() && records.len() as u64 >= size;
        self.next = match &request.pagination {
            Pagination::None => None,
            Pagination::NextLink { end, more, .. } | Pagination::Cursor { end, more, .. }
                if last_page(&json, end, more) =>
            {
                None
            }
            Pagination::NextLink { path, .. } => {
                let link = if path.is_empty() {
                    link_header_next(&answer.headers)
                } else {
                    at_path(&json, path)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                };
                match link {
                    Some(link) => Some(self.follow(&url, &link)?),
                    None => None,
                }
            }
            Pagination::Cursor { path, .. } => {
                let cursor = at_path(&json, path).and_then(|c| match c {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                cursor.map(|c| self.url_for(self.number, Some(&c)))
            }
            Pagination::PageNumber { size, .. } => {
                full(*size).then(|| self.url_for(self.number, None))
            }
            Pagination::Offset { limit, .. } => {
                full(*limit).then(|| self.url_for(self.number, None))
            }
        };
        Ok((Some(records), self.next.is_some()))
    }

    /// The URL a next link names, relative ones resolved. Credentials go only where the
    /// first page went: a next link to another host is refused.
    fn follow(&self, current: &Url, link: &str) -> Result<Url, ConnectorError> {
        let next = current.join(link).map_err(|e| {
            ConnectorError::fatal(format!("the next page's link `{link}` is not a URL: {e}"))
        })?;
        let first = &self.request.url;
        if next.origin() != first.origin() {
            return Err(ConnectorError::fatal(format!(
                "the next page's link goes to another site ({}) than the first page ({}); Tributary does not send the connection's credentials there",
                next.origin().ascii_serialization(),
                first.origin().ascii_serialization()
            )));
        }
        Ok(next)
    }
}

/// How an API reports a failure in the body of a `200`, as Slack's Web API does
/// (`{"ok": false, "error": "not_in_channel"}`), and how its error bodies say why.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// A dot path to a boolean that is false when the request failed, e.g. `ok`; empty
    /// when the API uses HTTP statuses alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ok: String,
    /// Dot paths to the error's code or message, tried in order: `error`, `description`,
    /// `errors.0.title`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message: Vec<String>,
    /// Dot paths to further detail shown after the message, e.g. `details`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Codes meaning the credentials are refused, e.g. `invalid_auth`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth: Vec<String>,
    /// Codes meaning the access token expired: it is renewed and the request sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<String>,
    /// Codes meaning too many requests: waited out as a `429` is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limited: Vec<String>,
    /// Codes meaning the thing asked for does not exist, e.g. `channel_not_found`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<String>,
    /// What codes mean, in words shown with them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub words: BTreeMap<String, String>,
}

impl Envelope {
    /// The failure a `200` answer reports, if it reports one.
    pub fn failure(&self, answer: &Value) -> Option<ConnectorError> {
        if self.ok.is_empty() || at_path(answer, &self.ok).and_then(Value::as_bool) != Some(false) {
            return None;
        }
        let code = self.code(answer).unwrap_or_else(|| "unknown error".into());
        let kind = if self.auth.contains(&code) || self.expired.contains(&code) {
            ErrorKind::Auth
        } else if self.rate_limited.contains(&code) {
            ErrorKind::RateLimited
        } else if self.not_found.contains(&code) {
            ErrorKind::NotFound
        } else {
            ErrorKind::Refused
        };
        Some(ConnectorError::new(kind, self.in_words(answer)))
    }

    fn code(&self, answer: &Value) -> Option<String> {
        self.message.iter().find_map(|path| {
            at_path(answer, path)
                .filter(|v| !v.is_null())
                .map(as_text)
                .filter(|t| !t.is_empty())
        })
    }

    /// Why an error answer says the request failed: its code or message, the words this
    /// connector has for it, and its details.
    pub fn in_words(&self, answer: &Value) -> String {
        let Some(code) = self.code(answer) else {
            return super::http::preview(&answer.to_string());
        };
        let mut text = match self.words.get(&code) {
            Some(words) => format!("{words} (`{code}`)"),
            None => code,
        };
        for path in &self.details {
            if let Some(detail) = at_path(answer, path).filter(|v| !v.is_null()) {
                text.push_str(": ");
                text.push_str(&super::http::preview(&as_text(detail)));
            }
        }
        text
    }

    /// Whether a failure answer says the access token expired.
    fn is_expired(&self, answer: &Value) -> bool {
        self.code(answer)
            .is_some_and(|code| self.expired.contains(&code))
    }
}

/// An answer read whole: its headers, its bytes, and its JSON when the envelope was
/// checked.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub json: Option<Value>,
}

impl Answer {
    /// The answer as JSON, when it is.
    pub fn parsed(&self) -> Option<Value> {
        self.json
            .clone()
            .or_else(|| serde_json::from_slice(&self.body).ok())
    }
}

/// Sends a request through the connection's client (retries, `429`s, token refresh on
/// `401`) and reads the answer; with an envelope, a failure reported in the body of a
/// `200` is an error too, after renewing an expired token once and waiting out rate
/// limits as a `429` is.
pub async fn fetch(
    api: &Api,
    what: &str,
    envelope: Option<&Envelope>,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Result<Answer, ConnectorError> {
    exchange(api, what, envelope, make, false).await
}

/// As [`fetch`], but a refusal of what was sent (by status or by envelope) is an answer
/// to read, for writes that report refused records.
pub async fn fetch_for_answer(
    api: &Api,
    what: &str,
    envelope: Option<&Envelope>,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Result<Answer, ConnectorError> {
    exchange(api, what, envelope, make, true).await
}

async fn exchange(
    api: &Api,
    what: &str,
    envelope: Option<&Envelope>,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    refusals: bool,
) -> Result<Answer, ConnectorError> {
    let mut renewed = false;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = match refusals {
            true => api.send_for_answer(what, &make).await?,
            false => api.send(what, &make).await?,
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::transient(format!("{what}: the answer broke off: {e}")))?;
        let mut answer = Answer {
            status,
            headers,
            body,
            json: None,
        };
        let Some(envelope) = envelope.filter(|e| !e.ok.is_empty()) else {
            return Ok(answer);
        };
        answer.json = serde_json::from_slice(&answer.body).ok();
        let Some(json) = &answer.json else {
            return Ok(answer);
        };
        let Some(failure) = envelope.failure(json) else {
            return Ok(answer);
        };
        let expired = envelope.is_expired(json);
        match failure.kind {
            ErrorKind::Auth if !renewed && expired => {
                tracing::info!("{what}: the token expired; renewing it and sending again");
                api.renew().await?;
                renewed = true;
            }
            ErrorKind::RateLimited if attempt < api.retry.attempts => {
                let wait = rate_limit_wait(&answer.headers).unwrap_or_else(|| api.backoff(attempt));
                if wait > api.retry.max_wait {
                    return Err(failure.map_message(|m| format!("{what}: {m}")));
                }
                tracing::info!(?wait, "{what}: rate limited; waiting");
                tokio::time::sleep(wait).await;
            }
            ErrorKind::Refused if refusals => return Ok(answer),
            _ => return Err(failure.map_message(|m| format!("{what}: {m}"))),
        }
    }
}

/// A URL for messages, without query values that may be keys.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secretish = ["key", "token", "secret", "password", "signature"]
                .iter()
                .any(|s| k.to_lowercase().contains(s));
            (
                k.into_owned(),
                if secretish {
                    "***".into()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if pairs.is_empty() {
        return shown.to_string();
    }
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

/// The `rel="next"` URL of a `Link` header (RFC 8288).
fn link_header_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            let is_next = pieces.any(|p| {
                let p = p.trim().to_ascii_lowercase().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(
                    target
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string(),
                );
            }
        }
    }
    None
}

/// The rows of a CSV answer as records of texts, named by its header row; an empty cell is
/// null.
fn csv_records(body: &[u8]) -> Result<Vec<Value>, String> {
    csv_rows(body)?.map(|row| row.map(Value::Object)).collect()
}

/// The rows of a CSV answer one at a time (a Bulk result set holds 50,000), as records of
/// texts named by its header row; an empty cell is null.
pub fn csv_rows(
    body: &[u8],
) -> Result<impl Iterator<Item = Result<Map<String, Value>, String>> + Send + '_, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the CSV answer has no header row: {e}"))?
        .iter()
        .map(String::from)
        .collect();
    Ok(reader.into_records().enumerate().map(move |(i, row)| {
        let row = row.map_err(|e| format!("row {} of the CSV answer: {e}", i + 1))?;
        Ok(names
            .iter()
            .zip(row.iter())
            .map(|(name, cell)| {
                let value = match cell {
                    "" => Value::Null,
                    text => Value::String(text.to_string()),
                };
                (name.clone(), value)
            })
            .collect())
    }))
}

/// The value at a dot path (`data.items`, `results.0.rows`).
pub fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, key| match v {
            Value::Object(o) => o.get(key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
}

/// The records of an answer.
pub fn records_at(answer: &Value, path: &str) -> Result<Vec<Value>, String> {
    let found = if path.is_empty() {
        Some(answer)
    } else {
        at_path(answer, path)
    };
    match found {
        Some(Value::Array(items)) => Ok(items.clone()),
        // A missing list on a page is an empty page (some APIs leave it out at the end).
        Some(Value::Null) | None if !path.is_empty() && answer.is_object() => Ok(Vec::new()),
        Some(other) => Err(format!(
            "the answer has no list of records at `{}`: it holds {}{}",
            if path.is_empty() { "(the top)" } else { path },
            kind(other),
            match other {
                Value::Object(o) => format!(
                    " with {}",
                    o.keys().take(8).cloned().collect::<Vec<_>>().join(", ")
                ),
                _ => String::new(),
            }
        )),
        None => Err("the answer holds no records".into()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as text: strings as they are, anything else as JSON.
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_found_by_their_path() {
        let answer = json!({"data": {"items": [{"a": 1}]}, "meta": {}});
        assert_eq!(records_at(&answer, "data.items").unwrap().len(), 1);
        assert_eq!(
            records_at(&json!([{"a": 1}, {"a": 2}]), "").unwrap().len(),
            2
        );
        assert!(
            records_at(&answer, "")
                .unwrap_err()
                .contains("an object with data, meta")
        );
        assert!(
            records_at(&json!({"data": 3}), "data")
                .unwrap_err()
                .contains("a number")
        );
        assert_eq!(
            records_at(&json!({"next": null}), "items").unwrap().len(),
            0
        );
    }

    #[test]
    fn the_link_header_names_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            "<https://api.example.com/x?page=1>; rel=\"prev\", <https://api.example.com/x?page=3>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            link_header_next(&h).as_deref(),
            Some("https://api.example.com/x?page=3")
        );
        assert_eq!(link_header_next(&HeaderMap::new()), None);
    }

    #[test]
    fn query_values_that_look_secret_are_hidden_in_messages() {
        let url = Url::parse("https://api.example.com/x?api_key=abc&page=2").unwrap();
        assert_eq!(redact(&url), "https://api.example.com/x?api_key=***&page=2");
    }

    #[test]
    fn the_last_page_is_known_by_its_flag() {
        let page = json!({"after_cursor": "x", "end_of_stream": true, "meta": {"has_more": false}});
        assert!(last_page(&page, "end_of_stream", ""));
        assert!(last_page(&page, "", "meta.has_more"));
        assert!(!last_page(
            &json!({"end_of_stream": false}),
            "end_of_stream",
            ""
        ));
        assert!(
            !last_page(&page, "", ""),
            "no flag named: the cursor decides"
        );
    }

    #[test]
    fn failures_in_a_200_have_kinds_and_words() {
        let envelope = Envelope {
            ok: "ok".into(),
            message: vec!["error".into()],
            auth: vec!["invalid_auth".into()],
            expired: vec!["token_expired".into()],
            rate_limited: vec!["ratelimited".into()],
            words: [("not_in_channel".to_string(), "not a member".to_string())].into(),
            ..Envelope::default()
        };
        assert!(envelope.failure(&json!({"ok": true})).is_none());
        let kind = |code: &str| {
            envelope
                .failure(&json!({"ok": false, "error": code}))
                .unwrap()
        };
        assert_eq!(kind("invalid_auth").kind, ErrorKind::Auth);
        assert_eq!(kind("token_expired").kind, ErrorKind::Auth);
        assert_eq!(kind("ratelimited").kind, ErrorKind::RateLimited);
        let refused = kind("not_in_channel");
        assert_eq!(refused.kind, ErrorKind::Refused);
        assert_eq!(refused.message, "not a member (`not_in_channel`)");
    }
}
