//! The bottom panel's tabs: Preview, Run, History, Cost and Problems.

use egui::{Color32, RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints};

use super::commands::Command;
use super::state::{AppState, Tab};
use crate::cost::{self, Rates};
use crate::engine::{RunStatus, human_bytes};

pub fn tabs(ui: &mut Ui, state: &AppState) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.horizontal(|ui| {
        let problems = state.all_problems().len();
        for (tab, name) in [
            (Tab::Preview, "Preview".to_string()),
            (Tab::Run, "Run".into()),
            (Tab::History, "History".into()),
            (Tab::Cost, "Cost".into()),
            (Tab::Problems, format!("Problems ({problems})")),
        ] {
            if ui.selectable_label(state.tab == tab, name).clicked() {
                commands.push(Command::ShowTab(tab));
            }
        }
    });
    ui.separator();
    match state.tab {
        Tab::Preview => preview(ui, state, &mut commands),
        Tab::Run => run(ui, state, &mut commands),
        Tab::History => history(ui, state, &mut commands),
        Tab::Cost => cost_tab(ui, state),
        Tab::Problems => problems(ui, state, &mut commands),
    }
    commands
}

/// The open flow's past runs: a table, newest first, and records written and time taken
/// per run in two charts, oldest to newest.
fn history(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let past = &state.past_runs;
    if let Some(e) = &past.error {
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("The run history cannot be read: {e}"),
        );
        return;
    }
    if past.runs.is_empty() {
        ui.label(
            RichText::new(format!(
                "\"{}\" has not run yet. Its runs, from here or from the command line, are listed here.",
                state.doc.flow.name
            ))
            .weak(),
        );
        return;
    }
    ui.columns(2, |cols| {
        egui::ScrollArea::vertical()
            .id_salt("past runs")
            .auto_shrink([false, false])
            .show(&mut cols[0], |ui| {
                egui::Grid::new("past runs grid")
                    .striped(true)
                    .num_columns(7)
                    .show(ui, |ui| {
                        for heading in ["started", "how", "result", "written", "took", "cost", ""] {
                            ui.label(RichText::new(heading).strong());
                        }
                        ui.end_row();
                        for run in &past.runs {
                            past_run_row(ui, state, run, commands);
                        }
                    });
            });
        let oldest_first = past.runs.iter().rev().enumerate();
        let (written, took): (Vec<[f64; 2]>, Vec<[f64; 2]>) = oldest_first
            .map(|(i, r)| {
                (
                    [i as f64 + 1.0, r.records_written as f64],
                    [i as f64 + 1.0, r.duration_seconds],
                )
            })
            .unzip();
        let height = (cols[1].available_height() / 2.0 - 4.0).max(60.0);
        for (id, label, points) in [
            ("history written", "records written", written),
            ("history took", "seconds", took),
        ] {
            Plot::new(id)
                .height(height)
                .x_axis_label("run")
                .y_axis_label(label)
                .allow_scroll(false)
                .show(&mut cols[1], |plot| {
                    plot.line(Line::new(label, PlotPoints::from(points)));
                });
        }
    });
}

fn past_run_row(
    ui: &mut Ui,
    state: &AppState,
    run: &crate::state::RunRow,
    commands: &mut Vec<Command>,
) {
    ui.label(run.started_here("%a %-d %b %H:%M:%S"));
    ui.label(run.how()).on_hover_text(&run.trigger);
    let words = run.result();
    let color = match words {
        "successful" => super::SUCCESS,
        "canceled" | "skipped" => ui.visuals().warn_fg_color,
        _ => ui.visuals().error_fg_color,
    };
    let result = ui.label(RichText::new(words).color(color));
    if let Some(error) = &run.error {
        result.on_hover_text(error);
    }
    let mut written = run.records_written.to_string();
    if run.records_rejected > 0 {
        written += &format!(" ({} rejected)", run.records_rejected);
    }
    ui.label(written).on_hover_text(format!(
        "{} read, {}",
        run.records_processed,
        human_bytes(run.bytes_written)
    ));
    ui.label(format!("{:.1} s", run.duration_seconds));
    ui.label(format!("${:.4}", run.cost_usd));
    ui.horizontal(|ui| {
        let folder = state.dirs.run_dir(&run.execution_id);
        if ui
            .small_button("Record")
            .on_hover_text(&run.execution_id)
            .clicked()
        {
            commands.push(Command::OpenExternally(folder.join("run.json")));
        }
        if run.records_rejected > 0 && ui.small_button("Rejected").clicked() {
            commands.push(Command::OpenExternally(folder.join("errors.jsonl")));
        }
    });
    ui.end_row();
}

fn preview(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let Some(node) = state.selected_node() else {
        ui.label(RichText::new("Select a node to preview the records leaving it.").weak());
        return;
    };
    ui.horizontal(|ui| {
        ui.label(format!(
            "Records leaving `{}`, on the sources' first",
            node.label.as_deref().unwrap_or(&node.id)
        ));
        let mut limit = state.preview.limit;
        if ui
            .add(egui::DragValue::new(&mut limit).range(1..=100_000))
            .changed()
        {
            commands.push(Command::SetPreviewLimit(limit));
        }
        ui.label("records");
        if ui.button("⟳ Refresh").clicked() {
            commands.push(Command::RefreshPreview);
        }
        if state.preview.loading {
            ui.spinner();
        }
    });
    let result = state
        .preview
        .result
        .as_ref()
        .filter(|(k, _)| k.node == node.id);
    match result {
        None => {
            ui.spinner();
        }
        Some((_, Err(message))) => {
            ui.colored_label(ui.visuals().error_fg_color, message);
        }
        Some((key, Ok(table))) => {
            let stale = key.revision != state.doc.revision;
            let mut line = format!("{} records", table.rows.len());
            if !table.changed.is_empty() {
                line += " · changed values are highlighted";
            } else if table.rows_in > 0 {
                line += &format!(" from {} in", table.rows_in);
            }
            if !table.rejected.is_empty() {
                line += &format!(" · {} set aside as malformed", table.rejected.len());
            }
            if stale {
                line += " · updating…";
            }
            ui.label(RichText::new(line).weak());
            let highlight = ui.visuals().selection.bg_fill.gamma_multiply(0.5);
            egui::ScrollArea::both()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    egui::Grid::new("preview-table")
                        .striped(true)
                        .min_col_width(60.0)
                        .show(ui, |ui| {
                            for (c, (name, kind)) in table.columns.iter().enumerate() {
                                ui.vertical(|ui| {
                                    ui.label(RichText::new(name).strong());
                                    let was = table.renamed_from.get(c).and_then(Option::as_ref);
                                    let under = match was {
                                        Some(old) => format!("{kind} · was {old}"),
                                        None => kind.clone(),
                                    };
                                    ui.label(RichText::new(under).small().weak());
                                });
                            }
                            ui.end_row();
                            for (r, row) in table.rows.iter().enumerate() {
                                for (c, cell) in row.iter().enumerate() {
                                    let shown: String = if cell.chars().count() > 48 {
                                        cell.chars().take(47).chain(std::iter::once('…')).collect()
                                    } else {
                                        cell.clone()
                                    };
                                    let before =
                                        table.changed.get(r).and_then(|row| row[c].as_ref());
                                    let text = if before.is_some() {
                                        RichText::new(shown).background_color(highlight)
                                    } else {
                                        RichText::new(shown)
                                    };
                                    let label = ui.label(text);
                                    match before {
                                        Some(b) => {
                                            label.on_hover_text(format!("{cell}\nbefore: {b}"));
                                        }
                                        None if cell.chars().count() > 48 => {
                                            label.on_hover_text(cell);
                                        }
                                        None => {}
                                    }
                                }
                                ui.end_row();
                            }
                        });
                    for r in &table.rejected {
                        ui.colored_label(ui.visuals().warn_fg_color, r.to_string());
                    }
                });
        }
    }
}

fn run(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let run = &state.run;
    if run.started.is_none() {
        ui.label(
            RichText::new("Press Run (Ctrl+R) to run the whole flow. Progress shows here.").weak(),
        );
        return;
    }
    let read = run.records_read(&state.sources());
    let elapsed = run
        .record
        .as_ref()
        .map(|r| r.duration_seconds)
        .unwrap_or_else(|| run.started.map_or(0.0, |s| s.elapsed().as_secs_f64()));
    ui.horizontal(|ui| {
        if run.is_running() {
            ui.spinner();
            if ui.button("⏹ Cancel").clicked() {
                commands.push(Command::CancelRun);
            }
        }
        match run.expected.filter(|e| *e > 0) {
            Some(total) => {
                let fraction = read as f32 / total as f32;
                let eta = if read > 0 && run.is_running() {
                    format!(
                        " · about {:.0}s left",
                        elapsed * (total - read.min(total)) as f64 / read as f64
                    )
                } else {
                    String::new()
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(320.0)
                        .text(format!("{read} of {total} records{eta}")),
                );
            }
            None => {
                ui.label(format!("{read} records read"));
            }
        }
        ui.label(format!("{elapsed:.1}s"));
    });
    if let Some(record) = &run.record {
        let color = match record.status {
            RunStatus::Successful => Color32::from_rgb(0x2f, 0x9e, 0x5b),
            RunStatus::Canceled | RunStatus::Skipped => ui.visuals().warn_fg_color,
            RunStatus::Error => ui.visuals().error_fg_color,
        };
        ui.label(
            RichText::new(format!("{:?} · run {}", record.status, record.execution_id))
                .color(color)
                .strong(),
        );
        if let Some(e) = &record.error {
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!(
                    "{}{}",
                    e.node
                        .as_ref()
                        .map(|n| format!("node `{n}`: "))
                        .unwrap_or_default(),
                    e.message
                ),
            );
        }
        ui.label(format!(
            "{} read · {} written · {} dropped · {} rejected · {} read · {} written",
            record.records_processed,
            record.records_written,
            record.records_dropped,
            record.records_rejected,
            human_bytes(record.bytes_processed),
            human_bytes(record.bytes_written)
        ));
    }
    ui.columns(2, |cols| {
        egui::ScrollArea::vertical()
            .id_salt("run-nodes")
            .show(&mut cols[0], |ui| {
                egui::Grid::new("run-figures").striped(true).show(ui, |ui| {
                    for h in ["node", "state", "in", "out", "dropped", "rejected", "bytes"] {
                        ui.label(RichText::new(h).strong());
                    }
                    ui.end_row();
                    for (id, f) in &run.figures {
                        let label = state
                            .doc
                            .flow
                            .node(id)
                            .and_then(|n| n.label.as_deref())
                            .unwrap_or(id);
                        ui.label(label).on_hover_text(format!("node id {id}"));
                        ui.label(f.state.in_words());
                        ui.label(f.records_in.to_string());
                        ui.label(f.records_out.to_string());
                        ui.label(f.records_dropped.to_string());
                        ui.label(f.records_rejected.to_string());
                        ui.label(human_bytes(f.bytes_in.max(f.bytes_out)));
                        ui.end_row();
                    }
                });
                if let Some(record) = &run.record {
                    for o in record.outputs.iter().take(20) {
                        ui.horizontal(|ui| {
                            // Only files have a folder to open; a bucket or a table has not.
                            if !o.location.contains("://")
                                && ui.small_button("Open folder").clicked()
                                && let Some(dir) = std::path::Path::new(&o.location).parent()
                            {
                                commands.push(Command::OpenExternally(dir.to_path_buf()));
                            }
                            // Long paths are cut, not allowed to widen the panel.
                            ui.add(
                                egui::Label::new(
                                    RichText::new(format!(
                                        "{} ({} records)",
                                        o.location, o.records
                                    ))
                                    .small(),
                                )
                                .truncate(),
                            )
                            .on_hover_text(&o.location);
                        });
                    }
                    if record.outputs.len() > 20 {
                        ui.label(format!("and {} more files", record.outputs.len() - 20));
                    }
                    if let Some(errors) = &record.error_output
                        && ui
                            .small_button(format!(
                                "Open the {} rejected records",
                                record.records_rejected
                            ))
                            .clicked()
                    {
                        commands.push(Command::OpenExternally(errors.into()));
                    }
                }
            });
        if run.throughput.len() < 2 {
            cols[1]
                .label(RichText::new("The throughput chart fills in as a longer run goes.").weak());
            return;
        }
        let points: PlotPoints = run.throughput.iter().copied().collect();
        Plot::new("throughput")
            .height(cols[1].available_height().max(80.0))
            .x_axis_label("seconds")
            .y_axis_label("records/s")
            .allow_scroll(false)
            .show(&mut cols[1], |plot| {
                plot.line(Line::new("records/s", points));
            });
    });
}

fn cost_tab(ui: &mut Ui, state: &AppState) {
    let rates = Rates::default();
    ui.label(format!(
        "AppFlow's rates: ${} per successful run, ${} per GiB processed.",
        rates.per_run_usd, rates.per_gb_usd
    ));
    let runs = cost::runs_per_month(&state.doc.flow.trigger);
    if let Some(record) = &state.run.record {
        let c = &record.cost;
        ui.label(RichText::new(format!("This run: ${:.4}", c.total_usd)).strong());
        ui.label(format!(
            "${:.4} for the run, ${:.6} for {:.4} GiB processed",
            c.run_usd, c.data_usd, c.gb_processed
        ));
        match &c.projected_monthly {
            Some(p) => ui.label(format!(
                "On this schedule: {:.0} runs a month, about ${:.2} a month",
                p.runs_per_month, p.total_usd
            )),
            None => ui.label("Runs on demand: no monthly projection."),
        };
        return;
    }
    let per_record = state
        .preview
        .result
        .as_ref()
        .and_then(|(_, r)| r.as_ref().ok())
        .map(|t| t.bytes_per_record)
        .filter(|b| *b > 0.0);
    match (
        per_record,
        state.run.expected.or_else(|| expected_demo_records(state)),
    ) {
        (Some(bytes), Some(records)) => {
            let estimate = cost::of_run(
                (bytes * records as f64) as u64,
                true,
                &state.doc.flow.trigger,
                rates,
            );
            ui.label(
                RichText::new(format!("Estimate per run: ${:.4}", estimate.total_usd)).strong(),
            );
            ui.label(format!(
                "{records} records at about {bytes:.0} bytes each (from the preview sample)"
            ));
            if let Some(p) = estimate.projected_monthly {
                ui.label(format!(
                    "On this schedule: {:.0} runs a month, about ${:.2} a month",
                    p.runs_per_month, p.total_usd
                ));
            }
        }
        _ => {
            ui.label(
                RichText::new("Preview a source, or run the flow once, for an estimate.").weak(),
            );
            if let Some(runs) = runs {
                ui.label(format!(
                    "This schedule makes {runs:.0} runs a month: at least ${:.2} in run fees.",
                    runs * rates.per_run_usd
                ));
            }
        }
    }
}

fn expected_demo_records(state: &AppState) -> Option<u64> {
    let sources: Vec<_> = state
        .doc
        .flow
        .nodes
        .iter()
        .filter(|n| n.kind.starts_with("source."))
        .collect();
    if sources.is_empty() || sources.iter().any(|n| n.kind != "source.demo_crm") {
        return None;
    }
    Some(
        sources
            .iter()
            .map(|n| {
                n.config
                    .get("records")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(1000)
            })
            .sum(),
    )
}

fn problems(ui: &mut Ui, state: &AppState, commands: &mut Vec<Command>) {
    let list = state.all_problems();
    if list.is_empty() {
        ui.label(
            RichText::new("No problems: the flow is ready to run.")
                .color(Color32::from_rgb(0x2f, 0x9e, 0x5b)),
        );
        return;
    }
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for p in list {
                ui.horizontal(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, "⚠");
                    match &p.node {
                        Some(node) => {
                            if ui.link(node).on_hover_text("Select this node").clicked() {
                                commands.push(Command::Select(vec![node.clone()]));
                            }
                        }
                        None => {
                            ui.label("flow");
                        }
                    }
                    ui.label(&p.message);
                    ui.label(RichText::new(&p.path).small().weak());
                });
            }
        });
}
