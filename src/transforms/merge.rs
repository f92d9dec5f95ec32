//! Merge: builds a new text field from others with a format, such as
//! `"{FirstName} {LastName}"` (AppFlow's Merge task).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mask::as_text;
use crate::fields::{Problems, find_typed};
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::types::is_scalar;

/// A missing (null) value merges as empty text; when every named field is null the result
/// is null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    /// The new field; an existing field of that name is replaced.
    pub output: String,
    /// Text with `{Field}` where a field's value goes; `{{` and `}}` write braces.
    pub format: String,
}

impl NodeKind for Merge {
    const TYPE: &'static str = "transform.merge";
    const TITLE: &'static str = "Merge";
    const ICON: &'static str = "➕";
    const DESCRIPTION: &'static str = "Join fields into a new text field";
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(String),
}

fn parse_format(format: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                if name.trim().is_empty() {
                    return Err(
                        "`{}` needs a field name inside, like `{LastName}`; write `{{` for a brace"
                            .into(),
                    );
                }
                if !pieces.is_empty() || !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Field(name.trim().to_string()));
            }
            '}' => return Err("a `}` without its `{`; write `}}` for a brace".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Field(_))) {
        return Err("the format names no field; write fields as `{FirstName}`".into());
    }
    Ok(pieces)
}

/// The format with each field replaced by its column index.
enum Part {
    Text(String),
    Column(usize),
}

impl Merge {
    fn plan(&self, input: &Schema) -> Result<(Vec<Part>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        let pieces =
            parse_format(&self.format).map_err(|m| vec![ConfigProblem::new("/format", m)])?;
        let parts: Vec<Part> = pieces
            .into_iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(Part::Text(t)),
                Piece::Field(f) => problems
                    .check(find_typed(
                        input,
                        &f,
                        "/format",
                        is_scalar,
                        "a text, number or date field",
                    ))
                    .map(Part::Column),
            })
            .collect();
        if self.output.trim().is_empty() {
            problems.push("/output", "name the new field");
        }
        problems.into_result(())?;
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let new = Field::new(&self.output, DataType::Utf8, true);
        match input.index_of(&self.output) {
            Ok(i) => fields[i] = new,
            Err(_) => fields.push(new),
        }
        Ok((parts, Arc::new(Schema::new(fields))))
    }
}

impl NodeConfig for Merge {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
            .map(|(_, s)| s)
    }

    fn summary(&self) -> String {
        format!("{} = {}", self.output, self.format)
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (parts, schema) = self.plan(cx.input_schema.as_ref().expect("input"))?;
        let replace = cx
            .input_schema
            .as_ref()
            .and_then(|s| s.index_of(&self.output).ok());
        Ok(Runtime::Transform(Box::new(MergeRun {
            parts,
            schema,
            replace,
        })))
    }
}

struct MergeRun {
    parts: Vec<Part>,
    schema: SchemaRef,
    replace: Option<usize>,
}

impl Transform for MergeRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let texts: Vec<Option<StringArray>> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Column(i) => as_text(batch.column(*i)).map(Some),
                Part::Text(_) => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let mut out = StringBuilder::with_capacity(batch.num_rows(), batch.num_rows() * 16);
        let mut value = String::new();
        for row in 0..batch.num_rows() {
            value.clear();
            let mut any = false;
            for (part, text) in self.parts.iter().zip(&texts) {
                match (part, text) {
                    (Part::Text(t), _) => value.push_str(t),
                    (Part::Column(_), Some(a)) if a.is_valid(row) => {
                        any = true;
                        value.push_str(a.value(row));
                    }
                    _ => {}
                }
            }
            if any {
                out.append_value(&value)
            } else {
                out.append_null()
            }
        }
        let merged = Arc::new(out.finish());
        let mut columns = batch.columns().to_vec();
        match self.replace {
            Some(i) => columns[i] = merged,
            None => columns.push(merged),
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn merge(format: &str) -> Merge {
        Merge {
            output: "Contact".into(),
            format: format.into(),
        }
    }

    #[test]
    fn joins_fields_with_nulls_as_empty() {
        let batch = batch_of(&[
            ("First", opt_strs(&[Some("Zoë"), None, Some(""), None])),
            (
                "Last",
                opt_strs(&[Some("Åström"), Some("Ng"), Some(""), None]),
            ),
            ("Age", ints(&[Some(40), Some(3), None, None])),
        ]);
        let (out, _) = run_one(&merge("{First} {Last} ({Age}) {{x}}"), batch);
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            texts(&out, "Contact"),
            vec![
                s("Zoë Åström (40) {x}"),
                s(" Ng (3) {x}"),
                s("  () {x}"),
                None
            ]
        );
        assert_eq!(names(&out), ["First", "Last", "Age", "Contact"]);
    }

    #[test]
    fn an_existing_field_is_replaced_in_place() {
        let batch = batch_of(&[("Contact", strs(&["old"])), ("B", strs(&["b"]))]);
        let (out, _) = run_one(&merge("{B}{B}"), batch);
        assert_eq!(names(&out), ["Contact", "B"]);
        assert_eq!(texts(&out, "Contact"), vec![Some("bb".to_string())]);
    }

    #[test]
    fn format_problems() {
        let schema = batch_of(&[("A", strs(&["a"]))]).schema();
        for (format, wanted) in [
            ("{A} {Nope}", "no field `Nope`"),
            ("plain", "names no field"),
            ("{}", "needs a field name"),
            ("x}", "without its"),
        ] {
            let p = plan_problems(&merge(format), &schema);
            assert!(
                p.iter()
                    .any(|p| p.path == "/format" && p.message.contains(wanted)),
                "{format}: {p:?}"
            );
        }
    }
}
