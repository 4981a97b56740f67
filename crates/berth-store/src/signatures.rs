//! Signatures and attestations of digests: what berth sync read from the registry (the
//! artifact manifest per subject and tag, each layer's bytes within bounds) and what each
//! trusted key, by fingerprint, made of each layer. A subject's verified signatures are
//! policy knowledge: each change stamps the subject with a knowledge generation so that the
//! webhook's incremental snapshot follows.

use std::collections::{HashMap, HashSet};

use berth_core::Digest;
use berth_core::provenance::{Signed, SignedKind, Tests};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::db;
use crate::knowledge::NEXT_GENERATION;
use crate::records::{RepositoryName, digest_from};
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

fn shown<S: serde::Serializer>(name: &RepositoryName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(name)
}

/// Inserts (or replaces) what each key made of each layer of `$subject`.
macro_rules! insert_checks {
    ($tx:ident, $subject:expr, $checks:expr, $at:expr) => {
        for check in $checks {
            let (verified, refusal, signed) = match &check.outcome {
                Ok(signed) => (true, None, Some(signed)),
                Err(refusal) => (false, Some(refusal.as_str()), None),
            };
            sqlx::query(
                "INSERT INTO signature_checks
                     (subject, layer, key_fingerprint, key_name, verified, refusal,
                      predicate_type, builder, source_repository, source_commit, tests,
                      tests_url, checked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (subject, layer, key_fingerprint) DO UPDATE SET
                     key_name = excluded.key_name, verified = excluded.verified,
                     refusal = excluded.refusal, predicate_type = excluded.predicate_type,
                     builder = excluded.builder, source_repository = excluded.source_repository,
                     source_commit = excluded.source_commit, tests = excluded.tests,
                     tests_url = excluded.tests_url, checked_at = excluded.checked_at",
            )
            .bind($subject)
            .bind(check.layer.as_str())
            .bind(&check.key)
            .bind(&check.key_name)
            .bind(verified)
            .bind(refusal)
            .bind(signed.and_then(|s| s.predicate_type.as_deref()))
            .bind(signed.and_then(|s| s.builder.as_deref()))
            .bind(signed.and_then(|s| s.source_repository.as_deref()))
            .bind(signed.and_then(|s| s.source_commit.as_deref()))
            .bind(signed.and_then(|s| s.tests.map(Tests::as_str)))
            .bind(signed.and_then(|s| s.tests_url.as_deref()))
            .bind($at)
            .execute(&mut *$tx)
            .await
            .map_err(db("record a signature check"))?;
        }
    };
}

/// Stamps `$subject` with the next knowledge generation: its signatures changed.
macro_rules! stamp {
    ($tx:ident, $subject:expr) => {
        let (generation,): (i64,) = sqlx::query_as(NEXT_GENERATION)
            .fetch_one(&mut *$tx)
            .await
            .map_err(db("take a generation"))?;
        sqlx::query(
            "INSERT INTO signature_subjects (subject, generation) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET generation = excluded.generation",
        )
        .bind($subject)
        .bind(generation)
        .execute(&mut *$tx)
        .await
        .map_err(db("stamp a subject's signatures"))?;
    };
}

/// Where an artifact manifest about `subject` was found: a tag of `repository`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureSource {
    pub subject: Digest,
    #[serde(serialize_with = "shown")]
    pub repository: RepositoryName,
    /// The tag (`sha256-<hex>.sig`, `.att`, or `sha256-<hex>` for the referrers tag schema).
    pub found_at: String,
    pub manifest: Digest,
}

/// One signature or attestation layer, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureLayer {
    /// What names this layer among the subject's: the blob's digest, or for a layer with a
    /// signature annotation the SHA-256 of `"<blob> <signature>"` (cosign repeats a payload's
    /// blob once per signer).
    pub layer: Digest,
    /// The layer's blob digest.
    pub blob: Digest,
    pub kind: SignedKind,
    pub media_type: String,
    /// The layer's bytes (JSON), when read within bounds.
    #[serde(skip)]
    pub payload: Option<String>,
    /// cosign's signature annotation, for simple signing.
    #[serde(skip)]
    pub signature: Option<String>,
    /// Why it was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What one key made of one layer: what it verified, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    pub layer: Digest,
    pub key: String,
    pub key_name: String,
    /// `Ok`: verified, with what it says; `Err`: the refusal.
    #[serde(flatten, with = "outcome")]
    pub outcome: Result<Signed, String>,
}

mod outcome {
    use berth_core::provenance::Signed;
    use serde::Serialize;

    #[derive(Serialize)]
    struct Shown<'a> {
        verified: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        refusal: Option<&'a str>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        signed: Option<&'a Signed>,
    }

    pub fn serialize<S: serde::Serializer>(
        outcome: &Result<Signed, String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match outcome {
            Ok(signed) => Shown {
                verified: true,
                refusal: None,
                signed: Some(signed),
            },
            Err(refusal) => Shown {
                verified: false,
                refusal: Some(refusal),
                signed: None,
            },
        }
        .serialize(serializer)
    }
}

/// A stored layer with where it was found, for checking it against keys it has not met.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    pub subject: Digest,
    pub repository: RepositoryName,
    pub layer: SignatureLayer,
}

/// Everything berth holds about one subject's signatures, for `berth provenance`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignatureView {
    pub sources: Vec<SignatureSource>,
    pub layers: Vec<SignatureLayer>,
    pub checks: Vec<SignatureCheck>,
}

type LayerRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);
const LAYER_COLUMNS: &str =
    "subject, layer, blob, registry, repository, kind, media_type, payload, signature, problem";

fn layer_from(row: LayerRow) -> Result<StoredLayer, StoreError> {
    let (subject, layer, blob, registry, repository, kind, media_type, payload, signature, problem) =
        row;
    let kind = SignedKind::parse(&kind).ok_or(StoreError::Corrupt {
        column: "signature_layers.kind",
        value: kind,
    })?;
    Ok(StoredLayer {
        subject: digest_from("signature_layers.subject", subject)?,
        repository: RepositoryName::new(&registry, &repository).map_err(|_| {
            StoreError::Corrupt {
                column: "signature_layers.repository",
                value: format!("{registry}/{repository}"),
            }
        })?,
        layer: SignatureLayer {
            layer: digest_from("signature_layers.layer", layer)?,
            blob: digest_from("signature_layers.blob", blob)?,
            kind,
            media_type,
            payload,
            signature,
            problem,
        },
    })
}

pub(crate) type VerifiedRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The verified checks, joined with their layer's kind: `subject` first, ordered by subject.
pub(crate) const VERIFIED: &str = "SELECT c.subject, l.kind, c.key_fingerprint, c.key_name,
         c.predicate_type, c.builder, c.source_repository, c.source_commit, c.tests, c.tests_url
     FROM signature_checks c
     JOIN signature_layers l ON l.subject = c.subject AND l.layer = c.layer
     WHERE c.verified";

pub(crate) fn verified_from(row: VerifiedRow) -> Result<(Digest, Signed), StoreError> {
    let (subject, kind, key, key_name, predicate_type, builder, source, commit, tests, url) = row;
    let kind = SignedKind::parse(&kind).ok_or(StoreError::Corrupt {
        column: "signature_layers.kind",
        value: kind,
    })?;
    let tests = match tests {
        None => None,
        Some(text) => Some(Tests::parse(&text).ok_or(StoreError::Corrupt {
            column: "signature_checks.tests",
            value: text,
        })?),
    };
    Ok((
        digest_from("signature_checks.subject", subject)?,
        Signed {
            kind,
            key,
            key_name,
            predicate_type,
            builder,
            source_repository: source,
            source_commit: commit,
            tests,
            tests_url: url,
        },
    ))
}

/// Rows ordered by subject, gathered per subject.
pub(crate) fn gather(rows: Vec<VerifiedRow>) -> Result<Vec<(Digest, Vec<Signed>)>, StoreError> {
    let mut gathered: Vec<(Digest, Vec<Signed>)> = Vec::new();
    for row in rows {
        let (subject, signed) = verified_from(row)?;
        match gathered.last_mut() {
            Some((last, list)) if *last == subject => list.push(signed),
            _ => gathered.push((subject, vec![signed])),
        }
    }
    Ok(gathered)
}

impl Store {
    /// The artifact manifests read for subjects in `repository`: (subject, tag) → manifest.
    pub async fn signature_sources(
        &self,
        repository: &RepositoryName,
    ) -> Result<HashMap<(Digest, String), Digest>, StoreError> {
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT subject, found_at, manifest FROM signature_sources
                 WHERE registry = $1 AND repository = $2",
            )
            .bind(repository.registry())
            .bind(repository.repository())
            .fetch_all(pool)
            .await
            .map_err(db("read signature sources"))?
        });
        let mut sources = HashMap::with_capacity(rows.len());
        for (subject, found_at, manifest) in rows {
            sources.insert(
                (digest_from("signature_sources.subject", subject)?, found_at),
                digest_from("signature_sources.manifest", manifest)?,
            );
        }
        Ok(sources)
    }

    /// Records what was read at `source`: its layers replace those read there before, with
    /// what each key made of them, in one fenced transaction that stamps the subject.
    pub async fn record_signatures(
        &self,
        source: &SignatureSource,
        layers: &[SignatureLayer],
        checks: &[SignatureCheck],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = stored_time(at);
        let subject = source.subject.as_str();
        let registry = source.repository.registry();
        let repository = source.repository.repository();
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording signatures"))?;
            check_fence!(self, tx, Db);
            sqlx::query(
                "DELETE FROM signature_checks WHERE subject = $1 AND layer IN
                     (SELECT layer FROM signature_layers
                      WHERE subject = $1 AND registry = $2 AND repository = $3 AND found_at = $4)",
            )
            .bind(subject)
            .bind(registry)
            .bind(repository)
            .bind(&source.found_at)
            .execute(&mut *tx)
            .await
            .map_err(db("drop earlier signature checks"))?;
            sqlx::query(
                "DELETE FROM signature_layers
                 WHERE subject = $1 AND registry = $2 AND repository = $3 AND found_at = $4",
            )
            .bind(subject)
            .bind(registry)
            .bind(repository)
            .bind(&source.found_at)
            .execute(&mut *tx)
            .await
            .map_err(db("drop earlier signature layers"))?;
            sqlx::query(
                "INSERT INTO signature_sources
                     (subject, registry, repository, found_at, manifest, read_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (subject, registry, repository, found_at) DO UPDATE SET
                     manifest = excluded.manifest, read_at = excluded.read_at",
            )
            .bind(subject)
            .bind(registry)
            .bind(repository)
            .bind(&source.found_at)
            .bind(source.manifest.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db("record a signature source"))?;
            for layer in layers {
                // The same layer found at another tag of the subject is kept once.
                sqlx::query(
                    "INSERT INTO signature_layers
                         (subject, layer, blob, registry, repository, found_at, kind, media_type,
                          payload, signature, problem)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (subject, layer) DO NOTHING",
                )
                .bind(subject)
                .bind(layer.layer.as_str())
                .bind(layer.blob.as_str())
                .bind(registry)
                .bind(repository)
                .bind(&source.found_at)
                .bind(layer.kind.as_str())
                .bind(&layer.media_type)
                .bind(&layer.payload)
                .bind(&layer.signature)
                .bind(&layer.problem)
                .execute(&mut *tx)
                .await
                .map_err(db("record a signature layer"))?;
            }
            insert_checks!(tx, subject, checks, at);
            stamp!(tx, subject);
            tx.commit().await.map_err(db("commit signatures"))?;
        });
        Ok(())
    }

    /// Layers some key of `keys` (fingerprints) has not checked yet, at most `limit`.
    pub async fn unchecked_signature_layers(
        &self,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<StoredLayer>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<LayerRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {LAYER_COLUMNS} FROM signature_layers l
                 WHERE (SELECT COUNT(*) FROM signature_checks c
                        WHERE c.subject = l.subject AND c.layer = l.layer
                          AND c.key_fingerprint IN ({})) < $2
                 ORDER BY subject, layer LIMIT $3",
                <Db as Dialect>::JSON_STRINGS
            )))
            .bind(sqlx::types::Json(keys))
            .bind(keys.len() as i64)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(db("read unchecked signature layers"))?
        });
        rows.into_iter().map(layer_from).collect()
    }

    /// Which (subject, layer, key fingerprint) checks exist for the subjects of `layers`.
    pub async fn signature_check_keys(
        &self,
        layers: &[StoredLayer],
    ) -> Result<HashSet<(Digest, Digest, String)>, StoreError> {
        let subjects: Vec<&str> = layers.iter().map(|l| l.subject.as_str()).collect();
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT subject, layer, key_fingerprint FROM signature_checks
                 WHERE subject IN ({})",
                <Db as Dialect>::JSON_STRINGS
            )))
            .bind(sqlx::types::Json(&subjects))
            .fetch_all(pool)
            .await
            .map_err(db("read signature checks"))?
        });
        let mut met = HashSet::with_capacity(rows.len());
        for (subject, layer, key) in rows {
            met.insert((
                digest_from("signature_checks.subject", subject)?,
                digest_from("signature_checks.layer", layer)?,
                key,
            ));
        }
        Ok(met)
    }

    /// Records what keys made of layers already stored (a key the policy gained), stamping
    /// each subject, in one fenced transaction.
    pub async fn record_signature_checks(
        &self,
        checks: &[(Digest, SignatureCheck)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if checks.is_empty() {
            return Ok(());
        }
        let at = stored_time(at);
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording signature checks"))?;
            check_fence!(self, tx, Db);
            let mut stamped: Vec<&str> = Vec::new();
            for (subject, check) in checks {
                let subject = subject.as_str();
                insert_checks!(tx, subject, std::slice::from_ref(check), at);
                if !stamped.contains(&subject) {
                    stamp!(tx, subject);
                    stamped.push(subject);
                }
            }
            tx.commit().await.map_err(db("commit signature checks"))?;
        });
        Ok(())
    }

    /// Everything held about `subject`'s signatures.
    pub async fn signatures_of(&self, subject: &Digest) -> Result<SignatureView, StoreError> {
        type SourceRow = (String, String, String, String);
        type CheckRow = (
            String,
            String,
            String,
            bool,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let (sources, layers, checks): (Vec<SourceRow>, Vec<LayerRow>, Vec<CheckRow>) =
            on_pool!(self, |pool, Db| {
                let sources = sqlx::query_as(
                    "SELECT registry, repository, found_at, manifest FROM signature_sources
                     WHERE subject = $1 ORDER BY registry, repository, found_at",
                )
                .bind(subject.as_str())
                .fetch_all(pool)
                .await
                .map_err(db("read signature sources"))?;
                let layers = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {LAYER_COLUMNS} FROM signature_layers WHERE subject = $1
                     ORDER BY layer"
                )))
                .bind(subject.as_str())
                .fetch_all(pool)
                .await
                .map_err(db("read signature layers"))?;
                let checks = sqlx::query_as(
                    "SELECT layer, key_fingerprint, key_name, verified, refusal, predicate_type,
                            builder, source_repository, source_commit, tests, tests_url
                     FROM signature_checks WHERE subject = $1 ORDER BY layer, key_name",
                )
                .bind(subject.as_str())
                .fetch_all(pool)
                .await
                .map_err(db("read signature checks"))?;
                (sources, layers, checks)
            });
        let mut view = SignatureView::default();
        for (registry, repository, found_at, manifest) in sources {
            view.sources.push(SignatureSource {
                subject: subject.clone(),
                repository: RepositoryName::new(&registry, &repository).map_err(|_| {
                    StoreError::Corrupt {
                        column: "signature_sources.repository",
                        value: format!("{registry}/{repository}"),
                    }
                })?,
                found_at,
                manifest: digest_from("signature_sources.manifest", manifest)?,
            });
        }
        let mut kinds = HashMap::new();
        for row in layers {
            let stored = layer_from(row)?;
            kinds.insert(stored.layer.layer.clone(), stored.layer.kind);
            view.layers.push(stored.layer);
        }
        for row in checks {
            let (layer, key, key_name, verified, refusal, predicate_type, builder, source) =
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
            let layer = digest_from("signature_checks.layer", layer)?;
            let kind = kinds.get(&layer).copied().unwrap_or(SignedKind::Signature);
            let outcome = if verified {
                let (_, signed) = verified_from((
                    subject.as_str().to_string(),
                    kind.as_str().to_string(),
                    key.clone(),
                    key_name.clone(),
                    predicate_type,
                    builder,
                    source,
                    row.8,
                    row.9,
                    row.10,
                ))?;
                Ok(signed)
            } else {
                Err(refusal.unwrap_or_default())
            };
            view.checks.push(SignatureCheck {
                layer,
                key,
                key_name,
                outcome,
            });
        }
        Ok(view)
    }

    /// The verified signatures of each of `subjects` that has any.
    pub async fn verified_signatures(
        &self,
        subjects: &[Digest],
    ) -> Result<Vec<(Digest, Vec<Signed>)>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let texts: Vec<&str> = subjects.iter().map(Digest::as_str).collect();
        let rows: Vec<VerifiedRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{VERIFIED} AND c.subject IN ({}) ORDER BY c.subject, c.layer, c.key_fingerprint",
                <Db as Dialect>::JSON_STRINGS
            )))
            .bind(sqlx::types::Json(&texts))
            .fetch_all(pool)
            .await
            .map_err(db("read verified signatures"))?
        });
        gather(rows)
    }
}
