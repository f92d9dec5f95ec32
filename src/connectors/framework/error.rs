//! What went wrong between a connector and its service, by kind: retries, the app's "log in
//! again" state and the service's retry policy each look at the kind, not at the words.

use crate::node::NodeError;

/// The kinds of failure a connector tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The credentials were refused or the sign-in has expired: log in again, or fix the
    /// key or password. Trying again without doing so fails the same way.
    Auth,
    /// The object, record or address does not exist, or the connection may not see it.
    NotFound,
    /// The service asked to slow down for longer than the connector waits.
    RateLimited,
    /// The service refused one record (a validation rule, a missing required field); the
    /// record goes to the error output with the service's words.
    Refused,
    /// No answer, or the service busy or failing (408, 5xx) after every retry: a later run
    /// may succeed.
    Transient,
    /// Anything else: a request the service will never accept as it is.
    Fatal,
}

/// A failure of a connector, with its kind and, when the service answered, its status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub kind: ErrorKind,
    /// The HTTP status the service answered with, when it answered.
    pub status: Option<u16>,
    pub message: String,
}

impl ConnectorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ConnectorError {
            kind,
            status: None,
            message: message.into(),
        }
    }

    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Auth, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fatal, message)
    }

    /// The kind an HTTP status stands for.
    pub fn of_status(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            401 | 403 => ErrorKind::Auth,
            404 | 410 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            408 | 500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        };
        ConnectorError {
            kind,
            status: Some(status),
            message: message.into(),
        }
    }

    /// Whether a later try, without anyone changing anything, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Transient | ErrorKind::RateLimited)
    }

    /// The same failure, its words changed (a service's codes explained).
    pub fn map_message(mut self, words: impl FnOnce(&str) -> String) -> Self {
        self.message = words(&self.message);
        self
    }
}

impl From<ConnectorError> for NodeError {
    fn from(e: ConnectorError) -> Self {
        match e.is_transient() {
            true => NodeError::Transient(e.message),
            false => NodeError::Message(e.message),
        }
    }
}

impl From<ConnectorError> for String {
    fn from(e: ConnectorError) -> Self {
        e.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_have_kinds_and_only_passing_ones_are_retried_later() {
        let kind = |s| ConnectorError::of_status(s, "x").kind;
        assert_eq!(kind(401), ErrorKind::Auth);
        assert_eq!(kind(403), ErrorKind::Auth);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(429), ErrorKind::RateLimited);
        assert_eq!(kind(503), ErrorKind::Transient);
        assert_eq!(kind(400), ErrorKind::Fatal);
        assert!(matches!(
            NodeError::from(ConnectorError::of_status(502, "busy")),
            NodeError::Transient(_)
        ));
        assert!(matches!(
            NodeError::from(ConnectorError::of_status(401, "who?")),
            NodeError::Message(_)
        ));
    }
}
