//! `source.rest` through the `tributary` command against a JSON API on loopback
//! (`tests/support/rest_server.py`): every pagination style, every sign-in, retries on 429
//! and 503, and incremental pulls across runs with records sharing the boundary instant.
//! Each test checks the requests the source made as well as the records it produced.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{Value, json};

fn start() -> SupportServer {
    SupportServer::start("rest_server.py", &[])
}

/// A flow: the REST source into JSON lines in `out/`.
fn to_folder(source: Value) -> Value {
    flow(
        vec![
            node("api", "source.rest", source),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("api", "out")],
    )
}

fn run(scratch: &Scratch, flow: &Value, extra: &[&str]) -> Output {
    let path = scratch.flow("flow.json", flow);
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", path.to_str().unwrap(), "--json"])
        .args(extra)
        .env("TRIBUTARY_HOME", scratch.home())
        .env("TRIBUTARY_VAULT_PASSPHRASE", "rest tests")
        .env_remove("TRIBUTARY_LOG")
        .output()
        .unwrap()
}

/// The ids of every record written by runs so far, with repeats.
fn ids_written(scratch: &Scratch) -> Vec<i64> {
    let mut ids = Vec::new();
    for file in files_under(&scratch.path().join("out")) {
        let text = std::fs::read_to_string(scratch.path().join("out").join(&file)).unwrap();
        ids.extend(ids_in(&text));
    }
    ids.sort();
    ids
}

fn assert_ran(out: &Output) -> Value {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// What each request asked for: (path, the query parameters named).
fn asked(api: &SupportServer, params: &[&str]) -> Vec<String> {
    api.requests()
        .iter()
        .map(|r| {
            let mut text = r["path"].as_str().unwrap().to_string();
            for p in params {
                if let Some(v) = r["query"][p].as_str() {
                    text += &format!(" {p}={v}");
                }
            }
            text
        })
        .collect()
}

#[test]
fn every_pagination_style_reads_every_record_once() {
    let api = start();
    let all: Vec<i64> = (1..=250).collect();
    let cases = [
        (
            json!({"url": format!("{}/next-body", api.url()), "records_path": "items",
                   "pagination": {"style": "next_link", "path": "next"}}),
            7,
        ),
        (
            json!({"url": format!("{}/link-header", api.url()),
                   "pagination": {"style": "next_link"}}),
            5,
        ),
        (
            json!({"url": format!("{}/cursor", api.url()), "records_path": "data",
                   "pagination": {"style": "cursor", "path": "response_metadata.next_cursor", "param": "cursor"}}),
            4,
        ),
        (
            json!({"url": format!("{}/pages", api.url()),
                   "pagination": {"style": "page_number", "size_param": "per_page", "size": 50}}),
            6,
        ),
        (
            json!({"url": format!("{}/offset", api.url()), "records_path": "results",
                   "pagination": {"style": "offset", "limit": 100}}),
            3,
        ),
    ];
    for (source, pages) in cases {
        let scratch = Scratch::new();
        api.requests();
        let record = assert_ran(&run(&scratch, &to_folder(source.clone()), &[]));
        assert_eq!(ids_written(&scratch), all, "{source}");
        assert_eq!(record["records_written"], 250);
        // Planning asks for the first page once to learn the fields; the run asks for
        // each page once.
        let requests = asked(&api, &[]);
        assert_eq!(requests.len(), pages + 1, "{source}: {requests:?}");
    }
    // The exact requests of two styles.
    let scratch = Scratch::new();
    api.requests();
    assert_ran(&run(
        &scratch,
        &to_folder(
            json!({"url": format!("{}/offset", api.url()), "records_path": "results",
                          "query": {"sort": "updated"},
                          "pagination": {"style": "offset", "limit": 100}}),
        ),
        &[],
    ));
    assert_eq!(
        asked(&api, &["sort", "offset", "limit"]),
        vec![
            "/offset sort=updated offset=0 limit=100",
            "/offset sort=updated offset=0 limit=100",
            "/offset sort=updated offset=100 limit=100",
            "/offset sort=updated offset=200 limit=100",
        ]
    );
    let scratch = Scratch::new();
    assert_ran(&run(
        &scratch,
        &to_folder(
            json!({"url": format!("{}/next-body", api.url()), "records_path": "items",
                          "pagination": {"style": "next_link", "path": "next"}}),
        ),
        &[],
    ));
    let afters = asked(&api, &["after"]);
    assert_eq!(
        afters[1..4],
        ["/next-body", "/next-body after=40", "/next-body after=80"]
    );
}

#[test]
fn api_keys_and_passwords_come_from_the_connection() {
    let api = start();
    let scratch = Scratch::new();
    let add = |name: &str, args: &[&str], secret: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["connection", "add", name, "--connector", "http"])
            .args(args)
            .env("TRIBUTARY_HOME", scratch.home())
            .env("TRIBUTARY_VAULT_PASSPHRASE", "rest tests")
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
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    add(
        "header",
        &["--auth", "api_key", "--set", "key_name=X-Api-Key"],
        "k-123",
    );
    add(
        "query",
        &[
            "--auth",
            "api_key",
            "--set",
            "key_name=api_key",
            "--set",
            "key_in=query",
        ],
        "k-456",
    );
    add(
        "basic",
        &["--auth", "basic", "--set", "username=ana"],
        "pw-1",
    );
    // Test calls the connection's test URL, signed, and says how the API answered.
    add(
        "tested",
        &[
            "--auth",
            "api_key",
            "--set",
            "key_name=X-Api-Key",
            "--set",
            &format!("test_url={}/offset", api.url()),
        ],
        "k-123",
    );
    add(
        "wrong",
        &[
            "--auth",
            "api_key",
            "--set",
            "key_name=X-Api-Key",
            "--set",
            &format!("test_url={}/offset", api.url()),
        ],
        "not-the-key",
    );
    api.control(json!({"auth": "api_key"}));
    api.requests();
    let test = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["connection", "test", name])
            .env("TRIBUTARY_HOME", scratch.home())
            .env("TRIBUTARY_VAULT_PASSPHRASE", "rest tests")
            .output()
            .unwrap()
    };
    let good = test("tested");
    assert!(good.status.success(), "{}", stderr(&good));
    assert!(stdout(&good).contains("answered 200"), "{}", stdout(&good));
    let bad = test("wrong");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("refused the credentials (401"),
        "{}",
        stderr(&bad)
    );
    let keys: Vec<Value> = api
        .requests()
        .iter()
        .map(|r| r["api_key"].clone())
        .collect();
    assert_eq!(keys, vec![json!("k-123"), json!("not-the-key")]);
    for (mode, connection) in [
        ("api_key", "header"),
        ("query", "query"),
        ("basic", "basic"),
    ] {
        api.control(json!({"auth": mode}));
        let source = json!({"url": format!("{}/offset", api.url()), "records_path": "results",
                            "connection": connection, "pagination": {"style": "offset"}});
        let out = run(&scratch, &to_folder(source.clone()), &[]);
        assert_ran(&out);
        assert!(!stdout(&out).contains("k-123") && !stdout(&out).contains("pw-1"));
        // Without the connection the API refuses, and the error says so.
        let mut open = source.clone();
        open.as_object_mut().unwrap().remove("connection");
        // The service refused, the flow is fine: a failed run, its record saying why.
        let refused = run(&scratch, &to_folder(open), &[]);
        assert_eq!(refused.status.code(), Some(1), "{mode}");
        assert!(
            stdout(&refused).contains("refused the credentials (401 Unauthorized)"),
            "{}",
            stdout(&refused)
        );
    }
    let requests = api.requests();
    assert!(requests.iter().any(|r| r["api_key"] == "k-123"));
    assert!(requests.iter().any(|r| r["query"]["api_key"] == "k-456"));
    assert!(
        requests
            .iter()
            .any(|r| r["authorization"] == "Basic YW5hOnB3LTE=")
    );
}

#[test]
fn rate_limits_and_server_errors_are_waited_out() {
    let api = start();
    let scratch = Scratch::new();
    let source = json!({"url": format!("{}/pages", api.url()),
                        "pagination": {"style": "page_number", "size_param": "per_page", "size": 100}});
    let flow = to_folder(source);
    api.control(json!({"fail": [
        {"status": 429, "retry_after": "1"},
        {"status": 503},
        {"status": 502},
    ]}));
    let record = assert_ran(&run(&scratch, &flow, &[]));
    assert_eq!(record["records_written"], 250);
    let statuses: Vec<i64> = api
        .requests()
        .iter()
        .map(|r| r["status"].as_i64().unwrap())
        .collect();
    // Three refusals waited out, then the first page (to plan) and the run's three pages.
    assert_eq!(statuses, vec![429, 503, 502, 200, 200, 200, 200]);

    // A 429 asking for longer than Tributary waits fails the run, saying so.
    api.control(json!({"fail": [{"status": 429, "retry_after": "3600"}]}));
    let out = run(&scratch, &flow, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("asks to wait 3600 s"),
        "{}",
        stdout(&out)
    );
    // A 404 is not retried.
    let missing = to_folder(json!({"url": format!("{}/no-such-thing", api.url())}));
    api.requests();
    let out = run(&scratch, &missing, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not found (404 Not Found)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn incremental_pulls_read_each_record_once_across_runs() {
    let api = start();
    let scratch = Scratch::new();
    let flow = to_folder(json!({
        "url": format!("{}/cursor", api.url()), "records_path": "data",
        "pagination": {"style": "cursor", "path": "response_metadata.next_cursor", "param": "cursor"},
        "incremental": {"param": "updated_since", "field": "updated_at", "id_field": "id"}
    }));
    let first = assert_ran(&run(&scratch, &flow, &[]));
    assert_eq!(first["records_written"], 250);
    // The run's requests asked for everything: no `updated_since` yet.
    assert!(
        api.requests()
            .iter()
            .all(|r| r["query"].get("updated_since").is_none())
    );

    // Two records change at the instant the last run ended on (records 241-250 share
    // it), one later, and one new record appears at that instant.
    let at_boundary = "2026-11-25T10:00:00Z";
    api.control(json!({"upsert": [
        {"id": 245, "subject": "Ticket 245 reopened", "priority": "high", "score": 1.0, "updated_at": at_boundary},
        {"id": 251, "subject": "Ticket 251", "priority": "low", "score": 2.0, "updated_at": at_boundary},
        {"id": 7, "subject": "Ticket 7 edited", "priority": "low", "score": 3.0, "updated_at": "2026-11-26T08:00:00Z"},
    ]}));
    let second = assert_ran(&run(&scratch, &flow, &[]));
    // 245 was read already at that instant (a change that keeps its time is invisible to
    // any time-based pull); 251 and 7 are new.
    assert_eq!(second["records_written"], 2);
    let requests = api.requests();
    let run_requests: Vec<_> = requests
        .iter()
        .filter(|r| r["query"].get("updated_since").is_some())
        .collect();
    assert!(!run_requests.is_empty());
    assert!(
        run_requests
            .iter()
            .all(|r| r["query"]["updated_since"] == at_boundary)
    );

    let third = assert_ran(&run(&scratch, &flow, &[]));
    assert_eq!(third["records_written"], 0);

    let ids = ids_written(&scratch);
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 251);
    // Only 7 came twice: once as it was, once edited.
    assert_eq!(ids.len(), 252);
    assert_eq!(ids.iter().filter(|i| **i == 7).count(), 2);

    // `--full` reads everything again.
    let full = assert_ran(&run(&scratch, &flow, &["--full"]));
    assert_eq!(full["records_written"], 251);
}

#[test]
fn an_incremental_run_killed_while_it_publishes_is_finished_and_never_read_twice() {
    let api = start();
    // A file per priority: the commit is a few renames; kill at each of the first two.
    for k in 1..=2 {
        let scratch = Scratch::new();
        let mut flow = to_folder(json!({
            "url": format!("{}/cursor", api.url()), "records_path": "data",
            "pagination": {"style": "cursor", "path": "response_metadata.next_cursor", "param": "cursor"},
            "incremental": {"param": "updated_since", "field": "updated_at", "id_field": "id"}
        }));
        flow["nodes"][1]["config"]["partition_by"] = json!(["priority"]);
        let path = scratch.flow("flow.json", &flow);
        let killed = run_killed_at_rename(&scratch, &path, k);
        assert!(!killed.success());
        // The next run finishes the killed one's commit and starts where it ended: it reads
        // nothing new.
        let next = assert_ran(&run(&scratch, &flow, &[]));
        assert_eq!(next["records_written"], 0, "k={k}: {next}");
        let ids = ids_written(&scratch);
        assert_eq!(ids.len(), 250, "k={k}: each record once");
        assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>().len(), 250);
    }
}

#[test]
fn a_service_that_fails_on_the_first_page_is_a_failed_run_not_an_invalid_flow() {
    let api = start();
    let scratch = Scratch::new();
    for url in [
        "http://127.0.0.1:9/records".to_string(),
        format!("{}/no-such-path", api.url()),
    ] {
        let flow = to_folder(json!({"url": url, "records_path": "data"}));
        let out = run(&scratch, &flow, &[]);
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(record["status"], "Error", "{record}");
        assert_eq!(record["error"]["node"], "api");
        let kept = scratch
            .home()
            .join("data/runs")
            .join(record["execution_id"].as_str().unwrap())
            .join("run.json");
        assert!(kept.exists(), "the run record is kept: {}", kept.display());
        // Checking the flow says what failed, and that it is the service, not the flow.
        let path = scratch.flow("flow.json", &flow);
        for command in ["validate", "preview"] {
            let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
            c.arg(command).arg(&path);
            if command == "preview" {
                c.args(["--node", "api"]);
            }
            let out = c
                .env("TRIBUTARY_HOME", scratch.home())
                .env("TRIBUTARY_VAULT_PASSPHRASE", "rest tests")
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command} {url}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("`api`"), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_field_first_seen_on_a_later_page_is_set_aside_named_or_stops_the_run() {
    let api = start();
    // The fields are learned from the first page (40 records); this one comes last.
    api.control(json!({"upsert": [
        {"id": 300, "subject": "Late", "priority": "low", "score": 1.0,
         "updated_at": "2026-12-01T10:00:00Z", "email": "late@example.com"},
    ]}));
    let scratch = Scratch::new();
    let url = format!("{}/next-body", api.url());
    let with = |policy: &str| {
        let mut source = json!({"url": url, "records_path": "items",
                                "pagination": {"style": "next_link", "path": "next"}});
        if !policy.is_empty() {
            source["new_fields"] = json!(policy);
        }
        let out = run(&scratch, &to_folder(source), &[]);
        serde_json::from_str::<Value>(&stdout(&out)).unwrap_or_else(|_| panic!("{}", stderr(&out)))
    };
    let record = with("");
    assert_eq!(record["status"], "Successful", "{record}");
    assert_eq!(record["records_rejected"], 1, "{record}");
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("a field `email`") && errors.contains("page 7"),
        "{errors}"
    );
    let record = with("fail");
    assert_eq!(record["status"], "Error", "{record}");
    assert!(
        record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a field `email`"),
        "{record}"
    );
    let record = with("ignore");
    assert_eq!(record["records_rejected"], 0, "{record}");
    assert_eq!(record["records_written"], 251, "{record}");
}

#[test]
fn the_first_run_of_a_scheduled_flow_reads_from_its_first_run_from() {
    let api = start();
    let scratch = Scratch::new();
    let mut flow = to_folder(json!({
        "url": format!("{}/cursor", api.url()), "records_path": "data",
        "pagination": {"style": "cursor", "path": "response_metadata.next_cursor", "param": "cursor"},
        "incremental": {"param": "updated_since", "field": "updated_at", "id_field": "id"}
    }));
    // Local midnight in Berlin is 23:00 UTC the day before.
    flow["trigger"] = json!({"type": "schedule", "expression": "rate(1 days)",
        "time_zone": "Europe/Berlin", "first_run_from": "2026-11-06T00:00:00"});
    let first = assert_ran(&run(&scratch, &flow, &[]));
    // Days 6 to 25, ten records a day.
    assert_eq!(first["records_written"], 200);
    let asked: Vec<Value> = api
        .requests()
        .iter()
        .map(|r| r["query"]["updated_since"].clone())
        .collect();
    assert!(
        asked.iter().any(|a| a == "2026-11-05T23:00:00Z"),
        "the run asked from first_run_from: {asked:?}"
    );
    // The next run goes on from its watermark, and `--full` reads everything.
    let second = assert_ran(&run(&scratch, &flow, &[]));
    assert_eq!(second["records_written"], 0);
    let full = assert_ran(&run(&scratch, &flow, &["--full"]));
    assert_eq!(full["records_written"], 250);

    // A first_run_from that is not an instant is refused with its setting.
    flow["trigger"]["first_run_from"] = json!("last week");
    let out = run(&scratch, &flow, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/trigger/first_run_from") && stderr(&out).contains("last week"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_search_endpoint_is_asked_by_post_with_a_body_and_headers() {
    let api = start();
    let scratch = Scratch::new();
    let flow = to_folder(json!({
        "url": format!("{}/search", api.url()),
        "method": "post",
        "body": {"priority": "high"},
        "headers": {"Accept-Language": "en"},
        "records_path": "data",
        "pagination": {"style": "cursor", "path": "response_metadata.next_cursor", "param": "cursor"}
    }));
    let record = assert_ran(&run(&scratch, &flow, &[]));
    let high: Vec<i64> = (1..=250).filter(|i| i % 3 == 2).collect();
    assert_eq!(ids_written(&scratch), high);
    assert_eq!(record["records_written"], high.len() as u64);
    let requests = api.requests();
    let searches: Vec<&Value> = requests.iter().filter(|r| r["path"] == "/search").collect();
    // 83 records, 30 a page; planning reads the first page once more.
    assert_eq!(searches.len(), 4, "{searches:?}");
    for s in &searches {
        assert_eq!(s["method"], "POST");
        assert_eq!(s["body"], json!({"priority": "high"}));
        assert_eq!(s["language"], "en");
    }

    // Credentials never go in the flow file's headers; a body needs `post`.
    let out = run(
        &scratch,
        &to_folder(
            json!({"url": format!("{}/search", api.url()), "headers": {"Authorization": "Bearer x"}}),
        ),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("carries credentials"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &scratch,
        &to_folder(json!({"url": format!("{}/search", api.url()), "body": {}})),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a body goes with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_answer_in_csv_is_read_by_its_header_row() {
    let api = start();
    let scratch = Scratch::new();
    let flow = to_folder(json!({
        "url": format!("{}/export.csv", api.url()),
        "schema": {"id": "integer", "updated_at": "timestamp"}
    }));
    let record = assert_ran(&run(&scratch, &flow, &[]));
    assert_eq!(record["records_written"], 250);
    assert_eq!(ids_written(&scratch), (1..=250).collect::<Vec<_>>());
    let out = scratch.path().join("out");
    let text = std::fs::read_to_string(out.join(&files_under(&out)[0])).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["subject"], "Ticket 1");
    assert_eq!(first["priority"], "normal");
}
