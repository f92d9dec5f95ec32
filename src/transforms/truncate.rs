//! Truncate: cuts text fields to a number of characters (AppFlow's Truncate task).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::datatypes::{Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::Problems;
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::types::is_string;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Truncate {
    /// Text fields to cut.
    #[schemars(extend("x-field" = true))]
    pub fields: Vec<String>,
    /// The most characters to keep.
    pub length: u64,
}

impl NodeKind for Truncate {
    const TYPE: &'static str = "transform.truncate";
    const TITLE: &'static str = "Truncate";
    const ICON: &'static str = "✂";
    const DESCRIPTION: &'static str = "Cut text fields to a length";
}

impl Truncate {
    fn plan(&self, input: &Schema) -> Result<Vec<usize>, Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.fields.is_empty() {
            problems.push("/fields", "name at least one field to truncate");
        }
        let columns = problems.fields(input, &self.fields, "/fields", is_string, "a text field");
        problems.into_result(columns)
    }
}

impl NodeConfig for Truncate {
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
        format!("{} · {} characters", self.fields.join(", "), self.length)
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let columns = self.plan(cx.input_schema.as_ref().expect("input"))?;
        Ok(Runtime::Transform(Box::new(TruncateRun {
            columns,
            length: self.length,
        })))
    }
}

struct TruncateRun {
    columns: Vec<usize>,
    length: u64,
}

impl Transform for TruncateRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut columns = batch.columns().to_vec();
        for &i in &self.columns {
            columns[i] = substring_by_char_any(&columns[i], self.length)?;
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

/// Cuts any text column; the kernel works on `Utf8`, other text types go through it.
fn substring_by_char_any(
    column: &ArrayRef,
    length: u64,
) -> Result<ArrayRef, arrow::error::ArrowError> {
    let utf8 = cast(column, &DataType::Utf8)?;
    let cut: ArrayRef = Arc::new(first_chars(utf8.as_string::<i32>(), length));
    if column.data_type() == &DataType::Utf8 {
        Ok(cut)
    } else {
        cast(&cut, column.data_type())
    }
}

/// The first `length` characters of each value. Arrow's `substring_by_char` decodes every
/// character of every value; a value no longer in bytes than `length` is kept as it is, and
/// a longer one is cut after counting the bytes that start a character: 5% fewer
/// instructions for the whole reference benchmark (README, "Throughput round two").
fn first_chars(text: &StringArray, length: u64) -> StringArray {
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    let offsets = text.value_offsets();
    if offsets.windows(2).all(|w| (w[1] - w[0]) as usize <= length) {
        return text.clone();
    }
    let mut cut = StringBuilder::with_capacity(text.len(), text.value_data().len());
    for value in text.iter() {
        match value {
            None => cut.append_null(),
            Some(value) if value.len() <= length => cut.append_value(value),
            Some(value) => {
                let end = (value.bytes().enumerate())
                    .filter(|(_, b)| b & 0xC0 != 0x80)
                    .nth(length)
                    .map_or(value.len(), |(at, _)| at);
                cut.append_value(&value[..end]);
            }
        }
    }
    cut.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn cuts_where_arrows_kernel_cuts() {
        use arrow::compute::kernels::substring::substring_by_char;
        let words = [
            "",
            "a",
            "naïve",
            "Zürich €25k",
            "日本語のテキスト",
            "🙂🙂🙂 emoji",
            "plain ascii text",
        ];
        let values: Vec<Option<String>> = (0..200)
            .map(|i| (i % 7 != 3).then(|| words[i % words.len()].repeat(i % 5)))
            .collect();
        let text = StringArray::from(values);
        for length in [0, 1, 2, 3, 5, 8, 13, 40, 1000] {
            let expected = substring_by_char(&text, 0, Some(length)).unwrap();
            assert_eq!(first_chars(&text, length), expected, "{length}");
        }
    }

    #[test]
    fn cuts_by_characters_and_keeps_nulls() {
        let batch = batch_of(&[(
            "d",
            opt_strs(&[
                Some("héllo wörld"),
                Some("abc"),
                Some(""),
                None,
                Some("日本語のテキスト"),
            ]),
        )]);
        let (out, _) = run_one(
            &Truncate {
                fields: vec!["d".into()],
                length: 5,
            },
            batch,
        );
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            texts(&out, "d"),
            vec![s("héllo"), s("abc"), s(""), None, s("日本語のテ")]
        );
    }

    #[test]
    fn zero_length_empties_the_text() {
        let batch = batch_of(&[("d", strs(&["abc"]))]);
        let (out, _) = run_one(
            &Truncate {
                fields: vec!["d".into()],
                length: 0,
            },
            batch,
        );
        assert_eq!(texts(&out, "d"), vec![Some(String::new())]);
    }

    #[test]
    fn only_text_fields() {
        let schema = batch_of(&[("n", ints(&[Some(1)]))]).schema();
        let p = plan_problems(
            &Truncate {
                fields: vec!["n".into()],
                length: 3,
            },
            &schema,
        );
        assert!(
            p[0].message.contains("needs a text field"),
            "{}",
            p[0].message
        );
    }
}
