//! `source.servicenow`, the connector framework's first service, through the `tributary`
//! command against an instance on loopback that speaks the Table API's documented wire
//! format (`tests/support/servicenow_server.py`). The tests check the requests (tables,
//! fields, the exact `sysparm_query`) as well as the records written.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use indexmap::IndexMap;
use serde_json::{Value, json};
use tributary::auth::vault;
use tributary::flow::Flow;
use tributary::paths::Dirs;
use tributary::workspace::Workspace;

const PASSPHRASE: &str = "servicenow tests";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// Adds the connection `sn`: `basic` with the given password, or `oauth` (client
/// credentials, then logged in).
fn add_connection(scratch: &Scratch, instance: &SupportServer, how: &str, secret: &str) {
    let url = format!("instance_url={}", instance.url());
    let mut args = vec![
        "connection",
        "add",
        "sn",
        "--connector",
        "servicenow",
        "--set",
        &url,
    ];
    match how {
        "basic" => args.extend(["--auth", "basic", "--set", "username=admin"]),
        _ => args.extend([
            "--auth",
            "oauth2_client_credentials",
            "--set",
            "client_id=sn-client",
        ]),
    }
    let mut child = tributary(scratch)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let added = child.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    if how == "oauth" {
        let login = tributary(scratch)
            .args(["connection", "login", "sn"])
            .output()
            .unwrap();
        assert!(login.status.success(), "{}", stderr(&login));
    }
}

fn connected(instance: &SupportServer) -> Scratch {
    let scratch = Scratch::new();
    servicenow_connection(&scratch, instance, PASSPHRASE);
    instance.requests();
    scratch
}

fn to_folder(source: Value) -> Value {
    let base = json!({"connection": "sn", "entity": "incident"});
    source_to_folder("sn", "source.servicenow", base, source)
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

/// Every record written so far by number, and how many were written in all.
fn written(scratch: &Scratch) -> (BTreeMap<String, Value>, usize) {
    written_by(scratch, "number")
}

/// The `sysparm_query` of each request to a table, in order.
fn queries(requests: &[Value], table: &str) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r["path"] == format!("/api/now/table/{table}"))
        .map(|r| {
            r["query"]["sysparm_query"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn tables_and_their_inherited_fields_are_listed_with_types() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    let dirs = Dirs::under(&scratch.home());
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = Flow::from_json(&to_folder(json!({})).to_string(), "test").unwrap();

    // The tables the inspector offers.
    let config = tributary::workspace::node_config(&flow, "sn", &IndexMap::new()).unwrap();
    let cx = workspace.plan_context(scratch.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tables = runtime.block_on(config.entities(&cx)).unwrap();
    let names: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.label.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("incident", "Incident"),
            ("sys_user", "User"),
            ("task", "Task")
        ]
    );

    // The schema the source plans: the fields of incident and of task, which it extends.
    let fields = planned_types(&flow, "sn", &scratch, &workspace);
    assert_eq!(fields["number"], "string");
    assert_eq!(fields["priority"], "integer");
    assert_eq!(fields["active"], "boolean");
    assert_eq!(fields["cost"], "decimal(20,2)");
    assert_eq!(fields["opened"], "date");
    assert_eq!(fields["sys_updated_on"], "timestamp");
    assert_eq!(fields["category"], "string");
    assert_eq!(fields.len(), 11, "{fields:?}");

    let requests = instance.requests();
    let objects = queries(&requests, "sys_db_object");
    assert_eq!(objects[0], "ORDERBYname^ORDERBYsys_id", "the table list");
    assert!(
        objects.contains(&"name=incident^ORDERBYsys_id".to_string()),
        "{objects:?}"
    );
    assert!(
        objects.contains(&"sys_id=a0000000000000000000000000000001^ORDERBYsys_id".to_string()),
        "the parent table is looked up: {objects:?}"
    );
    assert!(queries(&requests, "sys_dictionary").contains(
        &"nameINincident,task^elementISNOTEMPTY^ORDERBYelement^ORDERBYsys_id".to_string()
    ));
    // Basic sign-in on every request.
    assert!(
        requests.iter().all(|r| r["auth"] == "Basic"),
        "{requests:?}"
    );
}

#[test]
fn a_pull_pages_by_key_and_sends_the_conditions_as_an_encoded_query() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    instance.control(json!({"max_rows": 40}));
    let flow = to_folder(json!({
        "fields": ["number", "priority", "category", "cost", "sys_updated_on", "short_description"],
        "conditions": [
            {"field": "priority", "operator": "less_than_or_equal_to", "value": 4},
            {"field": "category", "operator": "not_equal_to", "value": "inquiry"}
        ]
    }));
    let record = ran(&run(&scratch, &flow));
    let (by_number, count) = written(&scratch);
    // Incidents 1..250 with priority 1 + i % 5 <= 4 and category not i % 4 == 3.
    let expected = (1..=250).filter(|i| i % 5 != 4 && i % 4 != 3).count();
    assert_eq!(count, expected);
    assert_eq!(by_number.len(), expected, "no record twice");
    assert_eq!(record["records_written"], expected as u64);
    let one = &by_number["INC0000022"];
    assert_eq!(one["priority"], 3);
    assert_eq!(one["category"], "hardware");
    assert_eq!(one["cost"], 66.22);
    assert_eq!(one["sys_updated_on"], "2026-11-01T00:05:00Z");
    assert_eq!(one["short_description"], "Printer 22 is on fire ^ again");
    assert!(
        by_number["INC0000010"]["cost"].is_null(),
        "an empty value is null"
    );

    let requests = instance.requests();
    let reads: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/api/now/table/incident")
        .collect();
    // 150 records, 40 rows a page: four pages, then an empty one.
    assert_eq!(reads.len(), 5, "{reads:?}");
    let base = "priority<=4^category!=inquiry";
    assert_eq!(
        reads[0]["query"]["sysparm_query"],
        format!("{base}^ORDERBYsys_id")
    );
    for page in &reads[1..] {
        let q = page["query"]["sysparm_query"].as_str().unwrap();
        assert!(q.starts_with(&format!("{base}^sys_id>")), "{q}");
        assert!(q.ends_with("^ORDERBYsys_id"), "{q}");
    }
    assert_eq!(
        reads[0]["query"]["sysparm_fields"],
        "number,priority,category,cost,sys_updated_on,short_description,sys_id"
    );
    assert_eq!(reads[0]["query"]["sysparm_display_value"], "false");
    assert_eq!(reads[0]["query"]["sysparm_exclude_reference_link"], "true");
}

#[test]
fn incremental_runs_read_each_record_once_when_records_share_the_boundary_instant() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    let flow = to_folder(json!({"fields": ["number", "sys_updated_on"], "incremental": true}));
    let first = ran(&run(&scratch, &flow));
    assert_eq!(first["records_written"], 250);
    let requests = instance.requests();
    let reads = queries(&requests, "incident");
    assert!(
        reads[0].starts_with("sys_updated_on<")
            && reads[0].ends_with("^ORDERBYsys_updated_on^ORDERBYsys_id"),
        "the first run reads up to its start: {reads:?}"
    );
    // Keyset pages: after the last (instant, sys_id) read.
    assert!(reads[1].contains("^NQ"), "{reads:?}");

    // Incidents 248..250 share the newest instant (minute 62). Two more arrive at that
    // very instant, and one older incident changes later.
    let boundary = "2026-11-01 01:02:00";
    instance.control(json!({"upsert": [
        {"sys_id": "f0000000000000000000000000000001", "number": "INC0000901", "sys_updated_on": boundary,
         "active": "true", "priority": "1", "short_description": "late", "sys_created_on": boundary,
         "category": "network", "cost": "", "opened": "2026-11-01", "caller_id": ""},
        {"sys_id": "00000000000000000000000000000002", "number": "INC0000902", "sys_updated_on": boundary,
         "active": "true", "priority": "1", "short_description": "late", "sys_created_on": boundary,
         "category": "network", "cost": "", "opened": "2026-11-01", "caller_id": ""},
        {"sys_id": format!("{:032x}", 7 * 7919), "sys_updated_on": "2026-11-01 02:00:00"}
    ]}));
    let second = ran(&run(&scratch, &flow));
    assert_eq!(second["records_written"], 3, "{second}");
    let reads = queries(&instance.requests(), "incident");
    assert!(
        reads[0].starts_with(&format!("sys_updated_on>={boundary}^sys_updated_on<")),
        "{reads:?}"
    );
    let third = ran(&run(&scratch, &flow));
    assert_eq!(third["records_written"], 0);

    let (by_number, count) = written(&scratch);
    assert_eq!(
        count, 253,
        "every record once, the changed one twice: {count}"
    );
    assert_eq!(by_number.len(), 252);
    assert_eq!(
        by_number["INC0000007"]["sys_updated_on"],
        "2026-11-01T02:00:00Z"
    );
    assert!(by_number.contains_key("INC0000901") && by_number.contains_key("INC0000902"));
}

#[test]
fn a_rate_limit_is_waited_out_and_an_expired_token_refreshed() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = Scratch::new();
    add_connection(&scratch, &instance, "oauth", "sn-secret-7");
    instance.requests();
    instance.control(json!({
        "fail": [{"status": 429, "at": "/api/now/table/incident", "retry_after": 1}],
        "expire": true
    }));
    let record = ran(&run(&scratch, &to_folder(json!({"fields": ["number"]}))));
    assert_eq!(record["records_written"], 250);
    let requests = instance.requests();
    let statuses: Vec<(String, i64)> = requests
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    // The token ended: refused once, refreshed, and the same request sent again.
    let refused = statuses.iter().position(|(_, s)| *s == 401).expect("a 401");
    assert_eq!(statuses[refused + 1].0, "/oauth_token.do", "{statuses:?}");
    assert_eq!(statuses[refused + 2].0, statuses[refused].0);
    // The 429 was waited out and the read went on.
    assert!(
        statuses.contains(&("/api/now/table/incident".into(), 429)),
        "{statuses:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r["path"] != "/oauth_token.do")
            .all(|r| r["auth"] == "Bearer")
    );
}

#[test]
fn wrong_credentials_and_mistakes_in_the_flow_are_said_in_words() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = Scratch::new();
    add_connection(&scratch, &instance, "basic", "not-the-password");
    let test = tributary(&scratch)
        .args(["connection", "test", "sn"])
        .output()
        .unwrap();
    assert_eq!(test.status.code(), Some(1));
    assert!(
        stderr(&test).contains("User Not Authenticated"),
        "{}",
        stderr(&test)
    );
    let out = run(&scratch, &to_folder(json!({})));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a service problem fails the run"
    );
    let err = stderr(&out) + stdout(&out).as_str();
    assert!(err.contains("User Not Authenticated"), "{err}");
    assert!(!err.contains("not-the-password"), "no secret in messages");

    let scratch = connected(&instance);
    let test = tributary(&scratch)
        .args(["connection", "test", "sn"])
        .output()
        .unwrap();
    assert!(
        stdout(&test).contains("these credentials read its tables"),
        "{}",
        stderr(&test)
    );
    let out = run(&scratch, &to_folder(json!({"entity": "incidnt"})));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a misspelt table is the flow's mistake"
    );
    assert!(
        stderr(&out).contains("no table `incidnt`"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &scratch,
        &to_folder(
            json!({"conditions": [{"field": "active", "operator": "contains", "value": "t"}]}),
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("filters `active` by equal to, not equal to only"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_example_flow_runs_against_an_instance_named_by_its_parameters() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    let example = std::path::absolute("flows/servicenow-incidents-to-folder.json").unwrap();
    let out_dir = scratch.path().join("incidents");
    let run = || {
        tributary(&scratch)
            .args(["run", example.to_str().unwrap(), "--json"])
            .args(["--param", "connection=sn"])
            .args(["--param", &format!("output={}", out_dir.display())])
            .output()
            .unwrap()
    };
    let record = ran(&run());
    // Active incidents: every one but each third.
    let active = (1..=250).filter(|i| i % 3 != 0).count() as u64;
    assert_eq!(record["records_written"], active);
    let text: String = files_under(&out_dir)
        .iter()
        .map(|f| std::fs::read_to_string(out_dir.join(f)).unwrap())
        .collect();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(
        first["caller_id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c == '*')
    );
    let reads = queries(&instance.requests(), "incident");
    assert!(
        reads[0].starts_with("active=true^sys_updated_on<"),
        "{reads:?}"
    );
    // Nothing changed: the second run reads nothing new.
    assert_eq!(ran(&run())["records_written"], 0);
}

/// A flow that writes the records of a JSON lines file to ServiceNow's incident table.
fn from_file(scratch: &Scratch, lines: &[Value], operation: &str) -> Value {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let input = scratch.write(&format!("{operation}.jsonl"), &text);
    flow(
        vec![
            node(
                "file",
                "source.file",
                json!({"path": input.to_str().unwrap()}),
            ),
            node(
                "sn",
                "destination.servicenow",
                json!({"connection": "sn", "entity": "incident", "operation": operation}),
            ),
        ],
        &[("file", "sn")],
    )
}

#[test]
fn inserts_and_updates_are_sent_at_commit_and_refused_records_set_aside_in_words() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    let inserts = [
        json!({"short_description": "Laptop will not boot", "priority": 2, "active": true}),
        json!({"short_description": "", "priority": 3, "active": true}),
        json!({"short_description": "VPN drops", "priority": 4, "active": false,
               "opened": "2026-11-29"}),
    ];
    let record = ran(&run(&scratch, &from_file(&scratch, &inserts, "insert")));
    assert_eq!(record["outputs"][0]["records"], 2);
    assert_eq!(
        record["outputs"][0]["location"],
        "sn:ServiceNow/incident (insert)"
    );
    assert_eq!(record["records_rejected"], 1);
    let errors = refused(&record);
    assert_eq!(errors.len(), 1);
    let reason = errors[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Operation Failed") && reason.contains("mandatory: Short description"),
        "{reason}"
    );
    assert_eq!(errors[0]["node"], "sn");

    let requests = instance.requests();
    let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(posts.len(), 3, "one request a record");
    assert!(posts.iter().all(|p| p["path"] == "/api/now/table/incident"));
    assert_eq!(
        posts[0]["body"],
        json!({"short_description": "Laptop will not boot", "priority": 2, "active": true})
    );
    assert_eq!(posts[2]["body"]["opened"], "2026-11-29");

    // Updates find their record by sys_id; an unknown one is refused.
    let known = format!("{:032x}", 7 * 7919);
    let updates = [
        json!({"sys_id": known, "priority": 1, "sys_updated_on": "2026-11-30T09:15:00Z"}),
        json!({"sys_id": "0123456789abcdef0123456789abcdef", "priority": 1}),
    ];
    let record = ran(&run(&scratch, &from_file(&scratch, &updates, "update")));
    assert_eq!(record["outputs"][0]["records"], 1);
    assert_eq!(record["records_rejected"], 1);
    assert!(
        refused(&record)[0]["reason"]
            .as_str()
            .unwrap()
            .contains("No Record found")
    );
    let requests = instance.requests();
    let patches: Vec<&Value> = requests.iter().filter(|r| r["method"] == "PATCH").collect();
    assert_eq!(
        patches[0]["path"],
        format!("/api/now/table/incident/{known}")
    );
    assert_eq!(
        patches[0]["body"],
        json!({"priority": 1, "sys_updated_on": "2026-11-30 09:15:00"}),
        "the key is in the path, and instants as the Table API writes them"
    );
}

#[test]
fn a_run_that_fails_sends_nothing_and_a_field_the_table_lacks_is_named() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = connected(&instance);
    let out = run(
        &scratch,
        &from_file(
            &scratch,
            &[json!({"short_description": "x", "colour": "red"})],
            "insert",
        ),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("incident has no field `colour`"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &scratch,
        &from_file(&scratch, &[json!({"priority": 1})], "update"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`sys_id`"), "{}", stderr(&out));
    assert!(
        instance.requests().iter().all(|r| r["method"] == "GET"),
        "nothing was written"
    );
}
