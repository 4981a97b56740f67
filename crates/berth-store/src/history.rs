//! Append-only logs: channel history (what each channel pointed at, and why it moved) and the
//! audit log (who changed what). Who uses which image is the usage inventory (`usage`).

use berth_core::Digest;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::error::db;
use crate::records::{digest_from, optional_digest_from};
use crate::store::stored_time;
use crate::{Store, StoreError};

/// A stored log entry with its id (ids grow in insertion order).
#[derive(Debug, Clone, PartialEq)]
pub struct Logged<T> {
    pub id: i64,
    pub entry: T,
}

/// Why a channel moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelChangeKind {
    Promotion,
    Rollback,
    /// Set by a person, outside any policy.
    Manual,
    /// The registry's tag moved without berth (recorded when a sync notices).
    Drift,
}

impl ChannelChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelChangeKind::Promotion => "promotion",
            ChannelChangeKind::Rollback => "rollback",
            ChannelChangeKind::Manual => "manual",
            ChannelChangeKind::Drift => "drift",
        }
    }

    fn parse(text: String) -> Result<ChannelChangeKind, StoreError> {
        [
            ChannelChangeKind::Promotion,
            ChannelChangeKind::Rollback,
            ChannelChangeKind::Manual,
            ChannelChangeKind::Drift,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
        .ok_or(StoreError::Corrupt {
            column: "channel_history.kind",
            value: text,
        })
    }
}

/// A channel of a catalog image (and variant) pointing at a new digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChange {
    /// The catalog's canonical name of the image.
    pub catalog_name: String,
    pub variant: Option<String>,
    pub channel: String,
    pub digest: Digest,
    /// What the channel pointed at before; `None` for its first digest.
    pub previous: Option<Digest>,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    pub kind: ChannelChangeKind,
}

/// One change made through berth, with the state before and after as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// What was done (`promote`, `rollback`, `catalog.reload`): named by the feature that acts.
    pub action: String,
    /// What it was done to (an image, channel or catalog name).
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

type ChannelRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    String,
    String,
    String,
);

type AuditRow = (
    i64,
    DateTime<Utc>,
    String,
    String,
    String,
    Option<Json<serde_json::Value>>,
    Option<Json<serde_json::Value>>,
);

impl Store {
    pub async fn append_channel_change(&self, change: &ChannelChange) -> Result<i64, StoreError> {
        let (id,): (i64,) = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "INSERT INTO channel_history (catalog_name, variant, channel, digest,
                     previous_digest, at, actor, reason, kind)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&change.catalog_name)
            .bind(change.variant.as_deref())
            .bind(&change.channel)
            .bind(change.digest.as_str())
            .bind(change.previous.as_ref().map(Digest::as_str))
            .bind(stored_time(change.at))
            .bind(&change.actor)
            .bind(&change.reason)
            .bind(change.kind.as_str())
            .fetch_one(pool)
            .await
            .map_err(db("append to channel history"))?
        });
        Ok(id)
    }

    /// Channel history, newest first, of one catalog image or of all.
    pub async fn channel_history(
        &self,
        catalog_name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Logged<ChannelChange>>, StoreError> {
        let rows: Vec<ChannelRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT id, catalog_name, variant, channel, digest, previous_digest, at, actor,
                     reason, kind
                 FROM channel_history
                 WHERE ($1 IS NULL OR catalog_name = $1)
                 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(catalog_name)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("read channel history"))?
        });
        rows.into_iter()
            .map(|row| {
                Ok(Logged {
                    id: row.0,
                    entry: ChannelChange {
                        catalog_name: row.1,
                        variant: row.2,
                        channel: row.3,
                        digest: digest_from("channel_history.digest", row.4)?,
                        previous: optional_digest_from("channel_history.previous_digest", row.5)?,
                        at: row.6,
                        actor: row.7,
                        reason: row.8,
                        kind: ChannelChangeKind::parse(row.9)?,
                    },
                })
            })
            .collect()
    }

    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<i64, StoreError> {
        let (id,): (i64,) = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "INSERT INTO audit_log (at, actor, action, subject, before_state, after_state)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(stored_time(entry.at))
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.subject)
            .bind(entry.before.as_ref().map(Json))
            .bind(entry.after.as_ref().map(Json))
            .fetch_one(pool)
            .await
            .map_err(db("append to the audit log"))?
        });
        Ok(id)
    }

    /// Up to `limit` audit entries after id `after`, oldest first: how the notifier reads the
    /// log from its cursor.
    pub async fn audit_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Logged<AuditEntry>>, StoreError> {
        let rows: Vec<AuditRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT id, at, actor, action, subject, before_state, after_state FROM audit_log
                 WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("read the audit log from a cursor"))?
        });
        Ok(rows.into_iter().map(logged_audit).collect())
    }

    /// The audit log's newest id (0 when it is empty).
    pub async fn last_audit_id(&self) -> Result<i64, StoreError> {
        let (id,): (Option<i64>,) = on_pool!(self, |pool, Db| {
            sqlx::query_as("SELECT MAX(id) FROM audit_log")
                .fetch_one(pool)
                .await
                .map_err(db("read the audit log's newest id"))?
        });
        Ok(id.unwrap_or(0))
    }

    /// The audit log, newest first, about one subject or all. A subject matches itself and,
    /// as channel subjects are `NAME[/variant]:channel`, what lies under it: `python3.11` is
    /// every channel of every variant of that image, `python3.11/jobs` those of one variant.
    pub async fn audit_log(
        &self,
        subject: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Logged<AuditEntry>>, StoreError> {
        let rows: Vec<AuditRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT id, at, actor, action, subject, before_state, after_state FROM audit_log
                 WHERE ($1 IS NULL OR subject = $1
                        OR substr(subject, 1, length($1) + 1) IN ($1 || ':', $1 || '/'))
                 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(subject)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("read the audit log"))?
        });
        Ok(rows.into_iter().map(logged_audit).collect())
    }
}

fn logged_audit((id, at, actor, action, subject, before, after): AuditRow) -> Logged<AuditEntry> {
    Logged {
        id,
        entry: AuditEntry {
            at,
            actor,
            action,
            subject,
            before: before.map(|Json(value)| value),
            after: after.map(|Json(value)| value),
        },
    }
}
