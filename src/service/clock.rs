//! The service's sense of time. Run times are instants on a [`Clock`]: the real one, or
//! for tests one that starts at a chosen instant and runs faster, so a test sees an hourly
//! flow run every few seconds and never sleeps for minutes.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// `None` for the real clock.
    test: Option<TestClock>,
}

#[derive(Debug, Clone, Copy)]
struct TestClock {
    origin: Timestamp,
    since: Instant,
    speed: f64,
}

impl Clock {
    pub fn real() -> Self {
        Self { test: None }
    }

    /// A clock that reads `origin` now and moves `speed` times as fast as real time.
    pub fn test(origin: Timestamp, speed: f64) -> Self {
        Self {
            test: Some(TestClock {
                origin,
                since: Instant::now(),
                speed: speed.max(f64::MIN_POSITIVE),
            }),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self.test {
            None => Timestamp::now(),
            Some(t) => {
                let passed = t.since.elapsed().as_secs_f64() * t.speed;
                t.origin + SignedDuration::from_secs_f64(passed)
            }
        }
    }

    /// How long to wait, in real time, until the clock reads `at`.
    pub fn real_until(&self, at: Timestamp) -> Duration {
        let left = at.duration_since(self.now()).as_secs_f64();
        let speed = self.test.map_or(1.0, |t| t.speed);
        Duration::from_secs_f64((left / speed).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_runs_fast_from_its_origin() {
        let origin: Timestamp = "2026-12-02T08:00:00Z".parse().unwrap();
        let clock = Clock::test(origin, 3600.0);
        let now = clock.now();
        assert!(now >= origin && now < origin + SignedDuration::from_mins(10));
        let wait = clock.real_until(origin + SignedDuration::from_hours(2));
        assert!(wait <= Duration::from_secs(2) && wait > Duration::from_millis(1500));
        assert_eq!(clock.real_until(origin), Duration::ZERO);
    }
}
