//! Freshness: which images in scope are stale and why (their base moved, they are too old, their
//! OS is at end of life, their base is retired), and the rebuild plan that orders them in waves
//! by lineage so that no child is rebuilt on a base that is itself about to be rebuilt.
//!
//! Pure: the caller reads [`Facts`] from the store and passes `now`.
//!
//! Scope: every platform image at a catalog entry's channel tags (per variant), and every image
//! at a live tag of a repository outside the catalog whose lineage reaches an image of a catalog
//! entry. Tags of a catalog repository that are not channels (dated, pinned) are history, not
//! what the platform offers, and are left out.

pub mod oslife;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::catalog::{Catalog, State};
use crate::osrelease::OsIdentity;
use crate::reference::{Digest, ImageRef, Tag};
pub use oslife::{LifecycleSource, OsLifecycle};

/// How deep a base chain is followed (a cycle in bad data must not hang a pass).
const CHAIN_DEPTH_MAX: usize = 64;

/// What the store knows, as the freshness questions need it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub images: Vec<ImageFacts>,
    /// Index digest → its runnable platform images (attestations left out), with platforms.
    pub indexes: Vec<(Digest, Vec<(Digest, String)>)>,
    /// Live tags and where they point now.
    pub tags: Vec<TagFacts>,
    /// Every time a tag was seen to move (what a base's channel pointed at before).
    pub moves: Vec<TagMove>,
}

/// One platform image.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub digest: Digest,
    /// `os/architecture[/variant]`: how an index's child is matched to a moved base.
    pub platform: String,
    /// The config's `created`, as written (it may be wrong: see [`AgeSource`]).
    pub created: Option<DateTime<Utc>>,
    /// When berth first saw the digest.
    pub first_seen: DateTime<Utc>,
    pub os_id: Option<OsIdentity>,
    /// The nearest base by layer lineage.
    pub base: Option<Digest>,
    /// The layer chain's key: images with equal keys are twins, one image for lineage.
    pub chain_key: Option<String>,
}

/// A live tag.
#[derive(Debug, Clone)]
pub struct TagFacts {
    /// `registry/repository:tag`.
    pub reference: ImageRef,
    /// Where it points (an index or an image manifest).
    pub digest: Digest,
    /// Since when it has pointed there.
    pub since: DateTime<Utc>,
}

/// A tag seen to move from one digest to another.
#[derive(Debug, Clone)]
pub struct TagMove {
    pub reference: ImageRef,
    pub from: Digest,
    pub to: Digest,
    pub at: DateTime<Utc>,
}

/// The operator's settings for the stale questions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Images older than this are `too-old`, unless their catalog entry sets its own
    /// `max_age`. `None`: age alone never makes an image stale.
    pub max_age: Option<Duration>,
    /// An OS whose end of life is at most this far away is reported (`warning: true`).
    pub eol_warning: Duration,
    /// Rows that add to or override berth's lifecycle table.
    pub os_lifecycle: Vec<OsLifecycle>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_age: None,
            eol_warning: Duration::from_secs(90 * 86_400),
            os_lifecycle: Vec::new(),
        }
    }
}

/// The stale images in scope, and how many images were looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Images in scope.
    pub checked: usize,
    pub stale: Vec<StaleImage>,
}

/// An image in scope with at least one reason to rebuild it.
#[derive(Debug, Clone, Serialize)]
pub struct StaleImage {
    /// The tag it is published at (a catalog channel, or a live tag outside the catalog).
    pub reference: ImageRef,
    pub digest: Digest,
    pub platform: String,
    /// The catalog entry it belongs to, if any, and the variant (`None`: the default image).
    pub entry: Option<String>,
    pub variant: Option<String>,
    pub channel: Tag,
    /// Other live tags in scope at the same digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<ImageRef>,
    pub reasons: Vec<Reason>,
    /// Its bases by lineage, nearest first (what the plan orders by).
    #[serde(skip)]
    pub ancestors: Vec<Digest>,
}

/// Why an image should be rebuilt, with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// Built on `base`, which the base's channel no longer points at: it points at `now`.
    BaseMoved {
        base: Digest,
        /// The base's channel (or the tag that pointed at `base`).
        channel: ImageRef,
        now: Digest,
        /// When berth saw the channel leave `base` (its current digest's start when unknown).
        since: DateTime<Utc>,
    },
    /// Older than the maximum age.
    TooOld {
        age_days: i64,
        max_age_days: u64,
        /// The moment the age is counted from.
        from: DateTime<Utc>,
        source: AgeSource,
    },
    /// The image's OS is at or near its end of life.
    OsEol {
        os: String,
        eol_on: NaiveDate,
        /// `true`: not yet, but within the warning window.
        warning: bool,
        table: LifecycleSource,
    },
    /// Built on an image of a catalog entry that is deprecated or end of life.
    BaseRetired {
        base: Digest,
        entry: String,
        state: State,
        #[serde(skip_serializing_if = "Option::is_none")]
        replacement: Option<String>,
    },
}

impl Reason {
    /// The reason's name as in the JSON and the metrics (`base-moved`).
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::BaseMoved { .. } => "base-moved",
            Reason::TooOld { .. } => "too-old",
            Reason::OsEol { .. } => "os-eol",
            Reason::BaseRetired { .. } => "base-retired",
        }
    }
}

/// Where an image's age is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgeSource {
    /// The config's `created`.
    Created,
    /// When berth first saw the digest: the config's `created` was missing or cannot be right
    /// (before 2000, the 1970 epoch of reproducible builds, or in the future).
    FirstSeen,
}

/// Everything [`stale`] looks things up in, indexed once.
struct Index<'f> {
    images: HashMap<&'f Digest, &'f ImageFacts>,
    indexes: HashMap<&'f Digest, &'f [(Digest, String)]>,
    twins: HashMap<&'f str, Vec<&'f Digest>>,
    /// Canonical `registry/repository:tag` → the live tag.
    tags: HashMap<String, &'f TagFacts>,
    /// Platform image → the live tags resolving to it now.
    tagged_now: HashMap<&'f Digest, Vec<&'f TagFacts>>,
    /// Platform image → tags that pointed at it and moved away, with when.
    moved_from: HashMap<&'f Digest, Vec<(&'f ImageRef, DateTime<Utc>)>>,
}

impl<'f> Index<'f> {
    fn new(facts: &'f Facts) -> Index<'f> {
        let images: HashMap<_, _> = facts.images.iter().map(|i| (&i.digest, i)).collect();
        let indexes: HashMap<_, _> = facts
            .indexes
            .iter()
            .map(|(digest, children)| (digest, children.as_slice()))
            .collect();
        let mut twins: HashMap<&str, Vec<&Digest>> = HashMap::new();
        for image in &facts.images {
            if let Some(key) = &image.chain_key {
                twins.entry(key).or_default().push(&image.digest);
            }
        }
        let mut index = Index {
            images,
            indexes,
            twins,
            tags: HashMap::new(),
            tagged_now: HashMap::new(),
            moved_from: HashMap::new(),
        };
        for tag in &facts.tags {
            index.tags.insert(tag.reference.canonical(), tag);
            for image in index.expand(&tag.digest) {
                index.tagged_now.entry(image).or_default().push(tag);
            }
        }
        for moved in &facts.moves {
            for image in index.expand(&moved.from) {
                index
                    .moved_from
                    .entry(image)
                    .or_default()
                    .push((&moved.reference, moved.at));
            }
        }
        index
    }

    /// The platform images a manifest stands for: an index's children, or the image itself.
    fn expand(&self, digest: &'f Digest) -> Vec<&'f Digest> {
        match self.indexes.get(digest) {
            Some(children) => children.iter().map(|(child, _)| child).collect(),
            None => vec![digest],
        }
    }

    /// The platform image `digest` stands for on `platform`.
    fn on_platform(&self, digest: &'f Digest, platform: &str) -> Option<&'f Digest> {
        match self.indexes.get(digest) {
            Some(children) => children
                .iter()
                .find(|(_, child_platform)| child_platform == platform)
                .map(|(child, _)| child),
            None => Some(digest),
        }
    }

    /// `image` and its twins (the same layers under other manifests).
    fn twins_of(&self, image: &'f Digest) -> Vec<&'f Digest> {
        let key = self.images.get(image).and_then(|i| i.chain_key.as_deref());
        match key.and_then(|key| self.twins.get(key)) {
            Some(group) => group.clone(),
            None => vec![image],
        }
    }

    fn same_image(&self, a: &Digest, b: &Digest) -> bool {
        if a == b {
            return true;
        }
        let key = |d: &Digest| self.images.get(d).and_then(|i| i.chain_key.as_deref());
        matches!((key(a), key(b)), (Some(x), Some(y)) if x == y)
    }

    /// Bases by lineage, nearest first.
    fn ancestors(&self, image: &Digest) -> Vec<Digest> {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        let mut at = self.images.get(image).and_then(|i| i.base.as_ref());
        while let Some(base) = at {
            if chain.len() >= CHAIN_DEPTH_MAX || !seen.insert(base) {
                break;
            }
            chain.push(base.clone());
            at = self.images.get(base).and_then(|i| i.base.as_ref());
        }
        chain
    }

    /// Every reference that held `image` (or a twin), now or before.
    fn references_of(&self, image: &'f Digest) -> Vec<&'f ImageRef> {
        let mut references = Vec::new();
        for twin in self.twins_of(image) {
            for tag in self.tagged_now.get(twin).into_iter().flatten() {
                references.push(&tag.reference);
            }
            for (reference, _) in self.moved_from.get(twin).into_iter().flatten() {
                references.push(*reference);
            }
        }
        references
    }
}

/// The catalog entry (and variant) owning any reference that ever held `image`.
fn owner<'c>(
    catalog: &'c Catalog,
    index: &Index<'_>,
    image: &Digest,
) -> Option<(&'c crate::catalog::CatalogEntry, Option<&'c str>, ImageRef)> {
    let image = index.images.get_key_value(image)?.0;
    index
        .references_of(image)
        .into_iter()
        .find_map(|reference| {
            catalog
                .owner_of(reference)
                .map(|(entry, variant)| (entry, variant, reference.clone()))
        })
}

/// Whether the base `base` moved: its channel (the owning entry's channels, else any tag that
/// held it) no longer holds it or a twin, and holds another image of its platform.
fn base_moved(catalog: &Catalog, index: &Index<'_>, base: &Digest) -> Option<Reason> {
    let (base, facts) = index.images.get_key_value(base)?;
    let references = index.references_of(base);
    let channel_tags: Vec<&ImageRef> = match owner(catalog, index, base) {
        Some((entry, _, owned)) => {
            let channels: Vec<&ImageRef> = references
                .iter()
                .copied()
                .filter(|reference| {
                    reference.name() == owned.name()
                        && reference
                            .tag()
                            .is_some_and(|tag| entry.channels.contains(tag))
                })
                .collect();
            if channels.is_empty() {
                references
            } else {
                channels
            }
        }
        None => references,
    };
    let mut moved: Option<Reason> = None;
    for reference in channel_tags {
        let Some(tag) = index.tags.get(&reference.canonical()) else {
            continue; // the tag is gone: nothing points elsewhere
        };
        let Some(now) = index.on_platform(&tag.digest, &facts.platform) else {
            continue;
        };
        if index.same_image(now, base) {
            return None; // a channel still holds it
        }
        let since = index
            .twins_of(base)
            .into_iter()
            .flat_map(|twin| index.moved_from.get(twin).into_iter().flatten())
            .filter(|(from, _)| from.canonical() == reference.canonical())
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(tag.since);
        let newer = match &moved {
            Some(Reason::BaseMoved { since: earlier, .. }) => since > *earlier,
            _ => true,
        };
        if newer {
            moved = Some(Reason::BaseMoved {
                base: (*base).clone(),
                channel: reference.clone(),
                now: now.clone(),
                since,
            });
        }
    }
    moved
}

/// A `created` that cannot be right: before 2000 (the 1970 epoch of reproducible builds among
/// them) or after `now`.
fn plausible_created(created: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let floor = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    floor.is_some_and(|floor| created >= floor) && created <= now
}

fn days(duration: Duration) -> u64 {
    duration.as_secs() / 86_400
}

/// The stale images in scope at `now`, each with every reason that applies.
pub fn stale(catalog: &Catalog, facts: &Facts, settings: &Settings, now: DateTime<Utc>) -> Report {
    let index = Index::new(facts);
    let builtin = oslife::builtin();

    // Scope, by digest: (reference, entry, variant, channel, max_age), first reference wins.
    struct InScope<'c> {
        reference: ImageRef,
        entry: Option<&'c crate::catalog::CatalogEntry>,
        variant: Option<String>,
        also: Vec<ImageRef>,
    }
    let mut scope: BTreeMap<Digest, InScope<'_>> = BTreeMap::new();
    let mut add = |digest: &Digest, reference: ImageRef, entry, variant: Option<&str>| match scope
        .get_mut(digest)
    {
        Some(existing) => {
            if existing.reference != reference && !existing.also.contains(&reference) {
                existing.also.push(reference);
            }
        }
        None => {
            scope.insert(
                digest.clone(),
                InScope {
                    reference,
                    entry,
                    variant: variant.map(str::to_string),
                    also: Vec::new(),
                },
            );
        }
    };
    for entry in catalog.entries() {
        for (variant, name) in entry.images() {
            for channel in &entry.channels {
                let reference = name.at(channel);
                let Some(tag) = index.tags.get(&reference.canonical()) else {
                    continue;
                };
                for image in index.expand(&tag.digest) {
                    if index.images.contains_key(image) {
                        add(image, reference.clone(), Some(entry), variant);
                    }
                }
            }
        }
    }
    let mut tags: Vec<&TagFacts> = facts.tags.iter().collect();
    tags.sort_by_key(|tag| tag.reference.canonical());
    for tag in tags {
        if catalog.owner_of(&tag.reference).is_some() {
            continue;
        }
        for image in index.expand(&tag.digest) {
            if !index.images.contains_key(image) {
                continue;
            }
            let reaches_catalog = index
                .ancestors(image)
                .iter()
                .any(|base| owner(catalog, &index, base).is_some());
            if reaches_catalog {
                add(image, tag.reference.clone(), None, None);
            }
        }
    }

    let mut stale = Vec::new();
    let checked = scope.len();
    for (digest, in_scope) in scope {
        let facts = index.images[&digest];
        let ancestors = index.ancestors(&digest);
        let mut reasons = Vec::new();

        // A base's channel that moved to this image or to one of its own bases is not news:
        // the image is the new base (a fix layered on the old one), or built on it already.
        let on_new_base = |now: &Digest| {
            index.same_image(now, &digest) || ancestors.iter().any(|a| index.same_image(now, a))
        };
        if let Some(moved) = ancestors.iter().find_map(|base| {
            base_moved(catalog, &index, base)
                .filter(|moved| !matches!(moved, Reason::BaseMoved { now, .. } if on_new_base(now)))
        }) {
            reasons.push(moved);
        }

        let max_age = in_scope
            .entry
            .and_then(|entry| entry.max_age)
            .or(settings.max_age);
        if let Some(max_age) = max_age {
            let (from, source) = match facts.created {
                Some(created) if plausible_created(created, now) => (created, AgeSource::Created),
                _ => (facts.first_seen, AgeSource::FirstSeen),
            };
            let age = now.signed_duration_since(from);
            if age.to_std().is_ok_and(|age| age > max_age) {
                reasons.push(Reason::TooOld {
                    age_days: age.num_days(),
                    max_age_days: days(max_age),
                    from,
                    source,
                });
            }
        }

        if let Some(os) = &facts.os_id
            && let Some((row, table)) =
                oslife::lookup(os.as_str(), &settings.os_lifecycle, &builtin)
        {
            let today = now.date_naive();
            let warn_from = chrono::Duration::from_std(settings.eol_warning)
                .ok()
                .and_then(|window| row.eol_on.checked_sub_signed(window))
                .unwrap_or(row.eol_on);
            if today >= warn_from {
                reasons.push(Reason::OsEol {
                    os: os.as_str().to_string(),
                    eol_on: row.eol_on,
                    warning: today < row.eol_on,
                    table,
                });
            }
        }

        let retired = ancestors.iter().find_map(|base| {
            let (entry, _, _) = owner(catalog, &index, base)?;
            let state = entry.lifecycle.at(now).state;
            (state != State::Stable).then(|| Reason::BaseRetired {
                base: base.clone(),
                entry: entry.name.clone(),
                state,
                replacement: entry.lifecycle.replacement.clone(),
            })
        });
        reasons.extend(retired);

        if reasons.is_empty() {
            continue;
        }
        let channel = in_scope
            .reference
            .tag()
            .cloned()
            .unwrap_or_else(|| Tag::parse("latest").expect("a valid tag"));
        stale.push(StaleImage {
            reference: in_scope.reference,
            digest,
            platform: facts.platform.clone(),
            entry: in_scope.entry.map(|entry| entry.name.clone()),
            variant: in_scope.variant,
            channel,
            also: in_scope.also,
            reasons,
            ancestors,
        });
    }
    stale.sort_by(|a, b| {
        (a.reference.canonical(), &a.platform).cmp(&(b.reference.canonical(), &b.platform))
    });
    Report { checked, stale }
}

/// What to rebuild, in waves by lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub items: Vec<PlanItem>,
    /// How many waves the plan has (0 when there is nothing to rebuild).
    pub waves: u32,
}

/// One image to rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    pub reference: ImageRef,
    pub digest: Digest,
    pub platform: String,
    pub entry: Option<String>,
    pub variant: Option<String>,
    pub channel: Tag,
    /// The reasons' names (`base-moved`, ...); `berth stale` has the evidence.
    pub reasons: Vec<&'static str>,
    /// The build target that rebuilds it, when one is declared.
    pub target: Option<String>,
    /// 1 for images none of whose bases is in the plan; otherwise one more than the latest
    /// wave of its bases in the plan: it waits until their new digests reach their channels.
    pub wave: u32,
}

/// Orders `report`'s images into waves: an image whose base (at any depth) is itself in the plan
/// comes in a later wave than that base. `target` names each image's build target.
pub fn plan(report: &Report, target: impl Fn(&StaleImage) -> Option<String>) -> Plan {
    let mut order: Vec<&StaleImage> = report.stale.iter().collect();
    // A base's chain is a proper prefix of its child's: fewer ancestors first.
    order.sort_by_key(|image| image.ancestors.len());
    let mut wave_of: HashMap<&Digest, u32> = HashMap::new();
    let mut items = Vec::with_capacity(order.len());
    let mut placed: Vec<(&StaleImage, u32)> = Vec::with_capacity(order.len());
    // The new base a moved channel points at waits like an ancestor: when it is itself in the
    // plan, rebuilding on it now would build on what is about to be replaced.
    let moved_to = |image: &StaleImage| -> Option<Digest> {
        image.reasons.iter().find_map(|reason| match reason {
            Reason::BaseMoved { now, .. } => Some(now.clone()),
            _ => None,
        })
    };
    let in_plan: HashSet<&Digest> = report.stale.iter().map(|image| &image.digest).collect();
    let mut pending: Vec<&StaleImage> = order;
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|image| {
            let target_base = moved_to(image);
            let waits_on: Vec<&Digest> =
                image.ancestors.iter().chain(target_base.as_ref()).collect();
            let waits = waits_on.iter().any(|base| {
                in_plan.contains(*base) && !wave_of.contains_key(*base) && **base != image.digest
            });
            if waits {
                return true; // its base is placed first
            }
            let wave = 1 + waits_on
                .iter()
                .filter_map(|base| wave_of.get(*base))
                .max()
                .copied()
                .unwrap_or(0);
            wave_of.insert(&image.digest, wave);
            placed.push((image, wave));
            false
        });
        if pending.len() == before {
            // A cycle in bad data: place the rest in one more wave rather than loop.
            let last = wave_of.values().max().copied().unwrap_or(0) + 1;
            for image in pending.drain(..) {
                wave_of.insert(&image.digest, last);
                placed.push((image, last));
            }
        }
    }
    for (image, wave) in placed {
        items.push(PlanItem {
            reference: image.reference.clone(),
            digest: image.digest.clone(),
            platform: image.platform.clone(),
            entry: image.entry.clone(),
            variant: image.variant.clone(),
            channel: image.channel.clone(),
            reasons: image.reasons.iter().map(Reason::kind).collect(),
            target: target(image),
            wave,
        });
    }
    items.sort_by(|a, b| {
        (&a.target, a.wave, a.reference.canonical(), &a.platform).cmp(&(
            &b.target,
            b.wave,
            b.reference.canonical(),
            &b.platform,
        ))
    });
    let waves = items.iter().map(|item| item.wave).max().unwrap_or(0);
    Plan { items, waves }
}

/// What `berth stale --json` prints and `GET /api/v1/stale` answers (docs/freshness.md).
#[derive(Debug, Clone, Serialize)]
pub struct Listing<'r> {
    /// The moment decided at (RFC 3339, seconds).
    pub now: String,
    /// The date of berth's OS lifecycle table.
    pub os_table_date: &'static str,
    /// Images in scope.
    pub checked: usize,
    /// Stale images per reason (an image counts once per reason it has).
    pub counts: BTreeMap<&'static str, usize>,
    pub stale: &'r [StaleImage],
}

impl<'r> Listing<'r> {
    pub fn new(report: &'r Report, now: DateTime<Utc>) -> Listing<'r> {
        Listing {
            now: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            os_table_date: oslife::TABLE_DATE,
            checked: report.checked,
            counts: count_by_reason(report),
            stale: &report.stale,
        }
    }
}

/// How many stale images there are per reason (an image counts once per reason it has).
pub fn count_by_reason(report: &Report) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        ["base-moved", "too-old", "os-eol", "base-retired"]
            .into_iter()
            .map(|kind| (kind, 0))
            .collect();
    for image in &report.stale {
        let kinds: BTreeSet<&'static str> = image.reasons.iter().map(Reason::kind).collect();
        for kind in kinds {
            *counts.entry(kind).or_default() += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests;
