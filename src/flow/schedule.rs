//! Schedule expressions as AppFlow writes them: `rate(15 minutes)`, `rate(1 hours)`,
//! `rate(1 days)`. A mistake is reported with the column it starts at, so the user sees
//! where to look in what they typed.

use std::fmt;

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

/// Minutes between runs of a `rate(N unit)` expression.
pub fn rate_minutes(expression: &str) -> Result<u64, ScheduleError> {
    let fail = |at: usize, message: &str| ScheduleError {
        column: at + 1,
        message: message.to_string(),
    };
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
    }
}
