//! OAuth 2.0: the browser login (authorization code with PKCE, RFC 7636, through a
//! loopback redirect, RFC 8252), client credentials, and refreshing tokens.
//!
//! The login never sees the user's password: the browser talks to the service, which
//! sends the browser back to a listener on `127.0.0.1` with a one-time code. The code is
//! worth nothing without the PKCE verifier that only this process holds, and the random
//! `state` proves the answer belongs to the login this process started.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::sign_in::ConnectorAuth;
use super::{Connection, Secret, http};

/// Fields of the token answer beyond the standard ones, such as Salesforce's
/// `instance_url` and `id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Extra {
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl ExtraTokenFields for Extra {}

type TokenAnswer = StandardTokenResponse<Extra, BasicTokenType>;

type OAuthClient<HasAuthUrl> = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a token endpoint gave.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: Secret,
    /// Absent when the service does not rotate it: the one held stays valid.
    pub refresh: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The lifetime the service gave, for deciding how early to refresh.
    pub lifetime: Option<Duration>,
    /// `instance_url`, `id` and the like.
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Tokens {
    fn from_answer(answer: TokenAnswer) -> Tokens {
        let lifetime = answer.expires_in();
        Tokens {
            access: Secret::new(answer.access_token().secret().clone()),
            refresh: answer
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
            expires_at: lifetime
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| Utc::now() + d),
            lifetime,
            extra: answer.extra_fields().fields.clone(),
        }
    }
}

/// The parts of a connection an OAuth exchange needs.
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub extra: Vec<(String, String)>,
}

impl Endpoints {
    pub fn of(
        entry: &ConnectorAuth,
        connection: &Connection,
        client_secret: Option<Secret>,
    ) -> Result<Endpoints, String> {
        let token = entry.token_url(connection)?;
        http::check_url(&token)?;
        // Only the browser login goes through the authorize endpoint.
        let authorize = match connection.auth {
            super::AuthKind::OAuth2 => entry.authorize_url(connection)?,
            _ => String::new(),
        };
        let client_id = connection
            .setting("client_id")
            .ok_or("the setting `client_id` is missing")?;
        Ok(Endpoints {
            authorize,
            token,
            client_id,
            client_secret,
            scopes: entry.scopes(connection),
            extra: entry
                .oauth
                .map(|o| {
                    o.extra
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn client<A>(
        &self,
        with: impl FnOnce(OAuthClient<EndpointNotSet>) -> OAuthClient<A>,
    ) -> Result<OAuthClient<A>, String>
    where
        A: oauth2::EndpointState,
    {
        let token = TokenUrl::new(self.token.clone()).map_err(|e| format!("the token URL: {e}"))?;
        let mut client = oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(token)
            // Credentials in the form body: every service takes it, not every one takes
            // HTTP Basic.
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Ok(with(client))
    }
}

/// How a browser login is carried out.
pub struct LoginOptions {
    /// How long the user has to finish in the browser.
    pub timeout: Duration,
    /// A fixed port for the redirect, for services that want the exact redirect URI
    /// registered; 0 takes any free port.
    pub port: u16,
    /// Opens the authorize URL; the URL is also handed to `show` so it can be pasted.
    pub open: fn(&str) -> Result<(), String>,
    pub show: Box<dyn Fn(&str) + Send>,
}

/// Logs in through the browser and returns the tokens.
pub async fn browser_login(endpoints: &Endpoints, options: LoginOptions) -> Result<Tokens, String> {
    http::check_url(&endpoints.authorize)?;
    let listener = TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on 127.0.0.1:{} for the login: {e}",
                options.port
            )
        })?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let authorize =
        AuthUrl::new(endpoints.authorize.clone()).map_err(|e| format!("the authorize URL: {e}"))?;
    let client = endpoints.client(|c| {
        c.set_auth_uri(authorize)
            .set_redirect_uri(RedirectUrl::new(redirect.clone()).expect("a loopback URL"))
    })?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(endpoints.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    for (key, value) in &endpoints.extra {
        request = request.add_extra_param(key.clone(), value.clone());
    }
    let (url, state) = request.url();
    (options.show)(url.as_str());
    if let Err(e) = (options.open)(url.as_str()) {
        tracing::warn!("cannot open a browser: {e}");
    }
    let code = wait_for_callback(
        listener,
        state.secret(),
        Instant::now() + options.timeout,
        options.timeout,
    )
    .await?;
    let answer = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http::client())
        .await
        .map_err(|e| token_error("exchanging the login code", &e))?;
    Ok(Tokens::from_answer(answer))
}

/// A new access token for a refresh token.
pub async fn refresh(endpoints: &Endpoints, refresh_token: &Secret) -> Result<Tokens, String> {
    let client = endpoints.client(|c| c)?;
    let answer = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.expose().to_string()))
        .request_async(&http::client())
        .await
        .map_err(|e| token_error("refreshing the access token", &e))?;
    Ok(Tokens::from_answer(answer))
}

/// A token for the app itself (client credentials).
pub async fn client_credentials(endpoints: &Endpoints) -> Result<Tokens, String> {
    let client = endpoints.client(|c| c)?;
    let answer = client
        .exchange_client_credentials()
        .add_scopes(endpoints.scopes.iter().cloned().map(Scope::new))
        .request_async(&http::client())
        .await
        .map_err(|e| token_error("getting a token with the client id and secret", &e))?;
    Ok(Tokens::from_answer(answer))
}

/// Whether a token error means the grant itself is no longer good, so only a new login
/// helps.
pub fn needs_login(message: &str) -> bool {
    message.contains("invalid_grant") || message.contains("unauthorized_client")
}

fn token_error<E: std::error::Error>(
    doing: &str,
    e: &RequestTokenError<E, BasicErrorResponse>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(answer) => {
            let mut text = format!("{doing}: the service said {}", answer.error());
            if let Some(description) = answer.error_description() {
                text.push_str(&format!(" ({description})"));
            }
            text
        }
        RequestTokenError::Request(e) => {
            let mut text = format!("{doing}: the token endpoint cannot be reached: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
        RequestTokenError::Parse(e, _) => {
            format!("{doing}: the token endpoint's answer is not an OAuth token ({e})")
        }
        RequestTokenError::Other(e) => format!("{doing}: {e}"),
    }
}

/// Waits for the browser to come back with the code. Other paths (a browser asking for
/// `/favicon.ico`) get a 404 and the wait goes on; the first `/callback` decides.
async fn wait_for_callback(
    listener: TcpListener,
    state: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, String> {
    loop {
        let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
        let Ok(accepted) = accepted else {
            return Err(format!(
                "the login was not finished within {} s: nothing came back from the browser; log in again",
                timeout.as_secs()
            ));
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let Ok(Some(target)) =
            tokio::time::timeout(Duration::from_secs(10), read_target(&mut stream)).await
        else {
            continue;
        };
        let Ok(url) = oauth2::url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            respond(&mut stream, 400, "Not a valid request.").await;
            continue;
        };
        if url.path() != "/callback" {
            respond(&mut stream, 404, "Nothing here.").await;
            continue;
        }
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        let outcome = callback_outcome(&query, state);
        match &outcome {
            Ok(_) => {
                respond(
                    &mut stream,
                    200,
                    "Signed in. You can close this tab and go back to Tributary.",
                )
                .await
            }
            Err(e) => respond(&mut stream, 400, &format!("Not signed in: {e}.")).await,
        }
        return outcome;
    }
}

/// What one callback means: the code, or why the login failed.
fn callback_outcome(query: &BTreeMap<String, String>, state: &str) -> Result<String, String> {
    // An answer without our state may come from anywhere, whatever else it says.
    let given = query.get("state").map(String::as_str).unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), state.as_bytes()) {
        return Err(
            "the answer to the login did not carry the state Tributary sent, so it may not come from the service; nothing was saved"
                .into(),
        );
    }
    if let Some(error) = query.get("error") {
        let mut text = match error.as_str() {
            "access_denied" => "access was denied at the service (access_denied)".to_string(),
            other => format!("the service refused the login ({other})"),
        };
        if let Some(description) = query.get("error_description") {
            text.push_str(&format!(": {description}"));
        }
        return Err(text);
    }
    query
        .get("code")
        .filter(|c| !c.is_empty())
        .cloned()
        .ok_or_else(|| "the service came back without a code".to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request target of a `GET`, from the request head.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Some(target.to_string()),
        _ => None,
    }
}

async fn respond(stream: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tributary</title></head>\
         <body style=\"font-family:sans-serif;margin:4em auto;max-width:32em\">\
         <h2>Tributary</h2><p>{}</p></body></html>",
        html_escape(message)
    );
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Opens a URL in the user's browser: `$BROWSER` when set (a `:`-separated list of
/// commands, `%s` standing for the URL), else the desktop's opener.
pub fn open_browser(url: &str) -> Result<(), String> {
    if let Ok(browsers) = std::env::var("BROWSER")
        && !browsers.trim().is_empty()
    {
        let mut last = String::new();
        for command in browsers.split(':').filter(|c| !c.trim().is_empty()) {
            let mut words: Vec<String> = command.split_whitespace().map(String::from).collect();
            if words.iter().any(|w| w.contains("%s")) {
                for w in &mut words {
                    *w = w.replace("%s", url);
                }
            } else {
                words.push(url.to_string());
            }
            match spawn(&words) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        return Err(last);
    }
    let words: Vec<String> = if cfg!(target_os = "macos") {
        vec!["open".into(), url.into()]
    } else if cfg!(windows) {
        vec![
            "rundll32".into(),
            "url.dll,FileProtocolHandler".into(),
            url.into(),
        ]
    } else {
        vec!["xdg-open".into(), url.into()]
    };
    spawn(&words)
}

fn spawn(words: &[String]) -> Result<(), String> {
    std::process::Command::new(&words[0])
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start `{}`: {e}", words[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_state_is_checked_before_anything_else() {
        let err =
            callback_outcome(&query(&[("code", "c"), ("state", "forged")]), "s1").unwrap_err();
        assert!(err.contains("did not carry the state"), "{err}");
        let err = callback_outcome(&query(&[("error", "access_denied")]), "s1").unwrap_err();
        assert!(err.contains("did not carry the state"), "{err}");
        let err = callback_outcome(
            &query(&[
                ("error", "access_denied"),
                ("state", "s1"),
                ("error_description", "end-user denied authorization"),
            ]),
            "s1",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "access was denied at the service (access_denied): end-user denied authorization"
        );
        assert_eq!(
            callback_outcome(&query(&[("code", "abc"), ("state", "s1")]), "s1").unwrap(),
            "abc"
        );
    }
}
