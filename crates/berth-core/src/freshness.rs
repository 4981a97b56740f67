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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt as _};

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
    /// Its bases by lineage that are stale themselves, nearest first (what the plan orders by).
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

/// An image's place in [`Index::images`]: every question below is asked by number, so a
/// pass over 100,000 images hashes each digest once.
type Id = u32;

/// Everything [`stale`] looks things up in, indexed once.
struct Index<'f> {
    images: Vec<&'f ImageFacts>,
    ids: HashMap<&'f Digest, Id>,
    /// The nearest base, when the store knows it as an image.
    bases: Vec<Option<Id>>,
    /// Twin group of each image (equal layer chains share one) and the members of each group.
    group: Vec<u32>,
    groups: Vec<Vec<Id>>,
    indexes: HashMap<&'f Digest, &'f [(Digest, String)]>,
    /// `registry/repository:tag` → the live tag.
    tags: HashMap<&'f ImageRef, &'f TagFacts>,
    /// Image → the live tags resolving to it now.
    tagged_now: Vec<Vec<&'f TagFacts>>,
    /// Image → tags that pointed at it and moved away, with when.
    moved_from: Vec<Vec<(&'f ImageRef, DateTime<Utc>)>>,
}

impl<'f> Index<'f> {
    fn new(facts: &'f Facts) -> Index<'f> {
        let mut images: Vec<&ImageFacts> = Vec::with_capacity(facts.images.len());
        let mut ids: HashMap<&Digest, Id> = HashMap::with_capacity(facts.images.len());
        for image in &facts.images {
            if !ids.contains_key(&image.digest) {
                ids.insert(&image.digest, images.len() as Id);
                images.push(image);
            }
        }
        let bases = images
            .iter()
            .map(|image| image.base.as_ref().and_then(|base| ids.get(base).copied()))
            .collect();
        let mut by_key: HashMap<&str, u32> = HashMap::new();
        let mut groups: Vec<Vec<Id>> = Vec::new();
        let mut group = Vec::with_capacity(images.len());
        for (id, image) in images.iter().enumerate() {
            let number = match image.chain_key.as_deref() {
                Some(key) => *by_key.entry(key).or_insert_with(|| {
                    groups.push(Vec::new());
                    (groups.len() - 1) as u32
                }),
                None => {
                    groups.push(Vec::new());
                    (groups.len() - 1) as u32
                }
            };
            groups[number as usize].push(id as Id);
            group.push(number);
        }
        let indexes: HashMap<_, _> = facts
            .indexes
            .iter()
            .map(|(digest, children)| (digest, children.as_slice()))
            .collect();
        let mut index = Index {
            tagged_now: vec![Vec::new(); images.len()],
            moved_from: vec![Vec::new(); images.len()],
            images,
            ids,
            bases,
            group,
            groups,
            indexes,
            tags: HashMap::with_capacity(facts.tags.len()),
        };
        for tag in &facts.tags {
            index.tags.insert(&tag.reference, tag);
            let images: Vec<Id> = index.expand(&tag.digest).collect();
            for image in images {
                index.tagged_now[image as usize].push(tag);
            }
        }
        for moved in &facts.moves {
            let images: Vec<Id> = index.expand(&moved.from).collect();
            for image in images {
                index.moved_from[image as usize].push((&moved.reference, moved.at));
            }
        }
        index
    }

    fn facts(&self, id: Id) -> &'f ImageFacts {
        self.images[id as usize]
    }

    /// The platform images a manifest stands for (an index's children, or the image itself),
    /// those the store knows.
    fn expand<'s>(&'s self, digest: &'s Digest) -> impl Iterator<Item = Id> + 's {
        let children = self.indexes.get(digest).copied();
        let single = match children {
            Some(_) => None,
            None => self.ids.get(digest).copied(),
        };
        children
            .into_iter()
            .flatten()
            .filter_map(|(child, _)| self.ids.get(child).copied())
            .chain(single)
    }

    /// The platform image `digest` stands for on `platform`.
    fn on_platform(&self, digest: &Digest, platform: &str) -> Option<Id> {
        match self.indexes.get(digest) {
            Some(children) => children
                .iter()
                .find(|(_, child_platform)| child_platform == platform)
                .and_then(|(child, _)| self.ids.get(child).copied()),
            None => self.ids.get(digest).copied(),
        }
    }

    /// `image` and its twins (the same layers under other manifests).
    fn twins_of(&self, image: Id) -> &[Id] {
        &self.groups[self.group[image as usize] as usize]
    }

    fn same_image(&self, a: Id, b: Id) -> bool {
        self.group[a as usize] == self.group[b as usize]
    }

    /// Bases by lineage, nearest first (at most [`CHAIN_DEPTH_MAX`]: bad data may loop).
    fn ancestors(&self, image: Id) -> Vec<Id> {
        self.walk_bases(image).collect()
    }

    /// [`Index::ancestors`] without collecting them.
    fn walk_bases(&self, image: Id) -> impl Iterator<Item = Id> + '_ {
        std::iter::successors(self.bases[image as usize], |&base| {
            self.bases[base as usize]
        })
        .take(CHAIN_DEPTH_MAX)
    }

    /// Every reference that held `image` (or a twin), now or before.
    fn references_of(&self, image: Id) -> Vec<&'f ImageRef> {
        let mut references = Vec::new();
        for &twin in self.twins_of(image) {
            for tag in &self.tagged_now[twin as usize] {
                references.push(&tag.reference);
            }
            for (reference, _) in &self.moved_from[twin as usize] {
                references.push(*reference);
            }
        }
        references
    }
}

/// The catalog entry (and variant) owning a reference, and the reference.
type Owner<'c, 'f> = (
    &'c crate::catalog::CatalogEntry,
    Option<&'c str>,
    &'f ImageRef,
);

/// What [`stale`] asks about a base many times (every image built on it asks again), asked once.
/// Keyed maps, not one slot per image: only bases are asked about, and a slot holding a
/// [`Reason`] for each of 100,000 images cost 28 MB of a pass's peak.
struct Memo<'c, 'f> {
    catalog: &'c Catalog,
    owners: HashMap<Id, Option<Owner<'c, 'f>>>,
    moved: HashMap<Id, Option<(Reason, Id)>>,
}

impl<'c, 'f> Memo<'c, 'f> {
    fn new(catalog: &'c Catalog) -> Memo<'c, 'f> {
        Memo {
            catalog,
            owners: HashMap::new(),
            moved: HashMap::new(),
        }
    }

    /// The catalog entry owning any reference that ever held `image`.
    fn owner(&mut self, index: &Index<'f>, image: Id) -> Option<Owner<'c, 'f>> {
        if let Some(&known) = self.owners.get(&image) {
            return known;
        }
        let catalog = self.catalog;
        let found = index
            .references_of(image)
            .into_iter()
            .find_map(|reference| {
                catalog
                    .owner_of(reference)
                    .map(|(entry, variant)| (entry, variant, reference))
            });
        self.owners.insert(image, found);
        found
    }

    /// Whether `base` moved: the image its channel holds now (the reason is
    /// [`Memo::moved_reason`]'s, cloned only for the image that reports it).
    fn base_moved(&mut self, index: &Index<'f>, base: Id) -> Option<Id> {
        if !self.moved.contains_key(&base) {
            let moved = self.decide_base_moved(index, base);
            self.moved.insert(base, moved);
        }
        self.moved
            .get(&base)
            .and_then(|moved| moved.as_ref().map(|(_, now)| *now))
    }

    /// The `base-moved` reason of a base [`Memo::base_moved`] found moved.
    fn moved_reason(&self, base: Id) -> Option<Reason> {
        self.moved
            .get(&base)
            .and_then(|moved| moved.as_ref().map(|(reason, _)| reason.clone()))
    }

    /// Whether the base `base` moved: its channel (the owning entry's channels, else any tag
    /// that held it) no longer holds it or a twin, and holds another image of its platform.
    fn decide_base_moved(&mut self, index: &Index<'f>, base: Id) -> Option<(Reason, Id)> {
        let facts = index.facts(base);
        let references = index.references_of(base);
        let channel_tags: Vec<&ImageRef> = match self.owner(index, base) {
            Some((entry, _, owned)) => {
                let channels: Vec<&ImageRef> = references
                    .iter()
                    .copied()
                    .filter(|reference| {
                        reference.registry() == owned.registry()
                            && reference.repository() == owned.repository()
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
        let mut moved: Option<(Reason, Id)> = None;
        for reference in channel_tags {
            let Some(tag) = index.tags.get(reference) else {
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
                .iter()
                .flat_map(|&twin| &index.moved_from[twin as usize])
                .filter(|(from, _)| *from == reference)
                .map(|(_, at)| *at)
                .max()
                .unwrap_or(tag.since);
            let newer = match &moved {
                Some((Reason::BaseMoved { since: earlier, .. }, _)) => since > *earlier,
                _ => true,
            };
            if newer {
                let reason = Reason::BaseMoved {
                    base: facts.digest.clone(),
                    channel: reference.clone(),
                    now: index.facts(now).digest.clone(),
                    since,
                };
                moved = Some((reason, now));
            }
        }
        moved
    }
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
    let mut memo = Memo::new(catalog);

    // Scope, by image: the first reference wins, the others are listed in `also`.
    struct InScope<'c, 'r> {
        reference: std::borrow::Cow<'r, ImageRef>,
        entry: Option<&'c crate::catalog::CatalogEntry>,
        variant: Option<&'c str>,
        also: Vec<std::borrow::Cow<'r, ImageRef>>,
    }
    let mut order: Vec<(Id, InScope<'_, '_>)> = Vec::new();
    let mut position: Vec<Option<usize>> = vec![None; index.images.len()];
    let mut add = |image: Id, reference, entry, variant| match position[image as usize] {
        Some(at) => {
            let existing = &mut order[at].1;
            if existing.reference != reference && !existing.also.contains(&reference) {
                existing.also.push(reference);
            }
        }
        None => {
            position[image as usize] = Some(order.len());
            order.push((
                image,
                InScope {
                    reference,
                    entry,
                    variant,
                    also: Vec::new(),
                },
            ));
        }
    };
    for entry in catalog.entries() {
        for (variant, name) in entry.images() {
            for channel in &entry.channels {
                let reference = name.at(channel);
                let Some(tag) = index.tags.get(&reference) else {
                    continue;
                };
                for image in index.expand(&tag.digest) {
                    let reference = std::borrow::Cow::Owned(reference.clone());
                    add(image, reference, Some(entry), variant);
                }
            }
        }
    }
    // The store lists tags sorted, so the first reference of an image is the same every time.
    for tag in &facts.tags {
        if catalog.owner_of(&tag.reference).is_some() {
            continue;
        }
        for image in index.expand(&tag.digest) {
            let reaches_catalog = index
                .walk_bases(image)
                .any(|base| memo.owner(&index, base).is_some());
            if reaches_catalog {
                add(
                    image,
                    std::borrow::Cow::Borrowed(&tag.reference),
                    None,
                    None,
                );
            }
        }
    }

    let mut stale = Vec::new();
    let mut is_stale = vec![false; index.images.len()];
    let checked = order.len();
    let mut os_rows: HashMap<&str, Option<(&OsLifecycle, LifecycleSource)>> = HashMap::new();
    let warning = chrono::Duration::from_std(settings.eol_warning).ok();
    for (image, in_scope) in order {
        let facts = index.facts(image);
        let ancestors = index.ancestors(image);
        let mut reasons = Vec::new();

        // A base's channel that moved to this image or to one of its own bases is not news:
        // the image is the new base (a fix layered on the old one), or built on it already.
        let on_new_base = |now: Id| {
            index.same_image(now, image) || ancestors.iter().any(|&a| index.same_image(now, a))
        };
        if let Some(moved) = ancestors
            .iter()
            .copied()
            .find(|&base| {
                memo.base_moved(&index, base)
                    .is_some_and(|now| !on_new_base(now))
            })
            .and_then(|base| memo.moved_reason(base))
        {
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
            && let Some((row, table)) = *os_rows
                .entry(os.as_str())
                .or_insert_with(|| oslife::lookup(os.as_str(), &settings.os_lifecycle, &builtin))
        {
            let today = now.date_naive();
            let warn_from = warning
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

        let retired = ancestors.iter().find_map(|&base| {
            let (entry, _, _) = memo.owner(&index, base)?;
            let state = entry.lifecycle.at(now).state;
            (state != State::Stable).then(|| Reason::BaseRetired {
                base: index.facts(base).digest.clone(),
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
        is_stale[image as usize] = true;
        stale.push((
            StaleImage {
                reference: in_scope.reference.into_owned(),
                digest: facts.digest.clone(),
                platform: facts.platform.clone(),
                entry: in_scope.entry.map(|entry| entry.name.clone()),
                variant: in_scope.variant.map(str::to_string),
                channel,
                also: in_scope.also.into_iter().map(|r| r.into_owned()).collect(),
                reasons,
                ancestors: Vec::new(),
            },
            ancestors,
        ));
    }
    // The plan needs only the bases that are themselves stale.
    let mut stale: Vec<StaleImage> = stale
        .into_iter()
        .map(|(mut image, ancestors)| {
            image.ancestors = ancestors
                .into_iter()
                .filter(|&base| is_stale[base as usize])
                .map(|base| index.facts(base).digest.clone())
                .collect();
            image
        })
        .collect();
    stale.sort_by_cached_key(|image| (image.reference.canonical(), image.platform.clone()));
    Report { checked, stale }
}

/// What to rebuild, in waves by lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Plan<'r> {
    pub items: Vec<PlanItem<'r>>,
    /// How many waves the plan has (0 when there is nothing to rebuild).
    pub waves: u32,
}

/// One image to rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem<'r> {
    pub reference: &'r ImageRef,
    pub digest: &'r Digest,
    pub platform: &'r str,
    pub entry: Option<&'r str>,
    pub variant: Option<&'r str>,
    pub channel: &'r Tag,
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
pub fn plan<'r>(report: &'r Report, target: impl Fn(&StaleImage) -> Option<String>) -> Plan<'r> {
    let stale = &report.stale;
    let position: HashMap<&Digest, usize> = stale
        .iter()
        .enumerate()
        .map(|(at, image)| (&image.digest, at))
        .collect();
    // What each image waits on, as positions in the plan: its stale bases, and the new base a
    // moved channel points at when that is itself in the plan (rebuilding on it now would build
    // on what is about to be replaced).
    let waits_on: Vec<Vec<usize>> = stale
        .iter()
        .enumerate()
        .map(|(at, image)| {
            let moved_to = image.reasons.iter().find_map(|reason| match reason {
                Reason::BaseMoved { now, .. } => Some(now),
                _ => None,
            });
            image
                .ancestors
                .iter()
                .chain(moved_to)
                .filter_map(|base| position.get(base).copied())
                .filter(|&base| base != at)
                .collect()
        })
        .collect();
    // Bases first: a base's chain is a proper prefix of its child's.
    let mut pending: Vec<usize> = (0..stale.len()).collect();
    pending.sort_by_key(|&at| stale[at].ancestors.len());
    let mut wave: Vec<u32> = vec![0; stale.len()];
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|&at| {
            if waits_on[at].iter().any(|&base| wave[base] == 0) {
                return true; // its base is placed first
            }
            wave[at] = 1 + waits_on[at]
                .iter()
                .map(|&base| wave[base])
                .max()
                .unwrap_or(0);
            false
        });
        if pending.len() == before {
            // A cycle in bad data: place the rest in one more wave rather than loop.
            let last = wave.iter().max().copied().unwrap_or(0) + 1;
            for at in pending.drain(..) {
                wave[at] = last;
            }
        }
    }
    let mut items: Vec<PlanItem> = stale
        .iter()
        .zip(&wave)
        .map(|(image, &wave)| PlanItem {
            reference: &image.reference,
            digest: &image.digest,
            platform: &image.platform,
            entry: image.entry.as_deref(),
            variant: image.variant.as_deref(),
            channel: &image.channel,
            reasons: image.reasons.iter().map(Reason::kind).collect(),
            target: target(image),
            wave,
        })
        .collect();
    // The report is sorted by reference and platform; a stable sort keeps that within a group.
    items.sort_by(|a, b| (&a.target, a.wave).cmp(&(&b.target, b.wave)));
    let waves = wave.iter().max().copied().unwrap_or(0);
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
pub(crate) mod tests;
