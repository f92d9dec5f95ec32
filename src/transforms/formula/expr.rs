//! Formulas checked against the fields they read, then evaluated over whole batches with
//! Arrow's kernels.
//!
//! Checking gives every value a type: `integer` (Int64), `number` (Float64), a decimal
//! (Decimal128), `text` (Utf8), `boolean`, `date` (Date32) or `timestamp` (microseconds,
//! UTC). Input fields of other widths are read as these. Null rules: an operator or a
//! function with a null argument gives null, except `is_null`, `coalesce`, `if` and `case`
//! (a null condition counts as false), and `&` and `concat`, which read null as empty text.
//! Dividing by zero gives null and is counted (`divide_by_zero`), as in Arithmetic; a
//! value that does not convert (`to_number("abc")`) gives null and is counted
//! (`not_converted`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, new_null_array,
};
use arrow::compute::kernels::{boolean, cmp, comparison, numeric, zip::zip};
use arrow::compute::{CastOptions, cast, cast_with_options, is_not_null, is_null, nullif};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::error::ArrowError;

use super::parse::{Ast, BinaryOp, Literal, Mistake, Span};

/// The timestamp type formulas compute in.
pub fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// How a field's type is read into a formula; `None` for types formulas do not take.
fn canonical(t: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match t {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => Int64,
        UInt64 | Float16 | Float32 | Float64 => Float64,
        Utf8 | LargeUtf8 | Utf8View => Utf8,
        Boolean => Boolean,
        Date32 | Date64 => Date32,
        Timestamp(_, _) => timestamp(),
        Decimal128(p, s) => Decimal128(*p, *s),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Null => Null,
        _ => return None,
    })
}

/// A type in the words the docs use.
pub fn type_words(t: &DataType) -> String {
    match t {
        DataType::Int64 => "a whole number".into(),
        DataType::Float64 => "a number".into(),
        DataType::Decimal128(..) => "a decimal".into(),
        DataType::Utf8 => "text".into(),
        DataType::Boolean => "true/false".into(),
        DataType::Date32 => "a date".into(),
        DataType::Timestamp(..) => "a timestamp".into(),
        DataType::Null => "null".into(),
        other => crate::types::describe(other),
    }
}

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int64 | DataType::Float64 | DataType::Decimal128(..) | DataType::Null
    )
}

/// A checked formula: every part typed.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A column of the working batch, read as `DataType`.
    Column(usize, DataType),
    Literal(Literal, DataType),
    Negate(Box<Expr>),
    Not(Box<Expr>),
    /// The operands are converted to `operands` first; the result is `result`.
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
        operands: DataType,
        result: DataType,
    },
    /// A call; `regex` holds a pattern written in the formula, compiled once.
    Call(Function, Vec<Expr>, DataType, Option<regex::Regex>),
}

impl Expr {
    pub fn data_type(&self) -> DataType {
        match self {
            Expr::Column(_, t) | Expr::Literal(_, t) | Expr::Call(_, _, t, _) => t.clone(),
            Expr::Negate(e) => e.data_type(),
            Expr::Not(_) => DataType::Boolean,
            Expr::Binary { result, .. } => result.clone(),
        }
    }
}

/// The functions formulas know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    If,
    Case,
    Coalesce,
    IsNull,
    Upper,
    Lower,
    Trim,
    Length,
    Concat,
    Substring,
    Replace,
    StartsWith,
    EndsWith,
    Contains,
    Round,
    Floor,
    Ceil,
    Abs,
    ToText,
    ToNumber,
    ToInteger,
    ToDate,
    ToTimestamp,
    SplitPart,
    PadLeft,
    PadRight,
    RegexMatch,
    RegexExtract,
    RegexReplace,
    Today,
    Now,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Weekday,
    AddDays,
    AddMonths,
    DiffDays,
    DiffHours,
    DateTrunc,
    ParseDate,
    ParseTimestamp,
    Format,
    LocalDate,
}

/// Every function by its name, with how it is called, for messages and the docs.
pub const FUNCTIONS: &[(&str, Function, &str)] = &[
    ("if", Function::If, "if(condition, then, else)"),
    ("case", Function::Case, "case(condition, value, …, else)"),
    ("coalesce", Function::Coalesce, "coalesce(value, value, …)"),
    ("is_null", Function::IsNull, "is_null(value)"),
    ("upper", Function::Upper, "upper(text)"),
    ("lower", Function::Lower, "lower(text)"),
    ("trim", Function::Trim, "trim(text)"),
    ("length", Function::Length, "length(text)"),
    ("concat", Function::Concat, "concat(value, value, …)"),
    (
        "substring",
        Function::Substring,
        "substring(text, start, length)",
    ),
    ("replace", Function::Replace, "replace(text, find, with)"),
    (
        "starts_with",
        Function::StartsWith,
        "starts_with(text, prefix)",
    ),
    ("ends_with", Function::EndsWith, "ends_with(text, suffix)"),
    ("contains", Function::Contains, "contains(text, part)"),
    ("round", Function::Round, "round(number, places)"),
    ("floor", Function::Floor, "floor(number, places)"),
    ("ceil", Function::Ceil, "ceil(number, places)"),
    ("abs", Function::Abs, "abs(number)"),
    ("to_text", Function::ToText, "to_text(value)"),
    ("to_number", Function::ToNumber, "to_number(value)"),
    ("to_integer", Function::ToInteger, "to_integer(value)"),
    ("to_date", Function::ToDate, "to_date(value)"),
    ("to_timestamp", Function::ToTimestamp, "to_timestamp(value)"),
    (
        "split_part",
        Function::SplitPart,
        "split_part(text, separator, number)",
    ),
    ("lpad", Function::PadLeft, "lpad(text, length, fill)"),
    ("rpad", Function::PadRight, "rpad(text, length, fill)"),
    (
        "regex_match",
        Function::RegexMatch,
        "regex_match(text, \"pattern\")",
    ),
    (
        "regex_extract",
        Function::RegexExtract,
        "regex_extract(text, \"pattern\", group)",
    ),
    (
        "regex_replace",
        Function::RegexReplace,
        "regex_replace(text, \"pattern\", with)",
    ),
    ("today", Function::Today, "today()"),
    ("now", Function::Now, "now()"),
    ("year", Function::Year, "year(date)"),
    ("month", Function::Month, "month(date)"),
    ("day", Function::Day, "day(date)"),
    ("hour", Function::Hour, "hour(timestamp)"),
    ("minute", Function::Minute, "minute(timestamp)"),
    ("weekday", Function::Weekday, "weekday(date)"),
    ("add_days", Function::AddDays, "add_days(date, days)"),
    (
        "add_months",
        Function::AddMonths,
        "add_months(date, months)",
    ),
    ("diff_days", Function::DiffDays, "diff_days(later, earlier)"),
    (
        "diff_hours",
        Function::DiffHours,
        "diff_hours(later, earlier)",
    ),
    (
        "date_trunc",
        Function::DateTrunc,
        "date_trunc(date, \"day\" | \"week\" | \"month\" | \"quarter\" | \"year\")",
    ),
    (
        "parse_date",
        Function::ParseDate,
        "parse_date(text, \"%d/%m/%Y\")",
    ),
    (
        "parse_timestamp",
        Function::ParseTimestamp,
        "parse_timestamp(text, \"%d/%m/%Y %H:%M\", time_zone)",
    ),
    (
        "format",
        Function::Format,
        "format(date, \"%Y-%m\", time_zone)",
    ),
    (
        "local_date",
        Function::LocalDate,
        "local_date(timestamp, \"Europe/Paris\")",
    ),
];

/// Checks `ast` against the fields of `schema`.
pub fn check(ast: &Ast, schema: &Schema) -> Result<Expr, Mistake> {
    Ok(match ast {
        Ast::Literal(value, _) => {
            let t = match value {
                Literal::Integer(_) => DataType::Int64,
                Literal::Number(_) => DataType::Float64,
                Literal::Text(_) => DataType::Utf8,
                Literal::Boolean(_) => DataType::Boolean,
                Literal::Null => DataType::Null,
            };
            Expr::Literal(value.clone(), t)
        }
        Ast::Field(name, span) => {
            let index = schema.index_of(name).map_err(|_| {
                let close = schema
                    .fields()
                    .iter()
                    .map(|f| f.name())
                    .filter(|n| {
                        strsim::jaro_winkler(&n.to_lowercase(), &name.to_lowercase()) > 0.85
                    })
                    .max_by(|a, b| {
                        strsim::jaro_winkler(a, name).total_cmp(&strsim::jaro_winkler(b, name))
                    });
                let hint = match close {
                    Some(n) => format!(" (did you mean `{n}`?)"),
                    None if FUNCTIONS.iter().any(|(f, ..)| f.eq_ignore_ascii_case(name)) => {
                        format!(" (`{name}` is a function: write {name}(…))")
                    }
                    None => "; a name with spaces or symbols goes in backquotes".to_string(),
                };
                Mistake::new(*span, format!("there is no field `{name}`{hint}"))
            })?;
            let field = schema.field(index);
            let t = canonical(field.data_type()).ok_or_else(|| {
                Mistake::new(
                    *span,
                    format!(
                        "`{name}` is {}: formulas compute with text, numbers, dates and true/false",
                        crate::types::describe(field.data_type())
                    ),
                )
            })?;
            Expr::Column(index, t)
        }
        Ast::Negate(inner, span) => {
            let inner = check(inner, schema)?;
            if !is_numeric(&inner.data_type()) {
                return Err(Mistake::new(
                    *span,
                    format!(
                        "only a number can be negative, not {}",
                        type_words(&inner.data_type())
                    ),
                ));
            }
            Expr::Negate(Box::new(inner))
        }
        Ast::Not(inner, span) => {
            let inner = check(inner, schema)?;
            expect_boolean(&inner, *span, "`not`")?;
            Expr::Not(Box::new(inner))
        }
        Ast::Binary(op, l, r, span) => binary(
            *op,
            check(l, schema)?,
            check(r, schema)?,
            *span,
            l.span(),
            r.span(),
        )?,
        Ast::Call(name, args, span) => call(name, args, schema, *span)?,
    })
}

fn expect_boolean(e: &Expr, span: Span, what: &str) -> Result<(), Mistake> {
    match e.data_type() {
        DataType::Boolean | DataType::Null => Ok(()),
        t => Err(Mistake::new(
            span,
            format!("{what} takes true/false, not {}", type_words(&t)),
        )),
    }
}

/// The type two numeric operands are computed in.
fn numeric_common(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        (Null, t) | (t, Null) => t.clone(),
        (Int64, Int64) => Int64,
        (Decimal128(_, s1), Decimal128(_, s2)) => Decimal128(38, *s1.max(s2)),
        (Decimal128(_, s), Int64) | (Int64, Decimal128(_, s)) => Decimal128(38, *s),
        _ => Float64,
    }
}

/// The one type values of several branches (if, case, coalesce) take.
fn common(types: &[DataType]) -> Option<DataType> {
    let mut out = DataType::Null;
    for t in types {
        out = match (&out, t) {
            (DataType::Null, t) => t.clone(),
            (o, DataType::Null) => o.clone(),
            (o, t) if o == t => o.clone(),
            (o, t) if is_numeric(o) && is_numeric(t) => numeric_common(o, t),
            (DataType::Date32, DataType::Timestamp(..))
            | (DataType::Timestamp(..), DataType::Date32) => timestamp(),
            _ => return None,
        };
    }
    Some(out)
}

fn binary(
    op: BinaryOp,
    left: Expr,
    right: Expr,
    span: Span,
    lspan: Span,
    rspan: Span,
) -> Result<Expr, Mistake> {
    use BinaryOp::*;
    let (lt, rt) = (left.data_type(), right.data_type());
    let (operands, result) = match op {
        Add | Subtract | Multiply | Divide | Remainder => {
            if !is_numeric(&lt) || !is_numeric(&rt) {
                let (bad, at) = if is_numeric(&lt) {
                    (&rt, rspan)
                } else {
                    (&lt, lspan)
                };
                let hint = match (op, bad) {
                    (Add, DataType::Utf8) => "; join text with `&` or concat(…)",
                    (Add | Subtract, DataType::Date32 | DataType::Timestamp(..)) => {
                        "; dates are moved with add_days(…) and compared with diff_days(…)"
                    }
                    _ => "",
                };
                return Err(Mistake::new(
                    at,
                    format!(
                        "`{}` computes with numbers, and this is {}{hint}",
                        op.symbol(),
                        type_words(bad)
                    ),
                ));
            }
            let operands = match (op, numeric_common(&lt, &rt)) {
                // Products and quotients of decimals are computed as numbers.
                (Multiply | Divide | Remainder, DataType::Decimal128(..)) => DataType::Float64,
                (Divide, DataType::Int64) => DataType::Float64,
                (_, t) => t,
            };
            (operands.clone(), operands)
        }
        Concat => (DataType::Utf8, DataType::Utf8),
        Equal | NotEqual | Less | LessOrEqual | Greater | GreaterOrEqual => {
            let operands = match (&lt, &rt) {
                (a, b) if is_numeric(a) && is_numeric(b) => numeric_common(a, b),
                (a, b) if a == b => a.clone(),
                (DataType::Null, t) | (t, DataType::Null) => t.clone(),
                // A date or a timestamp against text written in the formula: the text is
                // read as one.
                (t @ (DataType::Date32 | DataType::Timestamp(..)), DataType::Utf8)
                    if matches!(right, Expr::Literal(..)) =>
                {
                    literal_as(&right, t, rspan)?;
                    t.clone()
                }
                (DataType::Utf8, t @ (DataType::Date32 | DataType::Timestamp(..)))
                    if matches!(left, Expr::Literal(..)) =>
                {
                    literal_as(&left, t, lspan)?;
                    t.clone()
                }
                (DataType::Date32, DataType::Timestamp(..))
                | (DataType::Timestamp(..), DataType::Date32) => timestamp(),
                (a, b) => {
                    return Err(Mistake::new(
                        span,
                        format!(
                            "{} cannot be compared with {}",
                            type_words(a),
                            type_words(b)
                        ),
                    ));
                }
            };
            (operands, DataType::Boolean)
        }
        And | Or => {
            expect_boolean(&left, lspan, &format!("`{}`", op.symbol()))?;
            expect_boolean(&right, rspan, &format!("`{}`", op.symbol()))?;
            (DataType::Boolean, DataType::Boolean)
        }
    };
    Ok(Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
        operands,
        result,
    })
}

/// Checks that text written in the formula reads as `t`.
fn literal_as(e: &Expr, t: &DataType, span: Span) -> Result<(), Mistake> {
    if let Expr::Literal(Literal::Text(text), _) = e {
        let array: ArrayRef = Arc::new(StringArray::from(vec![text.as_str()]));
        let strict = CastOptions {
            safe: false,
            ..Default::default()
        };
        if cast_with_options(&array, t, &strict).is_err() {
            let example = match t {
                DataType::Date32 => "2026-12-31",
                _ => "2026-12-31T09:30:00Z",
            };
            return Err(Mistake::new(
                span,
                format!(
                    "\"{text}\" is not {}: write it as \"{example}\"",
                    type_words(t)
                ),
            ));
        }
    }
    Ok(())
}

fn call(name: &str, args: &[Ast], schema: &Schema, span: Span) -> Result<Expr, Mistake> {
    use Function::*;
    let Some(&(_, function, usage)) = FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
        let close = FUNCTIONS
            .iter()
            .map(|(n, ..)| *n)
            .find(|n| strsim::jaro_winkler(n, name) > 0.85);
        let hint = match close {
            Some(n) => format!(" (did you mean {n}?)"),
            None => "; the README's formula reference lists them".into(),
        };
        return Err(Mistake::new(
            span,
            format!("there is no function {name}(…){hint}"),
        ));
    };
    let checked: Vec<Expr> = args
        .iter()
        .map(|a| check(a, schema))
        .collect::<Result<_, _>>()?;
    let types: Vec<DataType> = checked.iter().map(Expr::data_type).collect();
    let count = |range: std::ops::RangeInclusive<usize>| {
        if range.contains(&args.len()) {
            Ok(())
        } else {
            Err(Mistake::new(span, format!("{name} is called as {usage}")))
        }
    };
    let arg_is = |i: usize, ok: fn(&DataType) -> bool, what: &str| {
        if ok(&types[i]) || types[i] == DataType::Null {
            Ok(())
        } else {
            Err(Mistake::new(
                args[i].span(),
                format!("{name} takes {what} here, not {}", type_words(&types[i])),
            ))
        }
    };
    let text = |t: &DataType| *t == DataType::Utf8;
    let dated = |t: &DataType| matches!(t, DataType::Date32 | DataType::Timestamp(..));
    let text_literal = |i: usize| match &args[i] {
        Ast::Literal(Literal::Text(t), _) => Ok(t.clone()),
        other => Err(Mistake::new(
            other.span(),
            format!("{name} takes text written in the formula here, in double quotes"),
        )),
    };
    let zone_literal = |i: usize| {
        let zone = text_literal(i)?;
        jiff::tz::TimeZone::get(&zone).map(|_| ()).map_err(|_| {
            Mistake::new(
                args[i].span(),
                format!(
                    "`{zone}` is not a time zone: write one such as \"Europe/Paris\" or \"UTC\""
                ),
            )
        })
    };
    let mut pattern = None;
    let whole_literal = |i: usize| match &args[i] {
        Ast::Literal(Literal::Integer(_), _) => Ok(()),
        other => Err(Mistake::new(
            other.span(),
            format!("{name} takes a whole number written in the formula here"),
        )),
    };
    let result = match function {
        If => {
            count(3..=3)?;
            expect_boolean(&checked[0], args[0].span(), "the condition of if")?;
            common(&types[1..]).ok_or_else(|| {
                Mistake::new(
                    span,
                    format!(
                        "if gives {} or {}: both must be of one kind",
                        type_words(&types[1]),
                        type_words(&types[2])
                    ),
                )
            })?
        }
        Case => {
            if args.len() < 2 {
                return Err(Mistake::new(span, format!("case is called as {usage}")));
            }
            let mut values = Vec::new();
            for (i, e) in checked.iter().enumerate() {
                if i % 2 == 0 && i + 1 < checked.len() {
                    expect_boolean(e, args[i].span(), "a condition of case")?;
                } else {
                    values.push(e.data_type());
                }
            }
            common(&values)
                .ok_or_else(|| Mistake::new(span, "the values of case must be of one kind"))?
        }
        Coalesce => {
            count(1..=64)?;
            common(&types)
                .ok_or_else(|| Mistake::new(span, "the values of coalesce must be of one kind"))?
        }
        IsNull => {
            count(1..=1)?;
            DataType::Boolean
        }
        Upper | Lower | Trim => {
            count(1..=1)?;
            arg_is(0, text, "text")?;
            DataType::Utf8
        }
        Length => {
            count(1..=1)?;
            arg_is(0, text, "text")?;
            DataType::Int64
        }
        Concat => {
            count(1..=64)?;
            DataType::Utf8
        }
        Substring => {
            count(2..=3)?;
            arg_is(0, text, "text")?;
            for i in 1..args.len() {
                whole_literal(i)?;
            }
            DataType::Utf8
        }
        Replace => {
            count(3..=3)?;
            for i in 0..3 {
                arg_is(i, text, "text")?;
            }
            DataType::Utf8
        }
        StartsWith | EndsWith | Contains => {
            count(2..=2)?;
            arg_is(0, text, "text")?;
            arg_is(1, text, "text")?;
            DataType::Boolean
        }
        Round | Floor | Ceil => {
            count(1..=2)?;
            arg_is(0, is_numeric, "a number")?;
            if args.len() == 2 {
                whole_literal(1)?;
            }
            match (&types[0], places(args)) {
                (DataType::Decimal128(..), p) => DataType::Decimal128(38, p.clamp(0, 38) as i8),
                (DataType::Null, _) => DataType::Float64,
                (t, _) => t.clone(),
            }
        }
        Abs => {
            count(1..=1)?;
            arg_is(0, is_numeric, "a number")?;
            if types[0] == DataType::Null {
                DataType::Float64
            } else {
                types[0].clone()
            }
        }
        ToText => {
            count(1..=1)?;
            DataType::Utf8
        }
        ToNumber => {
            count(1..=1)?;
            DataType::Float64
        }
        ToInteger => {
            count(1..=1)?;
            DataType::Int64
        }
        ToDate => {
            count(1..=1)?;
            DataType::Date32
        }
        ToTimestamp => {
            count(1..=1)?;
            timestamp()
        }
        SplitPart => {
            count(3..=3)?;
            arg_is(0, text, "text")?;
            arg_is(1, text, "text")?;
            arg_is(2, |t| *t == DataType::Int64, "a whole number")?;
            DataType::Utf8
        }
        PadLeft | PadRight => {
            count(2..=3)?;
            arg_is(0, text, "text")?;
            arg_is(1, |t| *t == DataType::Int64, "a whole number")?;
            if args.len() == 3 {
                let fill = text_literal(2)?;
                if fill.chars().count() != 1 {
                    return Err(Mistake::new(
                        args[2].span(),
                        format!("{name} fills with one character"),
                    ));
                }
            }
            DataType::Utf8
        }
        RegexMatch | RegexExtract | RegexReplace => {
            let arity = match function {
                RegexMatch => 2..=2,
                RegexExtract => 2..=3,
                _ => 3..=3,
            };
            count(arity)?;
            arg_is(0, text, "text")?;
            let source = text_literal(1)?;
            let compiled = regex::Regex::new(&source).map_err(|e| {
                let why = match e {
                    regex::Error::Syntax(s) => s.lines().last().unwrap_or("").trim().to_string(),
                    other => other.to_string(),
                };
                Mistake::new(
                    args[1].span(),
                    format!("the pattern is not a regular expression: {why}"),
                )
            })?;
            if function == RegexExtract && args.len() == 3 {
                whole_literal(2)?;
                let group = places(&args[1..]);
                if group < 0 || group as usize >= compiled.captures_len() {
                    return Err(Mistake::new(
                        args[2].span(),
                        format!(
                            "the pattern has {} group(s) in parentheses",
                            compiled.captures_len() - 1
                        ),
                    ));
                }
            }
            if function == RegexReplace {
                arg_is(2, text, "text")?;
            }
            pattern = Some(compiled);
            match function {
                RegexMatch => DataType::Boolean,
                _ => DataType::Utf8,
            }
        }
        Today | Now => {
            count(0..=0)?;
            match function {
                Today => DataType::Date32,
                _ => timestamp(),
            }
        }
        Year | Month | Day | Weekday => {
            count(1..=1)?;
            arg_is(0, dated, "a date or a timestamp")?;
            DataType::Int64
        }
        Hour | Minute => {
            count(1..=1)?;
            arg_is(0, |t| matches!(t, DataType::Timestamp(..)), "a timestamp")?;
            DataType::Int64
        }
        AddDays | AddMonths => {
            count(2..=2)?;
            arg_is(0, dated, "a date or a timestamp")?;
            arg_is(1, |t| *t == DataType::Int64, "a whole number")?;
            if types[0] == DataType::Null {
                DataType::Date32
            } else {
                types[0].clone()
            }
        }
        DiffDays | DiffHours => {
            count(2..=2)?;
            arg_is(0, dated, "a date or a timestamp")?;
            arg_is(1, dated, "a date or a timestamp")?;
            DataType::Int64
        }
        DateTrunc => {
            count(2..=2)?;
            arg_is(0, dated, "a date or a timestamp")?;
            let unit = text_literal(1)?;
            if !["day", "week", "month", "quarter", "year"].contains(&unit.as_str()) {
                return Err(Mistake::new(
                    args[1].span(),
                    "date_trunc cuts to \"day\", \"week\", \"month\", \"quarter\" or \"year\"",
                ));
            }
            if types[0] == DataType::Null {
                DataType::Date32
            } else {
                types[0].clone()
            }
        }
        ParseDate | ParseTimestamp => {
            count(if function == ParseDate { 2..=2 } else { 2..=3 })?;
            arg_is(0, text, "text")?;
            text_literal(1)?;
            if args.len() == 3 {
                zone_literal(2)?;
            }
            match function {
                ParseDate => DataType::Date32,
                _ => timestamp(),
            }
        }
        Format => {
            count(2..=3)?;
            arg_is(0, dated, "a date or a timestamp")?;
            let format = text_literal(1)?;
            super::dates::check_format(&format, types[0] == DataType::Date32).map_err(|e| {
                Mistake::new(args[1].span(), format!("the format cannot be written: {e}"))
            })?;
            if args.len() == 3 {
                zone_literal(2)?;
            }
            DataType::Utf8
        }
        LocalDate => {
            count(2..=2)?;
            arg_is(0, |t| matches!(t, DataType::Timestamp(..)), "a timestamp")?;
            zone_literal(1)?;
            DataType::Date32
        }
    };
    Ok(Expr::Call(function, checked, result, pattern))
}

/// The places of round/floor/ceil: the second argument, 0 when left out.
fn places(args: &[Ast]) -> i64 {
    match args.get(1) {
        Some(Ast::Literal(Literal::Integer(n), _)) => *n,
        _ => 0,
    }
}

/// Counts of what evaluating met, for the node's figures.
#[derive(Debug, Default)]
pub struct Counts {
    pub divide_by_zero: u64,
    pub not_converted: u64,
}

/// Evaluates `expr` over `columns` (`rows` long).
pub fn eval(
    expr: &Expr,
    columns: &[ArrayRef],
    rows: usize,
    counts: &mut Counts,
) -> Result<ArrayRef, ArrowError> {
    Ok(match expr {
        Expr::Column(i, t) => as_type(&columns[*i], t)?,
        Expr::Literal(value, _) => literal(value, rows),
        Expr::Negate(inner) => {
            let v = eval(inner, columns, rows, counts)?;
            numeric::neg(&v)?
        }
        Expr::Not(inner) => {
            let v = eval(inner, columns, rows, counts)?;
            Arc::new(boolean::not(as_type(&v, &DataType::Boolean)?.as_boolean())?)
        }
        Expr::Binary {
            op,
            left,
            right,
            operands,
            ..
        } => {
            let l = as_type(&eval(left, columns, rows, counts)?, operands)?;
            let r = as_type(&eval(right, columns, rows, counts)?, operands)?;
            binary_eval(*op, &l, &r, operands, counts)?
        }
        Expr::Call(function, args, result, pattern) => call_eval(
            *function,
            args,
            result,
            pattern.as_ref(),
            columns,
            rows,
            counts,
        )?,
    })
}

fn literal(value: &Literal, rows: usize) -> ArrayRef {
    match value {
        Literal::Integer(n) => Arc::new(Int64Array::from_value(*n, rows)),
        Literal::Number(n) => Arc::new(Float64Array::from_value(*n, rows)),
        Literal::Text(t) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(t, rows))),
        Literal::Boolean(b) => Arc::new(BooleanArray::from(vec![*b; rows])),
        Literal::Null => new_null_array(&DataType::Null, rows),
    }
}

/// `array` as `t`; text written as a date or a timestamp is read as one.
fn as_type(array: &ArrayRef, t: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == t {
        Ok(array.clone())
    } else {
        cast(array, t)
    }
}

fn binary_eval(
    op: BinaryOp,
    l: &ArrayRef,
    r: &ArrayRef,
    operands: &DataType,
    counts: &mut Counts,
) -> Result<ArrayRef, ArrowError> {
    use BinaryOp::*;
    Ok(match op {
        Add => numeric::add(l, r)?,
        Subtract => numeric::sub(l, r)?,
        Multiply => numeric::mul(l, r)?,
        Divide | Remainder => {
            // Zero divisors become null first: integer kernels refuse them, float ones
            // give infinities.
            let zero = cast(&(Arc::new(Int64Array::from(vec![0])) as ArrayRef), operands)?;
            let by_zero = cmp::eq(r, &arrow::array::Scalar::new(zero))?;
            counts.divide_by_zero += by_zero.true_count() as u64;
            let r = nullif(r, &by_zero)?;
            match op {
                Divide => numeric::div(l, &r)?,
                _ => numeric::rem(l, &r)?,
            }
        }
        Concat => {
            let empty = |a: &ArrayRef| -> Result<StringArray, ArrowError> {
                Ok(a.as_string::<i32>()
                    .iter()
                    .map(|v| Some(v.unwrap_or("")))
                    .collect())
            };
            Arc::new(
                arrow::compute::kernels::concat_elements::concat_elements_utf8(
                    &empty(l)?,
                    &empty(r)?,
                )?,
            )
        }
        Equal => Arc::new(cmp::eq(l, r)?),
        NotEqual => Arc::new(cmp::neq(l, r)?),
        Less => Arc::new(cmp::lt(l, r)?),
        LessOrEqual => Arc::new(cmp::lt_eq(l, r)?),
        Greater => Arc::new(cmp::gt(l, r)?),
        GreaterOrEqual => Arc::new(cmp::gt_eq(l, r)?),
        And => Arc::new(boolean::and_kleene(l.as_boolean(), r.as_boolean())?),
        Or => Arc::new(boolean::or_kleene(l.as_boolean(), r.as_boolean())?),
    })
}

/// A condition where null counts as false.
fn truth(array: &ArrayRef) -> Result<BooleanArray, ArrowError> {
    let b = as_type(array, &DataType::Boolean)?;
    boolean::and(b.as_boolean(), &is_not_null(&b)?)
}

fn per_text(a: &ArrayRef, f: impl Fn(&str) -> String) -> ArrayRef {
    Arc::new(
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(&f))
            .collect::<StringArray>(),
    )
}

fn call_eval(
    function: Function,
    args: &[Expr],
    result: &DataType,
    pattern: Option<&regex::Regex>,
    columns: &[ArrayRef],
    rows: usize,
    counts: &mut Counts,
) -> Result<ArrayRef, ArrowError> {
    use Function::*;
    let value = |i: usize, counts: &mut Counts| eval(&args[i], columns, rows, counts);
    Ok(match function {
        If => {
            let condition = truth(&value(0, counts)?)?;
            let then = as_type(&value(1, counts)?, result)?;
            let otherwise = as_type(&value(2, counts)?, result)?;
            zip(&condition, &then, &otherwise)?
        }
        Case => {
            let mut out = if args.len() % 2 == 1 {
                as_type(&value(args.len() - 1, counts)?, result)?
            } else {
                new_null_array(result, rows)
            };
            // From the last pair to the first, so that the first true condition wins.
            for pair in (0..args.len() / 2).rev() {
                let condition = truth(&value(2 * pair, counts)?)?;
                let then = as_type(&value(2 * pair + 1, counts)?, result)?;
                out = zip(&condition, &then, &out)?;
            }
            out
        }
        Coalesce => {
            let mut out = as_type(&value(args.len() - 1, counts)?, result)?;
            for i in (0..args.len() - 1).rev() {
                let v = as_type(&value(i, counts)?, result)?;
                out = zip(&is_not_null(&v)?, &v, &out)?;
            }
            out
        }
        IsNull => Arc::new(is_null(&value(0, counts)?)?),
        Upper => per_text(
            &as_type(&value(0, counts)?, &DataType::Utf8)?,
            str::to_uppercase,
        ),
        Lower => per_text(
            &as_type(&value(0, counts)?, &DataType::Utf8)?,
            str::to_lowercase,
        ),
        Trim => per_text(&as_type(&value(0, counts)?, &DataType::Utf8)?, |s| {
            s.trim().to_string()
        }),
        Length => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            Arc::new(
                v.as_string::<i32>()
                    .iter()
                    .map(|s| s.map(|s| s.chars().count() as i64))
                    .collect::<Int64Array>(),
            )
        }
        Concat => {
            let mut out: Vec<String> = vec![String::new(); rows];
            for i in 0..args.len() {
                let v = as_type(&value(i, counts)?, &DataType::Utf8)?;
                for (row, s) in v.as_string::<i32>().iter().enumerate() {
                    out[row].push_str(s.unwrap_or(""));
                }
            }
            Arc::new(StringArray::from(out))
        }
        Substring => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let int = |e: &Expr| match e {
                Expr::Literal(Literal::Integer(n), _) => *n,
                _ => 0,
            };
            // Counted from 1, as a spreadsheet does; 0 or less is the start.
            let start = (int(&args[1]) - 1).max(0);
            let length = args.get(2).map(|e| int(e).max(0) as u64);
            Arc::new(arrow::compute::kernels::substring::substring_by_char(
                v.as_string::<i32>(),
                start,
                length,
            )?)
        }
        Replace => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let find = as_type(&value(1, counts)?, &DataType::Utf8)?;
            let with = as_type(&value(2, counts)?, &DataType::Utf8)?;
            let (v, find, with) = (
                v.as_string::<i32>(),
                find.as_string::<i32>(),
                with.as_string::<i32>(),
            );
            Arc::new(
                (0..rows)
                    .map(
                        |i| match (v.is_valid(i), find.is_valid(i), with.is_valid(i)) {
                            (true, true, true) if find.value(i).is_empty() => {
                                Some(v.value(i).to_string())
                            }
                            (true, true, true) => {
                                Some(v.value(i).replace(find.value(i), with.value(i)))
                            }
                            _ => None,
                        },
                    )
                    .collect::<StringArray>(),
            )
        }
        StartsWith | EndsWith | Contains => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let part = as_type(&value(1, counts)?, &DataType::Utf8)?;
            Arc::new(match function {
                StartsWith => comparison::starts_with(&v, &part)?,
                EndsWith => comparison::ends_with(&v, &part)?,
                _ => comparison::contains(&v, &part)?,
            })
        }
        Round | Floor | Ceil => {
            let places = match args.get(1) {
                Some(Expr::Literal(Literal::Integer(n), _)) => *n,
                _ => 0,
            };
            let v = value(0, counts)?;
            match result {
                DataType::Decimal128(..) => {
                    let scale = places.clamp(0, 38) as i32;
                    let mode = |x: f64| match function {
                        Round => x.round(),
                        Floor => x.floor(),
                        _ => x.ceil(),
                    };
                    decimal_to_places(&v, scale, result, mode)?
                }
                DataType::Int64 if places >= 0 => as_type(&v, result)?,
                _ => {
                    let factor = 10f64.powi(places.clamp(-300, 300) as i32);
                    let v = as_type(&v, &DataType::Float64)?;
                    let f = |x: f64| {
                        let scaled = x * factor;
                        let done = match function {
                            Round => scaled.round(),
                            Floor => scaled.floor(),
                            _ => scaled.ceil(),
                        };
                        done / factor
                    };
                    let out: Float64Array = arrow::compute::kernels::arity::unary(
                        v.as_primitive::<arrow::datatypes::Float64Type>(),
                        f,
                    );
                    as_type(&(Arc::new(out) as ArrayRef), result)?
                }
            }
        }
        Abs => {
            let v = as_type(&value(0, counts)?, result)?;
            let zero = cast(&(Arc::new(Int64Array::from(vec![0])) as ArrayRef), result)?;
            let negative = cmp::lt(&v, &arrow::array::Scalar::new(zero))?;
            zip(&negative, &numeric::neg(&v)?, &v)?
        }
        ToText | ToNumber | ToInteger | ToDate | ToTimestamp => {
            let v = value(0, counts)?;
            let lenient = CastOptions {
                safe: true,
                ..Default::default()
            };
            // Text goes through a number, so that "12.0" is a whole number too.
            let source = match (function, v.data_type()) {
                (ToInteger, DataType::Utf8) => cast_with_options(&v, &DataType::Float64, &lenient)?,
                _ => v.clone(),
            };
            let converted = cast_with_options(&source, result, &lenient)?;
            counts.not_converted += lost(&v, &converted);
            converted
        }
        SplitPart => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let separator = as_type(&value(1, counts)?, &DataType::Utf8)?;
            let n = as_type(&value(2, counts)?, &DataType::Int64)?;
            let (v, separator) = (v.as_string::<i32>(), separator.as_string::<i32>());
            let n = n.as_primitive::<arrow::datatypes::Int64Type>();
            Arc::new(
                (0..rows)
                    .map(|i| {
                        if v.is_null(i) || separator.is_null(i) || n.is_null(i) || n.value(i) < 1 {
                            return None;
                        }
                        let k = n.value(i) as usize - 1;
                        match separator.value(i) {
                            "" => (k == 0).then(|| v.value(i).to_string()),
                            sep => v.value(i).split(sep).nth(k).map(String::from),
                        }
                    })
                    .collect::<StringArray>(),
            )
        }
        PadLeft | PadRight => {
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let width = as_type(&value(1, counts)?, &DataType::Int64)?;
            let fill = match args.get(2) {
                Some(Expr::Literal(Literal::Text(t), _)) => t.chars().next().unwrap_or(' '),
                _ => ' ',
            };
            let (v, width) = (
                v.as_string::<i32>(),
                width.as_primitive::<arrow::datatypes::Int64Type>(),
            );
            Arc::new(
                (0..rows)
                    .map(|i| {
                        if v.is_null(i) || width.is_null(i) {
                            return None;
                        }
                        let text = v.value(i);
                        let missing =
                            (width.value(i).max(0) as usize).saturating_sub(text.chars().count());
                        let padding: String = std::iter::repeat_n(fill, missing).collect();
                        Some(match function {
                            PadLeft => padding + text,
                            _ => text.to_string() + padding.as_str(),
                        })
                    })
                    .collect::<StringArray>(),
            )
        }
        RegexMatch | RegexExtract | RegexReplace => {
            let pattern = pattern.expect("checked with its pattern");
            let v = as_type(&value(0, counts)?, &DataType::Utf8)?;
            let v = v.as_string::<i32>();
            match function {
                RegexMatch => Arc::new(
                    v.iter()
                        .map(|s| s.map(|s| pattern.is_match(s)))
                        .collect::<BooleanArray>(),
                ),
                RegexExtract => {
                    let group = match args.get(2) {
                        Some(Expr::Literal(Literal::Integer(n), _)) => *n as usize,
                        _ => 0,
                    };
                    Arc::new(
                        v.iter()
                            .map(|s| {
                                let found = pattern.captures(s?)?;
                                found.get(group).map(|m| m.as_str().to_string())
                            })
                            .collect::<StringArray>(),
                    )
                }
                _ => {
                    let with = as_type(&value(2, counts)?, &DataType::Utf8)?;
                    let with = with.as_string::<i32>();
                    Arc::new(
                        (0..rows)
                            .map(|i| {
                                (v.is_valid(i) && with.is_valid(i)).then(|| {
                                    pattern.replace_all(v.value(i), with.value(i)).into_owned()
                                })
                            })
                            .collect::<StringArray>(),
                    )
                }
            }
        }
        Today => {
            let days = jiff::Timestamp::now().as_second().div_euclid(86_400) as i32;
            Arc::new(arrow::array::Date32Array::from_value(days, rows))
        }
        Now => {
            let now = jiff::Timestamp::now().as_microsecond();
            cast(
                &(Arc::new(arrow::array::TimestampMicrosecondArray::from_value(
                    now, rows,
                )) as ArrayRef),
                result,
            )?
        }
        Year | Month | Day | Hour | Minute | Weekday => {
            use arrow::compute::kernels::temporal::{DatePart, date_part};
            let part = match function {
                Year => DatePart::Year,
                Month => DatePart::Month,
                Day => DatePart::Day,
                Hour => DatePart::Hour,
                Minute => DatePart::Minute,
                _ => DatePart::DayOfWeekMonday0,
            };
            let v = value(0, counts)?;
            let parts = cast(&date_part(&v, part)?, &DataType::Int64)?;
            match function {
                // 1 for Monday … 7 for Sunday, as ISO 8601 counts.
                Weekday => numeric::add(
                    &parts,
                    &arrow::array::Scalar::new(Int64Array::from(vec![1])),
                )?,
                _ => parts,
            }
        }
        AddDays | AddMonths | DateTrunc | DiffDays | DiffHours | ParseDate | ParseTimestamp
        | Format | LocalDate => {
            let values: Vec<ArrayRef> = (0..args.len())
                .map(|i| value(i, counts))
                .collect::<Result<_, _>>()?;
            super::dates::eval(function, args, &values, result, counts)?
        }
    })
}

/// Values that were there before a conversion and are not after it.
pub(super) fn lost(before: &ArrayRef, after: &ArrayRef) -> u64 {
    (0..before.len())
        .filter(|&i| before.is_valid(i) && after.is_null(i))
        .count() as u64
}

/// A decimal rounded to `scale` places with `mode`, exactly for the decimals it is given.
fn decimal_to_places(
    v: &ArrayRef,
    scale: i32,
    result: &DataType,
    mode: impl Fn(f64) -> f64,
) -> Result<ArrayRef, ArrowError> {
    let DataType::Decimal128(_, from_scale) = v.data_type() else {
        return as_type(v, result);
    };
    let from_scale = i32::from(*from_scale);
    let v = v.as_primitive::<arrow::datatypes::Decimal128Type>();
    let out: arrow::array::Decimal128Array = if scale >= from_scale {
        let factor = 10i128.pow((scale - from_scale) as u32);
        v.iter()
            .map(|x| x.and_then(|x| x.checked_mul(factor)))
            .collect()
    } else {
        let factor = 10i128.pow((from_scale - scale) as u32);
        v.iter()
            .map(|x| {
                x.map(|x| {
                    let (q, r) = (x / factor, x % factor);
                    // Which way the remainder goes, decided on its fraction of one step.
                    let fraction = r as f64 / factor as f64;
                    q + mode(fraction) as i128
                })
            })
            .collect()
    };
    let DataType::Decimal128(p, s) = result else {
        unreachable!("a decimal result")
    };
    Ok(Arc::new(out.with_precision_and_scale(*p, *s)?))
}
