//! Hash: replaces fields with the SHA-256 of their value, for pseudonymising personal data
//! while keeping it joinable. A salt stops look-ups of common values.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringBuilder};
use arrow::datatypes::{Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::mask::{as_text, text_fields};
use crate::fields::Problems;
use crate::node::TransformContext;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
};
use crate::types::is_scalar;

/// Each value becomes 64 lowercase hex digits: SHA-256 of the salt followed by the value's
/// text. Nulls stay null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hash {
    #[schemars(extend("x-field" = true))]
    pub fields: Vec<String>,
    /// Prepended to every value before hashing; keep it in a `${param}` to keep it out of
    /// the flow file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

impl NodeKind for Hash {
    const TYPE: &'static str = "transform.hash";
    const TITLE: &'static str = "Hash";
    const ICON: &'static str = "#";
    const DESCRIPTION: &'static str = "Replace fields with their SHA-256 hash";
}

impl Hash {
    fn plan(&self, input: &Schema) -> Result<(Vec<usize>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.fields.is_empty() {
            problems.push("/fields", "name at least one field to hash");
        }
        let columns: Vec<usize> = problems.fields(
            input,
            &self.fields,
            "/fields",
            is_scalar,
            "a text, number or date field",
        );
        problems.into_result(())?;
        let output = text_fields(input, &columns);
        Ok((columns, output))
    }
}

impl NodeConfig for Hash {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        self.plan(input.expect("a transform has an input"))
            .map(|(_, s)| s)
    }

    fn summary(&self) -> String {
        format!(
            "{} · SHA-256{}",
            self.fields.join(", "),
            if self.salt.is_some() { ", salted" } else { "" }
        )
    }

    fn per_batch(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (columns, schema) = self.plan(cx.input_schema.as_ref().expect("input"))?;
        let mut salted = Sha256::new();
        salted.update(self.salt.as_deref().unwrap_or_default().as_bytes());
        Ok(Runtime::Transform(Box::new(HashRun {
            columns,
            schema,
            salted,
        })))
    }
}

struct HashRun {
    columns: Vec<usize>,
    schema: SchemaRef,
    /// The hasher with the salt already fed, cloned for each value.
    salted: Sha256,
}

impl Transform for HashRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        _: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let mut columns = batch.columns().to_vec();
        let mut hex = String::with_capacity(64);
        for &i in &self.columns {
            let text = as_text(&columns[i])?;
            let mut out = StringBuilder::with_capacity(text.len(), text.len() * 64);
            for v in text.iter() {
                match v {
                    Some(v) => {
                        let digest = self.salted.clone().chain_update(v.as_bytes()).finalize();
                        hex.clear();
                        for byte in digest {
                            let _ = write!(hex, "{byte:02x}");
                        }
                        out.append_value(&hex);
                    }
                    None => out.append_null(),
                }
            }
            columns[i] = Arc::new(out.finish());
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn known_digests_salt_and_nulls() {
        let batch = batch_of(&[("e", opt_strs(&[Some("abc"), Some(""), None, Some("é")]))]);
        let (out, _) = run_one(
            &Hash {
                fields: vec!["e".into()],
                salt: None,
            },
            batch.clone(),
        );
        let v = texts(&out, "e");
        // FIPS 180-2 test vectors.
        assert_eq!(
            v[0].as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            v[1].as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(v[2], None);
        let (salted, _) = run_one(
            &Hash {
                fields: vec!["e".into()],
                salt: Some("a".into()),
            },
            batch_of(&[("e", strs(&["bc"]))]),
        );
        assert_eq!(
            texts(&salted, "e")[0],
            v[0],
            "salt + value is hashed as one text"
        );
    }
}
