//! Looking up the fields a node names, with messages that list what is there.

use arrow::datatypes::{DataType, Schema};

use crate::node::ConfigProblem;
use crate::types::describe;

/// The index of `name` in `schema`, or a problem at `path` that lists the fields there are.
pub fn find(schema: &Schema, name: &str, path: impl Into<String>) -> Result<usize, ConfigProblem> {
    if name.trim().is_empty() {
        return Err(ConfigProblem::new(path, "choose a field"));
    }
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let close: Vec<&&str> = names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case(name))
            .collect();
        let hint = match close.first() {
            Some(n) => format!(" (did you mean `{n}`?)"),
            None => format!("; its fields are: {}", names.join(", ")),
        };
        ConfigProblem::new(path, format!("the input has no field `{name}`{hint}"))
    })
}

/// Any type will do.
pub fn any_type(_: &DataType) -> bool {
    true
}

/// Like [`find`], and the field's type must pass `ok`; `wanted` says what it should be.
pub fn find_typed(
    schema: &Schema,
    name: &str,
    path: impl Into<String>,
    ok: fn(&DataType) -> bool,
    wanted: &str,
) -> Result<usize, ConfigProblem> {
    let path = path.into();
    let i = find(schema, name, path.clone())?;
    let dt = schema.field(i).data_type();
    if ok(dt) {
        Ok(i)
    } else {
        Err(ConfigProblem::new(
            path,
            format!(
                "the field `{name}` is {} {}; this needs {wanted}",
                article(&describe(dt)),
                describe(dt)
            ),
        ))
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Collects problems, so a config reports all of them at once.
#[derive(Default)]
pub struct Problems(pub Vec<ConfigProblem>);

impl Problems {
    pub fn check<T>(&mut self, r: Result<T, ConfigProblem>) -> Option<T> {
        r.map_err(|p| self.0.push(p)).ok()
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(path, message));
    }

    /// The columns of the fields listed at `path` (such as `/fields`); each must have a
    /// type `ok` accepts, described by `wanted`.
    pub fn fields(
        &mut self,
        input: &Schema,
        names: &[String],
        path: &str,
        ok: fn(&DataType) -> bool,
        wanted: &str,
    ) -> Vec<usize> {
        names
            .iter()
            .enumerate()
            .filter_map(|(k, name)| {
                self.check(find_typed(input, name, format!("{path}/{k}"), ok, wanted))
            })
            .collect()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<ConfigProblem>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}
