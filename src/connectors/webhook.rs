//! Not a service Tributary reaches: the key that signs the webhook requests which start a
//! flow (`"trigger": {"type": "event", "source": "webhook"}`), kept as a connection so it
//! lives in the vault like every other secret.

use super::framework::Service;
use crate::auth::{AuthKind, ConnectorAuth};

pub struct WebhookKey;

impl Service for WebhookKey {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: "webhook",
    label: "Webhook signing key",
    kinds: &[AuthKind::ApiKey],
    settings: &[],
    oauth: None,
    secrets: &[],
};
