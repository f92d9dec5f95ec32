//! The webhook trigger: a signed `POST /hooks/<flow>` checked against the flow (active,
//! a webhook trigger, its body limit) and its key in the vault (signature, age, replay),
//! then kept as JSON lines for the run to read.

use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::{Service, Start, listen};
use crate::flow::{Event, Trigger};

/// How old a webhook request's timestamp may be, either way.
const HOOK_WINDOW: Duration = Duration::from_secs(300);

/// Webhook runs that may wait for a flow before more requests are refused (429).
const HOOKS_WAITING: usize = 100;

/// A webhook body's size limit unless the flow sets one.
const HOOK_BODY: u64 = 1 << 20;

impl Service {
    /// A webhook request: checked (flow, signature, age, size, JSON), then answered with
    /// 202 and a run, or refused in words.
    pub(super) fn hook(&mut self, hook: listen::Hook) {
        let answer = self.take_hook(&hook.flow, &hook);
        let _ = hook.reply.send(match answer {
            Ok(words) => (hyper::StatusCode::ACCEPTED, words),
            Err(refused) => refused,
        });
    }

    fn take_hook(
        &mut self,
        name: &str,
        hook: &listen::Hook,
    ) -> Result<String, (hyper::StatusCode, String)> {
        use hyper::StatusCode;
        let found = self
            .watched
            .iter()
            .find(|(path, w)| w.flow.name == name || path.file_stem().is_some_and(|s| s == name));
        let Some((path, w)) = found else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no flow named \"{name}\" is in the service's folder"),
            ));
        };
        let path = path.clone();
        let Trigger::Event(Event::Webhook {
            connection,
            max_body_bytes,
        }) = &w.flow.trigger
        else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("the flow \"{}\" does not run on a webhook", w.flow.name),
            ));
        };
        if !w.active {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "the flow \"{}\" is not active: `tributary activate` it first",
                    w.flow.name
                ),
            ));
        }
        let limit = max_body_bytes.unwrap_or(HOOK_BODY);
        if hook.body.len() as u64 > limit {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body has {} bytes; the flow takes at most {limit} (its `max_body_bytes`)",
                    hook.body.len()
                ),
            ));
        }
        let unauthorized = |words: String| (StatusCode::UNAUTHORIZED, words);
        let (Some(timestamp), Some(signature)) = (&hook.timestamp, &hook.signature) else {
            return Err(unauthorized(
                "the request is not signed: send X-Tributary-Timestamp and X-Tributary-Signature"
                    .into(),
            ));
        };
        let sent: i64 = timestamp.trim().parse().map_err(|_| {
            unauthorized(format!(
                "X-Tributary-Timestamp `{timestamp}` is not a Unix time in seconds"
            ))
        })?;
        let age = jiff::Timestamp::now().as_second() - sent;
        if age.unsigned_abs() > HOOK_WINDOW.as_secs() {
            return Err(unauthorized(format!(
                "the request was signed {age} s ago; older than {} s is refused, as a replay could be",
                HOOK_WINDOW.as_secs()
            )));
        }
        let secret = crate::auth::vault::shared(&self.dirs)
            .map_err(|e| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the signing key is in the vault, which the service cannot open: {e}; start it with TRIBUTARY_VAULT_PASSPHRASE set"),
                )
            })?
            .lock()
            .unwrap()
            .get(connection, "api_key")
            .ok_or_else(|| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the connection `{connection}` has no key in the vault to check signatures with"),
                )
            })?;
        if !signed(secret.expose(), timestamp.trim(), &hook.body, signature) {
            return Err(unauthorized(
                "the signature does not match the body and timestamp".into(),
            ));
        }
        let now = Instant::now();
        self.signatures
            .retain(|_, at| now.duration_since(*at) < HOOK_WINDOW);
        if self.signatures.insert(signature.clone(), now).is_some() {
            return Err(unauthorized(
                "this request was already taken: a replay is refused".into(),
            ));
        }
        let body: serde_json::Value = serde_json::from_slice(&hook.body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        })?;
        let w = &self.watched[&path];
        if w.waiting.len() >= HOOKS_WAITING {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} runs of \"{}\" wait already: send this again later",
                    w.waiting.len(),
                    w.flow.name
                ),
            ));
        }
        let name = w.flow.name.clone();
        let params = self.keep_body(&body).map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the body could not be kept: {e}"),
            )
        })?;
        self.start(
            &path,
            Start {
                cause: "event: webhook".into(),
                params,
                ..Default::default()
            },
        );
        Ok(format!("accepted: a run of \"{name}\" starts"))
    }

    /// Keeps a webhook's body as JSON lines for the run: its path and an object's text
    /// and number fields are the run's parameters.
    fn keep_body(&self, body: &serde_json::Value) -> std::io::Result<IndexMap<String, String>> {
        use std::io::Write;
        let folder = self.dirs.data.join("hooks");
        std::fs::create_dir_all(&folder)?;
        let file = folder.join(format!("{}.jsonl", uuid::Uuid::now_v7()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let records = match body {
            serde_json::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for record in records {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        let mut params = IndexMap::new();
        if let serde_json::Value::Object(fields) = body {
            for (k, v) in fields {
                match v {
                    serde_json::Value::String(s) => params.insert(k.clone(), s.clone()),
                    serde_json::Value::Number(n) => params.insert(k.clone(), n.to_string()),
                    _ => None,
                };
            }
        }
        params.insert("trigger_file".into(), file.display().to_string());
        Ok(params)
    }
}

/// The HMAC-SHA256 of `<timestamp>.<body>` under `secret`: what signs webhook requests,
/// coming in and going out.
fn mac(secret: &str, timestamp: &str, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Tributary-Signature` value of `body` signed at `timestamp`.
pub(super) fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let bytes = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether `signature` (`sha256=<hex>`) signs `body` at `timestamp` under `secret`;
/// compared in constant time.
fn signed(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    use hmac::Mac;
    let Some(hex) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&expected).is_ok()
}
