//! When scheduled flows run: `tributary schedule next` against a table of instants worked
//! out by hand — rates, both cron forms, `L`, `W` and `#`, the daylight-saving changes of
//! Europe/Berlin and America/New_York, start and end — and the mistakes it refuses.

mod common;

use common::*;
use serde_json::{Value, json};

/// A flow on `trigger`: the demo source into a folder.
fn scheduled(trigger: Value) -> Value {
    let mut f = flow(
        vec![
            node(
                "crm",
                "source.demo_crm",
                json!({"object": "Account", "records": 5}),
            ),
            node("out", "destination.local", json!({"folder": "out"})),
        ],
        &[("crm", "out")],
    );
    f["trigger"] = trigger;
    f
}

fn next(trigger: Value, from: &str, count: usize) -> Vec<String> {
    let scratch = Scratch::new();
    let path = scratch.flow("flow.json", &scheduled(trigger));
    let o = scratch.cli(&[
        "schedule",
        "next",
        path.to_str().unwrap(),
        "--from",
        from,
        "--count",
        &count.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

fn cron(expression: &str, zone: Option<&str>) -> Value {
    let mut t = json!({"type": "schedule", "expression": expression});
    if let Some(zone) = zone {
        t["time_zone"] = json!(zone);
    }
    t
}

#[test]
fn run_times_follow_the_expression_the_time_zone_and_the_clock_changes() {
    let cases: &[(Value, &str, &[&str])] = &[
        // Rates count from 1970 without a start: every quarter hour on the quarter.
        (
            cron("rate(15 minutes)", None),
            "2026-12-02T10:07:00Z",
            &[
                "2026-12-02T10:15:00+00:00",
                "2026-12-02T10:30:00+00:00",
                "2026-12-02T10:45:00+00:00",
            ],
        ),
        // A day of a rate is 24 hours, across the spring-forward change too.
        (
            json!({"type": "schedule", "expression": "rate(1 days)",
                   "time_zone": "Europe/Berlin", "start": "2026-03-28T01:30:00"}),
            "2026-03-27T00:00:00Z",
            &[
                "2026-03-28T01:30:00+01:00",
                "2026-03-29T01:30:00+01:00",
                "2026-03-30T02:30:00+02:00",
            ],
        ),
        // 02:30 does not exist in Berlin on 29 March 2026: that run is skipped.
        (
            cron("cron(30 2 * * ? *)", Some("Europe/Berlin")),
            "2026-03-27T12:00:00Z",
            &[
                "2026-03-28T02:30:00+01:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ],
        ),
        // 02:30 happens twice in Berlin on 25 October 2026: it runs once, the first time.
        (
            cron("cron(30 2 * * ? *)", Some("Europe/Berlin")),
            "2026-10-24T12:00:00Z",
            &[
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00",
            ],
        ),
        // New York's fall-back hour: 01:00 runs once, then 02:00 an hour and a half later.
        (
            cron("cron(0 * * * ? *)", Some("America/New_York")),
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T02:00:00-05:00",
                "2026-11-01T03:00:00-05:00",
            ],
        ),
        // New York's spring-forward day has no 02:30.
        (
            cron("cron(30 2 * * ? *)", Some("America/New_York")),
            "2026-03-07T12:00:00Z",
            &[
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00",
                "2026-03-11T02:30:00-04:00",
            ],
        ),
        // L: the last day of each month.
        (
            cron("cron(0 12 L * ? *)", None),
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-31T12:00:00+00:00",
                "2026-02-28T12:00:00+00:00",
                "2026-03-31T12:00:00+00:00",
            ],
        ),
        // 15W: the weekday nearest the 15th (Sundays in February and March 2026).
        (
            cron("cron(0 9 15W * ? *)", None),
            "2026-02-01T00:00:00Z",
            &[
                "2026-02-16T09:00:00+00:00",
                "2026-03-16T09:00:00+00:00",
                "2026-04-15T09:00:00+00:00",
            ],
        ),
        // 1W on a Saturday the 1st is the Monday after; 31W on a Sunday the 31st the Friday
        // before; never in another month.
        (
            cron("cron(0 9 1W AUG ? 2026)", None),
            "2026-01-01T00:00:00Z",
            &["2026-08-03T09:00:00+00:00"],
        ),
        (
            cron("cron(0 9 31W MAY ? 2026)", None),
            "2026-01-01T00:00:00Z",
            &["2026-05-29T09:00:00+00:00"],
        ),
        // LW: the last weekday of the month.
        (
            cron("cron(0 18 LW * ? *)", None),
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-30T18:00:00+00:00",
                "2026-02-27T18:00:00+00:00",
                "2026-03-31T18:00:00+00:00",
            ],
        ),
        // 3#2: the second Tuesday (1 is Sunday in EventBridge's day of the week).
        (
            cron("cron(0 10 ? * 3#2 *)", None),
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-13T10:00:00+00:00",
                "2026-02-10T10:00:00+00:00",
                "2026-03-10T10:00:00+00:00",
            ],
        ),
        // 6L and FRIL: the last Friday.
        (
            cron("cron(0 10 ? * FRIL *)", None),
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-30T10:00:00+00:00",
                "2026-02-27T10:00:00+00:00",
                "2026-03-27T10:00:00+00:00",
            ],
        ),
        // Steps, ranges and names: every 20 minutes from :05, 8 to 9, Monday to Friday.
        (
            cron("cron(5/20 8-9 ? * MON-FRI *)", None),
            "2026-12-04T09:30:00Z",
            &[
                "2026-12-04T09:45:00+00:00",
                "2026-12-07T08:05:00+00:00",
                "2026-12-07T08:25:00+00:00",
            ],
        ),
        // Years: only those named; then none is left.
        (
            cron("cron(0 0 1 1 ? 2027-2028)", None),
            "2026-12-01T00:00:00Z",
            &["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"],
        ),
        // The standard five fields: weekdays at 09:00 (1-5 is Monday to Friday there).
        (
            cron("0 9 * * 1-5", Some("Europe/Berlin")),
            "2026-12-04T10:00:00Z",
            &[
                "2026-12-07T09:00:00+01:00",
                "2026-12-08T09:00:00+01:00",
                "2026-12-09T09:00:00+01:00",
            ],
        ),
        // Standard cron with both day fields: the 13th or any Friday.
        (
            cron("cron(0 0 13 * 5)", None),
            "2026-11-01T00:00:00Z",
            &[
                "2026-11-06T00:00:00+00:00",
                "2026-11-13T00:00:00+00:00",
                "2026-11-20T00:00:00+00:00",
            ],
        ),
        // Start and end bound the runs; the end is the last instant that may run.
        (
            json!({"type": "schedule", "expression": "rate(1 hours)", "time_zone": "Europe/Berlin",
                   "start": "2026-12-01T08:00:00", "end": "2026-12-01T10:00:00+01:00"}),
            "2026-11-30T00:00:00Z",
            &[
                "2026-12-01T08:00:00+01:00",
                "2026-12-01T09:00:00+01:00",
                "2026-12-01T10:00:00+01:00",
            ],
        ),
        // A run at the --from instant itself is listed.
        (
            cron("cron(0 12 * * ? *)", None),
            "2026-12-02T12:00:00Z",
            &[
                "2026-12-02T12:00:00+00:00",
                "2026-12-03T12:00:00+00:00",
                "2026-12-04T12:00:00+00:00",
            ],
        ),
    ];
    for (trigger, from, expected) in cases {
        // Fewer than three: asked for five, to show that no other run is left.
        let count = if expected.len() < 3 { 5 } else { 3 };
        assert_eq!(next(trigger.clone(), from, count), *expected, "{trigger}");
    }
}

#[test]
fn validate_refuses_a_bad_schedule_where_it_is_wrong_and_shows_the_next_runs() {
    let scratch = Scratch::new();
    for (trigger, says) in [
        (cron("cron(0 25 * * ? *)", None), "at column 8"),
        (cron("cron(0 10 * * * *)", None), "write ? in one"),
        (cron("cron(0 10 ? * 3#7 *)", None), "1 to 5"),
        (cron("rate(banana)", None), "at column 6"),
        (
            cron("rate(1 hours)", Some("Europe/Berln")),
            "did you mean Europe/Berlin?",
        ),
        (
            json!({"type": "schedule", "expression": "rate(1 hours)",
                   "start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}),
            "ends before it starts",
        ),
        (
            json!({"type": "schedule", "expression": "rate(1 hours)", "start": "tomorrow"}),
            "not a date and time",
        ),
    ] {
        let path = scratch.flow("flow.json", &scheduled(trigger.clone()));
        let o = scratch.cli(&["validate", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{trigger}");
        assert!(
            stderr(&o).contains(says) && stderr(&o).contains("/trigger/"),
            "{trigger}: {}",
            stderr(&o)
        );
        let o = scratch.cli(&["schedule", "next", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{trigger}");
        assert!(stderr(&o).contains(says), "{trigger}: {}", stderr(&o));
    }
    // A good schedule: three next runs under the verdict.
    let path = scratch.flow(
        "flow.json",
        &scheduled(cron("cron(0 6 * * ? *)", Some("Europe/Berlin"))),
    );
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let runs = stdout(&o)
        .lines()
        .find(|l| l.trim_start().starts_with("next runs:"))
        .map(|l| l.matches("T06:00:00+0").count());
    assert_eq!(runs, Some(3), "{}", stdout(&o));
    // A flow on demand has no run times.
    let path = scratch.flow("flow.json", &scheduled(json!({"type": "on_demand"})));
    let o = scratch.cli(&["schedule", "next", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("on demand"), "{}", stderr(&o));
}

#[test]
fn flows_lists_a_folders_flows_with_their_next_and_last_runs() {
    let scratch = Scratch::new();
    let folder = scratch.path().join("team-flows");
    std::fs::create_dir_all(&folder).unwrap();
    let mut daily = scheduled(cron("cron(0 6 * * ? *)", Some("Europe/Berlin")));
    daily["name"] = json!("Daily accounts");
    std::fs::write(folder.join("daily.json"), daily.to_string()).unwrap();
    let mut manual = scheduled(json!({"type": "on_demand"}));
    manual["name"] = json!("By hand");
    std::fs::write(folder.join("manual.json"), manual.to_string()).unwrap();
    std::fs::write(
        folder.join("broken.json"),
        r#"{"format": "tributary.flow/1", "name": "Broken", "nodes": [}"#,
    )
    .unwrap();
    std::fs::write(folder.join("lookup.json"), r#"{"DE": "Germany"}"#).unwrap();
    let o = scratch.cli(&["run", folder.join("manual.json").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = scratch.cli(&["flows", folder.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(listed.len(), 3, "the data file is not a flow: {listed:#?}");
    let by_file = |name: &str| {
        listed
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    let daily = by_file("daily.json");
    assert_eq!(daily["trigger"], "cron(0 6 * * ? *) in Europe/Berlin");
    assert!(
        daily["next_run"].as_str().unwrap().contains("T06:00:00+0"),
        "{daily}"
    );
    assert!(daily["last_run"].is_null());
    let manual = by_file("manual.json");
    assert_eq!(manual["trigger"], "on demand");
    assert_eq!(manual["last_run"]["status"], "Successful");
    assert_eq!(manual["last_run"]["records_written"], 5);
    let broken = by_file("broken.json");
    assert!(
        broken["trigger"]
            .as_str()
            .unwrap()
            .contains("not a valid flow"),
        "{broken}"
    );
}
