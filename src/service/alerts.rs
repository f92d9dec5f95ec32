//! Alerts: who hears of the service's runs. Each alert is sent on a task of its own,
//! tried again a few times with growing waits, and logged when it cannot be sent; it never
//! holds up or fails a run.

use std::time::Duration;

use crate::engine::RunRecord;
use crate::flow::{Alert, AlertOn};
use crate::paths::Dirs;

/// Tries per alert, and the first wait between them (doubling after each).
const TRIES: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// Sends the flow's alerts that are for `event`, in the background.
pub fn send(
    dirs: &Dirs,
    alerts: &[Alert],
    event: AlertOn,
    record: &RunRecord,
    reason: Option<&str>,
) {
    for alert in alerts.iter().filter(|a| a.on().contains(&event)) {
        let (dirs, alert, record) = (dirs.clone(), alert.clone(), record.clone());
        let reason = reason.map(str::to_string);
        tokio::spawn(async move {
            let flow = record.flow.clone();
            let mut wait = FIRST_WAIT;
            for attempt in 1..=TRIES {
                match send_one(&dirs, &alert, event, &record, reason.as_deref()).await {
                    Ok(()) => return,
                    Err(e) if attempt == TRIES => {
                        tracing::warn!(
                            flow,
                            "the {} alert could not be sent after {TRIES} tries: {e}",
                            kind(&alert)
                        );
                    }
                    Err(e) => {
                        tracing::info!(
                            flow,
                            "the {} alert failed ({e}); trying again",
                            kind(&alert)
                        );
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        });
    }
}

fn kind(alert: &Alert) -> &'static str {
    match alert {
        Alert::Http { .. } => "HTTP",
        Alert::Slack { .. } => "Slack",
        Alert::Desktop { .. } => "desktop",
    }
}

/// One line that says what happened, for a person.
fn headline(event: AlertOn, record: &RunRecord, reason: Option<&str>) -> String {
    let flow = &record.flow;
    match event {
        AlertOn::Success => format!(
            "Tributary: \"{flow}\" ran: {} records written ({})",
            record.records_written, record.trigger
        ),
        AlertOn::Failure => format!(
            "Tributary: \"{flow}\" failed: {} ({})",
            record
                .error
                .as_ref()
                .map_or("no reason given", |e| e.message.as_str()),
            record.trigger
        ),
        AlertOn::Deactivation => format!(
            "Tributary: \"{flow}\" was deactivated: {}",
            reason.unwrap_or("it failed too often")
        ),
    }
}

async fn send_one(
    dirs: &Dirs,
    alert: &Alert,
    event: AlertOn,
    record: &RunRecord,
    reason: Option<&str>,
) -> Result<(), String> {
    match alert {
        Alert::Http {
            url, connection, ..
        } => {
            let body = serde_json::json!({
                "event": event.name(),
                "flow": record.flow,
                "reason": reason,
                "run": record,
            })
            .to_string();
            let mut request = crate::auth::http::client()
                .post(url)
                .header("Content-Type", "application/json");
            if let Some(connection) = connection {
                let key = key_of(dirs, connection)?;
                let timestamp = jiff::Timestamp::now().as_second().to_string();
                let signature = super::hooks::signature(&key, &timestamp, body.as_bytes());
                request = request
                    .header("X-Tributary-Timestamp", timestamp)
                    .header("X-Tributary-Signature", signature);
            }
            answered(request.body(body).send().await, url)
        }
        Alert::Slack { connection, .. } => {
            let url = key_of(dirs, connection)?;
            let text = headline(event, record, reason);
            let request = crate::auth::http::client()
                .post(&url)
                .json(&serde_json::json!({ "text": text }));
            // The URL is a secret: the error names the connection instead.
            answered(
                request.send().await,
                &format!("the connection `{connection}`"),
            )
        }
        Alert::Desktop { .. } => {
            let text = headline(event, record, reason);
            tokio::task::spawn_blocking(move || {
                notify_rust::Notification::new()
                    .summary("Tributary")
                    .body(&text)
                    .show()
                    .map(|_| ())
                    .map_err(|e| format!("no desktop to show it on: {e}"))
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

fn key_of(dirs: &Dirs, connection: &str) -> Result<String, String> {
    let vault = crate::auth::vault::shared(dirs).map_err(|e| {
        format!("the key of `{connection}` is in the vault, which the service cannot open: {e}")
    })?;
    let key = vault
        .lock()
        .unwrap()
        .get(connection, "api_key")
        .ok_or_else(|| format!("the connection `{connection}` has no key in the vault"))?;
    Ok(key.expose().to_string())
}

fn answered(sent: reqwest::Result<reqwest::Response>, to: &str) -> Result<(), String> {
    match sent {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("{to} answered {}", response.status())),
        Err(e) => Err(format!("cannot reach {to}: {}", e.without_url())),
    }
}
