//! Union: the records of several inputs as one stream (the reports of GA4, Google Ads and
//! Meta Ads into one table). It receives every field of every input by name; a field an
//! input lacks is empty (null) in that input's records. Records pass in the order they
//! arrive, which interleaves the inputs.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, INPUT_KEY, NodeConfig, NodeError, NodeKind, PlanContext, Runtime,
    Transform,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Union {
    /// A new text field holding, for each record, the input it came from (that node's
    /// label, else its id); none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_field: Option<String>,
}

impl NodeKind for Union {
    const TYPE: &'static str = "transform.union";
    const TITLE: &'static str = "Union";
    const ICON: &'static str = "📥";
    const DESCRIPTION: &'static str = "Put the records of several inputs into one stream";
    const MANY_INPUTS: bool = true;
}

impl Union {
    fn plan(&self, input: &Schema) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if let Some(name) = &self.input_field {
            if name.trim().is_empty() {
                return Err(vec![ConfigProblem::new(
                    "/input_field",
                    "name the field, or leave the setting out",
                )]);
            }
            if input.index_of(name).is_ok() {
                return Err(vec![ConfigProblem::new(
                    "/input_field",
                    format!("an input has a field `{name}` already: choose another name"),
                )]);
            }
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

impl NodeConfig for Union {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
    }

    fn summary(&self) -> String {
        match &self.input_field {
            Some(name) => format!("each record's input in {name}"),
            None => "all inputs".into(),
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.clone().expect("input");
        let output = self.plan(&input)?;
        Ok(Runtime::Transform(Box::new(UnionRun {
            input,
            output,
            tagged: self.input_field.is_some(),
        })))
    }
}

struct UnionRun {
    /// Every input's fields.
    input: SchemaRef,
    output: SchemaRef,
    tagged: bool,
}

impl Transform for UnionRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let rows = batch.num_rows();
        let schema = batch.schema();
        let mut columns: Vec<ArrayRef> = self
            .input
            .fields()
            .iter()
            .map(|f| match schema.index_of(f.name()) {
                Ok(i) => batch.column(i).clone(),
                Err(_) => new_null_array(f.data_type(), rows),
            })
            .collect();
        if self.tagged {
            let from = schema.metadata().get(INPUT_KEY).map(String::as_str);
            columns.push(Arc::new(StringArray::from(vec![from; rows])));
        }
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn from(batch: RecordBatch, input: &str) -> RecordBatch {
        let mut metadata = std::collections::HashMap::new();
        metadata.insert(INPUT_KEY.to_string(), input.to_string());
        let schema = batch.schema().as_ref().clone().with_metadata(metadata);
        batch.with_schema(Arc::new(schema)).unwrap()
    }

    #[test]
    fn each_input_fills_the_fields_it_has_and_names_itself() {
        let ads = batch_of(&[
            ("day", strs(&["d1", "d2"])),
            ("clicks", ints(&[Some(3), Some(4)])),
        ]);
        let meta = batch_of(&[("day", strs(&["d1"])), ("spend", floats(&[Some(1.5)]))]);
        let union =
            crate::node::union_schema(&[("ads", &ads.schema()), ("meta", &meta.schema())]).unwrap();
        let config = Union {
            input_field: Some("channel".into()),
        };
        let (out, _) = run_received(
            &config,
            union,
            vec![from(ads, "Google Ads"), from(meta, "Meta")],
        )
        .unwrap();
        assert_eq!(
            texts(&out, "channel"),
            vec![
                Some("Google Ads".into()),
                Some("Google Ads".into()),
                Some("Meta".into())
            ]
        );
        assert_eq!(
            texts(&out, "day"),
            vec![Some("d1".into()), Some("d2".into()), Some("d1".into())]
        );
        assert_eq!(out.column_by_name("clicks").unwrap().null_count(), 1);
        assert_eq!(out.column_by_name("spend").unwrap().null_count(), 2);
    }

    #[test]
    fn a_field_of_two_types_is_named_with_both_inputs() {
        let a = batch_of(&[("clicks", ints(&[Some(1)]))]);
        let b = batch_of(&[("clicks", strs(&["1"]))]);
        let err =
            crate::node::union_schema(&[("ads", &a.schema()), ("meta", &b.schema())]).unwrap_err();
        assert_eq!(
            err,
            "`clicks` is integer in `ads` but string in `meta`: make them one type (a map or a cast) before the union"
        );
    }
}
