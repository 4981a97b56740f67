//! berth's store: what registries hold (tags, manifests, per-platform image facts, layer facts,
//! lineage), channel history, admission usage and the audit log, in SQLite (default) or
//! PostgreSQL, behind one async API: [`Store`].
//!
//! Code map:
//! - [`store`]: `Store::open(url)` and `Store::open_read_only(url)`, the two backends and the dispatch between them
//!   (docs/decisions/0003-store.md says why one struct over an enum of pools).
//! - [`migrate`]: embedded migrations per backend (`migrations/sqlite`, `migrations/postgres`),
//!   run on open; a schema newer than this build is refused.
//! - [`knowledge`]: registry knowledge. One repository's sync is one transaction; failures are
//!   recorded beside what berth knew, never instead of it; tags that vanish are marked gone.
//! - [`history`]: append-only logs: channel history, audit log, admission usage.
//! - [`schedule`]: the scheduler's last claimed slot per promotion (compare-and-set).
//! - [`url`]: [`StoreUrl`], the store's URL, which never prints a password.
//! - [`records`]: the types the API takes and returns.
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

pub mod error;
pub mod history;
pub mod knowledge;
pub mod migrate;
pub mod records;
pub mod schedule;
pub mod store;
pub mod url;

pub use error::StoreError;
pub use history::{AdmissionUse, AuditEntry, ChannelChange, ChannelChangeKind, Logged};
pub use migrate::SCHEMA_VERSION;
pub use records::{
    ImageFilter, ImageLocation, ImageRecord, ImageSummary, IndexEntry, LayerChain, LayerFact,
    LayerRecord, ManifestKind, ManifestRecord, Platform, RepoSnapshot, RepositoryName,
    RepositoryStatus, SyncStatus, SyncSummary, TagRecord,
};
pub use schedule::PromotionKey;
pub use store::{BackendKind, Store};
pub use url::StoreUrl;
