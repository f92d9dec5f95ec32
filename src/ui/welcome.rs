//! The welcome screen, shown when no flow is open: start a new flow, open one, open the
//! demo flow or an example, or go back to a recent flow. Also the question asked before
//! unsaved changes would be dropped.

use std::path::{Path, PathBuf};

use egui::{RichText, Ui};

use super::commands::Command;
use super::state::{AppFlowWaiting, AppState};
use crate::flow::Flow;

/// An example flow found beside the app.
pub struct Example {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
}

/// The example flows: `flows/` in the working folder, or in the source tree the app was
/// built from (`target/release/…/../../flows`). Read once, when the app starts.
pub fn find_examples() -> Vec<Example> {
    let mut candidates = vec![PathBuf::from("flows")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent)
    {
        candidates.push(root.join("flows"));
    }
    let Some(folder) = candidates.into_iter().find(|c| c.is_dir()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&folder) else {
        return Vec::new();
    };
    let mut examples: Vec<Example> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| {
            let flow = Flow::load(&path).ok()?;
            Some(Example {
                path: std::fs::canonicalize(&path).unwrap_or(path),
                name: flow.name,
                description: flow.description.unwrap_or_default(),
            })
        })
        .collect();
    examples.sort_by(|a, b| a.name.cmp(&b.name));
    examples
}

pub fn ui(ui: &mut Ui, state: &AppState) -> Vec<Command> {
    let mut c = Vec::new();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let width = ui.available_width().min(760.0);
            ui.add_space(48.0);
            ui.vertical_centered(|ui| {
                ui.set_max_width(width);
                ui.label(RichText::new("Tributary").size(32.0).strong());
                ui.label(
                    RichText::new("Move records from where they are to where you need them.")
                        .size(15.0)
                        .weak(),
                );
            });
            // A flow that would not open says why here: the toolbar is not shown.
            if let Some(status) = state.status.as_ref().filter(|s| s.error) {
                ui.add_space(12.0);
                ui.vertical_centered(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, &status.text);
                });
            }
            ui.add_space(28.0);
            ui.horizontal_top(|ui| {
                let side = (ui.available_width() - width).max(0.0) / 2.0;
                ui.add_space(side);
                ui.vertical(|ui| {
                    ui.set_width(width);
                    start(ui, &mut c);
                    if !state.examples.is_empty() {
                        section(ui, "Examples");
                        for e in &state.examples {
                            entry(ui, &e.name, &e.description, || {
                                c.push(Command::OpenFlow(e.path.clone()))
                            });
                        }
                    }
                    if !state.recent.is_empty() {
                        section(ui, "Recent");
                        for path in &state.recent {
                            let (name, file) = state.recent_label(path);
                            entry(ui, &name, &file, || c.push(Command::OpenFlow(path.clone())));
                        }
                    }
                });
            });
            ui.add_space(24.0);
        });
    c
}

fn start(ui: &mut Ui, c: &mut Vec<Command>) {
    section(ui, "Start");
    ui.horizontal(|ui| {
        ui.spacing_mut().button_padding = egui::vec2(12.0, 6.0);
        let big = |text: &str| egui::Button::new(RichText::new(text).size(15.0));
        if ui
            .add(super::primary_button("▶ Try the demo flow"))
            .on_hover_text(
                "Opportunities from the built-in demo CRM, masked and written to a local \
                 folder. No account needed.",
            )
            .clicked()
        {
            c.push(Command::OpenDemo);
        }
        if ui.add(big("+ New flow")).clicked() {
            c.push(Command::NewFlow);
        }
        if ui.add(big("📂 Open…")).clicked() {
            c.push(Command::ChooseFlowToOpen);
        }
        if ui
            .add(big("📥 Import from AppFlow…"))
            .on_hover_text(
                "An AppFlow flow: a CreateFlow request, the output of describe-flow, or a \
                 CloudFormation template",
            )
            .clicked()
        {
            c.push(Command::ChooseAppFlowToImport);
        }
    });
}

fn section(ui: &mut Ui, title: &str) {
    ui.add_space(18.0);
    ui.label(RichText::new(title).size(16.0).strong());
    ui.separator();
}

fn entry(ui: &mut Ui, name: &str, detail: &str, on_click: impl FnOnce()) {
    ui.horizontal(|ui| {
        if ui.link(RichText::new(name).size(14.0)).clicked() {
            on_click();
        }
    });
    if !detail.is_empty() {
        ui.label(RichText::new(detail).weak());
    }
    ui.add_space(6.0);
}

/// Asks whether to save before the waiting command drops unsaved changes.
pub fn confirm(ui: &Ui, state: &AppState) -> Vec<Command> {
    let mut c = Vec::new();
    let Some(waiting) = &state.confirm else {
        return c;
    };
    let name = state
        .doc
        .path
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or("this flow".into(), |n| n.to_string_lossy().into_owned());
    let what = match waiting {
        Command::Quit => "before closing",
        Command::CloseFlow => "before closing it",
        _ => "before opening another flow",
    };
    let modal = egui::Modal::new(egui::Id::new("unsaved changes")).show(ui.ctx(), |ui| {
        ui.set_width(380.0);
        ui.label(
            RichText::new(format!("Save the changes to {name} {what}?"))
                .size(15.0)
                .strong(),
        );
        ui.add_space(4.0);
        ui.label("Changes you do not save are lost.");
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if ui.button("Save").clicked() {
                c.push(Command::SaveThenContinue);
            }
            if ui.button("Don't save").clicked() {
                c.push(Command::DiscardThenContinue);
            }
            if ui.button("Cancel").clicked() {
                c.push(Command::KeepEditing);
            }
        });
    });
    if modal.should_close() && c.is_empty() {
        c.push(Command::KeepEditing);
    }
    c
}

/// The app's own path box, for when the desktop's file dialog cannot be shown: it says
/// so, and takes the path typed.
pub fn path_prompt(ui: &Ui, state: &AppState) -> Vec<Command> {
    use super::worker::DialogRequest;
    let mut c = Vec::new();
    let Some(prompt) = &state.path_prompt else {
        return c;
    };
    let (title, button) = match &prompt.request {
        DialogRequest::OpenFlow => ("Open a flow file", "Open"),
        DialogRequest::SaveFlow(_) => ("Save the flow as", "Save"),
        DialogRequest::ImportAppFlow => ("Import an AppFlow flow", "Import"),
        DialogRequest::ExportAppFlow(_) => ("Export as an AppFlow flow", "Export"),
        DialogRequest::NodePath { folder: true, .. } => ("Choose a folder", "Choose"),
        DialogRequest::NodePath { .. } => ("Choose a file", "Choose"),
    };
    let modal = egui::Modal::new(egui::Id::new("path prompt")).show(ui.ctx(), |ui| {
        ui.set_width(520.0);
        ui.label(RichText::new(title).size(15.0).strong());
        ui.add_space(4.0);
        ui.label(
            RichText::new(
                "The desktop's file dialog could not be opened (it needs xdg-desktop-portal or zenity). Type the path instead:",
            )
            .weak(),
        );
        ui.add_space(6.0);
        let mut text = prompt.text.clone();
        let field = ui.add(
            egui::TextEdit::singleline(&mut text)
                .id_salt("path prompt text")
                .desired_width(f32::INFINITY),
        );
        if ui.memory(|m| m.focused().is_none()) {
            field.request_focus();
        }
        if field.changed() {
            c.push(Command::EditPathPrompt(text.clone()));
        }
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let ready = !text.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new(button)).clicked() || (enter && ready) {
                c.push(Command::SubmitPathPrompt);
            }
            if ui.button("Cancel").clicked() {
                c.push(Command::CancelPathPrompt);
            }
        });
    });
    if modal.should_close() && c.is_empty() {
        c.push(Command::CancelPathPrompt);
    }
    c
}

/// What an AppFlow import or export cannot carry over, each with where it is in the file
/// and why, before the flow opens or the file is written.
pub fn appflow_report(ui: &Ui, state: &AppState) -> Vec<Command> {
    let mut c = Vec::new();
    // The question about unsaved changes comes first.
    let Some(report) = state.appflow.as_ref().filter(|_| state.confirm.is_none()) else {
        return c;
    };
    let modal = egui::Modal::new(egui::Id::new("appflow report")).show(ui.ctx(), |ui| {
        ui.set_width(640.0);
        ui.label(RichText::new(&report.title).size(15.0).strong());
        ui.add_space(4.0);
        egui::ScrollArea::vertical()
            .max_height(360.0)
            .show(ui, |ui| {
                if !report.gaps.is_empty() {
                    ui.label(format!(
                        "{} of the AppFlow flow cannot be carried over:",
                        match report.gaps.len() {
                            1 => "One part".to_string(),
                            n => format!("{n} parts"),
                        }
                    ));
                    for gap in &report.gaps {
                        let (at, why) = gap.split_once(": ").unwrap_or(("", gap));
                        ui.add_space(4.0);
                        ui.label(RichText::new(at).monospace().small().weak());
                        ui.horizontal_wrapped(|ui| {
                            ui.label("•");
                            ui.label(why);
                        });
                    }
                    ui.add_space(6.0);
                }
                for note in &report.notes {
                    ui.horizontal_wrapped(|ui| {
                        ui.label("➡");
                        ui.label(note);
                    });
                }
                if let AppFlowWaiting::Choose { path, flows } = &report.waiting {
                    for (flow, about) in flows {
                        ui.horizontal(|ui| {
                            if ui.button(flow).clicked() {
                                c.push(Command::ImportAppFlow {
                                    path: path.clone(),
                                    flow: Some(flow.clone()),
                                });
                            }
                            ui.label(RichText::new(about).weak());
                        });
                    }
                }
            });
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if !report.go_ahead.is_empty() && ui.button(&report.go_ahead).clicked() {
                c.push(Command::AcceptAppFlowReport);
            }
            if ui.button("Cancel").clicked() {
                c.push(Command::DismissAppFlowReport);
            }
        });
    });
    if modal.should_close() && c.is_empty() {
        c.push(Command::DismissAppFlowReport);
    }
    c
}
