//! How a service's connections sign in: the kinds of sign-in it takes, the settings a
//! connection of it has, and for OAuth its authorize and token endpoints. Each service
//! describes its own next to its connector; the New connection form and `tributary
//! connection add` are generated from these descriptions.

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

/// A secret of one service beyond its kind of sign-in's (Google Ads' developer token):
/// typed in with the others, kept in the vault, sent in a header of every request.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSecret {
    pub key: &'static str,
    /// The request header it goes in.
    pub header: &'static str,
    /// Whether a connection must have it; one left empty is not sent.
    pub required: bool,
}

/// One connector's sign-in description.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorAuth {
    pub connector: &'static str,
    pub label: &'static str,
    pub kinds: &'static [AuthKind],
    pub settings: &'static [Setting],
    pub oauth: Option<OAuthEndpoints>,
    /// Secrets of the service itself, asked for whatever the kind of sign-in.
    pub secrets: &'static [ServiceSecret],
}

/// Both kinds of OAuth sign-in.
pub const OAUTH: &[AuthKind] = &[AuthKind::OAuth2, AuthKind::OAuth2ClientCredentials];

/// A setting with only its key, label and help; the rest as `..setting(…)` says.
pub const fn setting(key: &'static str, label: &'static str, help: &'static str) -> Setting {
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

impl ConnectorAuth {
    /// The settings that apply to a kind of sign-in.
    pub fn settings_for(&self, kind: AuthKind) -> impl Iterator<Item = &'static Setting> + '_ {
        self.settings.iter().filter(move |s| s.applies_to(kind))
    }

    /// The secrets a connection signing in with `kind` holds, `true` for those that must
    /// be given: the kind's, then the service's own.
    pub fn secret_fields(&self, kind: AuthKind) -> Vec<(&'static str, bool)> {
        let own = self.secrets.iter().map(|s| (s.key, s.required));
        kind.secret_fields().iter().copied().chain(own).collect()
    }

    /// Whether a connection is complete: its settings (`check_settings`) and the secrets
    /// its kind of sign-in requires.
    pub fn check(
        &self,
        connection: &Connection,
        secrets: &[(String, Secret)],
    ) -> Result<(), String> {
        self.check_settings(connection)?;
        for (field, required) in self.secret_fields(connection.auth) {
            let given = secrets
                .iter()
                .any(|(k, v)| k == field && !v.expose().is_empty());
            if required && !given {
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
        for key in ["login_url", "endpoint_url", "instance_url"] {
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
