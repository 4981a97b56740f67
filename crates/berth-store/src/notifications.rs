//! Notifications' outbox: events recorded once by key, each with a delivery per target that
//! hears it, written in one transaction (fenced by the notifications lease) with the cursor
//! advance or the gathered admission denials they came from; delivery attempts; and the
//! admission denials the webhook gathers per image and window.

use berth_core::notify::{Denials, Event};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::db;
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

/// What one look for events found, to record together.
#[derive(Debug, Default)]
pub struct Found<'a> {
    /// Each event with the targets that hear it.
    pub events: Vec<(&'a Event, Vec<String>)>,
    /// A source's new position (`audit`: the last audit id looked at).
    pub cursor: Option<(&'a str, i64)>,
    /// The gathered denials (image, window start) the events carry: removed as recorded.
    pub consumed_denials: Vec<(String, DateTime<Utc>)>,
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub summary: String,
    pub data: Value,
}

/// One message to one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub event: StoredEvent,
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    Retry { error: String, next: DateTime<Utc> },
    Failed { error: String },
}

/// One admission denial, as the webhook reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub image: String,
    pub window_start: DateTime<Utc>,
    pub namespace: String,
    pub message: String,
}

/// A gathered window keeps at most this many namespaces by name.
const NAMESPACES_MAX: usize = 20;

type DeliveryRow = (
    String,
    String,
    i64,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    String,
    String,
    DateTime<Utc>,
    String,
    String,
    String,
);

const DELIVERY_COLUMNS: &str = "d.target, d.state, d.attempts, d.next_attempt_at, d.delivered_at,
     d.last_error, e.id, e.key, e.kind, e.at, e.subject, e.summary, e.data
     FROM notification_deliveries d JOIN notification_events e ON e.id = d.event_id";

impl Store {
    /// Records `found` in one transaction: each event not recorded before (by key) with a
    /// pending delivery per target, the cursor's new position, the consumed denials removed.
    /// Returns how many events were new.
    pub async fn record_notifications(
        &self,
        found: &Found<'_>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = stored_time(now);
        let recorded = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording notifications"))?;
            check_fence!(self, tx, Db);
            let mut recorded = 0;
            for (event, targets) in &found.events {
                let id: Option<(i64,)> = sqlx::query_as(
                    "INSERT INTO notification_events (key, kind, at, subject, summary, data)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (key) DO NOTHING RETURNING id",
                )
                .bind(&event.key)
                .bind(event.kind)
                .bind(stored_time(event.at))
                .bind(&event.subject)
                .bind(&event.summary)
                .bind(event.data.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("record a notification event"))?;
                let Some((id,)) = id else { continue };
                recorded += 1;
                for target in targets {
                    sqlx::query(
                        "INSERT INTO notification_deliveries
                             (event_id, target, state, attempts, next_attempt_at)
                         VALUES ($1, $2, 'pending', 0, $3)",
                    )
                    .bind(id)
                    .bind(target)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("record a notification delivery"))?;
                }
            }
            if let Some((name, position)) = found.cursor {
                sqlx::query(
                    "INSERT INTO notification_cursors (name, position) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                )
                .bind(name)
                .bind(position)
                .execute(&mut *tx)
                .await
                .map_err(db("advance a notification cursor"))?;
            }
            for (image, window_start) in &found.consumed_denials {
                sqlx::query("DELETE FROM admission_denials WHERE image = $1 AND window_start = $2")
                    .bind(image)
                    .bind(stored_time(*window_start))
                    .execute(&mut *tx)
                    .await
                    .map_err(db("remove gathered denials"))?;
            }
            tx.commit().await.map_err(db("commit notifications"))?;
            recorded
        });
        Ok(recorded)
    }

    /// A source's position, if it has one.
    pub async fn notification_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool, Db| {
            sqlx::query_as("SELECT position FROM notification_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(db("read a notification cursor"))?
        });
        Ok(row.map(|(position,)| position))
    }

    /// Pending deliveries whose attempt is due at `now`, oldest event first.
    pub async fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1
             ORDER BY e.id, d.target LIMIT $2"
        );
        self.deliveries(sql, Some(stored_time(now)), limit).await
    }

    /// The newest `limit` deliveries, newest first.
    pub async fn notifications(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS}
             WHERE $1 IS NULL OR d.next_attempt_at <= $1
             ORDER BY e.id DESC, d.target LIMIT $2"
        );
        self.deliveries(sql, None, limit).await
    }

    async fn deliveries(
        &self,
        sql: String,
        now: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db("read notification deliveries"))?
        });
        rows.into_iter()
            .map(|row| {
                let data = serde_json::from_str(&row.12).map_err(|_| StoreError::Corrupt {
                    column: "notification_events.data",
                    value: row.12.clone(),
                })?;
                Ok(Delivery {
                    target: row.0,
                    state: row.1,
                    attempts: u32::try_from(row.2).unwrap_or(u32::MAX),
                    next_attempt_at: row.3,
                    delivered_at: row.4,
                    last_error: row.5,
                    event: StoredEvent {
                        id: row.6,
                        key: row.7,
                        kind: row.8,
                        at: row.9,
                        subject: row.10,
                        summary: row.11,
                        data,
                    },
                })
            })
            .collect()
    }

    /// Records an attempt at a pending delivery; `false` when it was no longer pending (a
    /// concurrent attempt finished it).
    pub async fn record_notification_attempt(
        &self,
        event_id: i64,
        target: &str,
        result: &DeliveryResult,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = stored_time(now);
        let (state, error, next) = match result {
            DeliveryResult::Delivered => ("delivered", None, now),
            DeliveryResult::Retry { error, next } => {
                ("pending", Some(error.as_str()), stored_time(*next))
            }
            DeliveryResult::Failed { error } => ("failed", Some(error.as_str()), now),
        };
        let updated = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a notification attempt"))?;
            check_fence!(self, tx, Db);
            let done = sqlx::query(
                "UPDATE notification_deliveries SET
                     state = $3, attempts = attempts + 1, last_error = $4, next_attempt_at = $5,
                     delivered_at = CASE WHEN $3 = 'delivered' THEN $6 ELSE delivered_at END
                 WHERE event_id = $1 AND target = $2 AND state = 'pending'",
            )
            .bind(event_id)
            .bind(target)
            .bind(state)
            .bind(error)
            .bind(next)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("record a notification attempt"))?;
            tx.commit()
                .await
                .map_err(db("commit a notification attempt"))?;
            done.rows_affected() == 1
        });
        Ok(updated)
    }

    /// Adds denials to their image's window, in one transaction.
    pub async fn record_denials(&self, denials: &[Denial]) -> Result<(), StoreError> {
        if denials.is_empty() {
            return Ok(());
        }
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording denials"))?;
            for denial in denials {
                let window_start = stored_time(denial.window_start);
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT namespaces FROM admission_denials
                     WHERE image = $1 AND window_start = $2",
                )
                .bind(&denial.image)
                .bind(window_start)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("read gathered denials"))?;
                match row {
                    Some((namespaces,)) => {
                        let mut namespaces: Vec<String> =
                            serde_json::from_str(&namespaces).unwrap_or_default();
                        if namespaces.len() < NAMESPACES_MAX
                            && !namespaces.contains(&denial.namespace)
                        {
                            namespaces.push(denial.namespace.clone());
                            namespaces.sort();
                        }
                        sqlx::query(
                            "UPDATE admission_denials SET count = count + 1, namespaces = $3
                             WHERE image = $1 AND window_start = $2",
                        )
                        .bind(&denial.image)
                        .bind(window_start)
                        .bind(serde_json::to_string(&namespaces).unwrap_or_default())
                        .execute(&mut *tx)
                        .await
                        .map_err(db("count a denial"))?;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO admission_denials
                                 (image, window_start, count, namespaces, message)
                             VALUES ($1, $2, 1, $3, $4)",
                        )
                        .bind(&denial.image)
                        .bind(window_start)
                        .bind(serde_json::to_string(&[&denial.namespace]).unwrap_or_default())
                        .bind(&denial.message)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("record a denial"))?;
                    }
                }
            }
            tx.commit().await.map_err(db("commit denials"))?;
        });
        Ok(())
    }

    /// The gathered windows that started before `before` (closed ones), oldest first.
    pub async fn closed_denials(&self, before: DateTime<Utc>) -> Result<Vec<Denials>, StoreError> {
        type Row = (String, DateTime<Utc>, i64, String, String);
        let rows: Vec<Row> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT image, window_start, count, namespaces, message FROM admission_denials
                 WHERE window_start < $1 ORDER BY window_start, image LIMIT 1000",
            )
            .bind(stored_time(before))
            .fetch_all(pool)
            .await
            .map_err(db("read gathered denials"))?
        });
        Ok(rows
            .into_iter()
            .map(
                |(image, window_start, count, namespaces, message)| Denials {
                    image,
                    window_start,
                    count: u64::try_from(count).unwrap_or_default(),
                    namespaces: serde_json::from_str(&namespaces).unwrap_or_default(),
                    message,
                },
            )
            .collect())
    }
}
