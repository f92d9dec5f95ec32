//! `destination.postgres`: loads the records into a PostgreSQL table, all of a run or
//! none of it.
//!
//! While the run goes, records are copied (`COPY … FROM STDIN`) into a temporary table of
//! the session, typed as the target's columns, so a value the table cannot take is refused
//! then, with the record named. Nothing touches the target table until the run commits:
//! then one transaction creates or widens the table, truncates it (`replace`), moves the
//! staged records in (`insert`, or `INSERT … ON CONFLICT` by the keys for `upsert`) and
//! writes a row for the load in `_tributary_loads`. A run that fails or is killed before
//! that transaction commits leaves the table exactly as it was: the server rolls back a
//! transaction whose client is gone. A run killed while it commits is settled by the next
//! run from the load's row: there when the transaction committed, absent when it was
//! rolled back.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures_util::SinkExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::sql::{self, Column, Differences, quote};
use super::{CONNECTOR, Target};
use crate::connectors::framework::ConnectorError;
use crate::fields::{Problems, any_type};
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, Destination, NodeConfig, NodeError, NodeKind,
    OutputLocation, PlanContext, Published, Runtime,
};
use crate::paths::Dirs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresDestination {
    /// A PostgreSQL connection (host, database, user; the password in the vault).
    #[schemars(extend("x-connection" = CONNECTOR))]
    pub connection: String,
    /// The schema the table is in.
    #[serde(default = "public", skip_serializing_if = "is_public")]
    pub schema: String,
    /// The table to load; names are kept exactly as written, case and spaces included.
    pub table: String,
    /// `insert` adds the records; `upsert` adds them or updates the rows with the same
    /// `keys`; `replace` empties the table and loads the run's records, in one
    /// transaction.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: Mode,
    /// For `upsert`: the fields that identify a row. The table needs a primary key or a
    /// unique index on exactly these columns; a table the destination creates gets one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-field" = true))]
    pub keys: Vec<String>,
    /// Whether a missing table is created from the records' fields and types.
    #[serde(default, skip_serializing_if = "is_default")]
    pub create_table: CreateTable,
    /// What happens when the records have fields the table has no column for: the run
    /// fails before loading anything, naming them (`none`), or the columns are added
    /// (`add_columns`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub evolve: Evolve,
}

fn public() -> String {
    "public".into()
}

fn is_public(schema: &str) -> bool {
    schema == "public"
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Insert,
    Upsert,
    Replace,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CreateTable {
    #[default]
    IfMissing,
    Never,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Evolve {
    #[default]
    None,
    AddColumns,
}

/// PostgreSQL cuts longer names to this many bytes, which would load into another column.
const MAX_NAME_BYTES: usize = 63;

/// The session's staging table: temporary, so it ends with the connection.
const STAGE: &str = "pg_temp.tributary_stage";
/// Its column that keeps the records' order (the last of a key wins in an upsert).
const SEQ: &str = "_tributary_seq";
/// The table with a row per committed load, in the target's schema.
const LOADS: &str = "_tributary_loads";

impl NodeKind for PostgresDestination {
    const TYPE: &'static str = "destination.postgres";
    const TITLE: &'static str = "PostgreSQL";
    const ICON: &'static str = "🐘";
    const TESTS_CONNECTION: bool = true;
    const SERVICE: Option<&'static str> = Some(CONNECTOR);
    const DESCRIPTION: &'static str =
        "Load a PostgreSQL table: insert, upsert by keys or replace, all of a run or none of it";

    fn finish_commit(plan: &serde_json::Value, dirs: &Dirs) -> Result<Published, NodeError> {
        let plan: CommitPlan = serde_json::from_value(plan.clone())
            .map_err(|e| NodeError::msg(format!("the commit record cannot be read: {e}")))?;
        let target = Target::of_connection(dirs, &plan.connection)?;
        let table = sql::qualified(&plan.schema, &plan.table);
        let committed = crate::connectors::block_on(async {
            let client = target.connect().await?;
            let words = |e: tokio_postgres::Error| target.in_words(&e);
            // Waits for the load's transaction if the server has not yet noticed that
            // its client is gone.
            client
                .execute("SELECT pg_advisory_lock($1)", &[&lock_key(&plan.load_id)])
                .await
                .map_err(words)?;
            let found = client
                .query_opt(
                    &format!(
                        "SELECT 1 FROM {} WHERE load_id = $1",
                        sql::qualified(&plan.schema, LOADS)
                    ),
                    &[&plan.load_id],
                )
                .await;
            let found = match found {
                Ok(row) => row.is_some(),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                    false
                }
                Err(e) => return Err(words(e)),
            };
            Ok::<_, ConnectorError>(found)
        })?;
        if !committed {
            return Err(NodeError::msg(format!(
                "the load into {table} was rolled back when the run stopped: none of its records are in the table"
            )));
        }
        Ok(vec![OutputLocation {
            location: target.location(&plan.schema, &plan.table),
            records: plan.records,
            bytes: plan.bytes,
        }]
        .into())
    }
}

impl PostgresDestination {
    fn check(&self, input: &Schema) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.table.trim().is_empty() {
            problems.push("/table", "name the table to load");
        }
        if self.schema.trim().is_empty() {
            problems.push("/schema", "name the schema, e.g. public");
        }
        for (path, name) in [("/table", &self.table), ("/schema", &self.schema)] {
            if name.len() > MAX_NAME_BYTES {
                problems.push(
                    path,
                    format!("`{name}` is longer than PostgreSQL's {MAX_NAME_BYTES} bytes"),
                );
            }
        }
        problems.fields(input, &self.keys, "/keys", any_type, "");
        match self.mode {
            Mode::Upsert if self.keys.is_empty() => problems.push(
                "/keys",
                "an upsert needs the fields that identify a row, e.g. [\"id\"]",
            ),
            Mode::Insert | Mode::Replace if !self.keys.is_empty() => problems.push(
                "/keys",
                "keys are used only with mode upsert; remove them or choose upsert",
            ),
            _ => {}
        }
        for field in input.fields() {
            if field.name().len() > MAX_NAME_BYTES {
                problems.push(
                    "",
                    format!(
                        "the field `{}` is longer than PostgreSQL's {MAX_NAME_BYTES} bytes for a column name; rename it with a map",
                        field.name()
                    ),
                );
            }
        }
        problems.into_result(())
    }

    fn table_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

impl NodeConfig for PostgresDestination {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        self.check(input)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        match self.mode {
            Mode::Insert => self.table_name(),
            Mode::Upsert => format!("{} · upsert by {}", self.table_name(), self.keys.join(", ")),
            Mode::Replace => format!("{} · replace", self.table_name()),
        }
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        let target = Target::of_connection(&cx.dirs, &self.connection);
        let (schema, table) = (self.schema.clone(), self.table.clone());
        Box::pin(async move {
            let target = target?;
            let client = target.connect().await?;
            let columns = client
                .query(sql::COLUMNS, &[&schema, &table])
                .await
                .map_err(|e| target.in_words(&e))?;
            Ok(if columns.is_empty() {
                format!(
                    "signed in to {} as {}; {schema}.{table} does not exist yet",
                    target.address(),
                    target.user
                )
            } else {
                format!(
                    "signed in to {} as {}; {schema}.{table} has {} columns",
                    target.address(),
                    target.user,
                    columns.len()
                )
            })
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.clone().expect("a destination has an input");
        self.check(&input)?;
        let target = Target::of_connection(&cx.dirs, &self.connection)?;
        let runtime = Handle::try_current()
            .map_err(|_| NodeError::msg("PostgreSQL needs the async runtime"))?;
        Ok(Runtime::Destination(Box::new(Load {
            config: self.clone(),
            target,
            input,
            runtime,
            load_id: format!("{}/{}", cx.execution_id, cx.node_id),
            session: None,
            records: 0,
            bytes: 0,
        })))
    }
}

/// A run's load: the session holding the staged records, from the first batch on.
struct Load {
    config: PostgresDestination,
    target: Target,
    input: SchemaRef,
    runtime: Handle,
    load_id: String,
    session: Option<Session>,
    records: u64,
    bytes: u64,
}

struct Session {
    client: tokio_postgres::Client,
    /// The `COPY … FROM STDIN` each batch is sent with.
    copy: String,
    /// What the commit changes in the table's shape before loading: a `CREATE TABLE`,
    /// `ALTER TABLE … ADD COLUMN`s.
    changes: Vec<String>,
}

/// What another process needs to learn whether a killed run's load committed.
#[derive(Debug, Serialize, Deserialize)]
struct CommitPlan {
    connection: String,
    schema: String,
    table: String,
    load_id: String,
    records: u64,
    bytes: u64,
}

impl Load {
    fn table(&self) -> String {
        sql::qualified(&self.config.schema, &self.config.table)
    }

    fn columns(&self) -> String {
        let names: Vec<String> = self
            .input
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        names.join(", ")
    }

    fn words(&self, e: &tokio_postgres::Error) -> NodeError {
        let stage = format!("\"{}\"", STAGE.trim_start_matches("pg_temp."));
        self.target
            .in_words(e)
            .map_message(|m| m.replace(&stage, &self.config.table_name()))
            .into()
    }

    /// Signs in, compares the table with the records, and makes the staging table.
    /// Everything that would stop the load is said here, before any record is sent.
    fn begin(&mut self) -> Result<(), NodeError> {
        if self.session.is_some() {
            return Ok(());
        }
        let config = &self.config;
        let table = self.table();
        let loads = sql::qualified(&config.schema, LOADS);
        let target = &self.target;
        let found = self.runtime.block_on(async {
            let client = target.connect().await?;
            let words = |e: tokio_postgres::Error| target.in_words(&e);
            let columns = client
                .query(sql::COLUMNS, &[&config.schema, &config.table])
                .await
                .map_err(words)?;
            let unique = client
                .query(sql::UNIQUE_KEYS, &[&config.schema, &config.table])
                .await
                .map_err(words)?;
            let may = client
                .query_one(sql::PRIVILEGES, &[&table, &config.schema, &loads])
                .await
                .map_err(words)?;
            Ok::<_, ConnectorError>((client, columns, unique, may))
        });
        let (client, columns, unique, may) = found?;
        let columns: Vec<Column> = columns
            .iter()
            .map(|r| Column {
                name: r.get(0),
                sql_type: r.get(1),
                not_null: r.get(2),
                filled: r.get(3),
            })
            .collect();
        let unique: Vec<Vec<String>> = unique.iter().map(|r| r.get(0)).collect();
        let may_insert: Option<bool> = may.get(0);
        let may_update: Option<bool> = may.get(1);
        let may_truncate: Option<bool> = may.get(2);
        let may_create: Option<bool> = may.get(3);
        let schema_exists: bool = may.get(4);
        let may_create_schema: bool = may.get(5);
        let may_record: Option<bool> = may.get(6);

        let name = config.table_name();
        let user = &self.target.user;
        let mut problems = Vec::new();
        let mut changes = Vec::new();
        let keys = match config.mode {
            Mode::Upsert => config.keys.clone(),
            _ => Vec::new(),
        };
        if columns.is_empty() {
            if config.create_table == CreateTable::Never {
                problems.push(format!(
                    "the table {name} does not exist, and `create_table` is never: create it, or set `create_table` to if_missing"
                ));
            } else if !schema_exists && !may_create_schema {
                problems.push(format!(
                    "there is no schema `{}` in the database {}, and the user `{user}` may not create one",
                    config.schema, self.target.database
                ));
            } else if may_create == Some(false) {
                problems.push(format!(
                    "the table {name} does not exist, and the user `{user}` may not create tables in the schema `{}`",
                    config.schema
                ));
            }
            if !schema_exists {
                changes.push(format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote(&config.schema)
                ));
            }
            changes.push(sql::create_table(
                &config.schema,
                &config.table,
                &self.input,
                &keys,
            ));
        } else {
            let differences = Differences::of(&self.input, &columns);
            if !differences.missing.is_empty() {
                let listed: Vec<String> = differences
                    .missing
                    .iter()
                    .map(|(f, t)| format!("`{f}` ({t})"))
                    .collect();
                match config.evolve {
                    Evolve::AddColumns => {
                        for (field, sql_type) in &differences.missing {
                            changes.push(format!(
                                "ALTER TABLE {table} ADD COLUMN {} {sql_type}",
                                quote(field)
                            ));
                        }
                    }
                    Evolve::None => problems.push(format!(
                        "the table {name} has no column for the fields {}; set `evolve` to add_columns to add them, or leave the fields out with a map",
                        listed.join(", ")
                    )),
                }
            }
            if !differences.unfilled.is_empty() {
                problems.push(format!(
                    "the table {name} needs a value in {} (NOT NULL, without a default), which no field gives",
                    differences
                        .unfilled
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let mut wanted = keys.clone();
            wanted.sort();
            if config.mode == Mode::Upsert && !unique.contains(&wanted) {
                problems.push(format!(
                    "an upsert by {} needs a primary key or a unique index on exactly those columns of {name}: CREATE UNIQUE INDEX ON {table} ({})",
                    keys.join(", "),
                    keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
                ));
            }
            let needed = [
                (may_insert, "INSERT", true),
                (may_update, "UPDATE", config.mode == Mode::Upsert),
                (may_truncate, "TRUNCATE", config.mode == Mode::Replace),
            ];
            for (may, privilege, needed) in needed {
                if needed && may == Some(false) {
                    problems.push(format!(
                        "the user `{user}` may not {} {name}: GRANT {privilege} ON {table} TO {}",
                        privilege.to_lowercase(),
                        quote(user)
                    ));
                }
            }
        }
        let record_refused = match may_record {
            Some(may) => !may,
            None => schema_exists && may_create != Some(true),
        };
        if record_refused {
            problems.push(format!(
                "the user `{user}` may not record loads in {loads}, where a row per load tells a commit cut short from one that finished; GRANT INSERT ON {loads} TO {}, or let the user create it (GRANT CREATE ON SCHEMA {} TO {0})",
                quote(user),
                quote(&config.schema)
            ));
        }
        if !problems.is_empty() {
            return Err(NodeError::msg(problems.join("; ")));
        }

        // The staging table has the target's types and NOT NULLs, so the COPY refuses
        // what the table would.
        let mut defined: Vec<String> = self
            .input
            .fields()
            .iter()
            .map(|f| {
                let existing = columns.iter().find(|c| c.name == *f.name());
                let sql_type = existing
                    .map_or_else(|| sql::column_type(f.data_type()), |c| c.sql_type.clone());
                let not_null = existing.is_some_and(|c| c.not_null) || keys.contains(f.name());
                format!(
                    "{} {sql_type}{}",
                    quote(f.name()),
                    if not_null { " NOT NULL" } else { "" }
                )
            })
            .collect();
        defined.push(format!(
            "{} bigint GENERATED ALWAYS AS IDENTITY",
            quote(SEQ)
        ));
        let create = format!(
            "DROP TABLE IF EXISTS {STAGE}; CREATE TEMP TABLE {} ({})",
            STAGE.trim_start_matches("pg_temp."),
            defined.join(", ")
        );
        self.runtime
            .block_on(client.batch_execute(&create))
            .map_err(|e| self.words(&e))?;
        let copy = format!("COPY {STAGE} ({}) FROM STDIN", self.columns());
        self.session = Some(Session {
            client,
            copy,
            changes,
        });
        Ok(())
    }

    /// Names a record the server refused by its line in the COPY: by its keys when the
    /// node has some, else by its place in the run and its values.
    fn refused(&self, batch: &RecordBatch, e: &tokio_postgres::Error) -> NodeError {
        let said = self.words(e);
        let line = e
            .as_db_error()
            .and_then(|db| db.where_())
            .and_then(|w| w.split(", line ").nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok());
        let Some(row) = line.map(|n| n - 1).filter(|&r| r < batch.num_rows()) else {
            return said;
        };
        let record = if self.config.keys.is_empty() {
            let json = crate::records::clip(&crate::records::row_json(batch, row), 300);
            format!("record {} {json}", self.records + row as u64 + 1)
        } else {
            let keys: Vec<String> = self
                .config
                .keys
                .iter()
                .map(|k| {
                    let value = batch
                        .column_by_name(k)
                        .and_then(|c| arrow::util::display::array_value_to_string(c, row).ok())
                        .unwrap_or_default();
                    format!("{k}={value}")
                })
                .collect();
            format!("the record {}", keys.join(", "))
        };
        NodeError::msg(format!(
            "{} refused {record}: {said}; nothing was loaded",
            self.config.table_name()
        ))
    }
}

impl Destination for Load {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.begin()?;
        let mut text = Vec::with_capacity(batch.get_array_memory_size());
        super::copy::encode(batch, &mut text)?;
        let size = text.len() as u64;
        let session = self.session.as_ref().expect("begun");
        let copied = self.runtime.block_on(async {
            let sink = session.client.copy_in(&session.copy).await?;
            let mut sink = std::pin::pin!(sink);
            sink.send(Cursor::new(text)).await?;
            sink.as_mut().finish().await
        });
        match copied {
            Ok(n) => {
                self.records += n;
                self.bytes += size;
                Ok(())
            }
            Err(e) => Err(self.refused(batch, &e)),
        }
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        // A run without records still creates, widens or (replace) empties the table.
        self.begin()
    }

    fn commit_plan(&self) -> Option<serde_json::Value> {
        serde_json::to_value(CommitPlan {
            connection: self.config.connection.clone(),
            schema: self.config.schema.clone(),
            table: self.config.table.clone(),
            load_id: self.load_id.clone(),
            records: self.records,
            bytes: self.bytes,
        })
        .ok()
    }

    fn commit(mut self: Box<Self>) -> Result<Published, NodeError> {
        self.begin()?;
        let config = &self.config;
        let table = self.table();
        let loads = sql::qualified(&config.schema, LOADS);
        let columns = self.columns();
        let order = quote(SEQ);
        let load = match config.mode {
            Mode::Insert | Mode::Replace => format!(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGE} ORDER BY {order}"
            ),
            Mode::Upsert => {
                let keys: Vec<String> = config.keys.iter().map(|k| quote(k)).collect();
                let keys = keys.join(", ");
                let updates: Vec<String> = (self.input.fields().iter())
                    .filter(|f| !config.keys.contains(f.name()))
                    .map(|f| format!("{0} = EXCLUDED.{0}", quote(f.name())))
                    .collect();
                let action = if updates.is_empty() {
                    "NOTHING".to_string()
                } else {
                    format!("UPDATE SET {}", updates.join(", "))
                };
                // One row per key, the last the run read: a row may change once per
                // statement.
                format!(
                    "INSERT INTO {table} ({columns}) SELECT DISTINCT ON ({keys}) {columns} FROM {STAGE} ORDER BY {keys}, {order} DESC ON CONFLICT ({keys}) DO {action}"
                )
            }
        };
        let mut session = self.session.take().expect("begun");
        let done = self.runtime.block_on(async {
            let tx = session.client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(&self.load_id)])
                .await?;
            for change in &session.changes {
                tx.batch_execute(change).await?;
            }
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {loads} (load_id text PRIMARY KEY, table_name text NOT NULL, records bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await?;
            if config.mode == Mode::Replace {
                tx.batch_execute(&format!("TRUNCATE {table}")).await?;
            }
            let loaded = tx.execute(&load, &[]).await?;
            tx.execute(
                &format!("INSERT INTO {loads} (load_id, table_name, records) VALUES ($1, $2, $3)"),
                &[&self.load_id, &config.table, &(self.records as i64)],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(loaded)
        });
        match done {
            Ok(_) => Ok(vec![OutputLocation {
                location: self.target.location(&config.schema, &config.table),
                records: self.records,
                bytes: self.bytes,
            }]
            .into()),
            Err(e) => Err(NodeError::msg(format!(
                "{} refused the load, and nothing of it is in the table: {}",
                config.table_name(),
                self.words(&e)
            ))),
        }
    }

    fn abort(self: Box<Self>) {
        // Dropping the session ends it, and its staging table with it.
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}

/// The advisory lock a load holds while it commits, from its id.
fn lock_key(load_id: &str) -> i64 {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("tributary-load:{load_id}").as_bytes());
    i64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}
