//! What every connector that speaks HTTP shares: the connection's credentials on each
//! request (and a token refresh after a `401`, by [`Session`]), retries with exponential
//! backoff and full jitter on `5xx`, timeouts and dropped connections, waiting as long as
//! a `429`'s `Retry-After` (or the vendor's reset header) says, and errors in words that
//! name the URL and what the service answered.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::framework::{ConnectorError, ErrorKind};
use crate::auth::session::{SendError, Session};

/// How hard to try before giving up on a request.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The backoff before the second attempt; it doubles for each one after.
    pub base: Duration,
    /// No single wait is longer than this; a `429` asking for longer fails the request.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(300),
        }
    }
}

/// A client for one service: its connection (if any), the HTTP client and the retry
/// rules. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    session: Option<Arc<Session>>,
    http: reqwest::Client,
    pub retry: Retry,
}

impl Api {
    /// The connection requests are signed with, if any.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_deref()
    }

    /// A client that signs requests with a connection, or none for public APIs.
    pub fn new(session: Option<Arc<Session>>) -> Api {
        let http = match &session {
            Some(s) => s.http().clone(),
            None => crate::auth::http::client(),
        };
        Api {
            session,
            http,
            retry: Retry::default(),
        }
    }

    /// Sends a request until it succeeds, fails for good, or the attempts run out. `make`
    /// builds the request afresh for each attempt.
    pub async fn send(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ConnectorError> {
        self.exchange(what, make, false).await
    }

    /// As [`Api::send`], but a refusal of what was sent (`400`, `403`, `404`, `409`,
    /// `422`) is an answer to read, not an error: a write reads the service's reasons for
    /// refusing a record from its body.
    pub async fn send_for_answer(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ConnectorError> {
        self.exchange(what, make, true).await
    }

    async fn exchange(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
        refusals: bool,
    ) -> Result<Response, ConnectorError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts;
            let sent = match &self.session {
                Some(session) => session.send(&make).await,
                None => make(&self.http).send().await.map_err(SendError::Http),
            };
            let wait = match sent {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) if refusals && is_refusal(response.status()) => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let wait = match status {
                        StatusCode::TOO_MANY_REQUESTS => Some(
                            rate_limit_wait(response.headers())
                                .unwrap_or_else(|| self.backoff(attempt)),
                        ),
                        s if s.is_server_error() => Some(
                            // A 503 may say when to come back, too.
                            rate_limit_wait(response.headers())
                                .unwrap_or_else(|| self.backoff(attempt)),
                        ),
                        StatusCode::REQUEST_TIMEOUT => Some(self.backoff(attempt)),
                        _ => None,
                    };
                    match wait {
                        Some(wait) if !last && wait <= self.retry.max_wait => {
                            tracing::info!(%status, ?wait, attempt, "{what}: retrying");
                            wait
                        }
                        Some(wait) if wait > self.retry.max_wait => {
                            // The body says why (a daily quota, usually): kept for the words.
                            let body = error_body(&response.text().await.unwrap_or_default());
                            return Err(ConnectorError {
                                kind: ErrorKind::RateLimited,
                                status: Some(status.as_u16()),
                                message: format!(
                                    "{what}: the service asks to wait {} s before the next request ({status}), longer than Tributary waits: {}",
                                    wait.as_secs(),
                                    body
                                ),
                            });
                        }
                        _ => return Err(failure(what, response, attempt).await),
                    }
                }
                Err(SendError::Auth(message)) => return Err(ConnectorError::auth(message)),
                Err(SendError::Http(e)) => {
                    let transient = e.is_timeout() || e.is_connect() || e.is_request();
                    if !transient || last {
                        return Err(ConnectorError {
                            kind: match transient {
                                true => ErrorKind::Transient,
                                false => ErrorKind::Fatal,
                            },
                            status: None,
                            message: format!(
                                "{what}: {}{}",
                                innermost(&e),
                                if attempt > 1 {
                                    format!(" (after {attempt} attempts)")
                                } else {
                                    String::new()
                                }
                            ),
                        });
                    }
                    self.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Renews the connection's access token, for an answer that said it expired.
    pub async fn renew(&self) -> Result<(), ConnectorError> {
        match &self.session {
            Some(session) => session.renew_now().await.map_err(ConnectorError::auth),
            None => Err(ConnectorError::auth(
                "the API asks for a sign-in, and the node has no connection",
            )),
        }
    }

    /// A JSON answer, with its headers.
    pub async fn get_json(
        &self,
        what: &str,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(serde_json::Value, HeaderMap), ConnectorError> {
        let response = self.send(what, make).await?;
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| {
            ConnectorError::transient(format!("{what}: the answer broke off: {}", innermost(&e)))
        })?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            ConnectorError::fatal(format!(
                "{what}: the answer is not JSON ({e}): {}",
                preview(&String::from_utf8_lossy(&body))
            ))
        })?;
        Ok((value, headers))
    }

    /// Exponential backoff with full jitter: a random wait up to base × 2^(attempt-1),
    /// so that many clients refused at once do not come back at once.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .retry
            .base
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(self.retry.max_wait);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// A status that refuses what was sent rather than the sender or the moment.
pub fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 403 | 404 | 409 | 422)
}

/// How long a `429` (or `503`) asks to wait: `Retry-After` in seconds or as a date, else
/// the reset headers vendors send (`RateLimit-Reset` and `X-RateLimit-Reset`, as seconds
/// to wait or as a Unix time).
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if let Some(after) = text("retry-after") {
        if let Ok(seconds) = after.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(after) {
            let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
            return Some(wait.to_std().unwrap_or_default());
        }
    }
    for name in ["ratelimit-reset", "x-ratelimit-reset", "x-rate-limit-reset"] {
        if let Some(value) = text(name).and_then(|v| v.parse::<u64>().ok()) {
            let now = chrono::Utc::now().timestamp() as u64;
            // Unix times are large; waits are small.
            let wait = if value > 1_000_000_000 {
                value.saturating_sub(now)
            } else {
                value
            };
            return Some(Duration::from_secs(wait));
        }
    }
    None
}

/// The error of a failed answer: its status and what the body says, shortened.
async fn failure(what: &str, response: Response, attempt: u32) -> ConnectorError {
    let status = response.status();
    let body = error_body(&response.text().await.unwrap_or_default());
    let tries = if attempt > 1 {
        format!(" after {attempt} attempts")
    } else {
        String::new()
    };
    let message = match status {
        StatusCode::UNAUTHORIZED => format!(
            "{what}: the service refused the credentials ({status}){tries}: {}",
            body
        ),
        StatusCode::FORBIDDEN => format!(
            "{what}: the connection may not do this ({status}): {}",
            body
        ),
        StatusCode::NOT_FOUND => format!("{what}: not found ({status}): {}", body),
        _ => format!("{what}: the service answered {status}{tries}: {}", body),
    };
    ConnectorError::of_status(status.as_u16(), message)
}

/// An error's body for its message: a JSON document whole (up to 8 KiB), for the
/// connector that reads it into words (Google's error details run long), anything else
/// shortened.
fn error_body(body: &str) -> String {
    let json = body.len() <= 8192 && serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
    match json {
        true => body.split_whitespace().collect::<Vec<_>>().join(" "),
        false => preview(body),
    }
}

/// The start of a body, on one line, for messages.
pub fn preview(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "(no body)".to_string(),
        None => line,
    }
}

/// The innermost cause of a request error: "connection refused", "dns error".
fn innermost(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn waits_come_from_retry_after_or_the_reset_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(12)));
        let mut h = HeaderMap::new();
        let at = (chrono::Utc::now().timestamp() + 30).to_string();
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&at).unwrap());
        let wait = rate_limit_wait(&h).unwrap();
        assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_stays_under_its_ceiling() {
        let api = Api::new(None);
        for attempt in 1..10 {
            let ceiling = Duration::from_millis(500) * (1 << (attempt - 1));
            assert!(api.backoff(attempt) <= ceiling.min(api.retry.max_wait));
        }
    }
}
