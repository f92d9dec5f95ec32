//! What the Connections window and `tributary connection` do with a connection beyond
//! storing it: log in, and test that it works — each through the connection's service.

use std::time::Duration;

use chrono::Utc;

use super::service;
use crate::auth::oauth::{self, Endpoints, LoginOptions};
use crate::auth::session::keep_tokens;
use crate::auth::{self, AuthKind, Connection, http, vault};
use crate::paths::Dirs;

/// Logs a connection in (browser login or client credentials) and saves the tokens.
/// Returns the connection as saved, with who it is logged in as.
pub async fn login(dirs: &Dirs, name: &str, options: LoginOptions) -> Result<Connection, String> {
    let connection = auth::get(dirs, name)?;
    let entry = service::find(&connection.connector)?.sign_in();
    let vault = vault::shared(dirs).map_err(|e| e.to_string())?;
    let secret = vault.lock().unwrap().get(name, "client_secret");
    let endpoints = Endpoints::of(entry, &connection, secret)?;
    let tokens = match connection.auth {
        AuthKind::OAuth2 => oauth::browser_login(&endpoints, options).await?,
        AuthKind::OAuth2ClientCredentials => oauth::client_credentials(&endpoints).await?,
        AuthKind::ServiceAccount => {
            let key = vault.lock().unwrap().get(name, "service_account_key");
            let key = key.ok_or_else(|| {
                format!("the connection `{name}` has no service account key in the vault")
            })?;
            let scopes = entry.oauth.map_or(&[][..], |o| o.scopes);
            crate::auth::service_account::token(&key, scopes).await?
        }
        other => {
            return Err(format!(
                "the connection `{name}` signs in with {}: there is nothing to log in to",
                other.name()
            ));
        }
    };
    let identity = match entry.oauth.and_then(|o| o.identity_url_field) {
        Some(field) => identity(&tokens, field).await,
        None => None,
    };
    keep_tokens(
        dirs,
        name,
        Some(&vault),
        &tokens,
        Some((identity, Utc::now())),
    )?;
    auth::get(dirs, name)
}

/// Who a token belongs to, from an identity URL in the token answer (Salesforce's `id`).
/// A login that worked is not failed for want of a name, so errors give `None`.
async fn identity(tokens: &oauth::Tokens, field: &str) -> Option<String> {
    let url = tokens.extra.get(field)?.as_str()?;
    http::check_url(url).ok()?;
    let answer: serde_json::Value = http::client()
        .get(url)
        .bearer_auth(tokens.access.expose())
        .header("Accept", "application/json")
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    answer
        .get("username")
        .or_else(|| answer.get("preferred_username"))
        .and_then(|u| u.as_str())
        .map(String::from)
}

/// Checks that a connection can sign in, and says what it found: its service's check.
pub async fn test(dirs: &Dirs, name: &str) -> Result<String, String> {
    let connection = auth::get(dirs, name)?;
    let service = service::find(&connection.connector)?;
    Ok(service.check(dirs, name).await?)
}

/// The login options for a connection: a fixed callback port when its settings name one.
pub fn login_options(
    connection: &Connection,
    timeout: Duration,
    show: Box<dyn Fn(&str) + Send>,
) -> Result<LoginOptions, String> {
    let port = match connection.setting("callback_port") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("the callback port `{p}` is not a port number"))?,
        None => 0,
    };
    Ok(LoginOptions {
        timeout,
        port,
        open: oauth::open_browser,
        show,
    })
}
