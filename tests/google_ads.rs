//! `source.google_ads`, the Google Ads API on the connector framework, through the
//! `tributary` command against Google's OAuth and the Google Ads API on loopback
//! (`tests/support/google_ads_server.py`). The tests check the requests (the GAQL text,
//! the headers every request carries, the pages of a preview) as well as the rows
//! written, and that a lake partitioned by day keeps each day once across lookbacks.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};
use tributary::workspace::Workspace;

const PASSPHRASE: &str = "ads tests";
const STREAM: &str = "/v26/customers/1234567890/googleAds:searchStream";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// A server and a scratch installation with the connection `ads`.
fn connected() -> (SupportServer, Scratch) {
    let scratch = Scratch::new();
    (google_ads_connection(&scratch, PASSPHRASE, "ads"), scratch)
}

fn report(source: Value, destination: Value) -> Value {
    let mut config = json!({"connection": "ads", "entity": "campaign"});
    config
        .as_object_mut()
        .unwrap()
        .extend(source.as_object().unwrap().clone());
    flow(
        vec![
            node("ads", "source.google_ads", config),
            node("out", "destination.local", destination),
        ],
        &[("ads", "out")],
    )
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

fn streams(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["path"] == STREAM && r["status"] == 200)
        .cloned()
        .collect()
}

#[test]
fn the_check_names_the_account_and_resources_and_fields_come_from_the_field_service() {
    let (server, scratch) = connected();
    let requests = server.requests();
    let auth = requests
        .iter()
        .find(|r| r["path"] == "/o/oauth2/v2/auth")
        .unwrap();
    assert_eq!(
        auth["body"]["scope"],
        "https://www.googleapis.com/auth/adwords"
    );
    assert_eq!(auth["body"]["access_type"], "offline");

    let test = tributary(&scratch)
        .args(["connection", "test", "ads"])
        .output()
        .unwrap();
    assert!(
        said(&test).contains("connected to Acme Shoes (1234567890, amounts in EUR)"),
        "{}",
        said(&test)
    );

    let dirs = tributary::paths::Dirs::under(&scratch.home());
    tributary::auth::vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = report(json!({}), json!({"folder": "out", "format": "jsonl"}));
    let flow = tributary::flow::Flow::from_json(&flow.to_string(), "test").unwrap();
    let types = planned_types(&flow, "ads", &scratch, &workspace);
    assert_eq!(types["campaign.id"], "integer");
    assert_eq!(types["campaign.status"], "string");
    assert_eq!(types["segments.date"], "date");
    assert_eq!(types["metrics.cost_micros"], "integer");
    assert_eq!(types["metrics.conversions"], "number");
    assert_eq!(
        types["customer.descriptive_name"], "string",
        "the attributes of the resources a campaign is attributed to"
    );
    assert!(
        !types.contains_key("ad_group.name"),
        "not selectable with a campaign"
    );
    assert!(!types.contains_key("campaign.labels"), "a list: left out");
    assert!(
        !types.contains_key("campaign.network_settings"),
        "a message: left out"
    );

    let requests = server.requests();
    let searches: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v26/googleAdsFields:search")
        .collect();
    assert!(searches.len() >= 3, "the field catalog, page by page");
    assert!(searches.iter().any(|r| r["body"]["pageToken"] == "8"));
    for r in &requests {
        assert_eq!(r["auth"], "Bearer", "{r}");
        assert_eq!(r["developer_token"], "DEV-TOKEN-22", "{r}");
    }
    assert!(
        requests
            .iter()
            .filter(|r| r["path"].as_str().unwrap().contains("/customers/"))
            .all(|r| r["login_customer_id"] == "9876543210")
    );
}

#[test]
fn a_report_streams_its_gaql_query_with_the_conditions() {
    let (server, scratch) = connected();
    server.requests();
    let flow = report(
        json!({
            "fields": ["campaign.name", "segments.date", "segments.device", "metrics.clicks", "metrics.cost_micros"],
            "conditions": [
                {"field": "campaign.name", "operator": "equal_to", "value": ["Brand", "O'Brien shoes"]},
                {"field": "metrics.clicks", "operator": "greater_than_or_equal_to", "value": 10}
            ],
            "options": {"start_date": "2026-01-01", "end_date": "2099-12-31"}
        }),
        json!({"folder": "out", "format": "jsonl"}),
    );
    let record = ran(&run(&scratch, &flow));
    let streams = streams(&server.requests());
    assert_eq!(streams.len(), 1, "one streamed request");
    assert_eq!(
        streams[0]["body"]["query"],
        "SELECT campaign.name, segments.date, segments.device, metrics.clicks, metrics.cost_micros \
         FROM campaign WHERE campaign.name IN ('Brand', 'O\\'Brien shoes') AND metrics.clicks >= 10 \
         AND segments.date BETWEEN '2026-01-01' AND '2099-12-31'"
    );
    let total = streams[0]["body"]["rows"].as_u64().unwrap();
    assert!(total > 100, "many batches of five: {total}");
    let written = jsonl_rows(&scratch, "out");
    assert_eq!(written.len() as u64, total);
    assert_eq!(record["records_written"], total);
    for (_, row) in &written {
        assert!(row["campaign.name"] == "Brand" || row["campaign.name"] == "O'Brien shoes");
        assert!(row["metrics.clicks"].as_i64().unwrap() >= 10, "{row}");
        assert!(row["metrics.cost_micros"].is_i64(), "{row}");
        assert_eq!(row["segments.date"].as_str().unwrap().len(), 10);
    }
    assert_eq!(
        record["nodes"][0]["notes"]["query_resource_consumption"],
        total * 10
    );
}

#[test]
fn a_preview_pages_through_search_and_reads_no_more_than_it_shows() {
    let (server, scratch) = connected();
    server.requests();
    let flow = report(
        json!({"fields": ["campaign.id", "campaign.name", "segments.date", "metrics.impressions"],
               "options": {"during": "LAST_7_DAYS"}}),
        json!({"folder": "out"}),
    );
    let path = scratch.flow("flow.json", &flow);
    let out = tributary(&scratch)
        .args(["preview", path.to_str().unwrap(), "--node", "ads"])
        .args(["--limit", "10", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    let preview: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(preview["records"].as_array().unwrap().len(), 10);
    assert!(preview["records"][0]["campaign.id"].is_i64());
    let requests = server.requests();
    let pages: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v26/customers/1234567890/googleAds:search")
        .collect();
    assert_eq!(pages.len(), 3, "10 rows at 4 a page");
    assert_eq!(
        pages[0]["body"]["query"],
        "SELECT campaign.id, campaign.name, segments.date, metrics.impressions FROM campaign \
         WHERE segments.date DURING LAST_7_DAYS LIMIT 10"
    );
    assert_eq!(pages[1]["body"]["pageToken"], "4");
    assert!(streams(&requests).is_empty());
}

#[test]
fn incremental_runs_read_the_last_days_again_and_the_lake_keeps_each_day_once() {
    let (server, scratch) = connected();
    let today =
        chrono::NaiveDate::parse_from_str(server.info["today"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap();
    let start = today - chrono::Duration::days(9);
    let flow = report(
        json!({
            "fields": ["campaign.id", "segments.date", "metrics.conversions"],
            "incremental": true,
            "options": {"start_date": start.to_string(), "lookback_days": 5}
        }),
        json!({"folder": "lake", "format": "jsonl", "partition_by": ["segments.date"],
               "replace_partitions": true}),
    );
    // Ten days, three campaigns.
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 30);

    // Conversions of the last five days arrive late.
    server.control(json!({"restate": 100}));
    let second = ran(&run(&scratch, &flow));
    let query = streams(&server.requests())[1]["body"]["query"].clone();
    let from = today - chrono::Duration::days(5);
    assert!(
        query
            .as_str()
            .unwrap()
            .ends_with(&format!("segments.date BETWEEN '{from}' AND '{today}'")),
        "{query}"
    );
    assert_eq!(second["records_written"], 18);

    let mut by_day: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (file, row) in jsonl_rows(&scratch, "lake") {
        let day = file
            .split('/')
            .next()
            .unwrap()
            .replace("segments.date=", "");
        by_day
            .entry(day)
            .or_default()
            .push(row["metrics.conversions"].as_f64().unwrap());
    }
    assert_eq!(by_day.len(), 10);
    for (day, conversions) in &by_day {
        assert_eq!(conversions.len(), 3, "each campaign once on {day}");
        let age = (today - chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap()).num_days();
        assert_eq!(conversions.iter().all(|c| *c >= 100.0), age < 5, "{day}");
    }
}

#[test]
fn quota_exhaustion_a_missing_manager_account_and_mistakes_are_said_in_words() {
    let (server, scratch) = connected();
    let flow = report(
        json!({"fields": ["campaign.name", "metrics.clicks"]}),
        json!({"folder": "out", "format": "jsonl"}),
    );
    server.control(json!({"exhaust": true}));
    let out = run(&scratch, &flow);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("RESOURCE_EXHAUSTED: RESOURCE_EXHAUSTED: Too many requests"),
        "{}",
        said(&out)
    );
    assert!(said(&out).contains("are used up"), "{}", said(&out));
    server.control(json!({"exhaust": false}));

    // A mistake in the options: Google Ads' words, with the code.
    let text = said(&run(
        &scratch,
        &report(
            json!({"fields": ["campaign.name", "segments.date"], "options": {"during": "NEXT_CENTURY"}}),
            json!({"folder": "out"}),
        ),
    ));
    assert!(
        text.contains("INVALID_VALUE_WITH_DURING_OPERATOR: Invalid date range 'NEXT_CENTURY'"),
        "{text}"
    );

    // Without the manager account, Google Ads refuses the account: the words say what to set.
    let file = tributary::paths::Dirs::under(&scratch.home())
        .config
        .join("connections.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut connections: Value = serde_json::from_str(&text).unwrap();
    fn forget_manager(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("login_customer_id");
                map.values_mut().for_each(forget_manager);
            }
            Value::Array(items) => items.iter_mut().for_each(forget_manager),
            _ => {}
        }
    }
    forget_manager(&mut connections);
    std::fs::write(&file, connections.to_string()).unwrap();
    let text = said(&run(&scratch, &flow));
    assert!(text.contains("USER_PERMISSION_DENIED"), "{text}");
    assert!(text.contains("set login_customer_id"), "{text}");

    let check = |flow: &Value| {
        let path = scratch.flow("check.json", flow);
        said(
            &tributary(&scratch)
                .args(["validate", path.to_str().unwrap()])
                .output()
                .unwrap(),
        )
    };
    let text = check(&report(
        json!({"fields": ["campaign.nme"]}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("has no field `campaign.nme`"), "{text}");
    let text = check(&report(
        json!({"entity": "campaign.name"}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("is a field, not a resource"), "{text}");
    let text = check(&report(
        json!({"conditions": [{"field": "campaign.status", "operator": "contains", "value": "ENA"}]}),
        json!({"folder": "out"}),
    ));
    assert!(text.contains("campaign.status"), "{text}");
}

#[test]
fn the_example_flow_keeps_each_day_once_run_after_run() {
    let (_server, scratch) = connected();
    let example = std::path::absolute("flows/google-ads-campaigns-to-lake.json").unwrap();
    let out_dir = scratch.path().join("ads");
    let run = || {
        tributary(&scratch)
            .args(["run", example.to_str().unwrap(), "--json"])
            .args(["--param", "connection=ads"])
            .args(["--param", &format!("output={}", out_dir.display())])
            .output()
            .unwrap()
    };
    // 31 days (30 back and today), three campaigns; then the last eight days again.
    assert_eq!(ran(&run())["records_written"], 93);
    assert_eq!(ran(&run())["records_written"], 24);
    let days: Vec<String> = files_under(&out_dir)
        .into_iter()
        .filter(|f| !f.starts_with(".tributary-staging"))
        .collect();
    assert_eq!(days.len(), 31, "one file a day: {days:?}");
}
