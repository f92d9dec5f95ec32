//! Small helpers on Arrow batches shared by nodes.

use arrow::array::RecordBatch;

/// One row as a JSON object, for error records and messages.
pub fn row_json(batch: &RecordBatch, row: usize) -> String {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
        if writer
            .write(&batch.slice(row, 1))
            .and_then(|_| writer.finish())
            .is_err()
        {
            return format!("(row {row} cannot be shown as JSON)");
        }
    }
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

/// At most `width` characters of `text`, an ellipsis marking the cut.
pub fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// A batch's rows as JSON objects, for destinations that send records to a service; nulls
/// are left out, so an update leaves those fields as they are.
pub fn rows_json(
    batch: &RecordBatch,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, crate::node::NodeError> {
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
        writer.write(batch)?;
        writer.finish()?;
    }
    out.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| {
                crate::node::NodeError::msg(format!("cannot turn records into JSON: {e}"))
            })
        })
        .collect()
}

/// Converts `column` to `to`. A value that does not convert becomes null, and its row gets
/// `reason(row)` in `bad` unless an earlier column already gave it one; the caller sets
/// those rows aside.
pub fn convert(
    column: &arrow::array::ArrayRef,
    to: &arrow::datatypes::DataType,
    bad: &mut [Option<String>],
    reason: impl Fn(usize) -> String,
) -> Result<arrow::array::ArrayRef, arrow::error::ArrowError> {
    use arrow::array::Array;
    use arrow::compute::{CastOptions, cast_with_options};
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    if let Ok(converted) = cast_with_options(column, to, &strict) {
        return Ok(converted);
    }
    let lenient = CastOptions {
        safe: true,
        ..Default::default()
    };
    let converted = cast_with_options(column, to, &lenient)?;
    for (row, slot) in bad.iter_mut().enumerate() {
        if converted.is_null(row) && column.is_valid(row) && slot.is_none() {
            *slot = Some(reason(row));
        }
    }
    Ok(converted)
}
