//! The palette: every node type, by role, with a search box. Drag an entry onto the canvas
//! to place it there, or click it to add it in the middle of the view.

use egui::{RichText, Sense, Ui};

use super::canvas::PaletteDrag;
use super::commands::Command;
use crate::node::{NodeType, Role};
use crate::registry;

pub fn ui(ui: &mut Ui, search: &mut String, center: [f32; 2]) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.add(
        egui::TextEdit::singleline(search)
            .hint_text("Search nodes")
            .desired_width(f32::INFINITY),
    );
    ui.add_space(6.0);
    let needle = search.to_lowercase();
    let matches = |t: &NodeType| {
        needle.is_empty()
            || t.title.to_lowercase().contains(&needle)
            || t.description.to_lowercase().contains(&needle)
            || t.name.contains(&needle)
    };
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for (role, heading) in [
                (Role::Source, "Sources"),
                (Role::Transform, "Transforms"),
                (Role::Destination, "Destinations"),
            ] {
                let types: Vec<&NodeType> = registry::all()
                    .iter()
                    .filter(|t| t.role == role && matches(t))
                    .collect();
                if types.is_empty() {
                    continue;
                }
                ui.label(RichText::new(heading).strong());
                for t in types {
                    if let Some(c) = entry(ui, t, center) {
                        commands.push(c);
                    }
                }
                ui.add_space(8.0);
            }
        });
    commands
}

fn entry(ui: &mut Ui, t: &'static NodeType, center: [f32; 2]) -> Option<Command> {
    let id = ui.id().with(t.name);
    let frame = egui::Frame::new()
        .inner_margin(egui::Margin::symmetric(6, 4))
        .corner_radius(4.0);
    let inner = frame.show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.label(RichText::new(t.icon).size(18.0));
            ui.vertical(|ui| {
                ui.label(t.title);
                ui.label(RichText::new(t.description).small().weak());
            });
        });
    });
    let response = ui
        .interact(inner.response.rect, id, Sense::click_and_drag())
        .on_hover_cursor(egui::CursorIcon::Grab);
    if response.hovered() {
        ui.painter().rect_filled(
            inner.response.rect,
            4.0,
            ui.visuals()
                .widgets
                .hovered
                .weak_bg_fill
                .gamma_multiply(0.35),
        );
    }
    let response = response.on_hover_text(format!(
        "{} · drag onto the canvas, or click to add",
        t.name
    ));
    if response.drag_started() {
        response.dnd_set_drag_payload(PaletteDrag(t.name));
    }
    if response.dragged()
        && let Some(pos) = ui.ctx().pointer_latest_pos()
    {
        egui::Area::new(id.with("dragging"))
            .fixed_pos(pos + egui::vec2(12.0, 4.0))
            .order(egui::Order::Tooltip)
            .show(ui.ctx(), |ui| {
                egui::Frame::popup(ui.style())
                    .show(ui, |ui| ui.label(format!("{} {}", t.icon, t.title)));
            });
    }
    response.clicked().then(|| Command::AddNode {
        kind: t.name.into(),
        position: center,
    })
}
