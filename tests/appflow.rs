//! `tributary import appflow`: AppFlow definitions written by hand from the AppFlow API
//! reference (`tests/appflow/`, checked against botocore's AppFlow model by
//! `tests/support/appflow_fixtures.py`), each imported into the flow file it should give;
//! what cannot be carried over listed; mistakes said with their JSON path.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use indexmap::IndexMap;
use serde_json::{Value, json};
use tributary::flow::Flow;

const PASSPHRASE: &str = "appflow tests";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/appflow")
        .join(name)
}

fn import(scratch: &Scratch, args: &[&str]) -> Output {
    tributary_in(scratch, PASSPHRASE)
        .args(["import", "appflow"])
        .args(args)
        .output()
        .unwrap()
}

/// Every node of a flow has a config its node type reads.
fn configs_read(flow: &Flow) {
    let params: IndexMap<String, String> = flow.params.clone();
    for node in &flow.nodes {
        tributary::workspace::node_config(flow, &node.id, &params)
            .unwrap_or_else(|e| panic!("{}: {e:?}", node.id));
    }
}

#[test]
fn each_definition_imports_to_the_flow_it_means() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "salesforce-opportunities.create-flow.json",
            &[],
            "salesforce-opportunities.expected.json",
        ),
        (
            "servicenow-incidents.describe-flow.json",
            &[],
            "servicenow-incidents.expected.json",
        ),
        (
            "lake-flows.cloudformation.yaml",
            &["--flow", "Orders", "--allow-partial"],
            "lake-flows.orders.expected.json",
        ),
        (
            "lake-flows.cloudformation.yaml",
            &["--flow", "NewLeads", "--allow-partial"],
            "lake-flows.new-leads.expected.json",
        ),
        (
            "payments-to-salesforce.create-flow.json",
            &["--allow-partial"],
            "payments-to-salesforce.expected.json",
        ),
    ];
    for (input, args, expected) in cases {
        let scratch = Scratch::new();
        let out = scratch.path().join("imported.json");
        let path = fixture(input);
        let mut all = vec![path.to_str().unwrap(), "-o", out.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = import(&scratch, &all);
        assert_eq!(o.status.code(), Some(0), "{input}: {}", said(&o));
        let got: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(expected)).unwrap()).unwrap();
        assert_eq!(got, want, "{input} {args:?}");
        let flow = Flow::from_json(&got.to_string(), input).unwrap();
        configs_read(&flow);
    }
}

#[test]
fn the_definitions_are_requests_and_answers_appflow_takes_and_gives() {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/appflow_fixtures.py"
    );
    let o = Command::new(&python).arg(script).output().unwrap();
    assert!(o.status.success(), "{}", said(&o));
    let checked = stdout(&o);
    assert_eq!(
        checked.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "{checked}"
    );

    // The check can fail: a task type AppFlow does not have.
    let scratch = Scratch::new();
    let folder = scratch.path().join("wrong");
    std::fs::create_dir(&folder).unwrap();
    let text = std::fs::read_to_string(fixture("salesforce-opportunities.create-flow.json"))
        .unwrap()
        .replace("\"taskType\": \"Truncate\"", "\"taskType\": \"Shorten\"");
    std::fs::write(folder.join("bad.create-flow.json"), text).unwrap();
    let o = Command::new(&python)
        .arg(script)
        .arg(&folder)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stdout(&o).contains("Shorten"), "{}", said(&o));
}

#[test]
fn what_is_not_carried_over_is_listed_and_nothing_is_written_without_allow_partial() {
    let scratch = Scratch::new();
    let out = scratch.path().join("orders.json");
    let path = fixture("lake-flows.cloudformation.yaml");
    let o = import(
        &scratch,
        &[
            path.to_str().unwrap(),
            "--flow",
            "Orders",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let text = said(&o);
    assert!(
        text.contains(
            "/Resources/Orders/Properties/TriggerConfig/TriggerProperties/ScheduleOffset: runs start at the schedule's times here"
        ),
        "{text}"
    );
    assert!(text.contains("--allow-partial"), "{text}");
    assert!(!out.exists(), "nothing written");

    // With --allow-partial the flow says what it lacks.
    let o = import(
        &scratch,
        &[
            path.to_str().unwrap(),
            "--flow",
            "Orders",
            "--allow-partial",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let flow: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(
        flow["description"]
            .as_str()
            .unwrap()
            .contains("Imported from AppFlow without: /Resources/Orders/Properties/TriggerConfig/TriggerProperties/ScheduleOffset")
    );

    // A property the import knows nothing of is listed by its path, not dropped.
    let mut request: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("salesforce-opportunities.create-flow.json")).unwrap(),
    )
    .unwrap();
    request["destinationFlowConfigList"][0]["destinationConnectorProperties"]["S3"]["s3OutputFormatConfig"]
        ["prefixConfig"]["prefixHierarchyStyle"] = json!("HIVE");
    request["kmsArn"] = json!("arn:aws:kms:eu-west-1:123456789012:key/1");
    let input = scratch.write("request.json", &request.to_string());
    let o = import(&scratch, &[input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let text = said(&o);
    assert!(
        text.contains("2 parts of the AppFlow flow are not carried over"),
        "{text}"
    );
    assert!(
        text.contains("/destinationFlowConfigList/0/destinationConnectorProperties/S3/s3OutputFormatConfig/prefixConfig/prefixHierarchyStyle: Tributary has no counterpart"),
        "{text}"
    );
    assert!(
        text.contains("/kmsArn: Tributary keeps no data of its own"),
        "{text}"
    );
}

#[test]
fn mistakes_are_said_with_their_json_path() {
    let scratch = Scratch::new();
    let base: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("salesforce-opportunities.create-flow.json")).unwrap(),
    )
    .unwrap();
    let said_of = |change: &dyn Fn(&mut Value)| {
        let mut request = base.clone();
        change(&mut request);
        let input = scratch.write("request.json", &request.to_string());
        let o = import(&scratch, &[input.to_str().unwrap(), "--allow-partial"]);
        assert_eq!(o.status.code(), Some(2), "{}", said(&o));
        said(&o)
    };
    let text = said_of(&|r| {
        r["sourceFlowConfig"]["connectorType"] = json!("Marketo");
        r["sourceFlowConfig"]["sourceConnectorProperties"] =
            json!({"Marketo": {"object": "leads"}});
    });
    assert!(
        text.contains("/sourceFlowConfig: Tributary has no Marketo connector: it reads S3, Salesforce, ServiceNow, Zendesk, Slack, SAPOData"),
        "{text}"
    );
    let text = said_of(&|r| r["tasks"][10]["sourceFields"][0] = json!("Identifier"));
    assert!(
        text.contains("/tasks/10/sourceFields/0: `Identifier` is not among the fields the flow reads (its PROJECTION: Id, Name"),
        "{text}"
    );
    let text = said_of(&|r| r["tasks"][1]["taskProperties"]["VALUE"] = json!("a thousand"));
    assert!(
        text.contains("/tasks/1/taskProperties/VALUE: `a thousand` is not a number, as the filter's DATA_TYPE says"),
        "{text}"
    );
    let text = said_of(&|r| r["tasks"][1]["connectorOperator"]["Salesforce"] = json!("MASK_ALL"));
    assert!(
        text.contains("/tasks/1/connectorOperator/Salesforce: `MASK_ALL` is not a filter operator"),
        "{text}"
    );
    let text = said_of(&|r| {
        r["triggerConfig"]["triggerProperties"]["Scheduled"]["scheduleExpression"] =
            json!("every day")
    });
    assert!(
        text.contains("/triggerConfig/triggerProperties/Scheduled/scheduleExpression: `every day`"),
        "{text}"
    );
    let text = said_of(&|r| {
        r.as_object_mut().unwrap().remove("sourceFlowConfig");
    });
    assert!(text.contains("`sourceFlowConfig` is missing"), "{text}");

    // Not JSON, not AppFlow, a template of several flows.
    let broken = scratch.write("broken.json", "{\"flowName\": \"x\",\n  \"tasks\": [}");
    let o = import(&scratch, &[broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        said(&o).contains("not JSON") && said(&o).contains("line 2"),
        "{}",
        said(&o)
    );
    let other = scratch.write("other.json", "{\"nodes\": []}");
    let o = import(&scratch, &[other.to_str().unwrap()]);
    assert!(
        said(&o).contains("this is not an AppFlow flow"),
        "{}",
        said(&o)
    );
    let o = import(
        &scratch,
        &[fixture("lake-flows.cloudformation.yaml").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        said(&o).contains("the template holds 2 flows: NewLeads, Orders; choose one with --flow"),
        "{}",
        said(&o)
    );
}

#[test]
fn a_connection_of_the_profile_s_name_is_used_as_it_is() {
    let scratch = Scratch::new();
    add_connection(
        &scratch,
        PASSPHRASE,
        "sf-prod",
        "salesforce",
        "oauth2_client_credentials",
        &[
            "login_url=https://acme.my.salesforce.com".into(),
            "client_id=abc".into(),
        ],
        "a-secret",
    );
    let o = import(
        &scratch,
        &[fixture("salesforce-opportunities.create-flow.json")
            .to_str()
            .unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let flow: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(flow["nodes"][0]["config"]["connection"], "sf-prod");
    assert!(flow.get("params").is_none(), "{flow}");
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
}

/// A flow's nodes as (type, config) with its parameters filled in, and its trigger: what
/// it means, whatever its layout and node ids.
fn meaning(flow: &Value) -> (Vec<(Value, Value)>, Value) {
    let mut text = flow["nodes"].to_string();
    for (name, value) in flow["params"].as_object().into_iter().flatten() {
        text = text.replace(&format!("${{{name}}}"), value.as_str().unwrap());
    }
    let nodes: Vec<Value> = serde_json::from_str(&text).unwrap();
    (
        nodes
            .into_iter()
            .map(|n| (n["type"].clone(), n["config"].clone()))
            .collect(),
        flow["trigger"].clone(),
    )
}

#[test]
fn an_exported_flow_imports_back_to_the_same_flow() {
    let scratch = Scratch::new();
    let checked = scratch.path().join("exported");
    std::fs::create_dir(&checked).unwrap();
    for name in [
        "salesforce-opportunities",
        "servicenow-incidents",
        "lake-flows.orders",
        "lake-flows.new-leads",
        "payments-to-salesforce",
    ] {
        let original = fixture(&format!("{name}.expected.json"));
        let request = checked.join(format!("{name}.create-flow.json"));
        let template = checked.join(format!("{name}.cloudformation.json"));
        for (out, extra) in [(&request, None), (&template, Some("--cloudformation"))] {
            let o = tributary_in(&scratch, PASSPHRASE)
                .args(["export", "appflow", original.to_str().unwrap(), "-o"])
                .arg(out)
                .args(extra)
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0), "{name}: {}", said(&o));
        }
        let want: Value =
            serde_json::from_str(&std::fs::read_to_string(&original).unwrap()).unwrap();
        for exported in [&request, &template] {
            let o = import(&scratch, &[exported.to_str().unwrap(), "--allow-partial"]);
            assert_eq!(o.status.code(), Some(0), "{name}: {}", said(&o));
            let back: Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(meaning(&back), meaning(&want), "{}", exported.display());
        }
    }
    // What was exported is what AppFlow takes.
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/appflow_fixtures.py"
    );
    let o = Command::new(&python)
        .arg(script)
        .arg(&checked)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", said(&o));
    assert_eq!(
        stdout(&o).lines().filter(|l| l.starts_with("ok ")).count(),
        10,
        "{}",
        said(&o)
    );
}

#[test]
fn flows_appflow_cannot_run_are_refused_with_the_node_and_why() {
    let scratch = Scratch::new();
    let export = |flow: &Value| {
        let path = scratch.flow("flow.json", flow);
        let o = tributary_in(&scratch, PASSPHRASE)
            .args(["export", "appflow", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", said(&o));
        said(&o)
    };
    let s3 = |id: &str| node(id, "source.s3", json!({"bucket": "in", "format": "csv"}));
    let lake = node("lake", "destination.s3", json!({"bucket": "out"}));
    let text = export(&flow(
        vec![
            s3("orders"),
            node(
                "total",
                "transform.aggregate",
                json!({"group_by": ["status"], "aggregates": []}),
            ),
            lake.clone(),
        ],
        &[("orders", "total"), ("total", "lake")],
    ));
    assert!(
        text.contains("node `total`: AppFlow has no task for transform.aggregate"),
        "{text}"
    );
    let text = export(&flow(
        vec![
            s3("orders"),
            lake.clone(),
            node("copy", "destination.local", json!({"folder": "out"})),
        ],
        &[("orders", "lake"), ("orders", "copy")],
    ));
    assert!(
        text.contains("node `orders`: sends its records to 2 nodes; an AppFlow flow is one chain to one destination"),
        "{text}"
    );
    let text = export(&flow(
        vec![
            s3("orders"),
            node(
                "map",
                "transform.map",
                json!({"fields": [{"source": "a", "target": "b"}]}),
            ),
            node(
                "keep",
                "transform.filter",
                json!({"conditions": [{"field": "b", "operator": "equal_to", "value": 1}]}),
            ),
            lake.clone(),
        ],
        &[("orders", "map"), ("map", "keep"), ("keep", "lake")],
    ));
    assert!(
        text.contains("node `keep`: AppFlow filters the source's fields, before the map"),
        "{text}"
    );
    let text = export(&flow(
        vec![node("crm", "source.demo_crm", json!({})), lake],
        &[("crm", "lake")],
    ));
    assert!(
        text.contains("node `crm`: AppFlow has no connector for source.demo_crm"),
        "{text}"
    );
}

/// `metadataCatalogConfig`: the S3 destination registers in the same Glue database with
/// the same table prefix; the role AppFlow would assume is listed as not carried over.
#[test]
fn a_glue_catalog_comes_over_to_the_s3_destination() {
    let scratch = Scratch::new();
    let mut request: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("salesforce-opportunities.create-flow.json")).unwrap(),
    )
    .unwrap();
    request["metadataCatalogConfig"] = json!({"glueDataCatalog": {
        "roleArn": "arn:aws:iam::123456789012:role/appflow-glue",
        "databaseName": "crm_lake",
        "tablePrefix": "appflow_"
    }});
    let input = scratch.write("request.json", &request.to_string());
    let out = scratch.path().join("imported.json");
    let o = import(
        &scratch,
        &[
            input.to_str().unwrap(),
            "--allow-partial",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(
        said(&o).contains("/metadataCatalogConfig/glueDataCatalog/roleArn: Glue is reached with the S3 destination's credentials"),
        "{}",
        said(&o)
    );
    let flow: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let destination = (flow["nodes"].as_array().unwrap().iter())
        .find(|n| n["type"] == "destination.s3")
        .unwrap();
    assert_eq!(
        destination["config"]["catalog"],
        json!({"glue": {"database": "crm_lake", "table_prefix": "appflow_"}})
    );
}
