//! The window: menu bar and toolbar, palette on the left, canvas in the middle, inspector
//! on the right, Preview/Run/Cost/Problems below. Drawing code only gathers commands; the
//! state applies them.

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};

use super::canvas::Canvas;
use super::commands::Command;
use super::state::AppState;
use super::worker::Worker;
use super::{connections, inspector, palette, panels, welcome};

pub struct TributaryApp {
    pub state: AppState,
    pub worker: Worker,
    pub canvas: Canvas,
    title: String,
    /// The close has been sent to the window.
    closing: bool,
    /// The keyboard shortcuts window is open (F1 or ?).
    pub show_shortcuts: bool,
}

/// Every shortcut, as the help window lists them: (keys, what they do).
const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+N", "New flow"),
    ("Ctrl+O", "Open a flow"),
    ("Ctrl+S", "Save"),
    ("Ctrl+Shift+S", "Save as"),
    ("Ctrl+R", "Run the flow"),
    ("Ctrl+Z", "Undo"),
    ("Ctrl+Shift+Z, Ctrl+Y", "Redo"),
    ("Ctrl+C, Ctrl+V", "Copy and paste nodes"),
    ("Ctrl+D", "Duplicate the selected nodes"),
    ("Ctrl+A", "Select every node"),
    ("Delete, Backspace", "Delete the selected nodes"),
    ("F", "Fit the flow in view"),
    ("Scroll", "Zoom the canvas"),
    ("Middle-drag", "Pan the canvas"),
    ("Right-click", "Find a node type to add"),
    ("F1, ?", "This list"),
    ("Ctrl+Q", "Quit"),
];

/// The canvas behind the nodes: darker than the panels in the dark theme, a light grey in
/// the light one so the white node bodies stand out.
fn canvas_color(visuals: &egui::Visuals) -> egui::Color32 {
    if visuals.dark_mode {
        visuals.extreme_bg_color
    } else {
        egui::Color32::from_rgb(0xe3, 0xe6, 0xeb)
    }
}

fn shortcut(ui: &Ui, modifiers: Modifiers, key: Key) -> bool {
    ui.ctx()
        .input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(modifiers, key)))
}

impl TributaryApp {
    pub fn new(state: AppState, worker: Worker) -> Self {
        let canvas = Canvas::default();
        Self {
            state,
            worker,
            canvas,
            title: String::new(),
            closing: false,
            show_shortcuts: false,
        }
    }

    fn apply(&mut self, commands: Vec<Command>) {
        for c in commands {
            self.state.apply(c, &self.worker);
        }
    }

    /// The whole window, inside `ui`.
    pub fn ui(&mut self, ui: &mut Ui) {
        if let Some(wait) = self.state.poll(&self.worker) {
            ui.ctx().request_repaint_after(wait);
        }
        let mut commands = self.shortcuts(ui);

        egui::Panel::top("menu").show(ui, |ui| {
            commands.extend(self.menu(ui));
        });
        commands.extend(welcome::confirm(ui, &self.state));
        commands.extend(welcome::path_prompt(ui, &self.state));
        commands.extend(welcome::appflow_report(ui, &self.state));
        commands.extend(connections::window(ui, &self.state));
        commands.extend(connections::vault_prompt(ui, &self.state));
        if self.state.welcome {
            egui::CentralPanel::default().show(ui, |ui| {
                commands.extend(welcome::ui(ui, &self.state));
            });
        } else {
            self.editor(ui, &mut commands);
        }
        self.apply(commands);
        self.shortcuts_window(ui);
        self.window(ui);
    }

    /// The keyboard shortcuts, in a window that F1, ? or its close button put away.
    fn shortcuts_window(&mut self, ui: &Ui) {
        let mut open = self.show_shortcuts;
        egui::Window::new("Keyboard shortcuts")
            .open(&mut open)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .collapsible(false)
            .resizable(false)
            .show(ui.ctx(), |ui| {
                egui::Grid::new("shortcuts")
                    .striped(true)
                    .spacing([16.0, 4.0])
                    .show(ui, |ui| {
                        for (keys, what) in SHORTCUTS {
                            ui.label(RichText::new(*keys).strong());
                            ui.label(*what);
                            ui.end_row();
                        }
                    });
            });
        self.show_shortcuts = open;
    }

    /// Title, closing and repaints: what the window itself needs after the commands ran.
    fn window(&mut self, ui: &Ui) {
        let ctx = ui.ctx();
        // Closing the window with unsaved changes asks first, like every other way out.
        if ctx.input(|i| i.viewport().close_requested()) && !self.state.quit {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.state.apply(Command::Quit, &self.worker);
        }
        if self.state.quit && !self.closing {
            self.closing = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        let title = self.state.doc.title();
        let title = if self.state.welcome {
            "Tributary".to_string()
        } else {
            title
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        if self.state.run.is_running() {
            // Live counts and the chart move even when no event arrives this instant.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Toolbar, palette, canvas, inspector and the panels below.
    fn editor(&mut self, ui: &mut Ui, commands: &mut Vec<Command>) {
        egui::Panel::top("toolbar").show(ui, |ui| {
            commands.extend(self.toolbar(ui));
        });
        egui::Panel::left("palette")
            .resizable(true)
            .default_size(220.0)
            .size_range(180.0..=420.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                commands.extend(palette::ui(
                    ui,
                    &mut self.state.palette_search,
                    self.canvas.center,
                ));
                ui.take_available_space();
            });
        egui::Panel::right("inspector")
            .resizable(true)
            .default_size(310.0)
            .size_range(260.0..=560.0)
            .show(ui, |ui| {
                ui.add_space(4.0);
                commands.extend(inspector::ui(ui, &self.state));
                ui.take_available_space();
            });
        egui::Panel::bottom("panels")
            .resizable(true)
            .default_size(270.0)
            .size_range(120.0..=700.0)
            .show(ui, |ui| {
                ui.add_space(2.0);
                commands.extend(panels::tabs(ui, &self.state));
                ui.take_available_space();
            });
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(canvas_color(ui.visuals())))
            .show(ui, |ui| {
                commands.extend(self.canvas.ui(ui, &self.state));
            });
    }

    fn shortcuts(&mut self, ui: &Ui) -> Vec<Command> {
        let mut c = Vec::new();
        let cmd = Modifiers::COMMAND;
        if shortcut(ui, cmd, Key::N) {
            c.push(Command::NewFlow);
        }
        if shortcut(ui, cmd, Key::O) {
            c.push(Command::ChooseFlowToOpen);
        }
        if shortcut(ui, cmd, Key::Q) {
            c.push(Command::Quit);
        }
        if self.state.welcome {
            return c;
        }
        if shortcut(ui, cmd | Modifiers::SHIFT, Key::S) {
            c.push(Command::ChooseSaveAs);
        }
        if shortcut(ui, cmd, Key::S) {
            c.push(Command::Save);
        }
        if shortcut(ui, cmd, Key::R) {
            c.push(Command::Run);
        }
        if shortcut(ui, cmd | Modifiers::SHIFT, Key::Z) || shortcut(ui, cmd, Key::Y) {
            c.push(Command::Redo);
        }
        // Editing keys belong to a text field when one has the focus.
        let typing = ui.ctx().memory(|m| m.focused().is_some());
        if typing {
            return c;
        }
        if shortcut(ui, cmd, Key::Z) {
            c.push(Command::Undo);
        }
        if shortcut(ui, cmd, Key::D) {
            c.push(Command::Duplicate);
        }
        if shortcut(ui, cmd, Key::A) {
            c.push(Command::SelectAll);
        }
        if shortcut(ui, Modifiers::NONE, Key::F) {
            self.canvas.fit_to_view();
        }
        let asked_for_help = ui.ctx().input(|i| {
            i.key_pressed(Key::F1)
                || i.events
                    .iter()
                    .any(|e| matches!(e, egui::Event::Text(t) if t == "?"))
        });
        if asked_for_help {
            self.show_shortcuts = !self.show_shortcuts;
        }
        let events: Vec<egui::Event> = ui.ctx().input(|i| i.events.clone());
        for e in events {
            match e {
                egui::Event::Copy => c.push(Command::Copy),
                egui::Event::Paste(_) => c.push(Command::Paste),
                egui::Event::Key {
                    key: Key::Delete | Key::Backspace,
                    pressed: true,
                    ..
                } if !self.state.selection.is_empty() => {
                    c.push(Command::RemoveNodes(self.state.selection.clone()));
                }
                _ => {}
            }
        }
        c
    }

    fn menu(&mut self, ui: &mut Ui) -> Vec<Command> {
        let mut c = Vec::new();
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                let open = !self.state.welcome;
                for (label, key, command, enabled) in [
                    ("New flow", "Ctrl+N", Command::NewFlow, true),
                    ("Open…", "Ctrl+O", Command::ChooseFlowToOpen, true),
                    ("Save", "Ctrl+S", Command::Save, open),
                    ("Save as…", "Ctrl+Shift+S", Command::ChooseSaveAs, open),
                ] {
                    if ui
                        .add_enabled(enabled, egui::Button::new(label).shortcut_text(key))
                        .clicked()
                    {
                        c.push(command);
                    }
                }
                ui.menu_button("Open recent", |ui| {
                    if self.state.recent.is_empty() {
                        ui.label(RichText::new("No recent flows").weak());
                    }
                    for path in &self.state.recent {
                        let (name, file) = self.state.recent_label(path);
                        if ui
                            .button(format!("{name}  ·  {file}"))
                            .on_hover_text(&file)
                            .clicked()
                        {
                            c.push(Command::OpenFlow(path.clone()));
                        }
                    }
                });
                if ui.button("Open the demo flow").clicked() {
                    c.push(Command::OpenDemo);
                }
                ui.separator();
                if ui.button("Import AppFlow flow…").clicked() {
                    c.push(Command::ChooseAppFlowToImport);
                }
                if ui
                    .add_enabled(open, egui::Button::new("Export as AppFlow flow…"))
                    .clicked()
                {
                    c.push(Command::ChooseAppFlowExport);
                }
                ui.separator();
                if ui
                    .add_enabled(!self.state.welcome, egui::Button::new("Close flow"))
                    .clicked()
                {
                    c.push(Command::CloseFlow);
                }
                if ui
                    .add(egui::Button::new("Quit").shortcut_text("Ctrl+Q"))
                    .clicked()
                {
                    c.push(Command::Quit);
                }
            });
            if ui.button("Connections").clicked() {
                c.push(Command::ShowConnections(true));
            }
            if self.state.welcome {
                return;
            }
            ui.menu_button("Edit", |ui| {
                let some = !self.state.selection.is_empty();
                for (label, key, command, enabled) in [
                    ("Undo", "Ctrl+Z", Command::Undo, true),
                    ("Redo", "Ctrl+Shift+Z", Command::Redo, true),
                    ("Copy", "Ctrl+C", Command::Copy, some),
                    ("Paste", "Ctrl+V", Command::Paste, true),
                    ("Duplicate", "Ctrl+D", Command::Duplicate, some),
                    (
                        "Delete",
                        "Del",
                        Command::RemoveNodes(self.state.selection.clone()),
                        some,
                    ),
                    ("Select all", "Ctrl+A", Command::SelectAll, true),
                ] {
                    if ui
                        .add_enabled(enabled, egui::Button::new(label).shortcut_text(key))
                        .clicked()
                    {
                        c.push(command);
                    }
                }
            });
            ui.menu_button("View", |ui| {
                if ui
                    .add(egui::Button::new("Fit flow to view").shortcut_text("F"))
                    .clicked()
                {
                    self.canvas.fit_to_view();
                }
                if ui
                    .add_enabled(!self.state.welcome, egui::Button::new("Tidy layout"))
                    .on_hover_text("Lay the flow out left to right, each node after its inputs")
                    .clicked()
                {
                    c.push(Command::TidyLayout);
                    self.canvas.fit_after_change();
                }
                if ui
                    .add(egui::Button::new("Keyboard shortcuts").shortcut_text("F1"))
                    .clicked()
                {
                    self.show_shortcuts = true;
                }
                egui::widgets::global_theme_preference_buttons(ui);
            });
            ui.menu_button("Run", |ui| {
                if ui
                    .add_enabled(
                        !self.state.run.is_running(),
                        egui::Button::new("Run flow").shortcut_text("Ctrl+R"),
                    )
                    .clicked()
                {
                    c.push(Command::Run);
                }
                if ui
                    .add_enabled(self.state.run.is_running(), egui::Button::new("Cancel run"))
                    .clicked()
                {
                    c.push(Command::CancelRun);
                }
            });
        });
        c
    }

    fn toolbar(&mut self, ui: &mut Ui) -> Vec<Command> {
        let mut c = Vec::new();
        ui.horizontal(|ui| {
            ui.add_space(2.0);
            if self.state.run.is_running() {
                if ui
                    .add(egui::Button::new(RichText::new("⏹ Cancel").size(15.0)))
                    .clicked()
                {
                    c.push(Command::CancelRun);
                }
                ui.spinner();
            } else {
                if ui
                    .add(super::primary_button("▶ Run"))
                    .on_hover_text("Run the whole flow (Ctrl+R)")
                    .clicked()
                {
                    c.push(Command::Run);
                }
            }
            ui.separator();
            ui.label(RichText::new(&self.state.doc.flow.name).strong());
            if self.state.doc.is_dirty() {
                ui.label(RichText::new("unsaved").weak());
            }
            ui.separator();
            // The canvas's zoom: where it is, and buttons for a person without a wheel.
            if ui.small_button("-").on_hover_text("Zoom out").clicked() {
                self.canvas.zoom_by(0.8);
            }
            ui.label(RichText::new(format!("{:.0}%", self.canvas.zoom() * 100.0)).weak())
                .on_hover_text("The canvas's zoom; scroll on the canvas to zoom too");
            if ui.small_button("+").on_hover_text("Zoom in").clicked() {
                self.canvas.zoom_by(1.25);
            }
            if ui
                .small_button("Fit")
                .on_hover_text("Show the whole flow (F)")
                .clicked()
            {
                self.canvas.fit_to_view();
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let problems = self.state.all_problems().len();
                if self.state.analysis_revision == self.state.doc.revision {
                    if problems == 0 {
                        ui.label(RichText::new("✔ ready to run").color(super::SUCCESS));
                    } else if ui
                        .link(
                            RichText::new(format!(
                                "⚠ {problems} problem{}",
                                if problems == 1 { "" } else { "s" }
                            ))
                            .color(ui.visuals().error_fg_color),
                        )
                        .clicked()
                    {
                        c.push(Command::ShowTab(super::state::Tab::Problems));
                    }
                }
                if let Some(status) = &self.state.status {
                    ui.separator();
                    let color = if status.error {
                        ui.visuals().error_fg_color
                    } else {
                        ui.visuals().weak_text_color()
                    };
                    ui.label(RichText::new(&status.text).color(color));
                }
            });
        });
        c
    }
}

impl eframe::App for TributaryApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        TributaryApp::ui(self, ui);
    }
}
