//! The SQL `destination.postgres` sends: names quoted, Arrow types as PostgreSQL column
//! types, and what a table has that the flow's records must fit.

use arrow::datatypes::{DataType, Schema};

/// A name as PostgreSQL reads it exactly: in double quotes, quotes doubled. Field names
/// keep their case and spaces (`Close Date` stays `Close Date`).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The column type a field of this type gets in a table the destination creates:
/// whole numbers as bigint, decimals exactly as numeric(p,s), instants as timestamptz,
/// nested values as jsonb.
pub fn column_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "numeric(20,0)".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "double precision".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            if *s < 0 {
                // A negative scale counts whole tens; PostgreSQL's numeric has none.
                format!("numeric({},0)", *p as i16 - *s as i16)
            } else {
                format!("numeric({p},{s})")
            }
        }
        DataType::Boolean => "boolean".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamptz".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time".into(),
        DataType::Duration(_) | DataType::Interval(_) => "interval".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Struct(_)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(_, _)
        | DataType::Map(_, _) => "jsonb".into(),
        DataType::Dictionary(_, values) => column_type(values),
        _ => "text".into(),
    }
}

/// One column of an existing table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// As PostgreSQL writes it: `numeric(12,2)`, `timestamp with time zone`.
    pub sql_type: String,
    pub not_null: bool,
    /// A default, an identity or a generated value fills it when no value is given.
    pub filled: bool,
}

/// The table's columns in order; none when there is no such table.
pub const COLUMNS: &str = "
    SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
           a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum";

/// The column sets of the table's unique indexes and primary key (those an
/// `ON CONFLICT` can name).
pub const UNIQUE_KEYS: &str = "
    SELECT array_agg(a.attname::text ORDER BY a.attname)
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
    WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL
    GROUP BY i.indexrelid";

/// What the user may do: insert, update and truncate the table (when it exists), create
/// tables in the schema (when it exists), create schemas in the database; and whether the
/// schema exists; whether the user may add to the loads table `$3` (when it exists).
pub const PRIVILEGES: &str = "
    SELECT
      CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'INSERT') END,
      CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'UPDATE') END,
      CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'TRUNCATE') END,
      CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)
        THEN has_schema_privilege($2, 'CREATE') ELSE NULL END,
      EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2),
      has_database_privilege(current_database(), 'CREATE'),
      CASE WHEN to_regclass($3) IS NULL THEN NULL ELSE has_table_privilege($3, 'INSERT') END";

/// How the flow's fields differ from an existing table's columns: fields it lacks, and
/// columns that must be given a value but have no field.
#[derive(Debug, Default, PartialEq)]
pub struct Differences {
    pub missing: Vec<(String, String)>,
    pub unfilled: Vec<String>,
}

impl Differences {
    pub fn of(schema: &Schema, columns: &[Column]) -> Differences {
        let mut out = Differences::default();
        for field in schema.fields() {
            if !columns.iter().any(|c| c.name == *field.name()) {
                out.missing
                    .push((field.name().clone(), column_type(field.data_type())));
            }
        }
        for column in columns {
            let given = schema.fields().iter().any(|f| *f.name() == column.name);
            if column.not_null && !column.filled && !given {
                out.unfilled.push(column.name.clone());
            }
        }
        out
    }
}

/// `CREATE TABLE` for a table made from the flow's fields; with keys, they are its
/// primary key (what an upsert needs).
pub fn create_table(schema_name: &str, table: &str, fields: &Schema, keys: &[String]) -> String {
    let mut columns: Vec<String> = fields
        .fields()
        .iter()
        .map(|f| {
            let not_null = if keys.contains(f.name()) {
                " NOT NULL"
            } else {
                ""
            };
            format!(
                "{} {}{not_null}",
                quote(f.name()),
                column_type(f.data_type())
            )
        })
        .collect();
    if !keys.is_empty() {
        let keys: Vec<String> = keys.iter().map(|k| quote(k)).collect();
        columns.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    format!(
        "CREATE TABLE {} ({})",
        qualified(schema_name, table),
        columns.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};

    #[test]
    fn names_are_quoted_exactly() {
        assert_eq!(quote("Close Date"), "\"Close Date\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("public", "Orders"), "\"public\".\"Orders\"");
    }

    #[test]
    fn types_map_as_the_docs_say() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let list = DataType::List(Field::new("item", DataType::Utf8, true).into());
        for (t, sql) in [
            (DataType::Utf8, "text"),
            (DataType::Int64, "bigint"),
            (DataType::Float64, "double precision"),
            (DataType::Decimal128(18, 2), "numeric(18,2)"),
            (DataType::Decimal128(5, -2), "numeric(7,0)"),
            (DataType::Boolean, "boolean"),
            (DataType::Date32, "date"),
            (ts, "timestamptz"),
            (list, "jsonb"),
        ] {
            assert_eq!(column_type(&t), sql, "{t}");
        }
    }

    #[test]
    fn differences_name_new_fields_and_unfilled_columns() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("region", DataType::Utf8, true),
        ]);
        let column = |name: &str, not_null, filled| Column {
            name: name.into(),
            sql_type: "text".into(),
            not_null,
            filled,
        };
        let columns = [
            column("id", true, false),
            column("owner", true, false),
            column("created", true, true),
        ];
        assert_eq!(
            Differences::of(&schema, &columns),
            Differences {
                missing: vec![("region".into(), "text".into())],
                unfilled: vec!["owner".into()],
            }
        );
        let sql = create_table("s", "t", &schema, &["id".into()]);
        assert_eq!(
            sql,
            "CREATE TABLE \"s\".\"t\" (\"id\" bigint NOT NULL, \"region\" text, PRIMARY KEY (\"id\"))"
        );
    }
}
