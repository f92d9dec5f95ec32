//! Where run state lives: a SQLite file in the data folder (one machine, the default), or a
//! PostgreSQL database that several workers share (`TRIBUTARY_STATE_URL=postgres://…`, or
//! `url` in `state.json` in the config folder).
//!
//! Both speak the same SQL here: statements are written with `$1` placeholders (turned into
//! SQLite's `?1`) and with column types that mean the same to both (`TEXT`, `BIGINT`,
//! `DOUBLE PRECISION`). The schema is versioned: a newer binary migrates it, an older one
//! refuses a schema newer than it knows instead of misreading it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::paths::Dirs;

/// One value going into a statement or coming out of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    pub fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::Float(f) => Some(f.to_string()),
            Cell::Null => None,
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            Cell::Float(f) => *f as i64,
            Cell::Text(t) => t.parse().unwrap_or_default(),
            Cell::Null => 0,
        }
    }

    pub fn float(&self) -> f64 {
        match self {
            Cell::Int(i) => *i as f64,
            Cell::Float(f) => *f,
            Cell::Text(t) => t.parse().unwrap_or_default(),
            Cell::Null => 0.0,
        }
    }
}

impl From<&str> for Cell {
    fn from(t: &str) -> Self {
        Cell::Text(t.to_string())
    }
}

impl From<String> for Cell {
    fn from(t: String) -> Self {
        Cell::Text(t)
    }
}

impl From<&String> for Cell {
    fn from(t: &String) -> Self {
        Cell::Text(t.clone())
    }
}

impl From<i64> for Cell {
    fn from(i: i64) -> Self {
        Cell::Int(i)
    }
}

impl From<f64> for Cell {
    fn from(f: f64) -> Self {
        Cell::Float(f)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(*i),
            Cell::Float(f) => ValueRef::Real(*f),
            Cell::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

/// PostgreSQL has typed parameters: a value is written as the type the statement gives its
/// place (the schema's types, all of which a `Cell` converts to).
impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            _ if *ty == Type::INT8 => self.int().to_sql(ty, out),
            _ if *ty == Type::INT4 => (self.int() as i32).to_sql(ty, out),
            _ if *ty == Type::FLOAT8 => self.float().to_sql(ty, out),
            _ if *ty == Type::BOOL => (self.int() != 0).to_sql(ty, out),
            _ => self.text().unwrap_or_default().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn cells_of_pg(row: &tokio_postgres::Row) -> Vec<Cell> {
    (0..row.len())
        .map(|i| {
            let ty = row.columns()[i].type_();
            let cell = if *ty == Type::INT8 {
                row.get::<_, Option<i64>>(i).map(Cell::Int)
            } else if *ty == Type::INT4 {
                row.get::<_, Option<i32>>(i).map(|v| Cell::Int(v.into()))
            } else if *ty == Type::FLOAT8 {
                row.get::<_, Option<f64>>(i).map(Cell::Float)
            } else if *ty == Type::BOOL {
                row.get::<_, Option<bool>>(i).map(|b| Cell::Int(b.into()))
            } else {
                row.get::<_, Option<String>>(i).map(Cell::Text)
            };
            cell.unwrap_or(Cell::Null)
        })
        .collect()
}

fn cells_of_sqlite(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Vec<Cell>> {
    use rusqlite::types::ValueRef;
    (0..columns)
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Int(v),
                ValueRef::Real(v) => Cell::Float(v),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Cell::Text(String::from_utf8_lossy(t).into_owned())
                }
            })
        })
        .collect()
}

/// `$1` → `?1`: the statements' placeholders as SQLite numbers them.
fn for_sqlite(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Each version of the schema, from what the one before left. A binary knows the versions
/// up to `SCHEMA.len()`.
const SCHEMA: &[&str] = &[
    // 1: the tables as they were before the schema had a version (every statement is `IF
    // NOT EXISTS`, so a state file of that time is taken as it is).
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
         duration_seconds DOUBLE PRECISION NOT NULL,
         records_processed BIGINT NOT NULL,
         records_written BIGINT NOT NULL,
         records_rejected BIGINT NOT NULL,
         bytes_written BIGINT NOT NULL,
         cost_usd DOUBLE PRECISION NOT NULL,
         error TEXT
     );
     CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, started_at);
     CREATE TABLE IF NOT EXISTS activations (
         flow TEXT PRIMARY KEY,
         active BIGINT NOT NULL,
         changed_at TEXT NOT NULL,
         reason TEXT,
         failures BIGINT NOT NULL DEFAULT 0,
         last_due TEXT
     );
     CREATE TABLE IF NOT EXISTS taken_files (
         flow TEXT NOT NULL,
         path TEXT NOT NULL,
         size BIGINT NOT NULL,
         modified BIGINT NOT NULL,
         PRIMARY KEY (flow, path)
     );",
    // 2: leases, the run locks of workers that share a database: who runs a flow, which
    // run, and until when the lease holds unless it is renewed.
    "CREATE TABLE leases (
         flow TEXT PRIMARY KEY,
         holder TEXT NOT NULL,
         execution_id TEXT NOT NULL,
         started_at TEXT NOT NULL,
         expires_at BIGINT NOT NULL
     );",
    // 3: what each part of a partitioned run staged for `tributary commit`: its
    // destinations' plans, by run id and part (from 0).
    "CREATE TABLE staged_partitions (
         run_id TEXT NOT NULL,
         flow TEXT NOT NULL,
         part BIGINT NOT NULL,
         parts BIGINT NOT NULL,
         execution_id TEXT NOT NULL,
         record TEXT NOT NULL,
         staged_at TEXT NOT NULL,
         PRIMARY KEY (run_id, part)
     );",
    // 4: what every part of a partitioned run agrees on, each value set by the first part
    // to ask: the run's window (its start and end) and where its sources' shares begin.
    "CREATE TABLE partition_agreements (
         run_id TEXT NOT NULL,
         key TEXT NOT NULL,
         flow TEXT NOT NULL,
         value TEXT NOT NULL,
         PRIMARY KEY (run_id, key)
     );
     -- What each running destination has begun to stage (an S3 upload's id), under the
     -- lock its run holds: if the run dies, whoever takes the lock next removes it.
     CREATE TABLE staging_journal (
         lock TEXT NOT NULL,
         execution_id TEXT NOT NULL,
         node TEXT NOT NULL,
         type TEXT NOT NULL,
         plan TEXT NOT NULL,
         PRIMARY KEY (execution_id, node)
     );",
];

/// What a job on the PostgreSQL connection's thread does with the client.
type Job = Box<dyn FnOnce(&mut tokio_postgres::Client, &tokio::runtime::Runtime) + Send>;

/// A PostgreSQL connection driven by a thread of its own, so that the state can be used
/// the same way from plain code and from inside the engine's async tasks (a runtime cannot
/// block on another inside itself).
struct Postgres {
    jobs: mpsc::Sender<Job>,
    /// `host:port/database`, for messages: never the password.
    address: String,
}

impl Postgres {
    fn connect(url: &str) -> Result<Self, String> {
        let (config, tls, address) = parse_url(url)?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, connected) = mpsc::channel();
        let name = address.clone();
        std::thread::Builder::new()
            .name("state-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let client = runtime.block_on(async {
                    let client = match tls {
                        None => {
                            let (client, connection) =
                                config.connect(tokio_postgres::NoTls).await?;
                            tokio::spawn(connection);
                            client
                        }
                        Some(tls) => {
                            let (client, connection) = config.connect(tls).await?;
                            tokio::spawn(connection);
                            client
                        }
                    };
                    Ok::<_, tokio_postgres::Error>(client)
                });
                let mut client = match client {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(pg_words(&e)));
                        return;
                    }
                };
                while let Ok(job) = inbox.recv() {
                    job(&mut client, &runtime);
                }
            })
            .map_err(|e| format!("cannot start the state's connection: {e}"))?;
        connected
            .recv()
            .map_err(|_| "the state's connection stopped".to_string())?
            .map_err(|e| format!("cannot reach the run state in PostgreSQL at {name}: {e}"))?;
        Ok(Self { jobs, address })
    }

    /// Runs `work` on the connection's thread and waits for its answer.
    fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut tokio_postgres::Client, &tokio::runtime::Runtime) -> R + Send + 'static,
    ) -> Result<R, String> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client, runtime| {
            let _ = reply.send(work(client, runtime));
        });
        self.jobs
            .send(job)
            .map_err(|_| "the state's connection stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the state's connection stopped".to_string())
    }
}

/// The server's own words for a failure, or the deepest cause of one on the way to it.
fn pg_words(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// The connection settings of a `postgres://` URL. `sslmode` reads as libpq's:
/// `verify-full` (the default, with `sslrootcert` for an authority of one's own),
/// `require`, or `disable`, which only a server on this machine may be reached with.
#[allow(clippy::type_complexity)]
fn parse_url(
    url: &str,
) -> Result<
    (
        tokio_postgres::Config,
        Option<tokio_postgres_rustls::MakeRustlsConnect>,
        String,
    ),
    String,
> {
    let parsed = url::Url::parse(url)
        .map_err(|e| format!("TRIBUTARY_STATE_URL is not a URL ({e}); write postgres://user:password@host:5432/database"))?;
    let mut mode = None;
    let mut root_cert = None;
    let mut rest = parsed.clone();
    rest.query_pairs_mut().clear();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => {
                rest.query_pairs_mut().append_pair(&key, &value);
            }
        }
    }
    let rest = rest.as_str().trim_end_matches('?').to_string();
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
        format!("TRIBUTARY_STATE_URL does not read as PostgreSQL's ({e}); write postgres://user:password@host:5432/database")
    })?;
    config
        .application_name("tributary")
        .connect_timeout(Duration::from_secs(15));
    let host = parsed.host_str().unwrap_or("localhost").to_string();
    let address = format!("{host}:{}{}", parsed.port().unwrap_or(5432), parsed.path());
    let local = crate::pg_tls::is_local(&host);
    let tls = match mode.as_deref() {
        None if local => None,
        Some("disable") if local => None,
        Some("disable") => {
            return Err(format!(
                "TRIBUTARY_STATE_URL: sslmode=disable would send the password to {host} unencrypted; use require or verify-full (disable is allowed only to this machine)"
            ));
        }
        None | Some("verify-full") => Some(true),
        Some("require") => Some(false),
        Some(other) => {
            return Err(format!(
                "TRIBUTARY_STATE_URL: sslmode is `{other}`; it takes verify-full, require or disable"
            ));
        }
    };
    let tls = match tls {
        None => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            None
        }
        Some(verify) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Some(crate::pg_tls::connector(verify, root_cert.as_deref())?)
        }
    };
    Ok((config, tls, address))
}

/// Where the state of an installation lives, as set: the environment first, then the
/// config folder's `state.json`; none for the SQLite file in the data folder.
pub fn state_url(dirs: &Dirs) -> Result<Option<String>, String> {
    if let Some(url) = std::env::var("TRIBUTARY_STATE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        return Ok(Some(url));
    }
    let path = dirs.config.join("state.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
            Ok(value
                .get("url")
                .and_then(|u| u.as_str())
                .filter(|u| !u.trim().is_empty())
                .map(str::to_string))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// For tests: points `dirs` at a schema of its own on the test PostgreSQL server `server`
/// (`host:port`, user `tributary`, as `scripts/postgres.sh` starts it), so that tests
/// sharing the server never see each other's state. Gives the schema's name.
#[doc(hidden)]
pub fn use_test_schema(dirs: &Dirs, server: &str) -> Result<String, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let schema = format!("state_{}_{n}", std::process::id());
    let url = format!("postgres://tributary:tributary-test@{server}/postgres");
    let (config, _, _) = parse_url(&url)?;
    let create = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    // A thread of its own: the caller may be inside a runtime already.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| pg_words(&e))?;
            tokio::spawn(connection);
            client
                .batch_execute(&create)
                .await
                .map_err(|e| pg_words(&e))
        })
    })
    .join()
    .map_err(|_| "the test schema's thread panicked".to_string())??;
    std::fs::create_dir_all(&dirs.config).map_err(|e| e.to_string())?;
    let url = format!("{url}?options=-csearch_path%3D{schema}");
    std::fs::write(
        dirs.config.join("state.json"),
        serde_json::json!({ "url": url }).to_string(),
    )
    .map_err(|e| e.to_string())?;
    Ok(schema)
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Postgres),
}

/// A connection to the run state, wherever it lives.
pub struct Db {
    backend: Backend,
    /// "the run state /home/…/state.sqlite", "the run state in PostgreSQL at db:5432/x".
    name: String,
}

impl Db {
    pub fn open(dirs: &Dirs) -> Result<Self, String> {
        let db = match state_url(dirs)? {
            Some(url) if url.starts_with("sqlite://") => {
                Self::sqlite(PathBuf::from(url.trim_start_matches("sqlite://")))?
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let pg = Postgres::connect(&url)?;
                Db {
                    name: format!("the run state in PostgreSQL at {}", pg.address),
                    backend: Backend::Postgres(pg),
                }
            }
            Some(_) => {
                return Err(
                    "TRIBUTARY_STATE_URL takes sqlite:///path/to/state.sqlite or postgres://user:password@host:5432/database"
                        .into(),
                );
            }
            None => {
                std::fs::create_dir_all(&dirs.data)
                    .map_err(|e| format!("cannot create {}: {e}", dirs.data.display()))?;
                Self::sqlite(dirs.data.join("state.sqlite"))?
            }
        };
        db.migrate()?;
        Ok(db)
    }

    fn sqlite(path: PathBuf) -> Result<Self, String> {
        let name = format!("the run state {}", path.display());
        let fail = |e: rusqlite::Error| format!("cannot open {name}: {e}");
        let conn = rusqlite::Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
        Ok(Db {
            backend: Backend::Sqlite(conn),
            name,
        })
    }

    /// Whether several machines may share this state (their run locks are leases here).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    fn fail(&self, e: impl std::fmt::Display) -> String {
        format!("{} failed: {e}", self.name)
    }

    /// Brings the schema to this binary's version, one step at a time, each in the same
    /// transaction as its new version number; two processes starting at once take turns.
    fn migrate(&self) -> Result<(), String> {
        let known = SCHEMA.len() as i64;
        let refuse = |found: i64| {
            format!(
                "{} has schema version {found}, newer than this Tributary knows ({known}): it was written by a newer release; update tributary on this machine",
                self.name
            )
        };
        match &self.backend {
            Backend::Sqlite(conn) => {
                let step = || -> rusqlite::Result<Result<(), i64>> {
                    let tx = rusqlite::Transaction::new_unchecked(
                        conn,
                        rusqlite::TransactionBehavior::Immediate,
                    )?;
                    tx.execute_batch(
                        "CREATE TABLE IF NOT EXISTS tributary_schema (version BIGINT NOT NULL)",
                    )?;
                    let found: Option<i64> =
                        tx.query_row("SELECT max(version) FROM tributary_schema", [], |r| {
                            r.get(0)
                        })?;
                    let found = found.unwrap_or(0);
                    if found > known {
                        return Ok(Err(found));
                    }
                    for (i, statements) in SCHEMA.iter().enumerate().skip(found as usize) {
                        tx.execute_batch(statements)?;
                        tx.execute("DELETE FROM tributary_schema", [])?;
                        tx.execute(
                            "INSERT INTO tributary_schema (version) VALUES (?1)",
                            [i as i64 + 1],
                        )?;
                    }
                    tx.commit()?;
                    Ok(Ok(()))
                };
                step().map_err(|e| self.fail(e))?.map_err(refuse)
            }
            Backend::Postgres(pg) => {
                let outcome = pg.run(move |client, runtime| {
                    runtime.block_on(async {
                        let tx = client.transaction().await?;
                        // Two workers starting at once: one migrates, the other waits and
                        // then finds it done.
                        tx.execute("SELECT pg_advisory_xact_lock(7426730)", &[])
                            .await?;
                        tx.batch_execute(
                            "CREATE TABLE IF NOT EXISTS tributary_schema (version BIGINT NOT NULL)",
                        )
                        .await?;
                        let found: Option<i64> = tx
                            .query_one("SELECT max(version) FROM tributary_schema", &[])
                            .await?
                            .get(0);
                        let found = found.unwrap_or(0);
                        if found > known {
                            return Ok(Err(found));
                        }
                        for (i, statements) in SCHEMA.iter().enumerate().skip(found as usize) {
                            tx.batch_execute(statements).await?;
                            tx.execute("DELETE FROM tributary_schema", &[]).await?;
                            tx.execute(
                                "INSERT INTO tributary_schema (version) VALUES ($1)",
                                &[&(i as i64 + 1)],
                            )
                            .await?;
                        }
                        tx.commit().await?;
                        Ok::<_, tokio_postgres::Error>(Ok(()))
                    })
                })?;
                outcome
                    .map_err(|e| self.fail(pg_words(&e)))?
                    .map_err(refuse)
            }
        }
    }

    /// Runs a statement; how many rows it changed.
    pub fn execute(&self, sql: &str, params: &[Cell]) -> Result<u64, String> {
        self.transaction(&[(sql, params.to_vec())])
            .map(|(changed, _)| changed)
    }

    /// The rows a statement gives.
    pub fn query(&self, sql: &str, params: &[Cell]) -> Result<Vec<Vec<Cell>>, String> {
        self.transaction(&[(sql, params.to_vec())])
            .map(|(_, rows)| rows)
    }

    /// Runs the statements in one transaction: all of them or none. Gives the rows changed
    /// by all and the rows the last one gives.
    pub fn transaction(
        &self,
        statements: &[(&str, Vec<Cell>)],
    ) -> Result<(u64, Vec<Vec<Cell>>), String> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let run = || -> rusqlite::Result<(u64, Vec<Vec<Cell>>)> {
                    let tx = rusqlite::Transaction::new_unchecked(
                        conn,
                        rusqlite::TransactionBehavior::Immediate,
                    )?;
                    let mut changed = 0;
                    let mut rows = Vec::new();
                    for (sql, params) in statements {
                        let mut statement = tx.prepare(&for_sqlite(sql))?;
                        let columns = statement.column_count();
                        rows = if columns == 0 {
                            changed +=
                                statement.execute(rusqlite::params_from_iter(params))? as u64;
                            Vec::new()
                        } else {
                            let found = statement
                                .query_map(rusqlite::params_from_iter(params), |row| {
                                    cells_of_sqlite(row, columns)
                                })?
                                .collect::<rusqlite::Result<Vec<_>>>()?;
                            // As PostgreSQL counts them: the rows a RETURNING gave.
                            changed += found.len() as u64;
                            found
                        };
                    }
                    tx.commit()?;
                    Ok((changed, rows))
                };
                run().map_err(|e| self.fail(e))
            }
            Backend::Postgres(pg) => {
                let statements: Vec<(String, Vec<Cell>)> = statements
                    .iter()
                    .map(|(sql, params)| (sql.to_string(), params.clone()))
                    .collect();
                let outcome = pg.run(move |client, runtime| {
                    runtime.block_on(async {
                        let tx = client.transaction().await?;
                        let mut changed = 0;
                        let mut rows = Vec::new();
                        for (sql, params) in &statements {
                            let refs: Vec<&(dyn ToSql + Sync)> =
                                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                            let statement = tx.prepare(sql).await?;
                            if statement.columns().is_empty() {
                                changed += tx.execute(&statement, &refs).await?;
                                rows = Vec::new();
                            } else {
                                let found = tx.query(&statement, &refs).await?;
                                changed += found.len() as u64;
                                rows = found.iter().map(cells_of_pg).collect();
                            }
                        }
                        tx.commit().await?;
                        Ok::<_, tokio_postgres::Error>((changed, rows))
                    })
                })?;
                outcome.map_err(|e| self.fail(pg_words(&e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_sqlite() {
        assert_eq!(
            for_sqlite("UPDATE a SET b = $2 WHERE c = $1 AND d = $10"),
            "UPDATE a SET b = ?2 WHERE c = ?1 AND d = ?10"
        );
    }

    #[test]
    fn a_state_url_says_what_is_wrong_with_it_and_never_its_password() {
        let refused = |url: &str| match parse_url(url) {
            Ok(_) => panic!("{url} was taken"),
            Err(e) => e,
        };
        let e = refused("postgres://u:s3cret@db.example.com/x?sslmode=disable");
        assert!(e.contains("unencrypted") && !e.contains("s3cret"), "{e}");
        let e = refused("postgres://u:s3cret@db.example.com/x?sslmode=prefer");
        assert!(e.contains("`prefer`") && !e.contains("s3cret"), "{e}");
        assert!(refused("not a url").contains("postgres://"));
        let (config, tls, address) =
            parse_url("postgres://u:p@127.0.0.1:5433/state?options=-csearch_path%3Dteam").unwrap();
        assert!(tls.is_none(), "this machine needs no TLS");
        assert_eq!(address, "127.0.0.1:5433/state");
        assert_eq!(config.get_options(), Some("-csearch_path=team"));
        assert_eq!(config.get_dbname(), Some("state"));
        let (_, tls, _) = parse_url("postgres://u:p@db.example.com/state").unwrap();
        assert!(tls.is_some(), "another host is reached over TLS");
    }
}
