//! What runs remember between them: each incremental source's watermark, the point its
//! next run starts from. Kept in SQLite (`state.sqlite` in the data folder) so that saving
//! all of a run's watermarks is one transaction, and several processes can share it.
//!
//! A watermark is saved only after every destination of the run has committed its output:
//! a run that fails, is cancelled or killed leaves the old one, so its window is read again
//! and nothing is lost.
//!
//! Publishing is two-phase. Before a destination publishes anything, the run writes a
//! *commit record*: what each destination needs to finish publishing, and the watermarks
//! the run reached. The watermarks are saved and the record deleted in one transaction once
//! every destination has published. A run killed in between leaves the record, and the
//! next run of the flow finishes the publication from it and saves those watermarks before
//! it reads anything, so no record is written twice and none is lost.
//!
//! A flow runs once at a time: [`RunLock`] is a lock file a live run holds; one service
//! runs on a data folder: [`ServiceLock`].
//!
//! Every run is also indexed here (`runs`): the run records in the run folders stay what
//! they are, and the index answers "what ran, when, how did it go" without reading them all.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::paths::Dirs;

mod lock;
pub use lock::{RunLock, ServiceInfo, ServiceLock};

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

/// A run as the history lists it; the run's folder holds the whole record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRow {
    pub execution_id: String,
    pub flow: String,
    /// `Successful`, `Error` or `Canceled`, as the run record says.
    pub status: String,
    /// What started it: `manual` (the app or `tributary run`), `schedule: …` or
    /// `event: …` with the cause.
    pub trigger: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_seconds: f64,
    pub records_processed: u64,
    pub records_written: u64,
    pub records_rejected: u64,
    pub bytes_written: u64,
    pub cost_usd: f64,
    pub error: Option<String>,
}

impl RunRow {
    /// How the run ended, in words: successful, failed or canceled.
    pub fn result(&self) -> &'static str {
        match self.status.as_str() {
            "Successful" => "successful",
            "Canceled" => "canceled",
            "Skipped" => "skipped",
            _ => "failed",
        }
    }

    /// How it was started, in a word: `manual`, `schedule` or `event`.
    pub fn how(&self) -> &str {
        self.trigger.split(':').next().unwrap_or_default()
    }

    /// When it started, in this machine's time zone, written with `format` (strftime).
    pub fn started_here(&self, format: &str) -> String {
        chrono::DateTime::parse_from_rfc3339(&self.started_at)
            .map(|t| t.with_timezone(&chrono::Local).format(format).to_string())
            .unwrap_or_else(|_| self.started_at.clone())
    }
}

/// Which runs [`StateStore::runs`] lists.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub flow: Option<String>,
    pub status: Option<String>,
    /// RFC 3339, UTC.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

/// Whether `tributary serve` runs a flow on its trigger, and what the service keeps about
/// it between its starts. A flow without a row is inactive.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Activation {
    pub flow: String,
    pub active: bool,
    /// When it was last activated or deactivated (RFC 3339, UTC).
    pub changed_at: String,
    /// Why the service deactivated it; none when a person did.
    pub reason: Option<String>,
    /// Failed runs in a row.
    pub failures: u32,
    /// The last run time the service acted on (RFC 3339), to tell a missed run after a
    /// restart.
    pub last_due: Option<String>,
}

/// One source's saved watermark.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Watermark {
    pub node: String,
    pub value: Value,
    /// When the run that saved it ended (RFC 3339).
    pub saved_at: String,
    pub execution_id: String,
}

impl StateStore {
    pub fn open(dirs: &Dirs) -> Result<Self, String> {
        std::fs::create_dir_all(&dirs.data)
            .map_err(|e| format!("cannot create {}: {e}", dirs.data.display()))?;
        let path = dirs.data.join("state.sqlite");
        let fail =
            |e: rusqlite::Error| format!("cannot open the run state {}: {e}", path.display());
        let conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS watermarks (
                 flow TEXT NOT NULL,
                 node TEXT NOT NULL,
                 value TEXT NOT NULL,
                 saved_at TEXT NOT NULL,
                 execution_id TEXT NOT NULL,
                 PRIMARY KEY (flow, node)
             );
             CREATE TABLE IF NOT EXISTS commits (
                 execution_id TEXT PRIMARY KEY,
                 flow TEXT NOT NULL,
                 record TEXT NOT NULL,
                 started_at TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS runs (
                 execution_id TEXT PRIMARY KEY,
                 flow TEXT NOT NULL,
                 status TEXT NOT NULL,
                 trigger TEXT NOT NULL,
                 started_at TEXT NOT NULL,
                 duration_seconds REAL NOT NULL,
                 records_processed INTEGER NOT NULL,
                 records_written INTEGER NOT NULL,
                 records_rejected INTEGER NOT NULL,
                 bytes_written INTEGER NOT NULL,
                 cost_usd REAL NOT NULL,
                 error TEXT
             );
             CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, started_at);
             CREATE TABLE IF NOT EXISTS activations (
                 flow TEXT PRIMARY KEY,
                 active INTEGER NOT NULL,
                 changed_at TEXT NOT NULL,
                 reason TEXT,
                 failures INTEGER NOT NULL DEFAULT 0,
                 last_due TEXT
             );
             CREATE TABLE IF NOT EXISTS taken_files (
                 flow TEXT NOT NULL,
                 path TEXT NOT NULL,
                 size INTEGER NOT NULL,
                 modified INTEGER NOT NULL,
                 PRIMARY KEY (flow, path)
             );",
        )
        .map_err(fail)?;
        Ok(Self { conn, path })
    }

    fn fail(&self, e: rusqlite::Error) -> String {
        format!("the run state {} failed: {e}", self.path.display())
    }

    /// Where a source of `flow` left off, if it ever finished a run.
    pub fn watermark(&self, flow: &str, node: &str) -> Result<Option<Value>, String> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM watermarks WHERE flow = ?1 AND node = ?2",
                params![flow, node],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| format!("the saved watermark of `{node}` is damaged: {e}"))
        })
        .transpose()
    }

    /// Saves all of a run's watermarks, or none of them.
    pub fn save(
        &mut self,
        flow: &str,
        execution_id: &str,
        marks: &[(String, Value)],
    ) -> Result<(), String> {
        let saved_at = chrono::Utc::now().to_rfc3339();
        let tx = self.conn.transaction().map_err(|e| format!("{e}"))?;
        save_marks(&tx, flow, execution_id, &saved_at, marks)?;
        tx.commit().map_err(|e| self.fail(e))
    }

    /// Every watermark of a flow, by node.
    pub fn watermarks(&self, flow: &str) -> Result<Vec<Watermark>, String> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT node, value, saved_at, execution_id FROM watermarks
                 WHERE flow = ?1 ORDER BY node",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(params![flow], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        rows.map(|row| {
            let (node, value, saved_at, execution_id) = row.map_err(|e| self.fail(e))?;
            Ok(Watermark {
                value: serde_json::from_str(&value)
                    .map_err(|e| format!("the saved watermark of `{node}` is damaged: {e}"))?,
                node,
                saved_at,
                execution_id,
            })
        })
        .collect()
    }

    /// Indexes a run (again, if it was).
    pub fn index_run(&self, run: &RunRow) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO runs (execution_id, flow, status, trigger, started_at,
                     duration_seconds, records_processed, records_written, records_rejected,
                     bytes_written, cost_usd, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    run.execution_id,
                    run.flow,
                    run.status,
                    run.trigger,
                    run.started_at,
                    run.duration_seconds,
                    run.records_processed as i64,
                    run.records_written as i64,
                    run.records_rejected as i64,
                    run.bytes_written as i64,
                    run.cost_usd,
                    run.error,
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Takes a run out of the history.
    pub fn forget_run(&self, execution_id: &str) -> Result<(), String> {
        self.conn
            .execute(
                "DELETE FROM runs WHERE execution_id = ?1",
                params![execution_id],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The execution ids of every indexed run.
    pub fn indexed_runs(&self) -> Result<std::collections::HashSet<String>, String> {
        let mut statement = self
            .conn
            .prepare("SELECT execution_id FROM runs")
            .map_err(|e| self.fail(e))?;
        let ids = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(|e| self.fail(e))?;
        ids.map(|id| id.map_err(|e| self.fail(e))).collect()
    }

    /// Indexed runs, newest first: of one flow, of one status, started at or after an
    /// instant (RFC 3339), as asked.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, String> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT execution_id, flow, status, trigger, started_at, duration_seconds,
                     records_processed, records_written, records_rejected, bytes_written,
                     cost_usd, error
                 FROM runs
                 WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR status = ?2)
                     AND (?3 IS NULL OR started_at >= ?3)
                 ORDER BY started_at DESC, execution_id DESC
                 LIMIT ?4",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(
                params![
                    filter.flow,
                    filter.status,
                    filter.since,
                    filter.limit.map_or(-1, |l| l as i64)
                ],
                |row| {
                    Ok(RunRow {
                        execution_id: row.get(0)?,
                        flow: row.get(1)?,
                        status: row.get(2)?,
                        trigger: row.get(3)?,
                        started_at: row.get(4)?,
                        duration_seconds: row.get(5)?,
                        records_processed: row.get::<_, i64>(6)? as u64,
                        records_written: row.get::<_, i64>(7)? as u64,
                        records_rejected: row.get::<_, i64>(8)? as u64,
                        bytes_written: row.get::<_, i64>(9)? as u64,
                        cost_usd: row.get(10)?,
                        error: row.get(11)?,
                    })
                },
            )
            .map_err(|e| self.fail(e))?;
        rows.map(|r| r.map_err(|e| self.fail(e))).collect()
    }

    /// Has the service run `flow` on its trigger from now on. Run times missed while it
    /// was inactive are not owed.
    pub fn activate(&self, flow: &str) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO activations (flow, active, changed_at, reason, failures, last_due)
                 VALUES (?1, 1, ?2, NULL, 0, NULL)
                 ON CONFLICT (flow) DO UPDATE SET active = 1, changed_at = excluded.changed_at,
                     reason = NULL, failures = 0, last_due = NULL",
                params![flow, now()],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Stops the service running `flow`; `reason` when the service itself does it.
    pub fn deactivate(&self, flow: &str, reason: Option<&str>) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO activations (flow, active, changed_at, reason)
                 VALUES (?1, 0, ?2, ?3)
                 ON CONFLICT (flow) DO UPDATE SET active = 0, changed_at = excluded.changed_at,
                     reason = excluded.reason",
                params![flow, now(), reason],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Every flow that was ever activated, active or not.
    pub fn activations(&self) -> Result<Vec<Activation>, String> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT flow, active, changed_at, reason, failures, last_due FROM activations
                 ORDER BY flow",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(Activation {
                    flow: row.get(0)?,
                    active: row.get(1)?,
                    changed_at: row.get(2)?,
                    reason: row.get(3)?,
                    failures: row.get(4)?,
                    last_due: row.get(5)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.map(|r| r.map_err(|e| self.fail(e))).collect()
    }

    /// `flow`'s activation, if it was ever activated.
    pub fn activation(&self, flow: &str) -> Result<Option<Activation>, String> {
        Ok(self.activations()?.into_iter().find(|a| a.flow == flow))
    }

    /// The service acted on `flow`'s run time `at` (RFC 3339).
    pub fn set_last_due(&self, flow: &str, at: &str) -> Result<(), String> {
        self.conn
            .execute(
                "UPDATE activations SET last_due = ?2 WHERE flow = ?1",
                params![flow, at],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The size and modification time (ns since 1970) of `path` when a file trigger of
    /// `flow` last took it.
    pub fn taken_file(&self, flow: &str, path: &str) -> Result<Option<(u64, i64)>, String> {
        self.conn
            .query_row(
                "SELECT size, modified FROM taken_files WHERE flow = ?1 AND path = ?2",
                params![flow, path],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// A file trigger of `flow` took `path` as it is now: it fires again only when the
    /// file changes.
    pub fn take_file(
        &self,
        flow: &str,
        path: &str,
        size: u64,
        modified: i64,
    ) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO taken_files (flow, path, size, modified) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (flow, path) DO UPDATE SET size = excluded.size,
                     modified = excluded.modified",
                params![flow, path, size as i64, modified],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Counts a failed run of `flow` (after its retries); the failures in a row so far.
    pub fn count_failure(&self, flow: &str) -> Result<u32, String> {
        self.conn
            .query_row(
                "UPDATE activations SET failures = failures + 1 WHERE flow = ?1
                 RETURNING failures",
                params![flow],
                |row| row.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.fail(e))
    }

    /// A run of `flow` succeeded: its failures in a row start again from none.
    pub fn clear_failures(&self, flow: &str) -> Result<(), String> {
        self.conn
            .execute(
                "UPDATE activations SET failures = 0 WHERE flow = ?1",
                params![flow],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Writes a run's commit record: from here on its output is published, now or by the
    /// next run of the flow.
    pub fn begin_commit(
        &self,
        flow: &str,
        execution_id: &str,
        record: &Value,
    ) -> Result<(), String> {
        self.conn
            .execute(
                "INSERT INTO commits (execution_id, flow, record, started_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    execution_id,
                    flow,
                    record.to_string(),
                    chrono::Utc::now().to_rfc3339()
                ],
            )
            .map(|_| ())
            .map_err(|e| format!("cannot write the commit record: {e}"))
    }

    /// The commit is done: saves the run's watermarks and deletes its record, together.
    pub fn end_commit(
        &mut self,
        flow: &str,
        execution_id: &str,
        marks: &[(String, Value)],
    ) -> Result<(), String> {
        let saved_at = chrono::Utc::now().to_rfc3339();
        let path = self.path.display().to_string();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| format!("the run state {path} failed: {e}"))?;
        save_marks(&tx, flow, execution_id, &saved_at, marks)?;
        tx.execute(
            "DELETE FROM commits WHERE execution_id = ?1",
            params![execution_id],
        )
        .map_err(|e| format!("cannot close the commit record: {e}"))?;
        tx.commit()
            .map_err(|e| format!("the run state {path} failed: {e}"))
    }

    /// Forgets a commit record without saving its watermarks: the publication was rolled
    /// back, so its window must be read again.
    pub fn drop_commit(&self, execution_id: &str) -> Result<(), String> {
        self.conn
            .execute(
                "DELETE FROM commits WHERE execution_id = ?1",
                params![execution_id],
            )
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// The commit records of `flow`'s runs that did not finish publishing, oldest first.
    pub fn pending_commits(&self, flow: &str) -> Result<Vec<(String, Value)>, String> {
        let mut statement = self
            .conn
            .prepare("SELECT execution_id, record FROM commits WHERE flow = ?1 ORDER BY started_at")
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(params![flow], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.fail(e))?;
        rows.map(|row| {
            let (id, text) = row.map_err(|e| self.fail(e))?;
            let record = serde_json::from_str(&text)
                .map_err(|e| format!("the commit record of run {id} is damaged: {e}"))?;
            Ok((id, record))
        })
        .collect()
    }

    /// Forgets a flow's watermarks: its next run reads everything. Returns how many.
    pub fn reset(&self, flow: &str) -> Result<usize, String> {
        self.conn
            .execute("DELETE FROM watermarks WHERE flow = ?1", params![flow])
            .map_err(|e| self.fail(e))
    }
}

fn save_marks(
    tx: &rusqlite::Transaction<'_>,
    flow: &str,
    execution_id: &str,
    saved_at: &str,
    marks: &[(String, Value)],
) -> Result<(), String> {
    for (node, value) in marks {
        tx.execute(
            "INSERT INTO watermarks (flow, node, value, saved_at, execution_id)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (flow, node) DO UPDATE SET
                 value = excluded.value, saved_at = excluded.saved_at,
                 execution_id = excluded.execution_id",
            params![flow, node, value.to_string(), saved_at, execution_id],
        )
        .map_err(|e| format!("cannot save the watermark of `{node}`: {e}"))?;
    }
    Ok(())
}

/// Now, as the state keeps instants.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_are_saved_per_flow_and_node_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        let mut store = StateStore::open(&dirs).unwrap();
        assert_eq!(store.watermark("f", "src").unwrap(), None);
        let mark = serde_json::json!({"last_modified": "2026-11-27T10:00:00Z", "keys": ["a"]});
        store
            .save("f", "run-1", &[("src".into(), mark.clone())])
            .unwrap();
        store
            .save("g", "run-2", &[("src".into(), serde_json::json!(1))])
            .unwrap();
        // Another process sees it.
        let again = StateStore::open(&dirs).unwrap();
        assert_eq!(again.watermark("f", "src").unwrap(), Some(mark));
        let later = serde_json::json!({"last_modified": "2026-11-27T11:00:00Z", "keys": []});
        store
            .save("f", "run-3", &[("src".into(), later.clone())])
            .unwrap();
        let all = again.watermarks("f").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].value, later);
        assert_eq!(all[0].execution_id, "run-3");
        assert_eq!(again.reset("f").unwrap(), 1);
        assert_eq!(store.watermark("f", "src").unwrap(), None);
        assert_eq!(
            store.watermark("g", "src").unwrap(),
            Some(serde_json::json!(1))
        );
    }

    #[test]
    fn a_commit_record_lives_until_its_watermarks_are_saved() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        let mut store = StateStore::open(&dirs).unwrap();
        let record = serde_json::json!({"destinations": []});
        store.begin_commit("f", "run-1", &record).unwrap();
        store.begin_commit("g", "run-2", &record).unwrap();
        let again = StateStore::open(&dirs).unwrap();
        assert_eq!(
            again.pending_commits("f").unwrap(),
            vec![("run-1".to_string(), record.clone())]
        );
        store
            .end_commit("f", "run-1", &[("src".into(), serde_json::json!(7))])
            .unwrap();
        assert!(again.pending_commits("f").unwrap().is_empty());
        assert_eq!(
            again.watermark("f", "src").unwrap(),
            Some(serde_json::json!(7))
        );
        store.drop_commit("run-2").unwrap();
        assert!(again.pending_commits("g").unwrap().is_empty());
        assert_eq!(again.watermark("g", "src").unwrap(), None);
    }
}
