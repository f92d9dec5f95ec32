//! What nodes learn of their services while a flow is planned (an object's fields, the
//! format of a bucket's files, the first page of an API), kept a minute, and a failure
//! five seconds: the app plans the flow on every edit, and asking the service each time
//! would be slow and cost requests. One cache belongs to each workspace (an app window, a
//! command, the service) and is handed to nodes in their contexts, so two data folders in
//! one process never see each other's answers.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long an answer is trusted.
const FRESH: Duration = Duration::from_secs(60);
/// How long a failure is repeated without asking again.
const FRESH_FAILURE: Duration = Duration::from_secs(5);

type Kept = Arc<dyn Any + Send + Sync>;
type Answer = Result<Kept, Kept>;

/// A workspace's cache of what services said; cheap to clone, clones share it.
#[derive(Clone, Default)]
pub struct Discovery(Arc<Mutex<HashMap<String, (Instant, Answer)>>>);

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.0.lock().map(|m| m.len()).unwrap_or_default();
        write!(f, "Discovery({entries} answers)")
    }
}

impl Discovery {
    /// What `learn` says given `inputs` (everything the answer depends on: the connection,
    /// the object, the settings that change it), kept while fresh. The key is built here
    /// from the inputs and the kind of answer, so no two nodes share an entry by accident.
    pub fn learn<T, E, I>(&self, inputs: &I, learn: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
        I: Serialize + ?Sized,
    {
        let key = format!(
            "{} {}\n{}",
            std::any::type_name::<T>(),
            std::any::type_name::<E>(),
            serde_json::to_string(inputs).expect("discovery inputs are plain data")
        );
        if let Some((at, answer)) = self.0.lock().unwrap().get(&key) {
            let fresh = if answer.is_ok() { FRESH } else { FRESH_FAILURE };
            if at.elapsed() < fresh {
                let kept = "the key names the answer's types";
                return match answer {
                    Ok(value) => Ok(value.downcast_ref::<T>().expect(kept).clone()),
                    Err(e) => Err(e.downcast_ref::<E>().expect(kept).clone()),
                };
            }
        }
        let learnt = learn();
        let kept: Answer = match &learnt {
            Ok(value) => Ok(Arc::new(value.clone())),
            Err(e) => Err(Arc::new(e.clone())),
        };
        self.0.lock().unwrap().insert(key, (Instant::now(), kept));
        learnt
    }

    /// Forgets every answer: after a login or a change of connection, services may answer
    /// otherwise.
    pub fn forget(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_by_their_inputs_and_kind() {
        let discovery = Discovery::default();
        let mut asked = 0;
        for _ in 0..3 {
            let n: u32 = discovery
                .learn(&("describe", "crm", "Account"), || {
                    asked += 1;
                    Ok::<_, String>(7)
                })
                .unwrap();
            assert_eq!(n, 7);
        }
        assert_eq!(asked, 1);
        // Other inputs, or another kind of answer to the same inputs, are asked anew.
        let other: u32 = discovery
            .learn(&("describe", "crm", "Lead"), || Ok::<_, String>(8))
            .unwrap();
        assert_eq!(other, 8);
        let text: String = discovery
            .learn(&("describe", "crm", "Account"), || {
                Ok::<_, String>("fields".to_string())
            })
            .unwrap();
        assert_eq!(text, "fields");
        // A clone shares the answers; forgetting clears them for every clone.
        let clone = discovery.clone();
        clone.forget();
        let again: u32 = discovery
            .learn(&("describe", "crm", "Account"), || Ok::<_, String>(9))
            .unwrap();
        assert_eq!(again, 9);
        // Failures are kept too, a shorter while, with their own type.
        let failed: Result<u32, u8> = discovery.learn(&"down", || Err(3));
        assert_eq!(failed, Err(3));
        let kept: Result<u32, u8> = discovery.learn(&"down", || Ok(1));
        assert_eq!(kept, Err(3));
    }
}
