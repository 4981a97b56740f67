//! Policy knowledge out of the store (berth-core's `policy::Knowledge`), without loading it all:
//! point lookups for the few references one `berth check` decides ([`Store::knowledge_for`]),
//! and the change sequence for a long-lived snapshot ([`Store::knowledge_changes`]: what
//! changed since a generation, merged with `Knowledge::apply`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_core::lineage::LineageIndex;
use berth_core::policy::{Knowledge, KnowledgeBuilder, KnowledgeChanges};
use berth_core::provenance::Signed;
use berth_core::{Digest, ImageRef};
use futures_util::TryStreamExt as _;
use sqlx::types::Json;

use crate::error::db;
use crate::provenance::{RECORD_COLUMNS, RecordRow, record_from};
use crate::records::digest_from;
use crate::signatures::{VERIFIED, VerifiedRow, gather, verified_from};
use crate::store::Dialect;
use crate::{RepositoryName, Store, StoreError};

/// `(index, child, is_attestation)` rows of indexes, in entry order; an index without entries
/// has one row with no child.
type IndexRow = (String, Option<String>, Option<bool>);

/// The indexes live tags stamped after `$1` point at: [`IndexRow`]s, by index and position.
/// Driven from the changed tags (indexed by generation), not from manifests: its cost follows
/// the changes, not the store.
const CHANGED_INDEXES: &str = "SELECT m.digest, e.child_digest, e.is_attestation
     FROM (SELECT DISTINCT digest FROM tags WHERE generation > $1 AND gone_at IS NULL) t
     JOIN manifests m ON m.digest = t.digest
     LEFT JOIN index_entries e ON e.index_digest = m.digest
     WHERE m.is_index
     ORDER BY m.digest, e.position";

/// `(image, diff_id)` rows of the images stamped after `$1`, by image and position.
const CHANGED_CHAINS: &str = "SELECT l.image_digest, l.diff_id
     FROM image_layers l JOIN images i ON i.digest = l.image_digest
     WHERE i.generation > $1 ORDER BY l.image_digest, l.position";

impl Store {
    /// The knowledge `policy::evaluate` reads when deciding `references` (give it
    /// `policy::references_read`: the checked images and the approved bases), read by point
    /// lookups instead of a whole-store load: each tagged reference's live tag (one query per
    /// reference, by primary key), the indexes among their digests, the layer chains of their
    /// platform images, every image whose chain is a proper prefix of one of those (one query on
    /// `images.chain_key`, the ancestry up to any base), and the live tags naming each direct
    /// base (for messages). Five queries plus one per tagged reference, whatever the store's
    /// size.
    ///
    /// The answer decides every one of `references` exactly as the whole store would: a tag
    /// outside them is simply not looked up, and the lineage holds every image their lineage
    /// questions can reach.
    pub async fn knowledge_for(&self, references: &[ImageRef]) -> Result<Knowledge, StoreError> {
        let mut tags: Vec<(ImageRef, Digest)> = Vec::new();
        let mut digests: BTreeSet<Digest> = BTreeSet::new();
        for reference in references {
            if let Some(digest) = reference.digest() {
                digests.insert(digest.clone());
            }
            let Some(tag) = reference.tag() else {
                continue;
            };
            let repository = RepositoryName::of(reference);
            let row: Option<(String,)> = on_pool!(self, |pool, Db| {
                sqlx::query_as(
                    "SELECT digest FROM tags
                     WHERE registry = $1 AND repository = $2 AND tag = $3 AND gone_at IS NULL",
                )
                .bind(repository.registry())
                .bind(repository.repository())
                .bind(tag.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db("look up a tag"))?
            });
            if let Some((digest,)) = row {
                let digest = digest_from("tags.digest", digest)?;
                digests.insert(digest.clone());
                if let Some(named) = tag_reference(&repository, tag.as_str()) {
                    tags.push((named, digest));
                }
            }
        }

        let indexes = self.tagged_indexes(&digests).await?;
        let platform_images: BTreeSet<Digest> = digests
            .iter()
            .flat_map(|digest| match indexes.get(digest) {
                Some(children) => children.clone(),
                None => vec![digest.clone()],
            })
            .collect();
        let chains = self.chains_of(&platform_images).await?;
        let prefixes: BTreeSet<String> = chains
            .values()
            .flat_map(|chain| {
                (1..chain.len()).map(|length| {
                    chain[..length]
                        .iter()
                        .map(Digest::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
            })
            .collect();
        let ancestors = self.images_with_chains(&prefixes).await?;
        let lineage = LineageIndex::build(chains.into_iter().chain(ancestors));

        // Messages name a mismatched base by its smallest live tag (directly, or through a
        // tagged index holding it): those tags, and those indexes, are looked up too.
        let bases: BTreeSet<Digest> = platform_images
            .iter()
            .filter_map(|image| lineage.base_of(image))
            .map(|found| found.base)
            .collect();
        let (naming, naming_indexes) = self.tags_naming(&bases).await?;

        let mut knowledge = Knowledge::new(lineage);
        for (reference, digest) in tags.into_iter().chain(naming) {
            knowledge.add_tag(&reference, digest);
        }
        for (index, images) in indexes.into_iter().chain(naming_indexes) {
            knowledge.add_index(index, images);
        }
        for digest in &digests {
            if let Some(record) = self.provenance_of(digest).await? {
                knowledge.add_provenance(digest, record);
            }
        }
        let subjects: Vec<Digest> = digests.iter().cloned().collect();
        for (subject, signed) in self.verified_signatures(&subjects).await? {
            knowledge.set_signatures(&subject, signed);
        }
        Ok(knowledge)
    }

    /// The store's current generation: the change sequence every write of knowledge (a
    /// repository's sync, a lineage edge) advances.
    pub async fn knowledge_generation(&self) -> Result<u64, StoreError> {
        let (generation,): (i64,) = on_pool!(self, |pool, Db| {
            sqlx::query_as("SELECT generation FROM knowledge_generation WHERE id = 1")
                .fetch_one(pool)
                .await
                .map_err(db("read the generation"))?
        });
        Ok(generation.max(0) as u64)
    }

    /// What changed in policy knowledge after generation `since`, and the generation that
    /// brings a snapshot to: `previous.apply(&changes)` (berth-core's `Knowledge::apply`) is the
    /// knowledge a whole load would give now. `since = 0` is everything: a whole load in four
    /// queries (`Knowledge::from_changes(..)`; [`Store::knowledge`] reads the same rows as
    /// streams instead).
    ///
    /// Four queries whose cost follows the changes, not the store: the generation, then the
    /// tags, indexes and image chains stamped after `since`. The generation is read first, so a
    /// write committed meanwhile may show up in this answer and again in the next one: applying
    /// a change twice is harmless. An idle store answers with empty changes and the same
    /// generation, which a caller can compare before rebuilding anything.
    pub async fn knowledge_changes(&self, since: u64) -> Result<KnowledgeChanges, StoreError> {
        let generation = self.knowledge_generation().await?;
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        type TagRow = (String, String, String, String, bool);
        type Rows = (
            Vec<TagRow>,
            Vec<IndexRow>,
            Vec<(String, String)>,
            Vec<RecordRow>,
            Vec<String>,
            Vec<VerifiedRow>,
        );
        let (tag_rows, index_rows, chain_rows, record_rows, stamped, verified): Rows =
            on_pool!(self, |pool, Db| {
                let tags = sqlx::query_as(
                    "SELECT registry, repository, tag, digest, gone_at IS NOT NULL FROM tags
                     WHERE generation > $1 ORDER BY registry, repository, tag",
                )
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(db("read changed tags"))?;
                let indexes = sqlx::query_as(CHANGED_INDEXES)
                    .bind(since)
                    .fetch_all(pool)
                    .await
                    .map_err(db("read changed indexes"))?;
                let chains = sqlx::query_as(CHANGED_CHAINS)
                    .bind(since)
                    .fetch_all(pool)
                    .await
                    .map_err(db("read changed images"))?;
                let records: Vec<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {RECORD_COLUMNS} FROM provenance_records WHERE generation > $1
                 ORDER BY digest"
                )))
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(db("read changed provenance records"))?;
                let stamped: Vec<(String,)> = sqlx::query_as(
                    "SELECT subject FROM signature_subjects WHERE generation > $1 ORDER BY subject",
                )
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(db("read subjects whose signatures changed"))?;
                let verified: Vec<VerifiedRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{VERIFIED} AND c.subject IN
                     (SELECT subject FROM signature_subjects WHERE generation > $1)
                 ORDER BY c.subject, c.layer, c.key_fingerprint"
                )))
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(db("read changed signatures"))?;
                let stamped = stamped.into_iter().map(|(subject,)| subject).collect();
                (tags, indexes, chains, records, stamped, verified)
            });
        // Every stamped subject is stated, with what it has now (nothing: its signatures went).
        let mut verified: HashMap<Digest, Vec<Signed>> = gather(verified)?.into_iter().collect();
        let mut signatures = Vec::with_capacity(stamped.len());
        for subject in stamped {
            let subject = digest_from("signature_subjects.subject", subject)?;
            let signed = verified.remove(&subject).unwrap_or_default();
            signatures.push((subject, signed));
        }
        let mut tags = Vec::with_capacity(tag_rows.len());
        for (registry, repository, tag, digest, gone) in tag_rows {
            let digest = digest_from("tags.digest", digest)?;
            let name = RepositoryName::new(&registry, &repository).ok();
            if let Some(reference) = name.and_then(|name| tag_reference(&name, &tag)) {
                tags.push((reference, (!gone).then_some(digest)));
            }
        }
        Ok(KnowledgeChanges {
            generation,
            tags,
            indexes: index_entries(index_rows)?.into_iter().collect(),
            images: chains_from(chain_rows)?.into_iter().collect(),
            provenance: record_rows
                .into_iter()
                .map(record_from)
                .collect::<Result<_, _>>()?,
            signatures,
        })
    }

    /// All of the store's policy knowledge (what the webhook's first snapshot starts from):
    /// what `Knowledge::from_changes(self.knowledge_changes(0)?)` gives, read as three streams
    /// of rows that go into the snapshot as they arrive (`KnowledgeBuilder`), so the load never
    /// holds every row, or every tag and chain as text, beside the snapshot it builds.
    pub async fn knowledge(&self) -> Result<(Knowledge, u64), StoreError> {
        let generation = self.knowledge_generation().await?;
        let mut builder = KnowledgeBuilder::new();
        on_pool!(self, |pool, Db| {
            let mut rows = sqlx::query_as::<_, (String, String, String, String)>(
                "SELECT registry, repository, tag, digest FROM tags
                 WHERE generation > 0 AND gone_at IS NULL ORDER BY registry, repository, tag",
            )
            .fetch(pool);
            while let Some((registry, repository, tag, digest)) =
                rows.try_next().await.map_err(db("read tags"))?
            {
                let digest = digest_from("tags.digest", digest)?;
                let name = RepositoryName::new(&registry, &repository).ok();
                if let Some(reference) = name.and_then(|name| tag_reference(&name, &tag)) {
                    builder.tag(&reference, &digest);
                }
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, IndexRow>(CHANGED_INDEXES)
                .bind(0i64)
                .fetch(pool);
            let mut index: Option<(Digest, Vec<Digest>)> = None;
            while let Some((digest, child, is_attestation)) =
                rows.try_next().await.map_err(db("read indexes"))?
            {
                if index
                    .as_ref()
                    .is_none_or(|(held, _)| held.as_str() != digest)
                {
                    if let Some((done, children)) = index.take() {
                        builder.index(&done, &children);
                    }
                    index = Some((digest_from("manifests.digest", digest)?, Vec::new()));
                }
                if let (Some((_, children)), Some(child)) = (index.as_mut(), child)
                    && is_attestation != Some(true)
                {
                    children.push(digest_from("index_entries.child_digest", child)?);
                }
            }
            if let Some((done, children)) = index {
                builder.index(&done, &children);
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, (String, String)>(CHANGED_CHAINS)
                .bind(0i64)
                .fetch(pool);
            let mut image: Option<Digest> = None;
            let mut chain: Vec<Digest> = Vec::new();
            while let Some((digest, diff_id)) = rows.try_next().await.map_err(db("read images"))? {
                if image.as_ref().is_none_or(|held| held.as_str() != digest) {
                    if let Some(done) = image.take() {
                        builder.image(&done, &chain);
                    }
                    chain.clear();
                    image = Some(digest_from("image_layers.image_digest", digest)?);
                }
                chain.push(digest_from("image_layers.diff_id", diff_id)?);
            }
            if let Some(done) = image {
                builder.image(&done, &chain);
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, RecordRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM provenance_records ORDER BY digest"
            )))
            .fetch(pool);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(db("read provenance records"))?
            {
                let (digest, record) = record_from(row)?;
                builder.provenance(&digest, record);
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, VerifiedRow>(sqlx::AssertSqlSafe(format!(
                "{VERIFIED} ORDER BY c.subject, c.layer, c.key_fingerprint"
            )))
            .fetch(pool);
            let mut held: Option<(Digest, Vec<Signed>)> = None;
            while let Some(row) = rows.try_next().await.map_err(db("read signatures"))? {
                let (subject, signed) = verified_from(row)?;
                match &mut held {
                    Some((digest, list)) if *digest == subject => list.push(signed),
                    _ => {
                        if let Some((digest, list)) = held.replace((subject, vec![signed])) {
                            builder.signatures(&digest, list);
                        }
                    }
                }
            }
            if let Some((digest, list)) = held {
                builder.signatures(&digest, list);
            }
        });
        Ok((builder.finish(), generation))
    }

    /// The indexes among `digests` that a live tag points at, with their runnable children.
    async fn tagged_indexes(
        &self,
        digests: &BTreeSet<Digest>,
    ) -> Result<BTreeMap<Digest, Vec<Digest>>, StoreError> {
        if digests.is_empty() {
            return Ok(BTreeMap::new());
        }
        let texts: Vec<&str> = digests.iter().map(Digest::as_str).collect();
        let rows: Vec<IndexRow> = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT m.digest, e.child_digest, e.is_attestation
                 FROM manifests m LEFT JOIN index_entries e ON e.index_digest = m.digest
                 WHERE m.is_index AND m.digest IN ({})
                   AND EXISTS (SELECT 1 FROM tags t WHERE t.digest = m.digest AND t.gone_at IS NULL)
                 ORDER BY m.digest, e.position",
                <Db as Dialect>::JSON_STRINGS
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&texts))
                .fetch_all(pool)
                .await
                .map_err(db("look up indexes"))?
        });
        index_entries(rows)
    }

    /// The layer chains (diff_ids, base first) of those of `images` that have layers.
    async fn chains_of(
        &self,
        images: &BTreeSet<Digest>,
    ) -> Result<BTreeMap<Digest, Vec<Digest>>, StoreError> {
        if images.is_empty() {
            return Ok(BTreeMap::new());
        }
        let texts: Vec<&str> = images.iter().map(Digest::as_str).collect();
        let rows: Vec<(String, String)> = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT image_digest, diff_id FROM image_layers WHERE image_digest IN ({})
                 ORDER BY image_digest, position",
                <Db as Dialect>::JSON_STRINGS
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&texts))
                .fetch_all(pool)
                .await
                .map_err(db("read layer chains"))?
        });
        chains_from(rows)
    }

    /// Every image whose chain key is one of `keys`, with its chain.
    async fn images_with_chains(
        &self,
        keys: &BTreeSet<String>,
    ) -> Result<Vec<(Digest, Vec<Digest>)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let rows: Vec<(String, String)> = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT digest, chain_key FROM images WHERE chain_key IN ({}) ORDER BY digest",
                <Db as Dialect>::JSON_STRINGS
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&keys))
                .fetch_all(pool)
                .await
                .map_err(db("find images by chain"))?
        });
        rows.into_iter()
            .map(|(digest, key)| {
                let chain = key
                    .split(',')
                    .map(|diff_id| digest_from("images.chain_key", diff_id.to_string()))
                    .collect::<Result<_, _>>()?;
                Ok((digest_from("images.digest", digest)?, chain))
            })
            .collect()
    }

    /// The live tags pointing at one of `images`, directly or through an index holding it as a
    /// runnable entry, and those indexes with their runnable children.
    #[allow(clippy::type_complexity)]
    async fn tags_naming(
        &self,
        images: &BTreeSet<Digest>,
    ) -> Result<(Vec<(ImageRef, Digest)>, BTreeMap<Digest, Vec<Digest>>), StoreError> {
        if images.is_empty() {
            return Ok((Vec::new(), BTreeMap::new()));
        }
        let texts: Vec<&str> = images.iter().map(Digest::as_str).collect();
        let rows: Vec<(String, String, String, String)> = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT t.registry, t.repository, t.tag, t.digest FROM tags t
                 WHERE t.gone_at IS NULL AND t.digest IN ({images})
                 UNION
                 SELECT t.registry, t.repository, t.tag, t.digest
                 FROM tags t JOIN index_entries e ON e.index_digest = t.digest
                 WHERE t.gone_at IS NULL AND NOT e.is_attestation AND e.child_digest IN ({images})",
                images = <Db as Dialect>::JSON_STRINGS
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&texts))
                .fetch_all(pool)
                .await
                .map_err(db("find the tags naming a base"))?
        });
        let mut tags = Vec::with_capacity(rows.len());
        let mut targets = BTreeSet::new();
        for (registry, repository, tag, digest) in rows {
            let digest = digest_from("tags.digest", digest)?;
            let name = RepositoryName::new(&registry, &repository).ok();
            if let Some(reference) = name.and_then(|name| tag_reference(&name, &tag)) {
                targets.insert(digest.clone());
                tags.push((reference, digest));
            }
        }
        let indexes = self.tagged_indexes(&targets).await?;
        Ok((tags, indexes))
    }
}

/// `registry/repository:tag` as a reference, spelled as the whole-store load spells it (a
/// stored name that does not parse is left out there too).
fn tag_reference(repository: &RepositoryName, tag: &str) -> Option<ImageRef> {
    ImageRef::parse(&format!(
        "{}/{}:{tag}",
        repository.registry(),
        repository.repository()
    ))
    .ok()
}

/// Groups index rows into each index's runnable children, in entry order.
fn index_entries(rows: Vec<IndexRow>) -> Result<BTreeMap<Digest, Vec<Digest>>, StoreError> {
    let mut indexes: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for (index, child, is_attestation) in rows {
        let children = indexes
            .entry(digest_from("manifests.digest", index)?)
            .or_default();
        if let Some(child) = child
            && is_attestation != Some(true)
        {
            children.push(digest_from("index_entries.child_digest", child)?);
        }
    }
    Ok(indexes)
}

/// Groups `(image, diff_id)` rows, ordered by image and position, into chains.
fn chains_from(rows: Vec<(String, String)>) -> Result<BTreeMap<Digest, Vec<Digest>>, StoreError> {
    let mut chains: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for (image, diff_id) in rows {
        chains
            .entry(digest_from("image_layers.image_digest", image)?)
            .or_default()
            .push(digest_from("image_layers.diff_id", diff_id)?);
    }
    Ok(chains)
}
