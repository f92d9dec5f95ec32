//! `source.google_analytics`, GA4's Data API on the connector framework, through the
//! `tributary` command against Google's OAuth, Admin API and Data API on loopback
//! (`tests/support/ga4_server.py`). The tests check the requests (the login's parameters,
//! the runReport bodies with their filters, offsets and date ranges) as well as the rows
//! written, and that a lake partitioned by date keeps each day once across lookbacks.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use indexmap::IndexMap;
use serde_json::{Value, json};
use tributary::auth::vault;
use tributary::flow::Flow;
use tributary::paths::Dirs;
use tributary::workspace::Workspace;

const PASSPHRASE: &str = "analytics tests";
const SHOP: &str = "properties/111111111";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// A server and a scratch installation with the connection `ga`.
fn connected() -> (SupportServer, Scratch) {
    let scratch = Scratch::new();
    (ga4_connection(&scratch, PASSPHRASE, "ga"), scratch)
}

fn report(source: Value, destination: Value) -> Value {
    let mut config = json!({"connection": "ga", "entity": SHOP});
    config
        .as_object_mut()
        .unwrap()
        .extend(source.as_object().unwrap().clone());
    flow(
        vec![
            node("ga", "source.google_analytics", config),
            node("out", "destination.local", destination),
        ],
        &[("ga", "out")],
    )
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

fn reports(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["path"] == format!("/v1beta/{SHOP}:runReport") && r["status"] == 200)
        .cloned()
        .collect()
}

#[test]
fn the_login_asks_for_offline_access_and_properties_and_fields_are_listed_with_types() {
    let (server, scratch) = connected();
    let requests = server.requests();
    let auth = requests
        .iter()
        .find(|r| r["path"] == "/o/oauth2/v2/auth")
        .unwrap();
    assert_eq!(auth["query"]["access_type"], "offline");
    assert_eq!(auth["query"]["prompt"], "consent");
    assert_eq!(auth["query"]["code_challenge_method"], "S256");
    assert_eq!(
        auth["query"]["scope"],
        "https://www.googleapis.com/auth/analytics.readonly"
    );

    let dirs = Dirs::under(&scratch.home());
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = report(json!({}), json!({"folder": "out", "format": "jsonl"}));
    let flow = Flow::from_json(&flow.to_string(), "test").unwrap();
    let config = tributary::workspace::node_config(&flow, "ga", &IndexMap::new()).unwrap();
    let cx = workspace.plan_context(scratch.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let properties = runtime.block_on(config.entities(&cx)).unwrap();
    let names: Vec<(&str, &str)> = properties
        .iter()
        .map(|p| (p.name.as_str(), p.label.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (SHOP, "Web shop (Acme)"),
            ("properties/222222222", "Blog (Acme Media)")
        ],
        "both pages of account summaries"
    );

    let types = planned_types(&flow, "ga", &scratch, &workspace);
    assert_eq!(types["date"], "date");
    assert_eq!(types["country"], "string");
    assert_eq!(types["sessions"], "integer");
    assert_eq!(types["engagementRate"], "number");
    assert_eq!(types["averageSessionDuration"], "number");
    assert_eq!(types.len(), 9);
    assert!(
        server.requests().iter().all(|r| r["auth"] == "Bearer"),
        "every API request carries the token"
    );
}

#[test]
fn a_report_pages_by_offset_and_sends_the_conditions_as_filters() {
    let (server, scratch) = connected();
    server.requests();
    let flow = report(
        json!({
            "fields": ["date", "country", "sessions", "purchaseRevenue"],
            "conditions": [
                {"field": "country", "operator": "equal_to", "value": ["United States", "Germany"]},
                {"field": "sessions", "operator": "greater_than_or_equal_to", "value": 60}
            ],
            "options": {"start_date": "14daysAgo", "end_date": "yesterday", "page_size": 7}
        }),
        json!({"folder": "out", "format": "jsonl"}),
    );
    let record = ran(&run(&scratch, &flow));
    let reports = reports(&server.requests());
    let total = reports[0]["rowCount"].as_u64().unwrap();
    assert!(total >= 15, "enough rows for three pages: {total}");
    let written = jsonl_rows(&scratch, "out");
    assert_eq!(written.len() as u64, total);
    assert_eq!(record["records_written"], total);
    let offsets: Vec<u64> = reports
        .iter()
        .map(|r| r["body"]["offset"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..total.div_ceil(7)).map(|i| i * 7).collect();
    assert_eq!(offsets, expected);

    let body = &reports[0]["body"];
    assert_eq!(
        body["dimensions"],
        json!([{"name": "date"}, {"name": "country"}])
    );
    assert_eq!(
        body["metrics"],
        json!([{"name": "sessions"}, {"name": "purchaseRevenue"}])
    );
    assert_eq!(
        body["dateRanges"],
        json!([{"startDate": "14daysAgo", "endDate": "yesterday"}])
    );
    assert_eq!(
        body["dimensionFilter"],
        json!({"filter": {"fieldName": "country",
            "inListFilter": {"values": ["United States", "Germany"], "caseSensitive": true}}})
    );
    assert_eq!(
        body["metricFilter"],
        json!({"filter": {"fieldName": "sessions",
            "numericFilter": {"operation": "GREATER_THAN_OR_EQUAL", "value": {"int64Value": "60"}}}})
    );
    assert_eq!(body["limit"], 7);
    assert_eq!(body["returnPropertyQuota"], true);

    // Typed rows: a date, a country, whole sessions, revenue as a number.
    let (_, first) = &written[0];
    assert!(first["date"].as_str().unwrap().len() == 10, "{first}");
    assert!(first["sessions"].as_i64().unwrap() >= 60);
    assert!(first["purchaseRevenue"].is_number());
    assert!(
        written
            .iter()
            .all(|(_, r)| r["country"] == "United States" || r["country"] == "Germany")
    );
    let notes = &record["nodes"][0]["notes"];
    assert_eq!(notes["quota_tokens_per_day_remaining"], 199988);
}

#[test]
fn incremental_runs_read_the_last_days_again_and_the_lake_keeps_each_day_once() {
    let (server, scratch) = connected();
    let today =
        chrono::NaiveDate::parse_from_str(server.info["today"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    let flow = report(
        json!({
            "fields": ["date", "country", "deviceCategory", "sessions"],
            "incremental": true,
            "options": {"start_date": "10daysAgo", "lookback_days": 3}
        }),
        json!({"folder": "lake", "format": "jsonl", "partition_by": ["date"],
               "replace_partitions": true}),
    );
    let first = ran(&run(&scratch, &flow));
    // Eleven days, fifteen rows a day.
    assert_eq!(first["records_written"], 165);
    let body = &reports(&server.requests())[0]["body"];
    assert_eq!(
        body["dateRanges"],
        json!([{"startDate": "10daysAgo", "endDate": today.to_string()}])
    );

    // GA4 finishes processing the last three days: their sessions grow.
    server.control(json!({"restate": 100}));
    let second = ran(&run(&scratch, &flow));
    let body = &reports(&server.requests())[0]["body"];
    let from = today - chrono::Duration::days(3);
    assert_eq!(
        body["dateRanges"],
        json!([{"startDate": from.to_string(), "endDate": today.to_string()}]),
        "from where the last run got to, three days back"
    );
    assert_eq!(second["records_written"], 60);

    // Each day once: the days read again replaced, the others kept.
    let written = jsonl_rows(&scratch, "lake");
    assert_eq!(written.len(), 165);
    let mut by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (file, row) in &written {
        let day = row.get("date").map_or_else(
            || {
                file.split('/')
                    .next()
                    .unwrap()
                    .trim_start_matches("date=")
                    .to_string()
            },
            |d| d.as_str().unwrap().to_string(),
        );
        by_day
            .entry(day)
            .or_default()
            .push(row["sessions"].as_i64().unwrap());
    }
    assert_eq!(by_day.len(), 11);
    for (day, sessions) in &by_day {
        assert_eq!(sessions.len(), 15, "{day}");
        let age = (today - chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap()).num_days();
        let restated = sessions.iter().all(|s| *s >= 110);
        assert_eq!(restated, age < 3, "{day}: {sessions:?}");
    }
}

#[test]
fn quota_exhaustion_rate_limits_and_mistakes_are_said_in_words() {
    let (server, scratch) = connected();
    let flow = report(
        json!({"fields": ["date", "sessions"], "options": {"start_date": "3daysAgo"}}),
        json!({"folder": "out", "format": "jsonl"}),
    );
    // A 429 asking to wait a second is waited out.
    server.control(json!({"fail": [{"status": 429, "at": "runReport", "retry_after": 1}]}));
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 3);

    // The daily quota: said in words, at once.
    server.control(json!({"exhaust": true}));
    let out = run(&scratch, &flow);
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("RESOURCE_EXHAUSTED"), "{text}");
    assert!(text.contains("quota is used up"), "{text}");
    server.control(json!({"exhaust": false}));

    let check = |flow: &Value| {
        let path = scratch.flow("check.json", flow);
        let out = tributary(&scratch)
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let text = check(&report(
        json!({"fields": ["date", "sesions"]}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("has no field `sesions`"), "{text}");
    let text = check(&report(
        json!({"fields": ["date", "country"]}),
        json!({"folder": "out"}),
    ));
    assert!(
        text.contains("(/nodes/0/config/fields): the report asks for no metric"),
        "{text}"
    );
    let text = check(&report(
        json!({"conditions": [{"field": "date", "operator": "equal_to", "value": "2026-11-30"}]}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("cannot filter by `date`"), "{text}");
    let text = check(&report(
        json!({"entity": "properties/333"}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("PERMISSION_DENIED"), "{text}");
}

#[test]
fn the_example_flow_keeps_each_day_once_run_after_run() {
    let (_server, scratch) = connected();
    let example = std::path::absolute("flows/ga4-traffic-to-lake.json").unwrap();
    let out_dir = scratch.path().join("ga4");
    let run = || {
        tributary(&scratch)
            .args(["run", example.to_str().unwrap(), "--json"])
            .args(["--param", "connection=ga"])
            .args(["--param", &format!("property={SHOP}")])
            .args(["--param", &format!("output={}", out_dir.display())])
            .output()
            .unwrap()
    };
    // 31 days, 15 rows a day; then the last four days again.
    assert_eq!(ran(&run())["records_written"], 465);
    assert_eq!(ran(&run())["records_written"], 60);
    let days: Vec<String> = files_under(&out_dir)
        .into_iter()
        .filter(|f| !f.starts_with(".tributary-staging"))
        .collect();
    assert_eq!(days.len(), 31, "one file a day: {days:?}");
}

/// A service account signs in with its key file alone: no browser, no client id. Each
/// token comes from an RS256 assertion the server checks against the account's key; a key
/// Google does not know is said in words.
#[test]
fn a_service_account_signs_in_with_its_key_file_alone() {
    let server = SupportServer::start("ga4_server.py", &[]);
    let scratch = Scratch::new();
    let url = server.url().to_string();
    let key = server.get("/test/service_account_key");
    let add = |name: &str, key: &Value| {
        add_connection(
            &scratch,
            PASSPHRASE,
            name,
            "google_analytics",
            "service_account",
            &[format!("instance_url={url}"), format!("admin_url={url}")],
            &key.to_string(),
        )
    };
    add("robot", &key);
    let test = tributary(&scratch)
        .args(["connection", "test", "robot"])
        .output()
        .unwrap();
    assert!(
        said(&test).contains("connected: 2 properties to report on"),
        "{}",
        said(&test)
    );
    let mut flow = report(
        json!({"fields": ["date", "sessions"], "options": {"start_date": "3daysAgo"}}),
        json!({"folder": "out", "format": "jsonl"}),
    );
    flow["nodes"][0]["config"]["connection"] = json!("robot");
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 3);
    let grants: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|r| r["path"] == "/token")
        .map(|r| r["query"]["grant_type"].clone())
        .collect();
    assert_eq!(
        grants,
        ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "one token for the test and the run, kept in the vault"
    );

    let mut stranger = key.clone();
    stranger["client_email"] = json!("someone-else@acme-analytics.iam.gserviceaccount.com");
    add("stranger", &stranger);
    flow["nodes"][0]["config"]["connection"] = json!("stranger");
    let text = said(&run(&scratch, &flow));
    assert!(
        text.contains("refused the service account someone-else@"),
        "{text}"
    );
    assert!(
        text.contains("invalid_grant: Invalid JWT: unknown issuer."),
        "{text}"
    );
}
