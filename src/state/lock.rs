//! Lock files that the system releases when their process ends, however it ends: a
//! flow's [`RunLock`] and the data folder's [`ServiceLock`]. Each holds what names its
//! holder, so the one refused can say who has it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::lease::Lease;
use crate::paths::Dirs;

/// A flow's run lock: held by the one live run of the flow. A lock file on one machine; a
/// lease in the database when workers share the state.
pub struct RunLock {
    held: Held,
}

enum Held {
    File(#[allow(dead_code)] File),
    Lease(Lease),
}

impl RunLock {
    /// Takes the lock of `flow` for the run `execution_id`: a lease when the state is
    /// shared, the lock file otherwise.
    pub fn take_for_run(
        dirs: &Dirs,
        shared: bool,
        flow: &str,
        execution_id: &str,
    ) -> Result<Self, String> {
        if shared {
            return Ok(Self {
                held: Held::Lease(Lease::take(dirs, flow, execution_id)?),
            });
        }
        Self::take(dirs, flow)
    }

    /// Set when a lease ran out under the run: it must not publish.
    pub fn lost(&self) -> Option<Arc<AtomicBool>> {
        match &self.held {
            Held::Lease(lease) => Some(lease.lost()),
            Held::File(_) => None,
        }
    }

    /// Takes the lock of `flow`, or says which process holds it.
    pub fn take(dirs: &Dirs, flow: &str) -> Result<Self, String> {
        // The flow's name may hold any character: the file is named by its hash.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(flow.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let path = dirs.data.join("locks").join(format!("{name}.lock"));
        let pid = std::process::id().to_string();
        match take(&path, &pid) {
            Ok(file) => Ok(Self {
                held: Held::File(file),
            }),
            Err(Refused::Held(holder)) => {
                let who = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                Err(format!(
                    "the flow \"{flow}\" is already running ({who}); a flow runs once at a time, so that two runs never read the same records: wait for that run to end"
                ))
            }
            Err(Refused::Failed(message)) => Err(message),
        }
    }
}

/// What a running service says of itself in its lock file, for a second service to name
/// it and for the app to know that flows are being run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceInfo {
    pub pid: u32,
    /// The folder whose flows it runs.
    pub flows: PathBuf,
    /// Where its webhooks, `/healthz` and `/metrics` answer.
    pub listen: Option<String>,
}

/// The lock of the service that runs the flows of a data folder: two services would run
/// every flow twice.
pub struct ServiceLock {
    _file: File,
}

impl ServiceLock {
    fn path(dirs: &Dirs) -> PathBuf {
        dirs.data.join("service.lock")
    }

    /// Takes the data folder's service lock, or says which service holds it. A moment's
    /// wait covers [`ServiceLock::holder`] looking at the same time.
    pub fn take(dirs: &Dirs, info: &ServiceInfo) -> Result<Self, String> {
        let text = serde_json::to_string(info).expect("service info serializes");
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match take(&Self::path(dirs), &text) {
                Ok(file) => return Ok(Self { _file: file }),
                Err(Refused::Held(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(Refused::Held(holder)) => {
                    let who = match serde_json::from_str::<ServiceInfo>(&holder) {
                        Ok(other) => format!(
                            "process {}, running the flows of {}",
                            other.pid,
                            other.flows.display()
                        ),
                        Err(_) => "another process".into(),
                    };
                    return Err(format!(
                        "a service already runs the flows of the data folder {} ({who}); one service per data folder, or every flow would run twice",
                        dirs.data.display()
                    ));
                }
                Err(Refused::Failed(message)) => return Err(message),
            }
        }
    }

    /// The service running on this data folder, if one is.
    pub fn holder(dirs: &Dirs) -> Option<ServiceInfo> {
        let mut file = File::open(Self::path(dirs)).ok()?;
        match file.try_lock_shared() {
            // Free: whatever the file says is from a service that has ended.
            Ok(()) => None,
            Err(_) => {
                let mut text = String::new();
                file.read_to_string(&mut text).ok()?;
                serde_json::from_str(&text).ok()
            }
        }
    }
}

enum Refused {
    /// Another process holds it; what it wrote in the file.
    Held(String),
    Failed(String),
}

/// Takes the exclusive lock of the file at `path` and writes `holder` in it.
fn take(path: &Path, holder: &str) -> Result<File, Refused> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|e| Refused::Failed(format!("cannot create {}: {e}", folder.display())))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Refused::Failed(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            let _ = file.set_len(0);
            let _ = file.write_all(holder.as_bytes());
            let _ = file.flush();
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.rewind();
            let _ = file.read_to_string(&mut text);
            Err(Refused::Held(text))
        }
        Err(TryLockError::Error(e)) => Err(Refused::Failed(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_runs_once_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        let first = RunLock::take(&dirs, "Orders").unwrap();
        let Err(refused) = RunLock::take(&dirs, "Orders") else {
            panic!("a second run of the flow is refused");
        };
        assert!(refused.contains("already running"), "{refused}");
        assert!(
            refused.contains(&std::process::id().to_string()),
            "names the process: {refused}"
        );
        let _other = RunLock::take(&dirs, "Invoices").expect("another flow runs beside it");
        drop(first);
        RunLock::take(&dirs, "Orders").expect("free again once the run ended");
    }
    #[test]
    fn one_service_runs_on_a_data_folder() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        assert_eq!(ServiceLock::holder(&dirs), None);
        let info = ServiceInfo {
            pid: std::process::id(),
            flows: dir.path().join("flows"),
            listen: Some("127.0.0.1:7676".into()),
        };
        let first = ServiceLock::take(&dirs, &info).unwrap();
        assert_eq!(ServiceLock::holder(&dirs), Some(info.clone()));
        let Err(refused) = ServiceLock::take(&dirs, &info) else {
            panic!("a second service is refused");
        };
        assert!(
            refused.contains(&format!("process {}", info.pid)),
            "names the first: {refused}"
        );
        drop(first);
        assert_eq!(ServiceLock::holder(&dirs), None);
    }
}
