//! Which repositories a sync walks: those the catalog's entries and variants name, repositories
//! listed in the configuration, and whole registries listed with include/exclude patterns.

use std::collections::BTreeSet;

use berth_core::catalog::Catalog;
/// The policy's path patterns (`team/*`, `**/base`, `team/m*`): one syntax, one matcher.
pub use berth_core::policy::PathPattern;
use berth_store::RepositoryName;

/// A whole registry to walk (through its `_catalog`), narrowed by patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryScan {
    /// As image references name it: `registry.example.com`, `127.0.0.1:5050`.
    pub registry: String,
    /// Repositories matching any of these are walked; empty means all.
    pub include: Vec<PathPattern>,
    /// Repositories matching any of these are not, even when included.
    pub exclude: Vec<PathPattern>,
}

impl RegistryScan {
    pub fn selects(&self, repository: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(repository)))
            && !self.exclude.iter().any(|p| p.matches(repository))
    }
}

/// What one sync walks.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Named repositories, deduplicated and sorted.
    pub repositories: BTreeSet<RepositoryName>,
    pub registries: Vec<RegistryScan>,
}

impl Targets {
    /// Every repository the catalog's entries publish to (default images and variants).
    pub fn add_catalog(&mut self, catalog: &Catalog) {
        for entry in catalog.entries() {
            for (_, image) in entry.images() {
                if let Ok(name) = RepositoryName::new(image.registry(), image.repository()) {
                    self.repositories.insert(name);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.repositories.is_empty() && self.registries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_only() {
        let cases: &[(&str, &str, bool)] = &[
            ("team/*", "team/app", true),
            ("team/*", "team/app/x", false),
            ("team/*", "team-x/app", false),
            ("team/*", "team", false),
            ("team/**", "team", true),
            ("team/**", "team/a/b/c", true),
            ("**/cache", "a/b/cache", true),
            ("**/cache", "cache", true),
            ("**/cache", "a/cache/b", false),
            ("**", "anything/at/all", true),
            ("library/python", "library/python", true),
            ("library/python", "library/python3", false),
            ("*/python", "library/python", true),
        ];
        for (pattern, path, expected) in cases {
            let parsed = PathPattern::parse(pattern).unwrap();
            assert_eq!(parsed.matches(path), *expected, "{pattern} on {path}");
        }
    }

    /// Issue 15, item 15: `--include 'team/m*'`, which the policy's syntax allows, was
    /// refused; sync now takes the policy's patterns, globs inside a segment included.
    #[test]
    fn globs_inside_a_segment_are_the_policys() {
        let scan = RegistryScan {
            registry: "r.example".into(),
            include: vec![PathPattern::parse("team/m*").unwrap()],
            exclude: vec![],
        };
        assert!(scan.selects("team/mail"));
        assert!(!scan.selects("team/app"));
        assert!(!scan.selects("team/mail/x"));
        assert!(PathPattern::parse("a//b").is_err());
        assert!(PathPattern::parse("/").is_err());
        assert!(PathPattern::parse("a**").is_err());
    }

    #[test]
    fn exclude_wins_over_include() {
        let scan = RegistryScan {
            registry: "r.example".into(),
            include: vec![PathPattern::parse("team/**").unwrap()],
            exclude: vec![PathPattern::parse("team/cache/**").unwrap()],
        };
        assert!(scan.selects("team/app"));
        assert!(!scan.selects("team/cache/x"));
        assert!(!scan.selects("other/app"));
        let all = RegistryScan {
            registry: "r.example".into(),
            include: vec![],
            exclude: vec![],
        };
        assert!(all.selects("x/y"));
    }
}
