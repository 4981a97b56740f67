//! berth's store: what registries hold (tags, manifests, per-platform image facts, layer facts,
//! lineage), channel history, the usage inventory and the audit log, in SQLite (default) or
//! PostgreSQL, behind one async API: [`Store`].
//!
//! Code map:
//! - [`store`]: `Store::open(url)` and `Store::open_read_only(url)`, the two backends and the dispatch between them
//!   (docs/decisions/0003-store.md says why one struct over an enum of pools).
//! - [`migrate`]: embedded migrations per backend (`migrations/sqlite`, `migrations/postgres`),
//!   run on open; a schema newer than this build is refused.
//! - [`knowledge`]: registry knowledge. One repository's sync is one transaction; failures are
//!   recorded beside what berth knew, never instead of it; tags that vanish are marked gone.
//! - [`snapshot`]: policy knowledge for `policy::evaluate`: point lookups for the references
//!   one check decides, and the change sequence (a generation per write) an incremental
//!   snapshot follows.
//! - [`history`]: append-only logs: channel history, audit log.
//! - [`usage`]: the usage inventory (who uses which image, by source, updated in place) and
//!   each source's freshness.
//! - [`schedule`]: the scheduler's last claimed slot per promotion (compare-and-set).
//! - [`leases`]: which replica runs each singleton task (scheduled sync, promotion scheduler),
//!   claimed and renewed on the database's clock, with a fencing epoch every write of the task
//!   carries; the runs those tasks finished.
//! - [`rebuild`]: rebuild dispatches, recorded with their audit entry before they are sent,
//!   their delivery attempts, the images each carried and what became of them, and targets'
//!   failures and suspension.
//! - [`notifications`]: the notifications outbox (events once by key, a delivery per target,
//!   recorded with the cursor or denials they came from) and the admission denials gathered
//!   per image and window.
//! - [`provenance`]: what pipelines recorded about the digests they built and tested, the
//!   latest per digest, audited and stamped with a knowledge generation.
//! - [`sessions`]: the dashboard's sign-in sessions, by the SHA-256 of their id, shared by
//!   every replica on the store.
//! - [`url`]: [`StoreUrl`], the store's URL, which never prints a password.
//! - [`records`]: the types the API takes and returns; [`view`]: how an image reads in JSON.
//! - [`error`]: the one error type, [`StoreError`].
//!
//! Invariants:
//! - The store never reads a clock: every timestamp is an argument (`now`), kept to the
//!   microsecond (PostgreSQL's precision) so that both backends answer alike.
//! - Digests, tags and repository names are validated on the way in (by their types) and on
//!   the way out (a value that does not parse is [`StoreError::Corrupt`]).
//! - Nothing here deletes registry knowledge.

/// Runs `$body` once per backend with `$pool` bound to that backend's pool and `$db` naming
/// its `sqlx::Database`, so one text of SQL and Rust serves both (see the decision record).
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $db:ident| $body:block) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::store::Backend::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}

/// Inside a write transaction `$tx` of backend `$db`: when `$store` is fenced
/// ([`Store::fenced`]), returns [`StoreError::Fenced`] from the enclosing function unless the
/// lease is still held at the fence's epoch. On PostgreSQL the lease row is locked until the
/// transaction ends, so it cannot change hands under the write.
macro_rules! check_fence {
    ($store:expr, $tx:expr, $db:ty) => {
        if let Some(fence) = &$store.fence {
            let sql = format!(
                "SELECT epoch FROM leases
                 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at_ms > {}{}",
                <$db as $crate::store::Dialect>::NOW_MS,
                <$db as $crate::store::Dialect>::LOCK_ROW
            );
            let held: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&fence.lease)
                .bind(&fence.holder)
                .bind(fence.epoch)
                .fetch_optional(&mut *$tx)
                .await
                .map_err($crate::error::db("check the lease"))?;
            if held.is_none() {
                return Err(fence.refused());
            }
        }
    };
}

pub mod error;
pub mod freshness;
pub mod history;
pub mod knowledge;
pub mod leases;
pub mod migrate;
pub mod notifications;
pub mod provenance;
pub mod rebuild;
pub mod records;
pub mod retention;
pub mod schedule;
pub mod sessions;
pub mod signatures;
pub mod snapshot;
pub mod store;
pub mod url;
pub mod usage;
pub mod view;

pub use error::StoreError;
pub use history::{AuditEntry, ChannelChange, ChannelChangeKind, Logged};
pub use leases::{Fence, Lease, TaskRun};
pub use migrate::SCHEMA_VERSION;
pub use records::{
    ConfigFacts, ImageFilter, ImageLocation, ImageRecord, ImageSummary, IndexEntry, LayerChain,
    LayerFact, LayerRecord, ManifestKind, ManifestRecord, Platform, RepoSnapshot, RepositoryName,
    RepositoryStatus, SyncStatus, SyncSummary, TagRecord,
};
pub use schedule::PromotionKey;
pub use sessions::UiSession;
pub use store::{BackendKind, Store};
pub use url::StoreUrl;
pub use usage::{Recorded, SourceFreshness, UsageEntry, UsageQuery, UsageSource, UsageView, Use};
pub use view::ImageView;
