//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod s3;
pub mod ui;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A scratch folder that is also the run's `$TRIBUTARY_HOME`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// With `TRIBUTARY_TEST_STATE=postgres` (the test script's second pass), the scratch
    /// home keeps its run state in a schema of its own on the test PostgreSQL server.
    pub fn new() -> Self {
        let scratch = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        if std::env::var("TRIBUTARY_TEST_STATE").as_deref() == Ok("postgres") {
            let server = std::env::var("TRIBUTARY_TEST_POSTGRES")
                .expect("TRIBUTARY_TEST_POSTGRES names the test server for the state");
            let dirs = tributary::paths::Dirs::under(&scratch.home());
            tributary::state::use_test_schema(&dirs, &server).unwrap();
        }
        scratch
    }

    /// Loses the index of runs, as a deleted state file (or emptied table) would.
    pub fn lose_run_index(&self) {
        let state = self.home().join("config/state.json");
        let Ok(text) = std::fs::read_to_string(&state) else {
            std::fs::remove_file(self.home().join("data/state.sqlite")).unwrap();
            return;
        };
        let url: Value = serde_json::from_str(&text).unwrap();
        let config: tokio_postgres::Config = url["url"].as_str().unwrap().parse().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            client.batch_execute("DELETE FROM runs").await.unwrap();
        });
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// Writes a flow file and returns its path.
    pub fn flow(&self, name: &str, flow: &Value) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(flow).unwrap()).unwrap();
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the `tributary` binary with this scratch folder as its home.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(args)
            .env("TRIBUTARY_HOME", self.home())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("TRIBUTARY_LOG")
            .output()
            .unwrap()
    }
}

/// The run record a successful `tributary run --json` printed.
pub fn ran(out: &Output) -> Value {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// The records a run set aside, from its error output.
pub fn refused(record: &Value) -> Vec<Value> {
    std::fs::read_to_string(record["error_output"].as_str().unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file below `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Counts records in an output file by reading it back in its format.
pub fn count_records(path: &Path) -> u64 {
    let ext = path.extension().unwrap().to_str().unwrap();
    match ext {
        "parquet" => {
            let file = std::fs::File::open(path).unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .unwrap()
                    .build()
                    .unwrap();
            reader.map(|b| b.unwrap().num_rows() as u64).sum()
        }
        "jsonl" => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64,
        "json" => serde_json::from_str::<Vec<Value>>(&std::fs::read_to_string(path).unwrap())
            .unwrap()
            .len() as u64,
        "csv" => {
            let mut r = csv::Reader::from_path(path).unwrap();
            r.records().inspect(|r| assert!(r.is_ok(), "{r:?}")).count() as u64
        }
        other => panic!("unexpected output file type {other}"),
    }
}

/// A flow skeleton with nodes in a row and edges from `edges` pairs.
/// A flow `name` writing 10 demo leads as CSV into `out`, on `trigger`, with the
/// `service` settings given (none when null), saved as `file` in the scratch folder.
pub fn leads_flow(
    scratch: &Scratch,
    file: &str,
    name: &str,
    trigger: Value,
    service: Value,
) -> PathBuf {
    let mut f = flow(
        vec![
            node(
                "src",
                "source.demo_crm",
                serde_json::json!({"object": "Lead", "records": 10}),
            ),
            node(
                "out",
                "destination.local",
                serde_json::json!({"folder": "${out}", "format": "csv"}),
            ),
        ],
        &[("src", "out")],
    );
    f["name"] = serde_json::json!(name);
    f["params"] = serde_json::json!({"out": "out"});
    f["trigger"] = trigger;
    if !service.is_null() {
        f["service"] = service;
    }
    scratch.flow(file, &f)
}

pub fn flow(nodes: Vec<Value>, edges: &[(&str, &str)]) -> Value {
    serde_json::json!({
        "format": "tributary.flow/1",
        "name": "test flow",
        "nodes": nodes,
        "edges": edges.iter().map(|(a, b)| serde_json::json!({"from": a, "to": b})).collect::<Vec<_>>(),
    })
}

pub fn node(id: &str, kind: &str, config: Value) -> Value {
    serde_json::json!({"id": id, "type": kind, "position": [0, 0], "config": config})
}

/// A test server of `tests/support` (a Python script that prints one JSON line when it is
/// ready and serves until its standard input closes, i.e. until the test process ends).
pub struct SupportServer {
    /// What the server printed: at least its `url`.
    pub info: Value,
    _child: std::process::Child,
}

impl SupportServer {
    pub fn start(script: &str, args: &[&str]) -> SupportServer {
        use std::io::BufRead;
        let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
        // What the server says of each request would drown the test's output.
        let log = std::fs::File::create(format!("{}/{script}.log", env!("CARGO_TARGET_TMPDIR")))
            .expect("a log file for the server");
        let mut child = Command::new(&python)
            .arg(&path)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!("{script} did not start (run scripts/test.sh, which sets up what it needs)")
        });
        SupportServer {
            info,
            _child: child,
        }
    }

    pub fn url(&self) -> &str {
        self.info["url"].as_str().unwrap()
    }

    /// POSTs a JSON change to the server's `/test/control`.
    pub fn control(&self, change: Value) {
        http(
            "POST",
            &format!("{}/test/control", self.url()),
            Some(&change.to_string()),
        );
    }

    /// GETs one of the server's JSON pages, e.g. `/test/log`.
    pub fn get(&self, path: &str) -> Value {
        let text = http("GET", &format!("{}{path}", self.url()), None);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    /// The requests the server saw since this was last asked.
    pub fn requests(&self) -> Vec<Value> {
        self.get("/test/log").as_array().unwrap().clone()
    }
}

/// One plain HTTP request with Python's standard library, which every test machine has:
/// the tests need no HTTP client of their own.
pub fn http(method: &str, url: &str, body: Option<&str>) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, urllib.request\n\
             data = sys.argv[3].encode() if len(sys.argv) > 3 else None\n\
             r = urllib.request.Request(sys.argv[2], data=data, method=sys.argv[1])\n\
             print(urllib.request.urlopen(r).read().decode())",
            method,
            url,
        ])
        .args(body)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Adds the Salesforce connection `crm` (client credentials) to a scratch installation and
/// logs it in to a `salesforce_server.py` org; the vault takes `passphrase`.
pub fn salesforce_connection(scratch: &Scratch, org: &SupportServer, passphrase: &str) {
    use std::io::Write;
    let tributary = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
        c.env("TRIBUTARY_HOME", scratch.home())
            .env("TRIBUTARY_VAULT_PASSPHRASE", passphrase)
            .env_remove("TRIBUTARY_LOG");
        c
    };
    let mut child = tributary()
        .args([
            "connection",
            "add",
            "crm",
            "--connector",
            "salesforce",
            "--auth",
            "oauth2_client_credentials",
            "--set",
            &format!("login_url={}", org.url()),
            "--set",
            "client_id=sf-test-client",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let secret = org.info["client_secret"].as_str().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let added = child.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let login = tributary()
        .args(["connection", "login", "crm"])
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", stderr(&login));
}

/// `tributary connection add NAME --connector CONNECTOR --auth AUTH --set …` in a scratch
/// installation whose vault takes `passphrase`, the secret given on standard input.
pub fn add_connection(
    scratch: &Scratch,
    passphrase: &str,
    name: &str,
    connector: &str,
    auth: &str,
    settings: &[String],
    secret: &str,
) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .env("TRIBUTARY_HOME", scratch.home())
        .env("TRIBUTARY_VAULT_PASSPHRASE", passphrase)
        .env_remove("TRIBUTARY_LOG")
        .args([
            "connection",
            "add",
            name,
            "--connector",
            connector,
            "--auth",
            auth,
        ])
        .args(settings.iter().flat_map(|s| ["--set", s.as_str()]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let added = child.wait_with_output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
}

/// Adds the ServiceNow connection `sn` (basic sign-in as `admin`) to a scratch
/// installation, for a `servicenow_server.py` instance; the vault takes `passphrase`.
pub fn servicenow_connection(scratch: &Scratch, instance: &SupportServer, passphrase: &str) {
    add_connection(
        scratch,
        passphrase,
        "sn",
        "servicenow",
        "basic",
        &[
            format!("instance_url={}", instance.url()),
            "username=admin".into(),
        ],
        instance.info["password"].as_str().unwrap(),
    );
}

/// Adds the Zendesk connection `zd` (an API token) to a scratch installation, for a
/// `zendesk_server.py` instance; the vault takes `passphrase`.
pub fn zendesk_connection(
    scratch: &Scratch,
    server: &SupportServer,
    passphrase: &str,
    token: &str,
) {
    add_connection(
        scratch,
        passphrase,
        "zd",
        "zendesk",
        "basic",
        &[
            format!("instance_url={}", server.url()),
            "username=ana@acme.com/token".into(),
        ],
        token,
    );
}

/// Runs `tributary run FLOW` under strace, which kills it with SIGKILL as it enters its
/// `k`-th rename: deterministic, wherever the commit is then.
pub fn run_killed_at_rename(scratch: &Scratch, flow: &Path, k: usize) -> std::process::ExitStatus {
    run_killed_at_rename_in(scratch, None, flow, k)
}

/// [`run_killed_at_rename`] in an installation whose vault takes `passphrase`.
pub fn run_killed_at_rename_in(
    scratch: &Scratch,
    passphrase: Option<&str>,
    flow: &Path,
    k: usize,
) -> std::process::ExitStatus {
    cli_killed_at_rename(scratch, passphrase, &["run", flow.to_str().unwrap()], k)
}

/// `tributary ARGS…` killed (SIGKILL) at its `k`-th rename, as a power cut or the OOM
/// killer would; exits by itself when it renames fewer times.
pub fn cli_killed_at_rename(
    scratch: &Scratch,
    passphrase: Option<&str>,
    args: &[&str],
    k: usize,
) -> std::process::ExitStatus {
    let mut strace = Command::new("strace");
    strace
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &format!("inject=rename,renameat,renameat2:signal=SIGKILL:when={k}"),
            env!("CARGO_BIN_EXE_tributary"),
        ])
        .args(args)
        .env("TRIBUTARY_HOME", scratch.home())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(passphrase) = passphrase {
        strace.env("TRIBUTARY_VAULT_PASSPHRASE", passphrase);
    }
    strace
        .status()
        .expect("strace runs (scripts/test.sh installs it)")
}

/// Waits for `child` (its output piped) and says its exit code, its peak memory (KiB) and
/// its standard output, with its standard error after it when it failed.
pub fn wait_with_peak_rss(mut child: std::process::Child) -> (i32, u64, String) {
    use std::io::Read;
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel; the pid is our own child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed; stderr: {err}");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    if code != 0 {
        out.push_str(&err);
    }
    (code, usage.ru_maxrss as u64, out)
}

/// The `id` of each record of JSON lines text, in order.
pub fn ids_in(text: &str) -> Vec<i64> {
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("no whole-number id: {l}"))
        })
        .collect()
}

/// A browser for OAuth logins that follows the redirects without a window, for test
/// servers that approve at once: the script to give as `BROWSER`.
pub fn redirect_follower(scratch: &Scratch) -> std::path::PathBuf {
    let python = std::env::var("TRIBUTARY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = scratch.write(
        "browser.sh",
        &format!(
            "#!/bin/sh\nexec {python} -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()' \"$1\"\n"
        ),
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// `tributary` in a scratch installation whose vault takes `passphrase`.
pub fn tributary_in(scratch: &Scratch, passphrase: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tributary"));
    c.env("TRIBUTARY_HOME", scratch.home())
        .env("TRIBUTARY_VAULT_PASSPHRASE", passphrase)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("TRIBUTARY_LOG");
    c
}

/// `tributary run FLOW --json` (and `extra`) in a scratch installation.
pub fn run_in(scratch: &Scratch, passphrase: &str, flow: &Value, extra: &[&str]) -> Output {
    let path = scratch.flow("flow.json", flow);
    tributary_in(scratch, passphrase)
        .args(["run", path.to_str().unwrap(), "--json"])
        .args(extra)
        .output()
        .unwrap()
}

/// A flow of one source node, `id` of type `kind` with `base` and `extra` as its config,
/// writing JSON lines to the folder `out`.
pub fn source_to_folder(id: &str, kind: &str, base: Value, extra: Value) -> Value {
    let mut config = base;
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    flow(
        vec![
            node(id, kind, config),
            node(
                "out",
                "destination.local",
                serde_json::json!({"folder": "out", "format": "jsonl"}),
            ),
        ],
        &[(id, "out")],
    )
}

/// Every record written below the folder `out` so far, by its `key` as text, and how many
/// were written in all.
pub fn written_by(
    scratch: &Scratch,
    key: &str,
) -> (std::collections::BTreeMap<String, Value>, usize) {
    let mut by_key = std::collections::BTreeMap::new();
    let mut count = 0;
    let out = scratch.path().join("out");
    for file in files_under(&out) {
        for line in std::fs::read_to_string(out.join(&file)).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let k = match &record[key] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            by_key.insert(k, record);
            count += 1;
        }
    }
    (by_key, count)
}

/// The fields a node of `flow` plans, with their types in words (`decimal(13,2)`).
pub fn planned_types(
    flow: &tributary::flow::Flow,
    node: &str,
    scratch: &Scratch,
    workspace: &tributary::workspace::Workspace,
) -> std::collections::BTreeMap<String, String> {
    let plan =
        tributary::workspace::plan_flow(flow, scratch.path(), &Default::default(), workspace)
            .unwrap_or_else(|p| panic!("{p:#?}"));
    plan.nodes[plan.index_of(node).unwrap()]
        .schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), tributary::types::describe(f.data_type())))
        .collect()
}

/// Every JSON lines record written below `folder` of a scratch installation, with the file
/// it is in; staged files left out.
pub fn jsonl_rows(scratch: &Scratch, folder: &str) -> Vec<(String, Value)> {
    let out = scratch.path().join(folder);
    let mut all = Vec::new();
    for file in files_under(&out) {
        if file.starts_with(".tributary-staging") {
            continue;
        }
        for line in std::fs::read_to_string(out.join(&file)).unwrap().lines() {
            all.push((file.clone(), serde_json::from_str(line).unwrap()));
        }
    }
    all
}

/// What a command printed, standard output and error together.
pub fn said(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Google Analytics on loopback and the connection `name` to it, logged in through the
/// browser (a script that follows the redirects).
pub fn ga4_connection(scratch: &Scratch, passphrase: &str, name: &str) -> SupportServer {
    let server = SupportServer::start("ga4_server.py", &[]);
    let url = server.url().to_string();
    add_connection(
        scratch,
        passphrase,
        name,
        "google_analytics",
        "oauth2",
        &[
            format!("instance_url={url}"),
            format!("admin_url={url}"),
            format!("login_url={url}"),
            format!("token_url={url}/token"),
            format!("client_id={}", server.info["client_id"].as_str().unwrap()),
        ],
        server.info["client_secret"].as_str().unwrap(),
    );
    log_in(scratch, passphrase, name);
    server
}

/// Google Ads on loopback and the connection `name` to its account, reached through its
/// manager account, with a developer token, logged in through the browser.
pub fn google_ads_connection(scratch: &Scratch, passphrase: &str, name: &str) -> SupportServer {
    let server = SupportServer::start("google_ads_server.py", &[]);
    let url = server.url().to_string();
    add_connection(
        scratch,
        passphrase,
        name,
        "google_ads",
        "oauth2",
        &[
            "customer_id=123-456-7890".into(),
            "login_customer_id=987-654-3210".into(),
            format!("instance_url={url}"),
            format!("login_url={url}"),
            format!("token_url={url}/token"),
            format!("client_id={}", server.info["client_id"].as_str().unwrap()),
        ],
        &format!(
            "{}\nDEV-TOKEN-22",
            server.info["client_secret"].as_str().unwrap()
        ),
    );
    log_in(scratch, passphrase, name);
    server
}

/// Meta's Marketing API on loopback and the connection `name` to its ad account, with a
/// long-lived access token.
pub fn meta_ads_connection(scratch: &Scratch, passphrase: &str, name: &str) -> SupportServer {
    let server = SupportServer::start("meta_ads_server.py", &[]);
    add_connection(
        scratch,
        passphrase,
        name,
        "meta_ads",
        "api_key",
        &[
            "ad_account_id=act_111222333".into(),
            format!("instance_url={}", server.url()),
        ],
        server.info["token"].as_str().unwrap(),
    );
    server
}

/// `tributary connection login NAME`, through a browser that follows redirects.
fn log_in(scratch: &Scratch, passphrase: &str, name: &str) {
    let login = tributary_in(scratch, passphrase)
        .args(["connection", "login", name])
        .env("BROWSER", redirect_follower(scratch))
        .output()
        .unwrap();
    assert!(login.status.success(), "{}", said(&login));
}
