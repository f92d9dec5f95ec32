//! Filter: keeps the records that meet every condition (AppFlow's Filter task and its
//! operators), and optionally only some of their fields (AppFlow's PROJECTION).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, Scalar, StringArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, and, cast_with_options, filter_record_batch, or};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::conditions::{Condition, Operator};
use crate::fields::{Problems, find, find_typed};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::types::{describe, is_scalar, is_string};

/// Keeps records for which every condition holds. A condition on a null value does not
/// hold, as in SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// All must hold for a record to pass.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Keep only these fields (AppFlow's PROJECTION); all fields when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-field" = true))]
    pub fields: Option<Vec<String>>,
}

impl NodeKind for Filter {
    const TYPE: &'static str = "transform.filter";
    const TITLE: &'static str = "Filter";
    const ICON: &'static str = "🔍";
    const DESCRIPTION: &'static str = "Keep the records that meet conditions";
}

/// A condition ready to evaluate: the column and its constants in the column's type.
struct Test {
    column: usize,
    operator: Operator,
    values: Vec<ArrayRef>,
}

/// The conditions ready to evaluate, and the fields to keep.
type Planned = (Vec<Test>, Option<Vec<usize>>);

impl Filter {
    fn plan(&self, input: &Schema) -> Result<Planned, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let mut tests = Vec::new();
        for (k, c) in self.conditions.iter().enumerate() {
            let path = format!("/conditions/{k}");
            let found = if c.operator == Operator::Contains {
                find_typed(
                    input,
                    &c.field,
                    format!("{path}/field"),
                    is_string,
                    "a string field",
                )
            } else {
                find_typed(
                    input,
                    &c.field,
                    format!("{path}/field"),
                    is_scalar,
                    "a string, number, boolean, date or timestamp field",
                )
            };
            let Some(column) = problems.check(found) else {
                continue;
            };
            let dt = input.field(column).data_type();
            let raw: Vec<&Value> = match (&c.value, c.operator) {
                (Value::Array(items), Operator::Between) if items.len() == 2 => {
                    items.iter().collect()
                }
                (_, Operator::Between) => {
                    problems.push(
                        format!("{path}/value"),
                        "between takes two values: [low, high]",
                    );
                    continue;
                }
                (Value::Array(items), Operator::EqualTo | Operator::NotEqualTo)
                    if !items.is_empty() =>
                {
                    items.iter().collect()
                }
                (Value::Array(_), _) => {
                    problems.push(
                        format!("{path}/value"),
                        "a list of values works with equal_to and not_equal_to only",
                    );
                    continue;
                }
                (v, _) => vec![v],
            };
            let mut values = Vec::new();
            for (j, v) in raw.into_iter().enumerate() {
                let at = if matches!(c.value, Value::Array(_)) {
                    format!("{path}/value/{j}")
                } else {
                    format!("{path}/value")
                };
                match constant(v, dt) {
                    Ok(a) => values.push(a),
                    Err(m) => problems.push(
                        at,
                        format!("{m} for the {} field `{}`", describe(dt), c.field),
                    ),
                }
            }
            tests.push(Test {
                column,
                operator: c.operator,
                values,
            });
        }
        let projection = self.fields.as_ref().map(|names| {
            names
                .iter()
                .enumerate()
                .filter_map(|(k, n)| problems.check(find(input, n, format!("/fields/{k}"))))
                .collect()
        });
        problems.into_result((tests, projection))
    }
}

/// A JSON value as a one-element array of type `dt`, read the way the field's type reads
/// text.
fn constant(v: &Value, dt: &DataType) -> Result<ArrayRef, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => {
            // Also what a condition just added holds: say what to do.
            return Err("type a value to compare with".into());
        }
        _ => return Err("write a single value".into()),
    };
    let array: ArrayRef = Arc::new(StringArray::from(vec![text.clone()]));
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&array, dt, &options)
        .map_err(|_| format!("`{text}` is not a valid {}", describe(dt)))
}

impl NodeConfig for Filter {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a transform has an input");
        let (_, projection) = self.plan(input)?;
        Ok(match projection {
            Some(p) => Arc::new(input.project(&p).expect("indices from the schema")),
            None => input.clone(),
        })
    }

    fn summary(&self) -> String {
        match self.conditions.as_slice() {
            [] => "keeps every record".into(),
            [c] => c.in_words(),
            many => format!("{} conditions", many.len()),
        }
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.as_ref().expect("a transform has an input");
        let (tests, projection) = self.plan(input)?;
        Ok(Runtime::Transform(Box::new(FilterRun {
            tests,
            projection,
        })))
    }
}

struct FilterRun {
    tests: Vec<Test>,
    projection: Option<Vec<usize>>,
}

impl Test {
    fn eval(&self, column: &ArrayRef) -> Result<BooleanArray, arrow::error::ArrowError> {
        let s = |i: usize| Scalar::new(self.values[i].clone());
        Ok(match self.operator {
            Operator::LessThan => cmp::lt(column, &s(0))?,
            Operator::GreaterThan => cmp::gt(column, &s(0))?,
            Operator::LessThanOrEqualTo => cmp::lt_eq(column, &s(0))?,
            Operator::GreaterThanOrEqualTo => cmp::gt_eq(column, &s(0))?,
            Operator::Between => and(&cmp::gt_eq(column, &s(0))?, &cmp::lt_eq(column, &s(1))?)?,
            Operator::Contains => arrow::compute::kernels::comparison::contains(column, &s(0))?,
            Operator::EqualTo => {
                let mut acc = cmp::eq(column, &s(0))?;
                for i in 1..self.values.len() {
                    acc = or(&acc, &cmp::eq(column, &s(i))?)?;
                }
                acc
            }
            Operator::NotEqualTo => {
                let mut acc = cmp::neq(column, &s(0))?;
                for i in 1..self.values.len() {
                    acc = and(&acc, &cmp::neq(column, &s(i))?)?;
                }
                acc
            }
        })
    }
}

impl FilterRun {
    /// True where every condition holds; `None` without conditions.
    fn passing(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>, NodeError> {
        let mut keep: Option<BooleanArray> = None;
        for t in &self.tests {
            let r = t.eval(batch.column(t.column))?;
            keep = Some(match keep {
                Some(k) => and(&k, &r)?,
                None => r,
            });
        }
        Ok(keep)
    }
}

impl Transform for FilterRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let out = match self.passing(&batch)? {
            Some(k) => filter_record_batch(&batch, &k)?,
            None => batch.clone(),
        };
        cx.dropped += (batch.num_rows() - out.num_rows()) as u64;
        Ok(match &self.projection {
            Some(p) => out.project(p)?,
            None => out,
        })
    }

    fn keep(&mut self, batch: &RecordBatch) -> Option<Result<BooleanArray, NodeError>> {
        if self.projection.is_some() {
            return None;
        }
        let all = || BooleanArray::new(BooleanBuffer::new_set(batch.num_rows()), None);
        Some(self.passing(batch).map(|k| k.unwrap_or_else(all)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn filter(conditions: Value) -> Filter {
        serde_json::from_value(json!({ "conditions": conditions })).unwrap()
    }

    #[test]
    fn summaries_speak_the_forms_words() {
        let one = |c: Value| filter(json!([c])).summary();
        assert_eq!(
            one(
                json!({"field": "status", "operator": "equal_to", "value": ["shipped", "delivered"]})
            ),
            "status equal to shipped or delivered"
        );
        assert_eq!(
            one(json!({"field": "quantity", "operator": "less_than", "value": null})),
            "quantity less than (no value yet)"
        );
        assert_eq!(
            one(json!({"field": "amount", "operator": "between", "value": [1, 5]})),
            "amount between 1 and 5"
        );
    }

    fn sample() -> RecordBatch {
        let dates: ArrayRef = cast_with_options(
            &strs(&[
                "2024-01-01",
                "2024-06-30",
                "2023-12-31",
                "2024-03-15",
                "2025-01-01",
            ]),
            &DataType::Date32,
            &Default::default(),
        )
        .unwrap();
        let ts = cast_with_options(
            &strs(&[
                "2024-01-01T00:00:00Z",
                "2024-06-30T12:00:00Z",
                "2023-12-31T23:59:59Z",
                "2024-03-15T08:00:00Z",
                "2025-01-01T00:00:00Z",
            ]),
            &crate::types::FieldType::Timestamp.arrow(),
            &Default::default(),
        )
        .unwrap();
        batch_of(&[
            (
                "Stage",
                opt_strs(&[
                    Some("Closed Won"),
                    Some("Closed Lost"),
                    Some("Prospecting"),
                    None,
                    Some("Négociation"),
                ]),
            ),
            (
                "Amount",
                floats(&[Some(1500.0), Some(999.99), None, Some(1000.0), Some(-5.0)]),
            ),
            (
                "Count",
                ints(&[Some(1), Some(0), Some(-3), Some(i64::MAX), None]),
            ),
            ("Close", dates),
            ("Modified", ts),
        ])
    }

    fn kept(conditions: Value, column: &str) -> Vec<Option<String>> {
        let (out, cx) = run_one(&filter(conditions), sample());
        assert_eq!(cx.dropped as usize, 5 - out.num_rows());
        let col =
            arrow::compute::cast(out.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
        col.as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn number_operators() {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(
            kept(
                json!([{"field": "Amount", "operator": "greater_than", "value": 1000}]),
                "Amount"
            ),
            s(&["1500.0"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Amount", "operator": "greater_than_or_equal_to", "value": 1000}]),
                "Amount"
            ),
            s(&["1500.0", "1000.0"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Amount", "operator": "less_than", "value": "1000"}]),
                "Amount"
            ),
            s(&["999.99", "-5.0"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Amount", "operator": "less_than_or_equal_to", "value": 1000}]),
                "Amount"
            ),
            s(&["999.99", "1000.0", "-5.0"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Count", "operator": "equal_to", "value": 0}]),
                "Count"
            ),
            s(&["0"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Count", "operator": "not_equal_to", "value": 0}]),
                "Count"
            ),
            s(&["1", "-3", "9223372036854775807"])
        );
        assert_eq!(
            kept(
                json!([{"field": "Count", "operator": "between", "value": [-3, 1]}]),
                "Count"
            ),
            s(&["1", "0", "-3"])
        );
    }

    #[test]
    fn string_operators_with_lists_and_non_ascii() {
        let stage = |c| kept(c, "Stage");
        assert_eq!(stage(json!([{"field": "Stage", "operator": "equal_to", "value": ["Closed Won", "Négociation"]}])).len(), 2);
        assert_eq!(stage(json!([{"field": "Stage", "operator": "not_equal_to", "value": ["Closed Won", "Closed Lost"]}])).len(), 2, "nulls never pass");
        assert_eq!(
            stage(json!([{"field": "Stage", "operator": "contains", "value": "Closed"}])).len(),
            2
        );
        assert_eq!(
            stage(json!([{"field": "Stage", "operator": "contains", "value": "égo"}])),
            vec![Some("Négociation".to_string())]
        );
        assert_eq!(
            stage(json!([{"field": "Stage", "operator": "contains", "value": ""}])).len(),
            4
        );
        assert_eq!(
            stage(json!([{"field": "Stage", "operator": "less_than", "value": "D"}])).len(),
            2
        );
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(kept(json!([{"field": "Close", "operator": "between", "value": ["2024-01-01", "2024-12-31"]}]), "Close").len(), 3);
        assert_eq!(
            kept(
                json!([{"field": "Close", "operator": "less_than", "value": "2024-01-01"}]),
                "Close"
            ),
            vec![Some("2023-12-31".to_string())]
        );
        assert_eq!(kept(json!([{"field": "Modified", "operator": "greater_than", "value": "2024-06-30T11:00:00Z"}]), "Stage").len(), 2);
    }

    #[test]
    fn conditions_combine_with_and_and_projection_keeps_fields() {
        let f: Filter = serde_json::from_value(json!({
            "conditions": [
                {"field": "Stage", "operator": "not_equal_to", "value": "Closed Lost"},
                {"field": "Amount", "operator": "greater_than", "value": 1000}
            ],
            "fields": ["Amount", "Stage"]
        }))
        .unwrap();
        let (out, cx) = run_one(&f, sample());
        assert_eq!(names(&out), ["Amount", "Stage"]);
        assert_eq!(out.num_rows(), 1);
        assert_eq!(cx.dropped, 4);
    }

    #[test]
    fn bad_conditions_are_problems() {
        let schema = sample().schema();
        let p = plan_problems(
            &filter(json!([
                {"field": "Nope", "operator": "equal_to", "value": 1},
                {"field": "Amount", "operator": "contains", "value": "1"},
                {"field": "Amount", "operator": "greater_than", "value": "lots"},
                {"field": "Close", "operator": "between", "value": ["2024-01-01"]},
                {"field": "Amount", "operator": "less_than", "value": [1, 2]},
                {"field": "Close", "operator": "equal_to", "value": "31/12/2024"}
            ])),
            &schema,
        );
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/conditions/0/field",
                "/conditions/1/field",
                "/conditions/2/value",
                "/conditions/3/value",
                "/conditions/4/value",
                "/conditions/5/value"
            ]
        );
        assert!(
            p[2].message.contains("`lots` is not a valid number"),
            "{}",
            p[2].message
        );
    }
}
