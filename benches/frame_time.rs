//! How long the app takes to produce a frame: the whole UI (menu, palette, canvas,
//! inspector, panels) laid out and tessellated into triangles, as the UI thread does each
//! frame before the GPU draws. Three scenes at 1600x1000:
//!
//! - a generated 300-node flow as it opens, and fitted to the view so every node is drawn;
//! - the demo flow while a 20-million-record run streams in the background.
//!
//! Run with `cargo bench --bench frame_time`; prints median, 95th percentile and worst frame.
//! `cargo test --all-targets` runs it too, without `--bench`: then it draws a few frames of
//! each scene, to know it still works, and measures nothing.

use std::time::{Duration, Instant};

use egui::{Pos2, RawInput, Rect, vec2};
use serde_json::{Value, json};
use tributary::paths::Dirs;
use tributary::ui::{AppState, Command, TributaryApp, Worker};

const DEMO: &str = include_str!("../flows/demo-opportunities-to-lake.json");

/// The demo flow's five nodes, 60 times over: 300 nodes, 240 connections, in three columns
/// of twenty chains.
fn big_flow() -> Value {
    let demo: Value = serde_json::from_str(DEMO).unwrap();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for chain in 0..60 {
        let (dx, dy) = ((chain % 3) as f64 * 1250.0, (chain / 3) as f64 * 150.0);
        for n in demo["nodes"].as_array().unwrap() {
            let mut n = n.clone();
            n["id"] = json!(format!("{}_{chain}", n["id"].as_str().unwrap()));
            let [x, y] = [
                n["position"][0].as_f64().unwrap(),
                n["position"][1].as_f64().unwrap(),
            ];
            n["position"] = json!([x + dx, y + dy]);
            nodes.push(n);
        }
        for e in demo["edges"].as_array().unwrap() {
            edges.push(json!({
                "from": format!("{}_{chain}", e["from"].as_str().unwrap()),
                "to": format!("{}_{chain}", e["to"].as_str().unwrap()),
            }));
        }
    }
    let mut flow = demo.clone();
    flow["name"] = json!("300 nodes");
    flow["nodes"] = json!(nodes);
    flow["edges"] = json!(edges);
    flow
}

struct Window {
    ctx: egui::Context,
    app: TributaryApp,
    time: f64,
    /// Frames a scene.
    frames: usize,
}

impl Window {
    fn open(flow: &Value, home: &std::path::Path, frames: usize) -> Self {
        let path = home.join("flow.json");
        std::fs::write(&path, serde_json::to_string_pretty(flow).unwrap()).unwrap();
        let dirs = Dirs::under(home);
        let worker = Worker::new(dirs.clone(), || {});
        let state = AppState::open_initial(dirs, Some(&path));
        let mut window = Self {
            ctx: egui::Context::default(),
            app: TributaryApp::new(state, worker),
            time: 0.0,
            frames,
        };
        // Fonts, layout caches and the first validation.
        let start = Instant::now();
        while window.app.state.analysis_revision != window.app.state.doc.revision
            && start.elapsed() < Duration::from_secs(60)
        {
            window.frame();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            window.app.state.analysis_revision, window.app.state.doc.revision,
            "the flow was validated in the background"
        );
        for _ in 0..frames.min(30) {
            window.frame();
        }
        window
    }

    /// One frame; returns how long it took.
    fn frame(&mut self) -> Duration {
        self.time += 1.0 / 60.0;
        // The pointer moves over the canvas, as it does while someone works.
        let x = 600.0 + (self.time * 50.0).sin() as f32 * 200.0;
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(1600.0, 1000.0))),
            time: Some(self.time),
            events: vec![egui::Event::PointerMoved(Pos2::new(x, 400.0))],
            ..Default::default()
        };
        let start = Instant::now();
        let app = &mut self.app;
        let output = self.ctx.run_ui(input, |ui| app.ui(ui));
        let triangles = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        let took = start.elapsed();
        std::hint::black_box(triangles);
        took
    }

    /// Measures `FRAMES` frames; `paced` spaces them at 60 a second, so background work
    /// goes on between them as it does in the window.
    fn measure(&mut self, scene: &str, paced: bool) {
        let frames = self.frames;
        let mut times: Vec<Duration> = (0..frames)
            .map(|_| {
                let took = self.frame();
                if paced {
                    std::thread::sleep(Duration::from_millis(16).saturating_sub(took));
                }
                took
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{scene:<48} median {:>6.2} ms   p95 {:>6.2} ms   worst {:>6.2} ms",
            ms(times[frames / 2]),
            ms(times[frames * 95 / 100]),
            ms(times[frames - 1]),
        );
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let frames = if measuring { 300 } else { 3 };
    let home = tempfile::tempdir().unwrap();
    let flow = big_flow();
    println!(
        "{frames} frames a scene, 1600x1000, {} nodes{}",
        flow["nodes"].as_array().unwrap().len(),
        if measuring {
            ""
        } else {
            " (a smoke run: use cargo bench to measure)"
        }
    );
    let mut window = Window::open(&flow, home.path(), frames);
    window.measure("300-node flow, as opened", false);
    window.app.canvas.fit_to_view();
    window.frame();
    window.measure("300-node flow, fitted: every node drawn", false);

    let mut demo: Value = serde_json::from_str(DEMO).unwrap();
    demo["nodes"][0]["config"]["records"] = json!(20_000_000);
    demo["params"]["output"] = json!(home.path().join("out").to_string_lossy());
    let mut window = Window::open(&demo, home.path(), frames);
    let worker = &window.app.worker;
    window
        .app
        .state
        .apply(Command::Select(vec!["card".into()]), worker);
    window.app.state.apply(Command::Run, worker);
    std::thread::sleep(Duration::from_millis(500));
    window.measure("demo flow during a 20M-record run", true);
    let read = window
        .app
        .state
        .run
        .records_read(&window.app.state.sources());
    println!("  (the run had read {read} records when the last frame was measured)");
    window
        .app
        .state
        .apply(Command::CancelRun, &window.app.worker);
}
