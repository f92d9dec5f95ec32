//! Validate: checks fields and drops the records that fail, or stops the run (AppFlow's
//! VALIDATE_NON_NULL, VALIDATE_NON_ZERO, VALIDATE_NON_NEGATIVE, VALIDATE_NUMERIC with
//! DropRecord or TerminateFlow).

use arrow::array::{Array, ArrayRef, BooleanArray, BooleanBuilder, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{CastOptions, and, cast, cast_with_options, filter_record_batch, is_not_null};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::{Problems, find, find_typed};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::records::row_json;
use crate::types::is_scalar;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validate {
    /// Checked in order; a record must pass all of them.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[schemars(extend("x-field" = true))]
    pub field: String,
    pub check: Check,
    /// What happens to a record that fails.
    #[serde(default)]
    pub action: Action,
}

/// `non_zero` and `non_negative` let nulls pass (use `non_null` for those) and read text
/// as numbers; text that is not a number fails them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The value is present (an empty text is present).
    NonNull,
    NonZero,
    NonNegative,
    /// The value is a number, or text that reads as one. Nulls fail.
    Numeric,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Leave the record out and go on; the run counts it as dropped.
    #[default]
    DropRecord,
    /// Stop the run; nothing is written.
    TerminateFlow,
}

impl NodeKind for Validate {
    const TYPE: &'static str = "transform.validate";
    const TITLE: &'static str = "Validate";
    const ICON: &'static str = "✔";
    const DESCRIPTION: &'static str = "Drop records, or stop the run, when a check fails";
}

impl Validate {
    fn plan(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.rules.is_empty() {
            problems.push("/rules", "add at least one rule");
        }
        let columns = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(k, r)| {
                let path = format!("/rules/{k}/field");
                problems.check(match r.check {
                    Check::NonNull => find(input, &r.field, path),
                    _ => find_typed(input, &r.field, path, is_scalar, "a number or text field"),
                })
            })
            .collect();
        problems.into_result(columns)
    }
}

impl NodeConfig for Validate {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a transform has an input");
        self.plan(input)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        match self.rules.as_slice() {
            [r] => format!("{} {:?}", r.field, r.check)
                .to_lowercase()
                .replace("nonnull", "non-null"),
            rules => format!("{} rules", rules.len()),
        }
    }

    /// A rule that stops the run names the record by its number, counted across batches.
    fn per_batch(&self) -> bool {
        self.rules.iter().all(|r| r.action != Action::TerminateFlow)
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let columns = self.plan(cx.input_schema.as_ref().expect("input"))?;
        Ok(Runtime::Transform(Box::new(ValidateRun {
            rules: self.rules.clone(),
            columns,
            seen: 0,
        })))
    }
}

struct ValidateRun {
    rules: Vec<Rule>,
    columns: Vec<usize>,
    /// Records seen before this batch, to say which record broke a rule.
    seen: u64,
}

/// True where the value passes; never null.
fn passes(check: Check, column: &ArrayRef) -> Result<BooleanArray, arrow::error::ArrowError> {
    if check == Check::NonNull {
        return is_not_null(column);
    }
    let numbers = if column.data_type().is_numeric() {
        cast(column, &DataType::Float64)?
    } else {
        // Text that is not a number reads as null here.
        let trimmed = arrow::compute::kernels::cast::cast(column, &DataType::Utf8)?;
        cast_with_options(
            &trimmed,
            &DataType::Float64,
            &CastOptions {
                safe: true,
                ..Default::default()
            },
        )?
    };
    let numbers = numbers
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .expect("Float64");
    let mut out = BooleanBuilder::with_capacity(column.len());
    for row in 0..column.len() {
        let present = column.is_valid(row);
        let number = numbers.is_valid(row).then(|| numbers.value(row));
        out.append_value(match check {
            Check::NonNull => unreachable!(),
            Check::Numeric => number.is_some_and(f64::is_finite),
            Check::NonZero => !present || number.is_some_and(|n| n != 0.0),
            Check::NonNegative => !present || number.is_some_and(|n| n >= 0.0),
        });
    }
    Ok(out.finish())
}

impl Transform for ValidateRun {
    fn keep(&mut self, batch: &RecordBatch) -> Option<Result<BooleanArray, NodeError>> {
        // A rule that stops the run names the record that broke it: that takes `apply`.
        if self.rules.iter().any(|r| r.action == Action::TerminateFlow) {
            return None;
        }
        let mut keep = BooleanArray::new(BooleanBuffer::new_set(batch.num_rows()), None);
        for (rule, &i) in self.rules.iter().zip(&self.columns) {
            let ok = passes(rule.check, batch.column(i));
            match ok.and_then(|ok| and(&keep, &ok)) {
                Ok(k) => keep = k,
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Ok(keep))
    }

    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut keep: Option<BooleanArray> = None;
        for (rule, &i) in self.rules.iter().zip(&self.columns) {
            let ok = passes(rule.check, batch.column(i))?;
            if rule.action == Action::TerminateFlow && ok.false_count() > 0 {
                let row = (0..ok.len())
                    .find(|&r| !ok.value(r))
                    .expect("a failing row");
                return Err(NodeError::msg(format!(
                    "record {} failed the rule `{} {}` and the rule stops the run; nothing was written. The record: {}",
                    self.seen + row as u64 + 1,
                    rule.field,
                    serde_json::to_value(rule.check)
                        .expect("serializes")
                        .as_str()
                        .unwrap_or_default(),
                    row_json(&batch, row),
                )));
            }
            keep = Some(match keep {
                Some(k) => and(&k, &ok)?,
                None => ok,
            });
        }
        self.seen += batch.num_rows() as u64;
        let Some(keep) = keep else { return Ok(batch) };
        let out = filter_record_batch(&batch, &keep)?;
        cx.dropped += (batch.num_rows() - out.num_rows()) as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn rule(field: &str, check: Check, action: Action) -> Validate {
        Validate {
            rules: vec![Rule {
                field: field.into(),
                check,
                action,
            }],
        }
    }

    fn sample() -> RecordBatch {
        batch_of(&[
            (
                "s",
                opt_strs(&[
                    Some("1.5"),
                    Some(""),
                    None,
                    Some("-2"),
                    Some("abc"),
                    Some("0"),
                ]),
            ),
            (
                "n",
                floats(&[
                    Some(1.5),
                    Some(0.0),
                    None,
                    Some(-2.0),
                    Some(f64::NAN),
                    Some(-0.0),
                ]),
            ),
            (
                "i",
                ints(&[Some(1), Some(0), None, Some(-2), Some(i64::MIN), Some(7)]),
            ),
        ])
    }

    fn kept_rows(field: &str, check: Check) -> usize {
        let (out, cx) = run_one(&rule(field, check, Action::DropRecord), sample());
        assert_eq!(cx.dropped as usize + out.num_rows(), 6);
        out.num_rows()
    }

    #[test]
    fn each_check_on_text_and_numbers() {
        assert_eq!(
            kept_rows("s", Check::NonNull),
            5,
            "an empty text is present"
        );
        assert_eq!(kept_rows("n", Check::NonNull), 5);
        assert_eq!(kept_rows("s", Check::Numeric), 3, "1.5, -2, 0");
        assert_eq!(kept_rows("n", Check::Numeric), 4, "NaN is not a number");
        assert_eq!(
            kept_rows("s", Check::NonZero),
            3,
            "1.5, null, -2 pass; empty, abc, 0 fail"
        );
        assert_eq!(kept_rows("n", Check::NonZero), 4, "0 and -0 fail");
        assert_eq!(kept_rows("i", Check::NonNegative), 4);
        assert_eq!(kept_rows("s", Check::NonNegative), 3, "1.5, null, 0");
    }

    #[test]
    fn terminate_fails_the_run_naming_the_record() {
        let err = run_many(
            &rule("i", Check::NonNegative, Action::TerminateFlow),
            vec![sample()],
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("record 4") && msg.contains("non_negative") && msg.contains("\"i\":-2"),
            "{msg}"
        );
    }
}
