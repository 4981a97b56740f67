//! Questions asked of a catalog at a moment: resolve a name to an image, find the name of an
//! image, list, show. The answers are `Serialize` structs: `berth catalog ... --json` and the
//! HTTP API print exactly these.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;

use super::Catalog;
use super::diagnostic::Location;
use super::model::{CatalogEntry, Effective, Extra, ImageName, Owner, State, Transition};
use crate::reference::{ImageRef, Tag};

/// The channel resolution uses when the entry publishes it and none is asked for.
const PREFERRED_CHANNEL: &str = "latest";

/// Why a question has no answer. Serialized as `{"error": code, "message": text, ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no image named {name:?}{}", did_you_mean(suggestions))]
    UnknownName {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("{name} has no variant {variant:?} and no default image; its variants: {}", variants.join(", "))]
    UnknownVariant {
        name: String,
        variant: String,
        variants: Vec<String>,
    },
    #[error("{name} has no default image; choose a variant: {}", variants.join(", "))]
    VariantRequired { name: String, variants: Vec<String> },
    #[error("{name} is not published under channel {channel:?}; its channels: {}", channels.join(", "))]
    UnknownChannel {
        name: String,
        channel: String,
        channels: Vec<String>,
    },
    #[error("{reference} is not an image of the catalog")]
    NotInCatalog { reference: String },
}

fn did_you_mean(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

impl ResolveError {
    /// A stable identifier for programs (`unknown_name`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::UnknownName { .. } => "unknown_name",
            ResolveError::UnknownVariant { .. } => "unknown_variant",
            ResolveError::VariantRequired { .. } => "variant_required",
            ResolveError::UnknownChannel { .. } => "unknown_channel",
            ResolveError::NotInCatalog { .. } => "not_in_catalog",
        }
    }
}

impl Serialize for ResolveError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("error", self.code())?;
        map.serialize_entry("message", &self.to_string())?;
        match self {
            ResolveError::UnknownName { name, suggestions } => {
                map.serialize_entry("name", name)?;
                map.serialize_entry("suggestions", suggestions)?;
            }
            ResolveError::UnknownVariant {
                name,
                variant,
                variants,
            } => {
                map.serialize_entry("name", name)?;
                map.serialize_entry("variant", variant)?;
                map.serialize_entry("variants", variants)?;
            }
            ResolveError::VariantRequired { name, variants } => {
                map.serialize_entry("name", name)?;
                map.serialize_entry("variants", variants)?;
            }
            ResolveError::UnknownChannel {
                name,
                channel,
                channels,
            } => {
                map.serialize_entry("name", name)?;
                map.serialize_entry("channel", channel)?;
                map.serialize_entry("channels", channels)?;
            }
            ResolveError::NotInCatalog { reference } => {
                map.serialize_entry("reference", reference)?;
            }
        }
        map.end()
    }
}

/// An entry's lifecycle at a moment: the effective state and the facts it follows from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleView {
    /// The effective state at the moment asked.
    pub state: State,
    /// The state as written in the catalog.
    pub declared: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Transition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eol_on: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// One sentence for people: "deprecated since 2026-07-01, end of life on 2027-01-01; use
    /// python3.12". Absent for a stable entry with nothing scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl LifecycleView {
    fn new(entry: &CatalogEntry, now: DateTime<Utc>) -> LifecycleView {
        let lifecycle = &entry.lifecycle;
        let effective = lifecycle.at(now);
        LifecycleView {
            state: effective.state,
            declared: lifecycle.state,
            since: effective.since,
            next: effective.next,
            deprecated_on: lifecycle.deprecated_on,
            eol_on: lifecycle.eol_on,
            replacement: lifecycle.replacement.clone(),
            notice: notice(&effective, lifecycle.replacement.as_deref()),
        }
    }
}

fn notice(effective: &Effective, replacement: Option<&str>) -> Option<String> {
    let mut text = match effective.state {
        State::Stable => match effective.next {
            None => return None,
            Some(Transition {
                state: State::Deprecated,
                on,
            }) => format!("deprecated from {on}"),
            Some(Transition { on, .. }) => format!("end of life from {on}"),
        },
        State::Deprecated => {
            let mut text = match effective.since {
                Some(since) => format!("deprecated since {since}"),
                None => "deprecated".to_string(),
            };
            if let Some(next) = effective.next {
                text.push_str(&format!(", end of life from {}", next.on));
            }
            text
        }
        State::Eol => match effective.since {
            Some(since) => format!("end of life since {since}"),
            None => "end of life".to_string(),
        },
    };
    if let Some(replacement) = replacement {
        text.push_str(&format!("; use {replacement}"));
    }
    Some(text)
}

/// `berth catalog list`: canonical names only, stable first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    pub images: Vec<ListItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListItem {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub lifecycle: LifecycleView,
    /// Whether the entry has an image for consumers without a variant.
    pub default_image: bool,
    pub variants: Vec<String>,
}

/// `berth catalog show NAME`: everything about one entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryView {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub aliases: Vec<String>,
    pub owners: Vec<Owner>,
    pub lifecycle: LifecycleView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageName>,
    pub variants: BTreeMap<String, VariantView>,
    pub channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Entries that declare this one as their base.
    pub base_of: Vec<String>,
    /// Where the entry is written.
    pub source: Location,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantView {
    pub image: ImageName,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: Extra,
}

/// `berth catalog resolve NAME`: the image to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    /// The canonical name (the request may have used an alias).
    pub name: String,
    pub requested: String,
    /// The variant whose image was chosen; absent when it is the default image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The repository at the channel's tag.
    pub image: ImageRef,
    pub repository: ImageName,
    pub channel: String,
    pub lifecycle: LifecycleView,
    /// The variant's opaque settings, for its consumer.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: Extra,
}

/// `berth catalog which REF`: the catalog name of an image reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Which {
    /// The reference asked about, fully qualified.
    pub reference: ImageRef,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The channel the reference's tag is, when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub lifecycle: LifecycleView,
}

/// What a name and variant resolve to, borrowed from the catalog (no allocation).
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'c> {
    pub entry: &'c CatalogEntry,
    /// `None` when the default image was chosen.
    pub variant: Option<&'c str>,
    pub image: &'c ImageName,
    pub extra: Option<&'c Extra>,
}

impl Catalog {
    /// The entry `name` (canonical or alias) names, or an error with the closest names.
    pub fn find(&self, name: &str) -> Result<&CatalogEntry, ResolveError> {
        self.get(name).ok_or_else(|| ResolveError::UnknownName {
            name: name.to_string(),
            suggestions: self.suggestions(name),
        })
    }

    /// Picks the image for `variant`: the variant's own when it has one, else the default image.
    /// Without a variant: the default image, or the only variant when there is just one.
    pub fn lookup(&self, name: &str, variant: Option<&str>) -> Result<Resolved<'_>, ResolveError> {
        let entry = self.find(name)?;
        if let Some(wanted) = variant
            && let Some((variant_name, found)) = entry.variants.get_key_value(wanted)
        {
            return Ok(Resolved {
                entry,
                variant: Some(variant_name.as_str()),
                image: &found.image,
                extra: Some(&found.extra),
            });
        }
        if let Some(image) = &entry.image {
            return Ok(Resolved {
                entry,
                variant: None,
                image,
                extra: None,
            });
        }
        let variants = || entry.variants.keys().cloned().collect::<Vec<_>>();
        match variant {
            Some(wanted) => Err(ResolveError::UnknownVariant {
                name: entry.name.clone(),
                variant: wanted.to_string(),
                variants: variants(),
            }),
            None => match entry.variants.iter().next() {
                Some((only, found)) if entry.variants.len() == 1 => Ok(Resolved {
                    entry,
                    variant: Some(only.as_str()),
                    image: &found.image,
                    extra: Some(&found.extra),
                }),
                _ => Err(ResolveError::VariantRequired {
                    name: entry.name.clone(),
                    variants: variants(),
                }),
            },
        }
    }

    /// Name or alias (+ variant, + channel) → the image reference to run, with its lifecycle at
    /// `now`. The channel defaults to `latest` when the entry publishes it, else its first.
    pub fn resolve(
        &self,
        name: &str,
        variant: Option<&str>,
        channel: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Resolution, ResolveError> {
        let resolved = self.lookup(name, variant)?;
        let entry = resolved.entry;
        let channel = pick_channel(entry, channel)?;
        Ok(Resolution {
            name: entry.name.clone(),
            requested: name.to_string(),
            variant: resolved.variant.map(str::to_string),
            image: resolved.image.at(channel),
            repository: resolved.image.clone(),
            channel: channel.to_string(),
            lifecycle: LifecycleView::new(entry, now),
            extra: resolved.extra.cloned().unwrap_or_default(),
        })
    }

    /// Any reference into a catalog repository (any spelling, any tag or digest) → its canonical
    /// name and variant.
    pub fn which(&self, reference: &ImageRef, now: DateTime<Utc>) -> Result<Which, ResolveError> {
        let (entry, variant) =
            self.owner_of(reference)
                .ok_or_else(|| ResolveError::NotInCatalog {
                    reference: reference.canonical(),
                })?;
        let channel = reference
            .tag()
            .filter(|tag| entry.channels.contains(tag))
            .map(Tag::to_string);
        Ok(Which {
            reference: reference.clone(),
            name: entry.name.clone(),
            variant: variant.map(str::to_string),
            channel,
            lifecycle: LifecycleView::new(entry, now),
        })
    }

    /// Canonical names, stable first, then deprecated, then eol (each in natural name order);
    /// without `all`, only the entries stable at `now`.
    pub fn list(&self, all: bool, now: DateTime<Utc>) -> Listing {
        let mut images: Vec<ListItem> = self
            .entries()
            .iter()
            .map(|entry| ListItem {
                name: entry.name.clone(),
                description: entry.description.clone(),
                lifecycle: LifecycleView::new(entry, now),
                default_image: entry.image.is_some(),
                variants: entry.variants.keys().cloned().collect(),
            })
            .filter(|item| all || item.lifecycle.state == State::Stable)
            .collect();
        // Entries are already in natural name order; a stable sort keeps it within each state.
        images.sort_by_key(|item| item.lifecycle.state);
        Listing { images }
    }

    /// Everything about the entry `name` (canonical or alias) at `now`.
    pub fn show(&self, name: &str, now: DateTime<Utc>) -> Result<EntryView, ResolveError> {
        let entry = self.find(name)?;
        let base_of = self
            .entries()
            .iter()
            .filter(|other| other.base.as_deref() == Some(entry.name.as_str()))
            .map(|other| other.name.clone())
            .collect();
        let source = self
            .origin(&entry.name)
            .cloned()
            .unwrap_or_else(|| unreachable!("every entry has an origin"));
        Ok(EntryView {
            name: entry.name.clone(),
            description: entry.description.clone(),
            aliases: entry.aliases.clone(),
            owners: entry.owners.clone(),
            lifecycle: LifecycleView::new(entry, now),
            image: entry.image.clone(),
            variants: entry
                .variants
                .iter()
                .map(|(name, variant)| {
                    let view = VariantView {
                        image: variant.image.clone(),
                        extra: variant.extra.clone(),
                    };
                    (name.clone(), view)
                })
                .collect(),
            channels: entry.channels.iter().map(Tag::to_string).collect(),
            base: entry.base.clone(),
            base_of,
            source,
        })
    }
}

fn pick_channel<'e>(
    entry: &'e CatalogEntry,
    wanted: Option<&str>,
) -> Result<&'e Tag, ResolveError> {
    let found = match wanted {
        Some(wanted) => entry.channels.iter().find(|tag| tag.as_str() == wanted),
        None => entry
            .channels
            .iter()
            .find(|tag| tag.as_str() == PREFERRED_CHANNEL)
            .or_else(|| entry.channels.first()),
    };
    found.ok_or_else(|| ResolveError::UnknownChannel {
        name: entry.name.clone(),
        channel: wanted.unwrap_or(PREFERRED_CHANNEL).to_string(),
        channels: entry.channels.iter().map(Tag::to_string).collect(),
    })
}

/// Compares names as people expect: runs of digits by value (`python3.9` < `python3.11`),
/// the rest by character; equal values fall back to plain string order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut left, mut right) = (a.as_bytes(), b.as_bytes());
    loop {
        match (left.first(), right.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let left_len = left.iter().take_while(|c| c.is_ascii_digit()).count();
                let right_len = right.iter().take_while(|c| c.is_ascii_digit()).count();
                let (left_digits, left_rest) = left.split_at(left_len);
                let (right_digits, right_rest) = right.split_at(right_len);
                let left_value = strip_zeros(left_digits);
                let right_value = strip_zeros(right_digits);
                let order = left_value
                    .len()
                    .cmp(&right_value.len())
                    .then_with(|| left_value.cmp(right_value));
                if order != Ordering::Equal {
                    return order;
                }
                (left, right) = (left_rest, right_rest);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (left, right) = (&left[1..], &right[1..]);
            }
        }
    }
}

fn strip_zeros(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|d| **d == b'0').count();
    &digits[zeros..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec![
            "python3.11",
            "python3.9",
            "node20",
            "node18",
            "php8.2",
            "a010",
            "a9",
            "bookworm",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "a9",
                "a010",
                "bookworm",
                "node18",
                "node20",
                "php8.2",
                "python3.9",
                "python3.11"
            ]
        );
    }
}
