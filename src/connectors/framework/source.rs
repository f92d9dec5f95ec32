//! `source.<service>`: one node type per service with a catalog, all with the same config
//! and the same inspector (the object browser, the field checklist, conditions offering only
//! the operators the service filters by). A service supplies its catalog; this module
//! checks the config against it, plans the schema, keeps the watermark and turns the
//! service's pages into batches.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::Watermark;
use super::catalog::{Catalog, ChangeLog, EntityDetail, Notes, Options, REMOVED, ReadRequest};
use super::service::Service;
use super::target::Target;
use crate::codecs::read::values_to_batch;
use crate::conditions::{Condition, Operator};
use crate::node::{
    Agreement, BoxFuture, BuildContext, ConfigProblem, Demand, Entity, EntityField, ErrorRecord,
    NodeConfig, NodeError, NodeType, Partition, PlanContext, Runtime, Source, SourceOutput,
};

/// What every service's source node holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitySourceConfig {
    /// The connection to read with.
    pub connection: String,
    /// The entity to read: a table, an object, an endpoint of the service.
    #[serde(default)]
    pub entity: String,
    /// The fields to read, in this order; every field when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Only records for which every condition holds. The service applies them, so only
    /// the records that pass are transferred.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Read only the records changed since the last successful run (by `cursor_field`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// The field that says when a record last changed; when absent, the service's own
    /// log of changes where it keeps one (SAP's delta links, which also tell deletions),
    /// otherwise its usual field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// Settings of this service alone (Salesforce: which API reads); `tributary schema`
    /// lists each service's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
}

/// The source node of one service.
#[derive(Debug)]
struct EntitySource {
    service: &'static dyn Service,
    catalog: &'static dyn Catalog,
    config: EntitySourceConfig,
}

impl std::fmt::Debug for dyn Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::fmt::Debug for dyn Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("catalog")
    }
}

/// The registry entry of a service's source node, for services with a catalog.
pub fn node_type(service: &'static dyn Service) -> Option<NodeType> {
    let catalog = service.catalog()?;
    let id = service.id();
    let label = service.sign_in().label;
    let entities = service.entities();
    let plural = entities.plural;
    Some(
        NodeType::made(
            id,
            format!("source.{id}"),
            label.to_string(),
            format!("Read {label} {plural}, all or only the records changed since the last run"),
            service.icon(),
            entities,
            move |value| {
                let config = crate::node::deserialize_config::<EntitySourceConfig>(value)?;
                Ok(Arc::new(EntitySource {
                    service,
                    catalog,
                    config,
                }))
            },
            move |generator| {
                node_schema::<EntitySourceConfig>(generator, id, catalog.read_options())
            },
        )
        .with_upgrade(upgrading(catalog, true)),
    )
}

/// Reads the shapes the service's nodes had before, through its catalog.
pub fn upgrading(
    catalog: &'static dyn Catalog,
    source: bool,
) -> impl Fn(&mut Value) + Send + Sync + 'static {
    move |value| {
        if let Value::Object(config) = value {
            catalog.upgrade(source, config);
        }
    }
}

/// A node's `options` checked against the service's; problems point into them.
pub fn check_options(
    service: &dyn Service,
    declared: Option<Options>,
    options: &Map<String, Value>,
) -> Result<(), ConfigProblem> {
    match declared {
        None if options.is_empty() => Ok(()),
        None => Err(ConfigProblem::new(
            "/options",
            format!("{} nodes take no options", service.sign_in().label),
        )),
        Some(o) => (o.check)(&Value::Object(options.clone()))
            .map_err(|(at, words)| ConfigProblem::new(format!("/options{at}"), words)),
    }
}

/// A generic node's schema: its `connection` offers connections of service `id`, and
/// its `options` are the service's own, or absent when it has none.
pub fn node_schema<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    id: &str,
    options: Option<Options>,
) -> Schema {
    let mut schema = connection_schema::<T>(generator, id);
    let properties = schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("a config has properties");
    match options {
        Some(o) => {
            let mut described = (o.schema)(generator).to_value();
            if let Some(Value::String(text)) = properties["options"].get("description") {
                described["description"] = Value::from(text.clone());
            }
            properties["options"] = described;
        }
        None => {
            properties.remove("options");
        }
    }
    schema
}

/// A config's schema with its `connection` setting offering connections of service `id`.
pub fn connection_schema<T: JsonSchema>(generator: &mut SchemaGenerator, id: &str) -> Schema {
    let reference = generator.subschema_for::<T>().to_value();
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_string();
    let mut schema = generator
        .definitions()
        .get(&name)
        .cloned()
        .unwrap_or(reference);
    schema["properties"]["connection"]["x-connection"] = Value::from(id);
    Schema::try_from(schema).expect("an object schema")
}

impl EntitySource {
    fn target(&self) -> Target<'_> {
        Target {
            service: self.service,
            catalog: self.catalog,
            connection: &self.config.connection,
            entity: &self.config.entity,
            options: &self.config.options,
        }
    }

    /// Checks the config against the entity: fields, conditions, how changes are found.
    fn check(&self, entity: EntityDetail) -> Result<Plan, Vec<ConfigProblem>> {
        let c = &self.config;
        let mut problems = Vec::new();
        if let Err(p) = check_options(self.service, self.catalog.read_options(), &c.options) {
            problems.push(p);
        }
        let chosen: Vec<String> = if c.fields.is_empty() {
            entity.fields.iter().map(|f| f.name.clone()).collect()
        } else {
            let mut chosen = Vec::with_capacity(c.fields.len());
            for (i, name) in c.fields.iter().enumerate() {
                match entity.field(name) {
                    Some(f) => chosen.push(f.name.clone()),
                    None => problems.push(ConfigProblem::new(
                        format!("/fields/{i}"),
                        no_field(&entity, name),
                    )),
                }
            }
            chosen
        };
        if let Err(words) = self.catalog.check_fields(&entity, &chosen) {
            problems.push(ConfigProblem::new("/fields", words));
        }
        for (i, condition) in c.conditions.iter().enumerate() {
            let at = format!("/conditions/{i}");
            match entity.field(&condition.field) {
                None => problems.push(ConfigProblem::new(
                    format!("{at}/field"),
                    no_field(&entity, &condition.field),
                )),
                Some(f) if !f.filters.contains(&condition.operator) => {
                    let offered: Vec<_> = f.filters.iter().map(|o| o.in_words()).collect();
                    problems.push(ConfigProblem::new(
                        format!("{at}/operator"),
                        match offered.is_empty() {
                            true => format!(
                                "{} cannot filter by `{}`",
                                self.service.sign_in().label,
                                f.name
                            ),
                            false => format!(
                                "{} filters `{}` by {} only",
                                self.service.sign_in().label,
                                f.name,
                                offered.join(", ")
                            ),
                        },
                    ))
                }
                Some(f) => {
                    if let Err(words) = check_value(condition, &f.data_type) {
                        problems.push(ConfigProblem::new(format!("{at}/value"), words));
                    }
                }
            }
        }
        for (field, operator) in &entity.required {
            if !c
                .conditions
                .iter()
                .any(|x| x.field == *field && x.operator == *operator)
            {
                problems.push(ConfigProblem::new(
                    "/conditions",
                    format!(
                        "{} reads {} only with a condition: `{field}` {} a value",
                        self.service.sign_in().label,
                        entity.name,
                        operator.in_words()
                    ),
                ));
            }
        }
        let log = c.incremental && c.cursor_field.is_none() && entity.change_log.is_some();
        let cursor = match (c.incremental, &c.cursor_field) {
            (false, _) => None,
            (true, None) if log => None,
            (true, Some(name)) => match entity.field(name) {
                Some(f) if f.cursor => Some(f.name.clone()),
                Some(f) => {
                    let usable: Vec<_> = entity
                        .fields
                        .iter()
                        .filter(|f| f.cursor)
                        .map(|f| f.name.as_str())
                        .collect();
                    problems.push(ConfigProblem::new(
                        "/cursor_field",
                        format!(
                            "`{}` cannot say what changed since the last run; use {}",
                            f.name,
                            if usable.is_empty() {
                                "none: this entity has no such field".to_string()
                            } else {
                                usable.join(" or ")
                            }
                        ),
                    ));
                    None
                }
                None => {
                    problems.push(ConfigProblem::new("/cursor_field", no_field(&entity, name)));
                    None
                }
            },
            (true, None) => match &entity.default_cursor {
                Some(f) => Some(f.clone()),
                None => {
                    problems.push(ConfigProblem::new(
                        "/incremental",
                        format!(
                            "{} says nothing about when its records change: it can only be read whole",
                            entity.name
                        ),
                    ));
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut plan = Plan {
            chosen,
            cursor,
            log,
            entity,
        };
        // A deletion in the log is known by its keys alone: they are always read.
        if log {
            for key in plan.entity.change_log.iter().flatten() {
                if !plan.chosen.contains(key) {
                    plan.chosen.push(key.clone());
                }
            }
        }
        Ok(plan)
    }

    /// The records the pull asks for, as they were when the run started.
    fn request(&self, plan: Plan) -> ReadRequest {
        let mut fields = plan.chosen;
        for extra in [plan.entity.id_field.clone(), plan.cursor.clone()]
            .into_iter()
            .flatten()
        {
            if !fields.contains(&extra) {
                fields.push(extra);
            }
        }
        ReadRequest {
            since: None,
            until: None,
            log: plan.log.then(ChangeLog::default),
            entity: plan.entity,
            fields,
            conditions: self.config.conditions.clone(),
            cursor: plan.cursor,
            limit: None,
            page_rows: 1,
            notes: Notes::default(),
        }
    }

    fn plan(&self, cx: &PlanContext) -> Result<Plan, Vec<ConfigProblem>> {
        let entity = self.target().described(cx, "read").map_err(|p| vec![p])?;
        self.check(entity)
    }
}

/// A source node's config checked against its entity.
struct Plan {
    entity: EntityDetail,
    /// The fields the node sends on, in order.
    chosen: Vec<String>,
    /// The cursor field of an incremental pull by one.
    cursor: Option<String>,
    /// Whether the pull follows the service's change log.
    log: bool,
}

impl Plan {
    fn schema(&self) -> ArrowSchema {
        let mut fields = self.entity.schema_of(&self.chosen).fields().to_vec();
        if self.log {
            fields.push(Arc::new(ArrowField::new(REMOVED, DataType::Utf8, true)));
        }
        ArrowSchema::new(fields)
    }
}

/// What a pull by a change log saves: where the next run reads from.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogMark {
    delta_link: String,
}

impl NodeConfig for EntitySource {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        Ok(Arc::new(self.plan(cx)?.schema()))
    }

    fn summary(&self) -> String {
        let mut s = self.config.entity.clone();
        if self.config.incremental {
            s += " · changes since the last run";
        }
        s
    }

    fn test_connection(&self, cx: &PlanContext) -> BoxFuture<Result<String, NodeError>> {
        let target = self.target();
        let entities = target.entities(cx);
        let detail = (!self.config.entity.trim().is_empty()).then(|| target.describe_now(cx));
        Box::pin(async move {
            let entities = entities.await?;
            let Some(detail) = detail else {
                return Ok(format!("connected: {} to choose from", entities.len()));
            };
            let detail = detail.await?;
            Ok(format!(
                "connected: {} has {} fields",
                detail.name,
                detail.fields.len()
            ))
        })
    }

    fn entities(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<Entity>, NodeError>> {
        self.target().entities(cx)
    }

    fn entity_fields(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<EntityField>, NodeError>> {
        self.target().fields(cx)
    }

    fn reads_in_partitions(&self) -> Result<(), String> {
        match self.config.incremental {
            true => Ok(()),
            false => Err(
                "its parts are windows of its cursor field (when records changed), which only an incremental pull reads: turn on `incremental`".into(),
            ),
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let plan = self.plan(&cx.plan())?;
        let part = match (cx.partition, &plan.cursor) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(NodeError::msg(format!(
                    "{} is read by its change log, which cannot be cut into parts; set `cursor_field` to read it in parts by windows of that field",
                    plan.entity.name
                )));
            }
            (Some(_), Some(_)) if plan.entity.restated => {
                return Err(NodeError::msg(format!(
                    "{} is a report whose days the service chooses and restates, which cannot be cut into parts; run the flow whole",
                    plan.entity.name
                )));
            }
            (Some(part), Some(_)) => Some(Share {
                part,
                agreement: cx.agreement.clone().ok_or_else(|| {
                    NodeError::msg("a part of a partitioned run needs its run's agreement")
                })?,
                service: self.service.sign_in().label.to_string(),
            }),
        };
        // Records changed as the run began are the next run's.
        let watermark = match &plan.cursor {
            Some(_) => Some(Watermark::of_run(cx, |at| at, Some(cx.started))?),
            None => None,
        };
        let mut request = ReadRequest {
            since: watermark.as_ref().and_then(|w| w.since().copied()),
            until: watermark.as_ref().and_then(|w| w.until().copied()),
            ..self.request(plan)
        };
        if let Some(log) = &mut request.log {
            log.since = cx.saved_watermark::<LogMark>()?.map(|m| m.delta_link);
        }
        Ok(Runtime::Source(Box::new(EntityRead {
            client: self.target().client(&cx.plan())?,
            catalog: self.catalog,
            request,
            watermark,
            schema: cx.output_schema.clone(),
            part,
        })))
    }
}

struct EntityRead {
    client: super::catalog::Client,
    catalog: &'static dyn Catalog,
    request: ReadRequest,
    watermark: Option<Watermark<DateTime<Utc>>>,
    schema: SchemaRef,
    /// In a partitioned run: which share of the window this part reads.
    part: Option<Share>,
}

/// One part's share of an incremental pull's window.
struct Share {
    part: Partition,
    agreement: Agreement,
    /// The service's name, for messages.
    service: String,
}

impl Share {
    /// Cuts the window `[since, until)` into as many spans of the cursor as there are
    /// parts, at whole seconds, and gives this part's span: `(since, until)` to read, or
    /// `None` when this part's span is empty. Every part cuts at the same instants: the
    /// window's end is the run's (settled by the engine), its start the saved watermark,
    /// the flow's `first_run_from`, or else the oldest record the service holds — settled
    /// here by whichever part asks first, as the oldest record may change between parts.
    /// The first span starts where the window does (with the ids read there last time);
    /// the last ends at the run's start.
    async fn cut(
        &self,
        catalog: &'static dyn Catalog,
        client: &super::catalog::Client,
        request: &ReadRequest,
    ) -> Result<Option<(Option<DateTime<Utc>>, DateTime<Utc>)>, NodeError> {
        let Some(until) = request.until else {
            return Err(NodeError::msg("a windowed pull ends at the run's start"));
        };
        let start = match request.since {
            Some(since) => Some(since),
            None => match catalog.earliest(client.clone(), request) {
                Some(asking) => asking.await.map_err(|e| {
                    NodeError::msg(format!(
                        "cannot ask {} where {}'s records begin: {e}",
                        self.service, request.entity.name
                    ))
                })?,
                None => {
                    return Err(NodeError::msg(format!(
                        "{} cannot say where {}'s records begin, so a partitioned run that reads everything has no start to cut at: give the flow's trigger a `first_run_from`, or run it whole once and in parts from there",
                        self.service, request.entity.name
                    )));
                }
            },
        };
        let settled = self
            .agreement
            .settle(
                "window start",
                &serde_json::json!(start.map(|t| t.to_rfc3339())),
            )
            .map_err(NodeError::msg)?;
        let start = settled
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc());
        let (index, count) = (i64::from(self.part.index), i64::from(self.part.count));
        let last = index == count - 1;
        // Cut from the first whole second after the start: each span is then at least a
        // second long and the first one holds the start.
        let first_second = start.map(|s| {
            let floor = s.timestamp();
            if s.timestamp_subsec_nanos() == 0 {
                floor
            } else {
                floor + 1
            }
        });
        let span = first_second.map(|f| until.timestamp() - f);
        let (Some(first_second), Some(span)) = (first_second, span.filter(|s| *s >= count)) else {
            // Nothing to cut (no records, or a window of a few seconds): the last part
            // reads it whole.
            return Ok(last.then_some((request.since, until)));
        };
        let cut_at = |i: i64| {
            DateTime::from_timestamp(first_second + span * i / count, 0)
                .expect("an instant within the window")
        };
        let since = if index == 0 {
            request.since
        } else {
            Some(cut_at(index))
        };
        let end = if last { until } else { cut_at(index + 1) };
        Ok(Some((since, end)))
    }
}

impl Source for EntityRead {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            let EntityRead {
                client,
                catalog,
                mut request,
                mut watermark,
                schema,
                part,
            } = *self;
            if let Some(share) = part {
                match share.cut(catalog, &client, &request).await? {
                    Some((since, until)) => {
                        // The first part keeps the window's start, and the ids read there.
                        let from = if share.part.index == 0 { None } else { since };
                        watermark = watermark.map(|w| w.share(from, until));
                        request.since = since;
                        request.until = Some(until);
                    }
                    None => return Ok(()),
                }
            }
            request.limit = out.remaining();
            request.page_rows = out.batch_rows().max(1);
            let notes = request.notes.clone();
            let entity = request.entity.name.clone();
            let id_field = request.entity.id_field.clone();
            let restated = request.entity.restated;
            let cursor = request.cursor.clone();
            let log = request.log.clone();
            // One page waits while the next is fetched.
            let (tx, mut rx) = mpsc::channel(1);
            let reading = tokio::spawn(catalog.read(client, request, tx));
            let mut page = 0;
            while let Some(records) = rx.recv().await {
                page += 1;
                for (name, value) in notes.all() {
                    out.set_note(name, value);
                }
                let mut values = Vec::with_capacity(records.len());
                for record in records {
                    if let (Some(w), Some(cursor)) = (&mut watermark, &cursor)
                        && !take(w, &record, cursor, id_field.as_deref(), restated)
                    {
                        continue;
                    }
                    values.push(Value::Object(record));
                }
                let node = out.node_id().to_string();
                // A value that does not fit its described type is set aside with its
                // page, never dropped.
                let mut rejected = Vec::new();
                let batch =
                    values_to_batch(&schema, &mut values, false, &mut |k, reason, record| {
                        rejected.push(ErrorRecord {
                            node: node.clone(),
                            file: Some(format!("{entity} page {page}")),
                            line: None,
                            reason: format!("record {} of the page: {reason}", k + 1),
                            record,
                        });
                        Ok(())
                    })?;
                for error in rejected {
                    out.reject(error)?;
                }
                if out.send(batch).await? == Demand::Enough {
                    // The sample is complete: the read stops at its next page.
                    drop(rx);
                    reading.abort();
                    return Ok(());
                }
            }
            let read = reading.await.map_err(|e| {
                NodeError::msg(format!("reading {entity} stopped unexpectedly: {e}"))
            })?;
            for (name, value) in notes.all() {
                out.set_note(name, value);
            }
            read?;
            if let Some(watermark) = watermark {
                watermark.save(&out);
            }
            if let Some(log) = log {
                let delta_link = log.next.lock().unwrap().take().ok_or_else(|| {
                    NodeError::msg(format!(
                        "reading the changes of {entity} ended without a place for the next run to go on from; set `cursor_field` to find changes by a field instead"
                    ))
                })?;
                out.advance_watermark(
                    serde_json::to_value(LogMark { delta_link }).expect("plain data"),
                );
            }
            Ok(())
        })
    }
}

/// Why an entity has no field of this name.
fn no_field(entity: &EntityDetail, name: &str) -> String {
    match entity
        .left_out
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(name))
    {
        Some((f, why)) => format!("`{f}` {why}"),
        None => format!("{} has no field `{name}`", entity.name),
    }
}

/// Whether a condition's value suits its field's type, so that the service is asked
/// only what it can answer: a number for a number, a date for a date.
fn check_value(condition: &Condition, data_type: &DataType) -> Result<(), String> {
    let one = |value: &Value| -> Result<(), String> {
        let text = match value {
            Value::Null => return Ok(()),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(format!("`{other}` is not a single value")),
        };
        let fits = match data_type {
            DataType::Boolean => text == "true" || text == "false",
            t if t.is_numeric() => text.parse::<f64>().is_ok(),
            DataType::Date32 | DataType::Date64 => {
                chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").is_ok()
            }
            DataType::Timestamp(..) => DateTime::parse_from_rfc3339(&text).is_ok(),
            _ => true,
        };
        match fits {
            true => Ok(()),
            false => Err(format!(
                "`{text}` is not {} like {}, which `{}` holds",
                match data_type {
                    DataType::Boolean => "true or false",
                    t if t.is_numeric() => "a number",
                    DataType::Timestamp(..) => "a date and time",
                    _ => "a date",
                },
                match data_type {
                    DataType::Boolean => "true",
                    t if t.is_numeric() => "1250.50",
                    DataType::Timestamp(..) => "2026-11-30T00:00:00Z",
                    _ => "2026-11-30",
                },
                condition.field
            )),
        }
    };
    match (condition.operator, &condition.value) {
        (Operator::Between, Value::Array(pair)) if pair.len() == 2 => pair.iter().try_for_each(one),
        (Operator::Between, _) => Err("`between` takes two values: [low, high]".into()),
        (Operator::Contains, Value::String(_)) => Ok(()),
        (Operator::Contains, _) => Err("`contains` takes a text".into()),
        (_, Value::Array(items)) => items.iter().try_for_each(one),
        (_, value) => one(value),
    }
}

/// Whether a record is new to this pull, moving the watermark on by it when it is. A record
/// without a readable cursor (an instant, or a day taken at its start) is read and does
/// not move it. Records the service restates are all taken: the service chose the window.
fn take(
    watermark: &mut Watermark<DateTime<Utc>>,
    record: &Map<String, Value>,
    cursor: &str,
    id_field: Option<&str>,
    restated: bool,
) -> bool {
    let Some(changed) = record.get(cursor).and_then(Value::as_str).and_then(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                let day = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?;
                Some(day.and_hms_opt(0, 0, 0)?.and_utc())
            })
    }) else {
        return true;
    };
    let id = id_field.and_then(|f| record.get(f)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if restated {
        watermark.advance(&changed, id.as_deref());
        return true;
    }
    watermark.take(&changed, id.as_deref())
}
