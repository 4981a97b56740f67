//! Rebuild dispatches: recorded with their audit entry before they are sent (one transaction,
//! fenced by the rebuild lease), each delivery attempt's outcome, the images each carries and
//! what became of them, and per-target failures and suspension. [`Store::rebuild_ledger`] is
//! what berth-core's `rebuild::decide` reads.

use berth_core::rebuild::{Closing, DispatchItem, ItemState, Ledger, NewDispatch, OpenDispatch};
use berth_core::{Digest, ImageRef};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::error::db;
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

/// A dispatch's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchState {
    /// Recorded, not yet delivered (being sent, or waiting for its next attempt).
    Pending,
    /// Delivered; its images have not all shown new digests.
    InFlight,
    /// Every image showed a new digest (or its tag went away).
    Closed,
    /// Rejected by the receiver, or undeliverable after every attempt.
    Failed,
    /// Delivered, but the images did not show new digests in time.
    TimedOut,
}

impl DispatchState {
    const ALL: [DispatchState; 5] = [
        DispatchState::Pending,
        DispatchState::InFlight,
        DispatchState::Closed,
        DispatchState::Failed,
        DispatchState::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DispatchState::Pending => "pending",
            DispatchState::InFlight => "in-flight",
            DispatchState::Closed => "closed",
            DispatchState::Failed => "failed",
            DispatchState::TimedOut => "timed-out",
        }
    }

    fn parse(text: String) -> Result<DispatchState, StoreError> {
        DispatchState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or(StoreError::Corrupt {
                column: "rebuild_dispatches.state",
                value: text,
            })
    }
}

/// One delivery attempt's outcome, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again at `next` (an undeliverable dispatch's last attempt is [`Attempt::Failed`]).
    Retry {
        error: String,
        next: DateTime<Utc>,
    },
    Failed {
        error: String,
    },
}

/// A dispatch as recorded, for delivery and for `berth rebuild status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRecord {
    pub id: i64,
    /// The idempotency key: the same on every attempt.
    pub key: String,
    pub target: String,
    pub wave: u32,
    /// The JSON document of the dispatch (what every kind of target is built from).
    pub body: String,
    pub state: DispatchState,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub items: Vec<ItemRecord>,
}

/// An image a dispatch carried, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    pub item: DispatchItem,
    pub state: ItemState,
    pub new_digest: Option<Digest>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A target that has failed lately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    pub name: String,
    /// Consecutive failures since the last rebuild that closed.
    pub failures: u32,
    pub suspended_at: Option<DateTime<Utc>>,
    pub suspended_reason: Option<String>,
}

type DispatchRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);
type ItemRow = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    DateTime<Utc>,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
);

const DISPATCH_COLUMNS: &str = "id, key, target, wave, body, state, attempts, created_at, sent_at, next_attempt_at, finished_at, last_error";
const ITEM_COLUMNS: &str = "dispatch_id, reference, platform, digest, reasons, old_base, stale_since, state, new_digest, closed_at";

/// Inside write transaction `$tx`: one more consecutive failure of target `$target`; at
/// `$after` failures it is suspended, with an audit entry. Yields whether it was suspended now.
macro_rules! count_failure {
    ($tx:ident, $target:expr, $error:expr, $after:expr, $now:expr) => {{
        let (failures, suspended_at): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "INSERT INTO rebuild_targets (name, failures) VALUES ($1, 1)
             ON CONFLICT (name) DO UPDATE SET failures = rebuild_targets.failures + 1
             RETURNING failures, suspended_at",
        )
        .bind($target)
        .fetch_one(&mut *$tx)
        .await
        .map_err(db("count a target's failure"))?;
        if suspended_at.is_none() && failures >= i64::from($after) {
            let reason = format!("{failures} consecutive failures; the last: {}", $error);
            sqlx::query(
                "UPDATE rebuild_targets SET suspended_at = $2, suspended_reason = $3
                 WHERE name = $1",
            )
            .bind($target)
            .bind($now)
            .bind(&reason)
            .execute(&mut *$tx)
            .await
            .map_err(db("suspend a target"))?;
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, before_state, after_state)
                 VALUES ($1, 'berth', 'rebuild.suspend', $2, NULL, $3)",
            )
            .bind($now)
            .bind(format!("rebuild:{}", $target))
            .bind(sqlx::types::Json(serde_json::json!({ "reason": reason })))
            .execute(&mut *$tx)
            .await
            .map_err(db("audit a suspended target"))?;
            true
        } else {
            false
        }
    }};
}

fn corrupt(column: &'static str) -> impl Fn(String) -> StoreError {
    move |value| StoreError::Corrupt { column, value }
}

fn item_from(row: ItemRow) -> Result<(i64, ItemRecord), StoreError> {
    let (dispatch, reference, platform, digest, reasons, old_base, stale_since, state, new, closed) =
        row;
    let reference = ImageRef::parse(&reference).map_err(|_| StoreError::Corrupt {
        column: "rebuild_items.reference",
        value: reference.clone(),
    })?;
    let parse_digest = |text: String| {
        Digest::parse(&text).map_err(|_| StoreError::Corrupt {
            column: "rebuild_items.digest",
            value: text,
        })
    };
    let reasons: Vec<String> =
        serde_json::from_str(&reasons).map_err(|_| corrupt("rebuild_items.reasons")(reasons))?;
    let reasons = reasons
        .iter()
        .map(|reason| {
            ["base-moved", "too-old", "os-eol", "base-retired"]
                .into_iter()
                .find(|known| known == reason)
                .ok_or_else(|| corrupt("rebuild_items.reasons")(reason.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let state = ItemState::parse(&state).ok_or_else(|| corrupt("rebuild_items.state")(state))?;
    Ok((
        dispatch,
        ItemRecord {
            item: DispatchItem {
                reference,
                platform,
                digest: parse_digest(digest)?,
                reasons,
                old_base: old_base.map(parse_digest).transpose()?,
                stale_since,
            },
            state,
            new_digest: new.map(parse_digest).transpose()?,
            closed_at: closed,
        },
    ))
}

fn dispatch_from(row: DispatchRow) -> Result<DispatchRecord, StoreError> {
    let (id, key, target, wave, body, state, attempts, created, sent, next, finished, error) = row;
    Ok(DispatchRecord {
        id,
        key,
        target,
        wave: u32::try_from(wave).unwrap_or(u32::MAX),
        body,
        state: DispatchState::parse(state)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        created_at: created,
        sent_at: sent,
        next_attempt_at: next,
        finished_at: finished,
        last_error: error,
        items: Vec::new(),
    })
}

/// `rb-<24 hex of SHA-256(content)>-<n>`: the n-th dispatch of the same content.
fn key_for(content: &str, n: i64) -> String {
    let hash = Sha256::digest(content.as_bytes());
    let hex: String = hash
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("rb-{hex}-{n}")
}

impl Store {
    /// Records `dispatch` (state `pending`) with its images and an audit entry by `actor`, in
    /// one transaction fenced by the rebuild lease. `body` is the dispatch's JSON document
    /// (every attempt sends what is built from it). Returns the record, whose key is the
    /// idempotency key of every attempt.
    pub async fn record_dispatch(
        &self,
        dispatch: &NewDispatch,
        body: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<DispatchRecord, StoreError> {
        let now = stored_time(now);
        let content = dispatch.content();
        let record = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a dispatch"))?;
            check_fence!(self, tx, Db);
            let (earlier,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM rebuild_dispatches WHERE content = $1")
                    .bind(&content)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db("count earlier dispatches"))?;
            let key = key_for(&content, earlier + 1);
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO rebuild_dispatches
                     (key, content, target, wave, body, state, attempts, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6) RETURNING id",
            )
            .bind(&key)
            .bind(&content)
            .bind(&dispatch.target)
            .bind(i64::from(dispatch.wave))
            .bind(body)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db("record a dispatch"))?;
            for item in &dispatch.items {
                let reasons = serde_json::to_string(&item.reasons).unwrap_or_default();
                sqlx::query(
                    "INSERT INTO rebuild_items
                         (dispatch_id, reference, platform, digest, reasons, old_base,
                          stale_since, state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'in-flight')
                     ON CONFLICT (dispatch_id, reference, platform) DO NOTHING",
                )
                .bind(id)
                .bind(item.reference.to_string())
                .bind(&item.platform)
                .bind(item.digest.as_str())
                .bind(reasons)
                .bind(item.old_base.as_ref().map(Digest::as_str))
                .bind(stored_time(item.stale_since))
                .execute(&mut *tx)
                .await
                .map_err(db("record a dispatched image"))?;
            }
            let after = serde_json::json!({
                "key": key,
                "target": dispatch.target,
                "wave": dispatch.wave,
                "images": dispatch.items.iter().map(|item| serde_json::json!({
                    "reference": item.reference.to_string(),
                    "platform": item.platform,
                    "digest": item.digest.as_str(),
                    "reasons": item.reasons,
                })).collect::<Vec<_>>(),
            });
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, subject, before_state, after_state)
                 VALUES ($1, $2, 'rebuild.dispatch', $3, NULL, $4)",
            )
            .bind(now)
            .bind(actor)
            .bind(format!("rebuild:{}", dispatch.target))
            .bind(sqlx::types::Json(after))
            .execute(&mut *tx)
            .await
            .map_err(db("audit a dispatch"))?;
            tx.commit().await.map_err(db("commit a dispatch"))?;
            DispatchRecord {
                id,
                key,
                target: dispatch.target.clone(),
                wave: dispatch.wave,
                body: body.to_string(),
                state: DispatchState::Pending,
                attempts: 0,
                created_at: now,
                sent_at: None,
                next_attempt_at: None,
                finished_at: None,
                last_error: None,
                items: Vec::new(),
            }
        });
        Ok(record)
    }

    /// Records one delivery attempt of dispatch `id`. A failed dispatch counts a failure of its
    /// target, which is suspended at `suspend_after` consecutive failures (with an audit
    /// entry). Returns whether the target is now suspended.
    pub async fn record_attempt(
        &self,
        id: i64,
        attempt: &Attempt,
        suspend_after: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = stored_time(now);
        let suspended = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording an attempt"))?;
            check_fence!(self, tx, Db);
            let (state, error, next) = match attempt {
                Attempt::Delivered => ("in-flight", None, None),
                Attempt::Retry { error, next } => {
                    ("pending", Some(error.as_str()), Some(stored_time(*next)))
                }
                Attempt::Failed { error } => ("failed", Some(error.as_str()), None),
            };
            let target: Option<(String,)> = sqlx::query_as(
                "UPDATE rebuild_dispatches SET
                     state = $2, attempts = attempts + 1, last_error = $3, next_attempt_at = $4,
                     sent_at = CASE WHEN $2 = 'in-flight' THEN $5 ELSE sent_at END,
                     finished_at = CASE WHEN $2 = 'failed' THEN $5 ELSE finished_at END
                 WHERE id = $1 AND state = 'pending' RETURNING target",
            )
            .bind(id)
            .bind(state)
            .bind(error)
            .bind(next)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("record an attempt"))?;
            let mut suspended = false;
            if let (Some((target,)), Attempt::Failed { error }) = (target, attempt) {
                sqlx::query(
                    "UPDATE rebuild_items SET state = 'failed', closed_at = $2
                     WHERE dispatch_id = $1 AND state IN ('in-flight', 'rebuilt-on-old-base')",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db("release a failed dispatch's images"))?;
                suspended = count_failure!(tx, &target, error, suspend_after, now);
            }
            tx.commit().await.map_err(db("commit an attempt"))?;
            suspended
        });
        Ok(suspended)
    }

    /// What a rebuild pass decides from: open dispatches with their images, the dispatches
    /// decided in the hour before `now`, and the suspended targets.
    pub async fn rebuild_ledger(&self, now: DateTime<Utc>) -> Result<Ledger, StoreError> {
        let open = self
            .dispatches("state IN ('pending', 'in-flight')", None, u32::MAX)
            .await?;
        let hour_ago = stored_time(now - chrono::Duration::hours(1));
        type Recent = Vec<(String, DateTime<Utc>)>;
        let (last_hour, suspended): (Recent, Vec<(String,)>) = on_pool!(self, |pool, Db| {
            let last_hour = sqlx::query_as(
                "SELECT target, created_at FROM rebuild_dispatches WHERE created_at > $1",
            )
            .bind(hour_ago)
            .fetch_all(pool)
            .await
            .map_err(db("read the last hour's dispatches"))?;
            let suspended =
                sqlx::query_as("SELECT name FROM rebuild_targets WHERE suspended_at IS NOT NULL")
                    .fetch_all(pool)
                    .await
                    .map_err(db("read suspended targets"))?;
            (last_hour, suspended)
        });
        Ok(Ledger {
            open: open
                .into_iter()
                .map(|record| OpenDispatch {
                    id: record.id,
                    target: record.target,
                    created_at: record.created_at,
                    sent_at: record.sent_at,
                    items: record
                        .items
                        .into_iter()
                        .map(|item| (item.item, item.state))
                        .collect(),
                })
                .collect(),
            last_hour,
            suspended: suspended.into_iter().map(|(name,)| name).collect(),
        })
    }

    /// Records what a pass found: images whose channel moved, dispatches all of whose images
    /// closed (a success: the target's failures reset and a suspension lifts), and dispatches
    /// that timed out (a failure of the target). Returns the targets suspended by it.
    pub async fn record_rebuild_outcomes(
        &self,
        closings: &[Closing],
        finished: &[i64],
        timed_out: &[i64],
        suspend_after: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let now = stored_time(now);
        let suspended = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording rebuild outcomes"))?;
            check_fence!(self, tx, Db);
            for closing in closings {
                let closed_at = (!closing.state.is_open()).then_some(now);
                sqlx::query(
                    "UPDATE rebuild_items SET state = $4, new_digest = $5, closed_at = $6
                     WHERE dispatch_id = $1 AND reference = $2 AND platform = $3",
                )
                .bind(closing.dispatch)
                .bind(closing.reference.to_string())
                .bind(&closing.platform)
                .bind(closing.state.as_str())
                .bind(closing.new_digest.as_ref().map(Digest::as_str))
                .bind(closed_at)
                .execute(&mut *tx)
                .await
                .map_err(db("record a rebuilt image"))?;
            }
            for id in finished {
                let target: Option<(String,)> = sqlx::query_as(
                    "UPDATE rebuild_dispatches SET state = 'closed', finished_at = $2
                     WHERE id = $1 AND state IN ('pending', 'in-flight') RETURNING target",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("close a dispatch"))?;
                if let Some((target,)) = target {
                    sqlx::query(
                        "UPDATE rebuild_targets SET failures = 0, suspended_at = NULL,
                             suspended_reason = NULL WHERE name = $1",
                    )
                    .bind(&target)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("reset a target's failures"))?;
                }
            }
            let mut suspended = Vec::new();
            for id in timed_out {
                let target: Option<(String,)> = sqlx::query_as(
                    "UPDATE rebuild_dispatches SET state = 'timed-out', finished_at = $2
                     WHERE id = $1 AND state = 'in-flight' RETURNING target",
                )
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("time a dispatch out"))?;
                sqlx::query(
                    "UPDATE rebuild_items SET state = 'timed-out', closed_at = $2
                     WHERE dispatch_id = $1 AND state IN ('in-flight', 'rebuilt-on-old-base')",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db("time a dispatch's images out"))?;
                if let Some((target,)) = target {
                    let error = "its images did not show new digests in time";
                    if count_failure!(tx, &target, error, suspend_after, now) {
                        suspended.push(target);
                    }
                }
            }
            tx.commit().await.map_err(db("commit rebuild outcomes"))?;
            suspended
        });
        Ok(suspended)
    }

    /// Dispatches still to be delivered whose next attempt is due at `now`, oldest first.
    pub async fn due_dispatches(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<DispatchRecord>, StoreError> {
        let mut due = self.dispatches("state = 'pending'", None, u32::MAX).await?;
        due.retain(|record| record.next_attempt_at.is_none_or(|next| next <= now));
        Ok(due)
    }

    /// The newest `limit` dispatches (of `target`, or all), newest first, with their images.
    pub async fn rebuild_dispatches(
        &self,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DispatchRecord>, StoreError> {
        let mut records = self.dispatches("1 = 1", target, limit).await?;
        records.reverse();
        Ok(records)
    }

    /// Targets with failures or a suspension.
    pub async fn rebuild_targets(&self) -> Result<Vec<TargetRecord>, StoreError> {
        type Row = (String, i64, Option<DateTime<Utc>>, Option<String>);
        let rows: Vec<Row> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT name, failures, suspended_at, suspended_reason FROM rebuild_targets
                 ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(db("read rebuild targets"))?
        });
        Ok(rows
            .into_iter()
            .map(
                |(name, failures, suspended_at, suspended_reason)| TargetRecord {
                    name,
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    suspended_at,
                    suspended_reason,
                },
            )
            .collect())
    }

    /// A person resumes a suspended target (audited). False: it was not suspended.
    pub async fn resume_rebuild_target(
        &self,
        name: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = stored_time(now);
        let resumed = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin resuming a target"))?;
            let changed = sqlx::query(
                "UPDATE rebuild_targets SET failures = 0, suspended_at = NULL,
                     suspended_reason = NULL
                 WHERE name = $1 AND suspended_at IS NOT NULL",
            )
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("resume a target"))?
            .rows_affected();
            if changed > 0 {
                sqlx::query(
                    "INSERT INTO audit_log (at, actor, action, subject, before_state, after_state)
                     VALUES ($1, $2, 'rebuild.resume', $3, NULL, NULL)",
                )
                .bind(now)
                .bind(actor)
                .bind(format!("rebuild:{name}"))
                .execute(&mut *tx)
                .await
                .map_err(db("audit a resumed target"))?;
            }
            tx.commit().await.map_err(db("commit a resumed target"))?;
            changed > 0
        });
        Ok(resumed)
    }

    /// Dispatches matching `filter` (a fixed SQL condition) and `target`, oldest first, the
    /// newest `limit`, each with its images.
    async fn dispatches(
        &self,
        filter: &'static str,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DispatchRecord>, StoreError> {
        let (rows, items): (Vec<DispatchRow>, Vec<ItemRow>) = on_pool!(self, |pool, Db| {
            let sql = format!(
                "SELECT {DISPATCH_COLUMNS} FROM rebuild_dispatches
                 WHERE {filter} AND ($1 IS NULL OR target = $1)
                 ORDER BY id DESC LIMIT $2"
            );
            let rows: Vec<DispatchRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(target)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(db("read dispatches"))?;
            let ids: Vec<String> = rows.iter().map(|row| row.0.to_string()).collect();
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM rebuild_items
                 WHERE CAST(dispatch_id AS TEXT) IN ({})
                 ORDER BY dispatch_id, reference, platform",
                <Db as Dialect>::JSON_STRINGS
            );
            let items: Vec<ItemRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(sqlx::types::Json(&ids))
                .fetch_all(pool)
                .await
                .map_err(db("read dispatched images"))?;
            (rows, items)
        });
        let mut records = rows
            .into_iter()
            .rev()
            .map(dispatch_from)
            .collect::<Result<Vec<_>, _>>()?;
        for row in items {
            let (dispatch, item) = item_from(row)?;
            if let Some(record) = records.iter_mut().find(|record| record.id == dispatch) {
                record.items.push(item);
            }
        }
        Ok(records)
    }
}
