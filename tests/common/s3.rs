//! moto's S3 server on loopback, for the tests of flows that read or write S3: started once
//! per test process, with the SDK to set up and inspect buckets and the `tributary` command
//! pointed at it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use serde_json::Value;

use super::Scratch;

/// The server, shared by every test here; it stops when this test process ends and its
/// standard input closes.
pub struct Server {
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
    _child: Child,
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_server(false))
}

/// A server that refuses requests not signed by its one user's key.
pub fn signing_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_server(true))
}

pub fn start_server(check_signatures: bool) -> Server {
    {
        let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/s3_server.py");
        let log = std::fs::File::create(format!(
            "{}/s3-server{}.log",
            env!("CARGO_TARGET_TMPDIR"),
            if check_signatures { "-signing" } else { "" }
        ))
        .unwrap();
        let mut child = Command::new(&python)
            .arg(script)
            .args(check_signatures.then_some("--check-signatures"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "the S3 test server did not start; it needs moto's server (`pip install 'moto[server]'`, \
                 or run scripts/test.sh, which sets it up). Its log: {}/s3-server.log",
                env!("CARGO_TARGET_TMPDIR")
            )
        });
        Server {
            endpoint: ready["endpoint"].as_str().unwrap().into(),
            key_id: ready["access_key_id"].as_str().unwrap().into(),
            secret: ready["secret_access_key"].as_str().unwrap().into(),
            _child: child,
        }
    }
}

pub fn client() -> Client {
    client_of(server())
}

pub fn client_of(s: &Server) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .http_client(tributary::connectors::s3::http_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(&s.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(&s.key_id, &s.secret, None, None, "tests"))
        .build();
    Client::from_conf(config)
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A new, empty bucket for one test.
pub fn bucket(name: &str) -> String {
    block_on(client().create_bucket().bucket(name).send()).unwrap();
    name.to_string()
}

pub fn signed_bucket(name: &str) -> String {
    block_on(
        client_of(signing_server())
            .create_bucket()
            .bucket(name)
            .send(),
    )
    .unwrap();
    name.to_string()
}

/// Every key in a bucket with its size, listed page by page.
pub fn keys(bucket: &str) -> BTreeMap<String, i64> {
    block_on(async {
        let mut pages = client()
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        let mut out = BTreeMap::new();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                out.insert(o.key().unwrap().to_string(), o.size().unwrap());
            }
        }
        out
    })
}

pub fn get(bucket: &str, key: &str) -> Vec<u8> {
    block_on(async {
        let o = client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        o.body.collect().await.unwrap().to_vec()
    })
}

pub fn open_uploads(bucket: &str) -> usize {
    let out = block_on(client().list_multipart_uploads().bucket(bucket).send()).unwrap();
    out.uploads().len()
}

/// Points a command at `server` with `key_id`/`secret` by the standard AWS variables, with
/// none of the machine's own AWS settings: `tributary`, or what runs it (Airflow).
pub fn point_at<'c>(
    command: &'c mut Command,
    scratch: &Scratch,
    server: &Server,
    key_id: &str,
    secret: &str,
) -> &'c mut Command {
    let empty = scratch.write("aws-config-of-this-test", "");
    command
        .env("TRIBUTARY_HOME", scratch.home())
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// `tributary` pointed at `server` with `key_id`/`secret`.
pub fn tributary(scratch: &Scratch, server: &Server, key_id: &str, secret: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    c.env_remove("TRIBUTARY_LOG");
    point_at(&mut c, scratch, server, key_id, secret);
    c
}

/// `tributary` pointed at `server` with its own keys.
pub fn tributary_s3(scratch: &Scratch, server: &Server) -> Command {
    tributary(scratch, server, &server.key_id, &server.secret)
}

/// Every line of every object under `prefix` in `bucket`, sorted: what a run wrote there,
/// to compare with another run's.
pub fn lines_under(bucket: &str, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = keys(bucket)
        .keys()
        .filter(|k| k.starts_with(prefix))
        .flat_map(|k| {
            String::from_utf8(get(bucket, k))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

/// Puts an object.
pub fn put(bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
    block_on(
        client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
            .send(),
    )
    .unwrap();
}

/// A flow reading the objects under `from_prefix` in `from` (`source` settings added),
/// adding `twice` = `amount * 2`, writing JSON lines under `to_prefix` in `to`: the
/// S3 → transforms → S3 flow of the partitioned-run tests.
pub fn doubling_flow(
    from: &str,
    from_prefix: &str,
    source: Value,
    to: &str,
    to_prefix: &str,
) -> Value {
    let mut config = serde_json::json!({"bucket": from, "prefix": from_prefix});
    config
        .as_object_mut()
        .unwrap()
        .extend(source.as_object().cloned().unwrap_or_default());
    super::flow(
        vec![
            super::node("src", "source.s3", config),
            super::node(
                "twice",
                "transform.formula",
                serde_json::json!({"fields": [{"name": "twice", "expression": "amount * 2"}]}),
            ),
            super::node(
                "out",
                "destination.s3",
                serde_json::json!({"bucket": to, "prefix": to_prefix, "format": "jsonl"}),
            ),
        ],
        &[("src", "twice"), ("twice", "out")],
    )
}
