//! The scheduler's bookkeeping: per promotion rule and image variant, the last slot claimed.
//! Claiming is a compare-and-set on the slot read before, so of two replicas that see the same
//! slot due, exactly one runs it.

use chrono::{DateTime, Utc};

use crate::error::db;
use crate::store::{Dialect, stored_time};
use crate::{Store, StoreError};

/// Which scheduled promotion: an image variant and a rule's channels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromotionKey {
    pub catalog_name: String,
    /// `None`: the entry's default image.
    pub variant: Option<String>,
    pub from: String,
    pub to: String,
}

impl PromotionKey {
    fn variant_column(&self) -> &str {
        self.variant.as_deref().unwrap_or("")
    }
}

impl Store {
    /// The last slot claimed for `key` (or the moment the scheduler first saw it).
    pub async fn promotion_slot(
        &self,
        key: &PromotionKey,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(DateTime<Utc>,)> = on_pool!(self, |pool, Db| {
            sqlx::query_as(
                "SELECT slot FROM promotion_runs
                 WHERE catalog_name = $1 AND variant = $2 AND from_channel = $3
                     AND to_channel = $4",
            )
            .bind(&key.catalog_name)
            .bind(key.variant_column())
            .bind(&key.from)
            .bind(&key.to)
            .fetch_optional(pool)
            .await
            .map_err(db("read a promotion slot"))?
        });
        Ok(row.map(|(slot,)| slot))
    }

    /// Moves `key`'s slot from `previous` (as read with [`Store::promotion_slot`]; `None`: no
    /// row yet) to `slot`. False when someone else moved it first: they run that slot.
    pub async fn claim_promotion_slot(
        &self,
        key: &PromotionKey,
        previous: Option<DateTime<Utc>>,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(self, |pool, Db| {
            let mut tx = pool
                .begin_with(<Db as Dialect>::BEGIN_WRITE)
                .await
                .map_err(db("begin claiming a promotion slot"))?;
            check_fence!(self, tx, Db);
            let changed = match previous {
                None => sqlx::query(
                    "INSERT INTO promotion_runs
                         (catalog_name, variant, from_channel, to_channel, slot, claimed_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (catalog_name, variant, from_channel, to_channel) DO NOTHING",
                )
                .bind(&key.catalog_name)
                .bind(key.variant_column())
                .bind(&key.from)
                .bind(&key.to)
                .bind(stored_time(slot))
                .bind(stored_time(now))
                .execute(&mut *tx)
                .await
                .map_err(db("claim a promotion slot"))?
                .rows_affected(),
                Some(previous) => sqlx::query(
                    "UPDATE promotion_runs SET slot = $5, claimed_at = $6
                     WHERE catalog_name = $1 AND variant = $2 AND from_channel = $3
                         AND to_channel = $4 AND slot = $7",
                )
                .bind(&key.catalog_name)
                .bind(key.variant_column())
                .bind(&key.from)
                .bind(&key.to)
                .bind(stored_time(slot))
                .bind(stored_time(now))
                .bind(stored_time(previous))
                .execute(&mut *tx)
                .await
                .map_err(db("claim a promotion slot"))?
                .rows_affected(),
            };
            tx.commit().await.map_err(db("commit a promotion slot"))?;
            changed
        });
        Ok(changed == 1)
    }
}
