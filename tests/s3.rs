//! The S3 source and destination against a real S3-compatible server on loopback (moto's
//! server, started by these tests; a second one checks signatures for the tests about
//! credentials). Runs go through the `tributary` binary, as a user would run them; the
//! bucket is then inspected with the SDK.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use arrow::array::RecordBatchReader;
use aws_sdk_s3::primitives::ByteStream;
use common::s3::*;
use common::*;
use serde_json::{Value, json};

/// The ids in the files a run record says were written, sorted.
fn ids_written(record: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = record["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| ids_in(&std::fs::read_to_string(o["location"].as_str().unwrap()).unwrap()))
        .collect();
    ids.sort();
    ids
}

fn run(scratch: &Scratch, flow: &Value) -> (Option<i32>, Value, String) {
    let s = server();
    let o = run_with_keys(scratch, flow, s, &s.key_id, &s.secret);
    let record = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    (o.status.code(), record, stderr(&o))
}

fn run_with_keys(
    scratch: &Scratch,
    flow: &Value,
    server: &Server,
    key_id: &str,
    secret: &str,
) -> Output {
    let path = scratch.flow("flow.json", flow);
    tributary(scratch, server, key_id, secret)
        .args(["run", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap()
}

fn demo_to_s3(records: u64, destination: Value) -> Value {
    flow(
        vec![
            node(
                "crm",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": records}),
            ),
            node("lake", "destination.s3", destination),
        ],
        &[("crm", "lake")],
    )
}

#[test]
fn a_large_object_goes_up_in_parts_with_memory_bounded() {
    let b = bucket("multipart");
    let scratch = Scratch::new();
    let f = demo_to_s3(
        500_000,
        json!({"bucket": b, "prefix": "crm/opps", "format": "jsonl"}),
    );
    let path = scratch.flow("flow.json", &f);
    let s = server();
    let child = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", path.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, peak_rss_kib, out) = wait_with_peak_rss(child);
    assert_eq!(status, 0, "{out}");
    let record: Value = serde_json::from_str(&out).unwrap();

    let listed = keys(&b);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (key, size) = listed.iter().next().unwrap();
    let execution = record["execution_id"].as_str().unwrap();
    assert_eq!(key, &format!("crm/opps/part-{execution}-00000.jsonl"));
    assert!(*size > 250 << 20, "{size} bytes");

    let head = block_on(client().head_object().bucket(&b).key(key).send()).unwrap();
    // A multipart object's ETag ends in its number of parts.
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    let parts: u32 = etag.rsplit_once('-').unwrap().1.parse().unwrap();
    assert!(parts >= 10, "{etag}");
    assert_eq!(head.content_type(), Some("application/x-ndjson"));
    let metadata = head.metadata().unwrap();
    assert_eq!(metadata["execution-id"], execution);
    assert_eq!(metadata["flow"], "test flow");

    let body = get(&b, key);
    assert_eq!(body.iter().filter(|&&c| c == b'\n').count(), 500_000);
    assert_eq!(record["outputs"][0]["records"], 500_000);
    assert_eq!(
        record["outputs"][0]["location"],
        format!("s3://{b}/{key}").as_str()
    );
    // The object never sits in memory: parts of 8 MiB, four at most in flight. The whole
    // run peaks at about 100 MiB whether the object is 50 MB or 300 MB.
    let peak_mib = peak_rss_kib / 1024;
    assert!(peak_mib < 160, "peak {peak_mib} MiB for {size} bytes");
    assert_eq!(open_uploads(&b), 0);
}

#[test]
fn a_failed_run_leaves_neither_object_nor_parts() {
    let b = bucket("aborted");
    let scratch = Scratch::new();
    // 40 MB of good records, then one that is not JSON: the run stops after parts have
    // gone up.
    let mut text = String::new();
    let filler = "x".repeat(400);
    for i in 0..100_000 {
        text += &format!("{{\"id\": {i}, \"note\": \"{filler}\"}}\n");
    }
    text += "{not json\n";
    scratch.write("in.jsonl", &text);
    let f = flow(
        vec![
            node(
                "src",
                "source.file",
                json!({"path": "in.jsonl", "fail_on_first_error": true}),
            ),
            node(
                "lake",
                "destination.s3",
                json!({"bucket": b, "format": "csv"}),
            ),
        ],
        &[("src", "lake")],
    );
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(1), "{record} {err}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 100001"), "{message}");
    assert!(keys(&b).is_empty(), "{:?}", keys(&b));
    assert_eq!(open_uploads(&b), 0);
}

#[test]
fn more_than_a_thousand_objects_are_listed_and_read() {
    let b = bucket("many-objects");
    let c = client();
    block_on(async {
        let mut puts = tokio::task::JoinSet::new();
        for i in 0..1205 {
            let c = c.clone();
            let b = b.clone();
            puts.spawn(async move {
                let body = format!("id,name\n{i},item {i}\n");
                c.put_object()
                    .bucket(b)
                    .key(format!("exports/orders-{i:05}.csv"))
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .unwrap();
            });
            if puts.len() >= 16 {
                puts.join_next().await.unwrap().unwrap();
            }
        }
        puts.join_all().await;
        // Not CSV, and outside the prefix: both left alone.
        c.put_object()
            .bucket(&b)
            .key("exports/README.txt")
            .body(ByteStream::from_static(b"not data"))
            .send()
            .await
            .unwrap();
        c.put_object()
            .bucket(&b)
            .key("other/orders.csv")
            .body(ByteStream::from_static(b"id,name\n9999,elsewhere\n"))
            .send()
            .await
            .unwrap();
    });
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "s3",
                "source.s3",
                json!({"bucket": b, "prefix": "exports/"}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("s3", "out")],
    );
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record} {err}");
    let files = files_under(&scratch.path().join("out"));
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(scratch.path().join("out").join(&files[0])).unwrap();
    let ids = ids_in(&text);
    assert_eq!(
        ids,
        (0..1205).collect::<Vec<i64>>(),
        "in key order, each once"
    );
}

#[test]
fn only_objects_modified_after_the_given_instant_are_read() {
    let b = bucket("modified-after");
    let c = client();
    let put = |key: &str, body: &str| {
        block_on(
            c.put_object()
                .bucket(&b)
                .key(key)
                .body(ByteStream::from(body.as_bytes().to_vec()))
                .send(),
        )
        .unwrap();
    };
    put("in/old.jsonl", "{\"id\": 1}\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    put("in/new.jsonl", "{\"id\": 2}\n");
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "s3",
                "source.s3",
                json!({"bucket": b, "prefix": "in", "modified_after": between}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[("s3", "out")],
    );
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record} {err}");
    assert_eq!(record["records_written"], 1, "{record}");
    let files = files_under(&scratch.path().join("out"));
    let text = std::fs::read_to_string(scratch.path().join("out").join(&files[0])).unwrap();
    assert_eq!(text.trim(), "{\"id\":2}");
}

#[test]
fn encryption_settings_reach_the_server() {
    let b = bucket("encrypted");
    let scratch = Scratch::new();
    let f = flow(
        vec![
            node(
                "crm",
                "source.demo_crm",
                json!({"object": "Opportunity", "records": 50}),
            ),
            node(
                "aes",
                "destination.s3",
                json!({"bucket": b, "prefix": "aes", "format": "csv", "encryption": "sse_s3"}),
            ),
            node(
                "kms",
                "destination.s3",
                json!({"bucket": b, "prefix": "kms", "format": "csv", "encryption": "sse_kms", "kms_key_id": "alias/tributary-lake"}),
            ),
        ],
        &[("crm", "aes"), ("crm", "kms")],
    );
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record} {err}");
    let listed = keys(&b);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for key in listed.keys() {
        let head = block_on(client().head_object().bucket(&b).key(key).send()).unwrap();
        let sse = head
            .server_side_encryption()
            .map(|s| s.as_str().to_string());
        if key.starts_with("aes/") {
            assert_eq!(sse.as_deref(), Some("AES256"), "{key}");
        } else {
            assert_eq!(sse.as_deref(), Some("aws:kms"), "{key}");
            assert_eq!(head.ssekms_key_id(), Some("alias/tributary-lake"), "{key}");
        }
        assert_eq!(head.content_type(), Some("text/csv"));
    }
}

#[test]
fn wrong_keys_and_a_missing_bucket_are_said_in_words() {
    let b = signed_bucket("credentials");
    let s = signing_server();
    let scratch = Scratch::new();
    let f = demo_to_s3(10, json!({"bucket": b, "format": "csv"}));

    // The run's error, as the run record on standard output has it.
    let failure = |o: &Output| {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
        let record: Value = serde_json::from_str(&stdout(o)).unwrap();
        assert!(!stdout(o).contains(&s.secret) && !stderr(o).contains(&s.secret));
        record["error"]["message"].as_str().unwrap().to_string()
    };

    let err = failure(&run_with_keys(
        &scratch,
        &f,
        s,
        &s.key_id,
        "not-the-secret-key",
    ));
    assert!(err.contains("secret access key does not match"), "{err}");
    assert!(err.contains(&format!("`{b}`")), "{err}");

    let err = failure(&run_with_keys(
        &scratch,
        &f,
        s,
        "AKIANOSUCHKEY0000000",
        &s.secret,
    ));
    assert!(err.contains("access key id is not known"), "{err}");

    let f = demo_to_s3(
        10,
        json!({"bucket": "no-such-bucket-here", "format": "csv"}),
    );
    let err = failure(&run_with_keys(&scratch, &f, s, &s.key_id, &s.secret));
    assert!(
        err.contains("the bucket `no-such-bucket-here` does not exist"),
        "{err}"
    );
    let listed = block_on(client_of(s).list_objects_v2().bucket(&b).send()).unwrap();
    assert_eq!(listed.key_count(), Some(0));
}

#[test]
fn partitioned_parquet_reads_back_with_the_same_records_and_types() {
    let b = bucket("parquet-lake");
    let scratch = Scratch::new();
    let settings = |dest: Value| demo_to_s3(3000, dest);
    let f = settings(json!({
        "bucket": b, "prefix": "lake/opportunities", "format": "parquet",
        "time_prefix": "day", "execution_id_folder": true, "partition_by": ["StageName"],
    }));
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record} {err}");
    let execution = record["execution_id"].as_str().unwrap();
    let day = chrono::DateTime::parse_from_rfc3339(record["started_at"].as_str().unwrap())
        .unwrap()
        .format("%Y/%m/%d")
        .to_string();

    // The same flow into a local folder, to compare with.
    let local =
        settings(json!({"folder": "local", "format": "parquet", "partition_by": ["StageName"]}));
    let mut local = local;
    local["nodes"][1]["type"] = json!("destination.local");
    let (code, _, err) = run(&scratch, &local);
    assert_eq!(code, Some(0), "{err}");
    let local_dir = scratch.path().join("local");
    let local_files = files_under(&local_dir);

    let listed = keys(&b);
    assert_eq!(listed.len(), local_files.len(), "{listed:?}");
    let mut total = 0;
    for key in listed.keys() {
        let rest = key
            .strip_prefix(&format!("lake/opportunities/{day}/{execution}/StageName="))
            .unwrap_or_else(|| panic!("{key}"));
        let (stage, file) = rest.split_once('/').unwrap();
        assert_eq!(
            file,
            format!(
                "part-{execution}-{}.parquet",
                &file[file.len() - 13..file.len() - 8]
            )
        );
        let remote = parquet_rows(get(&b, key));
        let local_file = local_files
            .iter()
            .find(|f| f.starts_with(&format!("StageName={stage}/")))
            .unwrap_or_else(|| panic!("no local partition for {stage}"));
        let local = parquet_rows(std::fs::read(local_dir.join(local_file)).unwrap());
        assert_eq!(remote.0, local.0, "types of {key}");
        assert_eq!(remote.1, local.1, "records of {key}");
        total += remote.1.len();
    }
    assert_eq!(total, 3000);
    assert_eq!(record["outputs"].as_array().unwrap().len(), listed.len());
}

/// The schema (as text) and the rows (as JSON) of a Parquet file.
fn parquet_rows(bytes: Vec<u8>) -> (String, Vec<Value>) {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .unwrap()
    .build()
    .unwrap();
    let schema = format!("{:?}", reader.schema().fields());
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&writer.into_inner()).unwrap_or_default();
    (schema, rows)
}

#[test]
fn all_strings_and_an_object_per_batch() {
    let b = bucket("text-batches");
    let scratch = Scratch::new();
    let f = demo_to_s3(
        20_000,
        json!({"bucket": b, "format": "parquet", "all_strings": true, "aggregation": "per_batch", "schema_version_folder": true}),
    );
    let (code, record, err) = run(&scratch, &f);
    assert_eq!(code, Some(0), "{record} {err}");
    let listed = keys(&b);
    assert!(listed.len() >= 2, "{listed:?}");
    let folder = listed
        .keys()
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(folder.starts_with("schema-"), "{folder}");
    let mut total = 0;
    for key in listed.keys() {
        assert!(key.starts_with(&format!("{folder}/")), "{key}");
        let (schema, rows) = parquet_rows(get(&b, key));
        assert!(
            !schema.contains("Float64") && !schema.contains("Timestamp"),
            "{schema}"
        );
        assert!(rows[0]["Amount"].is_string() || rows[0]["Amount"].is_null());
        total += rows.len();
    }
    assert_eq!(total, 20_000);
}

#[test]
fn the_s3_example_flow_runs_against_the_server() {
    let b = bucket("example-lake");
    let scratch = Scratch::new();
    let s = server();
    let flow = concat!(env!("CARGO_MANIFEST_DIR"), "/flows/demo-crm-to-s3.json");
    let o = tributary(&scratch, s, &s.key_id, &s.secret)
        .env_remove("AWS_ENDPOINT_URL")
        .args(["run", flow, "--json"])
        .args(["--param", &format!("bucket={b}")])
        .args(["--param", &format!("endpoint={}", s.endpoint)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let execution = record["execution_id"].as_str().unwrap();
    let listed = keys(&b);
    assert!(!listed.is_empty());
    for key in listed.keys() {
        // prefix / year / month / day / StageName=… / part-….parquet
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[0..2], ["crm", "opportunities"], "{key}");
        assert_eq!(parts[2].len(), 4, "{key}");
        assert!(parts[5].starts_with("StageName="), "{key}");
        assert!(parts[6].starts_with(&format!("part-{execution}-")), "{key}");
        assert!(parts[6].ends_with(".parquet"), "{key}");
        let (_, rows) = parquet_rows(get(&b, key));
        for row in rows {
            let card = row["CreditCard"].as_str().unwrap();
            assert!(card.starts_with("************"), "{card}");
        }
    }
}

#[test]
fn an_incremental_source_reads_each_object_once_and_only_after_a_committed_run() {
    let b = bucket("incremental");
    let c = client();
    let put = |key: &str, id: u32| {
        block_on(
            c.put_object()
                .bucket(&b)
                .key(key)
                .body(ByteStream::from(format!("{{\"id\": {id}}}\n").into_bytes()))
                .send(),
        )
        .unwrap();
    };
    let scratch = Scratch::new();
    let to = |folder: &str| {
        flow(
            vec![
                node(
                    "s3",
                    "source.s3",
                    json!({"bucket": b, "prefix": "in", "format": "jsonl", "incremental": true}),
                ),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": folder, "format": "jsonl"}),
                ),
            ],
            &[("s3", "out")],
        )
    };
    let run_into = |folder: &str, extra: &[&str]| {
        let path = scratch.flow("flow.json", &to(folder));
        let s = server();
        let o = tributary(&scratch, s, &s.key_id, &s.secret)
            .args(["run", path.to_str().unwrap(), "--json"])
            .args(extra)
            .output()
            .unwrap();
        let record: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
        (o.status.code(), record, stderr(&o))
    };

    put("in/a.jsonl", 1);
    put("in/b.jsonl", 2);
    let (code, record, err) = run_into("out", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ids_written(&record), [1, 2]);
    assert_eq!(record["windows"][0]["node"], "s3");
    assert!(record["windows"][0]["from"].is_null());
    let keys_at_mark = record["windows"][0]["to"]["ids"].as_array().unwrap().len();
    assert!(keys_at_mark >= 1, "{record}");

    // Nothing new: nothing read, the watermark stays.
    let (code, record, err) = run_into("out", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_processed"], 0);
    assert_eq!(record["windows"][0]["to"], Value::Null);

    // Maybe in the same second as the last object read (the unit tests of the window cover
    // that boundary for certain): read now, and only it.
    put("in/c.jsonl", 3);
    // A run whose destination cannot commit (the folder is a file) moves nothing on.
    scratch.write("blocked", "a file where the folder should be");
    let (code, record, _) = run_into("blocked", &[]);
    assert_eq!(code, Some(1), "{record}");
    let (code, record, err) = run_into("out", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ids_written(&record), [3]);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    put("in/d.jsonl", 4);
    put("in/a.jsonl", 10); // changed: read again
    let (code, record, err) = run_into("out", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ids_written(&record), [4, 10]);

    // The state commands, and --full.
    let path = scratch.path().join("flow.json");
    let s = server();
    let shown = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["state", "show", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stdout(&shown).starts_with("s3: {"), "{}", stdout(&shown));
    let (code, record, err) = run_into("out", &["--full"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ids_written(&record), [2, 3, 4, 10]);
    let reset = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["state", "reset", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stdout(&reset).contains("1 watermark forgotten"),
        "{}",
        stdout(&reset)
    );
    let (code, record, err) = run_into("out", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ids_written(&record), [2, 3, 4, 10]);
}

#[test]
fn a_run_killed_mid_upload_leaves_no_object() {
    let b = bucket("killed");
    let scratch = Scratch::new();
    let f = demo_to_s3(2_000_000, json!({"bucket": b, "format": "jsonl"}));
    let path = scratch.flow("flow.json", &f);
    let s = server();
    let mut child = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once parts have gone up.
    let started = std::time::Instant::now();
    loop {
        let uploads = block_on(client().list_multipart_uploads().bucket(&b).send()).unwrap();
        let parts = match uploads.uploads().first() {
            Some(u) => block_on(
                client()
                    .list_parts()
                    .bucket(&b)
                    .key(u.key().unwrap())
                    .upload_id(u.upload_id().unwrap())
                    .send(),
            )
            .unwrap()
            .parts()
            .len(),
            None => 0,
        };
        if parts >= 2 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no parts went up"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // No object exists: a reader never sees part of the output. The killed process could
    // not abort its upload, but it recorded it as it began.
    assert!(keys(&b).is_empty(), "{:?}", keys(&b));
    assert_eq!(open_uploads(&b), 1);
    // The next run of the flow (a small one, under the same name) aborts it first.
    let small = scratch.flow(
        "small.json",
        &demo_to_s3(10, json!({"bucket": b, "format": "jsonl"})),
    );
    let next = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", small.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(open_uploads(&b), 0, "the dead run's upload is aborted");
    assert_eq!(keys(&b).len(), 1, "the next run's own object");
}

/// Runs the flow at `path` and kills it while S3 completes its `k`-th object: a proxy
/// holds that request until the kill.
fn kill_at_nth_completion(scratch: &Scratch, path: &std::path::Path, k: usize) {
    let proxy = SupportServer::start(
        "proxy.py",
        &["--hold", r"^POST .*\?uploadId=", "--nth", &k.to_string()],
    );
    let s = server();
    let mut child = tributary(scratch, s, &s.key_id, &s.secret)
        .env("HTTP_PROXY", proxy.url())
        .args(["run", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !proxy
        .get("/log")
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().starts_with("HELD "))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "completion {k} never came: {:?}",
            proxy.get("/log")
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Writes the records of `input` to `lake` under `prefix`, one object per group, and kills
/// the run while S3 completes its `k`-th object (a proxy holds that request): `k - 1`
/// objects are visible. Returns the flow.
fn kill_at_completion(
    scratch: &Scratch,
    input: &str,
    lake: &str,
    prefix: &str,
    k: usize,
) -> std::path::PathBuf {
    let path = scratch.flow(
        "flow.json",
        &flow(
            vec![
                node(
                    "in",
                    "source.s3",
                    json!({"bucket": input, "prefix": "in/", "format": "jsonl", "incremental": true}),
                ),
                node(
                    "lake",
                    "destination.s3",
                    json!({"bucket": lake, "prefix": prefix, "format": "jsonl", "partition_by": ["group"]}),
                ),
            ],
            &[("in", "lake")],
        ),
    );
    kill_at_nth_completion(scratch, &path, k);
    let visible = keys(lake)
        .keys()
        .filter(|key| key.starts_with(prefix))
        .count();
    assert_eq!(visible, k - 1, "killed at completion {k}");
    path
}

/// 100 records with ids 0..100 in four JSON lines objects under `in/`, each record in one
/// of five groups.
fn hundred_records(bucket: &str) {
    let c = client();
    for o in 0..4 {
        let text: String = (o * 25..(o + 1) * 25)
            .map(|id| format!("{{\"id\": {id}, \"group\": {}}}\n", id % 5))
            .collect();
        block_on(
            c.put_object()
                .bucket(bucket)
                .key(format!("in/{o}.jsonl"))
                .body(ByteStream::from(text.into_bytes()))
                .send(),
        )
        .unwrap();
    }
}

/// Ids of the JSON lines records in the objects under `prefix`.
fn ids_under(bucket: &str, prefix: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = keys(bucket)
        .keys()
        .filter(|k| k.starts_with(prefix))
        .flat_map(|k| ids_in(&String::from_utf8(get(bucket, k)).unwrap()))
        .collect();
    ids.sort();
    ids
}

#[test]
fn a_run_killed_while_it_completes_its_uploads_is_finished_by_the_next_run() {
    let input = bucket("commit-in");
    let lake = bucket("commit-lake");
    hundred_records(&input);
    let s = server();
    let all: Vec<i64> = (0..100).collect();
    // Killed at each of the five completions in turn: the K-th is held at the proxy, so
    // K - 1 objects are visible when the run dies.
    for k in 1..=5 {
        let scratch = Scratch::new();
        let prefix = format!("k{k}/");
        let path = kill_at_completion(&scratch, &input, &lake, &prefix, k);

        // The next run completes the rest before it reads anything, and saves where the
        // killed run left off: it finds nothing new, and every record is there once.
        let o = tributary(&scratch, s, &s.key_id, &s.secret)
            .args(["run", path.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(record["records_processed"], 0, "{record}");
        assert_eq!(ids_under(&lake, &prefix), all, "killed at completion {k}");
        let objects = keys(&lake)
            .keys()
            .filter(|key| key.starts_with(&prefix))
            .count();
        assert_eq!(objects, 5);
    }
    assert_eq!(open_uploads(&lake), 0, "no upload is left behind");
}

#[test]
fn a_killed_commit_that_cannot_be_finished_is_removed_whole_and_read_again() {
    let input = bucket("gone-in");
    let lake = bucket("gone-lake");
    hundred_records(&input);
    let scratch = Scratch::new();
    let path = kill_at_completion(&scratch, &input, &lake, "", 3);
    // The uploads not completed yet go away, as a lifecycle rule would take them.
    let c = client();
    let uploads = block_on(c.list_multipart_uploads().bucket(&lake).send()).unwrap();
    for u in uploads.uploads() {
        block_on(
            c.abort_multipart_upload()
                .bucket(&lake)
                .key(u.key().unwrap())
                .upload_id(u.upload_id().unwrap())
                .send(),
        )
        .unwrap();
    }
    // The killed run's output cannot be made whole: its two objects are removed, and its
    // records are read again, so each is in the bucket once.
    let s = server();
    let o = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let record: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(record["records_processed"], 100, "{record}");
    assert_eq!(ids_under(&lake, ""), (0..100).collect::<Vec<i64>>());
    assert!(
        stderr(&o).contains("`lake` could not finish publishing")
            && stderr(&o).contains("read again"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn with_no_region_or_keys_anywhere_the_instance_metadata_is_asked_once_and_the_node_says_so() {
    // What a laptop sees of the EC2 instance metadata address: nothing answers. Here it is
    // a server on loopback that never answers, so no request leaves this machine; it is
    // the one test that lets the SDK look for instance metadata at all.
    let silent = SupportServer::start("stall_server.py", &[]);
    let scratch = Scratch::new();
    let empty = scratch.write("aws-config-of-this-test", "");
    let path = scratch.flow(
        "flow.json",
        &demo_to_s3(10, json!({"bucket": "lake", "format": "jsonl"})),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", path.to_str().unwrap()])
        .env("TRIBUTARY_HOME", scratch.home())
        .env_remove("TRIBUTARY_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", silent.url())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        stdout(&o).contains("no AWS region is set"),
        "{}\n{err}",
        stdout(&o)
    );
    // Tributary's own message only, not the SDK's warnings.
    assert!(!err.contains("imds"), "{err}");
    let asked = silent.get("/test/count");
    assert!(
        asked.as_array().unwrap().len() <= 1,
        "the metadata address is asked once, not retried: {asked}"
    );
}

#[test]
fn a_field_only_in_a_later_object_is_set_aside_named_not_dropped() {
    let b = bucket("drift");
    let c = client();
    for (key, body) in [
        ("in/a.jsonl", "{\"id\": 1}\n{\"id\": 2}\n"),
        (
            "in/b.jsonl",
            "{\"id\": 3, \"email\": \"c@example.com\"}\n{\"id\": 4}\n",
        ),
    ] {
        block_on(
            c.put_object()
                .bucket(&b)
                .key(key)
                .body(ByteStream::from(body.as_bytes().to_vec()))
                .send(),
        )
        .unwrap();
    }
    let scratch = Scratch::new();
    let to_folder = |policy: Option<&str>| {
        let mut source = json!({"bucket": b, "prefix": "in/", "format": "jsonl"});
        if let Some(policy) = policy {
            source["new_fields"] = json!(policy);
        }
        flow(
            vec![
                node("s3", "source.s3", source),
                node(
                    "out",
                    "destination.local",
                    json!({"folder": "out", "format": "jsonl"}),
                ),
            ],
            &[("s3", "out")],
        )
    };
    // The fields come from the first object: record 3's `email` is not among them.
    let (code, record, err) = run(&scratch, &to_folder(None));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_rejected"], 1, "{record}");
    let errors = std::fs::read_to_string(record["error_output"].as_str().unwrap()).unwrap();
    assert!(
        errors.contains("a field `email`") && errors.contains("b.jsonl"),
        "{errors}"
    );
    let (code, record, err) = run(&scratch, &to_folder(Some("ignore")));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(record["records_written"], 4, "{record}");
}

#[test]
fn keys_never_reach_the_logs_even_when_tracing() {
    let b = bucket("quiet-logs");
    let scratch = Scratch::new();
    let f = demo_to_s3(100, json!({"bucket": b, "format": "csv"}));
    let path = scratch.flow("flow.json", &f);
    let s = server();
    let secret = "tributary-test-secret-0123456789";
    let o = tributary(&scratch, s, &s.key_id, secret)
        .env("TRIBUTARY_LOG", "trace")
        .args(["run", path.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let logs = stderr(&o);
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "tracing is on"
    );
    assert!(!logs.contains(secret) && !stdout(&o).contains(secret));
}

#[test]
fn access_keys_kept_in_the_vault_sign_the_requests() {
    let b = signed_bucket("vaulted");
    let s = signing_server();
    let scratch = Scratch::new();
    // The environment's keys are wrong: only the connection's can work.
    let with_vault = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut child = tributary(&scratch, s, "AKIANOSUCHKEY0000000", "wrong")
            .env("TRIBUTARY_VAULT_PASSPHRASE", "lake passphrase")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let added = with_vault(
        &[
            "connection",
            "add",
            "lake",
            "--connector",
            "s3",
            "--auth",
            "access_keys",
        ],
        &format!("{}\n{}\n", s.key_id, s.secret),
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let tested = with_vault(&["connection", "test", "lake"], "");
    assert!(tested.status.success(), "{}", stderr(&tested));
    assert!(stdout(&tested).contains("bucket"), "{}", stdout(&tested));

    let f = demo_to_s3(
        50,
        json!({"bucket": b, "format": "csv", "connection": "lake"}),
    );
    let path = scratch.flow("flow.json", &f);
    let ran = with_vault(&["run", path.to_str().unwrap(), "--json"], "");
    assert!(ran.status.success(), "{}", stderr(&ran));
    let record: Value = serde_json::from_str(&stdout(&ran)).unwrap();
    assert_eq!(record["records_written"], 50);
    let listed = block_on(client_of(s).list_objects_v2().bucket(&b).send()).unwrap();
    assert_eq!(listed.key_count(), Some(1));
    // Neither the run's output nor any file but the vault holds the secret key.
    assert!(!stdout(&ran).contains(&s.secret) && !stderr(&ran).contains(&s.secret));
    let mut stack = vec![scratch.home()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().unwrap() != "vault.bin" {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                assert!(
                    !text.contains(&s.secret),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }

    // Without the passphrase the run stops and says why.
    let locked = tributary(&scratch, s, "AKIANOSUCHKEY0000000", "wrong")
        .args(["run", path.to_str().unwrap(), "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(locked.status.code(), Some(1));
    assert!(
        stdout(&locked).contains("the vault is locked"),
        "{}",
        stdout(&locked)
    );
}

/// A day read again replaces the one before: two overlapping reads (days 1–3, then 3–5)
/// leave each day once, from the later read, also when the second run is killed while S3
/// completes its objects (the next run finishes that commit, removals included).
#[test]
fn a_partition_written_again_replaces_the_one_before() {
    let lake = bucket("replaced-days");
    let scratch = Scratch::new();
    let write_days = |days: std::ops::RangeInclusive<u32>, version: &str| {
        let mut csv = String::from("id,day,version\n");
        for day in days {
            for i in 0..20 {
                csv += &format!("{},{day},{version}\n", day * 100 + i);
            }
        }
        scratch.write("in.csv", &csv);
    };
    let days = flow(
        vec![
            node("src", "source.file", json!({"path": "in.csv"})),
            node(
                "lake",
                "destination.s3",
                json!({"bucket": lake, "prefix": "days", "format": "jsonl",
                       "partition_by": ["day"], "replace_partitions": true}),
            ),
        ],
        &[("src", "lake")],
    );
    let by_day = || {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in keys(&lake).keys() {
            let day = key.split('/').nth(1).unwrap().to_string();
            let text = String::from_utf8(get(&lake, key)).unwrap();
            for line in text.lines() {
                let r: Value = serde_json::from_str(line).unwrap();
                out.entry(day.clone()).or_default().push(format!(
                    "{}{}",
                    r["id"],
                    r["version"].as_str().unwrap()
                ));
            }
        }
        for ids in out.values_mut() {
            ids.sort();
        }
        out
    };
    let expected = || {
        (1..=5u32)
            .map(|day| {
                let version = if day <= 2 { "a" } else { "b" };
                let mut ids: Vec<String> = (0..20)
                    .map(|i| format!("{}{version}", day * 100 + i))
                    .collect();
                ids.sort();
                (format!("day={day}"), ids)
            })
            .collect::<BTreeMap<_, _>>()
    };

    write_days(1..=3, "a");
    let (code, _, err) = run(&scratch, &days);
    assert_eq!(code, Some(0), "{err}");
    write_days(3..=5, "b");
    // Killed while S3 completes the second of its three objects.
    kill_at_nth_completion(&scratch, &scratch.flow("flow.json", &days), 2);
    assert_eq!(
        keys(&lake).len(),
        4,
        "days 1–3 of the first run and one object of the second: {:?}",
        keys(&lake)
    );
    let (code, _, err) = run(&scratch, &days);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(by_day(), expected());
    assert_eq!(keys(&lake).len(), 5, "one object a day: {:?}", keys(&lake));
}

/// The seed's marketing flow: GA4, Google Ads and Meta Ads (each against its API on
/// loopback) through a union and an aggregate into S3, a folder per day with a record per
/// channel; run again, the days read again replace theirs and the bucket keeps each day
/// and channel once.
#[test]
fn the_marketing_showcase_puts_three_channels_by_day_in_s3_and_keeps_each_day_once() {
    const PASSPHRASE: &str = "marketing";
    let b = bucket("marketing-lake");
    let scratch = Scratch::new();
    let _ga = ga4_connection(&scratch, PASSPHRASE, "ga");
    let _ads = google_ads_connection(&scratch, PASSPHRASE, "ads");
    let _meta = meta_ads_connection(&scratch, PASSPHRASE, "meta");
    let s = server();
    let flow = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/flows/marketing-channels-to-s3.json"
    );
    let run = || {
        let o = tributary(&scratch, s, &s.key_id, &s.secret)
            .env("TRIBUTARY_VAULT_PASSPHRASE", PASSPHRASE)
            .env_remove("AWS_ENDPOINT_URL")
            .args(["run", flow, "--json"])
            .args([
                "--param",
                "analytics=ga",
                "--param",
                "property=properties/111111111",
            ])
            .args(["--param", "google_ads=ads", "--param", "meta_ads=meta"])
            .args(["--param", &format!("bucket={b}")])
            .args(["--param", &format!("endpoint={}", s.endpoint)])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()
    };
    let days_by_channel = || {
        let mut days: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
        for key in keys(&b).keys() {
            // marketing/channels/date=…/part-….parquet
            let day = key
                .split('/')
                .nth(2)
                .unwrap()
                .trim_start_matches("date=")
                .to_string();
            for row in parquet_rows(get(&b, key)).1 {
                days.entry(day.clone())
                    .or_default()
                    .push((row["channel"].as_str().unwrap().to_string(), row));
            }
        }
        days
    };
    // 31 days of each channel: a record a day and channel.
    run();
    let first = days_by_channel();
    assert_eq!(first.len(), 31, "{:?}", first.keys());
    for (day, rows) in &first {
        let mut channels: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
        channels.sort();
        assert_eq!(
            channels,
            ["Google Ads", "Google Analytics", "Meta Ads"],
            "{day}"
        );
        for (channel, row) in rows {
            match channel.as_str() {
                "Google Analytics" => {
                    assert!(
                        row["sessions"].as_f64().unwrap_or(0.0) > 0.0 && row["clicks"].is_null(),
                        "{row}"
                    )
                }
                _ => assert!(
                    row["clicks"].as_f64().unwrap_or(0.0) > 0.0
                        && row["cost"].as_f64().unwrap_or(0.0) > 0.0,
                    "{row}"
                ),
            }
        }
    }
    // Again: the last eight days are read again from all three and replace theirs.
    let second = run();
    assert_eq!(second["records_written"], 24);
    let again = days_by_channel();
    assert_eq!(again.len(), 31);
    assert!(
        again.values().all(|rows| rows.len() == 3),
        "each day and channel once"
    );
}

/// An AppFlow flow of a CloudFormation template (S3 CSV → filters, a validation, a mask, a
/// truncation, a merge, arithmetic, maps and a partition → S3 JSON), imported and run: its
/// output holds what AppFlow's tasks make of the input, worked out here from the input.
#[test]
fn an_imported_appflow_flow_runs_end_to_end() {
    let b = bucket("appflow-orders");
    let rows = [
        [
            "1",
            "Ada",
            "Lovelace",
            "2",
            "10.5",
            "4111111111111111",
            "Deliver to the back door",
            "shipped",
        ],
        [
            "2",
            "Alan",
            "Turing",
            "0",
            "3.0",
            "5500000000000004",
            "",
            "shipped",
        ],
        [
            "4",
            "Edsger",
            "Dijkstra",
            "3",
            "2.25",
            "6011000000000004",
            "a very long note",
            "cancelled",
        ],
        [
            "5",
            "Barbara",
            "Liskov",
            "4",
            "1.5",
            "3530111333300000",
            "",
            "pending",
        ],
        [
            "6",
            "Donald",
            "Knuth",
            "7",
            "0.25",
            "4000056655665556",
            "fragile",
            "pending",
        ],
    ];
    let mut csv =
        "order_id,customer_first,customer_last,quantity,unit_price,card_number,notes,status\n"
            .to_string();
    for row in &rows {
        csv += &row.join(",");
        csv.push('\n');
    }
    block_on(
        client()
            .put_object()
            .bucket(&b)
            .key("incoming/orders/2026-12-01.csv")
            .body(ByteStream::from(csv.into_bytes()))
            .send(),
    )
    .unwrap();

    let scratch = Scratch::new();
    let s = server();
    let template = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/appflow/lake-flows.cloudformation.yaml"
    );
    let flow = scratch.path().join("orders.json");
    let o = tributary(&scratch, s, &s.key_id, &s.secret)
        .args([
            "import",
            "appflow",
            template,
            "--flow",
            "Orders",
            "--allow-partial",
            "-o",
        ])
        .arg(&flow)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", flow.to_str().unwrap(), "--json"])
        .args(["--param", &format!("LakeBucket={b}")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // What AppFlow's tasks make of each row.
    let mut expected: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for [id, first, last, quantity, price, card, notes, status] in rows {
        let quantity: i64 = quantity.parse().unwrap();
        if status == "cancelled" || quantity < 1 {
            continue;
        }
        let record = json!({
            "id": id.parse::<i64>().unwrap(),
            "customer": format!("{first} {last}"),
            "total": quantity as f64 * price.parse::<f64>().unwrap(),
            "card_number": format!("{}{}", "*".repeat(12), &card[12..]),
            "notes": notes.chars().take(10).collect::<String>(),
        });
        expected.entry(status.to_string()).or_default().push(record);
    }
    let mut written: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for key in keys(&b).keys().filter(|k| k.starts_with("curated/")) {
        // curated/prod/orders/status=…/part-….jsonl
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts[..3], ["curated", "prod", "orders"], "{key}");
        let status = parts[3].strip_prefix("status=").unwrap().to_string();
        assert!(parts[4].ends_with(".jsonl"), "{key}");
        for line in String::from_utf8(get(&b, key)).unwrap().lines() {
            written
                .entry(status.clone())
                .or_default()
                .push(serde_json::from_str(line).unwrap());
        }
    }
    assert_eq!(written, expected);
}

/// What the Glue side of a server holds for a database (tests/support/glue_state.py).
fn glue_state(server: &Server, database: &str) -> Value {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/glue_state.py"
        ))
        .args([&server.endpoint, &server.key_id, &server.secret, database])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Columns of a Glue table or its partition keys, as `name type`.
fn glue_columns(list: &Value) -> Vec<String> {
    (list.as_array().unwrap().iter())
        .map(|c| {
            format!(
                "{} {}",
                c["Name"].as_str().unwrap(),
                c["Type"].as_str().unwrap()
            )
        })
        .collect()
}

/// Against the server's Glue: the database and table made on the first run, each run's new partitions added and the older ones left
/// as they were, a new field updating the table as a new version, and a table that cannot
/// take the objects refusing the run before anything is published.
#[test]
fn objects_are_registered_in_glue_with_their_partitions_and_schema_changes() {
    let s = server();
    let lake = bucket("glue-lake");
    let scratch = Scratch::new();
    let sales = |days: std::ops::RangeInclusive<u32>, region: bool| {
        let mut csv = String::from(if region {
            "id,day,amount,region\n"
        } else {
            "id,day,amount\n"
        });
        for day in days {
            for i in 0..10 {
                csv += &format!("{},{day},{}.5", day * 100 + i, i);
                csv += if region { ",north\n" } else { "\n" };
            }
        }
        scratch.write("sales.csv", &csv);
    };
    let flow_by = |partition_by: &str| {
        let mut f = flow(
            vec![
                node("src", "source.file", json!({"path": "sales.csv"})),
                node(
                    "lake",
                    "destination.s3",
                    json!({"bucket": lake, "prefix": "sales", "format": "parquet",
                           "partition_by": [partition_by],
                           "catalog": {"glue": {"database": "lake_db", "table_prefix": "trib_"}}}),
                ),
            ],
            &[("src", "lake")],
        );
        f["name"] = json!("Daily Sales");
        f
    };
    let run_signed = |f: &Value| {
        let o = run_with_keys(&scratch, f, s, &s.key_id, &s.secret);
        let record: Value = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
        assert!(
            !stdout(&o).contains(&s.secret) && !stderr(&o).contains(&s.secret),
            "the secret key is never written"
        );
        (o.status.code(), record, stderr(&o))
    };

    sales(1..=2, false);
    let (code, record, err) = run_signed(&flow_by("day"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        record["registered"],
        json!([{"node": "lake", "catalog": "glue", "table": "lake_db.trib_daily_sales",
                "changes": ["created the database lake_db", "created the table",
                            "added 2 partitions: day=1, day=2"]}])
    );
    let state = glue_state(s, "lake_db");
    let table = &state["tables"]["trib_daily_sales"];
    let sd = &table["table"]["StorageDescriptor"];
    assert_eq!(glue_columns(&sd["Columns"]), ["id bigint", "amount double"]);
    assert_eq!(
        glue_columns(&table["table"]["PartitionKeys"]),
        ["day bigint"]
    );
    assert_eq!(sd["Location"], "s3://glue-lake/sales/");
    assert_eq!(
        sd["SerdeInfo"]["SerializationLibrary"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    assert_eq!(
        sd["InputFormat"],
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    );
    assert_eq!(table["table"]["Parameters"]["classification"], "parquet");
    assert_eq!(table["table"]["TableType"], "EXTERNAL_TABLE");
    let partitions = |state: &Value| -> Vec<(String, String)> {
        (state["tables"]["trib_daily_sales"]["partitions"]
            .as_array()
            .unwrap()
            .iter())
        .map(|p| {
            (
                p["values"][0].as_str().unwrap().to_string(),
                p["location"].as_str().unwrap().to_string(),
            )
        })
        .collect()
    };
    assert_eq!(
        partitions(&state),
        [
            ("1".into(), "s3://glue-lake/sales/day=1/".into()),
            ("2".into(), "s3://glue-lake/sales/day=2/".into())
        ]
    );
    // Every partition's location holds the objects written for it.
    for (day, location) in partitions(&state) {
        let prefix = location.trim_start_matches("s3://glue-lake/");
        let under: Vec<String> = keys(&lake)
            .into_keys()
            .filter(|k| k.starts_with(prefix))
            .collect();
        assert_eq!(under.len(), 1, "day {day}: {under:?}");
    }
    let first_created = state["tables"]["trib_daily_sales"]["partitions"][1]["created"].clone();

    // Days 2 and 3: only day 3 is new to Glue; day 2 stays as it was.
    sales(2..=3, false);
    let (code, record, err) = run_signed(&flow_by("day"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        record["registered"][0]["changes"],
        json!(["added 1 partition: day=3"])
    );
    let state = glue_state(s, "lake_db");
    assert_eq!(
        partitions(&state)
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert_eq!(
        state["tables"]["trib_daily_sales"]["partitions"][1]["created"],
        first_created
    );
    assert_eq!(state["tables"]["trib_daily_sales"]["versions"], 1);

    // A new field: the table is updated, the older one kept as a version.
    sales(4..=4, true);
    let (code, record, err) = run_signed(&flow_by("day"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        record["registered"][0]["changes"],
        json!([
            "updated the table (Glue keeps the one before as a version): added the columns region string",
            "added 1 partition: day=4"
        ])
    );
    let state = glue_state(s, "lake_db");
    let table = &state["tables"]["trib_daily_sales"];
    assert_eq!(
        glue_columns(&table["table"]["StorageDescriptor"]["Columns"]),
        ["id bigint", "amount double", "region string"]
    );
    assert_eq!(table["versions"], 2);

    // Partitioned otherwise than the table: refused before any object is published.
    let before = keys(&lake);
    let (code, record, err) = run_signed(&flow_by("region"));
    assert_eq!(code, Some(1), "{err}");
    let message = record["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("lake_db.trib_daily_sales is partitioned by day, and this node writes partitions by region"),
        "{message}"
    );
    assert_eq!(record["error"]["node"], "lake");
    assert_eq!(keys(&lake), before, "nothing was published");
    assert_eq!(open_uploads(&lake), 0);
}

/// Glue's requests are signed as AWS checks them: against a server that refuses anything
/// not signed by its one user's key, a table is made (objects without `=` in their keys,
/// which that server cannot check).
#[test]
fn glue_requests_are_signed_with_the_connections_keys() {
    let s = signing_server();
    let lake = signed_bucket("glue-signed");
    let scratch = Scratch::new();
    let mut f = demo_to_s3(
        50,
        json!({"bucket": lake, "prefix": "crm", "format": "jsonl",
               "catalog": {"glue": {"database": "signed_db", "table": "opportunities"}}}),
    );
    f["name"] = json!("Signed");
    let o = run_with_keys(&scratch, &f, s, &s.key_id, &s.secret);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let state = glue_state(s, "signed_db");
    let table = &state["tables"]["opportunities"]["table"];
    assert_eq!(
        table["StorageDescriptor"]["Location"],
        "s3://glue-signed/crm/"
    );
    assert_eq!(
        table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
        "org.openx.data.jsonserde.JsonSerDe"
    );
    assert_eq!(table["PartitionKeys"], json!([]));
    assert_eq!(table["Parameters"]["classification"], "json");
}

/// The parts of an S3 → transforms → S3 run, each on its share of the objects, publish at
/// once on `commit`: exactly the records one whole run writes. Until then nothing is
/// visible; an aborted run leaves no upload behind.
#[test]
fn four_parts_of_an_s3_run_publish_together_what_one_run_writes() {
    let from = bucket("parts-in");
    let to = bucket("parts-out");
    for f in 0..16 {
        let mut body = String::from("id,amount\n");
        for r in 0..25 {
            body += &format!("{},{}.5\n", f * 100 + r, r);
        }
        put(&from, &format!("daily/{f:02}.csv"), body);
    }
    let scratch = Scratch::new();
    let f = |prefix: &str| {
        let mut f = doubling_flow(&from, "daily/", json!({}), &to, prefix);
        f["name"] = json!("Daily to lake");
        f
    };
    let path = scratch.flow("parts.json", &f("parts"));
    let s = server();
    let part = |i: u32, run_id: &str| {
        let o = tributary(&scratch, s, &s.key_id, &s.secret)
            .args(["run", path.to_str().unwrap(), "--partitions", "4"])
            .args([
                "--partition",
                &i.to_string(),
                "--run-id",
                run_id,
                "--stage-only",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    for i in 0..4 {
        part(i, "lake-1");
    }
    assert!(keys(&to).is_empty(), "nothing visible before the commit");
    assert!(open_uploads(&to) >= 4, "each part's uploads wait open");
    let committed = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["commit", path.to_str().unwrap(), "--run-id", "lake-1"])
        .output()
        .unwrap();
    assert!(committed.status.success(), "{}", stderr(&committed));
    assert!(
        stdout(&committed).contains("400 records written"),
        "{}",
        stdout(&committed)
    );
    assert_eq!(open_uploads(&to), 0);
    let lines = |prefix: &str| lines_under(&to, prefix);
    let parts = lines("parts/");
    assert_eq!(parts.len(), 400);
    let whole = scratch.flow("whole.json", &f("whole"));
    let o = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["run", whole.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(parts, lines("whole/"), "the same records as one run");

    // Two parts staged, then the run aborted: no upload is left, nothing published.
    part(0, "lake-2");
    part(3, "lake-2");
    assert!(open_uploads(&to) >= 2);
    let refused = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["commit", path.to_str().unwrap(), "--run-id", "lake-2"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("parts 2, 3 of 4 of run lake-2 did not stage"),
        "{}",
        stderr(&refused)
    );
    let aborted = tributary(&scratch, s, &s.key_id, &s.secret)
        .args(["abort", path.to_str().unwrap(), "--run-id", "lake-2"])
        .output()
        .unwrap();
    assert!(aborted.status.success(), "{}", stderr(&aborted));
    assert_eq!(
        open_uploads(&to),
        0,
        "the staged parts' uploads are aborted"
    );
    assert_eq!(lines("parts/").len(), 400, "only the first run's records");
}

/// A partitioned run of an incremental source reads one window, whose end is the start of
/// its first part: objects written while the parts run are left to the next run, whatever
/// part they fall to. The commit saves where the parts got to together; the next run goes
/// on from there. A run that moved the watermark while parts were staged makes their
/// commit refuse, as it would publish the same records again.
#[test]
fn a_partitioned_incremental_run_saves_one_watermark_and_loses_nothing_written_meanwhile() {
    let b = bucket("parts-incremental");
    let put = |key: String, id: u32| put(&b, &key, format!("{{\"id\": {id}}}\n"));
    for id in 0..12 {
        put(format!("in/early-{id}.jsonl"), id);
    }
    let scratch = Scratch::new();
    let mut f = flow(
        vec![
            node(
                "s3",
                "source.s3",
                json!({"bucket": b, "prefix": "in/", "format": "jsonl", "incremental": true}),
            ),
            node(
                "out",
                "destination.local",
                json!({"folder": "${folder}", "format": "jsonl"}),
            ),
        ],
        &[("s3", "out")],
    );
    f["name"] = json!("Incremental lake");
    f["params"] = json!({"folder": "out"});
    let path = scratch.flow("flow.json", &f);
    let flow_path = path.to_str().unwrap();
    let s = server();
    let cli = |args: &[&str]| {
        tributary(&scratch, s, &s.key_id, &s.secret)
            .args(args)
            .output()
            .unwrap()
    };
    let part = |i: u32, run_id: &str| {
        let o = cli(&[
            "run",
            flow_path,
            "--partitions",
            "4",
            "--partition",
            &i.to_string(),
            "--run-id",
            run_id,
            "--stage-only",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let read_into = |folder: &str| -> Vec<i64> {
        let o = cli(&[
            "run",
            flow_path,
            "--json",
            "--param",
            &format!("folder={folder}"),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        ids_written(&serde_json::from_str(&stdout(&o)).unwrap())
    };
    let published = |folder: &str| -> Vec<i64> {
        let dir = scratch.path().join(folder);
        let mut ids: Vec<i64> = common::files_under(&dir)
            .iter()
            .filter(|f| !f.contains(".tributary-staging"))
            .flat_map(|f| ids_in(&std::fs::read_to_string(dir.join(f)).unwrap()))
            .collect();
        ids.sort();
        ids
    };

    part(0, "bf-1");
    // Written after the first part began (the stamps are to the second): past the window.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for id in 100..108 {
        put(format!("in/late-{id}.jsonl"), id);
    }
    for i in 1..4 {
        part(i, "bf-1");
    }
    let committed = cli(&["commit", flow_path, "--run-id", "bf-1"]);
    assert!(committed.status.success(), "{}", stderr(&committed));
    assert_eq!(published("out"), (0..12).collect::<Vec<i64>>());
    // The next run reads exactly what the window left out.
    assert_eq!(read_into("next"), (100..108).collect::<Vec<i64>>());
    assert_eq!(read_into("after"), Vec::<i64>::new());

    // Parts staged from the saved watermark; a whole run moves it meanwhile: the parts
    // would publish its records again, so their commit is refused and they are aborted.
    put("in/later-200.jsonl".into(), 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for i in 0..4 {
        part(i, "bf-2");
    }
    assert_eq!(read_into("whole"), [200]);
    let refused = cli(&["commit", flow_path, "--run-id", "bf-2"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "a run of \"Incremental lake\" read `s3` on from where the parts of run bf-2 began"
        ),
        "{}",
        stderr(&refused)
    );
    let aborted = cli(&["abort", flow_path, "--run-id", "bf-2"]);
    assert!(aborted.status.success(), "{}", stderr(&aborted));
    assert_eq!(
        published("out"),
        (0..12).collect::<Vec<i64>>(),
        "the aborted parts published nothing"
    );
}
