//! The catalog of a local lake: beside the data, `_tributary_table.json` (the table's
//! columns, partition fields and partitions, with the records and bytes each holds) and
//! `<table>.sql`, a DuckDB view over every file of the folder that `duckdb` opens as it is.
//! `tributary catalog show FOLDER` prints them.
//!
//! Both files are rewritten whole, through a temporary file and a rename, under a lock on
//! the folder that other runs writing to it wait for: a reader sees the old table or the
//! new one, never half of either.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Column, PartitionKind, WrittenPartition, column_changes, some_folders};
use crate::codecs::FileFormat;
use crate::connectors::layout::{hive_values, unescape_partition_value};
use crate::connectors::output::TableShape;
use crate::node::{NodeError, Registration};

/// The table file's name, in the destination folder.
pub const TABLE_FILE: &str = "_tributary_table.json";

/// `catalog` of `destination.local`: a DuckDB view over the folder, kept beside the data
/// and updated by every run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalCatalog {
    /// The view's name, and its file's (`<table>.sql`); the flow's name in lower case
    /// with underscores when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl LocalCatalog {
    pub fn check(&self, problems: &mut crate::fields::Problems) {
        if let Some(table) = &self.table
            && let Err(message) = check_file_name(table)
        {
            problems.push("/catalog/table", message);
        }
    }
}

/// The view's file is `<table>.sql` in the destination folder.
fn check_file_name(table: &str) -> Result<(), String> {
    if table.trim().is_empty() {
        return Err("name the view, or leave `table` out for the flow's name".into());
    }
    if table.contains(['/', '\\', '\0']) || table.starts_with('.') {
        return Err(format!(
            "`{table}` cannot name a file in the folder: leave out slashes and a leading dot"
        ));
    }
    Ok(())
}

/// What registering a run's files takes, kept in the run's commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub table: String,
    pub flow: String,
    pub node: String,
    pub execution_id: String,
    pub format: FileFormat,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub written: Vec<WrittenPartition>,
    /// The run's files replace what earlier runs wrote in the partitions it writes.
    pub replace_partitions: bool,
}

impl TablePlan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: String,
        flow: &str,
        node: &str,
        execution_id: &str,
        shape: &TableShape,
        written: Vec<WrittenPartition>,
        replace_partitions: bool,
    ) -> Self {
        let column = |f: &arrow::datatypes::FieldRef| Column {
            name: f.name().clone(),
            kind: sql_type(f.data_type()),
        };
        TablePlan {
            table,
            flow: flow.to_string(),
            node: node.to_string(),
            execution_id: execution_id.to_string(),
            format: shape.format,
            columns: shape.columns.iter().map(column).collect(),
            partition_keys: (shape.partition_fields.iter())
                .map(|f| Column {
                    name: f.name().clone(),
                    kind: partition_type(f.data_type()).to_string(),
                })
                .collect(),
            written,
            replace_partitions,
        }
    }
}

/// `_tributary_table.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFile {
    pub table: String,
    /// The view's file, beside this one.
    pub view: String,
    pub flow: String,
    pub node: String,
    pub format: FileFormat,
    /// The folder the table covers.
    pub location: PathBuf,
    /// The fields inside the files, with their DuckDB types, as the last run wrote them.
    pub columns: Vec<Column>,
    /// The fields the folders are named by (`name=value`), in folder order.
    pub partition_keys: Vec<Column>,
    pub partitions: Vec<Partition>,
    pub updated_at: DateTime<Utc>,
    /// The run that last registered files; registering the same run again changes
    /// nothing.
    pub last_execution_id: String,
}

/// One folder of files, as the table file lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    /// Below the table's location; empty for its top.
    pub folder: String,
    /// The partition fields' values, read from the folder's name (null for a missing
    /// value).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub values: IndexMap<String, Option<String>>,
    pub files: u64,
    pub records: u64,
    pub bytes: u64,
    pub updated_at: DateTime<Utc>,
}

/// Writes or updates the table file and the view for a run whose files are in place.
pub fn register(root: &Path, plan: &TablePlan) -> Result<Registration, NodeError> {
    // The folder itself is the lock: nothing is left beside the data for it.
    let lock = File::open(root)
        .map_err(|e| NodeError::io(format!("cannot open {}", root.display()), e))?;
    lock.lock()
        .map_err(|e| NodeError::io(format!("cannot lock {}", root.display()), e))?;
    let before = read(root)?;
    let view = format!("{}.sql", plan.table);
    let mut registration = Registration {
        node: String::new(),
        catalog: "duckdb".into(),
        table: root.join(&view).display().to_string(),
        changes: Vec::new(),
    };
    let now = Utc::now();
    let mut table = match before {
        Some(t) if t.last_execution_id == plan.execution_id => t,
        before => {
            let (mut table, changes) = merge(root, before, plan, now);
            registration.changes = changes;
            table.updated_at = now;
            table
        }
    };
    table.view = view.clone();
    write_atomically(
        &root.join(TABLE_FILE),
        &serde_json::to_vec_pretty(&table).expect("a table file is JSON"),
    )?;
    write_atomically(&root.join(&view), view_sql(&table).as_bytes())?;
    Ok(registration)
}

/// The table file of a folder, if it has one.
pub fn read(root: &Path) -> Result<Option<TableFile>, NodeError> {
    let path = root.join(TABLE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NodeError::io(format!("cannot read {}", path.display()), e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        NodeError::msg(format!(
            "{} is damaged at line {}, column {} ({e}); remove it and the next run writes a new one listing that run's partitions",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// The table after this run: its columns, and its partitions with the run's figures added
/// (or, replacing partitions, in place of theirs); and what changed, in words.
fn merge(
    root: &Path,
    before: Option<TableFile>,
    plan: &TablePlan,
    now: DateTime<Utc>,
) -> (TableFile, Vec<String>) {
    let mut changes = Vec::new();
    let mut partitions = match &before {
        None => {
            changes.push("created the table".to_string());
            Vec::new()
        }
        Some(t) => {
            changes.extend(column_changes(&t.columns, &plan.columns));
            if t.partition_keys != plan.partition_keys {
                let names = |keys: &[Column]| {
                    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
                    match names.is_empty() {
                        true => "none".to_string(),
                        false => names.join(", "),
                    }
                };
                changes.push(format!(
                    "the partition fields changed from {} to {}: the view reads the folders of the new ones; move or remove the older folders",
                    names(&t.partition_keys),
                    names(&plan.partition_keys)
                ));
            }
            t.partitions.clone()
        }
    };
    let mut added = Vec::new();
    for w in &plan.written {
        match partitions.iter_mut().find(|p| p.folder == w.folder) {
            Some(p) => {
                if plan.replace_partitions {
                    (p.files, p.records, p.bytes) = (0, 0, 0);
                }
                p.files += w.files;
                p.records += w.records;
                p.bytes += w.bytes;
                p.updated_at = now;
            }
            None => {
                added.push(w.folder.as_str());
                partitions.push(Partition {
                    folder: w.folder.clone(),
                    values: hive_values(&w.folder).into_iter().collect(),
                    files: w.files,
                    records: w.records,
                    bytes: w.bytes,
                    updated_at: now,
                });
            }
        }
    }
    let partitioned = !(added.is_empty() || (added.len() == 1 && added[0].is_empty()));
    if partitioned {
        changes.push(format!(
            "added {} partition{}: {}",
            added.len(),
            if added.len() == 1 { "" } else { "s" },
            some_folders(added.iter().copied())
        ));
    }
    partitions.sort_by(|a, b| a.folder.cmp(&b.folder));
    let table = TableFile {
        table: plan.table.clone(),
        view: String::new(),
        flow: plan.flow.clone(),
        node: plan.node.clone(),
        format: plan.format,
        location: root.to_path_buf(),
        columns: plan.columns.clone(),
        partition_keys: plan.partition_keys.clone(),
        partitions,
        updated_at: now,
        last_execution_id: plan.execution_id.clone(),
    };
    (table, changes)
}

/// A string in single quotes, as SQL writes it.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `{'name': 'TYPE', …}`, DuckDB's struct literal that its readers take for types.
fn types_struct(columns: &[Column]) -> String {
    let pairs: Vec<String> = (columns.iter())
        .map(|c| format!("{}: {}", literal(&c.name), literal(&c.kind)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The view's SQL: every file of the table's format below its folder, the partition
/// fields read from the folder names with their types.
pub fn view_sql(table: &TableFile) -> String {
    let extension = table.format.extension();
    let files = literal(&format!(
        "{}/**/part-*.{extension}",
        table.location.display()
    ));
    let mut options: Vec<String> = Vec::new();
    match table.format {
        FileFormat::Parquet => options.push("union_by_name = true".into()),
        FileFormat::Csv => {
            options.push("header = true".into());
            options.push("union_by_name = true".into());
            options.push(format!("types = {}", types_struct(&table.columns)));
        }
        FileFormat::Jsonl | FileFormat::Json => {
            let format = match table.format {
                FileFormat::Jsonl => "newline_delimited",
                _ => "array",
            };
            options.push(format!("format = '{format}'"));
            options.push(format!("columns = {}", types_struct(&table.columns)));
        }
    }
    if table.partition_keys.is_empty() {
        options.push("hive_partitioning = false".into());
    } else {
        options.push("hive_partitioning = true".into());
        options.push(format!(
            "hive_types = {}",
            types_struct(&table.partition_keys)
        ));
    }
    let reader = match table.format {
        FileFormat::Parquet => "read_parquet",
        FileFormat::Csv => "read_csv",
        FileFormat::Jsonl | FileFormat::Json => "read_json",
    };
    let own_file = table.location.join(&table.view);
    format!(
        "-- The table {name} that the flow \"{flow}\" (node `{node}`) writes in {folder}.\n\
         -- Tributary rewrites this file after every run. Open it with\n\
         --   duckdb -init {own}\n\
         -- or, inside duckdb: .read {own}\n\
         CREATE OR REPLACE VIEW {view} AS\n\
         SELECT * FROM {reader}({files}, {options});\n",
        name = table.table,
        flow = table.flow.replace('\n', " "),
        node = table.node,
        folder = table.location.display(),
        own = literal(&own_file.display().to_string()),
        view = identifier(&table.table),
        options = options.join(", "),
    )
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let io = |e| NodeError::io(format!("cannot write {}", path.display()), e);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let mut file = File::create(&temporary).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temporary, path).map_err(io)
}

/// DuckDB's name for a field's type.
pub fn sql_type(t: &DataType) -> String {
    use DataType::*;
    match t {
        Boolean => "BOOLEAN".into(),
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INTEGER".into(),
        Int64 => "BIGINT".into(),
        UInt8 => "UTINYINT".into(),
        UInt16 => "USMALLINT".into(),
        UInt32 => "UINTEGER".into(),
        UInt64 => "UBIGINT".into(),
        Float16 | Float32 => "FLOAT".into(),
        Float64 => "DOUBLE".into(),
        Decimal32(p, s) | Decimal64(p, s) => format!("DECIMAL({p},{s})"),
        Decimal128(p, s) | Decimal256(p, s) if *p <= 38 => format!("DECIMAL({p},{s})"),
        Date32 | Date64 => "DATE".into(),
        Timestamp(_, Some(_)) => "TIMESTAMPTZ".into(),
        Timestamp(_, None) => "TIMESTAMP".into(),
        Time32(_) | Time64(_) => "TIME".into(),
        Duration(_) | Interval(_) => "INTERVAL".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "BLOB".into(),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            format!("{}[]", sql_type(f.data_type()))
        }
        Struct(fields) => {
            let inner: Vec<String> = (fields.iter())
                .map(|f| format!("{} {}", identifier(f.name()), sql_type(f.data_type())))
                .collect();
            format!("STRUCT({})", inner.join(", "))
        }
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "MAP({}, {})",
                sql_type(kv[0].data_type()),
                sql_type(kv[1].data_type())
            ),
            _ => "JSON".into(),
        },
        Dictionary(_, value) => sql_type(value),
        _ => "VARCHAR".into(),
    }
}

/// The type of a partition field as the view reads it from a folder's name.
fn partition_type(t: &DataType) -> &'static str {
    match PartitionKind::of(t) {
        PartitionKind::Integer => "BIGINT",
        PartitionKind::Date => "DATE",
        PartitionKind::Boolean => "BOOLEAN",
        PartitionKind::Text => "VARCHAR",
    }
}

/// `tributary catalog show`: the table file of a folder, for people.
pub fn describe(table: &TableFile) -> String {
    use crate::engine::human_bytes;
    let mut s = format!(
        "Table {} ({}) in {}\n  written by the flow \"{}\" (node `{}`), last updated {}\n\nColumns:\n",
        table.table,
        table.format.extension(),
        table.location.display(),
        table.flow,
        table.node,
        table.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    let width = (table.columns.iter().chain(&table.partition_keys))
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for c in &table.columns {
        s += &format!("  {:width$}  {}\n", c.name, c.kind);
    }
    for c in &table.partition_keys {
        s += &format!("  {:width$}  {}  (from the folder names)\n", c.name, c.kind);
    }
    let records: u64 = table.partitions.iter().map(|p| p.records).sum();
    let bytes: u64 = table.partitions.iter().map(|p| p.bytes).sum();
    s += &format!(
        "\n{} partition{}, {} records, {}:\n",
        table.partitions.len(),
        if table.partitions.len() == 1 { "" } else { "s" },
        records,
        human_bytes(bytes)
    );
    let shown: Vec<String> = (table.partitions.iter())
        .map(|p| match p.folder.as_str() {
            "" => "(the folder itself)".to_string(),
            folder => folder
                .split('/')
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => format!(
                        "{}={}",
                        unescape_partition_value(k).unwrap_or_default(),
                        unescape_partition_value(v).unwrap_or_else(|| "(none)".into())
                    ),
                    None => s.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/"),
        })
        .collect();
    let width = shown.iter().map(|f| f.chars().count()).max().unwrap_or(0);
    for (p, folder) in table.partitions.iter().zip(&shown) {
        s += &format!(
            "  {folder:width$}  {:>4} file{}  {:>10} records  {:>10}\n",
            p.files,
            if p.files == 1 { " " } else { "s" },
            p.records,
            human_bytes(p.bytes)
        );
    }
    s += &format!(
        "\nQuery it with DuckDB: duckdb -init {}\n",
        literal(&table.location.join(&table.view).display().to_string())
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(execution: &str, written: &[(&str, u64)], replace: bool) -> TablePlan {
        TablePlan {
            table: "deals".into(),
            flow: "Deals".into(),
            node: "lake".into(),
            execution_id: execution.into(),
            format: FileFormat::Parquet,
            columns: vec![Column {
                name: "Id".into(),
                kind: "VARCHAR".into(),
            }],
            partition_keys: vec![Column {
                name: "Stage".into(),
                kind: "VARCHAR".into(),
            }],
            written: (written.iter())
                .map(|(f, n)| WrittenPartition {
                    folder: f.to_string(),
                    files: 1,
                    records: *n,
                    bytes: 100,
                })
                .collect(),
            replace_partitions: replace,
        }
    }

    #[test]
    fn runs_add_partitions_and_a_run_registered_twice_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = register(
            dir.path(),
            &plan("r1", &[("Stage=Won", 2), ("Stage=Lost", 1)], false),
        )
        .unwrap();
        assert_eq!(
            first.changes,
            [
                "created the table",
                "added 2 partitions: Stage=Won, Stage=Lost"
            ]
        );
        let second = plan("r2", &[("Stage=Won", 3), ("Stage=Open%2FNew", 4)], false);
        let changes = register(dir.path(), &second).unwrap().changes;
        assert_eq!(changes, ["added 1 partition: Stage=Open%2FNew"]);
        // A commit finished again after a kill: nothing is counted twice.
        assert!(register(dir.path(), &second).unwrap().changes.is_empty());
        let table = read(dir.path()).unwrap().unwrap();
        let figures: Vec<(&str, u64, u64)> = (table.partitions.iter())
            .map(|p| (p.folder.as_str(), p.files, p.records))
            .collect();
        assert_eq!(
            figures,
            [
                ("Stage=Lost", 1, 1),
                ("Stage=Open%2FNew", 1, 4),
                ("Stage=Won", 2, 5)
            ]
        );
        assert_eq!(
            table.partitions[1].values["Stage"].as_deref(),
            Some("Open/New")
        );
        let sql = fs::read_to_string(dir.path().join("deals.sql")).unwrap();
        assert!(sql.contains("CREATE OR REPLACE VIEW \"deals\" AS"), "{sql}");
        assert!(sql.contains("hive_types = {'Stage': 'VARCHAR'}"), "{sql}");
        // Replacing partitions: the run's figures stand for the partition.
        register(dir.path(), &plan("r3", &[("Stage=Won", 7)], true)).unwrap();
        let table = read(dir.path()).unwrap().unwrap();
        let won = table
            .partitions
            .iter()
            .find(|p| p.folder == "Stage=Won")
            .unwrap();
        assert_eq!((won.files, won.records), (1, 7));
    }

    #[test]
    fn a_damaged_table_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(TABLE_FILE),
            "{\n  \"table\": \"x\",\n  oops\n}",
        )
        .unwrap();
        let e = register(dir.path(), &plan("r1", &[("Stage=Won", 1)], false))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("_tributary_table.json is damaged at line 3"),
            "{e}"
        );
    }

    #[test]
    fn quotes_in_names_and_paths_stay_inside_their_literals() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(identifier("a\"b"), "\"a\"\"b\"");
    }
}
