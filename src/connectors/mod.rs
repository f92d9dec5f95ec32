//! Source and destination nodes: one module per connector, listed in the registry.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

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

/// What a node learnt of its service while planning (fields, an object's description),
/// kept a minute, and a failure five seconds: the app plans the flow on every edit, and
/// asking the service each time would be slow and cost requests.
pub struct PlanCache<T>(LazyLock<Mutex<HashMap<String, Learnt<T>>>>);

/// When something was learnt, and what.
type Learnt<T> = (Instant, Result<T, String>);

impl<T: Clone> PlanCache<T> {
    pub const fn new() -> Self {
        PlanCache(LazyLock::new(Default::default))
    }

    /// The answer kept for `key` while fresh, else what `learn` says now.
    pub fn get_or_learn(
        &self,
        key: String,
        learn: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        if let Some((at, learnt)) = self.0.lock().unwrap().get(&key) {
            let fresh = match learnt {
                Ok(_) => Duration::from_secs(60),
                Err(_) => Duration::from_secs(5),
            };
            if at.elapsed() < fresh {
                return learnt.clone();
            }
        }
        let learnt = learn();
        self.0
            .lock()
            .unwrap()
            .insert(key, (Instant::now(), learnt.clone()));
        learnt
    }
}

impl<T: Clone> Default for PlanCache<T> {
    fn default() -> Self {
        Self::new()
    }
}
