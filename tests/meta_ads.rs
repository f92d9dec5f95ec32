//! `source.meta_ads`, Meta's Marketing API on the connector framework, through the
//! `tributary` command against a Graph API on loopback (`tests/support/meta_ads_server.py`).
//! The tests check the requests (fields, level, breakdowns, filtering, time ranges, the
//! asynchronous report's start and polls, the pages followed) as well as the rows
//! written, throttling waited out or said in words, and lookbacks that keep each day once.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};
use tributary::workspace::Workspace;

const PASSPHRASE: &str = "meta tests";
const INSIGHTS: &str = "/v27.0/act_111222333/insights";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// A server and a scratch installation with the connection `meta`.
fn connected() -> (SupportServer, Scratch) {
    let scratch = Scratch::new();
    (meta_ads_connection(&scratch, PASSPHRASE, "meta"), scratch)
}

fn pull(entity: &str, source: Value, destination: Value) -> Value {
    let mut config = json!({"connection": "meta", "entity": entity});
    config
        .as_object_mut()
        .unwrap()
        .extend(source.as_object().unwrap().clone());
    flow(
        vec![
            node("meta", "source.meta_ads", config),
            node("out", "destination.local", destination),
        ],
        &[("meta", "out")],
    )
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

fn day(server: &SupportServer, back: i64) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(server.info["today"].as_str().unwrap(), "%Y-%m-%d").unwrap()
        - chrono::Duration::days(back)
}

#[test]
fn the_check_names_the_ad_account_and_fields_have_their_types() {
    let (server, scratch) = connected();
    let test = tributary(&scratch)
        .args(["connection", "test", "meta"])
        .output()
        .unwrap();
    assert!(
        said(&test).contains("connected to Acme Shoes EU (act_111222333, amounts in EUR)"),
        "{}",
        said(&test)
    );
    let dirs = tributary::paths::Dirs::under(&scratch.home());
    tributary::auth::vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = pull("insights", json!({}), json!({"folder": "out"}));
    let flow = tributary::flow::Flow::from_json(&flow.to_string(), "test").unwrap();
    let types = planned_types(&flow, "meta", &scratch, &workspace);
    assert_eq!(types["date_start"], "date");
    assert_eq!(types["impressions"], "integer");
    assert_eq!(types["spend"], "number");
    assert_eq!(types["campaign_name"], "string");
    let flow = pull("campaigns", json!({}), json!({"folder": "out"}));
    let flow = tributary::flow::Flow::from_json(&flow.to_string(), "test").unwrap();
    let types = planned_types(&flow, "meta", &scratch, &workspace);
    assert_eq!(types["updated_time"], "timestamp");
    assert_eq!(types["daily_budget"], "integer");
    for r in server.requests() {
        assert_eq!(r["auth"], "Bearer EAAB-meta-token", "{r}");
    }
}

#[test]
fn insights_page_by_paging_next_with_level_breakdowns_and_filtering() {
    let (server, scratch) = connected();
    let (from, to) = (day(&server, 9), day(&server, 0));
    let flow = pull(
        "insights",
        json!({
            "fields": ["date_start", "campaign_name", "country", "impressions", "clicks", "spend"],
            "conditions": [
                {"field": "campaign_name", "operator": "contains", "value": "sale"},
                {"field": "impressions", "operator": "greater_than_or_equal_to", "value": 100}
            ],
            "options": {"start_date": from.to_string(), "end_date": to.to_string(), "page_size": 7}
        }),
        json!({"folder": "out", "format": "jsonl"}),
    );
    let record = ran(&run(&scratch, &flow));
    // Ten days, one campaign with "sale", two countries.
    assert_eq!(record["records_written"], 20);
    let requests: Vec<Value> = server
        .requests()
        .into_iter()
        .filter(|r| r["path"] == INSIGHTS)
        .collect();
    assert_eq!(requests.len(), 3, "20 rows at 7 a page");
    let params = &requests[0]["params"];
    assert_eq!(params["level"], "campaign");
    assert_eq!(params["breakdowns"], "country");
    assert_eq!(params["fields"], "campaign_name,impressions,clicks,spend");
    assert_eq!(params["time_increment"], "1");
    assert_eq!(params["limit"], "7");
    assert_eq!(
        serde_json::from_str::<Value>(params["time_range"].as_str().unwrap()).unwrap(),
        json!({"since": from.to_string(), "until": to.to_string()})
    );
    assert_eq!(
        serde_json::from_str::<Value>(params["filtering"].as_str().unwrap()).unwrap(),
        json!([{"field": "campaign.name", "operator": "CONTAIN", "value": "sale"},
               {"field": "impressions", "operator": "GREATER_THAN_OR_EQUAL", "value": 100}])
    );
    assert_eq!(requests[1]["params"]["after"], "7");
    assert_eq!(requests[2]["params"]["after"], "14");
    for (_, row) in jsonl_rows(&scratch, "out") {
        assert_eq!(row["campaign_name"], "Winter sale");
        assert!(
            row["impressions"].is_i64() && row["spend"].is_f64(),
            "{row}"
        );
    }
}

#[test]
fn a_long_range_runs_as_an_asynchronous_report() {
    let (server, scratch) = connected();
    let flow = pull(
        "insights",
        json!({
            "fields": ["date_start", "campaign_id", "adset_name", "clicks"],
            "options": {"start_date": day(&server, 35).to_string(), "async_after_days": 31}
        }),
        json!({"folder": "out", "format": "jsonl"}),
    );
    let record = ran(&run(&scratch, &flow));
    // 36 days, six ad sets.
    assert_eq!(record["records_written"], 216);
    let requests = server.requests();
    let started: Vec<&Value> = requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == INSIGHTS)
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["params"]["level"], "adset");
    let polls = requests
        .iter()
        .filter(|r| r["path"] == "/v27.0/6000")
        .count();
    assert_eq!(polls, 2, "polled until Job Completed");
    let pages = requests
        .iter()
        .filter(|r| r["path"] == "/v27.0/6000/insights")
        .count();
    assert_eq!(pages, 1, "216 rows at 500 a page");
    assert!(
        !requests
            .iter()
            .any(|r| r["method"] == "GET" && r["path"] == INSIGHTS),
        "no synchronous read"
    );

    server.control(json!({"fail_report": true}));
    let out = run(&scratch, &flow);
    assert!(!out.status.success());
    assert!(
        said(&out).contains("ended as `Job Failed`"),
        "{}",
        said(&out)
    );
}

#[test]
fn incremental_insights_read_the_last_days_again_and_the_lake_keeps_each_day_once() {
    let (server, scratch) = connected();
    let flow = pull(
        "insights",
        json!({
            "fields": ["date_start", "campaign_id", "clicks"],
            "incremental": true,
            "options": {"start_date": day(&server, 9).to_string(), "lookback_days": 5}
        }),
        json!({"folder": "lake", "format": "jsonl", "partition_by": ["date_start"],
               "replace_partitions": true}),
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 30);
    server.control(json!({"restate": 1000}));
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 18);
    let last = server
        .requests()
        .into_iter()
        .rfind(|r| r["path"] == INSIGHTS)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(last["params"]["time_range"].as_str().unwrap()).unwrap(),
        json!({"since": day(&server, 5).to_string(), "until": day(&server, 0).to_string()})
    );
    let mut by_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (file, row) in jsonl_rows(&scratch, "lake") {
        let day = file.split('/').next().unwrap().replace("date_start=", "");
        by_day
            .entry(day)
            .or_default()
            .push(row["clicks"].as_i64().unwrap());
    }
    assert_eq!(by_day.len(), 10);
    for (d, clicks) in &by_day {
        assert_eq!(clicks.len(), 3, "each campaign once on {d}");
        let age = (day(&server, 0) - chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap())
            .num_days();
        assert_eq!(
            clicks.iter().all(|c| *c >= 1000),
            age < 5,
            "{d}: {clicks:?}"
        );
    }
}

#[test]
fn campaigns_are_read_incrementally_by_their_update_time() {
    let (server, scratch) = connected();
    let flow = pull(
        "campaigns",
        json!({"fields": ["id", "name", "daily_budget", "updated_time"], "incremental": true}),
        json!({"folder": "out", "format": "jsonl"}),
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 3);
    let written = jsonl_rows(&scratch, "out");
    assert_eq!(written[0].1["daily_budget"], 5000);
    assert!(
        written[0].1["updated_time"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-0"),
        "{}",
        written[0].1
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 0);
    server.control(json!({"touch": "602"}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 1);
    let last = server
        .requests()
        .into_iter()
        .rfind(|r| r["path"] == "/v27.0/act_111222333/campaigns")
        .unwrap();
    let filtering: Value =
        serde_json::from_str(last["params"]["filtering"].as_str().unwrap()).unwrap();
    assert_eq!(filtering[0]["field"], "updated_time");
    assert_eq!(filtering[0]["operator"], "GREATER_THAN");
}

#[test]
fn throttling_is_waited_out_or_said_and_a_bad_token_is_named() {
    let (server, scratch) = connected();
    let flow = pull(
        "insights",
        json!({"fields": ["date_start", "clicks"], "options": {"date_preset": "last_7d"}}),
        json!({"folder": "out", "format": "jsonl"}),
    );
    // Throttled twice, with access back at once: waited out.
    server.control(json!({"throttle": 2, "regain": 0}));
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 7);

    // Access back in an hour: said at once, in words.
    server.control(json!({"throttle": 1, "regain": 60}));
    let out = run(&scratch, &flow);
    assert!(!out.status.success());
    let text = said(&out);
    assert!(text.contains("(#80000, subcode 2446079)"), "{text}");
    assert!(text.contains("rate limit is used up"), "{text}");
    assert!(text.contains("access back in 60 min"), "{text}");

    let bad = pull(
        "insights",
        json!({"fields": ["date_start", "clicks"], "options": {"date_preset": "last_century"}}),
        json!({"folder": "out"}),
    );
    let text = said(&run(&scratch, &bad));
    assert!(text.contains("date_preset must be one of"), "{text}");

    add_connection(
        &scratch,
        PASSPHRASE,
        "stale",
        "meta_ads",
        "api_key",
        &[
            "ad_account_id=111222333".into(),
            format!("instance_url={}", server.url()),
        ],
        "EAAB-expired",
    );
    let mut stale = flow.clone();
    stale["nodes"][0]["config"]["connection"] = json!("stale");
    let text = said(&run(&scratch, &stale));
    assert!(text.contains("(#190)"), "{text}");
    assert!(text.contains("make a new token"), "{text}");

    let path = scratch.flow(
        "check.json",
        &pull("creatives", json!({}), json!({"folder": "out"})),
    );
    let text = said(
        &tributary(&scratch)
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert!(text.contains("no object `creatives`"), "{text}");
}

#[test]
fn the_example_flow_keeps_each_day_once_run_after_run() {
    let (_server, scratch) = connected();
    let example = std::path::absolute("flows/meta-ads-insights-to-lake.json").unwrap();
    let out_dir = scratch.path().join("meta");
    let run = || {
        tributary(&scratch)
            .args(["run", example.to_str().unwrap(), "--json"])
            .args(["--param", "connection=meta"])
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
