//! Helpers for unit tests of nodes: build small batches, run one node on them.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;

use crate::node::TransformContext;
use crate::node::{BuildContext, ConfigProblem, NodeConfig, PlanContext, Runtime};

pub fn strs(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

pub fn opt_strs(v: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

pub fn ints(v: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

pub fn floats(v: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(v.to_vec()))
}

pub fn bools(v: &[Option<bool>]) -> ArrayRef {
    Arc::new(BooleanArray::from(v.to_vec()))
}

pub fn batch_of(columns: &[(&str, ArrayRef)]) -> RecordBatch {
    RecordBatch::try_from_iter(columns.iter().map(|(n, a)| (*n, a.clone()))).unwrap()
}

pub fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

pub fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap_or_else(|| {
            panic!(
                "column {name} has type {}",
                batch.column_by_name(name).unwrap().data_type()
            )
        })
}

pub fn texts(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    column::<StringArray>(batch, name)
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

pub fn f64s(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    column::<Float64Array>(batch, name).iter().collect()
}

pub fn i64s(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    column::<Int64Array>(batch, name).iter().collect()
}

/// Transforms reach no service and write nothing: the data folder is never looked at.
fn plan_context() -> PlanContext {
    PlanContext {
        base_dir: PathBuf::from("."),
        dirs: crate::paths::Dirs::under(std::path::Path::new("no-data-folder")),
        discovery: Default::default(),
    }
}

fn build_context(input: SchemaRef, output: SchemaRef) -> BuildContext {
    BuildContext {
        node_id: "t".into(),
        flow_name: "test".into(),
        execution_id: "test-run".into(),
        started: chrono::Utc::now(),
        base_dir: PathBuf::from("."),
        dirs: plan_context().dirs,
        discovery: Default::default(),
        input_schema: Some(input),
        output_schema: output,
        batch_rows: 1024,
        watermark: None,
        first_run_from: None,
        errors: crate::node::ErrorSink::in_memory(),
        partition: None,
        agreement: None,
        staging: None,
    }
}

/// A transform planned and built for `input`, with the schema it plans to put out.
pub fn built(
    config: &dyn NodeConfig,
    input: SchemaRef,
) -> Result<(Box<dyn crate::node::Transform>, SchemaRef), crate::node::NodeError> {
    let output = config
        .output_schema(Some(&input), &plan_context())
        .unwrap_or_else(|p| panic!("{p:?}"));
    let Runtime::Transform(t) = config.build(&build_context(input, output.clone()))? else {
        panic!("not a transform")
    };
    Ok((t, output))
}

/// Plans, builds and runs a transform over `batches`, with `finish` at the end.
pub fn run_many(
    config: &dyn NodeConfig,
    batches: Vec<RecordBatch>,
) -> Result<(RecordBatch, TransformContext), crate::node::NodeError> {
    run_received(config, batches[0].schema(), batches)
}

/// As [`run_many`], for a node that receives `input` (a union's), whatever the batches'
/// own schemas.
pub fn run_received(
    config: &dyn NodeConfig,
    input: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(RecordBatch, TransformContext), crate::node::NodeError> {
    let (mut t, output) = built(config, input)?;
    let mut cx = TransformContext::new("t");
    let mut outs = Vec::new();
    for b in batches {
        outs.push(t.apply(b, &mut cx)?);
    }
    if let Some(b) = t.finish(&mut cx)? {
        outs.push(b);
    }
    for o in &outs {
        assert_eq!(
            o.schema().fields(),
            output.fields(),
            "planned and actual schemas differ"
        );
    }
    Ok((concat_batches(&output, &outs).unwrap(), cx))
}

pub fn run_one(config: &dyn NodeConfig, batch: RecordBatch) -> (RecordBatch, TransformContext) {
    run_many(config, vec![batch]).unwrap()
}

pub fn plan_problems(config: &dyn NodeConfig, input: &SchemaRef) -> Vec<ConfigProblem> {
    let plan = plan_context();
    config
        .output_schema(Some(input), &plan)
        .err()
        .unwrap_or_default()
}
