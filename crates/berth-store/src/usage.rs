//! The usage inventory: who uses which image, one row per place (source, scope, namespace,
//! workload kind and name, container), updated in place by every report of that place; and
//! each source scope's freshness (when it last reported, and last reported in full). A full
//! report marks the rows it no longer holds gone; a later report that holds them again brings
//! them back.

pub use berth_core::usage::Use;
use berth_core::{Digest, ImageRef};
use chrono::{DateTime, Utc};

use crate::error::db;
use crate::records::optional_digest_from;
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

/// Where a use was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// The admission webhook: a workload it allowed.
    Admission,
    /// `berth usage import`: a cluster's workloads as `kubectl get -o json` lists them.
    Cluster,
    /// `berth check --report`: what a pipeline checked.
    Ci,
    /// `berth usage scan --record`: a reference in a source tree.
    Source,
}

impl UsageSource {
    pub const ALL: [UsageSource; 4] = [
        UsageSource::Admission,
        UsageSource::Cluster,
        UsageSource::Ci,
        UsageSource::Source,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Admission => "admission",
            UsageSource::Cluster => "cluster",
            UsageSource::Ci => "ci",
            UsageSource::Source => "source",
        }
    }

    pub fn parse(text: &str) -> Option<UsageSource> {
        UsageSource::ALL
            .into_iter()
            .find(|source| source.as_str() == text)
    }
}

impl std::fmt::Display for UsageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A use as the inventory holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEntry {
    pub source: UsageSource,
    /// The cluster, pipeline or repository the use was reported under (empty: unnamed).
    pub scope: String,
    pub usage: Use,
    /// When this place was first seen using this image (it resets when the image changes).
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// When a full report of its scope stopped holding it.
    pub gone_at: Option<DateTime<Utc>>,
}

/// How a use reads in JSON (`berth usage --json`, `GET /api/v1/usage`; docs/usage.md names
/// each field).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageView {
    pub source: UsageSource,
    pub scope: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub container: String,
    pub image: String,
    pub reference: Option<String>,
    pub digest: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub gone_at: Option<DateTime<Utc>>,
}

impl From<&UsageEntry> for UsageView {
    fn from(entry: &UsageEntry) -> UsageView {
        let usage = &entry.usage;
        UsageView {
            source: entry.source,
            scope: entry.scope.clone(),
            namespace: usage.namespace.clone(),
            kind: usage.kind.clone(),
            name: usage.name.clone(),
            container: usage.container.clone(),
            image: usage.image.clone(),
            reference: usage.reference.as_ref().map(ImageRef::canonical),
            digest: usage.digest.as_ref().map(Digest::to_string),
            first_seen: entry.first_seen,
            last_seen: entry.last_seen,
            gone_at: entry.gone_at,
        }
    }
}

/// What a report changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recorded {
    /// Uses written (new, changed or seen again).
    pub recorded: u64,
    /// Uses of the scope a full report no longer holds, marked gone now.
    pub gone: u64,
}

/// When one source scope last reported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceFreshness {
    pub source: UsageSource,
    pub scope: String,
    pub last_report_at: DateTime<Utc>,
    /// The last report that listed everything in the scope (a cluster import, a tree scan);
    /// `None` for sources that only ever report what they see (admission, ci).
    pub last_full_at: Option<DateTime<Utc>>,
    /// Uses of the scope not gone.
    pub uses: u64,
}

/// Which uses [`Store::usage`] returns. Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Uses whose digest is one of these, or whose reference is one of `references`.
    pub digests: Vec<Digest>,
    pub references: Vec<ImageRef>,
    /// Uses of these repositories (`registry/path`), any tag or digest.
    pub repositories: Vec<String>,
    pub include_gone: bool,
    pub limit: Option<u32>,
}

type UsageRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

type SourceRow = (String, String, DateTime<Utc>, Option<DateTime<Utc>>, i64);

fn source_from(column: &'static str, text: String) -> Result<UsageSource, StoreError> {
    UsageSource::parse(&text).ok_or(StoreError::Corrupt {
        column,
        value: text,
    })
}

fn entry_from(row: UsageRow) -> Result<UsageEntry, StoreError> {
    let (
        source,
        scope,
        namespace,
        kind,
        name,
        container,
        image,
        reference,
        digest,
        first,
        last,
        gone,
    ) = row;
    let source = source_from("usage_inventory.source", source)?;
    let reference = reference
        .map(|text| {
            ImageRef::parse(&text).map_err(|_| StoreError::Corrupt {
                column: "usage_inventory.reference",
                value: text,
            })
        })
        .transpose()?;
    Ok(UsageEntry {
        source,
        scope,
        usage: Use {
            namespace,
            kind,
            name,
            container,
            image,
            reference,
            digest: optional_digest_from("usage_inventory.digest", digest)?,
        },
        first_seen: first,
        last_seen: last,
        gone_at: gone,
    })
}

impl Store {
    /// Records a report of `source` under `scope`: each use is written in place (its image,
    /// reference and digest replaced, last seen moved to `now`, gone cleared). A `full` report
    /// lists everything in the scope: uses of the scope it does not hold are marked gone. One
    /// transaction: a report is recorded whole or not at all.
    pub async fn record_usage(
        &self,
        source: UsageSource,
        scope: &str,
        uses: &[Use],
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<Recorded, StoreError> {
        let now = stored_time(now);
        let recorded = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording usage"))?;
            for usage in uses {
                sqlx::query(
                    "INSERT INTO usage_inventory
                         (source, scope, namespace, kind, name, container, image, reference,
                          repository, digest, first_seen, last_seen, gone_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, NULL)
                     ON CONFLICT (source, scope, namespace, kind, name, container) DO UPDATE SET
                         first_seen = CASE WHEN usage_inventory.image = excluded.image
                             THEN usage_inventory.first_seen ELSE excluded.first_seen END,
                         digest = CASE WHEN usage_inventory.image = excluded.image
                             THEN COALESCE(excluded.digest, usage_inventory.digest)
                             ELSE excluded.digest END,
                         image = excluded.image,
                         reference = excluded.reference,
                         repository = excluded.repository,
                         last_seen = CASE WHEN excluded.last_seen > usage_inventory.last_seen
                             THEN excluded.last_seen ELSE usage_inventory.last_seen END,
                         gone_at = NULL",
                )
                .bind(source.as_str())
                .bind(scope)
                .bind(&usage.namespace)
                .bind(&usage.kind)
                .bind(&usage.name)
                .bind(&usage.container)
                .bind(&usage.image)
                .bind(usage.reference.as_ref().map(ImageRef::canonical))
                .bind(usage.reference.as_ref().map(ImageRef::name))
                .bind(usage.digest.as_ref().map(Digest::as_str))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db("record a use"))?;
            }
            let gone = if full {
                sqlx::query(
                    "UPDATE usage_inventory SET gone_at = $3
                     WHERE source = $1 AND scope = $2 AND gone_at IS NULL AND last_seen < $3",
                )
                .bind(source.as_str())
                .bind(scope)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db("mark uses gone"))?
                .rows_affected()
            } else {
                0
            };
            sqlx::query(
                "INSERT INTO usage_sources (source, scope, last_report_at, last_full_at)
                 VALUES ($1, $2, $3, CASE WHEN $4 THEN $3 ELSE NULL END)
                 ON CONFLICT (source, scope) DO UPDATE SET
                     last_report_at = excluded.last_report_at,
                     last_full_at = COALESCE(excluded.last_full_at, usage_sources.last_full_at)",
            )
            .bind(source.as_str())
            .bind(scope)
            .bind(now)
            .bind(full)
            .execute(&mut *tx)
            .await
            .map_err(db("record a source's report"))?;
            tx.commit().await.map_err(db("commit usage"))?;
            Recorded {
                recorded: uses.len() as u64,
                gone,
            }
        });
        Ok(recorded)
    }

    /// Uses matching `query`, by source, scope, namespace, kind, name and container.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageEntry>, StoreError> {
        let digests: Vec<&str> = query.digests.iter().map(Digest::as_str).collect();
        let references: Vec<String> = query.references.iter().map(ImageRef::canonical).collect();
        let repositories = &query.repositories;
        let any = digests.is_empty() && references.is_empty() && repositories.is_empty();
        let limit = i64::from(query.limit.unwrap_or(u32::MAX));
        let rows: Vec<UsageRow> = on_pool!(self, |pool, Db| {
            let strings = <Db as Dialect>::JSON_STRINGS;
            let sql = format!(
                "SELECT source, scope, namespace, kind, name, container, image, reference,
                        digest, first_seen, last_seen, gone_at
                 FROM usage_inventory
                 WHERE ($1 OR gone_at IS NULL)
                   AND ($2 OR digest IN ({digests})
                        OR reference IN ({references})
                        OR repository IN ({repositories}))
                 ORDER BY source, scope, namespace, kind, name, container
                 LIMIT $6",
                digests = strings.replace("$1", "$3"),
                references = strings.replace("$1", "$4"),
                repositories = strings.replace("$1", "$5"),
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(query.include_gone)
                .bind(any)
                .bind(sqlx::types::Json(&digests))
                .bind(sqlx::types::Json(&references))
                .bind(sqlx::types::Json(repositories))
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(db("read the usage inventory"))?
        });
        rows.into_iter().map(entry_from).collect()
    }

    /// Every source scope that has reported, by source and scope.
    pub async fn usage_sources(&self) -> Result<Vec<SourceFreshness>, StoreError> {
        let rows: Vec<SourceRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT s.source, s.scope, s.last_report_at, s.last_full_at,
                            (SELECT COUNT(*) FROM usage_inventory AS u
                             WHERE u.source = s.source AND u.scope = s.scope
                               AND u.gone_at IS NULL)
                     FROM usage_sources AS s ORDER BY s.source, s.scope",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read usage sources"))?
        });
        rows.into_iter()
            .map(|(source, scope, last_report_at, last_full_at, uses)| {
                Ok(SourceFreshness {
                    source: source_from("usage_sources.source", source)?,
                    scope,
                    last_report_at,
                    last_full_at,
                    uses: u64::try_from(uses).unwrap_or(0),
                })
            })
            .collect()
    }
}

/// Who still uses images that are (or will be at `at`) `wanted` or past it — deprecated or end
/// of life —, grouped by namespace: `berth usage --state`'s report and the dashboard's
/// campaign page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Campaign {
    pub at: DateTime<Utc>,
    pub state: berth_core::catalog::State,
    pub namespaces: Vec<CampaignNamespace>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignNamespace {
    /// Empty for uses without one (a source tree's, a pipeline's without a branch).
    pub namespace: String,
    pub uses: Vec<CampaignUse>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CampaignUse {
    #[serde(flatten)]
    pub usage: UsageView,
    /// The catalog entry (and variant) the image belongs to.
    pub entry: String,
    pub variant: Option<String>,
    /// The entry's state at `at`, and since when.
    pub state: berth_core::catalog::State,
    pub since: Option<chrono::NaiveDate>,
    pub replacement: Option<String>,
    /// Who owns the entry (whom to ask about the replacement).
    pub owners: Vec<String>,
}

/// The campaign over `entries` (the inventory's uses) at `at`.
pub fn campaign(
    catalog: &berth_core::catalog::Catalog,
    entries: &[UsageEntry],
    wanted: berth_core::catalog::State,
    at: DateTime<Utc>,
) -> Campaign {
    let mut namespaces: std::collections::BTreeMap<String, Vec<CampaignUse>> =
        std::collections::BTreeMap::new();
    for entry in entries {
        let Some(reference) = &entry.usage.reference else {
            continue;
        };
        let Some((owner, variant)) = catalog.owner_of(reference) else {
            continue;
        };
        let effective = owner.lifecycle.at(at);
        if effective.state < wanted {
            continue;
        }
        namespaces
            .entry(entry.usage.namespace.clone())
            .or_default()
            .push(CampaignUse {
                usage: UsageView::from(entry),
                entry: owner.name.clone(),
                variant: variant.map(str::to_string),
                state: effective.state,
                since: effective.since,
                replacement: owner.lifecycle.replacement.clone(),
                owners: owner
                    .owners
                    .iter()
                    .map(|owner| owner.name.clone())
                    .collect(),
            });
    }
    Campaign {
        at,
        state: wanted,
        namespaces: namespaces
            .into_iter()
            .map(|(namespace, uses)| CampaignNamespace { namespace, uses })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_through_their_names() {
        for source in UsageSource::ALL {
            assert_eq!(UsageSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(UsageSource::parse("Admission"), None);
    }
}
