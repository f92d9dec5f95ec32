//! An AppFlow flow definition as people have it: a `CreateFlow` request (what
//! `aws appflow create-flow --cli-input-json` takes), the answer of `aws appflow
//! describe-flow`, or an `AWS::AppFlow::Flow` resource of a CloudFormation template, in JSON
//! or YAML.
//!
//! CloudFormation spells the same properties in PascalCase (`SourceFlowConfig`,
//! `BucketName`) and writes `TaskProperties` as a list of `{Key, Value}`; [`At`] reads either
//! spelling, so the import is written once. Every property it reads is noted, so that what
//! it never looked at is listed by [`Definition::unread`] instead of being dropped quietly.

use std::cell::RefCell;
use std::collections::HashSet;

use serde_json::{Map, Value};

/// Something wrong with the definition, at a JSON pointer into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path.is_empty() {
            true => f.write_str(&self.message),
            false => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// What the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `CreateFlow` request or a `describe-flow` answer (camelCase).
    Api,
    /// An `AWS::AppFlow::Flow` resource's `Properties` (PascalCase).
    CloudFormation,
}

/// One flow's definition within its file.
pub struct Definition {
    pub kind: Kind,
    /// The template's `Parameters`, by name, for `Ref` and `Fn::Sub`.
    pub parameters: Map<String, Value>,
    root: Value,
    /// The JSON pointer of the flow's definition in the file.
    base: String,
    read: RefCell<Read>,
    /// The template parameters the flow refers to, in order.
    referred: RefCell<Vec<String>>,
}

/// Fields of `describe-flow`'s answer that say how the flow is doing in AWS, not what it
/// does: nothing to carry over, and nothing to report.
const READ_ONLY: &[&str] = &[
    "flowArn",
    "flowStatus",
    "flowStatusMessage",
    "lastRunExecutionDetails",
    "lastRunMetadataCatalogDetails",
    "createdAt",
    "lastUpdatedAt",
    "createdBy",
    "lastUpdatedBy",
    "schemaVersion",
    "clientToken",
    "FlowArn",
    "FlowStatus",
];

/// Reads a file's text as JSON or YAML. YAML's CloudFormation tags (`!Ref X`, `!Sub …`,
/// `!GetAtt a.b`) become their JSON forms (`{"Ref": "X"}`, `{"Fn::Sub": …}`).
pub fn parse(text: &str) -> Result<Value, Problem> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| {
            Problem::new(
                "",
                format!("not JSON: {e} (line {}, column {})", e.line(), e.column()),
            )
        });
    }
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
            .unwrap_or_default();
        Problem::new("", format!("neither JSON nor YAML: {e}{at}"))
    })?;
    Ok(from_yaml(yaml))
}

fn from_yaml(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(from_yaml).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_yaml_ng::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    };
                    (key, from_yaml(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = from_yaml(tagged.value);
            let (key, value) = match (name, value) {
                ("Ref", v) => ("Ref".to_string(), v),
                // `!GetAtt Resource.Attribute` is `["Resource", "Attribute"]` in JSON.
                ("GetAtt", Value::String(s)) => (
                    "Fn::GetAtt".to_string(),
                    Value::Array(s.splitn(2, '.').map(Value::from).collect()),
                ),
                (other, v) => (format!("Fn::{other}"), v),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    }
}

/// A CloudFormation template's AppFlow flows, by logical id, in the file's order.
pub fn template_flows(root: &Value) -> Vec<String> {
    root.get("Resources")
        .and_then(Value::as_object)
        .map(|resources| {
            resources
                .iter()
                .filter(|(_, r)| r["Type"] == "AWS::AppFlow::Flow")
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A template flow's name and description, in a line: `orders-to-lake — Orders of the shop`.
pub fn about_template_flow(root: &Value, id: &str) -> String {
    let properties = &root["Resources"][id]["Properties"];
    let text = |key: &str| properties[key].as_str().unwrap_or_default();
    match (text("FlowName"), text("Description")) {
        (name, "") => name.to_string(),
        ("", description) => description.to_string(),
        (name, description) => format!("{name} — {description}"),
    }
}

impl Definition {
    /// The definition of one flow in a parsed file: the file itself for the API's shapes;
    /// for a template, its only flow or the one `flow` names (a logical id).
    pub fn of(root: Value, flow: Option<&str>) -> Result<Definition, Problem> {
        if !root.is_object() {
            return Err(Problem::new(
                "",
                "an AppFlow definition is a JSON object (or a YAML mapping)",
            ));
        }
        if root.get("Resources").is_some() {
            let flows = template_flows(&root);
            let id = match (flow, flows.as_slice()) {
                (_, []) => {
                    return Err(Problem::new(
                        "/Resources",
                        "the template has no resource of type AWS::AppFlow::Flow",
                    ));
                }
                (Some(wanted), _) => flows.iter().find(|f| *f == wanted).ok_or_else(|| {
                    Problem::new(
                        "/Resources",
                        format!(
                            "the template has no flow `{wanted}`; its flows are {}",
                            flows.join(", ")
                        ),
                    )
                })?,
                (None, [one]) => one,
                (None, _) => {
                    return Err(Problem::new(
                        "/Resources",
                        format!(
                            "the template holds {} flows: {}; choose one with --flow",
                            flows.len(),
                            flows.join(", ")
                        ),
                    ));
                }
            }
            .clone();
            let base = format!("/Resources/{}/Properties", escape(&id));
            if root.pointer(&base).is_none_or(|p| !p.is_object()) {
                return Err(Problem::new(
                    format!("/Resources/{}", escape(&id)),
                    "the flow resource has no Properties",
                ));
            }
            let parameters = root
                .get("Parameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            return Ok(Definition {
                kind: Kind::CloudFormation,
                parameters,
                root,
                base,
                read: RefCell::default(),
                referred: RefCell::default(),
            });
        }
        if root.get("sourceFlowConfig").is_none() && root.get("flowName").is_none() {
            return Err(Problem::new(
                "",
                "this is not an AppFlow flow: a CreateFlow request or describe-flow answer has `flowName` and `sourceFlowConfig`, a CloudFormation template has `Resources`",
            ));
        }
        Ok(Definition {
            kind: Kind::Api,
            parameters: Map::new(),
            root,
            base: String::new(),
            read: RefCell::default(),
            referred: RefCell::default(),
        })
    }

    /// The flow's definition itself.
    pub fn flow(&self) -> At<'_> {
        let value = match self.base.is_empty() {
            true => &self.root,
            false => self.root.pointer(&self.base).expect("checked in `of`"),
        };
        At {
            def: self,
            value,
            path: self.base.clone(),
        }
    }

    /// The logical id of a template's flow.
    pub fn logical_id(&self) -> Option<String> {
        (self.kind == Kind::CloudFormation).then(|| {
            let id = self.base.trim_start_matches("/Resources/");
            unescape(id.trim_end_matches("/Properties"))
        })
    }

    /// Every property of the flow the import did not read, at its path: what it carries
    /// over nothing of.
    pub fn unread(&self) -> Vec<String> {
        let mut out = Vec::new();
        let read = self.read.borrow();
        walk(self.flow().value, &self.base, true, &read, &mut out);
        out
    }

    /// The template parameters the flow refers to, with their defaults (empty without
    /// one): the flow's parameters.
    pub fn referred_parameters(&self) -> Vec<(String, String)> {
        self.referred
            .borrow()
            .iter()
            .map(|name| {
                let default = match self.parameters[name].get("Default") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                };
                (name.clone(), default)
            })
            .collect()
    }

    fn note(&self, path: &str) {
        self.read.borrow_mut().visited.insert(path.to_string());
    }
}

/// Lists what below `path` was not visited: a property or item never looked at is listed
/// whole; one visited is looked into, unless it was taken whole.
fn walk(value: &Value, path: &str, top: bool, read: &Read, out: &mut Vec<String>) {
    if read.whole.contains(path) {
        return;
    }
    let children: Vec<(String, &Value, bool)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(key, v)| {
                let skip = top && READ_ONLY.contains(&key.as_str());
                (format!("{path}/{}", escape(key)), v, skip)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{path}/{i}"), v, false))
            .collect(),
        _ => return,
    };
    for (p, v, skip) in children {
        // An empty value says nothing that could be lost.
        let empty = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        match (skip || empty, read.visited.contains(&p)) {
            (true, _) => {}
            (false, true) => walk(v, &p, false, read, out),
            (false, false) => out.push(p),
        }
    }
}

/// What the import looked at.
#[derive(Default)]
struct Read {
    visited: HashSet<String>,
    /// Taken with everything below.
    whole: HashSet<String>,
}

/// A JSON pointer's escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unescape(key: &str) -> String {
    key.replace("~1", "/").replace("~0", "~")
}

/// The PascalCase spelling CloudFormation gives an API property: `bucketName` →
/// `BucketName`.
fn pascal(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A place in the definition: a value and its JSON pointer.
#[derive(Clone)]
pub struct At<'d> {
    def: &'d Definition,
    pub value: &'d Value,
    pub path: String,
}

impl<'d> At<'d> {
    /// The property of this name (as the API spells it), in either spelling; noted as read.
    pub fn get(&self, name: &str) -> Option<At<'d>> {
        let map = self.value.as_object()?;
        let (key, value) = map
            .get_key_value(name)
            .or_else(|| map.get_key_value(&pascal(name)))?;
        let path = format!("{}/{}", self.path, escape(key));
        self.def.note(&path);
        Some(At {
            def: self.def,
            value,
            path,
        })
    }

    /// Whether the definition is a CloudFormation resource, which nests a few things
    /// differently from the API.
    pub fn in_template(&self) -> bool {
        self.def.kind == Kind::CloudFormation
    }

    /// Notes this value and everything below it as read.
    pub fn take(&self) {
        self.def.note(&self.path);
        self.def.read.borrow_mut().whole.insert(self.path.clone());
    }

    /// A problem at this place.
    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem::new(self.path.clone(), message)
    }

    /// The property's text, when it has one.
    pub fn text(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(at) => at.as_text().map(Some),
        }
    }

    /// The property's text; a problem when it is missing.
    pub fn required_text(&self, name: &str) -> Result<String, Problem> {
        self.text(name)?
            .ok_or_else(|| self.problem(format!("`{name}` is missing")))
    }

    /// This value as text: a string, a number or a boolean as written, or a template
    /// parameter it refers to as `${name}`.
    pub fn as_text(&self) -> Result<String, Problem> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Object(m) if self.def.kind == Kind::CloudFormation => {
                self.take();
                intrinsic(self, m)
            }
            other => Err(self.problem(format!("expected text, found {}", kind_of(other)))),
        }
    }

    /// The property as a boolean (`true`, or the text `"true"`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(at) => match at.value {
                Value::Bool(b) => Ok(Some(*b)),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
                other => {
                    Err(at.problem(format!("expected true or false, found {}", kind_of(other))))
                }
            },
        }
    }

    /// The property as a number (a JSON number or its text).
    pub fn number(&self, name: &str) -> Result<Option<f64>, Problem> {
        match self.get(name) {
            None => Ok(None),
            Some(at) => {
                let n = match at.value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                n.map(Some).ok_or_else(|| {
                    at.problem(format!("expected a number, found {}", kind_of(at.value)))
                })
            }
        }
    }

    /// The items of a list property; none when it is absent.
    pub fn items(&self, name: &str) -> Result<Vec<At<'d>>, Problem> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(at) => at.list(),
        }
    }

    /// The items of this list.
    pub fn list(&self) -> Result<Vec<At<'d>>, Problem> {
        let items = self.value.as_array().ok_or_else(|| {
            self.problem(format!("expected a list, found {}", kind_of(self.value)))
        })?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let path = format!("{}/{i}", self.path);
                self.def.note(&path);
                At {
                    def: self.def,
                    value,
                    path,
                }
            })
            .collect())
    }

    /// A list of texts.
    pub fn texts(&self, name: &str) -> Result<Vec<String>, Problem> {
        self.items(name)?.iter().map(At::as_text).collect()
    }

    /// The properties of an object as (key, place), in order.
    pub fn entries(&self) -> Vec<(String, At<'d>)> {
        let Some(map) = self.value.as_object() else {
            return Vec::new();
        };
        map.iter()
            .map(|(key, value)| {
                let path = format!("{}/{}", self.path, escape(key));
                self.def.note(&path);
                (
                    key.clone(),
                    At {
                        def: self.def,
                        value,
                        path,
                    },
                )
            })
            .collect()
    }

    /// A task's `taskProperties`: the API's map, or CloudFormation's list of `{Key, Value}`;
    /// each with its place.
    pub fn task_properties(&self) -> Result<Vec<(String, At<'d>)>, Problem> {
        let Some(at) = self.get("taskProperties") else {
            return Ok(Vec::new());
        };
        match at.value {
            Value::Object(_) => Ok(at.entries()),
            Value::Array(_) => {
                let mut out = Vec::new();
                for pair in at.list()? {
                    let key = pair.required_text("key")?;
                    let value = pair
                        .get("value")
                        .ok_or_else(|| pair.problem("`Value` is missing"))?;
                    out.push((key, value));
                }
                Ok(out)
            }
            other => Err(at.problem(format!(
                "expected a map of task properties, found {}",
                kind_of(other)
            ))),
        }
    }
}

/// A template's `{"Ref": "Param"}` or `{"Fn::Sub": "…${Param}…"}` as flow text with
/// `${Param}` placeholders; other functions cannot be known before AWS deploys the stack.
fn intrinsic(at: &At<'_>, m: &Map<String, Value>) -> Result<String, Problem> {
    let parameter = |name: &str| {
        if !at.def.parameters.contains_key(name) {
            return Err(at.problem(format!(
                "refers to `{name}`, which is not a parameter of the template; only parameters become flow parameters"
            )));
        }
        let mut referred = at.def.referred.borrow_mut();
        if !referred.iter().any(|r| r == name) {
            referred.push(name.to_string());
        }
        Ok(())
    };
    match m.iter().next() {
        Some((k, Value::String(name))) if k == "Ref" && m.len() == 1 => {
            parameter(name)?;
            Ok(format!("${{{name}}}"))
        }
        Some((k, Value::String(text))) if k == "Fn::Sub" && m.len() == 1 => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let end = rest[start..]
                    .find('}')
                    .ok_or_else(|| at.problem("an unclosed `${` in Fn::Sub"))?;
                parameter(&rest[start + 2..start + end])?;
                rest = &rest[start + end + 1..];
            }
            Ok(text.clone())
        }
        Some((k, _)) => Err(at.problem(format!(
            "`{k}` is worked out by CloudFormation when it deploys the stack; write the value itself"
        ))),
        None => Err(at.problem("expected text, found an empty object")),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn either_spelling_is_read_and_what_is_not_read_is_listed() {
        let def = Definition::of(
            json!({"flowName": "f", "sourceFlowConfig": {"connectorType": "S3", "extra": 1},
                   "flowArn": "arn:aws:appflow:…", "kmsArn": "k"}),
            None,
        )
        .unwrap();
        let flow = def.flow();
        let source = flow.get("sourceFlowConfig").unwrap();
        assert_eq!(source.required_text("connectorType").unwrap(), "S3");
        assert_eq!(flow.required_text("flowName").unwrap(), "f");
        assert_eq!(def.unread(), ["/sourceFlowConfig/extra", "/kmsArn"]);
    }

    #[test]
    fn a_template_in_yaml_gives_its_flows_and_parameters() {
        let text = r#"
Parameters:
  Bucket: {Type: String, Default: lake}
Resources:
  First:
    Type: AWS::AppFlow::Flow
    Properties:
      FlowName: one
      Tasks:
        - TaskType: Map
          SourceFields: [Name]
          TaskProperties:
            - Key: DESTINATION_DATA_TYPE
              Value: string
      DestinationFlowConfigList:
        - DestinationConnectorProperties:
            S3: {BucketName: !Ref Bucket, BucketPrefix: !Sub "out/${Bucket}"}
  Second:
    Type: AWS::AppFlow::Flow
    Properties: {FlowName: two, SourceFlowConfig: {ConnectorType: S3}}
  Role: {Type: AWS::IAM::Role}
"#;
        let root = parse(text).unwrap();
        assert_eq!(template_flows(&root), ["First", "Second"]);
        let both = Definition::of(root.clone(), None).err().unwrap();
        assert!(
            both.message
                .contains("First, Second; choose one with --flow"),
            "{both}"
        );
        let def = Definition::of(root, Some("First")).unwrap();
        assert_eq!(def.logical_id().as_deref(), Some("First"));
        let flow = def.flow();
        let task = &flow.items("tasks").unwrap()[0];
        let props = task.task_properties().unwrap();
        assert_eq!(props[0].0, "DESTINATION_DATA_TYPE");
        assert_eq!(props[0].1.as_text().unwrap(), "string");
        assert_eq!(
            props[0].1.path,
            "/Resources/First/Properties/Tasks/0/TaskProperties/0/Value"
        );
        let s3 = flow.items("destinationFlowConfigList").unwrap()[0]
            .get("destinationConnectorProperties")
            .unwrap()
            .get("S3")
            .unwrap();
        assert_eq!(s3.required_text("bucketName").unwrap(), "${Bucket}");
        assert_eq!(s3.required_text("bucketPrefix").unwrap(), "out/${Bucket}");
    }

    #[test]
    fn what_cannot_be_read_is_said_with_its_place() {
        assert!(parse("{\"a\": ").unwrap_err().message.contains("line 1"));
        let not_flow = Definition::of(json!({"name": "x"}), None).err().unwrap();
        assert!(not_flow.message.contains("not an AppFlow flow"));
        let def = Definition::of(
            json!({"Resources": {"F": {"Type": "AWS::AppFlow::Flow",
                   "Properties": {"FlowName": {"Fn::GetAtt": ["X", "Y"]}}}}}),
            None,
        )
        .unwrap();
        let err = def.flow().required_text("flowName").unwrap_err();
        assert_eq!(err.path, "/Resources/F/Properties/FlowName");
        assert!(err.message.contains("Fn::GetAtt"), "{err}");
    }
}
