//! Lineage: which known image each image is built on, found from layer chains, and which images
//! are built on a given one. Indexed once, so both questions are lookups, not scans.
//!
//! # Rule
//! An image's chain is its config's `rootfs.diff_ids`, bottom layer first. Its **base** is the
//! known image whose chain is the longest *proper* prefix of its own (at least one layer, and
//! not the whole chain: an image with exactly the same layers is a twin, not a base).
//!
//! When several known images have exactly that prefix as their chain (one base pushed with two
//! configs, or under two digests), the base is the one with the lowest digest (string order),
//! so the answer does not depend on input order. [`LineageIndex::twins`] lists the others;
//! [`LineageIndex::check_declared`] accepts any of them.
//!
//! # Index
//! Image and layer digests are kept once each, as raw bytes (40 bytes, not a string on the heap),
//! sorted, so an id is a position and a digest is found by binary search; chains are runs of
//! `u32` layer ids in one flat array. Each chain gets a 64-bit
//! rolling hash per prefix; a map from the hash of each *whole* chain to the images with that
//! chain answers "which images have exactly these layers". An image's base is found by walking
//! its own prefixes from longest to shortest, comparing chains on a hash hit: O(layers) per
//! image. Every image's base is computed at build, and children are kept in one flat array
//! (compressed rows), so `base_of` and `built_on` are lookups. Figures for 100,000 images:
//! docs/benchmarks.md.

use std::collections::VecDeque;

use std::hash::BuildHasher as _;

use foldhash::{HashMap, HashMapExt as _};

use crate::reference::{Digest, DigestKey};

/// How a base was found. Only layer prefixes for now; a label or annotation naming the base
/// (`org.opencontainers.image.base.digest`) would be another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineageMethod {
    /// The base's layer chain is the longest proper prefix of the image's.
    LayerPrefix,
}

/// An image's base and the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseMatch {
    pub base: Digest,
    /// How many bottom layers the image shares with its base (the base's chain length).
    pub shared_layers: usize,
    pub method: LineageMethod,
}

/// The catalog's declared base compared with the base found from layers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum BaseCheck {
    /// The image is built on the declared base, directly (`generations` 1) or through
    /// intermediate images (2 and more). `declared` is the digest of the declared set that
    /// matched.
    Match {
        declared: Digest,
        generations: usize,
    },
    /// The image's base is not the declared one, nor built on it: declared bookworm, built on
    /// bullseye.
    Mismatch {
        declared: Vec<Digest>,
        actual: Digest,
    },
    /// Nothing can be said.
    Unknown { reason: UnknownBase },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownBase {
    /// The image is not in the index.
    ImageNotIndexed,
    /// The catalog declares no base, or its name resolved to no digest.
    NothingDeclared,
    /// No known image's chain is a proper prefix of this one's: its base was never indexed.
    NoBaseFound,
}

/// Images by layer chain, with every image's base and children precomputed.
#[derive(Debug, Clone, Default)]
pub struct LineageIndex {
    /// Image digests (raw bytes) in ascending order; an image's position is its id everywhere
    /// below.
    images: Vec<DigestKey>,
    /// Hash of an image digest → the images with that hash (confirmed against `images`): one
    /// hash and one comparison per lookup, where a binary search costs ~17 cache misses.
    by_digest: HashMap<u64, Group>,
    hasher: foldhash::fast::RandomState,
    /// Layer digests (raw bytes) in ascending order; a layer's position is its id in chains.
    layers: Vec<DigestKey>,
    /// `chain_layers[chain_start[i]..chain_start[i + 1]]`: image `i`'s chain, as layer ids,
    /// bottom first (one flat array, not one allocation per image).
    chain_start: Vec<u32>,
    chain_layers: Vec<u32>,
    /// Hash of a whole chain → the images with a chain of that hash, ascending (equal hashes of
    /// different chains are possible; callers compare chains).
    by_chain: HashMap<u64, Group>,
    /// Each image's base (image id) and the number of layers shared with it.
    bases: Vec<Option<(u32, u32)>>,
    /// `children[child_start[i]..child_start[i + 1]]`: the images whose base is image `i`.
    child_start: Vec<u32>,
    children: Vec<u32>,
}

/// Two indexes are equal when they hold the same images with the same chains (everything
/// else is derived from those; the hasher's seed is not part of the value).
impl PartialEq for LineageIndex {
    fn eq(&self, other: &LineageIndex) -> bool {
        self.images == other.images
            && self.layers == other.layers
            && (0..self.images.len()).all(|id| self.chain_of(id) == other.chain_of(id))
    }
}

/// The images sharing a chain hash; almost always one.
#[derive(Debug, Clone)]
enum Group {
    One(u32),
    Many(Vec<u32>),
}

impl Group {
    fn as_slice(&self) -> &[u32] {
        match self {
            Group::One(id) => std::slice::from_ref(id),
            Group::Many(ids) => ids,
        }
    }

    fn push(&mut self, id: u32) {
        match self {
            Group::One(first) => *self = Group::Many(vec![*first, id]),
            Group::Many(ids) => ids.push(id),
        }
    }
}

/// Rolling hash of a chain prefix: `prefix_hash(h(prefix), layer)` is the hash of the prefix
/// extended by `layer`. Not cryptographic: a hit is always confirmed by comparing chains.
fn prefix_hash(previous: u64, layer: u32) -> u64 {
    let mixed = (previous ^ u64::from(layer)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed ^ (mixed >> 29)
}

const EMPTY_CHAIN_HASH: u64 = 0x243F_6A88_85A3_08D3;

fn chain_hash(chain: &[u32]) -> u64 {
    chain
        .iter()
        .fold(EMPTY_CHAIN_HASH, |h, &l| prefix_hash(h, l))
}

fn id_of(position: usize, what: &str) -> u32 {
    u32::try_from(position).unwrap_or_else(|_| panic!("fewer than 2^32 {what}"))
}

/// Images and their chains gathered one at a time (from a stream of rows, say), then indexed
/// by [`LineageBuilder::finish`]: each chain is kept as layer ids as it arrives, so nothing
/// holds the chains as digests meanwhile. An image pushed twice keeps its first chain.
#[derive(Debug, Default)]
pub struct LineageBuilder {
    /// Image, start of its chain in `chain_layers`, chain length; in order of arrival.
    entries: Vec<(DigestKey, u32, u32)>,
    chain_layers: Vec<u32>,
    /// Layer ids index this; `layers[..sorted]` is in digest order (an index's own layers,
    /// found by binary search), later ones are numbered in order of appearance.
    layers: Vec<DigestKey>,
    sorted: usize,
    new_layers: HashMap<DigestKey, u32>,
}

impl LineageBuilder {
    pub fn new() -> LineageBuilder {
        LineageBuilder::default()
    }

    /// Adds an image and its chain (diff_ids, bottom first).
    pub fn push<'a>(&mut self, image: &Digest, chain: impl IntoIterator<Item = &'a Digest>) {
        let start = id_of(self.chain_layers.len(), "layer references");
        for layer in chain {
            let layer = DigestKey::of(layer);
            let id = match self.layers[..self.sorted].binary_search(&layer) {
                Ok(id) => id as u32,
                Err(_) => match self.new_layers.get(&layer) {
                    Some(&id) => id,
                    None => {
                        let id = id_of(self.layers.len(), "layers");
                        self.layers.push(layer.clone());
                        self.new_layers.insert(layer, id);
                        id
                    }
                },
            };
            self.chain_layers.push(id);
        }
        let length = id_of(self.chain_layers.len(), "layer references") - start;
        self.entries.push((DigestKey::of(image), start, length));
    }

    /// The index of everything pushed, the first chain of equal image digests kept; layers
    /// are renumbered in digest order.
    pub fn finish(self) -> LineageIndex {
        let LineageBuilder {
            mut entries,
            chain_layers,
            layers,
            ..
        } = self;
        // Stable, so the first of equal digests stays first and `dedup_by` keeps it.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);

        let mut layers: Vec<(DigestKey, u32)> = layers
            .into_iter()
            .enumerate()
            .map(|(id, layer)| (layer, id as u32))
            .collect();
        layers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut renumber = vec![0u32; layers.len()];
        for (new, (_, old)) in layers.iter().enumerate() {
            renumber[*old as usize] = new as u32;
        }

        let mut index = LineageIndex {
            layers: layers.into_iter().map(|(layer, _)| layer).collect(),
            ..LineageIndex::default()
        };
        index.images.reserve_exact(entries.len());
        index.chain_start.reserve_exact(entries.len() + 1);
        index.chain_start.push(0);
        index.chain_layers.reserve_exact(chain_layers.len());
        for (image, start, length) in entries {
            let id = id_of(index.images.len(), "images");
            index
                .by_digest
                .entry(index.hasher.hash_one(&image))
                .and_modify(|group| group.push(id))
                .or_insert(Group::One(id));
            index.images.push(image);
            let chain = &chain_layers[start as usize..(start + length) as usize];
            index
                .chain_layers
                .extend(chain.iter().map(|&old| renumber[old as usize]));
            index
                .chain_start
                .push(id_of(index.chain_layers.len(), "layer references"));
        }
        drop(chain_layers);
        index.chain_layers.shrink_to_fit();

        for id in 0..index.images.len() {
            let hash = chain_hash(index.chain_of(id));
            index
                .by_chain
                .entry(hash)
                .and_modify(|group| group.push(id as u32))
                .or_insert(Group::One(id as u32));
        }

        index.bases = (0..index.images.len())
            .map(|id| index.longest_proper_prefix(index.chain_of(id)))
            .collect();

        let mut counts = vec![0u32; index.images.len() + 1];
        for (base, _) in index.bases.iter().flatten() {
            counts[*base as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut fill = counts.clone();
        index.children = vec![0; counts[index.images.len()] as usize];
        for (child, base) in index.bases.iter().enumerate() {
            if let Some((base, _)) = base {
                let slot = &mut fill[*base as usize];
                index.children[*slot as usize] = child as u32;
                *slot += 1;
            }
        }
        index.child_start = counts;
        index
    }
}

/// An index taken apart to be extended: its images keep their chains (moved, not copied) and
/// its layers their ids.
impl From<LineageIndex> for LineageBuilder {
    fn from(index: LineageIndex) -> LineageBuilder {
        let LineageIndex {
            images,
            layers,
            chain_start,
            chain_layers,
            ..
        } = index;
        let entries = images
            .into_iter()
            .enumerate()
            .map(|(id, image)| {
                (
                    image,
                    chain_start[id],
                    chain_start[id + 1] - chain_start[id],
                )
            })
            .collect();
        LineageBuilder {
            entries,
            chain_layers,
            sorted: layers.len(),
            layers,
            new_layers: HashMap::new(),
        }
    }
}

impl LineageIndex {
    /// Indexes `(image digest, diff_ids bottom first)` pairs. An image listed twice keeps its
    /// first chain.
    pub fn build(images: impl IntoIterator<Item = (Digest, Vec<Digest>)>) -> LineageIndex {
        let mut builder = LineageBuilder::new();
        for (image, chain) in images {
            builder.push(&image, &chain);
        }
        builder.finish()
    }

    /// This index with `images` added (an image it holds already keeps its chain), consuming
    /// it: its images and chains are moved, not copied, so a refresh that learns a few images
    /// holds one index and the few new chains, not two indexes.
    pub fn into_with_images(
        self,
        images: impl IntoIterator<Item = (Digest, Vec<Digest>)>,
    ) -> LineageIndex {
        let mut builder = LineageBuilder::from(self);
        for (image, chain) in images {
            builder.push(&image, &chain);
        }
        builder.finish()
    }

    /// Image `id`'s chain, as layer ids.
    fn chain_of(&self, id: usize) -> &[u32] {
        &self.chain_layers[self.chain_start[id] as usize..self.chain_start[id + 1] as usize]
    }

    fn image_id(&self, image: &Digest) -> Option<u32> {
        let image = DigestKey::of(image);
        let group = self.by_digest.get(&self.hasher.hash_one(&image))?;
        group
            .as_slice()
            .iter()
            .copied()
            .find(|&id| self.images[id as usize] == image)
    }

    fn layer_id(&self, layer: &Digest) -> Option<u32> {
        self.layers
            .binary_search(&DigestKey::of(layer))
            .ok()
            .map(|id| id as u32)
    }

    /// The known image (id) whose chain is the longest proper prefix of `chain`, and its length.
    fn longest_proper_prefix(&self, chain: &[u32]) -> Option<(u32, u32)> {
        let mut hashes = Vec::with_capacity(chain.len());
        let mut hash = EMPTY_CHAIN_HASH;
        for &layer in chain {
            hash = prefix_hash(hash, layer);
            hashes.push(hash);
        }
        (1..chain.len()).rev().find_map(|length| {
            let group = self.by_chain.get(&hashes[length - 1])?;
            let prefix = &chain[..length];
            let base = group
                .as_slice()
                .iter()
                .find(|&&candidate| *self.chain_of(candidate as usize) == *prefix)?;
            Some((*base, length as u32))
        })
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Whether `image` was indexed.
    pub fn contains(&self, image: &Digest) -> bool {
        self.image_id(image).is_some()
    }

    /// The layer chain an image was indexed with.
    pub fn chain(&self, image: &Digest) -> Option<Vec<Digest>> {
        let id = self.image_id(image)?;
        let chain = self.chain_of(id as usize).iter();
        Some(
            chain
                .map(|&layer| self.layers[layer as usize].to_digest())
                .collect(),
        )
    }

    /// The image `image` is built on, if a known image's chain is a proper prefix of its own.
    pub fn base_of(&self, image: &Digest) -> Option<BaseMatch> {
        let id = self.image_id(image)?;
        self.bases[id as usize].map(|base| self.base_match(base))
    }

    /// The base an image with `chain` would have, for an image not in the index (a push about
    /// to be admitted, say). Same rule as [`LineageIndex::base_of`].
    pub fn base_for_chain(&self, chain: &[Digest]) -> Option<BaseMatch> {
        let interned: Vec<u32> = chain
            .iter()
            .map_while(|layer| self.layer_id(layer))
            .collect();
        // Layers the index has never seen end every candidate prefix; the prefix before them
        // may still be a whole known chain, and then it is a proper prefix of `chain`.
        let base = if interned.len() < chain.len() {
            let mut extended = interned;
            extended.push(u32::MAX);
            self.longest_proper_prefix(&extended)
        } else {
            self.longest_proper_prefix(&interned)
        };
        base.map(|base| self.base_match(base))
    }

    fn base_match(&self, (base, shared): (u32, u32)) -> BaseMatch {
        BaseMatch {
            base: self.images[base as usize].to_digest(),
            shared_layers: shared as usize,
            method: LineageMethod::LayerPrefix,
        }
    }

    /// The images whose base is `image` (direct children), ascending by digest.
    pub fn built_on(&self, image: &Digest) -> Vec<Digest> {
        self.children_of(image)
            .iter()
            .map(|&child| self.images[child as usize].to_digest())
            .collect()
    }

    fn children_of(&self, image: &Digest) -> &[u32] {
        match self.image_id(image) {
            Some(id) => {
                let start = self.child_start[id as usize] as usize;
                let end = self.child_start[id as usize + 1] as usize;
                &self.children[start..end]
            }
            None => &[],
        }
    }

    /// Every image built on `image`, directly or through others: children first, then their
    /// children (breadth first), each generation ascending by digest.
    pub fn descendants(&self, image: &Digest) -> Vec<Digest> {
        let mut found = Vec::new();
        let mut queue: VecDeque<u32> = self.children_of(image).iter().copied().collect();
        while let Some(id) = queue.pop_front() {
            found.push(self.images[id as usize].to_digest());
            let start = self.child_start[id as usize] as usize;
            let end = self.child_start[id as usize + 1] as usize;
            queue.extend(&self.children[start..end]);
        }
        found
    }

    /// The chain of bases from `image` down: its base first, then that base's base, and so on.
    pub fn ancestry(&self, image: &Digest) -> Vec<BaseMatch> {
        let mut found = Vec::new();
        let mut current = self.image_id(image);
        while let Some(id) = current {
            let Some(base) = self.bases[id as usize] else {
                break;
            };
            found.push(self.base_match(base));
            current = Some(base.0);
        }
        found
    }

    /// The other images with exactly the same layers as `image` (not `image` itself).
    pub fn twins(&self, image: &Digest) -> Vec<Digest> {
        let Some(id) = self.image_id(image) else {
            return Vec::new();
        };
        let chain = self.chain_of(id as usize);
        self.by_chain
            .get(&chain_hash(chain))
            .map(Group::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|&&other| other != id && self.chain_of(other as usize) == chain)
            .map(|&other| self.images[other as usize].to_digest())
            .collect()
    }

    /// Compares the base the catalog declares for `image` (its name resolved to digests, one
    /// per platform, say) with the lineage found from layers. A declared digest matches an
    /// ancestor when it *is* that ancestor or a twin of it (same layers).
    pub fn check_declared(&self, image: &Digest, declared: &[Digest]) -> BaseCheck {
        let Some(id) = self.image_id(image) else {
            return BaseCheck::Unknown {
                reason: UnknownBase::ImageNotIndexed,
            };
        };
        if declared.is_empty() {
            return BaseCheck::Unknown {
                reason: UnknownBase::NothingDeclared,
            };
        }
        let Some((direct, _)) = self.bases[id as usize] else {
            return BaseCheck::Unknown {
                reason: UnknownBase::NoBaseFound,
            };
        };
        // Declared digests the index knows, as ids (unknown ones cannot match an ancestor).
        let declared_ids: Vec<(u32, &Digest)> = declared
            .iter()
            .filter_map(|digest| Some((self.image_id(digest)?, digest)))
            .collect();
        let mut ancestor = Some(direct);
        let mut generations = 0;
        while let Some(current) = ancestor {
            generations += 1;
            let chain = self.chain_of(current as usize);
            let matched = declared_ids.iter().find(|(declared, _)| {
                *declared == current || self.chain_of(*declared as usize) == chain
            });
            if let Some((_, declared)) = matched {
                return BaseCheck::Match {
                    declared: (*declared).clone(),
                    generations,
                };
            }
            ancestor = self.bases[current as usize].map(|(base, _)| base);
        }
        let mut declared = declared.to_vec();
        declared.sort_unstable();
        declared.dedup();
        BaseCheck::Mismatch {
            declared,
            actual: self.images[direct as usize].to_digest(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest named after `name`: its hex is `name`'s bytes, zero-padded, so names sort as
    /// their digests do.
    fn d(name: &str) -> Digest {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        Digest::parse(&format!("sha256:{hex:0<64}")).expect("test names are short")
    }

    #[test]
    fn an_index_extended_in_place_equals_one_built_from_everything() {
        let chain = |layers: &[&str]| layers.iter().map(|layer| d(layer)).collect::<Vec<_>>();
        let first = vec![
            (d("m-debian"), chain(&["l-debian"])),
            (d("m-runtime"), chain(&["l-debian", "l-runtime"])),
            (d("m-zeta"), chain(&["l-zz"])),
        ];
        // New images with layers that sort before, between and after the known ones, an image
        // built on a known one, and an image already held (it keeps its first chain).
        let later = vec![
            (d("m-app"), chain(&["l-debian", "l-runtime", "l-app"])),
            (d("m-alpine"), chain(&["l-alpine"])),
            (d("m-runtime"), chain(&["l-other"])),
            (d("m-tools"), chain(&["l-debian", "l-aa", "l-zzz"])),
        ];
        let extended = LineageIndex::build(first.clone()).into_with_images(later.clone());
        let whole = LineageIndex::build(first.into_iter().chain(later));
        assert_eq!(extended, whole);
        assert_eq!(extended.base_of(&d("m-app")), whole.base_of(&d("m-app")));
        assert_eq!(
            extended.base_of(&d("m-app")).map(|base| name(&base.base)),
            Some("m-runtime".to_string())
        );
        assert_eq!(
            extended.descendants(&d("m-debian")),
            whole.descendants(&d("m-debian"))
        );
        assert_eq!(
            extended.chain(&d("m-runtime")),
            whole.chain(&d("m-runtime"))
        );
    }

    fn name(digest: &Digest) -> String {
        let hex = digest.hex().trim_end_matches('0');
        let hex = if hex.len() % 2 == 1 {
            format!("{hex}0")
        } else {
            hex.to_string()
        };
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_or('?', char::from))
            .collect()
    }

    /// `image: layer layer ...` lines.
    fn world(text: &str) -> Vec<(Digest, Vec<Digest>)> {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let (image, layers) = line.split_once(':').expect("image: layers");
                (d(image.trim()), layers.split_whitespace().map(d).collect())
            })
            .collect()
    }

    const WORLD: &str = "
        bookworm: L1
        bookworm-copy: L1
        bullseye: B1
        app: L1 A1
        app-twin: L1 A1
        app-plugin: L1 A1 P1 P2
        app-fork: L1 X1 X2
        on-bullseye: B1 C1
        lone: Z1
        empty:
    ";

    /// `base_of` for each image, as `base/shared` or `-`.
    fn check_bases(index: &LineageIndex, expect: &[(&str, &str)]) {
        for (image, expect) in expect {
            let got = match index.base_of(&d(image)) {
                Some(found) => {
                    assert_eq!(found.method, LineageMethod::LayerPrefix);
                    format!("{}/{}", name(&found.base), found.shared_layers)
                }
                None => "-".to_string(),
            };
            assert_eq!(got, *expect, "base of {image}");
        }
    }

    const BASES: &[(&str, &str)] = &[
        ("bookworm", "-"),
        // Two images share bookworm's chain: the lowest digest is the base.
        ("app", "bookworm/1"),
        ("app-twin", "bookworm/1"),
        // The longest proper prefix wins over shorter ones; a twin is never a base.
        ("app-plugin", "app/2"),
        // [L1 X1] is nobody's chain: fall back to the one-layer prefix.
        ("app-fork", "bookworm/1"),
        ("on-bullseye", "bullseye/1"),
        ("lone", "-"),
        ("empty", "-"),
        ("not-indexed", "-"),
    ];

    #[test]
    fn base_is_the_longest_proper_prefix() {
        check_bases(&LineageIndex::build(world(WORLD)), BASES);
    }

    #[test]
    fn input_order_and_duplicates_do_not_change_the_answer() {
        let mut reversed = world(WORLD);
        reversed.reverse();
        reversed.push((d("app-plugin"), vec![d("Q")]));
        reversed.insert(
            0,
            (d("app-plugin"), vec![d("L1"), d("A1"), d("P1"), d("P2")]),
        );
        let index = LineageIndex::build(reversed);
        check_bases(&index, BASES);
        assert_eq!(index.len(), 10);
        assert_eq!(
            index.chain(&d("app-plugin")).unwrap_or_default(),
            [d("L1"), d("A1"), d("P1"), d("P2")]
        );
    }

    fn names(digests: Vec<Digest>) -> Vec<String> {
        digests.iter().map(name).collect()
    }

    #[test]
    fn children_and_descendants_are_lookups() {
        let index = LineageIndex::build(world(WORLD));
        assert_eq!(
            names(index.built_on(&d("bookworm"))),
            ["app", "app-fork", "app-twin"]
        );
        assert_eq!(
            names(index.descendants(&d("bookworm"))),
            ["app", "app-fork", "app-twin", "app-plugin"]
        );
        assert_eq!(
            names(index.built_on(&d("bookworm-copy"))),
            Vec::<String>::new()
        );
        assert_eq!(names(index.built_on(&d("app"))), ["app-plugin"]);
        assert_eq!(
            names(index.built_on(&d("not-indexed"))),
            Vec::<String>::new()
        );
        assert_eq!(names(index.twins(&d("bookworm"))), ["bookworm-copy"]);
        let ancestry: Vec<String> = index
            .ancestry(&d("app-plugin"))
            .iter()
            .map(|found| name(&found.base))
            .collect();
        assert_eq!(ancestry, ["app", "bookworm"]);
    }

    #[test]
    fn a_chain_outside_the_index_finds_its_base() {
        let index = LineageIndex::build(world(WORLD));
        let cases: &[(&[&str], &str)] = &[
            (&["L1", "A1", "NEW"], "app/2"),
            (&["L1", "NEW", "A1"], "bookworm/1"),
            (&["L1", "A1"], "bookworm/1"),
            (&["L1"], "-"),
            (&["NEW"], "-"),
            (&[], "-"),
        ];
        for (chain, expect) in cases {
            let chain: Vec<Digest> = chain.iter().map(|layer| d(layer)).collect();
            let got = index
                .base_for_chain(&chain)
                .map_or("-".to_string(), |found| {
                    format!("{}/{}", name(&found.base), found.shared_layers)
                });
            assert_eq!(got, *expect, "{chain:?}");
        }
    }

    #[test]
    fn declared_base_is_checked_against_the_found_one() {
        let index = LineageIndex::build(world(WORLD));
        let check = |image: &str, declared: &[&str]| {
            let declared: Vec<Digest> = declared.iter().map(|name| d(name)).collect();
            match index.check_declared(&d(image), &declared) {
                BaseCheck::Match {
                    declared,
                    generations,
                } => {
                    format!("match {} {generations}", name(&declared))
                }
                BaseCheck::Mismatch { declared, actual } => {
                    format!("mismatch {:?} actual {}", names(declared), name(&actual))
                }
                BaseCheck::Unknown { reason } => format!("unknown {reason:?}"),
            }
        };
        let cases: &[(&str, &[&str], &str)] = &[
            ("app", &["bookworm"], "match bookworm 1"),
            ("app", &["bullseye", "bookworm"], "match bookworm 1"),
            // Declared through a twin of the base found: same layers, so the same base.
            ("app", &["bookworm-copy"], "match bookworm-copy 1"),
            ("app-plugin", &["bookworm"], "match bookworm 2"),
            ("app-plugin", &["app-twin"], "match app-twin 1"),
            (
                "on-bullseye",
                &["bookworm"],
                "mismatch [\"bookworm\"] actual bullseye",
            ),
            (
                "app",
                &["on-bullseye", "bullseye", "bullseye"],
                "mismatch [\"bullseye\", \"on-bullseye\"] actual bookworm",
            ),
            ("lone", &["bookworm"], "unknown NoBaseFound"),
            ("app", &[], "unknown NothingDeclared"),
            ("not-indexed", &["bookworm"], "unknown ImageNotIndexed"),
        ];
        for (image, declared, expect) in cases {
            assert_eq!(
                check(image, declared),
                *expect,
                "{image} declared {declared:?}"
            );
        }
    }
}
