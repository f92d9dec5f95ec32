//! PostgreSQL (and the databases that speak its wire protocol): connections made in the
//! Connections window or with `tributary connection add --connector postgres`, their
//! password kept in the vault, and the `destination.postgres` node that loads a table.
//!
//! Records and passwords travel over TLS unless the server is on this machine: a
//! connection to another host with `sslmode` `disable` is refused.

pub mod copy;
pub mod destination;
pub mod sql;

use crate::pg_tls::is_local;

use tokio_postgres::error::SqlState;

use crate::auth::sign_in::{Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth, vault};
use crate::connectors::framework::{ConnectorError, Service};
use crate::node::BoxFuture;
use crate::paths::Dirs;

/// The connector name connections carry.
pub const CONNECTOR: &str = "postgres";

pub struct Postgres;

impl Service for Postgres {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    fn icon(&self) -> &'static str {
        "🐘"
    }

    fn entity_word(&self) -> &'static str {
        "table"
    }

    /// Signs in and says as whom, to which database, on which server.
    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let target = Target::of_connection(dirs, name);
        Box::pin(async move {
            let target = target?;
            let client = target.connect().await?;
            let row = client
                .query_one(
                    "SELECT current_user::text, current_database()::text, split_part(version(), ' ', 2)",
                    &[],
                )
                .await
                .map_err(|e| target.in_words(&e))?;
            let (user, database, version): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            Ok(format!(
                "signed in as {user} to the database {database} on {} (PostgreSQL {version}, {})",
                target.address(),
                if target.tls == SslMode::Disable {
                    "not encrypted: this machine"
                } else {
                    "encrypted"
                }
            ))
        })
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: CONNECTOR,
    label: "PostgreSQL",
    kinds: &[AuthKind::Basic],
    settings: &[
        Setting {
            required: true,
            ..setting(
                "host",
                "Host",
                "The server's name or address, e.g. db.example.com, or an Amazon Redshift or RDS endpoint.",
            )
        },
        Setting {
            default: Some("5432"),
            ..setting("port", "Port", "5432 unless the server says otherwise.")
        },
        Setting {
            required: true,
            ..setting(
                "database",
                "Database",
                "The database to load, e.g. analytics.",
            )
        },
        Setting {
            required: true,
            ..setting(
                "username",
                "User name",
                "A user allowed to write the tables.",
            )
        },
        Setting {
            choices: &[
                (
                    "verify-full",
                    "verify-full: encrypted, the server's certificate checked",
                ),
                ("require", "require: encrypted, the certificate not checked"),
                ("disable", "disable: not encrypted (only to this machine)"),
            ],
            ..setting(
                "sslmode",
                "Encryption",
                "verify-full unless the server is this machine, where it is disable.",
            )
        },
        setting(
            "root_cert",
            "Trusted certificate",
            "A PEM file of the authorities to trust besides the system's, e.g. Amazon RDS's global-bundle.pem.",
        ),
    ],
    oauth: None,
    secrets: &[],
};

/// How the connection is encrypted: `sslmode` in libpq's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// Encrypted, but any certificate is accepted (libpq's `require`).
    Require,
    VerifyFull,
}

/// Where a connection leads and how to sign in: everything but the password is from the
/// connection's settings; the password is from the vault.
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub tls: SslMode,
    root_cert: Option<String>,
    password: Option<crate::auth::Secret>,
}

impl Target {
    pub fn of_connection(dirs: &Dirs, name: &str) -> Result<Target, ConnectorError> {
        let connection = crate::auth::get(dirs, name).map_err(ConnectorError::fatal)?;
        if connection.connector != CONNECTOR {
            return Err(ConnectorError::fatal(format!(
                "the connection `{name}` is for {}, not PostgreSQL",
                connection.connector
            )));
        }
        let text = |key: &str| connection.setting(key);
        let needed = |key: &str| {
            text(key).ok_or_else(|| {
                ConnectorError::fatal(format!("the connection `{name}` has no `{key}`"))
            })
        };
        let host = needed("host")?;
        let port = match text("port") {
            None => 5432,
            Some(p) => p.parse().map_err(|_| {
                ConnectorError::fatal(format!(
                    "the connection `{name}`: the port `{p}` is not a port number"
                ))
            })?,
        };
        let local = is_local(&host);
        let tls = match text("sslmode").as_deref() {
            None if local => SslMode::Disable,
            None | Some("verify-full") => SslMode::VerifyFull,
            Some("require") => SslMode::Require,
            Some("disable") if local => SslMode::Disable,
            Some("disable") => {
                return Err(ConnectorError::fatal(format!(
                    "the connection `{name}`: `sslmode` disable would send the password and the records to {host} unencrypted; use require or verify-full (disable is allowed only to this machine)"
                )));
            }
            Some(other) => {
                return Err(ConnectorError::fatal(format!(
                    "the connection `{name}`: `sslmode` is `{other}`; it takes verify-full, require or disable"
                )));
            }
        };
        let password = match connection.auth {
            AuthKind::Basic => {
                let vault = vault::shared(dirs)
                    .map_err(|e| ConnectorError::auth(format!("the connection `{name}`: {e}")))?;
                let password = vault.lock().unwrap().get(name, "password");
                Some(password.ok_or_else(|| {
                    ConnectorError::auth(format!(
                        "the connection `{name}` has no password in the vault; add the connection again"
                    ))
                })?)
            }
            _ => None,
        };
        Ok(Target {
            name: name.to_string(),
            host,
            port,
            database: needed("database")?,
            user: needed("username")?,
            tls,
            root_cert: text("root_cert"),
            password,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Where output went, for run records: never the password.
    pub fn location(&self, schema: &str, table: &str) -> String {
        format!(
            "postgres://{}/{}/{schema}.{table}",
            self.address(),
            self.database
        )
    }

    /// Signs in. The session speaks UTC and ISO dates, which the loading relies on.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ConnectorError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .application_name("tributary")
            .connect_timeout(std::time::Duration::from_secs(15));
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        let client = match self.tls {
            SslMode::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| self.in_words(&e))?;
                tokio::spawn(connection);
                client
            }
            mode => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = crate::pg_tls::connector(
                    mode == SslMode::VerifyFull,
                    self.root_cert.as_deref(),
                )
                .map_err(|e| {
                    ConnectorError::fatal(format!("the connection `{}`: {e}", self.name))
                })?;
                let (client, connection) =
                    config.connect(tls).await.map_err(|e| self.in_words(&e))?;
                tokio::spawn(connection);
                client
            }
        };
        client
            .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO'")
            .await
            .map_err(|e| self.in_words(&e))?;
        Ok(client)
    }

    /// A failure of the server or the way to it, in words naming the connection, and of
    /// the kind that says whether a later run may succeed.
    pub fn in_words(&self, e: &tokio_postgres::Error) -> ConnectorError {
        let name = &self.name;
        let Some(db) = e.as_db_error() else {
            // Never reached the server, or lost it: the network, the server down.
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            if cause.contains("certificate") {
                return ConnectorError::fatal(format!(
                    "the connection `{name}`: the certificate of {} is not trusted ({cause}); set `root_cert` to the PEM file of the authority that signed it, or `sslmode` to require to encrypt without checking it",
                    self.address()
                ));
            }
            if cause.contains("does not support TLS") {
                return ConnectorError::fatal(format!(
                    "the connection `{name}`: {} does not offer encryption; turn on ssl in the server, or, only for a server on this machine, set `sslmode` to disable",
                    self.address()
                ));
            }
            return ConnectorError::transient(format!(
                "the connection `{name}`: cannot reach PostgreSQL at {}: {cause}",
                self.address()
            ));
        };
        let code = db.code();
        let mut said = db.message().to_string();
        if let Some(detail) = db.detail() {
            said = format!("{said} ({detail})");
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            ConnectorError::auth(format!(
                "the connection `{name}`: {} refused the user `{}` and its password: {said}",
                self.address(),
                self.user
            ))
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            ConnectorError::fatal(format!(
                "the connection `{name}`: there is no database `{}` on {}",
                self.database,
                self.address()
            ))
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            ConnectorError::fatal(format!(
                "the connection `{name}`: the user `{}` may not do this: {said}",
                self.user
            ))
        } else if code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
            ]
            .contains(code)
        {
            ConnectorError::transient(format!("the connection `{name}`: {said}"))
        } else {
            ConnectorError::fatal(format!("the connection `{name}`: {said}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_counts_as_local() {
        for local in [
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "/var/run/postgresql",
        ] {
            assert!(is_local(local), "{local}");
        }
        for remote in ["db.example.com", "10.0.0.5", "localhost.example.com"] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
