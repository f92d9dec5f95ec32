//! Forms generated from a node type's JSON Schema, so every node type gets an inspector
//! without code of its own: text, numbers, switches, choices, lists and nested groups,
//! and a list of the incoming fields wherever the config names a field (`x-field` in the
//! schema).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::LazyLock;

use egui::{ComboBox, DragValue, Id, Response, RichText, TextEdit, Ui, UiBuilder};
use serde_json::{Map, Value, json};

use super::code;
use super::connection_state::ConnectionsState;
use crate::node::NodeType;
use crate::registry;

/// The JSON pointers of a node type's settings that name a file or a folder (`x-path`), for
/// keeping them right when a flow moves.
pub fn path_settings(kind: &str) -> Vec<String> {
    let Some(schema) = schema_of(kind) else {
        return Vec::new();
    };
    let root = resolve(schema, schema);
    root.get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, p)| resolve(schema, p).get("x-path").is_some())
        .map(|(name, _)| format!("/{name}"))
        .collect()
}

/// Each node type's config schema, with its definitions beside it.
static SCHEMAS: LazyLock<HashMap<&'static str, Value>> = LazyLock::new(|| {
    registry::all()
        .iter()
        .map(|t| {
            let mut generator = schemars::SchemaGenerator::default();
            let mut schema = t.config_schema(&mut generator).to_value();
            let defs: Map<String, Value> = generator.definitions().clone().into_iter().collect();
            schema["$defs"] = Value::Object(defs);
            (t.name, schema)
        })
        .collect()
});

pub fn schema_of(kind: &str) -> Option<&'static Value> {
    SCHEMAS.get(kind)
}

/// A config to start a new node with: every required setting at its first sensible value.
pub fn default_config(t: &NodeType) -> Value {
    let root = schema_of(t.name).expect("every registered type has a schema");
    default_value(root, root)
}

/// Follows a `$ref`; keeps the referring schema's own description and extensions.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> std::borrow::Cow<'a, Value> {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return std::borrow::Cow::Borrowed(schema);
    };
    let name = reference.trim_start_matches("#/$defs/");
    let mut target = root["$defs"]
        .get(name)
        .cloned()
        .unwrap_or(Value::Bool(true));
    if let (Value::Object(t), Value::Object(s)) = (&mut target, schema) {
        for (k, v) in s {
            if k != "$ref" {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    std::borrow::Cow::Owned(target)
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The schema without its `null` alternative, when it has one (an optional setting).
fn without_null(schema: &Value) -> Option<Value> {
    let ts = types(schema);
    if ts.len() == 2 && ts.contains(&"null") {
        let mut s = schema.clone();
        s["type"] = json!(ts.into_iter().find(|t| *t != "null"));
        return Some(s);
    }
    let any = schema.get("anyOf").and_then(Value::as_array)?;
    if any.len() == 2 && any.iter().any(|s| s.get("type") == Some(&json!("null"))) {
        let mut s = any
            .iter()
            .find(|s| s.get("type") != Some(&json!("null")))?
            .clone();
        if let (Value::Object(inner), Value::Object(outer)) = (&mut s, schema) {
            for (k, v) in outer {
                if k != "anyOf" {
                    inner.entry(k.clone()).or_insert(v.clone());
                }
            }
        }
        return Some(s);
    }
    None
}

/// The choices of an enum: (value, description).
fn choices(schema: &Value) -> Option<Vec<(String, Option<String>)>> {
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return Some(
            e.iter()
                .filter_map(|v| v.as_str().map(|s| (s.to_string(), None)))
                .collect(),
        );
    }
    let options = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)?;
    let mut out = Vec::new();
    for option in options {
        let description = option
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(c) = option.get("const").and_then(Value::as_str) {
            out.push((c.to_string(), description));
        } else if let Some(e) = option.get("enum").and_then(Value::as_array) {
            out.extend(
                e.iter()
                    .filter_map(|v| v.as_str().map(|s| (s.to_string(), description.clone()))),
            );
        } else if option.get("pattern").is_none() {
            return None;
        }
        // A pattern is the general form of what the list offers (any `decimal(p,s)`),
        // written in the flow file.
    }
    (!out.is_empty()).then_some(out)
}

pub fn default_value(root: &Value, schema: &Value) -> Value {
    let schema = resolve(root, schema);
    if let Some(d) = schema.get("default") {
        return d.clone();
    }
    if without_null(&schema).is_some() {
        return Value::Null;
    }
    if let Some(c) = choices(&schema) {
        return c.first().map_or(Value::Null, |(v, _)| json!(v));
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        return any.first().map_or(Value::Null, |s| default_value(root, s));
    }
    if let Some((tag, variants)) = tagged_union(root, &schema) {
        return variants
            .first()
            .map_or(Value::Null, |v| variant_default(root, &tag, v));
    }
    match types(&schema).first().copied() {
        Some("object") => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut obj = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    if required.contains(&name.as_str()) {
                        obj.insert(name.clone(), default_value(root, prop));
                    }
                }
            }
            Value::Object(obj)
        }
        Some("array") => json!([]),
        Some("string") => json!(""),
        Some("integer") => json!(0),
        Some("number") => json!(0.0),
        Some("boolean") => json!(false),
        _ => Value::Null,
    }
}

/// One variant of a tagged union: its tag value, what it means, its schema.
struct Variant {
    name: String,
    description: Option<String>,
    schema: Value,
}

/// A `oneOf` of objects told apart by one property's constant, as serde writes an
/// internally tagged enum (`{"style": "cursor", "path": …}`): the tag's name and the
/// variants.
fn tagged_union(root: &Value, schema: &Value) -> Option<(String, Vec<Variant>)> {
    let one_of = schema.get("oneOf").and_then(Value::as_array)?;
    let mut tag: Option<String> = None;
    let mut variants = Vec::new();
    for option in one_of {
        let option = resolve(root, option).into_owned();
        let props = option.get("properties")?.as_object()?;
        let (key, value) = props.iter().find_map(|(k, p)| {
            let p = resolve(root, p);
            p.get("const")
                .and_then(Value::as_str)
                .map(|c| (k.clone(), c.to_string()))
        })?;
        if tag.get_or_insert_with(|| key.clone()) != &key {
            return None;
        }
        let description = option
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
        variants.push(Variant {
            name: value,
            description,
            schema: option,
        });
    }
    Some((tag?, variants))
}

fn variant_default(root: &Value, tag: &str, variant: &Variant) -> Value {
    let mut value = default_value(root, &without_tag(&variant.schema, tag));
    if let Value::Object(o) = &mut value {
        // Every setting of the variant with a default shows it, not only the required.
        if let Some(props) = variant.schema.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                if let Some(d) = resolve(root, p).get("default") {
                    o.entry(k.clone()).or_insert(d.clone());
                }
            }
        }
        o.insert(tag.to_string(), json!(variant.name));
    }
    value
}

/// A variant's schema without its tag, for drawing its other settings.
fn without_tag(variant: &Value, tag: &str) -> Value {
    let mut v = variant.clone();
    if let Some(Value::Object(props)) = v.get_mut("properties") {
        props.remove(tag);
    }
    if let Some(Value::Array(required)) = v.get_mut("required") {
        required.retain(|r| r != tag);
    }
    v
}

/// A choice of variant, then the chosen variant's settings.
fn edit_tagged(
    ui: &mut Ui,
    root: &Value,
    tag: &str,
    variants: &[Variant],
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let current = value
        .get(tag)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let options: Vec<(String, Option<String>)> = variants
        .iter()
        .map(|v| (v.name.clone(), v.description.clone()))
        .collect();
    let mut chosen = json!(current);
    let mut changed = false;
    if choose(ui, &options, &mut chosen, &format!("{path}/{tag}")) {
        let name = chosen.as_str().unwrap_or_default();
        if let Some(variant) = variants.iter().find(|v| v.name == name) {
            *value = variant_default(root, tag, variant);
            changed = true;
        }
    }
    let name = value
        .get(tag)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(variant) = variants.iter().find(|v| v.name == name) {
        let settings = without_tag(&variant.schema, tag);
        let has_settings = settings
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_settings {
            ui.indent(format!("{path}/variant"), |ui| {
                changed |= edit_object(ui, root, &settings, value, cx, path);
            });
        }
    }
    changed
}

/// What a form needs besides the schema and the value.
pub struct FormContext<'a> {
    /// The fields the node receives: (name, type in words).
    pub fields: &'a [(String, String)],
    /// Set when the user asked to browse for a file or folder: (JSON pointer into the
    /// config, whether a folder).
    pub browse: Cell<Option<(String, bool)>>,
    /// The connections there are, for settings that name one.
    pub connections: Option<&'a ConnectionsState>,
    /// Values seen in the sample of the node's input, per text field: a filter's value
    /// can be picked from them.
    pub values: &'a [(String, Vec<String>)],
    /// Set when the user asked for a new connection of this connector.
    pub new_connection: Cell<Option<String>>,
    /// Top-level settings the inspector shows its own way instead.
    pub hidden: &'a [&'a str],
    /// The node's problems that name a setting: (JSON pointer into the config, message).
    /// Each is drawn under the setting it names, so problems coming and going never move
    /// the field being typed in.
    pub problems: Vec<(String, String)>,
    /// Which of `problems` have been drawn; the rest go below the form.
    drawn: RefCell<Vec<bool>>,
    /// The heading of the setting being drawn, which names its input for screen readers
    /// (and for tests).
    heading: Cell<Option<Id>>,
    /// Names the node itself adds, which its code may use besides the incoming fields: in
    /// a list of named items (a formula's fields) those before the one being drawn; beside
    /// a `fields` map (a script's) its keys.
    own_names: RefCell<Vec<String>>,
}

impl<'a> FormContext<'a> {
    pub fn new(fields: &'a [(String, String)]) -> Self {
        Self {
            fields,
            browse: Cell::new(None),
            connections: None,
            values: &[],
            new_connection: Cell::new(None),
            hidden: &[],
            problems: Vec::new(),
            drawn: RefCell::new(Vec::new()),
            heading: Cell::new(None),
            own_names: RefCell::new(Vec::new()),
        }
    }

    /// Problems to draw under the settings they name: (pointer into the config, message).
    pub fn with_problems(mut self, problems: Vec<(String, String)>) -> Self {
        self.drawn = RefCell::new(vec![false; problems.len()]);
        self.problems = problems;
        self
    }

    /// Draws the problems whose pointer is `pointer` (or lies below it, when `below`).
    fn problems_at(&self, ui: &mut Ui, pointer: &str, below: bool) {
        let mut drawn = self.drawn.borrow_mut();
        for (i, (at, message)) in self.problems.iter().enumerate() {
            let inside = at == pointer
                || (below && at.starts_with(pointer) && at[pointer.len()..].starts_with('/'));
            if inside && !drawn[i] {
                drawn[i] = true;
                problem_label(ui, message);
            }
        }
    }

    /// The problems no setting has shown (they name a setting the form does not draw).
    pub fn undrawn_problems(&self) -> Vec<&(String, String)> {
        let drawn = self.drawn.borrow();
        self.problems
            .iter()
            .enumerate()
            .filter(|(i, _)| !drawn[*i])
            .map(|(_, p)| p)
            .collect()
    }

    pub fn with_connections(mut self, connections: &'a ConnectionsState) -> Self {
        self.connections = Some(connections);
        self
    }

    /// The values seen in the sample of the input field the sibling setting `key` names.
    fn values_of_sibling(&self, object: &Value, key: Option<&str>) -> &'a [String] {
        let values = self.values;
        key.and_then(|key| object.get(key)?.as_str())
            .and_then(|field| values.iter().find(|(n, _)| n == field))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The type, in words, of the input field the sibling setting `key` names.
    fn type_of_sibling(&self, object: &Value, key: Option<&str>) -> Option<String> {
        let field = object.get(key?)?.as_str()?;
        self.fields
            .iter()
            .find(|(n, _)| n == field)
            .map(|(_, t)| t.clone())
    }
}

/// "fail_on_first_error" → "Fail on first error"; "sse_kms" → "SSE KMS".
pub fn humanize(name: &str) -> String {
    let words: Vec<&str> = name
        .split('_')
        .map(|word| match word {
            "mb" => "MB",
            "url" => "URL",
            "api" => "API",
            "kms" => "KMS",
            "sse" => "SSE",
            "s3" => "S3",
            "csv" => "CSV",
            "json" => "JSON",
            "jsonl" => "JSON lines",
            other => other,
        })
        .collect();
    let spaced = words.join(" ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Draws the form for `value`; true when the user changed it.
pub fn edit(ui: &mut Ui, root: &Value, value: &mut Value, cx: &FormContext) -> bool {
    edit_object(ui, root, root, value, cx, "config")
}

/// A problem in words, in the error colour, wrapped to the panel.
pub fn problem_label(ui: &mut Ui, message: &str) {
    ui.label(RichText::new(format!("⚠ {message}")).color(ui.visuals().error_fg_color));
}

/// The JSON pointer into the config of the setting at `path` ("config/a/0" → "/a/0").
fn pointer_of(path: &str) -> &str {
    path.strip_prefix("config").unwrap_or(path)
}

/// Draws `add` in a child whose id comes from the setting's path alone, so every widget
/// inside keeps its id (and a text field its focus) whatever appears or goes above it:
/// egui otherwise numbers widgets in the order they are drawn.
pub fn setting_scope<R>(ui: &mut Ui, path: &str, add: impl FnOnce(&mut Ui) -> R) -> R {
    let id = ui.id().with(path);
    ui.scope_builder(UiBuilder::new().id(id), add).inner
}

/// A one-line text input for the setting at `path`: its id from the path, named by the
/// setting's heading.
fn text_input(ui: &mut Ui, edit: TextEdit<'_>, path: &str, cx: Option<&FormContext>) -> Response {
    let response = ui.add(edit.id_salt(path));
    match cx.and_then(|cx| cx.heading.get()) {
        Some(heading) => response.labelled_by(heading),
        None => response,
    }
}

fn edit_object(
    ui: &mut Ui,
    root: &Value,
    schema: &Value,
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let schema = resolve(root, schema);
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    let mut changed = false;
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return edit_map(ui, root, &schema, value, cx, path);
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(added) = value.get("fields").and_then(Value::as_object) {
        *cx.own_names.borrow_mut() = added.keys().cloned().collect();
    }
    for (name, prop) in props {
        if path == "config" && cx.hidden.contains(&name.as_str()) {
            continue;
        }
        let prop = resolve(root, prop);
        let label = humanize(name);
        let description = prop
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Filter conditions: the operators and the value input fit the chosen field's type.
        let extension = |name: &str| prop.get(name).and_then(Value::as_str);
        let operator_of = cx.type_of_sibling(value, extension("x-operator-of"));
        let value_of = cx.type_of_sibling(value, extension("x-value-of"));
        let seen = cx.values_of_sibling(value, extension("x-value-of"));
        let operator = value
            .get("operator")
            .and_then(Value::as_str)
            .map(str::to_string);
        let obj = value.as_object_mut().expect("made an object above");
        let optional = without_null(&prop);
        let id = format!("{path}/{name}");
        setting_scope(ui, &id, |ui| {
            if let Some(inner) = optional {
                let mut on = obj.get(name).is_some_and(|v| !v.is_null());
                let r = ui.checkbox(&mut on, &label).on_hover_text(&description);
                cx.heading.set(Some(r.id));
                if r.changed() {
                    changed = true;
                    if on {
                        obj.insert(name.clone(), default_value(root, &inner));
                    } else {
                        obj.remove(name);
                    }
                }
                if on {
                    let mut v = obj.get(name).cloned().unwrap_or(Value::Null);
                    ui.indent("inner", |ui| {
                        if edit_value(ui, root, &inner, &mut v, cx, &id) {
                            obj.insert(name.clone(), v);
                            changed = true;
                        }
                    });
                }
                cx.problems_at(ui, pointer_of(&id), true);
                return;
            }
            let mut v = obj
                .get(name)
                .cloned()
                .unwrap_or_else(|| default_value(root, &prop));
            let is_switch = types(&prop).first() == Some(&"boolean");
            if is_switch {
                let mut b = v.as_bool().unwrap_or(false);
                if ui
                    .checkbox(&mut b, &label)
                    .on_hover_text(&description)
                    .changed()
                {
                    obj.insert(name.clone(), json!(b));
                    changed = true;
                }
                cx.problems_at(ui, pointer_of(&id), true);
                return;
            }
            let heading = if required.contains(&name.as_str()) {
                RichText::new(&label).strong()
            } else {
                RichText::new(&label)
            };
            let heading = ui.label(heading).on_hover_text(&description);
            cx.heading.set(Some(heading.id));
            let edited = match (&value_of, &operator_of, choices(&prop)) {
                (Some(kind), _, _) => {
                    let typed = Typed {
                        kind,
                        operator: operator.as_deref(),
                        seen,
                    };
                    edit_typed(ui, &mut v, &typed, cx, &id)
                }
                (None, Some(kind), Some(options)) => {
                    let fitting: Vec<_> = options
                        .into_iter()
                        .filter(|(op, _)| operator_fits(op, kind))
                        .collect();
                    choose(ui, &fitting, &mut v, &id)
                }
                _ => edit_value(ui, root, &prop, &mut v, cx, &id),
            };
            if edited {
                obj.insert(name.clone(), v);
                changed = true;
            }
            cx.problems_at(ui, pointer_of(&id), true);
            ui.add_space(4.0);
        });
    }
    changed
}

/// Free-form keys, such as a file source's declared field types.
fn edit_map(
    ui: &mut Ui,
    root: &Value,
    schema: &Value,
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let item = schema
        .get("additionalProperties")
        .cloned()
        .unwrap_or(Value::Bool(true));
    let obj = value.as_object_mut().expect("an object");
    let mut changed = false;
    let mut rename: Option<(String, String)> = None;
    let mut remove: Option<String> = None;
    let entries: Vec<(String, Value)> = obj.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (k, v) in entries {
        let entry = format!("{path}/{k}");
        setting_scope(ui, &entry, |ui| {
            ui.horizontal(|ui| {
                let mut key = k.clone();
                let edit = TextEdit::singleline(&mut key).desired_width(120.0);
                if text_input(ui, edit, &format!("{entry}/name"), None).changed() {
                    rename = Some((k.clone(), key));
                }
                let mut v2 = v.clone();
                if edit_value(ui, root, &item, &mut v2, cx, &entry) {
                    obj.insert(k.clone(), v2);
                    changed = true;
                }
                if ui.small_button("🗙").on_hover_text("Remove").clicked() {
                    remove = Some(k.clone());
                }
            });
            cx.problems_at(ui, pointer_of(&entry), true);
        });
    }
    if let Some((old, new)) = rename
        && !obj.contains_key(&new)
    {
        let v = obj.shift_remove(&old).unwrap_or(Value::Null);
        obj.insert(new, v);
        changed = true;
    }
    if let Some(k) = remove {
        obj.shift_remove(&k);
        changed = true;
    }
    if ui.small_button("+ Add").clicked() {
        let name = (1..)
            .map(|i| format!("field_{i}"))
            .find(|n| !obj.contains_key(n))
            .expect("a free name");
        obj.insert(name, default_value(root, &item));
        changed = true;
    }
    changed
}

fn is_field(schema: &Value) -> bool {
    schema
        .get("x-field")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn edit_value(
    ui: &mut Ui,
    root: &Value,
    schema: &Value,
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let schema = resolve(root, schema);
    if let Some(options) = choices(&schema) {
        return choose(ui, &options, value, path);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        return edit_operand(ui, root, any, value, cx, path);
    }
    if let Some((tag, variants)) = tagged_union(root, &schema) {
        return edit_tagged(ui, root, &tag, &variants, value, cx, path);
    }
    match types(&schema).first().copied() {
        Some("object") => {
            let mut changed = false;
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                changed = edit_object(ui, root, &schema, value, cx, path);
            });
            changed
        }
        Some("array") => edit_list(ui, root, &schema, value, cx, path),
        Some("string") if is_field(&schema) => pick_field(ui, value, cx, path),
        Some("string") if schema.get("x-connection").is_some() => {
            let connector = schema["x-connection"].as_str().unwrap_or_default();
            pick_connection(ui, value, cx, connector, path)
        }
        Some("string") if schema.get("x-code").is_some() => {
            let language = schema["x-code"]
                .as_str()
                .and_then(code::Language::from_setting);
            let Some(language) = language else {
                return edit_any(ui, value, cx, path);
            };
            let mut names: Vec<code::Name> = cx
                .fields
                .iter()
                .map(|(name, kind)| code::Name {
                    name: name.clone(),
                    detail: kind.clone(),
                })
                .collect();
            names.extend(cx.own_names.borrow().iter().map(|name| code::Name {
                name: name.clone(),
                detail: "added by this node".into(),
            }));
            let mut text = value.as_str().unwrap_or_default().to_string();
            let id = ui.id().with(path);
            if code::editor(ui, &mut text, language, &names, id, cx.heading.get()) {
                *value = json!(text);
                return true;
            }
            false
        }
        Some("string") if schema.get("x-path").is_some() => {
            let folder = schema.get("x-path") == Some(&json!("folder"));
            let mut changed = false;
            ui.horizontal(|ui| {
                let browse = ui.button("Browse…");
                let mut text = value.as_str().unwrap_or_default().to_string();
                let hint = if folder { "a folder" } else { "a file" };
                let edit = TextEdit::singleline(&mut text)
                    .hint_text(hint)
                    .desired_width(f32::INFINITY);
                if text_input(ui, edit, path, Some(cx)).changed() {
                    *value = json!(text);
                    changed = true;
                }
                if browse.clicked() {
                    let pointer = path.strip_prefix("config").unwrap_or(path).to_string();
                    cx.browse.set(Some((pointer, folder)));
                }
            });
            changed
        }
        Some("string") => {
            let mut text = value.as_str().unwrap_or_default().to_string();
            let one_char = schema.get("maxLength") == Some(&json!(1));
            let edit = TextEdit::singleline(&mut text)
                .desired_width(if one_char { 24.0 } else { f32::INFINITY })
                .char_limit(if one_char { 1 } else { usize::MAX });
            if text_input(ui, edit, path, Some(cx)).changed() {
                *value = json!(text);
                return true;
            }
            false
        }
        Some(kind @ ("integer" | "number")) => {
            let min = schema.get("minimum").and_then(Value::as_f64);
            let max = schema.get("maximum").and_then(Value::as_f64);
            number_input(ui, value, kind == "integer", (min, max), cx, path)
        }
        Some("boolean") => {
            let mut b = value.as_bool().unwrap_or(false);
            if ui.checkbox(&mut b, "").changed() {
                *value = json!(b);
                return true;
            }
            false
        }
        _ => edit_any(ui, value, cx, path),
    }
}

/// A number typed as text. What does not read as one (or lies outside the setting's range)
/// stays in the box as typed, with the reason under it, until it is put right; the flow
/// keeps its last good value meanwhile.
fn number_input(
    ui: &mut Ui,
    value: &mut Value,
    whole: bool,
    (min, max): (Option<f64>, Option<f64>),
    cx: &FormContext,
    path: &str,
) -> bool {
    let typed_id = ui.id().with(path).with("typed");
    let kept: Option<String> = ui.data(|d| d.get_temp(typed_id));
    let mut text = kept.clone().unwrap_or_else(|| match &*value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let edit = TextEdit::singleline(&mut text)
        .desired_width(120.0)
        .hint_text(if whole { "a whole number" } else { "a number" });
    let response = text_input(ui, edit, path, Some(cx));
    let read = read_number(&text, whole, min, max);
    let mut edited = false;
    if response.changed() {
        // What is typed stays as typed while the box has the focus: "1." is on its way
        // to "1.5", not the 1.0 it reads as.
        ui.data_mut(|d| d.insert_temp(typed_id, text.clone()));
        if let Ok(n) = &read {
            *value = n.clone();
            edited = true;
        }
    } else if !response.has_focus() && read.is_ok() && kept.is_some() {
        ui.data_mut(|d| {
            d.remove_temp::<String>(typed_id);
        });
    }
    if (response.changed() || kept.is_some())
        && let Err(why) = read
    {
        problem_label(ui, &why);
    }
    edited
}

/// `text` as the JSON number a setting holds, or why it is not one.
fn read_number(
    text: &str,
    whole: bool,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Value, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(if whole {
            "type a whole number".into()
        } else {
            "type a number".into()
        });
    }
    let n: f64 = text
        .parse()
        .map_err(|_| format!("“{text}” is not a number"))?;
    if whole && n.fract() != 0.0 {
        return Err(format!("{text} is not a whole number"));
    }
    if let Some(min) = min
        && n < min
    {
        return Err(format!("{text} is less than the smallest allowed, {min}"));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(format!("{text} is more than the largest allowed, {max}"));
    }
    Ok(if whole { json!(n as i64) } else { json!(n) })
}

/// Whether a filter operator makes sense for a field of type `kind` (in words).
fn operator_fits(operator: &str, kind: &str) -> bool {
    match operator {
        "contains" => kind == "string",
        "equal_to" | "not_equal_to" => true,
        _ => kind != "boolean",
    }
}

/// What a filter's value is compared with: the field's type in words, the operator, and
/// the values the sample holds for it.
struct Typed<'a> {
    kind: &'a str,
    operator: Option<&'a str>,
    seen: &'a [String],
}

/// A value to compare a field with, in an input that fits the field's type; two inputs for
/// `between`.
fn edit_typed(ui: &mut Ui, value: &mut Value, typed: &Typed, cx: &FormContext, path: &str) -> bool {
    if typed.operator == Some("between") {
        let mut pair = match &*value {
            Value::Array(a) if a.len() == 2 => a.clone(),
            _ => vec![Value::Null, Value::Null],
        };
        let mut changed = false;
        ui.horizontal(|ui| {
            ui.label("from");
            changed |= edit_scalar(ui, &mut pair[0], typed, cx, &format!("{path}/0"));
            ui.label("to");
            changed |= edit_scalar(ui, &mut pair[1], typed, cx, &format!("{path}/1"));
        });
        if changed {
            *value = Value::Array(pair);
        }
        return changed;
    }
    if value.is_array() && typed.kind != "string" {
        // A list of values (any of them): typed as a list.
        return edit_any(ui, value, cx, path);
    }
    edit_scalar(ui, value, typed, cx, path)
}

fn edit_scalar(
    ui: &mut Ui,
    value: &mut Value,
    typed: &Typed,
    cx: &FormContext,
    path: &str,
) -> bool {
    let kind = typed.kind;
    if value.is_null() && (kind == "integer" || kind == "number" || kind.starts_with("decimal")) {
        // No value yet: an empty box to type one in, not a 0 that is not there.
        return edit_any(ui, value, cx, path);
    }
    let number = value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
    match kind {
        "date" => edit_date(ui, value, cx, path, false),
        "timestamp" => edit_date(ui, value, cx, path, true),
        "boolean" => {
            let mut b = value.as_bool().unwrap_or(false);
            let text = if b { "true" } else { "false" };
            if ui.checkbox(&mut b, text).changed() {
                *value = json!(b);
                return true;
            }
            false
        }
        "integer" | "number" => {
            if let Some(n) = number
                && !value.is_number()
            {
                *value = json!(n);
            }
            number_input(ui, value, kind == "integer", (None, None), cx, path)
        }
        k if k.starts_with("decimal") => number_input(ui, value, false, (None, None), cx, path),
        "string" => edit_text_or_pick(ui, value, typed.seen, cx, path),
        _ => edit_any(ui, value, cx, path),
    }
}

/// Text for a text field: typed (`[a, b]` for a list), or picked from the values the
/// sample holds, once it is known. One layout with or without the pick list, so the
/// preview arriving while someone types keeps the focus where it is.
fn edit_text_or_pick(
    ui: &mut Ui,
    value: &mut Value,
    seen: &[String],
    cx: &FormContext,
    path: &str,
) -> bool {
    ui.horizontal(|ui| {
        let mut text = match &*value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let edit = TextEdit::singleline(&mut text)
            .hint_text("a value, or [a, list]")
            .desired_width(160.0);
        let mut changed = false;
        if text_input(ui, edit, path, Some(cx)).changed() {
            *value = match serde_json::from_str::<Value>(&text) {
                Ok(list @ Value::Array(_)) => list,
                _ => json!(text),
            };
            changed = true;
        }
        if seen.is_empty() {
            return changed;
        }
        ComboBox::from_id_salt(format!("{path}/seen"))
            .selected_text(RichText::new("pick").weak())
            .width(56.0)
            .height(320.0)
            .show_ui(ui, |ui| {
                ui.label(RichText::new("Values in the sample").weak());
                for v in seen {
                    let picked = match &*value {
                        Value::Array(list) => list.iter().any(|x| x.as_str() == Some(v)),
                        other => other.as_str() == Some(v),
                    };
                    if !ui.selectable_label(picked, v).clicked() {
                        continue;
                    }
                    // A list gains the value, or loses it when it had it; a single value
                    // is replaced by the one picked.
                    match &mut *value {
                        Value::Array(list) if picked => list.retain(|x| x.as_str() != Some(v)),
                        Value::Array(list) => list.push(json!(v)),
                        other if !picked => *other = json!(v),
                        _ => continue,
                    }
                    changed = true;
                }
            })
            .response
            .on_hover_text("Pick from the values the sample holds; in a list, picking a value again takes it out");
        changed
    })
    .inner
}

/// A date (`2024-01-31`) or timestamp (`2024-01-31T09:30:00Z`): typed, or picked from a
/// calendar, which keeps the time of day already typed.
fn edit_date(
    ui: &mut Ui,
    value: &mut Value,
    cx: &FormContext,
    path: &str,
    with_time: bool,
) -> bool {
    let text = value.as_str().unwrap_or_default().to_string();
    let mut changed = false;
    ui.horizontal(|ui| {
        let mut typed = text.clone();
        let (hint, width) = if with_time {
            ("2024-01-31T09:30:00Z", 170.0)
        } else {
            ("2024-01-31", 96.0)
        };
        let edit = TextEdit::singleline(&mut typed)
            .hint_text(hint)
            .desired_width(width);
        if text_input(ui, edit, path, Some(cx)).changed() {
            *value = json!(typed);
            changed = true;
        }
        let mut date: jiff::civil::Date = text
            .get(..10)
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| jiff::Zoned::now().date());
        let picker = egui_extras::DatePickerButton::new(&mut date)
            .id_salt(path)
            .calendar_week(false);
        if ui.add(picker).changed() {
            let time = match text.get(10..) {
                Some(t) if with_time && !t.is_empty() => t,
                _ if with_time => "T00:00:00Z",
                _ => "",
            };
            *value = json!(format!("{date}{time}"));
            changed = true;
        }
    });
    changed
}

fn choose(
    ui: &mut Ui,
    options: &[(String, Option<String>)],
    value: &mut Value,
    path: &str,
) -> bool {
    let current = value.as_str().unwrap_or_default().to_string();
    let mut changed = false;
    ComboBox::from_id_salt(path)
        .selected_text(humanize(&current))
        .width(ui.available_width().min(240.0))
        .show_ui(ui, |ui| {
            for (option, description) in options {
                let r = ui.selectable_label(&current == option, humanize(option));
                let r = match description {
                    Some(d) => r.on_hover_text(d),
                    None => r,
                };
                if r.clicked() && &current != option {
                    *value = json!(option);
                    changed = true;
                }
            }
        });
    changed
}

/// A field of the input, from a list; free text when the input is not known yet.
fn pick_field(ui: &mut Ui, value: &mut Value, cx: &FormContext, path: &str) -> bool {
    let current = value.as_str().unwrap_or_default().to_string();
    if cx.fields.is_empty() {
        let mut text = current;
        let edit = TextEdit::singleline(&mut text).hint_text("field name");
        if text_input(ui, edit, path, Some(cx)).changed() {
            *value = json!(text);
            return true;
        }
        return false;
    }
    let mut changed = false;
    let known = cx.fields.iter().any(|(n, _)| n == &current);
    let shown = if current.is_empty() {
        RichText::new("choose a field").weak()
    } else if known {
        RichText::new(&current)
    } else {
        RichText::new(format!("{current} (not in the input)")).color(ui.visuals().error_fg_color)
    };
    ComboBox::from_id_salt(path)
        .selected_text(shown)
        .width(ui.available_width().min(240.0))
        .height(320.0)
        .show_ui(ui, |ui| {
            for (name, kind) in cx.fields {
                if ui
                    .selectable_label(name == &current, format!("{name}  ·  {kind}"))
                    .clicked()
                    && name != &current
                {
                    *value = json!(name);
                    changed = true;
                }
            }
        });
    changed
}

/// A connection of the node's connector, from a list that ends with "New connection…".
fn pick_connection(
    ui: &mut Ui,
    value: &mut Value,
    cx: &FormContext,
    connector: &str,
    path: &str,
) -> bool {
    let current = value.as_str().unwrap_or_default().to_string();
    let names = cx
        .connections
        .map(|c| c.names_for(connector))
        .unwrap_or_default();
    let shown = if current.is_empty() {
        RichText::new("choose a connection").weak()
    } else if names.contains(&current) {
        RichText::new(&current)
    } else if current.starts_with("${") {
        // A flow parameter names the connection; `--param` or the flow's params fill it.
        RichText::new(format!("{current} (a parameter)"))
    } else {
        RichText::new(format!("{current} (no such connection)")).color(ui.visuals().error_fg_color)
    };
    let mut changed = false;
    ComboBox::from_id_salt(path)
        .selected_text(shown)
        .width(ui.available_width().min(240.0))
        .show_ui(ui, |ui| {
            for name in &names {
                if ui.selectable_label(name == &current, name).clicked() && name != &current {
                    *value = json!(name);
                    changed = true;
                }
            }
            if !names.is_empty() {
                ui.separator();
            }
            if ui.selectable_label(false, "New connection…").clicked() {
                cx.new_connection.set(Some(connector.to_string()));
            }
        });
    changed
}

fn edit_list(
    ui: &mut Ui,
    root: &Value,
    schema: &Value,
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let mut item = schema.get("items").cloned().unwrap_or(Value::Bool(true));
    if is_field(schema)
        && let Value::Object(o) = &mut item
    {
        o.insert("x-field".into(), json!(true));
    }
    if !value.is_array() {
        *value = json!([]);
    }
    let list = value.as_array_mut().expect("an array");
    let names: Vec<String> = list
        .iter()
        .filter_map(|v| v.get("name")?.as_str())
        .map(str::to_string)
        .collect();
    let mut changed = false;
    let mut remove = None;
    for (i, v) in list.iter_mut().enumerate() {
        let entry = format!("{path}/{i}");
        *cx.own_names.borrow_mut() = names[..i.min(names.len())].to_vec();
        setting_scope(ui, &entry, |ui| {
            ui.horizontal_top(|ui| {
                if ui.small_button("🗙").on_hover_text("Remove").clicked() {
                    remove = Some(i);
                }
                ui.vertical(|ui| {
                    changed |= edit_value(ui, root, &item, v, cx, &entry);
                });
            });
            cx.problems_at(ui, pointer_of(&entry), true);
        });
    }
    cx.own_names.borrow_mut().clear();
    if let Some(i) = remove {
        list.remove(i);
        changed = true;
    }
    if ui.small_button("+ Add").clicked() {
        list.push(default_value(root, &item));
        changed = true;
    }
    changed
}

/// A field name or a number (arithmetic operands).
fn edit_operand(
    ui: &mut Ui,
    root: &Value,
    any: &[Value],
    value: &mut Value,
    cx: &FormContext,
    path: &str,
) -> bool {
    let numeric = any.iter().any(|s| types(s).contains(&"number"));
    let text_too = any.iter().any(|s| types(s).contains(&"string"));
    if !(numeric && text_too) {
        return any
            .first()
            .is_some_and(|s| edit_value(ui, root, s, value, cx, path));
    }
    let mut changed = false;
    let mut is_number = value.is_number();
    ui.horizontal(|ui| {
        if ui.selectable_label(!is_number, "Field").clicked() && is_number {
            is_number = false;
            *value = json!("");
            changed = true;
        }
        if ui.selectable_label(is_number, "Number").clicked() && !is_number {
            is_number = true;
            *value = json!(0.0);
            changed = true;
        }
        if is_number {
            let mut n = value.as_f64().unwrap_or(0.0);
            if ui.add(DragValue::new(&mut n).speed(0.1)).changed() {
                *value = json!(n);
                changed = true;
            }
        } else {
            changed |= pick_field(ui, value, cx, path);
        }
    });
    changed
}

/// A value of any JSON type, typed as text: numbers, `true`/`false` and `[lists]` are read
/// as such, anything else is text.
fn edit_any(ui: &mut Ui, value: &mut Value, cx: &FormContext, path: &str) -> bool {
    let mut text = match &*value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let edit = TextEdit::singleline(&mut text).hint_text("a value, or [a, list]");
    if text_input(ui, edit, path, Some(cx)).changed() {
        *value = match serde_json::from_str::<Value>(&text) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Array(_))) => v,
            _ => json!(text),
        };
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_type_starts_with_a_config_its_form_can_show() {
        for t in registry::all() {
            let config = default_config(t);
            assert!(config.is_object(), "{}: {config}", t.name);
        }
        let mask = default_config(registry::find("transform.mask").unwrap());
        assert_eq!(mask["fields"], json!([]));
        assert_eq!(mask["mode"], json!("all"));
        let demo = default_config(registry::find("source.demo_crm").unwrap());
        assert_eq!(demo, json!({"object": "Account"}));
    }

    #[test]
    fn names_read_as_words() {
        assert_eq!(humanize("fail_on_first_error"), "Fail on first error");
        assert_eq!(humanize("all_but_last_n"), "All but last n");
        assert_eq!(humanize("sse_kms"), "SSE KMS");
        assert_eq!(humanize("endpoint_url"), "Endpoint URL");
        assert_eq!(humanize("jsonl"), "JSON lines");
        assert_eq!(humanize("file_size_mb"), "File size MB");
    }
}
