//! A flow as an AppFlow flow definition: the `CreateFlow` request, or a CloudFormation
//! template with one `AWS::AppFlow::Flow` resource — for flows AppFlow can express: one
//! source, one destination, a chain of transforms that are AppFlow's tasks between them.
//!
//! The tasks come out in the order AppFlow applies them and the import reads them:
//! projection, filters, validations, masks, truncations, merges, arithmetic, maps, the
//! partition. So a flow exported and imported again is the same flow up to its layout.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::Gap;
use crate::flow::{Event, Flow, Node, PullMode, Trigger};

/// The flow's definition for AppFlow, and what of the flow it does not carry.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The `CreateFlow` request.
    pub request: Value,
    pub gaps: Vec<Gap>,
}

/// Node types and the task or service they become.
const SERVICES: &[(&str, &str, &str)] = &[
    ("salesforce", "Salesforce", "Salesforce"),
    ("servicenow", "Servicenow", "ServiceNow"),
    ("zendesk", "Zendesk", "Zendesk"),
    ("slack", "Slack", "Slack"),
    ("sap", "SAPOData", "SAPOData"),
];

/// Exports a flow, its `${name}` placeholders filled from its params and `overrides`.
/// A flow AppFlow cannot express at all (no single source and destination in a chain, a
/// transform AppFlow has no task for) is refused with the node and why.
pub fn export(flow: &Flow, overrides: &IndexMap<String, String>) -> Result<Exported, Gap> {
    let params = crate::flow::params::merge(&flow.params, overrides);
    let mut nodes = chain(flow)?;
    for node in &mut nodes {
        let unfilled = crate::flow::params::fill(&mut node.config, &params);
        if let Some(u) = unfilled.first() {
            return Err(gap(
                node,
                &u.path,
                format!(
                    "`${{{}}}` has no value; give it with --param {}=VALUE",
                    u.name, u.name
                ),
            ));
        }
    }
    let mut export = Export {
        gaps: Vec::new(),
        tasks: Tasks::default(),
        connector: String::new(),
    };
    let (source, steps) = nodes.split_first().expect("a chain has a source");
    let (destination, steps) = steps.split_last().expect("a chain has a destination");
    let source_config = export.source(source)?;
    for step in steps {
        export.step(step)?;
    }
    let destination_config = export.destination(destination, flow)?;
    let trigger = export.trigger(flow, source)?;
    let mut request = json!({
        "flowName": flow_name(&flow.name),
    });
    if let Some(description) = &flow.description {
        request["description"] = json!(description);
    }
    request["triggerConfig"] = trigger;
    request["sourceFlowConfig"] = source_config;
    request["destinationFlowConfigList"] = json!([destination_config]);
    request["tasks"] = Value::Array(export.tasks.all(&export.connector));
    Ok(Exported {
        request,
        gaps: export.gaps,
    })
}

/// The request as a CloudFormation template: PascalCase properties, `TaskProperties` as
/// `{Key, Value}` pairs, the schedule as `TriggerProperties` itself.
pub fn cloudformation(request: &Value, logical_id: &str) -> Value {
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            logical_id: {
                "Type": "AWS::AppFlow::Flow",
                "Properties": pascal(request, false),
            }
        }
    })
}

/// Below these, keys name connectors and keep their spelling.
const CONNECTOR_MAPS: &[&str] = &[
    "sourceConnectorProperties",
    "destinationConnectorProperties",
    "connectorOperator",
];

fn pascal(value: &Value, keep: bool) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| pascal(v, false)).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                let name = match keep {
                    true => key.clone(),
                    false => upper_first(key),
                };
                let v = match key.as_str() {
                    "taskProperties" => Value::Array(
                        v.as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| json!({"Key": k, "Value": v}))
                            .collect(),
                    ),
                    "triggerProperties" => pascal(&v["Scheduled"], false),
                    "timezone" => {
                        out.insert("TimeZone".into(), v.clone());
                        continue;
                    }
                    _ => pascal(v, CONNECTOR_MAPS.contains(&key.as_str())),
                };
                out.insert(name, v);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn gap(node: &Node, at: &str, reason: impl Into<String>) -> Gap {
    Gap {
        path: format!(
            "node `{}`{}",
            node.id,
            if at.is_empty() {
                String::new()
            } else {
                format!(" {at}")
            }
        ),
        reason: reason.into(),
    }
}

/// AppFlow's flow names: letters, digits, `-` and `_`.
fn flow_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .collect();
    out.truncate(256);
    out
}

/// The flow's nodes from source to destination: one chain, nothing beside it.
fn chain(flow: &Flow) -> Result<Vec<Node>, Gap> {
    let incoming = |id: &str| flow.edges.iter().filter(|e| e.to == id).count();
    let sources: Vec<&Node> = flow
        .nodes
        .iter()
        .filter(|n| n.kind.starts_with("source."))
        .collect();
    let [source] = sources.as_slice() else {
        return Err(Gap {
            path: "nodes".into(),
            reason: format!(
                "an AppFlow flow reads one source; this flow has {}",
                sources.len()
            ),
        });
    };
    let mut chain = vec![(*source).clone()];
    loop {
        let last = chain.last().expect("not empty");
        let next: Vec<&str> = flow
            .edges
            .iter()
            .filter(|e| e.from == last.id)
            .map(|e| e.to.as_str())
            .collect();
        match next.as_slice() {
            [] => break,
            [one] => {
                let node = flow
                    .nodes
                    .iter()
                    .find(|n| n.id == *one)
                    .expect("a valid flow");
                if incoming(&node.id) > 1 {
                    return Err(gap(node, "", "AppFlow flows do not join several inputs"));
                }
                chain.push(node.clone());
            }
            _ => {
                return Err(gap(
                    last,
                    "",
                    format!(
                        "sends its records to {} nodes; an AppFlow flow is one chain to one destination",
                        next.len()
                    ),
                ));
            }
        }
    }
    let last = chain.last().expect("not empty");
    if !last.kind.starts_with("destination.") {
        return Err(gap(last, "", "the chain ends without a destination"));
    }
    if let Some(other) = flow
        .nodes
        .iter()
        .find(|n| !chain.iter().any(|c| c.id == n.id))
    {
        return Err(gap(
            other,
            "",
            "is not on the chain from the source to the destination",
        ));
    }
    Ok(chain)
}

/// The tasks as they are gathered, by kind, in AppFlow's order.
#[derive(Default)]
struct Tasks {
    projection: Vec<String>,
    filters: Vec<Value>,
    validations: Vec<Value>,
    masks: Vec<Value>,
    truncations: Vec<Value>,
    merges: Vec<Value>,
    arithmetic: Vec<Value>,
    maps: Vec<Value>,
    partition: Vec<Value>,
    /// Fields a merge or arithmetic writes, by the name the flow gives them.
    computed: Vec<String>,
    /// Whether a map has been met: what comes after it sees the destination's names.
    mapped: bool,
}

impl Tasks {
    fn all(&self, connector: &str) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.projection.is_empty() {
            out.push(task(
                connector,
                "Filter",
                &self.projection,
                "PROJECTION",
                None,
                json!({}),
            ));
        }
        for group in [
            &self.filters,
            &self.validations,
            &self.masks,
            &self.truncations,
            &self.merges,
            &self.arithmetic,
            &self.maps,
            &self.partition,
        ] {
            out.extend(group.iter().cloned());
        }
        out
    }
}

fn task(
    connector: &str,
    kind: &str,
    sources: &[String],
    operator: &str,
    destination: Option<&str>,
    properties: Value,
) -> Value {
    let mut t = json!({
        "sourceFields": sources,
        "connectorOperator": {connector: operator},
        "taskType": kind,
    });
    if let Some(d) = destination {
        t["destinationField"] = json!(d);
    }
    if properties.as_object().is_some_and(|p| !p.is_empty()) {
        t["taskProperties"] = properties;
    }
    t
}

struct Export {
    gaps: Vec<Gap>,
    tasks: Tasks,
    /// The source's key in `connectorOperator`.
    connector: String,
}

impl Export {
    fn lose(&mut self, node: &Node, key: &str, reason: &str) {
        if self.gap_if_set(node, key) {
            self.gaps.push(gap(node, &format!("/{key}"), reason));
        }
    }

    fn gap_if_set(&self, node: &Node, key: &str) -> bool {
        match node.config.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        }
    }

    fn source(&mut self, node: &Node) -> Result<Value, Gap> {
        let c = &node.config;
        let text = |k: &str| text_of(c, k);
        if node.kind == "source.s3" {
            self.connector = "S3".into();
            let mut s3 = json!({"bucketName": text("bucket")});
            if !text("prefix").is_empty() {
                s3["bucketPrefix"] = json!(text("prefix"));
            }
            match c.get("format").and_then(Value::as_str) {
                Some("csv") => s3["s3InputFormatConfig"] = json!({"s3InputFileType": "CSV"}),
                Some("jsonl") | Some("json") => {
                    s3["s3InputFormatConfig"] = json!({"s3InputFileType": "JSON"})
                }
                Some(other) => {
                    return Err(gap(
                        node,
                        "/format",
                        format!("AppFlow reads CSV and JSON objects from S3, not {other}"),
                    ));
                }
                None => {}
            }
            for (key, reason) in [
                (
                    "modified_after",
                    "AppFlow reads every object under the prefix",
                ),
                ("schema", "AppFlow infers the fields from the objects"),
                ("fail_on_first_error", "AppFlow has no such setting"),
                ("connection", "AppFlow reaches S3 with the flow's IAM role"),
                ("region", "AppFlow reads buckets of its own region"),
                ("endpoint_url", "AppFlow reads Amazon S3 itself"),
            ] {
                self.lose(node, key, reason);
            }
            return Ok(json!({
                "connectorType": "S3",
                "sourceConnectorProperties": {"S3": s3},
            }));
        }
        let service = node.kind.strip_prefix("source.").unwrap_or_default();
        let (_, connector_type, key) =
            SERVICES
                .iter()
                .find(|(s, _, _)| *s == service)
                .ok_or_else(|| {
                    gap(
                        node,
                        "",
                        format!("AppFlow has no connector for {}", node.kind),
                    )
                })?;
        self.connector = key.to_string();
        let entity = text("entity");
        let mut props = match service {
            "sap" => json!({"objectPath": entity}),
            _ => json!({"object": entity}),
        };
        if let Some(Value::Array(fields)) = c.get("fields") {
            self.tasks.projection = fields
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
        }
        if let Some(Value::Array(conditions)) = c.get("conditions") {
            for condition in conditions {
                let t = self.condition(node, condition)?;
                self.tasks.filters.push(t);
            }
        }
        if let Some(Value::Object(options)) = c.get("options") {
            for (k, v) in options {
                match (service, k.as_str()) {
                    ("salesforce", "include_deleted") => {
                        props["includeDeletedRecords"] = v.clone();
                    }
                    ("salesforce", "api") => props["dataTransferApi"] = json!(transfer_api(v)),
                    _ => self.gaps.push(gap(
                        node,
                        &format!("/options/{k}"),
                        "AppFlow has no such setting",
                    )),
                }
            }
        }
        let mut config = json!({
            "connectorType": connector_type,
            "connectorProfileName": text("connection"),
            "sourceConnectorProperties": {*key: props},
        });
        if let Some(cursor) = c.get("cursor_field").and_then(Value::as_str) {
            config["incrementalPullConfig"] = json!({"datetimeTypeFieldName": cursor});
        }
        Ok(config)
    }

    fn condition(&mut self, node: &Node, condition: &Value) -> Result<Value, Gap> {
        let field = condition["field"].as_str().unwrap_or_default().to_string();
        let value = &condition["value"];
        let operator = condition["operator"].as_str().unwrap_or_default();
        let data_type = match value {
            Value::Array(items) => items.first().map_or("string", data_type_of),
            v => data_type_of(v),
        };
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut properties = json!({"DATA_TYPE": data_type});
        let appflow = match (operator, value) {
            ("between", Value::Array(pair)) if pair.len() == 2 => {
                properties["LOWER_BOUND"] = json!(text(&pair[0]));
                properties["UPPER_BOUND"] = json!(text(&pair[1]));
                "BETWEEN"
            }
            ("equal_to", Value::Array(items)) => {
                let all: Vec<String> = items.iter().map(text).collect();
                properties["VALUES"] = json!(serde_json::to_string(&all).expect("texts"));
                "EQUAL_TO"
            }
            (op, Value::Array(_)) => {
                return Err(gap(
                    node,
                    "/conditions",
                    format!("AppFlow compares `{op}` with one value"),
                ));
            }
            (op, v) => {
                properties["VALUE"] = json!(text(v));
                match op {
                    "less_than" => "LESS_THAN",
                    "greater_than" => "GREATER_THAN",
                    "less_than_or_equal_to" => "LESS_THAN_OR_EQUAL_TO",
                    "greater_than_or_equal_to" => "GREATER_THAN_OR_EQUAL_TO",
                    "equal_to" => "EQUAL_TO",
                    "not_equal_to" => "NOT_EQUAL_TO",
                    "contains" => "CONTAINS",
                    other => {
                        return Err(gap(
                            node,
                            "/conditions",
                            format!("AppFlow has no `{other}` filter"),
                        ));
                    }
                }
            }
        };
        Ok(task(
            &self.connector,
            "Filter",
            &[field],
            appflow,
            None,
            properties,
        ))
    }

    /// A transform between the source and the destination.
    fn step(&mut self, node: &Node) -> Result<(), Gap> {
        let c = &node.config;
        let connector = self.connector.clone();
        let strings = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        };
        let after_map = |what: &str| {
            gap(
                node,
                "",
                format!(
                    "AppFlow {what} the source's fields, before the map; put this node before the map"
                ),
            )
        };
        match node.kind.as_str() {
            "transform.filter" => {
                if self.tasks.mapped {
                    return Err(after_map("filters"));
                }
                if let Some(Value::Array(conditions)) = c.get("conditions") {
                    for condition in conditions {
                        let t = self.condition(node, condition)?;
                        self.tasks.filters.push(t);
                    }
                }
                let fields = strings("fields");
                if !fields.is_empty() {
                    self.tasks.projection = fields;
                }
            }
            "transform.validate" => {
                if self.tasks.mapped {
                    return Err(after_map("validates"));
                }
                for rule in c["rules"].as_array().into_iter().flatten() {
                    let operator = match rule["check"].as_str().unwrap_or_default() {
                        "non_null" => "VALIDATE_NON_NULL",
                        "non_zero" => "VALIDATE_NON_ZERO",
                        "non_negative" => "VALIDATE_NON_NEGATIVE",
                        _ => "VALIDATE_NUMERIC",
                    };
                    let action = match rule["action"].as_str() {
                        Some("terminate_flow") => "DropDataset",
                        _ => "DropRecord",
                    };
                    let field = rule["field"].as_str().unwrap_or_default().to_string();
                    self.tasks.validations.push(task(
                        &connector,
                        "Validate",
                        &[field],
                        operator,
                        None,
                        json!({"VALIDATION_ACTION": action}),
                    ));
                }
            }
            "transform.mask" => {
                if self.tasks.mapped {
                    return Err(after_map("masks"));
                }
                let operator = match c["mode"].as_str().unwrap_or_default() {
                    "all" => "MASK_ALL",
                    "first_n" => "MASK_FIRST_N",
                    "last_n" => "MASK_LAST_N",
                    other => {
                        return Err(gap(
                            node,
                            "/mode",
                            format!(
                                "AppFlow masks all, the first N or the last N characters, not `{other}`"
                            ),
                        ));
                    }
                };
                let mut properties = json!({});
                if let Some(n) = c.get("n").and_then(Value::as_u64).filter(|n| *n > 0) {
                    properties["MASK_LENGTH"] = json!(n.to_string());
                }
                if let Some(ch) = c.get("mask_char").and_then(Value::as_str) {
                    properties["MASK_VALUE"] = json!(ch);
                }
                for field in strings("fields") {
                    self.tasks.masks.push(task(
                        &connector,
                        "Mask",
                        std::slice::from_ref(&field),
                        operator,
                        Some(&field),
                        properties.clone(),
                    ));
                }
            }
            "transform.truncate" => {
                if self.tasks.mapped {
                    return Err(after_map("truncates"));
                }
                let length = c["length"].as_u64().unwrap_or_default().to_string();
                for field in strings("fields") {
                    self.tasks.truncations.push(task(
                        &connector,
                        "Truncate",
                        std::slice::from_ref(&field),
                        "NO_OP",
                        Some(&field),
                        json!({"TRUNCATE_LENGTH": length}),
                    ));
                }
            }
            "transform.merge" => {
                if self.tasks.mapped {
                    return Err(after_map("merges"));
                }
                let format = c["format"].as_str().unwrap_or_default();
                let output = c["output"].as_str().unwrap_or_default().to_string();
                let sources = format_fields(format);
                self.tasks.merges.push(task(
                    &connector,
                    "Merge",
                    &sources,
                    "NO_OP",
                    Some(&output),
                    json!({"CONCAT_FORMAT": format}),
                ));
                self.tasks.computed.push(output);
            }
            "transform.arithmetic" => {
                if self.tasks.mapped {
                    return Err(after_map("computes"));
                }
                for op in c["operations"].as_array().into_iter().flatten() {
                    let output = op["output"].as_str().unwrap_or_default().to_string();
                    let (Some(left), Some(right)) = (op["left"].as_str(), op["right"].as_str())
                    else {
                        return Err(gap(
                            node,
                            "/operations",
                            "AppFlow's arithmetic takes two fields, not numbers",
                        ));
                    };
                    if op.get("decimals").is_some() {
                        self.gaps.push(gap(
                            node,
                            "/operations",
                            "AppFlow does not round its arithmetic",
                        ));
                    }
                    let operator = match op["operator"].as_str().unwrap_or_default() {
                        "add" => "ADDITION",
                        "subtract" => "SUBTRACTION",
                        "multiply" => "MULTIPLICATION",
                        _ => "DIVISION",
                    };
                    let fields = vec![left.to_string(), right.to_string()];
                    self.tasks.arithmetic.push(task(
                        &connector,
                        "Arithmetic",
                        &fields,
                        operator,
                        Some(&output),
                        json!({"MATH_OPERATION_FIELDS_ORDER": fields.join(",")}),
                    ));
                    self.tasks.computed.push(output);
                }
            }
            "transform.map" => {
                if self.tasks.mapped {
                    return Err(gap(node, "", "AppFlow maps once; join the maps into one"));
                }
                for m in c["fields"].as_array().into_iter().flatten() {
                    let source = m["source"].as_str().unwrap_or_default().to_string();
                    let target = m["target"].as_str().unwrap_or(&source).to_string();
                    let mut properties = json!({});
                    if let Some(kind) = m["type"].as_str() {
                        properties["DESTINATION_DATA_TYPE"] = json!(appflow_type(kind));
                        if kind.starts_with("decimal(") {
                            self.gaps.push(gap(
                                node,
                                "/fields",
                                format!("AppFlow's decimal has no precision and scale: `{target}` loses its {kind}"),
                            ));
                        }
                    }
                    self.tasks.maps.push(task(
                        &connector,
                        "Map",
                        &[source],
                        "NO_OP",
                        Some(&target),
                        properties,
                    ));
                }
                self.rename_computed();
                self.tasks.mapped = true;
            }
            "transform.map_all" => {
                if self.tasks.mapped {
                    return Err(gap(node, "", "AppFlow maps once; join the maps into one"));
                }
                let exclude = strings("exclude");
                self.tasks.maps.push(task(
                    &connector,
                    "Map_all",
                    &[],
                    "NO_OP",
                    None,
                    json!({"EXCLUDE_SOURCE_FIELDS_LIST": serde_json::to_string(&exclude).expect("texts")}),
                ));
                self.tasks.mapped = true;
            }
            other => {
                return Err(gap(node, "", format!("AppFlow has no task for {other}")));
            }
        }
        Ok(())
    }

    /// A computed field a map names goes to AppFlow under the name the map gives it: AppFlow
    /// knows a merge's or arithmetic's field by its destination field.
    fn rename_computed(&mut self) {
        let renames: Vec<(String, String)> = self
            .tasks
            .maps
            .iter()
            .filter_map(|m| {
                let source = m["sourceFields"][0].as_str()?;
                let target = m["destinationField"].as_str()?;
                self.tasks
                    .computed
                    .iter()
                    .any(|c| c == source)
                    .then(|| (source.to_string(), target.to_string()))
            })
            .collect();
        for (from, to) in renames {
            for t in self
                .tasks
                .merges
                .iter_mut()
                .chain(self.tasks.arithmetic.iter_mut())
            {
                if t["destinationField"] == from.as_str() {
                    t["destinationField"] = json!(to);
                }
            }
            for m in &mut self.tasks.maps {
                if m["sourceFields"][0] == from.as_str() {
                    m["sourceFields"] = json!([to]);
                }
            }
        }
    }

    fn destination(&mut self, node: &Node, flow: &Flow) -> Result<Value, Gap> {
        let c = &node.config;
        let text = |k: &str| text_of(c, k);
        if node.kind == "destination.s3" {
            let mut output = json!({});
            output["fileType"] =
                json!(
                    match c.get("format").and_then(Value::as_str).unwrap_or("parquet") {
                        "csv" => "CSV",
                        "parquet" => "PARQUET",
                        _ => "JSON",
                    }
                );
            let mut prefix = json!({});
            if let Some(unit) = c.get("time_prefix").and_then(Value::as_str) {
                prefix["prefixType"] = json!("PATH");
                prefix["prefixFormat"] = json!(unit.to_ascii_uppercase());
            }
            let mut hierarchy = Vec::new();
            if c.get("schema_version_folder") == Some(&json!(true)) {
                hierarchy.push("SCHEMA_VERSION");
            }
            if c.get("execution_id_folder") == Some(&json!(true)) {
                hierarchy.push("EXECUTION_ID");
            }
            if !hierarchy.is_empty() {
                prefix["pathPrefixHierarchy"] = json!(hierarchy);
            }
            if prefix.as_object().is_some_and(|p| !p.is_empty()) {
                output["prefixConfig"] = prefix;
            }
            let mut aggregation = json!({
                "aggregationType": match c.get("aggregation").and_then(Value::as_str) {
                    Some("per_batch") => "None",
                    _ => "SingleFile",
                }
            });
            if let Some(size) = c.get("file_size_mb").and_then(Value::as_u64) {
                aggregation["targetFileSize"] = json!(size);
            }
            output["aggregationConfig"] = aggregation;
            output["preserveSourceDataTyping"] = json!(c.get("all_strings") != Some(&json!(true)));
            let mut s3 = json!({"bucketName": text("bucket")});
            if !text("prefix").is_empty() {
                s3["bucketPrefix"] = json!(text("prefix"));
            }
            s3["s3OutputFormatConfig"] = output;
            let keys: Vec<String> = c
                .get("partition_by")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect();
            if !keys.is_empty() {
                let t = task(
                    &self.connector,
                    "Partition",
                    &keys,
                    "NO_OP",
                    None,
                    json!({"ORDERED_PARTITION_KEYS_LIST": serde_json::to_string(&keys).expect("texts")}),
                );
                self.tasks.partition.push(t);
            }
            for (key, reason) in [
                (
                    "keep_partition_fields",
                    "AppFlow leaves the partition fields out of the records",
                ),
                (
                    "replace_partitions",
                    "AppFlow adds to a partition, it never replaces one",
                ),
                ("encryption", "AppFlow encrypts with the bucket's settings"),
                ("kms_key_id", "AppFlow encrypts with the bucket's settings"),
                ("connection", "AppFlow reaches S3 with the flow's IAM role"),
                ("region", "AppFlow writes buckets of its own region"),
                ("endpoint_url", "AppFlow writes to Amazon S3 itself"),
                (
                    "catalog",
                    "AppFlow registers in Glue with an IAM role of its own: set `metadataCatalogConfig` with the role, the database and the table prefix on the exported flow",
                ),
            ] {
                if key == "encryption" && c.get(key) == Some(&json!("bucket_default")) {
                    continue;
                }
                self.lose(node, key, reason);
            }
            return Ok(json!({
                "connectorType": "S3",
                "destinationConnectorProperties": {"S3": s3},
            }));
        }
        let service = node.kind.strip_prefix("destination.").unwrap_or_default();
        let (_, connector_type, key) = SERVICES
            .iter()
            .find(|(s, _, _)| *s == service && *s != "servicenow" && *s != "slack")
            .ok_or_else(|| gap(node, "", format!("AppFlow does not write to {}", node.kind)))?;
        let entity = text("entity");
        let mut props = match service {
            "sap" => json!({"objectPath": entity}),
            _ => json!({"object": entity}),
        };
        if let Some(op) = c.get("operation").and_then(Value::as_str) {
            props["writeOperationType"] = json!(op.to_ascii_uppercase());
        }
        if let Some(Value::Array(keys)) = c.get("keys")
            && !keys.is_empty()
        {
            props["idFieldNames"] = Value::Array(keys.clone());
        }
        if let Some(Value::Object(options)) = c.get("options") {
            for (k, v) in options {
                match (service, k.as_str()) {
                    ("salesforce", "api") => props["dataTransferApi"] = json!(transfer_api(v)),
                    _ => self.gaps.push(gap(
                        node,
                        &format!("/options/{k}"),
                        "AppFlow has no such setting",
                    )),
                }
            }
        }
        if flow.error_threshold == Some(0) {
            props["errorHandlingConfig"] = json!({"failOnFirstDestinationError": true});
        }
        Ok(json!({
            "connectorType": connector_type,
            "connectorProfileName": text("connection"),
            "destinationConnectorProperties": {*key: props},
        }))
    }

    fn trigger(&mut self, flow: &Flow, source: &Node) -> Result<Value, Gap> {
        let at_trigger = |reason: String| Gap {
            path: "trigger".into(),
            reason,
        };
        Ok(match &flow.trigger {
            Trigger::OnDemand => {
                if source.config.get("incremental") == Some(&json!(true)) {
                    self.gaps.push(gap(
                        source,
                        "/incremental",
                        "AppFlow reads everything when a flow runs on demand; schedule the flow to read only what changed",
                    ));
                }
                json!({"triggerType": "OnDemand"})
            }
            Trigger::Schedule {
                expression,
                time_zone,
                start,
                end,
                pull_mode,
                first_run_from,
            } => {
                let mut s = json!({
                    "scheduleExpression": expression,
                    "dataPullMode": match pull_mode {
                        PullMode::Incremental => "Incremental",
                        PullMode::Complete => "Complete",
                    },
                });
                if let Some(zone) = time_zone {
                    s["timezone"] = json!(zone);
                }
                for (key, value) in [
                    ("scheduleStartTime", start),
                    ("scheduleEndTime", end),
                    ("firstExecutionFrom", first_run_from),
                ] {
                    if let Some(text) = value {
                        let t = DateTime::parse_from_rfc3339(text).map_err(|_| {
                            at_trigger(format!(
                                "AppFlow takes instants with their offset; `{text}` has none"
                            ))
                        })?;
                        s[key] = json!(t.with_timezone(&Utc).timestamp());
                    }
                }
                s["flowErrorDeactivationThreshold"] = json!(flow.service.deactivate_after);
                json!({"triggerType": "Scheduled", "triggerProperties": {"Scheduled": s}})
            }
            Trigger::Event(Event::Salesforce { object, .. })
                if source.kind == "source.salesforce"
                    && source.config["entity"].as_str() == Some(object.as_str()) =>
            {
                json!({"triggerType": "Event"})
            }
            Trigger::Event(_) => {
                return Err(at_trigger(
                    "AppFlow's event flows start on a change of their Salesforce source; this flow's event is another".into(),
                ));
            }
        })
    }
}

/// The fields `{Name}` of a merge's format names, in order.
fn format_fields(format: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find('{') {
        if rest[start..].starts_with("{{") {
            rest = &rest[start + 2..];
            continue;
        }
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = rest[start + 1..start + end].to_string();
        if !out.contains(&name) {
            out.push(name);
        }
        rest = &rest[start + end + 1..];
    }
    out
}

/// A config's text setting; empty when it has none.
fn text_of(config: &Value, key: &str) -> String {
    config
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn data_type_of(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "double",
        _ => "string",
    }
}

/// This project's types by AppFlow's names.
fn appflow_type(kind: &str) -> &str {
    match kind {
        "integer" => "integer",
        "number" => "double",
        "boolean" => "boolean",
        "date" => "date",
        "timestamp" => "datetime",
        k if k.starts_with("decimal") => "decimal",
        _ => "string",
    }
}

fn transfer_api(v: &Value) -> &'static str {
    match v.as_str() {
        Some("bulk") => "BULKV2",
        Some("rest") => "REST_SYNC",
        _ => "AUTOMATIC",
    }
}
