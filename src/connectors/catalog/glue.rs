//! The AWS Glue Data Catalog, for `destination.s3`: a database (made when missing), a
//! table whose columns, partition keys and storage descriptor say how to read the objects
//! (Athena, Redshift Spectrum and EMR read it), and each run's new partitions, as AppFlow's
//! `metadataCatalogConfig` registers them.
//!
//! Glue speaks JSON over HTTP (`AWSGlue.<Action>` in `X-Amz-Target`) with SigV4-signed
//! requests. The handful of actions used here are written against that protocol with the
//! SDK's own signer and credential chain, rather than with the generated Glue SDK, whose
//! build alone takes longer than the rest of the S3 support.

use std::time::{Duration, SystemTime};

use arrow::datatypes::DataType;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::config::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Column, PartitionKind, WrittenPartition, column_changes, some_folders};
use crate::codecs::FileFormat;
use crate::connectors::http::{Api, preview};
use crate::connectors::layout::{NULL_PARTITION, TimePrefix, unescape_partition_value};
use crate::connectors::output::TableShape;
use crate::connectors::s3::Access;
use crate::fields::Problems;
use crate::node::{NodeError, Registration};

/// `catalog` of `destination.s3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Catalog {
    /// Register the objects in the AWS Glue Data Catalog.
    pub glue: GlueCatalog,
}

/// Where in the AWS Glue Data Catalog a destination registers its objects (AppFlow's
/// `glueDataCatalog`). Signed with the S3 connection's credentials, which need the Glue
/// permissions `GetDatabase`, `CreateDatabase`, `GetTable`, `CreateTable`, `UpdateTable`
/// and `BatchCreatePartition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlueCatalog {
    /// The Glue database; made when missing.
    pub database: String,
    /// Put before the table's name, as AppFlow's `tablePrefix`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table_prefix: String,
    /// The table's name after the prefix; the flow's name in lower case with underscores
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Glue's region, when it is not the bucket's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Another address for Glue (a VPC endpoint, a local test server);
    /// `AWS_ENDPOINT_URL_GLUE` or `AWS_ENDPOINT_URL` when absent, never the S3
    /// connection's endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// The partition keys a time prefix makes, in folder order.
const TIME_KEYS: [&str; 5] = ["year", "month", "day", "hour", "minute"];
const EXECUTION_KEY: &str = "execution_id";
const SCHEMA_KEY: &str = "schema_version";

/// Glue's names: lower case letters, digits and underscores; Glue lowers what it is given.
fn check_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && (name.chars()).all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl GlueCatalog {
    /// Checks the names, and that no field of `partition_by` takes the name of a folder
    /// that the layout makes (`year`…, `execution_id`, `schema_version`).
    pub fn check(
        &self,
        format: FileFormat,
        folders: &[&str],
        partition_by: &[String],
        problems: &mut Problems,
    ) {
        if format == FileFormat::Json {
            problems.push(
                "/format",
                "Glue's readers take JSON one record per line: choose `jsonl` to register the objects",
            );
        }
        if !check_name(&self.database) {
            problems.push(
                "/catalog/glue/database",
                format!(
                    "`{}` is not a Glue database name: lower case letters, digits and underscores",
                    self.database
                ),
            );
        }
        let table = format!(
            "{}{}",
            self.table_prefix,
            self.table.as_deref().unwrap_or("x")
        );
        if !check_name(&table) {
            problems.push(
                if self.table.as_deref().is_some_and(|t| !check_name(t)) {
                    "/catalog/glue/table"
                } else {
                    "/catalog/glue/table_prefix"
                },
                format!(
                    "`{table}` is not a Glue table name: lower case letters, digits and underscores"
                ),
            );
        }
        for (i, field) in partition_by.iter().enumerate() {
            if let Some(taken) = folders.iter().find(|f| f.eq_ignore_ascii_case(field)) {
                problems.push(
                    format!("/partition_by/{i}"),
                    format!(
                        "Glue would have two partition keys named `{taken}`: the layout's folders already make one; rename the field first"
                    ),
                );
            }
        }
        if let Some(url) = &self.endpoint_url
            && let Err(message) = crate::auth::http::check_url(url)
        {
            problems.push("/catalog/glue/endpoint_url", message);
        }
    }

    /// The folders above the partition fields' that a layout makes, as Glue keys.
    pub fn layout_keys(
        prefix: Option<TimePrefix>,
        execution_id_folder: bool,
        schema_version_folder: bool,
    ) -> Vec<&'static str> {
        let time = match prefix {
            None => 0,
            Some(TimePrefix::Year) => 1,
            Some(TimePrefix::Month) => 2,
            Some(TimePrefix::Day) => 3,
            Some(TimePrefix::Hour) => 4,
            Some(TimePrefix::Minute) => 5,
        };
        let mut keys = TIME_KEYS[..time].to_vec();
        if execution_id_folder {
            keys.push(EXECUTION_KEY);
        }
        if schema_version_folder {
            keys.push(SCHEMA_KEY);
        }
        keys
    }
}

/// How to reach Glue, kept in a commit record: the S3 connection's name (never its keys)
/// and Glue's own region and address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlueReach {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// What registering a run's objects takes, kept in the run's commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub reach: GlueReach,
    pub database: String,
    pub table: String,
    pub description: String,
    /// `s3://bucket/prefix/`.
    pub location: String,
    pub format: FileFormat,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// The partitions the run wrote into: their values and figures.
    pub partitions: Vec<(Vec<String>, WrittenPartition)>,
}

impl TablePlan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &GlueCatalog,
        flow: &str,
        node: &str,
        location: String,
        layout_keys: &[&str],
        shape: &TableShape,
        written: Vec<WrittenPartition>,
    ) -> Self {
        let text = matches!(shape.format, FileFormat::Csv | FileFormat::Jsonl);
        let columns = (shape.columns.iter())
            .map(|f| Column {
                name: f.name().to_lowercase(),
                kind: hive_type(f.data_type(), shape.format, text),
            })
            .collect();
        let mut partition_keys: Vec<Column> = (layout_keys.iter())
            .map(|k| Column {
                name: k.to_string(),
                kind: "string".into(),
            })
            .collect();
        partition_keys.extend(shape.partition_fields.iter().map(|f| Column {
            name: f.name().to_lowercase(),
            kind: partition_type(f.data_type()).into(),
        }));
        let partitions = written
            .into_iter()
            .filter(|w| !partition_keys.is_empty() && !w.folder.is_empty())
            .map(|w| (partition_values(&w.folder), w))
            .collect();
        let table = format!(
            "{}{}",
            config.table_prefix,
            (config.table.clone()).unwrap_or_else(|| super::table_name(flow))
        );
        TablePlan {
            reach: GlueReach {
                region: config.region.clone(),
                endpoint_url: config.endpoint_url.clone(),
            },
            database: config.database.clone(),
            table: table.to_lowercase(),
            description: format!("Written by the Tributary flow \"{flow}\", node `{node}`"),
            location,
            format: shape.format,
            columns,
            partition_keys,
            partitions,
        }
    }

    fn storage(&self, location: &str) -> Value {
        let (input, output, serde, parameters) = match self.format {
            FileFormat::Parquet => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                json!({"serialization.format": "1"}),
            ),
            FileFormat::Csv => (
                TEXT_INPUT,
                TEXT_OUTPUT,
                "org.apache.hadoop.hive.serde2.OpenCSVSerde",
                json!({"separatorChar": ",", "quoteChar": "\"", "escapeChar": "\\"}),
            ),
            FileFormat::Jsonl | FileFormat::Json => (
                TEXT_INPUT,
                TEXT_OUTPUT,
                "org.openx.data.jsonserde.JsonSerDe",
                json!({"paths": self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")}),
            ),
        };
        json!({
            "Columns": self.columns.iter().map(|c| json!({"Name": c.name, "Type": c.kind})).collect::<Vec<_>>(),
            "Location": location,
            "InputFormat": input,
            "OutputFormat": output,
            "Compressed": false,
            "SerdeInfo": {"SerializationLibrary": serde, "Parameters": parameters},
        })
    }

    /// The table as Glue takes it, keeping parameters someone else set on it.
    fn table_input(&self, existing: Option<&Value>) -> Value {
        let mut parameters = existing
            .and_then(|t| t["Parameters"].as_object().cloned())
            .unwrap_or_default();
        let classification = match self.format {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::Jsonl | FileFormat::Json => "json",
        };
        parameters.insert("classification".into(), json!(classification));
        parameters.insert("EXTERNAL".into(), json!("TRUE"));
        if self.format == FileFormat::Csv {
            parameters.insert("skip.header.line.count".into(), json!("1"));
        }
        json!({
            "Name": self.table,
            "Description": self.description,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
            "StorageDescriptor": self.storage(&self.location),
            "PartitionKeys": self.partition_keys.iter().map(|c| json!({"Name": c.name, "Type": c.kind})).collect::<Vec<_>>(),
        })
    }

    fn name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    /// Refuses, before anything is published, what registering could not do: a table
    /// there already whose partition keys are not the layout's, or whose objects are
    /// elsewhere or of another format; and access that Glue denies.
    pub async fn check(&self, access: &Access) -> Result<(), NodeError> {
        let glue = Glue::connect(access, &self.reach).await?;
        match glue
            .get("GetDatabase", json!({"Name": self.database}))
            .await?
        {
            Some(_) => {}
            None => return Ok(()),
        }
        let Some(found) = glue
            .get(
                "GetTable",
                json!({"DatabaseName": self.database, "Name": self.table}),
            )
            .await?
        else {
            return Ok(());
        };
        let table = &found["Table"];
        let keys: Vec<Column> =
            serde_json::from_value(key_list(&table["PartitionKeys"])).unwrap_or_default();
        let names = |keys: &[Column]| {
            let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            match names.is_empty() {
                true => "none".to_string(),
                false => names.join(", "),
            }
        };
        let key_names = |keys: &[Column]| keys.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
        if key_names(&keys) != key_names(&self.partition_keys) {
            return Err(NodeError::msg(format!(
                "the Glue table {} is partitioned by {}, and this node writes partitions by {}: name another table (`catalog.glue.table`), or drop that table in Glue",
                self.name(),
                names(&keys),
                names(&self.partition_keys)
            )));
        }
        let location = table["StorageDescriptor"]["Location"]
            .as_str()
            .unwrap_or_default();
        if location.trim_end_matches('/') != self.location.trim_end_matches('/') {
            return Err(NodeError::msg(format!(
                "the Glue table {} describes the objects at {location}, not {}: name another table (`catalog.glue.table`)",
                self.name(),
                self.location
            )));
        }
        Ok(())
    }

    /// Makes the database and the table when missing, updates the table when the run's
    /// columns differ (Glue keeps the older one as a version), and adds the partitions
    /// the run wrote into that Glue does not have yet; those it has are left as they are.
    pub async fn register(&self, access: &Access) -> Result<Registration, NodeError> {
        let glue = Glue::connect(access, &self.reach).await?;
        let mut changes = Vec::new();
        if glue
            .get("GetDatabase", json!({"Name": self.database}))
            .await?
            .is_none()
        {
            let made = glue
                .call(
                    "CreateDatabase",
                    json!({"DatabaseInput": {"Name": self.database, "Description": "Tables of data written by Tributary flows"}}),
                )
                .await;
            match made {
                Ok(_) => changes.push(format!("created the database {}", self.database)),
                Err(GlueError::Service { code, .. }) if code == "AlreadyExistsException" => {}
                Err(e) => return Err(e.into_node_error(&self.name())),
            }
        }
        let found = glue
            .get(
                "GetTable",
                json!({"DatabaseName": self.database, "Name": self.table}),
            )
            .await?;
        match found {
            None => {
                let made = glue
                    .call(
                        "CreateTable",
                        json!({"DatabaseName": self.database, "TableInput": self.table_input(None)}),
                    )
                    .await;
                match made {
                    Ok(_) => changes.push("created the table".to_string()),
                    Err(GlueError::Service { code, .. }) if code == "AlreadyExistsException" => {}
                    Err(e) => return Err(e.into_node_error(&self.name())),
                }
            }
            Some(found) => {
                let table = &found["Table"];
                let before: Vec<Column> =
                    serde_json::from_value(key_list(&table["StorageDescriptor"]["Columns"]))
                        .unwrap_or_default();
                let mut changed = column_changes(&before, &self.columns);
                let formats = |t: &Value| {
                    let sd = &t["StorageDescriptor"];
                    (
                        sd["InputFormat"].as_str().map(String::from),
                        sd["SerdeInfo"]["SerializationLibrary"]
                            .as_str()
                            .map(String::from),
                    )
                };
                let format_changed =
                    formats(table) != formats(&json!({"StorageDescriptor": self.storage("")}));
                if format_changed {
                    changed.push(format!("the objects are now {}", self.format.extension()));
                }
                if !changed.is_empty() {
                    glue.call(
                        "UpdateTable",
                        json!({"DatabaseName": self.database, "TableInput": self.table_input(Some(table))}),
                    )
                    .await
                    .map_err(|e| e.into_node_error(&self.name()))?;
                    changes.push(format!(
                        "updated the table (Glue keeps the one before as a version): {}",
                        changed.join("; ")
                    ));
                }
            }
        }
        let mut added = Vec::new();
        for chunk in self.partitions.chunks(100) {
            let inputs: Vec<Value> = (chunk.iter())
                .map(|(values, w)| {
                    json!({
                        "Values": values,
                        "StorageDescriptor": self.storage(&format!("{}{}/", self.location, w.folder)),
                    })
                })
                .collect();
            let answer = glue
                .call(
                    "BatchCreatePartition",
                    json!({"DatabaseName": self.database, "TableName": self.table, "PartitionInputList": inputs}),
                )
                .await
                .map_err(|e| e.into_node_error(&self.name()))?;
            let mut refused = Vec::new();
            let mut existing = Vec::new();
            for error in answer["Errors"].as_array().into_iter().flatten() {
                let values: Vec<String> = (error["PartitionValues"].as_array().into_iter())
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                let code = error["ErrorDetail"]["ErrorCode"]
                    .as_str()
                    .unwrap_or_default();
                match code {
                    "AlreadyExistsException" => existing.push(values),
                    _ => refused.push(format!(
                        "{}: {} {}",
                        values.join("/"),
                        code,
                        error["ErrorDetail"]["ErrorMessage"]
                            .as_str()
                            .unwrap_or_default()
                    )),
                }
            }
            if !refused.is_empty() {
                return Err(NodeError::msg(format!(
                    "Glue refused partitions of the table {}: {}",
                    self.name(),
                    refused.join("; ")
                )));
            }
            added.extend(
                (chunk.iter())
                    .filter(|(values, _)| !existing.contains(values))
                    .map(|(_, w)| w.folder.as_str()),
            );
        }
        if !added.is_empty() {
            changes.push(format!(
                "added {} partition{}: {}",
                added.len(),
                if added.len() == 1 { "" } else { "s" },
                some_folders(added.iter().copied())
            ));
        }
        Ok(Registration {
            node: String::new(),
            catalog: "glue".into(),
            table: self.name(),
            changes,
        })
    }
}

const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";

/// Glue's `[{"Name", "Type"}]` as columns.
fn key_list(list: &Value) -> Value {
    Value::Array(
        (list.as_array().into_iter().flatten())
            .map(|c| json!({"name": c["Name"], "type": c["Type"]}))
            .collect(),
    )
}

/// A partition's values from its folder below the destination: the layout's folders as
/// they are, the `name=value` ones unescaped, a missing value as Hive names it.
fn partition_values(folder: &str) -> Vec<String> {
    folder
        .split('/')
        .map(|segment| match segment.split_once('=') {
            Some((_, value)) => {
                unescape_partition_value(value).unwrap_or_else(|| NULL_PARTITION.to_string())
            }
            None => segment.to_string(),
        })
        .collect()
}

/// The Hive type Glue lists for a field. Text formats (CSV, JSON lines) hold dates and
/// times as text that Hive's SerDes do not all parse, so those are `string` there, and
/// CSV holds nothing nested.
pub fn hive_type(t: &DataType, format: FileFormat, text: bool) -> String {
    use DataType::*;
    let inner = |t: &DataType| hive_type(t, format, text);
    match t {
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 | UInt8 => "smallint".into(),
        Int32 | UInt16 => "int".into(),
        Int64 | UInt32 => "bigint".into(),
        UInt64 => "decimal(20,0)".into(),
        Float16 | Float32 => "float".into(),
        Float64 => "double".into(),
        Decimal32(p, s) | Decimal64(p, s) => format!("decimal({p},{s})"),
        Decimal128(p, s) | Decimal256(p, s) if *p <= 38 => format!("decimal({p},{s})"),
        Date32 | Date64 if !text => "date".into(),
        Timestamp(_, _) if !text => "timestamp".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) if !text => "binary".into(),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _)
            if format != FileFormat::Csv =>
        {
            format!("array<{}>", inner(f.data_type()))
        }
        Struct(fields) if format != FileFormat::Csv => {
            let inner: Vec<String> = (fields.iter())
                .map(|f| format!("{}:{}", f.name().to_lowercase(), inner(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(","))
        }
        Map(entries, _) if format != FileFormat::Csv => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                inner(kv[0].data_type()),
                inner(kv[1].data_type())
            ),
            _ => "string".into(),
        },
        Dictionary(_, value) => inner(value),
        _ => "string".into(),
    }
}

/// A partition field's type as Glue lists it.
fn partition_type(t: &DataType) -> &'static str {
    match PartitionKind::of(t) {
        PartitionKind::Integer => "bigint",
        PartitionKind::Date => "date",
        PartitionKind::Boolean => "boolean",
        PartitionKind::Text => "string",
    }
}

/// A Glue request that failed.
enum GlueError {
    /// Glue answered with an error (`__type`).
    Service {
        code: String,
        message: String,
    },
    Other(NodeError),
}

impl GlueError {
    fn into_node_error(self, table: &str) -> NodeError {
        match self {
            GlueError::Other(e) => e,
            GlueError::Service { code, message } => {
                let message = match code.as_str() {
                    "AccessDeniedException" => format!(
                        "Glue denied access for the table {table}: {message}; the connection's credentials need the Glue permissions GetDatabase, CreateDatabase, GetTable, CreateTable, UpdateTable and BatchCreatePartition"
                    ),
                    "UnrecognizedClientException" | "InvalidSignatureException" => format!(
                        "Glue does not accept the connection's credentials ({code}): {message}"
                    ),
                    _ => format!("Glue refused a request for the table {table}: {code}: {message}"),
                };
                NodeError::msg(message)
            }
        }
    }
}

/// Signed JSON requests to Glue.
struct Glue {
    api: Api,
    endpoint: String,
    region: String,
    credentials: Credentials,
}

impl Glue {
    async fn connect(access: &Access, reach: &GlueReach) -> Result<Glue, NodeError> {
        let (config, found) = access.config().await?;
        let region = (reach.region.clone())
            .or_else(|| found.map(|r| r.to_string()))
            .ok_or_else(|| {
                NodeError::msg(
                    "no AWS region is set for Glue: give `catalog.glue.region`, the node or its connection a region, or set AWS_REGION",
                )
            })?;
        // As the AWS SDKs take them, but never the S3 connection's endpoint: that is a
        // store's address (MinIO, a test server), not Glue's.
        let endpoint = (reach.endpoint_url.clone())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_GLUE").ok())
            .filter(|e| !e.trim().is_empty())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| format!("https://glue.{region}.amazonaws.com"));
        crate::auth::http::check_url(&endpoint).map_err(NodeError::msg)?;
        let provider = config.credentials_provider().ok_or_else(|| {
            NodeError::msg("no AWS credentials were found for Glue: name a profile in the S3 connection, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            NodeError::msg(format!(
                "no AWS credentials were found for Glue: name a profile in the S3 connection, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({e})"
            ))
        })?;
        Ok(Glue {
            api: Api::new(None),
            endpoint,
            region,
            credentials,
        })
    }

    /// A `Get…` action's answer; `None` when Glue has no such entity.
    async fn get(&self, action: &str, body: Value) -> Result<Option<Value>, NodeError> {
        match self.call(action, body.clone()).await {
            Ok(v) => Ok(Some(v)),
            Err(GlueError::Service { code, .. }) if code == "EntityNotFoundException" => Ok(None),
            Err(e) => {
                let name = [&body["DatabaseName"], &body["Name"]]
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(".");
                Err(e.into_node_error(&name))
            }
        }
    }

    /// One action. Throttling is tried again after a backoff, as are `5xx` and dropped
    /// connections (by [`Api`]).
    async fn call(&self, action: &str, body: Value) -> Result<Value, GlueError> {
        let body = serde_json::to_vec(&body).expect("a request is JSON");
        let what = format!("Glue {action}");
        for attempt in 1.. {
            let response = self
                .api
                .send_for_answer(&what, |http| self.signed(http, action, &body))
                .await
                .map_err(|e| GlueError::Other(NodeError::from(e)))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| {
                GlueError::Other(NodeError::Transient(format!(
                    "{what}: the answer broke off: {e}"
                )))
            })?;
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(answer);
            }
            let code = (answer["__type"].as_str())
                .or_else(|| answer["code"].as_str())
                .unwrap_or_default();
            // `com.amazonaws.glue#EntityNotFoundException` or the bare name.
            let code = code
                .rsplit(['#', ':'])
                .find(|s| !s.is_empty())
                .unwrap_or("")
                .to_string();
            let message = (answer["Message"].as_str())
                .or_else(|| answer["message"].as_str())
                .map(String::from)
                .unwrap_or_else(|| format!("{status}: {}", preview(&text)));
            let throttled = matches!(
                code.as_str(),
                "ThrottlingException"
                    | "TooManyRequestsException"
                    | "ConcurrentModificationException"
            );
            if throttled && attempt < self.api.retry.attempts {
                tokio::time::sleep(self.api.backoff(attempt)).await;
                continue;
            }
            return Err(match code.is_empty() {
                true => GlueError::Other(NodeError::msg(format!("{what} failed: {message}"))),
                false => GlueError::Service { code, message },
            });
        }
        unreachable!("the loop returns")
    }

    fn signed(&self, http: &reqwest::Client, action: &str, body: &[u8]) -> reqwest::RequestBuilder {
        let target = format!("AWSGlue.{action}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let mut request = http
            .post(&self.endpoint)
            .timeout(Duration::from_secs(60))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let identity = self.credentials.clone().into();
        let signed = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("glue")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())
            .and_then(|params| {
                let signable = SignableRequest::new(
                    "POST",
                    &self.endpoint,
                    headers.into_iter(),
                    SignableBody::Bytes(body),
                )
                .map_err(|e| e.to_string())?;
                sign(signable, &params.into()).map_err(|e| e.to_string())
            });
        match signed {
            Ok(output) => {
                let (instructions, _) = output.into_parts();
                for (name, value) in instructions.headers() {
                    request = request.header(name, value);
                }
                request
            }
            // Sent unsigned, Glue refuses it and says why.
            Err(e) => {
                tracing::warn!("cannot sign a Glue request: {e}");
                request
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Fields, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn hive_types_by_format() {
        let nested = DataType::Struct(Fields::from(vec![Field::new("City", DataType::Utf8, true)]));
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let p = |t: &DataType| hive_type(t, FileFormat::Parquet, false);
        assert_eq!(p(&nested), "struct<city:string>");
        assert_eq!(p(&list), "array<bigint>");
        assert_eq!(p(&ts), "timestamp");
        assert_eq!(p(&DataType::Decimal128(18, 2)), "decimal(18,2)");
        assert_eq!(hive_type(&ts, FileFormat::Jsonl, true), "string");
        assert_eq!(hive_type(&list, FileFormat::Jsonl, true), "array<bigint>");
        assert_eq!(hive_type(&list, FileFormat::Csv, true), "string");
    }

    #[test]
    fn partition_values_from_folders() {
        assert_eq!(
            partition_values("2026/11/27/stage=Proposal%2FQuote/won=__HIVE_DEFAULT_PARTITION__"),
            ["2026", "11", "27", "Proposal/Quote", NULL_PARTITION]
        );
    }

    #[test]
    fn names_glue_takes() {
        assert!(check_name("crm_lake_2"));
        assert!(!check_name("CRM"));
        assert!(!check_name("crm-lake"));
        assert!(!check_name(""));
    }
}
