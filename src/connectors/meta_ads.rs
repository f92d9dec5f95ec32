//! Meta (Facebook and Instagram) Ads, through the Marketing API of one ad account: the
//! entities are `insights` (performance by day: the chosen fields, breakdowns and the
//! level the ids and names chosen imply) and the account's `campaigns`, `adsets` and
//! `ads`. Insights over a long range run as an asynchronous report (`POST …/insights`,
//! then polling the report run's `async_status`); every answer is paged by `paging.next`.
//!
//! Meta throttles with an error (codes 4, 17, 32, 613, 80000–80014), not a 429, and says
//! in `X-Business-Use-Case-Usage` how long until the account regains access: the read
//! waits that out when it is short, and says so in words when it is not. Meta restates
//! conversions as they are attributed (by default up to seven days after the click), so
//! an incremental pull of insights reads the last `lookback_days` again.

use std::time::Duration as Wait;

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::framework::catalog::{
    Catalog, Client, EntityDetail, Field, Options, Pages, ReadRequest, option_date,
};
use super::framework::service::Capabilities;
use super::framework::{ConnectorError, ErrorKind, Service, service};
use crate::auth::sign_in::{OAuthEndpoints, Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth};
use crate::conditions::{Condition, Operator};
use crate::node::{BoxFuture, Entity};
use crate::paths::Dirs;

pub struct MetaAds;

impl Service for MetaAds {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn catalog(&self) -> Option<&'static dyn Catalog> {
        Some(&MetaAds)
    }

    /// Reads the ad account's name and currency.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let client = service::client(self, dirs, name);
        Box::pin(async move {
            let client = client?;
            let account = account(&client)?;
            let url = format!("{}/{account}", api(&client));
            let query = [("fields", "name,currency,account_status")];
            let answer = call(&client, &format!("reading the ad account {account}"), |c| {
                c.get(&url).query(&query)
            })
            .await?;
            Ok(format!(
                "connected to {} ({account}, amounts in {})",
                answer["name"].as_str().unwrap_or("the ad account"),
                answer["currency"].as_str().unwrap_or("its currency")
            ))
        })
    }

    fn icon(&self) -> &'static str {
        "📢"
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
    connector: "meta_ads",
    label: "Meta Ads (Facebook, Instagram)",
    kinds: &[AuthKind::ApiKey, AuthKind::OAuth2],
    settings: &[
        Setting {
            required: true,
            ..setting(
                "ad_account_id",
                "Ad account",
                "The ad account to read: act_ and its number, as Ads Manager shows it.",
            )
        },
        Setting {
            default: Some("Authorization"),
            kinds: &[AuthKind::ApiKey],
            ..setting("key_name", "Header", "The header the access token goes in.")
        },
        Setting {
            default: Some("Bearer "),
            kinds: &[AuthKind::ApiKey],
            verbatim: true,
            ..setting(
                "key_prefix",
                "Token prefix",
                "What comes before the access token in the header.",
            )
        },
        Setting {
            required: true,
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "client_id",
                "App id",
                "The id of your Meta app (developers.facebook.com, My Apps), with Facebook Login.",
            )
        },
        Setting {
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "callback_port",
                "Callback port",
                "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), as the app's Valid OAuth Redirect URIs name it.",
            )
        },
        Setting {
            default: Some("https://graph.facebook.com"),
            ..setting(
                "instance_url",
                "API address",
                "The Graph API's address; Meta's unless told otherwise.",
            )
        },
        Setting {
            default: Some("v27.0"),
            ..setting(
                "api_version",
                "API version",
                "The Marketing API version to speak; Meta retires each about a year after the next one comes out.",
            )
        },
        Setting {
            default: Some("https://www.facebook.com"),
            kinds: &[AuthKind::OAuth2],
            ..setting(
                "login_url",
                "Login URL",
                "Where users log in; Facebook's unless told otherwise.",
            )
        },
    ],
    oauth: Some(OAuthEndpoints {
        authorize: "{login_url}/{api_version}/dialog/oauth",
        token: "{instance_url}/{api_version}/oauth/access_token",
        scopes: &["ads_read"],
        extra: &[],
        identity_url_field: None,
    }),
    secrets: &[],
};

/// The Meta Ads source's `options`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "MetaAdsReadOptions")]
pub struct ReadOptions {
    /// The days insights cover, as Meta names ranges: `last_30d`, `last_7d`,
    /// `this_month`, `last_month`, `maximum`… Used unless `start_date` is set.
    #[serde(default = "date_preset")]
    pub date_preset: String,
    /// The first day (`2026-01-01`) of insights; an incremental pull starts here on its
    /// first run only (30 days back when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    /// The last day of insights that are not incremental, with `start_date`; today when
    /// empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    /// Days an incremental pull of insights reads again before where the last run got
    /// to: Meta attributes conversions to the day of the click for days afterwards.
    #[serde(default = "lookback_days")]
    pub lookback_days: u32,
    /// The level of insights (`account`, `campaign`, `adset`, `ad`); when empty, the most
    /// detailed one whose id or name is among the fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Insights over more days than this run as an asynchronous report, which Meta
    /// prepares in the background rather than within one request's time.
    #[serde(default = "async_after_days")]
    pub async_after_days: u32,
    /// Records asked for per page (`limit`).
    #[serde(default = "page_size")]
    pub page_size: u32,
}

fn date_preset() -> String {
    "last_30d".into()
}
fn lookback_days() -> u32 {
    7
}
fn async_after_days() -> u32 {
    31
}
fn page_size() -> u32 {
    500
}

/// What a field of insights is to the request.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The day of the record (`date_start`, `date_stop`).
    Day,
    /// An id or name that belongs to a level (`campaign_name` to `campaign`).
    Level(&'static str),
    /// A breakdown: choosing it adds it to `breakdowns`.
    Breakdown,
    /// Anything else Meta returns as asked in `fields`.
    Plain,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Int,
    Num,
    Day,
    Instant,
}

impl Kind {
    fn arrow(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Int => DataType::Int64,
            Kind::Num => DataType::Float64,
            Kind::Day => DataType::Date32,
            Kind::Instant => DataType::Timestamp(TimeUnit::Second, Some("+00:00".into())),
        }
    }
}

/// The fields of insights: name, what it is to the request, its type, and the field
/// Meta's `filtering` knows it by, if any.
const INSIGHTS: &[(&str, Role, Kind, Option<&str>)] = &[
    ("date_start", Role::Day, Kind::Day, None),
    ("date_stop", Role::Day, Kind::Day, None),
    ("account_id", Role::Level("account"), Kind::Text, None),
    ("account_name", Role::Level("account"), Kind::Text, None),
    ("account_currency", Role::Plain, Kind::Text, None),
    (
        "campaign_id",
        Role::Level("campaign"),
        Kind::Text,
        Some("campaign.id"),
    ),
    (
        "campaign_name",
        Role::Level("campaign"),
        Kind::Text,
        Some("campaign.name"),
    ),
    (
        "adset_id",
        Role::Level("adset"),
        Kind::Text,
        Some("adset.id"),
    ),
    (
        "adset_name",
        Role::Level("adset"),
        Kind::Text,
        Some("adset.name"),
    ),
    ("ad_id", Role::Level("ad"), Kind::Text, Some("ad.id")),
    ("ad_name", Role::Level("ad"), Kind::Text, Some("ad.name")),
    ("objective", Role::Plain, Kind::Text, None),
    ("impressions", Role::Plain, Kind::Int, Some("impressions")),
    ("reach", Role::Plain, Kind::Int, Some("reach")),
    ("frequency", Role::Plain, Kind::Num, None),
    ("clicks", Role::Plain, Kind::Int, Some("clicks")),
    ("unique_clicks", Role::Plain, Kind::Int, None),
    ("inline_link_clicks", Role::Plain, Kind::Int, None),
    ("spend", Role::Plain, Kind::Num, Some("spend")),
    ("cpc", Role::Plain, Kind::Num, None),
    ("cpm", Role::Plain, Kind::Num, None),
    ("ctr", Role::Plain, Kind::Num, None),
    ("age", Role::Breakdown, Kind::Text, None),
    ("gender", Role::Breakdown, Kind::Text, None),
    ("country", Role::Breakdown, Kind::Text, None),
    ("region", Role::Breakdown, Kind::Text, None),
    ("publisher_platform", Role::Breakdown, Kind::Text, None),
    ("platform_position", Role::Breakdown, Kind::Text, None),
    ("device_platform", Role::Breakdown, Kind::Text, None),
];

/// The fields of campaigns, ad sets and ads, each with the objects that have it.
const OBJECTS: &[(&str, Kind, &[&str])] = &[
    ("id", Kind::Text, &["campaigns", "adsets", "ads"]),
    ("name", Kind::Text, &["campaigns", "adsets", "ads"]),
    ("status", Kind::Text, &["campaigns", "adsets", "ads"]),
    (
        "effective_status",
        Kind::Text,
        &["campaigns", "adsets", "ads"],
    ),
    ("objective", Kind::Text, &["campaigns"]),
    ("campaign_id", Kind::Text, &["adsets", "ads"]),
    ("adset_id", Kind::Text, &["ads"]),
    ("daily_budget", Kind::Int, &["campaigns", "adsets"]),
    ("lifetime_budget", Kind::Int, &["campaigns", "adsets"]),
    ("bid_strategy", Kind::Text, &["campaigns", "adsets"]),
    ("start_time", Kind::Instant, &["campaigns", "adsets"]),
    ("stop_time", Kind::Instant, &["campaigns"]),
    ("end_time", Kind::Instant, &["adsets"]),
    (
        "created_time",
        Kind::Instant,
        &["campaigns", "adsets", "ads"],
    ),
    (
        "updated_time",
        Kind::Instant,
        &["campaigns", "adsets", "ads"],
    ),
];

const ENTITIES: &[(&str, &str)] = &[
    ("insights", "Insights (performance by day)"),
    ("campaigns", "Campaigns"),
    ("adsets", "Ad sets"),
    ("ads", "Ads"),
];

impl Catalog for MetaAds {
    fn entities(&self, _client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>> {
        Box::pin(async {
            Ok(ENTITIES
                .iter()
                .map(|(name, label)| Entity {
                    name: name.to_string(),
                    label: label.to_string(),
                })
                .collect())
        })
    }

    fn describe(
        &self,
        _client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        Box::pin(async move { describe(&entity) })
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

const TEXT: &[Operator] = &[Operator::EqualTo, Operator::NotEqualTo, Operator::Contains];
const IDS: &[Operator] = &[Operator::EqualTo, Operator::NotEqualTo];
const NUMBER: &[Operator] = &[
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessThanOrEqualTo,
    Operator::GreaterThanOrEqualTo,
    Operator::Between,
];

fn describe(entity: &str) -> Result<EntityDetail, ConnectorError> {
    let detail = |fields: Vec<Field>, cursor: &str, restated: bool| EntityDetail {
        name: entity.to_string(),
        label: ENTITIES
            .iter()
            .find(|(n, _)| *n == entity)
            .map_or(entity, |(_, l)| *l)
            .to_string(),
        default_cursor: Some(cursor.to_string()),
        id_field: (!restated).then(|| "id".to_string()),
        fields,
        writes: Vec::new(),
        required: Vec::new(),
        left_out: match restated {
            true => vec![(
                "actions".to_string(),
                "holds a list of counts by action type, which Tributary does not read".to_string(),
            )],
            false => Vec::new(),
        },
        restated,
        change_log: None,
    };
    if entity == "insights" {
        let fields = INSIGHTS
            .iter()
            .map(|(name, role, kind, filter)| Field {
                name: name.to_string(),
                label: name.replace('_', " "),
                data_type: kind.arrow(),
                filters: match (filter, kind) {
                    (None, _) => Vec::new(),
                    (Some(f), _) if f.ends_with(".id") => IDS.to_vec(),
                    (Some(_), Kind::Text) => TEXT.to_vec(),
                    (Some(_), _) => NUMBER.to_vec(),
                },
                cursor: *name == "date_start" && *role == Role::Day,
            })
            .collect();
        return Ok(detail(fields, "date_start", true));
    }
    if !ENTITIES.iter().any(|(n, _)| *n == entity) {
        let known: Vec<&str> = ENTITIES.iter().map(|(n, _)| *n).collect();
        return Err(ConnectorError::not_found(format!(
            "Meta Ads has no object `{entity}`; there are: {}",
            known.join(", ")
        )));
    }
    let fields = OBJECTS
        .iter()
        .filter(|(_, _, of)| of.contains(&entity))
        .map(|(name, kind, _)| Field {
            name: name.to_string(),
            label: name.replace('_', " "),
            data_type: kind.arrow(),
            filters: match *name {
                "id" | "campaign_id" | "adset_id" | "effective_status" => IDS.to_vec(),
                "name" => TEXT.to_vec(),
                _ => Vec::new(),
            },
            cursor: *name == "updated_time",
        })
        .collect();
    Ok(detail(fields, "updated_time", false))
}

/// The API's versioned address.
fn api(client: &Client) -> String {
    let version = client
        .setting("api_version")
        .unwrap_or_else(|| "v27.0".into());
    client.url(&format!("/{version}"))
}

/// The ad account as the API names it: `act_` and digits.
fn account(client: &Client) -> Result<String, ConnectorError> {
    let given = client.setting("ad_account_id").unwrap_or_default();
    let digits = given.trim().trim_start_matches("act_");
    match !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        true => Ok(format!("act_{digits}")),
        false => Err(ConnectorError::fatal(format!(
            "`{given}` is not an ad account (`ad_account_id`): write it as act_1234567890"
        ))),
    }
}

/// Meta's error codes that mean "too many requests for now".
fn is_throttle(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 613) || (80000..=80014).contains(&code)
}

/// The highest use of the account's rate limits (percent) and how long until it regains
/// access, from `X-Business-Use-Case-Usage` (and `X-Ad-Account-Usage`).
fn usage(headers: &HeaderMap) -> (f64, Wait) {
    let json = |name: &str| -> Value {
        (headers.get(name))
            .and_then(|v| v.to_str().ok())
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    };
    let (mut percent, mut minutes) = (0.0f64, 0.0f64);
    let business = json("x-business-use-case-usage");
    let entries = (business.as_object().into_iter().flat_map(|m| m.values()))
        .flat_map(|v| v.as_array().into_iter().flatten());
    for e in entries {
        for key in ["call_count", "total_cputime", "total_time"] {
            percent = percent.max(e[key].as_f64().unwrap_or(0.0));
        }
        minutes = minutes.max(e["estimated_time_to_regain_access"].as_f64().unwrap_or(0.0));
    }
    let account = json("x-ad-account-usage");
    percent = percent.max(account["acc_id_util_pct"].as_f64().unwrap_or(0.0));
    let reset = account["reset_time_duration"].as_f64().unwrap_or(0.0);
    (percent, Wait::from_secs_f64(minutes * 60.0 + reset))
}

/// Meta's error body in words, with what to do.
fn in_words(what: &str, error: &Value) -> String {
    let code = error["code"].as_i64().unwrap_or(0);
    let message = error["error_user_msg"]
        .as_str()
        .or(error["message"].as_str())
        .unwrap_or("no reason given");
    let hint = match code {
        190 => " (the access token expired or was revoked: log in again, or make a new token)",
        10 | 200..=299 => {
            " (the token may not read this ad account: it needs ads_read, and the user access to the account)"
        }
        100 => " (Meta does not take a setting of this request)",
        c if is_throttle(c) => " (the ad account's rate limit is used up for now)",
        _ => "",
    };
    let sub = error["error_subcode"]
        .as_i64()
        .map(|s| format!(", subcode {s}"))
        .unwrap_or_default();
    format!("{what}: Meta answered (#{code}{sub}) {message}{hint}")
}

/// One request to the Graph API: a JSON answer, with throttling waited out as long as
/// Meta says it lasts (within the retry rules) and errors in words.
async fn call(
    client: &Client,
    what: &str,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> Result<Value, ConnectorError> {
    let retry = client.api.retry;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = client.api.send_for_answer(what, &make).await?;
        let status = response.status();
        let (percent, regain) = usage(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::transient(format!("{what}: the answer broke off: {e}")))?;
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| ConnectorError::fatal(format!("{what}: the answer is not JSON: {e}")))?;
        let error = &answer["error"];
        if status.is_success() && error.is_null() {
            if percent >= 95.0 && !regain.is_zero() && regain <= retry.max_wait {
                tracing::info!(
                    percent,
                    ?regain,
                    "{what}: the rate limit is nearly used up; pausing"
                );
                tokio::time::sleep(regain).await;
            }
            return Ok(answer);
        }
        let code = error["code"].as_i64().unwrap_or(0);
        if is_throttle(code) {
            let wait = match regain.is_zero() {
                true => client.api.backoff(attempt),
                false => regain,
            };
            if wait > retry.max_wait || attempt >= retry.attempts {
                return Err(ConnectorError {
                    kind: ErrorKind::RateLimited,
                    status: Some(status.as_u16()),
                    message: format!(
                        "{}; Meta gives access back in {} min",
                        in_words(what, error),
                        wait.as_secs().div_ceil(60)
                    ),
                });
            }
            tracing::info!(code, ?wait, attempt, "{what}: throttled; waiting");
            tokio::time::sleep(wait).await;
            continue;
        }
        let kind = match (code, status.as_u16()) {
            (190, _) | (_, 401) => ErrorKind::Auth,
            (10 | 200..=299, _) | (_, 403) => ErrorKind::Auth,
            (_, 404) => ErrorKind::NotFound,
            _ => ErrorKind::Fatal,
        };
        return Err(ConnectorError {
            kind,
            status: Some(status.as_u16()),
            message: in_words(what, error),
        });
    }
}

/// Reads the entity page by page, following `paging.next`.
async fn read(client: &Client, request: ReadRequest, pages: Pages) -> Result<(), ConnectorError> {
    let options: ReadOptions = client.options()?;
    let account = account(client)?;
    let base = api(client);
    let limit = request
        .limit
        .map_or(options.page_size, |l| (l as u32).min(options.page_size))
        .max(1);
    let (mut query, days) = match request.entity.name.as_str() {
        "insights" => insights_query(&request, &options)?,
        _ => (objects_query(&request)?, 0),
    };
    query.push(("limit".into(), limit.to_string()));
    let entity = &request.entity.name;
    let first = if entity == "insights"
        && days > i64::from(options.async_after_days)
        && request.limit.is_none()
    {
        let run = report_run(client, &base, &account, &query).await?;
        format!("{base}/{run}/insights?limit={limit}")
    } else {
        let url = reqwest::Url::parse_with_params(&format!("{base}/{account}/{entity}"), &query)
            .map_err(|e| ConnectorError::fatal(format!("the request of {entity}: {e}")))?;
        url.to_string()
    };
    let mut next = Some(first);
    let mut sent = 0u64;
    while let Some(url) = next.take() {
        same_origin(client, &url)?;
        let answer = call(client, &format!("reading {entity} of {account}"), |c| {
            c.get(&url)
        })
        .await?;
        let records: Vec<Map<String, Value>> = (answer["data"].as_array().into_iter().flatten())
            .filter_map(|r| r.as_object())
            .map(|r| typed(&request, r))
            .collect();
        sent += records.len() as u64;
        if !records.is_empty() && pages.send(records).await.is_err() {
            return Ok(());
        }
        if request.limit.is_some_and(|l| sent >= l) {
            return Ok(());
        }
        next = answer["paging"]["next"].as_str().map(String::from);
    }
    Ok(())
}

/// A page address Meta handed back must be on the API's own host: the request carries
/// the token.
fn same_origin(client: &Client, url: &str) -> Result<(), ConnectorError> {
    let origin = |u: &str| reqwest::Url::parse(u).ok().map(|u| u.origin());
    match origin(url).is_some() && origin(url) == origin(&client.base) {
        true => Ok(()),
        false => Err(ConnectorError::fatal(format!(
            "Meta's answer points the next page at {url}, which is not {}",
            client.base
        ))),
    }
}

/// Starts an asynchronous report and waits for it: its run id.
async fn report_run(
    client: &Client,
    base: &str,
    account: &str,
    query: &[(String, String)],
) -> Result<String, ConnectorError> {
    let url = format!("{base}/{account}/insights");
    let started = call(client, &format!("starting a report of {account}"), |c| {
        c.post(&url).form(query)
    })
    .await?;
    let run = started["report_run_id"]
        .as_str()
        .map(String::from)
        .or_else(|| started["report_run_id"].as_i64().map(|n| n.to_string()))
        .ok_or_else(|| ConnectorError::fatal(format!("Meta started no report: {started}")))?;
    let status_url = format!("{base}/{run}");
    let mut wait = Wait::from_millis(500);
    loop {
        let status = call(client, &format!("the report {run}"), |c| {
            c.get(&status_url)
                .query(&[("fields", "async_status,async_percent_completion")])
        })
        .await?;
        match status["async_status"].as_str().unwrap_or_default() {
            "Job Completed" => return Ok(run),
            failed @ ("Job Failed" | "Job Skipped") => {
                return Err(ConnectorError::transient(format!(
                    "Meta's report {run} of {account} ended as `{failed}`: a later run asks again; a shorter range or fewer breakdowns make it lighter"
                )));
            }
            state => {
                tracing::info!(%run, state, percent = %status["async_percent_completion"], "report not ready");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Wait::from_secs(10));
            }
        }
    }
}

/// The parameters of an insights request, and how many days it covers.
fn insights_query(
    request: &ReadRequest,
    options: &ReadOptions,
) -> Result<(Vec<(String, String)>, i64), ConnectorError> {
    let role = |name: &str| INSIGHTS.iter().find(|f| f.0 == name).map(|f| f.1);
    let chosen = |r: Role| {
        (request.fields.iter())
            .filter(move |f| role(f) == Some(r))
            .map(String::as_str)
    };
    let fields: Vec<&str> = request
        .fields
        .iter()
        .filter(|f| matches!(role(f), Some(Role::Plain | Role::Level(_))))
        .map(String::as_str)
        .collect();
    let breakdowns: Vec<&str> = chosen(Role::Breakdown).collect();
    let level = match &options.level {
        Some(level) => level.clone(),
        None => ["ad", "adset", "campaign"]
            .into_iter()
            .find(|l| {
                (request.fields.iter()).any(|f| role(f) == Some(Role::Level(l)))
                    || (request.conditions.iter()).any(|c| role(&c.field) == Some(Role::Level(l)))
            })
            .unwrap_or("account")
            .to_string(),
    };
    let mut query = vec![
        ("fields".to_string(), fields.join(",")),
        ("level".to_string(), level),
        ("time_increment".to_string(), "1".to_string()),
    ];
    if !breakdowns.is_empty() {
        query.push(("breakdowns".into(), breakdowns.join(",")));
    }
    let filtering: Vec<Value> = request
        .conditions
        .iter()
        .map(insights_filter)
        .collect::<Result<_, _>>()?;
    if !filtering.is_empty() {
        query.push(("filtering".into(), Value::from(filtering).to_string()));
    }
    let (range, days) = range(request, options)?;
    match range {
        Some((since, until)) => query.push((
            "time_range".into(),
            json!({"since": since.to_string(), "until": until.to_string()}).to_string(),
        )),
        None => query.push(("date_preset".into(), options.date_preset.clone())),
    }
    Ok((query, days))
}

/// The days insights cover (`None`: the date preset) and how many there are.
fn range(
    request: &ReadRequest,
    options: &ReadOptions,
) -> Result<(Option<(NaiveDate, NaiveDate)>, i64), ConnectorError> {
    let start = (options.start_date.as_deref())
        .map(|d| option_date(d, "start_date"))
        .transpose()?;
    let days = match (request.report_days(options.lookback_days, start), start) {
        (Some(days), _) => days,
        (None, Some(start)) => match &options.end_date {
            Some(end) => (start, option_date(end, "end_date")?),
            None => (start, Utc::now().date_naive()),
        },
        (None, None) => {
            let preset = &options.date_preset;
            let named =
                (preset.chars()).all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if preset.is_empty() || !named {
                return Err(ConnectorError::fatal(format!(
                    "the option `date_preset` is `{preset}`, not a range such as last_30d"
                )));
            }
            return Ok((None, 0));
        }
    };
    Ok((Some(days), (days.1 - days.0).num_days() + 1))
}

/// A condition as one of Meta's `filtering` entries on insights.
fn insights_filter(c: &Condition) -> Result<Value, ConnectorError> {
    let field = INSIGHTS
        .iter()
        .find(|f| f.0 == c.field)
        .and_then(|f| f.3)
        .ok_or_else(|| {
            ConnectorError::fatal(format!("Meta does not filter insights by {}", c.field))
        })?;
    filter(field, c)
}

/// A condition as a `filtering` entry on `field`.
fn filter(field: &str, c: &Condition) -> Result<Value, ConnectorError> {
    let list = |v: &Value| v.as_array().map_or_else(|| vec![v.clone()], Clone::clone);
    let (operator, value) = match (c.operator, &c.value) {
        (Operator::EqualTo, Value::Array(_)) => ("IN", Value::from(list(&c.value))),
        (Operator::NotEqualTo, Value::Array(_)) => ("NOT_IN", Value::from(list(&c.value))),
        (Operator::EqualTo, v) => ("EQUAL", v.clone()),
        (Operator::NotEqualTo, v) => ("NOT_EQUAL", v.clone()),
        (Operator::Contains, v) => ("CONTAIN", v.clone()),
        (Operator::LessThan, v) => ("LESS_THAN", v.clone()),
        (Operator::LessThanOrEqualTo, v) => ("LESS_THAN_OR_EQUAL", v.clone()),
        (Operator::GreaterThan, v) => ("GREATER_THAN", v.clone()),
        (Operator::GreaterThanOrEqualTo, v) => ("GREATER_THAN_OR_EQUAL", v.clone()),
        (Operator::Between, Value::Array(pair)) if pair.len() == 2 => {
            ("IN_RANGE", Value::from(pair.clone()))
        }
        (Operator::Between, _) => return Err(ConnectorError::fatal("`between` takes [low, high]")),
    };
    Ok(json!({"field": field, "operator": operator, "value": value}))
}

/// The parameters of a request of campaigns, ad sets or ads.
fn objects_query(request: &ReadRequest) -> Result<Vec<(String, String)>, ConnectorError> {
    let mut filtering: Vec<Value> = request
        .conditions
        .iter()
        .map(|c| filter(&c.field, c))
        .collect::<Result<_, _>>()?;
    let seconds = |t: DateTime<Utc>| t.timestamp();
    if request.cursor.is_some() {
        if let Some(since) = request.since {
            // Meta compares whole seconds: one before `since` takes `since` itself.
            filtering.push(json!({"field": "updated_time", "operator": "GREATER_THAN", "value": seconds(since) - 1}));
        }
        if let Some(until) = request.until {
            filtering.push(
                json!({"field": "updated_time", "operator": "LESS_THAN", "value": seconds(until)}),
            );
        }
    }
    let mut query = vec![("fields".to_string(), request.fields.join(","))];
    if !filtering.is_empty() {
        query.push(("filtering".into(), Value::from(filtering).to_string()));
    }
    Ok(query)
}

/// A record in its fields' types: Meta sends numbers as text, and instants as
/// `2026-11-30T10:00:00+0000`.
fn typed(request: &ReadRequest, record: &Map<String, Value>) -> Map<String, Value> {
    request
        .fields
        .iter()
        .map(|name| {
            let value = record.get(name).cloned().unwrap_or(Value::Null);
            let value = match (request.entity.field(name).map(|f| &f.data_type), &value) {
                (Some(DataType::Int64), Value::String(s)) => {
                    s.parse::<i64>().map_or(value.clone(), Value::from)
                }
                (Some(DataType::Float64), Value::String(s)) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(value.clone(), Value::Number),
                (Some(DataType::Timestamp(..)), Value::String(s)) => {
                    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
                        .map_or(value.clone(), |t| Value::from(t.to_rfc3339()))
                }
                _ => value,
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_headers_say_how_close_the_limit_is_and_when_access_returns() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            r#"{"1234": [{"type": "ads_insights", "call_count": 28, "total_cputime": 96, "total_time": 40, "estimated_time_to_regain_access": 2}]}"#
                .parse()
                .unwrap(),
        );
        let (percent, wait) = usage(&headers);
        assert_eq!(percent, 96.0);
        assert_eq!(wait, Wait::from_secs(120));
        assert_eq!(usage(&HeaderMap::new()), (0.0, Wait::ZERO));
    }

    #[test]
    fn errors_are_said_with_their_code_and_what_to_do() {
        let error = json!({"message": "Error validating access token: Session has expired",
            "type": "OAuthException", "code": 190, "error_subcode": 463});
        assert_eq!(
            in_words("reading insights", &error),
            "reading insights: Meta answered (#190, subcode 463) Error validating access token: Session has expired (the access token expired or was revoked: log in again, or make a new token)"
        );
    }
}
