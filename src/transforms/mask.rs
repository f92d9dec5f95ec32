//! Mask: hides characters of a field behind a mask character (AppFlow's MASK_ALL,
//! MASK_FIRST_N, MASK_LAST_N, plus "all but the first/last N" for card numbers). Counts
//! characters, not bytes, so non-ASCII text masks as people read it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::fields::Problems;
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::types::is_scalar;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    /// The fields to mask; each becomes text.
    #[schemars(extend("x-field" = true))]
    pub fields: Vec<String>,
    pub mode: MaskMode,
    /// The N of the `first_n`, `last_n`, `all_but_first_n` and `all_but_last_n` modes.
    #[serde(default)]
    pub n: usize,
    /// The character shown instead of a hidden one.
    #[serde(default = "default_mask_char")]
    pub mask_char: char,
}

fn default_mask_char() -> char {
    '*'
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    /// Every character.
    All,
    /// The first N characters.
    FirstN,
    /// The last N characters.
    LastN,
    /// All but the first N characters.
    AllButFirstN,
    /// All but the last N characters: `************1234`.
    AllButLastN,
}

impl NodeKind for Mask {
    const TYPE: &'static str = "transform.mask";
    const TITLE: &'static str = "Mask";
    const ICON: &'static str = "🔒";
    const DESCRIPTION: &'static str = "Hide characters of sensitive fields";
}

impl Mask {
    fn plan(&self, input: &Schema) -> Result<(Vec<usize>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.fields.is_empty() {
            problems.push("/fields", "name at least one field to mask");
        }
        let columns: Vec<usize> = problems.fields(
            input,
            &self.fields,
            "/fields",
            is_scalar,
            "a text, number or date field",
        );
        if self.mode != MaskMode::All && self.n == 0 {
            problems.push("/n", "set n, the number of characters this mode counts");
        }
        problems.into_result(())?;
        Ok((columns.clone(), text_fields(input, &columns)))
    }

    /// Masks one value into `out`.
    fn mask_into(&self, value: &str, out: &mut String) {
        let len = value.chars().count();
        let (from, to) = match self.mode {
            MaskMode::All => (0, len),
            MaskMode::FirstN => (0, self.n.min(len)),
            MaskMode::LastN => (len.saturating_sub(self.n), len),
            MaskMode::AllButFirstN => (self.n.min(len), len),
            MaskMode::AllButLastN => (0, len.saturating_sub(self.n)),
        };
        out.clear();
        for (i, c) in value.chars().enumerate() {
            out.push(if i >= from && i < to {
                self.mask_char
            } else {
                c
            });
        }
    }
}

/// The input schema with the given columns turned into nullable text.
pub(crate) fn text_fields(input: &Schema, columns: &[usize]) -> SchemaRef {
    let fields: Vec<Field> = input
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if columns.contains(&i) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

impl NodeConfig for Mask {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
            .map(|(_, s)| s)
    }

    fn summary(&self) -> String {
        let what = match self.mode {
            MaskMode::All => "all hidden".to_string(),
            MaskMode::FirstN => format!("first {} hidden", self.n),
            MaskMode::LastN => format!("last {} hidden", self.n),
            MaskMode::AllButFirstN => format!("first {} visible", self.n),
            MaskMode::AllButLastN => format!("last {} visible", self.n),
        };
        format!("{} · {what}", self.fields.join(", "))
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (columns, schema) = self.plan(cx.input_schema.as_ref().expect("input"))?;
        Ok(Runtime::Transform(Box::new(MaskRun {
            config: self.clone(),
            columns,
            schema,
        })))
    }
}

struct MaskRun {
    config: Mask,
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl Transform for MaskRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut columns = batch.columns().to_vec();
        let mut buf = String::new();
        for &i in &self.columns {
            let text = as_text(&columns[i])?;
            let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
            for v in text.iter() {
                match v {
                    Some(v) => {
                        self.config.mask_into(v, &mut buf);
                        out.append_value(&buf);
                    }
                    None => out.append_null(),
                }
            }
            columns[i] = Arc::new(out.finish());
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// A column as text: strings as they are, other types written out.
pub(crate) fn as_text(column: &ArrayRef) -> Result<StringArray, arrow::error::ArrowError> {
    let c = if column.data_type() == &DataType::Utf8 {
        column.clone()
    } else {
        cast(column, &DataType::Utf8)?
    };
    Ok(c.as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8")
        .clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn mask(mode: MaskMode, n: usize) -> Mask {
        Mask {
            fields: vec!["v".into()],
            mode,
            n,
            mask_char: '#',
        }
    }

    fn masked(m: &Mask) -> Vec<Option<String>> {
        let batch = batch_of(&[
            (
                "v",
                opt_strs(&[
                    Some("4111111111111111"),
                    Some("Zoë"),
                    Some(""),
                    None,
                    Some("ab"),
                ]),
            ),
            ("n", ints(&[Some(1), Some(2), Some(3), Some(4), Some(5)])),
        ]);
        let (out, _) = run_one(m, batch);
        texts(&out, "v")
    }

    fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|x| x.map(str::to_string)).collect()
    }

    #[test]
    fn every_mode_by_characters() {
        assert_eq!(
            masked(&mask(MaskMode::All, 0)),
            s(&[
                Some("################"),
                Some("###"),
                Some(""),
                None,
                Some("##")
            ])
        );
        assert_eq!(
            masked(&mask(MaskMode::FirstN, 2)),
            s(&[
                Some("##11111111111111"),
                Some("##ë"),
                Some(""),
                None,
                Some("##")
            ])
        );
        assert_eq!(
            masked(&mask(MaskMode::LastN, 1)),
            s(&[
                Some("411111111111111#"),
                Some("Zo#"),
                Some(""),
                None,
                Some("a#")
            ])
        );
        assert_eq!(
            masked(&mask(MaskMode::AllButLastN, 4)),
            s(&[
                Some("############1111"),
                Some("Zoë"),
                Some(""),
                None,
                Some("ab")
            ])
        );
        assert_eq!(
            masked(&mask(MaskMode::AllButFirstN, 1)),
            s(&[
                Some("4###############"),
                Some("Z##"),
                Some(""),
                None,
                Some("a#")
            ])
        );
    }

    #[test]
    fn numbers_become_masked_text() {
        let batch = batch_of(&[("v", ints(&[Some(123456), None]))]);
        let (out, _) = run_one(&mask(MaskMode::AllButLastN, 2), batch);
        assert_eq!(texts(&out, "v"), s(&[Some("####56"), None]));
    }

    #[test]
    fn n_is_required_for_counting_modes() {
        let schema = batch_of(&[("v", strs(&["x"]))]).schema();
        assert_eq!(
            plan_problems(&mask(MaskMode::FirstN, 0), &schema)[0].path,
            "/n"
        );
        assert!(plan_problems(&mask(MaskMode::All, 0), &schema).is_empty());
    }
}
