//! The app's behaviour, driven headless through its accessibility tree with egui_kittest:
//! what a user clicks and types, and what they then see.

mod common;

use std::time::Duration;

use common::ui::{shows, wait_for};
use common::*;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tributary::paths::Dirs;
use tributary::ui::{AppState, Command, Tab, TributaryApp, Worker};

fn open(scratch: &Scratch, flow: &std::path::Path) -> Harness<'static, TributaryApp> {
    start(scratch, Some(flow))
}

/// The app as it opens: on `flow`, or on the welcome screen.
fn start(scratch: &Scratch, flow: Option<&std::path::Path>) -> Harness<'static, TributaryApp> {
    let dirs = Dirs::under(&scratch.home());
    let worker = Worker::new(dirs.clone(), || {});
    let state = AppState::open_initial(dirs, flow);
    let app = TributaryApp::new(state, worker);
    let mut harness = Harness::builder()
        .with_size([1440.0, 900.0])
        .build_ui_state(|ui, app: &mut TributaryApp| app.ui(ui), app);
    harness.run_steps(3);
    harness
}

/// Steps the app until the flow as it is now has been validated.
fn validated(harness: &mut Harness<'static, TributaryApp>) {
    wait_for(harness, "validation", |app| {
        app.state.analysis_revision == app.state.doc.revision
    });
}

fn demo_flow(scratch: &Scratch) -> std::path::PathBuf {
    let path = scratch.path().join("demo.json");
    std::fs::copy("flows/demo-opportunities-to-lake.json", &path).unwrap();
    path
}

fn apply(harness: &mut Harness<'static, TributaryApp>, command: Command) {
    let app = harness.state_mut();
    app.state.apply(command, &app.worker);
    harness.run_steps(2);
}

#[test]
fn the_demo_flow_shows_its_nodes_and_is_ready_to_run() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    for label in [
        "Opportunities",
        "Has e-mail",
        "Mask card",
        "Contact name",
        "Local lake",
    ] {
        assert!(shows(&harness, label), "the canvas shows {label}");
    }
    validated(&mut harness);
    assert!(shows(&harness, "ready to run"));
    assert!(
        harness.query_by_label("Sources").is_some()
            && harness.query_by_label("Destinations").is_some()
    );
}

#[test]
fn clicking_a_palette_entry_adds_a_node_and_the_inspector_offers_its_settings() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let before = harness.state().state.doc.flow.nodes.len();
    // The palette is longer than the window: a person scrolls down to the transforms.
    harness.get_by_label("Hash").scroll_to_me();
    harness.run_steps(3);
    harness.get_by_label("Hash").click();
    harness.run_steps(3);
    let app = harness.state();
    assert_eq!(app.state.doc.flow.nodes.len(), before + 1);
    let added = app.state.doc.flow.nodes.last().unwrap();
    assert_eq!(added.kind, "transform.hash");
    assert_eq!(app.state.selection, vec![added.id.clone()]);
    assert!(
        harness.query_by_label("Fields").is_some(),
        "the form shows the hash's settings"
    );
    assert!(harness.query_by_label("Salt").is_some());
    // A new, unconnected node has problems, shown on it.
    validated(&mut harness);
    assert!(shows(&harness, "problem"));
}

#[test]
fn selecting_a_node_previews_its_records_with_changes_highlighted() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["card".into()]));
    wait_for(
        &mut harness,
        "the preview",
        |app| matches!(&app.state.preview.result, Some((k, Ok(_))) if k.node == "card"),
    );
    let (_, table) = harness.state().state.preview.result.as_ref().unwrap();
    let table = table.as_ref().unwrap();
    // 100 records read; the e-mail check upstream drops a few.
    assert!(table.rows.len() > 90 && table.rows.len() <= 100);
    assert_eq!(table.rows_in, table.rows.len());
    let card = table
        .columns
        .iter()
        .position(|(n, _)| n == "CreditCard")
        .unwrap();
    assert!(table.rows[0][card].starts_with("************"));
    assert_eq!(card, 0, "the changed column comes first");
    let before = table.changed[0][card]
        .as_deref()
        .expect("marked as changed");
    assert_eq!(before.len(), 16, "the card before masking: {before}");
    assert_eq!(&before[12..], &table.rows[0][card][12..]);
    let name = table.columns.iter().position(|(n, _)| n == "Name").unwrap();
    assert!(table.changed[0][name].is_none());
    assert!(
        harness.query_by_label("CreditCard").is_some(),
        "the column header is shown"
    );
    assert!(
        harness.query_by_label(&table.rows[0][card]).is_some(),
        "the value is shown"
    );
    // The form lists the incoming fields for the field to mask.
    assert!(harness.query_by_label("Mode").is_some());
}

#[test]
fn the_run_button_runs_the_flow_and_shows_the_outcome() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    harness.get_by_label("▶ Run").click();
    harness.run_steps(2);
    assert_eq!(harness.state().state.tab, Tab::Run);
    wait_for(&mut harness, "the run", |app| {
        app.state.run.record.is_some()
    });
    let record = harness.state().state.run.record.clone().unwrap();
    assert_eq!(
        record.status,
        tributary::engine::RunStatus::Successful,
        "{:?}",
        record.error
    );
    assert_eq!(record.records_written, 4862);
    let files = files_under(&scratch.path().join("out/opportunities-lake"));
    let data: Vec<&String> = files.iter().filter(|f| f.ends_with(".parquet")).collect();
    assert_eq!(data.len(), 1, "{files:?}");
    assert!(
        files.iter().any(|f| f == "opportunities.sql"),
        "the DuckDB view beside the data: {files:?}"
    );
    assert!(shows(&harness, "Successful"));
    assert!(shows(&harness, "4862 written"));
    apply(&mut harness, Command::ShowTab(Tab::Cost));
    assert!(shows(&harness, "This run: $0.00"));
}

#[test]
fn the_history_tab_lists_the_flows_runs_from_the_app_and_the_command_line() {
    let scratch = Scratch::new();
    let flow = demo_flow(&scratch);
    // One run from the command line before the app opens.
    let o = scratch.cli(&["run", flow.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut harness = open(&scratch, &flow);
    apply(&mut harness, Command::ShowTab(Tab::History));
    assert_eq!(harness.state().state.past_runs.runs.len(), 1);
    assert!(shows(&harness, "successful"));
    assert!(shows(&harness, "manual"));
    // A run from the app joins it, newest first, without leaving the tab.
    apply(&mut harness, Command::Run);
    wait_for(&mut harness, "the run", |app| {
        app.state.run.record.is_some()
    });
    apply(&mut harness, Command::ShowTab(Tab::History));
    let past = &harness.state().state.past_runs.runs;
    assert_eq!(past.len(), 2);
    assert_eq!(
        Some(&past[0].execution_id),
        harness
            .state()
            .state
            .run
            .record
            .as_ref()
            .map(|r| &r.execution_id)
    );
    assert_eq!(past[0].records_written, 4862);
    assert_eq!(harness.query_all_by_label("Record").count(), 2);
    // Another flow has its own history.
    apply(&mut harness, Command::NewFlow);
    harness.run_steps(2);
    assert!(harness.state().state.past_runs.runs.is_empty());
    assert!(shows(&harness, "has not run yet"));
}

#[test]
fn delete_undo_and_redo() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["card".into()]));
    harness.key_press(egui::Key::Delete);
    harness.run_steps(2);
    let flow = &harness.state().state.doc.flow;
    assert!(flow.node("card").is_none());
    assert!(
        !flow
            .edges
            .iter()
            .any(|e| e.from == "card" || e.to == "card")
    );
    assert!(harness.state().state.doc.is_dirty());
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_steps(2);
    assert!(harness.state().state.doc.flow.node("card").is_some());
    assert!(!harness.state().state.doc.is_dirty());
    harness.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    harness.run_steps(2);
    assert!(harness.state().state.doc.flow.node("card").is_none());
}

#[test]
fn connections_that_make_no_sense_are_refused() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let edges = harness.state().state.doc.flow.edges.clone();
    apply(
        &mut harness,
        Command::Connect {
            from: "lake".into(),
            to: "card".into(),
        },
    );
    apply(
        &mut harness,
        Command::Connect {
            from: "name".into(),
            to: "crm".into(),
        },
    );
    apply(
        &mut harness,
        Command::Connect {
            from: "name".into(),
            to: "email".into(),
        },
    );
    assert_eq!(harness.state().state.doc.flow.edges, edges);
    assert!(shows(&harness, "would make a cycle"));
}

#[test]
fn duplicate_copies_nodes_and_the_edges_between_them() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::Select(vec!["card".into(), "name".into()]),
    );
    apply(&mut harness, Command::Duplicate);
    let flow = &harness.state().state.doc.flow;
    assert!(flow.node("card_2").is_some() && flow.node("name_2").is_some());
    assert!(
        flow.edges
            .iter()
            .any(|e| e.from == "card_2" && e.to == "name_2")
    );
    assert_eq!(
        harness.state().state.selection,
        vec!["card_2".to_string(), "name_2".to_string()]
    );
}

#[test]
fn problems_are_listed_and_lead_to_their_node() {
    let scratch = Scratch::new();
    let broken = scratch.flow(
        "broken.json",
        &flow(
            vec![
                node(
                    "src",
                    "source.demo_crm",
                    serde_json::json!({"object": "Lead", "records": 10}),
                ),
                node(
                    "mask",
                    "transform.mask",
                    serde_json::json!({"fields": ["CardNumber"], "mode": "all"}),
                ),
                node(
                    "out",
                    "destination.local",
                    serde_json::json!({"folder": "out"}),
                ),
            ],
            &[("src", "mask"), ("mask", "out")],
        ),
    );
    let mut harness = open(&scratch, &broken);
    validated(&mut harness);
    harness.get_by_label_contains("1 problem").click();
    harness.run_steps(2);
    assert_eq!(harness.state().state.tab, Tab::Problems);
    assert!(shows(&harness, "no field `CardNumber`"));
    harness.get_by_label("mask").click();
    harness.run_steps(2);
    assert_eq!(harness.state().state.selection, vec!["mask".to_string()]);
    // Running a flow with problems is refused with the problems shown.
    apply(&mut harness, Command::Run);
    wait_for(&mut harness, "the refusal", |app| {
        !app.state.run.is_running()
    });
    assert!(harness.state().state.run.record.is_none());
}

#[test]
fn save_writes_the_same_bytes_it_read() {
    let scratch = Scratch::new();
    let path = demo_flow(&scratch);
    let mut harness = open(&scratch, &path);
    apply(
        &mut harness,
        Command::SetLabel {
            node: "card".into(),
            label: "Hide card".into(),
        },
    );
    apply(
        &mut harness,
        Command::SetLabel {
            node: "card".into(),
            label: "Mask card".into(),
        },
    );
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_steps(2);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string("flows/demo-opportunities-to-lake.json").unwrap()
    );
    apply(
        &mut harness,
        Command::SetLabel {
            node: "card".into(),
            label: "Hide card".into(),
        },
    );
    apply(&mut harness, Command::Save);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"label\": \"Hide card\"")
    );
    assert!(!harness.state().state.doc.is_dirty());
}

#[test]
fn clicking_a_node_on_the_canvas_selects_it() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    harness.get_by_label("CreditCard · last 4 visible").click();
    harness.run_steps(3);
    assert_eq!(harness.state().state.selection, vec!["card".to_string()]);
}

#[test]
fn working_in_the_inspector_keeps_the_node_selected() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    harness.get_by_label("CreditCard · last 4 visible").click();
    harness.run_steps(3);
    harness.get_by_label("Mode").click(); // a heading in the inspector
    harness.run_steps(3);
    assert_eq!(harness.state().state.selection, vec!["card".to_string()]);
}

#[test]
fn the_map_node_shows_a_field_mapping_with_sample_values() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::AddNode {
            kind: "transform.map".into(),
            position: [300.0, 400.0],
        },
    );
    apply(
        &mut harness,
        Command::Connect {
            from: "name".into(),
            to: "map".into(),
        },
    );
    apply(&mut harness, Command::Select(vec!["map".into()]));
    validated(&mut harness);
    harness.get_by_label("Map every input field").click();
    harness.run_steps(2);
    let fields = harness.state().state.doc.flow.node("map").unwrap().config["fields"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(fields, 17, "16 opportunity fields and ContactName");
    wait_for(
        &mut harness,
        "the preview",
        |app| matches!(&app.state.preview.result, Some((k, Ok(_))) if k.node == "map" && k.revision == app.state.doc.revision),
    );
    assert!(
        shows(&harness, "e.g. 0065g"),
        "the Id row shows a sample Id"
    );
}

#[test]
fn the_welcome_screen_offers_the_demo_the_examples_and_recent_flows() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    assert!(harness.state().state.welcome);
    assert!(harness.query_by_label("+ New flow").is_some());
    assert!(
        harness
            .query_by_label("Shipped orders with totals")
            .is_some(),
        "the example flows from flows/ are offered"
    );
    harness.get_by_label("▶ Try the demo flow").click();
    harness.run_steps(3);
    assert!(!harness.state().state.welcome);
    assert!(shows(&harness, "Mask card"));

    // A flow that was opened is offered again next time.
    let path = demo_flow(&scratch);
    apply(&mut harness, Command::OpenFlow(path.clone()));
    let again = start(&scratch, None);
    assert_eq!(
        again.state().state.recent,
        vec![std::fs::canonicalize(&path).unwrap()]
    );
    // By the flow's name, with its file.
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(
        again.state().state.recent_label(&canonical).0,
        "Opportunities to the lake"
    );
    assert!(shows(
        &again,
        &std::fs::canonicalize(&path).unwrap().display().to_string()
    ));

    // A flow that does not open says why on the welcome screen.
    let broken = scratch.write("broken.json", "{ not a flow");
    let harness = start(&scratch, Some(&broken));
    assert!(harness.state().state.welcome);
    assert!(shows(&harness, "broken.json"), "the error names the file");
}

#[test]
fn unsaved_changes_are_never_dropped_without_asking() {
    let scratch = Scratch::new();
    let path = demo_flow(&scratch);
    let mut harness = open(&scratch, &path);
    apply(&mut harness, Command::RemoveNodes(vec!["card".into()]));
    assert!(harness.state().state.doc.is_dirty());

    apply(&mut harness, Command::NewFlow);
    assert!(shows(&harness, "Save the changes to demo.json"));
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert!(harness.state().state.confirm.is_none());
    assert!(harness.state().state.doc.flow.node("name").is_some());

    apply(&mut harness, Command::CloseFlow);
    harness.get_by_label("Save").click();
    harness.run_steps(2);
    assert!(harness.state().state.welcome);
    let saved = tributary::flow::Flow::load(&path).unwrap();
    assert!(saved.node("card").is_none(), "the change was saved first");

    // Closing the window asks too, and "Don't save" lets it close.
    apply(&mut harness, Command::OpenFlow(path.clone()));
    apply(&mut harness, Command::RemoveNodes(vec!["name".into()]));
    apply(&mut harness, Command::Quit);
    assert!(!harness.state().state.quit);
    harness.get_by_label("Don't save").click();
    harness.run_steps(2);
    assert!(harness.state().state.quit);
    let kept = tributary::flow::Flow::load(&path).unwrap();
    assert!(kept.node("name").is_some(), "nothing was saved");
}

#[test]
fn a_setting_changed_in_the_inspector_changes_the_flow() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["lake".into()]));
    validated(&mut harness);
    harness.get_by_label("Execution id folder").click();
    harness.run_steps(2);
    let flow = &harness.state().state.doc.flow;
    assert_eq!(
        flow.node("lake").unwrap().config["execution_id_folder"],
        serde_json::json!(true)
    );
    assert!(harness.state().state.doc.is_dirty());
}

#[test]
fn a_destination_gets_a_field_mapping_in_front_of_it() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["lake".into()]));
    validated(&mut harness);
    let previewed = |app: &TributaryApp| {
        app.state.preview.result.as_ref().is_some_and(|(k, r)| {
            k.node == "lake" && r.is_ok() && k.revision == app.state.doc.revision
        })
    };
    wait_for(&mut harness, "the preview of the destination", previewed);
    assert!(shows(&harness, "Every incoming field is written"));
    assert!(harness.query_by_label("e.g. Johansson").is_some());
    // Below the node's settings, as a person scrolls to it.
    harness.get_by_label("Map fields…").scroll_to_me();
    harness.run_steps(30);
    harness.get_by_label("Map fields…").click();
    harness.run_steps(2);
    let flow = harness.state().state.doc.flow.clone();
    let map = flow.node("map").expect("a Map node was put in front");
    assert!(flow.edges.iter().any(|e| e.from == "map" && e.to == "lake"));
    assert!(flow.edges.iter().any(|e| e.from == "name" && e.to == "map"));
    let mapped = map.config["fields"].as_array().unwrap().len();
    assert!(mapped > 5, "every incoming field is mapped: {mapped}");
    wait_for(&mut harness, "the preview through the mapping", previewed);
    assert!(
        shows(&harness, "Kept in the Map node"),
        "the destination edits the mapping in place"
    );
    assert!(shows(&harness, "e.g. "));
    apply(&mut harness, Command::Undo);
    assert!(harness.state().state.doc.flow.node("map").is_none());
}

#[test]
fn frames_keep_coming_while_a_long_run_and_a_preview_are_in_flight() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("crm")
        .unwrap()
        .config
        .clone();
    config["records"] = serde_json::json!(50_000_000);
    apply(
        &mut harness,
        Command::SetConfig {
            node: "crm".into(),
            config,
        },
    );
    apply(&mut harness, Command::SetPreviewLimit(100_000));
    apply(&mut harness, Command::Select(vec!["name".into()]));
    std::thread::sleep(Duration::from_millis(300));
    harness.step();
    apply(&mut harness, Command::Run);
    let frames_before = harness.ctx.cumulative_frame_nr();
    for _ in 0..10 {
        harness.step();
    }
    let app = harness.state();
    assert!(app.state.run.is_running(), "the run is still going");
    assert!(app.state.preview.loading, "the preview is still going");
    assert_eq!(harness.ctx.cumulative_frame_nr(), frames_before + 10);
    apply(&mut harness, Command::CancelRun);
    wait_for(&mut harness, "the cancelled run to end", |app| {
        app.state.run.record.is_some()
    });
}

#[test]
fn a_filter_on_a_date_offers_a_calendar_and_only_operators_that_fit() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::copy(
        "flows/data/orders.csv",
        scratch.path().join("data/orders.csv"),
    )
    .unwrap();
    let path = scratch.path().join("orders.json");
    std::fs::copy("flows/csv-orders-to-jsonl.json", &path).unwrap();
    let mut harness = open(&scratch, &path);
    let conditions = serde_json::json!({ "conditions": [
        { "field": "order_date", "operator": "greater_than", "value": "2026-08-01" },
    ]});
    apply(
        &mut harness,
        Command::SetConfig {
            node: "shipped".into(),
            config: conditions,
        },
    );
    apply(&mut harness, Command::Select(vec!["shipped".into()]));
    validated(&mut harness);
    harness.get_by_label("2026-08-01 📆").click();
    harness.run_steps(2);
    harness.get_by_label("15").click();
    harness.run_steps(1);
    harness.get_by_label("Save").click();
    harness.run_steps(2);
    let config = &harness
        .state()
        .state
        .doc
        .flow
        .node("shipped")
        .unwrap()
        .config;
    assert_eq!(config["conditions"][0]["value"], "2026-08-15");

    // `contains` is for text: a date field is not offered it.
    harness.get_by_value("Greater than").click();
    harness.run_steps(2);
    assert!(harness.query_by_label("Less than or equal to").is_some());
    assert!(harness.query_by_label("Contains").is_none());
}

/// Where a node's title is drawn on the canvas.
fn title_at(harness: &Harness<'static, TributaryApp>, title: &str) -> egui::Pos2 {
    harness.get_by_label(title).rect().min
}

#[test]
fn an_edit_after_zooming_leaves_every_node_where_it_is_drawn() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    validated(&mut harness);
    harness.get_by_label("-").click();
    harness.run_steps(3);
    let card = harness.state().state.doc.flow.node("card").unwrap().clone();
    let kind = tributary::registry::find(&card.kind).unwrap();
    let title = format!("{} {}", kind.icon, card.label.as_deref().unwrap());
    let before = title_at(&harness, &title);
    // An edit that moves nothing: the flow's description, then its trigger.
    apply(
        &mut harness,
        Command::SetDescription("Moved nothing".into()),
    );
    apply(
        &mut harness,
        Command::SetTrigger(tributary::flow::Trigger::schedule("rate(2 days)")),
    );
    harness.run_steps(3);
    assert_eq!(title_at(&harness, &title), before);
}

#[test]
fn every_example_opens_at_its_saved_positions_and_saves_unchanged() {
    for example in [
        "demo-opportunities-to-lake",
        "csv-orders-to-jsonl",
        "contacts-hash-dedupe-csv",
    ] {
        let scratch = Scratch::new();
        let original = format!("flows/{example}.json");
        let path = scratch.path().join("flow.json");
        std::fs::copy(&original, &path).unwrap();
        let mut harness = open(&scratch, &path);
        let flow = harness.state().state.doc.flow.clone();
        let titles: Vec<String> = flow
            .nodes
            .iter()
            .map(|n| {
                let kind = tributary::registry::find(&n.kind).unwrap();
                format!("{} {}", kind.icon, n.label.as_deref().unwrap_or(kind.title))
            })
            .collect();
        // On screen, nodes sit where the file puts them, at one zoom and one pan.
        let screen: Vec<egui::Pos2> = titles.iter().map(|t| title_at(&harness, t)).collect();
        let saved: Vec<egui::Pos2> = flow.nodes.iter().map(|n| n.position.into()).collect();
        let far = (0..saved.len())
            .max_by(|&a, &b| {
                (saved[a].x - saved[0].x)
                    .abs()
                    .total_cmp(&(saved[b].x - saved[0].x).abs())
            })
            .unwrap();
        let zoom = (screen[far].x - screen[0].x) / (saved[far].x - saved[0].x);
        assert!((0.3..=1.0).contains(&zoom), "{example}: zoom {zoom}");
        for i in 1..saved.len() {
            let expected = screen[0] + (saved[i] - saved[0]) * zoom;
            assert!(
                (screen[i] - expected).length() < 2.0,
                "{example}: `{}` is drawn at {:?}, not at {expected:?}",
                flow.nodes[i].id,
                screen[i]
            );
        }
        apply(&mut harness, Command::Save);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(&original).unwrap(),
            "{example}"
        );
    }
}

/// The canvas's ports: the unlabelled 20-point squares egui-graph-edit draws at a node's
/// edges, by their centres.
fn ports(harness: &Harness<'static, TributaryApp>) -> Vec<egui::Pos2> {
    let by = egui_kittest::kittest::by().predicate(|n| {
        n.label().is_none()
            && n.bounding_box()
                .is_some_and(|b| (b.width() - 20.0).abs() < 0.5 && (b.height() - 20.0).abs() < 0.5)
    });
    harness.query_all(by).map(|n| n.rect().center()).collect()
}

/// Presses at `from`, moves in steps to `to` and releases there, a frame per step.
fn drag(harness: &mut Harness<'static, TributaryApp>, from: egui::Pos2, to: egui::Pos2) {
    harness.hover_at(from);
    harness.run_steps(1);
    harness.drag_at(from);
    harness.run_steps(1);
    for k in 1..=8 {
        harness.hover_at(from + (to - from) * (k as f32 / 8.0));
        harness.run_steps(1);
    }
    harness.drop_at(to);
    harness.run_steps(3);
}

#[test]
fn nodes_dragged_from_the_palette_are_connected_by_dragging_between_ports() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    harness.get_by_label("+ New flow").click();
    harness.run_steps(3);

    let entry = harness.get_by_label("Demo CRM").rect().center();
    drag(&mut harness, entry, egui::pos2(450.0, 300.0));
    // The palette scrolls: destinations come last.
    harness.get_by_label("Local folder").scroll_to_me();
    harness.run_steps(3);
    let entry = harness.get_by_label("Local folder").rect().center();
    drag(&mut harness, entry, egui::pos2(850.0, 300.0));
    let flow = harness.state().state.doc.flow.clone();
    let kinds: Vec<&str> = flow.nodes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["source.demo_crm", "destination.local"]);
    assert!(
        flow.nodes[1].position[0] - flow.nodes[0].position[0] > 300.0,
        "each node lands where it was dropped: {:?}",
        flow.nodes.iter().map(|n| n.position).collect::<Vec<_>>()
    );

    // The source's only port is its output, left; the destination's only port its input.
    let mut ports = ports(&harness);
    ports.sort_by(|a, b| a.x.total_cmp(&b.x));
    let [output, input] = ports[..] else {
        panic!("two ports: {ports:?}");
    };
    drag(&mut harness, output, input);
    let flow = &harness.state().state.doc.flow;
    assert_eq!(flow.edges.len(), 1, "{:?}", flow.edges);
    assert_eq!(flow.edges[0].from, flow.nodes[0].id);
    assert_eq!(flow.edges[0].to, flow.nodes[1].id);
}

/// A union takes a wire from each source dropped on it: it always shows one free input,
/// and a second wire adds an input rather than replacing the first.
#[test]
fn a_union_takes_a_wire_from_each_source_on_a_free_input() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    harness.get_by_label("+ New flow").click();
    harness.run_steps(3);
    for (kind, position) in [
        ("source.demo_crm", [100.0, 60.0]),
        ("source.demo_crm", [100.0, 260.0]),
        ("transform.union", [560.0, 160.0]),
    ] {
        apply(
            &mut harness,
            Command::AddNode {
                kind: kind.into(),
                position,
            },
        );
    }
    // Ports left to right, top to bottom: two source outputs, then the union's inputs.
    let union_inputs = |h: &mut Harness<'static, TributaryApp>| {
        validated(h);
        let mut ports = ports(h);
        ports.sort_by(|a, b| a.x.total_cmp(&b.x));
        let outputs: Vec<egui::Pos2> = ports[..2].to_vec();
        let mut inputs: Vec<egui::Pos2> = ports[2..]
            .iter()
            .copied()
            .filter(|p| p.x < ports.last().unwrap().x - 1.0)
            .collect();
        inputs.sort_by(|a, b| a.y.total_cmp(&b.y));
        let mut outputs = outputs;
        outputs.sort_by(|a, b| a.y.total_cmp(&b.y));
        (outputs, inputs)
    };
    let (outputs, inputs) = union_inputs(&mut harness);
    assert_eq!(inputs.len(), 1, "one free input to begin with");
    drag(&mut harness, outputs[0], inputs[0]);
    let (outputs, inputs) = union_inputs(&mut harness);
    assert_eq!(
        inputs.len(),
        2,
        "a free input appears under the connected one"
    );
    drag(&mut harness, outputs[1], inputs[1]);
    let flow = harness.state().state.doc.flow.clone();
    let into: Vec<&str> = flow
        .edges
        .iter()
        .filter(|e| e.to == flow.nodes[2].id)
        .map(|e| e.from.as_str())
        .collect();
    assert_eq!(into, [flow.nodes[0].id.as_str(), flow.nodes[1].id.as_str()]);
    let (_, inputs) = union_inputs(&mut harness);
    assert_eq!(inputs.len(), 3);

    // Taking one wire away leaves one free input again, not two.
    apply(&mut harness, Command::Undo);
    let (_, inputs) = union_inputs(&mut harness);
    assert_eq!(inputs.len(), 2);
}

#[test]
fn a_wire_let_go_of_near_a_node_connects_to_its_port() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    harness.get_by_label("+ New flow").click();
    harness.run_steps(3);
    apply(
        &mut harness,
        Command::AddNode {
            kind: "source.demo_crm".into(),
            position: [100.0, 200.0],
        },
    );
    apply(
        &mut harness,
        Command::AddNode {
            kind: "destination.local".into(),
            position: [520.0, 200.0],
        },
    );
    let edges = |h: &Harness<'static, TributaryApp>| h.state().state.doc.flow.edges.len();
    // The ports where they are once the nodes show what validation says of them (a
    // problem's text changes a node's size).
    let ports_now = |h: &mut Harness<'static, TributaryApp>| {
        validated(h);
        let mut ports = ports(h);
        ports.sort_by(|a, b| a.x.total_cmp(&b.x));
        let [output, input] = ports[..] else {
            panic!("two ports: {ports:?}");
        };
        (output, input)
    };

    // Well away from the node: nothing is connected.
    let (output, input) = ports_now(&mut harness);
    drag(&mut harness, output, input - egui::vec2(90.0, 0.0));
    assert_eq!(edges(&harness), 0);
    // A little short of the port, outside the node and outside the editor's own reach.
    let (output, input) = ports_now(&mut harness);
    drag(&mut harness, output, input - egui::vec2(18.0, 6.0));
    assert_eq!(edges(&harness), 1, "a drop beside the port connects");
    apply(&mut harness, Command::Undo);
    assert_eq!(edges(&harness), 0);
    // On the node's body, far from its port.
    let (output, input) = ports_now(&mut harness);
    drag(&mut harness, output, input + egui::vec2(80.0, 20.0));
    let flow = &harness.state().state.doc.flow;
    assert_eq!(flow.edges.len(), 1, "a drop on the node connects");
    assert_eq!(flow.edges[0].from, flow.nodes[0].id);
    assert_eq!(flow.edges[0].to, flow.nodes[1].id);
}

#[test]
fn a_wire_lifted_and_let_go_of_on_its_own_node_stays_connected() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    validated(&mut harness);
    // At 100%, where `ports` finds the ports by their size.
    harness.get_by_label("+").click();
    harness.run_steps(3);
    let into_lake = |h: &Harness<'static, TributaryApp>| {
        h.state()
            .state
            .doc
            .flow
            .edges
            .iter()
            .any(|e| e.to == "lake")
    };
    let lake_input = |h: &Harness<'static, TributaryApp>| {
        let mut ports = ports(h);
        ports.sort_by(|a, b| a.x.total_cmp(&b.x));
        *ports
            .last()
            .expect("the lake's input is the rightmost port")
    };
    // Lifted off the lake's input and let go of on the lake itself: nothing changes.
    let input = lake_input(&harness);
    drag(&mut harness, input, input + egui::vec2(60.0, 12.0));
    assert!(into_lake(&harness));
    // The canvas still has the wire: lifting it again and letting go of it on the empty
    // canvas takes it out.
    harness.run_steps(3);
    let input = lake_input(&harness);
    drag(&mut harness, input, input + egui::vec2(0.0, 200.0));
    assert!(!into_lake(&harness), "the wire was there to lift");
}

#[test]
fn test_connection_reports_what_is_wrong_in_words() {
    let scratch = Scratch::new();
    let flow = flow(
        vec![
            node("crm", "source.demo_crm", serde_json::json!({"records": 10})),
            node(
                "lake",
                "destination.s3",
                serde_json::json!({"bucket": "lake", "endpoint_url": "http://storage.example.com:9000"}),
            ),
        ],
        &[("crm", "lake")],
    );
    let path = scratch.flow("s3.json", &flow);
    let mut harness = open(&scratch, &path);
    apply(&mut harness, Command::Select(vec!["lake".into()]));
    validated(&mut harness);
    harness.get_by_label("Test connection").click();
    wait_for(&mut harness, "the test's answer", |app| {
        app.state
            .connection_tests
            .get("lake")
            .is_some_and(|t| t.result.is_some())
    });
    assert!(shows(&harness, "uses plain HTTP"));

    // Another endpoint: the old answer no longer applies and is not shown.
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("lake")
        .unwrap()
        .config
        .clone();
    config["endpoint_url"] = serde_json::json!("ftp://storage.example.com");
    apply(
        &mut harness,
        Command::SetConfig {
            node: "lake".into(),
            config,
        },
    );
    assert!(!shows(&harness, "uses plain HTTP"));
    harness.get_by_label("Test connection").click();
    wait_for(&mut harness, "the second answer", |app| {
        let now = &app.state.doc.flow.node("lake").unwrap().config;
        app.state
            .connection_tests
            .get("lake")
            .is_some_and(|t| t.result.is_some() && &t.config == now)
    });
    assert!(shows(&harness, "is not a URL"));
}

#[test]
fn a_setting_with_variants_offers_them_and_then_the_chosen_ones_settings() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    apply(&mut harness, Command::NewFlow);
    apply(
        &mut harness,
        Command::AddNode {
            kind: "source.rest".into(),
            position: [100.0, 100.0],
        },
    );
    let id = harness.state().state.doc.flow.nodes[0].id.clone();
    apply(&mut harness, Command::Select(vec![id.clone()]));
    // The node's problems show above its settings: wait for them so nothing moves.
    validated(&mut harness);
    assert!(shows(&harness, "Pagination"));
    // The REST source pages in one of five ways; each has settings of its own.
    harness.get_by_value("None").click();
    harness.run_steps(2);
    harness.get_by_label("Cursor").click();
    harness.run_steps(3);
    let config = &harness.state().state.doc.flow.node(&id).unwrap().config;
    assert_eq!(
        config["pagination"],
        serde_json::json!({"style": "cursor", "path": "", "param": ""})
    );
    assert!(shows(&harness, "Param"));
    validated(&mut harness);
    harness.get_by_value("Cursor").click();
    harness.run_steps(2);
    harness.get_by_label("Page number").click();
    harness.run_steps(3);
    let config = &harness.state().state.doc.flow.node(&id).unwrap().config;
    assert_eq!(
        config["pagination"],
        serde_json::json!({"style": "page_number", "param": "page", "start": 1, "size_param": "", "size": 100})
    );
}

/// Types `text` into the focused field as a person does: a character per frame, and
/// between two keys the background's answers to the last one (its check, the preview)
/// arrive and are drawn.
fn type_slowly(harness: &mut Harness<'static, TributaryApp>, text: &str) {
    for c in text.chars() {
        if c == '\n' {
            // A keyboard's Enter, as a window gets it.
            harness.key_press(egui::Key::Enter);
        } else {
            harness.event(egui::Event::Text(c.to_string()));
        }
        harness.step();
        validated(harness);
    }
}

/// Puts the keyboard focus in the labelled text field and selects what it holds.
fn focus_and_select_all(harness: &mut Harness<'static, TributaryApp>, label: &str) {
    harness
        .get_all_by_role_and_label(egui::accesskit::Role::TextInput, label)
        .next()
        .unwrap_or_else(|| panic!("a text field labelled {label}"))
        .focus();
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run_steps(2);
}

/// The CSV orders example with its data beside it.
fn csv_flow(scratch: &Scratch) -> std::path::PathBuf {
    let path = scratch.path().join("orders.json");
    std::fs::copy("flows/csv-orders-to-jsonl.json", &path).unwrap();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::copy(
        "flows/data/orders.csv",
        scratch.path().join("data/orders.csv"),
    )
    .unwrap();
    path
}

fn focused(harness: &Harness<'static, TributaryApp>) -> bool {
    harness.ctx.memory(|m| m.focused().is_some())
}

#[test]
fn typing_a_path_keeps_every_key_while_its_problems_come_and_go() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["orders".into()]));
    validated(&mut harness);
    let nodes = harness.state().state.doc.flow.nodes.len();
    focus_and_select_all(&mut harness, "Path");
    // "/" alone makes problems ("there is no file /", no format); they must not take
    // the focus, and the keys after it (among them `f`, the canvas's fit) stay in the field.
    let path = std::fs::canonicalize("flows/data/orders.csv").unwrap();
    let path = path.to_str().unwrap();
    type_slowly(&mut harness, path);
    let app = harness.state();
    assert_eq!(
        app.state.doc.flow.node("orders").unwrap().config["path"],
        path
    );
    assert_eq!(app.state.doc.flow.nodes.len(), nodes);
    assert!(focused(&harness), "the field still has the focus");
    // Backspace edits the text, and never deletes the selected node.
    harness.key_press(egui::Key::Backspace);
    harness.run_steps(2);
    let app = harness.state();
    assert_eq!(app.state.doc.flow.nodes.len(), nodes);
    assert_eq!(
        app.state.doc.flow.node("orders").unwrap().config["path"],
        &path[..path.len() - 1]
    );
}

#[test]
fn typing_a_filter_value_and_a_map_output_name_keeps_every_key() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["shipped".into()]));
    validated(&mut harness);
    focus_and_select_all(&mut harness, "Value");
    type_slowly(&mut harness, "shipped");
    let flow = &harness.state().state.doc.flow;
    assert_eq!(
        flow.node("shipped").unwrap().config["conditions"][0]["value"],
        "shipped"
    );
    assert!(focused(&harness));

    apply(
        &mut harness,
        Command::InsertMap {
            before: "out".into(),
        },
    );
    let map = harness
        .state()
        .state
        .doc
        .flow
        .nodes
        .last()
        .unwrap()
        .id
        .clone();
    apply(&mut harness, Command::Select(vec![map.clone()]));
    validated(&mut harness);
    focus_and_select_all(&mut harness, "output field");
    harness.key_press(egui::Key::Backspace);
    harness.step();
    validated(&mut harness);
    type_slowly(&mut harness, "order_no");
    let rows = &harness.state().state.doc.flow.node(&map).unwrap().config["fields"];
    assert_eq!(rows[0]["target"], "order_no", "{rows}");
    assert!(focused(&harness));
}

#[test]
fn a_filter_on_text_offers_the_values_its_input_holds() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["shipped".into()]));
    wait_for(
        &mut harness,
        "the filter's preview",
        |app| matches!(&app.state.preview.result, Some((k, Ok(_))) if k.node == "shipped"),
    );
    // The value box first, then a pick list of what the input holds: "cancelled" is among
    // them although the filter lets no cancelled order through.
    harness.get_by_value("pick").click();
    harness.run_steps(2);
    for status in ["shipped", "cancelled", "returned", "delivered"] {
        assert!(shows(&harness, status), "{status} is offered");
    }
    harness.get_by_label("returned").click();
    harness.run_steps(2);
    let value = |h: &Harness<'static, TributaryApp>| {
        h.state().state.doc.flow.node("shipped").unwrap().config["conditions"][0]["value"].clone()
    };
    assert_eq!(
        value(&harness),
        serde_json::json!(["shipped", "delivered", "returned"]),
        "a list gains the value picked"
    );
    harness.get_by_value("pick").click();
    harness.run_steps(2);
    // In the list, not in the preview below it.
    let in_list = egui_kittest::kittest::by()
        .label("delivered")
        .predicate(|n| n.role() != egui::accesskit::Role::Label);
    harness.get(in_list).click();
    harness.run_steps(2);
    assert_eq!(
        value(&harness),
        serde_json::json!(["shipped", "returned"]),
        "picked again, a value leaves the list"
    );
    // A single value is replaced by the one picked.
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("shipped")
        .unwrap()
        .config
        .clone();
    config["conditions"][0]["value"] = serde_json::json!("shipped");
    apply(
        &mut harness,
        Command::SetConfig {
            node: "shipped".into(),
            config,
        },
    );
    harness.get_by_value("pick").click();
    harness.run_steps(2);
    harness.get_by_label("cancelled").click();
    harness.run_steps(2);
    assert_eq!(value(&harness), "cancelled");
}

#[test]
fn a_preview_held_back_while_typing_arrives_without_any_input() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let scratch = Scratch::new();
    // As eframe does: a frame is drawn only when egui asks for one or the worker wakes it.
    let woken = Arc::new(AtomicBool::new(false));
    let wake = woken.clone();
    let dirs = Dirs::under(&scratch.home());
    let worker = Worker::new(dirs.clone(), move || wake.store(true, Ordering::SeqCst));
    let state = AppState::open_initial(dirs, Some(&csv_flow(&scratch)));
    let mut harness = Harness::builder()
        .with_size([1440.0, 900.0])
        .build_ui_state(
            |ui, app: &mut TributaryApp| app.ui(ui),
            TributaryApp::new(state, worker),
        );
    // A blinking cursor asks for frames of its own; without it only the app's own wishes
    // for a frame are left.
    harness
        .ctx
        .all_styles_mut(|s| s.visuals.text_cursor.blink = false);
    harness.run_steps(3);
    apply(&mut harness, Command::Select(vec!["shipped".into()]));
    wait_for(&mut harness, "the first preview", |app| {
        app.state.preview.result.is_some()
    });
    focus_and_select_all(&mut harness, "Value");
    harness.event(egui::Event::Text("p".into()));
    harness.step();
    let started = std::time::Instant::now();
    loop {
        let app = harness.state();
        if matches!(&app.state.preview.result,
            Some((k, _)) if k.revision == app.state.doc.revision)
        {
            break;
        }
        let delay = harness.output().viewport_output[&egui::ViewportId::ROOT].repaint_delay;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no frame was asked for, and the preview of the edit never came"
        );
        if delay == Duration::MAX && !woken.swap(false, Ordering::SeqCst) {
            // Asleep, as a window with no input is.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        std::thread::sleep(delay.min(Duration::from_millis(50)));
        woken.store(false, Ordering::SeqCst);
        harness.step();
    }
}

#[test]
fn a_number_that_does_not_read_says_why_beside_its_field() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec!["crm".into()]));
    validated(&mut harness);
    let before = harness.state().state.doc.flow.node("crm").unwrap().config["records"].clone();
    // The flow keeps the last value that read: none of "abc", and "2" of "2.5".
    for (typed, why, kept) in [
        ("abc", "“abc” is not a number", before),
        ("2.5", "2.5 is not a whole number", serde_json::json!(2)),
    ] {
        focus_and_select_all(&mut harness, "Records");
        type_slowly(&mut harness, typed);
        assert!(shows(&harness, why), "{typed}: says why");
        assert_eq!(
            harness.state().state.doc.flow.node("crm").unwrap().config["records"],
            kept,
            "{typed}"
        );
    }
    focus_and_select_all(&mut harness, "Records");
    type_slowly(&mut harness, "250");
    assert_eq!(
        harness.state().state.doc.flow.node("crm").unwrap().config["records"],
        250
    );
    assert!(!shows(&harness, "is not a"));
}

#[test]
fn after_a_failed_run_no_node_is_left_waiting_and_the_table_names_nodes_by_label() {
    let scratch = Scratch::new();
    let path = demo_flow(&scratch);
    // The lake's folder cannot be made: a file stands where its parent should be.
    std::fs::write(scratch.path().join("blocked"), "a file").unwrap();
    let mut harness = open(&scratch, &path);
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("lake")
        .unwrap()
        .config
        .clone();
    config["folder"] = serde_json::json!("blocked/lake");
    apply(
        &mut harness,
        Command::SetConfig {
            node: "lake".into(),
            config,
        },
    );
    validated(&mut harness);
    harness.get_by_label("▶ Run").click();
    wait_for(&mut harness, "the run", |app| {
        app.state.run.record.is_some()
    });
    let app = harness.state();
    assert_eq!(
        app.state.run.record.as_ref().unwrap().status,
        tributary::engine::RunStatus::Error
    );
    for (node, f) in &app.state.run.figures {
        assert!(
            !matches!(
                f.state,
                tributary::engine::NodeState::Idle | tributary::engine::NodeState::Running
            ),
            "{node} is {:?} after the run ended",
            f.state
        );
    }
    assert!(!shows(&harness, "waiting"));
    assert!(
        harness.query_by_label("Local lake").is_some() && shows(&harness, "Has e-mail"),
        "the run table names nodes by their labels"
    );
}

#[test]
fn a_new_connections_offered_name_follows_the_connector_until_the_user_names_it() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::NewConnection {
            connector: Some("salesforce".into()),
            for_node: None,
        },
    );
    let draft =
        |h: &Harness<'static, TributaryApp>| h.state().state.connections.draft.clone().unwrap();
    let mut changed = draft(&harness);
    assert_eq!(changed.name, "salesforce");
    changed.connector = "http".into();
    apply(&mut harness, Command::EditConnectionDraft(changed));
    assert_eq!(draft(&harness).name, "http");
    let mut named = draft(&harness);
    named.name = "crm-api".into();
    apply(&mut harness, Command::EditConnectionDraft(named));
    let mut changed = draft(&harness);
    changed.connector = "s3".into();
    apply(&mut harness, Command::EditConnectionDraft(changed));
    assert_eq!(
        draft(&harness).name,
        "crm-api",
        "a name the user typed stays"
    );
    // Settings the last connector filled in give way to the new one's defaults; one the
    // user typed stays.
    let mut changed = draft(&harness);
    changed.connector = "salesforce".into();
    apply(&mut harness, Command::EditConnectionDraft(changed));
    assert_eq!(
        draft(&harness).settings["login_url"],
        "https://login.salesforce.com"
    );
    let mut typed = draft(&harness);
    typed
        .settings
        .insert("client_id".into(), "my-client".into());
    typed.connector = "google_analytics".into();
    apply(&mut harness, Command::EditConnectionDraft(typed));
    let settings = draft(&harness).settings;
    assert_eq!(settings["login_url"], "https://accounts.google.com");
    assert_eq!(settings["client_id"], "my-client");
}

#[test]
fn a_services_own_addresses_wait_under_more_settings() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::NewConnection {
            connector: Some("google_analytics".into()),
            for_node: None,
        },
    );
    harness.run_steps(2);
    assert!(harness.query_by_label("Client id").is_some());
    assert!(
        harness.query_by_label("Data API").is_none(),
        "Google's addresses are not in the way"
    );
    harness.get_by_label("More settings").click();
    harness.run_steps(3);
    assert!(harness.query_by_label("Data API").is_some());
    assert!(harness.query_by_label("Token URL").is_some());
}

#[test]
fn save_as_into_another_folder_keeps_relative_paths_pointing_where_they_pointed() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("orders")
        .unwrap()
        .config
        .clone();
    config["path"] = serde_json::json!("data/orders.csv");
    apply(
        &mut harness,
        Command::SetConfig {
            node: "orders".into(),
            config,
        },
    );
    let sub = scratch.path().join("kept/elsewhere");
    std::fs::create_dir_all(&sub).unwrap();
    apply(&mut harness, Command::SaveAs(sub.join("moved.json")));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sub.join("moved.json")).unwrap()).unwrap();
    let path = saved["nodes"][0]["config"]["path"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(path),
        scratch.path().join("data/orders.csv"),
        "outside the new folder: the whole path"
    );
    // A relative path set in the moved flow is rewritten relative to the next folder.
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("orders")
        .unwrap()
        .config
        .clone();
    config["path"] = serde_json::json!("../../data/orders.csv");
    apply(
        &mut harness,
        Command::SetConfig {
            node: "orders".into(),
            config,
        },
    );
    apply(
        &mut harness,
        Command::SaveAs(scratch.path().join("back.json")),
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.path().join("back.json")).unwrap())
            .unwrap();
    assert_eq!(saved["nodes"][0]["config"]["path"], "data/orders.csv");
    validated(&mut harness);
    assert!(harness.state().state.analysis.problems.is_empty());
}

#[test]
fn when_the_file_dialog_cannot_open_the_app_asks_for_the_path_itself() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    // No portal and no zenity here, as on a minimal desktop.
    apply(&mut harness, Command::ChooseSaveAs);
    wait_for(&mut harness, "the path box", |app| {
        app.state.path_prompt.is_some()
    });
    assert!(shows(&harness, "could not be opened"), "it says why");
    let offered = harness.state().state.path_prompt.clone().unwrap().text;
    assert!(
        offered.ends_with("shipped-orders-with-totals.json"),
        "the flow's name is offered: {offered}"
    );
    let target = scratch.path().join("typed.json");
    apply(
        &mut harness,
        Command::EditPathPrompt(target.to_string_lossy().into_owned()),
    );
    harness.get_by_label("Save").click();
    harness.run_steps(3);
    assert!(target.exists(), "saved where typed");
    assert_eq!(
        harness.state().state.doc.path.as_deref(),
        Some(target.as_path())
    );
    assert!(harness.state().state.path_prompt.is_none());
}

#[test]
fn a_refused_rewire_keeps_the_old_wire_and_a_replaced_one_is_said() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let edges = |h: &Harness<'static, TributaryApp>| {
        let mut e: Vec<(String, String)> = h
            .state()
            .state
            .doc
            .flow
            .edges
            .iter()
            .map(|e| (e.from.clone(), e.to.clone()))
            .collect();
        e.sort();
        e
    };
    let before = edges(&harness);
    // The wire into the lake, dropped on the source's input: refused, and kept.
    apply(
        &mut harness,
        Command::Rewire {
            old: ("name".into(), "lake".into()),
            from: "name".into(),
            to: "crm".into(),
        },
    );
    assert_eq!(edges(&harness), before);
    let status = harness.state().state.status.clone().unwrap();
    assert!(
        status.error && status.text.contains("is kept"),
        "{status:?}"
    );
    // Connecting into an occupied input replaces the wire there, and says so.
    apply(
        &mut harness,
        Command::Connect {
            from: "card".into(),
            to: "lake".into(),
        },
    );
    let status = harness.state().state.status.clone().unwrap();
    assert!(
        status.text.contains("instead of Contact name"),
        "{status:?}"
    );
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_steps(2);
    assert_eq!(edges(&harness), before, "undoable");
}

#[test]
fn a_renamed_field_shows_as_a_rename_not_as_changed_values() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::AddNode {
            kind: "transform.map".into(),
            position: [300.0, 400.0],
        },
    );
    apply(
        &mut harness,
        Command::Connect {
            from: "name".into(),
            to: "map".into(),
        },
    );
    apply(
        &mut harness,
        Command::SetConfig {
            node: "map".into(),
            config: serde_json::json!({"fields": [
                {"source": "Id", "target": "OpportunityId"},
                {"source": "Name"}
            ]}),
        },
    );
    apply(&mut harness, Command::Select(vec!["map".into()]));
    wait_for(
        &mut harness,
        "the preview",
        |app| matches!(&app.state.preview.result, Some((k, Ok(_))) if k.node == "map" && k.revision == app.state.doc.revision),
    );
    let (_, table) = harness.state().state.preview.result.as_ref().unwrap();
    let table = table.as_ref().unwrap();
    let c = table
        .columns
        .iter()
        .position(|(n, _)| n == "OpportunityId")
        .unwrap();
    assert_eq!(table.renamed_from[c].as_deref(), Some("Id"));
    assert!(table.changed.iter().all(|row| row[c].is_none()));
    assert!(shows(&harness, "was Id"));
}

/// The characters inside string literals of the code below `dir` (tests left out) that
/// are not ASCII, with where each was first seen.
fn drawn_characters(dir: &std::path::Path, found: &mut std::collections::BTreeMap<char, String>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            drawn_characters(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            // Only what is between quotes on the line: messages, labels, icons.
            for (k, part) in code.split('"').enumerate() {
                if k % 2 == 1 {
                    for c in part.chars().filter(|c| !c.is_ascii()) {
                        found
                            .entry(c)
                            .or_insert_with(|| format!("{}:{}", path.display(), n + 1));
                    }
                }
            }
        }
    }
}

/// Every character in the app's text and icons is in one of the fonts egui draws text
/// with (Ubuntu Light, then Noto Emoji, then the emoji icon font); anything else is drawn
/// as an empty box.
#[test]
fn every_character_the_app_draws_is_in_its_fonts() {
    use skrifa::MetadataProvider;
    let mut found = std::collections::BTreeMap::new();
    drawn_characters(std::path::Path::new("src"), &mut found);
    for t in tributary::registry::all() {
        for c in t.icon.chars() {
            found.insert(c, format!("the icon of {}", t.name));
        }
    }
    let fonts: Vec<skrifa::FontRef> = [
        epaint_default_fonts::UBUNTU_LIGHT,
        epaint_default_fonts::NOTO_EMOJI_REGULAR,
        epaint_default_fonts::EMOJI_ICON,
    ]
    .iter()
    .map(|bytes| skrifa::FontRef::new(bytes).unwrap())
    .collect();
    let missing: Vec<String> = found
        .iter()
        // Variation selectors only pick a presentation; they draw nothing themselves.
        .filter(|(c, _)| !('\u{fe00}'..='\u{fe0f}').contains(*c))
        .filter(|(c, _)| fonts.iter().all(|f| f.charmap().map(**c).is_none()))
        .map(|(c, at)| format!("{c:?} (U+{:04X}) at {at}", *c as u32))
        .collect();
    assert!(missing.is_empty(), "drawn as empty boxes: {missing:#?}");
}

#[test]
fn dragging_a_node_selects_it_and_keeps_it_selected() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(&mut harness, Command::Select(vec![]));
    let mask = tributary::registry::find("transform.mask").unwrap().icon;
    let from = title_at(&harness, &format!("{mask} Mask card")) + egui::vec2(30.0, 8.0);
    drag(&mut harness, from, from + egui::vec2(0.0, 120.0));
    harness.run_steps(3);
    assert_eq!(harness.state().state.selection, vec!["card".to_string()]);
    let moved = harness
        .state()
        .state
        .doc
        .flow
        .node("card")
        .unwrap()
        .position;
    assert!(moved[1] > 100.0, "the node moved: {moved:?}");
}

#[test]
fn a_refused_run_lists_each_problem_once_and_an_edit_clears_what_it_found() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let mut config = harness
        .state()
        .state
        .doc
        .flow
        .node("card")
        .unwrap()
        .config
        .clone();
    config["fields"] = serde_json::json!(["CardNumber"]);
    apply(
        &mut harness,
        Command::SetConfig {
            node: "card".into(),
            config,
        },
    );
    validated(&mut harness);
    apply(&mut harness, Command::Run);
    wait_for(&mut harness, "the refusal", |app| {
        !app.state.run.refused.is_empty()
    });
    // The refusal found the same problem the check did: listed, and counted, once.
    assert_eq!(harness.state().state.all_problems().len(), 1);
    assert!(shows(&harness, "Problems (1)"));
    assert!(shows(&harness, "1 problem"));
    // Undone, the flow is fine again, and the tab says so at once.
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_steps(2);
    validated(&mut harness);
    assert!(harness.state().state.all_problems().is_empty());
    assert!(shows(&harness, "Problems (0)"));
}

#[test]
fn a_status_message_goes_stale_with_the_next_thing_done() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    apply(
        &mut harness,
        Command::Connect {
            from: "lake".into(),
            to: "crm".into(),
        },
    );
    assert!(
        harness.state().state.status.is_some(),
        "the refusal is said"
    );
    apply(&mut harness, Command::Select(vec!["card".into()]));
    assert!(
        harness.state().state.status.is_none(),
        "and gone after the next action"
    );
    // A finished run's message does not follow the user into another flow.
    apply(&mut harness, Command::Run);
    wait_for(&mut harness, "the run", |app| {
        app.state.run.record.is_some()
    });
    assert!(harness.state().state.status.is_some());
    apply(&mut harness, Command::NewFlow);
    apply(&mut harness, Command::DiscardThenContinue);
    assert!(harness.state().state.status.is_none());
    assert!(harness.state().state.run.record.is_none());
}

#[test]
fn a_filter_value_not_given_yet_shows_an_empty_box_not_a_zero() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    apply(
        &mut harness,
        Command::SetConfig {
            node: "shipped".into(),
            config: serde_json::json!({"conditions": [
                {"field": "quantity", "operator": "greater_than", "value": null}
            ]}),
        },
    );
    apply(&mut harness, Command::Select(vec!["shipped".into()]));
    validated(&mut harness);
    let value = harness.get_by_role_and_label(egui::accesskit::Role::TextInput, "Value");
    assert_eq!(value.value().as_deref(), Some(""), "no 0 that is not there");
    assert!(shows(&harness, "type a value to compare with"));
    assert!(shows(&harness, "quantity greater than (no value yet)"));
}

#[test]
fn the_toolbar_shows_the_zoom_and_f1_lists_the_shortcuts() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    let before = harness.state().canvas.zoom();
    assert!(shows(&harness, &format!("{:.0}%", before * 100.0)));
    harness.get_by_label("+").click();
    harness.run_steps(3);
    let after = harness.state().canvas.zoom();
    assert!((after / before - 1.25).abs() < 0.01, "{before} -> {after}");
    assert!(shows(&harness, &format!("{:.0}%", after * 100.0)));
    harness.get_by_label("-").click();
    harness.run_steps(3);
    assert!((harness.state().canvas.zoom() - before).abs() < 0.01);

    harness.key_press(egui::Key::F1);
    harness.run_steps(2);
    assert!(shows(&harness, "Delete the selected nodes"));
    harness.key_press(egui::Key::F1);
    harness.run_steps(2);
    assert!(!shows(&harness, "Delete the selected nodes"));
}

#[test]
fn zoomed_far_out_nodes_keep_their_titles_and_drop_lines_too_small_to_read() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &demo_flow(&scratch));
    validated(&mut harness);
    let summary = "last 4 visible";
    assert!(shows(&harness, summary), "the mask node says what it hides");
    let before = harness.state().canvas.zoom();
    while harness.state().canvas.zoom() > 0.35 {
        harness.get_by_label("-").click();
        harness.run_steps(3);
    }
    assert!(shows(&harness, "Mask card"), "titles stay");
    assert!(
        !shows(&harness, summary),
        "a line a few pixels high is left out"
    );
    while harness.state().canvas.zoom() < before * 0.99 {
        harness.get_by_label("+").click();
        harness.run_steps(3);
    }
    assert!(shows(&harness, summary), "and comes back zoomed in");
}

#[test]
fn tidy_layout_puts_each_node_a_column_after_its_inputs_and_undoes() {
    let scratch = Scratch::new();
    let mut harness = open(&scratch, &csv_flow(&scratch));
    let before: Vec<[f32; 2]> = harness
        .state()
        .state
        .doc
        .flow
        .nodes
        .iter()
        .map(|n| n.position)
        .collect();
    // Scrambled, as an imported flow may be.
    apply(
        &mut harness,
        Command::MoveNodes(vec![
            ("orders".into(), [900.0, 500.0]),
            ("out".into(), [0.0, 0.0]),
        ]),
    );
    apply(&mut harness, Command::TidyLayout);
    let flow = &harness.state().state.doc.flow;
    let x = |id: &str| flow.node(id).unwrap().position[0];
    assert!(x("orders") < x("shipped") && x("shipped") < x("total") && x("total") < x("out"));
    let rows: Vec<f32> = flow.nodes.iter().map(|n| n.position[1]).collect();
    assert!(rows.iter().all(|y| *y == rows[0]), "one row: {rows:?}");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run_steps(2);
    let undone: Vec<[f32; 2]> = harness
        .state()
        .state
        .doc
        .flow
        .nodes
        .iter()
        .map(|n| n.position)
        .collect();
    assert_eq!(undone, before);
}

#[test]
fn the_active_switch_of_a_scheduled_flow_talks_to_the_service_s_state() {
    let scratch = Scratch::new();
    let flows = scratch.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let path = flows.join("demo.json");
    let mut flow: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("flows/demo-opportunities-to-lake.json").unwrap(),
    )
    .unwrap();
    flow["trigger"] = serde_json::json!({"type": "schedule", "expression": "rate(1 hours)"});
    std::fs::write(&path, flow.to_string()).unwrap();
    let name = flow["name"].as_str().unwrap().to_string();
    let dirs = Dirs::under(&scratch.home());
    let mut harness = open(&scratch, &path);
    apply(&mut harness, Command::Select(Vec::new()));
    assert!(shows(&harness, "Next runs"));
    let active = |dirs: &Dirs| {
        tributary::state::StateStore::open(dirs)
            .unwrap()
            .activation(&name)
            .unwrap()
            .is_some_and(|a| a.active)
    };
    assert!(!active(&dirs));
    harness.get_by_label("Active").click();
    harness.run_steps(2);
    assert!(active(&dirs), "the switch activates the flow");
    assert!(shows(&harness, "No service is running"));
    assert!(harness.query_by_label("Start the service").is_some());

    // A service on the flow's folder: the app says it runs the flow.
    let service = tributary::state::ServiceLock::take(
        &dirs,
        &tributary::state::ServiceInfo {
            pid: std::process::id(),
            flows: std::path::absolute(&flows).unwrap(),
            listen: None,
        },
    )
    .unwrap();
    wait_for(&mut harness, "the service to be seen", |app| {
        app.state.service.running.is_some()
    });
    assert!(shows(&harness, "The service runs it"));
    assert!(!shows(&harness, "No service is running"));

    // The service deactivates it after failures: the switch goes off, with the reason.
    tributary::state::StateStore::open(&dirs)
        .unwrap()
        .deactivate(
            &name,
            Some("deactivated after 10 failed runs in a row; the last: no network"),
        )
        .unwrap();
    wait_for(&mut harness, "the deactivation to be seen", |app| {
        app.state
            .service
            .activation
            .as_ref()
            .is_some_and(|a| !a.active)
    });
    assert!(shows(&harness, "deactivated after 10 failed runs in a row"));
    harness.get_by_label("Active").click();
    harness.run_steps(2);
    assert!(active(&dirs), "switched on again");
    drop(service);
}

/// File → Import AppFlow flow…: a template of two flows asks which; what the chosen one
/// lacks is listed before it opens; File → Export as AppFlow flow… writes it back, and a
/// flow AppFlow cannot run is refused with the node and why.
#[test]
fn an_appflow_flow_is_imported_after_what_it_lacks_is_shown_and_exported_again() {
    let scratch = Scratch::new();
    let mut harness = start(&scratch, None);
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/appflow/lake-flows.cloudformation.yaml");
    apply(
        &mut harness,
        Command::ImportAppFlow {
            path: template,
            flow: None,
        },
    );
    assert!(shows(
        &harness,
        "lake-flows.cloudformation.yaml holds 2 flows: which one?"
    ));
    harness.get_by_label("Orders").click();
    harness.run_steps(3);
    assert!(shows(
        &harness,
        "One part of the AppFlow flow cannot be carried over"
    ));
    assert!(shows(
        &harness,
        "/Resources/Orders/Properties/TriggerConfig/TriggerProperties/ScheduleOffset"
    ));
    assert!(shows(&harness, "runs start at the schedule's times here"));
    assert!(
        harness.state().state.welcome,
        "nothing opens before the user says so"
    );
    harness.get_by_label("Open the flow").click();
    harness.run_steps(3);
    let app = &harness.state().state;
    assert!(!app.welcome);
    assert_eq!(app.doc.flow.name, "orders-to-lake");
    assert_eq!(app.doc.flow.nodes.len(), 9);
    assert!(app.appflow.is_none());
    for label in [
        "S3 objects",
        "Filter",
        "Validate",
        "Mask",
        "Merge",
        "Map",
        "S3 bucket",
    ] {
        assert!(shows(&harness, label), "the canvas shows {label}");
    }

    // Written back: it has nothing AppFlow lacks, so it is written at once.
    let out = scratch.path().join("orders.appflow.json");
    apply(&mut harness, Command::ExportAppFlow(out.clone()));
    let request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(request["flowName"], "orders-to-lake");
    assert_eq!(request["sourceFlowConfig"]["connectorType"], "S3");
    assert!(shows(&harness, "Wrote the AppFlow flow to"));

    // The demo flow reads a source AppFlow does not have. The imported flow was never
    // saved: the app asks first.
    apply(&mut harness, Command::OpenDemo);
    if harness.state().state.confirm.is_some() {
        apply(&mut harness, Command::DiscardThenContinue);
    }
    let refused = scratch.path().join("demo.appflow.json");
    apply(&mut harness, Command::ExportAppFlow(refused.clone()));
    assert!(shows(
        &harness,
        "AppFlow cannot run this flow: node `crm`: AppFlow has no connector for source.demo_crm"
    ));
    assert!(!refused.exists());
}

#[test]
fn a_connection_made_in_the_app_answers_the_problem_of_the_node_that_names_it() {
    let scratch = Scratch::new();
    let path = scratch.path().join("warehouse.json");
    std::fs::copy("flows/demo-opportunities-to-postgres.json", &path).unwrap();
    let dirs = Dirs::under(&scratch.home());
    tributary::auth::vault::unlock_shared(&dirs, "app tests").unwrap();
    let mut harness = open(&scratch, &path);
    validated(&mut harness);
    let named = |app: &TributaryApp| {
        app.state
            .problems_of("warehouse")
            .iter()
            .any(|p| p.message.contains("no connection named `warehouse`"))
    };
    assert!(named(harness.state()));

    apply(
        &mut harness,
        Command::NewConnection {
            connector: Some("postgres".into()),
            for_node: None,
        },
    );
    let mut draft = harness.state().state.connections.draft.clone().unwrap();
    draft.name = "warehouse".into();
    for (key, value) in [
        ("host", "127.0.0.1"),
        ("database", "analytics"),
        ("username", "loader"),
    ] {
        draft.settings.insert(key.into(), value.into());
    }
    draft
        .secrets
        .insert("password".into(), tributary::auth::Secret::new("pw"));
    apply(&mut harness, Command::EditConnectionDraft(draft));
    apply(&mut harness, Command::SaveConnectionDraft);
    assert!(harness.state().state.connections.draft.is_none(), "saved");
    wait_for(&mut harness, "the flow checked again", |app| {
        app.state.analysis_revision == app.state.doc.revision && !named(app)
    });
}

/// The formulas example, its last field's expression selected for typing over.
fn typing_over_the_last_formula(scratch: &Scratch) -> Harness<'static, TributaryApp> {
    let path = scratch.path().join("formulas.json");
    std::fs::copy("flows/demo-opportunities-with-formulas.json", &path).unwrap();
    let mut harness = open(scratch, &path);
    apply(&mut harness, Command::Select(vec!["compute".into()]));
    validated(&mut harness);
    harness
        .get_all_by_role_and_label(egui::accesskit::Role::MultilineTextInput, "Expression")
        .last()
        .expect("the expressions' editors")
        .focus();
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run_steps(2);
    harness
}

fn contact_expression(harness: &Harness<'static, TributaryApp>) -> String {
    let flow = &harness.state().state.doc.flow;
    flow.node("compute").unwrap().config["fields"][4]["expression"]
        .as_str()
        .unwrap()
        .to_string()
}

fn offered(harness: &Harness<'static, TributaryApp>, name: &str) -> bool {
    harness
        .query_all_by_role_and_label(egui::accesskit::Role::Button, name)
        .next()
        .is_some()
}

#[test]
fn a_formula_is_written_with_fields_and_functions_offered_as_it_is_typed() {
    let scratch = Scratch::new();
    let mut harness = typing_over_the_last_formula(&scratch);
    type_slowly(&mut harness, "upper(las");
    assert_eq!(contact_expression(&harness), "upper(las");
    assert!(
        offered(&harness, "LastName"),
        "the incoming field is offered"
    );
    assert!(focused(&harness));
    // Tab takes the offer, and the editor keeps the focus.
    harness.key_press(egui::Key::Tab);
    harness.run_steps(2);
    assert_eq!(contact_expression(&harness), "upper(LastName");
    assert!(focused(&harness));
    assert!(!offered(&harness, "LastName"), "a taken offer goes away");
    // A field computed above is offered too, in backquotes once one is typed; a click
    // takes it.
    type_slowly(&mut harness, ") & \" \" & to_text(`wei");
    let buttons: Vec<String> = harness
        .query_all_by_role(egui::accesskit::Role::Button)
        .map(|n| format!("{n:?}"))
        .collect();
    assert!(
        offered(&harness, "WeightedAmount"),
        "{} {buttons:?}",
        contact_expression(&harness)
    );
    harness
        .get_by_role_and_label(egui::accesskit::Role::Button, "WeightedAmount")
        .click();
    harness.run_steps(3);
    assert_eq!(
        contact_expression(&harness),
        "upper(LastName) & \" \" & to_text(`WeightedAmount`"
    );
    assert!(focused(&harness), "the click left the focus in the editor");
    type_slowly(&mut harness, ")");
    assert_eq!(
        contact_expression(&harness),
        "upper(LastName) & \" \" & to_text(`WeightedAmount`)"
    );
    // The preview follows, with the values the formula gives.
    wait_for(&mut harness, "the preview of the edit", |app| {
        matches!(&app.state.preview.result,
            Some((k, Ok(_))) if k.revision == app.state.doc.revision)
    });
    let (_, table) = harness.state().state.preview.result.as_ref().unwrap();
    let table = table.as_ref().unwrap();
    let column = |name: &str| table.columns.iter().position(|(n, _)| n == name).unwrap();
    let (last, weighted, contact) = (
        column("LastName"),
        column("WeightedAmount"),
        column("Contact"),
    );
    for row in &table.rows {
        assert_eq!(
            row[contact],
            format!("{} {}", row[last].to_uppercase(), row[weighted])
        );
    }
}

#[test]
fn a_mistyped_name_in_a_formula_is_said_under_it_and_its_function_shown() {
    let scratch = Scratch::new();
    let mut harness = typing_over_the_last_formula(&scratch);
    type_slowly(&mut harness, "round(Amout, 2)");
    // Back inside the parentheses.
    harness.key_press(egui::Key::ArrowLeft);
    harness.run_steps(2);
    validated(&mut harness);
    // The check's word under the editor, and how round is called while inside it.
    let said = "line 1, column 7: there is no field `Amout` (did you mean `Amount`?)";
    assert!(harness.query_all_by_label_contains(said).next().is_some());
    assert!(harness.query_by_label("round(number, places)").is_some());
    assert!(!offered(&harness, "Amount"), "no field starts with Amout");
    assert!(focused(&harness));
}

#[test]
fn a_script_is_edited_with_the_records_fields_offered_after_record() {
    let scratch = Scratch::new();
    let path = scratch.path().join("script.json");
    std::fs::copy("flows/demo-opportunities-by-script.json", &path).unwrap();
    let mut harness = open(&scratch, &path);
    apply(&mut harness, Command::Select(vec!["sort".into()]));
    validated(&mut harness);
    harness
        .get_by_role_and_label(egui::accesskit::Role::MultilineTextInput, "Script")
        .focus();
    harness.run_steps(2);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run_steps(2);
    type_slowly(&mut harness, "record.Channel = record.lead");
    assert!(offered(&harness, "LeadSource"));
    harness.key_press(egui::Key::Tab);
    harness.run_steps(2);
    // With nothing to offer, Tab indents, as in any code editor.
    type_slowly(&mut harness, ";\nif true {\n");
    harness.key_press(egui::Key::Tab);
    harness.run_steps(2);
    type_slowly(&mut harness, "record.Channel += \"!\";\n}\nrecord.next");
    // A field the script adds (its `fields`) is offered too.
    assert!(offered(&harness, "NextStep"));
    harness.key_press(egui::Key::Tab);
    harness.run_steps(2);
    let flow = &harness.state().state.doc.flow;
    assert_eq!(
        flow.node("sort").unwrap().config["script"],
        "record.Channel = record.LeadSource;\nif true {\n\trecord.Channel += \"!\";\n}\nrecord.NextStep"
    );
    assert!(focused(&harness));
}
