//! Conditions on a field's value (AppFlow's filter operators): what the Filter node applies to
//! batches and what SaaS sources push down into their queries. They sit below both, so a
//! connector never reaches into a transform.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[schemars(extend("x-field" = true))]
    pub field: String,
    #[schemars(extend("x-operator-of" = "field"))]
    pub operator: Operator,
    /// What to compare with, written as the field's type reads it: `1000`, `"Closed Won"`,
    /// `"2024-01-31"`. A list with `equal_to` means any of them (OR); with `not_equal_to`,
    /// none of them. `between` takes `[low, high]`, both included.
    #[schemars(extend("x-value-of" = "field"))]
    pub value: Value,
}

impl Condition {
    pub fn new(field: &str, operator: Operator, value: Value) -> Condition {
        Condition {
            field: field.into(),
            operator,
            value,
        }
    }

    /// The condition as the node's one-line summary says it, in the form's words:
    /// `status equal to shipped or delivered`, `quantity greater than 0`.
    pub fn in_words(&self) -> String {
        let value = |v: &Value| match v {
            Value::Null => "(no value yet)".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let values = match (&self.value, self.operator) {
            (Value::Array(pair), Operator::Between) if pair.len() == 2 => {
                format!("{} and {}", value(&pair[0]), value(&pair[1]))
            }
            (Value::Array(list), _) => {
                let joiner = if self.operator == Operator::NotEqualTo {
                    " nor "
                } else {
                    " or "
                };
                list.iter().map(value).collect::<Vec<_>>().join(joiner)
            }
            (v, _) => value(v),
        };
        let field = if self.field.is_empty() {
            "(no field yet)"
        } else {
            &self.field
        };
        format!("{field} {} {values}", self.operator.in_words())
    }
}

impl Operator {
    /// The words the form shows for it.
    pub fn in_words(self) -> &'static str {
        match self {
            Operator::LessThan => "less than",
            Operator::GreaterThan => "greater than",
            Operator::LessThanOrEqualTo => "less than or equal to",
            Operator::GreaterThanOrEqualTo => "greater than or equal to",
            Operator::EqualTo => "equal to",
            Operator::NotEqualTo => "not equal to",
            Operator::Contains => "contains",
            Operator::Between => "between",
        }
    }
}

/// AppFlow's comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    LessThan,
    GreaterThan,
    LessThanOrEqualTo,
    GreaterThanOrEqualTo,
    EqualTo,
    NotEqualTo,
    /// The text contains the value (case-sensitive); strings only.
    Contains,
    Between,
}
