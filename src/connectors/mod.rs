//! Source and destination nodes: one module per connector, listed in the registry.

pub mod catalog;
pub mod demo_crm;
mod encoders;
pub mod file;
pub mod framework;
pub mod google;
pub mod google_ads;
pub mod google_analytics;
pub mod http;
pub mod layout;
pub mod local;
pub mod meta_ads;
pub mod output;
pub mod pages;
pub mod postgres;
pub mod rest;
pub mod s3;
pub mod salesforce;
pub mod sap;
pub mod servicenow;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, OnceLock};

use framework::Service;
use framework::declared::declare;
use framework::manifest::Manifest;

use crate::paths::Dirs;

/// The connectors declared by manifests that ship with Tributary, by file name.
pub(crate) const BUILT_IN_MANIFESTS: &[(&str, &str)] = &[
    ("zendesk.json", include_str!("manifests/zendesk.json")),
    ("slack.json", include_str!("manifests/slack.json")),
];

/// The apps whose connectors are written in Rust.
const APPS: &[&dyn Service] = &[
    &salesforce::Salesforce,
    &servicenow::ServiceNow,
    &sap::Sap,
    &google_analytics::GoogleAnalytics,
    &google_ads::GoogleAds,
    &meta_ads::MetaAds,
];

/// The services that are not one app: object stores, any HTTP API, webhooks.
const GENERAL: &[&dyn Service] = &[
    &s3::S3,
    &postgres::Postgres,
    &rest::AnyHttpApi,
    &webhook::WebhookKey,
];

/// The services of the manifests that ship with Tributary.
static DECLARED: LazyLock<Vec<&'static dyn Service>> = LazyLock::new(|| {
    BUILT_IN_MANIFESTS
        .iter()
        .map(|(file, text)| {
            let manifest = Manifest::parse(text)
                .unwrap_or_else(|e| panic!("the built-in manifest {file}: {e}"));
            declare(manifest) as &'static dyn Service
        })
        .collect()
});

/// The user's own manifests, read once at start by [`load_manifests`].
static USER_MANIFESTS: OnceLock<Vec<Manifest>> = OnceLock::new();

/// Every service connections are made for, in the order the New connection form offers
/// them: the apps written in Rust, those declared by the manifests that ship with
/// Tributary, the user's own, then the general ones. Adding one is a module and a line
/// here, or a manifest.
static SERVICES: LazyLock<Vec<&'static dyn Service>> = LazyLock::new(|| {
    LISTED.store(true, Ordering::SeqCst);
    let users = USER_MANIFESTS.get().into_iter().flatten();
    (APPS.iter().copied())
        .chain(DECLARED.iter().copied())
        .chain(users.map(|m| declare(m.clone()) as &'static dyn Service))
        .chain(GENERAL.iter().copied())
        .collect()
});

/// Whether [`SERVICES`] was made: manifests read after that would not be in it.
static LISTED: AtomicBool = AtomicBool::new(false);

/// Every service, built-in and declared.
pub fn services() -> &'static [&'static dyn Service] {
    &SERVICES
}

/// Reads the user's manifests (`*.json` in the `connectors` folder of the data home),
/// once, before anything asks for the services. A manifest that cannot be used is left
/// out with a message naming its file and what is wrong; the rest of the app carries on.
pub fn load_manifests(dirs: &Dirs) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found: Vec<Manifest> = Vec::new();
    let taken: Vec<&str> = (APPS.iter().chain(GENERAL).chain(DECLARED.iter()))
        .map(|s| s.id())
        .collect();
    let files = match std::fs::read_dir(&dirs.connectors) {
        Ok(entries) => {
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            files
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            problems.push(format!("{}: {e}", dirs.connectors.display()));
            Vec::new()
        }
    };
    for path in files {
        let read = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| Manifest::parse(&text));
        match read {
            Ok(m) if taken.contains(&m.id.as_str()) || found.iter().any(|f| f.id == m.id) => {
                problems.push(format!(
                    "{}: there is already a connector `{}`; give this one another `id`",
                    path.display(),
                    m.id
                ))
            }
            Ok(m) => found.push(m),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    if USER_MANIFESTS.set(found).is_err() || LISTED.load(Ordering::SeqCst) {
        problems.push("the connector manifests were read after the connectors were listed; they count from the next start".into());
    }
    problems
}

/// Runs network work from code that is not async (planning, which the app does on a
/// blocking worker and the command line outside any runtime), on a thread of its own so it
/// never blocks an async runtime's thread.
pub fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for one request")
                    .block_on(future)
            })
            .join()
            .expect("the request thread ended")
    })
}
