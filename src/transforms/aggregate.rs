//! Aggregate: groups records by fields and computes count, count distinct, sum, average,
//! min and max per group (the "transform & aggregate" step of the marketing data lake).
//! Emits one record per group when the input ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, Float64Array, Float64Builder, Int64Builder,
    RecordBatch, new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{DECIMAL128_MAX_PRECISION, Decimal128Type, Int64Type};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::{Problems, any_type, find, find_typed};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// One output record per distinct combination of these fields; one record in all when
    /// empty.
    #[serde(default)]
    #[schemars(extend("x-field" = true))]
    pub group_by: Vec<String>,
    pub aggregates: Vec<Aggregation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    pub function: Function,
    /// The field to aggregate; `count` without a field counts records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-field" = true))]
    pub field: Option<String>,
    /// The output field's name.
    pub output: String,
}

/// Nulls are skipped by every function but a `count` of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl NodeKind for Aggregate {
    const TYPE: &'static str = "transform.aggregate";
    const TITLE: &'static str = "Aggregate";
    const ICON: &'static str = "Σ";
    const DESCRIPTION: &'static str = "Group records and count, sum, average, min, max";
}

struct Planned {
    group: Vec<usize>,
    /// (function, input column) per aggregation.
    aggs: Vec<(Function, Option<usize>)>,
    schema: SchemaRef,
}

impl Aggregate {
    fn plan(&self, input: &Schema) -> Result<Planned, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let group: Vec<usize> = problems.fields(input, &self.group_by, "/group_by", any_type, "");
        if self.aggregates.is_empty() {
            problems.push(
                "/aggregates",
                "add at least one aggregation, such as a count",
            );
        }
        let mut fields: Vec<Field> = group
            .iter()
            .map(|&i| input.field(i).as_ref().clone().with_nullable(true))
            .collect();
        let mut aggs = Vec::new();
        for (k, a) in self.aggregates.iter().enumerate() {
            let path = format!("/aggregates/{k}/field");
            let column = match (&a.field, a.function) {
                (None, Function::Count) => None,
                (None, _) => {
                    problems.push(path, "this function needs a field");
                    continue;
                }
                (Some(f), Function::Sum | Function::Avg) => match problems.check(find_typed(
                    input,
                    f,
                    path,
                    DataType::is_numeric,
                    "a number field",
                )) {
                    Some(i) => Some(i),
                    None => continue,
                },
                (Some(f), _) => match problems.check(find(input, f, path)) {
                    Some(i) => Some(i),
                    None => continue,
                },
            };
            let dt = match a.function {
                Function::Count | Function::CountDistinct => DataType::Int64,
                // Decimals add up exactly, in the widest decimal of the same scale; whole
                // numbers to a whole number (clicks, quantities), floating point the rest.
                Function::Sum => match input.field(column.expect("has a field")).data_type() {
                    DataType::Decimal128(_, scale) => {
                        DataType::Decimal128(DECIMAL128_MAX_PRECISION, *scale)
                    }
                    t if t.is_integer() => DataType::Int64,
                    _ => DataType::Float64,
                },
                Function::Avg => DataType::Float64,
                Function::Min | Function::Max => input
                    .field(column.expect("has a field"))
                    .data_type()
                    .clone(),
            };
            if fields.iter().any(|f| f.name() == &a.output) {
                problems.push(
                    format!("/aggregates/{k}/output"),
                    format!("two output fields are named `{}`", a.output),
                );
            }
            fields.push(Field::new(
                &a.output,
                dt,
                !matches!(a.function, Function::Count | Function::CountDistinct),
            ));
            aggs.push((a.function, column));
        }
        problems.into_result(())?;
        Ok(Planned {
            group,
            aggs,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

impl NodeConfig for Aggregate {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
            .map(|p| p.schema)
    }

    fn summary(&self) -> String {
        if self.group_by.is_empty() {
            format!("{} aggregates", self.aggregates.len())
        } else {
            format!(
                "by {} · {} aggregates",
                self.group_by.join(", "),
                self.aggregates.len()
            )
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.as_ref().expect("input");
        let planned = self.plan(input)?;
        let group_converter = RowConverter::new(
            planned
                .group
                .iter()
                .map(|&i| SortField::new(input.field(i).data_type().clone()))
                .collect(),
        )?;
        let states = planned
            .aggs
            .iter()
            .map(|&(function, column)| {
                let converter = match (function, column) {
                    (Function::CountDistinct | Function::Min | Function::Max, Some(i)) => {
                        Some(RowConverter::new(vec![SortField::new(
                            input.field(i).data_type().clone(),
                        )])?)
                    }
                    _ => None,
                };
                Ok(State {
                    function,
                    column,
                    converter,
                    count: Vec::new(),
                    sum: Vec::new(),
                    scale: match column.map(|i| input.field(i).data_type()) {
                        Some(DataType::Decimal128(_, scale)) => Some(*scale),
                        _ => None,
                    },
                    whole: column.is_some_and(|i| input.field(i).data_type().is_integer()),
                    exact: Vec::new(),
                    best: Vec::new(),
                    distinct: Vec::new(),
                })
            })
            .collect::<Result<_, arrow::error::ArrowError>>()?;
        Ok(Runtime::Transform(Box::new(AggregateRun {
            group: planned.group,
            schema: planned.schema,
            group_converter,
            groups: HashMap::new(),
            keys: Vec::new(),
            states,
        })))
    }
}

/// The running values of one aggregation, one slot per group.
struct State {
    function: Function,
    column: Option<usize>,
    /// Encodes values for distinct sets and for min/max, which compare encodings so every
    /// orderable type works.
    converter: Option<RowConverter>,
    count: Vec<i64>,
    sum: Vec<f64>,
    /// The scale of a decimal field summed or averaged: its sums are kept exact, in
    /// `exact`, in units of that scale.
    scale: Option<i8>,
    /// Whether the field summed or averaged holds whole numbers: its sums are kept exact,
    /// in `exact`, too.
    whole: bool,
    exact: Vec<i128>,
    best: Vec<Option<OwnedRow>>,
    distinct: Vec<HashSet<Box<[u8]>>>,
}

struct AggregateRun {
    group: Vec<usize>,
    schema: SchemaRef,
    group_converter: RowConverter,
    groups: HashMap<Box<[u8]>, usize>,
    keys: Vec<OwnedRow>,
    states: Vec<State>,
}

impl AggregateRun {
    fn add_group(&mut self, key: OwnedRow) -> usize {
        let g = self.keys.len();
        let row = key.row();
        let bytes: &[u8] = row.as_ref();
        self.groups.insert(bytes.into(), g);
        self.keys.push(key);
        self.push_slots();
        g
    }

    /// With no group fields there is exactly one group, even for no input at all.
    fn ensure_single_group(&mut self) {
        if self.states[0].count.is_empty() {
            self.push_slots();
        }
    }

    fn push_slots(&mut self) {
        for s in &mut self.states {
            s.count.push(0);
            s.sum.push(0.0);
            s.exact.push(0);
            s.best.push(None);
            s.distinct.push(HashSet::new());
        }
    }
}

impl Transform for AggregateRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let group_columns: Vec<ArrayRef> = self
            .group
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = if self.group.is_empty() {
            None
        } else {
            Some(self.group_converter.convert_columns(&group_columns)?)
        };
        if rows.is_none() {
            self.ensure_single_group();
        }
        // Group index of each row.
        let mut ids = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let g = match &rows {
                Some(rows) => {
                    let row = rows.row(r);
                    match self.groups.get(row.as_ref()) {
                        Some(&g) => g,
                        None => self.add_group(row.owned()),
                    }
                }
                None => 0,
            };
            ids.push(g);
        }
        for s in &mut self.states {
            let column = s.column.map(|i| batch.column(i));
            match s.function {
                Function::Count => {
                    for (r, &g) in ids.iter().enumerate() {
                        if column.is_none_or(|c| c.is_valid(r)) {
                            s.count[g] += 1;
                        }
                    }
                }
                Function::Sum | Function::Avg if s.whole => {
                    let values = cast(column.expect("has a field"), &DataType::Int64)?;
                    let values = values.as_primitive::<Int64Type>();
                    for (r, &g) in ids.iter().enumerate() {
                        if values.is_valid(r) {
                            s.exact[g] += i128::from(values.value(r));
                            s.count[g] += 1;
                        }
                    }
                }
                Function::Sum | Function::Avg if s.scale.is_some() => {
                    let values = column
                        .expect("has a field")
                        .as_primitive::<Decimal128Type>();
                    for (r, &g) in ids.iter().enumerate() {
                        if values.is_valid(r) {
                            s.exact[g] = s.exact[g]
                                .checked_add(values.value(r))
                                .filter(|sum| sum.unsigned_abs() < 10u128.pow(38))
                                .ok_or_else(|| {
                                    NodeError::msg(format!(
                                        "the sum is beyond the {DECIMAL128_MAX_PRECISION} digits a decimal holds"
                                    ))
                                })?;
                            s.count[g] += 1;
                        }
                    }
                }
                Function::Sum | Function::Avg => {
                    let values = cast(column.expect("has a field"), &DataType::Float64)?;
                    let values = values
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("Float64");
                    for (r, &g) in ids.iter().enumerate() {
                        if values.is_valid(r) {
                            s.sum[g] += values.value(r);
                            s.count[g] += 1;
                        }
                    }
                }
                Function::CountDistinct | Function::Min | Function::Max => {
                    let column = column.expect("has a field");
                    let converter = s.converter.as_ref().expect("has a converter");
                    let encoded = converter.convert_columns(std::slice::from_ref(column))?;
                    for (r, &g) in ids.iter().enumerate() {
                        if column.is_null(r) {
                            continue;
                        }
                        let row = encoded.row(r);
                        match s.function {
                            Function::CountDistinct if !s.distinct[g].contains(row.as_ref()) => {
                                s.distinct[g].insert(row.as_ref().into());
                            }
                            Function::Min if s.best[g].as_ref().is_none_or(|b| row < b.row()) => {
                                s.best[g] = Some(row.owned())
                            }
                            Function::Max if s.best[g].as_ref().is_none_or(|b| row > b.row()) => {
                                s.best[g] = Some(row.owned())
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(RecordBatch::new_empty(self.schema.clone()))
    }

    fn finish(&mut self, _: &mut TransformContext) -> Result<Option<RecordBatch>, NodeError> {
        if self.group.is_empty() {
            self.ensure_single_group();
        }
        let n = self.states[0].count.len();
        let mut columns: Vec<ArrayRef> = if self.group.is_empty() {
            Vec::new()
        } else {
            self.group_converter
                .convert_rows(self.keys.iter().map(|k| k.row()))?
        };
        for (s, field) in self
            .states
            .iter()
            .zip(self.schema.fields().iter().skip(self.group.len()))
        {
            let column: ArrayRef = match s.function {
                Function::Count => Arc::new(
                    Int64Builder::new()
                        .tap(|b| b.append_slice(&s.count))
                        .finish(),
                ),
                Function::CountDistinct => Arc::new(
                    Int64Builder::new()
                        .tap(|b| {
                            s.distinct
                                .iter()
                                .for_each(|d| b.append_value(d.len() as i64))
                        })
                        .finish(),
                ),
                Function::Sum if s.scale.is_some() => {
                    let mut b = Decimal128Builder::with_capacity(n);
                    for g in 0..n {
                        match s.count[g] {
                            0 => b.append_null(),
                            _ => b.append_value(s.exact[g]),
                        }
                    }
                    Arc::new(b.finish().with_data_type(field.data_type().clone()))
                }
                Function::Sum if s.whole => {
                    let mut b = Int64Builder::with_capacity(n);
                    for g in 0..n {
                        match s.count[g] {
                            0 => b.append_null(),
                            _ => b.append_value(i64::try_from(s.exact[g]).map_err(|_| {
                                NodeError::msg(format!(
                                    "the sum `{}` is beyond what a whole number holds (±9.2 × 10^18)",
                                    field.name()
                                ))
                            })?),
                        }
                    }
                    Arc::new(b.finish())
                }
                Function::Sum | Function::Avg => {
                    let mut b = Float64Builder::with_capacity(n);
                    for g in 0..n {
                        let sum = match (s.scale, s.whole) {
                            (Some(scale), _) => s.exact[g] as f64 / 10f64.powi(i32::from(scale)),
                            (None, true) => s.exact[g] as f64,
                            (None, false) => s.sum[g],
                        };
                        match (s.count[g], s.function) {
                            (0, _) => b.append_null(),
                            (_, Function::Sum) => b.append_value(sum),
                            (c, _) => b.append_value(sum / c as f64),
                        }
                    }
                    Arc::new(b.finish())
                }
                Function::Min | Function::Max => {
                    let converter = s.converter.as_ref().expect("has a converter");
                    let nulls =
                        converter.convert_columns(&[new_null_array(field.data_type(), 1)])?;
                    let null_row = nulls.row(0);
                    let rows = s
                        .best
                        .iter()
                        .map(|b| b.as_ref().map_or(null_row, |r| r.row()));
                    converter.convert_rows(rows)?.remove(0)
                }
            };
            columns.push(column);
        }
        Ok(Some(RecordBatch::try_new(self.schema.clone(), columns)?))
    }
}

trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
impl<T> Tap for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use serde_json::json;

    fn agg(v: serde_json::Value) -> Aggregate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn groups_with_every_function() {
        let a = batch_of(&[
            (
                "stage",
                opt_strs(&[Some("Won"), Some("Lost"), Some("Won"), None]),
            ),
            ("amount", floats(&[Some(10.0), Some(5.0), None, Some(1.0)])),
            ("who", strs(&["x", "y", "x", "z"])),
        ]);
        let b = batch_of(&[
            ("stage", opt_strs(&[Some("Won"), None])),
            ("amount", floats(&[Some(30.0), Some(2.0)])),
            ("who", strs(&["y", "z"])),
        ]);
        let config = agg(json!({
            "group_by": ["stage"],
            "aggregates": [
                {"function": "count", "output": "n"},
                {"function": "count", "field": "amount", "output": "n_amount"},
                {"function": "count_distinct", "field": "who", "output": "people"},
                {"function": "sum", "field": "amount", "output": "total"},
                {"function": "avg", "field": "amount", "output": "mean"},
                {"function": "min", "field": "who", "output": "first"},
                {"function": "max", "field": "amount", "output": "top"}
            ]
        }));
        let (out, _) = run_many(&config, vec![a, b]).unwrap();
        assert_eq!(
            texts(&out, "stage"),
            [Some("Won".to_string()), Some("Lost".to_string()), None]
        );
        assert_eq!(i64s(&out, "n"), [Some(3), Some(1), Some(2)]);
        assert_eq!(i64s(&out, "n_amount"), [Some(2), Some(1), Some(2)]);
        assert_eq!(i64s(&out, "people"), [Some(2), Some(1), Some(1)]);
        assert_eq!(f64s(&out, "total"), [Some(40.0), Some(5.0), Some(3.0)]);
        assert_eq!(f64s(&out, "mean"), [Some(20.0), Some(5.0), Some(1.5)]);
        assert_eq!(
            texts(&out, "first"),
            [
                Some("x".to_string()),
                Some("y".to_string()),
                Some("z".to_string())
            ]
        );
        assert_eq!(f64s(&out, "top"), [Some(30.0), Some(5.0), Some(2.0)]);
    }

    #[test]
    fn without_groups_one_record_even_for_no_input() {
        let empty = batch_of(&[("amount", floats(&[]))]);
        let config = agg(
            json!({"aggregates": [{"function": "count", "output": "n"}, {"function": "sum", "field": "amount", "output": "s"}, {"function": "min", "field": "amount", "output": "lo"}]}),
        );
        let (out, _) = run_many(&config, vec![empty]).unwrap();
        assert_eq!(out.num_rows(), 1);
        assert_eq!(i64s(&out, "n"), [Some(0)]);
        assert_eq!(f64s(&out, "s"), [None]);
        assert_eq!(f64s(&out, "lo"), [None]);
        let (out, _) = run_many(
            &config,
            vec![batch_of(&[("amount", floats(&[Some(-1.0), Some(4.0)]))])],
        )
        .unwrap();
        assert_eq!(f64s(&out, "s"), [Some(3.0)]);
        assert_eq!(f64s(&out, "lo"), [Some(-1.0)]);
    }

    #[test]
    fn whole_numbers_add_up_to_a_whole_number_and_overflow_is_said() {
        let clicks = |v: &[Option<i64>]| batch_of(&[("clicks", ints(v))]);
        let config = agg(json!({"aggregates": [
            {"function": "sum", "field": "clicks", "output": "total"},
            {"function": "avg", "field": "clicks", "output": "mean"}
        ]}));
        let (out, _) = run_many(
            &config,
            vec![
                clicks(&[Some(3), None, Some(4)]),
                clicks(&[Some(i64::MAX / 2)]),
            ],
        )
        .unwrap();
        assert_eq!(out.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(i64s(&out, "total"), [Some(i64::MAX / 2 + 7)]);
        assert_eq!(f64s(&out, "mean"), [Some((i64::MAX / 2 + 7) as f64 / 3.0)]);
        let error =
            run_many(&config, vec![clicks(&[Some(i64::MAX)]), clicks(&[Some(1)])]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the sum `total` is beyond what a whole number holds"),
            "{error}"
        );
    }

    #[test]
    fn sum_needs_numbers() {
        let schema = batch_of(&[("who", strs(&["x"]))]).schema();
        let p = plan_problems(
            &agg(
                json!({"aggregates": [{"function": "sum", "field": "who", "output": "s"}, {"function": "max", "output": "m"}]}),
            ),
            &schema,
        );
        assert_eq!(
            p.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
            ["/aggregates/0/field", "/aggregates/1/field"]
        );
    }
}
