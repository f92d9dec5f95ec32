//! Connections: how to reach a service, by name. Flows name a connection; they never hold
//! its settings or secrets.
//!
//! A connection has two halves. Its non-secret half (connector, kind of sign-in, settings
//! such as a login URL or a client id, and what the last login told us: who, until when)
//! lives in `connections.json` in the config folder, where the app can list it without
//! asking for the vault passphrase. Its secret half (client secret, API key, password,
//! access and refresh tokens) lives in the encrypted vault (`vault`).

pub mod http;
pub mod oauth;
pub mod service_account;
pub mod session;
pub mod sign_in;
pub mod vault;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::paths::Dirs;
pub use sign_in::ConnectorAuth;
pub use vault::{Secret, VaultError};

/// How a connection signs in, as AppFlow's connector contract names the kinds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Hash, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// Nothing of ours: the service's own environment signs the requests (the AWS
    /// credential chain for S3).
    #[default]
    None,
    /// OAuth 2.0 authorization code with PKCE: the user logs in in the browser.
    #[serde(rename = "oauth2")]
    OAuth2,
    /// OAuth 2.0 client credentials: a server-to-server app with its own secret.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
    /// A key sent in a header or a query parameter.
    ApiKey,
    /// A user name and a password.
    Basic,
    /// An AWS access key id and secret access key.
    AccessKeys,
    /// A Google service account's key file, which signs its own token requests.
    ServiceAccount,
}

impl AuthKind {
    pub const ALL: [AuthKind; 7] = [
        AuthKind::None,
        AuthKind::OAuth2,
        AuthKind::OAuth2ClientCredentials,
        AuthKind::ApiKey,
        AuthKind::Basic,
        AuthKind::AccessKeys,
        AuthKind::ServiceAccount,
    ];

    /// The name flows and `connections.json` use.
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::OAuth2 => "oauth2",
            AuthKind::OAuth2ClientCredentials => "oauth2_client_credentials",
            AuthKind::ApiKey => "api_key",
            AuthKind::Basic => "basic",
            AuthKind::AccessKeys => "access_keys",
            AuthKind::ServiceAccount => "service_account",
        }
    }

    pub fn from_name(name: &str) -> Option<AuthKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What the user sees.
    pub fn label(self) -> &'static str {
        match self {
            AuthKind::None => "Environment (AWS profile or variables)",
            AuthKind::OAuth2 => "Log in with the browser (OAuth 2.0)",
            AuthKind::OAuth2ClientCredentials => "Client id and secret (OAuth 2.0)",
            AuthKind::ApiKey => "API key",
            AuthKind::Basic => "User name and password",
            AuthKind::AccessKeys => "Access key",
            AuthKind::ServiceAccount => "Service account key (JSON file)",
        }
    }

    /// The secrets the user types in for this kind; `true` when one must be given.
    pub fn secret_fields(self) -> &'static [(&'static str, bool)] {
        match self {
            AuthKind::None => &[],
            // Public clients (PKCE without a secret) are the norm for desktop apps, but
            // some services, Salesforce among them, still want the secret.
            AuthKind::OAuth2 => &[("client_secret", false)],
            AuthKind::OAuth2ClientCredentials => &[("client_secret", true)],
            AuthKind::ApiKey => &[("api_key", true)],
            AuthKind::Basic => &[("password", true)],
            AuthKind::AccessKeys => &[("access_key_id", true), ("secret_access_key", true)],
            AuthKind::ServiceAccount => &[("service_account_key", true)],
        }
    }

    /// Whether a token has to be fetched by logging in or from the token endpoint.
    pub fn uses_tokens(self) -> bool {
        matches!(
            self,
            AuthKind::OAuth2 | AuthKind::OAuth2ClientCredentials | AuthKind::ServiceAccount
        )
    }
}

/// One connection's non-secret half, as kept in `connections.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The connector it is for, e.g. `salesforce`.
    pub connector: String,
    /// How it signs in.
    #[serde(default)]
    pub auth: AuthKind,
    /// Settings such as a login URL, a client id or a region.
    #[serde(default)]
    pub settings: BTreeMap<String, serde_json::Value>,
    /// What the last login or token refresh reported.
    #[serde(default, skip_serializing_if = "Status::is_empty")]
    pub status: Status,
}

/// What is known of a connection's sign-in without opening the vault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Who the connection acts as: a user name, an org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_in_at: Option<DateTime<Utc>>,
    /// When the access token stops working; a refresh happens well before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the last refresh failed; cleared by a login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Status {
    fn is_empty(&self) -> bool {
        *self == Status::default()
    }
}

impl Connection {
    /// A text setting, trimmed; `None` when absent or empty.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.settings
            .get(key)
            .and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.trim().to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    }

    /// The connection's state in a few words, for lists.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.status.problem.is_some() {
            return "needs login";
        }
        if !self.auth.uses_tokens() {
            return "ready";
        }
        match (self.status.logged_in_at, self.status.expires_at) {
            (None, _) if self.auth == AuthKind::OAuth2 => "not logged in",
            (_, Some(expiry)) if expiry <= now => "token expired (refreshes on use)",
            _ => "ready",
        }
    }
}

/// The connections file in the config folder.
pub fn connections_file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("connections.json")
}

/// All connections by name; none when the file does not exist yet.
pub fn load(dirs: &Dirs) -> Result<BTreeMap<String, Connection>, String> {
    load_from(&connections_file(dirs))
}

fn load_from(path: &Path) -> Result<BTreeMap<String, Connection>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a valid connections file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// One connection by name, with the names there are when it does not exist.
pub fn get(dirs: &Dirs, name: &str) -> Result<Connection, String> {
    let mut all = load(dirs)?;
    all.remove(name).ok_or_else(|| {
        let names: Vec<_> = all.keys().map(String::as_str).collect();
        format!(
            "there is no connection named `{name}`; {}",
            if names.is_empty() {
                "create one with `tributary connection add`".to_string()
            } else {
                format!("there are: {}", names.join(", "))
            }
        )
    })
}

/// Writes the whole connections file, atomically.
fn save_all(dirs: &Dirs, all: &BTreeMap<String, Connection>) -> Result<(), String> {
    let path = connections_file(dirs);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::create_dir_all(&dirs.config).map_err(fail)?;
    let mut file = tempfile::NamedTempFile::new_in(&dirs.config).map_err(fail)?;
    let mut text = serde_json::to_string_pretty(all).expect("connections serialize");
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.persist(&path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Changes one connection in the file (read, change, write), so that concurrent edits of
/// other connections are kept.
pub fn update(
    dirs: &Dirs,
    name: &str,
    change: impl FnOnce(&mut Connection),
) -> Result<Connection, String> {
    let mut all = load(dirs)?;
    let connection = all
        .get_mut(name)
        .ok_or_else(|| format!("there is no connection named `{name}`"))?;
    change(connection);
    let updated = connection.clone();
    save_all(dirs, &all)?;
    Ok(updated)
}

/// The names flows may use.
pub fn names(dirs: &Dirs) -> Result<Vec<String>, String> {
    Ok(load(dirs)?.into_keys().collect())
}

/// A name flows can carry and a shell can type: letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a connection name: use letters, digits, `-`, `_` or `.` (at most 64)"
        ))
    }
}

/// What a new connection is made of: the non-secret half and the secrets typed in.
pub struct NewConnection {
    pub name: String,
    pub connection: Connection,
    pub secrets: Vec<(String, Secret)>,
}

/// Checks a new connection against how its service signs in and saves both halves.
/// The vault is needed only when there are secrets to keep.
pub fn add(dirs: &Dirs, new: NewConnection, entry: &ConnectorAuth) -> Result<(), String> {
    check_name(&new.name)?;
    entry.check(&new.connection, &new.secrets)?;
    let mut all = load(dirs)?;
    if all.contains_key(&new.name) {
        return Err(format!(
            "a connection named `{}` exists already; remove it first or pick another name",
            new.name
        ));
    }
    let secrets: Vec<(String, Secret)> = new
        .secrets
        .into_iter()
        .filter(|(_, s)| !s.expose().is_empty())
        .collect();
    if !secrets.is_empty() {
        let vault = vault::shared(dirs).map_err(|e| e.to_string())?;
        let fields: Vec<(&str, &Secret)> = secrets.iter().map(|(k, v)| (k.as_str(), v)).collect();
        vault
            .lock()
            .unwrap()
            .set(&new.name, &fields)
            .map_err(|e| e.to_string())?;
    }
    all.insert(new.name, new.connection);
    save_all(dirs, &all)
}

/// Removes a connection and its secrets. Secrets go first: a connection that cannot be
/// forgotten from the vault stays listed so the user can try again.
pub fn remove(dirs: &Dirs, name: &str) -> Result<(), String> {
    let mut all = load(dirs)?;
    if !all.contains_key(name) {
        return Err(format!("there is no connection named `{name}`"));
    }
    if vault::vault_file(dirs).exists() {
        let vault = vault::shared(dirs).map_err(|e| e.to_string())?;
        vault
            .lock()
            .unwrap()
            .remove(name)
            .map_err(|e| e.to_string())?;
    }
    all.remove(name);
    save_all(dirs, &all)
}
