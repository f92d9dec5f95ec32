//! What each connector needs to sign in: the kinds of sign-in it takes, the settings a
//! connection of it has, and for OAuth its authorize and token endpoints. The New
//! connection form and `tributary connection add` are generated from these entries.

use super::{AuthKind, Connection, Secret};

/// One setting of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub default: Option<&'static str>,
    pub required: bool,
    /// The sign-in kinds it belongs to; empty for all.
    pub kinds: &'static [AuthKind],
    /// Values offered in a list, as (value, label); others can still be typed.
    pub choices: &'static [(&'static str, &'static str)],
    /// Kept exactly as typed, spaces included (`Bearer `); other settings are trimmed.
    pub verbatim: bool,
}

impl Setting {
    pub fn applies_to(&self, kind: AuthKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

/// How a connector's OAuth endpoints are found. `{key}` is filled from the connection's
/// settings, so one entry serves production, sandboxes, My Domains and test servers.
#[derive(Debug, Clone, Copy)]
pub struct OAuthEndpoints {
    pub authorize: &'static str,
    pub token: &'static str,
    /// Scopes asked for unless the connection's `scopes` setting says otherwise.
    pub scopes: &'static [&'static str],
    /// Extra parameters of the authorize request.
    pub extra: &'static [(&'static str, &'static str)],
    /// The token answer's `id` is an identity URL that returns `username` (Salesforce).
    pub identity_url_field: Option<&'static str>,
}

/// One connector's sign-in description.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorAuth {
    pub connector: &'static str,
    pub label: &'static str,
    pub kinds: &'static [AuthKind],
    pub settings: &'static [Setting],
    pub oauth: Option<OAuthEndpoints>,
}

const OAUTH: &[AuthKind] = &[AuthKind::OAuth2, AuthKind::OAuth2ClientCredentials];

const fn setting(key: &'static str, label: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        label,
        help,
        default: None,
        required: false,
        kinds: &[],
        choices: &[],
        verbatim: false,
    }
}

/// Every connector that has connections.
pub const CATALOG: &[ConnectorAuth] = &[
    ConnectorAuth {
        connector: "salesforce",
        label: "Salesforce",
        kinds: OAUTH,
        settings: &[
            Setting {
                default: Some("https://login.salesforce.com"),
                required: true,
                choices: &[
                    ("https://login.salesforce.com", "Production"),
                    ("https://test.salesforce.com", "Sandbox"),
                ],
                ..setting(
                    "login_url",
                    "Login URL",
                    "Where users log in: production, a sandbox, or your My Domain URL (client credentials need the My Domain URL).",
                )
            },
            Setting {
                required: true,
                ..setting(
                    "client_id",
                    "Consumer key",
                    "The consumer key of your connected app (Setup, then App Manager).",
                )
            },
            Setting {
                kinds: &[AuthKind::OAuth2],
                ..setting(
                    "callback_port",
                    "Callback port",
                    "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), for services that want the exact redirect URI registered; empty for any free port.",
                )
            },
        ],
        oauth: Some(OAuthEndpoints {
            authorize: "{login_url}/services/oauth2/authorize",
            token: "{login_url}/services/oauth2/token",
            scopes: &["api", "id", "refresh_token"],
            extra: &[],
            identity_url_field: Some("id"),
        }),
    },
    ConnectorAuth {
        connector: "s3",
        label: "Amazon S3",
        kinds: &[AuthKind::None, AuthKind::AccessKeys],
        settings: &[
            setting("region", "Region", "The buckets' region, e.g. eu-west-1."),
            Setting {
                kinds: &[AuthKind::None],
                ..setting(
                    "profile",
                    "Profile",
                    "A profile of ~/.aws/config; empty for the default credential chain.",
                )
            },
            setting(
                "endpoint_url",
                "Endpoint URL",
                "An S3-compatible store (MinIO, Ceph, R2); empty for Amazon S3.",
            ),
        ],
        oauth: None,
    },
    ConnectorAuth {
        connector: "http",
        label: "Any HTTP API",
        kinds: &[
            AuthKind::ApiKey,
            AuthKind::Basic,
            AuthKind::OAuth2,
            AuthKind::OAuth2ClientCredentials,
        ],
        settings: &[
            Setting {
                kinds: &[AuthKind::ApiKey],
                default: Some("Authorization"),
                required: true,
                ..setting(
                    "key_name",
                    "Key name",
                    "The header (or query parameter) that carries the key.",
                )
            },
            Setting {
                kinds: &[AuthKind::ApiKey],
                default: Some("header"),
                choices: &[("header", "Header"), ("query", "Query parameter")],
                ..setting("key_in", "Key in", "Where the key goes.")
            },
            Setting {
                kinds: &[AuthKind::ApiKey],
                verbatim: true,
                ..setting(
                    "key_prefix",
                    "Key prefix",
                    "Text before the key, e.g. `Bearer ` or `Token token=`.",
                )
            },
            Setting {
                kinds: &[AuthKind::Basic],
                required: true,
                ..setting("username", "User name", "")
            },
            Setting {
                kinds: &[AuthKind::OAuth2],
                required: true,
                ..setting(
                    "authorize_url",
                    "Authorize URL",
                    "The service's OAuth 2.0 authorization endpoint.",
                )
            },
            Setting {
                kinds: OAUTH,
                required: true,
                ..setting(
                    "token_url",
                    "Token URL",
                    "The service's OAuth 2.0 token endpoint.",
                )
            },
            Setting {
                kinds: OAUTH,
                required: true,
                ..setting("client_id", "Client id", "")
            },
            Setting {
                kinds: OAUTH,
                ..setting("scopes", "Scopes", "Separated by spaces.")
            },
            Setting {
                kinds: &[AuthKind::OAuth2],
                ..setting(
                    "callback_port",
                    "Callback port",
                    "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback), for services that want the exact redirect URI registered; empty for any free port.",
                )
            },
            Setting {
                ..setting(
                    "test_url",
                    "Test URL",
                    "An address of the API that answers only when signed in (e.g. https://api.example.com/v1/me); Test calls it with these credentials.",
                )
            },
        ],
        oauth: Some(OAuthEndpoints {
            authorize: "{authorize_url}",
            token: "{token_url}",
            scopes: &[],
            extra: &[],
            identity_url_field: None,
        }),
    },
    // Not a service Tributary reaches: the key that signs the webhook requests which
    // start a flow (`"trigger": {"type": "event", "source": "webhook"}`).
    ConnectorAuth {
        connector: "webhook",
        label: "Webhook signing key",
        kinds: &[AuthKind::ApiKey],
        settings: &[],
        oauth: None,
    },
];

/// The catalog entry of a connector.
pub fn find(connector: &str) -> Result<&'static ConnectorAuth, String> {
    CATALOG
        .iter()
        .find(|c| c.connector == connector)
        .ok_or_else(|| {
            let known: Vec<_> = CATALOG.iter().map(|c| c.connector).collect();
            format!(
                "there is no connector `{connector}` with connections; there are: {}",
                known.join(", ")
            )
        })
}

impl ConnectorAuth {
    /// The settings that apply to a kind of sign-in.
    pub fn settings_for(&self, kind: AuthKind) -> impl Iterator<Item = &'static Setting> + '_ {
        self.settings.iter().filter(move |s| s.applies_to(kind))
    }

    /// Whether a connection is complete: its settings (`check_settings`) and the secrets
    /// its kind of sign-in requires.
    pub fn check(
        &self,
        connection: &Connection,
        secrets: &[(String, Secret)],
    ) -> Result<(), String> {
        self.check_settings(connection)?;
        for (field, required) in connection.auth.secret_fields() {
            let given = secrets
                .iter()
                .any(|(k, v)| k == field && !v.expose().is_empty());
            if *required && !given {
                return Err(format!("the secret `{field}` is missing"));
            }
        }
        Ok(())
    }

    /// Whether a connection's non-secret half is complete: its kind is one this connector
    /// takes, required settings are there, URLs are ones we will send secrets to.
    pub fn check_settings(&self, connection: &Connection) -> Result<(), String> {
        if !self.kinds.contains(&connection.auth) {
            let kinds: Vec<_> = self.kinds.iter().map(|k| k.name()).collect();
            return Err(format!(
                "{} connections sign in with {}, not {}",
                self.label,
                kinds.join(" or "),
                connection.auth.name()
            ));
        }
        for setting in self.settings_for(connection.auth) {
            if setting.required && connection.setting(setting.key).is_none() {
                return Err(format!(
                    "the setting `{}` ({}) is missing",
                    setting.key, setting.label
                ));
            }
        }
        for key in connection.settings.keys() {
            if !self.settings.iter().any(|s| s.key == *key) && key != "instance_url" {
                let known: Vec<_> = self.settings_for(connection.auth).map(|s| s.key).collect();
                return Err(format!(
                    "{} connections have no setting `{key}`; they have: {}",
                    self.label,
                    known.join(", ")
                ));
            }
        }
        if connection.auth == AuthKind::OAuth2 {
            super::http::check_url(&self.authorize_url(connection)?)?;
        }
        if connection.auth.uses_tokens() {
            super::http::check_url(&self.token_url(connection)?)?;
        }
        for key in ["login_url", "endpoint_url"] {
            if let Some(url) = connection.setting(key) {
                super::http::check_url(&url)?;
            }
        }
        Ok(())
    }

    /// The authorize URL of a connection, its settings filled in.
    pub fn authorize_url(&self, connection: &Connection) -> Result<String, String> {
        self.fill(self.oauth()?.authorize, connection)
    }

    /// The token URL of a connection, its settings filled in.
    pub fn token_url(&self, connection: &Connection) -> Result<String, String> {
        self.fill(self.oauth()?.token, connection)
    }

    fn oauth(&self) -> Result<OAuthEndpoints, String> {
        self.oauth
            .ok_or_else(|| format!("{} connections do not use OAuth", self.label))
    }

    fn fill(&self, template: &str, connection: &Connection) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
            let key = &rest[start + 1..end];
            out.push_str(&rest[..start]);
            let default = self
                .settings
                .iter()
                .find(|s| s.key == key)
                .and_then(|s| s.default)
                .map(String::from);
            let value = connection
                .setting(key)
                .or(default)
                .ok_or_else(|| format!("the setting `{key}` is missing"))?;
            out.push_str(value.trim_end_matches('/'));
            rest = &rest[(end + 1).min(rest.len())..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The scopes to ask for: the connection's own, or the connector's.
    pub fn scopes(&self, connection: &Connection) -> Vec<String> {
        match connection.setting("scopes") {
            Some(s) => s.split_whitespace().map(String::from).collect(),
            None => self
                .oauth
                .map(|o| o.scopes.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let entry = find("salesforce").unwrap();
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
        let entry = find("salesforce").unwrap();
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
        let entry = find("http").unwrap();
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
}
