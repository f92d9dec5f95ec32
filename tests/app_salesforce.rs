//! The inspectors of nodes that read one of a service's objects, driven with egui_kittest
//! against local services: the Salesforce source's and the connector framework's generic
//! source (ServiceNow here). The connection's objects with a search box, the chosen
//! object's fields as a checklist, and conditions offered the object's fields.

mod common;

use common::ui::wait_for;
use common::*;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use serde_json::json;
use tributary::paths::Dirs;
use tributary::ui::{AppState, Command, TributaryApp, Worker};

fn config(harness: &Harness<'static, TributaryApp>) -> serde_json::Value {
    harness
        .state()
        .state
        .doc
        .flow
        .node("sf")
        .unwrap()
        .config
        .clone()
}

/// The app on a flow of one source node `id` of type `kind` into a folder, the node
/// selected; the connections' vault is unlocked with "app tests".
fn inspecting(
    scratch: &Scratch,
    id: &str,
    kind: &str,
    config: serde_json::Value,
) -> Harness<'static, TributaryApp> {
    let flow = flow(
        vec![
            node(id, kind, config),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[(id, "out")],
    );
    let path = scratch.flow("flow.json", &flow);
    let dirs = Dirs::under(&scratch.home());
    // The app's worker reaches the connection through the data folder it is given.
    tributary::auth::vault::unlock_shared(&dirs, "app tests").unwrap();
    let worker = Worker::new(dirs.clone(), || {});
    let state = AppState::open_initial(dirs, Some(&path));
    let mut harness = Harness::builder()
        .with_size([1440.0, 1000.0])
        .build_ui_state(
            |ui, app: &mut TributaryApp| app.ui(ui),
            TributaryApp::new(state, worker),
        );
    harness.run_steps(3);
    {
        let app = harness.state_mut();
        app.state
            .apply(Command::Select(vec![id.into()]), &app.worker);
    }
    harness
}

#[test]
fn the_inspector_lists_objects_and_fields_to_choose_from() {
    let org = SupportServer::start("salesforce_server.py", &[]);
    let scratch = Scratch::new();
    salesforce_connection(&scratch, &org, "app tests");
    let mut harness = inspecting(
        &scratch,
        "sf",
        "source.salesforce",
        json!({"connection": "crm", "object": ""}),
    );
    wait_for(&mut harness, "the object list", |app| {
        app.state
            .catalogs
            .get("sf")
            .is_some_and(|c| c.entities.is_some())
    });
    assert!(
        harness
            .query_by_label_contains("Opportunity History")
            .is_some()
    );

    harness
        .get_by_role_and_label(Role::TextInput, "Objects")
        .focus();
    harness.run_steps(2);
    harness
        .get_by_role_and_label(Role::TextInput, "Objects")
        .type_text("opp");
    harness.run_steps(3);
    assert!(
        harness.query_by_label("Account").is_none(),
        "the search hides Account"
    );
    harness.get_by_label("Opportunity").click();
    harness.run_steps(2);
    assert_eq!(config(&harness)["entity"], "Opportunity");

    wait_for(&mut harness, "the fields", |app| {
        app.state
            .catalogs
            .get("sf")
            .is_some_and(|c| matches!(c.fields, Some(Ok(_))))
    });
    assert!(
        harness
            .query_by_label_contains("Fields of Opportunity (26 of 26)")
            .is_some()
    );
    harness.get_by_label("Amount  ·  decimal(18,2)").click();
    harness.run_steps(3);
    let fields = config(&harness)["fields"].as_array().unwrap().clone();
    assert_eq!(fields.len(), 25);
    assert!(!fields.contains(&json!("Amount")));
    assert_eq!(fields[0], "Id", "the object's order is kept");
    // The plan of the changed node shows first, moving what is below it.
    wait_for(&mut harness, "validation", |app| {
        app.state.analysis_revision == app.state.doc.revision
    });
    harness.get_by_label("All").click();
    harness.run_steps(3);
    assert!(config(&harness).get("fields").is_none());
}

#[test]
fn the_generic_source_inspector_lists_a_services_tables_and_fields() {
    let instance = SupportServer::start("servicenow_server.py", &[]);
    let scratch = Scratch::new();
    servicenow_connection(&scratch, &instance, "app tests");
    let mut harness = inspecting(
        &scratch,
        "sn",
        "source.servicenow",
        json!({"connection": "sn", "entity": ""}),
    );
    wait_for(&mut harness, "the table list", |app| {
        app.state
            .catalogs
            .get("sn")
            .is_some_and(|c| c.entities.is_some())
    });
    assert!(harness.query_by_label("User  ·  sys_user").is_some());

    // A person types the search one key at a time.
    harness
        .get_by_role_and_label(Role::TextInput, "Tables")
        .focus();
    harness.run_steps(2);
    for c in ["i", "n", "c"] {
        harness
            .get_by_role_and_label(Role::TextInput, "Tables")
            .type_text(c);
        harness.run_steps(1);
    }
    harness.run_steps(2);
    assert!(
        harness.query_by_label("User  ·  sys_user").is_none(),
        "the search hides sys_user"
    );
    harness.get_by_label("Incident  ·  incident").click();
    harness.run_steps(2);
    let entity = |h: &Harness<'static, TributaryApp>| {
        h.state().state.doc.flow.node("sn").unwrap().config["entity"].clone()
    };
    assert_eq!(entity(&harness), "incident");

    wait_for(&mut harness, "the fields", |app| {
        app.state
            .catalogs
            .get("sn")
            .is_some_and(|c| matches!(c.fields, Some(Ok(_))))
    });
    assert!(
        harness
            .query_by_label_contains("Fields of incident (11 of 11)")
            .is_some()
    );
    harness.get_by_label("cost  ·  decimal(20,2)").click();
    harness.run_steps(3);
    let config = harness
        .state()
        .state
        .doc
        .flow
        .node("sn")
        .unwrap()
        .config
        .clone();
    let fields = config["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 10);
    assert!(!fields.contains(&json!("cost")));
}

#[test]
fn a_declared_connectors_inspector_shows_custom_fields_by_their_titles() {
    let server = SupportServer::start("zendesk_server.py", &[]);
    let scratch = Scratch::new();
    zendesk_connection(&scratch, &server, "app tests", "zd-token-1");
    let mut harness = inspecting(
        &scratch,
        "zd",
        "source.zendesk",
        json!({"connection": "zd", "entity": "tickets"}),
    );
    wait_for(&mut harness, "the fields", |app| {
        app.state
            .catalogs
            .get("zd")
            .is_some_and(|c| matches!(c.fields, Some(Ok(_))))
    });
    assert!(
        harness
            .query_by_label("Satisfaction ratings  ·  satisfaction_ratings")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains("Fields of tickets (16 of 16)")
            .is_some()
    );
    // A field whose title says more than its name is shown by both.
    assert!(harness.query_by_label("subject  ·  string").is_some());
    // It is below the list's fold: a person scrolls to it.
    harness
        .get_by_label("Order number  ·  custom_360001  ·  integer")
        .scroll_to_me();
    harness.run_steps(10);
    harness
        .get_by_label("Order number  ·  custom_360001  ·  integer")
        .click();
    harness.run_steps(3);
    let fields = harness.state().state.doc.flow.node("zd").unwrap().config["fields"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(fields.len(), 15);
    assert!(!fields.contains(&json!("custom_360001")));
}
