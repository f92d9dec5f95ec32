//! Source and destination nodes: one module per connector, listed in the registry.

pub mod demo_crm;
pub mod file;
pub mod framework;
pub mod http;
pub mod layout;
pub mod local;
pub mod output;
pub mod rest;
pub mod s3;
pub mod salesforce;
pub mod servicenow;
pub mod webhook;

use framework::Service;

/// Every service connections are made for, in the order the New connection form offers
/// them. Adding one is a module and a line here.
pub static SERVICES: &[&dyn Service] = &[
    &salesforce::Salesforce,
    &servicenow::ServiceNow,
    &s3::S3,
    &rest::AnyHttpApi,
    &webhook::WebhookKey,
];

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
