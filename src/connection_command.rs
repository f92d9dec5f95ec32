//! `tributary connection add|list|test|login|remove`, and the vault passphrase prompt the
//! commands that need secrets share.

use crate::console::{errln, out_raw, outln};
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use clap::Subcommand;

use tributary::auth::{self, AuthKind, Connection, NewConnection, Secret, vault};
use tributary::connectors::framework::{connect, service};
use tributary::paths::Dirs;

use crate::parse_param;

#[derive(Subcommand)]
pub enum ConnectionAction {
    /// Add a connection. Settings are given here; secrets (client secret, API key,
    /// password) are asked for at a hidden prompt, or read one per line from standard
    /// input when it is not a terminal.
    Add {
        name: String,
        /// The connector: salesforce, s3, http.
        #[arg(long)]
        connector: String,
        /// How it signs in: oauth2, oauth2_client_credentials, api_key, basic,
        /// access_keys, none. The connector's first kind when left out.
        #[arg(long)]
        auth: Option<String>,
        /// A setting, e.g. `--set login_url=https://test.salesforce.com`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_param)]
        settings: Vec<(String, String)>,
    },
    /// List the connections: connector, who they sign in as, token expiry, state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Check that a connection can sign in.
    Test { name: String },
    /// Log in through the browser (or fetch a client-credentials token).
    Login {
        name: String,
        /// Seconds to wait for the browser to come back.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Remove a connection and its secrets.
    Remove { name: String },
}

pub fn execute(action: ConnectionAction, dirs: &Dirs) -> anyhow::Result<u8> {
    let runtime = || tokio::runtime::Runtime::new();
    match action {
        ConnectionAction::Add {
            name,
            connector,
            auth: kind,
            settings,
        } => {
            let entry = service::sign_in(&connector).map_err(anyhow::Error::msg)?;
            let auth = match kind {
                Some(k) => AuthKind::from_name(&k).ok_or_else(|| {
                    let kinds: Vec<_> = entry.kinds.iter().map(|k| k.name()).collect();
                    anyhow::anyhow!(
                        "`{k}` is not a kind of sign-in; {} takes {}",
                        entry.label,
                        kinds.join(", ")
                    )
                })?,
                None => entry.kinds[0],
            };
            let mut connection = Connection {
                connector,
                auth,
                settings: Default::default(),
                status: Default::default(),
            };
            for setting in entry.settings_for(auth) {
                if let Some(default) = setting.default {
                    connection
                        .settings
                        .insert(setting.key.into(), default.into());
                }
            }
            for (key, value) in settings {
                connection.settings.insert(key, value.into());
            }
            auth::check_name(&name).map_err(anyhow::Error::msg)?;
            entry
                .check_settings(&connection)
                .map_err(anyhow::Error::msg)?;
            let secrets = read_secrets(&entry.secret_fields(auth))?;
            if !secrets.is_empty() {
                unlock(dirs)?;
            }
            auth::add(
                dirs,
                NewConnection {
                    name: name.clone(),
                    connection,
                    secrets,
                },
                entry,
            )
            .map_err(anyhow::Error::msg)?;
            let next = if auth.uses_tokens() {
                format!("; log in with `tributary connection login {name}`")
            } else {
                String::new()
            };
            outln!("connection `{name}` added{next}");
            Ok(0)
        }
        ConnectionAction::List { json } => {
            let all = auth::load(dirs).map_err(anyhow::Error::msg)?;
            if json {
                out_raw!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(0);
            }
            if all.is_empty() {
                outln!("no connections yet; add one with `tributary connection add`");
                return Ok(0);
            }
            outln!(
                "{:<20} {:<11} {:<26} {:<28} {:<21} STATE",
                "NAME",
                "CONNECTOR",
                "SIGN-IN",
                "AS",
                "TOKEN EXPIRES"
            );
            let now = chrono::Utc::now();
            for (name, c) in &all {
                let who = c.status.identity.as_deref().unwrap_or("-");
                let until = c
                    .status
                    .expires_at
                    .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "-".into());
                outln!(
                    "{name:<20} {:<11} {:<26} {who:<28} {until:<21} {}",
                    c.connector,
                    c.auth.name(),
                    c.state(now)
                );
            }
            Ok(0)
        }
        ConnectionAction::Test { name } => {
            let connection = auth::get(dirs, &name).map_err(anyhow::Error::msg)?;
            if connection.auth != AuthKind::None {
                unlock(dirs)?;
            }
            match runtime()?.block_on(connect::test(dirs, &name)) {
                Ok(words) => {
                    outln!("{name}: {words}");
                    Ok(0)
                }
                Err(e) => {
                    errln!("error: {e}");
                    Ok(1)
                }
            }
        }
        ConnectionAction::Login { name, timeout } => {
            let connection = auth::get(dirs, &name).map_err(anyhow::Error::msg)?;
            unlock(dirs)?;
            let options = connect::login_options(
                &connection,
                Duration::from_secs(timeout),
                Box::new(|url: &str| {
                    errln!("Opening the browser to log in. If it does not open, visit:\n  {url}")
                }),
            )
            .map_err(anyhow::Error::msg)?;
            match runtime()?.block_on(connect::login(dirs, &name, options)) {
                Ok(c) => {
                    let who = c
                        .status
                        .identity
                        .map(|w| format!(" as {w}"))
                        .unwrap_or_default();
                    outln!("{name}: logged in{who}");
                    Ok(0)
                }
                Err(e) => {
                    errln!("error: {name}: {e}");
                    Ok(1)
                }
            }
        }
        ConnectionAction::Remove { name } => {
            auth::get(dirs, &name).map_err(anyhow::Error::msg)?;
            if vault::vault_file(dirs).exists() {
                unlock(dirs)?;
            }
            auth::remove(dirs, &name).map_err(anyhow::Error::msg)?;
            outln!("connection `{name}` and its secrets removed");
            Ok(0)
        }
    }
}

/// The secrets of a kind of sign-in: at a hidden prompt on a terminal, else one line each
/// from standard input (so scripts can pipe them in without putting them on the command
/// line, where other users' `ps` would see them).
fn read_secrets(fields: &[(&str, bool)]) -> anyhow::Result<Vec<(String, Secret)>> {
    let mut secrets = Vec::new();
    let terminal = std::io::stdin().is_terminal();
    let mut lines = std::io::stdin().lock().lines();
    for &(field, required) in fields {
        let value = if terminal {
            let hint = if required { "" } else { " (Enter for none)" };
            rpassword::prompt_password(format!("{}{hint}: ", field.replace('_', " ")))?
        } else {
            match lines.next() {
                Some(line) => line?,
                None if required => {
                    anyhow::bail!("the secret `{field}` is missing: standard input ended before it")
                }
                None => String::new(),
            }
        };
        secrets.push((
            field.to_string(),
            Secret::new(value.trim_end_matches(['\r', '\n'])),
        ));
    }
    Ok(secrets)
}

/// Unlocks the vault for this process: from `TRIBUTARY_VAULT_PASSPHRASE`, else at a
/// prompt (twice when the vault is new).
pub fn unlock(dirs: &Dirs) -> anyhow::Result<()> {
    if vault::is_unlocked(dirs) {
        vault::shared(dirs)?;
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(vault::VaultError::Locked);
    }
    let path = vault::vault_file(dirs);
    let passphrase = if path.exists() {
        rpassword::prompt_password("Vault passphrase: ")?
    } else {
        errln!(
            "Secrets are kept in an encrypted vault at {}. Choose its passphrase.",
            path.display()
        );
        let first = rpassword::prompt_password("New vault passphrase: ")?;
        let again = rpassword::prompt_password("The same again: ")?;
        if first != again {
            anyhow::bail!("the two passphrases differ; nothing was saved");
        }
        first
    };
    vault::unlock_shared(dirs, &passphrase)?;
    Ok(())
}
