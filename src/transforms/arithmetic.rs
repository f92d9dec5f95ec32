//! Arithmetic: adds, subtracts, multiplies or divides two fields, or a field and a number,
//! into a field (AppFlow's Arithmetic task). Operations run in order, so a later one can
//! use an earlier one's result: `Amount × Probability`, then `÷ 100`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, Scalar};
use arrow::compute::kernels::{cmp, numeric};
use arrow::compute::{cast, nullif};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::{Problems, find_typed};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};

/// Results are numbers (64-bit floating point). A null operand gives a null result;
/// dividing by zero gives null and is counted as `divide_by_zero`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Arithmetic {
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// The field that gets the result; an existing one is replaced.
    pub output: String,
    #[schemars(extend("x-field" = true))]
    pub left: Operand,
    pub operator: ArithmeticOperator,
    #[schemars(extend("x-field" = true))]
    pub right: Operand,
    /// Round the result to this many decimal places (half away from zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
}

/// A field name, or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Operand {
    Number(f64),
    Field(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArithmeticOperator {
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl NodeKind for Arithmetic {
    const TYPE: &'static str = "transform.arithmetic";
    const TITLE: &'static str = "Arithmetic";
    const ICON: &'static str = "🔢";
    const DESCRIPTION: &'static str = "Add, subtract, multiply or divide into a field";
}

enum Input {
    Column(usize),
    Number(f64),
}

struct Step {
    decimals: Option<u8>,
    left: Input,
    right: Input,
    operator: ArithmeticOperator,
    /// The output's column in the working schema.
    output: usize,
}

impl Arithmetic {
    /// Plans the steps over a working schema that grows as outputs are added.
    fn plan(&self, input: &Schema) -> Result<(Vec<Step>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.operations.is_empty() {
            problems.push("/operations", "add at least one operation");
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut steps = Vec::new();
        for (k, op) in self.operations.iter().enumerate() {
            let schema = Schema::new(fields.clone());
            let mut operand = |o: &Operand, side: &str| match o {
                Operand::Number(n) => Some(Input::Number(*n)),
                Operand::Field(f) => problems
                    .check(find_typed(
                        &schema,
                        f,
                        format!("/operations/{k}/{side}"),
                        DataType::is_numeric,
                        "a number field: arithmetic works on numbers only",
                    ))
                    .map(Input::Column),
            };
            let (left, right) = (operand(&op.left, "left"), operand(&op.right, "right"));
            if op.output.trim().is_empty() {
                problems.push(
                    format!("/operations/{k}/output"),
                    "name the field that gets the result",
                );
                continue;
            }
            let field = Field::new(&op.output, DataType::Float64, true);
            let output = match fields.iter().position(|f| f.name() == &op.output) {
                Some(i) => {
                    fields[i] = field;
                    i
                }
                None => {
                    fields.push(field);
                    fields.len() - 1
                }
            };
            if let (Some(left), Some(right)) = (left, right) {
                steps.push(Step {
                    decimals: op.decimals,
                    left,
                    right,
                    operator: op.operator,
                    output,
                });
            }
        }
        problems.into_result(())?;
        Ok((steps, Arc::new(Schema::new(fields))))
    }
}

impl NodeConfig for Arithmetic {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
            .map(|(_, s)| s)
    }

    fn summary(&self) -> String {
        let show = |o: &Operand| match o {
            Operand::Number(n) => n.to_string(),
            Operand::Field(f) => f.clone(),
        };
        let sign = |o: ArithmeticOperator| match o {
            ArithmeticOperator::Add => "+",
            ArithmeticOperator::Subtract => "−",
            ArithmeticOperator::Multiply => "×",
            ArithmeticOperator::Divide => "÷",
        };
        match self.operations.as_slice() {
            [o] => format!(
                "{} = {} {} {}",
                o.output,
                show(&o.left),
                sign(o.operator),
                show(&o.right)
            ),
            many => format!("{} operations", many.len()),
        }
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (steps, schema) = self.plan(cx.input_schema.as_ref().expect("input"))?;
        Ok(Runtime::Transform(Box::new(ArithmeticRun {
            steps,
            schema,
        })))
    }
}

struct ArithmeticRun {
    steps: Vec<Step>,
    schema: SchemaRef,
}

fn float(column: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    if column.data_type() == &DataType::Float64 {
        Ok(column.clone())
    } else {
        cast(column, &DataType::Float64)
    }
}

impl Transform for ArithmeticRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        for step in &self.steps {
            let value = |input: &Input,
                         columns: &[ArrayRef]|
             -> Result<ArrayRef, arrow::error::ArrowError> {
                match input {
                    Input::Column(i) => float(&columns[*i]),
                    Input::Number(n) => Ok(Arc::new(Float64Array::from_value(*n, rows))),
                }
            };
            let (left, right) = (value(&step.left, &columns)?, value(&step.right, &columns)?);
            let result = match step.operator {
                ArithmeticOperator::Add => numeric::add(&left, &right)?,
                ArithmeticOperator::Subtract => numeric::sub(&left, &right)?,
                ArithmeticOperator::Multiply => numeric::mul(&left, &right)?,
                ArithmeticOperator::Divide => {
                    let quotient = numeric::div(&left, &right)?;
                    let zero = Scalar::new(Float64Array::from(vec![0.0]));
                    let by_zero: BooleanArray = cmp::eq(&right, &zero)?;
                    cx.note("divide_by_zero", by_zero.true_count() as u64);
                    nullif(&quotient, &by_zero)?
                }
            };
            let result = match step.decimals {
                Some(d) => round(&result, d)?,
                None => result,
            };
            if step.output < columns.len() {
                columns[step.output] = result;
            } else {
                columns.push(result);
            }
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn round(values: &ArrayRef, decimals: u8) -> Result<ArrayRef, arrow::error::ArrowError> {
    let scale = 10f64.powi(decimals.into());
    let values = values
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("results are Float64");
    let rounded: Float64Array =
        arrow::compute::kernels::arity::unary(values, |v| (v * scale).round() / scale);
    Ok(Arc::new(rounded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn arith(ops: serde_json::Value) -> Arithmetic {
        serde_json::from_value(json!({ "operations": ops })).unwrap()
    }

    #[test]
    fn chained_operations_with_constants_and_integers() {
        let batch = batch_of(&[
            ("Amount", floats(&[Some(2000.0), None, Some(-10.5)])),
            ("Probability", ints(&[Some(25), Some(50), Some(100)])),
        ]);
        let a = arith(json!([
            {"output": "Expected", "left": "Amount", "operator": "multiply", "right": "Probability"},
            {"output": "Expected", "left": "Expected", "operator": "divide", "right": 100},
            {"output": "Plus", "left": 1, "operator": "add", "right": "Probability"},
            {"output": "Minus", "left": "Probability", "operator": "subtract", "right": 0.5}
        ]));
        let (out, cx) = run_one(&a, batch);
        assert_eq!(f64s(&out, "Expected"), [Some(500.0), None, Some(-10.5)]);
        assert_eq!(f64s(&out, "Plus"), [Some(26.0), Some(51.0), Some(101.0)]);
        assert_eq!(f64s(&out, "Minus"), [Some(24.5), Some(49.5), Some(99.5)]);
        assert!(cx.notes.is_empty());
    }

    #[test]
    fn rounding() {
        let batch = batch_of(&[
            ("q", ints(&[Some(5), Some(3), None])),
            ("p", floats(&[Some(474.04), Some(0.125), Some(1.0)])),
        ]);
        let (out, _) = run_one(
            &arith(
                json!([{"output": "t", "left": "q", "operator": "multiply", "right": "p", "decimals": 2}]),
            ),
            batch,
        );
        assert_eq!(f64s(&out, "t"), [Some(2370.2), Some(0.38), None]);
    }

    #[test]
    fn divide_by_zero_is_null_and_counted() {
        let batch = batch_of(&[
            ("a", floats(&[Some(1.0), Some(0.0), Some(-1.0), None])),
            ("b", ints(&[Some(0), Some(0), Some(4), Some(0)])),
        ]);
        let (out, cx) = run_one(
            &arith(json!([{"output": "q", "left": "a", "operator": "divide", "right": "b"}])),
            batch.clone(),
        );
        assert_eq!(f64s(&out, "q"), [None, None, Some(-0.25), None]);
        assert_eq!(cx.notes["divide_by_zero"], 3);
        let (out, cx) = run_one(
            &arith(json!([{"output": "q", "left": "a", "operator": "divide", "right": 0}])),
            batch,
        );
        assert_eq!(f64s(&out, "q"), [None, None, None, None]);
        assert_eq!(cx.notes["divide_by_zero"], 4);
    }

    #[test]
    fn large_integers_and_extremes() {
        let batch = batch_of(&[
            ("i", ints(&[Some(i64::MAX), Some(i64::MIN)])),
            ("f", floats(&[Some(f64::MAX), Some(f64::MIN_POSITIVE)])),
        ]);
        let (out, _) = run_one(
            &arith(
                json!([{"output": "s", "left": "i", "operator": "add", "right": "i"}, {"output": "m", "left": "f", "operator": "multiply", "right": 2}]),
            ),
            batch,
        );
        assert_eq!(
            f64s(&out, "s"),
            [Some(i64::MAX as f64 * 2.0), Some(i64::MIN as f64 * 2.0)]
        );
        assert_eq!(f64s(&out, "m")[0], Some(f64::INFINITY));
    }

    #[test]
    fn text_fields_are_refused() {
        let schema = batch_of(&[("Name", strs(&["x"])), ("n", ints(&[Some(1)]))]).schema();
        let p = plan_problems(
            &arith(json!([{"output": "o", "left": "Name", "operator": "add", "right": "n"}])),
            &schema,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "/operations/0/left");
        assert!(
            p[0].message.contains("arithmetic works on numbers only"),
            "{}",
            p[0].message
        );
    }
}
