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

use serde_json::Value;

use crate::node::Partition;
use crate::paths::Dirs;

mod db;
mod lease;
mod lock;
use db::{Cell, Db};
pub use db::{state_url, use_test_schema};
pub use lock::{RunLock, ServiceInfo, ServiceLock};

pub struct StateStore {
    db: Db,
}

/// A run as the history lists it; the run's folder holds the whole record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// What one part of a partitioned run staged.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedPart {
    /// From 0.
    pub index: u32,
    pub count: u32,
    /// The part's own run.
    pub execution_id: String,
    /// Its destinations' plans: `{"destinations": [{"node", "type", "plan"}]}`.
    pub record: Value,
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
    /// Opens the state of an installation: the SQLite file in its data folder, or the
    /// database `TRIBUTARY_STATE_URL` (or `state.json`) names.
    pub fn open(dirs: &Dirs) -> Result<Self, String> {
        Ok(Self {
            db: Db::open(dirs)?,
        })
    }

    /// Whether several machines share this state.
    pub fn is_shared(&self) -> bool {
        self.db.is_shared()
    }

    /// Where a source of `flow` left off, if it ever finished a run.
    pub fn watermark(&self, flow: &str, node: &str) -> Result<Option<Value>, String> {
        let rows = self.db.query(
            "SELECT value FROM watermarks WHERE flow = $1 AND node = $2",
            &[flow.into(), node.into()],
        )?;
        rows.first()
            .and_then(|row| row[0].text())
            .map(|t| {
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
        let statements = save_marks(flow, execution_id, &saved_at, marks);
        self.db.transaction(&statements).map(|_| ())
    }

    /// Every watermark of a flow, by node.
    pub fn watermarks(&self, flow: &str) -> Result<Vec<Watermark>, String> {
        let rows = self.db.query(
            "SELECT node, value, saved_at, execution_id FROM watermarks
             WHERE flow = $1 ORDER BY node",
            &[flow.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                let node = row[0].text().unwrap_or_default();
                let value = row[1].text().unwrap_or_default();
                Ok(Watermark {
                    value: serde_json::from_str(&value)
                        .map_err(|e| format!("the saved watermark of `{node}` is damaged: {e}"))?,
                    node,
                    saved_at: row[2].text().unwrap_or_default(),
                    execution_id: row[3].text().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Indexes a run (again, if it was).
    pub fn index_run(&self, run: &RunRow) -> Result<(), String> {
        let (sql, params) = index_statement(run);
        self.db.execute(sql, &params).map(|_| ())
    }

    /// One indexed run.
    pub fn run(&self, execution_id: &str) -> Result<Option<RunRow>, String> {
        let rows = self.db.query(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE execution_id = $1"),
            &[execution_id.into()],
        )?;
        Ok(rows.first().map(|row| run_row(row)))
    }

    /// Takes a run out of the history.
    pub fn forget_run(&self, execution_id: &str) -> Result<(), String> {
        self.db.execute(
            "DELETE FROM runs WHERE execution_id = $1",
            &[execution_id.into()],
        )?;
        Ok(())
    }

    /// The execution ids of every indexed run.
    pub fn indexed_runs(&self) -> Result<std::collections::HashSet<String>, String> {
        let rows = self.db.query("SELECT execution_id FROM runs", &[])?;
        Ok(rows.into_iter().filter_map(|r| r[0].text()).collect())
    }

    /// Indexed runs, newest first: of one flow, of one status, started at or after an
    /// instant (RFC 3339), as asked.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, String> {
        let rows = self.db.query(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs
                 WHERE (CAST($1 AS TEXT) IS NULL OR flow = $1)
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2)
                     AND (CAST($3 AS TEXT) IS NULL OR started_at >= $3)
                 ORDER BY started_at DESC, execution_id DESC
                 LIMIT $4"
            ),
            &[
                filter.flow.clone().into(),
                filter.status.clone().into(),
                filter.since.clone().into(),
                filter.limit.map_or(i64::MAX, |l| l as i64).into(),
            ],
        )?;
        Ok(rows.iter().map(|row| run_row(row)).collect())
    }

    /// Has the service run `flow` on its trigger from now on. Run times missed while it
    /// was inactive are not owed.
    pub fn activate(&self, flow: &str) -> Result<(), String> {
        self.db.execute(
            "INSERT INTO activations (flow, active, changed_at, reason, failures, last_due)
             VALUES ($1, 1, $2, NULL, 0, NULL)
             ON CONFLICT (flow) DO UPDATE SET active = 1, changed_at = excluded.changed_at,
                 reason = NULL, failures = 0, last_due = NULL",
            &[flow.into(), now().into()],
        )?;
        Ok(())
    }

    /// Stops the service running `flow`; `reason` when the service itself does it.
    pub fn deactivate(&self, flow: &str, reason: Option<&str>) -> Result<(), String> {
        self.db.execute(
            "INSERT INTO activations (flow, active, changed_at, reason)
             VALUES ($1, 0, $2, $3)
             ON CONFLICT (flow) DO UPDATE SET active = 0, changed_at = excluded.changed_at,
                 reason = excluded.reason",
            &[flow.into(), now().into(), reason.into()],
        )?;
        Ok(())
    }

    /// Every flow that was ever activated, active or not.
    pub fn activations(&self) -> Result<Vec<Activation>, String> {
        let rows = self.db.query(
            "SELECT flow, active, changed_at, reason, failures, last_due FROM activations
             ORDER BY flow",
            &[],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| Activation {
                flow: row[0].text().unwrap_or_default(),
                active: row[1].int() != 0,
                changed_at: row[2].text().unwrap_or_default(),
                reason: row[3].text(),
                failures: row[4].int() as u32,
                last_due: row[5].text(),
            })
            .collect())
    }

    /// `flow`'s activation, if it was ever activated.
    pub fn activation(&self, flow: &str) -> Result<Option<Activation>, String> {
        Ok(self.activations()?.into_iter().find(|a| a.flow == flow))
    }

    /// Claims `flow`'s run time `at` (RFC 3339) for this service: true unless a service
    /// sharing the state acted on it (or a later one) already, so that each run time
    /// starts one run however many services watch the flow.
    pub fn claim_due(&self, flow: &str, at: &str) -> Result<bool, String> {
        let changed = self.db.execute(
            "UPDATE activations SET last_due = $2
             WHERE flow = $1 AND (last_due IS NULL OR last_due < $2)",
            &[flow.into(), at.into()],
        )?;
        Ok(changed == 1)
    }

    /// The size and modification time (ns since 1970) of `path` when a file trigger of
    /// `flow` last took it.
    pub fn taken_file(&self, flow: &str, path: &str) -> Result<Option<(u64, i64)>, String> {
        let rows = self.db.query(
            "SELECT size, modified FROM taken_files WHERE flow = $1 AND path = $2",
            &[flow.into(), path.into()],
        )?;
        Ok(rows.first().map(|r| (r[0].int() as u64, r[1].int())))
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
        self.db.execute(
            "INSERT INTO taken_files (flow, path, size, modified) VALUES ($1, $2, $3, $4)
             ON CONFLICT (flow, path) DO UPDATE SET size = excluded.size,
                 modified = excluded.modified",
            &[
                flow.into(),
                path.into(),
                (size as i64).into(),
                modified.into(),
            ],
        )?;
        Ok(())
    }

    /// Counts a failed run of `flow` (after its retries); the failures in a row so far.
    pub fn count_failure(&self, flow: &str) -> Result<u32, String> {
        let rows = self.db.query(
            "UPDATE activations SET failures = failures + 1 WHERE flow = $1
             RETURNING failures",
            &[flow.into()],
        )?;
        Ok(rows.first().map_or(0, |r| r[0].int() as u32))
    }

    /// A run of `flow` succeeded: its failures in a row start again from none.
    pub fn clear_failures(&self, flow: &str) -> Result<(), String> {
        self.db.execute(
            "UPDATE activations SET failures = 0 WHERE flow = $1",
            &[flow.into()],
        )?;
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
        self.db
            .execute(
                "INSERT INTO commits (execution_id, flow, record, started_at)
                 VALUES ($1, $2, $3, $4)",
                &[
                    execution_id.into(),
                    flow.into(),
                    record.to_string().into(),
                    chrono::Utc::now().to_rfc3339().into(),
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
        let mut statements = save_marks(flow, execution_id, &saved_at, marks);
        statements.push((
            "DELETE FROM commits WHERE execution_id = $1",
            vec![execution_id.into()],
        ));
        statements.push((
            "DELETE FROM staging_journal WHERE execution_id = $1",
            vec![execution_id.into()],
        ));
        statements.extend(forget_partitioned_run(execution_id));
        self.db.transaction(&statements).map(|_| ())
    }

    /// A partitioned run's commit is done: saves its watermarks, indexes the whole run and
    /// forgets its commit record and its parts, together — a kill before leaves the commit
    /// for `tributary commit` to finish, a kill after has nothing left to do.
    pub fn end_partitioned_commit(
        &mut self,
        flow: &str,
        run: &RunRow,
        marks: &[(String, Value)],
    ) -> Result<(), String> {
        let id = run.execution_id.as_str();
        let saved_at = chrono::Utc::now().to_rfc3339();
        let mut statements = save_marks(flow, id, &saved_at, marks);
        statements.push((
            "DELETE FROM commits WHERE execution_id = $1",
            vec![id.into()],
        ));
        statements.extend(forget_partitioned_run(id));
        statements.push(index_statement(run));
        self.db.transaction(&statements).map(|_| ())
    }

    /// Forgets a commit record without saving its watermarks: the publication was rolled
    /// back, so its window must be read again.
    pub fn drop_commit(&self, execution_id: &str) -> Result<(), String> {
        self.db
            .execute(
                "DELETE FROM commits WHERE execution_id = $1",
                &[execution_id.into()],
            )
            .map(|_| ())
    }

    /// The commit records of `flow`'s runs that did not finish publishing, oldest first.
    pub fn pending_commits(&self, flow: &str) -> Result<Vec<(String, Value)>, String> {
        let rows = self.db.query(
            "SELECT execution_id, record FROM commits WHERE flow = $1 ORDER BY started_at",
            &[flow.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                let id = row[0].text().unwrap_or_default();
                let record = serde_json::from_str(&row[1].text().unwrap_or_default())
                    .map_err(|e| format!("the commit record of run {id} is damaged: {e}"))?;
                Ok((id, record))
            })
            .collect()
    }

    /// Records what a part of a partitioned run staged (`record`: its destinations'
    /// plans). A part staged before under the same run id is replaced: its record is
    /// given back, for what it kept to be removed.
    pub fn stage_partition(
        &self,
        flow: &str,
        run_id: &str,
        part: Partition,
        execution_id: &str,
        record: &Value,
    ) -> Result<Option<Value>, String> {
        let earlier = self.db.query(
            "SELECT record FROM staged_partitions WHERE run_id = $1 AND part = $2",
            &[run_id.into(), i64::from(part.index).into()],
        )?;
        // From here the record, not the staging journal, says what to remove.
        self.db.transaction(&[
            (
                "INSERT INTO staged_partitions
                     (run_id, flow, part, parts, execution_id, record, staged_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (run_id, part) DO UPDATE SET flow = excluded.flow,
                     parts = excluded.parts, execution_id = excluded.execution_id,
                     record = excluded.record, staged_at = excluded.staged_at",
                vec![
                    run_id.into(),
                    flow.into(),
                    i64::from(part.index).into(),
                    i64::from(part.count).into(),
                    execution_id.into(),
                    record.to_string().into(),
                    now().into(),
                ],
            ),
            (
                "DELETE FROM staging_journal WHERE execution_id = $1",
                vec![execution_id.into()],
            ),
        ])?;
        Ok(earlier
            .first()
            .and_then(|r| r[0].text())
            .and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// The staged parts of `flow`'s partitioned run `run_id`, by part.
    pub fn staged_partitions(&self, flow: &str, run_id: &str) -> Result<Vec<StagedPart>, String> {
        let rows = self.db.query(
            "SELECT part, parts, execution_id, record FROM staged_partitions
             WHERE flow = $1 AND run_id = $2 ORDER BY part",
            &[flow.into(), run_id.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                let index = row[0].int() as u32;
                Ok(StagedPart {
                    index,
                    count: row[1].int() as u32,
                    execution_id: row[2].text().unwrap_or_default(),
                    record: serde_json::from_str(&row[3].text().unwrap_or_default()).map_err(
                        |e| {
                            format!(
                                "what part {} of run {run_id} staged is damaged: {e}",
                                index + 1
                            )
                        },
                    )?,
                })
            })
            .collect()
    }

    /// Forgets every staged part of the partitioned run `run_id`, and what they agreed on.
    pub fn drop_partitions(&self, run_id: &str) -> Result<(), String> {
        self.db
            .transaction(&forget_partitioned_run(run_id))
            .map(|_| ())
    }

    /// The value of `key` every part of `flow`'s partitioned run `run_id` shares:
    /// `proposal` when no part settled one before, otherwise the one settled first.
    pub fn settle(
        &self,
        flow: &str,
        run_id: &str,
        key: &str,
        proposal: &Value,
    ) -> Result<Value, String> {
        let (_, rows) = self.db.transaction(&[
            (
                "INSERT INTO partition_agreements (run_id, key, flow, value)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, key) DO NOTHING",
                vec![
                    run_id.into(),
                    key.into(),
                    flow.into(),
                    proposal.to_string().into(),
                ],
            ),
            (
                "SELECT flow, value FROM partition_agreements WHERE run_id = $1 AND key = $2",
                vec![run_id.into(), key.into()],
            ),
        ])?;
        let row = rows
            .first()
            .ok_or_else(|| format!("what the parts of run {run_id} share could not be recorded"))?;
        let owner = row[0].text().unwrap_or_default();
        if owner != flow {
            return Err(format!(
                "the run id {run_id} is taken by a partitioned run of \"{owner}\": give this run an id of its own"
            ));
        }
        agreed_value(row)
    }

    /// The value of `key` the parts of the partitioned run `run_id` settled, if any.
    pub fn settled(&self, run_id: &str, key: &str) -> Result<Option<Value>, String> {
        let rows = self.db.query(
            "SELECT flow, value FROM partition_agreements WHERE run_id = $1 AND key = $2",
            &[run_id.into(), key.into()],
        )?;
        rows.first().map(|row| agreed_value(row)).transpose()
    }

    /// Records what `node` (of type `kind`) of the run `execution_id`, which holds `lock`,
    /// has begun to stage so far: the plan its type's `abort_plan` removes.
    pub fn journal_staging(
        &self,
        lock: &str,
        execution_id: &str,
        node: &str,
        kind: &str,
        plan: &Value,
    ) -> Result<(), String> {
        self.db
            .execute(
                "INSERT INTO staging_journal (lock, execution_id, node, type, plan)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (execution_id, node) DO UPDATE SET plan = excluded.plan",
                &[
                    lock.into(),
                    execution_id.into(),
                    node.into(),
                    kind.into(),
                    plan.to_string().into(),
                ],
            )
            .map(|_| ())
    }

    /// What runs under `lock` other than `execution_id` began to stage and never settled:
    /// (run, node, type, plan). The caller holds the lock, so those runs are dead.
    pub fn staged_by_others(
        &self,
        lock: &str,
        execution_id: &str,
    ) -> Result<Vec<(String, String, String, Value)>, String> {
        let rows = self.db.query(
            "SELECT execution_id, node, type, plan FROM staging_journal
             WHERE lock = $1 AND execution_id != $2 ORDER BY execution_id, node",
            &[lock.into(), execution_id.into()],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r[0].text().unwrap_or_default(),
                    r[1].text().unwrap_or_default(),
                    r[2].text().unwrap_or_default(),
                    serde_json::from_str(&r[3].text().unwrap_or_default()).unwrap_or_default(),
                )
            })
            .collect())
    }

    /// The run settled what it staged (published, kept for a commit, or removed).
    pub fn forget_staging(&self, execution_id: &str) -> Result<(), String> {
        self.db
            .execute(
                "DELETE FROM staging_journal WHERE execution_id = $1",
                &[execution_id.into()],
            )
            .map(|_| ())
    }

    /// Forgets a flow's watermarks: its next run reads everything. Returns how many.
    pub fn reset(&self, flow: &str) -> Result<usize, String> {
        self.db
            .execute("DELETE FROM watermarks WHERE flow = $1", &[flow.into()])
            .map(|n| n as usize)
    }
}

/// The statements that save a run's watermarks.
/// The columns of `runs` that [`run_row`] reads, in its order.
const RUN_COLUMNS: &str = "execution_id, flow, status, trigger, started_at, duration_seconds,
    records_processed, records_written, records_rejected, bytes_written, cost_usd, error";

fn run_row(row: &[Cell]) -> RunRow {
    RunRow {
        execution_id: row[0].text().unwrap_or_default(),
        flow: row[1].text().unwrap_or_default(),
        status: row[2].text().unwrap_or_default(),
        trigger: row[3].text().unwrap_or_default(),
        started_at: row[4].text().unwrap_or_default(),
        duration_seconds: row[5].float(),
        records_processed: row[6].int() as u64,
        records_written: row[7].int() as u64,
        records_rejected: row[8].int() as u64,
        bytes_written: row[9].int() as u64,
        cost_usd: row[10].float(),
        error: row[11].text(),
    }
}

/// The statement that indexes `run` (again, if it was).
fn index_statement(run: &RunRow) -> (&'static str, Vec<Cell>) {
    (
        "INSERT INTO runs (execution_id, flow, status, trigger, started_at,
             duration_seconds, records_processed, records_written, records_rejected,
             bytes_written, cost_usd, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (execution_id) DO UPDATE SET flow = excluded.flow,
             status = excluded.status, trigger = excluded.trigger,
             started_at = excluded.started_at, duration_seconds = excluded.duration_seconds,
             records_processed = excluded.records_processed,
             records_written = excluded.records_written,
             records_rejected = excluded.records_rejected,
             bytes_written = excluded.bytes_written, cost_usd = excluded.cost_usd,
             error = excluded.error",
        vec![
            (&run.execution_id).into(),
            (&run.flow).into(),
            (&run.status).into(),
            (&run.trigger).into(),
            (&run.started_at).into(),
            run.duration_seconds.into(),
            (run.records_processed as i64).into(),
            (run.records_written as i64).into(),
            (run.records_rejected as i64).into(),
            (run.bytes_written as i64).into(),
            run.cost_usd.into(),
            run.error.clone().into(),
        ],
    )
}

fn agreed_value(row: &[Cell]) -> Result<Value, String> {
    serde_json::from_str(&row[1].text().unwrap_or_default())
        .map_err(|e| format!("what the parts of a partitioned run share is damaged: {e}"))
}

/// The statements that forget a partitioned run's parts and what they agreed on.
fn forget_partitioned_run(run_id: &str) -> Vec<(&'static str, Vec<Cell>)> {
    vec![
        (
            "DELETE FROM staged_partitions WHERE run_id = $1",
            vec![run_id.into()],
        ),
        (
            "DELETE FROM partition_agreements WHERE run_id = $1",
            vec![run_id.into()],
        ),
    ]
}

fn save_marks(
    flow: &str,
    execution_id: &str,
    saved_at: &str,
    marks: &[(String, Value)],
) -> Vec<(&'static str, Vec<Cell>)> {
    marks
        .iter()
        .map(|(node, value)| {
            (
                "INSERT INTO watermarks (flow, node, value, saved_at, execution_id)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (flow, node) DO UPDATE SET
                     value = excluded.value, saved_at = excluded.saved_at,
                     execution_id = excluded.execution_id",
                vec![
                    flow.into(),
                    node.into(),
                    value.to_string().into(),
                    saved_at.into(),
                    execution_id.into(),
                ],
            )
        })
        .collect()
}

/// Now, as the state keeps instants.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installations to run a test on: one with the SQLite file, and one with a schema of
    /// its own on the test PostgreSQL server when there is one (`TRIBUTARY_TEST_POSTGRES`).
    fn installations() -> Vec<(tempfile::TempDir, Dirs)> {
        let mut all = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        all.push((dir, dirs));
        if let Ok(server) = std::env::var("TRIBUTARY_TEST_POSTGRES") {
            let dir = tempfile::tempdir().unwrap();
            let dirs = Dirs::under(dir.path());
            use_test_schema(&dirs, &server).unwrap();
            assert!(StateStore::open(&dirs).unwrap().is_shared());
            all.push((dir, dirs));
        }
        all
    }

    #[test]
    fn watermarks_are_saved_per_flow_and_node_and_reset() {
        for (_dir, dirs) in installations() {
            watermarks_on(&dirs);
        }
    }

    fn watermarks_on(dirs: &Dirs) {
        let dirs = dirs.clone();
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
        for (_dir, dirs) in installations() {
            commits_on(&dirs);
        }
    }

    fn commits_on(dirs: &Dirs) {
        let dirs = dirs.clone();
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
    fn history_activations_and_taken_files_are_kept() {
        for (_dir, dirs) in installations() {
            let store = StateStore::open(&dirs).unwrap();
            let run = |id: &str, flow: &str, status: &str, at: &str| RunRow {
                execution_id: id.into(),
                flow: flow.into(),
                status: status.into(),
                trigger: "schedule: rate(1 hours)".into(),
                started_at: at.into(),
                duration_seconds: 1.5,
                records_processed: 10,
                records_written: 9,
                records_rejected: 1,
                bytes_written: 1 << 40,
                cost_usd: 0.25,
                error: (status == "Error").then(|| "it broke".to_string()),
            };
            store
                .index_run(&run("r1", "f", "Successful", "2026-12-01T10:00:00Z"))
                .unwrap();
            store
                .index_run(&run("r2", "f", "Error", "2026-12-02T10:00:00Z"))
                .unwrap();
            store
                .index_run(&run("r3", "g", "Successful", "2026-12-03T10:00:00Z"))
                .unwrap();
            // Indexed again: replaced, not doubled.
            store
                .index_run(&run("r1", "f", "Successful", "2026-12-01T10:00:00Z"))
                .unwrap();
            let all = store.runs(&RunFilter::default()).unwrap();
            let ids: Vec<&str> = all.iter().map(|r| r.execution_id.as_str()).collect();
            assert_eq!(ids, ["r3", "r2", "r1"]);
            assert_eq!(all[1], run("r2", "f", "Error", "2026-12-02T10:00:00Z"));
            let of_f = RunFilter {
                flow: Some("f".into()),
                since: Some("2026-12-02T00:00:00Z".into()),
                ..RunFilter::default()
            };
            assert_eq!(store.runs(&of_f).unwrap().len(), 1);
            let last = RunFilter {
                limit: Some(1),
                status: Some("Successful".into()),
                ..RunFilter::default()
            };
            assert_eq!(store.runs(&last).unwrap()[0].execution_id, "r3");
            store.forget_run("r3").unwrap();
            assert_eq!(store.indexed_runs().unwrap().len(), 2);

            assert_eq!(store.count_failure("f").unwrap(), 0, "not activated");
            store.activate("f").unwrap();
            assert_eq!(store.count_failure("f").unwrap(), 1);
            assert_eq!(store.count_failure("f").unwrap(), 2);
            assert!(store.claim_due("f", "2026-12-04T06:30:00Z").unwrap());
            assert!(
                !store.claim_due("f", "2026-12-04T06:30:00Z").unwrap(),
                "taken"
            );
            assert!(
                !store.claim_due("f", "2026-12-04T06:00:00Z").unwrap(),
                "passed"
            );
            store
                .deactivate("f", Some("failed 2 times in a row"))
                .unwrap();
            let a = store.activation("f").unwrap().unwrap();
            assert!(!a.active);
            assert_eq!(a.failures, 2);
            assert_eq!(a.reason.as_deref(), Some("failed 2 times in a row"));
            assert_eq!(a.last_due.as_deref(), Some("2026-12-04T06:30:00Z"));
            store.activate("f").unwrap();
            let a = store.activation("f").unwrap().unwrap();
            assert!(a.active && a.failures == 0 && a.reason.is_none());

            assert_eq!(store.taken_file("f", "/in/a.csv").unwrap(), None);
            store
                .take_file("f", "/in/a.csv", 10, 1_700_000_000_000_000_000)
                .unwrap();
            store
                .take_file("f", "/in/a.csv", 12, 1_700_000_000_000_000_001)
                .unwrap();
            assert_eq!(
                store.taken_file("f", "/in/a.csv").unwrap(),
                Some((12, 1_700_000_000_000_000_001))
            );
        }
    }

    #[test]
    fn a_state_of_a_newer_schema_is_refused_and_an_older_one_migrated() {
        // A state file as releases before the schema had a version left it.
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::under(dir.path());
        std::fs::create_dir_all(&dirs.data).unwrap();
        let old = rusqlite::Connection::open(dirs.data.join("state.sqlite")).unwrap();
        old.execute_batch(
            "CREATE TABLE watermarks (flow TEXT NOT NULL, node TEXT NOT NULL, value TEXT NOT NULL,
                 saved_at TEXT NOT NULL, execution_id TEXT NOT NULL, PRIMARY KEY (flow, node));
             INSERT INTO watermarks VALUES ('f', 'src', '7', '2026-11-01T00:00:00Z', 'r0');",
        )
        .unwrap();
        drop(old);
        let store = StateStore::open(&dirs).unwrap();
        assert_eq!(
            store.watermark("f", "src").unwrap(),
            Some(serde_json::json!(7))
        );
        drop(store);
        for (_dir, dirs) in installations() {
            let store = StateStore::open(&dirs).unwrap();
            store
                .db
                .execute("UPDATE tributary_schema SET version = 99", &[])
                .unwrap();
            drop(store);
            let refused = StateStore::open(&dirs).err().unwrap();
            assert!(
                refused.contains("schema version 99, newer than this Tributary knows (4)")
                    && refused.contains("update tributary"),
                "{refused}"
            );
        }
    }
}
