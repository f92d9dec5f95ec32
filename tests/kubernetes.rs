//! `tributary export kubernetes`: the objects are checked against Kubernetes' own OpenAPI
//! schemas, strictly (no field Kubernetes does not know), with `kubernetes-validate` from
//! PyPI in the test virtualenv, and read back for what they say.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, leads_flow, stderr, stdout};
use serde_json::{Value, json};

fn validator() -> PathBuf {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON")
        .expect("TRIBUTARY_TEST_PYTHON names the test virtualenv's python: run scripts/test.sh");
    Path::new(&python).with_file_name("kubernetes-validate")
}

/// Validates YAML files against Kubernetes 1.33's schemas, strictly; what it said.
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(validator())
        .args(["--strict", "--kubernetes-version", "1.33.0"])
        .args(files)
        .output()
        .unwrap();
    (out.status.success(), stdout(&out) + stderr(&out).as_str())
}

fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn flows_become_objects_kubernetes_takes_strictly() {
    let scratch = Scratch::new();
    let berlin = leads_flow(
        &scratch,
        "berlin.json",
        "Daily Sales (EU)",
        json!({"type": "schedule", "expression": "cron(30 6 ? * MON-FRI *)",
               "time_zone": "Europe/Berlin", "pull_mode": "complete"}),
        json!({"retries": 3, "missed": "skip"}),
    );
    let six_hourly = leads_flow(
        &scratch,
        "six.json",
        "Six hourly",
        json!({"type": "schedule", "expression": "rate(6 hours)"}),
        Value::Null,
    );
    let by_hand = leads_flow(
        &scratch,
        "hand.json",
        "By hand",
        json!({"type": "on_demand"}),
        Value::Null,
    );
    let out_dir = scratch.path().join("k8s");
    let out = scratch.cli(&[
        "export",
        "kubernetes",
        berlin.to_str().unwrap(),
        six_hourly.to_str().unwrap(),
        by_hand.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--image",
        "registry.example.com/tributary:1.4",
        "--namespace",
        "data",
        "--secret",
        "tributary-runs",
        "--param",
        "region=eu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("note: `deactivate_after` is not kept"),
        "{said}"
    );
    assert!(
        said.contains("kubectl create -f tributary-by-hand-run.yaml"),
        "{said}"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "tributary-by-hand-run.yaml",
            "tributary-by-hand.yaml",
            "tributary-daily-sales-eu.yaml",
            "tributary-six-hourly.yaml"
        ]
    );
    // The validator needs a name where the Job has a prefix for one (`kubectl create`
    // makes it): checked under a name, otherwise as written.
    let run = out_dir.join("tributary-by-hand-run.yaml");
    let named = scratch.path().join("job-named.yaml");
    std::fs::write(
        &named,
        std::fs::read_to_string(&run).unwrap().replace(
            "generateName: tributary-by-hand-",
            "name: tributary-by-hand-1",
        ),
    )
    .unwrap();
    let mut checked: Vec<PathBuf> = files.iter().filter(|f| **f != run).cloned().collect();
    checked.push(named);
    let (valid, report) = validate(&checked);
    assert!(valid, "{report}");
    assert_eq!(report.matches("passed for resource").count(), 6, "{report}");

    let eu = objects(&out_dir.join("tributary-daily-sales-eu.yaml"));
    assert_eq!(eu[0]["kind"], "ConfigMap");
    let carried: Value =
        serde_json::from_str(eu[0]["data"]["flow.json"].as_str().unwrap()).unwrap();
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&berlin).unwrap()).unwrap();
    assert_eq!(carried["nodes"], original["nodes"]);
    assert_eq!(carried["trigger"], original["trigger"]);
    let cron = &eu[1];
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["metadata"]["namespace"], "data");
    assert_eq!(cron["spec"]["schedule"], "30 6 * * 1-5");
    assert_eq!(cron["spec"]["timeZone"], "Europe/Berlin");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(
        cron["spec"]["startingDeadlineSeconds"], 60,
        "missed runs skipped"
    );
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 3);
    let container = &job["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/tributary:1.4");
    assert_eq!(
        container["args"],
        json!([
            "run",
            "/etc/tributary/flow.json",
            "--param",
            "region=eu",
            "--full"
        ])
    );
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"],
        "tributary-runs"
    );
    assert_eq!(
        job["template"]["spec"]["volumes"][0]["configMap"]["name"],
        "tributary-daily-sales-eu-flow"
    );
    let six = objects(&out_dir.join("tributary-six-hourly.yaml"));
    assert_eq!(six[1]["spec"]["schedule"], "0 */6 * * *");
    assert!(six[1]["spec"].get("timeZone").is_none());
    assert!(
        six[1]["spec"].get("startingDeadlineSeconds").is_none(),
        "one run for missed times"
    );
    let job = objects(&run);
    assert_eq!(job[0]["kind"], "Job");
    assert_eq!(job[0]["metadata"]["generateName"], "tributary-by-hand-");
}

#[test]
fn the_validator_refuses_what_kubernetes_would() {
    // What the test above leans on: a field Kubernetes does not know fails strictly.
    let scratch = Scratch::new();
    let wrong = scratch.write(
        "wrong.yaml",
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: x\nspec:\n  schedule: '* * * * *'\n  concurrency: Forbid\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: run, image: i}]\n",
    );
    let (valid, report) = validate(&[wrong]);
    assert!(!valid, "{report}");
    assert!(report.contains("concurrency"), "{report}");
}

#[test]
fn flows_kubernetes_cannot_run_are_refused_and_nothing_is_written() {
    let scratch = Scratch::new();
    let event = leads_flow(
        &scratch,
        "event.json",
        "On files",
        json!({"type": "event", "source": "file", "folder": "in"}),
        Value::Null,
    );
    let odd = leads_flow(
        &scratch,
        "odd.json",
        "Every seven minutes",
        json!({"type": "schedule", "expression": "rate(7 minutes)"}),
        Value::Null,
    );
    let out_dir = scratch.path().join("k8s");
    let out = scratch.cli(&[
        "export",
        "kubernetes",
        event.to_str().unwrap(),
        odd.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--image",
        "i",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.contains("event.json: Kubernetes cannot run this flow: it runs on an event"),
        "{said}"
    );
    assert!(said.contains("odd.json: Kubernetes cannot run this flow: its schedule `rate(7 minutes)` has no cron form"), "{said}");
    assert!(!out_dir.exists());
}

/// The repository's Dockerfile puts the binary on a slim Debian with nothing but the C
/// library: the binary must need nothing else to run flows.
#[test]
fn the_binary_needs_only_the_c_library() {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_tributary"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let libraries: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    for library in &libraries {
        assert!(
            [
                "linux-vdso",
                "libgcc_s",
                "libm.",
                "libc.",
                "/lib64/ld-linux",
                "ld-linux"
            ]
            .iter()
            .any(|ok| library.contains(ok)),
            "{library} would be missing from the image: {libraries:?}"
        );
    }
}

/// A backfill: an Indexed Job whose pods each run their part, then a commit Job and an
/// abort Job. Beyond the schemas, the pods' commands are run here as Kubernetes would run
/// them (the completion index put in for `$(TRIBUTARY_PART)`, the ConfigMap's flow file
/// at its mount path's name), and the commit publishes what one whole run writes.
#[test]
fn a_backfill_is_an_indexed_job_of_parts_and_a_commit_job_that_work_together() {
    let scratch = Scratch::new();
    let flow = leads_flow(
        &scratch,
        "leads.json",
        "Lead backfill",
        json!({"type": "schedule", "expression": "rate(1 hours)"}),
        json!({"retries": 2}),
    );
    let published = scratch.path().join("published");
    let out_dir = scratch.path().join("k8s");
    let out = scratch.cli(&[
        "export",
        "kubernetes",
        flow.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--image",
        "registry.example.com/tributary:1.4",
        "--partitions",
        "4",
        "--run-id",
        "bf-2027",
        "--param",
        &format!("out={}", published.display()),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("kubectl apply -f tributary-lead-backfill-backfill.yaml"),
        "{said}"
    );
    assert!(said.contains("TRIBUTARY_STATE_URL"), "{said}");
    let file = |suffix: &str| out_dir.join(format!("tributary-lead-backfill-{suffix}.yaml"));
    let files = [file("backfill"), file("commit"), file("abort")];
    let (valid, report) = validate(&files);
    assert!(valid, "{report}");
    assert_eq!(report.matches("passed for resource").count(), 4, "{report}");

    let backfill = objects(&files[0]);
    assert_eq!(backfill[0]["kind"], "ConfigMap");
    let parts = &backfill[1];
    assert_eq!(parts["kind"], "Job");
    assert_eq!(parts["metadata"]["name"], "tributary-lead-backfill-parts");
    let spec = &parts["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 4);
    assert_eq!(spec["backoffLimitPerIndex"], 2);
    assert_eq!(spec["maxFailedIndexes"], 0);
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(
        container["env"][1],
        json!({"name": "TRIBUTARY_PART", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
    );
    assert_eq!(
        container["envFrom"][0]["secretRef"]["optional"], false,
        "no part runs without the shared state"
    );
    let commit = &objects(&files[1])[0];
    assert_eq!(commit["metadata"]["name"], "tributary-lead-backfill-commit");

    // The pods' commands, as the cluster would run them.
    let flow_dir = scratch.path().join("etc");
    std::fs::create_dir_all(&flow_dir).unwrap();
    let flow_file = flow_dir.join("flow.json");
    std::fs::write(
        &flow_file,
        backfill[0]["data"]["flow.json"].as_str().unwrap(),
    )
    .unwrap();
    let args_of = |container: &Value, index: Option<u32>| -> Vec<String> {
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let a = a.as_str().unwrap();
                match (a, index) {
                    ("/etc/tributary/flow.json", _) => flow_file.display().to_string(),
                    ("$(TRIBUTARY_PART)", Some(i)) => i.to_string(),
                    _ => a.to_string(),
                }
            })
            .collect()
    };
    for i in 0..4 {
        let args = args_of(container, Some(i));
        assert!(args.contains(&"--stage-only".to_string()), "{args:?}");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let part = scratch.cli(&args);
        assert!(part.status.success(), "part {i}: {}", stderr(&part));
    }
    assert!(
        common::files_under(&published)
            .iter()
            .all(|f| f.contains(".tributary-staging")),
        "nothing published before the commit"
    );
    let args = args_of(&commit["spec"]["template"]["spec"]["containers"][0], None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let committed = scratch.cli(&args);
    assert!(committed.status.success(), "{}", stderr(&committed));
    assert!(
        stdout(&committed).contains(
            "run bf-2027 of \"Lead backfill\": published its 4 parts at once — 10 records written"
        ),
        "{}",
        stdout(&committed)
    );
    let abort = &objects(&files[2])[0];
    assert_eq!(
        abort["spec"]["template"]["spec"]["containers"][0]["args"],
        json!([
            "abort",
            "/etc/tributary/flow.json",
            "--param",
            format!("out={}", published.display()),
            "--run-id",
            "bf-2027"
        ])
    );
}
