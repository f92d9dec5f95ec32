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
