//! Catalogs: where the lake destinations describe what they wrote, so that a query engine
//! finds the files without a crawler. A local folder gets a DuckDB view and a table file
//! beside its data ([`duckdb`]); an S3 prefix gets a table in the AWS Glue Data Catalog
//! ([`glue`]), which Athena, Redshift Spectrum and EMR read.
//!
//! Both register in the destination's commit, after the files are in place, from a plan
//! kept in the run's commit record: a run killed between the two is registered by the
//! next run of the flow, and registering twice changes nothing.

pub mod duckdb;
pub mod glue;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A folder a run wrote files into, with what it wrote there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenPartition {
    /// Below the destination, '/'-separated; empty when files go to its top.
    pub folder: String,
    pub files: u64,
    pub records: u64,
    pub bytes: u64,
}

/// The folders of a run's files (relative paths, records, bytes), in order of first
/// appearance.
pub fn partitions_written<'a>(
    files: impl IntoIterator<Item = (&'a str, u64, u64)>,
) -> Vec<WrittenPartition> {
    let mut by_folder: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<WrittenPartition> = Vec::new();
    for (relative, records, bytes) in files {
        let folder = relative.rsplit_once('/').map_or("", |(folder, _)| folder);
        let at = *by_folder.entry(folder).or_insert_with(|| {
            out.push(WrittenPartition {
                folder: folder.to_string(),
                files: 0,
                records: 0,
                bytes: 0,
            });
            out.len() - 1
        });
        let p = &mut out[at];
        p.files += 1;
        p.records += records;
        p.bytes += bytes;
    }
    out
}

/// A name for a table from a flow's name: lower case letters, digits and underscores, as
/// Glue and Athena want them and as a SQL user types them without quotes.
pub fn table_name(text: &str) -> String {
    let mut name = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    let name = name.trim_matches('_');
    match name.chars().next() {
        None => "table".to_string(),
        Some(c) if c.is_ascii_digit() => format!("t_{name}"),
        Some(_) => name.to_string(),
    }
}

/// What a partition field's values are, read back from folder names: numbers, dates and
/// truth values keep their type; anything else is the text it was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    Integer,
    Date,
    Boolean,
    Text,
}

impl PartitionKind {
    pub fn of(t: &arrow::datatypes::DataType) -> Self {
        use arrow::datatypes::DataType::*;
        match t {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => PartitionKind::Integer,
            Date32 | Date64 => PartitionKind::Date,
            Boolean => PartitionKind::Boolean,
            _ => PartitionKind::Text,
        }
    }
}

/// A column as a catalog lists it: its name and its type in the catalog's SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// What changed between the columns a catalog had and the ones a run writes, in words;
/// empty when nothing did.
pub fn column_changes(before: &[Column], after: &[Column]) -> Vec<String> {
    let mut changes = Vec::new();
    let named = |list: &[Column], name: &str| list.iter().find(|c| c.name == name).cloned();
    let added: Vec<String> = (after.iter())
        .filter(|c| named(before, &c.name).is_none())
        .map(|c| format!("{} {}", c.name, c.kind))
        .collect();
    if !added.is_empty() {
        changes.push(format!("added the columns {}", added.join(", ")));
    }
    let retyped: Vec<String> = (after.iter())
        .filter_map(|c| {
            let old = named(before, &c.name)?;
            (old.kind != c.kind).then(|| format!("{} from {} to {}", c.name, old.kind, c.kind))
        })
        .collect();
    if !retyped.is_empty() {
        changes.push(format!("changed the types of {}", retyped.join(", ")));
    }
    let gone: Vec<&str> = (before.iter())
        .filter(|c| named(after, &c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !gone.is_empty() {
        changes.push(format!(
            "the columns {} are no longer written (older files still hold them)",
            gone.join(", ")
        ));
    }
    changes
}

/// A list of partition folders for a message: the first few, and how many more.
pub fn some_folders<'a>(folders: impl IntoIterator<Item = &'a str>) -> String {
    let folders: Vec<&str> = folders.into_iter().collect();
    let shown: Vec<&str> = folders.iter().take(5).copied().collect();
    match folders.len() - shown.len() {
        0 => shown.join(", "),
        more => format!("{}, and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_from_flow_names() {
        assert_eq!(
            table_name("Opportunities to the lake"),
            "opportunities_to_the_lake"
        );
        assert_eq!(table_name("  CRM: Deals (EU) "), "crm_deals_eu");
        assert_eq!(table_name("2026 orders"), "t_2026_orders");
        assert_eq!(table_name("Zürich"), "z_rich");
        assert_eq!(table_name("—"), "table");
    }

    #[test]
    fn partitions_gather_their_files() {
        let files = [
            ("s=a/part-1.parquet", 2, 10),
            ("s=b/part-2.parquet", 3, 20),
            ("s=a/part-3.parquet", 4, 30),
            ("part-4.parquet", 1, 5),
        ];
        let written = partitions_written(files);
        assert_eq!(written.len(), 3);
        assert_eq!(written[0].folder, "s=a");
        assert_eq!(
            (written[0].files, written[0].records, written[0].bytes),
            (2, 6, 40)
        );
        assert_eq!(written[2].folder, "");
    }

    #[test]
    fn column_changes_in_words() {
        let c = |n: &str, k: &str| Column {
            name: n.into(),
            kind: k.into(),
        };
        let before = [c("id", "VARCHAR"), c("amount", "BIGINT"), c("old", "DATE")];
        let after = [
            c("id", "VARCHAR"),
            c("amount", "DOUBLE"),
            c("stage", "VARCHAR"),
        ];
        assert_eq!(
            column_changes(&before, &after),
            [
                "added the columns stage VARCHAR",
                "changed the types of amount from BIGINT to DOUBLE",
                "the columns old are no longer written (older files still hold them)"
            ]
        );
        assert!(column_changes(&after, &after).is_empty());
    }
}
