//! What every request that carries a secret shares: only HTTPS leaves this machine, and
//! one HTTP client setup (timeouts, proxies from the environment, no redirects).

use std::net::IpAddr;
use std::time::Duration;

/// The host of a URL, without port or IPv6 brackets.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Whether a URL points at this machine.
pub fn is_loopback(url: &str) -> bool {
    let host = host_of(url);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Keys, tokens and records travel in the clear over plain HTTP, so it is allowed only to
/// this machine, where test servers and local stores listen.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if url.starts_with("http://") {
        if is_loopback(url) {
            return Ok(());
        }
        return Err(format!(
            "{url} uses plain HTTP, which would send secrets and records unencrypted; use https:// (plain HTTP is allowed only to this machine)"
        ));
    }
    Err(format!(
        "`{url}` is not a URL; write it as https://host[:port]/…"
    ))
}

/// The HTTP client for sign-in and API requests. Proxies come from `HTTPS_PROXY`,
/// `HTTP_PROXY` and `NO_PROXY`, as every command-line tool takes them. Redirects are not
/// followed: a token endpoint that redirects would otherwise receive a code or a secret
/// meant for another host.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS roots load")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine() {
        assert!(check_url("http://127.0.0.1:9000").is_ok());
        assert!(check_url("http://localhost:9000/x").is_ok());
        assert!(check_url("http://[::1]:8080").is_ok());
        assert!(check_url("https://login.salesforce.com").is_ok());
        let err = check_url("http://minio.example.com").unwrap_err();
        assert!(err.contains("plain HTTP"), "{err}");
        assert!(check_url("http://127.0.0.1.example.com").is_err());
        assert!(check_url("http://user@evil.com?x=127.0.0.1").is_err());
        assert!(check_url("minio.example.com").is_err());
    }
}
