//! Runs end to end: bad records set aside with their line numbers, output that is complete
//! or absent whatever happens, bounded memory, previews.

mod common;

use std::sync::Arc;

use common::*;
use indexmap::IndexMap;
use serde_json::{Value, json};
use tributary::engine::{self, RunEvent, RunOptions, RunStatus};
use tributary::flow::{Flow, Plan};
use tributary::paths::Dirs;
use tributary::workspace::{self, Workspace};

fn plan(scratch: &Scratch, flow: &Value) -> Plan {
    let flow = Flow::from_json(&flow.to_string(), "test").unwrap();
    workspace::plan_flow(
        &flow,
        scratch.path(),
        &IndexMap::new(),
        &Workspace::new(Dirs::under(&scratch.home())),
    )
    .unwrap_or_else(|p| panic!("{p:#?}"))
}

fn options(scratch: &Scratch) -> RunOptions {
    RunOptions::new(Dirs::under(&scratch.home()))
}

fn run_cli(scratch: &Scratch, flow: &Value) -> (Option<i32>, Value, String) {
    let path = scratch.flow("flow.json", flow);
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    let record = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    (o.status.code(), record, stderr(&o))
}

fn error_lines(record: &Value) -> Vec<Value> {
    let path = record["error_output"].as_str().expect("an error output");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `in.jsonl` (with `id` read as an integer) into JSON lines under `out`.
fn copy_json_lines(scratch: &Scratch) -> (Option<i32>, Value, String) {
    let f = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "in.jsonl", "schema": {"id": "integer"}}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    run_cli(scratch, &f)
}

#[test]
fn malformed_json_lines_go_to_the_error_output_with_line_numbers() {
    let scratch = Scratch::new();
    scratch.write(
        "in.jsonl",
        "{\"id\": 1, \"amount\": 10.5, \"name\": \"a\"}\n\
         {\"id\": 2, \"amount\": 3, \"name\": \"b\"}\n\
         {\"id\": 3, \"amount\": oops}\n\
         \n\
         {\"id\": \"four\", \"amount\": 1, \"name\": \"d\"}\n\
         [1, 2]\n\
         {\"id\": 7, \"name\": \"Zoë\"}\n",
    );
    let (code, record, err) = copy_json_lines(&scratch);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_processed"], 3);
    assert_eq!(record["records_written"], 3);
    assert_eq!(record["records_rejected"], 3);
    let errors = error_lines(&record);
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 5, 6]);
    assert!(
        errors
            .iter()
            .all(|e| e["file"].as_str().unwrap().ends_with("in.jsonl") && e["node"] == "src")
    );
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not valid JSON at column 21"),
        "{}",
        errors[0]
    );
    assert!(
        errors[2]["reason"]
            .as_str()
            .unwrap()
            .contains("one JSON object (a record), not an array"),
        "{}",
        errors[2]
    );
    assert_eq!(
        errors[1]["record"],
        "{\"id\": \"four\", \"amount\": 1, \"name\": \"d\"}"
    );
    let files = files_under(&scratch.path().join("out"));
    let text = std::fs::read_to_string(scratch.path().join("out").join(&files[0])).unwrap();
    assert!(text.contains("Zoë") && text.lines().count() == 3);
}

#[test]
fn json_lines_decoded_in_parallel_keep_their_order_and_line_numbers() {
    let scratch = Scratch::new();
    let bad = [5u64, 20_001, 49_999];
    let mut text = String::new();
    for line in 1..=50_000u64 {
        if bad.contains(&line) {
            text.push_str("{\"id\": broken\n");
        } else {
            text.push_str(&format!(
                "{{\"id\": {line}, \"note\": \"record {line}\"}}\n"
            ));
        }
    }
    scratch.write("in.jsonl", &text);
    let (code, record, err) = copy_json_lines(&scratch);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_written"], 49_997);
    let lines: Vec<u64> = error_lines(&record)
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, bad);
    let files = files_under(&scratch.path().join("out"));
    let written = std::fs::read_to_string(scratch.path().join("out").join(&files[0])).unwrap();
    let ids: Vec<u64> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let expected: Vec<u64> = (1..=50_000).filter(|l| !bad.contains(l)).collect();
    assert_eq!(ids, expected, "records leave in the order of the file");
}

#[test]
fn malformed_csv_rows_go_to_the_error_output_with_line_numbers() {
    let scratch = Scratch::new();
    scratch.write("in.csv", "id,amount,when\n1,10.5,2024-01-01\n2,abc,2024-01-02\n3,7\n4,\"1,5\",2024-01-04\n5,8,2024-01-05\n");
    let mut f = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "in.csv", "schema": {"amount": "number", "when": "date"}}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "csv"}),
            ),
        ],
        &[("src", "out")],
    );
    // Three of five rejected: more than the default threshold lets a run succeed.
    f["error_threshold"] = json!(100);
    let (code, record, err) = run_cli(&scratch, &f);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_written"], 2);
    assert_eq!(record["records_rejected"], 3);
    let errors = error_lines(&record);
    let found: Vec<(u64, String)> = errors
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found[0].0, 4);
    assert!(
        found[0].1.contains("expected 3 fields, found 2"),
        "{found:?}"
    );
    assert_eq!(found[1].0, 3);
    assert!(
        found[1].1.contains("`amount`: `abc` is not a valid number"),
        "{found:?}"
    );
    assert_eq!(found[2].0, 5);
}

#[test]
fn json_lines_with_dates_and_timestamps_set_aside_the_lines_that_do_not_read() {
    let scratch = Scratch::new();
    // Enough lines for several chunks; a bad date, a timestamp given as a number (which
    // arrow-json reads as microseconds) and a timestamp with an offset among them.
    let mut text = String::new();
    for i in 1..=20_000u32 {
        let (day, at) = match i {
            4321 => (
                "\"2026-02-30\"".to_string(),
                "\"2026-01-01T00:00:00Z\"".to_string(),
            ),
            9876 => ("\"2026-03-01\"".to_string(), "1767225600000000".to_string()),
            15000 => (
                "\"2026-03-01\"".to_string(),
                "\"2026-01-01T02:00:00+02:00\"".to_string(),
            ),
            _ => (
                format!("\"2026-{:02}-{:02}\"", i % 12 + 1, i % 28 + 1),
                format!("\"2026-01-01T00:00:{:02}.{:06}Z\"", i % 60, i),
            ),
        };
        text.push_str(&format!("{{\"id\":{i},\"day\":{day},\"at\":{at}}}\n"));
    }
    scratch.write("in.jsonl", &text);
    let f = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "in.jsonl", "schema": {"day": "date", "at": "timestamp"}}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    let (code, record, err) = run_cli(&scratch, &f);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_written"], 19_999);
    let errors = error_lines(&record);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], 4321);
    let reason = errors[0]["reason"].as_str().unwrap();
    assert!(reason.contains("2026-02-30"), "{reason}");
    let written: Vec<Value> = jsonl_rows(&scratch, "out")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let by_id = |id: u64| written.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id(1)["day"], "2026-02-02");
    assert_eq!(by_id(1)["at"], "2026-01-01T00:00:01.000001Z");
    assert_eq!(by_id(9876)["at"], "2026-01-01T00:00:00Z");
    assert_eq!(by_id(15000)["at"], "2026-01-01T00:00:00Z");
    assert_eq!(by_id(20_000)["day"], "2026-09-09");
}

#[test]
fn fail_on_first_error_stops_the_run_and_writes_nothing() {
    let scratch = Scratch::new();
    scratch.write(
        "in.jsonl",
        "{\"id\": 1}\n{\"id\": 2}\nnot json\n{\"id\": 4}\n",
    );
    let f = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "in.jsonl", "fail_on_first_error": true}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    let (code, record, _) = run_cli(&scratch, &f);
    assert_eq!(code, Some(1));
    assert_eq!(record["status"], "Error");
    assert_eq!(record["error"]["node"], "src");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(message.contains("in.jsonl, line 3"), "{message}");
    assert!(
        files_under(&scratch.path().join("out")).is_empty(),
        "no output at all"
    );
}

#[test]
fn a_terminating_validation_rule_fails_the_run_and_writes_nothing() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 50000}),
            ),
            node(
                "check",
                "transform.validate",
                json!({"rules": [{"field": "Amount", "check": "non_null", "action": "terminate_flow"}]}),
            ),
            node("out", "destination.local", json!({"folder": "out"})),
        ],
        &[("src", "check"), ("check", "out")],
    );
    let (code, record, _) = run_cli(&scratch, &f);
    assert_eq!(code, Some(1));
    assert_eq!(record["error"]["node"], "check");
    assert!(
        record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed the rule `Amount non_null`")
    );
    assert_eq!(record["records_written"], 0);
    assert!(files_under(&scratch.path().join("out")).is_empty());
}

/// Demo opportunities through five transforms in a row, which run as one chain.
fn five_transforms(check: Value) -> Value {
    flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 200_000}),
            ),
            node(
                "open",
                "transform.filter",
                json!({"conditions": [{"field": "StageName", "operator": "not_equal_to", "value": "Closed Lost"}]}),
            ),
            node("check", "transform.validate", json!({ "rules": [check] })),
            node(
                "mask",
                "transform.mask",
                json!({"fields": ["CreditCard"], "mode": "all_but_last_n", "n": 4}),
            ),
            node(
                "name",
                "transform.merge",
                json!({"output": "ContactName", "format": "{FirstName} {LastName}"}),
            ),
            node(
                "short",
                "transform.truncate",
                json!({"fields": ["Description"], "length": 10}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[
            ("src", "open"),
            ("open", "check"),
            ("check", "mask"),
            ("mask", "name"),
            ("name", "short"),
            ("short", "out"),
        ],
    )
}

#[test]
fn transforms_in_a_row_keep_their_own_figures_and_hold_no_batches_between_them() {
    let scratch = Scratch::new();
    let f =
        five_transforms(json!({"field": "Email", "check": "non_null", "action": "drop_record"}));
    let (code, record, stderr) = run_cli(&scratch, &f);
    assert_eq!(code, Some(0), "{stderr}");
    let nodes = record["nodes"].as_array().unwrap();
    let figure = |id: &str, key: &str| {
        nodes.iter().find(|n| n["node"] == id).unwrap()[key]
            .as_u64()
            .unwrap()
    };
    let order = ["src", "open", "check", "mask", "name", "short", "out"];
    for pair in order.windows(2) {
        assert_eq!(
            figure(pair[0], "records_out"),
            figure(pair[1], "records_in"),
            "{pair:?}"
        );
    }
    for id in order {
        let state = &nodes.iter().find(|n| n["node"] == id).unwrap()["state"];
        assert_eq!(state, "done", "{id}");
    }
    assert!(figure("open", "records_dropped") > 0);
    assert!(figure("check", "records_dropped") > 0);
    assert_eq!(figure("open", "records_in"), 200_000);
    assert_eq!(record["records_written"], figure("short", "records_out"));
    // However many transforms: the channel into the chain and the one out of it (see the
    // 5 GB test for the bound of one channel).
    let peak = record["peak_batches_in_flight"].as_u64().unwrap();
    assert!(peak <= 2 * (2 + 2), "peak {peak} batches in flight");
}

/// Runs `flow` with its chains of transforms in `lanes` lanes, through the library: the
/// run's record, the records written (in file order) and the error output's lines.
fn run_in_lanes(
    flow: &Value,
    input: &str,
    lanes: usize,
) -> (engine::RunRecord, Vec<Value>, Vec<Value>) {
    let scratch = Scratch::new();
    scratch.write("in.jsonl", input);
    let plan = plan(&scratch, flow);
    let mut opts = options(&scratch);
    opts.chain_lanes = lanes;
    opts.batch_rows = 1000;
    let record = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(engine::run(&plan, opts));
    assert_eq!(record.status, RunStatus::Successful, "{:?}", record.error);
    let written = jsonl_rows(&scratch, "out")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let errors = record.error_output.as_ref().map_or_else(Vec::new, |path| {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut e: Value = serde_json::from_str(l).unwrap();
                e.as_object_mut().unwrap().remove("at");
                e
            })
            .collect()
    });
    (record, written, errors)
}

#[test]
fn a_chain_run_on_several_batches_at_once_keeps_records_figures_and_errors_in_order() {
    // 40 batches of 1,000 records through validate, filter, mask, merge and a map that sets
    // aside every record whose amount is not a number.
    let mut input = String::new();
    for id in 0..40_000u32 {
        let email = if id % 7 == 0 {
            "null".to_string()
        } else {
            format!("\"p{id}@x.example\"")
        };
        let stage = ["Prospecting", "Closed Lost", "Closed Won"][(id % 3) as usize];
        let amount = if id % 97 == 0 {
            "n/a".to_string()
        } else {
            format!("{}.5", id % 5000)
        };
        input.push_str(&format!(
            "{{\"id\":{id},\"email\":{email},\"stage\":\"{stage}\",\"amount\":\"{amount}\",\"first\":\"A\",\"last\":\"B{id}\"}}\n"
        ));
    }
    let f = flow(
        vec![
            node("src", "source.file", json!({"path": "in.jsonl"})),
            node(
                "check",
                "transform.validate",
                json!({"rules": [{"field": "email", "check": "non_null", "action": "drop_record"}]}),
            ),
            node(
                "open",
                "transform.filter",
                json!({"conditions": [{"field": "stage", "operator": "not_equal_to", "value": "Closed Lost"}]}),
            ),
            node(
                "mask",
                "transform.mask",
                json!({"fields": ["email"], "mode": "all_but_last_n", "n": 4}),
            ),
            node(
                "name",
                "transform.merge",
                json!({"output": "name", "format": "{first} {last}"}),
            ),
            node(
                "keep",
                "transform.map",
                json!({"fields": [
                {"source": "id"}, {"source": "name"}, {"source": "email"},
                {"source": "amount", "type": "number"}]}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[
            ("src", "check"),
            ("check", "open"),
            ("open", "mask"),
            ("mask", "name"),
            ("name", "keep"),
            ("keep", "out"),
        ],
    );
    let (one, written, errors) = run_in_lanes(&f, &input, 1);
    assert!(
        written.len() > 20_000 && errors.len() > 200,
        "{} {}",
        written.len(),
        errors.len()
    );
    let ids: Vec<u64> = written.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "records in the order of the file"
    );
    for lanes in [2, 3, 4] {
        let (many, written_many, errors_many) = run_in_lanes(&f, &input, lanes);
        assert_eq!(written_many, written, "{lanes} lanes");
        assert_eq!(errors_many, errors, "{lanes} lanes");
        let figures = |r: &engine::RunRecord| {
            r.nodes
                .iter()
                .map(|n| {
                    (
                        n.node.clone(),
                        n.records_in,
                        n.records_out,
                        n.records_dropped,
                        n.records_rejected,
                        n.batches_in,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(figures(&many), figures(&one), "{lanes} lanes");
        assert_eq!(
            (
                many.records_written,
                many.records_dropped,
                many.records_rejected
            ),
            (
                one.records_written,
                one.records_dropped,
                one.records_rejected
            )
        );
    }
}

#[test]
fn a_failure_inside_a_chain_of_transforms_names_its_node() {
    let scratch = Scratch::new();
    let f = five_transforms(
        json!({"field": "Amount", "check": "non_null", "action": "terminate_flow"}),
    );
    let (code, record, _) = run_cli(&scratch, &f);
    assert_eq!(code, Some(1));
    assert_eq!(record["error"]["node"], "check");
    let state = |id: &str| {
        record["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("check"), "failed");
    for id in ["open", "mask", "name", "short"] {
        assert_eq!(state(id), "canceled", "{id}");
    }
    assert!(files_under(&scratch.path().join("out")).is_empty());
}

#[test]
fn output_of_every_destination_is_absent_when_one_fails() {
    let scratch = Scratch::new();
    scratch.write("blocker", "a file where a folder should be");
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Lead", "records": 3000}),
            ),
            node(
                "good",
                "destination.local",
                json!({"folder": "good", "format": "csv"}),
            ),
            node(
                "bad",
                "destination.local",
                json!({"folder": "blocker/sub", "format": "csv"}),
            ),
        ],
        &[("src", "good"), ("src", "bad")],
    );
    let (code, record, _) = run_cli(&scratch, &f);
    assert_eq!(code, Some(1));
    assert_eq!(record["error"]["node"], "bad");
    assert!(
        files_under(&scratch.path().join("good")).is_empty(),
        "{:?}",
        files_under(&scratch.path().join("good"))
    );
}

#[test]
fn fan_out_feeds_every_branch() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Account", "records": 20000}),
            ),
            node(
                "a",
                "destination.local",
                json!({"folder": "a", "format": "parquet"}),
            ),
            node(
                "big",
                "transform.filter",
                json!({"conditions": [{"field": "NumberOfEmployees", "operator": "greater_than", "value": 10000}]}),
            ),
            node(
                "b",
                "destination.local",
                json!({"folder": "b", "format": "json"}),
            ),
        ],
        &[("src", "a"), ("src", "big"), ("big", "b")],
    );
    let (code, record, err) = run_cli(&scratch, &f);
    assert_eq!(code, Some(0), "{err}");
    let outputs = record["outputs"].as_array().unwrap();
    let a: u64 = outputs
        .iter()
        .filter(|o| o["location"].as_str().unwrap().contains("/a/"))
        .map(|o| o["records"].as_u64().unwrap())
        .sum();
    let b: u64 = outputs
        .iter()
        .filter(|o| o["location"].as_str().unwrap().contains("/b/"))
        .map(|o| o["records"].as_u64().unwrap())
        .sum();
    assert_eq!(a, 20000);
    assert_eq!(a, b + record["records_dropped"].as_u64().unwrap());
    assert!(b > 0 && b < a);
}

#[test]
fn partitions_and_file_sizes() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 30000}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl", "partition_by": ["StageName"], "file_size_mb": 1, "execution_id_folder": true}),
            ),
        ],
        &[("src", "out")],
    );
    let (code, record, err) = run_cli(&scratch, &f);
    assert_eq!(code, Some(0), "{err}");
    let id = record["execution_id"].as_str().unwrap();
    let files = files_under(&scratch.path().join("out"));
    assert!(files.len() > 8, "several files per partition: {files:?}");
    let folders: std::collections::BTreeSet<&str> = files
        .iter()
        .map(|f| f.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(folders.len(), 8, "{folders:?}");
    assert!(folders.contains(format!("{id}/StageName=Closed Won").as_str()));
    assert!(folders.contains(format!("{id}/StageName=Proposal%2FPrice Quote").as_str()));
    let total: u64 = files
        .iter()
        .map(|f| count_records(&scratch.path().join("out").join(f)))
        .sum();
    assert_eq!(total, 30000);
    for f in &files {
        let size = std::fs::metadata(scratch.path().join("out").join(f))
            .unwrap()
            .len();
        assert!(size < 2 * 1024 * 1024, "{f} is {size} bytes");
        let text = std::fs::read_to_string(scratch.path().join("out").join(f)).unwrap();
        assert!(
            !text.contains("StageName"),
            "Hive partitions leave the field out of the files"
        );
    }
}

#[test]
fn every_format_reads_back_what_was_written() {
    for format in ["parquet", "csv", "jsonl", "json"] {
        let scratch = Scratch::new();
        let write = flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    json!({"object": "Opportunity", "records": 2500}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "written", "format": format}),
                ),
            ],
            &[("src", "out")],
        );
        let (code, _, err) = run_cli(&scratch, &write);
        assert_eq!(code, Some(0), "{format}: {err}");
        let read = flow(
            vec![
                node(
                    "src",
                    "source.file",
                    json!({"path": format!("written/*.{format}"), "schema": {"CloseDate": "date", "LastModifiedDate": "timestamp"}}),
                ),
                node(
                    "sum",
                    "transform.aggregate",
                    json!({"aggregates": [
                        {"function": "count", "output": "n"},
                        {"function": "sum", "field": "Amount", "output": "amount"},
                        {"function": "max", "field": "CloseDate", "output": "last_close"},
                        {"function": "count_distinct", "field": "Id", "output": "ids"}
                    ]}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "summary", "format": "jsonl"}),
                ),
            ],
            &[("src", "sum"), ("sum", "out")],
        );
        let (code, record, err) = run_cli(&scratch, &read);
        assert_eq!(code, Some(0), "{format}: {err}");
        assert_eq!(record["records_rejected"], 0, "{format}");
        let file = files_under(&scratch.path().join("summary"))[0].clone();
        let summary: Value = serde_json::from_str(
            std::fs::read_to_string(scratch.path().join("summary").join(file))
                .unwrap()
                .trim(),
        )
        .unwrap();
        assert_eq!(summary["n"], 2500, "{format}");
        assert_eq!(summary["ids"], 2500, "{format}");
        assert!(
            summary["last_close"].as_str().unwrap().starts_with("202"),
            "{format}: {summary}"
        );
        let expected = demo_amount_sum(&scratch);
        assert!(
            (summary["amount"].as_f64().unwrap() - expected).abs() < 1e-3,
            "{format}: {summary} vs {expected}"
        );
    }
}

/// The sum of Amount over the same 2,500 demo records, through a preview.
fn demo_amount_sum(scratch: &Scratch) -> f64 {
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 2500}),
            ),
            node(
                "sum",
                "transform.aggregate",
                json!({"aggregates": [{"function": "sum", "field": "Amount", "output": "amount"}]}),
            ),
            node("out", "destination.local", json!({"folder": "unused"})),
        ],
        &[("src", "sum"), ("sum", "out")],
    );
    let plan = plan(scratch, &f);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let preview = rt
        .block_on(engine::preview(&plan, "sum", 10_000, &options(scratch)))
        .unwrap();
    let col = preview.batches[0].column_by_name("amount").unwrap();
    col.as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .value(0)
}

#[test]
fn previews_sample_the_sources_and_show_before_and_after() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 100000}),
            ),
            node(
                "mask",
                "transform.mask",
                json!({"fields": ["CreditCard"], "mode": "all_but_last_n", "n": 4}),
            ),
            node("out", "destination.local", json!({"folder": "out"})),
        ],
        &[("src", "mask"), ("mask", "out")],
    );
    let plan = plan(&scratch, &f);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt
        .block_on(engine::preview(&plan, "mask", 25, &options(&scratch)))
        .unwrap();
    assert_eq!(p.num_rows(), 25);
    assert_eq!(p.input.iter().map(|b| b.num_rows()).sum::<usize>(), 25);
    let before = p.input[0]
        .column_by_name("CreditCard")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .value(0)
        .to_string();
    let after = p.batches[0]
        .column_by_name("CreditCard")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap()
        .value(0)
        .to_string();
    assert_eq!(&after[12..], &before[12..]);
    assert_eq!(&after[..12], "************");
    let d = rt
        .block_on(engine::preview(&plan, "out", 5, &options(&scratch)))
        .unwrap();
    assert_eq!(
        d.num_rows(),
        5,
        "a destination's preview is what would enter it"
    );
    assert!(
        !scratch.path().join("out").exists(),
        "a preview writes nothing"
    );
}

#[test]
fn the_preview_command_prints_records() {
    let scratch = Scratch::new();
    let o = scratch.cli(&[
        "preview",
        "flows/demo-opportunities-to-lake.json",
        "--node",
        "name",
        "--limit",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let records = v["records"].as_array().unwrap();
    assert!(records.len() <= 3 && !records.is_empty());
    assert!(records[0]["ContactName"].is_string());
    assert!(
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "CloseDate" && f["type"] == "date")
    );
    let o = scratch.cli(&[
        "preview",
        "flows/demo-opportunities-to-lake.json",
        "--node",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no node `nope`"));
}

fn big_run_flow(folder: &str) -> Value {
    flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 50_000_000}),
            ),
            node(
                "mask",
                "transform.mask",
                json!({"fields": ["CreditCard"], "mode": "all"}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": folder, "format": "jsonl", "file_size_mb": 1}),
            ),
        ],
        &[("src", "mask"), ("mask", "out")],
    )
}

#[test]
fn a_cancelled_run_leaves_no_output() {
    cancelled_run_leaves_no_output(1);
}

#[test]
fn a_cancelled_run_with_its_transforms_in_lanes_leaves_no_output() {
    cancelled_run_leaves_no_output(3);
}

fn cancelled_run_leaves_no_output(lanes: usize) {
    let scratch = Scratch::new();
    let plan = plan(&scratch, &big_run_flow("out"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let record = rt.block_on(async {
        let mut opts = options(&scratch);
        opts.chain_lanes = lanes;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        opts.events = Some(tx);
        let cancel = opts.cancel.clone();
        let run = tokio::spawn(async move { engine::run(&plan, opts).await });
        // Cancel once the destination has finished some files.
        while let Some(event) = rx.recv().await {
            if let RunEvent::Node { node, figures } = event
                && node == "out"
                && figures.bytes_out > 3 * 1024 * 1024
            {
                cancel.cancel();
                break;
            }
        }
        run.await.unwrap()
    });
    assert_eq!(record.status, RunStatus::Canceled);
    assert!(record.records_processed > 0 && record.records_processed < 50_000_000);
    assert_eq!(record.records_written, 0);
    assert!(record.outputs.is_empty());
    assert!(
        files_under(&scratch.path().join("out")).is_empty(),
        "{:?}",
        files_under(&scratch.path().join("out"))
    );
}

#[test]
fn a_killed_run_leaves_no_partial_file_and_the_next_run_clears_its_staging() {
    let scratch = Scratch::new();
    let out = scratch.path().join("out");
    let path = scratch.flow("big.json", &big_run_flow("out"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", path.to_str().unwrap()])
        .env("TRIBUTARY_HOME", scratch.home())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has staged a few files, with a bound on how long that may take.
    let started = std::time::Instant::now();
    while files_under(&out).len() < 4 {
        assert!(started.elapsed().as_secs() < 120, "the run staged nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = files_under(&out);
    assert!(!left.is_empty());
    assert!(
        left.iter().all(|f| f.starts_with(".tributary-staging/")),
        "only staged files are left: {left:?}"
    );

    let small = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Lead", "records": 10}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    let (code, _, err) = run_cli(&scratch, &small);
    assert_eq!(code, Some(0), "{err}");
    let after = files_under(&out);
    assert_eq!(
        after.len(),
        1,
        "the killed run's staging is gone: {after:?}"
    );
    assert!(!after[0].contains("staging"));
}

/// A source that sends the same wide batch again and again: 5 GB of records that exist only
/// while they flow.
mod stream {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use tributary::engine::{Demand, SourceOutput};
    use tributary::node::*;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    pub struct Repeat {
        pub batches: u64,
    }

    impl NodeKind for Repeat {
        const TYPE: &'static str = "source.test_repeat";
        const TITLE: &'static str = "Repeat";
        const DESCRIPTION: &'static str = "test";
        const ICON: &'static str = "";
    }

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]))
    }

    impl NodeConfig for Repeat {
        fn output_schema(
            &self,
            _: Option<&SchemaRef>,
            _: &PlanContext,
        ) -> Result<SchemaRef, Vec<ConfigProblem>> {
            Ok(schema())
        }
        fn summary(&self) -> String {
            String::new()
        }
        fn build(&self, _: &BuildContext) -> Result<Runtime, NodeError> {
            Ok(Runtime::Source(Box::new(RepeatRun {
                batches: self.batches,
            })))
        }
    }

    struct RepeatRun {
        batches: u64,
    }

    impl Source for RepeatRun {
        fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
            Box::pin(async move {
                let rows = 8192;
                let text = "x".repeat(600);
                let batch = RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(0..rows)),
                        Arc::new(StringArray::from(vec![text.as_str(); rows as usize])),
                    ],
                )?;
                let bytes = (rows as u64) * 608;
                for _ in 0..self.batches {
                    out.add_bytes(bytes);
                    if out.send(batch.clone()).await? == Demand::Enough {
                        break;
                    }
                }
                Ok(())
            })
        }
    }

    /// Counts what arrives and keeps nothing.
    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    pub struct Discard {}

    impl NodeKind for Discard {
        const TYPE: &'static str = "destination.test_discard";
        const TITLE: &'static str = "Discard";
        const DESCRIPTION: &'static str = "test";
        const ICON: &'static str = "";
    }

    impl NodeConfig for Discard {
        fn output_schema(
            &self,
            input: Option<&SchemaRef>,
            _: &PlanContext,
        ) -> Result<SchemaRef, Vec<ConfigProblem>> {
            Ok(input.unwrap().clone())
        }
        fn summary(&self) -> String {
            String::new()
        }
        fn build(&self, _: &BuildContext) -> Result<Runtime, NodeError> {
            Ok(Runtime::Destination(Box::new(DiscardRun { records: 0 })))
        }
    }

    struct DiscardRun {
        records: u64,
    }

    impl Destination for DiscardRun {
        fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
            self.records += batch.num_rows() as u64;
            Ok(())
        }
        fn finish(&mut self) -> Result<(), NodeError> {
            Ok(())
        }
        fn commit(self: Box<Self>) -> Result<Published, NodeError> {
            Ok(vec![OutputLocation {
                location: "discarded".into(),
                records: self.records,
                bytes: 0,
            }]
            .into())
        }
        fn abort(self: Box<Self>) {}
        fn bytes_written(&self) -> u64 {
            0
        }
    }
}

#[test]
fn a_five_gigabyte_stream_runs_with_a_bounded_number_of_batches_in_flight() {
    use tributary::flow::PlannedNode;
    use tributary::node::NodeType;
    let scratch = Scratch::new();
    let batches = 1100; // 1,100 × 8,192 records × 608 bytes ≈ 5.5 GB
    let leak = |t: NodeType| -> &'static NodeType { Box::leak(Box::new(t)) };
    let filter = tributary::registry::find("transform.filter").unwrap();
    let schema = stream::schema();
    let plan = Plan {
        flow_name: "stream".into(),
        trigger: Default::default(),
        error_threshold: 50,
        context: tributary::node::PlanContext {
            base_dir: scratch.path().to_path_buf(),
            dirs: Dirs::under(&scratch.home()),
            discovery: Default::default(),
        },
        nodes: vec![
            PlannedNode { id: "src".into(), name: "src".into(), input_schema: None, kind: leak(NodeType::of::<stream::Repeat>()), config: Arc::new(stream::Repeat { batches }), inputs: vec![], outputs: vec![1], schema: schema.clone() },
            PlannedNode {
                id: "keep".into(),
                name: "keep".into(),
                input_schema: Some(schema.clone()),
                kind: filter,
                config: filter.parse(json!({"conditions": [{"field": "n", "operator": "greater_than_or_equal_to", "value": 0}]})).unwrap(),
                inputs: vec![0],
                outputs: vec![2],
                schema: schema.clone(),
            },
            PlannedNode { id: "sink".into(), name: "sink".into(), input_schema: Some(schema.clone()), kind: leak(NodeType::of::<stream::Discard>()), config: Arc::new(stream::Discard {}), inputs: vec![1], outputs: vec![], schema },
        ],
    };
    let opts = options(&scratch);
    let capacity = opts.channel_capacity;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let record = rt.block_on(engine::run(&plan, opts));
    assert_eq!(record.status, RunStatus::Successful, "{:?}", record.error);
    assert_eq!(record.records_written, batches * 8192);
    assert!(record.bytes_processed > 5 * 1024 * 1024 * 1024);
    // Two channels, each holding at most `capacity` batches, plus one waiting to be sent and,
    // for an instant, one taken but not yet counted off by the receiver on another thread.
    assert!(
        record.peak_batches_in_flight <= 2 * (capacity + 2),
        "peak {} batches in flight",
        record.peak_batches_in_flight
    );
    assert!(record.peak_batches_in_flight >= 1);
}

#[test]
fn a_node_can_be_previewed_before_the_flow_is_finished() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Contact", "records": 50}),
            ),
            node("hash", "transform.hash", json!({"fields": ["Email"]})),
            node(
                "broken",
                "transform.mask",
                json!({"fields": ["Nope"], "mode": "all"}),
            ),
        ],
        &[("src", "hash"), ("src", "broken")],
    );
    let path = scratch.flow("unfinished.json", &f);
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "the flow as a whole is not ready");
    let o = scratch.cli(&[
        "preview",
        path.to_str().unwrap(),
        "--node",
        "hash",
        "--limit",
        "5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 5);
    let o = scratch.cli(&["preview", path.to_str().unwrap(), "--node", "broken"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no field `Nope`"), "{}", stderr(&o));
}

#[test]
fn the_run_history_lists_every_run_newest_first_and_shows_one() {
    let scratch = Scratch::new();
    let good = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Account", "records": 20}),
            ),
            node("out", "destination.local", json!({"folder": "out"})),
        ],
        &[("src", "out")],
    );
    let mut bad = good.clone();
    bad["name"] = json!("Checked accounts");
    bad["nodes"][1] = node(
        "check",
        "transform.validate",
        json!({"rules": [{"field": "Name", "check": "numeric", "action": "terminate_flow"}]}),
    );
    bad["nodes"].as_array_mut().unwrap().push(node(
        "out",
        "destination.local",
        json!({"folder": "out"}),
    ));
    bad["edges"] = json!([{"from": "src", "to": "check"}, {"from": "check", "to": "out"}]);
    let mut ids = Vec::new();
    for f in [&good, &bad, &good] {
        let (_, record, err) = run_cli(&scratch, f);
        ids.push(
            record["execution_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{err}"))
                .to_string(),
        );
    }
    let runs = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["runs", "--json"];
        all.extend(args);
        let o = scratch.cli(&all);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str::<Vec<Value>>(&stdout(&o)).unwrap()
    };
    let listed = runs(&[]);
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|r| r["execution_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, [&ids[2], &ids[1], &ids[0]], "newest first");
    assert_eq!(listed[0]["records_written"], 20);
    assert_eq!(listed[0]["trigger"], "manual");
    assert_eq!(listed[1]["status"], "Error");
    assert!(
        listed[1]["error"].as_str().unwrap().contains("`check`"),
        "{}",
        listed[1]
    );
    // By flow (a file or a name), status and age.
    let path = scratch.flow("good.json", &good);
    assert_eq!(runs(&[path.to_str().unwrap()]).len(), 2);
    assert_eq!(runs(&["Checked accounts"]).len(), 1);
    assert_eq!(runs(&["--status", "failed"]).len(), 1);
    assert_eq!(runs(&["--since", "1h"]).len(), 3);
    assert_eq!(runs(&["--since", "2099-01-01T00:00:00Z"]).len(), 0);

    // One run's record, by the start of its id.
    let o = scratch.cli(&["runs", "show", &ids[1][..24]]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("failed the rule `Name numeric`"),
        "{}",
        stdout(&o)
    );
    let o = scratch.cli(&["runs", "show", "0000"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no run 0000"), "{}", stderr(&o));

    // The history is an index of the run records: lost, it is made again from them.
    scratch.lose_run_index();
    assert_eq!(runs(&[]).len(), 3);
    // A text listing, with the failure's reason under it.
    let o = scratch.cli(&["runs"]);
    let text = stdout(&o);
    assert!(
        text.contains("failed") && text.contains("successful"),
        "{text}"
    );
    assert!(text.contains("in node `check`"), "{text}");
}

#[test]
fn old_runs_are_pruned_by_age_and_by_count_per_flow_folders_and_all() {
    let scratch = Scratch::new();
    let demo = |name: &str| {
        let mut f = flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    json!({"object": "Account", "records": 5}),
                ),
                node("out", "destination.local", json!({"folder": "out"})),
            ],
            &[("src", "out")],
        );
        f["name"] = json!(name);
        f
    };
    let mut ids = Vec::new();
    for name in ["A", "A", "A", "B", "A"] {
        let (_, record, err) = run_cli(&scratch, &demo(name));
        ids.push(
            record["execution_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{err}"))
                .to_string(),
        );
    }
    let runs_dir = scratch.home().join("data/runs");
    let listed = |scratch: &Scratch| -> Vec<String> {
        let o = scratch.cli(&["runs", "--json"]);
        serde_json::from_str::<Vec<Value>>(&stdout(&o))
            .unwrap()
            .iter()
            .map(|r| r["execution_id"].as_str().unwrap().to_string())
            .collect()
    };
    // The first run of A started long ago, as its record says.
    let record = runs_dir.join(&ids[0]).join("run.json");
    let text = std::fs::read_to_string(&record).unwrap();
    let mut old: Value = serde_json::from_str(&text).unwrap();
    old["started_at"] = json!("2020-01-01T00:00:00Z");
    std::fs::write(&record, old.to_string()).unwrap();
    scratch.lose_run_index();

    let o = scratch.cli(&["runs", "prune", "--keep-days", "30"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed 1 run"), "{}", stdout(&o));
    assert!(!runs_dir.join(&ids[0]).exists());
    assert_eq!(listed(&scratch).len(), 4);

    // Two of each flow at most: A's oldest left goes; B's only run stays.
    let o = scratch.cli(&["runs", "prune", "--keep-runs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!runs_dir.join(&ids[1]).exists());
    let mut kept = listed(&scratch);
    kept.sort();
    let mut expected = vec![ids[2].clone(), ids[3].clone(), ids[4].clone()];
    expected.sort();
    assert_eq!(kept, expected);
    for id in &expected {
        assert!(runs_dir.join(id).join("run.json").exists());
    }
    // Nothing to keep said: refused.
    let o = scratch.cli(&["runs", "prune"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Two files of different fields through a union into one output: every record of both,
/// each with the fields it has (the others empty) and the input it came from; a preview
/// of the union shows both too. Types that differ between inputs are refused by name.
#[test]
fn a_union_puts_the_records_of_several_inputs_into_one_output() {
    let scratch = Scratch::new();
    scratch.write("ads.csv", "day,clicks\n2026-11-01,3\n2026-11-02,4\n");
    let meta: String = (0..500)
        .map(|i| {
            format!(
                "{{\"day\": \"2026-11-{:02}\", \"spend\": {i}.5}}\n",
                i % 28 + 1
            )
        })
        .collect();
    scratch.write("meta.jsonl", &meta);
    let union = |input_field: Value| {
        let mut f = flow(
            vec![
                node("ads", "source.file", json!({"path": "ads.csv"})),
                node(
                    "meta",
                    "source.file",
                    json!({"path": "meta.jsonl", "schema": {"day": "date"}}),
                ),
                node("all", "transform.union", input_field),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl"}),
                ),
            ],
            &[("ads", "all"), ("meta", "all"), ("all", "out")],
        );
        f["nodes"][1]["label"] = json!("Meta Ads");
        f
    };
    let (code, record, err) = run_cli(&scratch, &union(json!({"input_field": "channel"})));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_written"], 502);
    let written = jsonl_rows(&scratch, "out");
    assert_eq!(written.len(), 502);
    let from = |channel: &str| {
        written
            .iter()
            .filter(|(_, r)| r["channel"] == channel)
            .map(|(_, r)| r.clone())
            .collect::<Vec<_>>()
    };
    let (ads, meta) = (from("ads"), from("Meta Ads"));
    assert_eq!((ads.len(), meta.len()), (2, 500), "named by label, else id");
    assert!(
        ads.iter()
            .all(|r| r["spend"].is_null() && r["clicks"].is_i64())
    );
    assert!(
        meta.iter()
            .all(|r| r["clicks"].is_null() && r["spend"].is_f64())
    );

    let path = scratch.flow("flow.json", &union(json!({})));
    let preview = scratch.cli(&[
        "preview",
        path.to_str().unwrap(),
        "--node",
        "all",
        "--limit",
        "600",
        "--json",
    ]);
    let shown: Value = serde_json::from_str(&stdout(&preview)).unwrap();
    assert_eq!(shown["records"].as_array().unwrap().len(), 502);

    // One input, through a transform: still named.
    let single = flow(
        vec![
            node("ads", "source.file", json!({"path": "ads.csv"})),
            node(
                "keep",
                "transform.map",
                json!({"fields": [{"source": "clicks"}]}),
            ),
            node("all", "transform.union", json!({"input_field": "channel"})),
            node(
                "out2",
                "destination.local",
                json!({"folder": "out2", "format": "jsonl"}),
            ),
        ],
        &[("ads", "keep"), ("keep", "all"), ("all", "out2")],
    );
    let (code, _, err) = run_cli(&scratch, &single);
    assert_eq!(code, Some(0), "{err}");
    let written = jsonl_rows(&scratch, "out2");
    assert_eq!(written.len(), 2);
    assert!(
        written.iter().all(|(_, r)| r["channel"] == "keep"),
        "{written:?}"
    );

    // `clicks` as text in one input and a number in the other.
    scratch.write(
        "meta.jsonl",
        "{\"day\": \"2026-11-01\", \"clicks\": \"many\"}\n",
    );
    let path = scratch.flow("flow.json", &union(json!({})));
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        text.contains("`clicks` is integer in `ads` but string in `Meta Ads`"),
        "{text}"
    );
}
