//! Incremental pulls, written once for every source: where the last run got to, and which
//! records of this run are new.
//!
//! Services stamp records with when they last changed, to the second or the millisecond, so
//! several records often share the newest value a run read. The next pull asks from that
//! value *inclusive* and skips the records it already read there (by id): a record changed
//! at the boundary is neither lost nor read twice. The run's start is the upper bound: a
//! record that changes while the run reads is left to the next run, whose window takes it,
//! instead of moving the watermark past records the service is still writing.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::{BuildContext, NodeError, SourceOutput};

pub use crate::node::mark::Mark;

/// One run's window of an incremental pull and how far it got.
#[derive(Debug, Clone)]
pub struct Watermark<K> {
    start: Option<Mark<K>>,
    seen: HashSet<String>,
    until: Option<K>,
    reached: Option<Mark<K>>,
}

impl<K: Ord + Clone + Serialize + DeserializeOwned> Watermark<K> {
    /// A pull from `start` (everything when `None`) up to, not including, `until`.
    pub fn new(start: Option<Mark<K>>, until: Option<K>) -> Self {
        Watermark {
            seen: start.iter().flat_map(|m| m.ids.iter().cloned()).collect(),
            reached: start.clone(),
            start,
            until,
        }
    }

    /// The pull of this run: from the last successful run's mark, or on a flow's first run
    /// from its `first_run_from` (`first` turns that instant into a cursor value); up to
    /// `until`.
    pub fn of_run(
        cx: &BuildContext,
        first: impl FnOnce(DateTime<Utc>) -> K,
        until: Option<K>,
    ) -> Result<Self, NodeError> {
        let start = cx
            .saved_watermark::<Mark<K>>()?
            .or_else(|| cx.first_run_from.map(|at| Mark::at(first(at))));
        Ok(Self::new(start, until))
    }

    /// This window's share from `since` (`None`: from where the window starts, with the
    /// ids read there last time) up to `until`: one part of a partitioned run.
    pub fn share(&self, since: Option<K>, until: K) -> Self {
        match since {
            None => Watermark {
                until: Some(until),
                ..self.clone()
            },
            Some(since) => Self::new(Some(Mark::at(since)), Some(until)),
        }
    }

    /// The value to ask the service from, inclusive: records at it may be new.
    pub fn since(&self) -> Option<&K> {
        self.start.as_ref().map(|m| &m.value)
    }

    /// The value to ask the service up to, exclusive.
    pub fn until(&self) -> Option<&K> {
        self.until.as_ref()
    }

    /// Whether a record whose cursor is `value` belongs to this pull: after the start, or at
    /// it and not read there yet; before the upper bound. A record without an id at the
    /// start's very value was read last time.
    pub fn includes(&self, value: &K, id: Option<&str>) -> bool {
        if self.until.as_ref().is_some_and(|until| value >= until) {
            return false;
        }
        match &self.start {
            None => true,
            Some(start) => match value.cmp(&start.value) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => id.is_some_and(|id| !self.seen.contains(id)),
            },
        }
    }

    /// Moves the watermark on by a record that was read.
    pub fn advance(&mut self, value: &K, id: Option<&str>) {
        match &mut self.reached {
            Some(m) if m.value == *value => m.ids.extend(id.map(String::from)),
            Some(m) if m.value > *value => {}
            _ => {
                self.reached = Some(Mark {
                    value: value.clone(),
                    ids: id.map(String::from).into_iter().collect(),
                })
            }
        }
    }

    /// [`includes`](Self::includes) and, when it does, [`advance`](Self::advance).
    pub fn take(&mut self, value: &K, id: Option<&str>) -> bool {
        let new = self.includes(value, id);
        if new {
            self.advance(value, id);
        }
        new
    }

    /// Where the pull got to, when it read anything new.
    pub fn reached(&self) -> Option<&Mark<K>> {
        self.reached
            .as_ref()
            .filter(|r| Some(*r) != self.start.as_ref())
    }

    /// Hands where the pull got to to the run, which saves it once the run's output is
    /// committed; a pull that read nothing new leaves the last mark standing.
    pub fn save(&self, out: &SourceOutput) {
        if let Some(mark) = self.reached() {
            out.advance_watermark(serde_json::to_value(mark).expect("a mark is plain data"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(w: &Watermark<u32>) -> Vec<String> {
        w.reached().map(|m| m.ids.clone()).unwrap_or_default()
    }

    #[test]
    fn records_sharing_the_boundary_value_are_each_read_once() {
        let mut first = Watermark::<u32>::new(None, None);
        assert!(first.take(&5, Some("a")));
        assert!(first.take(&7, Some("b")));
        assert!(first.take(&7, Some("c")));
        assert!(first.take(&6, Some("d")));
        assert_eq!(first.reached().unwrap().value, 7);
        assert_eq!(ids(&first), ["b", "c"]);

        // The next pull asks from 7 inclusive: b and c come again, with a newcomer at 7.
        let mut second = Watermark::new(first.reached().cloned(), None);
        assert_eq!(second.since(), Some(&7));
        assert!(!second.take(&7, Some("b")));
        assert!(!second.take(&6, Some("x")), "before the mark");
        assert!(second.take(&7, Some("e")));
        assert_eq!(ids(&second), ["b", "c", "e"], "the ids at 7 add up");
        // Without an id, a record at the very value was read last time.
        assert!(!second.includes(&7, None));

        // Nothing new: nothing to save.
        let mut third = Watermark::new(second.reached().cloned(), None);
        assert!(!third.take(&7, Some("c")));
        assert_eq!(third.reached(), None);
    }

    #[test]
    fn the_run_start_bounds_the_pull() {
        let mut w = Watermark::<u32>::new(Some(Mark::at(3)), Some(10));
        assert!(w.take(&9, Some("a")));
        assert!(
            !w.take(&10, Some("b")),
            "changed as the run began: next run's"
        );
        assert!(!w.take(&12, Some("c")));
        assert_eq!(w.reached().unwrap().value, 9);
        // A starting point with no ids takes every record at its value.
        assert!(w.includes(&3, Some("z")));
    }

    #[test]
    fn marks_saved_by_earlier_versions_still_read() {
        let s3: Mark<DateTime<Utc>> = serde_json::from_value(serde_json::json!({
            "last_modified": "2026-11-27T10:00:00Z", "keys": ["a.csv"]
        }))
        .unwrap();
        assert_eq!(s3.ids, ["a.csv"]);
        let rest: Mark<u32> = serde_json::from_value(serde_json::json!({"value": 4})).unwrap();
        assert_eq!(rest, Mark::at(4));
    }
}
