//! Arrow batches as the text format of PostgreSQL's `COPY … FROM STDIN`: a line per
//! record, values between tabs, `\N` for null, backslash escapes in text. The server
//! parses each value into its column's type, so a value that does not fit is refused with
//! the line, which names the record.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::node::NodeError;

/// Appends the batch's rows to `out`.
pub fn encode(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), NodeError> {
    let options = FormatOptions::new().with_null("\\N");
    let columns: Vec<Column> = batch
        .columns()
        .iter()
        .map(|c| Column::of(c, &options))
        .collect::<Result<_, _>>()?;
    for row in 0..batch.num_rows() {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            column.write(row, out);
        }
        out.push(b'\n');
    }
    Ok(())
}

/// How one column's values are written.
enum Column<'a> {
    /// Text of any kind: escaped.
    Text(&'a ArrayRef),
    /// Bytes: `\\x` and hex, as bytea reads them.
    Bytes(&'a ArrayRef),
    /// Nested values: JSON, one per row (`None` for null), for jsonb columns.
    Json(Vec<Option<String>>),
    /// Numbers, booleans, dates, instants: Arrow's own display, which never holds a tab,
    /// a line break or a backslash.
    Plain(ArrayFormatter<'a>),
}

impl<'a> Column<'a> {
    fn of(array: &'a ArrayRef, options: &'a FormatOptions<'a>) -> Result<Column<'a>, NodeError> {
        Ok(match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Text(array),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => Column::Bytes(array),
            DataType::Struct(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Map(_, _) => Column::Json(json_values(array)?),
            _ => Column::Plain(ArrayFormatter::try_new(array.as_ref(), options)?),
        })
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        match self {
            Column::Text(array) if array.is_null(row) => out.extend_from_slice(b"\\N"),
            Column::Text(array) => {
                let text = match array.data_type() {
                    DataType::Utf8 => array.as_string::<i32>().value(row),
                    DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                    _ => array.as_string_view().value(row),
                };
                escape(text, out);
            }
            Column::Bytes(array) if array.is_null(row) => out.extend_from_slice(b"\\N"),
            Column::Bytes(array) => {
                let bytes = match array.data_type() {
                    DataType::Binary => array.as_binary::<i32>().value(row),
                    DataType::LargeBinary => array.as_binary::<i64>().value(row),
                    _ => array.as_binary_view().value(row),
                };
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\\\x");
                for &b in bytes {
                    out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                }
            }
            Column::Json(values) => match &values[row] {
                None => out.extend_from_slice(b"\\N"),
                Some(json) => escape(json, out),
            },
            Column::Plain(formatter) => {
                use std::io::Write as _;
                // Straight into the buffer: no text of its own per value.
                let _ = write!(out, "{}", formatter.value(row));
            }
        }
    }
}

/// COPY's text escapes: the backslash itself and the characters that end a value or a
/// line.
fn escape(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// A nested column's values as JSON text, through Arrow's JSON writer (which leaves a
/// null out of its object).
fn json_values(array: &ArrayRef) -> Result<Vec<Option<String>>, NodeError> {
    let field = arrow::datatypes::Field::new("v", array.data_type().clone(), true);
    let one = RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(vec![field])),
        vec![array.clone()],
    )?;
    crate::records::rows_json(&one)?
        .into_iter()
        .map(|mut row| Ok(row.remove("v").map(|v| v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Decimal128Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn values_are_escaped_and_nulls_marked() {
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                "note",
                Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None])) as ArrayRef,
            ),
            (
                "amount",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
            (
                "won",
                Arc::new(BooleanArray::from(vec![Some(true), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut out = Vec::new();
        encode(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1\ta\\tb\\\\c\\nd\t123.45\ttrue\n\\N\t\\N\t-0.05\t\\N\n"
        );
    }
}
