//! Field types in the user's words, and how they map to Arrow.

use arrow::datatypes::{DataType, TimeUnit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A field type as the flow file and the app name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text.
    String,
    /// A whole number (64-bit).
    Integer,
    /// A number with a fraction (64-bit floating point).
    Number,
    /// true or false.
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant in UTC, ISO-8601 (`2024-05-01T12:30:00Z`), microsecond precision.
    Timestamp,
}

impl FieldType {
    pub fn arrow(self) -> DataType {
        match self {
            FieldType::String => DataType::Utf8,
            FieldType::Integer => DataType::Int64,
            FieldType::Number => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Date => DataType::Date32,
            FieldType::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
            }
        }
    }
}

/// How the app and messages name an Arrow type.
pub fn describe(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "number".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        d if d.is_integer() => "integer".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Null => "null".into(),
        DataType::Struct(_) => "object".into(),
        DataType::List(_) | DataType::LargeList(_) => "list".into(),
        other => other.to_string().to_lowercase(),
    }
}

pub fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

pub fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Types a filter can compare and a mask, hash or merge can turn into text.
pub fn is_scalar(dt: &DataType) -> bool {
    is_string(dt)
        || dt.is_numeric()
        || matches!(
            dt,
            DataType::Boolean
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Null
        )
}
