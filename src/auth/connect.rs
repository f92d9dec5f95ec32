//! What the Connections window and `tributary connection` do with a connection beyond
//! storing it: log in, and test that it works.

use std::time::Duration;

use chrono::Utc;

use super::oauth::{self, Endpoints, LoginOptions};
use super::session::{Session, keep_tokens};
use super::{AuthKind, Connection, catalog, http, vault};
use crate::paths::Dirs;

/// Logs a connection in (browser login or client credentials) and saves the tokens.
/// Returns the connection as saved, with who it is logged in as.
pub async fn login(dirs: &Dirs, name: &str, options: LoginOptions) -> Result<Connection, String> {
    let connection = super::get(dirs, name)?;
    let entry = catalog::find(&connection.connector)?;
    let vault = vault::shared(dirs).map_err(|e| e.to_string())?;
    let secret = vault.lock().unwrap().get(name, "client_secret");
    let endpoints = Endpoints::of(entry, &connection, secret)?;
    let tokens = match connection.auth {
        AuthKind::OAuth2 => oauth::browser_login(&endpoints, options).await?,
        AuthKind::OAuth2ClientCredentials => oauth::client_credentials(&endpoints).await?,
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
    super::get(dirs, name)
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

/// Checks that a connection can sign in, and says what it found.
pub async fn test(dirs: &Dirs, name: &str) -> Result<String, String> {
    let connection = super::get(dirs, name)?;
    if connection.connector == crate::connectors::s3::CONNECTOR {
        return crate::connectors::s3::test_connection(name).await;
    }
    let session = Session::open(dirs, name)?;
    if let Some(url) = connection.setting("test_url") {
        return test_url(&session, name, &url).await;
    }
    if !connection.auth.uses_tokens() {
        return Ok(format!(
            "the connection `{name}` has its secrets in the vault; the service checks them on the first request"
        ));
    }
    session.access_token().await?;
    let connection = super::get(dirs, name)?;
    if connection.connector == "salesforce" {
        let base = connection
            .setting("instance_url")
            .ok_or_else(|| format!("the connection `{name}` has no instance URL: log in again"))?;
        http::check_url(&base)?;
        let response = session
            .send(|c| c.get(format!("{base}/services/data/")))
            .await
            .map_err(|e| format!("the connection `{name}`: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the connection `{name}`: Salesforce answered {} to a request with a fresh token",
                response.status()
            ));
        }
    }
    let until = connection
        .status
        .expires_at
        .map(|at| format!(", valid until {}", at.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let who = connection
        .status
        .identity
        .map(|who| format!(" as {who}"))
        .unwrap_or_default();
    Ok(format!("signed in{who}{until}"))
}

/// Calls the connection's test URL, signed as every request of it is, and says how the
/// service answered.
async fn test_url(session: &Session, name: &str, url: &str) -> Result<String, String> {
    http::check_url(url)?;
    let response = session
        .send(|c| c.get(url))
        .await
        .map_err(|e| format!("the connection `{name}`: {e}"))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(format!("{url} answered {status} to these credentials")),
        401 | 403 => Err(format!(
            "the connection `{name}`: {url} refused the credentials ({status}); check the key, the password or the login"
        )),
        _ => Err(format!(
            "the connection `{name}`: {url} answered {status}; is it an address of the API?"
        )),
    }
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
