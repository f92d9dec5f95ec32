//! The local catalog: `_tributary_table.json` and the DuckDB view beside a folder's data,
//! read back by DuckDB itself (the Python package), kept right across runs, kills and
//! damage, and shown by `tributary catalog show`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// Runs SQL in DuckDB after reading the view file; the rows as JSON arrays.
fn duckdb(view: &Path, query: &str) -> Vec<Value> {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
print(json.dumps(con.sql(sys.argv[2]).fetchall(), default=str))
"#;
    let out = Command::new(&python)
        .args(["-c", script, view.to_str().unwrap(), query])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "DuckDB (the Python package; scripts/test.sh installs it) failed: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sales_csv(scratch: &Scratch, days: &[(&str, u32)]) {
    let mut csv = String::from("id,day,amount\n");
    let mut id = 0;
    for (day, n) in days {
        for i in 0..*n {
            id += 1;
            csv += &format!("{id},{day},{i}.25\n");
        }
    }
    scratch.write("sales.csv", &csv);
}

fn sales_flow(format: &str, extra: Value) -> Value {
    let mut config = json!({"folder": "lake", "format": format, "partition_by": ["day"],
                            "catalog": {"table": "sales"}});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let mut f = flow(
        vec![
            node("src", "source.file", json!({"path": "sales.csv"})),
            node("lake", "destination.local", config),
        ],
        &[("src", "lake")],
    );
    f["name"] = json!("Daily sales");
    f
}

fn run_ok(scratch: &Scratch, flow: &Value) -> Value {
    let path = scratch.flow("flow.json", flow);
    ran(&scratch.cli(&["run", path.to_str().unwrap(), "--json"]))
}

/// Records per partition as the table file counts them.
fn counted(scratch: &Scratch) -> BTreeMap<String, u64> {
    let table: Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("lake/_tributary_table.json")).unwrap(),
    )
    .unwrap();
    (table["partitions"].as_array().unwrap().iter())
        .map(|p| {
            (
                p["values"]["day"].as_str().unwrap_or("(none)").to_string(),
                p["records"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Records per partition as DuckDB reads them through the view.
fn queried(scratch: &Scratch) -> BTreeMap<String, u64> {
    let rows = duckdb(
        &scratch.path().join("lake/sales.sql"),
        "SELECT coalesce(day::VARCHAR, '(none)'), count(*) FROM sales GROUP BY 1",
    );
    (rows.iter())
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
        .collect()
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Two runs, each with a partition of its own and one they share, in every format the
/// destination writes: DuckDB reads the records of every run through the view, with the
/// partition field typed and the counts the table file gives.
#[test]
fn duckdb_reads_the_view_with_the_counts_per_partition() {
    for format in ["parquet", "csv", "jsonl", "json"] {
        let scratch = Scratch::new();
        let f = sales_flow(format, json!({}));
        sales_csv(&scratch, &[("2026-11-01", 3), ("2026-11-02", 4)]);
        let record = run_ok(&scratch, &f);
        assert_eq!(record["registered"][0]["catalog"], "duckdb");
        assert_eq!(
            record["registered"][0]["changes"],
            json!([
                "created the table",
                "added 2 partitions: day=2026-11-01, day=2026-11-02"
            ]),
            "{format}"
        );
        sales_csv(&scratch, &[("2026-11-02", 5), ("", 2), ("2026-11-03", 1)]);
        let record = run_ok(&scratch, &f);
        assert_eq!(
            record["registered"][0]["changes"],
            json!(["added 2 partitions: day=__HIVE_DEFAULT_PARTITION__, day=2026-11-03"]),
            "{format}"
        );
        let expected = expect(&[
            ("2026-11-01", 3),
            ("2026-11-02", 9),
            ("2026-11-03", 1),
            ("(none)", 2),
        ]);
        assert_eq!(counted(&scratch), expected, "{format}");
        assert_eq!(queried(&scratch), expected, "{format}");
        // The partition field keeps its type, the other fields theirs.
        let types = duckdb(
            &scratch.path().join("lake/sales.sql"),
            "SELECT column_name, column_type FROM (DESCRIBE sales) ORDER BY column_name",
        );
        assert_eq!(
            types,
            [
                json!(["amount", "DOUBLE"]),
                json!(["day", "DATE"]),
                json!(["id", "BIGINT"])
            ],
            "{format}"
        );
        let sum = duckdb(
            &scratch.path().join("lake/sales.sql"),
            "SELECT sum(amount) FROM sales WHERE day = DATE '2026-11-02'",
        );
        // 0.25 + 1.25 + 2.25 + 3.25 and 0.25 … 4.25.
        assert_eq!(sum, [json!([18.25])], "{format}");
    }
}

/// `replace_partitions`: a day written again stands for the day, in the files and in the
/// table file's counts.
#[test]
fn a_replaced_partition_is_counted_once() {
    let scratch = Scratch::new();
    let f = sales_flow("parquet", json!({"replace_partitions": true}));
    sales_csv(&scratch, &[("2026-11-01", 3), ("2026-11-02", 4)]);
    run_ok(&scratch, &f);
    sales_csv(&scratch, &[("2026-11-02", 6)]);
    run_ok(&scratch, &f);
    let expected = expect(&[("2026-11-01", 3), ("2026-11-02", 6)]);
    assert_eq!(counted(&scratch), expected);
    assert_eq!(queried(&scratch), expected);
}

/// A run killed after its files are in place and before the table file is: the next run
/// finishes the commit, registers both runs' partitions, and counts nothing twice.
#[test]
fn a_run_killed_before_its_files_are_registered_is_registered_by_the_next() {
    let scratch = Scratch::new();
    let f = sales_flow("parquet", json!({}));
    let path = scratch.flow("flow.json", &f);
    sales_csv(&scratch, &[("2026-11-01", 3)]);
    run_ok(&scratch, &f);
    sales_csv(&scratch, &[("2026-11-01", 2), ("2026-11-02", 4)]);
    // Renames: the two files into place, then the table file (killed there).
    let status = run_killed_at_rename(&scratch, &path, 3);
    assert!(!status.success());
    assert_eq!(
        counted(&scratch),
        expect(&[("2026-11-01", 3)]),
        "the table file is the first run's"
    );
    sales_csv(&scratch, &[("2026-11-03", 1)]);
    let record = run_ok(&scratch, &f);
    assert_eq!(
        record["registered"][0]["changes"],
        json!(["added 1 partition: day=2026-11-03"])
    );
    let expected = expect(&[("2026-11-01", 5), ("2026-11-02", 4), ("2026-11-03", 1)]);
    assert_eq!(counted(&scratch), expected);
    assert_eq!(queried(&scratch), expected);
    assert!(
        !files_under(&scratch.path().join("lake"))
            .iter()
            .any(|f| f.contains(".tmp")),
        "no temporary file is left"
    );
}

/// A new field: the view reads older files (without it) and newer ones together, and the
/// run record says what changed.
#[test]
fn a_new_field_is_listed_and_older_files_still_read() {
    let scratch = Scratch::new();
    let f = sales_flow("parquet", json!({}));
    sales_csv(&scratch, &[("2026-11-01", 3)]);
    run_ok(&scratch, &f);
    scratch.write(
        "sales.csv",
        "id,day,amount,region\n10,2026-11-02,1.5,north\n",
    );
    let record = run_ok(&scratch, &f);
    assert_eq!(
        record["registered"][0]["changes"],
        json!([
            "added the columns region VARCHAR",
            "added 1 partition: day=2026-11-02"
        ])
    );
    let rows = duckdb(
        &scratch.path().join("lake/sales.sql"),
        "SELECT count(*), count(region) FROM sales",
    );
    assert_eq!(rows, [json!([4, 1])]);
}

/// `catalog show` prints the table, its partitions and the view; a folder without a
/// catalog, and a damaged table file, are said with what to do.
#[test]
fn catalog_show_prints_the_table_and_says_what_is_wrong() {
    let scratch = Scratch::new();
    let f = sales_flow("parquet", json!({}));
    sales_csv(&scratch, &[("2026-11-01", 3), ("2026-11-02", 4)]);
    run_ok(&scratch, &f);
    let lake = scratch.path().join("lake");
    let out = scratch.cli(&["catalog", "show", lake.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "Table sales (parquet)",
        "written by the flow \"Daily sales\" (node `lake`)",
        "  id      BIGINT",
        "  day     DATE  (from the folder names)",
        "2 partitions, 7 records",
        "day=2026-11-02     1 file            4 records",
        "CREATE OR REPLACE VIEW \"sales\" AS",
        "hive_types = {'day': 'DATE'}",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let json_out = scratch.cli(&["catalog", "show", lake.to_str().unwrap(), "--json"]);
    let table: Value = serde_json::from_str(&stdout(&json_out)).unwrap();
    assert_eq!(table["view"], "sales.sql");

    let out = scratch.cli(&["catalog", "show", scratch.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has no catalog"), "{}", stderr(&out));

    std::fs::write(lake.join("_tributary_table.json"), "{\n  \"table\": 1,\n").unwrap();
    let out = scratch.cli(&["catalog", "show", lake.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("_tributary_table.json is damaged at line"),
        "{}",
        stderr(&out)
    );
    // A run meets the damage after its files are in place: it fails naming the file, and
    // its files stay (the commit is finished by the next run once the file is fixed).
    let path = scratch.flow("flow.json", &f);
    let out = scratch.cli(&["run", path.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let record: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is damaged at line 2"),
        "{record}"
    );
    std::fs::remove_file(lake.join("_tributary_table.json")).unwrap();
    let record = run_ok(&scratch, &f);
    assert_eq!(record["status"], "Successful");
    assert_eq!(
        counted(&scratch),
        expect(&[("2026-11-01", 6), ("2026-11-02", 8)]),
        "the interrupted run's files and this run's"
    );
}

/// The table name is checked with the flow: it names a file beside the data.
#[test]
fn a_table_name_that_cannot_name_a_file_is_refused() {
    let scratch = Scratch::new();
    let f = sales_flow("parquet", json!({"catalog": {"table": "../sales"}}));
    sales_csv(&scratch, &[("2026-11-01", 1)]);
    let path = scratch.flow("flow.json", &f);
    let out = scratch.cli(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let said = said(&out);
    assert!(said.contains("/catalog/table"), "{said}");
    assert!(said.contains("cannot name a file"), "{said}");
}
