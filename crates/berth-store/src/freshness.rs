//! What the freshness questions read from the store: every platform image with its age, OS and
//! nearest base, the runnable children of indexes, live tags, and every move a sync saw
//! (`tag_moves`), as berth-core's `freshness::Facts`.

use berth_core::freshness::{Facts, ImageFacts, TagFacts, TagMove};
use berth_core::osrelease::OsIdentity;
use berth_core::reference::Reference;
use berth_core::{Digest, ImageRef};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;

use crate::error::db;
use crate::records::{digest_from, optional_digest_from, tag_from};
use crate::{Store, StoreError};

type ImageRow = (
    String,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    Option<String>,
);

type IndexRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

type TagRow = (String, String, String, String, DateTime<Utc>);

type MoveRow = (String, String, String, String, String, DateTime<Utc>);

/// `os/architecture[/variant]`, the way freshness matches an index's child to a platform.
fn platform_text(os: &str, architecture: &str, variant: Option<&str>) -> String {
    match variant {
        Some(variant) => format!("{os}/{architecture}/{variant}"),
        None => format!("{os}/{architecture}"),
    }
}

fn reference_from(registry: &str, repository: &str, tag: String) -> Result<ImageRef, StoreError> {
    let tag = tag_from(tag)?;
    ImageRef::from_parts(registry, repository, Reference::Tag(tag)).map_err(|_| {
        StoreError::Corrupt {
            column: "repository",
            value: format!("{registry}/{repository}"),
        }
    })
}

impl Store {
    /// Everything `berth_core::freshness::stale` reads, in four queries. Rows are streamed into
    /// vectors sized by a count first, so a pass over 100,000 images never holds every row as
    /// text beside the facts made of it, nor a vector's doubling slack.
    pub async fn freshness_facts(&self) -> Result<Facts, StoreError> {
        let mut facts = Facts::default();
        on_pool!(self, |pool, Db| {
            let (images, tags): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM images),
                     (SELECT count(*) FROM tags WHERE gone_at IS NULL)",
            )
            .fetch_one(pool)
            .await
            .map_err(db("count images and tags for freshness"))?;
            facts
                .images
                .reserve_exact(usize::try_from(images).unwrap_or(0));
            facts.tags.reserve_exact(usize::try_from(tags).unwrap_or(0));

            let mut rows = sqlx::query_as::<_, ImageRow>(
                "SELECT digest, os, arch, variant, created, first_seen_at, os_id, base_digest,
                     chain_key
                 FROM images ORDER BY digest",
            )
            .fetch(pool);
            while let Some((
                digest,
                os,
                arch,
                variant,
                created,
                first_seen,
                os_id,
                base,
                chain_key,
            )) = rows
                .try_next()
                .await
                .map_err(db("read images for freshness"))?
            {
                facts.images.push(ImageFacts {
                    digest: digest_from("images.digest", digest)?,
                    platform: platform_text(&os, &arch, variant.as_deref()),
                    created,
                    first_seen,
                    os_id: os_id.map(|id| OsIdentity { id }),
                    base: optional_digest_from("images.base_digest", base)?,
                    chain_key,
                });
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, IndexRow>(
                "SELECT index_digest, child_digest, os, arch, variant FROM index_entries
                 WHERE is_attestation = $1 ORDER BY index_digest, position",
            )
            .bind(false)
            .fetch(pool);
            while let Some((index, child, os, arch, variant)) = rows
                .try_next()
                .await
                .map_err(db("read index entries for freshness"))?
            {
                let child = digest_from("index_entries.child_digest", child)?;
                let platform = match (os, arch) {
                    (Some(os), Some(arch)) => platform_text(&os, &arch, variant.as_deref()),
                    _ => String::new(),
                };
                match facts.indexes.last_mut() {
                    Some((last, children)) if last.as_str() == index => {
                        children.push((child, platform));
                    }
                    _ => facts.indexes.push((
                        digest_from("index_entries.index_digest", index)?,
                        vec![(child, platform)],
                    )),
                }
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, TagRow>(
                "SELECT registry, repository, tag, digest, digest_since FROM tags
                 WHERE gone_at IS NULL ORDER BY registry, repository, tag",
            )
            .fetch(pool);
            while let Some((registry, repository, tag, digest, since)) = rows
                .try_next()
                .await
                .map_err(db("read tags for freshness"))?
            {
                facts.tags.push(TagFacts {
                    reference: reference_from(&registry, &repository, tag)?,
                    digest: digest_from("tags.digest", digest)?,
                    since,
                });
            }
            drop(rows);

            let mut rows = sqlx::query_as::<_, MoveRow>(
                "SELECT registry, repository, tag, from_digest, to_digest, moved_at
                 FROM tag_moves ORDER BY id",
            )
            .fetch(pool);
            while let Some((registry, repository, tag, from, to, at)) =
                rows.try_next().await.map_err(db("read tag moves"))?
            {
                facts.moves.push(TagMove {
                    reference: reference_from(&registry, &repository, tag)?,
                    from: digest_from("tag_moves.from_digest", from)?,
                    to: digest_from("tag_moves.to_digest", to)?,
                    at,
                });
            }
        });
        Ok(facts)
    }

    /// The moves a sync saw of one tag, oldest first: `(from, to, when)`.
    pub async fn tag_moves(
        &self,
        reference: &ImageRef,
    ) -> Result<Vec<(Digest, Digest, DateTime<Utc>)>, StoreError> {
        let Some(tag) = reference.tag() else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, DateTime<Utc>)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT from_digest, to_digest, moved_at FROM tag_moves
                 WHERE registry = $1 AND repository = $2 AND tag = $3 ORDER BY id",
            )
            .bind(reference.registry())
            .bind(reference.repository())
            .bind(tag.as_str())
            .fetch_all(pool)
            .await
            .map_err(db("read a tag's moves"))?
        });
        rows.into_iter()
            .map(|(from, to, at)| {
                Ok((
                    digest_from("tag_moves.from_digest", from)?,
                    digest_from("tag_moves.to_digest", to)?,
                    at,
                ))
            })
            .collect()
    }
}

impl Store {
    /// The stale images in scope at `now` (`berth stale`, `GET /api/v1/stale`). The decision is
    /// CPU work over the whole store: a server calls this off its request threads.
    pub async fn stale(
        &self,
        catalog: &berth_core::catalog::Catalog,
        settings: &berth_core::freshness::Settings,
        now: DateTime<Utc>,
    ) -> Result<berth_core::freshness::Report, StoreError> {
        let facts = self.freshness_facts().await?;
        Ok(berth_core::freshness::stale(catalog, &facts, settings, now))
    }
}
