//! Helpers of the app's kittest tests.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tributary::ui::TributaryApp;

/// Steps the app until `done` holds; the background work it waits for is bounded.
pub fn wait_for(
    harness: &mut Harness<'static, TributaryApp>,
    what: &str,
    done: impl Fn(&TributaryApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
    // What arrived is drawn, and what it moved has settled.
    harness.run_steps(3);
}

/// Whether some text on screen contains `text`.
pub fn shows(harness: &Harness<'static, TributaryApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}
