//! Map: choose fields, rename them and change their types (AppFlow's Map task).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, RecordBatch, make_array};
use arrow::buffer::NullBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::{Problems, any_type, find};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::records::row_json;
use crate::types::{FieldType, describe};

/// Keeps the listed fields, in this order, renamed and converted as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Map {
    /// The fields to keep.
    pub fields: Vec<FieldMapping>,
}

/// One source field → destination field row of the mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// The field in the input; `owner.email` takes the `email` field out of the `owner`
    /// object.
    #[schemars(extend("x-field" = true))]
    pub source: String,
    /// Its name in the output; the source name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Convert to this type. A value that does not convert sends its record to the error
    /// output.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub to_type: Option<FieldType>,
}

impl FieldMapping {
    fn target(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.source)
    }
}

impl NodeKind for Map {
    const TYPE: &'static str = "transform.map";
    const TITLE: &'static str = "Map";
    const ICON: &'static str = "🔀";
    const DESCRIPTION: &'static str = "Choose, rename and convert fields";
}

impl Map {
    fn plan(&self, input: &Schema) -> Result<(Vec<Vec<usize>>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let mut indices = Vec::new();
        let mut fields = Vec::new();
        if self.fields.is_empty() {
            problems.push("/fields", "map at least one field");
        }
        for (k, m) in self.fields.iter().enumerate() {
            let Some((path, from)) =
                problems.check(find_path(input, &m.source, format!("/fields/{k}/source")))
            else {
                continue;
            };
            if m.target().trim().is_empty() {
                problems.push(
                    format!("/fields/{k}/target"),
                    format!("`{}` needs an output name", m.source),
                );
                continue;
            }
            if fields.iter().any(|f: &Field| f.name() == m.target()) {
                problems.push(
                    format!("/fields/{k}/target"),
                    format!("two fields are named `{}` in the output", m.target()),
                );
            }
            let from = &from;
            let to = m
                .to_type
                .map(FieldType::arrow)
                .unwrap_or_else(|| from.clone());
            if !arrow::compute::can_cast_types(from, &to) {
                problems.push(
                    format!("/fields/{k}/type"),
                    format!(
                        "a {} field cannot be converted to {}",
                        describe(from),
                        describe(&to)
                    ),
                );
            }
            indices.push(path);
            fields.push(Field::new(m.target(), to, true));
        }
        problems.into_result((indices, Arc::new(Schema::new(fields))))
    }
}

/// A field of the input by name, or a value inside an object field by a dotted path
/// (`owner.email`): the child indices to it, and its type. A field whose own name holds a
/// dot is found as it is first.
fn find_path(
    input: &Schema,
    source: &str,
    at: String,
) -> Result<(Vec<usize>, DataType), ConfigProblem> {
    if let Ok(i) = input.index_of(source) {
        return Ok((vec![i], input.field(i).data_type().clone()));
    }
    let mut parts = source.split('.');
    let first = parts.next().unwrap_or_default();
    if !source.contains('.') || input.index_of(first).is_err() {
        return find(input, source, at).map(|i| (vec![i], input.field(i).data_type().clone()));
    }
    let i = input.index_of(first).expect("checked above");
    let (mut path, mut kind, mut walked) = (
        vec![i],
        input.field(i).data_type().clone(),
        first.to_string(),
    );
    for part in parts {
        let DataType::Struct(children) = &kind else {
            return Err(ConfigProblem::new(
                at,
                format!("`{walked}` is not an object, so it has no `{part}`"),
            ));
        };
        let Some(c) = children.iter().position(|f| f.name() == part) else {
            let names: Vec<&str> = children.iter().map(|f| f.name().as_str()).collect();
            return Err(ConfigProblem::new(
                at,
                format!("`{walked}` has no `{part}`; it holds {}", names.join(", ")),
            ));
        };
        path.push(c);
        kind = children[c].data_type().clone();
        walked = format!("{walked}.{part}");
    }
    Ok((path, kind))
}

/// The column at `path` (see [`find_path`]); a value inside a missing object is missing.
fn column_at(batch: &RecordBatch, path: &[usize]) -> Result<ArrayRef, NodeError> {
    let mut column = batch.column(path[0]).clone();
    for &c in &path[1..] {
        let parent = column.as_struct();
        let child = parent.column(c);
        let nulls = NullBuffer::union(parent.nulls(), child.nulls());
        column = make_array(child.to_data().into_builder().nulls(nulls).build()?);
    }
    Ok(column)
}

impl NodeConfig for Map {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a transform has an input");
        self.plan(input).map(|(_, s)| s)
    }

    fn summary(&self) -> String {
        format!("{} fields", self.fields.len())
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.as_ref().expect("a transform has an input");
        let (indices, schema) = self.plan(input)?;
        Ok(Runtime::Transform(Box::new(MapRun { indices, schema })))
    }
}

struct MapRun {
    /// Per output field, where it is in the input (see [`find_path`]).
    indices: Vec<Vec<usize>>,
    schema: SchemaRef,
}

impl Transform for MapRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.indices.len());
        // Rows whose value would not convert; they leave the stream for the error output.
        let mut bad: Vec<Option<String>> = vec![None; batch.num_rows()];
        for (path, field) in self.indices.iter().zip(self.schema.fields()) {
            let column = &column_at(&batch, path)?;
            if column.data_type() == field.data_type() {
                columns.push(column.clone());
                continue;
            }
            let source = batch.schema().field(path[0]).name().clone();
            let type_name = describe(field.data_type());
            columns.push(crate::records::convert(
                column,
                field.data_type(),
                &mut bad,
                |_| format!("field `{source}`: the value cannot be converted to {type_name}"),
            )?);
        }
        let out = RecordBatch::try_new(self.schema.clone(), columns)?;
        if bad.iter().all(Option::is_none) {
            return Ok(out);
        }
        let mut keep = BooleanBuilder::with_capacity(bad.len());
        for (row, reason) in bad.into_iter().enumerate() {
            keep.append_value(reason.is_none());
            if let Some(reason) = reason {
                cx.reject(reason, row_json(&batch, row));
            }
        }
        Ok(filter_record_batch(&out, &keep.finish())?)
    }
}

/// Map all: passes every field except the listed ones (AppFlow's "map all fields").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapAll {
    /// Fields to leave out.
    #[serde(default)]
    #[schemars(extend("x-field" = true))]
    pub exclude: Vec<String>,
}

impl NodeKind for MapAll {
    const TYPE: &'static str = "transform.map_all";
    const TITLE: &'static str = "Map all";
    const ICON: &'static str = "☰";
    const DESCRIPTION: &'static str = "Pass every field except the ones listed";
}

impl MapAll {
    fn plan(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let excluded: Vec<usize> = problems.fields(input, &self.exclude, "/exclude", any_type, "");
        let kept = (0..input.fields().len())
            .filter(|i| !excluded.contains(i))
            .collect();
        problems.into_result(kept)
    }
}

impl NodeConfig for MapAll {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a transform has an input");
        let kept = self.plan(input)?;
        Ok(Arc::new(
            input.project(&kept).expect("indices come from the schema"),
        ))
    }

    fn summary(&self) -> String {
        match self.exclude.len() {
            0 => "all fields".into(),
            n => format!("all fields but {n}"),
        }
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx.input_schema.as_ref().expect("a transform has an input");
        let kept = self.plan(input)?;
        Ok(Runtime::Transform(Box::new(Project(kept))))
    }
}

/// Keeps the columns at these indices.
pub(crate) struct Project(pub Vec<usize>);

impl Transform for Project {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        Ok(batch.project(&self.0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn projects_renames_and_converts() {
        let batch = batch_of(&[
            ("Id", strs(&["a", "b"])),
            ("Amount", strs(&["10", "2.5"])),
            ("X", ints(&[Some(1), None])),
        ]);
        let map = Map {
            fields: vec![
                FieldMapping {
                    source: "Amount".into(),
                    target: Some("amount".into()),
                    to_type: Some(FieldType::Number),
                },
                FieldMapping {
                    source: "Id".into(),
                    target: None,
                    to_type: None,
                },
            ],
        };
        let (out, cx) = run_one(&map, batch);
        assert_eq!(names(&out), ["amount", "Id"]);
        assert_eq!(f64s(&out, "amount"), [Some(10.0), Some(2.5)]);
        assert!(cx.rejected.is_empty());
    }

    #[test]
    fn values_that_do_not_convert_go_to_the_error_output() {
        let batch = batch_of(&[
            ("n", strs(&["1", "abc", ""])),
            ("s", strs(&["x", "y", "z"])),
        ]);
        let map = Map {
            fields: vec![FieldMapping {
                source: "n".into(),
                target: None,
                to_type: Some(FieldType::Integer),
            }],
        };
        let (out, cx) = run_one(&map, batch);
        assert_eq!(out.num_rows(), 1);
        assert_eq!(cx.rejected.len(), 2);
        assert!(
            cx.rejected[0].reason.contains("`n`"),
            "{}",
            cx.rejected[0].reason
        );
        assert!(cx.rejected[0].record.contains("abc"));
    }

    #[test]
    fn unknown_fields_and_impossible_casts_are_problems() {
        let schema = batch_of(&[("Id", strs(&["a"])), ("B", bools(&[Some(true)]))]).schema();
        let map = Map {
            fields: vec![
                FieldMapping {
                    source: "Nope".into(),
                    target: None,
                    to_type: None,
                },
                FieldMapping {
                    source: "Id".into(),
                    target: None,
                    to_type: None,
                },
                FieldMapping {
                    source: "B".into(),
                    target: Some("Id".into()),
                    to_type: Some(FieldType::Date),
                },
            ],
        };
        let problems = plan_problems(&map, &schema);
        assert_eq!(
            problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
            ["/fields/0/source", "/fields/2/target", "/fields/2/type"]
        );
    }

    #[test]
    fn map_all_leaves_out_listed_fields() {
        let batch = batch_of(&[
            ("a", strs(&["1"])),
            ("b", strs(&["2"])),
            ("c", strs(&["3"])),
        ]);
        let (out, _) = run_one(
            &MapAll {
                exclude: vec!["b".into()],
            },
            batch.clone(),
        );
        assert_eq!(names(&out), ["a", "c"]);
        assert_eq!(
            plan_problems(
                &MapAll {
                    exclude: vec!["zz".into()]
                },
                &batch.schema()
            )[0]
            .path,
            "/exclude/0"
        );
    }
}
