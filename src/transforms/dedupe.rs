//! Dedupe: keeps the first record for each key and drops later ones. Keys seen are kept for
//! the whole run (as compact row encodings), so memory grows with distinct keys, not with
//! records.

use std::collections::HashSet;

use arrow::array::{BooleanBuilder, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::{Problems, any_type};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// Records with equal values in these fields are duplicates; all fields when empty.
    /// Nulls are equal to each other here.
    #[serde(default)]
    #[schemars(extend("x-field" = true))]
    pub keys: Vec<String>,
}

impl NodeKind for Dedupe {
    const TYPE: &'static str = "transform.dedupe";
    const TITLE: &'static str = "Dedupe";
    const ICON: &'static str = "🗐";
    const DESCRIPTION: &'static str = "Keep the first record for each key";
}

impl Dedupe {
    fn plan(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let keys = if self.keys.is_empty() {
            (0..input.fields().len()).collect()
        } else {
            problems.fields(input, &self.keys, "/keys", any_type, "")
        };
        problems.into_result(keys)
    }
}

impl NodeConfig for Dedupe {
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
        if self.keys.is_empty() {
            "by all fields".into()
        } else {
            format!("by {}", self.keys.join(", "))
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.as_ref().expect("input");
        let keys = self.plan(input)?;
        let converter = RowConverter::new(
            keys.iter()
                .map(|&i| SortField::new(input.field(i).data_type().clone()))
                .collect(),
        )?;
        Ok(Runtime::Transform(Box::new(DedupeRun {
            keys,
            converter,
            seen: HashSet::new(),
        })))
    }
}

struct DedupeRun {
    keys: Vec<usize>,
    converter: RowConverter,
    seen: HashSet<Box<[u8]>>,
}

impl Transform for DedupeRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let columns: Vec<_> = self.keys.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = self.converter.convert_columns(&columns)?;
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        for row in rows.iter() {
            let bytes: &[u8] = row.as_ref();
            let new = !self.seen.contains(bytes);
            if new {
                self.seen.insert(bytes.into());
            }
            keep.append_value(new);
        }
        let out = filter_record_batch(&batch, &keep.finish())?;
        cx.dropped += (batch.num_rows() - out.num_rows()) as u64;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn keeps_first_across_batches_with_nulls_equal() {
        let a = batch_of(&[
            (
                "email",
                opt_strs(&[Some("a@x"), Some("b@x"), Some("a@x"), None]),
            ),
            ("n", ints(&[Some(1), Some(2), Some(3), Some(4)])),
        ]);
        let b = batch_of(&[
            (
                "email",
                opt_strs(&[None, Some("c@x"), Some("b@x"), Some("")]),
            ),
            ("n", ints(&[Some(5), Some(6), Some(7), Some(8)])),
        ]);
        let (out, cx) = run_many(
            &Dedupe {
                keys: vec!["email".into()],
            },
            vec![a.clone(), b.clone()],
        )
        .unwrap();
        assert_eq!(
            i64s(&out, "n"),
            [Some(1), Some(2), Some(4), Some(6), Some(8)]
        );
        assert_eq!(cx.dropped, 3);
        let (all, _) = run_many(&Dedupe { keys: vec![] }, vec![a.clone(), a]).unwrap();
        assert_eq!(
            all.num_rows(),
            4,
            "all fields: the second copy of each row goes"
        );
    }
}
