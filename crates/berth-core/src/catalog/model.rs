//! The catalog's typed model: entries, their lifecycle and its effective state at a moment,
//! variants, owners, and the repository names images are published under.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::Digest;
use crate::reference::{ImageRef, Tag};

/// Opaque settings handed untouched to the consumer of a variant (`extra` in the file).
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// One image the platform offers, under its canonical name.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// The name listings show and reverse resolution answers with (`python3.11`).
    pub name: String,
    pub description: Option<String>,
    /// Other names accepted when resolving (old spellings kept so configurations keep working);
    /// never listed.
    pub aliases: Vec<String>,
    pub lifecycle: Lifecycle,
    /// The image for consumers without a variant of their own.
    pub image: Option<ImageName>,
    /// Consumer name (`jobs`, `webservice`) → the image that consumer runs.
    pub variants: BTreeMap<String, Variant>,
    /// The catalog entry this image is built on, as declared (lineage checks come later).
    pub base: Option<String>,
    pub owners: Vec<Owner>,
    /// The moving tags this image is published under, as listed (`[staging, latest]`);
    /// `[latest]` unless the file says otherwise. Resolution uses `latest` when it is listed,
    /// else the first.
    pub channels: Vec<Tag>,
    /// Images of this entry older than this are stale (`too-old`); `None`: the freshness
    /// settings' default applies.
    pub max_age: Option<std::time::Duration>,
    /// The rebuild target (declared in the config's `rebuild.targets`) that rebuilds this
    /// entry's images when they go stale; `None`: the config's `default_target`.
    pub build: Option<String>,
}

impl CatalogEntry {
    /// Every repository this entry publishes to: the default image (variant `None`) and each
    /// variant's, in that order.
    pub fn images(&self) -> impl Iterator<Item = (Option<&str>, &ImageName)> {
        let default = self.image.iter().map(|image| (None, image));
        let variants = self
            .variants
            .iter()
            .map(|(name, variant)| (Some(name.as_str()), &variant.image));
        default.chain(variants)
    }
}

/// What consumers of one kind run.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub image: ImageName,
    pub extra: Extra,
}

/// A person or team answerable for an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub name: String,
    /// How to reach them (a mail address, a channel, a URL): free-form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
}

/// Where an image stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Offered and listed.
    #[default]
    Stable,
    /// Still works, listed only on request, with a notice pointing at the replacement.
    Deprecated,
    /// End of life: kept in the catalog so old references still resolve to a name, with a notice.
    Eol,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stable => "stable",
            State::Deprecated => "deprecated",
            State::Eol => "eol",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        match text {
            "stable" => Some(State::Stable),
            "deprecated" => Some(State::Deprecated),
            "eol" => Some(State::Eol),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The declared state and the dates that move it forward by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lifecycle {
    /// The state as written; dates can only move an entry further (stable → deprecated → eol).
    pub state: State,
    /// From this day on (00:00 UTC) the entry is at least deprecated.
    pub deprecated_on: Option<NaiveDate>,
    /// From this day on (00:00 UTC) the entry is eol.
    pub eol_on: Option<NaiveDate>,
    /// The canonical name of the entry users should move to.
    pub replacement: Option<String>,
}

/// The state an entry is in at a given moment, and what happens to it next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub state: State,
    /// The day the current state began, when a date says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
    /// The next scheduled change, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Transition>,
}

/// A scheduled change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub state: State,
    pub on: NaiveDate,
}

impl Lifecycle {
    /// The effective state at `now`: the declared state, moved forward by every date that has
    /// come (a date applies from 00:00 UTC on that day).
    pub fn at(&self, now: DateTime<Utc>) -> Effective {
        let today = now.date_naive();
        let mut state = self.state;
        let mut since = None;
        let mut next = None;
        let scheduled = [
            (State::Deprecated, self.deprecated_on),
            (State::Eol, self.eol_on),
        ];
        for (target, day) in scheduled {
            let Some(day) = day else { continue };
            if day <= today {
                if target >= state {
                    state = target;
                    since = Some(day);
                }
            } else if target > self.state && next.is_none() {
                next = Some(Transition {
                    state: target,
                    on: day,
                });
            }
        }
        Effective { state, since, next }
    }

    /// Whether the entry is or will be on its way out (so it should name a replacement).
    pub fn is_retiring(&self) -> bool {
        self.state != State::Stable || self.deprecated_on.is_some() || self.eol_on.is_some()
    }
}

/// A repository the catalog names: an image reference without tag or digest (the tags come from
/// the entry's channels). Equal for every spelling (`python` = `docker.io/library/python`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName(ImageRef);

/// Why a string is not an [`ImageName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageNameError {
    #[error(transparent)]
    Invalid(#[from] crate::reference::RefError),
    #[error("{0:?} has a tag or digest; name the repository only (tags come from `channels`)")]
    NotARepository(String),
}

impl ImageName {
    pub fn parse(text: &str) -> Result<ImageName, ImageNameError> {
        let reference = ImageRef::parse(text)?;
        let last_component = text.rsplit('/').next().unwrap_or(text);
        if text.contains('@') || last_component.contains(':') {
            return Err(ImageNameError::NotARepository(text.to_string()));
        }
        Ok(ImageName(reference))
    }

    pub fn registry(&self) -> &str {
        self.0.registry()
    }

    pub fn repository(&self) -> &str {
        self.0.repository()
    }

    /// `registry/repository`, fully qualified: `docker.io/library/python`.
    pub fn canonical(&self) -> String {
        self.0.name()
    }

    /// The short form people write: `python`, `quay.io/org/app`.
    pub fn familiar(&self) -> String {
        let familiar = self.0.familiar();
        // Parsing gave the reference the implied tag `latest` and no digest.
        familiar
            .strip_suffix(":latest")
            .map(str::to_string)
            .unwrap_or(familiar)
    }

    /// The reference to this repository at `tag`.
    pub fn at(&self, tag: &Tag) -> ImageRef {
        self.0.with_tag(tag.clone())
    }

    /// The reference to this repository by `digest` alone.
    pub fn at_digest(&self, digest: &Digest) -> ImageRef {
        self.0.with_digest_only(digest.clone())
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

impl Serialize for ImageName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.canonical())
    }
}

/// The channel every entry has unless it says otherwise.
pub fn default_channels() -> Vec<Tag> {
    match Tag::parse("latest") {
        Ok(tag) => vec![tag],
        Err(_) => unreachable!("`latest` is a valid tag"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// Evaluates `lifecycle` at each moment and compares `state[ since][ -> next@day]`.
    fn check(lifecycle: &Lifecycle, cases: &[(&str, &str)]) {
        for (moment, expect) in cases {
            let effective = lifecycle.at(at(moment));
            let mut got = effective.state.to_string();
            if let Some(since) = effective.since {
                got.push_str(&format!(" since {since}"));
            }
            if let Some(next) = effective.next {
                got.push_str(&format!(" -> {}@{}", next.state, next.on));
            }
            assert_eq!(&got, expect, "{lifecycle:?} at {moment}");
        }
    }

    #[test]
    fn dates_move_the_state_forward_by_themselves() {
        let scheduled = Lifecycle {
            state: State::Stable,
            deprecated_on: Some(day("2026-07-01")),
            eol_on: Some(day("2027-01-01")),
            replacement: Some("python3.12".into()),
        };
        check(
            &scheduled,
            &[
                ("2026-06-30T23:59:59Z", "stable -> deprecated@2026-07-01"),
                (
                    "2026-07-01T00:00:00Z",
                    "deprecated since 2026-07-01 -> eol@2027-01-01",
                ),
                (
                    "2026-12-31T23:59:59Z",
                    "deprecated since 2026-07-01 -> eol@2027-01-01",
                ),
                ("2027-01-01T00:00:00Z", "eol since 2027-01-01"),
                ("2030-01-01T00:00:00Z", "eol since 2027-01-01"),
            ],
        );
        let eol_only = Lifecycle {
            eol_on: Some(day("2027-01-01")),
            ..Lifecycle::default()
        };
        check(
            &eol_only,
            &[
                ("2026-12-31T12:00:00Z", "stable -> eol@2027-01-01"),
                ("2027-01-01T00:00:00Z", "eol since 2027-01-01"),
            ],
        );
        // A declared state is never moved back by a date still to come.
        let declared = Lifecycle {
            state: State::Deprecated,
            eol_on: Some(day("2027-01-01")),
            ..Lifecycle::default()
        };
        check(
            &declared,
            &[
                ("2026-01-01T00:00:00Z", "deprecated -> eol@2027-01-01"),
                ("2027-01-02T00:00:00Z", "eol since 2027-01-01"),
            ],
        );
        let already_eol = Lifecycle {
            state: State::Eol,
            deprecated_on: Some(day("2026-01-01")),
            ..Lifecycle::default()
        };
        check(
            &already_eol,
            &[
                ("2025-01-01T00:00:00Z", "eol"),
                ("2026-02-01T00:00:00Z", "eol"),
            ],
        );
    }

    #[test]
    fn image_names_are_repositories() {
        let name = ImageName::parse("docker.io/library/python").unwrap();
        assert_eq!(name, ImageName::parse("python").unwrap());
        assert_eq!(name.familiar(), "python");
        assert_eq!(name.canonical(), "docker.io/library/python");
        let local = ImageName::parse("127.0.0.1:5050/berth/base").unwrap();
        assert_eq!(local.familiar(), "127.0.0.1:5050/berth/base");
        assert_eq!(
            local.at(&Tag::parse("1").unwrap()).canonical(),
            "127.0.0.1:5050/berth/base:1"
        );
        for text in ["python:3.11", "127.0.0.1:5050/berth/base:1", "x@sha256:abc"] {
            assert!(ImageName::parse(text).is_err(), "{text}");
        }
    }
}
