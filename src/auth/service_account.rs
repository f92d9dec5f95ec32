//! Google service accounts: the account's key file signs a short-lived assertion (a JWT,
//! RS256) that the token endpoint exchanges for an access token (RFC 7523's JWT bearer
//! grant). No browser and no refresh token: a new assertion is signed whenever the token
//! runs out. The key file's JSON is the connection's secret, kept in the vault.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use serde::Deserialize;

use super::Secret;
use super::oauth::Tokens;

/// What Tributary reads of a service account key file.
#[derive(Deserialize)]
struct Key {
    #[serde(rename = "type")]
    kind: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

/// How long an assertion, and so the token asked with it, is good for: Google's most.
const LIFETIME: i64 = 3600;

/// An access token for the service account whose key file `key` holds, with `scopes`.
pub async fn token(key: &Secret, scopes: &[&str]) -> Result<Tokens, String> {
    let key: Key = serde_json::from_str(key.expose()).map_err(|e| {
        format!("the service account key is not a key file's JSON ({e}); paste the whole file")
    })?;
    if key.kind != "service_account" {
        return Err(format!(
            "the key file is of type `{}`, not a service account's",
            key.kind
        ));
    }
    super::http::check_url(&key.token_uri)?;
    let assertion = assertion(&key, scopes, Utc::now().timestamp())?;
    let answer = super::http::client()
        .post(&key.token_uri)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .send()
        .await
        .map_err(|e| {
            format!(
                "the token endpoint {} cannot be reached: {e}",
                key.token_uri
            )
        })?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let Some(access) = body["access_token"]
        .as_str()
        .filter(|_| status.is_success())
    else {
        let said = [&body["error"], &body["error_description"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(": ");
        return Err(format!(
            "{} refused the service account {} ({status}): {said}",
            key.token_uri, key.client_email
        ));
    };
    let lifetime = body["expires_in"].as_u64().map(Duration::from_secs);
    Ok(Tokens {
        access: Secret::new(access),
        refresh: None,
        expires_at: lifetime
            .and_then(|l| chrono::Duration::from_std(l).ok())
            .map(|l| Utc::now() + l),
        lifetime,
        extra: Default::default(),
    })
}

/// The signed assertion: `iss` the account, `scope` the scopes, `aud` the token endpoint.
fn assertion(key: &Key, scopes: &[&str], now: i64) -> Result<String, String> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(id) = &key.private_key_id {
        header["kid"] = id.clone().into();
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": scopes.join(" "),
        "aud": key.token_uri,
        "iat": now,
        "exp": now + LIFETIME,
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = ring::rsa::KeyPair::from_pkcs8(&pem_body(&key.private_key)?)
        .map_err(|e| format!("the key file's private key is not an RSA key ({e})"))?;
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "the private key cannot sign".to_string())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The DER bytes of a PEM `PRIVATE KEY` block.
fn pem_body(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if !pem.contains("BEGIN PRIVATE KEY") {
        return Err("the key file's private key is not a PEM PRIVATE KEY block".into());
    }
    STANDARD
        .decode(body)
        .map_err(|e| format!("the key file's private key is not valid base64 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_service_account_keys_are_said_so() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(token(&Secret::new("{\"installed\": {}}"), &[]))
            .unwrap_err();
        assert!(err.contains("not a key file's JSON"), "{err}");
        let key = r#"{"type": "authorized_user", "client_email": "a", "private_key": "",
            "token_uri": "https://oauth2.googleapis.com/token"}"#;
        let err = runtime.block_on(token(&Secret::new(key), &[])).unwrap_err();
        assert!(err.contains("of type `authorized_user`"), "{err}");
        let key = Key {
            kind: "service_account".into(),
            client_email: "a@b".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
                .into(),
            private_key_id: None,
            token_uri: "https://oauth2.googleapis.com/token".into(),
        };
        let err = assertion(&key, &[], 0).unwrap_err();
        assert!(err.contains("not an RSA key"), "{err}");
    }
}
