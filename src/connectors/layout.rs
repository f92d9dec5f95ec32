//! Where a destination puts its files: AppFlow's S3 output options (prefix by date, by
//! execution id, file size) plus Hive-style partitioning by field values. Shared by every
//! destination that writes files.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Folders by the run's start time (UTC), as AppFlow's prefixFormat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimePrefix {
    /// `2026/`
    Year,
    /// `2026/11/`
    Month,
    /// `2026/11/27/`
    Day,
    /// `2026/11/27/09/`
    Hour,
    /// `2026/11/27/09/45/`
    Minute,
}

/// The folder below the destination for one run: the time prefix, then the execution id.
pub fn run_folder(
    prefix: Option<TimePrefix>,
    by_execution_id: bool,
    started: DateTime<Utc>,
    execution_id: &str,
) -> String {
    let format = match prefix {
        None => "",
        Some(TimePrefix::Year) => "%Y",
        Some(TimePrefix::Month) => "%Y/%m",
        Some(TimePrefix::Day) => "%Y/%m/%d",
        Some(TimePrefix::Hour) => "%Y/%m/%d/%H",
        Some(TimePrefix::Minute) => "%Y/%m/%d/%H/%M",
    };
    let mut folder = if format.is_empty() {
        String::new()
    } else {
        started.format(format).to_string()
    };
    if by_execution_id {
        if !folder.is_empty() {
            folder.push('/');
        }
        folder.push_str(execution_id);
    }
    folder
}

/// The name of a file a run writes; the execution id in it means a rerun never overwrites.
pub fn file_name(execution_id: &str, seq: u32, extension: &str) -> String {
    format!("part-{execution_id}-{seq:05}.{extension}")
}

/// Hive's name for the partition of a missing value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// A partition value made safe for a path, escaped as Hive escapes it.
pub fn escape_partition_value(value: &str) -> String {
    if value.is_empty() {
        return NULL_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || "\"#%'*/:=?\\\x7f{[]^".contains(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A value of a partition folder's name as it was before [`escape_partition_value`];
/// `None` for Hive's missing value.
pub fn unescape_partition_value(text: &str) -> Option<String> {
    if text == NULL_PARTITION {
        return None;
    }
    Some(
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The `name=value` folders of a path below a destination, unescaped, in order; other
/// folders (a time prefix, an execution id) are left out.
pub fn hive_values(folder: &str) -> Vec<(String, Option<String>)> {
    folder
        .split('/')
        .filter_map(|segment| segment.split_once('='))
        .map(|(name, value)| {
            let name = unescape_partition_value(name).unwrap_or_default();
            (name, unescape_partition_value(value))
        })
        .collect()
}

/// Splits batches by the values of partition fields.
pub struct Partitioner {
    columns: Vec<usize>,
    names: Vec<String>,
    /// The partition fields, in folder order.
    fields: Vec<FieldRef>,
    /// The other columns, which the files hold.
    data: Vec<usize>,
    data_schema: SchemaRef,
}

impl Partitioner {
    /// `columns` are indices into `schema`; `keep` also writes them inside the files.
    pub fn new(schema: &Schema, columns: Vec<usize>, keep: bool) -> Self {
        let data: Vec<usize> = (0..schema.fields().len())
            .filter(|i| keep || !columns.contains(i))
            .collect();
        let data_schema = Arc::new(schema.project(&data).expect("indices from the schema"));
        let names = columns
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let fields = columns
            .iter()
            .map(|&i| schema.fields()[i].clone())
            .collect();
        Self {
            columns,
            names,
            fields,
            data,
            data_schema,
        }
    }

    /// What the files hold.
    pub fn data_schema(&self) -> &SchemaRef {
        &self.data_schema
    }

    /// The fields whose values name the folders, in folder order.
    pub fn fields(&self) -> &[FieldRef] {
        &self.fields
    }

    /// The batch cut into one piece per partition, each with its folder (`""` when there
    /// are no partition fields), in order of first appearance.
    pub fn split(
        &self,
        batch: &RecordBatch,
    ) -> Result<Vec<(String, RecordBatch)>, arrow::error::ArrowError> {
        if self.columns.is_empty() {
            return Ok(vec![(String::new(), batch.project(&self.data)?)]);
        }
        let texts: Vec<StringArray> = self
            .columns
            .iter()
            .map(|&i| {
                let c = cast(batch.column(i), &DataType::Utf8)?;
                Ok(c.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("Utf8")
                    .clone())
            })
            .collect::<Result<_, arrow::error::ArrowError>>()?;
        // Each column's values get a number in order of first appearance, and each number
        // its escaped `name=value` folder once; rows are then grouped by their numbers, so
        // nothing is formatted or allocated per row.
        // A fast hash: this is once per record and field, and the values are the user's own.
        let mut fragments: Vec<Vec<String>> = Vec::with_capacity(texts.len());
        let mut ids: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        for (name, text) in self.names.iter().zip(&texts) {
            let name = escape_partition_value(name);
            let mut seen: foldhash::HashMap<Option<&str>, u32> = Default::default();
            let mut column_fragments = Vec::new();
            let column_ids = text
                .iter()
                .map(|value| {
                    *seen.entry(value).or_insert_with(|| {
                        let value =
                            value.map_or(NULL_PARTITION.to_string(), escape_partition_value);
                        column_fragments.push(format!("{name}={value}"));
                        column_fragments.len() as u32 - 1
                    })
                })
                .collect();
            fragments.push(column_fragments);
            ids.push(column_ids);
        }
        let groups: Vec<(String, Vec<u32>)> =
            if let ([column], [fragments]) = (ids.as_slice(), fragments.as_slice()) {
                // One field: its numbers are the groups, numbered in order of first appearance.
                let mut rows: Vec<Vec<u32>> = vec![Vec::new(); fragments.len()];
                for (row, &id) in column.iter().enumerate() {
                    rows[id as usize].push(row as u32);
                }
                fragments.iter().cloned().zip(rows).collect()
            } else {
                let mut groups: IndexMap<Vec<u32>, Vec<u32>, foldhash::fast::RandomState> =
                    IndexMap::default();
                let mut key = Vec::with_capacity(ids.len());
                for row in 0..batch.num_rows() {
                    key.clear();
                    key.extend(ids.iter().map(|c| c[row]));
                    match groups.get_mut(key.as_slice()) {
                        Some(rows) => rows.push(row as u32),
                        None => {
                            groups.insert(key.clone(), vec![row as u32]);
                        }
                    }
                }
                let folder = |key: &[u32]| {
                    key.iter()
                        .zip(&fragments)
                        .map(|(&id, f)| f[id as usize].as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                };
                groups
                    .into_iter()
                    .map(|(key, rows)| (folder(&key), rows))
                    .collect()
            };
        let data = batch.project(&self.data)?;
        if groups.len() == 1 {
            let (folder, _) = groups.into_iter().next().expect("one group");
            return Ok(vec![(folder, data)]);
        }
        groups
            .into_iter()
            .map(|(folder, rows)| Ok((folder, take_record_batch(&data, &UInt32Array::from(rows))?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn folders_by_time_and_execution() {
        let t = DateTime::parse_from_rfc3339("2026-11-27T09:45:12Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            run_folder(Some(TimePrefix::Day), false, t, "x"),
            "2026/11/27"
        );
        assert_eq!(
            run_folder(Some(TimePrefix::Minute), true, t, "x"),
            "2026/11/27/09/45/x"
        );
        assert_eq!(run_folder(None, true, t, "x"), "x");
        assert_eq!(run_folder(None, false, t, "x"), "");
    }

    #[test]
    fn hive_escaping() {
        assert_eq!(
            escape_partition_value("Proposal/Price Quote"),
            "Proposal%2FPrice Quote"
        );
        assert_eq!(escape_partition_value("a=b:c"), "a%3Db%3Ac");
        assert_eq!(escape_partition_value("Zürich"), "Zürich");
        assert_eq!(escape_partition_value(""), NULL_PARTITION);
        for value in ["Proposal/Price Quote", "a=b:c", "Zürich", "100%", "x\ty"] {
            let escaped = escape_partition_value(value);
            assert_eq!(unescape_partition_value(&escaped).as_deref(), Some(value));
        }
        assert_eq!(unescape_partition_value(NULL_PARTITION), None);
        assert_eq!(
            hive_values("2026/11/27/stage=Proposal%2FQuote/won=__HIVE_DEFAULT_PARTITION__"),
            [
                ("stage".to_string(), Some("Proposal/Quote".to_string())),
                ("won".to_string(), None)
            ]
        );
    }

    #[test]
    fn splits_by_values_and_drops_partition_columns() {
        let batch = batch_of(&[
            (
                "stage",
                opt_strs(&[Some("Won"), Some("Lost"), Some("Won"), None]),
            ),
            ("n", ints(&[Some(1), Some(2), Some(3), Some(4)])),
        ]);
        let p = Partitioner::new(&batch.schema(), vec![0], false);
        let parts = p.split(&batch).unwrap();
        let summary: Vec<(String, Vec<Option<i64>>)> = parts
            .iter()
            .map(|(f, b)| (f.clone(), i64s(b, "n")))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("stage=Won".to_string(), vec![Some(1), Some(3)]),
                ("stage=Lost".to_string(), vec![Some(2)]),
                (format!("stage={NULL_PARTITION}"), vec![Some(4)]),
            ]
        );
        assert_eq!(names(&parts[0].1), ["n"]);
        let kept = Partitioner::new(&batch.schema(), vec![0], true);
        assert_eq!(names(&kept.split(&batch).unwrap()[0].1), ["stage", "n"]);
    }
}
