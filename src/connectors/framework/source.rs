//! `source.<service>`: one node type per service with a catalog, all with the same config
//! and the same inspector (the object browser, the field checklist, conditions offering only
//! the operators the service filters by). A service supplies its catalog; this module
//! checks the config against it, plans the schema, keeps the watermark and turns the
//! service's pages into batches.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::Watermark;
use super::catalog::{Catalog, EntityDetail, ReadRequest};
use super::service::Service;
use super::target::Target;
use crate::codecs::read::values_to_batch;
use crate::conditions::Condition;
use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, Demand, Entities, Entity, EntityField, ErrorRecord,
    NodeConfig, NodeError, NodeType, PlanContext, Runtime, Source, SourceOutput,
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
    /// The field that says when a record last changed; the service's usual one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
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
    let entity = service.entity_word();
    Some(NodeType::made(
        id,
        format!("source.{id}"),
        label.to_string(),
        format!("Read {label} {entity}s, all or only the records changed since the last run"),
        service.icon(),
        Entities {
            setting: "entity",
            word: entity,
        },
        move |value| {
            let config = crate::node::deserialize_config::<EntitySourceConfig>(value)?;
            Ok(Arc::new(EntitySource {
                service,
                catalog,
                config,
            }))
        },
        move |generator| connection_schema::<EntitySourceConfig>(generator, id),
    ))
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
        }
    }

    /// Checks the config against the entity: fields, conditions, cursor. Returns the
    /// chosen fields and the cursor.
    fn check(
        &self,
        entity: &EntityDetail,
    ) -> Result<(Vec<String>, Option<String>), Vec<ConfigProblem>> {
        let c = &self.config;
        let mut problems = Vec::new();
        let chosen: Vec<String> = if c.fields.is_empty() {
            entity.fields.iter().map(|f| f.name.clone()).collect()
        } else {
            for (i, name) in c.fields.iter().enumerate() {
                if entity.field(name).is_none() {
                    problems.push(ConfigProblem::new(
                        format!("/fields/{i}"),
                        format!("{} has no field `{name}`", entity.name),
                    ));
                }
            }
            c.fields.clone()
        };
        for (i, condition) in c.conditions.iter().enumerate() {
            let at = format!("/conditions/{i}");
            match entity.field(&condition.field) {
                None => problems.push(ConfigProblem::new(
                    format!("{at}/field"),
                    format!("{} has no field `{}`", entity.name, condition.field),
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
                Some(_) => {}
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
        let cursor = match (c.incremental, &c.cursor_field) {
            (false, _) => None,
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
                    problems.push(ConfigProblem::new(
                        "/cursor_field",
                        format!("{} has no field `{name}`", entity.name),
                    ));
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
        match problems.is_empty() {
            true => Ok((chosen, cursor)),
            false => Err(problems),
        }
    }

    fn plan(
        &self,
        cx: &PlanContext,
    ) -> Result<(EntityDetail, Vec<String>, Option<String>), Vec<ConfigProblem>> {
        let entity = self.target().described(cx, "read").map_err(|p| vec![p])?;
        let (chosen, cursor) = self.check(&entity)?;
        Ok((entity, chosen, cursor))
    }
}

impl NodeConfig for EntitySource {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let (entity, chosen, _) = self.plan(cx)?;
        Ok(Arc::new(entity.schema_of(&chosen)))
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

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (entity, chosen, cursor) = self.plan(&cx.plan())?;
        // Records changed as the run began are the next run's.
        let watermark = match &cursor {
            Some(_) => Some(Watermark::of_run(cx, |at| at, Some(cx.started))?),
            None => None,
        };
        let mut fields = chosen;
        for extra in [entity.id_field.clone(), cursor.clone()]
            .into_iter()
            .flatten()
        {
            if !fields.contains(&extra) {
                fields.push(extra);
            }
        }
        let request = ReadRequest {
            since: watermark.as_ref().and_then(|w| w.since().copied()),
            until: watermark.as_ref().and_then(|w| w.until().copied()),
            entity,
            fields,
            conditions: self.config.conditions.clone(),
            cursor,
            limit: None,
        };
        Ok(Runtime::Source(Box::new(EntityRead {
            client: self.target().client(&cx.plan())?,
            catalog: self.catalog,
            request,
            watermark,
            schema: cx.output_schema.clone(),
        })))
    }
}

struct EntityRead {
    client: super::catalog::Client,
    catalog: &'static dyn Catalog,
    request: ReadRequest,
    watermark: Option<Watermark<DateTime<Utc>>>,
    schema: SchemaRef,
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
            } = *self;
            request.limit = out.remaining();
            let entity = request.entity.name.clone();
            let id_field = request.entity.id_field.clone();
            let cursor = request.cursor.clone();
            // One page waits while the next is fetched.
            let (tx, mut rx) = mpsc::channel(1);
            let reading = tokio::spawn(catalog.read(client, request, tx));
            let mut page = 0;
            while let Some(records) = rx.recv().await {
                page += 1;
                let mut values = Vec::with_capacity(records.len());
                for record in records {
                    if let (Some(w), Some(cursor)) = (&mut watermark, &cursor)
                        && !take(w, &record, cursor, id_field.as_deref())
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
            reading.await.map_err(|e| {
                NodeError::msg(format!("reading {entity} stopped unexpectedly: {e}"))
            })??;
            if let Some(watermark) = watermark {
                watermark.save(&out);
            }
            Ok(())
        })
    }
}

/// Whether a record is new to this pull, moving the watermark on by it when it is. A record
/// without a readable cursor is read and does not move it.
fn take(
    watermark: &mut Watermark<DateTime<Utc>>,
    record: &Map<String, Value>,
    cursor: &str,
    id_field: Option<&str>,
) -> bool {
    let Some(changed) = record
        .get(cursor)
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
    else {
        return true;
    };
    let id = id_field.and_then(|f| record.get(f)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    watermark.take(&changed, id.as_deref())
}
