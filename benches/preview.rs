//! How soon the app shows a node's preview after an edit, on a large input: the reference
//! job's flow (`flows/bench-opportunities.json`) reading the JSON lines file
//! `PREVIEW_INPUT` (`benches/preview.sh` makes a 5 GB one), its node five transforms deep
//! (`expected_revenue`) selected, and a setting of a node above it edited; frames are drawn
//! at 60 a second, as in the window, until the preview of the edited flow arrives.
//!
//! Run with `PREVIEW_INPUT=… cargo bench --bench preview`: prints the median and worst
//! time from the edit command to the preview message over 20 edits, and how much of it
//! was the app waiting for edits to pause. Without `PREVIEW_INPUT` it reads a small input
//! of its own.

use std::time::{Duration, Instant};

use egui::{Pos2, RawInput, Rect, vec2};
use serde_json::{Value, json};
use tributary::paths::Dirs;
use tributary::ui::{AppState, Command, TributaryApp, Worker};

const FLOW: &str = include_str!("../flows/bench-opportunities.json");

struct Window {
    ctx: egui::Context,
    app: TributaryApp,
    time: f64,
}

impl Window {
    fn frame(&mut self) {
        self.time += 1.0 / 60.0;
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(1600.0, 1000.0))),
            time: Some(self.time),
            ..Default::default()
        };
        let app = &mut self.app;
        let output = self.ctx.run_ui(input, |ui| app.ui(ui));
        std::hint::black_box(output);
    }

    /// Frames at 60 a second until `done`; how long it took.
    fn until(&mut self, what: &str, done: impl Fn(&AppState) -> bool) -> Duration {
        let start = Instant::now();
        while !done(&self.app.state) {
            assert!(start.elapsed() < Duration::from_secs(60), "no {what}");
            let frame = Instant::now();
            self.frame();
            std::thread::sleep(Duration::from_millis(16).saturating_sub(frame.elapsed()));
        }
        start.elapsed()
    }
}

/// Whether the preview shown is of the flow as it is now, and it holds records.
fn current(state: &AppState) -> bool {
    matches!(
        &state.preview.result,
        Some((key, Ok(table))) if key.revision == state.doc.revision && !table.rows.is_empty()
    )
}

fn main() {
    let home = tempfile::tempdir().unwrap();
    let input = match std::env::var("PREVIEW_INPUT") {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => {
            // A small input of the same records, for the smoke run.
            let path = home.path().join("opportunities.jsonl");
            let line = r#"{"Id":"006A","Name":"Deal","AccountId":"001A","StageName":"Prospecting","Amount":5000.0,"Probability":0.4,"CloseDate":"2026-12-01","FirstName":"Ana","LastName":"Lee","Email":"ana@example.com","Phone":"+1 555 0100","CreditCard":"4111111111111111","Description":"A deal","CreatedDate":"2026-11-01T10:00:00Z"}"#;
            std::fs::write(&path, format!("{line}\n").repeat(10_000)).unwrap();
            path
        }
    };
    let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    let mut flow: Value = serde_json::from_str(FLOW).unwrap();
    flow["params"]["input"] = json!(input.to_string_lossy());
    flow["params"]["output"] = json!(home.path().join("out").to_string_lossy());
    let path = home.path().join("flow.json");
    std::fs::write(&path, serde_json::to_string_pretty(&flow).unwrap()).unwrap();
    let dirs = Dirs::under(home.path());
    let worker = Worker::new(dirs.clone(), || {});
    let state = AppState::open_initial(dirs, Some(&path));
    let mut window = Window {
        ctx: egui::Context::default(),
        app: TributaryApp::new(state, worker),
        time: 0.0,
    };
    let edits = 20;
    println!(
        "the preview of `expected_revenue` (5 transforms deep) over {:.2} GB of JSON lines",
        size as f64 / 1e9,
    );
    window.until("validation", |s| s.analysis_revision == s.doc.revision);
    let select = Command::Select(vec!["expected_revenue".into()]);
    window.app.state.apply(select, &window.app.worker);
    let first = window.until("first preview", current);
    println!(
        "first preview after selecting the node: {:.0} ms",
        first.as_secs_f64() * 1000.0
    );
    let mut times = Vec::new();
    for k in 0..edits {
        // Show the last 3 or 4 digits of the card: an edit of a node above the one shown.
        let config = json!({"fields": ["CreditCard"], "mode": "all_but_last_n", "n": 3 + k % 2, "mask_char": "*"});
        let edit = Command::SetConfig {
            node: "mask_card".into(),
            config,
        };
        window.app.state.apply(edit, &window.app.worker);
        times.push(window.until("preview after the edit", current));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "edit → preview: median {:.0} ms, 90th percentile {:.0} ms, worst {:.0} ms over {edits} edits (of which {:.0} ms is the pause the app waits for after an edit)",
        ms(times[edits / 2]),
        ms(times[edits * 9 / 10]),
        ms(times[edits - 1]),
        ms(tributary::ui::state::PREVIEW_DEBOUNCE),
    );
    println!(
        "  every edit (ms, sorted): {:?}",
        times
            .iter()
            .map(|t| ms(*t).round() as u64)
            .collect::<Vec<_>>()
    );
}
