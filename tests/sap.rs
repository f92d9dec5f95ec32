//! `source.sap` and `destination.sap`, SAP OData on the connector framework, through the
//! `tributary` command against an SAP Gateway service on loopback that speaks OData v2 or
//! v4 (`tests/support/sap_server.py`). The tests check the requests (`$select`, the exact
//! `$filter`, paging, the CSRF token) as well as the records written.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::*;
use indexmap::IndexMap;
use serde_json::{Value, json};
use tributary::auth::vault;
use tributary::flow::Flow;
use tributary::paths::Dirs;
use tributary::workspace::Workspace;

const PASSPHRASE: &str = "sap tests";
const ROOT: &str = "/sap/opu/odata/sap/API_PRODUCT_SRV";

fn tributary(scratch: &Scratch) -> Command {
    tributary_in(scratch, PASSPHRASE)
}

/// A service of OData `version` (2 or 4) and a scratch installation with the connection
/// `s4` to it (basic sign-in, SAP client 100).
fn connected(version: &str) -> (SupportServer, Scratch) {
    connected_to(&["--version", version])
}

/// [`connected`] to a service started with `args`.
fn connected_to(args: &[&str]) -> (SupportServer, Scratch) {
    let service = SupportServer::start("sap_server.py", args);
    let scratch = Scratch::new();
    add_connection(
        &scratch,
        PASSPHRASE,
        "s4",
        "sap",
        "basic",
        &[
            format!("instance_url={}{ROOT}", service.url()),
            "username=COMM_USER".into(),
            "sap_client=100".into(),
        ],
        "sap-pass-1",
    );
    (service, scratch)
}

fn to_folder(source: Value) -> Value {
    let base = json!({"connection": "s4", "entity": "A_Product"});
    source_to_folder("sap", "source.sap", base, source)
}

fn run(scratch: &Scratch, flow: &Value) -> Output {
    run_in(scratch, PASSPHRASE, flow, &[])
}

/// Every record written so far by product, and how many were written in all.
fn written(scratch: &Scratch) -> (BTreeMap<String, Value>, usize) {
    written_by(scratch, "Product")
}

/// The reads of the product set, in order.
fn reads(requests: &[Value]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["path"] == format!("{ROOT}/A_Product") && r["method"] == "GET")
        .cloned()
        .collect()
}

#[test]
fn entity_sets_and_their_typed_properties_come_from_the_metadata() {
    let (service, scratch) = connected("2");
    let dirs = Dirs::under(&scratch.home());
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let flow = Flow::from_json(&to_folder(json!({})).to_string(), "test").unwrap();
    let config = tributary::workspace::node_config(&flow, "sap", &IndexMap::new()).unwrap();
    let cx = workspace.plan_context(scratch.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sets = runtime.block_on(config.entities(&cx)).unwrap();
    let names: Vec<(&str, &str)> = sets
        .iter()
        .map(|s| (s.name.as_str(), s.label.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("A_Product", "Products"),
            ("A_ProductDescription", "Product Descriptions")
        ]
    );
    let fields = runtime.block_on(config.entity_fields(&cx)).unwrap();
    let labels: Vec<&str> = fields.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels[..3], ["Product", "Product Name", "Net Price"]);

    let types = planned_types(&flow, "sap", &scratch, &workspace);
    assert_eq!(types["Product"], "string");
    assert_eq!(types["Price"], "decimal(13,2)");
    assert_eq!(types["Quantity"], "integer");
    assert_eq!(types["Stock"], "integer");
    assert_eq!(types["Weight"], "number");
    assert_eq!(types["IsActive"], "boolean");
    assert_eq!(types["CreatedOn"], "timestamp");
    assert_eq!(types["LastChangeDateTime"], "timestamp");
    assert_eq!(
        types.len(),
        10,
        "navigation properties are not fields: {types:?}"
    );

    let requests = service.requests();
    assert!(
        requests
            .iter()
            .all(|r| r["path"] == format!("{ROOT}/$metadata"))
    );
    assert!(
        requests.iter().all(|r| r["auth"] == "Basic"),
        "{requests:?}"
    );
    assert!(
        requests.iter().all(|r| r["query"]["sap-client"] == "100"),
        "{requests:?}"
    );
}

/// Products 10..=230 (a price of at least 10), without every 50th (no quantity) and 101.
fn expected_products() -> usize {
    (10..=230).filter(|i| i % 50 != 0 && *i != 101).count()
}

fn filtered_pull() -> Value {
    to_folder(json!({
        "fields": ["Product", "ProductName", "Price", "Stock", "Weight", "IsActive", "LastChangeDateTime"],
        "conditions": [
            {"field": "Quantity", "operator": "greater_than_or_equal_to", "value": 1},
            {"field": "Price", "operator": "greater_than_or_equal_to", "value": 10},
            {"field": "ProductName", "operator": "not_equal_to", "value": "Product 101"}
        ]
    }))
}

#[test]
fn a_v2_pull_sends_the_conditions_as_a_filter_and_follows_next_links() {
    let (service, scratch) = connected("2");
    let record = ran(&run(&scratch, &filtered_pull()));
    let (by_product, count) = written(&scratch);
    assert_eq!(count, expected_products());
    assert_eq!(by_product.len(), count, "no record twice");
    assert_eq!(record["records_written"], count as u64);
    let p = &by_product["P00012"];
    assert_eq!(p["ProductName"], "Bolt 12");
    assert_eq!(p["Price"], 12.0, "{p}");
    assert_eq!(
        p["Stock"], 12_000_000_084_i64,
        "a 64-bit integer sent as text"
    );
    assert_eq!(p["Weight"], 6.0);
    assert_eq!(p["IsActive"], false);
    assert_eq!(p["LastChangeDateTime"], "2026-11-01T00:02:00Z");

    let reads = reads(&service.requests());
    // 216 records, 100 a page: the first page, then two next links.
    assert_eq!(reads.len(), 3, "{reads:?}");
    let q = &reads[0]["query"];
    assert_eq!(
        q["$select"],
        "Product,ProductName,Price,Stock,Weight,IsActive,LastChangeDateTime"
    );
    assert_eq!(
        q["$filter"],
        "Quantity ge 1 and Price ge 10M and ProductName ne 'Product 101'"
    );
    assert_eq!(q["$orderby"], "Product");
    assert_eq!(q["$top"], "1000");
    assert_eq!(q["$format"], "json");
    assert_eq!(q["sap-client"], "100");
    assert_eq!(reads[1]["query"]["$skiptoken"], "100");
    assert_eq!(reads[2]["query"]["$skiptoken"], "200");
}

#[test]
fn a_v4_service_is_read_and_updated_in_its_own_dialect() {
    let (service, scratch) = connected("4");
    let mut flow = filtered_pull();
    flow["nodes"][0]["config"]["conditions"][2] =
        json!({"field": "ProductName", "operator": "contains", "value": "Bolt"});
    ran(&run(&scratch, &flow));
    let (by_product, count) = written(&scratch);
    assert_eq!(
        count,
        (10..=230).filter(|i| i % 4 == 0 && i % 50 != 0).count()
    );
    assert_eq!(
        by_product["P00012"]["LastChangeDateTime"],
        "2026-11-01T00:02:00Z"
    );
    assert_eq!(by_product["P00012"]["Stock"], 12_000_000_084_i64);
    let reads = reads(&service.requests());
    let q = &reads[0]["query"];
    assert_eq!(
        q["$filter"],
        "Quantity ge 1 and Price ge 10 and contains(ProductName,'Bolt')"
    );
    assert!(q.get("$format").is_none(), "v4 answers JSON by Accept");

    // An update is a PATCH of the record its key finds.
    let input = scratch.write(
        "changes.jsonl",
        "{\"Product\": \"P00012\", \"Price\": 99.5}\n{\"Product\": \"P99999\", \"Price\": 1}\n",
    );
    let record = ran(&run(&scratch, &from_file(&input, "update")));
    assert_eq!(record["records_rejected"], 1);
    let reasons: Vec<String> = refused(&record)
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["API_PRD_MSG/001: Product P99999 does not exist"]);
    let changes: Vec<Value> = service
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(changes[0]["path"], format!("{ROOT}/A_Product('P00012')"));
    assert_eq!(
        changes[0]["body"],
        json!({"Product": "P00012", "Price": 99.5})
    );
}

#[test]
fn incremental_runs_read_each_record_once_when_records_share_the_boundary_instant() {
    let (service, scratch) = connected("2");
    let flow = to_folder(json!({
        "fields": ["Product", "ProductName", "LastChangeDateTime"],
        "incremental": true
    }));
    let first = ran(&run(&scratch, &flow));
    assert_eq!(first["records_written"], 230);
    let reads_of_first = reads(&service.requests());
    let q = &reads_of_first[0]["query"];
    assert!(
        q["$filter"]
            .as_str()
            .unwrap()
            .starts_with("LastChangeDateTime lt datetimeoffset'"),
        "the first run reads up to its start: {q}"
    );
    assert_eq!(q["$orderby"], "LastChangeDateTime,Product");

    // Products 230 shares its instant (minute 46) with 225..229. Two more arrive at that
    // very instant, and an older one changes later.
    let boundary = "2026-11-01T00:46:00Z";
    service.control(json!({"upsert": [
        {"Product": "P00901", "ProductName": "Late 1", "LastChangeDateTime": boundary},
        {"Product": "P00005", "ProductName": "Late 2", "LastChangeDateTime": boundary},
        {"Product": "P00007", "ProductName": "Renamed 7", "LastChangeDateTime": "2026-11-01T02:00:00Z"}
    ]}));
    let second = ran(&run(&scratch, &flow));
    assert_eq!(second["records_written"], 3, "{second}");
    let q = &reads(&service.requests())[0]["query"];
    assert!(
        q["$filter"].as_str().unwrap().starts_with(
            "LastChangeDateTime ge datetimeoffset'2026-11-01T00:46:00.000Z' and LastChangeDateTime lt datetimeoffset'"
        ),
        "{q}"
    );
    let third = ran(&run(&scratch, &flow));
    assert_eq!(third["records_written"], 0);

    let (by_product, count) = written(&scratch);
    assert_eq!(count, 233, "every record once, the changed ones again");
    assert_eq!(by_product.len(), 231);
    assert_eq!(by_product["P00007"]["ProductName"], "Renamed 7");
    assert_eq!(by_product["P00005"]["ProductName"], "Late 2");
}

#[test]
fn changes_and_deletions_come_by_delta_links_and_a_failed_run_reads_them_again() {
    for version in ["2", "4"] {
        let (service, scratch) = connected_to(&["--version", version, "--change-tracking"]);
        // No cursor field: the set's change log. The key is read though not chosen.
        let flow = to_folder(json!({
            "fields": ["ProductName", "Price"],
            "conditions": [{"field": "IsActive", "operator": "equal_to", "value": true}],
            "incremental": true
        }));
        let active = (1..=230).filter(|i| i % 3 != 0).count();
        let first = ran(&run(&scratch, &flow));
        assert_eq!(first["records_written"], active, "v{version}: {first}");
        let reads_of_first = reads(&service.requests());
        assert_eq!(reads_of_first.len(), 2, "two pages by the next link");
        let q = &reads_of_first[0]["query"];
        assert_eq!(q["$select"], "ProductName,Price,Product");
        assert_eq!(q["$filter"], "IsActive eq true");
        assert!(
            q.get("$orderby").is_none() && q.get("$top").is_none(),
            "{q}"
        );
        assert_eq!(reads_of_first[0]["prefer"], "odata.track-changes");

        // A product renamed, one added, one deleted, one no longer active.
        service.control(json!({
            "upsert": [
                {"Product": "P00007", "ProductName": "Renamed 7"},
                {"Product": "P00901", "ProductName": "New", "IsActive": true, "Price": "1.00"},
                {"Product": "P00010", "IsActive": false}
            ],
            "delete": ["P00004"]
        }));
        // The run that reads them fails: nothing is written, the log's place stays.
        service.control(json!({"fail": [{"status": 400, "at": "deltatoken"}]}));
        let failed = run(&scratch, &flow);
        assert!(!failed.status.success(), "v{version}");
        let (_, count) = written(&scratch);
        assert_eq!(count, active, "v{version}: the failed run wrote nothing");

        let second = ran(&run(&scratch, &flow));
        assert_eq!(second["records_written"], 4, "v{version}: {second}");
        let delta_reads = reads(&service.requests());
        let token = |r: &Value| {
            let q = &r["query"];
            q.get("!deltatoken")
                .or(q.get("$deltatoken"))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let tokens: Vec<Value> = delta_reads.iter().map(token).collect();
        let first_token = match version {
            "2" => json!("'0'"),
            _ => json!("0"),
        };
        assert_eq!(
            tokens,
            [first_token.clone(), first_token],
            "v{version}: the failed run and the next read from the same place"
        );
        assert_eq!(delta_reads[1]["query"]["$filter"], "IsActive eq true");

        let rows = jsonl_rows(&scratch, "out");
        let latest = |key: &str| {
            rows.iter()
                .rev()
                .map(|(_, r)| r)
                .find(|r| r["Product"] == key)
                .cloned()
                .unwrap()
        };
        assert_eq!(latest("P00007")["ProductName"], "Renamed 7");
        assert_eq!(latest("P00007")["_removed"], Value::Null);
        assert_eq!(latest("P00901")["Price"], 1.0);
        assert_eq!(
            latest("P00004"),
            json!({"Product": "P00004", "_removed": "deleted"})
        );
        assert_eq!(latest("P00010")["_removed"], "changed", "no longer active");

        // Nothing changed since: nothing read, from the link the last run was given.
        let third = ran(&run(&scratch, &flow));
        assert_eq!(third["records_written"], 0);
        let last = reads(&service.requests());
        let next_token = match version {
            "2" => json!("'4'"),
            _ => json!("4"),
        };
        assert_eq!(last.iter().map(token).collect::<Vec<_>>(), [next_token]);
    }
}

#[test]
fn a_cursor_field_reads_changes_by_it_even_where_the_service_tracks_them() {
    let (service, scratch) = connected_to(&["--version", "2", "--change-tracking"]);
    let flow = to_folder(json!({
        "fields": ["Product", "LastChangeDateTime"],
        "incremental": true,
        "cursor_field": "LastChangeDateTime"
    }));
    let first = ran(&run(&scratch, &flow));
    assert_eq!(first["records_written"], 230);
    let q = &reads(&service.requests())[0]["query"];
    assert!(
        q["$filter"]
            .as_str()
            .unwrap()
            .starts_with("LastChangeDateTime lt "),
        "{q}"
    );
    let dirs = Dirs::under(&scratch.home());
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let workspace = Workspace::new(dirs);
    let parsed = Flow::from_json(&flow.to_string(), "test").unwrap();
    let schema = planned_types(&parsed, "sap", &scratch, &workspace);
    assert!(!schema.contains_key("_removed"), "{schema:?}");
}

fn from_file(input: &std::path::Path, operation: &str) -> Value {
    from_file_with(input, operation, json!({}))
}

fn from_file_with(input: &std::path::Path, operation: &str, options: Value) -> Value {
    flow(
        vec![
            node(
                "changes",
                "source.file",
                json!({"path": input.to_str().unwrap(), "format": "jsonl"}),
            ),
            node(
                "sap",
                "destination.sap",
                json!({"connection": "s4", "entity": "A_Product", "operation": operation,
                       "options": options}),
            ),
        ],
        &[("changes", "sap")],
    )
}

/// Seven new products, three of which SAP refuses: no name, a negative price, one that
/// exists.
fn new_products(scratch: &Scratch) -> std::path::PathBuf {
    let mut lines = String::new();
    for (product, name, price) in [
        ("N001", "Nut 1", "1.25"),
        ("N002", "", "2.50"),
        ("N003", "Nut 3", "-3.00"),
        ("P00001", "Again 1", "1.00"),
        ("N005", "Nut 5", "5.00"),
        ("N006", "Nut 6", "6.00"),
        ("N007", "Nut 7", "7.00"),
    ] {
        lines += &json!({"Product": product, "ProductName": name, "Price": price.parse::<f64>().unwrap(),
                         "CreatedOn": "2026-11-30T08:00:00Z"})
        .to_string();
        lines.push('\n');
    }
    scratch.write("new.jsonl", &lines)
}

/// The run refused the three products `new_products` should be refused, each with its
/// words, and wrote the other four.
fn assert_three_refused(record: &Value) {
    assert_eq!(record["records_rejected"], 3);
    assert_eq!(record["outputs"][0]["records"], 4);
    let mut reasons: Vec<String> = refused(record)
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "API_PRD_MSG/002: Product P00001 already exists",
            "API_PRD_MSG/012: Enter a product name",
            "API_PRD_MSG/031: Price -3.00 is negative",
        ]
    );
    let refused_products: Vec<String> = refused(record)
        .iter()
        .map(|e| serde_json::from_str::<Value>(e["record"].as_str().unwrap()).unwrap())
        .map(|r| r["Product"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(refused_products.len(), 3);
    for p in ["N002", "N003", "P00001"] {
        assert!(
            refused_products.contains(&p.to_string()),
            "{refused_products:?}"
        );
    }
}

#[test]
fn inserts_one_a_request_carry_a_csrf_token_renewed_when_the_session_drops_it() {
    let (service, scratch) = connected("2");
    let input = new_products(&scratch);
    // A session's token lasts two changes here: the others renew it.
    service.control(json!({"csrf_uses": 2}));
    let flow = from_file_with(&input, "insert", json!({"batch_size": 1}));
    assert_three_refused(&ran(&run(&scratch, &flow)));

    let requests = service.requests();
    let fetches = requests
        .iter()
        .filter(|r| r["csrf"] == "fetch" && r["path"] == format!("{ROOT}/"))
        .count();
    let refusals = requests.iter().filter(|r| r["csrf"] == "refused").count();
    assert!(fetches >= 3 && refusals >= 2, "{requests:?}");
    let posts: Vec<&Value> = requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["csrf"] == "ok")
        .collect();
    assert_eq!(posts.len(), 7, "each record once with a valid token");
    // v2's JSON: decimals as text, instants as /Date(ms)/.
    assert_eq!(posts[0]["body"]["Price"], "1.25");
    assert_eq!(posts[0]["body"]["CreatedOn"], "/Date(1796025600000)/");
}

#[test]
fn changes_go_in_batches_each_record_in_a_change_set_of_its_own() {
    let (service, scratch) = connected("2");
    let input = new_products(&scratch);
    let flow = from_file_with(&input, "insert", json!({"batch_size": 3}));
    assert_three_refused(&ran(&run(&scratch, &flow)));
    let requests = service.requests();
    let batches: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == format!("{ROOT}/$batch"))
        .collect();
    let sets: Vec<u64> = batches
        .iter()
        .map(|b| b["changesets"].as_u64().unwrap())
        .collect();
    assert_eq!(sets, [3, 3, 1], "{batches:?}");
    assert!(batches.iter().all(|b| b["csrf"] == "ok"));
    let inside: Vec<&Value> = requests.iter().filter(|r| r["batch"] == true).collect();
    assert_eq!(inside.len(), 7);
    assert!(inside.iter().all(|r| r["method"] == "POST"));

    // Updates in a batch are v2's MERGE; an unknown key is refused alone.
    let changes = scratch.write(
        "changes.jsonl",
        "{\"Product\": \"N001\", \"ProductName\": \"Nut one\"}\n{\"Product\": \"X9\", \"ProductName\": \"?\"}\n",
    );
    let record = ran(&run(&scratch, &from_file(&changes, "update")));
    assert_eq!(record["records_rejected"], 1);
    assert_eq!(record["outputs"][0]["records"], 1);
    let merges: Vec<Value> = service
        .requests()
        .into_iter()
        .filter(|r| r["batch"] == true)
        .collect();
    assert_eq!(merges[0]["method"], "MERGE");
    assert_eq!(merges[0]["path"], format!("{ROOT}/A_Product('N001')"));
}

#[test]
fn mistakes_wrong_credentials_and_rate_limits_are_said_in_words() {
    let (service, scratch) = connected("2");
    let check = |flow: &Value| {
        let path = scratch.flow("check.json", flow);
        let out = tributary(&scratch)
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    let (code, text) = check(&to_folder(json!({"entity": "A_Prodct"})));
    assert_eq!(code, Some(2));
    assert!(
        text.contains("the service has no entity set `A_Prodct`"),
        "{text}"
    );
    let (_, text) = check(&to_folder(json!({"conditions": [
        {"field": "Note", "operator": "equal_to", "value": "x"}]})));
    assert!(text.contains("SAP OData cannot filter by `Note`"), "{text}");
    let (_, text) = check(&to_folder(json!({"conditions": [
        {"field": "Price", "operator": "greater_than", "value": "cheap"}]})));
    assert!(text.contains("`cheap` is not a number"), "{text}");

    // 429 and 503 are waited out.
    service.control(json!({"fail": [
        {"status": 429, "at": "A_Product?", "retry_after": 1},
        {"status": 503, "at": "A_Product?"}
    ]}));
    let record = ran(&run(&scratch, &to_folder(json!({"fields": ["Product"]}))));
    assert_eq!(record["records_written"], 230);

    // A wrong password, said with the connection's name.
    let wrong = Scratch::new();
    add_connection(
        &wrong,
        PASSPHRASE,
        "s4",
        "sap",
        "basic",
        &[
            format!("instance_url={}{ROOT}", service.url()),
            "username=COMM_USER".into(),
        ],
        "not-the-password",
    );
    let path = wrong.flow("flow.json", &to_folder(json!({})));
    let out = tributary(&wrong)
        .args(["run", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("401"), "{text}");
    assert!(
        !text.contains("not-the-password"),
        "no secret in messages: {text}"
    );
}

#[test]
fn client_credentials_sign_in_with_a_bearer_token() {
    let service = SupportServer::start("sap_server.py", &[]);
    let scratch = Scratch::new();
    add_connection(
        &scratch,
        PASSPHRASE,
        "s4",
        "sap",
        "oauth2_client_credentials",
        &[
            format!("instance_url={}{ROOT}", service.url()),
            "client_id=sap-client".into(),
            format!("token_url={}/oauth/token", service.url()),
        ],
        "sap-secret-3",
    );
    let login = tributary(&scratch)
        .args(["connection", "login", "s4"])
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", stderr(&login));
    let test = tributary(&scratch)
        .args(["connection", "test", "s4"])
        .output()
        .unwrap();
    assert!(
        stdout(&test).contains("OData v2, 2 entity sets"),
        "{}{}",
        stdout(&test),
        stderr(&test)
    );
    let record = ran(&run(&scratch, &to_folder(json!({"fields": ["Product"]}))));
    assert_eq!(record["records_written"], 230);
    let requests = service.requests();
    let reads = reads(&requests);
    assert!(reads.iter().all(|r| r["auth"] == "Bearer"), "{reads:?}");
}

#[test]
fn the_example_flow_runs_against_a_service_named_by_its_parameters() {
    let (service, scratch) = connected("2");
    let example = std::path::absolute("flows/sap-products-to-folder.json").unwrap();
    let out_dir = scratch.path().join("products");
    let run = || {
        tributary(&scratch)
            .args(["run", example.to_str().unwrap(), "--json"])
            .args(["--param", "connection=s4"])
            .args(["--param", &format!("output={}", out_dir.display())])
            .output()
            .unwrap()
    };
    let record = ran(&run());
    // Active products: every one but each third.
    let active = (1..=230).filter(|i| i % 3 != 0).count() as u64;
    assert_eq!(record["records_written"], active);
    assert_eq!(files_under(&out_dir).len(), 1);
    let q = &reads(&service.requests())[0]["query"];
    assert!(
        q["$filter"]
            .as_str()
            .unwrap()
            .starts_with("IsActive eq true and LastChangeDateTime lt "),
        "{q}"
    );
    // Nothing changed: the second run reads nothing new.
    assert_eq!(ran(&run())["records_written"], 0);
}

#[test]
fn each_page_after_the_first_asks_for_the_records_after_the_last_one_read() {
    let (service, scratch) = connected("2");
    let flow = to_folder(json!({
        "fields": ["Product", "LastChangeDateTime"],
        "incremental": true,
        "options": {"page_size": 100}
    }));
    let record = ran(&run(&scratch, &flow));
    assert_eq!(record["records_written"], 230);
    let (by_product, count) = written(&scratch);
    assert_eq!((by_product.len(), count), (230, 230));
    let reads = reads(&service.requests());
    assert_eq!(reads.len(), 3, "{reads:?}");
    assert!(reads.iter().all(|r| r["query"].get("$skip").is_none()));
    assert_eq!(reads[0]["query"]["$top"], "100");
    // The 100th record in (LastChangeDateTime, Product) order is P00100, at minute 20.
    let second = reads[1]["query"]["$filter"].as_str().unwrap();
    let at = "datetimeoffset'2026-11-01T00:20:00.000Z'";
    assert!(
        second.ends_with(&format!(
            " and (LastChangeDateTime gt {at} or (LastChangeDateTime eq {at} and Product gt 'P00100'))"
        )),
        "{second}"
    );
}
