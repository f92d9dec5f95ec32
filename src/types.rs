//! Field types in the user's words, and how they map to Arrow.

use arrow::datatypes::{DataType, TimeUnit};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A field type as the flow file and the app name it: `string`, `integer`, `number`,
/// `boolean`, `date`, `timestamp`, or `decimal(precision,scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// An exact number of `precision` digits, `scale` of them after the point: money and
    /// quantities that must add up to the cent, as floating point cannot.
    Decimal { precision: u8, scale: i8 },
}

/// The largest precision a decimal field has (Arrow's Decimal128).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// `decimal` alone: 38 digits, 9 of them after the point — room for any amount of money
/// and for rates, without choosing.
pub const DEFAULT_DECIMAL: FieldType = FieldType::Decimal {
    precision: 38,
    scale: 9,
};

/// The types the app offers in its lists, by the names the flow file uses, with what each
/// is; any other `decimal(precision,scale)` can be written in the flow file.
pub const OFFERED: [(&str, &str); 8] = [
    ("string", "Text."),
    ("integer", "A whole number (64-bit)."),
    (
        "number",
        "A number with a fraction (64-bit floating point).",
    ),
    (
        "decimal(18,2)",
        "An exact number: 18 digits, 2 of them after the point (money).",
    ),
    (
        "decimal",
        "An exact number: 38 digits, 9 of them after the point.",
    ),
    ("boolean", "true or false."),
    ("date", "A calendar date, `YYYY-MM-DD`."),
    (
        "timestamp",
        "An instant in UTC, ISO-8601 (`2024-05-01T12:30:00Z`), microsecond precision.",
    ),
];

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
            FieldType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        }
    }

    /// A decimal type, or why it cannot be one.
    pub fn decimal(precision: u32, scale: u32) -> Result<FieldType, String> {
        if precision == 0 || precision > u32::from(MAX_DECIMAL_PRECISION) {
            return Err(format!(
                "a decimal has 1 to {MAX_DECIMAL_PRECISION} digits, not {precision}"
            ));
        }
        if scale > precision {
            return Err(format!(
                "a decimal of {precision} digits cannot have {scale} of them after the point"
            ));
        }
        Ok(FieldType::Decimal {
            precision: precision as u8,
            scale: scale as i8,
        })
    }
}

impl std::fmt::Display for FieldType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldType::String => f.write_str("string"),
            FieldType::Integer => f.write_str("integer"),
            FieldType::Number => f.write_str("number"),
            FieldType::Boolean => f.write_str("boolean"),
            FieldType::Date => f.write_str("date"),
            FieldType::Timestamp => f.write_str("timestamp"),
            FieldType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl std::str::FromStr for FieldType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.trim() {
            "string" => FieldType::String,
            "integer" => FieldType::Integer,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "timestamp" => FieldType::Timestamp,
            "decimal" => DEFAULT_DECIMAL,
            other => {
                let inner = other
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!(
                            "`{other}` is not a field type; use one of string, integer, number, decimal, decimal(precision,scale), boolean, date, timestamp"
                        )
                    })?;
                let digits = |part: Option<&str>, what: &str| {
                    part.map(str::trim)
                        .and_then(|p| p.parse::<u32>().ok())
                        .ok_or_else(|| {
                            format!(
                                "`{other}`: the {what} must be a whole number, as in decimal(18,2)"
                            )
                        })
                };
                let mut parts = inner.split(',');
                let precision = digits(parts.next(), "precision")?;
                let scale = digits(parts.next(), "scale")?;
                if parts.next().is_some() {
                    return Err(format!(
                        "`{other}`: a decimal has a precision and a scale, as in decimal(18,2)"
                    ));
                }
                FieldType::decimal(precision, scale).map_err(|why| format!("`{other}`: {why}"))?
            }
        })
    }
}

impl Serialize for FieldType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FieldType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FieldType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // anyOf, not oneOf: `decimal(18,2)` is both offered and of the general form.
        let mut any_of: Vec<serde_json::Value> = OFFERED
            .iter()
            .map(|(name, description)| {
                serde_json::json!({ "type": "string", "const": name, "description": description })
            })
            .collect();
        any_of.push(serde_json::json!({
            "type": "string",
            "pattern": r"^decimal\(\s*[0-9]+\s*,\s*[0-9]+\s*\)$",
            "description": "An exact number of `precision` digits (at most 38), `scale` of them after the point: decimal(precision,scale)."
        }));
        schemars::json_schema!({ "anyOf": any_of })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types_read_and_write_as_the_flow_file_names_them() {
        for name in [
            "string",
            "integer",
            "decimal(18,2)",
            "timestamp",
            "decimal(1,0)",
        ] {
            let t: FieldType = name.parse().unwrap();
            assert_eq!(t.to_string(), name);
            assert_eq!(serde_json::to_value(t).unwrap(), name);
        }
        assert_eq!("decimal".parse::<FieldType>().unwrap(), DEFAULT_DECIMAL);
        assert_eq!(
            "decimal( 10 , 4 )".parse::<FieldType>().unwrap().arrow(),
            DataType::Decimal128(10, 4)
        );
        for bad in [
            "decimal(0,0)",
            "decimal(39,2)",
            "decimal(2,3)",
            "decimal(18)",
            "Decimal",
        ] {
            assert!(bad.parse::<FieldType>().is_err(), "{bad}");
        }
    }
}
