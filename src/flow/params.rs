//! `${name}` placeholders in node configs.
//!
//! Values come from the flow's `params`, overridden by `--param name=value` or the app's
//! Parameters panel. `$${` writes a literal `${`.

use indexmap::IndexMap;
use serde_json::Value;

/// A placeholder with no value, and where it sits inside the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfilled {
    /// JSON pointer below the config, e.g. `/path`.
    pub path: String,
    pub name: String,
    /// Written without its closing `}`: `${output`.
    pub unclosed: bool,
}

/// The flow's params with the overrides applied on top.
pub fn merge(
    defaults: &IndexMap<String, String>,
    overrides: &IndexMap<String, String>,
) -> IndexMap<String, String> {
    let mut all = defaults.clone();
    for (k, v) in overrides {
        all.insert(k.clone(), v.clone());
    }
    all
}

/// Fills every placeholder in every string of `value`, returning what could not be filled.
pub fn fill(value: &mut Value, params: &IndexMap<String, String>) -> Vec<Unfilled> {
    let mut unfilled = Vec::new();
    fill_at(value, params, &mut String::new(), &mut unfilled);
    unfilled
}

fn fill_at(
    value: &mut Value,
    params: &IndexMap<String, String>,
    path: &mut String,
    unfilled: &mut Vec<Unfilled>,
) {
    let len = path.len();
    match value {
        Value::String(s) if s.contains('$') => {
            let (text, missing) = fill_str(s, params);
            *s = text;
            unfilled.extend(missing.into_iter().map(|(name, unclosed)| Unfilled {
                path: path.clone(),
                name,
                unclosed,
            }));
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("/{i}"));
                fill_at(item, params, path, unfilled);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                fill_at(item, params, path, unfilled);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Fills one string; returns it with the names that had no value (left as written), each
/// with whether its `}` is missing.
pub fn fill_str(s: &str, params: &IndexMap<String, String>) -> (String, Vec<(String, bool)>) {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${")
            && let Some(end) = tail.find('}')
        {
            let name = tail[..end].trim();
            match params.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    missing.push((name.to_string(), false));
                    out.push_str(&after[..end + 3]);
                }
            }
            rest = &tail[end + 1..];
        } else if let Some(tail) = after.strip_prefix("${") {
            // `${output` would otherwise be taken literally: a folder named `${output`.
            missing.push((tail.to_string(), true));
            out.push_str(after);
            rest = "";
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    (out, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_nested_strings_and_reports_paths_of_missing_ones() {
        let mut v =
            serde_json::json!({"path": "${dir}/x.csv", "list": ["${a}", "plain", "${nope}"]});
        let missing = fill(&mut v, &params(&[("dir", "/data"), ("a", "A")]));
        assert_eq!(v["path"], "/data/x.csv");
        assert_eq!(v["list"][0], "A");
        assert_eq!(v["list"][2], "${nope}");
        assert_eq!(
            missing,
            vec![Unfilled {
                path: "/list/2".into(),
                name: "nope".into(),
                unclosed: false,
            }]
        );
    }

    #[test]
    fn escapes_and_stray_dollars_are_kept() {
        let p = params(&[("x", "1")]);
        assert_eq!(fill_str("$${x} costs $5 ${x}", &p).0, "${x} costs $5 1");
        assert_eq!(
            fill_str("out/${unclosed", &p),
            ("out/${unclosed".into(), vec![("unclosed".into(), true)])
        );
    }

    #[test]
    fn overrides_win() {
        let all = merge(&params(&[("a", "1"), ("b", "2")]), &params(&[("b", "3")]));
        assert_eq!(all["b"], "3");
        assert_eq!(all["a"], "1");
    }
}
