//! A connection in use: its credentials on every request, its access token refreshed
//! before it expires and after a `401`, a rotated refresh token saved to the vault.
//!
//! One `Session` is shared by everything a run does with a connection. The token sits
//! behind an async lock that is held while a refresh is under way, so requests that find
//! the token stale at the same moment wait for the one refresh instead of each starting
//! their own (which, with services that rotate refresh tokens, would invalidate each
//! other).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::oauth::{self, Endpoints, Tokens};
use super::vault::{self, Vault};
use super::{AuthKind, Connection, ConnectorAuth, Secret};
use crate::paths::Dirs;

/// How long before its expiry a token is replaced; tokens that live less than twice as
/// long are replaced halfway through their life.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

pub struct Session {
    name: String,
    dirs: Dirs,
    connection: Connection,
    entry: &'static ConnectorAuth,
    vault: Option<Arc<Mutex<Vault>>>,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Current>,
}

struct Current {
    access: Option<Secret>,
    expires_at: Option<DateTime<Utc>>,
    ahead: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connection", &self.name)
            .finish()
    }
}

impl Session {
    /// Opens a connection read from the data folder, signed in as its service says
    /// (`entry`); its secrets come from the vault, which must be unlocked (or unlockable
    /// from the environment) unless the connection has none.
    pub fn open(
        dirs: &Dirs,
        name: &str,
        connection: Connection,
        entry: &'static ConnectorAuth,
    ) -> Result<Arc<Session>, String> {
        let vault = if connection.auth == AuthKind::None {
            None
        } else {
            Some(vault::shared(dirs).map_err(|e| format!("the connection `{name}`: {e}"))?)
        };
        let access = vault
            .as_ref()
            .and_then(|v| v.lock().unwrap().get(name, "access_token"));
        Ok(Arc::new(Session {
            name: name.to_string(),
            dirs: dirs.clone(),
            token: tokio::sync::Mutex::new(Current {
                access,
                expires_at: connection.status.expires_at,
                ahead: REFRESH_AHEAD,
            }),
            connection,
            entry,
            vault,
            http: super::http::client(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The HTTP client requests of this connection go through.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn secret(&self, field: &str) -> Option<Secret> {
        self.vault
            .as_ref()
            .and_then(|v| v.lock().unwrap().get(&self.name, field))
    }

    fn endpoints(&self) -> Result<Endpoints, String> {
        Endpoints::of(self.entry, &self.connection, self.secret("client_secret"))
            .map_err(|e| format!("the connection `{}`: {e}", self.name))
    }

    /// A valid access token: the one held, or a new one when it is missing or about to
    /// expire.
    pub async fn access_token(&self) -> Result<Secret, String> {
        let mut current = self.token.lock().await;
        let fresh = current.access.is_some()
            && current.expires_at.is_none_or(|at| {
                let ahead = chrono::Duration::from_std(current.ahead).unwrap_or_default();
                at - ahead > Utc::now()
            });
        if !fresh {
            self.renew(&mut current).await?;
        }
        Ok(current.access.clone().expect("renew sets the token"))
    }

    /// Called after a `401` with the token that was refused: renews it unless another
    /// request already did.
    async fn refused(&self, used: &Secret) -> Result<(), String> {
        let mut current = self.token.lock().await;
        if current.access.as_ref() == Some(used) {
            self.renew(&mut current).await?;
        }
        Ok(())
    }

    /// Renews the access token now, for services that say a token expired in the body of
    /// an answer rather than with a `401` (Slack's `token_expired`).
    pub async fn renew_now(&self) -> Result<(), String> {
        let mut current = self.token.lock().await;
        self.renew(&mut current).await
    }

    async fn renew(&self, current: &mut Current) -> Result<(), String> {
        let name = &self.name;
        let tokens = match self.connection.auth {
            AuthKind::OAuth2 => {
                let Some(refresh) = self.secret("refresh_token") else {
                    return Err(format!(
                        "the connection `{name}` is not logged in: log in in the app (Connections) or with `tributary connection login {name}`"
                    ));
                };
                match oauth::refresh(&self.endpoints()?, &refresh).await {
                    Ok(tokens) => tokens,
                    Err(e) if oauth::needs_login(&e) => {
                        let message = format!(
                            "the connection `{name}` needs a new login: {e}; log in again in the app (Connections) or with `tributary connection login {name}`"
                        );
                        let problem = message.clone();
                        let _ =
                            super::update(&self.dirs, name, |c| c.status.problem = Some(problem));
                        return Err(message);
                    }
                    Err(e) => return Err(format!("the connection `{name}`: {e}")),
                }
            }
            AuthKind::OAuth2ClientCredentials => oauth::client_credentials(&self.endpoints()?)
                .await
                .map_err(|e| format!("the connection `{name}`: {e}"))?,
            AuthKind::ServiceAccount => {
                let key = self.secret("service_account_key").ok_or_else(|| {
                    format!("the connection `{name}` has no service account key in the vault; add the connection again")
                })?;
                let scopes = self.entry.oauth.map_or(&[][..], |o| o.scopes);
                super::service_account::token(&key, scopes)
                    .await
                    .map_err(|e| format!("the connection `{name}`: {e}"))?
            }
            other => {
                return Err(format!(
                    "the connection `{name}` signs in with {}, which has no token to renew",
                    other.name()
                ));
            }
        };
        tracing::info!(connection = %name, "access token renewed");
        self.keep(&tokens)?;
        current.ahead = tokens
            .lifetime
            .map_or(REFRESH_AHEAD, |life| REFRESH_AHEAD.min(life / 2));
        current.expires_at = tokens.expires_at;
        current.access = Some(tokens.access);
        Ok(())
    }

    /// Saves new tokens: the secrets to the vault, the expiry to the connections file.
    fn keep(&self, tokens: &Tokens) -> Result<(), String> {
        keep_tokens(&self.dirs, &self.name, self.vault.as_ref(), tokens, None)
    }

    /// Adds the connection's credentials to a request; returns the token used, if any.
    pub async fn authorize(
        &self,
        request: RequestBuilder,
    ) -> Result<(RequestBuilder, Option<Secret>), String> {
        let name = &self.name;
        let missing = |field: &str| {
            format!("the connection `{name}` has no {field} in the vault; add the connection again")
        };
        let (mut request, token) = match self.connection.auth {
            AuthKind::OAuth2 | AuthKind::OAuth2ClientCredentials | AuthKind::ServiceAccount => {
                let token = self.access_token().await?;
                (request.bearer_auth(token.expose()), Some(token))
            }
            AuthKind::ApiKey => {
                let key = self.secret("api_key").ok_or_else(|| missing("api_key"))?;
                let key_name = self
                    .connection
                    .setting("key_name")
                    .unwrap_or_else(|| "Authorization".into());
                let prefix = self
                    .connection
                    .settings
                    .get("key_prefix")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let value = format!("{prefix}{}", key.expose());
                let request = if self.connection.setting("key_in").as_deref() == Some("query") {
                    request.query(&[(key_name, value)])
                } else {
                    let mut value =
                        reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                            format!("the connection `{name}`: the API key is not valid in a header")
                        })?;
                    value.set_sensitive(true);
                    request.header(key_name, value)
                };
                (request, None)
            }
            AuthKind::Basic => {
                let password = self.secret("password").ok_or_else(|| missing("password"))?;
                let user = self.connection.setting("username").unwrap_or_default();
                (request.basic_auth(user, Some(password.expose())), None)
            }
            AuthKind::None | AuthKind::AccessKeys => (request, None),
        };
        for own in self.entry.secrets {
            let secret = match self.secret(own.key) {
                Some(secret) if !secret.expose().is_empty() => secret,
                _ if own.required => return Err(missing(own.key)),
                _ => continue,
            };
            let mut value =
                reqwest::header::HeaderValue::from_str(secret.expose()).map_err(|_| {
                    format!(
                        "the connection `{name}`: the {} is not valid in a header",
                        own.key.replace('_', " ")
                    )
                })?;
            value.set_sensitive(true);
            request = request.header(own.header, value);
        }
        Ok((request, token))
    }

    /// Sends a request with the connection's credentials. A `401` to a token renews the
    /// token (once) and sends the request again, so a token revoked or expired in the
    /// middle of a long pagination costs one request, not the run.
    pub async fn send(
        &self,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, SendError> {
        let (request, token) = self
            .authorize(make(&self.http))
            .await
            .map_err(SendError::Auth)?;
        let response = request.send().await.map_err(SendError::Http)?;
        match token {
            Some(token) if response.status() == StatusCode::UNAUTHORIZED => {
                tracing::info!(connection = %self.name, "401: renewing the token and sending again");
                self.refused(&token).await.map_err(SendError::Auth)?;
                let (request, _) = self
                    .authorize(make(&self.http))
                    .await
                    .map_err(SendError::Auth)?;
                request.send().await.map_err(SendError::Http)
            }
            _ => Ok(response),
        }
    }
}

/// Why a request of a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Http(reqwest::Error),
}

/// Saves tokens from a login or a refresh: access and (possibly rotated) refresh token to
/// the vault, their expiry and who they belong to in the connections file.
pub fn keep_tokens(
    dirs: &Dirs,
    name: &str,
    vault: Option<&Arc<Mutex<Vault>>>,
    tokens: &Tokens,
    login: Option<(Option<String>, DateTime<Utc>)>,
) -> Result<(), String> {
    let vault =
        vault.ok_or_else(|| format!("the connection `{name}` has no vault to keep tokens in"))?;
    let mut fields: Vec<(&str, &Secret)> = vec![("access_token", &tokens.access)];
    if let Some(refresh) = &tokens.refresh {
        fields.push(("refresh_token", refresh));
    }
    vault
        .lock()
        .unwrap()
        .set(name, &fields)
        .map_err(|e| e.to_string())?;
    let instance_url = tokens
        .extra
        .get("instance_url")
        .and_then(|v| v.as_str())
        .filter(|u| super::http::check_url(u).is_ok())
        .map(String::from);
    super::update(dirs, name, |c| {
        c.status.expires_at = tokens.expires_at;
        c.status.problem = None;
        if let Some((identity, at)) = login {
            c.status.identity = identity;
            c.status.logged_in_at = Some(at);
        }
        if let Some(url) = instance_url {
            c.settings.insert("instance_url".into(), url.into());
        }
    })?;
    Ok(())
}
