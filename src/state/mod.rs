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
//! A flow runs once at a time: [`RunLock`] is a lock file a live run holds.
//!
//! Every run is also indexed here (`runs`): the run records in the run folders stay what
//! they are, and the index answers "what ran, when, how did it go" without reading them all.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::paths::Dirs;

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
             CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, started_at);",
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

/// A flow's run lock: held by the one live run of the flow, released by the system when
/// that process ends however it ends. The file holds the holder's process id, to name it.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `flow`, or says which process holds it.
    pub fn take(dirs: &Dirs, flow: &str) -> Result<Self, String> {
        use std::io::{Read, Seek, Write};
        let folder = dirs.data.join("locks");
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        // The flow's name may hold any character: the file is named by its hash.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(flow.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let path = folder.join(format!("{name}.lock"));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                let _ = file.flush();
                Ok(Self { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                Err(format!(
                    "the flow \"{flow}\" is already running ({who}); a flow runs once at a time, so that two runs never read the same records: wait for that run to end"
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
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
}
