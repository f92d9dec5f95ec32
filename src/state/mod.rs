//! What runs remember between them: each incremental source's watermark, the point its
//! next run starts from. Kept in SQLite (`state.sqlite` in the data folder) so that saving
//! all of a run's watermarks is one transaction, and several processes can share it.
//!
//! A watermark is saved only after every destination of the run has committed its output:
//! a run that fails, is cancelled or killed leaves the old one, so its window is read again
//! and nothing is lost.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::paths::Dirs;

pub struct StateStore {
    conn: Connection,
    path: PathBuf,
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

    /// Forgets a flow's watermarks: its next run reads everything. Returns how many.
    pub fn reset(&self, flow: &str) -> Result<usize, String> {
        self.conn
            .execute("DELETE FROM watermarks WHERE flow = ?1", params![flow])
            .map_err(|e| self.fail(e))
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
}
