//! `destination.<service>`: one node type per service whose catalog takes writes, all with
//! the same config. Records are staged on disk while the run goes and sent only when the
//! run commits, so a run that fails anywhere sends nothing; records the service refuses go
//! to the run's error output with the service's words.
//!
//! A SaaS service has no transaction to publish a run's records at once: a commit that
//! stops halfway (the service down, the process killed) leaves the records sent so far in
//! the service, and the run fails; its source's watermark does not move, so the next run
//! sends the records again. Updates are safe to send twice; inserts are not, which the
//! README says.

use std::io::{BufRead, BufReader, Seek, Write as _};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{Catalog, Client, EntityDetail, Operation, WriteRequest};
use super::service::Service;
use super::source::{check_options, node_schema, upgrading};
use super::target::Target;
use crate::node::{
    BuildContext, ConfigProblem, Destination, ErrorRecord, ErrorSink, NodeConfig, NodeError,
    NodeType, OutputLocation, PlanContext, Published, Runtime,
};

/// What every service's destination node holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityDestinationConfig {
    /// The connection to write with.
    pub connection: String,
    /// The entity to write to: a table, an object of the service.
    #[serde(default)]
    pub entity: String,
    /// What each record does: `insert` a new one, or `update`, `upsert` or `delete` the
    /// one its `keys` find.
    #[serde(default = "insert")]
    pub operation: Operation,
    /// The fields that find the record to change; the entity's own (such as `sys_id`)
    /// when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Settings of this service alone (Salesforce: which API writes); `tributary schema`
    /// lists each service's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
}

fn insert() -> Operation {
    Operation::Insert
}

#[derive(Debug)]
struct EntityDestination {
    service: &'static dyn Service,
    catalog: &'static dyn Catalog,
    config: EntityDestinationConfig,
}

/// The registry entry of a service's destination node, for services that take writes.
pub fn node_type(service: &'static dyn Service) -> Option<NodeType> {
    let catalog = service.catalog()?;
    let writes = service.capabilities().writes;
    if writes.is_empty() {
        return None;
    }
    let id = service.id();
    let label = service.sign_in().label;
    let entities = service.entities();
    let plural = entities.plural;
    let verbs: Vec<_> = writes.iter().map(|w| w.name()).collect();
    Some(
        NodeType::made(
            id,
            format!("destination.{id}"),
            label.to_string(),
            format!(
                "Write to {label} {plural} ({}); refused records go to the error output",
                verbs.join(", ")
            ),
            service.icon(),
            entities,
            move |value| {
                let config = crate::node::deserialize_config::<EntityDestinationConfig>(value)?;
                Ok(Arc::new(EntityDestination {
                    service,
                    catalog,
                    config,
                }))
            },
            move |generator| {
                node_schema::<EntityDestinationConfig>(generator, id, catalog.write_options())
            },
        )
        .with_upgrade(upgrading(catalog, false)),
    )
}

impl EntityDestination {
    fn target(&self) -> Target<'_> {
        Target {
            service: self.service,
            catalog: self.catalog,
            connection: &self.config.connection,
            entity: &self.config.entity,
            options: &self.config.options,
        }
    }

    fn label(&self) -> &'static str {
        self.service.sign_in().label
    }

    /// Checks the operation, the keys and the input's fields against the entity; the
    /// request the commit sends.
    fn check(
        &self,
        entity: EntityDetail,
        input: &SchemaRef,
    ) -> Result<WriteRequest, Vec<ConfigProblem>> {
        let c = &self.config;
        let Some(write) = entity.writes.iter().find(|w| w.operation == c.operation) else {
            let taken: Vec<_> = entity.writes.iter().map(|w| w.operation.name()).collect();
            return Err(vec![ConfigProblem::new(
                "/operation",
                format!(
                    "{} takes no {} of {}; it takes {}",
                    self.label(),
                    c.operation.name(),
                    entity.name,
                    if taken.is_empty() {
                        "none".into()
                    } else {
                        taken.join(", ")
                    }
                ),
            )]);
        };
        let keys = match c.keys.is_empty() {
            true => write.keys.clone(),
            false => c.keys.clone(),
        };
        let mut problems = Vec::new();
        if let Err(p) = check_options(self.service, self.catalog.write_options(), &c.options) {
            problems.push(p);
        }
        if c.operation != Operation::Insert && keys.is_empty() {
            problems.push(ConfigProblem::new(
                "/keys",
                format!(
                    "{} needs the field that finds the record to change: name it in `keys`",
                    c.operation.name()
                ),
            ));
        }
        if write.one_key && keys.len() > 1 {
            problems.push(ConfigProblem::new(
                "/keys",
                format!(
                    "{} finds records by one field only; name one in `keys`",
                    self.label()
                ),
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            if input.field_with_name(key).is_err() {
                let at = match c.keys.is_empty() {
                    true => "/operation".to_string(),
                    false => format!("/keys/{i}"),
                };
                problems.push(ConfigProblem::new(
                    at,
                    format!(
                        "{} needs the records' `{key}` field to find the record to change; the input has no such field",
                        c.operation.name()
                    ),
                ));
            }
        }
        // A delete sends only the keys.
        for f in input.fields() {
            if c.operation != Operation::Delete && entity.field(f.name()).is_none() {
                problems.push(ConfigProblem::new(
                    "/entity",
                    format!(
                        "{} has no field `{}`: rename it in a Map node or leave it out",
                        entity.name,
                        f.name()
                    ),
                ));
            }
        }
        match problems.is_empty() {
            true => Ok(WriteRequest {
                entity,
                operation: c.operation,
                keys,
                total: 0,
            }),
            false => Err(problems),
        }
    }
}

impl NodeConfig for EntityDestination {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        cx: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        let input = input.expect("a destination has an input");
        let entity = self
            .target()
            .described(cx, "write to")
            .map_err(|p| vec![p])?;
        self.check(entity, input)?;
        Ok(input.clone())
    }

    fn summary(&self) -> String {
        let c = &self.config;
        match c.keys.is_empty() {
            true => format!("{} · {}", c.entity, c.operation.name()),
            false => format!(
                "{} · {} by {}",
                c.entity,
                c.operation.name(),
                c.keys.join(", ")
            ),
        }
    }

    fn test_connection(
        &self,
        cx: &PlanContext,
    ) -> crate::node::BoxFuture<Result<String, NodeError>> {
        let detail = self.target().describe_now(cx);
        Box::pin(async move {
            let detail = detail.await?;
            Ok(format!(
                "connected: {} has {} fields",
                detail.name,
                detail.fields.len()
            ))
        })
    }

    fn entities(
        &self,
        cx: &PlanContext,
    ) -> crate::node::BoxFuture<Result<Vec<crate::node::Entity>, NodeError>> {
        self.target().entities(cx)
    }

    fn entity_fields(
        &self,
        cx: &PlanContext,
    ) -> crate::node::BoxFuture<Result<Vec<crate::node::EntityField>, NodeError>> {
        self.target().fields(cx)
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let input = cx
            .input_schema
            .as_ref()
            .expect("a destination has an input");
        let plan = cx.plan();
        let entity = self
            .target()
            .described(&plan, "write to")
            .map_err(|p| NodeError::msg(p.message))?;
        let request = self.check(entity, input)?;
        let staged = tempfile::tempfile().map_err(|e| {
            NodeError::io(format!("cannot stage the records for {}", self.label()), e)
        })?;
        Ok(Runtime::Destination(Box::new(EntityWrite {
            label: self.label(),
            catalog: self.catalog,
            client: self.target().client(&plan)?,
            request,
            // Commits run on a blocking thread and wait there for the run's own runtime.
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| NodeError::msg("writing to a service needs the async runtime"))?,
            node: cx.node_id.clone(),
            errors: cx.errors.clone(),
            staged: std::io::BufWriter::new(staged),
            staged_records: 0,
            staged_bytes: 0,
        })))
    }
}

/// Records staged as JSON lines until the run commits.
struct EntityWrite {
    label: &'static str,
    catalog: &'static dyn Catalog,
    client: Client,
    request: WriteRequest,
    runtime: tokio::runtime::Handle,
    node: String,
    errors: ErrorSink,
    staged: std::io::BufWriter<std::fs::File>,
    staged_records: u64,
    staged_bytes: u64,
}

impl EntityWrite {
    fn stage_error(&self, e: std::io::Error) -> NodeError {
        NodeError::io(format!("cannot stage the records for {}", self.label), e)
    }

    /// Sends one chunk; counts what was taken and sets the refused records aside.
    fn send(&self, records: Vec<Map<String, Value>>, taken: &mut u64) -> Result<(), NodeError> {
        let lines: Vec<String> = records
            .iter()
            .map(|r| Value::Object(r.clone()).to_string())
            .collect();
        let outcomes = self.runtime.block_on(self.catalog.write(
            self.client.clone(),
            self.request.clone(),
            records,
        ))?;
        if outcomes.len() != lines.len() {
            return Err(NodeError::msg(format!(
                "{} answered for {} of {} records sent",
                self.label,
                outcomes.len(),
                lines.len()
            )));
        }
        for (outcome, record) in outcomes.into_iter().zip(lines) {
            match outcome {
                Ok(()) => *taken += 1,
                Err(reason) => self.errors.write(ErrorRecord {
                    node: self.node.clone(),
                    file: Some(format!(
                        "{} {} {}",
                        self.label,
                        self.request.entity.name,
                        self.request.operation.name()
                    )),
                    line: None,
                    reason,
                    record,
                })?,
            }
        }
        Ok(())
    }
}

impl Destination for EntityWrite {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), NodeError> {
        for record in crate::records::rows_json(batch)? {
            let line = Value::Object(record).to_string();
            self.staged
                .write_all(line.as_bytes())
                .and_then(|()| self.staged.write_all(b"\n"))
                .map_err(|e| self.stage_error(e))?;
            self.staged_bytes += line.len() as u64 + 1;
            self.staged_records += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), NodeError> {
        self.staged.flush().map_err(|e| self.stage_error(e))
    }

    fn commit(mut self: Box<Self>) -> Result<Published, NodeError> {
        let mut file = self
            .staged
            .get_ref()
            .try_clone()
            .map_err(|e| self.stage_error(e))?;
        file.rewind().map_err(|e| self.stage_error(e))?;
        self.request.total = self.staged_records;
        let chunk = self.catalog.write_chunk(&self.client, &self.request).max(1);
        let mut taken = 0;
        let mut records = Vec::with_capacity(chunk);
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| self.stage_error(e))?;
            let record: Map<String, Value> = serde_json::from_str(&line)
                .map_err(|e| NodeError::msg(format!("a staged record cannot be read: {e}")))?;
            records.push(record);
            if records.len() == chunk {
                self.send(std::mem::take(&mut records), &mut taken)?;
            }
        }
        if !records.is_empty() {
            self.send(records, &mut taken)?;
        }
        self.staged_records = taken;
        Ok(vec![OutputLocation {
            location: format!(
                "{}:{}/{} ({})",
                self.client.connection,
                self.label,
                self.request.entity.name,
                self.request.in_words()
            ),
            records: taken,
            bytes: self.staged_bytes,
        }]
        .into())
    }

    fn abort(self: Box<Self>) {
        // Nothing was sent: records go out only when the run commits.
    }

    fn bytes_written(&self) -> u64 {
        self.staged_bytes
    }
}
