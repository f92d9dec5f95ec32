//! The desktop app: a node editor to build flows, forms to set nodes up, previews on real
//! sample records and one-click runs with live progress and cost. It drives the same flow
//! model and engine as the command line.

mod app;
mod canvas;
mod code;
pub mod commands;
mod connection_state;
mod connections;
mod form;
mod inspector;
mod palette;
mod panels;
mod recent;
pub mod state;
mod table;
mod welcome;
pub mod worker;

use std::path::PathBuf;

pub use app::TributaryApp;
pub use commands::Command;
pub use state::{AppState, Tab};
pub use worker::Worker;

use crate::paths::Dirs;

/// The green button of the one thing to do next: Run, or try the demo flow.
fn primary_button(text: &str) -> egui::Button<'_> {
    egui::Button::new(
        egui::RichText::new(text)
            .size(15.0)
            .color(egui::Color32::WHITE),
    )
    .fill(egui::Color32::from_rgb(0x2f, 0x7d, 0x5b))
}

/// How the window starts.
#[derive(Debug, Default, clap::Args)]
pub struct Options {
    /// Colours: follow the system, or always light or dark.
    #[arg(long, value_enum, default_value_t = Theme::System)]
    pub theme: Theme,
    /// Select this node when the flow opens, showing its settings and preview.
    #[arg(long, value_name = "NODE", requires = "flow")]
    pub select: Option<String>,
    /// Start a run of the flow as soon as it opens.
    #[arg(long, requires = "flow")]
    pub run: bool,
    /// Open the Connections window.
    #[arg(long)]
    pub connections: bool,
    /// Show this tab of the bottom panel.
    #[arg(long, value_enum, requires = "flow")]
    pub tab: Option<StartTab>,
}

/// The bottom panel's tabs, as `--tab` names them.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StartTab {
    Preview,
    Run,
    History,
    Cost,
    Problems,
}

#[derive(Debug, Default, Clone, Copy, clap::ValueEnum)]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

/// The colour of things that went well: ready to run, connected, done.
pub const SUCCESS: egui::Color32 = egui::Color32::from_rgb(0x2f, 0x9e, 0x5b);

/// Opens the window; returns when it is closed.
/// Opens the window; `warnings` (connector manifests left out, say) are said in it.
pub fn run(flow: Option<PathBuf>, start: Options, warnings: Vec<String>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([960.0, 600.0])
            .with_title("Tributary"),
        ..Default::default()
    };
    eframe::run_native(
        "Tributary",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let dirs = Dirs::from_env();
            let worker = Worker::new(dirs.clone(), move || ctx.request_repaint());
            cc.egui_ctx.set_theme(match start.theme {
                Theme::System => egui::ThemePreference::System,
                Theme::Light => egui::ThemePreference::Light,
                Theme::Dark => egui::ThemePreference::Dark,
            });
            let mut state = AppState::open_initial(dirs, flow.as_deref());
            if let Some(node) = start.select {
                state.apply(Command::Select(vec![node]), &worker);
            }
            if start.run {
                state.apply(Command::Run, &worker);
            }
            if start.connections {
                state.apply(Command::ShowConnections(true), &worker);
            }
            if !warnings.is_empty() {
                state.apply(Command::Warn(warnings.join("; ")), &worker);
            }
            if let Some(tab) = start.tab {
                let tab = match tab {
                    StartTab::Preview => Tab::Preview,
                    StartTab::Run => Tab::Run,
                    StartTab::History => Tab::History,
                    StartTab::Cost => Tab::Cost,
                    StartTab::Problems => Tab::Problems,
                };
                state.apply(Command::ShowTab(tab), &worker);
            }
            Ok(Box::new(TributaryApp::new(state, worker)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
