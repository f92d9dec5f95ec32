//! `source.rest`: records from any JSON API, without code. The first page's URL, where the
//! records are in each answer, how the API pages (a next link in the body or the `Link`
//! header, a cursor, page numbers or offsets), and optionally a query parameter that asks
//! only for what changed since the last run.
//!
//! Requests go through the shared client (`connectors::http`): the connection's
//! credentials, a token refresh after a `401`, retries on `5xx`, waits on `429`. The fields
//! are learnt from the first page (a minute's cache keeps the app from asking on every
//! edit) unless `schema` names their types.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use indexmap::IndexMap;
use oauth2::url::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::block_on;
use super::framework::Watermark;
use super::framework::service::Capabilities;
use super::framework::{Service, service};
use super::http::Api;
use super::pages::{Method, PageRequest, Pages, Pagination, as_text};
use crate::auth::sign_in::{OAUTH, OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::codecs::FileFormat;
use crate::codecs::read::{NewFields, infer_json, is_new_field, values_to_batch, with_overrides};
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, ErrorRecord, NodeConfig, NodeError, NodeKind,
    PlanContext, Runtime, Source,
};
use crate::node::{Demand, SourceOutput};
use crate::paths::Dirs;
use crate::types::FieldType;

/// Any HTTP API: connections that sign in with a key, a password or OAuth against
/// endpoints the user names, for the REST source. Its check is the default one: the
/// connection's test URL, or a fresh token.
pub struct AnyHttpApi;

impl Service for AnyHttpApi {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    /// The REST source reads only what changed when the API takes a "since" parameter.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            incremental: true,
            ..Capabilities::default()
        }
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "http",
    label: "Any HTTP API",
    kinds: &[
        AuthKind::ApiKey,
        AuthKind::Basic,
        AuthKind::OAuth2,
        AuthKind::OAuth2ClientCredentials,
    ],
    settings: &[
        Setting {
            kinds: &[AuthKind::ApiKey],
            default: Some("Authorization"),
            required: true,
            ..setting(
                "key_name",
                "Key name",
                "The header (or query parameter) that carries the key.",
            )
        },
        Setting {
            kinds: &[AuthKind::ApiKey],
            default: Some("header"),
            choices: &[("header", "Header"), ("query", "Query parameter")],
            ..setting("key_in", "Key in", "Where the key goes.")
        },
        Setting {
            kinds: &[AuthKind::ApiKey],
            verbatim: true,
            ..setting(
                "key_prefix",
                "Key prefix",
                "Text before the key, e.g. `Bearer ` or `Token token=`.",
            )
        },
        Setting {
            kinds: &[AuthKind::Basic],
            required: true,
            ..setting("username", "User name", "")
        },
        Setting {
            kinds: &[AuthKind::OAuth2],
            required: true,
            ..setting(
                "authorize_url",
                "Authorize URL",
                "The service's OAuth 2.0 authorization endpoint.",
            )
        },
        Setting {
            kinds: OAUTH,
            required: true,
            ..setting(
                "token_url",
                "Token URL",
                "The service's OAuth 2.0 token endpoint.",
            )
        },
        Setting {
            kinds: OAUTH,
            required: true,
            ..setting("client_id", "Client id", "")
        },
        Setting {
            kinds: OAUTH,
            ..setting("scopes", "Scopes", "Separated by spaces.")
        },
        Setting {
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "callback_port",
                "Callback port",
                "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), for services that want the exact redirect URI registered; empty for any free port.",
            )
        },
        Setting {
            ..setting(
                "test_url",
                "Test URL",
                "An address of the API that answers only when signed in (e.g. https://api.example.com/v1/me); Test calls it with these credentials.",
            )
        },
    ],
    oauth: Some(OAuthEndpoints {
        authorize: "{authorize_url}",
        token: "{token_url}",
        scopes: &[],
        extra: &[],
        identity_url_field: None,
    }),
    secrets: &[],
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestSource {
    /// A connection that signs the requests (API key, basic, OAuth); none for an API that
    /// needs no sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-connection" = "http"))]
    pub connection: Option<String>,
    /// The first page, e.g. `https://api.example.com/v2/tickets`; `${params}` are filled.
    pub url: String,
    /// Query parameters of every request, e.g. `{"status": "open"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, String>,
    /// `get`, or `post` for search endpoints that take their question in the body.
    #[serde(default, skip_serializing_if = "Method::is_get")]
    pub method: Method,
    /// The JSON body every `post` sends, e.g. `{"filter": {"status": "open"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Headers of every request, e.g. `{"Accept-Language": "en"}`. Not for keys or
    /// tokens: those belong to the connection, whose secrets stay in the vault.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// Where the records are in an answer, as a dot path such as `data.items`; empty when
    /// the answer is the list itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub records_path: String,
    /// How the API hands out the pages after the first.
    #[serde(default, skip_serializing_if = "Pagination::is_none")]
    pub pagination: Pagination,
    /// Ask only for the records changed since the last successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Field types to use instead of the ones learnt from the first page, e.g.
    /// `{"created_at": "timestamp"}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub schema: IndexMap<String, FieldType>,
    /// Stop with an error past this many pages: an API that never says it is done would
    /// otherwise be read forever.
    #[serde(default = "max_pages")]
    pub max_pages: u64,
    /// Stop the run at the first record that does not fit its fields' types instead of
    /// setting it aside.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_on_first_error: bool,
    /// What happens to a record holding a field the fields learned from the first page
    /// lack.
    #[serde(default, skip_serializing_if = "NewFields::is_default")]
    pub new_fields: NewFields,
}

fn max_pages() -> u64 {
    10_000
}

/// Headers that carry credentials: a flow file must not hold them.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// An incremental pull: the API is asked for records changed since the newest change the
/// last run saw, and records at that very instant already read are skipped, so none is
/// lost or read twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The query parameter that takes the last change seen, e.g. `updated_since`.
    pub param: String,
    /// The record field holding when a record last changed, e.g. `updated_at`.
    pub field: String,
    /// The record field that identifies a record, e.g. `id`, to skip records at the
    /// watermark's instant that were read already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_field: Option<String>,
}

impl NodeKind for RestSource {
    const TYPE: &'static str = "source.rest";
    const TITLE: &'static str = "REST API";
    const ICON: &'static str = "🌐";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some("http");
    const DESCRIPTION: &'static str =
        "Read records from any JSON API, page by page, with an API key, a password or OAuth";
}

impl RestSource {
    fn api(&self, dirs: &Dirs) -> Result<Api, NodeError> {
        let session = match &self.connection {
            Some(name) => Some(service::open(dirs, name)?),
            None => None,
        };
        Ok(Api::new(session))
    }

    fn check(&self) -> Result<Url, ConfigProblem> {
        for name in self.headers.keys() {
            let at = format!("/headers/{name}");
            if SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigProblem::new(
                    at,
                    format!(
                        "`{name}` carries credentials, which a flow file must not hold: give the node a connection instead"
                    ),
                ));
            }
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigProblem::new(&at, format!("`{name}` is not a header name")))?;
        }
        if self.body.is_some() && self.method == Method::Get {
            return Err(ConfigProblem::new(
                "/body",
                "a body goes with `\"method\": \"post\"`",
            ));
        }
        let url = Url::parse(self.url.trim())
            .map_err(|e| ConfigProblem::new("/url", format!("`{}` is not a URL: {e}", self.url)))?;
        crate::auth::http::check_url(url.as_str()).map_err(|m| ConfigProblem::new("/url", m))?;
        Ok(url)
    }

    /// The fields, from the first page, kept a minute.
    fn plan(&self, cx: &PlanContext) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.check().map_err(|p| vec![p])?;
        if let Some(p) = self.new_fields.problem_unless_once() {
            return Err(vec![p]);
        }
        let inferred = cx
            .discovery
            .learn(self, || block_on(self.learn(&cx.dirs)))
            .map_err(|m| vec![ConfigProblem::service("/url", m)])?;
        with_overrides(inferred, &self.schema, FileFormat::Json, &self.url)
    }

    /// What every page of a pull sends; `since` is the incremental pull's start.
    fn page_request(&self, url: Url, since: Option<String>) -> PageRequest {
        let mut query: Vec<(String, String)> = self.query.clone().into_iter().collect();
        if let (Some(inc), Some(since)) = (&self.incremental, since) {
            query.push((inc.param.clone(), since));
        }
        PageRequest {
            url,
            query,
            method: self.method,
            headers: self.headers.clone().into_iter().collect(),
            body: self.body.clone(),
            records_path: self.records_path.clone(),
            pagination: self.pagination.clone(),
            max_pages: self.max_pages,
            envelope: None,
        }
    }

    async fn learn(&self, dirs: &Dirs) -> Result<Schema, String> {
        let api = self.api(dirs).map_err(|e| e.to_string())?;
        let base = self.check().map_err(|p| p.message)?;
        let request = self.page_request(base, None);
        let mut pages = Pages::new(&request);
        let (records, _) = pages.next(&api).await.map_err(|e| e.to_string())?;
        infer_json(&records.unwrap_or_default()).map_err(|e| format!("the first page {e}"))
    }
}

impl NodeConfig for RestSource {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(cx)
    }

    fn summary(&self) -> String {
        let url = Url::parse(&self.url);
        match &url {
            Ok(u) => format!("{}{}", u.host_str().unwrap_or_default(), u.path()),
            Err(_) => self.url.clone(),
        }
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        let config = self.clone();
        let api = self.api(&cx.dirs);
        Box::pin(async move {
            let api = api?;
            let base = config.check().map_err(|p| NodeError::msg(p.message))?;
            let request = config.page_request(base, None);
            let mut pages = Pages::new(&request);
            let (records, more) = pages.next(&api).await?;
            let count = records.map_or(0, |r| r.len());
            Ok(format!(
                "connected: the first page holds {count} record{}{}",
                if count == 1 { "" } else { "s" },
                if more {
                    ", and there are more pages"
                } else {
                    ""
                }
            ))
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let base = self.check().map_err(|p| NodeError::msg(p.message))?;
        // The first run of a flow with `first_run_from` asks from there, as RFC 3339. The
        // API is not asked for an upper bound: its cursor need not be an instant.
        let watermark = match self.incremental {
            Some(_) => Some(Watermark::of_run(
                cx,
                |at| {
                    Cursor(Value::String(
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ))
                },
                None,
            )?),
            None => None,
        };
        Ok(Runtime::Source(Box::new(RestRead {
            config: self.clone(),
            api: self.api(&cx.dirs)?,
            base,
            watermark,
            schema: cx.output_schema.clone(),
        })))
    }
}

/// A value of the incremental field as the API writes it, ordered as [`compare`] says:
/// instants as instants (whatever their zone), numbers as numbers, else as text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Cursor(Value);

impl Ord for Cursor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        compare(&self.0, &other.0)
    }
}

impl PartialOrd for Cursor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Cursor {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Cursor {}

/// Orders two watermark values: instants as instants, numbers as numbers, else as text.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => x.cmp(y),
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

struct RestRead {
    config: RestSource,
    api: Api,
    base: Url,
    /// Set when the pull is incremental.
    watermark: Option<Watermark<Cursor>>,
    schema: SchemaRef,
}

impl Source for RestRead {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            let RestRead {
                config,
                api,
                base,
                mut watermark,
                schema,
            } = *self;
            let since = watermark
                .as_ref()
                .and_then(|w| w.since())
                .map(|c| as_text(&c.0));
            let request = config.page_request(base, since);
            let mut pages = Pages::new(&request);
            let node = out.node_id().to_string();
            let schema = Arc::clone(&schema);
            loop {
                if out.is_cancelled() {
                    return Err(NodeError::Cancelled);
                }
                let (Some(mut records), _) = pages.next(&api).await? else {
                    break;
                };
                let page = pages.number;
                if let (Some(inc), Some(watermark)) = (&config.incremental, &mut watermark) {
                    records.retain(|r| take(watermark, r, inc));
                }
                for chunk in records.chunks(out.batch_rows().max(1)) {
                    let mut values = chunk.to_vec();
                    let mut rejected = Vec::new();
                    let strict = config.new_fields.strict();
                    let batch =
                        values_to_batch(&schema, &mut values, strict, &mut |k, reason, record| {
                            let error = ErrorRecord {
                                node: node.clone(),
                                file: Some(format!("page {page}")),
                                line: None,
                                reason: format!("record {} of the page: {reason}", k + 1),
                                record,
                            };
                            if config.fail_on_first_error
                                || (config.new_fields.stops() && is_new_field(&reason))
                            {
                                return Err(NodeError::Rejected(error));
                            }
                            rejected.push(error);
                            Ok(())
                        })?;
                    for error in rejected {
                        out.reject(error)?;
                    }
                    if out.send(batch).await? == Demand::Enough {
                        return Ok(());
                    }
                }
            }
            if let Some(watermark) = watermark {
                watermark.save(&out);
            }
            Ok(())
        })
    }
}

/// Whether a record belongs to this pull, moving the watermark on by it when it does. A
/// record without the field is read, and does not move it.
fn take(watermark: &mut Watermark<Cursor>, record: &Value, inc: &Incremental) -> bool {
    let Some(changed) = record.get(&inc.field).filter(|v| !v.is_null()) else {
        return true;
    };
    let id = inc
        .id_field
        .as_ref()
        .and_then(|f| record.get(f))
        .map(as_text);
    watermark.take(&Cursor(changed.clone()), id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::framework::Mark;
    use serde_json::json;

    #[test]
    fn records_at_the_watermark_are_read_once() {
        let inc = Incremental {
            param: "since".into(),
            field: "updated_at".into(),
            id_field: Some("id".into()),
        };
        let mark = Mark {
            value: Cursor(json!("2026-11-27T10:00:00Z")),
            ids: vec!["1".into()],
        };
        let mut watermark = Watermark::new(Some(mark), None);
        let at = |id: u32, t: &str| json!({"id": id, "updated_at": t});
        assert!(!take(&mut watermark, &at(1, "2026-11-27T10:00:00Z"), &inc));
        assert!(take(&mut watermark, &at(2, "2026-11-27T10:00:00Z"), &inc));
        // The same instant written in another zone is the same instant.
        assert!(take(
            &mut watermark,
            &at(3, "2026-11-27T11:00:00+01:00"),
            &inc
        ));
        assert!(!take(&mut watermark, &at(5, "2026-11-27T09:59:59Z"), &inc));
        assert_eq!(watermark.reached().unwrap().ids, vec!["1", "2", "3"]);
        assert!(take(&mut watermark, &at(4, "2026-11-27T10:00:01Z"), &inc));
        let reached = watermark.reached().unwrap();
        assert_eq!(reached.value.0, json!("2026-11-27T10:00:01Z"));
        assert_eq!(reached.ids, vec!["4"]);
        // A record without the field is read and does not move the watermark.
        assert!(take(&mut watermark, &json!({"id": 9}), &inc));
        assert_eq!(watermark.reached().unwrap().ids, vec!["4"]);
    }
}
