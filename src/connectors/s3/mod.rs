//! Amazon S3 and S3-compatible stores: what the S3 source and destination share. How to
//! reach a bucket (region, profile, endpoint) comes from the node's settings over its
//! connection's, and with neither from the standard AWS environment, as every AWS tool does.

pub mod destination;
pub mod source;
mod upload;

use std::net::IpAddr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::provider_config::ProviderConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{Connector, tls};

pub(crate) use super::block_on;
use super::framework::service::Capabilities;
use super::framework::{ConnectorError, Service};
use crate::auth::sign_in::{Setting, setting};
use crate::auth::{AuthKind, ConnectorAuth, Secret, vault};
use crate::node::{BoxFuture, ConfigProblem, NodeError};
use crate::paths::Dirs;

/// The connector name S3 connections carry in `connections.json`.
pub const CONNECTOR: &str = "s3";

/// Amazon S3 and S3-compatible stores: the sign-in, and a check that lists the buckets.
pub struct S3;

impl Service for S3 {
    fn sign_in(&self) -> &'static ConnectorAuth {
        &SIGN_IN
    }

    /// Objects, not entities: the source reads the objects new since the last run.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            incremental: true,
            ..Capabilities::default()
        }
    }

    fn check(&self, dirs: &Dirs, name: &str) -> BoxFuture<Result<String, ConnectorError>> {
        let (dirs, name) = (dirs.clone(), name.to_string());
        Box::pin(async move { test_connection(&dirs, &name).await })
    }
}

const SIGN_IN: ConnectorAuth = ConnectorAuth {
    connector: CONNECTOR,
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
    secrets: &[],
};

/// How to reach a bucket. Everything left out comes from the AWS environment: the
/// credential chain (environment, `~/.aws/config` and `credentials`, SSO), `AWS_REGION`,
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_S3`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub region: Option<String>,
    /// A named profile of `~/.aws/config`.
    pub profile: Option<String>,
    /// An S3-compatible store, e.g. `http://127.0.0.1:9000`.
    pub endpoint_url: Option<String>,
    /// Bucket in the path instead of the host name; automatic for IP addresses and
    /// `localhost`, where host-style addressing cannot work.
    pub path_style: Option<bool>,
    /// An access key id and secret from the vault, for connections that sign in with
    /// access keys instead of the environment.
    pub keys: Option<(Secret, Secret)>,
}

impl Access {
    /// The node's own settings over those of the connection it names.
    pub fn resolve(
        dirs: &Dirs,
        connection: Option<&str>,
        region: Option<&str>,
        endpoint_url: Option<&str>,
    ) -> Result<Access, NodeError> {
        let mut access = match connection {
            Some(name) => Self::of_connection(dirs, name)?,
            None => Access::default(),
        };
        let given = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        if let Some(region) = given(region) {
            access.region = Some(region);
        }
        if let Some(endpoint) = given(endpoint_url) {
            access.endpoint_url = Some(endpoint);
        }
        Ok(access)
    }

    fn of_connection(dirs: &Dirs, name: &str) -> Result<Access, NodeError> {
        let connection = crate::auth::get(dirs, name).map_err(NodeError::msg)?;
        if connection.connector != CONNECTOR {
            return Err(NodeError::msg(format!(
                "the connection `{name}` is for {}, not S3",
                connection.connector
            )));
        }
        let text = |key: &str| connection.setting(key);
        let keys = match connection.auth {
            AuthKind::AccessKeys => {
                let vault = vault::shared(dirs)
                    .map_err(|e| NodeError::msg(format!("the connection `{name}`: {e}")))?;
                let vault = vault.lock().unwrap();
                let field = |f: &str| {
                    vault.get(name, f).ok_or_else(|| {
                        NodeError::msg(format!(
                            "the connection `{name}` has no {f} in the vault; add the connection again"
                        ))
                    })
                };
                Some((field("access_key_id")?, field("secret_access_key")?))
            }
            _ => None,
        };
        Ok(Access {
            keys,
            region: text("region"),
            profile: text("profile"),
            endpoint_url: text("endpoint_url"),
            path_style: connection
                .settings
                .get("path_style")
                .and_then(|v| v.as_bool()),
        })
    }

    /// A client for these settings. Only HTTPS is used unless the endpoint is on this
    /// machine, where a test or development store speaks plain HTTP.
    pub async fn client(&self) -> Result<Client, NodeError> {
        let (config, region) = self.config().await?;
        let endpoint = config
            .endpoint_url()
            .map(String::from)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &endpoint {
            crate::auth::http::check_url(endpoint).map_err(NodeError::msg)?;
        }
        if region.is_none() && endpoint.is_none() {
            return Err(NodeError::msg(
                "no AWS region is set: give the node or its connection a region, or set AWS_REGION",
            ));
        }
        let mut builder = aws_sdk_s3::config::Builder::from(&config);
        let path_style = self
            .path_style
            .unwrap_or_else(|| endpoint.as_deref().is_some_and(is_local_or_ip));
        builder = builder.force_path_style(path_style);
        Ok(Client::from_conf(builder.build()))
    }

    /// The AWS settings these say, filled in from the environment: the credentials, which
    /// every AWS service's requests are signed with, and the region, with the one found
    /// (the config's is `us-east-1` when none is found anywhere).
    pub async fn config(&self) -> Result<(aws_config::SdkConfig, Option<Region>), NodeError> {
        let http = http_client();
        // A dead endpoint should fail in seconds; a part of many MB on a slow link may
        // take minutes.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(300))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http.clone())
            .timeout_config(timeouts);
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        // Off EC2 the instance metadata address answers nothing: ask it once, briefly, not
        // the SDK's three times for the region alone, and again for the credentials.
        let provider_config = ProviderConfig::without_region().with_http_client(http);
        let metadata = imds::Client::builder()
            .configure(&provider_config)
            .max_attempts(1)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(1))
            .build();
        let region = match &self.region {
            Some(region) => Some(Region::new(region.clone())),
            None => {
                let mut from_profile = ProfileFileRegionProvider::builder();
                if let Some(profile) = &self.profile {
                    from_profile = from_profile.profile_name(profile);
                }
                RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
                    .or_else(from_profile.build())
                    .or_else(
                        ImdsRegionProvider::builder()
                            .imds_client(metadata.clone())
                            .build(),
                    )
                    .region()
                    .await
            }
        };
        // Given a region even when none was found, so that loading the rest looks for
        // one nowhere else (asking the instance metadata again); S3-compatible stores
        // mostly ignore it, but requests are signed for one.
        let found = region.clone();
        let region = region.unwrap_or_else(|| Region::new("us-east-1"));
        loader = loader.region(region.clone());
        if let Some((id, secret)) = &self.keys {
            loader = loader.credentials_provider(Credentials::new(
                id.expose(),
                secret.expose(),
                None,
                None,
                "tributary-vault",
            ));
        } else {
            let mut chain = DefaultCredentialsChain::builder()
                .configure(provider_config)
                .region(region)
                .imds_client(metadata);
            if let Some(profile) = &self.profile {
                chain = chain.profile_name(profile);
            }
            loader = loader.credentials_provider(chain.build().await);
        }
        if let Some(endpoint) = &self.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        Ok((loader.load().await, found))
    }

    /// Where requests go, for messages.
    fn place(&self) -> String {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "Amazon S3".into())
    }
}

/// The SDK's HTTP client on rustls with *ring*, the same TLS stack as the rest of Tributary
/// (the SDK's default would build a second one, aws-lc, from C).
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    // Through the proxy set in the app, or the ones the environment names.
    let proxy = crate::auth::http::proxy()
        .and_then(|url| ProxyConfig::all(url).ok())
        .map(
            |p| match std::env::var("NO_PROXY").or_else(|_| std::env::var("no_proxy")) {
                Ok(rules) => p.no_proxy(rules),
                Err(_) => p,
            },
        )
        .unwrap_or_else(ProxyConfig::from_env);
    aws_smithy_http_client::Builder::new().build_with_connector_fn(move |settings, components| {
        let mut builder = Connector::builder();
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder
            .proxy_config(proxy.clone())
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build()
    })
}

/// The host of an endpoint URL.
fn is_local_or_ip(endpoint: &str) -> bool {
    let host = crate::auth::http::host_of(endpoint);
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok()
}

/// Checks a bucket name as S3 does, so a typo is reported before anything is sent.
pub fn check_bucket(bucket: &str) -> Result<(), ConfigProblem> {
    let problem = |m: String| Err(ConfigProblem::new("/bucket", m));
    if bucket.trim().is_empty() {
        return problem("name the bucket".into());
    }
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if !(3..=63).contains(&bucket.len()) || !ok_chars {
        return problem(format!(
            "`{bucket}` is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens"
        ));
    }
    Ok(())
}

/// A key prefix as written by the user, made to end in one `/` (or empty).
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

/// An S3 failure in words: which bucket, and what to do about it.
pub fn explain<E>(err: SdkError<E, HttpResponse>, access: &Access, bucket: &str) -> NodeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let place = access.place();
    let detail = DisplayErrorContext(&err).to_string();
    let status = err.raw_response().map(|r| r.status().as_u16());
    let bucket_region = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(String::from);
    let message = match &err {
        SdkError::DispatchFailure(failure) => {
            if detail.to_lowercase().contains("credentials") {
                format!(
                    "no AWS credentials were found for the bucket `{bucket}`: name a profile in the connection, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({})",
                    source_text(&err)
                )
            } else if failure.is_timeout() {
                format!("{place} did not answer in time (bucket `{bucket}`)")
            } else {
                format!("cannot connect to {place}: {}", source_text(&err))
            }
        }
        SdkError::TimeoutError(_) => format!("{place} did not answer in time (bucket `{bucket}`)"),
        SdkError::ConstructionFailure(_) => {
            format!("cannot make a request for the bucket `{bucket}`: {detail}")
        }
        _ => {
            let code = err.code().map(String::from);
            let text = err.message().unwrap_or_default().to_string();
            match (code.as_deref(), status) {
                (Some("NoSuchBucket"), _) | (None, Some(404)) => {
                    format!("the bucket `{bucket}` does not exist at {place}")
                }
                (Some("InvalidAccessKeyId"), _) => format!(
                    "the AWS access key id is not known to {place} (bucket `{bucket}`): check the credentials"
                ),
                (Some("SignatureDoesNotMatch"), _) => format!(
                    "the AWS secret access key does not match its access key id (bucket `{bucket}`): check the credentials"
                ),
                (Some("PermanentRedirect" | "AuthorizationHeaderMalformed"), _)
                | (None, Some(301)) => match bucket_region {
                    Some(region) => format!(
                        "the bucket `{bucket}` is in the region {region}: set that region on the node or its connection"
                    ),
                    None => format!("the bucket `{bucket}` is in another region: {text}"),
                },
                (Some("AccessDenied"), _) | (None, Some(403)) => {
                    format!("access to the bucket `{bucket}` is denied: {text}")
                        .trim_end_matches(": ")
                        .to_string()
                }
                (Some(code), _) => {
                    format!("S3 refused a request for the bucket `{bucket}`: {code}: {text}")
                }
                (None, _) => format!("S3 failed a request for the bucket `{bucket}`: {detail}"),
            }
        }
    };
    // What passes by itself: no answer, or S3 saying it is busy or failing (5xx,
    // `SlowDown`, `RequestTimeout`). Missing credentials are no passing matter.
    let transient = match &err {
        SdkError::DispatchFailure(_) => !detail.to_lowercase().contains("credentials"),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => {
            status.is_some_and(|s| s >= 500 || s == 429)
                || matches!(err.code(), Some("SlowDown" | "RequestTimeout"))
        }
        _ => false,
    };
    match transient {
        true => NodeError::Transient(message),
        false => NodeError::msg(message),
    }
}

/// The innermost cause of a failure, which is what says what went wrong (connection
/// refused, no such host).
fn source_text(err: &dyn std::error::Error) -> String {
    let mut last = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        last = e.to_string();
        current = e.source();
    }
    last
}

/// Checks that the bucket can be listed, for "Test connection": `Ok` says how many keys
/// the first page under the prefix held.
pub fn test(
    access: Result<Access, NodeError>,
    bucket: &str,
    prefix: &str,
) -> BoxFuture<Result<String, NodeError>> {
    let bucket = bucket.to_string();
    let prefix = normalize_prefix(prefix);
    Box::pin(async move { list_first_page(&access?, &bucket, &prefix).await })
}

/// Checks that an S3 connection's credentials are accepted, for the Connections window:
/// lists the account's buckets. A refusal to list (AccessDenied) still proves the keys
/// are valid, as a request with unknown keys fails with another code.
async fn test_connection(dirs: &Dirs, name: &str) -> Result<String, ConnectorError> {
    let kind_of = |e: NodeError| match e {
        NodeError::Transient(m) => ConnectorError::transient(m),
        other => ConnectorError::fatal(other.to_string()),
    };
    let access = Access::resolve(dirs, Some(name), None, None).map_err(kind_of)?;
    let client = access.client().await.map_err(kind_of)?;
    match client.list_buckets().send().await {
        Ok(answer) => {
            let count = answer.buckets().len();
            Ok(format!(
                "connected to {}: {count} bucket{} visible",
                access.place(),
                if count == 1 { "" } else { "s" }
            ))
        }
        Err(e) if e.code() == Some("AccessDenied") => Ok(format!(
            "the credentials are accepted by {}; they may not list buckets",
            access.place()
        )),
        Err(e)
            if e.code() == Some("InvalidAccessKeyId")
                || e.code() == Some("SignatureDoesNotMatch") =>
        {
            Err(ConnectorError::auth(
                explain(e, &access, "(any)").to_string(),
            ))
        }
        Err(e) => Err(kind_of(explain(e, &access, "(any)"))),
    }
}

async fn list_first_page(access: &Access, bucket: &str, prefix: &str) -> Result<String, NodeError> {
    let client = access.client().await?;
    let page = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1000)
        .send()
        .await
        .map_err(|e| explain(e, access, bucket))?;
    let count = page.key_count().unwrap_or(0);
    let more = if page.is_truncated() == Some(true) {
        " or more"
    } else {
        ""
    };
    Ok(format!(
        "connected to s3://{bucket}/{prefix}: {count}{more} object{} there",
        if count == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_for_addresses_only() {
        assert!(is_local_or_ip("http://127.0.0.1:9000"));
        assert!(is_local_or_ip("http://localhost:9000/"));
        assert!(is_local_or_ip("https://[::1]:9000"));
        assert!(is_local_or_ip("https://10.0.0.5"));
        assert!(!is_local_or_ip("https://s3.eu-west-1.amazonaws.com"));
        assert!(!is_local_or_ip("https://minio.example.com:9000"));
    }

    #[test]
    fn bucket_names() {
        assert!(check_bucket("my-lake.2026").is_ok());
        assert!(check_bucket("My_Lake").is_err());
        assert!(check_bucket("ab").is_err());
        assert!(check_bucket("").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("/crm/opps/"), "crm/opps/");
        assert_eq!(normalize_prefix("crm"), "crm/");
        assert_eq!(normalize_prefix(" "), "");
    }
}
