//! A promotion schedule: a cron expression read in an IANA time zone (`0 10 * * WED` in
//! `Europe/Copenhagen`), so "Wednesdays at 10:00" stays 10:00 local across daylight saving.
//! Cron parsing and matching is croner's; zones are chrono-tz's (docs/decisions/0006-schedules.md).

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A cron expression and the zone its fields are read in.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    /// As written, for messages and output.
    expression: String,
    zone: Tz,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} in {})", self.expression, self.zone)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.expression == other.expression && self.zone == other.zone
    }
}

impl Schedule {
    /// Standard 5-field cron (minute hour day-of-month month day-of-week), or 6 fields with
    /// seconds first; names (`WED`, `JAN`) and `@weekly`-style nicknames work. `zone` is an IANA
    /// name (`Europe/Copenhagen`, `UTC`, `Etc/GMT-2` for a fixed UTC+2).
    pub fn parse(expression: &str, zone: &str) -> Result<Schedule, String> {
        let cron: Cron = expression.parse().map_err(|_| {
            format!(
                "{expression:?} is not a cron expression: {}",
                cron_problem(expression)
            )
        })?;
        let zone: Tz = zone.parse().map_err(|_| {
            format!("{zone:?} is not an IANA time zone (Europe/Copenhagen, UTC, Etc/GMT-2)")
        })?;
        Ok(Schedule {
            cron,
            expression: expression.to_string(),
            zone,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first slot strictly after `moment`.
    pub fn next_after(&self, moment: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&moment.with_timezone(&self.zone), false)
            .ok()
            .map(|slot| slot.to_utc())
    }

    /// The latest slot at or before `moment`.
    pub fn latest_at_or_before(&self, moment: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&moment.with_timezone(&self.zone), true)
            .ok()
            .map(|slot| slot.to_utc())
    }
}

/// What is wrong with a cron expression the parser refused, in the expression's own terms:
/// which field, and what it may hold (the parser's own words name its internals).
fn cron_problem(expression: &str) -> String {
    const FIVE: [(&str, &str); 5] = [
        ("minute", "0-59"),
        ("hour", "0-23"),
        ("day of month", "1-31"),
        ("month", "1-12 or JAN-DEC"),
        ("day of week", "0-7 or SUN-SAT"),
    ];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if expression.trim_start().starts_with('@') {
        return "expected one of @yearly, @annually, @monthly, @weekly, @daily, @hourly"
            .to_string();
    }
    let names: Vec<(&str, &str)> = match fields.len() {
        5 => FIVE.to_vec(),
        6 => std::iter::once(("second", "0-59")).chain(FIVE).collect(),
        found => {
            return format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with \
                 seconds first; found {found}"
            );
        }
    };
    for (index, (name, range)) in names.iter().enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[index] = fields[index];
        if probe.join(" ").parse::<Cron>().is_err() {
            return format!(
                "the {name} field {:?} is not valid; expected {range}, a range (1-5), a list \
                 (1,3) or a step (*/2)",
                fields[index]
            );
        }
    }
    "its fields cannot be combined into a schedule".to_string()
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 15, item 20: errors leaked the parser's internals (`CronPattern contains illegal
    /// character 'S' in part '3S'`); they name the field and what it may hold.
    #[test]
    fn cron_errors_name_the_field_in_the_expressions_terms() {
        let cases = [
            (
                "0 10 * * WENSDAY",
                "\"0 10 * * WENSDAY\" is not a cron expression: the day of week field \"WENSDAY\" \
                 is not valid; expected 0-7 or SUN-SAT, a range (1-5), a list (1,3) or a step (*/2)",
            ),
            (
                "0 3S * * *",
                "\"0 3S * * *\" is not a cron expression: the hour field \"3S\" is not valid; \
                 expected 0-23, a range (1-5), a list (1,3) or a step (*/2)",
            ),
            (
                "0 10 * *",
                "\"0 10 * *\" is not a cron expression: expected 5 fields (minute hour \
                 day-of-month month day-of-week), or 6 with seconds first; found 4",
            ),
            (
                "@fortnightly",
                "\"@fortnightly\" is not a cron expression: expected one of @yearly, \
                 @annually, @monthly, @weekly, @daily, @hourly",
            ),
        ];
        for (expression, expect) in cases {
            assert_eq!(
                Schedule::parse(expression, "UTC").err().as_deref(),
                Some(expect),
                "{expression}"
            );
        }
        assert!(Schedule::parse("0 10 * * WED", "UTC").is_ok());
    }
}
