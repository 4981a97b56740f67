//! Provenance records: what a pipeline reported about a digest it built and tested, the latest
//! per digest, written with its audit entry and a knowledge generation in one transaction (so
//! the webhook's incremental snapshot picks it up), and read back for `berth provenance`, the
//! API and policy knowledge.

use berth_core::Digest;
use berth_core::provenance::{Record, Tests};
use chrono::{DateTime, Utc};

use crate::error::db;
use crate::knowledge::NEXT_GENERATION;
use crate::records::digest_from;
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

/// The audit log's action for a recorded provenance.
pub const AUDIT_ACTION: &str = "provenance.record";

pub(crate) type RecordRow = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    DateTime<Utc>,
);

pub(crate) const RECORD_COLUMNS: &str = "digest, source, commit_sha, build_url, logs_url, tests, \
     tests_url, recorded_by, recorded_at";

/// A row as a digest and its record.
pub(crate) fn record_from(row: RecordRow) -> Result<(Digest, Record), StoreError> {
    let digest = digest_from("provenance_records.digest", row.0)?;
    let tests = match row.5 {
        None => None,
        Some(text) => Some(Tests::parse(&text).ok_or(StoreError::Corrupt {
            column: "provenance_records.tests",
            value: text,
        })?),
    };
    Ok((
        digest,
        Record {
            source: row.1,
            commit: row.2,
            build: row.3,
            logs: row.4,
            tests,
            tests_url: row.6,
            recorded_by: row.7,
            recorded_at: row.8,
        },
    ))
}

impl Store {
    /// Records what a pipeline reported about `digest`, replacing an earlier record, with its
    /// audit entry (before: the record replaced), in one transaction.
    pub async fn record_provenance(
        &self,
        digest: &Digest,
        record: &Record,
    ) -> Result<(), StoreError> {
        let at = stored_time(record.recorded_at);
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording provenance"))?;
            let before: Option<RecordRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM provenance_records WHERE digest = $1"
            )))
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read the earlier provenance record"))?;
            let (generation,): (i64,) = sqlx::query_as(NEXT_GENERATION)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("take a generation"))?;
            sqlx::query(
                "INSERT INTO provenance_records
                     (digest, source, commit_sha, build_url, logs_url, tests, tests_url,
                      recorded_by, recorded_at, generation)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (digest) DO UPDATE SET
                     source = excluded.source, commit_sha = excluded.commit_sha,
                     build_url = excluded.build_url, logs_url = excluded.logs_url,
                     tests = excluded.tests, tests_url = excluded.tests_url,
                     recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at,
                     generation = excluded.generation",
            )
            .bind(digest.as_str())
            .bind(&record.source)
            .bind(&record.commit)
            .bind(&record.build)
            .bind(&record.logs)
            .bind(record.tests.map(Tests::as_str))
            .bind(&record.tests_url)
            .bind(&record.recorded_by)
            .bind(at)
            .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(db("record provenance"))?;
            let before = match before {
                Some(row) => Some(serde_json::to_value(record_from(row)?.1).unwrap_or_default()),
                None => None,
            };
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, before_state, after_state)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(at)
            .bind(&record.recorded_by)
            .bind(AUDIT_ACTION)
            .bind(digest.as_str())
            .bind(before.map(sqlx::types::Json))
            .bind(sqlx::types::Json(
                serde_json::to_value(record).unwrap_or_default(),
            ))
            .execute(&mut *tx)
            .await
            .map_err(db("audit recorded provenance"))?;
            tx.commit().await.map_err(db("commit provenance"))?;
        });
        Ok(())
    }

    /// The record of `digest`, if a pipeline made one.
    pub async fn provenance_of(&self, digest: &Digest) -> Result<Option<Record>, StoreError> {
        let row: Option<RecordRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {RECORD_COLUMNS} FROM provenance_records WHERE digest = $1"
            )))
            .bind(digest.as_str())
            .fetch_optional(pool)
            .await
            .map_err(db("read a provenance record"))?
        });
        row.map(|row| record_from(row).map(|(_, record)| record))
            .transpose()
    }
}
