//! What a service offers (AppFlow's entities and fields), and how a service reads them.
//!
//! A service describes each entity once — its fields with their Arrow types, which of them
//! it can filter by and with which operators, which can serve as an incremental cursor, the
//! writes it takes — and hands over records as JSON objects already in those types. The
//! framework does the rest for every service alike: the node's config and its checks, the
//! inspector's object browser, the schema, the watermark, decoding into batches, previews.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field as ArrowField, Schema};
use chrono::{DateTime, Utc};
use schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::ConnectorError;
use crate::auth::session::Session;
use crate::conditions::{Condition, Operator};
use crate::connectors::http::Api;
use crate::node::{BoxFuture, Entity};

/// One field of an entity as its service describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub data_type: DataType,
    /// The operators the service filters this field by: the app offers only these, and
    /// conditions with them are sent to the service rather than applied after reading.
    pub filters: Vec<Operator>,
    /// Whether the field can be the incremental cursor: an instant of the record's last
    /// change that the service can ask from.
    pub cursor: bool,
}

/// One entity with everything the framework needs to read and write it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDetail {
    pub name: String,
    pub label: String,
    pub fields: Vec<Field>,
    /// The field that identifies a record (`sys_id`, `Id`, `id`): the watermark keeps the
    /// ids read at its instant by it.
    pub id_field: Option<String>,
    /// The cursor an incremental pull uses unless the node names another.
    pub default_cursor: Option<String>,
    /// The writes the entity takes.
    pub writes: Vec<Write>,
    /// Conditions without which the service does not read the entity, as (field,
    /// operator): Slack reads messages one conversation at a time.
    pub required: Vec<(String, Operator)>,
    /// Fields the service has that cannot be read as they are, with what to do instead
    /// (Salesforce's compound address fields: "choose its parts instead").
    pub left_out: Vec<(String, String)>,
    /// Whether later reads restate the records of recent cursor values (a report's last
    /// days, still settling): an incremental pull then takes every record the service
    /// reads, whose read starts a lookback before the watermark, and a destination with
    /// `replace_partitions` keeps each day once.
    pub restated: bool,
    /// When the service keeps a log of the entity's changes that a pull can follow
    /// (OData's delta links): the fields that identify a record, which the log's
    /// deletions carry. An incremental pull without a `cursor_field` follows the log, and
    /// the records it reads say in [`REMOVED`] which of them are gone.
    pub change_log: Option<Vec<String>>,
}

/// The field a pull by a service's change log adds: `null` for a record that is there,
/// otherwise why it is gone — `deleted`, or `changed` when it no longer matches the
/// node's conditions — with only its key fields set.
pub const REMOVED: &str = "_removed";

impl EntityDetail {
    /// The field of this name; spelt with other capitals when no field has it exactly, as
    /// services such as Salesforce read names.
    pub fn field(&self, name: &str) -> Option<&Field> {
        (self.fields.iter().find(|f| f.name == name)).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// The Arrow schema of the given fields, in the order given.
    pub fn schema_of(&self, names: &[String]) -> Schema {
        Schema::new(
            names
                .iter()
                .filter_map(|n| self.field(n))
                .map(|f| ArrowField::new(&f.name, f.data_type.clone(), true))
                .collect::<Vec<_>>(),
        )
    }
}

/// A kind of write (AppFlow's `writeOperationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Insert,
    Update,
    Upsert,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
        }
    }
}

/// A write an entity takes, and the fields that find the record it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub operation: Operation,
    /// For update, upsert and delete: the fields that identify the record; when empty,
    /// the node names them in `keys`.
    pub keys: Vec<String>,
    /// Whether the service finds records by one field only (Salesforce upserts by one
    /// external id field).
    pub one_key: bool,
}

/// A connection opened for its service: requests signed with its credentials, and the
/// base URL of its API (`instance_url`, or the service's own address).
#[derive(Clone)]
pub struct Client {
    pub connection: String,
    pub api: Api,
    /// Without a trailing `/`.
    pub base: String,
    /// The node's `options`, checked against the service's [`Catalog::read_options`] or
    /// [`Catalog::write_options`] when the flow was planned.
    pub options: Map<String, Value>,
}

impl Client {
    pub fn new(connection: &str, session: Arc<Session>, base: String) -> Self {
        Client {
            connection: connection.to_string(),
            api: Api::new(Some(session)),
            base: base.trim_end_matches('/').to_string(),
            options: Map::new(),
        }
    }

    /// A setting of the connection (`sap_client`).
    pub fn setting(&self, key: &str) -> Option<String> {
        self.api.session()?.connection().setting(key)
    }

    /// A URL of the service's API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The node's `options` read as the service's type.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_value(Value::Object(self.options.clone()))
            .map_err(|e| ConnectorError::fatal(format!("the node's options: {e}")))
    }
}

/// What a pull asks of a service.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub entity: EntityDetail,
    /// The fields to ask for: the chosen ones, with the id and the cursor.
    pub fields: Vec<String>,
    /// Conditions the service filters by (only operators its catalog offers).
    pub conditions: Vec<Condition>,
    /// For an incremental pull: the cursor field and the window, `since` inclusive,
    /// `until` exclusive.
    pub cursor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// For a pull by the service's change log instead of a cursor field.
    pub log: Option<ChangeLog>,
    /// A preview's sample size; `None` reads everything.
    pub limit: Option<u64>,
    /// The most records a page should hold: a service whose answers are large (a Bulk
    /// result set of 50,000 records) sends them on in pages of this size.
    pub page_rows: usize,
    /// Figures for the run record.
    pub notes: Notes,
}

impl ReadRequest {
    /// The days an incremental pull of a report reads, first and last included: from the
    /// last day read less `lookback` days (reports restate their recent days), or from
    /// `first` on the first run (30 days back when `None`), to the day the run started.
    /// `None` when the pull is not incremental.
    pub fn report_days(
        &self,
        lookback: u32,
        first: Option<chrono::NaiveDate>,
    ) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
        self.cursor.as_ref()?;
        let today = self.until.unwrap_or_else(Utc::now).date_naive();
        let from = match self.since {
            Some(since) => since.date_naive() - chrono::Duration::days(lookback.into()),
            None => first.unwrap_or(today - chrono::Duration::days(30)),
        };
        Some((from, today))
    }
}

/// A pull by a service's change log: where the last run's read of it ended, and where this
/// one's does. The run saves the new place only once its output is committed, so a run
/// that fails is read again from the same place.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    /// The link the last successful run was given (an OData delta link); `None` on the
    /// first run, which reads every record and starts the log.
    pub since: Option<String>,
    /// Set by the service's read when it reached the end of the log: the link the next
    /// run reads from.
    pub next: Arc<Mutex<Option<String>>>,
}

impl ChangeLog {
    /// Where the next run goes on from, once this read reached the end.
    pub fn reached(&self, link: String) {
        *self.next.lock().unwrap() = Some(link);
    }
}

/// A day given in a node's `options` (`start_date`), read as `2026-01-31`.
pub fn option_date(text: &str, key: &str) -> Result<chrono::NaiveDate, ConnectorError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ConnectorError::fatal(format!(
            "the option `{key}` is `{text}`, not a date such as 2026-01-31"
        ))
    })
}

/// Figures a service reports while it reads (Salesforce's use of the org's daily API
/// allowance), kept in the run record by name.
#[derive(Debug, Clone, Default)]
pub struct Notes(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Notes {
    pub fn set(&self, name: &'static str, value: u64) {
        self.0.lock().unwrap().insert(name, value);
    }

    /// The figures set so far.
    pub fn all(&self) -> Vec<(&'static str, u64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// Settings of one service's nodes beyond the ones every service has, held in the node's
/// `options` (Salesforce's choice of API): described by a serde type, whose JSON Schema
/// the app draws and whose reading checks them.
#[derive(Clone, Copy)]
pub struct Options {
    pub schema: fn(&mut SchemaGenerator) -> schemars::Schema,
    /// Reads the options: a problem says where in them (a JSON pointer) and what.
    pub check: fn(&Value) -> Result<(), (String, String)>,
}

impl Options {
    /// The options of type `T` (which should deny unknown fields).
    pub fn of<T: DeserializeOwned + JsonSchema>() -> Options {
        Options {
            schema: |generator| generator.subschema_for::<T>(),
            check: |value| {
                serde_path_to_error::deserialize::<_, T>(value)
                    .map(drop)
                    .map_err(|e| {
                        (
                            crate::serde_words::pointer_from_serde_path(e.path()),
                            crate::serde_words::serde_in_words(&e.inner().to_string()),
                        )
                    })
            },
        }
    }
}

/// One page of records as the service answered it, in its catalog's types: text, numbers,
/// booleans, RFC 3339 instants, decimals as text or numbers.
pub type Page = Vec<Map<String, Value>>;

/// Where a service's read sends its pages. A send that fails means the node has what it
/// needs (a preview's sample) or the run stopped: the read ends there, without error.
pub type Pages = mpsc::Sender<Page>;

/// What a write asks of a service.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub entity: EntityDetail,
    pub operation: Operation,
    /// The fields that find the record to change (update, upsert, delete).
    pub keys: Vec<String>,
    /// How many records the run sends in all: known when it commits.
    pub total: u64,
}

impl WriteRequest {
    /// "insert", "update by sys_id", "upsert by External_Id__c".
    pub fn in_words(&self) -> String {
        match (self.operation, self.keys.is_empty()) {
            (Operation::Insert, _) | (_, true) => self.operation.name().to_string(),
            (operation, false) => format!("{} by {}", operation.name(), self.keys.join(", ")),
        }
    }
}

/// What the service said of one record sent: taken, or refused with its words (and code).
pub type Outcome = Result<(), String>;

/// What a service with entities implements. Each method gets the connection opened for
/// the service; futures own what they use, so the engine can run them anywhere.
pub trait Catalog: Send + Sync {
    /// The entities the connection can see.
    fn entities(&self, client: Client) -> BoxFuture<Result<Vec<Entity>, ConnectorError>>;

    /// One entity's fields, cursor, id and writes; [`ErrorKind::NotFound`] when there is
    /// no such entity.
    ///
    /// [`ErrorKind::NotFound`]: super::ErrorKind::NotFound
    fn describe(
        &self,
        client: Client,
        entity: String,
    ) -> BoxFuture<Result<EntityDetail, ConnectorError>>;

    /// The oldest value of `request.cursor` among the records `request` asks for (by its
    /// conditions, whatever its window), or `None` when there are none: where the windows
    /// of a partitioned run that reads everything begin. Services that cannot say leave
    /// this out, and such a run then needs a start (a saved watermark or the flow's
    /// `first_run_from`).
    fn earliest(
        &self,
        _client: Client,
        _request: &ReadRequest,
    ) -> Option<BoxFuture<Result<Option<DateTime<Utc>>, ConnectorError>>> {
        None
    }

    /// Reads the records `request` asks for, page by page, into `pages`.
    fn read(
        &self,
        client: Client,
        request: ReadRequest,
        pages: Pages,
    ) -> BoxFuture<Result<(), ConnectorError>>;

    /// Sends records to the service, at most [`Catalog::write_chunk`] at a time; says of
    /// each, in order, whether the service took it. An error is a failure of the whole
    /// request (the sign-in, the service down), not of a record.
    fn write(
        &self,
        _client: Client,
        _request: WriteRequest,
        _records: Vec<Map<String, Value>>,
    ) -> BoxFuture<Result<Vec<Outcome>, ConnectorError>> {
        Box::pin(async { Err(ConnectorError::fatal("this service takes no writes")) })
    }

    /// How many records one [`Catalog::write`] call takes; `request.total` says how many
    /// the run sends in all, for services with another way to send many.
    fn write_chunk(&self, _client: &Client, _request: &WriteRequest) -> usize {
        200
    }

    /// Checks the fields a source node reads beyond their existing, for services that
    /// limit what one read may ask for (a GA4 report: 9 dimensions, 10 metrics); the words
    /// say what to do.
    fn check_fields(&self, _entity: &EntityDetail, _fields: &[String]) -> Result<(), String> {
        Ok(())
    }

    /// The settings of this service's source node beyond everyone's, if it has any.
    fn read_options(&self) -> Option<Options> {
        None
    }

    /// The settings of this service's destination node beyond everyone's, if it has any.
    fn write_options(&self) -> Option<Options> {
        None
    }

    /// Turns a node config written for an older shape of this service's nodes into
    /// today's, so that flows saved before still open (`source` says which node).
    fn upgrade(&self, _source: bool, _config: &mut Map<String, Value>) {}
}
