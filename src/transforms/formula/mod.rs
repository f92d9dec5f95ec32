//! Formula: adds or replaces fields computed by expressions a spreadsheet user can read,
//! `round(Quantity * UnitPrice, 2)` or `if(Amount > 100000, "large", "small")`. Each
//! expression is checked against the fields it reads when the flow is checked, its
//! mistakes said at their line and column, and evaluated over whole batches.

mod dates;
mod expr;
mod parse;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use expr::FUNCTIONS;
use expr::{Counts, Expr};
pub use parse::{Piece, Span, pieces};

use crate::fields::Problems;
use crate::node::{
    BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime, Transform,
    TransformContext,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Formula {
    /// The fields to compute, in order: a later one may use an earlier one.
    pub fields: Vec<FormulaField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormulaField {
    /// The field that gets the value; an incoming field of that name is replaced in its
    /// place, any other is added at the end.
    pub name: String,
    /// What it is, e.g. `round(Quantity * UnitPrice, 2)`; fields by name (in backquotes
    /// with spaces or symbols), text in double quotes.
    #[schemars(extend("x-code" = "formula"))]
    pub expression: String,
}

impl NodeKind for Formula {
    const TYPE: &'static str = "transform.formula";
    const TITLE: &'static str = "Formula";
    const ICON: &'static str = "ƒ";
    const DESCRIPTION: &'static str = "Compute fields with expressions, as in a spreadsheet";
}

/// One checked field: its expression and the column it goes to.
struct Step {
    expr: Expr,
    column: usize,
}

impl Formula {
    fn plan(&self, input: &Schema) -> Result<(Vec<Step>, SchemaRef), Vec<ConfigProblem>> {
        let mut problems = Problems::default();
        if self.fields.is_empty() {
            problems.push("/fields", "add a field to compute");
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut steps = Vec::new();
        for (i, field) in self.fields.iter().enumerate() {
            if field.name.trim().is_empty() {
                problems.push(format!("/fields/{i}/name"), "name the field");
                continue;
            }
            let working = Schema::new(fields.clone());
            let checked =
                parse::parse(&field.expression).and_then(|ast| expr::check(&ast, &working));
            let expr = match checked {
                Ok(expr) => expr,
                Err(mistake) => {
                    problems.push(
                        format!("/fields/{i}/expression"),
                        mistake.in_words(&field.expression),
                    );
                    continue;
                }
            };
            let kind = match expr.data_type() {
                DataType::Null => DataType::Utf8,
                t => t,
            };
            let made = Field::new(&field.name, kind, true);
            let column = match fields.iter().position(|f| f.name() == &field.name) {
                Some(at) => {
                    fields[at] = made;
                    at
                }
                None => {
                    fields.push(made);
                    fields.len() - 1
                }
            };
            steps.push(Step { expr, column });
        }
        problems.into_result((steps, Arc::new(Schema::new(fields))))
    }
}

impl NodeConfig for Formula {
    fn output_schema(
        &self,
        input: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        Ok(self.plan(input.expect("a transform has an input"))?.1)
    }

    /// One field with its expression; several by their names, as the canvas has room.
    fn summary(&self) -> String {
        match self.fields.as_slice() {
            [one] => format!(
                "{} = {}",
                one.name,
                crate::records::clip(&one.expression, 40)
            ),
            fields => {
                let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                crate::records::clip(&names.join(", "), 60)
            }
        }
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let (steps, schema) =
            self.plan(cx.input_schema.as_ref().expect("a transform has an input"))?;
        Ok(Runtime::Transform(Box::new(FormulaRun { steps, schema })))
    }
}

struct FormulaRun {
    steps: Vec<Step>,
    schema: SchemaRef,
}

impl Transform for FormulaRun {
    fn apply(
        &mut self,
        batch: RecordBatch,
        cx: &mut TransformContext,
    ) -> Result<RecordBatch, NodeError> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let mut counts = Counts::default();
        for step in &self.steps {
            let value = expr::eval(&step.expr, &columns, rows, &mut counts)?;
            let kind = self.schema.field(step.column).data_type();
            let value = if value.data_type() == kind {
                value
            } else {
                arrow::compute::cast(&value, kind)?
            };
            if step.column < columns.len() {
                columns[step.column] = value;
            } else {
                columns.push(value);
            }
        }
        cx.note("divide_by_zero", counts.divide_by_zero);
        cx.note("not_converted", counts.not_converted);
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use arrow::array::{Array, Date32Array, Decimal128Array};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    fn formula(fields: &[(&str, &str)]) -> Formula {
        Formula {
            fields: (fields.iter())
                .map(|(n, e)| FormulaField {
                    name: n.to_string(),
                    expression: e.to_string(),
                })
                .collect(),
        }
    }

    /// Four rows with nulls and edge cases in every column.
    fn input() -> RecordBatch {
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(20_454),
            None,
            Some(0),
            Some(20_484),
        ]));
        let money: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(12_345), Some(-12_355), None, Some(5)])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        );
        batch_of(&[
            ("q", ints(&[Some(12), Some(3), None, Some(0)])),
            ("price", floats(&[Some(2.5), Some(-1.25), Some(4.0), None])),
            (
                "name",
                opt_strs(&[Some("  Ana Lima "), Some("bob"), None, Some("")]),
            ),
            ("won", bools(&[Some(true), Some(false), None, Some(true)])),
            ("Close Date", dates),
            ("money", money),
        ])
    }

    /// One computed field's values as text ("null" for a missing one).
    fn values(expression: &str) -> Vec<String> {
        let (out, _) = run_one(&formula(&[("x", expression)]), input());
        let column = out.column_by_name("x").unwrap();
        let options = FormatOptions::default().with_null("null");
        let f = ArrayFormatter::try_new(column.as_ref(), &options).unwrap();
        (0..column.len()).map(|i| f.value(i).to_string()).collect()
    }

    fn kind(expression: &str) -> DataType {
        let (_, schema) = formula(&[("x", expression)])
            .plan(&input().schema())
            .unwrap();
        schema.field_with_name("x").unwrap().data_type().clone()
    }

    fn mistake(expression: &str) -> String {
        let problems = plan_problems(&formula(&[("x", expression)]), &input().schema());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "/fields/0/expression");
        problems[0].message.clone()
    }

    #[test]
    fn arithmetic_keeps_whole_numbers_whole_and_nulls_null() {
        assert_eq!(values("q * 2 + 1"), ["25", "7", "null", "1"]);
        assert_eq!(kind("q * 2 + 1"), DataType::Int64);
        assert_eq!(values("q / 4"), ["3.0", "0.75", "null", "0.0"]);
        assert_eq!(values("q % 5"), ["2", "3", "null", "0"]);
        assert_eq!(values("-price"), ["-2.5", "1.25", "-4.0", "null"]);
        assert_eq!(values("q * price"), ["30.0", "-3.75", "null", "null"]);
        // Decimals add up exactly.
        assert_eq!(
            values("money + money + 1"),
            ["247.90", "-246.10", "null", "1.10"]
        );
        assert_eq!(kind("money + 1"), DataType::Decimal128(38, 2));
    }

    #[test]
    fn dividing_by_zero_gives_null_and_is_counted() {
        let (out, cx) = run_one(&formula(&[("x", "price / q"), ("y", "q % q")]), input());
        assert_eq!(
            f64s(&out, "x"),
            [Some(2.5 / 12.0), Some(-1.25 / 3.0), None, None]
        );
        assert_eq!(i64s(&out, "y"), [Some(0), Some(0), None, None]);
        assert_eq!(cx.notes["divide_by_zero"], 2);
    }

    #[test]
    fn comparisons_and_logic_follow_three_valued_rules() {
        assert_eq!(values("q > 10 and won"), ["true", "false", "null", "false"]);
        assert_eq!(values("q > 10 or won"), ["true", "false", "null", "true"]);
        assert_eq!(values("not won"), ["false", "true", "null", "false"]);
        assert_eq!(values("q = 3"), ["false", "true", "null", "false"]);
        assert_eq!(values("q <> 3"), ["true", "false", "null", "true"]);
        assert_eq!(values("q >= price"), ["true", "true", "null", "null"]);
        assert_eq!(values("name = \"bob\""), ["false", "true", "null", "false"]);
        assert_eq!(
            values("`Close Date` >= \"2026-01-01\""),
            ["true", "null", "false", "true"]
        );
        assert_eq!(
            values("`Close Date` < \"2026-01-01\""),
            ["false", "null", "true", "false"]
        );
    }

    #[test]
    fn if_case_coalesce_and_is_null() {
        assert_eq!(
            values("if(q > 10, \"bulk\", \"single\")"),
            ["bulk", "single", "single", "single"]
        );
        assert_eq!(values("if(is_null(q), -1, q)"), ["12", "3", "-1", "0"]);
        assert_eq!(
            values("case(q > 10, \"many\", q > 0, \"some\", \"none\")"),
            ["many", "some", "none", "none"]
        );
        assert_eq!(
            values("case(q > 10, \"many\")"),
            ["many", "null", "null", "null"]
        );
        assert_eq!(
            values("coalesce(price, q, 0)"),
            ["2.5", "-1.25", "4.0", "0.0"]
        );
        assert_eq!(
            values("coalesce(name, \"?\")"),
            ["  Ana Lima ", "bob", "?", ""]
        );
        assert_eq!(values("is_null(name)"), ["false", "false", "true", "false"]);
        assert_eq!(kind("if(won, q, price)"), DataType::Float64);
    }

    #[test]
    fn text_functions() {
        assert_eq!(values("upper(name)"), ["  ANA LIMA ", "BOB", "null", ""]);
        assert_eq!(values("lower(\"ÄBC\")"), ["äbc"; 4]);
        assert_eq!(values("trim(name)"), ["Ana Lima", "bob", "null", ""]);
        assert_eq!(values("length(trim(name))"), ["8", "3", "null", "0"]);
        assert_eq!(values("length(\"Zürich\")"), ["6"; 4]);
        assert_eq!(
            values("trim(name) & \"!\""),
            ["Ana Lima!", "bob!", "!", "!"]
        );
        assert_eq!(
            values("concat(trim(name), \"-\", q)"),
            ["Ana Lima-12", "bob-3", "-", "-0"]
        );
        assert_eq!(
            values("substring(trim(name), 1, 3)"),
            ["Ana", "bob", "null", ""]
        );
        assert_eq!(values("substring(\"Zürich\", 2)"), ["ürich"; 4]);
        assert_eq!(values("substring(\"abc\", 0, 2)"), ["ab"; 4]);
        assert_eq!(
            values("replace(name, \"a\", \"4\")"),
            ["  An4 Lim4 ", "bob", "null", ""]
        );
        assert_eq!(values("replace(\"aaa\", \"\", \"x\")"), ["aaa"; 4]);
        assert_eq!(
            values("starts_with(name, \"  A\")"),
            ["true", "false", "null", "false"]
        );
        assert_eq!(
            values("ends_with(name, \"b\")"),
            ["false", "true", "null", "false"]
        );
        assert_eq!(
            values("contains(name, \"Lim\")"),
            ["true", "false", "null", "false"]
        );
    }

    #[test]
    fn rounding_to_places() {
        assert_eq!(
            values("round(price / 3, 2)"),
            ["0.83", "-0.42", "1.33", "null"]
        );
        assert_eq!(values("floor(price)"), ["2.0", "-2.0", "4.0", "null"]);
        assert_eq!(values("ceil(price, 1)"), ["2.5", "-1.2", "4.0", "null"]);
        assert_eq!(values("round(1234.5, -2)"), ["1200.0"; 4]);
        assert_eq!(values("round(q)"), ["12", "3", "null", "0"]);
        assert_eq!(values("abs(price)"), ["2.5", "1.25", "4.0", "null"]);
        // Decimals round exactly, half away from zero.
        assert_eq!(
            values("round(money, 1)"),
            ["123.5", "-123.6", "null", "0.1"]
        );
        assert_eq!(
            values("floor(money, 1)"),
            ["123.4", "-123.6", "null", "0.0"]
        );
        assert_eq!(values("ceil(money, 1)"), ["123.5", "-123.5", "null", "0.1"]);
        assert_eq!(kind("round(money, 1)"), DataType::Decimal128(38, 1));
    }

    #[test]
    fn conversions_count_what_does_not_convert() {
        let (out, cx) = run_one(
            &formula(&[
                ("n", "to_number(\"12.5\")"),
                ("bad", "to_number(name)"),
                ("i", "to_integer(\"12.0\")"),
                ("t", "to_text(q)"),
                ("d", "to_date(\"2026-12-04\")"),
            ]),
            input(),
        );
        assert_eq!(f64s(&out, "n"), [Some(12.5); 4]);
        assert_eq!(f64s(&out, "bad"), [None; 4]);
        assert_eq!(i64s(&out, "i"), [Some(12); 4]);
        assert_eq!(
            texts(&out, "t"),
            [Some("12".into()), Some("3".into()), None, Some("0".into())]
        );
        assert_eq!(
            out.column_by_name("d").unwrap().data_type(),
            &DataType::Date32
        );
        // "  Ana Lima ", "bob" and "" do not convert; the null was null already.
        assert_eq!(cx.notes["not_converted"], 3);
    }

    #[test]
    fn text_shapes_and_patterns() {
        assert_eq!(values(r#"split_part("a,b,,d", ",", 2)"#), ["b"; 4]);
        assert_eq!(values(r#"split_part("a,b", ",", 3)"#), ["null"; 4]);
        assert_eq!(
            values(r#"split_part(trim(name), " ", 2)"#),
            ["Lima", "null", "null", "null"]
        );
        assert_eq!(
            values(r#"lpad(to_text(q), 4, "0")"#),
            ["0012", "0003", "null", "0000"]
        );
        assert_eq!(values(r#"rpad("ab", 4)"#), ["ab  "; 4]);
        assert_eq!(values(r#"lpad("abcdef", 3, "*")"#), ["abcdef"; 4]);
        assert_eq!(
            values(r#"regex_match(name, "^\\s*[A-Z]")"#),
            ["true", "false", "null", "false"]
        );
        assert_eq!(
            values(r#"regex_extract("INV-2026-0042", "(\\d{4})-(\\d+)", 2)"#),
            ["0042"; 4]
        );
        assert_eq!(values(r#"regex_extract(name, "z+")"#), ["null"; 4]);
        assert_eq!(
            values(r#"regex_replace(trim(name), "\\s+", "_")"#),
            ["Ana_Lima", "bob", "null", ""]
        );
        assert_eq!(
            values(r#"regex_replace("2026-12-04", "(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1")"#),
            ["04/12/2026"; 4]
        );
    }

    #[test]
    fn dates_and_times() {
        // 20454 is 2026-01-01, 20484 is 2026-01-31, 0 is 1970-01-01.
        assert_eq!(
            values("year(`Close Date`)"),
            ["2026", "null", "1970", "2026"]
        );
        assert_eq!(
            values("month(`Close Date`) * 100 + day(`Close Date`)"),
            ["101", "null", "101", "131"]
        );
        assert_eq!(values("weekday(`Close Date`)"), ["4", "null", "4", "6"]);
        assert_eq!(
            values("add_days(`Close Date`, 31)"),
            ["2026-02-01", "null", "1970-02-01", "2026-03-03"]
        );
        assert_eq!(
            values("add_days(`Close Date`, -1)"),
            ["2025-12-31", "null", "1969-12-31", "2026-01-30"]
        );
        // The 31st plus a month is the last day of February.
        assert_eq!(
            values("add_months(`Close Date`, 1)"),
            ["2026-02-01", "null", "1970-02-01", "2026-02-28"]
        );
        assert_eq!(
            values("add_months(`Close Date`, -12)"),
            ["2025-01-01", "null", "1969-01-01", "2025-01-31"]
        );
        assert_eq!(
            values(r#"diff_days(`Close Date`, to_date("2026-01-01"))"#),
            ["0", "null", "-20454", "30"]
        );
        assert_eq!(
            values(r#"date_trunc(`Close Date`, "week")"#),
            ["2025-12-29", "null", "1969-12-29", "2026-01-26"]
        );
        assert_eq!(
            values(r#"date_trunc(`Close Date`, "month")"#),
            ["2026-01-01", "null", "1970-01-01", "2026-01-01"]
        );
        assert_eq!(
            values(r#"date_trunc(add_months(`Close Date`, 5), "quarter")"#),
            ["2026-04-01", "null", "1970-04-01", "2026-04-01"]
        );
        assert_eq!(
            values(r#"date_trunc(`Close Date`, "year")"#),
            ["2026-01-01", "null", "1970-01-01", "2026-01-01"]
        );
        assert_eq!(
            values(r#"format(`Close Date`, "%d/%m/%Y")"#),
            ["01/01/2026", "null", "01/01/1970", "31/01/2026"]
        );
        assert_eq!(
            values(r#"parse_date("31/12/2026", "%d/%m/%Y")"#),
            ["2026-12-31"; 4]
        );
        let t = r#"parse_timestamp("2026-07-01 09:30", "%Y-%m-%d %H:%M", "Europe/Paris")"#;
        assert_eq!(values(t), ["2026-07-01T07:30:00Z"; 4]);
        assert_eq!(
            values(&format!("hour({t}) * 100 + minute({t})")),
            ["730"; 4]
        );
        assert_eq!(
            values(&format!(r#"format({t}, "%H:%M %Z", "America/New_York")"#)),
            ["03:30 EDT"; 4]
        );
        assert_eq!(
            values(&format!(
                r#"local_date(add_days({t}, 0), "Pacific/Auckland")"#
            )),
            ["2026-07-01"; 4]
        );
        assert_eq!(
            values(&format!(
                r#"diff_hours({t}, to_timestamp("2026-07-01T00:00:00Z"))"#
            )),
            ["7"; 4]
        );
        assert_eq!(
            values(&format!(r#"date_trunc({t}, "day")"#)),
            ["2026-07-01T00:00:00Z"; 4]
        );
        assert_eq!(kind("today()"), DataType::Date32);
        assert_eq!(values(r#"today() >= to_date("2026-01-01")"#), ["true"; 4]);
        assert_eq!(
            values("diff_days(to_date(now()), today()) = 0"),
            ["true"; 4]
        );
        let (_, cx) = run_one(&formula(&[("x", r#"parse_date(name, "%Y")"#)]), input());
        assert_eq!(cx.notes["not_converted"], 3);
    }

    #[test]
    fn later_fields_use_earlier_ones_and_a_field_is_replaced_in_place() {
        let (out, _) = run_one(
            &formula(&[
                ("total", "q * price"),
                ("q", "to_text(q)"),
                ("size", "if(total > 10, \"big\", \"small\")"),
            ]),
            input(),
        );
        assert_eq!(
            names(&out),
            [
                "q",
                "price",
                "name",
                "won",
                "Close Date",
                "money",
                "total",
                "size"
            ]
        );
        assert_eq!(
            out.column_by_name("q").unwrap().data_type(),
            &DataType::Utf8
        );
        assert_eq!(
            texts(&out, "size"),
            [
                Some("big".into()),
                Some("small".into()),
                Some("small".into()),
                Some("small".into())
            ]
        );
    }

    #[test]
    fn type_mistakes_are_found_at_their_place() {
        assert_eq!(
            mistake("name + 1"),
            "line 1, column 1: `+` computes with numbers, and this is text; join text with `&` or concat(…)"
        );
        assert_eq!(
            mistake("round(q * prise, 2)"),
            "line 1, column 11: there is no field `prise` (did you mean `price`?)"
        );
        assert_eq!(
            mistake("Close Date"),
            "line 1, column 1: a field name with spaces goes in backquotes: `Close Date`"
        );
        assert_eq!(
            mistake("if(q, 1, 2)"),
            "line 1, column 4: the condition of if takes true/false, not a whole number"
        );
        assert_eq!(
            mistake("if(won, 1, \"x\")"),
            "line 1, column 1: if gives a whole number or text: both must be of one kind"
        );
        assert_eq!(
            mistake("uper(name)"),
            "line 1, column 1: there is no function uper(…) (did you mean upper?)"
        );
        assert_eq!(
            mistake("round(price, q)"),
            "line 1, column 14: round takes a whole number written in the formula here"
        );
        assert_eq!(
            mistake("upper(q)"),
            "line 1, column 7: upper takes text here, not a whole number"
        );
        assert_eq!(
            mistake("substring(name)"),
            "line 1, column 1: substring is called as substring(text, start, length)"
        );
        assert_eq!(
            mistake("`Close Date` > \"next week\""),
            "line 1, column 16: \"next week\" is not a date: write it as \"2026-12-31\""
        );
        assert_eq!(
            mistake("won < \"x\""),
            "line 1, column 1: true/false cannot be compared with text"
        );
        assert_eq!(
            mistake("`Close Date` + 1"),
            "line 1, column 1: `+` computes with numbers, and this is a date; dates are moved with add_days(…) and compared with diff_days(…)"
        );
        assert_eq!(
            mistake("q *"),
            "line 1, column 4: the expression ends too soon"
        );
        assert_eq!(
            mistake(r#"regex_match(name, "(a")"#),
            "line 1, column 19: the pattern is not a regular expression: error: unclosed group"
        );
        assert_eq!(
            mistake(r#"regex_extract(name, "(a)", 2)"#),
            "line 1, column 28: the pattern has 1 group(s) in parentheses"
        );
        assert_eq!(
            mistake(r#"local_date(now(), "Mars/Base")"#),
            r#"line 1, column 19: `Mars/Base` is not a time zone: write one such as "Europe/Paris" or "UTC""#
        );
        assert_eq!(
            mistake(r#"date_trunc(`Close Date`, "decade")"#),
            r#"line 1, column 26: date_trunc cuts to "day", "week", "month", "quarter" or "year""#
        );
        assert!(
            mistake(r#"format(`Close Date`, "%H")"#)
                .starts_with("line 1, column 22: the format cannot be written")
        );
        assert_eq!(
            mistake("hour(`Close Date`)"),
            "line 1, column 6: hour takes a timestamp here, not a date"
        );
    }
}
