//! Script: logic that formulas cannot express, as a Rhai script run on each record (or
//! each batch) inside a sandbox: no files, no network, no processes — Rhai has none of
//! them, and modules (its one way to read a file) are not built in — and limits on
//! operations, call depth, string, array and map sizes, and time per batch.
//!
//! The script sees `record`, a map of the record's fields with their values (whole
//! numbers, numbers, text, true/false; dates and timestamps as ISO 8601 text, decimals as
//! numbers, null as `()`). What it ends with decides what leaves: a map is the record, an
//! array of maps is that many records (`[]` drops it), anything else keeps `record` as the
//! script left it. A record whose script fails goes to the error output with the error and
//! its line; a script that runs past a limit fails the run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use indexmap::IndexMap;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::Problems;
use crate::node::{
    BuildContext, ConfigProblem, ErrorRecord, NodeConfig, NodeError, NodeKind, PlanContext,
    Runtime, Transform, TransformContext,
};
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The script's language: `rhai`.
    #[serde(default)]
    pub language: Language,
    /// `record`: the script runs once for each record, which it sees as `record`;
    /// `batch`: once for each batch, which it sees as `records`, an array of maps.
    #[serde(default)]
    pub mode: Mode,
    /// The script, e.g. `record.Score = record.Amount * 2;`.
    #[schemars(extend("x-code" = "rhai"))]
    pub script: String,
    /// The fields the script adds, with their types, e.g. `{"Score": "number"}`. Records
    /// leave with the incoming fields and these.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub fields: IndexMap<String, FieldType>,
    /// The most operations one run of the script may take (per record, or per batch).
    #[serde(default = "operations")]
    pub max_operations: u64,
    /// The longest one batch may take, in seconds.
    #[serde(default = "ten")]
    pub timeout_seconds: u64,
}

fn operations() -> u64 {
    1_000_000
}

fn ten() -> u64 {
    10
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Rhai (rhai.rs), a small scripting language with Rust-like syntax.
    #[default]
    Rhai,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Once for each record.
    #[default]
    Record,
    /// Once for each batch of records.
    Batch,
}

impl NodeKind for Script {
    const TYPE: &'static str = "transform.script";
    const TITLE: &'static str = "Script";
    const ICON: &'static str = "📜";
    const DESCRIPTION: &'static str = "Change, drop or add records with a script run in a sandbox";
}

/// Longest text, array and map a script may make.
const MAX_STRING: usize = 1 << 20;
const MAX_ARRAY: usize = 1 << 20;
const MAX_MAP: usize = 10_000;

/// An engine with the limits and nothing reaching outside.
fn engine(max_operations: u64, deadline: Arc<Mutex<Option<Instant>>>) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(max_operations);
    engine.set_max_call_levels(32);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_ARRAY);
    engine.set_max_map_size(MAX_MAP);
    engine.on_print(|text| tracing::info!("script: {text}"));
    engine.on_debug(|text, _, at| tracing::info!("script at {at}: {text}"));
    engine.on_progress(move |_| {
        let late = deadline.lock().unwrap().is_some_and(|d| Instant::now() > d);
        // Stops the script with `ErrorTerminated`.
        late.then_some(Dynamic::UNIT)
    });
    engine
}

impl Script {
    fn plan(&self, input: &Schema) -> Result<(AST, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.max_operations == 0 {
            problems.push("/max_operations", "allow the script at least one operation");
        }
        if self.timeout_seconds == 0 {
            problems.push("/timeout_seconds", "give each batch at least a second");
        }
        let fields = super::with_added_fields(input, &self.fields, "the script", &mut problems);
        let engine = engine(1, Arc::default());
        let ast = match engine.compile(&self.script) {
            Ok(ast) => Some(ast),
            Err(e) => {
                let at = e.position();
                let place = match (at.line(), at.position()) {
                    (Some(l), Some(c)) => format!("line {l}, column {c}: "),
                    (Some(l), None) => format!("line {l}: "),
                    _ => String::new(),
                };
                problems.push("/script", format!("{place}{}", e.err_type()));
                None
            }
        };
        match ast {
            Some(ast) => problems.into_result((ast, fields)),
            None => Err(problems.0),
        }
    }
}

impl NodeConfig for Script {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        Ok(self.plan(input.expect("a transform has an input"))?.1)
    }

    fn summary(&self) -> String {
        let first = self
            .script
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let mut s = crate::records::clip(first.trim(), 50);
        if !self.fields.is_empty() {
            let names: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            s += &format!(" · adds {}", names.join(", "));
        }
        s
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (ast, output) =
            self.plan(cx.input_schema.as_ref().expect("a transform has an input"))?;
        let deadline = Arc::new(Mutex::new(None));
        Ok(Runtime::Transform(Box::new(ScriptRun {
            engine: engine(self.max_operations, deadline.clone()),
            ast,
            mode: self.mode,
            output,
            deadline,
            timeout: Duration::from_secs(self.timeout_seconds),
            max_operations: self.max_operations,
        })))
    }
}

struct ScriptRun {
    engine: Engine,
    ast: AST,
    mode: Mode,
    output: SchemaRef,
    /// When the batch being run must be done.
    deadline: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
    max_operations: u64,
}

/// A script's failure in words, with its line; `true` when it is a limit, which fails the
/// run rather than the record.
fn failure(e: &EvalAltResult, run: &ScriptRun) -> (String, bool) {
    use EvalAltResult::*;
    let at = e.position();
    let place = match at.line() {
        Some(l) => format!("line {l}: "),
        None => String::new(),
    };
    let limit = match e {
        ErrorTooManyOperations(_) => Some(format!(
            "the script ran past {} operations (`max_operations`): does it loop without end?",
            run.max_operations
        )),
        ErrorTerminated(..) => Some(format!(
            "the script took longer than {} s on one batch (`timeout_seconds`)",
            run.timeout.as_secs()
        )),
        ErrorDataTooLarge(what, _) => Some(format!(
            "the script made {what} larger than Tributary lets a script make"
        )),
        ErrorStackOverflow(_) => Some("the script called functions more than 32 deep".to_string()),
        _ => None,
    };
    match limit {
        Some(message) => (format!("{place}{message}"), true),
        None => (
            format!(
                "{place}{}",
                e.to_string().split(" (line").next().unwrap_or_default()
            ),
            false,
        ),
    }
}

fn to_dynamic(record: Map<String, Value>) -> Result<Dynamic, NodeError> {
    rhai::serde::to_dynamic(Value::Object(record))
        .map_err(|e| NodeError::msg(format!("a record cannot be given to the script: {e}")))
}

/// What a script ended with, as records: a map, an array of maps, or (anything else) the
/// value it left in `name`.
fn records_of(value: Dynamic, scope: &Scope, name: &str) -> Result<Vec<Value>, String> {
    let value = if value.is_map() || value.is_array() {
        value
    } else {
        scope.get_value::<Dynamic>(name).unwrap_or(Dynamic::UNIT)
    };
    let json: Value = rhai::serde::from_dynamic(&value).map_err(|e| e.to_string())?;
    match json {
        Value::Object(_) => Ok(vec![json]),
        Value::Array(items) => {
            for item in &items {
                if !item.is_object() {
                    return Err(format!(
                        "the script gave {item} where a record (a map) belongs"
                    ));
                }
            }
            Ok(items)
        }
        other => Err(format!(
            "the script gave {other} where a record (a map) belongs"
        )),
    }
}

impl ScriptRun {
    fn decode(&self, records: &[Value]) -> Result<RecordBatch, String> {
        let mut decoder = arrow::json::ReaderBuilder::new(self.output.clone())
            .build_decoder()
            .map_err(|e| e.to_string())?;
        decoder.serialize(records).map_err(|e| e.to_string())?;
        Ok(decoder
            .flush()
            .map_err(|e| e.to_string())?
            .unwrap_or_else(|| RecordBatch::new_empty(self.output.clone())))
    }
}

impl Transform for ScriptRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let rows = crate::records::rows_json(&batch)?;
        *self.deadline.lock().unwrap() = Some(Instant::now() + self.timeout);
        let mut made_from: Vec<(usize, Vec<Value>)> = Vec::with_capacity(rows.len());
        let node = cx.node().to_string();
        let reject = |cx: &mut TransformContext, record: String, reason: String| {
            cx.rejected.push(ErrorRecord {
                node: node.clone(),
                file: None,
                line: None,
                reason,
                record,
            })
        };
        let out: Vec<Value> = match self.mode {
            Mode::Record => {
                // A record is written out as JSON only when it is set aside.
                let shown = |row: usize| crate::records::row_json(&batch, row);
                for (i, row) in rows.into_iter().enumerate() {
                    let mut scope = Scope::new();
                    scope.push_dynamic("record", to_dynamic(row)?);
                    let ran = self
                        .engine
                        .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast);
                    let made = match ran {
                        Ok(value) => records_of(value, &scope, "record"),
                        Err(e) => {
                            let (message, limit) = failure(&e, self);
                            if limit {
                                return Err(NodeError::msg(message));
                            }
                            Err(message)
                        }
                    };
                    match made {
                        Ok(records) if records.is_empty() => cx.dropped += 1,
                        Ok(records) => made_from.push((i, records)),
                        Err(reason) => reject(cx, shown(i), format!("the script failed: {reason}")),
                    }
                }
                // Records whose values do not fit the fields are set aside with the
                // record they came from; the others are decoded in one go.
                if self
                    .decode(
                        made_from
                            .iter()
                            .flat_map(|(_, r)| r)
                            .cloned()
                            .collect::<Vec<_>>()
                            .as_slice(),
                    )
                    .is_err()
                {
                    made_from.retain(|(i, records)| match self.decode(records) {
                        Ok(_) => true,
                        Err(e) => {
                            reject(
                                cx,
                                shown(*i),
                                format!("the script's record does not fit the flow's fields: {e}"),
                            );
                            false
                        }
                    });
                }
                made_from.into_iter().flat_map(|(_, r)| r).collect()
            }
            Mode::Batch => {
                let records: Vec<Dynamic> =
                    rows.into_iter().map(to_dynamic).collect::<Result<_, _>>()?;
                let mut scope = Scope::new();
                scope.push_dynamic("records", Dynamic::from_array(records));
                let value = self
                    .engine
                    .eval_ast_with_scope::<Dynamic>(&mut scope, &self.ast)
                    .map_err(|e| {
                        NodeError::msg(format!("the script failed: {}", failure(&e, self).0))
                    })?;
                let out = records_of(value, &scope, "records").map_err(NodeError::msg)?;
                // Fewer records than came in: the rest were dropped.
                cx.dropped += (batch.num_rows() as u64).saturating_sub(out.len() as u64);
                out
            }
        };
        *self.deadline.lock().unwrap() = None;
        self.decode(&out).map_err(|e| {
            NodeError::msg(format!(
                "the script's records do not fit the flow's fields: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn script(mode: Mode, text: &str, fields: &[(&str, FieldType)]) -> Script {
        Script {
            language: Language::Rhai,
            mode,
            script: text.to_string(),
            fields: fields.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
            max_operations: 100_000,
            timeout_seconds: 10,
        }
    }

    fn input() -> RecordBatch {
        batch_of(&[
            ("id", ints(&[Some(1), Some(2), Some(3), Some(4)])),
            ("amount", floats(&[Some(10.0), None, Some(2.5), Some(-1.0)])),
            (
                "name",
                opt_strs(&[Some("ana"), Some("bob"), None, Some("dee")]),
            ),
        ])
    }

    fn run(s: &Script) -> Result<(RecordBatch, TransformContext), String> {
        run_many(s, vec![input()]).map_err(|e| e.to_string())
    }

    #[test]
    fn a_record_script_changes_drops_and_multiplies_records() {
        let s = script(
            Mode::Record,
            r#"
            if record.amount == () { return []; }
            record.score = record.amount * 2.0;
            if record.id == 4 {
                let copy = record;
                copy.name = "dee again";
                return [record, copy];
            }
            "#,
            &[("score", FieldType::Number)],
        );
        let (out, cx) = run(&s).unwrap();
        assert_eq!(cx.dropped, 1);
        assert_eq!(i64s(&out, "id"), [Some(1), Some(3), Some(4), Some(4)]);
        assert_eq!(
            f64s(&out, "score"),
            [Some(20.0), Some(5.0), Some(-2.0), Some(-2.0)]
        );
        assert_eq!(
            texts(&out, "name"),
            [
                Some("ana".into()),
                None,
                Some("dee".into()),
                Some("dee again".into())
            ]
        );
        assert!(cx.rejected.is_empty());
    }

    #[test]
    fn a_batch_script_sees_every_record() {
        let s = script(
            Mode::Batch,
            r#"
            let total = 0.0;
            for r in records { if r.amount != () { total += r.amount; } }
            records.filter(|r| r.amount != () && r.amount > 0.0)
                   .map(|r| { r.share = r.amount / total; r })
            "#,
            &[("share", FieldType::Number)],
        );
        let (out, _) = run(&s).unwrap();
        assert_eq!(i64s(&out, "id"), [Some(1), Some(3)]);
        assert_eq!(f64s(&out, "share"), [Some(10.0 / 11.5), Some(2.5 / 11.5)]);
    }

    #[test]
    fn a_failing_record_goes_to_the_error_output_with_its_line() {
        let s = script(
            Mode::Record,
            "let n = record.id;\nif n == 3 {\n  throw \"no third\";\n}\nrecord.score = if n == 2 { \"text\" } else { 1.0 };",
            &[("score", FieldType::Number)],
        );
        let (out, cx) = run(&s).unwrap();
        assert_eq!(i64s(&out, "id"), [Some(1), Some(4)]);
        assert_eq!(cx.rejected.len(), 2);
        let third = cx
            .rejected
            .iter()
            .find(|r| r.record.contains("\"id\":3"))
            .unwrap();
        assert!(
            third.reason.contains("line 3") && third.reason.contains("no third"),
            "{}",
            third.reason
        );
        let second = cx
            .rejected
            .iter()
            .find(|r| r.record.contains("\"id\":2"))
            .unwrap();
        assert!(
            second.reason.contains("does not fit the flow's fields"),
            "{}",
            second.reason
        );
    }

    #[test]
    fn an_endless_loop_is_stopped_by_its_operations() {
        let started = Instant::now();
        let e = run(&script(Mode::Record, "loop { }", &[])).unwrap_err();
        assert!(e.contains("ran past 100000 operations"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // With operations to spare, the time per batch stops it.
        let mut slow = script(Mode::Batch, "let x = 0; loop { x += 1; }", &[]);
        slow.max_operations = u64::MAX;
        slow.timeout_seconds = 1;
        let started = Instant::now();
        let e = run(&slow).unwrap_err();
        assert!(e.contains("took longer than 1 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn huge_text_and_deep_calls_are_stopped() {
        let e = run(&script(
            Mode::Record,
            "let s = \"x\"; loop { s += s; }",
            &[],
        ))
        .unwrap_err();
        assert!(
            e.contains("larger than Tributary lets a script make"),
            "{e}"
        );
        let e = run(&script(Mode::Record, "fn f(n) { f(n + 1) } f(0)", &[])).unwrap_err();
        assert!(e.contains("more than 32 deep"), "{e}");
    }

    #[test]
    fn files_modules_and_mistakes_are_refused_when_the_flow_is_checked() {
        let schema = input().schema();
        let problems = plan_problems(
            &script(Mode::Record, "import \"secrets\" as s;", &[]),
            &schema,
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "/script");
        let problems = plan_problems(&script(Mode::Record, "let x = ;", &[]), &schema);
        assert!(
            problems[0].message.starts_with("line 1, column 9: "),
            "{problems:?}"
        );
        // No function reaches a file: calling one is a failure of the record.
        let (_, cx) = run(&script(
            Mode::Record,
            "let text = open_file(\"/etc/passwd\");",
            &[],
        ))
        .unwrap();
        assert_eq!(cx.rejected.len(), 4);
        assert!(
            cx.rejected[0].reason.contains("open_file"),
            "{}",
            cx.rejected[0].reason
        );
    }
}
