//! What berth knows about registries, as a plain value the policy reads: which digest each tag
//! points to, which platform images an index holds, and every image's lineage. Built by the
//! caller (from the store, a test's table) and handed in; nothing here fetches anything.
//!
//! A request may add what it learned on the way (tags resolved for pinning) as an overlay
//! ([`Knowledge::overlay`]) over the shared snapshot, without copying it.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};

use crate::lineage::LineageIndex;
use crate::reference::{Digest, ImageRef};

/// Registry knowledge for policy decisions.
#[derive(Debug, Clone, Default)]
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

impl Knowledge {
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
