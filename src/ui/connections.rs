//! The Connections window (list, New connection form, log in, test, delete) and the vault
//! passphrase prompt. Drawing only: what the user does becomes commands.

use egui::{RichText, TextEdit, Ui};

use super::commands::Command;
use super::connection_state::{ConnectionDraft, ConnectionsState};
use super::state::AppState;
use crate::auth::sign_in::Setting;
use crate::auth::{AuthKind, Connection, Secret};
use crate::connectors::framework::service;

/// The window, when open.
pub fn window(ui: &Ui, state: &AppState) -> Vec<Command> {
    let mut c = Vec::new();
    let conns = &state.connections;
    if !conns.open {
        return c;
    }
    let mut open = true;
    let center = ui.ctx().content_rect().center();
    egui::Window::new("Connections")
        .open(&mut open)
        .collapsible(false)
        .resizable(true)
        .pivot(egui::Align2::CENTER_CENTER)
        .default_pos(center)
        .default_size([800.0, 440.0])
        .min_width(640.0)
        .show(ui.ctx(), |ui| {
            ui.set_min_width(760.0);
            match &conns.draft {
                Some(draft) => draft_form(ui, draft, &mut c),
                None => list(ui, conns, &mut c),
            }
        });
    if !open {
        c.push(Command::ShowConnections(false));
    }
    c
}

fn list(ui: &mut Ui, conns: &ConnectionsState, c: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if ui.add(super::primary_button("+ New connection")).clicked() {
            c.push(Command::NewConnection {
                connector: None,
                for_node: None,
            });
        }
        ui.label(
            RichText::new("Secrets are kept in the encrypted vault, never in flow files.").weak(),
        );
    });
    ui.add_space(6.0);
    if let Some(e) = &conns.load_error {
        ui.label(RichText::new(e).color(ui.visuals().error_fg_color));
    }
    proxy(ui, conns, c);
    ui.separator();
    if conns.list.is_empty() {
        ui.add_space(20.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("No connections yet").size(16.0).strong());
            ui.label("A connection signs in to a service once; flows then name it.");
        });
        return;
    }
    let now = chrono::Utc::now();
    egui::ScrollArea::vertical()
        .auto_shrink([false, true])
        .show(ui, |ui| {
            for (name, connection) in &conns.list {
                ui.push_id(name, |ui| row(ui, conns, name, connection, now, c));
                ui.separator();
            }
        });
}

/// The proxy all connections go through, for networks that allow no other way out.
fn proxy(ui: &mut Ui, conns: &ConnectionsState, c: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        let label = ui.label("Proxy");
        let mut text = conns.proxy.clone();
        let field = ui
            .add(
                TextEdit::singleline(&mut text)
                    .desired_width(300.0)
                    .hint_text("none: HTTPS_PROXY and NO_PROXY apply"),
            )
            .labelled_by(label.id)
            .on_hover_text("e.g. http://proxy.example.com:3128, for every connection");
        if field.changed() {
            c.push(Command::EditProxy(text));
        }
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Save proxy").clicked() || enter {
            c.push(Command::SaveProxy);
        }
        match &conns.proxy_outcome {
            Some(Ok(words)) => {
                ui.label(RichText::new(format!("✔ {words}")).color(super::SUCCESS));
            }
            Some(Err(words)) => {
                ui.label(RichText::new(format!("⚠ {words}")).color(ui.visuals().error_fg_color));
            }
            None => {}
        }
    });
}

fn row(
    ui: &mut Ui,
    conns: &ConnectionsState,
    name: &str,
    connection: &Connection,
    now: chrono::DateTime<chrono::Utc>,
    c: &mut Vec<Command>,
) {
    let label = service::sign_in(&connection.connector)
        .map(|e| e.label)
        .unwrap_or(&connection.connector);
    let busy = conns.busy.get(name);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.set_width(320.0);
            ui.label(RichText::new(name).strong().size(14.0));
            ui.label(RichText::new(format!("{label} · {}", connection.auth.label())).weak());
        });
        ui.vertical(|ui| {
            ui.set_width(200.0);
            let state = connection.state(now);
            let color = if state == "ready" {
                super::SUCCESS
            } else {
                ui.visuals().warn_fg_color
            };
            ui.label(RichText::new(state).color(color));
            let mut details = Vec::new();
            if let Some(who) = &connection.status.identity {
                details.push(format!("as {who}"));
            }
            if let Some(at) = connection.status.expires_at {
                details.push(format!("token until {}", at.format("%Y-%m-%d %H:%M UTC")));
            }
            if !details.is_empty() {
                ui.label(RichText::new(details.join(" · ")).weak());
            }
        });
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if conns.confirm_remove.as_deref() == Some(name) {
                if ui.button("Cancel").clicked() {
                    c.push(Command::AskRemoveConnection(None));
                }
                if ui
                    .button(RichText::new("Delete").color(ui.visuals().error_fg_color))
                    .clicked()
                {
                    c.push(Command::RemoveConnection(name.to_string()));
                }
                ui.label("Delete it and its secrets?");
                return;
            }
            if ui
                .add_enabled(busy.is_none(), egui::Button::new("Delete"))
                .clicked()
            {
                c.push(Command::AskRemoveConnection(Some(name.to_string())));
            }
            if ui
                .add_enabled(busy.is_none(), egui::Button::new("Test"))
                .clicked()
            {
                c.push(Command::CheckConnection(name.to_string()));
            }
            if connection.auth.uses_tokens()
                && ui
                    .add_enabled(busy.is_none(), egui::Button::new("Log in with browser"))
                    .clicked()
            {
                c.push(Command::LogIn(name.to_string()));
            }
        });
    });
    match (busy, conns.outcome.get(name)) {
        (Some(busy), _) if busy.login => {
            ui.horizontal(|ui| {
                ui.spinner();
                match &busy.url {
                    Some(url) => {
                        ui.label("Waiting for the browser…");
                        if ui
                            .button("Copy link")
                            .on_hover_text("If no browser opened, paste this link into one")
                            .clicked()
                        {
                            ui.ctx().copy_text(url.clone());
                        }
                    }
                    None => {
                        ui.label("Starting the login…");
                    }
                }
                if ui.button("Cancel").clicked() {
                    c.push(Command::CancelLogIn(name.to_string()));
                }
            });
        }
        (Some(_), _) => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Testing…");
            });
        }
        (None, Some(Ok(words))) => {
            ui.label(RichText::new(format!("✔ {words}")).color(super::SUCCESS));
        }
        (None, Some(Err(words))) => {
            ui.label(RichText::new(format!("⚠ {words}")).color(ui.visuals().error_fg_color));
        }
        (None, None) => {}
    }
}

fn draft_form(ui: &mut Ui, draft: &ConnectionDraft, c: &mut Vec<Command>) {
    let mut edited = draft.clone();
    let Ok(entry) = service::sign_in(&draft.connector) else {
        return;
    };
    ui.label(RichText::new("New connection").size(16.0).strong());
    ui.add_space(6.0);
    egui::Grid::new("new connection")
        .num_columns(2)
        .spacing([12.0, 8.0])
        .show(ui, |ui| {
            ui.label("Connector");
            egui::ComboBox::from_id_salt("connector")
                .selected_text(entry.label)
                .width(280.0)
                .show_ui(ui, |ui| {
                    for option in service::sign_ins() {
                        ui.selectable_value(
                            &mut edited.connector,
                            option.connector.to_string(),
                            option.label,
                        );
                    }
                });
            ui.end_row();

            let label = ui.label("Name");
            ui.add(
                TextEdit::singleline(&mut edited.name)
                    .desired_width(280.0)
                    .hint_text("how flows will name it"),
            )
            .labelled_by(label.id);
            ui.end_row();

            ui.label("Sign in with");
            egui::ComboBox::from_id_salt("auth kind")
                .selected_text(edited.auth.label())
                .width(280.0)
                .show_ui(ui, |ui| {
                    for kind in entry.kinds {
                        ui.selectable_value(&mut edited.auth, *kind, kind.label());
                    }
                });
            ui.end_row();

            for setting in entry.settings_for(draft.auth).filter(|s| !is_more(s)) {
                setting_row(ui, setting, &mut edited);
            }
            for (field, required) in entry.secret_fields(draft.auth) {
                let words = field.replace('_', " ");
                let mut label = RichText::new(super::form::humanize(field));
                if required {
                    label = label.strong();
                }
                let label = ui.label(label);
                let mut text = edited
                    .secrets
                    .get(field)
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default();
                if ui
                    .add(
                        TextEdit::singleline(&mut text)
                            .password(true)
                            .desired_width(280.0)
                            .hint_text(if required {
                                format!("the {words}, kept in the vault")
                            } else {
                                "only if the service gave you one".to_string()
                            }),
                    )
                    .labelled_by(label.id)
                    .changed()
                {
                    edited.secrets.insert(field.to_string(), Secret::new(text));
                }
                ui.end_row();
            }
        });
    let more: Vec<_> = entry
        .settings_for(draft.auth)
        .filter(|s| is_more(s))
        .collect();
    if !more.is_empty() {
        egui::CollapsingHeader::new("More settings")
            .id_salt(("more settings", &draft.connector))
            .show(ui, |ui| {
                egui::Grid::new("more connection settings")
                    .num_columns(2)
                    .spacing([12.0, 8.0])
                    .show(ui, |ui| {
                        for setting in more {
                            setting_row(ui, setting, &mut edited);
                        }
                    });
            });
    }
    if draft.auth == AuthKind::OAuth2 {
        ui.add_space(4.0);
        ui.label(
            RichText::new(
                "On the service, register the redirect URI http://127.0.0.1/callback (with the callback port, if you set one).",
            )
            .weak(),
        );
    }
    if let Some(e) = &draft.error {
        ui.add_space(4.0);
        ui.label(RichText::new(format!("⚠ {e}")).color(ui.visuals().error_fg_color));
    }
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        if ui.add(super::primary_button("Save")).clicked() {
            c.push(Command::SaveConnectionDraft);
        }
        if ui.button("Cancel").clicked() {
            c.push(Command::CancelConnectionDraft);
        }
    });
    if edited != *draft {
        edited.error = None;
        c.push(Command::EditConnectionDraft(edited));
    }
}

/// The passphrase prompt, in front of everything, when a command waits for the vault.
pub fn vault_prompt(ui: &Ui, state: &AppState) -> Vec<Command> {
    let mut c = Vec::new();
    let Some(prompt) = &state.connections.vault_prompt else {
        return c;
    };
    let modal = egui::Modal::new(egui::Id::new("vault passphrase")).show(ui.ctx(), |ui| {
        ui.set_width(400.0);
        let title = if prompt.new_vault {
            "Choose a passphrase for the vault"
        } else {
            "Unlock the vault"
        };
        ui.label(RichText::new(title).size(15.0).strong());
        ui.add_space(4.0);
        ui.label(if prompt.new_vault {
            "Connection secrets are kept encrypted with this passphrase. It cannot be recovered: keep it safe."
        } else {
            "The vault keeps the connections' secrets."
        });
        ui.add_space(8.0);
        let mut passphrase = prompt.passphrase.expose().to_string();
        let mut again = prompt.again.expose().to_string();
        let label = ui.label("Passphrase");
        let first = ui
            .add(
                TextEdit::singleline(&mut passphrase)
                    .password(true)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        if ui.memory(|m| m.focused().is_none()) {
            first.request_focus();
        }
        let mut enter = first.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if prompt.new_vault {
            let label = ui.label("The same again");
            let second = ui
                .add(
                    TextEdit::singleline(&mut again)
                        .password(true)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(label.id);
            enter = second.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        }
        if passphrase != prompt.passphrase.expose() || again != prompt.again.expose() {
            c.push(Command::EditVaultPrompt {
                passphrase: Secret::new(passphrase),
                again: Secret::new(again),
            });
        }
        if let Some(e) = &prompt.error {
            ui.label(RichText::new(format!("⚠ {e}")).color(ui.visuals().error_fg_color));
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let label = if prompt.new_vault { "Create vault" } else { "Unlock" };
            if ui.add(super::primary_button(label)).clicked() || enter {
                c.push(Command::UnlockVault);
            }
            if ui.button("Cancel").clicked() {
                c.push(Command::CancelUnlock);
            }
        });
    });
    if modal.should_close() && c.is_empty() {
        c.push(Command::CancelUnlock);
    }
    c
}

/// Settings most connections leave as they are: optional ones with a default (a service's
/// own addresses, which only a private instance or a test server changes). The form keeps
/// them under "More settings".
fn is_more(setting: &Setting) -> bool {
    !setting.required && setting.default.is_some() && setting.choices.is_empty()
}

/// One setting of the New connection form: its label (strong when required), its text,
/// and its choices when it has some.
fn setting_row(ui: &mut Ui, setting: &Setting, edited: &mut ConnectionDraft) {
    let label = if setting.required {
        RichText::new(setting.label).strong()
    } else {
        RichText::new(setting.label)
    };
    let label = ui.label(label).on_hover_text(setting.help);
    let value = edited.settings.entry(setting.key.to_string()).or_default();
    ui.horizontal(|ui| {
        ui.add(
            TextEdit::singleline(value)
                .desired_width(280.0)
                .hint_text(setting.help),
        )
        .labelled_by(label.id)
        .on_hover_text(setting.help);
        if !setting.choices.is_empty() {
            egui::ComboBox::from_id_salt(setting.key)
                .selected_text("")
                .width(24.0)
                .show_ui(ui, |ui| {
                    for (choice, label) in setting.choices {
                        ui.selectable_value(value, choice.to_string(), *label);
                    }
                });
        }
    });
    ui.end_row();
}
