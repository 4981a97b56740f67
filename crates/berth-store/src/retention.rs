//! What retention reads from the store — every repository's sync health, live tags and the
//! manifests it once held, every manifest's size, children and blobs, the live usage
//! inventory and each source's last reports — as berth-core's `retention::Facts`; and the
//! record of a deletion, written after the registry accepted it.

use std::collections::BTreeMap;

use berth_core::Digest;
use berth_core::retention::{
    Facts, ManifestFacts, RepositoryFacts, SourceFacts, TagFacts, UseFacts,
};
use chrono::{DateTime, Utc};

use crate::error::db;
use crate::knowledge::NEXT_GENERATION;
use crate::records::{digest_from, unsigned_from};
use crate::store::{Dialect, stored_time};
use crate::{RepositoryName, Store, StoreError, UsageQuery};

type RepositoryRow = (
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    bool,
    Option<DateTime<Utc>>,
    Option<String>,
);
type TagRow = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);
type MoveRow = (String, String, String, DateTime<Utc>);
type ManifestRow = (String, i64, DateTime<Utc>);
type PairRow = (String, String, i64);
type DeletedRow = (String, String, String);

/// Every table retention reads, whole.
struct Rows {
    repositories: Vec<RepositoryRow>,
    tags: Vec<TagRow>,
    moves: Vec<MoveRow>,
    manifests: Vec<ManifestRow>,
    children: Vec<(String, String)>,
    layers: Vec<PairRow>,
    deleted: Vec<DeletedRow>,
}

/// Why a repository's knowledge is partial, from its sync record; `None` when complete.
fn partial(row: &RepositoryRow) -> Option<String> {
    let (_, _, ok_at, attempt_at, error, truncated, registry_attempt, registry_error) = row;
    let Some(ok_at) = ok_at else {
        return Some("never synced successfully".to_string());
    };
    if let Some(error) = error {
        return Some(format!("the last sync failed: {error}"));
    }
    if attempt_at.is_some_and(|attempt| attempt > *ok_at) {
        return Some("the last sync attempt did not complete".to_string());
    }
    if let (Some(attempt), Some(error)) = (registry_attempt, registry_error)
        && attempt > ok_at
    {
        return Some(format!("the registry's last sync failed: {error}"));
    }
    truncated.then(|| "the last sync's tag listing was truncated at the cap".to_string())
}

impl Store {
    /// Everything `berth_core::retention::plan` reads except the channels (the caller knows
    /// the catalog): a handful of whole-table reads, no query per repository or digest.
    pub async fn retention_facts(&self) -> Result<Facts, StoreError> {
        let Rows {
            repositories,
            tags,
            moves,
            manifests,
            children,
            layers,
            deleted,
        } = on_pool!(self, |pool, Db| {
            let repositories = sqlx::query_as(
                "SELECT r.registry, r.name, r.last_sync_ok_at, r.last_sync_attempt_at,
                        r.last_error, r.last_sync_truncated, g.last_sync_attempt_at, g.last_error
                 FROM repositories r JOIN registries g ON g.host = r.registry
                 ORDER BY r.registry, r.name",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read repositories for retention"))?;
            let tags = sqlx::query_as(
                "SELECT registry, repository, tag, digest, digest_since, gone_at FROM tags
                 ORDER BY registry, repository, tag",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read tags for retention"))?;
            let moves = sqlx::query_as(
                "SELECT registry, repository, from_digest, moved_at FROM tag_moves ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read tag moves for retention"))?;
            let manifests = sqlx::query_as("SELECT digest, size, first_seen_at FROM manifests")
                .fetch_all(pool)
                .await
                .map_err(db("read manifests for retention"))?;
            let children = sqlx::query_as(
                "SELECT index_digest, child_digest FROM index_entries
                 ORDER BY index_digest, position",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read index entries for retention"))?;
            let layers = sqlx::query_as(
                "SELECT image_digest, layer_digest, size FROM image_layers
                 ORDER BY image_digest, position",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read layers for retention"))?;
            let deleted =
                sqlx::query_as("SELECT registry, repository, digest FROM deleted_manifests")
                    .fetch_all(pool)
                    .await
                    .map_err(db("read deleted manifests"))?;
            Rows {
                repositories,
                tags,
                moves,
                manifests,
                children,
                layers,
                deleted,
            }
        });

        let mut facts = Facts::default();
        let mut by_name: BTreeMap<(String, String), RepositoryFacts> = BTreeMap::new();
        for row in &repositories {
            by_name.insert(
                (row.0.clone(), row.1.clone()),
                RepositoryFacts {
                    name: format!("{}/{}", row.0, row.1),
                    partial: partial(row),
                    ..RepositoryFacts::default()
                },
            );
        }
        for (registry, repository, tag, digest, since, gone_at) in tags {
            let Some(facts) = by_name.get_mut(&(registry, repository)) else {
                continue;
            };
            let digest = digest_from("tags.digest", digest)?;
            match gone_at {
                None => facts.tags.push(TagFacts { tag, digest, since }),
                Some(gone_at) => facts.untagged.push((digest, gone_at)),
            }
        }
        for (registry, repository, from, at) in moves {
            if let Some(facts) = by_name.get_mut(&(registry, repository)) {
                facts
                    .untagged
                    .push((digest_from("tag_moves.from_digest", from)?, at));
            }
        }
        for (registry, repository, digest) in deleted {
            if let Some(facts) = by_name.get_mut(&(registry, repository)) {
                facts
                    .deleted
                    .insert(digest_from("deleted_manifests.digest", digest)?);
            }
        }
        facts.repositories = by_name.into_values().collect();

        for (digest, size, first_seen) in manifests {
            facts.manifests.insert(
                digest_from("manifests.digest", digest)?,
                ManifestFacts {
                    first_seen: Some(first_seen),
                    size: unsigned_from("manifests.size", size)?,
                    ..ManifestFacts::default()
                },
            );
        }
        for (index, child) in children {
            let index = digest_from("index_entries.index_digest", index)?;
            let child = digest_from("index_entries.child_digest", child)?;
            if let Some(manifest) = facts.manifests.get_mut(&index) {
                manifest.children.push(child);
            }
        }
        for (image, layer, size) in layers {
            let image = digest_from("image_layers.image_digest", image)?;
            let layer = digest_from("image_layers.layer_digest", layer)?;
            if let Some(manifest) = facts.manifests.get_mut(&image) {
                manifest
                    .blobs
                    .push((layer, unsigned_from("image_layers.size", size)?));
            }
        }

        for entry in self.usage(&UsageQuery::default()).await? {
            let usage = &entry.usage;
            let place = [
                usage.namespace.as_str(),
                usage.kind.as_str(),
                usage.name.as_str(),
            ]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/");
            facts.uses.push(UseFacts {
                source: entry.source.as_str().to_string(),
                scope: entry.scope.clone(),
                place: format!("{place}[{}]", usage.container),
                repository: usage.reference.as_ref().map(|reference| {
                    format!("{}/{}", reference.registry(), reference.repository())
                }),
                tag: usage
                    .reference
                    .as_ref()
                    .and_then(|reference| reference.tag())
                    .map(|tag| tag.as_str().to_string()),
                digest: usage.digest.clone(),
                last_seen: entry.last_seen,
            });
        }
        for source in self.usage_sources().await? {
            facts.sources.push(SourceFacts {
                source: source.source.as_str().to_string(),
                scope: source.scope,
                last_report_at: source.last_report_at,
                last_full_at: source.last_full_at,
            });
        }
        Ok(facts)
    }

    /// Records that `digest` was deleted from `repository` (after the registry accepted the
    /// DELETE): the deletion row, and the repository's live tags at that digest marked gone,
    /// in one transaction with the next knowledge generation. Returns the tags marked gone.
    pub async fn record_manifest_deleted(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now = stored_time(now);
        let gone = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a deletion"))?;
            check_fence!(self, tx, Db);
            let (generation,): (i64,) = sqlx::query_as(NEXT_GENERATION)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("take the next generation"))?;
            sqlx::query(
                "INSERT INTO deleted_manifests (registry, repository, digest, deleted_at, actor)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (registry, repository, digest) DO NOTHING",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .bind(digest.as_str())
            .bind(now)
            .bind(actor)
            .execute(&mut *tx)
            .await
            .map_err(db("record a deletion"))?;
            let gone = sqlx::query(
                "UPDATE tags SET gone_at = $4, generation = $5
                 WHERE registry = $1 AND repository = $2 AND digest = $3 AND gone_at IS NULL",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .bind(digest.as_str())
            .bind(now)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(db("mark a deleted manifest's tags gone"))?
            .rows_affected();
            tx.commit().await.map_err(db("commit a deletion"))?;
            gone
        });
        Ok(gone)
    }
}
