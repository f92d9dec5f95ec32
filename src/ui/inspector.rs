//! The inspector: the selected node's settings as a form generated from its node type, or
//! the flow's own settings (name, trigger, parameters) when no node is selected.

use egui::{RichText, Ui};
use serde_json::{Value, json};

use super::commands::Command;
use super::form::{self, FormContext};
use super::state::{AppState, Catalog};
use super::table::PreviewTable;
use crate::flow::{Node, Trigger};
use crate::node::Entities;
use crate::registry;
use crate::types::describe;

pub fn ui(ui: &mut Ui, state: &AppState) -> Vec<Command> {
    let mut commands = Vec::new();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| match state.selection.len() {
            0 => flow_settings(ui, state, &mut commands),
            1 if state.selected_node().is_some() => node_settings(ui, state, &mut commands),
            1 => {}
            n => {
                ui.heading(format!("{n} nodes selected"));
                if ui.button("Delete them").clicked() {
                    commands.push(Command::RemoveNodes(state.selection.clone()));
                }
            }
        });
    commands
}

fn node_settings(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let node = state.selected_node().expect("one node selected");
    // Each node's inputs have ids of their own: a text field's cursor and focus stay with
    // the node they belong to.
    form::setting_scope(ui, &format!("node {}", node.id), |ui| {
        node_form(ui, state, node, commands)
    });
}

fn node_form(ui: &mut Ui, state: &AppState, node: &Node, commands: &mut Vec<Command>) {
    let Some(kind) = registry::find(&node.kind) else {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("Unknown node type `{}`", node.kind),
        );
        return;
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(kind.icon).size(22.0));
        ui.vertical(|ui| {
            ui.heading(kind.title);
            ui.label(
                RichText::new(format!("{} · id {}", kind.name, node.id))
                    .small()
                    .weak(),
            );
        });
    });
    ui.label(RichText::new(kind.description).weak());
    ui.separator();
    ui.label(RichText::new("Label").strong());
    let mut label = node.label.clone().unwrap_or_default();
    if ui
        .add(
            egui::TextEdit::singleline(&mut label)
                .id_salt("label")
                .hint_text(kind.title)
                .desired_width(f32::INFINITY),
        )
        .changed()
    {
        commands.push(Command::SetLabel {
            node: node.id.clone(),
            label,
        });
    }
    ui.add_space(6.0);
    // Problems of a setting are drawn under it; the node's own ones here. While an edit is
    // being checked the last known ones stay, so nothing jumps at every key.
    let mut setting_problems = Vec::new();
    for p in state.last_problems_of(&node.id) {
        match p.path.split_once("/config") {
            Some((_, pointer)) if !pointer.is_empty() => {
                setting_problems.push((pointer.to_string(), p.message.clone()));
            }
            _ => form::problem_label(ui, &p.message),
        }
    }
    // A node that reads one of its service's objects filters on that object's fields.
    let fields = if let Some(entities) = kind.entities {
        catalog_fields(state, node, entities.setting)
    } else {
        field_list(state, &node.id)
    };
    let Some(schema) = form::schema_of(kind.name) else {
        return;
    };
    let mut config: Value = node.config.clone();
    ui.separator();
    let changed = if kind.name == "transform.map" {
        let changed = field_mapping(ui, sample_of(state, &node.id), &mut config, &fields);
        for (_, message) in &setting_problems {
            form::problem_label(ui, message);
        }
        changed
    } else {
        let mut cx = FormContext::new(&fields)
            .with_connections(&state.connections)
            .with_problems(setting_problems);
        cx.values = input_values_of(state, &node.id);
        if kind.entities.is_some() {
            // Chosen in the object browser below, with the object's fields to tick.
            cx.hidden = &["fields"];
        }
        let changed = form::edit(ui, schema, &mut config, &cx);
        for (pointer, message) in cx.undrawn_problems() {
            let setting = pointer.trim_start_matches('/').replace('/', " › ");
            form::problem_label(ui, &format!("{setting}: {message}"));
        }
        if let Some(connector) = cx.new_connection.take() {
            commands.push(Command::NewConnection {
                connector: Some(connector),
                for_node: Some(node.id.clone()),
            });
        }
        if let Some((pointer, folder)) = cx.browse.take() {
            commands.push(Command::ChoosePath {
                node: node.id.clone(),
                pointer,
                folder,
            });
        }
        changed
    };
    if changed {
        commands.push(Command::SetConfig {
            node: node.id.clone(),
            config,
        });
    }
    if let Some(entities) = kind.entities {
        ui.separator();
        entity_browser(ui, state, node, entities, commands);
    }
    if kind.tests_connection {
        ui.separator();
        connection_test(ui, state, node, commands);
    }
    if kind.role == crate::node::Role::Destination {
        ui.separator();
        destination_mapping(ui, state, &node.id, commands);
    }
    if let Some(out) = state.analysis.schemas.get(&node.id) {
        ui.separator();
        egui::CollapsingHeader::new(format!("Output fields ({})", out.fields().len()))
            .id_salt("output fields")
            .show(ui, |ui| {
                egui::Grid::new("output-fields")
                    .striped(true)
                    .show(ui, |ui| {
                        for f in out.fields() {
                            ui.label(f.name());
                            ui.label(RichText::new(describe(f.data_type())).weak());
                            ui.end_row();
                        }
                    });
            });
    }
}

/// The Active switch of a scheduled flow, and what keeps it from running: no service, a
/// service on another folder, or the service having deactivated it.
fn service_switch(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let view = &state.service;
    let active = view.activation.as_ref().is_some_and(|a| a.active);
    let saved = state.doc.path.is_some();
    let mut on = active;
    let switch = ui
        .add_enabled(saved, egui::Checkbox::new(&mut on, "Active"))
        .on_hover_text("The service (tributary serve) runs an active flow on its trigger")
        .on_disabled_hover_text("Save the flow first: the service runs flow files");
    if switch.changed() {
        commands.push(Command::SetActive(on));
    }
    if let Some(e) = &view.error {
        form::problem_label(ui, e);
    }
    if let Some(reason) = view
        .activation
        .as_ref()
        .filter(|a| !a.active)
        .and_then(|a| a.reason.as_ref())
    {
        form::problem_label(ui, &format!("The service {reason}"));
    }
    if !active {
        return;
    }
    match &view.running {
        None => {
            ui.label(
                RichText::new("No service is running, so the flow does not run by itself.")
                    .color(ui.visuals().warn_fg_color),
            );
            if ui
                .button("Start the service")
                .on_hover_text(format!(
                    "Runs `tributary serve --flows {}`; it goes on when the app closes",
                    state.doc.base_dir().display()
                ))
                .clicked()
            {
                commands.push(Command::StartService);
            }
        }
        Some(service) => {
            let folder = std::path::absolute(state.doc.base_dir()).ok();
            if folder.as_deref() != Some(service.flows.as_path()) {
                ui.label(
                    RichText::new(format!(
                        "The service runs the flows of {}; this flow's file is elsewhere, so it does not run.",
                        service.flows.display()
                    ))
                    .color(ui.visuals().warn_fg_color),
                );
            } else {
                ui.label(
                    RichText::new(format!("The service runs it (process {}).", service.pid)).weak(),
                );
            }
        }
    }
}

fn flow_settings(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let flow = &state.doc.flow;
    ui.heading("Flow");
    ui.label(
        RichText::new("Select a node to set it up. These settings are the flow's own.").weak(),
    );
    ui.separator();
    ui.label(RichText::new("Name").strong());
    let mut name = flow.name.clone();
    if ui
        .add(egui::TextEdit::singleline(&mut name).desired_width(f32::INFINITY))
        .changed()
    {
        commands.push(Command::SetFlowName(name));
    }
    ui.label(RichText::new("Description").strong());
    let mut description = flow.description.clone().unwrap_or_default();
    if ui
        .add(
            egui::TextEdit::multiline(&mut description)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .changed()
    {
        commands.push(Command::SetDescription(description));
    }
    ui.add_space(6.0);
    ui.label(RichText::new("Trigger").strong());
    let scheduled = matches!(flow.trigger, Trigger::Schedule { .. });
    let on_demand = flow.trigger == Trigger::OnDemand;
    ui.horizontal(|ui| {
        if ui.radio(on_demand, "On demand").clicked() && !on_demand {
            commands.push(Command::SetTrigger(Trigger::OnDemand));
        }
        if ui.radio(scheduled, "On a schedule").clicked() && !scheduled {
            commands.push(Command::SetTrigger(Trigger::schedule("rate(1 days)")));
        }
    });
    if let Trigger::Event(_) = &flow.trigger {
        ui.label(format!("Runs on {}", flow.trigger.in_words()))
            .on_hover_text("Set in the flow file; `tributary schema` documents the event settings");
        service_switch(ui, state, commands);
    }
    if let Trigger::Schedule {
        expression,
        time_zone,
        ..
    } = &flow.trigger
    {
        let (mut e, mut zone) = (expression.clone(), time_zone.clone().unwrap_or_default());
        let mut edited = false;
        egui::Grid::new("schedule").num_columns(2).show(ui, |ui| {
            ui.label("When");
            edited |= ui
                .add(
                    egui::TextEdit::singleline(&mut e)
                        .id_salt("schedule expression")
                        .desired_width(170.0),
                )
                .on_hover_text(
                    "rate(15 minutes), rate(1 days), cron(30 2 * * ? *) (minute hour day month weekday year), or 30 2 * * 1-5",
                )
                .changed();
            ui.end_row();
            ui.label("Time zone");
            edited |= ui
                .add(
                    egui::TextEdit::singleline(&mut zone)
                        .id_salt("schedule time zone")
                        .hint_text("UTC")
                        .desired_width(170.0),
                )
                .on_hover_text("An IANA name such as Europe/Berlin; UTC when empty")
                .changed();
            ui.end_row();
        });
        let mut changed = flow.trigger.clone();
        if let Trigger::Schedule {
            expression,
            time_zone,
            ..
        } = &mut changed
        {
            *expression = e;
            *time_zone = (!zone.trim().is_empty()).then_some(zone);
        }
        if edited {
            commands.push(Command::SetTrigger(changed.clone()));
        }
        match changed.schedule_of() {
            Some(Ok(schedule)) => {
                let next = schedule.upcoming(jiff::Timestamp::now(), 3);
                if next.is_empty() {
                    ui.label(RichText::new("No run is left in this schedule").weak());
                } else {
                    ui.label(RichText::new("Next runs").weak());
                    for at in next {
                        ui.label(format!("  {}", schedule.show_local(at)));
                    }
                }
            }
            Some(Err(problem)) => form::problem_label(ui, &problem.message),
            None => {}
        }
        service_switch(ui, state, commands);
    }
    ui.add_space(6.0);
    ui.label(RichText::new("Parameters").strong()).on_hover_text("Values for ${name} in node settings; `tributary run --param name=value` overrides them");
    for (k, v) in &flow.params {
        ui.horizontal(|ui| {
            ui.add_sized([90.0, 20.0], egui::Label::new(k).truncate());
            let mut value = v.clone();
            if ui
                .add(
                    egui::TextEdit::singleline(&mut value)
                        .desired_width(ui.available_width() - 32.0),
                )
                .changed()
            {
                commands.push(Command::SetParam {
                    name: k.clone(),
                    value,
                });
            }
            if ui.small_button("🗙").on_hover_text("Remove").clicked() {
                commands.push(Command::RemoveParam(k.clone()));
            }
        });
    }
    let id = ui.id().with("new param");
    let mut new_name = ui.data_mut(|d| d.get_temp::<String>(id).unwrap_or_default());
    ui.horizontal(|ui| {
        ui.add(
            egui::TextEdit::singleline(&mut new_name)
                .hint_text("new parameter")
                .desired_width(140.0),
        );
        if ui
            .add_enabled(
                !new_name.trim().is_empty() && !flow.params.contains_key(new_name.trim()),
                egui::Button::new("Add"),
            )
            .clicked()
        {
            commands.push(Command::SetParam {
                name: new_name.trim().to_string(),
                value: String::new(),
            });
            new_name.clear();
        }
    });
    ui.data_mut(|d| d.insert_temp(id, new_name));
}

/// The preview of `node`, when it is the one shown.
fn preview_of<'a>(state: &'a AppState, node: &str) -> Option<&'a PreviewTable> {
    state
        .preview
        .result
        .as_ref()
        .filter(|(k, _)| k.node == node)
        .and_then(|(_, r)| r.as_ref().ok())
}

/// The preview of `node`, when it is the one shown and has records.
fn sample_of<'a>(state: &'a AppState, node: &str) -> Option<&'a PreviewTable> {
    preview_of(state, node).filter(|t| !t.rows.is_empty())
}

/// The values seen per text field in what enters `node`, when its preview is the one shown.
fn input_values_of<'a>(state: &'a AppState, node: &str) -> &'a [(String, Vec<String>)] {
    preview_of(state, node).map_or(&[], |t| t.input_values.as_slice())
}

/// What a destination writes, field by field. The mapping itself is the Map node that feeds
/// the destination, edited here as if it were the destination's own; without one, the
/// fields arrive as they are and "Map fields…" puts a Map node in front.
fn destination_mapping(ui: &mut Ui, state: &AppState, node: &str, commands: &mut Vec<Command>) {
    let flow = &state.doc.flow;
    let Some(input) = flow.edges.iter().find(|e| e.to == node).map(|e| &e.from) else {
        return;
    };
    let feeds_only_this = flow.edges.iter().filter(|e| &e.from == input).count() == 1;
    let map = flow
        .node(input)
        .filter(|n| n.kind == "transform.map" && feeds_only_this);
    let sample = sample_of(state, node);
    if let Some(map) = map {
        let fields = field_list(state, &map.id);
        let mut config = map.config.clone();
        if field_mapping(ui, sample, &mut config, &fields) {
            commands.push(Command::SetConfig {
                node: map.id.clone(),
                config,
            });
        }
        ui.label(
            RichText::new(format!(
                "Kept in the Map node “{}” that feeds this destination.",
                map.label.as_deref().unwrap_or(&map.id)
            ))
            .small()
            .weak(),
        );
        return;
    }
    ui.label(RichText::new("Field mapping").strong());
    let written = field_list(state, node);
    if written.is_empty() {
        ui.label(RichText::new("The fields show once the input is valid.").weak());
        return;
    }
    egui::Grid::new("written")
        .num_columns(3)
        .striped(true)
        .spacing([8.0, 3.0])
        .show(ui, |ui| {
            for (name, kind) in &written {
                ui.label(name);
                ui.label(RichText::new(kind).weak());
                let example = sample
                    .and_then(|t| Some(&t.rows[0][t.columns.iter().position(|(n, _)| n == name)?]));
                // Cut, not wrapped: a long value must not push the rows about when the
                // preview arrives.
                ui.add(
                    egui::Label::new(
                        RichText::new(example.map_or(String::new(), |e| format!("e.g. {e}")))
                            .small()
                            .weak(),
                    )
                    .truncate(),
                );
                ui.end_row();
            }
        });
    ui.label(
        RichText::new("Every incoming field is written as it arrives.")
            .small()
            .weak(),
    );
    if ui
        .button("Map fields…")
        .on_hover_text("Choose, rename and convert the fields this destination writes")
        .clicked()
    {
        commands.push(Command::InsertMap {
            before: node.to_string(),
        });
    }
}

/// The fields a node receives: (name, type in words).
fn field_list(state: &AppState, node: &str) -> Vec<(String, String)> {
    state
        .input_fields(node)
        .map(|s| {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), describe(f.data_type())))
                .collect()
        })
        .unwrap_or_default()
}

/// Mapping rows of source field → output field with its type and a sample value from the
/// preview beside each; the config of a Map node.
fn field_mapping(
    ui: &mut Ui,
    sample: Option<&PreviewTable>,
    config: &mut Value,
    fields: &[(String, String)],
) -> bool {
    let mut changed = false;
    if !config["fields"].is_array() {
        config["fields"] = json!([]);
    }
    let rows = config["fields"]
        .as_array_mut()
        .expect("made an array above");
    ui.label(RichText::new("Field mapping").strong());
    let mut remove = None;
    // Each field takes two lines, so a row fits the inspector: the source and its output
    // name, then its type and a sample. Wider still, the rows scroll rather than widen the
    // inspector for good.
    egui::ScrollArea::horizontal()
        .id_salt("mapping rows")
        .show(ui, |ui| {
            egui::Grid::new("mapping")
                .num_columns(3)
                .min_col_width(0.0)
                .spacing([6.0, 2.0])
                .show(ui, |ui| {
                    ui.label(RichText::new("source field").small().weak());
                    ui.label("");
                    let output_heading = ui.label(RichText::new("output field").small().weak()).id;
                    ui.end_row();
                    for (i, row) in rows.iter_mut().enumerate() {
                        changed |=
                            mapping_row(ui, i, row, fields, sample, output_heading, &mut remove);
                    }
                });
        });
    if let Some(i) = remove {
        rows.remove(i);
        changed = true;
    }
    ui.horizontal(|ui| {
        if ui.button("+ Add field").clicked() {
            let next = fields
                .iter()
                .map(|(n, _)| n)
                .find(|n| !rows.iter().any(|r| r["source"] == json!(n)));
            rows.push(json!({ "source": next.cloned().unwrap_or_default() }));
            changed = true;
        }
        if ui
            .add_enabled(
                !fields.is_empty(),
                egui::Button::new("Map every input field"),
            )
            .clicked()
        {
            *rows = fields.iter().map(|(n, _)| json!({ "source": n })).collect();
            changed = true;
        }
    });
    changed
}

/// One field of a Map: remove, source and output name on a line, type and a sample value
/// under them. True when the row changed.
fn mapping_row(
    ui: &mut Ui,
    i: usize,
    row: &mut Value,
    fields: &[(String, String)],
    sample: Option<&PreviewTable>,
    output_heading: egui::Id,
    remove: &mut Option<usize>,
) -> bool {
    let mut changed = false;
    let source = row["source"].as_str().unwrap_or_default().to_string();
    ui.horizontal(|ui| {
        if ui
            .small_button("🗙")
            .on_hover_text("Leave this field out")
            .clicked()
        {
            *remove = Some(i);
        }
        egui::ComboBox::from_id_salt(("source", i))
            .selected_text(&source)
            .width(92.0)
            .height(320.0)
            .show_ui(ui, |ui| {
                for (name, kind) in fields {
                    if ui
                        .selectable_label(name == &source, format!("{name} · {kind}"))
                        .clicked()
                        && name != &source
                    {
                        row["source"] = json!(name);
                        changed = true;
                    }
                }
            });
    });
    ui.label("->");
    // An emptied name stays empty while the user types the new one; only a name equal to
    // the source's is dropped (it is the default). The size is set, not just wished for:
    // a grid cell otherwise keeps the width its column had on the first frame.
    let mut target = target_of(row);
    let field = ui
        .add(
            egui::TextEdit::singleline(&mut target)
                .id_salt(("target", i))
                .min_size(egui::vec2(100.0, 0.0))
                .desired_width(100.0),
        )
        .labelled_by(output_heading);
    if field.changed() {
        if target == source {
            row.as_object_mut().expect("a mapping row").remove("target");
        } else {
            row["target"] = json!(target);
        }
        changed = true;
    }
    ui.end_row();
    let current = row
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    ui.horizontal(|ui| {
        ui.add_space(20.0);
        ui.label(RichText::new("type").small().weak());
        egui::ComboBox::from_id_salt(("type", i))
            .selected_text(if current.is_empty() {
                "as is"
            } else {
                &current
            })
            .width(70.0)
            .show_ui(ui, |ui| {
                let offered = crate::types::OFFERED.iter().map(|(name, _)| *name);
                for t in std::iter::once("").chain(offered) {
                    if ui
                        .selectable_label(current == t, if t.is_empty() { "as is" } else { t })
                        .clicked()
                        && current != t
                    {
                        if t.is_empty() {
                            row.as_object_mut().expect("a mapping row").remove("type");
                        } else {
                            row["type"] = json!(t);
                        }
                        changed = true;
                    }
                }
            });
    });
    ui.label("");
    let example = sample.and_then(|table| {
        let c = table
            .columns
            .iter()
            .position(|(n, _)| n == &target_of(row))?;
        Some(format!("e.g. {}", table.rows[0][c]))
    });
    ui.add(egui::Label::new(RichText::new(example.unwrap_or_default()).small().weak()).truncate());
    ui.end_row();
    changed
}

/// The output name of a mapping row: its target, or its source when it keeps the name.
fn target_of(row: &Value) -> String {
    row.get("target")
        .or_else(|| row.get("source"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The fields of the object a node reads, with their types, once its catalog has them.
fn catalog_fields(state: &AppState, node: &Node, setting: &str) -> Vec<(String, String)> {
    state
        .catalogs
        .get(&node.id)
        .filter(|c| c.key == Catalog::key_of(&node.config, setting))
        .and_then(|c| c.fields.clone())
        .and_then(Result::ok)
        .map(|fields| fields.into_iter().map(|f| (f.name, f.kind)).collect())
        .unwrap_or_default()
}

/// `tables` → `Tables`.
fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The objects of the node's connection, with a search box, and the chosen object's
/// fields as a checklist.
fn entity_browser(
    ui: &mut Ui,
    state: &AppState,
    node: &Node,
    entities: Entities,
    commands: &mut Vec<Command>,
) {
    let key = Catalog::key_of(&node.config, entities.setting);
    let word = entities.plural;
    if key.0.is_empty() {
        ui.label(RichText::new(format!("Choose a connection to see its {word}.")).weak());
        return;
    }
    let catalog = state.catalogs.get(&node.id).filter(|c| c.key == key);
    let Some(catalog) = catalog else {
        // Fetched once per connection and object, when the node is looked at.
        commands.push(Command::LoadCatalog(node.id.clone()));
        return;
    };
    let heading = ui.label(RichText::new(capitalized(word)).strong());
    match &catalog.entities {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new(format!("Listing the {word}…")).weak());
            });
        }
        Some(Err(why)) => {
            ui.label(RichText::new(format!("✖ {why}")).color(ui.visuals().error_fg_color));
            if ui.button("Try again").clicked() {
                commands.push(Command::LoadCatalog(node.id.clone()));
            }
        }
        Some(Ok(list)) => {
            let mut search = catalog.search.clone();
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut search)
                        .hint_text(format!("search {} {word}", list.len()))
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(heading.id);
            if field.changed() {
                commands.push(Command::SearchEntities {
                    node: node.id.clone(),
                    text: search.clone(),
                });
            }
            let needle = search.to_lowercase();
            egui::ScrollArea::vertical()
                .id_salt("objects")
                .max_height(150.0)
                .show(ui, |ui| {
                    for e in list.iter().filter(|e| {
                        needle.is_empty()
                            || e.name.to_lowercase().contains(&needle)
                            || e.label.to_lowercase().contains(&needle)
                    }) {
                        let text = if e.label.is_empty() || e.label == e.name {
                            e.name.clone()
                        } else {
                            format!("{}  ·  {}", e.label, e.name)
                        };
                        if ui.selectable_label(e.name == key.1, text).clicked() && e.name != key.1 {
                            let mut config = node.config.clone();
                            config[entities.setting] = Value::from(e.name.clone());
                            if let Some(o) = config.as_object_mut() {
                                // The old object's fields and conditions mean nothing here.
                                o.remove("fields");
                                o.remove("conditions");
                            }
                            commands.push(Command::SetConfig {
                                node: node.id.clone(),
                                config,
                            });
                        }
                    }
                });
        }
    }
    if key.1.is_empty() {
        return;
    }
    ui.add_space(4.0);
    match &catalog.fields {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new(format!("Reading the fields of {}…", key.1)).weak());
            });
        }
        Some(Err(why)) => {
            ui.label(RichText::new(format!("✖ {why}")).color(ui.visuals().error_fg_color));
        }
        Some(Ok(fields)) => {
            let chosen: Vec<String> = node
                .config
                .get("fields")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let all = chosen.is_empty();
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "Fields of {} ({} of {})",
                        key.1,
                        if all { fields.len() } else { chosen.len() },
                        fields.len()
                    ))
                    .strong(),
                );
                if !all && ui.small_button("All").clicked() {
                    let mut config = node.config.clone();
                    if let Some(o) = config.as_object_mut() {
                        o.remove("fields");
                    }
                    commands.push(Command::SetConfig {
                        node: node.id.clone(),
                        config,
                    });
                }
            });
            egui::ScrollArea::vertical()
                .id_salt("object fields")
                .max_height(220.0)
                .show(ui, |ui| {
                    for field in fields {
                        let name = &field.name;
                        let mut on = all || chosen.contains(name);
                        let label = field.shown();
                        if ui.checkbox(&mut on, label).changed() {
                            // Keep the object's order; every field checked is "all".
                            let now: Vec<&String> = fields
                                .iter()
                                .map(|f| &f.name)
                                .filter(|n| {
                                    if *n == name {
                                        on
                                    } else {
                                        all || chosen.contains(n)
                                    }
                                })
                                .collect();
                            let mut config = node.config.clone();
                            if let Some(o) = config.as_object_mut() {
                                if now.len() == fields.len() {
                                    o.remove("fields");
                                } else {
                                    o.insert(
                                        "fields".into(),
                                        Value::from(now.into_iter().cloned().collect::<Vec<_>>()),
                                    );
                                }
                            }
                            commands.push(Command::SetConfig {
                                node: node.id.clone(),
                                config,
                            });
                        }
                    }
                });
        }
    }
}

/// "Test connection" and what the last test of these settings found.
fn connection_test(ui: &mut Ui, state: &AppState, node: &Node, commands: &mut Vec<Command>) {
    let test = state
        .connection_tests
        .get(&node.id)
        .filter(|t| t.document == state.document && t.config == node.config);
    ui.horizontal(|ui| {
        let running = test.is_some_and(|t| t.result.is_none());
        if ui
            .add_enabled(!running, egui::Button::new("Test connection"))
            .clicked()
        {
            commands.push(Command::TestConnection(node.id.clone()));
        }
        if running {
            ui.spinner();
            ui.label(RichText::new("Connecting…").weak());
        }
    });
    match test.and_then(|t| t.result.as_ref()) {
        Some(Ok(found)) => {
            ui.label(RichText::new(format!("✔ {found}")).color(super::SUCCESS));
        }
        Some(Err(why)) => {
            ui.label(RichText::new(format!("✖ {why}")).color(ui.visuals().error_fg_color));
        }
        None => {}
    }
}
