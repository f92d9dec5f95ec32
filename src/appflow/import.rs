//! An AppFlow flow as a flow file, with AppFlow's meaning: the source's connector and
//! properties, its tasks as transform nodes, the destination, the trigger.
//!
//! AppFlow applies a flow's tasks to the records it reads: filters and validations look at
//! the source's values; masks and truncations change source fields; merges and arithmetic
//! compute new fields; and only the fields a `Map` (or `Map_all`) names reach the
//! destination. The flow file says the same left to right: source → filter → validate →
//! mask → truncate → merge → arithmetic → map → destination. A computed field is written
//! under a temporary name (`tmp_FullName`) that the map names, so that a computed field
//! never takes the place of a source field another map still reads.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use super::definition::{At, Definition, Problem, parse};
use crate::flow::Event;
use crate::flow::{Edge, FORMAT, Flow, Node, PullMode, ServiceSettings, Trigger};

/// Something of the AppFlow flow that the flow file does not carry, at its JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// What an import needs besides the file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// A template's flow to import, by logical id, when it holds several.
    pub flow: Option<String>,
    /// The connections of this installation, by name, with their connector.
    pub connections: BTreeMap<String, String>,
}

/// The flow made, what of the AppFlow flow it does not carry, and notes for the user
/// (connections to create).
#[derive(Debug, Clone)]
pub struct Imported {
    pub flow: Flow,
    pub gaps: Vec<Gap>,
    pub notes: Vec<String>,
}

/// Reads an AppFlow flow definition's text.
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, Problem> {
    let root = parse(text)?;
    let def = Definition::of(root, options.flow.as_deref())?;
    let mut import = Import {
        options,
        gaps: Vec::new(),
        notes: Vec::new(),
        params: IndexMap::new(),
        error_threshold: None,
    };
    let flow = import.flow(&def)?;
    let mut gaps = import.gaps;
    gaps.extend(def.unread().into_iter().map(|path| Gap {
        reason: "Tributary has no counterpart for this; it is not carried over".into(),
        path,
    }));
    Ok(Imported {
        flow,
        gaps,
        notes: import.notes,
    })
}

/// Writes what was not carried over into the flow's description, for a flow written
/// without it (`--allow-partial`): whoever opens the flow sees what is missing.
pub fn note_gaps(imported: &mut Imported) {
    if imported.gaps.is_empty() {
        return;
    }
    let list: Vec<String> = imported.gaps.iter().map(Gap::to_string).collect();
    let note = format!("Imported from AppFlow without: {}.", list.join("; "));
    let flow = &mut imported.flow;
    flow.description = Some(match flow.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note,
    });
}

struct Import<'o> {
    options: &'o ImportOptions,
    gaps: Vec<Gap>,
    notes: Vec<String>,
    params: IndexMap<String, String>,
    error_threshold: Option<u8>,
}

/// One of AppFlow's tasks as read.
struct Task<'d> {
    at: At<'d>,
    kind: String,
    sources: Vec<String>,
    operator: Option<(String, At<'d>)>,
    destination: Option<String>,
    properties: Vec<(String, At<'d>)>,
}

impl<'d> Task<'d> {
    fn property(&self, key: &str) -> Option<&At<'d>> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn text(&self, key: &str) -> Result<Option<String>, Problem> {
        self.property(key).map(At::as_text).transpose()
    }

    fn operator(&self) -> &str {
        self.operator.as_ref().map_or("NO_OP", |(o, _)| o.as_str())
    }

    /// The one source field the task works on.
    fn source(&self) -> Result<&str, Problem> {
        self.sources.first().map(String::as_str).ok_or_else(|| {
            self.at.problem(format!(
                "a {} task names its field in `sourceFields`",
                self.kind
            ))
        })
    }
}

/// AppFlow's connector types (`connectorType`), the key of their properties, and this
/// project's services.
const SERVICES: &[(&str, &str, &str)] = &[
    ("Salesforce", "Salesforce", "salesforce"),
    ("Servicenow", "ServiceNow", "servicenow"),
    ("Zendesk", "Zendesk", "zendesk"),
    ("Slack", "Slack", "slack"),
    ("SAPOData", "SAPOData", "sap"),
];

/// The key of a connector type's properties (`Servicenow` → `ServiceNow`).
fn properties_key(connector: &str) -> &'static str {
    SERVICES
        .iter()
        .find(|(c, _, _)| *c == connector)
        .map_or("S3", |(_, key, _)| key)
}

fn service_of(connector: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(c, _, _)| *c == connector)
        .map(|(_, _, id)| *id)
}

impl Import<'_> {
    fn gap(&mut self, at: &At<'_>, reason: impl Into<String>) {
        at.take();
        self.gaps.push(Gap {
            path: at.path.clone(),
            reason: reason.into(),
        });
    }

    fn flow(&mut self, def: &Definition) -> Result<Flow, Problem> {
        let flow = def.flow();
        let name = match flow.text("flowName")? {
            Some(name) => name,
            None => def
                .logical_id()
                .ok_or_else(|| flow.problem("`flowName` is missing"))?,
        };
        let description = flow.text("description")?;
        if let Some(kms) = flow.get("kmsArn") {
            self.gap(&kms, "Tributary keeps no data of its own to encrypt; S3 destinations take `encryption` and `kms_key_id` for what they write");
        }
        if let Some(tags) = flow.get("tags") {
            let none = match tags.value {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            match none {
                true => tags.take(),
                false => self.gap(
                    &tags,
                    "tags label the flow among AWS resources; a flow file has none",
                ),
            }
        }
        let source_at = flow
            .get("sourceFlowConfig")
            .ok_or_else(|| flow.problem("`sourceFlowConfig` is missing"))?;
        let destinations = flow.items("destinationFlowConfigList")?;
        let destination_at = match destinations.as_slice() {
            [one] => one.clone(),
            [] => return Err(flow.problem("`destinationFlowConfigList` is missing or empty")),
            [first, rest @ ..] => {
                for extra in rest {
                    self.gap(
                        extra,
                        "a flow file writes to one destination per flow here; import the flow once per destination",
                    );
                }
                first.clone()
            }
        };
        let trigger_at = flow.get("triggerConfig");
        let scheduled_incremental = trigger_at
            .as_ref()
            .map(|t| -> Result<bool, Problem> {
                let kind = t.text("triggerType")?;
                let mode = scheduled(t)
                    .map(|s| s.text("dataPullMode"))
                    .transpose()?
                    .flatten();
                Ok(kind.as_deref() == Some("Scheduled")
                    && mode.as_deref().unwrap_or("Incremental") == "Incremental")
            })
            .transpose()?
            .unwrap_or(false);

        let tasks = self.tasks(&flow)?;
        let projection: Option<Vec<String>> = tasks
            .iter()
            .find(|t| t.kind == "Filter" && t.operator() == "PROJECTION")
            .map(|t| t.sources.clone());
        self.check_sources(&tasks, projection.as_deref())?;

        let mut source = self.source(&source_at, scheduled_incremental, projection.as_deref())?;
        let mut steps = self.steps(&tasks, projection.as_deref(), &source)?;
        let mut destination = self.destination(&destination_at)?;
        let partition = tasks.iter().find(|t| t.kind == "Partition");
        if let Some((keys, at)) = partition.map(|t| self.partition_keys(t)).transpose()? {
            match destination.kind.as_str() {
                "destination.s3" => destination.config["partition_by"] = json!(keys),
                _ => self.gap(&at, "only S3 destinations write partitions here"),
            }
        }
        if let Some(catalog) = flow.get("metadataCatalogConfig") {
            self.catalog(&catalog, &mut destination)?;
        }
        let trigger = match &trigger_at {
            Some(t) => self.trigger(t, &source)?,
            None => (Trigger::OnDemand, ServiceSettings::default()),
        };
        if let Trigger::Event(Event::Salesforce { .. }) = trigger.0 {
            // A run on an event reads the records that changed, as AppFlow's event flows do.
            source.config["incremental"] = json!(true);
        }

        // Left to right.
        let mut nodes = vec![source];
        nodes.append(&mut steps);
        nodes.push(destination);
        for (i, node) in nodes.iter_mut().enumerate() {
            node.position = [40.0 + 260.0 * i as f32, 120.0];
        }
        let edges = nodes
            .windows(2)
            .map(|w| Edge {
                from: w[0].id.clone(),
                to: w[1].id.clone(),
            })
            .collect();
        let (trigger, service) = trigger;
        // A template's parameters the flow refers to are the flow's, with their defaults.
        for (name, default) in def.referred_parameters() {
            self.params.entry(name).or_insert(default);
        }
        Ok(Flow {
            format: FORMAT.to_string(),
            name,
            description,
            trigger,
            params: std::mem::take(&mut self.params),
            error_threshold: self.error_threshold,
            service,
            alerts: Vec::new(),
            nodes,
            edges,
        })
    }

    fn tasks<'d>(&mut self, flow: &At<'d>) -> Result<Vec<Task<'d>>, Problem> {
        let mut out = Vec::new();
        for at in flow.items("tasks")? {
            let kind = at.required_text("taskType")?;
            let sources = at.texts("sourceFields")?;
            let operator = match at.get("connectorOperator") {
                None => None,
                Some(op) => {
                    let entries = op.entries();
                    let (_, value) = entries.into_iter().next().ok_or_else(|| {
                        op.problem("`connectorOperator` names no connector and operator")
                    })?;
                    Some((value.as_text()?, value))
                }
            };
            let destination = at.text("destinationField")?.filter(|d| !d.is_empty());
            let properties = at.task_properties()?;
            out.push(Task {
                at,
                kind,
                sources,
                operator,
                destination,
                properties,
            });
        }
        Ok(out)
    }

    /// Every field a task reads is one the source reads, when the flow says which
    /// (`PROJECTION`).
    fn check_sources(
        &self,
        tasks: &[Task<'_>],
        projection: Option<&[String]>,
    ) -> Result<(), Problem> {
        let Some(projected) = projection else {
            return Ok(());
        };
        // Fields merges and arithmetic make, which maps then name.
        let computed: Vec<&str> = tasks
            .iter()
            .filter(|t| t.kind == "Merge" || t.kind == "Arithmetic")
            .filter_map(|t| t.destination.as_deref())
            .collect();
        for task in tasks {
            if task.kind == "Filter" && task.operator() == "PROJECTION" {
                continue;
            }
            for (i, field) in task.sources.iter().enumerate() {
                if !projected.contains(field) && !computed.contains(&field.as_str()) {
                    return Err(Problem::new(
                        format!("{}/{}/{i}", task.at.path, source_fields_key(&task.at)),
                        format!(
                            "`{field}` is not among the fields the flow reads (its PROJECTION: {})",
                            projected.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A connection for an AppFlow connector profile: the installation's connection of
    /// that name, or a parameter the user points at one.
    fn connection(&mut self, profile: Option<String>, service: &str, at: &At<'_>) -> String {
        let Some(profile) = profile else {
            let param = format!("{service}_connection");
            self.notes.push(format!(
                "{}: no connector profile is named; give the {service} connection to use with the flow parameter `{param}`",
                at.path
            ));
            self.params.insert(param.clone(), String::new());
            return format!("${{{param}}}");
        };
        match self.options.connections.get(&profile) {
            Some(connector) if connector == service => profile,
            found => {
                let param = param_name(&profile);
                self.notes.push(match found {
                    Some(other) => format!(
                        "the connection `{profile}` is a {other} connection, not a {service} one: create a {service} connection and give it with the flow parameter `{param}`"
                    ),
                    None => format!(
                        "there is no connection `{profile}` yet: create it in Connections or with `tributary connection add {profile} --connector {service}` (or give another with the flow parameter `{param}`)"
                    ),
                });
                self.params.insert(param.clone(), profile);
                format!("${{{param}}}")
            }
        }
    }

    /// A source's or destination's connector type, the service it is here (`s3` for S3),
    /// and its properties (`side`: "source" or "destination").
    fn connector<'d>(
        &mut self,
        at: &At<'d>,
        side: &str,
    ) -> Result<(String, &'static str, At<'d>), Problem> {
        let connector = at.required_text("connectorType")?;
        let service = match connector.as_str() {
            "S3" => Some("s3"),
            // AppFlow writes to neither.
            "Servicenow" | "Slack" if side == "destination" => None,
            other => service_of(other),
        };
        let service = service.ok_or_else(|| {
            at.problem(match side {
                "source" => format!(
                    "Tributary has no {connector} connector: it reads {}",
                    known_connectors()
                ),
                _ => format!(
                    "Tributary has no {connector} destination; of AppFlow's destinations it writes to S3, Salesforce, Zendesk and SAP OData"
                ),
            })
        })?;
        if let Some(version) = at.get("apiVersion") {
            self.gap(
                &version,
                "the connector's API version is the connection's or the node's own setting here",
            );
        }
        let name = format!("{side}ConnectorProperties");
        let properties = at
            .get(&name)
            .ok_or_else(|| at.problem(format!("`{name}` is missing")))?;
        let key = properties_key(&connector);
        let props = properties.get(key).ok_or_else(|| {
            properties.problem(format!(
                "has no `{key}` properties for the {side}'s connector"
            ))
        })?;
        Ok((key.to_string(), service, props))
    }

    /// The entity a service's node reads or writes: AppFlow's `object`, or for SAP the
    /// last part of `objectPath` (`/sap/opu/odata/sap/API_PRODUCT_SRV/A_Product`: the
    /// service is the connection's).
    fn entity(service: &str, props: &At<'_>) -> Result<String, Problem> {
        Ok(match service {
            "sap" => {
                let path = props.required_text("objectPath")?;
                path.rsplit('/').next().unwrap_or(&path).to_string()
            }
            _ => props.required_text("object")?,
        })
    }

    fn source(
        &mut self,
        at: &At<'_>,
        incremental: bool,
        projection: Option<&[String]>,
    ) -> Result<Node, Problem> {
        let (key, service, props) = self.connector(at, "source")?;
        let cursor = at
            .get("incrementalPullConfig")
            .map(|c| c.text("datetimeTypeFieldName"))
            .transpose()?
            .flatten();
        if service == "s3" {
            let mut config = json!({
                "bucket": props.required_text("bucketName")?,
            });
            if let Some(prefix) = props.text("bucketPrefix")? {
                config["prefix"] = json!(prefix);
            }
            if let Some(format) = props.get("s3InputFormatConfig") {
                match format.text("s3InputFileType")?.as_deref() {
                    Some("CSV") => config["format"] = json!("csv"),
                    Some("JSON") => config["format"] = json!("jsonl"),
                    None => {}
                    Some(other) => {
                        return Err(format.problem(format!(
                            "`{other}` is not an S3 input file type: CSV or JSON"
                        )));
                    }
                }
            }
            if incremental {
                config["incremental"] = json!(true);
            }
            if let Some(profile) = at.get("connectorProfileName") {
                self.gap(&profile, "S3 is reached with the AWS credentials of the environment, or an s3 connection named in the node");
            }
            return Ok(node("source", "source.s3", "S3 objects", config));
        }
        let profile = at.text("connectorProfileName")?;
        let connection = self.connection(profile, service, at);
        let entity = Self::entity(service, &props)?;
        let mut config = json!({"connection": connection, "entity": entity});
        if let Some(fields) = projection {
            config["fields"] = json!(fields);
        }
        if incremental {
            config["incremental"] = json!(true);
            if let Some(cursor) = cursor {
                config["cursor_field"] = json!(cursor);
            }
        }
        if service == "salesforce" {
            let mut options = Map::new();
            if props.flag("includeDeletedRecords")? == Some(true) {
                options.insert("include_deleted".into(), json!(true));
            }
            if let Some(api) = props.get("dataTransferApi")
                && let Some(value) = salesforce_api(&api)?
            {
                options.insert("api".into(), json!(value));
            }
            if props.flag("enableDynamicFieldUpdate")? == Some(true) && projection.is_some() {
                let at = props.get("enableDynamicFieldUpdate").expect("read above");
                self.gap(&at, "the source reads the fields the flow names; leave the node's `fields` empty to read fields added later too");
            }
            if !options.is_empty() {
                config["options"] = Value::Object(options);
            }
        }
        let label = format!("{key} {entity}");
        Ok(node("source", &format!("source.{service}"), &label, config))
    }

    /// `metadataCatalogConfig`: the S3 destination registers its objects in the same Glue
    /// database, with the same table prefix.
    fn catalog(&mut self, at: &At<'_>, destination: &mut Node) -> Result<(), Problem> {
        let Some(glue) = at.get("glueDataCatalog") else {
            at.take();
            return Ok(());
        };
        if destination.kind != "destination.s3" {
            self.gap(at, "only S3 destinations register what they write in Glue");
            return Ok(());
        }
        let mut config = json!({"database": glue.required_text("databaseName")?});
        if let Some(prefix) = glue.text("tablePrefix")? {
            config["table_prefix"] = json!(prefix);
        }
        if let Some(role) = glue.get("roleArn") {
            self.gap(&role, "Glue is reached with the S3 destination's credentials (its connection or the AWS environment), which need the Glue permissions; no role is assumed");
        }
        at.take();
        destination.config["catalog"] = json!({"glue": config});
        Ok(())
    }

    fn destination(&mut self, at: &At<'_>) -> Result<Node, Problem> {
        let (key, service, props) = self.connector(at, "destination")?;
        if service == "s3" {
            let mut config = json!({"bucket": props.required_text("bucketName")?});
            if let Some(prefix) = props.text("bucketPrefix")? {
                config["prefix"] = json!(prefix);
            }
            config["format"] = json!("json");
            if let Some(output) = props.get("s3OutputFormatConfig") {
                self.s3_output(&output, &mut config)?;
            }
            if config["format"] == "json" {
                // AppFlow writes JSON as one record a line.
                config["format"] = json!("jsonl");
            }
            if let Some(profile) = at.get("connectorProfileName") {
                self.gap(&profile, "S3 is reached with the AWS credentials of the environment, or an s3 connection named in the node");
            }
            return Ok(node("destination", "destination.s3", "S3 bucket", config));
        }
        let profile = at.text("connectorProfileName")?;
        let connection = self.connection(profile, service, at);
        let entity = Self::entity(service, &props)?;
        let mut config = json!({"connection": connection, "entity": entity});
        if let Some(op) = props.get("writeOperationType") {
            let operation = match op.as_text()?.as_str() {
                "INSERT" => "insert",
                "UPSERT" => "upsert",
                "UPDATE" => "update",
                "DELETE" => "delete",
                other => {
                    return Err(op.problem(format!(
                        "`{other}` is not a write operation: INSERT, UPSERT, UPDATE or DELETE"
                    )));
                }
            };
            config["operation"] = json!(operation);
        }
        let keys = props.texts("idFieldNames")?;
        if !keys.is_empty() {
            config["keys"] = json!(keys);
        }
        if let Some(api) = props.get("dataTransferApi")
            && let Some(value) = salesforce_api(&api)?
        {
            config["options"] = json!({"api": value});
        }
        if let Some(errors) = props.get("errorHandlingConfig") {
            if errors.flag("failOnFirstDestinationError")? == Some(true) {
                self.error_threshold = Some(0);
            }
            // Where AppFlow puts refused records: one thing, said once.
            let places: Vec<_> = ["bucketName", "bucketPrefix"]
                .into_iter()
                .filter_map(|key| errors.get(key))
                .collect();
            if let Some((first, rest)) = places.split_first() {
                rest.iter().for_each(At::take);
                self.gap(first, "records the destination refuses are kept in the run's error output (`tributary runs show`), not in S3");
            }
        }
        if let Some(success) = props.get("successResponseHandlingConfig") {
            self.gap(
                &success,
                "the destination's answers are not written to S3 here",
            );
        }
        let label = format!("{key} {entity}");
        Ok(node(
            "destination",
            &format!("destination.{service}"),
            &label,
            config,
        ))
    }

    /// AppFlow's S3 output settings as the S3 destination's.
    fn s3_output(&mut self, output: &At<'_>, config: &mut Value) -> Result<(), Problem> {
        if let Some(kind) = output.get("fileType") {
            config["format"] = json!(match kind.as_text()?.as_str() {
                "CSV" => "csv",
                "JSON" => "json",
                "PARQUET" => "parquet",
                other => {
                    return Err(kind.problem(format!(
                        "`{other}` is not an S3 output file type: CSV, JSON or PARQUET"
                    )));
                }
            });
        }
        if let Some(prefix) = output.get("prefixConfig") {
            let kind = prefix.text("prefixType")?;
            if let Some(format) = prefix.get("prefixFormat") {
                let unit = match format.as_text()?.as_str() {
                    "YEAR" => "year",
                    "MONTH" => "month",
                    "DAY" => "day",
                    "HOUR" => "hour",
                    "MINUTE" => "minute",
                    other => {
                        return Err(format.problem(format!(
                            "`{other}` is not a prefix format: YEAR, MONTH, DAY, HOUR or MINUTE"
                        )));
                    }
                };
                config["time_prefix"] = json!(unit);
                if matches!(
                    kind.as_deref(),
                    Some("FILENAME") | Some("PATH_AND_FILENAME")
                ) {
                    let at = prefix.get("prefixType").expect("read above");
                    self.gap(
                        &at,
                        "the time goes into folders here (as PATH), not into file names",
                    );
                }
            }
            for level in prefix.items("pathPrefixHierarchy")? {
                match level.as_text()?.as_str() {
                    "EXECUTION_ID" => config["execution_id_folder"] = json!(true),
                    "SCHEMA_VERSION" => config["schema_version_folder"] = json!(true),
                    other => {
                        return Err(level.problem(format!(
                            "`{other}` is not a path prefix: EXECUTION_ID or SCHEMA_VERSION"
                        )));
                    }
                }
            }
        }
        if let Some(aggregation) = output.get("aggregationConfig") {
            match aggregation.text("aggregationType")?.as_deref() {
                Some("None") => config["aggregation"] = json!("per_batch"),
                Some("SingleFile") | None => {}
                Some(other) => {
                    return Err(aggregation.problem(format!(
                        "`{other}` is not an aggregation type: None or SingleFile"
                    )));
                }
            }
            if let Some(size) = aggregation.number("targetFileSize")? {
                config["file_size_mb"] = json!(size.round().max(1.0) as u64);
            }
        }
        if output.flag("preserveSourceDataTyping")? == Some(false) {
            config["all_strings"] = json!(true);
        }
        Ok(())
    }

    /// The transform nodes of the tasks, in the order AppFlow applies them.
    fn steps(
        &mut self,
        tasks: &[Task<'_>],
        projection: Option<&[String]>,
        source: &Node,
    ) -> Result<Vec<Node>, Problem> {
        let mut conditions = Vec::new();
        let mut rules = Vec::new();
        let mut masks: Vec<((String, usize, char), Vec<String>)> = Vec::new();
        let mut truncations: Vec<(u64, Vec<String>)> = Vec::new();
        let mut merges = Vec::new();
        let mut operations = Vec::new();
        let mut mappings: Vec<Value> = Vec::new();
        let mut map_all: Option<Vec<String>> = None;
        // Fields computed by a task, by the destination field they are for.
        let mut computed: Vec<(String, String)> = Vec::new();
        // Destination fields of masks and truncations a map should name.
        let mut named: Vec<(String, String)> = Vec::new();
        // With Map_all every field goes on under its own name: computed ones are written
        // under their destination's name, and nothing needs a map.
        let passes_all = tasks.iter().any(|t| t.kind == "Map_all");
        for task in tasks {
            let temp = |d: &str| match passes_all {
                true => d.to_string(),
                false => format!("tmp_{d}"),
            };
            match task.kind.as_str() {
                "Filter" if task.operator() == "PROJECTION" => {
                    if let Some((_, op)) = &task.operator {
                        op.take();
                    }
                }
                "Filter" => conditions.push(self.condition(task)?),
                "Validate" => {
                    let check = match task.operator() {
                        "VALIDATE_NON_NULL" => "non_null",
                        "VALIDATE_NON_ZERO" => "non_zero",
                        "VALIDATE_NON_NEGATIVE" => "non_negative",
                        "VALIDATE_NUMERIC" => "numeric",
                        other => return Err(operator_problem(task, other, "a validation")),
                    };
                    let action = match task.text("VALIDATION_ACTION")?.as_deref() {
                        None | Some("DropRecord") => "drop_record",
                        Some("DropDataset") | Some("TerminateFlow") => "terminate_flow",
                        Some(other) => {
                            return Err(task.property("VALIDATION_ACTION").expect("read").problem(
                                format!("`{other}` is not a validation action: DropRecord or DropDataset"),
                            ));
                        }
                    };
                    rules.push(json!({"field": task.source()?, "check": check, "action": action}));
                }
                "Mask" => {
                    let mode = match task.operator() {
                        "MASK_ALL" => "all",
                        "MASK_FIRST_N" => "first_n",
                        "MASK_LAST_N" => "last_n",
                        other => return Err(operator_problem(task, other, "a mask")),
                    };
                    let n = match task.property("MASK_LENGTH") {
                        Some(at) => whole(at)? as usize,
                        None => 0,
                    };
                    let mask_char = match task.text("MASK_VALUE")? {
                        None => '*',
                        Some(v) => {
                            let mut chars = v.chars();
                            match (chars.next(), chars.next()) {
                                (Some(c), None) => c,
                                _ => {
                                    return Err(task
                                        .property("MASK_VALUE")
                                        .expect("read")
                                        .problem(format!(
                                            "`{v}` is not one character to mask with"
                                        )));
                                }
                            }
                        }
                    };
                    let field = task.source()?.to_string();
                    let key = (mode.to_string(), n, mask_char);
                    match masks.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field.clone()),
                        None => masks.push((key, vec![field.clone()])),
                    }
                    if let Some(d) = &task.destination {
                        named.push((field, d.clone()));
                    }
                }
                "Truncate" => {
                    let at = task.property("TRUNCATE_LENGTH").ok_or_else(|| {
                        task.at
                            .problem("a Truncate task gives its length in TRUNCATE_LENGTH")
                    })?;
                    let length = whole(at)?;
                    let field = task.source()?.to_string();
                    match truncations.iter_mut().find(|(l, _)| *l == length) {
                        Some((_, fields)) => fields.push(field.clone()),
                        None => truncations.push((length, vec![field.clone()])),
                    }
                    if let Some(d) = &task.destination {
                        named.push((field, d.clone()));
                    }
                }
                "Merge" => {
                    let destination = task.destination.clone().ok_or_else(|| {
                        task.at
                            .problem("a Merge task names the field it makes in `destinationField`")
                    })?;
                    let format = match task.text("CONCAT_FORMAT")? {
                        Some(f) => f.replace("${", "{"),
                        None => task.sources.iter().map(|s| format!("{{{s}}}")).collect(),
                    };
                    merges.push(json!({"output": temp(&destination), "format": format}));
                    computed.push((destination.clone(), temp(&destination)));
                }
                "Arithmetic" => {
                    let destination = task.destination.clone().ok_or_else(|| {
                        task.at.problem(
                            "an Arithmetic task names the field it makes in `destinationField`",
                        )
                    })?;
                    let operator = match task.operator() {
                        "ADDITION" => "add",
                        "SUBTRACTION" => "subtract",
                        "MULTIPLICATION" => "multiply",
                        "DIVISION" => "divide",
                        other => return Err(operator_problem(task, other, "an arithmetic")),
                    };
                    let order = match task.text("MATH_OPERATION_FIELDS_ORDER")? {
                        Some(text) => list_of(&text),
                        None => task.sources.clone(),
                    };
                    let output = temp(&destination);
                    let [first, rest @ ..] = order.as_slice() else {
                        return Err(task.at.problem("an Arithmetic task needs two fields"));
                    };
                    if rest.is_empty() {
                        return Err(task.at.problem("an Arithmetic task needs two fields"));
                    }
                    // `a + b + c` as `(a + b) + c`, into the same field.
                    let mut left = first.clone();
                    for right in rest {
                        operations.push(json!({"output": output, "left": left, "operator": operator, "right": right}));
                        left = output.clone();
                    }
                    computed.push((destination, output));
                }
                "Map" | "Passthrough" => {
                    let field = task.source()?.to_string();
                    let mut mapping = json!({"source": field});
                    if let Some(d) = &task.destination
                        && *d != field
                    {
                        mapping["target"] = json!(d);
                    }
                    if let Some(kind) = self.cast(task)? {
                        mapping["type"] = json!(kind);
                    }
                    // Beside Map_all, a field mapped to itself passes anyway.
                    let same = mapping.get("target").is_none() && mapping.get("type").is_none();
                    if !(passes_all && same) {
                        mappings.push(mapping);
                    }
                }
                "Map_all" => {
                    let exclude = match task.text("EXCLUDE_SOURCE_FIELDS_LIST")? {
                        Some(text) => list_of(&text),
                        None => Vec::new(),
                    };
                    if let Some(at) = task.property("INCLUDE_NEW_FIELDS") {
                        at.take();
                    }
                    map_all = Some(exclude);
                }
                "Partition" => {}
                other => {
                    let at = task.at.get("taskType").expect("read above");
                    return Err(at.problem(format!(
                        "`{other}` is not a task type: Arithmetic, Filter, Map, Map_all, Mask, Merge, Passthrough, Truncate, Validate or Partition"
                    )));
                }
            }
        }
        // A map naming a computed field's destination reads the temporary field.
        for mapping in &mut mappings {
            let source = mapping["source"].as_str().unwrap_or_default().to_string();
            if let Some((_, temp)) = computed.iter().find(|(d, _)| *d == source) {
                let mut named = json!({"source": temp, "target": source});
                if let Some(kind) = mapping.get("type") {
                    named["type"] = kind.clone();
                }
                *mapping = named;
            }
        }
        let targets = |mappings: &Vec<Value>| -> Vec<String> {
            mappings
                .iter()
                .map(|m| {
                    m.get("target")
                        .or(m.get("source"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        };
        for (destination, temp) in computed.iter().filter(|_| !passes_all) {
            if !targets(&mappings).contains(destination) {
                mappings.push(json!({"source": temp, "target": destination}));
            }
        }
        for (field, destination) in named.iter().filter(|_| !passes_all) {
            if !targets(&mappings).contains(destination) {
                let mut m = json!({"source": field});
                if field != destination {
                    m["target"] = json!(destination);
                }
                mappings.push(m);
            }
        }

        let mut nodes = Vec::new();
        if !conditions.is_empty()
            || (source.kind == "source.s3" && projection.is_some() && map_all.is_some())
        {
            let mut config = json!({"conditions": conditions});
            if source.kind == "source.s3"
                && let Some(fields) = projection
            {
                config["fields"] = json!(fields);
            }
            nodes.push(node("filter", "transform.filter", "Filter", config));
        }
        if !rules.is_empty() {
            nodes.push(node(
                "validate",
                "transform.validate",
                "Validate",
                json!({"rules": rules}),
            ));
        }
        for (i, ((mode, n, mask_char), fields)) in masks.into_iter().enumerate() {
            let mut config = json!({"fields": fields, "mode": mode});
            if n > 0 {
                config["n"] = json!(n);
            }
            if mask_char != '*' {
                config["mask_char"] = json!(mask_char);
            }
            nodes.push(node(&numbered("mask", i), "transform.mask", "Mask", config));
        }
        for (i, (length, fields)) in truncations.into_iter().enumerate() {
            nodes.push(node(
                &numbered("truncate", i),
                "transform.truncate",
                "Truncate",
                json!({"fields": fields, "length": length}),
            ));
        }
        for (i, merge) in merges.into_iter().enumerate() {
            nodes.push(node(
                &numbered("merge", i),
                "transform.merge",
                "Merge",
                merge,
            ));
        }
        if !operations.is_empty() {
            nodes.push(node(
                "arithmetic",
                "transform.arithmetic",
                "Arithmetic",
                json!({"operations": operations}),
            ));
        }
        match (map_all, mappings.is_empty()) {
            (Some(exclude), true) => {
                nodes.push(node(
                    "map",
                    "transform.map_all",
                    "Map all fields",
                    json!({"exclude": exclude}),
                ));
            }
            (Some(_), false) => {
                let at = tasks
                    .iter()
                    .find(|t| t.kind == "Map_all")
                    .expect("found above");
                return Err(at.at.problem(
                    "a Map_all task with Map tasks beside it is not carried over: a map here either names its fields or passes all of them; import it as Map tasks only",
                ));
            }
            (None, false) => nodes.push(node(
                "map",
                "transform.map",
                "Map",
                json!({"fields": mappings}),
            )),
            (None, true) => {}
        }
        Ok(nodes)
    }

    /// A Filter task's condition on the source's value.
    fn condition(&mut self, task: &Task<'_>) -> Result<Value, Problem> {
        let field = task.source()?;
        let data_type = task.text("DATA_TYPE")?;
        let typed =
            |at: &At<'_>| -> Result<Value, Problem> { typed_value(at, data_type.as_deref()) };
        let one = |key: &str| -> Result<Value, Problem> {
            let at = task.property(key).ok_or_else(|| {
                task.at.problem(format!(
                    "a {} filter gives its value in {key}",
                    task.operator()
                ))
            })?;
            typed(at)
        };
        let operator = match task.operator() {
            "LESS_THAN" => "less_than",
            "GREATER_THAN" => "greater_than",
            "LESS_THAN_OR_EQUAL_TO" => "less_than_or_equal_to",
            "GREATER_THAN_OR_EQUAL_TO" => "greater_than_or_equal_to",
            "EQUAL_TO" => "equal_to",
            "NOT_EQUAL_TO" => "not_equal_to",
            "CONTAINS" => "contains",
            "BETWEEN" => "between",
            other => return Err(operator_problem(task, other, "a filter")),
        };
        let value = match operator {
            "between" => json!([one("LOWER_BOUND")?, one("UPPER_BOUND")?]),
            _ => match (task.property("VALUES"), task.property("VALUE")) {
                (Some(values), _) => {
                    let items: Result<Vec<Value>, Problem> = list_of(&values.as_text()?)
                        .into_iter()
                        .map(|v| typed_text(&v, data_type.as_deref(), values))
                        .collect();
                    Value::Array(items?)
                }
                (None, Some(value)) => typed(value)?,
                (None, None) => one("VALUE")?,
            },
        };
        if let Some(at) = task.property("DATA_TYPE") {
            at.take();
        }
        Ok(json!({"field": field, "operator": operator, "value": value}))
    }

    /// The type a Map task casts to, when AppFlow's destination type differs from the
    /// source's in this project's types.
    fn cast(&mut self, task: &Task<'_>) -> Result<Option<&'static str>, Problem> {
        let (Some(to_at), from) = (
            task.property("DESTINATION_DATA_TYPE"),
            task.text("SOURCE_DATA_TYPE")?,
        ) else {
            if let Some(at) = task.property("SOURCE_DATA_TYPE") {
                at.take();
            }
            return Ok(None);
        };
        let to_text = to_at.as_text()?;
        let Some(to) = field_type(&to_text) else {
            self.gap(
                to_at,
                format!(
                    "`{to_text}` is not a type Tributary knows; the field keeps the source's type"
                ),
            );
            return Ok(None);
        };
        let from = from.as_deref().and_then(field_type);
        // Without the source's type, the destination's is what the field becomes.
        Ok((from != Some(to)).then_some(to))
    }

    fn partition_keys<'d>(&self, task: &Task<'d>) -> Result<(Vec<String>, At<'d>), Problem> {
        let at = task.property("ORDERED_PARTITION_KEYS_LIST").cloned();
        let keys = match &at {
            Some(at) => list_of(&at.as_text()?),
            None => task.sources.clone(),
        };
        Ok((keys, at.unwrap_or_else(|| task.at.clone())))
    }

    fn trigger(
        &mut self,
        at: &At<'_>,
        source: &Node,
    ) -> Result<(Trigger, ServiceSettings), Problem> {
        let kind = at.required_text("triggerType")?;
        let mut service = ServiceSettings::default();
        let trigger = match kind.as_str() {
            "OnDemand" => Trigger::OnDemand,
            "Scheduled" => {
                let props = scheduled(at).ok_or_else(|| {
                    at.problem("a Scheduled trigger has its schedule in `triggerProperties`")
                })?;
                let expression = props.required_text("scheduleExpression")?;
                if let Err(e) = crate::flow::schedule::parse(&expression) {
                    let at = props.get("scheduleExpression").expect("read above");
                    return Err(at.problem(format!("`{expression}`: {e}")));
                }
                let instant = |key: &str| -> Result<Option<String>, Problem> {
                    match props.get(key) {
                        None => Ok(None),
                        Some(at) => epoch_seconds(&at).map(Some),
                    }
                };
                let pull_mode = match props.text("dataPullMode")?.as_deref() {
                    None | Some("Incremental") => PullMode::Incremental,
                    Some("Complete") => PullMode::Complete,
                    Some(other) => {
                        let at = props.get("dataPullMode").expect("read above");
                        return Err(at.problem(format!(
                            "`{other}` is not a pull mode: Incremental or Complete"
                        )));
                    }
                };
                if let Some(offset) = props.get("scheduleOffset") {
                    self.gap(&offset, "runs start at the schedule's times here; add the offset to the cron expression instead");
                }
                if let Some(threshold) = props.number("flowErrorDeactivationThreshold")? {
                    service.deactivate_after = threshold.max(0.0) as u32;
                }
                Trigger::Schedule {
                    expression,
                    // CloudFormation spells it `TimeZone`.
                    time_zone: match props.text("timezone")? {
                        Some(zone) => Some(zone),
                        None => props.text("timeZone")?,
                    },
                    start: instant("scheduleStartTime")?,
                    end: instant("scheduleEndTime")?,
                    pull_mode,
                    first_run_from: instant("firstExecutionFrom")?,
                }
            }
            "Event" => match source.kind.as_str() {
                "source.salesforce" => Trigger::Event(Event::Salesforce {
                    connection: source.config["connection"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    object: source.config["entity"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    interval_seconds: None,
                }),
                _ => {
                    let at = at.get("triggerType").expect("read above");
                    self.gap(&at, format!(
                        "event triggers here come from Salesforce, S3, a folder or a webhook; this flow's source is {} — it runs on demand until you choose its trigger",
                        source.kind
                    ));
                    Trigger::OnDemand
                }
            },
            other => {
                let at = at.get("triggerType").expect("read above");
                return Err(at.problem(format!(
                    "`{other}` is not a trigger type: OnDemand, Scheduled or Event"
                )));
            }
        };
        Ok((trigger, service))
    }
}

/// A scheduled trigger's properties: the API nests them in `triggerProperties.Scheduled`,
/// CloudFormation gives them as `TriggerProperties` itself.
fn scheduled<'d>(trigger: &At<'d>) -> Option<At<'d>> {
    let properties = trigger.get("triggerProperties")?;
    match trigger.in_template() {
        true => Some(properties),
        false => properties.get("Scheduled"),
    }
}

fn node(id: &str, kind: &str, label: &str, config: Value) -> Node {
    Node {
        id: id.to_string(),
        kind: kind.to_string(),
        label: Some(label.to_string()),
        position: [0.0, 0.0],
        config,
    }
}

fn numbered(base: &str, i: usize) -> String {
    match i {
        0 => base.to_string(),
        _ => format!("{base}_{}", i + 1),
    }
}

fn known_connectors() -> String {
    let mut names: Vec<&str> = SERVICES.iter().map(|(_, key, _)| *key).collect();
    names.insert(0, "S3");
    names.join(", ")
}

/// How the task spells `sourceFields` (CloudFormation: `SourceFields`).
fn source_fields_key(task: &At<'_>) -> &'static str {
    match task.value.get("SourceFields") {
        Some(_) => "SourceFields",
        None => "sourceFields",
    }
}

fn operator_problem(task: &Task<'_>, operator: &str, what: &str) -> Problem {
    let at = task.operator.as_ref().map_or(&task.at, |(_, at)| at);
    at.problem(format!("`{operator}` is not {what} operator"))
}

fn salesforce_api(at: &At<'_>) -> Result<Option<&'static str>, Problem> {
    Ok(match at.as_text()?.as_str() {
        "AUTOMATIC" => None,
        "BULKV2" => Some("bulk"),
        "REST_SYNC" => Some("rest"),
        other => {
            return Err(at.problem(format!(
                "`{other}` is not a data transfer API: AUTOMATIC, BULKV2 or REST_SYNC"
            )));
        }
    })
}

/// A parameter's name for a connector profile: `Salesforce Prod` → `salesforce_prod`.
fn param_name(profile: &str) -> String {
    let mut out = String::new();
    for c in profile.chars() {
        match c {
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('_') && !out.is_empty() => out.push('_'),
            _ => {}
        }
    }
    match out.trim_end_matches('_') {
        "" => "connection".to_string(),
        name => name.to_string(),
    }
}

/// A list written as JSON (`["A","B"]`) or with commas (`A,B`).
fn list_of(text: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<Value>>(text) {
        Ok(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Err(_) => text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

fn whole(at: &At<'_>) -> Result<u64, Problem> {
    let text = at.as_text()?;
    text.trim()
        .parse()
        .map_err(|_| at.problem(format!("`{text}` is not a whole number")))
}

/// AppFlow's data type names (Salesforce's among them) as this project's types.
fn field_type(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "string" | "id" | "picklist" | "multipicklist" | "textarea" | "email" | "phone" | "url"
        | "reference" | "combobox" | "encryptedstring" => "string",
        "int" | "integer" | "long" | "short" | "byte" => "integer",
        "double" | "float" | "currency" | "percent" | "number" => "number",
        "decimal" | "bigdecimal" => "decimal",
        "boolean" => "boolean",
        "date" => "date",
        "datetime" | "timestamp" => "timestamp",
        _ => return None,
    })
}

/// A filter's value in its data type: numbers as numbers, booleans as booleans, and AppFlow's
/// instants (milliseconds since 1970, as its console writes them) as RFC 3339.
fn typed_value(at: &At<'_>, data_type: Option<&str>) -> Result<Value, Problem> {
    let text = at.as_text()?;
    typed_text(&text, data_type, at)
}

fn typed_text(text: &str, data_type: Option<&str>, at: &At<'_>) -> Result<Value, Problem> {
    let kind = data_type.and_then(field_type).unwrap_or("string");
    let wrong = |what: &str| {
        at.problem(format!(
            "`{text}` is not {what}, as the filter's DATA_TYPE says"
        ))
    };
    Ok(match kind {
        "integer" | "number" | "decimal" => {
            if let Ok(n) = text.trim().parse::<i64>() {
                return Ok(json!(n));
            }
            let n: f64 = text.trim().parse().map_err(|_| wrong("a number"))?;
            match (kind, serde_json::Number::from_f64(n)) {
                ("integer", _) if n.fract() == 0.0 => json!(n as i64),
                (_, Some(n)) => Value::Number(n),
                _ => return Err(wrong("a number")),
            }
        }
        "boolean" => match text.trim().to_ascii_lowercase().as_str() {
            "true" => json!(true),
            "false" => json!(false),
            _ => return Err(wrong("true or false")),
        },
        "timestamp" | "date" => match text.trim().parse::<i64>() {
            Ok(millis) => {
                let t = Utc
                    .timestamp_millis_opt(millis)
                    .single()
                    .ok_or_else(|| wrong("an instant"))?;
                match kind {
                    "date" => json!(t.format("%Y-%m-%d").to_string()),
                    _ => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                }
            }
            Err(_) => json!(text),
        },
        _ => json!(text),
    })
}

/// AppFlow's instants in seconds since 1970 (`scheduleStartTime`) as RFC 3339.
fn epoch_seconds(at: &At<'_>) -> Result<String, Problem> {
    let seconds = match at.value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.parse::<f64>() {
            Ok(n) => Some(n),
            // Already an instant.
            Err(_) => return Ok(s.clone()),
        },
        _ => None,
    }
    .ok_or_else(|| at.problem("expected seconds since 1970"))?;
    let t: DateTime<Utc> = Utc
        .timestamp_opt(seconds.trunc() as i64, 0)
        .single()
        .ok_or_else(|| at.problem(format!("`{seconds}` is not an instant")))?;
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
