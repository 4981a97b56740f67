//! Leases: which `berth serve` replica runs each singleton task, and the runs those tasks
//! finished.
//!
//! A lease is a row (name, holder, epoch, expiry) claimed with one conditional upsert on the
//! database's clock: free, expired or already ours. The holder renews it well before it
//! expires; a holder that stops renewing (crashed, paused, partitioned) loses it at expiry and
//! another replica takes it, with the epoch one higher. Every write of the task goes through
//! [`Store::fenced`], which checks inside the write's own transaction that the lease is still
//! held at that epoch: a former holder that wakes up after losing the lease cannot write. Not
//! session advisory locks: they break behind PgBouncer and when a pooled connection is recycled.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::db;
use crate::store::Dialect;
use crate::{Store, StoreError};

/// What the holder of a lease carries into every write of its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    /// Grows by one whenever the lease changes hands.
    pub epoch: i64,
}

impl Fence {
    pub(crate) fn refused(&self) -> StoreError {
        StoreError::Fenced {
            lease: self.lease.clone(),
            holder: self.holder.clone(),
            epoch: self.epoch,
        }
    }
}

/// A lease as the store holds it, for status pages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether it had not expired by the database's clock when read.
    pub live: bool,
}

/// One finished run of a singleton task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRun {
    pub task: String,
    pub holder: String,
    pub epoch: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `ok`, `failures` (some part failed, what was known stays), `failed`, `cancelled`.
    pub outcome: String,
    /// A short JSON summary of the run (counts, the first error).
    pub detail: String,
}

fn millis(duration: Duration) -> Result<i64, StoreError> {
    i64::try_from(duration.as_millis()).map_err(|_| StoreError::OutOfRange { field: "ttl" })
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

type LeaseRow = (String, String, i64, i64, i64, i64, bool);
type RunRow = (String, String, i64, i64, i64, String, String);

impl Store {
    /// This store, with every write of a singleton task checked against `fence` in the write's
    /// own transaction: once the lease is lost, those writes fail with
    /// [`StoreError::Fenced`] and change nothing.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            backend: self.backend.clone(),
            fence: Some(fence),
        }
    }

    /// The fence this store's writes carry, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// Claims lease `name` for `holder` for `ttl`: when nobody holds it, when it expired, or
    /// when `holder` already holds it (then it is renewed and keeps its epoch). `None`: someone
    /// else holds it.
    pub async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Fence>, StoreError> {
        let ttl = millis(ttl)?;
        let row: Option<(i64,)> = on_pool!(self, |pool, Db| {
            let now = <Db as Dialect>::NOW_MS;
            let sql = format!(
                "INSERT INTO leases
                     (name, holder, epoch, acquired_at_ms, renewed_at_ms, expires_at_ms)
                 VALUES ($1, $2, 1, {now}, {now}, {now} + $3)
                 ON CONFLICT (name) DO UPDATE SET
                     epoch = CASE
                         WHEN leases.holder = excluded.holder
                             AND leases.expires_at_ms > excluded.renewed_at_ms
                         THEN leases.epoch ELSE leases.epoch + 1 END,
                     acquired_at_ms = CASE
                         WHEN leases.holder = excluded.holder
                             AND leases.expires_at_ms > excluded.renewed_at_ms
                         THEN leases.acquired_at_ms ELSE excluded.acquired_at_ms END,
                     holder = excluded.holder,
                     renewed_at_ms = excluded.renewed_at_ms,
                     expires_at_ms = excluded.expires_at_ms
                 WHERE leases.expires_at_ms <= excluded.renewed_at_ms
                     OR leases.holder = excluded.holder
                 RETURNING epoch"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(name)
                .bind(holder)
                .bind(ttl)
                .fetch_optional(pool)
                .await
                .map_err(db("claim a lease"))?
        });
        Ok(row.map(|(epoch,)| Fence {
            lease: name.to_string(),
            holder: holder.to_string(),
            epoch,
        }))
    }

    /// Extends the lease `fence` holds by `ttl` from now. False: it expired or changed hands
    /// (the holder must stop its task's writes; they would be refused anyway).
    pub async fn renew_lease(&self, fence: &Fence, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = millis(ttl)?;
        let changed = on_pool!(self, |pool, Db| {
            let now = <Db as Dialect>::NOW_MS;
            let sql = format!(
                "UPDATE leases SET renewed_at_ms = {now}, expires_at_ms = {now} + $4
                 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at_ms > {now}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&fence.lease)
                .bind(&fence.holder)
                .bind(fence.epoch)
                .bind(ttl)
                .execute(pool)
                .await
                .map_err(db("renew a lease"))?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Gives the lease up at once (at shutdown), so another replica need not wait for it to
    /// expire. Nothing happens when it is no longer ours.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        on_pool!(self, |pool, Db| {
            let now = <Db as Dialect>::NOW_MS;
            let sql = format!(
                "UPDATE leases SET expires_at_ms = {now}
                 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at_ms > {now}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&fence.lease)
                .bind(&fence.holder)
                .bind(fence.epoch)
                .execute(pool)
                .await
                .map_err(db("release a lease"))?;
        });
        Ok(())
    }

    /// Every lease, by name.
    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<LeaseRow> = on_pool!(self, |pool, Db| {
            let now = <Db as Dialect>::NOW_MS;
            let sql = format!(
                "SELECT name, holder, epoch, acquired_at_ms, renewed_at_ms, expires_at_ms,
                     expires_at_ms > {now}
                 FROM leases ORDER BY name"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .map_err(db("read the leases"))?
        });
        Ok(rows
            .into_iter()
            .map(
                |(name, holder, epoch, acquired, renewed, expires, live)| Lease {
                    name,
                    holder,
                    epoch,
                    acquired_at: time(acquired),
                    renewed_at: time(renewed),
                    expires_at: time(expires),
                    live,
                },
            )
            .collect())
    }

    /// The database's clock: when a lease holder decides whether a task is due, it compares
    /// with runs other replicas recorded, so all of them must read the same clock.
    pub async fn database_now(&self) -> Result<DateTime<Utc>, StoreError> {
        let (ms,): (i64,) = on_pool!(self, |pool, Db| {
            let sql = format!("SELECT {}", <Db as Dialect>::NOW_MS);
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await
                .map_err(db("read the database's clock"))?
        });
        Ok(time(ms))
    }

    /// Records a finished run of `task`, started at `started_at` (from
    /// [`Store::database_now`]), if this store's fence still holds (else
    /// [`StoreError::Fenced`]; a store without a fence records it unconditionally).
    pub async fn record_task_run(
        &self,
        task: &str,
        started_at: DateTime<Utc>,
        outcome: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let (holder, epoch) = match &self.fence {
            Some(fence) => (fence.holder.clone(), fence.epoch),
            None => (String::new(), 0),
        };
        on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin recording a task run"))?;
            check_fence!(self, tx, Db);
            let sql = format!(
                "INSERT INTO task_runs
                     (task, holder, epoch, started_at_ms, finished_at_ms, outcome, detail)
                 VALUES ($1, $2, $3, $4, {}, $5, $6)",
                <Db as Dialect>::NOW_MS
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(task)
                .bind(&holder)
                .bind(epoch)
                .bind(started_at.timestamp_millis())
                .bind(outcome)
                .bind(detail)
                .execute(&mut *tx)
                .await
                .map_err(db("record a task run"))?;
            tx.commit().await.map_err(db("commit a task run"))?;
        });
        Ok(())
    }

    /// The runs of `task`, oldest first, at most `limit` of the newest.
    pub async fn task_runs(&self, task: &str, limit: u32) -> Result<Vec<TaskRun>, StoreError> {
        let rows: Vec<RunRow> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT holder, outcome, epoch, started_at_ms, finished_at_ms, detail, task
                 FROM task_runs WHERE task = $1 ORDER BY started_at_ms DESC, id DESC LIMIT $2",
            )
            .bind(task)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(db("read task runs"))?
        });
        let mut runs: Vec<TaskRun> = rows
            .into_iter()
            .map(
                |(holder, outcome, epoch, started, finished, detail, task)| TaskRun {
                    task,
                    holder,
                    epoch,
                    started_at: time(started),
                    finished_at: time(finished),
                    outcome,
                    detail,
                },
            )
            .collect();
        runs.reverse();
        Ok(runs)
    }
}
