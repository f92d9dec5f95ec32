//! Where a source's incremental pull got to, as a run saves it — and how the parts of a
//! partitioned run, each of which read its share of one window, add up to one mark.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run saves: the newest cursor value it read and the ids read at exactly that value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark<K> {
    /// The newest value of the cursor field read (`SystemModstamp`, an object's
    /// LastModified, an API's `updated_at`).
    #[serde(alias = "last_modified")]
    pub value: K,
    /// The ids (record ids, object keys) read at exactly [`Mark::value`].
    #[serde(default, alias = "keys")]
    pub ids: Vec<String>,
}

impl<K> Mark<K> {
    /// A starting point with nothing read at it yet (the flow's `first_run_from`).
    pub fn at(value: K) -> Self {
        Mark {
            value,
            ids: Vec::new(),
        }
    }
}

/// Orders two cursor values as their service does: instants as instants (RFC 3339 texts
/// of different precision do not sort as text), numbers as numbers, other text as text.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => {
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(x), Ok(y)) => Some(x.cmp(&y)),
                _ => Some(x.cmp(y)),
            }
        }
        _ => None,
    }
}

/// The mark of a whole window from the marks its parts reached, each over its own share of
/// the records: the newest value, with the ids every part read at exactly that value (a
/// part whose newest is older read none there). An error when the marks are not of that
/// shape (a change log's link cannot be added up).
pub fn combine<'a>(marks: impl IntoIterator<Item = &'a Value>) -> Result<Option<Value>, String> {
    let mut newest: Option<Mark<Value>> = None;
    for mark in marks {
        let mark: Mark<Value> = serde_json::from_value(mark.clone())
            .map_err(|_| format!("the parts' watermarks cannot be added up: {mark}"))?;
        newest = Some(match newest {
            None => mark,
            Some(mut so_far) => match order(&mark.value, &so_far.value) {
                Some(Ordering::Greater) => mark,
                Some(Ordering::Less) => so_far,
                Some(Ordering::Equal) => {
                    for id in mark.ids {
                        if !so_far.ids.contains(&id) {
                            so_far.ids.push(id);
                        }
                    }
                    so_far
                }
                None => {
                    return Err(format!(
                        "the parts' watermarks {} and {} cannot be compared",
                        so_far.value, mark.value
                    ));
                }
            },
        });
    }
    Ok(newest.map(|m| serde_json::to_value(m).expect("a mark is plain data")))
}

/// Whether `a` is newer than `b` (both marks); marks that cannot be compared are not.
pub fn is_newer(a: &Value, b: &Value) -> bool {
    order(&a["value"], &b["value"]) == Some(Ordering::Greater)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parts_add_up_to_the_newest_value_with_every_id_read_there() {
        let marks = [
            json!({"value": "2026-03-01T10:00:05Z", "ids": ["a"]}),
            // Sorted as text, `05.5Z` would come before `05Z`.
            json!({"value": "2026-03-01T10:00:05.500Z", "ids": ["b"]}),
            json!({"value": "2026-03-01T10:00:05.5Z", "ids": ["c", "b"]}),
            json!({"value": "2026-03-01T09:00:00Z", "ids": ["d"]}),
        ];
        assert_eq!(
            combine(&marks).unwrap(),
            Some(json!({"value": "2026-03-01T10:00:05.500Z", "ids": ["b", "c"]}))
        );
        assert_eq!(
            combine(&[
                json!({"value": 9, "ids": []}),
                json!({"value": 10, "ids": []})
            ])
            .unwrap(),
            Some(json!({"value": 10, "ids": []}))
        );
        assert_eq!(combine(&[]).unwrap(), None);
        assert!(combine(&[json!({"delta_link": "x"})]).is_err());
        assert!(combine(&[json!({"value": 1}), json!({"value": "a"})]).is_err());
        assert!(is_newer(&marks[1], &marks[0]));
        assert!(!is_newer(&marks[0], &marks[0]));
    }
}
