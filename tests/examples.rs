//! The example flows in `flows/` run offline, and what their run records say matches the
//! files they wrote. Their files load and save byte for byte.

mod common;

use std::path::Path;

use common::*;
use tributary::flow::Flow;

fn examples() -> Vec<std::path::PathBuf> {
    let mut flows: Vec<_> = std::fs::read_dir("flows")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    flows.sort();
    assert!(flows.len() >= 3, "the three example flows are there");
    flows
}

#[test]
fn every_example_runs_and_its_record_matches_its_files() {
    for flow in examples() {
        if flow
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("bench-")
        {
            continue; // benchmark flows need a generated input: tested below
        }
        let text = std::fs::read_to_string(&flow).unwrap();
        if text.contains("salesforce\"") {
            continue; // needs an org: tests/salesforce.rs runs it against a local one
        }
        if text.contains("\"source.servicenow\"") {
            continue; // needs an instance: tests/servicenow.rs runs it against a local one
        }
        if text.contains("\"source.google_analytics\"") {
            continue; // needs a property: tests/google_analytics.rs runs it against a local one
        }
        if text.contains("\"source.google_ads\"") || text.contains("\"source.meta_ads\"") {
            continue; // needs an account: tests/google_ads.rs and tests/meta_ads.rs run them
        }
        if text.contains("\"source.sap\"") {
            continue; // needs a service: tests/sap.rs runs it against a local one
        }
        if text.contains("\"source.zendesk\"") || text.contains("\"source.slack\"") {
            continue; // needs the service: tests/manifests.rs runs them against local ones
        }
        if text.contains("\"destination.postgres\"") {
            continue; // needs a database: tests/postgres.rs runs it against a local server
        }
        if text.contains("\"destination.s3\"") {
            continue; // needs a bucket: tests/s3.rs runs it against an S3 server
        }
        let scratch = Scratch::new();
        let out_dir = scratch.path().join("out");
        let out_param = format!("output={}", out_dir.display());
        let o = scratch.cli(&[
            "run",
            flow.to_str().unwrap(),
            "--json",
            "--param",
            &out_param,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}\n{}",
            flow.display(),
            stderr(&o),
            stdout(&o)
        );
        let record: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(record["status"], "Successful");
        let outputs = record["outputs"].as_array().unwrap();
        assert!(!outputs.is_empty(), "{} wrote nothing", flow.display());
        let mut total = 0;
        for o in outputs {
            let path = Path::new(o["location"].as_str().unwrap());
            assert!(
                path.starts_with(&out_dir),
                "{} is outside the output folder",
                path.display()
            );
            let n = count_records(path);
            assert_eq!(n, o["records"].as_u64().unwrap(), "{}", path.display());
            assert_eq!(
                std::fs::metadata(path).unwrap().len(),
                o["bytes"].as_u64().unwrap()
            );
            total += n;
        }
        assert_eq!(total, record["records_written"].as_u64().unwrap());
        let processed = record["records_processed"].as_u64().unwrap();
        let dropped = record["records_dropped"].as_u64().unwrap();
        let rejected = record["records_rejected"].as_u64().unwrap();
        assert_eq!(
            processed,
            total + dropped + rejected,
            "{}: every record is accounted for",
            flow.display()
        );
        assert!(
            !files_under(&out_dir)
                .iter()
                .any(|f| f.contains(".tributary-staging")),
            "staging is cleaned up"
        );
        // The run record is kept in the home folder too.
        let id = record["execution_id"].as_str().unwrap();
        assert!(
            scratch
                .home()
                .join("data/runs")
                .join(id)
                .join("run.json")
                .is_file()
        );
    }
}

#[test]
fn every_flow_file_loads_and_saves_byte_for_byte() {
    for flow in examples() {
        let text = std::fs::read_to_string(&flow).unwrap();
        let loaded = Flow::from_json(&text, &flow.display().to_string()).unwrap();
        assert_eq!(
            loaded.to_json(),
            text,
            "{} changes when saved",
            flow.display()
        );
    }
}

#[test]
fn the_checked_in_schema_is_current() {
    let checked_in = std::fs::read_to_string("assets/flow.schema.json").unwrap();
    assert!(
        checked_in == tributary::schema::flow_schema_text(),
        "assets/flow.schema.json is stale: run `cargo run -- schema > assets/flow.schema.json`"
    );
}

#[test]
fn the_checked_in_connector_schema_is_current() {
    let checked_in = std::fs::read_to_string("assets/connector.schema.json").unwrap();
    assert!(
        checked_in == tributary::connectors::framework::manifest::json_schema_text(),
        "assets/connector.schema.json is stale: run `cargo run -- schema --connector > assets/connector.schema.json`"
    );
}

#[test]
fn the_demo_lake_is_partitioned_by_day_and_masked() {
    let scratch = Scratch::new();
    let out_dir = scratch.path().join("lake");
    let out_param = format!("output={}", out_dir.display());
    let o = scratch.cli(&[
        "run",
        "flows/demo-opportunities-to-lake.json",
        "--json",
        "--param",
        &out_param,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut files = files_under(&out_dir);
    // The catalog beside the data: a DuckDB view over it and the table file.
    for beside in ["_tributary_table.json", "opportunities.sql"] {
        let at = files.iter().position(|f| f == beside);
        files.remove(at.unwrap_or_else(|| panic!("{beside} in {files:?}")));
    }
    assert_eq!(files.len(), 1);
    let today = chrono::Utc::now().format("%Y/%m/%d").to_string();
    assert!(
        files[0].starts_with(&today),
        "{} is not in a folder for {today}",
        files[0]
    );
    let file = std::fs::File::open(out_dir.join(&files[0])).unwrap();
    let batches: Vec<_> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let batch = &batches[0];
    let cards = batch
        .column_by_name("CreditCard")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    assert!(
        cards
            .iter()
            .all(|c| c.unwrap().starts_with("************") && c.unwrap().len() == 16)
    );
    let emails = batch.column_by_name("Email").unwrap();
    assert_eq!(arrow::array::Array::null_count(emails.as_ref()), 0);
    assert!(batch.column_by_name("ContactName").is_some());
}

#[test]
fn the_benchmark_flow_does_the_reference_job() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Float64Type;

    let scratch = Scratch::new();
    let mut generate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("benches/compare/generate.json").unwrap())
            .unwrap();
    generate["nodes"][0]["config"]["records"] = serde_json::json!(3000);
    let generate = scratch.flow("generate.json", &generate);
    let input_dir = scratch.path().join("input");
    let o = scratch.cli(&[
        "run",
        generate.to_str().unwrap(),
        "--param",
        &format!("output={}", input_dir.display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let input = std::fs::read_dir(&input_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    // What the job must produce, worked out record by record.
    let mut expected_by_stage = std::collections::BTreeMap::<String, u64>::new();
    let mut expected_revenue = 0.0;
    for line in std::fs::read_to_string(&input).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let stage = r["StageName"].as_str().unwrap();
        let amount = r["Amount"].as_f64();
        if r["Email"].is_null() || stage == "Closed Lost" || amount.is_none_or(|a| a <= 1000.0) {
            continue;
        }
        *expected_by_stage.entry(stage.to_string()).or_default() += 1;
        expected_revenue += amount.unwrap() * r["Probability"].as_f64().unwrap() / 100.0;
    }
    assert!(expected_by_stage.len() >= 5, "{expected_by_stage:?}");

    let output = scratch.path().join("lake");
    let o = scratch.cli(&[
        "run",
        "flows/bench-opportunities.json",
        "--param",
        &format!("input={}", input.display()),
        "--param",
        &format!("output={}", output.display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut by_stage = std::collections::BTreeMap::<String, u64>::new();
    let mut revenue = 0.0;
    for file in files_under(&output) {
        let path = output.join(&file);
        let stage = file
            .split('/')
            .next()
            .unwrap()
            .trim_start_matches("StageName=");
        let stage = stage.replace("%2F", "/");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            assert!(
                batch.column_by_name("StageName").is_none(),
                "Hive leaves it out"
            );
            assert_eq!(batch.num_columns(), 14);
            *by_stage.entry(stage.clone()).or_default() += batch.num_rows() as u64;
            let r = batch.column_by_name("ExpectedRevenue").unwrap();
            revenue += r
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .sum::<f64>();
            let cards = batch
                .column_by_name("CreditCard")
                .unwrap()
                .as_string::<i32>();
            assert!(
                cards
                    .iter()
                    .flatten()
                    .all(|c| c.starts_with("************"))
            );
            let text = batch
                .column_by_name("Description")
                .unwrap()
                .as_string::<i32>();
            assert!(text.iter().flatten().all(|d| d.chars().count() <= 64));
            assert_eq!(cards.null_count(), 0);
        }
    }
    assert_eq!(by_stage, expected_by_stage);
    assert!((revenue - expected_revenue).abs() < 1e-6 * expected_revenue);
}
