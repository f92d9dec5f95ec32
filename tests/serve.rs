//! `tributary serve` as a user runs it, on a test clock that makes an hour pass in a
//! second (`--clock-start`, `--clock-speed`), so no test waits for minutes: scheduled runs
//! on time with their history, overlapping triggers, missed runs after a restart,
//! retries, deactivation after failures in a row, SIGTERM mid-run, edits to flow files,
//! one service per data folder, `/metrics` and `/healthz`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A flow `name` in the service's folder (`flows/<name>.json`): a `source` node (type,
/// settings) into JSON lines in `out-<name>/`, started by `trigger`; `more` adds settings
/// of the flow's own (`service`, `params`, `alerts`).
fn served_flow(
    scratch: &Scratch,
    name: &str,
    (kind, config): (&str, Value),
    trigger: Value,
    more: Value,
) -> PathBuf {
    let flows = scratch.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let mut f = flow(
        vec![
            node("source", kind, config),
            node(
                "out",
                "destination.local",
                json!({"folder": format!("out-{name}"), "format": "jsonl"}),
            ),
        ],
        &[("source", "out")],
    );
    f["name"] = json!(name);
    f["trigger"] = trigger;
    if let Value::Object(more) = more {
        f.as_object_mut().unwrap().extend(more);
    }
    let path = flows.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&f).unwrap()).unwrap();
    path
}

/// A flow `name` on `trigger` reading the sample orders CSV (200 records).
fn orders_flow(scratch: &Scratch, name: &str, trigger: Value, more: Value) -> PathBuf {
    let data = format!("{}/flows/data/orders.csv", env!("CARGO_MANIFEST_DIR"));
    served_flow(
        scratch,
        name,
        ("source.file", json!({"path": data})),
        trigger,
        more,
    )
}

const PASSPHRASE: &str = "serve tests";

/// A running `tributary serve`; its JSON logs go to a file the test reads.
struct Served {
    child: Child,
    log: PathBuf,
    addr: String,
}

/// Starts the service on the scratch folder's `flows`, its clock at `clock` running
/// `speed` times as fast as real time.
fn serve(scratch: &Scratch, clock: &str, speed: f64, extra: &[&str]) -> Served {
    let log = scratch
        .path()
        .join(format!("serve-{}.log", fastrand_name()));
    let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--flows"])
        .arg(scratch.path().join("flows"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(["--clock-start", clock, "--clock-speed", &speed.to_string()])
        .args(["--rescan", "200ms"])
        .args(extra)
        .env("TRIBUTARY_HOME", scratch.home())
        .env("TRIBUTARY_VAULT_PASSPHRASE", PASSPHRASE)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("TRIBUTARY_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        log,
        addr: String::new(),
    };
    let line = served.wait_for_log("serving the active flows");
    let message = line["fields"]["message"].as_str().unwrap();
    served.addr = message
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the address in the first line")
        .to_string();
    served
}

/// A name no other service log of the test uses.
fn fastrand_name() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

impl Served {
    /// The service's log lines so far, as JSON.
    fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: a log line {l}")))
            .collect()
    }

    fn wait_for_log(&mut self, text: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self
                .logs()
                .into_iter()
                .find(|l| l["fields"]["message"].as_str().unwrap_or("").contains(text))
            {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the service ended ({status}) before saying `{text}`: {}",
                    std::fs::read_to_string(&self.log).unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the service did not say `{text}`: {}",
                std::fs::read_to_string(&self.log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> String {
        http("GET", &format!("http://{}{path}", self.addr), None)
    }

    /// Sends SIGTERM, as systemd does, and waits for the service to end.
    fn stop(mut self) -> (std::process::ExitStatus, Duration) {
        let asked = Instant::now();
        // SAFETY: a plain signal to a child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, asked.elapsed());
            }
            assert!(Instant::now() < deadline, "the service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The history, oldest first.
fn history(scratch: &Scratch) -> Vec<Value> {
    let out = scratch.cli(&["runs", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut runs: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    runs.reverse();
    runs
}

fn runs_of(scratch: &Scratch, flow: &str) -> Vec<Value> {
    history(scratch)
        .into_iter()
        .filter(|r| r["flow"] == flow)
        .collect()
}

/// Waits until `ok` holds of the history.
fn wait_until(scratch: &Scratch, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = history(scratch);
        if ok(&runs) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; the history: {runs:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn activate(scratch: &Scratch, path: &Path) {
    let out = scratch.cli(&["activate", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn count(runs: &[Value], flow: &str, status: &str) -> usize {
    runs.iter()
        .filter(|r| r["flow"] == flow && r["status"] == status)
        .count()
}

#[test]
fn a_scheduled_flow_runs_on_time_and_its_runs_are_in_the_history() {
    let scratch = Scratch::new();
    let hourly = orders_flow(
        &scratch,
        "hourly",
        json!({"type": "schedule", "expression": "rate(1 hours)"}),
        Value::Null,
    );
    // An inactive flow beside it never runs.
    orders_flow(
        &scratch,
        "idle",
        json!({"type": "schedule", "expression": "rate(1 hours)"}),
        Value::Null,
    );
    let on_demand = orders_flow(
        &scratch,
        "manual",
        json!({"type": "on_demand"}),
        Value::Null,
    );
    let refused = scratch.cli(&["activate", on_demand.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("runs on demand"),
        "{}",
        stderr(&refused)
    );
    activate(&scratch, &hourly);
    // A run by hand before the service starts: the history keeps both kinds.
    let by_hand = scratch.cli(&["run", hourly.to_str().unwrap()]);
    assert!(by_hand.status.success(), "{}", stderr(&by_hand));

    // An hour a second, from 08:00:00.
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 3600.0, &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(scratch.path().join("flows"))
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains(&format!("process {}", service.child.id())),
        "a second service names the first: {}",
        stderr(&second)
    );

    let runs = wait_until(&scratch, "two scheduled runs", |r| {
        count(r, "hourly", "Successful") >= 3
    });
    assert_eq!(count(&runs, "idle", "Successful"), 0);
    let hourly_runs: Vec<&Value> = runs.iter().filter(|r| r["flow"] == "hourly").collect();
    assert_eq!(hourly_runs[0]["trigger"], "manual", "{hourly_runs:#?}");
    assert_eq!(
        hourly_runs[1]["trigger"], "schedule: due 2026-12-02T09:00:00+00:00",
        "{hourly_runs:#?}"
    );
    assert_eq!(
        hourly_runs[2]["trigger"],
        "schedule: due 2026-12-02T10:00:00+00:00"
    );
    assert_eq!(hourly_runs[1]["records_written"], 200);

    let metrics = service.get("/metrics");
    let successful = metrics
        .lines()
        .find(|l| l.starts_with("tributary_runs_total{") && l.contains("status=\"successful\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(successful.contains("flow=\"hourly\""), "{successful}");
    let n: u64 = successful.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "{successful}");
    assert!(metrics.contains("tributary_active_flows 1"), "{metrics}");
    assert!(
        metrics.contains("tributary_next_run_timestamp_seconds{flow=\"hourly\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tributary_records_written_total{flow=\"hourly\"}"),
        "{metrics}"
    );
    let health: Value = serde_json::from_str(&service.get("/healthz")).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["active_flows"], 1);

    let listed = scratch.cli(&["flows", scratch.path().join("flows").to_str().unwrap()]);
    let listed = stdout(&listed);
    assert!(listed.contains("state: active"), "{listed}");
    let table = stdout(&scratch.cli(&["runs", "hourly"]));
    assert!(
        table.contains(" manual ") && table.contains(" schedule "),
        "how each run started: {table}"
    );

    let (status, took) = service.stop();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_trigger_while_the_flow_runs_waits_or_is_skipped_as_the_flow_says() {
    let scratch = Scratch::new();
    let api = SupportServer::start("rest_server.py", &[]);
    // Each request takes 1.5 s; a run makes at least one. The flows are due every
    // second.
    api.control(json!({"delay": 1.5}));
    for (name, when_running) in [("waits", "wait"), ("skips", "skip")] {
        let path = served_flow(
            &scratch,
            name,
            (
                "source.rest",
                json!({"url": format!("{}/pages", api.url())}),
            ),
            json!({"type": "schedule", "expression": "rate(1 minutes)"}),
            json!({"service": {"when_running": when_running}}),
        );
        activate(&scratch, &path);
    }
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &[]);
    let runs = wait_until(&scratch, "three runs of each flow", |r| {
        count(r, "waits", "Successful") >= 3 && count(r, "skips", "Skipped") >= 2
    });
    drop(service);
    // One run of a flow at a time: each started after the one before ended.
    for flow in ["waits", "skips"] {
        let done: Vec<&Value> = runs
            .iter()
            .filter(|r| r["flow"] == flow && r["status"] == "Successful")
            .collect();
        for pair in done.windows(2) {
            let end = chrono::DateTime::parse_from_rfc3339(pair[0]["started_at"].as_str().unwrap())
                .unwrap()
                + chrono::Duration::milliseconds(
                    (pair[0]["duration_seconds"].as_f64().unwrap() * 1000.0) as i64,
                );
            let next =
                chrono::DateTime::parse_from_rfc3339(pair[1]["started_at"].as_str().unwrap())
                    .unwrap();
            assert!(
                next >= end - chrono::Duration::milliseconds(1),
                "{flow}: runs overlapped: {pair:#?}"
            );
        }
    }
    assert_eq!(count(&runs, "waits", "Skipped"), 0, "{runs:#?}");
    let skipped = runs
        .iter()
        .find(|r| r["flow"] == "skips" && r["status"] == "Skipped")
        .unwrap();
    assert!(
        skipped["error"]
            .as_str()
            .unwrap()
            .contains("the flow was still running"),
        "{skipped}"
    );
    assert!(
        skipped["trigger"]
            .as_str()
            .unwrap()
            .starts_with("schedule: due 2026-12-02T08:0"),
        "{skipped}"
    );
}

#[test]
fn runs_missed_while_the_service_was_down_follow_the_flow_s_policy() {
    let scratch = Scratch::new();
    let schedule = json!({"type": "schedule", "expression": "rate(1 hours)"});
    let once = orders_flow(&scratch, "once", schedule.clone(), Value::Null);
    let skip = orders_flow(
        &scratch,
        "skip",
        schedule,
        json!({"service": {"missed": "skip"}}),
    );
    activate(&scratch, &once);
    activate(&scratch, &skip);
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 3600.0, &[]);
    wait_until(&scratch, "a run of each", |r| {
        count(r, "once", "Successful") >= 1 && count(r, "skip", "Successful") >= 1
    });
    assert!(service.stop().0.success());
    let before = history(&scratch).len();
    let last_due = |flow: &str| {
        runs_of(&scratch, flow).last().unwrap()["trigger"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (once_due, skip_due) = (last_due("once"), last_due("skip"));

    // Back at 15:30, at real speed: 09:00 or 10:00 was the last run time acted on, and
    // the hours up to 15:00 were missed.
    let service = serve(&scratch, "2026-12-02T15:30:00Z", 1.0, &[]);
    let runs = wait_until(&scratch, "the missed runs' handling", |r| {
        count(r, "once", "Successful") >= 2 && count(r, "skip", "Skipped") >= 1
    });
    std::thread::sleep(Duration::from_millis(600));
    drop(service);
    let after = history(&scratch);
    assert_eq!(after.len(), before + 2, "one entry per flow: {after:#?}");
    let once_runs = runs_of(&scratch, "once");
    assert_eq!(
        once_runs.last().unwrap()["trigger"],
        "schedule: missed, due 2026-12-02T15:00:00+00:00",
        "{once_due}: {once_runs:#?}"
    );
    let skipped = runs
        .iter()
        .find(|r| r["flow"] == "skip" && r["status"] == "Skipped")
        .unwrap();
    let why = skipped["error"].as_str().unwrap();
    assert!(
        why.contains("run times passed while the service was down")
            && why.contains("2026-12-02T15:00:00+00:00")
            && why.contains("`skip`"),
        "{skip_due}: {why}"
    );
}

#[test]
fn a_run_failing_for_a_passing_reason_is_tried_again() {
    let scratch = Scratch::new();
    let path = orders_flow(
        &scratch,
        "retried",
        json!({"type": "schedule", "expression": "rate(1 days)"}),
        json!({"service": {"retries": 2, "retry_after_seconds": 60}}),
    );
    activate(&scratch, &path);
    // Another run of the flow holds its lock: the service's run fails, and may succeed
    // once that run ends.
    let dirs = tributary::paths::Dirs::under(&scratch.home());
    let shared = tributary::state::StateStore::open(&dirs)
        .unwrap()
        .is_shared();
    let lock =
        tributary::state::RunLock::take_for_run(&dirs, shared, "retried", "held-by-the-test")
            .unwrap();
    // 30 s before midnight, a minute a second: due in half a second, the first retry a
    // second after the failure.
    let service = serve(&scratch, "2026-12-02T23:59:30Z", 60.0, &[]);
    wait_until(&scratch, "a failed run", |r| {
        count(r, "retried", "Error") >= 1
    });
    drop(lock);
    let runs = wait_until(&scratch, "a retry that succeeds", |r| {
        count(r, "retried", "Successful") >= 1
    });
    drop(service);
    let runs: Vec<&Value> = runs.iter().filter(|r| r["flow"] == "retried").collect();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{runs:#?}"
    );
    assert_eq!(
        runs[0]["trigger"],
        "schedule: due 2026-12-03T00:00:00+00:00"
    );
    assert_eq!(
        runs[1]["trigger"],
        "schedule: due 2026-12-03T00:00:00+00:00, retry 1 of 2"
    );
}

#[test]
fn a_flow_failing_run_after_run_is_deactivated_and_never_retried() {
    let scratch = Scratch::new();
    let path = orders_flow(
        &scratch,
        "broken",
        json!({"type": "schedule", "expression": "rate(1 minutes)"}),
        json!({"service": {"deactivate_after": 3, "retries": 2, "retry_after_seconds": 1}}),
    );
    // The source's file disappears: a mistake that no retry mends.
    let mut f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f["nodes"][0]["config"]["path"] = json!(scratch.path().join("gone.csv"));
    // Someone is told, signed; and a Slack channel.
    let (url, received) = receiver();
    add_key(&scratch, "signing", "alert-key");
    add_key(&scratch, "team-channel", &format!("{url}/slack/T000/B000"));
    f["alerts"] = json!([
        {"send": "http", "url": format!("{url}/alerts"), "connection": "signing"},
        {"send": "slack", "connection": "team-channel", "on": ["deactivation"]},
    ]);
    std::fs::write(&path, f.to_string()).unwrap();
    activate(&scratch, &path);
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &[]);
    wait_until(&scratch, "three failed runs", |r| {
        count(r, "broken", "Error") >= 3
    });
    // Due every second: were it still active, more runs would come.
    std::thread::sleep(Duration::from_millis(2500));
    drop(service);
    let runs = runs_of(&scratch, "broken");
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| !r["trigger"].as_str().unwrap().contains("retry")),
        "{runs:#?}"
    );
    let listed = scratch.cli(&["flows", scratch.path().join("flows").to_str().unwrap()]);
    let listed = stdout(&listed);
    assert!(
        listed.contains("state: inactive (deactivated after 3 failed runs in a row; the last:")
            && listed.contains("gone.csv"),
        "{listed}"
    );

    // Three failures and the deactivation over HTTP, the first tried again after the
    // receiver's 500; the deactivation in Slack.
    let received = received.lock().unwrap().clone();
    let alerts: Vec<&Received> = received.iter().filter(|r| r.path == "/alerts").collect();
    let events: Vec<String> = alerts
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        events.iter().filter(|e| *e == "failure").count(),
        4,
        "three failures, one of them sent twice: {events:?}"
    );
    assert_eq!(events.iter().filter(|e| *e == "deactivation").count(), 1);
    for alert in &alerts {
        let timestamp = &alert.headers["x-tributary-timestamp"];
        let expected = &signature(
            "alert-key",
            timestamp.parse().unwrap(),
            alert.body.as_bytes(),
        )[1]
        .1;
        assert_eq!(&alert.headers["x-tributary-signature"], expected);
    }
    let failure: Value = serde_json::from_str(&alerts[1].body).unwrap();
    assert_eq!(failure["flow"], "broken");
    assert_eq!(failure["run"]["status"], "Error");
    assert!(
        failure["run"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gone.csv")
    );
    let slack: Vec<&Received> = received
        .iter()
        .filter(|r| r.path == "/slack/T000/B000")
        .collect();
    assert_eq!(slack.len(), 1, "{received:#?}");
    let text: Value = serde_json::from_str(&slack[0].body).unwrap();
    assert!(
        text["text"]
            .as_str()
            .unwrap()
            .contains("\"broken\" was deactivated: deactivated after 3 failed runs"),
        "{text}"
    );
}

#[test]
fn sigterm_lets_a_run_finish_within_the_grace_period_then_cancels_it() {
    let scratch = Scratch::new();
    let api = SupportServer::start("rest_server.py", &[]);
    let path = served_flow(
        &scratch,
        "slow",
        (
            "source.rest",
            json!({"url": format!("{}/pages", api.url())}),
        ),
        json!({"type": "schedule", "expression": "rate(1 minutes)"}),
        Value::Null,
    );
    let out = scratch.path().join("flows/out-slow");
    activate(&scratch, &path);
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &["--grace", "1s"]);
    wait_until(&scratch, "a first run", |r| {
        count(r, "slow", "Successful") >= 1
    });
    let published = files_under(&out);
    assert!(!published.is_empty());
    // From now on the service answers after 20 s: the next run is still reading when
    // the service is asked to stop.
    api.control(json!({"delay": 20}));
    api.requests();
    // Stopped once the next run is reading (whatever the machine's load makes of the
    // service's minute a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.requests().iter().all(|r| r["path"] != "/pages") {
        assert!(Instant::now() < deadline, "the next run never read");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = service.stop();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "waited the grace period, then cancelled: {took:?}"
    );
    let runs = runs_of(&scratch, "slow");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1]["status"], "Canceled", "{runs:#?}");
    assert_eq!(
        files_under(&out),
        published,
        "a cancelled run publishes nothing"
    );
}

#[test]
fn an_edited_flow_file_is_taken_up_and_a_broken_edit_keeps_the_last_version() {
    let scratch = Scratch::new();
    let path = orders_flow(
        &scratch,
        "edited",
        json!({"type": "schedule", "expression": "rate(1 minutes)"}),
        Value::Null,
    );
    activate(&scratch, &path);
    let good = std::fs::read_to_string(&path).unwrap();
    let mut service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &[]);
    wait_until(&scratch, "a run", |r| count(r, "edited", "Successful") >= 1);
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    service.wait_for_log("the last valid version keeps running");
    let before = count(&history(&scratch), "edited", "Successful");
    wait_until(&scratch, "runs of the last valid version", |r| {
        count(r, "edited", "Successful") >= before + 2
    });
    // Fixed, and now daily: no more runs this test would see.
    std::fs::write(&path, good.replace("rate(1 minutes)", "rate(1 days)")).unwrap();
    service.wait_for_log("changed: the new version runs from now on");
    std::thread::sleep(Duration::from_millis(300));
    let settled = count(&history(&scratch), "edited", "Successful");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(count(&history(&scratch), "edited", "Successful"), settled);
}

/// Adds a connection of connector `webhook` whose key is `key`.
fn add_key(scratch: &Scratch, name: &str, key: &str) {
    add_connection(
        scratch,
        &[name, "--connector", "webhook", "--auth", "api_key"],
        &format!("{key}\n"),
    );
}

/// `tributary connection add ARGS…`, its secrets typed on standard input.
fn add_connection(scratch: &Scratch, args: &[&str], secrets: &str) {
    let mut add = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["connection", "add"])
        .args(args)
        .env("TRIBUTARY_HOME", scratch.home())
        .env("TRIBUTARY_VAULT_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(add.stdin.as_mut().unwrap(), secrets.as_bytes()).unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
}

/// A request an alert made: its path, headers (names in lower case) and body.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: std::collections::HashMap<String, String>,
    body: String,
}

/// An HTTP server on loopback that keeps every request; it answers the first with 500
/// (to be tried again) and the others with 200.
fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Received>>>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = kept.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let mut headers = std::collections::HashMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let Some((name, value)) = header.trim_end().split_once(": ") else {
                    break;
                };
                headers.insert(name.to_ascii_lowercase(), value.to_string());
            }
            let length = headers
                .get("content-length")
                .map_or(0, |l| l.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            keep.lock().unwrap().push(Received {
                path,
                headers,
                body: String::from_utf8(body).unwrap(),
            });
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = reader.get_mut().write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, kept)
}

/// One HTTP/1.1 POST; the status and the body of the answer.
fn post(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let text = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, text.to_string())
}

/// The headers that sign `body` with `key` at `timestamp`, as a sender computes them.
fn signature(key: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("X-Tributary-Timestamp", timestamp.to_string()),
        ("X-Tributary-Signature", format!("sha256={hex}")),
    ]
}

#[test]
fn a_signed_webhook_starts_a_run_on_its_body_and_bad_requests_are_refused_in_words() {
    let scratch = Scratch::new();
    // The signing key, in the vault.
    add_key(&scratch, "hooks", "hook-key-1");

    let sample = scratch.write("sample.jsonl", "{\"id\": 0, \"name\": \"sample\"}\n");
    let path = served_flow(
        &scratch,
        "on hook",
        ("source.file", json!({"path": "${trigger_file}"})),
        json!({"type": "event", "source": "webhook", "connection": "hooks", "max_body_bytes": 1000}),
        json!({"params": {"trigger_file": sample}}),
    );

    let service = serve(&scratch, "2026-12-02T08:00:00Z", 1.0, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = br#"[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]"#;
    let hook = "/hooks/on%20hook";
    let inactive = post(
        &service.addr,
        hook,
        &signature("hook-key-1", now, body),
        body,
    );
    assert_eq!(inactive.0, 409, "{inactive:?}");
    assert!(inactive.1.contains("not active"), "{inactive:?}");
    activate(&scratch, &path);
    // The service sees the activation at its next look.
    std::thread::sleep(Duration::from_millis(500));

    let refusals = [
        (post(&service.addr, hook, &[], body), 401, "not signed"),
        (
            post(
                &service.addr,
                hook,
                &signature("another-key", now, body),
                body,
            ),
            401,
            "does not match",
        ),
        (
            post(
                &service.addr,
                hook,
                &signature("hook-key-1", now - 600, body),
                body,
            ),
            401,
            "older than 300 s is refused",
        ),
        (
            post(
                &service.addr,
                hook,
                &signature("hook-key-1", now, b"[{\"id\": 9}]"),
                body,
            ),
            401,
            "does not match",
        ),
        (
            post(
                &service.addr,
                hook,
                &signature("hook-key-1", now, &[b' '; 1500]),
                &[b' '; 1500],
            ),
            413,
            "at most 1000",
        ),
        (
            post(
                &service.addr,
                hook,
                &signature("hook-key-1", now, b"{not json"),
                b"{not json",
            ),
            400,
            "not JSON",
        ),
        (
            post(
                &service.addr,
                "/hooks/nothing",
                &signature("hook-key-1", now, body),
                body,
            ),
            404,
            "no flow named \"nothing\"",
        ),
    ];
    for ((status, words), expected, says) in refusals {
        assert_eq!(status, expected, "{words}");
        assert!(words.contains(says), "{expected}: {words}");
    }
    assert!(
        runs_of(&scratch, "on hook").is_empty(),
        "no refused request ran the flow"
    );

    let signed = signature("hook-key-1", now, body);
    let taken = post(&service.addr, hook, &signed, body);
    assert_eq!(taken.0, 202, "{taken:?}");
    let replayed = post(&service.addr, hook, &signed, body);
    assert_eq!(replayed.0, 401, "{replayed:?}");
    assert!(replayed.1.contains("replay"), "{replayed:?}");
    let runs = wait_until(&scratch, "the webhook's run", |r| {
        count(r, "on hook", "Successful") >= 1
    });
    drop(service);
    let run = runs.iter().find(|r| r["flow"] == "on hook").unwrap();
    assert_eq!(run["trigger"], "event: webhook");
    assert_eq!(run["records_written"], 2, "the body's records: {run}");
    assert_eq!(
        runs_of(&scratch, "on hook").len(),
        1,
        "one run, not one per request"
    );
}

#[test]
fn a_file_trigger_runs_once_per_new_file_when_it_has_stopped_changing() {
    let scratch = Scratch::new();
    let flows = scratch.path().join("flows");
    let inbox = flows.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let rows = |n: usize, from: usize| -> String {
        (from..from + n)
            .map(|i| format!("{i},item {i}\n"))
            .collect()
    };
    let csv = |n: usize| format!("id,name\n{}", rows(n, 1));
    std::fs::write(inbox.join("before.csv"), csv(3)).unwrap();
    let sample = scratch.write("sample.csv", &csv(1));
    let path = served_flow(
        &scratch,
        "inbox",
        ("source.file", json!({"path": "${trigger_file}"})),
        json!({"type": "event", "source": "file", "folder": "inbox", "pattern": "*.csv", "settle_seconds": 1}),
        json!({"params": {"trigger_file": sample}}),
    );
    // A file there before the flow is active is not new to it.
    std::thread::sleep(Duration::from_millis(1100));
    activate(&scratch, &path);

    let service = serve(&scratch, "2026-12-02T08:00:00Z", 1.0, &[]);
    std::fs::write(inbox.join("a.csv"), csv(5)).unwrap();
    std::fs::write(inbox.join("notes.txt"), "not a match").unwrap();
    // Written in two parts, 0.6 s apart: taken once, whole.
    std::fs::write(inbox.join("b.csv"), csv(4)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let mut b = std::fs::OpenOptions::new()
        .append(true)
        .open(inbox.join("b.csv"))
        .unwrap();
    std::io::Write::write_all(&mut b, rows(6, 5).as_bytes()).unwrap();
    drop(b);
    wait_until(&scratch, "a run per file", |r| {
        count(r, "inbox", "Successful") >= 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(service.stop().0.success());
    let runs = runs_of(&scratch, "inbox");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let by_file = |name: &str| {
        runs.iter()
            .find(|r| r["trigger"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no run for {name}: {runs:#?}"))
            .clone()
    };
    assert_eq!(by_file("a.csv")["records_written"], 5);
    assert_eq!(by_file("b.csv")["records_written"], 10, "the whole file");
    assert!(
        by_file("a.csv")["trigger"]
            .as_str()
            .unwrap()
            .starts_with("event: file "),
        "{runs:#?}"
    );

    // Down for a while: a file that arrives meanwhile is taken at the next start, and
    // the files taken before are not taken again.
    std::fs::write(inbox.join("c.csv"), csv(2)).unwrap();
    let service = serve(&scratch, "2026-12-02T09:00:00Z", 1.0, &[]);
    wait_until(&scratch, "the file that came while down", |r| {
        count(r, "inbox", "Successful") >= 3
    });
    // The folder goes away and comes back: the flow waits for it, then goes on.
    std::fs::remove_dir_all(&inbox).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("d.csv"), csv(1)).unwrap();
    wait_until(&scratch, "a file in the folder that came back", |r| {
        count(r, "inbox", "Successful") >= 4
    });
    std::thread::sleep(Duration::from_millis(1500));
    let mut service = service;
    service.wait_for_log("cannot read the watched folder");
    drop(service);
    let runs = runs_of(&scratch, "inbox");
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert!(runs[2]["trigger"].as_str().unwrap().ends_with("c.csv"));
    assert!(runs[3]["trigger"].as_str().unwrap().ends_with("d.csv"));
}

#[test]
fn new_objects_under_an_s3_prefix_start_a_run_that_reads_just_them() {
    let scratch = Scratch::new();
    let s3 = SupportServer::start("s3_server.py", &["--bucket", "drop"]);
    let endpoint = s3.info["endpoint"].as_str().unwrap().to_string();
    let (key_id, secret) = (
        s3.info["access_key_id"].as_str().unwrap(),
        s3.info["secret_access_key"].as_str().unwrap(),
    );
    add_connection(
        &scratch,
        &[
            "lake",
            "--connector",
            "s3",
            "--auth",
            "access_keys",
            "--set",
            "region=us-east-1",
            "--set",
            &format!("endpoint_url={endpoint}"),
        ],
        &format!("{key_id}\n{secret}\n"),
    );
    let put = |key: &str, rows: usize| {
        let body: String = std::iter::once("id,name\n".to_string())
            .chain((1..=rows).map(|i| format!("{i},item {i}\n")))
            .collect();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .http_client(tributary::connectors::s3::http_client())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                key_id, secret, None, None, "tests",
            ))
            .build();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(
                aws_sdk_s3::Client::from_conf(config)
                    .put_object()
                    .bucket("drop")
                    .key(key)
                    .body(body.into_bytes().into())
                    .send(),
            )
            .unwrap();
    };
    // One object is there to learn the fields from; it is not new to the flow.
    put("in/0.csv", 1);
    let path = served_flow(
        &scratch,
        "s3 drop",
        (
            "source.s3",
            json!({"connection": "lake", "bucket": "drop", "prefix": "in/", "incremental": true}),
        ),
        json!({"type": "event", "source": "s3", "connection": "lake", "bucket": "drop", "prefix": "in/", "interval_seconds": 60}),
        Value::Null,
    );
    std::thread::sleep(Duration::from_millis(1100));
    activate(&scratch, &path);
    // A minute a second: the prefix is listed every second.
    let mut service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(runs_of(&scratch, "s3 drop").is_empty(), "nothing new yet");
    put("in/a.csv", 5);
    wait_until(&scratch, "a run for the new object", |r| {
        count(r, "s3 drop", "Successful") >= 1
    });
    put("in/b.csv", 3);
    wait_until(&scratch, "a run for the next one", |r| {
        count(r, "s3 drop", "Successful") >= 2
    });
    // Nothing new: no more runs.
    std::thread::sleep(Duration::from_millis(2500));
    let runs = runs_of(&scratch, "s3 drop");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0]["trigger"], "event: s3://drop/in/");
    // The first run reads every object (the source has no watermark yet); the second
    // just the new one.
    assert_eq!(runs[0]["records_written"], 6, "{runs:#?}");
    assert_eq!(runs[1]["records_written"], 3, "{runs:#?}");
    assert!(
        service.logs().iter().all(|l| l["level"] != "WARN"),
        "{:#?}",
        service.logs()
    );
    service.wait_for_log("run succeeded");
}

#[test]
fn changed_salesforce_records_start_a_run_that_reads_just_them() {
    let scratch = Scratch::new();
    let org = SupportServer::start("salesforce_server.py", &[]);
    salesforce_connection(&scratch, &org, PASSPHRASE);
    let path = served_flow(
        &scratch,
        "new deals",
        (
            "source.salesforce",
            json!({"connection": "crm", "object": "Opportunity",
                   "fields": ["Id", "Name", "SystemModstamp"], "incremental": "SystemModstamp"}),
        ),
        json!({"type": "event", "source": "salesforce", "connection": "crm", "object": "Opportunity", "interval_seconds": 60}),
        Value::Null,
    );
    activate(&scratch, &path);
    std::thread::sleep(Duration::from_millis(1100));
    // A minute a second: Salesforce is asked every second.
    let service = serve(&scratch, "2026-12-02T08:00:00Z", 60.0, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        runs_of(&scratch, "new deals").is_empty(),
        "nothing changed yet"
    );
    let stamp = || {
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string()
    };
    org.control(json!({"upsert": [
        {"Id": "006000000000999", "Name": "Deal 999", "SystemModstamp": stamp()},
    ]}));
    wait_until(&scratch, "a run for the changed deal", |r| {
        count(r, "new deals", "Successful") >= 1
    });
    std::thread::sleep(Duration::from_millis(1100));
    org.control(json!({"upsert": [
        {"Id": "006000000000017", "Name": "Deal 17 again", "SystemModstamp": stamp()},
    ]}));
    wait_until(&scratch, "a run for the next change", |r| {
        count(r, "new deals", "Successful") >= 2
    });
    std::thread::sleep(Duration::from_millis(2500));
    drop(service);
    let runs = runs_of(&scratch, "new deals");
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0]["trigger"], "event: salesforce:crm/Opportunity");
    // The first run has no watermark yet, so it reads every deal; the next one just the
    // changed deal.
    assert_eq!(runs[1]["records_written"], 1, "{runs:#?}");
    let counts: Vec<String> = org
        .requests()
        .iter()
        .filter_map(|r| r["soql"].as_str().map(str::to_string))
        .filter(|q| q.starts_with("SELECT COUNT() FROM Opportunity WHERE SystemModstamp > "))
        .collect();
    assert!(counts.len() >= 3, "asked every second: {counts:?}");
}

#[test]
fn the_service_prunes_old_runs_as_it_is_told() {
    let scratch = Scratch::new();
    let path = orders_flow(&scratch, "kept", json!({"type": "on_demand"}), Value::Null);
    for _ in 0..3 {
        let out = scratch.cli(&["run", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let ids: Vec<Value> = runs_of(&scratch, "kept")
        .iter()
        .map(|r| r["execution_id"].clone())
        .collect();
    let mut service = serve(&scratch, "2026-12-02T08:00:00Z", 1.0, &["--keep-runs", "1"]);
    service.wait_for_log("old runs pruned");
    drop(service);
    let left = runs_of(&scratch, "kept");
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["execution_id"], ids[2], "the newest stays");
    let folders = std::fs::read_dir(scratch.home().join("data/runs"))
        .unwrap()
        .count();
    assert_eq!(folders, 1, "the pruned runs' folders went with them");
}

#[test]
fn a_state_database_that_cannot_be_opened_stops_the_service_with_its_path() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path().join("flows")).unwrap();
    let shared = scratch.home().join("config/state.json");
    let expected = if shared.exists() {
        // The state in PostgreSQL, on a port nothing listens on.
        let url = "postgres://tributary:tributary-test@127.0.0.1:1/postgres";
        std::fs::write(&shared, json!({ "url": url }).to_string()).unwrap();
        [
            "cannot reach the run state in PostgreSQL",
            "127.0.0.1:1/postgres",
        ]
    } else {
        // Where the database should be, a folder.
        std::fs::create_dir_all(scratch.home().join("data/state.sqlite")).unwrap();
        ["cannot open the run state", "state.sqlite"]
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--listen", "127.0.0.1:0", "--flows"])
        .arg(scratch.path().join("flows"))
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        expected.iter().all(|e| stderr(&out).contains(e)),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("tributary-test"), "no password");
}

/// Two services on two machines (two homes) sharing one state database — the PostgreSQL
/// pass of the test script — watch the same scheduled flow: each run time starts one run,
/// on one of them, and both list the same history. With the state in a file of each home
/// there is nothing shared to test.
#[test]
fn services_sharing_the_state_start_each_run_time_once() {
    let first = Scratch::new();
    let shared = first.home().join("config/state.json");
    if !shared.exists() {
        return;
    }
    let second = Scratch::new();
    std::fs::copy(&shared, second.home().join("config/state.json")).unwrap();
    let trigger = json!({"type": "schedule", "expression": "rate(1 minutes)"});
    let path = orders_flow(&first, "pooled", trigger.clone(), Value::Null);
    orders_flow(&second, "pooled", trigger, Value::Null);
    // Activated on one machine, active on both: the switch is in the shared state.
    activate(&first, &path);
    let a = serve(&first, "2026-12-02T08:00:00Z", 60.0, &[]);
    let b = serve(&second, "2026-12-02T08:00:00Z", 60.0, &[]);
    let runs = wait_until(&first, "five runs", |r| {
        count(r, "pooled", "Successful") >= 5
    });
    drop(a);
    drop(b);
    let runs: Vec<&Value> = runs.iter().filter(|r| r["flow"] == "pooled").collect();
    let mut due: Vec<&str> = runs
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    let all = due.len();
    due.sort();
    due.dedup();
    assert_eq!(due.len(), all, "a run time ran twice: {runs:#?}");
    assert!(
        runs.iter().all(|r| r["status"] == "Successful"),
        "no run was refused for the other's: {runs:#?}"
    );
    assert_eq!(history(&first), history(&second), "one history");
}
