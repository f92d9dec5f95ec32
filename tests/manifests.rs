//! Connectors declared by manifests: Zendesk and Slack, which ship with Tributary, and a
//! user's own dropped into `$TRIBUTARY_HOME/connectors/`. Each runs through the `tributary`
//! command against a server on loopback that speaks the service's documented wire format
//! (`tests/support/zendesk_server.py`, `tests/support/slack_server.py`); the tests check
//! the requests made as well as the records written.

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

const PASSPHRASE: &str = "manifest tests";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// `tributary connection add NAME --connector ID` with `settings`, the secret on stdin.
fn add(
    scratch: &Scratch,
    name: &str,
    connector: &str,
    auth: &str,
    settings: &[String],
    secret: &str,
) {
    add_connection(scratch, PASSPHRASE, name, connector, auth, settings, secret);
}

fn zendesk(scratch: &Scratch, server: &SupportServer, token: &str) {
    zendesk_connection(scratch, server, PASSPHRASE, token);
}

fn slack(scratch: &Scratch, server: &SupportServer, token: &str) {
    add(
        scratch,
        "sl",
        "slack",
        "api_key",
        &[format!("instance_url={}", server.url())],
        token,
    );
}

fn to_folder(kind: &str, config: Value) -> Value {
    source_to_folder("in", kind, config, json!({}))
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

/// Every record written so far, by `key`, and how many were written in all.
fn written(scratch: &Scratch, key: &str) -> (BTreeMap<String, Value>, usize) {
    written_by(scratch, key)
}

fn to_path<'r>(requests: &'r [Value], path: &str) -> Vec<&'r Value> {
    requests.iter().filter(|r| r["path"] == path).collect()
}

/// A flow that writes the records of a JSON lines file to a service's destination node.
fn from_file(scratch: &Scratch, kind: &str, config: Value, lines: &[Value]) -> Value {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let input = scratch.write("input.jsonl", &text);
    flow(
        vec![
            node(
                "file",
                "source.file",
                json!({"path": input.to_str().unwrap()}),
            ),
            node("to", kind, config),
        ],
        &[("file", "to")],
    )
}

#[test]
fn zendesk_and_slack_are_listed_with_what_they_can_do() {
    let scratch = Scratch::new();
    let out = tributary(&scratch)
        .args(["connectors", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let entry = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == name)
            .unwrap_or_else(|| panic!("{name} is not listed: {listed}"))
            .clone()
    };
    let source = entry("source.zendesk");
    assert_eq!(source["connector"], "zendesk");
    assert_eq!(source["capabilities"]["incremental"], true);
    assert_eq!(source["capabilities"]["entities"], true);
    assert_eq!(
        source["capabilities"]["filters"],
        json!(["equal_to", "greater_than_or_equal_to", "less_than"])
    );
    assert_eq!(
        entry("destination.zendesk")["capabilities"]["writes"],
        json!(["insert", "update"])
    );
    assert_eq!(
        entry("destination.slack")["capabilities"]["writes"],
        json!(["insert"])
    );
    let table = stdout(&tributary(&scratch).args(["connectors"]).output().unwrap());
    assert!(
        table.contains("zendesk") && table.contains("slack"),
        "{table}"
    );
}

#[test]
fn zendesk_objects_and_their_fields_are_offered_with_types() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &server, "zd-token-1");
    let test = tributary(&scratch)
        .args(["connection", "test", "zd"])
        .output()
        .unwrap();
    assert!(
        stdout(&test).contains("signed in as ana@acme.com"),
        "{}{}",
        stdout(&test),
        stderr(&test)
    );
    let requests = server.requests();
    assert_eq!(requests[0]["path"], "/api/v2/users/me.json");
    assert_eq!(requests[0]["auth"], "Basic");

    // The objects the inspector offers, and the schema the source plans.
    let dirs = Dirs::under(&scratch.home());
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = to_folder(
        "source.zendesk",
        json!({"connection": "zd", "entity": "tickets"}),
    );
    let flow = Flow::from_json(&flow.to_string(), "test").unwrap();
    let config = tributary::workspace::node_config(&flow, "in", &IndexMap::new()).unwrap();
    let cx = workspace.plan_context(scratch.path());
    let entities = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(config.entities(&cx))
        .unwrap();
    let names: Vec<&str> = entities.iter().map(|e| e.label.as_str()).collect();
    assert_eq!(
        names,
        [
            "Tickets",
            "Users",
            "Organizations",
            "Groups",
            "Ticket fields",
            "Satisfaction ratings"
        ]
    );
    let plan = tributary::workspace::plan_flow(&flow, scratch.path(), &IndexMap::new(), &workspace)
        .unwrap_or_else(|p| panic!("{p:#?}"));
    let schema = &plan.nodes[plan.index_of("in").unwrap()].schema;
    let fields: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), tributary::types::describe(f.data_type())))
        .collect();
    let kind = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.as_str();
    assert_eq!(kind("id"), "integer");
    assert_eq!(kind("subject"), "string");
    assert_eq!(kind("channel"), "string");
    assert_eq!(kind("updated_at"), "timestamp");
    // The account's custom ticket fields, typed from their kind.
    assert_eq!(kind("custom_360001"), "integer");
    assert_eq!(kind("custom_360002"), "boolean");
    assert_eq!(kind("custom_360003"), "string");
    assert_eq!(fields.len(), 16);
    let requests = server.requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r["path"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["/api/v2/ticket_fields.json"],
        "only the custom fields are asked for"
    );
}

#[test]
fn a_zendesk_export_is_read_page_by_page_and_incremental_runs_read_each_ticket_once() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &server, "zd-token-1");
    server.requests();
    let flow = to_folder(
        "source.zendesk",
        json!({"connection": "zd", "entity": "tickets", "incremental": true,
               "fields": ["id", "subject", "status", "channel", "updated_at",
                          "custom_360001", "custom_360002", "custom_360003"]}),
    );
    let first = ran(&run(&scratch, &flow));
    assert_eq!(first["records_written"], 250);
    let requests = server.requests();
    let reads = to_path(&requests, "/api/v2/incremental/tickets/cursor.json");
    // 250 tickets, 100 a page: three pages, the last saying `end_of_stream`.
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert_eq!(reads[0]["query"], json!({"start_time": "0"}));
    for page in &reads[1..] {
        let query = page["query"].as_object().unwrap();
        assert_eq!(
            query.keys().collect::<Vec<_>>(),
            ["cursor"],
            "later pages follow `after_url`: {page}"
        );
    }
    let (by_id, _) = written(&scratch, "id");
    assert_eq!(by_id["22"]["channel"], "web", "a field found at its path");
    assert_eq!(by_id["22"]["updated_at"], "2025-12-01T00:05:00Z");
    assert_eq!(by_id["22"]["custom_360001"], 1022, "a custom field's value");
    assert_eq!(by_id["22"]["custom_360002"], true);
    assert!(by_id["22"]["custom_360003"].is_null());
    assert_eq!(
        by_id["25"]["custom_360003"], "p1,extra",
        "a multi-select as text"
    );

    // Tickets 248..250 share the newest instant (minute 62). Two more arrive at that very
    // instant, and an older ticket changes later.
    let boundary = "2025-12-01T01:02:00Z";
    server.control(json!({"upsert": [
        {"id": 901, "subject": "late", "updated_at": boundary},
        {"id": 902, "subject": "late too", "updated_at": boundary},
        {"id": 7, "status": "solved", "updated_at": "2025-12-01T02:00:00Z"}
    ]}));
    let second = ran(&run(&scratch, &flow));
    assert_eq!(second["records_written"], 3, "{second}");
    let reads = server.requests();
    let reads = to_path(&reads, "/api/v2/incremental/tickets/cursor.json");
    assert_eq!(
        reads[0]["query"],
        json!({"start_time": "1764550920"}),
        "from the newest change the first run saw"
    );
    let third = ran(&run(&scratch, &flow));
    assert_eq!(third["records_written"], 0);

    let (by_id, count) = written(&scratch, "id");
    assert_eq!(count, 253, "every ticket once, the changed one twice");
    assert_eq!(by_id.len(), 252);
    assert_eq!(by_id["7"]["status"], "solved");
}

#[test]
fn zendesk_conditions_are_sent_as_the_api_parameters() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &server, "zd-token-1");
    server.control(json!({"per_page": 1}));
    server.requests();
    let flow = to_folder(
        "source.zendesk",
        json!({"connection": "zd", "entity": "satisfaction_ratings",
        "conditions": [
            {"field": "score", "operator": "equal_to", "value": "good"},
            {"field": "created_at", "operator": "greater_than_or_equal_to", "value": "2025-12-01T02:00:00Z"},
            {"field": "created_at", "operator": "less_than", "value": "2025-12-01T10:00:00Z"}
        ]}),
    );
    let record = ran(&run(&scratch, &flow));
    // Ratings 1..12 at hour i; good ones are i % 3 == 0: hours 3, 6 and 9.
    assert_eq!(record["records_written"], 3);
    let (by_id, _) = written(&scratch, "id");
    assert_eq!(by_id.keys().collect::<Vec<_>>(), ["503", "506", "509"]);
    let requests = server.requests();
    let reads = to_path(&requests, "/api/v2/satisfaction_ratings.json");
    assert_eq!(reads.len(), 3, "one rating a page: {reads:?}");
    assert_eq!(
        reads[0]["query"],
        json!({"page[size]": "100", "score": "good", "start_time": "1764554400", "end_time": "1764583200"})
    );
    assert!(reads[1]["query"]["page[after]"].is_string());

    // An operator the API has no parameter for is refused before anything is read.
    let out = run(
        &scratch,
        &to_folder(
            "source.zendesk",
            json!({"connection": "zd", "entity": "satisfaction_ratings",
                   "conditions": [{"field": "score", "operator": "contains", "value": "o"}]}),
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Zendesk filters `score` by equal to only"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn zendesk_tickets_are_created_and_updated_and_refusals_set_aside_in_its_words() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &server, "zd-token-1");
    server.requests();
    let inserts = [
        json!({"subject": "Printer", "description": "It jams", "priority": "high",
               "custom_360001": 4711}),
        json!({"subject": "Empty"}),
    ];
    let record = ran(&run(
        &scratch,
        &from_file(
            &scratch,
            "destination.zendesk",
            json!({"connection": "zd", "entity": "tickets"}),
            &inserts,
        ),
    ));
    assert_eq!(record["outputs"][0]["records"], 1);
    assert_eq!(record["records_rejected"], 1);
    let reason = refused(&record)[0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("Record validation errors")
            && reason.contains("Description: cannot be blank")
            && reason.contains("422"),
        "{reason}"
    );
    let requests = server.requests();
    let posts = to_path(&requests, "/api/v2/tickets.json");
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[0]["body"],
        json!({"ticket": {"subject": "Printer", "description": "It jams", "priority": "high",
                          "custom_fields": [{"id": 360001, "value": 4711}]}}),
        "custom fields go back into Zendesk's list"
    );

    let updates = [
        json!({"id": 7, "status": "solved"}),
        json!({"id": 9999, "status": "open"}),
    ];
    let record = ran(&run(
        &scratch,
        &from_file(
            &scratch,
            "destination.zendesk",
            json!({"connection": "zd", "entity": "tickets", "operation": "update", "keys": ["id"]}),
            &updates,
        ),
    ));
    assert_eq!(record["outputs"][0]["records"], 1);
    assert_eq!(record["records_rejected"], 1);
    assert!(
        refused(&record)[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Not found")
    );
    let requests = server.requests();
    let puts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "PUT").collect();
    assert_eq!(puts[0]["path"], "/api/v2/tickets/7.json");
    assert_eq!(
        puts[0]["body"],
        json!({"ticket": {"status": "solved"}}),
        "the key goes in the path"
    );
}

#[test]
fn many_zendesk_tickets_go_in_jobs_whose_results_say_what_became_of_each() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &server, "zd-token-1");
    server.requests();
    // 150 tickets and two without a description: a job of 100 and one of 52.
    let mut lines: Vec<Value> = (0..150)
        .map(|i| json!({"subject": format!("Bulk {i}"), "description": "from a file"}))
        .collect();
    lines.insert(40, json!({"subject": "No description 1"}));
    lines.insert(120, json!({"subject": "No description 2"}));
    let record = ran(&run(
        &scratch,
        &from_file(
            &scratch,
            "destination.zendesk",
            json!({"connection": "zd", "entity": "tickets"}),
            &lines,
        ),
    ));
    assert_eq!(record["outputs"][0]["records"], 150);
    assert_eq!(record["records_rejected"], 2);
    let errors = refused(&record);
    let subject = |e: &Value| -> Value {
        serde_json::from_str::<Value>(e["record"].as_str().unwrap()).unwrap()["subject"].clone()
    };
    assert_eq!(subject(&errors[0]), "No description 1");
    assert_eq!(subject(&errors[1]), "No description 2");
    assert_eq!(
        errors[0]["reason"],
        "TicketCreateFailed: Description: cannot be blank"
    );
    let requests = server.requests();
    let jobs = to_path(&requests, "/api/v2/tickets/create_many.json");
    assert_eq!(jobs.len(), 2);
    let sizes: Vec<usize> = jobs
        .iter()
        .map(|j| j["body"]["tickets"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 52]);
    assert_eq!(
        jobs[0]["body"]["tickets"][0],
        json!({"subject": "Bulk 0", "description": "from a file"})
    );
    let polls = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .starts_with("/api/v2/job_statuses/")
        })
        .count();
    assert_eq!(polls, 4, "each job asked after until completed");
    assert!(to_path(&requests, "/api/v2/tickets.json").is_empty());

    // Updates go in a job too; an unknown id is refused with the job's words.
    let updates: Vec<Value> = (1..=11)
        .map(|id| json!({"id": id, "status": "closed"}))
        .chain([json!({"id": 99999, "status": "closed"})])
        .collect();
    let record = ran(&run(
        &scratch,
        &from_file(
            &scratch,
            "destination.zendesk",
            json!({"connection": "zd", "entity": "tickets", "operation": "update", "keys": ["id"]}),
            &updates,
        ),
    ));
    assert_eq!(record["outputs"][0]["records"], 11);
    assert_eq!(
        refused(&record)[0]["reason"],
        "TicketUpdateFailed: RecordNotFound"
    );
    let requests = server.requests();
    let jobs = to_path(&requests, "/api/v2/tickets/update_many.json");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["method"], "PUT");
    assert_eq!(
        jobs[0]["body"]["tickets"][0],
        json!({"id": 1, "status": "closed"}),
        "a bulk update keeps the id in each record"
    );
}

#[test]
fn zendesk_rate_limits_are_waited_out_expired_tokens_renewed_and_wrong_tokens_named() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    add(
        &scratch,
        "zd",
        "zendesk",
        "oauth2_client_credentials",
        &[
            format!("instance_url={}", server.url()),
            "client_id=zd-client".into(),
        ],
        "zd-secret-3",
    );
    let login = tributary(&scratch)
        .args(["connection", "login", "zd"])
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", stderr(&login));
    server.requests();
    server.control(json!({
        "fail": [{"status": 429, "at": "incremental/tickets", "retry_after": 1}],
        "expire": true
    }));
    let flow = to_folder(
        "source.zendesk",
        json!({"connection": "zd", "entity": "tickets", "fields": ["id"]}),
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 250);
    let statuses: Vec<(String, i64)> = server
        .requests()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    // The token ended: refused once, renewed, and the same request sent again.
    let refused = statuses.iter().position(|(_, s)| *s == 401).expect("a 401");
    assert_eq!(statuses[refused + 1].0, "/oauth/tokens", "{statuses:?}");
    assert_eq!(statuses[refused + 2], (statuses[refused].0.clone(), 200));
    // The 429 was waited out and the same page asked again.
    let export = "/api/v2/incremental/tickets/cursor.json".to_string();
    let limited = statuses
        .iter()
        .position(|s| *s == (export.clone(), 429))
        .expect("a 429");
    assert_eq!(statuses[limited + 1], (export, 200), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|(_, s)| *s == 401).count(), 1);

    let scratch = Scratch::new();
    zendesk(&scratch, &server, "not-the-token");
    let test = tributary(&scratch)
        .args(["connection", "test", "zd"])
        .output()
        .unwrap();
    assert_eq!(test.status.code(), Some(1));
    assert!(
        stderr(&test).contains("Couldn't authenticate you"),
        "{}",
        stderr(&test)
    );
    let out = run(&scratch, &flow);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out) + stdout(&out).as_str();
    assert!(said.contains("refused the credentials"), "{said}");
    assert!(!said.contains("not-the-token"), "no secret in messages");
}

#[test]
fn slack_conversations_are_read_over_pages_with_their_cursor() {
    let server = SupportServer::start("slack_server.py", &[]);
    let scratch = Scratch::new();
    slack(&scratch, &server, "xoxb-test-1");
    let test = tributary(&scratch)
        .args(["connection", "test", "sl"])
        .output()
        .unwrap();
    assert!(
        stdout(&test).contains("signed in as tributary-bot"),
        "{}{}",
        stdout(&test),
        stderr(&test)
    );
    server.control(json!({"per_page": 2}));
    server.requests();
    let record = ran(&run(
        &scratch,
        &to_folder(
            "source.slack",
            json!({"connection": "sl", "entity": "conversations"}),
        ),
    ));
    assert_eq!(record["records_written"], 5);
    let (by_id, _) = written(&scratch, "id");
    assert_eq!(by_id["C2"]["topic"], "Topic 2");
    assert_eq!(by_id["C2"]["created"], "2025-11-29T00:00:00Z");
    assert_eq!(by_id["C3"]["is_private"], true);
    let requests = server.requests();
    let reads = to_path(&requests, "/api/conversations.list");
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert_eq!(
        reads[0]["query"],
        json!({"limit": "200", "types": "public_channel,private_channel"})
    );
    assert_eq!(
        reads[1]["query"]["cursor"], "bmV4dDoy",
        "the cursor Slack gave"
    );
    assert_eq!(reads[2]["query"]["cursor"], "bmV4dDo0");
    assert!(requests.iter().all(|r| r["auth"] == "Bearer"));
}

#[test]
fn slack_messages_need_their_conversation_and_incremental_runs_read_each_once() {
    let server = SupportServer::start("slack_server.py", &[]);
    let scratch = Scratch::new();
    slack(&scratch, &server, "xoxb-test-1");
    let out = run(
        &scratch,
        &to_folder(
            "source.slack",
            json!({"connection": "sl", "entity": "messages"}),
        ),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Slack reads messages only with a condition: `channel` equal to"),
        "{}",
        stderr(&out)
    );
    server.requests();
    let flow = to_folder(
        "source.slack",
        json!({"connection": "sl", "entity": "messages", "incremental": true,
               "conditions": [{"field": "channel", "operator": "equal_to", "value": "C1"}]}),
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 250);
    let requests = server.requests();
    let reads = to_path(&requests, "/api/conversations.history");
    assert_eq!(reads.len(), 3, "100 a page: {reads:?}");
    assert_eq!(
        reads[0]["query"],
        json!({"limit": "200", "channel": "C1"}),
        "the first run asks from the beginning"
    );
    let (by_ts, _) = written(&scratch, "ts");
    let one = &by_ts["2025-12-01T00:05:00.000002Z"];
    assert_eq!(one["text"], "Message 22");
    assert_eq!(one["channel"], "C1", "the conversation it was read from");

    // The newest message (250) is at second 3720, microsecond 2. One more arrives in that
    // second and one later; the next run asks from that second on, inclusive.
    server.control(json!({"post": [
        {"type": "message", "user": "U001", "text": "same second", "ts": "1764550920.000003"},
        {"type": "message", "user": "U001", "text": "later", "ts": "1764551000.000000"}
    ]}));
    let second = ran(&run(&scratch, &flow));
    assert_eq!(second["records_written"], 2, "{second}");
    let requests = server.requests();
    let reads = to_path(&requests, "/api/conversations.history");
    assert_eq!(
        reads[0]["query"],
        json!({"limit": "200", "channel": "C1", "oldest": "1764550920", "inclusive": "true"})
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 0);
    let (by_ts, count) = written(&scratch, "ts");
    assert_eq!(count, 252, "each message once");
    assert_eq!(by_ts.len(), 252);
}

#[test]
fn slack_posts_a_message_per_record_and_sets_aside_the_ones_it_refuses() {
    let server = SupportServer::start("slack_server.py", &[]);
    let scratch = Scratch::new();
    slack(&scratch, &server, "xoxb-test-1");
    server.requests();
    let lines = [
        json!({"channel": "C2", "text": "Deal won: Acme, 12 000 EUR"}),
        json!({"channel": "C_SECRET", "text": "psst"}),
        json!({"channel": "C2", "text": ""}),
        json!({"channel": "C4", "text": "Deal won: Globex"}),
    ];
    let record = ran(&run(
        &scratch,
        &from_file(
            &scratch,
            "destination.slack",
            json!({"connection": "sl", "entity": "messages"}),
            &lines,
        ),
    ));
    assert_eq!(record["outputs"][0]["records"], 2);
    assert_eq!(record["records_rejected"], 2);
    let reasons: Vec<String> = refused(&record)
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons[0].contains("the app is not a member of this conversation")
            && reasons[0].contains("not_in_channel"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("no_text"), "{reasons:?}");
    let posted = server.get("/test/posted");
    assert_eq!(
        posted
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["channel"].as_str().unwrap(), m["text"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [
            ("C2", "Deal won: Acme, 12 000 EUR"),
            ("C4", "Deal won: Globex")
        ]
    );
    let requests = server.requests();
    let posts = to_path(&requests, "/api/chat.postMessage");
    assert_eq!(posts.len(), 4);
    assert_eq!(
        posts[0]["body"],
        json!({"channel": "C2", "text": "Deal won: Acme, 12 000 EUR"})
    );
}

#[test]
fn slack_rate_limits_are_waited_out_expired_tokens_renewed_and_bad_tokens_named() {
    let server = SupportServer::start("slack_server.py", &[]);
    let scratch = Scratch::new();
    add(
        &scratch,
        "sl",
        "slack",
        "oauth2",
        &[
            format!("instance_url={}", server.url()),
            "client_id=1234.5678".into(),
        ],
        "slack-secret-9",
    );
    let login = tributary(&scratch)
        .args(["connection", "login", "sl"])
        .env("BROWSER", redirect_follower(&scratch))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}{}",
        stdout(&login),
        stderr(&login)
    );
    server.requests();
    // The rotated token ends (Slack says `token_expired` in a 200), and the history
    // answers 429 once.
    server.control(json!({
        "fail": [{"status": 429, "at": "history", "retry_after": 1}],
        "expire": true
    }));
    let flow = to_folder(
        "source.slack",
        json!({"connection": "sl", "entity": "messages", "fields": ["ts", "text"],
               "conditions": [{"field": "channel", "operator": "equal_to", "value": "C1"}]}),
    );
    assert_eq!(ran(&run(&scratch, &flow))["records_written"], 250);
    let requests = server.requests();
    let seen: Vec<(&str, i64, Option<&str>)> = requests
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["status"].as_i64().unwrap(),
                r["query"]["grant_type"].as_str(),
            )
        })
        .collect();
    let history = "/api/conversations.history";
    assert_eq!(seen[0], (history, 429, None), "{seen:?}");
    assert_eq!(seen[1], (history, 200, None), "token_expired: {seen:?}");
    assert_eq!(
        seen[2],
        ("/api/oauth.v2.access", 200, Some("refresh_token")),
        "{seen:?}"
    );
    assert_eq!(seen[3], (history, 200, None), "{seen:?}");
    assert_eq!(
        to_path(&requests, history).len(),
        5,
        "the refused and the waited requests, then three pages"
    );

    let scratch = Scratch::new();
    slack(&scratch, &server, "xoxb-wrong");
    let test = tributary(&scratch)
        .args(["connection", "test", "sl"])
        .output()
        .unwrap();
    assert_eq!(test.status.code(), Some(1));
    assert!(
        stderr(&test).contains("Slack does not know this token: sign in again (`invalid_auth`)"),
        "{}",
        stderr(&test)
    );
    assert!(!stderr(&test).contains("xoxb-wrong"));
}

#[test]
fn a_manifest_dropped_into_the_connectors_folder_is_a_connector_without_rebuilding() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    let folder = scratch.home().join("connectors");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("helpdesk.json"),
        json!({
            "format": "tributary.connector/1",
            "id": "helpdesk",
            "label": "Our helpdesk",
            "sign_in": {"kinds": ["basic"]},
            "check": {"path": "/api/v2/users/me.json", "identity": "user.name"},
            "errors": {"message": ["description", "error"]},
            "entities": [{
                "name": "teams",
                "label": "Teams",
                "id_field": "id",
                "fields": [
                    {"name": "id", "type": "integer"},
                    {"name": "name", "type": "string"},
                    {"name": "main", "type": "boolean", "path": "default"}
                ],
                "read": {
                    "path": "/api/v2/groups.json",
                    "query": {"page[size]": "2"},
                    "records": "groups",
                    "pagination": {"style": "next_link", "path": "links.next", "more": "meta.has_more"}
                }
            }]
        })
        .to_string(),
    )
    .unwrap();
    // A broken manifest beside it is named, and does not stop the others; nor does one
    // that would take a built-in connector's place.
    let mut impostor: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("helpdesk.json")).unwrap())
            .unwrap();
    impostor["id"] = "zendesk".into();
    std::fs::write(folder.join("zendesk.json"), impostor.to_string()).unwrap();
    std::fs::write(
        folder.join("broken.json"),
        "{\"format\": \"tributary.connector/1\",\n \"id\": 3}",
    )
    .unwrap();

    let out = tributary(&scratch).args(["connectors"]).output().unwrap();
    assert!(stdout(&out).contains("source.helpdesk"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("broken.json: line 2, column 8 (at /id)"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("zendesk.json: there is already a connector `zendesk`"),
        "{}",
        stderr(&out)
    );
    add(
        &scratch,
        "desk",
        "helpdesk",
        "basic",
        &[
            format!("instance_url={}", server.url()),
            "username=ana@acme.com/token".into(),
        ],
        "zd-token-1",
    );
    let test = tributary(&scratch)
        .args(["connection", "test", "desk"])
        .output()
        .unwrap();
    assert!(
        stdout(&test).contains("signed in as Ana"),
        "{}",
        stderr(&test)
    );
    server.requests();
    let record = ran(&run(
        &scratch,
        &to_folder(
            "source.helpdesk",
            json!({"connection": "desk", "entity": "teams"}),
        ),
    ));
    assert_eq!(record["records_written"], 3);
    let (by_id, _) = written(&scratch, "id");
    assert_eq!(
        by_id["600"],
        json!({"id": 600, "name": "Group 0", "main": true})
    );
    let requests = server.requests();
    let reads = to_path(&requests, "/api/v2/groups.json");
    assert_eq!(reads.len(), 2, "two teams a page: {reads:?}");
    assert_eq!(reads[0]["query"], json!({"page[size]": "2"}));
}

#[test]
fn the_example_flows_run_against_servers_named_by_their_parameters() {
    let zendesk_server = SupportServer::start("zendesk_server.py", &[]);
    let slack_server = SupportServer::start("slack_server.py", &[]);
    let scratch = Scratch::new();
    zendesk(&scratch, &zendesk_server, "zd-token-1");
    slack(&scratch, &slack_server, "xoxb-test-1");
    let run_example = |file: &str, params: &[String]| {
        let example = std::path::absolute(format!("flows/{file}")).unwrap();
        let mut c = tributary(&scratch);
        c.args(["run", example.to_str().unwrap(), "--json"]);
        for p in params {
            c.args(["--param", p]);
        }
        ran(&c.output().unwrap())
    };
    let tickets = scratch.path().join("tickets");
    let record = run_example(
        "zendesk-tickets-to-folder.json",
        &[
            "connection=zd".into(),
            format!("output={}", tickets.display()),
        ],
    );
    assert_eq!(record["records_written"], 250);
    let messages = scratch.path().join("messages");
    let record = run_example(
        "slack-messages-to-folder.json",
        &[
            "connection=sl".into(),
            "channel=C1".into(),
            format!("output={}", messages.display()),
        ],
    );
    assert_eq!(record["records_written"], 250);
}
