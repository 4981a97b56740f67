//! Registry knowledge: recording syncs (one transaction per repository), recording failures
//! beside what was known, and the questions sync, lineage and `berth images` ask.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use berth_core::lineage::BaseMatch;
use berth_core::osrelease::OsIdentity;
use berth_core::{Digest, Tag};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::types::Json;

use crate::error::db;
use crate::records::{
    digest_from, libc_from, libc_text, lineage_method_from, lineage_method_text,
    optional_digest_from, platform_from, repository_from, signed, tag_from, unsigned_from,
};
use crate::store::{Dialect, stored_time};
use crate::{
    ConfigFacts, ImageFilter, ImageLocation, ImageSummary, IndexEntry, LayerChain, LayerRecord,
    ManifestKind, ManifestRecord, Platform, RepoSnapshot, RepositoryName, RepositoryStatus, Store,
    StoreError, SyncStatus, SyncSummary, TagRecord,
};

/// An image's diff_ids joined by ',' (the `chain_key` column): equal keys mean twins. `None`
/// for an image without layers, which is nobody's twin.
fn chain_key(image: &crate::ImageRecord) -> Option<String> {
    (!image.layers.is_empty()).then(|| {
        image
            .layers
            .iter()
            .map(|layer| layer.diff_id.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Takes the next generation of the change sequence. The row stays locked until the writing
/// transaction ends (SQLite writers are serialized anyway), so generations become visible in
/// order: a reader that saw generation G has seen every row stamped G or less.
pub(crate) const NEXT_GENERATION: &str =
    "UPDATE knowledge_generation SET generation = generation + 1 WHERE id = 1
     RETURNING generation";

/// Error texts are capped: a registry's error page must not bloat the store.
const ERROR_TEXT_MAX: usize = 2048;

/// Rows per multi-row INSERT when a sync is recorded: 500 rows of 15 columns stay far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// How much the store knows ([`Store::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KnowledgeCounts {
    pub images: u64,
    pub manifests: u64,
    pub repositories: u64,
    pub live_tags: u64,
}

/// A row of `images` as selected by [`SELECT_IMAGES`].
type ImageRow = (
    String,
    String,
    Option<DateTime<Utc>>,
    String,
    String,
    Option<String>,
    Json<BTreeMap<String, String>>,
    Json<BTreeMap<String, String>>,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const SELECT_IMAGES: &str = "
WITH RECURSIVE
    roots (digest) AS (
        SELECT $4 WHERE $4 IS NOT NULL
        UNION
        SELECT child_digest FROM index_entries WHERE index_digest = $4
    ),
    -- Twins (the same layers under another manifest) stand for one another as bases.
    twin_roots (digest) AS (
        SELECT digest FROM roots
        UNION
        SELECT t.digest FROM roots r JOIN images ri ON ri.digest = r.digest
        JOIN images t ON t.chain_key = ri.chain_key
    ),
    descendants (digest) AS (
        SELECT i.digest FROM images i JOIN twin_roots r ON i.base_digest = r.digest
        UNION
        SELECT i.digest FROM descendants d
        JOIN images di ON di.digest = d.digest
        JOIN images t ON t.digest = di.digest OR t.chain_key = di.chain_key
        JOIN images i ON i.base_digest = t.digest
    ),
    in_repository (digest) AS (
        SELECT t.digest FROM tags t
        WHERE t.registry = $1 AND t.repository = $2 AND t.gone_at IS NULL
        UNION
        SELECT e.child_digest FROM tags t JOIN index_entries e ON e.index_digest = t.digest
        WHERE t.registry = $1 AND t.repository = $2 AND t.gone_at IS NULL
    )
SELECT i.digest, i.config_digest, i.created, i.os, i.arch, i.variant, i.labels, i.annotations,
       i.total_size, i.os_id, i.os_pretty, i.libc, i.base_digest, i.base_method,
       i.base_shared_layers
FROM images i
WHERE ($1 IS NULL OR i.digest IN (SELECT digest FROM in_repository))
  AND ($3 IS NULL OR i.os_id = $3 OR substr(i.os_id, 1, length($3) + 1) = $3 || '-')
  AND ($4 IS NULL OR i.digest IN (SELECT digest FROM descendants))
  AND ($5 IS NULL OR i.digest = $5)
ORDER BY i.created DESC NULLS LAST, i.digest
LIMIT $6 OFFSET $7";

/// One image by digest, with the columns of [`SELECT_IMAGES`].
const SELECT_IMAGE: &str = "
SELECT i.digest, i.config_digest, i.created, i.os, i.arch, i.variant, i.labels, i.annotations,
       i.total_size, i.os_id, i.os_pretty, i.libc, i.base_digest, i.base_method,
       i.base_shared_layers
FROM images i WHERE i.digest = $1";

/// Live tags resolving to the images whose digests are the JSON array `$1`; `{images}` is
/// the dialect's subquery over that array.
const SELECT_LOCATIONS: &str = "
SELECT t.digest, t.registry, t.repository, t.tag, NULL
FROM tags t
WHERE t.gone_at IS NULL AND t.digest IN ({images})
UNION ALL
SELECT e.child_digest, t.registry, t.repository, t.tag, t.digest
FROM tags t JOIN index_entries e ON e.index_digest = t.digest
WHERE t.gone_at IS NULL AND e.child_digest IN ({images})
ORDER BY 2, 3, 4, 1";

const SELECT_STATUS: &str = "
SELECT r.registry, r.name, r.last_sync_ok_at, r.last_sync_attempt_at, r.last_error,
       g.last_sync_ok_at, g.last_sync_attempt_at, g.last_error,
       (SELECT COUNT(*) FROM tags t
        WHERE t.registry = r.registry AND t.repository = r.name AND t.gone_at IS NULL),
       (SELECT COUNT(*) FROM tags t
        WHERE t.registry = r.registry AND t.repository = r.name AND t.gone_at IS NOT NULL),
       r.failing_since
FROM repositories r JOIN registries g ON g.host = r.registry
WHERE ($1 IS NULL OR (r.registry = $1 AND r.name = $2))
  AND (NOT $3 OR r.last_error IS NOT NULL)
ORDER BY r.registry, r.name";

type StatusRow = (
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    i64,
    Option<DateTime<Utc>>,
);

impl Store {
    /// Records one successful sync of `repository`, all or nothing: upserts what is new, marks
    /// tags missing from the snapshot as gone (`gone_at = now`), brings back tags that return,
    /// and sets the repository's and its registry's `last_sync_ok_at = now`, clearing their
    /// `last_error`.
    pub async fn record_repository_sync(
        &self,
        repository: &RepositoryName,
        snapshot: &RepoSnapshot,
        now: DateTime<Utc>,
    ) -> Result<SyncSummary, StoreError> {
        let now = stored_time(now);
        let registry = repository.registry();
        let name = repository.repository();
        let snapshot_tags: BTreeMap<&str, &Digest> = snapshot
            .tags
            .iter()
            .map(|(tag, digest)| (tag.as_str(), digest))
            .collect();
        let mut summary = SyncSummary::default();
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin a sync"))?;
            if let Some(lock) = <Db as Dialect>::LOCK_REPOSITORY {
                sqlx::query(lock)
                    .bind(repository_lock_key(repository))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("lock the repository"))?;
            }
            check_fence!(self, tx, Db);
            let (generation,): (i64,) = sqlx::query_as(NEXT_GENERATION)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("take the next generation"))?;
            sqlx::query(
                "INSERT INTO registries (host, last_sync_ok_at, last_sync_attempt_at, last_error)
                 VALUES ($1, $2, $2, NULL)
                 ON CONFLICT (host) DO UPDATE SET
                     last_sync_ok_at = excluded.last_sync_ok_at,
                     last_sync_attempt_at = excluded.last_sync_attempt_at,
                     last_error = NULL",
            )
            .bind(registry)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("record the registry"))?;
            sqlx::query(
                "INSERT INTO repositories
                     (registry, name, last_sync_ok_at, last_sync_attempt_at, last_error,
                      last_sync_truncated)
                 VALUES ($1, $2, $3, $3, NULL, $4)
                 ON CONFLICT (registry, name) DO UPDATE SET
                     last_sync_ok_at = excluded.last_sync_ok_at,
                     last_sync_attempt_at = excluded.last_sync_attempt_at,
                     last_error = NULL,
                     failing_since = NULL,
                     last_sync_truncated = excluded.last_sync_truncated",
            )
            .bind(registry)
            .bind(name)
            .bind(now)
            .bind(snapshot.truncated)
            .execute(&mut *tx)
            .await
            .map_err(db("record the repository"))?;

            // Rows go in as multi-row INSERTs of up to ROWS_PER_STATEMENT rows: a statement
            // per row cost a round trip to SQLite's worker thread each, most of a cold sync's
            // CPU (docs/benchmarks.md). Duplicates are dropped first (an upsert may not touch a
            // row twice in one statement on PostgreSQL).
            let mut seen = HashSet::new();
            let manifests: Vec<_> = snapshot
                .manifests
                .iter()
                .filter(|manifest| seen.insert(manifest.digest.as_str()))
                .map(|manifest| {
                    Ok((
                        manifest,
                        signed("manifest size", manifest.raw.len() as u64)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
            for chunk in manifests.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO manifests (digest, media_type, size, raw, is_index, first_seen_at) ",
                );
                insert.push_values(chunk, |mut row, (manifest, size)| {
                    row.push_bind(manifest.digest.as_str())
                        .push_bind(manifest.media_type.as_str())
                        .push_bind(*size)
                        .push_bind(manifest.raw.as_slice())
                        .push_bind(matches!(manifest.kind, ManifestKind::Index(_)))
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (digest) DO NOTHING");
                let inserted = insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record manifests"))?;
                summary.manifests_added += inserted.rows_affected();
            }
            let mut entries = Vec::new();
            for (manifest, _) in &manifests {
                if let ManifestKind::Index(children) = &manifest.kind {
                    for (position, entry) in children.iter().enumerate() {
                        let position = signed("index position", position as u64)?;
                        entries.push((manifest.digest.as_str(), position, entry));
                    }
                }
            }
            for chunk in entries.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO index_entries (index_digest, position, child_digest, media_type,
                         os, arch, variant, is_attestation) ",
                );
                insert.push_values(chunk, |mut row, (index, position, entry)| {
                    let platform = entry.platform.as_ref();
                    row.push_bind(*index)
                        .push_bind(*position)
                        .push_bind(entry.child.as_str())
                        .push_bind(entry.media_type.as_str())
                        .push_bind(platform.map(|p| p.os.as_str()))
                        .push_bind(platform.map(|p| p.architecture.as_str()))
                        .push_bind(platform.and_then(|p| p.variant.as_deref()))
                        .push_bind(entry.is_attestation);
                });
                insert.push(" ON CONFLICT (index_digest, position) DO NOTHING");
                insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record index entries"))?;
            }

            // Facts from the manifest and config never change; the OS identity may arrive later
            // (a layer read that failed before), so it fills in but never erases.
            let mut seen = HashSet::new();
            let images: Vec<_> = snapshot
                .images
                .iter()
                .filter(|image| seen.insert(image.digest.as_str()))
                .map(|image| Ok((image, signed("image total size", image.total_size)?)))
                .collect::<Result<_, StoreError>>()?;
            for chunk in images.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO images (digest, config_digest, created, os, arch, variant,
                         labels, annotations, total_size, os_id, os_pretty, libc, first_seen_at,
                         chain_key, generation) ",
                );
                insert.push_values(chunk, |mut row, (image, total_size)| {
                    row.push_bind(image.digest.as_str())
                        .push_bind(image.config_digest.as_str())
                        .push_bind(image.created.map(stored_time))
                        .push_bind(image.platform.os.as_str())
                        .push_bind(image.platform.architecture.as_str())
                        .push_bind(image.platform.variant.as_deref())
                        .push_bind(Json(&image.labels))
                        .push_bind(Json(&image.annotations))
                        .push_bind(*total_size)
                        .push_bind(image.os_id.as_ref().map(OsIdentity::as_str))
                        .push_bind(image.os_pretty.as_deref())
                        .push_bind(image.libc.map(libc_text))
                        .push_bind(now)
                        .push_bind(chain_key(image))
                        .push_bind(generation);
                });
                insert.push(
                    " ON CONFLICT (digest) DO UPDATE SET
                         os_id = COALESCE(excluded.os_id, images.os_id),
                         os_pretty = COALESCE(excluded.os_pretty, images.os_pretty),
                         libc = COALESCE(excluded.libc, images.libc)",
                );
                insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record images"))?;
            }
            let mut layers = Vec::new();
            for (image, _) in &images {
                for (position, layer) in image.layers.iter().enumerate() {
                    let position = signed("layer position", position as u64)?;
                    let size = signed("layer size", layer.size)?;
                    layers.push((image.digest.as_str(), position, layer, size));
                }
            }
            for chunk in layers.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO image_layers (image_digest, position, layer_digest, diff_id,
                         size, media_type) ",
                );
                insert.push_values(chunk, |mut row, (image, position, layer, size)| {
                    row.push_bind(*image)
                        .push_bind(*position)
                        .push_bind(layer.digest.as_str())
                        .push_bind(layer.diff_id.as_str())
                        .push_bind(*size)
                        .push_bind(layer.media_type.as_str());
                });
                insert.push(" ON CONFLICT (image_digest, position) DO NOTHING");
                insert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record layers"))?;
            }

            for fact in &snapshot.layer_facts {
                sqlx::query(UPSERT_LAYER_FACT)
                    .bind(fact.layer.as_str())
                    .bind(Json(&fact.summary))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record a layer fact"))?;
            }

            let known: Vec<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT tag, digest, gone_at FROM tags WHERE registry = $1 AND repository = $2",
            )
            .bind(registry)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("read the repository's tags"))?;
            let known: HashMap<&str, (&str, bool)> = known
                .iter()
                .map(|(tag, digest, gone_at)| (tag.as_str(), (digest.as_str(), gone_at.is_some())))
                .collect();

            let tag_rows: Vec<(&str, &str)> = snapshot_tags
                .iter()
                .map(|(tag, digest)| (*tag, digest.as_str()))
                .collect();
            for chunk in tag_rows.chunks(ROWS_PER_STATEMENT) {
                let mut upsert = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO tags (registry, repository, tag, digest, first_seen_at,
                         last_seen_at, digest_since, gone_at, generation) ",
                );
                upsert.push_values(chunk, |mut row, (tag, digest)| {
                    row.push_bind(registry)
                        .push_bind(name)
                        .push_bind(*tag)
                        .push_bind(*digest)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(now)
                        .push_bind(None::<DateTime<Utc>>)
                        .push_bind(generation);
                });
                upsert.push(
                    " ON CONFLICT (registry, repository, tag) DO UPDATE SET
                         digest = excluded.digest,
                         last_seen_at = excluded.last_seen_at,
                         digest_since = CASE WHEN tags.digest = excluded.digest
                             THEN tags.digest_since ELSE excluded.digest_since END,
                         gone_at = NULL,
                         generation = CASE
                             WHEN tags.digest = excluded.digest AND tags.gone_at IS NULL
                             THEN tags.generation ELSE excluded.generation END",
                );
                upsert
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record tags"))?;
            }
            for (tag, digest) in &snapshot_tags {
                match known.get(tag) {
                    None => summary.tags_added += 1,
                    Some((_, true)) => summary.tags_returned += 1,
                    Some((was, false)) if *was != digest.as_str() => summary.tags_moved += 1,
                    Some(_) => {}
                }
                // Where it pointed before, for freshness: "the base's channel moved from B".
                if let Some((was, _)) = known.get(tag)
                    && *was != digest.as_str()
                {
                    sqlx::query(
                        "INSERT INTO tag_moves (registry, repository, tag, from_digest,
                             to_digest, moved_at)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(registry)
                    .bind(name)
                    .bind(*tag)
                    .bind(*was)
                    .bind(digest.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record a tag move"))?;
                }
            }

            // A digest tagged here again is no longer one berth deleted.
            let tagged: Vec<&str> = snapshot_tags
                .values()
                .map(|d| d.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for chunk in tagged.chunks(ROWS_PER_STATEMENT) {
                let mut delete = sqlx::QueryBuilder::<Db>::new(
                    "DELETE FROM deleted_manifests WHERE registry = ",
                );
                delete.push_bind(registry);
                delete.push(" AND repository = ").push_bind(name);
                delete.push(" AND digest IN (");
                let mut digests = delete.separated(", ");
                for digest in chunk {
                    digests.push_bind(*digest);
                }
                delete.push(")");
                delete
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(db("forget deletions"))?;
            }

            for (tag, (_, gone)) in &known {
                if *gone || snapshot_tags.contains_key(tag) {
                    continue;
                }
                sqlx::query(
                    "UPDATE tags SET gone_at = $4, generation = $5
                     WHERE registry = $1 AND repository = $2 AND tag = $3",
                )
                .bind(registry)
                .bind(name)
                .bind(*tag)
                .bind(now)
                .bind(generation)
                .execute(&mut *tx)
                .await
                .map_err(db("mark a tag gone"))?;
                summary.tags_gone += 1;
            }

            tx.commit().await.map_err(db("commit a sync"))?;
        });
        tracing::debug!(repository = %repository, ?summary, "sync recorded");
        Ok(summary)
    }

    /// Records that syncing a whole registry failed (down, 401, 429 past the retry budget):
    /// only its attempt time and error change; what berth knew stays.
    pub async fn record_registry_failure(
        &self,
        registry: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = stored_time(now);
        let error = capped(error);
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a registry failure"))?;
            check_fence!(self, tx, Db);
            sqlx::query(
                "INSERT INTO registries (host, last_sync_attempt_at, last_error)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (host) DO UPDATE SET
                     last_sync_attempt_at = excluded.last_sync_attempt_at,
                     last_error = excluded.last_error",
            )
            .bind(registry)
            .bind(now)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(db("record a registry failure"))?;
            tx.commit().await.map_err(db("commit a registry failure"))?;
        });
        Ok(())
    }

    /// Records that syncing one repository failed: only its attempt time and error change.
    pub async fn record_repository_failure(
        &self,
        repository: &RepositoryName,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = stored_time(now);
        let error = capped(error);
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a failure"))?;
            check_fence!(self, tx, Db);
            sqlx::query("INSERT INTO registries (host) VALUES ($1) ON CONFLICT (host) DO NOTHING")
                .bind(repository.registry())
                .execute(&mut *tx)
                .await
                .map_err(db("record the registry"))?;
            sqlx::query(
                "INSERT INTO repositories
                     (registry, name, last_sync_attempt_at, last_error, failing_since)
                 VALUES ($1, $2, $3, $4, $3)
                 ON CONFLICT (registry, name) DO UPDATE SET
                     last_sync_attempt_at = excluded.last_sync_attempt_at,
                     last_error = excluded.last_error,
                     failing_since = COALESCE(repositories.failing_since, excluded.failing_since)",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .bind(now)
            .bind(error)
            .execute(&mut *tx)
            .await
            .map_err(db("record a repository failure"))?;
            tx.commit()
                .await
                .map_err(db("commit a repository failure"))?;
        });
        Ok(())
    }

    /// Caches what the layer reader found in a layer, outside a sync.
    pub async fn record_layer_fact(
        &self,
        layer: &Digest,
        summary: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = stored_time(now);
        on_pool!(self, |pool, Db| {
            sqlx::query(UPSERT_LAYER_FACT)
                .bind(layer.as_str())
                .bind(Json(summary))
                .bind(now)
                .execute(pool)
                .await
                .map_err(db("record a layer fact"))?;
        });
        Ok(())
    }

    /// Whether the manifest was fetched before (content-addressed: it never needs fetching again).
    pub async fn known_manifest(&self, digest: &Digest) -> Result<bool, StoreError> {
        on_pool!(self, |pool, Db| {
            let (count,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM manifests WHERE digest = $1")
                    .bind(digest.as_str())
                    .fetch_one(pool)
                    .await
                    .map_err(db("look up a manifest"))?;
            Ok(count > 0)
        })
    }

    /// The digests among `digests` that the store already holds manifests for.
    pub async fn known_manifests(&self, digests: &[Digest]) -> Result<HashSet<Digest>, StoreError> {
        if digests.is_empty() {
            return Ok(HashSet::new());
        }
        let texts: Vec<&str> = digests.iter().map(Digest::as_str).collect();
        let rows: Vec<(String,)> = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT digest FROM manifests WHERE digest IN ({})",
                <Db as Dialect>::JSON_STRINGS
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Json(&texts))
                .fetch_all(pool)
                .await
                .map_err(db("look up manifests"))?
        });
        rows.into_iter()
            .map(|(digest,)| digest_from("manifests.digest", digest))
            .collect()
    }

    /// The repository's live tags and their digests, by tag.
    pub async fn tag_digests(
        &self,
        repository: &RepositoryName,
    ) -> Result<Vec<(Tag, Digest)>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT tag, digest FROM tags
                 WHERE registry = $1 AND repository = $2 AND gone_at IS NULL ORDER BY tag",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .fetch_all(pool)
            .await
            .map_err(db("list tags"))?
        });
        rows.into_iter()
            .map(|(tag, digest)| Ok((tag_from(tag)?, digest_from("tags.digest", digest)?)))
            .collect()
    }

    /// The digests the repository's live tags have pointed at since `since` or later (a tag
    /// that moved restarts its time), the most recently reached first, at most `limit`.
    pub async fn digests_tagged_since(
        &self,
        repository: &RepositoryName,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String,)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT digest FROM tags
                 WHERE registry = $1 AND repository = $2 AND gone_at IS NULL
                   AND digest_since >= $3
                 GROUP BY digest ORDER BY MAX(digest_since) DESC, digest LIMIT $4",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .bind(stored_time(since))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db("list recently tagged digests"))?
        });
        rows.into_iter()
            .map(|(digest,)| digest_from("tags.digest", digest))
            .collect()
    }

    /// Every tag the repository ever had, gone ones included, by tag.
    pub async fn tags(&self, repository: &RepositoryName) -> Result<Vec<TagRecord>, StoreError> {
        type Row = (
            String,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT tag, digest, first_seen_at, last_seen_at, digest_since, gone_at FROM tags
                 WHERE registry = $1 AND repository = $2 ORDER BY tag",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .fetch_all(pool)
            .await
            .map_err(db("list tags"))?
        });
        rows.into_iter()
            .map(
                |(tag, digest, first_seen_at, last_seen_at, digest_since, gone_at)| {
                    Ok(TagRecord {
                        tag: tag_from(tag)?,
                        digest: digest_from("tags.digest", digest)?,
                        first_seen_at,
                        last_seen_at,
                        digest_since,
                        gone_at,
                    })
                },
            )
            .collect()
    }

    /// A stored manifest: its exact bytes, and its entries when it is an index.
    pub async fn manifest(&self, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        type EntryRow = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        );
        type ManifestRow = (String, Vec<u8>, bool);
        let (row, entries): (Option<ManifestRow>, Vec<EntryRow>) = on_pool!(self, |pool, Db| {
            let row =
                sqlx::query_as("SELECT media_type, raw, is_index FROM manifests WHERE digest = $1")
                    .bind(digest.as_str())
                    .fetch_optional(pool)
                    .await
                    .map_err(db("read a manifest"))?;
            let entries = sqlx::query_as(
                "SELECT child_digest, media_type, os, arch, variant, is_attestation
                     FROM index_entries WHERE index_digest = $1 ORDER BY position",
            )
            .bind(digest.as_str())
            .fetch_all(pool)
            .await
            .map_err(db("read an index"))?;
            (row, entries)
        });
        let Some((media_type, raw, is_index)) = row else {
            return Ok(None);
        };
        let kind = if is_index {
            let entries = entries
                .into_iter()
                .map(|(child, media_type, os, arch, variant, is_attestation)| {
                    Ok(IndexEntry {
                        child: digest_from("index_entries.child_digest", child)?,
                        media_type,
                        platform: platform_from(os, arch, variant),
                        is_attestation,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            ManifestKind::Index(entries)
        } else {
            ManifestKind::Image
        };
        Ok(Some(ManifestRecord {
            digest: digest.clone(),
            media_type,
            raw,
            kind,
        }))
    }

    /// What the layer reader found in a layer, if it was read before.
    pub async fn layer_fact(
        &self,
        layer: &Digest,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(Json<serde_json::Value>,)> = on_pool!(self, |pool, Db| {
            sqlx::query_as("SELECT summary FROM layer_facts WHERE layer_digest = $1")
                .bind(layer.as_str())
                .fetch_optional(pool)
                .await
                .map_err(db("read a layer fact"))?
        });
        Ok(row.map(|(Json(summary),)| summary))
    }

    /// The facts of config `config` as recorded with an image that has it (through the
    /// `images_config_digest` index), so a sync never fetches a stored config again.
    pub async fn config_facts(&self, config: &Digest) -> Result<Option<ConfigFacts>, StoreError> {
        type Row = (
            String,
            Option<DateTime<Utc>>,
            String,
            String,
            Option<String>,
            Json<BTreeMap<String, String>>,
        );
        let (row, diff_ids): (Option<Row>, Vec<(String,)>) = on_pool!(self, |pool, Db| {
            let row: Option<Row> = sqlx::query_as(
                "SELECT digest, created, os, arch, variant, labels FROM images
                 WHERE config_digest = $1 ORDER BY digest LIMIT 1",
            )
            .bind(config.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db("look up a config"))?;
            let diff_ids = match &row {
                None => Vec::new(),
                Some((image, ..)) => sqlx::query_as(
                    "SELECT diff_id FROM image_layers WHERE image_digest = $1 ORDER BY position",
                )
                .bind(image)
                .fetch_all(pool)
                .await
                .map_err(db("read a config's diff_ids"))?,
            };
            (row, diff_ids)
        });
        let Some((_, created, os, architecture, variant, Json(labels))) = row else {
            return Ok(None);
        };
        Ok(Some(ConfigFacts {
            created,
            platform: Platform {
                os,
                architecture,
                variant,
            },
            labels,
            diff_ids: diff_ids
                .into_iter()
                .map(|(diff_id,)| digest_from("image_layers.diff_id", diff_id))
                .collect::<Result<_, _>>()?,
        }))
    }

    /// A platform image's layers in order (base first), with their diff_ids and sizes: what the
    /// dashboard compares two images by. Empty when the store does not know the image.
    pub async fn image_layers(&self, image: &Digest) -> Result<Vec<LayerRecord>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT layer_digest, diff_id, size, media_type FROM image_layers
                 WHERE image_digest = $1 ORDER BY position",
            )
            .bind(image.as_str())
            .fetch_all(pool)
            .await
            .map_err(db("read an image's layers"))?
        });
        rows.into_iter()
            .map(|(layer, diff_id, size, media_type)| {
                Ok(LayerRecord {
                    digest: digest_from("image_layers.layer_digest", layer)?,
                    diff_id: digest_from("image_layers.diff_id", diff_id)?,
                    size: unsigned_from("image_layers.size", size)?,
                    media_type,
                })
            })
            .collect()
    }

    /// Sets (or, with `None`, clears) an image's base: the lineage edge.
    pub async fn set_base(
        &self,
        image: &Digest,
        base: Option<&BaseMatch>,
    ) -> Result<(), StoreError> {
        let updated = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin setting a base"))?;
            check_fence!(self, tx, Db);
            let (generation,): (i64,) = sqlx::query_as(NEXT_GENERATION)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("take the next generation"))?;
            let updated = sqlx::query(
                "UPDATE images SET base_digest = $2, base_method = $3, base_shared_layers = $4,
                     generation = $5
                 WHERE digest = $1",
            )
            .bind(image.as_str())
            .bind(base.map(|base| base.base.as_str()))
            .bind(base.map(|base| lineage_method_text(base.method)))
            .bind(
                base.map(|base| signed("shared layers", base.shared_layers as u64))
                    .transpose()?,
            )
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(db("set an image's base"))?
            .rows_affected();
            tx.commit().await.map_err(db("commit a base"))?;
            updated
        });
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: format!("image {image}"),
            });
        }
        Ok(())
    }

    /// Every image's layer chain, base first, ordered by image digest.
    pub async fn all_layer_chains(&self) -> Result<Vec<LayerChain>, StoreError> {
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT image_digest, layer_digest, diff_id FROM image_layers
                 ORDER BY image_digest, position",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read layer chains"))?
        });
        let mut chains: Vec<LayerChain> = Vec::new();
        for (image, layer, diff_id) in rows {
            let layer = digest_from("image_layers.layer_digest", layer)?;
            let diff_id = digest_from("image_layers.diff_id", diff_id)?;
            match chains.last_mut() {
                Some(chain) if chain.image.as_str() == image => {
                    chain.layers.push(layer);
                    chain.diff_ids.push(diff_id);
                }
                _ => chains.push(LayerChain {
                    image: digest_from("image_layers.image_digest", image)?,
                    layers: vec![layer],
                    diff_ids: vec![diff_id],
                }),
            }
        }
        Ok(chains)
    }

    /// Images whose base is `base` (or, for an index, one of its platform manifests): one
    /// step of lineage, through the `images_base_digest` index.
    pub async fn children_of(&self, base: &Digest) -> Result<Vec<Digest>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT digest FROM images
                 WHERE base_digest = $1
                    OR base_digest IN (SELECT child_digest FROM index_entries WHERE index_digest = $1)
                 ORDER BY digest",
            )
            .bind(base.as_str())
            .fetch_all(pool)
            .await
            .map_err(db("find an image's children"))?
        });
        rows.into_iter()
            .map(|(digest,)| digest_from("images.digest", digest))
            .collect()
    }

    /// How much the store knows: platform images, manifests, repositories, live tags.
    pub async fn counts(&self) -> Result<KnowledgeCounts, StoreError> {
        let (images, manifests, repositories, tags): (i64, i64, i64, i64) =
            on_pool!(self, |pool, Db| {
                sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM manifests),
                            (SELECT COUNT(*) FROM repositories),
                            (SELECT COUNT(*) FROM tags WHERE gone_at IS NULL)",
                )
                .fetch_one(pool)
                .await
                .map_err(db("count what the store knows"))?
            });
        Ok(KnowledgeCounts {
            images: unsigned_from("images", images)?,
            manifests: unsigned_from("manifests", manifests)?,
            repositories: unsigned_from("repositories", repositories)?,
            live_tags: unsigned_from("tags", tags)?,
        })
    }

    /// What the store knows about images, newest first, with the live tags that reach them.
    pub async fn images(&self, filter: &ImageFilter) -> Result<Vec<ImageSummary>, StoreError> {
        let repository = filter.repository.as_ref();
        let point = filter.digest.is_some()
            && repository.is_none()
            && filter.os.is_none()
            && filter.built_on.is_none();
        let rows: Vec<ImageRow> = if point {
            // One image by digest: its primary key, not a scan of every image.
            on_pool!(self, |pool, Db| {
                sqlx::query_as(SELECT_IMAGE)
                    .bind(filter.digest.as_ref().map(Digest::as_str))
                    .fetch_all(pool)
                    .await
                    .map_err(db("read an image"))?
            })
        } else {
            on_pool!(self, |pool, Db| {
                sqlx::query_as(SELECT_IMAGES)
                    .bind(repository.map(RepositoryName::registry))
                    .bind(repository.map(RepositoryName::repository))
                    .bind(filter.os.as_deref())
                    .bind(filter.built_on.as_ref().map(Digest::as_str))
                    .bind(filter.digest.as_ref().map(Digest::as_str))
                    .bind(i64::from(filter.limit.unwrap_or(u32::MAX)))
                    .bind(i64::from(filter.offset))
                    .fetch_all(pool)
                    .await
                    .map_err(db("list images"))?
            })
        };
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let digests: Vec<&str> = rows.iter().map(|row| row.0.as_str()).collect();
        let locations: Vec<(String, String, String, String, Option<String>)> =
            on_pool!(self, |pool, Db| {
                let sql = SELECT_LOCATIONS.replace("{images}", <Db as Dialect>::JSON_STRINGS);
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(Json(&digests))
                    .fetch_all(pool)
                    .await
                    .map_err(db("list where images are tagged"))?
            });
        let mut by_image: HashMap<String, Vec<ImageLocation>> = HashMap::new();
        for (image, registry, repository, tag, index) in locations {
            by_image.entry(image).or_default().push(ImageLocation {
                repository: repository_from(registry, repository)?,
                tag: tag_from(tag)?,
                index: optional_digest_from("tags.digest", index)?,
            });
        }
        rows.into_iter()
            .map(|row| {
                let references = by_image.remove(&row.0).unwrap_or_default();
                image_summary(row, references)
            })
            .collect()
    }

    /// How syncing one repository went, and how many of its tags are live and gone.
    pub async fn repository_status(
        &self,
        repository: &RepositoryName,
    ) -> Result<Option<RepositoryStatus>, StoreError> {
        Ok(self
            .statuses(Some(repository), false)
            .await?
            .into_iter()
            .next())
    }

    /// Every repository's sync status, by registry and name.
    pub async fn repository_statuses(&self) -> Result<Vec<RepositoryStatus>, StoreError> {
        self.statuses(None, false).await
    }

    /// The repositories whose last sync failed, by registry and name (the dashboard's
    /// overview: it reads only those, not every repository's tag counts).
    pub async fn failing_repositories(&self) -> Result<Vec<RepositoryStatus>, StoreError> {
        self.statuses(None, true).await
    }

    /// How syncing a registry went (also updated by each successful repository sync).
    pub async fn registry_status(&self, registry: &str) -> Result<Option<SyncStatus>, StoreError> {
        type Row = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
        let row: Option<Row> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT last_sync_ok_at, last_sync_attempt_at, last_error FROM registries
                 WHERE host = $1",
            )
            .bind(registry)
            .fetch_optional(pool)
            .await
            .map_err(db("read a registry's status"))?
        });
        Ok(row.map(
            |(last_sync_ok_at, last_sync_attempt_at, last_error)| SyncStatus {
                last_sync_ok_at,
                last_sync_attempt_at,
                last_error,
            },
        ))
    }

    async fn statuses(
        &self,
        repository: Option<&RepositoryName>,
        failing: bool,
    ) -> Result<Vec<RepositoryStatus>, StoreError> {
        let rows: Vec<StatusRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(SELECT_STATUS)
                .bind(repository.map(RepositoryName::registry))
                .bind(repository.map(RepositoryName::repository))
                .bind(failing)
                .fetch_all(pool)
                .await
                .map_err(db("read repository statuses"))?
        });
        rows.into_iter()
            .map(|row| {
                let (registry, name, ok, attempt, error, registry_ok, registry_attempt) =
                    (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                Ok(RepositoryStatus {
                    repository: repository_from(registry, name)?,
                    sync: SyncStatus {
                        last_sync_ok_at: ok,
                        last_sync_attempt_at: attempt,
                        last_error: error,
                    },
                    registry: SyncStatus {
                        last_sync_ok_at: registry_ok,
                        last_sync_attempt_at: registry_attempt,
                        last_error: row.7,
                    },
                    live_tags: unsigned_from("live tag count", row.8)?,
                    gone_tags: unsigned_from("gone tag count", row.9)?,
                    failing_since: row.10,
                })
            })
            .collect()
    }
}

const UPSERT_LAYER_FACT: &str = "
INSERT INTO layer_facts (layer_digest, summary, scanned_at) VALUES ($1, $2, $3)
ON CONFLICT (layer_digest) DO UPDATE SET
    summary = excluded.summary,
    scanned_at = excluded.scanned_at";

fn image_summary(
    row: ImageRow,
    references: Vec<ImageLocation>,
) -> Result<ImageSummary, StoreError> {
    let (digest, config_digest, created, os, architecture, variant, labels, annotations) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let base = match (row.12, row.13) {
        (Some(base_digest), Some(method)) => Some(BaseMatch {
            base: digest_from("images.base_digest", base_digest)?,
            method: lineage_method_from(method)?,
            shared_layers: usize::try_from(row.14.unwrap_or(0)).map_err(|_| {
                StoreError::Corrupt {
                    column: "images.base_shared_layers",
                    value: format!("{:?}", row.14),
                }
            })?,
        }),
        _ => None,
    };
    Ok(ImageSummary {
        digest: digest_from("images.digest", digest)?,
        config_digest: digest_from("images.config_digest", config_digest)?,
        created,
        platform: Platform {
            os,
            architecture,
            variant,
        },
        labels: labels.0,
        annotations: annotations.0,
        total_size: unsigned_from("images.total_size", row.8)?,
        os_id: row.9.map(|id| OsIdentity { id }),
        os_pretty: row.10,
        libc: row.11.map(libc_from).transpose()?,
        base,
        references,
    })
}

/// The 64-bit advisory-lock key of a repository (PostgreSQL).
fn repository_lock_key(repository: &RepositoryName) -> i64 {
    let hash = Sha256::digest(repository.to_string().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

/// The error text, cut at a character boundary when longer than [`ERROR_TEXT_MAX`] bytes.
fn capped(error: &str) -> &str {
    if error.len() <= ERROR_TEXT_MAX {
        return error;
    }
    let mut end = ERROR_TEXT_MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}
