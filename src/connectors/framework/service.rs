//! A *service*: what a connector knows about one app or store that connections are made
//! for. Everything that treats connections alike — the New connection form, `tributary
//! connection add|test|login`, sessions that refresh tokens — finds the service of a
//! connection here, by the connector name the connection carries, and nowhere else.

use std::sync::Arc;

use crate::auth::session::Session;
use crate::auth::{self, Connection, ConnectorAuth};
use crate::node::BoxFuture;
use crate::paths::Dirs;

use super::ConnectorError;
use super::catalog::{Catalog, Client, Operation};
use crate::conditions::Operator;

/// One service of the framework. A connector module defines one and lists it in
/// [`crate::connectors::services`], or is declared by a manifest.
pub trait Service: Send + Sync + 'static {
    /// How its connections sign in; its `connector` is the service's id, the name
    /// connections, `tributary connection add --connector` and node types use.
    fn sign_in(&self) -> &'static ConnectorAuth;

    /// Checks that a connection works with a request that needs its credentials, and
    /// says what it found ("signed in as …", "3 buckets visible"). The default suits
    /// services whose sign-in is all there is to check: it fetches a token where the
    /// connection uses tokens, and calls the connection's `test_url` when it has one.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let opened = open(dirs, name);
        let (dirs, name) = (dirs.clone(), name.to_string());
        Box::pin(async move {
            let session = opened?;
            check_sign_in(&dirs, &session, &name).await
        })
    }

    /// The service's entities, for services whose records the generic `source.<id>` node
    /// reads; others have none.
    fn catalog(&self) -> Option<&'static dyn Catalog> {
        None
    }

    /// What the service calls its entities, in the palette and the inspector: `table`,
    /// `object`, `conversation`.
    fn entity_word(&self) -> &'static str {
        "object"
    }

    /// The word for several entities, where adding an `s` would be wrong (`properties`).
    fn entity_plural(&self) -> Option<&'static str> {
        None
    }

    /// The symbol of its nodes in the palette and on the canvas.
    fn icon(&self) -> &'static str {
        "🔌"
    }

    /// What its nodes can do, for `tributary connectors` and the docs.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
}

/// What a service's nodes can do, said once per service.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Capabilities {
    /// It lists its entities to choose from and describes their fields.
    pub entities: bool,
    /// The condition operators it applies itself (on the fields that allow them).
    pub filters: &'static [Operator],
    /// It can read only what changed since the last run.
    pub incremental: bool,
    /// The writes its destination takes.
    pub writes: &'static [Operation],
}

/// Every operator a condition has.
pub const ALL_OPERATORS: &[Operator] = &[
    Operator::EqualTo,
    Operator::NotEqualTo,
    Operator::LessThan,
    Operator::GreaterThan,
    Operator::LessThanOrEqualTo,
    Operator::GreaterThanOrEqualTo,
    Operator::Contains,
    Operator::Between,
];

impl dyn Service {
    /// The id connections carry.
    pub fn id(&self) -> &'static str {
        self.sign_in().connector
    }

    /// What the generic nodes say of the service's entities: one and several. Made once
    /// per node type, and kept for the life of the process as the registry is.
    pub fn entities(&self) -> crate::node::Entities {
        let word = self.entity_word();
        crate::node::Entities {
            setting: "entity",
            word,
            plural: self
                .entity_plural()
                .unwrap_or_else(|| Box::leak(format!("{word}s").into_boxed_str())),
        }
    }
}

/// The service a connector name stands for.
pub fn find(id: &str) -> Result<&'static dyn Service, String> {
    super::super::services()
        .iter()
        .copied()
        .find(|s| s.id() == id)
        .ok_or_else(|| {
            let known: Vec<_> = super::super::services().iter().map(|s| s.id()).collect();
            format!(
                "there is no connector `{id}` with connections; there are: {}",
                known.join(", ")
            )
        })
}

/// How connections of service `id` sign in.
pub fn sign_in(id: &str) -> Result<&'static ConnectorAuth, String> {
    find(id).map(|s| s.sign_in())
}

/// Every service's sign-in, in the order the New connection form offers them.
pub fn sign_ins() -> impl Iterator<Item = &'static ConnectorAuth> {
    super::super::services().iter().map(|s| s.sign_in())
}

/// Opens a connection by name with its service's sign-in: the session every request of a
/// connector goes through.
pub fn open(dirs: &Dirs, name: &str) -> Result<Arc<Session>, ConnectorError> {
    let connection = auth::get(dirs, name).map_err(ConnectorError::fatal)?;
    let service = find(&connection.connector).map_err(ConnectorError::fatal)?;
    Session::open(dirs, name, connection, service.sign_in()).map_err(ConnectorError::auth)
}

/// A connection opened for `service`, with the base URL of its API: the connection's
/// `instance_url`, or the service's own address when it has one.
pub fn client(service: &dyn Service, dirs: &Dirs, name: &str) -> Result<Client, ConnectorError> {
    let session = open_as(dirs, name, service.id())?;
    let sign_in = service.sign_in();
    let base = session
        .connection()
        .setting("instance_url")
        .or_else(|| {
            let setting = sign_in.settings.iter().find(|s| s.key == "instance_url")?;
            setting.default.map(String::from)
        })
        .ok_or_else(|| match session.connection().auth {
            // An OAuth login learns the instance from the token's answer (Salesforce).
            auth::AuthKind::OAuth2 => ConnectorError::auth(format!(
                "the connection `{name}` has not logged in yet: log in in the app (Connections) or with `tributary connection login {name}`"
            )),
            _ => ConnectorError::fatal(format!(
                "the connection `{name}` has no instance URL (`instance_url`): the address of its {} API",
                sign_in.label
            )),
        })?;
    auth::http::check_url(&base).map_err(ConnectorError::fatal)?;
    Ok(Client::new(name, session, base))
}

/// Opens a connection that must be of service `id`, for nodes of that service.
pub fn open_as(dirs: &Dirs, name: &str, id: &str) -> Result<Arc<Session>, ConnectorError> {
    let session = open(dirs, name)?;
    let found = &session.connection().connector;
    if found != id {
        let label = find(id).map_or(id, |s| s.sign_in().label);
        return Err(ConnectorError::fatal(format!(
            "the connection `{name}` is for {found}, not {label}"
        )));
    }
    Ok(session)
}

/// [`Service::check`]'s default: the connection's test URL when it has one, else a fresh
/// token when it uses tokens, else the word that its secrets are kept.
pub async fn check_sign_in(
    dirs: &Dirs,
    session: &Session,
    name: &str,
) -> Result<String, ConnectorError> {
    let connection: &Connection = session.connection();
    if let Some(url) = connection.setting("test_url") {
        return test_url(session, name, &url).await;
    }
    if !connection.auth.uses_tokens() {
        return Ok(format!(
            "the connection `{name}` has its secrets in the vault; the service checks them on the first request"
        ));
    }
    session.access_token().await.map_err(ConnectorError::auth)?;
    Ok(signed_in(dirs, name))
}

/// "signed in as who, valid until when", from the connection as saved after a token
/// was fetched.
pub fn signed_in(dirs: &Dirs, name: &str) -> String {
    let Ok(connection) = auth::get(dirs, name) else {
        return "signed in".into();
    };
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
    format!("signed in{who}{until}")
}

/// Calls the connection's test URL, signed as every request of it is, and says how the
/// service answered.
async fn test_url(session: &Session, name: &str, url: &str) -> Result<String, ConnectorError> {
    auth::http::check_url(url).map_err(ConnectorError::fatal)?;
    let response = session
        .send(|c| c.get(url))
        .await
        .map_err(|e| ConnectorError::transient(format!("the connection `{name}`: {e}")))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => Ok(format!("{url} answered {status} to these credentials")),
        401 | 403 => Err(ConnectorError::auth(format!(
            "the connection `{name}`: {url} refused the credentials ({status}); check the key, the password or the login"
        ))),
        _ => Err(ConnectorError::fatal(format!(
            "the connection `{name}`: {url} answered {status}; is it an address of the API?"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthKind, Secret};

    fn salesforce(login: Option<&str>) -> Connection {
        let mut settings = std::collections::BTreeMap::new();
        settings.insert("client_id".into(), "3MVG9".into());
        if let Some(login) = login {
            settings.insert("login_url".into(), login.into());
        }
        Connection {
            connector: "salesforce".into(),
            auth: AuthKind::OAuth2,
            settings,
            status: Default::default(),
        }
    }

    #[test]
    fn endpoints_come_from_the_login_url_or_its_default() {
        let entry = sign_in("salesforce").unwrap();
        assert_eq!(
            entry.authorize_url(&salesforce(None)).unwrap(),
            "https://login.salesforce.com/services/oauth2/authorize"
        );
        assert_eq!(
            entry.token_url(&salesforce(None)).unwrap(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        let sandbox = salesforce(Some("https://acme--uat.sandbox.my.salesforce.com/"));
        assert_eq!(
            entry.token_url(&sandbox).unwrap(),
            "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token"
        );
    }

    #[test]
    fn plain_http_to_another_machine_is_refused() {
        let entry = sign_in("salesforce").unwrap();
        let err = entry
            .check(&salesforce(Some("http://login.example.com")), &[])
            .unwrap_err();
        assert!(err.contains("plain HTTP"), "{err}");
        entry
            .check(&salesforce(Some("http://127.0.0.1:8080")), &[])
            .unwrap();
    }

    #[test]
    fn missing_secrets_and_unknown_settings_are_named() {
        let entry = sign_in("http").unwrap();
        let mut c = salesforce(None);
        c.connector = "http".into();
        c.auth = AuthKind::ApiKey;
        c.settings.clear();
        c.settings.insert("key_name".into(), "X-Api-Key".into());
        assert_eq!(
            entry.check(&c, &[]).unwrap_err(),
            "the secret `api_key` is missing"
        );
        c.settings.insert("colour".into(), "red".into());
        let err = entry
            .check(&c, &[("api_key".into(), Secret::new("k"))])
            .unwrap_err();
        assert!(err.contains("no setting `colour`"), "{err}");
    }

    #[test]
    fn every_connection_a_node_names_is_of_a_registered_service() {
        let schema = crate::schema::flow_schema();
        let mut named = Vec::new();
        find_connections(&schema, &mut named);
        assert!(named.contains(&"salesforce".to_string()), "{named:?}");
        for id in named {
            find(&id).unwrap_or_else(|e| panic!("{e}"));
        }
        let ids: Vec<_> = crate::connectors::services()
            .iter()
            .map(|s| s.id())
            .collect();
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(ids.len(), unique.len(), "one service per id: {ids:?}");
    }

    fn find_connections(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(id) = map.get("x-connection").and_then(|v| v.as_str()) {
                    out.push(id.to_string());
                }
                map.values().for_each(|v| find_connections(v, out));
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| find_connections(v, out)),
            _ => {}
        }
    }
}
