//! What Google's APIs share, for the Google Analytics and Google Ads services: the
//! sign-in (Google's OAuth for installed apps, with a refresh token every time, or a
//! service account's key file), the
//! settings that point it elsewhere (a test server), and Google's error bodies in words.

use serde_json::Value;

use crate::auth::AuthKind;
use crate::auth::sign_in::{OAuthEndpoints, Setting, setting};

/// Where users log in.
pub const LOGIN_URL: Setting = Setting {
    default: Some("https://accounts.google.com"),
    kinds: BROWSER,
    ..setting(
        "login_url",
        "Login URL",
        "Where users log in; Google's unless told otherwise.",
    )
};

/// Where tokens are issued.
pub const TOKEN_URL: Setting = Setting {
    default: Some("https://oauth2.googleapis.com/token"),
    kinds: BROWSER,
    ..setting(
        "token_url",
        "Token URL",
        "Where tokens are issued; Google's unless told otherwise.",
    )
};

/// The OAuth client the app logs in as.
pub const CLIENT_ID: Setting = Setting {
    required: true,
    kinds: BROWSER,
    ..setting(
        "client_id",
        "Client id",
        "The client id of an OAuth client of type Desktop app (Google Cloud console, APIs & Services, Credentials).",
    )
};

/// A fixed port for the login's redirect.
pub const CALLBACK_PORT: Setting = Setting {
    kinds: BROWSER,
    ..setting(
        "callback_port",
        "Callback port",
        "A fixed port for the login's redirect (http://127.0.0.1:PORT/callback); empty for any free port.",
    )
};

/// How Google's services sign in: a user in the browser, or a service account's key file
/// (for runs on a server, where no one logs in).
pub const KINDS: &[AuthKind] = &[AuthKind::OAuth2, AuthKind::ServiceAccount];

/// The settings of the browser login alone.
const BROWSER: &[AuthKind] = &[AuthKind::OAuth2];

/// Google's OAuth for installed apps, asking for `scopes`.
pub const fn oauth(scopes: &'static [&'static str]) -> OAuthEndpoints {
    OAuthEndpoints {
        authorize: "{login_url}/o/oauth2/v2/auth",
        token: "{token_url}",
        scopes,
        // A refresh token, every time: without `prompt=consent` Google gives one only on
        // the first consent.
        extra: &[("access_type", "offline"), ("prompt", "consent")],
        identity_url_field: None,
    }
}

/// A message that ends in Google's error body (`{"error": {"code", "message", "status",
/// "details"}}`, alone or as the one element of an array, as a stream answers) in words:
/// the status, the message, the reasons in the details (Google Ads' `GoogleAdsFailure`
/// errors, each with its code), and `hint`'s advice for the status.
pub fn in_words(message: &str, hint: fn(&str) -> &'static str) -> String {
    let Some(start) = message.find(['{', '[']) else {
        return message.to_string();
    };
    let Ok(body) = serde_json::from_str::<Value>(&message[start..]) else {
        return message.to_string();
    };
    let error = match &body {
        Value::Array(items) => items.first().map_or(&Value::Null, |e| &e["error"]),
        _ => &body["error"],
    };
    let Some(status) = error["status"].as_str() else {
        return message.to_string();
    };
    let reasons = failure_reasons(error);
    let said = match reasons.is_empty() {
        true => error["message"].as_str().unwrap_or_default().to_string(),
        false => reasons.join("; "),
    };
    format!("{}{status}: {said}{}", &message[..start], hint(status))
}

/// The errors of a `GoogleAdsFailure` in an error's details, as "CODE: message (field)".
fn failure_reasons(error: &Value) -> Vec<String> {
    let failures = error["details"].as_array().into_iter().flatten();
    let errors = failures
        .filter(|d| (d["@type"].as_str()).is_some_and(|t| t.ends_with("GoogleAdsFailure")))
        .flat_map(|d| d["errors"].as_array().into_iter().flatten());
    errors
        .map(|e| {
            let code = e["errorCode"]
                .as_object()
                .and_then(|c| c.values().next())
                .and_then(Value::as_str)
                .unwrap_or("ERROR");
            let message = e["message"].as_str().unwrap_or_default();
            let field = (e["location"]["fieldPathElements"].as_array())
                .map(|path| {
                    let names: Vec<&str> = path
                        .iter()
                        .filter_map(|p| p["fieldName"].as_str())
                        .collect();
                    format!(" (at {})", names.join("."))
                })
                .unwrap_or_default();
            format!("{code}: {message}{field}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> &'static str {
        ""
    }

    #[test]
    fn google_ads_failures_are_said_by_their_codes() {
        let body = serde_json::json!([{"error": {
            "code": 400, "message": "Request contains an invalid argument.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                "errors": [{"errorCode": {"queryError": "UNRECOGNIZED_FIELD"},
                    "message": "Unrecognized field in the query: 'campaign.colour'.",
                    "location": {"fieldPathElements": [{"fieldName": "query"}]}}],
                "requestId": "r1"}]}}]);
        assert_eq!(
            in_words(&format!("reading campaign: {body}"), none),
            "reading campaign: INVALID_ARGUMENT: UNRECOGNIZED_FIELD: Unrecognized field in the query: 'campaign.colour'. (at query)"
        );
    }

    #[test]
    fn other_bodies_keep_their_message_and_get_the_hint() {
        let body =
            r#"{"error": {"code": 429, "message": "Exhausted.", "status": "RESOURCE_EXHAUSTED"}}"#;
        let hint = |s: &str| match s {
            "RESOURCE_EXHAUSTED" => " (wait)",
            _ => "",
        };
        assert_eq!(
            in_words(&format!("x: {body}"), hint),
            "x: RESOURCE_EXHAUSTED: Exhausted. (wait)"
        );
        assert_eq!(in_words("x: not json {", none), "x: not json {");
    }
}
