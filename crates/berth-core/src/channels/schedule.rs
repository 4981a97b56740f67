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
        let cron: Cron = expression
            .parse()
            .map_err(|error| format!("{expression:?} is not a cron expression: {error}"))?;
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

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone)
    }
}
