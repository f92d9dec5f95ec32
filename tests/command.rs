//! `transform.command`: records through a program of the user's as JSON lines, with small
//! Python programs that behave and that do not (exit non-zero, hang, write garbage, stop
//! reading, write before reading everything).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `records` numbered records (`id`, `amount`) through `program.py` into a JSON lines
/// folder; the program is written beside the flow.
fn through(scratch: &Scratch, program: &str, records: u64, config: Value) -> Value {
    scratch.write("program.py", program);
    let mut csv = String::from("id,amount\n");
    for i in 0..records {
        csv += &format!(
            "{i},{}\n",
            if i % 10 == 3 {
                String::new()
            } else {
                format!("{i}.5")
            }
        );
    }
    scratch.write("in.csv", &csv);
    let mut command = json!({"command": [python(), "program.py"], "fields": {"doubled": "number"}});
    command
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    flow(
        vec![
            node("src", "source.file", json!({"path": "in.csv"})),
            node("py", "transform.command", command),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "py"), ("py", "out")],
    )
}

fn run(scratch: &Scratch, flow: &Value) -> (Option<i32>, Value) {
    let path = scratch.flow("flow.json", flow);
    let out = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    (
        out.status.code(),
        serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null),
    )
}

fn written(scratch: &Scratch) -> Vec<Value> {
    let mut rows: Vec<Value> = jsonl_rows(scratch, "out")
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    rows.sort_by_key(|r| (r["id"].as_i64(), r["copy"].as_i64()));
    rows
}

fn failure(record: &Value) -> String {
    assert_eq!(record["status"], "Error", "{record}");
    assert_eq!(record["error"]["node"], "py", "{record}");
    record["error"]["message"].as_str().unwrap().to_string()
}

const ENRICH: &str = r#"
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("amount") is None:
        print("no amount for", r["id"], file=sys.stderr)
        continue
    r["doubled"] = r["amount"] * 2
    copies = 2 if r["id"] % 100 == 7 else 1
    for copy in range(copies):
        r["copy"] = copy
        print(json.dumps(r))
"#;

/// The program adds a field, drops the records without an amount and writes two records
/// for some: all of it reaches the destination, typed as the node says.
#[test]
fn a_program_adds_fields_drops_and_multiplies_records() {
    let scratch = Scratch::new();
    let f = through(&scratch, ENRICH, 1000, json!({}));
    let (code, record) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record}");
    let rows = written(&scratch);
    // 100 without an amount dropped; ids ending in 07 twice.
    assert_eq!(rows.len(), 1000 - 100 + 10);
    for r in &rows {
        let id = r["id"].as_i64().unwrap();
        assert_eq!(
            r["doubled"].as_f64().unwrap(),
            (id as f64 + 0.5) * 2.0,
            "{r}"
        );
        // `copy` is not a field the node names: left out.
        assert!(r.get("copy").is_none(), "{r}");
    }
    let figures = &record["nodes"][1];
    assert_eq!(figures["records_in"], 1000);
    assert_eq!(figures["records_out"], 910);
    // What the program did not write back is dropped, net of what it added.
    assert_eq!(record["records_dropped"], 90);
}

/// A program that answers every record at once and one that reads everything before it
/// writes anything both finish with 200,000 records: neither side waits on the other.
#[test]
fn programs_that_write_early_or_late_never_block_the_run() {
    let echo = r#"
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    r["doubled"] = 0
    sys.stdout.write(json.dumps(r) + "\n")
"#;
    let late = r#"
import json, sys
records = [json.loads(line) for line in sys.stdin]
for r in records:
    r["doubled"] = 1
    sys.stdout.write(json.dumps(r) + "\n")
"#;
    for program in [echo, late] {
        let scratch = Scratch::new();
        let f = through(&scratch, program, 200_000, json!({"timeout_seconds": 30}));
        let (code, record) = run(&scratch, &f);
        assert_eq!(code, Some(0), "{record}");
        assert_eq!(record["records_written"], 200_000);
    }
}

/// A program that fails: the run fails with its exit status and what it said last, and
/// nothing is written.
#[test]
fn a_program_that_exits_non_zero_fails_the_run_with_its_words() {
    let scratch = Scratch::new();
    let program = r#"
import sys
for i, line in enumerate(sys.stdin):
    if i == 1500:
        print("cannot reach the pricing service", file=sys.stderr)
        sys.exit(3)
    sys.stdout.write(line)
"#;
    let (code, record) = run(&scratch, &through(&scratch, program, 5000, json!({})));
    assert_eq!(code, Some(1));
    let message = failure(&record);
    assert!(message.contains("program.py`"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        message.contains("cannot reach the pricing service"),
        "{message}"
    );
    assert!(
        !scratch.path().join("out").exists() || files_under(&scratch.path().join("out")).is_empty()
    );
}

/// A program that hangs is stopped after `timeout_seconds`, and no program is left.
#[test]
fn a_program_that_hangs_is_stopped_at_its_timeout() {
    let scratch = Scratch::new();
    let program = r#"
import os, sys, time
open("pid", "w").write(str(os.getpid()))
time.sleep(3600)
"#;
    let started = Instant::now();
    let (code, record) = run(
        &scratch,
        &through(&scratch, program, 100, json!({"timeout_seconds": 2})),
    );
    assert_eq!(code, Some(1));
    assert!(started.elapsed() < Duration::from_secs(30));
    let message = failure(&record);
    assert!(
        message.contains("after its input ended, and did not end"),
        "{message}"
    );
    let pid = std::fs::read_to_string(scratch.path().join("pid")).unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z")),
        "the program was stopped"
    );
}

/// A program that neither reads nor writes while records wait for it fails the run at its
/// timeout, with a large input that cannot fit in the pipe.
#[test]
fn a_program_that_stops_reading_is_stopped_at_its_timeout() {
    let scratch = Scratch::new();
    let program = "import time\ntime.sleep(3600)\n";
    let (code, record) = run(
        &scratch,
        &through(&scratch, program, 200_000, json!({"timeout_seconds": 2})),
    );
    assert_eq!(code, Some(1));
    let message = failure(&record);
    assert!(
        message.contains("neither read records nor wrote any for 2 s"),
        "{message}"
    );
}

/// What is not a record is refused with its line; so is a value of the wrong type.
#[test]
fn garbage_is_refused_with_its_line() {
    let cases = [
        (
            "print('{\"id\": 1}')\nprint('Traceback (most recent call last):')\n",
            "line 2",
        ),
        ("print('{\"id\": 1, \"doubled\": \"lots\"}')\n", "line 1"),
        ("print('{\"id\": 1} {\"id\": 2}')\n", "more than one object"),
    ];
    for (program, said) in cases {
        let scratch = Scratch::new();
        let program = format!("import sys\nsys.stdin.read()\n{program}");
        let (code, record) = run(&scratch, &through(&scratch, &program, 10, json!({})));
        assert_eq!(code, Some(1), "{program}");
        let message = failure(&record);
        assert!(message.contains(said), "{said}: {message}");
        assert!(
            message.contains("is not a record of the flow's fields"),
            "{message}"
        );
    }
}

/// A program that is not there is said before any record is read; settings are checked
/// with the flow.
#[test]
fn a_missing_program_and_wrong_settings_are_said() {
    let scratch = Scratch::new();
    let mut f = through(&scratch, ENRICH, 10, json!({}));
    f["nodes"][1]["config"]["command"] = json!(["no-such-program-here", "x"]);
    let (code, record) = run(&scratch, &f);
    assert_eq!(code, Some(1));
    let message = failure(&record);
    assert!(
        message.contains("cannot start `no-such-program-here x`"),
        "{message}"
    );

    f["nodes"][1]["config"] =
        json!({"command": [], "fields": {"amount": "string"}, "timeout_seconds": 0});
    let path = scratch.flow("flow.json", &f);
    let out = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let said = said(&out);
    for expected in [
        "/nodes/1/config/command",
        "/nodes/1/config/fields/amount",
        "/nodes/1/config/timeout_seconds",
    ] {
        assert!(said.contains(expected), "{expected}: {said}");
    }
}
