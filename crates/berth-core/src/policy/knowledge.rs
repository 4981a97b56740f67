//! What berth knows about registries, as a plain value the policy reads: which digest each tag
//! points to, which platform images an index holds, every image's lineage, and what pipelines
//! recorded about the digests they built (provenance records). Built by the
//! caller (from the store, a test's table) and handed in; nothing here fetches anything.
//!
//! A request may add what it learned on the way (tags resolved for pinning) as an overlay
//! ([`Knowledge::overlay`]) over the shared snapshot, without copying it.
//!
//! A long-lived snapshot (the webhook's) need not be rebuilt from the whole store: the store
//! hands out what changed since a generation ([`KnowledgeChanges`], berth-store's
//! `Store::knowledge_changes`), and [`Knowledge::apply`] turns the previous snapshot into the
//! next one.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use foldhash::HashMap;

use crate::lineage::{LineageBuilder, LineageIndex};
use crate::provenance::{Record, Signed};
use crate::reference::{Digest, DigestKey, ImageRef, Tag};

/// Registry knowledge for policy decisions. Equal values answer every question alike.
///
/// Sized for a webhook's snapshot of a whole store (100,000 tags in well under 100 MiB,
/// docs/benchmarks.md): digests are kept as raw bytes ([`DigestKey`]), and a tag's key names
/// its repository by number instead of repeating `registry/repository` for every tag.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    /// Repository names (`registry/repository`) of the tags below → their number in a tag key.
    repositories: HashMap<Box<str>, u32>,
    /// Tag key ([`tag_key`]: repository number and tag) → the digest the tag points to (an
    /// index or an image manifest): what a pin writes.
    tags: HashMap<Box<[u8]>, DigestKey>,
    /// Index digest → its runnable platform images (attestations left out by the caller).
    indexes: HashMap<DigestKey, Box<[DigestKey]>>,
    /// Layer lineage of image manifests: what the approved-base rule asks.
    lineage: LineageIndex,
    /// What pipelines recorded about digests they built: what the provenance rule asks.
    provenance: HashMap<DigestKey, Arc<Record>>,
    /// Signatures and attestations trusted keys verified, by the digest they cover: what the
    /// signatures rule (and the provenance rule's `from: [attestation]`) asks.
    signatures: HashMap<DigestKey, Arc<[Signed]>>,
    /// The knowledge this one lies over (an overlay's tags win; indexes and lineage come from
    /// below), so a request can add a few tags without copying the snapshot.
    under: Option<Arc<Knowledge>>,
}

/// Two snapshots are equal when they hold the same tags (by name: repository numbers depend on
/// the order tags arrived in), indexes, lineage and provenance records.
impl PartialEq for Knowledge {
    fn eq(&self, other: &Knowledge) -> bool {
        self.tags.len() == other.tags.len()
            && self.named_tags() == other.named_tags()
            && self.indexes == other.indexes
            && self.lineage == other.lineage
            && self.provenance == other.provenance
            && self.signatures == other.signatures
            && self.under == other.under
    }
}

/// The key of `tag` in repository number `repository`: the number's 4 bytes, then the tag.
fn tag_key(repository: u32, tag: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + tag.len());
    key.extend_from_slice(&repository.to_le_bytes());
    key.extend_from_slice(tag.as_bytes());
    key
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
    /// Provenance records that are new or replaced, by digest.
    pub provenance: Vec<(Digest, Record)>,
    /// Digests whose verified signatures changed, each with all of them now (empty: none
    /// any more).
    pub signatures: Vec<(Digest, Vec<Signed>)>,
}

impl KnowledgeChanges {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
            && self.indexes.is_empty()
            && self.images.is_empty()
            && self.provenance.is_empty()
            && self.signatures.is_empty()
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
            let digest = digest.as_ref().map(DigestKey::of);
            let before = match &digest {
                Some(digest) => self.insert_tag(reference, tag, digest.clone()),
                None => self.remove_tag(reference, tag),
            };
            retargeted |= before.is_some_and(|before| Some(&before) != digest.as_ref());
        }
        for (index, images) in &changes.indexes {
            self.add_index_key(index, images);
        }
        if retargeted {
            self.drop_untagged_indexes();
        }
        if !changes.images.is_empty() {
            self.lineage =
                std::mem::take(&mut self.lineage).into_with_images(changes.images.iter().cloned());
        }
        for (digest, record) in &changes.provenance {
            self.add_provenance(digest, record.clone());
        }
        for (digest, signed) in &changes.signatures {
            self.set_signatures(digest, signed.clone());
        }
        self
    }

    /// The knowledge of a whole load: `changes` since generation 0, consumed. Equal to
    /// `Knowledge::default().apply(&changes)`, without holding a second copy of every chain
    /// and reference while the snapshot is built (what a webhook's RSS at start is made of).
    pub fn from_changes(changes: KnowledgeChanges) -> Knowledge {
        let mut builder = KnowledgeBuilder::new();
        for (reference, digest) in changes.tags {
            if let Some(digest) = digest {
                builder.tag(&reference, &digest);
            }
        }
        for (index, images) in changes.indexes {
            builder.index(&index, &images);
        }
        for (image, chain) in changes.images {
            builder.image(&image, &chain);
        }
        for (digest, record) in changes.provenance {
            builder.provenance(&digest, record);
        }
        for (digest, signed) in changes.signatures {
            builder.signatures(&digest, signed);
        }
        builder.finish()
    }

    /// Knowledge with the given lineage and no tags yet.
    pub fn new(lineage: LineageIndex) -> Knowledge {
        Knowledge {
            lineage,
            ..Knowledge::default()
        }
    }

    /// Knowledge that adds to `under`: tags recorded here are looked up first, everything
    /// else (indexes, lineage) is `under`'s.
    pub fn overlay(under: Arc<Knowledge>) -> Knowledge {
        Knowledge {
            under: Some(under),
            ..Knowledge::default()
        }
    }

    /// Records that `reference`'s tag points to `digest` (a reference without a tag is
    /// ignored: there is nothing to record).
    pub fn add_tag(&mut self, reference: &ImageRef, digest: Digest) {
        if let Some(tag) = reference.tag() {
            self.insert_tag(reference, tag, DigestKey::of(&digest));
        }
    }

    /// Records what a pipeline reported about `digest` (a later record replaces an earlier).
    pub fn add_provenance(&mut self, digest: &Digest, record: Record) {
        self.provenance
            .insert(DigestKey::of(digest), Arc::new(record));
    }

    /// What a pipeline recorded about `digest`, if anything.
    pub fn provenance(&self, digest: &Digest) -> Option<&Record> {
        match self.provenance.get(&DigestKey::of(digest)) {
            Some(record) => Some(record),
            None => self.under.as_ref()?.provenance(digest),
        }
    }

    /// Sets the verified signatures and attestations of `digest` (empty: it has none).
    pub fn set_signatures(&mut self, digest: &Digest, signed: Vec<Signed>) {
        if signed.is_empty() {
            self.signatures.remove(&DigestKey::of(digest));
        } else {
            self.signatures.insert(DigestKey::of(digest), signed.into());
        }
    }

    /// What trusted keys verified about `digest`: signatures over it and signed statements.
    pub fn signatures(&self, digest: &Digest) -> &[Signed] {
        match self.signatures.get(&DigestKey::of(digest)) {
            Some(signed) => signed,
            None => match &self.under {
                Some(under) => under.signatures(digest),
                None => &[],
            },
        }
    }

    /// Records an index and its platform images.
    pub fn add_index(&mut self, index: Digest, images: Vec<Digest>) {
        self.add_index_key(&index, &images);
    }

    fn add_index_key(&mut self, index: &Digest, images: &[Digest]) {
        self.indexes.insert(
            DigestKey::of(index),
            images.iter().map(DigestKey::of).collect(),
        );
    }

    /// Sets `reference`'s repository at `tag` to `digest`; what it pointed to before.
    fn insert_tag(
        &mut self,
        reference: &ImageRef,
        tag: &Tag,
        digest: DigestKey,
    ) -> Option<DigestKey> {
        let name = reference.name();
        let next = u32::try_from(self.repositories.len()).expect("fewer than 2^32 repositories");
        let repository = match self.repositories.get(name.as_str()) {
            Some(&repository) => repository,
            None => {
                self.repositories.insert(name.into_boxed_str(), next);
                next
            }
        };
        self.tags
            .insert(tag_key(repository, tag.as_str()).into_boxed_slice(), digest)
    }

    /// Forgets `reference`'s repository at `tag`; what it pointed to.
    fn remove_tag(&mut self, reference: &ImageRef, tag: &Tag) -> Option<DigestKey> {
        let repository = *self.repositories.get(reference.name().as_str())?;
        self.tags.remove(&tag_key(repository, tag.as_str())[..])
    }

    /// Drops the indexes no tag here points at (a full load holds only tagged ones).
    fn drop_untagged_indexes(&mut self) {
        let targets: HashSet<&DigestKey> = self.tags.values().collect();
        self.indexes.retain(|index, _| targets.contains(index));
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
        self.tag_by_name(&reference.name(), tag.as_str())
    }

    fn tag_by_name(&self, name: &str, tag: &str) -> Option<Digest> {
        let here = self
            .repositories
            .get(name)
            .and_then(|&repository| self.tags.get(&tag_key(repository, tag)[..]));
        match here {
            Some(digest) => Some(digest.to_digest()),
            None => self.under.as_ref()?.tag_by_name(name, tag),
        }
    }

    /// The index's platform images, if `digest` is an index berth knows.
    fn index(&self, digest: &DigestKey) -> Option<&[DigestKey]> {
        match self.indexes.get(digest) {
            Some(images) => Some(images),
            None => self.under.as_ref()?.index(digest),
        }
    }

    /// The image manifests behind `digest`: an index's platform images, or the digest itself.
    pub fn platform_images(&self, digest: &Digest) -> Vec<Digest> {
        match self.index(&DigestKey::of(digest)) {
            Some(images) => images.iter().map(DigestKey::to_digest).collect(),
            None => vec![digest.clone()],
        }
    }

    pub fn lineage(&self) -> &LineageIndex {
        match &self.under {
            Some(under) => under.lineage(),
            None => &self.lineage,
        }
    }

    /// The tags recorded here (not below), each with its canonical name
    /// (`registry/repository:tag`).
    fn named_tags(&self) -> BTreeMap<String, &DigestKey> {
        let mut names: Vec<&str> = vec![""; self.repositories.len()];
        for (name, &repository) in &self.repositories {
            names[repository as usize] = name;
        }
        self.tags
            .iter()
            .map(|(key, digest)| {
                let (repository, tag) = key.split_at(4);
                let repository = u32::from_le_bytes([
                    repository[0],
                    repository[1],
                    repository[2],
                    repository[3],
                ]);
                let name = format!(
                    "{}:{}",
                    names[repository as usize],
                    String::from_utf8_lossy(tag)
                );
                (name, digest)
            })
            .collect()
    }

    /// A tag that points to `digest` (directly, or to an index holding it), for messages; the
    /// smallest such name, so the answer does not depend on insertion order.
    pub fn name_of(&self, digest: &Digest) -> Option<String> {
        let digest = DigestKey::of(digest);
        let here = self
            .named_tags()
            .into_iter()
            .find(|(_, target)| {
                **target == digest
                    || self
                        .index(target)
                        .is_some_and(|images| images.contains(&digest))
            })
            .map(|(name, _)| name);
        let below = self
            .under
            .as_ref()
            .and_then(|under| under.name_of(&digest.to_digest()));
        here.into_iter().chain(below).min()
    }
}

/// A whole snapshot gathered one fact at a time (a store's rows as they stream in), so that no
/// list of every tag and chain is held beside it while it is built. [`KnowledgeBuilder::finish`]
/// gives what [`Knowledge::from_changes`] gives for the same facts in the same order.
#[derive(Debug, Default)]
pub struct KnowledgeBuilder {
    knowledge: Knowledge,
    lineage: LineageBuilder,
}

impl KnowledgeBuilder {
    pub fn new() -> KnowledgeBuilder {
        KnowledgeBuilder::default()
    }

    /// A live tag (a reference without a tag is ignored); a later one of the same name wins.
    pub fn tag(&mut self, reference: &ImageRef, digest: &Digest) {
        if let Some(tag) = reference.tag() {
            self.knowledge
                .insert_tag(reference, tag, DigestKey::of(digest));
        }
    }

    /// An index and its runnable platform images; kept only if a tag points at it.
    pub fn index(&mut self, index: &Digest, images: &[Digest]) {
        self.knowledge.add_index_key(index, images);
    }

    /// An image manifest and its layer chain (diff_ids, base first); the first chain of an
    /// image pushed twice is kept.
    pub fn image<'a>(&mut self, image: &Digest, chain: impl IntoIterator<Item = &'a Digest>) {
        self.lineage.push(image, chain);
    }

    /// A provenance record of a digest; a later one of the same digest wins.
    pub fn provenance(&mut self, digest: &Digest, record: Record) {
        self.knowledge.add_provenance(digest, record);
    }

    /// The verified signatures and attestations of a digest; a later call for it wins.
    pub fn signatures(&mut self, digest: &Digest, signed: Vec<Signed>) {
        self.knowledge.set_signatures(digest, signed);
    }

    pub fn finish(self) -> Knowledge {
        let KnowledgeBuilder {
            mut knowledge,
            lineage,
        } = self;
        knowledge.tags.shrink_to_fit();
        knowledge.repositories.shrink_to_fit();
        knowledge.drop_untagged_indexes();
        knowledge.indexes.shrink_to_fit();
        knowledge.lineage = lineage.finish();
        knowledge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{n:064x}")).expect("valid digest")
    }

    fn r(text: &str) -> ImageRef {
        ImageRef::parse(text).expect("valid reference")
    }

    #[test]
    fn tags_are_found_by_name_whatever_order_their_repositories_arrived_in() {
        let tags = [("a.io/x:1", 1), ("b.io/y:1", 2), ("a.io/x:2", 3)];
        let changes = |order: &[usize]| KnowledgeChanges {
            generation: 1,
            tags: order
                .iter()
                .map(|&i| (r(tags[i].0), Some(d(tags[i].1))))
                .collect(),
            indexes: vec![(d(3), vec![d(4), d(5)])],
            images: vec![(d(4), vec![d(9)])],
            provenance: Vec::new(),
            signatures: Vec::new(),
        };
        let forward = Knowledge::from_changes(changes(&[0, 1, 2]));
        let backward = Knowledge::from_changes(changes(&[2, 1, 0]));
        assert_eq!(forward, backward);
        assert_eq!(forward, Knowledge::default().apply(&changes(&[1, 0, 2])));
        assert_eq!(forward.tag_digest(&r("a.io/x:2")), Some(d(3)));
        assert_eq!(forward.digest_of(&r("a.io/x:9")), None);
        assert_eq!(forward.platform_images(&d(3)), [d(4), d(5)]);
        assert_eq!(forward.name_of(&d(5)).as_deref(), Some("a.io/x:2"));

        // A tag gone, and its index with it: the same as never having had it.
        let gone = forward.clone().apply(&KnowledgeChanges {
            generation: 2,
            tags: vec![(r("a.io/x:2"), None)],
            ..KnowledgeChanges::default()
        });
        let without = Knowledge::from_changes(KnowledgeChanges {
            tags: vec![(r("b.io/y:1"), Some(d(2))), (r("a.io/x:1"), Some(d(1)))],
            images: vec![(d(4), vec![d(9)])],
            ..KnowledgeChanges::default()
        });
        assert_eq!(gone, without);
        assert_ne!(gone, forward);

        // An overlay's tags win; the rest is read below.
        let mut overlay = Knowledge::overlay(Arc::new(forward));
        overlay.add_tag(&r("a.io/x:1"), d(7));
        assert_eq!(overlay.tag_digest(&r("a.io/x:1")), Some(d(7)));
        assert_eq!(overlay.tag_digest(&r("b.io/y:1")), Some(d(2)));
        assert_eq!(overlay.name_of(&d(7)).as_deref(), Some("a.io/x:1"));
        assert!(overlay.lineage().contains(&d(4)));
    }
}
