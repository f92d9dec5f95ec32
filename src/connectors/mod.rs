//! Source and destination nodes: one module per connector, listed in the registry.

pub mod demo_crm;
pub mod file;
pub mod formats;
pub mod http;
pub mod layout;
pub mod local;
pub mod output;
pub mod rest;
pub mod s3;
pub mod salesforce;

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
