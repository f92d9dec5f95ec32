//! What every request that carries a secret shares: only HTTPS leaves this machine, and
//! one HTTP client setup (timeouts, proxies from the environment, no redirects).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use crate::paths::Dirs;

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

/// The proxy set in the app, for this process; `None` leaves it to `HTTPS_PROXY`,
/// `HTTP_PROXY` and `NO_PROXY`.
static PROXY: RwLock<Option<String>> = RwLock::new(None);

/// The proxy every request of this process goes through, when one is set in the app.
pub fn proxy() -> Option<String> {
    PROXY.read().unwrap().clone()
}

fn network_file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("network.json")
}

/// Reads the proxy setting of an installation and uses it for this process.
pub fn load_proxy(dirs: &Dirs) -> Result<Option<String>, String> {
    let path = network_file(dirs);
    let proxy = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?
            .get("proxy")
            .and_then(|p| p.as_str())
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    *PROXY.write().unwrap() = proxy.clone();
    Ok(proxy)
}

/// Saves the proxy setting (empty for none) and uses it from now on.
pub fn save_proxy(dirs: &Dirs, proxy: &str) -> Result<(), String> {
    let proxy = proxy.trim();
    if !proxy.is_empty() {
        reqwest::Proxy::all(proxy).map_err(|e| format!("`{proxy}` is not a proxy URL: {e}"))?;
    }
    let path = network_file(dirs);
    std::fs::create_dir_all(&dirs.config)
        .and_then(|()| {
            std::fs::write(
                &path,
                serde_json::json!({ "proxy": proxy }).to_string() + "\n",
            )
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    *PROXY.write().unwrap() = (!proxy.is_empty()).then(|| proxy.to_string());
    Ok(())
}

/// The HTTP client for sign-in and API requests: through the proxy set in the app, or the
/// ones `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` name, as every command-line tool takes
/// them. Redirects are not followed: a token endpoint that redirects would otherwise
/// receive a code or a secret meant for another host.
pub fn client() -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")));
    if let Some(url) = proxy()
        && let Ok(proxy) = reqwest::Proxy::all(&url)
    {
        builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_env()));
    }
    builder.build().expect("the TLS roots load")
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
