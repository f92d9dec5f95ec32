//! Schedule expressions as AppFlow and EventBridge write them, and when they run.
//!
//! - `rate(15 minutes)`, `rate(1 hours)`, `rate(1 days)`: every N minutes, hours or days
//!   of elapsed time (a day is 24 hours, whatever the clocks do), counted from the
//!   schedule's `start`, or from 1970-01-01 UTC without one — so `rate(15 minutes)` runs
//!   at :00, :15, :30 and :45.
//! - `cron(min hour day-of-month month day-of-week year)`: EventBridge's six fields, with
//!   `, - * / ?` everywhere they apply, `L` and `W` in the day of the month, `L` and `#` in
//!   the day of the week (1-7 or SUN-SAT, 1 being Sunday); one of the two day fields is `?`.
//! - A standard five-field cron, `min hour day-of-month month day-of-week` (0-7 or SUN-SAT,
//!   0 and 7 being Sunday), bare or inside `cron(…)`; when both day fields are restricted a
//!   day matching either runs, as cron has always done.
//!
//! Cron expressions are read in the schedule's time zone, with daylight-saving changes
//! handled as EventBridge Scheduler documents: a local time that does not exist on the
//! spring-forward day is skipped, and one that happens twice on the fall-back day runs
//! once, the first time.
//!
//! A mistake is reported with the column it starts at, so the user sees where to look in
//! what they typed.

use std::fmt;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// A schedule expression that does not parse: what is wrong, and where (1-based column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

fn fail(at: usize, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        column: at + 1,
        message: message.into(),
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    /// Every this many minutes.
    Rate {
        minutes: u64,
    },
    Cron(Cron),
}

/// What a schedule expression says, read.
pub fn parse(expression: &str) -> Result<Expression, ScheduleError> {
    let lead = expression.len() - expression.trim_start().len();
    let text = expression.trim();
    if text.starts_with("rate") {
        return rate_minutes(expression).map(|minutes| Expression::Rate { minutes });
    }
    if text.is_empty() {
        return Err(fail(
            0,
            "the schedule is empty; write rate(N minutes|hours|days) or cron(…)",
        ));
    }
    if let Some(open) = text.strip_prefix("cron(") {
        let start = lead + "cron(".len();
        let Some(inner) = open.strip_suffix(')') else {
            return Err(fail(lead + text.len(), "the schedule must end with )"));
        };
        return Cron::parse(inner, start).map(Expression::Cron);
    }
    if text.starts_with(|c: char| c.is_ascii_digit() || c == '*' || c == '?') {
        return Cron::parse(text, lead).map(Expression::Cron);
    }
    Err(fail(
        lead,
        "a schedule is rate(N minutes|hours|days), cron(min hour day month weekday year) or five cron fields",
    ))
}

/// Minutes between runs of a `rate(N unit)` expression.
pub fn rate_minutes(expression: &str) -> Result<u64, ScheduleError> {
    let lead = expression.len() - expression.trim_start().len();
    let text = expression.trim_end();
    if text.trim().is_empty() {
        return Err(fail(
            0,
            "the schedule is empty; write rate(N minutes|hours|days)",
        ));
    }
    let Some(open) = text[lead..].strip_prefix("rate(") else {
        return Err(fail(
            lead,
            "a schedule starts with rate(, as in rate(15 minutes)",
        ));
    };
    let start = lead + "rate(".len();
    let Some(inner) = open.strip_suffix(')') else {
        return Err(fail(text.len(), "the schedule must end with )"));
    };
    let skipped = inner.len() - inner.trim_start().len();
    let number_at = start + skipped;
    let inner = inner.trim();
    let digits = inner
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(inner.len());
    if digits == 0 {
        let what = if inner.starts_with('-') {
            "the number of units must be a whole number above 0"
        } else {
            "a whole number of minutes, hours or days comes first, as in rate(15 minutes)"
        };
        return Err(fail(number_at, what));
    }
    let n: u64 = inner[..digits]
        .parse()
        .map_err(|_| fail(number_at, "the number is too large"))?;
    if n == 0 {
        return Err(fail(number_at, "the number of units must be at least 1"));
    }
    let unit_text = inner[digits..].trim_start();
    let unit_at = number_at + digits + (inner[digits..].len() - unit_text.len());
    let per = match unit_text {
        "minute" | "minutes" => 1,
        "hour" | "hours" => 60,
        "day" | "days" => 24 * 60,
        "" => {
            return Err(fail(
                unit_at,
                "a unit follows the number: minutes, hours or days",
            ));
        }
        _ => {
            return Err(fail(
                unit_at,
                "the unit is minutes, hours or days (or minute, hour, day)",
            ));
        }
    };
    n.checked_mul(per)
        .ok_or_else(|| fail(number_at, "the number is too large"))
}

/// The last year a schedule can name.
const LAST_YEAR: i16 = 2199;
const FIRST_YEAR: i16 = 1970;

/// A cron expression, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1 to 12.
    months: u16,
    /// The years it runs in; `None` for every year.
    years: Option<Vec<i16>>,
    days: Days,
}

/// Which days of a month a cron runs on.
#[derive(Debug, Clone, PartialEq)]
enum Days {
    Any,
    Month(MonthDays),
    Week(WeekDays),
    /// A standard cron restricting both fields: a day matching either.
    Either(MonthDays, WeekDays),
}

#[derive(Debug, Clone, PartialEq)]
enum MonthDays {
    /// Bits 1 to 31.
    Set(u32),
    /// `L`, `L-3`: the last day, or so many days before it.
    Last(u8),
    /// `LW`: the last weekday (Monday to Friday).
    LastWeekday,
    /// `15W`: the weekday nearest the 15th, within the month.
    NearestWeekday(u8),
}

#[derive(Debug, Clone, PartialEq)]
enum WeekDays {
    /// Bits 0 (Sunday) to 6 (Saturday).
    Set(u8),
    /// `6L`: the last Friday of the month.
    Last(u8),
    /// `3#2`: the second Tuesday of the month.
    Nth(u8, u8),
}

/// One field's text and where it starts in the whole expression (0-based).
struct Field<'a> {
    text: &'a str,
    at: usize,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// `inner` is the text between `cron(` and `)`, or a bare five-field cron; `offset` is
    /// where it starts in the whole expression.
    fn parse(inner: &str, offset: usize) -> Result<Cron, ScheduleError> {
        let mut fields = Vec::new();
        let mut start = None;
        for (i, c) in inner.char_indices().chain([(inner.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    fields.push(Field {
                        text: &inner[s..i],
                        at: offset + s,
                    });
                    start = None;
                }
                _ => {}
            }
        }
        let aws = match fields.len() {
            6 => true,
            5 => false,
            n => {
                return Err(fail(
                    offset,
                    format!(
                        "a cron has six fields (minute hour day-of-month month day-of-week year), or five in the standard form; this one has {n}"
                    ),
                ));
            }
        };
        let minutes = numbers(&fields[0], 0, 59, "minute", &[])?;
        let hours = numbers(&fields[1], 0, 23, "hour", &[])? as u32;
        let months = numbers(&fields[3], 1, 12, "month", &MONTH_NAMES)? as u16;
        let years = if aws {
            let f = &fields[5];
            let set = numbers_wide(f, FIRST_YEAR as u32, LAST_YEAR as u32, "year")?;
            (set.len() < (LAST_YEAR - FIRST_YEAR + 1) as usize)
                .then(|| set.into_iter().map(|y| y as i16).collect())
        } else {
            None
        };
        let (dom, dow) = (&fields[2], &fields[4]);
        let any = |f: &Field| f.text == "?";
        let days = if aws {
            match (any(dom), any(dow)) {
                (true, true) => {
                    return Err(fail(
                        dow.at,
                        "one of day-of-month and day-of-week names the days; both are ?",
                    ));
                }
                (false, false) => {
                    return Err(fail(
                        dow.at,
                        "day-of-month and day-of-week cannot both name days: write ? in one of them",
                    ));
                }
                (true, false) => match week_days(dow, true)? {
                    WeekDays::Set(0x7f) => Days::Any,
                    w => Days::Week(w),
                },
                (false, true) => match month_days(dom)? {
                    MonthDays::Set(s) if s == ALL_MONTH_DAYS => Days::Any,
                    m => Days::Month(m),
                },
            }
        } else {
            let star = |f: &Field| f.text == "*" || f.text == "?";
            match (star(dom), star(dow)) {
                (true, true) => Days::Any,
                (false, true) => Days::Month(month_days(dom)?),
                (true, false) => Days::Week(week_days(dow, false)?),
                (false, false) => Days::Either(month_days(dom)?, week_days(dow, false)?),
            }
        };
        Ok(Cron {
            minutes,
            hours,
            months,
            years,
            days,
        })
    }

    /// The same times as a standard five-field cron (minute hour day month weekday, Sunday
    /// 0), for schedulers that speak only that; what five fields cannot say (`L`, `W`,
    /// `#`, years) is refused in words.
    pub fn standard(&self) -> Result<String, String> {
        let days = |what: &str| format!("the day rule `{what}` has no standard cron form");
        let (day, weekday) = match &self.days {
            Days::Any => ("*".to_string(), "*".to_string()),
            Days::Month(MonthDays::Set(bits)) => (bit_list(*bits as u64, 1, 31), "*".into()),
            Days::Week(WeekDays::Set(bits)) => ("*".into(), bit_list(*bits as u64, 0, 6)),
            Days::Either(MonthDays::Set(d), WeekDays::Set(w)) => {
                (bit_list(*d as u64, 1, 31), bit_list(*w as u64, 0, 6))
            }
            Days::Month(MonthDays::Last(_)) | Days::Either(MonthDays::Last(_), _) => {
                return Err(days("L (the last day of the month)"));
            }
            Days::Month(_) | Days::Either(..) => return Err(days("W (the nearest weekday)")),
            Days::Week(WeekDays::Last(_)) => return Err(days("L (the last weekday of the month)")),
            Days::Week(WeekDays::Nth(..)) => return Err(days("# (the n-th weekday of the month)")),
        };
        if self.years.is_some() {
            return Err("a year field has no standard cron form".into());
        }
        Ok(format!(
            "{} {} {day} {} {weekday}",
            bit_list(self.minutes, 0, 59),
            bit_list(self.hours as u64, 0, 23),
            bit_list(self.months as u64, 1, 12),
        ))
    }

    fn runs_on(&self, date: Date) -> bool {
        let month_ok = self.months & (1 << date.month()) != 0;
        let year_ok = self
            .years
            .as_ref()
            .is_none_or(|ys| ys.binary_search(&date.year()).is_ok());
        month_ok
            && year_ok
            && match &self.days {
                Days::Any => true,
                Days::Month(m) => m.has(date),
                Days::Week(w) => w.has(date),
                Days::Either(m, w) => m.has(date) || w.has(date),
            }
    }

    /// The first run after `after`, reading the expression's times in `zone`.
    fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(zone.clone()).datetime();
        let mut date = local.date();
        // Minutes of the day from which a run may come on `date`.
        let mut from = i32::from(local.hour()) * 60 + i32::from(local.minute());
        while date.year() <= LAST_YEAR {
            if self.months & (1 << date.month()) == 0 {
                date = date
                    .first_of_month()
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?;
                from = 0;
                continue;
            }
            if self.runs_on(date) {
                for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60).filter(|m| self.minutes & (1u64 << m) != 0) {
                        if hour * 60 + minute < from {
                            continue;
                        }
                        let civil = date.at(hour as i8, minute as i8, 0, 0);
                        if let Some(at) = instant_of(civil, zone)
                            && at > after
                        {
                            return Some(at);
                        }
                    }
                }
            }
            date = date.tomorrow().ok()?;
            from = 0;
        }
        None
    }
}

/// When a local time happens in `zone`: `None` for one the spring-forward change skips,
/// the first of the two for one the fall-back change repeats.
/// The values whose bits are set, between `low` and `high`, as cron writes them: `*` for
/// all, runs as `a-b`, the rest with commas.
fn bit_list(bits: u64, low: u32, high: u32) -> String {
    let on = |v: u32| bits & (1 << v) != 0;
    if (low..=high).all(on) {
        return "*".into();
    }
    let mut parts = Vec::new();
    let mut v = low;
    while v <= high {
        if !on(v) {
            v += 1;
            continue;
        }
        let start = v;
        while v < high && on(v + 1) {
            v += 1;
        }
        parts.push(match v - start {
            0 => start.to_string(),
            1 => format!("{start},{v}"),
            _ => format!("{start}-{v}"),
        });
        v += 1;
    }
    parts.join(",")
}

fn instant_of(civil: DateTime, zone: &TimeZone) -> Option<Timestamp> {
    let offset = match zone.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { .. } => return None,
        AmbiguousOffset::Fold { before, .. } => before,
    };
    offset.to_timestamp(civil).ok()
}

const ALL_MONTH_DAYS: u32 = 0xffff_fffe;

impl MonthDays {
    fn has(&self, date: Date) -> bool {
        let last = date.days_in_month();
        match *self {
            MonthDays::Set(bits) => bits & (1 << date.day()) != 0,
            MonthDays::Last(before) => date.day() == last - before as i8,
            MonthDays::LastWeekday => {
                let mut day = date.last_of_month();
                while matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
                    day = day.yesterday().expect("within the month");
                }
                date == day
            }
            MonthDays::NearestWeekday(n) => {
                let target = date
                    .first_of_month()
                    .with()
                    .day((n as i8).min(last))
                    .build()
                    .expect("a day of the month");
                let nearest = match target.weekday() {
                    // Saturday: the Friday before, or the Monday after on the 1st.
                    Weekday::Saturday if target.day() > 1 => target.yesterday(),
                    Weekday::Saturday => target.checked_add(jiff::Span::new().days(2)),
                    // Sunday: the Monday after, or the Friday before on the last day.
                    Weekday::Sunday if target.day() < last => target.tomorrow(),
                    Weekday::Sunday => target.checked_sub(jiff::Span::new().days(2)),
                    _ => Ok(target),
                };
                nearest.is_ok_and(|d| d == date)
            }
        }
    }
}

impl WeekDays {
    fn has(&self, date: Date) -> bool {
        let weekday = date.weekday().to_sunday_zero_offset() as u8;
        match *self {
            WeekDays::Set(bits) => bits & (1 << weekday) != 0,
            WeekDays::Last(day) => weekday == day && date.day() + 7 > date.days_in_month(),
            WeekDays::Nth(day, n) => weekday == day && (date.day() - 1) / 7 + 1 == n as i8,
        }
    }
}

/// A numeric field (`*`, `5`, `1-5`, `*/15`, `1/10`, `1-30/5`, lists of those, names where
/// the field has them) as a bit set.
fn numbers(
    f: &Field,
    low: u32,
    high: u32,
    what: &str,
    names: &[&str],
) -> Result<u64, ScheduleError> {
    let mut bits = 0u64;
    for value in values(f, low, high, what, names)? {
        bits |= 1 << value;
    }
    Ok(bits)
}

/// A numeric field whose values go beyond 63 (years), as a sorted list.
fn numbers_wide(f: &Field, low: u32, high: u32, what: &str) -> Result<Vec<u32>, ScheduleError> {
    let mut all = values(f, low, high, what, &[])?;
    all.sort_unstable();
    all.dedup();
    Ok(all)
}

fn values(
    f: &Field,
    low: u32,
    high: u32,
    what: &str,
    names: &[&str],
) -> Result<Vec<u32>, ScheduleError> {
    let mut out = Vec::new();
    let mut at = f.at;
    for item in f.text.split(',') {
        out.extend(item_values(item, at, low, high, what, names)?);
        at += item.len() + 1;
    }
    Ok(out)
}

fn item_values(
    item: &str,
    at: usize,
    low: u32,
    high: u32,
    what: &str,
    names: &[&str],
) -> Result<Vec<u32>, ScheduleError> {
    if item.is_empty() {
        return Err(fail(at, format!("a value of the {what} is missing here")));
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step_at = at + range.len() + 1;
            let step: u32 = step
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| fail(step_at, "a step after / is a whole number above 0"))?;
            (range, Some(step))
        }
        None => (item, None),
    };
    let number = |text: &str, at: usize| -> Result<u32, ScheduleError> {
        let upper = text.to_ascii_uppercase();
        let value = match names.iter().position(|n| *n == upper) {
            Some(i) => i as u32 + low,
            None => text.parse().map_err(|_| {
                let names = if names.is_empty() {
                    String::new()
                } else {
                    format!(" or {}-{}", names[0], names[names.len() - 1])
                };
                fail(
                    at,
                    format!("`{text}` is not a valid {what}: write {low}-{high}{names}"),
                )
            })?,
        };
        if !(low..=high).contains(&value) {
            return Err(fail(
                at,
                format!("{value} is not a valid {what}: it goes from {low} to {high}"),
            ));
        }
        Ok(value)
    };
    let (first, last) = match range {
        "*" => (low, high),
        _ => match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a, at)?, number(b, at + a.len() + 1)?);
                if b < a {
                    return Err(fail(
                        at,
                        format!("the range {range} runs backwards; write the smaller {what} first"),
                    ));
                }
                (a, b)
            }
            // `5/15`: from 5 to the end, every 15.
            None if step.is_some() => (number(range, at)?, high),
            None => {
                let v = number(range, at)?;
                (v, v)
            }
        },
    };
    Ok((first..=last).step_by(step.unwrap_or(1) as usize).collect())
}

/// The day-of-month field, not `?`.
fn month_days(f: &Field) -> Result<MonthDays, ScheduleError> {
    let text = f.text.to_ascii_uppercase();
    if text == "L" {
        return Ok(MonthDays::Last(0));
    }
    if text == "LW" {
        return Ok(MonthDays::LastWeekday);
    }
    if let Some(before) = text.strip_prefix("L-") {
        let n: u8 = before
            .parse()
            .ok()
            .filter(|n| (1..=30).contains(n))
            .ok_or_else(|| fail(f.at + 2, "L-N counts 1 to 30 days back from the last"))?;
        return Ok(MonthDays::Last(n));
    }
    if let Some(day) = text.strip_suffix('W') {
        let n: u8 = day
            .parse()
            .ok()
            .filter(|n| (1..=31).contains(n))
            .ok_or_else(|| fail(f.at, "W follows one day of the month, as in 15W"))?;
        return Ok(MonthDays::NearestWeekday(n));
    }
    if let Some(i) = text.find(['L', 'W']) {
        return Err(fail(
            f.at + i,
            "L and W stand alone in the day of the month (L, L-3, LW, 15W), not in a list",
        ));
    }
    Ok(MonthDays::Set(
        numbers(f, 1, 31, "day of the month", &[])? as u32
    ))
}

/// The day-of-week field, not `?`; `aws` for EventBridge's 1-7 (1 Sunday), otherwise the
/// standard 0-7 (0 and 7 Sunday). Bits 0 (Sunday) to 6.
fn week_days(f: &Field, aws: bool) -> Result<WeekDays, ScheduleError> {
    let text = f.text.to_ascii_uppercase();
    let (low, high) = if aws { (1, 7) } else { (0, 7) };
    let one_day = |text: &str, at: usize| -> Result<u8, ScheduleError> {
        let field = Field { text, at };
        let v = values(&field, low, high, "day of the week", &DAY_NAMES)?;
        match v.as_slice() {
            [day] => Ok(sunday_zero(*day, aws)),
            _ => Err(fail(at, "one day of the week goes here, as in 6L or FRI#2")),
        }
    };
    if text == "L" {
        return Ok(WeekDays::Set(1 << 6));
    }
    if let Some((day, n)) = text.split_once('#') {
        let day = one_day(day, f.at)?;
        let n: u8 = n
            .parse()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| {
                fail(
                    f.at + text.find('#').unwrap_or(0) + 1,
                    "after # comes which one of the month, 1 to 5",
                )
            })?;
        return Ok(WeekDays::Nth(day, n));
    }
    if let Some(day) = text.strip_suffix('L') {
        return Ok(WeekDays::Last(one_day(day, f.at)?));
    }
    let mut bits = 0u8;
    for day in values(f, low, high, "day of the week", &DAY_NAMES)? {
        bits |= 1 << sunday_zero(day, aws);
    }
    Ok(WeekDays::Set(bits))
}

/// A day-of-week value as 0 (Sunday) to 6 (Saturday).
fn sunday_zero(value: u32, aws: bool) -> u8 {
    if aws {
        (value - 1) as u8
    } else {
        (value % 7) as u8
    }
}

/// A schedule ready to say when it runs: its expression, time zone and bounds.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: Expression,
    zone: TimeZone,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

/// A setting of a schedule that is wrong: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// `expression`, `time_zone`, `start` or `end`.
    pub setting: &'static str,
    pub message: String,
}

impl Schedule {
    /// Reads a schedule's settings; `start` and `end` are RFC 3339 instants, or local
    /// times (`2026-12-01T08:00:00`) in the schedule's time zone.
    pub fn new(
        expression: &str,
        time_zone: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Schedule, SettingError> {
        let expression = parse(expression).map_err(|e| SettingError {
            setting: "expression",
            message: format!("the schedule `{}` does not parse {e}", expression.trim()),
        })?;
        let zone = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|_| SettingError {
                setting: "time_zone",
                message: format!(
                    "`{name}` is not a time zone; write an IANA name such as Europe/Berlin or America/New_York{}",
                    closest_zone(name)
                ),
            })?,
        };
        let instant = |setting: &'static str, text: Option<&str>| {
            text.map(|t| {
                instant_in(t.trim(), &zone).ok_or_else(|| SettingError {
                    setting,
                    message: format!(
                        "`{t}` is not a date and time; write 2026-12-01T08:00:00Z, with an offset, or a local time in the schedule's time zone"
                    ),
                })
            })
            .transpose()
        };
        let start = instant("start", start)?;
        let end = instant("end", end)?;
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(SettingError {
                setting: "end",
                message: "the schedule ends before it starts".into(),
            });
        }
        Ok(Schedule {
            expression,
            zone,
            start,
            end,
        })
    }

    /// The time zone the schedule is read in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The first run strictly after `after`, if the schedule has one.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        // Runs come at `start` or after it.
        let after = match self.start {
            Some(start) if start > after => start - SignedDuration::from_nanos(1),
            _ => after,
        };
        let next = match &self.expression {
            Expression::Rate { minutes } => {
                let anchor = self.start.unwrap_or(Timestamp::UNIX_EPOCH);
                let period = i64::try_from(*minutes).ok()?.checked_mul(60)?;
                let since = after.as_second() - anchor.as_second();
                let k = since.div_euclid(period) + 1;
                let at = anchor.as_second().checked_add(k.checked_mul(period)?)?;
                Timestamp::from_second(at).ok()?
            }
            Expression::Cron(cron) => cron.next_after(after, &self.zone)?,
        };
        self.end.is_none_or(|end| next <= end).then_some(next)
    }

    /// The next `count` runs after `after`.
    pub fn upcoming(&self, after: Timestamp, count: usize) -> Vec<Timestamp> {
        let mut runs = Vec::with_capacity(count);
        let mut at = after;
        while runs.len() < count {
            let Some(next) = self.next_after(at) else {
                break;
            };
            runs.push(next);
            at = next;
        }
        runs
    }

    /// Runs in the 30 days from `from`, for cost estimates: exact for a rate, and for a
    /// cron the matching minutes of each day (a daylight-saving change is not counted).
    pub fn runs_per_month(&self, from: Timestamp) -> f64 {
        const MONTH_MINUTES: u64 = 30 * 24 * 60;
        match &self.expression {
            Expression::Rate { minutes } => MONTH_MINUTES as f64 / *minutes as f64,
            Expression::Cron(cron) => {
                let per_day =
                    u64::from(cron.hours.count_ones()) * u64::from(cron.minutes.count_ones());
                let mut date = from.to_zoned(self.zone.clone()).date();
                let mut days = 0;
                for _ in 0..30 {
                    days += u64::from(cron.runs_on(date));
                    match date.tomorrow() {
                        Ok(next) => date = next,
                        Err(_) => break,
                    }
                }
                (days * per_day) as f64
            }
        }
    }

    /// A run time as a person reads it, in the schedule's time zone: `Thu 3 Dec 2026 02:30`.
    pub fn show_local(&self, at: Timestamp) -> String {
        at.to_zoned(self.zone.clone())
            .strftime("%a %-d %b %Y %H:%M")
            .to_string()
    }

    /// A run time as RFC 3339, with the offset it has in the schedule's time zone.
    pub fn show(&self, at: Timestamp) -> String {
        let offset = self.zone.to_offset(at);
        at.display_with_offset(offset).to_string()
    }
}

/// A setting's instant: RFC 3339, or a local time in the time zone named (UTC if none).
pub fn instant(
    text: &str,
    time_zone: Option<&str>,
    setting: &'static str,
) -> Result<chrono::DateTime<chrono::Utc>, SettingError> {
    let zone = time_zone
        .map(str::trim)
        .filter(|z| !z.is_empty())
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    instant_in(text.trim(), &zone)
        .and_then(|at| chrono::DateTime::from_timestamp(at.as_second(), at.subsec_nanosecond() as u32))
        .ok_or_else(|| SettingError {
            setting,
            message: format!(
                "`{text}` is not a date and time; write 2026-12-01T08:00:00Z, with an offset, or a local time in the schedule's time zone"
            ),
        })
}

/// An instant written with an offset, or a local time in `zone`.
fn instant_in(text: &str, zone: &TimeZone) -> Option<Timestamp> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Some(at);
    }
    let civil: DateTime = text.parse().ok().or_else(|| {
        text.parse::<Date>()
            .ok()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    })?;
    zone.to_ambiguous_timestamp(civil).compatible().ok()
}

/// "; did you mean Europe/Berlin?" for a time zone name close to a real one.
fn closest_zone(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    jiff::tz::db()
        .available()
        .map(|n| {
            let n = n.as_str().to_string();
            (strsim::levenshtein(&lower, &n.to_ascii_lowercase()), n)
        })
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, n)| format!("; did you mean {n}?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_in_minutes() {
        assert_eq!(rate_minutes("rate(15 minutes)"), Ok(15));
        assert_eq!(rate_minutes("rate(15minutes)"), Ok(15));
        assert_eq!(rate_minutes(" rate( 1 day ) "), Ok(1440));
        assert_eq!(rate_minutes("rate(2 hours)"), Ok(120));
    }

    #[test]
    fn mistakes_name_their_column() {
        let column = |e: &str| rate_minutes(e).unwrap_err().column;
        assert_eq!(column(""), 1);
        assert_eq!(column("rate(banana)"), 6);
        assert_eq!(column("rate(0 days)"), 6);
        assert_eq!(column("rate(-5 minutes)"), 6);
        assert_eq!(column("rate(5 weeks)"), 8);
        assert_eq!(column("rate(5)"), 7);
        assert_eq!(column("cron(0 * * * ? *)"), 1);
        assert_eq!(column("rate(5 days"), 12);
        assert!(
            rate_minutes("rate(banana)")
                .unwrap_err()
                .message
                .contains("whole number")
        );
        let cron_column = |e: &str| parse(e).unwrap_err().column;
        assert_eq!(cron_column("cron(0 25 * * ? *)"), 8);
        assert_eq!(cron_column("cron(0 10 * * * *)"), 15);
        assert_eq!(cron_column("cron(0 10 ? * ? *)"), 15);
        assert_eq!(cron_column("cron(0 10 * *)"), 6);
        assert_eq!(cron_column("cron(0 10 * FOO ? *)"), 13);
        assert_eq!(cron_column("cron(0 10 * * ? 1969)"), 17);
        assert_eq!(cron_column("cron(0 10 ? * 3#7 *)"), 17);
        assert_eq!(cron_column("cron(0/0 10 * * ? *)"), 8);
        assert_eq!(cron_column("cron(0 10 5-1 * ? *)"), 11);
        assert_eq!(cron_column("0 10 * *"), 1);
        assert!(
            parse("cron(0 10 * * * *)")
                .unwrap_err()
                .message
                .contains("write ? in one")
        );
    }

    #[test]
    fn a_cron_is_written_in_five_standard_fields_or_refused() {
        let standard = |e: &str| match parse(e).unwrap() {
            Expression::Cron(c) => c.standard(),
            Expression::Rate { .. } => panic!("{e} is a rate"),
        };
        assert_eq!(
            standard("cron(30 6 ? * MON-FRI *)").unwrap(),
            "30 6 * * 1-5"
        );
        assert_eq!(
            standard("cron(0/15 * * * ? *)").unwrap(),
            "0,15,30,45 * * * *"
        );
        assert_eq!(standard("cron(0 9 1,15 * ? *)").unwrap(), "0 9 1,15 * *");
        assert_eq!(
            standard("cron(0 9 ? JAN,JUL SUN *)").unwrap(),
            "0 9 * 1,7 0"
        );
        assert_eq!(standard("0 8 * * 0,6").unwrap(), "0 8 * * 0,6");
        assert_eq!(standard("5 4 * * *").unwrap(), "5 4 * * *");
        for (e, said) in [
            ("cron(0 12 L * ? *)", "L (the last day"),
            ("cron(0 12 15W * ? *)", "W (the nearest"),
            ("cron(0 12 ? * 6#3 *)", "# (the n-th"),
            ("cron(0 12 * * ? 2027)", "year"),
        ] {
            let refused = standard(e).unwrap_err();
            assert!(refused.contains(said), "{e}: {refused}");
        }
    }
}
