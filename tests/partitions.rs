//! Partitioned runs: `tributary run --partitions N --partition I --run-id ID --stage-only`
//! for each part, then `tributary commit` publishing every part's output at once, or
//! `tributary abort` removing it.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, cli_killed_at_rename, files_under, flow, node, stderr, stdout};
use serde_json::{Value, json};

/// 5,000 demo opportunities into JSON lines in the folder `${output}`.
fn backfill(scratch: &Scratch) -> PathBuf {
    let mut f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 5000}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "${output}", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    f["name"] = json!("Backfill");
    f["params"] = json!({"output": "out"});
    scratch.flow("backfill.json", &f)
}

fn part(scratch: &Scratch, path: &Path, index: u32, run_id: &str) -> std::process::Output {
    scratch.cli(&[
        "run",
        path.to_str().unwrap(),
        "--partitions",
        "4",
        "--partition",
        &index.to_string(),
        "--run-id",
        run_id,
        "--stage-only",
    ])
}

/// The records published in `folder` (not what is staged there), each line as it is,
/// sorted.
fn published(folder: &Path) -> Vec<String> {
    let mut lines: Vec<String> = files_under(folder)
        .iter()
        .filter(|f| !f.contains(".tributary-staging"))
        .flat_map(|f| {
            std::fs::read_to_string(folder.join(f))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

fn history(scratch: &Scratch) -> Vec<Value> {
    let out = scratch.cli(&["runs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn four_parts_committed_write_exactly_what_one_run_writes() {
    let scratch = Scratch::new();
    let path = backfill(&scratch);
    let out = scratch.path().join("out");
    for i in 0..4 {
        let staged = part(&scratch, &path, i, "bf-1");
        assert!(staged.status.success(), "{}", stderr(&staged));
        assert!(
            stdout(&staged).contains(&format!("part {} of 4 staged", i + 1)),
            "{}",
            stdout(&staged)
        );
    }
    assert!(
        published(&out).is_empty(),
        "nothing is visible before the commit"
    );
    let committed = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "bf-1"]);
    assert!(committed.status.success(), "{}", stderr(&committed));
    let said = stdout(&committed);
    assert!(
        said.contains("published its 4 parts at once — 5000 records written"),
        "{said}"
    );
    let parts = published(&out);
    assert_eq!(parts.len(), 5000);
    assert!(
        !files_under(&out)
            .iter()
            .any(|f| f.contains(".tributary-staging")),
        "no staging left"
    );
    // One whole run of the same flow writes the very same records.
    let whole = scratch.cli(&["run", path.to_str().unwrap(), "--param", "output=whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_eq!(parts, published(&scratch.path().join("whole")));

    let runs = history(&scratch);
    let commit = runs.iter().find(|r| r["execution_id"] == "bf-1").unwrap();
    assert_eq!(commit["status"], "Successful");
    assert_eq!(commit["trigger"], "partitioned: 4 parts, committed");
    assert_eq!(commit["records_written"], 5000);
    assert_eq!(
        commit["records_processed"], 5000,
        "the parts' figures added up"
    );
    let staged: Vec<&Value> = runs
        .iter()
        .filter(|r| r["trigger"].as_str().unwrap().starts_with("partition: "))
        .collect();
    assert_eq!(staged.len(), 4, "{runs:#?}");
    // A second commit finds nothing left to publish.
    let again = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "bf-1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no part of run bf-1"),
        "{}",
        stderr(&again)
    );
    assert_eq!(published(&out).len(), 5000);
}

#[test]
fn a_part_run_again_replaces_what_it_staged() {
    let scratch = Scratch::new();
    let path = backfill(&scratch);
    let out = scratch.path().join("out");
    for i in [0, 0, 1, 2, 3, 2] {
        let staged = part(&scratch, &path, i, "bf-2");
        assert!(staged.status.success(), "{}", stderr(&staged));
    }
    let staging: Vec<String> = files_under(&out)
        .into_iter()
        .filter(|f| f.ends_with("commit.json"))
        .collect();
    assert_eq!(
        staging.len(),
        4,
        "the earlier tries' staging is gone: {staging:?}"
    );
    let committed = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "bf-2"]);
    assert!(committed.status.success(), "{}", stderr(&committed));
    let lines = published(&out);
    assert_eq!(lines.len(), 5000, "not doubled");
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(unique.len(), 5000);
}

#[test]
fn a_missing_part_commits_nothing_and_abort_removes_what_was_staged() {
    let scratch = Scratch::new();
    let path = backfill(&scratch);
    let out = scratch.path().join("out");
    for i in [0, 1, 3] {
        assert!(part(&scratch, &path, i, "bf-3").status.success());
    }
    let refused = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "bf-3"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "part 3 of 4 of run bf-3 did not stage, so nothing is published: run it, or `tributary abort` the run"
        ),
        "{}",
        stderr(&refused)
    );
    assert!(published(&out).is_empty());
    // A whole run of the flow to the same folder leaves the staged parts alone.
    let other = scratch.cli(&["run", path.to_str().unwrap(), "--param", "output=out"]);
    assert!(other.status.success(), "{}", stderr(&other));
    assert_eq!(
        files_under(&out)
            .iter()
            .filter(|f| f.ends_with("commit.json"))
            .count(),
        3
    );
    let aborted = scratch.cli(&["abort", path.to_str().unwrap(), "--run-id", "bf-3"]);
    assert!(aborted.status.success(), "{}", stderr(&aborted));
    assert!(
        stdout(&aborted).contains("removed what its 3 part(s) staged; nothing was published"),
        "{}",
        stdout(&aborted)
    );
    assert!(
        !files_under(&out)
            .iter()
            .any(|f| f.contains(".tributary-staging")),
        "{:?}",
        files_under(&out)
    );
    assert_eq!(published(&out).len(), 5000, "only the whole run's records");
    let after = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "bf-3"]);
    assert_eq!(after.status.code(), Some(1));
    assert!(
        stderr(&after).contains("no part of run bf-3"),
        "{}",
        stderr(&after)
    );
}

#[test]
fn a_commit_killed_at_any_rename_is_finished_by_the_next_and_counted_once() {
    let mut kills = 0;
    // The commit of 4 parts renames a few files; a kill at each of them, and one past them.
    for k in 1..=12 {
        let scratch = Scratch::new();
        let path = backfill(&scratch);
        let out = scratch.path().join("out");
        for i in 0..4 {
            assert!(part(&scratch, &path, i, "bf-k").status.success());
        }
        let flow = path.to_str().unwrap();
        let killed = cli_killed_at_rename(&scratch, None, &["commit", flow, "--run-id", "bf-k"], k);
        if killed.success() {
            // Fewer renames than k: the commit ran through.
            assert!(kills >= 2, "the commit renamed files: {kills} kills");
            assert_eq!(published(&out).len(), 5000);
            break;
        }
        kills += 1;
        // Killed inside the commit: an abort may no longer undo it.
        let abort = scratch.cli(&["abort", flow, "--run-id", "bf-k"]);
        assert_eq!(abort.status.code(), Some(1), "k={k}");
        assert!(
            stderr(&abort).contains("has begun, so it cannot be undone"),
            "k={k}: {}",
            stderr(&abort)
        );
        let again = scratch.cli(&["commit", flow, "--run-id", "bf-k"]);
        assert!(again.status.success(), "k={k}: {}", stderr(&again));
        let lines = published(&out);
        assert_eq!(lines.len(), 5000, "k={k}: every record once");
        let mut unique = lines.clone();
        unique.dedup();
        assert_eq!(unique.len(), 5000, "k={k}");
        assert!(
            !files_under(&out)
                .iter()
                .any(|f| f.contains(".tributary-staging")),
            "k={k}: nothing left staged"
        );
        let runs = history(&scratch);
        let whole: Vec<&Value> = runs
            .iter()
            .filter(|r| r["execution_id"] == "bf-k")
            .collect();
        assert_eq!(whole.len(), 1, "k={k}: {runs:#?}");
        assert_eq!(whole[0]["records_written"], 5000, "k={k}");
        assert_eq!(whole[0]["records_processed"], 5000, "k={k}");
        let third = scratch.cli(&["commit", flow, "--run-id", "bf-k"]);
        assert!(
            stderr(&third).contains("no part of run bf-k"),
            "k={k}: {}",
            stderr(&third)
        );
    }
    assert!(kills >= 2, "{kills}");
}

#[test]
fn flows_that_cannot_run_in_parts_are_refused_before_they_read() {
    let scratch = Scratch::new();
    let mut grouped = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 100}),
            ),
            node(
                "sum",
                "transform.aggregate",
                json!({"group_by": ["StageName"], "aggregates": [{"field": "Amount", "function": "sum", "output": "Total"}]}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "sum"), ("sum", "out")],
    );
    grouped["name"] = json!("Grouped");
    let grouped = scratch.flow("grouped.json", &grouped);
    let refused = part(&scratch, &grouped, 0, "g-1");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let said = stdout(&refused) + stderr(&refused).as_str();
    assert!(
        said.contains("`sum` (transform.aggregate) needs all the records together"),
        "{said}"
    );
    let api = common::SupportServer::start("rest_server.py", &[]);
    let mut rest = flow(
        vec![
            node(
                "src",
                "source.rest",
                json!({"url": format!("{}/pages", api.url())}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    rest["name"] = json!("Orders");
    let rest = scratch.flow("orders.json", &rest);
    let refused = part(&scratch, &rest, 1, "o-1");
    let said = stdout(&refused) + stderr(&refused).as_str();
    assert!(
        said.contains("`src` (source.rest) cannot run in parts: it cannot read a part of its records; run the flow whole"),
        "{said}"
    );
    assert!(!scratch.path().join("out").exists(), "nothing staged");
    // The command line: a part needs all four settings, and one of the N parts.
    let path = backfill(&scratch);
    let alone = scratch.cli(&["run", path.to_str().unwrap(), "--partitions", "4"]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(stderr(&alone).contains("--partition"), "{}", stderr(&alone));
    let beyond = part(&scratch, &path, 4, "x");
    assert_eq!(beyond.status.code(), Some(2));
    assert!(
        stderr(&beyond).contains("--partition 4 is not one of the 4 parts: they go from 0 to 3"),
        "{}",
        stderr(&beyond)
    );
}

#[test]
fn files_are_shared_out_among_the_parts_by_their_paths() {
    let scratch = Scratch::new();
    let data = scratch.path().join("in");
    std::fs::create_dir_all(&data).unwrap();
    let mut expected = Vec::new();
    for f in 0..12 {
        let mut text = String::from("id,day\n");
        for r in 0..50 {
            text += &format!("{},2026-12-{:02}\n", f * 100 + r, f + 1);
            expected.push(f * 100 + r);
        }
        std::fs::write(data.join(format!("day-{f:02}.csv")), text).unwrap();
    }
    let mut f = flow(
        vec![
            node("src", "source.file", json!({"path": "in/*.csv"})),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("src", "out")],
    );
    f["name"] = json!("Days");
    let path = scratch.flow("days.json", &f);
    let mut read = Vec::new();
    for i in 0..4 {
        let staged = part(&scratch, &path, i, "d-1");
        assert!(staged.status.success(), "{}", stderr(&staged));
        read.push(stdout(&staged));
    }
    // Every part read some of the twelve files, and no file twice.
    assert!(
        read.iter().all(|r| !r.contains(" 0 records read")),
        "{read:#?}"
    );
    let committed = scratch.cli(&["commit", path.to_str().unwrap(), "--run-id", "d-1"]);
    assert!(committed.status.success(), "{}", stderr(&committed));
    let mut ids: Vec<i64> = published(&scratch.path().join("out"))
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, expected);
}
