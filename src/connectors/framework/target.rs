//! What the generic source and destination share: the service, and the connection and
//! entity their settings name — opening the connection, learning the entity through the
//! workspace's discovery cache, and the inspector's lists.

use serde_json::{Map, Value};

use crate::node::EntityField;

use super::catalog::{Catalog, Client, EntityDetail};
use super::service::{self, Service};
use super::{ConnectorError, ErrorKind};
use crate::connectors::block_on;
use crate::node::{BoxFuture, ConfigProblem, Entity, NodeError, PlanContext};

/// A generic node's service and the connection and entity it names.
pub struct Target<'a> {
    pub service: &'static dyn Service,
    pub catalog: &'static dyn Catalog,
    pub connection: &'a str,
    pub entity: &'a str,
    /// The node's `options`, which the service's requests may depend on.
    pub options: &'a Map<String, Value>,
}

impl Target<'_> {
    pub fn client(&self, cx: &PlanContext) -> Result<Client, ConnectorError> {
        let mut client = service::client(self.service, &cx.dirs, self.connection)?;
        client.options = self.options.clone();
        Ok(client)
    }

    /// The entity as the workspace learnt it; a missing one is the flow's mistake, a
    /// service that cannot answer is not. `doing` says what the node does with it
    /// ("read", "write to").
    pub fn described(&self, cx: &PlanContext, doing: &str) -> Result<EntityDetail, ConfigProblem> {
        if self.connection.trim().is_empty() {
            return Err(ConfigProblem::new(
                "/connection",
                format!("choose a {} connection", self.service.sign_in().label),
            ));
        }
        let entity = self.entity.trim();
        if entity.is_empty() {
            return Err(ConfigProblem::new(
                "/entity",
                format!("choose the {} to {doing}", self.service.entity_word()),
            ));
        }
        let options = Value::Object(self.options.clone()).to_string();
        let inputs = (
            "describe",
            self.service.id(),
            self.connection,
            entity,
            options,
        );
        let learnt = cx.discovery.learn(&inputs, || {
            let client = self.client(cx)?;
            block_on(self.catalog.describe(client, entity.to_string()))
        });
        learnt.map_err(|e| match e.kind {
            ErrorKind::NotFound => ConfigProblem::new("/entity", e.message),
            _ => ConfigProblem::service("/entity", e.message),
        })
    }

    /// The entities of the connection, for the object browser.
    pub fn entities(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<Entity>, NodeError>> {
        let client = self.client(cx);
        let catalog = self.catalog;
        Box::pin(async move { Ok(catalog.entities(client?).await?) })
    }

    /// The chosen entity's fields, for the field checklist.
    pub fn fields(&self, cx: &PlanContext) -> BoxFuture<Result<Vec<EntityField>, NodeError>> {
        let detail = self.describe_now(cx);
        Box::pin(async move {
            Ok(detail
                .await?
                .fields
                .into_iter()
                .map(|f| EntityField {
                    name: f.name,
                    label: f.label,
                    data_type: f.data_type,
                })
                .collect())
        })
    }

    /// Asks the service for the entity now, past the cache: for "Test connection" and the
    /// inspector, which show what the service says at this moment.
    pub fn describe_now(
        &self,
        cx: &PlanContext,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>> {
        let client = self.client(cx);
        let catalog = self.catalog;
        let entity = self.entity.trim().to_string();
        Box::pin(async move { catalog.describe(client?, entity).await })
    }
}
