//! What berth knows about registries, as a plain value the policy reads: which digest each tag
//! points to, which platform images an index holds, and every image's lineage. Built by the
//! caller (from the store, a test's table) and handed in; nothing here fetches anything.
//!
//! A request may add what it learned on the way (tags resolved for pinning) as an overlay
//! ([`Knowledge::overlay`]) over the shared snapshot, without copying it.
//!
//! A long-lived snapshot (the webhook's) need not be rebuilt from the whole store: the store
//! hands out what changed since a generation ([`KnowledgeChanges`], berth-store's
//! `Store::knowledge_changes`), and [`Knowledge::apply`] turns the previous snapshot into the
//! next one.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};

use crate::lineage::LineageIndex;
use crate::reference::{Digest, ImageRef};

/// Registry knowledge for policy decisions. Equal values answer every question alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knowledge {
    /// `registry/repository:tag` (canonical) → the digest the tag points to (an index or an
    /// image manifest): what a pin writes.
    tags: HashMap<String, Digest>,
    /// Index digest → its runnable platform images (attestations left out by the caller).
    indexes: HashMap<Digest, Vec<Digest>>,
    /// Layer lineage of image manifests: what the approved-base rule asks.
    lineage: LineageIndex,
    /// The knowledge this one lies over (an overlay's tags win; indexes and lineage come from
    /// below), so a request can add a few tags without copying the snapshot.
    under: Option<Arc<Knowledge>>,
}

/// What changed in the store's knowledge between two generations, as a value: what
/// [`Knowledge::apply`] needs to turn the snapshot of the first into the snapshot of the second.
/// Applying a change twice, or a change that overlaps one already applied, gives the same
/// knowledge (every entry states a fact, not a difference).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnowledgeChanges {
    /// The store's generation these changes bring a snapshot up to.
    pub generation: u64,
    /// Tags that are new, moved or back (`Some`: where they point now) or gone (`None`).
    pub tags: Vec<(ImageRef, Option<Digest>)>,
    /// Indexes live tags now point at, with their runnable platform images (attestations left
    /// out): content-addressed, so never different from what a snapshot already holds.
    pub indexes: Vec<(Digest, Vec<Digest>)>,
    /// Image manifests that are new (or whose lineage was recomputed), with their layer chains
    /// (diff_ids, base first).
    pub images: Vec<(Digest, Vec<Digest>)>,
}

impl KnowledgeChanges {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.indexes.is_empty() && self.images.is_empty()
    }
}

impl Knowledge {
    /// The knowledge after `changes`: `self` as it was at an earlier generation, plus what
    /// changed since. Equal to loading the whole store at `changes.generation`. Tags are set or
    /// removed; indexes no live tag points at any more are dropped (a full load holds only
    /// tagged ones); the lineage index is rebuilt from the chains it had and the new ones,
    /// in memory, only when images changed.
    pub fn apply(mut self, changes: &KnowledgeChanges) -> Knowledge {
        let mut retargeted = false;
        for (reference, digest) in &changes.tags {
            let Some(tag) = reference.tag() else {
                continue;
            };
            let key = reference.with_tag(tag.clone()).canonical();
            let before = match digest {
                Some(digest) => self.tags.insert(key, digest.clone()),
                None => self.tags.remove(&key),
            };
            retargeted |= before.is_some_and(|before| Some(&before) != digest.as_ref());
        }
        for (index, images) in &changes.indexes {
            self.indexes.insert(index.clone(), images.clone());
        }
        if retargeted {
            let targets: std::collections::HashSet<&Digest> = self.tags.values().collect();
            self.indexes.retain(|index, _| targets.contains(index));
        }
        if !changes.images.is_empty() {
            self.lineage =
                std::mem::take(&mut self.lineage).into_with_images(changes.images.iter().cloned());
        }
        self
    }

    /// The knowledge of a whole load: `changes` since generation 0, consumed. Equal to
    /// `Knowledge::default().apply(&changes)`, without holding a second copy of every chain
    /// and reference while the snapshot is built (what a webhook's RSS at start is made of).
    pub fn from_changes(changes: KnowledgeChanges) -> Knowledge {
        let mut tags = HashMap::with_capacity(changes.tags.len());
        for (reference, digest) in changes.tags {
            let (Some(tag), Some(digest)) = (reference.tag(), digest) else {
                continue;
            };
            tags.insert(reference.with_tag(tag.clone()).canonical(), digest);
        }
        tags.shrink_to_fit();
        let targets: std::collections::HashSet<&Digest> = tags.values().collect();
        let indexes: HashMap<Digest, Vec<Digest>> = changes
            .indexes
            .into_iter()
            .filter(|(index, _)| targets.contains(index))
            .collect();
        Knowledge {
            lineage: LineageIndex::build(changes.images),
            tags,
            indexes,
            under: None,
        }
    }

    /// Knowledge with the given lineage and no tags yet.
    pub fn new(lineage: LineageIndex) -> Knowledge {
        Knowledge {
            tags: HashMap::new(),
            indexes: HashMap::new(),
            lineage,
            under: None,
        }
    }

    /// Knowledge that adds to `under`: tags recorded here are looked up first, everything
    /// else (indexes, lineage) is `under`'s.
    pub fn overlay(under: Arc<Knowledge>) -> Knowledge {
        Knowledge {
            tags: HashMap::new(),
            indexes: HashMap::new(),
            lineage: LineageIndex::default(),
            under: Some(under),
        }
    }

    /// Records that `reference`'s tag points to `digest` (a reference without a tag is
    /// ignored: there is nothing to record).
    pub fn add_tag(&mut self, reference: &ImageRef, digest: Digest) {
        if let Some(tag) = reference.tag() {
            let key = reference.with_tag(tag.clone()).canonical();
            self.tags.insert(key, digest);
        }
    }

    /// Records an index and its platform images.
    pub fn add_index(&mut self, index: Digest, images: Vec<Digest>) {
        self.indexes.insert(index, images);
    }

    /// The digest `reference` runs: its own when it has one, else what its tag points to.
    pub fn digest_of(&self, reference: &ImageRef) -> Option<Digest> {
        if let Some(digest) = reference.digest() {
            return Some(digest.clone());
        }
        self.tag_digest(reference)
    }

    /// What `reference`'s tag points to, ignoring any digest it carries.
    pub fn tag_digest(&self, reference: &ImageRef) -> Option<Digest> {
        let tag = reference.tag()?;
        let key = reference.with_tag(tag.clone()).canonical();
        self.tag_by_key(&key)
    }

    fn tag_by_key(&self, key: &str) -> Option<Digest> {
        match self.tags.get(key) {
            Some(digest) => Some(digest.clone()),
            None => self.under.as_ref()?.tag_by_key(key),
        }
    }

    /// The index's platform images, if `digest` is an index berth knows.
    fn index(&self, digest: &Digest) -> Option<&Vec<Digest>> {
        match self.indexes.get(digest) {
            Some(images) => Some(images),
            None => self.under.as_ref()?.index(digest),
        }
    }

    /// The image manifests behind `digest`: an index's platform images, or the digest itself.
    pub fn platform_images(&self, digest: &Digest) -> Vec<Digest> {
        match self.index(digest) {
            Some(images) => images.clone(),
            None => vec![digest.clone()],
        }
    }

    pub fn lineage(&self) -> &LineageIndex {
        match &self.under {
            Some(under) => under.lineage(),
            None => &self.lineage,
        }
    }

    /// A tag that points to `digest` (directly, or to an index holding it), for messages; the
    /// smallest such name, so the answer does not depend on insertion order.
    pub fn name_of(&self, digest: &Digest) -> Option<String> {
        let here = self
            .tags
            .iter()
            .filter(|(_, target)| {
                *target == digest
                    || self
                        .index(target)
                        .is_some_and(|images| images.contains(digest))
            })
            .map(|(name, _)| name.clone())
            .min();
        let below = self.under.as_ref().and_then(|under| under.name_of(digest));
        here.into_iter().chain(below).min()
    }
}
