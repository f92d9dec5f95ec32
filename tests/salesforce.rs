//! `source.salesforce` through the `tributary` command against an org on loopback that
//! speaks the REST API's and Bulk API 2.0's documented wire formats
//! (`tests/support/salesforce_server.py`). The tests check the requests (paths, SOQL text,
//! Bulk jobs) as well as the records written.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

fn start() -> SupportServer {
    SupportServer::start("salesforce_server.py", &[])
}

/// An installation with a Salesforce connection (client credentials) logged in to the org.
fn connected(org: &SupportServer) -> Scratch {
    let scratch = Scratch::new();
    salesforce_connection(&scratch, org, "salesforce tests");
    org.requests();
    scratch
}

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, "salesforce tests")
}

fn to_folder(source: Value) -> Value {
    let base = json!({"connection": "crm", "entity": "Opportunity"});
    source_to_folder("sf", "source.salesforce", base, source)
}

fn run(scratch: &Scratch, flow: &Value, extra: &[&str]) -> Output {
    run_in(scratch, "salesforce tests", flow, extra)
}

/// Every record written so far, by Id, with how many times each came.
fn written(scratch: &Scratch) -> (BTreeMap<String, Value>, usize) {
    written_by(scratch, "Id")
}

fn soqls(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r["soql"].as_str().map(String::from))
        .collect()
}

#[test]
fn a_rest_pull_follows_next_records_urls_and_pushes_conditions_down() {
    let org = start();
    let scratch = connected(&org);
    let flow = to_folder(json!({
        "fields": ["Id", "Name", "StageName", "Amount", "CloseDate", "SystemModstamp", "IsWon"],
        "conditions": [
            {"field": "StageName", "operator": "not_equal_to", "value": "Closed Lost"},
            {"field": "Amount", "operator": "greater_than", "value": 1000}
        ],
        "options": {"api": "rest"}
    }));
    let record = ran(&run(&scratch, &flow, &[]));
    let (by_id, count) = written(&scratch);
    // Deals 98..450 with an amount (every tenth has none) and not Closed Lost (i % 4 == 3).
    let expected = (98..=450).filter(|i| i % 10 != 0 && i % 4 != 3).count();
    assert_eq!(count, expected);
    assert_eq!(record["records_written"], expected as u64);
    let deal = &by_id["006000000000101"];
    assert_eq!(deal["Name"], "Deal 101");
    assert_eq!(deal["Amount"], 1035.25);
    assert_eq!(deal["CloseDate"], "2026-12-18");
    assert_eq!(deal["IsWon"], false);
    // Sforce-Limit-Info: the org's API allowance as the last answer gave it.
    let notes = &record["nodes"][0]["notes"];
    assert_eq!(notes["api_requests_limit"], 15000);
    assert!(notes["api_requests_used"].as_u64().unwrap() > 0);

    let requests = org.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/services/data/v62.0/sobjects/Opportunity/describe"));
    assert_eq!(
        soqls(&requests),
        vec![
            "SELECT Id, Name, StageName, Amount, CloseDate, SystemModstamp, IsWon FROM Opportunity WHERE StageName != 'Closed Lost' AND Amount > 1000"
        ]
    );
    // Pages of 200 records: the query, then nextRecordsUrl.
    let pages = paths.iter().filter(|p| p.contains("/query")).count();
    assert!(pages >= 2, "{paths:?}");
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/services/data/v62.0/query/01g"))
    );
}

#[test]
fn every_salesforce_type_arrives_as_its_arrow_type() {
    let org = start();
    let scratch = connected(&org);
    let path = scratch.flow("flow.json", &to_folder(json!({})));
    let out = tributary(&scratch)
        .args([
            "preview",
            path.to_str().unwrap(),
            "--node",
            "sf",
            "--limit",
            "5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let preview: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let types: BTreeMap<String, String> = preview["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().into(),
                f["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |name: &str, kind: &str| assert_eq!(types[name], kind, "{name}");
    for text in [
        "Id",
        "Name",
        "AccountId",
        "Description",
        "StageName",
        "Tags__c",
        "Email__c",
        "Phone__c",
        "Site__c",
        "Kind__c",
        "Secret__c",
        "Doc__c",
        "Start__c",
        "Any__c",
    ] {
        expect(text, "string");
    }
    expect("IsDeleted", "boolean");
    // Money and percentages are exact decimals of the digits describe gives.
    expect("Amount", "decimal(18,2)");
    expect("Probability", "decimal(3,0)");
    expect("Score__c", "number");
    expect("Quantity__c", "integer");
    expect("Views__c", "integer");
    expect("CloseDate", "date");
    expect("SystemModstamp", "timestamp");
    // The compound address is left out; its parts would be fields of their own.
    assert!(!types.contains_key("Address__c"));
    assert_eq!(preview["records"].as_array().unwrap().len(), 5);
    assert_eq!(
        preview["records"][0]["SystemModstamp"],
        "2026-11-01T00:00:00Z"
    );
    // A preview asks Salesforce for no more than it shows.
    let soql = soqls(&org.requests());
    assert!(soql.iter().all(|s| s.ends_with(" LIMIT 5")), "{soql:?}");
}

#[test]
fn an_expired_session_mid_pagination_is_refreshed_and_the_page_asked_again() {
    let org = start();
    let scratch = connected(&org);
    // Pages of 100: the session ends when the third page is asked for, and the fourth
    // meets a 503.
    org.control(
        json!({"page_size": 100, "expire_at": "-200", "fail": [{"status": 503, "at": "-300"}]}),
    );
    let flow = to_folder(json!({"fields": ["Id", "Name"], "options": {"api": "rest"}}));
    let record = ran(&run(&scratch, &flow, &[]));
    assert_eq!(record["records_written"], 450);
    let trail: Vec<String> = org
        .requests()
        .iter()
        .filter(|r| r["path"] != "/services/data/v62.0/sobjects/Opportunity/describe")
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            let short = if path.ends_with("/token") {
                "token"
            } else {
                path.rsplit('/').next().unwrap().rsplit('-').next().unwrap()
            };
            format!("{} {short}", r["status"])
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            "200 query",
            "200 100",
            "401 200",
            "200 token",
            "200 200",
            "503 300",
            "200 300",
            "200 400"
        ]
    );
    let (by_id, count) = written(&scratch);
    assert_eq!((by_id.len(), count), (450, 450));
}

#[test]
fn incremental_pulls_read_every_record_once_across_runs() {
    let org = start();
    let scratch = connected(&org);
    let flow = to_folder(json!({
        "fields": ["Id", "Name", "SystemModstamp"],
        "incremental": true,
        "options": {"api": "rest"}
    }));
    let first = ran(&run(&scratch, &flow, &[]));
    assert_eq!(first["records_written"], 450);
    assert_eq!(first["windows"][0]["from"], Value::Null);
    let soql = soqls(&org.requests());
    assert!(soql[0].contains(" WHERE SystemModstamp < "), "{soql:?}");

    // The last run's newest instant is 2026-11-01T01:30 (deals 450..454 would share it;
    // 450 is there). Two new deals land at that very instant, one later.
    org.control(json!({"upsert": [
        {"Id": "006000000000451", "Name": "Deal 451", "SystemModstamp": "2026-11-01T01:30:00.000+0000"},
        {"Id": "006000000000452", "Name": "Deal 452", "SystemModstamp": "2026-11-01T01:30:00.000+0000"},
        {"Id": "006000000000017", "Name": "Deal 17 again", "SystemModstamp": "2026-11-01T02:00:00.000+0000"},
    ]}));
    let second = ran(&run(&scratch, &flow, &[]));
    assert_eq!(second["records_written"], 3);
    let soql = soqls(&org.requests());
    assert!(
        soql[0].contains("SystemModstamp >= 2026-11-01T01:30:00.000Z AND SystemModstamp < "),
        "{soql:?}"
    );
    let third = ran(&run(&scratch, &flow, &[]));
    assert_eq!(third["records_written"], 0);

    let (by_id, count) = written(&scratch);
    assert_eq!(by_id.len(), 452);
    // Deal 17 came twice: as it was, and changed.
    assert_eq!(count, 453);
    assert_eq!(by_id["006000000000017"]["Name"], "Deal 17 again");
    let state = tributary(&scratch)
        .args([
            "state",
            "show",
            scratch.path().join("flow.json").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&state).contains("2026-11-01T02:00:00Z"),
        "{}",
        stdout(&state)
    );
}

#[test]
fn a_bulk_query_reads_its_result_sets_by_locator() {
    let org = start();
    let scratch = connected(&org);
    // Automatic: the count says 450 records, above this node's threshold of 100.
    let flow = to_folder(json!({
        "fields": ["Id", "Name", "Amount", "IsWon", "CloseDate", "SystemModstamp", "Description", "Tags__c"],
        "options": {"bulk_from": 100}
    }));
    let record = ran(&run(&scratch, &flow, &[]));
    assert_eq!(record["records_written"], 450);
    let requests = org.requests();
    let soql = soqls(&requests);
    assert_eq!(
        soql,
        vec!["SELECT COUNT() FROM Opportunity"],
        "the count decides; the records come from the job"
    );
    let job = requests.iter().find(|r| r.get("job").is_some()).unwrap();
    assert_eq!(job["job"]["operation"], "query");
    assert_eq!(
        job["job"]["query"],
        "SELECT Id, Name, Amount, IsWon, CloseDate, SystemModstamp, Description, Tags__c FROM Opportunity"
    );
    let results: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/results"))
        .collect();
    // 160 records a result set: three sets, the second and third asked for by locator.
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["query"]["locator"], "160");
    assert_eq!(results[2]["query"]["locator"], "320");
    let polls = requests
        .iter()
        .filter(|r| {
            let p = r["path"].as_str().unwrap();
            p.contains("/jobs/query/750") && !p.ends_with("/results")
        })
        .count();
    assert!(polls >= 2, "the job was InProgress first");

    // The same records, typed the same, as a REST pull writes.
    let (bulk, _) = written(&scratch);
    let rest_scratch = connected(&org);
    let mut rest_flow = flow.clone();
    rest_flow["nodes"][0]["config"]["options"]["api"] = json!("rest");
    ran(&run(&rest_scratch, &rest_flow, &[]));
    let (rest, _) = written(&rest_scratch);
    // Field by field, empties included: an empty text is null through either API.
    assert_eq!(bulk, rest);
    assert_eq!(bulk["006000000000010"]["Amount"], Value::Null);
    assert_eq!(bulk["006000000000007"]["Description"], Value::Null);
    assert_eq!(bulk["006000000000008"]["Description"], "Déjà vu deal 8");
}

#[test]
fn salesforce_errors_are_said_in_words() {
    let org = start();
    let scratch = connected(&org);
    let bad_field = to_folder(json!({"fields": ["Id", "Nme"]}));
    let out = run(&scratch, &bad_field, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Opportunity has no field `Nme`"),
        "{}",
        stderr(&out)
    );
    let bad_object = to_folder(json!({"entity": "Opportunityy"}));
    let out = run(&scratch, &bad_object, &[]);
    assert!(
        stderr(&out).contains("Salesforce has no object `Opportunityy`"),
        "{}",
        stderr(&out)
    );
    // The daily limit: Salesforce's code and what it means.
    let flow = to_folder(json!({"fields": ["Id"], "options": {"api": "rest"}}));
    let path = scratch.flow("flow.json", &flow);
    assert!(
        tributary(&scratch)
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    org.control(json!({"fail": [{"status": 403, "at": "/query"}]}));
    let out = run(&scratch, &flow, &[]);
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("REQUEST_LIMIT_EXCEEDED"), "{text}");
    assert!(text.contains("daily API request limit"), "{text}");
}

/// 450 upserts: 400 renames of existing deals, 47 new deals, and 3 that Salesforce
/// refuses (no name for a new deal, two negative amounts).
fn deals_csv() -> String {
    let mut csv = String::from("External_Id__c,Name,Amount,StageName\n");
    for i in 1..=400 {
        csv += &format!("EXT-{i},Renamed {i},{}.5,Qualification\n", i * 3);
    }
    for i in 901..=947 {
        csv += &format!("EXT-{i},New deal {i},{i},Prospecting\n");
    }
    csv += "EXT-948,,10,Prospecting\n"; // new, and no name
    csv += "EXT-949,Refund,-5,Prospecting\n";
    csv += "EXT-7,Deal 7 again,-1,Prospecting\n"; // refused: the earlier rename stands
    csv
}

/// In the shape Salesforce's destination had before it was the framework's generic one
/// (`object`, `external_id_field`, `api` beside them): such flows keep running.
fn upsert_flow(input: &std::path::Path, api: &str) -> Value {
    flow(
        vec![
            node(
                "csv",
                "source.file",
                json!({"path": input.to_str().unwrap()}),
            ),
            node(
                "sf",
                "destination.salesforce",
                json!({"connection": "crm", "object": "Opportunity", "operation": "upsert",
                       "external_id_field": "External_Id__c", "api": api}),
            ),
        ],
        &[("csv", "sf")],
    )
}

/// What the org holds after the upsert of `deals_csv`.
fn assert_upserted(org: &SupportServer) {
    let records = org.get("/test/records").as_array().unwrap().clone();
    let named = |prefix: &str| {
        records
            .iter()
            .filter(|r| r["Name"].as_str().unwrap_or_default().starts_with(prefix))
            .count()
    };
    assert_eq!(named("Renamed "), 400);
    assert_eq!(named("New deal "), 47);
    assert_eq!(records.len(), 450 + 47);
    let deal7 = records
        .iter()
        .find(|r| r["External_Id__c"] == "EXT-7")
        .unwrap();
    assert_eq!(deal7["Name"], "Renamed 7");
}

#[test]
fn an_upsert_sends_200_records_a_request_and_sets_refused_ones_aside() {
    let org = start();
    let scratch = connected(&org);
    let csv = deals_csv();
    let input = scratch.write("deals.csv", &csv);
    let flow = flow(
        vec![
            node(
                "csv",
                "source.file",
                json!({"path": input.to_str().unwrap()}),
            ),
            node(
                "sf",
                "destination.salesforce",
                json!({"connection": "crm", "object": "Opportunity", "operation": "upsert",
                       "external_id_field": "External_Id__c"}),
            ),
        ],
        &[("csv", "sf")],
    );
    let record = ran(&run(&scratch, &flow, &[]));
    assert_eq!(record["records_rejected"], 3);
    assert_eq!(record["outputs"][0]["records"], 447);
    assert_eq!(
        record["outputs"][0]["location"],
        "crm:Salesforce/Opportunity (upsert by External_Id__c)"
    );

    let calls: Vec<Value> = org
        .requests()
        .into_iter()
        .filter(|r| r.get("operation").is_some())
        .collect();
    let sizes: Vec<u64> = calls.iter().map(|c| c["count"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![200, 200, 50]);
    assert!(calls.iter().all(|c| {
        c["method"] == "PATCH"
            && c["allOrNone"] == false
            && c["path"] == "/services/data/v62.0/composite/sobjects/Opportunity/External_Id__c"
    }));

    // The refused records, with Salesforce's codes, in the run's error output.
    let errors_file = record["error_output"].as_str().unwrap();
    let errors: Vec<Value> = std::fs::read_to_string(errors_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = errors
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(
        reasons.contains(&"REQUIRED_FIELD_MISSING: Required fields are missing: [Name] (Name)")
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("FIELD_CUSTOM_VALIDATION_EXCEPTION"))
            .count(),
        2
    );
    assert!(
        errors
            .iter()
            .any(|e| e["record"].as_str().unwrap().contains("EXT-949"))
    );

    assert_upserted(&org);
}

#[test]
fn a_bulk_ingest_job_writes_and_brings_back_the_refused_records() {
    let org = start();
    let scratch = connected(&org);
    let input = scratch.write("deals.csv", &deals_csv());
    let record = ran(&run(&scratch, &upsert_flow(&input, "bulk"), &[]));
    assert_eq!(record["records_rejected"], 3);
    assert_eq!(record["outputs"][0]["records"], 447);
    let requests = org.requests();
    let job = requests.iter().find(|r| r.get("ingest").is_some()).unwrap();
    assert_eq!(
        job["ingest"],
        json!({"object": "Opportunity", "operation": "upsert", "contentType": "CSV",
               "lineEnding": "LF", "externalIdFieldName": "External_Id__c"})
    );
    let uploads: Vec<_> = requests.iter().filter(|r| r["method"] == "PUT").collect();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        requests.iter().find_map(|r| r["ingested"].as_u64()),
        Some(450),
        "one CSV of every record"
    );
    // No record went through sObject Collections.
    assert!(requests.iter().all(|r| r.get("operation").is_none()));
    let errors: Vec<Value> = std::fs::read_to_string(record["error_output"].as_str().unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().any(|e| {
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]")
    }));
    assert!(
        errors
            .iter()
            .any(|e| e["record"].as_str().unwrap().contains("EXT-949"))
    );
    // Typed as sent, as sObject Collections' refusals are: amounts are numbers.
    let amounts: Vec<Value> = errors
        .iter()
        .map(|e| serde_json::from_str::<Value>(e["record"].as_str().unwrap()).unwrap())
        .filter_map(|r| r.get("Amount").cloned())
        .collect();
    assert!(!amounts.is_empty());
    assert!(amounts.iter().all(Value::is_number), "{amounts:?}");
    assert_upserted(&org);
}

#[test]
fn a_failed_run_sends_nothing_to_salesforce() {
    let org = start();
    let scratch = connected(&org);
    // The second CSV line cannot be read with the schema the first gave; the file source
    // stops the run at the first bad record.
    let input = scratch.write(
        "deals.csv",
        "External_Id__c,Name,Amount\nEXT-1,Renamed,10\nEXT-2,Renamed,ten\n",
    );
    let mut f = upsert_flow(&input, "rest");
    f["nodes"][0]["config"]["schema"] = json!({"Amount": "number"});
    f["nodes"][0]["config"]["fail_on_first_error"] = json!(true);
    let out = run(&scratch, &f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(org.requests().iter().all(|r| r.get("operation").is_none()));
    let records = org.get("/test/records");
    assert_eq!(records[0]["Name"], "Deal 1");
}

/// The two example flows against the local org and an S3 server: Salesforce → S3 run
/// three times with records arriving at the boundary instant, then S3 CSV → Salesforce.
#[test]
fn the_salesforce_examples_move_each_record_once() {
    let org = start();
    let s3 = SupportServer::start("s3_server.py", &["--bucket", "lake"]);
    let scratch = connected(&org);
    let endpoint = s3.info["endpoint"].as_str().unwrap().to_string();
    let empty = scratch.write("aws-config-of-this-test", "");
    let with_aws = |args: &[&str]| {
        let out = tributary(&scratch)
            .args(args)
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env(
                "AWS_ACCESS_KEY_ID",
                s3.info["access_key_id"].as_str().unwrap(),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                s3.info["secret_access_key"].as_str().unwrap(),
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        ran(&out)
    };
    let example = |name: &str| format!("{}/flows/{name}", env!("CARGO_MANIFEST_DIR"));
    let endpoint_param = format!("endpoint={endpoint}");
    let to_lake = example("salesforce-opportunities-to-s3.json");
    let pull = || {
        with_aws(&[
            "run",
            &to_lake,
            "--json",
            "--param",
            "connection=crm",
            "--param",
            "bucket=lake",
            "--param",
            &endpoint_param,
        ])
    };
    assert_eq!(pull()["records_written"], 450);
    org.control(json!({"upsert": [
        {"Id": "006000000000451", "Name": "Deal 451", "StageName": "Prospecting", "SystemModstamp": "2026-11-01T01:30:00.000+0000"},
        {"Id": "006000000000452", "Name": "Deal 452", "StageName": "Prospecting", "SystemModstamp": "2026-11-01T01:30:00.000+0000"},
        {"Id": "006000000000453", "Name": "Deal 453", "StageName": "Closed Won", "SystemModstamp": "2026-11-01T03:00:00.000+0000"},
    ]}));
    assert_eq!(pull()["records_written"], 3);
    assert_eq!(pull()["records_written"], 0);

    // Read the lake back with the S3 source: every opportunity once, descriptions masked.
    let back = flow(
        vec![
            node(
                "lake",
                "source.s3",
                json!({"bucket": "lake", "prefix": "salesforce/opportunities/", "format": "parquet",
                       "endpoint_url": endpoint}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("lake", "out")],
    );
    let path = scratch.flow("back.json", &back);
    with_aws(&["run", path.to_str().unwrap(), "--json"]);
    let (by_id, count) = written(&scratch);
    assert_eq!((by_id.len(), count), (453, 453));
    let described = by_id["006000000000001"]["Description"].as_str().unwrap();
    assert!(described.chars().all(|c| c == '*'), "{described}");

    // The reverse direction: a CSV dropped in the bucket, upserted into Salesforce.
    let csv = scratch.write(
        "drop.csv",
        "External_Id__c,Name,Amount\nEXT-1,Deal 1 renegotiated,990\nEXT-9001,Brand new deal,12000\n",
    );
    let drop = flow(
        vec![
            node("csv", "source.file", json!({"path": csv.to_str().unwrap()})),
            node(
                "bucket",
                "destination.s3",
                json!({"bucket": "lake", "prefix": "imports/opportunities", "format": "csv",
                       "endpoint_url": endpoint}),
            ),
        ],
        &[("csv", "bucket")],
    );
    let path = scratch.flow("drop.json", &drop);
    with_aws(&["run", path.to_str().unwrap(), "--json"]);
    let record = with_aws(&[
        "run",
        &example("s3-csv-to-salesforce.json"),
        "--json",
        "--param",
        "connection=crm",
        "--param",
        "bucket=lake",
        "--param",
        &endpoint_param,
    ]);
    assert_eq!(record["outputs"][0]["records"], 2);
    let records = org.get("/test/records");
    let names: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["Name"].as_str())
        .collect();
    assert!(names.contains(&"Deal 1 renegotiated") && names.contains(&"Brand new deal"));
}

#[test]
fn the_first_run_of_a_scheduled_flow_reads_from_its_first_run_from() {
    let org = start();
    let scratch = connected(&org);
    // In the shape Salesforce's source had before it was the framework's generic one.
    let mut flow = to_folder(json!({
        "fields": ["Id", "Name", "SystemModstamp"],
        "incremental": "SystemModstamp",
    }));
    let config = flow["nodes"][0]["config"].as_object_mut().unwrap();
    let entity = config.remove("entity").unwrap();
    config.insert("object".into(), entity);
    flow["trigger"] = json!({"type": "schedule", "expression": "rate(1 hours)",
        "first_run_from": "2026-11-01T01:00:00Z"});
    let first = ran(&run(&scratch, &flow, &[]));
    // Deal i changed at minute i/5: deals 300 to 450 in the second hour.
    assert_eq!(first["records_written"], 151);
    let soql = soqls(&org.requests());
    assert!(
        soql[0].contains("SystemModstamp >= 2026-11-01T01:00:00.000Z AND SystemModstamp < "),
        "{soql:?}"
    );
    let next = ran(&run(&scratch, &flow, &[]));
    assert_eq!(next["records_written"], 0);
}

/// A backfill of an object in four parts (`--full`): Salesforce is asked for the oldest
/// `SystemModstamp` (`SELECT MIN(…)`), the window from it to the run's start is cut into
/// four spans of whole seconds, and each part's SOQL asks for its span only. Committed, the
/// parts hold every record once — what one whole run reads — and the next incremental run
/// goes on from the newest record any part read.
#[test]
fn a_backfill_in_parts_reads_windows_of_the_cursor_and_the_next_run_goes_on_from_them() {
    let org = start();
    let scratch = connected(&org);
    // 450 deals changed on 2026-11-01; 40 more changed over the last 30 days.
    let now = chrono::Utc::now();
    let recent: Vec<Value> = (0..40)
        .map(|k| {
            let at = now - chrono::Duration::hours(18 * (40 - k));
            json!({"Id": format!("006{:012}", 1000 + k), "Name": format!("Deal {}", 1000 + k),
                   "SystemModstamp": at.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()})
        })
        .collect();
    org.control(json!({ "upsert": recent }));
    let mut flow = to_folder(json!({
        "fields": ["Id", "Name", "SystemModstamp"],
        "incremental": true,
        "options": {"api": "rest"}
    }));
    flow["name"] = json!("Deals backfill");
    let path = scratch.flow("flow.json", &flow);
    let flow_path = path.to_str().unwrap();
    org.requests();
    let mut windows = Vec::new();
    for i in 0..4 {
        let part = tributary(&scratch)
            .args(["run", flow_path, "--full", "--partitions", "4"])
            .args([
                "--partition",
                &i.to_string(),
                "--run-id",
                "deals-1",
                "--stage-only",
            ])
            .output()
            .unwrap();
        assert!(part.status.success(), "part {i}: {}", stderr(&part));
        let soql = soqls(&org.requests());
        assert_eq!(
            soql[0], "SELECT MIN(SystemModstamp) FROM Opportunity",
            "part {i}: {soql:?}"
        );
        assert_eq!(soql.len(), 2, "part {i}: {soql:?}");
        windows.push(soql[1].clone());
        if i == 0 {
            // The four oldest deals change after the first part read them: the oldest
            // record is now another, yet every part cuts where the first one did.
            let changed: Vec<Value> = (1..5)
                .map(|i| {
                    json!({"Id": format!("006{i:012}"), "Name": format!("Deal {i} changed"),
                           "SystemModstamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()})
                })
                .collect();
            org.control(json!({ "upsert": changed }));
            org.requests();
        }
    }
    // Part 1 reads up to the first cut, the others from a cut; each ends where the next
    // begins, the last at the run's start.
    let bound = |soql: &str, op: &str| -> Option<String> {
        let at = soql.find(&format!("SystemModstamp {op} "))?;
        Some(soql[at..].split(' ').nth(2).unwrap().to_string())
    };
    assert!(
        windows[0].starts_with(
            "SELECT Id, Name, SystemModstamp FROM Opportunity WHERE SystemModstamp < "
        )
    );
    assert_eq!(bound(&windows[0], ">="), None, "{windows:#?}");
    for i in 1..4 {
        assert_eq!(
            bound(&windows[i], ">="),
            bound(&windows[i - 1], "<"),
            "{windows:#?}"
        );
    }
    // The cuts fall at whole seconds, a quarter of the window apart.
    let cuts: Vec<chrono::DateTime<chrono::Utc>> = (1..4)
        .map(|i| bound(&windows[i], ">=").unwrap().parse().unwrap())
        .collect();
    assert!(
        cuts.iter().all(|c| c.timestamp_subsec_millis() == 0),
        "{cuts:?}"
    );
    let oldest: chrono::DateTime<chrono::Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    let quarter = (cuts[0] - oldest).num_seconds();
    assert!(
        ((cuts[2] - cuts[1]).num_seconds() - quarter).abs() <= 1,
        "{cuts:?}"
    );

    let staged = common::files_under(&scratch.path().join("out"));
    assert!(
        staged.iter().all(|f| f.contains(".tributary-staging")),
        "nothing published before the commit: {staged:?}"
    );
    let committed = tributary(&scratch)
        .args(["commit", flow_path, "--run-id", "deals-1"])
        .output()
        .unwrap();
    assert!(committed.status.success(), "{}", stderr(&committed));
    assert!(
        stdout(&committed).contains("490 records written"),
        "{}",
        stdout(&committed)
    );
    let (by_id, count) = written(&scratch);
    assert_eq!((by_id.len(), count), (490, 490), "every deal once");
    let runs = tributary(&scratch)
        .args(["runs", "--json"])
        .output()
        .unwrap();
    let runs: Vec<Value> = serde_json::from_str(&stdout(&runs)).unwrap();
    let per_part: Vec<u64> = runs
        .iter()
        .filter(|r| r["trigger"].as_str().unwrap().starts_with("partition: "))
        .map(|r| r["records_processed"].as_u64().unwrap())
        .collect();
    assert_eq!(per_part.len(), 4);
    assert!(
        per_part.iter().all(|n| *n > 0),
        "every part read some: {per_part:?}"
    );

    // The next run starts at the newest deal any part read: it reads the four that
    // changed since, and nothing else.
    let newest = recent.last().unwrap()["SystemModstamp"]
        .as_str()
        .unwrap()
        .to_string();
    let next = ran(&run(&scratch, &flow, &[]));
    assert_eq!(next["records_written"], 4, "{next}");
    let soql = soqls(&org.requests());
    let newest: chrono::DateTime<chrono::Utc> = newest.replace("+0000", "Z").parse().unwrap();
    assert!(
        soql[0].contains(&format!(
            "SystemModstamp >= {} AND",
            newest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )),
        "{soql:?}"
    );
}

/// A pull by the service's change log cannot be cut, nor a pull that is not incremental:
/// refused before anything is read, naming the node and what to change.
#[test]
fn a_salesforce_pull_that_cannot_be_cut_is_refused_in_words() {
    let org = start();
    let scratch = connected(&org);
    let flow = to_folder(json!({"fields": ["Id", "Name"], "options": {"api": "rest"}}));
    let path = scratch.flow("flow.json", &flow);
    let out = tributary(&scratch)
        .args([
            "run",
            path.to_str().unwrap(),
            "--partitions",
            "2",
            "--partition",
            "0",
        ])
        .args(["--run-id", "r", "--stage-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("`sf` (source.salesforce) cannot run in parts: its parts are windows of its cursor field (when records changed), which only an incremental pull reads: turn on `incremental`"),
        "{}",
        stdout(&out)
    );
    assert!(soqls(&org.requests()).is_empty());
}
