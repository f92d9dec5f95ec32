//! The formula functions on dates and timestamps that no Arrow kernel covers: calendar
//! arithmetic (months), truncation, differences, parsing and formatting with a pattern,
//! and time zones, by the calendar and zone database of `jiff`.
//!
//! Dates are days since 1970-01-01, timestamps microseconds since then in UTC; a date used
//! where a timestamp is meant is its midnight in UTC.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::expr::{Counts, Expr, Function, lost};
use super::parse::Literal;

const DAY_US: i64 = 86_400_000_000;

fn days_of(date: Date) -> Option<i32> {
    let second = date.to_zoned(TimeZone::UTC).ok()?.timestamp().as_second();
    i32::try_from(second.div_euclid(86_400)).ok()
}

/// Microseconds since 1970 of a date or a timestamp column.
fn micros(array: &ArrayRef) -> Result<Vec<Option<i64>>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|d| d.map(|d| i64::from(d) * DAY_US))
            .collect(),
        DataType::Timestamp(..) => {
            let us = cast(array, &super::expr::timestamp())?;
            us.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect()
        }
        DataType::Null => vec![None; array.len()],
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a date was expected, not {other}"
            )));
        }
    })
}

fn text_arg(args: &[Expr], i: usize) -> &str {
    match args.get(i) {
        Some(Expr::Literal(Literal::Text(t), _)) => t,
        _ => "",
    }
}

fn zone_arg(args: &[Expr], i: usize) -> TimeZone {
    match args.get(i) {
        Some(Expr::Literal(Literal::Text(t), _)) => TimeZone::get(t).unwrap_or(TimeZone::UTC),
        _ => TimeZone::UTC,
    }
}

/// Per row of a date or timestamp column, as a date or timestamp column again: `f` gets
/// the value as a time in UTC and gives the new one.
fn map_dated(
    v: &ArrayRef,
    result: &DataType,
    f: impl Fn(jiff::Zoned) -> Option<jiff::Zoned>,
) -> Result<ArrayRef, ArrowError> {
    let out: Vec<Option<i64>> = micros(v)?
        .into_iter()
        .map(|us| {
            let us = us?;
            let zoned = Timestamp::from_microsecond(us)
                .ok()?
                .to_zoned(TimeZone::UTC);
            Some(f(zoned)?.timestamp().as_microsecond())
        })
        .collect();
    from_micros(out, result)
}

fn from_micros(out: Vec<Option<i64>>, result: &DataType) -> Result<ArrayRef, ArrowError> {
    Ok(match result {
        DataType::Date32 => Arc::new(
            out.into_iter()
                .map(|us| us.and_then(|us| i32::try_from(us.div_euclid(DAY_US)).ok()))
                .collect::<Date32Array>(),
        ),
        _ => cast(
            &(Arc::new(arrow::array::TimestampMicrosecondArray::from(out)) as ArrayRef),
            result,
        )?,
    })
}

pub fn eval(
    function: Function,
    args: &[Expr],
    values: &[ArrayRef],
    result: &DataType,
    counts: &mut Counts,
) -> Result<ArrayRef, ArrowError> {
    use Function::*;
    let whole = |i: usize| -> Result<Vec<Option<i64>>, ArrowError> {
        Ok(cast(&values[i], &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .iter()
            .collect())
    };
    Ok(match function {
        AddDays => {
            let n = whole(1)?;
            let out = (micros(&values[0])?.into_iter().zip(n))
                .map(|(us, n)| us?.checked_add(n?.checked_mul(DAY_US)?))
                .collect();
            from_micros(out, result)?
        }
        AddMonths => {
            let n = whole(1)?;
            let mut months = n.into_iter();
            let v = &values[0];
            let out: Vec<Option<i64>> = micros(v)?
                .into_iter()
                .map(|us| {
                    let m = months.next().flatten();
                    let zoned = Timestamp::from_microsecond(us?)
                        .ok()?
                        .to_zoned(TimeZone::UTC);
                    // The 31st plus a month is the month's last day, as spreadsheets do.
                    let moved = zoned.checked_add(m?.months()).ok()?;
                    Some(moved.timestamp().as_microsecond())
                })
                .collect();
            from_micros(out, result)?
        }
        DiffDays | DiffHours => {
            let unit = if function == DiffDays {
                DAY_US
            } else {
                3_600_000_000
            };
            let out: Int64Array = (micros(&values[0])?.into_iter().zip(micros(&values[1])?))
                .map(|(a, b)| Some(a?.checked_sub(b?)? / unit))
                .collect();
            Arc::new(out)
        }
        DateTrunc => {
            let unit = text_arg(args, 1).to_string();
            map_dated(&values[0], result, |z| {
                let date = z.date();
                let first = match unit.as_str() {
                    "week" => date
                        .checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
                        .ok()?,
                    "month" => date.first_of_month(),
                    "quarter" => Date::new(date.year(), (date.month() - 1) / 3 * 3 + 1, 1).ok()?,
                    "year" => Date::new(date.year(), 1, 1).ok()?,
                    _ => date,
                };
                first.to_zoned(TimeZone::UTC).ok()
            })?
        }
        ParseDate | ParseTimestamp => {
            let format = text_arg(args, 1);
            let zone = zone_arg(args, 2);
            let text = cast(&values[0], &DataType::Utf8)?;
            let micros: Vec<Option<i64>> = (text.as_string::<i32>().iter())
                .map(|s| {
                    let s = s?.trim();
                    if function == ParseDate {
                        let date = Date::strptime(format, s).ok()?;
                        return Some(i64::from(days_of(date)?) * DAY_US);
                    }
                    // With an offset in the text it names the instant; without, the time
                    // is the zone's wall clock.
                    let instant = match Timestamp::strptime(format, s) {
                        Ok(t) => t,
                        Err(_) => jiff::civil::DateTime::strptime(format, s)
                            .ok()?
                            .to_zoned(zone.clone())
                            .ok()?
                            .timestamp(),
                    };
                    Some(instant.as_microsecond())
                })
                .collect();
            let out = from_micros(micros, result)?;
            counts.not_converted += lost(&text, &out);
            out
        }
        Format => {
            let format = text_arg(args, 1);
            let zone = zone_arg(args, 2);
            let is_date = values[0].data_type() == &DataType::Date32;
            let out: StringArray = micros(&values[0])?
                .into_iter()
                .map(|us| {
                    let zoned = Timestamp::from_microsecond(us?).ok()?;
                    if is_date {
                        jiff::fmt::strtime::format(format, zoned.to_zoned(TimeZone::UTC).date())
                            .ok()
                    } else {
                        jiff::fmt::strtime::format(format, &zoned.to_zoned(zone.clone())).ok()
                    }
                })
                .collect();
            Arc::new(out)
        }
        LocalDate => {
            let zone = zone_arg(args, 1);
            let out: Date32Array = micros(&values[0])?
                .into_iter()
                .map(|us| {
                    let local = Timestamp::from_microsecond(us?)
                        .ok()?
                        .to_zoned(zone.clone())
                        .date();
                    days_of(local)
                })
                .collect();
            Arc::new(out)
        }
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{other:?} is not a date function"
            )));
        }
    })
}

/// Whether `format` formats a date (`date: true`) or a timestamp, for the check.
pub fn check_format(format: &str, date: bool) -> Result<(), String> {
    let sample = Date::new(2026, 12, 4).expect("a date");
    let done = if date {
        jiff::fmt::strtime::format(format, sample).map(|_| ())
    } else {
        let zoned = sample.to_zoned(TimeZone::UTC).expect("a time");
        jiff::fmt::strtime::format(format, &zoned).map(|_| ())
    };
    done.map_err(|e| e.to_string())
}
