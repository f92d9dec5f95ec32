//! The flow file's JSON Schema: the skeleton from [`Flow`] plus, for each node type in the
//! registry, what its `config` holds. Editors use it to complete and check flow files;
//! `tributary schema` prints it and `assets/flow.schema.json` keeps a copy.

use serde_json::{Value, json};

use crate::flow::Flow;
use crate::registry;

pub fn flow_schema() -> Value {
    let mut generator = schemars::SchemaGenerator::default();
    let configs: Vec<(&str, &str, Value)> = registry::all()
        .iter()
        .map(|t| {
            (
                t.name,
                t.description,
                t.config_schema(&mut generator).to_value(),
            )
        })
        .collect();
    let mut schema = generator.into_root_schema_for::<Flow>().to_value();
    let node = schema
        .pointer_mut("/$defs/Node")
        .expect("the flow schema defines Node");
    node["properties"]["type"]["enum"] =
        Value::from(configs.iter().map(|(name, ..)| *name).collect::<Vec<_>>());
    node["allOf"] = configs
        .into_iter()
        .map(|(name, description, config)| {
            json!({
                "if": { "properties": { "type": { "const": name } }, "required": ["type"] },
                "then": { "properties": { "config": config }, "description": description }
            })
        })
        .collect();
    schema
}

/// The schema as written to `assets/flow.schema.json`.
pub fn flow_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&flow_schema()).expect("a schema serializes");
    text.push('\n');
    text
}
