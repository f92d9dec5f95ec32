//! Faults injected, not hoped for: kills at chosen instants of a commit, SIGTERM, closed
//! pipes, two runs of one flow at once. Each test states what the user is promised in the
//! README's "What Tributary guarantees".

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

/// A CSV of `n` records whose `part` takes 30 values: a run of [`partitioned_flow`] writes
/// 30 files, so its commit is 30 renames.
fn partitioned_input(scratch: &Scratch, n: usize) {
    let mut csv = String::from("id,part,amount\n");
    for i in 0..n {
        csv += &format!("{i},p{:02},{}.5\n", i % 30, i);
    }
    scratch.write("in.csv", &csv);
}

fn partitioned_flow(scratch: &Scratch) -> std::path::PathBuf {
    scratch.flow(
        "flow.json",
        &flow(
            vec![
                node("src", "source.file", json!({"path": "in.csv"})),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl", "execution_id_folder": true,
                           "partition_by": ["part"]}),
                ),
            ],
            &[("src", "out")],
        ),
    )
}

/// The ids written below `out`, by the run folder (execution id) they are in; staged files
/// are not counted.
fn ids_by_run(out: &Path) -> BTreeMap<String, Vec<u64>> {
    let mut runs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for file in files_under(out) {
        if file.starts_with(".tributary-staging") {
            continue;
        }
        let run = file.split('/').next().unwrap().to_string();
        let text = std::fs::read_to_string(out.join(&file)).unwrap();
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            runs.entry(run.clone())
                .or_default()
                .push(record["id"].as_u64().unwrap());
        }
    }
    for ids in runs.values_mut() {
        ids.sort_unstable();
    }
    runs
}

#[test]
fn a_kill_at_any_rename_of_a_commit_is_finished_by_the_next_run() {
    const RECORDS: usize = 600;
    let every: Vec<u64> = (0..RECORDS as u64).collect();
    // The commit moves 30 files; kills at the 1st to the 20th rename land before, inside
    // and at the end of it.
    for k in 1..=20 {
        let scratch = Scratch::new();
        partitioned_input(&scratch, RECORDS);
        let path = partitioned_flow(&scratch);
        let out = scratch.path().join("out");
        let killed = run_killed_at_rename(&scratch, &path, k);
        assert!(!killed.success(), "k={k}: the run was killed");
        // Killed inside the commit: the renames before the k-th published their files.
        let published = files_under(&out)
            .iter()
            .filter(|f| !f.starts_with(".tributary-staging"))
            .count();
        assert_eq!(published, k - 1, "k={k}");

        let next = scratch.cli(&["run", path.to_str().unwrap()]);
        assert!(next.status.success(), "k={k}: {}", stderr(&next));
        let runs = ids_by_run(&out);
        assert_eq!(
            runs.len(),
            2,
            "k={k}: the killed run's output was finished, and the next run wrote its own: {:?}",
            runs.keys()
        );
        for (run, ids) in &runs {
            assert_eq!(ids, &every, "k={k}: run {run} holds each record once");
        }
        // Not even an empty folder.
        let staging = out.join(".tributary-staging");
        assert!(
            !staging.exists(),
            "k={k}: nothing is left staged: {:?}",
            std::fs::read_dir(&staging).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        );
    }
}

#[test]
fn a_killed_commit_whose_staged_file_is_gone_is_removed_whole_folders_and_all() {
    let scratch = Scratch::new();
    partitioned_input(&scratch, 600);
    let path = partitioned_flow(&scratch);
    let out = scratch.path().join("out");
    assert!(!run_killed_at_rename(&scratch, &path, 6).success());
    // Five files are published; one still staged is lost (a disk clean-up, a person).
    let staged: Vec<String> = files_under(&out.join(".tributary-staging"))
        .into_iter()
        .filter(|f| f.ends_with(".jsonl"))
        .collect();
    assert_eq!(staged.len(), 25, "{staged:?}");
    std::fs::remove_file(out.join(".tributary-staging").join(&staged[0])).unwrap();
    let killed_run = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|name| !name.starts_with('.'))
        .expect("the killed run's folder");

    let next = scratch.cli(&["run", path.to_str().unwrap()]);
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(
        stderr(&next).contains("read again"),
        "the warning says so: {}",
        stderr(&next)
    );
    // The killed run's output is gone, with the folders its commit made; its records were
    // read again by the next run, which holds each once.
    assert!(
        !out.join(&killed_run).exists(),
        "{:?}",
        files_under(&out.join(&killed_run))
    );
    let runs = ids_by_run(&out);
    assert_eq!(runs.len(), 1, "{:?}", runs.keys());
    assert_eq!(
        runs.values().next().unwrap(),
        &(0..600).collect::<Vec<u64>>()
    );
    assert!(!out.join(".tributary-staging").exists());
}

/// A run that goes on until it is stopped: 50 million demo records, staged 1 MB a file.
fn long_flow(scratch: &Scratch) -> std::path::PathBuf {
    scratch.flow(
        "long.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    json!({"object": "Opportunity", "records": 50_000_000}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl", "file_size_mb": 1}),
                ),
            ],
            &[("src", "out")],
        ),
    )
}

/// Starts `tributary run FLOW --json` in the background.
fn spawn_run(scratch: &Scratch, flow: &Path) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", flow.to_str().unwrap(), "--json"])
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running(Some(child))
}

/// A run in the background, killed when the test ends however it ends, so a failed
/// assertion leaves no 50-million-record run behind. It owns the child, so a process that
/// was already waited for is never signalled (its pid may belong to another by then).
struct Running(Option<std::process::Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }

    /// Waits for the run to end on its own; what it printed.
    fn output(mut self) -> std::process::Output {
        self.0.take().expect("running").wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the run has staged something: it is past planning and reading.
fn wait_until_staging(out: &Path) {
    let started = std::time::Instant::now();
    while files_under(out).is_empty() {
        assert!(started.elapsed().as_secs() < 120, "the run staged nothing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A commit of a partitioned run publishes into the flow's destinations: it holds the
/// flow's lock like a run, so it never publishes while a run of the flow finishes its own
/// (or another commit the same).
#[test]
fn a_commit_is_refused_while_the_flow_runs_and_goes_through_after() {
    let scratch = Scratch::new();
    let long = long_flow(&scratch);
    let mut parts: Value = serde_json::from_str(&std::fs::read_to_string(&long).unwrap()).unwrap();
    parts["nodes"][0]["config"]["records"] = json!(2000);
    parts["nodes"][1]["config"]["folder"] = json!("parts");
    let parts = scratch.flow("parts.json", &parts);
    let parts = parts.to_str().unwrap();
    for i in ["0", "1"] {
        let staged = scratch.cli(&[
            "run",
            parts,
            "--partitions",
            "2",
            "--partition",
            i,
            "--run-id",
            "p-1",
            "--stage-only",
        ]);
        assert!(staged.status.success(), "{}", stderr(&staged));
    }
    let running = spawn_run(&scratch, &long);
    wait_until_staging(&scratch.path().join("out"));
    let refused = scratch.cli(&["commit", parts, "--run-id", "p-1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains(&format!("process {}", running.id())),
        "{}",
        stderr(&refused)
    );
    assert!(
        files_under(&scratch.path().join("parts"))
            .iter()
            .all(|f| f.contains(".tributary-staging"))
    );
    drop(running);
    let committed = scratch.cli(&["commit", parts, "--run-id", "p-1"]);
    assert!(committed.status.success(), "{}", stderr(&committed));
    assert!(
        stdout(&committed).contains("2000 records written"),
        "{}",
        stdout(&committed)
    );
}

/// Two workers, each with a home of its own, sharing one state database (the PostgreSQL
/// pass of the test script): a flow runs on one of them at a time, and both see one
/// history. With the state in a file of each home there is nothing shared to test.
#[test]
fn workers_sharing_the_state_run_a_flow_once_and_see_one_history() {
    let first_worker = Scratch::new();
    let shared = first_worker.home().join("config/state.json");
    if !shared.exists() {
        return;
    }
    let second_worker = Scratch::new();
    std::fs::copy(&shared, second_worker.home().join("config/state.json")).unwrap();
    let path = long_flow(&first_worker);
    let running = spawn_run(&first_worker, &path);
    wait_until_staging(&first_worker.path().join("out"));
    let elsewhere = second_worker.flow(
        "long.json",
        &std::fs::read_to_string(&path)
            .unwrap()
            .parse::<Value>()
            .unwrap(),
    );
    let refused = second_worker.cli(&["run", elsewhere.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let said = stdout(&refused) + stderr(&refused).as_str();
    assert!(said.contains("already running (run "), "{said}");
    assert!(
        said.contains(&format!("process {} on ", running.id())),
        "{said}"
    );
    // The first worker dies: its run is recorded as failed by the next run, which takes
    // the flow over at once (its holder was a process of this machine that is gone).
    let dead = running.id();
    drop(running);
    let small = demo_to(&second_worker, "out");
    let mut small_flow: Value =
        serde_json::from_str(&std::fs::read_to_string(&small).unwrap()).unwrap();
    small_flow["name"] = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap())
        .unwrap()["name"]
        .clone();
    std::fs::write(&small, small_flow.to_string()).unwrap();
    let next = second_worker.cli(&["run", small.to_str().unwrap()]);
    assert!(next.status.success(), "{}", stderr(&next));
    let history = |worker: &Scratch| -> Vec<Value> {
        let out = worker.cli(&["runs", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let seen = history(&first_worker);
    assert_eq!(seen, history(&second_worker), "one history");
    // Newest first: the run after the death, the refused one, the dead worker's.
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_eq!(seen[0]["status"], "Successful");
    assert!(
        seen[1]["error"]
            .as_str()
            .unwrap()
            .contains("already running")
    );
    assert_eq!(seen[2]["status"], "Error");
    let error = seen[2]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("process {dead} on "))
            && error.contains("ended before the run did; nothing it staged was published"),
        "{error}"
    );
}

#[test]
fn a_second_run_of_a_running_flow_is_refused_with_the_first_ones_process() {
    let scratch = Scratch::new();
    let path = long_flow(&scratch);
    let first = spawn_run(&scratch, &path);
    wait_until_staging(&scratch.path().join("out"));
    let second = scratch.cli(&["run", path.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let said = stdout(&second) + stderr(&second).as_str();
    assert!(said.contains("already running"), "{said}");
    assert!(
        said.contains(&first.id().to_string()),
        "names the pid: {said}"
    );
    drop(first);
    // The lock goes with the process, however it ended (here: killed).
    let small = demo_to(&scratch, "out");
    let third = scratch.cli(&["run", small.to_str().unwrap()]);
    assert!(third.status.success(), "{}", stderr(&third));
}

#[test]
fn sigterm_cancels_a_run_and_records_it_as_canceled() {
    let scratch = Scratch::new();
    let path = long_flow(&scratch);
    let out = scratch.path().join("out");
    let child = spawn_run(&scratch, &path);
    wait_until_staging(&out);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = child.output();
    assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
    let record: Value = serde_json::from_slice(&done.stdout).expect("the run record");
    assert_eq!(record["status"], "Canceled", "{record}");
    assert!(
        files_under(&out).is_empty(),
        "nothing published, nothing left staged: {:?}",
        files_under(&out)
    );
}

#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    let scratch = Scratch::new();
    let small = demo_to(&scratch, "out");
    for args in [
        vec!["schema"],
        vec!["connectors"],
        vec!["run", small.to_str().unwrap(), "--json"],
    ] {
        // The reader closes the pipe before anything is written.
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(&args)
            .env("TRIBUTARY_HOME", scratch.home())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let done = child.wait_with_output().unwrap();
        let err = stderr(&done);
        assert_eq!(done.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

fn file_to_jsonl(scratch: &Scratch, input: &str) -> std::path::PathBuf {
    scratch.flow(
        "file.json",
        &flow(
            vec![
                node("src", "source.file", json!({"path": input})),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl"}),
                ),
            ],
            &[("src", "out")],
        ),
    )
}

fn written_lines(out: &Path) -> Vec<Value> {
    files_under(out)
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(out.join(f))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[test]
fn a_fraction_in_a_whole_number_field_is_refused_not_truncated() {
    let scratch = Scratch::new();
    let mut text = String::new();
    for i in 0..1500 {
        text += &format!("{{\"id\": {i}, \"qty\": {}}}\n", i % 7);
    }
    text += "{\"id\": 1500, \"qty\": 3.7}\n{\"id\": 1501, \"qty\": -2.9}\n{\"id\": 1502, \"qty\": 4.0}\n";
    scratch.write("in.jsonl", &text);
    let path = file_to_jsonl(&scratch, "in.jsonl");
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    let record: Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(record["records_rejected"], 2, "{record}");
    let written = written_lines(&scratch.path().join("out"));
    assert_eq!(written.len(), 1501);
    assert!(
        written.iter().all(|r| r["id"] != 1500 && r["id"] != 1501),
        "no truncated 3 or -2 was written"
    );
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("`qty` is 3.7") && errors.contains("whole numbers"),
        "{errors}"
    );
    assert!(errors.contains("-2.9"), "{errors}");
}

/// The text of every line the local folder `out` holds.
fn written_text(out: &Path) -> String {
    files_under(out)
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
        .collect()
}

#[test]
fn money_declared_decimal_adds_up_to_the_cent() {
    let scratch = Scratch::new();
    // Ten times 0.10 and 2.675: as floating point the sum is 3.6750000000000003, and 2.675
    // itself is 2.67499999999999982236431605997495353221893310546875.
    let mut text = String::from("id,amount,price\n");
    for i in 0..10 {
        text += &format!("{i},0.10,19.99\n");
    }
    text += "10,2.675,0.015\n11,123456789012345678,1\n";
    scratch.write("in.csv", &text);
    let path = scratch.flow(
        "money.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.file",
                    json!({"path": "in.csv", "schema": {"amount": "decimal(18,2)"}}),
                ),
                node(
                    "price",
                    "transform.map",
                    json!({"fields": [
                        {"source": "id"},
                        {"source": "amount"},
                        {"source": "price", "type": "decimal(10,2)"}
                    ]}),
                ),
                node(
                    "total",
                    "transform.aggregate",
                    json!({"aggregates": [
                        {"function": "sum", "field": "amount", "output": "total"},
                        {"function": "sum", "field": "price", "output": "prices"},
                        {"function": "max", "field": "amount", "output": "largest"}
                    ]}),
                ),
                node(
                    "sum",
                    "destination.local",
                    json!({"folder": "sum", "format": "jsonl"}),
                ),
                node(
                    "rows",
                    "destination.local",
                    json!({"folder": "rows", "format": "parquet"}),
                ),
            ],
            &[
                ("src", "price"),
                ("price", "total"),
                ("total", "sum"),
                ("price", "rows"),
            ],
        ),
    );
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    let record: Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    // 123456789012345678 has more digits before the point than decimal(18,2) holds: its
    // record is set aside with the reason, never written rounded or cut.
    assert_eq!(record["records_rejected"], 1, "{record}");
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("123456789012345678") && errors.contains("decimal(18,2)"),
        "{errors}"
    );
    // Exact, rounded half away from zero at the declared scale: 2.675 is 2.68.
    assert_eq!(
        written_text(&scratch.path().join("sum")).trim(),
        r#"{"total":3.68,"prices":199.92,"largest":2.68}"#
    );

    // The Parquet file holds decimals of the declared digits, and reads back as them.
    let back = scratch.flow(
        "back.json",
        &flow(
            vec![
                node("src", "source.file", json!({"path": "rows/*.parquet"})),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "back", "format": "csv"}),
                ),
            ],
            &[("src", "out")],
        ),
    );
    let o = scratch.cli(&["preview", back.to_str().unwrap(), "--node", "src", "--json"]);
    let preview: Value =
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    let types: Vec<(&str, &str)> = preview["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("id", "integer"),
            ("amount", "decimal(18,2)"),
            ("price", "decimal(10,2)")
        ]
    );
    let o = scratch.cli(&["run", back.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = written_text(&scratch.path().join("back"));
    assert!(csv.contains("\n10,2.68,0.02\n"), "{csv}");
    assert!(csv.contains("\n0,0.10,19.99\n"), "{csv}");
}

#[test]
fn a_field_type_that_is_not_one_is_refused_in_words() {
    let scratch = Scratch::new();
    scratch.write("in.csv", "id,amount\n1,2\n");
    for (kind, says) in [
        ("decimal(40,2)", "1 to 38 digits"),
        ("decimal(4,6)", "cannot have 6 of them after the point"),
        ("decimal(a,2)", "the precision must be a whole number"),
        ("money", "use one of string, integer, number, decimal"),
    ] {
        let path = scratch.flow(
            "bad.json",
            &flow(
                vec![
                    node(
                        "src",
                        "source.file",
                        json!({"path": "in.csv", "schema": {"amount": kind}}),
                    ),
                    node(
                        "out",
                        "destination.local",
                        json!({"folder": "out", "format": "jsonl"}),
                    ),
                ],
                &[("src", "out")],
            ),
        );
        let o = scratch.cli(&["validate", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{kind}");
        let err = stderr(&o);
        assert!(err.contains(says) && err.contains("src"), "{kind}: {err}");
    }
}

#[test]
fn a_csv_header_naming_a_column_twice_is_refused_with_both_columns() {
    let scratch = Scratch::new();
    scratch.write("in.csv", "id,id,qty\n1,2,3\n");
    let path = file_to_jsonl(&scratch, "in.csv");
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("columns 1 and 2") && err.contains("`id`"),
        "{err}"
    );
}

/// A 1 MiB tmpfs mounted at `dir` for the test's life: a disk that fills up.
struct SmallDisk<'a>(&'a Path);

impl<'a> SmallDisk<'a> {
    fn mount(dir: &'a Path) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "tmpfs",
                dir.to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(dir))
    }
}

impl Drop for SmallDisk<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_run_in_words_and_publishes_nothing() {
    let scratch = Scratch::new();
    let out = scratch.path().join("out");
    let Some(_disk) = SmallDisk::mount(&out) else {
        // Mounting needs root, which CI has (scripts/test.sh runs there as root).
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a small tmpfs"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let path = scratch.flow(
        "flow.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    json!({"object": "Opportunity", "records": 20_000}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl"}),
                ),
            ],
            &[("src", "out")],
        ),
    );
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(record["status"], "Error");
    assert_eq!(record["error"]["node"], "out");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(message.contains("No space left"), "{message}");
    assert!(
        files_under(&out).is_empty(),
        "nothing published and nothing left staged: {:?}",
        files_under(&out)
    );
}

#[test]
fn a_field_first_seen_after_the_learned_records_is_never_dropped_unseen() {
    let scratch = Scratch::new();
    let mut text = String::new();
    for i in 0..1200 {
        if i < 1000 {
            text += &format!("{{\"id\": {i}, \"name\": \"n{i}\"}}\n");
        } else {
            text +=
                &format!("{{\"id\": {i}, \"name\": \"n{i}\", \"email\": \"p{i}@example.com\"}}\n");
        }
    }
    scratch.write("in.jsonl", &text);
    let out = scratch.path().join("out");
    let run = |source: Value| {
        let _ = std::fs::remove_dir_all(&out);
        let path = scratch.flow(
            "drift.json",
            &flow(
                vec![
                    node("src", "source.file", source),
                    node(
                        "out",
                        "destination.local",
                        json!({"folder": "out", "format": "jsonl"}),
                    ),
                ],
                &[("src", "out")],
            ),
        );
        let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
        let record: Value =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        (record, written_lines(&out))
    };
    // By default the records with the new field are set aside, the field named.
    let (record, written) = run(json!({"path": "in.jsonl"}));
    assert_eq!(record["records_rejected"], 200, "{record}");
    assert_eq!(written.len(), 1000);
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("a field `email`") && errors.contains("`schema`"),
        "{errors}"
    );
    // Declared, it is read.
    let (record, written) = run(json!({"path": "in.jsonl", "schema": {"email": "string"}}));
    assert_eq!(record["records_rejected"], 0, "{record}");
    assert_eq!(written.len(), 1200);
    assert_eq!(written[1100]["email"], "p1100@example.com");
    // Left out only when the flow says so.
    let (record, written) = run(json!({"path": "in.jsonl", "new_fields": "ignore"}));
    assert_eq!(record["records_rejected"], 0, "{record}");
    assert_eq!(written.len(), 1200);
    assert!(written.iter().all(|r| r.get("email").is_none()));
    // `fail`: the run stops at the first such record and publishes nothing.
    let (record, written) = run(json!({"path": "in.jsonl", "new_fields": "fail"}));
    assert_eq!(record["status"], "Error", "{record}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(message.contains("a field `email`"), "{message}");
    assert!(message.contains("1001"), "the line is named: {message}");
    assert!(written.is_empty());
    // `add`: the fields are learned from every record, in every file of the pattern.
    scratch.write(
        "in2.jsonl",
        "{\"id\": 5000, \"name\": \"late\", \"score\": 2.5}\n",
    );
    let (record, written) = run(json!({"path": "in*.jsonl", "new_fields": "add"}));
    assert_eq!(record["records_rejected"], 0, "{record}");
    assert_eq!(written.len(), 1201);
    assert_eq!(written[1100]["email"], "p1100@example.com");
    assert!(
        written[0].get("email").is_none(),
        "null where it was missing"
    );
    assert_eq!(written[1200]["score"], 2.5);
    // `add` is for files read whole before the run; a CSV's fields are in its header.
    scratch.write("in.csv", "id\n1\n");
    let path = scratch.flow(
        "csv.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.file",
                    json!({"path": "in.csv", "new_fields": "add"}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl"}),
                ),
            ],
            &[("src", "out")],
        ),
    );
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("header line"), "{}", stderr(&o));
}

#[test]
fn an_unclosed_csv_quote_stops_the_run_at_its_line() {
    let scratch = Scratch::new();
    let mut text = String::from("id,note\n1,fine\n2,\"never closed\n");
    let filler = "3,just another line of an export that now sits inside the quote\n";
    while text.len() < 20 << 20 {
        text += filler;
    }
    scratch.write("in.csv", &text);
    let path = file_to_jsonl(&scratch, "in.csv");
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 3") && message.contains("quote") && message.contains("in.csv"),
        "{message}"
    );
    assert!(files_under(&scratch.path().join("out")).is_empty());
}

#[test]
fn a_run_that_rejects_most_of_its_input_fails_and_publishes_nothing() {
    let scratch = Scratch::new();
    let mut text = String::new();
    for i in 0..10 {
        if i < 2 {
            text += &format!("{{\"id\": {i}}}\n");
        } else {
            text += "{not json\n";
        }
    }
    scratch.write("in.jsonl", &text);
    let path = file_to_jsonl(&scratch, "in.jsonl");
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("8 of 10 records were rejected") && message.contains("error_threshold"),
        "{message}"
    );
    assert!(files_under(&scratch.path().join("out")).is_empty());
    // The flow may say how much it tolerates.
    let mut flow_file: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    flow_file["error_threshold"] = json!(100);
    let path = scratch.flow("file.json", &flow_file);
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn empty_inputs_are_zero_records_and_wrong_paths_say_what_to_do() {
    let scratch = Scratch::new();
    scratch.write("empty.jsonl", "");
    scratch.write("empty.csv", "id,name\n");
    for input in ["empty.jsonl", "empty.csv"] {
        let path = file_to_jsonl(&scratch, input);
        let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{input}: {}", stderr(&o));
        let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(record["records_written"], 0);
    }
    std::fs::create_dir(scratch.path().join("exports")).unwrap();
    scratch.write("orders.csv", "id\n1\n");
    for (input, says) in [
        ("exports", "is a folder"),
        ("Orders.csv", "did you mean orders.csv?"),
        ("ordrs.csv", "did you mean orders.csv?"),
        ("", "choose a file to read"),
    ] {
        let path = file_to_jsonl(&scratch, input);
        let o = scratch.cli(&["validate", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(err.contains(says), "{input}: {err}");
        assert!(!err.contains("format of ``"), "{input}: {err}");
    }
}

fn demo_to(scratch: &Scratch, folder: &str) -> std::path::PathBuf {
    scratch.flow(
        "demo.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    json!({"object": "Lead", "records": 10}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": folder, "format": "csv"}),
                ),
            ],
            &[("src", "out")],
        ),
    )
}

#[test]
fn a_link_in_place_of_the_staging_folder_is_never_followed() {
    let scratch = Scratch::new();
    let victim = scratch.path().join("shared");
    std::fs::create_dir_all(victim.join("abandoned-looking")).unwrap();
    std::fs::write(victim.join("abandoned-looking/keep.txt"), "precious").unwrap();
    std::fs::write(victim.join("keep.txt"), "precious").unwrap();
    let out = scratch.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join(".tributary-staging")).unwrap();
    let o = scratch.cli(&["run", demo_to(&scratch, "out").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("not a folder") || stderr(&o).contains("not a folder"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        files_under(&victim),
        vec![
            "abandoned-looking/keep.txt".to_string(),
            "keep.txt".to_string()
        ],
        "nothing outside the staging folder was touched"
    );
}

#[test]
fn a_destination_folder_that_is_a_dangling_link_is_named_as_such() {
    let scratch = Scratch::new();
    std::os::unix::fs::symlink("/nonexistent/lake", scratch.path().join("lake")).unwrap();
    let o = scratch.cli(&["run", demo_to(&scratch, "lake").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let said = stdout(&o) + stderr(&o).as_str();
    assert!(
        said.contains("is a link to /nonexistent/lake, which does not exist"),
        "{said}"
    );
}

#[test]
fn nested_objects_and_lists_travel_whole_and_a_map_takes_values_out_of_them() {
    let scratch = Scratch::new();
    scratch.write(
        "in.jsonl",
        "{\"id\":1,\"owner\":{\"email\":\"a@x.com\",\"name\":\"A\"},\"tags\":[\"x\",\"y\"]}\n\
         {\"id\":2,\"owner\":null,\"tags\":[]}\n",
    );
    let run_to = |folder: &str, format: &str, extra: Option<Value>| {
        let mut nodes = vec![node("src", "source.file", json!({"path": "in.jsonl"}))];
        let mut edges = vec![];
        let mut last = "src";
        if let Some(map) = extra {
            nodes.push(node("map", "transform.map", map));
            edges.push(("src", "map"));
            last = "map";
        }
        nodes.push(node(
            "out",
            "destination.local",
            json!({"folder": folder, "format": format}),
        ));
        edges.push((last, "out"));
        let path = scratch.flow("nested.json", &flow(nodes, &edges));
        let o = scratch.cli(&["run", path.to_str().unwrap()]);
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let dir = scratch.path().join(folder);
        let file = dir.join(&files_under(&dir)[0]);
        std::fs::read_to_string(file).unwrap_or_default()
    };
    // CSV cells hold objects and lists as JSON text.
    let csv = run_to("out-csv", "csv", None);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][1], r#"{"email":"a@x.com","name":"A"}"#);
    assert_eq!(&rows[0][2], r#"["x","y"]"#);
    assert_eq!(&rows[1][1], "");
    // JSON lines keep them as they came.
    let jsonl = run_to("out-jsonl", "jsonl", None);
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["owner"]["email"], "a@x.com");
    // A map takes a value out of an object by its path; inside a missing object it is null.
    let mapped = run_to(
        "out-mapped",
        "jsonl",
        Some(json!({"fields": [{"source": "id"}, {"source": "owner.email", "target": "email"}]})),
    );
    let lines: Vec<Value> = mapped
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0], json!({"id": 1, "email": "a@x.com"}));
    assert_eq!(lines[1], json!({"id": 2}));
}

#[test]
fn a_huge_first_json_line_is_never_read_whole_to_learn_the_fields() {
    let scratch = Scratch::new();
    // 150 MB on one line, first in the file: learning the fields skips it, never holding
    // more of it than a record may be (16 MiB).
    // Written a MiB at a time: the kernel counts the memory this process holds at the
    // spawn in the child's peak.
    {
        use std::io::Write;
        let mut file = std::fs::File::create(scratch.path().join("in.jsonl")).unwrap();
        file.write_all(b"{\"id\": 0, \"note\": \"").unwrap();
        let mib = vec![b'x'; 1 << 20];
        for _ in 0..150 {
            file.write_all(&mib).unwrap();
        }
        file.write_all(b"\"}\n{\"id\": 1, \"qty\": 2}\n").unwrap();
    }
    let path = file_to_jsonl(&scratch, "in.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["validate", path.to_str().unwrap()])
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, peak_kib, out) = wait_with_peak_rss(child);
    assert_eq!(code, 0, "{out}");
    // About 30 MiB for the program and up to 32 MiB of line buffer; reading the line
    // whole took 480 MiB.
    assert!(
        peak_kib < 120 << 10,
        "peak {} MiB while learning the fields",
        peak_kib >> 10
    );
    // The fields come from the lines after it.
    let o = scratch.cli(&["preview", path.to_str().unwrap(), "--node", "src", "--json"]);
    assert!(stdout(&o).contains("\"qty\""), "{}", stderr(&o));
}

#[test]
fn a_json_line_longer_than_a_record_may_be_is_set_aside_and_the_rest_read() {
    let scratch = Scratch::new();
    let long = "x".repeat(20 << 20);
    scratch.write(
        "in.jsonl",
        &format!("{{\"id\": 1}}\n{{\"id\": 2, \"note\": \"{long}\"}}\n{{\"id\": 3}}\n"),
    );
    let path = file_to_jsonl(&scratch, "in.jsonl");
    let o = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(record["records_rejected"], 1, "{record}");
    let written = written_lines(&scratch.path().join("out"));
    assert_eq!(written, vec![json!({"id": 1}), json!({"id": 3})]);
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("longer than 16 MiB") && errors.contains("\"line\":2"),
        "{errors}"
    );
}

/// Records of `days`, 50 a day, each with its day and the `version` of the read.
fn days_input(scratch: &Scratch, days: std::ops::RangeInclusive<u32>, version: &str) {
    let mut csv = String::from("id,day,version\n");
    for day in days {
        for i in 0..50 {
            csv += &format!("{},{day},{version}\n", day * 100 + i);
        }
    }
    scratch.write("in.csv", &csv);
}

/// The records below `out` by day, and the versions each day holds; staged files are not
/// counted.
fn days_written(out: &Path) -> BTreeMap<String, (Vec<u64>, Vec<String>)> {
    let mut days: BTreeMap<String, (Vec<u64>, Vec<String>)> = BTreeMap::new();
    for file in files_under(out) {
        if file.starts_with(".tributary-staging") {
            continue;
        }
        let day = file.split('/').next().unwrap().to_string();
        for line in std::fs::read_to_string(out.join(&file)).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let entry = days.entry(day.clone()).or_default();
            entry.0.push(record["id"].as_u64().unwrap());
            let version = record["version"].as_str().unwrap().to_string();
            if !entry.1.contains(&version) {
                entry.1.push(version);
            }
        }
    }
    for (ids, _) in days.values_mut() {
        ids.sort_unstable();
    }
    days
}

fn replacing_flow(scratch: &Scratch) -> std::path::PathBuf {
    scratch.flow(
        "flow.json",
        &flow(
            vec![
                node("src", "source.file", json!({"path": "in.csv"})),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl", "partition_by": ["day"],
                           "replace_partitions": true}),
                ),
            ],
            &[("src", "out")],
        ),
    )
}

/// Days 1 to 5 as two overlapping reads leave them: 1 and 2 from the first, 3 to 5 from
/// the second, each record once.
fn assert_days_replaced(out: &Path, when: &str) {
    let days = days_written(out);
    assert_eq!(days.len(), 5, "{when}: {:?}", days.keys());
    for day in 1..=5u64 {
        let (ids, versions) = &days[&format!("day={day}")];
        let expected: Vec<u64> = (0..50).map(|i| day * 100 + i).collect();
        assert_eq!(ids, &expected, "{when}: day {day} holds each record once");
        let version = if day <= 2 { "a" } else { "b" };
        assert_eq!(versions, &[version.to_string()], "{when}: day {day}");
    }
}

#[test]
fn a_partition_written_again_replaces_the_one_before_even_when_the_commit_is_killed() {
    // Two overlapping reads, the second killed at its k-th rename or not at all. The
    // commit moves three files; the kills land before it removes anything, and the next
    // run finishes it, then writes its own.
    for kill in [None, Some(1), Some(2), Some(3)] {
        let scratch = Scratch::new();
        let path = replacing_flow(&scratch);
        let out = scratch.path().join("out");
        days_input(&scratch, 1..=3, "a");
        assert!(
            scratch
                .cli(&["run", path.to_str().unwrap()])
                .status
                .success()
        );
        days_input(&scratch, 3..=5, "b");
        if let Some(k) = kill {
            assert!(!run_killed_at_rename(&scratch, &path, k).success(), "k={k}");
        }
        let next = scratch.cli(&["run", path.to_str().unwrap()]);
        assert!(next.status.success(), "{kill:?}: {}", stderr(&next));
        assert_days_replaced(&out, &format!("killed at {kill:?}"));
        assert_eq!(files_under(&out.join("day=3")).len(), 1, "{kill:?}");
        assert!(!out.join(".tributary-staging").exists(), "{kill:?}");
    }

    // Without partitions there is nothing to replace: said before anything runs.
    let scratch = Scratch::new();
    let flow_path = scratch.flow(
        "flow.json",
        &flow(
            vec![
                node("src", "source.file", json!({"path": "in.csv"})),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "replace_partitions": true, "prefix": "day"}),
                ),
            ],
            &[("src", "out")],
        ),
    );
    days_input(&scratch, 1..=1, "a");
    let refused = scratch.cli(&["validate", flow_path.to_str().unwrap()]);
    let text = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        text.contains("replacing partitions needs `partition_by`"),
        "{text}"
    );
    assert!(text.contains("there is nothing to replace"), "{text}");
}
