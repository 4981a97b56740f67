//! The dated table of distribution lifecycles berth ships: when each release of a distribution
//! stops getting security fixes, matched against an image's OS identity (`debian-12-amd64`).
//! Operators add or override rows (a release berth does not know, an extended-support contract).

use chrono::NaiveDate;
use serde::Serialize;

/// The day this table was last checked against the distributions' own pages; `berth stale
/// --help` states it, so a reader knows how old berth's knowledge of the future is.
pub const TABLE_DATE: &str = "2026-12-01";

/// What `berth stale --help` says of the table (its date must be [`TABLE_DATE`]).
pub const TABLE_NOTE: &str = "OS end of life comes from berth's lifecycle table of 2026-12-01 \
(Debian, Ubuntu, Alpine, Fedora, RHEL/UBI, CentOS Stream, Rocky, Alma, Oracle Linux, Amazon \
Linux, Azure Linux/Mariner, openSUSE Leap); `freshness.os_lifecycle` in the config adds or \
overrides rows. See docs/freshness.md.";

/// One release of a distribution and the day its support ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsLifecycle {
    /// The distribution as in os-release's `ID` (`debian`, `ubuntu`, `rhel`, `opensuse-leap`).
    pub distribution: String,
    /// The version as in the OS identity (`12`, `22.04`, `3.20`): see `osrelease`.
    pub version: String,
    /// From this day on (00:00 UTC) the release is end of life.
    pub eol_on: NaiveDate,
}

impl OsLifecycle {
    /// Whether `os_id` (`debian-12-amd64`, or without the architecture) names this release.
    pub fn matches(&self, os_id: &str) -> bool {
        let Some(rest) = os_id
            .strip_prefix(self.distribution.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_prefix(self.version.as_str()))
        else {
            return false;
        };
        rest.is_empty() || rest.starts_with('-')
    }
}

/// (distribution, version, end of life). The end of security support a platform can rely on
/// without a paid contract: Debian's LTS end, Ubuntu's end of standard support, RHEL's end of
/// maintenance support (UBI images say `rhel`), the published end of the rest.
const TABLE: &[(&str, &str, &str)] = &[
    ("debian", "9", "2022-07-01"),
    ("debian", "10", "2024-07-01"),
    ("debian", "11", "2026-09-01"),
    ("debian", "12", "2028-07-01"),
    ("debian", "13", "2030-07-01"),
    ("ubuntu", "16.04", "2021-05-01"),
    ("ubuntu", "18.04", "2023-06-01"),
    ("ubuntu", "20.04", "2025-06-01"),
    ("ubuntu", "22.04", "2027-06-01"),
    ("ubuntu", "24.04", "2029-06-01"),
    ("alpine", "3.15", "2023-11-01"),
    ("alpine", "3.16", "2024-05-23"),
    ("alpine", "3.17", "2024-11-22"),
    ("alpine", "3.18", "2025-05-09"),
    ("alpine", "3.19", "2025-11-01"),
    ("alpine", "3.20", "2026-04-01"),
    ("alpine", "3.21", "2026-11-01"),
    ("alpine", "3.22", "2027-05-01"),
    ("alpine", "3.23", "2027-11-01"),
    ("fedora", "39", "2024-11-26"),
    ("fedora", "40", "2025-05-13"),
    ("fedora", "41", "2025-12-15"),
    ("fedora", "42", "2026-05-13"),
    ("rhel", "7", "2024-07-01"),
    ("rhel", "8", "2029-06-01"),
    ("rhel", "9", "2032-06-01"),
    ("centos", "7", "2024-07-01"),
    ("centos", "8", "2024-06-01"),
    ("centos", "9", "2027-06-01"),
    ("rocky", "8", "2029-06-01"),
    ("rocky", "9", "2032-06-01"),
    ("almalinux", "8", "2029-06-01"),
    ("almalinux", "9", "2032-06-01"),
    ("ol", "7", "2025-01-01"),
    ("ol", "8", "2029-07-01"),
    ("ol", "9", "2032-07-01"),
    ("amzn", "2", "2026-07-01"),
    ("amzn", "2023", "2029-07-01"),
    ("mariner", "1.0", "2023-08-01"),
    ("mariner", "2.0", "2025-08-01"),
    ("azurelinux", "3.0", "2027-07-01"),
    ("opensuse-leap", "15.4", "2023-12-08"),
    ("opensuse-leap", "15.5", "2025-01-01"),
    ("opensuse-leap", "15.6", "2026-05-01"),
];

/// berth's own table, as values.
pub fn builtin() -> Vec<OsLifecycle> {
    TABLE
        .iter()
        .map(|(distribution, version, eol_on)| OsLifecycle {
            distribution: distribution.to_string(),
            version: version.to_string(),
            eol_on: eol_on
                .parse()
                .expect("the built-in table's dates are valid"),
        })
        .collect()
}

/// The lifecycle of `os_id`: an operator's row wins over berth's.
pub fn lookup<'t>(
    os_id: &str,
    overrides: &'t [OsLifecycle],
    builtin: &'t [OsLifecycle],
) -> Option<(&'t OsLifecycle, LifecycleSource)> {
    if let Some(row) = overrides.iter().find(|row| row.matches(os_id)) {
        return Some((row, LifecycleSource::Config));
    }
    builtin
        .iter()
        .find(|row| row.matches(os_id))
        .map(|row| (row, LifecycleSource::Berth))
}

/// Whose table a lifecycle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleSource {
    /// berth's built-in table (dated [`TABLE_DATE`]).
    Berth,
    /// The operator's `freshness.os_lifecycle`.
    Config,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_their_release_only() {
        let table = builtin();
        let find = |id: &str| lookup(id, &[], &table).map(|(row, _)| row.eol_on.to_string());
        assert_eq!(find("debian-12-amd64").as_deref(), Some("2028-07-01"));
        assert_eq!(find("debian-12").as_deref(), Some("2028-07-01"));
        // `debian-1` is not `debian-12`, and `3.2` is not `3.20`.
        assert_eq!(find("debian-1-amd64"), None);
        assert_eq!(find("alpine-3.2-amd64"), None);
        assert_eq!(find("alpine-3.20-arm64").as_deref(), Some("2026-04-01"));
        assert_eq!(
            find("opensuse-leap-15.6-amd64").as_deref(),
            Some("2026-05-01")
        );
        assert_eq!(find("ubuntu-22.04-arm64-v8").as_deref(), Some("2027-06-01"));
        assert_eq!(find("plan9-4-amd64"), None);
    }

    #[test]
    fn the_help_states_the_table_date() {
        assert!(TABLE_NOTE.contains(TABLE_DATE), "{TABLE_NOTE}");
    }

    #[test]
    fn an_override_wins() {
        let table = builtin();
        let extended = [OsLifecycle {
            distribution: "debian".into(),
            version: "11".into(),
            eol_on: "2031-06-30".parse().unwrap(),
        }];
        let (row, source) = lookup("debian-11-amd64", &extended, &table).unwrap();
        assert_eq!(row.eol_on.to_string(), "2031-06-30");
        assert_eq!(source, LifecycleSource::Config);
        let (_, source) = lookup("debian-12-amd64", &extended, &table).unwrap();
        assert_eq!(source, LifecycleSource::Berth);
    }
}
