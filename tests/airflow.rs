//! `tributary export airflow` against Apache Airflow itself: Airflow 3 from PyPI, in a
//! virtualenv of its own that `scripts/test.sh` makes and names in `TRIBUTARY_TEST_AIRFLOW`
//! (its `bin` folder). The DAG files must import without errors, carry each flow's
//! schedule as Airflow's own timetable computes it, and run the flow with `airflow dags
//! test`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::s3::{
    bucket, doubling_flow, keys, lines_under, open_uploads, point_at, put, server, tributary_s3,
};
use common::{Scratch, leads_flow, stderr, stdout};
use serde_json::{Value, json};

fn airflow_bin() -> PathBuf {
    PathBuf::from(std::env::var("TRIBUTARY_TEST_AIRFLOW").expect(
        "TRIBUTARY_TEST_AIRFLOW names the bin folder of a virtualenv with apache-airflow: run scripts/test.sh",
    ))
}

/// An Airflow home of the test's own, its database made.
fn airflow_home(scratch: &Scratch) -> PathBuf {
    let home = scratch.path().join("airflow");
    std::fs::create_dir_all(home.join("dags")).unwrap();
    let out = airflow(&home, &["db", "migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    home
}

fn airflow(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(airflow_bin().join("airflow"))
        .args(args)
        .env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

/// What Airflow makes of the DAG files in `folder` (tests/support/airflow_dags.py).
fn dag_facts(folder: &Path, after: &str, count: usize) -> Value {
    let out = Command::new(airflow_bin().join("python"))
        .arg("tests/support/airflow_dags.py")
        .arg(folder)
        .arg(after)
        .arg(count.to_string())
        .arg(folder.with_file_name("dags.json"))
        .env("AIRFLOW_HOME", folder.with_file_name("airflow-home"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = std::fs::read_to_string(folder.with_file_name("dags.json")).unwrap();
    serde_json::from_str(&report).unwrap()
}

/// Tributary's own next run times of a flow, as UTC instants.
fn tributary_next(scratch: &Scratch, path: &Path, from: &str, count: usize) -> Vec<String> {
    let out = scratch.cli(&[
        "schedule",
        "next",
        path.to_str().unwrap(),
        "--from",
        from,
        "--count",
        &count.to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            chrono::DateTime::parse_from_rfc3339(l)
                .unwrap()
                .to_utc()
                .to_rfc3339()
        })
        .collect()
}

#[test]
fn dags_import_in_airflow_and_keep_each_flows_schedule() {
    let scratch = Scratch::new();
    let berlin = leads_flow(
        &scratch,
        "berlin.json",
        "Daily Sales (EU)",
        json!({"type": "schedule", "expression": "cron(30 6 ? * MON-FRI *)",
               "time_zone": "Europe/Berlin", "end": "2027-06-30T00:00:00Z"}),
        json!({"retries": 3, "retry_after_seconds": 120, "deactivate_after": 5}),
    );
    let new_york = leads_flow(
        &scratch,
        "ny.json",
        "Twice a month",
        json!({"type": "schedule", "expression": "cron(0 9 1,15 * ? *)",
               "time_zone": "America/New_York"}),
        Value::Null,
    );
    let quarter = leads_flow(
        &scratch,
        "quarter.json",
        "Every quarter hour",
        json!({"type": "schedule", "expression": "rate(15 minutes)",
               "start": "2026-12-01T08:00:00Z", "pull_mode": "complete"}),
        Value::Null,
    );
    let by_hand = leads_flow(
        &scratch,
        "hand.json",
        "By hand",
        json!({"type": "on_demand"}),
        Value::Null,
    );
    let dags = scratch.path().join("dags");
    let out = scratch.cli(&[
        "export",
        "airflow",
        berlin.to_str().unwrap(),
        new_york.to_str().unwrap(),
        quarter.to_str().unwrap(),
        by_hand.to_str().unwrap(),
        "-o",
        dags.to_str().unwrap(),
        "--param",
        "region=it's {{ eu }}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the DAG tributary_daily_sales_eu"),
        "{}",
        stdout(&out)
    );
    // Across Europe's change to summer time (28 March 2027) and New York's (14 March).
    let from = "2027-03-10T00:00:00Z";
    let facts = dag_facts(&dags, from, 6);
    assert_eq!(facts["errors"], json!({}), "{facts:#}");
    let dag = |id: &str| facts["dags"][id].clone();
    assert_eq!(facts["dags"].as_object().unwrap().len(), 4, "{facts:#}");

    let eu = dag("tributary_daily_sales_eu");
    assert_eq!(eu["timetable"], "CronTriggerTimetable");
    assert_eq!(eu["cron"], "30 6 * * 1-5");
    assert_eq!(eu["timezone"], "Europe/Berlin");
    assert_eq!(eu["end"], "2027-06-30T00:00:00+00:00");
    assert_eq!(
        (eu["retries"].clone(), eu["retry_delay_seconds"].clone()),
        (json!(3), json!(120.0))
    );
    assert_eq!(eu["retry_exponential_backoff"], true);
    assert_eq!(eu["max_consecutive_failed_dag_runs"], 5);
    assert_eq!(
        (eu["catchup"].clone(), eu["max_active_runs"].clone()),
        (json!(false), json!(1))
    );
    // Airflow's scheduler and Tributary's agree on every run time.
    for (id, path) in [
        ("tributary_daily_sales_eu", &berlin),
        ("tributary_twice_a_month", &new_york),
    ] {
        let airflow: Vec<String> = dag(id)["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
                    .unwrap()
                    .to_utc()
                    .to_rfc3339()
            })
            .collect();
        assert_eq!(airflow, tributary_next(&scratch, path, from, 6), "{id}");
    }
    assert_eq!(dag("tributary_twice_a_month")["cron"], "0 9 1,15 * *");

    let quarter_dag = dag("tributary_every_quarter_hour");
    assert_eq!(quarter_dag["timetable"], "DeltaTriggerTimetable");
    assert_eq!(quarter_dag["every_seconds"], 900.0);
    assert_eq!(quarter_dag["start"], "2026-12-01T08:00:00+00:00");
    let command = quarter_dag["bash_command"].as_str().unwrap();
    assert!(
        command.ends_with(&format!(
            "tributary run {} --param 'region=it'\\''s {{{{ eu }}}}' --full{{% endraw %}}",
            quarter.display()
        )),
        "a complete pull reads everything; the braces stay text: {command}"
    );
    assert_eq!(dag("tributary_by_hand")["timetable"], "NullTimetable");
}

#[test]
fn flows_airflow_cannot_run_are_refused_and_nothing_is_written() {
    let scratch = Scratch::new();
    let event = leads_flow(
        &scratch,
        "event.json",
        "On files",
        json!({"type": "event", "source": "file", "folder": "in"}),
        Value::Null,
    );
    let last_day = leads_flow(
        &scratch,
        "last.json",
        "Month end",
        json!({"type": "schedule", "expression": "cron(0 18 L * ? *)"}),
        Value::Null,
    );
    let twin = leads_flow(
        &scratch,
        "twin.json",
        "Month end",
        json!({"type": "on_demand"}),
        Value::Null,
    );
    let dags = scratch.path().join("dags");
    let out = scratch.cli(&[
        "export",
        "airflow",
        event.to_str().unwrap(),
        last_day.to_str().unwrap(),
        twin.to_str().unwrap(),
        "-o",
        dags.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("event.json: Airflow cannot run this flow: it runs on an event"),
        "{said}"
    );
    assert!(said.contains("last.json: Airflow cannot run this flow: its schedule `cron(0 18 L * ? *)` cannot be said to Airflow: the day rule `L (the last day of the month)` has no standard cron form"), "{said}");
    assert!(said.contains("nothing written"), "{said}");
    assert!(!dags.exists());
    let out = scratch.cli(&[
        "export",
        "airflow",
        twin.to_str().unwrap(),
        "--operator",
        "kubernetes",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--operator kubernetes needs --image"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dag_runs_its_flow_with_airflow_dags_test() {
    let scratch = Scratch::new();
    let path = leads_flow(
        &scratch,
        "nightly.json",
        "Nightly leads",
        json!({"type": "schedule", "expression": "cron(0 2 * * ? *)"}),
        Value::Null,
    );
    let home = airflow_home(&scratch);
    let out = scratch.cli(&[
        "export",
        "airflow",
        path.to_str().unwrap(),
        "-o",
        home.join("dags").to_str().unwrap(),
        "--tributary",
        env!("CARGO_BIN_EXE_tributary"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The worker's environment carries Tributary's: its home and, in the test script's
    // second pass, the state database the Scratch set up.
    let run = Command::new(airflow_bin().join("airflow"))
        .args(["dags", "test", "tributary_nightly_leads"])
        .env("AIRFLOW_HOME", &home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let said = stdout(&run) + stderr(&run).as_str();
    assert!(run.status.success(), "{said}");
    assert!(said.contains("state=success"), "{said}");
    let runs = scratch.cli(&["runs", "--json"]);
    let runs: Vec<Value> = serde_json::from_str(&stdout(&runs)).unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["flow"], "Nightly leads");
    assert_eq!(runs[0]["status"], "Successful");
    assert_eq!(runs[0]["records_written"], 10);
    let written = common::files_under(&scratch.path().join("out"));
    assert_eq!(written.len(), 1, "{written:?}");
}

#[test]
fn a_kubernetes_dag_carries_the_flow_to_a_pod_of_the_image() {
    let scratch = Scratch::new();
    let path = leads_flow(
        &scratch,
        "hourly.json",
        "Hourly leads",
        json!({"type": "schedule", "expression": "rate(1 hours)"}),
        Value::Null,
    );
    let dags = scratch.path().join("dags");
    let out = scratch.cli(&[
        "export",
        "airflow",
        path.to_str().unwrap(),
        "-o",
        dags.to_str().unwrap(),
        "--operator",
        "kubernetes",
        "--image",
        "registry.example.com/tributary:1.4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dags.join("tributary_hourly_leads.py");
    // Valid Python (the cluster's provider is not installed here to import it).
    let compiled = Command::new(airflow_bin().join("python"))
        .args(["-m", "py_compile"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(compiled.status.success(), "{}", stderr(&compiled));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("KubernetesPodOperator("), "{text}");
    assert!(
        text.contains("image=\"registry.example.com/tributary:1.4\""),
        "{text}"
    );
    assert!(
        text.contains("schedule=datetime.timedelta(hours=1)"),
        "{text}"
    );
    // The flow itself rides in the pod's environment, written to a file before the run.
    let flow: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let carried = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("env_vars={\"TRIBUTARY_FLOW\": "))
        .and_then(|l| l.strip_suffix("},"))
        .expect("the flow in env_vars");
    let carried: String = serde_json::from_str(carried).unwrap();
    let carried: Value = serde_json::from_str(&carried).unwrap();
    assert_eq!(carried["name"], flow["name"]);
    assert_eq!(carried["nodes"], flow["nodes"]);
    assert!(
        text.contains("printf '%s' \\\"$TRIBUTARY_FLOW\\\" > /tmp/flow.json && exec tributary run /tmp/flow.json"),
        "{text}"
    );
}

/// A backfill DAG in four parts (`--partitions 4`) of an S3 → formula → S3 flow, run by
/// Airflow against moto's S3 server (and, in the test script's second pass, with the state
/// in PostgreSQL): the mapped parts stage, the commit publishes exactly what one whole run
/// writes; when a part fails, the abort task removes what the others staged — no object,
/// no open upload.
#[test]
fn a_backfill_dag_commits_its_parts_or_aborts_them_all() {
    let from = bucket("airflow-orders");
    let to = bucket("airflow-lake");
    for f in 0..8 {
        let mut text = String::from("id,amount\n");
        for r in 0..40 {
            text += &format!("{},{r}.5\n", f * 100 + r);
        }
        put(&from, &format!("orders/{f}.csv"), text);
    }
    let scratch = Scratch::new();
    let lake = |prefix: &str| {
        let mut f = doubling_flow(
            &from,
            "orders/",
            json!({"fail_on_first_error": true}),
            &to,
            prefix,
        );
        f["name"] = json!("Orders history");
        // A failed part fails at once: no retries to wait for in the test.
        f["service"] = json!({"retries": 0});
        f
    };
    let path = scratch.flow("history.json", &lake("parts/"));
    let home = airflow_home(&scratch);
    let exported = scratch.cli(&[
        "export",
        "airflow",
        path.to_str().unwrap(),
        "-o",
        home.join("dags").to_str().unwrap(),
        "--partitions",
        "4",
        "--tributary",
        env!("CARGO_BIN_EXE_tributary"),
    ]);
    assert!(exported.status.success(), "{}", stderr(&exported));
    let dags_test = || {
        let mut command = Command::new(airflow_bin().join("airflow"));
        // The tasks run with Airflow's environment: the S3 server's address and keys.
        let s = server();
        point_at(&mut command, &scratch, s, &s.key_id, &s.secret);
        let run = command
            .args(["dags", "test", "tributary_orders_history_backfill"])
            .env("AIRFLOW_HOME", &home)
            .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .output()
            .unwrap();
        stdout(&run) + stderr(&run).as_str()
    };
    let lines = |prefix: &str| lines_under(&to, prefix);
    let said = dags_test();
    assert!(said.contains("state=success"), "{said}");
    let parts = lines("parts/");
    assert_eq!(parts.len(), 320, "{said}");
    let whole_flow = scratch.flow("whole.json", &lake("whole/"));
    let whole = tributary_s3(&scratch, server())
        .args(["run", whole_flow.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(parts, lines("whole/"), "exactly what one whole run writes");
    let runs = scratch.cli(&["runs", "--json"]);
    let runs: Vec<Value> = serde_json::from_str(&stdout(&runs)).unwrap();
    let committed: Vec<&Value> = runs
        .iter()
        .filter(|r| r["trigger"] == "partitioned: 4 parts, committed")
        .collect();
    assert_eq!(committed.len(), 1, "{runs:#?}");
    assert_eq!(committed[0]["records_written"], 320);
    assert_eq!(
        committed[0]["records_processed"], 320,
        "the parts' figures added up"
    );

    // One object that does not read: its part fails, the others' uploads are aborted.
    put(&from, "orders/5.csv", "id,amount\n1,\"unclosed\n");
    let before = keys(&to).len();
    let said = dags_test();
    assert!(said.contains("state=failed"), "{said}");
    assert_eq!(keys(&to).len(), before, "nothing published");
    assert_eq!(
        open_uploads(&to),
        0,
        "the abort removed what the parts staged"
    );
}
