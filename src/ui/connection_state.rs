//! What the Connections window shows and what its commands do: the list of connections,
//! the New connection form, logins and tests under way, and the vault passphrase prompt
//! that stands in front of anything that touches secrets.

use std::collections::{BTreeMap, HashMap};

use tokio_util::sync::CancellationToken;

use super::commands::Command;
use super::state::AppState;
use super::worker::{Message, Worker};
use crate::auth::{self, AuthKind, Connection, ConnectorAuth, NewConnection, Secret, vault};
use crate::connectors::framework::service;

#[derive(Default)]
pub struct ConnectionsState {
    pub open: bool,
    /// The connections file as last read.
    pub list: BTreeMap<String, Connection>,
    /// Why the connections file could not be read.
    pub load_error: Option<String>,
    pub draft: Option<ConnectionDraft>,
    /// Logins and tests under way.
    pub busy: HashMap<String, Busy>,
    /// What the last login or test of each connection said.
    pub outcome: HashMap<String, Result<String, String>>,
    /// The connection the user asked to remove, waiting for the answer.
    pub confirm_remove: Option<String>,
    pub vault_prompt: Option<VaultPrompt>,
    /// The proxy field as typed, and what saving it said.
    pub proxy: String,
    pub proxy_outcome: Option<Result<String, String>>,
}

/// A login or test under way.
pub struct Busy {
    pub login: bool,
    /// The login URL, once the browser has been sent to it, for pasting by hand.
    pub url: Option<String>,
    pub cancel: CancellationToken,
}

/// The name a new connection of `connector` is offered: the connector's, numbered when
/// taken.
fn default_name(connector: &str, taken: &BTreeMap<String, Connection>) -> String {
    (1..)
        .map(|i| {
            if i == 1 {
                connector.to_string()
            } else {
                format!("{connector}-{i}")
            }
        })
        .find(|n| !taken.contains_key(n))
        .expect("a free name")
}

/// The New connection form as filled in so far. Secrets typed in stay in memory only,
/// until the vault takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDraft {
    pub name: String,
    pub connector: String,
    pub auth: AuthKind,
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    pub for_node: Option<String>,
    pub error: Option<String>,
}

impl ConnectionDraft {
    /// A blank form for a connector, its settings at their defaults.
    pub fn new(connector: &ConnectorAuth, taken: &BTreeMap<String, Connection>) -> Self {
        let mut draft = ConnectionDraft {
            name: default_name(connector.connector, taken),
            connector: connector.connector.to_string(),
            auth: connector.kinds[0],
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            for_node: None,
            error: None,
        };
        draft.fill_defaults(connector);
        draft
    }

    /// Settings of the chosen kind of sign-in that are still empty get their defaults.
    pub fn fill_defaults(&mut self, connector: &ConnectorAuth) {
        for setting in connector.settings_for(self.auth) {
            if let Some(default) = setting.default {
                self.settings
                    .entry(setting.key.to_string())
                    .or_insert_with(|| default.to_string());
            }
        }
    }

    fn to_new(&self) -> Result<NewConnection, String> {
        let entry = service::sign_in(&self.connector)?;
        let settings = self
            .settings
            .iter()
            .filter_map(|(key, value)| {
                let setting = entry
                    .settings_for(self.auth)
                    .find(|s| s.key == key.as_str())?;
                let value = if setting.verbatim {
                    value.as_str()
                } else {
                    value.trim()
                };
                (!value.trim().is_empty()).then(|| (key.clone(), serde_json::Value::from(value)))
            })
            .collect();
        Ok(NewConnection {
            name: self.name.trim().to_string(),
            connection: Connection {
                connector: self.connector.clone(),
                auth: self.auth,
                settings,
                status: Default::default(),
            },
            secrets: entry
                .secret_fields(self.auth)
                .into_iter()
                .filter_map(|(field, _)| {
                    Some((field.to_string(), self.secrets.get(field)?.clone()))
                })
                .collect(),
        })
    }
}

/// The passphrase prompt, and the command that waits for the vault.
pub struct VaultPrompt {
    pub passphrase: Secret,
    pub again: Secret,
    /// No vault file yet: the passphrase is being chosen, so it is asked twice.
    pub new_vault: bool,
    pub error: Option<String>,
    pub then: Box<Command>,
}

impl ConnectionsState {
    pub fn load(dirs: &crate::paths::Dirs) -> Self {
        let mut state = ConnectionsState::default();
        state.reload(dirs);
        match auth::http::load_proxy(dirs) {
            Ok(proxy) => state.proxy = proxy.unwrap_or_default(),
            Err(e) => state.proxy_outcome = Some(Err(e)),
        }
        state
    }

    fn reload(&mut self, dirs: &crate::paths::Dirs) {
        match auth::load(dirs) {
            Ok(list) => {
                self.list = list;
                self.load_error = None;
            }
            Err(e) => self.load_error = Some(e),
        }
    }

    /// Connections of one connector, for a node's dropdown.
    pub fn names_for(&self, connector: &str) -> Vec<String> {
        self.list
            .iter()
            .filter(|(_, c)| c.connector == connector)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl AppState {
    /// Whether a command needs the vault open, and the vault is not.
    fn waits_for_vault(&self, command: &Command) -> bool {
        let conns = &self.connections;
        let needs = match command {
            Command::SaveConnectionDraft => conns
                .draft
                .as_ref()
                .is_some_and(|d| d.secrets.values().any(|s| !s.expose().is_empty())),
            Command::LogIn(_) => true,
            Command::CheckConnection(name) => conns
                .list
                .get(name)
                .is_some_and(|c| c.auth != AuthKind::None),
            Command::RemoveConnection(_) => vault::vault_file(&self.dirs).exists(),
            Command::Run => self.doc.flow.nodes.iter().any(|n| {
                n.config
                    .get("connection")
                    .and_then(|c| c.as_str())
                    .and_then(|c| conns.list.get(c))
                    .is_some_and(|c| c.auth != AuthKind::None)
            }),
            _ => false,
        };
        needs && !vault::is_unlocked(&self.dirs)
    }

    /// Puts the passphrase prompt in front of a command that needs the vault; `true` when
    /// the command has to wait.
    pub(super) fn hold_for_vault(&mut self, command: &Command) -> bool {
        if !self.waits_for_vault(command) {
            return false;
        }
        self.connections.vault_prompt = Some(VaultPrompt {
            passphrase: Secret::new(""),
            again: Secret::new(""),
            new_vault: !vault::vault_file(&self.dirs).exists(),
            error: None,
            then: Box::new(command.clone()),
        });
        true
    }

    pub(super) fn apply_connections(&mut self, command: Command, worker: &Worker) {
        let conns = &mut self.connections;
        match command {
            Command::ShowConnections(open) => {
                conns.open = open;
                if open {
                    conns.reload(&self.dirs);
                }
            }
            Command::NewConnection {
                connector,
                for_node,
            } => {
                // The form starts on the node's service, or on the first one. Nodes name
                // only registered services (a test checks), so an unknown one is a bug.
                let entry = match connector.as_deref() {
                    None => service::sign_ins().next().expect("services are registered"),
                    Some(c) => match service::sign_in(c) {
                        Ok(entry) => entry,
                        Err(e) => {
                            tracing::error!("{e}");
                            return;
                        }
                    },
                };
                let mut draft = ConnectionDraft::new(entry, &conns.list);
                draft.for_node = for_node;
                conns.draft = Some(draft);
                conns.open = true;
            }
            Command::EditConnectionDraft(mut draft) => {
                if let Some(old) = &conns.draft
                    && (old.connector != draft.connector || old.auth != draft.auth)
                    && let Ok(entry) = service::sign_in(&draft.connector)
                {
                    // Another connector starts from its usual sign-in.
                    if old.connector != draft.connector || !entry.kinds.contains(&draft.auth) {
                        draft.auth = entry.kinds[0];
                    }
                    // What the last connector filled in, the user never chose: the new
                    // connector's own defaults take its place (Salesforce's login URL is
                    // not Google's).
                    if old.connector != draft.connector
                        && let Ok(last) = service::sign_in(&old.connector)
                    {
                        draft.settings.retain(|key, value| {
                            !(last.settings.iter())
                                .any(|s| s.key == key && s.default == Some(value.as_str()))
                        });
                    }
                    draft.fill_defaults(entry);
                    // A name the user did not choose follows the connector.
                    if old.connector != draft.connector
                        && draft.name == default_name(&old.connector, &conns.list)
                    {
                        draft.name = default_name(&draft.connector, &conns.list);
                    }
                }
                conns.draft = Some(draft);
            }
            Command::CancelConnectionDraft => conns.draft = None,
            Command::SaveConnectionDraft => {
                let Some(draft) = conns.draft.as_mut() else {
                    return;
                };
                let saved = draft.to_new().and_then(|new| {
                    let name = new.name.clone();
                    let entry = service::sign_in(&new.connection.connector)?;
                    auth::add(&self.dirs, new, entry).map(|()| name)
                });
                match saved {
                    Ok(name) => {
                        let for_node = draft.for_node.take();
                        conns.draft = None;
                        conns.reload(&self.dirs);
                        // A node's "no connection named …" may have just been answered.
                        check_again(&self.doc, worker);
                        let uses_login = conns
                            .list
                            .get(&name)
                            .is_some_and(|c| c.auth == AuthKind::OAuth2);
                        conns.outcome.insert(
                            name.clone(),
                            Ok(if uses_login {
                                "saved; log in to use it".to_string()
                            } else {
                                "saved".to_string()
                            }),
                        );
                        if let Some(node) = for_node {
                            self.set_node_connection(&node, &name, worker);
                        }
                    }
                    Err(e) => draft.error = Some(e),
                }
            }
            Command::LogIn(name) => {
                let cancel = CancellationToken::new();
                conns.outcome.remove(&name);
                conns.busy.insert(
                    name.clone(),
                    Busy {
                        login: true,
                        url: None,
                        cancel: cancel.clone(),
                    },
                );
                worker.log_in(name, cancel);
            }
            Command::CancelLogIn(name) => {
                if let Some(busy) = conns.busy.get(&name) {
                    busy.cancel.cancel();
                }
            }
            Command::CheckConnection(name) => {
                conns.outcome.remove(&name);
                conns.busy.insert(
                    name.clone(),
                    Busy {
                        login: false,
                        url: None,
                        cancel: CancellationToken::new(),
                    },
                );
                worker.check_connection(name);
            }
            Command::AskRemoveConnection(name) => conns.confirm_remove = name,
            Command::RemoveConnection(name) => {
                conns.confirm_remove = None;
                match auth::remove(&self.dirs, &name) {
                    Ok(()) => {
                        conns.outcome.remove(&name);
                        conns.reload(&self.dirs);
                        check_again(&self.doc, worker);
                    }
                    Err(e) => {
                        conns.outcome.insert(name, Err(e));
                    }
                }
            }
            Command::EditVaultPrompt { passphrase, again } => {
                if let Some(prompt) = conns.vault_prompt.as_mut() {
                    prompt.passphrase = passphrase;
                    prompt.again = again;
                }
            }
            Command::CancelUnlock => conns.vault_prompt = None,
            Command::UnlockVault => {
                let Some(prompt) = conns.vault_prompt.as_mut() else {
                    return;
                };
                if prompt.new_vault && prompt.passphrase != prompt.again {
                    prompt.error = Some("the two passphrases differ".into());
                    return;
                }
                match vault::unlock_shared(&self.dirs, prompt.passphrase.expose()) {
                    Ok(_) => {
                        let then = conns.vault_prompt.take().expect("checked above").then;
                        self.apply(*then, worker);
                    }
                    Err(e) => prompt.error = Some(e.to_string()),
                }
            }
            Command::EditProxy(text) => {
                conns.proxy = text;
                conns.proxy_outcome = None;
            }
            Command::SaveProxy => {
                conns.proxy_outcome =
                    Some(auth::http::save_proxy(&self.dirs, &conns.proxy).map(|()| {
                        if conns.proxy.trim().is_empty() {
                            "no proxy: HTTPS_PROXY and NO_PROXY apply".to_string()
                        } else {
                            "every connection goes through the proxy".to_string()
                        }
                    }));
            }
            _ => unreachable!("only connection commands come here"),
        }
    }

    fn set_node_connection(&mut self, node: &str, name: &str, worker: &Worker) {
        let Some(mut config) = self.doc.flow.node(node).map(|n| n.config.clone()) else {
            return;
        };
        if let Some(object) = config.as_object_mut() {
            object.insert("connection".into(), name.into());
            self.apply(
                Command::SetConfig {
                    node: node.to_string(),
                    config,
                },
                worker,
            );
        }
    }

    /// Messages about connections from the worker.
    pub(super) fn receive_connection(&mut self, message: Message) {
        let conns = &mut self.connections;
        match message {
            Message::LoginWaiting { connection, url } => {
                if let Some(busy) = conns.busy.get_mut(&connection) {
                    busy.url = Some(url);
                }
            }
            Message::ConnectionChecked { connection, result } => {
                conns.busy.remove(&connection);
                conns.outcome.insert(connection, result);
                // A login or refresh changed who, until when, or the problem.
                conns.reload(&self.dirs);
            }
            _ => unreachable!("only connection messages come here"),
        }
    }
}

/// Checks the flow again as it is: the connections its nodes name have changed.
fn check_again(doc: &super::state::Document, worker: &Worker) {
    worker.analyze(doc.flow.clone(), doc.base_dir(), doc.revision);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_prefix_keeps_its_trailing_space_and_other_settings_are_trimmed() {
        let http = service::sign_in("http").unwrap();
        let mut draft = ConnectionDraft::new(http, &BTreeMap::new());
        draft.auth = AuthKind::ApiKey;
        draft.settings.insert("key_prefix".into(), "Bearer ".into());
        draft
            .settings
            .insert("key_name".into(), " Authorization ".into());
        let new = draft.to_new().unwrap();
        assert_eq!(new.connection.settings["key_prefix"], "Bearer ");
        assert_eq!(new.connection.settings["key_name"], "Authorization");
    }
}
