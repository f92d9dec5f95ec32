//! `tributary validate` finds every kind of problem, says where it is, and exits 2.

mod common;

use common::*;
use serde_json::{Value, json};

fn demo(id: &str) -> Value {
    node(
        id,
        "source.demo_crm",
        json!({"object": "Opportunity", "records": 10}),
    )
}

fn lake(id: &str) -> Value {
    node(id, "destination.local", json!({"folder": "out"}))
}

/// Validates `flow` in a scratch folder; returns the problems as printed.
fn problems(flow: &Value) -> Vec<String> {
    let scratch = Scratch::new();
    let path = scratch.flow("flow.json", flow);
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    let err = stderr(&o);
    if o.status.code() == Some(0) {
        return Vec::new();
    }
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().skip(1).map(|l| l.trim().to_string()).collect()
}

fn assert_problem(flow: &Value, wanted: &[&str]) {
    let found = problems(flow);
    assert!(
        found.iter().any(|p| wanted.iter().all(|w| p.contains(w))),
        "no problem mentions all of {wanted:?}; problems: {found:#?}"
    );
}

#[test]
fn a_good_flow_passes() {
    assert!(problems(&flow(vec![demo("src"), lake("out")], &[("src", "out")])).is_empty());
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let scratch = Scratch::new();
    let path = scratch.write(
        "broken.json",
        "{\n  \"format\": \"tributary.flow/1\",\n  \"name\": \"x\"\n  \"nodes\": []\n}\n",
    );
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("broken.json") && err.contains("line 4, column 3"),
        "{err}"
    );
}

#[test]
fn unknown_format_version() {
    let mut f = flow(vec![demo("src"), lake("out")], &[("src", "out")]);
    f["format"] = json!("tributary.flow/9");
    assert_problem(&f, &["/format", "unknown flow format `tributary.flow/9`"]);
}

#[test]
fn wrong_shapes_name_their_path() {
    let mut f = flow(vec![demo("src"), lake("out")], &[("src", "out")]);
    f["nodes"][1]["position"] = json!("left");
    assert_problem(&f, &["node `out`", "/nodes/1/position"]);
}

#[test]
fn unknown_node_type() {
    assert_problem(
        &flow(
            vec![
                demo("src"),
                node("x", "transform.teleport", json!({})),
                lake("out"),
            ],
            &[("src", "x"), ("x", "out")],
        ),
        &[
            "node `x`",
            "/nodes/1/type",
            "unknown node type `transform.teleport`",
            "transform.filter",
        ],
    );
}

#[test]
fn duplicate_node_id() {
    assert_problem(
        &flow(vec![demo("a"), lake("a")], &[("a", "a")]),
        &["/nodes/1/id", "`a` is used by more than one node"],
    );
}

#[test]
fn edge_to_a_missing_node() {
    assert_problem(
        &flow(
            vec![demo("src"), lake("out")],
            &[("src", "out"), ("src", "ghost")],
        ),
        &["/edges/1/to", "`ghost`", "not in the flow"],
    );
}

#[test]
fn a_cycle() {
    let nodes = vec![
        demo("src"),
        node("a", "transform.map_all", json!({})),
        node("b", "transform.map_all", json!({})),
        lake("out"),
    ];
    let f = flow(nodes, &[("src", "a"), ("a", "b"), ("b", "a"), ("b", "out")]);
    assert_problem(&f, &["cycle", "`a`", "`b`"]);
}

#[test]
fn a_source_with_no_way_to_a_destination() {
    assert_problem(
        &flow(
            vec![demo("src"), demo("lonely"), lake("out")],
            &[("src", "out")],
        ),
        &["node `lonely`", "no way to a destination"],
    );
}

#[test]
fn a_destination_with_no_input() {
    assert_problem(
        &flow(
            vec![demo("src"), lake("out"), lake("idle")],
            &[("src", "out")],
        ),
        &["node `idle`", "has no input"],
    );
}

#[test]
fn edges_into_sources_and_out_of_destinations() {
    assert_problem(
        &flow(
            vec![demo("src"), lake("out"), demo("s2")],
            &[("src", "out"), ("out", "s2")],
        ),
        &["a source takes no input"],
    );
    assert_problem(
        &flow(
            vec![demo("src"), lake("out"), demo("s2")],
            &[("src", "out"), ("out", "s2")],
        ),
        &["records cannot leave a destination"],
    );
}

#[test]
fn a_transform_naming_a_field_its_input_lacks() {
    let f = flow(
        vec![
            demo("src"),
            node(
                "m",
                "transform.mask",
                json!({"fields": ["CardNumber"], "mode": "all"}),
            ),
            lake("out"),
        ],
        &[("src", "m"), ("m", "out")],
    );
    assert_problem(
        &f,
        &[
            "node `m`",
            "/nodes/1/config/fields/0",
            "no field `CardNumber`",
            "CreditCard",
        ],
    );
}

#[test]
fn fields_added_upstream_are_known_downstream() {
    let f = flow(
        vec![
            demo("src"),
            node(
                "merge",
                "transform.merge",
                json!({"output": "ContactName", "format": "{FirstName} {LastName}"}),
            ),
            node(
                "cut",
                "transform.truncate",
                json!({"fields": ["ContactName"], "length": 5}),
            ),
            node(
                "gone",
                "transform.map_all",
                json!({"exclude": ["ContactName"]}),
            ),
            node(
                "late",
                "transform.truncate",
                json!({"fields": ["ContactName"], "length": 5}),
            ),
            lake("out"),
        ],
        &[
            ("src", "merge"),
            ("merge", "cut"),
            ("cut", "gone"),
            ("gone", "late"),
            ("late", "out"),
        ],
    );
    let found = problems(&f);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("node `late`") && found[0].contains("no field `ContactName`"));
}

#[test]
fn arithmetic_on_a_non_numeric_field() {
    let f = flow(
        vec![
            demo("src"),
            node(
                "calc",
                "transform.arithmetic",
                json!({"operations": [{"output": "x", "left": "StageName", "operator": "multiply", "right": 2}]}),
            ),
            lake("out"),
        ],
        &[("src", "calc"), ("calc", "out")],
    );
    assert_problem(
        &f,
        &[
            "node `calc`",
            "/nodes/1/config/operations/0/left",
            "`StageName` is a string",
            "numbers only",
        ],
    );
}

#[test]
fn an_unfilled_placeholder() {
    let f = flow(
        vec![
            demo("src"),
            node("out", "destination.local", json!({"folder": "${lake}/x"})),
        ],
        &[("src", "out")],
    );
    assert_problem(
        &f,
        &[
            "node `out`",
            "/nodes/1/config/folder",
            "`${lake}` has no value",
            "--param lake=",
        ],
    );
}

#[test]
fn a_placeholder_filled_on_the_command_line() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            demo("src"),
            node("out", "destination.local", json!({"folder": "${lake}/x"})),
        ],
        &[("src", "out")],
    );
    let path = scratch.flow("flow.json", &f);
    let o = scratch.cli(&["validate", path.to_str().unwrap(), "--param", "lake=/tmp"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_connection_that_does_not_exist() {
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Lead", "connection": "my-salesforce"}),
            ),
            lake("out"),
        ],
        &[("src", "out")],
    );
    assert_problem(
        &f,
        &[
            "node `src`",
            "/nodes/0/config/connection",
            "no connection named `my-salesforce`",
        ],
    );
}

#[test]
fn config_errors_name_the_field() {
    let f = flow(
        vec![
            node("src", "source.demo_crm", json!({"object": "Spaceship"})),
            lake("out"),
        ],
        &[("src", "out")],
    );
    assert_problem(&f, &["node `src`", "/nodes/0/config/object", "Spaceship"]);
    let f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                json!({"object": "Lead", "recrods": 5}),
            ),
            lake("out"),
        ],
        &[("src", "out")],
    );
    assert_problem(&f, &["unknown setting `recrods`", "`records`"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let f = flow(
        vec![
            demo("src"),
            node(
                "m",
                "transform.mask",
                json!({"fields": ["Nope"], "mode": "all"}),
            ),
            node("t", "transform.unknown", json!({})),
            node("out", "destination.local", json!({"folder": "${missing}"})),
            lake("idle"),
        ],
        &[("src", "m"), ("m", "out"), ("src", "ghost")],
    );
    let found = problems(&f);
    assert!(found.len() >= 5, "{found:#?}");
}

#[test]
fn several_files_are_checked_in_one_call() {
    let scratch = Scratch::new();
    let good = scratch.flow(
        "good.json",
        &flow(vec![demo("src"), lake("out")], &[("src", "out")]),
    );
    let bad = scratch.flow("bad.json", &flow(vec![demo("src")], &[]));
    let o = scratch.cli(&["validate", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("good.json: ok"));
    assert!(stderr(&o).contains("bad.json: 1 problem"));
}

#[test]
fn a_missing_file_is_an_invalid_command() {
    let scratch = Scratch::new();
    let o = scratch.cli(&["validate", "/no/such/flow.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read flow file /no/such/flow.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schedule_expressions_are_checked_with_the_column_of_the_mistake() {
    for (expression, column) in [
        ("rate(banana)", 6),
        ("rate(0 days)", 6),
        ("rate(-5 minutes)", 6),
        ("", 1),
        ("rate(5 weeks)", 8),
    ] {
        let mut f = flow(vec![demo("src"), lake("out")], &[("src", "out")]);
        f["trigger"] = json!({"type": "schedule", "expression": expression});
        assert_problem(&f, &["/trigger/expression", &format!("at column {column}")]);
    }
    let mut good = flow(vec![demo("src"), lake("out")], &[("src", "out")]);
    good["trigger"] = json!({"type": "schedule", "expression": "rate(15 minutes)"});
    assert!(problems(&good).is_empty());
}

#[test]
fn node_ids_hold_only_safe_characters_and_problems_print_none_raw() {
    for (id, shown) in [
        ("la\u{200b}ke", "U+200B"),
        ("\u{1b}[2Jlake", "U+001B"),
        ("my lake", "U+0020"),
    ] {
        let found = problems(&flow(vec![demo("src"), lake(id)], &[("src", id)]));
        assert!(
            found
                .iter()
                .any(|p| p.contains("letters, digits") && p.contains(shown)),
            "{id:?}: {found:#?}"
        );
        for p in &found {
            assert!(
                !p.chars().any(|c| c.is_control() || c == '\u{200b}'),
                "printed raw: {p:?}"
            );
        }
    }
}

/// `tributary validate` of a file holding `text`; its exit code and what it printed.
fn validate_text(text: &str) -> (Option<i32>, String) {
    let scratch = Scratch::new();
    let path = scratch.write("flow.json", text);
    let o = scratch.cli(&["validate", path.to_str().unwrap()]);
    (o.status.code(), stderr(&o) + stdout(&o).as_str())
}

#[test]
fn a_key_given_twice_is_refused_with_both_places() {
    let mut text =
        serde_json::to_string_pretty(&flow(vec![demo("src"), lake("out")], &[("src", "out")]))
            .unwrap();
    text = text.replace(
        "\"records\": 10",
        "\"records\": 50,\n        \"records\": 7",
    );
    let (code, said) = validate_text(&text);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("\"records\" is given twice"), "{said}");
    assert!(said.matches("line ").count() >= 2, "both places: {said}");
}

#[test]
fn misleading_messages_say_what_to_change() {
    let good =
        serde_json::to_string_pretty(&flow(vec![demo("src"), lake("out")], &[("src", "out")]))
            .unwrap();
    // A byte order mark is read past.
    let (code, said) = validate_text(&format!("\u{feff}{good}"));
    assert_eq!(code, Some(0), "{said}");
    // A list where the flow object belongs.
    let (code, said) = validate_text("[1, 2]");
    assert_eq!(code, Some(2));
    assert!(
        said.contains("one JSON object") && !said.contains("struct"),
        "{said}"
    );
    // serde's words for numbers.
    let (_, said) = validate_text(&good.replace("\"records\": 10", "\"records\": 1e30"));
    assert!(
        said.contains("the number 1e+30") && said.contains("whole number"),
        "{said}"
    );
    assert!(
        !said.contains("usize") && !said.contains("floating point"),
        "{said}"
    );
    // A placeholder without its closing brace.
    let mut f = flow(vec![demo("src"), lake("out")], &[("src", "out")]);
    f["nodes"][1]["config"]["folder"] = json!("${output");
    assert_problem(&f, &["/nodes/1/config/folder", "no closing"]);
}

#[test]
fn a_folder_or_a_fifo_given_as_the_flow_is_refused_at_once() {
    let scratch = Scratch::new();
    let o = scratch.cli(&["validate", scratch.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("a folder"), "{}", stderr(&o));
    let fifo = scratch.path().join("flow.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Would wait forever for a writer if it were opened.
    let o = scratch.cli(&["validate", fifo.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

#[test]
fn learning_fields_from_every_record_is_for_files_only() {
    for source in [
        node(
            "api",
            "source.rest",
            json!({"url": "http://127.0.0.1:9/records", "new_fields": "add"}),
        ),
        node(
            "api",
            "source.s3",
            json!({"bucket": "lake", "region": "eu-west-1", "new_fields": "add"}),
        ),
    ] {
        assert_problem(
            &flow(vec![source, lake("out")], &[("api", "out")]),
            &["api", "new_fields", "only the File source"],
        );
    }
}

/// A formula's mistakes are said by `validate` with the node, the field's JSON path and
/// the line and column in the expression; a preview of a good one shows its values.
#[test]
fn formula_mistakes_are_said_at_their_line_and_column() {
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "crm",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 20}),
            ),
            node(
                "compute",
                "transform.formula",
                json!({"fields": [
                    {"name": "Weighted", "expression": "round(Amout * Probability / 100, 2)"},
                    {"name": "Band", "expression": "if(Amount > 1000,\n  \"big\",\n  1)"}
                ]}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("crm", "compute"), ("compute", "out")],
    );
    let path = scratch.flow("flow.json", &f);
    let out = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let text = said(&out);
    assert!(
        text.contains("node `compute` (/nodes/1/config/fields/0/expression): line 1, column 7: there is no field `Amout` (did you mean `Amount`?)"),
        "{text}"
    );
    assert!(
        text.contains("node `compute` (/nodes/1/config/fields/1/expression): line 1, column 1: if gives text or a whole number: both must be of one kind"),
        "{text}"
    );

    let mut fixed = f.clone();
    fixed["nodes"][1]["config"]["fields"] = json!([
        {"name": "Weighted", "expression": "round(Amount * Probability / 100, 2)"},
        {"name": "Band", "expression": "if(Weighted > 1000, \"big\", \"small\")"}
    ]);
    let path = scratch.flow("flow.json", &fixed);
    let out = scratch.cli(&[
        "preview",
        path.to_str().unwrap(),
        "--node",
        "compute",
        "--limit",
        "5",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let preview: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for r in preview["records"].as_array().unwrap() {
        let weighted = (r["Amount"].as_f64().unwrap() * r["Probability"].as_f64().unwrap() / 100.0
            * 100.0)
            .round()
            / 100.0;
        assert_eq!(r["Weighted"].as_f64().unwrap(), weighted, "{r}");
        let band = if weighted > 1000.0 { "big" } else { "small" };
        assert_eq!(r["Band"], band, "{r}");
    }
}
