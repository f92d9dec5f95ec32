//! What the service counts, in Prometheus' exposition format on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::{RunRecord, RunStatus};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabel {
    flow: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    flow: String,
    /// `started`, `successful`, `failed`, `canceled` or `skipped`.
    status: &'static str,
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: Family<FlowLabel, Histogram>,
    records: Family<FlowLabel, Counter>,
    bytes: Family<FlowLabel, Counter>,
    next_run: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    active: Gauge,
    running: Gauge,
}

/// Run durations from a tenth of a second to about an hour and a half.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tributary");
        let runs = Family::<RunLabels, Counter>::default();
        let duration = Family::<FlowLabel, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let records = Family::<FlowLabel, Counter>::default();
        let bytes = Family::<FlowLabel, Counter>::default();
        let next_run = Family::<FlowLabel, Gauge<f64, AtomicU64>>::default();
        let active = Gauge::default();
        let running = Gauge::default();
        registry.register(
            "runs",
            "Runs the service started, and how they ended",
            runs.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "How long runs took",
            duration.clone(),
        );
        registry.register(
            "records_written",
            "Records in the output of successful runs",
            records.clone(),
        );
        registry.register(
            "bytes_written",
            "Bytes in the output of successful runs",
            bytes.clone(),
        );
        registry.register(
            "next_run_timestamp_seconds",
            "When each active scheduled flow runs next, in seconds since 1970",
            next_run.clone(),
        );
        registry.register("active_flows", "Flows the service runs", active.clone());
        registry.register("running_runs", "Runs going now", running.clone());
        Self {
            registry,
            runs,
            duration,
            records,
            bytes,
            next_run,
            active,
            running,
        }
    }

    pub fn started(&self, flow: &str) {
        self.count(flow, "started");
        self.running.inc();
    }

    /// A run ended (`started` was counted for it), or was skipped (it was not).
    pub fn ended(&self, record: &RunRecord) {
        let flow = FlowLabel {
            flow: record.flow.clone(),
        };
        let status = match record.status {
            RunStatus::Successful => "successful",
            RunStatus::Error => "failed",
            RunStatus::Canceled => "canceled",
            RunStatus::Skipped => "skipped",
        };
        self.count(&record.flow, status);
        if record.status == RunStatus::Skipped {
            return;
        }
        self.running.dec();
        self.duration
            .get_or_create(&flow)
            .observe(record.duration_seconds);
        self.records
            .get_or_create(&flow)
            .inc_by(record.records_written);
        self.bytes.get_or_create(&flow).inc_by(record.bytes_written);
    }

    fn count(&self, flow: &str, status: &'static str) {
        self.runs
            .get_or_create(&RunLabels {
                flow: flow.to_string(),
                status,
            })
            .inc();
    }

    /// When `flow` runs next; `None` takes it off (inactive, or no run left).
    pub fn next_run(&self, flow: &str, at: Option<jiff::Timestamp>) {
        let label = FlowLabel { flow: flow.into() };
        match at {
            Some(at) => {
                self.next_run
                    .get_or_create(&label)
                    .set(at.as_millisecond() as f64 / 1000.0);
            }
            None => {
                self.next_run.remove(&label);
            }
        }
    }

    pub fn set_active(&self, n: usize) {
        self.active.set(n as i64);
    }

    pub fn running(&self) -> i64 {
        self.running.get()
    }

    pub fn active(&self) -> i64 {
        self.active.get()
    }

    /// Everything, as Prometheus and OpenMetrics read it.
    pub fn exposition(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}
