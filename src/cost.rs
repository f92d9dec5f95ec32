//! What a run would cost on Amazon AppFlow, so users can see what running it here saves.
//!
//! AppFlow charges per successful flow run plus per GB of data processed. The rates live
//! here, in one place, with AppFlow's public list prices as defaults.

use serde::{Deserialize, Serialize};

use crate::flow::Trigger;

/// Prices in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Charged for every successful run, even one that moved no data.
    pub per_run_usd: f64,
    /// Charged per GiB processed.
    pub per_gb_usd: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            per_run_usd: 0.001,
            per_gb_usd: 0.02,
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The cost of one run and, for a scheduled flow, of a month of such runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub run_usd: f64,
    pub data_usd: f64,
    pub total_usd: f64,
    pub gb_processed: f64,
    pub rates: Rates,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_monthly: Option<Projection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub runs_per_month: f64,
    pub total_usd: f64,
}

/// The cost of a run that processed `bytes_processed` bytes. Failed runs pay for the data
/// they processed but not the run fee, as on AppFlow.
pub fn of_run(bytes_processed: u64, successful: bool, trigger: &Trigger, rates: Rates) -> Cost {
    let gb = bytes_processed as f64 / GIB;
    let run_usd = if successful { rates.per_run_usd } else { 0.0 };
    let data_usd = gb * rates.per_gb_usd;
    let projected_monthly = runs_per_month(trigger).map(|runs| Projection {
        runs_per_month: runs,
        total_usd: runs * (rates.per_run_usd + data_usd),
    });
    Cost {
        run_usd,
        data_usd,
        total_usd: run_usd + data_usd,
        gb_processed: gb,
        rates,
        projected_monthly,
    }
}

/// How often a trigger starts a run in a 30-day month; `None` when it depends on the user
/// or on events, or the schedule is not valid.
pub fn runs_per_month(trigger: &Trigger) -> Option<f64> {
    let schedule = trigger.schedule_of()?.ok()?;
    Some(schedule.runs_per_month(jiff::Timestamp::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_matches() {
        // The seed's example: 100 runs and 50 GB processed cost $0.10 + $1.00.
        let rates = Rates::default();
        let one = of_run((0.5 * GIB) as u64, true, &Trigger::OnDemand, rates);
        assert!((one.total_usd * 100.0 - 1.10).abs() < 1e-9);
        assert!(one.projected_monthly.is_none());
    }

    #[test]
    fn failed_runs_pay_no_run_fee() {
        let c = of_run(0, false, &Trigger::OnDemand, Rates::default());
        assert_eq!(c.total_usd, 0.0);
    }

    #[test]
    fn schedules_project_a_month() {
        let t = Trigger::schedule("rate(1 hours)");
        let c = of_run(0, true, &t, Rates::default());
        let p = c.projected_monthly.unwrap();
        assert_eq!(p.runs_per_month, 720.0);
        assert!((p.total_usd - 0.72).abs() < 1e-9);
        let runs = |e: &str| runs_per_month(&Trigger::schedule(e));
        assert_eq!(runs("rate(15minutes)"), Some(2880.0));
        assert_eq!(runs("cron(0 * * * ? *)"), Some(720.0));
        assert_eq!(runs("30 2 * * *"), Some(30.0));
        assert_eq!(runs("rate(0 hours)"), None);
    }
}
