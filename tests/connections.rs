//! Connections end to end: `tributary connection …` logs in through a real headless
//! Chromium against an OAuth 2.0 server on loopback (`tests/support/oauth_server.py`) that
//! checks PKCE, `state`, the redirect URI and the client; tokens refresh before expiry and
//! after a `401`; secrets stay in the vault.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::SupportServer;
use serde_json::{Value, json};
use tributary::auth::session::Session;
use tributary::auth::vault;
use tributary::connectors::framework::service;
use tributary::paths::Dirs;

mod common;

const CLIENT_ID: &str = "tributary-test-client";
const CLIENT_SECRET: &str = "client-s3cret-7f2c";
const PASSPHRASE: &str = "correct horse battery staple";

fn start_server() -> SupportServer {
    SupportServer::start("oauth_server.py", &[])
}

/// Every request the authorization server has seen (its log keeps them all).
fn log(server: &SupportServer) -> Vec<Value> {
    server.get("/test/log").as_array().unwrap().clone()
}

fn requests_to(server: &SupportServer, path: &str) -> Vec<Value> {
    log(server)
        .into_iter()
        .filter(|e| e["path"] == path)
        .collect()
}

fn token_requests(server: &SupportServer) -> Vec<Value> {
    requests_to(server, "/services/oauth2/token")
}

/// One installation (its own config and data folders) and a headless Chromium as its
/// browser.
struct Home {
    dir: tempfile::TempDir,
    browser: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let chromium =
            std::env::var("TRIBUTARY_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            Path::new(&chromium).exists(),
            "the login tests drive a real browser: install Debian's chromium (scripts/test.sh does)"
        );
        // What the tests' browser does with the login URL: loads it headless, follows the
        // redirects back to the app's listener and saves the page it ends on.
        let browser = dir.path().join("browser.sh");
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nexec {chromium} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
                 --disable-background-networking --disable-component-update --disable-sync \
                 --user-data-dir={profile} --dump-dom \"$1\" > {dom} 2> {log}\n",
                profile = dir.path().join("profile").display(),
                dom = dir.path().join("page.html").display(),
                log = dir.path().join("chromium.log").display(),
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Home { dir, browser }
    }

    fn dirs(&self) -> Dirs {
        Dirs::under(&self.dir.path().join("home"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command
            .args(args)
            .env("TRIBUTARY_HOME", self.dir.path().join("home"))
            .env("TRIBUTARY_VAULT_PASSPHRASE", PASSPHRASE)
            .env("BROWSER", &self.browser)
            .env_remove("TRIBUTARY_LOG")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A Salesforce connection against the test server, its client secret in the vault.
    fn add_salesforce(&self, server: &SupportServer, name: &str) {
        let out = self.run_with_input(
            &[
                "connection",
                "add",
                name,
                "--connector",
                "salesforce",
                "--set",
                &format!("login_url={}", server.url()),
                "--set",
                &format!("client_id={CLIENT_ID}"),
            ],
            &format!("{CLIENT_SECRET}\n"),
        );
        assert_ok(&out);
    }

    fn login(&self, name: &str) -> Output {
        self.run(&["connection", "login", name, "--timeout", "60"])
    }

    /// The page the browser ended on, once it has written it.
    fn page(&self) -> String {
        let path = self.dir.path().join("page.html");
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path)
                && text.contains("</html>")
            {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the browser wrote no page"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn connections(&self) -> Value {
        let text = std::fs::read_to_string(self.dirs().config.join("connections.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Every file of the installation but the vault, as text.
    fn files_but_vault(&self) -> String {
        let mut text = String::new();
        let mut stack = vec![self.dir.path().join("home")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().unwrap() != "vault.bin" {
                    text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
        }
        text
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "failed: {}", text(out));
}

/// The tokens the server handed out, from its log.
fn issued_tokens(server: &SupportServer) -> Vec<String> {
    log(server)
        .iter()
        .filter_map(|e| e["authorization"].as_str())
        .map(|a| a.trim_start_matches("Bearer ").to_string())
        .collect()
}

#[test]
fn logging_in_through_the_browser_uses_pkce_and_keeps_tokens_in_the_vault() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    let out = home.login("crm");
    assert_ok(&out);
    assert!(
        text(&out).contains("crm: logged in as analyst@example.com"),
        "{}",
        text(&out)
    );
    assert!(home.page().contains("Signed in"), "{}", home.page());

    // What the browser asked for and what the app sent the token endpoint.
    let authorize = &requests_to(&server, "/services/oauth2/authorize")[0]["query"];
    assert_eq!(authorize["client_id"], CLIENT_ID);
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["scope"], "api id refresh_token");
    let redirect = authorize["redirect_uri"].as_str().unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"));
    let token = &token_requests(&server)[0]["form"];
    assert_eq!(token["grant_type"], "authorization_code");
    assert_eq!(token["redirect_uri"], redirect);
    assert_eq!(token["client_secret"], CLIENT_SECRET);
    assert!(token["code_verifier"].as_str().unwrap().len() >= 43);

    // The non-secret half: who, where, until when. No secret in any file but the vault.
    let connections = home.connections();
    assert_eq!(
        connections["crm"]["status"]["identity"],
        "analyst@example.com"
    );
    assert_eq!(connections["crm"]["settings"]["instance_url"], server.url());
    let files = home.files_but_vault();
    let vault_bytes = std::fs::read(home.dirs().config.join("vault.bin")).unwrap();
    let vault_text = String::from_utf8_lossy(&vault_bytes);
    let tokens = issued_tokens(&server);
    assert!(!tokens.is_empty());
    for secret in tokens.iter().map(String::as_str).chain([CLIENT_SECRET]) {
        assert!(!files.contains(secret), "a secret is in a file");
        assert!(
            !vault_text.contains(secret),
            "the vault holds a secret in the clear"
        );
        assert!(!text(&out).contains(secret));
    }

    // The connection works, and the list says who it is.
    let out = home.run(&["connection", "test", "crm"]);
    assert_ok(&out);
    assert!(
        text(&out).contains("signed in as analyst@example.com"),
        "{}",
        text(&out)
    );
    let list = text(&home.run(&["connection", "list"]));
    assert!(
        list.contains("crm") && list.contains("analyst@example.com") && list.contains("ready"),
        "{list}"
    );
}

#[test]
fn a_denied_login_and_a_forged_state_are_refused_in_words() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");

    server.control(json!({"mode": "deny"}));
    let out = home.login("crm");
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "access was denied at the service (access_denied): end-user denied authorization"
        ),
        "{}",
        text(&out)
    );
    assert!(home.page().contains("Not signed in"));
    assert!(token_requests(&server).is_empty());

    std::fs::remove_file(home.dir.path().join("page.html")).unwrap();
    server.control(json!({"mode": "wrong_state"}));
    let out = home.login("crm");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("did not carry the state Tributary sent"),
        "{}",
        text(&out)
    );
    // The code that came with the forged state was never exchanged.
    assert!(token_requests(&server).is_empty());
    assert!(home.connections()["crm"].get("status").is_none());
}

#[test]
fn a_login_nobody_finishes_times_out() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    let out = home
        .command(&["connection", "login", "crm", "--timeout", "2"])
        .env("BROWSER", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the login was not finished within 2 s"),
        "{}",
        text(&out)
    );
    // The URL to paste is shown when no browser opens.
    assert!(text(&out).contains("/services/oauth2/authorize?"));
}

#[test]
fn tokens_refresh_ahead_of_expiry_and_rotated_refresh_tokens_are_kept() {
    let server = start_server();
    server.control(json!({"rotate": true, "expires_in": 3600}));
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    assert_ok(&home.login("crm"));
    let first_refresh = token_requests(&server).len();

    // An access token a minute from expiry is replaced before it is used.
    let expire_soon = |home: &Home| {
        let path = home.dirs().config.join("connections.json");
        let mut all = home.connections();
        let soon = chrono::Utc::now() + chrono::Duration::seconds(60);
        all["crm"]["status"]["expires_at"] = json!(soon.to_rfc3339());
        std::fs::write(&path, all.to_string()).unwrap();
    };
    for round in 0..2 {
        expire_soon(&home);
        let out = home.run(&["connection", "test", "crm"]);
        assert_ok(&out);
        let tokens = token_requests(&server);
        assert_eq!(tokens.len(), first_refresh + round + 1);
        assert_eq!(
            tokens.last().unwrap()["form"]["grant_type"],
            "refresh_token"
        );
        // No request ever went out with a stale token.
        assert!(log(&server).iter().all(|e| e["status"] != 401));
    }
    // The second refresh used the token the first one rotated in: had the old one been
    // kept, the server (which forgets a rotated token) would have refused it.
    let tokens = token_requests(&server);
    let used: Vec<_> = tokens[1..]
        .iter()
        .map(|t| t["form"]["refresh_token"].clone())
        .collect();
    assert_ne!(used[0], used[1]);
    let expires = home.connections()["crm"]["status"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    let expires = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::minutes(50));
}

#[test]
fn a_refused_refresh_asks_for_a_new_login_naming_the_connection() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    assert_ok(&home.login("crm"));
    server.control(json!({"revoke_access_tokens": true, "fail_refresh": true}));
    let out = home.run(&["connection", "test", "crm"]);
    assert!(!out.status.success());
    let words = text(&out);
    assert!(
        words.contains("the connection `crm` needs a new login"),
        "{words}"
    );
    assert!(words.contains("invalid_grant"), "{words}");
    assert!(words.contains("tributary connection login crm"), "{words}");
    let list = text(&home.run(&["connection", "list"]));
    assert!(list.contains("needs login"), "{list}");
    // A new login clears it.
    server.control(json!({"fail_refresh": false}));
    assert_ok(&home.login("crm"));
    assert!(text(&home.run(&["connection", "list"])).contains("ready"));
}

/// Pages through `/api/items` as a connector does, following `next`.
async fn pages(session: &Session, server: &SupportServer, revoke_after_first: bool) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut next = Some("/api/items?page=1".to_string());
    let mut first = true;
    while let Some(path) = next {
        let url = format!("{}{path}", server.url());
        let response = session.send(|c| c.get(&url)).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        ids.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_i64().unwrap()),
        );
        next = body["next"].as_str().map(String::from);
        if first && revoke_after_first {
            // The service ends the session between two pages.
            server.control(json!({"revoke_access_tokens": true}));
        }
        first = false;
    }
    ids
}

#[test]
fn a_401_mid_pagination_refreshes_once_and_asks_for_the_same_page_again() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    assert_ok(&home.login("crm"));
    let dirs = home.dirs();
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let session = service::open(&dirs, "crm").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let ids = runtime.block_on(pages(&session, &server, true));
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    let items: Vec<_> = requests_to(&server, "/api/items");
    let asked: Vec<(String, Option<i64>)> = items
        .iter()
        .map(|e| {
            (
                e["query"]["page"].as_str().unwrap().to_string(),
                e["status"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            ("1".into(), Some(200)),
            ("2".into(), Some(401)),
            ("2".into(), Some(200)),
            ("3".into(), Some(200)),
        ]
    );
    let refreshes = token_requests(&server).len() - 1;
    assert_eq!(refreshes, 1);

    // Eight requests refused at once share one refresh.
    server.control(json!({"revoke_access_tokens": true}));
    let session = Arc::clone(&session);
    let url = format!("{}/api/items?page=1", server.url());
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let session = session.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                session.send(|c| c.get(&url)).await.unwrap().status()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
    });
    assert_eq!(token_requests(&server).len() - 1, refreshes + 1);
}

#[test]
fn client_credentials_api_keys_and_basic_sign_in() {
    let server = start_server();
    let home = Home::new();
    let token_url = format!("{}/services/oauth2/token", server.url());
    let out = home.run_with_input(
        &[
            "connection",
            "add",
            "app",
            "--connector",
            "http",
            "--auth",
            "oauth2_client_credentials",
            "--set",
            &format!("token_url={token_url}"),
            "--set",
            &format!("client_id={CLIENT_ID}"),
        ],
        &format!("{CLIENT_SECRET}\n"),
    );
    assert_ok(&out);
    let out = home.run(&["connection", "test", "app"]);
    assert_ok(&out);
    assert_eq!(
        token_requests(&server)[0]["form"]["grant_type"],
        "client_credentials"
    );

    let out = home.run_with_input(
        &[
            "connection",
            "add",
            "wrong",
            "--connector",
            "http",
            "--auth",
            "oauth2_client_credentials",
            "--set",
            &format!("token_url={token_url}"),
            "--set",
            &format!("client_id={CLIENT_ID}"),
        ],
        "not-the-secret\n",
    );
    assert_ok(&out);
    let out = home.run(&["connection", "test", "wrong"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("invalid_client"), "{}", text(&out));
    assert!(!text(&out).contains("not-the-secret"));

    let add = |name: &str, args: &[&str], secret: &str| {
        let mut all = vec!["connection", "add", name, "--connector", "http"];
        all.extend_from_slice(args);
        assert_ok(&home.run_with_input(&all, &format!("{secret}\n")));
    };
    add(
        "key",
        &["--auth", "api_key", "--set", "key_name=X-Api-Key"],
        "k-123",
    );
    add(
        "query",
        &[
            "--auth",
            "api_key",
            "--set",
            "key_name=api_key",
            "--set",
            "key_in=query",
        ],
        "k-456",
    );
    add(
        "bearer",
        &["--auth", "api_key", "--set", "key_prefix=Bearer "],
        "k-789",
    );
    add(
        "basic",
        &["--auth", "basic", "--set", "username=ana"],
        "pw-1",
    );
    let dirs = home.dirs();
    vault::unlock_shared(&dirs, PASSPHRASE).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let echo = |name: &str| -> Value {
        let session = service::open(&dirs, name).unwrap();
        let url = format!("{}/api/keyed", server.url());
        runtime.block_on(async {
            session
                .send(|c| c.get(&url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    assert_eq!(echo("key")["x_api_key"], "k-123");
    assert_eq!(echo("query")["query"]["api_key"], "k-456");
    assert_eq!(echo("bearer")["authorization"], "Bearer k-789");
    assert_eq!(echo("basic")["authorization"], "Basic YW5hOnB3LTE=");
}

#[test]
fn the_vault_needs_its_passphrase_and_secrets_never_reach_the_logs() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    let out = home
        .command(&["connection", "login", "crm", "--timeout", "60"])
        .env("TRIBUTARY_LOG", "trace")
        .output()
        .unwrap();
    assert_ok(&out);
    let out2 = home
        .command(&["connection", "test", "crm"])
        .env("TRIBUTARY_LOG", "trace")
        .output()
        .unwrap();
    assert_ok(&out2);
    let logs = format!("{}{}", text(&out), text(&out2));
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "tracing was on"
    );
    for secret in issued_tokens(&server)
        .iter()
        .map(String::as_str)
        .chain([CLIENT_SECRET])
    {
        assert!(!logs.contains(secret), "a secret reached the log");
    }

    let wrong = home
        .command(&["connection", "test", "crm"])
        .env("TRIBUTARY_VAULT_PASSPHRASE", "not the passphrase")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        text(&wrong).contains("the vault passphrase is wrong"),
        "{}",
        text(&wrong)
    );
    let none = home
        .command(&["connection", "test", "crm"])
        .env_remove("TRIBUTARY_VAULT_PASSPHRASE")
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(
        text(&none).contains("the vault is locked"),
        "{}",
        text(&none)
    );

    // Removing the connection removes its secrets.
    assert_ok(&home.run(&["connection", "remove", "crm"]));
    let dirs = home.dirs();
    let vault = vault::Vault::unlock(&vault::vault_file(&dirs), PASSPHRASE).unwrap();
    assert!(vault.get("crm", "refresh_token").is_none());
    assert!(vault.get("crm", "client_secret").is_none());
}

#[test]
fn requests_go_through_the_proxy_of_the_app_or_the_environment() {
    let server = start_server();
    let home = Home::new();
    home.add_salesforce(&server, "crm");
    assert_ok(&home.login("crm"));
    let proxied = |proxy: &SupportServer| -> Vec<String> {
        serde_json::from_value(proxy.get("/log")).unwrap()
    };
    let expected = format!("GET {}/services/data/", server.url());

    // The proxy set in the app (its config file).
    let app_proxy = SupportServer::start("proxy.py", &[]);
    std::fs::write(
        home.dirs().config.join("network.json"),
        json!({"proxy": app_proxy.url()}).to_string(),
    )
    .unwrap();
    assert_ok(&home.run(&["connection", "test", "crm"]));
    assert!(
        proxied(&app_proxy).contains(&expected),
        "{:?}",
        proxied(&app_proxy)
    );

    // HTTP_PROXY when the app sets none.
    std::fs::remove_file(home.dirs().config.join("network.json")).unwrap();
    let env_proxy = SupportServer::start("proxy.py", &[]);
    let out = home
        .command(&["connection", "test", "crm"])
        .env("HTTP_PROXY", env_proxy.url())
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        proxied(&env_proxy).contains(&expected),
        "{:?}",
        proxied(&env_proxy)
    );
    assert_eq!(
        proxied(&app_proxy).len(),
        1,
        "the app's proxy is no longer used"
    );
}

mod app {
    //! The Connections window, driven through its accessibility tree with egui_kittest.

    use super::*;
    use common::ui::{shows, wait_for};
    use egui::accesskit::Role;
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;
    use tributary::ui::{AppState, TributaryApp, Worker};

    fn start(home: &Home) -> Harness<'static, TributaryApp> {
        let dirs = home.dirs();
        let mut worker = Worker::new(dirs.clone(), || {});
        // The test is the user pasting the link into a browser.
        worker.open_browser = |_| Ok(());
        let state = AppState::open_initial(dirs, None);
        let app = TributaryApp::new(state, worker);
        let mut harness = Harness::builder()
            .with_size([1440.0, 900.0])
            .build_ui_state(|ui, app: &mut TributaryApp| app.ui(ui), app);
        harness.run_steps(3);
        harness
    }

    /// Replaces what a labelled text field (or password field) holds.
    fn fill(harness: &mut Harness<'static, TributaryApp>, label: &str, text: &str) {
        let role = if harness
            .query_by_role_and_label(Role::TextInput, label)
            .is_some()
        {
            Role::TextInput
        } else {
            Role::PasswordInput
        };
        harness.get_by_role_and_label(role, label).focus();
        harness.run_steps(1);
        harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
        harness.get_by_role_and_label(role, label).type_text(text);
        harness.run_steps(2);
    }

    #[test]
    fn the_connections_window_adds_a_connection_and_logs_it_in_through_the_browser() {
        let server = start_server();
        let home = Home::new();
        let mut harness = start(&home);
        harness.get_by_label("Connections").click();
        // A new window takes a few frames to settle its size and place.
        harness.run_steps(6);
        assert!(shows(&harness, "No connections yet"));

        harness.get_by_label("+ New connection").click();
        harness.run_steps(6);
        fill(&mut harness, "Name", "crm");
        fill(&mut harness, "Login URL", server.url());
        fill(&mut harness, "Consumer key", CLIENT_ID);
        fill(&mut harness, "Client secret", CLIENT_SECRET);
        harness.get_by_label("Save").click();
        harness.run_steps(2);

        // The first secret creates the vault: its passphrase is chosen, twice.
        assert!(shows(&harness, "Choose a passphrase for the vault"));
        fill(&mut harness, "Passphrase", PASSPHRASE);
        fill(&mut harness, "The same again", "something else");
        harness.get_by_label("Create vault").click();
        harness.run_steps(2);
        assert!(shows(&harness, "the two passphrases differ"));
        fill(&mut harness, "The same again", PASSPHRASE);
        harness.get_by_label("Create vault").click();
        harness.run_steps(3);
        assert!(
            shows(&harness, "not logged in"),
            "the list shows the new connection"
        );
        let saved = home.connections();
        assert_eq!(saved["crm"]["settings"]["login_url"], server.url());
        assert!(
            !std::fs::read_to_string(home.dirs().config.join("connections.json"))
                .unwrap()
                .contains(CLIENT_SECRET)
        );

        harness.get_by_label("Log in with browser").click();
        wait_for(&mut harness, "the login URL", |app| {
            app.state
                .connections
                .busy
                .get("crm")
                .is_some_and(|b| b.url.is_some())
        });
        assert!(shows(&harness, "Waiting for the browser"));
        let url = harness.state().state.connections.busy["crm"]
            .url
            .clone()
            .unwrap();
        let status = Command::new(&home.browser).arg(&url).status().unwrap();
        assert!(status.success());
        wait_for(&mut harness, "the login", |app| {
            app.state.connections.outcome.contains_key("crm")
        });
        assert!(
            shows(&harness, "logged in as analyst@example.com"),
            "{:?}",
            harness.state().state.connections.outcome
        );
        assert!(shows(&harness, "ready"));

        harness.get_by_label("Test").click();
        harness.run_steps(2);
        wait_for(&mut harness, "the test", |app| {
            app.state.connections.busy.is_empty()
                && app.state.connections.outcome.contains_key("crm")
        });
        assert!(shows(&harness, "signed in as analyst@example.com"));

        // Delete asks first, then removes the connection and its secrets.
        harness.get_by_label("Delete").click();
        harness.run_steps(2);
        assert!(shows(&harness, "Delete it and its secrets?"));
        harness.get_by_label("Delete").click();
        harness.run_steps(2);
        assert!(shows(&harness, "No connections yet"));
        let vault = vault::Vault::unlock(&vault::vault_file(&home.dirs()), PASSPHRASE).unwrap();
        assert!(vault.get("crm", "refresh_token").is_none());
    }
}
