//! The catalog: the platform's images under canonical names, with aliases, lifecycle dates,
//! per-consumer variants, declared bases and owners; loaded from YAML with every problem reported
//! at once, and resolved both ways from in-memory indexes.
//!
//! Pure: callers hand in `(source name, text)` pairs and `now`; nothing here reads a file or a
//! clock. The binary and the server read the files (a single file, or every `*.yaml` of a
//! directory) and the clock.
//!
//! - [`load`] reads sources in berth's format or Toolforge's `images-v1.yaml` ([`Format`]) and
//!   returns a [`Catalog`] when there is no error, plus the [`Diagnostic`]s.
//! - [`Catalog`] resolves names and aliases to images ([`Catalog::resolve`]), references back to
//!   names ([`Catalog::which`]), lists ([`Catalog::list`]) and shows entries ([`Catalog::show`]);
//!   the answers are `Serialize` structs, the one shape both `--json` and the HTTP API print.
//! - [`export`] writes the catalog back: berth's format, Toolforge's, or a Kubernetes ConfigMap.
//! - [`yaml`] is the position-keeping YAML tree, also used for berth's config file.

pub mod diagnostic;
pub mod export;
pub mod model;
pub mod read;
pub mod resolve;
pub mod suggest;
mod validate;
pub mod yaml;

use foldhash::{HashMap, HashMapExt as _};

use chrono::{DateTime, Utc};

pub use diagnostic::{Diagnostic, Location, Severity};
pub use model::{
    CatalogEntry, Effective, Extra, ImageName, ImageNameError, Lifecycle, Owner, State, Transition,
    Variant,
};
pub use read::Format;
pub use resolve::{EntryView, LifecycleView, ListItem, Listing, Resolution, ResolveError, Which};

use crate::reference::ImageRef;

/// The JSON Schema of berth's catalog format (published at `docs/catalog.schema.json`).
pub const SCHEMA_JSON: &str = include_str!("../../../../docs/catalog.schema.json");

/// Reads a moment as people type it on a command line or in a query string: RFC 3339
/// (`2027-01-01T09:30:00Z`, `2027-01-01T11:30:00+02:00`) or a day (`2027-01-01`: 00:00 UTC).
pub fn parse_moment(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment.to_utc());
    }
    match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) if text.len() == 10 => Ok(day.and_time(chrono::NaiveTime::MIN).and_utc()),
        _ => Err(format!(
            "{text:?} is not a moment: expected RFC 3339 (2027-01-01T09:30:00Z) or a day (2027-01-01)"
        )),
    }
}

/// One catalog file's name (a path, as it should appear in messages) and text.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// The outcome of [`load`]: a catalog when there was no error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub catalog: Option<Catalog>,
    /// Errors and warnings in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// Reads and checks `sources` as one catalog (a directory's files are merged; a name defined in
/// two files is an error). `now` only matters to warnings (a replacement that is already eol).
pub fn load(sources: &[Source<'_>], format: Format, now: DateTime<Utc>) -> Loaded {
    let mut diagnostics = diagnostic::Diagnostics::default();
    let mut drafts = Vec::new();
    for source in sources {
        drafts.extend(read::read_source(
            source.name,
            source.text,
            format,
            &mut diagnostics,
        ));
    }
    let drafts = validate::validate(drafts, now, &mut diagnostics);
    if drafts.is_empty() && !diagnostics.has_errors() {
        let at = Location {
            file: sources
                .first()
                .map_or_else(String::new, |source| source.name.to_string()),
            line: 1,
            column: 1,
        };
        diagnostics.error(&at, "", "the catalog has no images");
    }
    let catalog = (!diagnostics.has_errors()).then(|| Catalog::new(drafts));
    Loaded {
        catalog,
        diagnostics: diagnostics.into_sorted(),
    }
}

/// Who publishes to a repository: an entry (by index) and its variant (`None`: default image).
#[derive(Debug, Clone)]
struct RepositoryOwner {
    entry: usize,
    variant: Option<String>,
}

/// A valid catalog with its lookup indexes.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Sorted by canonical name (natural order: `python3.9` before `python3.11`).
    entries: Vec<CatalogEntry>,
    /// Where each entry's name is written, by the index of the entry.
    origins: Vec<Location>,
    /// Canonical names and aliases → entry index.
    by_name: HashMap<String, usize>,
    /// registry → repository → owner. Two levels so that a lookup borrows the reference's parts
    /// instead of building a key.
    by_repository: HashMap<String, HashMap<String, RepositoryOwner>>,
}

impl Catalog {
    fn new(mut drafts: Vec<read::Draft>) -> Catalog {
        drafts.sort_by(|a, b| resolve::natural_cmp(&a.entry.name, &b.entry.name));
        let mut entries = Vec::with_capacity(drafts.len());
        let mut origins = Vec::with_capacity(drafts.len());
        for draft in drafts {
            origins.push(draft.at.location(draft.at.name));
            entries.push(draft.entry);
        }
        let mut by_name = HashMap::with_capacity(entries.len() * 2);
        let mut by_repository: HashMap<String, HashMap<String, RepositoryOwner>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            by_name.insert(entry.name.clone(), index);
            for alias in &entry.aliases {
                by_name.insert(alias.clone(), index);
            }
            // Within an entry the default image comes first, then variants by name: the first
            // to claim a repository answers reverse lookups for it.
            for (variant, image) in entry.images() {
                by_repository
                    .entry(image.registry().to_string())
                    .or_default()
                    .entry(image.repository().to_string())
                    .or_insert_with(|| RepositoryOwner {
                        entry: index,
                        variant: variant.map(str::to_string),
                    });
            }
        }
        Catalog {
            entries,
            origins,
            by_name,
            by_repository,
        }
    }

    /// Every entry, by canonical name.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry a canonical name or an alias names.
    pub fn get(&self, name_or_alias: &str) -> Option<&CatalogEntry> {
        self.by_name
            .get(name_or_alias)
            .map(|index| &self.entries[*index])
    }

    /// Where an entry's name is written.
    pub fn origin(&self, name: &str) -> Option<&Location> {
        self.by_name.get(name).map(|index| &self.origins[*index])
    }

    /// The entry and variant whose repository `reference` points into, ignoring its tag and
    /// digest; the variant is `None` for an entry's default image.
    pub fn owner_of(&self, reference: &ImageRef) -> Option<(&CatalogEntry, Option<&str>)> {
        let owner = self
            .by_repository
            .get(reference.registry())?
            .get(reference.repository())?;
        Some((&self.entries[owner.entry], owner.variant.as_deref()))
    }

    /// Up to three canonical names close to `name` (aliases count, answered by their entry).
    pub fn suggestions(&self, name: &str) -> Vec<String> {
        let candidates = self.by_name.keys().map(String::as_str);
        let mut suggestions: Vec<String> = Vec::new();
        for candidate in suggest::closest(name, candidates, usize::MAX) {
            if let Some(entry) = self.get(candidate)
                && !suggestions.contains(&entry.name)
            {
                suggestions.push(entry.name.clone());
                if suggestions.len() == suggest::SUGGESTIONS_MAX {
                    break;
                }
            }
        }
        suggestions
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod moment_tests {
    use super::parse_moment;

    #[test]
    fn moments_as_typed() {
        let cases = [
            ("2027-01-01", "2027-01-01T00:00:00+00:00"),
            ("2027-01-01T09:30:00Z", "2027-01-01T09:30:00+00:00"),
            ("2027-01-01T11:30:00+02:00", "2027-01-01T09:30:00+00:00"),
            ("2027-1-1", "error"),
            ("tomorrow", "error"),
            ("2027-02-30", "error"),
        ];
        for (text, expect) in cases {
            let got = parse_moment(text).map_or_else(|_| "error".to_string(), |m| m.to_rfc3339());
            assert_eq!(got, expect, "{text}");
        }
    }
}
