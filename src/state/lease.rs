//! A flow's run lock when several workers share the state database: a lease row that the
//! running worker renews. A worker that dies stops renewing; once its lease has run out
//! (or at once, when the holder was a process of this machine that is gone) the next run
//! takes the flow over and records the dead worker's run as failed. Its staged output was
//! never published: publishing starts with a commit record, which the next run finishes,
//! and before it a run whose lease ran out gives up instead of publishing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::{Cell, RunRow, StateStore};
use crate::paths::Dirs;

/// How long a lease holds without renewal; `TRIBUTARY_LEASE_SECONDS` sets another.
fn lease_length() -> Duration {
    let seconds = std::env::var("TRIBUTARY_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// This process, as a lease names its holder: `process 4242 on worker-3`.
fn this_holder() -> String {
    format!("process {} on {}", std::process::id(), host())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unnamed host".into())
}

/// Whether the holder named is a process of this machine that has ended.
fn gone_from_here(holder: &str) -> bool {
    let Some((pid, on)) = holder
        .strip_prefix("process ")
        .and_then(|rest| rest.split_once(" on "))
    else {
        return false;
    };
    on == host()
        && pid.parse::<u32>().is_ok()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new("/proc").join(pid).exists()
}

/// A held lease, renewed by a thread of its own until it is dropped.
pub struct Lease {
    /// Tells the renewing thread to stop: `true` to release the lease as it does.
    stop: mpsc::Sender<bool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

impl Lease {
    /// Takes `flow`'s lease for the run `execution_id`, or says who holds it.
    pub fn take(dirs: &Dirs, flow: &str, execution_id: &str) -> Result<Lease, String> {
        Self::take_for(dirs, flow, execution_id, lease_length())
    }

    fn take_for(
        dirs: &Dirs,
        flow: &str,
        execution_id: &str,
        length: Duration,
    ) -> Result<Lease, String> {
        let state = StateStore::open(dirs)?;
        let holder = this_holder();
        let length_ms = length.as_millis() as i64;
        // As run records write it, so the history sorts the dead run among the others.
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let rows = state.db.query(
            "SELECT holder, execution_id, started_at, expires_at FROM leases WHERE flow = $1",
            &[flow.into()],
        )?;
        let taken = match rows.first() {
            None => {
                state.db.execute(
                    "INSERT INTO leases (flow, holder, execution_id, started_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (flow) DO NOTHING",
                    &[
                        flow.into(),
                        (&holder).into(),
                        execution_id.into(),
                        (&started_at).into(),
                        (now_ms() + length_ms).into(),
                    ],
                )? == 1
            }
            Some(row) => {
                let other = row[0].text().unwrap_or_default();
                let other_run = row[1].text().unwrap_or_default();
                let other_start = row[2].text().unwrap_or_default();
                let expires = row[3].int();
                let dead = expires < now_ms() || gone_from_here(&other);
                if !dead {
                    return Err(running_elsewhere(flow, &other, &other_run, &other_start));
                }
                // Taken over only from the lease as read: a worker that took it meanwhile
                // keeps it.
                let took = state.db.execute(
                    "UPDATE leases SET holder = $2, execution_id = $3, started_at = $4,
                         expires_at = $5
                     WHERE flow = $1 AND execution_id = $6 AND expires_at = $7",
                    &[
                        flow.into(),
                        (&holder).into(),
                        execution_id.into(),
                        (&started_at).into(),
                        (now_ms() + length_ms).into(),
                        (&other_run).into(),
                        expires.into(),
                    ],
                )? == 1;
                if took {
                    record_dead_run(&state, flow, &other, &other_run, &other_start, expires)?;
                }
                took
            }
        };
        if !taken {
            // Another worker was quicker: say which.
            let rows = state.db.query(
                "SELECT holder, execution_id, started_at FROM leases WHERE flow = $1",
                &[flow.into()],
            )?;
            let row = rows.first().cloned().unwrap_or_default();
            let text = |i: usize| row.get(i).and_then(Cell::text).unwrap_or_default();
            return Err(running_elsewhere(flow, &text(0), &text(1), &text(2)));
        }
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<bool>();
        let renewer = {
            let (flow, execution_id, lost) =
                (flow.to_string(), execution_id.to_string(), lost.clone());
            std::thread::Builder::new()
                .name("lease".into())
                .spawn(move || renew(state, &flow, &execution_id, length, &stopped, &lost))
                .map_err(|e| format!("cannot start renewing the lease: {e}"))?
        };
        Ok(Lease {
            stop,
            renewer: Some(renewer),
            lost,
        })
    }

    /// Whether the lease ran out under this run (the database was out of reach for longer
    /// than the lease): another worker may be running the flow, so this run must not
    /// publish.
    pub fn lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Stops renewing; `release` gives the flow free at once.
    fn stop(&mut self, release: bool) {
        let _ = self.stop.send(release);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }

    /// For tests: the worker dies, its lease left as it is.
    #[cfg(test)]
    fn die(mut self) {
        self.stop(false);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// Renews the lease every third of its length until told to stop, then releases it
/// (unless told not to). A lease the state cannot be told of runs out by itself.
fn renew(
    state: StateStore,
    flow: &str,
    execution_id: &str,
    length: Duration,
    stop: &mpsc::Receiver<bool>,
    lost: &AtomicBool,
) {
    let length_ms = length.as_millis() as i64;
    let mut held_until = now_ms() + length_ms;
    loop {
        match stop.recv_timeout(length / 3) {
            Ok(false) => return,
            Ok(true) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = state.db.execute(
                    "DELETE FROM leases WHERE flow = $1 AND execution_id = $2",
                    &[flow.into(), execution_id.into()],
                );
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let renewed = state.db.execute(
            "UPDATE leases SET expires_at = $3 WHERE flow = $1 AND execution_id = $2",
            &[
                flow.into(),
                execution_id.into(),
                (now_ms() + length_ms).into(),
            ],
        );
        match renewed {
            Ok(1) => held_until = now_ms() + length_ms,
            // Taken over: another worker found it run out.
            Ok(_) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // Out of reach for now: the lease holds until it runs out.
            Err(e) => {
                tracing::warn!(flow, "cannot renew the lease of run {execution_id}: {e}");
                if now_ms() >= held_until {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}

fn running_elsewhere(flow: &str, holder: &str, run: &str, since: &str) -> String {
    format!(
        "the flow \"{flow}\" is already running (run {run}, {holder}, since {since}); a flow runs once at a time, so that two runs never read the same records: wait for that run to end"
    )
}

/// Puts the run of a worker that died in the history as failed, unless it got there itself.
fn record_dead_run(
    state: &StateStore,
    flow: &str,
    holder: &str,
    run: &str,
    started_at: &str,
    expires_ms: i64,
) -> Result<(), String> {
    if state.run(run)?.is_some() {
        return Ok(());
    }
    let ran_out = chrono::DateTime::from_timestamp_millis(expires_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    let why = if gone_from_here(holder) {
        format!("{holder}, which ran it, ended before the run did")
    } else {
        format!("{holder}, which ran it, stopped renewing its lease (it ran out at {ran_out})")
    };
    let started = chrono::DateTime::parse_from_rfc3339(started_at).ok();
    state.index_run(&RunRow {
        execution_id: run.to_string(),
        flow: flow.to_string(),
        status: "Error".into(),
        trigger: "manual".into(),
        started_at: started_at.to_string(),
        duration_seconds: started
            .map(|s| (chrono::Utc::now() - s.to_utc()).num_milliseconds() as f64 / 1000.0)
            .unwrap_or_default(),
        records_processed: 0,
        records_written: 0,
        records_rejected: 0,
        bytes_written: 0,
        cost_usd: 0.0,
        error: Some(format!("{why}; nothing it staged was published")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{RunFilter, use_test_schema};

    fn shared() -> Option<(tempfile::TempDir, Dirs)> {
        let server = std::env::var("TRIBUTARY_TEST_POSTGRES").ok()?;
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        use_test_schema(&dirs, &server).unwrap();
        Some((dir, dirs))
    }

    #[test]
    fn a_flow_runs_on_one_worker_at_a_time() {
        let Some((_dir, dirs)) = shared() else {
            return;
        };
        let first = Lease::take(&dirs, "Orders", "run-1").unwrap();
        let Err(refused) = Lease::take(&dirs, "Orders", "run-2") else {
            panic!("two leases of one flow");
        };
        assert!(
            refused.contains("already running (run run-1, process "),
            "{refused}"
        );
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        let _other = Lease::take(&dirs, "Invoices", "run-3").expect("another flow runs beside it");
        drop(first);
        Lease::take(&dirs, "Orders", "run-4").expect("free again once the run ended");
    }

    #[test]
    fn a_dead_workers_lease_runs_out_and_its_run_is_recorded_as_failed() {
        let Some((_dir, dirs)) = shared() else {
            return;
        };
        let length = Duration::from_millis(900);
        // A worker on another machine: only the lease running out frees the flow.
        let dead = Lease::take_for(&dirs, "Orders", "run-1", length).unwrap();
        let state = StateStore::open(&dirs).unwrap();
        state
            .db
            .execute(
                "UPDATE leases SET holder = 'process 1 on another-host' WHERE flow = 'Orders'",
                &[],
            )
            .unwrap();
        dead.die();
        assert!(Lease::take_for(&dirs, "Orders", "run-2", length).is_err());
        // A live one keeps its lease by renewing it.
        let live = Lease::take_for(&dirs, "Invoices", "run-3", length).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(Lease::take_for(&dirs, "Invoices", "run-4", length).is_err());
        assert!(!live.lost().load(Ordering::SeqCst));
        let next = Lease::take_for(&dirs, "Orders", "run-2", length).expect("ran out");
        let runs = state.runs(&RunFilter::default()).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].execution_id, "run-1");
        assert_eq!(runs[0].result(), "failed");
        let error = runs[0].error.as_deref().unwrap();
        assert!(
            error
                .starts_with("process 1 on another-host, which ran it, stopped renewing its lease")
                && error.ends_with("nothing it staged was published"),
            "{error}"
        );
        drop(next);
        drop(live);
    }
}
