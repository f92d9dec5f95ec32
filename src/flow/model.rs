use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The flow file format this version reads and writes.
pub const FORMAT: &str = "tributary.flow/1";

/// A flow: sources, transforms and destinations joined by edges, plus how it is started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Always `tributary.flow/1` for this version.
    pub format: String,
    /// What the user calls this flow.
    pub name: String,
    /// A longer explanation, shown in the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts a run.
    #[serde(default)]
    pub trigger: Trigger,
    /// Values for `${name}` placeholders in node configs; `--param name=value` overrides them.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, String>,
    /// The percent of the records read that may be set aside as rejected (bad JSON, a
    /// value of the wrong type…) before the run fails and publishes nothing; 50 unless set.
    /// 0 fails a run on any rejected record; 100 never fails one for rejections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_threshold: Option<u8>,
    /// How `tributary serve` runs the flow on its trigger: waits, retries, deactivation.
    #[serde(default, skip_serializing_if = "ServiceSettings::is_default")]
    pub service: ServiceSettings,
    /// Who hears of the runs `tributary serve` makes: on failure, success, deactivation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    /// The nodes on the canvas.
    pub nodes: Vec<Node>,
    /// Connections between nodes: records leave `from` and enter `to`.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// What starts a run, after AppFlow's trigger types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Runs only when the user asks: the Run button or `tributary run`.
    #[default]
    OnDemand,
    /// Runs on a schedule, written as AppFlow writes it: `rate(15 minutes)`, `rate(1 days)`,
    /// `cron(30 2 * * ? *)` (minute hour day-of-month month day-of-week year), or a
    /// standard five-field cron.
    Schedule {
        /// The schedule expression.
        expression: String,
        /// The IANA time zone a cron expression's times are in (`Europe/Berlin`); UTC
        /// when absent. A local time the spring-forward change skips does not run; one the
        /// fall-back change repeats runs once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_zone: Option<String>,
        /// No run before this instant (`2026-12-01T08:00:00Z`, or a local time in the time
        /// zone); a `rate` counts its intervals from it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        /// No run after this instant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<String>,
        /// What each run reads: `incremental` (the default) only what is new since the
        /// last run, `complete` everything, every time.
        #[serde(default, skip_serializing_if = "PullMode::is_incremental")]
        pull_mode: PullMode,
        /// How far back the very first incremental run reads (AppFlow's
        /// `firstExecutionFrom`): an RFC 3339 instant, or a local time in the time zone.
        /// Incremental sources without a saved watermark start there instead of reading
        /// everything; later runs go on from their watermark.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_run_from: Option<String>,
    },
    /// Runs when something happens: a file arrives in a folder, a request comes in. Only
    /// `tributary serve` listens for events.
    Event(Event),
}

/// What an event trigger listens for, by its `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A new or changed file in a folder. One run per file, once the file has stopped
    /// changing; the run finds the file's path in the parameter `trigger_file`.
    File {
        /// The folder watched; relative to the flow file's folder.
        folder: String,
        /// Which files count: a glob on the file name (`*.csv`); every file when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<String>,
        /// Seconds a file must stay unchanged before it is taken, so a file still being
        /// written is not read half-way; 2 unless set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settle_seconds: Option<u64>,
    },
    /// New or changed objects under a prefix of an S3 bucket, found by listing it every
    /// `interval_seconds`: a run starts when something changed, and the flow's
    /// incremental `source.s3` reads what is new.
    S3 {
        /// A connection of connector `s3`; the AWS environment when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        bucket: String,
        #[serde(default)]
        prefix: String,
        /// Seconds between two listings; 60 unless set, 10 at least.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        /// An S3-compatible store, e.g. `http://127.0.0.1:9000`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
    },
    /// New or changed records of a Salesforce object (by `SystemModstamp`), found by
    /// asking every `interval_seconds`: a run starts when there are some, and the flow's
    /// incremental `source.salesforce` reads them — AppFlow's "new Salesforce lead" flows,
    /// locally.
    Salesforce {
        /// A logged-in connection of connector `salesforce`.
        connection: String,
        /// The object's API name: `Lead`, `Opportunity`, `Invoice__c`.
        object: String,
        /// Seconds between two questions; 60 unless set, 60 at least.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_seconds: Option<u64>,
    },
    /// A signed POST to the service's `/hooks/<flow name>`. The body (JSON) is saved as
    /// JSON lines, one record per element of an array, whose path the run finds in the
    /// parameter `trigger_file`; an object's text and number fields are parameters too.
    Webhook {
        /// The connection (connector `webhook`) whose key signs requests: the sender puts
        /// the Unix time in `X-Tributary-Timestamp` and `sha256=` and the hex HMAC-SHA256
        /// of `<timestamp>.<body>` in `X-Tributary-Signature`.
        connection: String,
        /// The largest body taken, in bytes; 1 MiB unless set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_body_bytes: Option<u64>,
    },
}

/// A notification of a run's end, sent by `tributary serve`. One that cannot be sent is
/// tried again and logged; it never fails the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "send", rename_all = "snake_case", deny_unknown_fields)]
pub enum Alert {
    /// POSTs `{"event", "flow", "reason", "run"}` (the run record) as JSON to `url`, as
    /// EventBridge would hand it on.
    Http {
        url: String,
        /// When: `failure`, `success`, `deactivation`; on failure and deactivation unless
        /// set.
        #[serde(default = "AlertOn::failures")]
        on: Vec<AlertOn>,
        /// A connection (connector `webhook`) whose key signs the request, as incoming
        /// webhooks are signed: `X-Tributary-Timestamp` and `X-Tributary-Signature`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
    },
    /// A message in a Slack channel through an incoming webhook.
    Slack {
        /// A connection (connector `webhook`) whose key is the incoming webhook's URL,
        /// which is a secret: anyone with it can post.
        connection: String,
        #[serde(default = "AlertOn::failures")]
        on: Vec<AlertOn>,
    },
    /// A notification on the desktop of the machine the service runs on.
    Desktop {
        #[serde(default = "AlertOn::failures")]
        on: Vec<AlertOn>,
    },
}

impl Alert {
    pub fn on(&self) -> &[AlertOn] {
        match self {
            Alert::Http { on, .. } | Alert::Slack { on, .. } | Alert::Desktop { on } => on,
        }
    }
}

/// What an alert is sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOn {
    /// A run failed (after its retries).
    Failure,
    Success,
    /// The service deactivated the flow after failures in a row.
    Deactivation,
}

impl AlertOn {
    fn failures() -> Vec<AlertOn> {
        vec![AlertOn::Failure, AlertOn::Deactivation]
    }

    pub fn name(self) -> &'static str {
        match self {
            AlertOn::Failure => "failure",
            AlertOn::Success => "success",
            AlertOn::Deactivation => "deactivation",
        }
    }
}

/// What a scheduled run reads, as AppFlow's `dataPullMode` says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullMode {
    /// Only the records new or changed since the last successful run.
    #[default]
    Incremental,
    /// Every record, every run.
    Complete,
}

impl PullMode {
    fn is_incremental(&self) -> bool {
        *self == PullMode::Incremental
    }
}

/// How `tributary serve` runs the flow when its trigger fires. Every setting has a default
/// that suits most flows, so the block is usually left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    /// When the trigger fires while a run of the flow is still going: `wait` (the
    /// default) runs it after that one (a schedule's due times fold into one run, every
    /// event is a run of its own), `skip` records the trigger as skipped.
    pub when_running: WhenRunning,
    /// After the service was down across run times: `run_once` (the default) runs once
    /// for all of them, `skip` waits for the next run time.
    pub missed: Missed,
    /// How often a run that failed for a passing reason (the network, a service's 5xx or
    /// 429, a timeout) is tried again; a flow that is wrong is never retried. 2 unless set.
    pub retries: u32,
    /// Seconds before the first retry; each further retry waits twice as long. 60 unless
    /// set.
    pub retry_after_seconds: u64,
    /// Failed runs in a row after which the flow is deactivated, as AppFlow's
    /// `flowErrorDeactivationThreshold`; 10 unless set, 0 never deactivates.
    pub deactivate_after: u32,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            when_running: WhenRunning::Wait,
            missed: Missed::RunOnce,
            retries: 2,
            retry_after_seconds: 60,
            deactivate_after: 10,
        }
    }
}

impl ServiceSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// See [`ServiceSettings::when_running`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenRunning {
    Wait,
    Skip,
}

/// See [`ServiceSettings::missed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    RunOnce,
    Skip,
}

impl Trigger {
    /// A schedule of `expression`, in UTC, unbounded.
    pub fn schedule(expression: &str) -> Trigger {
        Trigger::Schedule {
            expression: expression.into(),
            time_zone: None,
            start: None,
            end: None,
            pull_mode: PullMode::Incremental,
            first_run_from: None,
        }
    }

    /// The trigger as a person reads it: `on demand`, or the schedule and its time zone.
    pub fn in_words(&self) -> String {
        match self {
            Trigger::OnDemand => "on demand".into(),
            Trigger::Schedule {
                expression,
                time_zone,
                ..
            } => match time_zone {
                Some(zone) => format!("{expression} in {zone}"),
                None => expression.clone(),
            },
            Trigger::Event(Event::File {
                folder, pattern, ..
            }) => format!(
                "a new file {} in {folder}",
                pattern.as_deref().unwrap_or("*")
            ),
            Trigger::Event(Event::Webhook { .. }) => "a signed webhook request".into(),
            Trigger::Event(Event::Salesforce { object, .. }) => {
                format!("new or changed Salesforce {object} records")
            }
            Trigger::Event(Event::S3 { bucket, prefix, .. }) => {
                format!("new objects under s3://{bucket}/{prefix}")
            }
        }
    }

    /// Where incremental sources without a watermark start, for a scheduled flow that
    /// says so; or why `first_run_from` is not an instant.
    pub fn first_run_from(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, super::schedule::SettingError> {
        let Trigger::Schedule {
            first_run_from: Some(text),
            time_zone,
            ..
        } = self
        else {
            return Ok(None);
        };
        super::schedule::instant(text, time_zone.as_deref(), "first_run_from").map(Some)
    }

    /// When the flow runs by itself: `None` on demand, otherwise its schedule or why the
    /// schedule's settings are wrong.
    pub fn schedule_of(
        &self,
    ) -> Option<Result<super::schedule::Schedule, super::schedule::SettingError>> {
        match self {
            Trigger::OnDemand | Trigger::Event(_) => None,
            Trigger::Schedule {
                expression,
                time_zone,
                start,
                end,
                ..
            } => Some(super::schedule::Schedule::new(
                expression,
                time_zone.as_deref(),
                start.as_deref(),
                end.as_deref(),
            )),
        }
    }
}

/// One node on the canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the flow; edges and messages refer to the node by it.
    pub id: String,
    /// The node type: `source.<name>`, `transform.<name>` or `destination.<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the canvas shows; the node type's title when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Where the node sits on the canvas, in points.
    #[serde(default, with = "position")]
    #[schemars(with = "[f32; 2]")]
    pub position: [f32; 2],
    /// The node type's settings; `tributary schema` documents each type's fields.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
}

impl Node {
    /// The node as the user knows it: its label, else its id.
    pub fn name(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.id)
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// An edge: records flow from one node's output into another node's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The id of the node the records come from.
    pub from: String,
    /// The id of the node the records go to.
    pub to: String,
}

/// Canvas positions are written as whole numbers when they are whole, so that a file
/// written by hand (`[80, 120]`) is saved back unchanged.
mod position {
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeTuple};

    pub fn serialize<S: Serializer>(p: &[f32; 2], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        for v in p {
            if v.fract() == 0.0 && v.abs() < 1e9 {
                t.serialize_element(&(*v as i64))?;
            } else {
                t.serialize_element(v)?;
            }
        }
        t.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; 2], D::Error> {
        <[f32; 2]>::deserialize(d)
    }
}
